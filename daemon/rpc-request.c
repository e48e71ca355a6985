/*
 * rpc-request: broker-executed requests (SPEC section 13).  The request
 * is substituted exactly as substitute does it (substitute.h), and then
 * sent by the broker itself, so that the plaintext never leaves it; the
 * caller gets only the response, scrubbed of every value the call used.
 *
 * After the substitution, for each hop (the request, then each redirect
 * followed):
 *
 *	1. resolve the URL's host once, with uv_getaddrinfo (never on the
 *	   loop), under request.connect_timeout; an IP literal is not looked
 *	   up
 *	2. check every address: a public one is fine; a special one
 *	   (loopback, private, link-local...: netaddr.h) only if the
 *	   destinations of every type whose value the hop carries name it
 *	   (dest_address_allowed); a hop that carries no value gets no such
 *	   allowance.  The first address that passes is the one used
 *	3. send the request with libcurl (storage/http.c, a client of its own
 *	   so that Vault's traffic never waits behind it) pinned to that
 *	   address: CURLOPT_CONNECT_TO, so curl never resolves a name;
 *	   TLS is verified against the CA file of the types whose values
 *	   the hop carries (one file for all of them, req_ca_file), else
 *	   request.ca_file, else the system store
 *	4. stream the status text, each header value and the body through
 *	   the scrubber (scrub.h) as they arrive
 *	5. a 3xx with follow_redirects: the next hop (req_redirect); else
 *	   the answer
 *
 * Connection reuse and pinning: each request has a connection of its
 * own, closed when it ends (http.c: a kept connection would keep the
 * response in buffers nobody wipes).  Pinning would survive reuse anyway:
 * curl's connection cache takes the CONNECT_TO target into account
 * (lib/url.c, ConnectionExists: a connection made with conn_to_host is
 * only reused by a transfer whose conn_to_host and conn_to_port are the
 * same), so a connection opened to one checked address is never reused
 * for a transfer pinned to another.
 *
 * Limits: request.max_in_flight in all and request.max_in_flight_per_caller
 * per uid are checked before anything else; a call ends when its caller's
 * connection closes (rpc_request_sink_closed, from conn.c), cancelling
 * its transfer or abandoning its lookup.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "dest.h"
#include "http.h"
#include "log.h"
#include "netaddr.h"
#include "origin.h"
#include "proto.h"
#include "scrub.h"
#include "secbuf.h"
#include "substitute.h"
#include "template.h"

#define REQ_LOCATION_MAX	8192	/* bytes of a Location we follow */

struct req;

/* A lookup in flight; outlives its request if that ends first. */
struct req_dns {
	uv_getaddrinfo_t	 gai;
	struct req		*r;		/* NULL once abandoned */
};

struct req {
	TAILQ_ENTRY(req)	 entry;
	struct sub		*s;
	struct broker		*b;
	void			*sink_ctx;	/* the caller's connection */
	uid_t			 uid;
	bool			 linked;	/* on req_list */
	bool			 ended;

	unsigned		 timeout_ms;
	size_t			 max_bytes;
	bool			 follow;
	const char		*ca_file;	/* the types'; NULL: none */
	uint64_t		 deadline;	/* uv_now, the whole call */
	unsigned		 hops;		/* redirects followed */

	/* The hop being made. */
	struct secbuf		 url;		/* NUL-terminated */
	struct origin		 o;
	char			*origin;	/* normal form */
	char			 method[40];
	bool			 carry;		/* the hop carries values */
	bool			 with_body;
	struct req_dns		*dns;
	uv_timer_t		 timer;		/* the lookup's deadline */
	bool			 timer_on;	/* initialised: close it */
	unsigned		 dns_wait;	/* ms the lookup may take */
	bool			 sent;		/* substituted: in a hop */
	struct http_req		*hr;
	struct secbuf		*hlines;	/* "Name: value", wiped */
	size_t			 nhlines;

	/* The response of the hop. */
	struct scrub		*scrub;
	size_t			 scrub_base;	/* count before this hop */
	long			 status;
	struct secbuf		 reason;
	struct secbuf		 hdrs;		/* records, see req_on_header */
	size_t			 nhdrs;
	size_t			 last_vlen;	/* offset: last value's length */
	struct secbuf		 body;
	struct scrub_stream	*body_st;
	struct secbuf		 location;	/* raw, unscrubbed: not sent */
	struct cb_error		 err;		/* why a callback aborted */
};

static TAILQ_HEAD(, req) req_list = TAILQ_HEAD_INITIALIZER(req_list);
static unsigned		 req_count;

static void	req_hop(struct req *);
static void	req_fail(struct req *, int, const struct cb_error *);

/* In-flight requests of uid. */
static unsigned
req_count_uid(uid_t uid)
{
	struct req	*r;
	unsigned	 n = 0;

	TAILQ_FOREACH(r, &req_list, entry)
		if (r->uid == uid)
			n++;
	return n;
}

static void
req_timer_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Free what the hop holds of its request's bytes; the request stays. */
static void
req_hop_clear(struct req *r)
{
	size_t	i;

	if (r->hr != NULL) {
		http_cancel(r->hr);
		r->hr = NULL;
	}
	if (r->dns != NULL) {
		/* The lookup cannot be stopped: its callback frees it. */
		r->dns->r = NULL;
		r->dns = NULL;
	}
	if (r->timer_on)
		uv_timer_stop(&r->timer);
	for (i = 0; i < r->nhlines; i++)
		secbuf_free(&r->hlines[i]);
	free(r->hlines);
	r->hlines = NULL;
	r->nhlines = 0;
}

/* Drop what a response gave so far (a new one, or a redirect). */
static void
req_response_clear(struct req *r)
{
	if (r->body_st != NULL) {
		scrub_stream_free(r->body_st);
		r->body_st = NULL;
	}
	r->status = 0;
	secbuf_reset(&r->reason);
	secbuf_reset(&r->hdrs);
	r->nhdrs = 0;
	secbuf_reset(&r->body);
	secbuf_reset(&r->location);
}

/* sub_free's hook: wipe and free the request (s goes with it). */
static void
req_free(void *arg)
{
	struct req	*r = arg;

	if (r == NULL)
		return;
	req_hop_clear(r);
	req_response_clear(r);
	if (r->linked) {
		TAILQ_REMOVE(&req_list, r, entry);
		req_count--;
	}
	if (r->scrub != NULL)
		scrub_free(r->scrub);
	secbuf_free(&r->url);
	secbuf_free(&r->reason);
	secbuf_free(&r->hdrs);
	secbuf_free(&r->body);
	secbuf_free(&r->location);
	free(r->origin);
	if (r->timer_on) {
		/* The handle's memory goes in its close callback. */
		r->timer.data = r;
		uv_close((uv_handle_t *)&r->timer, req_timer_closed);
		return;
	}
	free(r);
}

/* End the call: rpc_finish with what is packed, or the error. */
static void
req_end(struct req *r, int rc, const struct cb_error *err)
{
	struct rpc_call	*call = r->s->call;

	if (r->ended)
		return;
	r->ended = true;
	req_hop_clear(r);
	rpc_finish(call, rc, err);
	sub_free(r->s);
}

static void
req_fail(struct req *r, int rc, const struct cb_error *err)
{
	req_end(r, rc, err);
}

/* Record a contacted origin in the audit line. */
static void
req_audit_origin(struct req *r)
{
	rpc_audit_origin(r->s->call, r->origin);
}

/* tpl_render lookup: the opened value of an id. */
static int
req_lookup(void *arg, const char *id, const uint8_t **val, size_t *len,
    struct cb_error *err)
{
	struct sub	*s = arg;
	size_t		 i;

	for (i = 0; i < s->ncreds; i++)
		if (strcmp(s->creds[i].decl->id, id) == 0) {
			*val = s->creds[i].plain.data;
			*len = s->creds[i].plain.len;
			return 0;
		}
	return cb_error_set(err, CB_EINTERNAL, "credential '%s' vanished",
	    id);
}

/*
 * Give the scrubber what each placeholder of t rendered to, its whole
 * filter chain applied: rendered alone, as a template of one placeholder.
 */
static int
req_add_rendered(struct req *r, const struct tpl *t, struct cb_error *err)
{
	struct tpl	 one;
	struct tpl_ph	 ph;
	struct secbuf	 out = SECBUF_INIT;
	size_t		 i;
	int		 rc = 0;

	for (i = 0; i < t->nph && rc == 0; i++) {
		if (t->ph[i].nfilters == 0)
			continue;		/* the raw value: added already */
		ph = t->ph[i];
		ph.start = 0;
		ph.end = t->ph[i].end - t->ph[i].start;
		one.text = t->text + t->ph[i].start;
		one.len = ph.end;
		one.ph = &ph;
		one.nph = 1;
		if ((rc = tpl_render(&one, TPL_BODY, req_lookup, r->s, &out,
		    err)) == 0)
			rc = scrub_add_rendered(r->scrub, ph.id, out.data,
			    out.len, err);
		secbuf_reset(&out);
	}
	secbuf_free(&out);
	return rc;
}

/*
 * Text from the upstream as a msgpack str, or as bin when it is not valid
 * UTF-8 (obs-text in a header): every client must be able to decode a str.
 */
static void
req_pack_text(msgpack_packer *pk, const void *p, size_t n)
{
	if (tpl_utf8_valid(p, n)) {
		msgpack_pack_str(pk, n);
		msgpack_pack_str_body(pk, p, n);
	} else {
		msgpack_pack_bin(pk, n);
		msgpack_pack_bin_body(pk, p, n);
	}
}

/* Pack the answer of the last hop. */
static int
req_pack(struct req *r, struct cb_error *err)
{
	msgpack_packer	*pk = &r->s->call->pk;
	const uint8_t	*p = r->hdrs.data;
	size_t		 off = 0, i, nl, vl;
	int		 rc;

	if (r->body_st != NULL) {
		rc = scrub_stream_end(r->body_st, &r->body, err);
		r->body_st = NULL;
		if (rc != 0)
			return rc;
	}
	msgpack_pack_map(pk, 6);
	proto_pack_cstr(pk, "status");
	msgpack_pack_long(pk, r->status);
	proto_pack_cstr(pk, "reason");
	req_pack_text(pk, r->reason.data, r->reason.len);
	proto_pack_cstr(pk, "headers");
	msgpack_pack_array(pk, r->nhdrs);
	for (i = 0; i < r->nhdrs; i++) {
		memcpy(&nl, p + off, sizeof(nl));
		off += sizeof(nl);
		msgpack_pack_array(pk, 2);
		req_pack_text(pk, p + off, nl);
		off += nl;
		memcpy(&vl, p + off, sizeof(vl));
		off += sizeof(vl);
		req_pack_text(pk, p + off, vl);
		off += vl;
	}
	proto_pack_cstr(pk, "body");
	msgpack_pack_bin(pk, r->body.len);
	msgpack_pack_bin_body(pk, r->body.data, r->body.len);
	proto_pack_cstr(pk, "scrubbed");
	msgpack_pack_uint64(pk, scrub_count(r->scrub) - r->scrub_base);
	sub_pack_used(pk, r->s);
	return 0;
}

/* Scrub one whole field (the reason, a header value) into out. */
static int
req_scrub_field(struct req *r, const char *p, size_t n, struct secbuf *out,
    struct cb_error *err)
{
	struct scrub_stream	*st;
	int			 rc;

	if ((rc = scrub_stream_begin(r->scrub, &st, err)) != 0)
		return rc;
	if ((rc = scrub_feed(st, p, n, out, err)) != 0) {
		scrub_stream_free(st);
		return rc;
	}
	return scrub_stream_end(st, out, err);
}

/*
 * http_header_fn: a status line starts a response (an interim 1xx one
 * may have come before); each header goes into r->hdrs as a record
 * [size_t name length][name][size_t value length][value], the value
 * scrubbed.  A folded continuation extends the last record's value.
 */
static int
req_on_header(void *arg, long status, const char *name, size_t nlen,
    const char *value, size_t vlen)
{
	struct req	*r = arg;
	size_t		 n;
	int		 rc;

	if (name == NULL) {
		req_response_clear(r);
		r->status = status;
		return req_scrub_field(r, value, vlen, &r->reason, &r->err);
	}
	if (nlen == 0) {
		if (r->nhdrs == 0)
			return 0;
		/* The last record's value ends r->hdrs: extend it. */
		if (secbuf_append(&r->hdrs, " ", 1) != 0)
			return cb_error_set(&r->err, CB_EINTERNAL,
			    "out of memory");
		if ((rc = req_scrub_field(r, value, vlen, &r->hdrs,
		    &r->err)) != 0)
			return rc;
	} else {
		if (nlen == 8 && strncasecmp(name, "Location", 8) == 0) {
			secbuf_reset(&r->location);
			if (vlen <= REQ_LOCATION_MAX &&
			    secbuf_append(&r->location, value, vlen) != 0)
				return cb_error_set(&r->err, CB_EINTERNAL,
				    "out of memory");
		}
		n = 0;
		if (secbuf_append(&r->hdrs, &nlen, sizeof(nlen)) != 0 ||
		    secbuf_append(&r->hdrs, name, nlen) != 0 ||
		    secbuf_append(&r->hdrs, &n, sizeof(n)) != 0)
			return cb_error_set(&r->err, CB_EINTERNAL,
			    "out of memory");
		r->last_vlen = r->hdrs.len - sizeof(n);
		r->nhdrs++;
		if ((rc = req_scrub_field(r, value, vlen, &r->hdrs,
		    &r->err)) != 0)
			return rc;
	}
	n = r->hdrs.len - r->last_vlen - sizeof(n);
	memcpy(r->hdrs.data + r->last_vlen, &n, sizeof(n));
	return 0;
}

/* http_data_fn: a piece of the body, through the scrubber. */
static int
req_on_data(void *arg, const void *p, size_t n)
{
	struct req	*r = arg;
	int		 rc;

	if (r->body_st == NULL && (rc = scrub_stream_begin(r->scrub,
	    &r->body_st, &r->err)) != 0)
		return rc;
	return scrub_feed(r->body_st, p, n, &r->body, &r->err);
}

static int	req_redirect(struct req *, bool *);

/* http_done_fn: the hop's transfer ended. */
static void
req_done(void *arg, long status, const struct secbuf *body,
    const struct cb_error *herr)
{
	struct req	*r = arg;
	struct cb_error	 err;
	bool		 followed = false;
	int		 rc;

	(void)body;
	r->hr = NULL;
	cb_error_clear(&err);
	if (herr->code != 0) {
		if (r->err.code != 0)
			req_fail(r, -r->err.code, &r->err);
		else
			req_fail(r, -herr->code, herr);
		return;
	}
	r->status = status;
	r->s->call->audit_status = (int)status;
	if (r->follow && status >= 300 && status <= 399 &&
	    r->location.len > 0) {
		if ((rc = req_redirect(r, &followed)) != 0) {
			req_fail(r, rc, &r->err);
			return;
		}
		if (followed)
			return;
	}
	if ((rc = req_pack(r, &err)) != 0) {
		req_fail(r, rc, &err);
		return;
	}
	req_end(r, 0, &err);
}

/*
 * May the hop connect to a?  A public address: yes.  A special one: only
 * when the call carries values and the destinations of every type it
 * carries name that address (or a block holding it); *type then names
 * the first type that does not.  A redirect hop that no longer carries
 * the values (another origin) is held to the same allowance: the
 * addresses the types name are the only special ones the call may reach.
 */
static bool
req_address_ok(struct req *r, const struct netaddr *a, const char **type)
{
	struct sub	*s = r->s;
	size_t		 i;

	*type = NULL;
	if (netaddr_classify(a) == NETADDR_PUBLIC)
		return true;
	if (s->ncreds == 0)
		return false;
	for (i = 0; i < s->ncreds; i++)
		if (!dest_address_allowed(s->creds[i].type->destinations,
		    s->creds[i].type->ndestinations, r->o.scheme, r->o.port,
		    a)) {
			*type = s->creds[i].type->ident;
			return false;
		}
	return true;
}

/* Refuse the hop: no address of the host may be used. */
static void
req_refuse(struct req *r, const struct netaddr *a, const char *type)
{
	struct cb_error	 err;
	char		 text[NETADDR_STRLEN];
	const char	*cls = netaddr_class_name(netaddr_classify(a));

	netaddr_format(a, text, sizeof(text));
	if (type != NULL && (r->o.ipv4 || r->o.ipv6))
		cb_error_set(&err, CB_EFORBIDDEN, "%s is a %s address, which "
		    "the destinations of type '%s' do not allow", r->o.host,
		    cls, type);
	else if (type != NULL)
		cb_error_set(&err, CB_EFORBIDDEN, "%s resolves to %s (%s), "
		    "which the destinations of type '%s' do not allow",
		    r->o.host, text, cls, type);
	else if (r->o.ipv4 || r->o.ipv6)
		cb_error_set(&err, CB_EFORBIDDEN, "%s is a %s address, and a "
		    "request that carries no credential may only go to public "
		    "addresses", r->o.host, cls);
	else
		cb_error_set(&err, CB_EFORBIDDEN, "%s resolves to %s (%s), and "
		    "a request that carries no credential may only go to "
		    "public addresses", r->o.host, text, cls);
	req_fail(r, -CB_EFORBIDDEN, &err);
}

/* Build "Name: value" lines for the hop (cross-origin: no credential). */
static int
req_header_lines(struct req *r, struct cb_error *err)
{
	struct sub	*s = r->s;
	size_t		 i;

	if ((r->hlines = calloc(s->nheaders + 1, sizeof(*r->hlines))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	for (i = 0; i < s->nheaders; i++) {
		struct sub_header *h = &s->headers[i];
		struct secbuf *l = &r->hlines[r->nhlines];
		bool empty = h->out.len == 0;

		if (!r->carry && h->value.nph > 0)
			continue;
		if (r->hops > 0 && !r->carry && ((h->namelen == 4 &&
		    strncasecmp(h->name, "Host", 4) == 0)))
			continue;
		if (!r->with_body && ((h->namelen == 12 &&
		    strncasecmp(h->name, "Content-Type", 12) == 0) ||
		    (h->namelen == 14 &&
		    strncasecmp(h->name, "Content-Length", 14) == 0)))
			continue;
		/* curl sends "Name;" as an empty header, "Name:" as none. */
		if (secbuf_append(l, h->name, h->namelen) != 0 ||
		    secbuf_append(l, empty ? ";" : ": ", empty ? 1 : 2) != 0 ||
		    secbuf_append(l, h->out.data, h->out.len) != 0 ||
		    secbuf_append(l, "", 1) != 0)
			return cb_error_set(err, CB_EINTERNAL, "out of memory");
		r->nhlines++;
	}
	return 0;
}

/*
 * The HTTP client of requests, made on first use: its own multi handle
 * and connection cache, so that Vault's requests never queue behind a
 * slow upstream, and no connection of one is ever reused by the other.
 */
static int
req_http(struct broker *b, struct cb_error *err)
{
	int	rc;

	if (b->http_out != NULL)
		return 0;
	if (b->stopping)
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "the broker is stopping");
	/* main.c makes it at start, with its limits; a test may not. */
	if ((rc = http_init(b->loop, &b->http_out, err)) != 0)
		return rc;
	return 0;
}

/* Send the hop to the checked address a. */
static void
req_send(struct req *r, const struct netaddr *a)
{
	struct sub	*s = r->s;
	struct broker	*b = r->b;
	struct http_opts o;
	struct cb_error	 err;
	char		 text[NETADDR_STRLEN], to[NETADDR_STRLEN + 16];
	char		**lines;
	uint64_t	 now = uv_now(b->loop);
	size_t		 i;

	if (r->timer_on)
		uv_timer_stop(&r->timer);
	if (now >= r->deadline) {
		cb_error_set(&err, CB_EUNAVAILABLE, "request timed out after "
		    "%u ms resolving %s", r->timeout_ms, r->o.host);
		req_fail(r, -CB_EUNAVAILABLE, &err);
		return;
	}
	netaddr_format(a, text, sizeof(text));
	snprintf(to, sizeof(to), "::%s%s%s:%u", a->family == AF_INET6 ?
	    "[" : "", text, a->family == AF_INET6 ? "]" : "", r->o.port);
	if (req_header_lines(r, &err) != 0) {
		req_fail(r, -err.code, &err);
		return;
	}
	if ((lines = calloc(r->nhlines + 1, sizeof(*lines))) == NULL) {
		cb_error_set(&err, CB_EINTERNAL, "out of memory");
		req_fail(r, -CB_EINTERNAL, &err);
		return;
	}
	for (i = 0; i < r->nhlines; i++)
		lines[i] = (char *)r->hlines[i].data;
	memset(&o, 0, sizeof(o));
	o.method = r->method;
	o.url = secbuf_str(&r->url);
	if (r->with_body) {
		o.body = s->body_out.len > 0 ? (const void *)s->body_out.data :
		    (const void *)"";
		o.body_len = s->body_out.len;
	}
	/* A hop without the values gets no trust the types brought. */
	o.ca_file = r->carry && r->ca_file != NULL ? r->ca_file :
	    b->conf->request_ca_file;
	o.timeout_ms = (unsigned)(r->deadline - now);
	o.connect_timeout_ms = b->conf->request_connect_timeout * 1000;
	o.max_response = r->max_bytes;
	o.raw = true;
	o.hlist = lines;
	o.nhlist = r->nhlines;
	o.connect_to = to;
	o.label = r->origin;
	o.on_header = req_on_header;
	o.on_data = req_on_data;
	o.cb_arg = r;
	cb_error_clear(&r->err);
	req_response_clear(r);
	r->scrub_base = scrub_count(r->scrub);
	req_audit_origin(r);
	if (req_http(b, &err) != 0 ||
	    http_start(b->http_out, &o, req_done, r, &r->hr, &err) != 0) {
		free(lines);
		req_fail(r, -err.code, &err);
		return;
	}
	free(lines);
}

/* The lookup of the hop's host answered (or failed). */
static void
req_resolved(uv_getaddrinfo_t *gai, int status, struct addrinfo *res)
{
	struct req_dns		*d = gai->data;
	struct req		*r = d->r;
	struct addrinfo		*ai;
	struct netaddr		 a, first;
	struct cb_error		 err;
	const char		*type = NULL, *t;
	bool			 any = false;

	free(d);
	if (r == NULL) {
		uv_freeaddrinfo(res);
		return;
	}
	r->dns = NULL;
	if (status != 0) {
		uv_freeaddrinfo(res);
		cb_error_set(&err, CB_EUNAVAILABLE, "cannot resolve %s: %s",
		    r->o.host, uv_strerror(status));
		req_fail(r, -CB_EUNAVAILABLE, &err);
		return;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if (netaddr_from_sockaddr(ai->ai_addr, &a, NULL) != 0)
			continue;
		if (req_address_ok(r, &a, &t)) {
			uv_freeaddrinfo(res);
			req_send(r, &a);
			return;
		}
		if (!any) {
			first = a;
			type = t;
			any = true;
		}
	}
	uv_freeaddrinfo(res);
	if (!any) {
		cb_error_set(&err, CB_EUNAVAILABLE, "%s has no IPv4 or IPv6 "
		    "address", r->o.host);
		req_fail(r, -CB_EUNAVAILABLE, &err);
		return;
	}
	req_refuse(r, &first, type);
}

/* The lookup took longer than request.connect_timeout (or the call's). */
static void
req_dns_timeout(uv_timer_t *t)
{
	struct req	*r = t->data;
	struct cb_error	 err;

	cb_error_set(&err, CB_EUNAVAILABLE, "request timed out after %u ms "
	    "resolving %s", r->dns_wait, r->o.host);
	req_fail(r, -CB_EUNAVAILABLE, &err);
}

/* Start the hop whose URL, method and carry are set. */
static void
req_hop(struct req *r)
{
	struct broker		*b = r->b;
	struct addrinfo		 hints;
	struct netaddr		 a;
	struct cb_error		 err;
	const char		*type;
	char			 host[ORIGIN_HOST_MAX + 1];
	uint64_t		 now = uv_now(b->loop), wait;
	size_t			 n;
	int			 rc;

	free(r->origin);
	r->origin = NULL;
	if ((rc = origin_parse(secbuf_str(&r->url), r->url.len - 1,
	    ORIGIN_URL, &r->o, &err)) != 0 ||
	    (rc = origin_format(&r->o, &r->origin, &err)) != 0) {
		req_fail(r, rc, &err);
		return;
	}
	/* A literal is not looked up: it is the address. */
	snprintf(host, sizeof(host), "%s", r->o.host);
	n = strlen(host);
	if (r->o.ipv6 && n >= 2 && netaddr_parse(host + 1, n - 2, &a,
	    NULL) == 0)
		goto literal;
	if (r->o.ipv4 && netaddr_parse(host, n, &a, NULL) == 0)
		goto literal;

	if (!r->timer_on) {
		uv_timer_init(b->loop, &r->timer);
		r->timer_on = true;
	}
	r->timer.data = r;
	wait = b->conf->request_connect_timeout * 1000;
	if (r->deadline <= now)
		wait = 0;
	else if (r->deadline - now < wait)
		wait = r->deadline - now;
	if ((r->dns = calloc(1, sizeof(*r->dns))) == NULL) {
		cb_error_set(&err, CB_EINTERNAL, "out of memory");
		req_fail(r, -CB_EINTERNAL, &err);
		return;
	}
	r->dns->r = r;
	r->dns->gai.data = r->dns;
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = uv_getaddrinfo(b->loop, &r->dns->gai, req_resolved, host,
	    NULL, &hints)) != 0) {
		free(r->dns);
		r->dns = NULL;
		cb_error_set(&err, CB_EUNAVAILABLE, "cannot resolve %s: %s",
		    host, uv_strerror(rc));
		req_fail(r, -CB_EUNAVAILABLE, &err);
		return;
	}
	r->dns_wait = (unsigned)wait;
	uv_timer_start(&r->timer, req_dns_timeout, wait, 0);
	return;

literal:
	if (!req_address_ok(r, &a, &type)) {
		req_refuse(r, &a, type);
		return;
	}
	req_send(r, &a);
}

/*
 * Resolve a Location (rel) against the current URL (base, absolute) into
 * out (NUL-terminated): an absolute URL as it is; "//host..." with the
 * base's scheme; "/path" with the base's origin; "?query" with the base's
 * path; anything else relative to the base's directory.  Dot segments are
 * left for the server.
 */
static int
req_resolve_url(const char *base, size_t blen, const char *rel, size_t rlen,
    struct secbuf *out)
{
	const char	*p, *auth_end, *path_end, *slash;
	size_t		 i;

	secbuf_reset(out);
	for (i = 0; i < rlen && rel[i] != ':' && rel[i] != '/' &&
	    rel[i] != '?' && rel[i] != '#'; i++)
		;
	if (i < rlen && rel[i] == ':' && i > 0)		/* scheme: */
		return secbuf_set_str(out, rel, rlen);
	p = memchr(base, ':', blen);
	if (p == NULL || (size_t)(p - base) + 3 > blen)
		return -1;
	if (rlen >= 2 && rel[0] == '/' && rel[1] == '/') {
		if (secbuf_append(out, base, (size_t)(p - base) + 1) != 0 ||
		    secbuf_append(out, rel, rlen) != 0)
			return -1;
		return secbuf_append(out, "", 1);
	}
	auth_end = p + 3;
	while (auth_end < base + blen && *auth_end != '/' &&
	    *auth_end != '?' && *auth_end != '#')
		auth_end++;
	path_end = auth_end;
	while (path_end < base + blen && *path_end != '?' && *path_end != '#')
		path_end++;
	if (rlen > 0 && rel[0] == '/')
		i = (size_t)(auth_end - base);
	else if (rlen == 0 || rel[0] == '?' || rel[0] == '#')
		i = (size_t)(path_end - base);
	else {
		slash = NULL;
		for (p = auth_end; p < path_end; p++)
			if (*p == '/')
				slash = p;
		if (slash == NULL) {
			if (secbuf_append(out, base, (size_t)(auth_end -
			    base)) != 0 || secbuf_append(out, "/", 1) != 0)
				return -1;
			i = 0;
		} else
			i = (size_t)(slash - base) + 1;
	}
	if ((i > 0 && secbuf_append(out, base, i) != 0) ||
	    secbuf_append(out, rel, rlen) != 0)
		return -1;
	return secbuf_append(out, "", 1);
}

/*
 * A 3xx answered a hop and redirects are followed: make the next hop, or
 * leave *followed false to return the 3xx as it is.  Credentials never
 * cross origins: a hop to another origin than the first carries no header
 * whose template had a placeholder, and no body that had one; 301, 302
 * (for POST) and 303 become a GET without body, as browsers do; a
 * cross-origin 307 or 308 that would have to drop a credential-carrying
 * body is not followed.
 */
static int
req_redirect(struct req *r, bool *followed)
{
	struct sub	*s = r->s;
	struct secbuf	 next = SECBUF_INIT;
	struct origin	 o;
	bool		 same, drop_body = false;
	int		 rc;

	*followed = false;
	if (r->hops >= r->b->conf->request_max_redirects)
		return 0;
	if (r->location.len == 0 || memchr(r->location.data, '\0',
	    r->location.len) != NULL)
		return 0;
	if (req_resolve_url(secbuf_str(&r->url), r->url.len - 1,
	    (const char *)r->location.data, r->location.len, &next) != 0) {
		secbuf_free(&next);
		return cb_error_set(&r->err, CB_EINTERNAL, "out of memory");
	}
	if ((rc = origin_parse(secbuf_str(&next), next.len - 1, ORIGIN_URL,
	    &o, &r->err)) != 0) {
		secbuf_free(&next);
		cb_error_set(&r->err, CB_EUNAVAILABLE, "a redirect from %s "
		    "points to a URL the broker does not follow (only http "
		    "and https URLs without userinfo)", r->origin);
		return -CB_EUNAVAILABLE;
	}
	/* The origin the request was first sent to? */
	same = origin_equal(&o, &s->url_origin);
	if (r->status == 303 || ((r->status == 301 || r->status == 302) &&
	    strcasecmp(r->method, "POST") == 0)) {
		if (strcasecmp(r->method, "HEAD") != 0)
			snprintf(r->method, sizeof(r->method), "GET");
		drop_body = true;
	} else if (!same && s->body != NULL && s->body_tpl.nph > 0 &&
	    r->with_body) {
		/* 307/308 keep the body, which may not cross origins. */
		secbuf_free(&next);
		return 0;
	}
	if (drop_body || (!same && s->body != NULL && s->body_tpl.nph > 0))
		r->with_body = false;
	r->carry = same && s->ncreds > 0;
	r->hops++;
	secbuf_free(&r->url);
	secbuf_move(&r->url, &next);
	req_hop_clear(r);
	*followed = true;
	req_hop(r);
	return 0;
}

/*
 * The CA file that TLS of the hops carrying values is verified against:
 * that of the types of the values, which must all have the same one (a
 * type without one differs from a type with one: neither's values may
 * go where only the other's trust holds).  NULL: none.
 */
static int
req_ca_file(struct req *r, struct cb_error *err)
{
	struct sub	*s = r->s;
	const char	*a, *b;
	size_t		 i;

	r->ca_file = NULL;
	if (s->ncreds == 0)
		return 0;
	a = s->creds[0].type->ca_file;
	for (i = 1; i < s->ncreds; i++) {
		b = s->creds[i].type->ca_file;
		if ((a == NULL) != (b == NULL) || (a != NULL &&
		    strcmp(a, b) != 0))
			return cb_error_set(err, CB_EBADREQ, "the credentials "
			    "of this request come from types with different "
			    "CA files: %s (%s), %s (%s)",
			    s->creds[0].type->ident, a != NULL ? a :
			    "no CA file", s->creds[i].type->ident, b != NULL ?
			    b : "no CA file");
	}
	r->ca_file = a;
	return 0;
}

/*
 * sub_then_fn: the request is rendered; send it.  From here the call is
 * ours (RPC_WAIT) until req_end.
 */
static int
req_then(struct sub *s, struct cb_error *err)
{
	struct req	*r = s->arg;
	size_t		 i, j;
	int		 rc;

	if (s->call->sink.ops->is_closed(s->call->sink.ctx))
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "the caller closed the connection");
	if ((rc = req_ca_file(r, err)) != 0)
		return rc;
	/* The scrubber knows every value and every rendered placeholder. */
	if ((rc = scrub_new(&r->scrub, err)) != 0)
		return rc;
	for (i = 0; i < s->ncreds; i++)
		if ((rc = scrub_add_value(r->scrub, s->creds[i].decl->id,
		    s->creds[i].plain.data, s->creds[i].plain.len, err)) != 0)
			return rc;
	if ((rc = req_add_rendered(r, &s->url_tpl, err)) != 0)
		return rc;
	for (j = 0; j < s->nheaders; j++)
		if ((rc = req_add_rendered(r, &s->headers[j].value, err)) != 0)
			return rc;
	if (s->body != NULL && (rc = req_add_rendered(r, &s->body_tpl,
	    err)) != 0)
		return rc;
	if ((rc = scrub_compile(r->scrub, err)) != 0)
		return rc;

	if (secbuf_set_str(&r->url, (const char *)s->url_out.data,
	    s->url_out.len) != 0)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	snprintf(r->method, sizeof(r->method), "%.*s",
	    (int)s->method->via.str.size, s->method->via.str.ptr);
	r->carry = s->ncreds > 0;
	r->with_body = s->body != NULL;
	r->sent = true;
	r->deadline = uv_now(r->b->loop) + r->timeout_ms;
	req_hop(r);
	return RPC_WAIT;
}

/* request {component, request, timeout_ms?, max_response_bytes?,
 *     follow_redirects?} */
int
rpc_request(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "component", "request",
	    "timeout_ms", "max_response_bytes", "follow_redirects", NULL };
	const struct conf	*conf = call->broker->conf;
	struct req		*r;
	struct sub		*s;
	int64_t			 v;
	unsigned		 mine;
	int			 rc;

	if (!conf->request_enabled)
		return cb_error_set(err, CB_ENOTCONFIGURED, "this broker does "
		    "not send requests (request.enabled is off)");
	/* Limits first: a refused call costs nothing. */
	mine = req_count_uid(call->peer->uid);
	if (req_count >= conf->request_max_inflight)
		return cb_error_set(err, CB_EUNAVAILABLE, "too many requests "
		    "in flight: %u of %u in all", req_count,
		    conf->request_max_inflight);
	if (mine >= conf->request_max_inflight_caller)
		return cb_error_set(err, CB_EUNAVAILABLE, "too many requests "
		    "in flight: %u of %u for this caller", mine,
		    conf->request_max_inflight_caller);
	if ((rc = proto_check_keys(params, keys, err)) != 0)
		return rc;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	r->b = call->broker;
	r->uid = call->peer->uid;
	r->sink_ctx = call->sink.ctx;
	r->timeout_ms = conf->request_timeout * 1000;
	r->max_bytes = conf->request_max_response;
	if ((rc = proto_get_int(params, "timeout_ms", false, &v, err)) < 0)
		goto fail;
	if (rc == 0 && (v < 1 || v > (int64_t)r->timeout_ms)) {
		rc = cb_error_set(err, CB_EBADREQ, "timeout_ms must be from 1 "
		    "to %u (request.timeout)", r->timeout_ms);
		goto fail;
	}
	if (rc == 0)
		r->timeout_ms = (unsigned)v;
	if ((rc = proto_get_int(params, "max_response_bytes", false, &v,
	    err)) < 0)
		goto fail;
	if (rc == 0 && (v < 1 || (uint64_t)v > r->max_bytes)) {
		rc = cb_error_set(err, CB_EBADREQ, "max_response_bytes must be "
		    "from 1 to %zu (request.max_response_size)", r->max_bytes);
		goto fail;
	}
	if (rc == 0)
		r->max_bytes = (size_t)v;
	if ((rc = proto_get_bool(params, "follow_redirects", false,
	    &r->follow, err)) < 0)
		goto fail;
	if ((s = sub_new(call, req_then, r)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto fail;
	}
	r->s = s;
	s->arg_free = req_free;
	TAILQ_INSERT_TAIL(&req_list, r, entry);
	r->linked = true;
	req_count++;
	return sub_run(s, params, err);
fail:
	free(r);
	return rc;
}

void
rpc_request_sink_closed(void *ctx)
{
	struct req	*r;
	struct cb_error	 err;

	/* Ending one may close the connection again and come back here. */
again:
	TAILQ_FOREACH(r, &req_list, entry)
		if (r->sink_ctx == ctx && r->sent && !r->ended) {
			cb_error_set(&err, CB_EUNAVAILABLE,
			    "the caller closed the connection");
			req_end(r, -CB_EUNAVAILABLE, &err);
			goto again;
		}
}

unsigned
rpc_request_count(void)
{
	return req_count;
}

/*
 * rpc-substitute: the broker's reason to exist (SPEC section 5).  A
 * component sends a request template and says who it is; the broker
 * decides whose credentials apply, fills the placeholders, and returns the
 * request.
 *
 * The order is chosen so that plaintext exists for as short a time as
 * possible and never on an error path that could have been taken earlier:
 *
 *	1. parse the component and find the subject (5.1); maybe "skipped"
 *	2. parse every template (URL, header values, body); check the URL
 *	   shape, that every id is declared, that header names are plain,
 *	   that the templates' own text holds no control characters, and
 *	   that a request carrying a credential has no routing header
 *	   naming another destination
 *	3. resolve each referenced type, check its destinations against the
 *	   URL's origin, and fetch the sealed values (still sealed): the
 *	   subject's own value, else the account the subject is linked to,
 *	   else the type's default account (SPEC 10)
 *	4. only now decrypt, bound the reply's size from the value lengths,
 *	   render, and pack the reply into a wiping buffer
 *	5. wipe every decrypted value and every rendered buffer
 *
 * Steps 1 to 4a are shared with request (substitute.h), which sends the
 * rendered request itself instead of packing it.
 *
 * With dry_run, step 4 renders the mask "~masked-ID~" (through the same
 * filters) instead of each value, skips the structure checks, and decrypts
 * nothing; "used" then says which values are filled, and a value that is
 * not set is not an error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "keep.h"
#include "origin.h"
#include "proto.h"
#include "seal.h"
#include "secbuf.h"
#include "store.h"
#include "subject.h"
#include "substitute.h"
#include "template.h"
#include "url.h"
#include "values.h"

#define SUB_HEADERS_MAX		128
#define SUB_METHOD_MAX		32
#define SUB_HNAME_MAX		256
#define SUB_HNAME_SHOW		64	/* header name bytes in a message */
#define SUB_WHAT_MAX		(SUB_HNAME_SHOW + 48)
/* msgpack framing of the reply around its strings: a generous bound. */
#define SUB_REPLY_FIXED		256
#define SUB_REPLY_PER_HEADER	16
#define SUB_REPLY_PER_CRED	(64 + 2 * STORE_IDENT_MAX + TPL_ID_MAX)

/* Is s a token (RFC 9110 tchar)? */
static bool
sub_token(const char *s, size_t len)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	size_t	i;

	if (len == 0)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= '0' && s[i] <= '9') ||
		    (s[i] != '\0' && strchr(extra, s[i]) != NULL)))
			return false;
	return true;
}

/* A header name that is not a token: say what is wrong with it. */
static int
sub_bad_name(size_t i, const char *s, size_t len, struct cb_error *err)
{
	char	q[SUB_HNAME_SHOW + 4];
	size_t	j;

	proto_quote(s, len, q, sizeof(q), false);
	if (len == 0)
		return cb_error_set(err, CB_EBADREQ, "request.headers[%zu]: "
		    "the header name is empty", i);
	if (len > SUB_HNAME_MAX)
		return cb_error_set(err, CB_EBADREQ, "request.headers[%zu] "
		    "'%s': the header name is longer than %d bytes", i, q,
		    SUB_HNAME_MAX);
	for (j = 0; j < len; j++) {
		unsigned char c = (unsigned char)s[j];

		if (c < 0x20 || c == 0x7f)
			return cb_error_set(err, CB_EBADREQ,
			    "request.headers[%zu] '%s': the header name "
			    "contains the control character 0x%02x", i, q, c);
	}
	if (s[0] == ':')
		return cb_error_set(err, CB_EBADREQ, "request.headers[%zu] "
		    "'%s': a pseudo-header is not a valid header name; the URL "
		    "says where the request goes", i, q);
	return cb_error_set(err, CB_EBADREQ, "request.headers[%zu] '%s': not a "
	    "valid header name (an HTTP token; placeholders are only "
	    "allowed in values)", i, q);
}

/* Text bytes of a str or bin object, or NULL. */
static const char *
sub_bytes(const msgpack_object *o, size_t *len)
{
	if (o->type == MSGPACK_OBJECT_STR) {
		*len = o->via.str.size;
		return o->via.str.ptr;
	}
	if (o->type == MSGPACK_OBJECT_BIN) {
		*len = o->via.bin.size;
		return o->via.bin.ptr;
	}
	return NULL;
}

/* The declaration for a placeholder id, or an error naming it. */
static int
sub_declared(struct sub *s, const struct tpl *t, struct cb_error *err)
{
	size_t	i, j;

	for (i = 0; i < t->nph; i++) {
		const struct comp_cred *d = component_find(&s->comp,
		    t->ph[i].id, strlen(t->ph[i].id));
		bool brace = t->text[t->ph[i].start] == '{';

		if (d == NULL)
			return cb_error_set(err, CB_EBADREQ, "placeholder "
			    "%s.credentials.%s%s names a credential that the "
			    "%s does not declare", brace ? "{{" : "<<",
			    t->ph[i].id, brace ? "}}" : ">>",
			    component_kind_name(s->comp.kind));
		for (j = 0; j < s->ncreds; j++)
			if (s->creds[j].decl == d)
				break;
		if (j == s->ncreds) {
			memset(&s->creds[j], 0, sizeof(s->creds[j]));
			s->creds[j].decl = d;
			s->ncreds++;
		}
	}
	return 0;
}

/* Step 2: read and parse request.{method, url, headers, body}. */
static int
sub_parse_templates(struct sub *s, const msgpack_object *req,
    struct cb_error *err)
{
	static const char *const keys[] = { "method", "url", "headers",
	    "body", NULL };
	const msgpack_object	*h;
	const char		*p;
	char			 q[SUB_HNAME_SHOW + 4], what[SUB_WHAT_MAX];
	size_t			 len, i;
	int			 rc;
	enum tpl_syntax		 syntax;

	syntax = s->call->broker->conf->substitute_syntax;
	if (req == NULL || req->type != MSGPACK_OBJECT_MAP)
		return cb_error_set(err, CB_EBADREQ,
		    "parameter 'request' must be a map");
	if ((rc = proto_check_keys(req, keys, err)) != 0)
		return rc;
	s->method = proto_map_get(req, "method");
	if (s->method == NULL || s->method->type != MSGPACK_OBJECT_STR ||
	    s->method->via.str.size > SUB_METHOD_MAX ||
	    !sub_token(s->method->via.str.ptr, s->method->via.str.size))
		return cb_error_set(err, CB_EBADREQ,
		    "request.method must be an HTTP method name");
	s->url = proto_map_get(req, "url");
	if (s->url == NULL || s->url->type != MSGPACK_OBJECT_STR)
		return cb_error_set(err, CB_EBADREQ,
		    "request.url must be a string");
	if ((rc = tpl_parse_syntax(s->url->via.str.ptr, s->url->via.str.size,
	    syntax, &s->url_tpl, err)) != 0 ||
	    (rc = tpl_check_url_template(&s->url_tpl, err)) != 0 ||
	    (rc = origin_parse(s->url->via.str.ptr, s->url->via.str.size,
	    ORIGIN_URL, &s->url_origin, err)) != 0 ||
	    (rc = tpl_check_literal(&s->url_tpl, TPL_URL, "request.url",
	    err)) != 0)
		return rc;

	h = proto_map_get(req, "headers");
	if (h != NULL && h->type != MSGPACK_OBJECT_NIL) {
		if (h->type != MSGPACK_OBJECT_ARRAY ||
		    h->via.array.size > SUB_HEADERS_MAX)
			return cb_error_set(err, CB_EBADREQ, "request.headers "
			    "must be an array of at most %d [name, value] "
			    "pairs", SUB_HEADERS_MAX);
		s->headers = calloc(h->via.array.size + 1,
		    sizeof(*s->headers));
		if (s->headers == NULL)
			return cb_error_set(err, CB_EINTERNAL, "out of memory");
		for (i = 0; i < h->via.array.size; i++) {
			const msgpack_object *pair = &h->via.array.ptr[i];
			struct sub_header *sh = &s->headers[i];

			if (pair->type != MSGPACK_OBJECT_ARRAY ||
			    pair->via.array.size != 2 ||
			    pair->via.array.ptr[0].type != MSGPACK_OBJECT_STR ||
			    pair->via.array.ptr[1].type != MSGPACK_OBJECT_STR)
				return cb_error_set(err, CB_EBADREQ,
				    "request.headers[%zu] must be [name, value] "
				    "strings", i);
			sh->name = pair->via.array.ptr[0].via.str.ptr;
			sh->namelen = pair->via.array.ptr[0].via.str.size;
			/* A name is a token: no placeholder can form one. */
			if (sh->namelen > SUB_HNAME_MAX ||
			    !sub_token(sh->name, sh->namelen))
				return sub_bad_name(i, sh->name, sh->namelen,
				    err);
			s->nheaders++;
			if ((rc = tpl_parse_syntax(
			    pair->via.array.ptr[1].via.str.ptr,
			    pair->via.array.ptr[1].via.str.size, syntax,
			    &sh->value, err)) != 0)
				return rc;
			/* The header's name is quoted only for a message. */
			if (tpl_check_literal(&sh->value, TPL_HEADER, "",
			    err) == 0)
				continue;
			snprintf(what, sizeof(what), "request.headers[%zu] "
			    "'%s': the value", i, proto_quote(sh->name,
			    sh->namelen, q, sizeof(q), false));
			return tpl_check_literal(&sh->value, TPL_HEADER, what,
			    err);
		}
	}

	s->body = proto_map_get(req, "body");
	if (s->body != NULL && s->body->type == MSGPACK_OBJECT_NIL)
		s->body = NULL;
	if (s->body != NULL) {
		if ((p = sub_bytes(s->body, &len)) == NULL)
			return cb_error_set(err, CB_EBADREQ,
			    "request.body must be a string or binary");
		if ((rc = tpl_parse_syntax(p, len, syntax, &s->body_tpl,
		    err)) != 0)
			return rc;
	}

	return 0;
}

/* Every id must be declared; collect the distinct ones. */
static int
sub_collect(struct sub *s, struct cb_error *err)
{
	size_t	i;
	int	rc;

	s->creds = calloc(s->comp.ncreds + 1, sizeof(*s->creds));
	if (s->creds == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	if ((rc = sub_declared(s, &s->url_tpl, err)) != 0)
		return rc;
	for (i = 0; i < s->nheaders; i++)
		if ((rc = sub_declared(s, &s->headers[i].value, err)) != 0)
			return rc;
	if (s->body != NULL && (rc = sub_declared(s, &s->body_tpl, err)) != 0)
		return rc;
	return 0;
}

/*
 * A request that carries a credential may not say, besides its URL,
 * where it goes: behind a shared ingress or CDN, a Host header (or a
 * forwarding or override header that the ingress trusts) would deliver
 * the credential to another tenant than the origin the destinations were
 * checked against, and hop-by-hop headers change how the request is
 * framed on the way.  Host (and :authority, which never gets here: it is
 * not a token) may name the URL's own origin, as clients send it anyway.
 */
static int
sub_check_routing(struct sub *s, struct cb_error *err)
{
	struct sub_header	*sh;
	char			 q[SUB_HNAME_SHOW + 4], ob[ORIGIN_TEXT_MAX];
	size_t			 i;

	if (s->ncreds == 0)
		return 0;
	for (i = 0; i < s->nheaders; i++) {
		sh = &s->headers[i];
		if (!url_routing_header(sh->name, sh->namelen))
			continue;
		if (sh->namelen == 4 && strncasecmp(sh->name, "host", 4) == 0) {
			if (sh->value.nph == 0 && url_authority_matches_parsed(
			    &s->url_origin, sh->value.text, sh->value.len))
				continue;
			origin_text(&s->url_origin, ob);
			return cb_error_set(err, CB_EBADREQ,
			    "request.headers[%zu] 'Host': a request that "
			    "carries a credential may only name the URL's "
			    "own host and port (%s) in Host", i, ob);
		}
		return cb_error_set(err, CB_EBADREQ, "request.headers[%zu] "
		    "'%s': a request that carries a credential may not carry "
		    "routing or hop-by-hop headers", i,
		    proto_quote(sh->name, sh->namelen, q, sizeof(q), false));
	}
	return 0;
}

/* A sealed value arrived (or did not). */
static void	sub_got(void *, int, const char *, int64_t,
		    const struct cb_error *);
static void	sub_finish(struct sub *);

/* The value c resolves to now: the subject's own, or c->account's. */
static void
sub_ref(const struct sub_cred *c, struct values_ref *ref)
{
	bool	acct = c->source == CRED_SOURCE_LINKED ||
		    c->source == CRED_SOURCE_DEFAULT;

	ref->type_uuid = c->type->uuid;
	ref->user_uuid = acct ? NULL : c->sub->subject;
	ref->account = acct ? c->account : NULL;
	ref->generation = c->type->generation;
}

/*
 * Step 3: types, destinations, sealed values.  Every value is asked of
 * its type's backend, all at once, and the call goes on in sub_finish()
 * when the last one has answered.
 */
static int
sub_fetch(struct rpc_call *call, struct sub *s, struct cb_error *err)
{
	struct store		*st = call->broker->store;
	struct values		*v;
	struct values_ref	 ref = { 0 };
	struct cb_error		 e;
	char			 ob[ORIGIN_TEXT_MAX];
	size_t			 i;
	int			 rc;

	for (i = 0; i < s->ncreds; i++) {
		struct sub_cred *c = &s->creds[i];

		c->sub = s;
		if ((rc = store_type_borrow(st, c->decl->type, &c->type,
		    err)) != 0) {
			if (rc == -CB_ENOTFOUND || rc == -CB_EBADREQ)
				rc = cb_error_set(err, -rc, "credential '%s': "
				    "type '%s' does not exist",
				    c->decl->id, c->decl->type);
			return rc;
		}
		rpc_audit(call, c->type->ident, NULL);
		v = values_for(call->broker, c->type);
		if (!v->ops->usable(v, &e))
			return cb_error_set(err, e.code, "credential '%s': "
			    "type '%s' is stored in %s: %s", c->decl->id,
			    c->type->ident, v->ops->where, e.msg);
		if (!url_origin_allowed_parsed(&s->url_origin,
		    c->type->destinations, c->type->ndestinations)) {
			origin_text(&s->url_origin, ob);
			return cb_error_set(err, CB_EFORBIDDEN,
			    "credential '%s' (type '%s') may not be sent to %s",
			    c->decl->id, c->type->ident, ob);
		}
	}
	for (i = 0; i < s->ncreds; i++) {
		struct sub_cred *c = &s->creds[i];

		v = values_for(call->broker, c->type);
		sub_ref(c, &ref);
		s->pending++;
		if (v->ops->get(v, &ref, sub_got, c, &e) != 0)
			sub_got(c, -e.code, NULL, 0, &e);
	}
	return 0;
}

static void
sub_got(void *arg, int rc, const char *sealed, int64_t updated_at,
    const struct cb_error *err)
{
	struct sub_cred		*c = arg;
	struct sub		*s = c->sub;
	struct broker		*b = s->call->broker;
	struct values		*v;
	struct values_ref	 ref;
	struct cb_error		 e;

	(void)updated_at;
	if (rc == 0 && (c->sealed = strdup(sealed)) == NULL)
		rc = -CB_EINTERNAL;
	if (rc == 0 && c->source == CRED_SOURCE_NONE)
		c->source = CRED_SOURCE_OWN;
	if (rc == -CB_ENOTFOUND && c->source == CRED_SOURCE_NONE) {
		/*
		 * No value of the subject's own: the account they are
		 * linked to, else the type's default account.  An account
		 * without a value ends it there: nobody is silently given
		 * other credentials than the ones chosen for them.
		 */
		rc = rpc_cred_bound(b, c->type, s->subject, &c->source,
		    c->account, &e);
		if (rc == 0) {
			v = values_for(b, c->type);
			sub_ref(c, &ref);
			if (v->ops->get(v, &ref, sub_got, c, &e) == 0)
				return;		/* same count */
			rc = -e.code;
		}
		if (rc != -CB_ENOTFOUND)
			err = &e;
	}
	if (rc == 0)
		rpc_audit_source(s->call, c->type->ident,
		    rpc_cred_source_name(c->source),
		    c->account[0] != '\0' ? c->account : NULL);
	if (rc == -CB_ENOTFOUND && !s->dry_run && s->rc == 0 &&
	    c->source == CRED_SOURCE_NONE)
		s->rc = cb_error_set(&s->err, CB_ENOTFOUND, "credential '%s' "
		    "(type '%s') is not set for user %s: no own value, no "
		    "link, no default account", c->decl->id, c->type->ident,
		    s->subject);
	else if (rc == -CB_ENOTFOUND && !s->dry_run && s->rc == 0)
		s->rc = cb_error_set(&s->err, CB_ENOTFOUND, "credential '%s' "
		    "(type '%s') is not set for user %s: no own value, and "
		    "the %s account '%s' has no value", c->decl->id,
		    c->type->ident, s->subject,
		    c->source == CRED_SOURCE_LINKED ? "linked" : "default",
		    c->account);
	else if (rc != 0 && rc != -CB_ENOTFOUND && s->rc == 0) {
		s->rc = rc;
		if (err != NULL && err->code != 0)
			cb_error_set(&s->err, err->code, "credential '%s' "
			    "(type '%s'): %.300s", c->decl->id, c->type->ident,
			    err->msg);
		else
			cb_error_set(&s->err, -rc, "out of memory");
	}
	if (--s->pending == 0)
		sub_finish(s);
}

/* Step 4a: decrypt (or mask) every value. */
static int
sub_open(struct rpc_call *call, struct sub *s, struct cb_error *err)
{
	struct values_ref	 ref = { 0 };
	char			 context[VALUES_CONTEXT_MAX];
	size_t			 i;
	int			 rc;

	for (i = 0; i < s->ncreds; i++) {
		struct sub_cred *c = &s->creds[i];

		if (s->dry_run) {
			char mask[TPL_ID_MAX + 16];

			/* Unreserved characters only: filters keep it legible. */
			snprintf(mask, sizeof(mask), "~masked-%s~",
			    c->decl->id);
			if (secbuf_append(&c->plain, mask, strlen(mask)) != 0)
				return cb_error_set(err, CB_EINTERNAL,
				    "out of memory");
			continue;
		}
		sub_ref(c, &ref);
		values_context(values_for(call->broker, c->type), context,
		    sizeof(context), &ref);
		if ((rc = keys_open(call->broker, context, c->sealed,
		    &c->plain, err)) != 0) {
			char why[CB_ERRMSG_MAX];

			memcpy(why, err->msg, sizeof(why));
			return cb_error_set(err, CB_EINTERNAL, "credential "
			    "'%s' (type '%s') of user %s cannot be opened: %.200s",
			    c->decl->id, c->type->ident, s->subject, why);
		}
	}
	return 0;
}

/* tpl_render lookup: the opened value of an id. */
static int
sub_lookup(void *arg, const char *id, const uint8_t **val, size_t *len,
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
 * Refuse, before rendering anything, a reply that could exceed
 * server.max_reply_size: a small template that repeats a large value
 * would otherwise be rendered and packed in full, in locked memory, on
 * the loop.  The bound comes from the value lengths and the filters'
 * largest expansion, so nothing large is ever allocated.
 */
static int
sub_check_size(struct sub *s, struct cb_error *err)
{
	size_t	max = s->call->broker->conf->max_reply;
	size_t	total, n, i;
	int	rc;

	total = SUB_REPLY_FIXED + s->method->via.str.size + strlen(s->subject);
	if ((rc = tpl_render_bound(&s->url_tpl, sub_lookup, s, &n, err)) != 0)
		return rc;
	total = n > SIZE_MAX - total ? SIZE_MAX : total + n;
	for (i = 0; i < s->nheaders && total <= max; i++) {
		if ((rc = tpl_render_bound(&s->headers[i].value, sub_lookup, s,
		    &n, err)) != 0)
			return rc;
		n = n > SIZE_MAX - s->headers[i].namelen -
		    SUB_REPLY_PER_HEADER ? SIZE_MAX :
		    n + s->headers[i].namelen + SUB_REPLY_PER_HEADER;
		total = n > SIZE_MAX - total ? SIZE_MAX : total + n;
	}
	if (s->body != NULL && total <= max) {
		if ((rc = tpl_render_bound(&s->body_tpl, sub_lookup, s, &n,
		    err)) != 0)
			return rc;
		total = n > SIZE_MAX - total ? SIZE_MAX : total + n;
	}
	n = s->ncreds * SUB_REPLY_PER_CRED;
	total = n > SIZE_MAX - total ? SIZE_MAX : total + n;
	if (total > max)
		return cb_error_set(err, CB_ETOOLARGE, "the substituted "
		    "request could be larger than server.max_reply_size "
		    "(%zu bytes): reference fewer or smaller values", max);
	return 0;
}

/* Render URL, headers and body; a dry run renders masks unchecked. */
static int
sub_render(struct sub *s, struct cb_error *err)
{
	enum tpl_ctx	 url_ctx = s->dry_run ? TPL_BODY : TPL_URL;
	enum tpl_ctx	 hdr_ctx = s->dry_run ? TPL_BODY : TPL_HEADER;
	struct origin	 final_origin;
	size_t		 i;
	int		 rc;

	if ((rc = sub_check_size(s, err)) != 0 ||
	    (rc = tpl_render(&s->url_tpl, url_ctx, sub_lookup, s, &s->url_out,
	    err)) != 0)
		return rc;
	for (i = 0; i < s->nheaders; i++)
		if ((rc = tpl_render(&s->headers[i].value, hdr_ctx, sub_lookup,
		    s, &s->headers[i].out, err)) != 0)
			return rc;
	if (s->body != NULL && (rc = tpl_render(&s->body_tpl,
	    s->body->type == MSGPACK_OBJECT_BIN || s->dry_run ? TPL_BODY :
	    TPL_TEXT, sub_lookup, s, &s->body_out, err)) != 0)
		return rc;
	if (s->dry_run)
		return 0;
	/*
	 * The authority is literal text (tpl_check_url_template), so the
	 * final URL has the origin the destinations were checked against.
	 * Check it anyway: this is the last line of defence.
	 */
	rc = origin_parse((const char *)s->url_out.data, s->url_out.len,
	    ORIGIN_URL, &final_origin, err);
	if (rc == 0 && !origin_equal(&final_origin, &s->url_origin))
		rc = cb_error_set(err, CB_EINTERNAL,
		    "substituted URL changed its origin");
	return rc;
}

/* Pack the substituted request (step 4b), into the wiping reply buffer. */
static int
sub_pack(struct sub *s, struct cb_error *err)
{
	msgpack_packer	*pk = &s->call->pk;
	size_t		 i;

	msgpack_pack_map(pk, s->dry_run ? 4 : 3);
	proto_pack_cstr(pk, "request");
	msgpack_pack_map(pk, s->body != NULL ? 4 : 3);
	proto_pack_cstr(pk, "method");
	msgpack_pack_str(pk, s->method->via.str.size);
	msgpack_pack_str_body(pk, s->method->via.str.ptr,
	    s->method->via.str.size);
	proto_pack_cstr(pk, "url");
	msgpack_pack_str(pk, s->url_out.len);
	msgpack_pack_str_body(pk, s->url_out.data, s->url_out.len);
	proto_pack_cstr(pk, "headers");
	msgpack_pack_array(pk, s->nheaders);
	for (i = 0; i < s->nheaders; i++) {
		msgpack_pack_array(pk, 2);
		msgpack_pack_str(pk, s->headers[i].namelen);
		msgpack_pack_str_body(pk, s->headers[i].name,
		    s->headers[i].namelen);
		msgpack_pack_str(pk, s->headers[i].out.len);
		msgpack_pack_str_body(pk, s->headers[i].out.data,
		    s->headers[i].out.len);
	}
	if (s->body != NULL) {
		proto_pack_cstr(pk, "body");
		if (s->body->type == MSGPACK_OBJECT_BIN) {
			msgpack_pack_bin(pk, s->body_out.len);
			msgpack_pack_bin_body(pk, s->body_out.data,
			    s->body_out.len);
		} else {
			msgpack_pack_str(pk, s->body_out.len);
			msgpack_pack_str_body(pk, s->body_out.data,
			    s->body_out.len);
		}
	}
	proto_pack_kv_str(pk, "subject", s->subject);
	sub_pack_used(pk, s);
	if (s->dry_run)
		proto_pack_kv_bool(pk, "dry_run", true);
	(void)err;
	return 0;
}

void
sub_pack_used(msgpack_packer *pk, const struct sub *s)
{
	size_t	i;

	proto_pack_cstr(pk, "used");
	msgpack_pack_array(pk, s->ncreds);
	for (i = 0; i < s->ncreds; i++) {
		const struct sub_cred *c = &s->creds[i];
		const char *src = rpc_cred_source_name(c->source);
		bool acct = c->account[0] != '\0';

		msgpack_pack_map(pk, 3 + (acct ? 1 : 0) + (s->dry_run ? 1 : 0));
		proto_pack_kv_str(pk, "id", s->creds[i].decl->id);
		proto_pack_kv_str(pk, "type", s->creds[i].type->ident);
		/* Where the value came from, never the value. */
		proto_pack_cstr(pk, "source");
		if (src != NULL)
			proto_pack_cstr(pk, src);
		else
			msgpack_pack_nil(pk);
		if (acct)
			proto_pack_kv_str(pk, "account", c->account);
		if (s->dry_run)
			proto_pack_kv_bool(pk, "filled",
			    s->creds[i].sealed != NULL);
	}
}

/* Free what sub_parse_templates made. */
static void
sub_templates_free(struct sub *s)
{
	size_t	i;

	for (i = 0; s->headers != NULL && i < s->nheaders; i++) {
		tpl_free(&s->headers[i].value);
		secbuf_free(&s->headers[i].out);
	}
	free(s->headers);
	s->headers = NULL;
	s->nheaders = 0;
	tpl_free(&s->url_tpl);
	tpl_free(&s->body_tpl);
}

/* Freed substitutions are kept for the next ones, as calls are (keep.h). */
static struct keep	subs_kept;

/* At shutdown: give the kept substitutions back. */
void
sub_release_kept(void)
{
	keep_release(&subs_kept, sizeof(struct sub));
}

/* Step 5: wipe and free everything. */
void
sub_free(struct sub *s)
{
	size_t	i;

	for (i = 0; s->creds != NULL && i < s->ncreds; i++) {
		secbuf_free(&s->creds[i].plain);
		free(s->creds[i].sealed);
		store_type_release(s->creds[i].type);
	}
	free(s->creds);
	sub_templates_free(s);
	secbuf_free(&s->url_out);
	secbuf_free(&s->body_out);
	component_free(&s->comp);
	if (s->arg_free != NULL)
		s->arg_free(s->arg);
	keep_put(&subs_kept, s, sizeof(*s));
}

/*
 * Step 4, once every sealed value is at hand: open, render, and hand the
 * rendered request to the method (RPC_WAIT: the method now owns s).
 */
static int
sub_complete(struct rpc_call *call, struct sub *s, struct cb_error *err)
{
	int	rc;

	if (s->rc != 0) {
		*err = s->err;
		return s->rc;
	}
	if ((rc = sub_open(call, s, err)) != 0 ||
	    (rc = sub_render(s, err)) != 0)
		return rc;
	return s->then(s, err);
}

/*
 * The last Vault read of a waiting call has answered: steps 4 and 5.  The
 * request parsed before the wait is still there: the call owns its bytes.
 */
static void
sub_finish(struct sub *s)
{
	struct rpc_call	*call = s->call;
	struct cb_error	 err;
	int		 rc;

	cb_error_clear(&err);
	if ((rc = sub_complete(call, s, &err)) == RPC_WAIT)
		return;
	rpc_finish(call, rc, &err);
	sub_free(s);
}

struct sub *
sub_new(struct rpc_call *call, sub_then_fn then, void *arg)
{
	struct sub	*s;

	if ((s = keep_take(&subs_kept, sizeof(*s))) == NULL)
		return NULL;
	s->call = call;
	s->then = then;
	s->arg = arg;
	return s;
}

int
sub_run(struct sub *s, const msgpack_object *params, struct cb_error *err)
{
	struct rpc_call	*call = s->call;
	const char	*skip = NULL;
	int		 rc;

	if ((rc = component_parse(proto_map_get(params, "component"),
	    &s->comp, err)) != 0 ||
	    (rc = subject_resolve(&s->comp, &s->subject, &skip, err)) != 0)
		goto done;
	if (s->subject != NULL)
		rpc_audit(call, NULL, s->subject);
	if (skip != NULL) {
		/* SPEC 5.1: a skipped status check is an answer, not an error. */
		msgpack_pack_map(&call->pk, 2);
		proto_pack_kv_bool(&call->pk, "skipped", true);
		proto_pack_kv_str(&call->pk, "reason", skip);
		goto done;
	}
	s->pending = 1;
	if ((rc = sub_parse_templates(s, proto_map_get(params, "request"),
	    err)) != 0 ||
	    (rc = sub_collect(s, err)) != 0 ||
	    (rc = sub_check_routing(s, err)) != 0 ||
	    (rc = sub_fetch(call, s, err)) != 0)
		goto done;
	if (--s->pending > 0)
		return RPC_WAIT;
	if ((rc = sub_complete(call, s, err)) == RPC_WAIT)
		return RPC_WAIT;
done:
	sub_free(s);
	return rc;
}

/* substitute {component, request, dry_run?} */
int
rpc_substitute(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "component", "request",
	    "dry_run", NULL };
	struct sub	*s;
	int		 rc;

	if ((s = sub_new(call, sub_pack, NULL)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = proto_get_bool(params, "dry_run", false, &s->dry_run,
	    err)) < 0) {
		sub_free(s);
		return rc;
	}
	/* A dry run is audited as one, whatever its outcome. */
	call->audit_dry_run = s->dry_run;
	return sub_run(s, params, err);
}

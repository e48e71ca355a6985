/*
 * libcredbroker-substitute: the runner's API, credbroker_substitute() and
 * its dry run: C structures in, one wiping allocation out.  It is built on
 * the call core (credbroker_call(), libcredbroker.c).  It also holds what
 * credbroker_request() (libcredbroker-request.c) shares with it: packing
 * a component and a template, checking and copying strings and the
 * "used" list.
 *
 * The component and request template are packed into a wiping buffer
 * (templates may embed user data), sent with credbroker_call(), and the
 * result is checked in full before anything is copied: a malformed
 * answer is refused as "protocol" without leaving a half-filled result.
 * The copy is one malloc'd block laid out as
 *
 *	struct cb_subst   (the public structure, then the block's size)
 *	headers[]         struct credbroker_header
 *	used[]            struct credbroker_used
 *	strings           every string, each NUL-terminated
 *
 * so that credbroker_substituted_free() can wipe all of it with one
 * OPENSSL_cleanse and a runner has a single thing to release.  The reply
 * the strings were copied from is wiped by credbroker_reply_free() before
 * the call returns.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "credbroker.h"
#include "libcredbroker-int.h"
#include "proto.h"
#include "secbuf.h"

/* The allocation behind a struct credbroker_substituted. */
struct cb_subst {
	struct credbroker_substituted	pub;	/* first: the caller's */
	size_t				size;	/* bytes to wipe */
};

/* The pieces of a checked substitution result (pointers into a reply). */
struct cb_subst_view {
	bool			 skipped;
	bool			 dry_run;
	const msgpack_object	*reason;
	const msgpack_object	*method;
	const msgpack_object	*url;
	const msgpack_object	*headers;	/* array or NULL */
	const msgpack_object	*body;		/* str, bin or NULL */
	const msgpack_object	*subject;
	const msgpack_object	*used;		/* array or NULL */
};


/* Pack n bytes at s as a msgpack str. */
void
cb_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* Pack a C string as a msgpack str. */
void
cb_pack_cstr(msgpack_packer *pk, const char *s)
{
	cb_pack_strn(pk, s, strlen(s));
}

/* Is the buffer valid UTF-8 (no overlongs, surrogates or > U+10FFFF)? */
static bool
cb_utf8_valid(const uint8_t *p, size_t n)
{
	size_t		i = 0, len, k;
	uint32_t	cp, min;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf) {
			len = 2; cp = p[i] & 0x1f; min = 0x80;
		} else if (p[i] >= 0xe0 && p[i] <= 0xef) {
			len = 3; cp = p[i] & 0x0f; min = 0x800;
		} else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
			len = 4; cp = p[i] & 0x07; min = 0x10000;
		} else
			return false;
		if (n - i < len)
			return false;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* Check one list of credential declarations. */
static int
cb_check_decls(const struct credbroker_cred_decl *d, size_t n,
    const char *what, struct credbroker_error *err)
{
	size_t	i;

	if (n > UINT32_MAX || (n > 0 && d == NULL))
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "%s: NULL array or too many entries", what);
	for (i = 0; i < n; i++)
		if (d[i].id == NULL || d[i].type == NULL)
			return cb_fail(err, CREDBROKER_ERR_INVALID,
			    "%s[%zu]: id and type are required", what, i);
	return 0;
}

/* Check the caller's component and request before packing anything. */
int
cb_check_subst_args(const struct credbroker_component *comp,
    const struct credbroker_request *req, struct credbroker_error *err)
{
	size_t	i, vlen;
	int	rc;

	if (comp == NULL || req == NULL)
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "component or request is NULL");
	if (comp->kind == NULL)
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "component.kind is required");
	if ((rc = cb_check_decls(comp->credentials, comp->ncredentials,
	    "component.credentials", err)) != 0 ||
	    (rc = cb_check_decls(comp->service_credentials,
	    comp->nservice_credentials, "component.service_credentials",
	    err)) != 0)
		return rc;
	if (req->method == NULL || req->url == NULL)
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "request.method and request.url are required");
	if (req->nheaders > UINT32_MAX || (req->nheaders > 0 &&
	    req->headers == NULL))
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "request.headers: NULL array or too many entries");
	for (i = 0; i < req->nheaders; i++) {
		if (req->headers[i].name == NULL ||
		    req->headers[i].value == NULL)
			return cb_fail(err, CREDBROKER_ERR_INVALID,
			    "request.headers[%zu]: name and value are "
			    "required", i);
		vlen = req->headers[i].value_len;
		if (vlen == 0)
			vlen = strlen(req->headers[i].value);
		if (vlen > UINT32_MAX || strlen(req->headers[i].name) >
		    UINT32_MAX)
			return cb_fail(err, CREDBROKER_ERR_INVALID,
			    "request.headers[%zu] is too long", i);
	}
	if (req->has_body && (req->body_len > UINT32_MAX ||
	    (req->body_len > 0 && req->body == NULL)))
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "request.body: NULL or too long");
	return 0;
}

/* Pack [{id, type}, ...]. */
static void
cb_pack_decls(msgpack_packer *pk, const struct credbroker_cred_decl *d,
    size_t n)
{
	size_t	i;

	msgpack_pack_array(pk, (uint32_t)n);
	for (i = 0; i < n; i++) {
		msgpack_pack_map(pk, 2);
		cb_pack_cstr(pk, "id");
		cb_pack_cstr(pk, d[i].id);
		cb_pack_cstr(pk, "type");
		cb_pack_cstr(pk, d[i].type);
	}
}

/*
 * Pack a map of 2 + nextra entries and its first two, the params that
 * "substitute" and "request" share:
 *	{component: {kind, initiator?, run_as?, system_account?,
 *	    credentials, external_service?: {credentials}},
 *	 request: {method, url, headers: [[name, value], ...], body?},
 *	 ...}
 * The caller packs the nextra entries that follow.
 */
void
cb_pack_subst(msgpack_packer *pk, const struct credbroker_component *comp,
    const struct credbroker_request *req, uint32_t nextra)
{
	const uint8_t	*body = req->body;
	size_t		 i, vlen;
	uint32_t	 n;

	msgpack_pack_map(pk, 2 + nextra);

	cb_pack_cstr(pk, "component");
	n = 2 + (comp->initiator != NULL) + (comp->run_as != NULL) +
	    (comp->system_account != NULL) + (comp->nservice_credentials > 0);
	msgpack_pack_map(pk, n);
	cb_pack_cstr(pk, "kind");
	cb_pack_cstr(pk, comp->kind);
	if (comp->initiator != NULL) {
		cb_pack_cstr(pk, "initiator");
		cb_pack_cstr(pk, comp->initiator);
	}
	if (comp->run_as != NULL) {
		cb_pack_cstr(pk, "run_as");
		cb_pack_cstr(pk, comp->run_as);
	}
	if (comp->system_account != NULL) {
		cb_pack_cstr(pk, "system_account");
		cb_pack_cstr(pk, comp->system_account);
	}
	cb_pack_cstr(pk, "credentials");
	cb_pack_decls(pk, comp->credentials, comp->ncredentials);
	if (comp->nservice_credentials > 0) {
		cb_pack_cstr(pk, "external_service");
		msgpack_pack_map(pk, 1);
		cb_pack_cstr(pk, "credentials");
		cb_pack_decls(pk, comp->service_credentials,
		    comp->nservice_credentials);
	}

	cb_pack_cstr(pk, "request");
	msgpack_pack_map(pk, req->has_body ? 4 : 3);
	cb_pack_cstr(pk, "method");
	cb_pack_cstr(pk, req->method);
	cb_pack_cstr(pk, "url");
	cb_pack_cstr(pk, req->url);
	cb_pack_cstr(pk, "headers");
	msgpack_pack_array(pk, (uint32_t)req->nheaders);
	for (i = 0; i < req->nheaders; i++) {
		vlen = req->headers[i].value_len;
		if (vlen == 0)
			vlen = strlen(req->headers[i].value);
		msgpack_pack_array(pk, 2);
		cb_pack_cstr(pk, req->headers[i].name);
		cb_pack_strn(pk, req->headers[i].value, vlen);
	}
	if (req->has_body) {
		cb_pack_cstr(pk, "body");
		if (req->body_len == 0)
			cb_pack_strn(pk, "", 0);
		else if (cb_utf8_valid(body, req->body_len))
			cb_pack_strn(pk, req->body, req->body_len);
		else {
			msgpack_pack_bin(pk, req->body_len);
			msgpack_pack_bin_body(pk, req->body, req->body_len);
		}
	}
}

/* Is o a str (with no NUL byte unless nul_ok)? */
bool
cb_is_str(const msgpack_object *o, bool nul_ok)
{
	return o != NULL && o->type == MSGPACK_OBJECT_STR && (nul_ok ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size) == NULL);
}

/* Is o absent or nil? */
bool
cb_is_none(const msgpack_object *o)
{
	return o == NULL || o->type == MSGPACK_OBJECT_NIL;
}

/*
 * Check the "used" list of a result (absent, nil, or an array of {id,
 * type, filled?, source?, account?}); what names the result in messages.
 */
int
cb_used_check(const msgpack_object *u, const char *what,
    struct credbroker_error *err)
{
	const msgpack_object	*o;
	uint32_t		 i;

	if (cb_is_none(u))
		return 0;
	if (u->type != MSGPACK_OBJECT_ARRAY)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "'used' in the %s result is not an array", what);
	for (i = 0; i < u->via.array.size; i++) {
		o = &u->via.array.ptr[i];
		if (o->type != MSGPACK_OBJECT_MAP ||
		    !cb_is_str(proto_map_get(o, "id"), false) ||
		    !cb_is_str(proto_map_get(o, "type"), false) ||
		    (!cb_is_none(proto_map_get(o, "filled")) &&
		    proto_map_get(o, "filled")->type !=
		    MSGPACK_OBJECT_BOOLEAN) ||
		    (!cb_is_none(proto_map_get(o, "source")) &&
		    !cb_is_str(proto_map_get(o, "source"), false)) ||
		    (!cb_is_none(proto_map_get(o, "account")) &&
		    !cb_is_str(proto_map_get(o, "account"), false)))
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "'used' entry %u is not {id, type, filled?, "
			    "source?, account?}", (unsigned)i);
	}
	return 0;
}

/*
 * Check that res has the shape of a substitution result (keys the broker
 * may add later are ignored) and fill v with pointers into it.  No string
 * but the body may contain a NUL byte, so that every other string can be
 * used as a C string without being cut short.
 */
static int
cb_subst_check(const msgpack_object *res, struct cb_subst_view *v,
    struct credbroker_error *err)
{
	const msgpack_object	*o, *req, *h, *u;
	uint32_t		 i;

	memset(v, 0, sizeof(*v));
	if (res == NULL || res->type != MSGPACK_OBJECT_MAP)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the substitution result is not a map");
	o = proto_map_get(res, "skipped");
	if (o != NULL && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean) {
		v->skipped = true;
		v->reason = proto_map_get(res, "reason");
		if (!cb_is_none(v->reason) && !cb_is_str(v->reason, false))
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "the reason of a skipped substitution is not a "
			    "string");
		if (cb_is_none(v->reason))
			v->reason = NULL;
		return 0;
	}
	if (o != NULL && o->type != MSGPACK_OBJECT_BOOLEAN &&
	    o->type != MSGPACK_OBJECT_NIL)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "'skipped' in the substitution result is not a boolean");

	o = proto_map_get(res, "dry_run");
	if (!cb_is_none(o) && o->type != MSGPACK_OBJECT_BOOLEAN)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "'dry_run' in the substitution result is not a boolean");
	v->dry_run = o != NULL && o->type == MSGPACK_OBJECT_BOOLEAN &&
	    o->via.boolean;

	req = proto_map_get(res, "request");
	if (req == NULL || req->type != MSGPACK_OBJECT_MAP)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the substitution result has no request map");
	v->method = proto_map_get(req, "method");
	v->url = proto_map_get(req, "url");
	if (!cb_is_str(v->method, false) || v->method->via.str.size == 0 ||
	    !cb_is_str(v->url, false))
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the substituted request has no method or url string");
	h = proto_map_get(req, "headers");
	if (!cb_is_none(h)) {
		if (h->type != MSGPACK_OBJECT_ARRAY)
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "the substituted headers are not an array");
		for (i = 0; i < h->via.array.size; i++) {
			o = &h->via.array.ptr[i];
			if (o->type != MSGPACK_OBJECT_ARRAY ||
			    o->via.array.size != 2 ||
			    !cb_is_str(&o->via.array.ptr[0], false) ||
			    !cb_is_str(&o->via.array.ptr[1], false))
				return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
				    "substituted header %u is not a pair of "
				    "strings without NUL bytes", (unsigned)i);
		}
		v->headers = h;
	}
	o = proto_map_get(req, "body");
	if (!cb_is_none(o)) {
		if (o->type != MSGPACK_OBJECT_STR &&
		    o->type != MSGPACK_OBJECT_BIN)
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "the substituted body is not a string or binary");
		v->body = o;
	}

	v->subject = proto_map_get(res, "subject");
	if (!cb_is_str(v->subject, false))
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the substitution result has no subject string");
	u = proto_map_get(res, "used");
	if (cb_used_check(u, "substitution", err) != 0)
		return CREDBROKER_ELOCAL;
	v->used = cb_is_none(u) ? NULL : u;
	return 0;
}

/* Round n up to a multiple of the strictest alignment. */
size_t
cb_align(size_t n)
{
	const size_t	a = _Alignof(max_align_t);

	return (n + a - 1) / a * a;
}

/* Bytes of a str or bin object (0 for NULL). */
size_t
cb_obj_len(const msgpack_object *o)
{
	if (o == NULL)
		return 0;
	return o->type == MSGPACK_OBJECT_BIN ? o->via.bin.size :
	    o->via.str.size;
}

/* Room for an optional string: 0 when absent or nil. */
size_t
cb_opt_len(const msgpack_object *o)
{
	return cb_is_none(o) ? 0 : cb_obj_len(o) + 1;
}

/* Copy the str/bin o to *cur, NUL-terminate it, advance; returns start. */
char *
cb_put(char **cur, const msgpack_object *o)
{
	char	*start = *cur;
	size_t	 n = cb_obj_len(o);

	if (n > 0)
		memcpy(start, o->type == MSGPACK_OBJECT_BIN ? o->via.bin.ptr :
		    o->via.str.ptr, n);
	start[n] = '\0';
	*cur += n + 1;
	return start;
}

/* cb_put for an optional string: NULL when absent or nil. */
const char *
cb_put_opt(char **cur, const msgpack_object *o)
{
	return cb_is_none(o) ? NULL : cb_put(cur, o);
}

/* Bytes the strings of a checked "used" list (or NULL) take. */
size_t
cb_used_strlen(const msgpack_object *u)
{
	const msgpack_object	*e;
	size_t			 i, n = 0;

	for (i = 0; u != NULL && i < u->via.array.size; i++) {
		e = &u->via.array.ptr[i];
		n += cb_obj_len(proto_map_get(e, "id")) + 1 +
		    cb_obj_len(proto_map_get(e, "type")) + 1 +
		    cb_opt_len(proto_map_get(e, "source")) +
		    cb_opt_len(proto_map_get(e, "account"));
	}
	return n;
}

/* Copy a checked "used" list (or NULL) into us[], its strings at *cur. */
void
cb_used_copy(const msgpack_object *u, struct credbroker_used *us,
    char **cur)
{
	const msgpack_object	*e, *filled;
	size_t			 i;

	for (i = 0; u != NULL && i < u->via.array.size; i++) {
		e = &u->via.array.ptr[i];
		us[i].id = cb_put(cur, proto_map_get(e, "id"));
		us[i].type = cb_put(cur, proto_map_get(e, "type"));
		us[i].source = cb_put_opt(cur, proto_map_get(e, "source"));
		us[i].account = cb_put_opt(cur, proto_map_get(e, "account"));
		filled = proto_map_get(e, "filled");
		us[i].filled = filled != NULL &&
		    filled->type == MSGPACK_OBJECT_BOOLEAN &&
		    filled->via.boolean;
	}
}

/* Copy a checked result into one new block; 0 or "nomem". */
static int
cb_subst_copy(const struct cb_subst_view *v, struct cb_subst **out,
    struct credbroker_error *err)
{
	struct credbroker_substituted	*s;
	struct credbroker_header	*hs;
	struct credbroker_used		*us;
	struct cb_subst			*a;
	const msgpack_object		*pair;
	size_t				 nh, nu, i, strbytes = 0;
	size_t				 off_h, off_u, off_s, total;
	char				*cur;

	nh = v->headers != NULL ? v->headers->via.array.size : 0;
	nu = v->used != NULL ? v->used->via.array.size : 0;
	/*
	 * Every length below comes from a reply already held in memory, so
	 * the sums cannot overflow a size_t on any platform whose address
	 * space holds that reply.
	 */
	if (v->skipped)
		strbytes = cb_obj_len(v->reason) + 1;
	else {
		strbytes = cb_obj_len(v->method) + 1 + cb_obj_len(v->url) + 1 +
		    cb_obj_len(v->body) + 1 + cb_obj_len(v->subject) + 1;
		for (i = 0; i < nh; i++) {
			pair = &v->headers->via.array.ptr[i];
			strbytes += cb_obj_len(&pair->via.array.ptr[0]) + 1 +
			    cb_obj_len(&pair->via.array.ptr[1]) + 1;
		}
		strbytes += cb_used_strlen(v->used);
	}
	off_h = cb_align(sizeof(*a));
	off_u = cb_align(off_h + nh * sizeof(*hs));
	off_s = cb_align(off_u + nu * sizeof(*us));
	total = off_s + strbytes;
	if ((a = calloc(1, total)) == NULL)
		return cb_fail(err, CREDBROKER_ERR_NOMEM, "out of memory");
	a->size = total;
	s = &a->pub;
	hs = (struct credbroker_header *)((char *)a + off_h);
	us = (struct credbroker_used *)((char *)a + off_u);
	cur = (char *)a + off_s;

	if (v->skipped) {
		s->skipped = 1;
		s->reason = cb_put(&cur, v->reason);
		*out = a;
		return 0;
	}
	s->dry_run = v->dry_run;
	s->method = cb_put(&cur, v->method);
	s->url_len = cb_obj_len(v->url);
	s->url = cb_put(&cur, v->url);
	for (i = 0; i < nh; i++) {
		pair = &v->headers->via.array.ptr[i];
		hs[i].name = cb_put(&cur, &pair->via.array.ptr[0]);
		hs[i].value_len = cb_obj_len(&pair->via.array.ptr[1]);
		hs[i].value = cb_put(&cur, &pair->via.array.ptr[1]);
	}
	s->headers = nh > 0 ? hs : NULL;
	s->nheaders = nh;
	if (v->body != NULL) {
		s->has_body = 1;
		s->body_len = cb_obj_len(v->body);
		s->body = cb_put(&cur, v->body);
	} else
		cur++;			/* the unused NUL counted above */
	s->subject = cb_put(&cur, v->subject);
	cb_used_copy(v->used, us, &cur);
	s->used = nu > 0 ? us : NULL;
	s->nused = nu;
	*out = a;
	return 0;
}

/* Pack, call "substitute", check and copy the result. */
static int
cb_substitute(struct credbroker *c, const struct credbroker_component *comp,
    const struct credbroker_request *req, bool dry_run,
    struct credbroker_substituted **out, struct credbroker_error *err)
{
	struct credbroker_error	 e;
	struct credbroker_reply	*reply = NULL;
	struct cb_subst_view	 v;
	struct cb_subst		*a = NULL;
	struct cb_pack		 p;
	int			 rc;

	cb_err_clear(&e);
	memset(&p, 0, sizeof(p));
	if (out != NULL)
		*out = NULL;
	if (c == NULL || out == NULL) {
		rc = cb_fail(&e, CREDBROKER_ERR_INVALID,
		    "connection or result pointer is NULL");
		goto done;
	}
	if ((rc = cb_check_subst_args(comp, req, &e)) != 0)
		goto done;
	msgpack_packer_init(&p.pk, &p.buf, secbuf_msgpack_write);
	cb_pack_subst(&p.pk, comp, req, dry_run ? 1 : 0);
	if (dry_run) {
		cb_pack_cstr(&p.pk, "dry_run");
		msgpack_pack_true(&p.pk);
	}
	if (secbuf_failed(&p.buf)) {
		rc = cb_fail(&e, CREDBROKER_ERR_NOMEM, "out of memory");
		goto done;
	}
	if ((rc = credbroker_call(c, "substitute", (const char *)p.buf.data,
	    p.buf.len, &reply, &e)) != 0)
		goto done;
	if ((rc = cb_subst_check(credbroker_reply_result(reply), &v,
	    &e)) != 0)
		goto done;
	/* A dry-run caller must never be handed a real value. */
	if (dry_run && !v.skipped && !v.dry_run) {
		rc = cb_fail(&e, CREDBROKER_ERR_PROTOCOL, "the broker did not "
		    "mark the answer to a dry run as one; it was discarded");
		goto done;
	}
	if ((rc = cb_subst_copy(&v, &a, &e)) != 0)
		goto done;
	*out = &a->pub;
done:
	secbuf_free(&p.buf);
	credbroker_reply_free(reply);
	if (err != NULL)
		*err = e;
	return rc;
}

/* Substitute a request's placeholders (see credbroker.h). */
int
credbroker_substitute(struct credbroker *c,
    const struct credbroker_component *comp,
    const struct credbroker_request *req,
    struct credbroker_substituted **out, struct credbroker_error *err)
{
	return cb_substitute(c, comp, req, false, out, err);
}

/* Substitute with every value masked (see credbroker.h). */
int
credbroker_substitute_dry_run(struct credbroker *c,
    const struct credbroker_component *comp,
    const struct credbroker_request *req,
    struct credbroker_substituted **out, struct credbroker_error *err)
{
	return cb_substitute(c, comp, req, true, out, err);
}

/* Wipe and free a substitution result. */
void
credbroker_substituted_free(struct credbroker_substituted *s)
{
	struct cb_subst	*a = (struct cb_subst *)s;

	if (a == NULL)
		return;
	cb_wipe(a, a->size);
	free(a);
}

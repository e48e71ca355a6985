/*
 * libcredbroker-request: credbroker_request(), the runner's API for the
 * "request" method, in which the broker sends the substituted request
 * itself and answers with the response, scrubbed of the values it used.
 *
 * The params are those of "substitute" (packed by cb_pack_subst(), shared
 * with libcredbroker-substitute.c) plus the options.  The result is checked
 * in full before anything is copied, and copied into one malloc'd block
 * laid out as
 *
 *	struct cb_resp    (the public structure, then the block's size)
 *	headers[]         struct credbroker_header
 *	used[]            struct credbroker_used
 *	strings           every string and the body, each NUL-terminated
 *
 * so that credbroker_response_free() wipes all of it with one
 * OPENSSL_cleanse.  The reply it was copied from is wiped by
 * credbroker_reply_free() before the call returns.
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

/* The allocation behind a struct credbroker_response. */
struct cb_resp {
	struct credbroker_response	pub;	/* first: the caller's */
	size_t				size;	/* bytes to wipe */
};

/* The pieces of a checked response (pointers into a reply). */
struct cb_resp_view {
	bool			 skipped;
	const msgpack_object	*reason;
	int			 status;
	uint64_t		 scrubbed;
	const msgpack_object	*headers;	/* array or NULL */
	const msgpack_object	*body;		/* str, bin or NULL */
	const msgpack_object	*used;		/* array or NULL */
};

/* Is o a str or a bin (with no NUL byte unless nul_ok)? */
static bool
cb_is_bytes(const msgpack_object *o, bool nul_ok)
{
	if (o == NULL)
		return false;
	if (o->type == MSGPACK_OBJECT_STR)
		return cb_is_str(o, nul_ok);
	return o->type == MSGPACK_OBJECT_BIN && (nul_ok ||
	    memchr(o->via.bin.ptr, '\0', o->via.bin.size) == NULL);
}

/*
 * Check that res has the shape of a "request" result and fill v with
 * pointers into it: {skipped: true, reason} or {status, reason?, headers:
 * [[name, value], ...], body, scrubbed, used}.  Keys the broker may add
 * later are ignored.
 */
static int
cb_resp_check(const msgpack_object *res, struct cb_resp_view *v,
    struct credbroker_error *err)
{
	const msgpack_object	*o, *h;
	uint32_t		 i;

	memset(v, 0, sizeof(*v));
	if (res == NULL || res->type != MSGPACK_OBJECT_MAP)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the request result is not a map");
	o = proto_map_get(res, "skipped");
	if (o != NULL && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean) {
		v->skipped = true;
		v->reason = proto_map_get(res, "reason");
		if (!cb_is_none(v->reason) && !cb_is_str(v->reason, false))
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "the reason of a skipped request is not a string");
		if (cb_is_none(v->reason))
			v->reason = NULL;
		return 0;
	}
	if (o != NULL && o->type != MSGPACK_OBJECT_BOOLEAN &&
	    o->type != MSGPACK_OBJECT_NIL)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "'skipped' in the request result is not a boolean");

	o = proto_map_get(res, "status");
	if (o == NULL || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    o->via.u64 > 999)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the request result has no HTTP status");
	v->status = (int)o->via.u64;
	/* Not skipped: reason is the status text ("OK"), when given. */
	v->reason = proto_map_get(res, "reason");
	if (!cb_is_none(v->reason) && !cb_is_bytes(v->reason, false))
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the status text of the response is not a string");
	if (cb_is_none(v->reason))
		v->reason = NULL;

	h = proto_map_get(res, "headers");
	if (!cb_is_none(h)) {
		if (h->type != MSGPACK_OBJECT_ARRAY)
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "the response headers are not an array");
		for (i = 0; i < h->via.array.size; i++) {
			o = &h->via.array.ptr[i];
			if (o->type != MSGPACK_OBJECT_ARRAY ||
			    o->via.array.size != 2 ||
			    !cb_is_bytes(&o->via.array.ptr[0], false) ||
			    !cb_is_bytes(&o->via.array.ptr[1], true))
				return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
				    "response header %u is not a pair of "
				    "strings", (unsigned)i);
		}
		v->headers = h;
	}

	o = proto_map_get(res, "body");
	if (!cb_is_none(o)) {
		if (!cb_is_bytes(o, true))
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "the response body is not a string or binary");
		v->body = o;
	}

	o = proto_map_get(res, "scrubbed");
	if (!cb_is_none(o)) {
		if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "'scrubbed' in the request result is not a "
			    "count");
		v->scrubbed = o->via.u64;
	}

	o = proto_map_get(res, "used");
	if (cb_used_check(o, "request", err) != 0)
		return CREDBROKER_ELOCAL;
	v->used = cb_is_none(o) ? NULL : o;
	return 0;
}

/* Copy a checked response into one new block; 0 or "nomem". */
static int
cb_resp_copy(const struct cb_resp_view *v, struct cb_resp **out,
    struct credbroker_error *err)
{
	struct credbroker_response	*r;
	struct credbroker_header	*hs;
	struct credbroker_used		*us;
	struct cb_resp			*a;
	const msgpack_object		*pair;
	size_t				 nh, nu, i, strbytes;
	size_t				 off_h, off_u, off_s, total;
	char				*cur;

	nh = v->headers != NULL ? v->headers->via.array.size : 0;
	nu = v->used != NULL ? v->used->via.array.size : 0;
	/* As in cb_subst_copy(): the reply is in memory, no overflow. */
	if (v->skipped)
		strbytes = cb_obj_len(v->reason) + 1;
	else {
		strbytes = cb_opt_len(v->reason) + cb_obj_len(v->body) + 1 +
		    cb_used_strlen(v->used);
		for (i = 0; i < nh; i++) {
			pair = &v->headers->via.array.ptr[i];
			strbytes += cb_obj_len(&pair->via.array.ptr[0]) + 1 +
			    cb_obj_len(&pair->via.array.ptr[1]) + 1;
		}
	}
	off_h = cb_align(sizeof(*a));
	off_u = cb_align(off_h + nh * sizeof(*hs));
	off_s = cb_align(off_u + nu * sizeof(*us));
	total = off_s + strbytes;
	if ((a = calloc(1, total)) == NULL)
		return cb_fail(err, CREDBROKER_ERR_NOMEM, "out of memory");
	a->size = total;
	r = &a->pub;
	hs = (struct credbroker_header *)((char *)a + off_h);
	us = (struct credbroker_used *)((char *)a + off_u);
	cur = (char *)a + off_s;

	if (v->skipped) {
		r->skipped = 1;
		r->reason = cb_put(&cur, v->reason);
		*out = a;
		return 0;
	}
	r->status = v->status;
	r->reason = cb_put_opt(&cur, v->reason);
	for (i = 0; i < nh; i++) {
		pair = &v->headers->via.array.ptr[i];
		hs[i].name = cb_put(&cur, &pair->via.array.ptr[0]);
		hs[i].value_len = cb_obj_len(&pair->via.array.ptr[1]);
		hs[i].value = cb_put(&cur, &pair->via.array.ptr[1]);
	}
	r->headers = nh > 0 ? hs : NULL;
	r->nheaders = nh;
	r->body_len = cb_obj_len(v->body);
	r->body = cb_put(&cur, v->body);	/* "" when there is none */
	r->scrubbed = v->scrubbed;
	cb_used_copy(v->used, us, &cur);
	r->used = nu > 0 ? us : NULL;
	r->nused = nu;
	*out = a;
	return 0;
}

/* Pack {component, request, timeout_ms?, max_response_bytes?, ...}. */
static void
cb_pack_request(msgpack_packer *pk, const struct credbroker_component *comp,
    const struct credbroker_request *req,
    const struct credbroker_request_options *opts)
{
	uint32_t	n = 0;

	if (opts != NULL)
		n = (opts->timeout_ms > 0) + (opts->max_response_bytes > 0) +
		    (opts->follow_redirects != 0);
	cb_pack_subst(pk, comp, req, n);
	if (opts == NULL)
		return;
	if (opts->timeout_ms > 0) {
		cb_pack_cstr(pk, "timeout_ms");
		msgpack_pack_uint64(pk, opts->timeout_ms);
	}
	if (opts->max_response_bytes > 0) {
		cb_pack_cstr(pk, "max_response_bytes");
		msgpack_pack_uint64(pk, opts->max_response_bytes);
	}
	if (opts->follow_redirects) {
		cb_pack_cstr(pk, "follow_redirects");
		msgpack_pack_true(pk);
	}
}

/* Have the broker send a request and return its response (credbroker.h). */
int
credbroker_request(struct credbroker *c,
    const struct credbroker_component *comp,
    const struct credbroker_request *req,
    const struct credbroker_request_options *opts,
    struct credbroker_response **out, struct credbroker_error *err)
{
	struct credbroker_error	 e;
	struct credbroker_reply	*reply = NULL;
	struct cb_resp_view	 v;
	struct cb_resp		*a = NULL;
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
	cb_pack_request(&p.pk, comp, req, opts);
	if (secbuf_failed(&p.buf)) {
		rc = cb_fail(&e, CREDBROKER_ERR_NOMEM, "out of memory");
		goto done;
	}
	if ((rc = credbroker_call(c, "request", (const char *)p.buf.data,
	    p.buf.len, &reply, &e)) != 0)
		goto done;
	if ((rc = cb_resp_check(credbroker_reply_result(reply), &v,
	    &e)) != 0)
		goto done;
	if ((rc = cb_resp_copy(&v, &a, &e)) != 0)
		goto done;
	*out = &a->pub;
done:
	secbuf_free(&p.buf);
	credbroker_reply_free(reply);
	if (err != NULL)
		*err = e;
	return rc;
}

/* Wipe and free a response. */
void
credbroker_response_free(struct credbroker_response *r)
{
	struct cb_resp	*a = (struct cb_resp *)r;

	if (a == NULL)
		return;
	cb_wipe(a, a->size);
	free(a);
}

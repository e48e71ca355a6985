/*
 * rpc-cred: credential values (SPEC section 2): cred.set, cred.status and
 * cred.delete.  Values are write-only: cred.set seals the value here, and
 * nothing in this file ever decrypts one.
 *
 * The plaintext of cred.set is never copied: it is read where it lies in
 * the call's own copy of the request (a wiping buffer), sealed, and that
 * copy is wiped when the call ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "proto.h"
#include "seal.h"
#include "secbuf.h"
#include "store.h"
#include "values.h"

/* A call waiting on its values backend, with what it needs to answer. */
struct cred_wait {
	struct rpc_call	*call;
	char		 user[STORE_UUID_LEN + 1];
	char		 ident[STORE_IDENT_MAX + 1];
};

/* Allocate the waiting context of a call. */
static struct cred_wait *
cred_wait_new(struct rpc_call *call, const struct store_type *t,
    const char *user, struct cb_error *err)
{
	struct cred_wait	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		cb_error_set(err, CB_EINTERNAL, "out of memory");
		return NULL;
	}
	w->call = call;
	memcpy(w->user, user, sizeof(w->user));
	memcpy(w->ident, t->ident, sizeof(w->ident));
	return w;
}

/* The backend stored the value of cred.set. */
static void
cred_set_written(void *arg, int rc, int64_t updated_at,
    const struct cb_error *err)
{
	struct cred_wait	*w = arg;

	if (rc == 0) {
		msgpack_pack_map(&w->call->pk, 1);
		rpc_pack_kv_time(&w->call->pk, "updated_at", updated_at);
	}
	rpc_finish(w->call, rc, err);
	free(w);
}

/* The backend answered cred.delete. */
static void
cred_delete_done(void *arg, int rc, int64_t n, const struct cb_error *err)
{
	struct cred_wait	*w = arg;
	struct cb_error		 e;

	(void)n;
	if (rc == 0)
		msgpack_pack_map(&w->call->pk, 0);
	else if (rc == -CB_ENOTFOUND) {
		cb_error_set(&e, CB_ENOTFOUND, "user %s has no value of "
		    "credential type '%s'", w->user, w->ident);
		err = &e;
	}
	rpc_finish(w->call, rc, err);
	free(w);
}

/* Read params.user and check it is a lower-case RFC 4122 uuid. */
static int
rpc_user(struct rpc_call *call, const msgpack_object *params, char **user,
    struct cb_error *err)
{
	int	rc;

	if ((rc = proto_get_str(params, "user", true, user, err)) != 0)
		return rc;
	if (!ids_uuid_valid(*user)) {
		free(*user);
		*user = NULL;
		return cb_error_set(err, CB_EBADREQ, "user must be a UUID in "
		    "lower-case RFC 4122 text form");
	}
	rpc_audit(call, NULL, *user);
	return 0;
}

/* Look up params.type and params.user; the type's backend must be usable. */
static int
rpc_cred_target(struct rpc_call *call, const msgpack_object *params,
    struct store_type *t, char **user, struct cb_error *err)
{
	struct cb_error	 why;
	struct values	*v;
	char		*ref = NULL;
	int		 rc;

	if ((rc = proto_get_str(params, "type", true, &ref, err)) != 0 ||
	    (rc = rpc_user(call, params, user, err)) != 0 ||
	    (rc = store_type_get(call->broker->store, ref, t, err)) != 0) {
		if (ref != NULL)
			rpc_audit(call, ref, NULL);
		goto done;
	}
	rpc_audit(call, t->ident, NULL);
	v = values_for(call->broker, t);
	if (!v->ops->usable(v, &why))
		rc = cb_error_set(err, why.code, "credential type '%s' is "
		    "stored in %s: %s", t->ident, v->ops->where, why.msg);
done:
	free(ref);
	return rc;
}

/* cred.set {type, user, value} -> {updated_at} */
int
rpc_cred_set(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "user", "value", NULL };
	const msgpack_object	*v;
	struct store_type	 t;
	struct values		*vs;
	struct values_ref	 ref = { 0 };
	struct cred_wait	*w = NULL;
	char			*user = NULL, *sealed = NULL;
	char			 context[VALUES_CONTEXT_MAX];
	const uint8_t		*pt;
	size_t			 ptlen;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0)
		goto done;
	v = proto_map_get(params, "value");
	if (v == NULL || v->type == MSGPACK_OBJECT_NIL) {
		rc = cb_error_set(err, CB_EBADREQ,
		    "missing required parameter 'value'");
		goto done;
	}
	if (v->type == MSGPACK_OBJECT_STR) {
		pt = (const uint8_t *)v->via.str.ptr;
		ptlen = v->via.str.size;
	} else if (v->type == MSGPACK_OBJECT_BIN) {
		pt = (const uint8_t *)v->via.bin.ptr;
		ptlen = v->via.bin.size;
	} else {
		rc = cb_error_set(err, CB_EBADREQ,
		    "parameter 'value' must be a string or binary");
		goto done;
	}
	if (ptlen == 0) {
		rc = cb_error_set(err, CB_EBADREQ, "value must not be empty");
		goto done;
	}
	if ((rc = rpc_cred_target(call, params, &t, &user, err)) != 0)
		goto done;
	vs = values_for(call->broker, &t);
	ref.type_uuid = t.uuid;
	ref.user_uuid = user;
	ref.generation = t.generation;
	values_context(vs, context, sizeof(context), &ref);
	if ((rc = keys_seal(call->broker, context, pt, ptlen, &sealed,
	    err)) != 0)
		goto done;
	if ((w = cred_wait_new(call, &t, user, err)) == NULL) {
		rc = -CB_EINTERNAL;
		goto done;
	}
	if ((rc = vs->ops->set(vs, &ref, sealed, cred_set_written, w,
	    err)) != 0) {
		free(w);
		goto done;
	}
	rc = RPC_WAIT;
done:
	free(sealed);
	free(user);
	store_type_free(&t);
	return rc;
}

/*
 * cred.status asks every backend at once for the status of the user's
 * values of its types (Vault reads them concurrently).  A type whose
 * status cannot be told carries an "error" instead of failing the whole
 * call: the others still answer.
 */
struct status_ctx;
struct status_part {
	struct status_ctx	 *ctx;
	const struct store_type	**types;	/* the types of one backend */
	size_t			 *index;	/* each one's place in ctx */
	size_t			  n;
};
struct status_ctx {
	struct rpc_call		*call;
	struct store_type	*types;
	size_t			 ntypes;
	int64_t			*updated;
	char			**errors;
	struct status_part	 parts[STORE_KINDS];
	size_t			 pending;
};

/* Pack the answer of cred.status. */
static void
status_pack(struct status_ctx *x)
{
	msgpack_packer	*pk = &x->call->pk;
	size_t		 i;

	msgpack_pack_array(pk, x->ntypes);
	for (i = 0; i < x->ntypes; i++) {
		msgpack_pack_map(pk, x->errors[i] != NULL ? 7 : 6);
		proto_pack_kv_str(pk, "type", x->types[i].uuid);
		proto_pack_kv_str(pk, "ident", x->types[i].ident);
		proto_pack_kv_str(pk, "name", x->types[i].name);
		proto_pack_kv_str(pk, "storage",
		    store_kind_name(x->types[i].storage));
		proto_pack_kv_bool(pk, "filled", x->updated[i] != 0);
		rpc_pack_kv_time(pk, "updated_at", x->updated[i]);
		if (x->errors[i] != NULL)
			proto_pack_kv_str(pk, "error", x->errors[i]);
	}
}

static void
status_free(struct status_ctx *x)
{
	size_t	i;

	for (i = 0; x->errors != NULL && i < x->ntypes; i++)
		free(x->errors[i]);
	for (i = 0; i < STORE_KINDS; i++) {
		free(x->parts[i].types);
		free(x->parts[i].index);
	}
	free(x->errors);
	free(x->updated);
	store_type_list_free(x->types, x->ntypes);
	free(x);
}

/* Record why a type's status is unknown. */
static void
status_error(struct status_ctx *x, size_t i, const struct cb_error *err)
{
	char	*m = NULL;

	if (asprintf(&m, "%s: %s", cb_error_name(err->code), err->msg) >= 0)
		x->errors[i] = m;
}

/* One type's status answered. */
static void
status_got(void *arg, size_t i, int rc, int64_t updated_at,
    const struct cb_error *err)
{
	struct status_part	*p = arg;
	struct status_ctx	*x = p->ctx;

	if (rc == 0)
		x->updated[p->index[i]] = updated_at;
	else
		status_error(x, p->index[i], err);
	if (--x->pending > 0)
		return;
	status_pack(x);
	rpc_finish(x->call, 0, NULL);
	status_free(x);
}

/* cred.status {user} -> [{type, ident, name, storage, filled, updated_at}] */
int
rpc_cred_status(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "user", NULL };
	struct broker		*b = call->broker;
	struct status_ctx	*x = NULL;
	struct status_part	*p;
	struct values		*v;
	struct cb_error		 e;
	size_t			 i, k;
	char			*user = NULL;
	int			 rc;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	x->call = call;
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_user(call, params, &user, err)) != 0 ||
	    (rc = store_type_list(b->store, &x->types, &x->ntypes, err)) != 0)
		goto fail;
	x->errors = calloc(x->ntypes + 1, sizeof(*x->errors));
	x->updated = calloc(x->ntypes + 1, sizeof(*x->updated));
	for (k = 0; k < STORE_KINDS; k++) {
		x->parts[k].ctx = x;
		x->parts[k].types = calloc(x->ntypes + 1, sizeof(void *));
		x->parts[k].index = calloc(x->ntypes + 1, sizeof(size_t));
		if (x->parts[k].types == NULL || x->parts[k].index == NULL)
			x->errors = NULL;
	}
	if (x->errors == NULL || x->updated == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto fail;
	}
	/* Each backend is asked about its own types. */
	for (i = 0; i < x->ntypes; i++) {
		p = &x->parts[x->types[i].storage];
		p->types[p->n] = &x->types[i];
		p->index[p->n++] = i;
	}
	/* One extra count keeps failures at once from finishing early. */
	x->pending = 1;
	for (k = 0; k < STORE_KINDS; k++) {
		p = &x->parts[k];
		if (p->n == 0)
			continue;
		v = values_for(b, p->types[0]);
		x->pending += p->n;
		if (v->ops->status(v, user, p->types, p->n, status_got, p,
		    &e) != 0) {
			x->pending -= p->n;
			for (i = 0; i < p->n; i++)
				status_error(x, p->index[i], &e);
		}
	}
	free(user);
	if (--x->pending > 0)
		return RPC_WAIT;
	status_pack(x);
	status_free(x);
	return 0;
fail:
	free(user);
	status_free(x);
	return rc;
}

/* cred.delete {type, user} -> {} */
int
rpc_cred_delete(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "user", NULL };
	struct store_type	 t;
	struct values		*vs;
	struct values_ref	 ref = { 0 };
	struct cred_wait	*w;
	char			*user = NULL;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_cred_target(call, params, &t, &user, err)) != 0)
		goto done;
	if ((w = cred_wait_new(call, &t, user, err)) == NULL) {
		rc = -CB_EINTERNAL;
		goto done;
	}
	vs = values_for(call->broker, &t);
	ref.type_uuid = t.uuid;
	ref.user_uuid = user;
	ref.generation = t.generation;
	if ((rc = vs->ops->del(vs, &ref, cred_delete_done, w, err)) != 0) {
		free(w);
		goto done;
	}
	rc = RPC_WAIT;
done:
	free(user);
	store_type_free(&t);
	return rc;
}

/*
 * rpc-cred: credential values (SPEC section 2): cred.set, cred.status and
 * cred.delete.  Values are write-only: cred.set seals the value here, and
 * nothing in this file ever decrypts one.
 *
 * The plaintext of cred.set is never copied: it is read where it lies in
 * the call's own copy of the request (a wiping buffer), sealed, and that
 * copy is wiped when the call ends.
 */
#include <limits.h>
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
#include "vault.h"

#define RPC_RELPATH_LEN	(2 * STORE_UUID_LEN + 32)

/* Where a value of a vault-stored type lives, relative to vault.path. */
void
rpc_vault_relpath(char *buf, size_t sz, const char *type_uuid,
    const char *user_uuid)
{
	snprintf(buf, sz, "credentials/%s/users/%s", type_uuid, user_uuid);
}

int
rpc_vault_wrap(const char *sealed, int64_t generation, char **out,
    struct cb_error *err)
{
	int	n;

	if (generation != 0)
		n = asprintf(out, "G%lld:%s", (long long)generation, sealed);
	else
		n = (*out = strdup(sealed)) != NULL ? 0 : -1;
	if (n < 0) {
		*out = NULL;
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	return 0;
}

const char *
rpc_vault_unwrap(const char *text, int64_t generation)
{
	long long	 g = 0;
	const char	*p = text;

	/* "G" and digits, then ':'; "GCM:" (no digits) is generation 0. */
	if (p[0] == 'G' && p[1] >= '1' && p[1] <= '9') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			if (g > (LLONG_MAX - 9) / 10)
				return NULL;
			g = g * 10 + (*p - '0');
		}
		if (*p != ':')
			return NULL;
		p++;
	}
	return g == generation ? p : NULL;
}

/* A call waiting on Vault, with what it needs to answer. */
struct cred_wait {
	struct rpc_call	*call;
	int64_t		 now;
	char		 type_uuid[STORE_UUID_LEN + 1];
	char		 user[STORE_UUID_LEN + 1];
	char		 ident[STORE_IDENT_MAX + 1];
	int64_t		 generation;
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
	w->now = (int64_t)time(NULL);
	memcpy(w->type_uuid, t->uuid, sizeof(w->type_uuid));
	memcpy(w->user, user, sizeof(w->user));
	memcpy(w->ident, t->ident, sizeof(w->ident));
	w->generation = t->generation;
	return w;
}

/* Vault answered a cred.set write. */
static void
cred_set_written(void *arg, int rc, const struct cb_error *err)
{
	struct cred_wait	*w = arg;

	if (rc == 0) {
		msgpack_pack_map(&w->call->pk, 1);
		rpc_pack_kv_time(&w->call->pk, "updated_at", w->now);
	}
	rpc_finish(w->call, rc, err);
	free(w);
}

/* Vault answered the destroy of cred.delete. */
static void
cred_delete_done(void *arg, int rc, const struct cb_error *err)
{
	struct cred_wait	*w = arg;

	if (rc == 0)
		msgpack_pack_map(&w->call->pk, 0);
	rpc_finish(w->call, rc, err);
	free(w);
}

/* Vault answered the read of cred.delete: destroy what is there. */
static void
cred_delete_read(void *arg, int rc, const char *value,
    const struct vault_meta *meta,
    const struct cb_error *err)
{
	struct cred_wait	*w = arg;
	struct cb_error		 e;
	char			 rel[RPC_RELPATH_LEN];

	/* Left by an earlier storage generation: not this type's value. */
	if (rc == 0 && rpc_vault_unwrap(value, w->generation) == NULL)
		rc = -CB_ENOTFOUND;
	if (rc == -CB_ENOTFOUND) {
		cb_error_set(&e, CB_ENOTFOUND, "user %s has no value of "
		    "credential type '%s'", w->user, w->ident);
		rpc_finish(w->call, rc, &e);
		free(w);
		return;
	}
	if (rc != 0) {
		rpc_finish(w->call, rc, err);
		free(w);
		return;
	}
	rpc_vault_relpath(rel, sizeof(rel), w->type_uuid, w->user);
	if ((rc = vault_destroy(w->call->broker->vault, rel, cred_delete_done,
	    w, &e)) != 0) {
		rpc_finish(w->call, rc, &e);
		free(w);
	}
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

/* Look up params.type and params.user; vault types need a usable Vault. */
static int
rpc_cred_target(struct rpc_call *call, const msgpack_object *params,
    struct store_type *t, char **user, struct cb_error *err)
{
	struct cb_error	 why;
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
	if (t->storage == STORE_VAULT && !vault_usable(call->broker->vault,
	    &why))
		rc = cb_error_set(err, why.code, "credential type '%s' is "
		    "stored in Vault: %s", t->ident, why.msg);
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
	char			*user = NULL, *sealed = NULL, *text = NULL;
	char			 context[RPC_CONTEXT_MAX];
	const uint8_t		*pt;
	size_t			 ptlen;
	int64_t			 now;
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
	sealctx_value(context, sizeof(context), t.uuid, user,
	    t.storage == STORE_VAULT ? t.generation : 0);
	if ((rc = keys_seal(call->broker, context, pt, ptlen, &sealed,
	    err)) != 0)
		goto done;
	if (t.storage == STORE_VAULT) {
		struct cred_wait	*w;
		char			 rel[RPC_RELPATH_LEN];

		if ((w = cred_wait_new(call, &t, user, err)) == NULL) {
			rc = -CB_EINTERNAL;
			goto done;
		}
		rpc_vault_relpath(rel, sizeof(rel), t.uuid, user);
		if ((rc = rpc_vault_wrap(sealed, t.generation, &text,
		    err)) != 0 ||
		    (rc = vault_write(call->broker->vault, rel, text,
		    cred_set_written, w, err)) != 0) {
			free(w);
			goto done;
		}
		rc = RPC_WAIT;
		goto done;
	}
	now = (int64_t)time(NULL);
	if ((rc = store_value_set(call->broker->store, t.uuid, user, sealed,
	    now, err)) != 0)
		goto done;
	msgpack_pack_map(&call->pk, 1);
	rpc_pack_kv_time(&call->pk, "updated_at", now);
done:
	free(text);
	free(sealed);
	free(user);
	store_type_free(&t);
	return rc;
}

/*
 * cred.status waits for one Vault read per vault-stored type (the reads
 * run concurrently); db-stored types are answered from SQLite at once.  A
 * vault-stored type whose status cannot be read carries an "error" instead
 * of failing the whole call: the db-stored ones still answer.
 */
struct status_ctx;
struct status_slot {
	struct status_ctx	*ctx;
	size_t			 i;
};
struct status_ctx {
	struct rpc_call		*call;
	struct store_type	*types;
	size_t			 ntypes;
	int64_t			*updated;
	char			**errors;
	struct status_slot	*slots;
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
		    x->types[i].storage == STORE_VAULT ? "vault" : "db");
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
	free(x->errors);
	free(x->updated);
	free(x->slots);
	store_type_list_free(x->types, x->ntypes);
	free(x);
}

/* Record why a vault-stored type's status is unknown. */
static void
status_error(struct status_ctx *x, size_t i, const struct cb_error *err)
{
	char	*m = NULL;

	if (asprintf(&m, "%s: %s", cb_error_name(err->code), err->msg) >= 0)
		x->errors[i] = m;
}

/* One Vault read of cred.status answered. */
static void
status_read(void *arg, int rc, const char *value,
    const struct vault_meta *meta,
    const struct cb_error *err)
{
	struct status_slot	*slot = arg;
	struct status_ctx	*x = slot->ctx;

	/* A value left by an earlier storage generation is not filled. */
	if (rc == 0 && rpc_vault_unwrap(value,
	    x->types[slot->i].generation) != NULL)
		x->updated[slot->i] = meta->created != 0 ? meta->created : 1;
	else if (rc != 0 && rc != -CB_ENOTFOUND)
		status_error(x, slot->i, err);
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
	struct status_ctx	*x = NULL;
	struct cb_error		 e;
	size_t			 i;
	char			*user = NULL, rel[RPC_RELPATH_LEN];
	int			 rc;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	x->call = call;
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_user(call, params, &user, err)) != 0 ||
	    (rc = store_user_status(call->broker->store, user, &x->types,
	    &x->updated, &x->ntypes, err)) != 0)
		goto fail;
	x->errors = calloc(x->ntypes + 1, sizeof(*x->errors));
	x->slots = calloc(x->ntypes + 1, sizeof(*x->slots));
	if (x->errors == NULL || x->slots == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto fail;
	}
	/* One extra count keeps synchronous answers from finishing early. */
	x->pending = 1;
	for (i = 0; i < x->ntypes; i++) {
		if (x->types[i].storage == STORE_DB)
			continue;	/* from store_user_status() */
		x->slots[i].ctx = x;
		x->slots[i].i = i;
		rpc_vault_relpath(rel, sizeof(rel), x->types[i].uuid, user);
		x->pending++;
		if (vault_read(call->broker->vault, rel, status_read,
		    &x->slots[i], &e) != 0) {
			x->pending--;
			status_error(x, i, &e);
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
	char			*user = NULL;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_cred_target(call, params, &t, &user, err)) != 0)
		goto done;
	if (t.storage == STORE_VAULT) {
		struct cred_wait	*w;
		char			 rel[RPC_RELPATH_LEN];

		if ((w = cred_wait_new(call, &t, user, err)) == NULL) {
			rc = -CB_EINTERNAL;
			goto done;
		}
		rpc_vault_relpath(rel, sizeof(rel), t.uuid, user);
		if ((rc = vault_read(call->broker->vault, rel,
		    cred_delete_read, w, err)) != 0) {
			free(w);
			goto done;
		}
		rc = RPC_WAIT;
		goto done;
	}
	if ((rc = store_value_delete(call->broker->store, t.uuid, user,
	    err)) != 0) {
		if (rc == -CB_ENOTFOUND)
			rc = cb_error_set(err, CB_ENOTFOUND, "user %s has no "
			    "value of credential type '%s'", user, t.ident);
		goto done;
	}
	msgpack_pack_map(&call->pk, 0);
done:
	free(user);
	store_type_free(&t);
	return rc;
}

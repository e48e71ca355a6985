/*
 * rpc-cred: credential values (SPEC sections 2, 10 and 11): cred.set,
 * cred.import, cred.status, cred.list and cred.delete of users' and
 * accounts' values, cred.link and cred.unlink.  Values are write-only:
 * cred.set seals the value here; the only values this file opens are the
 * sealed account names of links and defaults, and the value cred.import
 * is given and the one already in its place, to compare them.
 *
 * The plaintext of cred.set is never copied: it is read where it lies in
 * the call's own copy of the request (a wiping buffer), sealed, and that
 * copy is wiped when the call ends.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "proto.h"
#include "seal.h"
#include "secbuf.h"
#include "store.h"
#include "values.h"

/* A call waiting on its values backend, with what it needs to answer. */
struct cred_wait {
	struct rpc_call	*call;
	char		 user[STORE_UUID_LEN + 1];	/* or "" */
	char		 account[STORE_IDENT_MAX + 1];	/* or "" */
	char		 uuid[STORE_UUID_LEN + 1];
	char		 ident[STORE_IDENT_MAX + 1];
};

/* Allocate the waiting context of a call. */
static struct cred_wait *
cred_wait_new(struct rpc_call *call, const struct store_type *t,
    const char *user, const char *account, struct cb_error *err)
{
	struct cred_wait	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		cb_error_set(err, CB_EINTERNAL, "out of memory");
		return NULL;
	}
	w->call = call;
	if (user != NULL)
		memcpy(w->user, user, sizeof(w->user));
	if (account != NULL)
		memcpy(w->account, account, strlen(account) + 1);
	memcpy(w->uuid, t->uuid, sizeof(w->uuid));
	memcpy(w->ident, t->ident, sizeof(w->ident));
	return w;
}

const char *
rpc_cred_source_name(int source)
{
	switch (source) {
	case CRED_SOURCE_OWN:
		return "own";
	case CRED_SOURCE_LINKED:
		return "linked";
	case CRED_SOURCE_DEFAULT:
		return "default";
	}
	return NULL;
}

/*
 * Open the sealed name of a link or a default (what: which one, for
 * messages) and check that it is account.  Either failure means that the
 * database was changed behind the broker's back.
 */
static int
cred_bound_check(struct broker *b, const char *context, const char *sealed,
    const char *account, const char *what, struct cb_error *err)
{
	struct secbuf	 name = SECBUF_INIT;
	int		 rc;

	if (sealed == NULL || (rc = keys_open(b, context, sealed, &name,
	    err)) != 0) {
		log_error("%s cannot be opened: the database may have been "
		    "tampered with", what);
		rc = cb_error_set(err, CB_EINTERNAL, "%s cannot be opened",
		    what);
	} else if (name.len != strlen(account) ||
	    memcmp(name.data, account, name.len) != 0) {
		log_error("%s does not name the account its sealed text "
		    "names: the database has been tampered with", what);
		rc = cb_error_set(err, CB_EINTERNAL, "%s does not match its "
		    "sealed text", what);
	}
	secbuf_free(&name);
	return rc;
}

int
rpc_cred_bound(struct broker *b, const struct store_type *t,
    const char *user, int *source, char account[STORE_IDENT_MAX + 1],
    struct cb_error *err)
{
	struct store_link	 l;
	char			 ctx[SEALCTX_LINK_MAX];
	char			 what[2 * STORE_IDENT_MAX + 64];
	int			 rc;

	memset(&l, 0, sizeof(l));
	*source = CRED_SOURCE_NONE;
	account[0] = '\0';
	rc = store_link_get(b->store, t->uuid, user, &l, err);
	if (rc == 0) {
		sealctx_link(ctx, sizeof(ctx), t->uuid, user);
		snprintf(what, sizeof(what), "the link of user %s for "
		    "credential type '%s'", user, t->ident);
		if ((rc = cred_bound_check(b, ctx, l.sealed, l.account, what,
		    err)) == 0) {
			*source = CRED_SOURCE_LINKED;
			memcpy(account, l.account, sizeof(l.account));
		}
		store_link_free(&l);
		return rc;
	}
	if (rc != -CB_ENOTFOUND)
		return rc;
	if (t->default_account[0] == '\0')
		return cb_error_set(err, CB_ENOTFOUND, "no link and no "
		    "default account");
	sealctx_default(ctx, sizeof(ctx), t->uuid);
	snprintf(what, sizeof(what), "the default account of credential "
	    "type '%s'", t->ident);
	if ((rc = cred_bound_check(b, ctx, t->default_sealed,
	    t->default_account, what, err)) != 0)
		return rc;
	*source = CRED_SOURCE_DEFAULT;
	memcpy(account, t->default_account, sizeof(t->default_account));
	return 0;
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
	else if (rc == -CB_ENOTFOUND && w->account[0] != '\0') {
		cb_error_set(&e, CB_ENOTFOUND, "account '%s' of credential "
		    "type '%s' has no value", w->account, w->ident);
		err = &e;
	} else if (rc == -CB_ENOTFOUND) {
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

/*
 * Read params.account, an account name (the grammar of a type ident),
 * into account; 1 when absent and not required.
 */
static int
rpc_account(const msgpack_object *params, bool required,
    char account[STORE_IDENT_MAX + 1], struct cb_error *err)
{
	char	*s = NULL;
	int	 rc;

	account[0] = '\0';
	if ((rc = proto_get_str(params, "account", required, &s, err)) != 0)
		return rc;
	if (!ids_ident_valid(s)) {
		free(s);
		return cb_error_set(err, CB_EBADREQ,
		    "account must match [a-z][a-z0-9_]{0,63}");
	}
	memcpy(account, s, strlen(s) + 1);
	free(s);
	return 0;
}

/*
 * Look up params.type and params.user, or with account not NULL, exactly
 * one of params.user and params.account (*user is NULL for an account);
 * the type's backend must be usable.
 */
static int
rpc_cred_target(struct rpc_call *call, const msgpack_object *params,
    struct store_type *t, char **user, char account[STORE_IDENT_MAX + 1],
    struct cb_error *err)
{
	const msgpack_object	*u;
	struct cb_error		 why;
	struct values		*v;
	char			*ref = NULL;
	bool			 want_user = true;
	int			 rc;

	*user = NULL;
	if (account != NULL) {
		if ((rc = rpc_account(params, false, account, err)) < 0)
			return rc;
		u = proto_map_get(params, "user");
		if (rc == 0 && u != NULL && u->type != MSGPACK_OBJECT_NIL)
			return cb_error_set(err, CB_EBADREQ, "pass exactly "
			    "one of 'user' and 'account'");
		want_user = rc != 0;
	}
	if ((rc = proto_get_str(params, "type", true, &ref, err)) != 0 ||
	    (want_user && (rc = rpc_user(call, params, user, err)) != 0) ||
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

/* cred.set {type, user | account, value} -> {updated_at} */
int
rpc_cred_set(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "user", "account",
	    "value", NULL };
	const msgpack_object	*v;
	struct store_type	 t;
	struct values		*vs;
	struct values_ref	 ref = { 0 };
	struct cred_wait	*w = NULL;
	char			*user = NULL, *sealed = NULL;
	char			 context[VALUES_CONTEXT_MAX];
	char			 account[STORE_IDENT_MAX + 1];
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
	if ((rc = rpc_cred_target(call, params, &t, &user, account,
	    err)) != 0)
		goto done;
	vs = values_for(call->broker, &t);
	ref.type_uuid = t.uuid;
	ref.user_uuid = user;
	ref.account = user == NULL ? account : NULL;
	ref.generation = t.generation;
	values_context(vs, context, sizeof(context), &ref);
	if ((rc = keys_seal(call->broker, context, pt, ptlen, &sealed,
	    err)) != 0)
		goto done;
	if ((w = cred_wait_new(call, &t, user, ref.account, err)) == NULL) {
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
 * cred.import: a value sealed by the platform being moved from (GCM:
 * text) is opened with the master key or the legacy key, compared with
 * the value already stored in its place, if any, and re-sealed in the
 * bound format unless it is the same.  The plaintext lives only in the
 * wait's wiping buffer, from the opening to the end of the call.  No
 * message ever contains the value, sealed or open.
 */
struct import_wait {
	struct rpc_call		*call;
	struct values		*vs;
	struct values_ref	 ref;
	struct secbuf		 pt;
	bool			 dry_run;	/* compare only */
	char			 user[STORE_UUID_LEN + 1];
	char			 account[STORE_IDENT_MAX + 1];
	char			 uuid[STORE_UUID_LEN + 1];
	char			 context[VALUES_CONTEXT_MAX];
};

/* Wipe and free the wait of cred.import. */
static void
import_wait_free(struct import_wait *w)
{
	secbuf_free(&w->pt);
	free(w);
}

/* The backend stored the imported value. */
static void
cred_import_written(void *arg, int rc, int64_t updated_at,
    const struct cb_error *err)
{
	struct import_wait	*w = arg;

	(void)updated_at;
	if (rc == 0) {
		msgpack_pack_map(&w->call->pk, 1);
		proto_pack_kv_str(&w->call->pk, "outcome", "imported");
	}
	rpc_finish(w->call, rc, err);
	import_wait_free(w);
}

/*
 * The value in the imported value's place, if any: the same plaintext
 * answers "unchanged"; anything else (none, another value, one that does
 * not open) is replaced.
 */
static void
cred_import_got(void *arg, int rc, const char *sealed, int64_t updated_at,
    const struct cb_error *gerr)
{
	struct import_wait	*w = arg;
	struct secbuf		 old = SECBUF_INIT;
	struct cb_error		 e;
	char			*resealed = NULL;
	bool			 same = false;

	(void)updated_at;
	if (rc != 0 && rc != -CB_ENOTFOUND) {
		rpc_finish(w->call, rc, gerr);
		import_wait_free(w);
		return;
	}
	if (rc == 0 && keys_open(w->call->broker, w->context, sealed, &old,
	    &e) == 0)
		same = old.len == w->pt.len &&
		    CRYPTO_memcmp(old.data, w->pt.data, old.len) == 0;
	secbuf_free(&old);
	if (same || w->dry_run) {
		msgpack_pack_map(&w->call->pk, 1);
		proto_pack_kv_str(&w->call->pk, "outcome", same ? "unchanged" :
		    "would_import");
		rpc_finish(w->call, 0, NULL);
		import_wait_free(w);
		return;
	}
	if ((rc = keys_seal(w->call->broker, w->context, w->pt.data,
	    w->pt.len, &resealed, &e)) != 0 ||
	    (rc = w->vs->ops->set(w->vs, &w->ref, resealed,
	    cred_import_written, w, &e)) != 0) {
		free(resealed);
		rpc_finish(w->call, rc, &e);
		import_wait_free(w);
		return;
	}
	free(resealed);
}

/*
 * cred.import {type, user | account, sealed, dry_run} -> {outcome}:
 * "imported", "unchanged", or with dry_run "would_import".
 */
int
rpc_cred_import(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "user", "account",
	    "sealed", "dry_run", NULL };
	struct store_type	 t;
	struct import_wait	*w = NULL;
	char			*user = NULL, *sealed = NULL;
	char			 account[STORE_IDENT_MAX + 1];
	bool			 legacy, dry_run = false;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = proto_get_str(params, "sealed", true, &sealed, err)) != 0 ||
	    (rc = proto_get_bool(params, "dry_run", false, &dry_run,
	    err)) < 0)
		goto done;
	if ((rc = rpc_cred_target(call, params, &t, &user, account,
	    err)) != 0)
		goto done;
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if ((rc = keys_open_import(call->broker, sealed, &w->pt, &legacy,
	    err)) != 0)
		goto done;
	if (w->pt.len == 0) {
		rc = cb_error_set(err, CB_EBADREQ, "the sealed value is "
		    "empty");
		goto done;
	}
	w->call = call;
	w->dry_run = dry_run;
	w->vs = values_for(call->broker, &t);
	memcpy(w->uuid, t.uuid, sizeof(w->uuid));
	if (user != NULL)
		memcpy(w->user, user, sizeof(w->user));
	else
		memcpy(w->account, account, strlen(account) + 1);
	w->ref.type_uuid = w->uuid;
	w->ref.user_uuid = user != NULL ? w->user : NULL;
	w->ref.account = user == NULL ? w->account : NULL;
	w->ref.generation = t.generation;
	values_context(w->vs, w->context, sizeof(w->context), &w->ref);
	if ((rc = w->vs->ops->get(w->vs, &w->ref, cred_import_got, w,
	    err)) != 0)
		goto done;
	w = NULL;			/* cred_import_got owns it now */
	rc = RPC_WAIT;
done:
	if (w != NULL)
		import_wait_free(w);
	cb_strfree_wipe(sealed);
	free(user);
	store_type_free(&t);
	return rc;
}

/*
 * cred.status {user} asks every backend at once for the status of the
 * user's values of its types (Vault reads them concurrently); then, for
 * each type where the user has no value of their own, the linked or
 * default account's value (SPEC 10).  A type whose status cannot be told
 * carries an "error", the {code, message} map of a call's error, instead
 * of failing the whole call: the others still answer.
 */
struct status_ctx;
struct status_part {
	struct status_ctx	 *ctx;
	const struct store_type	**types;	/* the types of one backend */
	size_t			 *index;	/* each one's place in ctx */
	size_t			  n;
};
struct status_item {
	struct status_ctx	*ctx;
	size_t			 i;
	int			 source;	/* enum cred_source */
	char			 account[STORE_IDENT_MAX + 1];
};
/* Why a type's status is unknown (code 0: it is known). */
struct status_error {
	int	 code;
	char	*msg;
};
struct status_ctx {
	struct rpc_call		*call;
	char			 user[STORE_UUID_LEN + 1];
	struct store_type	*types;
	size_t			 ntypes;
	int64_t			*updated;
	struct status_error	*errors;
	struct status_item	*items;
	struct status_part	 parts[STORE_KINDS];
	size_t			 pending;
	bool			 accounts;	/* second round on */
};

/* Pack the answer of cred.status {user}. */
static void
status_pack(struct status_ctx *x)
{
	msgpack_packer	*pk = &x->call->pk;
	const char	*src;
	size_t		 i;

	msgpack_pack_array(pk, x->ntypes);
	for (i = 0; i < x->ntypes; i++) {
		msgpack_pack_map(pk, x->errors[i].code != 0 ? 9 : 8);
		proto_pack_kv_str(pk, "type", x->types[i].uuid);
		proto_pack_kv_str(pk, "ident", x->types[i].ident);
		proto_pack_kv_str(pk, "name", x->types[i].name);
		proto_pack_kv_str(pk, "storage",
		    store_kind_name(x->types[i].storage));
		proto_pack_kv_bool(pk, "filled", x->updated[i] != 0);
		rpc_pack_kv_time(pk, "updated_at", x->updated[i]);
		proto_pack_cstr(pk, "source");
		if ((src = rpc_cred_source_name(x->items[i].source)) != NULL)
			proto_pack_cstr(pk, src);
		else
			msgpack_pack_nil(pk);
		proto_pack_cstr(pk, "account");
		if (x->items[i].account[0] != '\0')
			proto_pack_cstr(pk, x->items[i].account);
		else
			msgpack_pack_nil(pk);
		/* The same {code, message} map as a call's error. */
		if (x->errors[i].code != 0) {
			proto_pack_cstr(pk, "error");
			msgpack_pack_map(pk, 2);
			proto_pack_kv_str(pk, "code",
			    cb_error_name(x->errors[i].code));
			proto_pack_kv_str(pk, "message",
			    x->errors[i].msg != NULL ? x->errors[i].msg :
			    "out of memory");
		}
	}
}

static void
status_free(struct status_ctx *x)
{
	size_t	i;

	for (i = 0; x->errors != NULL && i < x->ntypes; i++)
		free(x->errors[i].msg);
	for (i = 0; i < STORE_KINDS; i++) {
		free(x->parts[i].types);
		free(x->parts[i].index);
	}
	free(x->errors);
	free(x->updated);
	free(x->items);
	store_type_list_free(x->types, x->ntypes);
	free(x);
}

/* Record why a type's status is unknown. */
static void
status_error(struct status_ctx *x, size_t i, const struct cb_error *err)
{
	if (x->errors[i].code != 0)
		return;
	if (err != NULL && err->code != 0) {
		x->errors[i].code = err->code;
		x->errors[i].msg = strdup(err->msg);
	} else {
		x->errors[i].code = CB_EINTERNAL;
		x->errors[i].msg = strdup("status unknown");
	}
}

static bool	status_next(struct status_ctx *);

/* The round is over: answer when the last one is. */
static void
status_end_one(struct status_ctx *x)
{
	if (--x->pending > 0 || !status_next(x))
		return;
	status_pack(x);
	rpc_finish(x->call, 0, NULL);
	status_free(x);
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
	status_end_one(x);
}

/* The value of the account a user is linked to (or the default's). */
static void
status_account_got(void *arg, int rc, const char *sealed, int64_t updated_at,
    const struct cb_error *err)
{
	struct status_item	*it = arg;

	(void)sealed;
	if (rc == 0)
		it->ctx->updated[it->i] = updated_at;
	else if (rc != -CB_ENOTFOUND)
		status_error(it->ctx, it->i, err);
	status_end_one(it->ctx);
}

/*
 * The users' own values are known: ask for the accounts of the types
 * where the user has none.  True when there is nothing left to wait for.
 */
static bool
status_next(struct status_ctx *x)
{
	struct broker		*b = x->call->broker;
	struct status_item	*it;
	struct values		*v;
	struct values_ref	 ref;
	struct cb_error		 e;
	size_t			 i;
	int			 rc;

	if (x->accounts)
		return true;
	x->accounts = true;
	x->pending = 1;
	for (i = 0; i < x->ntypes; i++) {
		it = &x->items[i];
		if (x->errors[i].code != 0)
			continue;
		if (x->updated[i] != 0) {
			it->source = CRED_SOURCE_OWN;
			continue;
		}
		rc = rpc_cred_bound(b, &x->types[i], x->user, &it->source,
		    it->account, &e);
		if (rc == -CB_ENOTFOUND)
			continue;
		if (rc != 0) {
			status_error(x, i, &e);
			continue;
		}
		v = values_for(b, &x->types[i]);
		ref.type_uuid = x->types[i].uuid;
		ref.user_uuid = NULL;
		ref.account = it->account;
		ref.generation = x->types[i].generation;
		x->pending++;
		if (!v->ops->usable(v, &e) ||
		    v->ops->get(v, &ref, status_account_got, it, &e) != 0) {
			x->pending--;
			status_error(x, i, &e);
		}
	}
	return --x->pending == 0;
}

/*
 * cred.status {type}: the type's accounts, from its backend's list (those
 * holding a value) merged with the names its links use (an account that
 * was deleted with force still has its links).
 */
struct tstatus_ctx {
	struct rpc_call		*call;
	struct store_type	 t;
	struct store_link	*links;		/* ordered by account */
	size_t			 nlinks;
};

static void
tstatus_free(struct tstatus_ctx *x)
{
	store_links_free(x->links, x->nlinks);
	store_type_free(&x->t);
	free(x);
}

/*
 * Walk the accounts in name order: pack each (pk not NULL) or count them.
 */
static size_t
tstatus_walk(struct tstatus_ctx *x, msgpack_packer *pk, char *const *names,
    const int64_t *updated_at, size_t n)
{
	const char	*name;
	size_t		 i = 0, j = 0, count = 0, k;
	int64_t		 when;
	int		 c;

	while (i < n || j < x->nlinks) {
		if (i == n)
			c = 1;
		else if (j == x->nlinks)
			c = -1;
		else
			c = strcmp(names[i], x->links[j].account);
		name = c <= 0 ? names[i] : x->links[j].account;
		when = c <= 0 ? updated_at[i] : 0;
		if (c <= 0)
			i++;
		for (k = j; c >= 0 && k < x->nlinks &&
		    strcmp(x->links[k].account, name) == 0; k++)
			;
		if (pk != NULL) {
			msgpack_pack_map(pk, 3);
			proto_pack_kv_str(pk, "name", name);
			rpc_pack_kv_time(pk, "updated_at", when);
			proto_pack_kv_int(pk, "links", (int64_t)(k > j ?
			    k - j : 0));
		}
		if (k > j)
			j = k;
		count++;
	}
	return count;
}

/* The backend listed the type's accounts: answer cred.status {type}. */
static void
tstatus_listed(void *arg, int rc, char *const *names,
    const int64_t *updated_at, size_t n, const struct cb_error *err)
{
	struct tstatus_ctx	*x = arg;
	msgpack_packer		*pk = &x->call->pk;

	if (rc == 0) {
		msgpack_pack_map(pk, 4);
		proto_pack_kv_str(pk, "type", x->t.uuid);
		proto_pack_kv_str(pk, "ident", x->t.ident);
		proto_pack_cstr(pk, "default_account");
		if (x->t.default_account[0] != '\0')
			proto_pack_cstr(pk, x->t.default_account);
		else
			msgpack_pack_nil(pk);
		proto_pack_cstr(pk, "accounts");
		msgpack_pack_array(pk, tstatus_walk(x, NULL, names,
		    updated_at, n));
		tstatus_walk(x, pk, names, updated_at, n);
	}
	rpc_finish(x->call, rc, err);
	tstatus_free(x);
}

/* cred.status {type} -> {type, ident, default_account, accounts} */
static int
rpc_cred_status_type(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	struct tstatus_ctx	*x;
	struct values		*v;
	struct cb_error		 why;
	char			*ref = NULL;
	int			 rc;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	x->call = call;
	if ((rc = proto_get_str(params, "type", true, &ref, err)) != 0)
		goto fail;
	if ((rc = store_type_get(call->broker->store, ref, &x->t,
	    err)) != 0) {
		rpc_audit(call, ref, NULL);
		goto fail;
	}
	rpc_audit(call, x->t.ident, NULL);
	v = values_for(call->broker, &x->t);
	if (!v->ops->usable(v, &why)) {
		rc = cb_error_set(err, why.code, "credential type '%s' is "
		    "stored in %s: %s", x->t.ident, v->ops->where, why.msg);
		goto fail;
	}
	if ((rc = store_link_list(call->broker->store, x->t.uuid, &x->links,
	    &x->nlinks, err)) != 0 ||
	    (rc = v->ops->list_accounts(v, x->t.uuid, x->t.generation,
	    tstatus_listed, x, err)) != 0)
		goto fail;
	free(ref);
	return RPC_WAIT;
fail:
	free(ref);
	tstatus_free(x);
	return rc;
}

/*
 * cred.status {user} -> [{type, ident, name, storage, filled, updated_at,
 * source, account}], or {type} -> {type, ident, default_account, accounts}
 */
int
rpc_cred_status(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "user", "type", NULL };
	struct broker		*b = call->broker;
	struct status_ctx	*x = NULL;
	struct status_part	*p;
	struct values		*v;
	struct cb_error		 e;
	const msgpack_object	*o;
	size_t			 i, k;
	char			*user = NULL;
	int			 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0)
		return rc;
	if ((o = proto_map_get(params, "type")) != NULL &&
	    o->type != MSGPACK_OBJECT_NIL) {
		if ((o = proto_map_get(params, "user")) != NULL &&
		    o->type != MSGPACK_OBJECT_NIL)
			return cb_error_set(err, CB_EBADREQ, "pass exactly "
			    "one of 'user' and 'type'");
		return rpc_cred_status_type(call, params, err);
	}
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	x->call = call;
	if ((rc = rpc_user(call, params, &user, err)) != 0 ||
	    (rc = store_type_list(b->store, &x->types, &x->ntypes, err)) != 0)
		goto fail;
	memcpy(x->user, user, sizeof(x->user));
	x->errors = calloc(x->ntypes + 1, sizeof(*x->errors));
	x->updated = calloc(x->ntypes + 1, sizeof(*x->updated));
	x->items = calloc(x->ntypes + 1, sizeof(*x->items));
	for (k = 0; k < STORE_KINDS; k++) {
		x->parts[k].ctx = x;
		x->parts[k].types = calloc(x->ntypes + 1, sizeof(void *));
		x->parts[k].index = calloc(x->ntypes + 1, sizeof(size_t));
		if (x->parts[k].types == NULL || x->parts[k].index == NULL)
			x->items = NULL;
	}
	if (x->errors == NULL || x->updated == NULL || x->items == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto fail;
	}
	for (i = 0; i < x->ntypes; i++) {
		x->items[i].ctx = x;
		x->items[i].i = i;
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
	if (--x->pending > 0 || !status_next(x))
		return RPC_WAIT;
	status_pack(x);
	status_free(x);
	return 0;
fail:
	free(user);
	status_free(x);
	return rc;
}

/*
 * cred.list {type, kind?, after?, limit?} names the users (or accounts)
 * holding a value of a type, a page at a time: no value, sealed or not,
 * goes into the answer.  The backend lists them all (Vault's LIST has no
 * paging); the broker sorts them and cuts the page.
 */
#define CRED_LIST_LIMIT		100	/* per page by default */
#define CRED_LIST_LIMIT_MAX	1000

struct list_ctx {
	struct rpc_call	*call;
	char		*after;		/* NULL: from the start */
	int64_t		 limit;
};

static int
list_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Pack the page of names after x->after and finish the call. */
static void
list_answer(struct list_ctx *x, int rc, char *const *names, size_t n,
    const struct cb_error *err)
{
	msgpack_packer	*pk = &x->call->pk;
	struct cb_error	 e;
	char		**sorted = NULL;
	size_t		 i, first = 0, count;

	if (rc == 0 && (sorted = calloc(n + 1, sizeof(*sorted))) == NULL) {
		rc = cb_error_set(&e, CB_EINTERNAL, "out of memory");
		err = &e;
	}
	if (rc == 0) {
		/* An empty list may come as NULL. */
		if (n > 0) {
			memcpy(sorted, names, n * sizeof(*sorted));
			qsort(sorted, n, sizeof(*sorted), list_cmp);
		}
		while (x->after != NULL && first < n &&
		    strcmp(sorted[first], x->after) <= 0)
			first++;
		count = n - first;
		if (count > (size_t)x->limit)
			count = (size_t)x->limit;
		msgpack_pack_map(pk, 2);
		proto_pack_cstr(pk, "items");
		msgpack_pack_array(pk, (uint32_t)count);
		for (i = first; i < first + count; i++)
			proto_pack_cstr(pk, sorted[i]);
		/* More remain: the last item of this page is the cursor. */
		proto_pack_cstr(pk, "next");
		if (first + count < n)
			proto_pack_cstr(pk, sorted[first + count - 1]);
		else
			msgpack_pack_nil(pk);
	}
	rpc_finish(x->call, rc, err);
	free(sorted);
	free(x->after);
	free(x);
}

static void
list_users_got(void *arg, int rc, char *const *users, size_t n,
    const struct cb_error *err)
{
	list_answer(arg, rc, users, n, err);
}

static void
list_accounts_got(void *arg, int rc, char *const *names,
    const int64_t *updated_at, size_t n, const struct cb_error *err)
{
	(void)updated_at;
	list_answer(arg, rc, names, n, err);
}

/* cred.list {type, kind?, after?, limit?} -> {items, next} */
int
rpc_cred_list(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "kind", "after", "limit",
	    NULL };
	struct store_type	 t;
	struct list_ctx		*x = NULL;
	struct values		*v;
	struct cb_error		 why;
	char			*ref = NULL, *kind = NULL;
	bool			 accounts = false;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	x->call = call;
	x->limit = CRED_LIST_LIMIT;
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = proto_get_str(params, "type", true, &ref, err)) != 0 ||
	    (rc = proto_get_str(params, "kind", false, &kind, err)) < 0 ||
	    (rc = proto_get_str(params, "after", false, &x->after,
	    err)) < 0 ||
	    (rc = proto_get_int(params, "limit", false, &x->limit, err)) < 0)
		goto fail;
	if (kind != NULL && strcmp(kind, "accounts") == 0)
		accounts = true;
	else if (kind != NULL && strcmp(kind, "users") != 0) {
		rc = cb_error_set(err, CB_EBADREQ, "parameter 'kind' must be "
		    "\"users\" or \"accounts\"");
		goto fail;
	}
	if (x->limit < 1 || x->limit > CRED_LIST_LIMIT_MAX) {
		rc = cb_error_set(err, CB_EBADREQ, "parameter 'limit' must be "
		    "1..%d, got %lld", CRED_LIST_LIMIT_MAX,
		    (long long)x->limit);
		goto fail;
	}
	if ((rc = store_type_get(call->broker->store, ref, &t, err)) != 0) {
		rpc_audit(call, ref, NULL);
		goto fail;
	}
	rpc_audit(call, t.ident, NULL);
	v = values_for(call->broker, &t);
	if (!v->ops->usable(v, &why)) {
		rc = cb_error_set(err, why.code, "credential type '%s' is "
		    "stored in %s: %s", t.ident, v->ops->where, why.msg);
		goto fail;
	}
	if (accounts)
		rc = v->ops->list_accounts(v, t.uuid, t.generation,
		    list_accounts_got, x, err);
	else
		rc = v->ops->list_users(v, t.uuid, list_users_got, x, err);
	if (rc != 0)
		goto fail;
	store_type_free(&t);
	free(kind);
	free(ref);
	return RPC_WAIT;
fail:
	store_type_free(&t);
	free(kind);
	free(ref);
	if (x != NULL)
		free(x->after);
	free(x);
	return rc;
}

/*
 * Refuse to delete an account that users are linked to or that is the
 * type's default, unless force.
 */
static int
cred_account_in_use(struct rpc_call *call, const struct store_type *t,
    const char *account, struct cb_error *err)
{
	int64_t	n = 0;
	bool	dflt;
	int	rc;

	if ((rc = store_link_count(call->broker->store, t->uuid, account, &n,
	    err)) != 0)
		return rc;
	dflt = strcmp(t->default_account, account) == 0;
	if (n == 0 && !dflt)
		return 0;
	return cb_error_set(err, CB_ECONFLICT, "account '%s' of credential "
	    "type '%s' has %lld link(s) and %s the type's default account; "
	    "unlink it first, or delete it with force (credctl cred rm %s "
	    "--account %s --force)", account, t->ident, (long long)n,
	    dflt ? "is" : "is not", t->ident, account);
}

/* cred.delete {type, user | account, force?} -> {} */
int
rpc_cred_delete(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "user", "account",
	    "force", NULL };
	struct store_type	 t;
	struct values		*vs;
	struct values_ref	 ref = { 0 };
	struct cred_wait	*w;
	char			*user = NULL;
	char			 account[STORE_IDENT_MAX + 1];
	bool			 force = false;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = proto_get_bool(params, "force", false, &force, err)) < 0 ||
	    (rc = rpc_cred_target(call, params, &t, &user, account,
	    err)) != 0)
		goto done;
	if (user != NULL && proto_map_get(params, "force") != NULL) {
		rc = cb_error_set(err, CB_EBADREQ, "force applies to an "
		    "account only");
		goto done;
	}
	/* Links and the default stay with force: they name the account. */
	if (user == NULL && !force &&
	    (rc = cred_account_in_use(call, &t, account, err)) != 0)
		goto done;
	ref.type_uuid = t.uuid;
	ref.user_uuid = user;
	ref.account = user == NULL ? account : NULL;
	ref.generation = t.generation;
	if ((w = cred_wait_new(call, &t, user, ref.account, err)) == NULL) {
		rc = -CB_EINTERNAL;
		goto done;
	}
	vs = values_for(call->broker, &t);
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

/*
 * cred.link and cred.unlink waiting for their write: the link, its
 * sealed account name and when.
 */
struct cred_linkw {
	struct dbwrite		 w;	/* first */
	struct cred_wait	 cw;
	char			*sealed;	/* NULL: unlink */
	int64_t			 now;
};

/* On the writer's thread: make or remove the link. */
static int
cred_link_run(struct dbwrite *w, struct store *wst, struct cb_error *err)
{
	struct cred_linkw	*x = (struct cred_linkw *)w;

	if (x->sealed == NULL)
		return store_link_delete(wst, x->cw.uuid, x->cw.user, err);
	return store_link_set(wst, x->cw.uuid, x->cw.user, x->cw.account,
	    x->sealed, x->now, err);
}

static void
cred_link_done(struct dbwrite *w, int rc, const struct cb_error *err)
{
	struct cred_linkw	*x = (struct cred_linkw *)w;
	struct rpc_call		*call = x->cw.call;
	struct cb_error		 e;

	if (rc == -CB_ENOTFOUND && x->sealed == NULL) {
		rc = cb_error_set(&e, CB_ENOTFOUND, "user %s has no link "
		    "for credential type '%s'", x->cw.user, x->cw.ident);
		err = &e;
	}
	if (rc == 0 && x->sealed == NULL)
		msgpack_pack_map(&call->pk, 0);
	else if (rc == 0) {
		msgpack_pack_map(&call->pk, 2);
		proto_pack_kv_str(&call->pk, "account", x->cw.account);
		rpc_pack_kv_time(&call->pk, "updated_at", x->now);
	}
	rpc_finish(call, rc, err);
	free(x->sealed);
	free(x);
}

/* Send a link (sealed set) or an unlink to the writer, which answers. */
static int
cred_link_write(const struct cred_wait *cw, char *sealed,
    struct cb_error *err)
{
	struct cred_linkw	*x;
	int			 rc;

	if ((x = calloc(1, sizeof(*x))) == NULL) {
		free(sealed);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	x->cw = *cw;
	x->sealed = sealed;
	x->now = (int64_t)time(NULL);
	x->w.run = cred_link_run;
	x->w.done = cred_link_done;
	if ((rc = rpc_write(cw->call, &x->w, err)) != 0) {
		free(x->sealed);
		free(x);
	}
	return rc;
}

/* The account's value was looked up for cred.link: link the user to it. */
static void
cred_link_got(void *arg, int rc, const char *sealed, int64_t updated_at,
    const struct cb_error *err)
{
	struct cred_wait	*w = arg;
	struct broker		*b = w->call->broker;
	struct cb_error		 e;
	char			 ctx[SEALCTX_LINK_MAX];
	char			*text = NULL;

	cb_error_clear(&e);
	(void)sealed;
	(void)updated_at;
	if (rc == -CB_ENOTFOUND) {
		rc = cb_error_set(&e, CB_ENOTFOUND, "account '%s' of "
		    "credential type '%s' has no value; set it first",
		    w->account, w->ident);
		err = &e;
	} else if (rc == 0) {
		sealctx_link(ctx, sizeof(ctx), w->uuid, w->user);
		if ((rc = keys_seal(b, ctx, (const uint8_t *)w->account,
		    strlen(w->account), &text, &e)) != 0)
			free(text);
		else if ((rc = cred_link_write(w, text, &e)) == 0) {
			free(w);	/* cred_link_done answers */
			return;
		}
		err = &e;
	}
	rpc_finish(w->call, rc, err);
	free(w);
}

/* cred.link {type, user, account} -> {account, updated_at} */
int
rpc_cred_link(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "user", "account", NULL };
	struct store_type	 t;
	struct values		*vs;
	struct values_ref	 ref;
	struct cred_wait	*w;
	char			*user = NULL;
	char			 account[STORE_IDENT_MAX + 1];
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_account(params, true, account, err)) != 0 ||
	    (rc = rpc_cred_target(call, params, &t, &user, NULL, err)) != 0)
		goto done;
	if ((w = cred_wait_new(call, &t, user, account, err)) == NULL) {
		rc = -CB_EINTERNAL;
		goto done;
	}
	/* Only an account that has a value can be linked to. */
	ref.type_uuid = t.uuid;
	ref.user_uuid = NULL;
	ref.account = w->account;
	ref.generation = t.generation;
	vs = values_for(call->broker, &t);
	if ((rc = vs->ops->get(vs, &ref, cred_link_got, w, err)) != 0) {
		free(w);
		goto done;
	}
	rc = RPC_WAIT;
done:
	free(user);
	store_type_free(&t);
	return rc;
}

/* cred.unlink {type, user} -> {} */
int
rpc_cred_unlink(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "user", NULL };
	struct store_type	 t;
	struct cred_wait	*w = NULL;
	char			*user = NULL;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_cred_target(call, params, &t, &user, NULL, err)) != 0)
		goto done;
	if ((w = cred_wait_new(call, &t, user, NULL, err)) == NULL) {
		rc = -CB_EINTERNAL;
		goto done;
	}
	if ((rc = cred_link_write(w, NULL, err)) == 0)
		rc = RPC_WAIT;
	free(w);
done:
	free(user);
	store_type_free(&t);
	return rc;
}

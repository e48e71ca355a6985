/*
 * rpc-type: credential types (SPEC section 2 and 4.3): type.create, get,
 * list, update, delete and clear.  Types carry no secret; they need the
 * edit:user-access-credentials-types permission.  Their writes go to the
 * store's writer thread (dbwrite), and each method answers once its write
 * is durable.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "dest.h"
#include "proto.h"
#include "store.h"
#include "values.h"

/*
 * Pack a type as the map the protocol documents; with a notice (a change
 * of storage), also how many db values the change deleted.
 */
static void
rpc_pack_type(msgpack_packer *pk, const struct store_type *t,
    const char *notice, int64_t removed)
{
	size_t	i;

	msgpack_pack_map(pk, notice != NULL ? 12 : 10);
	proto_pack_kv_str(pk, "uuid", t->uuid);
	proto_pack_kv_str(pk, "ident", t->ident);
	proto_pack_kv_str(pk, "name", t->name);
	proto_pack_kv_str(pk, "description",
	    t->description != NULL ? t->description : "");
	proto_pack_kv_str(pk, "storage", store_kind_name(t->storage));
	proto_pack_cstr(pk, "destinations");
	msgpack_pack_array(pk, t->ndestinations);
	for (i = 0; i < t->ndestinations; i++)
		proto_pack_cstr(pk, t->destinations[i]);
	rpc_pack_kv_time(pk, "created_at", t->created_at);
	rpc_pack_kv_time(pk, "updated_at", t->updated_at);
	proto_pack_cstr(pk, "default_account");
	if (t->default_account[0] != '\0')
		proto_pack_cstr(pk, t->default_account);
	else
		msgpack_pack_nil(pk);
	proto_pack_cstr(pk, "ca_file");
	if (t->ca_file != NULL)
		proto_pack_cstr(pk, t->ca_file);
	else
		msgpack_pack_nil(pk);
	if (notice != NULL) {
		proto_pack_kv_str(pk, "notice", notice);
		proto_pack_kv_int(pk, "removed", removed);
	}
}

/*
 * Check a type's CA file (SPEC 13) as the broker will use it: an absolute
 * path shorter than PATH_MAX, of a regular file the broker can read, that
 * holds at least one PEM certificate and nothing malformed.  libcurl
 * reads it again at each request.
 */
static int
rpc_type_ca_check(const char *path, struct cb_error *err)
{
	struct stat	 sb;
	unsigned long	 e;
	BIO		*bio = NULL;
	FILE		*f = NULL;
	X509		*x;
	size_t		 n = 0;
	int		 fd = -1, rc = 0;

	if (strlen(path) >= PATH_MAX)
		return cb_error_set(err, CB_EBADREQ, "ca_file '%.64s...' is "
		    "longer than %d bytes", path, PATH_MAX - 1);
	if (*path != '/')
		return cb_error_set(err, CB_EBADREQ, "ca_file '%s' is not an "
		    "absolute path", path);
	/* O_NONBLOCK: a FIFO is refused below, not waited on. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1 ||
	    fstat(fd, &sb) == -1) {
		rc = cb_error_set(err, CB_EBADREQ, "cannot read ca_file '%s': "
		    "%s", path, strerror(errno));
		goto done;
	}
	if (!S_ISREG(sb.st_mode)) {
		rc = cb_error_set(err, CB_EBADREQ, "ca_file '%s' is not a "
		    "regular file", path);
		goto done;
	}
	if ((f = fdopen(fd, "r")) == NULL) {
		rc = cb_error_set(err, CB_EBADREQ, "cannot read ca_file '%s': "
		    "%s", path, strerror(errno));
		goto done;
	}
	fd = -1;
	if ((bio = BIO_new_fp(f, BIO_NOCLOSE)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	ERR_clear_error();
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		X509_free(x);
		n++;
	}
	/* The end of the file is "no start line"; anything else is not. */
	e = ERR_peek_last_error();
	if (ferror(f))
		rc = cb_error_set(err, CB_EBADREQ, "cannot read ca_file '%s'",
		    path);
	else if (e != 0 && !(ERR_GET_LIB(e) == ERR_LIB_PEM &&
	    ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
		rc = cb_error_set(err, CB_EBADREQ, "ca_file '%s' holds a "
		    "malformed PEM certificate", path);
	else if (n == 0)
		rc = cb_error_set(err, CB_EBADREQ, "ca_file '%s' holds no PEM "
		    "certificate", path);
	ERR_clear_error();
done:
	BIO_free(bio);
	if (f != NULL)
		fclose(f);
	if (fd != -1)
		close(fd);
	return rc;
}

/*
 * Read ca_file into t: a path (checked) sets it, "" or nil clears it, an
 * absent key leaves it.
 */
static int
rpc_type_ca_file(const msgpack_object *params, struct store_type *t,
    struct cb_error *err)
{
	char	*s;
	int	 rc;

	if (proto_map_get(params, "ca_file") == NULL)
		return 0;
	if ((rc = proto_get_str(params, "ca_file", false, &s, err)) < 0)
		return rc;
	if (s != NULL && *s != '\0' && (rc = rpc_type_ca_check(s, err)) != 0) {
		free(s);
		return rc;
	}
	free(t->ca_file);
	t->ca_file = NULL;
	if (s != NULL && *s == '\0')
		free(s);
	else
		t->ca_file = s;
	return 0;
}

/*
 * Read name, description, storage, destinations and ca_file into t;
 * absent keys leave t as it is.  Shared by type.create and type.update.
 */
static int
rpc_type_fields(const msgpack_object *params, struct store_type *t,
    struct cb_error *err)
{
	const msgpack_object	*d;
	char			*s = NULL, **dests;
	uint32_t		 i, j;
	int			 rc, k;

	if ((rc = proto_get_str(params, "name", false, &s, err)) < 0)
		return rc;
	if (rc == 0) {
		if (*s == '\0' || strlen(s) > STORE_NAME_MAX) {
			free(s);
			return cb_error_set(err, CB_EBADREQ,
			    "name must be 1 to %d bytes", STORE_NAME_MAX);
		}
		free(t->name);
		t->name = s;
	}
	if ((rc = proto_get_str(params, "description", false, &s, err)) < 0)
		return rc;
	if (rc == 0) {
		if (strlen(s) > STORE_DESC_MAX) {
			free(s);
			return cb_error_set(err, CB_EBADREQ,
			    "description must be at most %d bytes",
			    STORE_DESC_MAX);
		}
		free(t->description);
		t->description = s;
	}
	if ((rc = proto_get_str(params, "storage", false, &s, err)) < 0)
		return rc;
	if (rc == 0) {
		if ((k = store_kind_parse(s)) < 0) {
			free(s);
			return cb_error_set(err, CB_EBADREQ,
			    "storage must be \"db\" or \"vault\"");
		}
		t->storage = k;
		free(s);
	}
	if ((rc = rpc_type_ca_file(params, t, err)) != 0)
		return rc;
	if ((d = proto_map_get(params, "destinations")) == NULL ||
	    d->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (d->type != MSGPACK_OBJECT_ARRAY)
		return cb_error_set(err, CB_EBADREQ,
		    "parameter 'destinations' must be an array of strings");
	if (d->via.array.size > STORE_DEST_MAX)
		return cb_error_set(err, CB_EBADREQ,
		    "at most %d destinations per type", STORE_DEST_MAX);
	if ((dests = calloc(d->via.array.size + 1, sizeof(*dests))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	for (i = 0; i < d->via.array.size; i++) {
		const msgpack_object *e = &d->via.array.ptr[i];
		char tmp[STORE_DEST_LEN_MAX + 1];

		if (e->type != MSGPACK_OBJECT_STR ||
		    e->via.str.size > STORE_DEST_LEN_MAX ||
		    memchr(e->via.str.ptr, '\0', e->via.str.size) != NULL) {
			rc = cb_error_set(err, CB_EBADREQ, "destinations must "
			    "be strings of at most %d bytes",
			    STORE_DEST_LEN_MAX);
			goto fail;
		}
		memcpy(tmp, e->via.str.ptr, e->via.str.size);
		tmp[e->via.str.size] = '\0';
		if ((rc = dest_normalize(tmp, &dests[i], err)) != 0)
			goto fail;
		for (j = 0; j < i; j++)
			if (strcmp(dests[j], dests[i]) == 0) {
				rc = cb_error_set(err, CB_EBADREQ,
				    "destination '%s' is listed twice",
				    dests[i]);
				goto fail;
			}
	}
	for (j = 0; j < t->ndestinations; j++)
		free(t->destinations[j]);
	free(t->destinations);
	t->destinations = dests;
	t->ndestinations = d->via.array.size;
	return 0;
fail:
	for (j = 0; j <= i && j < d->via.array.size; j++)
		free(dests[j]);
	free(dests);
	return rc;
}

/* Look up params.type; not_found names it. */
static int
rpc_type_lookup(struct rpc_call *call, const msgpack_object *params,
    struct store_type *t, struct cb_error *err)
{
	char	*ref;
	int	 rc;

	if ((rc = proto_get_str(params, "type", true, &ref, err)) != 0)
		return rc;
	rc = store_type_get(call->broker->store, ref, t, err);
	rpc_audit(call, rc == 0 ? t->ident : ref, NULL);
	free(ref);
	return rc;
}

/* type.create waiting for its write. */
struct tcreate_ctx {
	struct dbwrite		 w;	/* first */
	struct rpc_call		*call;
	struct store_type	 t;
};

static int
tcreate_run(struct dbwrite *w, struct store *wst, struct cb_error *err)
{
	struct tcreate_ctx	*x = (struct tcreate_ctx *)w;

	return store_type_create(wst, &x->t, err);
}

static void
tcreate_done(struct dbwrite *w, int rc, const struct cb_error *err)
{
	struct tcreate_ctx	*x = (struct tcreate_ctx *)w;

	if (rc == 0)
		rpc_pack_type(&x->call->pk, &x->t, NULL, 0);
	rpc_finish(x->call, rc, err);
	store_type_free(&x->t);
	free(x);
}

/*
 * type.create {ident, name, description?, storage?, destinations?,
 * ca_file?, uuid?}
 * A given uuid is kept, so that values stored under an existing type uuid
 * (in Vault, by the platform) are found where they are.
 */
int
rpc_type_create(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "ident", "name", "description",
	    "storage", "destinations", "ca_file", "uuid", NULL };
	struct store_type	 t;
	struct tcreate_ctx	*x;
	char			*ident = NULL, *uuid = NULL;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = proto_get_str(params, "ident", true, &ident, err)) != 0 ||
	    (rc = proto_get_str(params, "uuid", false, &uuid, err)) < 0)
		goto done;
	if (!ids_type_ident_valid(ident)) {
		rc = cb_error_set(err, CB_EBADREQ, "ident must match "
		    "[A-Za-z][A-Za-z0-9_.-]{0,63} and not be a uuid");
		goto done;
	}
	memcpy(t.ident, ident, strlen(ident) + 1);
	rpc_audit(call, t.ident, NULL);
	if (uuid != NULL && !ids_uuid_valid(uuid)) {
		rc = cb_error_set(err, CB_EBADREQ, "uuid must be a lower-case "
		    "uuid in its 36-character text form "
		    "(8-4-4-4-12 hex digits)");
		goto done;
	}
	t.storage = STORE_DB;
	if ((rc = rpc_type_fields(params, &t, err)) != 0)
		goto done;
	if (t.name == NULL) {
		rc = cb_error_set(err, CB_EBADREQ,
		    "missing required parameter 'name'");
		goto done;
	}
	if (t.description == NULL && (t.description = strdup("")) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if (t.destinations == NULL &&
	    (t.destinations = calloc(1, sizeof(char *))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if (uuid != NULL)
		memcpy(t.uuid, uuid, STORE_UUID_LEN + 1);
	else if ((rc = store_uuid_new(t.uuid)) != 0) {
		rc = cb_error_set(err, CB_EINTERNAL, "cannot make a uuid");
		goto done;
	}
	t.created_at = t.updated_at = (int64_t)time(NULL);
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	x->call = call;
	x->t = t;	/* takes the strings */
	memset(&t, 0, sizeof(t));
	x->w.run = tcreate_run;
	x->w.done = tcreate_done;
	memcpy(x->w.type_uuid, x->t.uuid, sizeof(x->w.type_uuid));
	if ((rc = rpc_write(call, &x->w, err)) != 0) {
		store_type_free(&x->t);
		free(x);
		goto done;
	}
	rc = RPC_WAIT;
done:
	free(ident);
	free(uuid);
	store_type_free(&t);
	return rc;
}

/* type.get {type} */
int
rpc_type_get(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", NULL };
	struct store_type	 t;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_type_lookup(call, params, &t, err)) != 0)
		return rc;
	rpc_pack_type(&call->pk, &t, NULL, 0);
	store_type_free(&t);
	return 0;
}

/* type.list {} */
int
rpc_type_list(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { NULL };
	struct store_type	*v;
	size_t			 n, i;
	int			 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = store_type_list(call->broker->store, &v, &n, err)) != 0)
		return rc;
	msgpack_pack_array(&call->pk, n);
	for (i = 0; i < n; i++)
		rpc_pack_type(&call->pk, &v[i], NULL, 0);
	store_type_list_free(v, n);
	return 0;
}

/* What a change of storage did to the values, by the storage left. */
static const char *const rpc_type_notices[STORE_KINDS] = {
	[STORE_DB] = "storage changed from db to vault: values are not "
	    "migrated; the values stored in the database were deleted",
	[STORE_VAULT] = "storage changed from vault to db: values are not "
	    "migrated; the values stored in Vault are never served again, "
	    "and type.clear or type.delete while the type is stored in "
	    "Vault removes them",
};

/*
 * type.update, waiting (with default_account NAME) for the backend to say
 * whether the account has a value.
 */
struct tupd_ctx {
	struct dbwrite		 w;		/* first */
	struct rpc_call		*call;
	struct store_type	 t;
	int			 old_storage;
	int			 dflt;		/* TUPD_* */
	char			 account[STORE_IDENT_MAX + 1];
	char			*sealed;	/* the default's name, sealed */
	int64_t			 removed;
	bool			 counted;	/* removed counted before */
};
#define TUPD_KEEP	0
#define TUPD_SET	1
#define TUPD_CLEAR	2

static void
tupd_free(struct tupd_ctx *x)
{
	store_type_free(&x->t);
	free(x->sealed);
	free(x);
}

/*
 * On the writer's thread: the update and the default account, in one
 * transaction.  SPEC 4.3: values are not migrated, and none stored before
 * the change is ever visible through the type again: the db values are
 * deleted with the change, and the Vault ones are of an earlier storage
 * generation from now on, whether Vault is reachable or not.
 */
static int
tupd_run(struct dbwrite *w, struct store *wst, struct cb_error *err)
{
	struct tupd_ctx	*x = (struct tupd_ctx *)w;
	int		 rc;

	if ((rc = store_type_update_count(wst, &x->t, x->counted ? NULL :
	    &x->removed, err)) != 0)
		return rc;
	if (x->dflt == TUPD_SET)
		return store_type_set_default(wst, x->t.uuid, x->account,
		    x->sealed, err);
	if (x->dflt == TUPD_CLEAR)
		return store_type_set_default(wst, x->t.uuid, NULL, NULL,
		    err);
	return 0;
}

/* The update is durable: pack the type and answer. */
static void
tupd_done(struct dbwrite *w, int rc, const struct cb_error *err)
{
	struct tupd_ctx	*x = (struct tupd_ctx *)w;
	const char	*notice = NULL;

	if (rc == 0) {
		if (x->dflt == TUPD_SET)
			memcpy(x->t.default_account, x->account,
			    sizeof(x->t.default_account));
		else if (x->dflt == TUPD_CLEAR)
			x->t.default_account[0] = '\0';
		if (x->t.storage != x->old_storage)
			notice = rpc_type_notices[x->old_storage];
		rpc_pack_type(&x->call->pk, &x->t, notice, x->removed);
	}
	rpc_finish(x->call, rc, err);
	tupd_free(x);
}

/*
 * Send the update (and the default account) to the writer: 0 when it
 * will answer the call.
 */
static int
tupd_apply(struct tupd_ctx *x, struct cb_error *err)
{
	struct broker	*b = x->call->broker;
	char		 ctx[SEALCTX_LINK_MAX];
	int		 rc;

	x->t.updated_at = (int64_t)time(NULL);
	/* SPEC 10: the default's name is sealed, like a link's. */
	if (x->dflt == TUPD_SET) {
		sealctx_default(ctx, sizeof(ctx), x->t.uuid);
		if ((rc = keys_seal(b, ctx, (const uint8_t *)x->account,
		    strlen(x->account), &x->sealed, err)) != 0)
			return rc;
	}
	x->w.run = tupd_run;
	x->w.done = tupd_done;
	memcpy(x->w.type_uuid, x->t.uuid, sizeof(x->w.type_uuid));
	return rpc_write(x->call, &x->w, err);
}

/* The backend answered whether the new default account has a value. */
static void
tupd_got(void *arg, int rc, const char *sealed, int64_t updated_at,
    const struct cb_error *err)
{
	struct tupd_ctx	*x = arg;
	struct cb_error	 e;

	(void)sealed;
	(void)updated_at;
	cb_error_clear(&e);
	if (rc == -CB_ENOTFOUND)
		rc = cb_error_set(&e, CB_ENOTFOUND, "account '%s' of "
		    "credential type '%s' has no value; set it first",
		    x->account, x->t.ident);
	else if (rc == 0 && (rc = tupd_apply(x, &e)) == 0)
		return;		/* tupd_done answers */
	else if (rc != 0 && e.code == 0)
		e = *err;
	rpc_finish(x->call, rc, &e);
	tupd_free(x);
}

/* The values a change of storage deletes on PostgreSQL are counted. */
static void
tupd_counted(void *arg, int rc, int64_t n, const struct cb_error *err)
{
	struct tupd_ctx	*x = arg;
	struct cb_error	 e;

	if (rc == 0) {
		x->removed = n;
		x->counted = true;
		if ((rc = tupd_apply(x, &e)) == 0)
			return;		/* tupd_done answers */
		err = &e;
	}
	rpc_finish(x->call, rc, err);
	tupd_free(x);
}

/*
 * type.update {type, name?, description?, storage?, destinations?,
 * ca_file?, default_account?}
 */
int
rpc_type_update(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "name", "description",
	    "storage", "destinations", "ca_file", "default_account", NULL };
	const msgpack_object	*d;
	struct tupd_ctx		*x;
	struct values		*v;
	struct values_ref	 ref = { 0 };
	struct cb_error		 why;
	char			*name = NULL;
	int			 rc;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	x->call = call;
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_type_lookup(call, params, &x->t, err)) != 0)
		goto done;
	x->old_storage = x->t.storage;
	if ((rc = rpc_type_fields(params, &x->t, err)) != 0)
		goto done;
	d = proto_map_get(params, "default_account");
	if (d != NULL && d->type == MSGPACK_OBJECT_NIL)
		x->dflt = TUPD_CLEAR;
	else if (d != NULL) {
		if ((rc = proto_get_str(params, "default_account", true,
		    &name, err)) != 0)
			goto done;
		if (!ids_ident_valid(name)) {
			rc = cb_error_set(err, CB_EBADREQ, "default_account "
			    "must be nil or an account name matching "
			    "[a-z][a-z0-9_]{0,63}");
			goto done;
		}
		memcpy(x->account, name, strlen(name) + 1);
		x->dflt = TUPD_SET;
	}
	if (x->dflt != TUPD_SET) {
		/*
		 * On PostgreSQL the values the change deletes are not in
		 * the mirror the write runs on: count them there first.
		 */
		if (call->broker->pgs != NULL &&
		    x->t.storage != x->old_storage)
			rc = pgstore_count_values(call->broker, x->t.uuid,
			    tupd_counted, x, err);
		else
			rc = tupd_apply(x, err);
		if (rc != 0)
			goto done;
		free(name);
		return RPC_WAIT;
	}
	/*
	 * Only an account that has a value can be the default: after a
	 * change of storage, none has one yet.
	 */
	if (x->t.storage != x->old_storage) {
		rc = cb_error_set(err, CB_EBADREQ, "default_account cannot "
		    "be set in the call that changes the storage: no account "
		    "has a value in the new storage yet");
		goto done;
	}
	v = values_for(call->broker, &x->t);
	if (!v->ops->usable(v, &why)) {
		rc = cb_error_set(err, why.code, "credential type '%s' is "
		    "stored in %s: %s", x->t.ident, v->ops->where, why.msg);
		goto done;
	}
	ref.type_uuid = x->t.uuid;
	ref.account = x->account;
	ref.generation = x->t.generation;
	if ((rc = v->ops->get(v, &ref, tupd_got, x, err)) != 0)
		goto done;
	free(name);
	return RPC_WAIT;
done:
	free(name);
	tupd_free(x);
	return rc;
}

/*
 * type.delete: ask the type's backend which users hold a value.  With
 * values there, the answer is conflict unless force; with force, the
 * backend clears them (Vault: every version) before the type goes.  A
 * backend that cannot be reached is not asked: its values stay there,
 * never visible through another type.
 */
struct tdel_ctx {
	struct dbwrite	 w;		/* first */
	struct rpc_call	*call;
	struct values	*v;
	char		 uuid[STORE_UUID_LEN + 1];
	char		 ident[STORE_IDENT_MAX + 1];
	int64_t		 generation;
	size_t		 users;		/* users' values found */
	bool		 force;
};

/* On the writer's thread: the type, its db values and its links go. */
static int
tdel_run(struct dbwrite *w, struct store *wst, struct cb_error *err)
{
	struct tdel_ctx	*x = (struct tdel_ctx *)w;

	return store_type_delete(wst, x->uuid, err);
}

static void
tdel_done(struct dbwrite *w, int rc, const struct cb_error *err)
{
	struct tdel_ctx	*x = (struct tdel_ctx *)w;

	if (rc == 0)
		msgpack_pack_map(&x->call->pk, 0);
	rpc_finish(x->call, rc, err);
	free(x);
}

/* Delete the type itself (the writer answers), or answer the failure. */
static void
tdel_end(struct tdel_ctx *x, int rc, const struct cb_error *err)
{
	struct cb_error	 e;

	if (rc == 0) {
		x->w.run = tdel_run;
		x->w.done = tdel_done;
		memcpy(x->w.type_uuid, x->uuid, sizeof(x->w.type_uuid));
		if ((rc = rpc_write(x->call, &x->w, &e)) == 0)
			return;
		err = &e;
	}
	rpc_finish(x->call, rc, err);
	free(x);
}

static void
tdel_cleared(void *arg, int rc, int64_t n, const struct cb_error *err)
{
	(void)n;
	tdel_end(arg, rc, rc != 0 ? err : NULL);
}

/* The accounts' values are listed too: the users' values counted. */
static void
tdel_accounts(void *arg, int rc, char *const *names,
    const int64_t *updated_at, size_t n, const struct cb_error *err)
{
	struct tdel_ctx	*x = arg;
	struct cb_error	 e;

	(void)names;
	(void)updated_at;
	if (rc != 0) {
		tdel_end(x, rc, err);
		return;
	}
	n += x->users;
	if (n > 0 && !x->force) {
		rc = cb_error_set(&e, CB_ECONFLICT, "credential type '%s' "
		    "still has %zu value(s) in %s; clear it first, or "
		    "delete it with force (credctl type rm %s --force)",
		    x->ident, n, x->v->ops->where, x->ident);
		tdel_end(x, rc, &e);
		return;
	}
	if (n == 0) {
		tdel_end(x, 0, NULL);
		return;
	}
	if ((rc = x->v->ops->clear(x->v, x->uuid, tdel_cleared, x, &e)) != 0)
		tdel_end(x, rc, &e);
}

static void
tdel_listed(void *arg, int rc, char *const *users, size_t n,
    const struct cb_error *err)
{
	struct tdel_ctx	*x = arg;
	struct cb_error	 e;

	(void)users;
	if (rc != 0) {
		tdel_end(x, rc, err);
		return;
	}
	/* Accounts' values (SPEC 10) count like users'. */
	x->users = n;
	if ((rc = x->v->ops->list_accounts(x->v, x->uuid, x->generation,
	    tdel_accounts, x, &e)) != 0)
		tdel_end(x, rc, &e);
}

/* type.delete {type, force?}: conflict while values exist. */
int
rpc_type_delete(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", "force", NULL };
	struct store_type	 t;
	struct tdel_ctx		*x;
	struct values		*v;
	bool			 force = false;
	int64_t			 n = 0;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = proto_get_bool(params, "force", false, &force, err)) < 0 ||
	    (rc = rpc_type_lookup(call, params, &t, err)) != 0)
		goto done;
	/*
	 * Rows in the database (users' and accounts' values) go with the
	 * type, whatever its storage.
	 */
	if ((rc = store_value_count(call->broker->store, t.uuid, &n,
	    err)) != 0)
		goto done;
	if (n > 0 && !force) {
		rc = cb_error_set(err, CB_ECONFLICT, "credential type '%s' "
		    "still has %lld value(s) in the database; clear it first, "
		    "or delete it with force (credctl type rm %s --force)",
		    t.ident, (long long)n, t.ident);
		goto done;
	}
	v = values_for(call->broker, &t);
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	x->call = call;
	x->v = v;
	x->force = force;
	x->generation = t.generation;
	memcpy(x->uuid, t.uuid, sizeof(x->uuid));
	memcpy(x->ident, t.ident, sizeof(x->ident));
	if (!v->ops->usable(v, NULL)) {
		x->w.run = tdel_run;
		x->w.done = tdel_done;
		memcpy(x->w.type_uuid, x->uuid, sizeof(x->w.type_uuid));
		if ((rc = rpc_write(call, &x->w, err)) != 0) {
			free(x);
			goto done;
		}
		rc = RPC_WAIT;
		goto done;
	}
	if ((rc = v->ops->list_users(v, t.uuid, tdel_listed, x, err)) != 0) {
		free(x);
		goto done;
	}
	rc = RPC_WAIT;
done:
	store_type_free(&t);
	return rc;
}

/* type.clear waiting on its backend, then on its write. */
struct clear_ctx {
	struct dbwrite	 w;		/* first */
	struct rpc_call	*call;
	char		 uuid[STORE_UUID_LEN + 1];
	int64_t		 removed;
};

/* On the writer's thread: the links and the default go. */
static int
clear_run(struct dbwrite *w, struct store *wst, struct cb_error *err)
{
	struct clear_ctx	*x = (struct clear_ctx *)w;

	return store_links_clear(wst, x->uuid, NULL, err);
}

static void
clear_written(struct dbwrite *w, int rc, const struct cb_error *err)
{
	struct clear_ctx	*x = (struct clear_ctx *)w;
	struct rpc_call		*call = x->call;

	if (rc == 0) {
		msgpack_pack_map(&call->pk, 1);
		proto_pack_kv_int(&call->pk, "removed", x->removed);
	}
	rpc_finish(call, rc, err);
	free(x);
}

/*
 * The backend cleared the type's values (users' and accounts'): remove
 * its links and its default (SPEC 10), then answer type.clear.
 */
static void
clear_done(void *arg, int rc, int64_t removed, const struct cb_error *err)
{
	struct clear_ctx	*x = arg;
	struct cb_error		 e;

	if (rc == 0) {
		x->removed = removed;
		x->w.run = clear_run;
		x->w.done = clear_written;
		memcpy(x->w.type_uuid, x->uuid, sizeof(x->w.type_uuid));
		if ((rc = rpc_write(x->call, &x->w, &e)) == 0)
			return;
		err = &e;
	}
	rpc_finish(x->call, rc, err);
	free(x);
}

/*
 * type.clear {type} -> {removed}: the backend removes every value of the
 * type; the first failure, if any, fails the call after every removal
 * has ended, so a retry finishes the job.
 */
int
rpc_type_clear(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "type", NULL };
	struct store_type	 t;
	struct clear_ctx	*x = NULL;
	struct values		*v;
	int			 rc;

	memset(&t, 0, sizeof(t));
	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = rpc_type_lookup(call, params, &t, err)) != 0)
		goto done;
	v = values_for(call->broker, &t);
	if (!v->ops->usable(v, err)) {
		rc = -err->code;
		goto done;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	x->call = call;
	memcpy(x->uuid, t.uuid, sizeof(x->uuid));
	if ((rc = v->ops->clear(v, t.uuid, clear_done, x, err)) != 0) {
		free(x);
		goto done;
	}
	rc = RPC_WAIT;
done:
	store_type_free(&t);
	return rc;
}

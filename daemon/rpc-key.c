/*
 * rpc-key: the key.status and key.rotate methods (SPEC section 8): the
 * state of the key and of its rotation, and the start of a rotation to a
 * key read from a file on the broker's host (the rotation itself runs in
 * rotate.c).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "keys-int.h"
#include "log.h"
#include "pg.h"
#include "proto.h"
#include "seal.h"
#include "store.h"

/* Pack {version, rotation: {state, phase, done, total, ...}}. */
static void
rpc_key_pack_status(struct rpc_call *call)
{
	struct broker	*b = call->broker;
	struct rotation	*r = b->rot;
	msgpack_packer	*pk = &call->pk;

	msgpack_pack_map(pk, b->fleet != NULL ? 3 : 2);
	proto_pack_kv_int(pk, "version", b->key->version);
	/* The live brokers of the fleet, this one first, and their keys. */
	if (b->fleet != NULL) {
		proto_pack_cstr(pk, "brokers");
		fleet_pack_brokers(pk, b, true, true);
	}
	proto_pack_cstr(pk, "rotation");
	if (r == NULL || r->state == ROT_NONE) {
		msgpack_pack_map(pk, 3);
		proto_pack_kv_str(pk, "state", "none");
		proto_pack_kv_int(pk, "done", 0);
		proto_pack_kv_int(pk, "total", 0);
		return;
	}
	msgpack_pack_map(pk, 7);
	proto_pack_kv_str(pk, "state", rot_states[r->state]);
	proto_pack_kv_str(pk, "phase", r->state == ROT_DONE ? "done" :
	    keys_phase_name(r->phase));
	proto_pack_kv_int(pk, "done", r->done);
	proto_pack_kv_int(pk, "total", r->total);
	proto_pack_kv_int(pk, "new_version", r->version);
	proto_pack_kv_str(pk, "new_key_file", r->file);
	proto_pack_kv_str(pk, "message", r->message[0] ? r->message : NULL);
}

/* key.status {} */
int
rpc_key_status(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { NULL };

	if (proto_check_keys(params, keys, err) != 0)
		return -CB_EBADREQ;
	rpc_key_pack_status(call);
	return 0;
}

/*
 * The started rotation's state is durable (or not): it runs, and the
 * call answers with the status; or it is forgotten, and the call fails.
 */
static void
rpc_key_started(struct broker *b, int rc, const struct cb_error *err,
    void *arg)
{
	struct rpc_call	*call = arg;

	b->rot->busy = false;
	if (rc != 0) {
		if (b->fleet != NULL)
			keys_unlock(b);
		keys_close(b);
		free(b->rot->file);
		free(b->rot);
		b->rot = NULL;
		seal_key_free(b->key_next);
		b->key_next = NULL;
		rpc_finish(call, rc, err);
		return;
	}
	log_info("key rotation to version %u started: %lld values and "
	    "keys to re-seal", b->rot->version, (long long)b->rot->total);
	keys_schedule(b, 0);
	rpc_key_pack_status(call);
	rpc_finish(call, 0, NULL);
}

/*
 * Start a rotation to k (read from file, check value kcv), values being
 * the number of values in the store (on PostgreSQL, counted there, not
 * in the local mirror): the state is saved, and the call answered, by
 * rpc_key_started.  Takes k.
 */
static int
rpc_key_begin(struct rpc_call *call, struct seal_key *k, const char *file,
    const char *kcv, int64_t values, struct cb_error *err)
{
	struct broker	*b = call->broker;
	struct rotation	*r = b->rot, *nr = NULL;
	struct store_keyrow *krows;
	size_t		 nkeys;
	int64_t		 total;
	int		 rc;

	if (r != NULL && r->state == ROT_RUNNING) {
		rc = cb_error_set(err, CB_ECONFLICT, "a key rotation to key "
		    "version %u is already running", r->version);
		goto done;
	}
	/* The values, and the keys re-sealed in the last phase. */
	if ((rc = store_key_scan(b->store, &krows, &nkeys, err)) != 0)
		goto done;
	store_keyrows_free(krows, nkeys);
	total = values + (int64_t)nkeys;
	if ((nr = calloc(1, sizeof(*nr))) == NULL ||
	    (nr->file = strdup(file)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	nr->state = ROT_RUNNING;
	nr->phase = 0;
	nr->version = k->version;
	nr->total = total;
	memcpy(nr->kcv, kcv, sizeof(nr->kcv));
	/* The old state (a finished rotation) goes; the new one is saved. */
	if (r != NULL) {
		keys_close(b);
		free(r->file);
		free(r);
		b->rot = NULL;
	}
	b->rot = nr;
	nr = NULL;
	/*
	 * The task waits (busy) until the state is durable; a second
	 * key.rotate meanwhile finds the rotation running.
	 */
	b->rot->busy = true;
	if ((rc = keys_save(b, rpc_key_started, call, err)) != 0) {
		free(b->rot->file);
		free(b->rot);
		b->rot = NULL;
		goto done;
	}
	b->key_next = k;
	k = NULL;
	rc = RPC_WAIT;
done:
	if (nr != NULL) {
		free(nr->file);
		free(nr);
	}
	seal_key_free(k);
	return rc;
}

/*
 * A rotation asked of a broker of a fleet, between its steps: one at a
 * time (b->rot_starting), since the rotation's advisory lock is the
 * connection's, which every call of this broker shares.
 */
struct rpc_key_fleet {
	struct broker	*b;
	struct rpc_call	*call;
	struct seal_key	*k;
	char		*file;
	char		 kcv[SEAL_KCV_MAX];
};

static void
rpc_key_fleet_free(struct rpc_key_fleet *x)
{
	x->b->rot_starting = false;
	seal_key_free(x->k);
	free(x->file);
	free(x);
}

/* The values on PostgreSQL, counted under the rotation's lock. */
static void
rpc_key_counted(void *arg, int rc, int64_t n, const struct cb_error *err)
{
	struct rpc_key_fleet	*x = arg;
	struct rpc_call		*call = x->call;
	struct broker		*b = call->broker;
	struct cb_error		 e;
	struct seal_key		*k = x->k;

	if (rc != 0) {
		keys_unlock(b);
		rpc_finish(call, rc, err);
		rpc_key_fleet_free(x);
		return;
	}
	x->k = NULL;
	if ((rc = rpc_key_begin(call, k, x->file, x->kcv, n, &e)) !=
	    RPC_WAIT) {
		keys_unlock(b);
		rpc_finish(call, rc, &e);
	}
	rpc_key_fleet_free(x);
}

/* The rotation's lock: this broker's, or another broker runs one. */
static void
rpc_key_locked(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	struct rpc_key_fleet	*x = arg;
	struct rpc_call		*call = x->call;
	struct broker		*b = call->broker;
	struct cb_error		 e;

	if (rc != 0) {
		rpc_finish(call, rc, err);
		rpc_key_fleet_free(x);
		return;
	}
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		cb_error_set(&e, CB_ECONFLICT, "another broker of the fleet "
		    "is running a key rotation");
		rpc_finish(call, -CB_ECONFLICT, &e);
		rpc_key_fleet_free(x);
		return;
	}
	if ((rc = pgstore_count_values(b, NULL, rpc_key_counted, x,
	    &e)) != 0) {
		keys_unlock(b);
		rpc_finish(call, rc, &e);
		rpc_key_fleet_free(x);
	}
}

/* The fleet as read just now: does every live broker hold the key? */
static void
rpc_key_checked(struct broker *b, int rc, void *arg)
{
	struct rpc_key_fleet	*x = arg;
	struct rpc_call		*call = x->call;
	struct cb_error		 e;
	struct pg		*pg;
	char			 who[512];

	if (rc != 0 || (pg = pgstore_pg(b)) == NULL) {
		cb_error_set(&e, CB_EUNAVAILABLE, "cannot read the fleet's "
		    "brokers from the database");
		rpc_finish(call, -CB_EUNAVAILABLE, &e);
		rpc_key_fleet_free(x);
		return;
	}
	if (fleet_lacking(b, x->kcv, 0, who, sizeof(who)) > 0) {
		cb_error_set(&e, CB_ECONFLICT, "the brokers on hosts %.400s do "
		    "not hold the new key yet: put it in "
		    "security.next_key_file there and reload them (SIGHUP)",
		    who);
		rpc_finish(call, -CB_ECONFLICT, &e);
		rpc_key_fleet_free(x);
		return;
	}
	if ((rc = pg_query(pg, "SELECT pg_try_advisory_lock(" KEYS_LOCK_KEY
	    ")", 0, NULL, NULL, NULL, rpc_key_locked, x, &e)) != 0) {
		rpc_finish(call, rc, &e);
		rpc_key_fleet_free(x);
	}
}

/* key.rotate {new_key_file}: start or resume; returns the status. */
int
rpc_key_rotate(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "new_key_file", NULL };
	struct broker	*b = call->broker;
	struct rotation	*r = b->rot;
	struct rpc_key_fleet *x;
	struct seal_key	*k = NULL;
	char		*file = NULL, kcv[SEAL_KCV_MAX], cur[SEAL_KCV_MAX];
	int64_t		 values;
	int		 rc;

	if ((rc = proto_check_keys(params, keys, err)) != 0 ||
	    (rc = proto_get_str(params, "new_key_file", true, &file,
	    err)) != 0)
		goto done;
	if (*file != '/') {
		rc = cb_error_set(err, CB_EBADREQ,
		    "new_key_file must be an absolute path");
		goto done;
	}
	if (r != NULL && r->state == ROT_RUNNING && r->follower) {
		rc = cb_error_set(err, CB_ECONFLICT, "a key rotation to key "
		    "version %u is running on another broker of the fleet",
		    r->version);
		goto done;
	}
	if (r != NULL && r->state == ROT_RUNNING) {
		if (strcmp(r->file, file) != 0) {
			rc = cb_error_set(err, CB_ECONFLICT, "a rotation to the "
			    "key in %s is already running", r->file);
			goto done;
		}
		keys_schedule(b, 0);
		rpc_key_pack_status(call);
		goto done;
	}
	if ((k = seal_key_alloc()) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	if ((rc = seal_key_load_file(k, file, b->key->version + 1, err)) != 0 ||
	    (rc = seal_kcv(k, kcv, err)) != 0 ||
	    (rc = seal_kcv(b->key, cur, err)) != 0)
		goto done;
	if (strlen(kcv) == strlen(cur) &&
	    CRYPTO_memcmp(kcv, cur, strlen(kcv)) == 0) {
		rc = cb_error_set(err, CB_EBADREQ,
		    "the new key is the key in use");
		goto done;
	}
	/*
	 * A fleet (postgresql backend): every live broker must hold the new
	 * key before it seals anything, and one broker alone runs the
	 * rotation (its advisory lock).  Both are found out on the
	 * database, after this broker's heartbeat.
	 */
	if (b->fleet != NULL) {
		if (b->rot_starting) {
			rc = cb_error_set(err, CB_ECONFLICT, "a key rotation is "
			    "being started on this broker");
			goto done;
		}
		if ((x = calloc(1, sizeof(*x))) == NULL) {
			rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
			goto done;
		}
		b->rot_starting = true;
		x->b = b;
		x->call = call;
		x->k = k;
		x->file = file;
		memcpy(x->kcv, kcv, sizeof(x->kcv));
		k = NULL;
		file = NULL;
		if ((rc = fleet_refresh(b, rpc_key_checked, x, err)) != 0) {
			rpc_key_fleet_free(x);
			goto done;
		}
		rc = RPC_WAIT;
		goto done;
	}
	if ((rc = store_value_count_all(b->store, &values, err)) != 0)
		goto done;
	rc = rpc_key_begin(call, k, file, kcv, values, err);
	k = NULL;
done:
	seal_key_free(k);
	free(file);
	return rc;
}
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

/* key.rotate {new_key_file}: start or resume; returns the status. */
int
rpc_key_rotate(struct rpc_call *call, const msgpack_object *params,
    struct cb_error *err)
{
	static const char *const keys[] = { "new_key_file", NULL };
	struct broker	*b = call->broker;
	struct rotation	*r = b->rot, *nr = NULL;
	struct seal_key	*k = NULL;
	struct store_keyrow *krows;
	char		*file = NULL, kcv[SEAL_KCV_MAX], cur[SEAL_KCV_MAX];
	size_t		 nkeys;
	int64_t		 total;
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
	/*
	 * Every broker of the fleet reads what the rotation re-seals: it
	 * may start only once each holds the new key, which this version
	 * cannot find out yet.
	 */
	if (b->pgs != NULL) {
		rc = cb_error_set(err, CB_EUNAVAILABLE, "key rotation is not "
		    "available on the postgresql backend yet: the other "
		    "brokers sharing the database could not open what it "
		    "re-seals");
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
	/* The values, and the keys re-sealed in the last phase. */
	if ((rc = store_value_count_all(b->store, &total, err)) != 0 ||
	    (rc = store_key_scan(b->store, &krows, &nkeys, err)) != 0)
		goto done;
	store_keyrows_free(krows, nkeys);
	total += (int64_t)nkeys;
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
	free(file);
	return rc;
}

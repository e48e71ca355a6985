/*
 * keys: the master key in use, and its rotation without downtime (SPEC
 * sections 3 and 8, methods key.status and key.rotate).
 *
 * Every sealed value names the key version that sealed it (CB1:<v>:...;
 * the legacy GCM: format means the configured key).  During a rotation the
 * broker holds two keys: values are opened with whichever key their
 * version names, and every new value is sealed with the new key.  A
 * background task on the loop re-seals the SQLite rows in batches, then
 * the values of vault-stored types, then the sealed Vault settings; calls
 * are served between batches.
 *
 * Progress is durable: each batch of rows and the cursor that follows it
 * commit in one transaction (setting "key"), so a crash loses nothing and
 * a restart resumes after the last committed batch.  The Vault phase is
 * idempotent (values already under the new key are skipped) and simply
 * starts over after a restart.  When everything is re-sealed, the key
 * check value moves to the new key in the same transaction that records
 * the new version: from then on only the new key opens the store, and the
 * broker says how to configure it.
 *
 * The new key is read from a file on the broker's host; it never crosses
 * the socket.  The file's path is kept so a restart can resume.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "proto.h"
#include "seal.h"
#include "secbuf.h"
#include "store.h"
#include "vault.h"

#define KEYS_SETTING	"key"
#define KEYS_BATCH	256

enum rot_state { ROT_NONE, ROT_RUNNING, ROT_DONE };
enum rot_phase { PH_DB, PH_VAULT, PH_SETTINGS };

struct rotation {
	int		 state;
	int		 phase;
	char		*file;		/* the new key's file */
	uint32_t	 version;	/* the new key's version */
	char		 kcv[SEAL_KCV_MAX];
	char		 cur_type[STORE_UUID_LEN + 1];
	char		 cur_user[STORE_UUID_LEN + 1];
	int64_t		 done;
	int64_t		 total;
	char		 message[256];
	uv_timer_t	*timer;
	bool		 busy;		/* a Vault step is in flight */
	/* Vault phase: the types still to do and the users listed. */
	char		**vtypes;
	size_t		 nvtypes, vti;
	char		**vusers;
	size_t		 nvusers, vui;
};

static const char *const rot_states[] = { "none", "running", "done" };
static const char *const rot_phases[] = { "db", "vault", "settings" };

static void	keys_step(uv_timer_t *);

/* Version named by sealed text: 0 for the legacy GCM: format. */
static uint32_t
keys_text_version(const char *text)
{
	unsigned long	v;
	char		*end;

	if (strncmp(text, "CB1:", 4) != 0)
		return 0;
	v = strtoul(text + 4, &end, 10);
	return *end == ':' && v <= UINT32_MAX ? (uint32_t)v : 0;
}

int
keys_seal(struct broker *b, const char *context, const uint8_t *pt,
    size_t n, char **out, struct cb_error *err)
{
	return seal_seal(b->key_next != NULL ? b->key_next : b->key, context,
	    pt, n, out, err);
}

int
keys_open(struct broker *b, const char *context, const char *text,
    struct secbuf *out, struct cb_error *err)
{
	const struct seal_key	*k = b->key;

	if (b->key_next != NULL &&
	    keys_text_version(text) == b->key_next->version)
		k = b->key_next;
	return seal_open(k, context, text, out, err);
}

/* The "key" setting as JSON (caller frees with vault_json_release). */
static char *
keys_doc(const struct broker *b, uint32_t version)
{
	struct rotation	*r = b->rot;
	json_t		*doc, *rot;
	char		*text;

	doc = json_pack("{s:i}", "version", (json_int_t)version);
	if (doc == NULL)
		return NULL;
	if (r != NULL && r->state != ROT_NONE) {
		rot = json_pack("{s:s, s:s, s:s, s:i, s:s, s:[s,s], s:I, s:I}",
		    "state", rot_states[r->state], "phase", rot_phases[r->phase],
		    "file", r->file, "version", (json_int_t)r->version,
		    "kcv", r->kcv, "cursor", r->cur_type, r->cur_user,
		    "done", (json_int_t)r->done, "total", (json_int_t)r->total);
		if (rot == NULL || json_object_set_new(doc, "rotation", rot)) {
			json_decref(doc);
			return NULL;
		}
	}
	text = json_dumps(doc, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(doc);
	return text;
}

/* Index of name in list, or -1. */
static int
keys_lookup(const char *const *list, size_t n, const char *name)
{
	size_t	i;

	for (i = 0; name != NULL && i < n; i++)
		if (strcmp(list[i], name) == 0)
			return (int)i;
	return -1;
}

int
keys_load_state(struct broker *b, uint32_t *version, struct cb_error *err)
{
	struct rotation	*r;
	json_t		*doc = NULL, *rot, *cur;
	char		*text = NULL;
	int		 rc, st, ph;

	*version = 1;
	if ((rc = store_setting_get(b->store, KEYS_SETTING, &text, err)) != 0)
		return rc;
	if (text == NULL)
		return 0;
	if ((doc = json_loads(text, 0, NULL)) == NULL ||
	    json_integer_value(json_object_get(doc, "version")) < 1) {
		rc = cb_error_set(err, CB_EINTERNAL,
		    "the stored key state is not valid");
		goto done;
	}
	*version = (uint32_t)json_integer_value(json_object_get(doc,
	    "version"));
	rot = json_object_get(doc, "rotation");
	if (!json_is_object(rot))
		goto done;
	st = keys_lookup(rot_states, 3, json_string_value(json_object_get(rot,
	    "state")));
	ph = keys_lookup(rot_phases, 3, json_string_value(json_object_get(rot,
	    "phase")));
	cur = json_object_get(rot, "cursor");
	if (st < 0 || ph < 0 || !json_is_string(json_object_get(rot, "file")) ||
	    !json_is_array(cur) || json_array_size(cur) != 2) {
		rc = cb_error_set(err, CB_EINTERNAL,
		    "the stored key rotation state is not valid");
		goto done;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->file = strdup(json_string_value(json_object_get(rot,
	    "file")))) == NULL) {
		free(r);
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	r->state = st;
	r->phase = ph;
	r->version = (uint32_t)json_integer_value(json_object_get(rot,
	    "version"));
	snprintf(r->kcv, sizeof(r->kcv), "%s",
	    json_string_value(json_object_get(rot, "kcv")) ?
	    json_string_value(json_object_get(rot, "kcv")) : "");
	snprintf(r->cur_type, sizeof(r->cur_type), "%s",
	    json_string_value(json_array_get(cur, 0)) ?
	    json_string_value(json_array_get(cur, 0)) : "");
	snprintf(r->cur_user, sizeof(r->cur_user), "%s",
	    json_string_value(json_array_get(cur, 1)) ?
	    json_string_value(json_array_get(cur, 1)) : "");
	r->done = json_integer_value(json_object_get(rot, "done"));
	r->total = json_integer_value(json_object_get(rot, "total"));
	b->rot = r;
done:
	json_decref(doc);
	free(text);
	return rc;
}

const char *
keys_rotated_to(const struct broker *b)
{
	return b->rot != NULL && b->rot->state == ROT_DONE ? b->rot->file :
	    NULL;
}

/* Persist the rotation state alone. */
static int
keys_save(struct broker *b, struct cb_error *err)
{
	char	*text;
	int	 rc;

	if ((text = keys_doc(b, b->key->version)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	rc = store_setting_set(b->store, KEYS_SETTING, text, err);
	vault_json_release(text);
	return rc;
}

/* Schedule the next step of the rotation after ms. */
static void
keys_schedule(struct broker *b, uint64_t ms)
{
	struct rotation	*r = b->rot;

	if (r->timer == NULL) {
		if ((r->timer = calloc(1, sizeof(*r->timer))) == NULL)
			return;
		uv_timer_init(b->loop, r->timer);
		r->timer->data = b;
	}
	/*
	 * At least 1 ms: libuv 1.44 runs a 0 ms timer restarted from its own
	 * callback again in the same loop pass, so the loop would never get
	 * back to the sockets between batches.
	 */
	uv_timer_start(r->timer, keys_step, ms > 0 ? ms : 1, 0);
}

/* Re-seal text from the old key to the new one under context. */
static int
keys_reseal(struct broker *b, const char *context, const char *text,
    char **out, struct cb_error *err)
{
	struct secbuf	plain = SECBUF_INIT;
	int		rc;

	*out = NULL;
	if ((rc = keys_open(b, context, text, &plain, err)) == 0)
		rc = seal_seal(b->key_next, context, plain.data, plain.len,
		    out, err);
	secbuf_free(&plain);
	return rc;
}

/* One batch of SQLite rows; returns 1 when the rows are all done. */
static int
keys_db_batch(struct broker *b, struct cb_error *err)
{
	struct rotation		*r = b->rot;
	struct store_row	*rows = NULL, *upd = NULL;
	struct rotation		 saved;
	char			 context[SEALCTX_VALUE_MAX], *doc;
	size_t			 n = 0, i, m = 0;
	int			 rc;

	if ((rc = store_value_scan(b->store, r->cur_type, r->cur_user,
	    KEYS_BATCH, &rows, &n, err)) != 0)
		return rc;
	if ((upd = calloc(n + 1, sizeof(*upd))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		/* Written under the new key during the rotation: keep. */
		if (keys_text_version(rows[i].sealed) == r->version)
			continue;
		sealctx_value(context, sizeof(context), rows[i].type_uuid,
		    rows[i].user_uuid, 0);
		memcpy(upd[m].type_uuid, rows[i].type_uuid,
		    sizeof(upd[m].type_uuid));
		memcpy(upd[m].user_uuid, rows[i].user_uuid,
		    sizeof(upd[m].user_uuid));
		if ((rc = keys_reseal(b, context, rows[i].sealed,
		    &upd[m].sealed, err)) != 0)
			goto done;
		m++;
	}
	/*
	 * The rows and the cursor after them commit together.  The state in
	 * memory moves only if the commit does: a failed batch is redone.
	 */
	saved = *r;
	if (n > 0) {
		memcpy(r->cur_type, rows[n - 1].type_uuid, sizeof(r->cur_type));
		memcpy(r->cur_user, rows[n - 1].user_uuid, sizeof(r->cur_user));
	}
	r->done += (int64_t)n;
	if (r->done > r->total)
		r->total = r->done;
	if (n < KEYS_BATCH)
		r->phase = PH_VAULT;
	if ((doc = keys_doc(b, b->key->version)) == NULL)
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
	else {
		rc = store_value_reseal(b->store, upd, m, KEYS_SETTING, doc,
		    err);
		vault_json_release(doc);
	}
	if (rc != 0) {
		memcpy(r->cur_type, saved.cur_type, sizeof(r->cur_type));
		memcpy(r->cur_user, saved.cur_user, sizeof(r->cur_user));
		r->done = saved.done;
		r->total = saved.total;
		r->phase = saved.phase;
		goto done;
	}
	rc = n < KEYS_BATCH;
done:
	store_rows_free(upd, m);
	store_rows_free(rows, n);
	return rc;
}

/* Retry the current step later, saying why. */
static void
keys_wait(struct broker *b, const char *why)
{
	snprintf(b->rot->message, sizeof(b->rot->message), "%.200s; retrying",
	    why);
	log_warnx("key rotation: %s; retrying in 5 s", why);
	if (!b->stopping)
		keys_schedule(b, 5000);
}

/* Free the Vault phase's lists. */
static void
keys_vault_reset(struct rotation *r, bool types)
{
	size_t	i;

	for (i = 0; i < r->nvusers; i++)
		free(r->vusers[i]);
	free(r->vusers);
	r->vusers = NULL;
	r->nvusers = r->vui = 0;
	if (!types)
		return;
	for (i = 0; i < r->nvtypes; i++)
		free(r->vtypes[i]);
	free(r->vtypes);
	r->vtypes = NULL;
	r->nvtypes = r->vti = 0;
}

static void
keys_vault_written(void *arg, int rc, const struct cb_error *err)
{
	struct broker	*b = arg;

	b->rot->busy = false;
	if (rc == -CB_ECONFLICT) {
		/* Changed meanwhile: read it again (it is new, and skipped). */
		if (!b->stopping)
			keys_schedule(b, 0);
		return;
	}
	if (rc != 0) {
		keys_wait(b, err->msg);
		return;
	}
	b->rot->vui++;
	b->rot->done++;
	if (!b->stopping)
		keys_schedule(b, 0);
}

static void
keys_vault_read(void *arg, int rc, const char *value,
    const struct vault_meta *meta,
    const struct cb_error *err)
{
	struct broker		*b = arg;
	struct rotation		*r = b->rot;
	struct store_type	 t;
	struct cb_error		 e;
	const char		*old = NULL;
	char			 rel[2 * STORE_UUID_LEN + 32];
	char			*sealed = NULL, *text = NULL;
	char			 context[RPC_CONTEXT_MAX];

	r->busy = false;
	memset(&t, 0, sizeof(t));
	/*
	 * The type's storage generation now: a value left by an earlier one
	 * is never served, so it is not re-sealed either (nor is a value of
	 * a type deleted meanwhile).
	 */
	if (rc == 0 && store_type_get(b->store, r->vtypes[r->vti], &t,
	    &e) != 0) {
		if (e.code != CB_ENOTFOUND) {
			keys_wait(b, e.msg);
			return;
		}
		rc = -CB_ENOTFOUND;
	}
	if (rc == 0 && (t.storage != STORE_VAULT ||
	    (old = rpc_vault_unwrap(value, t.generation)) == NULL))
		rc = -CB_ENOTFOUND;
	if (rc == -CB_ENOTFOUND || (rc == 0 &&
	    keys_text_version(old) == r->version)) {
		store_type_free(&t);
		r->vui++;
		if (!b->stopping)
			keys_schedule(b, 0);
		return;
	}
	if (rc != 0) {
		keys_wait(b, err->msg);
		return;
	}
	sealctx_value(context, sizeof(context), r->vtypes[r->vti],
	    r->vusers[r->vui], t.generation);
	if (keys_reseal(b, context, old, &sealed, &e) != 0 ||
	    rpc_vault_wrap(sealed, t.generation, &text, &e) != 0) {
		keys_wait(b, e.msg);
		goto done;
	}
	rpc_vault_relpath(rel, sizeof(rel), r->vtypes[r->vti],
	    r->vusers[r->vui]);
	r->busy = true;
	/* Check-and-set: a cred.set that lands meanwhile wins. */
	if (vault_write_cas(b->vault, rel, text, meta->version,
	    keys_vault_written, b, &e) != 0) {
		r->busy = false;
		keys_wait(b, e.msg);
	}
done:
	free(text);
	free(sealed);
	store_type_free(&t);
}

static void
keys_vault_listed(void *arg, int rc, char *const *keys, size_t nkeys,
    const struct cb_error *err)
{
	struct broker	*b = arg;
	struct rotation	*r = b->rot;
	size_t		 i;

	r->busy = false;
	if (rc != 0) {
		keys_wait(b, err->msg);
		return;
	}
	if ((r->vusers = calloc(nkeys + 1, sizeof(char *))) == NULL) {
		keys_wait(b, "out of memory");
		return;
	}
	for (i = 0; i < nkeys; i++)
		if (ids_uuid_valid(keys[i]) &&
		    (r->vusers[r->nvusers] = strdup(keys[i])) != NULL)
			r->nvusers++;
	r->total += (int64_t)r->nvusers;
	r->vui = 0;
	if (!b->stopping)
		keys_schedule(b, 0);
}

/* Whether any type is stored in Vault (rc set on a store error). */
static bool
keys_have_vault_types(struct broker *b, int *rc, struct cb_error *err)
{
	struct store_type	*types = NULL;
	size_t			 n = 0, i;
	bool			 any = false;

	if ((*rc = store_type_list(b->store, &types, &n, err)) != 0)
		return false;
	for (i = 0; i < n; i++)
		if (types[i].storage == STORE_VAULT)
			any = true;
	store_type_list_free(types, n);
	return any;
}

/* One step of the Vault phase; returns 1 when it is done. */
static int
keys_vault_step(struct broker *b, struct cb_error *err)
{
	struct rotation		*r = b->rot;
	struct store_type	*types = NULL;
	struct cb_error		 e;
	char			 rel[2 * STORE_UUID_LEN + 32];
	size_t			 n = 0, i;
	int			 rc;

	if (r->vtypes == NULL) {
		/*
		 * Never configured: no value can be in Vault.  Configured but
		 * disabled or failing: values may be there, and the rotation
		 * cannot finish without re-sealing them, so it waits.
		 */
		if (!vault_usable(b->vault, &e)) {
			struct vault_status vs;

			vault_get_status(b->vault, &vs);
			if (!vs.configured)
				return 1;
			if (!keys_have_vault_types(b, &rc, err))
				return rc != 0 ? rc : 1;
			r->busy = false;
			keys_wait(b, "waiting for Vault, which holds values "
			    "to re-seal: Vault is disabled");
			return 0;
		}
		if ((rc = store_type_list(b->store, &types, &n, err)) != 0)
			return rc;
		if ((r->vtypes = calloc(n + 1, sizeof(char *))) == NULL) {
			store_type_list_free(types, n);
			return cb_error_set(err, CB_EINTERNAL, "out of memory");
		}
		for (i = 0; i < n; i++)
			if (types[i].storage == STORE_VAULT &&
			    (r->vtypes[r->nvtypes] = strdup(types[i].uuid)) !=
			    NULL)
				r->nvtypes++;
		store_type_list_free(types, n);
	}
	if (r->vti >= r->nvtypes)
		return 1;
	r->busy = true;
	if (r->vusers == NULL) {
		snprintf(rel, sizeof(rel), "credentials/%s/users/",
		    r->vtypes[r->vti]);
		rc = vault_list(b->vault, rel, keys_vault_listed, b, err);
	} else if (r->vui < r->nvusers) {
		rpc_vault_relpath(rel, sizeof(rel), r->vtypes[r->vti],
		    r->vusers[r->vui]);
		rc = vault_read(b->vault, rel, keys_vault_read, b, err);
	} else {
		r->busy = false;
		keys_vault_reset(r, false);
		r->vti++;
		keys_schedule(b, 0);
		return 0;
	}
	if (rc != 0) {
		r->busy = false;
		return rc;
	}
	return 0;
}

/* Everything is re-sealed: the new key becomes the key. */
static int
keys_finish(struct broker *b, struct cb_error *err)
{
	struct rotation	*r = b->rot;
	char		*doc;
	int		 rc;

	r->state = ROT_DONE;
	if ((doc = keys_doc(b, r->version)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	rc = store_kcv_set_with(b->store, r->kcv, KEYS_SETTING, doc, err);
	vault_json_release(doc);
	if (rc != 0) {
		r->state = ROT_RUNNING;
		return rc;
	}
	seal_key_free(b->key);
	b->key = b->key_next;
	b->key_next = NULL;
	snprintf(r->message, sizeof(r->message), "rotation complete: "
	    "configure the new key (security.secret_key_file = %.150s)",
	    r->file);
	log_info("key rotation complete: every value is sealed with key "
	    "version %u.  Make the new key the configured one now: set "
	    "security.secret_key_file = %s (or put its contents in the "
	    "configured key file or systemd credential) before the next "
	    "start; the old key no longer opens this store", r->version,
	    r->file);
	return 0;
}

/* The rotation's task on the loop: one step per call. */
static void
keys_step(uv_timer_t *t)
{
	struct broker	*b = t->data;
	struct rotation	*r = b->rot;
	struct cb_error	 err;
	int		 rc = 0;

	if (r == NULL || r->state != ROT_RUNNING || r->busy || b->stopping)
		return;
	cb_error_clear(&err);
	r->message[0] = '\0';
	switch (r->phase) {
	case PH_DB:
		rc = keys_db_batch(b, &err);
		break;
	case PH_VAULT:
		if ((rc = keys_vault_step(b, &err)) == 0)
			return;		/* a callback schedules the next step */
		if (rc == 1) {
			keys_vault_reset(r, true);
			r->phase = PH_SETTINGS;
			rc = keys_save(b, &err);
		}
		break;
	case PH_SETTINGS:
		/* The sealed Vault settings, then the switch. */
		if ((rc = rpc_vault_reseal(b, &err)) == 0)
			rc = keys_finish(b, &err);
		if (rc == 0)
			return;
		break;
	}
	if (rc < 0) {
		keys_wait(b, err.msg);
		return;
	}
	keys_schedule(b, 0);
}

int
keys_resume(struct broker *b, struct cb_error *err)
{
	struct rotation	*r = b->rot;
	struct seal_key	*k;
	char		 kcv[SEAL_KCV_MAX];

	if (r == NULL || r->state != ROT_RUNNING)
		return 0;
	if ((k = seal_key_alloc()) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	if (seal_key_load_file(k, r->file, r->version, err) != 0 ||
	    seal_kcv(k, kcv, err) != 0) {
		seal_key_free(k);
		return cb_error_set(err, CB_EBADREQ, "cannot resume the key "
		    "rotation: %.300s", err->msg);
	}
	if (strcmp(kcv, r->kcv) != 0) {
		seal_key_free(k);
		return cb_error_set(err, CB_EBADREQ, "cannot resume the key "
		    "rotation: %s no longer holds the key it was started with",
		    r->file);
	}
	b->key_next = k;
	log_info("resuming key rotation to version %u (%lld of %lld values "
	    "done)", r->version, (long long)r->done, (long long)r->total);
	return 0;
}

void
keys_start(struct broker *b)
{
	if (b->rot != NULL && b->rot->state == ROT_RUNNING)
		keys_schedule(b, 0);
}

/* The rotation timer is freed once closed. */
static void
keys_timer_closed(uv_handle_t *h)
{
	free(h);
}

void
keys_close(struct broker *b)
{
	struct rotation	*r = b->rot;

	if (r == NULL)
		return;
	if (r->timer != NULL) {
		uv_close((uv_handle_t *)r->timer, keys_timer_closed);
		r->timer = NULL;
	}
}

void
keys_free(struct broker *b)
{
	struct rotation	*r = b->rot;

	if (r == NULL)
		return;
	keys_vault_reset(r, true);
	free(r->file);
	free(r);
	b->rot = NULL;
	seal_key_free(b->key_next);
	b->key_next = NULL;
}

/* Pack {version, rotation: {state, phase, done, total, ...}}. */
static void
keys_pack_status(struct rpc_call *call)
{
	struct broker	*b = call->broker;
	struct rotation	*r = b->rot;
	msgpack_packer	*pk = &call->pk;

	msgpack_pack_map(pk, 2);
	proto_pack_kv_int(pk, "version", b->key->version);
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
	    rot_phases[r->phase]);
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
	keys_pack_status(call);
	return 0;
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
	char		*file = NULL, kcv[SEAL_KCV_MAX], cur[SEAL_KCV_MAX];
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
	if (r != NULL && r->state == ROT_RUNNING) {
		if (strcmp(r->file, file) != 0) {
			rc = cb_error_set(err, CB_ECONFLICT, "a rotation to the "
			    "key in %s is already running", r->file);
			goto done;
		}
		keys_schedule(b, 0);
		keys_pack_status(call);
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
	if ((rc = store_value_count_all(b->store, &total, err)) != 0)
		goto done;
	if ((nr = calloc(1, sizeof(*nr))) == NULL ||
	    (nr->file = strdup(file)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	nr->state = ROT_RUNNING;
	nr->phase = PH_DB;
	nr->version = k->version;
	nr->total = total;
	memcpy(nr->kcv, kcv, sizeof(nr->kcv));
	/* The old state (a finished rotation) goes; the new one is saved. */
	if (r != NULL) {
		keys_close(b);
		keys_vault_reset(r, true);
		free(r->file);
		free(r);
		b->rot = NULL;
	}
	b->rot = nr;
	nr = NULL;
	if ((rc = keys_save(b, err)) != 0) {
		free(b->rot->file);
		free(b->rot);
		b->rot = NULL;
		goto done;
	}
	b->key_next = k;
	k = NULL;
	log_info("key rotation to version %u started: %lld values to "
	    "re-seal", b->rot->version, (long long)total);
	keys_schedule(b, 0);
	keys_pack_status(call);
done:
	if (nr != NULL) {
		free(nr->file);
		free(nr);
	}
	seal_key_free(k);
	free(file);
	return rc;
}

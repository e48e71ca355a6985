/*
 * rotate: the rotation of the master key without downtime (SPEC section
 * 8), as a background task on the loop.
 *
 * Every sealed value names the key version that sealed it (CB1:<v>:...;
 * the legacy GCM: format means the configured key).  During a rotation the
 * broker holds two keys: values are opened with whichever key their
 * version names, and every new value is sealed with the new key.  The task
 * asks each values backend in turn (one phase per storage kind: the SQLite
 * rows in batches, then the values of vault-stored types) to re-seal its
 * values, accounts' values included, then re-seals the sealed Vault
 * settings, the stored keys, and the links and default accounts; calls
 * are served between batches.
 *
 * Progress is durable where the backend has transactions: each batch of
 * rows and the cursor that follows it commit in one transaction (setting
 * "key"), so a crash loses nothing and a restart resumes after the last
 * committed batch.  The Vault phase is idempotent (values already under
 * the new key are skipped) and simply starts over after a restart.  When
 * everything is re-sealed, the key check value moves to the new key in the
 * same transaction that records the new version: from then on only the
 * new key opens the store, and the broker says how to configure it.
 *
 * Every write goes to the store's writer thread (dbwrite): the backends'
 * batches through the backend, the "key" setting when a phase ends, and
 * the last step (Vault settings, keys, links and defaults re-sealed, the
 * key check value and the new version) as one job, one transaction.  The
 * re-sealing itself (opening and sealing) stays on the loop: the writer
 * never sees a key.  The task waits (busy) while a write is in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "keys-int.h"
#include "log.h"
#include "pg.h"
#include "seal.h"
#include "sealctx.h"
#include "secbuf.h"
#include "store.h"
#include "values.h"
#include "vault.h"

const char *
keys_phase_name(int phase)
{
	return phase < PH_SETTINGS ? store_kind_name(phase) : "settings";
}

static void	keys_step(uv_timer_t *);
static void	keys_unlocked(void *, int, PGresult *,
		    const struct cb_error *);

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
		    "state", rot_states[r->state],
		    "phase", keys_phase_name(r->phase),
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

/*
 * A write of the rotation's: the key setting (doc) alone, or, in the
 * last step, with the Vault settings, the keys, the links and defaults
 * re-sealed and the key check value (finish).
 */
struct keys_write {
	struct dbwrite		 w;		/* first */
	char			*doc;		/* the "key" setting */
	char			*vault;		/* Vault settings, or NULL */
	struct store_keyrow	*krows;
	size_t			 nkrows;
	int64_t			 kchanged;
	struct store_bindrow	*brows;
	size_t			 nbrows;
	int64_t			 bchanged;
	bool			 finish;
	char			 kcv[SEAL_KCV_MAX];
	keys_saved_fn		 then;		/* keys_save's */
	void			*arg;
};

static void
keys_write_free(struct keys_write *x)
{
	vault_json_release(x->doc);
	vault_json_release(x->vault);
	store_keyrows_free(x->krows, x->nkrows);
	store_bindrows_free(x->brows, x->nbrows);
	free(x);
}

/* On the writer's thread: everything the job holds, in one transaction. */
static int
keys_write_run(struct dbwrite *w, struct store *wst, struct cb_error *err)
{
	struct keys_write	*x = (struct keys_write *)w;
	int			 rc;

	if (!x->finish)
		return store_setting_set(wst, KEYS_SETTING, x->doc, err);
	if (x->vault != NULL &&
	    (rc = rpc_vault_setting_write(wst, x->vault, err)) != 0)
		return rc;
	if (x->kchanged > 0 && (rc = store_key_reseal(wst, x->krows,
	    x->nkrows, err)) != 0)
		return rc;
	if (x->bchanged > 0 && (rc = store_bind_reseal(wst, x->brows,
	    x->nbrows, err)) != 0)
		return rc;
	return store_kcv_set_with(wst, x->kcv, KEYS_SETTING, x->doc, err);
}

static void
keys_saved(struct dbwrite *w, int rc, const struct cb_error *err)
{
	struct keys_write	*x = (struct keys_write *)w;

	x->then(w->b, rc, err, x->arg);
	keys_write_free(x);
}

int
keys_save(struct broker *b, keys_saved_fn then, void *arg,
    struct cb_error *err)
{
	struct keys_write	*x;
	int			 rc;

	if ((x = calloc(1, sizeof(*x))) == NULL ||
	    (x->doc = keys_doc(b, b->key->version)) == NULL) {
		free(x);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	x->w.run = keys_write_run;
	x->w.done = keys_saved;
	x->then = then;
	x->arg = arg;
	if ((rc = dbwrite_submit(b, &x->w, err)) != 0)
		keys_write_free(x);
	return rc;
}

void
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

/*
 * Re-seal text from the old key to the new one under context; *out NULL
 * when it is under the new key already (written during the rotation).
 */
static int
keys_reseal(void *arg, const char *context, const char *text, char **out,
    struct cb_error *err)
{
	struct broker	*b = arg;
	struct secbuf	 plain = SECBUF_INIT;
	int		 rc;

	*out = NULL;
	if (keys_text_version(text) == b->rot->version)
		return 0;
	if ((rc = keys_open(b, context, text, &plain, err)) == 0)
		rc = seal_seal(b->key_next, context, plain.data, plain.len,
		    out, err);
	secbuf_free(&plain);
	return rc;
}

/*
 * The key setting as it is once a batch of n values, ending at next, is
 * re-sealed: a backend with transactions commits it with the batch, so a
 * crash loses nothing and a restart resumes after the last batch.  The
 * state in memory moves only once the batch has committed (keys_resealed).
 */
static char *
keys_checkpoint(void *arg, const struct values_cursor *next, int64_t n,
    bool last)
{
	struct broker	*b = arg;
	struct rotation	*r = b->rot, saved = *r;
	char		*doc;

	(void)last;
	memcpy(r->cur_type, next->type_uuid, sizeof(r->cur_type));
	memcpy(r->cur_user, next->user_uuid, sizeof(r->cur_user));
	r->done += n;
	if (r->done > r->total)
		r->total = r->done;
	doc = keys_doc(b, b->key->version);
	memcpy(r->cur_type, saved.cur_type, sizeof(r->cur_type));
	memcpy(r->cur_user, saved.cur_user, sizeof(r->cur_user));
	r->done = saved.done;
	r->total = saved.total;
	return doc;
}

/* A backend's walk found or re-sealed values: key.status shows it. */
static void
keys_progress(void *arg, int64_t found, int64_t walked)
{
	struct broker	*b = arg;
	struct rotation	*r = b->rot;

	r->total += found;
	r->done += walked;
	if (r->done > r->total)
		r->total = r->done;
}

static void
keys_doc_release(char *doc)
{
	vault_json_release(doc);
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

/* The state after a finished phase is durable: on with the next one. */
static void
keys_phase_saved(struct broker *b, int rc, const struct cb_error *err,
    void *arg)
{
	(void)arg;
	b->rot->busy = false;
	if (rc != 0) {
		keys_wait(b, err->msg);
		return;
	}
	if (!b->stopping)
		keys_schedule(b, 0);
}

/* A backend answered a re-seal: go on with it, or with the next phase. */
static void
keys_resealed(void *arg, int rc, int64_t n, bool finished,
    const struct cb_error *err)
{
	struct broker	*b = arg;
	struct rotation	*r = b->rot;
	struct cb_error	 e;

	r->busy = false;
	/* Where the backend got to, failed or not (a failed batch stays). */
	memcpy(r->cur_type, r->rs.cursor.type_uuid, sizeof(r->cur_type));
	memcpy(r->cur_user, r->rs.cursor.user_uuid, sizeof(r->cur_user));
	if (rc != 0) {
		keys_wait(b, err->msg);
		return;
	}
	r->done += n;
	if (r->done > r->total)
		r->total = r->done;
	if (finished) {
		r->phase++;
		r->cur_type[0] = r->cur_user[0] = '\0';
		r->busy = true;
		if (keys_save(b, keys_phase_saved, NULL, &e) != 0) {
			r->busy = false;
			keys_wait(b, e.msg);
		}
		return;
	}
	if (!b->stopping)
		keys_schedule(b, 0);
}

/* Ask the backend of this phase to re-seal its next batch. */
static int
keys_values_step(struct broker *b, struct cb_error *err)
{
	struct rotation	*r = b->rot;
	struct values	*v = b->values[r->phase];
	int		 rc;

	memset(&r->rs, 0, sizeof(r->rs));
	r->rs.reseal = keys_reseal;
	r->rs.checkpoint = keys_checkpoint;
	r->rs.release = keys_doc_release;
	r->rs.progress = keys_progress;
	r->rs.setting = KEYS_SETTING;
	r->rs.arg = b;
	memcpy(r->rs.cursor.type_uuid, r->cur_type, sizeof(r->cur_type));
	memcpy(r->rs.cursor.user_uuid, r->cur_user, sizeof(r->cur_user));
	r->busy = true;
	if ((rc = v->ops->reseal(v, &r->rs, keys_resealed, b, err)) != 0)
		r->busy = false;
	return rc;
}

/*
 * Re-seal every key pair's private key and every peer key under the new
 * key, for the last step's transaction.  Keys are few and all are read
 * at once; keys already under the new key (added during the rotation, or
 * re-sealed by a run of this phase that a restart repeats) are left as
 * they are.
 */
static int
keys_keys_reseal(struct broker *b, struct keys_write *x, struct cb_error *err)
{
	struct store_keyrow	*rows = NULL;
	char			 context[SEALCTX_KEY_MAX], *text;
	char			 why[CB_ERRMSG_MAX];
	size_t			 n = 0, i;
	int64_t			 changed = 0;
	int			 rc;

	if ((rc = store_key_scan(b->store, &rows, &n, err)) != 0)
		goto done;
	for (i = 0; i < n; i++) {
		if (rows[i].keyclass == STORE_KEYPAIR)
			sealctx_keypair(context, sizeof(context),
			    rows[i].ident, rows[i].version);
		else
			sealctx_peerkey(context, sizeof(context),
			    rows[i].ident, rows[i].version);
		if ((rc = keys_reseal(b, context, rows[i].sealed, &text,
		    err)) != 0) {
			memcpy(why, err->msg, sizeof(why));
			rc = cb_error_set(err, -rc, "%s '%s' version %lu: %s",
			    rows[i].keyclass == STORE_KEYPAIR ? "key pair" :
			    "peer key", rows[i].ident,
			    (unsigned long)rows[i].version, why);
			goto done;
		}
		free(rows[i].sealed);
		rows[i].sealed = text;
		if (text != NULL)
			changed++;
	}
	x->krows = rows;
	x->nkrows = n;
	x->kchanged = changed;
	return 0;
done:
	store_keyrows_free(rows, n);
	return rc;
}

/*
 * Re-seal every link of a user to an account and every default account
 * (SPEC 10; their sealed text is the account's name), as the keys: links
 * are one short row per linked user, read at once.
 */
static int
keys_binds_reseal(struct broker *b, struct keys_write *x,
    struct cb_error *err)
{
	struct store_bindrow	*rows = NULL;
	char			 context[SEALCTX_LINK_MAX], *text;
	char			 why[CB_ERRMSG_MAX];
	size_t			 n = 0, i;
	int64_t			 changed = 0;
	int			 rc;

	if ((rc = store_bind_scan(b->store, &rows, &n, err)) != 0)
		goto done;
	for (i = 0; i < n; i++) {
		if (rows[i].user_uuid[0] != '\0')
			sealctx_link(context, sizeof(context),
			    rows[i].type_uuid, rows[i].user_uuid);
		else
			sealctx_default(context, sizeof(context),
			    rows[i].type_uuid);
		if ((rc = keys_reseal(b, context, rows[i].sealed, &text,
		    err)) != 0) {
			memcpy(why, err->msg, sizeof(why));
			if (rows[i].user_uuid[0] != '\0')
				rc = cb_error_set(err, -rc, "the link of user "
				    "%s for credential type %s: %s",
				    rows[i].user_uuid, rows[i].type_uuid, why);
			else
				rc = cb_error_set(err, -rc, "the default "
				    "account of credential type %s: %s",
				    rows[i].type_uuid, why);
			goto done;
		}
		free(rows[i].sealed);
		rows[i].sealed = text;
		if (text != NULL)
			changed++;
	}
	x->brows = rows;
	x->nbrows = n;
	x->bchanged = changed;
	return 0;
done:
	store_bindrows_free(rows, n);
	return rc;
}

/* The last step is durable: the new key becomes the key. */
static void
keys_finished(struct dbwrite *w, int rc, const struct cb_error *err)
{
	struct keys_write	*x = (struct keys_write *)w;
	struct broker		*b = w->b;
	struct rotation		*r = b->rot;

	r->busy = false;
	if (rc != 0) {
		/* Counted by keys_finish, not made. */
		r->done -= x->kchanged + x->bchanged;
		keys_wait(b, err->msg);
		keys_write_free(x);
		return;
	}
	keys_write_free(x);
	r->state = ROT_DONE;
	/* Switched already when the fleet's state said so (keys_changed). */
	if (b->key_next != NULL) {
		seal_key_free(b->key);
		b->key = b->key_next;
		b->key_next = NULL;
	}
	snprintf(r->message, sizeof(r->message), "rotation complete: "
	    "configure the new key (security.secret_key_file = %.150s)",
	    r->file);
	log_info("key rotation complete: every value is sealed with key "
	    "version %u.  Make the new key the configured one now: set "
	    "security.secret_key_file = %s (or put its contents in the "
	    "configured key file or systemd credential) before the next "
	    "start; the old key no longer opens this store", r->version,
	    r->file);
	if (b->fleet != NULL) {
		fleet_publish(b);
		keys_unlock(b);
	}
}

/*
 * Everything is re-sealed: the Vault settings, keys, links and defaults
 * re-sealed here, the key check value of the new key and the new version
 * go to the writer in one job; keys_finished makes the new key the key.
 */
static int
keys_finish(struct broker *b, struct cb_error *err)
{
	struct rotation		*r = b->rot;
	struct keys_write	*x;
	int64_t			 done = r->done, total = r->total;
	int			 rc;

	if ((x = calloc(1, sizeof(*x))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	x->finish = true;
	memcpy(x->kcv, r->kcv, sizeof(x->kcv));
	if ((rc = rpc_vault_reseal(b, &x->vault, err)) != 0 ||
	    (rc = keys_keys_reseal(b, x, err)) != 0 ||
	    (rc = keys_binds_reseal(b, x, err)) != 0)
		goto fail;
	/* The setting as it is once done: counted, and the state done. */
	r->done += x->kchanged + x->bchanged;
	if (r->done > r->total)
		r->total = r->done;
	r->state = ROT_DONE;
	x->doc = keys_doc(b, r->version);
	r->state = ROT_RUNNING;
	if (x->doc == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto fail;
	}
	x->w.run = keys_write_run;
	x->w.done = keys_finished;
	x->w.types = true;	/* the defaults' sealed names */
	r->busy = true;
	if ((rc = dbwrite_submit(b, &x->w, err)) == 0)
		return 0;
	r->busy = false;
fail:
	r->done = done;
	r->total = total;
	keys_write_free(x);
	return rc;
}

/*
 * The mirror is read again (postgresql backend): the last step may scan
 * it.  A failed read is waited out: never finish on a stale mirror.
 */
static void
keys_reloaded(struct broker *b, int rc, const struct cb_error *err,
    void *arg)
{
	struct rotation	*r = b->rot;
	struct cb_error	 e;

	(void)arg;
	if (r == NULL)
		return;
	r->busy = false;
	if (r->state != ROT_RUNNING || r->follower || b->stopping)
		return;
	if (rc != 0) {
		keys_wait(b, err != NULL ? err->msg : "cannot read the "
		    "shared tables again");
		return;
	}
	cb_error_clear(&e);
	if (keys_finish(b, &e) != 0)
		keys_wait(b, e.msg);
}

/* One step of the rotation, run by this broker. */
static void
keys_run(struct broker *b)
{
	struct rotation	*r = b->rot;
	struct cb_error	 err;
	int		 rc;

	cb_error_clear(&err);
	r->message[0] = '\0';
	if (r->phase < PH_SETTINGS) {
		/* The backend's answer schedules the next step. */
		if ((rc = keys_values_step(b, &err)) == 0)
			return;
	} else {
		/*
		 * The sealed Vault settings, keys, links and defaults, then
		 * the switch.  On PostgreSQL they are scanned in the mirror,
		 * which is read again first (keys_locked says why).
		 */
		if (b->pgs != NULL) {
			r->busy = true;
			if ((rc = pgstore_reload(b, keys_reloaded, NULL,
			    &err)) == 0)
				return;
			r->busy = false;
		} else if ((rc = keys_finish(b, &err)) == 0)
			return;
	}
	keys_wait(b, err.msg);
}

/*
 * The fleet's gate (postgresql backend), before every step: the
 * rotation's advisory lock is this broker's (taken, or still held by
 * its connection), so that one broker alone walks the values; every
 * live broker holds the new key and seals with it, so that nothing
 * sealed with the old key can appear behind the walk.
 *
 * Once the heartbeat that says a broker seals with the new key is read,
 * everything that broker sealed with the old key is in PostgreSQL:
 * - its values: they are written on the loop's connection, the one the
 *   heartbeat goes out on, before it (a write that waits for a read of
 *   its value asked before it is covered by the barrier: fleet.c);
 * - its metadata (key pairs, peer keys, links, defaults, Vault settings):
 *   they are written by its writer thread, on a connection of its own,
 *   so the broker says it seals with the new key only once a barrier
 *   sent down its writer after the switch has been answered (fleet.c).
 * The last step scans the metadata in this broker's mirror, which
 * notifications bring up to date later: it reads the mirror again
 * first, on its own writer, after this broker's own earlier writes
 * (keys_run), and waits and retries should that fail.
 */
static void
keys_locked(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	struct broker	*b = arg;
	struct rotation	*r = b->rot;
	struct cb_error	 e;
	uint32_t	 version;
	struct rotation	*nr = NULL;
	char		*text = NULL;

	if (r == NULL)
		return;
	r->busy = false;
	if (r->state != ROT_RUNNING || b->stopping)
		return;
	if (rc != 0) {
		keys_wait(b, err != NULL ? err->msg : "cannot lock");
		return;
	}
	if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
		if (!r->follower)
			log_info("key rotation to version %u: another broker "
			    "of the fleet runs it", r->version);
		r->follower = true;
		r->message[0] = '\0';
		keys_schedule(b, KEYS_TAKEOVER_MS);
		return;
	}
	if (r->follower) {
		/* The broker that ran it is gone: on from its checkpoint. */
		if (store_setting_get(b->store, KEYS_SETTING, &text, &e) != 0 ||
		    keys_state_read(text, &version, &nr, &e) != 0 ||
		    nr == NULL || nr->state != ROT_RUNNING ||
		    nr->version != r->version) {
			/* Over meanwhile: the lock is not ours to keep. */
			free(text);
			if (nr != NULL) {
				free(nr->file);
				free(nr);
			}
			keys_unlock(b);
			if (r->state == ROT_RUNNING)
				keys_schedule(b, KEYS_TAKEOVER_MS);
			return;
		}
		free(text);
		r->phase = nr->phase;
		memcpy(r->cur_type, nr->cur_type, sizeof(r->cur_type));
		memcpy(r->cur_user, nr->cur_user, sizeof(r->cur_user));
		r->done = nr->done;
		r->total = nr->total;
		free(nr->file);
		free(nr);
		r->follower = false;
		log_info("key rotation to version %u: taken over from the "
		    "broker that ran it (%lld of %lld values done)",
		    r->version, (long long)r->done, (long long)r->total);
	}
	keys_run(b);
}

static void
keys_gate(struct broker *b, int rc, void *arg)
{
	struct rotation	*r = b->rot;
	struct cb_error	 err;
	char		 who[512];
	struct pg	*pg;

	(void)arg;
	if (r == NULL)
		return;
	r->busy = false;
	if (r->state != ROT_RUNNING || b->stopping)
		return;
	if (rc != 0 || (pg = pgstore_pg(b)) == NULL) {
		keys_wait(b, "cannot reach the fleet's database");
		return;
	}
	if (fleet_lacking(b, r->kcv, (int)r->version, who, sizeof(who)) > 0) {
		snprintf(r->message, sizeof(r->message), "waiting for the "
		    "brokers on hosts %.180s to hold the new key and seal "
		    "with it", who);
		keys_schedule(b, 500);
		return;
	}
	r->busy = true;
	if (pg_query(pg, "SELECT pg_try_advisory_lock(" KEYS_LOCK_KEY ")",
	    0, NULL, NULL, NULL, keys_locked, b, &err) != 0) {
		r->busy = false;
		keys_wait(b, err.msg);
	}
}

/* The rotation's task on the loop: one step per call. */
static void
keys_step(uv_timer_t *t)
{
	struct broker	*b = t->data;
	struct rotation	*r = b->rot;
	struct cb_error	 err;

	if (r == NULL || r->state != ROT_RUNNING || r->busy || b->stopping)
		return;
	if (b->fleet == NULL) {
		keys_run(b);
		return;
	}
	/* Followers without the new key cannot take it over. */
	if (r->follower && b->key_next == NULL)
		return;
	r->busy = true;
	if (fleet_refresh(b, keys_gate, NULL, &err) != 0) {
		r->busy = false;
		keys_wait(b, err.msg);
	}
}

/* Let go of the rotation's advisory lock: it is done. */
static void
keys_unlocked(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	(void)arg;
	(void)res;
	if (rc != 0)
		log_warnx("key rotation: cannot release its lock: %s (it goes "
		    "with the connection)", err != NULL ? err->msg : "");
}

void
keys_unlock(struct broker *b)
{
	struct cb_error	 e;

	if (pgstore_pg(b) != NULL && pg_query(pgstore_pg(b),
	    "SELECT pg_advisory_unlock_all()", 0, NULL, NULL, NULL,
	    keys_unlocked, b, &e) != 0)
		log_warnx("key rotation: cannot release its lock: %s", e.msg);
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

/*
 * The key state another broker saved (pgstore.c: the refreshed "key"
 * setting or key check value): follow its rotation, switch keys when it
 * is done, and take it over should the broker that runs it go away.
 */
void
keys_changed(struct broker *b)
{
	struct rotation	*r = b->rot, *nr = NULL;
	struct cb_error	 err;
	uint32_t	 version;
	char		*text = NULL;

	if (store_setting_get(b->store, KEYS_SETTING, &text, &err) != 0 ||
	    keys_state_read(text, &version, &nr, &err) != 0) {
		log_warnx("key state: %s", err.msg);
		goto done;
	}
	/* This broker's own rotation's checkpoints: its state leads. */
	if (r != NULL && r->state == ROT_RUNNING && !r->follower &&
	    nr != NULL && nr->state == ROT_RUNNING && nr->version ==
	    r->version)
		goto done;
	if (version != b->key->version) {
		if (b->key_next != NULL && b->key_next->version == version) {
			seal_key_free(b->key);
			b->key = b->key_next;
			b->key_next = NULL;
			log_info("key rotation complete on the fleet: this "
			    "broker uses key version %u.  Make it the "
			    "configured key (security.secret_key_file) before "
			    "the next start", version);
			fleet_publish(b);
		} else if (version > b->key->version)
			log_warnx("the fleet's master key is version %u, which "
			    "this broker does not hold: it cannot open what "
			    "is sealed with it", version);
	}
	/* This broker's finished rotation keeps its message. */
	if (r != NULL && !r->follower && nr != NULL && nr->state ==
	    r->state && nr->version == r->version)
		goto done;
	if (nr == NULL) {
		if (r != NULL)
			r->state = ROT_NONE;
		goto done;
	}
	if (r == NULL) {
		b->rot = nr;
		nr = NULL;
		b->rot->follower = true;
	} else {
		/*
		 * Updated in place: a step in flight (busy) holds r.  The
		 * state is another broker's from now on.
		 */
		free(r->file);
		r->file = nr->file;
		nr->file = NULL;
		r->state = nr->state;
		r->phase = nr->phase;
		r->version = nr->version;
		memcpy(r->kcv, nr->kcv, sizeof(r->kcv));
		memcpy(r->cur_type, nr->cur_type, sizeof(r->cur_type));
		memcpy(r->cur_user, nr->cur_user, sizeof(r->cur_user));
		r->done = nr->done;
		r->total = nr->total;
		r->follower = true;
	}
	if (b->rot != NULL && b->rot->state == ROT_RUNNING) {
		keys_follow(b);
		/* Take it over should the broker that runs it go away. */
		if (b->key_next != NULL && (b->rot->timer == NULL ||
		    !uv_is_active((uv_handle_t *)b->rot->timer)) &&
		    !b->rot->busy && !b->stopping)
			keys_schedule(b, KEYS_TAKEOVER_MS);
	}
done:
	if (nr != NULL) {
		free(nr->file);
		free(nr);
	}
	free(text);
}

/*
 * pgstore: the broker on the PostgreSQL store (storage.backend =
 * postgresql, SPEC section 12).
 *
 * Start-up (before the loop serves): the password is read (a file, or
 * the systemd credential), the schema is brought up to date (pgschema.c,
 * one broker at a time under an advisory lock), the local mirror of the
 * metadata (storage/mirror.h) is rebuilt from the shared tables, and what
 * start-up writes (the key check value of a new database, the key state)
 * is replayed on PostgreSQL in one transaction.
 *
 * Serving: the values of db-stored types go to PostgreSQL on two of the
 * loop's asynchronous connections (pg.c, values-pg.c): their writes on
 * the loop's connection, the one the heartbeat (fleet.c) goes out on,
 * and their reads on a connection of their own, so that no read waits
 * behind a write's commit; every other write goes to the writer thread,
 * which replays it on PostgreSQL before the mirror keeps it; the loop's
 * connection listens for the notifications of the shared tables and
 * has the writer read each changed row again.  After a lost connection
 * (notifications missed) or a refresh that failed, the whole mirror is
 * read again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "mirror.h"
#include "pg.h"
#include "pgschema.h"
#include "seal.h"
#include "secbuf.h"
#include "store.h"
#include "values.h"
#include "vault.h"
#include "writer.h"

/* The settings row of the Vault settings (rpc-vault.c). */
#define PGSTORE_VAULT_SETTING	"vault"

/* Retries of a failed reload of the mirror: first, and the longest. */
#define PGSTORE_RETRY_MIN_MS	200
#define PGSTORE_RETRY_MAX_MS	5000

struct pgstore {
	struct broker	*b;
	struct secbuf	 password;
	bool		 has_password;
	struct mirror	*mirror;	/* the writer thread's, once started */
	struct pg	*pg;		/* the loop's */
	struct pg	*rpg;		/* the loop's, for reads of values */
	struct writer	*writer;
	uv_timer_t	*retry;		/* a reload of the mirror, later */
	unsigned	 retry_ms;
	bool		 reloading;	/* a reload job is queued */
	bool		 connected;
	bool		 rconnected;	/* rpg */
	bool		 serving;	/* pgstore_serve() was called */
	bool		 stale;		/* read the mirror again at serve */
	bool		 closing;
};

/* A notification's row read again, or the whole mirror (reload). */
struct pgrefresh {
	struct writer_job	 wj;		/* first */
	struct pgstore		*ps;
	bool			 reload;
	pgstore_reload_fn	 then;		/* pgstore_reload's, or NULL */
	void			*arg;
	const char		*table;
	char			 key[STORE_UUID_LEN + 1];
	char			 payload[];
};

static void	pgstore_schedule_reload(struct pgstore *, const char *);

char *
pgstore_mirror_path(const struct conf *c)
{
	char	*p;

	if (asprintf(&p, "%s.mirror", c->database) < 0)
		return NULL;
	return p;
}

/* The role's password: a file, the systemd credential, or none. */
static int
pgstore_password(struct pgstore *ps, const struct conf *c,
    struct cb_error *err)
{
	const char	*dir;
	char		*path = NULL;
	int		 rc;

	if (c->pg_password_file != NULL) {
		if ((rc = keyfile_read_secret(c->pg_password_file,
		    "PostgreSQL password", true, &ps->password, err)) != 0)
			return rc;
		ps->has_password = true;
		return 0;
	}
	dir = getenv("CREDENTIALS_DIRECTORY");
	if (dir == NULL || *dir == '\0')
		return 0;	/* libpq's own: passfile, peer, certificate */
	if (asprintf(&path, "%s/%s", dir, c->pg_password_credential) < 0)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	if (access(path, F_OK) != 0) {
		free(path);
		return 0;
	}
	/* systemd controls who reads its credentials. */
	rc = keyfile_read_secret(path, "PostgreSQL password", false,
	    &ps->password, err);
	free(path);
	if (rc == 0)
		ps->has_password = true;
	return rc;
}

static void
pgstore_opts(const struct pgstore *ps, const struct conf *c,
    struct pg_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->conninfo = c->pg_conninfo;
	o->password = ps->has_password ? secbuf_str(&ps->password) : NULL;
	o->query_timeout_ms = c->pg_timeout * 1000;
	o->connect_timeout_ms = c->pg_timeout * 1000;
	o->statement_timeout = true;
}

/* The schema, on a loop of start-up's own. */
struct pgstore_migration {
	struct pg	*pg;
	bool		 done;
	int		 rc;
	int		 version;
	struct cb_error	 err;
};

static void
pgstore_migrated(void *arg, int rc, int version, const struct cb_error *err)
{
	struct pgstore_migration	*m = arg;

	m->done = true;
	m->rc = rc;
	m->version = version;
	if (rc != 0 && err != NULL)
		m->err = *err;
}

static void
pgstore_migration_event(void *arg, enum pg_event ev,
    const struct cb_error *err)
{
	struct pgstore_migration	*m = arg;

	if (m->done)
		return;
	if (ev == PG_EVENT_DOWN) {
		m->done = true;
		m->rc = cb_error_set(&m->err, CB_EUNAVAILABLE, "%s",
		    err != NULL ? err->msg : "cannot connect to PostgreSQL");
		return;
	}
	if (ev == PG_EVENT_CONNECTED && pgschema_apply(m->pg,
	    pgstore_migrated, m, &m->err) != 0) {
		m->done = true;
		m->rc = -CB_EUNAVAILABLE;
	}
}

static int
pgstore_migrate(struct pgstore *ps, const struct conf *c,
    struct cb_error *err)
{
	struct pgstore_migration	 m;
	struct pg_opts			 o;
	uv_loop_t			 loop;
	int				 rc;

	memset(&m, 0, sizeof(m));
	if ((rc = uv_loop_init(&loop)) != 0)
		return cb_error_set(err, CB_EINTERNAL, "uv_loop_init: %s",
		    uv_strerror(rc));
	pgstore_opts(ps, c, &o);
	/* A migration may take long, or wait on another broker's. */
	o.statement_timeout = false;
	o.on_event = pgstore_migration_event;
	o.arg = &m;
	if ((rc = pg_open(&loop, &o, &m.pg, err)) != 0) {
		(void)uv_loop_close(&loop);
		return rc;
	}
	while (!m.done)
		(void)uv_run(&loop, UV_RUN_ONCE);
	pg_close(m.pg, NULL, NULL);
	(void)uv_run(&loop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&loop);
	if (m.rc != 0) {
		if (err != NULL)
			*err = m.err;
		return m.rc;
	}
	log_info("PostgreSQL schema at version %d", m.version);
	return 0;
}

int
pgstore_prepare(struct broker *b, struct cb_error *err)
{
	const struct conf	*c = b->conf;
	struct pgstore		*ps;
	int			 rc;

	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	ps->b = b;
	b->pgs = ps;
	if ((rc = pgstore_password(ps, c, err)) != 0 ||
	    (rc = pgstore_migrate(ps, c, err)) != 0 ||
	    (rc = mirror_new(c->pg_conninfo, ps->has_password ?
	    secbuf_str(&ps->password) : NULL, c->pg_timeout * 1000,
	    &ps->mirror, err)) != 0)
		return rc;
	return 0;
}

int
pgstore_begin(struct broker *b, struct cb_error *err)
{
	struct pgstore	*ps = b->pgs;
	int		 rc;

	if ((rc = mirror_reload(ps->mirror, b->store, err)) != 0)
		return rc;
	/* What start-up writes from here is recorded, then replayed. */
	if ((rc = mirror_txn_begin(ps->mirror, err)) != 0 ||
	    (rc = mirror_job_begin(ps->mirror, b->store, err)) != 0)
		return rc;
	return 0;
}

int
pgstore_prepared(struct broker *b, struct cb_error *err)
{
	struct pgstore	*ps = b->pgs;
	int		 rc;

	if ((rc = mirror_job_end(ps->mirror, b->store, true, err)) != 0 ||
	    (rc = mirror_txn_commit(ps->mirror, err)) != 0) {
		mirror_txn_abort(ps->mirror);
		return rc;
	}
	return 0;
}

/* On the writer's thread: read a row again, or everything. */
static int
pgrefresh_run(struct writer_job *wj, struct store *wst, struct cb_error *err)
{
	struct pgrefresh	*r = (struct pgrefresh *)wj;
	int			 rc;

	if (r->reload)
		return mirror_reload(r->ps->mirror, wst, err);
	rc = mirror_refresh(r->ps->mirror, wst, r->payload, &r->table,
	    r->key, err);
	if (rc == 0 && r->table != NULL && strcmp(r->table, "types") == 0)
		store_type_cache_sync(wst, r->key);
	return rc;
}

/*
 * The Vault settings as the mirror has them now, applied when they differ
 * from those in use (written through another broker).
 */
static void
pgstore_vault_follow(struct broker *b)
{
	struct vault_conf	vc;
	struct cb_error		err;
	bool			found;

	if (b->vault == NULL)
		return;
	if (rpc_vault_load(b, &vc, &found, &err) != 0) {
		log_warnx("Vault settings: %s", err.msg);
		return;
	}
	if (found && !vault_conf_is(b->vault, &vc)) {
		if (vault_configure(b->vault, &vc, &err) != 0)
			log_warnx("stored Vault settings refused: %s", err.msg);
		else
			log_info("Vault settings changed through another "
			    "broker: applied");
	}
	vault_conf_free(&vc);
}

/* On the loop: the loop's caches follow. */
static void
pgrefresh_done(struct writer_job *wj, int rc, const struct cb_error *err)
{
	struct pgrefresh	*r = (struct pgrefresh *)wj;
	struct pgstore		*ps = r->ps;
	struct broker		*b = ps->b;
	struct store		*st = ps->b->store;
	pgstore_reload_fn	 then = r->then;
	void			*arg = r->arg;

	if (r->reload)
		ps->reloading = false;
	if (rc != 0) {
		store_type_cache_drop(st);
		if (!ps->closing)
			pgstore_schedule_reload(ps, err != NULL ? err->msg :
			    "refresh failed");
	} else if (r->reload) {
		store_type_cache_drop(st);
		ps->retry_ms = 0;
		pgstore_vault_follow(ps->b);
		log_info("PostgreSQL: the mirror of the shared tables is "
		    "up to date");
	} else if (r->table != NULL && strcmp(r->table, "types") == 0)
		store_type_cache_sync(st, r->key);
	else if (r->table != NULL && strcmp(r->table, "settings") == 0 &&
	    strcmp(r->key, PGSTORE_VAULT_SETTING) == 0)
		pgstore_vault_follow(ps->b);
	/* The key state another broker changed: a rotation's (keys.c). */
	if (rc == 0 && !ps->closing && (r->reload || (r->table != NULL &&
	    (strcmp(r->table, "keycheck") == 0 ||
	    (strcmp(r->table, "settings") == 0 &&
	    strcmp(r->key, "key") == 0)))) && ps->b->keys_changed != NULL)
		ps->b->keys_changed(ps->b);
	free(r);
	if (then != NULL)
		then(b, rc, err, arg);
}

static int
pgstore_submit(struct pgstore *ps, bool reload, const char *payload,
    pgstore_reload_fn then, void *arg, struct cb_error *err)
{
	struct pgrefresh	*r;
	size_t			 n = payload != NULL ? strlen(payload) : 0;
	int			 rc;

	if ((r = calloc(1, sizeof(*r) + n + 1)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	r->ps = ps;
	r->reload = reload;
	r->then = then;
	r->arg = arg;
	if (n > 0)
		memcpy(r->payload, payload, n);
	r->wj.run = pgrefresh_run;
	r->wj.done = pgrefresh_done;
	r->wj.local = true;
	if ((rc = writer_submit(ps->writer, &r->wj, err)) != 0)
		free(r);
	else if (reload)
		ps->reloading = true;
	return rc;
}

int
pgstore_reload(struct broker *b, pgstore_reload_fn then, void *arg,
    struct cb_error *err)
{
	struct pgstore	*ps = b->pgs;

	if (ps == NULL || ps->closing || ps->writer == NULL)
		return cb_error_set(err, CB_EUNAVAILABLE, "the broker is "
		    "shutting down");
	return pgstore_submit(ps, true, NULL, then, arg, err);
}

static void
pgstore_retry_cb(uv_timer_t *t)
{
	struct pgstore	*ps = t->data;
	struct cb_error	 err;

	if (ps->closing || ps->reloading)
		return;
	if (!ps->serving) {
		ps->stale = true;	/* no writer thread before the fork */
		return;
	}
	if (pgstore_submit(ps, true, NULL, NULL, NULL, &err) != 0)
		pgstore_schedule_reload(ps, err.msg);
}

/* Read the whole mirror again soon (with a growing delay). */
static void
pgstore_schedule_reload(struct pgstore *ps, const char *why)
{
	if (ps->closing || ps->retry == NULL)
		return;
	log_warnx("PostgreSQL: the mirror of the shared tables will be read "
	    "again: %s", why);
	ps->retry_ms = ps->retry_ms == 0 ? PGSTORE_RETRY_MIN_MS :
	    ps->retry_ms * 2;
	if (ps->retry_ms > PGSTORE_RETRY_MAX_MS)
		ps->retry_ms = PGSTORE_RETRY_MAX_MS;
	if (!uv_is_active((uv_handle_t *)ps->retry))
		uv_timer_start(ps->retry, pgstore_retry_cb, ps->retry_ms, 0);
}

static void
pgstore_notified(void *arg, const char *channel, const char *payload)
{
	struct pgstore	*ps = arg;
	struct cb_error	 err;

	(void)channel;
	if (ps->closing)
		return;
	if (!ps->serving) {
		ps->stale = true;
		return;
	}
	if (pgstore_submit(ps, false, payload, NULL, NULL, &err) != 0)
		pgstore_schedule_reload(ps, err.msg);
}

/* The server runs the LISTEN: the mirror may be read again. */
static void
pgstore_listening(void *arg, int rc, PGresult *res,
    const struct cb_error *err)
{
	struct pgstore	*ps = arg;
	struct cb_error	 e;

	(void)res;
	if (ps->closing)
		return;
	if (rc != 0)
		pgstore_schedule_reload(ps, err != NULL ? err->msg :
		    "PostgreSQL did not answer");
	else if (!ps->serving)
		ps->stale = true;
	else if (pgstore_submit(ps, true, NULL, NULL, NULL, &e) != 0)
		pgstore_schedule_reload(ps, e.msg);
}

static void
pgstore_event(void *arg, enum pg_event ev, const struct cb_error *err)
{
	struct pgstore	*ps = arg;
	struct cb_error	 e;

	switch (ev) {
	case PG_EVENT_CONNECTED:
	case PG_EVENT_RECONNECTED:
		/*
		 * Notifications sent while LISTEN was not on (before the
		 * first connection, during an outage) are lost: read the
		 * whole mirror again, once the server has run the LISTEN
		 * (the answer to a query sent after it), so that a change
		 * committed meanwhile is either read or notified.
		 */
		ps->connected = true;
		log_info("PostgreSQL: connected%s", ev == PG_EVENT_RECONNECTED ?
		    " again; reading the shared tables again" : "");
		if (ps->closing)
			break;
		if (pg_query(ps->pg, "SELECT 1", 0, NULL, NULL, NULL,
		    pgstore_listening, ps, &e) != 0)
			pgstore_schedule_reload(ps, e.msg);
		fleet_publish(ps->b);
		break;
	case PG_EVENT_DOWN:
		ps->connected = false;
		log_warnx("PostgreSQL: %s", err != NULL ? err->msg :
		    "connection lost");
		break;
	}
}

/* The connection of the reads of values: only logged. */
static void
pgstore_read_event(void *arg, enum pg_event ev, const struct cb_error *err)
{
	struct pgstore	*ps = arg;

	switch (ev) {
	case PG_EVENT_CONNECTED:
	case PG_EVENT_RECONNECTED:
		ps->rconnected = true;
		if (ev == PG_EVENT_RECONNECTED)
			log_info("PostgreSQL: the reads' connection is up "
			    "again");
		break;
	case PG_EVENT_DOWN:
		ps->rconnected = false;
		log_warnx("PostgreSQL (the reads' connection): %s",
		    err != NULL ? err->msg : "connection lost");
		break;
	}
}

/* The writer's replica: the mirror's replay (writer.h). */
static int
pgstore_rep_begin(void *arg, struct cb_error *err)
{
	return mirror_txn_begin(arg, err);
}

static int
pgstore_rep_job_begin(void *arg, struct store *st, struct cb_error *err)
{
	return mirror_job_begin(arg, st, err);
}

static int
pgstore_rep_job_end(void *arg, struct store *st, bool keep,
    struct cb_error *err)
{
	return mirror_job_end(arg, st, keep, err);
}

static int
pgstore_rep_commit(void *arg, struct cb_error *err)
{
	return mirror_txn_commit(arg, err);
}

static void
pgstore_rep_abort(void *arg)
{
	mirror_txn_abort(arg);
}

static void
pgstore_timer_closed(uv_handle_t *h)
{
	free(h);
}

int
pgstore_open(struct broker *b, struct cb_error *err)
{
	struct pgstore		*ps = b->pgs;
	struct writer_replica	 rep;
	struct pg_opts		 o;
	uint64_t		 deadline;
	int			 rc;

	if ((ps->retry = calloc(1, sizeof(*ps->retry))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	uv_timer_init(b->loop, ps->retry);
	ps->retry->data = ps;
	if ((rc = writer_start(b->loop, b->store, &ps->writer, err)) != 0)
		return rc;
	memset(&rep, 0, sizeof(rep));
	rep.arg = ps->mirror;
	rep.begin = pgstore_rep_begin;
	rep.job_begin = pgstore_rep_job_begin;
	rep.job_end = pgstore_rep_job_end;
	rep.commit = pgstore_rep_commit;
	rep.abort = pgstore_rep_abort;
	writer_set_replica(ps->writer, &rep);

	pgstore_opts(ps, b->conf, &o);
	o.on_event = pgstore_event;
	o.arg = ps;
	if ((rc = pg_open(b->loop, &o, &ps->pg, err)) != 0)
		return rc;
	o.on_event = pgstore_read_event;
	if ((rc = pg_open(b->loop, &o, &ps->rpg, err)) != 0)
		return rc;
	/* Every connection (the writer's, and these two) has its copy now. */
	secbuf_free(&ps->password);
	if ((rc = pg_listen(ps->pg, MIRROR_CHANNEL, pgstore_notified, ps,
	    err)) != 0 ||
	    (rc = values_pg_new(ps->rpg, ps->pg, &b->values[STORE_DB],
	    err)) != 0 ||
	    (rc = fleet_open(b, ps->pg, err)) != 0)
		return rc;
	/*
	 * Serve once both are connected (or once an attempt has failed:
	 * calls that need the database then fail until it is back).
	 */
	deadline = uv_now(b->loop) + b->conf->pg_timeout * 1000;
	while (!(ps->connected && ps->rconnected) &&
	    uv_now(b->loop) < deadline) {
		struct pg_status	s, r;

		pg_status(ps->pg, &s);
		pg_status(ps->rpg, &r);
		if (s.last_error[0] != '\0' || r.last_error[0] != '\0')
			break;
		(void)uv_run(b->loop, UV_RUN_ONCE);
	}
	return 0;
}

void
pgstore_serve(struct broker *b)
{
	struct pgstore	*ps = b->pgs;
	struct cb_error	 err;

	if (ps == NULL || ps->serving)
		return;
	ps->serving = true;
	if (ps->stale && pgstore_submit(ps, true, NULL, NULL, NULL, &err) != 0)
		pgstore_schedule_reload(ps, err.msg);
	ps->stale = false;
}

/* One pgstore_count_values() waiting on PostgreSQL. */
struct pgstore_count {
	pgstore_count_fn	 fn;
	void			*arg;
};

static void
pgstore_counted(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	struct pgstore_count	*c = arg;
	struct cb_error		 e;
	long long		 n = 0;

	if (rc == 0 && (PQntuples(res) != 1 || PQgetisnull(res, 0, 0) ||
	    sscanf(PQgetvalue(res, 0, 0), "%lld", &n) != 1)) {
		rc = cb_error_set(&e, CB_EINTERNAL, "PostgreSQL: an unexpected "
		    "answer to a count");
		err = &e;
	}
	c->fn(c->arg, rc, rc == 0 ? (int64_t)n : 0, rc != 0 ? err : NULL);
	free(c);
}

int
pgstore_count_values(struct broker *b, const char *type_uuid,
    pgstore_count_fn fn, void *arg, struct cb_error *err)
{
	struct pgstore_count	*c;
	const char		*vals[1] = { type_uuid };
	const char		*sql;
	int			 rc;

	if (b->pgs == NULL || b->pgs->pg == NULL || b->pgs->closing)
		return cb_error_set(err, CB_EUNAVAILABLE, "the broker is "
		    "shutting down");
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	c->fn = fn;
	c->arg = arg;
	if (type_uuid != NULL)
		sql = "SELECT (SELECT count(*) FROM credvalues WHERE "
		    "type_uuid = $1) + (SELECT count(*) FROM credaccounts "
		    "WHERE type_uuid = $1)";
	else
		sql = "SELECT (SELECT count(*) FROM credvalues) + "
		    "(SELECT count(*) FROM credaccounts)";
	if ((rc = pg_query(b->pgs->pg, sql, type_uuid != NULL ? 1 : 0,
	    type_uuid != NULL ? vals : NULL, NULL, NULL, pgstore_counted, c,
	    err)) != 0)
		free(c);
	return rc;
}

struct pg *
pgstore_pg(const struct broker *b)
{
	return b->pgs != NULL && !b->pgs->closing ? b->pgs->pg : NULL;
}

/*
 * The loop's connection, with the reads' folded in: connected when both
 * are, the reconnections and queries waiting of both, the first error.
 */
void
pgstore_status(const struct broker *b, struct pg_status *s)
{
	struct pg_status	r;

	memset(s, 0, sizeof(*s));
	if (b->pgs == NULL || b->pgs->pg == NULL)
		return;
	pg_status(b->pgs->pg, s);
	if (b->pgs->rpg == NULL)
		return;
	pg_status(b->pgs->rpg, &r);
	s->connected = s->connected && r.connected;
	s->reconnects += r.reconnects;
	s->pending += r.pending;
	if (s->last_error[0] == '\0')
		memcpy(s->last_error, r.last_error, sizeof(s->last_error));
}

struct writer *
pgstore_writer(const struct broker *b)
{
	return b->pgs != NULL && !b->pgs->closing ? b->pgs->writer : NULL;
}

void
pgstore_close(struct broker *b)
{
	struct pgstore	*ps = b->pgs;

	if (ps == NULL)
		return;
	ps->closing = true;
	fleet_close(b);
	if (ps->retry != NULL) {
		uv_timer_stop(ps->retry);
		uv_close((uv_handle_t *)ps->retry, pgstore_timer_closed);
		ps->retry = NULL;
	}
	if (ps->writer != NULL)
		writer_stop(ps->writer);	/* answers what is queued */
	ps->writer = NULL;
	if (ps->pg != NULL)
		pg_close(ps->pg, NULL, NULL);
	ps->pg = NULL;
	if (ps->rpg != NULL)
		pg_close(ps->rpg, NULL, NULL);
	ps->rpg = NULL;
	mirror_free(ps->mirror);
	secbuf_free(&ps->password);
	free(ps);
	b->pgs = NULL;
}

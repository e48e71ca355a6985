/*
 * fleet: the brokers sharing one PostgreSQL store (SPEC section 12).
 *
 * Each broker has a row in the table brokers: inserted once connected,
 * its heartbeat (the server's now()) renewed every FLEET_HEARTBEAT_MS on
 * the loop's asynchronous connection, deleted at a clean shutdown.  The
 * row says which master keys the broker holds (their versions and key
 * check values, which reveal nothing of a key) and which version it seals
 * new values with: the key rotation (rotate.c) reads them.  A broker is
 * live while its heartbeat is less than FLEET_LIVE_S seconds old.
 *
 * The same statement that renews the heartbeat reads the other brokers'
 * rows and the schema version back: health and key.status show that
 * list, at most one heartbeat old.  Nothing here ever waits on the
 * network; a failed heartbeat is logged once per outage.
 *
 * During a rotation a broker seals with the new key as soon as it holds
 * it, but says so (sealing) only once a barrier, a job that writes
 * nothing, has been answered by its writer thread: the writer runs its
 * jobs in turn, so every metadata write sealed with the old key before
 * (key pairs, links, defaults, Vault settings) has then been committed
 * on PostgreSQL, or has failed.  Those writes go out on the writer's own
 * connection, not on the heartbeat's: without the barrier, the heartbeat
 * could overtake them.  The values' writes go out on the heartbeat's
 * connection (values-pg.c), ahead of it, except one that waits for a read
 * of its value asked before it: the broker says so once every values
 * write asked before the barrier has gone out (values_pg_writes_sent()).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "pg.h"
#include "proto.h"
#include "seal.h"
#include "store.h"
#include "values.h"

/* Rows older than this are removed by the next broker's heartbeat. */
#define FLEET_FORGET	"1 day"
/* Other brokers listed by health: those seen within this. */
#define FLEET_SEEN_S	3600

/*
 * One statement: the broker's own row inserted or renewed, the rows of
 * brokers gone for long deleted, and the schema version and the other
 * brokers' rows read (a row per broker, or one row of NULLs but the
 * version when there is none).
 */
#define FLEET_SQL_BEAT							\
	"WITH me AS (INSERT INTO brokers (id, host, pid, key_versions,"	\
	"  key_kcvs, sealing) VALUES ($1, $2, $3, $4::integer[],"	\
	"  $5::text[], $6) ON CONFLICT (id) DO UPDATE SET heartbeat ="	\
	"  now(), key_versions = EXCLUDED.key_versions, key_kcvs ="	\
	"  EXCLUDED.key_kcvs, sealing = EXCLUDED.sealing RETURNING 1),"	\
	" gone AS (DELETE FROM brokers WHERE heartbeat < now() -"	\
	"  interval '" FLEET_FORGET "' RETURNING 1)"			\
	" SELECT s.v, o.host, o.pid, o.started, o.age, o.versions,"	\
	"  o.kcvs, o.sealing FROM (SELECT max(version) AS v FROM"	\
	"  schema_version) s LEFT JOIN (SELECT host, pid,"		\
	"  extract(epoch FROM started)::bigint AS started,"		\
	"  (extract(epoch FROM now() - heartbeat) * 1000)::bigint AS age,"	\
	"  array_to_string(key_versions, ',') AS versions,"		\
	"  array_to_string(key_kcvs, ',') AS kcvs, sealing"		\
	"  FROM brokers WHERE id <> $1 AND heartbeat > now() -"	\
	"  make_interval(secs => $7)) o ON true"			\
	" ORDER BY o.host, o.pid"

#define FLEET_SQL_LEAVE	"DELETE FROM brokers WHERE id = $1"

/* The key check values and versions a broker publishes. */
#define FLEET_KEYS_MAX	3

struct fleet_member {
	char		 host[256];
	int64_t		 pid;
	int64_t		 started;	/* unix seconds */
	int64_t		 age_ms;	/* heartbeat age when read */
	char		 versions[64];	/* "1,2" */
	char		 kcvs[3 * SEAL_KCV_MAX];
	int64_t		 sealing;	/* 0 when unknown */
};

/* A caller of fleet_refresh, waiting for the next heartbeat. */
struct fleet_waiter {
	void			(*then)(struct broker *, int, void *);
	void			*arg;
	struct fleet_waiter	*next;
};

struct fleet {
	struct broker		*b;
	struct pg		*pg;
	uv_timer_t		*timer;
	char			 id[STORE_UUID_LEN + 1];
	char			 host[256];
	bool			 sending;	/* a heartbeat is out */
	bool			 again;		/* beat once it is back */
	bool			 failing;	/* logged this outage */
	bool			 beaten;	/* a heartbeat succeeded */
	bool			 closed;	/* freed by fleet_beaten */
	/*
	 * The new key's version once a barrier sent after this broker began
	 * to seal with it was answered (0: none), and that of the barrier
	 * out (0: none).
	 */
	uint32_t		 sealing;
	uint32_t		 barrier;
	/*
	 * The new key's version once its barrier was answered, while values
	 * writes asked before the barrier (up to values_mark) have not all
	 * gone out yet (0: none).
	 */
	uint32_t		 passed;
	uint64_t		 values_mark;
	void			(*then)(struct broker *);	/* leaving */
	struct fleet_waiter	*waiting;	/* for the next heartbeat */
	struct fleet_waiter	*sent;		/* for the one out */
	struct fleet_member	*members;
	size_t			 nmembers;
	uint64_t		 read_ms;	/* uv_now of the list */
	int			 schema_version;
	char			 last_error[CB_ERRMSG_MAX];
};

static void	fleet_beat(struct fleet *);

static void
fleet_timer_closed(uv_handle_t *h)
{
	free(h);
}

/*
 * "{a,b}" of the keys held; versions and check values.  The version it
 * seals with: the new key's once the barrier confirmed it, else the key's.
 */
static void
fleet_keys(const struct broker *b, char *versions, size_t vsz, char *kcvs,
    size_t ksz, int *sealing)
{
	const struct seal_key	*keys[FLEET_KEYS_MAX];
	char			 kcv[SEAL_KCV_MAX];
	struct cb_error		 e;
	size_t			 n = 0, i, vl, kl;

	keys[n++] = b->key;
	if (b->key_next != NULL)
		keys[n++] = b->key_next;
	if (b->key_staged != NULL)
		keys[n++] = b->key_staged;
	snprintf(versions, vsz, "{%u", (unsigned)b->key->version);
	if (b->key_next != NULL) {
		vl = strlen(versions);
		snprintf(versions + vl, vsz - vl, ",%u",
		    (unsigned)b->key_next->version);
	}
	vl = strlen(versions);
	snprintf(versions + vl, vsz - vl, "}");
	snprintf(kcvs, ksz, "{");
	for (i = 0; i < n; i++) {
		if (seal_kcv(keys[i], kcv, &e) != 0)
			continue;
		/* The staged key may be the new key of the rotation. */
		if (strstr(kcvs, kcv) != NULL)
			continue;
		kl = strlen(kcvs);
		snprintf(kcvs + kl, ksz - kl, "%s%s", kl > 1 ? "," : "", kcv);
	}
	kl = strlen(kcvs);
	snprintf(kcvs + kl, ksz - kl, "}");
	*sealing = (int)(b->key_next != NULL && b->fleet != NULL &&
	    b->fleet->sealing == b->key_next->version ? b->key_next :
	    b->key)->version;
}

/* A barrier on the writer: it writes nothing. */
struct fleet_barrier {
	struct dbwrite	 w;		/* first */
	uint32_t	 version;	/* key_next's when it was sent */
	uint64_t	 values;	/* values writes asked by then */
};

/*
 * The barrier of version was answered: the broker says it seals with the
 * new key once the values writes asked before the barrier have gone out
 * on the heartbeat's connection too.  True when it does now.
 */
static bool
fleet_confirm(struct fleet *f, uint32_t version)
{
	struct values	*v = f->b->values[STORE_DB];

	if (v != NULL && !values_pg_writes_sent(v, f->values_mark)) {
		f->passed = version;
		return false;
	}
	f->passed = 0;
	f->sealing = version;
	log_info("key rotation to version %u: every write sealed with the old "
	    "key before is committed; this broker says it seals with the new "
	    "key", version);
	return true;
}

static int
fleet_barrier_run(struct dbwrite *w, struct store *wst, struct cb_error *err)
{
	(void)w;
	(void)wst;
	(void)err;
	return 0;
}

/*
 * On the loop: every write submitted before the barrier has been answered.
 * A failed barrier (the writer could not reach PostgreSQL) confirms
 * nothing, to be safe: the next heartbeat sends another.
 */
static void
fleet_barrier_done(struct dbwrite *w, int rc, const struct cb_error *err)
{
	struct fleet_barrier	*x = (struct fleet_barrier *)w;
	struct broker		*b = w->b;
	struct fleet		*f = b->fleet;

	(void)err;
	if (f != NULL && f->barrier == x->version)
		f->barrier = 0;
	if (f != NULL && rc == 0 && b->key_next != NULL &&
	    b->key_next->version == x->version && f->sealing != x->version) {
		f->values_mark = x->values;
		if (fleet_confirm(f, x->version))
			fleet_beat(f);
	}
	free(x);
}

/*
 * Before a heartbeat: a broker that seals with a new key not confirmed
 * yet sends a barrier down its writer.  The writer's thread starts with
 * its first job, which must not come before the daemon has forked: a new
 * key held from start-up on is confirmed already (fleet_open), and any
 * other is taken while the loop serves.
 */
static void
fleet_barrier(struct fleet *f)
{
	struct broker		*b = f->b;
	struct fleet_barrier	*x;
	struct cb_error		 e;

	if (b->key_next == NULL) {
		f->sealing = 0;
		f->passed = 0;
		return;
	}
	if (f->sealing == b->key_next->version ||
	    f->barrier == b->key_next->version)
		return;
	/* This heartbeat says so if the values' writes are out by now. */
	if (f->passed == b->key_next->version) {
		(void)fleet_confirm(f, f->passed);
		return;
	}
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return;
	x->version = b->key_next->version;
	if (b->values[STORE_DB] != NULL)
		x->values = values_pg_writes_asked(b->values[STORE_DB]);
	x->w.run = fleet_barrier_run;
	x->w.done = fleet_barrier_done;
	/* Nothing to replay: not the mirror's business. */
	x->w.wj.local = true;
	if (dbwrite_submit(b, &x->w, &e) != 0) {
		log_warnx("key rotation: %s; trying again at the next "
		    "heartbeat", e.msg);
		free(x);
		return;
	}
	f->barrier = x->version;
}

static void
fleet_members_free(struct fleet *f)
{
	free(f->members);
	f->members = NULL;
	f->nmembers = 0;
}

static void
fleet_copy(char *dst, size_t sz, PGresult *res, int row, int col)
{
	snprintf(dst, sz, "%s", PQgetvalue(res, row, col));
}

/* Answer the callers that waited for the heartbeat just back. */
static void
fleet_answer(struct fleet *f, struct fleet_waiter *list, int rc)
{
	struct fleet_waiter	*w;

	while ((w = list) != NULL) {
		list = w->next;
		w->then(f->b, rc, w->arg);
		free(w);
	}
}

static void	fleet_read(struct fleet *, int, PGresult *,
		    const struct cb_error *);

static void
fleet_beaten(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	struct fleet		*f = arg;
	struct fleet_waiter	*list = f->sent;

	f->sending = false;
	f->sent = NULL;
	if (f->closed) {
		free(f);
		return;
	}
	if (f->then != NULL) {
		/* Leaving: the DELETE follows. */
		fleet_answer(f, list, -CB_EUNAVAILABLE);
		return;
	}
	fleet_read(f, rc, res, err);
	fleet_answer(f, list, rc);
	if (f->again && f->b->fleet == f && f->then == NULL) {
		f->again = false;
		fleet_beat(f);
	}
}

static void
fleet_read(struct fleet *f, int rc, PGresult *res, const struct cb_error *err)
{
	struct fleet_member	*m;
	size_t			 n, i;
	int			 row;

	if (rc != 0) {
		snprintf(f->last_error, sizeof(f->last_error), "%s",
		    err != NULL ? err->msg : "heartbeat failed");
		if (!f->failing)
			log_warnx("fleet: the heartbeat of this broker "
			    "failed: %s", f->last_error);
		f->failing = true;
		return;
	}
	if (f->failing)
		log_info("fleet: heartbeat renewed");
	f->failing = false;
	f->beaten = true;
	f->last_error[0] = '\0';
	n = (size_t)PQntuples(res);
	if ((m = calloc(n + 1, sizeof(*m))) == NULL)
		return;
	f->schema_version = n > 0 ? atoi(PQgetvalue(res, 0, 0)) : 0;
	for (i = 0, row = 0; row < (int)n; row++) {
		if (PQgetisnull(res, row, 1))
			continue;
		fleet_copy(m[i].host, sizeof(m[i].host), res, row, 1);
		m[i].pid = strtoll(PQgetvalue(res, row, 2), NULL, 10);
		m[i].started = strtoll(PQgetvalue(res, row, 3), NULL, 10);
		m[i].age_ms = strtoll(PQgetvalue(res, row, 4), NULL, 10);
		fleet_copy(m[i].versions, sizeof(m[i].versions), res, row, 5);
		fleet_copy(m[i].kcvs, sizeof(m[i].kcvs), res, row, 6);
		m[i].sealing = PQgetisnull(res, row, 7) ? 0 :
		    strtoll(PQgetvalue(res, row, 7), NULL, 10);
		i++;
	}
	fleet_members_free(f);
	f->members = m;
	f->nmembers = i;
	f->read_ms = uv_now(f->b->loop);
}

static void
fleet_beat(struct fleet *f)
{
	const char	*params[7];
	char		 pid[16], versions[64], kcvs[4 * SEAL_KCV_MAX];
	char		 sealing[16], seen[16];
	struct fleet_waiter *list;
	struct cb_error	 e;
	int		 sv;

	if (f->then != NULL)
		return;
	if (f->sending) {
		f->again = true;
		return;
	}
	fleet_barrier(f);
	fleet_keys(f->b, versions, sizeof(versions), kcvs, sizeof(kcvs), &sv);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	snprintf(sealing, sizeof(sealing), "%d", sv);
	snprintf(seen, sizeof(seen), "%d", FLEET_SEEN_S);
	params[0] = f->id;
	params[1] = f->host;
	params[2] = pid;
	params[3] = versions;
	params[4] = kcvs;
	params[5] = sealing;
	params[6] = seen;
	if (pg_query(f->pg, FLEET_SQL_BEAT, 7, params, NULL, NULL,
	    fleet_beaten, f, &e) != 0) {
		/* Down: the connection's own event says so. */
		snprintf(f->last_error, sizeof(f->last_error), "%s", e.msg);
		if (!f->failing)
			log_warnx("fleet: the heartbeat of this broker "
			    "failed: %s", e.msg);
		f->failing = true;
		list = f->waiting;
		f->waiting = NULL;
		fleet_answer(f, list, -CB_EUNAVAILABLE);
		return;
	}
	f->sending = true;
	f->sent = f->waiting;
	f->waiting = NULL;
}

static void
fleet_timer_cb(uv_timer_t *t)
{
	fleet_beat(t->data);
}

int
fleet_open(struct broker *b, struct pg *pg, struct cb_error *err)
{
	struct fleet	*f;
	int		 rc;

	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->timer = calloc(1, sizeof(*f->timer))) == NULL) {
		free(f);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	f->b = b;
	f->pg = pg;
	/* Everything this process seals, it seals with the new key. */
	if (b->key_next != NULL)
		f->sealing = b->key_next->version;
	if ((rc = store_uuid_new(f->id)) != 0) {
		free(f->timer);
		free(f);
		return cb_error_set(err, CB_EINTERNAL, "cannot make the "
		    "broker's id");
	}
	if (gethostname(f->host, sizeof(f->host) - 1) != 0)
		snprintf(f->host, sizeof(f->host), "unknown");
	uv_timer_init(b->loop, f->timer);
	f->timer->data = f;
	uv_timer_start(f->timer, fleet_timer_cb, FLEET_HEARTBEAT_MS,
	    FLEET_HEARTBEAT_MS);
	b->fleet = f;
	return 0;
}

void
fleet_publish(struct broker *b)
{
	if (b->fleet != NULL)
		fleet_beat(b->fleet);
}

int
fleet_refresh(struct broker *b, void (*then)(struct broker *, int, void *),
    void *arg, struct cb_error *err)
{
	struct fleet		*f = b->fleet;
	struct fleet_waiter	*w;

	if (f == NULL || f->then != NULL)
		return cb_error_set(err, CB_EUNAVAILABLE, "the broker is "
		    "stopping");
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	w->then = then;
	w->arg = arg;
	/* After the heartbeat out, if any: it may have read too early. */
	w->next = f->waiting;
	f->waiting = w;
	fleet_beat(f);
	return 0;
}

static void
fleet_left(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	struct fleet	*f = arg;
	struct broker	*b = f->b;
	void		(*then)(struct broker *) = f->then;

	(void)res;
	if (rc != 0)
		log_warnx("fleet: cannot remove this broker's row: %s",
		    err != NULL ? err->msg : "failed");
	fleet_close(b);
	then(b);
}

bool
fleet_leave(struct broker *b, void (*then)(struct broker *))
{
	struct fleet	*f = b->fleet;
	const char	*params[1];
	struct cb_error	 e;

	if (f == NULL || f->then != NULL)
		return f != NULL;
	uv_timer_stop(f->timer);
	params[0] = f->id;
	f->then = then;
	if (!f->beaten || pg_query(f->pg, FLEET_SQL_LEAVE, 1, params, NULL,
	    NULL, fleet_left, f, &e) != 0) {
		f->then = NULL;
		fleet_close(b);
		return false;
	}
	return true;
}

void
fleet_close(struct broker *b)
{
	struct fleet	*f = b->fleet;

	if (f == NULL)
		return;
	b->fleet = NULL;
	uv_close((uv_handle_t *)f->timer, fleet_timer_closed);
	fleet_answer(f, f->waiting, -CB_EUNAVAILABLE);
	f->waiting = NULL;
	/* The heartbeat out fails with the connection, later: not ours. */
	fleet_answer(f, f->sent, -CB_EUNAVAILABLE);
	f->sent = NULL;
	fleet_members_free(f);
	if (f->sending)
		f->closed = true;	/* its callback frees it */
	else
		free(f);
}

/* Age in ms of member m now. */
static int64_t
fleet_age(const struct fleet *f, const struct fleet_member *m)
{
	return m->age_ms + (int64_t)(uv_now(f->b->loop) - f->read_ms);
}

/* The one rule of liveness: a heartbeat less than FLEET_LIVE_S old. */
static bool
fleet_age_live(int64_t age_ms)
{
	return age_ms < FLEET_LIVE_S * 1000;
}

bool
fleet_live(const struct broker *b, size_t i)
{
	const struct fleet	*f = b->fleet;

	return f != NULL && i < f->nmembers &&
	    fleet_age_live(fleet_age(f, &f->members[i]));
}

/* Pack "{a,b}" or "a,b" as an array of strings (ints when numeric). */
static void
fleet_pack_list(msgpack_packer *pk, const char *list, bool numbers)
{
	char		 buf[4 * SEAL_KCV_MAX], *p, *s;
	size_t		 n = 0;

	snprintf(buf, sizeof(buf), "%s", list);
	for (p = buf; *p != '\0'; p++)
		if (*p == '{' || *p == '}')
			*p = ' ';
	for (p = buf; *p != '\0'; p++)
		if (*p != ' ' && *p != ',' && (p == buf || p[-1] == ' ' ||
		    p[-1] == ','))
			n++;
	msgpack_pack_array(pk, n);
	for (s = strtok(buf, " ,"); s != NULL; s = strtok(NULL, " ,")) {
		if (numbers)
			msgpack_pack_int64(pk, strtoll(s, NULL, 10));
		else
			proto_pack_cstr(pk, s);
	}
}

/* One broker's map: host, pid, started, heartbeat_age, live, keys. */
static void
fleet_pack_member(msgpack_packer *pk, const struct fleet *f,
    const struct fleet_member *m, bool self)
{
	int64_t	age = self ? 0 : fleet_age(f, m);

	msgpack_pack_map(pk, 9);
	proto_pack_kv_str(pk, "host", m->host);
	proto_pack_kv_int(pk, "pid", m->pid);
	rpc_pack_kv_time(pk, "started", m->started);
	proto_pack_kv_int(pk, "heartbeat_age_ms", age);
	proto_pack_kv_bool(pk, "live", self || fleet_age_live(age));
	proto_pack_kv_bool(pk, "self", self);
	proto_pack_cstr(pk, "key_versions");
	fleet_pack_list(pk, m->versions, true);
	proto_pack_cstr(pk, "key_kcvs");
	fleet_pack_list(pk, m->kcvs, false);
	proto_pack_kv_int(pk, "sealing_version", m->sealing);
}

/* This broker as a member. */
static void
fleet_self(const struct fleet *f, struct fleet_member *m)
{
	int	sv;

	memset(m, 0, sizeof(*m));
	snprintf(m->host, sizeof(m->host), "%s", f->host);
	m->pid = (int64_t)getpid();
	m->started = (int64_t)f->b->started;
	fleet_keys(f->b, m->versions, sizeof(m->versions), m->kcvs,
	    sizeof(m->kcvs), &sv);
	m->sealing = sv;
}

void
fleet_pack_brokers(msgpack_packer *pk, const struct broker *b, bool self,
    bool live_only)
{
	const struct fleet	*f = b->fleet;
	struct fleet_member	 me;
	size_t			 i, n = 0;

	if (f == NULL) {
		msgpack_pack_array(pk, 0);
		return;
	}
	for (i = 0; i < f->nmembers; i++)
		if (!live_only || fleet_live(b, i))
			n++;
	msgpack_pack_array(pk, n + (self ? 1 : 0));
	if (self) {
		fleet_self(f, &me);
		fleet_pack_member(pk, f, &me, true);
	}
	for (i = 0; i < f->nmembers; i++)
		if (!live_only || fleet_live(b, i))
			fleet_pack_member(pk, f, &f->members[i], false);
}

void
fleet_pack_database(msgpack_packer *pk, const struct broker *b,
    const struct pg_status *s)
{
	const struct fleet	*f = b->fleet;
	const char		*e = s->last_error;

	if (*e == '\0' && f != NULL && f->last_error[0] != '\0')
		e = f->last_error;
	msgpack_pack_map(pk, 5);
	proto_pack_kv_bool(pk, "connected", s->connected);
	proto_pack_kv_int(pk, "latency_us", (int64_t)s->last_rtt_us);
	proto_pack_kv_int(pk, "schema_version", f != NULL ?
	    f->schema_version : 0);
	proto_pack_kv_int(pk, "reconnects", (int64_t)s->reconnects);
	proto_pack_kv_str(pk, "last_error", *e != '\0' ? e : NULL);
}

int
fleet_lacking(const struct broker *b, const char *kcv, int sealing,
    char *buf, size_t sz)
{
	const struct fleet	*f = b->fleet;
	size_t			 i, len;
	int			 n = 0;

	buf[0] = '\0';
	for (i = 0; f != NULL && i < f->nmembers; i++) {
		if (!fleet_live(b, i) || (strstr(f->members[i].kcvs, kcv) !=
		    NULL && (sealing == 0 || f->members[i].sealing ==
		    sealing)))
			continue;
		len = strlen(buf);
		snprintf(buf + len, sz - len, "%s%s (pid %lld)", n > 0 ?
		    ", " : "", f->members[i].host,
		    (long long)f->members[i].pid);
		n++;
	}
	return n;
}

/*
 * Unit tests for daemon/fleet.c: the brokers table of a PostgreSQL store
 * (SPEC 12), against a real private cluster (pgserver.h) and a real loop.
 * The group makes a schema with pgschema.c's tables; each test gets the
 * brokers table emptied, a broker with the least fleet.c reads of it
 * (its loop, its start time and its keys: the key in use, the new key
 * of a rotation, the staged key), the loop's connection for fleet.c and
 * a second connection that plays the other brokers of the fleet.  Each
 * test ends by closing everything and checking that uv_loop_close()
 * returns 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>
#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "pg.h"
#include "pgschema.h"
#include "pgserver.h"
#include "seal.h"

#define T_SCHEMA	"cb_fleet_test"
#define K1		"fleet-test-key-one-0123456789abc"
#define K2		"fleet-test-key-two-0123456789abc"

struct fix {
	uv_loop_t	 loop;
	struct broker	 b;
	struct pgconn	 c;		/* the loop's connection, fleet.c's */
	struct pgconn	 peek;		/* the other brokers' session */
	char		 kcv1[SEAL_KCV_MAX];
	char		 kcv2[SEAL_KCV_MAX];
};

/* A fleet_refresh or fleet_leave answer. */
struct answer {
	int	 called;
	int	 rc;
};

static int
group_setup(void **state)
{
	(void)state;
	return pgserver_schema_migrated(T_SCHEMA);
}

static int
group_teardown(void **state)
{
	(void)state;
	pgserver_stop();
	return 0;
}

static struct seal_key *
mkkey(const char *s, uint32_t version)
{
	struct seal_key	*k;
	struct cb_error	 err;

	cb_error_clear(&err);
	k = seal_key_alloc();
	assert_non_null(k);
	if (seal_key_init(k, (const uint8_t *)s, strlen(s), version,
	    &err) != 0)
		fail_msg("key rejected: %s", err.msg);
	return k;
}

/* Each test: no brokers, key 1 in use, the connections. */
static int
setup(void **state)
{
	struct fix	*f;
	struct pgres	 r;
	struct cb_error	 err;

	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    uv_loop_init(&f->loop) != 0) {
		free(f);
		return -1;
	}
	*state = f;
	f->b.loop = &f->loop;
	f->b.started = time(NULL);
	f->b.key = mkkey(K1, 1);
	cb_error_clear(&err);
	assert_int_equal(seal_kcv(f->b.key, f->kcv1, &err), 0);
	f->b.key_staged = mkkey(K2, 2);
	assert_int_equal(seal_kcv(f->b.key_staged, f->kcv2, &err), 0);
	seal_key_free(f->b.key_staged);
	f->b.key_staged = NULL;
	pgserver_open(&f->loop, T_SCHEMA, &f->peek);
	pgserver_ok(&f->loop, f->peek.pg, "TRUNCATE brokers", &r);
	pgserver_open(&f->loop, T_SCHEMA, &f->c);
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	fleet_close(&f->b);
	pgserver_close(&f->loop, &f->c);
	pgserver_close(&f->loop, &f->peek);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	seal_key_free(f->b.key);
	seal_key_free(f->b.key_next);
	seal_key_free(f->b.key_staged);
	free(f);
	return 0;
}

static void
refreshed(struct broker *b, int rc, void *arg)
{
	struct answer	*a = arg;

	(void)b;
	a->called++;
	a->rc = rc;
}

/* fleet_refresh, and wait for its answer: its rc. */
static int
refresh(struct fix *f)
{
	struct answer	 a = { 0 };
	struct cb_error	 err;

	assert_int_equal(fleet_refresh(&f->b, refreshed, &a, &err), 0);
	assert_int_equal(a.called, 0);
	assert_true(pgserver_run_until(&f->loop, &a.called, 1, 30000));
	assert_int_equal(a.called, 1);
	return a.rc;
}

static void
open_fleet(struct fix *f)
{
	struct cb_error	 err;

	cb_error_clear(&err);
	assert_int_equal(fleet_open(&f->b, f->c.pg, &err), 0);
	assert_non_null(f->b.fleet);
}

/* Another broker's row, its heartbeat age seconds old. */
static void
other(struct fix *f, const char *host, int pid, int age, const char *vers,
    const char *kcvs, int sealing)
{
	struct pgres	 r;
	char		 sql[1024];

	snprintf(sql, sizeof(sql), "INSERT INTO brokers (host, pid, "
	    "started, heartbeat, key_versions, key_kcvs, sealing) VALUES "
	    "('%s', %d, now() - interval '1 hour', now() - interval '%d "
	    "seconds', '{%s}', '{%s}', %d)", host, pid, age, vers, kcvs,
	    sealing);
	pgserver_ok(&f->loop, f->peek.pg, sql, &r);
}

/* This broker's row as "host|pid|versions|kcvs|sealing", or "". */
static void
own_row(struct fix *f, char *out, size_t sz)
{
	struct pgres	 r;
	char		 sql[512];

	snprintf(sql, sizeof(sql), "SELECT host || '|' || pid || '|' || "
	    "array_to_string(key_versions, ',') || '|' || "
	    "array_to_string(key_kcvs, ',') || '|' || "
	    "coalesce(sealing::text, 'null') FROM brokers WHERE pid = %d",
	    (int)getpid());
	snprintf(out, sz, "%s", pgserver_ok(&f->loop, f->peek.pg, sql, &r));
	if (r.ntuples == 0)
		out[0] = '\0';
	assert_true(r.ntuples <= 1);
}

/* Packed output, unpacked. */
struct packed {
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 u;
};

static void
pack_init(struct packed *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&p->u);
}

static const msgpack_object *
pack_unpack(struct packed *p)
{
	size_t	off = 0;

	assert_int_equal(msgpack_unpack_next(&p->u, p->sb.data, p->sb.size,
	    &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, p->sb.size);
	return &p->u.data;
}

static void
pack_free(struct packed *p)
{
	msgpack_unpacked_destroy(&p->u);
	msgpack_sbuffer_destroy(&p->sb);
}

/* The value of key k in map o; fails when absent. */
static const msgpack_object *
get(const msgpack_object *o, const char *k)
{
	uint32_t	i;

	assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
	for (i = 0; i < o->via.map.size; i++) {
		const msgpack_object_kv *kv = &o->via.map.ptr[i];

		if (kv->key.type == MSGPACK_OBJECT_STR &&
		    kv->key.via.str.size == strlen(k) &&
		    memcmp(kv->key.via.str.ptr, k, strlen(k)) == 0)
			return &kv->val;
	}
	fail_msg("no %s in the map", k);
	return NULL;
}

static int64_t
get_int(const msgpack_object *o, const char *k)
{
	const msgpack_object	*v = get(o, k);

	if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
		return (int64_t)v->via.u64;
	assert_int_equal(v->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
	return v->via.i64;
}

static bool
get_bool(const msgpack_object *o, const char *k)
{
	const msgpack_object	*v = get(o, k);

	assert_int_equal(v->type, MSGPACK_OBJECT_BOOLEAN);
	return v->via.boolean;
}

/* The string value of k, "(nil)" for nil. */
static void
get_str(const msgpack_object *o, const char *k, char *out, size_t sz)
{
	const msgpack_object	*v = get(o, k);

	if (v->type == MSGPACK_OBJECT_NIL) {
		snprintf(out, sz, "(nil)");
		return;
	}
	assert_int_equal(v->type, MSGPACK_OBJECT_STR);
	snprintf(out, sz, "%.*s", (int)v->via.str.size, v->via.str.ptr);
}

/* An array of k as "a,b" (strings or integers). */
static void
get_list(const msgpack_object *o, const char *k, char *out, size_t sz)
{
	const msgpack_object	*v = get(o, k);
	size_t			 len;
	uint32_t		 i;

	assert_int_equal(v->type, MSGPACK_OBJECT_ARRAY);
	out[0] = '\0';
	for (i = 0; i < v->via.array.size; i++) {
		const msgpack_object *e = &v->via.array.ptr[i];

		len = strlen(out);
		if (e->type == MSGPACK_OBJECT_STR)
			snprintf(out + len, sz - len, "%s%.*s", i > 0 ? "," :
			    "", (int)e->via.str.size, e->via.str.ptr);
		else {
			assert_int_equal(e->type,
			    MSGPACK_OBJECT_POSITIVE_INTEGER);
			snprintf(out + len, sz - len, "%s%llu", i > 0 ? "," :
			    "", (unsigned long long)e->via.u64);
		}
	}
}

static void
test_fleet_heartbeat_writes_host_pid_keys_and_sealing(void **state)
{
	struct fix	*f = *state;
	struct seal_key	*next;
	struct pgres	 r;
	char		 host[256], want[1024], row[1024];

	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	host[sizeof(host) - 1] = '\0';
	open_fleet(f);
	/* Nothing is written before the first heartbeat. */
	own_row(f, row, sizeof(row));
	assert_string_equal(row, "");
	assert_int_equal(refresh(f), 0);
	own_row(f, row, sizeof(row));
	snprintf(want, sizeof(want), "%s|%d|1|%s|1", host, (int)getpid(),
	    f->kcv1);
	assert_string_equal(row, want);

	/*
	 * A rotation begun while serving: both keys held, but it says it
	 * seals with the key in use until its writer has answered a barrier
	 * (every write sealed with the old key committed), and this broker
	 * has no writer.
	 */
	f->b.key_next = next = mkkey(K2, 2);
	fleet_publish(&f->b);
	assert_int_equal(refresh(f), 0);
	own_row(f, row, sizeof(row));
	snprintf(want, sizeof(want), "%s|%d|1,2|%s,%s|1", host,
	    (int)getpid(), f->kcv1, f->kcv2);
	assert_string_equal(row, want);

	/* Started holding the new key: nothing was sealed with the old. */
	fleet_close(&f->b);
	pgserver_ok(&f->loop, f->peek.pg, "TRUNCATE brokers", &r);
	open_fleet(f);
	assert_int_equal(refresh(f), 0);
	own_row(f, row, sizeof(row));
	snprintf(want, sizeof(want), "%s|%d|1,2|%s,%s|2", host,
	    (int)getpid(), f->kcv1, f->kcv2);
	assert_string_equal(row, want);

	/* The staged key: its check value, not its version. */
	f->b.key_next = NULL;
	f->b.key_staged = next;
	assert_int_equal(refresh(f), 0);
	own_row(f, row, sizeof(row));
	snprintf(want, sizeof(want), "%s|%d|1|%s,%s|1", host, (int)getpid(),
	    f->kcv1, f->kcv2);
	assert_string_equal(row, want);
}

static void
slept(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

/* Run the loop for ms. */
static void
run_for(struct fix *f, unsigned ms)
{
	uv_timer_t	 t;
	int		 fired = 0;

	uv_timer_init(&f->loop, &t);
	t.data = &fired;
	uv_timer_start(&t, slept, ms, 0);
	assert_true(pgserver_run_until(&f->loop, &fired, 1, ms + 30000));
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void
test_fleet_heartbeat_renews_itself_on_its_timer(void **state)
{
	struct fix	*f = *state;
	struct pgres	 r;
	char		 sql[256];
	int		 i;

	open_fleet(f);
	assert_int_equal(refresh(f), 0);
	/* Make the row old, then wait for the timer's heartbeat. */
	snprintf(sql, sizeof(sql), "UPDATE brokers SET heartbeat = now() - "
	    "interval '1 minute' WHERE pid = %d", (int)getpid());
	pgserver_ok(&f->loop, f->peek.pg, sql, &r);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM brokers WHERE "
	    "pid = %d AND heartbeat > now() - interval '30 seconds'",
	    (int)getpid());
	for (i = 0; i < 150; i++) {
		if (strcmp(pgserver_ok(&f->loop, f->peek.pg, sql, &r),
		    "1") == 0)
			break;
		run_for(f, 200);
	}
	assert_string_equal(pgserver_ok(&f->loop, f->peek.pg, sql, &r), "1");
}

static void
test_fleet_other_broker_is_live_under_ten_seconds(void **state)
{
	struct fix	*f = *state;
	struct packed	 p;
	const msgpack_object *o, *m;
	char		 s[256];

	open_fleet(f);
	other(f, "peer-a", 101, 5, "1", f->kcv1, 1);
	other(f, "peer-b", 102, 30, "1", f->kcv1, 1);
	assert_int_equal(refresh(f), 0);
	/* Sorted by host: peer-a, then peer-b; not this broker. */
	assert_true(fleet_live(&f->b, 0));
	assert_false(fleet_live(&f->b, 1));
	assert_false(fleet_live(&f->b, 2));

	/* health: this broker first, then the others, dead or alive. */
	pack_init(&p);
	fleet_pack_brokers(&p.pk, &f->b, true, false);
	o = pack_unpack(&p);
	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.size, 3);
	m = &o->via.array.ptr[0];
	assert_true(get_bool(m, "self"));
	assert_true(get_bool(m, "live"));
	assert_int_equal(get_int(m, "pid"), getpid());
	assert_int_equal(get_int(m, "heartbeat_age_ms"), 0);
	m = &o->via.array.ptr[1];
	get_str(m, "host", s, sizeof(s));
	assert_string_equal(s, "peer-a");
	assert_int_equal(get_int(m, "pid"), 101);
	assert_false(get_bool(m, "self"));
	assert_true(get_bool(m, "live"));
	assert_in_range(get_int(m, "heartbeat_age_ms"), 5000, 9999);
	m = &o->via.array.ptr[2];
	get_str(m, "host", s, sizeof(s));
	assert_string_equal(s, "peer-b");
	assert_false(get_bool(m, "live"));
	assert_in_range(get_int(m, "heartbeat_age_ms"), 30000, 60000);
	pack_free(&p);

	/* key.status's list: the live ones only, without this broker. */
	pack_init(&p);
	fleet_pack_brokers(&p.pk, &f->b, false, true);
	o = pack_unpack(&p);
	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.size, 1);
	get_str(&o->via.array.ptr[0], "host", s, sizeof(s));
	assert_string_equal(s, "peer-a");
	pack_free(&p);
}

static void
test_fleet_pack_brokers_gives_every_field(void **state)
{
	struct fix	*f = *state;
	struct packed	 p;
	const msgpack_object *o, *m;
	char		 s[512], want[512], host[256];

	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	host[sizeof(host) - 1] = '\0';
	f->b.key_next = mkkey(K2, 2);
	f->b.started = 1700000000;
	open_fleet(f);
	other(f, "peer-a", 4242, 5, "1,2", f->kcv1, 2);
	assert_int_equal(refresh(f), 0);
	pack_init(&p);
	fleet_pack_brokers(&p.pk, &f->b, true, false);
	o = pack_unpack(&p);
	assert_int_equal(o->via.array.size, 2);
	m = &o->via.array.ptr[0];
	assert_int_equal(m->via.map.size, 9);
	get_str(m, "host", s, sizeof(s));
	assert_string_equal(s, host);
	get_str(m, "started", s, sizeof(s));
	assert_string_equal(s, "2023-11-14T22:13:20Z");
	get_list(m, "key_versions", s, sizeof(s));
	assert_string_equal(s, "1,2");
	get_list(m, "key_kcvs", s, sizeof(s));
	snprintf(want, sizeof(want), "%s,%s", f->kcv1, f->kcv2);
	assert_string_equal(s, want);
	assert_int_equal(get_int(m, "sealing_version"), 2);

	m = &o->via.array.ptr[1];
	assert_int_equal(m->via.map.size, 9);
	assert_int_equal(get_int(m, "pid"), 4242);
	get_str(m, "started", s, sizeof(s));
	assert_int_equal(strlen(s), strlen("2023-11-14T22:13:20Z"));
	get_list(m, "key_versions", s, sizeof(s));
	assert_string_equal(s, "1,2");
	get_list(m, "key_kcvs", s, sizeof(s));
	assert_string_equal(s, f->kcv1);
	assert_int_equal(get_int(m, "sealing_version"), 2);
	pack_free(&p);

	/* Before the first heartbeat: this broker alone. */
	fleet_close(&f->b);
	pack_init(&p);
	fleet_pack_brokers(&p.pk, &f->b, true, false);
	o = pack_unpack(&p);
	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.size, 0);
	pack_free(&p);
}

static void
test_fleet_lacking_names_live_brokers_without_the_key_or_sealing(
    void **state)
{
	struct fix	*f = *state;
	char		 kcvs[256], buf[512];

	snprintf(kcvs, sizeof(kcvs), "%s,%s", f->kcv1, f->kcv2);
	open_fleet(f);
	other(f, "alpha", 201, 5, "1,2", kcvs, 2);	/* ready */
	other(f, "beta", 202, 5, "1", f->kcv1, 1);	/* lacks the key */
	other(f, "delta", 204, 5, "1,2", kcvs, 1);	/* seals 1 */
	other(f, "gamma", 203, 30, "1", f->kcv1, 1);	/* dead */
	assert_int_equal(refresh(f), 0);

	assert_int_equal(fleet_lacking(&f->b, f->kcv2, 2, buf, sizeof(buf)),
	    2);
	assert_string_equal(buf, "beta (pid 202), delta (pid 204)");
	/* Sealing 0: the key alone. */
	assert_int_equal(fleet_lacking(&f->b, f->kcv2, 0, buf, sizeof(buf)),
	    1);
	assert_string_equal(buf, "beta (pid 202)");
	assert_int_equal(fleet_lacking(&f->b, f->kcv1, 1, buf, sizeof(buf)),
	    1);
	assert_string_equal(buf, "alpha (pid 201)");
	assert_int_equal(fleet_lacking(&f->b, f->kcv1, 0, buf, sizeof(buf)),
	    0);
	assert_string_equal(buf, "");
}

static struct answer leaving;

static void
left(struct broker *b)
{
	(void)b;
	leaving.called++;
}

static void
test_fleet_leave_removes_the_row(void **state)
{
	struct fix	*f = *state;
	struct pgres	 r;
	char		 row[1024];

	memset(&leaving, 0, sizeof(leaving));
	open_fleet(f);
	other(f, "peer-a", 101, 5, "1", f->kcv1, 1);
	assert_int_equal(refresh(f), 0);
	own_row(f, row, sizeof(row));
	assert_true(row[0] != '\0');
	assert_true(fleet_leave(&f->b, left));
	assert_int_equal(leaving.called, 0);
	assert_true(pgserver_run_until(&f->loop, &leaving.called, 1, 30000));
	assert_null(f->b.fleet);
	own_row(f, row, sizeof(row));
	assert_string_equal(row, "");
	/* Only its own row; closed, it has nobody to list. */
	assert_string_equal(pgserver_ok(&f->loop, f->peek.pg,
	    "SELECT host FROM brokers", &r), "peer-a");
	assert_int_equal(r.ntuples, 1);
	assert_int_equal(fleet_lacking(&f->b, "x", 0, row, sizeof(row)), 0);
	/* Closed: nothing more to do. */
	assert_false(fleet_leave(&f->b, left));
	assert_int_equal(leaving.called, 1);
}

static void
test_fleet_leave_before_any_heartbeat_closes_at_once(void **state)
{
	struct fix	*f = *state;
	char		 row[1024];

	memset(&leaving, 0, sizeof(leaving));
	open_fleet(f);
	assert_false(fleet_leave(&f->b, left));
	assert_null(f->b.fleet);
	run_for(f, 100);
	assert_int_equal(leaving.called, 0);
	own_row(f, row, sizeof(row));
	assert_string_equal(row, "");
}

static void
test_fleet_pack_database_gives_schema_and_heartbeat_error(void **state)
{
	struct fix	*f = *state;
	struct packed	 p;
	struct pg_status st;
	struct pgres	 r;
	const msgpack_object *o;
	char		 s[CB_ERRMSG_MAX];

	open_fleet(f);
	assert_int_equal(refresh(f), 0);
	pg_status(f->c.pg, &st);
	pack_init(&p);
	fleet_pack_database(&p.pk, &f->b, &st);
	o = pack_unpack(&p);
	assert_int_equal(o->via.map.size, 5);
	assert_true(get_bool(o, "connected"));
	assert_int_equal(get_int(o, "schema_version"), PGSCHEMA_VERSION);
	assert_int_equal(get_int(o, "reconnects"), 0);
	assert_int_equal(get_int(o, "latency_us"), (int64_t)st.last_rtt_us);
	get_str(o, "last_error", s, sizeof(s));
	assert_string_equal(s, "(nil)");
	pack_free(&p);

	/* A failing heartbeat: its error, until one succeeds again. */
	pgserver_ok(&f->loop, f->peek.pg, "ALTER TABLE brokers RENAME TO "
	    "brokers_away", &r);
	assert_int_not_equal(refresh(f), 0);
	pgserver_ok(&f->loop, f->peek.pg, "ALTER TABLE brokers_away RENAME "
	    "TO brokers", &r);
	pg_status(f->c.pg, &st);
	pack_init(&p);
	fleet_pack_database(&p.pk, &f->b, &st);
	o = pack_unpack(&p);
	get_str(o, "last_error", s, sizeof(s));
	assert_non_null(strstr(s, "brokers"));
	pack_free(&p);
	assert_int_equal(refresh(f), 0);
	pg_status(f->c.pg, &st);
	pack_init(&p);
	fleet_pack_database(&p.pk, &f->b, &st);
	o = pack_unpack(&p);
	get_str(o, "last_error", s, sizeof(s));
	assert_string_equal(s, "(nil)");
	pack_free(&p);

	/* Without a fleet: schema version 0. */
	fleet_close(&f->b);
	pack_init(&p);
	fleet_pack_database(&p.pk, &f->b, &st);
	o = pack_unpack(&p);
	assert_int_equal(get_int(o, "schema_version"), 0);
	pack_free(&p);
}

static void
test_fleet_close_with_a_heartbeat_out_answers_unavailable(void **state)
{
	struct fix	*f = *state;
	struct answer	 a = { 0 };
	struct cb_error	 err;
	char		 row[1024];

	open_fleet(f);
	assert_int_equal(fleet_refresh(&f->b, refreshed, &a, &err), 0);
	fleet_close(&f->b);
	assert_null(f->b.fleet);
	assert_int_equal(a.called, 1);
	assert_int_equal(a.rc, -CB_EUNAVAILABLE);
	/* The heartbeat out still lands; its answer goes to nobody. */
	assert_int_not_equal(fleet_refresh(&f->b, refreshed, &a, &err), 0);
	own_row(f, row, sizeof(row));
	assert_int_equal(a.called, 1);
}

#define T(name)	cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_fleet_heartbeat_writes_host_pid_keys_and_sealing),
		T(test_fleet_heartbeat_renews_itself_on_its_timer),
		T(test_fleet_other_broker_is_live_under_ten_seconds),
		T(test_fleet_pack_brokers_gives_every_field),
		T(test_fleet_lacking_names_live_brokers_without_the_key_or_sealing),
		T(test_fleet_leave_removes_the_row),
		T(test_fleet_leave_before_any_heartbeat_closes_at_once),
		T(test_fleet_pack_database_gives_schema_and_heartbeat_error),
		T(test_fleet_close_with_a_heartbeat_out_answers_unavailable),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

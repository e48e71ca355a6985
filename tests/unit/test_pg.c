/*
 * Unit tests for storage/pg.c: the asynchronous PostgreSQL connection on a
 * libuv loop, against a real private cluster.
 *
 * The group setup runs "tests/integration/pgtest.py serve" (pgserver.c),
 * which makes a throw-away cluster (initdb and pg_ctl as an unprivileged
 * user, its own socket directory, TCP on 127.0.0.1, a role with a
 * scram-sha-256 password) and then takes commands on a pipe: restart,
 * stop, start.  When
 * this program ends in any way the pipe closes and the cluster goes.
 * Each test runs in a fresh loop and ends by closing every connection and
 * checking that uv_loop_close() returns 0, i.e. that no handle leaked.
 */
#include <sys/types.h>

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <uv.h>

#include "cb_error.h"
#include "pg.h"
#include "pgserver.h"
#include "secbuf.h"

/* What a test's connection reported. */
struct fix {
	uv_loop_t	 loop;
	uv_timer_t	 tick;		/* wakes run_until() up */
	struct pg	*pg;
	int		 connected;	/* PG_EVENT_CONNECTED */
	int		 reconnected;	/* PG_EVENT_RECONNECTED */
	int		 down;		/* PG_EVENT_DOWN */
	char		 down_msg[CB_ERRMSG_MAX];
	int		 closed;	/* pg_close()'s done ran */
};

/* One query's answer. */
struct res {
	struct fix	*f;
	int		 done;
	int		 rc;
	int		 seq;		/* order of arrival */
	char		 msg[CB_ERRMSG_MAX];
	char		 val[128];	/* first column of the first row */
	char		 sqlstate[8];
	int		 ntuples;
};

static int	 arrivals;

static int
group_setup(void **state)
{
	return pgserver_start();
}

static int
group_teardown(void **state)
{
	pgserver_stop();
	return 0;
}

static void
tick_cb(uv_timer_t *t)
{
}

static int
setup(void **state)
{
	struct fix	*f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	if (uv_loop_init(&f->loop) != 0) {
		free(f);
		return -1;
	}
	uv_timer_init(&f->loop, &f->tick);
	f->tick.data = f;
	arrivals = 0;
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	free(*state);
	return 0;
}

static void
event_cb(void *arg, enum pg_event ev, const struct cb_error *err)
{
	struct fix	*f = arg;

	switch (ev) {
	case PG_EVENT_CONNECTED:
		f->connected++;
		break;
	case PG_EVENT_RECONNECTED:
		f->reconnected++;
		break;
	case PG_EVENT_DOWN:
		f->down++;
		snprintf(f->down_msg, sizeof(f->down_msg), "%s", err->msg);
		break;
	}
}

/* A second connection's: *arg counts its connections. */
static void
count_up_cb(void *arg, enum pg_event ev, const struct cb_error *err)
{
	int	*up = arg;

	(void)err;
	if (ev != PG_EVENT_DOWN)
		(*up)++;
}

static void
closed_cb(void *arg)
{
	int	*closed = arg;

	(*closed)++;
}

/* Run the loop until *flag >= want or ms pass; true when reached. */
static bool
run_until(struct fix *f, const int *flag, int want, unsigned ms)
{
	uint64_t	 end = uv_hrtime() / 1000000 + ms;

	uv_timer_start(&f->tick, tick_cb, 20, 20);
	while (*flag < want && uv_hrtime() / 1000000 < end)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->tick);
	return *flag >= want;
}

/* Run the loop for ms, whatever happens. */
static void
run_for(struct fix *f, unsigned ms)
{
	int	 never = 0;

	run_until(f, &never, 1, ms);
}

static const char *
conninfo(char *buf, size_t sz, bool tcp)
{
	snprintf(buf, sz, "host=%s port=%d user=%s dbname=%s",
	    tcp ? "127.0.0.1" : pgsrv.host, pgsrv.port, pgsrv.user,
	    pgsrv.dbname);
	return buf;
}

/* A connection for f with the given options (NULL: defaults). */
static struct pg *
open_conn(struct fix *f, bool tcp, const char *password, unsigned tmo,
    size_t max_pending, pg_event_fn ev, void *arg)
{
	struct pg_opts	 o;
	struct pg	*pg = NULL;
	struct cb_error	 err;
	char		 ci[PATH_MAX + 256];

	memset(&o, 0, sizeof(o));
	o.conninfo = conninfo(ci, sizeof(ci), tcp);
	o.password = password;
	o.query_timeout_ms = tmo;
	o.connect_timeout_ms = 10000;
	o.backoff_min_ms = 50;
	o.backoff_max_ms = 400;
	o.max_pending = max_pending;
	o.on_event = ev;
	o.arg = arg;
	cb_error_clear(&err);
	assert_int_equal(pg_open(&f->loop, &o, &pg, &err), 0);
	assert_non_null(pg);
	return pg;
}

/* f's own connection, up. */
static void
connect_fix(struct fix *f, bool tcp, unsigned tmo)
{
	f->pg = open_conn(f, tcp, pgsrv.password, tmo, 0, event_cb, f);
	assert_true(run_until(f, &f->connected, 1, 15000));
}

static void
result_cb(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	struct res	*r = arg;
	const char	*s;

	r->done++;
	r->rc = rc;
	r->seq = arrivals++;
	snprintf(r->msg, sizeof(r->msg), "%s", rc != 0 ? err->msg : "");
	if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
		r->ntuples = PQntuples(res);
		if (r->ntuples > 0 && PQnfields(res) > 0)
			snprintf(r->val, sizeof(r->val), "%s",
			    PQgetvalue(res, 0, 0));
	}
	if (res != NULL &&
	    (s = PQresultErrorField(res, PG_DIAG_SQLSTATE)) != NULL)
		snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", s);
}

/* Send sql (no parameters) into r; returns pg_query()'s code. */
static int
query(struct pg *pg, const char *sql, struct res *r)
{
	struct cb_error	 err;
	int		 rc;

	cb_error_clear(&err);
	if ((rc = pg_query(pg, sql, 0, NULL, NULL, NULL, result_cb, r,
	    &err)) != 0)
		snprintf(r->msg, sizeof(r->msg), "%s", err.msg);
	return rc;
}

/* Run sql to the end on f's connection; its first value into r. */
static void
query_ok(struct fix *f, struct pg *pg, const char *sql, struct res *r)
{
	memset(r, 0, sizeof(*r));
	assert_int_equal(query(pg, sql, r), 0);
	assert_true(run_until(f, &r->done, 1, 15000));
	if (r->rc != 0)
		fail_msg("%s: %s", sql, r->msg);
}

/* Close f's connections and check that the loop has nothing left. */
static void
finish(struct fix *f, struct pg *other)
{
	int	 closed = 0, want = 0;

	if (f->pg != NULL) {
		pg_close(f->pg, closed_cb, &closed);
		want++;
	}
	if (other != NULL) {
		pg_close(other, closed_cb, &closed);
		want++;
	}
	uv_close((uv_handle_t *)&f->tick, NULL);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(closed, want);
	assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void
test_pg_connects_with_password_over_socket_and_tcp(void **state)
{
	struct fix	*f = *state;
	struct pg	*tcp;
	struct pg_status st;
	struct res	 r;
	struct fix	 g;

	f->pg = open_conn(f, false, pgsrv.password, 0, 0, event_cb, f);
	/* Not connected yet: a query fails at once, no callback later. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(query(f->pg, "SELECT 1", &r), -CB_EUNAVAILABLE);
	assert_non_null(strstr(r.msg, "not connected to PostgreSQL"));
	assert_true(run_until(f, &f->connected, 1, 15000));
	assert_int_equal(r.done, 0);
	assert_int_equal(f->down, 0);

	query_ok(f, f->pg, "SELECT current_user || ' ' || "
	    "coalesce(inet_client_addr()::text, 'socket')", &r);
	assert_string_equal(r.val, "cbtest socket");
	pg_status(f->pg, &st);
	assert_true(st.connected);
	assert_true(st.server_version >= 140000);
	assert_true(st.last_rtt_us > 0);
	assert_int_equal(st.pending, 0);
	assert_string_equal(st.last_error, "");

	/* Over TCP, with its own event counters. */
	memset(&g, 0, sizeof(g));
	tcp = open_conn(f, true, pgsrv.password, 0, 0, event_cb, &g);
	assert_true(run_until(f, &g.connected, 1, 15000));
	query_ok(f, tcp, "SELECT host(inet_client_addr())", &r);
	assert_string_equal(r.val, "127.0.0.1");
	finish(f, tcp);
}

/* A connection to conninfo ci, with f's event counters. */
static struct pg *
open_ci(struct fix *f, const char *ci)
{
	struct pg_opts	 o;
	struct pg	*pg = NULL;
	struct cb_error	 err;

	memset(&o, 0, sizeof(o));
	o.conninfo = ci;
	o.password = pgsrv.password;
	o.connect_timeout_ms = 20000;
	o.on_event = event_cb;
	o.arg = f;
	assert_int_equal(pg_open(&f->loop, &o, &pg, &err), 0);
	return pg;
}

static void
test_pg_host_names_are_resolved_off_the_loop(void **state)
{
	struct fix	*f = *state;
	struct res	 r;
	char		 ci[PATH_MAX + 256];

	/*
	 * localhost may come first as ::1, where the server does not
	 * listen: every address is handed to libpq, which tries the next.
	 */
	snprintf(ci, sizeof(ci), "host=localhost port=%d user=%s dbname=%s",
	    pgsrv.port, pgsrv.user, pgsrv.dbname);
	f->pg = open_ci(f, ci);
	assert_true(run_until(f, &f->connected, 1, 30000));
	query_ok(f, f->pg, "SELECT host(inet_client_addr())", &r);
	assert_string_equal(r.val, "127.0.0.1");
	pg_close(f->pg, NULL, NULL);

	/* A name that does not resolve: our resolver says so, not libpq. */
	snprintf(ci, sizeof(ci), "host=cb-no-such-host.invalid port=%d "
	    "user=%s dbname=%s", pgsrv.port, pgsrv.user, pgsrv.dbname);
	f->pg = open_ci(f, ci);
	assert_true(run_until(f, &f->down, 1, 30000));
	if (strstr(f->down_msg, "cannot resolve \"cb-no-such-host.invalid\"")
	    == NULL && strstr(f->down_msg, "no answer within") == NULL)
		fail_msg("unexpected: %s", f->down_msg);
	/* Closed while a resolution may be running. */
	run_for(f, 120);
	finish(f, NULL);
}

static void
test_pg_bad_password_is_refused_without_quoting_it(void **state)
{
	struct fix	*f = *state;
	struct pg_status st;
	struct res	 r;
	char		 bad[64];
	int		 tcp;

	for (tcp = 0; tcp < 2; tcp++) {
		snprintf(bad, sizeof(bad), "wrong-%08x-pw", (unsigned)
		    (uv_hrtime() & 0xffffffff));
		memset(f->down_msg, 0, sizeof(f->down_msg));
		f->down = 0;
		f->pg = open_conn(f, tcp, bad, 0, 0, event_cb, f);
		assert_true(run_until(f, &f->down, 1, 15000));
		assert_int_equal(f->connected, 0);
		assert_non_null(strstr(f->down_msg,
		    "password authentication failed"));
		assert_null(strstr(f->down_msg, bad));
		assert_null(strchr(f->down_msg, '\n'));
		pg_status(f->pg, &st);
		assert_false(st.connected);
		assert_string_equal(st.last_error, f->down_msg);
		/* Queries fail at once, naming the cause. */
		memset(&r, 0, sizeof(r));
		assert_int_equal(query(f->pg, "SELECT 1", &r),
		    -CB_EUNAVAILABLE);
		assert_non_null(strstr(r.msg, "password authentication"));
		assert_null(strstr(r.msg, bad));
		/* Retries do not report DOWN again. */
		run_for(f, 300);
		assert_int_equal(f->down, 1);
		pg_close(f->pg, NULL, NULL);
		f->pg = NULL;
	}
	finish(f, NULL);
}

static void
test_pg_conninfo_with_password_or_malformed_is_refused(void **state)
{
	struct fix	*f = *state;
	struct pg_opts	 o;
	struct pg	*pg;
	struct cb_error	 err;
	size_t		 i;
	const char	*bad[] = {
		"host=/tmp password=hunter2-xyz",
		"postgresql://cbtest:hunter2-xyz@127.0.0.1/cbtest",
		"host=/tmp password='hunter2-xyz",
		"postgresql://cbtest:hunter2-xyz@127.0.0.1/cbtest?bogus=1",
	};

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&o, 0, sizeof(o));
		o.conninfo = bad[i];
		cb_error_clear(&err);
		pg = (struct pg *)&o;
		assert_int_equal(pg_open(&f->loop, &o, &pg, &err),
		    -CB_EBADREQ);
		assert_null(pg);
		assert_null(strstr(err.msg, "hunter2"));
		assert_non_null(strstr(err.msg,
		    "PostgreSQL connection string"));
		if (i >= 2)
			assert_non_null(strstr(err.msg, "malformed"));
	}
	/* Malformed, no password anywhere: libpq's reason is given. */
	memset(&o, 0, sizeof(o));
	o.conninfo = "host=/tmp port";
	assert_int_equal(pg_open(&f->loop, &o, &pg, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "malformed PostgreSQL connection "
	    "string: missing \"=\" after \"port\""));
	finish(f, NULL);
}

static void
test_pg_pipelined_queries_come_back_in_order(void **state)
{
	struct fix	*f = *state;
	struct res	*r;
	struct cb_error	 err;
	char		 num[16];
	const char	*vals[1];
	int		 i, n = 500, done = 0;

	connect_fix(f, false, 0);
	assert_non_null(r = calloc((size_t)n, sizeof(*r)));
	for (i = 0; i < n; i++) {
		snprintf(num, sizeof(num), "%d", i);
		vals[0] = num;
		/* Parameters are copied: num is reused at once. */
		assert_int_equal(pg_query(f->pg, "SELECT $1::int * 2", 1,
		    vals, NULL, NULL, result_cb, &r[i], &err), 0);
	}
	/* Nothing is answered from inside pg_query(). */
	for (i = 0; i < n; i++)
		assert_int_equal(r[i].done, 0);
	while (done < n) {
		assert_true(run_until(f, &r[n - 1].done, 1, 15000));
		for (done = 0, i = 0; i < n; i++)
			done += r[i].done;
	}
	for (i = 0; i < n; i++) {
		assert_int_equal(r[i].done, 1);
		assert_int_equal(r[i].rc, 0);
		assert_int_equal(r[i].seq, i);
		assert_int_equal(atoi(r[i].val), 2 * i);
	}
	free(r);
	finish(f, NULL);
}

static void
test_pg_large_queries_are_sent_in_parts_and_in_order(void **state)
{
	struct fix	*f = *state;
	struct res	 r[8];
	struct cb_error	 err;
	const char	*vals[1];
	char		*big, want[32];
	size_t		 len;
	int		 i;

	/*
	 * 32 MiB, then 7 times 1 MiB, of parameters: far more than the
	 * socket takes at once, so PQflush() leaves output behind, and the
	 * server says nothing until it has the whole first query: only the
	 * writable side of the poll can move it.
	 */
	connect_fix(f, true, 0);
	assert_non_null(big = malloc((32 << 20) + 1));
	memset(r, 0, sizeof(r));
	for (i = 0; i < 8; i++) {
		len = i == 0 ? 32 << 20 : (1 << 20) - (size_t)i;
		memset(big, 'a' + i, len);
		big[len] = '\0';
		vals[0] = big;
		assert_int_equal(pg_query(f->pg,
		    "SELECT length($1) || ':' || substr($1, 1, 1)", 1, vals,
		    NULL, NULL, result_cb, &r[i], &err), 0);
	}
	free(big);
	assert_true(run_until(f, &r[7].done, 1, 15000));
	for (i = 0; i < 8; i++) {
		len = i == 0 ? 32 << 20 : (1 << 20) - (size_t)i;
		assert_int_equal(r[i].rc, 0);
		assert_int_equal(r[i].seq, i);
		snprintf(want, sizeof(want), "%zu:%c", len, 'a' + i);
		assert_string_equal(r[i].val, want);
	}
	finish(f, NULL);
}

static void
test_pg_queue_is_bounded(void **state)
{
	struct fix	*f = *state;
	struct res	 r[5];
	int		 i;

	memset(r, 0, sizeof(r));
	f->pg = open_conn(f, false, pgsrv.password, 0, 4, event_cb, f);
	assert_true(run_until(f, &f->connected, 1, 15000));
	for (i = 0; i < 4; i++)
		assert_int_equal(query(f->pg, "SELECT 1", &r[i]), 0);
	assert_int_equal(query(f->pg, "SELECT 1", &r[4]), -CB_EUNAVAILABLE);
	assert_string_equal(r[4].msg, "too many PostgreSQL queries waiting");
	assert_true(run_until(f, &r[3].done, 1, 15000));
	for (i = 0; i < 4; i++)
		assert_int_equal(r[i].rc, 0);
	assert_int_equal(r[4].done, 0);
	/* Room again. */
	assert_int_equal(query(f->pg, "SELECT 1", &r[4]), 0);
	assert_true(run_until(f, &r[4].done, 1, 15000));
	finish(f, NULL);
}

/* The batch's callback: check from another session that it committed. */
struct batch_check {
	struct res	 res;
	struct pg	*other;
	struct res	 seen;		/* count(*) seen by the other session */
	int		 sent;
};

static void
batch_cb(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	struct batch_check	*b = arg;
	struct cb_error		 e;

	result_cb(&b->res, rc, res, err);
	b->sent = pg_query(b->other, "SELECT count(*) FROM batch_t", 0, NULL,
	    NULL, NULL, result_cb, &b->seen, &e) == 0;
}

static void
test_pg_batch_commits_all_or_nothing(void **state)
{
	struct fix		*f = *state;
	struct fix		 g;
	struct batch_check	 b;
	struct res		 r;
	struct cb_error		 err;
	const char		*v1[] = { "1" }, *v2[] = { "2" };
	const char		*vx[] = { "not a number" };
	struct pg_stmt		 ok[] = {
		{ "INSERT INTO batch_t VALUES ($1::int)", 1, v1, NULL, NULL },
		{ "INSERT INTO batch_t VALUES ($1::int)", 1, v2, NULL, NULL },
		{ "SELECT count(*) FROM batch_t", 0, NULL, NULL, NULL },
	};
	struct pg_stmt		 bad[] = {
		{ "INSERT INTO batch_t VALUES (3)", 0, NULL, NULL, NULL },
		{ "INSERT INTO batch_t VALUES ($1::int)", 1, vx, NULL, NULL },
		{ "INSERT INTO batch_t VALUES (4)", 0, NULL, NULL, NULL },
	};

	connect_fix(f, false, 0);
	memset(&g, 0, sizeof(g));
	memset(&b, 0, sizeof(b));
	b.other = open_conn(f, false, pgsrv.password, 0, 0, event_cb, &g);
	assert_true(run_until(f, &g.connected, 1, 15000));
	query_ok(f, f->pg, "DROP TABLE IF EXISTS batch_t", &r);
	query_ok(f, f->pg, "CREATE TABLE batch_t (v int)", &r);

	assert_int_equal(pg_batch(f->pg, ok, 3, batch_cb, &b, &err), 0);
	assert_true(run_until(f, &b.seen.done, 1, 15000));
	assert_int_equal(b.res.rc, 0);
	assert_string_equal(b.res.val, "2");	/* the last statement's */
	/* Acknowledged after COMMIT: another session already sees both. */
	assert_true(b.sent);
	assert_int_equal(b.seen.rc, 0);
	assert_string_equal(b.seen.val, "2");

	/* The second statement fails: nothing of the batch stays. */
	memset(&b.res, 0, sizeof(b.res));
	memset(&b.seen, 0, sizeof(b.seen));
	assert_int_equal(pg_batch(f->pg, bad, 3, batch_cb, &b, &err), 0);
	assert_true(run_until(f, &b.seen.done, 1, 15000));
	assert_int_equal(b.res.rc, -CB_EINTERNAL);
	assert_string_equal(b.res.sqlstate, "22P02");
	assert_non_null(strstr(b.res.msg, "invalid input syntax"));
	assert_string_equal(b.seen.val, "2");
	/* The session is not left in an aborted transaction. */
	query_ok(f, f->pg, "SELECT count(*) FROM batch_t", &r);
	assert_string_equal(r.val, "2");
	/* Bad batches are refused before anything is sent. */
	assert_int_equal(pg_batch(f->pg, ok, 0, batch_cb, &b, &err),
	    -CB_EINTERNAL);
	finish(f, b.other);
}

static void
test_pg_syntax_error_fails_only_its_query(void **state)
{
	struct fix	*f = *state;
	struct res	 r[3];
	struct pg_status st;

	connect_fix(f, false, 0);
	memset(r, 0, sizeof(r));
	assert_int_equal(query(f->pg, "SELECT 'before'", &r[0]), 0);
	assert_int_equal(query(f->pg, "SELEC 1", &r[1]), 0);
	assert_int_equal(query(f->pg, "SELECT 'after'", &r[2]), 0);
	assert_true(run_until(f, &r[2].done, 1, 15000));
	assert_int_equal(r[0].rc, 0);
	assert_string_equal(r[0].val, "before");
	assert_int_equal(r[1].rc, -CB_EINTERNAL);
	assert_string_equal(r[1].sqlstate, "42601");
	assert_non_null(strstr(r[1].msg, "syntax error"));
	assert_null(strchr(r[1].msg, '\n'));
	assert_int_equal(r[2].rc, 0);
	assert_string_equal(r[2].val, "after");
	pg_status(f->pg, &st);
	assert_true(st.connected);
	assert_int_equal(st.reconnects, 0);
	assert_int_equal(f->down, 0);
	finish(f, NULL);
}

static void
test_pg_query_timeout_gives_unavailable_and_recovers(void **state)
{
	struct fix	*f = *state;
	struct res	 r[2], after;
	uint64_t	 t0, ms;

	connect_fix(f, false, 300);
	memset(r, 0, sizeof(r));
	t0 = uv_hrtime();
	assert_int_equal(query(f->pg, "SELECT pg_sleep(5)", &r[0]), 0);
	assert_int_equal(query(f->pg, "SELECT 1", &r[1]), 0);
	assert_true(run_until(f, &r[1].done, 1, 15000));
	ms = (uv_hrtime() - t0) / 1000000;
	assert_int_equal(r[0].rc, -CB_EUNAVAILABLE);
	assert_string_equal(r[0].msg,
	    "PostgreSQL did not answer within 300 ms");
	assert_int_equal(r[1].rc, -CB_EUNAVAILABLE);
	assert_non_null(strstr(r[1].msg, "timed out"));
	/* Not after the 5 s sleep: a wide bound, not a speed claim. */
	assert_true(ms < 4000);
	/* Reconnects by itself, and the next query works. */
	assert_true(run_until(f, &f->reconnected, 1, 15000));
	query_ok(f, f->pg, "SELECT 'back'", &after);
	assert_string_equal(after.val, "back");
	finish(f, NULL);
}

static void
test_pg_session_options_keep_the_conninfos_own(void **state)
{
	struct cb_error	 err;
	char		*o = NULL;

	(void)state;
	assert_int_equal(pg_session_options("host=/tmp dbname=x", 2000, &o,
	    &err), 0);
	assert_string_equal(o, "-c statement_timeout=2000");
	free(o);
	assert_int_equal(pg_session_options("host=/tmp "
	    "options=-csearch_path=s1", 300, &o, &err), 0);
	assert_string_equal(o, "-csearch_path=s1 -c statement_timeout=300");
	free(o);
	assert_int_equal(pg_session_options("postgresql:///x?options="
	    "-cwork_mem%3D8MB", 1, &o, &err), 0);
	assert_string_equal(o, "-cwork_mem=8MB -c statement_timeout=1");
	free(o);
	assert_int_equal(pg_session_options("host='", 1, &o, &err),
	    -CB_EBADREQ);
	assert_null(o);
}

/*
 * With statement_timeout, the server ends the statement the broker gave
 * up on: a slow write is not committed after its caller was told it
 * failed.
 */
static void
test_pg_statement_timeout_ends_a_write_given_up_on(void **state)
{
	struct fix	*f = *state;
	struct pg_opts	 o;
	struct pg	*slow = NULL;
	struct cb_error	 err;
	struct res	 r, show, count;
	char		 ci[PATH_MAX + 256];
	int		 up = 0;

	connect_fix(f, false, 10000);
	query_ok(f, f->pg, "DROP TABLE IF EXISTS st_probe", &r);
	query_ok(f, f->pg, "CREATE TABLE st_probe (x int)", &r);
	memset(&o, 0, sizeof(o));
	o.conninfo = conninfo(ci, sizeof(ci), false);
	o.password = pgsrv.password;
	o.query_timeout_ms = 300;
	o.connect_timeout_ms = 10000;
	o.statement_timeout = true;
	o.on_event = count_up_cb;
	o.arg = &up;
	assert_int_equal(pg_open(&f->loop, &o, &slow, &err), 0);
	assert_true(run_until(f, &up, 1, 15000));
	query_ok(f, slow, "SHOW statement_timeout", &show);
	assert_string_equal(show.val, "300ms");
	memset(&r, 0, sizeof(r));
	assert_int_equal(query(slow, "INSERT INTO st_probe SELECT 1 FROM "
	    "pg_sleep(1.5)", &r), 0);
	assert_true(run_until(f, &r.done, 1, 15000));
	/*
	 * Whichever gives up first, the client's deadline or the server's
	 * statement_timeout (57014), the caller is told to try again.
	 */
	assert_int_equal(r.rc, -CB_EUNAVAILABLE);
	/* Past the sleep: the row would be there had the write gone on. */
	run_for(f, 2500);
	query_ok(f, f->pg, "SELECT count(*) FROM st_probe", &count);
	assert_string_equal(count.val, "0");
	/* The server's own timeout, first: unavailable as well. */
	query_ok(f, f->pg, "SET statement_timeout = 50", &r);
	memset(&r, 0, sizeof(r));
	assert_int_equal(query(f->pg, "SELECT pg_sleep(2)", &r), 0);
	assert_true(run_until(f, &r.done, 1, 15000));
	assert_int_equal(r.rc, -CB_EUNAVAILABLE);
	assert_non_null(strstr(r.msg, "(57014)"));
	finish(f, slow);
}

static void
test_pg_server_restart_fails_pending_and_reconnects(void **state)
{
	struct fix	*f = *state;
	struct res	 r[3], after;
	struct pg_status st;
	int		 i;

	connect_fix(f, false, 30000);
	memset(r, 0, sizeof(r));
	for (i = 0; i < 3; i++)
		assert_int_equal(query(f->pg, "SELECT pg_sleep(20)", &r[i]),
		    0);
	run_for(f, 200);		/* sent, running */
	assert_true(pgserver_ctl("restart"));
	assert_true(run_until(f, &r[2].done, 1, 15000));
	for (i = 0; i < 3; i++) {
		assert_int_equal(r[i].rc, -CB_EUNAVAILABLE);
		assert_true(r[i].msg[0] != '\0');
		assert_null(strchr(r[i].msg, '\n'));
	}
	assert_int_equal(f->down, 1);
	assert_true(run_until(f, &f->reconnected, 1, 15000));
	query_ok(f, f->pg, "SELECT 'back'", &after);
	assert_string_equal(after.val, "back");
	pg_status(f->pg, &st);
	assert_true(st.connected);
	assert_int_equal(st.reconnects, 1);
	assert_true(st.last_error[0] != '\0');
	finish(f, NULL);
}

static void
test_pg_server_stopped_fails_at_once_then_comes_back(void **state)
{
	struct fix	*f = *state;
	struct res	 r, after;
	struct pg_status st;

	connect_fix(f, true, 0);
	assert_true(pgserver_ctl("stop"));
	assert_true(run_until(f, &f->down, 1, 15000));
	/* Still down after a few failed attempts: refused at once. */
	run_for(f, 300);
	memset(&r, 0, sizeof(r));
	assert_int_equal(query(f->pg, "SELECT 1", &r), -CB_EUNAVAILABLE);
	assert_non_null(strstr(r.msg, "not connected to PostgreSQL: "));
	pg_status(f->pg, &st);
	assert_false(st.connected);
	assert_int_equal(f->down, 1);
	assert_true(pgserver_ctl("start"));
	assert_true(run_until(f, &f->reconnected, 1, 15000));
	query_ok(f, f->pg, "SELECT 'back'", &after);
	assert_string_equal(after.val, "back");
	assert_int_equal(r.done, 0);
	finish(f, NULL);
}

/* Notifications received. */
struct notes {
	int	 n;
	char	 last[64];
	char	 chan[64];
};

static void
notify_cb(void *arg, const char *channel, const char *payload)
{
	struct notes	*nt = arg;

	nt->n++;
	snprintf(nt->last, sizeof(nt->last), "%s", payload);
	snprintf(nt->chan, sizeof(nt->chan), "%s", channel);
}

static void
test_pg_listen_notify_and_relisten_after_reconnect(void **state)
{
	struct fix	*f = *state;
	struct fix	 g;
	struct pg	*sender;
	struct notes	 nt, other;
	struct res	 r;
	struct cb_error	 err;

	memset(&nt, 0, sizeof(nt));
	memset(&other, 0, sizeof(other));
	memset(&g, 0, sizeof(g));
	f->pg = open_conn(f, false, pgsrv.password, 0, 0, event_cb, f);
	/* Before the connection is up: LISTEN goes out once it is. */
	assert_int_equal(pg_listen(f->pg, "cb_test_chan", notify_cb, &nt,
	    &err), 0);
	assert_int_equal(pg_listen(f->pg, "Bad-Name", notify_cb, &nt, &err),
	    -CB_EBADREQ);
	assert_int_equal(pg_listen(f->pg, "1abc", notify_cb, &nt, &err),
	    -CB_EBADREQ);
	assert_true(run_until(f, &f->connected, 1, 15000));
	/* Added while connected: LISTEN goes out now. */
	assert_int_equal(pg_listen(f->pg, "cb_other", notify_cb, &other,
	    &err), 0);
	sender = open_conn(f, true, pgsrv.password, 0, 0, event_cb, &g);
	assert_true(run_until(f, &g.connected, 1, 15000));

	query_ok(f, f->pg, "SELECT 1", &r);	/* both LISTENs are done */
	query_ok(f, sender, "SELECT pg_notify('cb_test_chan', 'one')", &r);
	query_ok(f, sender, "SELECT pg_notify('cb_unheard', 'x')", &r);
	query_ok(f, sender, "SELECT pg_notify('cb_other', 'o')", &r);
	assert_true(run_until(f, &nt.n, 1, 15000));
	assert_true(run_until(f, &other.n, 1, 15000));
	assert_string_equal(nt.last, "one");
	assert_string_equal(nt.chan, "cb_test_chan");
	assert_string_equal(other.last, "o");

	/* Restart: both reconnect; LISTEN is back without our help. */
	assert_true(pgserver_ctl("restart"));
	assert_true(run_until(f, &f->reconnected, 1, 15000));
	assert_int_equal(f->down, 1);
	assert_true(run_until(f, &g.reconnected, 1, 15000));
	query_ok(f, f->pg, "SELECT 1", &r);
	query_ok(f, sender, "SELECT pg_notify('cb_test_chan', 'two')", &r);
	query_ok(f, sender, "SELECT pg_notify('cb_other', '')", &r);
	assert_true(run_until(f, &nt.n, 2, 15000));
	assert_true(run_until(f, &other.n, 2, 15000));
	assert_string_equal(nt.last, "two");
	assert_string_equal(other.last, "");
	assert_int_equal(nt.n, 2);
	finish(f, sender);
}

/* An answer that notes how many notifications had come before it. */
struct seen {
	struct res	 res;
	struct notes	*nt;
	int		 before;
};

static void
seen_cb(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	struct seen	*s = arg;

	s->before = s->nt->n;
	result_cb(&s->res, rc, res, err);
}

static void
test_pg_own_notification_is_delivered_before_the_answer(void **state)
{
	struct fix	*f = *state;
	struct notes	 nt;
	struct seen	 s;
	struct res	 r;
	struct cb_error	 err;

	memset(&nt, 0, sizeof(nt));
	memset(&s, 0, sizeof(s));
	s.nt = &nt;
	connect_fix(f, false, 0);
	assert_int_equal(pg_listen(f->pg, "cb_own", notify_cb, &nt, &err), 0);
	query_ok(f, f->pg, "SELECT 1", &r);	/* the LISTEN is done */
	/*
	 * The transaction's own NOTIFY reaches its session before the
	 * answer: the answer's callback finds it delivered.
	 */
	assert_int_equal(pg_query(f->pg, "SELECT pg_notify('cb_own', 'mine')",
	    0, NULL, NULL, NULL, seen_cb, &s, &err), 0);
	assert_true(run_until(f, &s.res.done, 1, 15000));
	assert_int_equal(s.res.rc, 0);
	assert_int_equal(s.before, 1);
	assert_string_equal(nt.last, "mine");
	finish(f, NULL);
}

/* A query callback that closes the connection it came from. */
struct closer {
	struct res	 res;
	struct pg	*pg;
	int		*closed;
	struct res	 late;		/* sent from the callback */
	int		 late_rc;
};

static void
closer_cb(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	struct closer	*c = arg;
	struct cb_error	 e;

	result_cb(&c->res, rc, res, err);
	pg_close(c->pg, closed_cb, c->closed);
	c->late_rc = pg_query(c->pg, "SELECT 1", 0, NULL, NULL, NULL,
	    result_cb, &c->late, &e);
}

static void
test_pg_close_with_queries_pending(void **state)
{
	struct fix	*f = *state;
	struct res	 r[3];
	struct closer	 c;
	int		 i, closed = 0;

	connect_fix(f, false, 0);
	memset(r, 0, sizeof(r));
	for (i = 0; i < 3; i++)
		assert_int_equal(query(f->pg, "SELECT pg_sleep(5)", &r[i]),
		    0);
	run_for(f, 100);
	pg_close(f->pg, closed_cb, &closed);
	f->pg = NULL;
	/* Answered from pg_close() itself, in order. */
	for (i = 0; i < 3; i++) {
		assert_int_equal(r[i].done, 1);
		assert_int_equal(r[i].rc, -CB_EUNAVAILABLE);
		assert_string_equal(r[i].msg,
		    "the PostgreSQL connection is closed");
		assert_int_equal(r[i].seq, i);
	}
	assert_int_equal(closed, 0);		/* from the loop */
	assert_true(run_until(f, &closed, 1, 5000));

	/* Closed while still connecting. */
	f->pg = open_conn(f, false, pgsrv.password, 0, 0, event_cb, f);
	run_for(f, 1);
	pg_close(f->pg, closed_cb, &closed);
	f->pg = NULL;
	assert_true(run_until(f, &closed, 2, 5000));

	/* Closed from a query's callback, with another query behind it. */
	memset(&c, 0, sizeof(c));
	f->connected = 0;
	connect_fix(f, false, 0);
	c.pg = f->pg;
	c.closed = &closed;
	memset(r, 0, sizeof(r));
	assert_int_equal(pg_query(f->pg, "SELECT 1", 0, NULL, NULL, NULL,
	    closer_cb, &c, NULL), 0);
	assert_int_equal(query(f->pg, "SELECT pg_sleep(5)", &r[0]), 0);
	f->pg = NULL;
	assert_true(run_until(f, &closed, 3, 5000));
	assert_int_equal(c.res.rc, 0);
	assert_int_equal(c.late_rc, -CB_EUNAVAILABLE);
	assert_int_equal(c.late.done, 0);
	assert_int_equal(r[0].done, 1);
	assert_int_equal(r[0].rc, -CB_EUNAVAILABLE);
	finish(f, NULL);
}

/* The ticker of the no-blocking test. */
struct ticker {
	uint64_t	 last_ns;
	uint64_t	 max_gap_ns;
	int		 n;
};

static void
ticker_cb(uv_timer_t *t)
{
	struct ticker	*k = t->data;
	uint64_t	 now = uv_hrtime();

	if (k->last_ns != 0 && now - k->last_ns > k->max_gap_ns)
		k->max_gap_ns = now - k->last_ns;
	k->last_ns = now;
	k->n++;
}

static void
test_pg_loop_never_blocks(void **state)
{
	struct fix	*f = *state;
	struct ticker	 k;
	uv_timer_t	 t;
	struct res	 r;

	memset(&k, 0, sizeof(k));
	uv_timer_init(&f->loop, &t);
	t.data = &k;
	uv_timer_start(&t, ticker_cb, 10, 10);
	/* Connecting does not block either. */
	connect_fix(f, true, 10000);
	memset(&r, 0, sizeof(r));
	assert_int_equal(query(f->pg, "SELECT pg_sleep(2)", &r), 0);
	assert_true(run_until(f, &r.done, 1, 15000));
	assert_int_equal(r.rc, 0);
	uv_timer_stop(&t);
	uv_close((uv_handle_t *)&t, NULL);
	/* A wide bound: the loop ran all along, it did not wait 2 s. */
	assert_true(k.n > 20);
	if (k.max_gap_ns >= 500 * 1000000ULL)
		fail_msg("the loop stalled for %llu ms",
		    (unsigned long long)(k.max_gap_ns / 1000000));
	finish(f, NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_pg_connects_with_password_over_socket_and_tcp, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_host_names_are_resolved_off_the_loop, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_bad_password_is_refused_without_quoting_it, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_conninfo_with_password_or_malformed_is_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_pipelined_queries_come_back_in_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_large_queries_are_sent_in_parts_and_in_order,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_queue_is_bounded,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_batch_commits_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_syntax_error_fails_only_its_query, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_query_timeout_gives_unavailable_and_recovers, setup,
		    teardown),
		cmocka_unit_test(
		    test_pg_session_options_keep_the_conninfos_own),
		cmocka_unit_test_setup_teardown(
		    test_pg_statement_timeout_ends_a_write_given_up_on, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_server_restart_fails_pending_and_reconnects, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_server_stopped_fails_at_once_then_comes_back, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_listen_notify_and_relisten_after_reconnect, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_own_notification_is_delivered_before_the_answer,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pg_close_with_queries_pending, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pg_loop_never_blocks,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

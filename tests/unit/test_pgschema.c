/*
 * Unit tests for storage/pgschema.c: the broker's tables on PostgreSQL
 * and their migrations, against a real private cluster (pgserver.h).
 * Each test works in a schema of its own, on connections whose
 * search_path names it, and ends by closing every connection and checking
 * that uv_loop_close() returns 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <uv.h>

#include "cb_error.h"
#include "pg.h"
#include "pgschema.h"
#include "pgserver.h"

#define T_SCHEMA	"cb_schema_test"

struct fix {
	uv_loop_t	 loop;
	struct pgconn	 a;
	struct pgconn	 b;
};

/* One pgschema_apply()'s answer. */
struct applied {
	int	 done;
	int	 rc;
	int	 version;
	char	 msg[CB_ERRMSG_MAX];
};

/*
 * The cluster only: each test makes its schema (setup) and applies the
 * migrations it checks itself, so not pgserver_schema_migrated().
 */
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

static int
setup(void **state)
{
	struct fix	*f;

	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    uv_loop_init(&f->loop) != 0) {
		free(f);
		return -1;
	}
	*state = f;
	pgserver_open(&f->loop, T_SCHEMA, &f->a);
	pgserver_schema(&f->loop, f->a.pg, T_SCHEMA);
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	pgserver_close(&f->loop, &f->a);
	pgserver_close(&f->loop, &f->b);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

static void
applied_cb(void *arg, int rc, int version, const struct cb_error *err)
{
	struct applied	*a = arg;

	a->done++;
	a->rc = rc;
	a->version = version;
	snprintf(a->msg, sizeof(a->msg), "%s", rc != 0 ? err->msg : "");
}

/* Start applying list (NULL: the broker's own) on pg into a. */
static void
start(struct pg *pg, const struct pgschema_migration *list, int n,
    struct applied *a)
{
	struct cb_error	 err;
	int		 rc;

	memset(a, 0, sizeof(*a));
	cb_error_clear(&err);
	if (list == NULL)
		rc = pgschema_apply(pg, applied_cb, a, &err);
	else
		rc = pgschema_apply_list(pg, list, n, applied_cb, a, &err);
	if (rc != 0)
		fail_msg("pgschema_apply: %s", err.msg);
	/* Never answered from inside the call. */
	assert_int_equal(a->done, 0);
}

/* Apply and wait; the answer's rc. */
static int
apply(struct fix *f, struct pg *pg, const struct pgschema_migration *list,
    int n, struct applied *a)
{
	start(pg, list, n, a);
	assert_true(pgserver_run_until(&f->loop, &a->done, 1, 30000));
	assert_int_equal(a->done, 1);
	return a->rc;
}

/* What the schema holds: its tables and the versions applied. */
static void
snapshot(struct fix *f, char *buf, size_t sz)
{
	struct pgres	 r;
	char		 tables[256];

	snprintf(tables, sizeof(tables), "%s", pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(tablename, ',' ORDER BY tablename) "
	    "FROM pg_tables WHERE schemaname = '" T_SCHEMA "'", &r));
	snprintf(buf, sz, "%s / %s", tables, pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(version || '@' || applied_at, ',' "
	    "ORDER BY version) FROM schema_version", &r));
}

static void
test_pgschema_fresh_database_gets_the_latest_version(void **state)
{
	struct fix	*f = *state;
	struct applied	 a;
	struct pgres	 r;

	assert_int_equal(apply(f, f->a.pg, NULL, 0, &a), 0);
	assert_int_equal(a.version, PGSCHEMA_VERSION);
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(tablename, ',' ORDER BY tablename) "
	    "FROM pg_tables WHERE schemaname = '" T_SCHEMA "'", &r),
	    "brokers,credaccounts,credlinks,credvalues,keycheck,keypair_"
	    "versions,keypairs,peerkeys,schema_version,settings,types");
	/* One row per migration, in order. */
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(version::text, ',' ORDER BY version) "
	    "FROM schema_version", &r), "1,2,3,4,5");
	/* PostgreSQL's types: uuids, bigint times, text sealed values. */
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(column_name || ':' || data_type, ',' "
	    "ORDER BY ordinal_position) FROM information_schema.columns "
	    "WHERE table_schema = '" T_SCHEMA "' AND table_name = "
	    "'credvalues'", &r), "type_uuid:uuid,user_uuid:uuid,sealed:text,"
	    "updated_at:bigint");
	/* A type's CA file: a path, or NULL when none. */
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT data_type || ':' || is_nullable FROM "
	    "information_schema.columns WHERE table_schema = '" T_SCHEMA
	    "' AND table_name = 'types' AND column_name = 'ca_file'", &r),
	    "text:YES");
	/* Byte order for idents, whatever the database's locale. */
	pgserver_ok(&f->loop, f->a.pg, "INSERT INTO types (uuid, ident, name, "
	    "storage) VALUES ('11111111-1111-4111-8111-111111111111', "
	    "'beta', 'b', 'db'), ('22222222-2222-4222-8222-222222222222', "
	    "'Zeta', 'z', 'db')", &r);
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(ident, ',' ORDER BY ident) FROM types", &r),
	    "Zeta,beta");
	/* A value needs its type; deleting the type takes its values. */
	assert_int_not_equal(pgserver_exec(&f->loop, f->a.pg,
	    "INSERT INTO credvalues VALUES ('33333333-3333-4333-8333-"
	    "333333333333', '11111111-1111-4111-8111-111111111111', 'x', 1)",
	    &r), 0);
	assert_string_equal(r.sqlstate, "23503");
	pgserver_ok(&f->loop, f->a.pg, "INSERT INTO credvalues VALUES "
	    "('11111111-1111-4111-8111-111111111111', '33333333-3333-4333-"
	    "8333-333333333333', 'x', 1)", &r);
	pgserver_ok(&f->loop, f->a.pg, "DELETE FROM types WHERE ident = "
	    "'beta'", &r);
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT count(*) FROM credvalues", &r), "0");
	/* The fleet's table: the server's clock fills the times. */
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "INSERT INTO brokers (host, pid, key_versions) VALUES "
	    "('h1', 42, '{1,2}') RETURNING (heartbeat = now())::text || "
	    "(started = now())::text || key_versions[2]", &r), "truetrue2");
}

static void
test_pgschema_applying_again_changes_nothing(void **state)
{
	struct fix	*f = *state;
	struct applied	 a;
	char		 before[1024], after[1024];

	assert_int_equal(apply(f, f->a.pg, NULL, 0, &a), 0);
	snapshot(f, before, sizeof(before));
	assert_int_equal(apply(f, f->a.pg, NULL, 0, &a), 0);
	assert_int_equal(a.version, PGSCHEMA_VERSION);
	/* From another connection too. */
	pgserver_open(&f->loop, T_SCHEMA, &f->b);
	assert_int_equal(apply(f, f->b.pg, NULL, 0, &a), 0);
	assert_int_equal(a.version, PGSCHEMA_VERSION);
	snapshot(f, after, sizeof(after));
	assert_string_equal(before, after);
}

/*
 * Two brokers start on the same empty database at once: both succeed,
 * and each migration ran exactly once.  The migrations count their runs
 * in a table, and take a while, so that the second broker's migration
 * waits for the first one's lock.
 */
static const char *const count_m1[] = {
	"CREATE TABLE runs (migration integer, pid integer)",
	"INSERT INTO runs VALUES (1, pg_backend_pid())",
	"SELECT pg_sleep(0.3)",
};
static const char *const count_m2[] = {
	"ALTER TABLE runs ADD COLUMN note text",
	"INSERT INTO runs VALUES (2, pg_backend_pid(), 'second')",
	"SELECT pg_sleep(0.2)",
};
static const struct pgschema_migration count_list[] = {
	{ "create runs", count_m1, 3 },
	{ "alter runs", count_m2, 3 },
};

static void
test_pgschema_concurrent_brokers_migrate_exactly_once(void **state)
{
	struct fix	*f = *state;
	struct applied	 a, b;
	struct pgres	 r, hold;
	struct pgconn	 c;

	pgserver_open(&f->loop, T_SCHEMA, &f->b);
	pgserver_open(&f->loop, T_SCHEMA, &c);
	/*
	 * A third session holds the lock while both start, so that both
	 * read version 0 before either migrates.
	 */
	pgserver_ok(&f->loop, c.pg, "SELECT pg_advisory_lock("
	    PGSCHEMA_LOCK_KEY ")", &hold);
	start(f->a.pg, count_list, 2, &a);
	start(f->b.pg, count_list, 2, &b);
	pgserver_ok(&f->loop, c.pg, "SELECT pg_advisory_unlock("
	    PGSCHEMA_LOCK_KEY ")", &hold);
	assert_string_equal(hold.val, "t");
	assert_true(pgserver_run_until(&f->loop, &a.done, 1, 30000));
	assert_true(pgserver_run_until(&f->loop, &b.done, 1, 30000));
	if (a.rc != 0 || b.rc != 0)
		fail_msg("a: %s; b: %s", a.msg, b.msg);
	assert_int_equal(a.version, 2);
	assert_int_equal(b.version, 2);
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(migration::text, ',' ORDER BY migration) "
	    "FROM runs", &r), "1,2");
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(version::text, ',' ORDER BY version) "
	    "FROM schema_version", &r), "1,2");
	pgserver_close(&f->loop, &c);

	/* The broker's own migrations, likewise. */
	pgserver_schema(&f->loop, f->a.pg, T_SCHEMA);
	start(f->a.pg, NULL, 0, &a);
	start(f->b.pg, NULL, 0, &b);
	assert_true(pgserver_run_until(&f->loop, &a.done, 1, 30000));
	assert_true(pgserver_run_until(&f->loop, &b.done, 1, 30000));
	if (a.rc != 0 || b.rc != 0)
		fail_msg("a: %s; b: %s", a.msg, b.msg);
	assert_int_equal(a.version, PGSCHEMA_VERSION);
	assert_int_equal(b.version, PGSCHEMA_VERSION);
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(version::text, ',' ORDER BY version) "
	    "FROM schema_version", &r), "1,2,3,4,5");
}

static void
test_pgschema_newer_database_is_refused_and_left_alone(void **state)
{
	struct fix	*f = *state;
	struct applied	 a;
	struct pgres	 r;
	char		 before[1024], after[1024], want[256];

	assert_int_equal(apply(f, f->a.pg, NULL, 0, &a), 0);
	/* A newer broker migrated the database further. */
	snprintf(want, sizeof(want), "INSERT INTO schema_version (version) "
	    "VALUES (%d)", PGSCHEMA_VERSION + 1);
	pgserver_ok(&f->loop, f->a.pg, want, &r);
	snapshot(f, before, sizeof(before));
	assert_int_equal(apply(f, f->a.pg, NULL, 0, &a), -CB_EINTERNAL);
	snprintf(want, sizeof(want), "the database schema is version %d, "
	    "newer than this broker knows (%d): upgrade the broker",
	    PGSCHEMA_VERSION + 1, PGSCHEMA_VERSION);
	assert_string_equal(a.msg, want);
	snapshot(f, after, sizeof(after));
	assert_string_equal(before, after);

	/* An older broker, knowing one migration only. */
	assert_int_equal(apply(f, f->a.pg, count_list, 1, &a), -CB_EINTERNAL);
	snprintf(want, sizeof(want), "the database schema is version %d, "
	    "newer than this broker knows (1): upgrade the broker",
	    PGSCHEMA_VERSION + 1);
	assert_non_null(strstr(a.msg, want));
	snapshot(f, after, sizeof(after));
	assert_string_equal(before, after);
}

/* A migration that fails leaves nothing of itself behind. */
static const char *const bad_m2[] = {
	"CREATE TABLE second (id integer)",
	"INSERT INTO runs VALUES (2, pg_backend_pid())",
	"SELECT 1 / 0",
};
static const struct pgschema_migration bad_list[] = {
	{ "create runs", count_m1, 3 },
	{ "a broken one", bad_m2, 3 },
};

static void
test_pgschema_failed_migration_rolls_back_entirely(void **state)
{
	struct fix	*f = *state;
	struct applied	 a;
	struct pgres	 r;

	assert_int_equal(apply(f, f->a.pg, bad_list, 2, &a), -CB_EINTERNAL);
	assert_non_null(strstr(a.msg, "schema migration to version 2 "
	    "(a broken one) failed and was rolled back"));
	assert_non_null(strstr(a.msg, "division by zero"));
	/* Version 1 committed; nothing of version 2. */
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(version::text, ',' ORDER BY version) "
	    "FROM schema_version", &r), "1");
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(migration::text, ',') FROM runs", &r), "1");
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT count(*) FROM pg_tables WHERE schemaname = '" T_SCHEMA
	    "' AND tablename = 'second'", &r), "0");
	/* The connection is fine, and the fixed migration goes on from 1. */
	assert_int_equal(apply(f, f->a.pg, count_list, 2, &a), 0);
	assert_int_equal(a.version, 2);
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg,
	    "SELECT string_agg(migration::text, ',' ORDER BY migration) "
	    "FROM runs", &r), "1,2");
}

/*
 * A role that may only read and write the tables (no CREATE on the
 * schema) can start on a schema that is up to date, and is told why it
 * cannot create one.
 */
#define T_RUNTIME	"cb_runtime"
#define T_RUNTIME_PW	"runtime-pw-5c81e2"

static void
test_pgschema_role_without_create_uses_an_up_to_date_schema(void **state)
{
	struct fix	*f = *state;
	struct applied	 a;
	struct pgres	 r;

	assert_true(pgserver_ctl("sql CREATE ROLE " T_RUNTIME " LOGIN "
	    "PASSWORD '" T_RUNTIME_PW "'"));
	assert_int_equal(apply(f, f->a.pg, NULL, 0, &a), 0);
	pgserver_ok(&f->loop, f->a.pg, "GRANT USAGE ON SCHEMA " T_SCHEMA
	    " TO " T_RUNTIME, &r);
	pgserver_ok(&f->loop, f->a.pg, "GRANT SELECT, INSERT, UPDATE, DELETE "
	    "ON ALL TABLES IN SCHEMA " T_SCHEMA " TO " T_RUNTIME, &r);
	pgserver_open_as(&f->loop, T_SCHEMA, T_RUNTIME, T_RUNTIME_PW, &f->b);
	assert_int_equal(apply(f, f->b.pg, NULL, 0, &a), 0);
	assert_int_equal(a.version, PGSCHEMA_VERSION);
	assert_string_equal(pgserver_ok(&f->loop, f->b.pg, "INSERT INTO "
	    "settings VALUES ('k', 'v') RETURNING current_user", &r),
	    T_RUNTIME);

	/* A new schema: it cannot be created by that role. */
	pgserver_schema(&f->loop, f->a.pg, T_SCHEMA);
	pgserver_ok(&f->loop, f->a.pg, "GRANT USAGE ON SCHEMA " T_SCHEMA
	    " TO " T_RUNTIME, &r);
	assert_int_equal(apply(f, f->b.pg, NULL, 0, &a), -CB_EINTERNAL);
	assert_non_null(strstr(a.msg, "cannot read the database schema "
	    "version: PostgreSQL: permission denied for schema " T_SCHEMA
	    " (42501)"));
	assert_string_equal(pgserver_ok(&f->loop, f->a.pg, "SELECT count(*) "
	    "FROM pg_tables WHERE schemaname = '" T_SCHEMA "'", &r), "0");
}

static void
test_pgschema_without_connection_fails_at_once(void **state)
{
	struct fix	*f = *state;
	struct applied	 a;
	struct cb_error	 err;

	assert_true(pgserver_ctl("stop"));
	assert_true(pgserver_run_until(&f->loop, &f->a.down, 1, 20000));
	memset(&a, 0, sizeof(a));
	cb_error_clear(&err);
	assert_int_equal(pgschema_apply(f->a.pg, applied_cb, &a, &err),
	    -CB_EUNAVAILABLE);
	assert_non_null(strstr(err.msg, "not connected to PostgreSQL"));
	assert_true(pgserver_ctl("start"));
	assert_true(pgserver_run_until(&f->loop, &f->a.reconnected, 1,
	    20000));
	assert_int_equal(a.done, 0);
	assert_int_equal(apply(f, f->a.pg, NULL, 0, &a), 0);
	assert_int_equal(a.version, PGSCHEMA_VERSION);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_pgschema_fresh_database_gets_the_latest_version,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pgschema_applying_again_changes_nothing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_pgschema_concurrent_brokers_migrate_exactly_once,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pgschema_newer_database_is_refused_and_left_alone,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pgschema_failed_migration_rolls_back_entirely,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pgschema_role_without_create_uses_an_up_to_date_schema,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_pgschema_without_connection_fails_at_once, setup,
		    teardown),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

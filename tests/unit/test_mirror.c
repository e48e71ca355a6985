/*
 * Unit tests for storage/mirror.c: the metadata of the PostgreSQL store in
 * a local SQLite mirror.  Two mirrors ("brokers" A and B, each a SQLite
 * store of its own) share one schema of a private PostgreSQL cluster
 * (pgserver.c); their writes run as the daemon runs them, in a writer
 * group with the mirror as its replica (writer_group_run_replica).
 */
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
#include <uv.h>

#include "cb_error.h"
#include "mirror.h"
#include "pg.h"
#include "pgserver.h"
#include "store.h"
#include "writer.h"

#define T_SCHEMA	"cb_mirror_test"
#define T_UUID1		"1aa0a0a0-0000-4000-8000-000000000001"
#define T_UUID2		"2bb0b0b0-0000-4000-8000-000000000002"
#define T_USER		"c3000000-0000-4000-8000-00000000000c"
#define T_USER2		"d4000000-0000-4000-8000-00000000000d"

struct broker_side {
	char		 path[PATH_MAX];
	struct store	*st;
	struct mirror	*m;
	struct writer_replica rep;
};

struct fix {
	uv_loop_t		 loop;
	struct pgconn		 peek;	/* looks at PostgreSQL directly */
	char			 dir[64];
	struct broker_side	 a, b;
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

static void
conninfo(char *buf, size_t size, int port)
{
	snprintf(buf, size, "host=%s port=%d user=%s dbname=%s "
	    "options=-csearch_path=%s", pgsrv.host, port, pgsrv.user,
	    pgsrv.dbname, T_SCHEMA);
}

static int
rep_begin(void *arg, struct cb_error *err)
{
	return mirror_txn_begin(arg, err);
}

static int
rep_job_begin(void *arg, struct store *st, struct cb_error *err)
{
	return mirror_job_begin(arg, st, err);
}

static int
rep_job_end(void *arg, struct store *st, bool keep, struct cb_error *err)
{
	return mirror_job_end(arg, st, keep, err);
}

static int
rep_commit(void *arg, struct cb_error *err)
{
	return mirror_txn_commit(arg, err);
}

static void
rep_abort(void *arg)
{
	mirror_txn_abort(arg);
}

static void
side_open(struct fix *f, struct broker_side *s, const char *name)
{
	struct cb_error	 err;
	char		 ci[PATH_MAX + 512];

	snprintf(s->path, sizeof(s->path), "%s/%s.db", f->dir, name);
	cb_error_clear(&err);
	if (store_open(s->path, &s->st, &err) != 0)
		fail_msg("store_open: %s", err.msg);
	conninfo(ci, sizeof(ci), pgsrv.port);
	assert_int_equal(mirror_new(ci, pgsrv.password, 5000, &s->m, &err),
	    0);
	if (mirror_reload(s->m, s->st, &err) != 0)
		fail_msg("mirror_reload: %s", err.msg);
	s->rep.arg = s->m;
	s->rep.begin = rep_begin;
	s->rep.job_begin = rep_job_begin;
	s->rep.job_end = rep_job_end;
	s->rep.commit = rep_commit;
	s->rep.abort = rep_abort;
}

static void
side_close(struct broker_side *s)
{
	char	path[PATH_MAX + 8];

	mirror_free(s->m);
	store_close(s->st);
	unlink(s->path);
	snprintf(path, sizeof(path), "%s-wal", s->path);
	unlink(path);
	snprintf(path, sizeof(path), "%s-shm", s->path);
	unlink(path);
}

static int
setup(void **state)
{
	struct fix	*f;
	struct pgres	 r;

	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    uv_loop_init(&f->loop) != 0)
		return -1;
	*state = f;
	snprintf(f->dir, sizeof(f->dir), "/tmp/cb-mirror-XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	pgserver_open(&f->loop, T_SCHEMA, &f->peek);
	pgserver_ok(&f->loop, f->peek.pg, "TRUNCATE types, credvalues, "
	    "credaccounts, credlinks, settings, keycheck, keypairs, "
	    "keypair_versions, peerkeys", &r);
	side_open(f, &f->a, "a");
	side_open(f, &f->b, "b");
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	side_close(&f->a);
	side_close(&f->b);
	rmdir(f->dir);
	pgserver_close(&f->loop, &f->peek);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

/* One write, run as the daemon's writer runs it. */
struct job {
	struct writer_job	 wj;
	int			 (*fn)(struct job *, struct store *,
				    struct cb_error *);
	struct store_type	 t;
	bool			 fail_after;	/* write, then fail */
};

static int
job_run(struct writer_job *wj, struct store *st, struct cb_error *err)
{
	struct job	*j = (struct job *)wj;
	int		 rc;

	if ((rc = j->fn(j, st, err)) != 0)
		return rc;
	if (j->fail_after)
		return cb_error_set(err, CB_EBADREQ, "refused after writing");
	return 0;
}

/* Run one job on side s; its rc, with its message in msg. */
static int
run_job(struct broker_side *s, struct job *j, char *msg, size_t size)
{
	struct cb_error	 err;
	size_t		 ok = 0;

	j->wj.run = job_run;
	j->wj.next = NULL;
	cb_error_clear(&err);
	(void)writer_group_run_replica(s->st, &s->rep, &j->wj, &ok, &err);
	if (msg != NULL)
		snprintf(msg, size, "%s", j->wj.rc != 0 ? j->wj.err.msg : "");
	return j->wj.rc;
}

static int
do_create(struct job *j, struct store *st, struct cb_error *err)
{
	return store_type_create(st, &j->t, err);
}

static int
do_update(struct job *j, struct store *st, struct cb_error *err)
{
	return store_type_update(st, &j->t, err);
}

static int
do_delete(struct job *j, struct store *st, struct cb_error *err)
{
	return store_type_delete(st, j->t.uuid, err);
}

static int
do_keypair(struct job *j, struct store *st, struct cb_error *err)
{
	uint32_t	v;
	int		rc;

	if ((rc = store_keypair_next(st, "partner", &v, err)) != 0)
		return rc;
	return store_keypair_add(st, "partner", v, 2048, "sealed-text-v1", 1,
	    err);
}

/* Links of T_USER and T_USER2 to type T_UUID1 (a key of two columns). */
static int
do_links(struct job *j, struct store *st, struct cb_error *err)
{
	int	rc;

	if ((rc = store_link_set(st, T_UUID1, T_USER, "work", "S:work",
	    1700000000, err)) != 0)
		return rc;
	return store_link_set(st, T_UUID1, T_USER2, "work", "S:work2",
	    1700000000, err);
}

static int
do_unlink(struct job *j, struct store *st, struct cb_error *err)
{
	return store_link_delete(st, T_UUID1, T_USER, err);
}

static void
type_init(struct job *j, const char *uuid, const char *ident,
    const char *name, int storage)
{
	static char	*none[] = { NULL };

	memset(j, 0, sizeof(*j));
	snprintf(j->t.uuid, sizeof(j->t.uuid), "%s", uuid);
	snprintf(j->t.ident, sizeof(j->t.ident), "%s", ident);
	j->t.name = (char *)name;
	j->t.description = (char *)"";
	j->t.storage = storage;
	j->t.destinations = none;
	j->t.created_at = j->t.updated_at = 1700000000;
}

/* The name of type ref in s's mirror, or "" when not found. */
static const char *
name_in(struct broker_side *s, const char *ref, char *buf, size_t size)
{
	struct store_type	t;
	struct cb_error		err;

	memset(&t, 0, sizeof(t));
	buf[0] = '\0';
	store_type_cache_drop(s->st);
	if (store_type_get(s->st, ref, &t, &err) == 0) {
		snprintf(buf, size, "%s", t.name);
		store_type_free(&t);
	}
	return buf;
}

static void
create_on(struct broker_side *s, const char *uuid, const char *ident,
    const char *name)
{
	struct job	j;
	char		msg[CB_ERRMSG_MAX];

	type_init(&j, uuid, ident, name, STORE_DB);
	j.fn = do_create;
	if (run_job(s, &j, msg, sizeof(msg)) != 0)
		fail_msg("create %s: %s", ident, msg);
}

static void
test_mirror_write_reaches_postgresql_and_another_mirror(void **state)
{
	struct fix	*f = *state;
	struct cb_error	 err;
	struct pgres	 r;
	char		 buf[64];

	create_on(&f->a, T_UUID1, "github", "GitHub");
	assert_string_equal(pgserver_ok(&f->loop, f->peek.pg,
	    "SELECT ident || ':' || name || ':' || storage FROM types", &r),
	    "github:GitHub:db");
	assert_string_equal(name_in(&f->a, "github", buf, sizeof(buf)),
	    "GitHub");
	/* B has not heard of it until it reads the mirror again. */
	assert_string_equal(name_in(&f->b, "github", buf, sizeof(buf)), "");
	assert_int_equal(mirror_reload(f->b.m, f->b.st, &err), 0);
	assert_string_equal(name_in(&f->b, "github", buf, sizeof(buf)),
	    "GitHub");
}

static void
test_mirror_refresh_reads_the_notified_row_again(void **state)
{
	struct fix	*f = *state;
	struct cb_error	 err;
	struct job	 j;
	const char	*table;
	char		 key[STORE_UUID_LEN + 1], buf[64], msg[CB_ERRMSG_MAX];

	create_on(&f->a, T_UUID1, "github", "GitHub");
	assert_int_equal(mirror_refresh(f->b.m, f->b.st, "types\t" T_UUID1,
	    &table, key, &err), 0);
	assert_string_equal(table, "types");
	assert_string_equal(key, T_UUID1);
	assert_string_equal(name_in(&f->b, "github", buf, sizeof(buf)),
	    "GitHub");

	type_init(&j, T_UUID1, "github", "GitHub 2", STORE_DB);
	j.fn = do_update;
	assert_int_equal(run_job(&f->a, &j, msg, sizeof(msg)), 0);
	assert_int_equal(mirror_refresh(f->b.m, f->b.st, "types\t" T_UUID1,
	    &table, key, &err), 0);
	assert_string_equal(name_in(&f->b, "github", buf, sizeof(buf)),
	    "GitHub 2");

	j.fn = do_delete;
	assert_int_equal(run_job(&f->a, &j, msg, sizeof(msg)), 0);
	assert_int_equal(mirror_refresh(f->b.m, f->b.st, "types\t" T_UUID1,
	    &table, key, &err), 0);
	assert_string_equal(name_in(&f->b, "github", buf, sizeof(buf)), "");
}

static void
test_mirror_update_of_a_row_changed_elsewhere_conflicts(void **state)
{
	struct fix	*f = *state;
	struct cb_error	 err;
	struct pgres	 r;
	struct job	 j;
	char		 buf[64], msg[CB_ERRMSG_MAX];

	create_on(&f->a, T_UUID1, "github", "GitHub");
	assert_int_equal(mirror_reload(f->b.m, f->b.st, &err), 0);
	type_init(&j, T_UUID1, "github", "Named on A", STORE_DB);
	j.fn = do_update;
	assert_int_equal(run_job(&f->a, &j, msg, sizeof(msg)), 0);
	/* B still reads "GitHub": its update must not overwrite A's. */
	type_init(&j, T_UUID1, "github", "Named on B", STORE_DB);
	j.fn = do_update;
	assert_int_equal(run_job(&f->b, &j, msg, sizeof(msg)),
	    -CB_ECONFLICT);
	assert_string_equal(msg, "changed through another broker at the "
	    "same time; try again");
	assert_string_equal(pgserver_ok(&f->loop, f->peek.pg,
	    "SELECT name FROM types", &r), "Named on A");
	/* Nothing of it stays in B's mirror either. */
	assert_string_equal(name_in(&f->b, "github", buf, sizeof(buf)),
	    "GitHub");
}

static void
test_mirror_create_of_a_taken_ident_conflicts(void **state)
{
	struct fix	*f = *state;
	struct pgres	 r;
	struct job	 j;
	char		 buf[64], msg[CB_ERRMSG_MAX];

	create_on(&f->a, T_UUID1, "github", "GitHub");
	type_init(&j, T_UUID2, "github", "Another", STORE_DB);
	j.fn = do_create;
	assert_int_equal(run_job(&f->b, &j, msg, sizeof(msg)),
	    -CB_ECONFLICT);
	assert_string_equal(pgserver_ok(&f->loop, f->peek.pg,
	    "SELECT count(*) FROM types", &r), "1");
	assert_string_equal(name_in(&f->b, T_UUID2, buf, sizeof(buf)), "");
}

static void
test_mirror_failed_write_changes_nothing_on_postgresql(void **state)
{
	struct fix	*f = *state;
	struct pgres	 r;
	struct job	 j;
	char		 buf[64], msg[CB_ERRMSG_MAX];

	type_init(&j, T_UUID1, "github", "GitHub", STORE_DB);
	j.fn = do_create;
	j.fail_after = true;
	assert_int_equal(run_job(&f->a, &j, msg, sizeof(msg)), -CB_EBADREQ);
	assert_string_equal(pgserver_ok(&f->loop, f->peek.pg,
	    "SELECT count(*) FROM types", &r), "0");
	assert_string_equal(name_in(&f->a, "github", buf, sizeof(buf)), "");
	/* The next write on the same connection goes through. */
	create_on(&f->a, T_UUID1, "github", "GitHub");
	assert_string_equal(pgserver_ok(&f->loop, f->peek.pg,
	    "SELECT count(*) FROM types", &r), "1");
}

static void
test_mirror_storage_change_deletes_the_values_on_postgresql(void **state)
{
	struct fix	*f = *state;
	struct pgres	 r;
	struct job	 j;
	char		 msg[CB_ERRMSG_MAX];

	create_on(&f->a, T_UUID1, "github", "GitHub");
	pgserver_ok(&f->loop, f->peek.pg, "INSERT INTO credvalues (type_uuid, "
	    "user_uuid, sealed, updated_at) VALUES ('" T_UUID1 "', '" T_USER
	    "', 'sealed', 1)", &r);
	/* A rename keeps them. */
	type_init(&j, T_UUID1, "github", "Renamed", STORE_DB);
	j.fn = do_update;
	assert_int_equal(run_job(&f->a, &j, msg, sizeof(msg)), 0);
	assert_string_equal(pgserver_ok(&f->loop, f->peek.pg,
	    "SELECT count(*) FROM credvalues", &r), "1");
	/* A move to Vault does not. */
	type_init(&j, T_UUID1, "github", "Renamed", STORE_VAULT);
	j.fn = do_update;
	assert_int_equal(run_job(&f->a, &j, msg, sizeof(msg)), 0);
	assert_string_equal(pgserver_ok(&f->loop, f->peek.pg,
	    "SELECT count(*) || ':' || (SELECT storage || generation FROM "
	    "types) FROM credvalues", &r), "0:vault1");
}

static void
test_mirror_key_pair_rows_replay_parent_first(void **state)
{
	struct fix	*f = *state;
	struct pgres	 r;
	struct job	 j;
	char		 msg[CB_ERRMSG_MAX];

	memset(&j, 0, sizeof(j));
	j.fn = do_keypair;
	if (run_job(&f->a, &j, msg, sizeof(msg)) != 0)
		fail_msg("keypair: %s", msg);
	if (run_job(&f->a, &j, msg, sizeof(msg)) != 0)
		fail_msg("keypair: %s", msg);
	assert_string_equal(pgserver_ok(&f->loop, f->peek.pg,
	    "SELECT next_version || ':' || (SELECT string_agg(version::text, "
	    "',' ORDER BY version) FROM keypair_versions) FROM keypairs", &r),
	    "3:1,2");
}

/* Whether s's mirror holds the link of user to type T_UUID1. */
static bool
linked_in(struct broker_side *s, const char *user)
{
	struct store_link	l;
	struct cb_error		err;
	int			rc;

	cb_error_clear(&err);
	rc = store_link_get(s->st, T_UUID1, user, &l, &err);
	if (rc == 0)
		store_link_free(&l);
	else if (rc != -CB_ENOTFOUND)
		fail_msg("store_link_get: %s", err.msg);
	return rc == 0;
}

static void
test_mirror_link_delete_and_refresh_match_the_whole_key(void **state)
{
	struct fix	*f = *state;
	struct cb_error	 err;
	struct pgres	 r;
	struct job	 j;
	const char	*table;
	char		 key[STORE_UUID_LEN + 1], msg[CB_ERRMSG_MAX];

	create_on(&f->a, T_UUID1, "github", "GitHub");
	memset(&j, 0, sizeof(j));
	j.fn = do_links;
	if (run_job(&f->a, &j, msg, sizeof(msg)) != 0)
		fail_msg("links: %s", msg);
	/* B reads the type and both links, each by its key. */
	assert_int_equal(mirror_refresh(f->b.m, f->b.st, "types\t" T_UUID1,
	    &table, key, &err), 0);
	assert_int_equal(mirror_refresh(f->b.m, f->b.st, "credlinks\t"
	    T_UUID1 "\t" T_USER, &table, key, &err), 0);
	assert_int_equal(mirror_refresh(f->b.m, f->b.st, "credlinks\t"
	    T_UUID1 "\t" T_USER2, &table, key, &err), 0);
	assert_string_equal(table, "credlinks");
	assert_true(linked_in(&f->b, T_USER));
	assert_true(linked_in(&f->b, T_USER2));

	/* A deletes one: PostgreSQL loses that row only. */
	j.fn = do_unlink;
	assert_int_equal(run_job(&f->a, &j, msg, sizeof(msg)), 0);
	assert_string_equal(pgserver_ok(&f->loop, f->peek.pg,
	    "SELECT string_agg(user_uuid::text, ',') FROM credlinks", &r),
	    T_USER2);

	/* Notified, B removes that row only. */
	assert_int_equal(mirror_refresh(f->b.m, f->b.st, "credlinks\t"
	    T_UUID1 "\t" T_USER, &table, key, &err), 0);
	assert_false(linked_in(&f->b, T_USER));
	assert_true(linked_in(&f->b, T_USER2));
}

static void
test_mirror_refresh_refuses_payloads_that_name_no_row(void **state)
{
	static const char *const bad[] = {
		"", "types", "types\t", "nosuch\t" T_UUID1,
		"types\t" T_UUID1 "\textra", "credlinks\t" T_UUID1,
		"credvalues\t" T_UUID1 "\t" T_USER, "settings\tva lt",
		"settings\tx'y", "settings\tvault\n",
	};
	struct fix	*f = *state;
	struct cb_error	 err;
	const char	*table;
	char		 key[STORE_UUID_LEN + 1];
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cb_error_clear(&err);
		assert_int_equal(mirror_refresh(f->b.m, f->b.st, bad[i],
		    &table, key, &err), -CB_EBADREQ);
		assert_string_equal(err.msg, "a notification that names no "
		    "row of a mirrored table");
	}
}

static void
test_mirror_unreachable_database_is_unavailable(void **state)
{
	struct fix	*f = *state;
	struct mirror	*m;
	struct cb_error	 err;
	char		 ci[PATH_MAX + 512];

	(void)f;
	/* A port nobody listens on, in the cluster's socket directory. */
	conninfo(ci, sizeof(ci), pgsrv.port + 1);
	assert_int_equal(mirror_new(ci, "not-the-password", 2000, &m, &err),
	    0);
	assert_int_equal(mirror_txn_begin(m, &err), -CB_EUNAVAILABLE);
	assert_non_null(strstr(err.msg, "cannot connect to PostgreSQL: "));
	assert_null(strstr(err.msg, "not-the-password"));
	assert_null(strchr(err.msg, '\n'));
	mirror_free(m);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn)	cmocka_unit_test_setup_teardown(fn, setup, teardown)
		T(test_mirror_write_reaches_postgresql_and_another_mirror),
		T(test_mirror_refresh_reads_the_notified_row_again),
		T(test_mirror_update_of_a_row_changed_elsewhere_conflicts),
		T(test_mirror_create_of_a_taken_ident_conflicts),
		T(test_mirror_failed_write_changes_nothing_on_postgresql),
		T(test_mirror_storage_change_deletes_the_values_on_postgresql),
		T(test_mirror_key_pair_rows_replay_parent_first),
		T(test_mirror_link_delete_and_refresh_match_the_whole_key),
		T(test_mirror_refresh_refuses_payloads_that_name_no_row),
		T(test_mirror_unreachable_database_is_unavailable),
#undef T
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

/*
 * Unit tests for storage/values-pg.c: the values of db-stored types in
 * PostgreSQL, against a real private cluster (pgserver.h).  The group
 * makes a schema with pgschema.c's tables; each test gets them emptied,
 * with three types (two stored in the database, one in Vault), the
 * backend's two connections (writes and reads) whose search_path names
 * the schema, and another connection to look at the tables from another
 * session.  Every answer must come from the loop, after the operation
 * has returned; each test ends by closing everything and checking that
 * uv_loop_close() returns 0.
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

#include <cmocka.h>
#include <uv.h>

#include "cb_error.h"
#include "pg.h"
#include "pgserver.h"
#include "sealctx.h"
#include "store.h"
#include "values.h"

#define T_SCHEMA	"cb_values_test"
#define T_NTYPES	3
#define T_NUSERS	4

static const char *const types[T_NTYPES] = {
	"0aa0a0a0-0000-4000-8000-000000000001",		/* db */
	"0bb0b0b0-0000-4000-8000-000000000002",		/* db */
	"0cc0c0c0-0000-4000-8000-000000000003",		/* vault */
};
/* Not in uuid order, to check the order of listings. */
static const char *const users[T_NUSERS] = {
	"c3000000-0000-4000-8000-00000000000c",
	"a1000000-0000-4000-8000-00000000000a",
	"b2000000-0000-4000-8000-00000000000b",
	"d4000000-0000-4000-8000-00000000000d",
};

struct fix {
	uv_loop_t	 loop;
	struct pgconn	 c;		/* the backend's, for writes */
	struct pgconn	 r;		/* the backend's, for reads */
	struct pgconn	 peek;		/* another session */
	struct pgconn	 lock;		/* one holding a lock (lock_values) */
	struct values	*v;
	struct store_type st[T_NTYPES];	/* for status */
	bool		 returned;	/* the operation has returned */
};

/* Everything an answer may carry. */
struct answer {
	struct fix	*f;
	int		 called;
	int		 rc;
	char		 msg[CB_ERRMSG_MAX];
	char		 sealed[256];
	int64_t		 n;
	bool		 finished;
	char		 names[8][64];
	int64_t		 updated[8];
	size_t		 count;
	int64_t		 status[T_NTYPES];
	int		 status_rc[T_NTYPES];
	int		 order;		/* of arrival */
};

static int	 arrivals;

/* The cluster, and the schema with pgschema.c's tables, once. */
static int
group_setup(void **state)
{
	return pgserver_schema_migrated(T_SCHEMA);
}

static int
group_teardown(void **state)
{
	pgserver_stop();
	return 0;
}

/* Each test: empty tables, three types, a connection of its own. */
static int
setup(void **state)
{
	struct fix	*f;
	struct cb_error	 err;
	struct pgres	 r;
	char		 sql[512];
	int		 i;

	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    uv_loop_init(&f->loop) != 0) {
		free(f);
		return -1;
	}
	*state = f;
	arrivals = 0;
	pgserver_open(&f->loop, T_SCHEMA, &f->peek);
	/* What a failed test may have left. */
	pgserver_ok(&f->loop, f->peek.pg, "ALTER TABLE IF EXISTS "
	    "credaccounts_away RENAME TO credaccounts", &r);
	pgserver_ok(&f->loop, f->peek.pg, "TRUNCATE types, credvalues, "
	    "credaccounts, credlinks, settings", &r);
	pgserver_ok(&f->loop, f->peek.pg, "ALTER TABLE credvalues DROP "
	    "CONSTRAINT IF EXISTS short", &r);
	for (i = 0; i < T_NTYPES; i++) {
		snprintf(sql, sizeof(sql), "INSERT INTO types (uuid, ident, "
		    "name, storage) VALUES ('%s', 'type%d', 'Type %d', '%s')",
		    types[i], i, i, i < 2 ? "db" : "vault");
		pgserver_ok(&f->loop, f->peek.pg, sql, &r);
		snprintf(f->st[i].uuid, sizeof(f->st[i].uuid), "%s", types[i]);
		f->st[i].storage = i < 2 ? STORE_DB : STORE_VAULT;
	}
	pgserver_open(&f->loop, T_SCHEMA, &f->c);
	pgserver_open(&f->loop, T_SCHEMA, &f->r);
	cb_error_clear(&err);
	assert_int_equal(values_pg_new(f->r.pg, f->c.pg, &f->v, &err), 0);
	return 0;
}

static int
teardown(void **state)
{
	struct fix	*f = *state;

	if (f->v != NULL)
		f->v->ops->close(f->v);
	pgserver_close(&f->loop, &f->c);
	pgserver_close(&f->loop, &f->r);
	pgserver_close(&f->loop, &f->peek);
	pgserver_close(&f->loop, &f->lock);
	assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	free(f);
	return 0;
}

/* Every answer: once, from the loop, after its call returned. */
static void
answered(struct answer *a, int rc, const struct cb_error *err)
{
	assert_true(a->f->returned);
	a->called++;
	a->rc = rc;
	a->order = arrivals++;
	snprintf(a->msg, sizeof(a->msg), "%s", rc != 0 ? err->msg : "");
}

static void
got(void *arg, int rc, const char *sealed, int64_t updated_at,
    const struct cb_error *err)
{
	struct answer	*a = arg;

	answered(a, rc, err);
	if (rc == 0) {
		snprintf(a->sealed, sizeof(a->sealed), "%s", sealed);
		a->n = updated_at;
	}
}

static void
done(void *arg, int rc, int64_t n, const struct cb_error *err)
{
	struct answer	*a = arg;

	answered(a, rc, err);
	a->n = n;
}

static void
listed(void *arg, int rc, char *const *names, size_t n,
    const struct cb_error *err)
{
	struct answer	*a = arg;
	size_t		 i;

	answered(a, rc, err);
	a->count = n;
	for (i = 0; i < n && i < 8; i++)
		snprintf(a->names[i], sizeof(a->names[i]), "%s", names[i]);
}

static void
accounts_listed(void *arg, int rc, char *const *names,
    const int64_t *updated, size_t n, const struct cb_error *err)
{
	struct answer	*a = arg;
	size_t		 i;

	answered(a, rc, err);
	a->count = n;
	for (i = 0; i < n && i < 8; i++) {
		snprintf(a->names[i], sizeof(a->names[i]), "%s", names[i]);
		a->updated[i] = updated[i];
	}
}

static void
status_cb(void *arg, size_t i, int rc, int64_t updated_at,
    const struct cb_error *err)
{
	struct answer	*a = arg;

	assert_true(a->f->returned);
	assert_true(i < T_NTYPES);
	a->status_rc[i] = rc;
	a->status[i] = updated_at;
	if (rc != 0)
		snprintf(a->msg, sizeof(a->msg), "%s", err->msg);
	a->called++;
}

static void
resealed(void *arg, int rc, int64_t n, bool finished,
    const struct cb_error *err)
{
	struct answer	*a = arg;

	answered(a, rc, err);
	a->n = n;
	a->finished = finished;
}

static struct answer *
fresh(struct fix *f, struct answer *a)
{
	memset(a, 0, sizeof(*a));
	a->f = f;
	return a;
}

static void
wait_for(struct fix *f, struct answer *a, int n)
{
	if (!pgserver_run_until(&f->loop, &a->called, n, 30000))
		fail_msg("no answer");
	assert_int_equal(a->called, n);
}

static struct values_ref
uref(int type, int user, int64_t generation)
{
	struct values_ref	r = { 0 };

	r.type_uuid = types[type];
	r.user_uuid = users[user];
	r.generation = generation;
	return r;
}

static struct values_ref
aref(int type, const char *account)
{
	struct values_ref	r = { 0 };

	r.type_uuid = types[type];
	r.account = account;
	return r;
}

/* Start an operation: it must not answer from inside the call. */
#define CALL(f, a, expr) do {						\
	struct cb_error	_e;						\
	int		_rc;						\
									\
	cb_error_clear(&_e);						\
	(f)->returned = false;						\
	if ((_rc = (expr)) != 0)					\
		fail_msg("%s: %d %s", #expr, _rc, _e.msg);		\
	(f)->returned = true;						\
	assert_int_equal((a)->called, 0);				\
} while (0)
#define E	(&_e)

static int
r_get(struct fix *f, struct values_ref r, struct answer *a)
{
	CALL(f, fresh(f, a), f->v->ops->get(f->v, &r, got, a, E));
	wait_for(f, a, 1);
	return a->rc;
}

static int
r_set(struct fix *f, struct values_ref r, const char *sealed,
    struct answer *a)
{
	CALL(f, fresh(f, a), f->v->ops->set(f->v, &r, sealed, done, a, E));
	wait_for(f, a, 1);
	return a->rc;
}

static int
r_del(struct fix *f, struct values_ref r, struct answer *a)
{
	CALL(f, fresh(f, a), f->v->ops->del(f->v, &r, done, a, E));
	wait_for(f, a, 1);
	return a->rc;
}

static void
v_list(struct fix *f, int type, struct answer *a)
{
	CALL(f, fresh(f, a), f->v->ops->list_users(f->v, types[type], listed,
	    a, E));
	wait_for(f, a, 1);
	assert_int_equal(a->rc, 0);
}

static void
a_list(struct fix *f, int type, struct answer *a)
{
	CALL(f, fresh(f, a), f->v->ops->list_accounts(f->v, types[type], 0,
	    accounts_listed, a, E));
	wait_for(f, a, 1);
	assert_int_equal(a->rc, 0);
}

static int64_t
v_clear(struct fix *f, int type)
{
	struct answer	 a;

	CALL(f, fresh(f, &a), f->v->ops->clear(f->v, types[type], done, &a,
	    E));
	wait_for(f, &a, 1);
	assert_int_equal(a.rc, 0);
	return a.n;
}

static void
v_status(struct fix *f, int user, struct answer *a)
{
	const struct store_type	*t[T_NTYPES];
	int			 i;

	for (i = 0; i < T_NTYPES; i++)
		t[i] = &f->st[i];
	CALL(f, fresh(f, a), f->v->ops->status(f->v, users[user], t, T_NTYPES,
	    status_cb, a, E));
	wait_for(f, a, T_NTYPES);
}

/* Run sql in the other session; its first value. */
static const char *
peek(struct fix *f, const char *sql, struct pgres *r)
{
	return pgserver_ok(&f->loop, f->peek.pg, sql, r);
}

static void
test_values_pg_get_of_unset_value_is_not_found(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;
	char		 want[256];

	assert_int_equal(r_get(f, uref(0, 0, 0), &a), -CB_ENOTFOUND);
	snprintf(want, sizeof(want), "no value set for credential type %s "
	    "and user %s", types[0], users[0]);
	assert_string_equal(a.msg, want);
	assert_int_equal(r_get(f, aref(0, "alpha"), &a), -CB_ENOTFOUND);
	assert_non_null(strstr(a.msg, "and account 'alpha'"));
	assert_int_equal(r_del(f, uref(0, 0, 0), &a), -CB_ENOTFOUND);
	assert_int_equal(r_del(f, aref(0, "alpha"), &a), -CB_ENOTFOUND);
}

static void
test_values_pg_set_then_get_returns_sealed_text(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;
	struct pgres	 r;
	int64_t		 now = (int64_t)time(NULL);

	assert_int_equal(r_set(f, uref(0, 0, 0), "CB1:1:first", &a), 0);
	/* When it was written: the server's clock, here this host's. */
	assert_true(a.n >= now - 60 && a.n <= now + 60);
	assert_int_equal(r_get(f, uref(0, 0, 0), &a), 0);
	assert_string_equal(a.sealed, "CB1:1:first");
	assert_true(a.n >= now - 60 && a.n <= now + 60);
	/* Overwritten in place. */
	assert_int_equal(r_set(f, uref(0, 0, 0), "CB1:1:second", &a), 0);
	assert_int_equal(r_get(f, uref(0, 0, 0), &a), 0);
	assert_string_equal(a.sealed, "CB1:1:second");
	assert_string_equal(peek(f, "SELECT count(*) FROM credvalues", &r),
	    "1");
	/* Other users and types are apart. */
	assert_int_equal(r_get(f, uref(0, 1, 0), &a), -CB_ENOTFOUND);
	assert_int_equal(r_get(f, uref(1, 0, 0), &a), -CB_ENOTFOUND);
}

/* An answered write is committed: another session sees it at once. */
static void
test_values_pg_write_is_committed_when_answered(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;
	struct pgres	 r;

	assert_int_equal(r_set(f, uref(1, 2, 0), "CB1:1:seen", &a), 0);
	assert_string_equal(peek(f, "SELECT sealed FROM credvalues WHERE "
	    "user_uuid = 'b2000000-0000-4000-8000-00000000000b'", &r),
	    "CB1:1:seen");
	assert_int_equal(r_set(f, aref(1, "shared"), "CB1:1:acc", &a), 0);
	assert_string_equal(peek(f, "SELECT sealed FROM credaccounts WHERE "
	    "name = 'shared'", &r), "CB1:1:acc");
	assert_int_equal(r_del(f, uref(1, 2, 0), &a), 0);
	assert_string_equal(peek(f, "SELECT count(*) FROM credvalues", &r),
	    "0");
	assert_int_equal(v_clear(f, 1), 1);
	assert_string_equal(peek(f, "SELECT count(*) FROM credaccounts", &r),
	    "0");
}

static void
test_values_pg_delete_removes_one_value(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	assert_int_equal(r_set(f, uref(0, 0, 0), "CB1:1:a", &a), 0);
	assert_int_equal(r_set(f, uref(0, 1, 0), "CB1:1:b", &a), 0);
	assert_int_equal(r_del(f, uref(0, 0, 0), &a), 0);
	assert_int_equal(r_get(f, uref(0, 0, 0), &a), -CB_ENOTFOUND);
	assert_int_equal(r_del(f, uref(0, 0, 0), &a), -CB_ENOTFOUND);
	assert_int_equal(r_get(f, uref(0, 1, 0), &a), 0);
	assert_string_equal(a.sealed, "CB1:1:b");
}

static void
test_values_pg_list_users_in_uuid_order(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;
	int		 i;

	v_list(f, 0, &a);
	assert_int_equal(a.count, 0);
	for (i = 0; i < T_NUSERS; i++)
		assert_int_equal(r_set(f, uref(0, i, 0), "CB1:1:v", &a), 0);
	assert_int_equal(r_set(f, uref(1, 0, 0), "CB1:1:other", &a), 0);
	assert_int_equal(r_set(f, aref(0, "not_a_user"), "CB1:1:acc", &a), 0);
	v_list(f, 0, &a);
	assert_int_equal(a.count, T_NUSERS);
	assert_string_equal(a.names[0], users[1]);
	assert_string_equal(a.names[1], users[2]);
	assert_string_equal(a.names[2], users[0]);
	assert_string_equal(a.names[3], users[3]);
	v_list(f, 1, &a);
	assert_int_equal(a.count, 1);
	assert_string_equal(a.names[0], users[0]);
}

static void
test_values_pg_accounts_are_apart_and_listed_by_name(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	assert_int_equal(r_set(f, aref(0, "zeta"), "CB1:1:z", &a), 0);
	assert_int_equal(r_set(f, aref(0, "alpha"), "CB1:1:a", &a), 0);
	assert_int_equal(r_set(f, aref(1, "alpha"), "CB1:1:other", &a), 0);
	assert_int_equal(r_set(f, uref(0, 0, 0), "CB1:1:user", &a), 0);
	a_list(f, 0, &a);
	assert_int_equal(a.count, 2);
	assert_string_equal(a.names[0], "alpha");
	assert_string_equal(a.names[1], "zeta");
	assert_true(a.updated[0] > 0 && a.updated[1] > 0);
	assert_int_equal(r_get(f, aref(0, "alpha"), &a), 0);
	assert_string_equal(a.sealed, "CB1:1:a");
	assert_int_equal(r_get(f, aref(1, "alpha"), &a), 0);
	assert_string_equal(a.sealed, "CB1:1:other");
	assert_int_equal(r_del(f, aref(0, "alpha"), &a), 0);
	assert_int_equal(r_get(f, aref(0, "alpha"), &a), -CB_ENOTFOUND);
	assert_int_equal(r_get(f, aref(1, "alpha"), &a), 0);
	assert_int_equal(r_get(f, uref(0, 0, 0), &a), 0);
	assert_string_equal(a.sealed, "CB1:1:user");
	/* Names are checked before anything is sent. */
	{
		struct values_ref	 r = aref(0, "Bad-Name");
		struct cb_error		 e;

		assert_int_equal(f->v->ops->get(f->v, &r, got, &a, &e),
		    -CB_EBADREQ);
		assert_non_null(strstr(e.msg, "invalid account name"));
	}
}

static void
test_values_pg_clear_removes_users_and_accounts_values(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;

	assert_int_equal(v_clear(f, 0), 0);
	assert_int_equal(r_set(f, uref(0, 0, 0), "CB1:1:u0", &a), 0);
	assert_int_equal(r_set(f, uref(0, 1, 0), "CB1:1:u1", &a), 0);
	assert_int_equal(r_set(f, aref(0, "alpha"), "CB1:1:a", &a), 0);
	assert_int_equal(r_set(f, uref(1, 0, 0), "CB1:1:keep", &a), 0);
	assert_int_equal(r_set(f, aref(1, "alpha"), "CB1:1:keep", &a), 0);
	assert_int_equal(v_clear(f, 0), 3);
	assert_int_equal(r_get(f, uref(0, 0, 0), &a), -CB_ENOTFOUND);
	assert_int_equal(r_get(f, aref(0, "alpha"), &a), -CB_ENOTFOUND);
	v_list(f, 0, &a);
	assert_int_equal(a.count, 0);
	assert_int_equal(r_get(f, uref(1, 0, 0), &a), 0);
	assert_int_equal(r_get(f, aref(1, "alpha"), &a), 0);
	assert_int_equal(v_clear(f, 0), 0);
}

/* status: the db types the user has a value of; a Vault type never. */
static void
test_values_pg_status_across_types(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;
	struct pgres	 r;

	v_status(f, 0, &a);
	assert_int_equal(a.status_rc[0], 0);
	assert_int_equal(a.status[0], 0);
	assert_int_equal(a.status[1], 0);
	assert_int_equal(a.status[2], 0);
	assert_int_equal(r_set(f, uref(1, 0, 0), "CB1:1:x", &a), 0);
	assert_int_equal(r_set(f, uref(0, 1, 0), "CB1:1:y", &a), 0);
	/* A row left in the database by a type now stored in Vault. */
	peek(f, "INSERT INTO credvalues VALUES ('0cc0c0c0-0000-4000-8000-"
	    "000000000003', 'c3000000-0000-4000-8000-00000000000c', 'old', "
	    "1234)", &r);
	v_status(f, 0, &a);
	assert_int_equal(a.status[0], 0);
	assert_true(a.status[1] > 1234);
	assert_int_equal(a.status[2], 0);
	assert_int_equal(a.status_rc[1], 0);
	assert_int_equal(a.status_rc[2], 0);
	v_status(f, 1, &a);
	assert_true(a.status[0] > 1234);
	assert_int_equal(a.status[1], 0);
}

/*
 * The same rule as SQLite's: database values are not bound to the
 * storage generation (a change of storage deletes them), and they are
 * sealed under the same context, so sealed text moves between the two.
 */
static void
test_values_pg_generation_does_not_hide_values_as_in_sqlite(void **state)
{
	struct fix		*f = *state;
	struct values_ref	 r0 = uref(0, 0, 0), r2 = uref(0, 0, 2);
	char			 c0[VALUES_CONTEXT_MAX], c2[VALUES_CONTEXT_MAX];
	char			 want[VALUES_CONTEXT_MAX];
	struct answer		 a;

	assert_false(f->v->ops->generational);
	assert_string_equal(f->v->ops->name, "db");
	values_context(f->v, c0, sizeof(c0), &r0);
	values_context(f->v, c2, sizeof(c2), &r2);
	sealctx_value(want, sizeof(want), types[0], users[0], 0);
	assert_string_equal(c0, want);
	assert_string_equal(c2, want);
	assert_int_equal(r_set(f, uref(0, 0, 2), "CB1:1:gen2", &a), 0);
	assert_int_equal(r_get(f, uref(0, 0, 3), &a), 0);
	assert_string_equal(a.sealed, "CB1:1:gen2");
	assert_int_equal(r_get(f, uref(0, 0, 0), &a), 0);
	assert_int_equal(r_del(f, uref(0, 0, 5), &a), 0);
	assert_int_equal(r_get(f, uref(0, 0, 2), &a), -CB_ENOTFOUND);
}

/*
 * Operations asked one after the other, without waiting, are answered
 * in that order and each sees the writes asked before it.
 */
static void
test_values_pg_pipelined_operations_keep_their_order(void **state)
{
	struct fix		*f = *state;
	struct values_ref	 r = uref(0, 3, 0);
	struct answer		 a[6];
	struct cb_error		 e;
	int			 i;

	f->returned = false;
	for (i = 0; i < 6; i++)
		fresh(f, &a[i]);
	assert_int_equal(f->v->ops->set(f->v, &r, "CB1:1:one", done, &a[0],
	    &e), 0);
	assert_int_equal(f->v->ops->get(f->v, &r, got, &a[1], &e), 0);
	assert_int_equal(f->v->ops->set(f->v, &r, "CB1:1:two", done, &a[2],
	    &e), 0);
	assert_int_equal(f->v->ops->get(f->v, &r, got, &a[3], &e), 0);
	assert_int_equal(f->v->ops->del(f->v, &r, done, &a[4], &e), 0);
	assert_int_equal(f->v->ops->get(f->v, &r, got, &a[5], &e), 0);
	f->returned = true;
	for (i = 0; i < 6; i++)
		assert_int_equal(a[i].called, 0);
	wait_for(f, &a[5], 1);
	for (i = 0; i < 6; i++) {
		assert_int_equal(a[i].called, 1);
		assert_int_equal(a[i].order, i);
	}
	assert_int_equal(a[0].rc, 0);
	assert_string_equal(a[1].sealed, "CB1:1:one");
	assert_string_equal(a[3].sealed, "CB1:1:two");
	assert_int_equal(a[4].rc, 0);
	assert_int_equal(a[5].rc, -CB_ENOTFOUND);
}

/*
 * A session of its own that holds a lock on credvalues until
 * unlock_values() (or the teardown, when a test fails).
 */
static void
lock_values(struct fix *f, const char *mode)
{
	struct pgconn	*l = &f->lock;
	struct pgres	 r;
	char		 sql[128];

	pgserver_open(&f->loop, T_SCHEMA, l);
	pgserver_ok(&f->loop, l->pg, "BEGIN", &r);
	snprintf(sql, sizeof(sql), "LOCK TABLE credvalues IN %s MODE", mode);
	pgserver_ok(&f->loop, l->pg, sql, &r);
}

static void
unlock_values(struct fix *f)
{
	struct pgres	r;

	pgserver_ok(&f->loop, f->lock.pg, "COMMIT", &r);
	pgserver_close(&f->loop, &f->lock);
}

/* Run the loop until n statements wait for a lock on the server. */
static void
wait_lock_waiters(struct fix *f, const char *n)
{
	struct pgres	r;
	int		i;

	for (i = 0; i < 3000; i++) {
		if (strcmp(peek(f, "SELECT count(*) FROM pg_locks WHERE NOT "
		    "granted", &r), n) == 0)
			return;
		pgserver_run_until(&f->loop, &r.done, 1000, 10);
	}
	fail_msg("never %s statements waiting for a lock", n);
}

/*
 * A write's commit held on the server (credvalues locked in SHARE mode:
 * writes wait, reads go through): reads of other values are answered
 * meanwhile; a read of the held value waits and then sees the write.
 */
static void
test_values_pg_reads_of_other_values_are_answered_while_a_write_is_held(
    void **state)
{
	struct fix		*f = *state;
	struct values_ref	 held = uref(0, 0, 0), other = uref(0, 1, 0);
	const struct store_type	*t[T_NTYPES];
	/* Static: a failed test's teardown answers them still. */
	static struct answer	 a, s, g, o, st, acc;
	struct cb_error		 e;
	int			 i;

	assert_int_equal(r_set(f, held, "CB1:1:old", &a), 0);
	assert_int_equal(r_set(f, other, "CB1:1:other", &a), 0);
	lock_values(f, "SHARE");
	CALL(f, fresh(f, &s), f->v->ops->set(f->v, &held, "CB1:1:new", done,
	    &s, E));
	wait_lock_waiters(f, "1");
	/* Asked after the set: the overlapping get, then other values. */
	for (i = 0; i < T_NTYPES; i++)
		t[i] = &f->st[i];
	f->returned = false;
	fresh(f, &g);
	fresh(f, &o);
	fresh(f, &st);
	fresh(f, &acc);
	assert_int_equal(f->v->ops->get(f->v, &held, got, &g, &e), 0);
	assert_int_equal(f->v->ops->get(f->v, &other, got, &o, &e), 0);
	assert_int_equal(f->v->ops->status(f->v, users[1], t, T_NTYPES,
	    status_cb, &st, &e), 0);
	assert_int_equal(f->v->ops->list_accounts(f->v, types[1], 0,
	    accounts_listed, &acc, &e), 0);
	f->returned = true;
	wait_for(f, &o, 1);
	wait_for(f, &st, T_NTYPES);
	wait_for(f, &acc, 1);
	assert_int_equal(o.rc, 0);
	assert_string_equal(o.sealed, "CB1:1:other");
	assert_true(st.status[0] > 0);
	assert_int_equal(acc.rc, 0);
	/* All of that while the write and the read of its value wait. */
	assert_int_equal(s.called, 0);
	assert_int_equal(g.called, 0);
	unlock_values(f);
	wait_for(f, &g, 1);
	assert_int_equal(s.called, 1);
	assert_int_equal(s.rc, 0);
	assert_true(s.order < g.order);
	assert_int_equal(g.rc, 0);
	assert_string_equal(g.sealed, "CB1:1:new");
}

/*
 * A read held on the server (credvalues locked in ACCESS EXCLUSIVE mode):
 * a write of its value asked after it is not sent until the read is
 * answered, and the read gets the value from before the write; a write
 * of another value is sent at once.
 */
static void
test_values_pg_write_waits_for_a_read_of_its_value_asked_before_it(
    void **state)
{
	struct fix		*f = *state;
	struct values_ref	 ref = uref(1, 2, 0), other = uref(1, 3, 0);
	static struct answer	 a, g, s, w;
	uint64_t		 before;

	assert_int_equal(r_set(f, ref, "CB1:1:before", &a), 0);
	lock_values(f, "ACCESS EXCLUSIVE");
	CALL(f, fresh(f, &g), f->v->ops->get(f->v, &ref, got, &g, E));
	wait_lock_waiters(f, "1");
	before = values_pg_writes_asked(f->v);
	CALL(f, fresh(f, &w), f->v->ops->set(f->v, &other, "CB1:1:else",
	    done, &w, E));
	assert_true(values_pg_writes_sent(f->v, before + 1));
	CALL(f, fresh(f, &s), f->v->ops->set(f->v, &ref, "CB1:1:after", done,
	    &s, E));
	assert_int_equal(values_pg_writes_asked(f->v), before + 2);
	/* The set of another value is on the server; this one is not. */
	assert_false(values_pg_writes_sent(f->v, before + 2));
	wait_lock_waiters(f, "2");
	assert_false(values_pg_writes_sent(f->v, before + 2));
	unlock_values(f);
	wait_for(f, &s, 1);
	assert_int_equal(g.called, 1);
	assert_true(g.order < s.order);
	assert_string_equal(g.sealed, "CB1:1:before");
	assert_int_equal(s.rc, 0);
	assert_true(values_pg_writes_sent(f->v, before + 2));
	wait_for(f, &w, 1);
	assert_int_equal(w.rc, 0);
	assert_int_equal(r_get(f, ref, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:after");
}

/* A sealed value never shows in an error, even one about its row. */
static void
test_values_pg_errors_never_quote_the_sealed_value(void **state)
{
	struct fix		*f = *state;
	struct values_ref	 r = uref(0, 0, 0);
	struct answer		 a;
	struct pgres		 q;
	const char		*canary = "CB1:1:CANARY-4b1d2e7f";

	/* A type that does not exist (any more). */
	r.type_uuid = "0dd0d0d0-0000-4000-8000-000000000004";
	assert_int_equal(r_set(f, r, canary, &a), -CB_ENOTFOUND);
	assert_string_equal(a.msg, "credential type '0dd0d0d0-0000-4000-8000-"
	    "000000000004' not found");
	/* A table that refuses the row, with the row in its detail. */
	peek(f, "ALTER TABLE credvalues ADD CONSTRAINT short CHECK "
	    "(length(sealed) < 10)", &q);
	assert_int_equal(r_set(f, uref(0, 0, 0), canary, &a), -CB_EINTERNAL);
	assert_non_null(strstr(a.msg, "cannot set value: PostgreSQL: "));
	assert_non_null(strstr(a.msg, "23514"));
	assert_null(strstr(a.msg, "CANARY"));
	assert_int_equal(r_set(f, aref(0, "alpha"), canary, &a), 0);
}

static int
reseal_one(void *arg, const char *context, const char *sealed, char **out,
    struct cb_error *err)
{
	int	*calls = arg;
	char	 buf[512];

	(*calls)++;
	*out = NULL;
	if (strncmp(sealed, "new:", 4) == 0)
		return 0;		/* under the new key already */
	if (strncmp(sealed, "old:", 4) != 0)
		return cb_error_set(err, CB_EINTERNAL, "cannot open");
	/* The context travels with the value. */
	snprintf(buf, sizeof(buf), "new:%s|%s", sealed + 4, context);
	if ((*out = strdup(buf)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	return 0;
}

static char *
checkpoint(void *arg, const struct values_cursor *next, int64_t n, bool last)
{
	char	*doc;

	if ((doc = malloc(128)) != NULL)
		snprintf(doc, 128, "%s/%s/%lld/%s", next->type_uuid,
		    next->user_uuid, (long long)n, last ? "last" : "more");
	return doc;
}

static void
release(char *doc)
{
	free(doc);
}

/* Run re-seal batches until finished; the values walked. */
static int64_t
reseal_all(struct fix *f, struct values_reseal *rs, int *batches)
{
	struct answer	 a;
	int64_t		 n = 0;

	*batches = 0;
	do {
		CALL(f, fresh(f, &a), f->v->ops->reseal(f->v, rs, resealed,
		    &a, E));
		wait_for(f, &a, 1);
		if (a.rc != 0)
			fail_msg("reseal: %s", a.msg);
		n += a.n;
		(*batches)++;
	} while (!a.finished);
	return n;
}

static void
test_values_pg_reseal_rewrites_every_value_once(void **state)
{
	struct fix		*f = *state;
	struct values_reseal	 rs;
	struct answer		 a;
	struct pgres		 r;
	char			 want[512], ctx[VALUES_CONTEXT_MAX];
	int			 calls = 0, batches;
	int64_t			 n;

	/* 300 users' values: more than one batch. */
	peek(f, "INSERT INTO credvalues SELECT '0aa0a0a0-0000-4000-8000-"
	    "000000000001', md5(i::text)::uuid, 'old:' || i, 1 FROM "
	    "generate_series(1, 300) AS i", &r);
	assert_int_equal(r_set(f, uref(1, 0, 0), "old:u", &a), 0);
	assert_int_equal(r_set(f, uref(1, 1, 0), "new:already", &a), 0);
	assert_int_equal(r_set(f, aref(0, "alpha"), "old:acc", &a), 0);
	memset(&rs, 0, sizeof(rs));
	rs.reseal = reseal_one;
	rs.checkpoint = checkpoint;
	rs.release = release;
	rs.setting = "rotation";
	rs.arg = &calls;
	n = reseal_all(f, &rs, &batches);
	assert_int_equal(n, 303);
	assert_int_equal(calls, 303);
	assert_int_equal(batches, 2);
	assert_string_equal(peek(f, "SELECT count(*) FROM credvalues WHERE "
	    "sealed LIKE 'new:%'", &r), "302");
	/* Each under its own context. */
	assert_int_equal(r_get(f, uref(1, 0, 0), &a), 0);
	sealctx_value(ctx, sizeof(ctx), types[1], users[0], 0);
	snprintf(want, sizeof(want), "new:u|%s", ctx);
	assert_string_equal(a.sealed, want);
	assert_int_equal(r_get(f, uref(1, 1, 0), &a), 0);
	assert_string_equal(a.sealed, "new:already");
	assert_int_equal(r_get(f, aref(0, "alpha"), &a), 0);
	sealctx_account(ctx, sizeof(ctx), types[0], "alpha", 0);
	snprintf(want, sizeof(want), "new:acc|%s", ctx);
	assert_string_equal(a.sealed, want);
	/* The checkpoint committed with the last batch, and the cursor. */
	snprintf(want, sizeof(want), "%s/%s/47/last", rs.cursor.type_uuid,
	    rs.cursor.user_uuid);
	assert_string_equal(peek(f, "SELECT value FROM settings WHERE key = "
	    "'rotation'", &r), want);
	assert_string_equal(rs.cursor.type_uuid, types[1]);
	assert_string_equal(rs.cursor.user_uuid, users[0]);
	/* Again from the start: everything is walked, nothing changes. */
	memset(&rs.cursor, 0, sizeof(rs.cursor));
	calls = 0;
	assert_int_equal(reseal_all(f, &rs, &batches), 303);
	assert_string_equal(peek(f, "SELECT count(*) FROM credvalues WHERE "
	    "sealed LIKE 'new:%|%|%'", &r), "0");
}

/*
 * A value written while its batch is being re-sealed keeps what was
 * written: the batch never puts the old value back, sealed again.
 */
static void
test_values_pg_reseal_leaves_values_written_meanwhile(void **state)
{
	struct fix		*f = *state;
	struct values_reseal	 rs;
	struct values_ref	 r0 = uref(0, 0, 0), r1 = uref(0, 1, 0);
	struct answer		 a, s0, s1;
	struct cb_error		 e;
	int			 calls = 0;

	assert_int_equal(r_set(f, r0, "old:zero", &a), 0);
	assert_int_equal(r_set(f, r1, "old:one", &a), 0);
	memset(&rs, 0, sizeof(rs));
	rs.reseal = reseal_one;
	rs.arg = &calls;
	/* The batch reads first; the writes reach the server before its
	 * re-sealed rows do. */
	f->returned = false;
	fresh(f, &a);
	fresh(f, &s0);
	fresh(f, &s1);
	assert_int_equal(f->v->ops->reseal(f->v, &rs, resealed, &a, &e), 0);
	assert_int_equal(f->v->ops->set(f->v, &r0, "CB1:1:fresh", done, &s0,
	    &e), 0);
	assert_int_equal(f->v->ops->del(f->v, &r1, done, &s1, &e), 0);
	f->returned = true;
	wait_for(f, &a, 1);
	assert_int_equal(a.rc, 0);
	assert_true(a.finished);
	assert_int_equal(s0.rc, 0);
	assert_int_equal(s1.rc, 0);
	assert_int_equal(r_get(f, r0, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:fresh");
	assert_int_equal(r_get(f, r1, &a), -CB_ENOTFOUND);
}

/* A re-seal that cannot open a value fails and moves nothing. */
static void
test_values_pg_reseal_failure_changes_nothing(void **state)
{
	struct fix		*f = *state;
	struct values_reseal	 rs;
	struct answer		 a;
	struct pgres		 r;
	int			 calls = 0;

	assert_int_equal(r_set(f, uref(0, 0, 0), "old:a", &a), 0);
	assert_int_equal(r_set(f, uref(0, 1, 0), "garbage", &a), 0);
	memset(&rs, 0, sizeof(rs));
	rs.reseal = reseal_one;
	rs.checkpoint = checkpoint;
	rs.release = release;
	rs.setting = "rotation";
	rs.arg = &calls;
	CALL(f, fresh(f, &a), f->v->ops->reseal(f->v, &rs, resealed, &a, E));
	wait_for(f, &a, 1);
	assert_int_equal(a.rc, -CB_EINTERNAL);
	assert_string_equal(a.msg, "cannot open");
	assert_string_equal(rs.cursor.type_uuid, "");
	assert_string_equal(peek(f, "SELECT count(*) FROM credvalues WHERE "
	    "sealed LIKE 'new:%'", &r), "0");
	assert_string_equal(peek(f, "SELECT count(*) FROM settings", &r), "0");
}

static void
pg_answer_cb(void *arg, int rc, PGresult *res, const struct cb_error *err)
{
	struct pgres	*r = arg;

	r->done++;
	r->rc = rc;
	snprintf(r->msg, sizeof(r->msg), "%s", rc != 0 ? err->msg : "");
}

/*
 * The server goes away while a call waits: it fails with unavailable,
 * naming the cause; calls made while it is down fail at once; once it is
 * back, calls work again (the prepared statements prepared again).
 */
static void
test_values_pg_server_going_away_gives_unavailable_then_recovers(
    void **state)
{
	struct fix	*f = *state;
	struct answer	 a, g;
	struct pgres	 r, sleep;
	struct cb_error	 e;
	struct values_ref ref = uref(0, 0, 0);
	char		 sql[128], pid[32];
	int		 down;

	assert_int_equal(r_set(f, ref, "CB1:1:before", &a), 0);
	snprintf(pid, sizeof(pid), "%s", pgserver_ok(&f->loop, f->r.pg,
	    "SELECT pg_backend_pid()", &r));
	/*
	 * A get waits behind a long statement on the reads' connection when
	 * its backend is ended.
	 */
	memset(&sleep, 0, sizeof(sleep));
	assert_int_equal(pg_query(f->r.pg, "SELECT pg_sleep(30)", 0, NULL,
	    NULL, NULL, pg_answer_cb, &sleep, &e), 0);
	CALL(f, fresh(f, &g), f->v->ops->get(f->v, &ref, got, &g, E));
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(%s)", pid);
	assert_string_equal(peek(f, sql, &r), "t");
	wait_for(f, &g, 1);
	assert_int_equal(g.rc, -CB_EUNAVAILABLE);
	/* libpq's words: the FATAL message, or the closed socket. */
	if (strncmp(g.msg, "cannot get value: ", 18) != 0 ||
	    (strstr(g.msg, "terminating connection due to administrator "
	    "command") == NULL && strstr(g.msg, "lost the connection to "
	    "PostgreSQL: server closed the connection") == NULL))
		fail_msg("unexpected: %s", g.msg);
	assert_null(strchr(g.msg, '\n'));
	assert_true(sleep.done == 1 && sleep.rc == -CB_EUNAVAILABLE);
	/* Back by itself, in a new session: prepared again. */
	assert_true(pgserver_run_until(&f->loop, &f->r.reconnected, 1,
	    20000));
	assert_int_equal(r_get(f, ref, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:before");
	assert_int_equal(r_set(f, ref, "CB1:1:after", &a), 0);

	/* The server stops: every call fails at once, naming the cause. */
	down = f->c.down;
	assert_true(pgserver_ctl("stop"));
	assert_true(pgserver_run_until(&f->loop, &f->c.down, down + 1,
	    20000));
	assert_true(pgserver_run_until(&f->loop, &f->r.down, 1, 20000));
	assert_false(f->v->ops->usable(f->v, &e));
	assert_int_equal(e.code, CB_EUNAVAILABLE);
	assert_non_null(strstr(e.msg, "not connected to PostgreSQL"));
	fresh(f, &a);
	cb_error_clear(&e);
	assert_int_equal(f->v->ops->set(f->v, &ref, "CB1:1:lost", done, &a,
	    &e), -CB_EUNAVAILABLE);
	assert_non_null(strstr(e.msg, "not connected to PostgreSQL: "));
	assert_int_equal(f->v->ops->clear(f->v, types[0], done, &a, &e),
	    -CB_EUNAVAILABLE);
	assert_true(pgserver_ctl("start"));
	assert_true(pgserver_run_until(&f->loop, &f->c.reconnected, 1,
	    20000));
	assert_true(pgserver_run_until(&f->loop, &f->r.reconnected, 2,
	    20000));
	assert_true(f->v->ops->usable(f->v, &e));
	assert_int_equal(a.called, 0);
	assert_int_equal(r_get(f, ref, &a), 0);
	assert_string_equal(a.sealed, "CB1:1:after");
	/* The peeking session went away too; it reconnects by itself. */
	assert_true(pgserver_run_until(&f->loop, &f->peek.reconnected, 1,
	    20000));
}

/*
 * Preparing the statements fails (a table is missing) after some were
 * prepared (PREPARE is not undone with its transaction): the call fails,
 * and once the table is back the statements are prepared again, under
 * names that the failed attempt cannot have taken already.
 */
static void
test_values_pg_failed_prepare_is_tried_again(void **state)
{
	struct fix	*f = *state;
	struct answer	 a;
	struct pgres	 r;

	peek(f, "ALTER TABLE credaccounts RENAME TO credaccounts_away", &r);
	assert_int_equal(r_set(f, uref(0, 0, 0), "CB1:1:lost", &a),
	    -CB_EINTERNAL);
	assert_string_equal(a.msg, "cannot set value: PostgreSQL: relation "
	    "\"credaccounts\" does not exist (42P01)");
	peek(f, "ALTER TABLE credaccounts_away RENAME TO credaccounts", &r);
	assert_int_equal(r_set(f, uref(0, 0, 0), "CB1:1:back", &a), 0);
	assert_int_equal(r_get(f, uref(0, 0, 0), &a), 0);
	assert_string_equal(a.sealed, "CB1:1:back");
	assert_int_equal(r_get(f, aref(0, "alpha"), &a), -CB_ENOTFOUND);
}

/*
 * Closing answers what waits for PostgreSQL, or for its turn, once, at
 * once: a write sent may have been committed, one still waiting not.
 */
static void
test_values_pg_close_answers_what_is_pending(void **state)
{
	struct fix		*f = *state;
	struct values_ref	 ref = uref(0, 0, 0), other = uref(0, 1, 0);
	struct answer		 g, s, w;
	struct cb_error		 e;

	f->returned = false;
	fresh(f, &g);
	fresh(f, &s);
	fresh(f, &w);
	assert_int_equal(f->v->ops->get(f->v, &ref, got, &g, &e), 0);
	assert_int_equal(f->v->ops->set(f->v, &other, "CB1:1:x", done, &s,
	    &e), 0);
	/* Waits for the get of its value, on the reads' connection. */
	assert_int_equal(f->v->ops->set(f->v, &ref, "CB1:1:y", done, &w,
	    &e), 0);
	assert_false(values_pg_writes_sent(f->v,
	    values_pg_writes_asked(f->v)));
	f->returned = true;
	f->v->ops->close(f->v);
	f->v = NULL;
	assert_int_equal(g.called, 1);
	assert_int_equal(g.rc, -CB_EUNAVAILABLE);
	assert_string_equal(g.msg, "the broker is shutting down");
	assert_int_equal(s.called, 1);
	assert_non_null(strstr(s.msg, "may have been committed"));
	assert_int_equal(w.called, 1);
	assert_int_equal(w.rc, -CB_EUNAVAILABLE);
	assert_string_equal(w.msg, "the broker is shutting down");
	/* PostgreSQL's answers come later, to nobody. */
	pgserver_close(&f->loop, &f->c);
	pgserver_close(&f->loop, &f->r);
	assert_int_equal(g.called, 1);
	assert_int_equal(s.called, 1);
	assert_int_equal(w.called, 1);
}

#define T(name)	cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_values_pg_get_of_unset_value_is_not_found),
		T(test_values_pg_set_then_get_returns_sealed_text),
		T(test_values_pg_write_is_committed_when_answered),
		T(test_values_pg_delete_removes_one_value),
		T(test_values_pg_list_users_in_uuid_order),
		T(test_values_pg_accounts_are_apart_and_listed_by_name),
		T(test_values_pg_clear_removes_users_and_accounts_values),
		T(test_values_pg_status_across_types),
		T(test_values_pg_generation_does_not_hide_values_as_in_sqlite),
		T(test_values_pg_pipelined_operations_keep_their_order),
		T(test_values_pg_reads_of_other_values_are_answered_while_a_write_is_held),
		T(test_values_pg_write_waits_for_a_read_of_its_value_asked_before_it),
		T(test_values_pg_errors_never_quote_the_sealed_value),
		T(test_values_pg_reseal_rewrites_every_value_once),
		T(test_values_pg_reseal_leaves_values_written_meanwhile),
		T(test_values_pg_reseal_failure_changes_nothing),
		T(test_values_pg_server_going_away_gives_unavailable_then_recovers),
		T(test_values_pg_failed_prepare_is_tried_again),
		T(test_values_pg_close_answers_what_is_pending),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

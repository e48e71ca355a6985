/*
 * test_writer: unit tests for the group-commit writer (storage/writer.c).
 *
 * The queue and the running of one group are tested without the thread
 * (writer_queue_*, writer_group_run on a connection of the test's own);
 * the thread itself only where the outcome does not depend on timing:
 * every job answered once, after its commit, and a clean stop.  Each
 * test gets a fresh database in its own mkdtemp() directory.
 *
 * The daemon's other writes (types, defaults, links, settings, keys) are
 * jobs of the same kind, which call the store's functions on the
 * writer's connection: a group holding them commits or takes them back
 * as a whole, the writer's type cache never keeps what was taken back,
 * the loop's type cache follows what the writer committed
 * (store_type_cache_sync), and the loop's connection, read-only once the
 * daemon runs (store_query_only), refuses any write.
 */
#include <sys/stat.h>

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <uv.h>

#include "cb_error.h"
#include "store.h"
#include "writer.h"

#define TYPE_A	"0f8fad5b-d9cb-469f-a165-70867728950e"
#define TYPE_B	"7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define USER_1	"886313e1-3b8a-5372-9b90-0c9aee199e5d"
#define USER_2	"a8098c1a-f86e-11da-bd1a-00112444be1e"
#define USER_3	"16fd2706-8baf-433b-82eb-8c7fada847da"
#define USER_4	"6fa459ea-ee8a-3ca4-894e-db77e160355e"
#define USER_5	"9a3c2f10-52c6-4d1b-8a0e-7f1a2b3c4d5e"

struct fixture {
	char		 dir[64];
	char		 path[128];
	struct store	*st;		/* the "loop's" connection */
};

struct tjob {
	struct writer_job	 wj;
	struct fixture		*f;
	const char		*type, *user, *value;
	bool			 fail_after;	/* write, then fail */
	int			 answers;
	int			 rc;
	char			 msg[CB_ERRMSG_MAX];
	bool			 visible;	/* seen by st when answered */
};

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static int
setup(void **state)
{
	struct fixture		*f;
	struct store_type	 t;
	struct cb_error		 err;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_writer.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/cb.db", f->dir);
	memset(&t, 0, sizeof(t));
	snprintf(t.uuid, sizeof(t.uuid), "%s", TYPE_A);
	snprintf(t.ident, sizeof(t.ident), "a");
	t.name = (char *)"A";
	t.description = (char *)"";
	t.storage = STORE_DB;
	cb_error_clear(&err);
	if (store_open(f->path, &f->st, &err) != 0 ||
	    store_type_create(f->st, &t, &err) != 0) {
		print_error("store: %s\n", err.msg);
		store_close(f->st);
		nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	store_close(f->st);
	nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static int
tjob_run(struct writer_job *wj, struct store *wst, struct cb_error *err)
{
	struct tjob	*j = (struct tjob *)wj;
	int		 rc;

	if ((rc = store_value_set(wst, j->type, j->user, j->value, 100,
	    err)) != 0)
		return rc;
	if (j->fail_after)
		return cb_error_set(err, CB_EBADREQ, "refused on purpose");
	return 0;
}

/* The value of (TYPE_A, user) as the fixture's connection sees it. */
static char *
value_of(struct fixture *f, const char *user)
{
	struct cb_error	 err;
	char		*sealed = NULL;

	if (store_value_get(f->st, TYPE_A, user, &sealed, NULL, &err) != 0)
		return NULL;
	return sealed;
}

static void
tjob_done(struct writer_job *wj, int rc, const struct cb_error *err)
{
	struct tjob	*j = (struct tjob *)wj;
	char		*v;

	j->answers++;
	j->rc = rc;
	if (err != NULL)
		snprintf(j->msg, sizeof(j->msg), "%s", err->msg);
	if ((v = value_of(j->f, j->user)) != NULL)
		j->visible = strcmp(v, j->value) == 0;
	free(v);
}

static void
tjob_init(struct tjob *j, struct fixture *f, const char *type,
    const char *user, const char *value)
{
	memset(j, 0, sizeof(*j));
	j->wj.run = tjob_run;
	j->wj.done = tjob_done;
	j->f = f;
	j->type = type;
	j->user = user;
	j->value = value;
}

/* Link jobs into a list, in order. */
static struct writer_job *
tjob_list(struct tjob *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		v[i].wj.next = i + 1 < n ? &v[i + 1].wj : NULL;
	return n > 0 ? &v[0].wj : NULL;
}

static void
test_queue_refuses_beyond_its_limit_and_keeps_order(void **state)
{
	struct writer_queue	 q;
	struct writer_job	 j[4], *got;
	struct cb_error		 err;
	size_t			 n, i;

	(void)state;
	memset(j, 0, sizeof(j));
	writer_queue_init(&q, 3);
	for (i = 0; i < 3; i++)
		assert_int_equal(writer_queue_push(&q, &j[i], &err), 0);
	cb_error_clear(&err);
	assert_int_equal(writer_queue_push(&q, &j[3], &err), -CB_EUNAVAILABLE);
	assert_non_null(strstr(err.msg, "too many writes waiting"));

	got = writer_queue_take(&q, &n);
	assert_int_equal(n, 3);
	for (i = 0; i < 3; i++, got = got->next)
		assert_ptr_equal(got, &j[i]);
	assert_null(got);
	assert_null(writer_queue_take(&q, &n));
	assert_int_equal(n, 0);
	assert_int_equal(q.max, 3);
	/* Taken jobs no longer count against the limit. */
	assert_int_equal(writer_queue_push(&q, &j[3], &err), 0);
	assert_ptr_equal(writer_queue_take(&q, &n), &j[3]);
	assert_int_equal(n, 1);
}

static void
test_group_fails_a_bad_write_alone(void **state)
{
	struct fixture	*f = *state;
	struct store	*wst = NULL;
	struct tjob	 j[4];
	struct cb_error	 err;
	char		*v;
	size_t		 ok;

	assert_int_equal(store_open_writer(f->st, &wst, &err), 0);
	tjob_init(&j[0], f, TYPE_A, USER_1, "one");
	tjob_init(&j[1], f, TYPE_B, USER_2, "no such type");
	tjob_init(&j[2], f, TYPE_A, USER_3, "written then refused");
	j[2].fail_after = true;
	tjob_init(&j[3], f, TYPE_A, USER_4, "four");
	cb_error_clear(&err);
	assert_int_equal(writer_group_run(wst, tjob_list(j, 4), &ok, &err), 0);
	assert_int_equal(ok, 2);
	assert_int_equal(j[0].wj.rc, 0);
	assert_int_equal(j[1].wj.rc, -CB_ENOTFOUND);
	assert_int_equal(j[2].wj.rc, -CB_EBADREQ);
	assert_string_equal(j[2].wj.err.msg, "refused on purpose");
	assert_int_equal(j[3].wj.rc, 0);

	/* Committed, and seen by the other connection; the refusal undone. */
	assert_non_null(v = value_of(f, USER_1));
	assert_string_equal(v, "one");
	free(v);
	assert_non_null(v = value_of(f, USER_4));
	assert_string_equal(v, "four");
	free(v);
	assert_null(value_of(f, USER_3));
	/* Nothing stays open on the writer's connection. */
	assert_false(store_batch_open(wst));
	store_close(wst);
}

static void
test_group_fails_every_write_when_the_lock_is_held(void **state)
{
	struct fixture	*f = *state;
	struct store	*wst = NULL;
	struct tjob	 j[2];
	struct cb_error	 err;
	sqlite3		*other = NULL;
	size_t		 ok = 99;

	assert_int_equal(store_open_writer(f->st, &wst, &err), 0);
	assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
	assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL,
	    NULL), SQLITE_OK);
	tjob_init(&j[0], f, TYPE_A, USER_1, "one");
	tjob_init(&j[1], f, TYPE_A, USER_2, "two");
	cb_error_clear(&err);
	assert_int_equal(writer_group_run(wst, tjob_list(j, 2), &ok, &err),
	    -CB_EUNAVAILABLE);
	assert_int_equal(ok, 0);
	assert_int_equal(j[0].wj.rc, -CB_EUNAVAILABLE);
	assert_int_equal(j[1].wj.rc, -CB_EUNAVAILABLE);
	assert_non_null(strstr(j[1].wj.err.msg, "not made"));
	assert_non_null(strstr(j[1].wj.err.msg, "locked"));
	sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(other);
	assert_null(value_of(f, USER_1));

	/* The lock gone, the same connection commits again. */
	assert_int_equal(writer_group_run(wst, tjob_list(j, 2), &ok, &err), 0);
	assert_int_equal(ok, 2);
	store_close(wst);
}

static void
test_answers_come_after_the_commit_and_are_seen(void **state)
{
	struct fixture		*f = *state;
	struct writer		*w = NULL;
	struct writer_stats	 ws;
	struct tjob		 j[5];
	static const char *const users[] = { USER_1, USER_2, USER_3, USER_4,
	    USER_5 };
	struct cb_error		 err;
	uv_loop_t		 loop;
	size_t			 i;
	int			 answered;
	char			*v;

	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(writer_start(&loop, f->st, &w, &err), 0);
	/* The loop's connection holds a read snapshot, as between calls. */
	assert_null(value_of(f, USER_1));
	for (i = 0; i < 5; i++) {
		tjob_init(&j[i], f, TYPE_A, users[i], users[i]);
		assert_int_equal(writer_submit(w, &j[i].wj, &err), 0);
	}
	do {
		uv_run(&loop, UV_RUN_ONCE);
		for (answered = 0, i = 0; i < 5; i++)
			answered += j[i].answers;
	} while (answered < 5);
	for (i = 0; i < 5; i++) {
		assert_int_equal(j[i].answers, 1);
		assert_int_equal(j[i].rc, 0);
		assert_true(j[i].visible);
	}
	writer_get_stats(w, &ws);
	assert_int_equal(ws.committed, 5);
	assert_true(ws.commits >= 1 && ws.commits <= 5);
	assert_true(ws.largest >= 1 && ws.largest <= 5);
	assert_int_equal(ws.failed, 0);
	assert_int_equal(ws.waiting, 0);
	assert_int_equal(ws.in_flight, 0);

	writer_stop(w);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	/* The loop's connection writes alone again, and reads what was. */
	assert_non_null(v = value_of(f, USER_5));
	assert_string_equal(v, USER_5);
	free(v);
}

static void
test_stop_commits_and_answers_what_is_queued(void **state)
{
	struct fixture	*f = *state;
	struct writer	*w = NULL;
	struct tjob	 j[3], late;
	static const char *const users[] = { USER_1, USER_2, USER_3 };
	struct cb_error	 err;
	uv_loop_t	 loop;
	size_t		 i;

	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(writer_start(&loop, f->st, &w, &err), 0);
	for (i = 0; i < 3; i++) {
		tjob_init(&j[i], f, TYPE_A, users[i], "v");
		assert_int_equal(writer_submit(w, &j[i].wj, &err), 0);
	}
	tjob_init(&late, f, TYPE_B, USER_4, "fails alone");
	assert_int_equal(writer_submit(w, &late.wj, &err), 0);
	writer_stop(w);		/* without the loop ever running */
	for (i = 0; i < 3; i++) {
		assert_int_equal(j[i].answers, 1);
		assert_int_equal(j[i].rc, 0);
		assert_true(j[i].visible);
	}
	assert_int_equal(late.answers, 1);
	assert_int_equal(late.rc, -CB_ENOTFOUND);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/*
 * A metadata job: the daemon's kind, calling one or more store functions
 * on the writer's connection (mjob_fn), as daemon/rpc-type.c does.
 */
struct mjob {
	struct writer_job	 wj;
	int			(*fn)(struct mjob *, struct store *,
				    struct cb_error *);
	struct store_type	 t;
	const char		*account;
	bool			 fail_after;
	int64_t			 removed;
};

static int
mjob_run(struct writer_job *wj, struct store *wst, struct cb_error *err)
{
	struct mjob	*j = (struct mjob *)wj;
	int		 rc;

	if ((rc = j->fn(j, wst, err)) != 0)
		return rc;
	if (j->fail_after)
		return cb_error_set(err, CB_EBADREQ, "refused on purpose");
	return 0;
}

/* type.create */
static int
mjob_create(struct mjob *j, struct store *wst, struct cb_error *err)
{
	return store_type_create(wst, &j->t, err);
}

/* type.update with a default account, in one job (one transaction). */
static int
mjob_update(struct mjob *j, struct store *wst, struct cb_error *err)
{
	int	rc;

	if ((rc = store_type_update_count(wst, &j->t, &j->removed,
	    err)) != 0)
		return rc;
	if (j->account == NULL)
		return 0;
	return store_type_set_default(wst, j->t.uuid, j->account,
	    "sealed-name", err);
}

static int
mjob_delete(struct mjob *j, struct store *wst, struct cb_error *err)
{
	return store_type_delete(wst, j->t.uuid, err);
}

static int
mjob_link(struct mjob *j, struct store *wst, struct cb_error *err)
{
	(void)j;
	return store_link_set(wst, TYPE_A, USER_1, "shared", "sealed-link",
	    200, err);
}

static int
mjob_setting(struct mjob *j, struct store *wst, struct cb_error *err)
{
	(void)j;
	return store_setting_set(wst, "vault", "{\"enabled\":false}", err);
}

static int
mjob_keypair(struct mjob *j, struct store *wst, struct cb_error *err)
{
	(void)j;
	return store_keypair_add(wst, "signer", 1, 2048, "sealed-key", 300,
	    err);
}

static void
mjob_init(struct mjob *j, int (*fn)(struct mjob *, struct store *,
    struct cb_error *), const char *uuid, const char *ident,
    const char *name, int storage)
{
	memset(j, 0, sizeof(*j));
	j->wj.run = mjob_run;
	j->fn = fn;
	snprintf(j->t.uuid, sizeof(j->t.uuid), "%s", uuid);
	snprintf(j->t.ident, sizeof(j->t.ident), "%s", ident);
	j->t.name = (char *)name;
	j->t.description = (char *)"";
	j->t.storage = storage;
	j->t.created_at = j->t.updated_at = 50;
}

static void
mjob_list(struct mjob *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		v[i].wj.next = i + 1 < n ? &v[i + 1].wj : NULL;
}

static void
test_query_only_connection_refuses_every_write(void **state)
{
	struct fixture		*f = *state;
	struct store		*wst = NULL;
	struct store_type	 t;
	struct mjob		 j;
	struct cb_error		 err;
	char			*v = NULL;
	size_t			 ok;

	assert_int_equal(store_query_only(f->st, true, &err), 0);
	/* Every kind of write fails, and says why. */
	mjob_init(&j, mjob_create, TYPE_B, "b", "B", STORE_DB);
	cb_error_clear(&err);
	assert_true(store_type_create(f->st, &j.t, &err) < 0);
	assert_non_null(strstr(err.msg, "readonly"));
	assert_true(store_setting_set(f->st, "k", "v", &err) < 0);
	assert_true(store_value_set(f->st, TYPE_A, USER_1, "s", 1, &err) < 0);
	assert_true(store_link_set(f->st, TYPE_A, USER_1, "shared", "s", 1,
	    &err) < 0);
	assert_true(store_keypair_add(f->st, "k1", 1, 2048, "s", 1, &err) <
	    0);
	assert_true(store_type_delete(f->st, TYPE_A, &err) < 0);
	/* Nothing was written; reads still work. */
	assert_int_equal(store_type_get(f->st, "b", &t, &err), -CB_ENOTFOUND);
	assert_int_equal(store_type_get(f->st, "a", &t, &err), 0);
	store_type_free(&t);
	assert_int_equal(store_setting_get(f->st, "k", &v, &err), 0);
	assert_null(v);

	/* The writer's connection writes, and the loop's reads it. */
	assert_int_equal(store_open_writer(f->st, &wst, &err), 0);
	j.wj.next = NULL;
	assert_int_equal(writer_group_run(wst, &j.wj, &ok, &err), 0);
	assert_int_equal(ok, 1);
	assert_int_equal(j.wj.rc, 0);
	store_type_cache_sync(f->st, TYPE_B);
	assert_int_equal(store_type_get(f->st, "b", &t, &err), 0);
	store_type_free(&t);
	store_close(wst);

	/* Off again: the connection writes. */
	assert_int_equal(store_query_only(f->st, false, &err), 0);
	assert_int_equal(store_setting_set(f->st, "k", "v", &err), 0);
}

static void
test_metadata_jobs_commit_together_or_fail_alone(void **state)
{
	struct fixture		*f = *state;
	struct store		*wst = NULL;
	struct store_type	 t;
	struct store_link	 l;
	struct store_keyset	 ks;
	struct mjob		 j[5];
	struct cb_error		 err;
	char			*v = NULL;
	size_t			 ok;

	assert_int_equal(store_query_only(f->st, true, &err), 0);
	assert_int_equal(store_open_writer(f->st, &wst, &err), 0);
	mjob_init(&j[0], mjob_create, TYPE_B, "b", "B", STORE_DB);
	mjob_init(&j[1], mjob_link, TYPE_A, "a", "A", STORE_DB);
	/* A taken ident fails that job alone. */
	mjob_init(&j[2], mjob_create, USER_5, "a", "again", STORE_DB);
	mjob_init(&j[3], mjob_setting, TYPE_A, "a", "A", STORE_DB);
	mjob_init(&j[4], mjob_keypair, TYPE_A, "a", "A", STORE_DB);
	mjob_list(j, 5);
	assert_int_equal(writer_group_run(wst, &j[0].wj, &ok, &err), 0);
	assert_int_equal(ok, 4);
	assert_int_equal(j[2].wj.rc, -CB_ECONFLICT);
	assert_non_null(strstr(j[2].wj.err.msg, "already exists"));

	store_type_cache_sync(f->st, TYPE_B);
	assert_int_equal(store_type_get(f->st, TYPE_B, &t, &err), 0);
	assert_string_equal(t.name, "B");
	store_type_free(&t);
	assert_int_equal(store_type_get(f->st, USER_5, &t, &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_link_get(f->st, TYPE_A, USER_1, &l, &err), 0);
	assert_string_equal(l.account, "shared");
	store_link_free(&l);
	assert_int_equal(store_setting_get(f->st, "vault", &v, &err), 0);
	assert_string_equal(v, "{\"enabled\":false}");
	free(v);
	assert_int_equal(store_key_get(f->st, STORE_KEYPAIR, "signer", &ks,
	    &err), 0);
	assert_int_equal(ks.nversions, 1);
	store_keyset_free(&ks);
	store_close(wst);
}

static void
test_taken_back_type_writes_leave_no_trace_in_the_caches(void **state)
{
	struct fixture		*f = *state;
	struct store		*wst = NULL;
	struct store_type	 t;
	struct mjob		 j[2];
	struct cb_error		 err;
	size_t			 ok;
	uint64_t		 loads;

	assert_int_equal(store_open_writer(f->st, &wst, &err), 0);
	/* Both caches loaded. */
	assert_int_equal(store_type_get(wst, "a", &t, &err), 0);
	store_type_free(&t);
	assert_int_equal(store_type_get(f->st, "a", &t, &err), 0);
	store_type_free(&t);
	loads = store_type_cache_loads(f->st);

	/*
	 * An update that moves the storage and sets a default, then fails
	 * in the same job: the whole job is taken back, and so is what
	 * the writer's cache had taken from it.
	 */
	mjob_init(&j[0], mjob_update, TYPE_A, "a", "renamed", STORE_VAULT);
	j[0].account = "shared";
	j[0].fail_after = true;
	j[0].wj.next = NULL;
	assert_int_equal(writer_group_run(wst, &j[0].wj, &ok, &err), 0);
	assert_int_equal(ok, 0);
	assert_int_equal(store_type_get(wst, "a", &t, &err), 0);
	assert_string_equal(t.name, "A");
	assert_int_equal(t.storage, STORE_DB);
	assert_int_equal(t.generation, 0);
	assert_string_equal(t.default_account, "");
	store_type_free(&t);

	/* The same update, committed: the loop's cache follows in place. */
	j[0].fail_after = false;
	assert_int_equal(writer_group_run(wst, &j[0].wj, &ok, &err), 0);
	assert_int_equal(ok, 1);
	store_type_cache_sync(f->st, TYPE_A);
	assert_int_equal(store_type_get(f->st, "a", &t, &err), 0);
	assert_string_equal(t.name, "renamed");
	assert_int_equal(t.storage, STORE_VAULT);
	assert_int_equal(t.generation, 1);
	assert_string_equal(t.default_account, "shared");
	assert_string_equal(t.default_sealed, "sealed-name");
	store_type_free(&t);
	assert_int_equal(store_type_cache_loads(f->st), loads);

	/* A delete reaches it too. */
	mjob_init(&j[1], mjob_delete, TYPE_A, "a", "A", STORE_DB);
	j[1].wj.next = NULL;
	assert_int_equal(writer_group_run(wst, &j[1].wj, &ok, &err), 0);
	assert_int_equal(ok, 1);
	assert_int_equal(store_type_get(f->st, "a", &t, &err), 0);
	store_type_free(&t);	/* not synced yet: still cached */
	store_type_cache_sync(f->st, TYPE_A);
	assert_int_equal(store_type_get(f->st, "a", &t, &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_type_cache_loads(f->st), loads);
	store_close(wst);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(
		    test_queue_refuses_beyond_its_limit_and_keeps_order),
		cmocka_unit_test_setup_teardown(
		    test_group_fails_a_bad_write_alone, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_group_fails_every_write_when_the_lock_is_held, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_answers_come_after_the_commit_and_are_seen, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_stop_commits_and_answers_what_is_queued, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_query_only_connection_refuses_every_write, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_metadata_jobs_commit_together_or_fail_alone, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_taken_back_type_writes_leave_no_trace_in_the_caches,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

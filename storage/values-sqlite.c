/*
 * values-sqlite: the values of db-stored types, in the broker's SQLite
 * database (store.h).  Operations start in the order they were asked for,
 * on a later loop turn (values_defer).  Reads run there, on the loop's
 * connection; writes (set, delete, clear, and key rotation's re-sealed
 * batches) go to the writer's thread (writer.h), which commits them in
 * groups and answers each once it is durable.
 *
 * Order: an operation waits for the ones asked before it that touch the
 * same values (vsql_overlap) when either of them writes, so that a read
 * sees every write asked before it (a client that pipelines a set and a
 * get of the same value gets what it set) and a write is never passed by
 * a read asked before it.  Writes follow writes straight into the
 * writer's queue, which keeps their order.  Operations on other values
 * never wait for each other: a read of another value is served while a
 * commit is in flight.
 */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "store.h"
#include "values.h"
#include "writer.h"

#define VSQL_BATCH	256

struct vsql_job;
TAILQ_HEAD(vsql_jobs, vsql_job);

struct vsql {
	struct values		 base;
	struct store		*st;
	struct values_defer	 defer;
	struct writer		*writer;
	/*
	 * Operations that have reached their turn but wait (vsql_ready),
	 * and writes in the writer's hands, in the order asked.
	 */
	struct vsql_jobs	 order;
	size_t			 writes;	/* asked and not yet answered */
	bool			 closing;
};

union vsql_cb {
	values_get_fn	 get;
	values_done_fn	 done;
	values_list_fn	 list;
	values_accounts_fn accounts;
	values_status_fn status;
	values_reseal_fn reseal;
};

enum vsql_op { VSQL_GET, VSQL_SET, VSQL_DEL, VSQL_LIST, VSQL_CLEAR,
    VSQL_STATUS, VSQL_RESEAL, VSQL_ACCOUNTS };

struct vsql_job {
	struct values_job	 job;
	struct writer_job	 wj;		/* writes */
	TAILQ_ENTRY(vsql_job)	 entry;		/* in order */
	bool			 ordered;	/* in order */
	bool			 sent;		/* in the writer's hands */
	struct vsql		*v;
	int			 op;
	char			 type_uuid[STORE_UUID_LEN + 1];
	char			 user_uuid[STORE_UUID_LEN + 1];
	char			 account[STORE_IDENT_MAX + 1];	/* or "" */
	char			*sealed;	/* set */
	int64_t			 n;		/* set: updated_at; clear */
	const struct store_type	*const *types;	/* status */
	size_t			 ntypes;
	/* reseal: the batch to write, and where it leaves the cursor. */
	struct values_reseal	*rs;
	struct store_row	*upd;
	size_t			 nupd;
	struct store_accountrow	*arows;
	size_t			 narows;
	char			*doc;
	struct values_cursor	 next;
	bool			 last;
	union vsql_cb		 cb;
	void			*arg;
};

static void	vsql_run(struct values_job *, bool);
static void	vsql_written(struct writer_job *, int, const struct cb_error *);

static bool
vsql_usable(struct values *vv, struct cb_error *err)
{
	(void)vv;
	(void)err;
	return true;
}

static bool
vsql_writes(int op)
{
	return op == VSQL_SET || op == VSQL_DEL || op == VSQL_CLEAR ||
	    op == VSQL_RESEAL;
}

/* Reads, and re-sealing, which reads the rows it rewrites. */
static bool
vsql_reads(int op)
{
	return !vsql_writes(op) || op == VSQL_RESEAL;
}

/* Whether two operations may touch the same values (values_overlap). */
static bool
vsql_overlap(const struct vsql_job *a, const struct vsql_job *b)
{
	return values_overlap(a->type_uuid, a->user_uuid, a->account,
	    b->type_uuid, b->user_uuid, b->account);
}

/*
 * Whether j, in order, may start now: no earlier write it overlaps is
 * unsent, none is still in flight when j reads, and no earlier read it
 * overlaps still waits when j writes.
 */
static bool
vsql_ready(const struct vsql_job *j)
{
	const struct vsql_job	*k;

	for (k = TAILQ_FIRST(&j->v->order); k != NULL && k != j;
	    k = TAILQ_NEXT(k, entry)) {
		if (!vsql_overlap(k, j))
			continue;
		if (vsql_writes(k->op)) {
			if (!k->sent || vsql_reads(j->op))
				return false;
		} else if (vsql_writes(j->op))
			return false;
	}
	return true;
}

/* Copy s into dst (sz bytes), cut to fit, without stdio: once per call. */
static void
vsql_copy(char *dst, size_t sz, const char *s)
{
	size_t	n = strnlen(s, sz - 1);

	memcpy(dst, s, n);
	dst[n] = '\0';
}

/* Queue op; the strings are copied. */
static int
vsql_queue(struct vsql *v, int op, const char *type_uuid,
    const char *user_uuid, const char *sealed, union vsql_cb cb, void *arg,
    struct vsql_job **out, struct cb_error *err)
{
	struct vsql_job	*j;

	if (out != NULL)
		*out = NULL;
	if (vsql_writes(op) && v->writes >= WRITER_QUEUE_MAX)
		return cb_error_set(err, CB_EUNAVAILABLE, "too many writes "
		    "waiting (%zu) for the database; try again", v->writes);
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (sealed != NULL && (j->sealed = strdup(sealed)) == NULL)) {
		free(j);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	j->job.run = vsql_run;
	j->v = v;
	j->op = op;
	if (type_uuid != NULL)
		vsql_copy(j->type_uuid, sizeof(j->type_uuid), type_uuid);
	if (user_uuid != NULL)
		vsql_copy(j->user_uuid, sizeof(j->user_uuid), user_uuid);
	j->cb = cb;
	j->arg = arg;
	if (vsql_writes(op))
		v->writes++;
	if (out != NULL)
		*out = j;
	values_defer_push(&v->defer, &j->job);
	return 0;
}

/*
 * Queue an operation on one value: a user's, or an account's (the
 * account's name goes with the job; the queue itself copies the rest).
 */
static int
vsql_queue_ref(struct vsql *v, int op, const struct values_ref *ref,
    const char *sealed, union vsql_cb cb, void *arg, struct cb_error *err)
{
	struct vsql_job	*j = NULL;
	int		 rc;

	if (ref->account != NULL && strlen(ref->account) > STORE_IDENT_MAX)
		return cb_error_set(err, CB_EBADREQ, "invalid account name "
		    "(must match [a-z][a-z0-9_]{0,63})");
	if ((rc = vsql_queue(v, op, ref->type_uuid, ref->account != NULL ?
	    NULL : ref->user_uuid, sealed, cb, arg, &j, err)) != 0)
		return rc;
	if (ref->account != NULL)
		vsql_copy(j->account, sizeof(j->account), ref->account);
	return 0;
}

static int
vsql_get(struct values *vv, const struct values_ref *ref, values_get_fn fn,
    void *arg, struct cb_error *err)
{
	return vsql_queue_ref((struct vsql *)vv, VSQL_GET, ref, NULL,
	    (union vsql_cb){ .get = fn }, arg, err);
}

static int
vsql_set(struct values *vv, const struct values_ref *ref, const char *sealed,
    values_done_fn fn, void *arg, struct cb_error *err)
{
	return vsql_queue_ref((struct vsql *)vv, VSQL_SET, ref, sealed,
	    (union vsql_cb){ .done = fn }, arg, err);
}

static int
vsql_del(struct values *vv, const struct values_ref *ref, values_done_fn fn,
    void *arg, struct cb_error *err)
{
	return vsql_queue_ref((struct vsql *)vv, VSQL_DEL, ref, NULL,
	    (union vsql_cb){ .done = fn }, arg, err);
}

static int
vsql_list(struct values *vv, const char *type_uuid, values_list_fn fn,
    void *arg, struct cb_error *err)
{
	return vsql_queue((struct vsql *)vv, VSQL_LIST, type_uuid, NULL, NULL,
	    (union vsql_cb){ .list = fn }, arg, NULL, err);
}

/* The db is not generational: every account row is of the type's. */
static int
vsql_list_accounts(struct values *vv, const char *type_uuid,
    int64_t generation, values_accounts_fn fn, void *arg,
    struct cb_error *err)
{
	(void)generation;
	return vsql_queue((struct vsql *)vv, VSQL_ACCOUNTS, type_uuid, NULL,
	    NULL, (union vsql_cb){ .accounts = fn }, arg, NULL, err);
}

static int
vsql_clear(struct values *vv, const char *type_uuid, values_done_fn fn,
    void *arg, struct cb_error *err)
{
	return vsql_queue((struct vsql *)vv, VSQL_CLEAR, type_uuid, NULL, NULL,
	    (union vsql_cb){ .done = fn }, arg, NULL, err);
}

/* The types array must stay valid until the answers (the caller's). */
static int
vsql_status(struct values *vv, const char *user_uuid,
    const struct store_type *const *types, size_t n, values_status_fn fn,
    void *arg, struct cb_error *err)
{
	struct vsql_job	*j = NULL;
	int		 rc;

	if ((rc = vsql_queue((struct vsql *)vv, VSQL_STATUS, NULL, user_uuid,
	    NULL, (union vsql_cb){ .status = fn }, arg, &j, err)) != 0)
		return rc;
	j->types = types;
	j->ntypes = n;
	return 0;
}

static int
vsql_reseal(struct values *vv, struct values_reseal *rs, values_reseal_fn fn,
    void *arg, struct cb_error *err)
{
	struct vsql_job	*j = NULL;
	int		 rc;

	if ((rc = vsql_queue((struct vsql *)vv, VSQL_RESEAL, NULL, NULL, NULL,
	    (union vsql_cb){ .reseal = fn }, arg, &j, err)) != 0)
		return rc;
	j->rs = rs;
	return 0;
}

/* Compare a type uuid with a status row, for bsearch. */
static int
vsql_status_cmp(const void *k, const void *e)
{
	return strcmp(k, ((const struct store_status *)e)->type_uuid);
}

/* One user's values of the given types: one pass over the user's rows. */
static void
vsql_run_status(struct vsql_job *j)
{
	struct store_status	*rows = NULL, *r;
	struct cb_error		 err;
	size_t			 n = 0, i;
	int			 rc;

	cb_error_clear(&err);
	rc = store_value_list_user(j->v->st, j->user_uuid, &rows, &n, &err);
	for (i = 0; i < j->ntypes; i++) {
		if (rc != 0) {
			j->cb.status(j->arg, i, rc, 0, &err);
			continue;
		}
		r = n == 0 ? NULL : bsearch(j->types[i]->uuid, rows, n,
		    sizeof(*rows), vsql_status_cmp);
		j->cb.status(j->arg, i, 0, r != NULL ? r->updated_at : 0,
		    NULL);
	}
	free(rows);
}

/*
 * Re-seal the accounts' values, all of them (accounts are few next to
 * users' values): they go with the last batch of users' values, in its
 * transaction.  Rows under the new key already get a NULL sealed text
 * and are left as they are; *na counts the rows walked.
 */
static int
vsql_reseal_accounts(struct vsql_job *j, struct store_accountrow **rows,
    size_t *na, struct cb_error *err)
{
	struct values_reseal	*rs = j->rs;
	struct values_ref	 ref;
	char			 context[VALUES_CONTEXT_MAX], *out;
	size_t			 i;
	int			 rc;

	if ((rc = store_account_scan(j->v->st, rows, na, err)) != 0)
		return rc;
	for (i = 0; i < *na; i++) {
		memset(&ref, 0, sizeof(ref));
		ref.type_uuid = (*rows)[i].type_uuid;
		ref.account = (*rows)[i].name;
		values_context(&j->v->base, context, sizeof(context), &ref);
		if ((rc = rs->reseal(rs->arg, context, (*rows)[i].sealed, &out,
		    err)) != 0)
			return rc;
		free((*rows)[i].sealed);
		(*rows)[i].sealed = out;	/* NULL: leave */
	}
	return 0;
}

/*
 * One batch of re-sealing, read and sealed again here on the loop (the
 * writer's thread never sees a key): the rows that changed and the
 * checkpoint after them go to the writer, to commit together.  The last
 * batch of users' values carries the accounts' values too.
 */
static int
vsql_reseal_prepare(struct vsql_job *j, struct cb_error *err)
{
	struct values_reseal	*rs = j->rs;
	struct store_row	*rows = NULL;
	char			 context[VALUES_CONTEXT_MAX];
	struct values_ref	 ref;
	size_t			 n = 0, i;
	int			 rc;

	if ((rc = store_value_scan(j->v->st, rs->cursor.type_uuid,
	    rs->cursor.user_uuid, VSQL_BATCH, &rows, &n, err)) != 0)
		return rc;
	if ((j->upd = calloc(n + 1, sizeof(*j->upd))) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		memset(&ref, 0, sizeof(ref));
		ref.type_uuid = rows[i].type_uuid;
		ref.user_uuid = rows[i].user_uuid;
		ref.generation = 0;
		values_context(&j->v->base, context, sizeof(context), &ref);
		if ((rc = rs->reseal(rs->arg, context, rows[i].sealed,
		    &j->upd[j->nupd].sealed, err)) != 0)
			goto done;
		if (j->upd[j->nupd].sealed == NULL)
			continue;
		memcpy(j->upd[j->nupd].type_uuid, rows[i].type_uuid,
		    sizeof(j->upd[j->nupd].type_uuid));
		memcpy(j->upd[j->nupd].user_uuid, rows[i].user_uuid,
		    sizeof(j->upd[j->nupd].user_uuid));
		j->nupd++;
	}
	j->next = rs->cursor;
	if (n > 0) {
		memcpy(j->next.type_uuid, rows[n - 1].type_uuid,
		    sizeof(j->next.type_uuid));
		memcpy(j->next.user_uuid, rows[n - 1].user_uuid,
		    sizeof(j->next.user_uuid));
	}
	j->last = n < VSQL_BATCH;
	if (j->last && (rc = vsql_reseal_accounts(j, &j->arows, &j->narows,
	    err)) != 0)
		goto done;
	j->n = (int64_t)(n + j->narows);
	if (rs->checkpoint != NULL && (j->doc = rs->checkpoint(rs->arg,
	    &j->next, j->n, j->last)) == NULL)
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
done:
	store_rows_free(rows, n);
	return rc;
}

/* On the writer's thread: the write of one job, on its connection. */
static int
vsql_write(struct writer_job *wj, struct store *wst, struct cb_error *err)
{
	struct vsql_job	*j = (struct vsql_job *)((char *)wj -
			    offsetof(struct vsql_job, wj));

	switch (j->op) {
	case VSQL_SET:
		if (j->account[0] != '\0')
			return store_account_set(wst, j->type_uuid,
			    j->account, j->sealed, j->n, err);
		return store_value_set(wst, j->type_uuid, j->user_uuid,
		    j->sealed, j->n, err);
	case VSQL_DEL:
		if (j->account[0] != '\0')
			return store_account_delete(wst, j->type_uuid,
			    j->account, err);
		return store_value_delete(wst, j->type_uuid, j->user_uuid,
		    err);
	case VSQL_CLEAR:
		return store_value_clear(wst, j->type_uuid, &j->n, err);
	case VSQL_RESEAL:
		/* The rows and the cursor after them commit together. */
		return store_value_reseal_all(wst, j->upd, j->nupd, j->arows,
		    j->narows, j->doc != NULL ? j->rs->setting : NULL, j->doc,
		    err);
	default:
		return cb_error_set(err, CB_EINTERNAL, "unknown operation");
	}
}

static void
vsql_free(struct vsql_job *j)
{
	if (j->ordered)
		TAILQ_REMOVE(&j->v->order, j, entry);
	if (vsql_writes(j->op))
		j->v->writes--;
	if (j->doc != NULL)
		j->rs->release(j->doc);
	store_accountrows_free(j->arows, j->narows);
	store_rows_free(j->upd, j->nupd);
	free(j->sealed);
	free(j);
}

/* Answer j with rc (and for a write that worked, its n), then free it. */
static void
vsql_answer(struct vsql_job *j, int rc, const struct cb_error *e)
{
	struct cb_error	 err;
	size_t		 i;

	cb_error_clear(&err);
	if (e != NULL)
		err = *e;
	if (rc == -CB_ENOTFOUND && err.code == 0)
		cb_error_set(&err, CB_ENOTFOUND, "no value");
	switch (j->op) {
	case VSQL_GET:
		j->cb.get(j->arg, rc, NULL, 0, &err);
		break;
	case VSQL_SET:
	case VSQL_CLEAR:
		j->cb.done(j->arg, rc, rc == 0 ? j->n : 0, &err);
		break;
	case VSQL_DEL:
		j->cb.done(j->arg, rc, 0, &err);
		break;
	case VSQL_LIST:
		j->cb.list(j->arg, rc, NULL, 0, &err);
		break;
	case VSQL_STATUS:
		for (i = 0; i < j->ntypes; i++)
			j->cb.status(j->arg, i, rc, 0, &err);
		break;
	case VSQL_RESEAL:
		if (rc == 0)
			j->rs->cursor = j->next;
		j->cb.reseal(j->arg, rc, rc == 0 ? j->n : 0,
		    rc == 0 && j->last, &err);
		break;
	case VSQL_ACCOUNTS:
		j->cb.accounts(j->arg, rc, NULL, NULL, 0, &err);
		break;
	}
	vsql_free(j);
}

/* Run a read on the loop's connection, answer it and free it. */
static void
vsql_read(struct vsql_job *j)
{
	struct store	*st = j->v->st;
	struct cb_error	 err;
	char		*sealed = NULL, **users = NULL;
	int64_t		 n = 0, *updated = NULL;
	size_t		 nusers = 0, i;
	int		 rc;

	cb_error_clear(&err);
	switch (j->op) {
	case VSQL_GET:
		if (j->account[0] != '\0')
			rc = store_account_get(st, j->type_uuid, j->account,
			    &sealed, &n, &err);
		else
			rc = store_value_get(st, j->type_uuid, j->user_uuid,
			    &sealed, &n, &err);
		if (rc == 0)
			j->cb.get(j->arg, 0, sealed, n, &err);
		break;
	case VSQL_ACCOUNTS:
		rc = store_account_list(st, j->type_uuid, &users, &updated,
		    &nusers, &err);
		if (rc == 0)
			j->cb.accounts(j->arg, 0, users, updated, nusers,
			    &err);
		break;
	case VSQL_LIST:
		rc = store_value_list_type(st, j->type_uuid, &users, &nusers,
		    &err);
		if (rc == 0)
			j->cb.list(j->arg, 0, users, nusers, &err);
		break;
	case VSQL_STATUS:
		vsql_run_status(j);
		rc = 0;
		break;
	default:
		rc = cb_error_set(&err, CB_EINTERNAL, "unknown operation");
		break;
	}
	for (i = 0; i < nusers; i++)
		free(users[i]);
	free(users);
	free(updated);
	free(sealed);
	if (rc != 0)
		vsql_answer(j, rc, &err);
	else
		vsql_free(j);
}

/* Start j: a read runs now; a write goes to the writer. */
static void
vsql_start(struct vsql_job *j)
{
	struct cb_error	 err;
	int		 rc;

	if (!vsql_writes(j->op)) {
		vsql_read(j);
		return;
	}
	cb_error_clear(&err);
	if (j->op == VSQL_SET)
		j->n = (int64_t)time(NULL);
	if (j->op == VSQL_RESEAL && (rc = vsql_reseal_prepare(j, &err)) != 0)
		goto fail;
	j->wj.run = vsql_write;
	j->wj.done = vsql_written;
	j->sent = true;
	if ((rc = writer_submit(j->v->writer, &j->wj, &err)) == 0)
		return;
	j->sent = false;
fail:
	vsql_answer(j, rc, &err);
}

/* Start every waiting job that may start now, in order. */
static void
vsql_pump(struct vsql *v)
{
	struct vsql_job	*j, *next;

	for (j = TAILQ_FIRST(&v->order); j != NULL && !v->closing; j = next) {
		next = TAILQ_NEXT(j, entry);
		if (!j->sent && vsql_ready(j))
			vsql_start(j);
	}
}

/* On the loop: the group holding j's write has ended. */
static void
vsql_written(struct writer_job *wj, int rc, const struct cb_error *err)
{
	struct vsql_job	*j = (struct vsql_job *)((char *)wj -
			    offsetof(struct vsql_job, wj));
	struct vsql	*v = j->v;

	vsql_answer(j, rc, err);
	vsql_pump(v);
}

/* The operation's turn has come: start it, or wait in order. */
static void
vsql_run(struct values_job *job, bool cancelled)
{
	struct vsql_job	*j = (struct vsql_job *)job;
	struct vsql	*v = j->v;
	struct cb_error	 err;
	int		 rc;

	if (cancelled || v->closing) {
		cb_error_clear(&err);
		rc = cb_error_set(&err, CB_EUNAVAILABLE,
		    "the broker is shutting down");
		vsql_answer(j, rc, &err);
		return;
	}
	if (TAILQ_EMPTY(&v->order) && !vsql_writes(j->op)) {
		vsql_read(j);		/* nothing to wait for */
		return;
	}
	TAILQ_INSERT_TAIL(&v->order, j, entry);
	j->ordered = true;
	if (vsql_ready(j))
		vsql_start(j);
}

/*
 * Shutting down: the writer commits what it holds and answers it; what
 * still waits its turn fails.
 */
static void
vsql_close(struct values *vv)
{
	struct vsql	*v = (struct vsql *)vv;
	struct vsql_job	*j;
	struct cb_error	 err;
	int		 rc;

	v->closing = true;
	writer_stop(v->writer);
	v->writer = NULL;
	cb_error_clear(&err);
	rc = cb_error_set(&err, CB_EUNAVAILABLE,
	    "the broker is shutting down");
	while ((j = TAILQ_FIRST(&v->order)) != NULL)
		vsql_answer(j, rc, &err);
	values_defer_close(&v->defer);
	free(v);
}

/* The writer's counters (struct writer_stats), for the stats method. */
void
values_sqlite_stats(struct values *vv, struct writer_stats *out)
{
	struct vsql	*v = (struct vsql *)vv;

	memset(out, 0, sizeof(*out));
	if (v != NULL && v->writer != NULL)
		writer_get_stats(v->writer, out);
}

struct writer *
values_sqlite_writer(struct values *vv)
{
	struct vsql	*v = (struct vsql *)vv;

	return v->closing ? NULL : v->writer;
}

static const struct values_ops vsql_ops = {
	.name = "db",
	.where = "the database",
	.generational = false,
	.usable = vsql_usable,
	.get = vsql_get,
	.set = vsql_set,
	.del = vsql_del,
	.list_users = vsql_list,
	.list_accounts = vsql_list_accounts,
	.clear = vsql_clear,
	.status = vsql_status,
	.reseal = vsql_reseal,
	.close = vsql_close,
};

int
values_sqlite_new(uv_loop_t *loop, struct store *st, struct values **out,
    struct cb_error *err)
{
	struct vsql	*v;
	int		 rc;

	if ((v = calloc(1, sizeof(*v))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	v->base.ops = &vsql_ops;
	v->st = st;
	TAILQ_INIT(&v->order);
	if ((rc = values_defer_init(&v->defer, loop, err)) != 0) {
		free(v);
		return rc;
	}
	if ((rc = writer_start(loop, st, &v->writer, err)) != 0) {
		values_defer_close(&v->defer);
		free(v);
		return rc;
	}
	*out = &v->base;
	return 0;
}

/*
 * values-sqlite: the values of db-stored types, in the broker's SQLite
 * database (store.h).  SQLite answers at once; the answer is deferred to
 * the next loop turn (values_defer), and so is the work itself, so that
 * operations run in the order they were asked for.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "store.h"
#include "values.h"

#define VSQL_BATCH	256

struct vsql {
	struct values		 base;
	struct store		*st;
	struct values_defer	 defer;
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
	struct vsql		*v;
	int			 op;
	char			 type_uuid[STORE_UUID_LEN + 1];
	char			 user_uuid[STORE_UUID_LEN + 1];
	char			 account[STORE_IDENT_MAX + 1];	/* or "" */
	char			*sealed;	/* set */
	const struct store_type	*const *types;	/* status */
	size_t			 ntypes;
	struct values_reseal	*rs;
	union vsql_cb		 cb;
	void			*arg;
};

static void	vsql_run(struct values_job *, bool);

static bool
vsql_usable(struct values *vv, struct cb_error *err)
{
	(void)vv;
	(void)err;
	return true;
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
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (sealed != NULL && (j->sealed = strdup(sealed)) == NULL)) {
		free(j);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	j->job.run = vsql_run;
	j->v = v;
	j->op = op;
	if (type_uuid != NULL)
		snprintf(j->type_uuid, sizeof(j->type_uuid), "%s", type_uuid);
	if (user_uuid != NULL)
		snprintf(j->user_uuid, sizeof(j->user_uuid), "%s", user_uuid);
	j->cb = cb;
	j->arg = arg;
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
		snprintf(j->account, sizeof(j->account), "%s", ref->account);
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
 * One batch of re-sealing, committed with the checkpoint; the last batch
 * of users' values carries the accounts' values too.
 */
static int
vsql_run_reseal(struct vsql_job *j, int64_t *walked, bool *last,
    struct cb_error *err)
{
	struct values_reseal	*rs = j->rs;
	struct store_row	*rows = NULL, *upd = NULL;
	struct store_accountrow	*arows = NULL;
	struct values_cursor	 next;
	char			 context[VALUES_CONTEXT_MAX], *doc = NULL;
	struct values_ref	 ref;
	size_t			 n = 0, i, m = 0, na = 0;
	int			 rc;

	if ((rc = store_value_scan(j->v->st, rs->cursor.type_uuid,
	    rs->cursor.user_uuid, VSQL_BATCH, &rows, &n, err)) != 0)
		return rc;
	if ((upd = calloc(n + 1, sizeof(*upd))) == NULL) {
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
		    &upd[m].sealed, err)) != 0)
			goto done;
		if (upd[m].sealed == NULL)
			continue;
		memcpy(upd[m].type_uuid, rows[i].type_uuid,
		    sizeof(upd[m].type_uuid));
		memcpy(upd[m].user_uuid, rows[i].user_uuid,
		    sizeof(upd[m].user_uuid));
		m++;
	}
	next = rs->cursor;
	if (n > 0) {
		memcpy(next.type_uuid, rows[n - 1].type_uuid,
		    sizeof(next.type_uuid));
		memcpy(next.user_uuid, rows[n - 1].user_uuid,
		    sizeof(next.user_uuid));
	}
	*last = n < VSQL_BATCH;
	if (*last && (rc = vsql_reseal_accounts(j, &arows, &na, err)) != 0)
		goto done;
	*walked = (int64_t)(n + na);
	if (rs->checkpoint != NULL && (doc = rs->checkpoint(rs->arg, &next,
	    *walked, *last)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto done;
	}
	/* The rows and the cursor after them commit together. */
	if ((rc = store_value_reseal_all(j->v->st, upd, m, arows, na,
	    doc != NULL ? rs->setting : NULL, doc, err)) == 0)
		rs->cursor = next;
done:
	if (doc != NULL)
		rs->release(doc);
	store_accountrows_free(arows, na);
	store_rows_free(upd, m);
	store_rows_free(rows, n);
	return rc;
}

static void
vsql_run(struct values_job *job, bool cancelled)
{
	struct vsql_job	*j = (struct vsql_job *)job;
	struct store	*st = j->v->st;
	struct cb_error	 err;
	char		*sealed = NULL, **users = NULL;
	int64_t		 n = 0, *updated = NULL;
	size_t		 nusers = 0, i;
	bool		 last = false;
	int		 rc;

	cb_error_clear(&err);
	if (cancelled) {
		rc = cb_error_set(&err, CB_EUNAVAILABLE,
		    "the broker is shutting down");
		if (j->op == VSQL_STATUS) {
			for (i = 0; i < j->ntypes; i++)
				j->cb.status(j->arg, i, rc, 0, &err);
			goto done;
		}
		goto answer;
	}
	switch (j->op) {
	case VSQL_GET:
		if (j->account[0] != '\0')
			rc = store_account_get(st, j->type_uuid, j->account,
			    &sealed, &n, &err);
		else
			rc = store_value_get(st, j->type_uuid, j->user_uuid,
			    &sealed, &n, &err);
		break;
	case VSQL_SET:
		n = (int64_t)time(NULL);
		if (j->account[0] != '\0')
			rc = store_account_set(st, j->type_uuid, j->account,
			    j->sealed, n, &err);
		else
			rc = store_value_set(st, j->type_uuid, j->user_uuid,
			    j->sealed, n, &err);
		break;
	case VSQL_DEL:
		if (j->account[0] != '\0')
			rc = store_account_delete(st, j->type_uuid,
			    j->account, &err);
		else
			rc = store_value_delete(st, j->type_uuid,
			    j->user_uuid, &err);
		break;
	case VSQL_ACCOUNTS:
		rc = store_account_list(st, j->type_uuid, &users, &updated,
		    &nusers, &err);
		break;
	case VSQL_CLEAR:
		rc = store_value_clear(st, j->type_uuid, &n, &err);
		break;
	case VSQL_LIST:
		rc = store_value_list_type(st, j->type_uuid, &users, &nusers,
		    &err);
		break;
	case VSQL_STATUS:
		vsql_run_status(j);
		goto done;
	case VSQL_RESEAL:
		rc = vsql_run_reseal(j, &n, &last, &err);
		break;
	default:
		rc = cb_error_set(&err, CB_EINTERNAL, "unknown operation");
		break;
	}
answer:
	if (rc == -CB_ENOTFOUND && err.code == 0)
		cb_error_set(&err, CB_ENOTFOUND, "no value");
	switch (j->op) {
	case VSQL_GET:
		j->cb.get(j->arg, rc, rc == 0 ? sealed : NULL,
		    rc == 0 ? n : 0, &err);
		break;
	case VSQL_SET:
	case VSQL_DEL:
	case VSQL_CLEAR:
		j->cb.done(j->arg, rc, rc == 0 ? n : 0, &err);
		break;
	case VSQL_LIST:
		j->cb.list(j->arg, rc, rc == 0 ? users : NULL,
		    rc == 0 ? nusers : 0, &err);
		break;
	case VSQL_RESEAL:
		j->cb.reseal(j->arg, rc, rc == 0 ? n : 0, rc == 0 && last,
		    &err);
		break;
	case VSQL_ACCOUNTS:
		j->cb.accounts(j->arg, rc, rc == 0 ? users : NULL,
		    rc == 0 ? updated : NULL, rc == 0 ? nusers : 0, &err);
		break;
	}
done:
	for (i = 0; i < nusers; i++)
		free(users[i]);
	free(users);
	free(updated);
	free(sealed);
	free(j->sealed);
	free(j);
}

static void
vsql_close(struct values *vv)
{
	struct vsql	*v = (struct vsql *)vv;

	values_defer_close(&v->defer);
	free(v);
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
	if ((rc = values_defer_init(&v->defer, loop, err)) != 0) {
		free(v);
		return rc;
	}
	*out = &v->base;
	return 0;
}

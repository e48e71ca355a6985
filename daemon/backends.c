/*
 * backends: the values backend of each storage kind (storage/values.h),
 * opened at start and closed at shutdown.  Handlers find a type's backend
 * with values_for() and never ask which kind it is.  The other writes of
 * the daemon go to the SQLite backend's writer thread (dbwrite_submit).
 */
#include <string.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "store.h"
#include "values.h"
#include "writer.h"

int
backends_open(struct broker *b, struct cb_error *err)
{
	int	rc;

	if (b->pgs != NULL)
		rc = pgstore_open(b, err);
	else
		rc = values_sqlite_new(b->loop, b->store, &b->values[STORE_DB],
		    err);
	if (rc != 0 ||
	    (rc = values_vault_new(b->loop, &b->vault, b->store,
	    &b->values[STORE_VAULT], err)) != 0)
		backends_close(b);
	return rc;
}

void
backends_close(struct broker *b)
{
	size_t	i;

	for (i = 0; i < STORE_KINDS; i++) {
		if (b->values[i] != NULL)
			b->values[i]->ops->close(b->values[i]);
		b->values[i] = NULL;
	}
	pgstore_close(b);
}

void
backends_writer_stats(const struct broker *b, struct writer_stats *out)
{
	struct writer	*wr;

	if (b->pgs != NULL) {
		memset(out, 0, sizeof(*out));
		if ((wr = pgstore_writer(b)) != NULL)
			writer_get_stats(wr, out);
	} else
		values_sqlite_stats(b->values[STORE_DB], out);
}

struct values *
values_for(const struct broker *b, const struct store_type *t)
{
	return b->values[t->storage];
}

/* On the writer's thread: the write itself. */
static int
dbwrite_run(struct writer_job *wj, struct store *wst, struct cb_error *err)
{
	struct dbwrite	*w = (struct dbwrite *)wj;

	return w->run(w, wst, err);
}

/* On the loop: the write is durable (or failed); the type cache follows. */
static void
dbwrite_done(struct writer_job *wj, int rc, const struct cb_error *err)
{
	struct dbwrite	*w = (struct dbwrite *)wj;
	struct store	*st = w->b->store;

	if (w->types)
		store_type_cache_drop(st);
	else if (w->type_uuid[0] != '\0')
		store_type_cache_sync(st, w->type_uuid);
	w->done(w, rc, err);
}

int
dbwrite_submit(struct broker *b, struct dbwrite *w, struct cb_error *err)
{
	struct writer	*wr;

	if (b->pgs != NULL)
		wr = pgstore_writer(b);
	else
		wr = b->values[STORE_DB] != NULL ?
		    values_sqlite_writer(b->values[STORE_DB]) : NULL;
	if (wr == NULL)
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "the broker is shutting down");
	w->b = b;
	w->wj.run = dbwrite_run;
	w->wj.done = dbwrite_done;
	return writer_submit(wr, &w->wj, err);
}

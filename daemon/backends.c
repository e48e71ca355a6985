/*
 * backends: the values backend of each storage kind (storage/values.h),
 * opened at start and closed at shutdown.  Handlers find a type's backend
 * with values_for() and never ask which kind it is.
 */
#include "cb_error.h"
#include "credbrokerd.h"
#include "store.h"
#include "values.h"

int
backends_open(struct broker *b, struct cb_error *err)
{
	int	rc;

	if ((rc = values_sqlite_new(b->loop, b->store, &b->values[STORE_DB],
	    err)) != 0 ||
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
}

struct values *
values_for(const struct broker *b, const struct store_type *t)
{
	return b->values[t->storage];
}

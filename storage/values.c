/*
 * values: what every backend shares: the seal context of a value and the
 * queue that defers answers to the next loop turn, and the rule by which
 * operations on values are ordered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sealctx.h"
#include "values.h"

void
values_context(const struct values *v, char *buf, size_t sz,
    const struct values_ref *ref)
{
	int64_t	generation = v->ops->generational ? ref->generation : 0;

	if (ref->account != NULL)
		sealctx_account(buf, sz, ref->type_uuid, ref->account,
		    generation);
	else
		sealctx_value(buf, sz, ref->type_uuid, ref->user_uuid,
		    generation);
}

/* Run the jobs queued before this turn; later ones wait for the next. */
static void
values_defer_run(uv_idle_t *h)
{
	struct values_defer	*d = h->data;
	struct values_job	*j, *next;

	j = d->head;
	d->head = NULL;
	d->tail = &d->head;
	uv_idle_stop(h);
	for (; j != NULL; j = next) {
		next = j->next;
		j->run(j, false);
	}
}

int
values_defer_init(struct values_defer *d, uv_loop_t *loop,
    struct cb_error *err)
{
	d->head = NULL;
	d->tail = &d->head;
	if ((d->idle = calloc(1, sizeof(*d->idle))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	uv_idle_init(loop, d->idle);
	d->idle->data = d;
	return 0;
}

void
values_defer_push(struct values_defer *d, struct values_job *j)
{
	j->next = NULL;
	*d->tail = j;
	d->tail = &j->next;
	uv_idle_start(d->idle, values_defer_run);
}

static void
values_defer_closed(uv_handle_t *h)
{
	free(h);
}

void
values_defer_close(struct values_defer *d)
{
	struct values_job	*j, *next;

	if (d->idle == NULL)
		return;
	j = d->head;
	d->head = NULL;
	d->tail = &d->head;
	for (; j != NULL; j = next) {
		next = j->next;
		j->run(j, true);
	}
	uv_close((uv_handle_t *)d->idle, values_defer_closed);
	d->idle = NULL;
}

bool
values_overlap(const char *atype, const char *auser, const char *aaccount,
    const char *btype, const char *buser, const char *baccount)
{
	bool	awide = auser[0] == '\0' && aaccount[0] == '\0';
	bool	bwide = buser[0] == '\0' && baccount[0] == '\0';

	if (atype[0] != '\0' && btype[0] != '\0' && strcmp(atype, btype) != 0)
		return false;
	if (awide || bwide)
		return true;
	if (auser[0] != '\0' && buser[0] != '\0')
		return strcmp(auser, buser) == 0;
	if (aaccount[0] != '\0' && baccount[0] != '\0')
		return strcmp(aaccount, baccount) == 0;
	return false;
}

/*
 * writer: group commit of db-stored values on a thread of its own
 * (writer.h).  The loop and the thread share the queue, the list of
 * answered jobs and the counters, under one mutex; everything else
 * belongs to one side: the thread alone uses its connection, the loop
 * alone runs the done callbacks.
 */
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "writer.h"

struct writer {
	uv_async_t		 async;		/* first: the handle's memory */
	uv_thread_t		 thread;
	uv_mutex_t		 mu;
	uv_cond_t		 work;		/* the queue has jobs, or stop */
	struct store		*loop_st;	/* the loop's connection */
	struct store		*st;		/* the thread's */
	struct writer_queue	 queue;
	struct writer_job	*done, **done_tail;
	struct writer_stats	 stats;
	struct writer_replica	 replica;
	bool			 has_replica;
	bool			 stopping;
	bool			 started;	/* the thread runs (loop only) */
	size_t			 unanswered;	/* loop only */
};

void
writer_queue_init(struct writer_queue *q, size_t limit)
{
	memset(q, 0, sizeof(*q));
	q->tail = &q->head;
	q->limit = limit;
}

int
writer_queue_push(struct writer_queue *q, struct writer_job *j,
    struct cb_error *err)
{
	if (q->n >= q->limit)
		return cb_error_set(err, CB_EUNAVAILABLE, "too many writes "
		    "waiting (%zu) for the database; try again", q->n);
	j->next = NULL;
	*q->tail = j;
	q->tail = &j->next;
	if (++q->n > q->max)
		q->max = q->n;
	return 0;
}

struct writer_job *
writer_queue_take(struct writer_queue *q, size_t *n)
{
	struct writer_job	*j = q->head;

	*n = q->n;
	q->head = NULL;
	q->tail = &q->head;
	q->n = 0;
	return j;
}

/* Fail the jobs from j to end (exclusive) that had succeeded. */
static void
writer_fail_from(struct writer_job *j, struct writer_job *end,
    const struct cb_error *why, const char *what)
{
	for (; j != end; j = j->next) {
		if (j->rc != 0)
			continue;
		j->rc = cb_error_set(&j->err, why->code != 0 ? why->code :
		    CB_EINTERNAL, "%s: %s", what, why->msg);
	}
}

/* Begin a group: on the replica first, then on st. */
static int
writer_begin(struct store *st, const struct writer_replica *rep,
    struct cb_error *err)
{
	int	ret;

	if (rep != NULL && (ret = rep->begin(rep->arg, err)) != 0)
		return ret;
	if ((ret = store_batch_begin(st, err)) != 0 && rep != NULL)
		rep->abort(rep->arg);
	return ret;
}

/* Run one job inside its savepoint; 0 when it is to be kept. */
static int
writer_job_run(struct store *st, const struct writer_replica *rep,
    struct writer_job *j)
{
	bool	replayed = rep != NULL && !j->local;
	int	rc;

	if ((rc = store_batch_savepoint(st, &j->err)) != 0)
		return rc;
	if (replayed && (rc = rep->job_begin(rep->arg, st, &j->err)) != 0)
		return rc;
	if ((rc = j->run(j, st, &j->err)) != 0) {
		if (replayed)
			(void)rep->job_end(rep->arg, st, false, NULL);
		return rc;
	}
	if (replayed && (rc = rep->job_end(rep->arg, st, true,
	    &j->err)) != 0)
		return rc;
	return store_batch_release(st, &j->err);
}

int
writer_group_run(struct store *st, struct writer_job *jobs, size_t *ok,
    struct cb_error *err)
{
	return writer_group_run_replica(st, NULL, jobs, ok, err);
}

int
writer_group_run_replica(struct store *st, const struct writer_replica *rep,
    struct writer_job *jobs, size_t *ok, struct cb_error *err)
{
	struct writer_job	*j, *first = jobs;
	int			 ret;

	*ok = 0;
	for (j = jobs; j != NULL; j = j->next) {
		j->rc = 0;
		cb_error_clear(&j->err);
	}
	if ((ret = writer_begin(st, rep, err)) != 0) {
		writer_fail_from(jobs, NULL, err, "the write was not made");
		return ret;
	}
	for (j = jobs; j != NULL; j = j->next) {
		if ((j->rc = writer_job_run(st, rep, j)) == 0)
			continue;
		if (store_batch_open(st)) {
			store_batch_undo(st);	/* this job alone */
			continue;
		}
		/*
		 * SQLite rolled the whole transaction back (I/O error, disk
		 * full): the jobs before this one are lost with it.  Say
		 * so, and go on with the rest in a new transaction.
		 */
		store_batch_abort(st);
		if (rep != NULL)
			rep->abort(rep->arg);
		writer_fail_from(first, j, &j->err, "rolled back with a "
		    "failed write of the same group");
		first = j->next;
		if (first != NULL && (ret = writer_begin(st, rep, err)) != 0) {
			writer_fail_from(first, NULL, err, "the write was not "
			    "made");
			return ret;
		}
	}
	if (first != NULL && rep != NULL &&
	    (ret = rep->commit(rep->arg, err)) != 0) {
		store_batch_abort(st);
		writer_fail_from(first, NULL, err, "the commit of a group of "
		    "writes failed");
		return ret;
	}
	/*
	 * With a replica, what it committed stands even if st fails to
	 * commit now: its notifications bring st up to date.
	 */
	if (first != NULL && (ret = store_batch_commit(st, err)) != 0 &&
	    rep == NULL) {
		writer_fail_from(first, NULL, err, "the commit of a group of "
		    "writes failed; this write was not made");
		return ret;
	}
	for (j = jobs; j != NULL; j = j->next)
		if (j->rc == 0)
			(*ok)++;
	return 0;
}

/* The thread: one group per turn until stopped and drained. */
static void
writer_main(void *arg)
{
	struct writer		*w = arg;
	struct writer_job	*jobs, *j;
	struct cb_error		 err;
	size_t			 n, ok;
	int			 rc;

	uv_mutex_lock(&w->mu);
	for (;;) {
		while (w->queue.head == NULL && !w->stopping)
			uv_cond_wait(&w->work, &w->mu);
		if (w->queue.head == NULL)
			break;
		jobs = writer_queue_take(&w->queue, &n);
		w->stats.in_flight = n;
		uv_mutex_unlock(&w->mu);

		cb_error_clear(&err);
		rc = writer_group_run_replica(w->st, w->has_replica ?
		    &w->replica : NULL, jobs, &ok, &err);

		uv_mutex_lock(&w->mu);
		w->stats.in_flight = 0;
		if (rc == 0) {
			w->stats.commits++;
			w->stats.committed += ok;
			if (n > w->stats.largest)
				w->stats.largest = n;
		} else
			w->stats.failed++;
		*w->done_tail = jobs;
		for (j = jobs; j->next != NULL; j = j->next)
			;
		w->done_tail = &j->next;
		uv_async_send(&w->async);
	}
	uv_mutex_unlock(&w->mu);
}

/*
 * On the loop: answer the jobs whose group has ended.  The loop's
 * connection drops its shared read transaction first, so that a read
 * started by an answer sees what the group wrote.
 */
static void
writer_answer(struct writer *w)
{
	struct writer_job	*j, *next;

	uv_mutex_lock(&w->mu);
	j = w->done;
	w->done = NULL;
	w->done_tail = &w->done;
	uv_mutex_unlock(&w->mu);
	if (j == NULL)
		return;
	store_release(w->loop_st);
	for (; j != NULL; j = next) {
		next = j->next;
		w->unanswered--;
		j->done(j, j->rc, j->rc != 0 ? &j->err : NULL);
	}
}

static void
writer_async(uv_async_t *h)
{
	writer_answer(h->data);
}

static void
writer_closed(uv_handle_t *h)
{
	free(h->data);
}

int
writer_start(uv_loop_t *loop, struct store *st, struct writer **out,
    struct cb_error *err)
{
	struct writer	*w;
	int		 rc, ret;

	*out = NULL;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	if ((ret = store_open_writer(st, &w->st, err)) != 0) {
		free(w);
		return ret;
	}
	w->loop_st = st;
	writer_queue_init(&w->queue, WRITER_QUEUE_MAX);
	w->done_tail = &w->done;
	if ((rc = uv_mutex_init(&w->mu)) != 0)
		goto fail_mutex;
	if ((rc = uv_cond_init(&w->work)) != 0)
		goto fail_work;
	if ((rc = uv_async_init(loop, &w->async, writer_async)) != 0)
		goto fail_async;
	w->async.data = w;
	*out = w;
	return 0;

fail_async:
	uv_cond_destroy(&w->work);
fail_work:
	uv_mutex_destroy(&w->mu);
fail_mutex:
	store_close(w->st);
	free(w);
	return cb_error_set(err, CB_EINTERNAL, "cannot start the database "
	    "writer: %s", uv_strerror(rc));
}

void
writer_set_replica(struct writer *w, const struct writer_replica *rep)
{
	w->replica = *rep;
	w->has_replica = true;
}

int
writer_submit(struct writer *w, struct writer_job *j, struct cb_error *err)
{
	int	rc, ret;

	/*
	 * The thread starts with the first write, once the loop runs: the
	 * daemon may fork(2) between writer_start and then, and a thread
	 * does not survive a fork.
	 */
	if (!w->started) {
		if ((rc = uv_thread_create(&w->thread, writer_main, w)) != 0)
			return cb_error_set(err, CB_EUNAVAILABLE, "cannot "
			    "start the database writer: %s", uv_strerror(rc));
		w->started = true;
	}
	uv_mutex_lock(&w->mu);
	if (w->stopping)
		ret = cb_error_set(err, CB_EUNAVAILABLE,
		    "the broker is shutting down");
	else if ((ret = writer_queue_push(&w->queue, j, err)) == 0)
		uv_cond_signal(&w->work);
	uv_mutex_unlock(&w->mu);
	if (ret == 0)
		w->unanswered++;
	return ret;
}

void
writer_get_stats(struct writer *w, struct writer_stats *out)
{
	uv_mutex_lock(&w->mu);
	*out = w->stats;
	out->waiting = w->queue.n;
	out->waiting_max = w->queue.max;
	uv_mutex_unlock(&w->mu);
	out->unanswered = w->unanswered;
}

void
writer_stop(struct writer *w)
{
	if (w == NULL)
		return;
	uv_mutex_lock(&w->mu);
	w->stopping = true;
	uv_cond_signal(&w->work);
	uv_mutex_unlock(&w->mu);
	if (w->started)
		uv_thread_join(&w->thread);
	writer_answer(w);
	store_close(w->st);
	w->st = NULL;
	uv_cond_destroy(&w->work);
	uv_mutex_destroy(&w->mu);
	uv_close((uv_handle_t *)&w->async, writer_closed);
}

/*
 * writer: the thread that commits every write the daemon makes after
 * start-up (the values of db-stored types, and types, links, defaults,
 * settings, keys, key rotation's steps), off the daemon's loop, in groups.
 *
 * The loop queues jobs (writer_submit); the thread, on its own connection
 * to the database (store_open_writer), takes everything queued, opens one
 * transaction (BEGIN IMMEDIATE), runs each job inside its own savepoint
 * (a job that fails is rolled back to its savepoint and fails alone) and
 * commits once: one fsync for the whole group.  Jobs queued while a commit
 * is in flight wait for the next group.  A job is answered on the loop
 * (its done callback, through a uv_async_t) only after the COMMIT that
 * holds it returned: acknowledged means durable.  A failed COMMIT fails
 * every job of its group, and says so.
 *
 * At most WRITER_QUEUE_MAX jobs wait for a group (those of the group in
 * flight are not counted): one more is refused, unavailable, "too many
 * writes waiting".
 */
#ifndef CB_WRITER_H
#define CB_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cb_error.h"
#include "store.h"

#define WRITER_QUEUE_MAX	1024

struct writer_job {
	struct writer_job	*next;
	/*
	 * On the writer's thread, inside the job's savepoint, on the
	 * writer's connection: 0, or a negative CB_E* code with err.  It
	 * must touch nothing the loop uses.
	 */
	int	(*run)(struct writer_job *, struct store *,
		    struct cb_error *);
	/* On the loop, once: rc and err are the job's outcome. */
	void	(*done)(struct writer_job *, int rc,
		    const struct cb_error *);
	int			 rc;
	struct cb_error		 err;
	/*
	 * Not replayed on the writer's replica (a job that brings the
	 * mirror up to date from the replica itself).
	 */
	bool			 local;
};

/*
 * Where the writes are replayed and committed first (mirror.h, with the
 * PostgreSQL store), called on the writer's thread: begin and commit
 * (or abort) around each group, job_begin and job_end(keep) around each
 * job that is not local, inside its savepoint.  A job is kept on the
 * writer's connection only when job_end(keep) succeeded; the group is
 * committed there only after commit succeeded.
 */
struct writer_replica {
	void	*arg;
	int	(*begin)(void *arg, struct cb_error *);
	int	(*job_begin)(void *arg, struct store *, struct cb_error *);
	int	(*job_end)(void *arg, struct store *, bool keep,
		    struct cb_error *);
	int	(*commit)(void *arg, struct cb_error *);
	void	(*abort)(void *arg);
};

struct writer_stats {
	uint64_t	 commits;	/* groups committed */
	uint64_t	 committed;	/* jobs made durable by them */
	uint64_t	 failed;	/* groups whose commit failed */
	uint64_t	 largest;	/* jobs in the largest group */
	uint64_t	 waiting;	/* jobs queued for the next group now */
	uint64_t	 waiting_max;	/* the most there ever were */
	uint64_t	 in_flight;	/* jobs of the group being committed */
	uint64_t	 unanswered;	/* submitted, done not yet called */
};

/*
 * The queue alone: pushed by the loop, emptied at once by the thread, in
 * order.  The writer holds its mutex around both.
 */
struct writer_queue {
	struct writer_job	*head, **tail;
	size_t			 n, max, limit;
};
void	 writer_queue_init(struct writer_queue *q, size_t limit);
/* -CB_EUNAVAILABLE when limit jobs wait already. */
int	 writer_queue_push(struct writer_queue *q, struct writer_job *j,
	    struct cb_error *err);
/* Everything queued, in order (NULL if nothing); *n how many. */
struct writer_job *writer_queue_take(struct writer_queue *q, size_t *n);

/*
 * Run one group on st (the writer's connection): every job gets its rc
 * and err.  Returns 0 when the group committed (some of its jobs may
 * have failed alone), else the commit's (or the begin's) error, which
 * every job that had run then carries.  *ok counts the jobs committed.
 */
int	 writer_group_run(struct store *st, struct writer_job *jobs,
	    size_t *ok, struct cb_error *err);
/* The same with a replica (NULL: none). */
int	 writer_group_run_replica(struct store *st,
	    const struct writer_replica *rep, struct writer_job *jobs,
	    size_t *ok, struct cb_error *err);

struct writer;

/*
 * Open the writer's connection to st's database (its thread starts with
 * the first job, so that the process may fork in between).  st (the
 * loop's connection) only reads (store_query_only): in WAL mode it never
 * waits for a group in flight.  It drops its shared read transaction
 * before jobs are answered, so what they wrote is seen.
 */
int	 writer_start(uv_loop_t *loop, struct store *st, struct writer **out,
	    struct cb_error *err);
/*
 * Replay every later group on rep (copied) before committing it; call
 * before the first job.
 */
void	 writer_set_replica(struct writer *w, const struct writer_replica *rep);
/* Queue j: 0 (done is called later, on the loop) or an error. */
int	 writer_submit(struct writer *w, struct writer_job *j,
	    struct cb_error *err);
void	 writer_get_stats(struct writer *w, struct writer_stats *out);
/*
 * Commit what is queued, answer every job, join the thread, close its
 * connection; the memory goes when the loop has closed the handle.
 */
void	 writer_stop(struct writer *w);

#endif

/*
 * values: where the sealed values of credential types live, behind one
 * asynchronous interface.  A backend is a table of operations (struct
 * values_ops); the daemon picks the backend from a type's storage once
 * and never asks which kind it holds.  Backends: SQLite (values-sqlite.c),
 * PostgreSQL (values-pg.c) and Vault
 * (values-vault.c), which owns its path layout.
 *
 * The rule of the interface: answers never arrive synchronously.  An
 * operation either fails at once (it returns a negative CB_E* code with
 * err filled, and its callback is never called) or returns 0 and calls
 * its callback exactly once, later, from the loop: never before the
 * operation has returned.  A backend that could answer at once (SQLite)
 * defers the answer to the next loop turn (values_defer).
 *
 * Values arrive and leave sealed: no backend ever sees plaintext.
 */
#ifndef CB_VALUES_H
#define CB_VALUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cb_error.h"
#include "sealctx.h"
#include "store.h"

struct pg;
struct vault;
struct values;
struct writer;
struct writer_stats;

/*
 * One value of a type, in the type's storage generation: a user's own
 * value (user_uuid set, account NULL), or a named account's shared value
 * (account set, user_uuid NULL; SPEC section 10).  Account names have the
 * grammar of type idents.
 */
struct values_ref {
	const char	*type_uuid;
	const char	*user_uuid;
	const char	*account;
	int64_t		 generation;
};

/*
 * get: rc 0 with the sealed text (valid during the call) and when it was
 * written (unix seconds, never 0); -CB_ENOTFOUND when not set (or left by
 * another storage generation); another negative code with err.
 */
typedef void (*values_get_fn)(void *arg, int rc, const char *sealed,
    int64_t updated_at, const struct cb_error *err);
/* set (n: updated_at), delete (n: 0), clear (n: values removed). */
typedef void (*values_done_fn)(void *arg, int rc, int64_t n,
    const struct cb_error *err);
/* list-users: the user uuids (valid during the call) holding a value. */
typedef void (*values_list_fn)(void *arg, int rc, char *const *users,
    size_t n, const struct cb_error *err);
/*
 * list-accounts: the accounts of a type holding a value, ordered by name,
 * with when each was written (arrays valid during the call).
 */
typedef void (*values_accounts_fn)(void *arg, int rc, char *const *names,
    const int64_t *updated_at, size_t n, const struct cb_error *err);
/*
 * status: called once for each type i given, with updated_at of the
 * user's value (0: none) or rc and err when it cannot be told.
 */
typedef void (*values_status_fn)(void *arg, size_t i, int rc,
    int64_t updated_at, const struct cb_error *err);

/*
 * Key rotation re-seals every value of a backend, one batch per reseal
 * call, starting after cursor.  reseal() opens and seals one value again
 * (*out NULL: it is under the new key already, leave it).  checkpoint()
 * gives the text to commit under setting with the batch, in the same
 * transaction where the backend has one (NULL: nothing to commit); it
 * receives the cursor after the batch, the number of values the batch
 * walked and whether the backend is then done.  A backend without
 * transactions re-seals idempotently and starts over after a restart.
 */
struct values_cursor {
	char	 type_uuid[STORE_UUID_LEN + 1];	/* "" to start */
	char	 user_uuid[STORE_UUID_LEN + 1];
};
struct values_reseal {
	int	(*reseal)(void *arg, const char *context, const char *sealed,
		    char **out, struct cb_error *err);
	char	*(*checkpoint)(void *arg, const struct values_cursor *next,
		    int64_t n, bool last);
	void	(*release)(char *doc);	/* frees what checkpoint gave */
	/*
	 * A backend that walks one long batch says how it goes: found more
	 * values to walk, walked some (may be NULL).  What it reports here
	 * is not counted again in the answer's n.
	 */
	void	(*progress)(void *arg, int64_t found, int64_t walked);
	const char *setting;
	struct values_cursor cursor;
	void	*arg;
};
/* reseal answer: n values walked; finished when nothing is left. */
typedef void (*values_reseal_fn)(void *arg, int rc, int64_t n, bool finished,
    const struct cb_error *err);

struct values_ops {
	const char	*name;
	const char	*where;		/* for messages: "stored in <where>" */
	/* Values are bound to their type's storage generation. */
	bool		 generational;
	/* Whether operations can succeed at all now (err says why not). */
	bool	(*usable)(struct values *, struct cb_error *);
	int	(*get)(struct values *, const struct values_ref *,
		    values_get_fn, void *, struct cb_error *);
	int	(*set)(struct values *, const struct values_ref *,
		    const char *sealed, values_done_fn, void *,
		    struct cb_error *);
	/* -CB_ENOTFOUND (through done) when not set. */
	int	(*del)(struct values *, const struct values_ref *,
		    values_done_fn, void *, struct cb_error *);
	int	(*list_users)(struct values *, const char *type_uuid,
		    values_list_fn, void *, struct cb_error *);
	/* The type's accounts holding a value (in its generation). */
	int	(*list_accounts)(struct values *, const char *type_uuid,
		    int64_t generation, values_accounts_fn, void *,
		    struct cb_error *);
	/*
	 * Remove every value of the type (any generation): users' values
	 * and accounts' values; n counts both.
	 */
	int	(*clear)(struct values *, const char *type_uuid,
		    values_done_fn, void *, struct cb_error *);
	int	(*status)(struct values *, const char *user_uuid,
		    const struct store_type *const *types, size_t n,
		    values_status_fn, void *, struct cb_error *);
	int	(*reseal)(struct values *, struct values_reseal *,
		    values_reseal_fn, void *, struct cb_error *);
	/* Fail or finish what is pending, close handles; frees later. */
	void	(*close)(struct values *);
};

struct values {
	const struct values_ops	*ops;
};

/*
 * Seal context of a value (sealctx_value, or sealctx_account for an
 * account's value; sealctx.h): the generation is bound only when the
 * backend binds values to it.
 */
#define VALUES_CONTEXT_MAX	SEALCTX_VALUE_MAX
void	 values_context(const struct values *v, char *buf, size_t sz,
	    const struct values_ref *ref);

/*
 * Whether two operations on values may touch the same values, the rule by
 * which the backends order them.  Each names a type uuid ("" for every
 * type) and a user uuid or an account (both "": every value of its types).
 */
bool	 values_overlap(const char *atype, const char *auser,
	    const char *aaccount, const char *btype, const char *buser,
	    const char *baccount);

/*
 * Deferred answers: one uv_idle handle per queue runs, on the next loop
 * turn, the jobs queued before that turn (jobs queued by a job wait for
 * the turn after).  A job's run() is called once, with cancelled true
 * when the queue is closed first; it frees the job.
 */
struct values_job {
	struct values_job	*next;
	void			(*run)(struct values_job *, bool cancelled);
};
struct values_defer {
	uv_idle_t		*idle;
	struct values_job	*head, **tail;
};
int	 values_defer_init(struct values_defer *d, uv_loop_t *loop,
	    struct cb_error *err);
void	 values_defer_push(struct values_defer *d, struct values_job *j);
/* Cancel what is queued and close the handle. */
void	 values_defer_close(struct values_defer *d);

/* The backends. */
int	 values_sqlite_new(uv_loop_t *loop, struct store *st,
	    struct values **out, struct cb_error *err);
/* The counters of the SQLite backend's writer (writer.h); zeros if none. */
void	 values_sqlite_stats(struct values *v, struct writer_stats *out);
/*
 * PostgreSQL (values-pg.c), on two connections the caller owns and closes
 * after the backend: reads go on one, writes on the other (and the reads
 * of values a write asked before them has not answered yet); the tables
 * are pgschema.c's.
 */
int	 values_pg_new(struct pg *reads, struct pg *writes,
	    struct values **out, struct cb_error *err);
/*
 * The number of writes asked of the PostgreSQL backend so far, and
 * whether every one of the first n has gone out on the writes' connection
 * (or been answered): a write waits, unsent, while a read of its values
 * asked before it is on the reads' connection.  A query sent on the
 * writes' connection after that runs after those writes.
 */
uint64_t values_pg_writes_asked(struct values *v);
bool	 values_pg_writes_sent(struct values *v, uint64_t n);
/*
 * The SQLite backend's writer, for the daemon's other writes (NULL once
 * it is closing).
 */
struct writer *values_sqlite_writer(struct values *v);
/*
 * *vault is read at every call (the daemon clears it at shutdown); st
 * lists the types stored in Vault for key rotation.
 */
int	 values_vault_new(uv_loop_t *loop, struct vault **vault,
	    struct store *st, struct values **out, struct cb_error *err);

#endif

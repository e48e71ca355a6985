/*
 * mirror: the PostgreSQL store's metadata, mirrored in a local SQLite
 * database (SPEC section 12).
 *
 * With storage.backend = postgresql, every broker of a fleet shares the
 * tables of pgschema.c.  The values of db-stored types are read from and
 * written to PostgreSQL directly (values-pg.c).  Everything else the
 * broker reads on its hot path (types, links and defaults, settings, the
 * key check value, key pairs and peer keys) it reads from a local SQLite
 * database with sqlite.c's schema, the mirror, so that no read ever waits
 * on the network and store.h serves both backends unchanged.
 *
 * Writes.  The writer thread (writer.h) runs each write on the mirror, as
 * it does on a SQLite store, while the mirror records what it changed (a
 * SQLite session: rows inserted, deleted, and the old and new values of
 * the columns updated).  Those changes are replayed on PostgreSQL, on the
 * writer thread's own connection, inside one PostgreSQL transaction per
 * group and one savepoint per write, and the mirror commits only once
 * PostgreSQL has: acknowledged means committed by PostgreSQL.  The replay
 * is optimistic: an UPDATE applies only where the columns it changes
 * still hold what the mirror read, an INSERT only where the key is free.
 * When another broker got there first, the write fails alone with
 * -CB_ECONFLICT ("changed through another broker at the same time; try
 * again") and changes nothing; the notification of the other broker's
 * write has brought the mirror up to date by the time the caller retries.
 *
 * Reads stay fresh through notifications: a trigger on every mirrored
 * table (pgschema.c, migration 4) sends NOTIFY credbroker with the table
 * and the key of the row ("types\t<uuid>", "credlinks\t<type>\t<user>"),
 * and mirror_refresh() reads that row again (or deletes it from the
 * mirror when PostgreSQL no longer has it).  After a lost connection
 * (notifications lost), mirror_reload() reads every mirrored table again.
 *
 * Threads: a struct mirror belongs to the writer thread once the daemon
 * serves (start-up uses it on the main thread before).  Its connection is
 * blocking libpq, bounded by a deadline on every statement, and never
 * touched by the loop.
 */
#ifndef CB_MIRROR_H
#define CB_MIRROR_H

#include <stdbool.h>
#include <stddef.h>

#include "cb_error.h"
#include "store.h"

/* The NOTIFY channel of the mirrored tables' triggers. */
#define MIRROR_CHANNEL		"credbroker"

struct mirror;

/*
 * conninfo as pg.c takes it (no password in it); password may be NULL.
 * Both are copied (the password into a wiping buffer).  No connection is
 * made until the first use.  timeout_ms bounds each connection attempt
 * and each statement.
 */
int	 mirror_new(const char *conninfo, const char *password,
	    unsigned timeout_ms, struct mirror **out, struct cb_error *err);
void	 mirror_free(struct mirror *m);

/*
 * Read every mirrored table from PostgreSQL into st, replacing what st
 * held, in one PostgreSQL snapshot (REPEATABLE READ) and one SQLite
 * transaction of st's (or the writer group's savepoint when st is the
 * writer's connection inside a group: see mirror_txn_*).
 */
int	 mirror_reload(struct mirror *m, struct store *st,
	    struct cb_error *err);

/*
 * Read again the row a notification names (payload as the trigger sends
 * it) into st.  *table is the table's name (a static string) and key the
 * first column of the row's key (a type's uuid for types and credlinks),
 * for the caller's caches.  -CB_EBADREQ for a payload that names no
 * mirrored table or a malformed key.
 */
int	 mirror_refresh(struct mirror *m, struct store *st,
	    const char *payload, const char **table,
	    char key[STORE_UUID_LEN + 1], struct cb_error *err);

/*
 * The replay of writes.  txn_begin opens the PostgreSQL transaction of a
 * group (connecting first if needed); job_begin starts recording st's
 * changes and opens a savepoint; job_end(keep) replays what was recorded
 * (keep true) inside the savepoint and releases it, or rolls the
 * savepoint back (keep false, or when the replay fails: the write then
 * fails alone, with the reason); txn_commit commits the group on
 * PostgreSQL; txn_abort rolls it back.  A lost connection fails the call
 * with -CB_EUNAVAILABLE and the next txn_begin connects again.
 */
int	 mirror_txn_begin(struct mirror *m, struct cb_error *err);
int	 mirror_job_begin(struct mirror *m, struct store *st,
	    struct cb_error *err);
int	 mirror_job_end(struct mirror *m, struct store *st, bool keep,
	    struct cb_error *err);
int	 mirror_txn_commit(struct mirror *m, struct cb_error *err);
void	 mirror_txn_abort(struct mirror *m);

#endif

/*
 * pgschema: the broker's tables on PostgreSQL, created and brought up to
 * date by an ordered list of migrations, asynchronously on a pg.c
 * connection.
 *
 * The tables go into the first schema of the connection's search_path
 * (the role's default, or "options=-csearch_path=NAME" in the connection
 * string).  Applying the migrations:
 *
 *   1. In one transaction, under the advisory lock PGSCHEMA_LOCK_KEY:
 *	create the schema_version table when missing, and read the
 *	version (the highest row; 0 in a new database).
 *   2. Newer than this broker knows: refused, -CB_EINTERNAL, "the
 *	database schema is version N, newer than this broker knows (M):
 *	upgrade the broker", and nothing is changed.
 *   3. Older: each missing migration in a transaction of its own
 *	(pg_batch), which takes pg_advisory_xact_lock(PGSCHEMA_LOCK_KEY)
 *	first, checks that the version is still the one read, runs the
 *	migration's statements and records the new version in
 *	schema_version.  A broker that waited on the lock while another
 *	migrated finds the version moved: it reads it again and goes on
 *	from there (step 2 and 3), so every migration runs exactly once.
 *	A statement that fails rolls its whole migration back.
 *
 * The callback runs once, on the loop, never from inside pgschema_apply().
 */
#ifndef CB_PGSCHEMA_H
#define CB_PGSCHEMA_H

#include <stddef.h>

#include "cb_error.h"
#include "pg.h"

/* The schema this broker knows: the number of its migrations. */
#define PGSCHEMA_VERSION	5

/*
 * The advisory lock every broker takes to read or change the schema
 * version: "cbschema" in ASCII, as a bigint.  Another application that
 * uses advisory locks in the same database must not use this key.
 */
#define PGSCHEMA_LOCK_KEY	"7161413228262944097"

/* One migration: version - 1 to version, its statements in order. */
struct pgschema_migration {
	const char		*what;		/* for error messages */
	const char *const	*stmts;
	size_t			 nstmts;	/* 1 to PGSCHEMA_STMTS_MAX */
};

/* Statements a migration may hold (a batch holds 3 more of its own). */
#define PGSCHEMA_STMTS_MAX	60

/*
 * rc 0: the schema is at version (PGSCHEMA_VERSION for pgschema_apply).
 * rc < 0: err says why; -CB_EUNAVAILABLE when the connection failed
 * (try again later), -CB_EINTERNAL for a refused or failed migration.
 */
typedef void (*pgschema_done_fn)(void *arg, int rc, int version,
    const struct cb_error *err);

/*
 * Bring the database behind pg to PGSCHEMA_VERSION.  Fails at once (no
 * callback) when pg cannot take the first query (not connected).
 */
int	 pgschema_apply(struct pg *pg, pgschema_done_fn cb, void *arg,
	    struct cb_error *err);

/*
 * The same with a list of migrations of one's own (list[i] takes version
 * i to i + 1; n of them): for the tests.  list must stay valid until the
 * callback.
 */
int	 pgschema_apply_list(struct pg *pg,
	    const struct pgschema_migration *list, int n, pgschema_done_fn cb,
	    void *arg, struct cb_error *err);

#endif

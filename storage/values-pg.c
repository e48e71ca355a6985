/*
 * values-pg: the values of db-stored types in PostgreSQL (the tables of
 * pgschema.c), through two pg.c connections that the caller owns: one
 * for the writes (set, delete, clear, re-sealing) and one for the reads
 * (get, status, list of users or accounts).  The same backend as
 * values-sqlite.c, on another database: the same seal contexts (not
 * bound to the storage generation: a change of storage deletes the
 * type's values with it), the same answers and errors.
 *
 * Order: PostgreSQL runs one connection's statements one after the
 * other, each committed before the next starts, but two connections side
 * by side.  The rule is values-sqlite.c's (vpg_overlap, vpg_place): an
 * operation waits for the ones asked before it that touch the same
 * values when either of them writes; operations on other values never
 * wait for each other, so a read of another value is answered while a
 * write's commit is held.  A read that touches the values of a write
 * asked before it and not yet answered goes behind that write on the
 * writes' connection; a write that touches the values of a read still
 * waiting on the reads' connection waits until that read is answered.
 * So a read sees every write asked before it (a client that pipelines a
 * set and a get of the same value gets what it set) and a write is never
 * passed by a read asked before it, as with SQLite.  A write waits only
 * for such a read: writes go out on the writes' connection in the order
 * asked, unless they wait (values_pg_writes_sent()).  Answers come from
 * the loop (pg.c never answers from inside a call).
 *
 * Durability: a write is one statement with its own sync (autocommit), or
 * a batch of statements with one sync (one transaction): its answer comes
 * after PostgreSQL has committed it.
 *
 * A lost connection fails what is pending on it, and what is asked while
 * it is down fails at once (or when its turn comes, if it waited), with
 * -CB_EUNAVAILABLE and pg.c's reason.
 *
 * The hot statements (get, set and delete of one value) are prepared on
 * the server, on each connection (the reads' prepares the gets only).  A
 * prepared statement lives in one server session, so they are prepared
 * again, pipelined ahead of the first use, whenever that pg.c has made a
 * new connection since (its reconnects counter moved), or when preparing
 * them failed.  Each attempt uses new names: PREPARE is not undone when
 * its transaction fails, so names that an attempt did prepare before it
 * failed are never prepared twice.
 *
 * Sealed values are parameters and results, never part of a message: the
 * errors name the operation, type, user or account and PostgreSQL's
 * primary message, which does not quote the row (pg.h).
 */
#include <sys/queue.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "pg.h"
#include "store.h"
#include "values.h"

/* Values walked per re-seal batch (with the accounts' on the last). */
#define VPG_BATCH	256
/* The prepared statements (vpg_prepares), reads first, and names' length. */
#define VPG_NPREPARED	6
#define VPG_NREADS	2
#define VPG_NAME_MAX	32

struct vpg_job;
TAILQ_HEAD(vpg_jobs, vpg_job);

/* The two connections (struct vpg_job's conn). */
enum { VPG_READS, VPG_WRITES, VPG_NCONN };

/* One connection and its prepared statements. */
struct vpg_conn {
	struct pg	*pg;
	bool		 prepared;	/* on the connection of epoch */
	uint64_t	 epoch;		/* pg_status().reconnects */
	unsigned	 attempt;	/* in the statements' names */
	char		 names[VPG_NPREPARED][VPG_NAME_MAX];
	struct cb_error	 prepare_err;	/* why the last attempt failed */
};

struct vpg {
	struct values	 base;
	struct vpg_conn	 conn[VPG_NCONN];
	/*
	 * Every operation asked and not answered yet, in the order asked:
	 * sent (on its connection) or waiting (vpg_place); and the PREPAREs
	 * sent.
	 */
	struct vpg_jobs	 jobs;
	uint64_t	 writes;	/* writes asked so far */
	size_t		 nwrites;	/* writes in jobs */
	size_t		 nwaiting;	/* jobs not sent */
};

union vpg_cb {
	values_get_fn	 get;
	values_done_fn	 done;
	values_list_fn	 list;
	values_accounts_fn accounts;
	values_status_fn status;
	values_reseal_fn reseal;
};

enum vpg_op { VPG_PREPARE, VPG_GET, VPG_SET, VPG_DEL, VPG_LIST, VPG_CLEAR,
    VPG_STATUS, VPG_RESEAL, VPG_ACCOUNTS };

/* One row to re-seal: the text read, and the new one (NULL: leave). */
struct vpg_row {
	char	 type_uuid[STORE_UUID_LEN + 1];
	char	 key[STORE_IDENT_MAX + 1];	/* user uuid or account */
	char	*old;
	char	*sealed;
};

struct vpg_job {
	TAILQ_ENTRY(vpg_job)	 entry;
	struct vpg		*v;		/* NULL: v closed, drop it */
	int			 op;
	int			 conn;		/* VPG_READS or VPG_WRITES */
	bool			 sent;		/* on conn, or waiting */
	uint64_t		 seq;		/* writes: v's count then */
	unsigned		 attempt;	/* prepare */
	char			 type_uuid[STORE_UUID_LEN + 1];
	char			 user_uuid[STORE_UUID_LEN + 1];
	char			 account[STORE_IDENT_MAX + 1];	/* or "" */
	char			*sealed;	/* set */
	const struct store_type	*const *types;	/* status */
	size_t			 ntypes;
	/* reseal: the phase, the rows walked and where they leave us. */
	struct values_reseal	*rs;
	int			 phase;
	struct vpg_row		*rows;		/* users' */
	size_t			 nrows;
	struct vpg_row		*arows;		/* accounts' (last batch) */
	size_t			 narows;
	struct values_cursor	 next;
	bool			 last;
	char			*doc;
	union vpg_cb		 cb;
	void			*arg;
};

/* Re-seal phases: users' rows read, accounts' rows read, written. */
enum { VPG_RS_USERS, VPG_RS_ACCOUNTS, VPG_RS_WRITE };

/*
 * The prepared statements, in one batch, named "cb_values_<stem>_<n>"
 * (n: the attempt): the names are ours alone.
 */
enum { VPG_P_GET, VPG_P_AGET, VPG_P_SET, VPG_P_ASET, VPG_P_DEL, VPG_P_ADEL };
static const char *const vpg_stems[VPG_NPREPARED] = {
	"get", "aget", "set", "aset", "del", "adel"
};
static const char *const vpg_prepares[VPG_NPREPARED] = {
	"(uuid, uuid) AS"
	" SELECT sealed, updated_at FROM credvalues"
	" WHERE type_uuid = $1 AND user_uuid = $2",
	"(uuid, text) AS"
	" SELECT sealed, updated_at FROM credaccounts"
	" WHERE type_uuid = $1 AND name = $2",
	/* When it was written: the server's clock, the same for a fleet. */
	"(uuid, uuid, text) AS"
	" INSERT INTO credvalues (type_uuid, user_uuid, sealed, updated_at)"
	" VALUES ($1, $2, $3,"
	"  floor(extract(epoch FROM statement_timestamp()))::bigint)"
	" ON CONFLICT (type_uuid, user_uuid) DO UPDATE"
	" SET sealed = excluded.sealed, updated_at = excluded.updated_at"
	" RETURNING updated_at",
	"(uuid, text, text) AS"
	" INSERT INTO credaccounts (type_uuid, name, sealed, updated_at)"
	" VALUES ($1, $2, $3,"
	"  floor(extract(epoch FROM statement_timestamp()))::bigint)"
	" ON CONFLICT (type_uuid, name) DO UPDATE"
	" SET sealed = excluded.sealed, updated_at = excluded.updated_at"
	" RETURNING updated_at",
	"(uuid, uuid) AS"
	" DELETE FROM credvalues WHERE type_uuid = $1 AND user_uuid = $2",
	"(uuid, text) AS"
	" DELETE FROM credaccounts WHERE type_uuid = $1 AND name = $2",
};

#define VPG_SQL_LIST							\
	"SELECT user_uuid FROM credvalues WHERE type_uuid = $1"		\
	" ORDER BY user_uuid"
#define VPG_SQL_ACCOUNTS						\
	"SELECT name, updated_at FROM credaccounts WHERE type_uuid = $1"	\
	" ORDER BY name"
/* Both kinds of values of a type, in one statement: one transaction. */
#define VPG_SQL_CLEAR							\
	"WITH u AS (DELETE FROM credvalues WHERE type_uuid = $1"	\
	"  RETURNING 1),"						\
	" a AS (DELETE FROM credaccounts WHERE type_uuid = $1"		\
	"  RETURNING 1)"						\
	" SELECT (SELECT count(*) FROM u) + (SELECT count(*) FROM a)"
/*
 * The user's values of types stored in the database: after a change of
 * storage the old rows are not visible through the type (SPEC 4.3).
 */
#define VPG_SQL_STATUS							\
	"SELECT v.type_uuid, v.updated_at FROM credvalues AS v"		\
	" JOIN types AS t ON t.uuid = v.type_uuid"			\
	" WHERE v.user_uuid = $1 AND t.storage = 'db'"			\
	" ORDER BY v.type_uuid"
#define VPG_SQL_SCAN_FIRST						\
	"SELECT type_uuid, user_uuid, sealed FROM credvalues"		\
	" ORDER BY type_uuid, user_uuid LIMIT $1"
#define VPG_SQL_SCAN							\
	"SELECT type_uuid, user_uuid, sealed FROM credvalues"		\
	" WHERE (type_uuid, user_uuid) > ($1, $2)"			\
	" ORDER BY type_uuid, user_uuid LIMIT $3"
#define VPG_SQL_SCAN_ACCOUNTS						\
	"SELECT type_uuid, name, sealed FROM credaccounts"		\
	" ORDER BY type_uuid, name"
/*
 * A re-sealed row is written only if it still holds the text that was
 * read: a value set or deleted meanwhile (by this broker or another) is
 * left as it is, never overwritten with the old value sealed again.
 */
#define VPG_SQL_RESEAL							\
	"UPDATE credvalues AS c SET sealed = u.new"			\
	" FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[])"	\
	"  AS u(t, k, old, new)"					\
	" WHERE c.type_uuid = u.t AND c.user_uuid = u.k"		\
	" AND c.sealed = u.old"
#define VPG_SQL_RESEAL_ACCOUNTS						\
	"UPDATE credaccounts AS c SET sealed = u.new"			\
	" FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[])"	\
	"  AS u(t, k, old, new)"					\
	" WHERE c.type_uuid = u.t AND c.name = u.k"			\
	" AND c.sealed = u.old"
#define VPG_SQL_SETTING							\
	"INSERT INTO settings (key, value) VALUES ($1, $2)"		\
	" ON CONFLICT (key) DO UPDATE SET value = excluded.value"

static void	vpg_result(void *, int, PGresult *, const struct cb_error *);

static bool
vpg_writes(int op)
{
	return op == VPG_SET || op == VPG_DEL || op == VPG_CLEAR ||
	    op == VPG_RESEAL;
}

/* Both connections up, or why not (the first one down). */
static bool
vpg_usable(struct values *vv, struct cb_error *err)
{
	struct vpg		*v = (struct vpg *)vv;
	struct pg_status	 st;
	int			 c;

	for (c = 0; c < VPG_NCONN; c++) {
		pg_status(v->conn[c].pg, &st);
		if (!st.connected)
			break;
	}
	if (c == VPG_NCONN)
		return true;
	cb_error_set(err, CB_EUNAVAILABLE, "not connected to PostgreSQL%s%s",
	    *st.last_error != '\0' ? ": " : "", st.last_error);
	return false;
}

static struct pg *
vpg_pg(const struct vpg_job *j)
{
	return j->v->conn[j->conn].pg;
}

static struct vpg_job *
vpg_job_new(struct vpg *v, int op, union vpg_cb cb, void *arg,
    struct cb_error *err)
{
	struct vpg_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		cb_error_set(err, CB_EINTERNAL, "out of memory");
		return NULL;
	}
	j->v = v;
	j->op = op;
	j->cb = cb;
	j->arg = arg;
	return j;
}

static void
vpg_rows_free(struct vpg_row *rows, size_t n)
{
	size_t	i;

	for (i = 0; rows != NULL && i < n; i++) {
		free(rows[i].old);
		free(rows[i].sealed);
	}
	free(rows);
}

static void
vpg_job_free(struct vpg_job *j)
{
	if (j->doc != NULL)
		j->rs->release(j->doc);
	vpg_rows_free(j->rows, j->nrows);
	vpg_rows_free(j->arows, j->narows);
	free(j->sealed);
	free(j);
}

/*
 * Whether two operations may touch the same values (values_overlap, the
 * rule of values-sqlite.c too).
 */
static bool
vpg_overlap(const struct vpg_job *a, const struct vpg_job *b)
{
	return values_overlap(a->type_uuid, a->user_uuid, a->account,
	    b->type_uuid, b->user_uuid, b->account);
}

/*
 * Where j may go now: VPG_WRITES or VPG_READS, or -1 to wait.  Of the
 * operations asked before j and not answered that touch its values, when
 * either writes, every one must be on the writes' connection already
 * (a write always is, once sent), and j goes behind them there.  A read
 * that touches no value of such an operation goes to the reads'
 * connection.
 */
static int
vpg_place(const struct vpg_job *j)
{
	const struct vpg_job	*k;
	int			 where;

	where = vpg_writes(j->op) ? VPG_WRITES : VPG_READS;
	/* The common case: a read, and no write to wait for. */
	if (where == VPG_READS && j->v->nwrites == 0)
		return where;
	for (k = TAILQ_FIRST(&j->v->jobs); k != NULL && k != j;
	    k = TAILQ_NEXT(k, entry)) {
		if (k->op == VPG_PREPARE || !vpg_overlap(k, j) ||
		    (!vpg_writes(k->op) && !vpg_writes(j->op)))
			continue;
		if (!k->sent || k->conn != VPG_WRITES)
			return -1;
		where = VPG_WRITES;
	}
	return where;
}

/*
 * Prepare the hot statements on connection c unless they are already:
 * sent ahead of the query that needs them, in the same pipeline.  The
 * reads' connection prepares the reads (the first VPG_NREADS) only: a
 * PREPARE of a write takes the write's lock on its table, and would wait
 * for a lock that holds the writes.
 */
static int
vpg_prepare(struct vpg *v, int c, struct cb_error *err)
{
	struct vpg_conn		*vc = &v->conn[c];
	struct pg_stmt		 stmts[VPG_NPREPARED];
	char			 sql[VPG_NPREPARED][512];
	char			 names[VPG_NPREPARED][VPG_NAME_MAX];
	struct pg_status	 st;
	struct vpg_job		*j;
	size_t			 i, n;
	int			 rc;

	n = c == VPG_READS ? VPG_NREADS : VPG_NPREPARED;
	pg_status(vc->pg, &st);
	if (vc->prepared && vc->epoch == st.reconnects)
		return 0;
	if ((j = vpg_job_new(v, VPG_PREPARE, (union vpg_cb){ .get = NULL },
	    NULL, err)) == NULL)
		return -CB_EINTERNAL;
	j->conn = c;
	j->sent = true;
	j->attempt = vc->attempt + 1;
	memset(stmts, 0, sizeof(stmts));
	memset(names, 0, sizeof(names));
	for (i = 0; i < n; i++) {
		snprintf(names[i], sizeof(names[i]), "cb_values_%s_%u",
		    vpg_stems[i], j->attempt);
		snprintf(sql[i], sizeof(sql[i]), "PREPARE %s %s", names[i],
		    vpg_prepares[i]);
		stmts[i].sql = sql[i];
	}
	if ((rc = pg_batch(vc->pg, stmts, n, vpg_result, j, err)) != 0) {
		vpg_job_free(j);
		return rc;
	}
	TAILQ_INSERT_TAIL(&v->jobs, j, entry);
	vc->attempt = j->attempt;
	memcpy(vc->names, names, sizeof(vc->names));
	vc->prepared = true;
	vc->epoch = st.reconnects;
	return 0;
}

/* Read the next batch of users' values after rs's cursor. */
static int
vpg_reseal_scan(struct vpg_job *j, struct cb_error *err)
{
	struct values_reseal	*rs = j->rs;
	const char		*params[3];
	char			 limit[16];

	snprintf(limit, sizeof(limit), "%d", VPG_BATCH);
	if (rs->cursor.type_uuid[0] == '\0') {
		params[0] = limit;
		return pg_query(vpg_pg(j), VPG_SQL_SCAN_FIRST, 1, params, NULL,
		    NULL, vpg_result, j, err);
	}
	if (!ids_uuid_valid(rs->cursor.type_uuid) ||
	    !ids_uuid_valid(rs->cursor.user_uuid))
		return cb_error_set(err, CB_EINTERNAL,
		    "malformed re-seal cursor");
	params[0] = rs->cursor.type_uuid;
	params[1] = rs->cursor.user_uuid;
	params[2] = limit;
	return pg_query(vpg_pg(j), VPG_SQL_SCAN, 3, params, NULL, NULL,
	    vpg_result, j, err);
}

/* Send j's (first) statement on connection c. */
static int
vpg_send(struct vpg_job *j, int c, struct cb_error *err)
{
	struct vpg_conn	*vc = &j->v->conn[c];
	const char	*params[3], *sql, *name = NULL;
	int		 acc, rc, n = 1;

	j->conn = c;
	acc = j->account[0] != '\0';
	params[0] = j->type_uuid;
	switch (j->op) {
	case VPG_GET:
	case VPG_SET:
	case VPG_DEL:
		if ((rc = vpg_prepare(j->v, c, err)) != 0)
			return rc;
		params[1] = acc ? j->account : j->user_uuid;
		params[2] = j->sealed;
		n = j->op == VPG_SET ? 3 : 2;
		name = vc->names[j->op == VPG_GET ? (acc ? VPG_P_AGET :
		    VPG_P_GET) : j->op == VPG_SET ? (acc ? VPG_P_ASET :
		    VPG_P_SET) : (acc ? VPG_P_ADEL : VPG_P_DEL)];
		return pg_query_prepared(vc->pg, name, n, params, NULL, NULL,
		    vpg_result, j, err);
	case VPG_LIST:
		sql = VPG_SQL_LIST;
		break;
	case VPG_ACCOUNTS:
		sql = VPG_SQL_ACCOUNTS;
		break;
	case VPG_CLEAR:
		sql = VPG_SQL_CLEAR;
		break;
	case VPG_STATUS:
		sql = VPG_SQL_STATUS;
		params[0] = j->user_uuid;
		break;
	case VPG_RESEAL:
		return vpg_reseal_scan(j, err);
	default:
		return cb_error_set(err, CB_EINTERNAL, "unknown operation");
	}
	return pg_query(vc->pg, sql, n, params, NULL, NULL, vpg_result, j,
	    err);
}

/* Take j out of v's list. */
static void
vpg_unlink(struct vpg *v, struct vpg_job *j)
{
	TAILQ_REMOVE(&v->jobs, j, entry);
	if (vpg_writes(j->op))
		v->nwrites--;
	if (!j->sent)
		v->nwaiting--;
}

/*
 * j is asked: it goes out now where vpg_place says, or waits in v's list
 * for its turn (vpg_pump).  On failure j is freed and nothing is
 * answered.
 */
static int
vpg_ask(struct vpg_job *j, struct cb_error *err)
{
	struct vpg	*v = j->v;
	int		 c, rc;

	if (vpg_writes(j->op)) {
		j->seq = ++v->writes;
		v->nwrites++;
	}
	TAILQ_INSERT_TAIL(&v->jobs, j, entry);
	v->nwaiting++;
	if ((c = vpg_place(j)) < 0)
		return 0;
	if ((rc = vpg_send(j, c, err)) != 0) {
		vpg_unlink(v, j);
		vpg_job_free(j);
		return rc;
	}
	j->sent = true;
	v->nwaiting--;
	return 0;
}

/* Check and copy the names of one value into j. */
static int
vpg_ref(struct vpg_job *j, const struct values_ref *ref, struct cb_error *err)
{
	if (ref == NULL || !ids_uuid_valid(ref->type_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	memcpy(j->type_uuid, ref->type_uuid, sizeof(j->type_uuid));
	if (ref->account != NULL) {
		if (!ids_ident_valid(ref->account))
			return cb_error_set(err, CB_EBADREQ, "invalid account "
			    "name (must match [a-z][a-z0-9_]{0,63})");
		snprintf(j->account, sizeof(j->account), "%s", ref->account);
		return 0;
	}
	if (!ids_uuid_valid(ref->user_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid user id (must be a lower-case uuid)");
	memcpy(j->user_uuid, ref->user_uuid, sizeof(j->user_uuid));
	return 0;
}

/* get, set and delete of one value: prepared statements. */
static int
vpg_one(struct vpg *v, int op, const struct values_ref *ref,
    const char *sealed, union vpg_cb cb, void *arg, struct cb_error *err)
{
	struct vpg_job	*j;
	int		 rc;

	if ((j = vpg_job_new(v, op, cb, arg, err)) == NULL)
		return -CB_EINTERNAL;
	if ((rc = vpg_ref(j, ref, err)) != 0)
		goto fail;
	if (op == VPG_SET && (sealed == NULL || *sealed == '\0')) {
		rc = cb_error_set(err, CB_EINTERNAL, "empty sealed value");
		goto fail;
	}
	/* Kept for a set that waits its turn: sealed, never plaintext. */
	if (sealed != NULL && (j->sealed = strdup(sealed)) == NULL) {
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
		goto fail;
	}
	return vpg_ask(j, err);
fail:
	vpg_job_free(j);
	return rc;
}

static int
vpg_get(struct values *vv, const struct values_ref *ref, values_get_fn fn,
    void *arg, struct cb_error *err)
{
	return vpg_one((struct vpg *)vv, VPG_GET, ref, NULL,
	    (union vpg_cb){ .get = fn }, arg, err);
}

static int
vpg_set(struct values *vv, const struct values_ref *ref, const char *sealed,
    values_done_fn fn, void *arg, struct cb_error *err)
{
	return vpg_one((struct vpg *)vv, VPG_SET, ref, sealed,
	    (union vpg_cb){ .done = fn }, arg, err);
}

static int
vpg_del(struct values *vv, const struct values_ref *ref, values_done_fn fn,
    void *arg, struct cb_error *err)
{
	return vpg_one((struct vpg *)vv, VPG_DEL, ref, NULL,
	    (union vpg_cb){ .done = fn }, arg, err);
}

/* A statement on every value of one type (list, accounts, clear). */
static int
vpg_by_type(struct vpg *v, int op, const char *type_uuid, union vpg_cb cb,
    void *arg, struct cb_error *err)
{
	struct vpg_job	*j;

	if (!ids_uuid_valid(type_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	if ((j = vpg_job_new(v, op, cb, arg, err)) == NULL)
		return -CB_EINTERNAL;
	memcpy(j->type_uuid, type_uuid, sizeof(j->type_uuid));
	return vpg_ask(j, err);
}

static int
vpg_list(struct values *vv, const char *type_uuid, values_list_fn fn,
    void *arg, struct cb_error *err)
{
	return vpg_by_type((struct vpg *)vv, VPG_LIST, type_uuid,
	    (union vpg_cb){ .list = fn }, arg, err);
}

/* Not generational, as SQLite: every account row is of the type's. */
static int
vpg_list_accounts(struct values *vv, const char *type_uuid,
    int64_t generation, values_accounts_fn fn, void *arg,
    struct cb_error *err)
{
	(void)generation;
	return vpg_by_type((struct vpg *)vv, VPG_ACCOUNTS, type_uuid,
	    (union vpg_cb){ .accounts = fn }, arg, err);
}

static int
vpg_clear(struct values *vv, const char *type_uuid, values_done_fn fn,
    void *arg, struct cb_error *err)
{
	return vpg_by_type((struct vpg *)vv, VPG_CLEAR, type_uuid,
	    (union vpg_cb){ .done = fn }, arg, err);
}

/* The types array must stay valid until the answers (the caller's). */
static int
vpg_status(struct values *vv, const char *user_uuid,
    const struct store_type *const *types, size_t n, values_status_fn fn,
    void *arg, struct cb_error *err)
{
	struct vpg	*v = (struct vpg *)vv;
	struct vpg_job	*j;

	if (!ids_uuid_valid(user_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid user id (must be a lower-case uuid)");
	if ((j = vpg_job_new(v, VPG_STATUS, (union vpg_cb){ .status = fn },
	    arg, err)) == NULL)
		return -CB_EINTERNAL;
	memcpy(j->user_uuid, user_uuid, sizeof(j->user_uuid));
	j->types = types;
	j->ntypes = n;
	return vpg_ask(j, err);
}

/*
 * Re-sealing reads the rows it rewrites: every phase goes on the writes'
 * connection, where it touches every value (vpg_overlap).
 */
static int
vpg_reseal(struct values *vv, struct values_reseal *rs, values_reseal_fn fn,
    void *arg, struct cb_error *err)
{
	struct vpg	*v = (struct vpg *)vv;
	struct vpg_job	*j;

	if (rs == NULL || rs->reseal == NULL)
		return cb_error_set(err, CB_EINTERNAL, "nothing to re-seal "
		    "with");
	if ((j = vpg_job_new(v, VPG_RESEAL, (union vpg_cb){ .reseal = fn },
	    arg, err)) == NULL)
		return -CB_EINTERNAL;
	j->rs = rs;
	j->phase = VPG_RS_USERS;
	return vpg_ask(j, err);
}

/* rows[i] from a "type_uuid, key, sealed" result, re-sealed by rs. */
static int
vpg_reseal_rows(struct vpg_job *j, PGresult *res, bool accounts,
    struct vpg_row **out, size_t *nout, struct cb_error *err)
{
	struct values_reseal	*rs = j->rs;
	struct values_ref	 ref;
	struct vpg_row		*rows;
	char			 context[VALUES_CONTEXT_MAX];
	const char		*t, *k;
	size_t			 n = (size_t)PQntuples(res), i;
	int			 rc;

	*out = NULL;
	*nout = 0;
	if ((rows = calloc(n + 1, sizeof(*rows))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	for (i = 0; i < n; i++) {
		t = PQgetvalue(res, (int)i, 0);
		k = PQgetvalue(res, (int)i, 1);
		if (strlen(t) != STORE_UUID_LEN || strlen(k) >
		    STORE_IDENT_MAX) {
			rc = cb_error_set(err, CB_EINTERNAL, "PostgreSQL "
			    "holds a malformed value row");
			goto fail;
		}
		memcpy(rows[i].type_uuid, t, STORE_UUID_LEN + 1);
		memcpy(rows[i].key, k, strlen(k) + 1);
		if ((rows[i].old = strdup(PQgetvalue(res, (int)i, 2))) ==
		    NULL) {
			rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
			goto fail;
		}
		*nout = i + 1;
		memset(&ref, 0, sizeof(ref));
		ref.type_uuid = rows[i].type_uuid;
		if (accounts)
			ref.account = rows[i].key;
		else
			ref.user_uuid = rows[i].key;
		values_context(&j->v->base, context, sizeof(context), &ref);
		if ((rc = rs->reseal(rs->arg, context, rows[i].old,
		    &rows[i].sealed, err)) != 0)
			goto fail;
	}
	*out = rows;
	*nout = n;
	return 0;
fail:
	vpg_rows_free(rows, *nout);
	*nout = 0;
	return rc;
}

/* Append s to a growing buffer; false when out of memory. */
static bool
vpg_cat(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
	char	*nb;
	size_t	 want = *len + n + 1;

	if (want > *cap) {
		if (want < 2 * *cap)
			want = 2 * *cap;
		if ((nb = realloc(*buf, want)) == NULL)
			return false;
		*buf = nb;
		*cap = want;
	}
	memcpy(*buf + *len, s, n);
	*len += n;
	(*buf)[*len] = '\0';
	return true;
}

/*
 * The array literal of one column of the rows that changed: field 0 the
 * type uuid, 1 the key, 2 the text read, 3 the new text.  Elements are
 * double-quoted, with '"' and '\' escaped.
 */
static char *
vpg_array(const struct vpg_row *rows, size_t n, int field)
{
	char		*buf = NULL;
	const char	*s, *p;
	size_t		 len = 0, cap = 0, i;
	bool		 ok, first = true;

	ok = vpg_cat(&buf, &len, &cap, "{", 1);
	for (i = 0; ok && i < n; i++) {
		if (rows[i].sealed == NULL)
			continue;
		s = field == 0 ? rows[i].type_uuid : field == 1 ? rows[i].key :
		    field == 2 ? rows[i].old : rows[i].sealed;
		ok = (first || vpg_cat(&buf, &len, &cap, ",", 1)) &&
		    vpg_cat(&buf, &len, &cap, "\"", 1);
		first = false;
		for (p = s; ok && *p != '\0'; p++) {
			if (*p == '"' || *p == '\\')
				ok = vpg_cat(&buf, &len, &cap, "\\", 1);
			if (ok)
				ok = vpg_cat(&buf, &len, &cap, p, 1);
		}
		if (ok)
			ok = vpg_cat(&buf, &len, &cap, "\"", 1);
	}
	if (ok)
		ok = vpg_cat(&buf, &len, &cap, "}", 1);
	if (!ok) {
		free(buf);
		return NULL;
	}
	return buf;
}

static size_t
vpg_changed(const struct vpg_row *rows, size_t n)
{
	size_t	i, c = 0;

	for (i = 0; i < n; i++)
		if (rows[i].sealed != NULL)
			c++;
	return c;
}

/*
 * Write what the batch re-sealed and the checkpoint after it, in one
 * transaction.  *sent false: nothing to write (answer now).
 */
static int
vpg_reseal_write(struct vpg_job *j, bool *sent, struct cb_error *err)
{
	struct values_reseal	*rs = j->rs;
	struct pg_stmt		 stmts[3];
	char			*arr[2][4];
	const char		*params[2][4], *kv[2];
	size_t			 n = 0, i, k;
	int			 rc = 0;

	*sent = false;
	memset(arr, 0, sizeof(arr));
	memset(stmts, 0, sizeof(stmts));
	for (k = 0; k < 2; k++) {
		const struct vpg_row	*rows = k == 0 ? j->rows : j->arows;
		size_t			 nr = k == 0 ? j->nrows : j->narows;

		if (vpg_changed(rows, nr) == 0)
			continue;
		for (i = 0; i < 4; i++) {
			if ((arr[k][i] = vpg_array(rows, nr, (int)i)) ==
			    NULL) {
				rc = cb_error_set(err, CB_EINTERNAL,
				    "out of memory");
				goto done;
			}
			params[k][i] = arr[k][i];
		}
		stmts[n].sql = k == 0 ? VPG_SQL_RESEAL :
		    VPG_SQL_RESEAL_ACCOUNTS;
		stmts[n].nparams = 4;
		stmts[n].values = params[k];
		n++;
	}
	if (j->doc != NULL) {
		kv[0] = rs->setting;
		kv[1] = j->doc;
		stmts[n].sql = VPG_SQL_SETTING;
		stmts[n].nparams = 2;
		stmts[n].values = kv;
		n++;
	}
	if (n == 0)
		goto done;
	if ((rc = pg_batch(vpg_pg(j), stmts, n, vpg_result, j, err)) == 0)
		*sent = true;
done:
	for (k = 0; k < 2; k++)
		for (i = 0; i < 4; i++)
			free(arr[k][i]);
	return rc;
}

/* Answer j's caller with a failure. */
static void
vpg_fail(struct vpg_job *j, int rc, const struct cb_error *err)
{
	size_t	i;

	switch (j->op) {
	case VPG_GET:
		j->cb.get(j->arg, rc, NULL, 0, err);
		break;
	case VPG_SET:
	case VPG_DEL:
	case VPG_CLEAR:
		j->cb.done(j->arg, rc, 0, err);
		break;
	case VPG_LIST:
		j->cb.list(j->arg, rc, NULL, 0, err);
		break;
	case VPG_ACCOUNTS:
		j->cb.accounts(j->arg, rc, NULL, NULL, 0, err);
		break;
	case VPG_STATUS:
		for (i = 0; i < j->ntypes; i++)
			j->cb.status(j->arg, i, rc, 0, err);
		break;
	case VPG_RESEAL:
		j->cb.reseal(j->arg, rc, 0, false, err);
		break;
	}
}

static const char *
vpg_what(const struct vpg_job *j)
{
	bool	acc = j->account[0] != '\0';

	switch (j->op) {
	case VPG_GET:
		return acc ? "get account value" : "get value";
	case VPG_SET:
		return acc ? "set account value" : "set value";
	case VPG_DEL:
		return acc ? "delete account value" : "delete value";
	case VPG_LIST:
		return "list values";
	case VPG_ACCOUNTS:
		return "list accounts";
	case VPG_CLEAR:
		return "clear values";
	case VPG_STATUS:
		return "list values";
	default:
		return "re-seal values";
	}
}

static int64_t
vpg_int(PGresult *res, int row, int col)
{
	return strtoll(PQgetvalue(res, row, col), NULL, 10);
}

/* "no value set for ..." as SQLite says it. */
static int
vpg_notfound(const struct vpg_job *j, struct cb_error *err)
{
	if (j->account[0] != '\0')
		return cb_error_set(err, CB_ENOTFOUND, "no value set for "
		    "credential type %s and account '%s'", j->type_uuid,
		    j->account);
	return cb_error_set(err, CB_ENOTFOUND, "no value set for credential "
	    "type %s and user %s", j->type_uuid, j->user_uuid);
}

/* status: each type's updated_at from the rows (ordered by type uuid). */
static void
vpg_answer_status(struct vpg_job *j, PGresult *res)
{
	size_t	 i;
	int	 lo, hi, mid, c, n = PQntuples(res);
	int64_t	 at;

	for (i = 0; i < j->ntypes; i++) {
		at = 0;
		for (lo = 0, hi = n - 1; lo <= hi; ) {
			mid = lo + (hi - lo) / 2;
			c = strcmp(j->types[i]->uuid, PQgetvalue(res, mid, 0));
			if (c == 0) {
				at = vpg_int(res, mid, 1);
				break;
			}
			if (c < 0)
				hi = mid - 1;
			else
				lo = mid + 1;
		}
		j->cb.status(j->arg, i, 0, at, NULL);
	}
}

/* A successful result for a list: pointers into res, valid during cb. */
static int
vpg_answer_list(struct vpg_job *j, PGresult *res, struct cb_error *err)
{
	char		**names;
	int64_t		 *at = NULL;
	int		  i, n = PQntuples(res);

	if ((names = calloc((size_t)n + 1, sizeof(*names))) == NULL ||
	    (j->op == VPG_ACCOUNTS && (at = calloc((size_t)n + 1,
	    sizeof(*at))) == NULL)) {
		free(names);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	for (i = 0; i < n; i++) {
		names[i] = PQgetvalue(res, i, 0);
		if (at != NULL)
			at[i] = vpg_int(res, i, 1);
	}
	if (j->op == VPG_ACCOUNTS)
		j->cb.accounts(j->arg, 0, names, at, (size_t)n, NULL);
	else
		j->cb.list(j->arg, 0, names, (size_t)n, NULL);
	free(names);
	free(at);
	return 0;
}

/*
 * A re-seal's result arrived: go on to its next phase.  Returns 1 when
 * the job goes on (sent again), 0 when it is answered, or a negative
 * code with err.
 */
static int
vpg_reseal_next(struct vpg_job *j, PGresult *res, struct cb_error *err)
{
	struct values_reseal	*rs = j->rs;
	bool			 sent;
	int			 rc;

	switch (j->phase) {
	case VPG_RS_USERS:
		if ((rc = vpg_reseal_rows(j, res, false, &j->rows, &j->nrows,
		    err)) != 0)
			return rc;
		j->next = rs->cursor;
		if (j->nrows > 0) {
			memcpy(j->next.type_uuid, j->rows[j->nrows - 1].type_uuid,
			    sizeof(j->next.type_uuid));
			memcpy(j->next.user_uuid, j->rows[j->nrows - 1].key,
			    sizeof(j->next.user_uuid));
		}
		j->last = j->nrows < VPG_BATCH;
		if (j->last) {
			/* The accounts' values go with the last batch. */
			j->phase = VPG_RS_ACCOUNTS;
			if ((rc = pg_query(vpg_pg(j), VPG_SQL_SCAN_ACCOUNTS, 0,
			    NULL, NULL, NULL, vpg_result, j, err)) != 0)
				return rc;
			return 1;
		}
		break;
	case VPG_RS_ACCOUNTS:
		if ((rc = vpg_reseal_rows(j, res, true, &j->arows,
		    &j->narows, err)) != 0)
			return rc;
		break;
	default:
		/* Committed: the cursor moves. */
		rs->cursor = j->next;
		j->cb.reseal(j->arg, 0, (int64_t)(j->nrows + j->narows),
		    j->last, NULL);
		return 0;
	}
	if (rs->checkpoint != NULL && (j->doc = rs->checkpoint(rs->arg,
	    &j->next, (int64_t)(j->nrows + j->narows), j->last)) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	j->phase = VPG_RS_WRITE;
	if ((rc = vpg_reseal_write(j, &sent, err)) != 0)
		return rc;
	if (sent)
		return 1;
	/* Nothing to write: done, as if committed. */
	rs->cursor = j->next;
	j->cb.reseal(j->arg, 0, (int64_t)(j->nrows + j->narows), j->last,
	    NULL);
	return 0;
}

/* A successful result: answer j.  0, 1 (j goes on), or an error. */
static int
vpg_answer(struct vpg_job *j, PGresult *res, struct cb_error *err)
{
	switch (j->op) {
	case VPG_GET:
		if (PQntuples(res) == 0)
			return vpg_notfound(j, err);
		j->cb.get(j->arg, 0, PQgetvalue(res, 0, 0), vpg_int(res, 0, 1),
		    NULL);
		return 0;
	case VPG_SET:
		if (PQntuples(res) != 1)
			return cb_error_set(err, CB_EINTERNAL, "%s: no answer "
			    "from PostgreSQL", vpg_what(j));
		j->cb.done(j->arg, 0, vpg_int(res, 0, 0), NULL);
		return 0;
	case VPG_DEL:
		if (strcmp(PQcmdTuples(res), "0") == 0)
			return vpg_notfound(j, err);
		j->cb.done(j->arg, 0, 0, NULL);
		return 0;
	case VPG_CLEAR:
		j->cb.done(j->arg, 0, PQntuples(res) == 1 ? vpg_int(res, 0, 0) :
		    0, NULL);
		return 0;
	case VPG_LIST:
	case VPG_ACCOUNTS:
		return vpg_answer_list(j, res, err);
	case VPG_STATUS:
		vpg_answer_status(j, res);
		return 0;
	case VPG_RESEAL:
		return vpg_reseal_next(j, res, err);
	default:
		return 0;
	}
}

/*
 * Send every waiting operation whose turn has come, in the order asked.
 * One that cannot be sent (its connection is down) is answered with the
 * reason: from the loop, as every answer.
 */
static void
vpg_pump(struct vpg *v)
{
	struct vpg_job	*j, *next;
	struct cb_error	 err, e;
	int		 c, rc;

	for (j = TAILQ_FIRST(&v->jobs); j != NULL && v->nwaiting > 0;
	    j = next) {
		next = TAILQ_NEXT(j, entry);
		if (j->sent || (c = vpg_place(j)) < 0)
			continue;
		cb_error_clear(&e);
		if ((rc = vpg_send(j, c, &e)) == 0) {
			j->sent = true;
			v->nwaiting--;
			continue;
		}
		vpg_unlink(v, j);
		cb_error_clear(&err);
		rc = cb_error_set(&err, e.code, "cannot %s: %s", vpg_what(j),
		    e.msg);
		vpg_fail(j, rc, &err);
		vpg_job_free(j);
	}
}

/* pg.c answered one of our queries. */
static void
vpg_result(void *arg, int rc, PGresult *res, const struct cb_error *e)
{
	struct vpg_job	*j = arg;
	struct vpg	*v = j->v;
	struct vpg_conn	*vc;
	struct cb_error	 err;
	const char	*state;

	if (v == NULL) {
		/* Answered already, when the backend was closed. */
		vpg_job_free(j);
		return;
	}
	vc = &v->conn[j->conn];
	cb_error_clear(&err);
	if (j->op == VPG_PREPARE) {
		/*
		 * The uses that follow fail on their own, with this cause
		 * (results arrive in order); the next call prepares again.
		 */
		vpg_unlink(v, j);
		if (rc != 0 && vc->attempt == j->attempt) {
			vc->prepared = false;
			vc->prepare_err = *e;
		}
		vpg_job_free(j);
		return;
	}
	/* A re-seal that goes on keeps its place among the operations. */
	if (rc == 0) {
		if ((rc = vpg_answer(j, res, &err)) == 1)
			return;
	} else {
		state = res != NULL ? PQresultErrorField(res,
		    PG_DIAG_SQLSTATE) : NULL;
		if (state != NULL && strcmp(state, "23503") == 0 &&
		    j->op == VPG_SET)
			rc = cb_error_set(&err, CB_ENOTFOUND,
			    "credential type '%s' not found", j->type_uuid);
		else if (!vc->prepared && vc->prepare_err.code != 0 &&
		    (j->op == VPG_GET || j->op == VPG_SET ||
		    j->op == VPG_DEL) && ((state != NULL &&
		    strcmp(state, "26000") == 0) || rc == -CB_EUNAVAILABLE))
			/*
			 * Its statement could not be prepared (or the
			 * PREPARE ahead of it timed out and took the
			 * connection with it): say why.
			 */
			rc = cb_error_set(&err, vc->prepare_err.code,
			    "cannot %s: %s", vpg_what(j),
			    vc->prepare_err.msg);
		else
			rc = cb_error_set(&err, e->code, "cannot %s: %s",
			    vpg_what(j), e->msg);
	}
	if (rc < 0)
		vpg_fail(j, rc, &err);
	vpg_unlink(v, j);
	vpg_job_free(j);
	/* What waited for j may go now. */
	vpg_pump(v);
}

/*
 * Closing: what is still waiting for PostgreSQL, or for its turn, is
 * answered now (a write sent may have been committed all the same); the
 * connections answer those queries later, to nobody.
 */
static void
vpg_close(struct values *vv)
{
	struct vpg	*v = (struct vpg *)vv;
	struct vpg_job	*j;
	struct cb_error	 err;
	int		 rc;

	while ((j = TAILQ_FIRST(&v->jobs)) != NULL) {
		vpg_unlink(v, j);
		if (j->op != VPG_PREPARE) {
			cb_error_clear(&err);
			rc = cb_error_set(&err, CB_EUNAVAILABLE, "the broker is "
			    "shutting down%s", j->sent && vpg_writes(j->op) ?
			    " (the write may have been committed)" : "");
			vpg_fail(j, rc, &err);
		}
		if (j->sent)
			j->v = NULL;
		else
			vpg_job_free(j);
	}
	free(v);
}

static const struct values_ops vpg_ops = {
	.name = "db",
	.where = "the database",
	.generational = false,
	.usable = vpg_usable,
	.get = vpg_get,
	.set = vpg_set,
	.del = vpg_del,
	.list_users = vpg_list,
	.list_accounts = vpg_list_accounts,
	.clear = vpg_clear,
	.status = vpg_status,
	.reseal = vpg_reseal,
	.close = vpg_close,
};

int
values_pg_new(struct pg *reads, struct pg *writes, struct values **out,
    struct cb_error *err)
{
	struct vpg	*v;

	if (reads == NULL || writes == NULL || reads == writes)
		return cb_error_set(err, CB_EINTERNAL, "no PostgreSQL "
		    "connections");
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	v->base.ops = &vpg_ops;
	v->conn[VPG_READS].pg = reads;
	v->conn[VPG_WRITES].pg = writes;
	TAILQ_INIT(&v->jobs);
	*out = &v->base;
	return 0;
}

uint64_t
values_pg_writes_asked(struct values *vv)
{
	return ((struct vpg *)vv)->writes;
}

bool
values_pg_writes_sent(struct values *vv, uint64_t n)
{
	struct vpg	*v = (struct vpg *)vv;
	struct vpg_job	*j;

	if (v->nwaiting == 0)
		return true;
	TAILQ_FOREACH(j, &v->jobs, entry)
		if (vpg_writes(j->op) && !j->sent && j->seq <= n)
			return false;
	return true;
}

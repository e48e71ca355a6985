/*
 * mirror: the PostgreSQL store's metadata in a local SQLite database, kept
 * up to date by replaying the broker's own writes on PostgreSQL and by
 * reading again the rows other brokers changed (mirror.h).
 */
#define SQLITE_ENABLE_SESSION		1
#define SQLITE_ENABLE_PREUPDATE_HOOK	1

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "mirror.h"
#include "pg.h"
#include "secbuf.h"

/*
 * The mirrored tables, parents before children (inserts in this order,
 * deletes in the reverse).  Their columns are read from the mirror's own
 * schema (sqlite.c), which pgschema.c keeps identical on PostgreSQL.
 */
static const char *const mirror_tables[] = {
	"types",
	"settings",
	"keycheck",
	"keypairs",
	"keypair_versions",
	"peerkeys",
	"credlinks",
};
#define MIRROR_NTABLES	(sizeof(mirror_tables) / sizeof(mirror_tables[0]))
#define MIRROR_COLS_MAX	16
#define MIRROR_SQL_MAX	2048
#define MIRROR_NUM_MAX	24	/* an integer parameter's text */
/*
 * The longest key field a notification may carry, and its characters:
 * uuids, idents, setting names and versions.
 */
#define MIRROR_KEY_MAX	256
#define MIRROR_KEY_CHARS	"abcdefghijklmnopqrstuvwxyz" \
				"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-"


struct mirror_cols {
	char	*name[MIRROR_COLS_MAX];
	int	 n;
	int	 pk[MIRROR_COLS_MAX];	/* column indexes of the key, in order */
	int	 npk;
};

struct mirror {
	char			*conninfo;
	struct secbuf		 password;
	bool			 has_password;
	unsigned		 timeout_ms;
	PGconn			*conn;
	bool			 in_txn;
	sqlite3_session		*sess;
	sqlite3			*cols_db;	/* cols were read from it */
	struct mirror_cols	 cols[MIRROR_NTABLES];
};

static uint64_t
mirror_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
mirror_cols_free(struct mirror *m)
{
	size_t	i;
	int	c;

	for (i = 0; i < MIRROR_NTABLES; i++) {
		for (c = 0; c < m->cols[i].n; c++)
			free(m->cols[i].name[c]);
		memset(&m->cols[i], 0, sizeof(m->cols[i]));
	}
	m->cols_db = NULL;
}

int
mirror_new(const char *conninfo, const char *password, unsigned timeout_ms,
    struct mirror **out, struct cb_error *err)
{
	struct mirror	*m;

	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL ||
	    (m->conninfo = strdup(conninfo)) == NULL) {
		free(m);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	if (password != NULL) {
		if (secbuf_set_str(&m->password, password,
		    strlen(password)) != 0) {
			free(m->conninfo);
			free(m);
			return cb_error_set(err, CB_EINTERNAL,
			    "out of memory");
		}
		m->has_password = true;
	}
	m->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
	*out = m;
	return 0;
}

static void
mirror_disconnect(struct mirror *m)
{
	if (m->conn != NULL)
		PQfinish(m->conn);
	m->conn = NULL;
	m->in_txn = false;
}

void
mirror_free(struct mirror *m)
{
	if (m == NULL)
		return;
	if (m->sess != NULL)
		sqlite3session_delete(m->sess);
	mirror_disconnect(m);
	mirror_cols_free(m);
	secbuf_free(&m->password);
	free(m->conninfo);
	free(m);
}

static void
mirror_notice(void *arg, const char *msg)
{
}

/* libpq's message on one line: controls become spaces, runs one space. */
static void
mirror_oneline(char *msg)
{
	char	*r, *w;

	for (r = w = msg; *r != '\0'; r++) {
		if ((unsigned char)*r < 0x20 || *r == 0x7f) {
			if (w > msg && w[-1] != ' ')
				*w++ = ' ';
			continue;
		}
		*w++ = *r;
	}
	while (w > msg && w[-1] == ' ')
		w--;
	*w = '\0';
}

static int
mirror_connect(struct mirror *m, struct cb_error *err)
{
	const char	*keys[6], *vals[6];
	char		 ct[16], msg[CB_ERRMSG_MAX], *pw, *options = NULL;
	int		 n = 0, ret;

	if (m->conn != NULL && PQstatus(m->conn) == CONNECTION_OK)
		return 0;
	mirror_disconnect(m);
	/*
	 * The server ends what runs longer than the timeout: a write given
	 * up on here is never committed later.
	 */
	if ((ret = pg_session_options(m->conninfo, m->timeout_ms, &options,
	    err)) != 0)
		return ret;
	snprintf(ct, sizeof(ct), "%u", (m->timeout_ms + 999) / 1000);
	keys[n] = "dbname";		/* expanded: the whole conninfo */
	vals[n++] = m->conninfo;
	keys[n] = "options";
	vals[n++] = options;
	keys[n] = "connect_timeout";
	vals[n++] = ct;
	if (m->has_password) {
		keys[n] = "password";
		vals[n++] = secbuf_str(&m->password);
	}
	keys[n] = "fallback_application_name";
	vals[n++] = "credbrokerd";
	keys[n] = NULL;
	vals[n] = NULL;
	m->conn = PQconnectdbParams(keys, vals, 1);
	free(options);
	if (m->conn == NULL)
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "cannot connect to PostgreSQL: out of memory");
	/* libpq needs the password only to authenticate. */
	if ((pw = PQpass(m->conn)) != NULL)
		cb_wipe(pw, strlen(pw));
	if (PQstatus(m->conn) != CONNECTION_OK) {
		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(m->conn));
		mirror_oneline(msg);
		mirror_disconnect(m);
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "cannot connect to PostgreSQL: %s", msg);
	}
	PQsetNoticeProcessor(m->conn, mirror_notice, NULL);
	if (PQsetnonblocking(m->conn, 1) != 0) {
		mirror_disconnect(m);
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "cannot set up the PostgreSQL connection");
	}
	return 0;
}

/* The connection failed under a statement: drop it, say why. */
static int
mirror_lost(struct mirror *m, const char *why, struct cb_error *err)
{
	char	msg[CB_ERRMSG_MAX];

	snprintf(msg, sizeof(msg), "%s", m->conn != NULL ?
	    PQerrorMessage(m->conn) : "");
	mirror_oneline(msg);
	mirror_disconnect(m);
	if (msg[0] == '\0')
		return cb_error_set(err, CB_EUNAVAILABLE, "PostgreSQL: %s",
		    why);
	return cb_error_set(err, CB_EUNAVAILABLE, "PostgreSQL: %s: %s", why,
	    msg);
}

/* Wait for events on the connection's socket until deadline. */
static int
mirror_wait(struct mirror *m, short events, uint64_t deadline,
    struct cb_error *err)
{
	struct pollfd	pfd;
	uint64_t	now;
	int		rc;

	for (;;) {
		if ((now = mirror_now_ms()) >= deadline) {
			mirror_disconnect(m);
			return cb_error_set(err, CB_EUNAVAILABLE, "PostgreSQL "
			    "did not answer within %u ms", m->timeout_ms);
		}
		pfd.fd = PQsocket(m->conn);
		pfd.events = events;
		pfd.revents = 0;
		rc = poll(&pfd, 1, (int)(deadline - now));
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return mirror_lost(m, "poll failed", err);
	}
}

/*
 * One statement with text parameters, bounded by the timeout: *out (if
 * not NULL) gets its result.  A refused statement is -CB_ECONFLICT when
 * another writer's row is in the way (unique or foreign key violation,
 * serialization failure), else -CB_EINTERNAL; a lost connection or a
 * late answer is -CB_EUNAVAILABLE.
 */
static int
mirror_exec(struct mirror *m, const char *sql, int nparams,
    const char *const *vals, PGresult **out, struct cb_error *err)
{
	PGresult	*res, *keep = NULL;
	const char	*state, *prim;
	uint64_t	 deadline;
	int		 rc, ret = 0;

	if (out != NULL)
		*out = NULL;
	if (m->conn == NULL)
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "PostgreSQL: not connected");
	deadline = mirror_now_ms() + m->timeout_ms;
	if (!PQsendQueryParams(m->conn, sql, nparams, NULL, vals, NULL, NULL,
	    0))
		return mirror_lost(m, "cannot send a statement", err);
	while ((rc = PQflush(m->conn)) == 1)
		if ((ret = mirror_wait(m, POLLOUT | POLLIN, deadline,
		    err)) != 0)
			return ret;
	if (rc < 0)
		return mirror_lost(m, "cannot send a statement", err);
	for (;;) {
		while (PQisBusy(m->conn)) {
			if ((ret = mirror_wait(m, POLLIN, deadline, err)) != 0)
				goto fail;
			if (!PQconsumeInput(m->conn)) {
				ret = mirror_lost(m, "connection lost", err);
				goto fail;
			}
		}
		if ((res = PQgetResult(m->conn)) == NULL)
			break;
		if (keep == NULL ||
		    PQresultStatus(keep) != PGRES_FATAL_ERROR) {
			PQclear(keep);
			keep = res;
		} else
			PQclear(res);
	}
	if (keep == NULL)
		return mirror_lost(m, "no answer", err);
	switch (PQresultStatus(keep)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		break;
	default:
		if (PQstatus(m->conn) != CONNECTION_OK) {
			PQclear(keep);
			return mirror_lost(m, "connection lost", err);
		}
		state = PQresultErrorField(keep, PG_DIAG_SQLSTATE);
		prim = PQresultErrorField(keep, PG_DIAG_MESSAGE_PRIMARY);
		if (state == NULL)
			state = "";
		if (strcmp(state, "23505") == 0 ||
		    strcmp(state, "23503") == 0 ||
		    strcmp(state, "40001") == 0 ||
		    strcmp(state, "40P01") == 0)
			ret = cb_error_set(err, CB_ECONFLICT, "changed through "
			    "another broker at the same time; try again");
		else if (strncmp(state, "57P", 3) == 0 ||
		    strcmp(state, "57014") == 0 ||	/* statement_timeout */
		    strncmp(state, "08", 2) == 0)
			ret = cb_error_set(err, CB_EUNAVAILABLE,
			    "PostgreSQL: %s (%s)", prim != NULL ? prim : "",
			    state);
		else
			ret = cb_error_set(err, CB_EINTERNAL,
			    "PostgreSQL: %s (%s)", prim != NULL ? prim : "",
			    state);
		PQclear(keep);
		return ret;
	}
	if (out != NULL)
		*out = keep;
	else
		PQclear(keep);
	return 0;

fail:
	PQclear(keep);
	return ret;
}

/* The column names and key of every mirrored table, from db's schema. */
static int
mirror_cols_load(struct mirror *m, sqlite3 *db, struct cb_error *err)
{
	sqlite3_stmt		*stmt = NULL;
	struct mirror_cols	*c;
	char			 sql[128];
	int			 pkpos[MIRROR_COLS_MAX], pos, i, k;
	size_t			 t;

	if (m->cols_db == db)
		return 0;
	mirror_cols_free(m);
	for (t = 0; t < MIRROR_NTABLES; t++) {
		c = &m->cols[t];
		snprintf(sql, sizeof(sql), "PRAGMA table_info(%s)",
		    mirror_tables[t]);
		if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
			goto fail;
		while (sqlite3_step(stmt) == SQLITE_ROW) {
			if (c->n == MIRROR_COLS_MAX)
				goto fail;
			if ((c->name[c->n] = strdup((const char *)
			    sqlite3_column_text(stmt, 1))) == NULL)
				goto fail;
			pkpos[c->n] = sqlite3_column_int(stmt, 5);
			c->n++;
		}
		sqlite3_finalize(stmt);
		stmt = NULL;
		/* The key's columns in key order (pk is 1, 2...). */
		for (k = 1; k <= c->n; k++)
			for (i = 0; i < c->n; i++)
				if (pkpos[i] == k)
					c->pk[c->npk++] = i;
		for (pos = 0, i = 0; i < c->n; i++)
			pos += pkpos[i] != 0;
		if (c->n == 0 || c->npk == 0 || c->npk != pos)
			goto fail;
	}
	m->cols_db = db;
	return 0;

fail:
	sqlite3_finalize(stmt);
	mirror_cols_free(m);
	return cb_error_set(err, CB_EINTERNAL, "the mirror's schema cannot "
	    "be read");
}

static int
mirror_table_index(const char *name)
{
	size_t	t;

	for (t = 0; t < MIRROR_NTABLES; t++)
		if (strcmp(mirror_tables[t], name) == 0)
			return (int)t;
	return -1;
}

/* Append to a statement's text; -1 when it does not fit. */
static int
mirror_cat(char *sql, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
mirror_cat(char *sql, size_t *len, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(sql + *len, MIRROR_SQL_MAX - *len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= MIRROR_SQL_MAX - *len)
		return -1;
	*len += (size_t)n;
	return 0;
}

/*
 * A column value of a change as a text parameter: buf holds integers;
 * NULL for SQL NULL.  -1 for what the mirror never stores (reals, blobs).
 */
static int
mirror_param(sqlite3_value *v, char *buf, size_t size, const char **out)
{
	switch (sqlite3_value_type(v)) {
	case SQLITE_NULL:
		*out = NULL;
		return 0;
	case SQLITE_INTEGER:
		snprintf(buf, size, "%lld", (long long)sqlite3_value_int64(v));
		*out = buf;
		return 0;
	case SQLITE_TEXT:
		*out = (const char *)sqlite3_value_text(v);
		return *out != NULL ? 0 : -1;
	default:
		return -1;
	}
}

/*
 * " WHERE k1 = $first AND k2 = $first+1..." from the key columns of c, or
 * with SQLite's "?" for every value when first is 0; -1 when it does not
 * fit.
 */
static int
mirror_key_where(const struct mirror_cols *c, int first, char *sql,
    size_t *len)
{
	int	k, rc;

	if (mirror_cat(sql, len, " WHERE ") != 0)
		return -1;
	for (k = 0; k < c->npk; k++) {
		if (first > 0)
			rc = mirror_cat(sql, len, "%s%s = $%d",
			    k > 0 ? " AND " : "", c->name[c->pk[k]], first + k);
		else
			rc = mirror_cat(sql, len, "%s%s = ?",
			    k > 0 ? " AND " : "", c->name[c->pk[k]]);
		if (rc != 0)
			return -1;
	}
	return 0;
}

/*
 * The old values of a change's key columns as parameters vals[*np] on
 * (nums holds integers); -1 for one that cannot be a parameter.
 */
static int
mirror_key_params(const struct mirror_cols *c, sqlite3_changeset_iter *it,
    const char **vals, char (*nums)[MIRROR_NUM_MAX], int *np)
{
	sqlite3_value	*v;
	int		 k;

	for (k = 0; k < c->npk; k++) {
		if (sqlite3changeset_old(it, c->pk[k], &v) != SQLITE_OK ||
		    v == NULL || mirror_param(v, nums[*np], sizeof(nums[*np]),
		    &vals[*np]) != 0)
			return -1;
		(*np)++;
	}
	return 0;
}

/* Replay one change of the recorded set on PostgreSQL. */
static int
mirror_replay_one(struct mirror *m, sqlite3_changeset_iter *it,
    struct cb_error *err)
{
	const struct mirror_cols	*c;
	const char			*table, *vals[2 * MIRROR_COLS_MAX];
	char				 sql[MIRROR_SQL_MAX];
	char				 nums[2 * MIRROR_COLS_MAX][MIRROR_NUM_MAX];
	sqlite3_value			*v;
	PGresult			*res = NULL;
	size_t				 len = 0;
	int				 ncol, op, ind, t, i, k, first, np = 0;
	int				 ret;

	if (sqlite3changeset_op(it, &table, &ncol, &op, &ind) != SQLITE_OK ||
	    (t = mirror_table_index(table)) < 0)
		return cb_error_set(err, CB_EINTERNAL, "the mirror recorded "
		    "a change it cannot replay");
	c = &m->cols[t];
	if (ncol != c->n)
		return cb_error_set(err, CB_EINTERNAL, "the mirror's %s has "
		    "%d columns, not %d", table, ncol, c->n);
	switch (op) {
	case SQLITE_INSERT:
		if (mirror_cat(sql, &len, "INSERT INTO %s (", table) != 0)
			goto toolong;
		for (i = 0; i < c->n; i++)
			if (mirror_cat(sql, &len, "%s%s", i > 0 ? ", " : "",
			    c->name[i]) != 0)
				goto toolong;
		if (mirror_cat(sql, &len, ") VALUES (") != 0)
			goto toolong;
		for (i = 0; i < c->n; i++) {
			if (sqlite3changeset_new(it, i, &v) != SQLITE_OK ||
			    v == NULL || mirror_param(v, nums[np],
			    sizeof(nums[np]), &vals[np]) != 0)
				goto bad;
			np++;
			if (mirror_cat(sql, &len, "%s$%d", i > 0 ? ", " : "",
			    np) != 0)
				goto toolong;
		}
		if (mirror_cat(sql, &len, ")") != 0)
			goto toolong;
		break;
	case SQLITE_DELETE:
		if (mirror_cat(sql, &len, "DELETE FROM %s", table) != 0)
			goto toolong;
		first = np + 1;
		if (mirror_key_params(c, it, vals, nums, &np) != 0)
			goto bad;
		if (mirror_key_where(c, first, sql, &len) != 0)
			goto toolong;
		break;
	case SQLITE_UPDATE:
		/* SET what changed, where the key matches and the old holds. */
		if (mirror_cat(sql, &len, "UPDATE %s SET ", table) != 0)
			goto toolong;
		for (k = 0, i = 0; i < c->n; i++) {
			if (sqlite3changeset_new(it, i, &v) != SQLITE_OK)
				goto bad;
			if (v == NULL)
				continue;
			if (mirror_param(v, nums[np], sizeof(nums[np]),
			    &vals[np]) != 0)
				goto bad;
			np++;
			if (mirror_cat(sql, &len, "%s%s = $%d",
			    k++ > 0 ? ", " : "", c->name[i], np) != 0)
				goto toolong;
		}
		if (k == 0)
			return 0;
		first = np + 1;
		if (mirror_key_params(c, it, vals, nums, &np) != 0)
			goto bad;
		if (mirror_key_where(c, first, sql, &len) != 0)
			goto toolong;
		for (i = 0; i < c->n; i++) {
			if (sqlite3changeset_new(it, i, &v) != SQLITE_OK)
				goto bad;
			if (v == NULL)
				continue;
			if (sqlite3changeset_old(it, i, &v) != SQLITE_OK ||
			    v == NULL || mirror_param(v, nums[np],
			    sizeof(nums[np]), &vals[np]) != 0)
				goto bad;
			np++;
			if (mirror_cat(sql, &len, " AND %s IS NOT DISTINCT "
			    "FROM $%d", c->name[i], np) != 0)
				goto toolong;
		}
		break;
	default:
		goto bad;
	}
	if ((ret = mirror_exec(m, sql, np, vals, &res, err)) != 0)
		return ret;
	/*
	 * An update that found nothing: another broker changed or removed
	 * the row since the mirror read it.
	 */
	if (op == SQLITE_UPDATE && strcmp(PQcmdTuples(res), "0") == 0)
		ret = cb_error_set(err, CB_ECONFLICT, "changed through "
		    "another broker at the same time; try again");
	PQclear(res);
	return ret;

toolong:
	return cb_error_set(err, CB_EINTERNAL, "a change of %s does not fit "
	    "a statement", table);
bad:
	return cb_error_set(err, CB_EINTERNAL, "the mirror recorded a "
	    "change of %s it cannot replay", table);
}

int
mirror_txn_begin(struct mirror *m, struct cb_error *err)
{
	int	ret, tries;

	if (m->in_txn)
		return 0;
	/*
	 * A connection PostgreSQL dropped while idle (a restart) is found
	 * out by the first statement: connect again once.
	 */
	for (tries = 0; tries < 2; tries++) {
		if ((ret = mirror_connect(m, err)) != 0)
			return ret;
		if ((ret = mirror_exec(m, "BEGIN", 0, NULL, NULL, err)) == 0) {
			m->in_txn = true;
			return 0;
		}
		if (ret != -CB_EUNAVAILABLE)
			return ret;
	}
	return ret;
}

int
mirror_txn_commit(struct mirror *m, struct cb_error *err)
{
	struct cb_error	e;
	int		ret;

	if (!m->in_txn)
		return cb_error_set(err, CB_EINTERNAL, "no PostgreSQL "
		    "transaction to commit");
	m->in_txn = false;
	cb_error_clear(&e);
	if ((ret = mirror_exec(m, "COMMIT", 0, NULL, NULL, &e)) == 0)
		return 0;
	mirror_disconnect(m);	/* its state is unknown */
	if (ret == -CB_EUNAVAILABLE)
		return cb_error_set(err, CB_EUNAVAILABLE, "%s; PostgreSQL "
		    "did not confirm the commit, so the write may have been "
		    "made: read it back", e.msg);
	if (err != NULL)
		*err = e;
	return ret;
}

void
mirror_txn_abort(struct mirror *m)
{
	if (!m->in_txn)
		return;
	m->in_txn = false;
	if (mirror_exec(m, "ROLLBACK", 0, NULL, NULL, NULL) != 0)
		mirror_disconnect(m);
}

int
mirror_job_begin(struct mirror *m, struct store *st, struct cb_error *err)
{
	sqlite3	*db = store_sqlite(st);
	size_t	 t;
	int	 ret;

	if (m->sess != NULL) {
		sqlite3session_delete(m->sess);
		m->sess = NULL;
	}
	if ((ret = mirror_cols_load(m, db, err)) != 0)
		return ret;
	if (!m->in_txn)
		return cb_error_set(err, CB_EUNAVAILABLE, "PostgreSQL: the "
		    "connection was lost; the write was not made");
	if (sqlite3session_create(db, "main", &m->sess) != SQLITE_OK)
		goto fail;
	for (t = 0; t < MIRROR_NTABLES; t++)
		if (sqlite3session_attach(m->sess, mirror_tables[t]) !=
		    SQLITE_OK)
			goto fail;
	return mirror_exec(m, "SAVEPOINT cb_write", 0, NULL, NULL, err);

fail:
	if (m->sess != NULL)
		sqlite3session_delete(m->sess);
	m->sess = NULL;
	return cb_error_set(err, CB_EINTERNAL, "cannot record the mirror's "
	    "changes: out of memory");
}

int
mirror_job_end(struct mirror *m, struct store *st, bool keep,
    struct cb_error *err)
{
	sqlite3_changeset_iter	*it = NULL;
	void			*set = NULL;
	int			 nset = 0, ret = 0, rc;

	(void)st;
	if (m->sess == NULL)
		return cb_error_set(err, CB_EINTERNAL, "no write recorded");
	if (keep) {
		if (sqlite3session_changeset(m->sess, &nset, &set) !=
		    SQLITE_OK) {
			ret = cb_error_set(err, CB_EINTERNAL, "cannot read "
			    "the mirror's changes");
			goto undo;
		}
		if (nset > 0) {
			if (sqlite3changeset_start(&it, nset, set) !=
			    SQLITE_OK) {
				ret = cb_error_set(err, CB_EINTERNAL, "cannot "
				    "read the mirror's changes");
				goto undo;
			}
			while ((rc = sqlite3changeset_next(it)) == SQLITE_ROW)
				if ((ret = mirror_replay_one(m, it, err)) != 0)
					goto undo;
			if (rc != SQLITE_DONE) {
				ret = cb_error_set(err, CB_EINTERNAL, "cannot "
				    "read the mirror's changes");
				goto undo;
			}
		}
		if ((ret = mirror_exec(m, "RELEASE SAVEPOINT cb_write", 0,
		    NULL, NULL, err)) != 0)
			goto done;
		goto done;
	}
undo:
	if (m->conn != NULL && m->in_txn &&
	    mirror_exec(m, "ROLLBACK TO SAVEPOINT cb_write", 0, NULL, NULL,
	    NULL) != 0)
		mirror_disconnect(m);
	if (keep && ret == 0)
		ret = cb_error_set(err, CB_EINTERNAL, "write undone");
done:
	if (it != NULL)
		sqlite3changeset_finalize(it);
	sqlite3_free(set);
	sqlite3session_delete(m->sess);
	m->sess = NULL;
	if (m->conn == NULL)
		m->in_txn = false;
	return ret;
}

/*
 * Write one row read from PostgreSQL (res, row) into table t of db:
 * insert, or update the row of the same key in place (never delete and
 * insert, which would cascade to the row's children).
 */
static int
mirror_put(struct mirror *m, sqlite3 *db, int t, PGresult *res, int row,
    struct cb_error *err)
{
	const struct mirror_cols	*c = &m->cols[t];
	sqlite3_stmt			*stmt = NULL;
	char				 sql[MIRROR_SQL_MAX];
	size_t				 len = 0;
	int				 i, k, nset = 0, ret = 0;

	if (mirror_cat(sql, &len, "INSERT INTO %s (", mirror_tables[t]) != 0)
		goto toolong;
	for (i = 0; i < c->n; i++)
		if (mirror_cat(sql, &len, "%s%s", i > 0 ? ", " : "",
		    c->name[i]) != 0)
			goto toolong;
	if (mirror_cat(sql, &len, ") VALUES (") != 0)
		goto toolong;
	for (i = 0; i < c->n; i++)
		if (mirror_cat(sql, &len, "%s?", i > 0 ? ", " : "") != 0)
			goto toolong;
	if (mirror_cat(sql, &len, ") ON CONFLICT (") != 0)
		goto toolong;
	for (k = 0; k < c->npk; k++)
		if (mirror_cat(sql, &len, "%s%s", k > 0 ? ", " : "",
		    c->name[c->pk[k]]) != 0)
			goto toolong;
	if (mirror_cat(sql, &len, ") DO UPDATE SET ") != 0)
		goto toolong;
	for (i = 0; i < c->n; i++) {
		for (k = 0; k < c->npk && c->pk[k] != i; k++)
			;
		if (k < c->npk)
			continue;
		if (mirror_cat(sql, &len, "%s%s = excluded.%s",
		    nset++ > 0 ? ", " : "", c->name[i], c->name[i]) != 0)
			goto toolong;
	}
	if (nset == 0)
		goto toolong;	/* every mirrored table has a value column */
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		goto sqlerr;
	for (i = 0; i < c->n; i++) {
		if (PQgetisnull(res, row, i))
			ret = sqlite3_bind_null(stmt, i + 1);
		else
			ret = sqlite3_bind_text(stmt, i + 1,
			    PQgetvalue(res, row, i), -1, SQLITE_STATIC);
		if (ret != SQLITE_OK)
			goto sqlerr;
	}
	if (sqlite3_step(stmt) != SQLITE_DONE)
		goto sqlerr;
	sqlite3_finalize(stmt);
	return 0;

toolong:
	return cb_error_set(err, CB_EINTERNAL, "a row of %s does not fit a "
	    "statement", mirror_tables[t]);
sqlerr:
	ret = cb_error_set(err, CB_EINTERNAL, "mirror: %s: %s",
	    mirror_tables[t], sqlite3_errmsg(db));
	sqlite3_finalize(stmt);
	return ret;
}

/* "SELECT c1, c2... FROM t" into sql. */
static int
mirror_select(const struct mirror_cols *c, const char *table, char *sql,
    size_t *len)
{
	int	i;

	*len = 0;
	if (mirror_cat(sql, len, "SELECT ") != 0)
		return -1;
	for (i = 0; i < c->n; i++)
		if (mirror_cat(sql, len, "%s%s", i > 0 ? ", " : "",
		    c->name[i]) != 0)
			return -1;
	return mirror_cat(sql, len, " FROM %s", table);
}

static int
mirror_sqlite(sqlite3 *db, const char *sql, struct cb_error *err)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		return cb_error_set(err, CB_EINTERNAL, "mirror: %s",
		    sqlite3_errmsg(db));
	return 0;
}

/*
 * Inside a group's transaction, a statement that fails would abort the
 * writes around it: reads run in a savepoint of their own there.
 */
static int
mirror_read_begin(struct mirror *m, struct cb_error *err)
{
	if (!m->in_txn)
		return 0;
	return mirror_exec(m, "SAVEPOINT cb_read", 0, NULL, NULL, err);
}

static void
mirror_read_end(struct mirror *m, bool ok)
{
	if (!m->in_txn || m->conn == NULL)
		return;
	if (mirror_exec(m, ok ? "RELEASE SAVEPOINT cb_read" :
	    "ROLLBACK TO SAVEPOINT cb_read", 0, NULL, NULL, NULL) != 0)
		mirror_disconnect(m);
}

int
mirror_reload(struct mirror *m, struct store *st, struct cb_error *err)
{
	sqlite3		*db = store_sqlite(st);
	PGresult	*res = NULL;
	char		 sql[MIRROR_SQL_MAX];
	size_t		 len;
	bool		 own = false;
	int		 t, row, ret;

	if ((ret = mirror_cols_load(m, db, err)) != 0)
		return ret;
	if (!m->in_txn) {
		if ((ret = mirror_connect(m, err)) != 0 ||
		    (ret = mirror_exec(m, "BEGIN ISOLATION LEVEL REPEATABLE "
		    "READ READ ONLY", 0, NULL, NULL, err)) != 0)
			return ret;
		m->in_txn = own = true;
	} else if ((ret = mirror_read_begin(m, err)) != 0)
		return ret;
	if ((ret = mirror_sqlite(db, "SAVEPOINT cb_reload", err)) != 0)
		goto done;
	for (t = (int)MIRROR_NTABLES - 1; t >= 0; t--) {
		snprintf(sql, sizeof(sql), "DELETE FROM %s", mirror_tables[t]);
		if ((ret = mirror_sqlite(db, sql, err)) != 0)
			goto undo;
	}
	for (t = 0; t < (int)MIRROR_NTABLES; t++) {
		if (mirror_select(&m->cols[t], mirror_tables[t], sql,
		    &len) != 0) {
			ret = cb_error_set(err, CB_EINTERNAL, "a query of %s "
			    "does not fit a statement", mirror_tables[t]);
			goto undo;
		}
		if ((ret = mirror_exec(m, sql, 0, NULL, &res, err)) != 0)
			goto undo;
		for (row = 0; row < PQntuples(res); row++)
			if ((ret = mirror_put(m, db, t, res, row, err)) != 0)
				goto undo;
		PQclear(res);
		res = NULL;
	}
	if ((ret = mirror_sqlite(db, "RELEASE cb_reload", err)) != 0)
		goto undo;
	goto done;

undo:
	(void)sqlite3_exec(db, "ROLLBACK TO cb_reload; RELEASE cb_reload",
	    NULL, NULL, NULL);
done:
	PQclear(res);
	if (own && m->in_txn) {
		m->in_txn = false;
		if (mirror_exec(m, "COMMIT", 0, NULL, NULL, NULL) != 0)
			mirror_disconnect(m);
	} else if (!own)
		mirror_read_end(m, ret == 0);
	store_type_cache_drop(st);
	return ret;
}

int
mirror_refresh(struct mirror *m, struct store *st, const char *payload,
    const char **table, char key[STORE_UUID_LEN + 1], struct cb_error *err)
{
	const struct mirror_cols	*c;
	sqlite3				*db = store_sqlite(st);
	sqlite3_stmt			*stmt = NULL;
	PGresult			*res = NULL;
	const char			*vals[MIRROR_COLS_MAX], *p, *tab;
	char				 fields[MIRROR_COLS_MAX][MIRROR_KEY_MAX + 1];
	char				 name[32], sql[MIRROR_SQL_MAX];
	size_t				 len, n;
	int				 t, k, nf, ret;

	*table = NULL;
	key[0] = '\0';
	if ((ret = mirror_cols_load(m, db, err)) != 0)
		return ret;
	if ((tab = strchr(payload, '\t')) == NULL ||
	    (size_t)(tab - payload) >= sizeof(name))
		goto bad;
	memcpy(name, payload, (size_t)(tab - payload));
	name[tab - payload] = '\0';
	if ((t = mirror_table_index(name)) < 0)
		goto bad;
	c = &m->cols[t];
	for (nf = 0, p = tab + 1;; nf++) {
		n = strcspn(p, "\t");
		if (nf == c->npk || n == 0 || n > MIRROR_KEY_MAX ||
		    strspn(p, MIRROR_KEY_CHARS) < n)
			goto bad;
		memcpy(fields[nf], p, n);
		fields[nf][n] = '\0';
		vals[nf] = fields[nf];
		if (p[n] == '\0') {
			nf++;
			break;
		}
		p += n + 1;
	}
	if (nf != c->npk)
		goto bad;
	*table = mirror_tables[t];
	if (strlen(fields[0]) <= STORE_UUID_LEN)
		memcpy(key, fields[0], strlen(fields[0]) + 1);

	if (mirror_select(c, mirror_tables[t], sql, &len) != 0 ||
	    mirror_key_where(c, 1, sql, &len) != 0)
		goto toolong;
	if (!m->in_txn && (ret = mirror_connect(m, err)) != 0)
		return ret;
	if ((ret = mirror_read_begin(m, err)) != 0)
		return ret;
	ret = mirror_exec(m, sql, nf, vals, &res, err);
	mirror_read_end(m, ret == 0);
	if (ret != 0)
		return ret;
	if (PQntuples(res) > 0) {
		ret = mirror_put(m, db, t, res, 0, err);
		PQclear(res);
		return ret;
	}
	PQclear(res);
	/* Gone from PostgreSQL: gone from the mirror. */
	len = 0;
	if (mirror_cat(sql, &len, "DELETE FROM %s", mirror_tables[t]) != 0 ||
	    mirror_key_where(c, 0, sql, &len) != 0)
		goto toolong;
	if (sqlite3_prepare_v2(db, sql, -1, &stmt, NULL) != SQLITE_OK)
		goto sqlerr;
	for (k = 0; k < c->npk; k++)
		if (sqlite3_bind_text(stmt, k + 1, fields[k], -1,
		    SQLITE_STATIC) != SQLITE_OK)
			goto sqlerr;
	if (sqlite3_step(stmt) != SQLITE_DONE)
		goto sqlerr;
	sqlite3_finalize(stmt);
	return 0;

bad:
	return cb_error_set(err, CB_EBADREQ, "a notification that names no "
	    "row of a mirrored table");
toolong:
	return cb_error_set(err, CB_EINTERNAL, "a query of %s does not fit a "
	    "statement", name);
sqlerr:
	ret = cb_error_set(err, CB_EINTERNAL, "mirror: %s: %s", name,
	    sqlite3_errmsg(db));
	sqlite3_finalize(stmt);
	return ret;
}

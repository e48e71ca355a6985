/*
 * pg: one asynchronous PostgreSQL connection on the daemon's libuv loop,
 * through libpq's non-blocking interface in pipeline mode.
 *
 * No libpq call made here waits for the network: the connection is made
 * with PQconnectStartParams() and PQconnectPoll(), queries are sent with
 * PQsendQueryParams() / PQsendQueryPrepared() into the pipeline, the
 * output is pushed with PQflush() when the socket is writable, and the
 * input is read with PQconsumeInput() when it is readable.  A slow server
 * stalls only the queries that wait on it.
 *
 * Host names: libpq would resolve "host" with getaddrinfo(), which may
 * block on DNS.  A single host name (with no "hostaddr") is therefore
 * resolved first with uv_getaddrinfo(), off the loop, and libpq gets the
 * addresses.  A list of hosts ("host=a,b") or a host taken from the PGHOST
 * environment variable is still resolved by libpq: name those by address
 * ("hostaddr", or IP addresses as "host") or by names /etc/hosts answers.
 *
 * Contract, in short:
 *   - Results come back in the order the queries were sent, each through
 *     its own callback, on the loop, never from inside pg_query().
 *   - Every query ends exactly once: its callback runs with a result, an
 *     error, a timeout, the loss of the connection, or pg_close().
 *   - While the connection is down (connecting, waiting to reconnect, or
 *     lost), new queries fail at once with -CB_EUNAVAILABLE: nothing is
 *     queued for later.  The connection comes back by itself.
 *   - Errors never hold the password; messages are one line.
 */
#ifndef CB_PG_H
#define CB_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <uv.h>

#include "cb_error.h"

struct pg;

/* Defaults of struct pg_opts; 0 in a field picks the default. */
#define PG_QUERY_TIMEOUT_MS	5000
#define PG_CONNECT_TIMEOUT_MS	5000
#define PG_BACKOFF_MIN_MS	100
#define PG_BACKOFF_MAX_MS	10000
#define PG_MAX_PENDING		1024
/* LISTEN channels per connection, and the longest channel name. */
#define PG_LISTEN_MAX		16
#define PG_CHANNEL_MAX		63

/*
 * What happened to the connection (pg_event_fn).
 *
 * PG_EVENT_CONNECTED	the first connection of this struct pg is up.
 * PG_EVENT_RECONNECTED	up again after a loss.  NOTIFYs sent while it was
 *			down are lost for good: drop every cache that
 *			notifications keep fresh.  The LISTENs are already
 *			sent again, ahead of any query issued from here,
 *			so a reload started from this callback misses
 *			nothing.
 * PG_EVENT_DOWN	the connection was lost, or the first attempt to
 *			connect failed; err says why.  Reported once per
 *			outage: later failed attempts only update
 *			pg_status()'s last_error.
 */
enum pg_event {
	PG_EVENT_CONNECTED,
	PG_EVENT_RECONNECTED,
	PG_EVENT_DOWN,
};

/* err is NULL except for PG_EVENT_DOWN. */
typedef void (*pg_event_fn)(void *arg, enum pg_event ev,
    const struct cb_error *err);

/*
 * A query's completion.
 *
 * rc 0: success; res is the query's result (PGRES_TUPLES_OK or
 * PGRES_COMMAND_OK; for a batch, the result of its last statement).
 *
 * rc < 0: failure, err says why (one line):
 *   -CB_EUNAVAILABLE	the server did not answer within the query
 *			timeout ("PostgreSQL did not answer within N ms"),
 *			the connection was lost or reset, the server is
 *			shutting down, or pg_close() was called; res is
 *			NULL, or the server's error result when it sent one.
 *   -CB_EINTERNAL	the server refused the statement (syntax,
 *			constraint, permission...); res is the error
 *			result, so PQresultErrorField(res, PG_DIAG_SQLSTATE)
 *			tells a unique violation (23505) from the rest.
 *
 * The message is "PostgreSQL: PRIMARY MESSAGE (SQLSTATE)" for a server
 * error.  The server's message may quote a parameter ('invalid input
 * syntax for type integer: "..."'), and libpq's buffers are not wiped:
 * parameters must never be plaintext (only sealed values are stored).
 *
 * res belongs to pg: it is PQclear()ed when the callback returns.  Copy
 * what you need, and do not keep pointers into it.  Results are not wiped:
 * never select plaintext (only sealed values are stored).
 *
 * The callback may call pg_query(), pg_batch(), pg_listen() and
 * pg_close().
 */
typedef void (*pg_result_fn)(void *arg, int rc, PGresult *res,
    const struct cb_error *err);

/*
 * A notification on a channel given to pg_listen().  payload is "" when
 * the NOTIFY had none; both strings are valid during the call only.
 */
typedef void (*pg_notify_fn)(void *arg, const char *channel,
    const char *payload);

struct pg_opts {
	/*
	 * libpq connection string, key=value or postgresql:// URI, passed
	 * through as it is (sslmode, sslrootcert, target_session_attrs...).
	 * It must not hold a password: pg_open() refuses one.
	 */
	const char	*conninfo;
	/*
	 * The password, or NULL (libpq then falls back on its own sources,
	 * such as a passfile named in conninfo).  Copied into a wiping
	 * buffer and kept there for the reconnections, wiped by pg_close();
	 * the caller may wipe its own copy when pg_open() returns.  libpq's
	 * copy is wiped as soon as each connection is up.
	 */
	const char	*password;
	unsigned	 query_timeout_ms;	/* per query; see below */
	unsigned	 connect_timeout_ms;	/* per connection attempt */
	unsigned	 backoff_min_ms;	/* first retry after a loss */
	unsigned	 backoff_max_ms;	/* cap of the doubling */
	size_t		 max_pending;		/* queries sent, not answered */
	/*
	 * The server ends a statement that runs longer than the query
	 * timeout (statement_timeout, added to the conninfo's own
	 * options), so that a write the broker gave up on is not
	 * committed later.
	 */
	bool		 statement_timeout;
	pg_event_fn	 on_event;		/* may be NULL */
	void		*arg;
};

/* Health of the connection (pg_status()). */
struct pg_status {
	bool		 connected;
	int		 server_version;	/* PQserverVersion(), 0 if never */
	uint64_t	 last_rtt_us;		/* last answered query, send to
						   result; 0 if none yet */
	size_t		 pending;		/* queries waiting for a result */
	uint64_t	 reconnects;		/* successful reconnections */
	char		 last_error[CB_ERRMSG_MAX];	/* "" if none */
};

/* One statement of a batch: the arguments of pg_query(). */
struct pg_stmt {
	const char		*sql;
	int			 nparams;
	const char *const	*values;
	const int		*lengths;	/* NULL: all text */
	const int		*formats;	/* NULL: all text */
};

/*
 * Create the connection on loop and start connecting; the outcome arrives
 * through on_event.  Fails at once (-CB_EBADREQ) when conninfo cannot be
 * parsed or holds a password, without quoting anything that might be a
 * password.
 *
 * Reconnection: after a loss or a failed attempt the next attempt is made
 * after backoff_min_ms, doubling on every failure up to backoff_max_ms,
 * each delay with +-25% jitter; a successful connection resets it.  An
 * attempt that takes longer than connect_timeout_ms is abandoned.
 */
int	 pg_open(uv_loop_t *loop, const struct pg_opts *opts, struct pg **out,
	    struct cb_error *err);
/*
 * The checks pg_open() makes of a connection string (it parses, it holds
 * no password), with the same messages, none quoting a password.
 */
int	 pg_conninfo_check(const char *conninfo, struct cb_error *err);
/*
 * libpq's "options" for a session whose statements the server ends after
 * timeout_ms: the conninfo's own options with "-c statement_timeout=N"
 * added; *out malloc'd.
 */
int	 pg_session_options(const char *conninfo, unsigned timeout_ms,
	    char **out, struct cb_error *err);

/*
 * Close: every pending query fails with -CB_EUNAVAILABLE (its callback
 * runs from inside pg_close()), the connection is finished (PQfinish),
 * the password is wiped, and every libuv handle is closed.  done (may be
 * NULL) runs from the loop once the last handle is closed and pg is
 * freed; after it, uv_loop_close() can succeed.  Any call on pg after
 * pg_close() is a bug, except from the callbacks pg_close() itself runs
 * (where pg_query() fails with -CB_EUNAVAILABLE).
 */
void	 pg_close(struct pg *pg, void (*done)(void *), void *arg);

/*
 * Send one statement with its parameters (PQsendQueryParams(): $1, $2...;
 * values, lengths and formats as there, result in text format) followed
 * by a pipeline sync, so an error fails this query alone.  The statement
 * runs in a transaction of its own, committed before its result arrives.
 * The arguments are copied into libpq's output buffer before pg_query()
 * returns.
 *
 * Fails at once with -CB_EUNAVAILABLE when the connection is down, when
 * max_pending queries are already waiting ("too many PostgreSQL queries
 * waiting"), or when libpq cannot take the query; the callback is not
 * called then.  Otherwise the callback runs exactly once, later.
 *
 * Timeout: a query not answered within query_timeout_ms (counted from
 * pg_query()) fails with -CB_EUNAVAILABLE "PostgreSQL did not answer
 * within N ms".  libpq 15 has no non-blocking cancel (PQcancel() opens a
 * connection and waits), and a pipelined connection cannot skip one
 * answer, so the connection is dropped: every other pending query fails
 * with -CB_EUNAVAILABLE too ("connection reset after a query timed
 * out"), and a new connection is made at once.  The server ends the
 * abandoned statement when it notices the closed socket (at once with
 * client_connection_check_interval, otherwise when it next writes).  The
 * size of a result is the server's business: select what fits in memory
 * (LIMIT), as the callback gets the whole result at once.
 */
int	 pg_query(struct pg *pg, const char *sql, int nparams,
	    const char *const *values, const int *lengths, const int *formats,
	    pg_result_fn cb, void *arg, struct cb_error *err);

/*
 * The same with a statement prepared beforehand (PQsendQueryPrepared()).
 * A prepared statement lives in the server session: prepare it again
 * (pg_query("PREPARE ...") or, better, from PG_EVENT_CONNECTED and
 * PG_EVENT_RECONNECTED) after every reconnection.
 */
int	 pg_query_prepared(struct pg *pg, const char *name, int nparams,
	    const char *const *values, const int *lengths, const int *formats,
	    pg_result_fn cb, void *arg, struct cb_error *err);

/*
 * A transaction: nstmts statements (1 to 64) sent together and followed
 * by one pipeline sync.  They run in the implicit transaction that the
 * sync ends: all of them are committed, or, when one fails, none is
 * (those after it are skipped).  The callback runs once, after the
 * sync's answer, i.e. after COMMIT has completed on the server (durable
 * as the server's synchronous_commit makes it).  Do not write BEGIN or
 * COMMIT yourself: an explicit transaction that fails inside a pipeline
 * leaves the session in an aborted transaction.  Counts as one query for
 * max_pending and the timeout.
 */
int	 pg_batch(struct pg *pg, const struct pg_stmt *stmts, size_t nstmts,
	    pg_result_fn cb, void *arg, struct cb_error *err);

/*
 * Listen on channel (lower-case letters, digits and '_', at most
 * PG_CHANNEL_MAX, not starting with a digit; at most PG_LISTEN_MAX
 * channels): LISTEN is sent now when connected and again after every
 * reconnection, and fn runs for every notification on that channel.
 * Listening twice on the same channel replaces fn.  Notifications sent
 * while the connection is down are lost (see PG_EVENT_RECONNECTED).
 */
int	 pg_listen(struct pg *pg, const char *channel, pg_notify_fn fn,
	    void *arg, struct cb_error *err);

/* Health: connected or not, server version, latency, last error. */
void	 pg_status(const struct pg *pg, struct pg_status *st);

#endif

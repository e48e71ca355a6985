/*
 * pg: libpq's non-blocking interface driven by the daemon's libuv loop.
 *
 * One struct pg is one server connection, in one of these states:
 *
 *	WAIT --timer--> [RESOLVING] --> CONNECTING --PQconnectPoll OK--> UP
 *	  ^                   |              |                           |
 *	  +------- failed, timed out (backoff) <-------------------------+
 *							           lost, reset
 *
 * and CLOSED from pg_close().  A single uv_timer serves every state: the
 * backoff delay in WAIT, the attempt's deadline in RESOLVING and
 * CONNECTING, and in UP
 * the deadline of the oldest query (results come back in order and every
 * query has the same timeout, so the oldest is always the next to expire).
 * One uv_poll watches PQsocket(); it is replaced when the socket changes.
 *
 * Names.  libpq resolves "host" with getaddrinfo(), which blocks.  When
 * the connection string names one host by name and gives no hostaddr, we
 * resolve it first with uv_getaddrinfo() (libuv's thread pool) and hand
 * libpq every address as "hostaddr", with the name repeated in "host"
 * (for TLS verification and the passfile), so libpq tries them in order
 * as it would have.  Several hosts ("host=a,b") are left to libpq.
 *
 * Pipeline.  In UP the connection is non-blocking and in pipeline mode.
 * Each pg_query() sends its statement and a sync at once; pg_batch()
 * sends several statements and one sync.  The pending queries form a FIFO
 * that mirrors libpq's pipeline: the results of the head query arrive
 * first (a result, then NULL, per statement), and the sync's
 * PGRES_PIPELINE_SYNC ends it.  A statement that fails makes the server
 * skip the rest up to the sync (PGRES_PIPELINE_ABORTED), so an error never
 * spills into the next query.
 *
 * Re-entrancy.  User callbacks run from our poll and timer callbacks (and
 * from pg_close()), never from pg_query().  A callback may send queries or
 * close pg: every loop that calls out re-checks the state and the
 * connection's generation (bumped whenever a connection is torn down)
 * after each call, and a torn-down connection's queries are moved to a
 * local list before any of their callbacks runs.  The struct itself is
 * freed only from the close callback of its last libuv handle, so it
 * outlives every frame that may still look at it.
 *
 * Secrets.  The password lives in a wiping buffer for the reconnections
 * and is wiped by pg_close().  libpq copies it into the PGconn; that copy
 * is wiped as soon as the connection is up (libpq needs it only to
 * authenticate), and PQfinish() wipes it on the other paths.  A password in the
 * connection string is refused, and error messages come from libpq's
 * connection errors, which never quote it.
 */
#include <sys/queue.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/rand.h>
#include <uv.h>

#include "cb_error.h"
#include "pg.h"
#include "secbuf.h"

#define PG_BATCH_MAX	64
/* Addresses of a resolved host handed to libpq. */
#define PG_ADDRS_MAX	8

enum pg_state {
	PG_S_WAIT,		/* timer: next attempt */
	PG_S_RESOLVING,		/* uv_getaddrinfo(); timer: deadline */
	PG_S_CONNECTING,	/* PQconnectPoll(); timer: deadline */
	PG_S_UP,		/* pipeline; timer: oldest query's deadline */
	PG_S_CLOSED,
};

/* One query (pg_query, pg_batch) or internal LISTEN, sent, not answered. */
struct pg_query {
	TAILQ_ENTRY(pg_query)	 entry;
	pg_result_fn		 cb;		/* NULL: internal (LISTEN) */
	void			*arg;
	PGresult		*res;		/* last result, or the error */
	uint64_t		 deadline;	/* uv_now() ms */
	uint64_t		 sent_ns;	/* uv_hrtime() */
	int			 failed;	/* res is an error result */
};

TAILQ_HEAD(pg_queries, pg_query);

/* The poll of one socket; freed in its close callback. */
struct pg_sock {
	uv_poll_t	 poll;			/* poll.data = this */
	struct pg	*pg;
	int		 fd;
	int		 events;		/* as last started; 0 stopped */
};

struct pg_chan {
	char		 name[PG_CHANNEL_MAX + 1];
	pg_notify_fn	 fn;
	void		*arg;
};

struct pg {
	uv_loop_t		*loop;
	enum pg_state		 state;
	PGconn			*conn;
	struct pg_sock		*sock;
	uv_timer_t		 timer;		/* timer.data = this */
	unsigned		 gen;		/* connections torn down */
	int			 broken;	/* send failed: reset soon */
	struct cb_error		 broken_err;

	char			*conninfo;
	char			*options;	/* libpq's "options", or NULL */
	char			*resolve;	/* host name we resolve, or NULL */
	uv_getaddrinfo_t	*gai;		/* resolution in progress */
	char			*hosts;		/* "name,name" for libpq */
	char			*hostaddrs;	/* "addr,addr" for libpq */
	struct secbuf		 password;
	int			 has_password;
	unsigned		 query_timeout;
	unsigned		 connect_timeout;
	unsigned		 backoff_min;
	unsigned		 backoff_max;
	unsigned		 backoff;	/* next delay, before jitter */
	int			 keep_backoff;	/* last loss: our LISTEN failed */
	size_t			 max_pending;
	pg_event_fn		 on_event;
	void			*arg;

	struct pg_queries	 queries;
	size_t			 npending;
	struct pg_chan		 chans[PG_LISTEN_MAX];
	size_t			 nchans;

	int			 ever_up;
	int			 down_reported;
	uint64_t		 reconnects;
	int			 server_version;
	uint64_t		 last_rtt_us;
	char			 last_error[CB_ERRMSG_MAX];

	size_t			 nhandles;	/* libuv handles not yet closed */
	void			(*done)(void *);
	void			*done_arg;
};

static void	 pg_timer_cb(uv_timer_t *);
static void	 pg_notifies(struct pg *);
static void	 pg_poll_cb(uv_poll_t *, int, int);
static void	 pg_conn_failed(struct pg *, const struct cb_error *,
		    const struct cb_error *, int);

/* Uniform random in [0, n). */
static unsigned
pg_rand(unsigned n)
{
	uint32_t	r = 0;

	if (n == 0 || RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		return 0;
	return r % n;
}

/* ms scaled by a random factor in [0.75, 1.25]. */
static uint64_t
pg_jitter(uint64_t ms)
{
	uint64_t	span = ms / 4;

	if (span == 0)
		return ms;
	return ms - span + pg_rand((unsigned)(2 * span + 1));
}

/*
 * libpq's connection error as one line: its lines joined with "; ",
 * trailing blanks dropped.  "" when libpq has nothing to say.
 */
static void
pg_conn_message(PGconn *conn, char *buf, size_t sz)
{
	const char	*s = conn != NULL ? PQerrorMessage(conn) : "";
	size_t		 n = 0;

	for (; *s != '\0' && n + 3 < sz; s++) {
		if (*s == '\n') {
			while (s[1] == '\n')
				s++;
			if (s[1] == '\0')
				break;
			buf[n++] = ';';
			buf[n++] = ' ';
		} else if (*s == '\r' || *s == '\t')
			buf[n++] = ' ';
		else
			buf[n++] = *s;
	}
	while (n > 0 && buf[n - 1] == ' ')
		n--;
	buf[n] = '\0';
}

/*
 * One of our handles (or a name resolution) is gone: free pg after the
 * last one once it is closed.
 */
static void
pg_release(struct pg *pg)
{
	void		(*done)(void *);
	void		*done_arg;

	if (--pg->nhandles > 0 || pg->state != PG_S_CLOSED)
		return;
	done = pg->done;
	done_arg = pg->done_arg;
	free(pg);
	if (done != NULL)
		done(done_arg);
}

/* Close callback of any of our handles. */
static void
pg_handle_closed(uv_handle_t *h)
{
	struct pg	*pg;

	if (h->type == UV_POLL) {
		struct pg_sock	*s = h->data;

		pg = s->pg;
		free(s);
	} else
		pg = h->data;
	pg_release(pg);
}

/* Stop watching the socket; the poll is freed in its close callback. */
static void
pg_unwatch(struct pg *pg)
{
	if (pg->sock == NULL)
		return;
	uv_close((uv_handle_t *)&pg->sock->poll, pg_handle_closed);
	pg->sock = NULL;
}

/*
 * Watch PQsocket() for events (0: stop).  libpq may replace the socket
 * while connecting (another address, another host, SSL refused): a new
 * descriptor gets a new poll.  Our poll is always stopped around
 * PQconnectPoll() (pg_connect_step), so a descriptor that libpq closed and
 * reopened under the same number is registered afresh.
 */
static int
pg_watch(struct pg *pg, int events)
{
	struct pg_sock	*s = pg->sock;
	int		 fd;

	if ((fd = PQsocket(pg->conn)) < 0)
		return -1;
	if (s != NULL && s->fd != fd) {
		pg_unwatch(pg);
		s = NULL;
	}
	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL)
			return -1;
		if (uv_poll_init_socket(pg->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		s->pg = pg;
		s->fd = fd;
		pg->sock = s;
		pg->nhandles++;
	}
	if (events == s->events)
		return 0;
	if (events == 0) {
		uv_poll_stop(&s->poll);
		s->events = 0;
		return 0;
	}
	if (uv_poll_start(&s->poll, events, pg_poll_cb) != 0)
		return -1;
	s->events = events;
	return 0;
}

/* Close the connection (if any): poll first, then PQfinish(). */
static void
pg_disconnect(struct pg *pg)
{
	/*
	 * A resolution cannot be stopped once a thread runs it: its
	 * callback sees it is no longer pg->gai and only frees it.
	 */
	if (pg->gai != NULL) {
		uv_cancel((uv_req_t *)pg->gai);
		pg->gai = NULL;
	}
	pg_unwatch(pg);
	if (pg->conn != NULL) {
		PQfinish(pg->conn);
		pg->conn = NULL;
	}
	pg->gen++;
	pg->broken = 0;
}

/* Move every pending query to list; the caller answers them. */
static void
pg_take_queries(struct pg *pg, struct pg_queries *list)
{
	TAILQ_INIT(list);
	TAILQ_CONCAT(list, &pg->queries, entry);
	pg->npending = 0;
}

/* Answer and free every query of list with err (the first with first). */
static void
pg_fail_queries(struct pg_queries *list, const struct cb_error *first,
    const struct cb_error *err)
{
	struct pg_query	*q;
	const struct cb_error *e;

	while ((q = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, q, entry);
		e = first != NULL ? first : err;
		first = NULL;
		if (q->cb != NULL)
			q->cb(q->arg, -e->code, NULL, e);
		PQclear(q->res);
		free(q);
	}
}

/* Arm the timer for the oldest query's deadline, or stop it. */
static void
pg_arm(struct pg *pg)
{
	struct pg_query	*q;
	uint64_t	 now = uv_now(pg->loop);

	if ((q = TAILQ_FIRST(&pg->queries)) == NULL) {
		uv_timer_stop(&pg->timer);
		return;
	}
	uv_timer_start(&pg->timer, pg_timer_cb,
	    q->deadline > now ? q->deadline - now : 0, 0);
}

/* Send an internal LISTEN; 0 or -1 (the connection is then broken). */
static int	 pg_send(struct pg *, const struct pg_stmt *, size_t, int,
		    pg_result_fn, void *, int, struct cb_error *);

static int
pg_send_listen(struct pg *pg, const char *channel, struct cb_error *err)
{
	struct pg_stmt	 st;
	char		 sql[sizeof("LISTEN ") + PG_CHANNEL_MAX];

	/* The name was checked by pg_listen(): no quoting needed. */
	snprintf(sql, sizeof(sql), "LISTEN %s", channel);
	memset(&st, 0, sizeof(st));
	st.sql = sql;
	return pg_send(pg, &st, 1, 0, NULL, NULL, 1, err);
}

/* PQconnectPoll() said OK: set the connection up and tell the user. */
static void
pg_connected(struct pg *pg)
{
	struct cb_error	 err;
	char		*pw;
	size_t		 i;
	int		 again = pg->ever_up;

	if (PQsetnonblocking(pg->conn, 1) != 0 ||
	    PQenterPipelineMode(pg->conn) != 1) {
		cb_error_set(&err, CB_EUNAVAILABLE,
		    "cannot set up the PostgreSQL connection: %s",
		    PQerrorMessage(pg->conn));
		pg_conn_failed(pg, &err, NULL, 0);
		return;
	}
	/*
	 * libpq needs the password only to authenticate: wipe its copy now
	 * rather than at PQfinish().  PQpass() returns a literal "" when
	 * there is none, which a zero-length wipe leaves alone.
	 */
	pw = PQpass(pg->conn);
	if (pw != NULL)
		cb_wipe(pw, strlen(pw));
	pg->state = PG_S_UP;
	uv_timer_stop(&pg->timer);
	pg->server_version = PQserverVersion(pg->conn);
	pg->ever_up = 1;
	pg->down_reported = 0;
	if (!pg->keep_backoff)
		pg->backoff = pg->backoff_min;
	if (again)
		pg->reconnects++;
	if (pg_watch(pg, UV_READABLE) != 0) {
		cb_error_set(&err, CB_EUNAVAILABLE,
		    "cannot watch the PostgreSQL socket");
		pg_conn_failed(pg, &err, NULL, 0);
		return;
	}
	/* Before the user hears of it, so the LISTENs come first. */
	for (i = 0; i < pg->nchans; i++)
		if (pg_send_listen(pg, pg->chans[i].name, &err) != 0)
			return;		/* broken: the timer resets it */
	if (pg->on_event != NULL)
		pg->on_event(pg->arg, again ? PG_EVENT_RECONNECTED :
		    PG_EVENT_CONNECTED, NULL);
}

/*
 * Tear the connection down and answer every pending query: the oldest
 * with first (when not NULL), the others with cause.  The next attempt
 * is made after the backoff, or at once with immediate.
 */
static void
pg_conn_failed(struct pg *pg, const struct cb_error *cause,
    const struct cb_error *first, int immediate)
{
	struct pg_queries	 list;
	uint64_t		 delay;

	pg_disconnect(pg);
	pg_take_queries(pg, &list);
	pg->state = PG_S_WAIT;
	snprintf(pg->last_error, sizeof(pg->last_error), "%s", cause->msg);
	delay = immediate ? 0 : pg_jitter(pg->backoff);
	if (!immediate)
		pg->backoff = pg->backoff >= pg->backoff_max / 2 ?
		    pg->backoff_max : pg->backoff * 2;
	uv_timer_start(&pg->timer, pg_timer_cb, delay, 0);
	if (!pg->down_reported) {
		pg->down_reported = 1;
		if (pg->on_event != NULL)
			pg->on_event(pg->arg, PG_EVENT_DOWN, cause);
	}
	pg_fail_queries(&list, first, cause);
}

/* The connection failed in libpq: say what libpq says, after what. */
static void
pg_conn_lost(struct pg *pg, const char *what)
{
	struct cb_error	 err;
	char		 msg[CB_ERRMSG_MAX - 64];

	pg_conn_message(pg->conn, msg, sizeof(msg));
	cb_error_set(&err, CB_EUNAVAILABLE, "%s: %s", what,
	    *msg != '\0' ? msg : "connection closed");
	pg_conn_failed(pg, &err, NULL, 0);
}

/*
 * libpq's notices (NOTICE, WARNING, and a FATAL that arrives between
 * queries) would go to stderr, outside the daemon's log.  They carry
 * nothing a caller needs: what matters arrives as results and errors.
 */
static void
pg_notice_cb(void *arg, const char *msg)
{
}

/* Connect, with the addresses resolved for pg->resolve if any. */
static void
pg_connect_libpq(struct pg *pg)
{
	const char	*keys[7], *vals[7];
	struct cb_error	 err;
	int		 n = 0;

	keys[n] = "dbname";		/* expanded: the whole conninfo */
	vals[n++] = pg->conninfo;
	if (pg->options != NULL) {
		keys[n] = "options";	/* the conninfo's own, and more */
		vals[n++] = pg->options;
	}
	if (pg->hostaddrs != NULL) {
		keys[n] = "host";
		vals[n++] = pg->hosts;
		keys[n] = "hostaddr";
		vals[n++] = pg->hostaddrs;
	}
	if (pg->has_password) {
		keys[n] = "password";
		vals[n++] = secbuf_str(&pg->password);
	}
	keys[n] = "fallback_application_name";
	vals[n++] = "credbrokerd";
	keys[n] = NULL;
	vals[n] = NULL;

	pg->state = PG_S_CONNECTING;
	uv_timer_stop(&pg->timer);
	if ((pg->conn = PQconnectStartParams(keys, vals, 1)) == NULL) {
		cb_error_set(&err, CB_EUNAVAILABLE,
		    "cannot connect to PostgreSQL: out of memory");
		pg_conn_failed(pg, &err, NULL, 0);
		return;
	}
	if (PQstatus(pg->conn) == CONNECTION_BAD) {
		pg_conn_lost(pg, "cannot connect to PostgreSQL");
		return;
	}
	PQsetNoticeProcessor(pg->conn, pg_notice_cb, NULL);
	uv_timer_start(&pg->timer, pg_timer_cb, pg->connect_timeout, 0);
	/* libpq: behave as if PQconnectPoll() had said WRITING. */
	if (pg_watch(pg, UV_WRITABLE) != 0)
		pg_conn_lost(pg, "cannot connect to PostgreSQL");
}

/* Append s to the comma-separated list *list; -1 when out of memory. */
static int
pg_list_add(char **list, const char *s)
{
	size_t	 n = *list != NULL ? strlen(*list) : 0;
	char	*p;

	if ((p = realloc(*list, n + strlen(s) + 2)) == NULL)
		return -1;
	if (n > 0)
		p[n++] = ',';
	strcpy(p + n, s);
	*list = p;
	return 0;
}

/* uv_getaddrinfo() is done: connect to what it found. */
static void
pg_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
	struct pg	*pg = req->data;
	struct addrinfo	*ai;
	struct cb_error	 err;
	char		 addr[64];
	int		 n = 0, rc = 0;

	if (pg->gai != req) {
		/* Abandoned: timed out, closed. */
		uv_freeaddrinfo(res);
		free(req);
		pg_release(pg);
		return;
	}
	pg->gai = NULL;
	free(req);
	pg->nhandles--;			/* pg is not closed: no free */
	free(pg->hosts);
	free(pg->hostaddrs);
	pg->hosts = pg->hostaddrs = NULL;
	for (ai = res; status == 0 && ai != NULL && n < PG_ADDRS_MAX;
	    ai = ai->ai_next) {
		if (ai->ai_family == AF_INET)
			rc = uv_ip4_name((struct sockaddr_in *)ai->ai_addr,
			    addr, sizeof(addr));
		else if (ai->ai_family == AF_INET6)
			rc = uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr,
			    addr, sizeof(addr));
		else
			continue;
		if (rc != 0)
			continue;
		if (pg_list_add(&pg->hosts, pg->resolve) != 0 ||
		    pg_list_add(&pg->hostaddrs, addr) != 0) {
			status = UV_ENOMEM;
			break;
		}
		n++;
	}
	uv_freeaddrinfo(res);
	if (status == 0 && n == 0)
		status = UV_EAI_NODATA;
	if (status != 0) {
		cb_error_set(&err, CB_EUNAVAILABLE,
		    "cannot connect to PostgreSQL: cannot resolve \"%s\": %s",
		    pg->resolve, uv_strerror(status));
		pg_conn_failed(pg, &err, NULL, 0);
		return;
	}
	pg_connect_libpq(pg);
}

/*
 * Start an attempt to connect (state WAIT, from the timer): resolve the
 * host name first when we must (see "Names" above).
 */
static void
pg_connect_start(struct pg *pg)
{
	struct addrinfo	 hints;
	struct cb_error	 err;
	uv_getaddrinfo_t *req;

	if (pg->resolve == NULL) {
		pg_connect_libpq(pg);
		return;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	pg->state = PG_S_RESOLVING;
	if ((req = calloc(1, sizeof(*req))) == NULL) {
		cb_error_set(&err, CB_EUNAVAILABLE,
		    "cannot connect to PostgreSQL: out of memory");
		pg_conn_failed(pg, &err, NULL, 0);
		return;
	}
	req->data = pg;
	if (uv_getaddrinfo(pg->loop, req, pg_resolved, pg->resolve, NULL,
	    &hints) != 0) {
		free(req);
		cb_error_set(&err, CB_EUNAVAILABLE,
		    "cannot connect to PostgreSQL: cannot resolve \"%s\"",
		    pg->resolve);
		pg_conn_failed(pg, &err, NULL, 0);
		return;
	}
	pg->gai = req;
	pg->nhandles++;
	uv_timer_start(&pg->timer, pg_timer_cb, pg->connect_timeout, 0);
}

/* The socket is ready during the connection: one more step. */
static void
pg_connect_step(struct pg *pg)
{
	PostgresPollingStatusType	 st;
	int				 rc = 0;

	/* See pg_watch(): the socket may be closed and replaced here. */
	if (pg->sock != NULL) {
		uv_poll_stop(&pg->sock->poll);
		pg->sock->events = 0;
	}
	st = PQconnectPoll(pg->conn);
	switch (st) {
	case PGRES_POLLING_READING:
		rc = pg_watch(pg, UV_READABLE);
		break;
	case PGRES_POLLING_WRITING:
		rc = pg_watch(pg, UV_WRITABLE);
		break;
	case PGRES_POLLING_OK:
		pg_connected(pg);
		return;
	default:
		rc = -1;
		break;
	}
	if (rc != 0)
		pg_conn_lost(pg, "cannot connect to PostgreSQL");
}

/* SQLSTATEs that mean "try again later" rather than "wrong query". */
static int
pg_sqlstate_code(const PGresult *res)
{
	const char	*s = PQresultErrorField(res, PG_DIAG_SQLSTATE);

	if (s == NULL)
		return CB_EUNAVAILABLE;		/* made up by libpq */
	if (strncmp(s, "08", 2) == 0 ||		/* connection exception */
	    strncmp(s, "40", 2) == 0 ||		/* serialization, deadlock */
	    strncmp(s, "53", 2) == 0 ||		/* insufficient resources */
	    strncmp(s, "57P", 3) == 0 ||	/* shutdown, cannot connect */
	    strcmp(s, "57014") == 0 ||		/* statement_timeout, cancel */
	    strncmp(s, "58", 2) == 0 ||		/* system error */
	    strcmp(s, "25006") == 0)		/* read-only: a standby */
		return CB_EUNAVAILABLE;
	return CB_EINTERNAL;
}

/* Describe an error result: "PostgreSQL: MESSAGE (SQLSTATE)". */
static int
pg_result_error(const PGresult *res, struct cb_error *err)
{
	const char	*m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char	*s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	char		 msg[CB_ERRMSG_MAX - 32];
	size_t		 i;

	snprintf(msg, sizeof(msg), "%s", m != NULL ? m :
	    PQresultErrorMessage(res));
	for (i = 0; msg[i] != '\0'; i++)
		if (msg[i] == '\n' || msg[i] == '\r')
			msg[i] = ' ';
	while (i > 0 && msg[i - 1] == ' ')
		msg[--i] = '\0';
	if (s != NULL)
		return cb_error_set(err, pg_sqlstate_code(res),
		    "PostgreSQL: %s (%s)", msg, s);
	return cb_error_set(err, pg_sqlstate_code(res), "PostgreSQL: %s",
	    msg);
}

/* The head query's sync arrived: answer it. */
static void
pg_complete(struct pg *pg, struct pg_query *q)
{
	struct cb_error	 err;
	int		 rc = 0;

	TAILQ_REMOVE(&pg->queries, q, entry);
	pg->npending--;
	pg->last_rtt_us = (uv_hrtime() - q->sent_ns) / 1000;
	cb_error_clear(&err);
	if (q->failed)
		rc = pg_result_error(q->res, &err);
	else if (q->res == NULL)
		rc = cb_error_set(&err, CB_EINTERNAL,
		    "PostgreSQL sent no result");
	pg_arm(pg);
	/*
	 * The notifications the server sent before this answer (those of
	 * this very transaction among them) first: a caller that goes on
	 * from the answer finds what they bring already under way.
	 */
	pg_notifies(pg);
	if (q->cb != NULL)
		q->cb(q->arg, rc, rc == 0 || q->failed ? q->res : NULL, &err);
	else if (rc != 0) {
		/*
		 * Our LISTEN failed (a standby refuses it, for one): the
		 * notifications this connection promised cannot come, so
		 * it is no good.  Keep the backoff growing meanwhile.
		 */
		pg->keep_backoff = 1;
		PQclear(q->res);
		free(q);
		pg_conn_failed(pg, &err, NULL, 0);
		return;
	} else
		pg->keep_backoff = 0;
	PQclear(q->res);
	free(q);
}

/* Deliver the notifications libpq has parsed. */
static void
pg_notifies(struct pg *pg)
{
	PGnotify	*n;
	pg_notify_fn	 fn;
	void		*arg;
	unsigned	 gen = pg->gen;
	size_t		 i;

	while (pg->state == PG_S_UP && pg->gen == gen &&
	    (n = PQnotifies(pg->conn)) != NULL) {
		fn = NULL;
		arg = NULL;
		for (i = 0; i < pg->nchans; i++)
			if (strcmp(pg->chans[i].name, n->relname) == 0) {
				fn = pg->chans[i].fn;
				arg = pg->chans[i].arg;
				break;
			}
		if (fn != NULL)
			fn(arg, n->relname, n->extra != NULL ? n->extra : "");
		PQfreemem(n);
	}
}

/*
 * Take every result libpq has complete, in order, and answer each query
 * whose sync has arrived.  Stops when libpq needs more input, or when a
 * callback closed pg or the connection went away.
 */
static void
pg_drain(struct pg *pg)
{
	struct pg_query	*q;
	PGresult	*res;
	struct cb_error	 err;
	unsigned	 gen = pg->gen;
	int		 nulls = 0;

	while (pg->state == PG_S_UP && pg->gen == gen &&
	    (q = TAILQ_FIRST(&pg->queries)) != NULL) {
		if (PQstatus(pg->conn) == CONNECTION_BAD) {
			pg_conn_lost(pg, "lost the connection to PostgreSQL");
			return;
		}
		if (PQisBusy(pg->conn))
			break;
		if ((res = PQgetResult(pg->conn)) == NULL) {
			/* End of one statement; twice: nothing more yet. */
			if (++nulls > 1)
				break;
			continue;
		}
		nulls = 0;
		switch (PQresultStatus(res)) {
		case PGRES_PIPELINE_SYNC:
			PQclear(res);
			pg_complete(pg, q);
			break;
		case PGRES_PIPELINE_ABORTED:
			/* Skipped after an earlier failure of the batch. */
			PQclear(res);
			break;
		case PGRES_FATAL_ERROR:
		case PGRES_BAD_RESPONSE:
			if (q->failed)
				PQclear(res);
			else {
				PQclear(q->res);
				q->res = res;
				q->failed = 1;
			}
			break;
		case PGRES_COPY_IN:
		case PGRES_COPY_OUT:
		case PGRES_COPY_BOTH:
			/* Would wedge the pipeline: not for this connection. */
			PQclear(res);
			cb_error_set(&err, CB_EINTERNAL,
			    "COPY is not supported on this connection");
			pg_conn_failed(pg, &err, &err, 1);
			return;
		default:
			if (q->failed)
				PQclear(res);
			else {
				PQclear(q->res);
				q->res = res;
			}
			break;
		}
	}
	pg_notifies(pg);
}

/*
 * Push libpq's output.  Writable interest only while some is left; the
 * socket is always watched for input (results, notifications, EOF).
 */
static int
pg_flush(struct pg *pg)
{
	int	 r;

	if ((r = PQflush(pg->conn)) < 0)
		return -1;
	return pg_watch(pg, UV_READABLE | (r == 1 ? UV_WRITABLE : 0));
}

/* The socket is ready (or failed): read, write, answer. */
static void
pg_poll_cb(uv_poll_t *p, int status, int events)
{
	struct pg_sock	*s = p->data;
	struct pg	*pg = s->pg;
	unsigned	 gen = pg->gen;
	struct cb_error	 err;

	if (pg->sock != s)
		return;			/* replaced, closing */
	if (pg->state == PG_S_CONNECTING) {
		pg_connect_step(pg);
		return;
	}
	if (pg->state != PG_S_UP)
		return;
	if (status < 0) {
		/*
		 * libuv reports any error on the socket (POLLERR, such as a
		 * reset after the server ended the session) as EBADF, which
		 * names no cause.  What the server sent last does: take it
		 * first, and libpq's message if it noticed the loss.
		 */
		if (PQconsumeInput(pg->conn))
			pg_drain(pg);
		if (pg->state != PG_S_UP || pg->gen != gen)
			return;
		if (PQstatus(pg->conn) == CONNECTION_BAD ||
		    *PQerrorMessage(pg->conn) != '\0') {
			pg_conn_lost(pg, "lost the connection to PostgreSQL");
			return;
		}
		cb_error_set(&err, CB_EUNAVAILABLE,
		    "lost the connection to PostgreSQL: %s",
		    uv_strerror(status));
		pg_conn_failed(pg, &err, NULL, 0);
		return;
	}
	if ((events & UV_READABLE) && !PQconsumeInput(pg->conn)) {
		pg_conn_lost(pg, "lost the connection to PostgreSQL");
		return;
	}
	if (pg_flush(pg) != 0) {
		pg_conn_lost(pg, "lost the connection to PostgreSQL");
		return;
	}
	pg_drain(pg);
	if (pg->state == PG_S_UP && pg->gen == gen && pg->broken)
		uv_timer_start(&pg->timer, pg_timer_cb, 0, 0);
}

/* The single timer: what it means depends on the state. */
static void
pg_timer_cb(uv_timer_t *t)
{
	struct pg	*pg = t->data;
	struct pg_query	*q;
	struct cb_error	 err, head;

	switch (pg->state) {
	case PG_S_WAIT:
		pg_connect_start(pg);
		break;
	case PG_S_RESOLVING:
	case PG_S_CONNECTING:
		cb_error_set(&err, CB_EUNAVAILABLE,
		    "cannot connect to PostgreSQL: no answer within %u ms",
		    pg->connect_timeout);
		pg_conn_failed(pg, &err, NULL, 0);
		break;
	case PG_S_UP:
		if (pg->broken) {
			err = pg->broken_err;
			pg_conn_failed(pg, &err, NULL, 0);
			break;
		}
		if (PQstatus(pg->conn) == CONNECTION_BAD) {
			pg_conn_lost(pg, "lost the connection to PostgreSQL");
			break;
		}
		q = TAILQ_FIRST(&pg->queries);
		if (q == NULL || q->deadline > uv_now(pg->loop)) {
			pg_arm(pg);
			break;
		}
		/*
		 * No non-blocking cancel in libpq 15, and the pipeline
		 * cannot skip one answer: drop the connection, make a new
		 * one at once (the server is up, merely slow).
		 */
		cb_error_set(&head, CB_EUNAVAILABLE,
		    "PostgreSQL did not answer within %u ms",
		    pg->query_timeout);
		cb_error_set(&err, CB_EUNAVAILABLE,
		    "PostgreSQL connection reset after a query timed out");
		pg_conn_failed(pg, &err, &head, 1);
		break;
	case PG_S_CLOSED:
		break;
	}
}

/*
 * Send stmts and a sync as one query.  internal: our own LISTEN, whose
 * failure to send breaks the connection without a callback.
 */
static int
pg_send(struct pg *pg, const struct pg_stmt *stmts, size_t n, int prepared,
    pg_result_fn cb, void *arg, int internal, struct cb_error *err)
{
	struct pg_query	*q;
	size_t		 i;
	int		 ok = 1;

	if (pg->state == PG_S_CLOSED)
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "the PostgreSQL connection is closed");
	if (pg->state != PG_S_UP || pg->broken)
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "not connected to PostgreSQL%s%s",
		    *pg->last_error != '\0' ? ": " : "", pg->last_error);
	if (!internal && pg->npending >= pg->max_pending)
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "too many PostgreSQL queries waiting");
	if ((q = calloc(1, sizeof(*q))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	q->cb = cb;
	q->arg = arg;
	for (i = 0; i < n && ok; i++) {
		if (prepared)
			ok = PQsendQueryPrepared(pg->conn, stmts[i].sql,
			    stmts[i].nparams, stmts[i].values,
			    stmts[i].lengths, stmts[i].formats, 0);
		else
			ok = PQsendQueryParams(pg->conn, stmts[i].sql,
			    stmts[i].nparams, NULL, stmts[i].values,
			    stmts[i].lengths, stmts[i].formats, 0);
	}
	if (ok)
		ok = PQpipelineSync(pg->conn);
	if (!ok) {
		/*
		 * Part of it may be in libpq's pipeline already, out of step
		 * with our list: the connection must go.  Not from here
		 * (callbacks never run inside pg_query()): from the timer.
		 */
		char	 msg[CB_ERRMSG_MAX - 64];

		free(q);
		pg_conn_message(pg->conn, msg, sizeof(msg));
		pg->broken = 1;
		cb_error_set(&pg->broken_err, CB_EUNAVAILABLE,
		    "lost the connection to PostgreSQL: %s",
		    *msg != '\0' ? msg : "cannot send");
		uv_timer_start(&pg->timer, pg_timer_cb, 0, 0);
		return cb_error_set(err, CB_EUNAVAILABLE, "%s",
		    pg->broken_err.msg);
	}
	q->sent_ns = uv_hrtime();
	q->deadline = uv_now(pg->loop) + pg->query_timeout;
	TAILQ_INSERT_TAIL(&pg->queries, q, entry);
	if (pg->npending++ == 0)
		pg_arm(pg);
	/* Output left in libpq's buffer: wait for the socket to take it. */
	if (pg_flush(pg) != 0) {
		pg->broken = 1;
		cb_error_set(&pg->broken_err, CB_EUNAVAILABLE,
		    "cannot watch the PostgreSQL socket");
		uv_timer_start(&pg->timer, pg_timer_cb, 0, 0);
	}
	return 0;
}

/* Arguments every statement needs before anything is sent. */
static int
pg_check_stmt(const struct pg_stmt *st, struct cb_error *err)
{
	if (st->sql == NULL || st->nparams < 0 || st->nparams > 65535 ||
	    (st->nparams > 0 && st->values == NULL))
		return cb_error_set(err, CB_EINTERNAL,
		    "bad PostgreSQL query arguments");
	return 0;
}

int
pg_query(struct pg *pg, const char *sql, int nparams,
    const char *const *values, const int *lengths, const int *formats,
    pg_result_fn cb, void *arg, struct cb_error *err)
{
	struct pg_stmt	 st = { sql, nparams, values, lengths, formats };
	int		 rc;

	if (cb == NULL)
		return cb_error_set(err, CB_EINTERNAL, "no callback");
	if ((rc = pg_check_stmt(&st, err)) != 0)
		return rc;
	return pg_send(pg, &st, 1, 0, cb, arg, 0, err);
}

int
pg_query_prepared(struct pg *pg, const char *name, int nparams,
    const char *const *values, const int *lengths, const int *formats,
    pg_result_fn cb, void *arg, struct cb_error *err)
{
	struct pg_stmt	 st = { name, nparams, values, lengths, formats };
	int		 rc;

	if (cb == NULL)
		return cb_error_set(err, CB_EINTERNAL, "no callback");
	if ((rc = pg_check_stmt(&st, err)) != 0)
		return rc;
	return pg_send(pg, &st, 1, 1, cb, arg, 0, err);
}

int
pg_batch(struct pg *pg, const struct pg_stmt *stmts, size_t nstmts,
    pg_result_fn cb, void *arg, struct cb_error *err)
{
	size_t	 i;
	int	 rc;

	if (cb == NULL || nstmts == 0 || nstmts > PG_BATCH_MAX)
		return cb_error_set(err, CB_EINTERNAL,
		    "a batch has 1 to %d statements and a callback",
		    PG_BATCH_MAX);
	for (i = 0; i < nstmts; i++)
		if ((rc = pg_check_stmt(&stmts[i], err)) != 0)
			return rc;
	return pg_send(pg, stmts, nstmts, 0, cb, arg, 0, err);
}

/* A channel name we can send unquoted: [a-z_][a-z0-9_]*, at most 63. */
static int
pg_channel_ok(const char *s)
{
	size_t	 i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_' ||
		    (i > 0 && s[i] >= '0' && s[i] <= '9')))
			return 0;
	return i > 0 && i <= PG_CHANNEL_MAX;
}

int
pg_listen(struct pg *pg, const char *channel, pg_notify_fn fn, void *arg,
    struct cb_error *err)
{
	struct pg_chan	*c = NULL;
	size_t		 i;

	if (pg->state == PG_S_CLOSED)
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "the PostgreSQL connection is closed");
	if (channel == NULL || fn == NULL || !pg_channel_ok(channel))
		return cb_error_set(err, CB_EBADREQ,
		    "bad channel name: lower-case letters, digits and '_', "
		    "at most %d", PG_CHANNEL_MAX);
	for (i = 0; i < pg->nchans; i++)
		if (strcmp(pg->chans[i].name, channel) == 0) {
			pg->chans[i].fn = fn;
			pg->chans[i].arg = arg;
			return 0;
		}
	if (pg->nchans == PG_LISTEN_MAX)
		return cb_error_set(err, CB_EINTERNAL,
		    "more than %d PostgreSQL channels", PG_LISTEN_MAX);
	c = &pg->chans[pg->nchans++];
	snprintf(c->name, sizeof(c->name), "%s", channel);
	c->fn = fn;
	c->arg = arg;
	/* Down: sent when the connection is up again.  Broken: likewise. */
	if (pg->state == PG_S_UP && !pg->broken)
		(void)pg_send_listen(pg, c->name, err);
	return 0;
}

void
pg_status(const struct pg *pg, struct pg_status *st)
{
	memset(st, 0, sizeof(*st));
	st->connected = pg->state == PG_S_UP && !pg->broken;
	st->server_version = pg->server_version;
	st->last_rtt_us = pg->last_rtt_us;
	st->pending = pg->npending;
	st->reconnects = pg->reconnects;
	snprintf(st->last_error, sizeof(st->last_error), "%s",
	    pg->last_error);
}

/*
 * A conninfo we accept: libpq can parse it and it holds no password.
 * libpq's parse error may quote a piece of the string; when that piece
 * could be a password, say so instead of quoting it.
 */
static int
pg_check_conninfo(const char *conninfo, char **resolve, struct cb_error *err)
{
	PQconninfoOption	*opts, *o;
	const char		*host = NULL, *hostaddr = NULL;
	unsigned char		 buf[sizeof(struct in6_addr)];
	char			*msg = NULL;
	int			 haspw = 0, rc = 0;
	size_t			 i;

	*resolve = NULL;
	if ((opts = PQconninfoParse(conninfo, &msg)) == NULL) {
		if (msg == NULL)
			return cb_error_set(err, CB_EINTERNAL, "out of memory");
		for (i = 0; msg[i] != '\0'; i++)
			if (msg[i] == '\n')
				msg[i] = msg[i + 1] == '\0' ? '\0' : ' ';
		if (strcasestr(conninfo, "password") != NULL ||
		    strchr(conninfo, '@') != NULL)
			rc = cb_error_set(err, CB_EBADREQ,
			    "malformed PostgreSQL connection string (libpq's "
			    "detail withheld: it may quote a password)");
		else
			rc = cb_error_set(err, CB_EBADREQ,
			    "malformed PostgreSQL connection string: %s", msg);
		cb_wipe(msg, strlen(msg));
		PQfreemem(msg);
		return rc;
	}
	for (o = opts; o->keyword != NULL; o++) {
		if (strcmp(o->keyword, "password") == 0 && o->val != NULL) {
			haspw = *o->val != '\0';
			cb_wipe(o->val, strlen(o->val));
		}
		if (strcmp(o->keyword, "host") == 0)
			host = o->val;
		if (strcmp(o->keyword, "hostaddr") == 0)
			hostaddr = o->val;
	}
	/* One host, by name, no address given: ours to resolve. */
	if (!haspw && host != NULL && *host != '\0' && *host != '/' &&
	    *host != '@' && strchr(host, ',') == NULL &&
	    (hostaddr == NULL || *hostaddr == '\0') &&
	    inet_pton(AF_INET, host, buf) != 1 &&
	    inet_pton(AF_INET6, host, buf) != 1 &&
	    (*resolve = strdup(host)) == NULL)
		rc = cb_error_set(err, CB_EINTERNAL, "out of memory");
	PQconninfoFree(opts);
	if (rc != 0)
		return rc;
	if (haspw)
		return cb_error_set(err, CB_EBADREQ,
		    "the PostgreSQL connection string holds a password: give "
		    "it separately (a password file)");
	return 0;
}

int
pg_session_options(const char *conninfo, unsigned timeout_ms, char **out,
    struct cb_error *err)
{
	PQconninfoOption	*opts, *o;
	const char		*given = NULL;
	char			*msg = NULL;
	int			 n;

	*out = NULL;
	if ((opts = PQconninfoParse(conninfo, &msg)) == NULL) {
		if (msg != NULL) {
			cb_wipe(msg, strlen(msg));
			PQfreemem(msg);
		}
		return cb_error_set(err, CB_EBADREQ,
		    "malformed PostgreSQL connection string");
	}
	for (o = opts; o->keyword != NULL; o++)
		if (strcmp(o->keyword, "options") == 0 && o->val != NULL)
			given = o->val;
	n = asprintf(out, "%s%s-c statement_timeout=%u", given != NULL ?
	    given : "", given != NULL && *given != '\0' ? " " : "",
	    timeout_ms);
	PQconninfoFree(opts);
	if (n < 0) {
		*out = NULL;
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	return 0;
}

int
pg_conninfo_check(const char *conninfo, struct cb_error *err)
{
	char	*resolve = NULL;
	int	 rc;

	rc = pg_check_conninfo(conninfo, &resolve, err);
	free(resolve);
	return rc;
}

int
pg_open(uv_loop_t *loop, const struct pg_opts *o, struct pg **out,
    struct cb_error *err)
{
	struct pg	*pg;
	char		*resolve;
	int		 rc;

	*out = NULL;
	if (o->conninfo == NULL)
		return cb_error_set(err, CB_EBADREQ,
		    "no PostgreSQL connection string");
	if ((rc = pg_check_conninfo(o->conninfo, &resolve, err)) != 0)
		return rc;
	if ((pg = calloc(1, sizeof(*pg))) == NULL) {
		free(resolve);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	pg->loop = loop;
	pg->resolve = resolve;
	TAILQ_INIT(&pg->queries);
	if ((pg->conninfo = strdup(o->conninfo)) == NULL ||
	    (o->password != NULL && secbuf_set_str(&pg->password,
	    o->password, strlen(o->password)) != 0)) {
		free(pg->conninfo);
		free(pg->resolve);
		secbuf_free(&pg->password);
		free(pg);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	pg->has_password = o->password != NULL;
	pg->query_timeout = o->query_timeout_ms > 0 ? o->query_timeout_ms :
	    PG_QUERY_TIMEOUT_MS;
	if (o->statement_timeout && (rc = pg_session_options(o->conninfo,
	    pg->query_timeout, &pg->options, err)) != 0) {
		free(pg->conninfo);
		free(pg->resolve);
		secbuf_free(&pg->password);
		free(pg);
		return rc;
	}
	pg->connect_timeout = o->connect_timeout_ms > 0 ?
	    o->connect_timeout_ms : PG_CONNECT_TIMEOUT_MS;
	pg->backoff_min = o->backoff_min_ms > 0 ? o->backoff_min_ms :
	    PG_BACKOFF_MIN_MS;
	pg->backoff_max = o->backoff_max_ms > 0 ? o->backoff_max_ms :
	    PG_BACKOFF_MAX_MS;
	if (pg->backoff_max < pg->backoff_min)
		pg->backoff_max = pg->backoff_min;
	pg->backoff = pg->backoff_min;
	pg->max_pending = o->max_pending > 0 ? o->max_pending :
	    PG_MAX_PENDING;
	pg->on_event = o->on_event;
	pg->arg = o->arg;
	pg->state = PG_S_WAIT;
	/* uv_timer_init() cannot fail; from here pg is freed on close. */
	uv_timer_init(loop, &pg->timer);
	pg->timer.data = pg;
	pg->nhandles = 1;
	/* The first attempt from the loop: events never run in here. */
	uv_timer_start(&pg->timer, pg_timer_cb, 0, 0);
	*out = pg;
	return 0;
}

void
pg_close(struct pg *pg, void (*done)(void *), void *arg)
{
	struct pg_queries	 list;
	struct cb_error		 err;

	if (pg == NULL || pg->state == PG_S_CLOSED)
		return;
	pg->state = PG_S_CLOSED;
	pg->done = done;
	pg->done_arg = arg;
	pg_disconnect(pg);
	pg_take_queries(pg, &list);
	secbuf_free(&pg->password);
	if (pg->conninfo != NULL) {
		cb_wipe(pg->conninfo, strlen(pg->conninfo));
		free(pg->conninfo);
		pg->conninfo = NULL;
	}
	free(pg->resolve);
	free(pg->hosts);
	free(pg->hostaddrs);
	free(pg->options);
	pg->resolve = pg->hosts = pg->hostaddrs = pg->options = NULL;
	uv_timer_stop(&pg->timer);
	uv_close((uv_handle_t *)&pg->timer, pg_handle_closed);
	cb_error_set(&err, CB_EUNAVAILABLE,
	    "the PostgreSQL connection is closed");
	pg_fail_queries(&list, NULL, &err);
}

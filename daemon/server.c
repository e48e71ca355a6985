/*
 * server: the listening socket and the client connections.
 *
 * A connection reads straight into a wiping buffer (struct secbuf).  The
 * framing scanner (proto_scan) decides when one whole message is there and
 * refuses oversized ones before msgpack allocates anything; each complete
 * message is copied into a wiping buffer of its own and handed to
 * rpc_dispatch(), which keeps it for as long as its call lasts, and the
 * consumed bytes are wiped at once, since a cred.set request carries a
 * plaintext value.  rpc.c answers through the connection's sink
 * (conn_sink_ops), never by calling into this file.
 *
 * Replies are collected per connection during a loop iteration and sent at
 * its end by a check handle, the way redis answers before it sleeps: the
 * sixteen pipelined calls of a client cost one write(2), not sixteen, and
 * the log lines of the whole iteration one more.  The log is flushed
 * before any reply is sent, so a call's audit line always precedes its
 * answer.  Reply buffers are wiped once written.  The same check handle
 * wipes the stack below the loop when a call of the iteration handled a
 * secret (one scrub covers every call of the iteration), and first ends
 * the SQLite read transaction the iteration's reads shared
 * (store_release).  A prepare handle does the same just before the loop
 * waits, for what timer callbacks produced.
 *
 * Limits that keep callers without permission from taking the daemon's
 * memory or its connection slots: a peer that no grant names (it may only
 * call hello) can send messages of at most
 * server.max_message_size_no_permission bytes, for as long as it has no
 * permission; each uid may hold at most
 * server.max_connections_per_uid connections; the last
 * server.reserved_connections slots of server.max_connections are kept for
 * root and holders of an edit:* permission; and a message that has begun
 * must be complete within server.message_timeout seconds, however steadily
 * its bytes trickle in (the idle timeout alone would let one byte a
 * minute hold a connection and its buffer for ever).
 *
 * A connection owns two handles (the pipe and its timer) and is freed
 * when both close callbacks have run and no waiting call still refers to
 * it (conn_ref/conn_unref): a reply that arrives after its connection has
 * gone is wiped and dropped, never written to freed memory.  Shutdown stops the listener, lets
 * queued replies drain, and force-closes what is left after
 * server.shutdown_timeout seconds; the loop then has nothing left to run.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "proto.h"
#include "secbuf.h"
#include "http.h"
#include "store.h"
#include "vault.h"

#define CONN_READ_CHUNK		(64 * 1024)

#ifndef TAILQ_FOREACH_SAFE	/* glibc's sys/queue.h lacks it */
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

struct conn {
	uv_pipe_t		 pipe;
	uv_timer_t		 idle;		/* idle and message deadlines */
	struct broker		*b;
	uint64_t		 id;
	struct peer		 peer;
	struct secbuf		 rbuf;
	struct secbuf		 obuf;		/* replies not yet sent */
	unsigned		 obuf_n;
	bool			 wqueued;	/* on server_wpending */
	TAILQ_ENTRY(conn)	 wentry;
	struct proto_scan	 scan;
	unsigned		 pending_writes;	/* replies being written */
	unsigned		 inflight;	/* calls waiting (on Vault) */
	bool			 processing;	/* in conn_process() */
	unsigned		 refs;		/* held by waiting calls */
	int			 open_handles;
	uint64_t		 last_read;	/* uv_now of the last bytes */
	uint64_t		 msg_start;	/* uv_now: a message began */
	bool			 msg_partial;	/* part of a message is read */
	bool			 reading;
	bool			 closing;	/* close once writes drain */
	bool			 closed;	/* uv_close called */
	TAILQ_ENTRY(conn)	 entry;
};

struct wreq {
	uv_write_t	 req;
	struct conn	*c;
	struct secbuf	 buf;
	unsigned	 nreplies;
};

static TAILQ_HEAD(, conn) server_conns = TAILQ_HEAD_INITIALIZER(server_conns);
/* Connections with replies to send at the end of this loop iteration. */
static TAILQ_HEAD(, conn) server_wpending =
    TAILQ_HEAD_INITIALIZER(server_wpending);
static uv_pipe_t	 server_listener;
static bool		 server_listening;
static bool		 server_created_socket;
static uv_signal_t	 server_sigs[3];
static uv_timer_t	 server_stop_timer;
static bool		 server_stop_timer_on;
static uint64_t		 server_next_id = 1;
static uv_timer_t	 server_watchdog;
static bool		 server_watchdog_on;
static uv_check_t	 server_check;
static uv_prepare_t	 server_prepare;
static bool		 server_check_on;
static bool		 server_scrub_pending;
static struct broker	*server_broker;

static void	conn_read_start(struct conn *);
static void	conn_process(struct conn *);
static void	conn_really_close(struct conn *);
static void	conn_flush(struct conn *);
static void	conn_close_if_drained(struct conn *);
static void	conn_timer_arm(struct conn *);
static void	conn_timeout(uv_timer_t *);
static void	conn_write(struct conn *, struct secbuf *);
static void	conn_close(struct conn *);

static const struct peer *
conn_peer(const struct conn *c)
{
	return &c->peer;
}

/* Free a connection once its handles are closed and nothing refers to it. */
static void
conn_maybe_free(struct conn *c)
{
	struct broker	*b = c->b;

	if (c->open_handles > 0 || c->refs > 0)
		return;
	log_debug("connection %llu closed", (unsigned long long)c->id);
	TAILQ_REMOVE(&server_conns, c, entry);
	b->nconns--;
	secbuf_free(&c->rbuf);
	secbuf_free(&c->obuf);
	access_peer_free(&c->peer);
	free(c);
	if (b->stopping && TAILQ_EMPTY(&server_conns))
		server_shutdown(b);
}

/* Close callback of both handles. */
static void
conn_handle_closed(uv_handle_t *h)
{
	struct conn	*c = h->data;

	c->open_handles--;
	conn_maybe_free(c);
}

static void
conn_ref(struct conn *c)
{
	c->refs++;
	c->inflight++;
}

/*
 * Replies queued or being written: what a client has not read.  Calls
 * waiting are bounded apart, at dispatch (conn_process).
 */
static unsigned
conn_queued(const struct conn *c)
{
	return c->pending_writes + c->obuf_n;
}

/*
 * Reading resumes once a slow reader has caught up.  Requests already
 * received but held back by the cap on waiting calls (conn_process) go
 * first; not from inside conn_process() itself, which picks them up.
 * Below the cap what is left is part of a message, however large: read
 * the rest.
 */
static void
conn_maybe_resume(struct conn *c)
{
	if (!c->closing && !c->processing && c->rbuf.len > 0 &&
	    c->inflight < c->b->conf->max_inflight)
		conn_process(c);
	if (!c->closing && !c->reading &&
	    conn_queued(c) < c->b->conf->max_inflight &&
	    (c->inflight < c->b->conf->max_inflight ||
	    c->rbuf.len < CONN_READ_CHUNK))
		conn_read_start(c);
}

/* A closing connection closes once its last replies are out. */
static void
conn_close_if_drained(struct conn *c)
{
	if (c->closed)
		return;
	if (c->obuf_n > 0)
		conn_flush(c);
	if (!c->closed && c->pending_writes == 0 && c->inflight == 0)
		conn_really_close(c);
}

static void
conn_unref(struct conn *c)
{
	c->refs--;
	c->inflight--;
	if (c->closing)
		conn_close_if_drained(c);
	else
		conn_maybe_resume(c);
	conn_maybe_free(c);
}

static bool
conn_is_closed(const struct conn *c)
{
	return c->closed;
}

/* Take c off the list of connections with replies to send. */
static void
conn_unqueue(struct conn *c)
{
	if (c->wqueued) {
		TAILQ_REMOVE(&server_wpending, c, wentry);
		c->wqueued = false;
	}
}

/* Close both handles now, dropping anything unsent. */
static void
conn_really_close(struct conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	c->closing = true;
	conn_unqueue(c);
	secbuf_free(&c->obuf);
	c->obuf_n = 0;
	uv_close((uv_handle_t *)&c->idle, conn_handle_closed);
	uv_close((uv_handle_t *)&c->pipe, conn_handle_closed);
}

static void
conn_close(struct conn *c)
{
	if (c->closed)
		return;
	/* Replies already produced are sent before the close. */
	if (c->obuf_n > 0)
		conn_flush(c);
	if (c->closed)
		return;
	c->closing = true;
	if (c->reading) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = false;
	}
	if (c->pending_writes == 0 && c->inflight == 0)
		conn_really_close(c);
}

/* A reply has been written (or failed): wipe it. */
static void
conn_write_done(uv_write_t *req, int status)
{
	struct wreq	*w = req->data;
	struct conn	*c = w->c;

	secbuf_free(&w->buf);
	c->pending_writes -= w->nreplies;
	free(w);
	if (status < 0 && status != UV_ECANCELED) {
		log_debug("connection %llu: write: %s",
		    (unsigned long long)c->id, uv_strerror(status));
		conn_close(c);
	}
	if (c->closing) {
		conn_close_if_drained(c);
		return;
	}
	conn_maybe_resume(c);
}

/*
 * Send the replies queued on c.  Most of the time the socket takes them
 * all at once (uv_try_write: no request, no poll re-arm); what it does not
 * take is queued with uv_write and wiped when written.
 */
static void
conn_flush(struct conn *c)
{
	struct secbuf	 out = SECBUF_INIT;
	unsigned	 n = c->obuf_n;
	struct wreq	*w;
	uv_buf_t	 ub;
	int		 rc;

	conn_unqueue(c);
	secbuf_move(&out, &c->obuf);
	c->obuf_n = 0;
	if (c->closed || out.len == 0) {
		secbuf_free(&out);
		return;
	}
	/* The audit lines of these calls go out before their answers. */
	log_flush();
	ub = uv_buf_init((char *)out.data, (unsigned)out.len);
	rc = uv_try_write((uv_stream_t *)&c->pipe, &ub, 1);
	if (rc == (int)out.len) {
		secbuf_free(&out);
		if (c->closing)
			conn_close_if_drained(c);
		else
			conn_maybe_resume(c);
		return;
	}
	if (rc < 0 && rc != UV_EAGAIN) {
		log_debug("connection %llu: write: %s",
		    (unsigned long long)c->id, uv_strerror(rc));
		secbuf_free(&out);
		conn_close(c);
		return;
	}
	if (rc > 0)
		secbuf_consume(&out, (size_t)rc);
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		secbuf_free(&out);
		conn_close(c);
		return;
	}
	w->c = c;
	secbuf_move(&w->buf, &out);
	w->nreplies = n;
	w->req.data = w;
	ub = uv_buf_init((char *)w->buf.data, (unsigned)w->buf.len);
	if ((rc = uv_write(&w->req, (uv_stream_t *)&c->pipe, &ub, 1,
	    conn_write_done)) != 0) {
		log_debug("connection %llu: write: %s",
		    (unsigned long long)c->id, uv_strerror(rc));
		secbuf_free(&w->buf);
		free(w);
		conn_close(c);
		return;
	}
	c->pending_writes += n;
}

/*
 * Queue a reply; it is sent at the end of the loop iteration together
 * with the connection's other replies (server_send_queued).
 */
static void
conn_write(struct conn *c, struct secbuf *buf)
{
	if (c->closed) {
		secbuf_free(buf);
		return;
	}
	if (c->obuf.len == 0) {
		secbuf_move(&c->obuf, buf);	/* the first reply: no copy */
	} else {
		if (secbuf_append(&c->obuf, buf->data, buf->len) != 0) {
			secbuf_free(buf);
			conn_close(c);
			return;
		}
		secbuf_free(buf);
	}
	c->obuf_n++;
	if (!server_check_on) {		/* not in the loop: send now */
		conn_flush(c);
		return;
	}
	if (!c->wqueued) {
		TAILQ_INSERT_TAIL(&server_wpending, c, wentry);
		c->wqueued = true;
	}
	/*
	 * A client that sends requests but does not read the replies stops
	 * being read from, rather than making the daemon buffer without end.
	 */
	if (c->reading && conn_queued(c) >= c->b->conf->max_inflight) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = false;
	}
}

/* Answer with an error whose msgid is unknown, then close. */
static void
conn_fail(struct conn *c, int code, const char *msg)
{
	struct secbuf	 out = SECBUF_INIT;
	msgpack_packer	 pk;
	struct cb_error	 err;

	cb_error_set(&err, code, "%s", msg);
	msgpack_packer_init(&pk, &out, secbuf_msgpack_write);
	proto_pack_error_response(&pk, 0, &err);
	if (secbuf_failed(&out))
		secbuf_free(&out);
	else
		conn_write(c, &out);
	conn_close(c);
}

/*
 * The largest message c may send.  A peer with no permission at all can
 * only call hello, so it gets the small limit, checked against the grants
 * in force (a reload that grants it something lifts the limit).
 */
static size_t
conn_max_message(const struct conn *c)
{
	const struct conf	*conf = c->b->conf;

	if (conf->max_message_noperm < conf->max_message &&
	    access_perms(conf->grants, conf->ngrants, &c->peer) == 0)
		return conf->max_message_noperm;
	return conf->max_message;
}

/* The connection as rpc.c sees it: where a call's answer goes. */
static void
conn_sink_write(void *ctx, struct secbuf *buf)
{
	conn_write(ctx, buf);
}

static void
conn_sink_close(void *ctx)
{
	conn_close(ctx);
}

static void
conn_sink_ref(void *ctx)
{
	conn_ref(ctx);
}

static void
conn_sink_unref(void *ctx)
{
	conn_unref(ctx);
}

static bool
conn_sink_is_closed(const void *ctx)
{
	return conn_is_closed(ctx);
}

static const struct peer *
conn_sink_peer(const void *ctx)
{
	return conn_peer(ctx);
}

static void
conn_sink_scrub(void *ctx)
{
	(void)ctx;
	server_scrub_later();
}

static const struct rpc_sink_ops conn_sink_ops = {
	.write = conn_sink_write,
	.close = conn_sink_close,
	.ref = conn_sink_ref,
	.unref = conn_sink_unref,
	.is_closed = conn_sink_is_closed,
	.peer = conn_sink_peer,
	.scrub = conn_sink_scrub,
};

/* Dispatch every complete message in the read buffer. */
static void
conn_process(struct conn *c)
{
	struct broker		*b = c->b;
	struct rpc_sink		 sink = { &conn_sink_ops, c };
	struct secbuf		 msg;
	size_t			 consumed = 0, max;
	bool			 partial = false;
	int			 rc;

	max = conn_max_message(c);
	/*
	 * At most server.max_inflight calls of a connection wait (on Vault)
	 * at once: the requests after them stay in the buffer and are
	 * dispatched as calls finish (conn_maybe_resume).  So one client
	 * pipelining hundreds of calls that go to Vault holds that many, not
	 * hundreds, and cannot fill vault.max_pending alone.  Reading goes on
	 * up to one chunk held back, so that a client that hangs up is seen:
	 * the requests it left are dropped (closing), never started.
	 */
	c->processing = true;
	while (!c->closing && consumed < c->rbuf.len &&
	    c->inflight < b->conf->max_inflight) {
		rc = proto_scan(&c->scan, c->rbuf.data + consumed,
		    c->rbuf.len - consumed, max);
		if (rc == PROTO_SCAN_MORE) {
			partial = true;
			break;
		}
		if (rc == PROTO_SCAN_TOOBIG) {
			log_info("connection %llu (uid %u): message larger "
			    "than %zu bytes; closing",
			    (unsigned long long)c->id, (unsigned)c->peer.uid,
			    max);
			conn_fail(c, CB_ETOOLARGE, max < b->conf->max_message ?
			    "message exceeds the maximum message size for a "
			    "caller without permissions" :
			    "message exceeds the maximum message size");
			break;
		}
		if (rc == PROTO_SCAN_BAD) {
			log_info("connection %llu (uid %u): malformed msgpack; "
			    "closing", (unsigned long long)c->id,
			    (unsigned)c->peer.uid);
			conn_close(c);
			break;
		}
		/* The message's own copy, which its call keeps. */
		msg = (struct secbuf)SECBUF_INIT;
		if (secbuf_append(&msg, c->rbuf.data + consumed,
		    c->scan.off) != 0) {
			log_warnx("connection %llu: out of memory; closing",
			    (unsigned long long)c->id);
			conn_close(c);
		} else
			rpc_dispatch(b, &sink, &msg);
		consumed += c->scan.off;
		proto_scan_reset(&c->scan);
	}
	c->processing = false;
	/* Wipes the consumed requests, which may have carried secrets. */
	secbuf_consume(&c->rbuf, consumed);
	/* Held back, a chunk of it: read no more until calls finish. */
	if (c->reading && !c->closing &&
	    c->inflight >= b->conf->max_inflight &&
	    c->rbuf.len >= CONN_READ_CHUNK) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = false;
	}
	/*
	 * What is left is the start of a message: a new one if a message
	 * ended in these bytes, else the one already on the clock.  Whole
	 * messages held back behind waiting calls are not on the clock: the
	 * broker, not the client, is making them wait.
	 */
	if (c->rbuf.len == 0 || !partial)
		c->msg_partial = false;
	else if (!c->msg_partial || consumed > 0) {
		c->msg_partial = true;
		c->msg_start = uv_now(b->loop);
	}
	/*
	 * An idle connection holds no buffer: it goes back to the pool, and
	 * only the bytes that were received need wiping.
	 */
	if (c->rbuf.len == 0)
		secbuf_free(&c->rbuf);
}

/* Hand libuv the free tail of the read buffer. */
static void
conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn	*c = h->data;

	/* Only the bytes the kernel writes are marked for wiping. */
	if (secbuf_tail(&c->rbuf, CONN_READ_CHUNK) != 0) {
		*buf = uv_buf_init(NULL, 0);
		return;
	}
	*buf = uv_buf_init((char *)c->rbuf.data + c->rbuf.len,
	    (unsigned)(c->rbuf.cap - c->rbuf.len));
}

/* Bytes arrived, or EOF or an error. */
static void
conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn	*c = s->data;

	if (nread < 0) {
		if (nread != UV_EOF)
			log_debug("connection %llu: read: %s",
			    (unsigned long long)c->id, uv_strerror((int)nread));
		conn_close(c);
		return;
	}
	if (nread == 0)
		return;
	secbuf_commit(&c->rbuf, (size_t)nread);
	c->last_read = uv_now(c->b->loop);
	conn_process(c);
	conn_timer_arm(c);
}

static void
conn_read_start(struct conn *c)
{
	int	rc;

	if ((rc = uv_read_start((uv_stream_t *)&c->pipe, conn_alloc,
	    conn_read)) != 0) {
		log_warnx("connection %llu: read start: %s",
		    (unsigned long long)c->id, uv_strerror(rc));
		conn_close(c);
		return;
	}
	c->reading = true;
	/* A message is not timed while the daemon was not reading it. */
	if (c->msg_partial)
		c->msg_start = uv_now(c->b->loop);
	conn_timer_arm(c);
}

/*
 * Set the connection's timer to its next deadline: idle_timeout after the
 * last bytes received, and message_timeout after a message began while it
 * is being read.
 */
static void
conn_timer_arm(struct conn *c)
{
	const struct conf	*conf = c->b->conf;
	uint64_t		 now, due = UINT64_MAX, t;

	if (c->closed)
		return;
	if (conf->idle_timeout > 0)
		due = c->last_read + (uint64_t)conf->idle_timeout * 1000;
	if (c->msg_partial && c->reading && conf->message_timeout > 0) {
		t = c->msg_start + (uint64_t)conf->message_timeout * 1000;
		if (t < due)
			due = t;
	}
	if (due == UINT64_MAX) {
		uv_timer_stop(&c->idle);
		return;
	}
	now = uv_now(c->b->loop);
	uv_timer_start(&c->idle, conn_timeout, due > now ? due - now : 0, 0);
}

/* A deadline of the connection passed: the message's, or the idle one. */
static void
conn_timeout(uv_timer_t *t)
{
	struct conn		*c = t->data;
	const struct conf	*conf = c->b->conf;
	uint64_t		 now = uv_now(c->b->loop);

	if (c->msg_partial && c->reading && conf->message_timeout > 0 &&
	    now - c->msg_start >= (uint64_t)conf->message_timeout * 1000) {
		log_info("connection %llu (uid %u): message not complete "
		    "after %u seconds (server.message_timeout); closing",
		    (unsigned long long)c->id, (unsigned)c->peer.uid,
		    conf->message_timeout);
		conn_close(c);
		return;
	}
	if (conf->idle_timeout > 0 &&
	    now - c->last_read >= (uint64_t)conf->idle_timeout * 1000) {
		log_debug("connection %llu idle; closing",
		    (unsigned long long)c->id);
		conn_close(c);
		return;
	}
	conn_timer_arm(c);	/* the settings changed on reload */
}

/* Whether a peer may use the connection slots kept by reserved_connections. */
static bool
server_peer_privileged(const struct conf *conf, const struct peer *p)
{
	unsigned	edit = CB_PERM_BIT(CB_PERM_TYPES) |
			    CB_PERM_BIT(CB_PERM_CREDS);

	return p->uid == 0 ||
	    (access_perms(conf->grants, conf->ngrants, p) & edit) != 0;
}

/*
 * Whether the connection c, just accepted, may stay: within max_connections,
 * outside the reserved slots unless its peer is privileged, and within its
 * uid's share.  A refusal is logged and says which limit.
 */
static bool
server_admit(struct broker *b, struct conn *c)
{
	const struct conf	*conf = b->conf;
	struct conn		*o;
	unsigned		 others = b->nconns - 1, reserved, n = 0;

	/* At most half the table is reserved: see credbroker.conf(5). */
	reserved = conf->reserved_connections;
	if (reserved > conf->max_connections / 2)
		reserved = conf->max_connections / 2;
	if (others >= conf->max_connections) {
		log_warnx("refusing connection from uid %u: %u connections "
		    "open (server.max_connections)", (unsigned)c->peer.uid,
		    others);
		return false;
	}
	if (others >= conf->max_connections - reserved &&
	    !server_peer_privileged(conf, &c->peer)) {
		log_warnx("refusing connection from uid %u: the last %u "
		    "connections are reserved (server.reserved_connections)",
		    (unsigned)c->peer.uid, reserved);
		return false;
	}
	TAILQ_FOREACH(o, &server_conns, entry)
		if (o != c && !o->closed && o->peer.uid == c->peer.uid)
			n++;
	if (n >= conf->max_connections_per_uid) {
		log_warnx("refusing connection from uid %u: %u connections "
		    "open (server.max_connections_per_uid)",
		    (unsigned)c->peer.uid, n);
		return false;
	}
	return true;
}

/* A client is connecting. */
static void
server_accept(uv_stream_t *listener, int status)
{
	struct broker	*b = listener->data;
	struct conn	*c;
	struct cb_error	 err;
	uv_os_fd_t	 fd;
	int		 rc;

	if (status < 0) {
		log_warnx("accept: %s", uv_strerror(status));
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warnx("accept: out of memory");
		return;
	}
	c->b = b;
	c->id = server_next_id++;
	proto_scan_reset(&c->scan);
	uv_pipe_init(b->loop, &c->pipe, 0);
	uv_timer_init(b->loop, &c->idle);
	c->pipe.data = c->idle.data = c;
	c->open_handles = 2;
	TAILQ_INSERT_TAIL(&server_conns, c, entry);
	b->nconns++;

	if ((rc = uv_accept(listener, (uv_stream_t *)&c->pipe)) != 0) {
		log_warnx("accept: %s", uv_strerror(rc));
		conn_really_close(c);
		return;
	}
	if (b->stopping) {
		conn_really_close(c);
		return;
	}
	if (uv_fileno((uv_handle_t *)&c->pipe, &fd) != 0 ||
	    access_peer_get(fd, &c->peer, &err) != 0) {
		log_warnx("connection %llu: cannot identify peer",
		    (unsigned long long)c->id);
		conn_really_close(c);
		return;
	}
	if (!server_admit(b, c)) {
		rpc_stats_conn(false);
		conn_really_close(c);
		return;
	}
	rpc_stats_conn(true);
	log_debug("connection %llu from uid %u gid %u pid %d",
	    (unsigned long long)c->id, (unsigned)c->peer.uid,
	    (unsigned)c->peer.gid, (int)c->peer.pid);
	c->last_read = uv_now(b->loop);
	conn_read_start(c);
}

/*
 * Remove a socket file left by a daemon that is gone; refuse to start when
 * one is still answering on it, and never remove something that is not a
 * socket.
 */
static int
server_clear_stale(const char *path, struct cb_error *err)
{
	struct sockaddr_un	 sun;
	struct stat		 st;
	int			 fd, rc;

	if (lstat(path, &st) != 0)
		return errno == ENOENT ? 0 : cb_error_set(err, CB_EINTERNAL,
		    "%s: %s", path, strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		return cb_error_set(err, CB_EINTERNAL,
		    "%s exists and is not a socket", path);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		return cb_error_set(err, CB_EINTERNAL, "socket path too long");
	memcpy(sun.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return cb_error_set(err, CB_EINTERNAL, "socket: %s",
		    strerror(errno));
	rc = connect(fd, (struct sockaddr *)&sun, sizeof(sun));
	close(fd);
	if (rc == 0)
		return cb_error_set(err, CB_EINTERNAL,
		    "another broker is listening on %s", path);
	if (unlink(path) != 0)
		return cb_error_set(err, CB_EINTERNAL, "unlink %s: %s", path,
		    strerror(errno));
	return 0;
}

void
server_scrub_later(void)
{
	server_scrub_pending = true;
}

/*
 * Send what the callbacks have produced: the log lines, then the replies;
 * then wipe the stack the calls used if one of them handled a secret.
 * Runs after the I/O callbacks of each loop iteration (check) and again
 * just before the loop waits (prepare), for replies made by timer, pending
 * or close callbacks, which run outside the I/O phase.
 */
static void
server_send_queued(void)
{
	struct conn	*c;

	/* The iteration's reads shared one SQLite read transaction. */
	if (server_broker != NULL)
		store_release(server_broker->store);
	log_flush();
	while ((c = TAILQ_FIRST(&server_wpending)) != NULL)
		conn_flush(c);
	if (server_scrub_pending) {
		server_scrub_pending = false;
		cb_stack_scrub();
	}
}

static void
server_iteration_done(uv_check_t *h)
{
	server_send_queued();
}

static void
server_before_wait(uv_prepare_t *h)
{
	server_send_queued();
}

/* Tell systemd the loop is alive. */
static void
server_watchdog_pet(uv_timer_t *t)
{
	sd_notify(0, "WATCHDOG=1");
}

/* SIGTERM/SIGINT stop, SIGHUP reloads. */
static void
server_signal(uv_signal_t *h, int signum)
{
	struct broker	*b = h->data;

	if (signum == SIGHUP) {
		server_reload(b);
		return;
	}
	if (!b->stopping)
		log_info("signal %d: shutting down", signum);
	server_shutdown(b);
}

/* Logged once: secret buffers are never put in memory that may swap. */
static void
server_memlock_failed(size_t locked)
{
	log_warnx("cannot lock more memory for secrets (%zu bytes locked; "
	    "RLIMIT_MEMLOCK): connections and calls that need more are "
	    "refused", locked);
}

int
server_start(struct broker *b, struct cb_error *err)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	const char	*path = b->conf->socket;
	uint64_t	 wd_usec = 0;
	mode_t		 old;
	size_t		 i;
	int		 rc, nfds;

	server_broker = b;
	secmem_pool_on_lock_failure(server_memlock_failed);
	uv_pipe_init(b->loop, &server_listener, 0);
	server_listener.data = b;
	server_listening = true;
	/*
	 * Socket activation: systemd made the socket (path, owner and mode
	 * come from credbroker.socket), and server.socket is ignored.
	 */
	if ((nfds = sd_listen_fds(1)) < 0)
		return cb_error_set(err, CB_EINTERNAL, "sd_listen_fds: %s",
		    strerror(-nfds));
	if (nfds > 1)
		return cb_error_set(err, CB_EINTERNAL, "systemd passed %d "
		    "sockets; credbroker listens on one", nfds);
	if (nfds == 1) {
		if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1,
		    NULL, 0) <= 0)
			return cb_error_set(err, CB_EINTERNAL, "the socket "
			    "systemd passed is not a listening UNIX stream "
			    "socket");
		if ((rc = uv_pipe_open(&server_listener,
		    SD_LISTEN_FDS_START)) != 0)
			return cb_error_set(err, CB_EINTERNAL,
			    "socket from systemd: %s", uv_strerror(rc));
		path = "the socket passed by systemd";
	} else {
		if (server_clear_stale(path, err) != 0)
			return -CB_EINTERNAL;
		old = umask(0177);
		rc = uv_pipe_bind(&server_listener, path);
		umask(old);
		if (rc != 0)
			return cb_error_set(err, CB_EINTERNAL, "bind %s: %s",
			    path, uv_strerror(rc));
		server_created_socket = true;
		if (chmod(path, b->conf->socket_mode) != 0)
			return cb_error_set(err, CB_EINTERNAL, "chmod %s: %s",
			    path, strerror(errno));
	}
	if ((rc = uv_listen((uv_stream_t *)&server_listener, SOMAXCONN,
	    server_accept)) != 0)
		return cb_error_set(err, CB_EINTERNAL, "listen %s: %s", path,
		    uv_strerror(rc));
	for (i = 0; i < 3; i++) {
		uv_signal_init(b->loop, &server_sigs[i]);
		server_sigs[i].data = b;
		uv_signal_start(&server_sigs[i], server_signal, sigs[i]);
	}
	uv_timer_init(b->loop, &server_stop_timer);
	server_stop_timer.data = b;
	server_stop_timer_on = true;
	uv_check_init(b->loop, &server_check);
	uv_check_start(&server_check, server_iteration_done);
	uv_unref((uv_handle_t *)&server_check);	/* never keeps the loop up */
	uv_prepare_init(b->loop, &server_prepare);
	uv_prepare_start(&server_prepare, server_before_wait);
	uv_unref((uv_handle_t *)&server_prepare);
	server_check_on = true;
	/* The watchdog is petted at half its interval, from the loop itself. */
	if (sd_watchdog_enabled(0, &wd_usec) > 0 && wd_usec >= 2000) {
		uv_timer_init(b->loop, &server_watchdog);
		uv_timer_start(&server_watchdog, server_watchdog_pet,
		    wd_usec / 2000, wd_usec / 2000);
		server_watchdog_on = true;
	}
	log_info("listening on %s", path);
	sd_notifyf(0, "READY=1\nSTATUS=serving on %s", path);
	return 0;
}

/* The drain deadline passed: drop whatever is still open. */
static void
server_stop_deadline(uv_timer_t *t)
{
	struct conn	*c, *next;

	struct broker	*b = t->data;

	log_warnx("shutdown deadline reached; closing remaining connections");
	TAILQ_FOREACH_SAFE(c, &server_conns, entry, next)
		conn_really_close(c);
	/*
	 * Calls still waiting on Vault fail now, releasing their conns:
	 * those of the Vault client, then running vault.test calls, which
	 * have clients of their own on the same HTTP client.  The last
	 * conn freed brings server_shutdown() back, which closes the HTTP
	 * client.
	 */
	if (b->vault != NULL) {
		struct vault *v = b->vault;

		b->vault = NULL;
		vault_close(v);
	}
	if (b->http != NULL)
		vault_test_abort_all(b->http);
}

void
server_shutdown(struct broker *b)
{
	struct conn	*c, *next;
	size_t		 i;

	if (!b->stopping) {
		b->stopping = true;
		sd_notify(0, "STOPPING=1\nSTATUS=draining connections");
		if (server_listening) {
			uv_close((uv_handle_t *)&server_listener, NULL);
			server_listening = false;
			if (server_created_socket)
				unlink(b->conf->socket);
		}
		TAILQ_FOREACH_SAFE(c, &server_conns, entry, next)
			conn_close(c);
		if (server_stop_timer_on && !TAILQ_EMPTY(&server_conns))
			uv_timer_start(&server_stop_timer, server_stop_deadline,
			    (uint64_t)b->conf->shutdown_timeout * 1000, 0);
	}
	if (!TAILQ_EMPTY(&server_conns))
		return;
	/*
	 * Everything drained: close Vault (its waiting calls, if any, fail
	 * now) and the HTTP client, then the remaining handles.  The
	 * pointers are cleared first: closing can complete calls, which can
	 * bring us back here.
	 */
	if (b->vault != NULL) {
		struct vault *v = b->vault;

		b->vault = NULL;
		vault_close(v);
	}
	backends_close(b);
	keys_close(b);
	/*
	 * No call waits any more, but a finished vault.test may still have
	 * a request out until its client is reaped.  Its requests stay its
	 * own (http.c, "Ownership"): http_close() detaches them, and the
	 * reaper's vault_close() cancels and frees them.
	 */
	if (b->http != NULL) {
		struct http *h = b->http;

		b->http = NULL;
		vault_test_abort_all(h);
		http_close(h);
	}
	if (server_watchdog_on) {
		uv_close((uv_handle_t *)&server_watchdog, NULL);
		server_watchdog_on = false;
	}
	if (server_check_on) {
		/* The last replies and secrets: now, not never. */
		server_send_queued();
		uv_close((uv_handle_t *)&server_check, NULL);
		uv_close((uv_handle_t *)&server_prepare, NULL);
		server_check_on = false;
	}
	if (server_stop_timer_on) {
		uv_close((uv_handle_t *)&server_stop_timer, NULL);
		server_stop_timer_on = false;
		for (i = 0; i < 3; i++)
			uv_close((uv_handle_t *)&server_sigs[i], NULL);
	}
}

void
server_reload(struct broker *b)
{
	struct conf	*nc;
	struct cb_error	 err;

	if ((nc = calloc(1, sizeof(*nc))) == NULL) {
		log_warnx("reload: out of memory");
		return;
	}
	sd_notify(0, "RELOADING=1");
	if (conf_load(nc, b->conf_path, b->overrides, b->noverrides,
	    &err) != 0) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", err.msg);
		free(nc);
		sd_notify(0, "READY=1\nSTATUS=reload failed; running "
		    "configuration kept");
		return;
	}
	/* The master key is not reloaded: drop the inline copy at once. */
	secbuf_free(&nc->secret_key);
	if (strcmp(nc->socket, b->conf->socket) != 0 ||
	    strcmp(nc->database, b->conf->database) != 0)
		log_warnx("reload: server.socket and storage.database "
		    "changes take effect at the next start");
	if ((nc->audit_file == NULL) != (b->conf->audit_file == NULL) ||
	    (nc->audit_file != NULL &&
	    strcmp(nc->audit_file, b->conf->audit_file) != 0))
		log_warnx("reload: audit.file changes take effect at the next "
		    "start");
	/* Keep what cannot change while running. */
	free(nc->audit_file);
	nc->audit_file = b->conf->audit_file;
	b->conf->audit_file = NULL;
	free(nc->socket);
	nc->socket = b->conf->socket;
	b->conf->socket = NULL;
	free(nc->database);
	nc->database = b->conf->database;
	b->conf->database = NULL;
	conf_free(b->conf);
	free(b->conf);
	b->conf = nc;
	log_set_level(nc->log_level);
	if (store_tune(b->store, nc->page_cache_mb, nc->mmap_mb, &err) != 0)
		log_warnx("reload: storage sizes: %s", err.msg);
	if (b->http != NULL && http_set_limits(b->http,
	    nc->vault_max_connections, nc->vault_max_connections, &err) != 0)
		log_warnx("reload: vault.max_connections: %s", err.msg);
	if (b->vault != NULL)
		vault_set_limits(b->vault, nc->vault_max_pending);
	log_info("configuration reloaded (%zu grants)", nc->ngrants);
	sd_notifyf(0, "READY=1\nSTATUS=configuration reloaded (%zu grants)",
	    nc->ngrants);
}

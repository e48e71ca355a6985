/*
 * conn: a client connection.
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
 * its end (conn_send_queued, from server.c's check handle): the sixteen
 * pipelined calls of a client cost one write(2), not sixteen.  The log is
 * flushed before any reply is sent, so a call's audit line always
 * precedes its answer.  Reply buffers are wiped once written.  A call
 * that handled a secret marks the stack for a scrub at the end of the
 * iteration, which server.c takes with conn_take_scrub().
 *
 * A peer that no grant names (it may only call hello) can send messages of
 * at most server.max_message_size_no_permission bytes, for as long as it
 * has no permission; a message that has begun must be complete within
 * server.message_timeout seconds, however steadily its bytes trickle in
 * (the idle timeout alone would let one byte a minute hold a connection
 * and its buffer for ever).
 *
 * A connection owns two handles (the pipe and its timer) and is freed
 * when both close callbacks have run and no waiting call still refers to
 * it (conn_ref/conn_unref): a reply that arrives after its connection has
 * gone is wiped and dropped, never written to freed memory.  server.c
 * accepts and admits connections (server_accept) and closes them at
 * shutdown; the last one freed while stopping calls the callback it set
 * with conn_on_drained(), which brings server_shutdown() back.
 */
#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "cb_error.h"
#include "conn.h"
#include "credbrokerd.h"
#include "log.h"
#include "proto.h"
#include "secbuf.h"

#define CONN_READ_CHUNK		(64 * 1024)

struct wreq {
	uv_write_t	 req;
	struct conn	*c;
	struct secbuf	 buf;
	unsigned	 nreplies;
};

/* Connections with replies to send at the end of this loop iteration. */
static TAILQ_HEAD(, conn) conn_wpending =
    TAILQ_HEAD_INITIALIZER(conn_wpending);
/* Replies wait for the end of the iteration (conn_defer_writes). */
static bool		 conn_deferring;
static bool		 conn_scrub_pending;
static void		(*conn_drained)(struct broker *);

struct conn_list	 conns = TAILQ_HEAD_INITIALIZER(conns);

static void	conn_process(struct conn *);
static void	conn_flush(struct conn *);
static void	conn_close_if_drained(struct conn *);
static void	conn_timer_arm(struct conn *);
static void	conn_timeout(uv_timer_t *);
static void	conn_write(struct conn *, struct secbuf *);

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
	TAILQ_REMOVE(&conns, c, entry);
	b->nconns--;
	secbuf_free(&c->rbuf);
	secbuf_free(&c->obuf);
	access_peer_free(&c->peer);
	free(c);
	if (b->stopping && TAILQ_EMPTY(&conns) && conn_drained != NULL)
		conn_drained(b);
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
	    c->held == 0 && c->inflight < c->b->conf->max_inflight)
		conn_process(c);
	if (!c->closing && !c->reading &&
	    conn_queued(c) < c->b->conf->max_inflight &&
	    ((c->held == 0 && c->inflight < c->b->conf->max_inflight) ||
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
		TAILQ_REMOVE(&conn_wpending, c, wentry);
		c->wqueued = false;
	}
}

/* Close both handles now, dropping anything unsent. */
void
conn_really_close(struct conn *c)
{
	if (c->closed)
		return;
	c->closed = true;
	c->closing = true;
	/* Its requests end now (their replies are wiped, never sent). */
	rpc_request_sink_closed(c);
	conn_unqueue(c);
	secbuf_free(&c->obuf);
	c->obuf_n = 0;
	uv_close((uv_handle_t *)&c->idle, conn_handle_closed);
	uv_close((uv_handle_t *)&c->pipe, conn_handle_closed);
}

void
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
	/*
	 * Nothing more is read or processed: what is left unread goes now,
	 * wiped, not when the handles have closed.  Connections that end
	 * together (a client pool closing, the end of each read being a read
	 * chunk of its own) would otherwise hold a chunk each until then.
	 * From inside conn_process the buffer is still being walked: it goes
	 * when that ends.
	 */
	if (!c->processing)
		secbuf_free(&c->rbuf);
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
	if (!conn_deferring) {		/* not in the loop: send now */
		conn_flush(c);
		return;
	}
	if (!c->wqueued) {
		TAILQ_INSERT_TAIL(&conn_wpending, c, wentry);
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
	conn_scrub_pending = true;
}

static bool
conn_sink_notified(void *ctx)
{
	struct conn	*c = ctx;
	bool		 first = !c->notified;

	c->notified = true;
	return first;
}

/*
 * A call's write is in flight: the requests after it stay in the buffer
 * until it is answered (conn_process), then go in order.
 */
static void
conn_sink_hold(void *ctx, bool on)
{
	struct conn	*c = ctx;

	if (on)
		c->held++;
	else
		c->held--;
}

static const struct rpc_sink_ops conn_sink_ops = {
	.write = conn_sink_write,
	.close = conn_sink_close,
	.ref = conn_sink_ref,
	.unref = conn_sink_unref,
	.is_closed = conn_sink_is_closed,
	.peer = conn_sink_peer,
	.scrub = conn_sink_scrub,
	.notified = conn_sink_notified,
	.hold = conn_sink_hold,
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
	 * While a call's write is in flight (held), nothing after it is
	 * dispatched: the requests that follow see what it wrote.
	 */
	c->processing = true;
	while (!c->closing && consumed < c->rbuf.len && c->held == 0 &&
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
	    (c->inflight >= b->conf->max_inflight || c->held > 0) &&
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
	 * only the bytes that were received need wiping.  Nor does one that
	 * is closing, which reads no more.
	 */
	if (c->rbuf.len == 0 || c->closing)
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
		/*
		 * The caller has gone: a request sent for it would only keep
		 * an upstream busy.  Cancel it (the reply is dropped).
		 */
		if (!c->closed)
			rpc_request_sink_closed(c);
		return;
	}
	if (nread == 0)
		return;
	secbuf_commit(&c->rbuf, (size_t)nread);
	c->last_read = uv_now(c->b->loop);
	conn_process(c);
	conn_timer_arm(c);
}

void
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

void
conn_defer_writes(bool on)
{
	conn_deferring = on;
}

/* Send the replies queued during this loop iteration. */
void
conn_send_queued(void)
{
	struct conn	*c;

	while ((c = TAILQ_FIRST(&conn_wpending)) != NULL)
		conn_flush(c);
}

bool
conn_take_scrub(void)
{
	bool	pending = conn_scrub_pending;

	conn_scrub_pending = false;
	return pending;
}

void
conn_on_drained(void (*cb)(struct broker *))
{
	conn_drained = cb;
}

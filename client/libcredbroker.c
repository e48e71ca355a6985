/*
 * libcredbroker: a blocking msgpack-rpc client for credbrokerd's UNIX
 * socket (the API is documented in credbroker.h).
 *
 * A call packs [0, msgid, method, [params]] into a wiping buffer (secbuf),
 * writes it, wipes it, then reads until a response with the same msgid has
 * arrived.  Received bytes accumulate in a second secbuf.  The shared
 * framing scanner (proto_scan) walks the msgpack headers to find where
 * one message ends; it keeps its position across reads, so a large
 * response is scanned once instead of being re-parsed after every read,
 * and a response whose headers announce more than the cap is refused as
 * soon as the header is in.  Only a complete frame is handed to
 * msgpack_unpack_next(), whose strings and bins point into the frame
 * bytes; the reply owns those bytes and wipes them when it is freed.
 * Frames that are not ours are wiped as they are consumed.
 *
 * msgid 0 is never used for a request.  The broker answers a request it
 * could not read far enough to learn its msgid (too large, malformed)
 * with an error carrying msgid 0 and then closes the connection; with
 * one call outstanding that error can only be about it, so it is
 * reported as the call's error.
 *
 * The runner's API, credbroker_substitute(), is built on this call core in
 * libcredbroker-substitute.c.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>

#include "credbroker.h"
#include "libcredbroker-int.h"
#include "proto.h"
#include "secbuf.h"

#define CB_READ_CHUNK	(64 * 1024)

struct credbroker {
	int		 fd;
	bool		 broken;	/* stream position unknown: no calls */
	uint32_t	 next_msgid;
	int		 timeout_ms;	/* per call; < 0 = no limit */
	size_t		 max_response;
	struct secbuf	 in;		/* received, not yet consumed bytes */
	struct proto_scan scan;		/* framing state over in */
};

struct credbroker_reply {
	struct secbuf		 buf;	/* the response frame */
	msgpack_unpacked	 msg;	/* objects pointing into buf */
	const msgpack_object	*result;
};

/* What cb_take_frame() made of one complete frame. */
enum cb_frame_kind {
	CB_FRAME_OURS,			/* the response to our call */
	CB_FRAME_FATAL,			/* msgid 0 error: the broker hangs up */
	CB_FRAME_SKIP			/* another msgid, or a notification */
};

/* Fill err (which may be NULL) with a code and a formatted message. */
int
cb_fail(struct credbroker_error *err, const char *code, const char *fmt, ...)
{
	va_list	ap;

	if (err != NULL) {
		snprintf(err->code, sizeof(err->code), "%s", code);
		va_start(ap, fmt);
		vsnprintf(err->message, sizeof(err->message), fmt, ap);
		va_end(ap);
	}
	return CREDBROKER_ELOCAL;
}

/* Mark err as "no error". */
void
cb_err_clear(struct credbroker_error *err)
{
	if (err != NULL) {
		err->code[0] = '\0';
		err->message[0] = '\0';
	}
}

/* Copy a msgpack string into a fixed buffer, stopping at NUL, truncating. */
static void
cb_copy_str(char *dst, size_t dstlen, const msgpack_object *o)
{
	size_t	n = 0;

	if (o != NULL && o->type == MSGPACK_OBJECT_STR) {
		n = o->via.str.size;
		if (n > dstlen - 1)
			n = dstlen - 1;
		memcpy(dst, o->via.str.ptr, n);
	}
	dst[n] = '\0';
	dst[strnlen(dst, n)] = '\0';
}

/* Milliseconds left until deadline (-1 without one), 0 when passed. */
static int
cb_remaining_ms(const struct timespec *deadline)
{
	struct timespec	now;
	int64_t		ms;

	if (deadline == NULL)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	if (ms <= 0)
		return 0;
	return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

/* Wait until fd is ready for events or the deadline passes. */
static int
cb_wait(struct credbroker *c, short events, const struct timespec *deadline,
    struct credbroker_error *err)
{
	struct pollfd	pfd;
	int		ms, n;

	for (;;) {
		ms = cb_remaining_ms(deadline);
		if (ms == 0)
			return cb_fail(err, CREDBROKER_ERR_TIMEOUT,
			    "the call did not complete within %d ms",
			    c->timeout_ms);
		pfd.fd = c->fd;
		pfd.events = events;
		pfd.revents = 0;
		n = poll(&pfd, 1, ms);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return cb_fail(err, CREDBROKER_ERR_IO, "poll: %s",
			    strerror(errno));
	}
}

/* Write all n bytes at p. */
static int
cb_send_all(struct credbroker *c, const uint8_t *p, size_t n,
    const struct timespec *deadline, struct credbroker_error *err)
{
	ssize_t	w;

	while (n > 0) {
		w = send(c->fd, p, n, MSG_NOSIGNAL);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (cb_wait(c, POLLOUT, deadline, err) != 0)
				return CREDBROKER_ELOCAL;
			continue;
		}
		if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
			return cb_fail(err, CREDBROKER_ERR_IO,
			    "the broker closed the connection");
		return cb_fail(err, CREDBROKER_ERR_IO, "write: %s",
		    w < 0 ? strerror(errno) : "no progress");
	}
	return 0;
}

/* Read what is available (waiting for at least one byte) into c->in. */
static int
cb_recv_some(struct credbroker *c, const struct timespec *deadline,
    struct credbroker_error *err)
{
	ssize_t	n;

	if (secbuf_tail(&c->in, CB_READ_CHUNK) != 0)
		return cb_fail(err, CREDBROKER_ERR_NOMEM, "out of memory");
	for (;;) {
		n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len,
		    0);
		if (n > 0) {
			secbuf_commit(&c->in, (size_t)n);
			return 0;
		}
		if (n == 0)
			return cb_fail(err, CREDBROKER_ERR_IO,
			    "the broker closed the connection%s",
			    c->in.len > 0 ? " in the middle of a response" :
			    "");
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (cb_wait(c, POLLIN, deadline, err) != 0)
				return CREDBROKER_ELOCAL;
			continue;
		}
		if (errno == ECONNRESET)
			return cb_fail(err, CREDBROKER_ERR_IO,
			    "the broker closed the connection");
		return cb_fail(err, CREDBROKER_ERR_IO, "read: %s",
		    strerror(errno));
	}
}

/*
 * Check that the decoded frame in r is a response and classify it.  For
 * our msgid: a nil error slot gives CB_FRAME_OURS with r->result set; an
 * error map is copied into err and CREDBROKER_EBROKER returned.  An error
 * with msgid 0 counts as ours (see the top of the file).
 */
static int
cb_check_response(struct credbroker_reply *r, uint32_t msgid,
    enum cb_frame_kind *kind, struct credbroker_error *err)
{
	const msgpack_object	*o = &r->msg.data, *a, *code, *msg;

	*kind = CB_FRAME_SKIP;
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size < 1)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the broker sent something that is not a msgpack-rpc "
		    "message");
	a = o->via.array.ptr;
	if (a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER && a[0].via.u64 == 2 &&
	    o->via.array.size == 3) {
		*kind = CB_FRAME_SKIP;		/* notification: not for us */
		return 0;
	}
	if (a[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[0].via.u64 != CB_MSG_RESPONSE || o->via.array.size != 4)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the broker sent a message that is not a response");
	if (a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    a[1].via.u64 > UINT32_MAX)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the broker sent a response with an invalid msgid");
	if (a[1].via.u64 == 0 && a[2].type != MSGPACK_OBJECT_NIL)
		*kind = CB_FRAME_FATAL;
	else if (a[1].via.u64 == msgid)
		*kind = CB_FRAME_OURS;
	else {
		*kind = CB_FRAME_SKIP;
		return 0;
	}
	if (*kind == CB_FRAME_OURS && a[2].type == MSGPACK_OBJECT_NIL) {
		r->result = &a[3];
		return 0;
	}
	if (a[2].type != MSGPACK_OBJECT_MAP)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the broker sent an error that is not a map");
	code = proto_map_get(&a[2], "code");
	msg = proto_map_get(&a[2], "message");
	if (code == NULL || code->type != MSGPACK_OBJECT_STR ||
	    code->via.str.size == 0 ||
	    (msg != NULL && msg->type != MSGPACK_OBJECT_STR &&
	    msg->type != MSGPACK_OBJECT_NIL))
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the broker sent a malformed error");
	if (err != NULL) {
		cb_copy_str(err->code, sizeof(err->code), code);
		cb_copy_str(err->message, sizeof(err->message), msg);
	}
	return CREDBROKER_EBROKER;
}

/* Free a reply's objects and wipe its bytes. */
static void
cb_reply_destroy(struct credbroker_reply *r)
{
	msgpack_unpacked_destroy(&r->msg);
	secbuf_free(&r->buf);
	free(r);
}

/*
 * Take the complete frame of flen bytes at the start of c->in out of the
 * buffer (wiping it there), decode it and classify it.  On CB_FRAME_OURS
 * with success, *out receives the reply.
 */
static int
cb_take_frame(struct credbroker *c, size_t flen, uint32_t msgid,
    enum cb_frame_kind *kind, struct credbroker_reply **out,
    struct credbroker_error *err)
{
	struct credbroker_reply	*r;
	size_t			 off = 0;
	int			 rc;

	*kind = CB_FRAME_SKIP;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return cb_fail(err, CREDBROKER_ERR_NOMEM, "out of memory");
	msgpack_unpacked_init(&r->msg);
	if (flen == c->in.len) {
		/* The usual case: the buffer holds just this frame. */
		r->buf = c->in;
		memset(&c->in, 0, sizeof(c->in));
	} else {
		if (secbuf_append(&r->buf, c->in.data, flen) != 0) {
			cb_reply_destroy(r);
			return cb_fail(err, CREDBROKER_ERR_NOMEM,
			    "out of memory");
		}
		secbuf_consume(&c->in, flen);
	}
	if (msgpack_unpack_next(&r->msg, (const char *)r->buf.data, r->buf.len,
	    &off) != MSGPACK_UNPACK_SUCCESS || off != r->buf.len) {
		cb_reply_destroy(r);
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the broker sent malformed msgpack");
	}
	rc = cb_check_response(r, msgid, kind, err);
	if (*kind == CB_FRAME_FATAL)
		c->broken = true;
	if (rc == 0 && *kind == CB_FRAME_OURS)
		*out = r;
	else
		cb_reply_destroy(r);
	return rc;
}

/* Read frames until the response to msgid has arrived. */
static int
cb_read_reply(struct credbroker *c, uint32_t msgid,
    const struct timespec *deadline, struct credbroker_reply **out,
    struct credbroker_error *err)
{
	enum cb_frame_kind	kind;
	int			rc;

	for (;;) {
		rc = proto_scan(&c->scan, c->in.data, c->in.len,
		    c->max_response);
		if (rc == PROTO_SCAN_BAD)
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "the broker sent malformed msgpack");
		if (rc == PROTO_SCAN_TOOBIG)
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "the response is larger than the limit of %zu "
			    "bytes", c->max_response);
		if (rc == PROTO_SCAN_MORE) {
			if (cb_recv_some(c, deadline, err) != 0)
				return CREDBROKER_ELOCAL;
			continue;
		}
		rc = cb_take_frame(c, c->scan.off, msgid, &kind, out, err);
		proto_scan_reset(&c->scan);
		if (rc != 0 || kind != CB_FRAME_SKIP)
			return rc;
	}
}

/* Check that params holds exactly one msgpack map. */
static int
cb_check_params(const char *params, size_t len, struct credbroker_error *err)
{
	struct proto_scan	s;
	uint8_t			t = (uint8_t)params[0];

	if (!((t >= 0x80 && t <= 0x8f) || t == 0xde || t == 0xdf))
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "params must be a msgpack map");
	proto_scan_reset(&s);
	if (proto_scan(&s, (const uint8_t *)params, len, len) !=
	    PROTO_SCAN_DONE || s.off != len)
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "params must be exactly one complete msgpack map");
	return 0;
}

/* Connect to the broker's socket (see credbroker.h). */
int
credbroker_connect(const char *path, struct credbroker **out,
    struct credbroker_error *err)
{
	struct sockaddr_un	 sa;
	struct credbroker	*c;
	const char		*env;
	int			 fd, flags, saved;

	cb_err_clear(err);
	if (out == NULL)
		return cb_fail(err, CREDBROKER_ERR_INVALID, "out is NULL");
	*out = NULL;
	if (path == NULL) {
		env = secure_getenv(CREDBROKER_SOCKET_ENV);
		path = (env != NULL && *env != '\0') ? env :
		    CREDBROKER_DEFAULT_SOCKET;
	}
	if (*path == '\0')
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "empty socket path");
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path))
		return cb_fail(err, CREDBROKER_ERR_CONNECT,
		    "socket path is too long (%zu bytes, at most %zu)",
		    strlen(path), sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path));

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return cb_fail(err, CREDBROKER_ERR_CONNECT, "socket: %s",
		    strerror(errno));
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		if (errno == EINTR)
			continue;
		saved = errno;
		close(fd);
		return cb_fail(err, CREDBROKER_ERR_CONNECT, "%s: %s", path,
		    strerror(saved));
	}
	/* Non-blocking from now on: every wait goes through poll(). */
	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1) {
		saved = errno;
		close(fd);
		return cb_fail(err, CREDBROKER_ERR_CONNECT, "fcntl: %s",
		    strerror(saved));
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		close(fd);
		return cb_fail(err, CREDBROKER_ERR_NOMEM, "out of memory");
	}
	c->fd = fd;
	c->next_msgid = 1;
	c->timeout_ms = -1;
	c->max_response = CREDBROKER_DEFAULT_MAX_RESPONSE;
	proto_scan_reset(&c->scan);
	*out = c;
	return 0;
}

/* Set the per-call time limit in ms; < 0 means none. */
void
credbroker_set_timeout(struct credbroker *c, int timeout_ms)
{
	if (c != NULL)
		c->timeout_ms = timeout_ms < 0 ? -1 : timeout_ms;
}

/* Set the response size cap; 0 restores the default. */
void
credbroker_set_max_response(struct credbroker *c, size_t max)
{
	if (c != NULL)
		c->max_response = max == 0 ? CREDBROKER_DEFAULT_MAX_RESPONSE :
		    max;
}

/*
 * Send the request in req (wiping it on every path) and read its answer.
 * Errors go to e, which is never NULL here.
 */
static int
cb_exchange(struct credbroker *c, struct secbuf *req, uint32_t msgid,
    struct credbroker_reply **out, struct credbroker_error *e)
{
	struct credbroker_error	 e2;
	struct timespec		 deadline, *dl = NULL;
	int			 rc;

	if (c->timeout_ms >= 0) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += c->timeout_ms / 1000;
		deadline.tv_nsec += (long)(c->timeout_ms % 1000) * 1000000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
		dl = &deadline;
	}
	rc = cb_send_all(c, req->data, req->len, dl, e);
	secbuf_free(req);
	if (rc != 0) {
		c->broken = true;
		/*
		 * The broker may have refused the request (too_large) and
		 * closed before reading all of it; its answer can still be
		 * in our receive queue, and is a better report than EPIPE.
		 */
		if (strcmp(e->code, CREDBROKER_ERR_IO) == 0 &&
		    (rc = cb_read_reply(c, msgid, dl, out, &e2)) !=
		    CREDBROKER_ELOCAL) {
			*e = e2;
			return rc;
		}
		return CREDBROKER_ELOCAL;
	}
	rc = cb_read_reply(c, msgid, dl, out, e);
	if (rc == CREDBROKER_ELOCAL)
		c->broken = true;
	return rc;
}

/* Make one call and wait for its answer (see credbroker.h). */
int
credbroker_call(struct credbroker *c, const char *method, const char *params,
    size_t params_len, struct credbroker_reply **out,
    struct credbroker_error *err)
{
	struct credbroker_error	 e;
	struct secbuf		 req = SECBUF_INIT;
	msgpack_packer		 pk;
	size_t			 mlen;
	uint32_t		 msgid;
	int			 rc;
	static const char	 empty_map = (char)0x80;

	cb_err_clear(&e);
	if (out != NULL)
		*out = NULL;
	if (c == NULL || out == NULL) {
		rc = cb_fail(&e, CREDBROKER_ERR_INVALID,
		    "connection or reply pointer is NULL");
		goto done;
	}
	if (method == NULL || *method == '\0') {
		rc = cb_fail(&e, CREDBROKER_ERR_INVALID,
		    "method name is empty");
		goto done;
	}
	if (c->broken) {
		rc = cb_fail(&e, CREDBROKER_ERR_IO,
		    "connection unusable after an earlier failure");
		goto done;
	}
	if (params == NULL || params_len == 0) {
		params = &empty_map;
		params_len = 1;
	} else if ((rc = cb_check_params(params, params_len, &e)) != 0)
		goto done;

	/*
	 * Reserve the whole request up front: the head is at most 12 bytes
	 * plus the method name, so the packer's appends cannot fail halfway
	 * and the params are copied exactly once, into wiping memory.
	 */
	mlen = strlen(method);
	if (mlen > SIZE_MAX / 2 || params_len > SIZE_MAX / 2 - mlen - 32 ||
	    secbuf_reserve(&req, 32 + mlen + params_len) != 0) {
		rc = cb_fail(&e, CREDBROKER_ERR_NOMEM, "out of memory");
		goto done;
	}
	msgid = c->next_msgid++;
	if (c->next_msgid == 0)
		c->next_msgid = 1;	/* 0 is the broker's "unknown" */
	msgpack_packer_init(&pk, &req, secbuf_msgpack_write);
	proto_pack_request_head(&pk, msgid, method);
	if (secbuf_failed(&req) ||
	    secbuf_append(&req, params, params_len) != 0) {
		rc = cb_fail(&e, CREDBROKER_ERR_NOMEM, "out of memory");
		goto done;
	}
	rc = cb_exchange(c, &req, msgid, out, &e);
done:
	secbuf_free(&req);
	if (err != NULL)
		*err = e;
	return rc;
}

/* The result object of a reply. */
const msgpack_object *
credbroker_reply_result(const struct credbroker_reply *r)
{
	return r == NULL ? NULL : r->result;
}

/* Wipe and free a reply. */
void
credbroker_reply_free(struct credbroker_reply *r)
{
	if (r != NULL)
		cb_reply_destroy(r);
}

/* Close the connection, wiping buffered bytes. */
void
credbroker_close(struct credbroker *c)
{
	if (c == NULL)
		return;
	if (c->fd != -1)
		close(c->fd);
	secbuf_free(&c->in);
	free(c);
}

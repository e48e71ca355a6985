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
 * The second half of the file is the runner's API, credbroker_substitute():
 * C structures in, one wiping allocation out (see the comment above
 * struct cb_subst).
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
static int __attribute__((format(printf, 3, 4)))
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
static void
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

/*
 * Substitution (credbroker_substitute() and its dry run).
 *
 * The component and request template are packed into a wiping buffer
 * (templates may embed user data), sent with credbroker_call(), and the
 * result is checked in full before anything is copied: a malformed
 * answer is refused as "protocol" without leaving a half-filled result.
 * The copy is one malloc'd block laid out as
 *
 *	struct cb_subst   (the public structure, then the block's size)
 *	headers[]         struct credbroker_header
 *	used[]            struct credbroker_used
 *	strings           every string, each NUL-terminated
 *
 * so that credbroker_substituted_free() can wipe all of it with one
 * OPENSSL_cleanse and a runner has a single thing to release.  The reply
 * the strings were copied from is wiped by credbroker_reply_free() before
 * the call returns.
 */

/* The allocation behind a struct credbroker_substituted. */
struct cb_subst {
	struct credbroker_substituted	pub;	/* first: the caller's */
	size_t				size;	/* bytes to wipe */
};

/* A packer into a wiping buffer (which remembers a failed append). */
struct cb_pack {
	struct secbuf	buf;
	msgpack_packer	pk;
};

/* The pieces of a checked substitution result (pointers into a reply). */
struct cb_subst_view {
	bool			 skipped;
	bool			 dry_run;
	const msgpack_object	*reason;
	const msgpack_object	*method;
	const msgpack_object	*url;
	const msgpack_object	*headers;	/* array or NULL */
	const msgpack_object	*body;		/* str, bin or NULL */
	const msgpack_object	*subject;
	const msgpack_object	*used;		/* array or NULL */
};


/* Pack n bytes at s as a msgpack str. */
static void
cb_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
	msgpack_pack_str(pk, n);
	msgpack_pack_str_body(pk, s, n);
}

/* Pack a C string as a msgpack str. */
static void
cb_pack_cstr(msgpack_packer *pk, const char *s)
{
	cb_pack_strn(pk, s, strlen(s));
}

/* Is the buffer valid UTF-8 (no overlongs, surrogates or > U+10FFFF)? */
static bool
cb_utf8_valid(const uint8_t *p, size_t n)
{
	size_t		i = 0, len, k;
	uint32_t	cp, min;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if (p[i] >= 0xc2 && p[i] <= 0xdf) {
			len = 2; cp = p[i] & 0x1f; min = 0x80;
		} else if (p[i] >= 0xe0 && p[i] <= 0xef) {
			len = 3; cp = p[i] & 0x0f; min = 0x800;
		} else if (p[i] >= 0xf0 && p[i] <= 0xf4) {
			len = 4; cp = p[i] & 0x07; min = 0x10000;
		} else
			return false;
		if (n - i < len)
			return false;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* Check one list of credential declarations. */
static int
cb_check_decls(const struct credbroker_cred_decl *d, size_t n,
    const char *what, struct credbroker_error *err)
{
	size_t	i;

	if (n > UINT32_MAX || (n > 0 && d == NULL))
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "%s: NULL array or too many entries", what);
	for (i = 0; i < n; i++)
		if (d[i].id == NULL || d[i].type == NULL)
			return cb_fail(err, CREDBROKER_ERR_INVALID,
			    "%s[%zu]: id and type are required", what, i);
	return 0;
}

/* Check the caller's component and request before packing anything. */
static int
cb_check_subst_args(const struct credbroker_component *comp,
    const struct credbroker_request *req, struct credbroker_error *err)
{
	size_t	i, vlen;
	int	rc;

	if (comp == NULL || req == NULL)
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "component or request is NULL");
	if (comp->kind == NULL)
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "component.kind is required");
	if ((rc = cb_check_decls(comp->credentials, comp->ncredentials,
	    "component.credentials", err)) != 0 ||
	    (rc = cb_check_decls(comp->service_credentials,
	    comp->nservice_credentials, "component.service_credentials",
	    err)) != 0)
		return rc;
	if (req->method == NULL || req->url == NULL)
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "request.method and request.url are required");
	if (req->nheaders > UINT32_MAX || (req->nheaders > 0 &&
	    req->headers == NULL))
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "request.headers: NULL array or too many entries");
	for (i = 0; i < req->nheaders; i++) {
		if (req->headers[i].name == NULL ||
		    req->headers[i].value == NULL)
			return cb_fail(err, CREDBROKER_ERR_INVALID,
			    "request.headers[%zu]: name and value are "
			    "required", i);
		vlen = req->headers[i].value_len;
		if (vlen == 0)
			vlen = strlen(req->headers[i].value);
		if (vlen > UINT32_MAX || strlen(req->headers[i].name) >
		    UINT32_MAX)
			return cb_fail(err, CREDBROKER_ERR_INVALID,
			    "request.headers[%zu] is too long", i);
	}
	if (req->has_body && (req->body_len > UINT32_MAX ||
	    (req->body_len > 0 && req->body == NULL)))
		return cb_fail(err, CREDBROKER_ERR_INVALID,
		    "request.body: NULL or too long");
	return 0;
}

/* Pack [{id, type}, ...]. */
static void
cb_pack_decls(msgpack_packer *pk, const struct credbroker_cred_decl *d,
    size_t n)
{
	size_t	i;

	msgpack_pack_array(pk, (uint32_t)n);
	for (i = 0; i < n; i++) {
		msgpack_pack_map(pk, 2);
		cb_pack_cstr(pk, "id");
		cb_pack_cstr(pk, d[i].id);
		cb_pack_cstr(pk, "type");
		cb_pack_cstr(pk, d[i].type);
	}
}

/*
 * Pack the params of "substitute":
 *	{component: {kind, initiator?, run_as?, system_account?,
 *	    credentials, external_service?: {credentials}},
 *	 request: {method, url, headers: [[name, value], ...], body?},
 *	 dry_run?: true}
 */
static void
cb_pack_subst(msgpack_packer *pk, const struct credbroker_component *comp,
    const struct credbroker_request *req, bool dry_run)
{
	const uint8_t	*body = req->body;
	size_t		 i, vlen;
	uint32_t	 n;

	msgpack_pack_map(pk, dry_run ? 3 : 2);

	cb_pack_cstr(pk, "component");
	n = 2 + (comp->initiator != NULL) + (comp->run_as != NULL) +
	    (comp->system_account != NULL) + (comp->nservice_credentials > 0);
	msgpack_pack_map(pk, n);
	cb_pack_cstr(pk, "kind");
	cb_pack_cstr(pk, comp->kind);
	if (comp->initiator != NULL) {
		cb_pack_cstr(pk, "initiator");
		cb_pack_cstr(pk, comp->initiator);
	}
	if (comp->run_as != NULL) {
		cb_pack_cstr(pk, "run_as");
		cb_pack_cstr(pk, comp->run_as);
	}
	if (comp->system_account != NULL) {
		cb_pack_cstr(pk, "system_account");
		cb_pack_cstr(pk, comp->system_account);
	}
	cb_pack_cstr(pk, "credentials");
	cb_pack_decls(pk, comp->credentials, comp->ncredentials);
	if (comp->nservice_credentials > 0) {
		cb_pack_cstr(pk, "external_service");
		msgpack_pack_map(pk, 1);
		cb_pack_cstr(pk, "credentials");
		cb_pack_decls(pk, comp->service_credentials,
		    comp->nservice_credentials);
	}

	cb_pack_cstr(pk, "request");
	msgpack_pack_map(pk, req->has_body ? 4 : 3);
	cb_pack_cstr(pk, "method");
	cb_pack_cstr(pk, req->method);
	cb_pack_cstr(pk, "url");
	cb_pack_cstr(pk, req->url);
	cb_pack_cstr(pk, "headers");
	msgpack_pack_array(pk, (uint32_t)req->nheaders);
	for (i = 0; i < req->nheaders; i++) {
		vlen = req->headers[i].value_len;
		if (vlen == 0)
			vlen = strlen(req->headers[i].value);
		msgpack_pack_array(pk, 2);
		cb_pack_cstr(pk, req->headers[i].name);
		cb_pack_strn(pk, req->headers[i].value, vlen);
	}
	if (req->has_body) {
		cb_pack_cstr(pk, "body");
		if (req->body_len == 0)
			cb_pack_strn(pk, "", 0);
		else if (cb_utf8_valid(body, req->body_len))
			cb_pack_strn(pk, req->body, req->body_len);
		else {
			msgpack_pack_bin(pk, req->body_len);
			msgpack_pack_bin_body(pk, req->body, req->body_len);
		}
	}

	if (dry_run) {
		cb_pack_cstr(pk, "dry_run");
		msgpack_pack_true(pk);
	}
}

/* Is o a str (with no NUL byte unless nul_ok)? */
static bool
cb_is_str(const msgpack_object *o, bool nul_ok)
{
	return o != NULL && o->type == MSGPACK_OBJECT_STR && (nul_ok ||
	    memchr(o->via.str.ptr, '\0', o->via.str.size) == NULL);
}

/* Is o absent or nil? */
static bool
cb_is_none(const msgpack_object *o)
{
	return o == NULL || o->type == MSGPACK_OBJECT_NIL;
}

/*
 * Check that res has the shape of a substitution result (keys the broker
 * may add later are ignored) and fill v with pointers into it.  No string
 * but the body may contain a NUL byte, so that every other string can be
 * used as a C string without being cut short.
 */
static int
cb_subst_check(const msgpack_object *res, struct cb_subst_view *v,
    struct credbroker_error *err)
{
	const msgpack_object	*o, *req, *h, *u;
	uint32_t		 i;

	memset(v, 0, sizeof(*v));
	if (res == NULL || res->type != MSGPACK_OBJECT_MAP)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the substitution result is not a map");
	o = proto_map_get(res, "skipped");
	if (o != NULL && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean) {
		v->skipped = true;
		v->reason = proto_map_get(res, "reason");
		if (!cb_is_none(v->reason) && !cb_is_str(v->reason, false))
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "the reason of a skipped substitution is not a "
			    "string");
		if (cb_is_none(v->reason))
			v->reason = NULL;
		return 0;
	}
	if (o != NULL && o->type != MSGPACK_OBJECT_BOOLEAN &&
	    o->type != MSGPACK_OBJECT_NIL)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "'skipped' in the substitution result is not a boolean");

	o = proto_map_get(res, "dry_run");
	if (!cb_is_none(o) && o->type != MSGPACK_OBJECT_BOOLEAN)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "'dry_run' in the substitution result is not a boolean");
	v->dry_run = o != NULL && o->type == MSGPACK_OBJECT_BOOLEAN &&
	    o->via.boolean;

	req = proto_map_get(res, "request");
	if (req == NULL || req->type != MSGPACK_OBJECT_MAP)
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the substitution result has no request map");
	v->method = proto_map_get(req, "method");
	v->url = proto_map_get(req, "url");
	if (!cb_is_str(v->method, false) || v->method->via.str.size == 0 ||
	    !cb_is_str(v->url, false))
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the substituted request has no method or url string");
	h = proto_map_get(req, "headers");
	if (!cb_is_none(h)) {
		if (h->type != MSGPACK_OBJECT_ARRAY)
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "the substituted headers are not an array");
		for (i = 0; i < h->via.array.size; i++) {
			o = &h->via.array.ptr[i];
			if (o->type != MSGPACK_OBJECT_ARRAY ||
			    o->via.array.size != 2 ||
			    !cb_is_str(&o->via.array.ptr[0], false) ||
			    !cb_is_str(&o->via.array.ptr[1], false))
				return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
				    "substituted header %u is not a pair of "
				    "strings without NUL bytes", (unsigned)i);
		}
		v->headers = h;
	}
	o = proto_map_get(req, "body");
	if (!cb_is_none(o)) {
		if (o->type != MSGPACK_OBJECT_STR &&
		    o->type != MSGPACK_OBJECT_BIN)
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "the substituted body is not a string or binary");
		v->body = o;
	}

	v->subject = proto_map_get(res, "subject");
	if (!cb_is_str(v->subject, false))
		return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
		    "the substitution result has no subject string");
	u = proto_map_get(res, "used");
	if (!cb_is_none(u)) {
		if (u->type != MSGPACK_OBJECT_ARRAY)
			return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
			    "'used' in the substitution result is not an "
			    "array");
		for (i = 0; i < u->via.array.size; i++) {
			o = &u->via.array.ptr[i];
			if (o->type != MSGPACK_OBJECT_MAP ||
			    !cb_is_str(proto_map_get(o, "id"), false) ||
			    !cb_is_str(proto_map_get(o, "type"), false) ||
			    (!cb_is_none(proto_map_get(o, "filled")) &&
			    proto_map_get(o, "filled")->type !=
			    MSGPACK_OBJECT_BOOLEAN))
				return cb_fail(err, CREDBROKER_ERR_PROTOCOL,
				    "'used' entry %u is not {id, type, "
				    "filled?}", (unsigned)i);
		}
		v->used = u;
	}
	return 0;
}

/* Round n up to a multiple of the strictest alignment. */
static size_t
cb_align(size_t n)
{
	const size_t	a = _Alignof(max_align_t);

	return (n + a - 1) / a * a;
}

/* Bytes of a str or bin object (0 for NULL). */
static size_t
cb_obj_len(const msgpack_object *o)
{
	if (o == NULL)
		return 0;
	return o->type == MSGPACK_OBJECT_BIN ? o->via.bin.size :
	    o->via.str.size;
}

/* Copy the str/bin o to *cur, NUL-terminate it, advance; returns start. */
static char *
cb_put(char **cur, const msgpack_object *o)
{
	char	*start = *cur;
	size_t	 n = cb_obj_len(o);

	if (n > 0)
		memcpy(start, o->type == MSGPACK_OBJECT_BIN ? o->via.bin.ptr :
		    o->via.str.ptr, n);
	start[n] = '\0';
	*cur += n + 1;
	return start;
}

/* Copy a checked result into one new block; 0 or "nomem". */
static int
cb_subst_copy(const struct cb_subst_view *v, struct cb_subst **out,
    struct credbroker_error *err)
{
	struct credbroker_substituted	*s;
	struct credbroker_header	*hs;
	struct credbroker_used		*us;
	struct cb_subst			*a;
	const msgpack_object		*pair, *e, *filled;
	size_t				 nh, nu, i, strbytes = 0;
	size_t				 off_h, off_u, off_s, total;
	char				*cur;

	nh = v->headers != NULL ? v->headers->via.array.size : 0;
	nu = v->used != NULL ? v->used->via.array.size : 0;
	/*
	 * Every length below comes from a reply already held in memory, so
	 * the sums cannot overflow a size_t on any platform whose address
	 * space holds that reply.
	 */
	if (v->skipped)
		strbytes = cb_obj_len(v->reason) + 1;
	else {
		strbytes = cb_obj_len(v->method) + 1 + cb_obj_len(v->url) + 1 +
		    cb_obj_len(v->body) + 1 + cb_obj_len(v->subject) + 1;
		for (i = 0; i < nh; i++) {
			pair = &v->headers->via.array.ptr[i];
			strbytes += cb_obj_len(&pair->via.array.ptr[0]) + 1 +
			    cb_obj_len(&pair->via.array.ptr[1]) + 1;
		}
		for (i = 0; i < nu; i++) {
			e = &v->used->via.array.ptr[i];
			strbytes += cb_obj_len(proto_map_get(e, "id")) + 1 +
			    cb_obj_len(proto_map_get(e, "type")) + 1;
		}
	}
	off_h = cb_align(sizeof(*a));
	off_u = cb_align(off_h + nh * sizeof(*hs));
	off_s = cb_align(off_u + nu * sizeof(*us));
	total = off_s + strbytes;
	if ((a = calloc(1, total)) == NULL)
		return cb_fail(err, CREDBROKER_ERR_NOMEM, "out of memory");
	a->size = total;
	s = &a->pub;
	hs = (struct credbroker_header *)((char *)a + off_h);
	us = (struct credbroker_used *)((char *)a + off_u);
	cur = (char *)a + off_s;

	if (v->skipped) {
		s->skipped = 1;
		s->reason = cb_put(&cur, v->reason);
		*out = a;
		return 0;
	}
	s->dry_run = v->dry_run;
	s->method = cb_put(&cur, v->method);
	s->url_len = cb_obj_len(v->url);
	s->url = cb_put(&cur, v->url);
	for (i = 0; i < nh; i++) {
		pair = &v->headers->via.array.ptr[i];
		hs[i].name = cb_put(&cur, &pair->via.array.ptr[0]);
		hs[i].value_len = cb_obj_len(&pair->via.array.ptr[1]);
		hs[i].value = cb_put(&cur, &pair->via.array.ptr[1]);
	}
	s->headers = nh > 0 ? hs : NULL;
	s->nheaders = nh;
	if (v->body != NULL) {
		s->has_body = 1;
		s->body_len = cb_obj_len(v->body);
		s->body = cb_put(&cur, v->body);
	} else
		cur++;			/* the unused NUL counted above */
	s->subject = cb_put(&cur, v->subject);
	for (i = 0; i < nu; i++) {
		e = &v->used->via.array.ptr[i];
		us[i].id = cb_put(&cur, proto_map_get(e, "id"));
		us[i].type = cb_put(&cur, proto_map_get(e, "type"));
		filled = proto_map_get(e, "filled");
		us[i].filled = filled != NULL &&
		    filled->type == MSGPACK_OBJECT_BOOLEAN &&
		    filled->via.boolean;
	}
	s->used = nu > 0 ? us : NULL;
	s->nused = nu;
	*out = a;
	return 0;
}

/* Pack, call "substitute", check and copy the result. */
static int
cb_substitute(struct credbroker *c, const struct credbroker_component *comp,
    const struct credbroker_request *req, bool dry_run,
    struct credbroker_substituted **out, struct credbroker_error *err)
{
	struct credbroker_error	 e;
	struct credbroker_reply	*reply = NULL;
	struct cb_subst_view	 v;
	struct cb_subst		*a = NULL;
	struct cb_pack		 p;
	int			 rc;

	cb_err_clear(&e);
	memset(&p, 0, sizeof(p));
	if (out != NULL)
		*out = NULL;
	if (c == NULL || out == NULL) {
		rc = cb_fail(&e, CREDBROKER_ERR_INVALID,
		    "connection or result pointer is NULL");
		goto done;
	}
	if ((rc = cb_check_subst_args(comp, req, &e)) != 0)
		goto done;
	msgpack_packer_init(&p.pk, &p.buf, secbuf_msgpack_write);
	cb_pack_subst(&p.pk, comp, req, dry_run);
	if (secbuf_failed(&p.buf)) {
		rc = cb_fail(&e, CREDBROKER_ERR_NOMEM, "out of memory");
		goto done;
	}
	if ((rc = credbroker_call(c, "substitute", (const char *)p.buf.data,
	    p.buf.len, &reply, &e)) != 0)
		goto done;
	if ((rc = cb_subst_check(credbroker_reply_result(reply), &v,
	    &e)) != 0)
		goto done;
	/* A dry-run caller must never be handed a real value. */
	if (dry_run && !v.skipped && !v.dry_run) {
		rc = cb_fail(&e, CREDBROKER_ERR_PROTOCOL, "the broker did not "
		    "mark the answer to a dry run as one; it was discarded");
		goto done;
	}
	if ((rc = cb_subst_copy(&v, &a, &e)) != 0)
		goto done;
	*out = &a->pub;
done:
	secbuf_free(&p.buf);
	credbroker_reply_free(reply);
	if (err != NULL)
		*err = e;
	return rc;
}

/* Substitute a request's placeholders (see credbroker.h). */
int
credbroker_substitute(struct credbroker *c,
    const struct credbroker_component *comp,
    const struct credbroker_request *req,
    struct credbroker_substituted **out, struct credbroker_error *err)
{
	return cb_substitute(c, comp, req, false, out, err);
}

/* Substitute with every value masked (see credbroker.h). */
int
credbroker_substitute_dry_run(struct credbroker *c,
    const struct credbroker_component *comp,
    const struct credbroker_request *req,
    struct credbroker_substituted **out, struct credbroker_error *err)
{
	return cb_substitute(c, comp, req, true, out, err);
}

/* Wipe and free a substitution result. */
void
credbroker_substituted_free(struct credbroker_substituted *s)
{
	struct cb_subst	*a = (struct cb_subst *)s;

	if (a == NULL)
		return;
	cb_wipe(a, a->size);
	free(a);
}

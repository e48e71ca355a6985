/*
 * Unit tests of libcredbroker against a fake broker: a thread listening
 * on a UNIX socket in a temporary directory runs a per-test script that
 * reads requests and writes canned (or deliberately broken) msgpack-rpc
 * responses.  The thread only records what it saw; all assertions run in
 * the test's own thread after the script has finished.
 *
 * Covered: request framing and msgids, empty params, skipping stale
 * responses and notifications, error decoding (and truncation), errors
 * for msgid 0 (the broker's answer to an unreadable request), malformed
 * errors, truncated, garbage and oversized responses, responses split at
 * every byte, every msgpack header form, large responses, params checks,
 * connect errors and $CREDBROKER_SOCKET, timeouts, the broker refusing a
 * request mid-write, and replies outliving their connection.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>

#include "credbroker.h"

struct fake;
typedef void	(*fake_script)(struct fake *, int);

/* One fake broker: a listening socket and the thread serving it. */
struct fake {
	char		 dir[64];
	char		 path[128];
	int		 lfd;
	pthread_t	 thread;
	fake_script	 script;
	void		*arg;		/* per-test data for the script */

	/* Bytes received but not yet taken as a request. */
	char		*in;
	size_t		 inlen;

	/* What the script saw, checked by the test afterwards. */
	int		 nreq;
	uint32_t	 msgids[8];
	char		*raw[8];	/* raw request bytes */
	size_t		 rawlen[8];
	bool		 got_eof;	/* the client closed or sent nothing */
};

/* Write all bytes, chunk bytes at a time with a pause between chunks. */
static void
fake_write(int fd, const void *p, size_t n, size_t chunk, useconds_t pause)
{
	const char	*c = p;
	ssize_t		 w;
	size_t		 k;

	while (n > 0) {
		k = chunk != 0 && chunk < n ? chunk : n;
		if ((w = send(fd, c, k, MSG_NOSIGNAL)) <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			return;
		}
		c += w;
		n -= (size_t)w;
		if (pause != 0 && n > 0)
			usleep(pause);
	}
}

/*
 * Read the next complete request; records its msgid and raw bytes.
 * Returns its index, or -1 at EOF before a complete request.
 */
static int
fake_read_request(struct fake *f, int fd)
{
	msgpack_unpacked	 u;
	char			 buf[65536];
	size_t			 off;
	ssize_t			 n;
	int			 i;

	for (;;) {
		off = 0;
		msgpack_unpacked_init(&u);
		if (f->inlen > 0 && msgpack_unpack_next(&u, f->in, f->inlen,
		    &off) == MSGPACK_UNPACK_SUCCESS) {
			i = f->nreq++;
			f->msgids[i] =
			    (uint32_t)u.data.via.array.ptr[1].via.u64;
			f->raw[i] = malloc(off);
			memcpy(f->raw[i], f->in, off);
			f->rawlen[i] = off;
			memmove(f->in, f->in + off, f->inlen - off);
			f->inlen -= off;
			msgpack_unpacked_destroy(&u);
			return i;
		}
		msgpack_unpacked_destroy(&u);
		if ((n = recv(fd, buf, sizeof(buf), 0)) <= 0) {
			f->got_eof = true;
			return -1;
		}
		f->in = realloc(f->in, f->inlen + (size_t)n);
		memcpy(f->in + f->inlen, buf, (size_t)n);
		f->inlen += (size_t)n;
	}
}

/* Wait until the client closes the connection, discarding its bytes. */
static void
fake_drain(struct fake *f, int fd)
{
	char	buf[65536];

	while (recv(fd, buf, sizeof(buf), 0) > 0)
		;
	f->got_eof = true;
}

/* The server thread: accept one connection and run the script. */
static void *
fake_main(void *arg)
{
	struct fake	*f = arg;
	int		 fd;

	if ((fd = accept(f->lfd, NULL, NULL)) == -1)
		return NULL;
	f->script(f, fd);
	close(fd);
	return NULL;
}

/* Start a fake broker running script. */
static struct fake *
fake_start(fake_script script, void *arg)
{
	struct fake		*f;
	struct sockaddr_un	 sa;

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	strcpy(f->dir, "/tmp/cbtest.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/sock", f->dir);
	f->script = script;
	f->arg = arg;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	strcpy(sa.sun_path, f->path);
	f->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
	return f;
}

/* Wait for the script to finish; the caller then checks what it saw. */
static void
fake_join(struct fake *f)
{
	pthread_join(f->thread, NULL);
}

/* Remove the socket and free everything. */
static void
fake_free(struct fake *f)
{
	int	i;

	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
	for (i = 0; i < f->nreq; i++)
		free(f->raw[i]);
	free(f->in);
	free(f);
}

/* Connect to the fake broker. */
static struct credbroker *
fake_connect(struct fake *f)
{
	struct credbroker	*c;
	struct credbroker_error	 err;

	assert_int_equal(credbroker_connect(f->path, &c, &err), 0);
	assert_non_null(c);
	assert_string_equal(err.code, "");
	return c;
}

/* Pack the head of a response [1, msgid, error, ...]. */
static void
pack_response_head(msgpack_packer *pk, uint32_t msgid, const char *code,
    const char *message)
{
	msgpack_pack_array(pk, 4);
	msgpack_pack_uint8(pk, 1);
	msgpack_pack_uint32(pk, msgid);
	if (code == NULL) {
		msgpack_pack_nil(pk);
		return;
	}
	msgpack_pack_map(pk, 2);
	msgpack_pack_str_with_body(pk, "code", 4);
	msgpack_pack_str_with_body(pk, code, strlen(code));
	msgpack_pack_str_with_body(pk, "message", 7);
	msgpack_pack_str_with_body(pk, message, strlen(message));
}

/* Send [1, msgid, nil, {"ok": "yes", "n": n}]. */
static void
send_ok(int fd, uint32_t msgid, int n)
{
	msgpack_sbuffer	sb;
	msgpack_packer	pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_response_head(&pk, msgid, NULL, NULL);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_str_with_body(&pk, "ok", 2);
	msgpack_pack_str_with_body(&pk, "yes", 3);
	msgpack_pack_str_with_body(&pk, "n", 1);
	msgpack_pack_int(&pk, n);
	fake_write(fd, sb.data, sb.size, 0, 0);
	msgpack_sbuffer_destroy(&sb);
}

/* Send an error response. */
static void
send_error(int fd, uint32_t msgid, const char *code, const char *message)
{
	msgpack_sbuffer	sb;
	msgpack_packer	pk;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_response_head(&pk, msgid, code, message);
	msgpack_pack_nil(&pk);
	fake_write(fd, sb.data, sb.size, 0, 0);
	msgpack_sbuffer_destroy(&sb);
}

/* Check that result is {"ok": "yes", "n": n}. */
static void
check_ok(const struct credbroker_reply *r, int n)
{
	const msgpack_object	*o = credbroker_reply_result(r);

	assert_non_null(o);
	assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(o->via.map.size, 2);
	assert_int_equal(o->via.map.ptr[0].val.type, MSGPACK_OBJECT_STR);
	assert_memory_equal(o->via.map.ptr[0].val.via.str.ptr, "yes", 3);
	assert_int_equal(o->via.map.ptr[1].val.via.i64, n);
}

/*
 * Decode a recorded request and check its envelope: [0, msgid, method,
 * [params]].  Returns the params map, valid while u lives.
 */
static const msgpack_object *
check_request(struct fake *f, int i, msgpack_unpacked *u, const char *method)
{
	const msgpack_object	*a;
	size_t			 off = 0;

	assert_true(i < f->nreq);
	msgpack_unpacked_init(u);
	assert_int_equal(msgpack_unpack_next(u, f->raw[i], f->rawlen[i], &off),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, f->rawlen[i]);
	assert_int_equal(u->data.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(u->data.via.array.size, 4);
	a = u->data.via.array.ptr;
	assert_int_equal(a[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(a[0].via.u64, 0);
	assert_int_equal(a[1].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(a[1].via.u64, f->msgids[i]);
	assert_int_equal(a[2].type, MSGPACK_OBJECT_STR);
	assert_int_equal(a[2].via.str.size, strlen(method));
	assert_memory_equal(a[2].via.str.ptr, method, strlen(method));
	assert_int_equal(a[3].type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(a[3].via.array.size, 1);
	assert_int_equal(a[3].via.array.ptr[0].type, MSGPACK_OBJECT_MAP);
	return &a[3].via.array.ptr[0];
}

/* Script: answer every request with send_ok(index). */
static void
script_echo(struct fake *f, int fd)
{
	int	i;

	while ((i = fake_read_request(f, fd)) >= 0)
		send_ok(fd, f->msgids[i], i);
}

/* A request is [0, msgid, method, [params]] with the params given. */
static void
test_call_framing(void **state)
{
	struct fake		*f = fake_start(script_echo, NULL);
	struct credbroker	*c = fake_connect(f);
	struct credbroker_reply	*r;
	struct credbroker_error	 err;
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 u;
	const msgpack_object	*p;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "type", 4);
	msgpack_pack_str_with_body(&pk, "github", 6);
	assert_int_equal(credbroker_call(c, "type.get", sb.data, sb.size, &r,
	    &err), 0);
	assert_string_equal(err.code, "");
	check_ok(r, 0);
	credbroker_reply_free(r);
	msgpack_sbuffer_destroy(&sb);
	credbroker_close(c);
	fake_join(f);

	assert_int_equal(f->nreq, 1);
	p = check_request(f, 0, &u, "type.get");
	assert_int_equal(p->via.map.size, 1);
	assert_memory_equal(p->via.map.ptr[0].key.via.str.ptr, "type", 4);
	assert_memory_equal(p->via.map.ptr[0].val.via.str.ptr, "github", 6);
	msgpack_unpacked_destroy(&u);
	fake_free(f);
}

/* NULL params send an empty map; each call gets a new msgid. */
static void
test_call_empty_params(void **state)
{
	struct fake		*f = fake_start(script_echo, NULL);
	struct credbroker	*c = fake_connect(f);
	struct credbroker_reply	*r;
	msgpack_unpacked	 u;
	int			 i;

	for (i = 0; i < 3; i++) {
		assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, NULL),
		    0);
		check_ok(r, i);
		credbroker_reply_free(r);
	}
	credbroker_close(c);
	fake_join(f);
	assert_int_equal(f->nreq, 3);
	for (i = 0; i < 3; i++) {
		assert_int_equal(check_request(f, i, &u, "hello")->via.map.size,
		    0);
		msgpack_unpacked_destroy(&u);
	}
	assert_true(f->msgids[0] != f->msgids[1]);
	assert_true(f->msgids[1] != f->msgids[2]);
	fake_free(f);
}

/* Script: a stale response and a notification before the real one. */
static void
script_stale(struct fake *f, int fd)
{
	static const char notification[] = {
		(char)0x93, 0x02, (char)0xa4, 'p', 'i', 'n', 'g', (char)0x90
	};
	int	i;

	if ((i = fake_read_request(f, fd)) < 0)
		return;
	send_ok(fd, f->msgids[i] + 100, 99);
	send_error(fd, f->msgids[i] + 1, "internal", "not yours");
	fake_write(fd, notification, sizeof(notification), 0, 0);
	send_ok(fd, f->msgids[i], 7);
	fake_drain(f, fd);
}

/* Responses with another msgid and notifications are skipped. */
static void
test_msgid_matching(void **state)
{
	struct fake		*f = fake_start(script_stale, NULL);
	struct credbroker	*c = fake_connect(f);
	struct credbroker_reply	*r;
	struct credbroker_error	 err;

	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, &err), 0);
	check_ok(r, 7);
	credbroker_reply_free(r);
	credbroker_close(c);
	fake_join(f);
	fake_free(f);
}

/* Script: an error for the first request, success for the second. */
static void
script_error_then_ok(struct fake *f, int fd)
{
	int	i;

	if ((i = fake_read_request(f, fd)) < 0)
		return;
	send_error(fd, f->msgids[i], "not_found", "no credential type 'x'");
	if ((i = fake_read_request(f, fd)) < 0)
		return;
	send_ok(fd, f->msgids[i], 1);
	fake_drain(f, fd);
}

/* A broker error gives -1 with code and message; the connection lives. */
static void
test_broker_error(void **state)
{
	struct fake		*f = fake_start(script_error_then_ok, NULL);
	struct credbroker	*c = fake_connect(f);
	struct credbroker_reply	*r = (void *)1;
	struct credbroker_error	 err;

	assert_int_equal(credbroker_call(c, "type.get", NULL, 0, &r, &err),
	    CREDBROKER_EBROKER);
	assert_null(r);
	assert_string_equal(err.code, "not_found");
	assert_string_equal(err.message, "no credential type 'x'");
	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, &err), 0);
	assert_string_equal(err.code, "");
	check_ok(r, 1);
	credbroker_reply_free(r);
	credbroker_close(c);
	fake_join(f);
	fake_free(f);
}

/* Script: answer a request with an error for msgid 0, then hang up. */
static void
script_msgid0(struct fake *f, int fd)
{
	if (fake_read_request(f, fd) < 0)
		return;
	send_ok(fd, 0, 5);		/* msgid 0 without error: skipped */
	send_error(fd, 0, "bad_request", "malformed request");
	fake_drain(f, fd);
}

/*
 * An error with msgid 0 (the broker could not read our msgid) is this
 * call's error, and the connection is then refused as unusable.
 */
static void
test_msgid0_error(void **state)
{
	struct fake		*f = fake_start(script_msgid0, NULL);
	struct credbroker	*c = fake_connect(f);
	struct credbroker_reply	*r;
	struct credbroker_error	 err;

	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, &err),
	    CREDBROKER_EBROKER);
	assert_null(r);
	assert_string_equal(err.code, "bad_request");
	assert_string_equal(err.message, "malformed request");
	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, &err),
	    CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_IO);
	credbroker_close(c);
	fake_join(f);
	fake_free(f);
}

/* Script: an error whose code and message are too long for the struct. */
static void
script_long_error(struct fake *f, int fd)
{
	char	code[100], msg[2000];
	int	i;

	memset(code, 'c', sizeof(code) - 1);
	code[sizeof(code) - 1] = '\0';
	memset(msg, 'm', sizeof(msg) - 1);
	msg[sizeof(msg) - 1] = '\0';
	if ((i = fake_read_request(f, fd)) < 0)
		return;
	send_error(fd, f->msgids[i], code, msg);
	fake_drain(f, fd);
}

/* Long codes and messages are truncated and stay NUL-terminated. */
static void
test_broker_error_truncated(void **state)
{
	struct fake		*f = fake_start(script_long_error, NULL);
	struct credbroker	*c = fake_connect(f);
	struct credbroker_reply	*r;
	struct credbroker_error	 err;

	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, &err),
	    CREDBROKER_EBROKER);
	assert_int_equal(strlen(err.code), sizeof(err.code) - 1);
	assert_int_equal(strlen(err.message), sizeof(err.message) - 1);
	credbroker_close(c);
	fake_join(f);
	fake_free(f);
}

/* Per-test canned reply for script_canned. */
struct canned {
	const char	*bytes;		/* NULL: use sbuf */
	size_t		 len;
	msgpack_sbuffer	*sbuf;
	bool		 patch_msgid;	/* bytes[3..6] = msgid; [2] is 0xce */
	size_t		 chunk;		/* write this many bytes at a time */
	useconds_t	 pause;
	bool		 close_after;	/* close instead of draining */
};

/* Script: read one request and send the canned bytes. */
static void
script_canned(struct fake *f, int fd)
{
	struct canned	*cn = f->arg;
	char		*b;
	size_t		 len;
	int		 i;

	if ((i = fake_read_request(f, fd)) < 0)
		return;
	len = cn->bytes != NULL ? cn->len : cn->sbuf->size;
	b = malloc(len);
	memcpy(b, cn->bytes != NULL ? cn->bytes : cn->sbuf->data, len);
	if (cn->patch_msgid) {
		b[3] = (char)(f->msgids[i] >> 24);
		b[4] = (char)(f->msgids[i] >> 16);
		b[5] = (char)(f->msgids[i] >> 8);
		b[6] = (char)f->msgids[i];
	}
	fake_write(fd, b, len, cn->chunk, cn->pause);
	free(b);
	if (!cn->close_after)
		fake_drain(f, fd);
}

/* Run one call against canned bytes; returns the call's result code. */
static int
run_canned(struct canned *cn, size_t max, struct credbroker_error *err,
    struct credbroker_reply **rp)
{
	struct fake		*f = fake_start(script_canned, cn);
	struct credbroker	*c = fake_connect(f);
	struct credbroker_reply	*r;
	struct credbroker_error	 e2;
	int			 rc;

	if (max != 0)
		credbroker_set_max_response(c, max);
	rc = credbroker_call(c, "hello", NULL, 0, &r, err);
	if (rc == CREDBROKER_ELOCAL) {
		assert_null(r);
		/* After a local failure the connection refuses calls. */
		assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r,
		    &e2), CREDBROKER_ELOCAL);
		assert_string_equal(e2.code, CREDBROKER_ERR_IO);
	}
	credbroker_close(c);
	fake_join(f);
	fake_free(f);
	if (rp != NULL)
		*rp = r;
	else
		credbroker_reply_free(r);
	return rc;
}

/* An error slot that is not a map is a protocol error. */
static void
test_malformed_error(void **state)
{
	/* [1, msgid(u32), "oops", nil] */
	static const char bytes[] = {
		(char)0x94, 0x01, (char)0xce, 0, 0, 0, 0,
		(char)0xa4, 'o', 'o', 'p', 's', (char)0xc0
	};
	/* [1, msgid, {"message": "m"}, nil]: no code */
	static const char nocode[] = {
		(char)0x94, 0x01, (char)0xce, 0, 0, 0, 0, (char)0x81,
		(char)0xa7, 'm', 'e', 's', 's', 'a', 'g', 'e', (char)0xa1, 'm',
		(char)0xc0
	};
	struct canned		cn = { bytes, sizeof(bytes), NULL, true, 0, 0,
	    false };
	struct credbroker_error	err;

	assert_int_equal(run_canned(&cn, 0, &err, NULL), CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_PROTOCOL);
	cn.bytes = nocode;
	cn.len = sizeof(nocode);
	assert_int_equal(run_canned(&cn, 0, &err, NULL), CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_PROTOCOL);
}

/* Half a response followed by EOF is an I/O error. */
static void
test_truncated_response(void **state)
{
	msgpack_sbuffer		sb;
	msgpack_packer		pk;
	struct canned		cn = { NULL, 0, &sb, true, 0, 0, true };
	struct credbroker_error	err;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_response_head(&pk, 0x01020304, NULL, NULL);
	msgpack_pack_str_with_body(&pk, "a string cut short", 18);
	sb.size -= 5;
	assert_int_equal(run_canned(&cn, 0, &err, NULL), CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_IO);
	assert_non_null(strstr(err.message, "middle of a response"));
	msgpack_sbuffer_destroy(&sb);
}

/* Bytes that are not msgpack, or not a response, are protocol errors. */
static void
test_garbage_response(void **state)
{
	static const char never_used[] = { (char)0xc1, 0, 0, 0, 0, 0 };
	static const char a_map[] = { (char)0x80 };
	static const char a_request[] = {
		(char)0x94, 0x00, (char)0xce, 0, 0, 0, 0, (char)0xa1, 'x',
		(char)0x90
	};
	/* [1, msgid, nil] followed by a bad byte inside a nested array */
	static const char bad_inside[] = {
		(char)0x94, 0x01, (char)0xce, 0, 0, 0, 0, (char)0xc0,
		(char)0x92, 0x01, (char)0xc1
	};
	/* A response with an invalid msgid (a string). */
	static const char bad_msgid[] = {
		(char)0x94, 0x01, (char)0xa1, 'x', (char)0xc0, (char)0xc0
	};
	const struct { const char *b; size_t n; bool patch; } cases[] = {
		{ never_used, sizeof(never_used), false },
		{ a_map, sizeof(a_map), false },
		{ a_request, sizeof(a_request), true },
		{ bad_inside, sizeof(bad_inside), true },
		{ bad_msgid, sizeof(bad_msgid), false },
	};
	struct canned		cn = { NULL, 0, NULL, false, 0, 0, false };
	struct credbroker_error	err;
	size_t			i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		cn.bytes = cases[i].b;
		cn.len = cases[i].n;
		cn.patch_msgid = cases[i].patch;
		assert_int_equal(run_canned(&cn, 0, &err, NULL),
		    CREDBROKER_ELOCAL);
		assert_string_equal(err.code, CREDBROKER_ERR_PROTOCOL);
	}
}

/*
 * A response larger than the cap is refused from its header alone: the
 * fake sends the header and a little of the payload, then waits for the
 * client to hang up, which it must do without the rest.
 */
static void
test_response_too_large(void **state)
{
	/* [1, msgid, nil, bin32 of 1 MiB ...] */
	char			bytes[64] = {
		(char)0x94, 0x01, (char)0xce, 0, 0, 0, 0, (char)0xc0,
		(char)0xc6, 0x00, 0x10, 0x00, 0x00
	};
	/* [1, msgid, nil, array32 of 2^32-1 elements ...] */
	static const char many[] = {
		(char)0x94, 0x01, (char)0xce, 0, 0, 0, 0, (char)0xc0,
		(char)0xdd, (char)0xff, (char)0xff, (char)0xff, (char)0xff,
		0x01, 0x02
	};
	struct canned		cn = { bytes, sizeof(bytes), NULL, true, 0, 0,
	    false };
	struct credbroker_error	err;

	assert_int_equal(run_canned(&cn, 4096, &err, NULL), CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_PROTOCOL);
	assert_non_null(strstr(err.message, "larger than the limit"));

	/* The element count alone gives it away, even under the default. */
	cn.bytes = many;
	cn.len = sizeof(many);
	assert_int_equal(run_canned(&cn, 0, &err, NULL), CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_PROTOCOL);
}

/* A response of exactly the cap is accepted; one byte less cap is not. */
static void
test_response_at_limit(void **state)
{
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	struct canned		 cn = { NULL, 0, &sb, true, 0, 0, false };
	struct credbroker_reply	*r;
	struct credbroker_error	 err;
	char			 payload[1000];

	memset(payload, 'x', sizeof(payload));
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_response_head(&pk, 0x01020304, NULL, NULL);
	msgpack_pack_str_with_body(&pk, payload, sizeof(payload));
	assert_int_equal(run_canned(&cn, sb.size, &err, &r), 0);
	assert_int_equal(credbroker_reply_result(r)->via.str.size,
	    sizeof(payload));
	credbroker_reply_free(r);
	assert_int_equal(run_canned(&cn, sb.size - 1, &err, NULL),
	    CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_PROTOCOL);
	msgpack_sbuffer_destroy(&sb);
}

/* A 4 MiB response written in odd-sized chunks arrives intact. */
static void
test_large_response(void **state)
{
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	struct canned		 cn = { NULL, 0, &sb, true, 4093, 0, false };
	struct credbroker_reply	*r;
	struct credbroker_error	 err;
	const msgpack_object	*o;
	size_t			 n = 4 * 1024 * 1024, i;
	char			*blob;

	blob = malloc(n);
	for (i = 0; i < n; i++)
		blob[i] = (char)(i * 7);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_response_head(&pk, 0x01020304, NULL, NULL);
	msgpack_pack_array(&pk, 2);
	msgpack_pack_bin_with_body(&pk, blob, n);
	msgpack_pack_str_with_body(&pk, "end", 3);
	assert_int_equal(run_canned(&cn, 0, &err, &r), 0);
	o = credbroker_reply_result(r);
	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.ptr[0].via.bin.size, n);
	assert_memory_equal(o->via.array.ptr[0].via.bin.ptr, blob, n);
	assert_memory_equal(o->via.array.ptr[1].via.str.ptr, "end", 3);
	credbroker_reply_free(r);
	msgpack_sbuffer_destroy(&sb);
	free(blob);
}

/*
 * Every msgpack header form, several in non-minimal encodings, in one
 * result, written one byte at a time so that the framing scanner has to
 * resume inside every header and payload.
 */
static void
test_all_types_bytewise(void **state)
{
	static const char bytes[] = {
		(char)0x94, 0x01, (char)0xce, 0, 0, 0, 0, (char)0xc0,
		(char)0xdd, 0, 0, 0, 30,			/* array32 */
		0x05, (char)0xe0, (char)0xc0, (char)0xc2, (char)0xc3,
		(char)0xcc, 1, (char)0xcd, 0, 1, (char)0xce, 0, 0, 0, 1,
		(char)0xcf, 0, 0, 0, 0, 0, 0, 0, 1,
		(char)0xd0, (char)0xff, (char)0xd1, (char)0xff, (char)0xff,
		(char)0xd2, (char)0xff, (char)0xff, (char)0xff, (char)0xff,
		(char)0xd3, (char)0xff, (char)0xff, (char)0xff, (char)0xff,
		(char)0xff, (char)0xff, (char)0xff, (char)0xff,
		(char)0xca, 0x3f, (char)0x80, 0, 0,		/* 1.0f */
		(char)0xcb, 0x3f, (char)0xf0, 0, 0, 0, 0, 0, 0,	/* 1.0 */
		(char)0xa2, 'h', 'i',
		(char)0xd9, 2, 'h', 'i', (char)0xda, 0, 2, 'h', 'i',
		(char)0xdb, 0, 0, 0, 2, 'h', 'i',
		(char)0xc4, 1, 'b', (char)0xc5, 0, 1, 'b',
		(char)0xc6, 0, 0, 0, 1, 'b',
		(char)0xd4, 1, 'x', (char)0xd8, 1, '0', '1', '2', '3', '4',
		'5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f',
		(char)0xc7, 1, 2, 'e', (char)0xc8, 0, 1, 2, 'e',
		(char)0xc9, 0, 0, 0, 1, 2, 'e',
		(char)0xdc, 0, 1, (char)0x91, (char)0x90,	/* [[[]]] */
		(char)0xde, 0, 1, (char)0xa1, 'k', (char)0x80,	/* {k: {}} */
		(char)0xdf, 0, 0, 0, 1, 0x01, (char)0x81, 0x02, 0x03,
	};
	struct canned		 cn = { bytes, sizeof(bytes), NULL, true, 1,
	    200, false };
	struct credbroker_reply	*r;
	struct credbroker_error	 err;
	const msgpack_object	*o;

	assert_int_equal(run_canned(&cn, 0, &err, &r), 0);
	o = credbroker_reply_result(r);
	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.size, 30);
	assert_int_equal(o->via.array.ptr[0].via.u64, 5);
	assert_int_equal(o->via.array.ptr[1].via.i64, -32);
	assert_int_equal(o->via.array.ptr[8].via.u64, 1);
	assert_int_equal(o->via.array.ptr[12].via.i64, -1);
	assert_true(o->via.array.ptr[14].via.f64 == 1.0);
	assert_int_equal(o->via.array.ptr[15].type, MSGPACK_OBJECT_STR);
	assert_int_equal(o->via.array.ptr[18].via.str.size, 2);
	assert_memory_equal(o->via.array.ptr[18].via.str.ptr, "hi", 2);
	assert_int_equal(o->via.array.ptr[21].type, MSGPACK_OBJECT_BIN);
	assert_int_equal(o->via.array.ptr[23].type, MSGPACK_OBJECT_EXT);
	assert_int_equal(o->via.array.ptr[23].via.ext.size, 16);
	assert_int_equal(o->via.array.ptr[26].via.ext.size, 1);
	assert_int_equal(o->via.array.ptr[27].type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.ptr[29].type, MSGPACK_OBJECT_MAP);
	credbroker_reply_free(r);
}

/* Params must be exactly one map; bad arguments send nothing. */
static void
test_invalid_params(void **state)
{
	static const char array[] = { (char)0x91, 0x01 };
	static const char trailing[] = { (char)0x80, 0x01 };
	static const char truncated[] = { (char)0x81, (char)0xa1, 'k' };
	static const char huge[] = { (char)0xdf, (char)0xff, (char)0xff,
	    (char)0xff, (char)0xff };
	const struct { const char *b; size_t n; } cases[] = {
		{ array, sizeof(array) }, { trailing, sizeof(trailing) },
		{ truncated, sizeof(truncated) }, { huge, sizeof(huge) },
	};
	struct fake		*f = fake_start(script_echo, NULL);
	struct credbroker	*c = fake_connect(f);
	struct credbroker_reply	*r;
	struct credbroker_error	 err;
	size_t			 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(credbroker_call(c, "hello", cases[i].b,
		    cases[i].n, &r, &err), CREDBROKER_ELOCAL);
		assert_string_equal(err.code, CREDBROKER_ERR_INVALID);
		assert_null(r);
	}
	assert_int_equal(credbroker_call(c, "", NULL, 0, &r, &err),
	    CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_INVALID);
	assert_int_equal(credbroker_call(c, NULL, NULL, 0, &r, &err),
	    CREDBROKER_ELOCAL);
	assert_int_equal(credbroker_call(c, "hello", NULL, 0, NULL, &err),
	    CREDBROKER_ELOCAL);
	assert_int_equal(credbroker_call(NULL, "hello", NULL, 0, &r, &err),
	    CREDBROKER_ELOCAL);
	/* Nothing was sent, and the connection still works. */
	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, NULL), 0);
	check_ok(r, 0);
	credbroker_reply_free(r);
	credbroker_close(c);
	fake_join(f);
	assert_int_equal(f->nreq, 1);
	fake_free(f);
}

/* Connect failures are local "connect"/"invalid" errors. */
static void
test_connect_errors(void **state)
{
	struct credbroker	*c = (void *)1;
	struct credbroker_error	 err;
	char			 longpath[200];

	assert_int_equal(credbroker_connect("/nonexistent/credbroker.sock",
	    &c, &err), CREDBROKER_ELOCAL);
	assert_null(c);
	assert_string_equal(err.code, CREDBROKER_ERR_CONNECT);
	assert_non_null(strstr(err.message, "/nonexistent/credbroker.sock"));

	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(credbroker_connect(longpath, &c, &err),
	    CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_CONNECT);
	assert_non_null(strstr(err.message, "too long"));

	assert_int_equal(credbroker_connect("", &c, &err), CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_INVALID);
	assert_int_equal(credbroker_connect("/x", NULL, &err),
	    CREDBROKER_ELOCAL);
	assert_int_equal(credbroker_connect("/nonexistent", &c, NULL),
	    CREDBROKER_ELOCAL);
}

/* A NULL path means $CREDBROKER_SOCKET. */
static void
test_connect_env(void **state)
{
	struct fake		*f = fake_start(script_echo, NULL);
	struct credbroker	*c;
	struct credbroker_reply	*r;

	setenv(CREDBROKER_SOCKET_ENV, f->path, 1);
	assert_int_equal(credbroker_connect(NULL, &c, NULL), 0);
	unsetenv(CREDBROKER_SOCKET_ENV);
	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, NULL), 0);
	credbroker_reply_free(r);
	credbroker_close(c);
	fake_join(f);
	fake_free(f);
}

/* Script: read a request and never answer. */
static void
script_silent(struct fake *f, int fd)
{
	if (fake_read_request(f, fd) >= 0)
		fake_drain(f, fd);
}

/* A call that gets no answer in time fails with "timeout". */
static void
test_timeout(void **state)
{
	struct fake		*f = fake_start(script_silent, NULL);
	struct credbroker	*c = fake_connect(f);
	struct credbroker_reply	*r;
	struct credbroker_error	 err;
	struct timespec		 t0, t1;
	long			 ms;

	credbroker_set_timeout(c, 150);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, &err),
	    CREDBROKER_ELOCAL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_string_equal(err.code, CREDBROKER_ERR_TIMEOUT);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	    (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 140 && ms < 3000);
	credbroker_close(c);
	fake_join(f);
	fake_free(f);
}

/* Script: read a little of a big request, refuse it and hang up. */
static void
script_refuse_big(struct fake *f, int fd)
{
	char	buf[4096];

	if (recv(fd, buf, sizeof(buf), 0) <= 0)
		return;
	/* Like credbrokerd: the msgid is unknown, so 0. */
	send_error(fd, 0, "too_large", "message exceeds 1048576 bytes");
	shutdown(fd, SHUT_RDWR);
}

/*
 * When the broker closes while the request is being written, the error
 * it sent first is what the caller sees.
 */
static void
test_refused_mid_write(void **state)
{
	struct fake		*f = fake_start(script_refuse_big, NULL);
	struct credbroker	*c = fake_connect(f);
	struct credbroker_reply	*r;
	struct credbroker_error	 err;
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	size_t			 n = 8 * 1024 * 1024;
	char			*blob = calloc(1, n);

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 1);
	msgpack_pack_str_with_body(&pk, "value", 5);
	msgpack_pack_bin_with_body(&pk, blob, n);
	assert_int_equal(credbroker_call(c, "cred.set", sb.data, sb.size, &r,
	    &err), CREDBROKER_EBROKER);
	assert_string_equal(err.code, "too_large");
	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, &err),
	    CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_IO);
	credbroker_close(c);
	fake_join(f);
	fake_free(f);
	msgpack_sbuffer_destroy(&sb);
	free(blob);
}

/* A reply stays valid after its connection is closed. */
static void
test_reply_outlives_connection(void **state)
{
	struct fake		*f = fake_start(script_echo, NULL);
	struct credbroker	*c = fake_connect(f);
	struct credbroker_reply	*r;

	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, NULL), 0);
	credbroker_close(c);
	fake_join(f);
	check_ok(r, 0);
	credbroker_reply_free(r);
	fake_free(f);

	/* And the NULL cases of the destructors and accessors. */
	credbroker_reply_free(NULL);
	credbroker_close(NULL);
	assert_null(credbroker_reply_result(NULL));
	credbroker_set_timeout(NULL, 1);
	credbroker_set_max_response(NULL, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_call_framing),
		cmocka_unit_test(test_call_empty_params),
		cmocka_unit_test(test_msgid_matching),
		cmocka_unit_test(test_broker_error),
		cmocka_unit_test(test_broker_error_truncated),
		cmocka_unit_test(test_msgid0_error),
		cmocka_unit_test(test_malformed_error),
		cmocka_unit_test(test_truncated_response),
		cmocka_unit_test(test_garbage_response),
		cmocka_unit_test(test_response_too_large),
		cmocka_unit_test(test_response_at_limit),
		cmocka_unit_test(test_large_response),
		cmocka_unit_test(test_all_types_bytewise),
		cmocka_unit_test(test_invalid_params),
		cmocka_unit_test(test_connect_errors),
		cmocka_unit_test(test_connect_env),
		cmocka_unit_test(test_timeout),
		cmocka_unit_test(test_refused_mid_write),
		cmocka_unit_test(test_reply_outlives_connection),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

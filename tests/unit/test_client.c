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
 * request mid-write, and replies outliving their connection.  For
 * credbroker_substitute(): the exact bytes of the params it packs, the
 * decoding of substituted, dry-run and skipped results, broker errors,
 * malformed results and invalid arguments (the wiping free runs under
 * ASan and valgrind like everything else here).  The same for
 * credbroker_request(): its params with and without options, the decoded
 * response, skipped checks, broker errors, malformed results, invalid
 * arguments.
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

/*
 * Substitution.  The fake answers one "substitute" request with a canned
 * result; the test then checks the exact bytes of the params the library
 * packed, and the result it decoded.
 */

/* Pack a str from a C string. */
static void
pk_str(msgpack_packer *pk, const char *s)
{
	msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Pack [{id, type}, ...] from alternating id/type strings. */
static void
pk_decls(msgpack_packer *pk, const char *const *idtype, size_t n)
{
	size_t	i;

	msgpack_pack_array(pk, n);
	for (i = 0; i < n; i++) {
		msgpack_pack_map(pk, 2);
		pk_str(pk, "id");
		pk_str(pk, idtype[2 * i]);
		pk_str(pk, "type");
		pk_str(pk, idtype[2 * i + 1]);
	}
}

/* Start a canned success response with msgid 0x01020304 (patched). */
static void
pk_result_head(msgpack_sbuffer *sb, msgpack_packer *pk)
{
	msgpack_sbuffer_init(sb);
	msgpack_packer_init(pk, sb, msgpack_sbuffer_write);
	pack_response_head(pk, 0x01020304, NULL, NULL);
}

/*
 * A substituted request: GET url, headers Authorization and X-Empty (an
 * empty value), the body given (NULL: none; bin when is_bin), subject,
 * used [{tok, tokt}], and an extra key the library must ignore.
 */
static void
pk_subst_result(msgpack_sbuffer *sb, const char *body, size_t body_len,
    bool is_bin, bool dry_run)
{
	msgpack_packer	pk;

	pk_result_head(sb, &pk);
	msgpack_pack_map(&pk, 4);
	pk_str(&pk, "request");
	msgpack_pack_map(&pk, body != NULL ? 4 : 3);
	pk_str(&pk, "method");
	pk_str(&pk, "POST");
	pk_str(&pk, "url");
	pk_str(&pk, "https://api.example.com/x?t=s%20cret");
	pk_str(&pk, "headers");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_array(&pk, 2);
	pk_str(&pk, "Authorization");
	pk_str(&pk, "Bearer s3cr\xc3\xa9t");
	msgpack_pack_array(&pk, 2);
	pk_str(&pk, "X-Empty");
	pk_str(&pk, "");
	if (body != NULL) {
		pk_str(&pk, "body");
		if (is_bin)
			msgpack_pack_bin_with_body(&pk, body, body_len);
		else
			msgpack_pack_str_with_body(&pk, body, body_len);
	}
	pk_str(&pk, "subject");
	pk_str(&pk, "0b5e8a8e-2c0e-4f55-9a43-4f5b0a6a1d11");
	pk_str(&pk, "used");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_map(&pk, dry_run ? 5 : 4);
	pk_str(&pk, "id");
	pk_str(&pk, "tok");
	pk_str(&pk, "type");
	pk_str(&pk, "tokt");
	pk_str(&pk, "source");
	pk_str(&pk, "linked");
	pk_str(&pk, "account");
	pk_str(&pk, "svc_reader");
	if (dry_run) {
		pk_str(&pk, "filled");
		msgpack_pack_true(&pk);
	}
	msgpack_pack_map(&pk, dry_run ? 4 : 3);
	pk_str(&pk, "id");
	pk_str(&pk, "other");
	pk_str(&pk, "type");
	pk_str(&pk, "othert");
	pk_str(&pk, "source");
	pk_str(&pk, "own");
	if (dry_run) {
		pk_str(&pk, "filled");
		msgpack_pack_false(&pk);
	}
	if (dry_run) {
		pk_str(&pk, "dry_run");
		msgpack_pack_true(&pk);
	} else {
		pk_str(&pk, "later");	/* added by a newer broker */
		msgpack_pack_int(&pk, 1);
	}
}

/*
 * Run one credbroker_substitute() (or its dry run) against canned bytes.
 * The fake is returned (joined, not freed) so that the test can look at
 * the request; pass fp NULL to free it here.
 */
static int
run_subst(struct canned *cn, bool dry_run,
    const struct credbroker_component *comp,
    const struct credbroker_request *req, struct credbroker_substituted **sp,
    struct credbroker_error *err, struct fake **fp)
{
	struct fake			*f = fake_start(script_canned, cn);
	struct credbroker		*c = fake_connect(f);
	struct credbroker_substituted	*s = (void *)1;
	int				 rc;

	if (dry_run)
		rc = credbroker_substitute_dry_run(c, comp, req, &s, err);
	else
		rc = credbroker_substitute(c, comp, req, &s, err);
	if (rc != 0)
		assert_null(s);
	else {
		assert_non_null(s);
		assert_string_equal(err->code, "");
	}
	credbroker_close(c);
	fake_join(f);
	if (fp != NULL)
		*fp = f;
	else
		fake_free(f);
	*sp = s;
	return rc;
}

/* Check that request i's params are exactly the bytes in want. */
static void
check_params_bytes(struct fake *f, int i, const msgpack_sbuffer *want)
{
	msgpack_unpacked	u;

	check_request(f, i, &u, "substitute");
	msgpack_unpacked_destroy(&u);
	/* The params map is the last element of the envelope. */
	assert_true(f->rawlen[i] > want->size);
	assert_memory_equal(f->raw[i] + f->rawlen[i] - want->size, want->data,
	    want->size);
}

/* Every field of a component and request is packed as the wire says. */
static void
test_substitute_request_full(void **state)
{
	static const char *const cred_pairs[] = { "tok", "tokt", "gh",
	    "9a1f5ad4-0a7e-4b8e-9b5f-1d2e3f4a5b6c" };
	static const char *const svc_pairs[] = { "svc", "svct" };
	const struct credbroker_cred_decl creds[] = {
		{ "tok", "tokt" },
		{ "gh", "9a1f5ad4-0a7e-4b8e-9b5f-1d2e3f4a5b6c" },
	};
	const struct credbroker_cred_decl svc[] = { { "svc", "svct" } };
	const struct credbroker_component comp = {
		.kind = "action",
		.initiator = "11111111-1111-4111-8111-111111111111",
		.run_as = "22222222-2222-4222-8222-222222222222",
		.system_account = "33333333-3333-4333-8333-333333333333",
		.credentials = creds, .ncredentials = 2,
		.service_credentials = svc, .nservice_credentials = 1,
	};
	const struct credbroker_header hdrs[] = {
		{ "Authorization", "Bearer <<.credentials.tok>>", 0 },
		{ "X-Cut", "abcdef", 3 },
	};
	static const char body[] = "{\"t\":\"<<.credentials.tok|json>>\","
	    "\"u\":\"\xc3\xa9\"}";
	const struct credbroker_request req = {
		.method = "POST",
		.url = "https://api.example.com/x?t=<<.credentials.tok|"
		    "urlquery>>",
		.headers = hdrs, .nheaders = 2,
		.body = body, .body_len = sizeof(body) - 1, .has_body = 1,
	};
	msgpack_sbuffer			 sb, want;
	msgpack_packer			 pk;
	struct canned			 cn = { NULL, 0, &sb, true, 0, 0,
	    false };
	struct credbroker_substituted	*s;
	struct credbroker_error		 err;
	struct fake			*f;

	pk_subst_result(&sb, "b", 1, false, false);
	assert_int_equal(run_subst(&cn, false, &comp, &req, &s, &err, &f), 0);
	credbroker_substituted_free(s);

	msgpack_sbuffer_init(&want);
	msgpack_packer_init(&pk, &want, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, 2);
	pk_str(&pk, "component");
	msgpack_pack_map(&pk, 6);
	pk_str(&pk, "kind");
	pk_str(&pk, "action");
	pk_str(&pk, "initiator");
	pk_str(&pk, "11111111-1111-4111-8111-111111111111");
	pk_str(&pk, "run_as");
	pk_str(&pk, "22222222-2222-4222-8222-222222222222");
	pk_str(&pk, "system_account");
	pk_str(&pk, "33333333-3333-4333-8333-333333333333");
	pk_str(&pk, "credentials");
	pk_decls(&pk, cred_pairs, 2);
	pk_str(&pk, "external_service");
	msgpack_pack_map(&pk, 1);
	pk_str(&pk, "credentials");
	pk_decls(&pk, svc_pairs, 1);
	pk_str(&pk, "request");
	msgpack_pack_map(&pk, 4);
	pk_str(&pk, "method");
	pk_str(&pk, "POST");
	pk_str(&pk, "url");
	pk_str(&pk, "https://api.example.com/x?t=<<.credentials.tok|"
	    "urlquery>>");
	pk_str(&pk, "headers");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_array(&pk, 2);
	pk_str(&pk, "Authorization");
	pk_str(&pk, "Bearer <<.credentials.tok>>");
	msgpack_pack_array(&pk, 2);
	pk_str(&pk, "X-Cut");
	pk_str(&pk, "abc");
	pk_str(&pk, "body");
	msgpack_pack_str_with_body(&pk, body, sizeof(body) - 1);
	assert_int_equal(f->nreq, 1);
	check_params_bytes(f, 0, &want);
	msgpack_sbuffer_destroy(&want);
	fake_free(f);
	msgpack_sbuffer_destroy(&sb);
}

/*
 * The smallest component sends only kind and credentials; no body means
 * no "body" key; a dry run adds dry_run: true; a body that is not UTF-8
 * goes as bin, an empty one as an empty str.
 */
static void
test_substitute_request_minimal(void **state)
{
	const struct credbroker_component comp = { .kind = "status_check" };
	struct credbroker_request	 req = {
		.method = "GET", .url = "http://127.0.0.1:1/",
	};
	static const char binbody[] = { 'a', (char)0xff, '\0', 'b' };
	msgpack_sbuffer			 sb, want;
	msgpack_packer			 pk, rp;
	struct canned			 cn = { NULL, 0, &sb, true, 0, 0,
	    false };
	struct credbroker_substituted	*s;
	struct credbroker_error		 err;
	struct fake			*f;
	int				 round;

	/* The broker's answer to a status check without an account. */
	pk_result_head(&sb, &rp);
	msgpack_pack_map(&rp, 2);
	pk_str(&rp, "skipped");
	msgpack_pack_true(&rp);
	pk_str(&rp, "reason");
	pk_str(&rp, "status check has no system account");

	for (round = 0; round < 4; round++) {
		req.has_body = round >= 2;
		req.body = round == 2 ? binbody : NULL;
		req.body_len = round == 2 ? sizeof(binbody) : 0;
		assert_int_equal(run_subst(&cn, round == 1, &comp, &req, &s,
		    &err, &f), 0);
		assert_true(s->skipped);
		credbroker_substituted_free(s);

		msgpack_sbuffer_init(&want);
		msgpack_packer_init(&pk, &want, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, round == 1 ? 3 : 2);
		pk_str(&pk, "component");
		msgpack_pack_map(&pk, 2);
		pk_str(&pk, "kind");
		pk_str(&pk, "status_check");
		pk_str(&pk, "credentials");
		msgpack_pack_array(&pk, 0);
		pk_str(&pk, "request");
		msgpack_pack_map(&pk, round >= 2 ? 4 : 3);
		pk_str(&pk, "method");
		pk_str(&pk, "GET");
		pk_str(&pk, "url");
		pk_str(&pk, "http://127.0.0.1:1/");
		pk_str(&pk, "headers");
		msgpack_pack_array(&pk, 0);
		if (round == 2) {
			pk_str(&pk, "body");
			msgpack_pack_bin_with_body(&pk, binbody,
			    sizeof(binbody));
		} else if (round == 3) {
			pk_str(&pk, "body");
			pk_str(&pk, "");
		}
		if (round == 1) {
			pk_str(&pk, "dry_run");
			msgpack_pack_true(&pk);
		}
		check_params_bytes(f, 0, &want);
		msgpack_sbuffer_destroy(&want);
		fake_free(f);
	}
	msgpack_sbuffer_destroy(&sb);
}

/* A substituted request is decoded into NUL-terminated fields. */
static void
test_substitute_result(void **state)
{
	const struct credbroker_cred_decl creds[] = { { "tok", "tokt" } };
	const struct credbroker_component comp = {
		.kind = "action",
		.initiator = "0b5e8a8e-2c0e-4f55-9a43-4f5b0a6a1d11",
		.credentials = creds, .ncredentials = 1,
	};
	const struct credbroker_request req = {
		.method = "POST", .url = "https://api.example.com/x",
	};
	static const char body[] = { 'a', '\0', 'b', (char)0xff };
	msgpack_sbuffer			 sb;
	struct canned			 cn = { NULL, 0, &sb, true, 0, 0,
	    false };
	struct credbroker_substituted	*s;
	struct credbroker_error		 err;
	int				 is_bin;

	for (is_bin = 0; is_bin < 2; is_bin++) {
		pk_subst_result(&sb, body, sizeof(body), is_bin, false);
		assert_int_equal(run_subst(&cn, false, &comp, &req, &s, &err,
		    NULL), 0);
		assert_false(s->skipped);
		assert_null(s->reason);
		assert_false(s->dry_run);
		assert_string_equal(s->method, "POST");
		assert_string_equal(s->url,
		    "https://api.example.com/x?t=s%20cret");
		assert_int_equal(s->url_len, strlen(s->url));
		assert_int_equal(s->nheaders, 2);
		assert_string_equal(s->headers[0].name, "Authorization");
		assert_string_equal(s->headers[0].value,
		    "Bearer s3cr\xc3\xa9t");
		assert_int_equal(s->headers[0].value_len, 14);
		assert_string_equal(s->headers[1].name, "X-Empty");
		assert_string_equal(s->headers[1].value, "");
		assert_int_equal(s->headers[1].value_len, 0);
		assert_true(s->has_body);
		assert_int_equal(s->body_len, sizeof(body));
		assert_memory_equal(s->body, body, sizeof(body));
		assert_int_equal(s->body[s->body_len], '\0');
		assert_string_equal(s->subject,
		    "0b5e8a8e-2c0e-4f55-9a43-4f5b0a6a1d11");
		assert_int_equal(s->nused, 2);
		assert_string_equal(s->used[0].id, "tok");
		assert_string_equal(s->used[0].type, "tokt");
		assert_string_equal(s->used[1].id, "other");
		assert_string_equal(s->used[1].type, "othert");
		assert_false(s->used[0].filled);
		assert_string_equal(s->used[0].source, "linked");
		assert_string_equal(s->used[0].account, "svc_reader");
		assert_string_equal(s->used[1].source, "own");
		assert_null(s->used[1].account);
		credbroker_substituted_free(s);
		msgpack_sbuffer_destroy(&sb);
	}

	/* Without a body: has_body 0 and body NULL. */
	pk_subst_result(&sb, NULL, 0, false, false);
	assert_int_equal(run_subst(&cn, false, &comp, &req, &s, &err, NULL),
	    0);
	assert_false(s->has_body);
	assert_null(s->body);
	assert_int_equal(s->body_len, 0);
	assert_string_equal(s->subject, "0b5e8a8e-2c0e-4f55-9a43-4f5b0a6a1d11");
	credbroker_substituted_free(s);
	msgpack_sbuffer_destroy(&sb);
	credbroker_substituted_free(NULL);
}

/*
 * A dry run reports filled per credential; an answer to a dry run that
 * the broker did not mark as one is refused, and so never returned.
 */
static void
test_substitute_dry_run(void **state)
{
	const struct credbroker_component comp = { .kind = "widget",
	    .run_as = "0b5e8a8e-2c0e-4f55-9a43-4f5b0a6a1d11" };
	const struct credbroker_request req = {
		.method = "GET", .url = "https://api.example.com/",
	};
	msgpack_sbuffer			 sb;
	struct canned			 cn = { NULL, 0, &sb, true, 0, 0,
	    false };
	struct credbroker_substituted	*s;
	struct credbroker_error		 err;

	pk_subst_result(&sb, "{}", 2, false, true);
	assert_int_equal(run_subst(&cn, true, &comp, &req, &s, &err, NULL), 0);
	assert_true(s->dry_run);
	assert_int_equal(s->nused, 2);
	assert_true(s->used[0].filled);
	assert_false(s->used[1].filled);
	credbroker_substituted_free(s);
	/* The same answer to an ordinary call is accepted as it is. */
	assert_int_equal(run_subst(&cn, false, &comp, &req, &s, &err, NULL),
	    0);
	assert_true(s->dry_run);
	credbroker_substituted_free(s);
	msgpack_sbuffer_destroy(&sb);

	pk_subst_result(&sb, "{}", 2, false, false);
	assert_int_equal(run_subst(&cn, true, &comp, &req, &s, &err, NULL),
	    CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_PROTOCOL);
	assert_non_null(strstr(err.message, "dry run"));
	msgpack_sbuffer_destroy(&sb);
}

/* A skipped status check is an answer with a reason, not an error. */
static void
test_substitute_skipped(void **state)
{
	const struct credbroker_component comp = { .kind = "status_check" };
	const struct credbroker_request req = {
		.method = "GET", .url = "https://api.example.com/",
	};
	msgpack_sbuffer			 sb;
	msgpack_packer			 pk;
	struct canned			 cn = { NULL, 0, &sb, true, 0, 0,
	    false };
	struct credbroker_substituted	*s;
	struct credbroker_error		 err;

	pk_result_head(&sb, &pk);
	msgpack_pack_map(&pk, 2);
	pk_str(&pk, "skipped");
	msgpack_pack_true(&pk);
	pk_str(&pk, "reason");
	pk_str(&pk, "status check has no system account");
	assert_int_equal(run_subst(&cn, false, &comp, &req, &s, &err, NULL),
	    0);
	assert_true(s->skipped);
	assert_string_equal(s->reason, "status check has no system account");
	assert_null(s->url);
	assert_int_equal(s->nheaders, 0);
	assert_int_equal(s->nused, 0);
	credbroker_substituted_free(s);
	msgpack_sbuffer_destroy(&sb);

	/* Without a reason: an empty one. */
	pk_result_head(&sb, &pk);
	msgpack_pack_map(&pk, 1);
	pk_str(&pk, "skipped");
	msgpack_pack_true(&pk);
	assert_int_equal(run_subst(&cn, true, &comp, &req, &s, &err, NULL), 0);
	assert_true(s->skipped);
	assert_string_equal(s->reason, "");
	credbroker_substituted_free(s);
	msgpack_sbuffer_destroy(&sb);
}

/* Script: refuse the first substitution, then answer the second. */
static void
script_subst_error_then_ok(struct fake *f, int fd)
{
	msgpack_sbuffer	*ok = f->arg;
	char		*b;
	int		 i;

	if ((i = fake_read_request(f, fd)) < 0)
		return;
	send_error(fd, f->msgids[i], "forbidden", "credential 'tok' (type "
	    "'tokt') may not be sent to https://evil.example");
	if ((i = fake_read_request(f, fd)) < 0)
		return;
	b = malloc(ok->size);
	memcpy(b, ok->data, ok->size);
	b[3] = (char)(f->msgids[i] >> 24);
	b[4] = (char)(f->msgids[i] >> 16);
	b[5] = (char)(f->msgids[i] >> 8);
	b[6] = (char)f->msgids[i];
	fake_write(fd, b, ok->size, 0, 0);
	free(b);
	fake_drain(f, fd);
}

/* Broker errors come back as -1 with code and message; the link lives. */
static void
test_substitute_broker_error(void **state)
{
	const struct credbroker_cred_decl creds[] = { { "tok", "tokt" } };
	const struct credbroker_component comp = { .kind = "action",
	    .initiator = "0b5e8a8e-2c0e-4f55-9a43-4f5b0a6a1d11",
	    .credentials = creds, .ncredentials = 1 };
	const struct credbroker_request req = {
		.method = "GET", .url = "https://evil.example/",
	};
	msgpack_sbuffer			 sb;
	struct fake			*f;
	struct credbroker		*c;
	struct credbroker_substituted	*s = (void *)1;
	struct credbroker_error		 err;

	pk_subst_result(&sb, NULL, 0, false, false);
	f = fake_start(script_subst_error_then_ok, &sb);
	c = fake_connect(f);
	assert_int_equal(credbroker_substitute(c, &comp, &req, &s, &err),
	    CREDBROKER_EBROKER);
	assert_null(s);
	assert_string_equal(err.code, "forbidden");
	assert_non_null(strstr(err.message, "https://evil.example"));
	assert_int_equal(credbroker_substitute(c, &comp, &req, &s, &err), 0);
	assert_string_equal(err.code, "");
	assert_string_equal(s->method, "POST");
	credbroker_substituted_free(s);
	credbroker_close(c);
	fake_join(f);
	assert_int_equal(f->nreq, 2);
	fake_free(f);
	msgpack_sbuffer_destroy(&sb);
}

/* Results without the shape of a substitution are "protocol" errors. */
static void
test_substitute_malformed_result(void **state)
{
	const struct credbroker_component comp = { .kind = "action",
	    .initiator = "0b5e8a8e-2c0e-4f55-9a43-4f5b0a6a1d11" };
	const struct credbroker_request req = {
		.method = "GET", .url = "https://api.example.com/",
	};
	msgpack_sbuffer			 sb;
	msgpack_packer			 pk;
	struct canned			 cn = { NULL, 0, &sb, true, 0, 0,
	    false };
	struct credbroker_substituted	*s;
	struct credbroker_error		 err;
	int				 k;

	for (k = 0; k < 11; k++) {
		pk_result_head(&sb, &pk);
		if (k == 0) {			/* not a map */
			pk_str(&pk, "request");
			goto run;
		}
		if (k == 1) {			/* skipped, reason an int */
			msgpack_pack_map(&pk, 2);
			pk_str(&pk, "skipped");
			msgpack_pack_true(&pk);
			pk_str(&pk, "reason");
			msgpack_pack_int(&pk, 3);
			goto run;
		}
		if (k == 2) {			/* no request */
			msgpack_pack_map(&pk, 1);
			pk_str(&pk, "subject");
			pk_str(&pk, "x");
			goto run;
		}
		msgpack_pack_map(&pk, 3);
		pk_str(&pk, "request");
		msgpack_pack_map(&pk, 4);
		pk_str(&pk, "method");
		if (k == 3)			/* method an int */
			msgpack_pack_int(&pk, 1);
		else
			pk_str(&pk, "GET");
		pk_str(&pk, "url");
		if (k == 4)			/* NUL in the url */
			msgpack_pack_str_with_body(&pk, "http://a/\0x", 11);
		else
			pk_str(&pk, "http://a/");
		pk_str(&pk, "headers");
		msgpack_pack_array(&pk, 1);
		if (k == 5) {			/* header not a pair */
			msgpack_pack_array(&pk, 1);
			pk_str(&pk, "X");
		} else {
			msgpack_pack_array(&pk, 2);
			pk_str(&pk, "X");
			if (k == 6)		/* NUL in a header value */
				msgpack_pack_str_with_body(&pk, "a\0b", 3);
			else
				pk_str(&pk, "v");
		}
		pk_str(&pk, "body");
		if (k == 7)			/* body an array */
			msgpack_pack_array(&pk, 0);
		else
			pk_str(&pk, "b");
		pk_str(&pk, "subject");
		if (k == 8)			/* subject nil */
			msgpack_pack_nil(&pk);
		else
			pk_str(&pk, "s");
		pk_str(&pk, "used");
		msgpack_pack_array(&pk, 1);
		if (k == 9)			/* used entry not a map */
			pk_str(&pk, "tok");
		else {
			msgpack_pack_map(&pk, 3);
			pk_str(&pk, "id");
			pk_str(&pk, "tok");
			pk_str(&pk, "type");
			pk_str(&pk, "tokt");
			pk_str(&pk, "filled");
			if (k == 10)		/* filled a string */
				pk_str(&pk, "yes");
			else
				msgpack_pack_true(&pk);
		}
run:
		assert_int_equal(run_subst(&cn, false, &comp, &req, &s, &err,
		    NULL), CREDBROKER_ELOCAL);
		assert_string_equal(err.code, CREDBROKER_ERR_PROTOCOL);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* Bad arguments are "invalid" and send nothing. */
static void
test_substitute_invalid_args(void **state)
{
	const struct credbroker_cred_decl bad_decl[] = { { "tok", NULL } };
	const struct credbroker_header bad_hdr[] = { { NULL, "v", 0 } };
	const struct credbroker_component ok_comp = { .kind = "action" };
	const struct credbroker_component no_kind = { .kind = NULL };
	const struct credbroker_component null_creds = { .kind = "action",
	    .ncredentials = 1 };
	const struct credbroker_component bad_creds = { .kind = "action",
	    .credentials = bad_decl, .ncredentials = 1 };
	const struct credbroker_component bad_svc = { .kind = "action",
	    .service_credentials = bad_decl, .nservice_credentials = 1 };
	const struct credbroker_request ok_req = { .method = "GET",
	    .url = "http://a/" };
	const struct credbroker_request no_url = { .method = "GET" };
	const struct credbroker_request null_hdrs = { .method = "GET",
	    .url = "http://a/", .nheaders = 2 };
	const struct credbroker_request bad_hdrs = { .method = "GET",
	    .url = "http://a/", .headers = bad_hdr, .nheaders = 1 };
	const struct credbroker_request null_body = { .method = "GET",
	    .url = "http://a/", .has_body = 1, .body_len = 3 };
	const struct {
		const struct credbroker_component	*comp;
		const struct credbroker_request		*req;
	} cases[] = {
		{ NULL, &ok_req }, { &ok_comp, NULL }, { &no_kind, &ok_req },
		{ &null_creds, &ok_req }, { &bad_creds, &ok_req },
		{ &bad_svc, &ok_req }, { &ok_comp, &no_url },
		{ &ok_comp, &null_hdrs }, { &ok_comp, &bad_hdrs },
		{ &ok_comp, &null_body },
	};
	struct fake			*f = fake_start(script_echo, NULL);
	struct credbroker		*c = fake_connect(f);
	struct credbroker_substituted	*s;
	struct credbroker_error		 err;
	struct credbroker_reply		*r;
	size_t				 i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		s = (void *)1;
		assert_int_equal(credbroker_substitute(c, cases[i].comp,
		    cases[i].req, &s, &err), CREDBROKER_ELOCAL);
		assert_string_equal(err.code, CREDBROKER_ERR_INVALID);
		assert_null(s);
	}
	assert_int_equal(credbroker_substitute(NULL, &ok_comp, &ok_req, &s,
	    &err), CREDBROKER_ELOCAL);
	assert_int_equal(credbroker_substitute_dry_run(c, &ok_comp, &ok_req,
	    NULL, NULL), CREDBROKER_ELOCAL);
	/* Nothing was sent, and the connection still works. */
	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &r, NULL), 0);
	check_ok(r, 0);
	credbroker_reply_free(r);
	credbroker_close(c);
	fake_join(f);
	assert_int_equal(f->nreq, 1);
	fake_free(f);
}

/*
 * Broker-executed requests.  The fake answers one "request" with a canned
 * response; the test checks the params packed and the response decoded.
 */

/*
 * A response: status 200, its status text "OK" when there is a body (and
 * none when there is none), headers Content-Type and X-Echo (a bin value
 * holding a NUL), the body given (bin with a NUL), scrubbed 2, used
 * [{tok, tokt, own}], and a key the library must ignore.
 */
static void
pk_resp_result(msgpack_sbuffer *sb, const char *body, size_t body_len)
{
	msgpack_packer	pk;

	pk_result_head(sb, &pk);
	msgpack_pack_map(&pk, body != NULL ? 7 : 5);
	pk_str(&pk, "status");
	msgpack_pack_uint16(&pk, 200);
	if (body != NULL) {
		pk_str(&pk, "reason");
		pk_str(&pk, "OK");
	}
	pk_str(&pk, "headers");
	msgpack_pack_array(&pk, 2);
	msgpack_pack_array(&pk, 2);
	pk_str(&pk, "Content-Type");
	pk_str(&pk, "text/plain");
	msgpack_pack_array(&pk, 2);
	pk_str(&pk, "X-Echo");
	msgpack_pack_bin_with_body(&pk, "[REDACTED:tok]\0z", 16);
	if (body != NULL) {
		pk_str(&pk, "body");
		msgpack_pack_bin_with_body(&pk, body, body_len);
	}
	pk_str(&pk, "scrubbed");
	msgpack_pack_uint8(&pk, 2);
	pk_str(&pk, "used");
	msgpack_pack_array(&pk, 1);
	msgpack_pack_map(&pk, 3);
	pk_str(&pk, "id");
	pk_str(&pk, "tok");
	pk_str(&pk, "type");
	pk_str(&pk, "tokt");
	pk_str(&pk, "source");
	pk_str(&pk, "own");
	pk_str(&pk, "later");		/* added by a newer broker */
	msgpack_pack_int(&pk, 1);
}

/* Run one credbroker_request() against canned bytes (see run_subst()). */
static int
run_req(struct canned *cn, const struct credbroker_component *comp,
    const struct credbroker_request *req,
    const struct credbroker_request_options *ro,
    struct credbroker_response **rp, struct credbroker_error *err,
    struct fake **fp)
{
	struct fake			*f = fake_start(script_canned, cn);
	struct credbroker		*c = fake_connect(f);
	struct credbroker_response	*r = (void *)1;
	int				 rc;

	rc = credbroker_request(c, comp, req, ro, &r, err);
	if (rc != 0)
		assert_null(r);
	else {
		assert_non_null(r);
		assert_string_equal(err->code, "");
	}
	credbroker_close(c);
	fake_join(f);
	if (fp != NULL)
		*fp = f;
	else
		fake_free(f);
	*rp = r;
	return rc;
}

/*
 * "request" gets the params of "substitute" and, after them, only the
 * options that are set: timeout_ms, max_response_bytes, follow_redirects.
 */
static void
test_request_params(void **state)
{
	static const char *const cred_pairs[] = { "tok", "tokt" };
	const struct credbroker_cred_decl creds[] = { { "tok", "tokt" } };
	const struct credbroker_component comp = {
		.kind = "action",
		.initiator = "11111111-1111-4111-8111-111111111111",
		.credentials = creds, .ncredentials = 1,
	};
	const struct credbroker_header hdrs[] = {
		{ "Authorization", "Bearer <<.credentials.tok>>", 0 },
	};
	const struct credbroker_request req = {
		.method = "GET", .url = "http://127.0.0.1:8080/x",
		.headers = hdrs, .nheaders = 1,
	};
	const struct credbroker_request_options all = {
		.timeout_ms = 1500, .max_response_bytes = 70000,
		.follow_redirects = 1,
	};
	const struct credbroker_request_options none = { 0, 0, 0 };
	const struct credbroker_request_options *ros[] = { &all, &none, NULL };
	msgpack_sbuffer			 sb, want;
	msgpack_packer			 pk;
	struct canned			 cn = { NULL, 0, &sb, true, 0, 0,
	    false };
	struct credbroker_response	*r;
	struct credbroker_error		 err;
	struct fake			*f;
	msgpack_unpacked		 u;
	int				 k;

	for (k = 0; k < 3; k++) {
		pk_resp_result(&sb, "b", 1);
		assert_int_equal(run_req(&cn, &comp, &req, ros[k], &r, &err,
		    &f), 0);
		credbroker_response_free(r);
		msgpack_sbuffer_destroy(&sb);

		msgpack_sbuffer_init(&want);
		msgpack_packer_init(&pk, &want, msgpack_sbuffer_write);
		msgpack_pack_map(&pk, k == 0 ? 5 : 2);
		pk_str(&pk, "component");
		msgpack_pack_map(&pk, 3);
		pk_str(&pk, "kind");
		pk_str(&pk, "action");
		pk_str(&pk, "initiator");
		pk_str(&pk, "11111111-1111-4111-8111-111111111111");
		pk_str(&pk, "credentials");
		pk_decls(&pk, cred_pairs, 1);
		pk_str(&pk, "request");
		msgpack_pack_map(&pk, 3);
		pk_str(&pk, "method");
		pk_str(&pk, "GET");
		pk_str(&pk, "url");
		pk_str(&pk, "http://127.0.0.1:8080/x");
		pk_str(&pk, "headers");
		msgpack_pack_array(&pk, 1);
		msgpack_pack_array(&pk, 2);
		pk_str(&pk, "Authorization");
		pk_str(&pk, "Bearer <<.credentials.tok>>");
		if (k == 0) {
			pk_str(&pk, "timeout_ms");
			msgpack_pack_uint64(&pk, 1500);
			pk_str(&pk, "max_response_bytes");
			msgpack_pack_uint64(&pk, 70000);
			pk_str(&pk, "follow_redirects");
			msgpack_pack_true(&pk);
		}
		assert_int_equal(f->nreq, 1);
		check_request(f, 0, &u, "request");
		msgpack_unpacked_destroy(&u);
		assert_true(f->rawlen[0] > want.size);
		assert_memory_equal(f->raw[0] + f->rawlen[0] - want.size,
		    want.data, want.size);
		msgpack_sbuffer_destroy(&want);
		fake_free(f);
	}
}

/* A response is decoded: status, headers, body (with NULs), scrubbed. */
static void
test_request_response(void **state)
{
	const struct credbroker_component comp = { .kind = "action",
	    .initiator = "0b5e8a8e-2c0e-4f55-9a43-4f5b0a6a1d11" };
	const struct credbroker_request req = {
		.method = "GET", .url = "http://127.0.0.1:8080/x",
	};
	static const char body[] = { 'o', 'k', '\0', (char)0xff };
	msgpack_sbuffer			 sb;
	msgpack_packer			 pk;
	struct canned			 cn = { NULL, 0, &sb, true, 0, 0,
	    false };
	struct credbroker_response	*r;
	struct credbroker_error		 err;

	pk_resp_result(&sb, body, sizeof(body));
	assert_int_equal(run_req(&cn, &comp, &req, NULL, &r, &err, NULL), 0);
	assert_false(r->skipped);
	assert_int_equal(r->status, 200);
	assert_string_equal(r->reason, "OK");
	assert_int_equal(r->nheaders, 2);
	assert_string_equal(r->headers[0].name, "Content-Type");
	assert_string_equal(r->headers[0].value, "text/plain");
	assert_int_equal(r->headers[0].value_len, 10);
	assert_string_equal(r->headers[1].name, "X-Echo");
	assert_int_equal(r->headers[1].value_len, 16);
	assert_memory_equal(r->headers[1].value, "[REDACTED:tok]\0z", 17);
	assert_int_equal(r->body_len, sizeof(body));
	assert_memory_equal(r->body, body, sizeof(body));
	assert_int_equal(r->body[r->body_len], '\0');
	assert_int_equal(r->scrubbed, 2);
	assert_int_equal(r->nused, 1);
	assert_string_equal(r->used[0].id, "tok");
	assert_string_equal(r->used[0].type, "tokt");
	assert_string_equal(r->used[0].source, "own");
	assert_null(r->used[0].account);
	credbroker_response_free(r);
	msgpack_sbuffer_destroy(&sb);

	/* A status text that is not UTF-8 comes as bin. */
	pk_result_head(&sb, &pk);
	msgpack_pack_map(&pk, 2);
	pk_str(&pk, "status");
	msgpack_pack_uint16(&pk, 404);
	pk_str(&pk, "reason");
	msgpack_pack_bin_with_body(&pk, "Gr\xfc\xdf", 4);
	assert_int_equal(run_req(&cn, &comp, &req, NULL, &r, &err, NULL), 0);
	assert_int_equal(r->status, 404);
	assert_string_equal(r->reason, "Gr\xfc\xdf");
	assert_int_equal(r->nheaders, 0);
	assert_string_equal(r->body, "");
	credbroker_response_free(r);
	msgpack_sbuffer_destroy(&sb);

	/* No body: an empty string, never NULL; no status text: NULL. */
	pk_resp_result(&sb, NULL, 0);
	assert_int_equal(run_req(&cn, &comp, &req, NULL, &r, &err, NULL), 0);
	assert_null(r->reason);
	assert_non_null(r->body);
	assert_int_equal(r->body_len, 0);
	assert_string_equal(r->body, "");
	credbroker_response_free(r);
	msgpack_sbuffer_destroy(&sb);
	credbroker_response_free(NULL);
}

/* A status check without a system account: skipped, with the reason. */
static void
test_request_skipped(void **state)
{
	const struct credbroker_component comp = { .kind = "status_check" };
	const struct credbroker_request req = {
		.method = "GET", .url = "http://127.0.0.1:8080/x",
	};
	msgpack_sbuffer			 sb;
	msgpack_packer			 pk;
	struct canned			 cn = { NULL, 0, &sb, true, 0, 0,
	    false };
	struct credbroker_response	*r;
	struct credbroker_error		 err;

	pk_result_head(&sb, &pk);
	msgpack_pack_map(&pk, 2);
	pk_str(&pk, "skipped");
	msgpack_pack_true(&pk);
	pk_str(&pk, "reason");
	pk_str(&pk, "no system account");
	assert_int_equal(run_req(&cn, &comp, &req, NULL, &r, &err, NULL), 0);
	assert_true(r->skipped);
	assert_string_equal(r->reason, "no system account");
	assert_int_equal(r->status, 0);
	assert_int_equal(r->nheaders, 0);
	credbroker_response_free(r);
	msgpack_sbuffer_destroy(&sb);
}

/* A broker error comes back as such; the connection stays usable. */
static void
test_request_broker_error(void **state)
{
	const struct credbroker_component comp = { .kind = "action" };
	const struct credbroker_request req = {
		.method = "GET", .url = "http://127.0.0.1:8080/x",
	};
	msgpack_sbuffer			 sb;
	msgpack_packer			 pk;
	struct canned			 cn = { NULL, 0, &sb, true, 0, 0,
	    false };
	struct credbroker_response	*r;
	struct credbroker_error		 err;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	pack_response_head(&pk, 0x01020304, "too_large",
	    "the response is larger than 70000 bytes");
	msgpack_pack_nil(&pk);
	assert_int_equal(run_req(&cn, &comp, &req, NULL, &r, &err, NULL),
	    CREDBROKER_EBROKER);
	assert_string_equal(err.code, "too_large");
	assert_string_equal(err.message,
	    "the response is larger than 70000 bytes");
	msgpack_sbuffer_destroy(&sb);
}

/* Results without the shape of a response are "protocol" errors. */
static void
test_request_malformed_result(void **state)
{
	const struct credbroker_component comp = { .kind = "action" };
	const struct credbroker_request req = {
		.method = "GET", .url = "http://127.0.0.1:8080/x",
	};
	msgpack_sbuffer			 sb;
	msgpack_packer			 pk;
	struct canned			 cn = { NULL, 0, &sb, true, 0, 0,
	    false };
	struct credbroker_response	*r;
	struct credbroker_error		 err;
	int				 k;

	for (k = 0; k < 11; k++) {
		pk_result_head(&sb, &pk);
		if (k == 0) {			/* not a map */
			pk_str(&pk, "status");
			goto run;
		}
		if (k == 10) {			/* status text an int */
			msgpack_pack_map(&pk, 2);
			pk_str(&pk, "status");
			msgpack_pack_uint16(&pk, 200);
			pk_str(&pk, "reason");
			msgpack_pack_int(&pk, 200);
			goto run;
		}
		if (k == 1) {			/* skipped, reason an int */
			msgpack_pack_map(&pk, 2);
			pk_str(&pk, "skipped");
			msgpack_pack_true(&pk);
			pk_str(&pk, "reason");
			msgpack_pack_int(&pk, 3);
			goto run;
		}
		msgpack_pack_map(&pk, 5);
		pk_str(&pk, "status");
		if (k == 2)			/* status a string */
			pk_str(&pk, "200");
		else if (k == 3)		/* status negative */
			msgpack_pack_int(&pk, -1);
		else if (k == 4)		/* status out of range */
			msgpack_pack_uint32(&pk, 100000);
		else
			msgpack_pack_uint16(&pk, 200);
		pk_str(&pk, "headers");
		if (k == 5) {			/* headers a map */
			msgpack_pack_map(&pk, 0);
		} else {
			msgpack_pack_array(&pk, 1);
			msgpack_pack_array(&pk, 2);
			if (k == 6)		/* NUL in a header name */
				msgpack_pack_str_with_body(&pk, "X\0Y", 3);
			else
				pk_str(&pk, "X");
			pk_str(&pk, "v");
		}
		pk_str(&pk, "body");
		if (k == 7)			/* body an array */
			msgpack_pack_array(&pk, 0);
		else
			pk_str(&pk, "b");
		pk_str(&pk, "scrubbed");
		if (k == 8)			/* scrubbed a string */
			pk_str(&pk, "0");
		else
			msgpack_pack_uint8(&pk, 0);
		pk_str(&pk, "used");
		msgpack_pack_array(&pk, 1);
		if (k == 9)			/* used entry not a map */
			pk_str(&pk, "tok");
		else {
			msgpack_pack_map(&pk, 2);
			pk_str(&pk, "id");
			pk_str(&pk, "tok");
			pk_str(&pk, "type");
			pk_str(&pk, "tokt");
		}
run:
		assert_int_equal(run_req(&cn, &comp, &req, NULL, &r, &err,
		    NULL), CREDBROKER_ELOCAL);
		assert_string_equal(err.code, CREDBROKER_ERR_PROTOCOL);
		msgpack_sbuffer_destroy(&sb);
	}
}

/* Bad arguments are "invalid" and send nothing. */
static void
test_request_invalid_args(void **state)
{
	const struct credbroker_component ok_comp = { .kind = "action" };
	const struct credbroker_component no_kind = { .kind = NULL };
	const struct credbroker_request ok_req = {
		.method = "GET", .url = "http://127.0.0.1:8080/x",
	};
	const struct credbroker_request no_url = { .method = "GET" };
	struct fake			*f = fake_start(script_echo, NULL);
	struct credbroker		*c = fake_connect(f);
	struct credbroker_response	*r = (void *)1;
	struct credbroker_error		 err;
	struct credbroker_reply		*rep;

	assert_int_equal(credbroker_request(c, &no_kind, &ok_req, NULL, &r,
	    &err), CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_INVALID);
	assert_null(r);
	r = (void *)1;
	assert_int_equal(credbroker_request(c, &ok_comp, &no_url, NULL, &r,
	    &err), CREDBROKER_ELOCAL);
	assert_string_equal(err.code, CREDBROKER_ERR_INVALID);
	assert_null(r);
	assert_int_equal(credbroker_request(NULL, &ok_comp, &ok_req, NULL, &r,
	    &err), CREDBROKER_ELOCAL);
	assert_int_equal(credbroker_request(c, &ok_comp, &ok_req, NULL, NULL,
	    NULL), CREDBROKER_ELOCAL);
	/* Nothing was sent, and the connection still works. */
	assert_int_equal(credbroker_call(c, "hello", NULL, 0, &rep, NULL), 0);
	check_ok(rep, 0);
	credbroker_reply_free(rep);
	credbroker_close(c);
	fake_join(f);
	assert_int_equal(f->nreq, 1);
	fake_free(f);
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
		cmocka_unit_test(test_substitute_request_full),
		cmocka_unit_test(test_substitute_request_minimal),
		cmocka_unit_test(test_substitute_result),
		cmocka_unit_test(test_substitute_dry_run),
		cmocka_unit_test(test_substitute_skipped),
		cmocka_unit_test(test_substitute_broker_error),
		cmocka_unit_test(test_substitute_malformed_result),
		cmocka_unit_test(test_substitute_invalid_args),
		cmocka_unit_test(test_request_params),
		cmocka_unit_test(test_request_response),
		cmocka_unit_test(test_request_skipped),
		cmocka_unit_test(test_request_broker_error),
		cmocka_unit_test(test_request_malformed_result),
		cmocka_unit_test(test_request_invalid_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * fuzz_proto: libFuzzer target for the protocol decoder and the
 * dispatcher, in process.  The input is what a client sends on one
 * connection: it is fed in chunks (their size derived from the input)
 * through proto_scan, and each complete message is copied into a buffer of
 * its own and handed to rpc_dispatch, which keeps it for as long as the
 * call it makes lasts, as server.c does.  Request buffers are plain malloc
 * here (no locked pool), so a handler that kept a pointer into a request
 * past the end of its call would be caught by ASan.
 *
 * The broker behind it is real: a scratch SQLite store (in /dev/shm when
 * there is one, created once in LLVMFuzzerInitialize), a master key, every
 * permission granted to the caller so that every method is reachable, and
 * Vault from vault_init but never configured at the start of an input.
 *
 * The answers go to this file's reply sink (struct rpc_sink), a fake
 * connection that checks every reply and then wipes it.  Each reply must
 * be one msgpack object [1, msgid, error, result], error nil or {code,
 * message} with a known code and a non-empty message (then result nil),
 * and msgid that of a request still owed an answer.  Every request whose
 * msgid could be read must be answered exactly once unless the connection
 * closed.
 *
 * One piece is replaced, by defining its functions in this file so that
 * the linker never pulls its object out of the static libraries (it would
 * fail with "multiple definition" if it did): the HTTP client
 * (storage/http.c's http_*).  vault.set and vault.test take a URL from the
 * input, and a fuzzer must not make DNS lookups or connections to wherever
 * that points.  Every request "fails" as a transport error (unavailable)
 * once the input has been dispatched, so calls that wait on Vault complete
 * out of order, through rpc_finish, like in production when Vault is down.
 * The request method's client is the same fake, and its name lookups
 * (getaddrinfo, also defined here) answer at once with one public address
 * without asking any resolver: a request ends as quickly as a Vault call.
 *
 * After each input the state goes back to the start (Vault unconfigured
 * and its settings deleted, every type and value deleted), so that every
 * input, and every crash reproducer, means the same thing on its own; any
 * call still holding the connection at that point is a bug (trap).
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "http.h"
#include "log.h"
#include "proto.h"
#include "seal.h"
#include "secbuf.h"
#include "store.h"
#include "values.h"
#include "vault.h"
#include "writer.h"

#define FZ_MAX_MESSAGE	4096	/* smallest max_message_size */
#define FZ_MAX_MSGS	64	/* messages dispatched per input */
#define FZ_SETTLE	100	/* rounds of the loop to settle an input */
#define FZ_KEY		"Fz8#kQ2!vL9@pX4$wR7^mT1&bN6*cH3%"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FZ_ASSERT(x)	do { if (!(x)) fz_fail(#x, __LINE__); } while (0)

/* An invariant does not hold: say which, then crash for libFuzzer. */
static void
fz_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_proto: invariant violated at line %d: %s\n",
	    line, what);
	__builtin_trap();
}

/* The fake connection behind the reply sink. */
struct fz_conn {
	struct peer	 peer;
	unsigned	 refs;
	bool		 closed;
	uint32_t	 owed[FZ_MAX_MSGS];	/* msgids owed a reply */
	size_t		 nowed;
};

/* The fake HTTP client: requests wait until fz_http_fail() ends them. */
struct http_req {
	TAILQ_ENTRY(http_req)	 entry;
	struct http		*h;
	http_done_fn		 done;
	void			*arg;
};

struct http {
	TAILQ_HEAD(http_req_q, http_req) reqs;
	size_t			 n;
};

static struct broker	 fz_b;
static struct conf	 fz_conf;
static uv_loop_t	 fz_loop;
static struct peer	 fz_peer;
static char		 fz_dir[64];
static char		 fz_db[128];

/* --- the reply sink --- */

/* Whether s (n bytes) is valid UTF-8; messages go to every client. */
static bool
fz_utf8(const unsigned char *s, size_t n)
{
	size_t	i = 0, k, j;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			k = 2;
		else if (s[i] >= 0xe0 && s[i] <= 0xef)
			k = 3;
		else if (s[i] >= 0xf0 && s[i] <= 0xf4)
			k = 4;
		else
			return false;
		if (n - i < k)
			return false;
		for (j = 1; j < k; j++)
			if ((s[i + j] & 0xc0) != 0x80)
				return false;
		i += k;
	}
	return true;
}

/*
 * With CB_FUZZ_KNOWN_BUGS=1 in the environment, tolerate the known bugs
 * listed in tests/fuzz/crashes/README, so that a long run can look past
 * them for new ones.  Without it (make fuzz-short) they crash.  Known:
 * error messages that quote client bytes as they came (proto_check_keys,
 * dest.c, ...), so a message is not always valid UTF-8.
 */
static bool
fz_known_bug(const msgpack_object *msg)
{
	static int	known = -1;

	if (known < 0)
		known = getenv("CB_FUZZ_KNOWN_BUGS") != NULL &&
		    strcmp(getenv("CB_FUZZ_KNOWN_BUGS"), "1") == 0;
	return known;
}

/* Check one reply against the response shape and the msgids owed. */
static void
fz_check_reply(struct fz_conn *c, const struct secbuf *buf)
{
	msgpack_unpacked	 up;
	const msgpack_object	*o, *code, *msg;
	size_t			 off = 0, i;
	uint32_t		 msgid;

	FZ_ASSERT(buf->len > 0);
	msgpack_unpacked_init(&up);
	FZ_ASSERT(msgpack_unpack_next(&up, (const char *)buf->data, buf->len,
	    &off) == MSGPACK_UNPACK_SUCCESS);
	FZ_ASSERT(off == buf->len);
	o = &up.data;
	FZ_ASSERT(o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size == 4);
	o = o->via.array.ptr;
	FZ_ASSERT(o[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    o[0].via.u64 == CB_MSG_RESPONSE);
	FZ_ASSERT(o[1].type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
	    o[1].via.u64 <= UINT32_MAX);
	msgid = (uint32_t)o[1].via.u64;
	if (o[2].type != MSGPACK_OBJECT_NIL) {
		FZ_ASSERT(o[2].type == MSGPACK_OBJECT_MAP);
		code = proto_map_get(&o[2], "code");
		msg = proto_map_get(&o[2], "message");
		FZ_ASSERT(code != NULL && code->type == MSGPACK_OBJECT_STR);
		FZ_ASSERT(cb_error_from_name(code->via.str.ptr,
		    code->via.str.size) != 0);
		FZ_ASSERT(msg != NULL && msg->type == MSGPACK_OBJECT_STR &&
		    msg->via.str.size > 0);
		if (!fz_utf8((const unsigned char *)msg->via.str.ptr,
		    msg->via.str.size) && !fz_known_bug(msg)) {
			fprintf(stderr, "fuzz_proto: error message: ");
			for (i = 0; i < msg->via.str.size; i++) {
				unsigned char ch = (unsigned char)
				    msg->via.str.ptr[i];
				fprintf(stderr, ch >= 0x20 && ch < 0x7f ?
				    "%c" : "\\x%02x", ch);
			}
			fputc('\n', stderr);
			fz_fail("error message is valid UTF-8", __LINE__);
		}
		FZ_ASSERT(o[3].type == MSGPACK_OBJECT_NIL);
	}
	msgpack_unpacked_destroy(&up);

	/* Exactly one reply per request, to a msgid that was sent. */
	for (i = 0; i < c->nowed && c->owed[i] != msgid; i++)
		;
	FZ_ASSERT(i < c->nowed);
	c->owed[i] = c->owed[--c->nowed];
}

static void
fz_sink_write(void *ctx, struct secbuf *buf)
{
	fz_check_reply(ctx, buf);
	secbuf_free(buf);
}

static void
fz_sink_close(void *ctx)
{
	struct fz_conn	*c = ctx;

	c->closed = true;
}

static void
fz_sink_ref(void *ctx)
{
	struct fz_conn	*c = ctx;

	c->refs++;
}

static void
fz_sink_unref(void *ctx)
{
	struct fz_conn	*c = ctx;

	FZ_ASSERT(c->refs > 0);
	c->refs--;
}

static bool
fz_sink_is_closed(const void *ctx)
{
	const struct fz_conn	*c = ctx;

	return c->closed;
}

static const struct peer *
fz_sink_peer(const void *ctx)
{
	const struct fz_conn	*c = ctx;

	return &c->peer;
}

/* The server scrubs once per loop iteration; here, at once. */
static void
fz_sink_scrub(void *ctx)
{
	(void)ctx;
	cb_stack_scrub();
}

static const struct rpc_sink_ops fz_sink_ops = {
	.write = fz_sink_write,
	.close = fz_sink_close,
	.ref = fz_sink_ref,
	.unref = fz_sink_unref,
	.is_closed = fz_sink_is_closed,
	.peer = fz_sink_peer,
	.scrub = fz_sink_scrub,
};

/* --- the HTTP client, instead of storage/http.c --- */

int
http_init(uv_loop_t *loop, struct http **out, struct cb_error *err)
{
	struct http	*h;

	if ((h = calloc(1, sizeof(*h))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	TAILQ_INIT(&h->reqs);
	*out = h;
	return 0;
}

void
http_close(struct http *h)
{
	struct http_req	*r;

	while ((r = TAILQ_FIRST(&h->reqs)) != NULL) {
		TAILQ_REMOVE(&h->reqs, r, entry);
		free(r);
	}
	free(h);
}

int
http_start(struct http *h, const struct http_opts *opts, http_done_fn done,
    void *arg, struct http_req **req, struct cb_error *err)
{
	struct http_req	*r;

	FZ_ASSERT(opts != NULL && opts->url != NULL && done != NULL);
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	r->h = h;
	r->done = done;
	r->arg = arg;
	TAILQ_INSERT_TAIL(&h->reqs, r, entry);
	h->n++;
	if (req != NULL)
		*req = r;
	return 0;
}

void
http_cancel(struct http_req *req)
{
	struct http	*h = req->h;
	struct http_req	*r;

	TAILQ_FOREACH(r, &h->reqs, entry)
		if (r == req)
			break;
	/* A handle that is not pending any more is a caller's bug. */
	FZ_ASSERT(r != NULL);
	TAILQ_REMOVE(&h->reqs, r, entry);
	h->n--;
	free(r);
}

size_t
http_active(const struct http *h)
{
	return h->n;
}

/*
 * End as many requests as are pending now as transport failures (a
 * callback may start new ones, or cancel others); how many ended.
 */
static size_t
fz_http_fail_one(struct http *h)
{
	struct http_req	*r;
	struct secbuf	 empty = SECBUF_INIT;
	struct cb_error	 err;
	size_t		 n, todo;

	if (h == NULL)
		return 0;
	todo = h->n;

	for (n = 0; n < todo && (r = TAILQ_FIRST(&h->reqs)) != NULL; n++) {
		TAILQ_REMOVE(&h->reqs, r, entry);
		h->n--;
		cb_error_set(&err, CB_EUNAVAILABLE, "fuzz: no network");
		r->done(r->arg, 0, &empty, &err);
		free(r);
	}
	return n;
}

/* Both clients: Vault's and the request method's. */
static size_t
fz_http_fail(void)
{
	size_t	n = fz_http_fail_one(fz_b.http);

	return n + fz_http_fail_one(fz_b.http_out);
}

/*
 * Name lookups of the request method (uv_getaddrinfo) never reach a
 * resolver: every name is one public address, so that a request goes on
 * to the fake HTTP client above, which never touches the network either.
 */
int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	struct {
		struct addrinfo		ai;
		struct sockaddr_in	sin;
	} *a;

	(void)service;
	(void)hints;
	if (node == NULL)
		return EAI_NONAME;
	if ((a = calloc(1, sizeof(*a))) == NULL)
		return EAI_MEMORY;
	a->sin.sin_family = AF_INET;
	a->sin.sin_addr.s_addr = htonl(0x5db8d822);	/* 93.184.216.34 */
	a->ai.ai_family = AF_INET;
	a->ai.ai_socktype = SOCK_STREAM;
	a->ai.ai_addrlen = sizeof(a->sin);
	a->ai.ai_addr = (struct sockaddr *)&a->sin;
	*res = &a->ai;
	return 0;
}

void
freeaddrinfo(struct addrinfo *ai)
{
	free(ai);
}

/* Run the loop and fail HTTP requests until nothing is left to do. */
/* Writes of values not yet answered by the store's writer thread. */
static uint64_t
fz_writes_unanswered(void)
{
	struct writer_stats	ws;

	values_sqlite_stats(fz_b.values[STORE_DB], &ws);
	return ws.unanswered;
}

static void
fz_settle(void)
{
	int	i;

	for (i = 0; i < FZ_SETTLE; i++) {
		uv_run(&fz_loop, UV_RUN_NOWAIT);
		if (fz_http_fail() == 0 && !uv_loop_alive(&fz_loop))
			break;
	}
	/*
	 * A key generation ends on the thread pool, a write of a value on
	 * the store's writer thread, and a request's name lookup on the
	 * thread pool (then its fake transfer fails): wait for them.
	 */
	while (rpc_keygen_count() > 0 || fz_writes_unanswered() > 0 ||
	    rpc_request_count() > 0) {
		uv_run(&fz_loop, UV_RUN_ONCE);
		for (i = 0; i < FZ_SETTLE; i++)
			if (uv_run(&fz_loop, UV_RUN_NOWAIT) == 0)
				break;
		fz_http_fail();
	}
}

/* --- set-up and the per-input reset --- */

/* Remove a scratch directory and its store. */
static void
fz_remove(const char *dir)
{
	static const char *const files[] = {
		"fuzz.db", "fuzz.db-wal", "fuzz.db-shm", "fuzz.db-journal"
	};
	char	p[160];
	size_t	i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, files[i]);
		unlink(p);
	}
	rmdir(dir);
}

/* Remove the scratch store at a normal exit. */
static void
fz_cleanup(void)
{
	fz_remove(fz_dir);
}

/*
 * A crash ends the process without atexit handlers, leaving its scratch
 * directory (in memory, under /dev/shm) behind; a long -fork run can
 * crash many times.  Each directory is named after its process, so the
 * next start removes those whose process is gone.
 */
static void
fz_sweep(const char *base)
{
	DIR		*d;
	struct dirent	*de;
	char		 p[160];
	long		 pid;

	if ((d = opendir(base)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (sscanf(de->d_name, "cbfuzz.%ld.", &pid) != 1 ||
		    pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(p, sizeof(p), "%s/%s", base, de->d_name);
		fz_remove(p);
	}
	closedir(d);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct cb_error	 err;
	struct stat	 st;
	const char	*base;
	char		 grant[64], *ov[2];
	int		 rc;

	log_init(LOG_LVL_ERROR, 0);
	base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ?
	    "/dev/shm" : "/tmp";
	fz_sweep(base);
	snprintf(fz_dir, sizeof(fz_dir), "%s/cbfuzz.%ld.XXXXXX", base,
	    (long)getpid());
	if (mkdtemp(fz_dir) == NULL) {
		perror("mkdtemp");
		exit(1);
	}
	snprintf(fz_db, sizeof(fz_db), "%s/fuzz.db", fz_dir);
	atexit(fz_cleanup);

	/* Defaults, every permission for us, the smallest message cap. */
	snprintf(grant, sizeof(grant), "access.grant=uid:%u *",
	    (unsigned)getuid());
	ov[0] = grant;
	ov[1] = "server.max_message_size=4096";
	if (conf_load(&fz_conf, NULL, ov, 2, &err) != 0) {
		fprintf(stderr, "conf_load: %s\n", err.msg);
		exit(1);
	}
	FZ_ASSERT(fz_conf.max_message == FZ_MAX_MESSAGE);

	memset(&fz_b, 0, sizeof(fz_b));
	fz_b.conf = &fz_conf;
	if ((fz_b.key = seal_key_alloc()) == NULL ||
	    seal_key_init(fz_b.key, (const uint8_t *)FZ_KEY, strlen(FZ_KEY), 1,
	    &err) != 0) {
		fprintf(stderr, "master key: %s\n", err.msg);
		exit(1);
	}
	if (store_open(fz_db, &fz_b.store, &err) != 0) {
		fprintf(stderr, "store_open: %s\n", err.msg);
		exit(1);
	}
	if ((rc = uv_loop_init(&fz_loop)) != 0) {
		fprintf(stderr, "uv_loop_init: %s\n", uv_strerror(rc));
		exit(1);
	}
	fz_b.loop = &fz_loop;
	fz_b.started_ms = uv_now(&fz_loop);
	fz_b.started = time(NULL);
	vault_json_setup();
	if (http_init(&fz_loop, &fz_b.http, &err) != 0 ||
	    vault_init(&fz_loop, fz_b.http, &fz_b.vault, &err) != 0) {
		fprintf(stderr, "vault_init: %s\n", err.msg);
		exit(1);
	}
	if (backends_open(&fz_b, &err) != 0) {
		fprintf(stderr, "backends_open: %s\n", err.msg);
		exit(1);
	}

	fz_peer.uid = getuid();
	fz_peer.gid = getgid();
	fz_peer.pid = getpid();
	return 0;
}

/* Back to the state every input starts from. */
static void
fz_reset(void)
{
	struct store_type	*types = NULL;
	struct cb_error		 err;
	size_t			 n = 0, i;

	/* Calls waiting on Vault fail here; its settings go. */
	FZ_ASSERT(vault_configure(fz_b.vault, NULL, &err) == 0);
	fz_settle();
	FZ_ASSERT(store_setting_set(fz_b.store, "vault", NULL, &err) == 0);
	FZ_ASSERT(store_type_list(fz_b.store, &types, &n, &err) == 0);
	for (i = 0; i < n; i++)
		FZ_ASSERT(store_type_delete(fz_b.store, types[i].uuid,
		    &err) == 0);
	store_type_list_free(types, n);
}

/* Dispatch one complete message of n bytes. */
static void
fz_message(struct fz_conn *c, const uint8_t *p, size_t n)
{
	struct rpc_sink		 sink = { &fz_sink_ops, c };
	struct proto_request	 req;
	struct cb_error		 err;
	struct secbuf		 msg = SECBUF_INIT;
	msgpack_unpacked	 up;
	size_t			 off = 0;
	bool			 msgid_ok = false;

	/* A reply is owed when the msgid can be read. */
	msgpack_unpacked_init(&up);
	if (msgpack_unpack_next(&up, (const char *)p, n, &off) ==
	    MSGPACK_UNPACK_SUCCESS && off == n &&
	    (proto_parse_request(&up.data, &req, &msgid_ok, &err) == 0 ||
	    msgid_ok)) {
		FZ_ASSERT(c->nowed < FZ_MAX_MSGS);
		c->owed[c->nowed++] = req.msgid;
	}
	msgpack_unpacked_destroy(&up);
	/* A buffer of exactly this size, which the call keeps. */
	FZ_ASSERT(secbuf_append(&msg, p, n) == 0);
	rpc_dispatch(&fz_b, &sink, &msg);
	FZ_ASSERT(msg.data == NULL && msg.len == 0);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_conn		*c;
	struct proto_scan	 scan;
	size_t			 consumed = 0, avail = 0, step, i;
	uint32_t		 h = 0;
	int			 rc, nmsgs = 0;

	FZ_ASSERT((c = calloc(1, sizeof(*c))) != NULL);
	c->peer = fz_peer;

	/*
	 * Bytes arrive in reads of step bytes (1 to 64, or all at once),
	 * so proto_scan also sees messages split at every place.
	 */
	for (i = 0; i < size; i++)
		h = h * 31 + data[i];
	step = (h & 1) ? size : 1 + (h >> 1) % 64;

	proto_scan_reset(&scan);
	while (!c->closed && avail < size && nmsgs < FZ_MAX_MSGS) {
		avail = size - avail > step ? avail + step : size;
		while (!c->closed && consumed < avail && nmsgs < FZ_MAX_MSGS) {
			rc = proto_scan(&scan, data + consumed,
			    avail - consumed, fz_conf.max_message);
			if (rc == PROTO_SCAN_MORE)
				break;
			if (rc != PROTO_SCAN_DONE) {
				/* Too big, or not msgpack: closed. */
				FZ_ASSERT(rc == PROTO_SCAN_TOOBIG ||
				    rc == PROTO_SCAN_BAD);
				c->closed = true;
				break;
			}
			FZ_ASSERT(scan.off > 0 && scan.off <= avail - consumed);
			FZ_ASSERT(scan.off <= fz_conf.max_message);
			fz_message(c, data + consumed, scan.off);
			nmsgs++;
			consumed += scan.off;
			proto_scan_reset(&scan);
		}
	}

	/* Let calls waiting on Vault finish, then forget this input. */
	fz_settle();
	store_release(fz_b.store);	/* as the server does per iteration */
	fz_reset();
	FZ_ASSERT(c->refs == 0);
	FZ_ASSERT(c->closed || c->nowed == 0);
	free(c);
	return 0;
}

/*
 * Unit tests for daemon/rpc.c: rpc_dispatch and rpc_finish, driven
 * through a fake reply sink (struct rpc_sink) with a real broker behind it
 * (a scratch SQLite store in a mkdtemp() directory, a master key, every
 * permission granted to the test's uid, the HTTP client and Vault from
 * http_init and vault_init), the way tests/fuzz/fuzz_proto.c builds one.
 *
 * Checked: envelope errors (not msgpack-rpc: closed without an answer;
 * a readable msgid: answered bad_request; bytes that are not one whole
 * msgpack object: closed), an unknown method, a caller without the
 * permission, a handler's answer, a waiting call (vault.test) answered
 * late, and one whose connection goes away first (the late reply is wiped
 * and dropped, and the sink is let go exactly once), and that a call keeps
 * its request's bytes while it waits and wipes them when it ends.
 *
 * Request buffers come from the locked pool (secmem_pool_enable), whose
 * freed blocks stay mapped on its free lists, so the test can look at the
 * bytes of a request after its call has freed them: a freed block holds
 * the free list's link in its first bytes, and must hold zeros after it.
 * The check runs as soon as the buffer is freed (when the call lets go of
 * the sink, or when rpc_dispatch returns), before anything can reuse it.
 */
#include <sys/stat.h>

#include <ftw.h>
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
#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "http.h"
#include "log.h"
#include "proto.h"
#include "seal.h"
#include "secbuf.h"
#include "store.h"
#include "vault.h"

#define T_KEY		"Ut7#kQ2!vL9@pX4$wR7^mT1&bN6*cH3%"
#define T_CANARY	"canary-5e1d0c-secret-id"

/* The fake connection behind the sink. */
struct fake {
	struct peer	 peer;
	unsigned	 refs;
	unsigned	 unrefs;
	unsigned	 scrubs;
	bool		 closed;
	unsigned	 nwrites;
	struct secbuf	 last;		/* the last reply written */
	/* The request whose bytes must be wiped when the call lets go. */
	const uint8_t	*req;
	size_t		 reqlen;
	unsigned	 wiped;		/* requests found wiped at unref */
};

static struct broker	 t_b;
static struct conf	 t_conf;
static uv_loop_t	 t_loop;
static char		 t_dir[64];
static char		 t_db[128];

/* Whether the freed request at p (len bytes) holds nothing of what it did. */
static bool
freed_wiped(const uint8_t *p, size_t len)
{
	size_t	i;

	/* The pool's free list link sits in the first bytes. */
	for (i = sizeof(void *); i < len; i++)
		if (p[i] != 0)
			return false;
	return memmem(p, len, T_CANARY, strlen(T_CANARY)) == NULL;
}

static void
fake_write(void *ctx, struct secbuf *buf)
{
	struct fake	*f = ctx;

	assert_false(f->closed);
	assert_true(buf->len > 0);
	secbuf_free(&f->last);
	f->last = *buf;
	*buf = (struct secbuf)SECBUF_INIT;
	f->nwrites++;
}

static void
fake_close(void *ctx)
{
	struct fake	*f = ctx;

	f->closed = true;
}

static void
fake_ref(void *ctx)
{
	struct fake	*f = ctx;

	f->refs++;
}

static void
fake_unref(void *ctx)
{
	struct fake	*f = ctx;

	assert_true(f->refs > 0);
	f->refs--;
	f->unrefs++;
	/* The call has ended: its request was freed just before. */
	if (f->req != NULL && freed_wiped(f->req, f->reqlen))
		f->wiped++;
}

static bool
fake_is_closed(const void *ctx)
{
	const struct fake	*f = ctx;

	return f->closed;
}

static const struct peer *
fake_peer(const void *ctx)
{
	const struct fake	*f = ctx;

	return &f->peer;
}

static void
fake_scrub(void *ctx)
{
	struct fake	*f = ctx;

	f->scrubs++;
}

static const struct rpc_sink_ops fake_ops = {
	.write = fake_write,
	.close = fake_close,
	.ref = fake_ref,
	.unref = fake_unref,
	.is_closed = fake_is_closed,
	.peer = fake_peer,
	.scrub = fake_scrub,
};

/* A request [0, msgid, method, params] in a secbuf; params map or NULL. */
static void
pack_request(struct secbuf *out, uint32_t msgid, const char *method,
    const char *const *kv)
{
	msgpack_packer	pk;
	size_t		n;

	msgpack_packer_init(&pk, out, secbuf_msgpack_write);
	proto_pack_request_head(&pk, msgid, method);
	for (n = 0; kv != NULL && kv[n] != NULL; n += 2)
		;
	msgpack_pack_map(&pk, n / 2);
	for (n = 0; kv != NULL && kv[n] != NULL; n += 2)
		proto_pack_kv_str(&pk, kv[n], kv[n + 1]);
}

/*
 * Dispatch the bytes of msg (which rpc_dispatch takes) from f; when
 * watch, f checks at unref that they were wiped.  Returns whether the
 * bytes, looked at after rpc_dispatch returned, were already wiped.
 */
static bool
dispatch(struct fake *f, struct secbuf *msg, bool watch)
{
	struct rpc_sink	 sink = { &fake_ops, f };
	const uint8_t	*p = msg->data;
	size_t		 len = msg->len;

	if (watch) {
		f->req = p;
		f->reqlen = len;
	}
	rpc_dispatch(&t_b, &sink, msg);
	assert_null(msg->data);
	assert_int_equal(msg->len, 0);
	return freed_wiped(p, len);
}

/* The last reply: its msgid, and its error code (0) or result. */
static int
last_reply(struct fake *f, msgpack_unpacked *up, uint32_t *msgid,
    const msgpack_object **result)
{
	const msgpack_object	*o, *code;
	size_t			 off = 0;

	msgpack_unpacked_init(up);
	assert_int_equal(msgpack_unpack_next(up, (const char *)f->last.data,
	    f->last.len, &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, f->last.len);
	o = &up->data;
	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.size, 4);
	o = o->via.array.ptr;
	assert_int_equal(o[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(o[0].via.u64, CB_MSG_RESPONSE);
	*msgid = (uint32_t)o[1].via.u64;
	*result = &o[3];
	if (o[2].type == MSGPACK_OBJECT_NIL)
		return 0;
	assert_int_equal(o[2].type, MSGPACK_OBJECT_MAP);
	code = proto_map_get(&o[2], "code");
	assert_non_null(code);
	assert_int_equal(code->type, MSGPACK_OBJECT_STR);
	assert_int_equal(o[3].type, MSGPACK_OBJECT_NIL);
	return cb_error_from_name(code->via.str.ptr, code->via.str.size);
}

/* The error code of the last reply, which must answer msgid. */
static int
last_error(struct fake *f, uint32_t want_msgid)
{
	msgpack_unpacked	 up;
	const msgpack_object	*result;
	uint32_t		 msgid;
	int			 code;

	code = last_reply(f, &up, &msgid, &result);
	assert_int_equal(msgid, want_msgid);
	msgpack_unpacked_destroy(&up);
	return code;
}

/* Whether the last reply's bytes contain s. */
static bool
last_contains(const struct fake *f, const char *s)
{
	return memmem(f->last.data, f->last.len, s, strlen(s)) != NULL;
}

static void
fake_init(struct fake *f, uid_t uid)
{
	memset(f, 0, sizeof(*f));
	f->peer.uid = uid;
	f->peer.gid = getgid();
	f->peer.pid = getpid();
}

static void
fake_free(struct fake *f)
{
	assert_int_equal(f->refs, 0);
	secbuf_free(&f->last);
}

/* A message that is not a msgpack-rpc request: closed, not answered. */
static void
test_not_a_request_closes_without_answer(void **state)
{
	struct fake	 f;
	struct secbuf	 msg = SECBUF_INIT;
	msgpack_packer	 pk;

	(void)state;
	fake_init(&f, getuid());
	msgpack_packer_init(&pk, &msg, secbuf_msgpack_write);
	msgpack_pack_map(&pk, 0);
	assert_true(dispatch(&f, &msg, false));
	assert_true(f.closed);
	assert_int_equal(f.nwrites, 0);
	assert_int_equal(f.unrefs, 0);
	fake_free(&f);
}

/* Bytes that are not exactly one msgpack object: closed, not answered. */
static void
test_malformed_message_closes_without_answer(void **state)
{
	static const uint8_t	 truncated[] = { 0x94, 0x00, 0x01 };
	struct fake		 f;
	struct secbuf		 msg = SECBUF_INIT;

	(void)state;
	fake_init(&f, getuid());
	assert_int_equal(secbuf_append(&msg, truncated, sizeof(truncated)),
	    0);
	assert_true(dispatch(&f, &msg, false));
	assert_true(f.closed);
	assert_int_equal(f.nwrites, 0);

	/* Two whole objects in what should be one message. */
	fake_init(&f, getuid());
	pack_request(&msg, 3, "hello", NULL);
	assert_int_equal(secbuf_append(&msg, "\xc0", 1), 0);
	assert_true(dispatch(&f, &msg, false));
	assert_true(f.closed);
	assert_int_equal(f.nwrites, 0);
	fake_free(&f);
}

/* A bad envelope whose msgid can be read is answered bad_request. */
static void
test_bad_envelope_with_msgid_is_answered(void **state)
{
	struct fake	 f;
	struct secbuf	 msg = SECBUF_INIT;
	msgpack_packer	 pk;

	(void)state;
	fake_init(&f, getuid());
	/* [0, 7, 42, {}]: the method is not a string. */
	msgpack_packer_init(&pk, &msg, secbuf_msgpack_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_int(&pk, 0);
	msgpack_pack_uint32(&pk, 7);
	msgpack_pack_int(&pk, 42);
	msgpack_pack_map(&pk, 0);
	assert_true(dispatch(&f, &msg, false));
	assert_false(f.closed);
	assert_int_equal(f.nwrites, 1);
	assert_int_equal(last_error(&f, 7), CB_EBADREQ);

	/* [1, 8, "hello", []]: a response, not a request. */
	msgpack_packer_init(&pk, &msg, secbuf_msgpack_write);
	msgpack_pack_array(&pk, 4);
	msgpack_pack_int(&pk, 1);
	msgpack_pack_uint32(&pk, 8);
	proto_pack_cstr(&pk, "hello");
	msgpack_pack_array(&pk, 0);
	assert_true(dispatch(&f, &msg, false));
	assert_int_equal(f.nwrites, 2);
	assert_int_equal(last_error(&f, 8), CB_EBADREQ);
	assert_int_equal(f.unrefs, 0);
	fake_free(&f);
}

static void
test_unknown_method_is_answered_bad_request(void **state)
{
	struct fake	 f;
	struct secbuf	 msg = SECBUF_INIT;

	(void)state;
	fake_init(&f, getuid());
	pack_request(&msg, 9, "no.such.method", NULL);
	assert_true(dispatch(&f, &msg, false));
	assert_int_equal(f.nwrites, 1);
	assert_int_equal(last_error(&f, 9), CB_EBADREQ);
	assert_true(last_contains(&f, "unknown method 'no.such.method'"));
	assert_int_equal(f.refs, 0);
	fake_free(&f);
}

/* A caller without the method's permission: forbidden, handler not run. */
static void
test_caller_without_permission_is_refused(void **state)
{
	static const char *const kv[] = { "type", "t", "user",
	    "0f5e2a44-5c4b-4e8f-9d1a-2b3c4d5e6f70", "value", T_CANARY, NULL };
	struct fake	 f;
	struct secbuf	 msg = SECBUF_INIT;

	(void)state;
	fake_init(&f, getuid() + 4242);
	pack_request(&msg, 11, "cred.set", kv);
	assert_true(dispatch(&f, &msg, false));
	assert_int_equal(f.nwrites, 1);
	assert_int_equal(last_error(&f, 11), CB_EFORBIDDEN);
	assert_true(last_contains(&f, "needs permission edit:user-credentials"));
	assert_false(last_contains(&f, T_CANARY));
	/* Refused before the handler: the sink was never held. */
	assert_int_equal(f.unrefs, 0);
	fake_free(&f);
}

/* hello: the handler's result goes out, for this caller. */
static void
test_handler_answer_is_written(void **state)
{
	struct fake		 f;
	struct secbuf		 msg = SECBUF_INIT;
	msgpack_unpacked	 up;
	const msgpack_object	*result, *uid, *proto;
	uint32_t		 msgid;

	(void)state;
	fake_init(&f, getuid());
	pack_request(&msg, 12, "hello", NULL);
	assert_true(dispatch(&f, &msg, true));
	assert_int_equal(f.nwrites, 1);
	assert_int_equal(f.unrefs, 1);
	assert_int_equal(f.wiped, 1);
	assert_int_equal(last_reply(&f, &up, &msgid, &result), 0);
	assert_int_equal(msgid, 12);
	assert_int_equal(result->type, MSGPACK_OBJECT_MAP);
	uid = proto_map_get(result, "uid");
	proto = proto_map_get(result, "protocol");
	assert_non_null(uid);
	assert_non_null(proto);
	assert_int_equal(uid->via.u64, getuid());
	assert_int_equal(proto->via.u64, 1);
	msgpack_unpacked_destroy(&up);
	fake_free(&f);
}

/*
 * A request that carries a secret and fails in its handler: the error is
 * answered, the secret is not in it, and the request is wiped when the
 * call ends, which also asks for a stack scrub.
 */
static void
test_secret_request_wiped_when_call_ends(void **state)
{
	static const char *const kv[] = { "type", "no_such_type", "user",
	    "0f5e2a44-5c4b-4e8f-9d1a-2b3c4d5e6f70", "value", T_CANARY, NULL };
	struct fake	 f;
	struct secbuf	 msg = SECBUF_INIT;

	(void)state;
	fake_init(&f, getuid());
	pack_request(&msg, 13, "cred.set", kv);
	assert_non_null(memmem(msg.data, msg.len, T_CANARY,
	    strlen(T_CANARY)));
	assert_true(dispatch(&f, &msg, true));
	assert_int_equal(f.nwrites, 1);
	assert_int_equal(last_error(&f, 13), CB_ENOTFOUND);
	assert_false(last_contains(&f, T_CANARY));
	assert_int_equal(f.wiped, 1);
	assert_int_equal(f.scrubs, 1);
	fake_free(&f);
}

/* vault.test with a secret_id, towards a port that is not Vault. */
static void
dispatch_vault_test(struct fake *f, uint32_t msgid, uint8_t **copy,
    size_t *len)
{
	static const char *const kv[] = { "url", "http://127.0.0.1:9",
	    "path", "secret/data/cb", "role_id", "role", "secret_id",
	    T_CANARY, NULL };
	struct secbuf	 msg = SECBUF_INIT;
	const uint8_t	*p;

	pack_request(&msg, msgid, "vault.test", kv);
	assert_non_null(*copy = malloc(msg.len));
	memcpy(*copy, msg.data, msg.len);
	*len = msg.len;
	p = msg.data;
	assert_false(dispatch(f, &msg, true));
	/* It waits, holding the sink, and its request is still whole. */
	assert_int_equal(f->refs, 1);
	assert_int_equal(f->nwrites, 0);
	assert_memory_equal(p, *copy, *len);
}

/* A waiting call answers later, once; its request is wiped then. */
static void
test_waiting_call_answers_late_and_wipes_request(void **state)
{
	struct fake		 f;
	msgpack_unpacked	 up;
	const msgpack_object	*result, *ok;
	uint8_t			*copy;
	size_t			 len;
	uint32_t		 msgid;

	(void)state;
	fake_init(&f, getuid());
	dispatch_vault_test(&f, 21, &copy, &len);
	/* Ends every connection test now, as at shutdown. */
	vault_test_abort_all(t_b.http);
	assert_int_equal(f.refs, 0);
	assert_int_equal(f.unrefs, 1);
	assert_int_equal(f.wiped, 1);
	assert_int_equal(f.nwrites, 1);
	assert_int_equal(last_reply(&f, &up, &msgid, &result), 0);
	assert_int_equal(msgid, 21);
	ok = proto_map_get(result, "ok");
	assert_non_null(ok);
	assert_int_equal(ok->type, MSGPACK_OBJECT_BOOLEAN);
	assert_false(ok->via.boolean);
	assert_false(last_contains(&f, T_CANARY));
	msgpack_unpacked_destroy(&up);
	free(copy);
	fake_free(&f);
}

/*
 * The connection goes away while its call waits: the late reply is wiped
 * and dropped, never written, the sink is let go once, and the request is
 * wiped.
 */
static void
test_waiting_call_whose_connection_goes_away_drops_reply(void **state)
{
	struct fake	 f;
	uint8_t		*copy;
	size_t		 len;

	(void)state;
	fake_init(&f, getuid());
	dispatch_vault_test(&f, 22, &copy, &len);
	f.closed = true;
	vault_test_abort_all(t_b.http);
	assert_int_equal(f.refs, 0);
	assert_int_equal(f.unrefs, 1);
	assert_int_equal(f.nwrites, 0);
	assert_int_equal(f.wiped, 1);
	free(copy);
	fake_free(&f);
}

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* The broker: conf with every permission for us, store, key, Vault. */
static int
group_setup(void **state)
{
	struct cb_error	 err;
	char		 grant[64], *ov[1];

	(void)state;
	log_init(LOG_LVL_ERROR, 0);
	secmem_pool_enable();
	snprintf(t_dir, sizeof(t_dir), "/tmp/test_rpc.XXXXXX");
	if (mkdtemp(t_dir) == NULL)
		return -1;
	snprintf(t_db, sizeof(t_db), "%s/rpc.db", t_dir);
	snprintf(grant, sizeof(grant), "access.grant=uid:%u *",
	    (unsigned)getuid());
	ov[0] = grant;
	cb_error_clear(&err);
	if (conf_load(&t_conf, NULL, ov, 1, &err) != 0) {
		print_error("conf_load: %s\n", err.msg);
		return -1;
	}
	t_b.conf = &t_conf;
	if ((t_b.key = seal_key_alloc()) == NULL ||
	    seal_key_init(t_b.key, (const uint8_t *)T_KEY, strlen(T_KEY), 1,
	    &err) != 0 ||
	    store_open(t_db, &t_b.store, &err) != 0 ||
	    uv_loop_init(&t_loop) != 0) {
		print_error("broker: %s\n", err.msg);
		return -1;
	}
	t_b.loop = &t_loop;
	t_b.started_ms = uv_now(&t_loop);
	t_b.started = time(NULL);
	vault_json_setup();	/* as main.c does */
	if (http_init(&t_loop, &t_b.http, &err) != 0 ||
	    vault_init(&t_loop, t_b.http, &t_b.vault, &err) != 0) {
		print_error("vault: %s\n", err.msg);
		return -1;
	}
	return 0;
}

static int
group_teardown(void **state)
{
	int	i;

	(void)state;
	vault_close(t_b.vault);
	/* Let the connection tests' reapers and Vault's handles close. */
	for (i = 0; i < 1000 && uv_loop_alive(&t_loop); i++)
		uv_run(&t_loop, UV_RUN_NOWAIT);
	http_close(t_b.http);
	for (i = 0; i < 1000 && uv_loop_alive(&t_loop); i++)
		uv_run(&t_loop, UV_RUN_NOWAIT);
	store_release(t_b.store);
	store_close(t_b.store);
	seal_key_free(t_b.key);
	conf_free(&t_conf);
	uv_loop_close(&t_loop);
	nftw(t_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/*
 * The audit line's sources: each type and source once, in the order
 * first seen, items that could forge a field left out, and only whole
 * items: one that does not fit is dropped, never cut.
 */
static void
test_audit_sources_listed_once_and_whole(void **state)
{
	struct rpc_call	*call;
	char		 acct[65];
	size_t		 n;

	(void)state;
	assert_non_null(call = calloc(1, sizeof(*call)));
	rpc_audit_source(call, "gh", "own", NULL);
	rpc_audit_source(call, "gh", "own", NULL);
	rpc_audit_source(call, "gl", "linked", "svc");
	rpc_audit_source(call, "gh", "own", NULL);
	rpc_audit_source(call, "gl", "linked", "svc");
	rpc_audit_source(call, "gl", "default", "svc");
	assert_string_equal(call->audit_sources,
	    "gh/own,gl/linked/svc,gl/default/svc");
	/* A prefix or an extension of a listed item is another item. */
	rpc_audit_source(call, "g", "own", NULL);
	rpc_audit_source(call, "gl", "linked", "sv");
	rpc_audit_source(call, "gh", "linked", "svc_b");
	assert_string_equal(call->audit_sources, "gh/own,gl/linked/svc,"
	    "gl/default/svc,g/own,gl/linked/sv,gh/linked/svc_b");
	/* Not an ident, not an account name: not recorded. */
	rpc_audit_source(call, "g h", "own", NULL);
	rpc_audit_source(call, "gh", "linked", "a,b");
	rpc_audit_source(call, "gh", "linked", "A");
	assert_string_equal(call->audit_sources, "gh/own,gl/linked/svc,"
	    "gl/default/svc,g/own,gl/linked/sv,gh/linked/svc_b");

	/* Fill the list with long items until one no longer fits. */
	memset(call->audit_sources, 0, sizeof(call->audit_sources));
	memset(acct, 'a', sizeof(acct) - 1);
	acct[sizeof(acct) - 1] = '\0';
	for (n = 0; n < 26; n++) {
		acct[0] = (char)('a' + n);
		rpc_audit_source(call, "gh", "linked", acct);
	}
	n = strlen(call->audit_sources);
	assert_true(n < sizeof(call->audit_sources));
	/* Every item is whole: "gh/linked/" and 64 characters. */
	assert_int_equal((n + 1) % (strlen("gh/linked/") + 64 + 1), 0);
	assert_int_equal(call->audit_sources[n - 65], '/');
	free(call);
}

/*
 * The subject and types of the audit line: every byte but a letter, a
 * digit, '_', '-' and '.' becomes '?', so that nothing a caller sends can
 * forge a field; a subject replaces the last, types are listed.
 */
static void
test_audit_subject_and_types_keep_only_safe_bytes(void **state)
{
	struct rpc_call	*call;
	char		 in[33], want[33];
	int		 c, i, base;

	(void)state;
	assert_non_null(call = calloc(1, sizeof(*call)));
	for (base = 1; base < 256; base += 32) {
		for (i = 0; i < 32; i++) {
			c = base + i < 256 ? base + i : 'x';
			in[i] = (char)c;
			want[i] = ((c >= 'a' && c <= 'z') ||
			    (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
			    c == '_' || c == '-' || c == '.') ? (char)c : '?';
		}
		in[32] = want[32] = '\0';
		rpc_audit(call, NULL, in);
		assert_string_equal(call->audit_subject, want);
		call->audit_types[0] = '\0';
		rpc_audit(call, in, NULL);
		assert_string_equal(call->audit_types, want);
	}
	rpc_audit(call, "gh", "u-1");
	assert_string_equal(call->audit_subject, "u-1");
	assert_string_equal(call->audit_types + strlen(want), ",gh");
	free(call);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_not_a_request_closes_without_answer),
		cmocka_unit_test(
		    test_audit_subject_and_types_keep_only_safe_bytes),
		cmocka_unit_test(test_malformed_message_closes_without_answer),
		cmocka_unit_test(test_bad_envelope_with_msgid_is_answered),
		cmocka_unit_test(test_unknown_method_is_answered_bad_request),
		cmocka_unit_test(test_caller_without_permission_is_refused),
		cmocka_unit_test(test_handler_answer_is_written),
		cmocka_unit_test(test_secret_request_wiped_when_call_ends),
		cmocka_unit_test(
		    test_waiting_call_answers_late_and_wipes_request),
		cmocka_unit_test(
		    test_waiting_call_whose_connection_goes_away_drops_reply),
		cmocka_unit_test(test_audit_sources_listed_once_and_whole),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}

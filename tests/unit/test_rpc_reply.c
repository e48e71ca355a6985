/*
 * Unit tests for the replies of daemon/rpc.c: a result that cannot be
 * packed whole (memory runs out while the handler packs it) is answered
 * with an "internal" error, never sent short.  The caller is a fake reply
 * sink that keeps what would be sent; the allocation failure comes from
 * secbuf's test hook.
 */
#include <sys/stat.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <msgpack.h>
#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "proto.h"
#include "secbuf.h"
#include "store.h"

#define NTYPES		8
#define MSGID		77

struct conn {
	struct peer	 peer;
	struct secbuf	 sent;		/* every reply written, in order */
	int		 nwrites;
	int		 refs;
	bool		 closed;
};

struct fixture {
	char		 dir[64];
	char		 db[128];
	struct conf	 conf;
	struct broker	 b;
	uv_loop_t	 loop;
	struct conn	 c;
};

/* --- the reply sink, instead of server.c --- */

static void
fake_write(void *ctx, struct secbuf *buf)
{
	struct conn	*c = ctx;

	if (!c->closed) {
		assert_int_equal(secbuf_append(&c->sent, buf->data, buf->len),
		    0);
		c->nwrites++;
	}
	secbuf_free(buf);
}

static void
fake_close(void *ctx)
{
	struct conn	*c = ctx;

	c->closed = true;
}

static void
fake_ref(void *ctx)
{
	struct conn	*c = ctx;

	c->refs++;
}

static void
fake_unref(void *ctx)
{
	struct conn	*c = ctx;

	assert_true(c->refs > 0);
	c->refs--;
}

static bool
fake_is_closed(const void *ctx)
{
	const struct conn	*c = ctx;

	return c->closed;
}

static const struct peer *
fake_peer(const void *ctx)
{
	const struct conn	*c = ctx;

	return &c->peer;
}

static void
fake_scrub(void *ctx)
{
	(void)ctx;
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

/* --- fixture --- */

static int
setup(void **state)
{
	struct fixture		*f;
	struct store_type	 t;
	struct cb_error		 err;
	char			 grant[64], ident[16], uuid[STORE_UUID_LEN + 1];
	char			*ov[1];
	char			 desc[100];
	int			 i;

	log_init(LOG_LVL_ERROR, 0);
	assert_non_null(f = calloc(1, sizeof(*f)));
	snprintf(f->dir, sizeof(f->dir), "/tmp/cbrpc.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/test.db", f->dir);
	snprintf(grant, sizeof(grant), "access.grant=uid:%u *",
	    (unsigned)getuid());
	ov[0] = grant;
	assert_int_equal(conf_load(&f->conf, NULL, ov, 1, &err), 0);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	f->b.conf = &f->conf;
	f->b.loop = &f->loop;
	assert_int_equal(store_open(f->db, &f->b.store, &err), 0);
	/* Enough types that the listing outgrows the first reply block. */
	memset(desc, 'd', sizeof(desc) - 1);
	desc[sizeof(desc) - 1] = '\0';
	for (i = 0; i < NTYPES; i++) {
		memset(&t, 0, sizeof(t));
		snprintf(uuid, sizeof(uuid),
		    "00000000-0000-4000-8000-%012d", i);
		snprintf(ident, sizeof(ident), "type%d", i);
		memcpy(t.uuid, uuid, sizeof(t.uuid));
		memcpy(t.ident, ident, strlen(ident) + 1);
		t.name = ident;
		t.description = desc;
		t.storage = STORE_DB;
		t.created_at = t.updated_at = 1000;
		assert_int_equal(store_type_create(f->b.store, &t, &err), 0);
	}
	f->c.peer.uid = getuid();
	f->c.peer.gid = getgid();
	f->c.peer.pid = getpid();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;
	char		 p[160];

	secmem_set_fail_hook(NULL);
	store_close(f->b.store);
	(void)uv_loop_close(&f->loop);
	conf_free(&f->conf);
	secbuf_free(&f->c.sent);
	snprintf(p, sizeof(p), "%s-wal", f->db);
	(void)unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->db);
	(void)unlink(p);
	(void)unlink(f->db);
	(void)rmdir(f->dir);
	free(f);
	return 0;
}

/* Dispatch [0, MSGID, method, [{}]] from the fake sink. */
static void
dispatch(struct fixture *f, const char *method)
{
	struct rpc_sink	 sink = { &fake_ops, &f->c };
	struct secbuf	 msg = SECBUF_INIT;
	msgpack_packer	 pk;

	msgpack_packer_init(&pk, &msg, secbuf_msgpack_write);
	proto_pack_request_head(&pk, MSGID, method);
	msgpack_pack_map(&pk, 0);
	assert_false(secbuf_failed(&msg));
	rpc_dispatch(&f->b, &sink, &msg);
	secbuf_free(&msg);
}

/*
 * The one message sent: a whole response to MSGID that takes every byte
 * written (nothing missing, nothing left over).  Returns its error (nil
 * or a map) and result in *errp and *resp, pointing into up.
 */
static void
sent_reply(struct fixture *f, msgpack_unpacked *up,
    const msgpack_object **errp, const msgpack_object **resp)
{
	const msgpack_object	*a;
	size_t			 off = 0;

	assert_int_equal(f->c.nwrites, 1);
	assert_int_equal(f->c.refs, 0);
	assert_int_equal(msgpack_unpack_next(up, (const char *)f->c.sent.data,
	    f->c.sent.len, &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, f->c.sent.len);
	assert_int_equal(up->data.type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(up->data.via.array.size, 4);
	a = up->data.via.array.ptr;
	assert_int_equal(a[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(a[0].via.u64, 1);
	assert_int_equal(a[1].via.u64, MSGID);
	*errp = &a[2];
	*resp = &a[3];
}

/* Refuse every allocation beyond the reply's first block. */
static bool
fail_growth(size_t n)
{
	return n > 256;
}

static void
test_listing_is_sent_whole(void **state)
{
	struct fixture		*f = *state;
	msgpack_unpacked	 up;
	const msgpack_object	*e, *r;

	dispatch(f, "type.list");
	msgpack_unpacked_init(&up);
	sent_reply(f, &up, &e, &r);
	assert_int_equal(e->type, MSGPACK_OBJECT_NIL);
	/* It did outgrow the first block. */
	assert_true(f->c.sent.len > 256);
	assert_int_equal(r->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(r->via.array.size, NTYPES);
	msgpack_unpacked_destroy(&up);
}

static void
test_reply_that_cannot_be_packed_is_an_internal_error(void **state)
{
	struct fixture		*f = *state;
	msgpack_unpacked	 up;
	const msgpack_object	*e, *r, *code;

	secmem_set_fail_hook(fail_growth);
	dispatch(f, "type.list");
	secmem_set_fail_hook(NULL);
	assert_false(f->c.closed);
	msgpack_unpacked_init(&up);
	sent_reply(f, &up, &e, &r);
	assert_int_equal(e->type, MSGPACK_OBJECT_MAP);
	assert_non_null(code = proto_map_get(e, "code"));
	assert_int_equal(code->type, MSGPACK_OBJECT_STR);
	assert_int_equal(code->via.str.size, strlen("internal"));
	assert_memory_equal(code->via.str.ptr, "internal", code->via.str.size);
	assert_int_equal(r->type, MSGPACK_OBJECT_NIL);
	msgpack_unpacked_destroy(&up);
}

static void
test_connection_still_answers_after_a_failed_pack(void **state)
{
	struct fixture		*f = *state;
	msgpack_unpacked	 up;
	const msgpack_object	*e, *r;

	secmem_set_fail_hook(fail_growth);
	dispatch(f, "type.list");
	secmem_set_fail_hook(NULL);
	secbuf_reset(&f->c.sent);
	f->c.nwrites = 0;
	dispatch(f, "type.list");
	msgpack_unpacked_init(&up);
	sent_reply(f, &up, &e, &r);
	assert_int_equal(e->type, MSGPACK_OBJECT_NIL);
	assert_int_equal(r->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(r->via.array.size, NTYPES);
	msgpack_unpacked_destroy(&up);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_listing_is_sent_whole,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reply_that_cannot_be_packed_is_an_internal_error,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_connection_still_answers_after_a_failed_pack,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

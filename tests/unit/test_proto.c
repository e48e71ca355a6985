/*
 * Unit tests for proto/proto.c and proto/secbuf.c: the incremental framing
 * scanner (every msgpack format, byte-at-a-time feeding, back-to-back
 * objects, size limits, and a seeded random cross-check against
 * msgpack-c's own msgpack_unpack_next), request envelope parsing, response
 * packing, the typed parameter readers, the method/permission/error tables
 * generated from the .def files, and the wiping buffer type.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <msgpack.h>

#include "cb_error.h"
#include "proto.h"
#include "secbuf.h"

#define MIB		(1024 * 1024)

/* Payload bytes for str/bin/ext bodies (filled with a pattern at start). */
static char filler[70000];

/* Fresh scanner over the whole buffer. */
static int
scan_once(const void *buf, size_t len, size_t max, size_t *off)
{
	struct proto_scan	s;
	int			rc;

	proto_scan_reset(&s);
	rc = proto_scan(&s, buf, len, max);
	if (off != NULL)
		*off = s.off;
	return rc;
}

/*
 * Feed buf to one scanner with a growing length, as a peer sending one
 * byte at a time would.  Returns the first result that is not MORE (or
 * MORE if the whole buffer never completes) and the length at which it
 * came in *at.
 */
static int
scan_bytewise(const void *buf, size_t len, size_t max, size_t *off, size_t *at)
{
	struct proto_scan	s;
	size_t			i;
	int			rc = PROTO_SCAN_MORE;

	proto_scan_reset(&s);
	for (i = 0; i <= len; i++) {
		rc = proto_scan(&s, buf, i, max);
		if (rc != PROTO_SCAN_MORE)
			break;
	}
	*off = s.off;
	*at = i;
	return rc;
}

/* Unpack exactly len bytes with msgpack-c; returns its result and *off. */
static msgpack_unpack_return
mp_unpack(msgpack_unpacked *up, const void *buf, size_t len, size_t *off)
{
	*off = 0;
	return msgpack_unpack_next(up, buf, len, off);
}

/*
 * One msgpack value per case, packed with msgpack-c.  Returns false past
 * the last case; *first is the format byte the case is meant to exercise
 * (checked, so that a change in msgpack-c's choices cannot silently drop
 * a format from the test).
 */
static bool
pack_case(msgpack_packer *pk, int i, uint8_t *first)
{
	msgpack_timestamp	ts;
	int			j;

	switch (i) {
	case 0: msgpack_pack_uint8(pk, 0); *first = 0x00; break;
	case 1: msgpack_pack_int(pk, 127); *first = 0x7f; break;
	case 2: msgpack_pack_int(pk, -1); *first = 0xff; break;
	case 3: msgpack_pack_int(pk, -32); *first = 0xe0; break;
	case 4: msgpack_pack_fix_uint8(pk, 200); *first = 0xcc; break;
	case 5: msgpack_pack_fix_uint16(pk, 65535); *first = 0xcd; break;
	case 6: msgpack_pack_fix_uint32(pk, 4000000000u); *first = 0xce; break;
	case 7: msgpack_pack_fix_uint64(pk, UINT64_MAX); *first = 0xcf; break;
	case 8: msgpack_pack_fix_int8(pk, -100); *first = 0xd0; break;
	case 9: msgpack_pack_fix_int16(pk, -30000); *first = 0xd1; break;
	case 10: msgpack_pack_fix_int32(pk, INT32_MIN); *first = 0xd2; break;
	case 11: msgpack_pack_fix_int64(pk, INT64_MIN); *first = 0xd3; break;
	case 12: msgpack_pack_int64(pk, -33); *first = 0xd0; break;
	case 13: msgpack_pack_uint64(pk, 70000); *first = 0xce; break;
	case 14: msgpack_pack_float(pk, 1.5f); *first = 0xca; break;
	case 15: msgpack_pack_double(pk, -2.25); *first = 0xcb; break;
	case 16: msgpack_pack_nil(pk); *first = 0xc0; break;
	case 17: msgpack_pack_true(pk); *first = 0xc3; break;
	case 18: msgpack_pack_false(pk); *first = 0xc2; break;
	case 19: msgpack_pack_str_with_body(pk, "", 0); *first = 0xa0; break;
	case 20: msgpack_pack_str_with_body(pk, filler, 31); *first = 0xbf; break;
	case 21: msgpack_pack_str_with_body(pk, filler, 32); *first = 0xd9; break;
	case 22: msgpack_pack_str_with_body(pk, filler, 255); *first = 0xd9; break;
	case 23: msgpack_pack_str_with_body(pk, filler, 256); *first = 0xda; break;
	case 24: msgpack_pack_str_with_body(pk, filler, 65535); *first = 0xda; break;
	case 25: msgpack_pack_str_with_body(pk, filler, 65536); *first = 0xdb; break;
	case 26: msgpack_pack_bin_with_body(pk, filler, 0); *first = 0xc4; break;
	case 27: msgpack_pack_bin_with_body(pk, filler, 255); *first = 0xc4; break;
	case 28: msgpack_pack_bin_with_body(pk, filler, 256); *first = 0xc5; break;
	case 29: msgpack_pack_bin_with_body(pk, filler, 65535); *first = 0xc5; break;
	case 30: msgpack_pack_bin_with_body(pk, filler, 65536); *first = 0xc6; break;
	case 31: msgpack_pack_ext_with_body(pk, filler, 1, 5); *first = 0xd4; break;
	case 32: msgpack_pack_ext_with_body(pk, filler, 2, -5); *first = 0xd5; break;
	case 33: msgpack_pack_ext_with_body(pk, filler, 4, 0); *first = 0xd6; break;
	case 34: msgpack_pack_ext_with_body(pk, filler, 8, 127); *first = 0xd7; break;
	case 35: msgpack_pack_ext_with_body(pk, filler, 16, -128); *first = 0xd8; break;
	case 36: msgpack_pack_ext_with_body(pk, filler, 0, 1); *first = 0xc7; break;
	case 37: msgpack_pack_ext_with_body(pk, filler, 3, 1); *first = 0xc7; break;
	case 38: msgpack_pack_ext_with_body(pk, filler, 255, 1); *first = 0xc7; break;
	case 39: msgpack_pack_ext_with_body(pk, filler, 256, 1); *first = 0xc8; break;
	case 40: msgpack_pack_ext_with_body(pk, filler, 65535, 1); *first = 0xc8; break;
	case 41: msgpack_pack_ext_with_body(pk, filler, 65536, 1); *first = 0xc9; break;
	case 42:
		ts.tv_sec = 1700000000; ts.tv_nsec = 0;
		msgpack_pack_timestamp(pk, &ts); *first = 0xd6; break;
	case 43:
		ts.tv_sec = 1700000000; ts.tv_nsec = 5;
		msgpack_pack_timestamp(pk, &ts); *first = 0xd7; break;
	case 44:
		ts.tv_sec = -1; ts.tv_nsec = 5;
		msgpack_pack_timestamp(pk, &ts); *first = 0xc7; break;
	case 45: msgpack_pack_array(pk, 0); *first = 0x90; break;
	case 46:
		msgpack_pack_array(pk, 15);
		for (j = 0; j < 15; j++)
			msgpack_pack_int(pk, j);
		*first = 0x9f; break;
	case 47:
		msgpack_pack_array(pk, 16);
		for (j = 0; j < 16; j++)
			msgpack_pack_nil(pk);
		*first = 0xdc; break;
	case 48:
		msgpack_pack_array(pk, 65535);
		for (j = 0; j < 65535; j++)
			msgpack_pack_nil(pk);
		*first = 0xdc; break;
	case 49:
		msgpack_pack_array(pk, 65536);
		for (j = 0; j < 65536; j++)
			msgpack_pack_true(pk);
		*first = 0xdd; break;
	case 50: msgpack_pack_map(pk, 0); *first = 0x80; break;
	case 51:
		msgpack_pack_map(pk, 15);
		for (j = 0; j < 15; j++) {
			msgpack_pack_int(pk, j);
			msgpack_pack_nil(pk);
		}
		*first = 0x8f; break;
	case 52:
		msgpack_pack_map(pk, 16);
		for (j = 0; j < 16; j++) {
			msgpack_pack_int(pk, j);
			msgpack_pack_str_with_body(pk, "v", 1);
		}
		*first = 0xde; break;
	case 53:
		msgpack_pack_map(pk, 65536);
		for (j = 0; j < 65536; j++) {
			msgpack_pack_int(pk, j);
			msgpack_pack_false(pk);
		}
		*first = 0xdf; break;
	case 54:
		/* {"a": [1, -1, 3.5, nil, true, "x", bin, ext, {}, []]} */
		msgpack_pack_map(pk, 2);
		msgpack_pack_str_with_body(pk, "a", 1);
		msgpack_pack_array(pk, 10);
		msgpack_pack_int(pk, 1);
		msgpack_pack_int(pk, -1);
		msgpack_pack_double(pk, 3.5);
		msgpack_pack_nil(pk);
		msgpack_pack_true(pk);
		msgpack_pack_str_with_body(pk, "x", 1);
		msgpack_pack_bin_with_body(pk, filler, 300);
		msgpack_pack_ext_with_body(pk, filler, 7, 3);
		msgpack_pack_map(pk, 0);
		msgpack_pack_array(pk, 0);
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 1);
		msgpack_pack_str_with_body(pk, filler, 40);
		msgpack_pack_array(pk, 2);
		msgpack_pack_fix_uint64(pk, 1);
		msgpack_pack_map(pk, 1);
		msgpack_pack_nil(pk);
		msgpack_pack_str_with_body(pk, filler, 300);
		msgpack_pack_nil(pk);
		*first = 0x82; break;
	case 55:
		/* A request envelope, as a client sends it. */
		proto_pack_request_head(pk, 42, "type.create");
		msgpack_pack_map(pk, 2);
		proto_pack_kv_str(pk, "ident", "github");
		proto_pack_kv_str(pk, "storage", "db");
		*first = 0x94; break;
	case 56:
		/* 32 nested one-element arrays: as deep as msgpack-c goes. */
		for (j = 0; j < 32; j++)
			msgpack_pack_array(pk, 1);
		msgpack_pack_nil(pk);
		*first = 0x91; break;
	case 57:
		/* A map whose keys are containers. */
		msgpack_pack_map(pk, 2);
		msgpack_pack_array(pk, 2);
		msgpack_pack_int(pk, 1);
		msgpack_pack_int(pk, 2);
		msgpack_pack_map(pk, 1);
		msgpack_pack_nil(pk);
		msgpack_pack_nil(pk);
		msgpack_pack_map(pk, 0);
		msgpack_pack_ext_with_body(pk, filler, 16, 9);
		*first = 0x82; break;
	default:
		return false;
	}
	return true;
}

/* Pack case i into sb (cleared first). */
static void
pack_one(msgpack_sbuffer *sb, int i)
{
	msgpack_packer	pk;
	uint8_t		first = 0;

	msgpack_sbuffer_clear(sb);
	msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
	assert_true(pack_case(&pk, i, &first));
	assert_true(sb->size > 0);
	if ((uint8_t)sb->data[0] != first)
		fail_msg("case %d: first byte 0x%02x, expected 0x%02x", i,
		    (uint8_t)sb->data[0], first);
}

static int
count_cases(void)
{
	msgpack_sbuffer	sb;
	msgpack_packer	pk;
	uint8_t		first;
	int		n = 0;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	while (pack_case(&pk, n, &first))
		n++;
	msgpack_sbuffer_destroy(&sb);
	return n;
}

/* Every format: one call over the whole object gives DONE and its length. */
static void
test_scan_every_format_whole(void **state)
{
	msgpack_sbuffer		sb;
	msgpack_unpacked	up;
	size_t			off, uoff;
	int			i, n = count_cases();

	(void)state;
	assert_int_equal(n, 58);
	msgpack_sbuffer_init(&sb);
	msgpack_unpacked_init(&up);
	for (i = 0; i < n; i++) {
		pack_one(&sb, i);
		if (scan_once(sb.data, sb.size, CB_DEFAULT_MAX_MESSAGE, &off) !=
		    PROTO_SCAN_DONE || off != sb.size)
			fail_msg("case %d: not DONE at %zu (off %zu)", i,
			    sb.size, off);
		/* msgpack-c agrees on the object and its length. */
		assert_int_equal(mp_unpack(&up, sb.data, sb.size, &uoff),
		    MSGPACK_UNPACK_SUCCESS);
		assert_int_equal(uoff, sb.size);
		/* A limit of exactly the length is fine, one less is not. */
		assert_int_equal(scan_once(sb.data, sb.size, sb.size, &off),
		    PROTO_SCAN_DONE);
		assert_int_equal(off, sb.size);
		if (scan_once(sb.data, sb.size, sb.size - 1, NULL) !=
		    PROTO_SCAN_TOOBIG)
			fail_msg("case %d: max %zu not TOOBIG", i, sb.size - 1);
	}
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

/* Every format fed one byte at a time: MORE until the last byte. */
static void
test_scan_every_format_bytewise(void **state)
{
	msgpack_sbuffer	sb;
	size_t		off, at;
	int		i, n = count_cases(), rc;

	(void)state;
	msgpack_sbuffer_init(&sb);
	for (i = 0; i < n; i++) {
		pack_one(&sb, i);
		rc = scan_bytewise(sb.data, sb.size, CB_DEFAULT_MAX_MESSAGE,
		    &off, &at);
		if (rc != PROTO_SCAN_DONE || at != sb.size || off != sb.size)
			fail_msg("case %d: rc %d at %zu off %zu, size %zu", i,
			    rc, at, off, sb.size);
	}
	msgpack_sbuffer_destroy(&sb);
}

/* Two objects back to back: DONE stops at the first; then the second. */
static void
test_scan_back_to_back(void **state)
{
	msgpack_sbuffer	a, b;
	uint8_t		*cat;
	size_t		off, at;
	int		i, n = count_cases(), rc;

	(void)state;
	msgpack_sbuffer_init(&a);
	msgpack_sbuffer_init(&b);
	for (i = 0; i < n; i++) {
		pack_one(&a, i);
		pack_one(&b, (i + 7) % n);
		cat = malloc(a.size + b.size);
		assert_non_null(cat);
		memcpy(cat, a.data, a.size);
		memcpy(cat + a.size, b.data, b.size);

		rc = scan_once(cat, a.size + b.size, CB_DEFAULT_MAX_MESSAGE,
		    &off);
		assert_int_equal(rc, PROTO_SCAN_DONE);
		assert_int_equal(off, a.size);
		rc = scan_once(cat + a.size, b.size, CB_DEFAULT_MAX_MESSAGE,
		    &off);
		assert_int_equal(rc, PROTO_SCAN_DONE);
		assert_int_equal(off, b.size);

		/* Byte at a time over both: done exactly at the first's end. */
		rc = scan_bytewise(cat, a.size + b.size, CB_DEFAULT_MAX_MESSAGE,
		    &off, &at);
		assert_int_equal(rc, PROTO_SCAN_DONE);
		assert_int_equal(at, a.size);
		assert_int_equal(off, a.size);
		free(cat);
	}
	msgpack_sbuffer_destroy(&a);
	msgpack_sbuffer_destroy(&b);
}

/* After DONE, calling again without a reset keeps saying DONE, same off. */
static void
test_scan_done_is_sticky(void **state)
{
	static const uint8_t	buf[] = { 0x92, 0x01, 0xa1, 'x', 0xc0, 0xc0 };
	struct proto_scan	s;

	(void)state;
	proto_scan_reset(&s);
	assert_int_equal(proto_scan(&s, buf, 0, 100), PROTO_SCAN_MORE);
	assert_int_equal(s.off, 0);
	assert_int_equal(proto_scan(&s, buf, 3, 100), PROTO_SCAN_MORE);
	assert_int_equal(s.off, 2);	/* the fixint is behind it */
	assert_int_equal(proto_scan(&s, buf, 4, 100), PROTO_SCAN_DONE);
	assert_int_equal(s.off, 4);
	assert_int_equal(s.need, 0);
	assert_int_equal(proto_scan(&s, buf, sizeof(buf), 100),
	    PROTO_SCAN_DONE);
	assert_int_equal(s.off, 4);
	proto_scan_reset(&s);
	assert_int_equal(s.off, 0);
	assert_int_equal(s.need, 1);
	assert_int_equal(proto_scan(&s, buf + 4, 2, 100), PROTO_SCAN_DONE);
	assert_int_equal(s.off, 1);
}

/* 0xc1 is never used: BAD at once, wherever it appears. */
static void
test_scan_bad_c1(void **state)
{
	static const uint8_t	lone[] = { 0xc1 };
	static const uint8_t	in_array[] = { 0x92, 0x01, 0xc1 };
	static const uint8_t	as_key[] = { 0x81, 0xc1, 0x01 };
	static const uint8_t	after_str[] = { 0x92, 0xa2, 'h', 'i', 0xc1,
	    0x00 };
	size_t			off, at;

	(void)state;
	assert_int_equal(scan_once(lone, 1, MIB, NULL), PROTO_SCAN_BAD);
	assert_int_equal(scan_once(in_array, 3, MIB, NULL), PROTO_SCAN_BAD);
	assert_int_equal(scan_once(in_array, 2, MIB, NULL), PROTO_SCAN_MORE);
	assert_int_equal(scan_once(as_key, 3, MIB, NULL), PROTO_SCAN_BAD);
	assert_int_equal(scan_bytewise(after_str, sizeof(after_str), MIB, &off,
	    &at), PROTO_SCAN_BAD);
	assert_int_equal(at, 5);
	/* A complete object before the 0xc1 is still DONE. */
	assert_int_equal(scan_once("\x01\xc1", 2, MIB, &off), PROTO_SCAN_DONE);
	assert_int_equal(off, 1);
}

/* Declared lengths beyond max are refused from the header alone. */
static void
test_scan_toobig_from_header(void **state)
{
	static const uint8_t	str32[] = { 0xdb, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t	bin32[] = { 0xc6, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t	ext32[] = { 0xc9, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t	arr32[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t	map32[] = { 0xdf, 0x80, 0x00, 0x00, 0x00 };
	static const uint8_t	map32b[] = { 0xdf, 0x00, 0x08, 0x00, 0x01 };
	static const uint8_t	str16[] = { 0xda, 0x01, 0x00 };
	static const uint8_t	arr16[] = { 0xdc, 0x00, 0x65 };
	static const uint8_t	nested[] = { 0x91, 0x91, 0xdb, 0x00, 0x0f,
	    0xff, 0xfb };

	(void)state;
	assert_int_equal(scan_once(str32, 5, MIB, NULL), PROTO_SCAN_TOOBIG);
	assert_int_equal(scan_once(bin32, 5, MIB, NULL), PROTO_SCAN_TOOBIG);
	/* ext32: the type byte has not even arrived. */
	assert_int_equal(scan_once(ext32, 5, MIB, NULL), PROTO_SCAN_TOOBIG);
	assert_int_equal(scan_once(arr32, 5, MIB, NULL), PROTO_SCAN_TOOBIG);
	assert_int_equal(scan_once(map32, 5, MIB, NULL), PROTO_SCAN_TOOBIG);
	/* 2^19 + 1 pairs = 2^20 + 2 elements > 1 MiB. */
	assert_int_equal(scan_once(map32b, 5, MIB, NULL), PROTO_SCAN_TOOBIG);
	/* Until the length bytes are in, it cannot tell. */
	assert_int_equal(scan_once(str32, 4, MIB, NULL), PROTO_SCAN_MORE);
	assert_int_equal(scan_once(arr32, 1, MIB, NULL), PROTO_SCAN_MORE);
	/* Small limits: 3 + 256 > 258; 101 elements > 100. */
	assert_int_equal(scan_once(str16, 3, 258, NULL), PROTO_SCAN_TOOBIG);
	assert_int_equal(scan_once(str16, 3, 259, NULL), PROTO_SCAN_MORE);
	assert_int_equal(scan_once(arr16, 3, 100, NULL), PROTO_SCAN_TOOBIG);
	assert_int_equal(scan_once(arr16, 3, 104, NULL), PROTO_SCAN_MORE);
	/*
	 * Inside containers, what came before counts: a str32 of 2^20 - 5
	 * bytes would fit alone, but after two array headers it is 2 over.
	 */
	assert_int_equal(scan_once(nested, sizeof(nested), MIB, NULL),
	    PROTO_SCAN_TOOBIG);
}

/* A str32 of exactly max - 5 bytes is exactly max long: accepted. */
static void
test_scan_exact_max(void **state)
{
	uint8_t		*buf;
	size_t		 max = MIB, body = max - 5, off, at;

	(void)state;
	buf = calloc(1, max + 1);
	assert_non_null(buf);
	buf[0] = 0xdb;
	buf[1] = (uint8_t)(body >> 24);
	buf[2] = (uint8_t)(body >> 16);
	buf[3] = (uint8_t)(body >> 8);
	buf[4] = (uint8_t)body;
	assert_int_equal(scan_once(buf, 5, max, NULL), PROTO_SCAN_MORE);
	assert_int_equal(scan_once(buf, max - 1, max, NULL), PROTO_SCAN_MORE);
	assert_int_equal(scan_once(buf, max, max, &off), PROTO_SCAN_DONE);
	assert_int_equal(off, max);
	assert_int_equal(scan_once(buf, max + 1, max, &off), PROTO_SCAN_DONE);
	assert_int_equal(off, max);
	/* Incremental arrival of the body, 4 KiB at a time. */
	{
		struct proto_scan s;
		size_t n;

		proto_scan_reset(&s);
		for (n = 0; n < max; n += 4096)
			assert_int_equal(proto_scan(&s, buf, n, max),
			    PROTO_SCAN_MORE);
		assert_int_equal(proto_scan(&s, buf, max, max),
		    PROTO_SCAN_DONE);
		assert_int_equal(s.off, max);
	}
	/* One byte more declared: refused before the body arrives. */
	body++;
	buf[4] = (uint8_t)body;
	buf[3] = (uint8_t)(body >> 8);
	buf[2] = (uint8_t)(body >> 16);
	assert_int_equal(scan_once(buf, 5, max, NULL), PROTO_SCAN_TOOBIG);
	/* The same, as a bin32 inside a fixarray, now 1 byte over. */
	buf[0] = 0x91;
	buf[1] = 0xc6;
	body = max - 6;
	buf[2] = (uint8_t)(body >> 24);
	buf[3] = (uint8_t)(body >> 16);
	buf[4] = (uint8_t)(body >> 8);
	buf[5] = (uint8_t)body;
	assert_int_equal(scan_bytewise(buf, max, max, &off, &at),
	    PROTO_SCAN_DONE);
	assert_int_equal(at, max);
	body++;
	buf[5] = (uint8_t)body;
	buf[4] = (uint8_t)(body >> 8);
	assert_int_equal(scan_once(buf, 6, max, NULL), PROTO_SCAN_TOOBIG);
	free(buf);
}

/*
 * Divergence between the scanner and msgpack-c: msgpack_unpack_next()
 * refuses nesting deeper than MSGPACK_EMBED_STACK_SIZE (32) containers
 * with MSGPACK_UNPACK_NOMEM_ERROR, while the scanner, which does not
 * track depth, reports such an object complete.  The daemon
 * (server.c conn_process) then logs "malformed msgpack (-2)" and closes
 * the connection without an error reply.  This test pins the current
 * behaviour of both sides so that a change on either side is noticed.
 */
static void
test_scan_depth_beyond_msgpack_c(void **state)
{
	uint8_t			buf[40];
	msgpack_unpacked	up;
	size_t			off;
	int			i;

	(void)state;
	for (i = 0; i < 32; i++)
		buf[i] = 0x91;
	buf[32] = 0xc0;
	msgpack_unpacked_init(&up);
	assert_int_equal(scan_once(buf, 33, MIB, &off), PROTO_SCAN_DONE);
	assert_int_equal(off, 33);
	assert_int_equal(mp_unpack(&up, buf, 33, &off),
	    MSGPACK_UNPACK_SUCCESS);

	buf[32] = 0x90;			/* 33rd container, even empty */
	assert_int_equal(scan_once(buf, 33, MIB, &off), PROTO_SCAN_DONE);
	assert_int_equal(off, 33);
	assert_int_equal(mp_unpack(&up, buf, 33, &off),
	    MSGPACK_UNPACK_NOMEM_ERROR);
	msgpack_unpacked_destroy(&up);
}

/* xorshift64*: a small deterministic PRNG. */
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t
rnd(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return (uint32_t)((rng * 0x2545f4914f6cdd1dULL) >> 32);
}

/* A length field of n bytes: mostly small, sometimes anything. */
static size_t
put_len(uint8_t *p, int n)
{
	uint32_t	v;
	int		i;

	switch (rnd() % 8) {
	case 0:
		v = rnd();
		break;
	case 1:
		v = 0;
		break;
	default:
		v = rnd() % 24;
		break;
	}
	if (n < 4 && v >> (8 * n) != 0)
		v &= (1u << (8 * n)) - 1;
	for (i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return (size_t)n;
}

/* Random bytes, biased towards msgpack headers with plausible lengths. */
static size_t
gen_random(uint8_t *b, size_t cap)
{
	static const uint8_t	fixed[] = { 0xca, 0xcb, 0xcc, 0xcd, 0xce,
	    0xcf, 0xd0, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8 };
	static const uint8_t	lens[] = { 0xc4, 0xc5, 0xc6, 0xc7, 0xc8,
	    0xc9, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf };
	uint8_t			tmp[16];
	size_t			n = 0, target = rnd() % (cap + 1), k, i;

	if (rnd() % 16 == 0) {		/* plain noise */
		for (i = 0; i < target; i++)
			b[i] = (uint8_t)rnd();
		return target;
	}
	/* Half the time, open with a container so objects get longer. */
	if (target > 0 && rnd() % 2 == 0)
		b[n++] = (uint8_t)(rnd() % 2 ? 0x90 | (1 + rnd() % 6) :
		    0x80 | (1 + rnd() % 3));
	while (n < target) {
		k = 0;
		switch (rnd() % 12) {
		case 0:
			tmp[k++] = (uint8_t)rnd();
			break;
		case 1:
			tmp[k++] = (uint8_t)(rnd() % 0x80);
			break;
		case 2: {
			static const uint8_t s[] = { 0xc0, 0xc2, 0xc3, 0xe0,
			    0xff };
			tmp[k++] = s[rnd() % sizeof(s)];
			break;
		}
		case 3:
			tmp[k++] = (uint8_t)(0x90 | (rnd() % 4));
			break;
		case 4:
			tmp[k++] = (uint8_t)(0x80 | (rnd() % 3));
			break;
		case 5:
			tmp[k++] = (uint8_t)(0xa0 | (rnd() % 8));
			break;
		case 6:
		case 7: {
			uint8_t h = lens[rnd() % sizeof(lens)];
			int lb = (h == 0xc4 || h == 0xc7 || h == 0xd9) ? 1 :
			    (h == 0xc5 || h == 0xc8 || h == 0xda ||
			    h == 0xdc || h == 0xde) ? 2 : 4;
			tmp[k++] = h;
			k += put_len(tmp + k, lb);
			if (h >= 0xc7 && h <= 0xc9)
				tmp[k++] = (uint8_t)rnd();	/* ext type */
			break;
		}
		case 8:
		case 9:
			tmp[k++] = fixed[rnd() % sizeof(fixed)];
			break;
		case 10:
			if (rnd() % 8 == 0)
				tmp[k++] = 0xc1;
			else
				tmp[k++] = (uint8_t)rnd();
			break;
		default:
			for (i = 0; i < 3; i++)
				tmp[k++] = (uint8_t)rnd();
			break;
		}
		for (i = 0; i < k && n < target; i++)
			b[n++] = tmp[i];
	}
	return n;
}

#define XCHECK_ITERATIONS	200000
#define XCHECK_MAXLEN		64

/*
 * Cross-check with msgpack-c on random input.  Scanner DONE with n =>
 * msgpack_unpack_next on the first n bytes succeeds with off n, and on
 * the whole buffer too; scanner MORE => msgpack-c wants more; scanner BAD
 * => msgpack-c fails to parse; msgpack-c SUCCESS with off n => scanner
 * DONE with n.  When the scanner says TOOBIG (a declared length or count
 * over 1 MiB in a <= 64-byte buffer) msgpack-c is not called: it would
 * try to allocate the declared element array, which is the very thing
 * the scanner exists to prevent.  Feeding byte by byte must always agree
 * with one call over the whole buffer.
 */
static void
test_scan_crosscheck_random(void **state)
{
	uint8_t			buf[XCHECK_MAXLEN];
	msgpack_unpacked	up;
	msgpack_unpack_return	ret;
	size_t			len, off, boff, at, uoff;
	unsigned		it, ndone = 0, nmore = 0, nbad = 0, nbig = 0;
	unsigned		nlong = 0;
	int			rc, brc;

	(void)state;
	rng = 0x9e3779b97f4a7c15ULL;
	msgpack_unpacked_init(&up);
	for (it = 0; it < XCHECK_ITERATIONS; it++) {
		len = gen_random(buf, sizeof(buf));
		rc = scan_once(buf, len, MIB, &off);
		brc = scan_bytewise(buf, len, MIB, &boff, &at);
		if (brc != rc || (rc == PROTO_SCAN_DONE &&
		    (boff != off || at != off)))
			fail_msg("it %u: whole %d/%zu, bytewise %d/%zu at %zu",
			    it, rc, off, brc, boff, at);
		if (rc == PROTO_SCAN_TOOBIG) {
			nbig++;
			continue;
		}
		ret = mp_unpack(&up, buf, len, &uoff);
		switch (rc) {
		case PROTO_SCAN_DONE:
			ndone++;
			if (off >= 8)
				nlong++;
			if (ret != MSGPACK_UNPACK_SUCCESS || uoff != off)
				fail_msg("it %u: scanner DONE %zu, msgpack %d "
				    "off %zu", it, off, ret, uoff);
			ret = mp_unpack(&up, buf, off, &uoff);
			if (ret != MSGPACK_UNPACK_SUCCESS || uoff != off)
				fail_msg("it %u: prefix %zu: msgpack %d off "
				    "%zu", it, off, ret, uoff);
			/* Exactly-fitting limit fine, one less not. */
			assert_int_equal(scan_once(buf, len, off, NULL),
			    PROTO_SCAN_DONE);
			assert_int_equal(scan_once(buf, len, off - 1, NULL),
			    PROTO_SCAN_TOOBIG);
			break;
		case PROTO_SCAN_MORE:
			nmore++;
			if (ret != MSGPACK_UNPACK_CONTINUE)
				fail_msg("it %u: scanner MORE, msgpack %d off "
				    "%zu (len %zu)", it, ret, uoff, len);
			break;
		case PROTO_SCAN_BAD:
			nbad++;
			if (ret != MSGPACK_UNPACK_PARSE_ERROR)
				fail_msg("it %u: scanner BAD, msgpack %d", it,
				    ret);
			break;
		default:
			fail_msg("it %u: scanner returned %d", it, rc);
		}
	}
	msgpack_unpacked_destroy(&up);
	print_message("cross-check: %u DONE (%u of 8+ bytes), %u MORE, "
	    "%u BAD, %u TOOBIG\n", ndone, nlong, nmore, nbad, nbig);
	/* The generator must exercise every outcome substantially. */
	assert_true(ndone > XCHECK_ITERATIONS / 10);
	assert_true(nlong > XCHECK_ITERATIONS / 10);
	assert_true(nmore > XCHECK_ITERATIONS / 10);
	assert_true(nbad > XCHECK_ITERATIONS / 100);
	assert_true(nbig > XCHECK_ITERATIONS / 1000);
}

/* Unpack sb into up; the whole buffer must be one object. */
static const msgpack_object *
unpack_all(msgpack_unpacked *up, const msgpack_sbuffer *sb)
{
	size_t	off = 0;

	assert_int_equal(msgpack_unpack_next(up, sb->data, sb->size, &off),
	    MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, sb->size);
	return &up->data;
}

/* Parse a request packed by the callback-free helper below. */
struct reqcase {
	msgpack_sbuffer		sb;
	msgpack_packer		pk;
	msgpack_unpacked	up;
};

static void
req_begin(struct reqcase *r)
{
	msgpack_sbuffer_init(&r->sb);
	msgpack_packer_init(&r->pk, &r->sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&r->up);
}

static int
req_parse(struct reqcase *r, struct proto_request *req, bool *msgid_ok,
    struct cb_error *err)
{
	const msgpack_object	*obj = unpack_all(&r->up, &r->sb);

	cb_error_clear(err);
	return proto_parse_request(obj, req, msgid_ok, err);
}

static void
req_end(struct reqcase *r)
{
	msgpack_unpacked_destroy(&r->up);
	msgpack_sbuffer_destroy(&r->sb);
}

static void
test_parse_request_valid(void **state)
{
	struct reqcase		r;
	struct proto_request	req;
	struct cb_error		err;
	bool			ok = false;
	const msgpack_object	*p;

	(void)state;
	/* [0, 7, "type.get", [{"type": "github"}]] */
	req_begin(&r);
	proto_pack_request_head(&r.pk, 7, "type.get");
	msgpack_pack_map(&r.pk, 1);
	proto_pack_kv_str(&r.pk, "type", "github");
	assert_int_equal(req_parse(&r, &req, &ok, &err), 0);
	assert_true(ok);
	assert_int_equal(err.code, 0);
	assert_int_equal(req.msgid, 7);
	assert_int_equal(req.method_len, 8);
	assert_memory_equal(req.method, "type.get", 8);
	assert_int_equal(proto_method_lookup(req.method, req.method_len),
	    CB_M_TYPE_GET);
	assert_int_equal(req.params->type, MSGPACK_OBJECT_MAP);
	assert_ptr_equal(req.params,
	    &r.up.data.via.array.ptr[3].via.array.ptr[0]);
	p = proto_map_get(req.params, "type");
	assert_non_null(p);
	assert_int_equal(p->type, MSGPACK_OBJECT_STR);
	assert_memory_equal(p->via.str.ptr, "github", 6);
	req_end(&r);

	/* msgid UINT32_MAX, packed as a uint64, is still fine. */
	req_begin(&r);
	msgpack_pack_array(&r.pk, 4);
	msgpack_pack_fix_uint64(&r.pk, 0);
	msgpack_pack_fix_uint64(&r.pk, UINT32_MAX);
	msgpack_pack_str_with_body(&r.pk, "hello", 5);
	msgpack_pack_array(&r.pk, 1);
	msgpack_pack_map(&r.pk, 0);
	assert_int_equal(req_parse(&r, &req, &ok, &err), 0);
	assert_true(ok);
	assert_int_equal(req.msgid, UINT32_MAX);
	assert_int_equal(req.params->type, MSGPACK_OBJECT_MAP);
	assert_int_equal(req.params->via.map.size, 0);
	req_end(&r);

	/* The method name is not checked here (the dispatcher does). */
	req_begin(&r);
	proto_pack_request_head(&r.pk, 0, "no.such.method");
	msgpack_pack_map(&r.pk, 0);
	assert_int_equal(req_parse(&r, &req, &ok, &err), 0);
	assert_int_equal(req.msgid, 0);
	assert_int_equal(req.method_len, 14);
	req_end(&r);
}

/* params nil and params [] both read as an empty map. */
static void
test_parse_request_empty_params(void **state)
{
	struct reqcase		r;
	struct proto_request	req;
	struct cb_error		err;
	bool			ok;
	int			nil;

	(void)state;
	for (nil = 0; nil < 2; nil++) {
		req_begin(&r);
		msgpack_pack_array(&r.pk, 4);
		msgpack_pack_int(&r.pk, 0);
		msgpack_pack_int(&r.pk, 99);
		msgpack_pack_str_with_body(&r.pk, "health", 6);
		if (nil)
			msgpack_pack_nil(&r.pk);
		else
			msgpack_pack_array(&r.pk, 0);
		ok = false;
		assert_int_equal(req_parse(&r, &req, &ok, &err), 0);
		assert_true(ok);
		assert_int_equal(req.msgid, 99);
		assert_non_null(req.params);
		assert_int_equal(req.params->type, MSGPACK_OBJECT_MAP);
		assert_int_equal(req.params->via.map.size, 0);
		assert_null(proto_map_get(req.params, "x"));
		assert_int_equal(proto_check_keys(req.params,
		    (const char *const[]){ NULL }, &err), 0);
		req_end(&r);
	}
}

enum bad_kind {
	BAD_NOT_ARRAY, BAD_SIZE3, BAD_SIZE5, BAD_TYPE1, BAD_TYPE_STR,
	BAD_TYPE_NEG, BAD_MSGID_NEG, BAD_MSGID_BIG, BAD_MSGID_STR,
	BAD_MSGID_FLOAT, BAD_MSGID_NIL, BAD_METHOD_INT, BAD_METHOD_BIN,
	BAD_METHOD_NIL, BAD_PARAMS_INT, BAD_PARAMS_MAP_MAP, BAD_PARAMS_MAP,
	BAD_PARAMS_NIL_IN_ARRAY, BAD_PARAMS_STR, BAD_PARAMS_ARRAY_ARRAY,
	BAD_TYPE1_MSGID_BAD, BAD_COUNT
};

static void
pack_bad(msgpack_packer *pk, int kind)
{
	const char	*method = "hello";

	if (kind == BAD_NOT_ARRAY) {
		msgpack_pack_map(pk, 1);
		proto_pack_kv_int(pk, "msgid", 1);
		return;
	}
	if (kind == BAD_SIZE3 || kind == BAD_SIZE5) {
		msgpack_pack_array(pk, kind == BAD_SIZE3 ? 3 : 5);
		msgpack_pack_int(pk, 0);
		msgpack_pack_int(pk, 1);
		proto_pack_cstr(pk, method);
		if (kind == BAD_SIZE5) {
			msgpack_pack_array(pk, 0);
			msgpack_pack_nil(pk);
		}
		return;
	}
	msgpack_pack_array(pk, 4);
	switch (kind) {			/* type */
	case BAD_TYPE1:
	case BAD_TYPE1_MSGID_BAD:
		msgpack_pack_int(pk, 1);
		break;
	case BAD_TYPE_STR:
		proto_pack_cstr(pk, "0");
		break;
	case BAD_TYPE_NEG:
		msgpack_pack_int(pk, -1);
		break;
	default:
		msgpack_pack_int(pk, 0);
	}
	switch (kind) {			/* msgid */
	case BAD_MSGID_NEG:
		msgpack_pack_int(pk, -1);
		break;
	case BAD_MSGID_BIG:
	case BAD_TYPE1_MSGID_BAD:
		msgpack_pack_uint64(pk, (uint64_t)UINT32_MAX + 1);
		break;
	case BAD_MSGID_STR:
		proto_pack_cstr(pk, "5");
		break;
	case BAD_MSGID_FLOAT:
		msgpack_pack_double(pk, 5.0);
		break;
	case BAD_MSGID_NIL:
		msgpack_pack_nil(pk);
		break;
	default:
		msgpack_pack_int(pk, 5);
	}
	switch (kind) {			/* method */
	case BAD_METHOD_INT:
		msgpack_pack_int(pk, 1);
		break;
	case BAD_METHOD_BIN:
		msgpack_pack_bin_with_body(pk, method, 5);
		break;
	case BAD_METHOD_NIL:
		msgpack_pack_nil(pk);
		break;
	default:
		proto_pack_cstr(pk, method);
	}
	switch (kind) {			/* params */
	case BAD_PARAMS_INT:
		msgpack_pack_array(pk, 1);
		msgpack_pack_int(pk, 1);
		break;
	case BAD_PARAMS_MAP_MAP:
		msgpack_pack_array(pk, 2);
		msgpack_pack_map(pk, 0);
		msgpack_pack_map(pk, 0);
		break;
	case BAD_PARAMS_MAP:
		msgpack_pack_map(pk, 0);
		break;
	case BAD_PARAMS_NIL_IN_ARRAY:
		msgpack_pack_array(pk, 1);
		msgpack_pack_nil(pk);
		break;
	case BAD_PARAMS_STR:
		proto_pack_cstr(pk, "x");
		break;
	case BAD_PARAMS_ARRAY_ARRAY:
		msgpack_pack_array(pk, 1);
		msgpack_pack_array(pk, 0);
		break;
	default:
		msgpack_pack_array(pk, 1);
		msgpack_pack_map(pk, 0);
	}
}

#define MSG_SHAPE	"a request must be an array of 4 elements"
#define MSG_TYPE	"message type must be 0 (request)"
#define MSG_MSGID	"msgid must be an unsigned 32-bit integer"
#define MSG_METHOD	"method must be a string"
#define MSG_PARAMS	"params must be an array holding one map"

static void
test_parse_request_invalid(void **state)
{
	static const struct {
		int		 kind;
		bool		 msgid_ok;
		const char	*msg;
	} cases[] = {
		{ BAD_NOT_ARRAY, false, MSG_SHAPE },
		{ BAD_SIZE3, false, MSG_SHAPE },
		{ BAD_SIZE5, false, MSG_SHAPE },
		{ BAD_TYPE1, true, MSG_TYPE },
		{ BAD_TYPE_STR, true, MSG_TYPE },
		{ BAD_TYPE_NEG, true, MSG_TYPE },
		{ BAD_MSGID_NEG, false, MSG_MSGID },
		{ BAD_MSGID_BIG, false, MSG_MSGID },
		{ BAD_MSGID_STR, false, MSG_MSGID },
		{ BAD_MSGID_FLOAT, false, MSG_MSGID },
		{ BAD_MSGID_NIL, false, MSG_MSGID },
		{ BAD_METHOD_INT, true, MSG_METHOD },
		{ BAD_METHOD_BIN, true, MSG_METHOD },
		{ BAD_METHOD_NIL, true, MSG_METHOD },
		{ BAD_PARAMS_INT, true, MSG_PARAMS },
		{ BAD_PARAMS_MAP_MAP, true, MSG_PARAMS },
		{ BAD_PARAMS_MAP, true, MSG_PARAMS },
		{ BAD_PARAMS_NIL_IN_ARRAY, true, MSG_PARAMS },
		{ BAD_PARAMS_STR, true, MSG_PARAMS },
		{ BAD_PARAMS_ARRAY_ARRAY, true, MSG_PARAMS },
		{ BAD_TYPE1_MSGID_BAD, false, MSG_TYPE },
	};
	struct reqcase		r;
	struct proto_request	req;
	struct cb_error		err;
	bool			ok;
	size_t			i;

	(void)state;
	assert_int_equal(sizeof(cases) / sizeof(cases[0]), BAD_COUNT);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		req_begin(&r);
		pack_bad(&r.pk, cases[i].kind);
		ok = !cases[i].msgid_ok;
		if (req_parse(&r, &req, &ok, &err) != -CB_EBADREQ)
			fail_msg("case %zu: not -CB_EBADREQ", i);
		assert_int_equal(err.code, CB_EBADREQ);
		if (ok != cases[i].msgid_ok)
			fail_msg("case %zu: msgid_ok %d", i, ok);
		assert_string_equal(err.msg, cases[i].msg);
		if (ok)
			assert_int_equal(req.msgid, 5);
		/* err may be NULL: same result, nothing written. */
		assert_int_equal(proto_parse_request(&r.up.data, &req, &ok,
		    NULL), -CB_EBADREQ);
		req_end(&r);
	}
}

/* Check a response [1, msgid, error, result] head. */
static void
check_response(const msgpack_object *o, uint32_t msgid, const char *code,
    const char *message)
{
	const msgpack_object	*a, *v;

	assert_int_equal(o->type, MSGPACK_OBJECT_ARRAY);
	assert_int_equal(o->via.array.size, 4);
	a = o->via.array.ptr;
	assert_int_equal(a[0].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(a[0].via.u64, 1);
	assert_int_equal(a[1].type, MSGPACK_OBJECT_POSITIVE_INTEGER);
	assert_int_equal(a[1].via.u64, msgid);
	if (code == NULL) {
		assert_int_equal(a[2].type, MSGPACK_OBJECT_NIL);
		return;
	}
	assert_int_equal(a[2].type, MSGPACK_OBJECT_MAP);
	assert_int_equal(a[2].via.map.size, 2);
	v = proto_map_get(&a[2], "code");
	assert_non_null(v);
	assert_int_equal(v->type, MSGPACK_OBJECT_STR);
	assert_int_equal(v->via.str.size, strlen(code));
	assert_memory_equal(v->via.str.ptr, code, strlen(code));
	v = proto_map_get(&a[2], "message");
	assert_non_null(v);
	assert_int_equal(v->type, MSGPACK_OBJECT_STR);
	assert_int_equal(v->via.str.size, strlen(message));
	assert_memory_equal(v->via.str.ptr, message, strlen(message));
}

/* Notifications [2, method, params]: ignored when well formed. */
static void
test_parse_notification(void **state)
{
	struct reqcase		r;
	struct proto_request	req;
	struct cb_error		err;
	const msgpack_object	*obj;

	(void)state;
	/* [2, "nvim_set_client_info", [1]]: str method. */
	req_begin(&r);
	msgpack_pack_array(&r.pk, 3);
	msgpack_pack_uint8(&r.pk, 2);
	proto_pack_cstr(&r.pk, "nvim_set_client_info");
	msgpack_pack_array(&r.pk, 1);
	msgpack_pack_uint8(&r.pk, 1);
	obj = unpack_all(&r.up, &r.sb);
	cb_error_clear(&err);
	assert_int_equal(proto_parse_notification(obj, &req, &err), 1);
	assert_int_equal(req.method_len, 20);
	assert_memory_equal(req.method, "nvim_set_client_info", 20);
	assert_null(req.params);
	assert_int_equal(err.code, 0);
	req_end(&r);

	/* A bin method (how pynvim packs names), empty params. */
	req_begin(&r);
	msgpack_pack_array(&r.pk, 3);
	msgpack_pack_uint8(&r.pk, 2);
	msgpack_pack_bin(&r.pk, 5);
	msgpack_pack_bin_body(&r.pk, "hello", 5);
	msgpack_pack_array(&r.pk, 0);
	obj = unpack_all(&r.up, &r.sb);
	assert_int_equal(proto_parse_notification(obj, &req, &err), 1);
	assert_int_equal(req.method_len, 5);
	assert_memory_equal(req.method, "hello", 5);
	req_end(&r);

	/* A request is not a notification, nor is [2, m] or [2, m, p, x]. */
	req_begin(&r);
	proto_pack_request_head(&r.pk, 1, "hello");
	msgpack_pack_map(&r.pk, 0);
	obj = unpack_all(&r.up, &r.sb);
	assert_int_equal(proto_parse_notification(obj, &req, &err), 0);
	req_end(&r);
	req_begin(&r);
	msgpack_pack_array(&r.pk, 2);
	msgpack_pack_uint8(&r.pk, 2);
	proto_pack_cstr(&r.pk, "hello");
	obj = unpack_all(&r.up, &r.sb);
	assert_int_equal(proto_parse_notification(obj, &req, &err), 0);
	req_end(&r);
	req_begin(&r);
	msgpack_pack_array(&r.pk, 3);
	msgpack_pack_uint8(&r.pk, 1);
	proto_pack_cstr(&r.pk, "hello");
	msgpack_pack_array(&r.pk, 0);
	obj = unpack_all(&r.up, &r.sb);
	assert_int_equal(proto_parse_notification(obj, &req, &err), 0);
	req_end(&r);

	/* Malformed: method not a name, params not an array. */
	req_begin(&r);
	msgpack_pack_array(&r.pk, 3);
	msgpack_pack_uint8(&r.pk, 2);
	msgpack_pack_uint8(&r.pk, 7);
	msgpack_pack_array(&r.pk, 0);
	obj = unpack_all(&r.up, &r.sb);
	assert_int_equal(proto_parse_notification(obj, &req, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "notification method must be a string");
	req_end(&r);
	req_begin(&r);
	msgpack_pack_array(&r.pk, 3);
	msgpack_pack_uint8(&r.pk, 2);
	proto_pack_cstr(&r.pk, "hello");
	msgpack_pack_map(&r.pk, 0);
	obj = unpack_all(&r.up, &r.sb);
	assert_int_equal(proto_parse_notification(obj, &req, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "notification params must be an array");
	req_end(&r);
}

/* Run proto_check_key_types on what r holds; err gets the message. */
static int
keys_check(struct reqcase *r, struct cb_error *err)
{
	const msgpack_object	*obj = unpack_all(&r->up, &r->sb);

	cb_error_clear(err);
	return proto_check_key_types(obj, err);
}

static void
test_check_key_types(void **state)
{
	struct reqcase	 r;
	struct cb_error	 err;
	char		 longkey[80];
	int		 i;

	(void)state;
	/* All str keys, nested maps and arrays: fine. */
	req_begin(&r);
	msgpack_pack_map(&r.pk, 2);
	proto_pack_cstr(&r.pk, "component");
	msgpack_pack_map(&r.pk, 1);
	proto_pack_cstr(&r.pk, "credentials");
	msgpack_pack_array(&r.pk, 1);
	msgpack_pack_map(&r.pk, 1);
	proto_pack_kv_str(&r.pk, "id", "gh");
	proto_pack_kv_str(&r.pk, "other", "x");
	assert_int_equal(keys_check(&r, &err), 0);
	assert_int_equal(err.code, 0);
	req_end(&r);

	/* A bin key at the top. */
	req_begin(&r);
	msgpack_pack_map(&r.pk, 1);
	msgpack_pack_bin(&r.pk, 4);
	msgpack_pack_bin_body(&r.pk, "type", 4);
	proto_pack_cstr(&r.pk, "github");
	assert_int_equal(keys_check(&r, &err), -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_string_equal(err.msg, "parameter keys must be strings: got a "
	    "binary key 'type' in params (send map keys as msgpack str, not "
	    "bin)");
	req_end(&r);

	/* In a map inside an array inside a map: the path says where. */
	req_begin(&r);
	msgpack_pack_map(&r.pk, 2);
	proto_pack_kv_str(&r.pk, "dry_run", "x");
	proto_pack_cstr(&r.pk, "component");
	msgpack_pack_map(&r.pk, 1);
	proto_pack_cstr(&r.pk, "credentials");
	msgpack_pack_array(&r.pk, 2);
	msgpack_pack_map(&r.pk, 0);
	msgpack_pack_map(&r.pk, 2);
	proto_pack_kv_str(&r.pk, "id", "gh");
	msgpack_pack_bin(&r.pk, 6);
	msgpack_pack_bin_body(&r.pk, "ty\npe\x80", 6);
	proto_pack_cstr(&r.pk, "github");
	assert_int_equal(keys_check(&r, &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter keys must be strings: got a "
	    "binary key 'ty?pe?' in params.component.credentials[1] (send "
	    "map keys as msgpack str, not bin)");
	req_end(&r);

	/* Other kinds of keys are named by kind. */
	req_begin(&r);
	msgpack_pack_map(&r.pk, 1);
	msgpack_pack_int(&r.pk, -3);
	msgpack_pack_nil(&r.pk);
	assert_int_equal(keys_check(&r, &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter keys must be strings: got an "
	    "integer key in params");
	req_end(&r);
	req_begin(&r);
	msgpack_pack_map(&r.pk, 1);
	proto_pack_cstr(&r.pk, "request");
	msgpack_pack_map(&r.pk, 1);
	msgpack_pack_array(&r.pk, 0);
	msgpack_pack_nil(&r.pk);
	assert_int_equal(keys_check(&r, &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter keys must be strings: got an "
	    "array as a key in params.request");
	req_end(&r);

	/* A deep path is cut, never overflows, and still ends in "...". */
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	req_begin(&r);
	for (i = 0; i < 8; i++) {
		msgpack_pack_map(&r.pk, 1);
		proto_pack_cstr(&r.pk, longkey);
	}
	msgpack_pack_map(&r.pk, 1);
	msgpack_pack_bin(&r.pk, 1);
	msgpack_pack_bin_body(&r.pk, "b", 1);
	msgpack_pack_nil(&r.pk);
	assert_int_equal(keys_check(&r, &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter keys must be strings: got a "
	    "binary key 'b' in params.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk..."
	    ".kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk....kkkkk... (send map keys "
	    "as msgpack str, not bin)");
	req_end(&r);
}

static void
test_pack_response(void **state)
{
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 up;
	const msgpack_object	*o;
	struct cb_error		 err;
	char			 longmsg[1000];

	(void)state;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&up);

	/* Success head, then the caller's result. */
	proto_pack_response_head(&pk, 12345, NULL);
	msgpack_pack_map(&pk, 1);
	proto_pack_kv_bool(&pk, "ok", true);
	o = unpack_all(&up, &sb);
	check_response(o, 12345, NULL, NULL);
	assert_int_equal(o->via.array.ptr[3].type, MSGPACK_OBJECT_MAP);
	assert_int_equal(o->via.array.ptr[3].via.map.size, 1);
	assert_true(proto_map_get(&o->via.array.ptr[3], "ok")->via.boolean);

	/* An error struct with code 0 is success too. */
	msgpack_sbuffer_clear(&sb);
	cb_error_clear(&err);
	proto_pack_response_head(&pk, UINT32_MAX, &err);
	msgpack_pack_int(&pk, -7);
	o = unpack_all(&up, &sb);
	check_response(o, UINT32_MAX, NULL, NULL);
	assert_int_equal(o->via.array.ptr[3].via.i64, -7);

	/* Error response: [1, msgid, {code, message}, nil]. */
	msgpack_sbuffer_clear(&sb);
	assert_int_equal(cb_error_set(&err, CB_ENOTFOUND, "no type '%s'",
	    "github"), -CB_ENOTFOUND);
	proto_pack_error_response(&pk, 3, &err);
	o = unpack_all(&up, &sb);
	check_response(o, 3, "not_found", "no type 'github'");
	assert_int_equal(o->via.array.ptr[3].type, MSGPACK_OBJECT_NIL);

	/* Every code has its wire name in the reply. */
	{
		int code;

		for (code = 1; code < CB_ERR_MAX; code++) {
			msgpack_sbuffer_clear(&sb);
			cb_error_set(&err, code, "m%d", code);
			proto_pack_error_response(&pk, (uint32_t)code, &err);
			o = unpack_all(&up, &sb);
			snprintf(longmsg, sizeof(longmsg), "m%d", code);
			check_response(o, (uint32_t)code, cb_error_name(code),
			    longmsg);
		}
	}

	/* A message at the size cap arrives whole (511 bytes). */
	memset(longmsg, 'z', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	msgpack_sbuffer_clear(&sb);
	cb_error_set(&err, CB_EINTERNAL, "%s", longmsg);
	assert_int_equal(strlen(err.msg), CB_ERRMSG_MAX - 1);
	proto_pack_error_response(&pk, 0, &err);
	o = unpack_all(&up, &sb);
	longmsg[CB_ERRMSG_MAX - 1] = '\0';
	check_response(o, 0, "internal", longmsg);

	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

/* The request head packs what proto_parse_request reads back. */
static void
test_pack_request_head_roundtrip(void **state)
{
	struct reqcase		r;
	struct proto_request	req;
	struct cb_error		err;
	bool			ok;
	int64_t			i64 = 0;
	bool			b = false;
	char			*s = NULL;
	int			m;

	(void)state;
	for (m = 0; m < CB_M_COUNT; m++) {
		req_begin(&r);
		proto_pack_request_head(&r.pk, (uint32_t)m * 1000003u,
		    cb_methods[m].name);
		msgpack_pack_map(&r.pk, 4);
		proto_pack_kv_str(&r.pk, "s", "v");
		proto_pack_kv_int(&r.pk, "i", INT64_MIN);
		proto_pack_kv_bool(&r.pk, "b", true);
		proto_pack_kv_str(&r.pk, "n", NULL);
		assert_int_equal(req_parse(&r, &req, &ok, &err), 0);
		assert_int_equal(req.msgid, (uint32_t)m * 1000003u);
		assert_int_equal(proto_method_lookup(req.method,
		    req.method_len), m);
		assert_int_equal(proto_get_str(req.params, "s", true, &s,
		    &err), 0);
		assert_string_equal(s, "v");
		free(s);
		assert_int_equal(proto_get_int(req.params, "i", true, &i64,
		    &err), 0);
		assert_true(i64 == INT64_MIN);
		assert_int_equal(proto_get_bool(req.params, "b", true, &b,
		    &err), 0);
		assert_true(b);
		assert_int_equal(proto_get_str(req.params, "n", false, &s,
		    &err), 1);
		assert_null(s);
		req_end(&r);
	}
}

/*
 * The parameter map used by the reader tests:
 * {"s": "abc", "empty": "", "n": nil, "i": 5, "neg": -5, "min": INT64_MIN,
 *  "max": INT64_MAX, "huge": UINT64_MAX, "t": true, "f": false,
 *  "nul": "a\0b", "bin": bin "abc", "d": 1.5, 7: "int key", "arr": [],
 *  "dup": 1, "dup": 2}
 */
static void
pack_params(msgpack_packer *pk)
{
	msgpack_pack_map(pk, 17);
	proto_pack_kv_str(pk, "s", "abc");
	proto_pack_kv_str(pk, "empty", "");
	proto_pack_kv_str(pk, "n", NULL);
	proto_pack_kv_int(pk, "i", 5);
	proto_pack_kv_int(pk, "neg", -5);
	proto_pack_kv_int(pk, "min", INT64_MIN);
	proto_pack_kv_int(pk, "max", INT64_MAX);
	proto_pack_cstr(pk, "huge");
	msgpack_pack_uint64(pk, UINT64_MAX);
	proto_pack_kv_bool(pk, "t", true);
	proto_pack_kv_bool(pk, "f", false);
	proto_pack_cstr(pk, "nul");
	msgpack_pack_str_with_body(pk, "a\0b", 3);
	proto_pack_cstr(pk, "bin");
	msgpack_pack_bin_with_body(pk, "abc", 3);
	proto_pack_cstr(pk, "d");
	msgpack_pack_double(pk, 1.5);
	msgpack_pack_int(pk, 7);
	proto_pack_cstr(pk, "int key");
	proto_pack_cstr(pk, "arr");
	msgpack_pack_array(pk, 0);
	proto_pack_kv_int(pk, "dup", 1);
	proto_pack_kv_int(pk, "dup", 2);
}

struct params_fixture {
	msgpack_sbuffer		sb;
	msgpack_unpacked	up;
	const msgpack_object	*map;
};

static int
params_setup(void **state)
{
	struct params_fixture	*f = calloc(1, sizeof(*f));
	msgpack_packer		 pk;

	if (f == NULL)
		return -1;
	msgpack_sbuffer_init(&f->sb);
	msgpack_packer_init(&pk, &f->sb, msgpack_sbuffer_write);
	pack_params(&pk);
	msgpack_unpacked_init(&f->up);
	f->map = unpack_all(&f->up, &f->sb);
	*state = f;
	return 0;
}

static int
params_teardown(void **state)
{
	struct params_fixture	*f = *state;

	msgpack_unpacked_destroy(&f->up);
	msgpack_sbuffer_destroy(&f->sb);
	free(f);
	return 0;
}

static void
test_map_get(void **state)
{
	struct params_fixture	*f = *state;
	const msgpack_object	*v;
	msgpack_object		 notmap = { .type = MSGPACK_OBJECT_ARRAY };

	v = proto_map_get(f->map, "s");
	assert_non_null(v);
	assert_int_equal(v->type, MSGPACK_OBJECT_STR);
	assert_int_equal(v->via.str.size, 3);
	/* Exact names only: no prefix or extension matches. */
	assert_null(proto_map_get(f->map, "ss"));
	assert_null(proto_map_get(f->map, "em"));
	assert_null(proto_map_get(f->map, "emptyx"));
	assert_null(proto_map_get(f->map, ""));
	assert_null(proto_map_get(f->map, "S"));
	/* A non-string key is skipped, not matched by its text. */
	assert_null(proto_map_get(f->map, "7"));
	/* "n" is present (as nil). */
	v = proto_map_get(f->map, "n");
	assert_non_null(v);
	assert_int_equal(v->type, MSGPACK_OBJECT_NIL);
	/* Duplicate keys: the first one wins. */
	v = proto_map_get(f->map, "dup");
	assert_non_null(v);
	assert_int_equal(v->via.u64, 1);
	/* Not a map, or NULL: absent. */
	assert_null(proto_map_get(NULL, "s"));
	assert_null(proto_map_get(&notmap, "s"));
	assert_null(proto_map_get(&f->map->via.map.ptr[0].val, "s"));
}

static void
test_get_str(void **state)
{
	struct params_fixture	*f = *state;
	struct cb_error		 err;
	char			*s;

	s = (char *)"sentinel";
	assert_int_equal(proto_get_str(f->map, "s", true, &s, &err), 0);
	assert_string_equal(s, "abc");
	free(s);
	assert_int_equal(proto_get_str(f->map, "empty", true, &s, &err), 0);
	assert_string_equal(s, "");
	free(s);

	/* Absent, optional: 1 and NULL; required: error naming the key. */
	s = (char *)"sentinel";
	cb_error_clear(&err);
	assert_int_equal(proto_get_str(f->map, "zz", false, &s, &err), 1);
	assert_null(s);
	assert_int_equal(err.code, 0);
	assert_int_equal(proto_get_str(f->map, "zz", true, &s, &err),
	    -CB_EBADREQ);
	assert_null(s);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_string_equal(err.msg, "missing required parameter 'zz'");

	/* nil counts as absent. */
	assert_int_equal(proto_get_str(f->map, "n", false, &s, &err), 1);
	assert_null(s);
	assert_int_equal(proto_get_str(f->map, "n", true, &s, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "missing required parameter 'n'");

	/* Wrong types: even when optional. */
	assert_int_equal(proto_get_str(f->map, "i", false, &s, &err),
	    -CB_EBADREQ);
	assert_null(s);
	assert_string_equal(err.msg, "parameter 'i' must be a string");
	assert_int_equal(proto_get_str(f->map, "bin", false, &s, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter 'bin' must be a string");
	assert_int_equal(proto_get_str(f->map, "t", true, &s, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter 't' must be a string");
	assert_int_equal(proto_get_str(f->map, "arr", true, &s, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter 'arr' must be a string");

	/* A NUL inside: refused, nothing returned. */
	assert_int_equal(proto_get_str(f->map, "nul", false, &s, &err),
	    -CB_EBADREQ);
	assert_null(s);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_string_equal(err.msg,
	    "parameter 'nul' must not contain NUL bytes");

	/* NULL err is allowed. */
	assert_int_equal(proto_get_str(f->map, "nul", true, &s, NULL),
	    -CB_EBADREQ);
	assert_int_equal(proto_get_str(f->map, "zz", true, &s, NULL),
	    -CB_EBADREQ);
}

static void
test_get_bool(void **state)
{
	struct params_fixture	*f = *state;
	struct cb_error		 err;
	bool			 b;

	b = false;
	assert_int_equal(proto_get_bool(f->map, "t", true, &b, &err), 0);
	assert_true(b);
	assert_int_equal(proto_get_bool(f->map, "f", true, &b, &err), 0);
	assert_false(b);

	/* Absent: out untouched, so callers can preset the default. */
	b = true;
	assert_int_equal(proto_get_bool(f->map, "zz", false, &b, &err), 1);
	assert_true(b);
	assert_int_equal(proto_get_bool(f->map, "n", false, &b, &err), 1);
	assert_true(b);
	assert_int_equal(proto_get_bool(f->map, "zz", true, &b, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "missing required parameter 'zz'");

	/* No truthiness: 1, "true" are not booleans. */
	assert_int_equal(proto_get_bool(f->map, "i", false, &b, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter 'i' must be a boolean");
	assert_int_equal(proto_get_bool(f->map, "s", false, &b, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter 's' must be a boolean");
	assert_true(b);
}

static void
test_get_int(void **state)
{
	struct params_fixture	*f = *state;
	struct cb_error		 err;
	int64_t			 v;

	assert_int_equal(proto_get_int(f->map, "i", true, &v, &err), 0);
	assert_true(v == 5);
	assert_int_equal(proto_get_int(f->map, "neg", true, &v, &err), 0);
	assert_true(v == -5);
	assert_int_equal(proto_get_int(f->map, "min", true, &v, &err), 0);
	assert_true(v == INT64_MIN);
	assert_int_equal(proto_get_int(f->map, "max", true, &v, &err), 0);
	assert_true(v == INT64_MAX);

	/* Absent: out untouched. */
	v = 77;
	assert_int_equal(proto_get_int(f->map, "zz", false, &v, &err), 1);
	assert_true(v == 77);
	assert_int_equal(proto_get_int(f->map, "n", false, &v, &err), 1);
	assert_true(v == 77);
	assert_int_equal(proto_get_int(f->map, "n", true, &v, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "missing required parameter 'n'");

	/* Beyond int64, floats, strings: refused. */
	assert_int_equal(proto_get_int(f->map, "huge", false, &v, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter 'huge' must be an integer");
	assert_int_equal(proto_get_int(f->map, "d", false, &v, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter 'd' must be an integer");
	assert_int_equal(proto_get_int(f->map, "s", false, &v, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter 's' must be an integer");
	assert_int_equal(proto_get_int(f->map, "t", false, &v, &err),
	    -CB_EBADREQ);
	assert_true(v == 77);
}

static void
test_check_keys(void **state)
{
	struct params_fixture	*f = *state;
	struct cb_error		 err;
	msgpack_sbuffer		 sb;
	msgpack_packer		 pk;
	msgpack_unpacked	 up;
	const msgpack_object	*m;
	static const char *const type_keys[] = { "type", "name",
	    "description", NULL };
	static const char *const none[] = { NULL };
	char			 longkey[100];
	char			 expect[CB_ERRMSG_MAX];

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_unpacked_init(&up);

	/* All allowed; a subset is fine too. */
	msgpack_pack_map(&pk, 2);
	proto_pack_kv_str(&pk, "type", "x");
	proto_pack_kv_str(&pk, "description", "y");
	m = unpack_all(&up, &sb);
	cb_error_clear(&err);
	assert_int_equal(proto_check_keys(m, type_keys, &err), 0);
	assert_int_equal(err.code, 0);
	assert_int_equal(proto_check_keys(m, none, &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "unknown parameter 'type'");

	/* Prefixes and extensions of allowed names are unknown. */
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 2);
	proto_pack_kv_str(&pk, "type", "x");
	proto_pack_kv_str(&pk, "typ", "y");
	m = unpack_all(&up, &sb);
	assert_int_equal(proto_check_keys(m, type_keys, &err), -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	assert_string_equal(err.msg, "unknown parameter 'typ'");
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 1);
	proto_pack_kv_str(&pk, "types", "y");
	m = unpack_all(&up, &sb);
	assert_int_equal(proto_check_keys(m, type_keys, &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "unknown parameter 'types'");

	/* A long unknown name is cut at 64 characters in the message. */
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[sizeof(longkey) - 1] = '\0';
	msgpack_sbuffer_clear(&sb);
	msgpack_pack_map(&pk, 1);
	proto_pack_kv_str(&pk, longkey, "y");
	m = unpack_all(&up, &sb);
	assert_int_equal(proto_check_keys(m, type_keys, &err), -CB_EBADREQ);
	snprintf(expect, sizeof(expect), "unknown parameter '%.64s'",
	    longkey);
	assert_string_equal(err.msg, expect);

	/* Non-string keys are refused (the fixture map has 7). */
	assert_int_equal(proto_check_keys(f->map, (const char *const[]){ "s",
	    "empty", "n", "i", "neg", "min", "max", "huge", "t", "f", "nul",
	    "bin", "d", "arr", "dup", NULL }, &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "parameter names must be strings");

	/* Not a map. */
	assert_int_equal(proto_check_keys(&f->map->via.map.ptr[0].val,
	    type_keys, &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "params must be a map");

	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
}

/* The method names of SPEC section 6 that methods.def defines so far. */
static void
test_method_table(void **state)
{
	static const struct {
		const char	*name;
		int		 method;
		int		 perm;
	} known[] = {
		{ "hello", CB_M_HELLO, CB_PERM_NONE },
		{ "health", CB_M_HEALTH, CB_PERM_HEALTH },
		{ "type.create", CB_M_TYPE_CREATE, CB_PERM_TYPES },
		{ "type.get", CB_M_TYPE_GET, CB_PERM_TYPES },
		{ "type.list", CB_M_TYPE_LIST, CB_PERM_TYPES },
		{ "type.update", CB_M_TYPE_UPDATE, CB_PERM_TYPES },
		{ "type.delete", CB_M_TYPE_DELETE, CB_PERM_TYPES },
		{ "type.clear", CB_M_TYPE_CLEAR, CB_PERM_TYPES },
		{ "cred.set", CB_M_CRED_SET, CB_PERM_CREDS },
		{ "cred.status", CB_M_CRED_STATUS, CB_PERM_CREDS },
		{ "cred.list", CB_M_CRED_LIST, CB_PERM_CREDS },
		{ "cred.delete", CB_M_CRED_DELETE, CB_PERM_CREDS },
		{ "keypair.generate", CB_M_KEYPAIR_GENERATE, CB_PERM_KEYS },
		{ "keypair.import", CB_M_KEYPAIR_IMPORT, CB_PERM_KEYS },
		{ "keypair.get", CB_M_KEYPAIR_GET, CB_PERM_KEYS },
		{ "keypair.list", CB_M_KEYPAIR_LIST, CB_PERM_KEYS },
		{ "keypair.delete", CB_M_KEYPAIR_DELETE, CB_PERM_KEYS },
		{ "peerkey.set", CB_M_PEERKEY_SET, CB_PERM_KEYS },
		{ "peerkey.get", CB_M_PEERKEY_GET, CB_PERM_KEYS },
		{ "peerkey.list", CB_M_PEERKEY_LIST, CB_PERM_KEYS },
		{ "peerkey.delete", CB_M_PEERKEY_DELETE, CB_PERM_KEYS },
		{ "token.partner", CB_M_TOKEN_PARTNER, CB_PERM_TOKENS },
		{ "token.embed", CB_M_TOKEN_EMBED, CB_PERM_TOKENS },
		{ "token.sso", CB_M_TOKEN_SSO, CB_PERM_TOKENS },
		{ "token.verify", CB_M_TOKEN_VERIFY, CB_PERM_TOKENS },
	};
	size_t	i;
	int	m, k;

	(void)state;
	/* Every entry round-trips and is unique. */
	for (m = 0; m < CB_M_COUNT; m++) {
		assert_non_null(cb_methods[m].name);
		assert_int_equal(proto_method_lookup(cb_methods[m].name,
		    strlen(cb_methods[m].name)), m);
		assert_true(cb_methods[m].perm == CB_PERM_NONE ||
		    (cb_methods[m].perm >= 0 &&
		    cb_methods[m].perm < CB_PERM_COUNT));
		assert_int_equal(cb_methods[m].flags & ~(CB_MF_AUDIT |
		    CB_MF_SECRET_IN | CB_MF_SECRET_OUT | CB_MF_SECRET_KEY), 0);
		for (k = 0; k < m; k++)
			assert_string_not_equal(cb_methods[k].name,
			    cb_methods[m].name);
	}
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		assert_int_equal(proto_method_lookup(known[i].name,
		    strlen(known[i].name)), known[i].method);
		assert_string_equal(cb_methods[known[i].method].name,
		    known[i].name);
		assert_int_equal(cb_methods[known[i].method].perm,
		    known[i].perm);
	}
	/* The value-carrying method is tagged so the request is wiped. */
	assert_true(cb_methods[CB_M_CRED_SET].flags & CB_MF_SECRET_IN);
	assert_true(cb_methods[CB_M_CRED_SET].flags & CB_MF_AUDIT);
	/* cred.list names users and accounts: audited like cred.status. */
	assert_int_equal(cb_methods[CB_M_CRED_LIST].flags, CB_MF_AUDIT);
	/* A private key comes in, tokens go out: both wiped, all audited. */
	assert_true(cb_methods[CB_M_KEYPAIR_IMPORT].flags & CB_MF_SECRET_IN);
	assert_true(cb_methods[CB_M_TOKEN_PARTNER].flags & CB_MF_SECRET_OUT);
	assert_true(cb_methods[CB_M_TOKEN_EMBED].flags & CB_MF_SECRET_OUT);
	assert_true(cb_methods[CB_M_TOKEN_SSO].flags & CB_MF_SECRET_OUT);
	assert_true(cb_methods[CB_M_KEYPAIR_GENERATE].flags & CB_MF_SECRET_KEY);
	assert_true(cb_methods[CB_M_KEYPAIR_GET].flags & CB_MF_SECRET_KEY);
	assert_true(cb_methods[CB_M_TOKEN_SSO].flags & CB_MF_SECRET_KEY);
	for (m = CB_M_TOKEN_PARTNER; m <= CB_M_TOKEN_VERIFY; m++)
		assert_true(cb_methods[m].flags & CB_MF_AUDIT);
	assert_int_equal(cb_methods[CB_M_HELLO].flags, 0);

	/* Unknown names, prefixes, case, embedded NUL, length mismatch. */
	assert_int_equal(proto_method_lookup("nope", 4), -1);
	assert_int_equal(proto_method_lookup("", 0), -1);
	assert_int_equal(proto_method_lookup("type", 4), -1);
	assert_int_equal(proto_method_lookup("type.", 5), -1);
	assert_int_equal(proto_method_lookup("HELLO", 5), -1);
	assert_int_equal(proto_method_lookup("hello\0", 6), -1);
	assert_int_equal(proto_method_lookup("hellox", 6), -1);
	assert_int_equal(proto_method_lookup("hellox", 5), CB_M_HELLO);
	assert_int_equal(proto_method_lookup("type.get ", 9), -1);
}

static void
test_perm_table(void **state)
{
	static const char *const names[] = {
		"edit:user-access-credentials-types",
		"edit:user-credentials",
		"use:credentials",
		"read:health",
		"edit:keys",
		"use:keys",
	};
	int	p;

	(void)state;
	assert_int_equal(CB_PERM_COUNT, 6);
	assert_int_equal(CB_PERM_ALL, 0x3f);
	assert_int_equal(CB_PERM_TYPES, 0);
	assert_int_equal(CB_PERM_CREDS, 1);
	assert_int_equal(CB_PERM_USE, 2);
	assert_int_equal(CB_PERM_HEALTH, 3);
	assert_int_equal(CB_PERM_KEYS, 4);
	assert_int_equal(CB_PERM_TOKENS, 5);
	for (p = 0; p < CB_PERM_COUNT; p++) {
		assert_string_equal(proto_perm_name(p), names[p]);
		assert_int_equal(proto_perm_lookup(names[p], strlen(names[p])),
		    p);
	}
	assert_null(proto_perm_name(-1));
	assert_null(proto_perm_name(CB_PERM_COUNT));
	assert_null(proto_perm_name(INT_MAX));
	assert_int_equal(proto_perm_lookup("*", 1), -1);
	assert_int_equal(proto_perm_lookup("", 0), -1);
	assert_int_equal(proto_perm_lookup("read", 4), -1);
	assert_int_equal(proto_perm_lookup("read:Health", 11), -1);
	assert_int_equal(proto_perm_lookup("read:healthy", 12), -1);
	assert_int_equal(proto_perm_lookup("read:healthy", 11),
	    CB_PERM_HEALTH);
}

static void
test_error_table(void **state)
{
	static const char *const names[] = {
		NULL, "bad_request", "forbidden", "not_found", "conflict",
		"not_configured", "unavailable", "too_large", "internal",
	};
	struct cb_error	 err;
	char		 big[2 * CB_ERRMSG_MAX];
	int		 c;

	(void)state;
	assert_int_equal(CB_ERR_MAX, 9);
	for (c = 1; c < CB_ERR_MAX; c++) {
		assert_string_equal(cb_error_name(c), names[c]);
		assert_string_equal(cb_error_name(-c), names[c]);
		assert_int_equal(cb_error_from_name(names[c],
		    strlen(names[c])), c);
	}
	assert_int_equal(CB_EBADREQ, 1);
	assert_int_equal(CB_EINTERNAL, 8);
	assert_string_equal(cb_error_name(0), "internal");
	assert_string_equal(cb_error_name(CB_ERR_MAX), "internal");
	assert_string_equal(cb_error_name(-CB_ERR_MAX), "internal");
	assert_string_equal(cb_error_name(INT_MAX), "internal");
	assert_int_equal(cb_error_from_name("ok", 2), 0);
	assert_int_equal(cb_error_from_name("", 0), 0);
	assert_int_equal(cb_error_from_name("bad", 3), 0);
	assert_int_equal(cb_error_from_name("Forbidden", 9), 0);
	assert_int_equal(cb_error_from_name("forbiddenx", 10), 0);

	/* cb_error_set: returns -code; unknown codes become internal. */
	assert_int_equal(cb_error_set(&err, CB_ECONFLICT, "x=%d", 3),
	    -CB_ECONFLICT);
	assert_int_equal(err.code, CB_ECONFLICT);
	assert_string_equal(err.msg, "x=3");
	assert_int_equal(cb_error_set(&err, 0, "zero"), -CB_EINTERNAL);
	assert_int_equal(err.code, CB_EINTERNAL);
	assert_int_equal(cb_error_set(&err, -3, "neg"), -CB_EINTERNAL);
	assert_int_equal(cb_error_set(&err, CB_ERR_MAX, "max"),
	    -CB_EINTERNAL);
	assert_string_equal(err.msg, "max");
	assert_int_equal(cb_error_set(NULL, CB_EFORBIDDEN, "n"),
	    -CB_EFORBIDDEN);
	/* Long messages are cut, NUL-terminated. */
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	cb_error_set(&err, CB_EBADREQ, "%s", big);
	assert_int_equal(strlen(err.msg), CB_ERRMSG_MAX - 1);
	cb_error_clear(&err);
	assert_int_equal(err.code, 0);
	assert_string_equal(err.msg, "");
	cb_error_clear(NULL);
}

/* Assert n bytes at p are zero. */
static void
assert_zero(const uint8_t *p, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (p[i] != 0)
			fail_msg("byte %zu of %zu is 0x%02x, not 0", i, n, p[i]);
}

static void
test_secbuf_growth(void **state)
{
	struct secbuf	 b = SECBUF_INIT;
	uint8_t		 pat[5000];
	size_t		 i, total = 0;

	(void)state;
	for (i = 0; i < sizeof(pat); i++)
		pat[i] = (uint8_t)(i * 7 + 1);

	/* Nothing reserved for nothing. */
	assert_int_equal(secbuf_reserve(&b, 0), 0);
	assert_null(b.data);
	assert_int_equal(b.cap, 0);
	assert_int_equal(secbuf_append(&b, pat, 0), 0);
	assert_null(b.data);

	/* First allocation is 256; then doubling; content kept. */
	assert_int_equal(secbuf_append(&b, pat, 10), 0);
	assert_int_equal(b.len, 10);
	assert_int_equal(b.cap, 256);
	assert_memory_equal(b.data, pat, 10);
	assert_int_equal(secbuf_append(&b, pat + 10, 300), 0);
	assert_int_equal(b.len, 310);
	assert_int_equal(b.cap, 512);
	assert_memory_equal(b.data, pat, 310);
	assert_int_equal(secbuf_reserve(&b, 202), 0);
	assert_int_equal(b.cap, 512);
	assert_int_equal(secbuf_reserve(&b, 203), 0);
	assert_int_equal(b.cap, 1024);
	assert_int_equal(b.len, 310);
	assert_memory_equal(b.data, pat, 310);
	assert_int_equal(secbuf_reserve(&b, 4000), 0);
	assert_int_equal(b.cap, 8192);
	assert_memory_equal(b.data, pat, 310);
	secbuf_free(&b);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	assert_int_equal(b.cap, 0);

	/* Many small appends across many growths. */
	for (i = 1; total + i <= sizeof(pat); i++) {
		assert_int_equal(secbuf_append(&b, pat + total, i), 0);
		total += i;
		assert_int_equal(b.len, total);
		assert_true(b.cap >= b.len);
		assert_memory_equal(b.data, pat, total);
	}
	/* Impossible sizes fail cleanly, before any allocation. */
	assert_int_equal(secbuf_reserve(&b, SIZE_MAX), -CB_EINTERNAL);
	assert_int_equal(secbuf_reserve(&b, SIZE_MAX - b.len), -CB_EINTERNAL);
	assert_int_equal(secbuf_append(&b, pat, SIZE_MAX), -CB_EINTERNAL);
	assert_int_equal(b.len, total);
	assert_memory_equal(b.data, pat, total);
	secbuf_free(&b);
	secbuf_free(&b);		/* twice is harmless */
}

static void
test_secbuf_consume_wipes(void **state)
{
	struct secbuf	 b = SECBUF_INIT;
	uint8_t		 fill[256], *data;
	size_t		 cap;

	(void)state;
	memset(fill, 'S', sizeof(fill));
	memcpy(fill, "ABCDEFGHIJ", 10);
	/* Fill to capacity so every byte up to cap has been written. */
	assert_int_equal(secbuf_append(&b, fill, sizeof(fill)), 0);
	assert_int_equal(b.cap, 256);
	data = b.data;
	cap = b.cap;

	secbuf_consume(&b, 0);
	assert_int_equal(b.len, 256);
	assert_memory_equal(b.data, fill, 256);

	secbuf_consume(&b, 3);
	assert_ptr_equal(b.data, data);
	assert_int_equal(b.cap, cap);
	assert_int_equal(b.len, 253);
	assert_memory_equal(b.data, "DEFGHIJ", 7);
	assert_memory_equal(b.data, fill + 3, 253);
	assert_zero(b.data + b.len, cap - b.len);

	secbuf_consume(&b, 200);
	assert_int_equal(b.len, 53);
	assert_memory_equal(b.data, fill + 203, 53);
	assert_zero(b.data + b.len, cap - b.len);

	/* Consuming everything (or more) is a reset. */
	secbuf_consume(&b, 1000);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, data);
	assert_int_equal(b.cap, cap);
	assert_zero(b.data, cap);

	/* Empty buffer: no-op. */
	secbuf_free(&b);
	secbuf_consume(&b, 5);
	assert_null(b.data);
	assert_int_equal(b.len, 0);
}

static void
test_secbuf_reset_wipes(void **state)
{
	struct secbuf	 b = SECBUF_INIT;
	uint8_t		*data;

	(void)state;
	secbuf_reset(&b);		/* empty: harmless */
	assert_int_equal(secbuf_append(&b, "top secret value", 16), 0);
	data = b.data;
	secbuf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_ptr_equal(b.data, data);
	assert_int_equal(b.cap, 256);
	assert_zero(b.data, 16);
	/* Still usable. */
	assert_int_equal(secbuf_append(&b, "again", 5), 0);
	assert_ptr_equal(b.data, data);
	assert_memory_equal(b.data, "again", 5);
	secbuf_free(&b);
}

static void
test_secbuf_msgpack_write(void **state)
{
	struct secbuf		 b = SECBUF_INIT;
	msgpack_packer		 pk;
	msgpack_sbuffer		 sb;
	msgpack_packer		 spk;
	msgpack_unpacked	 up;
	const msgpack_object	*o, *v;
	size_t			 off = 0;

	(void)state;
	assert_int_equal(secbuf_msgpack_write(&b, "xy", 2), 0);
	assert_int_equal(b.len, 2);
	assert_int_equal(secbuf_msgpack_write(&b, NULL, 0), 0);
	assert_int_equal(b.len, 2);
	secbuf_reset(&b);

	/* The same bytes as msgpack's own sbuffer, across growths. */
	msgpack_packer_init(&pk, &b, secbuf_msgpack_write);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&spk, &sb, msgpack_sbuffer_write);
	proto_pack_response_head(&pk, 9, NULL);
	proto_pack_response_head(&spk, 9, NULL);
	msgpack_pack_map(&pk, 2);
	msgpack_pack_map(&spk, 2);
	proto_pack_kv_str(&pk, "value", "hunter2");
	proto_pack_kv_str(&spk, "value", "hunter2");
	proto_pack_cstr(&pk, "big");
	proto_pack_cstr(&spk, "big");
	msgpack_pack_bin_with_body(&pk, filler, 40000);
	msgpack_pack_bin_with_body(&spk, filler, 40000);
	assert_int_equal(b.len, sb.size);
	assert_memory_equal(b.data, sb.data, sb.size);
	assert_int_equal(b.cap, 65536);

	msgpack_unpacked_init(&up);
	assert_int_equal(msgpack_unpack_next(&up, (const char *)b.data, b.len,
	    &off), MSGPACK_UNPACK_SUCCESS);
	assert_int_equal(off, b.len);
	o = &up.data;
	check_response(o, 9, NULL, NULL);
	v = proto_map_get(&o->via.array.ptr[3], "value");
	assert_non_null(v);
	assert_memory_equal(v->via.str.ptr, "hunter2", 7);
	msgpack_unpacked_destroy(&up);
	msgpack_sbuffer_destroy(&sb);
	secbuf_free(&b);
}

/* Refuse every allocation beyond a buffer's first block. */
static bool
fail_growth(size_t n)
{
	return n > 256;
}

/*
 * A packed write that cannot get memory marks the buffer failed, and the
 * mark sticks: later writes that would fit are refused too, so what was
 * packed is never a message with a hole in it.  Reset starts afresh.
 */
static void
test_secbuf_msgpack_write_failure_sticks(void **state)
{
	struct secbuf		 b = SECBUF_INIT, c = SECBUF_INIT;
	msgpack_packer		 pk;
	size_t			 len;

	(void)state;
	msgpack_packer_init(&pk, &b, secbuf_msgpack_write);
	proto_pack_response_head(&pk, 9, NULL);
	assert_false(secbuf_failed(&b));
	secmem_set_fail_hook(fail_growth);
	assert_int_not_equal(msgpack_pack_bin_with_body(&pk, filler, 1000), 0);
	assert_true(secbuf_failed(&b));
	len = b.len;		/* the bin header fitted, its body did not */
	assert_int_not_equal(msgpack_pack_str_with_body(&pk, "x", 1), 0);
	secmem_set_fail_hook(NULL);
	assert_int_not_equal(msgpack_pack_str_with_body(&pk, "y", 1), 0);
	assert_int_equal(b.len, len);
	assert_true(secbuf_failed(&b));

	/* A move carries the mark; reset clears it. */
	secbuf_move(&c, &b);
	assert_null(b.data);
	assert_false(secbuf_failed(&b));
	assert_true(secbuf_failed(&c));
	assert_int_equal(c.len, len);
	secbuf_reset(&c);
	assert_false(secbuf_failed(&c));
	msgpack_packer_init(&pk, &c, secbuf_msgpack_write);
	assert_int_equal(msgpack_pack_bin_with_body(&pk, filler, 1000), 0);
	assert_false(secbuf_failed(&c));
	assert_int_equal(c.len, 1003);
	secbuf_free(&c);
	secbuf_free(&b);
}

static void
test_wipe_helpers(void **state)
{
	uint8_t	 buf[32];
	char	*s;

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	cb_wipe(buf + 4, 20);
	assert_int_equal(buf[3], 0xa5);
	assert_zero(buf + 4, 20);
	assert_int_equal(buf[24], 0xa5);
	cb_wipe(NULL, 0);
	cb_wipe(buf, 0);
	assert_int_equal(buf[0], 0xa5);
	cb_strfree_wipe(NULL);
	s = strdup("secret");
	assert_non_null(s);
	cb_strfree_wipe(s);		/* no leak under valgrind/ASan */
}

static int
group_setup(void **state)
{
	size_t	i;

	(void)state;
	for (i = 0; i < sizeof(filler); i++)
		filler[i] = (char)('a' + i % 26);
	return 0;
}

/*
 * proto_pack_cstr writes a short string in one piece and the response
 * head all at once: the bytes must be msgpack's own, for every length
 * and every size of msgid.
 */
static void
test_pack_cstr_and_head_match_msgpack(void **state)
{
	static const size_t lens[] = { 0, 1, 30, 31, 32, 255, 256, 70000 };
	static const uint32_t ids[] = { 0, 1, 127, 128, 255, 256, 65535,
	    65536, UINT32_MAX };
	msgpack_sbuffer	 a, b;
	msgpack_packer	 pa, pb;
	char		*s;
	size_t		 i;

	(void)state;
	msgpack_sbuffer_init(&a);
	msgpack_sbuffer_init(&b);
	msgpack_packer_init(&pa, &a, msgpack_sbuffer_write);
	msgpack_packer_init(&pb, &b, msgpack_sbuffer_write);
	s = malloc(70001);
	assert_non_null(s);
	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		memset(s, 'k', lens[i]);
		s[lens[i]] = '\0';
		msgpack_sbuffer_clear(&a);
		msgpack_sbuffer_clear(&b);
		proto_pack_cstr(&pa, s);
		msgpack_pack_str(&pb, lens[i]);
		msgpack_pack_str_body(&pb, s, lens[i]);
		assert_int_equal(a.size, b.size);
		assert_memory_equal(a.data, b.data, a.size);
	}
	msgpack_sbuffer_clear(&a);
	msgpack_sbuffer_clear(&b);
	proto_pack_cstr(&pa, NULL);
	msgpack_pack_nil(&pb);
	assert_int_equal(a.size, b.size);
	assert_memory_equal(a.data, b.data, a.size);
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		msgpack_sbuffer_clear(&a);
		msgpack_sbuffer_clear(&b);
		proto_pack_response_head(&pa, ids[i], NULL);
		msgpack_pack_array(&pb, 4);
		msgpack_pack_uint8(&pb, 1);
		msgpack_pack_uint32(&pb, ids[i]);
		msgpack_pack_nil(&pb);
		assert_int_equal(a.size, b.size);
		assert_memory_equal(a.data, b.data, a.size);
	}
	free(s);
	msgpack_sbuffer_destroy(&a);
	msgpack_sbuffer_destroy(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pack_cstr_and_head_match_msgpack),
		cmocka_unit_test(test_scan_every_format_whole),
		cmocka_unit_test(test_scan_every_format_bytewise),
		cmocka_unit_test(test_scan_back_to_back),
		cmocka_unit_test(test_scan_done_is_sticky),
		cmocka_unit_test(test_scan_bad_c1),
		cmocka_unit_test(test_scan_toobig_from_header),
		cmocka_unit_test(test_scan_exact_max),
		cmocka_unit_test(test_scan_depth_beyond_msgpack_c),
		cmocka_unit_test(test_scan_crosscheck_random),
		cmocka_unit_test(test_parse_request_valid),
		cmocka_unit_test(test_parse_request_empty_params),
		cmocka_unit_test(test_parse_request_invalid),
		cmocka_unit_test(test_parse_notification),
		cmocka_unit_test(test_check_key_types),
		cmocka_unit_test(test_pack_response),
		cmocka_unit_test(test_pack_request_head_roundtrip),
		cmocka_unit_test_setup_teardown(test_map_get, params_setup,
		    params_teardown),
		cmocka_unit_test_setup_teardown(test_get_str, params_setup,
		    params_teardown),
		cmocka_unit_test_setup_teardown(test_get_bool, params_setup,
		    params_teardown),
		cmocka_unit_test_setup_teardown(test_get_int, params_setup,
		    params_teardown),
		cmocka_unit_test_setup_teardown(test_check_keys, params_setup,
		    params_teardown),
		cmocka_unit_test(test_method_table),
		cmocka_unit_test(test_perm_table),
		cmocka_unit_test(test_error_table),
		cmocka_unit_test(test_secbuf_growth),
		cmocka_unit_test(test_secbuf_consume_wipes),
		cmocka_unit_test(test_secbuf_reset_wipes),
		cmocka_unit_test(test_secbuf_msgpack_write),
		cmocka_unit_test(test_secbuf_msgpack_write_failure_sticks),
		cmocka_unit_test(test_wipe_helpers),
	};

	return cmocka_run_group_tests(tests, group_setup, NULL);
}

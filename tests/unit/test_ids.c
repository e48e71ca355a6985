/*
 * Unit tests for proto/ids.c: the syntax of user and type uuids (lower-case
 * 8-4-4-4-12 hex only, no path characters), of type idents
 * ([A-Za-z][A-Za-z0-9_.-]{0,63}, not a uuid) and of key pair idents and
 * account names ([a-z][a-z0-9_]{0,63}).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ids.h"

#define UUID_A	"0f8fad5b-d9cb-469f-a165-70867728950e"

/* uuid syntax: lower-case 8-4-4-4-12 hex only. */
static void
test_uuid_valid(void **state)
{
	assert_true(ids_uuid_valid(UUID_A));
	assert_true(ids_uuid_valid("00000000-0000-0000-0000-000000000000"));
	assert_true(ids_uuid_valid("ffffffff-ffff-ffff-ffff-ffffffffffff"));

	assert_false(ids_uuid_valid(NULL));
	assert_false(ids_uuid_valid(""));
	assert_false(ids_uuid_valid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
	assert_false(ids_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950E"));
	/* 35 and 37 characters. */
	assert_false(ids_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950"));
	assert_false(ids_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950e0"));
	/* Wrong group lengths, same total. */
	assert_false(ids_uuid_valid("0f8fad5bd-9cb-469f-a165-70867728950e"));
	assert_false(ids_uuid_valid("0f8fad5b-d9cb4-69f-a165-70867728950e"));
	assert_false(ids_uuid_valid("0f8fad5b-d9cb-469f-a16570-867728950e"));
	/* No hyphens at all, or extra ones. */
	assert_false(ids_uuid_valid("0f8fad5bd9cb469fa16570867728950e"));
	assert_false(ids_uuid_valid("0f8fad5b-d9cb-469f-a165-7086772895-e"));
	assert_false(ids_uuid_valid("{0f8fad5b-d9cb-469f-a165-70867728950}"));
	/* Not hex. */
	assert_false(ids_uuid_valid("0f8fad5g-d9cb-469f-a165-70867728950e"));
	assert_false(ids_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950 "));
	/* Path-ish. */
	assert_false(ids_uuid_valid("../x"));
	assert_false(ids_uuid_valid("a/b"));
	assert_false(ids_uuid_valid("../../../../../../../../../../etc/pw"));
	assert_false(ids_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728/../"));
}

/* Key pair idents and account names: [a-z][a-z0-9_]{0,63}. */
static void
test_ident_valid(void **state)
{
	char	buf[80];

	assert_true(ids_ident_valid("a"));
	assert_true(ids_ident_valid("github"));
	assert_true(ids_ident_valid("aws_key_2"));
	assert_true(ids_ident_valid("z9_"));
	memset(buf, 'a', 64);
	buf[64] = '\0';
	assert_true(ids_ident_valid(buf));

	buf[64] = 'a';
	buf[65] = '\0';
	assert_false(ids_ident_valid(buf));
	assert_false(ids_ident_valid(NULL));
	assert_false(ids_ident_valid(""));
	assert_false(ids_ident_valid("1abc"));
	assert_false(ids_ident_valid("_abc"));
	assert_false(ids_ident_valid("GitHub"));
	assert_false(ids_ident_valid("gitHub"));
	assert_false(ids_ident_valid("a-b"));
	assert_false(ids_ident_valid("a b"));
	assert_false(ids_ident_valid("a.b"));
	assert_false(ids_ident_valid("../x"));
	assert_false(ids_ident_valid("a/b"));
	assert_false(ids_ident_valid("caf\xc3\xa9"));
	assert_false(ids_ident_valid("a\n"));
}

/* Type idents: [A-Za-z][A-Za-z0-9_.-]{0,63}, case-sensitive, not a uuid. */
static void
test_type_ident_grammar_edges(void **state)
{
	char	buf[80];
	int	c;

	assert_true(ids_type_ident_valid("a"));
	assert_true(ids_type_ident_valid("Z"));
	assert_true(ids_type_ident_valid("github"));
	assert_true(ids_type_ident_valid("GitHub"));
	assert_true(ids_type_ident_valid("gitlab-token"));
	assert_true(ids_type_ident_valid("corp.jira.api_key"));
	assert_true(ids_type_ident_valid("a-"));
	assert_true(ids_type_ident_valid("a."));
	assert_true(ids_type_ident_valid("a_"));
	assert_true(ids_type_ident_valid("a9"));
	assert_true(ids_type_ident_valid("a..b"));

	/* Exactly 64 characters, the last of each class, is the longest. */
	memset(buf, 'a', 63);
	buf[63] = '.';
	buf[64] = '\0';
	assert_true(ids_type_ident_valid(buf));
	buf[0] = 'Q';
	buf[63] = '-';
	assert_true(ids_type_ident_valid(buf));
	buf[64] = 'a';
	buf[65] = '\0';
	assert_false(ids_type_ident_valid(buf));

	/* The first character is a letter, nothing else. */
	assert_false(ids_type_ident_valid(NULL));
	assert_false(ids_type_ident_valid(""));
	assert_false(ids_type_ident_valid("1abc"));
	assert_false(ids_type_ident_valid("_abc"));
	assert_false(ids_type_ident_valid("-abc"));
	assert_false(ids_type_ident_valid(".abc"));
	assert_false(ids_type_ident_valid(".."));
	assert_false(ids_type_ident_valid("@a"));
	assert_false(ids_type_ident_valid("[a"));
	assert_false(ids_type_ident_valid("`a"));
	assert_false(ids_type_ident_valid("{a"));

	/* No other byte anywhere after it. */
	for (c = 1; c < 256; c++) {
		bool	ok;

		ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
		buf[0] = 'a';
		buf[1] = (char)c;
		buf[2] = 'b';
		buf[3] = '\0';
		assert_int_equal(ids_type_ident_valid(buf), ok);
	}
	assert_false(ids_type_ident_valid("a/b"));
	assert_false(ids_type_ident_valid("a b"));
	assert_false(ids_type_ident_valid("a/../b"));
	assert_false(ids_type_ident_valid("caf\xc3\xa9"));
	assert_false(ids_type_ident_valid("a\n"));

	/* An ident that is also a uuid would make a reference ambiguous. */
	assert_false(ids_type_ident_valid(
	    "deadbeef-0000-4000-8000-000000000000"));
	assert_false(ids_type_ident_valid(
	    "abcdefab-cdef-abcd-efab-cdefabcdefab"));
	/* Upper case is not a uuid, so it is an ident. */
	assert_true(ids_type_ident_valid(
	    "ABCDEFAB-CDEF-ABCD-EFAB-CDEFABCDEFAB"));
	assert_true(ids_type_ident_valid(
	    "abcdefab-cdef-abcd-efab-cdefabcdefa"));
}

/* The 16 bytes of a uuid: both ways, in order, and nothing else packs. */
static void
test_uuid_pack_and_unpack(void **state)
{
	static const char *const sorted[] = {
		"00000000-0000-4000-8000-000000000000",
		"0f8fad5b-d9cb-469f-a165-70867728950e",
		"0f8fad5b-d9cb-469f-a165-70867728950f",
		"7c9e6679-7425-40de-944b-e07fc1f90ae7",
		"a0000000-0000-4000-8000-000000000000",
		"ffffffff-ffff-4fff-bfff-ffffffffffff",
	};
	uint8_t		b[IDS_UUID_BYTES], prev[IDS_UUID_BYTES], keep[16];
	char		t[IDS_UUID_LEN + 1];
	size_t		i;

	(void)state;
	assert_true(ids_uuid_pack("0f8fad5b-d9cb-469f-a165-70867728950e", b));
	assert_memory_equal(b, "\x0f\x8f\xad\x5b\xd9\xcb\x46\x9f\xa1\x65"
	    "\x70\x86\x77\x28\x95\x0e", IDS_UUID_BYTES);
	for (i = 0; i < sizeof(sorted) / sizeof(sorted[0]); i++) {
		assert_true(ids_uuid_pack(sorted[i], b));
		ids_uuid_unpack(b, t);
		assert_string_equal(t, sorted[i]);
		/* Blobs sort as the text did. */
		if (i > 0)
			assert_true(memcmp(prev, b, sizeof(b)) < 0);
		memcpy(prev, b, sizeof(b));
	}

	memset(keep, 0xaa, sizeof(keep));
	memcpy(b, keep, sizeof(b));
	assert_false(ids_uuid_pack("0F8FAD5B-D9CB-469F-A165-70867728950E", b));
	assert_false(ids_uuid_pack("0f8fad5b-d9cb-469f-a165-70867728950", b));
	assert_false(ids_uuid_pack("0f8fad5b-d9cb-469f-a165-70867728950e0", b));
	assert_false(ids_uuid_pack("0f8fad5bd9cb-469f-a165-70867728950e0", b));
	assert_false(ids_uuid_pack("", b));
	assert_false(ids_uuid_pack(NULL, b));
	assert_memory_equal(b, keep, sizeof(b));
}

/*
 * Packing checks a uuid in the same pass: it accepts exactly what
 * ids_uuid_valid accepts, whatever byte stands at whatever place, and
 * writes nothing when it refuses.
 */
static void
test_uuid_pack_takes_what_uuid_valid_takes(void **state)
{
	static const char	good[] =
				    "0f8fad5b-d9cb-469f-a165-70867728950e";
	char			s[IDS_UUID_LEN + 2];
	uint8_t			b[IDS_UUID_BYTES], keep[IDS_UUID_BYTES];
	size_t			i;
	unsigned		c;
	bool			ok;

	(void)state;
	memset(keep, 0x5a, sizeof(keep));
	for (i = 0; i <= IDS_UUID_LEN; i++)
		for (c = 0; c < 256; c++) {
			memcpy(s, good, sizeof(good));
			s[IDS_UUID_LEN + 1] = '\0';
			s[i] = (char)c;
			memcpy(b, keep, sizeof(b));
			ok = ids_uuid_pack(s, b);
			assert_int_equal(ok, ids_uuid_valid(s));
			if (!ok)
				assert_memory_equal(b, keep, sizeof(b));
		}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_valid),
		cmocka_unit_test(test_ident_valid),
		cmocka_unit_test(test_type_ident_grammar_edges),
		cmocka_unit_test(test_uuid_pack_and_unpack),
		cmocka_unit_test(test_uuid_pack_takes_what_uuid_valid_takes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

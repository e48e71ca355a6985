/*
 * Unit tests for proto/ids.c: the syntax of user and type uuids (lower-case
 * 8-4-4-4-12 hex only, no path characters) and of type idents
 * ([a-z][a-z0-9_]{0,63}).
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

/* ident syntax: [a-z][a-z0-9_]{0,63}. */
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uuid_valid),
		cmocka_unit_test(test_ident_valid),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

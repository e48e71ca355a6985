/*
 * Unit tests for daemon/sealctx.c: the seal contexts are part of the
 * storage format (a value opens only under the context it was sealed
 * with), so their exact text is pinned here, and values sealed under them
 * with a known key must keep opening.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cb_error.h"
#include "seal.h"
#include "sealctx.h"
#include "secbuf.h"

#define TYPE	"0b7f1e2c-3d4a-4b5c-8d6e-7f8091a2b3c4"
#define USER	"9c8d7e6f-5a4b-4c3d-9e2f-1a0b9c8d7e6f"
#define URL	"https://vault.example:8200"
#define KEY	"u3+Fh9/kQz2LmX8vR1sT0wYb4NcD7eGa"
#define VALUE	"s3cr3t-value"

/* Sealed with KEY (version 1) under the contexts of the tests below. */
#define SEALED_DB	"CB1:1:/lmyZqKNaqBHfZrtvWmZRkHI8alB0YFiwDfYLMDt1GwDDAEP/2Vm1Q=="
#define SEALED_GEN3	"CB1:1:847x6nrLZDaDITZn/bj9PBXT5NXpOtnMdY0HYa6iXq/ooEUUrb5CZA=="
#define SEALED_ROLE	"CB1:1:XYD33b2bgkPG4po+pZEX0I84O+tXLAem3XKdW5HYblLOss6X3qgcHA=="
#define SEALED_SECRET	"CB1:1:BwHy4ByvpgMoaMpU6tQul8CVZe0URiusqjFaXY0EdQ7InNidcWnVlA=="
#define SEALED_KEYPAIR	"CB1:1:vek5y21M/O9AlBaVuG8z5Y6ImX2H4zKDPselJKpyY8wNWGRzwjKINw=="
#define SEALED_PEERKEY	"CB1:1:Ayei1fgz2V8d1MA/o5gq3WBXz866S3nrhigJfDUvUCiTDtGM+AtaFQ=="
#define LONGEST	"a123456789012345678901234567890123456789012345678901234567890123"

static void
test_value_context_text_is_pinned(void **state)
{
	char	buf[SEALCTX_VALUE_MAX];

	(void)state;
	sealctx_value(buf, sizeof(buf), TYPE, USER, 0);
	assert_string_equal(buf, TYPE "/" USER);
	sealctx_value(buf, sizeof(buf), TYPE, USER, 3);
	assert_string_equal(buf, TYPE "/" USER "/3");
	sealctx_value(buf, sizeof(buf), TYPE, USER, INT64_MAX);
	assert_string_equal(buf, TYPE "/" USER "/9223372036854775807");
	sealctx_value(buf, sizeof(buf), TYPE, USER, INT64_MIN);
	assert_string_equal(buf, TYPE "/" USER "/-9223372036854775808");
}

static void
test_vault_id_context_text_is_pinned(void **state)
{
	char	*s;

	(void)state;
	assert_non_null(s = sealctx_vault_id("role_id", URL, "team-a", NULL,
	    false));
	assert_string_equal(s, "vault/role_id");
	free(s);
	assert_non_null(s = sealctx_vault_id("secret_id", URL, "team-a",
	    NULL, true));
	assert_string_equal(s, "vault/secret_id|url=26:" URL
	    "|namespace=6:team-a|ca_file=0:");
	free(s);
	assert_non_null(s = sealctx_vault_id("role_id", "http://v:1",
	    NULL, "/etc/ssl/ca|x.pem", true));
	assert_string_equal(s, "vault/role_id|url=10:http://v:1"
	    "|namespace=0:|ca_file=17:/etc/ssl/ca|x.pem");
	free(s);
	assert_non_null(s = sealctx_vault_id("role_id", NULL, NULL, NULL,
	    true));
	assert_string_equal(s, "vault/role_id|url=0:|namespace=0:|ca_file=0:");
	free(s);
}

static void
test_key_contexts_text_is_pinned(void **state)
{
	char	buf[SEALCTX_KEY_MAX];

	(void)state;
	sealctx_keypair(buf, sizeof(buf), "signer", 1);
	assert_string_equal(buf, "keypair/signer/1");
	sealctx_keypair(buf, sizeof(buf), "datalens_embed", 2147483647);
	assert_string_equal(buf, "keypair/datalens_embed/2147483647");
	sealctx_peerkey(buf, sizeof(buf), "datalens", 12);
	assert_string_equal(buf, "peerkey/datalens/12");
	/* The longest ident and version fit. */
	sealctx_keypair(buf, sizeof(buf), LONGEST, UINT32_MAX);
	assert_string_equal(buf, "keypair/" LONGEST "/4294967295");
	sealctx_peerkey(buf, sizeof(buf), LONGEST, UINT32_MAX);
	assert_string_equal(buf, "peerkey/" LONGEST "/4294967295");
}

/* Accounts' values, links and defaults (SPEC 10). */
static void
test_account_link_and_default_contexts_text_is_pinned(void **state)
{
	char	buf[SEALCTX_VALUE_MAX], lbuf[SEALCTX_LINK_MAX];

	(void)state;
	sealctx_account(buf, sizeof(buf), TYPE, "techno_reader", 0);
	assert_string_equal(buf, TYPE "/account/techno_reader");
	sealctx_account(buf, sizeof(buf), TYPE, "techno_reader", 3);
	assert_string_equal(buf, TYPE "/account/techno_reader/3");
	/* The longest name and generation fit. */
	sealctx_account(buf, sizeof(buf), TYPE, LONGEST, INT64_MIN);
	assert_string_equal(buf, TYPE "/account/" LONGEST
	    "/-9223372036854775808");
	/* No user's value has an account's context. */
	sealctx_value(lbuf, sizeof(lbuf), TYPE, USER, 0);
	sealctx_account(buf, sizeof(buf), TYPE, USER, 0);
	assert_string_not_equal(buf, lbuf);

	sealctx_link(lbuf, sizeof(lbuf), TYPE, USER);
	assert_string_equal(lbuf, "link/" TYPE "/" USER);
	sealctx_default(lbuf, sizeof(lbuf), TYPE);
	assert_string_equal(lbuf, "default/" TYPE);
}

/* Open text under context with KEY: 0 and the value, or an error. */
static int
open_with(const char *context, const char *text)
{
	struct seal_key	*k;
	struct secbuf	 out = SECBUF_INIT;
	struct cb_error	 err;
	int		 rc;

	assert_non_null(k = seal_key_alloc());
	assert_int_equal(seal_key_init(k, (const uint8_t *)KEY, strlen(KEY), 1,
	    &err), 0);
	rc = seal_open(k, context, text, &out, &err);
	if (rc == 0) {
		assert_int_equal(out.len, strlen(VALUE));
		assert_memory_equal(out.data, VALUE, out.len);
	}
	secbuf_free(&out);
	seal_key_free(k);
	return rc;
}

static void
test_values_sealed_under_known_contexts_still_open(void **state)
{
	char	 buf[SEALCTX_VALUE_MAX], *s;

	(void)state;
	sealctx_value(buf, sizeof(buf), TYPE, USER, 0);
	assert_int_equal(open_with(buf, SEALED_DB), 0);
	assert_int_not_equal(open_with(buf, SEALED_GEN3), 0);
	sealctx_value(buf, sizeof(buf), TYPE, USER, 3);
	assert_int_equal(open_with(buf, SEALED_GEN3), 0);
	sealctx_value(buf, sizeof(buf), TYPE, USER, 4);
	assert_int_not_equal(open_with(buf, SEALED_GEN3), 0);

	assert_non_null(s = sealctx_vault_id("role_id", URL, "team-a", NULL,
	    false));
	assert_int_equal(open_with(s, SEALED_ROLE), 0);
	free(s);
	assert_non_null(s = sealctx_vault_id("secret_id", URL, "team-a", NULL,
	    true));
	assert_int_equal(open_with(s, SEALED_SECRET), 0);
	free(s);
	/* Another endpoint: the id does not open. */
	assert_non_null(s = sealctx_vault_id("secret_id", URL, "team-b", NULL,
	    true));
	assert_int_not_equal(open_with(s, SEALED_SECRET), 0);
	free(s);
}

/* A key opens under its own class, ident and version only. */
static void
test_keys_sealed_under_known_contexts_still_open(void **state)
{
	char	buf[SEALCTX_KEY_MAX];

	(void)state;
	sealctx_keypair(buf, sizeof(buf), "signer", 2);
	assert_int_equal(open_with(buf, SEALED_KEYPAIR), 0);
	assert_int_not_equal(open_with(buf, SEALED_PEERKEY), 0);
	sealctx_peerkey(buf, sizeof(buf), "signer", 2);
	assert_int_equal(open_with(buf, SEALED_PEERKEY), 0);
	assert_int_not_equal(open_with(buf, SEALED_KEYPAIR), 0);
	sealctx_keypair(buf, sizeof(buf), "signer", 1);
	assert_int_not_equal(open_with(buf, SEALED_KEYPAIR), 0);
	sealctx_keypair(buf, sizeof(buf), "signer2", 2);
	assert_int_not_equal(open_with(buf, SEALED_KEYPAIR), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_value_context_text_is_pinned),
		cmocka_unit_test(test_vault_id_context_text_is_pinned),
		cmocka_unit_test(test_values_sealed_under_known_contexts_still_open),
		cmocka_unit_test(test_key_contexts_text_is_pinned),
		cmocka_unit_test(
		    test_account_link_and_default_contexts_text_is_pinned),
		cmocka_unit_test(test_keys_sealed_under_known_contexts_still_open),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * fuzz_token: libFuzzer target for daemon/token.c's reading of tokens,
 * the code that meets a token a client hands to token.verify.
 *
 * Each input is used whole, twice:
 *
 *  - as a JWS compact token for token_jws_verify with a fixed RS256 peer
 *    key (loaded once in LLVMFuzzerInitialize), a fixed now and the
 *    default leeway.  It must succeed with a JSON object whose time
 *    claims pass the check, and only for a token whose header says alg
 *    RS256 and has no crit; or fail with bad_request (too_large past
 *    TOKEN_MAX), no claims, and a one-line printable message;
 *  - as base64url text for token_b64url_decode.  What decodes must
 *    encode back to exactly the input (one text per byte string), and a
 *    refusal leaves the output buffer as it was.
 *
 * The seeds (tests/fuzz/make_corpus.py) are tokens signed with the
 * private half of FZ_KEY_SPKI, which is a test key used nowhere else, and
 * broken variants of them.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cb_error.h"
#include "pkey.h"
#include "secbuf.h"
#include "token.h"

int	LLVMFuzzerInitialize(int *, char ***);
int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FZ_ASSERT(x)	do { if (!(x)) fz_fail(#x, __LINE__); } while (0)
#define FZ_NOW		INT64_C(1700000100)

static const char FZ_KEY_SPKI[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAjvDoji0C6VYgdLd97Na6\n"
    "yaLQB8DG30M201odTkPn09qi2Uht8jNvLsLXLjfUbCrj9SxpFxX8J2P0CQ/edn2D\n"
    "RZgxqEoqQDpF2nc92rY9I+wX8YKynU3O7brV/jEreVNRi3iJEClBNwg3yLiiZHtu\n"
    "UIqGPGrwx4rNRCHy3+NcC9rCCYqvU+yIONz9XWe4J2FsZ5aqvhR105XNpK80ChBx\n"
    "9dRSlI/0/G61goPcGQIOa4C3+WZIP4qbWTIwizXDLumOJMXjs4BqtU1wHJ45qQFw\n"
    "STW9EnJK36suPo/eNOTr/ZCZYpTzg1CCvvYGaiTqPhgbDPBAR7dlcErHN1IvJjzP\n"
    "wwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static EVP_PKEY	*fz_peer;

/* An invariant does not hold: say which, then crash for libFuzzer. */
static void
fz_fail(const char *what, int line)
{
	fprintf(stderr, "fuzz_token: invariant violated at line %d: %s\n",
	    line, what);
	__builtin_trap();
}

/* An error message: set, one line of printable ASCII. */
static void
fz_check_msg(const struct cb_error *err)
{
	size_t	i;

	FZ_ASSERT(err->msg[0] != '\0');
	for (i = 0; err->msg[i] != '\0'; i++)
		FZ_ASSERT(err->msg[i] >= 0x20 && err->msg[i] < 0x7f);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct cb_error	err = { 0, "" };

	(void)argc;
	(void)argv;
	if (pkey_public_from_pem(FZ_KEY_SPKI, strlen(FZ_KEY_SPKI), &fz_peer,
	    &err) != 0) {
		fprintf(stderr, "fuzz_token: %s\n", err.msg);
		abort();
	}
	return 0;
}

/* A token was accepted: its header says RS256 and has no crit. */
static void
fz_check_accepted(const uint8_t *data, size_t size, json_t *claims)
{
	struct secbuf	 b = SECBUF_INIT;
	const uint8_t	*dot;
	json_t		*hdr, *v;

	FZ_ASSERT(json_is_object(claims));
	FZ_ASSERT(size <= TOKEN_MAX);
	v = json_object_get(claims, "exp");
	FZ_ASSERT(v == NULL || json_number_value(v) >
	    (double)(FZ_NOW - TOKEN_LEEWAY));
	v = json_object_get(claims, "nbf");
	FZ_ASSERT(v == NULL || json_number_value(v) <=
	    (double)(FZ_NOW + TOKEN_LEEWAY));
	dot = memchr(data, '.', size);
	FZ_ASSERT(dot != NULL);
	FZ_ASSERT(token_b64url_decode((const char *)data,
	    (size_t)(dot - data), &b, NULL) == 0);
	hdr = json_loadb((const char *)b.data, b.len, 0, NULL);
	FZ_ASSERT(json_is_object(hdr));
	v = json_object_get(hdr, "alg");
	FZ_ASSERT(json_is_string(v) && strcmp(json_string_value(v),
	    "RS256") == 0);
	FZ_ASSERT(json_object_get(hdr, "crit") == NULL);
	json_decref(hdr);
	secbuf_free(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cb_error	 err = { 0, "" };
	struct secbuf	 dec = SECBUF_INIT, enc = SECBUF_INIT;
	json_t		*claims = (json_t *)&err;
	int		 r;

	/* As a token. */
	r = token_jws_verify(fz_peer, (const char *)data, size, FZ_NOW,
	    TOKEN_LEEWAY, &claims, &err);
	if (r == 0) {
		fz_check_accepted(data, size, claims);
		json_decref(claims);
	} else {
		FZ_ASSERT(claims == NULL);
		FZ_ASSERT(r == -err.code);
		FZ_ASSERT(r == -CB_EBADREQ ||
		    (r == -CB_ETOOLARGE && size > TOKEN_MAX));
		fz_check_msg(&err);
	}

	/* As base64url: strict, so decoding and encoding give it back. */
	FZ_ASSERT(secbuf_append(&dec, "x", 1) == 0);
	err.code = 0;
	err.msg[0] = '\0';
	r = token_b64url_decode((const char *)data, size, &dec, &err);
	if (r == 0) {
		FZ_ASSERT(dec.len == 1 + size / 4 * 3 + (size % 4 ?
		    size % 4 - 1 : 0));
		FZ_ASSERT(token_b64url_encode(dec.data + 1, dec.len - 1, &enc,
		    &err) == 0);
		FZ_ASSERT(enc.len == size);
		FZ_ASSERT(size == 0 || memcmp(enc.data, data, size) == 0);
	} else {
		FZ_ASSERT(r == -CB_EBADREQ && err.code == CB_EBADREQ);
		FZ_ASSERT(dec.len == 1 && dec.data[0] == 'x');
		fz_check_msg(&err);
	}
	secbuf_free(&dec);
	secbuf_free(&enc);
	return 0;
}

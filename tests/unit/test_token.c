/*
 * Unit tests for daemon/token.c: base64url against RFC 4648's vectors,
 * the partner token opened and checked here with EVP (decryption with
 * the peer's private key, the SHA-1 signature with the key pair's public
 * key), JWS tokens signed by the module checked here with EVP and by
 * PyJWT, a token made by PyJWT checked by the module, and every refusal
 * of token_jws_verify (algorithms, tampering, wrong key, times, shape,
 * crit, size) with its code.
 *
 * Two RSA-2048 keys made once with
 *   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048
 *   openssl pkey -in KEY -pubout
 * and used nowhere but in these tests.  PYJWT_TOKEN was made with PyJWT
 * 2.6 and KEY_A_PKCS8 in a.pem:
 *   /usr/bin/python3 -c 'import jwt; print(jwt.encode({"sub": "user-1",
 *       "name": "Ann Example", "roles": ["USERS"], "iat": 1700000000,
 *       "exp": 4102444800}, open("a.pem").read(), algorithm="RS256"))'
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rsa.h>

#include "cb_error.h"
#include "pkey.h"
#include "secbuf.h"
#include "token.h"

#define PYTHON		"/usr/bin/python3"
#define NOW		INT64_C(1700000100)
#define MSG_ALG		"is not accepted; only RS256"

static const char KEY_A_PKCS8[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCO8OiOLQLpViB0\n"
    "t33s1rrJotAHwMbfQzbTWh1OQ+fT2qLZSG3yM28uwtcuN9RsKuP1LGkXFfwnY/QJ\n"
    "D952fYNFmDGoSipAOkXadz3atj0j7BfxgrKdTc7tutX+MSt5U1GLeIkQKUE3CDfI\n"
    "uKJke25QioY8avDHis1EIfLf41wL2sIJiq9T7Ig43P1dZ7gnYWxnlqq+FHXTlc2k\n"
    "rzQKEHH11FKUj/T8brWCg9wZAg5rgLf5Zkg/iptZMjCLNcMu6Y4kxeOzgGq1TXAc\n"
    "njmpAXBJNb0Sckrfqy4+j9405Ov9kJlilPODUIK+9gZqJOo+GBsM8EBHt2VwSsc3\n"
    "Ui8mPM/DAgMBAAECggEAPf+ExsIELMPUAPvjbPn3+2QYWfyF5amIGqTP6DXw1AVV\n"
    "M+xD79TaSQxue5fwlVgHFrzD+iTpgQZL/zA4W+l1qhZol2dPqxr7WFX26Km5nB6X\n"
    "hgObyDnK4nbywTV/dzipulY2EOHr7NwuIevfV7jnsJxcu9DgjZQJEx+scepx7pu2\n"
    "MQ2hhD40VIRZVmape6oLO9MMY79otc2SQramZ5WeBSPVUAgqskBBHcXS58wliBw0\n"
    "nii3Z33Nfc8QqdQFSb0cjMCkIPOhHkBfFUkNVLYBCFZOMYxHyumco1bN96CCFVc/\n"
    "9x+2xW6LWWbq3f4WVbOCqsx9w0SNM4Ai/ugix9rQMQKBgQDBVRl6RUs5B9QrsEIN\n"
    "yHorizX7w3NiQsvhK4dNZUgFSqXekjKNH82XtTT/C47UcGeCHPGjVoAq20yrRdPi\n"
    "ali4hcSq4H7tccUcwhxPwXwPkdyCSujoKCvtt1yuzW+6VzgYHwU9TpmkCcqCCwT1\n"
    "b7odmXdhG83NnO+387OMLZadEwKBgQC9Rkl1akcVA+rTbP9WR12slTEUk9h2tMmn\n"
    "KRkMixauYO2moz5jEkYnC+C1ov6GF71rUUYgrGIuNgz7Cfau3P7UxEraAPYKxGGl\n"
    "dbaf740krdy4rhvEGx0AK/TIy38joPmjMxw83w0Kk46kx81M/8+8qwrQO5WnJ0HN\n"
    "ZfxBu83IkQKBgHUQVVv/B1xiDCvkDysPYEJrieWHZJ9z+MXAOK45jJF/sM4DUk63\n"
    "miKpW4yvb+3cniBf7ETOBM9ueI8gufrYEB6zCPG6+8BE6mjOdJwqeTdoR9AxEbQ5\n"
    "Vtga9ij2Rhfb5iBc8Cw+IrP8Jb32dCs1Wsm/elS3pDdDNrf4/Zf8pr03AoGALk3g\n"
    "sMHkS+bebwTuXowtBYimLjORNFE8OBHc1+27CcQav7aWD6Sr1ueX/Le4btOl+ngy\n"
    "oNGrX0TH3i5s1BCqoyC2cyjjCHVMsi7fE7eGHyANrHyjvFEpwh3+z5TBMNUz3VIm\n"
    "qVmkFh9NOVDMD/dROgXaKmE5VmBLP9WgZfBtApECgYAmWBJ+g0b6M/NlvwjPDIS0\n"
    "bAWxQf9uDQeU0u69epH35XtTlzC86BTYcnPnagS304eBzPxgisiJNHPol4OJ3G4q\n"
    "H2ZJP8K2XMFlXMoeb0u9K5zki9Yp4Jj1nKK+AGO1VMXsvQk8RFoqdxNGlESXspeh\n"
    "SAhpVq3FafwI95Zhd6c95A==\n"
    "-----END PRIVATE KEY-----\n";

static const char KEY_A_SPKI[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAjvDoji0C6VYgdLd97Na6\n"
    "yaLQB8DG30M201odTkPn09qi2Uht8jNvLsLXLjfUbCrj9SxpFxX8J2P0CQ/edn2D\n"
    "RZgxqEoqQDpF2nc92rY9I+wX8YKynU3O7brV/jEreVNRi3iJEClBNwg3yLiiZHtu\n"
    "UIqGPGrwx4rNRCHy3+NcC9rCCYqvU+yIONz9XWe4J2FsZ5aqvhR105XNpK80ChBx\n"
    "9dRSlI/0/G61goPcGQIOa4C3+WZIP4qbWTIwizXDLumOJMXjs4BqtU1wHJ45qQFw\n"
    "STW9EnJK36suPo/eNOTr/ZCZYpTzg1CCvvYGaiTqPhgbDPBAR7dlcErHN1IvJjzP\n"
    "wwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char KEY_B_PKCS8[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDUNqiLriis9hc4\n"
    "7fX0Id2nigsIHVcgSRx4GzPplA2rKPZDUBL3/citvEM+TKzbBziwNUF33U9jb6cU\n"
    "HPFosBDshOzJiT/ui1LjeHSOcLcu98qq5aTSDP3SafrsnhidrOBwthNVBE6qN5Nx\n"
    "VDMpc8rslDasIyBItWMJsxza1JgrOL4G4pvvm74Ro/rpXpbMs0egXTTwIbCBHaq/\n"
    "on4R0UTuAzBzLRkj2iKwQFuTC3d8oxOXInzNa/p4aYf7ITpLIZw3eT1SS3O/UHwT\n"
    "3Tn80kzsVmYDY9zHHcHykcTAhcVe83snINymdoLPAg0wQYC2HtZ3oYcNLfM3UKwt\n"
    "1QrGDmalAgMBAAECggEAMavUghNC7o8QavEZ4Wl+2/z97YmOj95FBWDaowjWNTKa\n"
    "h7FpqzWx/+Zht+aTDBZR4L6qYv/AWgYzjYvjvoz9fRr04IxZVEC0p00VvRRpcBss\n"
    "SxmC3W6Qh6xqQPGVUey5wPABMORX9FQbVQqwCfsSK5Nag6qaHyKjuoy7y4W4016g\n"
    "yETaR1GzSB4PQHW0Q4YNisAv5TNlyrrnnqTJjuV2/Nut+jkJ7LywE2FwKhoDC6W6\n"
    "qJLmAkzk1FfVCxrzFmkPO69uWHS9uObjIQ1hVcnwOiCG3Q9GFqS68lzcfJmtKAic\n"
    "N66AzD5JhPWZ6guldp6pQyFUFXvQVFCM0VM+7y5lqQKBgQDvBuoFXbm8TwApslLk\n"
    "zp/bmDM9G1X9bNLBqoJbGrlaR717ynKQ8pZrGq8j80iM+O7L/SB8ANi6/PfMV5EJ\n"
    "MK17+AymYQ0EUqXOu2Tov18tXWcL2Ot97HnuE8IoUR4rVSjHODQUshGFTHJIeru1\n"
    "xrrf82kSDfzCUqB15O5GSLJUXQKBgQDjSFKQd5+iZV2MMLvi5zYWYn7xwRb/uVk+\n"
    "j6JpzjfjzUADcIiQTGxnLmfw977KoMvcHxt7LZAhE178Mia+02p058Bu12RGGdfb\n"
    "ZRHdAkztRBUBlLy3bBWwUEfK+N/394erK8n7Owx5LnLdoIGkKbPpeCyJqRnnsudk\n"
    "E44XloQ26QKBgCBwMcY0qAY0OnNuLe27VNp6V0nNsefIovmBaFtwzwK/hamNGest\n"
    "4Nf8MRSR6aCoD9BDM+tgOgl2VzK2F4rFvmV6jkzuEtQpWzMpH1Ku1f3UFS34bE0U\n"
    "kJ+MsubBy3RaBES1DexZFiOe8kt/zIWoyKen4vR+TXUZvYkCXovPRdRJAoGAE+uS\n"
    "0ParFyCrQk5DKW/6XZvkZGv4CBHGsKUGJx/b5itnIOYMEhmgpqp6kbQlFL1jILfZ\n"
    "QMKNj1iTSqdanf8JpZVqWEyojTxWnvQMzMIW2/TLoofWwnzGqd1fbXrCpokbavU7\n"
    "jrluLnDTwHkA49KD4kKWJLqdeqFDhpHwMkEO9YECgYEAqRGIcyb3R2Ux8rcdtFC+\n"
    "IY8/Lgi4viBymHZQ11pgdaBxCzHYQ7LEQYqrYG6gh5zRbhw/3w7UOuJURUJ5kx/r\n"
    "pQ4gzdmLUx9hNHC3F/EUvPWwAPqJKbcAAiYblgS/crZjYKO3qZybcRWNol1qwwa8\n"
    "r5VtXPpjkENrjEZwVNns42E=\n"
    "-----END PRIVATE KEY-----\n";

static const char KEY_B_SPKI[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA1Daoi64orPYXOO319CHd\n"
    "p4oLCB1XIEkceBsz6ZQNqyj2Q1AS9/3IrbxDPkys2wc4sDVBd91PY2+nFBzxaLAQ\n"
    "7ITsyYk/7otS43h0jnC3LvfKquWk0gz90mn67J4YnazgcLYTVQROqjeTcVQzKXPK\n"
    "7JQ2rCMgSLVjCbMc2tSYKzi+BuKb75u+EaP66V6WzLNHoF008CGwgR2qv6J+EdFE\n"
    "7gMwcy0ZI9oisEBbkwt3fKMTlyJ8zWv6eGmH+yE6SyGcN3k9Uktzv1B8E905/NJM\n"
    "7FZmA2Pcxx3B8pHEwIXFXvN7JyDcpnaCzwINMEGAth7Wd6GHDS3zN1CsLdUKxg5m\n"
    "pQIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char PYJWT_TOKEN[] =
    "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyLTEiLCJ"
    "uYW1lIjoiQW5uIEV4YW1wbGUiLCJyb2xlcyI6WyJVU0VSUyJdLCJpYXQiOjE"
    "3MDAwMDAwMDAsImV4cCI6NDEwMjQ0NDgwMH0.CngkX1ne0XWuoSXUO1JZY8l"
    "bekaiIPJeGmejTa4kMi3LXxLTuqLo7CGgopgC3uGFxNYVH3Rtat_5fCwTFYK"
    "bhUBUZGtMSD50s5xrcXI8ist5QYtaQg8vXgwkI_y_WbuZlZid1BSG9PGj5Ut"
    "1y8-nKCbCYmQ3tfJAtq9t3xIvcw3fI0_MswFc0ZV_EAftt8KptaYzI3NZo6C"
    "6uf445qX16P945fiEFjkBRk4q05WufO0bF7uTz12aAsc1FYXk2BUMXjiEOKb"
    "M2e7aIWXZYyuVWOCdoF2-t9xlNtDjyHQM8Xd2x9C8t4VY1nOMJqkDSdJ2tJO"
    "fWP8PZmFbbfjBH5c3yA";

static EVP_PKEY	*key_a, *key_a_pub, *key_b, *key_b_pub;

static EVP_PKEY *
load(const char *pem, bool priv)
{
	struct cb_error	 err = { 0, "" };
	EVP_PKEY	*k = NULL;
	int		 r;

	r = priv ? pkey_private_from_pem(pem, strlen(pem), &k, &err) :
	    pkey_public_from_pem(pem, strlen(pem), &k, &err);
	if (r != 0)
		fail_msg("loading a test key: %s", err.msg);
	return k;
}

static int
setup_keys(void **state)
{
	(void)state;
	key_a = load(KEY_A_PKCS8, true);
	key_a_pub = load(KEY_A_SPKI, false);
	key_b = load(KEY_B_PKCS8, true);
	key_b_pub = load(KEY_B_SPKI, false);
	return 0;
}

static int
teardown_keys(void **state)
{
	(void)state;
	EVP_PKEY_free(key_a);
	EVP_PKEY_free(key_a_pub);
	EVP_PKEY_free(key_b);
	EVP_PKEY_free(key_b_pub);
	return 0;
}

/* Standard base64 of the test's own (EVP_EncodeBlock), NUL ended. */
static char *
b64(const uint8_t *p, size_t n)
{
	char	*s = malloc((n + 2) / 3 * 4 + 1);

	assert_non_null(s);
	EVP_EncodeBlock((unsigned char *)s, p, (int)n);
	return s;
}

/* base64url without padding, from b64(). */
static char *
b64url(const void *p, size_t n)
{
	char	*s = b64(p, n), *c;

	for (c = s; *c != '\0'; c++)
		if (*c == '+')
			*c = '-';
		else if (*c == '/')
			*c = '_';
	while (c > s && c[-1] == '=')
		*--c = '\0';
	return s;
}

/* Decode standard base64 (with padding) into out; the length. */
static size_t
unb64(const char *s, size_t n, uint8_t *out)
{
	int	m = EVP_DecodeBlock(out, (const unsigned char *)s, (int)n);

	assert_true(m >= 0);
	if (n > 0 && s[n - 1] == '=')
		m--;
	if (n > 1 && s[n - 2] == '=')
		m--;
	return (size_t)m;
}

/* Decode base64url (no padding) through unb64. */
static size_t
unb64url(const char *s, size_t n, uint8_t *out)
{
	char	buf[8192];
	size_t	i;

	assert_true(n + 3 < sizeof(buf));
	for (i = 0; i < n; i++)
		buf[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
	while (i % 4 != 0)
		buf[i++] = '=';
	return unb64(buf, i, out);
}

/*
 * "b64url(hdr).b64url(payload).b64url(sig)", signed here with EVP:
 * RS256 with k, or PS256 when pss, or with sig given as is when k is
 * NULL.
 */
static char *
make_token(EVP_PKEY *k, bool pss, const char *hdr, const char *payload,
    const uint8_t *rawsig, size_t rawsiglen)
{
	EVP_MD_CTX	*mctx;
	EVP_PKEY_CTX	*pctx;
	uint8_t		 sig[512];
	size_t		 siglen = sizeof(sig);
	char		*h, *p, *s, *tok;

	h = b64url(hdr, strlen(hdr));
	p = b64url(payload, strlen(payload));
	tok = malloc(strlen(h) + strlen(p) + 1024);
	assert_non_null(tok);
	sprintf(tok, "%s.%s", h, p);
	if (k != NULL) {
		mctx = EVP_MD_CTX_new();
		assert_int_equal(EVP_DigestSignInit_ex(mctx, &pctx, "SHA256",
		    NULL, NULL, k, NULL), 1);
		if (pss) {
			assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx,
			    RSA_PKCS1_PSS_PADDING), 1);
			assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx,
			    32), 1);
		}
		assert_int_equal(EVP_DigestSign(mctx, sig, &siglen,
		    (uint8_t *)tok, strlen(tok)), 1);
		EVP_MD_CTX_free(mctx);
		rawsig = sig;
		rawsiglen = siglen;
	}
	s = b64url(rawsig, rawsiglen);
	strcat(tok, ".");
	strcat(tok, s);
	free(h);
	free(p);
	free(s);
	return tok;
}

/* token_jws_verify of tok with peer at NOW, leeway 30: the result. */
static int
verify(EVP_PKEY *peer, const char *tok, struct cb_error *err,
    json_t **claims)
{
	json_t	*c = NULL;
	int	 r;

	err->code = 0;
	err->msg[0] = '\0';
	r = token_jws_verify(peer, tok, strlen(tok), NOW, TOKEN_LEEWAY, &c,
	    err);
	assert_int_equal(ERR_peek_error(), 0);
	if (r != 0)
		assert_null(c);
	if (claims != NULL)
		*claims = c;
	else
		json_decref(c);
	return r;
}

/* tok is refused as bad_request with a message holding want. */
static void
refused(EVP_PKEY *peer, const char *tok, const char *want)
{
	struct cb_error	 err;
	const char	*d;
	char		 part[17];

	assert_int_equal(verify(peer, tok, &err, NULL), -CB_EBADREQ);
	assert_int_equal(err.code, CB_EBADREQ);
	if (strstr(err.msg, want) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
	/* Never the token itself: not its payload, not its signature. */
	if ((d = strchr(tok, '.')) != NULL && strlen(d + 1) >= 16) {
		memcpy(part, d + 1, 16);
		part[16] = '\0';
		assert_null(strstr(err.msg, part));
	}
}

static void
test_b64url_rfc4648_vectors(void **state)
{
	static const struct {
		const char	*in, *out;
	} v[] = {
		{ "", "" }, { "f", "Zg" }, { "fo", "Zm8" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
		/* The two characters that differ from standard base64. */
		{ "\xfb\xff\xbf", "-_-_" }, { "\xfb\xf0", "-_A" },
		{ "\x03\xef\xff", "A-__" },
	};
	struct cb_error	 err = { 0, "" };
	struct secbuf	 b = SECBUF_INIT;
	size_t		 i, n;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		n = strlen(v[i].in);
		secbuf_reset(&b);
		assert_int_equal(secbuf_append(&b, "<", 1), 0);
		assert_int_equal(token_b64url_encode((const uint8_t *)v[i].in,
		    n, &b, &err), 0);
		assert_int_equal(b.len, 1 + strlen(v[i].out));
		assert_memory_equal(b.data + 1, v[i].out, strlen(v[i].out));

		secbuf_reset(&b);
		assert_int_equal(secbuf_append(&b, "<", 1), 0);
		assert_int_equal(token_b64url_decode(v[i].out,
		    strlen(v[i].out), &b, &err), 0);
		assert_int_equal(b.len, 1 + n);
		assert_memory_equal(b.data + 1, v[i].in, n);
	}
	secbuf_free(&b);
}

static void
test_b64url_decode_refuses_padding_whitespace_and_other_characters(
    void **state)
{
	static const char *const bad[] = {
		"Zg==", "Zm8=", "Zm9v\n", " Zm9v", "Zm 9v", "Zm9v\r\n",
		"Zm+v", "Zm/v", "Zm9v=", "Z", "Zm9vY", "Zm9v\tYg", "Zm.v",
		/* Unused bits set: not what an encoder writes. */
		"Zh", "Zm9",
	};
	struct cb_error	 err = { 0, "" };
	struct secbuf	 b = SECBUF_INIT;
	size_t		 i;

	(void)state;
	assert_int_equal(secbuf_append(&b, "keep", 4), 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err.code = 0;
		if (token_b64url_decode(bad[i], strlen(bad[i]), &b,
		    &err) != -CB_EBADREQ)
			fail_msg("\"%s\" was decoded", bad[i]);
		assert_int_equal(err.code, CB_EBADREQ);
		/* Nothing appended. */
		assert_int_equal(b.len, 4);
		assert_memory_equal(b.data, "keep", 4);
	}
	/* An embedded NUL too. */
	assert_int_equal(token_b64url_decode("Zm\0v", 4, &b, &err),
	    -CB_EBADREQ);
	secbuf_free(&b);
}

/* Split "P:K:C:S"; the parts' offsets in *c and *s. */
static void
split_partner(const char *tok, size_t len, unsigned *pv, unsigned *kv,
    size_t *c, size_t *clen, size_t *s, size_t *slen)
{
	const char	*p1, *p2, *p3;

	assert_int_equal(sscanf(tok, "%u:%u:", pv, kv), 2);
	p1 = memchr(tok, ':', len);
	p2 = memchr(p1 + 1, ':', len - (size_t)(p1 + 1 - tok));
	p3 = memchr(p2 + 1, ':', len - (size_t)(p2 + 1 - tok));
	assert_non_null(p3);
	assert_null(memchr(p3 + 1, ':', len - (size_t)(p3 + 1 - tok)));
	*c = (size_t)(p2 + 1 - tok);
	*clen = (size_t)(p3 - p2 - 1);
	*s = (size_t)(p3 + 1 - tok);
	*slen = len - *s;
}

static void
test_partner_token_opens_with_peer_key_and_verifies_with_sha1(void **state)
{
	static const char	 json[] = "{\"db_name\":\"client_1234383\"}";
	struct cb_error		 err = { 0, "" };
	struct secbuf		 b = SECBUF_INIT;
	EVP_PKEY_CTX		*dctx;
	EVP_MD_CTX		*mctx;
	uint8_t			 ct[1024], sig[1024], pt[512];
	size_t			 c, clen, s, slen, ctn, sign, ptn;
	unsigned		 pv, kv;
	char			*tok;

	(void)state;
	assert_int_equal(token_partner(key_a, 3, key_b_pub, 17, json,
	    strlen(json), &b, &err), 0);
	tok = strndup((char *)b.data, b.len);
	assert_non_null(tok);
	assert_null(strchr(tok, '\n'));
	split_partner(tok, b.len, &pv, &kv, &c, &clen, &s, &slen);
	assert_int_equal(pv, 17);
	assert_int_equal(kv, 3);
	assert_memory_equal(tok, "17:3:", 5);
	/* Standard, padded base64 of 256 bytes each. */
	assert_int_equal(clen, 344);
	assert_int_equal(slen, 344);
	assert_int_equal(tok[c + clen - 1], '=');
	ctn = unb64(tok + c, clen, ct);
	sign = unb64(tok + s, slen, sig);
	assert_int_equal(ctn, 256);
	assert_int_equal(sign, 256);

	/* C opens with the peer's private key to the payload. */
	dctx = EVP_PKEY_CTX_new_from_pkey(NULL, key_b, NULL);
	assert_int_equal(EVP_PKEY_decrypt_init(dctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(dctx,
	    RSA_PKCS1_PADDING), 1);
	ptn = sizeof(pt);
	assert_int_equal(EVP_PKEY_decrypt(dctx, pt, &ptn, ct, ctn), 1);
	assert_int_equal(ptn, strlen(json));
	assert_memory_equal(pt, json, ptn);
	EVP_PKEY_CTX_free(dctx);

	/* S is a SHA-1 PKCS#1 v1.5 signature of C by the key pair. */
	mctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit_ex(mctx, NULL, "SHA1", NULL,
	    NULL, key_a_pub, NULL), 1);
	assert_int_equal(EVP_DigestVerify(mctx, sig, sign, ct, ctn), 1);
	EVP_MD_CTX_free(mctx);
	/* Not with SHA-256, not by the other key. */
	mctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit_ex(mctx, NULL, "SHA256", NULL,
	    NULL, key_a_pub, NULL), 1);
	assert_int_not_equal(EVP_DigestVerify(mctx, sig, sign, ct, ctn), 1);
	EVP_MD_CTX_free(mctx);
	mctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit_ex(mctx, NULL, "SHA1", NULL,
	    NULL, key_b_pub, NULL), 1);
	assert_int_not_equal(EVP_DigestVerify(mctx, sig, sign, ct, ctn), 1);
	EVP_MD_CTX_free(mctx);
	ERR_clear_error();
	free(tok);
	secbuf_free(&b);
}

static void
test_partner_token_payload_limit_is_key_size_less_11(void **state)
{
	struct cb_error	 err = { 0, "" };
	struct secbuf	 b = SECBUF_INIT;
	char		 json[300];

	(void)state;
	memset(json, 'x', sizeof(json));
	/* RSA-2048: 256 bytes, 245 of payload. */
	assert_int_equal(token_partner(key_a, 1, key_b_pub, 1, json, 245, &b,
	    &err), 0);
	assert_true(b.len > 0);
	secbuf_reset(&b);
	assert_int_equal(secbuf_append(&b, "keep", 4), 0);
	assert_int_equal(token_partner(key_a, 1, key_b_pub, 1, json, 246, &b,
	    &err), -CB_ETOOLARGE);
	assert_int_equal(err.code, CB_ETOOLARGE);
	assert_string_equal(err.msg,
	    "payload is 246 bytes; a partner token holds at most 245");
	assert_int_equal(b.len, 4);
	secbuf_free(&b);
}

/* Split a JWS at its dots; the three parts' offsets and lengths. */
static void
split_jws(const char *tok, size_t off[3], size_t len[3])
{
	const char	*d1 = strchr(tok, '.'), *d2;

	assert_non_null(d1);
	d2 = strchr(d1 + 1, '.');
	assert_non_null(d2);
	assert_null(strchr(d2 + 1, '.'));
	off[0] = 0;
	len[0] = (size_t)(d1 - tok);
	off[1] = (size_t)(d1 + 1 - tok);
	len[1] = (size_t)(d2 - d1 - 1);
	off[2] = (size_t)(d2 + 1 - tok);
	len[2] = strlen(d2 + 1);
}

/* The claims the sign tests use, in this key order. */
static json_t *
sign_claims(void)
{
	json_t	*c;

	c = json_pack("{s:s, s:I, s:I, s:{s:[s,s]}, s:s}", "embedId", "e-1",
	    "iat", (json_int_t)1700000000, "exp", (json_int_t)1700000600,
	    "params", "region", "eu", "us", "dlEmbedService",
	    TOKEN_EMBED_SERVICE);
	assert_non_null(c);
	return c;
}

#define SIGN_CLAIMS_JSON "{\"embedId\":\"e-1\",\"iat\":1700000000," \
	"\"exp\":1700000600,\"params\":{\"region\":[\"eu\",\"us\"]}," \
	"\"dlEmbedService\":\"YC_DATALENS_EMBEDDING_SERVICE_MARK\"}"

/* Sign with alg and check the token here with EVP; saltlen for PS256. */
static char *
sign_and_check(enum token_alg alg, const char *hdr)
{
	struct cb_error	 err = { 0, "" };
	struct secbuf	 b = SECBUF_INIT;
	EVP_MD_CTX	*mctx;
	EVP_PKEY_CTX	*pctx;
	json_t		*claims = sign_claims();
	uint8_t		 raw[1024];
	size_t		 off[3], len[3], n;
	char		*tok;

	assert_int_equal(token_jws_sign(key_a, alg, claims, &b, &err), 0);
	json_decref(claims);
	tok = strndup((char *)b.data, b.len);
	secbuf_free(&b);
	split_jws(tok, off, len);

	n = unb64url(tok + off[0], len[0], raw);
	assert_int_equal(n, strlen(hdr));
	assert_memory_equal(raw, hdr, n);
	n = unb64url(tok + off[1], len[1], raw);
	assert_int_equal(n, strlen(SIGN_CLAIMS_JSON));
	assert_memory_equal(raw, SIGN_CLAIMS_JSON, n);

	n = unb64url(tok + off[2], len[2], raw);
	assert_int_equal(n, 256);
	mctx = EVP_MD_CTX_new();
	assert_int_equal(EVP_DigestVerifyInit_ex(mctx, &pctx, "SHA256", NULL,
	    NULL, key_a_pub, NULL), 1);
	if (alg == TOKEN_PS256) {
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx,
		    RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md_name(pctx,
		    "SHA256", NULL), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32),
		    1);
	}
	assert_int_equal(EVP_DigestVerify(mctx, raw, n, (uint8_t *)tok,
	    len[0] + 1 + len[1]), 1);
	EVP_MD_CTX_free(mctx);
	if (alg == TOKEN_PS256) {
		/* Another salt length does not verify: it is 32. */
		mctx = EVP_MD_CTX_new();
		assert_int_equal(EVP_DigestVerifyInit_ex(mctx, &pctx, "SHA256",
		    NULL, NULL, key_a_pub, NULL), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx,
		    RSA_PKCS1_PSS_PADDING), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 20),
		    1);
		assert_int_not_equal(EVP_DigestVerify(mctx, raw, n,
		    (uint8_t *)tok, len[0] + 1 + len[1]), 1);
		EVP_MD_CTX_free(mctx);
		ERR_clear_error();
	}
	return tok;
}

/*
 * PyJWT's verdict on tok under alg with KEY_A_SPKI: "ok <embedId>" or
 * its exception.  Token and key go through stdin.
 */
static void
pyjwt_check(const char *tok, const char *alg)
{
	static const char	prog[] =
	    "import sys, jwt\n"
	    "alg = sys.stdin.readline().strip()\n"
	    "tok = sys.stdin.readline().strip()\n"
	    "key = sys.stdin.read()\n"
	    "c = jwt.decode(tok, key, algorithms=[alg],\n"
	    "    options={\"verify_exp\": False})\n"
	    "print(\"ok \" + c[\"embedId\"] + \" \" + c[\"dlEmbedService\"])\n";
	char			cmd[1024], out[256];
	FILE			*fp, *in;
	char			path[] = "/tmp/test_token_XXXXXX";
	int			fd;
	size_t			n;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	in = fdopen(fd, "w");
	assert_non_null(in);
	fprintf(in, "%s\n%s\n%s", alg, tok, KEY_A_SPKI);
	fclose(in);
	snprintf(cmd, sizeof(cmd), PYTHON " -c '%s' < %s 2>&1", prog, path);
	fp = popen(cmd, "r");
	assert_non_null(fp);
	n = fread(out, 1, sizeof(out) - 1, fp);
	out[n] = '\0';
	pclose(fp);
	unlink(path);
	if (strcmp(out, "ok e-1 " TOKEN_EMBED_SERVICE "\n") != 0)
		fail_msg("PyJWT (%s): %s", alg, out);
}

static void
test_rs256_token_checks_with_evp_pyjwt_and_verify(void **state)
{
	struct cb_error	 err;
	json_t		*claims = NULL;
	char		*tok;

	(void)state;
	tok = sign_and_check(TOKEN_RS256,
	    "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
	pyjwt_check(tok, "RS256");
	assert_int_equal(verify(key_a_pub, tok, &err, &claims), 0);
	assert_string_equal(json_string_value(json_object_get(claims,
	    "embedId")), "e-1");
	json_decref(claims);
	free(tok);
}

static void
test_ps256_token_checks_with_evp_salt_32_and_pyjwt(void **state)
{
	char	*tok;

	(void)state;
	tok = sign_and_check(TOKEN_PS256,
	    "{\"alg\":\"PS256\",\"typ\":\"JWT\"}");
	pyjwt_check(tok, "PS256");
	/* verify takes RS256 only. */
	refused(key_a_pub, tok, "token algorithm \"PS256\" " MSG_ALG);
	free(tok);
}

static void
test_pyjwt_token_verifies_and_yields_claims(void **state)
{
	struct cb_error	 err;
	json_t		*claims = NULL;
	char		*s;

	(void)state;
	assert_int_equal(verify(key_a_pub, PYJWT_TOKEN, &err, &claims), 0);
	s = json_dumps(claims, JSON_COMPACT);
	assert_string_equal(s, "{\"sub\":\"user-1\",\"name\":\"Ann Example\","
	    "\"roles\":[\"USERS\"],\"iat\":1700000000,\"exp\":4102444800}");
	free(s);
	json_decref(claims);
	/* Not with the other key. */
	refused(key_b_pub, PYJWT_TOKEN, "signature does not verify");
}

static void
test_verify_refuses_other_algorithms(void **state)
{
	static const char	 payload[] = "{\"sub\":\"user-1\"}";
	uint8_t			 mac[EVP_MAX_MD_SIZE];
	unsigned		 maclen = 0;
	char			*tok, *h, *p, *in;

	(void)state;
	tok = make_token(NULL, false, "{\"alg\":\"none\",\"typ\":\"JWT\"}",
	    payload, (const uint8_t *)"", 0);
	refused(key_a_pub, tok, "token algorithm \"none\" " MSG_ALG);
	free(tok);

	/* HS256 keyed with the public key's PEM text: the classic attack. */
	h = b64url("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", 27);
	p = b64url(payload, strlen(payload));
	in = malloc(strlen(h) + strlen(p) + 2);
	sprintf(in, "%s.%s", h, p);
	assert_non_null(HMAC(EVP_sha256(), KEY_A_SPKI, (int)strlen(KEY_A_SPKI),
	    (uint8_t *)in, strlen(in), mac, &maclen));
	tok = make_token(NULL, false, "{\"alg\":\"HS256\",\"typ\":\"JWT\"}",
	    payload, mac, maclen);
	refused(key_a_pub, tok, "token algorithm \"HS256\" " MSG_ALG);
	free(tok);
	free(in);
	free(h);
	free(p);

	tok = make_token(key_a, true, "{\"alg\":\"PS256\",\"typ\":\"JWT\"}",
	    payload, NULL, 0);
	refused(key_a_pub, tok, "token algorithm \"PS256\" " MSG_ALG);
	free(tok);
	tok = make_token(key_a, false, "{\"alg\":\"ES256\"}", payload, NULL,
	    0);
	refused(key_a_pub, tok, "token algorithm \"ES256\" " MSG_ALG);
	free(tok);
	/* Even with a good RS256 signature: the header says otherwise. */
	tok = make_token(key_a, false, "{\"alg\":\"rs256\"}", payload, NULL,
	    0);
	refused(key_a_pub, tok, "token algorithm \"rs256\" " MSG_ALG);
	free(tok);
	tok = make_token(key_a, false, "{\"typ\":\"JWT\"}", payload, NULL, 0);
	refused(key_a_pub, tok, "token algorithm (none given) " MSG_ALG);
	free(tok);
	tok = make_token(key_a, false, "{\"alg\":256}", payload, NULL, 0);
	refused(key_a_pub, tok, "token algorithm (not a string) " MSG_ALG);
	free(tok);
	tok = make_token(key_a, false, "{\"alg\":null}", payload, NULL, 0);
	refused(key_a_pub, tok, "token algorithm (not a string) " MSG_ALG);
	free(tok);
	tok = make_token(key_a, false, "{\"alg\":\"RS256\\u0000\"}", payload,
	    NULL, 0);
	refused(key_a_pub, tok, "header is not base64url of a JSON object");
	free(tok);
	/* The same token with RS256 is accepted: the refusals are the alg. */
	tok = make_token(key_a, false, "{\"alg\":\"RS256\"}", payload, NULL,
	    0);
	{
		struct cb_error	err;

		assert_int_equal(verify(key_a_pub, tok, &err, NULL), 0);
	}
	free(tok);
}

static void
test_verify_refuses_tampering_and_wrong_key(void **state)
{
	struct cb_error	 err;
	size_t		 off[3], len[3];
	char		*tok, *other, *p, *mixed;

	(void)state;
	tok = make_token(key_a, false, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
	    "{\"sub\":\"user-1\",\"roles\":[\"USERS\"]}", NULL, 0);
	assert_int_equal(verify(key_a_pub, tok, &err, NULL), 0);
	refused(key_b_pub, tok, "signature does not verify");

	/* Another payload under the first token's signature. */
	other = make_token(key_b, false, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
	    "{\"sub\":\"user-1\",\"roles\":[\"ADMINISTRATORS\"]}", NULL, 0);
	split_jws(tok, off, len);
	mixed = malloc(strlen(tok) + strlen(other) + 1);
	p = strchr(other, '.') + 1;
	sprintf(mixed, "%.*s.%.*s.%s", (int)len[0], tok,
	    (int)(strchr(p, '.') - p), p, tok + off[2]);
	refused(key_a_pub, mixed, "signature does not verify");

	/* One bit of the signature flipped. */
	strcpy(mixed, tok);
	mixed[off[2] + 10] = mixed[off[2] + 10] == 'A' ? 'B' : 'A';
	refused(key_a_pub, mixed, "signature does not verify");
	/* The signature cut short (to 255 bytes), or empty. */
	strcpy(mixed, tok);
	mixed[off[2] + len[2] - 2] = '\0';
	refused(key_a_pub, mixed, "signature does not verify");
	strcpy(mixed, tok);
	mixed[off[2]] = '\0';
	refused(key_a_pub, mixed, "signature is not base64url");
	/* Padding added to the signature. */
	sprintf(mixed, "%s=", tok);
	refused(key_a_pub, mixed, "signature is not base64url");
	free(mixed);
	free(other);
	free(tok);
}

/* A token signed with key A whose payload is payload; verify's result. */
static int
verify_payload(const char *payload, struct cb_error *err)
{
	char	*tok;
	int	 r;

	tok = make_token(key_a, false, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
	    payload, NULL, 0);
	r = verify(key_a_pub, tok, err, NULL);
	free(tok);
	return r;
}

static void
test_verify_checks_exp_and_nbf_with_leeway(void **state)
{
	struct cb_error	 err;
	char		 pl[128];

	(void)state;
	/* exp <= now - leeway is expired (PyJWT's rule). */
	snprintf(pl, sizeof(pl), "{\"exp\":%lld}", (long long)(NOW - 31));
	assert_int_equal(verify_payload(pl, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "token has expired"));
	snprintf(pl, sizeof(pl), "{\"exp\":%lld}", (long long)(NOW - 30));
	assert_int_equal(verify_payload(pl, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "token has expired"));
	/* Within the leeway. */
	snprintf(pl, sizeof(pl), "{\"exp\":%lld}", (long long)(NOW - 29));
	assert_int_equal(verify_payload(pl, &err), 0);
	snprintf(pl, sizeof(pl), "{\"exp\":%lld.5}", (long long)(NOW - 30));
	assert_int_equal(verify_payload(pl, &err), 0);
	snprintf(pl, sizeof(pl), "{\"exp\":%lld.0}", (long long)(NOW - 30));
	assert_int_equal(verify_payload(pl, &err), -CB_EBADREQ);
	snprintf(pl, sizeof(pl), "{\"exp\":%lld}", (long long)(NOW + 3600));
	assert_int_equal(verify_payload(pl, &err), 0);

	/* nbf > now + leeway is not valid yet. */
	snprintf(pl, sizeof(pl), "{\"nbf\":%lld}", (long long)(NOW + 31));
	assert_int_equal(verify_payload(pl, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "token is not valid yet"));
	snprintf(pl, sizeof(pl), "{\"nbf\":%lld.5}", (long long)(NOW + 30));
	assert_int_equal(verify_payload(pl, &err), -CB_EBADREQ);
	snprintf(pl, sizeof(pl), "{\"nbf\":%lld}", (long long)(NOW + 30));
	assert_int_equal(verify_payload(pl, &err), 0);
	snprintf(pl, sizeof(pl), "{\"nbf\":%lld}", (long long)(NOW - 3600));
	assert_int_equal(verify_payload(pl, &err), 0);

	/* A leeway of 0. */
	{
		json_t	*c = NULL;
		char	*tok;

		snprintf(pl, sizeof(pl), "{\"exp\":%lld}", (long long)NOW);
		tok = make_token(key_a, false, "{\"alg\":\"RS256\"}", pl,
		    NULL, 0);
		assert_int_equal(token_jws_verify(key_a_pub, tok, strlen(tok),
		    NOW - 1, 0, &c, &err), 0);
		json_decref(c);
		c = NULL;
		assert_int_equal(token_jws_verify(key_a_pub, tok, strlen(tok),
		    NOW, 0, &c, &err), -CB_EBADREQ);
		assert_null(c);
		free(tok);
	}
}

static void
test_verify_refuses_time_claims_that_are_not_numbers(void **state)
{
	static const char *const bad[] = {
		"{\"exp\":\"4102444800\"}", "{\"nbf\":true}",
		"{\"iat\":\"yesterday\"}", "{\"exp\":null}", "{\"nbf\":[1]}",
		"{\"iat\":{}}",
	};
	struct cb_error	 err;
	size_t		 i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(verify_payload(bad[i], &err), -CB_EBADREQ);
		if (strstr(err.msg, "is not a number") == NULL)
			fail_msg("%s: %s", bad[i], err.msg);
	}
	assert_int_equal(verify_payload("{\"iat\":1.5,\"sub\":\"x\"}", &err),
	    0);
}

static void
test_verify_refuses_malformed_tokens(void **state)
{
	struct cb_error	 err;
	char		*tok, *big;
	json_t		*c = NULL;

	(void)state;
	tok = make_token(key_a, false, "{\"alg\":\"RS256\"}", "{\"a\":1}",
	    NULL, 0);
	/* Two parts, four parts, nothing. */
	*strrchr(tok, '.') = '\0';
	refused(key_a_pub, tok, "three base64url parts");
	free(tok);
	tok = make_token(key_a, false, "{\"alg\":\"RS256\"}", "{\"a\":1}",
	    NULL, 0);
	big = malloc(strlen(tok) + 8);
	sprintf(big, "%s.AAAA", tok);
	refused(key_a_pub, big, "three base64url parts");
	sprintf(big, "%s.", tok);
	refused(key_a_pub, big, "three base64url parts");
	free(big);
	free(tok);
	refused(key_a_pub, "", "three base64url parts");
	refused(key_a_pub, "..", "header is not base64url of a JSON object");

	/* Header and payload must be JSON objects. */
	tok = make_token(key_a, false, "[\"RS256\"]", "{}", NULL, 0);
	refused(key_a_pub, tok, "header is not base64url of a JSON object");
	free(tok);
	tok = make_token(key_a, false, "{\"alg\":\"RS256\"} x", "{}", NULL, 0);
	refused(key_a_pub, tok, "header is not base64url of a JSON object");
	free(tok);
	tok = make_token(key_a, false, "{\"alg\":\"RS256\"}", "[1]", NULL, 0);
	refused(key_a_pub, tok, "payload is not base64url of a JSON object");
	free(tok);
	tok = make_token(key_a, false, "{\"alg\":\"RS256\"}", "\"x\"", NULL, 0);
	refused(key_a_pub, tok, "payload is not base64url of a JSON object");
	free(tok);
	/* Duplicate members. */
	tok = make_token(key_a, false, "{\"alg\":\"RS256\"}",
	    "{\"sub\":\"a\",\"sub\":\"b\"}", NULL, 0);
	refused(key_a_pub, tok, "payload is not base64url of a JSON object");
	free(tok);
	tok = make_token(key_a, false, "{\"alg\":\"RS256\",\"alg\":\"none\"}",
	    "{}", NULL, 0);
	refused(key_a_pub, tok, "header is not base64url of a JSON object");
	free(tok);

	/* A crit header is refused even when correctly signed. */
	tok = make_token(key_a, false,
	    "{\"alg\":\"RS256\",\"crit\":[\"exp\"],\"typ\":\"JWT\"}",
	    "{\"sub\":\"a\"}", NULL, 0);
	refused(key_a_pub, tok, "\"crit\"");
	free(tok);

	/* TOKEN_MAX bytes at most: too_large past it. */
	big = malloc(TOKEN_MAX + 2);
	memset(big, 'A', TOKEN_MAX + 1);
	big[10] = '.';
	big[20] = '.';
	big[TOKEN_MAX + 1] = '\0';
	assert_int_equal(token_jws_verify(key_a_pub, big, TOKEN_MAX + 1, NOW,
	    TOKEN_LEEWAY, &c, &err), -CB_ETOOLARGE);
	assert_int_equal(err.code, CB_ETOOLARGE);
	assert_null(c);
	/* At TOKEN_MAX it is read, and refused for what it is. */
	big[TOKEN_MAX] = '\0';
	refused(key_a_pub, big, "header is not base64url of a JSON object");
	free(big);
}

static void
test_sign_appends_and_refuses_non_object_claims(void **state)
{
	struct cb_error	 err = { 0, "" };
	struct secbuf	 b = SECBUF_INIT;
	json_t		*claims = json_pack("{s:s}", "sub", "x"), *arr;

	(void)state;
	assert_int_equal(secbuf_append(&b, "keep", 4), 0);
	arr = json_array();
	assert_int_equal(token_jws_sign(key_a, TOKEN_RS256, arr, &b, &err),
	    -CB_EBADREQ);
	assert_int_equal(b.len, 4);
	json_decref(arr);
	assert_int_equal(token_jws_sign(key_a, TOKEN_RS256, claims, &b, &err),
	    0);
	assert_memory_equal(b.data, "keep", 4);
	assert_memory_equal(b.data + 4, "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.",
	    37);
	json_decref(claims);
	secbuf_free(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_b64url_rfc4648_vectors),
		cmocka_unit_test(
	test_b64url_decode_refuses_padding_whitespace_and_other_characters),
		cmocka_unit_test(
	    test_partner_token_opens_with_peer_key_and_verifies_with_sha1),
		cmocka_unit_test(
		    test_partner_token_payload_limit_is_key_size_less_11),
		cmocka_unit_test(
		    test_rs256_token_checks_with_evp_pyjwt_and_verify),
		cmocka_unit_test(
		    test_ps256_token_checks_with_evp_salt_32_and_pyjwt),
		cmocka_unit_test(test_pyjwt_token_verifies_and_yields_claims),
		cmocka_unit_test(test_verify_refuses_other_algorithms),
		cmocka_unit_test(test_verify_refuses_tampering_and_wrong_key),
		cmocka_unit_test(test_verify_checks_exp_and_nbf_with_leeway),
		cmocka_unit_test(
		    test_verify_refuses_time_claims_that_are_not_numbers),
		cmocka_unit_test(test_verify_refuses_malformed_tokens),
		cmocka_unit_test(
		    test_sign_appends_and_refuses_non_object_claims),
	};

	/* A python that exits early must fail the test, not kill it. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup_keys, teardown_keys);
}

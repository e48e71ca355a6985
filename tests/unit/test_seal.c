/*
 * Unit tests for daemon/seal.c: key initialisation, CB1 sealing round trips and bindings, strict parsing of sealed text,
 * the key check value, and interoperability with an independent AES-GCM
 * implementation (Python's cryptography package, run through popen) for
 * both the legacy GCM: format and the CB1 format.
 */
#include <sys/stat.h>

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "seal.h"
#include "secbuf.h"

#define PYTHON		"/usr/bin/python3"

#define K16		"Xq7#mP2$vL9!rT4w"
#define K24		"b8Jz!Q2m#R7t$W4y&K1p@N6s"
#define K32		"u3+Fh9/kQz2LmX8vR1sT0wYb4NcD7eGa"
#define K32_OTHER	"yvOU3gIRPJMlXUi+DMQSVBAOwCMxEZ9+"

#define MSG_LENGTH	"master key must be 16, 24 or 32 bytes long"
#define MSG_PRINTABLE	"master key must be printable ASCII"
#define MSG_REPEATED	"master key must not be a single repeated character"
#define MSG_WEAK	"master key is too weak"
#define MSG_WELLKNOWN	"master key is too weak: it is a well-known weak key"
#define MSG_PATTERN	"master key is too weak: it is a short pattern repeated"
#define MSG_RUN		"master key is too weak: it is a run of consecutive"
#define MSG_VARIETY	"master key is too weak: it has fewer than 8 distinct"
#define MSG_AUTH	"could not be opened: authentication failed"

/*
 * The independent implementation.  Reads a mode line and then arguments,
 * one per line, on stdin; writes its result to stdout.  No single quotes:
 * the program is passed to the shell inside '...'.
 */
static const char py_prog[] =
    "import sys, os, base64\n"
    "from cryptography.hazmat.primitives.ciphers.aead import AESGCM\n"
    "from cryptography.hazmat.primitives.kdf.hkdf import HKDF\n"
    "from cryptography.hazmat.primitives import hashes\n"
    "def derive(m, info, n):\n"
    "    return HKDF(algorithm=hashes.SHA256(), length=n, salt=None,\n"
    "        info=info).derive(m)\n"
    "def line():\n"
    "    return sys.stdin.readline().rstrip(\"\\n\")\n"
    "mode = line()\n"
    "master = bytes.fromhex(line())\n"
    "if mode == \"gcm-seal\":\n"
    "    pt = bytes.fromhex(line())\n"
    "    n = os.urandom(12)\n"
    "    raw = n + AESGCM(master).encrypt(n, pt, None)\n"
    "    sys.stdout.write(\"GCM:\" + base64.b64encode(raw).decode())\n"
    "elif mode == \"cb1-seal\":\n"
    "    pt = bytes.fromhex(line())\n"
    "    ver = int(line())\n"
    "    ctx = line()\n"
    "    key = derive(master, b\"credbroker seal v1\", len(master))\n"
    "    aad = (\"credbroker/1|%d|%s\" % (ver, ctx)).encode()\n"
    "    n = os.urandom(12)\n"
    "    raw = n + AESGCM(key).encrypt(n, pt, aad)\n"
    "    sys.stdout.write(\"CB1:%d:\" % ver + base64.b64encode(raw).decode())\n"
    "elif mode == \"cb1-open\":\n"
    "    ver = int(line())\n"
    "    ctx = line()\n"
    "    text = line()\n"
    "    prefix = \"CB1:%d:\" % ver\n"
    "    assert text.startswith(prefix)\n"
    "    raw = base64.b64decode(text[len(prefix):], validate=True)\n"
    "    key = derive(master, b\"credbroker seal v1\", len(master))\n"
    "    aad = (\"credbroker/1|%d|%s\" % (ver, ctx)).encode()\n"
    "    sys.stdout.write(AESGCM(key).decrypt(raw[:12], raw[12:], aad).hex())\n"
    "elif mode == \"kcv\":\n"
    "    kcv = derive(master, b\"credbroker key check v1\", 16)\n"
    "    sys.stdout.write(\"kcv1:\" + kcv.hex())\n"
    "else:\n"
    "    sys.exit(\"unknown mode\")\n";

/* Lower-case hex of p[n] into out (2n+1 bytes). */
static void
tohex(const void *p, size_t n, char *out)
{
	const uint8_t	*b = p;
	size_t		 i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", b[i]);
	out[2 * n] = '\0';
}

/*
 * Run py_prog with input on stdin; its stdout (and stderr) goes to a
 * temporary file and comes back in out.  A missing interpreter or module
 * fails the test: scripts/install-deps installs python3-cryptography.
 */
static void
run_python(const char *input, char *out, size_t outsz)
{
	char	 path[] = "/tmp/test_seal.XXXXXX";
	char	*cmd;
	size_t	 cmdsz, n;
	FILE	*fp;
	int	 fd, st;

	if (access(PYTHON, X_OK) != 0)
		fail_msg(PYTHON " is missing; run scripts/install-deps "
		    "(python3, python3-cryptography)");
	if ((fd = mkstemp(path)) == -1)
		fail_msg("mkstemp: %s", strerror(errno));
	close(fd);
	cmdsz = sizeof(py_prog) + sizeof(path) + 64;
	cmd = malloc(cmdsz);
	assert_non_null(cmd);
	snprintf(cmd, cmdsz, PYTHON " -c '%s' >%s 2>&1", py_prog, path);
	fp = popen(cmd, "w");
	free(cmd);
	assert_non_null(fp);
	fputs(input, fp);
	st = pclose(fp);

	fp = fopen(path, "r");
	assert_non_null(fp);
	n = fread(out, 1, outsz - 1, fp);
	out[n] = '\0';
	fclose(fp);
	unlink(path);
	if (st != 0)
		fail_msg("python (with the cryptography module; see "
		    "scripts/install-deps) failed, status %d: %s", st, out);
}

/* A key in locked memory from a C string; the test fails if rejected. */
static struct seal_key *
mkkey(const char *s, uint32_t version)
{
	struct seal_key	*k;
	struct cb_error	 err = { 0 };
	int		 r;

	k = seal_key_alloc();
	assert_non_null(k);
	r = seal_key_init(k, (const uint8_t *)s, strlen(s), version, &err);
	if (r != 0)
		fail_msg("key rejected: %s", err.msg);
	return k;
}

/*
 * Assert that text fails to open with substr in the message and nothing
 * appended to the output buffer (which starts with "pre").
 */
static void
expect_open_fails(const struct seal_key *k, const char *context,
    const char *text, const char *substr)
{
	struct secbuf	out = SECBUF_INIT;
	struct cb_error	err = { 0 };
	int		r;

	assert_int_equal(secbuf_append(&out, "pre", 3), 0);
	r = seal_open(k, context, text, &out, &err);
	if (r != -CB_EINTERNAL || err.code != CB_EINTERNAL)
		fail_msg("opening \"%s\": expected failure, got %d", text, r);
	if (substr != NULL && strstr(err.msg, substr) == NULL)
		fail_msg("opening \"%s\": expected \"%s\" in \"%s\"", text,
		    substr, err.msg);
	assert_int_equal(out.len, 3);
	assert_memory_equal(out.data, "pre", 3);
	secbuf_free(&out);
}

/* Assert that text opens to exactly pt[ptlen]. */
static void
expect_open(const struct seal_key *k, const char *context, const char *text,
    const void *pt, size_t ptlen)
{
	struct secbuf	out = SECBUF_INIT;
	struct cb_error	err = { 0 };

	if (seal_open(k, context, text, &out, &err) != 0)
		fail_msg("opening \"%s\" failed: %s", text, err.msg);
	assert_int_equal(out.len, ptlen);
	if (ptlen > 0)
		assert_memory_equal(out.data, pt, ptlen);
	secbuf_free(&out);
}

/* Seal pt under k for context; returns malloc'd text. */
static char *
seal(const struct seal_key *k, const char *context, const void *pt,
    size_t ptlen)
{
	struct cb_error	 err = { 0 };
	char		*text = NULL;

	if (seal_seal(k, context, pt, ptlen, &text, &err) != 0)
		fail_msg("seal failed: %s", err.msg);
	assert_non_null(text);
	return text;
}

static const uint8_t binpt[] = { 0x00, 0x01, 0xff, 0x00, 'x', 0x00, 0x80 };

/* CB1 round trips for every key length and several plaintexts. */
static void
test_roundtrip(void **state)
{
	const char	*keys[] = { K16, K24, K32 };
	uint8_t		 big[1000];
	char		*t1, *t2, prefix[16];
	size_t		 i;
	struct seal_key	*k;

	for (i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	for (i = 0; i < 3; i++) {
		k = mkkey(keys[i], 3);
		assert_int_equal(k->len, strlen(keys[i]));

		t1 = seal(k, "T1/U1", "hello", 5);
		snprintf(prefix, sizeof(prefix), "CB1:3:");
		assert_true(strncmp(t1, prefix, strlen(prefix)) == 0);
		assert_null(strstr(t1, "hello"));
		expect_open(k, "T1/U1", t1, "hello", 5);
		/* A fresh nonce every time. */
		t2 = seal(k, "T1/U1", "hello", 5);
		assert_string_not_equal(t1, t2);
		expect_open(k, "T1/U1", t2, "hello", 5);
		free(t1);
		free(t2);

		t1 = seal(k, "T1/U1", "", 0);
		expect_open(k, "T1/U1", t1, "", 0);
		free(t1);
		t1 = seal(k, "T1/U1", NULL, 0);
		expect_open(k, "T1/U1", t1, "", 0);
		free(t1);

		t1 = seal(k, "T1/U1", binpt, sizeof(binpt));
		expect_open(k, "T1/U1", t1, binpt, sizeof(binpt));
		free(t1);

		t1 = seal(k, "", big, sizeof(big));
		expect_open(k, "", t1, big, sizeof(big));
		free(t1);
		seal_key_free(k);
	}
}

/* seal_open appends to what is already in the buffer. */
static void
test_open_appends(void **state)
{
	struct seal_key	*k = mkkey(K24, 1);
	struct secbuf	 out = SECBUF_INIT;
	struct cb_error	 err = { 0 };
	char		*t;

	t = seal(k, "a/b", "world", 5);
	assert_int_equal(secbuf_append(&out, "hello ", 6), 0);
	assert_int_equal(seal_open(k, "a/b", t, &out, &err), 0);
	assert_int_equal(out.len, 11);
	assert_memory_equal(out.data, "hello world", 11);
	secbuf_free(&out);
	free(t);
	seal_key_free(k);
}

/* Argument errors in seal_seal and seal_open. */
static void
test_seal_args(void **state)
{
	struct seal_key	*k = mkkey(K16, 1);
	struct cb_error	 err = { 0 };
	char		*t = (char *)1;

	assert_int_equal(seal_seal(k, NULL, (const uint8_t *)"x", 1, &t,
	    &err), -CB_EINTERNAL);
	assert_null(t);
	t = seal(k, "T/U", "x", 1);
	expect_open_fails(k, NULL, t, "no context");
	free(t);
	seal_key_free(k);
}

/* GCM: values sealed by Python's cryptography open to the plaintext. */
static void
test_interop_gcm(void **state)
{
	const char	*keys[] = { K16, K24, K32 };
	const struct {
		const void	*pt;
		size_t		 len;
	} pts[] = {
		{ "correct horse battery staple", 28 },
		{ "", 0 },
		{ binpt, sizeof(binpt) },
	};
	char		 keyhex[2 * SEAL_KEY_MAX + 1], pthex[64], in[256];
	char		 text[512];
	size_t		 i, j;
	struct seal_key	*k, *other;

	other = mkkey(K32_OTHER, 1);
	for (i = 0; i < 3; i++) {
		k = mkkey(keys[i], 1);
		tohex(keys[i], strlen(keys[i]), keyhex);
		for (j = 0; j < sizeof(pts) / sizeof(pts[0]); j++) {
			tohex(pts[j].pt, pts[j].len, pthex);
			snprintf(in, sizeof(in), "gcm-seal\n%s\n%s\n", keyhex,
			    pthex);
			run_python(in, text, sizeof(text));
			assert_true(strncmp(text, "GCM:", 4) == 0);
			expect_open(k, NULL, text, pts[j].pt, pts[j].len);
			/* GCM: carries no binding: any context opens it. */
			expect_open(k, "T9/U9", text, pts[j].pt, pts[j].len);
			expect_open_fails(other, NULL, text, MSG_AUTH);
		}
		seal_key_free(k);
	}
	seal_key_free(other);
}

/*
 * The CB1 layout is exactly what seal.h documents: Python derives the key
 * and AAD itself, seals values we open, and opens values we seal.
 */
static void
test_interop_cb1(void **state)
{
	const char	*keys[] = { K16, K24, K32 };
	char		 keyhex[2 * SEAL_KEY_MAX + 1], pthex[64], in[512];
	char		 text[512], *t;
	size_t		 i;
	struct seal_key	*k;

	for (i = 0; i < 3; i++) {
		k = mkkey(keys[i], 7);
		tohex(keys[i], strlen(keys[i]), keyhex);

		tohex(binpt, sizeof(binpt), pthex);
		snprintf(in, sizeof(in), "cb1-seal\n%s\n%s\n7\nT1/U1\n",
		    keyhex, pthex);
		run_python(in, text, sizeof(text));
		expect_open(k, "T1/U1", text, binpt, sizeof(binpt));
		expect_open_fails(k, "T1/U2", text, MSG_AUTH);

		t = seal(k, "T2/U2", "interop", 7);
		snprintf(in, sizeof(in), "cb1-open\n%s\n7\nT2/U2\n%s\n",
		    keyhex, t);
		run_python(in, text, sizeof(text));
		tohex("interop", 7, pthex);
		assert_string_equal(text, pthex);
		free(t);
		seal_key_free(k);
	}
}

/* seal_key_init: newline stripping, version, wiping on failure. */
static void
test_key_init(void **state)
{
	struct seal_key	*k = seal_key_alloc(), *k2;
	struct cb_error	 err = { 0 };
	char		 kcv1[SEAL_KCV_MAX], kcv2[SEAL_KCV_MAX];
	uint8_t		 zero[sizeof(*k)];
	int		 r;

	assert_non_null(k);
	memset(zero, 0, sizeof(zero));
	k2 = mkkey(K16, 1);
	assert_int_equal(seal_kcv(k2, kcv2, &err), 0);

	assert_int_equal(seal_key_init(k, (const uint8_t *)K16 "\n", 17, 1,
	    &err), 0);
	assert_int_equal(k->len, 16);
	assert_int_equal(k->version, 1);
	assert_memory_equal(k->master, K16, 16);
	assert_int_equal(seal_kcv(k, kcv1, &err), 0);
	assert_string_equal(kcv1, kcv2);

	assert_int_equal(seal_key_init(k, (const uint8_t *)K16 "\r\n", 18, 1,
	    &err), 0);
	assert_int_equal(k->len, 16);
	assert_memory_equal(k->master, K16, 16);

	/* Only one newline is stripped; a lone CR is not a newline. */
	r = seal_key_init(k, (const uint8_t *)K16 "\n\n", 18, 1, &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "(got 17)"));
	assert_memory_equal(k, zero, sizeof(*k));
	r = seal_key_init(k, (const uint8_t *)K16 "\r", 17, 1, &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_non_null(strstr(err.msg, MSG_LENGTH));
	r = seal_key_init(k, (const uint8_t *)"Xq7#mP2$vL9!rT4\r\n", 17, 1,
	    &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "(got 15)"));

	/* A weak key leaves k wiped, even after a good one. */
	assert_int_equal(seal_key_init(k, (const uint8_t *)K32, 32, 2, &err),
	    0);
	r = seal_key_init(k, (const uint8_t *)"passwordpassword\n", 17, 1,
	    &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_non_null(strstr(err.msg, MSG_WELLKNOWN));
	assert_memory_equal(k, zero, sizeof(*k));

	r = seal_key_init(k, (const uint8_t *)K16, 16, 0, &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_memory_equal(k, zero, sizeof(*k));

	seal_key_free(k2);
	seal_key_free(k);
	seal_key_free(NULL);
}

/* A value bound to one owner does not open for another. */
static void
test_bind_context(void **state)
{
	struct seal_key	*k = mkkey(K32, 1);
	char		*t;

	t = seal(k, "T1/U1", "s3cret", 6);
	expect_open(k, "T1/U1", t, "s3cret", 6);
	expect_open_fails(k, "T1/U2", t, MSG_AUTH);
	expect_open_fails(k, "T2/U1", t, MSG_AUTH);
	expect_open_fails(k, "T1/U1 ", t, MSG_AUTH);
	expect_open_fails(k, "", t, MSG_AUTH);
	/* The CB1 value is not a GCM: value under the master key. */
	assert_true(strncmp(t, "CB1:1:", 6) == 0);
	memcpy(t + 2, "GCM:", 4);
	expect_open_fails(k, "T1/U1", t + 2, MSG_AUTH);
	free(t);
	seal_key_free(k);
}

/* Another master key (same length or not) cannot open a value. */
static void
test_wrong_key(void **state)
{
	struct seal_key	*k = mkkey(K32, 1), *other = mkkey(K32_OTHER, 1);
	struct seal_key	*k16 = mkkey(K16, 1);
	char		*t;

	t = seal(k, "T1/U1", "s3cret", 6);
	expect_open_fails(other, "T1/U1", t, MSG_AUTH);
	expect_open_fails(k16, "T1/U1", t, MSG_AUTH);
	expect_open(k, "T1/U1", t, "s3cret", 6);
	free(t);
	seal_key_free(k);
	seal_key_free(other);
	seal_key_free(k16);
}

/* Any flipped bit in the payload, or any changed character, fails. */
static void
test_bitflip(void **state)
{
	struct seal_key	*k = mkkey(K24, 1);
	char		*t, *b, *mod;
	uint8_t		 raw[256];
	size_t		 i, bit, rawlen, tlen;
	int		 n;

	t = seal(k, "T1/U1", "s3cret value", 12);
	b = t + strlen("CB1:1:");
	n = EVP_DecodeBlock(raw, (const unsigned char *)b, (int)strlen(b));
	assert_true(n > 0);
	rawlen = 12 + 12 + 16;
	assert_true((size_t)n >= rawlen);
	tlen = strlen(t);
	mod = malloc(tlen + 1);
	assert_non_null(mod);

	/* Every bit of nonce, ciphertext and tag. */
	for (i = 0; i < rawlen; i++) {
		for (bit = 0; bit < 8; bit++) {
			raw[i] ^= (uint8_t)(1u << bit);
			memcpy(mod, t, 6);
			EVP_EncodeBlock((unsigned char *)mod + 6, raw,
			    (int)rawlen);
			expect_open_fails(k, "T1/U1", mod, MSG_AUTH);
			raw[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* Every bit of every base64 character. */
	for (i = 6; i < tlen; i++) {
		for (bit = 0; bit < 7; bit++) {
			memcpy(mod, t, tlen + 1);
			mod[i] ^= (char)(1u << bit);
			expect_open_fails(k, "T1/U1", mod, NULL);
		}
	}
	expect_open(k, "T1/U1", t, "s3cret value", 12);
	free(mod);
	free(t);
	seal_key_free(k);
}

/* Every truncation of a sealed value fails, as does a short payload. */
static void
test_truncated(void **state)
{
	struct seal_key	*k = mkkey(K16, 1);
	char		*t, *cut;
	uint8_t		 raw[27];
	char		 text[64];
	size_t		 i, tlen;

	t = seal(k, "T1/U1", "abc", 3);
	tlen = strlen(t);
	for (i = 0; i < tlen; i++) {
		cut = strndup(t, i);
		assert_non_null(cut);
		expect_open_fails(k, "T1/U1", cut, NULL);
		free(cut);
	}
	/* 27 bytes of valid base64: one short of nonce + tag. */
	memset(raw, 0x41, sizeof(raw));
	memcpy(text, "CB1:1:", 6);
	EVP_EncodeBlock((unsigned char *)text + 6, raw, sizeof(raw));
	expect_open_fails(k, "T1/U1", text, "too short");
	memcpy(text + 2, "GCM:", 4);
	expect_open_fails(k, "T1/U1", text + 2, "too short");
	expect_open_fails(k, "T1/U1", "CB1:1:", "base64");
	expect_open_fails(k, "T1/U1", "GCM:", "base64");
	free(t);
	seal_key_free(k);
}

/* Unknown formats and malformed key versions. */
static void
test_bad_prefix(void **state)
{
	struct seal_key	*k = mkkey(K16, 1);
	char		*t, buf[256];
	const char	*b;
	const char	*prefixes[] = {
		"CB1:0:", "CB1:01:", "CB1:-1:", "CB1:+1:", "CB1: 1:", "CB1:1 :",
		"CB1::", "CB1:1", "CB1:x:", "CB1:4294967296:",
		"CB1:99999999999:",
	};
	const char	*formats[] = { "CB2:1:", "cb1:1:", "gcm:", "GCM", "",
		"AES:", ":", " GCM:", "CB1" };
	size_t		 i;

	t = seal(k, "T1/U1", "abc", 3);
	b = t + 6;
	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s", prefixes[i], b);
		expect_open_fails(k, "T1/U1", buf, "malformed key version");
	}
	for (i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		snprintf(buf, sizeof(buf), "%s%s", formats[i], b);
		expect_open_fails(k, "T1/U1", buf, "unknown format");
	}
	/* A plaintext stored by mistake is not echoed in the message. */
	expect_open_fails(k, "T1/U1", "hunter2-plaintext", "unknown format");
	free(t);
	seal_key_free(k);
}

/* Strict base64: garbage, whitespace, bad padding, non-canonical bits. */
static void
test_bad_base64(void **state)
{
	struct seal_key	*k = mkkey(K16, 1);
	char		*t, buf[512];
	const char	*b;
	size_t		 blen, i;
	const char	*bad[] = {
		"!!!!", "AAAA AAAA", "QQ=", "QQ", "Q===", "====", "QQ=A",
		"QQ==QQ==", "A=AA", "QR==", "QUF=", "QUJ-", "QUJ_",
	};

	t = seal(k, "T1/U1", "abcdefghij", 10);
	b = t + 6;
	blen = strlen(b);
	/* The good payload with things appended or inserted. */
	snprintf(buf, sizeof(buf), "CB1:1:%s\n", b);
	expect_open_fails(k, "T1/U1", buf, "base64");
	snprintf(buf, sizeof(buf), "CB1:1: %s", b);
	expect_open_fails(k, "T1/U1", buf, "base64");
	snprintf(buf, sizeof(buf), "CB1:1:%.8s\n%s", b, b + 8);
	expect_open_fails(k, "T1/U1", buf, "base64");
	snprintf(buf, sizeof(buf), "CB1:1:%s=", b);
	expect_open_fails(k, "T1/U1", buf, "base64");
	snprintf(buf, sizeof(buf), "CB1:1:%sAAAA", b);
	expect_open_fails(k, "T1/U1", buf, NULL);
	snprintf(buf, sizeof(buf), "CB1:1:%.*s", (int)blen - 1, b);
	expect_open_fails(k, "T1/U1", buf, "base64");
	snprintf(buf, sizeof(buf), "CB1:1:%s%s", b, "QQ==");
	expect_open_fails(k, "T1/U1", buf, "base64");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "GCM:%s", bad[i]);
		expect_open_fails(k, NULL, buf, "base64");
	}
	/* 37 bytes encode with "==" padding: pad bits must be zero. */
	{
		uint8_t	raw[37];
		char	enc[64];
		size_t	n;

		memset(raw, 0x5a, sizeof(raw));
		n = (size_t)EVP_EncodeBlock((unsigned char *)enc, raw,
		    sizeof(raw));
		assert_int_equal(enc[n - 1], '=');
		assert_int_equal(enc[n - 2], '=');
		snprintf(buf, sizeof(buf), "GCM:%s", enc);
		expect_open_fails(k, NULL, buf, MSG_AUTH);
		enc[n - 3] = enc[n - 3] == 'A' ? 'B' : 'A';
		snprintf(buf, sizeof(buf), "GCM:%s", enc);
		expect_open_fails(k, NULL, buf, NULL);
	}
	expect_open(k, "T1/U1", t, "abcdefghij", 10);
	free(t);
	seal_key_free(k);
}

/* A CB1 value names its key version; another version refuses it. */
static void
test_keyver(void **state)
{
	struct seal_key	*k1 = mkkey(K16, 1), *k2 = mkkey(K16, 2);
	struct seal_key	*kbig = mkkey(K16, UINT32_MAX);
	char		*t;

	t = seal(k1, "T1/U1", "abc", 3);
	expect_open_fails(k2, "T1/U1", t,
	    "sealed with key version 1, broker has 2");
	free(t);
	t = seal(k2, "T1/U1", "abc", 3);
	assert_true(strncmp(t, "CB1:2:", 6) == 0);
	expect_open(k2, "T1/U1", t, "abc", 3);
	expect_open_fails(k1, "T1/U1", t,
	    "sealed with key version 2, broker has 1");
	/* Relabelling the version breaks the binding (it is in the AAD). */
	t[4] = '1';
	expect_open_fails(k1, "T1/U1", t, MSG_AUTH);
	free(t);
	t = seal(kbig, "x", "abc", 3);
	assert_true(strncmp(t, "CB1:4294967295:", 15) == 0);
	expect_open(kbig, "x", t, "abc", 3);
	free(t);
	seal_key_free(k1);
	seal_key_free(k2);
	seal_key_free(kbig);
}

/*
 * The version a sealed text names (keys_text_version, which picks the key
 * that opens it) is the one seal_open reads: a malformed version names
 * none, and no key opens it.
 */
static void
test_text_version_agrees_with_open(void **state)
{
	static const char *const bad[] = { "05", " 5", "+5", "00000000005",
	    "0", "4294967296", "-1", "" };
	struct seal_key	*k5 = mkkey(K16, 5);
	const char	*end;
	char		*t, buf[256];
	uint32_t	 v;
	size_t		 i;

	(void)state;
	t = seal(k5, "T1/U1", "abc", 3);
	assert_int_equal(keys_text_version(t), 5);
	assert_int_equal(seal_parse_keyver(t + 4, &v, &end), 0);
	assert_int_equal(v, 5);
	assert_string_equal(end, t + 6);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "CB1:%s:%s", bad[i], t + 6);
		assert_int_equal(keys_text_version(buf), 0);
		assert_int_equal(seal_parse_keyver(buf + 4, &v, &end), -1);
		expect_open_fails(k5, "T1/U1", buf, "malformed key version");
	}
	assert_int_equal(keys_text_version("GCM:abc"), 0);
	free(t);
	seal_key_free(k5);
}

/* Key check values: stable, key-specific, matching Python. */
static void
test_kcv(void **state)
{
	struct seal_key	*a = mkkey(K32, 1), *a2 = mkkey(K32 "\n", 5);
	struct seal_key	*b = mkkey(K32_OTHER, 1), *c = mkkey(K16, 1);
	struct cb_error	 err = { 0 };
	char		 ka[SEAL_KCV_MAX], ka2[SEAL_KCV_MAX];
	char		 kb[SEAL_KCV_MAX], kc[SEAL_KCV_MAX];
	char		 keyhex[2 * SEAL_KEY_MAX + 1], in[128], py[256];
	size_t		 i;

	assert_int_equal(seal_kcv(a, ka, &err), 0);
	assert_int_equal(seal_kcv(a2, ka2, &err), 0);
	assert_int_equal(seal_kcv(b, kb, &err), 0);
	assert_int_equal(seal_kcv(c, kc, &err), 0);
	assert_true(strncmp(ka, "kcv1:", 5) == 0);
	assert_int_equal(strlen(ka), 5 + 32);
	for (i = 5; i < strlen(ka); i++)
		assert_non_null(strchr("0123456789abcdef", ka[i]));
	assert_string_equal(ka, ka2);		/* version is not in it */
	assert_string_not_equal(ka, kb);
	assert_string_not_equal(ka, kc);
	assert_null(strstr(ka, K32));

	tohex(K32, 32, keyhex);
	snprintf(in, sizeof(in), "kcv\n%s\n", keyhex);
	run_python(in, py, sizeof(py));
	assert_string_equal(ka, py);
	seal_key_free(a);
	seal_key_free(a2);
	seal_key_free(b);
	seal_key_free(c);
}

/* seal_key_alloc gives zeroed, writable memory; free takes NULL. */
static void
test_alloc(void **state)
{
	struct seal_key	*k = seal_key_alloc();
	uint8_t		 zero[sizeof(*k)];

	assert_non_null(k);
	memset(zero, 0, sizeof(zero));
	assert_memory_equal(k, zero, sizeof(*k));
	memset(k, 0xaa, sizeof(*k));
	seal_key_free(k);
	seal_key_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_open_appends),
		cmocka_unit_test(test_seal_args),
		cmocka_unit_test(test_interop_gcm),
		cmocka_unit_test(test_interop_cb1),
		cmocka_unit_test(test_key_init),
		cmocka_unit_test(test_bind_context),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_bitflip),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_prefix),
		cmocka_unit_test(test_bad_base64),
		cmocka_unit_test(test_keyver),
		cmocka_unit_test(test_text_version_agrees_with_open),
		cmocka_unit_test(test_kcv),
		cmocka_unit_test(test_alloc),
	};

	/* A python that exits early must fail the test, not kill it. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

/*
 * Unit tests for daemon/keyfile.c: the master key strength rules (every
 * rule, its message, and random keys that must pass) and reading a key
 * file (good files, symlinks, and every refusal: mode, owner, type,
 * size).
 */
#include <sys/stat.h>

#include <errno.h>
#include <setjmp.h>
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
#include "seal.h"
#include "secbuf.h"

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

/* Assert that a key of len bytes fails the strength check with substr. */
static void
expect_weak(const void *key, size_t len, const char *substr)
{
	struct cb_error	err = { 0 };
	int		r;

	r = seal_key_check_strength(key, len, &err);
	if (r != -CB_EBADREQ || err.code != CB_EBADREQ)
		fail_msg("key of %zu bytes: expected \"%s\", got %d \"%s\"",
		    len, substr, r, err.msg);
	if (strstr(err.msg, substr) == NULL)
		fail_msg("expected \"%s\" in \"%s\"", substr, err.msg);
	if (strncmp(substr, MSG_WEAK, strlen(MSG_WEAK)) == 0) {
		assert_true(strncmp(err.msg, MSG_WEAK, strlen(MSG_WEAK)) == 0);
		assert_non_null(strstr(err.msg, "openssl rand -base64 24"));
	}
	/* The message never carries the key. */
	if (len >= 16)
		assert_null(memmem(err.msg, strlen(err.msg), key, len));
}

/* Assert that a key of len bytes passes the strength check. */
static void
expect_strong(const void *key, size_t len)
{
	struct cb_error	err = { 0 };
	char		shown[SEAL_KEY_MAX + 1];

	if (seal_key_check_strength(key, len, &err) != 0) {
		memcpy(shown, key, len < SEAL_KEY_MAX ? len : SEAL_KEY_MAX);
		shown[len < SEAL_KEY_MAX ? len : SEAL_KEY_MAX] = '\0';
		fail_msg("good key \"%s\" rejected: %s", shown, err.msg);
	}
}
/* Wrong lengths, before and after the other rules. */
static void
test_strength_length(void **state)
{
	struct cb_error	err = { 0 };
	const char	*s = "Xq7#mP2$vL9!rT4wb8Jz!Q2m#R7t$W4y&K1p@N6s";
	size_t		lens[] = { 0, 1, 8, 15, 17, 23, 25, 31, 33, 40 };
	size_t		i;

	for (i = 0; i < sizeof(lens) / sizeof(lens[0]); i++)
		expect_weak(s, lens[i], MSG_LENGTH);
	assert_int_equal(seal_key_check_strength((const uint8_t *)s, 15, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg,
	    "master key must be 16, 24 or 32 bytes long (got 15)");
	expect_weak(s, 17, "(got 17)");
	expect_weak(s, 33, "(got 33)");
	/* Length comes first: a short repeated key is a length error. */
	expect_weak("aaaa", 4, MSG_LENGTH);
}

/* Control characters, DEL and non-ASCII (UTF-8) bytes. */
static void
test_strength_printable(void **state)
{
	char	key[17];
	size_t	i;

	memcpy(key, K16, 17);
	key[5] = '\x01';
	expect_weak(key, 16, MSG_PRINTABLE);
	memcpy(key, K16, 17);
	key[0] = '\t';
	expect_weak(key, 16, MSG_PRINTABLE);
	memcpy(key, K16, 17);
	key[15] = '\x7f';
	expect_weak(key, 16, MSG_PRINTABLE);
	memcpy(key, K16, 17);
	key[3] = '\0';
	expect_weak(key, 16, MSG_PRINTABLE);
	/* "é" in UTF-8 is two bytes. */
	expect_weak("Xq7#mP2$vL9!rT\xc3\xa9", 16, MSG_PRINTABLE);
	expect_weak("caf\xc3\xa9-Xq7#mP2$vL9!rT4wAB", 24, MSG_PRINTABLE);
	/* A newline inside the key (or a second one at the end). */
	expect_weak("Xq7#mP2$vL9!rT4\n", 16, MSG_PRINTABLE);
	/* Every non-printable byte at one position. */
	for (i = 0; i < 256; i++) {
		if (i >= 0x20 && i <= 0x7e)
			continue;
		memcpy(key, K16, 17);
		key[7] = (char)i;
		expect_weak(key, 16, MSG_PRINTABLE);
	}
	/* Space is printable. */
	expect_strong("Tr0ub4dor &3 Zebra!9 mqX", 24);
}

/* A single repeated character of every valid length. */
static void
test_strength_repeated(void **state)
{
	expect_weak("aaaaaaaaaaaaaaaa", 16, MSG_REPEATED);
	expect_weak("000000000000000000000000", 24, MSG_REPEATED);
	expect_weak("!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", 32, MSG_REPEATED);
	expect_weak("                ", 16, MSG_REPEATED);
	/* Two characters is no longer rule 3 but is still weak. */
	expect_weak("aaaaaaaaaaaaaaab", 16, MSG_VARIETY);
}

/* Keys from the built-in list, in any case. */
static void
test_strength_wellknown(void **state)
{
	const char	*keys[] = {
		"0123456789abcdef", "0123456789ABCDEF", "1234567890123456",
		"abcdefghijklmnop", "passwordpassword", "PassWordPassWord",
		"secretkeysecretk", "qwertyuiopasdfgh", "YELLOW SUBMARINE",
		"yellow submarine", "Sixteen byte key", "changemechangeme",
		"1234567812345678", "secretsecretsecretsecret",
		"passwordpasswordpassword", "123456781234567812345678",
		"2b7e151628aed2a6abf7158809cf4f3c",
		"2B7E151628AED2A6ABF7158809CF4F3C",
		"my32lengthsupersecretnooneknows1",
		"thisis32bitlongpassphraseimusing",
		"passwordpasswordpasswordpassword",
		"12345678123456781234567812345678",
	};
	size_t		 i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		expect_weak(keys[i], strlen(keys[i]), MSG_WELLKNOWN);
}

/* Repeated patterns, consecutive runs and low variety. */
static void
test_strength_lowentropy(void **state)
{
	const char	*pattern[] = {
		"k3Y!x9Q#k3Y!x9Q#",		/* period 8, 8 distinct */
		"Zq7!Zq7!Zq7!Zq7!Zq7!Zq7!",	/* period 4 */
		"ab12ab12ab12ab12ab12ab12ab12ab12",
		"k3Y!x9Q#K3y!X9q#",		/* case does not help */
		"Hunter2!Hunter2!Hunter2!",
		"R9$vq.R9$vq.R9$vq.R9$vq.R9$vq.R9",	/* cut short */
	};
	const char	*run[] = {
		"ghijklmnopqrstuv",
		"ponmlkjihgfedcba",
		"abcdefgh12345678",
		"9876543210987654",
		"BCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
		"mnopqrstuvwxyzabcdefghij",
		"bCdEfGhIjKlMnOpQ",
	};
	const char	*variety[] = {
		"xy12xy13xy14xy15",
		"aabbccddeeffggaa",
		"1a2b1a2b3a1b2b3a1a2b3b1a2a3b1b2a",
	};
	size_t		 i;

	for (i = 0; i < sizeof(pattern) / sizeof(pattern[0]); i++)
		expect_weak(pattern[i], strlen(pattern[i]), MSG_PATTERN);
	for (i = 0; i < sizeof(run) / sizeof(run[0]); i++)
		expect_weak(run[i], strlen(run[i]), MSG_RUN);
	for (i = 0; i < sizeof(variety) / sizeof(variety[0]); i++)
		expect_weak(variety[i], strlen(variety[i]), MSG_VARIETY);
}

/* Small deterministic generator for reproducible random keys. */
static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Good keys: fixed ones, random printable strings, openssl rand output. */
static void
test_strength_good(void **state)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const char	*keys[] = {
		K16, K24, K32, K32_OTHER,
		"92TJ1pA56X46lTfwiquFeYOPxWkVTkWp",
		"ctYMve5YQ9LqszQGdDHDYKLcmKeFWqr8",
		"c0rrect h0rse BATTERY staple!!!!",
		"9f86d081884c7d659a2feaa0c55ad015",
		"a9Vx0Lq2Rr8sTt7Y",
	};
	uint64_t	 s = 0x9e3779b97f4a7c15ULL;
	uint8_t		 rnd[24];
	char		 key[SEAL_KEY_MAX + 4];
	size_t		 i, j, lens[] = { 16, 24, 32 }, l;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		expect_strong(keys[i], strlen(keys[i]));
	/* Random printable ASCII, and random base64 characters. */
	for (l = 0; l < 3; l++) {
		for (i = 0; i < 1000; i++) {
			for (j = 0; j < lens[l]; j++)
				key[j] = (char)(0x20 + xorshift(&s) % 95);
			expect_strong(key, lens[l]);
			for (j = 0; j < lens[l]; j++)
				key[j] = b64[xorshift(&s) % 64];
			expect_strong(key, lens[l]);
		}
	}
	/* What "openssl rand -base64 24 | head -c 32" produces. */
	for (i = 0; i < 200; i++) {
		assert_int_equal(RAND_bytes(rnd, sizeof(rnd)), 1);
		assert_int_equal(EVP_EncodeBlock((unsigned char *)key, rnd,
		    sizeof(rnd)), 32);
		expect_strong(key, 32);
	}
}

/* Write data to path (mode 0600). */
static void
write_file(const char *path, const char *data, size_t len)
{
	FILE	*fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, 0600), 0);
}

/* seal_key_load_file: good files, symlinks, and every refusal. */
static void
test_load_file(void **state)
{
	char		 dir[] = "/tmp/test_seal_dir.XXXXXX", p[256], l[256];
	char		 big[65];
	struct seal_key	*k = seal_key_alloc(), *ref = mkkey(K24, 1);
	struct cb_error	 err = { 0 };
	char		 kcv[SEAL_KCV_MAX], kref[SEAL_KCV_MAX];
	uint8_t		 zero[sizeof(*k)];
	int		 r;

	assert_non_null(k);
	memset(zero, 0, sizeof(zero));
	assert_non_null(mkdtemp(dir));
	assert_int_equal(seal_kcv(ref, kref, &err), 0);

	snprintf(p, sizeof(p), "%s/key", dir);
	write_file(p, K24 "\n", 25);
	assert_int_equal(seal_key_load_file(k, p, 4, &err), 0);
	assert_int_equal(k->len, 24);
	assert_int_equal(k->version, 4);
	assert_int_equal(seal_kcv(k, kcv, &err), 0);
	assert_string_equal(kcv, kref);

	write_file(p, K24 "\r\n", 26);
	assert_int_equal(seal_key_load_file(k, p, 1, &err), 0);
	assert_int_equal(k->len, 24);
	write_file(p, K24, 24);
	assert_int_equal(seal_key_load_file(k, p, 1, &err), 0);

	/* A key that other users can read or write is refused. */
	assert_int_equal(chmod(p, 0640), 0);
	r = seal_key_load_file(k, p, 1, &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "read or written by other users "
	    "(mode 0640)"));
	assert_memory_equal(k, zero, sizeof(*k));
	assert_int_equal(chmod(p, 0604), 0);
	assert_int_equal(seal_key_load_file(k, p, 1, &err), -CB_EBADREQ);
	assert_int_equal(chmod(p, 0400), 0);
	assert_int_equal(seal_key_load_file(k, p, 1, &err), 0);
	assert_int_equal(chmod(p, 0600), 0);

	/*
	 * Mode 0600 but owned by another user, who could change it: refused,
	 * naming the owner and what is expected.  Needs root to chown.
	 */
	if (geteuid() == 0) {
		assert_int_equal(chown(p, 65534, 65534), 0);
		r = seal_key_load_file(k, p, 1, &err);
		assert_int_equal(r, -CB_EBADREQ);
		assert_non_null(strstr(err.msg, "owned by uid 65534"));
		assert_non_null(strstr(err.msg, "or root"));
		assert_memory_equal(k, zero, sizeof(*k));
		/* systemd's credentials are not checked. */
		assert_int_equal(seal_key_load_file_mode(k, p, 1, false, &err),
		    0);
		assert_int_equal(chown(p, 0, 0), 0);
		assert_int_equal(seal_key_load_file(k, p, 1, &err), 0);
	} else
		print_message("not root: key file owner not checked\n");

	/* A symlink, as systemd credentials may be. */
	snprintf(l, sizeof(l), "%s/link", dir);
	assert_int_equal(symlink(p, l), 0);
	assert_int_equal(seal_key_load_file(k, l, 1, &err), 0);
	assert_int_equal(k->len, 24);

	/* A directory. */
	r = seal_key_load_file(k, dir, 1, &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "not a regular file"));
	assert_non_null(strstr(err.msg, dir));
	assert_memory_equal(k, zero, sizeof(*k));

	/* A missing file names the path and the reason. */
	snprintf(l, sizeof(l), "%s/missing", dir);
	r = seal_key_load_file(k, l, 1, &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_non_null(strstr(err.msg, l));
	assert_non_null(strstr(err.msg, strerror(ENOENT)));

	/* Larger than a key. */
	memset(big, 'x', sizeof(big));
	write_file(p, big, sizeof(big));
	r = seal_key_load_file(k, p, 1, &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "is larger than a key"));
	assert_non_null(strstr(err.msg, p));
	assert_null(strstr(err.msg, "xxxxxxxx"));

	/* Small enough to read, but not a valid key. */
	write_file(p, K24 K16 "\n", 41);
	r = seal_key_load_file(k, p, 1, &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "(got 40)"));
	write_file(p, "", 0);
	r = seal_key_load_file(k, p, 1, &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "(got 0)"));
	write_file(p, "passwordpasswordpassword\n", 25);
	r = seal_key_load_file(k, p, 1, &err);
	assert_int_equal(r, -CB_EBADREQ);
	assert_non_null(strstr(err.msg, MSG_WELLKNOWN));
	assert_memory_equal(k, zero, sizeof(*k));

	unlink(p);
	snprintf(l, sizeof(l), "%s/link", dir);
	unlink(l);
	assert_int_equal(rmdir(dir), 0);
	seal_key_free(k);
	seal_key_free(ref);
}

/*
 * seal_key_load_legacy_file: a weak key that the master key's rules
 * refuse is taken, but the length, printable-ASCII and file rules hold.
 */
static void
test_legacy_key_takes_weak_key_but_not_bad_form(void **state)
{
	char		 dir[] = "/tmp/test_seal_dir.XXXXXX", p[256];
	struct seal_key	*k = seal_key_alloc();
	struct cb_error	 err = { 0 };
	uint8_t		 zero[sizeof(*k)];

	(void)state;
	assert_non_null(k);
	memset(zero, 0, sizeof(zero));
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/legacy", dir);

	write_file(p, "passwordpassword\n", 17);
	assert_int_equal(seal_key_load_file(k, p, 1, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "too weak"));
	assert_int_equal(seal_key_load_legacy_file(k, p, &err), 0);
	assert_int_equal(k->len, 16);
	assert_memory_equal(k->master, "passwordpassword", 16);

	write_file(p, "aaaaaaaaaaaaaaaaaaaaaaaa", 24);
	assert_int_equal(seal_key_load_legacy_file(k, p, &err), 0);
	assert_int_equal(k->len, 24);

	write_file(p, "short-legacy-key", 15);
	assert_int_equal(seal_key_load_legacy_file(k, p, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "legacy key must be 16, 24 or 32 "
	    "bytes long (got 15)"));
	assert_memory_equal(k, zero, sizeof(*k));

	write_file(p, "passwordpass\tord", 16);
	assert_int_equal(seal_key_load_legacy_file(k, p, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "legacy key must be printable ASCII"));
	assert_null(strstr(err.msg, "password"));

	write_file(p, "passwordpassword", 16);
	assert_int_equal(chmod(p, 0644), 0);
	assert_int_equal(seal_key_load_legacy_file(k, p, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "legacy key file"));

	assert_int_equal(unlink(p), 0);
	assert_int_equal(rmdir(dir), 0);
	seal_key_free(k);
}

/*
 * Blanks after the key in a key file: the message names the file, its size
 * and the cause, and says what to remove.  One final LF or CRLF is fine,
 * and so are trailing spaces that are part of a key of valid length.
 */
static void
test_key_file_trailing_blanks_name_the_file_and_the_cause(void **state)
{
	static const struct {
		const char	*text;
		size_t		 len;
		const char	*msg;	/* after "master key file PATH: " */
	} bad[] = {
		{ K32 "\n\n", 34, "34 bytes: the key is followed by 2 "
		  "newlines; remove the extra newline (the file holds the key "
		  "and at most one final newline)" },
		{ K32 "\n\n\n", 35, "35 bytes: the key is followed by 3 "
		  "newlines; remove the extra newlines (the file holds the key "
		  "and at most one final newline)" },
		{ K32 "\r\n\r\n", 36, "36 bytes: the key is followed by 2 "
		  "blank characters (spaces, tabs, carriage returns or "
		  "newlines); remove them (the file holds the key and at most "
		  "one final newline, LF or CRLF)" },
		{ K32 "\r", 33, "33 bytes: the key is followed by 1 blank "
		  "character (spaces, tabs, carriage returns or newlines); "
		  "remove it (the file holds the key and at most one final "
		  "newline, LF or CRLF)" },
		{ K32 " \n", 34, "34 bytes: the key is followed by 1 space; "
		  "remove it (the file holds the key and at most one final "
		  "newline)" },
		{ K24 "  ", 26, "26 bytes: the key is followed by 2 spaces; "
		  "remove them (the file holds the key and at most one final "
		  "newline)" },
		{ K16 "\t\n", 18, "18 bytes: the key is followed by 1 blank "
		  "character (spaces, tabs, carriage returns or newlines); "
		  "remove it (the file holds the key and at most one final "
		  "newline, LF or CRLF)" },
	};
	char		 dir[] = "/tmp/test_keyfile_tr.XXXXXX", p[256];
	char		 want[512];
	struct seal_key	*k = seal_key_alloc();
	struct cb_error	 err = { 0 };
	size_t		 i;

	(void)state;
	assert_non_null(k);
	assert_non_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/key", dir);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(p, bad[i].text, bad[i].len);
		assert_int_equal(seal_key_load_file(k, p, 1, &err),
		    -CB_EBADREQ);
		snprintf(want, sizeof(want), "master key file %s: %s", p,
		    bad[i].msg);
		assert_string_equal(err.msg, want);
	}
	/* The legacy key is named as such. */
	write_file(p, K16 "\n\n", 18);
	assert_int_equal(seal_key_load_legacy_file(k, p, &err), -CB_EBADREQ);
	snprintf(want, sizeof(want), "legacy key file %s: 18 bytes: the key is "
	    "followed by 2 newlines; remove the extra newline (the file holds "
	    "the key and at most one final newline)", p);
	assert_string_equal(err.msg, want);

	/* Accepted: one LF, one CRLF, and spaces inside a 24-byte key. */
	write_file(p, K32 "\n", 33);
	assert_int_equal(seal_key_load_file(k, p, 1, &err), 0);
	write_file(p, K32 "\r\n", 34);
	assert_int_equal(seal_key_load_file(k, p, 1, &err), 0);
	write_file(p, "Tr0ub4dor &3 Zebra!9 mq ", 24);
	if (seal_key_load_file(k, p, 1, &err) != 0)
		fail_msg("refused: %s", err.msg);
	assert_int_equal(k->len, 24);

	assert_int_equal(unlink(p), 0);
	assert_int_equal(rmdir(dir), 0);
	seal_key_free(k);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_strength_length),
		cmocka_unit_test(test_strength_printable),
		cmocka_unit_test(test_strength_repeated),
		cmocka_unit_test(test_strength_wellknown),
		cmocka_unit_test(test_strength_lowentropy),
		cmocka_unit_test(test_strength_good),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_legacy_key_takes_weak_key_but_not_bad_form),
		cmocka_unit_test(
		    test_key_file_trailing_blanks_name_the_file_and_the_cause),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

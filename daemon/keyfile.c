/*
 * keyfile: reading and checking a master key.  A key file (or a systemd
 * credential, whose file systemd protects) is opened without blocking,
 * must be a regular file no larger than a key and, unless systemd
 * guards it, owned by the broker's user or root and closed to group and
 * others; its bytes are wiped once copied into the key.  Every key, read
 * from a file or written inline in the configuration, must pass four
 * strength rules (seal_key_check_strength) before seal.c derives its
 * sealing key from it (seal_key_init).  No message ever contains key
 * bytes.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "cb_error.h"
#include "seal.h"
#include "secbuf.h"

#define KEYFILE_MAX		64	/* bytes; a key plus slack for "\r\n" */
#define KEYFILE_MIN_DISTINCT	8	/* fewer distinct characters is weak */

#define KEYFILE_WEAK_HINT \
	"generate one with: openssl rand -base64 24 | head -c 32"

/*
 * Well-known weak keys and passwords, compared case-insensitively with the
 * whole key.  Only entries of a valid key length (16, 24, 32) can ever
 * match.  Many of these are also caught by the pattern, run and variety
 * rules below; they are listed so that the message says "well-known".
 * Sources: AES test vectors (FIPS-197, SP 800-38A), the examples in popular
 * crypto library documentation and tutorials, keyboard walks, and common
 * passwords repeated to fill a key.
 */
static const char *const keyfile_weak_keys[] = {
	/* 16 bytes */
	"0123456789abcdef",
	"abcdef0123456789",
	"1234567890abcdef",
	"fedcba9876543210",
	"1234567890123456",
	"1234567812345678",
	"abcdefghijklmnop",
	"aaaabbbbccccdddd",
	"passwordpassword",
	"password12345678",
	"p@ssw0rdp@ssw0rd",
	"secretsecretsecr",
	"secretkeysecretk",
	"mysecretpassword",
	"mysupersecretkey",
	"mysecretkey12345",
	"thisisasecretkey",
	"changemechangeme",
	"letmeinletmeinle",
	"iloveyouiloveyou",
	"adminadminadmina",
	"qwertyuiopasdfgh",
	"1qaz2wsx3edc4rfv",
	"YELLOW SUBMARINE",		/* cryptopals */
	"Sixteen byte key",		/* PyCryptodome docs */
	"This is a key123",		/* PyCrypto docs */
	/* 24 bytes */
	"123456789012345678901234",
	"123456781234567812345678",
	"0123456789abcdef01234567",
	"abcdefghijklmnopqrstuvwx",
	"passwordpasswordpassword",
	"secretsecretsecretsecret",
	"secretkeysecretkeysecret",
	"changemechangemechangeme",
	"qwertyuiopasdfghjklzxcvb",
	/* 32 bytes */
	"12345678901234567890123456789012",
	"01234567890123456789012345678901",
	"12345678123456781234567812345678",
	"0123456789abcdef0123456789abcdef",
	"abcdefghijklmnopqrstuvwxyz012345",
	"abcdefghijklmnopqrstuvwxyz123456",
	"passwordpasswordpasswordpassword",
	"secretsecretsecretsecretsecretse",
	"secretkeysecretkeysecretkeysecre",
	"changemechangemechangemechangeme",
	"qwertyuiopasdfghjklzxcvbnm123456",
	"my32lengthsupersecretnooneknows1",	/* Go tutorials */
	"the-key-has-to-be-32-bytes-long!",
	"thisis32bitlongpassphraseimusing",
	"AES256Key-32Characters1234567890",
	"2b7e151628aed2a6abf7158809cf4f3c",	/* FIPS-197/SP 800-38A key */
	"000102030405060708090a0b0c0d0e0f",	/* FIPS-197 appendix C */
};

static int	keyfile_load(struct seal_key *, const char *, uint32_t, bool,
		    bool, struct cb_error *);

/* ASCII letter folded to lower case; anything else unchanged. */
static int
keyfile_fold(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A' + 'a';
	return c;
}

/* Whether key (len bytes) equals s, ignoring ASCII case. */
static int
keyfile_eq_nocase(const uint8_t *key, size_t len, const char *s)
{
	size_t	i;

	if (strlen(s) != len)
		return 0;
	for (i = 0; i < len; i++)
		if (keyfile_fold(key[i]) != keyfile_fold((uint8_t)s[i]))
			return 0;
	return 1;
}

/*
 * Smallest p in 1..len/2 such that the key (case folded) is a p-character
 * pattern repeated, possibly cut short at the end; 0 if there is none.
 */
static size_t
keyfile_period(const uint8_t *key, size_t len)
{
	size_t	p, i;

	for (p = 1; p <= len / 2; p++) {
		for (i = p; i < len; i++)
			if (keyfile_fold(key[i]) != keyfile_fold(key[i - p]))
				break;
		if (i == len)
			return p;
	}
	return 0;
}

/*
 * Whether b follows a as a step up or down in a run: neighbours in ASCII,
 * letters ignoring case and wrapping z/a, digits wrapping 9/0.
 */
static int
keyfile_is_step(uint8_t a, uint8_t b)
{
	int	fa = keyfile_fold(a), fb = keyfile_fold(b);

	if (fa >= 'a' && fa <= 'z' && fb >= 'a' && fb <= 'z')
		return fa - fb == 1 || fb - fa == 1 ||
		    (fa == 'a' && fb == 'z') || (fa == 'z' && fb == 'a');
	if (a >= '0' && a <= '9' && b >= '0' && b <= '9')
		return a - b == 1 || b - a == 1 ||
		    (a == '0' && b == '9') || (a == '9' && b == '0');
	return a - b == 1 || b - a == 1;
}

/* Number of distinct byte values in key. */
static size_t
keyfile_distinct(const uint8_t *key, size_t len)
{
	uint8_t	seen[256];
	size_t	i, n = 0;

	memset(seen, 0, sizeof(seen));
	for (i = 0; i < len; i++) {
		if (!seen[key[i]])
			n++;
		seen[key[i]] = 1;
	}
	cb_wipe(seen, sizeof(seen));
	return n;
}

/*
 * The rules, in order, each with its own message:
 *
 *  1. Length 16, 24 or 32 bytes.  The key is checked as given:
 *     seal_key_init strips the trailing newline before calling this.
 *  2. Printable ASCII, 0x20 (space) to 0x7e.  Space is included because it
 *     is printable ASCII in the usual (isprint) sense and well-known keys
 *     such as "YELLOW SUBMARINE" show that source documents use it; control
 *     characters, DEL and every byte >= 0x80 (UTF-8) are refused.
 *  3. Not a single repeated character.
 *  4. Not weak, four ways, every message starting "master key is too
 *     weak": on the built-in list (case-insensitive); a pattern of at most
 *     len/2 characters repeated (stronger than "period <= 4"); a run of
 *     consecutive characters (up or down) making at least 3/4 of the
 *     steps between neighbours; fewer than 8 distinct characters.
 *
 * None of the rule-4 checks can reasonably reject a random key: for 32
 * characters of "openssl rand -base64 24", or random printable strings of
 * 16 or 24 characters, the chance is far below 1e-9.  The exception is a
 * 16-character hex key (64 bits), which has fewer than 8 distinct digits
 * about 1% of the time; such a key is weak anyway.
 */
int
seal_key_check_form(const uint8_t *key, size_t len, const char *what,
    struct cb_error *err)
{
	size_t	i;

	if (len != 16 && len != 24 && len != 32)
		return cb_error_set(err, CB_EBADREQ,
		    "%s must be 16, 24 or 32 bytes long (got %zu)", what, len);
	if (key == NULL)
		return cb_error_set(err, CB_EINTERNAL, "no %s given", what);
	for (i = 0; i < len; i++)
		if (key[i] < 0x20 || key[i] > 0x7e)
			return cb_error_set(err, CB_EBADREQ,
			    "%s must be printable ASCII "
			    "(characters 0x20 to 0x7e)", what);
	return 0;
}

int
seal_key_check_strength(const uint8_t *key, size_t len, struct cb_error *err)
{
	size_t	i, steps;
	int	r;

	if ((r = seal_key_check_form(key, len, "master key", err)) != 0)
		return r;
	for (i = 1; i < len; i++)
		if (key[i] != key[0])
			break;
	if (i == len)
		return cb_error_set(err, CB_EBADREQ,
		    "master key must not be a single repeated character");

	for (i = 0; i < sizeof(keyfile_weak_keys) / sizeof(keyfile_weak_keys[0]);
	    i++)
		if (keyfile_eq_nocase(key, len, keyfile_weak_keys[i]))
			return cb_error_set(err, CB_EBADREQ,
			    "master key is too weak: it is a well-known weak "
			    "key or password; " KEYFILE_WEAK_HINT);
	if (keyfile_period(key, len) != 0)
		return cb_error_set(err, CB_EBADREQ,
		    "master key is too weak: it is a short pattern repeated; "
		    KEYFILE_WEAK_HINT);
	for (i = 1, steps = 0; i < len; i++)
		if (keyfile_is_step(key[i - 1], key[i]))
			steps++;
	if (steps * 4 >= (len - 1) * 3)
		return cb_error_set(err, CB_EBADREQ,
		    "master key is too weak: it is a run of consecutive "
		    "characters; " KEYFILE_WEAK_HINT);
	if (keyfile_distinct(key, len) < KEYFILE_MIN_DISTINCT)
		return cb_error_set(err, CB_EBADREQ,
		    "master key is too weak: it has fewer than %d distinct "
		    "characters; " KEYFILE_WEAK_HINT, KEYFILE_MIN_DISTINCT);
	return 0;
}

/*
 * Strip one trailing newline, check strength (a legacy key: its form
 * only), then derive (seal.c).
 */
static int
keyfile_init(struct seal_key *k, const uint8_t *raw, size_t len,
    uint32_t version, bool legacy, struct cb_error *err)
{
	int	r;

	if (k == NULL)
		return cb_error_set(err, CB_EINTERNAL, "no key structure");
	cb_wipe(k, sizeof(*k));
	if (raw == NULL && len != 0)
		return cb_error_set(err, CB_EINTERNAL, "no master key given");
	if (version == 0)
		return cb_error_set(err, CB_EBADREQ,
		    "master key version must be at least 1");
	/* One trailing newline, as written by echo or an editor. */
	if (len >= 2 && raw[len - 2] == '\r' && raw[len - 1] == '\n')
		len -= 2;
	else if (len >= 1 && raw[len - 1] == '\n')
		len -= 1;
	if (legacy)
		r = seal_key_check_form(raw, len, "legacy key", err);
	else
		r = seal_key_check_strength(raw, len, err);
	if (r != 0)
		return r;
	return seal_key_derive(k, raw, len, version, err);
}

int
seal_key_init(struct seal_key *k, const uint8_t *raw, size_t len,
    uint32_t version, struct cb_error *err)
{
	return keyfile_init(k, raw, len, version, false, err);
}

/*
 * Read a key file of at most KEYFILE_MAX bytes into k.
 * Not O_NOFOLLOW: systemd credentials ($CREDENTIALS_DIRECTORY/<name>) may
 * be symlinks.  O_NONBLOCK keeps a FIFO from blocking start-up; it is then
 * refused as not a regular file.
 */
int
seal_key_load_file(struct seal_key *k, const char *path, uint32_t version,
    struct cb_error *err)
{
	return seal_key_load_file_mode(k, path, version, true, err);
}

int
seal_key_load_file_mode(struct seal_key *k, const char *path,
    uint32_t version, bool check_mode, struct cb_error *err)
{
	return keyfile_load(k, path, version, check_mode, false, err);
}

int
seal_key_load_legacy_file(struct seal_key *k, const char *path,
    struct cb_error *err)
{
	return keyfile_load(k, path, 1, true, true, err);
}

/*
 * Blanks after the key in a file (after the one newline or CRLF a file may
 * end with) are a mistake in writing the file, not part of the key: say
 * so, with the file's size, instead of a bare length or printable-ASCII
 * refusal.  Trailing spaces alone are left to the usual rules when the key
 * still has a valid length, since a space is a printable key character.
 */
static int
keyfile_trailing(const uint8_t *buf, size_t n, const char *what,
    const char *path, struct cb_error *err)
{
	size_t	len = n, t = 0, nl = 0, sp = 0;
	uint8_t	c;

	if (len >= 2 && buf[len - 2] == '\r' && buf[len - 1] == '\n')
		len -= 2;
	else if (len >= 1 && buf[len - 1] == '\n')
		len -= 1;
	for (; t < len; t++) {
		c = buf[len - t - 1];
		if (c != '\n' && c != '\r' && c != ' ' && c != '\t')
			break;
		nl += c == '\n';
		sp += c == ' ';
	}
	if (t == 0)
		return 0;
	len -= t;
	if (sp == t && (len + t == 16 || len + t == 24 || len + t == 32))
		return 0;
	if (nl == t)
		return cb_error_set(err, CB_EBADREQ, "%s file %s: %zu bytes: "
		    "the key is followed by %zu newlines; remove the extra "
		    "newline%s (the file holds the key and at most one final "
		    "newline)", what, path, n, t + 1, t > 1 ? "s" : "");
	if (sp == t)
		return cb_error_set(err, CB_EBADREQ, "%s file %s: %zu bytes: "
		    "the key is followed by %zu space%s; remove %s (the file "
		    "holds the key and at most one final newline)", what, path,
		    n, t, t > 1 ? "s" : "", t > 1 ? "them" : "it");
	return cb_error_set(err, CB_EBADREQ, "%s file %s: %zu bytes: the key "
	    "is followed by %zu blank character%s (spaces, tabs, carriage "
	    "returns or newlines); remove %s (the file holds the key and at "
	    "most one final newline, LF or CRLF)", what, path, n, t,
	    t > 1 ? "s" : "", t > 1 ? "them" : "it");
}

/* Read and check a key file; legacy: the legacy key's rules and name. */
/*
 * Read a secret file of at most max bytes into buf (of max + 1 bytes),
 * refusing what is not a regular file, what others may read or change
 * (check_mode), and what is larger; what names the file in messages,
 * noun what it holds ("a key").
 */
static int
keyfile_read(const char *path, const char *what, const char *noun,
    bool check_mode, uint8_t *buf, size_t max, size_t *len,
    struct cb_error *err)
{
	struct stat	st;
	size_t		n = 0;
	ssize_t		got;
	int		fd = -1, r = 0, saved;

	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1) {
		saved = errno;
		return cb_error_set(err, CB_EBADREQ,
		    "cannot open %s file %s: %s", what, path,
		    strerror(saved));
	}
	if (fstat(fd, &st) == -1) {
		saved = errno;
		r = cb_error_set(err, CB_EBADREQ,
		    "cannot stat %s file %s: %s", what, path,
		    strerror(saved));
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		r = cb_error_set(err, CB_EBADREQ,
		    "%s file %s is not a regular file", what, path);
		goto done;
	}
	/*
	 * A key that other users can read is not a secret any more: refuse
	 * to start until it is fixed, rather than use it.
	 */
	if (check_mode && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		r = cb_error_set(err, CB_EBADREQ, "%s file %s can be "
		    "read or written by other users (mode %04o); run: chmod "
		    "600 %s", what, path, (unsigned)(st.st_mode & 07777), path);
		goto done;
	}
	/*
	 * Whoever owns the file can change it or its mode: only the broker's
	 * own user and root may.
	 */
	if (check_mode && st.st_uid != geteuid() && st.st_uid != 0) {
		r = cb_error_set(err, CB_EBADREQ, "%s file %s is owned "
		    "by uid %u; it must be owned by the broker's user (uid %u) "
		    "or root: run chown %u %s", what, path, (unsigned)st.st_uid,
		    (unsigned)geteuid(), (unsigned)geteuid(), path);
		goto done;
	}
	if (st.st_size > (off_t)max) {
		r = cb_error_set(err, CB_EBADREQ,
		    "%s file %s is larger than %s (%lld bytes, at most %zu "
		    "allowed)", what, path, noun, (long long)st.st_size, max);
		goto done;
	}
	/* Read one byte more than allowed to notice a file that grew. */
	while (n < max + 1) {
		got = read(fd, buf + n, max + 1 - n);
		if (got == -1) {
			if (errno == EINTR)
				continue;
			saved = errno;
			r = cb_error_set(err, CB_EBADREQ,
			    "cannot read %s file %s: %s", what, path,
			    strerror(saved));
			goto done;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (n > max) {
		r = cb_error_set(err, CB_EBADREQ,
		    "%s file %s is larger than %s (more than %zu bytes)",
		    what, path, noun, max);
		goto done;
	}
	*len = n;
done:
	close(fd);
	return r;
}

static int
keyfile_load(struct seal_key *k, const char *path, uint32_t version,
    bool check_mode, bool legacy, struct cb_error *err)
{
	const char	*what = legacy ? "legacy key" : "master key";
	uint8_t		 buf[KEYFILE_MAX + 1];
	size_t		 n = 0;
	int		 r;

	if (k == NULL)
		return cb_error_set(err, CB_EINTERNAL, "no key structure");
	cb_wipe(k, sizeof(*k));		/* no old key survives a failure */
	if (path == NULL)
		return cb_error_set(err, CB_EINTERNAL, "no %s file given",
		    what);
	if ((r = keyfile_read(path, what, "a key", check_mode, buf,
	    KEYFILE_MAX, &n, err)) == 0 &&
	    (r = keyfile_trailing(buf, n, what, path, err)) == 0)
		r = keyfile_init(k, buf, n, version, legacy, err);
	cb_wipe(buf, sizeof(buf));
	return r;
}

int
keyfile_read_secret(const char *path, const char *what, bool check_mode,
    struct secbuf *out, struct cb_error *err)
{
	uint8_t	buf[KEYFILE_SECRET_MAX + 1];
	size_t	n = 0, i;
	int	r;

	if ((r = keyfile_read(path, what, "a password", check_mode, buf,
	    KEYFILE_SECRET_MAX, &n, err)) != 0)
		goto done;
	if (n > 0 && buf[n - 1] == '\n')
		n--;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	for (i = 0; i < n; i++)
		if (buf[i] == '\0' || buf[i] == '\n' || buf[i] == '\r') {
			r = cb_error_set(err, CB_EBADREQ, "%s file %s holds "
			    "more than one line", what, path);
			goto done;
		}
	if (n == 0) {
		r = cb_error_set(err, CB_EBADREQ, "%s file %s is empty",
		    what, path);
		goto done;
	}
	if (secbuf_set_str(out, (const char *)buf, n) != 0)
		r = cb_error_set(err, CB_EINTERNAL, "out of memory");
done:
	cb_wipe(buf, sizeof(buf));
	return r;
}

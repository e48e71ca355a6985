/*
 * audit: the hash-chained audit trail ([audit] file, SPEC section 7).
 *
 * Every call that reads or changes credentials (CB_MF_AUDIT in
 * proto/methods.def) appends one line to the audit file: a JSON object
 *
 *	{"seq":N,"time":"2026-01-02T03:04:05.678Z","method":"cred.set",
 *	 "uid":1000,"pid":42,"subject":"<user uuid>"|null,"types":["ident"],
 *	 "keys":["keypair/<ident>/<version>", ...],
 *	 "sources":["<ident>/own", "<ident>/linked/<account>", ...],
 *	 "dry_run":true,
 *	 "origins":["https://api.example.com", ...],"status":200,
 *	 "outcome":"ok"|"<error code>","ms":3,"prev":"<64 hex>"}
 *
 * "keys" is there only on the lines of calls that used key pairs or peer
 * keys (SPEC section 9): it names each key and version, never a token.
 * "sources" is there only on the lines of calls that used values (SPEC
 * section 10): for each type, whether the value was the subject's own,
 * the account linked to the subject or the type's default account, with
 * the account's name; never a value.  "dry_run" is there only on the
 * lines of substitute dry runs (no value was decrypted), so that they
 * can be told apart from real substitutions; a real one has no such
 * field.  "origins" and "status" are there only on the lines of request
 * calls (SPEC section 13): each origin the broker sent the request to, a
 * redirect's included, and the HTTP status of the answer.
 *
 * seq counts from 1, and prev is the lowercase hex SHA-256 of the exact
 * bytes of the previous line (without its newline); the first line's prev
 * is 64 zeros.  Editing, removing, inserting or reordering a line breaks
 * the chain at the next line ("credctl audit verify" finds it); removing
 * lines from the end is only visible against a head (seq and hash of the
 * last line) recorded elsewhere: health reports it, and start-up and
 * shutdown log it.  The chain has no key, so it proves that the file has
 * not been changed since a recorded head, not who wrote it.
 *
 * No value ever reaches this file: the line is built only from the method
 * name, the kernel's view of the caller, the strings rpc_audit() kept
 * (already reduced to [A-Za-z0-9_.-] and '?'), an error code and a
 * duration.  Strings are escaped here anyway, so the line stays one valid
 * JSON object whatever a caller passes.
 *
 * Writing: the file is opened O_APPEND and locked (flock) for the life of
 * the daemon, so each line goes out with one write(2) and no other broker
 * can interleave its own chain.  With [audit] sync = yes (the default)
 * each line is fdatasync'd before the reply is sent.  A failed write is
 * logged as an error and counted (health: audit.failures); the call still
 * completes, and a partly written line is cut off again so that the file
 * stays a valid chain.  At start-up the last line is read to continue the
 * chain; a file that ends in a partial line, or whose last line does not
 * parse, is refused: an operator must look at it first.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <uv.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"
#include "proto.h"

struct audit {
	char		*path;
	int		 fd;
	bool		 sync;
	bool		 writing;		/* not --check-config */
	uint64_t	 seq;			/* of the last line */
	char		 head[AUDIT_HASH_HEX + 1];	/* its hash */
	uint64_t	 failures;
};

/* Output position in a fixed line buffer; overflow sticks. */
struct audit_out {
	char	*buf;
	size_t	 len;
	size_t	 cap;
	bool	 overflow;
};

static const char audit_zero_hash[AUDIT_HASH_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* Append n bytes. */
static void
audit_put(struct audit_out *o, const char *s, size_t n)
{
	if (o->overflow || n > o->cap - o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}

/* Append a formatted piece (numbers and fixed text only). */
static void
audit_putf(struct audit_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
audit_putf(struct audit_out *o, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	if (o->overflow)
		return;
	va_start(ap, fmt);
	n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= o->cap - o->len) {
		o->overflow = true;
		return;
	}
	o->len += (size_t)n;
}

/*
 * Append n bytes of s as a JSON string.  '"' and '\' are escaped, control
 * characters and DEL become \u00XX, and bytes outside ASCII become '?', so
 * the line is plain ASCII and valid JSON whatever s holds.
 */
static void
audit_put_str(struct audit_out *o, const char *s, size_t n)
{
	static const char	hex[] = "0123456789abcdef";
	char			esc[6];
	size_t			i;

	audit_put(o, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			audit_put(o, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xf];
			audit_put(o, esc, 6);
		} else if (c >= 0x80)
			audit_put(o, "?", 1);
		else
			audit_put(o, (const char *)&c, 1);
	}
	audit_put(o, "\"", 1);
}

/* Lowercase hex SHA-256 of n bytes into hex (AUDIT_HASH_HEX + 1). */
static int
audit_hash(const void *p, size_t n, char hex[AUDIT_HASH_HEX + 1])
{
	static const char	digits[] = "0123456789abcdef";
	unsigned char		md[EVP_MAX_MD_SIZE];
	unsigned int		mdlen = 0;
	unsigned int		i;

	if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen * 2 != AUDIT_HASH_HEX)
		return -CB_EINTERNAL;
	for (i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0xf];
	}
	hex[AUDIT_HASH_HEX] = '\0';
	return 0;
}

/* Whether s is exactly AUDIT_HASH_HEX lowercase hex digits. */
static bool
audit_hash_valid(const char *s)
{
	size_t	i;

	for (i = 0; i < AUDIT_HASH_HEX; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[AUDIT_HASH_HEX] == '\0';
}

/* A comma-separated list (NULL: empty) as a JSON array of strings. */
static void
audit_put_list(struct audit_out *o, const char *list)
{
	const char	*p, *e;
	bool		 first = true;

	audit_put(o, "[", 1);
	for (p = list != NULL ? list : ""; *p != '\0'; p = e) {
		if ((e = strchr(p, ',')) == NULL)
			e = p + strlen(p);
		if (e > p) {
			if (!first)
				audit_put(o, ",", 1);
			audit_put_str(o, p, (size_t)(e - p));
			first = false;
		}
		if (*e == ',')
			e++;
	}
	audit_put(o, "]", 1);
}

/*
 * Build the line for r with sequence number seq and previous hash prev
 * into buf (without the newline); its length, or 0 if it does not fit.
 */
static size_t
audit_format(const struct audit_rec *r, uint64_t seq, const char *prev,
    char *buf, size_t cap)
{
	struct audit_out	 o = { buf, 0, cap, false };
	struct tm		 tm;
	time_t			 t;
	char			 ts[32];

	t = (time_t)(r->time_ms / 1000);
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(ts, sizeof(ts), "1970-01-01T00:00:00");
	audit_putf(&o, "{\"seq\":%" PRIu64 ",\"time\":\"%s.%03dZ\","
	    "\"method\":", seq, ts, (int)(r->time_ms % 1000));
	audit_put_str(&o, r->method, strlen(r->method));
	audit_putf(&o, ",\"uid\":%" PRIu32 ",\"pid\":%" PRId32 ",\"subject\":",
	    r->uid, r->pid);
	if (r->subject != NULL && *r->subject != '\0')
		audit_put_str(&o, r->subject, strlen(r->subject));
	else
		audit_put(&o, "null", 4);
	audit_put(&o, ",\"types\":", 9);
	audit_put_list(&o, r->types);
	/* The keys a token call used; only on lines that name keys. */
	if (r->keys != NULL && *r->keys != '\0') {
		audit_put(&o, ",\"keys\":", 8);
		audit_put_list(&o, r->keys);
	}
	/* Where the values came from; only on lines that used values. */
	if (r->sources != NULL && *r->sources != '\0') {
		audit_put(&o, ",\"sources\":", 11);
		audit_put_list(&o, r->sources);
	}
	if (r->dry_run)
		audit_put(&o, ",\"dry_run\":true", 15);
	/* What a request contacted and how it was answered. */
	if (r->origins != NULL && *r->origins != '\0') {
		audit_put(&o, ",\"origins\":", 11);
		audit_put_list(&o, r->origins);
	}
	if (r->status != 0)
		audit_putf(&o, ",\"status\":%d", r->status);
	audit_put(&o, ",\"outcome\":", 11);
	audit_put_str(&o, r->outcome, strlen(r->outcome));
	audit_putf(&o, ",\"ms\":%" PRIu64 ",\"prev\":\"%s\"}", r->ms, prev);
	return o.overflow ? 0 : o.len;
}

/*
 * Read the file's last line, check that it parses, and take the chain's
 * state from it.  An empty file starts a new chain.
 */
static int
audit_read_tail(struct audit *a, struct cb_error *err)
{
	struct stat	 st;
	json_t		*doc, *jseq, *jprev;
	json_error_t	 jerr;
	char		 buf[AUDIT_LINE_MAX + 2];
	size_t		 want, got, start, len;
	ssize_t		 n;
	off_t		 off;
	int		 rc = 0;

	if (fstat(a->fd, &st) != 0)
		return cb_error_set(err, CB_EINTERNAL, "audit file %s: %s",
		    a->path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return cb_error_set(err, CB_EINTERNAL, "audit file %s is not a "
		    "regular file", a->path);
	if (st.st_mode & 0022)
		log_warnx("audit file %s is writable by others (mode %04o)",
		    a->path, (unsigned)(st.st_mode & 07777));
	a->seq = 0;
	memcpy(a->head, audit_zero_hash, sizeof(a->head));
	if (st.st_size == 0)
		return 0;

	/* The last line, its newline, and the newline before it. */
	want = (uint64_t)st.st_size < sizeof(buf) ? (size_t)st.st_size :
	    sizeof(buf);
	off = st.st_size - (off_t)want;
	for (got = 0; got < want; got += (size_t)n) {
		n = pread(a->fd, buf + got, want - got, off + (off_t)got);
		if (n < 0 && errno == EINTR) {
			n = 0;
			continue;
		}
		if (n <= 0)
			return cb_error_set(err, CB_EINTERNAL, "audit file %s: "
			    "read: %s", a->path, n < 0 ? strerror(errno) :
			    "unexpected end of file");
	}
	if (buf[want - 1] != '\n')
		return cb_error_set(err, CB_EINTERNAL, "audit file %s ends "
		    "with a partial line (no newline at the end): a write was "
		    "cut short or the file was changed; check it with "
		    "'credctl audit verify %s' and repair or move it before "
		    "starting the broker", a->path, a->path);
	for (start = want - 1; start > 0 && buf[start - 1] != '\n'; start--)
		;
	if (start == 0 && off > 0)
		return cb_error_set(err, CB_EINTERNAL, "audit file %s: the "
		    "last line is longer than %d bytes, so it is not an audit "
		    "record; check the file with 'credctl audit verify'",
		    a->path, AUDIT_LINE_MAX);
	len = want - 1 - start;
	doc = json_loadb(buf + start, len, JSON_REJECT_DUPLICATES, &jerr);
	jseq = json_object_get(doc, "seq");
	jprev = json_object_get(doc, "prev");
	if (!json_is_object(doc) || !json_is_integer(jseq) ||
	    json_integer_value(jseq) < 1 || !json_is_string(jprev) ||
	    !audit_hash_valid(json_string_value(jprev))) {
		rc = cb_error_set(err, CB_EINTERNAL, "audit file %s: the last "
		    "line does not parse as an audit record (%s); check the "
		    "file with 'credctl audit verify %s' before starting the "
		    "broker", a->path, doc == NULL ? jerr.text :
		    "no seq or prev", a->path);
		goto done;
	}
	a->seq = (uint64_t)json_integer_value(jseq);
	if (audit_hash(buf + start, len, a->head) != 0)
		rc = cb_error_set(err, CB_EINTERNAL, "audit file %s: cannot "
		    "hash the last line", a->path);
done:
	json_decref(doc);
	return rc;
}

int
audit_open(const char *path, bool sync, bool check_only, struct audit **out,
    struct cb_error *err)
{
	struct audit	*a;
	int		 rc;

	*out = NULL;
	if ((a = calloc(1, sizeof(*a))) == NULL ||
	    (a->path = strdup(path)) == NULL) {
		free(a);
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	}
	a->sync = sync;
	/* O_NONBLOCK: a FIFO in its place must not hang the start. */
	if (check_only)
		a->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
		    O_NONBLOCK);
	else
		a->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC |
		    O_NOCTTY | O_NONBLOCK, 0600);
	if (a->fd < 0) {
		/* --check-config: the broker will create it. */
		if (check_only && errno == ENOENT) {
			memcpy(a->head, audit_zero_hash, sizeof(a->head));
			*out = a;
			return 0;
		}
		rc = cb_error_set(err, CB_EINTERNAL, "cannot open audit file "
		    "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (!check_only && flock(a->fd, LOCK_EX | LOCK_NB) != 0) {
		rc = cb_error_set(err, CB_EINTERNAL, "audit file %s: %s",
		    path, errno == EWOULDBLOCK ? "in use by another process "
		    "(another broker?)" : strerror(errno));
		goto fail;
	}
	if ((rc = audit_read_tail(a, err)) != 0)
		goto fail;
	a->writing = !check_only;
	if (!check_only)
		log_info("audit file %s: %s at seq %" PRIu64 ", head %s",
		    path, a->seq == 0 ? "starting a new chain" : "continuing",
		    a->seq, a->head);
	*out = a;
	return 0;
fail:
	audit_close(a);
	return rc;
}

void
audit_close(struct audit *a)
{
	if (a == NULL)
		return;
	if (a->fd >= 0 && a->writing)
		log_info("audit file %s: closed at seq %" PRIu64 ", head %s",
		    a->path, a->seq, a->head);
	if (a->fd >= 0)
		close(a->fd);
	free(a->path);
	free(a);
}

int
audit_append(struct audit *a, const struct audit_rec *r,
    struct cb_error *err)
{
	char		 line[AUDIT_LINE_MAX + 1], hash[AUDIT_HASH_HEX + 1];
	size_t		 len;
	ssize_t		 n;
	off_t		 end;

	if (!a->writing)
		return cb_error_set(err, CB_EINTERNAL, "audit file %s is not "
		    "open for writing", a->path);
	if ((len = audit_format(r, a->seq + 1, a->head, line,
	    sizeof(line) - 1)) == 0)
		return cb_error_set(err, CB_EINTERNAL, "audit line longer "
		    "than %d bytes", AUDIT_LINE_MAX);
	if (audit_hash(line, len, hash) != 0)
		return cb_error_set(err, CB_EINTERNAL, "cannot hash the "
		    "audit line");
	line[len++] = '\n';

	/*
	 * One write(2) per line: with O_APPEND the line lands whole at the
	 * end of the file.  If the kernel took only part of it (disk full),
	 * cut that part off again, so that the file still ends with a
	 * complete line and the chain goes on from the last good one; the
	 * lock means nobody else appended in between.
	 */
	end = lseek(a->fd, 0, SEEK_END);
	do
		n = write(a->fd, line, len);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n != len) {
		int saved = n < 0 ? errno : ENOSPC;

		if (n > 0 && (end < 0 || ftruncate(a->fd, end) != 0))
			log_warn("audit file %s: cannot remove a partial line",
			    a->path);
		return cb_error_set(err, CB_EINTERNAL, "audit file %s: write: "
		    "%s", a->path, strerror(saved));
	}
	a->seq++;
	memcpy(a->head, hash, sizeof(a->head));
	if (a->sync && fdatasync(a->fd) != 0)
		return cb_error_set(err, CB_EINTERNAL, "audit file %s: "
		    "fdatasync: %s", a->path, strerror(errno));
	return 0;
}

void
audit_write(struct broker *b, const struct rpc_call *call,
    const struct peer *peer, const char *outcome)
{
	struct audit_rec	 r;
	struct audit		*a = b->audit;
	struct cb_error		 err;
	struct timespec		 now;

	if (a == NULL)
		return;
	a->sync = b->conf->audit_sync;
	clock_gettime(CLOCK_REALTIME, &now);
	memset(&r, 0, sizeof(r));
	r.time_ms = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
	r.method = cb_methods[call->method].name;
	r.uid = (uint32_t)peer->uid;
	r.pid = (int32_t)peer->pid;
	r.subject = call->audit_subject;
	r.types = call->audit_types;
	r.keys = call->audit_keys;
	r.sources = call->audit_sources;
	r.dry_run = call->audit_dry_run;
	r.origins = call->audit_origins;
	r.status = call->audit_status;
	r.outcome = outcome;
	r.ms = uv_now(b->loop) - call->start_ms;
	cb_error_clear(&err);
	if (audit_append(a, &r, &err) != 0) {
		a->failures++;
		log_error("AUDIT FAILURE: %s (%s call of uid %u pid %d; %"
		    PRIu64 " failures so far)", err.msg, r.method,
		    (unsigned)r.uid, (int)r.pid, a->failures);
	}
}

void
audit_head(const struct audit *a, uint64_t *seq,
    char hash[AUDIT_HASH_HEX + 1], uint64_t *failures)
{
	*seq = a != NULL ? a->seq : 0;
	memcpy(hash, a != NULL ? a->head : audit_zero_hash,
	    AUDIT_HASH_HEX + 1);
	*failures = a != NULL ? a->failures : 0;
}

/*
 * Unit tests for daemon/audit.c, the hash-chained audit file: the line
 * format (one JSON object per line, seq from 1, prev the SHA-256 of the
 * previous line, 64 zeros first), the chain carried on across a close
 * and reopen, refusal to start on a partial, unparsable or overlong last
 * line, the lock against a second writer, --check-config's read-only
 * open, JSON escaping of whatever strings reach audit_append, and the
 * [audit] keys of the configuration.  Each test works in its own
 * temporary directory.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "cb_error.h"
#include "credbrokerd.h"
#include "log.h"

#define ZEROS	"00000000000000000000000000000000" \
		"00000000000000000000000000000000"

struct fixture {
	char	dir[64];
	char	path[128];
};

static int
setup(void **state)
{
	struct fixture	*f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_audit.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/audit.log", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture	*f = *state;

	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* Replace the file's contents with n bytes of data. */
static void
put_file(const char *path, const char *data, size_t n)
{
	int	fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

/* The whole file, NUL-terminated; *n its length. */
static char *
get_file(const char *path, size_t *n)
{
	FILE	*fp;
	char	*buf;
	long	 len;

	fp = fopen(path, "r");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	rewind(fp);
	buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	*n = (size_t)len;
	return buf;
}

/* Lowercase hex SHA-256 of n bytes. */
static void
sha256_hex(const char *p, size_t n, char out[AUDIT_HASH_HEX + 1])
{
	unsigned char	md[EVP_MAX_MD_SIZE];
	unsigned int	len = 0, i;

	assert_int_equal(EVP_Digest(p, n, md, &len, EVP_sha256(), NULL), 1);
	assert_int_equal(len, 32);
	for (i = 0; i < len; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* A plain record. */
static struct audit_rec
rec(const char *method, const char *subject, const char *types,
    const char *outcome)
{
	struct audit_rec	r;

	memset(&r, 0, sizeof(r));
	r.time_ms = 1767323045678LL;	/* 2026-01-02T03:04:05.678Z */
	r.method = method;
	r.uid = 1000;
	r.pid = 4242;
	r.subject = subject;
	r.types = types;
	r.outcome = outcome;
	r.ms = 7;
	return r;
}

static void
append_ok(struct audit *a, const char *method)
{
	struct audit_rec	r = rec(method, NULL, "gh", "ok");
	struct cb_error		err;

	cb_error_clear(&err);
	assert_int_equal(audit_append(a, &r, &err), 0);
}

/*
 * Check that the file is a valid chain: one JSON object per line, seq
 * 1..n, prev linking each line to the one before.  Returns the number of
 * lines; head receives the hash of the last.
 */
static size_t
check_chain(const char *path, char head[AUDIT_HASH_HEX + 1])
{
	char		*buf, *p, *nl;
	size_t		 n, lines = 0;
	json_t		*doc;

	strcpy(head, ZEROS);
	buf = get_file(path, &n);
	for (p = buf; p < buf + n; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(buf + n - p));
		assert_non_null(nl);
		lines++;
		doc = json_loadb(p, (size_t)(nl - p), JSON_REJECT_DUPLICATES,
		    NULL);
		assert_non_null(doc);
		assert_true(json_is_object(doc));
		assert_int_equal(json_integer_value(json_object_get(doc,
		    "seq")), (json_int_t)lines);
		assert_string_equal(json_string_value(json_object_get(doc,
		    "prev")), head);
		json_decref(doc);
		sha256_hex(p, (size_t)(nl - p), head);
	}
	free(buf);
	return lines;
}

/* A new file: created 0600, first prev is zeros, every field there. */
static void
test_new_file_format(void **state)
{
	struct fixture		*f = *state;
	struct audit		*a;
	struct audit_rec	 r;
	struct cb_error		 err;
	struct stat		 st;
	char			*buf, head[AUDIT_HASH_HEX + 1];
	char			 h[AUDIT_HASH_HEX + 1];
	uint64_t		 seq, failures;
	size_t			 n;

	cb_error_clear(&err);
	assert_int_equal(audit_open(f->path, true, false, &a, &err), 0);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	audit_head(a, &seq, head, &failures);
	assert_int_equal(seq, 0);
	assert_string_equal(head, ZEROS);

	r = rec("cred.set", "886313e1-3b8a-5372-9b90-0c9aee199e5d", "gh,aws",
	    "ok");
	assert_int_equal(audit_append(a, &r, &err), 0);
	buf = get_file(f->path, &n);
	assert_string_equal(buf, "{\"seq\":1,\"time\":"
	    "\"2026-01-02T03:04:05.678Z\",\"method\":\"cred.set\",\"uid\":1000,"
	    "\"pid\":4242,\"subject\":\"886313e1-3b8a-5372-9b90-0c9aee199e5d\","
	    "\"types\":[\"gh\",\"aws\"],\"outcome\":\"ok\",\"ms\":7,"
	    "\"prev\":\"" ZEROS "\"}\n");
	sha256_hex(buf, n - 1, h);
	audit_head(a, &seq, head, &failures);
	assert_int_equal(seq, 1);
	assert_string_equal(head, h);
	assert_int_equal(failures, 0);
	free(buf);

	/* No subject and no types: null and []. */
	r = rec("type.list", NULL, "", "forbidden");
	assert_int_equal(audit_append(a, &r, &err), 0);
	buf = get_file(f->path, &n);
	assert_non_null(strstr(buf, "\"seq\":2,"));
	assert_non_null(strstr(buf, "\"subject\":null,\"types\":[],"
	    "\"outcome\":\"forbidden\""));
	free(buf);
	audit_close(a);
	assert_int_equal(check_chain(f->path, h), 2);
}

/*
 * Keys and sources (SPEC 9, 10) appear, after types, only on the lines
 * that have some.
 */
static void
test_keys_and_sources_only_when_present(void **state)
{
	struct fixture		*f = *state;
	struct audit		*a;
	struct audit_rec	 r;
	struct cb_error		 err;
	char			*buf, h[AUDIT_HASH_HEX + 1];
	size_t			 n;

	cb_error_clear(&err);
	assert_int_equal(audit_open(f->path, true, false, &a, &err), 0);
	r = rec("substitute", "886313e1-3b8a-5372-9b90-0c9aee199e5d", "gh,db",
	    "ok");
	r.sources = "gh/own,db/linked/techno_reader";
	assert_int_equal(audit_append(a, &r, &err), 0);
	r = rec("token.sso", NULL, "", "ok");
	r.keys = "keypair/sso/2";
	r.sources = "db/default/techno_reader";
	assert_int_equal(audit_append(a, &r, &err), 0);
	r = rec("cred.status", NULL, "gh", "ok");
	r.keys = "";
	r.sources = "";
	assert_int_equal(audit_append(a, &r, &err), 0);
	buf = get_file(f->path, &n);
	assert_non_null(strstr(buf, "\"types\":[\"gh\",\"db\"],\"sources\":"
	    "[\"gh/own\",\"db/linked/techno_reader\"],\"outcome\":\"ok\""));
	assert_non_null(strstr(buf, "\"types\":[],\"keys\":[\"keypair/sso/2\"],"
	    "\"sources\":[\"db/default/techno_reader\"],\"outcome\""));
	assert_non_null(strstr(buf, "\"method\":\"cred.status\",\"uid\":1000,"
	    "\"pid\":4242,\"subject\":null,\"types\":[\"gh\"],"
	    "\"outcome\":\"ok\""));
	free(buf);
	audit_close(a);
	assert_int_equal(check_chain(f->path, h), 3);
}

/* Closing and reopening continues the chain where it stopped. */
static void
test_chain_continues_across_reopen(void **state)
{
	struct fixture	*f = *state;
	struct audit	*a;
	struct cb_error	 err;
	char		 head[AUDIT_HASH_HEX + 1], h[AUDIT_HASH_HEX + 1];
	uint64_t	 seq, failures;
	int		 round, i;

	for (round = 0; round < 3; round++) {
		cb_error_clear(&err);
		assert_int_equal(audit_open(f->path, round != 1, false, &a,
		    &err), 0);
		audit_head(a, &seq, head, &failures);
		assert_int_equal(seq, (uint64_t)round * 4);
		assert_int_equal(check_chain(f->path, h), round * 4);
		assert_string_equal(head, h);
		for (i = 0; i < 4; i++)
			append_ok(a, "substitute");
		audit_close(a);
	}
	assert_int_equal(check_chain(f->path, h), 12);
}

/* An empty existing file starts a new chain. */
static void
test_empty_file(void **state)
{
	struct fixture	*f = *state;
	struct audit	*a;
	struct cb_error	 err;
	char		 head[AUDIT_HASH_HEX + 1];
	uint64_t	 seq, failures;

	put_file(f->path, "", 0);
	assert_int_equal(audit_open(f->path, false, false, &a, &err), 0);
	audit_head(a, &seq, head, &failures);
	assert_int_equal(seq, 0);
	assert_string_equal(head, ZEROS);
	append_ok(a, "cred.delete");
	audit_close(a);
	assert_int_equal(check_chain(f->path, head), 1);
}

/* A file cut in the middle of a line is refused: an operator looks. */
static void
test_partial_last_line_refused(void **state)
{
	struct fixture	*f = *state;
	struct audit	*a;
	struct cb_error	 err;
	char		*buf;
	size_t		 n;

	assert_int_equal(audit_open(f->path, false, false, &a, &err), 0);
	append_ok(a, "cred.set");
	append_ok(a, "cred.set");
	audit_close(a);
	buf = get_file(f->path, &n);
	put_file(f->path, buf, n - 10);

	cb_error_clear(&err);
	a = (struct audit *)1;
	assert_int_equal(audit_open(f->path, false, false, &a, &err),
	    -CB_EINTERNAL);
	assert_null(a);
	assert_non_null(strstr(err.msg, "partial line"));
	assert_non_null(strstr(err.msg, f->path));
	/* Not touched. */
	free(get_file(f->path, &n));
	assert_int_equal(n, strlen(buf) - 10);
	/* --check-config says the same. */
	cb_error_clear(&err);
	assert_int_equal(audit_open(f->path, false, true, &a, &err),
	    -CB_EINTERNAL);
	assert_non_null(strstr(err.msg, "partial line"));
	free(buf);
}

/* A last line that is not an audit record is refused. */
static void
test_bad_last_line_refused(void **state)
{
	static const char *const bad[] = {
		"not json\n",
		/* an empty last line */
		"{\"seq\":1,\"prev\":\"" ZEROS "\"}\n\n",
		"[1,2,3]\n",
		"{\"seq\":0,\"prev\":\"" ZEROS "\"}\n",
		"{\"seq\":\"1\",\"prev\":\"" ZEROS "\"}\n",
		"{\"seq\":1,\"prev\":\"" ZEROS "0\"}\n",
		"{\"seq\":1,\"prev\":\"ABCDEF\"}\n",
		"{\"seq\":1}\n",
		"{\"seq\":1,\"seq\":2,\"prev\":\"" ZEROS "\"}\n",
	};
	struct fixture	*f = *state;
	struct audit	*a;
	struct cb_error	 err;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_file(f->path, bad[i], strlen(bad[i]));
		cb_error_clear(&err);
		assert_int_equal(audit_open(f->path, false, false, &a, &err),
		    -CB_EINTERNAL);
		assert_non_null(strstr(err.msg, "does not parse"));
	}
	/* A well-formed last line is accepted, whatever came before. */
	put_file(f->path, "junk\n{\"seq\":41,\"prev\":\"" ZEROS "\"}\n",
	    strlen("junk\n{\"seq\":41,\"prev\":\"" ZEROS "\"}\n"));
	assert_int_equal(audit_open(f->path, false, false, &a, &err), 0);
	append_ok(a, "cred.set");
	audit_close(a);
}

/* A last line longer than any record is refused without parsing. */
static void
test_overlong_last_line_refused(void **state)
{
	struct fixture	*f = *state;
	struct audit	*a;
	struct cb_error	 err;
	char		*buf;
	size_t		 n = 2 * AUDIT_LINE_MAX;

	buf = malloc(n + 2);
	assert_non_null(buf);
	memset(buf, 'x', n + 2);
	buf[0] = '\n';
	buf[n + 1] = '\n';
	put_file(f->path, buf, n + 2);
	cb_error_clear(&err);
	assert_int_equal(audit_open(f->path, false, false, &a, &err),
	    -CB_EINTERNAL);
	assert_non_null(strstr(err.msg, "longer than"));
	free(buf);
}

/* Whatever strings arrive, the line stays one valid ASCII JSON object. */
static void
test_json_escaping(void **state)
{
	struct fixture		*f = *state;
	struct audit		*a;
	struct audit_rec	 r;
	struct cb_error		 err;
	json_t			*doc, *types;
	char			*buf, h[AUDIT_HASH_HEX + 1];
	size_t			 n, i;

	assert_int_equal(audit_open(f->path, false, false, &a, &err), 0);
	r = rec("cred.\"set\\", "a\"b\\c\nd\r\x01\x7f\xc3\xa9</script>",
	    "x\"y,,\tz,\\,end\n\"injected\":1", "o\"k");
	assert_int_equal(audit_append(a, &r, &err), 0);
	audit_close(a);

	buf = get_file(f->path, &n);
	/* One line, printable ASCII only. */
	assert_int_equal(buf[n - 1], '\n');
	for (i = 0; i + 1 < n; i++)
		assert_true(buf[i] >= 0x20 && buf[i] < 0x7f);
	doc = json_loadb(buf, n - 1, JSON_REJECT_DUPLICATES, NULL);
	assert_non_null(doc);
	assert_string_equal(json_string_value(json_object_get(doc, "method")),
	    "cred.\"set\\");
	assert_string_equal(json_string_value(json_object_get(doc,
	    "subject")), "a\"b\\c\nd\r\x01\x7f?" "?</script>");
	assert_string_equal(json_string_value(json_object_get(doc,
	    "outcome")), "o\"k");
	types = json_object_get(doc, "types");
	assert_int_equal(json_array_size(types), 4);
	assert_string_equal(json_string_value(json_array_get(types, 0)),
	    "x\"y");
	assert_string_equal(json_string_value(json_array_get(types, 1)),
	    "\tz");
	assert_string_equal(json_string_value(json_array_get(types, 2)),
	    "\\");
	assert_string_equal(json_string_value(json_array_get(types, 3)),
	    "end\n\"injected\":1");
	assert_null(json_object_get(doc, "injected"));
	assert_int_equal(json_object_size(doc), 10);
	json_decref(doc);
	free(buf);
	assert_int_equal(check_chain(f->path, h), 1);
}

/* A record too long for a line fails and leaves the file as it was. */
static void
test_oversized_record(void **state)
{
	struct fixture		*f = *state;
	struct audit		*a;
	struct audit_rec	 r;
	struct cb_error		 err;
	char			*big, head[AUDIT_HASH_HEX + 1];
	char			 h[AUDIT_HASH_HEX + 1];
	uint64_t		 seq, failures;

	big = malloc(AUDIT_LINE_MAX);
	assert_non_null(big);
	memset(big, '"', AUDIT_LINE_MAX - 1);	/* 2 bytes each escaped */
	big[AUDIT_LINE_MAX - 1] = '\0';
	assert_int_equal(audit_open(f->path, false, false, &a, &err), 0);
	append_ok(a, "cred.set");
	r = rec("cred.set", big, "", "ok");
	cb_error_clear(&err);
	assert_int_equal(audit_append(a, &r, &err), -CB_EINTERNAL);
	audit_head(a, &seq, head, &failures);
	assert_int_equal(seq, 1);
	append_ok(a, "cred.set");
	audit_close(a);
	assert_int_equal(check_chain(f->path, h), 2);
	free(big);
}

/* Only one writer: a second open for writing is refused while locked. */
static void
test_second_writer_refused(void **state)
{
	struct fixture	*f = *state;
	struct audit	*a, *b, *c;
	struct cb_error	 err;

	assert_int_equal(audit_open(f->path, false, false, &a, &err), 0);
	cb_error_clear(&err);
	assert_int_equal(audit_open(f->path, false, false, &b, &err),
	    -CB_EINTERNAL);
	assert_non_null(strstr(err.msg, "in use"));
	/* --check-config only reads, and takes no lock. */
	assert_int_equal(audit_open(f->path, false, true, &c, &err), 0);
	audit_close(c);
	audit_close(a);
	assert_int_equal(audit_open(f->path, false, false, &b, &err), 0);
	audit_close(b);
}

/* --check-config on a missing file: fine, and nothing is created. */
static void
test_check_only_missing(void **state)
{
	struct fixture	*f = *state;
	struct audit	*a;
	struct audit_rec r = rec("cred.set", NULL, "", "ok");
	struct cb_error	 err;
	struct stat	 st;

	assert_int_equal(audit_open(f->path, true, true, &a, &err), 0);
	assert_int_not_equal(stat(f->path, &st), 0);
	assert_int_equal(errno, ENOENT);
	/* Read-only: appending is refused, not attempted. */
	assert_int_equal(audit_append(a, &r, &err), -CB_EINTERNAL);
	audit_close(a);
	assert_int_not_equal(stat(f->path, &st), 0);
}

/* Something that is not a regular file is refused. */
static void
test_not_regular_refused(void **state)
{
	struct fixture	*f = *state;
	struct audit	*a;
	struct cb_error	 err;

	cb_error_clear(&err);
	assert_int_equal(audit_open(f->dir, false, false, &a, &err),
	    -CB_EINTERNAL);
	assert_true(err.msg[0] != '\0');
}

/* No audit file: the head is zeros. */
static void
test_head_without_file(void **state)
{
	char		head[AUDIT_HASH_HEX + 1];
	uint64_t	seq = 1, failures = 1;

	audit_head(NULL, &seq, head, &failures);
	assert_int_equal(seq, 0);
	assert_int_equal(failures, 0);
	assert_string_equal(head, ZEROS);
}

/* [audit] file and sync in the configuration. */
static void
test_conf_keys(void **state)
{
	struct conf	 c;
	struct cb_error	 err;
	char		*o1[] = {
		"audit.file=/var/log/credbroker/audit.log", "audit.sync=no"
	};
	char		*o2[] = { "audit.file=audit.log" };
	char		*o3[] = { "audit.sync=maybe" };

	assert_int_equal(conf_load(&c, NULL, NULL, 0, &err), 0);
	assert_null(c.audit_file);
	assert_true(c.audit_sync);
	conf_free(&c);

	assert_int_equal(conf_load(&c, NULL, o1, 2, &err), 0);
	assert_string_equal(c.audit_file, "/var/log/credbroker/audit.log");
	assert_false(c.audit_sync);
	conf_free(&c);

	assert_int_equal(conf_load(&c, NULL, o2, 1, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "absolute"));
	assert_int_equal(conf_load(&c, NULL, o3, 1, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "audit.sync"));
}

int
main(void)
{
#define T(fn)	cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_new_file_format),
		T(test_keys_and_sources_only_when_present),
		T(test_chain_continues_across_reopen),
		T(test_empty_file),
		T(test_partial_last_line_refused),
		T(test_bad_last_line_refused),
		T(test_overlong_last_line_refused),
		T(test_json_escaping),
		T(test_oversized_record),
		T(test_second_writer_refused),
		T(test_check_only_missing),
		T(test_not_regular_refused),
		T(test_head_without_file),
		T(test_conf_keys),
	};
#undef T

	log_init(LOG_LVL_ERROR, 0);
	return cmocka_run_group_tests(tests, NULL, NULL);
}

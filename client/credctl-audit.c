/*
 * credctl audit verify FILE [--head HASH]: check the hash chain of an
 * audit file ([audit] file in credbroker.conf(5)) locally, without the
 * broker.
 *
 * Each line must be a JSON object with the fields credbrokerd writes
 * (daemon/audit.c), seq must count 1, 2, 3, ... and prev must be the
 * lowercase hex SHA-256 of the exact bytes of the line before (64 zeros
 * for the first).  The first line that breaks a rule is reported with its
 * number and the reason.  A chain cannot show that lines were removed
 * from its end: that takes a head recorded earlier (health's audit.hash,
 * or the "audit file ... head" lines the broker logs at start and stop),
 * given with --head.  The file is then accepted only if a line with that
 * hash is still in it; lines appended after that one are fine.
 *
 * Exit status: 0 intact, 1 tampered or truncated (FAIL: ...), 2 usage,
 * 3 the file cannot be read.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "credctl.h"

#define AUDIT_HEX	64		/* hex digits of a SHA-256 */
#define AUDIT_LINE_MAX	4096		/* as daemon/audit.c */

static const char audit_zero[AUDIT_HEX + 1] =
    "0000000000000000000000000000000000000000000000000000000000000000";

/* Lowercase hex SHA-256 of n bytes into hex; 0 or -1. */
static int
audit_sha256(const void *p, size_t n, char hex[AUDIT_HEX + 1])
{
	static const char	digits[] = "0123456789abcdef";
	unsigned char		md[EVP_MAX_MD_SIZE];
	unsigned int		mdlen = 0, i;

	if (EVP_Digest(p, n, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen * 2 != AUDIT_HEX)
		return -1;
	for (i = 0; i < mdlen; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 0xf];
	}
	hex[AUDIT_HEX] = '\0';
	return 0;
}

/* Copy a --head argument into out, lower-cased; -1 if not 64 hex digits. */
static int
audit_head_arg(const char *s, char out[AUDIT_HEX + 1])
{
	size_t	i;

	if (strlen(s) != AUDIT_HEX)
		return -1;
	for (i = 0; i < AUDIT_HEX; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return -1;
		out[i] = c;
	}
	out[AUDIT_HEX] = '\0';
	return 0;
}

/* Whether member key of o has JSON type t (null allowed when nullable). */
static bool
audit_field(json_t *o, const char *key, json_type t, bool nullable)
{
	json_t	*v = json_object_get(o, key);

	return v != NULL && (json_typeof(v) == t ||
	    (nullable && json_is_null(v)));
}

/*
 * Check line number n (len bytes, newline removed) against the chain so
 * far (prev: the hash of line n - 1); why receives the reason on failure.
 */
static int
audit_check_line(const char *line, size_t len, uint64_t n, const char *prev,
    char *why, size_t whysz)
{
	static const struct {
		const char	*key;
		json_type	 type;
		bool		 nullable;
	} fields[] = {
		{ "seq", JSON_INTEGER, false },
		{ "time", JSON_STRING, false },
		{ "method", JSON_STRING, false },
		{ "uid", JSON_INTEGER, false },
		{ "pid", JSON_INTEGER, false },
		{ "subject", JSON_STRING, true },
		{ "types", JSON_ARRAY, false },
		{ "outcome", JSON_STRING, false },
		{ "ms", JSON_INTEGER, false },
		{ "prev", JSON_STRING, false },
	};
	json_t		*doc, *v;
	json_error_t	 jerr;
	size_t		 i;
	int		 rc = -1;

	if (len == 0) {
		snprintf(why, whysz, "empty line");
		return -1;
	}
	if (len > AUDIT_LINE_MAX) {
		snprintf(why, whysz, "longer than %d bytes: not an audit "
		    "record", AUDIT_LINE_MAX);
		return -1;
	}
	if (memchr(line, '\0', len) != NULL) {
		snprintf(why, whysz, "contains a NUL byte");
		return -1;
	}
	if ((doc = json_loadb(line, len, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL) {
		snprintf(why, whysz, "not valid JSON: %s (column %d)",
		    jerr.text, jerr.column);
		return -1;
	}
	if (!json_is_object(doc)) {
		snprintf(why, whysz, "not a JSON object");
		goto done;
	}
	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (!audit_field(doc, fields[i].key, fields[i].type,
		    fields[i].nullable)) {
			snprintf(why, whysz, "field \"%s\" is missing or of "
			    "the wrong type", fields[i].key);
			goto done;
		}
	json_array_foreach(json_object_get(doc, "types"), i, v)
		if (!json_is_string(v)) {
			snprintf(why, whysz, "field \"types\" holds something "
			    "other than strings");
			goto done;
		}
	v = json_object_get(doc, "seq");
	if (json_integer_value(v) < 1 ||
	    (uint64_t)json_integer_value(v) != n) {
		snprintf(why, whysz, "seq is %" JSON_INTEGER_FORMAT
		    ", expected %" PRIu64 ": a line is missing, repeated or "
		    "out of order", json_integer_value(v), n);
		goto done;
	}
	if (strcmp(json_string_value(json_object_get(doc, "prev")),
	    prev) != 0) {
		if (n == 1)
			snprintf(why, whysz, "prev is not 64 zeros: the file "
			    "does not start at the beginning of a chain");
		else
			snprintf(why, whysz, "prev is not the hash of line %"
			    PRIu64 ": that line was changed, or lines were "
			    "removed, inserted or reordered", n - 1);
		goto done;
	}
	rc = 0;
done:
	json_decref(doc);
	return rc;
}

/*
 * Report the verdict; returns the exit status.  On failure bad is the
 * first bad line, or 0 when the file ended without the recorded head.
 */
static int
audit_report(struct credctl *ctx, bool ok, uint64_t nlines,
    const char *head, const char *want, uint64_t head_line, uint64_t bad,
    const char *why)
{
	json_t	*j;

	if (ctx->json) {
		if (ok)
			j = json_pack("{s:b, s:I, s:s, s:b}", "ok", 1,
			    "lines", (json_int_t)nlines, "head", head,
			    "head_checked", want != NULL);
		else
			j = json_pack("{s:b, s:o, s:s, s:I}", "ok", 0,
			    "line", bad > 0 ? json_integer((json_int_t)bad) :
			    json_null(), "error", why, "lines",
			    (json_int_t)nlines);
		if (j != NULL && ok && want != NULL)
			json_object_set_new(j, "head_line",
			    json_integer((json_int_t)head_line));
		if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2)) != 0) {
			json_decref(j);
			return credctl_local_error(ctx, "internal",
			    "cannot format the result");
		}
		fputc('\n', stdout);
		json_decref(j);
		return ok ? CREDCTL_EXIT_OK : CREDCTL_EXIT_BROKER;
	}
	if (!ok) {
		if (bad > 0)
			printf("FAIL: line %" PRIu64 ": %s\n", bad, why);
		else
			printf("FAIL: %s\n", why);
		return CREDCTL_EXIT_BROKER;
	}
	printf("OK: %" PRIu64 " lines, head %s\n", nlines, head);
	if (want != NULL)
		printf("the recorded head is line %" PRIu64 " of %" PRIu64
		    "\n", head_line, nlines);
	else
		printf("note: lines removed from the end of the file can only "
		    "be detected with --head HASH;\nrecord the head above and "
		    "pass it next time\n");
	return CREDCTL_EXIT_OK;
}

/* credctl audit verify FILE [--head HASH] */
int
credctl_audit_verify(struct credctl *ctx, struct credctl_args *args)
{
	const char	*path = args->argv[0];
	FILE		*f;
	char		*line = NULL, why[512], prev[AUDIT_HEX + 1];
	char		 want[AUDIT_HEX + 1];
	size_t		 cap = 0, len;
	ssize_t		 n;
	uint64_t	 nlines = 0, head_line = 0;
	bool		 found = false;
	int		 rc;

	if (args->head != NULL && audit_head_arg(args->head, want) != 0)
		return credctl_usage(ctx, "--head takes the 64 hex digits of "
		    "a SHA-256");
	if ((f = fopen(path, "re")) == NULL)
		return credctl_local_error(ctx, "io", "cannot open %s: %s",
		    path, strerror(errno));
	memcpy(prev, audit_zero, sizeof(prev));
	/* The hash before line 1 is the zeros: that head is always there. */
	if (args->head != NULL && strcmp(want, prev) == 0)
		found = true;
	while ((n = getline(&line, &cap, f)) != -1) {
		nlines++;
		len = (size_t)n;
		if (line[len - 1] != '\n') {
			snprintf(why, sizeof(why), "no newline at the end: a "
			    "partial line (a write was cut short, or the file "
			    "was cut)");
			goto fail;
		}
		len--;
		if (audit_check_line(line, len, nlines, prev, why,
		    sizeof(why)) != 0)
			goto fail;
		if (audit_sha256(line, len, prev) != 0) {
			rc = credctl_local_error(ctx, "internal",
			    "SHA-256 failed");
			goto done;
		}
		if (args->head != NULL && !found && strcmp(prev, want) == 0) {
			found = true;
			head_line = nlines;
		}
	}
	if (ferror(f)) {
		rc = credctl_local_error(ctx, "io", "cannot read %s: %s", path,
		    strerror(errno));
		goto done;
	}
	if (args->head != NULL && !found) {
		snprintf(why, sizeof(why), "no line has the recorded head %s: "
		    "lines were removed from the end, or the file was "
		    "replaced (the last of its %" PRIu64 " lines has hash %s)",
		    want, nlines, prev);
		rc = audit_report(ctx, false, nlines, prev, NULL, 0, 0, why);
		goto done;
	}
	rc = audit_report(ctx, true, nlines, prev, args->head != NULL ? want :
	    NULL, head_line, 0, NULL);
	goto done;
fail:
	rc = audit_report(ctx, false, nlines, prev, NULL, 0, nlines, why);
done:
	free(line);
	fclose(f);
	return rc;
}

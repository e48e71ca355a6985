/*
 * credctl-import: moving the values of the platform credbroker replaces
 * into the broker (SPEC section 11).  "credctl import FILE|-" reads JSON
 * Lines, one value a line:
 *
 *	{"type": IDENT | "type_uuid": UUID, "user": UUID, "sealed": "GCM:..."}
 *
 * and calls cred.import for each, which opens the GCM: text with the
 * master key or the legacy key and re-seals it bound to its place.  A run
 * never stops at a bad line: it counts each outcome, reports the number
 * of every line that failed, and can be run again (lines already imported
 * answer "unchanged").  --dry-run opens and compares without writing.
 * The sealed text is wiped once sent; no output names it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "credbroker.h"
#include "credctl.h"
#include "proto.h"
#include "secbuf.h"

#define IMPORT_LINE_MAX		65536	/* bytes of one JSON line */
#define IMPORT_PROGRESS		1000	/* lines between progress reports */
#define IMPORT_FAILED_SHOWN	1000	/* failed lines listed at most */

struct import_run {
	unsigned long	 imported;
	unsigned long	 unchanged;
	unsigned long	 would_import;
	unsigned long	 failed;
	unsigned long	*failed_lines;	/* the first IMPORT_FAILED_SHOWN */
	size_t		 nfailed_lines;
};

/* Record that line lineno failed, and say why on stderr. */
static void
import_fail(struct import_run *r, unsigned long lineno, const char *code,
    const char *msg)
{
	char	*safe;

	r->failed++;
	if (r->nfailed_lines < IMPORT_FAILED_SHOWN && r->failed_lines != NULL)
		r->failed_lines[r->nfailed_lines++] = lineno;
	safe = credctl_sanitize(msg, strlen(msg));
	fprintf(stderr, "credctl: import: line %lu: %s: %s\n", lineno, code,
	    safe != NULL ? safe : "");
	free(safe);
}

/* A string member of o, or NULL when absent; -1 in *bad when not one. */
static const char *
import_str(json_t *o, const char *key, int *bad)
{
	json_t	*v = json_object_get(o, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_string(v)) {
		*bad = -1;
		return NULL;
	}
	return json_string_value(v);
}

/*
 * One line: parse, pack and call.  Returns 0 when the line was handled
 * (imported, unchanged or failed and recorded), or an exit status when
 * the run cannot go on (the broker is gone).
 */
static int
import_line(struct credctl *ctx, struct credctl_args *args,
    struct import_run *r, unsigned long lineno, const char *line, size_t len)
{
	struct credctl_pack	 p;
	struct credbroker_reply	*reply = NULL;
	struct credbroker_error	 err;
	const msgpack_object	*o;
	json_error_t		 jerr;
	json_t			*doc = NULL;
	const char		*type, *tuuid, *user, *sealed;
	char			*outcome = NULL;
	int			 bad = 0, rc = 0, crc;

	credctl_pack_init(&p);
	if ((doc = json_loadb(line, len, JSON_REJECT_DUPLICATES,
	    &jerr)) == NULL || !json_is_object(doc)) {
		import_fail(r, lineno, "invalid", "not a JSON object");
		goto done;
	}
	type = import_str(doc, "type", &bad);
	tuuid = import_str(doc, "type_uuid", &bad);
	user = import_str(doc, "user", &bad);
	sealed = import_str(doc, "sealed", &bad);
	if (bad || json_object_size(doc) != 3 ||
	    (type == NULL) == (tuuid == NULL) || user == NULL ||
	    sealed == NULL) {
		import_fail(r, lineno, "invalid", "expected exactly the "
		    "string members \"type\" or \"type_uuid\", \"user\" and "
		    "\"sealed\"");
		goto done;
	}
	msgpack_pack_map(&p.pk, args->dry_run ? 4 : 3);
	proto_pack_kv_str(&p.pk, "type", type != NULL ? type : tuuid);
	proto_pack_kv_str(&p.pk, "user", user);
	proto_pack_kv_str(&p.pk, "sealed", sealed);
	if (args->dry_run) {
		proto_pack_cstr(&p.pk, "dry_run");
		msgpack_pack_true(&p.pk);
	}
	if (secbuf_failed(&p.buf)) {
		rc = credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
		goto done;
	}
	if ((crc = credbroker_call(ctx->conn, "cred.import",
	    (const char *)p.buf.data, p.buf.len, &reply, &err)) != 0) {
		if (crc != CREDBROKER_EBROKER) {
			fprintf(stderr, "credctl: import: stopped at line "
			    "%lu; lines before it are done, run again to "
			    "resume\n", lineno);
			rc = credctl_local_error(ctx, err.code, "%s",
			    err.message);
		} else
			import_fail(r, lineno, err.code, err.message);
		goto done;
	}
	o = proto_map_get(credbroker_reply_result(reply), "outcome");
	outcome = o != NULL ? credctl_text(o) : NULL;
	if (outcome != NULL && strcmp(outcome, "imported") == 0)
		r->imported++;
	else if (outcome != NULL && strcmp(outcome, "unchanged") == 0)
		r->unchanged++;
	else if (outcome != NULL && strcmp(outcome, "would_import") == 0)
		r->would_import++;
	else
		import_fail(r, lineno, "protocol", "unexpected answer");
done:
	free(outcome);
	if (doc != NULL) {
		/* The sealed text is not needed any more: wipe it. */
		if ((sealed = import_str(doc, "sealed", &bad)) != NULL)
			cb_wipe((char *)sealed, strlen(sealed));
		json_decref(doc);
	}
	credbroker_reply_free(reply);
	credctl_pack_free(&p);
	return rc;
}

/* Print the counts (and the failed lines), as text or JSON. */
static void
import_report(struct credctl *ctx, struct credctl_args *args,
    const struct import_run *r)
{
	size_t	i;

	if (ctx->json) {
		printf("{\"dry_run\": %s, \"imported\": %lu, \"unchanged\": "
		    "%lu, \"would_import\": %lu, \"failed\": %lu, "
		    "\"failed_lines\": [", args->dry_run ? "true" : "false",
		    r->imported, r->unchanged, r->would_import, r->failed);
		for (i = 0; i < r->nfailed_lines; i++)
			printf("%s%lu", i > 0 ? ", " : "", r->failed_lines[i]);
		printf("]}\n");
		return;
	}
	if (args->dry_run)
		printf("dry run: %lu would be imported, %lu unchanged, "
		    "%lu failed\n", r->would_import, r->unchanged, r->failed);
	else
		printf("%lu imported, %lu unchanged, %lu failed\n",
		    r->imported, r->unchanged, r->failed);
	if (r->nfailed_lines > 0) {
		printf("failed lines:");
		for (i = 0; i < r->nfailed_lines; i++)
			printf(" %lu", r->failed_lines[i]);
		if (r->failed > r->nfailed_lines)
			printf(" ... (%lu more)", r->failed -
			    r->nfailed_lines);
		printf("\n");
	}
}

/* credctl import FILE|- [--dry-run] */
int
credctl_import(struct credctl *ctx, struct credctl_args *args)
{
	struct import_run	 r;
	FILE			*fp = NULL;
	char			*line = NULL;
	size_t			 cap = 0, len;
	ssize_t			 n;
	unsigned long		 lineno = 0;
	int			 rc = 0, saved;

	memset(&r, 0, sizeof(r));
	credctl_harden();
	if (strcmp(args->argv[0], "-") == 0)
		fp = stdin;
	else if ((fp = fopen(args->argv[0], "r")) == NULL) {
		saved = errno;
		rc = credctl_invalid(ctx, "import: cannot open %s: %s",
		    args->argv[0], strerror(saved));
		goto done;
	}
	if ((r.failed_lines = calloc(IMPORT_FAILED_SHOWN,
	    sizeof(*r.failed_lines))) == NULL) {
		rc = credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
		goto done;
	}
	if ((rc = credctl_connect(ctx)) != 0)
		goto done;
	while ((n = getline(&line, &cap, fp)) != -1) {
		lineno++;
		len = (size_t)n;
		while (len > 0 && (line[len - 1] == '\n' ||
		    line[len - 1] == '\r' || line[len - 1] == ' ' ||
		    line[len - 1] == '\t'))
			len--;
		if (len == 0)
			continue;
		if (len > IMPORT_LINE_MAX)
			import_fail(&r, lineno, "invalid", "line too long");
		else if ((rc = import_line(ctx, args, &r, lineno, line,
		    len)) != 0)
			goto done;
		cb_wipe(line, (size_t)n);
		if (lineno % IMPORT_PROGRESS == 0)
			fprintf(stderr, "credctl: import: %lu lines read "
			    "(%lu failed)\n", lineno, r.failed);
	}
	if (ferror(fp)) {
		rc = credctl_local_error(ctx, "io", "import: cannot read "
		    "line %lu", lineno + 1);
		goto done;
	}
	import_report(ctx, args, &r);
	rc = r.failed > 0 ? CREDCTL_EXIT_BROKER : CREDCTL_EXIT_OK;
done:
	if (line != NULL) {
		cb_wipe(line, cap);
		free(line);
	}
	if (fp != NULL && fp != stdin)
		fclose(fp);
	free(r.failed_lines);
	return rc;
}

/*
 * credctl substitute --dry-run and credctl request: a request template's
 * substitution, shown masked, or sent by the broker.
 *
 * The input is a JSON document holding the params of the broker's
 * "substitute" method, {"component": {...}, "request": {...}}, read from
 * --file FILE or standard input.  It is converted to msgpack as it is
 * (so new component fields need no change here).
 *
 * substitute always sends it with dry_run: true: the broker then renders
 * "~masked-ID~" through each placeholder's filters instead of the value,
 * decrypts nothing, and says which values are set.  credctl never prints
 * a credential value.  That is why "substitute" without --dry-run is a
 * usage error that reads nothing and contacts nobody, why the document
 * may not turn dry_run off, and why an answer the broker did not mark as
 * a dry run is refused without printing any of it.  Runners that need
 * the values use credbroker_substitute() from libcredbroker instead.
 *
 * request sends the document to the "request" method with the options
 * of the command line: the broker substitutes, sends the request itself
 * and answers with the response, every echo of a used value replaced by
 * "[REDACTED:ID]", which credctl prints.  request --dry-run is the
 * masked substitution above, and says that nothing was sent.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "credbroker.h"
#include "credctl.h"
#include "proto.h"
#include "secbuf.h"

/* Largest document accepted, in bytes (the broker's default message cap). */
#define CREDCTL_DOC_MAX		(1024 * 1024)

/*
 * Read all of FILE (NULL or "-": standard input) into buf, at most
 * CREDCTL_DOC_MAX bytes.  Returns 0 or exit status 2.
 */
static int
credctl_read_doc(struct credctl *ctx, const char *file, struct secbuf *buf)
{
	const char	*name = file;
	ssize_t		 n;
	int		 fd, rc = 0;

	if (file == NULL || strcmp(file, "-") == 0) {
		fd = STDIN_FILENO;
		name = "standard input";
	} else if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1)
		return credctl_invalid(ctx, "cannot open %s: %s", file,
		    strerror(errno));
	for (;;) {
		if (secbuf_reserve(buf, 64 * 1024) != 0) {
			rc = credctl_invalid(ctx, "out of memory");
			break;
		}
		n = read(fd, buf->data + buf->len, buf->cap - buf->len);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = credctl_invalid(ctx, "cannot read %s: %s", name,
			    strerror(errno));
			break;
		}
		buf->len += (size_t)n;
		if (buf->len > CREDCTL_DOC_MAX) {
			rc = credctl_invalid(ctx, "%s is larger than %d bytes",
			    name, CREDCTL_DOC_MAX);
			break;
		}
	}
	if (fd != STDIN_FILENO)
		close(fd);
	return rc;
}

/* Pack a JSON value as msgpack, as it is. */
static void
credctl_pack_json(msgpack_packer *pk, json_t *j)
{
	const char	*k;
	json_t		*v;
	size_t		 i;

	switch (json_typeof(j)) {
	case JSON_OBJECT:
		msgpack_pack_map(pk, json_object_size(j));
		json_object_foreach(j, k, v) {
			proto_pack_cstr(pk, k);
			credctl_pack_json(pk, v);
		}
		break;
	case JSON_ARRAY:
		msgpack_pack_array(pk, json_array_size(j));
		json_array_foreach(j, i, v)
			credctl_pack_json(pk, v);
		break;
	case JSON_STRING:
		msgpack_pack_str(pk, json_string_length(j));
		msgpack_pack_str_body(pk, json_string_value(j),
		    json_string_length(j));
		break;
	case JSON_INTEGER:
		msgpack_pack_int64(pk, json_integer_value(j));
		break;
	case JSON_REAL:
		msgpack_pack_double(pk, json_real_value(j));
		break;
	case JSON_TRUE:
		msgpack_pack_true(pk);
		break;
	case JSON_FALSE:
		msgpack_pack_false(pk);
		break;
	case JSON_NULL:
		msgpack_pack_nil(pk);
		break;
	}
}

/*
 * Check the document's shape and pack a map of 2 + nextra entries, its
 * first two {component, request}, into p; the caller packs the others.
 * A "dry_run": true in the document is accepted when dry_run_ok (it is
 * what substitute sends anyway).  Returns 0 or exit status 2.
 */
static int
credctl_pack_doc(struct credctl *ctx, json_t *doc, const char *name,
    bool dry_run_ok, uint32_t nextra, struct credctl_pack *p)
{
	json_t		*comp, *req, *v;
	const char	*k;

	if (!json_is_object(doc))
		return credctl_invalid(ctx, "%s: the document must be a JSON "
		    "object {\"component\": {...}, \"request\": {...}}", name);
	json_object_foreach(doc, k, v) {
		if (strcmp(k, "component") == 0 || strcmp(k, "request") == 0)
			continue;
		if (strcmp(k, "dry_run") == 0 && !dry_run_ok)
			return credctl_invalid(ctx, "%s: unknown key "
			    "'dry_run' (use --dry-run)", name);
		if (strcmp(k, "dry_run") == 0 && json_is_true(v))
			continue;
		if (strcmp(k, "dry_run") == 0)
			return credctl_invalid(ctx, "%s: dry_run cannot be "
			    "turned off: credctl never prints credential "
			    "values", name);
		return credctl_invalid(ctx, "%s: unknown key '%.64s' (the "
		    "document holds \"component\" and \"request\")", name, k);
	}
	comp = json_object_get(doc, "component");
	req = json_object_get(doc, "request");
	if (!json_is_object(comp) || !json_is_object(req))
		return credctl_invalid(ctx, "%s: \"component\" and \"request\" "
		    "must both be JSON objects", name);
	msgpack_pack_map(&p->pk, 2 + nextra);
	proto_pack_cstr(&p->pk, "component");
	credctl_pack_json(&p->pk, comp);
	proto_pack_cstr(&p->pk, "request");
	credctl_pack_json(&p->pk, req);
	return 0;
}

/*
 * Read and parse the document of --file (or standard input) into *j.
 * Returns 0 or exit status 2.
 */
static int
credctl_load_doc(struct credctl *ctx, struct credctl_args *args,
    struct secbuf *doc, json_t **j, const char **name)
{
	json_error_t	jerr;
	int		rc;

	*name = args->file == NULL || strcmp(args->file, "-") == 0 ?
	    "standard input" : args->file;
	if ((rc = credctl_read_doc(ctx, args->file, doc)) != 0)
		return rc;
	if ((*j = json_loadb((const char *)doc->data, doc->len,
	    JSON_REJECT_DUPLICATES, &jerr)) == NULL)
		return credctl_invalid(ctx, "%s:%d:%d: invalid JSON: %s",
		    *name, jerr.line, jerr.column, jerr.text);
	return 0;
}

/* Print one line of text, escaped for the terminal. */
static void
credctl_print_line(const char *s, size_t n)
{
	char	*safe;

	if ((safe = credctl_sanitize(s, n)) != NULL)
		fputs(safe, stdout);
	free(safe);
	fputc('\n', stdout);
}

/* Print a masked body line by line, each line escaped. */
static void
credctl_print_body(const msgpack_object *b)
{
	const char	*p, *nl;
	size_t		 n;

	if (b->type == MSGPACK_OBJECT_BIN) {
		p = b->via.bin.ptr;
		n = b->via.bin.size;
	} else {
		p = b->via.str.ptr;
		n = b->via.str.size;
	}
	while (n > 0) {
		if ((nl = memchr(p, '\n', n)) == NULL) {
			credctl_print_line(p, n);
			break;
		}
		credctl_print_line(p, (size_t)(nl - p));
		n -= (size_t)(nl - p) + 1;
		p = nl + 1;
	}
}

/*
 * Print a dry-run result for humans:
 *
 *	METHOD URL
 *	Name: value
 *	(blank line, then the body, when there is one)
 *
 *	subject: UUID
 *	ID  TYPE  FILLED  SOURCE  ACCOUNT
 *
 * SOURCE and ACCOUNT say where each value comes from: the subject's own
 * value, its linked technical account, or the type's default account.
 */
static int
credctl_print_masked(struct credctl *ctx, const msgpack_object *res)
{
	static const char *const headers[] = {
		"ID", "TYPE", "FILLED", "SOURCE", "ACCOUNT", NULL
	};
	static const char *const keys[] = {
		"id", "type", "filled", "source", "account", NULL
	};
	const msgpack_object	*req, *method, *url, *hs, *body, *used, *o;
	struct credctl_table	*t;
	char			*s1, *s2;
	uint32_t		 i;

	req = proto_map_get(res, "request");
	method = proto_map_get(req, "method");
	url = proto_map_get(req, "url");
	hs = proto_map_get(req, "headers");
	body = proto_map_get(req, "body");
	used = proto_map_get(res, "used");
	if (method == NULL || method->type != MSGPACK_OBJECT_STR ||
	    url == NULL || url->type != MSGPACK_OBJECT_STR ||
	    (hs != NULL && hs->type != MSGPACK_OBJECT_ARRAY) ||
	    (used != NULL && used->type != MSGPACK_OBJECT_ARRAY))
		return credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "the substitution result does not have the expected "
		    "shape");

	s1 = credctl_text(method);
	s2 = credctl_text(url);
	printf("%s %s\n", s1 != NULL ? s1 : "?", s2 != NULL ? s2 : "?");
	free(s1);
	free(s2);
	for (i = 0; hs != NULL && i < hs->via.array.size; i++) {
		o = &hs->via.array.ptr[i];
		if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2)
			continue;
		s1 = credctl_text(&o->via.array.ptr[0]);
		s2 = credctl_text(&o->via.array.ptr[1]);
		printf("%s: %s\n", s1 != NULL ? s1 : "?",
		    s2 != NULL ? s2 : "?");
		free(s1);
		free(s2);
	}
	if (body != NULL && (body->type == MSGPACK_OBJECT_STR ||
	    body->type == MSGPACK_OBJECT_BIN)) {
		fputc('\n', stdout);
		credctl_print_body(body);
	}

	s1 = credctl_text(proto_map_get(res, "subject"));
	printf("\nsubject: %s\n", s1 != NULL ? s1 : "?");
	free(s1);
	if (used == NULL || used->via.array.size == 0) {
		printf("no credentials used\n");
		return CREDCTL_EXIT_OK;
	}
	if ((t = credctl_table_new(headers)) == NULL)
		return credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
	for (i = 0; i < used->via.array.size; i++)
		credctl_table_add(t, &used->via.array.ptr[i], keys);
	credctl_table_print(stdout, t);
	credctl_table_free(t);
	return CREDCTL_EXIT_OK;
}

/* Send the document as a dry-run substitution and print the answer. */

/*
 * The broker skipped the call (a status check without its system
 * account, SPEC 5): say so, or print the answer with --json; true when
 * it did, *rc the outcome.
 */
static bool
credctl_skipped(struct credctl *ctx, const msgpack_object *res, int *rc)
{
	const msgpack_object	*o;
	char			*s;

	o = proto_map_get(res, "skipped");
	if (o == NULL || o->type != MSGPACK_OBJECT_BOOLEAN || !o->via.boolean)
		return false;
	if (ctx->json)
		*rc = credctl_output(ctx, res);
	else {
		s = credctl_text(proto_map_get(res, "reason"));
		printf("skipped: %s\n", s != NULL ? s : "?");
		free(s);
		*rc = 0;
	}
	return true;
}

static int
credctl_dry_run(struct credctl *ctx, struct credctl_args *args,
    bool dry_run_ok)
{
	struct secbuf		 doc = SECBUF_INIT;
	struct credctl_pack	 p;
	struct credbroker_reply	*reply = NULL;
	const msgpack_object	*res, *o;
	const char		*name;
	json_t			*j = NULL;
	int			 rc;

	credctl_pack_init(&p);
	if ((rc = credctl_load_doc(ctx, args, &doc, &j, &name)) != 0)
		goto done;
	if ((rc = credctl_pack_doc(ctx, j, name, dry_run_ok, 1, &p)) != 0)
		goto done;
	proto_pack_cstr(&p.pk, "dry_run");
	msgpack_pack_true(&p.pk);
	if ((rc = credctl_call(ctx, "substitute", &p, &reply)) != 0)
		goto done;
	res = credbroker_reply_result(reply);

	if (credctl_skipped(ctx, res, &rc))
		goto done;
	/* Belt and braces: print nothing the broker did not mask. */
	o = proto_map_get(res, "dry_run");
	if (o == NULL || o->type != MSGPACK_OBJECT_BOOLEAN || !o->via.boolean) {
		rc = credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "the broker did not mark its answer as a dry run; "
		    "nothing is printed");
		goto done;
	}
	if (ctx->json)
		rc = credctl_output(ctx, res);
	else
		rc = credctl_print_masked(ctx, res);
done:
	json_decref(j);
	secbuf_free(&doc);
	credctl_pack_free(&p);
	credbroker_reply_free(reply);
	return rc;
}

/* credctl substitute --dry-run [--file FILE] */
int
credctl_substitute(struct credctl *ctx, struct credctl_args *args)
{
	if (!args->dry_run)
		return credctl_usage(ctx, "substitute needs --dry-run: credctl "
		    "never prints credential values, only where they would "
		    "go (runners get the values through libcredbroker's "
		    "credbroker_substitute())");
	return credctl_dry_run(ctx, args, true);
}

/*
 * Parse a whole number option from 1 to max into *v; 0 (not given) or
 * exit status 2.
 */
static int
credctl_parse_count(struct credctl *ctx, const char *arg, const char *opt,
    unsigned long long max, unsigned long long *v)
{
	char	*end;

	*v = 0;
	if (arg == NULL)
		return 0;
	errno = 0;
	if (*arg < '0' || *arg > '9' ||
	    (*v = strtoull(arg, &end, 10), errno != 0) || *end != '\0' ||
	    *v == 0 || *v > max)
		return credctl_usage(ctx, "%s wants a whole number from 1 to "
		    "%llu", opt, max);
	return 0;
}

/*
 * The str or bin o (text from the upstream, bin when it is not UTF-8),
 * escaped for the terminal; malloc'd, NULL when o is neither.
 */
static char *
credctl_upstream_text(const msgpack_object *o)
{
	if (o != NULL && o->type == MSGPACK_OBJECT_STR)
		return credctl_sanitize(o->via.str.ptr, o->via.str.size);
	if (o != NULL && o->type == MSGPACK_OBJECT_BIN)
		return credctl_sanitize(o->via.bin.ptr, o->via.bin.size);
	return NULL;
}

/*
 * Print a response for people: "HTTP STATUS TEXT", the headers as "Name:
 * value" (escaped for the terminal, bytes that are not UTF-8 as \xNN), a
 * blank line, then the body as it is.  The body is the service's answer
 * with every echo of a used value already replaced by the broker.
 */
static int
credctl_print_response(struct credctl *ctx, const msgpack_object *res)
{
	const msgpack_object	*st, *hs, *body, *o;
	uint32_t		 i;
	char			*s1, *s2;

	st = proto_map_get(res, "status");
	hs = proto_map_get(res, "headers");
	body = proto_map_get(res, "body");
	if (st == NULL || st->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    (hs != NULL && hs->type != MSGPACK_OBJECT_ARRAY &&
	    hs->type != MSGPACK_OBJECT_NIL) ||
	    (body != NULL && body->type != MSGPACK_OBJECT_STR &&
	    body->type != MSGPACK_OBJECT_BIN &&
	    body->type != MSGPACK_OBJECT_NIL))
		return credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "the request result does not have the expected shape");
	printf("HTTP %" PRIu64, st->via.u64);
	if ((s1 = credctl_upstream_text(proto_map_get(res, "reason"))) !=
	    NULL && *s1 != '\0')
		printf(" %s", s1);
	free(s1);
	fputc('\n', stdout);
	for (i = 0; hs != NULL && hs->type == MSGPACK_OBJECT_ARRAY &&
	    i < hs->via.array.size; i++) {
		o = &hs->via.array.ptr[i];
		if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 2)
			continue;
		s1 = credctl_upstream_text(&o->via.array.ptr[0]);
		s2 = credctl_upstream_text(&o->via.array.ptr[1]);
		printf("%s: %s\n", s1 != NULL ? s1 : "?",
		    s2 != NULL ? s2 : "?");
		free(s1);
		free(s2);
	}
	fputc('\n', stdout);
	if (body != NULL && body->type == MSGPACK_OBJECT_STR)
		fwrite(body->via.str.ptr, 1, body->via.str.size, stdout);
	else if (body != NULL && body->type == MSGPACK_OBJECT_BIN)
		fwrite(body->via.bin.ptr, 1, body->via.bin.size, stdout);
	return CREDCTL_EXIT_OK;
}

/*
 * credctl request [--file FILE] [--timeout MS] [--max-response-bytes N]
 *     [--follow-redirects] [--dry-run]
 */
int
credctl_request(struct credctl *ctx, struct credctl_args *args)
{
	struct secbuf		 doc = SECBUF_INIT;
	struct credctl_pack	 p;
	struct credbroker_reply	*reply = NULL;
	const msgpack_object	*res;
	unsigned long long	 timeout_ms, max_bytes;
	const char		*name;
	json_t			*j = NULL;
	uint32_t		 nextra;
	int			 rc;

	if ((rc = credctl_parse_count(ctx, args->timeout, "--timeout",
	    UINT32_MAX, &timeout_ms)) != 0 ||
	    (rc = credctl_parse_count(ctx, args->max_response_bytes,
	    "--max-response-bytes", UINT32_MAX, &max_bytes)) != 0)
		return rc;
	if (args->dry_run) {
		/* The masked substitution: the broker sends nothing. */
		rc = credctl_dry_run(ctx, args, false);
		if (rc == CREDCTL_EXIT_OK)
			fprintf(stderr, "credctl: dry run: nothing was "
			    "sent\n");
		return rc;
	}
	credctl_pack_init(&p);
	if ((rc = credctl_load_doc(ctx, args, &doc, &j, &name)) != 0)
		goto done;
	nextra = (timeout_ms > 0) + (max_bytes > 0) + args->follow_redirects;
	if ((rc = credctl_pack_doc(ctx, j, name, false, nextra, &p)) != 0)
		goto done;
	if (timeout_ms > 0) {
		proto_pack_cstr(&p.pk, "timeout_ms");
		msgpack_pack_uint64(&p.pk, timeout_ms);
	}
	if (max_bytes > 0) {
		proto_pack_cstr(&p.pk, "max_response_bytes");
		msgpack_pack_uint64(&p.pk, max_bytes);
	}
	if (args->follow_redirects) {
		proto_pack_cstr(&p.pk, "follow_redirects");
		msgpack_pack_true(&p.pk);
	}
	if ((rc = credctl_call(ctx, "request", &p, &reply)) != 0)
		goto done;
	res = credbroker_reply_result(reply);

	if (credctl_skipped(ctx, res, &rc))
		goto done;
	if (ctx->json)
		rc = credctl_output(ctx, res);
	else
		rc = credctl_print_response(ctx, res);
done:
	json_decref(j);
	secbuf_free(&doc);
	credctl_pack_free(&p);
	credbroker_reply_free(reply);
	return rc;
}

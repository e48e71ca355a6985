/*
 * credctl vault commands: show, set, test (SPEC sections 4.2 and 6).
 *
 * "vault show" prints the broker's Vault settings (vault.get): role_id
 * and secret_id appear only as "set" or "not set".  "vault set" replaces
 * them (vault.set) and "vault test" runs the broker's connection test
 * (vault.test) with the stored settings or with overrides.
 *
 * The AppRole secret_id is a secret and never comes from argv: with
 * --secret-id-stdin it is read from standard input, with
 * --secret-id-prompt from a no-echo prompt on /dev/tty, by the readers
 * that "cred set" uses (credctl-cred.c).  It goes from read(2) into a
 * wiping buffer, is packed from there into the wiping params buffer, and
 * both are wiped with OPENSSL_cleanse on every path; libcredbroker wipes
 * its own copy.  The role_id is an identifier: it may be given on argv
 * (--role-id) or read from standard input like the secret_id (then the
 * role_id is the first line and the secret_id the second).  Neither is
 * ever printed, and an id that is not given keeps its stored value (the
 * broker keeps absent keys).
 *
 * The broker sends the stored ids only to the url, namespace and ca_file
 * they were stored with: "vault set" or "vault test" with another one
 * must give both ids again, and when the broker refuses for that reason
 * credctl says which options do it (credctl_vault_call).
 *
 * vault.set requires "enabled": without --enable or --disable credctl
 * reads the stored state with vault.get first and sends it back.
 *
 * The read cache's lifetime (cache_seconds) is shown only when the cache
 * is on: off is the default, and the usual listing stays as it was.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "credbroker.h"
#include "credctl.h"
#include "proto.h"
#include "secbuf.h"

/* The ids to send; each points into argv or into in (NULL: keep). */
struct credctl_vault_ids {
	struct secbuf	 in;		/* standard input or the prompt */
	const uint8_t	*role_id;
	size_t		 role_id_len;
	const uint8_t	*secret_id;
	size_t		 secret_id_len;
};

/* Field order of "vault show". */
static const char *const credctl_vault_fields[] = {
	"configured", "enabled", "url", "path", "role_id", "secret_id",
	"ca_file", "namespace", "timeout_ms", NULL
};

/* Is the msgpack object o the string s? */
static bool
credctl_vault_is(const msgpack_object *o, const char *s)
{
	return o->type == MSGPACK_OBJECT_STR &&
	    o->via.str.size == strlen(s) &&
	    memcmp(o->via.str.ptr, s, o->via.str.size) == 0;
}

/* Make o the (static) string s. */
static void
credctl_vault_str(msgpack_object *o, const char *s)
{
	memset(o, 0, sizeof(*o));
	o->type = MSGPACK_OBJECT_STR;
	o->via.str.ptr = s;
	o->via.str.size = (uint32_t)strlen(s);
}

/*
 * Parse the decimal number s (NULL: absent, *out = -1) of 0 to max.
 * Returns false when it is not one.
 */
static bool
credctl_vault_number(const char *s, long long max, int64_t *out)
{
	char		*end = NULL;
	long long	 v;

	*out = -1;
	if (s == NULL)
		return true;
	errno = 0;
	v = *s >= '0' && *s <= '9' ? strtoll(s, &end, 10) : -1;
	if (v < 0 || errno != 0 || *end != '\0' || v > max)
		return false;
	*out = v;
	return true;
}

/*
 * Check the options of vault set (settings true) or vault test, and
 * parse --timeout-ms into *timeout and --cache-seconds into *cache (-1
 * when absent).  Returns 0 or exit status 2.
 */
static int
credctl_vault_check(struct credctl *ctx, struct credctl_args *args,
    bool settings, int64_t *timeout, int64_t *cache)
{
	bool		 tty;

	if (settings && (args->url == NULL || args->path == NULL))
		return credctl_usage(ctx, "%s: --url and --path are required",
		    ctx->cmd->name);
	if (args->enable && args->disable)
		return credctl_usage(ctx, "--enable and --disable exclude "
		    "each other");
	if (args->role_id != NULL && args->role_id_stdin)
		return credctl_usage(ctx, "--role-id and --role-id-stdin "
		    "exclude each other");
	if (args->role_id != NULL && *args->role_id == '\0')
		return credctl_usage(ctx, "--role-id is empty");
	if (args->secret_id_stdin && args->secret_id_prompt)
		return credctl_usage(ctx, "--secret-id-stdin and "
		    "--secret-id-prompt exclude each other");
	if (args->role_id_stdin && args->secret_id_prompt)
		return credctl_usage(ctx, "--secret-id-prompt needs the "
		    "role_id from --role-id, not from standard input");
	tty = isatty(STDIN_FILENO);
	if (args->secret_id_prompt && !tty)
		return credctl_usage(ctx, "--secret-id-prompt needs a "
		    "terminal on standard input; pipe the secret_id into "
		    "--secret-id-stdin instead");
	if ((args->role_id_stdin || args->secret_id_stdin) && tty)
		return credctl_usage(ctx, "standard input is a terminal, "
		    "which would echo what you type; pipe the ids in, or use "
		    "--secret-id-prompt");
	if (!credctl_vault_number(args->timeout_ms,
	    CB_VAULT_TIMEOUT_MAX, timeout))
		return credctl_usage(ctx, "--timeout-ms must be a number of "
		    "milliseconds from 0 to %d (0: the broker's default)",
		    CB_VAULT_TIMEOUT_MAX);
	if (!credctl_vault_number(args->cache_seconds,
	    CB_VAULT_CACHE_MAX, cache))
		return credctl_usage(ctx, "--cache-seconds must be a number "
		    "of seconds from 0 to %d (0: no cache)",
		    CB_VAULT_CACHE_MAX);
	return 0;
}

/*
 * Take the next line of [*p, end): *line and *len get its bytes without
 * the "\n" or "\r\n".  Returns false at the end of the input.
 */
static bool
credctl_vault_line(const uint8_t **p, const uint8_t *end,
    const uint8_t **line, size_t *len)
{
	const uint8_t	*nl;

	if (*p >= end)
		return false;
	*line = *p;
	if ((nl = memchr(*p, '\n', (size_t)(end - *p))) == NULL) {
		*len = (size_t)(end - *p);
		*p = end;
	} else {
		*len = (size_t)(nl - *p);
		*p = nl + 1;
	}
	if (*len > 0 && (*line)[*len - 1] == '\r')
		(*len)--;
	return true;
}

/*
 * Split standard input (already in ids->in) into the role_id line and
 * the secret_id line that the options ask for.  Returns 0 or exit
 * status 2; messages never quote the input.
 */
static int
credctl_vault_split(struct credctl *ctx, struct credctl_args *args,
    struct credctl_vault_ids *ids)
{
	const uint8_t	*p = ids->in.data, *end = p + ids->in.len;

	if (args->role_id_stdin &&
	    (!credctl_vault_line(&p, end, &ids->role_id, &ids->role_id_len) ||
	    ids->role_id_len == 0))
		return credctl_invalid(ctx, "the role_id is missing: "
		    "standard input must hold it on its first line");
	if (args->secret_id_stdin &&
	    (!credctl_vault_line(&p, end, &ids->secret_id,
	    &ids->secret_id_len) || ids->secret_id_len == 0))
		return credctl_invalid(ctx, "the secret_id is missing: "
		    "standard input must hold it on its %s line",
		    args->role_id_stdin ? "second" : "first");
	if (p < end)
		return credctl_invalid(ctx, "standard input has more than "
		    "the %s; nothing was sent", args->role_id_stdin &&
		    args->secret_id_stdin ? "role_id and secret_id lines" :
		    args->role_id_stdin ? "role_id line" : "secret_id line");
	return 0;
}

/*
 * Collect the ids the options name: --role-id from argv, the rest from
 * standard input or the prompt into ids->in.  Returns 0 or an exit
 * status; on failure the caller still wipes ids->in.
 */
static int
credctl_vault_read_ids(struct credctl *ctx, struct credctl_args *args,
    struct credctl_vault_ids *ids)
{
	int	rc;

	if (args->role_id != NULL) {
		ids->role_id = (const uint8_t *)args->role_id;
		ids->role_id_len = strlen(args->role_id);
	}
	if (args->role_id_stdin || args->secret_id_stdin) {
		if ((rc = credctl_read_stdin(ctx, true, &ids->in)) != 0)
			return rc;
		return credctl_vault_split(ctx, args, ids);
	}
	if (args->secret_id_prompt) {
		if ((rc = credctl_read_tty(ctx, &ids->in,
		    "Vault secret_id: ")) != 0)
			return rc;
		if (ids->in.len == 0)
			return credctl_invalid(ctx, "the secret_id is empty; "
			    "nothing was sent");
		ids->secret_id = ids->in.data;
		ids->secret_id_len = ids->in.len;
	}
	return 0;
}

/* Pack key and the len bytes at v as a msgpack string. */
static void
credctl_vault_pack_bytes(struct credctl_pack *p, const char *key,
    const uint8_t *v, size_t len)
{
	proto_pack_cstr(&p->pk, key);
	msgpack_pack_str(&p->pk, len);
	msgpack_pack_str_body(&p->pk, v, len);
}

/*
 * Pack the params of vault.set or vault.test: enabled (when >= 0), the
 * settings that were given (timeout and cache when >= 0), and the ids.
 */
static void
credctl_vault_pack(struct credctl_pack *p, const struct credctl_args *args,
    const struct credctl_vault_ids *ids, int enabled, int64_t timeout,
    int64_t cache)
{
	uint32_t	n = 0;

	n += enabled >= 0;
	n += args->url != NULL;
	n += args->path != NULL;
	n += ids->role_id != NULL;
	n += ids->secret_id != NULL;
	n += args->ca_file != NULL;
	n += args->namespace != NULL;
	n += timeout >= 0;
	n += cache >= 0;
	msgpack_pack_map(&p->pk, n);
	if (enabled >= 0)
		proto_pack_kv_bool(&p->pk, "enabled", enabled != 0);
	if (args->url != NULL)
		proto_pack_kv_str(&p->pk, "url", args->url);
	if (args->path != NULL)
		proto_pack_kv_str(&p->pk, "path", args->path);
	if (ids->role_id != NULL)
		credctl_vault_pack_bytes(p, "role_id", ids->role_id,
		    ids->role_id_len);
	if (ids->secret_id != NULL)
		credctl_vault_pack_bytes(p, "secret_id", ids->secret_id,
		    ids->secret_id_len);
	if (args->ca_file != NULL)
		proto_pack_kv_str(&p->pk, "ca_file", args->ca_file);
	if (args->namespace != NULL)
		proto_pack_kv_str(&p->pk, "namespace", args->namespace);
	if (timeout >= 0)
		proto_pack_kv_int(&p->pk, "timeout_ms", timeout);
	if (cache >= 0)
		proto_pack_kv_int(&p->pk, "cache_seconds", cache);
}

/*
 * credctl_call for vault.set and vault.test: the same, but when the broker
 * refuses another endpoint without the ids, say how to give them.
 */
static int
credctl_vault_call(struct credctl *ctx, const char *method,
    struct credctl_pack *p, struct credbroker_reply **out)
{
	struct credbroker_error	err;
	int			rc;

	*out = NULL;
	if (secbuf_failed(&p->buf))
		return credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
	if ((rc = credctl_connect(ctx)) != 0)
		return rc;
	rc = credbroker_call(ctx->conn, method, (const char *)p->buf.data,
	    p->buf.len, out, &err);
	if (rc == 0)
		return CREDCTL_EXIT_OK;
	credctl_local_error(ctx, err.code, "%s", err.message);
	if (rc == CREDBROKER_EBROKER && strcmp(err.code, "bad_request") == 0 &&
	    strstr(err.message, "needs role_id and secret_id again") != NULL)
		fprintf(stderr, "credctl: another --url, --namespace or "
		    "--ca-file needs the AppRole ids again: add --role-id ID "
		    "(or --role-id-stdin) and --secret-id-stdin (or "
		    "--secret-id-prompt); the stored ones are only sent to "
		    "the Vault they were stored for\n");
	return rc == CREDBROKER_EBROKER ? CREDCTL_EXIT_BROKER :
	    CREDCTL_EXIT_LOCAL;
}

/* Read the stored "enabled" with vault.get; 0 or an exit status. */
static int
credctl_vault_enabled(struct credctl *ctx, bool *enabled)
{
	struct credbroker_reply	*reply;
	const msgpack_object	*v;
	int			 rc;

	if ((rc = credctl_call(ctx, "vault.get", NULL, &reply)) != 0)
		return rc;
	v = proto_map_get(credbroker_reply_result(reply), "enabled");
	if (v == NULL || v->type != MSGPACK_OBJECT_BOOLEAN)
		rc = credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "vault.get did not say whether Vault is enabled");
	else
		*enabled = v->via.boolean;
	credbroker_reply_free(reply);
	return rc;
}

/* credctl vault show */
int
credctl_vault_show(struct credctl *ctx, struct credctl_args *args)
{
	static const char *const off[] = { "cache_seconds", NULL };
	struct credbroker_reply	*reply;
	const msgpack_object	*res, *k, *v;
	msgpack_object_kv	*kv = NULL;
	msgpack_object		 shown;
	const char *const	*skip = NULL;
	uint32_t		 i, n;
	int			 rc;

	if ((rc = credctl_call(ctx, "vault.get", NULL, &reply)) != 0)
		return rc;
	res = credbroker_reply_result(reply);
	if (ctx->json) {
		rc = credctl_output(ctx, res);
		goto done;
	}
	if (res->type != MSGPACK_OBJECT_MAP) {
		rc = credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "vault.get did not return a map");
		goto done;
	}
	/* A copy of the map with role_id_set: yes as role_id: set, ... */
	n = res->via.map.size;
	if (n > 0 && (kv = calloc(n, sizeof(*kv))) == NULL) {
		rc = credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
		goto done;
	}
	for (i = 0; i < n; i++) {
		kv[i] = res->via.map.ptr[i];
		k = &res->via.map.ptr[i].key;
		v = &res->via.map.ptr[i].val;
		if (credctl_vault_is(k, "cache_seconds") &&
		    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    v->via.u64 == 0)
			skip = off;
		if (v->type != MSGPACK_OBJECT_BOOLEAN)
			continue;
		if (credctl_vault_is(k, "role_id_set"))
			credctl_vault_str(&kv[i].key, "role_id");
		else if (credctl_vault_is(k, "secret_id_set"))
			credctl_vault_str(&kv[i].key, "secret_id");
		else
			continue;
		credctl_vault_str(&kv[i].val, v->via.boolean ? "set" :
		    "not set");
	}
	memset(&shown, 0, sizeof(shown));
	shown.type = MSGPACK_OBJECT_MAP;
	shown.via.map.size = n;
	shown.via.map.ptr = kv;
	credctl_print_fields(stdout, &shown, credctl_vault_fields, skip);
	free(kv);
done:
	credbroker_reply_free(reply);
	return rc;
}

/*
 * credctl vault set --url URL --path PATH [--enable|--disable] [ids]
 * [--ca-file FILE] [--namespace NS] [--timeout-ms N] [--cache-seconds N]
 */
int
credctl_vault_set(struct credctl *ctx, struct credctl_args *args)
{
	struct credctl_vault_ids ids;
	struct credctl_pack	 p;
	struct credbroker_reply	*reply = NULL;
	int64_t			 timeout = 0, cache = 0;
	bool			 enabled = false;
	int			 rc;

	if ((rc = credctl_vault_check(ctx, args, true, &timeout,
	    &cache)) != 0)
		return rc;
	credctl_harden();
	memset(&ids, 0, sizeof(ids));
	credctl_pack_init(&p);

	/* Fail before reading a secret when the broker is not there. */
	if ((rc = credctl_connect(ctx)) != 0)
		goto done;
	if (args->enable || args->disable)
		enabled = args->enable;
	else if ((rc = credctl_vault_enabled(ctx, &enabled)) != 0)
		goto done;
	if ((rc = credctl_vault_read_ids(ctx, args, &ids)) != 0)
		goto done;
	credctl_vault_pack(&p, args, &ids, enabled, timeout, cache);
	secbuf_free(&ids.in);

	if ((rc = credctl_vault_call(ctx, "vault.set", &p, &reply)) != 0)
		goto done;
	credctl_pack_free(&p);
	if (ctx->json)
		rc = credctl_output(ctx, credbroker_reply_result(reply));
	else
		printf("Vault settings saved; Vault is %s\n", enabled ?
		    "enabled" : "disabled");
done:
	secbuf_free(&ids.in);
	credctl_pack_free(&p);
	credbroker_reply_free(reply);
	return rc;
}

/* Print the steps of a vault.test result; exit status 0 or 1 (failed). */
static int
credctl_vault_test_print(struct credctl *ctx, const msgpack_object *res)
{
	const msgpack_object	*ok, *steps, *st, *sok;
	char			*name, *msg;
	uint32_t		 i;

	ok = proto_map_get(res, "ok");
	steps = proto_map_get(res, "steps");
	if (ok == NULL || ok->type != MSGPACK_OBJECT_BOOLEAN ||
	    steps == NULL || steps->type != MSGPACK_OBJECT_ARRAY)
		return credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "vault.test did not return {ok, steps}");
	if (ctx->json) {
		if (credctl_output(ctx, res) != 0)
			return CREDCTL_EXIT_LOCAL;
		return ok->via.boolean ? CREDCTL_EXIT_OK : CREDCTL_EXIT_BROKER;
	}
	for (i = 0; i < steps->via.array.size; i++) {
		st = &steps->via.array.ptr[i];
		sok = proto_map_get(st, "ok");
		name = credctl_text(proto_map_get(st, "step"));
		msg = credctl_text(proto_map_get(st, "message"));
		printf("%-5s  %-6s  %s\n", name != NULL ? name : "?",
		    sok != NULL && sok->type == MSGPACK_OBJECT_BOOLEAN &&
		    sok->via.boolean ? "ok" : "failed",
		    msg != NULL ? msg : "?");
		free(name);
		free(msg);
	}
	printf("%s\n", ok->via.boolean ? "OK" : "FAILED");
	return ok->via.boolean ? CREDCTL_EXIT_OK : CREDCTL_EXIT_BROKER;
}

/* credctl vault test [--url URL] [--path PATH] [ids] [...] */
int
credctl_vault_test(struct credctl *ctx, struct credctl_args *args)
{
	struct credctl_vault_ids ids;
	struct credctl_pack	 p;
	struct credbroker_reply	*reply = NULL;
	int64_t			 timeout = 0, cache = 0;
	int			 rc;

	/* vault test takes no --cache-seconds: cache is always -1. */
	if ((rc = credctl_vault_check(ctx, args, false, &timeout,
	    &cache)) != 0)
		return rc;
	credctl_harden();
	memset(&ids, 0, sizeof(ids));
	credctl_pack_init(&p);

	if ((rc = credctl_connect(ctx)) != 0)
		goto done;
	if ((rc = credctl_vault_read_ids(ctx, args, &ids)) != 0)
		goto done;
	credctl_vault_pack(&p, args, &ids, -1, timeout, -1);
	secbuf_free(&ids.in);

	if ((rc = credctl_vault_call(ctx, "vault.test", &p, &reply)) != 0)
		goto done;
	credctl_pack_free(&p);
	rc = credctl_vault_test_print(ctx, credbroker_reply_result(reply));
done:
	secbuf_free(&ids.in);
	credctl_pack_free(&p);
	credbroker_reply_free(reply);
	return rc;
}

/* An integer member of a map, or -1. */
static long long
credctl_vault_count(const msgpack_object *res, const char *key)
{
	const msgpack_object	*v = proto_map_get(res, key);

	if (v == NULL || v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return -1;
	return (long long)v->via.u64;
}

/* credctl vault adopt TYPE */
int
credctl_vault_adopt(struct credctl *ctx, struct credctl_args *args)
{
	struct credctl_pack	 p;
	struct credbroker_reply	*reply = NULL;
	const msgpack_object	*res, *fu;
	char			*s;
	long long		 failed;
	uint32_t		 i;
	int			 rc;

	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, 1);
	proto_pack_kv_str(&p.pk, "type", args->argv[0]);
	if ((rc = credctl_call(ctx, "vault.adopt", &p, &reply)) != 0)
		goto done;
	res = credbroker_reply_result(reply);
	failed = credctl_vault_count(res, "failed");
	if (ctx->json)
		rc = credctl_output(ctx, res);
	else {
		printf("%lld adopted, %lld already in the broker's format, "
		    "%lld failed\n", credctl_vault_count(res, "adopted"),
		    credctl_vault_count(res, "already"), failed);
		fu = proto_map_get(res, "failed_users");
		if (fu != NULL && fu->type == MSGPACK_OBJECT_ARRAY &&
		    fu->via.array.size > 0) {
			printf("left as they are (no key opens them):\n");
			for (i = 0; i < fu->via.array.size; i++) {
				s = credctl_text(&fu->via.array.ptr[i]);
				printf("  %s\n", s != NULL ? s : "?");
				free(s);
			}
		}
	}
	if (rc == 0 && failed != 0)
		rc = CREDCTL_EXIT_BROKER;
done:
	credctl_pack_free(&p);
	credbroker_reply_free(reply);
	return rc;
}

/*
 * credctl keypair and peerkey commands (SPEC sections 9.1 and 9.2): the
 * RSA key pairs the broker holds and the counterparts' public keys it
 * trusts, through the keypair.* and peerkey.* methods.
 *
 * "keypair import" is the one place where credctl holds a private key.
 * Its PEM text never comes from argv (it would be visible in ps and in
 * the shell's history): it is read with read(2), no stdio, from --file
 * FILE or from standard input, which must then not be a terminal, since
 * a terminal would echo it.  It goes into a wiping buffer, is packed into
 * a second one, and both are wiped on every path; core dumps and ptrace
 * attach are disabled first.  An empty or oversized input is refused
 * before the broker is contacted, and no message names the file given
 * (text pasted where a path goes could be the key itself).
 *
 * The broker never returns a private key, and credctl has no command
 * that mints a token: tokens are secrets, and credctl never prints one.
 * What it prints is public: "show --pem" the public PEM of one version,
 * exactly, to hand to a counterpart; "keypair show --base64" base64(PEM),
 * the form of a login service's SignaturePublicKey setting.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "credbroker.h"
#include "credctl.h"
#include "proto.h"
#include "secbuf.h"

/* Longest PEM text accepted, in bytes (the broker's limit too). */
#define CREDCTL_PEM_MAX		16384
/* Largest version number (the broker's limit). */
#define CREDCTL_KEY_VERSION_MAX	2147483647L

/* The names of one of the two families. */
struct credctl_keyclass {
	const char	*name;		/* "keypair": also the ident's param */
	const char	*get;
	const char	*list;
	const char	*delete;
};

static const struct credctl_keyclass credctl_keypairs = {
	"keypair", "keypair.get", "keypair.list", "keypair.delete"
};
static const struct credctl_keyclass credctl_peerkeys = {
	"peerkey", "peerkey.get", "peerkey.list", "peerkey.delete"
};

/* Columns of the versions table of "show" and after a change. */
static const char *const credctl_keyver_headers[] = {
	"VERSION", "ALGORITHM", "BITS", "CREATED_AT", NULL
};
static const char *const credctl_keyver_keys[] = {
	"version", "algorithm", "bits", "created_at", NULL
};

/*
 * Parse a key version (--version N, or peerkey set's VERSION): an integer
 * from 1 to CREDCTL_KEY_VERSION_MAX.  Returns 0 or exit status 2.
 */
static int
credctl_key_version(struct credctl *ctx, const char *s, const char *what,
    uint32_t *out)
{
	char	*end = NULL;
	long	 v;

	*out = 0;
	if (s == NULL)
		return 0;
	errno = 0;
	v = *s >= '0' && *s <= '9' ? strtol(s, &end, 10) : -1;
	if (v < 1 || errno != 0 || *end != '\0' ||
	    v > CREDCTL_KEY_VERSION_MAX)
		return credctl_usage(ctx, "%s must be an integer from 1 to %ld",
		    what, CREDCTL_KEY_VERSION_MAX);
	*out = (uint32_t)v;
	return 0;
}

/*
 * Read the PEM text of FILE (NULL or "-": standard input) into buf, at
 * most CREDCTL_PEM_MAX bytes and not blank.  Returns 0 or an exit status
 * (2 for input that cannot be used); buf is wiped on failure.
 */
static int
credctl_key_read_pem(struct credctl *ctx, const char *file,
    struct secbuf *buf)
{
	const char	*name;
	ssize_t		 n;
	size_t		 i;
	int		 fd, rc = 0;

	if (file == NULL || strcmp(file, "-") == 0) {
		fd = STDIN_FILENO;
		name = "standard input";
	} else {
		name = "the --file";
		if ((fd = open(file, O_RDONLY | O_CLOEXEC)) == -1)
			return credctl_invalid(ctx, "cannot open the --file: "
			    "%s", strerror(errno));
	}
	while (buf->len <= CREDCTL_PEM_MAX) {
		if (secbuf_tail(buf, CREDCTL_PEM_MAX + 1 - buf->len) != 0) {
			rc = credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
			    "out of memory");
			goto done;
		}
		n = read(fd, buf->data + buf->len,
		    CREDCTL_PEM_MAX + 1 - buf->len);
		if (n == 0)
			break;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = credctl_invalid(ctx, "cannot read %s: %s", name,
			    strerror(errno));
			goto done;
		}
		secbuf_commit(buf, (size_t)n);
	}
	if (buf->len > CREDCTL_PEM_MAX) {
		rc = credctl_invalid(ctx, "%s is larger than %d bytes, more "
		    "than a PEM key; nothing was sent", name, CREDCTL_PEM_MAX);
		goto done;
	}
	for (i = 0; i < buf->len; i++)
		if (buf->data[i] != ' ' && buf->data[i] != '\t' &&
		    buf->data[i] != '\r' && buf->data[i] != '\n')
			break;
	if (i == buf->len)
		rc = credctl_invalid(ctx, "%s is empty; nothing was sent",
		    name);
done:
	if (fd != STDIN_FILENO)
		close(fd);
	if (rc != 0)
		secbuf_reset(buf);
	return rc;
}

/* The version entry of a key (0: the current one), or NULL. */
static const msgpack_object *
credctl_key_entry(const msgpack_object *res, uint32_t version)
{
	const msgpack_object	*vs, *cur, *v, *e;
	uint32_t		 i;

	if (version == 0) {
		if ((cur = proto_map_get(res, "current")) == NULL ||
		    cur->type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
		    cur->via.u64 > UINT32_MAX)
			return NULL;
		version = (uint32_t)cur->via.u64;
	}
	if ((vs = proto_map_get(res, "versions")) == NULL ||
	    vs->type != MSGPACK_OBJECT_ARRAY)
		return NULL;
	for (i = 0; i < vs->via.array.size; i++) {
		e = &vs->via.array.ptr[i];
		if ((v = proto_map_get(e, "version")) != NULL &&
		    v->type == MSGPACK_OBJECT_POSITIVE_INTEGER &&
		    v->via.u64 == version)
			return e;
	}
	return NULL;
}

/*
 * Print a key for people: its fields, then its versions as a table (only
 * the version entry "only" when it is not NULL).
 */
static int
credctl_key_print(struct credctl *ctx, const msgpack_object *res,
    const msgpack_object *only)
{
	static const char *const fields[] = {
		"ident", "current", "created_at", "updated_at", NULL
	};
	static const char *const fields_added[] = {
		"ident", "version", "current", "created_at", "updated_at", NULL
	};
	static const char *const skip[] = { "versions", NULL };
	const msgpack_object	*vs;
	struct credctl_table	*t;
	uint32_t		 i;

	if (res->type != MSGPACK_OBJECT_MAP ||
	    (vs = proto_map_get(res, "versions")) == NULL ||
	    vs->type != MSGPACK_OBJECT_ARRAY)
		return credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "%s did not return a key with its versions",
		    ctx->cmd->name);
	credctl_print_fields(stdout, res,
	    proto_map_get(res, "version") != NULL ? fields_added : fields,
	    skip);
	if ((t = credctl_table_new(credctl_keyver_headers)) == NULL)
		return credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
	if (only != NULL)
		credctl_table_add(t, only, credctl_keyver_keys);
	else
		for (i = 0; i < vs->via.array.size; i++)
			credctl_table_add(t, &vs->via.array.ptr[i],
			    credctl_keyver_keys);
	printf("\n");
	credctl_table_print(stdout, t);
	credctl_table_free(t);
	return CREDCTL_EXIT_OK;
}

/* Call method with p, print the key it returns, free everything. */
static int
credctl_key_call(struct credctl *ctx, const char *method,
    struct credctl_pack *p)
{
	struct credbroker_reply	*reply;
	const msgpack_object	*res;
	int			 rc;

	rc = credctl_call(ctx, method, p, &reply);
	credctl_pack_free(p);
	if (rc != 0)
		return rc;
	res = credbroker_reply_result(reply);
	if (ctx->json)
		rc = credctl_output(ctx, res);
	else
		rc = credctl_key_print(ctx, res, NULL);
	credbroker_reply_free(reply);
	return rc;
}

/*
 * Print the string member key of a version entry as it is, followed by
 * nl: public PEM text or its base64, nothing else, so that the output can
 * be handed on.  Only printable ASCII and newlines are let through.
 */
static int
credctl_key_print_text(struct credctl *ctx, const msgpack_object *e,
    const char *key, const char *nl)
{
	const msgpack_object	*o;
	uint32_t		 i;
	char			 c;

	if ((o = proto_map_get(e, key)) == NULL ||
	    o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0)
		return credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "%s: the answer has no %s", ctx->cmd->name, key);
	for (i = 0; i < o->via.str.size; i++) {
		c = o->via.str.ptr[i];
		if ((c < ' ' || c > '~') && c != '\n')
			return credctl_local_error(ctx,
			    CREDBROKER_ERR_PROTOCOL, "%s: the answer's %s is "
			    "not PEM text", ctx->cmd->name, key);
	}
	fwrite(o->via.str.ptr, 1, o->via.str.size, stdout);
	fputs(nl, stdout);
	return CREDCTL_EXIT_OK;
}

/*
 * credctl keypair|peerkey show IDENT [--pem | --base64] [--version N]:
 * the fields and versions, or (--version N) one version, or only its
 * public PEM or base64(PEM).
 */
static int
credctl_key_show(struct credctl *ctx, struct credctl_args *args,
    const struct credctl_keyclass *kc)
{
	struct credbroker_reply	*reply;
	const msgpack_object	*res, *e = NULL;
	struct credctl_pack	 p;
	uint32_t		 version;
	int			 rc;

	if (args->pem && args->base64)
		return credctl_usage(ctx, "--pem and --base64 exclude each "
		    "other");
	if ((args->pem || args->base64) && ctx->json)
		return credctl_usage(ctx, "--%s prints the key alone and "
		    "excludes --json", args->pem ? "pem" : "base64");
	if ((rc = credctl_key_version(ctx, args->key_version, "--version",
	    &version)) != 0)
		return rc;

	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, 1);
	proto_pack_kv_str(&p.pk, kc->name, args->argv[0]);
	rc = credctl_call(ctx, kc->get, &p, &reply);
	credctl_pack_free(&p);
	if (rc != 0)
		return rc;
	res = credbroker_reply_result(reply);
	if ((version != 0 || args->pem || args->base64) &&
	    (e = credctl_key_entry(res, version)) == NULL) {
		if (version != 0)
			rc = credctl_broker_error(ctx, "not_found", "%s '%s' "
			    "has no version %u", kc->name, args->argv[0],
			    version);
		else
			rc = credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
			    "%s did not return its current version", kc->get);
		goto done;
	}
	if (args->pem)
		rc = credctl_key_print_text(ctx, e, "public_pem", "");
	else if (args->base64)
		rc = credctl_key_print_text(ctx, e, "public_pem_base64", "\n");
	else if (ctx->json)
		rc = credctl_output(ctx, e != NULL ? e : res);
	else
		rc = credctl_key_print(ctx, res, e);
done:
	credbroker_reply_free(reply);
	return rc;
}

/* credctl keypair|peerkey list */
static int
credctl_key_list(struct credctl *ctx, const struct credctl_keyclass *kc)
{
	static const char *const headers[] = {
		"IDENT", "CURRENT", "BITS", "VERSIONS", "CREATED_AT",
		"UPDATED_AT", NULL
	};
	static const char *const keys[] = {
		"ident", "current", "bits", "versions", "created_at",
		"updated_at", NULL
	};
	struct credbroker_reply	*reply;
	const msgpack_object	*res;
	struct credctl_table	*t;
	uint32_t		 i;
	int			 rc;

	if ((rc = credctl_call(ctx, kc->list, NULL, &reply)) != 0)
		return rc;
	res = credbroker_reply_result(reply);
	if (ctx->json)
		rc = credctl_output(ctx, res);
	else if (res->type != MSGPACK_OBJECT_ARRAY)
		rc = credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "%s did not return an array", kc->list);
	else if ((t = credctl_table_new(headers)) == NULL)
		rc = credctl_local_error(ctx, CREDBROKER_ERR_NOMEM,
		    "out of memory");
	else {
		for (i = 0; i < res->via.array.size; i++)
			credctl_table_add(t, &res->via.array.ptr[i], keys);
		credctl_table_print(stdout, t);
		credctl_table_free(t);
	}
	credbroker_reply_free(reply);
	return rc;
}

/* credctl keypair|peerkey rm IDENT [--version N] */
static int
credctl_key_rm(struct credctl *ctx, struct credctl_args *args,
    const struct credctl_keyclass *kc)
{
	struct credbroker_reply	*reply;
	const msgpack_object	*res, *removed;
	struct credctl_pack	 p;
	uint32_t		 version;
	int			 rc;

	if ((rc = credctl_key_version(ctx, args->key_version, "--version",
	    &version)) != 0)
		return rc;
	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, version != 0 ? 2 : 1);
	proto_pack_kv_str(&p.pk, kc->name, args->argv[0]);
	if (version != 0)
		proto_pack_kv_int(&p.pk, "version", version);
	rc = credctl_call(ctx, kc->delete, &p, &reply);
	credctl_pack_free(&p);
	if (rc != 0)
		return rc;
	res = credbroker_reply_result(reply);
	removed = proto_map_get(res, "removed");
	if (ctx->json)
		rc = credctl_output(ctx, res);
	else if (removed == NULL ||
	    removed->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		rc = credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "%s did not say how many versions it removed",
		    kc->delete);
	else
		printf("removed %llu version(s)\n",
		    (unsigned long long)removed->via.u64);
	credbroker_reply_free(reply);
	return rc;
}

/* Pack "pem": the text in buf, as a string. */
static void
credctl_key_pack_pem(struct credctl_pack *p, const struct secbuf *buf)
{
	proto_pack_cstr(&p->pk, "pem");
	msgpack_pack_str(&p->pk, buf->len);
	msgpack_pack_str_body(&p->pk, buf->data, buf->len);
}

/* credctl keypair generate IDENT */
int
credctl_keypair_generate(struct credctl *ctx, struct credctl_args *args)
{
	struct credctl_pack	p;

	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, 1);
	proto_pack_kv_str(&p.pk, "ident", args->argv[0]);
	return credctl_key_call(ctx, "keypair.generate", &p);
}

/* credctl keypair import IDENT [--file FILE] */
int
credctl_keypair_import(struct credctl *ctx, struct credctl_args *args)
{
	struct secbuf		pem = SECBUF_INIT;
	struct credctl_pack	p;
	int			rc;

	credctl_harden();
	credctl_pack_init(&p);
	if ((args->file == NULL || strcmp(args->file, "-") == 0) &&
	    isatty(STDIN_FILENO)) {
		rc = credctl_usage(ctx, "standard input is a terminal, which "
		    "would echo the private key; give --file FILE or pipe "
		    "the key in");
		goto done;
	}
	if ((rc = credctl_key_read_pem(ctx, args->file, &pem)) != 0)
		goto done;
	msgpack_pack_map(&p.pk, 2);
	proto_pack_kv_str(&p.pk, "ident", args->argv[0]);
	credctl_key_pack_pem(&p, &pem);
	secbuf_free(&pem);
	rc = credctl_key_call(ctx, "keypair.import", &p);
done:
	secbuf_free(&pem);
	credctl_pack_free(&p);
	return rc;
}

/* credctl keypair show IDENT [--pem | --base64] [--version N] */
int
credctl_keypair_show(struct credctl *ctx, struct credctl_args *args)
{
	return credctl_key_show(ctx, args, &credctl_keypairs);
}

/* credctl keypair list */
int
credctl_keypair_list(struct credctl *ctx, struct credctl_args *args)
{
	return credctl_key_list(ctx, &credctl_keypairs);
}

/* credctl keypair rm IDENT [--version N] */
int
credctl_keypair_rm(struct credctl *ctx, struct credctl_args *args)
{
	return credctl_key_rm(ctx, args, &credctl_keypairs);
}

/* credctl peerkey set IDENT VERSION [--file FILE] */
int
credctl_peerkey_set(struct credctl *ctx, struct credctl_args *args)
{
	struct secbuf		pem = SECBUF_INIT;
	struct credctl_pack	p;
	uint32_t		version;
	int			rc;

	credctl_pack_init(&p);
	if ((rc = credctl_key_version(ctx, args->argv[1], "VERSION",
	    &version)) != 0 ||
	    (rc = credctl_key_read_pem(ctx, args->file, &pem)) != 0)
		goto done;
	msgpack_pack_map(&p.pk, 3);
	proto_pack_kv_str(&p.pk, "ident", args->argv[0]);
	proto_pack_kv_int(&p.pk, "version", version);
	credctl_key_pack_pem(&p, &pem);
	secbuf_free(&pem);
	rc = credctl_key_call(ctx, "peerkey.set", &p);
done:
	secbuf_free(&pem);
	credctl_pack_free(&p);
	return rc;
}

/* credctl peerkey show IDENT [--pem] [--version N] */
int
credctl_peerkey_show(struct credctl *ctx, struct credctl_args *args)
{
	return credctl_key_show(ctx, args, &credctl_peerkeys);
}

/* credctl peerkey list */
int
credctl_peerkey_list(struct credctl *ctx, struct credctl_args *args)
{
	return credctl_key_list(ctx, &credctl_peerkeys);
}

/* credctl peerkey rm IDENT [--version N] */
int
credctl_peerkey_rm(struct credctl *ctx, struct credctl_args *args)
{
	return credctl_key_rm(ctx, args, &credctl_peerkeys);
}

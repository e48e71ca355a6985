/*
 * credctl type commands: add, list, show, edit, rm, clear.  Each packs
 * the named parameters of one type.* method (SPEC section 6), calls the
 * broker and prints the result as a table, as "key: value" lines, or as
 * JSON.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "credbroker.h"
#include "credctl.h"
#include "proto.h"

/* Field order of a type in "type show" and after add/edit. */
static const char *const credctl_type_fields[] = {
	"uuid", "ident", "name", "description", "storage", "destinations",
	"ca_file", "default_account", "created_at", "updated_at", NULL
};

/* Result keys not printed as fields. */
static const char *const credctl_type_skip[] = { "notice", NULL };

/* Print a result that is a type, or the JSON of it. */
static int
credctl_type_output(struct credctl *ctx, const msgpack_object *res)
{
	if (ctx->json)
		return credctl_output(ctx, res);
	credctl_print_fields(stdout, res, credctl_type_fields,
	    credctl_type_skip);
	return CREDCTL_EXIT_OK;
}

/* Pack "destinations": [...] from the --destination options. */
static void
credctl_pack_destinations(struct credctl_pack *p, struct credctl_args *args)
{
	size_t	i;

	proto_pack_cstr(&p->pk, "destinations");
	msgpack_pack_array(&p->pk, (uint32_t)args->ndestinations);
	for (i = 0; i < args->ndestinations; i++)
		proto_pack_cstr(&p->pk, args->destinations[i]);
}

/* Call method with p, print the type it returns, free everything. */
static int
credctl_type_call(struct credctl *ctx, const char *method,
    struct credctl_pack *p)
{
	struct credbroker_reply	*reply;
	const msgpack_object	*res, *notice;
	char			*s;
	int			 rc;

	rc = credctl_call(ctx, method, p, &reply);
	credctl_pack_free(p);
	if (rc != 0)
		return rc;
	res = credbroker_reply_result(reply);
	rc = credctl_type_output(ctx, res);
	/* type.update says when values stay behind in the old storage. */
	if ((notice = proto_map_get(res, "notice")) != NULL &&
	    notice->type == MSGPACK_OBJECT_STR) {
		s = credctl_text(notice);
		fprintf(stderr, "credctl: note: %s\n", s != NULL ? s : "?");
		free(s);
	}
	credbroker_reply_free(reply);
	return rc;
}

/* Is the boolean key of map true? */
static bool
credctl_true(const msgpack_object *map, const char *key)
{
	const msgpack_object	*o = proto_map_get(map, key);

	return o != NULL && o->type == MSGPACK_OBJECT_BOOLEAN && o->via.boolean;
}

/*
 * A Vault-stored type was created: warn when Vault is not configured or
 * is disabled, as its values can be neither set nor used until it is.
 * Says nothing when the settings cannot be read.
 */
static void
credctl_type_vault_warn(struct credctl *ctx, const char *ident)
{
	struct credbroker_reply	*reply;
	struct credbroker_error	 err;
	const msgpack_object	*res;

	if (credbroker_call(ctx->conn, "vault.get", NULL, 0, &reply,
	    &err) != 0)
		return;
	res = credbroker_reply_result(reply);
	if (!credctl_true(res, "configured"))
		fprintf(stderr, "credctl: warning: credential type '%s' is "
		    "stored in Vault, which is not configured: its values "
		    "cannot be set or used until it is; configure it with "
		    "'credctl vault set --url URL --path PATH --role-id ID "
		    "--secret-id-prompt --enable'\n", ident);
	else if (!credctl_true(res, "enabled"))
		fprintf(stderr, "credctl: warning: credential type '%s' is "
		    "stored in Vault, which is disabled: its values cannot "
		    "be set or used until it is enabled with 'credctl vault "
		    "set --enable'\n", ident);
	credbroker_reply_free(reply);
}

/* credctl type add IDENT --name NAME [...] */
int
credctl_type_add(struct credctl *ctx, struct credctl_args *args)
{
	struct credctl_pack	p;
	uint32_t		n = 3;
	int			rc;

	if (args->name == NULL)
		return credctl_usage(ctx, "type add: --name is required");
	n += args->description != NULL;
	n += args->ndestinations > 0;
	n += args->ca_file != NULL;
	n += args->uuid != NULL;
	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, n);
	proto_pack_kv_str(&p.pk, "ident", args->argv[0]);
	proto_pack_kv_str(&p.pk, "name", args->name);
	proto_pack_kv_str(&p.pk, "storage",
	    args->storage != NULL ? args->storage : "db");
	if (args->description != NULL)
		proto_pack_kv_str(&p.pk, "description", args->description);
	if (args->ndestinations > 0)
		credctl_pack_destinations(&p, args);
	if (args->ca_file != NULL)
		proto_pack_kv_str(&p.pk, "ca_file", args->ca_file);
	if (args->uuid != NULL)
		proto_pack_kv_str(&p.pk, "uuid", args->uuid);
	if ((rc = credctl_type_call(ctx, "type.create", &p)) != 0)
		return rc;
	if (args->ndestinations == 0)
		fprintf(stderr, "credctl: warning: credential type '%s' has no "
		    "destinations: its values may be sent to any origin; "
		    "restrict them with 'credctl type edit %s --destination "
		    "ORIGIN'\n", args->argv[0], args->argv[0]);
	if (args->storage != NULL && strcmp(args->storage, "vault") == 0)
		credctl_type_vault_warn(ctx, args->argv[0]);
	return CREDCTL_EXIT_OK;
}

/* credctl type edit TYPE [...] */
int
credctl_type_edit(struct credctl *ctx, struct credctl_args *args)
{
	struct credctl_pack	p;
	uint32_t		n = 1;

	n += args->name != NULL;
	n += args->description != NULL;
	n += args->storage != NULL;
	n += args->ndestinations > 0 || args->no_destinations;
	n += args->ca_file != NULL;
	n += args->default_account != NULL || args->no_default_account;
	if (n == 1)
		return credctl_usage(ctx, "type edit: nothing to change");
	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, n);
	proto_pack_kv_str(&p.pk, "type", args->argv[0]);
	if (args->name != NULL)
		proto_pack_kv_str(&p.pk, "name", args->name);
	if (args->description != NULL)
		proto_pack_kv_str(&p.pk, "description", args->description);
	if (args->storage != NULL)
		proto_pack_kv_str(&p.pk, "storage", args->storage);
	if (args->ndestinations > 0 || args->no_destinations)
		credctl_pack_destinations(&p, args);
	/* "" clears the CA file */
	if (args->ca_file != NULL)
		proto_pack_kv_str(&p.pk, "ca_file", args->ca_file);
	/* nil clears the default account */
	if (args->default_account != NULL)
		proto_pack_kv_str(&p.pk, "default_account",
		    args->default_account);
	else if (args->no_default_account) {
		proto_pack_cstr(&p.pk, "default_account");
		msgpack_pack_nil(&p.pk);
	}
	return credctl_type_call(ctx, "type.update", &p);
}

/* credctl type show TYPE */
int
credctl_type_show(struct credctl *ctx, struct credctl_args *args)
{
	struct credctl_pack	p;

	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, 1);
	proto_pack_kv_str(&p.pk, "type", args->argv[0]);
	return credctl_type_call(ctx, "type.get", &p);
}

/* credctl type list */
int
credctl_type_list(struct credctl *ctx, struct credctl_args *args)
{
	static const char *const headers[] = {
		"IDENT", "NAME", "STORAGE", "DESTINATIONS", "CA FILE", "UUID",
		NULL
	};
	static const char *const keys[] = {
		"ident", "name", "storage", "destinations", "ca_file", "uuid",
		NULL
	};
	struct credbroker_reply	*reply;
	const msgpack_object	*res;
	struct credctl_table	*t;
	uint32_t		 i;
	int			 rc;

	if ((rc = credctl_call(ctx, "type.list", NULL, &reply)) != 0)
		return rc;
	res = credbroker_reply_result(reply);
	if (ctx->json)
		rc = credctl_output(ctx, res);
	else if (res->type != MSGPACK_OBJECT_ARRAY)
		rc = credctl_local_error(ctx, CREDBROKER_ERR_PROTOCOL,
		    "type.list did not return an array");
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

/* credctl type rm TYPE [--force] */
int
credctl_type_rm(struct credctl *ctx, struct credctl_args *args)
{
	struct credbroker_reply	*reply;
	struct credctl_pack	 p;
	int			 rc;

	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, args->force ? 2 : 1);
	proto_pack_kv_str(&p.pk, "type", args->argv[0]);
	if (args->force)
		proto_pack_kv_bool(&p.pk, "force", true);
	rc = credctl_call(ctx, "type.delete", &p, &reply);
	credctl_pack_free(&p);
	if (rc != 0)
		return rc;
	if (ctx->json)
		rc = credctl_output(ctx, credbroker_reply_result(reply));
	credbroker_reply_free(reply);
	return rc;
}

/* credctl type clear TYPE */
int
credctl_type_clear(struct credctl *ctx, struct credctl_args *args)
{
	struct credbroker_reply	*reply;
	const msgpack_object	*res, *removed;
	struct credctl_pack	 p;
	int			 rc;

	credctl_pack_init(&p);
	msgpack_pack_map(&p.pk, 1);
	proto_pack_kv_str(&p.pk, "type", args->argv[0]);
	rc = credctl_call(ctx, "type.clear", &p, &reply);
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
		    "type.clear did not say how many values it removed");
	else
		printf("removed %llu value(s)\n",
		    (unsigned long long)removed->via.u64);
	credbroker_reply_free(reply);
	return rc;
}

/*
 * subject: the SPEC 5.1 table, and a component's credential declarations
 * with external-service inheritance.
 *
 *	kind		subject
 *	action		run_as when given, else initiator
 *	widget		run_as when given, else initiator
 *	data_source	system_account, always; missing is an error
 *	status_check	system_account; missing means the check is skipped
 */
#include <string.h>
#include <stdlib.h>

#include "cb_error.h"
#include "proto.h"
#include "store.h"
#include "subject.h"

static const char *const comp_kinds[] = {
	[COMP_ACTION] = "action",
	[COMP_WIDGET] = "widget",
	[COMP_DATA_SOURCE] = "data_source",
	[COMP_STATUS_CHECK] = "status_check",
};

const char *
component_kind_name(int kind)
{
	if (kind < 0 || kind > COMP_STATUS_CHECK)
		return "unknown";
	return comp_kinds[kind];
}

bool
component_id_valid(const char *s, size_t len)
{
	size_t	i;

	if (len == 0 || len > COMP_ID_MAX)
		return false;
	for (i = 0; i < len; i++) {
		char ch = s[i];
		bool alpha = (ch >= 'a' && ch <= 'z') ||
		    (ch >= 'A' && ch <= 'Z') || ch == '_';
		bool rest = (ch >= '0' && ch <= '9') || ch == '-';

		if (!alpha && (i == 0 || !rest))
			return false;
	}
	return true;
}

const struct comp_cred *
component_find(const struct component *c, const char *id, size_t idlen)
{
	size_t	i;

	for (i = 0; i < c->ncreds; i++)
		if (strlen(c->creds[i].id) == idlen &&
		    memcmp(c->creds[i].id, id, idlen) == 0)
			return &c->creds[i];
	return NULL;
}

/* Read an optional user uuid field into out ("" when absent). */
static int
component_user(const msgpack_object *obj, const char *key, char out[37],
    struct cb_error *err)
{
	const char	*s;
	size_t		 len;
	int		 rc;

	out[0] = '\0';
	if ((rc = proto_get_strref(obj, key, false, &s, &len, err)) < 0)
		return rc;
	if (rc == 1)
		return 0;
	if (len == 36) {
		memcpy(out, s, 36);
		out[36] = '\0';
		if (ids_uuid_valid(out))
			return 0;
		out[0] = '\0';
	}
	return cb_error_set(err, CB_EBADREQ, "component.%s must be a UUID in "
	    "lower-case RFC 4122 text form", key);
}

/* Append the declarations of list; own declarations win over inherited. */
static int
component_creds(struct component *c, const msgpack_object *list,
    bool inherited, const char *where, struct cb_error *err)
{
	const msgpack_object	*e, *id, *type;
	struct comp_cred	*nc;
	uint32_t		 i;
	size_t			 j, n;

	if (list == NULL || list->type == MSGPACK_OBJECT_NIL)
		return 0;
	if (list->type != MSGPACK_OBJECT_ARRAY)
		return cb_error_set(err, CB_EBADREQ,
		    "%s must be an array of {id, type}", where);
	if (c->ncreds + list->via.array.size > COMP_CREDS_MAX)
		return cb_error_set(err, CB_EBADREQ,
		    "at most %d credentials per component", COMP_CREDS_MAX);
	n = c->ncreds + list->via.array.size + 1;
	if (n <= COMP_CREDS_INLINE)
		nc = c->creds_inline;
	else if (c->creds == NULL || c->creds == c->creds_inline) {
		if ((nc = reallocarray(NULL, n, sizeof(*nc))) != NULL &&
		    c->ncreds > 0)
			memcpy(nc, c->creds_inline,
			    c->ncreds * sizeof(*nc));
	} else
		nc = reallocarray(c->creds, n, sizeof(*nc));
	if (nc == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	c->creds = nc;
	for (i = 0; i < list->via.array.size; i++) {
		e = &list->via.array.ptr[i];
		static const char *const keys[] = { "id", "type", NULL };

		if (e->type != MSGPACK_OBJECT_MAP ||
		    proto_check_keys(e, keys, err) != 0 ||
		    (id = proto_map_get(e, "id")) == NULL ||
		    (type = proto_map_get(e, "type")) == NULL ||
		    id->type != MSGPACK_OBJECT_STR ||
		    type->type != MSGPACK_OBJECT_STR)
			return cb_error_set(err, CB_EBADREQ,
			    "%s[%u] must be a map {id: str, type: str}", where,
			    (unsigned)i);
		if (!component_id_valid(id->via.str.ptr, id->via.str.size))
			return cb_error_set(err, CB_EBADREQ, "%s[%u].id must "
			    "match [A-Za-z_][A-Za-z0-9_-]{0,63}", where,
			    (unsigned)i);
		if (type->via.str.size == 0 ||
		    type->via.str.size > COMP_TYPE_MAX ||
		    memchr(type->via.str.ptr, '\0', type->via.str.size))
			return cb_error_set(err, CB_EBADREQ,
			    "%s[%u].type must be a type ident or uuid", where,
			    (unsigned)i);
		/*
		 * A repeated id within one list is a mistake worth naming,
		 * also when the component's own declaration overrides it.
		 */
		for (j = 0; j < i; j++) {
			const msgpack_object *pid = proto_map_get(
			    &list->via.array.ptr[j], "id");

			if (pid->via.str.size == id->via.str.size &&
			    memcmp(pid->via.str.ptr, id->via.str.ptr,
			    id->via.str.size) == 0)
				return cb_error_set(err, CB_EBADREQ,
				    "%s declares credential id '%.*s' twice",
				    where, (int)id->via.str.size,
				    id->via.str.ptr);
		}
		/* The component's own declaration wins (SPEC 5.1). */
		if (inherited && component_find(c, id->via.str.ptr,
		    id->via.str.size) != NULL)
			continue;
		memset(&c->creds[c->ncreds], 0, sizeof(c->creds[0]));
		memcpy(c->creds[c->ncreds].id, id->via.str.ptr,
		    id->via.str.size);
		memcpy(c->creds[c->ncreds].type, type->via.str.ptr,
		    type->via.str.size);
		c->creds[c->ncreds].inherited = inherited;
		c->ncreds++;
	}
	return 0;
}

int
component_parse(const msgpack_object *obj, struct component *c,
    struct cb_error *err)
{
	static const char *const keys[] = { "kind", "initiator", "run_as",
	    "system_account", "credentials", "external_service", NULL };
	static const char *const ext_keys[] = { "credentials", NULL };
	const msgpack_object	*ext;
	const char		*kind;
	size_t			 i, kindlen;
	int			 rc;

	memset(c, 0, sizeof(*c));
	if (obj == NULL || obj->type != MSGPACK_OBJECT_MAP)
		return cb_error_set(err, CB_EBADREQ,
		    "parameter 'component' must be a map");
	if ((rc = proto_check_keys(obj, keys, err)) != 0 ||
	    (rc = proto_get_strref(obj, "kind", true, &kind, &kindlen,
	    err)) != 0)
		goto fail;
	for (i = 0; i < sizeof(comp_kinds) / sizeof(comp_kinds[0]); i++)
		if (strlen(comp_kinds[i]) == kindlen &&
		    memcmp(kind, comp_kinds[i], kindlen) == 0)
			break;
	if (i == sizeof(comp_kinds) / sizeof(comp_kinds[0])) {
		rc = cb_error_set(err, CB_EBADREQ, "component.kind must be "
		    "action, widget, data_source or status_check");
		goto fail;
	}
	c->kind = (int)i;
	if ((rc = component_user(obj, "initiator", c->initiator, err)) != 0 ||
	    (rc = component_user(obj, "run_as", c->run_as, err)) != 0 ||
	    (rc = component_user(obj, "system_account", c->system_account,
	    err)) != 0)
		goto fail;
	if ((rc = component_creds(c, proto_map_get(obj, "credentials"), false,
	    "component.credentials", err)) != 0)
		goto fail;
	ext = proto_map_get(obj, "external_service");
	if (ext != NULL && ext->type != MSGPACK_OBJECT_NIL) {
		if (ext->type != MSGPACK_OBJECT_MAP) {
			rc = cb_error_set(err, CB_EBADREQ,
			    "component.external_service must be a map");
			goto fail;
		}
		if ((rc = proto_check_keys(ext, ext_keys, err)) != 0 ||
		    (rc = component_creds(c, proto_map_get(ext,
		    "credentials"), true,
		    "component.external_service.credentials", err)) != 0)
			goto fail;
	}
	return 0;
fail:
	component_free(c);
	return rc < 0 ? rc : -CB_EBADREQ;
}

void
component_free(struct component *c)
{
	if (c->creds != c->creds_inline)
		free(c->creds);
	memset(c, 0, sizeof(*c));
}

int
subject_resolve(const struct component *c, const char **subject,
    const char **skip, struct cb_error *err)
{
	*subject = NULL;
	*skip = NULL;
	switch (c->kind) {
	case COMP_ACTION:
	case COMP_WIDGET:
		if (c->run_as[0] != '\0')
			*subject = c->run_as;
		else if (c->initiator[0] != '\0')
			*subject = c->initiator;
		else
			return cb_error_set(err, CB_EBADREQ, "a component of kind %s acts for "
			    "run_as or else its initiator; neither was given",
			    component_kind_name(c->kind));
		return 0;
	case COMP_DATA_SOURCE:
		if (c->system_account[0] == '\0')
			return cb_error_set(err, CB_EBADREQ, "a data_source "
			    "always acts for its system_account, and none "
			    "was given (the initiator is never used)");
		*subject = c->system_account;
		return 0;
	case COMP_STATUS_CHECK:
		if (c->system_account[0] == '\0') {
			*skip = "status check has no system account";
			return 0;
		}
		*subject = c->system_account;
		return 0;
	}
	return cb_error_set(err, CB_EINTERNAL, "unknown component kind");
}

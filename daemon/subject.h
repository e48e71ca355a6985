/*
 * subject: who a component acts for, and which credentials it may name
 * (SPEC section 5.1).  The broker, not the caller, applies the platform's
 * rules, so every kind of component behaves the same on every host.
 */
#ifndef CB_SUBJECT_H
#define CB_SUBJECT_H

#include <stdbool.h>
#include <stddef.h>

#include <msgpack.h>

#include "cb_error.h"

#define COMP_ID_MAX	64
#define COMP_TYPE_MAX	64	/* an ident or a uuid */
#define COMP_CREDS_MAX	64	/* declarations per component */

enum comp_kind {
	COMP_ACTION,
	COMP_WIDGET,
	COMP_DATA_SOURCE,
	COMP_STATUS_CHECK
};

struct comp_cred {
	char	id[COMP_ID_MAX + 1];	/* name used in placeholders */
	char	type[COMP_TYPE_MAX + 1];
	bool	inherited;		/* from the external service */
};

/* Declarations held in struct component itself, not on the heap. */
#define COMP_CREDS_INLINE	4

struct component {
	int			 kind;		/* enum comp_kind */
	char			 initiator[37];	/* "" when absent */
	char			 run_as[37];
	char			 system_account[37];
	struct comp_cred	*creds;		/* own first, then inherited */
	size_t			 ncreds;
	/* creds points here while they fit: never copy a component. */
	struct comp_cred	 creds_inline[COMP_CREDS_INLINE];
};

/*
 * Read a component map: {kind, initiator?, run_as?, system_account?,
 * credentials: [{id, type}], external_service?: {credentials: [...]}}.
 * Inherited declarations are added after the component's own, except
 * those whose id the component declares itself: its own wins.
 */
int	 component_parse(const msgpack_object *obj, struct component *c,
	    struct cb_error *err);
void	 component_free(struct component *c);
/* Wire name of a kind. */
const char *component_kind_name(int kind);
/* The declaration for id, or NULL. */
const struct comp_cred *component_find(const struct component *c,
	    const char *id, size_t idlen);
/* Whether s is a valid credential id: [A-Za-z_][A-Za-z0-9_-]{0,63}. */
bool	 component_id_valid(const char *s, size_t len);

/*
 * The subject of the call.  Returns 0 with *subject set, or 0 with
 * *subject NULL and *skip set when the call is skipped (a status check
 * without a system account), or -CB_EBADREQ.
 */
int	 subject_resolve(const struct component *c, const char **subject,
	    const char **skip, struct cb_error *err);

#endif

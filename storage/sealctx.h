/*
 * sealctx: the seal contexts, the text every sealed value is bound to
 * (seal.h: the associated data is "credbroker/1|<keyver>|<context>").
 * Stored values open only under the exact context they were sealed with,
 * so these strings are part of the storage format: every place that seals
 * or opens a value builds its context here and nowhere else.
 */
#ifndef CB_SEALCTX_H
#define CB_SEALCTX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

/* Room for the context of a user's or an account's value, NUL included. */
#define SEALCTX_VALUE_MAX	(2 * STORE_UUID_LEN + STORE_IDENT_MAX + 32)

/*
 * Context of a credential value: "<type_uuid>/<user_uuid>", followed by
 * "/<generation>" when generation is not 0 (a value of a vault-stored
 * type whose storage generation is not 0; values in the database and
 * values written before generations existed use 0).
 */
void	 sealctx_value(char *buf, size_t sz, const char *type_uuid,
	    const char *user_uuid, int64_t generation);
/*
 * Context of a Vault AppRole id (key: "role_id" or "secret_id") in the
 * stored Vault settings: "vault/<key>", and when bound, the endpoint it
 * may be sent to, each part length-prefixed so that no two endpoints give
 * the same text:
 * "vault/<key>|url=<len>:<url>|namespace=<len>:<ns>|ca_file=<len>:<ca>"
 * (NULL url, ns or ca_file: empty).  Malloc'd, caller frees; NULL when
 * out of memory.
 */
char	*sealctx_vault_id(const char *key, const char *url, const char *ns,
	    const char *ca_file, bool bound);

/*
 * Context of an account's value (SPEC 10): "<type_uuid>/account/<name>",
 * followed by "/<generation>" on the same rule as sealctx_value.  No user
 * uuid is "account", so no value of a user has this context.
 */
void	 sealctx_account(char *buf, size_t sz, const char *type_uuid,
	    const char *name, int64_t generation);
/*
 * Context of a user's link to an account: "link/<type_uuid>/<user_uuid>";
 * of a type's default account: "default/<type_uuid>".  The sealed text
 * of a link or a default is the account's name, so that whoever can write
 * the database cannot point a user at another account's credentials.
 */
#define SEALCTX_LINK_MAX	(2 * STORE_UUID_LEN + 8)
void	 sealctx_link(char *buf, size_t sz, const char *type_uuid,
	    const char *user_uuid);
void	 sealctx_default(char *buf, size_t sz, const char *type_uuid);

/*
 * Context of a key pair's private key: "keypair/<ident>/<version>"; of a
 * peer's public key: "peerkey/<ident>/<version>" (SPEC 9).
 */
#define SEALCTX_KEY_MAX		(STORE_IDENT_MAX + 24)
void	 sealctx_keypair(char *buf, size_t sz, const char *ident,
	    uint32_t version);
void	 sealctx_peerkey(char *buf, size_t sz, const char *ident,
	    uint32_t version);

#endif

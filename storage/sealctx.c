/*
 * sealctx: the seal contexts of stored values, built in one place (see
 * sealctx.h).  Changing any of these strings makes stored values stop
 * opening: tests/unit/test_sealctx.c pins them.
 */
#include <stdio.h>
#include <string.h>

#include "sealctx.h"

/*
 * Values of a type are bound to its storage generation, which every
 * change of storage counts up (store_type_update_count): db values of the
 * old storage are deleted with the change, but Vault may be unreachable
 * then, so what an earlier generation left in Vault is recognised instead
 * and never served.  Generation 0 keeps the context and text of values
 * written before generations existed, so those stay readable.  The
 * generation is both visible in the text (to tell a stale value without
 * opening it: cred.status, key rotation) and bound into the associated
 * data (so editing the visible number makes the value fail to open).
 */
void
sealctx_value(char *buf, size_t sz, const char *type_uuid,
    const char *user_uuid, int64_t generation)
{
	size_t	tl, ul;

	/* By hand when it fits (always, for two uuids): every value read. */
	tl = strlen(type_uuid);
	ul = strlen(user_uuid);
	if (generation != 0 || tl + 1 + ul >= sz) {
		if (generation != 0)
			snprintf(buf, sz, "%s/%s/%lld", type_uuid, user_uuid,
			    (long long)generation);
		else
			snprintf(buf, sz, "%s/%s", type_uuid, user_uuid);
		return;
	}
	memcpy(buf, type_uuid, tl);
	buf[tl] = '/';
	memcpy(buf + tl + 1, user_uuid, ul + 1);
}

/*
 * An account's value: the "account" part cannot be a user uuid, so no
 * user's value and no account's value share a context.
 */
void
sealctx_account(char *buf, size_t sz, const char *type_uuid,
    const char *name, int64_t generation)
{
	if (generation != 0)
		snprintf(buf, sz, "%s/account/%s/%lld", type_uuid, name,
		    (long long)generation);
	else
		snprintf(buf, sz, "%s/account/%s", type_uuid, name);
}

/*
 * A link's or a default's sealed text is the account's name, bound to
 * the type and the user (or to the type's default): a sealed name copied
 * to another row does not open there.
 */
void
sealctx_link(char *buf, size_t sz, const char *type_uuid,
    const char *user_uuid)
{
	snprintf(buf, sz, "link/%s/%s", type_uuid, user_uuid);
}

void
sealctx_default(char *buf, size_t sz, const char *type_uuid)
{
	snprintf(buf, sz, "default/%s", type_uuid);
}

char *
sealctx_vault_id(const char *key, const char *url, const char *ns,
    const char *ca_file, bool bound)
{
	char	*context;
	int	 n;

	if (url == NULL)
		url = "";
	if (ns == NULL)
		ns = "";
	if (ca_file == NULL)
		ca_file = "";
	if (!bound)
		n = asprintf(&context, "vault/%s", key);
	else
		n = asprintf(&context, "vault/%s|url=%zu:%s|namespace=%zu:%s|"
		    "ca_file=%zu:%s", key, strlen(url), url, strlen(ns), ns,
		    strlen(ca_file), ca_file);
	return n < 0 ? NULL : context;
}

/*
 * A key's sealed text is bound to its ident and version, so that the
 * database cannot pass one key off as another, nor one version as another.
 */
void
sealctx_keypair(char *buf, size_t sz, const char *ident, uint32_t version)
{
	snprintf(buf, sz, "keypair/%s/%lu", ident, (unsigned long)version);
}

void
sealctx_peerkey(char *buf, size_t sz, const char *ident, uint32_t version)
{
	snprintf(buf, sz, "peerkey/%s/%lu", ident, (unsigned long)version);
}

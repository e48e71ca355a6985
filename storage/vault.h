/*
 * vault: HashiCorp Vault KV v2 over AppRole (SPEC section 4.2), on the
 * daemon's loop.
 *
 * The client logs in with POST /v1/auth/approle/login, renews its token
 * with renew-self at about two thirds of the lease (with jitter), and logs
 * in again when renewal fails, when the token is not renewable, when its
 * max TTL caps the lease, or when Vault says the token is no longer valid
 * (a call that met that is retried once after the new login).  Failed
 * logins back off exponentially with jitter up to a cap; while backing
 * off, calls fail at once with "unavailable" rather than adding logins.
 *
 * Values are stored as {"data": {"value": SEALED}}: Vault only ever sees
 * sealed text.  Paths given to this module are relative to the configured
 * path and are made of checked uuids only, so they cannot leave the
 * prefix; values-vault.c lays them out.
 *
 * Identical reads in flight at the same time share one Vault request.
 *
 * With cache_seconds > 0, the answer to a read (the sealed text and its
 * meta, or "not set") is kept for that long, by relpath, and answers the
 * same read again without a request.  Only sealed text is ever cached,
 * never a decrypted value.  A write, a destroy or a list under a folder
 * drops what it touches at once, new settings drop everything; a change
 * made in Vault by anyone else is seen only once the entry has expired.
 */
#ifndef CB_VAULT_H
#define CB_VAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "cb_error.h"
#include "secbuf.h"

struct http;
struct vault;

#define VAULT_TIMEOUT_DEFAULT	5000	/* ms */
#define VAULT_ID_MAX		256	/* role_id / secret_id length */
#define VAULT_MAX_PENDING_DEFAULT 16	/* requests to Vault at once */

struct vault_conf {
	bool		 enabled;
	char		*url;		/* https://vault.example:8200 */
	struct secbuf	 role_id;	/* secrets: secbuf_str, NULL if unset */
	struct secbuf	 secret_id;
	char		*path;		/* mount/data/prefix */
	char		*ca_file;	/* NULL: system trust store */
	char		*namespace;	/* NULL: none */
	unsigned	 timeout_ms;
	unsigned	 cache_seconds;	/* keep read answers; 0: off */
};

struct vault_status {
	bool		 configured;
	bool		 enabled;
	bool		 authenticated;
	int64_t		 token_ttl;	/* seconds left, rounded up; 0 when none */
	uint64_t	 logins;	/* attempts since start */
	uint64_t	 renewals;
	char		 last_error[256];	/* "" when none */
};

/*
 * Counters for the stats method: only counts, never a path or a value.
 * Operations are counted when they end, by outcome (ops[0]: ok, else
 * ops[code] for a CB_E* code); calls refused before they were queued
 * (not configured, backing off) are not operations.
 */
struct vault_stats {
	uint64_t	 logins;		/* attempts */
	uint64_t	 login_failures;
	uint64_t	 renewals;		/* that succeeded */
	uint64_t	 renewal_failures;
	uint64_t	 ops[CB_ERR_MAX];	/* ended, by outcome */
	uint64_t	 cache_hits;
	uint64_t	 cache_misses;		/* with the cache on */
	uint64_t	 joined;		/* reads that shared a request */
	size_t		 cache_entries;
	size_t		 in_flight;		/* sent, not yet answered */
	size_t		 waiting;		/* queued for a login */
};

/*
 * Completion of a read: rc 0 with the sealed text in value (owned by the
 * vault module, valid during the callback) and the version's creation
 * time and number in meta (never NULL); -CB_ENOTFOUND when no value is set (missing, or the latest version
 * soft-deleted); another negative code with err otherwise.
 */
struct vault_meta {
	int64_t		 created;	/* the version's creation time */
	int64_t		 version;	/* KV v2 version number */
};
typedef void (*vault_read_fn)(void *arg, int rc, const char *value,
    const struct vault_meta *meta, const struct cb_error *err);
/* Completion of a write or delete. */
typedef void (*vault_done_fn)(void *arg, int rc, const struct cb_error *err);
/* Completion of a list: keys (NULL-terminated) valid during the call. */
typedef void (*vault_list_fn)(void *arg, int rc, char *const *keys,
    size_t nkeys, const struct cb_error *err);

/*
 * Install jansson's allocator: one that wipes, from the locked pool (login
 * answers carry the token).  Called once at start-up, before any JSON is
 * made; vault_init fails without it.
 */
void	 vault_json_setup(void);
/*
 * Free what jansson allocated (json_dumps output): the allocator that
 * vault_json_setup installs wipes, so plain free() is wrong.
 */
void	 vault_json_release(void *p);

/* Check settings: path with a /data/ segment, url, ids. */
int	 vault_conf_check(const struct vault_conf *c, struct cb_error *err);
/* Copy c into dst (strings duplicated, ids into buffers of their own). */
int	 vault_conf_copy(struct vault_conf *dst, const struct vault_conf *c);
/* Free the strings, wiping role_id and secret_id. */
void	 vault_conf_free(struct vault_conf *c);

int	 vault_init(uv_loop_t *loop, struct http *http, struct vault **out,
	    struct cb_error *err);
/*
 * Replace the settings (copied).  Drops the token, fails waiting calls
 * and, when enabled, logs in.  NULL or !enabled: calls answer
 * not_configured.
 */
int	 vault_configure(struct vault *v, const struct vault_conf *c,
	    struct cb_error *err);
/*
 * Whether v runs with settings c already (the same fields and ids), so
 * that settings read again need not be applied (pgstore.c).
 */
bool	 vault_conf_is(const struct vault *v, const struct vault_conf *c);
/*
 * At most max_pending requests to Vault at once (0: no cap); operations
 * beyond it wait, first come first sent, for one to end.
 */
void	 vault_set_limits(struct vault *v, unsigned max_pending);
/* Whether calls can be made at all (configured and enabled). */
bool	 vault_usable(const struct vault *v, struct cb_error *err);
void	 vault_get_status(const struct vault *v, struct vault_status *st);
/* Counters since start (zeros when v is NULL); O(operations queued). */
void	 vault_get_stats(const struct vault *v, struct vault_stats *st);
/* Fail every waiting call ("shutting down"), stop timers, free. */
void	 vault_close(struct vault *v);

/*
 * KV v2 operations; relpath like "credentials/T/users/U".  A read that
 * the cache answers calls done from the loop, after vault_read() has
 * returned 0, as a read sent to Vault does.
 */
int	 vault_read(struct vault *v, const char *relpath, vault_read_fn done,
	    void *arg, struct cb_error *err);
int	 vault_write(struct vault *v, const char *relpath, const char *sealed,
	    vault_done_fn done, void *arg, struct cb_error *err);
/*
 * Write only if the secret's current version is still cas (KV v2
 * check-and-set): a write that lost the race fails with -CB_ECONFLICT.
 */
int	 vault_write_cas(struct vault *v, const char *relpath,
	    const char *sealed, int64_t cas, vault_done_fn done, void *arg,
	    struct cb_error *err);
/* Delete every version and the metadata. */
int	 vault_destroy(struct vault *v, const char *relpath, vault_done_fn done,
	    void *arg, struct cb_error *err);
/*
 * LIST the metadata under relpath (a folder).  Cached reads under the
 * folder are dropped: a list comes before the bulk changes (type.clear,
 * type.delete, key rotation), which then read and change each key.
 */
int	 vault_list(struct vault *v, const char *relpath, vault_list_fn done,
	    void *arg, struct cb_error *err);

/*
 * Connection test (vault.test): with settings c, log in, then write, read
 * and list a test secret under the path, and delete it.  steps receives
 * one line per step.
 */
struct vault_test_step {
	const char	*step;		/* "login", "write", "read", "list" */
	bool		 ok;
	char		 message[256];
};
typedef void (*vault_test_fn)(void *arg, const struct vault_test_step *steps,
    size_t nsteps);
int	 vault_test(uv_loop_t *loop, struct http *http,
	    const struct vault_conf *c, vault_test_fn done, void *arg,
	    struct cb_error *err);
/*
 * Finish every connection test running on http now: the steps left fail
 * with "the broker is shutting down" and done is called (at shutdown).
 */
void	 vault_test_abort_all(struct http *http);

#endif

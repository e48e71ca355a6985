/*
 * store: the broker's SQLite database (SPEC section 4.1).
 *
 * Holds credential types, sealed values of db-stored types, the sealed
 * Vault settings, and the master-key check value.  Statements are prepared
 * once at open and kept for the life of the connection.  The database runs
 * in WAL mode with synchronous=FULL, so a write that returned 0 survives
 * kill -9 and power loss.  The store never sees plaintext: values arrive
 * and leave sealed.
 *
 * Threads: a struct store is one connection, used by one thread.  The
 * daemon's loop thread has one, and the writer's thread a second one
 * (writer.h, store_open_writer).  After start-up (creation, migrations,
 * recording the key check value) the loop's connection only reads
 * (store_query_only): every write the daemon makes, values and metadata
 * alike, runs these functions on the writer's connection, inside the
 * writer's group commit, and is answered once durable.  In WAL mode the
 * loop's reads never wait for the writer's transaction.
 */
#ifndef CB_STORE_H
#define CB_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cb_error.h"
#include "ids.h"	/* ids_uuid_valid, ids_ident_valid */

#define STORE_UUID_LEN		IDS_UUID_LEN	/* RFC 4122 text form */
#define STORE_IDENT_MAX		IDS_IDENT_MAX
#define STORE_NAME_MAX		256
#define STORE_DESC_MAX		4096
#define STORE_DEST_MAX		64	/* destinations per type */
#define STORE_DEST_LEN_MAX	512
#define STORE_SCHEMA_VERSION	6

enum store_kind {
	STORE_DB = 0,
	STORE_VAULT = 1
};
#define STORE_KINDS	2	/* storage kinds, each with its values backend */
/* "db", "vault": the wire and database name of a kind (NULL if none). */
const char *store_kind_name(int kind);
/* The kind named name, or -1. */
int	 store_kind_parse(const char *name);

struct store;

struct store_type {
	char		 uuid[STORE_UUID_LEN + 1];
	char		 ident[STORE_IDENT_MAX + 1];
	char		*name;
	char		*description;		/* "" when none */
	int		 storage;		/* enum store_kind */
	char		**destinations;		/* NULL-terminated; may be empty */
	size_t		 ndestinations;
	int64_t		 created_at;		/* unix seconds */
	int64_t		 updated_at;
	/*
	 * Storage generation: 0 at creation, one more at every change of
	 * storage (set by the store, never by the caller).  Bound into the
	 * values stored in Vault, so that values an earlier generation left
	 * there are never served again.
	 */
	int64_t		 generation;
	/*
	 * The default account (SPEC 10): its name, "" when none, and that
	 * name sealed under sealctx_default (NULL when none).  The name is
	 * trusted only once the sealed text has been opened and matches.
	 */
	char		 default_account[STORE_IDENT_MAX + 1];
	char		*default_sealed;
	/*
	 * The CA certificates (a PEM file, absolute path) that TLS of the
	 * requests carrying the type's values is verified against (SPEC
	 * 13); NULL when none (request.ca_file or the system store).
	 */
	char		*ca_file;
};

/* Open (creating if needed) and migrate the database at path. */
int	 store_open(const char *path, struct store **out, struct cb_error *err);
/*
 * Open an existing database read-only, creating and changing no file; *out
 * is NULL when its schema version (*version) is older than this code's.
 */
int	 store_open_readonly(const char *path, struct store **out,
	    int *version, struct cb_error *err);
/* The database's directory exists (and, if writable, the broker may write). */
int	 store_check_dir(const char *path, bool writable,
	    struct cb_error *err);
void	 store_close(struct store *st);
/*
 * A second connection to st's database, for the writer's thread: same
 * settings, its own statements; it waits a little for locks (the loop's
 * connection never does).
 */
int	 store_open_writer(const struct store *st, struct store **out,
	    struct cb_error *err);
/*
 * The database is a cache made again at every start (the PostgreSQL
 * store's mirror, mirror.h): commits no longer wait for the disk, on
 * this connection and on the writer's opened from it.  Call outside a
 * transaction.
 */
int	 store_cache_only(struct store *st, struct cb_error *err);
/*
 * Refuse (on) or allow every write on this connection (PRAGMA
 * query_only): a write then fails with a database error instead of
 * being made.  The daemon turns it on for the loop's connection once
 * start-up is over.
 */
int	 store_query_only(struct store *st, bool on, struct cb_error *err);
/*
 * Group commit, on the writer's connection: batch_begin takes the write
 * lock (BEGIN IMMEDIATE); each write then runs between batch_savepoint
 * and batch_release, or batch_undo when it failed, which takes back that
 * write alone.  Inside a group, the store functions that would open and
 * commit a transaction of their own run in the group's.  batch_open is
 * false when SQLite has rolled the whole transaction back (I/O error,
 * disk full): the writes already done in it are lost.  batch_commit is
 * the one fsync of the group; batch_abort rolls everything back.
 */
int	 store_batch_begin(struct store *st, struct cb_error *err);
int	 store_batch_savepoint(struct store *st, struct cb_error *err);
int	 store_batch_release(struct store *st, struct cb_error *err);
void	 store_batch_undo(struct store *st);
bool	 store_batch_open(const struct store *st);
int	 store_batch_commit(struct store *st, struct cb_error *err);
void	 store_batch_abort(struct store *st);
/*
 * End the read transaction that hot-path reads share (store_value_get,
 * store_value_list_user); the daemon calls it once per loop iteration.
 * Writes end it themselves.
 */
void	 store_release(struct store *st);
/*
 * Size SQLite's page cache (MiB) and memory map (MiB, 0: none); may be
 * called again at any time (SIGHUP).
 */
int	 store_tune(struct store *st, unsigned page_cache_mb, unsigned mmap_mb,
	    struct cb_error *err);

/* The key check value; *out NULL when none is recorded yet (new store). */
int	 store_kcv_get(struct store *st, char **out, struct cb_error *err);
int	 store_kcv_set(struct store *st, const char *kcv, struct cb_error *err);

/*
 * Types.  ref is an ident or a uuid.  Missing types are -CB_ENOTFOUND;
 * malformed uuids or idents given by the caller are -CB_EBADREQ.
 */
int	 store_type_create(struct store *st, const struct store_type *t,
	    struct cb_error *err);	/* t->uuid, created/updated_at filled by caller */
int	 store_type_get(struct store *st, const char *ref, struct store_type *out,
	    struct cb_error *err);
/*
 * The same type, borrowed from the cache instead of copied: *out stays
 * valid and unchanged until store_type_release(*out), even when the type
 * is updated or deleted, or the cache is synced, dropped or read again,
 * in the meantime, and even after store_close.  Borrow and release on the
 * thread that uses st.  *out is NULL on error.
 */
int	 store_type_borrow(struct store *st, const char *ref,
	    const struct store_type **out, struct cb_error *err);
/* End a borrow; NULL is ignored. */
void	 store_type_release(const struct store_type *t);
/* All types ordered by ident; *out is an array of *n types. */
int	 store_type_list(struct store *st, struct store_type **out, size_t *n,
	    struct cb_error *err);
/*
 * Replace name, description, storage, destinations, ca_file and updated_at
 * of t->uuid.
 */
int	 store_type_update(struct store *st, const struct store_type *t,
	    struct cb_error *err);
/*
 * The same; when the storage changes, the generation is counted up and
 * every db value of the type is deleted in the same transaction (SPEC
 * 4.3: values are not migrated and never visible through the type again).
 * *removed (if not NULL) is how many values were deleted.
 */
int	 store_type_update_count(struct store *st, const struct store_type *t,
	    int64_t *removed, struct cb_error *err);
/* Delete a type and (in the same transaction) its db values. */
int	 store_type_delete(struct store *st, const char *uuid, struct cb_error *err);
void	 store_type_free(struct store_type *t);
void	 store_type_list_free(struct store_type *v, size_t n);

/* Values of db-stored types, sealed text. */
int	 store_value_set(struct store *st, const char *type_uuid,
	    const char *user_uuid, const char *sealed, int64_t updated_at,
	    struct cb_error *err);
/* *sealed malloc'd; -CB_ENOTFOUND when not set. */
int	 store_value_get(struct store *st, const char *type_uuid,
	    const char *user_uuid, char **sealed, int64_t *updated_at,
	    struct cb_error *err);
/* -CB_ENOTFOUND when not set. */
int	 store_value_delete(struct store *st, const char *type_uuid,
	    const char *user_uuid, struct cb_error *err);
/* Number of values stored for a type, users' and accounts'. */
int	 store_value_count(struct store *st, const char *type_uuid, int64_t *n,
	    struct cb_error *err);
/*
 * Remove every value of a type, users' and accounts' (one transaction);
 * *removed is how many.
 */
int	 store_value_clear(struct store *st, const char *type_uuid,
	    int64_t *removed, struct cb_error *err);

/* The users holding a value of a type: *out (n strings) malloc'd. */
int	 store_value_list_type(struct store *st, const char *type_uuid,
	    char ***out, size_t *n, struct cb_error *err);

/* Status of one user's values: for each type uuid, filled and updated_at. */
struct store_status {
	char	 type_uuid[STORE_UUID_LEN + 1];
	int64_t	 updated_at;
};
/*
 * Every db value this user has, ordered by type uuid; *out array of *n
 * entries.  Rows of types whose storage is now vault are left out (SPEC
 * 4.3: old values are not visible through the type).
 */
int	 store_value_list_user(struct store *st, const char *user_uuid,
	    struct store_status **out, size_t *n, struct cb_error *err);
/*
 * All types ordered by ident (as store_type_list) and, for each, the
 * updated_at of this user's db value (0 when the type has none or is
 * stored in Vault): one pass over the types and one over the user's
 * values, merged in uuid order.  *updated is an array of *n entries.
 */
int	 store_user_status(struct store *st, const char *user_uuid,
	    struct store_type **types, int64_t **updated, size_t *n,
	    struct cb_error *err);
/*
 * How many times the type cache was read from the table: once at the
 * first lookup, and again only after a failed write (or a failed group
 * of writes) or store_type_cache_drop.  Type writes keep the cache up
 * to date in place.
 */
uint64_t store_type_cache_loads(const struct store *st);
/*
 * Another connection has committed a write of type uuid (created,
 * updated, its default changed, deleted): this connection's cache reads
 * that type's row again.  Never fails: on any error the cache is
 * dropped and read again at the next lookup.
 */
void	 store_type_cache_sync(struct store *st, const char *uuid);
/* Drop the cache; the next lookup reads the table again. */
void	 store_type_cache_drop(struct store *st);

/* Small key/value settings table (vault settings, sealed where secret). */
int	 store_setting_get(struct store *st, const char *key, char **out,
	    struct cb_error *err);		/* *out NULL when absent */
int	 store_setting_set(struct store *st, const char *key, const char *val,
	    struct cb_error *err);		/* val NULL deletes */

/* Key rotation: walk every value and replace its sealed text. */
struct store_row {
	char	 type_uuid[STORE_UUID_LEN + 1];
	char	 user_uuid[STORE_UUID_LEN + 1];
	char	*sealed;
};
/* Up to limit rows after (after_type, after_user) ("" to start). */
int	 store_value_scan(struct store *st, const char *after_type,
	    const char *after_user, size_t limit, struct store_row **out,
	    size_t *n, struct cb_error *err);
void	 store_rows_free(struct store_row *rows, size_t n);
/* Update rows' sealed text and set setting key (if not NULL), atomically. */
int	 store_value_reseal(struct store *st, const struct store_row *rows,
	    size_t n, const char *key, const char *val, struct cb_error *err);
/* Set the key check value and setting key, atomically. */
int	 store_kcv_set_with(struct store *st, const char *kcv, const char *key,
	    const char *val, struct cb_error *err);
/* Values stored, all types: users' and accounts'. */
int	 store_value_count_all(struct store *st, int64_t *n,
	    struct cb_error *err);

/*
 * Accounts' values of db-stored types (SPEC 10), sealed text under
 * sealctx_account.  Names have the grammar of type idents.
 */
int	 store_account_set(struct store *st, const char *type_uuid,
	    const char *name, const char *sealed, int64_t updated_at,
	    struct cb_error *err);
/* *sealed malloc'd; -CB_ENOTFOUND when not set. */
int	 store_account_get(struct store *st, const char *type_uuid,
	    const char *name, char **sealed, int64_t *updated_at,
	    struct cb_error *err);
/* -CB_ENOTFOUND when not set. */
int	 store_account_delete(struct store *st, const char *type_uuid,
	    const char *name, struct cb_error *err);
/*
 * The accounts of a type holding a value, ordered by name: *names (n
 * strings) and *updated (n entries) malloc'd.
 */
int	 store_account_list(struct store *st, const char *type_uuid,
	    char ***names, int64_t **updated, size_t *n, struct cb_error *err);
void	 store_account_list_free(char **names, int64_t *updated, size_t n);
/* Key rotation: every account's value, and their replacement. */
struct store_accountrow {
	char	 type_uuid[STORE_UUID_LEN + 1];
	char	 name[STORE_IDENT_MAX + 1];
	char	*sealed;
};
/* Every account value of every db type, ordered by type uuid and name. */
int	 store_account_scan(struct store *st, struct store_accountrow **out,
	    size_t *n, struct cb_error *err);
void	 store_accountrows_free(struct store_accountrow *rows, size_t n);
/*
 * Update users' rows and accounts' rows (NULL sealed: leave) and set
 * setting key (if not NULL), atomically.
 */
int	 store_value_reseal_all(struct store *st, const struct store_row *rows,
	    size_t n, const struct store_accountrow *arows, size_t na,
	    const char *key, const char *val, struct cb_error *err);

/*
 * Key pairs and peer public keys (SPEC section 9).  A key pair's private
 * key and a peer's public key are stored sealed (the caller seals them
 * under sealctx_keypair / sealctx_peerkey, bound to ident and version), so
 * that the database can neither reveal a private key nor swap in a public
 * key of its own choosing.  Idents have the grammar of type idents.
 * Versions are integers from 1; a key pair's versions are counted by the
 * store and never reused while the key pair exists; a peer key's versions
 * are given by the counterpart.  The current version is the highest.
 */
enum store_keyclass {
	STORE_KEYPAIR = 0,
	STORE_PEERKEY = 1
};
struct store_keyver {
	uint32_t	 version;
	int		 bits;
	int64_t		 created_at;
};
/* A key pair or a peer key: its versions, ascending. */
struct store_keyset {
	char			 ident[STORE_IDENT_MAX + 1];
	struct store_keyver	*versions;
	size_t			 nversions;
	int64_t			 created_at;	/* of the oldest version */
	int64_t			 updated_at;	/* of the newest */
};
/* The version the next keypair add must use: 1 when ident is new. */
int	 store_keypair_next(struct store *st, const char *ident,
	    uint32_t *version, struct cb_error *err);
/*
 * Add a version of key pair ident (creating it): version must be what
 * store_keypair_next gave, else -CB_ECONFLICT and nothing changes.
 */
int	 store_keypair_add(struct store *st, const char *ident,
	    uint32_t version, int bits, const char *sealed, int64_t now,
	    struct cb_error *err);
/*
 * Add version of peer key ident.  -CB_ECONFLICT when that version exists
 * with other sealed text is decided by the caller (sealed texts differ
 * even for the same key): store_peerkey_add fails -CB_ECONFLICT whenever
 * the version exists.
 */
int	 store_peerkey_add(struct store *st, const char *ident,
	    uint32_t version, int bits, const char *sealed, int64_t now,
	    struct cb_error *err);
/* Every version of one key: -CB_ENOTFOUND when ident has none. */
int	 store_key_get(struct store *st, int keyclass, const char *ident,
	    struct store_keyset *out, struct cb_error *err);
/*
 * The sealed text of one version (0: the current one); *got is the
 * version found.  -CB_ENOTFOUND names the ident (and the version) that
 * does not exist.  *sealed malloc'd.
 */
int	 store_key_sealed(struct store *st, int keyclass, const char *ident,
	    uint32_t version, uint32_t *got, char **sealed,
	    struct cb_error *err);
/* Every key of a class, ordered by ident: *out array of *n. */
int	 store_key_list(struct store *st, int keyclass,
	    struct store_keyset **out, size_t *n, struct cb_error *err);
/*
 * Delete one version (or every version when version is 0).  Deleting the
 * last version deletes the key.  *removed (if not NULL) is how many
 * versions went.  -CB_ENOTFOUND when there is nothing to delete.
 */
int	 store_key_delete(struct store *st, int keyclass, const char *ident,
	    uint32_t version, int64_t *removed, struct cb_error *err);
void	 store_keyset_free(struct store_keyset *k);
void	 store_keyset_list_free(struct store_keyset *v, size_t n);

/* Key rotation: every sealed key, and their replacement in one go. */
struct store_keyrow {
	int		 keyclass;
	char		 ident[STORE_IDENT_MAX + 1];
	uint32_t	 version;
	char		*sealed;
};
int	 store_key_scan(struct store *st, struct store_keyrow **out,
	    size_t *n, struct cb_error *err);
/* Replace the sealed text of rows (NULL sealed: leave), atomically. */
int	 store_key_reseal(struct store *st, const struct store_keyrow *rows,
	    size_t n, struct cb_error *err);
void	 store_keyrows_free(struct store_keyrow *rows, size_t n);

/*
 * Links of users to accounts (SPEC 10), kept here whatever the type's
 * storage.  A link row holds the account's name in clear (for counts and
 * listings) and sealed under sealctx_link (what resolution trusts: the
 * caller opens it and checks it names the same account).
 */
struct store_link {
	char		 user_uuid[STORE_UUID_LEN + 1];
	char		 account[STORE_IDENT_MAX + 1];
	char		*sealed;
	int64_t		 updated_at;
};
/* Create or replace the user's link for the type. */
int	 store_link_set(struct store *st, const char *type_uuid,
	    const char *user_uuid, const char *account, const char *sealed,
	    int64_t now, struct cb_error *err);
/* The user's link: -CB_ENOTFOUND when none. */
int	 store_link_get(struct store *st, const char *type_uuid,
	    const char *user_uuid, struct store_link *out,
	    struct cb_error *err);
/* -CB_ENOTFOUND when none. */
int	 store_link_delete(struct store *st, const char *type_uuid,
	    const char *user_uuid, struct cb_error *err);
/* How many users of the type are linked to account. */
int	 store_link_count(struct store *st, const char *type_uuid,
	    const char *account, int64_t *n, struct cb_error *err);
/* Every link of the type, ordered by account then user. */
int	 store_link_list(struct store *st, const char *type_uuid,
	    struct store_link **out, size_t *n, struct cb_error *err);
/* The user's links, one per type at most, ordered by type uuid. */
int	 store_link_list_user(struct store *st, const char *user_uuid,
	    char (**type_uuids)[STORE_UUID_LEN + 1], struct store_link **out,
	    size_t *n, struct cb_error *err);
void	 store_link_free(struct store_link *l);
void	 store_links_free(struct store_link *v, size_t n);
/*
 * Set (account and sealed given) or clear (both NULL) the type's default
 * account; the type cache follows.
 */
int	 store_type_set_default(struct store *st, const char *type_uuid,
	    const char *account, const char *sealed, struct cb_error *err);
/*
 * type.clear: remove the type's links and its default in one
 * transaction; *removed (if not NULL) counts the links.
 */
int	 store_links_clear(struct store *st, const char *type_uuid,
	    int64_t *removed, struct cb_error *err);
/*
 * Key rotation: every sealed link and default (kind "link" rows carry
 * the user, "default" rows none), and their replacement in one go.
 */
struct store_bindrow {
	char	 type_uuid[STORE_UUID_LEN + 1];
	char	 user_uuid[STORE_UUID_LEN + 1];	/* "" for a default */
	char	*sealed;
};
int	 store_bind_scan(struct store *st, struct store_bindrow **out,
	    size_t *n, struct cb_error *err);
/* Replace the sealed texts of rows (NULL sealed: leave), atomically. */
int	 store_bind_reseal(struct store *st, const struct store_bindrow *rows,
	    size_t n, struct cb_error *err);
void	 store_bindrows_free(struct store_bindrow *rows, size_t n);

/*
 * Figures for the stats method, from SQLite's page counts and the types
 * table: constant time in the number of values, which are not counted.
 */
struct store_stats {
	int64_t	 page_size;	/* bytes */
	int64_t	 pages;		/* in the main database file */
	int64_t	 free_pages;	/* on the freelist */
	int64_t	 types;
};
int	 store_get_stats(struct store *st, struct store_stats *out,
	    struct cb_error *err);

/*
 * The connection's SQLite handle, for mirror.c (which records and replays
 * the writes made through it).
 */
struct sqlite3	*store_sqlite(struct store *st);

/* Fill out with a new random (version 4) uuid. */
int	 store_uuid_new(char out[STORE_UUID_LEN + 1]);

#endif

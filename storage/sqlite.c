/*
 * sqlite: the store interface (store.h) on one SQLite database file.
 *
 * One connection per struct store, each used by one thread: the daemon's
 * loop thread, which it never puts to sleep on another process's lock
 * (after store_open() such a lock fails the call at once, busy timeout 0;
 * once the daemon runs, that connection only reads: store_query_only),
 * and the writer's thread (store_open_writer, writer.c).  store_open() creates the file with mode 0600 (SQLite gives the
 * -wal and -shm files the mode of the database), switches it to WAL with
 * synchronous=FULL so that a write which returned 0 survives kill -9 and
 * power loss, turns on foreign keys and secure_delete (deleted sealed values
 * are overwritten with zeros instead of lingering in free pages), applies
 * the forward migrations and prepares every statement the store will ever
 * run.  Each function binds, steps, and then resets its statement and
 * clears its bindings on every path, so no read snapshot or write lock
 * outlives a call.
 *
 * Bound text is SQLITE_STATIC: the caller's strings (and the joined
 * destinations we build) outlive the step, and the bindings are cleared
 * before the function returns, so SQLite never holds a pointer to memory
 * it does not own.  Column text is copied out before the reset that
 * invalidates it.
 *
 * The store never sees plaintext, only sealed text.  Its error messages go
 * to clients and logs all the same, so they name idents, uuids, the path
 * and SQLite's own message, never a bound value.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <sqlite3.h>

#include "cb_error.h"
#include "store.h"

/*
 * How long store_open() waits for another process's lock.  Once open, the
 * connection never waits: it serves the daemon's loop, and a sleep there
 * would stall every client.  A call that meets a lock fails at once with
 * -CB_EUNAVAILABLE and changes nothing.
 */
#define STORE_OPEN_BUSY_TIMEOUT_MS	5000
/* How long the writer's thread waits for a lock (store_open_writer). */
#define STORE_WRITER_BUSY_TIMEOUT_MS	500

/*
 * Forward migrations: store_migrations[v] takes schema version v to v + 1.
 * Each runs in its own BEGIN IMMEDIATE transaction together with the
 * user_version bump, so a crash leaves the database at a known version.
 * Never edit a released entry; append a new one and bump
 * STORE_SCHEMA_VERSION.
 */
static const char *const store_migrations[] = {
	/* 0 -> 1: initial schema. */
	"CREATE TABLE types ("
	"  uuid TEXT PRIMARY KEY,"
	"  ident TEXT UNIQUE NOT NULL,"
	"  name TEXT NOT NULL,"
	"  description TEXT NOT NULL DEFAULT '',"
	"  storage TEXT NOT NULL CHECK (storage IN ('db', 'vault')),"
	"  destinations TEXT NOT NULL DEFAULT '',"	/* newline-separated */
	"  created_at INTEGER,"
	"  updated_at INTEGER"
	");"
	"CREATE TABLE credvalues ("
	"  type_uuid TEXT NOT NULL REFERENCES types(uuid) ON DELETE CASCADE,"
	"  user_uuid TEXT NOT NULL,"
	"  sealed TEXT NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (type_uuid, user_uuid)"
	") WITHOUT ROWID;"
	"CREATE INDEX credvalues_user ON credvalues(user_uuid);"
	"CREATE TABLE settings ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL"
	");"
	"CREATE TABLE keycheck ("
	"  id INTEGER PRIMARY KEY CHECK (id = 1),"
	"  kcv TEXT NOT NULL"
	");",
	/*
	 * 1 -> 2: the storage generation of a type, counted up by every
	 * change of its storage and bound into what is stored in Vault, so
	 * values left behind by an earlier generation are never served.
	 */
	"ALTER TABLE types ADD COLUMN generation INTEGER NOT NULL DEFAULT 0;",
	/*
	 * 2 -> 3: key pairs and peer public keys (SPEC 9), sealed.  A key
	 * pair's row holds the counter of its versions, so that a version
	 * is never reused while the key pair exists, even after the newest
	 * was deleted; its versions go with it.
	 */
	"CREATE TABLE keypairs ("
	"  ident TEXT PRIMARY KEY,"
	"  next_version INTEGER NOT NULL CHECK (next_version >= 1),"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL"
	");"
	"CREATE TABLE keypair_versions ("
	"  ident TEXT NOT NULL REFERENCES keypairs(ident) ON DELETE CASCADE,"
	"  version INTEGER NOT NULL CHECK (version >= 1),"
	"  bits INTEGER NOT NULL,"
	"  sealed TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  PRIMARY KEY (ident, version)"
	") WITHOUT ROWID;"
	"CREATE TABLE peerkeys ("
	"  ident TEXT NOT NULL,"
	"  version INTEGER NOT NULL CHECK (version >= 1),"
	"  bits INTEGER NOT NULL,"
	"  sealed TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  PRIMARY KEY (ident, version)"
	") WITHOUT ROWID;",
	/*
	 * 3 -> 4: technical accounts (SPEC 10).  An account's value of a
	 * db-stored type lives in credaccounts.  Links and the default are
	 * kept here whatever the type's storage; each holds the account's
	 * name in clear (counts, listings) and sealed (what resolution
	 * trusts), so that writing the database cannot point a user at
	 * another account.
	 */
	"CREATE TABLE credaccounts ("
	"  type_uuid TEXT NOT NULL REFERENCES types(uuid) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  sealed TEXT NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (type_uuid, name)"
	") WITHOUT ROWID;"
	"CREATE TABLE credlinks ("
	"  type_uuid TEXT NOT NULL REFERENCES types(uuid) ON DELETE CASCADE,"
	"  user_uuid TEXT NOT NULL,"
	"  account TEXT NOT NULL,"
	"  sealed TEXT NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (type_uuid, user_uuid)"
	") WITHOUT ROWID;"
	"CREATE INDEX credlinks_account ON credlinks(type_uuid, account);"
	"CREATE INDEX credlinks_user ON credlinks(user_uuid);"
	"ALTER TABLE types ADD COLUMN default_account TEXT NOT NULL"
	"  DEFAULT '';"
	"ALTER TABLE types ADD COLUMN default_sealed TEXT;",
	/*
	 * 4 -> 5: the CA file of a type (SPEC 13): the trust store of the
	 * requests that carry its values; NULL when none.
	 */
	"ALTER TABLE types ADD COLUMN ca_file TEXT;",
	/*
	 * 5 -> 6: the values' keys as 16-byte uuids instead of their
	 * 36-character text: a third of the key, of the tree and of the
	 * user index, so that more of a large store fits in the page cache.
	 * Blobs of lower-case hexadecimal uuids sort as their text did.  A
	 * BLOB cannot reference types(uuid), so store_value_set checks the
	 * type and store_type_delete deletes the values; the CHECKs refuse
	 * any other form.
	 */
	"CREATE TABLE credvalues6 ("
	"  type_uuid BLOB NOT NULL"
	"    CHECK (typeof(type_uuid) = 'blob' AND length(type_uuid) = 16),"
	"  user_uuid BLOB NOT NULL"
	"    CHECK (typeof(user_uuid) = 'blob' AND length(user_uuid) = 16),"
	"  sealed TEXT NOT NULL,"
	"  updated_at INTEGER NOT NULL,"
	"  PRIMARY KEY (type_uuid, user_uuid)"
	") WITHOUT ROWID;"
	"INSERT INTO credvalues6 (type_uuid, user_uuid, sealed, updated_at)"
	"  SELECT credbroker_uuid_blob(type_uuid),"
	"  credbroker_uuid_blob(user_uuid), sealed, updated_at"
	"  FROM credvalues;"
	"DROP TABLE credvalues;"
	"ALTER TABLE credvalues6 RENAME TO credvalues;"
	"CREATE INDEX credvalues_user ON credvalues(user_uuid);",
};

_Static_assert(sizeof(store_migrations) / sizeof(store_migrations[0]) ==
    STORE_SCHEMA_VERSION, "one migration per schema version");

/* Every statement the store runs after open, prepared once. */
enum store_stmt {
	STMT_BEGIN,
	STMT_BEGIN_READ,
	STMT_COMMIT,
	STMT_ROLLBACK,
	STMT_SAVEPOINT,
	STMT_SAVEPOINT_RELEASE,
	STMT_SAVEPOINT_ROLLBACK,
	STMT_KCV_GET,
	STMT_KCV_SET,
	STMT_TYPE_INSERT,
	STMT_TYPE_LIST,
	STMT_TYPE_GET,
	STMT_TYPE_UPDATE,
	STMT_TYPE_DELETE,
	STMT_VALUE_SET,
	STMT_VALUE_GET,
	STMT_VALUE_DELETE,
	STMT_VALUE_COUNT,
	STMT_VALUE_CLEAR,
	STMT_VALUE_LIST_USER,
	STMT_VALUE_LIST_TYPE,
	STMT_SETTING_GET,
	STMT_SETTING_SET,
	STMT_SETTING_DELETE,
	STMT_VALUE_SCAN,
	STMT_VALUE_RESEAL,
	STMT_VALUE_COUNT_ALL,
	STMT_KEYPAIR_NEXT,
	STMT_KEYPAIR_UPSERT,
	STMT_KEYPAIR_INSERT,
	STMT_KEYPAIR_VERSIONS,
	STMT_KEYPAIR_SEALED,
	STMT_KEYPAIR_LIST,
	STMT_KEYPAIR_DELETE,
	STMT_KEYPAIR_DROP,
	STMT_KEYPAIR_RESEAL,
	STMT_PEERKEY_INSERT,
	STMT_PEERKEY_VERSIONS,
	STMT_PEERKEY_SEALED,
	STMT_PEERKEY_LIST,
	STMT_PEERKEY_DELETE,
	STMT_PEERKEY_RESEAL,
	STMT_KEY_SCAN,
	STMT_ACCOUNT_SET,
	STMT_ACCOUNT_GET,
	STMT_ACCOUNT_DELETE,
	STMT_ACCOUNT_CLEAR,
	STMT_ACCOUNT_LIST,
	STMT_ACCOUNT_SCAN,
	STMT_ACCOUNT_RESEAL,
	STMT_ACCOUNT_COUNT_ALL,
	STMT_LINK_SET,
	STMT_LINK_GET,
	STMT_LINK_DELETE,
	STMT_LINK_COUNT,
	STMT_LINK_LIST,
	STMT_LINK_LIST_USER,
	STMT_LINK_CLEAR,
	STMT_LINK_RESEAL,
	STMT_TYPE_SET_DEFAULT,
	STMT_DEFAULT_RESEAL,
	STMT_BIND_SCAN,
	STMT__COUNT
};

/* Column order read by type_from_row(). */
#define TYPE_COLUMNS \
	"uuid, ident, name, description, storage, destinations, " \
	"created_at, updated_at, generation, default_account, " \
	"default_sealed, ca_file"

static const char *const store_sql[STMT__COUNT] = {
	[STMT_BEGIN] = "BEGIN IMMEDIATE",
	[STMT_BEGIN_READ] = "BEGIN DEFERRED",
	[STMT_COMMIT] = "COMMIT",
	[STMT_ROLLBACK] = "ROLLBACK",
	/* One write of a group commit (store_batch_*). */
	[STMT_SAVEPOINT] = "SAVEPOINT job",
	[STMT_SAVEPOINT_RELEASE] = "RELEASE job",
	[STMT_SAVEPOINT_ROLLBACK] = "ROLLBACK TO job",
	[STMT_KCV_GET] = "SELECT kcv FROM keycheck WHERE id = 1",
	[STMT_KCV_SET] =
	    "INSERT INTO keycheck (id, kcv) VALUES (1, ?1)"
	    " ON CONFLICT (id) DO UPDATE SET kcv = excluded.kcv",
	[STMT_TYPE_INSERT] =
	    "INSERT INTO types (" TYPE_COLUMNS ")"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '', NULL, ?10)",
	/* BINARY collation: the order strcmp() gives (store_types_find). */
	[STMT_TYPE_LIST] =
	    "SELECT " TYPE_COLUMNS " FROM types ORDER BY ident",
	[STMT_TYPE_GET] =
	    "SELECT " TYPE_COLUMNS " FROM types WHERE uuid = ?1",
	[STMT_TYPE_UPDATE] =
	    "UPDATE types SET name = ?2, description = ?3, storage = ?4,"
	    " destinations = ?5, updated_at = ?6, generation = ?7,"
	    " ca_file = ?8 WHERE uuid = ?1",
	[STMT_TYPE_DELETE] = "DELETE FROM types WHERE uuid = ?1",
	[STMT_VALUE_SET] =
	    "INSERT INTO credvalues (type_uuid, user_uuid, sealed, updated_at)"
	    " SELECT ?1, ?2, ?3, ?4"
	    " WHERE EXISTS (SELECT 1 FROM types WHERE uuid = ?5)"
	    " ON CONFLICT (type_uuid, user_uuid) DO UPDATE"
	    " SET sealed = excluded.sealed, updated_at = excluded.updated_at",
	[STMT_VALUE_GET] =
	    "SELECT sealed, updated_at FROM credvalues"
	    " WHERE type_uuid = ?1 AND user_uuid = ?2",
	[STMT_VALUE_DELETE] =
	    "DELETE FROM credvalues WHERE type_uuid = ?1 AND user_uuid = ?2",
	/* Users' and accounts' values alike. */
	[STMT_VALUE_COUNT] =
	    "SELECT (SELECT count(*) FROM credvalues WHERE type_uuid = ?2)"
	    " + (SELECT count(*) FROM credaccounts WHERE type_uuid = ?1)",
	[STMT_VALUE_CLEAR] = "DELETE FROM credvalues WHERE type_uuid = ?1",
	/* Only types whose storage is db now: see store_value_list_user(). */
	[STMT_VALUE_LIST_TYPE] =
	    "SELECT user_uuid FROM credvalues WHERE type_uuid = ?1"
	    " ORDER BY user_uuid",
	[STMT_VALUE_LIST_USER] =
	    "SELECT v.type_uuid, v.updated_at FROM credvalues AS v"
	    " JOIN types AS t ON t.uuid = credbroker_uuid_text(v.type_uuid)"
	    " WHERE v.user_uuid = ?1 AND t.storage = 'db'"
	    " ORDER BY v.type_uuid",
	[STMT_SETTING_GET] = "SELECT value FROM settings WHERE key = ?1",
	[STMT_SETTING_SET] =
	    "INSERT INTO settings (key, value) VALUES (?1, ?2)"
	    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
	[STMT_SETTING_DELETE] = "DELETE FROM settings WHERE key = ?1",
	/* Key rotation walks every value in primary-key order. */
	[STMT_VALUE_SCAN] =
	    "SELECT type_uuid, user_uuid, sealed FROM credvalues"
	    " WHERE (type_uuid, user_uuid) > (?1, ?2)"
	    " ORDER BY type_uuid, user_uuid LIMIT ?3",
	[STMT_VALUE_RESEAL] =
	    "UPDATE credvalues SET sealed = ?3"
	    " WHERE type_uuid = ?1 AND user_uuid = ?2",
	[STMT_VALUE_COUNT_ALL] = "SELECT count(*) FROM credvalues",
	[STMT_KEYPAIR_NEXT] =
	    "SELECT next_version FROM keypairs WHERE ident = ?1",
	[STMT_KEYPAIR_UPSERT] =
	    "INSERT INTO keypairs (ident, next_version, created_at, updated_at)"
	    " VALUES (?1, ?2, ?3, ?3)"
	    " ON CONFLICT (ident) DO UPDATE"
	    " SET next_version = excluded.next_version,"
	    " updated_at = excluded.updated_at",
	[STMT_KEYPAIR_INSERT] =
	    "INSERT INTO keypair_versions (ident, version, bits, sealed,"
	    " created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
	[STMT_KEYPAIR_VERSIONS] =
	    "SELECT version, bits, created_at FROM keypair_versions"
	    " WHERE ident = ?1 ORDER BY version",
	/* ?2 = 0: the current (highest) version. */
	[STMT_KEYPAIR_SEALED] =
	    "SELECT version, sealed FROM keypair_versions"
	    " WHERE ident = ?1 AND (?2 = 0 OR version = ?2)"
	    " ORDER BY version DESC LIMIT 1",
	[STMT_KEYPAIR_LIST] =
	    "SELECT ident, version, bits, created_at FROM keypair_versions"
	    " ORDER BY ident, version",
	[STMT_KEYPAIR_DELETE] =
	    "DELETE FROM keypair_versions"
	    " WHERE ident = ?1 AND (?2 = 0 OR version = ?2)",
	/* The key pair and its counter go with its last version. */
	[STMT_KEYPAIR_DROP] =
	    "DELETE FROM keypairs WHERE ident = ?1 AND NOT EXISTS"
	    " (SELECT 1 FROM keypair_versions WHERE ident = ?1)",
	[STMT_KEYPAIR_RESEAL] =
	    "UPDATE keypair_versions SET sealed = ?3"
	    " WHERE ident = ?1 AND version = ?2",
	[STMT_PEERKEY_INSERT] =
	    "INSERT INTO peerkeys (ident, version, bits, sealed, created_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5)",
	[STMT_PEERKEY_VERSIONS] =
	    "SELECT version, bits, created_at FROM peerkeys"
	    " WHERE ident = ?1 ORDER BY version",
	[STMT_PEERKEY_SEALED] =
	    "SELECT version, sealed FROM peerkeys"
	    " WHERE ident = ?1 AND (?2 = 0 OR version = ?2)"
	    " ORDER BY version DESC LIMIT 1",
	[STMT_PEERKEY_LIST] =
	    "SELECT ident, version, bits, created_at FROM peerkeys"
	    " ORDER BY ident, version",
	[STMT_PEERKEY_DELETE] =
	    "DELETE FROM peerkeys"
	    " WHERE ident = ?1 AND (?2 = 0 OR version = ?2)",
	[STMT_PEERKEY_RESEAL] =
	    "UPDATE peerkeys SET sealed = ?3 WHERE ident = ?1 AND version = ?2",
	/* Column 0 is enum store_keyclass. */
	[STMT_KEY_SCAN] =
	    "SELECT 0, ident, version, sealed FROM keypair_versions"
	    " UNION ALL"
	    " SELECT 1, ident, version, sealed FROM peerkeys"
	    " ORDER BY 1, 2, 3",
	[STMT_ACCOUNT_SET] =
	    "INSERT INTO credaccounts (type_uuid, name, sealed, updated_at)"
	    " VALUES (?1, ?2, ?3, ?4)"
	    " ON CONFLICT (type_uuid, name) DO UPDATE"
	    " SET sealed = excluded.sealed, updated_at = excluded.updated_at",
	[STMT_ACCOUNT_GET] =
	    "SELECT sealed, updated_at FROM credaccounts"
	    " WHERE type_uuid = ?1 AND name = ?2",
	[STMT_ACCOUNT_DELETE] =
	    "DELETE FROM credaccounts WHERE type_uuid = ?1 AND name = ?2",
	[STMT_ACCOUNT_CLEAR] = "DELETE FROM credaccounts WHERE type_uuid = ?1",
	[STMT_ACCOUNT_LIST] =
	    "SELECT name, updated_at FROM credaccounts WHERE type_uuid = ?1"
	    " ORDER BY name",
	[STMT_ACCOUNT_SCAN] =
	    "SELECT type_uuid, name, sealed FROM credaccounts"
	    " ORDER BY type_uuid, name",
	[STMT_ACCOUNT_RESEAL] =
	    "UPDATE credaccounts SET sealed = ?3"
	    " WHERE type_uuid = ?1 AND name = ?2",
	[STMT_ACCOUNT_COUNT_ALL] = "SELECT count(*) FROM credaccounts",
	[STMT_LINK_SET] =
	    "INSERT INTO credlinks (type_uuid, user_uuid, account, sealed,"
	    " updated_at) VALUES (?1, ?2, ?3, ?4, ?5)"
	    " ON CONFLICT (type_uuid, user_uuid) DO UPDATE"
	    " SET account = excluded.account, sealed = excluded.sealed,"
	    " updated_at = excluded.updated_at",
	[STMT_LINK_GET] =
	    "SELECT user_uuid, account, sealed, updated_at FROM credlinks"
	    " WHERE type_uuid = ?1 AND user_uuid = ?2",
	[STMT_LINK_DELETE] =
	    "DELETE FROM credlinks WHERE type_uuid = ?1 AND user_uuid = ?2",
	[STMT_LINK_COUNT] =
	    "SELECT count(*) FROM credlinks WHERE type_uuid = ?1"
	    " AND account = ?2",
	[STMT_LINK_LIST] =
	    "SELECT user_uuid, account, sealed, updated_at FROM credlinks"
	    " WHERE type_uuid = ?1 ORDER BY account, user_uuid",
	[STMT_LINK_LIST_USER] =
	    "SELECT user_uuid, account, sealed, updated_at, type_uuid"
	    " FROM credlinks WHERE user_uuid = ?1 ORDER BY type_uuid",
	[STMT_LINK_CLEAR] = "DELETE FROM credlinks WHERE type_uuid = ?1",
	[STMT_LINK_RESEAL] =
	    "UPDATE credlinks SET sealed = ?3"
	    " WHERE type_uuid = ?1 AND user_uuid = ?2",
	/* ?2 '' and ?3 NULL: no default. */
	[STMT_TYPE_SET_DEFAULT] =
	    "UPDATE types SET default_account = ?2, default_sealed = ?3"
	    " WHERE uuid = ?1",
	[STMT_DEFAULT_RESEAL] =
	    "UPDATE types SET default_sealed = ?2"
	    " WHERE uuid = ?1 AND default_sealed IS NOT NULL",
	/* Links, then defaults (user ''), each in key order. */
	[STMT_BIND_SCAN] =
	    "SELECT 0, type_uuid, user_uuid, sealed FROM credlinks"
	    " UNION ALL"
	    " SELECT 1, uuid, '', default_sealed FROM types"
	    " WHERE default_sealed IS NOT NULL"
	    " ORDER BY 1, 2, 3",
};

/*
 * The types table is read by every substitute and cred.status, so it is
 * kept in memory: loaded on first use and then kept up to date in place by
 * every type write once it has committed (the daemon is the database's
 * only writer), so that creating one type among 50,000 costs a search and
 * a move of pointers, not a reload.  A failed write drops it, and the next
 * lookup reads the table again.  Entries are searched by ident (by_ident[],
 * ordered as SQL's ORDER BY ident) or by uuid (by_uuid[]).
 *
 * An entry is counted: one reference is the cache's while the entry is in
 * it, and one more for each store_type_borrow not yet released.  An entry
 * that a call borrows is never changed or freed under it: a change of the
 * type puts a copy in its place (store_types_own), and a drop or removal
 * only lets go of the cache's reference, so the last release frees it.
 * The count is not atomic: a store and its borrows belong to one thread.
 */
struct type_ent {
	struct store_type	 t;
	size_t			 pos;		/* index in by_ident (merges) */
	unsigned		 refs;		/* cache + borrows */
};

struct store {
	sqlite3			*db;
	char			*path;		/* for messages */
	sqlite3_stmt		*stmt[STMT__COUNT];
	struct type_ent		**by_ident;
	struct type_ent		**by_uuid;
	size_t			 ntypes;
	size_t			 captypes;
	bool			 types_ok;
	uint64_t		 type_loads;
	bool			 reading;	/* read transaction held */
	/*
	 * A group commit is open (store_batch_begin): the functions that
	 * would begin, commit or roll back a transaction of their own run
	 * inside the group's instead, each write in a savepoint.
	 */
	bool			 batch;
	bool			 cache;		/* store_cache_only() */
	/*
	 * The 16 bytes of the uuids bound to credvalues' statements, by
	 * parameter number (bind_uuid), kept until the statement is done:
	 * bound without a copy.
	 */
	uint8_t			 ukey[3][IDS_UUID_BYTES];
};

static void	store_types_drop(struct store *);
static void	store_types_insert(struct store *, const struct store_type *);
static void	store_types_replace(struct store *, const struct store_type *,
		    int64_t);
static void	store_types_remove(struct store *, const char *);
static int	store_types_load(struct store *, struct cb_error *);
static const struct store_type *store_types_find(struct store *,
		    const char *, bool);
static void	store_rollback(struct store *);

static const char *const store_kind_names[] = {
	[STORE_DB] = "db",
	[STORE_VAULT] = "vault",
};

const char *
store_kind_name(int kind)
{
	return kind >= 0 && kind < STORE_KINDS ? store_kind_names[kind] : NULL;
}

int
store_kind_parse(const char *name)
{
	int	k;

	for (k = 0; name != NULL && k < STORE_KINDS; k++)
		if (strcmp(store_kind_names[k], name) == 0)
			return k;
	return -1;
}

/* Record an allocation failure. */
static int
store_nomem(struct cb_error *err)
{
	return cb_error_set(err, CB_EINTERNAL, "out of memory");
}

/*
 * Convert a failed SQLite result into a CB error carrying SQLite's message.
 * Must be called before anything else runs on the connection, since
 * sqlite3_errmsg() describes the most recent call.  Busy, locked, I/O,
 * disk-full and read-only conditions are -CB_EUNAVAILABLE: they are about
 * the host, not the request, and may go away.
 */
static int
store_dberr(struct store *st, int rc, const char *what, struct cb_error *err)
{
	const char	*msg = sqlite3_errmsg(st->db);

	switch (rc & 0xff) {
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "the database %s is locked by another process (%s): %s; "
		    "nothing was changed, try again", st->path, what, msg);
	case SQLITE_IOERR:
	case SQLITE_FULL:
	case SQLITE_CANTOPEN:
	case SQLITE_PROTOCOL:
	case SQLITE_READONLY:
		return cb_error_set(err, CB_EUNAVAILABLE,
		    "database %s is unavailable (%s): %s", st->path, what, msg);
	case SQLITE_NOTADB:
		return cb_error_set(err, CB_EINTERNAL,
		    "%s is not a SQLite database (%s)", st->path, msg);
	case SQLITE_CORRUPT:
		return cb_error_set(err, CB_EINTERNAL,
		    "database %s is corrupt (%s): %s", st->path, what, msg);
	default:
		return cb_error_set(err, CB_EINTERNAL,
		    "database error (%s): %s", what, msg);
	}
}

/* Reset a statement and drop its bindings; every use of one ends here. */
static void
stmt_done(sqlite3_stmt *s)
{
	if (s != NULL) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	}
}

/* Bind text the caller keeps alive until stmt_done() (SQLITE_STATIC). */
static int
bind_text(sqlite3_stmt *s, int idx, const char *v)
{
	return sqlite3_bind_text(s, idx, v, -1, SQLITE_STATIC);
}

/*
 * Bind a uuid of credvalues as its 16 bytes (schema 6), packed into b,
 * which the caller keeps until stmt_done() (SQLITE_STATIC).  Callers have
 * checked it; one that is not a uuid binds nothing and fails the call.
 */
static int
bind_uuid(sqlite3_stmt *s, int idx, const char *uuid,
    uint8_t b[IDS_UUID_BYTES])
{
	if (!ids_uuid_pack(uuid, b))
		return SQLITE_MISMATCH;
	return sqlite3_bind_blob(s, idx, b, IDS_UUID_BYTES, SQLITE_STATIC);
}

/* A uuid column of credvalues as text into out; false when malformed. */
static bool
col_uuid(sqlite3_stmt *s, int idx, char out[STORE_UUID_LEN + 1])
{
	const void	*b = sqlite3_column_blob(s, idx);

	if (b == NULL || sqlite3_column_type(s, idx) != SQLITE_BLOB ||
	    sqlite3_column_bytes(s, idx) != IDS_UUID_BYTES)
		return false;
	ids_uuid_unpack(b, out);
	return true;
}

/*
 * SQL functions between the two forms of a uuid, for the migration to
 * schema 6 and for joins of credvalues with types: credbroker_uuid_blob
 * fails on anything that is not a lower-case uuid, credbroker_uuid_text
 * on anything that is not 16 bytes.  Direct only: never run from the
 * schema.
 */
static void
store_fn_uuid_blob(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const unsigned char	*t;
	uint8_t			 b[IDS_UUID_BYTES];

	(void)argc;
	t = sqlite3_value_text(argv[0]);
	if (sqlite3_value_type(argv[0]) != SQLITE_TEXT || t == NULL ||
	    !ids_uuid_pack((const char *)t, b)) {
		sqlite3_result_error(ctx, "a stored uuid is malformed", -1);
		return;
	}
	sqlite3_result_blob(ctx, b, sizeof(b), SQLITE_TRANSIENT);
}

static void
store_fn_uuid_text(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const void	*b;
	char		 t[STORE_UUID_LEN + 1];

	(void)argc;
	b = sqlite3_value_blob(argv[0]);
	if (sqlite3_value_type(argv[0]) != SQLITE_BLOB || b == NULL ||
	    sqlite3_value_bytes(argv[0]) != IDS_UUID_BYTES) {
		sqlite3_result_error(ctx, "a stored uuid is malformed", -1);
		return;
	}
	ids_uuid_unpack(b, t);
	sqlite3_result_text(ctx, t, STORE_UUID_LEN, SQLITE_TRANSIENT);
}

static int
store_functions(struct store *st, struct cb_error *err)
{
	const int	flags = SQLITE_UTF8 | SQLITE_DETERMINISTIC |
			    SQLITE_DIRECTONLY;
	int		rc;

	if ((rc = sqlite3_create_function_v2(st->db, "credbroker_uuid_blob",
	    1, flags, NULL, store_fn_uuid_blob, NULL, NULL, NULL)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_create_function_v2(st->db, "credbroker_uuid_text",
	    1, flags, NULL, store_fn_uuid_text, NULL, NULL, NULL)) !=
	    SQLITE_OK)
		return store_dberr(st, rc, "register functions", err);
	return 0;
}

/* Column text, "" for NULL. */
static const char *
col_text(sqlite3_stmt *s, int idx)
{
	const unsigned char	*v = sqlite3_column_text(s, idx);

	return v != NULL ? (const char *)v : "";
}

/* malloc'd copy of a text column ("" for NULL); NULL when out of memory. */
static char *
col_dup(sqlite3_stmt *s, int idx)
{
	const char	*v = col_text(s, idx);
	size_t		 len = (size_t)sqlite3_column_bytes(s, idx);
	char		*p;

	if ((p = malloc(len + 1)) == NULL)
		return NULL;
	memcpy(p, v, len);
	p[len] = '\0';
	return p;
}

/* Run a prepared statement that takes no parameters and returns no rows. */
static int
store_run(struct store *st, enum store_stmt which, const char *what,
    struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[which];
	int		 rc, ret = 0;

	if ((rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, what, err);
	stmt_done(s);
	return ret;
}

/*
 * Reads on the hot path (a value, a user's values) share one read
 * transaction until store_release(), which the daemon calls once per loop
 * iteration before it sends the replies: a burst of pipelined substitutes
 * takes and drops SQLite's WAL read lock once, not twice per value.  Every
 * write releases it first (store_write_stmt, store_begin), so a write is
 * always its own durable transaction, committed before its caller is
 * answered.  Outside a hold,
 * each statement is its own transaction as usual.
 */
static void
store_hold_read(struct store *st)
{
	sqlite3_stmt	*s = st->stmt[STMT_BEGIN_READ];

	if (st->reading || !sqlite3_get_autocommit(st->db))
		return;
	if (sqlite3_step(s) == SQLITE_DONE)
		st->reading = true;
	stmt_done(s);
}

void
store_release(struct store *st)
{
	if (st == NULL || !st->reading)
		return;
	st->reading = false;
	if (store_run(st, STMT_COMMIT, "end read", NULL) != 0)
		store_rollback(st);
}

/*
 * A statement that writes.  Fetching it ends the read hold, so the write
 * runs as its own transaction (or in the one store_begin() opened) and is
 * durable when it returns.
 */
static sqlite3_stmt *
store_write_stmt(struct store *st, enum store_stmt which)
{
	store_release(st);
	return st->stmt[which];
}

/* Start a write transaction, taking the write lock now. */
static int
store_begin(struct store *st, struct cb_error *err)
{
	store_release(st);
	if (st->batch)
		return 0;
	return store_run(st, STMT_BEGIN, "begin", err);
}

/* Commit, rolling back if the commit itself fails. */
static int
store_commit(struct store *st, struct cb_error *err)
{
	int	ret;

	if (st->batch)
		return 0;
	if ((ret = store_run(st, STMT_COMMIT, "commit", err)) != 0 &&
	    !sqlite3_get_autocommit(st->db))
		(void)store_run(st, STMT_ROLLBACK, "rollback", NULL);
	return ret;
}

/* Roll back the open transaction, if SQLite has not already done so. */
static void
store_rollback(struct store *st)
{
	if (st->batch)
		return;		/* the group rolls back to the savepoint */
	if (!sqlite3_get_autocommit(st->db))
		(void)store_run(st, STMT_ROLLBACK, "rollback", NULL);
}

/* Run one SQL script outside the prepared set (open and migrations only). */
static int
store_exec(struct store *st, const char *sql, const char *what,
    struct cb_error *err)
{
	int	rc;

	if ((rc = sqlite3_exec(st->db, sql, NULL, NULL, NULL)) != SQLITE_OK)
		return store_dberr(st, rc, what, err);
	return 0;
}

/* Run a pragma; the first column of its first row (if any) goes to ans. */
static int
store_pragma(struct store *st, const char *sql, char *ans, size_t anslen,
    struct cb_error *err)
{
	sqlite3_stmt	*s = NULL;
	int		 rc, ret = 0, row = 0;

	if (ans != NULL)
		ans[0] = '\0';
	rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK) {
		ret = store_dberr(st, rc, sql, err);
		goto done;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (ans != NULL && row++ == 0)
			snprintf(ans, anslen, "%s", col_text(s, 0));
	}
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, sql, err);
done:
	sqlite3_finalize(s);
	return ret;
}

/* The database's schema version (PRAGMA user_version). */
static int
store_user_version(struct store *st, int *version, struct cb_error *err)
{
	char	ans[32];
	int	ret;

	if ((ret = store_pragma(st, "PRAGMA user_version", ans, sizeof(ans),
	    err)) != 0)
		return ret;
	*version = atoi(ans);
	return 0;
}

/* Refuse a schema version this code does not know. */
static int
store_version_refuse(struct store *st, int version, struct cb_error *err)
{
	return cb_error_set(err, CB_EINTERNAL,
	    "database %s has schema version %d, but this credbroker knows "
	    "versions up to %d only: it was written by a newer credbroker "
	    "(upgrade, or restore a backup)", st->path, version,
	    STORE_SCHEMA_VERSION);
}

/* Name the database and the step in a failed migration's message. */
static int
store_migrate_failed(struct store *st, int from, int ret,
    struct cb_error *err)
{
	char	why[CB_ERRMSG_MAX];

	if (err == NULL)
		return ret;
	snprintf(why, sizeof(why), "%s", err->msg);
	return cb_error_set(err, -ret, "cannot upgrade database %s from "
	    "schema version %d to %d (%s); it was left at version %d",
	    st->path, from, from + 1, why, from);
}

/*
 * Bring the schema to STORE_SCHEMA_VERSION, one migration per transaction.
 * The version is read again under the write lock, so two processes opening
 * the same new file cannot both apply a migration.
 */
static int
store_migrate(struct store *st, struct cb_error *err)
{
	char	sql[64];
	int	ret, version, locked;

	for (;;) {
		if ((ret = store_user_version(st, &version, err)) != 0)
			return ret;
		if (version == STORE_SCHEMA_VERSION)
			return 0;
		if (version < 0 || version > STORE_SCHEMA_VERSION)
			return store_version_refuse(st, version, err);

		if ((ret = store_exec(st, "BEGIN IMMEDIATE", "migrate",
		    err)) != 0)
			return ret;
		if ((ret = store_user_version(st, &version, err)) != 0)
			goto fail;
		locked = version;
		if (locked < 0 || locked > STORE_SCHEMA_VERSION) {
			ret = store_version_refuse(st, locked, err);
			goto fail;
		}
		if (locked < STORE_SCHEMA_VERSION) {
			if ((ret = store_exec(st, store_migrations[locked],
			    "migrate", err)) != 0) {
				ret = store_migrate_failed(st, locked, ret,
				    err);
				goto fail;
			}
			snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
			    locked + 1);
			if ((ret = store_exec(st, sql, "migrate", err)) != 0)
				goto fail;
		}
		if ((ret = store_exec(st, "COMMIT", "migrate", err)) != 0)
			goto fail;
	}

fail:
	if (!sqlite3_get_autocommit(st->db))
		(void)sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return ret;
}

/* Connection settings; journal_mode and foreign_keys are verified. */
static int
store_configure(struct store *st, struct cb_error *err)
{
	char	ans[32];
	int	ret;

	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_OPEN_BUSY_TIMEOUT_MS);
	/* No writable_schema and friends; no functions run from the schema. */
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0,
	    (int *)NULL);

	/* journal_mode reads the header first: a non-database fails here. */
	if ((ret = store_pragma(st, "PRAGMA journal_mode = WAL", ans,
	    sizeof(ans), err)) != 0)
		return ret;
	if (strcasecmp(ans, "wal") != 0)
		return cb_error_set(err, CB_EINTERNAL,
		    "database %s cannot use WAL mode (journal_mode is '%s'); "
		    "is it on a network file system?", st->path, ans);
	if ((ret = store_pragma(st, "PRAGMA synchronous = FULL", NULL, 0,
	    err)) != 0)
		return ret;
	if ((ret = store_pragma(st, "PRAGMA secure_delete = ON", NULL, 0,
	    err)) != 0)
		return ret;
	if ((ret = store_pragma(st, "PRAGMA foreign_keys = ON", NULL, 0,
	    err)) != 0)
		return ret;
	if ((ret = store_pragma(st, "PRAGMA foreign_keys", ans, sizeof(ans),
	    err)) != 0)
		return ret;
	if (strcmp(ans, "1") != 0)
		return cb_error_set(err, CB_EINTERNAL,
		    "SQLite was built without foreign key support");
	return 0;
}

/*
 * Called by the daemon after store_open() with storage.page_cache_mb
 * (default 16 MiB, against SQLite's own 2 MiB) and storage.mmap_mb.
 * credvalues is a WITHOUT ROWID table, whose interior pages hold whole
 * rows, sealed values included: a million values have 1,630 of them,
 * 6.4 MiB.  16 MiB keeps nearly all of them among the leaves that the
 * lookups bring in, so a lookup reads little more than its leaf from the
 * file (1.11 reads per lookup measured, against 1.46 with 8 MiB).  Pages
 * are allocated only as they are used, so a small store never takes the
 * whole cache.  A memory map lets lookups in a database larger than the
 * cache read pages without a system call each, but every page it touches
 * then counts in the broker's RSS.
 */
int
store_tune(struct store *st, unsigned page_cache_mb, unsigned mmap_mb,
    struct cb_error *err)
{
	char	sql[96];
	int	ret;

	store_release(st);
	snprintf(sql, sizeof(sql), "PRAGMA cache_size = -%u",
	    page_cache_mb * 1024);
	if ((ret = store_pragma(st, sql, NULL, 0, err)) != 0)
		return ret;
	snprintf(sql, sizeof(sql), "PRAGMA mmap_size = %llu",
	    (unsigned long long)mmap_mb * 1024 * 1024);
	return store_pragma(st, sql, NULL, 0, err);
}

/* Prepare every statement for the life of the connection. */
static int
store_prepare(struct store *st, struct cb_error *err)
{
	size_t	i;
	int	rc;

	for (i = 0; i < STMT__COUNT; i++) {
		rc = sqlite3_prepare_v3(st->db, store_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL);
		if (rc != SQLITE_OK)
			return store_dberr(st, rc, "prepare", err);
	}
	return 0;
}

/*
 * The directory that will hold the database must already exist, and when
 * writable is set the broker's user must be able to create files in it:
 * SQLite keeps the -wal and -shm files beside the database and creates
 * them when it opens it, so a read-only directory fails there with a
 * message that names neither.
 */
int
store_check_dir(const char *path, bool writable, struct cb_error *err)
{
	struct stat	 sb;
	const char	*slash;
	char		*dir;
	int		 ret = 0;

	if ((slash = strrchr(path, '/')) == NULL)
		return 0;		/* relative to the working directory */
	if ((dir = strndup(path, slash == path ? 1 : (size_t)(slash - path)))
	    == NULL)
		return store_nomem(err);
	if (stat(dir, &sb) == -1)
		ret = cb_error_set(err, CB_EUNAVAILABLE,
		    "database directory %s for %s: %s (it must exist; under "
		    "systemd use StateDirectory=)", dir, path, strerror(errno));
	else if (!S_ISDIR(sb.st_mode))
		ret = cb_error_set(err, CB_EUNAVAILABLE,
		    "database directory %s for %s is not a directory", dir,
		    path);
	else if (writable && eaccess(dir, W_OK | X_OK) == -1)
		ret = cb_error_set(err, CB_EUNAVAILABLE,
		    "database directory %s is not writable by uid %u: SQLite "
		    "creates the -wal and -shm files of %s in it, so the "
		    "broker's user must be able to write there; chown the "
		    "directory to that user (under systemd use "
		    "StateDirectory=)", dir, (unsigned)geteuid(), path);
	free(dir);
	return ret;
}

/*
 * Open (creating if needed) and migrate the database at path.
 *
 * The file is created here with open(2) and mode 0600 rather than by
 * SQLite, which would use 0644 less the umask; SQLite then creates the
 * -wal and -shm files with the database file's mode.  The daemon checks an
 * existing file's mode before it calls this (credbrokerd(8), FILES).
 */
int
store_open(const char *path, struct store **out, struct cb_error *err)
{
	struct store	*st = NULL;
	int		 fd, rc, ret = 0;

	*out = NULL;
	if (path == NULL || *path == '\0')
		return cb_error_set(err, CB_EINTERNAL,
		    "no database path configured");
	if ((ret = store_check_dir(path, true, err)) != 0)
		return ret;
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->path = strdup(path)) == NULL) {
		ret = store_nomem(err);
		goto done;
	}

	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY,
	    S_IRUSR | S_IWUSR)) == -1) {
		ret = cb_error_set(err, CB_EUNAVAILABLE,
		    "cannot open database %s: %s", path, strerror(errno));
		goto done;
	}
	close(fd);

	rc = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK) {
		ret = store_dberr(st, rc, "open", err);
		goto done;
	}
	if ((ret = store_configure(st, err)) != 0 ||
	    (ret = store_functions(st, err)) != 0 ||
	    (ret = store_migrate(st, err)) != 0 ||
	    (ret = store_prepare(st, err)) != 0)
		goto done;
	/* From here on the loop uses the connection: never sleep on a lock. */
	sqlite3_busy_timeout(st->db, 0);

	*out = st;
	st = NULL;
done:
	store_close(st);
	return ret;
}

/*
 * The writer's connection (storage/writer.c): the same database, opened and
 * configured as the loop's (WAL, synchronous=FULL, foreign keys,
 * secure_delete) with its own prepared statements.  It runs on the
 * writer's thread, which may sleep: it waits up to
 * STORE_WRITER_BUSY_TIMEOUT_MS for a lock held by another process (the
 * loop's connection never writes once the daemon runs), then fails the
 * group.
 */
int
store_open_writer(const struct store *st, struct store **out,
    struct cb_error *err)
{
	int	ret;

	if ((ret = store_open(st->path, out, err)) != 0)
		return ret;
	sqlite3_busy_timeout((*out)->db, STORE_WRITER_BUSY_TIMEOUT_MS);
	if (st->cache && (ret = store_cache_only(*out, err)) != 0) {
		store_close(*out);
		*out = NULL;
	}
	return ret;
}

int
store_cache_only(struct store *st, struct cb_error *err)
{
	int	ret;

	if ((ret = store_pragma(st, "PRAGMA synchronous = OFF", NULL, 0,
	    err)) == 0)
		st->cache = true;
	return ret;
}

int
store_batch_begin(struct store *st, struct cb_error *err)
{
	int	ret;

	store_release(st);
	if ((ret = store_run(st, STMT_BEGIN, "begin a group of writes",
	    err)) != 0)
		return ret;
	st->batch = true;
	return 0;
}

int
store_batch_savepoint(struct store *st, struct cb_error *err)
{
	return store_run(st, STMT_SAVEPOINT, "savepoint", err);
}

int
store_batch_release(struct store *st, struct cb_error *err)
{
	return store_run(st, STMT_SAVEPOINT_RELEASE, "release savepoint", err);
}

/*
 * The cache of a connection whose writes are taken back may hold what
 * they changed: it is read again at the next lookup.
 */
void
store_batch_undo(struct store *st)
{
	store_types_drop(st);
	if (sqlite3_get_autocommit(st->db))
		return;
	(void)store_run(st, STMT_SAVEPOINT_ROLLBACK, "roll back a write",
	    NULL);
	(void)store_run(st, STMT_SAVEPOINT_RELEASE, "release savepoint",
	    NULL);
}

bool
store_batch_open(const struct store *st)
{
	return st->batch && !sqlite3_get_autocommit(st->db);
}

int
store_batch_commit(struct store *st, struct cb_error *err)
{
	int	ret;

	st->batch = false;
	if (sqlite3_get_autocommit(st->db))
		ret = cb_error_set(err, CB_EUNAVAILABLE, "database %s "
		    "rolled the transaction back", st->path);
	else
		ret = store_commit(st, err);
	if (ret != 0)
		store_types_drop(st);
	return ret;
}

void
store_batch_abort(struct store *st)
{
	st->batch = false;
	store_rollback(st);
	store_types_drop(st);
}

int
store_query_only(struct store *st, bool on, struct cb_error *err)
{
	return store_pragma(st, on ? "PRAGMA query_only = ON" :
	    "PRAGMA query_only = OFF", NULL, 0, err);
}

/*
 * Open an existing database for reading only (credbrokerd --check-config),
 * creating and changing no file.
 *
 * With mode=ro SQLite still creates the -wal and -shm files of a WAL
 * database when they are missing, as it does for any reader, and a read
 * may rebuild the -shm index.  So: when the -wal file exists (a broker
 * has the store open, or stopped without a final checkpoint), its
 * contents matter and both files are opened as they are, read-only, with
 * no checkpoint on close.  When it is missing, the last broker
 * checkpointed everything into the database file, which is then read as
 * immutable: no locks, no -wal, no -shm.
 *
 * A schema older than this code's is not an error (the next start
 * migrates it): *out is then NULL and *version says which it is.
 */
int
store_open_readonly(const char *path, struct store **out, int *version,
    struct cb_error *err)
{
	static const char hex[] = "0123456789ABCDEF";
	struct store	*st = NULL;
	struct stat	 sb;
	char		*uri = NULL, *wal = NULL, *u;
	const char	*p;
	int		 rc, ret = 0;
	bool		 haswal;

	*out = NULL;
	*version = 0;
	if ((st = calloc(1, sizeof(*st))) == NULL ||
	    (st->path = strdup(path)) == NULL ||
	    asprintf(&wal, "%s-wal", path) < 0) {
		wal = NULL;
		ret = store_nomem(err);
		goto done;
	}
	haswal = lstat(wal, &sb) == 0;
	/* file: URI, with what SQLite would take for syntax escaped. */
	if ((uri = malloc(strlen(path) * 3 + 32)) == NULL) {
		ret = store_nomem(err);
		goto done;
	}
	u = uri + sprintf(uri, "file:");
	for (p = path; *p != '\0'; p++) {
		if (*p == '?' || *p == '#' || *p == '%' ||
		    (unsigned char)*p < 0x20) {
			*u++ = '%';
			*u++ = hex[(unsigned char)*p >> 4];
			*u++ = hex[(unsigned char)*p & 0xf];
		} else
			*u++ = *p;
	}
	strcpy(u, haswal ? "?mode=ro" : "?mode=ro&immutable=1");
	rc = sqlite3_open_v2(uri, &st->db, SQLITE_OPEN_READONLY |
	    SQLITE_OPEN_URI, NULL);
	if (rc != SQLITE_OK) {
		ret = store_dberr(st, rc, "open read-only", err);
		goto done;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_OPEN_BUSY_TIMEOUT_MS);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_DEFENSIVE, 1, (int *)NULL);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0,
	    (int *)NULL);
	sqlite3_db_config(st->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1,
	    (int *)NULL);
	if ((ret = store_user_version(st, version, err)) != 0)
		goto done;
	if (*version < 0 || *version > STORE_SCHEMA_VERSION) {
		ret = store_version_refuse(st, *version, err);
		goto done;
	}
	if (*version < STORE_SCHEMA_VERSION)
		goto done;
	if ((ret = store_functions(st, err)) != 0 ||
	    (ret = store_prepare(st, err)) != 0)
		goto done;
	*out = st;
	st = NULL;
done:
	store_close(st);
	free(uri);
	free(wal);
	return ret;
}

/* Finalize every statement and close; the last close checkpoints the WAL. */
void
store_close(struct store *st)
{
	size_t	i;

	if (st == NULL)
		return;
	store_release(st);
	store_types_drop(st);
	for (i = 0; i < STMT__COUNT; i++)
		sqlite3_finalize(st->stmt[i]);
	sqlite3_close_v2(st->db);
	free(st->path);
	free(st);
}

/* Read one optional text value from a one-column, at-most-one-row query. */
static int
store_get_text(struct store *st, enum store_stmt which, const char *key,
    char **out, const char *what, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[which];
	int		 rc, ret = 0;

	*out = NULL;
	if (key != NULL && (rc = bind_text(s, 1, key)) != SQLITE_OK) {
		ret = store_dberr(st, rc, what, err);
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if ((*out = col_dup(s, 0)) == NULL)
			ret = store_nomem(err);
	} else if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, what, err);
done:
	stmt_done(s);
	return ret;
}

/* The recorded key check value, or *out NULL on a new store. */
int
store_kcv_get(struct store *st, char **out, struct cb_error *err)
{
	return store_get_text(st, STMT_KCV_GET, NULL, out, "read key check",
	    err);
}

/* Record (or replace) the key check value. */
int
store_kcv_set(struct store *st, const char *kcv, struct cb_error *err)
{
	sqlite3_stmt	*s = store_write_stmt(st, STMT_KCV_SET);
	int		 rc, ret = 0;

	if (kcv == NULL || *kcv == '\0')
		return cb_error_set(err, CB_EINTERNAL, "empty key check value");
	if ((rc = bind_text(s, 1, kcv)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, "write key check", err);
	stmt_done(s);
	return ret;
}

/* Check the fields of t that update may change. */
static int
type_check_fields(const struct store_type *t, struct cb_error *err)
{
	if (t->name == NULL)
		return cb_error_set(err, CB_EBADREQ,
		    "a credential type needs a name");
	if (strlen(t->name) > STORE_NAME_MAX)
		return cb_error_set(err, CB_EBADREQ,
		    "credential type name is longer than %d bytes",
		    STORE_NAME_MAX);
	if (t->description != NULL && strlen(t->description) > STORE_DESC_MAX)
		return cb_error_set(err, CB_EBADREQ,
		    "credential type description is longer than %d bytes",
		    STORE_DESC_MAX);
	if (t->storage != STORE_DB && t->storage != STORE_VAULT)
		return cb_error_set(err, CB_EBADREQ,
		    "credential type storage must be db or vault");
	if (t->ca_file != NULL && (t->ca_file[0] != '/' ||
	    strlen(t->ca_file) >= PATH_MAX))
		return cb_error_set(err, CB_EBADREQ, "credential type ca_file "
		    "must be an absolute path shorter than %d bytes",
		    PATH_MAX);
	return 0;
}

/*
 * Validate t's destinations and join them with '\n' into *out (malloc'd).
 * Newlines separate the stored list, so a destination may not contain one,
 * and may not be empty (an empty list and a list of one "" would read back
 * the same).
 */
static int
sqlite_dest_join(const struct store_type *t, char **out, struct cb_error *err)
{
	size_t	 i, len, total = 1;
	char	*p;

	*out = NULL;
	if (t->ndestinations > STORE_DEST_MAX)
		return cb_error_set(err, CB_EBADREQ,
		    "a credential type has at most %d destinations",
		    STORE_DEST_MAX);
	if (t->ndestinations > 0 && t->destinations == NULL)
		return cb_error_set(err, CB_EBADREQ, "destinations missing");
	for (i = 0; i < t->ndestinations; i++) {
		if (t->destinations[i] == NULL)
			return cb_error_set(err, CB_EBADREQ,
			    "destination %zu is missing", i + 1);
		len = strlen(t->destinations[i]);
		if (len == 0)
			return cb_error_set(err, CB_EBADREQ,
			    "destination %zu is empty", i + 1);
		if (len > STORE_DEST_LEN_MAX)
			return cb_error_set(err, CB_EBADREQ,
			    "destination %zu is longer than %d bytes", i + 1,
			    STORE_DEST_LEN_MAX);
		if (strpbrk(t->destinations[i], "\r\n") != NULL)
			return cb_error_set(err, CB_EBADREQ,
			    "destination %zu contains a line break", i + 1);
		total += len + 1;
	}
	if ((p = malloc(total)) == NULL)
		return store_nomem(err);
	*out = p;
	for (i = 0; i < t->ndestinations; i++) {
		len = strlen(t->destinations[i]);
		if (i > 0)
			*p++ = '\n';
		memcpy(p, t->destinations[i], len);
		p += len;
	}
	*p = '\0';
	return 0;
}

/* Split stored destinations into a NULL-terminated array; -1 on no memory. */
static int
sqlite_dest_split(const char *text, char ***out, size_t *n)
{
	const char	 *p, *nl;
	char		**v;
	size_t		  count = 0, i, len;

	if (*text != '\0')
		for (count = 1, p = text; *p != '\0'; p++)
			if (*p == '\n')
				count++;
	if ((v = calloc(count + 1, sizeof(*v))) == NULL)
		return -1;
	for (i = 0, p = text; i < count; i++) {
		nl = strchr(p, '\n');
		len = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if ((v[i] = strndup(p, len)) == NULL) {
			while (i > 0)
				free(v[--i]);
			free(v);
			return -1;
		}
		p += len + (nl != NULL);
	}
	*out = v;
	*n = count;
	return 0;
}

/* Fill t from the current row of a "SELECT TYPE_COLUMNS" statement. */
static int
type_from_row(struct store *st, sqlite3_stmt *s, struct store_type *t,
    struct cb_error *err)
{
	const char	*uuid = col_text(s, 0), *ident = col_text(s, 1);
	const char	*storage = col_text(s, 4);

	memset(t, 0, sizeof(*t));
	if (strlen(uuid) > STORE_UUID_LEN || strlen(ident) > STORE_IDENT_MAX)
		return cb_error_set(err, CB_EINTERNAL,
		    "database %s holds a malformed credential type", st->path);
	memcpy(t->uuid, uuid, strlen(uuid) + 1);
	memcpy(t->ident, ident, strlen(ident) + 1);
	t->storage = strcmp(storage, "vault") == 0 ? STORE_VAULT : STORE_DB;
	t->created_at = sqlite3_column_int64(s, 6);
	t->updated_at = sqlite3_column_int64(s, 7);
	t->generation = sqlite3_column_int64(s, 8);
	if (strlen(col_text(s, 9)) > STORE_IDENT_MAX) {
		memset(t, 0, sizeof(*t));
		return cb_error_set(err, CB_EINTERNAL,
		    "database %s holds a malformed credential type", st->path);
	}
	snprintf(t->default_account, sizeof(t->default_account), "%s",
	    col_text(s, 9));
	if ((sqlite3_column_type(s, 10) != SQLITE_NULL &&
	    (t->default_sealed = col_dup(s, 10)) == NULL) ||
	    (sqlite3_column_type(s, 11) != SQLITE_NULL &&
	    (t->ca_file = col_dup(s, 11)) == NULL) ||
	    (t->name = col_dup(s, 2)) == NULL ||
	    (t->description = col_dup(s, 3)) == NULL ||
	    sqlite_dest_split(col_text(s, 5), &t->destinations,
	    &t->ndestinations) == -1) {
		store_type_free(t);
		return store_nomem(err);
	}
	return 0;
}

/* Insert a new type; a taken ident (or uuid) is -CB_ECONFLICT. */
int
store_type_create(struct store *st, const struct store_type *t,
    struct cb_error *err)
{
	sqlite3_stmt	*s = store_write_stmt(st, STMT_TYPE_INSERT);
	char		*dests = NULL;
	int		 rc, ret;

	if (!ids_uuid_valid(t->uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	if (!ids_type_ident_valid(t->ident))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type ident (must match "
		    "[A-Za-z][A-Za-z0-9_.-]{0,63} and not be a uuid)");
	if ((ret = type_check_fields(t, err)) != 0 ||
	    (ret = sqlite_dest_join(t, &dests, err)) != 0)
		return ret;

	if ((rc = bind_text(s, 1, t->uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, t->ident)) != SQLITE_OK ||
	    (rc = bind_text(s, 3, t->name)) != SQLITE_OK ||
	    (rc = bind_text(s, 4, t->description != NULL ? t->description :
	    "")) != SQLITE_OK ||
	    (rc = bind_text(s, 5, store_kind_names[t->storage])) != SQLITE_OK ||
	    (rc = bind_text(s, 6, dests)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 7, t->created_at)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 8, t->updated_at)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 9, 0)) != SQLITE_OK ||
	    (rc = t->ca_file != NULL ? bind_text(s, 10, t->ca_file) :
	    sqlite3_bind_null(s, 10)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "create type", err);
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_CONSTRAINT_UNIQUE)
		ret = cb_error_set(err, CB_ECONFLICT,
		    "credential type '%s' already exists", t->ident);
	else if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		ret = cb_error_set(err, CB_ECONFLICT,
		    "credential type uuid %s already exists", t->uuid);
	else if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "create type", err);
	else
		store_types_insert(st, t);
done:
	stmt_done(s);
	free(dests);
	return ret;
}

/* Copy src into dst with strings of its own. */
static int
type_copy(struct store_type *dst, const struct store_type *src,
    struct cb_error *err)
{
	size_t	i;

	*dst = *src;
	dst->name = dst->description = NULL;
	dst->destinations = NULL;
	dst->default_sealed = NULL;
	dst->ca_file = NULL;
	if ((src->default_sealed != NULL &&
	    (dst->default_sealed = strdup(src->default_sealed)) == NULL) ||
	    (src->ca_file != NULL &&
	    (dst->ca_file = strdup(src->ca_file)) == NULL) ||
	    (dst->name = strdup(src->name)) == NULL ||
	    (dst->description = strdup(src->description != NULL ?
	    src->description : "")) == NULL ||
	    (dst->destinations = calloc(src->ndestinations + 1,
	    sizeof(char *))) == NULL)
		goto nomem;
	for (i = 0; i < src->ndestinations; i++)
		if ((dst->destinations[i] = strdup(src->destinations[i])) ==
		    NULL)
			goto nomem;
	return 0;
nomem:
	store_type_free(dst);
	return store_nomem(err);
}

static int
type_cmp_uuid(const void *a, const void *b)
{
	const struct type_ent *const *x = a, *const *y = b;

	return strcmp((*x)->t.uuid, (*y)->t.uuid);
}

/*
 * Let go of one reference to a cached entry: the cache's own when it
 * takes the entry out, or a borrow's (store_type_release).  The last one
 * frees it.
 */
static void
type_ent_unref(struct type_ent *e)
{
	if (--e->refs > 0)
		return;
	store_type_free(&e->t);
	free(e);
}

/* Forget the cached types; the next lookup reads the table again. */
static void
store_types_drop(struct store *st)
{
	size_t	i;

	for (i = 0; i < st->ntypes; i++)
		type_ent_unref(st->by_ident[i]);
	free(st->by_ident);
	free(st->by_uuid);
	st->by_ident = st->by_uuid = NULL;
	st->ntypes = st->captypes = 0;
	st->types_ok = false;
}

static int	store_type_list_db(struct store *, struct store_type **,
		    size_t *, struct cb_error *);

/* Make room for one more cached type; -1 when out of memory. */
static int
store_types_grow(struct store *st, size_t want)
{
	struct type_ent	**a, **b;
	size_t		  cap;

	if (want <= st->captypes)
		return 0;
	cap = want < 16 ? 16 : want + want / 2;
	if ((a = reallocarray(st->by_ident, cap, sizeof(*a))) == NULL)
		return -1;
	st->by_ident = a;
	if ((b = reallocarray(st->by_uuid, cap, sizeof(*b))) == NULL)
		return -1;
	st->by_uuid = b;
	st->captypes = cap;
	return 0;
}

/* Load the types into memory unless they are there already. */
static int
store_types_load(struct store *st, struct cb_error *err)
{
	struct store_type	*v = NULL;
	size_t			 n = 0, i;
	int			 ret;

	if (st->types_ok)
		return 0;
	store_types_drop(st);
	if ((ret = store_type_list_db(st, &v, &n, err)) != 0)
		return ret;
	st->type_loads++;
	if (store_types_grow(st, n + 1) == -1) {
		store_type_list_free(v, n);
		store_types_drop(st);
		return store_nomem(err);
	}
	for (i = 0; i < n; i++) {
		if ((st->by_ident[i] = malloc(sizeof(**st->by_ident))) ==
		    NULL) {
			store_type_list_free(v + i, n - i);
			free(v);
			store_types_drop(st);
			return store_nomem(err);
		}
		st->by_ident[i]->t = v[i];	/* takes the strings */
		st->by_ident[i]->refs = 1;
		memset(&v[i], 0, sizeof(v[i]));
		st->by_uuid[i] = st->by_ident[i];
		st->ntypes++;
	}
	free(v);
	qsort(st->by_uuid, st->ntypes, sizeof(*st->by_uuid), type_cmp_uuid);
	st->types_ok = true;
	return 0;
}

/*
 * Binary search of the cache by uuid or ident: true when found.  *at is
 * where ref is, or where it would be inserted.
 */
static bool
store_types_search(const struct store *st, const char *ref, bool by_uuid,
    size_t *at)
{
	size_t	lo = 0, hi = st->ntypes, mid;
	int	c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(ref, by_uuid ? st->by_uuid[mid]->t.uuid :
		    st->by_ident[mid]->t.ident);
		if (c == 0) {
			*at = mid;
			return true;
		}
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	*at = lo;
	return false;
}

/* The cached type whose uuid or ident is ref, or NULL. */
static const struct store_type *
store_types_find(struct store *st, const char *ref, bool by_uuid)
{
	size_t	at;

	if (!store_types_search(st, ref, by_uuid, &at))
		return NULL;
	return by_uuid ? &st->by_uuid[at]->t : &st->by_ident[at]->t;
}

/*
 * The entry by_uuid[u], about to be changed in place, held by the cache
 * alone: when a call still borrows it, a copy takes its place in both
 * arrays and the borrower keeps the old one unchanged.  False (the cache
 * left as it was) when out of memory.
 */
static bool
store_types_own(struct store *st, size_t u)
{
	struct type_ent	*e = st->by_uuid[u], *c;
	struct cb_error	 err;
	size_t		 i;

	if (e->refs == 1)
		return true;
	if (!store_types_search(st, e->t.ident, false, &i) ||
	    (c = calloc(1, sizeof(*c))) == NULL)
		return false;
	if (type_copy(&c->t, &e->t, &err) != 0) {
		free(c);
		return false;
	}
	c->pos = e->pos;
	c->refs = 1;
	st->by_uuid[u] = st->by_ident[i] = c;
	type_ent_unref(e);
	return true;
}

/* A committed type.create: insert a copy of t into the cache. */
static void
store_types_insert(struct store *st, const struct store_type *t)
{
	struct type_ent	*e;
	struct cb_error	 err;
	size_t		 i, u;

	if (!st->types_ok)
		return;
	if (store_types_search(st, t->ident, false, &i) ||
	    store_types_search(st, t->uuid, true, &u) ||
	    store_types_grow(st, st->ntypes + 1) == -1 ||
	    (e = calloc(1, sizeof(*e))) == NULL) {
		store_types_drop(st);
		return;
	}
	if (type_copy(&e->t, t, &err) != 0) {
		free(e);
		store_types_drop(st);
		return;
	}
	e->refs = 1;
	e->t.generation = 0;
	e->t.default_account[0] = '\0';
	free(e->t.default_sealed);
	e->t.default_sealed = NULL;
	memmove(&st->by_ident[i + 1], &st->by_ident[i],
	    (st->ntypes - i) * sizeof(*st->by_ident));
	st->by_ident[i] = e;
	memmove(&st->by_uuid[u + 1], &st->by_uuid[u],
	    (st->ntypes - u) * sizeof(*st->by_uuid));
	st->by_uuid[u] = e;
	st->ntypes++;
}

/*
 * A committed type.update: the mutable fields of t and the generation
 * replace the cached ones; uuid, ident and created_at stay.
 */
static void
store_types_replace(struct store *st, const struct store_type *t,
    int64_t generation)
{
	struct store_type	 c;
	struct cb_error		 err;
	size_t			 u;

	if (!st->types_ok)
		return;
	if (!store_types_search(st, t->uuid, true, &u) ||
	    !store_types_own(st, u) || type_copy(&c, t, &err) != 0) {
		store_types_drop(st);
		return;
	}
	memcpy(c.ident, st->by_uuid[u]->t.ident, sizeof(c.ident));
	c.created_at = st->by_uuid[u]->t.created_at;
	c.generation = generation;
	/* The default is set only by store_type_set_default. */
	memcpy(c.default_account, st->by_uuid[u]->t.default_account,
	    sizeof(c.default_account));
	free(c.default_sealed);
	c.default_sealed = st->by_uuid[u]->t.default_sealed;
	st->by_uuid[u]->t.default_sealed = NULL;
	store_type_free(&st->by_uuid[u]->t);
	st->by_uuid[u]->t = c;
}

/* A committed type.delete: take the type out of the cache. */
static void
store_types_remove(struct store *st, const char *uuid)
{
	struct type_ent	*e;
	size_t		 i, u;

	if (!st->types_ok)
		return;
	if (!store_types_search(st, uuid, true, &u)) {
		store_types_drop(st);
		return;
	}
	e = st->by_uuid[u];
	if (!store_types_search(st, e->t.ident, false, &i)) {
		store_types_drop(st);
		return;
	}
	st->ntypes--;
	memmove(&st->by_ident[i], &st->by_ident[i + 1],
	    (st->ntypes - i) * sizeof(*st->by_ident));
	memmove(&st->by_uuid[u], &st->by_uuid[u + 1],
	    (st->ntypes - u) * sizeof(*st->by_uuid));
	type_ent_unref(e);
}

uint64_t
store_type_cache_loads(const struct store *st)
{
	return st->type_loads;
}

/* Put t (taken, strings and all) into the cache; false when it cannot. */
static bool
store_types_put(struct store *st, struct store_type *t)
{
	struct type_ent	*e;
	size_t		 i, u;

	if (store_types_search(st, t->ident, false, &i) ||
	    store_types_search(st, t->uuid, true, &u) ||
	    store_types_grow(st, st->ntypes + 1) == -1 ||
	    (e = calloc(1, sizeof(*e))) == NULL)
		return false;
	e->refs = 1;
	e->t = *t;
	memset(t, 0, sizeof(*t));
	memmove(&st->by_ident[i + 1], &st->by_ident[i],
	    (st->ntypes - i) * sizeof(*st->by_ident));
	st->by_ident[i] = e;
	memmove(&st->by_uuid[u + 1], &st->by_uuid[u],
	    (st->ntypes - u) * sizeof(*st->by_uuid));
	st->by_uuid[u] = e;
	st->ntypes++;
	return true;
}

/*
 * Another connection (the writer's) has committed a write of type uuid:
 * read its row again into this connection's cache, where it is inserted,
 * replaced or removed.  Whatever fails drops the cache, which the next
 * lookup then reads again from the table.
 */
void
store_type_cache_sync(struct store *st, const char *uuid)
{
	sqlite3_stmt		*s = st->stmt[STMT_TYPE_GET];
	struct store_type	 t;
	struct cb_error		 err;
	size_t			 u;
	bool			 cached;
	int			 rc;

	if (!st->types_ok)
		return;
	store_release(st);	/* see what was committed */
	memset(&t, 0, sizeof(t));
	if (!ids_uuid_valid(uuid) || bind_text(s, 1, uuid) != SQLITE_OK) {
		stmt_done(s);
		store_types_drop(st);
		return;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW && type_from_row(st, s, &t, &err) != 0)
		rc = SQLITE_ERROR;
	stmt_done(s);
	cached = store_types_search(st, uuid, true, &u);
	if (rc == SQLITE_DONE) {
		if (cached)
			store_types_remove(st, uuid);
		return;
	}
	if (rc != SQLITE_ROW) {
		store_types_drop(st);
		return;
	}
	if (cached && strcmp(st->by_uuid[u]->t.ident, t.ident) == 0) {
		if (!store_types_own(st, u)) {
			store_type_free(&t);
			store_types_drop(st);
			return;
		}
		store_type_free(&st->by_uuid[u]->t);
		st->by_uuid[u]->t = t;
		return;
	}
	if (cached)
		store_types_remove(st, uuid);
	if (!store_types_put(st, &t)) {
		store_type_free(&t);
		store_types_drop(st);
	}
}

void
store_type_cache_drop(struct store *st)
{
	store_types_drop(st);
}

/* Look a type up by uuid (lower-case) or else by ident: a copy. */
int
store_type_get(struct store *st, const char *ref, struct store_type *out,
    struct cb_error *err)
{
	const struct store_type	*t;
	int			 ret;

	memset(out, 0, sizeof(*out));
	if ((ret = store_type_borrow(st, ref, &t, err)) != 0)
		return ret;
	ret = type_copy(out, t, err);
	store_type_release(t);
	return ret;
}

/*
 * The cached entry itself, not a copy.  Safe by construction: the borrow
 * counts as a reference, and whatever the cache does to the entry before
 * store_type_release (a drop, a reload, a sync, an update, a delete) only
 * lets go of the cache's own reference or puts a copy in its place, so
 * *out stays valid and unchanged for as long as it is borrowed.
 */
int
store_type_borrow(struct store *st, const char *ref,
    const struct store_type **out, struct cb_error *err)
{
	bool	by_uuid;
	size_t	at;
	int	ret;

	*out = NULL;
	if (ids_uuid_valid(ref))
		by_uuid = true;
	else if (ids_type_ident_valid(ref))
		by_uuid = false;
	else
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type reference: expected an ident "
		    "([A-Za-z][A-Za-z0-9_.-]{0,63}) or a lower-case uuid");
	if ((ret = store_types_load(st, err)) != 0)
		return ret;
	if (!store_types_search(st, ref, by_uuid, &at))
		return cb_error_set(err, CB_ENOTFOUND,
		    "credential type '%s' not found", ref);
	if (by_uuid) {
		st->by_uuid[at]->refs++;
		*out = &st->by_uuid[at]->t;
	} else {
		st->by_ident[at]->refs++;
		*out = &st->by_ident[at]->t;
	}
	return 0;
}

void
store_type_release(const struct store_type *t)
{
	if (t != NULL)
		type_ent_unref((struct type_ent *)((char *)t -
		    offsetof(struct type_ent, t)));
}

/* All types ordered by ident. */
int
store_type_list(struct store *st, struct store_type **out, size_t *n,
    struct cb_error *err)
{
	struct store_type	*v;
	size_t			 i;
	int			 ret;

	*out = NULL;
	*n = 0;
	if ((ret = store_types_load(st, err)) != 0)
		return ret;
	if ((v = calloc(st->ntypes + 1, sizeof(*v))) == NULL)
		return store_nomem(err);
	for (i = 0; i < st->ntypes; i++)
		if ((ret = type_copy(&v[i], &st->by_ident[i]->t, err)) != 0) {
			store_type_list_free(v, i);
			return ret;
		}
	*out = v;
	*n = st->ntypes;
	return 0;
}

/* All types ordered by ident, from the table. */
static int
store_type_list_db(struct store *st, struct store_type **out, size_t *n,
    struct cb_error *err)
{
	sqlite3_stmt		*s = st->stmt[STMT_TYPE_LIST];
	struct store_type	*v = NULL, *nv;
	size_t			 len = 0, cap = 0;
	int			 rc, ret = 0;

	*out = NULL;
	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				ret = store_nomem(err);
				goto done;
			}
			v = nv;
		}
		if ((ret = type_from_row(st, s, &v[len], err)) != 0)
			goto done;
		len++;
	}
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "list types", err);
done:
	stmt_done(s);
	if (ret != 0) {
		store_type_list_free(v, len);
		return ret;
	}
	*out = v;
	*n = len;
	return 0;
}

/* Run a statement deleting by type uuid (?1); *n (if not NULL) rows. */
static int
store_by_type(struct store *st, enum store_stmt which, const char *type_uuid,
    int64_t *n, const char *what, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[which];
	int		 rc, ret = 0;

	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, what, err);
	else if (n != NULL)
		*n = sqlite3_changes(st->db);
	stmt_done(s);
	return ret;
}

/*
 * Inside a transaction: delete the users' and the accounts' values of a
 * type; *n (if not NULL) counts both.
 */
static int
store_clear_values(struct store *st, const char *type_uuid, int64_t *n,
    const char *what, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_VALUE_CLEAR];
	int64_t		 users = 0, accounts = 0;
	int		 rc, ret = 0;

	if ((rc = bind_uuid(s, 1, type_uuid, st->ukey[1])) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, what, err);
	else
		users = sqlite3_changes(st->db);
	stmt_done(s);
	if (ret != 0 ||
	    (ret = store_by_type(st, STMT_ACCOUNT_CLEAR, type_uuid,
	    &accounts, what, err)) != 0)
		return ret;
	if (n != NULL)
		*n = users + accounts;
	return 0;
}

/* Replace the mutable fields of type t->uuid; uuid, ident, created_at stay. */
int
store_type_update(struct store *st, const struct store_type *t,
    struct cb_error *err)
{
	return store_type_update_count(st, t, NULL, err);
}

/*
 * The same, and on a change of storage: count the generation up and
 * delete the type's db values, in one transaction with the update, so
 * that no value written before the change can be served after it.
 */
int
store_type_update_count(struct store *st, const struct store_type *t,
    int64_t *removed, struct cb_error *err)
{
	const struct store_type	*cur;
	sqlite3_stmt		*s;
	char			*dests = NULL;
	int64_t			 generation, n = 0;
	bool			 moved, began = false;
	int			 rc, ret;

	if (removed != NULL)
		*removed = 0;
	if (!ids_uuid_valid(t->uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	if ((ret = type_check_fields(t, err)) != 0 ||
	    (ret = sqlite_dest_join(t, &dests, err)) != 0)
		return ret;
	if ((ret = store_types_load(st, err)) != 0)
		goto done;
	if ((cur = store_types_find(st, t->uuid, true)) == NULL) {
		ret = cb_error_set(err, CB_ENOTFOUND,
		    "credential type '%s' not found", t->uuid);
		goto done;
	}
	moved = cur->storage != t->storage;
	generation = cur->generation + (moved ? 1 : 0);
	if ((ret = store_begin(st, err)) != 0)
		goto done;
	began = true;

	s = st->stmt[STMT_TYPE_UPDATE];
	if ((rc = bind_text(s, 1, t->uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, t->name)) != SQLITE_OK ||
	    (rc = bind_text(s, 3, t->description != NULL ? t->description :
	    "")) != SQLITE_OK ||
	    (rc = bind_text(s, 4, store_kind_names[t->storage])) != SQLITE_OK ||
	    (rc = bind_text(s, 5, dests)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 6, t->updated_at)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 7, generation)) != SQLITE_OK ||
	    (rc = t->ca_file != NULL ? bind_text(s, 8, t->ca_file) :
	    sqlite3_bind_null(s, 8)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, "update type", err);
	else if (sqlite3_changes(st->db) == 0)
		ret = cb_error_set(err, CB_ENOTFOUND,
		    "credential type '%s' not found", t->uuid);
	stmt_done(s);
	if (ret != 0 || !moved)
		goto commit;

	/*
	 * Users' and accounts' values alike; links and the default stay
	 * (they are names, and resolve again once values are set).
	 */
	ret = store_clear_values(st, t->uuid, &n,
	    "delete values of the old storage", err);
commit:
	if (ret == 0 && (ret = store_commit(st, err)) == 0) {
		store_types_replace(st, t, generation);
		if (removed != NULL)
			*removed = n;
	}
done:
	if (ret != 0 && began) {
		store_rollback(st);
		store_types_drop(st);
	}
	free(dests);
	return ret;
}

/*
 * Delete a type and its db values in one transaction.  The values are
 * deleted explicitly as well as by the foreign key's ON DELETE CASCADE, so
 * the outcome does not hang on a pragma.
 */
int
store_type_delete(struct store *st, const char *uuid, struct cb_error *err)
{
	sqlite3_stmt	*s;
	int		 rc, ret;

	if (!ids_uuid_valid(uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	if ((ret = store_begin(st, err)) != 0)
		return ret;

	if ((ret = store_clear_values(st, uuid, NULL, "delete type values",
	    err)) != 0 ||
	    (ret = store_by_type(st, STMT_LINK_CLEAR, uuid, NULL,
	    "delete type links", err)) != 0)
		goto done;

	s = st->stmt[STMT_TYPE_DELETE];
	if ((rc = bind_text(s, 1, uuid)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, "delete type", err);
	else if (sqlite3_changes(st->db) == 0)
		ret = cb_error_set(err, CB_ENOTFOUND,
		    "credential type '%s' not found", uuid);
	stmt_done(s);
	if (ret != 0)
		goto done;

	if ((ret = store_commit(st, err)) == 0)
		store_types_remove(st, uuid);
done:
	if (ret != 0) {
		store_rollback(st);
		if (ret != -CB_ENOTFOUND)
			store_types_drop(st);
	}
	return ret;
}

/* Free the strings of one type and zero it. */
void
store_type_free(struct store_type *t)
{
	size_t	i;

	if (t == NULL)
		return;
	free(t->name);
	free(t->description);
	free(t->default_sealed);
	free(t->ca_file);
	if (t->destinations != NULL) {
		for (i = 0; t->destinations[i] != NULL; i++)
			free(t->destinations[i]);
		free(t->destinations);
	}
	memset(t, 0, sizeof(*t));
}

/* Free an array from store_type_list(). */
void
store_type_list_free(struct store_type *v, size_t n)
{
	size_t	i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		store_type_free(&v[i]);
	free(v);
}

/* Check a (type uuid, user uuid) pair given by a caller. */
static int
value_check_ids(const char *type_uuid, const char *user_uuid,
    struct cb_error *err)
{
	if (!ids_uuid_valid(type_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	if (!ids_uuid_valid(user_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid user id (must be a lower-case uuid)");
	return 0;
}

/* Set or replace the sealed value of (type, user); a missing type fails. */
int
store_value_set(struct store *st, const char *type_uuid,
    const char *user_uuid, const char *sealed, int64_t updated_at,
    struct cb_error *err)
{
	sqlite3_stmt	*s = store_write_stmt(st, STMT_VALUE_SET);
	int		 rc, ret;

	if ((ret = value_check_ids(type_uuid, user_uuid, err)) != 0)
		return ret;
	if (sealed == NULL || *sealed == '\0')
		return cb_error_set(err, CB_EINTERNAL, "empty sealed value");

	if ((rc = bind_uuid(s, 1, type_uuid, st->ukey[1])) != SQLITE_OK ||
	    (rc = bind_uuid(s, 2, user_uuid, st->ukey[2])) != SQLITE_OK ||
	    (rc = bind_text(s, 3, sealed)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 4, updated_at)) != SQLITE_OK ||
	    (rc = bind_text(s, 5, type_uuid)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "set value", err);
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "set value", err);
	else if (sqlite3_changes(st->db) == 0)
		ret = cb_error_set(err, CB_ENOTFOUND,
		    "credential type '%s' not found", type_uuid);
done:
	stmt_done(s);
	return ret;
}

/* The sealed value of (type, user), malloc'd; -CB_ENOTFOUND when unset. */
int
store_value_get(struct store *st, const char *type_uuid,
    const char *user_uuid, char **sealed, int64_t *updated_at,
    struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_VALUE_GET];
	int		 rc, ret = 0;

	*sealed = NULL;
	/* The ids are checked as they are packed, once (value_check_ids). */
	if (!ids_uuid_pack(type_uuid, st->ukey[1]))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	if (!ids_uuid_pack(user_uuid, st->ukey[2]))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid user id (must be a lower-case uuid)");

	store_hold_read(st);
	if ((rc = sqlite3_bind_blob(s, 1, st->ukey[1], IDS_UUID_BYTES,
	    SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(s, 2, st->ukey[2], IDS_UUID_BYTES,
	    SQLITE_STATIC)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "get value", err);
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if ((*sealed = col_dup(s, 0)) == NULL)
			ret = store_nomem(err);
		else if (updated_at != NULL)
			*updated_at = sqlite3_column_int64(s, 1);
	} else if (rc == SQLITE_DONE)
		ret = cb_error_set(err, CB_ENOTFOUND,
		    "no value set for credential type %s and user %s",
		    type_uuid, user_uuid);
	else
		ret = store_dberr(st, rc, "get value", err);
done:
	stmt_done(s);
	return ret;
}

/* Delete the value of (type, user); -CB_ENOTFOUND when unset. */
int
store_value_delete(struct store *st, const char *type_uuid,
    const char *user_uuid, struct cb_error *err)
{
	sqlite3_stmt	*s = store_write_stmt(st, STMT_VALUE_DELETE);
	int		 rc, ret;

	if ((ret = value_check_ids(type_uuid, user_uuid, err)) != 0)
		return ret;

	if ((rc = bind_uuid(s, 1, type_uuid, st->ukey[1])) != SQLITE_OK ||
	    (rc = bind_uuid(s, 2, user_uuid, st->ukey[2])) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, "delete value", err);
	else if (sqlite3_changes(st->db) == 0)
		ret = cb_error_set(err, CB_ENOTFOUND,
		    "no value set for credential type %s and user %s",
		    type_uuid, user_uuid);
	stmt_done(s);
	return ret;
}

/* Number of values stored for a type (0 for an unknown type). */
int
store_value_count(struct store *st, const char *type_uuid, int64_t *n,
    struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_VALUE_COUNT];
	int		 rc, ret = 0;

	*n = 0;
	if (!ids_uuid_valid(type_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK ||
	    (rc = bind_uuid(s, 2, type_uuid, st->ukey[2])) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_ROW)
		ret = store_dberr(st, rc, "count values", err);
	else
		*n = sqlite3_column_int64(s, 0);
	stmt_done(s);
	return ret;
}

/* Delete every value of a type; *removed is how many rows went. */
int
store_value_clear(struct store *st, const char *type_uuid,
    int64_t *removed, struct cb_error *err)
{
	int64_t	n = 0;
	int	ret;

	*removed = 0;
	if (!ids_uuid_valid(type_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	if ((ret = store_begin(st, err)) != 0)
		return ret;
	if ((ret = store_clear_values(st, type_uuid, &n, "clear values",
	    err)) != 0 || (ret = store_commit(st, err)) != 0) {
		store_rollback(st);
		return ret;
	}
	*removed = n;
	return 0;
}

/* The users holding a db value of a type, in uuid order. */
int
store_value_list_type(struct store *st, const char *type_uuid,
    char ***out, size_t *n, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_VALUE_LIST_TYPE];
	char		**v = NULL, **nv, uuid[STORE_UUID_LEN + 1];
	size_t		 len = 0, cap = 0, i;
	int		 rc, ret = 0;

	*out = NULL;
	*n = 0;
	store_hold_read(st);
	if ((rc = bind_uuid(s, 1, type_uuid, st->ukey[1])) != SQLITE_OK) {
		ret = store_dberr(st, rc, "list values", err);
		goto done;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len + 1 >= cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				ret = store_nomem(err);
				goto done;
			}
			v = nv;
		}
		if (!col_uuid(s, 0, uuid)) {
			ret = cb_error_set(err, CB_EINTERNAL,
			    "database %s holds a malformed value row",
			    st->path);
			goto done;
		}
		if ((v[len] = strdup(uuid)) == NULL) {
			ret = store_nomem(err);
			goto done;
		}
		v[++len] = NULL;
	}
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "list values", err);
done:
	stmt_done(s);
	if (ret != 0) {
		for (i = 0; i < len; i++)
			free(v[i]);
		free(v);
		return ret;
	}
	*out = v;
	*n = len;
	return 0;
}

/*
 * The values one user has, ordered by type uuid.  Rows of types whose
 * storage is now vault are left out: after a storage change the old db
 * values are not visible through the type (SPEC 4.3) until cleared.
 */
int
store_value_list_user(struct store *st, const char *user_uuid,
    struct store_status **out, size_t *n, struct cb_error *err)
{
	sqlite3_stmt		*s = st->stmt[STMT_VALUE_LIST_USER];
	struct store_status	*v = NULL, *nv;
	size_t			 len = 0, cap = 0;
	int			 rc, ret = 0;

	*out = NULL;
	*n = 0;
	if (!ids_uuid_valid(user_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid user id (must be a lower-case uuid)");
	store_hold_read(st);
	if ((rc = bind_uuid(s, 1, user_uuid, st->ukey[1])) != SQLITE_OK) {
		ret = store_dberr(st, rc, "list values", err);
		goto done;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				ret = store_nomem(err);
				goto done;
			}
			v = nv;
		}
		if (!col_uuid(s, 0, v[len].type_uuid)) {
			ret = cb_error_set(err, CB_EINTERNAL,
			    "database %s holds a malformed value row",
			    st->path);
			goto done;
		}
		v[len].updated_at = sqlite3_column_int64(s, 1);
		len++;
	}
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "list values", err);
done:
	stmt_done(s);
	if (ret != 0) {
		free(v);
		return ret;
	}
	*out = v;
	*n = len;
	return 0;
}

/*
 * Every type, in ident order, with the updated_at of this user's db value.
 * The user's values come in type uuid order and the cache has the types
 * in uuid order too, so one merge of the two lists finds them all: linear
 * in types plus values, however many of each there are.
 */
int
store_user_status(struct store *st, const char *user_uuid,
    struct store_type **types, int64_t **updated, size_t *n,
    struct cb_error *err)
{
	struct store_status	*vals = NULL;
	struct store_type	*v = NULL;
	struct type_ent		*e;
	int64_t			*u = NULL;
	size_t			 nvals = 0, nv = 0, i, j;
	int			 c, ret;

	*types = NULL;
	*updated = NULL;
	*n = 0;
	if ((ret = store_value_list_user(st, user_uuid, &vals, &nvals,
	    err)) != 0 ||
	    (ret = store_type_list(st, &v, &nv, err)) != 0)
		goto done;
	if ((u = calloc(nv + 1, sizeof(*u))) == NULL) {
		ret = store_nomem(err);
		goto done;
	}
	for (i = 0; i < st->ntypes; i++)
		st->by_ident[i]->pos = i;
	for (i = 0, j = 0; i < nvals && j < st->ntypes;) {
		e = st->by_uuid[j];
		if ((c = strcmp(vals[i].type_uuid, e->t.uuid)) < 0)
			i++;
		else if (c > 0)
			j++;
		else {
			if (e->t.storage == STORE_DB)
				u[e->pos] = vals[i].updated_at;
			i++;
			j++;
		}
	}
	*types = v;
	*updated = u;
	*n = nv;
	v = NULL;
	u = NULL;
done:
	store_type_list_free(v, nv);
	free(u);
	free(vals);
	return ret;
}

/* A setting's value, or *out NULL when absent. */
int
store_setting_get(struct store *st, const char *key, char **out,
    struct cb_error *err)
{
	if (key == NULL || *key == '\0') {
		*out = NULL;
		return cb_error_set(err, CB_EINTERNAL, "empty setting key");
	}
	return store_get_text(st, STMT_SETTING_GET, key, out, "read setting",
	    err);
}

/* Set a setting, or delete it when val is NULL (absent is not an error). */
int
store_setting_set(struct store *st, const char *key, const char *val,
    struct cb_error *err)
{
	sqlite3_stmt	*s;
	int		 rc, ret = 0;

	if (key == NULL || *key == '\0')
		return cb_error_set(err, CB_EINTERNAL, "empty setting key");
	s = store_write_stmt(st, val != NULL ? STMT_SETTING_SET :
	    STMT_SETTING_DELETE);
	if ((rc = bind_text(s, 1, key)) != SQLITE_OK ||
	    (val != NULL && (rc = bind_text(s, 2, val)) != SQLITE_OK) ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, "write setting", err);
	stmt_done(s);
	return ret;
}

/* A new random RFC 4122 version 4 uuid in lower-case text form. */
int
store_uuid_new(char out[STORE_UUID_LEN + 1])
{
	uint8_t	b[IDS_UUID_BYTES];

	out[0] = '\0';
	if (RAND_bytes(b, sizeof(b)) != 1)
		return -CB_EINTERNAL;
	b[6] = (b[6] & 0x0f) | 0x40;		/* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;		/* variant 10xx */
	ids_uuid_unpack(b, out);
	return 0;
}

/* A scan's cursor: "" (the start) sorts before every 16-byte key. */
static int
bind_scan_key(sqlite3_stmt *s, int idx, const char *uuid,
    uint8_t b[IDS_UUID_BYTES])
{
	if (*uuid == '\0')
		return sqlite3_bind_zeroblob(s, idx, 0);
	return bind_uuid(s, idx, uuid, b);
}

/* Up to limit values after (after_type, after_user), in key order. */
int
store_value_scan(struct store *st, const char *after_type,
    const char *after_user, size_t limit, struct store_row **out, size_t *n,
    struct cb_error *err)
{
	sqlite3_stmt		*s = st->stmt[STMT_VALUE_SCAN];
	struct store_row	*v;
	size_t			 len = 0;
	int			 rc, ret = 0;

	*out = NULL;
	*n = 0;
	if ((v = calloc(limit + 1, sizeof(*v))) == NULL)
		return store_nomem(err);
	if ((rc = bind_scan_key(s, 1, after_type, st->ukey[1])) != SQLITE_OK ||
	    (rc = bind_scan_key(s, 2, after_user, st->ukey[2])) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 3, (sqlite3_int64)limit)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "scan values", err);
		goto done;
	}
	while (len < limit && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (!col_uuid(s, 0, v[len].type_uuid) ||
		    !col_uuid(s, 1, v[len].user_uuid)) {
			ret = cb_error_set(err, CB_EINTERNAL, "database %s "
			    "holds a malformed value row", st->path);
			goto done;
		}
		if ((v[len].sealed = strdup(col_text(s, 2))) == NULL) {
			ret = store_nomem(err);
			goto done;
		}
		len++;
	}
	if (len < limit && rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "scan values", err);
done:
	stmt_done(s);
	if (ret != 0) {
		store_rows_free(v, len);
		return ret;
	}
	*out = v;
	*n = len;
	return 0;
}

void
store_rows_free(struct store_row *rows, size_t n)
{
	size_t	i;

	for (i = 0; rows != NULL && i < n; i++)
		free(rows[i].sealed);
	free(rows);
}

/*
 * Replace the sealed text of n rows (a row that was deleted meanwhile is
 * simply not updated) and set one setting, in one transaction: the rows
 * and the progress recorded in the setting commit together or not at all.
 */
int
store_value_reseal(struct store *st, const struct store_row *rows, size_t n,
    const char *key, const char *val, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_VALUE_RESEAL];
	size_t		 i;
	int		 rc, ret;

	if ((ret = store_begin(st, err)) != 0)
		return ret;
	for (i = 0; i < n; i++) {
		if ((rc = bind_uuid(s, 1, rows[i].type_uuid, st->ukey[1])) != SQLITE_OK ||
		    (rc = bind_uuid(s, 2, rows[i].user_uuid, st->ukey[2])) != SQLITE_OK ||
		    (rc = bind_text(s, 3, rows[i].sealed)) != SQLITE_OK ||
		    (rc = sqlite3_step(s)) != SQLITE_DONE) {
			ret = store_dberr(st, rc, "re-seal value", err);
			stmt_done(s);
			store_rollback(st);
			return ret;
		}
		stmt_done(s);
	}
	if (key != NULL && (ret = store_setting_set(st, key, val, err)) != 0) {
		store_rollback(st);
		return ret;
	}
	return store_commit(st, err);
}

/* Set the key check value and a setting in one transaction. */
int
store_kcv_set_with(struct store *st, const char *kcv, const char *key,
    const char *val, struct cb_error *err)
{
	int	ret;

	if ((ret = store_begin(st, err)) != 0)
		return ret;
	if ((ret = store_kcv_set(st, kcv, err)) != 0 ||
	    (ret = store_setting_set(st, key, val, err)) != 0) {
		store_rollback(st);
		return ret;
	}
	return store_commit(st, err);
}

/* Number of values stored, all types. */
int
store_value_count_all(struct store *st, int64_t *n, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_VALUE_COUNT_ALL];
	int		 rc, ret = 0;

	*n = 0;
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		*n = sqlite3_column_int64(s, 0);
	else
		ret = store_dberr(st, rc, "count values", err);
	stmt_done(s);
	if (ret != 0)
		return ret;
	s = st->stmt[STMT_ACCOUNT_COUNT_ALL];
	if ((rc = sqlite3_step(s)) == SQLITE_ROW)
		*n += sqlite3_column_int64(s, 0);
	else
		ret = store_dberr(st, rc, "count values", err);
	stmt_done(s);
	return ret;
}

/* One integer from a pragma or a count. */
static int
store_get_int(struct store *st, const char *sql, int64_t *out,
    struct cb_error *err)
{
	char	ans[32];
	int	ret;

	if ((ret = store_pragma(st, sql, ans, sizeof(ans), err)) != 0)
		return ret;
	*out = strtoll(ans, NULL, 10);
	return 0;
}

int
store_get_stats(struct store *st, struct store_stats *out,
    struct cb_error *err)
{
	int	ret;

	memset(out, 0, sizeof(*out));
	if ((ret = store_get_int(st, "PRAGMA page_size", &out->page_size,
	    err)) != 0 ||
	    (ret = store_get_int(st, "PRAGMA page_count", &out->pages,
	    err)) != 0 ||
	    (ret = store_get_int(st, "PRAGMA freelist_count",
	    &out->free_pages, err)) != 0 ||
	    (ret = store_get_int(st, "SELECT count(*) FROM types",
	    &out->types, err)) != 0)
		return ret;
	return 0;
}

/*
 * Key pairs and peer public keys.  The two classes share their code: each
 * has its statements, and a key pair also the counter of its versions in
 * the keypairs table.
 */
struct key_class {
	const char	*name;		/* in messages */
	enum store_stmt	 versions, sealed, list, del, reseal;
};

static const struct key_class key_classes[] = {
	[STORE_KEYPAIR] = { "key pair", STMT_KEYPAIR_VERSIONS,
	    STMT_KEYPAIR_SEALED, STMT_KEYPAIR_LIST, STMT_KEYPAIR_DELETE,
	    STMT_KEYPAIR_RESEAL },
	[STORE_PEERKEY] = { "peer key", STMT_PEERKEY_VERSIONS,
	    STMT_PEERKEY_SEALED, STMT_PEERKEY_LIST, STMT_PEERKEY_DELETE,
	    STMT_PEERKEY_RESEAL },
};

/* The class keyclass, or NULL (a caller's mistake, not a request's). */
static const struct key_class *
key_class(int keyclass, struct cb_error *err)
{
	if (keyclass != STORE_KEYPAIR && keyclass != STORE_PEERKEY) {
		cb_error_set(err, CB_EINTERNAL, "unknown key class %d",
		    keyclass);
		return NULL;
	}
	return &key_classes[keyclass];
}

/* Check an ident and a version (0 allowed only when zero_ok). */
static int
key_check(const struct key_class *kc, const char *ident, uint32_t version,
    bool zero_ok, struct cb_error *err)
{
	if (ident == NULL || !ids_ident_valid(ident))
		return cb_error_set(err, CB_EBADREQ, "invalid %s ident (must "
		    "match [a-z][a-z0-9_]{0,63})", kc->name);
	if ((version == 0 && !zero_ok) || version > INT32_MAX)
		return cb_error_set(err, CB_EBADREQ, "invalid %s version %lu "
		    "(must be 1 to %d)", kc->name, (unsigned long)version,
		    INT32_MAX);
	return 0;
}

/* A version read from the database, which must be 1..INT32_MAX. */
static int
key_col_version(struct store *st, sqlite3_stmt *s, int idx, uint32_t *out,
    struct cb_error *err)
{
	sqlite3_int64	v = sqlite3_column_int64(s, idx);

	*out = 0;
	if (v < 1 || v > INT32_MAX)
		return cb_error_set(err, CB_EINTERNAL,
		    "database %s holds a malformed key row", st->path);
	*out = (uint32_t)v;
	return 0;
}

/* "no key pair 'x'" or "key pair 'x' has no version 3". */
static int
key_notfound(const struct key_class *kc, const char *ident,
    uint32_t version, bool exists, struct cb_error *err)
{
	if (!exists || version == 0)
		return cb_error_set(err, CB_ENOTFOUND, "no %s '%s'", kc->name,
		    ident);
	return cb_error_set(err, CB_ENOTFOUND, "%s '%s' has no version %lu",
	    kc->name, ident, (unsigned long)version);
}

/*
 * The sealed text of version (0: the current one) of a key; *sealed NULL
 * and *got 0 when there is no such version.
 */
static int
key_sealed_row(struct store *st, const struct key_class *kc,
    const char *ident, uint32_t version, uint32_t *got, char **sealed,
    struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[kc->sealed];
	int		 rc, ret = 0;

	*got = 0;
	*sealed = NULL;
	if ((rc = bind_text(s, 1, ident)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, version)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "read key", err);
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if ((ret = key_col_version(st, s, 0, got, err)) != 0)
			goto done;
		if ((*sealed = col_dup(s, 1)) == NULL) {
			*got = 0;
			ret = store_nomem(err);
		}
	} else if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "read key", err);
done:
	stmt_done(s);
	return ret;
}

/* Whether ident has any version (the error, if any, in err). */
static int
key_exists(struct store *st, const struct key_class *kc, const char *ident,
    bool *exists, struct cb_error *err)
{
	uint32_t	 got;
	char		*sealed;
	int		 ret;

	ret = key_sealed_row(st, kc, ident, 0, &got, &sealed, err);
	*exists = sealed != NULL;
	free(sealed);
	return ret;
}

/* The counter of key pair ident inside a transaction: 1 when new. */
static int
keypair_next_row(struct store *st, const char *ident, uint32_t *version,
    struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_KEYPAIR_NEXT];
	sqlite3_int64	 v = 1;
	int		 rc, ret = 0;

	*version = 0;
	if ((rc = bind_text(s, 1, ident)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "read key pair", err);
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	else if (rc != SQLITE_DONE) {
		ret = store_dberr(st, rc, "read key pair", err);
		goto done;
	}
	if (v < 1)
		ret = cb_error_set(err, CB_EINTERNAL,
		    "database %s holds a malformed key row", st->path);
	else if (v > INT32_MAX)
		ret = cb_error_set(err, CB_ECONFLICT,
		    "key pair '%s' has used every version number; delete it "
		    "and create it again", ident);
	else
		*version = (uint32_t)v;
done:
	stmt_done(s);
	return ret;
}

int
store_keypair_next(struct store *st, const char *ident, uint32_t *version,
    struct cb_error *err)
{
	int	ret;

	*version = 0;
	if ((ret = key_check(&key_classes[STORE_KEYPAIR], ident, 1, false,
	    err)) != 0)
		return ret;
	return keypair_next_row(st, ident, version, err);
}

/*
 * Add version of key pair ident, which must be its counter's value, and
 * count the counter up, in one transaction: of two callers that were given
 * the same version, the second fails -CB_ECONFLICT and changes nothing.
 */
int
store_keypair_add(struct store *st, const char *ident, uint32_t version,
    int bits, const char *sealed, int64_t now, struct cb_error *err)
{
	sqlite3_stmt	*s;
	uint32_t	 next;
	int		 rc, ret;

	if ((ret = key_check(&key_classes[STORE_KEYPAIR], ident, version,
	    false, err)) != 0)
		return ret;
	if (sealed == NULL || *sealed == '\0')
		return cb_error_set(err, CB_EINTERNAL, "empty sealed key");
	if ((ret = store_begin(st, err)) != 0)
		return ret;
	if ((ret = keypair_next_row(st, ident, &next, err)) != 0)
		goto done;
	if (version != next) {
		ret = cb_error_set(err, CB_ECONFLICT, "key pair '%s' changed "
		    "meanwhile: its next version is %lu, not %lu; try again",
		    ident, (unsigned long)next, (unsigned long)version);
		goto done;
	}

	s = st->stmt[STMT_KEYPAIR_UPSERT];
	if ((rc = bind_text(s, 1, ident)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, (sqlite3_int64)version + 1)) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 3, now)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, "add key pair", err);
	stmt_done(s);
	if (ret != 0)
		goto done;

	s = st->stmt[STMT_KEYPAIR_INSERT];
	if ((rc = bind_text(s, 1, ident)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(s, 3, bits)) != SQLITE_OK ||
	    (rc = bind_text(s, 4, sealed)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 5, now)) != SQLITE_OK)
		ret = store_dberr(st, rc, "add key pair", err);
	else if ((rc = sqlite3_step(s)) == SQLITE_CONSTRAINT_PRIMARYKEY)
		ret = cb_error_set(err, CB_ECONFLICT,
		    "key pair '%s' already has version %lu", ident,
		    (unsigned long)version);
	else if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "add key pair", err);
	stmt_done(s);
	if (ret == 0)
		ret = store_commit(st, err);
done:
	if (ret != 0)
		store_rollback(st);
	return ret;
}

/* Add version of peer key ident; an existing version is -CB_ECONFLICT. */
int
store_peerkey_add(struct store *st, const char *ident, uint32_t version,
    int bits, const char *sealed, int64_t now, struct cb_error *err)
{
	sqlite3_stmt	*s = store_write_stmt(st, STMT_PEERKEY_INSERT);
	int		 rc, ret;

	if ((ret = key_check(&key_classes[STORE_PEERKEY], ident, version,
	    false, err)) != 0)
		return ret;
	if (sealed == NULL || *sealed == '\0')
		return cb_error_set(err, CB_EINTERNAL, "empty sealed key");
	if ((rc = bind_text(s, 1, ident)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, version)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(s, 3, bits)) != SQLITE_OK ||
	    (rc = bind_text(s, 4, sealed)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 5, now)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "add peer key", err);
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_CONSTRAINT_PRIMARYKEY)
		ret = cb_error_set(err, CB_ECONFLICT,
		    "peer key '%s' already has version %lu", ident,
		    (unsigned long)version);
	else if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "add peer key", err);
done:
	stmt_done(s);
	return ret;
}

/*
 * Append one version to a keyset.  Its created_at is the oldest version's
 * and its updated_at the newest's, by time: peer key versions may arrive
 * in any order.
 */
static int
keyset_push(struct store_keyset *k, size_t *cap, uint32_t version,
    int bits, int64_t created_at)
{
	struct store_keyver	*nv;

	if (k->nversions == *cap) {
		*cap = *cap == 0 ? 4 : *cap * 2;
		if ((nv = reallocarray(k->versions, *cap, sizeof(*nv))) ==
		    NULL)
			return -1;
		k->versions = nv;
	}
	nv = &k->versions[k->nversions++];
	nv->version = version;
	nv->bits = bits;
	nv->created_at = created_at;
	if (k->nversions == 1 || created_at < k->created_at)
		k->created_at = created_at;
	if (k->nversions == 1 || created_at > k->updated_at)
		k->updated_at = created_at;
	return 0;
}

int
store_key_get(struct store *st, int keyclass, const char *ident,
    struct store_keyset *out, struct cb_error *err)
{
	const struct key_class	*kc;
	sqlite3_stmt		*s;
	uint32_t		 version = 0;
	size_t			 cap = 0;
	int			 rc, ret;

	memset(out, 0, sizeof(*out));
	if ((kc = key_class(keyclass, err)) == NULL)
		return -CB_EINTERNAL;
	if ((ret = key_check(kc, ident, 1, false, err)) != 0)
		return ret;
	s = st->stmt[kc->versions];
	if ((rc = bind_text(s, 1, ident)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "read key", err);
		goto done;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((ret = key_col_version(st, s, 0, &version, err)) != 0)
			goto done;
		if (keyset_push(out, &cap, version, sqlite3_column_int(s, 1),
		    sqlite3_column_int64(s, 2)) != 0) {
			ret = store_nomem(err);
			goto done;
		}
	}
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "read key", err);
	else if (out->nversions == 0)
		ret = key_notfound(kc, ident, 0, false, err);
	else
		snprintf(out->ident, sizeof(out->ident), "%s", ident);
done:
	stmt_done(s);
	if (ret != 0)
		store_keyset_free(out);
	return ret;
}

int
store_key_sealed(struct store *st, int keyclass, const char *ident,
    uint32_t version, uint32_t *got, char **sealed, struct cb_error *err)
{
	const struct key_class	*kc;
	bool			 exists = false;
	int			 ret;

	*got = 0;
	*sealed = NULL;
	if ((kc = key_class(keyclass, err)) == NULL)
		return -CB_EINTERNAL;
	if ((ret = key_check(kc, ident, version, true, err)) != 0)
		return ret;
	if ((ret = key_sealed_row(st, kc, ident, version, got, sealed,
	    err)) != 0 || *sealed != NULL)
		return ret;
	if (version != 0 && (ret = key_exists(st, kc, ident, &exists,
	    err)) != 0)
		return ret;
	return key_notfound(kc, ident, version, exists, err);
}

int
store_key_list(struct store *st, int keyclass, struct store_keyset **out,
    size_t *n, struct cb_error *err)
{
	const struct key_class	*kc;
	struct store_keyset	*v = NULL, *nv, *k = NULL;
	sqlite3_stmt		*s;
	const char		*ident;
	uint32_t		 version = 0;
	size_t			 len = 0, cap = 0, vcap = 0;
	int			 rc, ret = 0;

	*out = NULL;
	*n = 0;
	if ((kc = key_class(keyclass, err)) == NULL)
		return -CB_EINTERNAL;
	s = st->stmt[kc->list];
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		ident = col_text(s, 0);
		if (strlen(ident) > STORE_IDENT_MAX ||
		    key_col_version(st, s, 1, &version, err) != 0) {
			ret = cb_error_set(err, CB_EINTERNAL,
			    "database %s holds a malformed key row", st->path);
			goto done;
		}
		if (k == NULL || strcmp(k->ident, ident) != 0) {
			if (len == cap) {
				cap = cap == 0 ? 8 : cap * 2;
				if ((nv = reallocarray(v, cap, sizeof(*v))) ==
				    NULL) {
					ret = store_nomem(err);
					goto done;
				}
				v = nv;
			}
			k = &v[len++];
			memset(k, 0, sizeof(*k));
			memcpy(k->ident, ident, strlen(ident) + 1);
			vcap = 0;
		}
		if (keyset_push(k, &vcap, version, sqlite3_column_int(s, 2),
		    sqlite3_column_int64(s, 3)) != 0) {
			ret = store_nomem(err);
			goto done;
		}
	}
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "list keys", err);
done:
	stmt_done(s);
	if (ret != 0) {
		store_keyset_list_free(v, len);
		return ret;
	}
	*out = v;
	*n = len;
	return 0;
}

/*
 * Delete one version or all, in one transaction with the key pair's row
 * (and counter) when no version is left.  The versions are deleted
 * explicitly rather than by the foreign key's cascade, so the outcome does
 * not hang on a pragma.
 */
int
store_key_delete(struct store *st, int keyclass, const char *ident,
    uint32_t version, int64_t *removed, struct cb_error *err)
{
	const struct key_class	*kc;
	sqlite3_stmt		*s;
	bool			 exists = false;
	int64_t			 n = 0;
	int			 rc, ret;

	if (removed != NULL)
		*removed = 0;
	if ((kc = key_class(keyclass, err)) == NULL)
		return -CB_EINTERNAL;
	if ((ret = key_check(kc, ident, version, true, err)) != 0)
		return ret;
	if ((ret = store_begin(st, err)) != 0)
		return ret;

	s = st->stmt[kc->del];
	if ((rc = bind_text(s, 1, ident)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 2, version)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, "delete key", err);
	else
		n = sqlite3_changes(st->db);
	stmt_done(s);
	if (ret != 0)
		goto done;
	if (n == 0) {
		if (version != 0 && (ret = key_exists(st, kc, ident, &exists,
		    err)) != 0)
			goto done;
		ret = key_notfound(kc, ident, version, exists, err);
		goto done;
	}

	if (keyclass == STORE_KEYPAIR) {
		s = st->stmt[STMT_KEYPAIR_DROP];
		if ((rc = bind_text(s, 1, ident)) != SQLITE_OK ||
		    (rc = sqlite3_step(s)) != SQLITE_DONE)
			ret = store_dberr(st, rc, "delete key pair", err);
		stmt_done(s);
		if (ret != 0)
			goto done;
	}
	if ((ret = store_commit(st, err)) == 0 && removed != NULL)
		*removed = n;
done:
	if (ret != 0)
		store_rollback(st);
	return ret;
}

void
store_keyset_free(struct store_keyset *k)
{
	if (k == NULL)
		return;
	free(k->versions);
	memset(k, 0, sizeof(*k));
}

void
store_keyset_list_free(struct store_keyset *v, size_t n)
{
	size_t	i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		store_keyset_free(&v[i]);
	free(v);
}

/* Every sealed key of both classes, by class, ident and version. */
int
store_key_scan(struct store *st, struct store_keyrow **out, size_t *n,
    struct cb_error *err)
{
	sqlite3_stmt		*s = st->stmt[STMT_KEY_SCAN];
	struct store_keyrow	*v = NULL, *nv, *r;
	const char		*ident;
	size_t			 len = 0, cap = 0;
	int			 rc, ret = 0;

	*out = NULL;
	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				ret = store_nomem(err);
				goto done;
			}
			v = nv;
		}
		r = &v[len];
		memset(r, 0, sizeof(*r));
		r->keyclass = sqlite3_column_int(s, 0);
		ident = col_text(s, 1);
		if (strlen(ident) > STORE_IDENT_MAX ||
		    key_col_version(st, s, 2, &r->version, err) != 0) {
			ret = cb_error_set(err, CB_EINTERNAL,
			    "database %s holds a malformed key row", st->path);
			goto done;
		}
		memcpy(r->ident, ident, strlen(ident) + 1);
		if ((r->sealed = col_dup(s, 3)) == NULL) {
			ret = store_nomem(err);
			goto done;
		}
		len++;
	}
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "scan keys", err);
done:
	stmt_done(s);
	if (ret != 0) {
		store_keyrows_free(v, len);
		return ret;
	}
	*out = v;
	*n = len;
	return 0;
}

/*
 * Replace the sealed text of every row whose sealed is not NULL, in one
 * transaction.  A row naming a version that does not exist fails the
 * whole call (-CB_ENOTFOUND) and changes nothing: rotation scans and
 * re-seals in one step of the loop, so a key cannot go in between.
 */
int
store_key_reseal(struct store *st, const struct store_keyrow *rows,
    size_t n, struct cb_error *err)
{
	const struct key_class	*kc;
	sqlite3_stmt		*s;
	size_t			 i;
	int			 rc, ret;

	if ((ret = store_begin(st, err)) != 0)
		return ret;
	for (i = 0; i < n; i++) {
		if (rows[i].sealed == NULL)
			continue;
		if ((kc = key_class(rows[i].keyclass, err)) == NULL) {
			ret = -CB_EINTERNAL;
			goto done;
		}
		if (*rows[i].sealed == '\0') {
			ret = cb_error_set(err, CB_EINTERNAL,
			    "empty sealed key");
			goto done;
		}
		s = st->stmt[kc->reseal];
		if ((rc = bind_text(s, 1, rows[i].ident)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(s, 2, rows[i].version)) !=
		    SQLITE_OK ||
		    (rc = bind_text(s, 3, rows[i].sealed)) != SQLITE_OK ||
		    (rc = sqlite3_step(s)) != SQLITE_DONE)
			ret = store_dberr(st, rc, "re-seal key", err);
		else if (sqlite3_changes(st->db) == 0)
			ret = cb_error_set(err, CB_ENOTFOUND,
			    "%s '%s' has no version %lu", kc->name,
			    rows[i].ident, (unsigned long)rows[i].version);
		stmt_done(s);
		if (ret != 0)
			goto done;
	}
	ret = store_commit(st, err);
done:
	if (ret != 0)
		store_rollback(st);
	return ret;
}

void
store_keyrows_free(struct store_keyrow *rows, size_t n)
{
	size_t	i;

	for (i = 0; rows != NULL && i < n; i++)
		free(rows[i].sealed);
	free(rows);
}

/*
 * Technical accounts (SPEC 10): accounts' values of db-stored types, and
 * the links and defaults of every type.
 */

/* Check a (type uuid, account name) pair given by a caller. */
static int
account_check_ids(const char *type_uuid, const char *name,
    struct cb_error *err)
{
	if (!ids_uuid_valid(type_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	if (name == NULL || !ids_ident_valid(name))
		return cb_error_set(err, CB_EBADREQ, "invalid account name "
		    "(must match [a-z][a-z0-9_]{0,63})");
	return 0;
}

int
store_account_set(struct store *st, const char *type_uuid, const char *name,
    const char *sealed, int64_t updated_at, struct cb_error *err)
{
	sqlite3_stmt	*s = store_write_stmt(st, STMT_ACCOUNT_SET);
	int		 rc, ret;

	if ((ret = account_check_ids(type_uuid, name, err)) != 0)
		return ret;
	if (sealed == NULL || *sealed == '\0')
		return cb_error_set(err, CB_EINTERNAL, "empty sealed value");
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, name)) != SQLITE_OK ||
	    (rc = bind_text(s, 3, sealed)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 4, updated_at)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "set account value", err);
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		ret = cb_error_set(err, CB_ENOTFOUND,
		    "credential type '%s' not found", type_uuid);
	else if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "set account value", err);
done:
	stmt_done(s);
	return ret;
}

int
store_account_get(struct store *st, const char *type_uuid, const char *name,
    char **sealed, int64_t *updated_at, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_ACCOUNT_GET];
	int		 rc, ret;

	*sealed = NULL;
	if ((ret = account_check_ids(type_uuid, name, err)) != 0)
		return ret;
	store_hold_read(st);
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, name)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "get account value", err);
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if ((*sealed = col_dup(s, 0)) == NULL)
			ret = store_nomem(err);
		else if (updated_at != NULL)
			*updated_at = sqlite3_column_int64(s, 1);
	} else if (rc == SQLITE_DONE)
		ret = cb_error_set(err, CB_ENOTFOUND,
		    "no value set for credential type %s and account '%s'",
		    type_uuid, name);
	else
		ret = store_dberr(st, rc, "get account value", err);
done:
	stmt_done(s);
	return ret;
}

int
store_account_delete(struct store *st, const char *type_uuid,
    const char *name, struct cb_error *err)
{
	sqlite3_stmt	*s = store_write_stmt(st, STMT_ACCOUNT_DELETE);
	int		 rc, ret;

	if ((ret = account_check_ids(type_uuid, name, err)) != 0)
		return ret;
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, name)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, "delete account value", err);
	else if (sqlite3_changes(st->db) == 0)
		ret = cb_error_set(err, CB_ENOTFOUND,
		    "no value set for credential type %s and account '%s'",
		    type_uuid, name);
	stmt_done(s);
	return ret;
}

int
store_account_list(struct store *st, const char *type_uuid, char ***names,
    int64_t **updated, size_t *n, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_ACCOUNT_LIST];
	char		**v = NULL, **nv;
	int64_t		*u = NULL, *nu;
	size_t		 len = 0, cap = 0;
	int		 rc, ret = 0;

	*names = NULL;
	*updated = NULL;
	*n = 0;
	if (!ids_uuid_valid(type_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	store_hold_read(st);
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "list accounts", err);
		goto done;
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len + 1 >= cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				ret = store_nomem(err);
				goto done;
			}
			v = nv;
			if ((nu = reallocarray(u, cap, sizeof(*u))) == NULL) {
				ret = store_nomem(err);
				goto done;
			}
			u = nu;
		}
		if ((v[len] = col_dup(s, 0)) == NULL) {
			ret = store_nomem(err);
			goto done;
		}
		u[len] = sqlite3_column_int64(s, 1);
		v[++len] = NULL;
	}
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "list accounts", err);
done:
	stmt_done(s);
	if (ret != 0) {
		store_account_list_free(v, u, len);
		return ret;
	}
	*names = v;
	*updated = u;
	*n = len;
	return 0;
}

void
store_account_list_free(char **names, int64_t *updated, size_t n)
{
	size_t	i;

	for (i = 0; names != NULL && i < n; i++)
		free(names[i]);
	free(names);
	free(updated);
}

int
store_account_scan(struct store *st, struct store_accountrow **out,
    size_t *n, struct cb_error *err)
{
	sqlite3_stmt		*s = st->stmt[STMT_ACCOUNT_SCAN];
	struct store_accountrow	*v = NULL, *nv;
	const char		*t, *name;
	size_t			 len = 0, cap = 0;
	int			 rc, ret = 0;

	*out = NULL;
	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				ret = store_nomem(err);
				goto done;
			}
			v = nv;
		}
		t = col_text(s, 0);
		name = col_text(s, 1);
		if (strlen(t) != STORE_UUID_LEN ||
		    strlen(name) > STORE_IDENT_MAX) {
			ret = cb_error_set(err, CB_EINTERNAL, "database %s "
			    "holds a malformed account row", st->path);
			goto done;
		}
		memset(&v[len], 0, sizeof(v[len]));
		memcpy(v[len].type_uuid, t, STORE_UUID_LEN + 1);
		memcpy(v[len].name, name, strlen(name) + 1);
		if ((v[len].sealed = col_dup(s, 2)) == NULL) {
			ret = store_nomem(err);
			goto done;
		}
		len++;
	}
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "scan accounts", err);
done:
	stmt_done(s);
	if (ret != 0) {
		store_accountrows_free(v, len);
		return ret;
	}
	*out = v;
	*n = len;
	return 0;
}

void
store_accountrows_free(struct store_accountrow *rows, size_t n)
{
	size_t	i;

	for (i = 0; rows != NULL && i < n; i++)
		free(rows[i].sealed);
	free(rows);
}

/*
 * The same as store_value_reseal, with accounts' rows too: a row deleted
 * meanwhile is simply not updated.
 */
int
store_value_reseal_all(struct store *st, const struct store_row *rows,
    size_t n, const struct store_accountrow *arows, size_t na,
    const char *key, const char *val, struct cb_error *err)
{
	sqlite3_stmt	*s;
	size_t		 i;
	int		 rc, ret;

	if ((ret = store_begin(st, err)) != 0)
		return ret;
	s = st->stmt[STMT_VALUE_RESEAL];
	for (i = 0; i < n; i++) {
		if (rows[i].sealed == NULL)
			continue;
		if ((rc = bind_uuid(s, 1, rows[i].type_uuid, st->ukey[1])) != SQLITE_OK ||
		    (rc = bind_uuid(s, 2, rows[i].user_uuid, st->ukey[2])) != SQLITE_OK ||
		    (rc = bind_text(s, 3, rows[i].sealed)) != SQLITE_OK ||
		    (rc = sqlite3_step(s)) != SQLITE_DONE)
			ret = store_dberr(st, rc, "re-seal value", err);
		stmt_done(s);
		if (ret != 0)
			goto done;
	}
	s = st->stmt[STMT_ACCOUNT_RESEAL];
	for (i = 0; i < na; i++) {
		if (arows[i].sealed == NULL)
			continue;
		if ((rc = bind_text(s, 1, arows[i].type_uuid)) != SQLITE_OK ||
		    (rc = bind_text(s, 2, arows[i].name)) != SQLITE_OK ||
		    (rc = bind_text(s, 3, arows[i].sealed)) != SQLITE_OK ||
		    (rc = sqlite3_step(s)) != SQLITE_DONE)
			ret = store_dberr(st, rc, "re-seal account value",
			    err);
		stmt_done(s);
		if (ret != 0)
			goto done;
	}
	if (key != NULL && (ret = store_setting_set(st, key, val, err)) != 0)
		goto done;
	ret = store_commit(st, err);
done:
	if (ret != 0)
		store_rollback(st);
	return ret;
}

/* Check a (type uuid, user uuid) pair of a link. */
static int
link_check_ids(const char *type_uuid, const char *user_uuid,
    struct cb_error *err)
{
	return value_check_ids(type_uuid, user_uuid, err);
}

/* Fill l from a "SELECT user_uuid, account, sealed, updated_at" row. */
static int
link_from_row(struct store *st, sqlite3_stmt *s, struct store_link *l,
    struct cb_error *err)
{
	const char	*user = col_text(s, 0), *account = col_text(s, 1);

	memset(l, 0, sizeof(*l));
	if (strlen(user) != STORE_UUID_LEN || strlen(account) >
	    STORE_IDENT_MAX)
		return cb_error_set(err, CB_EINTERNAL,
		    "database %s holds a malformed link row", st->path);
	memcpy(l->user_uuid, user, STORE_UUID_LEN + 1);
	memcpy(l->account, account, strlen(account) + 1);
	l->updated_at = sqlite3_column_int64(s, 3);
	if ((l->sealed = col_dup(s, 2)) == NULL)
		return store_nomem(err);
	return 0;
}

int
store_link_set(struct store *st, const char *type_uuid, const char *user_uuid,
    const char *account, const char *sealed, int64_t now,
    struct cb_error *err)
{
	sqlite3_stmt	*s = store_write_stmt(st, STMT_LINK_SET);
	int		 rc, ret;

	if ((ret = link_check_ids(type_uuid, user_uuid, err)) != 0 ||
	    (ret = account_check_ids(type_uuid, account, err)) != 0)
		return ret;
	if (sealed == NULL || *sealed == '\0')
		return cb_error_set(err, CB_EINTERNAL, "empty sealed link");
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, user_uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 3, account)) != SQLITE_OK ||
	    (rc = bind_text(s, 4, sealed)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(s, 5, now)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "set link", err);
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
		ret = cb_error_set(err, CB_ENOTFOUND,
		    "credential type '%s' not found", type_uuid);
	else if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "set link", err);
done:
	stmt_done(s);
	return ret;
}

int
store_link_get(struct store *st, const char *type_uuid, const char *user_uuid,
    struct store_link *out, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_LINK_GET];
	int		 rc, ret;

	memset(out, 0, sizeof(*out));
	if ((ret = link_check_ids(type_uuid, user_uuid, err)) != 0)
		return ret;
	store_hold_read(st);
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, user_uuid)) != SQLITE_OK) {
		ret = store_dberr(st, rc, "get link", err);
		goto done;
	}
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		ret = link_from_row(st, s, out, err);
	else if (rc == SQLITE_DONE)
		ret = cb_error_set(err, CB_ENOTFOUND, "user %s has no link "
		    "for credential type %s", user_uuid, type_uuid);
	else
		ret = store_dberr(st, rc, "get link", err);
done:
	stmt_done(s);
	if (ret != 0)
		store_link_free(out);
	return ret;
}

int
store_link_delete(struct store *st, const char *type_uuid,
    const char *user_uuid, struct cb_error *err)
{
	sqlite3_stmt	*s = store_write_stmt(st, STMT_LINK_DELETE);
	int		 rc, ret;

	if ((ret = link_check_ids(type_uuid, user_uuid, err)) != 0)
		return ret;
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, user_uuid)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, "delete link", err);
	else if (sqlite3_changes(st->db) == 0)
		ret = cb_error_set(err, CB_ENOTFOUND, "user %s has no link "
		    "for credential type %s", user_uuid, type_uuid);
	stmt_done(s);
	return ret;
}

int
store_link_count(struct store *st, const char *type_uuid, const char *account,
    int64_t *n, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_LINK_COUNT];
	int		 rc, ret;

	*n = 0;
	if ((ret = account_check_ids(type_uuid, account, err)) != 0)
		return ret;
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, account)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_ROW)
		ret = store_dberr(st, rc, "count links", err);
	else
		*n = sqlite3_column_int64(s, 0);
	stmt_done(s);
	return ret;
}

/* A uuid's text, as an array element. */
typedef char	link_uuid[STORE_UUID_LEN + 1];

/*
 * Rows of a link listing; with type_uuids (not NULL), column 4 of each
 * row is its type uuid.
 */
static int
link_rows(struct store *st, sqlite3_stmt *s, link_uuid **type_uuids,
    struct store_link **out, size_t *n, struct cb_error *err)
{
	struct store_link	*v = NULL, *nv;
	link_uuid		*tv = NULL, *ntv;
	const char		*t;
	size_t			 len = 0, cap = 0;
	int			 rc, ret = 0;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				ret = store_nomem(err);
				goto done;
			}
			v = nv;
			if (type_uuids != NULL && (ntv = reallocarray(tv, cap,
			    sizeof(*tv))) == NULL) {
				ret = store_nomem(err);
				goto done;
			}
			if (type_uuids != NULL)
				tv = ntv;
		}
		if (type_uuids != NULL) {
			t = col_text(s, 4);
			if (strlen(t) != STORE_UUID_LEN) {
				ret = cb_error_set(err, CB_EINTERNAL,
				    "database %s holds a malformed link row",
				    st->path);
				goto done;
			}
			memcpy(tv[len], t, STORE_UUID_LEN + 1);
		}
		if ((ret = link_from_row(st, s, &v[len], err)) != 0) {
			store_link_free(&v[len]);
			goto done;
		}
		len++;
	}
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "list links", err);
done:
	if (ret != 0) {
		store_links_free(v, len);
		free(tv);
		return ret;
	}
	*out = v;
	if (type_uuids != NULL)
		*type_uuids = tv;
	*n = len;
	return 0;
}

int
store_link_list(struct store *st, const char *type_uuid,
    struct store_link **out, size_t *n, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_LINK_LIST];
	int		 rc, ret;

	*out = NULL;
	*n = 0;
	if (!ids_uuid_valid(type_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	store_hold_read(st);
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK)
		ret = store_dberr(st, rc, "list links", err);
	else
		ret = link_rows(st, s, NULL, out, n, err);
	stmt_done(s);
	return ret;
}

int
store_link_list_user(struct store *st, const char *user_uuid,
    char (**type_uuids)[STORE_UUID_LEN + 1], struct store_link **out,
    size_t *n, struct cb_error *err)
{
	sqlite3_stmt	*s = st->stmt[STMT_LINK_LIST_USER];
	int		 rc, ret;

	*type_uuids = NULL;
	*out = NULL;
	*n = 0;
	if (!ids_uuid_valid(user_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid user id (must be a lower-case uuid)");
	store_hold_read(st);
	if ((rc = bind_text(s, 1, user_uuid)) != SQLITE_OK)
		ret = store_dberr(st, rc, "list links", err);
	else
		ret = link_rows(st, s, type_uuids, out, n, err);
	stmt_done(s);
	return ret;
}

void
store_link_free(struct store_link *l)
{
	if (l == NULL)
		return;
	free(l->sealed);
	memset(l, 0, sizeof(*l));
}

void
store_links_free(struct store_link *v, size_t n)
{
	size_t	i;

	for (i = 0; v != NULL && i < n; i++)
		store_link_free(&v[i]);
	free(v);
}

/* A committed change of a type's default: the cache follows. */
static void
store_types_default(struct store *st, const char *type_uuid,
    const char *account, const char *sealed)
{
	struct store_type	*t;
	char			*copy = NULL, name[STORE_IDENT_MAX + 1];
	size_t			 u;

	if (!st->types_ok)
		return;
	/* account may be the cached name itself. */
	snprintf(name, sizeof(name), "%s", account != NULL ? account : "");
	if (!store_types_search(st, type_uuid, true, &u) ||
	    !store_types_own(st, u) ||
	    (sealed != NULL && (copy = strdup(sealed)) == NULL)) {
		store_types_drop(st);
		return;
	}
	t = &st->by_uuid[u]->t;
	free(t->default_sealed);
	t->default_sealed = copy;
	memcpy(t->default_account, name, sizeof(t->default_account));
}

int
store_type_set_default(struct store *st, const char *type_uuid,
    const char *account, const char *sealed, struct cb_error *err)
{
	sqlite3_stmt	*s = store_write_stmt(st, STMT_TYPE_SET_DEFAULT);
	int		 rc, ret = 0;

	if (!ids_uuid_valid(type_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	if ((account == NULL) != (sealed == NULL))
		return cb_error_set(err, CB_EINTERNAL,
		    "a default account needs its name and its sealed name");
	if (account != NULL && (ret = account_check_ids(type_uuid, account,
	    err)) != 0)
		return ret;
	if (sealed != NULL && *sealed == '\0')
		return cb_error_set(err, CB_EINTERNAL, "empty sealed default");
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, account != NULL ? account : "")) !=
	    SQLITE_OK ||
	    (rc = (sealed != NULL ? bind_text(s, 3, sealed) :
	    sqlite3_bind_null(s, 3))) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, "set default account", err);
	else if (sqlite3_changes(st->db) == 0)
		ret = cb_error_set(err, CB_ENOTFOUND,
		    "credential type '%s' not found", type_uuid);
	stmt_done(s);
	if (ret == 0)
		store_types_default(st, type_uuid, account, sealed);
	return ret;
}

int
store_links_clear(struct store *st, const char *type_uuid, int64_t *removed,
    struct cb_error *err)
{
	sqlite3_stmt	*s;
	int64_t		 n = 0;
	int		 rc, ret;

	if (removed != NULL)
		*removed = 0;
	if (!ids_uuid_valid(type_uuid))
		return cb_error_set(err, CB_EBADREQ,
		    "invalid credential type uuid");
	if ((ret = store_begin(st, err)) != 0)
		return ret;
	if ((ret = store_by_type(st, STMT_LINK_CLEAR, type_uuid, &n,
	    "clear links", err)) != 0)
		goto done;
	s = st->stmt[STMT_TYPE_SET_DEFAULT];
	if ((rc = bind_text(s, 1, type_uuid)) != SQLITE_OK ||
	    (rc = bind_text(s, 2, "")) != SQLITE_OK ||
	    (rc = sqlite3_bind_null(s, 3)) != SQLITE_OK ||
	    (rc = sqlite3_step(s)) != SQLITE_DONE)
		ret = store_dberr(st, rc, "clear default account", err);
	stmt_done(s);
	if (ret != 0)
		goto done;
	if ((ret = store_commit(st, err)) == 0) {
		store_types_default(st, type_uuid, NULL, NULL);
		if (removed != NULL)
			*removed = n;
	}
done:
	if (ret != 0)
		store_rollback(st);
	return ret;
}

int
store_bind_scan(struct store *st, struct store_bindrow **out, size_t *n,
    struct cb_error *err)
{
	sqlite3_stmt		*s = st->stmt[STMT_BIND_SCAN];
	struct store_bindrow	*v = NULL, *nv;
	const char		*t, *u;
	size_t			 len = 0, cap = 0;
	int			 rc, ret = 0;

	*out = NULL;
	*n = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap == 0 ? 8 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				ret = store_nomem(err);
				goto done;
			}
			v = nv;
		}
		t = col_text(s, 1);
		u = col_text(s, 2);
		if (strlen(t) != STORE_UUID_LEN || (sqlite3_column_int(s, 0) ==
		    0) != (strlen(u) == STORE_UUID_LEN) || (*u != '\0' &&
		    strlen(u) != STORE_UUID_LEN)) {
			ret = cb_error_set(err, CB_EINTERNAL, "database %s "
			    "holds a malformed link row", st->path);
			goto done;
		}
		memset(&v[len], 0, sizeof(v[len]));
		memcpy(v[len].type_uuid, t, STORE_UUID_LEN + 1);
		memcpy(v[len].user_uuid, u, strlen(u) + 1);
		if ((v[len].sealed = col_dup(s, 3)) == NULL) {
			ret = store_nomem(err);
			goto done;
		}
		len++;
	}
	if (rc != SQLITE_DONE)
		ret = store_dberr(st, rc, "scan links", err);
done:
	stmt_done(s);
	if (ret != 0) {
		store_bindrows_free(v, len);
		return ret;
	}
	*out = v;
	*n = len;
	return 0;
}

/*
 * Replace the sealed text of every row whose sealed is not NULL, in one
 * transaction.  A row that no longer exists fails the whole call
 * (-CB_ENOTFOUND) and changes nothing: rotation scans and re-seals in one
 * step of the loop, so nothing can go in between.
 */
int
store_bind_reseal(struct store *st, const struct store_bindrow *rows,
    size_t n, struct cb_error *err)
{
	const struct store_type	*t;
	sqlite3_stmt		*s;
	size_t			 i;
	int			 rc, ret;

	if ((ret = store_begin(st, err)) != 0)
		return ret;
	for (i = 0; i < n; i++) {
		if (rows[i].sealed == NULL)
			continue;
		if (*rows[i].sealed == '\0') {
			ret = cb_error_set(err, CB_EINTERNAL,
			    "empty sealed link");
			goto done;
		}
		if (rows[i].user_uuid[0] != '\0') {
			s = st->stmt[STMT_LINK_RESEAL];
			if ((rc = bind_text(s, 1, rows[i].type_uuid)) !=
			    SQLITE_OK ||
			    (rc = bind_text(s, 2, rows[i].user_uuid)) !=
			    SQLITE_OK ||
			    (rc = bind_text(s, 3, rows[i].sealed)) != SQLITE_OK)
				goto fail;
		} else {
			s = st->stmt[STMT_DEFAULT_RESEAL];
			if ((rc = bind_text(s, 1, rows[i].type_uuid)) !=
			    SQLITE_OK ||
			    (rc = bind_text(s, 2, rows[i].sealed)) != SQLITE_OK)
				goto fail;
		}
		if ((rc = sqlite3_step(s)) != SQLITE_DONE)
			goto fail;
		if (sqlite3_changes(st->db) == 0)
			ret = cb_error_set(err, CB_ENOTFOUND, "the %s of "
			    "credential type %s is gone",
			    rows[i].user_uuid[0] != '\0' ? "link of a user" :
			    "default account", rows[i].type_uuid);
		stmt_done(s);
		if (ret != 0)
			goto done;
		continue;
fail:
		ret = store_dberr(st, rc, "re-seal link", err);
		stmt_done(s);
		goto done;
	}
	if ((ret = store_commit(st, err)) != 0)
		goto done;
	/* The cached defaults follow, as after any type write. */
	for (i = 0; i < n; i++) {
		if (rows[i].sealed == NULL || rows[i].user_uuid[0] != '\0')
			continue;
		if (st->types_ok && (t = store_types_find(st,
		    rows[i].type_uuid, true)) != NULL)
			store_types_default(st, rows[i].type_uuid,
			    t->default_account, rows[i].sealed);
	}
done:
	if (ret != 0)
		store_rollback(st);
	return ret;
}

void
store_bindrows_free(struct store_bindrow *rows, size_t n)
{
	size_t	i;

	for (i = 0; rows != NULL && i < n; i++)
		free(rows[i].sealed);
	free(rows);
}

struct sqlite3 *
store_sqlite(struct store *st)
{
	return st->db;
}

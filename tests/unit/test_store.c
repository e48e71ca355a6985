/*
 * test_store: unit tests for the SQLite store (storage/sqlite.c).
 *
 * Every test gets its own mkdtemp() directory under /tmp holding a fresh
 * database, opened by the setup and closed and removed by the teardown.
 * Some tests look at the file behind the store's back with a second,
 * plain sqlite3 connection (journal mode, schema version, leftover rows).
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <time.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "cb_error.h"
#include "store.h"

/*
 * SQL true where a credvalues uuid column (16 bytes since schema 6) holds
 * the uuid u given in text.
 */
#define BLOB_IS(col, u)	"hex(" col ") = upper(replace('" u "', '-', ''))"
#define TYPE_A	"0f8fad5b-d9cb-469f-a165-70867728950e"
#define TYPE_B	"7c9e6679-7425-40de-944b-e07fc1f90ae7"
#define TYPE_C	"16fd2706-8baf-433b-82eb-8c7fada847da"
#define USER_1	"886313e1-3b8a-5372-9b90-0c9aee199e5d"
#define USER_2	"a8098c1a-f86e-11da-bd1a-00112444be1e"

struct fixture {
	char		 dir[64];
	char		 path[128];
	struct store	*st;
};

/* nftw callback removing everything under the test directory. */
static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

/* Make a temporary directory and open a store in it. */
static int
setup(void **state)
{
	struct fixture	*f;
	struct cb_error	 err;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
	if (mkdtemp(f->dir) == NULL) {
		free(f);
		return -1;
	}
	snprintf(f->path, sizeof(f->path), "%s/cb.db", f->dir);
	cb_error_clear(&err);
	if (store_open(f->path, &f->st, &err) != 0) {
		print_error("store_open: %s\n", err.msg);
		nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

/* Close the store and remove the temporary directory. */
static int
teardown(void **state)
{
	struct fixture	*f = *state;

	store_close(f->st);
	nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Reopen the fixture's store (persistence across close/open). */
static void
reopen(struct fixture *f)
{
	struct cb_error	err;

	store_close(f->st);
	f->st = NULL;
	assert_int_equal(store_open(f->path, &f->st, &err), 0);
}

/* One text answer from a second, independent connection to path. */
static char *
side_query(const char *path, const char *sql)
{
	sqlite3		*db = NULL;
	sqlite3_stmt	*s = NULL;
	char		*ans = NULL;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		ans = strdup((const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
	assert_non_null(ans);
	return ans;
}

/* A type with the given fields; destinations point at the caller's. */
static struct store_type
mktype(const char *uuid, const char *ident, const char *name, int storage,
    char **dests, size_t ndests)
{
	struct store_type	t;

	memset(&t, 0, sizeof(t));
	snprintf(t.uuid, sizeof(t.uuid), "%s", uuid);
	snprintf(t.ident, sizeof(t.ident), "%s", ident);
	t.name = (char *)name;
	t.description = (char *)"";
	t.storage = storage;
	t.destinations = dests;
	t.ndestinations = ndests;
	t.created_at = 1000;
	t.updated_at = 1000;
	return t;
}

/* Create a db type with no destinations. */
static void
create_simple(struct store *st, const char *uuid, const char *ident)
{
	struct store_type	t = mktype(uuid, ident, ident, STORE_DB, NULL, 0);
	struct cb_error		err;

	assert_int_equal(store_type_create(st, &t, &err), 0);
}

/* Whether path exists. */
static int
exists(const char *path)
{
	struct stat	sb;

	return stat(path, &sb) == 0;
}

/* Write len bytes to path, creating or truncating it. */
static void
write_file(const char *path, const char *data, size_t len)
{
	int	fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* The file is created 0600, in WAL mode, at schema version 3. */
static void
test_open_creates_0600_wal(void **state)
{
	struct fixture	*f = *state;
	struct cb_error	 err;
	struct stat	 sb;
	char		 wal[160], *ans;

	assert_int_equal(stat(f->path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);

	assert_int_equal(store_kcv_set(f->st, "kcv1:00", &err), 0);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);

	ans = side_query(f->path, "PRAGMA journal_mode");
	assert_string_equal(ans, "wal");
	free(ans);
	ans = side_query(f->path, "PRAGMA user_version");
	assert_string_equal(ans, "6");
	free(ans);
}

/* The file is created 0600 even under a permissive umask. */
static void
test_open_mode_ignores_umask(void **state)
{
	struct fixture	*f = *state;
	struct store	*st = NULL;
	struct cb_error	 err;
	struct stat	 sb;
	char		 path[160];
	mode_t		 old;

	snprintf(path, sizeof(path), "%s/other.db", f->dir);
	old = umask(0);
	assert_int_equal(store_open(path, &st, &err), 0);
	umask(old);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	store_close(st);
}

/* A missing parent directory is a clear error naming it. */
static void
test_open_missing_dir(void **state)
{
	struct fixture	*f = *state;
	struct store	*st = (struct store *)1;
	struct cb_error	 err;
	char		 path[200], dir[160];

	snprintf(dir, sizeof(dir), "%s/nope", f->dir);
	snprintf(path, sizeof(path), "%s/cb.db", dir);
	cb_error_clear(&err);
	assert_int_equal(store_open(path, &st, &err), -CB_EUNAVAILABLE);
	assert_null(st);
	assert_non_null(strstr(err.msg, dir));
	assert_non_null(strstr(err.msg, "No such file"));
	assert_false(exists(path));
}

/* Closing and reopening keeps types, values, settings and the kcv. */
static void
test_reopen_persists(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 t;
	struct cb_error		 err;
	char			*s;
	int64_t			 at;

	create_simple(f->st, TYPE_A, "github");
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "CB1:1:xx",
	    42, &err), 0);
	assert_int_equal(store_setting_set(f->st, "vault.url",
	    "https://vault:8200", &err), 0);
	assert_int_equal(store_kcv_set(f->st, "kcv1:ab", &err), 0);
	reopen(f);

	assert_int_equal(store_type_get(f->st, "github", &t, &err), 0);
	assert_string_equal(t.uuid, TYPE_A);
	store_type_free(&t);
	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1, &s, &at,
	    &err), 0);
	assert_string_equal(s, "CB1:1:xx");
	assert_int_equal(at, 42);
	free(s);
	assert_int_equal(store_setting_get(f->st, "vault.url", &s, &err), 0);
	assert_string_equal(s, "https://vault:8200");
	free(s);
	assert_int_equal(store_kcv_get(f->st, &s, &err), 0);
	assert_string_equal(s, "kcv1:ab");
	free(s);

	s = side_query(f->path, "PRAGMA user_version");
	assert_string_equal(s, "6");
	free(s);
}

/*
 * A database of schema version 1 (before storage generations) opens at
 * the current version with its types at generation 0 and its values
 * intact.
 */
static void
test_open_migrates_version_1(void **state)
{
	struct fixture		*f = *state;
	struct store		*st = NULL;
	struct store_type	 got;
	struct cb_error		 err;
	sqlite3			*db;
	char			 path[160], *ans, *sealed;

	snprintf(path, sizeof(path), "%s/v1.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	    "CREATE TABLE types (uuid TEXT PRIMARY KEY,"
	    " ident TEXT UNIQUE NOT NULL, name TEXT NOT NULL,"
	    " description TEXT NOT NULL DEFAULT '',"
	    " storage TEXT NOT NULL CHECK (storage IN ('db', 'vault')),"
	    " destinations TEXT NOT NULL DEFAULT '',"
	    " created_at INTEGER, updated_at INTEGER);"
	    "CREATE TABLE credvalues (type_uuid TEXT NOT NULL"
	    " REFERENCES types(uuid) ON DELETE CASCADE,"
	    " user_uuid TEXT NOT NULL, sealed TEXT NOT NULL,"
	    " updated_at INTEGER NOT NULL,"
	    " PRIMARY KEY (type_uuid, user_uuid)) WITHOUT ROWID;"
	    "CREATE INDEX credvalues_user ON credvalues(user_uuid);"
	    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	    "CREATE TABLE keycheck (id INTEGER PRIMARY KEY CHECK (id = 1),"
	    " kcv TEXT NOT NULL);"
	    "INSERT INTO types VALUES ('" TYPE_A "', 'alpha', 'Alpha', '',"
	    " 'vault', '', 1, 2);"
	    "INSERT INTO credvalues VALUES ('" TYPE_A "', '" USER_1 "',"
	    " 'CB1:1:OLD', 3);"
	    "PRAGMA user_version = 1;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(store_open(path, &st, &err), 0);
	ans = side_query(path, "PRAGMA user_version");
	assert_string_equal(ans, "6");
	free(ans);
	assert_int_equal(store_type_get(st, "alpha", &got, &err), 0);
	assert_int_equal(got.generation, 0);
	assert_int_equal(got.storage, STORE_VAULT);
	assert_int_equal(got.updated_at, 2);
	store_type_free(&got);
	assert_int_equal(store_value_get(st, TYPE_A, USER_1, &sealed, NULL,
	    &err), 0);
	assert_string_equal(sealed, "CB1:1:OLD");
	free(sealed);
	store_close(st);
}

/*
 * store_open_readonly (credbrokerd --check-config) creates no file: not
 * the -wal and -shm files that SQLite makes for any reader of a WAL
 * database, whether the store is closed (no -wal) or open elsewhere, and
 * it reads what the store holds.  An older schema is not an error: *out
 * is NULL and the version is said.  A missing file is refused.
 */
static void
test_open_readonly_creates_no_file(void **state)
{
	struct fixture	*f = *state;
	struct store	*ro = NULL;
	struct cb_error	 err;
	struct stat	 before, after;
	sqlite3		*db;
	char		 wal[200], shm[200], path[160], *kcv = NULL;
	int		 version;

	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	snprintf(shm, sizeof(shm), "%s-shm", f->path);
	assert_int_equal(store_kcv_set(f->st, "kcv1:ro", &err), 0);
	/* Open elsewhere: the -wal and -shm files are there and read. */
	assert_true(exists(wal));
	assert_int_equal(store_open_readonly(f->path, &ro, &version, &err), 0);
	assert_non_null(ro);
	assert_int_equal(version, STORE_SCHEMA_VERSION);
	assert_int_equal(store_kcv_get(ro, &kcv, &err), 0);
	assert_string_equal(kcv, "kcv1:ro");
	free(kcv);
	store_close(ro);
	assert_true(exists(wal));

	/* Closed: nothing but the database file, which stays as it is. */
	store_close(f->st);
	f->st = NULL;
	assert_false(exists(wal));
	assert_false(exists(shm));
	assert_int_equal(stat(f->path, &before), 0);
	assert_int_equal(store_open_readonly(f->path, &ro, &version, &err), 0);
	assert_non_null(ro);
	assert_int_equal(store_kcv_get(ro, &kcv, &err), 0);
	assert_string_equal(kcv, "kcv1:ro");
	free(kcv);
	assert_false(exists(wal));
	assert_false(exists(shm));
	store_close(ro);
	assert_false(exists(wal));
	assert_false(exists(shm));
	assert_int_equal(stat(f->path, &after), 0);
	assert_int_equal(after.st_size, before.st_size);
	assert_int_equal(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
	assert_int_equal(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);

	/* An older schema: no store, its version, no file. */
	snprintf(path, sizeof(path), "%s/old.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL;"
	    "CREATE TABLE t (x); PRAGMA user_version = 2;", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	assert_false(exists(wal));
	assert_int_equal(store_open_readonly(path, &ro, &version, &err), 0);
	assert_null(ro);
	assert_int_equal(version, 2);
	assert_false(exists(wal));

	/* A missing file is an error, and is not created. */
	snprintf(path, sizeof(path), "%s/none.db", f->dir);
	assert_int_not_equal(store_open_readonly(path, &ro, &version, &err),
	    0);
	assert_null(ro);
	assert_false(exists(path));
}

/* A database from a newer credbroker is refused and left untouched. */
static void
test_open_newer_version_refused(void **state)
{
	struct fixture	*f = *state;
	struct store	*st = NULL;
	struct cb_error	 err;
	sqlite3		*db;
	char		 path[160], *ans;

	snprintf(path, sizeof(path), "%s/new.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL,
	    NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	cb_error_clear(&err);
	assert_int_equal(store_open(path, &st, &err), -CB_EINTERNAL);
	assert_null(st);
	assert_non_null(strstr(err.msg, "99"));
	assert_non_null(strstr(err.msg, "newer"));
	assert_non_null(strstr(err.msg, path));

	ans = side_query(path, "PRAGMA user_version");
	assert_string_equal(ans, "99");
	free(ans);
	ans = side_query(path,
	    "SELECT count(*) FROM sqlite_master WHERE name = 'types'");
	assert_string_equal(ans, "0");
	free(ans);
}

/* A file that is not a database is refused with a message naming it. */
static void
test_open_not_a_database(void **state)
{
	struct fixture	*f = *state;
	struct store	*st = NULL;
	struct cb_error	 err;
	char		 path[160], junk[4096];

	snprintf(path, sizeof(path), "%s/junk.db", f->dir);
	memset(junk, 'x', sizeof(junk));
	write_file(path, junk, sizeof(junk));

	cb_error_clear(&err);
	assert_int_not_equal(store_open(path, &st, &err), 0);
	assert_null(st);
	assert_int_equal(err.code, CB_EINTERNAL);
	assert_non_null(strstr(err.msg, path));
	assert_non_null(strstr(err.msg, "not a SQLite database"));
}

/* Create, get by ident and by uuid, conflicts, not-found, bad refs. */
static void
test_type_crud(void **state)
{
	struct fixture		*f = *state;
	char			*dests[] = { "https://api.github.com", NULL };
	struct store_type	 t = mktype(TYPE_A, "github", "GitHub token",
				    STORE_VAULT, dests, 1), got, dup;
	struct cb_error		 err;

	t.description = "personal access token";
	t.created_at = 111;
	t.updated_at = 222;
	assert_int_equal(store_type_create(f->st, &t, &err), 0);

	assert_int_equal(store_type_get(f->st, "github", &got, &err), 0);
	assert_string_equal(got.uuid, TYPE_A);
	assert_string_equal(got.ident, "github");
	assert_string_equal(got.name, "GitHub token");
	assert_string_equal(got.description, "personal access token");
	assert_int_equal(got.storage, STORE_VAULT);
	assert_int_equal(got.ndestinations, 1);
	assert_string_equal(got.destinations[0], "https://api.github.com");
	assert_null(got.destinations[1]);
	assert_int_equal(got.created_at, 111);
	assert_int_equal(got.updated_at, 222);
	store_type_free(&got);
	assert_null(got.name);
	assert_null(got.destinations);

	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_string_equal(got.ident, "github");
	store_type_free(&got);

	/* Same ident, other uuid. */
	dup = mktype(TYPE_B, "github", "again", STORE_DB, NULL, 0);
	cb_error_clear(&err);
	assert_int_equal(store_type_create(f->st, &dup, &err), -CB_ECONFLICT);
	assert_string_equal(err.msg, "credential type 'github' already exists");
	/* Same uuid, other ident. */
	dup = mktype(TYPE_A, "gitlab", "again", STORE_DB, NULL, 0);
	assert_int_equal(store_type_create(f->st, &dup, &err), -CB_ECONFLICT);
	assert_non_null(strstr(err.msg, TYPE_A));

	cb_error_clear(&err);
	assert_int_equal(store_type_get(f->st, "gitlab", &got, &err),
	    -CB_ENOTFOUND);
	assert_string_equal(err.msg, "credential type 'gitlab' not found");
	assert_null(got.name);
	store_type_free(&got);		/* harmless after a failure */
	assert_int_equal(store_type_get(f->st, TYPE_B, &got, &err),
	    -CB_ENOTFOUND);
	assert_non_null(strstr(err.msg, TYPE_B));

	/* Neither an ident nor a uuid. */
	assert_int_equal(store_type_get(f->st, "../x", &got, &err),
	    -CB_EBADREQ);
	assert_int_equal(store_type_get(f->st, "1github", &got, &err),
	    -CB_EBADREQ);
	assert_int_equal(store_type_get(f->st,
	    "0F8FAD5B-D9CB-469F-A165-70867728950E", &got, &err), -CB_EBADREQ);

	/* Invalid fields on create. */
	dup = mktype(TYPE_C, "1bad", "x", STORE_DB, NULL, 0);
	assert_int_equal(store_type_create(f->st, &dup, &err), -CB_EBADREQ);
	dup = mktype(TYPE_C, "bad/x", "x", STORE_DB, NULL, 0);
	assert_int_equal(store_type_create(f->st, &dup, &err), -CB_EBADREQ);
	/* An ident that is a uuid would make references ambiguous. */
	dup = mktype(TYPE_C, "deadbeef-0000-4000-8000-000000000000", "x",
	    STORE_DB, NULL, 0);
	assert_int_equal(store_type_create(f->st, &dup, &err), -CB_EBADREQ);
	dup = mktype("not-a-uuid", "okay", "x", STORE_DB, NULL, 0);
	assert_int_equal(store_type_create(f->st, &dup, &err), -CB_EBADREQ);
	dup = mktype(TYPE_C, "okay", "x", 7, NULL, 0);
	assert_int_equal(store_type_create(f->st, &dup, &err), -CB_EBADREQ);
	dup = mktype(TYPE_C, "okay", NULL, STORE_DB, NULL, 0);
	assert_int_equal(store_type_create(f->st, &dup, &err), -CB_EBADREQ);

	/* Failures above left no statement half-used: this still works. */
	create_simple(f->st, TYPE_C, "okay");
	assert_int_equal(store_type_get(f->st, "okay", &got, &err), 0);
	assert_string_equal(got.description, "");
	assert_int_equal(got.ndestinations, 0);
	assert_non_null(got.destinations);
	assert_null(got.destinations[0]);
	store_type_free(&got);
}

/* Type idents are matched case-sensitively; '-' and '.' are allowed. */
static void
test_type_idents_case_sensitive(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 got;
	struct cb_error		 err;

	create_simple(f->st, TYPE_A, "github");
	cb_error_clear(&err);
	assert_int_equal(store_type_get(f->st, "GitHub", &got, &err),
	    -CB_ENOTFOUND);
	assert_string_equal(err.msg, "credential type 'GitHub' not found");
	create_simple(f->st, TYPE_B, "GitHub");
	create_simple(f->st, TYPE_C, "corp.jira-api_key");

	assert_int_equal(store_type_get(f->st, "github", &got, &err), 0);
	assert_string_equal(got.uuid, TYPE_A);
	store_type_free(&got);
	assert_int_equal(store_type_get(f->st, "GitHub", &got, &err), 0);
	assert_string_equal(got.uuid, TYPE_B);
	store_type_free(&got);
	assert_int_equal(store_type_get(f->st, "corp.jira-api_key", &got,
	    &err), 0);
	assert_string_equal(got.uuid, TYPE_C);
	store_type_free(&got);
	assert_int_equal(store_type_get(f->st, "GITHUB", &got, &err),
	    -CB_ENOTFOUND);
}

/* Update replaces the mutable fields; destinations round-trip 0/1/many. */
static void
test_type_update_destinations(void **state)
{
	struct fixture		*f = *state;
	char			*one[] = { "https://a.example.com", NULL };
	char			*many[] = { "https://*.example.com:8443",
				    "https://api.github.com", "http://x", NULL };
	char			*bad_nl[] = { "https://a\nhttps://b", NULL };
	char			*bad_empty[] = { "", NULL };
	struct store_type	 t = mktype(TYPE_A, "svc", "Service", STORE_DB,
				    NULL, 0), got;
	struct cb_error		 err;
	size_t			 i;

	assert_int_equal(store_type_create(f->st, &t, &err), 0);

	t.name = "Service 2";
	t.description = "new text";
	t.storage = STORE_VAULT;
	t.destinations = many;
	t.ndestinations = 3;
	t.created_at = 5;		/* must be ignored */
	t.updated_at = 2000;
	assert_int_equal(store_type_update(f->st, &t, &err), 0);
	assert_int_equal(store_type_get(f->st, "svc", &got, &err), 0);
	assert_string_equal(got.name, "Service 2");
	assert_string_equal(got.description, "new text");
	assert_int_equal(got.storage, STORE_VAULT);
	assert_int_equal(got.created_at, 1000);
	assert_int_equal(got.updated_at, 2000);
	assert_int_equal(got.ndestinations, 3);
	for (i = 0; i < 3; i++)
		assert_string_equal(got.destinations[i], many[i]);
	assert_null(got.destinations[3]);
	store_type_free(&got);

	t.destinations = one;
	t.ndestinations = 1;
	assert_int_equal(store_type_update(f->st, &t, &err), 0);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_int_equal(got.ndestinations, 1);
	assert_string_equal(got.destinations[0], one[0]);
	assert_null(got.destinations[1]);
	store_type_free(&got);

	t.destinations = NULL;
	t.ndestinations = 0;
	t.storage = STORE_DB;
	assert_int_equal(store_type_update(f->st, &t, &err), 0);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_int_equal(got.ndestinations, 0);
	assert_null(got.destinations[0]);
	assert_int_equal(got.storage, STORE_DB);
	store_type_free(&got);

	t.destinations = bad_nl;
	t.ndestinations = 1;
	assert_int_equal(store_type_update(f->st, &t, &err), -CB_EBADREQ);
	assert_non_null(strstr(err.msg, "line break"));
	t.destinations = bad_empty;
	assert_int_equal(store_type_update(f->st, &t, &err), -CB_EBADREQ);
	t.destinations = NULL;
	t.ndestinations = 0;

	memcpy(t.uuid, TYPE_B, sizeof(t.uuid));
	cb_error_clear(&err);
	assert_int_equal(store_type_update(f->st, &t, &err), -CB_ENOTFOUND);
	assert_non_null(strstr(err.msg, TYPE_B));
}

/* List is ordered by ident; an empty store lists nothing. */
static void
test_type_list_order(void **state)
{
	struct fixture		*f = *state;
	struct store_type	*v = (struct store_type *)1;
	struct cb_error		 err;
	size_t			 n = 99;

	assert_int_equal(store_type_list(f->st, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	store_type_list_free(v, n);

	create_simple(f->st, TYPE_A, "zeta");
	create_simple(f->st, TYPE_B, "alpha");
	create_simple(f->st, TYPE_C, "mid_1");
	assert_int_equal(store_type_list(f->st, &v, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].ident, "alpha");
	assert_string_equal(v[0].uuid, TYPE_B);
	assert_string_equal(v[1].ident, "mid_1");
	assert_string_equal(v[2].ident, "zeta");
	assert_non_null(v[2].destinations);
	store_type_list_free(v, n);
}

/* Set, get, replace, count, list_user, delete, clear. */
static void
test_values(void **state)
{
	struct fixture		*f = *state;
	struct store_status	*sv;
	struct cb_error		 err;
	char			*s;
	int64_t			 at, n;
	size_t			 ns;

	create_simple(f->st, TYPE_A, "alpha");
	create_simple(f->st, TYPE_B, "beta");

	cb_error_clear(&err);
	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1, &s, &at,
	    &err), -CB_ENOTFOUND);
	assert_null(s);
	assert_int_equal(err.code, CB_ENOTFOUND);

	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "CB1:1:one",
	    10, &err), 0);
	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1, &s, &at,
	    &err), 0);
	assert_string_equal(s, "CB1:1:one");
	assert_int_equal(at, 10);
	free(s);

	/* Replace. */
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "CB1:1:two",
	    20, &err), 0);
	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1, &s, NULL,
	    &err), 0);
	assert_string_equal(s, "CB1:1:two");
	free(s);
	assert_int_equal(store_value_count(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 1);

	assert_int_equal(store_value_set(f->st, TYPE_A, USER_2, "GCM:abc",
	    30, &err), 0);
	assert_int_equal(store_value_set(f->st, TYPE_B, USER_1, "GCM:def",
	    40, &err), 0);
	assert_int_equal(store_value_count(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 2);

	assert_int_equal(store_value_list_user(f->st, USER_1, &sv, &ns, &err),
	    0);
	assert_int_equal(ns, 2);
	/* Ordered by type uuid: TYPE_A (0f8f...) before TYPE_B (7c9e...). */
	assert_string_equal(sv[0].type_uuid, TYPE_A);
	assert_int_equal(sv[0].updated_at, 20);
	assert_string_equal(sv[1].type_uuid, TYPE_B);
	assert_int_equal(sv[1].updated_at, 40);
	free(sv);
	assert_int_equal(store_value_list_user(f->st, TYPE_C, &sv, &ns, &err),
	    0);
	assert_int_equal(ns, 0);
	free(sv);

	/* Delete one, then again. */
	assert_int_equal(store_value_delete(f->st, TYPE_A, USER_1, &err), 0);
	assert_int_equal(store_value_delete(f->st, TYPE_A, USER_1, &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1, &s, &at,
	    &err), -CB_ENOTFOUND);

	/* Clear reports how many went, and only that type's. */
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "x", 50,
	    &err), 0);
	assert_int_equal(store_value_clear(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(store_value_clear(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_value_count(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_value_count(f->st, TYPE_B, &n, &err), 0);
	assert_int_equal(n, 1);

	/* A value for a type that does not exist. */
	cb_error_clear(&err);
	assert_int_equal(store_value_set(f->st, TYPE_C, USER_1, "x", 1, &err),
	    -CB_ENOTFOUND);
	assert_non_null(strstr(err.msg, TYPE_C));

	/* Bad ids are bad requests, never a row. */
	assert_int_equal(store_value_set(f->st, TYPE_A,
	    "886313E1-3B8A-5372-9B90-0C9AEE199E5D", "x", 1, &err),
	    -CB_EBADREQ);
	assert_int_equal(store_value_set(f->st, TYPE_A, "../../x", "x", 1,
	    &err), -CB_EBADREQ);
	assert_int_equal(store_value_get(f->st, "alpha", USER_1, &s, &at,
	    &err), -CB_EBADREQ);
	assert_string_equal(err.msg, "invalid credential type uuid");
	assert_null(s);
	assert_int_equal(store_value_get(f->st, TYPE_A,
	    "886313E1-3B8A-5372-9B90-0C9AEE199E5D", &s, &at, &err),
	    -CB_EBADREQ);
	assert_string_equal(err.msg,
	    "invalid user id (must be a lower-case uuid)");
	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1 "0", &s, &at,
	    &err), -CB_EBADREQ);
	assert_int_equal(store_value_get(f->st, TYPE_A, "../../x", &s, &at,
	    &err), -CB_EBADREQ);
	assert_int_equal(store_value_get(f->st, TYPE_A, NULL, &s, &at, &err),
	    -CB_EBADREQ);
	assert_null(s);
	assert_int_equal(store_value_list_user(f->st, "a/b", &sv, &ns, &err),
	    -CB_EBADREQ);
}

/* Error messages about values never contain the sealed text. */
static void
test_value_messages_hold_no_value(void **state)
{
	struct fixture	*f = *state;
	struct cb_error	 err;

	cb_error_clear(&err);
	assert_int_equal(store_value_set(f->st, TYPE_C, USER_1,
	    "CB1:1:SECRETSEALED", 1, &err), -CB_ENOTFOUND);
	assert_null(strstr(err.msg, "SECRETSEALED"));
}

/* Values of types now stored in Vault are left out of list_user. */
static void
test_list_user_skips_vault_types(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 t;
	struct store_status	*sv;
	struct cb_error		 err;
	size_t			 ns;

	create_simple(f->st, TYPE_A, "alpha");
	create_simple(f->st, TYPE_B, "beta");
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "x", 1, &err),
	    0);
	assert_int_equal(store_value_set(f->st, TYPE_B, USER_1, "y", 2, &err),
	    0);
	t = mktype(TYPE_A, "alpha", "alpha", STORE_VAULT, NULL, 0);
	assert_int_equal(store_type_update(f->st, &t, &err), 0);
	assert_int_equal(store_value_list_user(f->st, USER_1, &sv, &ns, &err),
	    0);
	assert_int_equal(ns, 1);
	assert_string_equal(sv[0].type_uuid, TYPE_B);
	free(sv);
}

/* Deleting a type takes its values with it, and only its own. */
static void
test_type_delete_cascades(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 got;
	struct store_status	*sv;
	struct cb_error		 err;
	char			*s;
	int64_t			 n;
	size_t			 ns;

	create_simple(f->st, TYPE_A, "alpha");
	create_simple(f->st, TYPE_B, "beta");
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "a1", 1, &err),
	    0);
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_2, "a2", 1, &err),
	    0);
	assert_int_equal(store_value_set(f->st, TYPE_B, USER_1, "b1", 1, &err),
	    0);

	assert_int_equal(store_type_delete(f->st, TYPE_A, &err), 0);
	assert_int_equal(store_type_get(f->st, "alpha", &got, &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_value_count(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1, &s, NULL,
	    &err), -CB_ENOTFOUND);
	assert_int_equal(store_value_list_user(f->st, USER_1, &sv, &ns, &err),
	    0);
	assert_int_equal(ns, 1);
	assert_string_equal(sv[0].type_uuid, TYPE_B);
	free(sv);

	s = side_query(f->path,
	    "SELECT count(*) FROM credvalues WHERE " BLOB_IS("type_uuid", TYPE_A));
	assert_string_equal(s, "0");
	free(s);

	cb_error_clear(&err);
	assert_int_equal(store_type_delete(f->st, TYPE_A, &err),
	    -CB_ENOTFOUND);
	assert_non_null(strstr(err.msg, TYPE_A));
	assert_int_equal(store_type_delete(f->st, "alpha", &err),
	    -CB_EBADREQ);

	/* The failed delete rolled back: the connection writes again. */
	create_simple(f->st, TYPE_A, "alpha");
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "a1", 1, &err),
	    0);
}

/* Settings: absent, set, replace, delete, delete again. */
static void
test_settings(void **state)
{
	struct fixture	*f = *state;
	struct cb_error	 err;
	char		*s = (char *)1;

	assert_int_equal(store_setting_get(f->st, "vault.role_id", &s, &err),
	    0);
	assert_null(s);
	assert_int_equal(store_setting_set(f->st, "vault.role_id", "CB1:1:r",
	    &err), 0);
	assert_int_equal(store_setting_get(f->st, "vault.role_id", &s, &err),
	    0);
	assert_string_equal(s, "CB1:1:r");
	free(s);
	assert_int_equal(store_setting_set(f->st, "vault.role_id", "CB1:1:q",
	    &err), 0);
	assert_int_equal(store_setting_get(f->st, "vault.role_id", &s, &err),
	    0);
	assert_string_equal(s, "CB1:1:q");
	free(s);
	assert_int_equal(store_setting_set(f->st, "vault.role_id", NULL, &err),
	    0);
	assert_int_equal(store_setting_get(f->st, "vault.role_id", &s, &err),
	    0);
	assert_null(s);
	assert_int_equal(store_setting_set(f->st, "vault.role_id", NULL, &err),
	    0);
	assert_int_equal(store_setting_set(f->st, "", "x", &err),
	    -CB_EINTERNAL);
}

/* Key check value: absent on a new store, then set and replaced. */
static void
test_kcv(void **state)
{
	struct fixture	*f = *state;
	struct cb_error	 err;
	char		*s = (char *)1;

	assert_int_equal(store_kcv_get(f->st, &s, &err), 0);
	assert_null(s);
	assert_int_equal(store_kcv_set(f->st, "kcv1:0011", &err), 0);
	assert_int_equal(store_kcv_get(f->st, &s, &err), 0);
	assert_string_equal(s, "kcv1:0011");
	free(s);
	assert_int_equal(store_kcv_set(f->st, "kcv1:2233", &err), 0);
	assert_int_equal(store_kcv_get(f->st, &s, &err), 0);
	assert_string_equal(s, "kcv1:2233");
	free(s);
	s = side_query(f->path, "SELECT count(*) FROM keycheck");
	assert_string_equal(s, "1");
	free(s);
}

/* Try PRAGMA wal_checkpoint(TRUNCATE) on db: 1 when a reader blocks it. */
static int
checkpoint_busy(sqlite3 *db)
{
	sqlite3_stmt	*q;
	int		 busy;

	assert_int_equal(sqlite3_prepare_v2(db,
	    "PRAGMA wal_checkpoint(TRUNCATE)", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	busy = sqlite3_column_int(q, 0);
	sqlite3_finalize(q);
	return busy;
}

/*
 * Hot-path reads share one read transaction until store_release() (the
 * daemon calls it once per loop iteration), and a write ends it first.
 * After the release no statement holds a read snapshot or lock: a second
 * connection can write and can truncate the WAL.
 */
static void
test_no_lingering_transaction(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 got, *v;
	struct cb_error		 err;
	char			*s;
	size_t			 n;
	sqlite3			*db;
	
	create_simple(f->st, TYPE_A, "alpha");
	create_simple(f->st, TYPE_B, "beta");
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "x", 1, &err),
	    0);
	assert_int_equal(store_type_get(f->st, "alpha", &got, &err), 0);
	store_type_free(&got);
	assert_int_equal(store_type_get(f->st, "nope", &got, &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_type_list(f->st, &v, &n, &err), 0);
	store_type_list_free(v, n);
	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1, &s, NULL,
	    &err), 0);
	free(s);
	assert_int_equal(store_kcv_get(f->st, &s, &err), 0);
	free(s);

	/* The value read holds a snapshot: the WAL cannot be truncated. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(checkpoint_busy(db), 1);
	/* A write through the store ends the hold and commits at once. */
	assert_int_equal(store_value_set(f->st, TYPE_B, USER_1, "y", 2, &err),
	    0);
	assert_int_equal(checkpoint_busy(db), 0);
	s = side_query(f->path, "SELECT sealed FROM credvalues WHERE "
	    BLOB_IS("type_uuid", TYPE_B));
	assert_string_equal(s, "y");
	free(s);

	/* Read again, then release as the daemon does each iteration. */
	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1, &s, NULL,
	    &err), 0);
	free(s);
	store_release(f->st);
	assert_int_equal(sqlite3_exec(db,
	    "INSERT INTO settings VALUES ('k', 'v')", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(checkpoint_busy(db), 0);	/* not busy */
	sqlite3_close(db);

	assert_int_equal(store_setting_get(f->st, "k", &s, &err), 0);
	assert_string_equal(s, "v");
	free(s);
}

/* Whether needle occurs in the file at path (absent file: no). */
static int
file_contains(const char *path, const char *needle)
{
	FILE	*fp;
	char	*buf;
	long	 len;
	int	 found = 0;

	if ((fp = fopen(path, "rb")) == NULL)
		return 0;
	fseek(fp, 0, SEEK_END);
	len = ftell(fp);
	fseek(fp, 0, SEEK_SET);
	buf = malloc((size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)len, fp), (size_t)len);
	fclose(fp);
	found = memmem(buf, (size_t)len, needle, strlen(needle)) != NULL;
	free(buf);
	return found;
}

/* secure_delete: a deleted sealed value is not left in the file. */
static void
test_secure_delete(void **state)
{
	struct fixture	*f = *state;
	struct cb_error	 err;
	char		 wal[160];
	const char	*marker = "CB1:1:MARKERMARKERMARKER0123456789";

	create_simple(f->st, TYPE_A, "alpha");
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, marker, 1,
	    &err), 0);
	reopen(f);			/* checkpoint into the main file */
	assert_true(file_contains(f->path, marker));

	assert_int_equal(store_value_delete(f->st, TYPE_A, USER_1, &err), 0);
	store_close(f->st);		/* checkpoint, remove the WAL */
	f->st = NULL;
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_false(file_contains(f->path, marker));
	assert_false(file_contains(wal, marker));
	reopen(f);
}

/* New uuids are valid, version 4, RFC 4122 variant, and distinct. */
static int
cmp_uuid(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void
test_uuid_new(void **state)
{
	enum { N = 1000 };
	char	(*v)[STORE_UUID_LEN + 1];
	size_t	 i;

	v = calloc(N, sizeof(*v));
	assert_non_null(v);
	for (i = 0; i < N; i++) {
		assert_int_equal(store_uuid_new(v[i]), 0);
		assert_int_equal(strlen(v[i]), STORE_UUID_LEN);
		assert_true(ids_uuid_valid(v[i]));
		assert_int_equal(v[i][14], '4');
		assert_non_null(strchr("89ab", v[i][19]));
	}
	qsort(v, N, sizeof(*v), cmp_uuid);
	for (i = 1; i < N; i++)
		assert_string_not_equal(v[i - 1], v[i]);
	free(v);
}

/*
 * Types are served from memory: every one of many types is found by ident
 * and by uuid, and creating, updating and deleting a type is seen by the
 * very next lookup and listing.
 */
static void
test_type_lookup_cache(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 t, got, *v;
	struct cb_error		 err;
	char			 uuid[STORE_UUID_LEN + 1], ident[16];
	size_t			 n, i;
	int			 k;

	/* Idents and uuids in different orders, so both indexes matter. */
	for (k = 0; k < 40; k++) {
		snprintf(uuid, sizeof(uuid),
		    "%08x-0000-4000-8000-000000000000", (unsigned)(k * 7919 % 40));
		snprintf(ident, sizeof(ident), "t%02d", 39 - k);
		create_simple(f->st, uuid, ident);
	}
	for (k = 0; k < 40; k++) {
		snprintf(uuid, sizeof(uuid),
		    "%08x-0000-4000-8000-000000000000", (unsigned)(k * 7919 % 40));
		snprintf(ident, sizeof(ident), "t%02d", 39 - k);
		assert_int_equal(store_type_get(f->st, ident, &got, &err), 0);
		assert_string_equal(got.uuid, uuid);
		store_type_free(&got);
		assert_int_equal(store_type_get(f->st, uuid, &got, &err), 0);
		assert_string_equal(got.ident, ident);
		store_type_free(&got);
	}
	assert_int_equal(store_type_get(f->st, "t40", &got, &err),
	    -CB_ENOTFOUND);

	/* A new type is found at once, though the cache was loaded. */
	create_simple(f->st, TYPE_A, "zz_new");
	assert_int_equal(store_type_get(f->st, "zz_new", &got, &err), 0);
	assert_string_equal(got.uuid, TYPE_A);
	store_type_free(&got);

	/* An update is seen by get and by list. */
	t = mktype(TYPE_A, "zz_new", "Renamed", STORE_DB, NULL, 0);
	assert_int_equal(store_type_update(f->st, &t, &err), 0);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_string_equal(got.name, "Renamed");
	store_type_free(&got);
	assert_int_equal(store_type_list(f->st, &v, &n, &err), 0);
	assert_int_equal(n, 41);
	assert_string_equal(v[0].ident, "t00");
	assert_string_equal(v[40].ident, "zz_new");
	assert_string_equal(v[40].name, "Renamed");
	for (i = 1; i < n; i++)
		assert_true(strcmp(v[i - 1].ident, v[i].ident) < 0);
	store_type_list_free(v, n);

	/* A deleted type is gone from both. */
	assert_int_equal(store_type_delete(f->st, TYPE_A, &err), 0);
	assert_int_equal(store_type_get(f->st, "zz_new", &got, &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_type_list(f->st, &v, &n, &err), 0);
	assert_int_equal(n, 40);
	store_type_list_free(v, n);
}

/* Monotonic milliseconds. */
static int64_t
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Another process's write lock never puts the store to sleep: a write
 * fails at once with -CB_EUNAVAILABLE naming the cause and changes
 * nothing, reads go on, and once the lock is gone writes work again.
 */
static void
test_write_lock_elsewhere_fails_at_once(void **state)
{
	struct fixture	*f = *state;
	struct cb_error	 err;
	sqlite3		*db = NULL;
	char		*sealed = NULL;
	int64_t		 t0, ts;

	create_simple(f->st, TYPE_A, "github");
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "CB1:1:old",
	    1, &err), 0);
	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL,
	    NULL), SQLITE_OK);

	t0 = now_ms();
	cb_error_clear(&err);
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "CB1:1:new",
	    2, &err), -CB_EUNAVAILABLE);
	assert_non_null(strstr(err.msg, "locked by another process"));
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_2, "CB1:1:two",
	    2, &err), -CB_EUNAVAILABLE);
	assert_int_equal(store_kcv_set(f->st, "kcv1:00", &err),
	    -CB_EUNAVAILABLE);
	/* Far below the busy timeout a waiting store would use. */
	assert_true(now_ms() - t0 < 4000);

	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1, &sealed, &ts,
	    &err), 0);
	assert_string_equal(sealed, "CB1:1:old");
	free(sealed);
	store_release(f->st);

	assert_int_equal(sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_value_get(f->st, TYPE_A, USER_2, &sealed, &ts,
	    &err), -CB_ENOTFOUND);
	store_release(f->st);
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "CB1:1:new",
	    3, &err), 0);
	reopen(f);
	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1, &sealed, &ts,
	    &err), 0);
	assert_string_equal(sealed, "CB1:1:new");
	assert_int_equal(ts, 3);
	free(sealed);
	store_release(f->st);
}

/*
 * Many types, written behind the store's back in one transaction (one
 * fsync, not one per type).  Type i has ident "t%05u" and a uuid whose
 * first group scrambles i, so uuid order is not ident order; every third
 * type is vault-stored.  USER_1 has a db row for every even type, also
 * for the vault-stored ones (rows left behind by an older release).
 */
#define BIG_TYPES	50000

static void
big_uuid(char out[STORE_UUID_LEN + 1], unsigned i)
{
	snprintf(out, STORE_UUID_LEN + 1, "%08x-0000-4000-8000-%012x",
	    (unsigned)(i * 2654435761u), i);
}

static void
big_populate(const char *path, unsigned n)
{
	sqlite3		*db = NULL;
	sqlite3_stmt	*ti = NULL, *vi = NULL;
	char		 uuid[STORE_UUID_LEN + 1], ident[32];
	uint8_t		 tb[IDS_UUID_BYTES], ub[IDS_UUID_BYTES];
	unsigned	 i;

	assert_true(ids_uuid_pack(USER_1, ub));
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO types (uuid, "
	    "ident, name, storage, created_at, updated_at) "
	    "VALUES (?1, ?2, ?2, ?3, 1, 1)", -1, &ti, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO credvalues "
	    "(type_uuid, user_uuid, sealed, updated_at) "
	    "VALUES (?1, ?2, 'CB1:1:x', ?3)", -1, &vi, NULL), SQLITE_OK);
	for (i = 0; i < n; i++) {
		big_uuid(uuid, i);
		snprintf(ident, sizeof(ident), "t%05u", i);
		sqlite3_bind_text(ti, 1, uuid, -1, SQLITE_STATIC);
		sqlite3_bind_text(ti, 2, ident, -1, SQLITE_STATIC);
		sqlite3_bind_text(ti, 3, i % 3 == 2 ? "vault" : "db", -1,
		    SQLITE_STATIC);
		assert_int_equal(sqlite3_step(ti), SQLITE_DONE);
		sqlite3_reset(ti);
		if (i % 2 != 0)
			continue;
		assert_true(ids_uuid_pack(uuid, tb));
		sqlite3_bind_blob(vi, 1, tb, sizeof(tb), SQLITE_STATIC);
		sqlite3_bind_blob(vi, 2, ub, sizeof(ub), SQLITE_STATIC);
		sqlite3_bind_int64(vi, 3, 1000000 + i);
		assert_int_equal(sqlite3_step(vi), SQLITE_DONE);
		sqlite3_reset(vi);
	}
	sqlite3_finalize(ti);
	sqlite3_finalize(vi);
	assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
}

/*
 * cred.status's query at 50,000 types: every type reported in ident
 * order, filled exactly where a db-stored type has a row, from one load
 * of the type cache.
 */
static void
test_user_status_50k_types(void **state)
{
	struct fixture		*f = *state;
	struct store_type	*v;
	struct cb_error		 err;
	int64_t			*upd;
	size_t			 n, i;
	char			 ident[32];

	big_populate(f->path, BIG_TYPES);
	assert_int_equal(store_user_status(f->st, USER_1, &v, &upd, &n, &err),
	    0);
	assert_int_equal(n, BIG_TYPES);
	for (i = 0; i < n; i++) {
		snprintf(ident, sizeof(ident), "t%05zu", i);
		assert_string_equal(v[i].ident, ident);
		if (i % 2 == 0 && i % 3 != 2)
			assert_int_equal(upd[i], 1000000 + (int64_t)i);
		else
			assert_int_equal(upd[i], 0);
	}
	store_type_list_free(v, n);
	free(upd);

	assert_int_equal(store_user_status(f->st, USER_2, &v, &upd, &n, &err),
	    0);
	assert_int_equal(n, BIG_TYPES);
	for (i = 0; i < n; i++)
		assert_int_equal(upd[i], 0);
	store_type_list_free(v, n);
	free(upd);
	assert_int_equal(store_type_cache_loads(f->st), 1);
}

/* The cache as a second store reads it from the table: the same list. */
static void
check_cache_matches_table(struct fixture *f)
{
	struct store		*st2 = NULL;
	struct store_type	*a, *b;
	struct cb_error		 err;
	size_t			 na, nb, i;

	assert_int_equal(store_open(f->path, &st2, &err), 0);
	assert_int_equal(store_type_list(f->st, &a, &na, &err), 0);
	assert_int_equal(store_type_list(st2, &b, &nb, &err), 0);
	assert_int_equal(na, nb);
	for (i = 0; i < na; i++) {
		assert_string_equal(a[i].uuid, b[i].uuid);
		assert_string_equal(a[i].ident, b[i].ident);
		assert_string_equal(a[i].name, b[i].name);
		assert_int_equal(a[i].storage, b[i].storage);
		assert_int_equal(a[i].generation, b[i].generation);
		assert_int_equal(a[i].created_at, b[i].created_at);
		assert_int_equal(a[i].updated_at, b[i].updated_at);
	}
	store_type_list_free(a, na);
	store_type_list_free(b, nb);
	store_close(st2);
}

/*
 * type.create, update and delete among 50,000 types keep the cache in
 * place: it is read from the table once, and stays what the table says.
 */
static void
test_type_writes_do_not_reload_the_cache(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 t, got;
	struct cb_error		 err;
	char			 uuid[STORE_UUID_LEN + 1], ident[32];
	unsigned		 i;

	big_populate(f->path, BIG_TYPES);
	assert_int_equal(store_type_get(f->st, "t00000", &got, &err), 0);
	store_type_free(&got);
	assert_int_equal(store_type_cache_loads(f->st), 1);

	/* New idents before, among and after the existing ones. */
	for (i = 0; i < 12; i++) {
		big_uuid(uuid, BIG_TYPES + i);
		snprintf(ident, sizeof(ident), "%c%05u_new", "atz"[i % 3],
		    i * 4001);
		t = mktype(uuid, ident, ident, STORE_DB, NULL, 0);
		assert_int_equal(store_type_create(f->st, &t, &err), 0);
		assert_int_equal(store_type_get(f->st, ident, &got, &err), 0);
		assert_string_equal(got.uuid, uuid);
		store_type_free(&got);
		assert_int_equal(store_type_get(f->st, uuid, &got, &err), 0);
		assert_string_equal(got.ident, ident);
		store_type_free(&got);
	}
	/* A taken ident fails and changes nothing. */
	big_uuid(uuid, 2 * BIG_TYPES);
	t = mktype(uuid, "t00007", "dup", STORE_DB, NULL, 0);
	assert_int_equal(store_type_create(f->st, &t, &err), -CB_ECONFLICT);
	assert_int_equal(store_type_get(f->st, uuid, &got, &err),
	    -CB_ENOTFOUND);

	for (i = 0; i < 10; i++) {
		big_uuid(uuid, i * 997);
		snprintf(ident, sizeof(ident), "t%05u", i * 997);
		t = mktype(uuid, ident, "renamed", i % 2 ? STORE_VAULT :
		    STORE_DB, NULL, 0);
		assert_int_equal(store_type_update(f->st, &t, &err), 0);
		assert_int_equal(store_type_get(f->st, ident, &got, &err), 0);
		assert_string_equal(got.name, "renamed");
		assert_int_equal(got.storage, t.storage);
		store_type_free(&got);
	}
	for (i = 0; i < 10; i++) {
		big_uuid(uuid, i * 991 + 5);
		assert_int_equal(store_type_delete(f->st, uuid, &err), 0);
		assert_int_equal(store_type_get(f->st, uuid, &got, &err),
		    -CB_ENOTFOUND);
	}
	assert_int_equal(store_type_cache_loads(f->st), 1);
	check_cache_matches_table(f);
	assert_int_equal(store_type_cache_loads(f->st), 1);
}

/* A second connection commits sql, as the writer's connection does. */
static void
side_exec(const char *path, const char *sql)
{
	sqlite3	*db = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* What a borrowed copy of type TYPE_A named name must still hold. */
static void
check_borrowed(const struct store_type *b, const char *name,
    const char *dest)
{
	assert_string_equal(b->uuid, TYPE_A);
	assert_string_equal(b->ident, "alpha");
	assert_string_equal(b->name, name);
	assert_int_equal(b->ndestinations, 1);
	assert_string_equal(b->destinations[0], dest);
	assert_string_equal(b->default_account, "");
	assert_null(b->default_sealed);
}

/*
 * A borrowed type stays valid and unchanged until it is released, while
 * the cache follows an update, a default, another connection's write
 * (sync), a delete, a drop and a reload, and the store's close; new
 * lookups see each change at once.
 */
static void
test_borrowed_type_outlives_every_change_of_the_cache(void **state)
{
	struct fixture		*f = *state;
	char			*d1[] = { (char *)"https://one.example" };
	char			*d2[] = { (char *)"https://two.example" };
	struct store_type	 t = mktype(TYPE_A, "alpha", "First", STORE_DB,
				    d1, 1);
	const struct store_type	*b1, *b2, *b3, *b4;
	struct store_type	 got;
	struct cb_error		 err;

	assert_int_equal(store_type_create(f->st, &t, &err), 0);
	assert_int_equal(store_type_borrow(f->st, "alpha", &b1, &err), 0);
	assert_int_equal(store_type_borrow(f->st, TYPE_A, &b2, &err), 0);
	assert_ptr_equal(b1, b2);		/* the cache's, not a copy */
	assert_int_equal(store_type_borrow(f->st, "nosuch", &b4, &err),
	    -CB_ENOTFOUND);
	assert_null(b4);
	assert_int_equal(store_type_borrow(f->st, "-bad", &b4, &err),
	    -CB_EBADREQ);
	check_borrowed(b1, "First", "https://one.example");

	/* An update: b1 keeps the old fields; a new borrow has the new. */
	t = mktype(TYPE_A, "alpha", "Second", STORE_DB, d2, 1);
	assert_int_equal(store_type_update(f->st, &t, &err), 0);
	check_borrowed(b1, "First", "https://one.example");
	assert_int_equal(store_type_borrow(f->st, "alpha", &b3, &err), 0);
	assert_ptr_not_equal(b3, b1);
	check_borrowed(b3, "Second", "https://two.example");

	/* A default account: b3 keeps none. */
	assert_int_equal(store_type_set_default(f->st, TYPE_A, "acct",
	    "sealed-name", &err), 0);
	check_borrowed(b3, "Second", "https://two.example");
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_string_equal(got.default_account, "acct");
	store_type_free(&got);

	/* Another connection's write, then the sync that follows it. */
	assert_int_equal(store_type_borrow(f->st, "alpha", &b4, &err), 0);
	side_exec(f->path, "UPDATE types SET name = 'Third' WHERE uuid = '"
	    TYPE_A "'");
	store_type_cache_sync(f->st, TYPE_A);
	assert_string_equal(b4->name, "Second");
	assert_string_equal(b4->default_account, "acct");
	assert_int_equal(store_type_get(f->st, "alpha", &got, &err), 0);
	assert_string_equal(got.name, "Third");
	store_type_free(&got);
	store_type_release(b4);

	/* A delete, a drop and a reload, then the store's close. */
	assert_int_equal(store_type_delete(f->st, TYPE_A, &err), 0);
	assert_int_equal(store_type_get(f->st, "alpha", &got, &err),
	    -CB_ENOTFOUND);
	create_simple(f->st, TYPE_B, "beta");
	store_type_cache_drop(f->st);
	assert_int_equal(store_type_borrow(f->st, "beta", &b4, &err), 0);
	reopen(f);
	check_borrowed(b1, "First", "https://one.example");
	check_borrowed(b3, "Second", "https://two.example");
	assert_string_equal(b4->ident, "beta");
	store_type_release(b1);
	store_type_release(b2);
	store_type_release(b3);
	store_type_release(b4);
	store_type_release(NULL);
}

/*
 * A change of storage deletes the type's db values in the same
 * transaction, says how many, and counts the generation up; other
 * updates and other types keep theirs.
 */
static void
test_storage_change_deletes_db_values(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 t, got;
	struct cb_error		 err;
	int64_t			 removed, n;
	char			*s;

	create_simple(f->st, TYPE_A, "alpha");
	create_simple(f->st, TYPE_B, "beta");
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "a1", 1, &err),
	    0);
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_2, "a2", 1, &err),
	    0);
	assert_int_equal(store_value_set(f->st, TYPE_B, USER_1, "b1", 1, &err),
	    0);

	t = mktype(TYPE_A, "alpha", "renamed", STORE_DB, NULL, 0);
	assert_int_equal(store_type_update_count(f->st, &t, &removed, &err),
	    0);
	assert_int_equal(removed, 0);
	assert_int_equal(store_value_count(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 2);

	t.storage = STORE_VAULT;
	assert_int_equal(store_type_update_count(f->st, &t, &removed, &err),
	    0);
	assert_int_equal(removed, 2);
	assert_int_equal(store_value_count(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_value_count(f->st, TYPE_B, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_type_get(f->st, "alpha", &got, &err), 0);
	assert_int_equal(got.generation, 1);
	store_type_free(&got);

	t.storage = STORE_DB;
	assert_int_equal(store_type_update_count(f->st, &t, &removed, &err),
	    0);
	assert_int_equal(removed, 0);
	reopen(f);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_int_equal(got.generation, 2);
	assert_int_equal(got.storage, STORE_DB);
	store_type_free(&got);
	assert_int_equal(store_type_get(f->st, TYPE_B, &got, &err), 0);
	assert_int_equal(got.generation, 0);
	store_type_free(&got);
	s = side_query(f->path,
	    "SELECT generation FROM types WHERE uuid = '" TYPE_A "'");
	assert_string_equal(s, "2");
	free(s);
}

/*
 * Key pairs and peer keys.  The sealed texts below stand for what the
 * daemon seals; the store only keeps them.
 */

/* Whether a second connection can write now (no write lock held). */
static int
side_can_write(const char *path)
{
	sqlite3	*db = NULL;
	int	 rc;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	rc = sqlite3_exec(db, "INSERT INTO settings VALUES ('probe', 'x');"
	    "DELETE FROM settings WHERE key = 'probe'", NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK;
}

/* Add version v of key pair ident, which must be the next one. */
static void
kp_add(struct store *st, const char *ident, uint32_t v, int bits,
    const char *sealed, int64_t now)
{
	struct cb_error	err;
	uint32_t	next;

	assert_int_equal(store_keypair_next(st, ident, &next, &err), 0);
	assert_int_equal(next, v);
	assert_int_equal(store_keypair_add(st, ident, v, bits, sealed, now,
	    &err), 0);
}

/* The sealed text of one key version (0: current); *got its version. */
static char *
key_text(struct store *st, int keyclass, const char *ident, uint32_t v,
    uint32_t *got)
{
	struct cb_error	 err;
	char		*sealed = NULL;

	assert_int_equal(store_key_sealed(st, keyclass, ident, v, got,
	    &sealed, &err), 0);
	assert_non_null(sealed);
	return sealed;
}

/* Check that the key's versions are exactly want[0..n). */
static void
assert_versions(struct store *st, int keyclass, const char *ident,
    const uint32_t *want, size_t n)
{
	struct store_keyset	k;
	struct cb_error		err;
	size_t			i;

	assert_int_equal(store_key_get(st, keyclass, ident, &k, &err), 0);
	assert_int_equal(k.nversions, n);
	for (i = 0; i < n; i++)
		assert_int_equal(k.versions[i].version, want[i]);
	store_keyset_free(&k);
}

static void
test_keypair_versions_count_up_and_a_stale_add_conflicts(void **state)
{
	struct fixture		*f = *state;
	struct store_keyset	 k;
	struct cb_error		 err;
	uint32_t		 next, got;
	char			*s;
	static const uint32_t	 one[] = { 1 }, two[] = { 1, 2 };

	assert_int_equal(store_keypair_next(f->st, "signer", &next, &err), 0);
	assert_int_equal(next, 1);
	kp_add(f->st, "signer", 1, 2048, "CB1:1:one", 100);
	assert_int_equal(store_keypair_next(f->st, "signer", &next, &err), 0);
	assert_int_equal(next, 2);

	/* Two callers given version 2: the second fails, nothing changes. */
	cb_error_clear(&err);
	assert_int_equal(store_keypair_add(f->st, "signer", 1, 2048,
	    "CB1:1:stale", 150, &err), -CB_ECONFLICT);
	assert_non_null(strstr(err.msg, "'signer'"));
	assert_int_equal(store_keypair_add(f->st, "signer", 3, 2048,
	    "CB1:1:ahead", 150, &err), -CB_ECONFLICT);
	assert_versions(f->st, STORE_KEYPAIR, "signer", one, 1);
	s = key_text(f->st, STORE_KEYPAIR, "signer", 0, &got);
	assert_int_equal(got, 1);
	assert_string_equal(s, "CB1:1:one");
	free(s);
	assert_int_equal(store_keypair_next(f->st, "signer", &next, &err), 0);
	assert_int_equal(next, 2);

	kp_add(f->st, "signer", 2, 4096, "CB1:1:two", 200);
	assert_int_equal(store_keypair_add(f->st, "signer", 2, 4096,
	    "CB1:1:again", 300, &err), -CB_ECONFLICT);
	assert_versions(f->st, STORE_KEYPAIR, "signer", two, 2);
	/* A new ident starts at 1; an add of a new ident at 2 fails. */
	assert_int_equal(store_keypair_add(f->st, "other", 2, 2048,
	    "CB1:1:x", 1, &err), -CB_ECONFLICT);
	assert_int_equal(store_key_get(f->st, STORE_KEYPAIR, "other", &k,
	    &err), -CB_ENOTFOUND);
	assert_int_equal(store_keypair_next(f->st, "other", &next, &err), 0);
	assert_int_equal(next, 1);
	s = side_query(f->path,
	    "SELECT count(*) FROM keypairs WHERE ident = 'other'");
	assert_string_equal(s, "0");
	free(s);
	assert_true(side_can_write(f->path));

	/* The versions and counter survive a reopen. */
	reopen(f);
	assert_versions(f->st, STORE_KEYPAIR, "signer", two, 2);
	assert_int_equal(store_keypair_next(f->st, "signer", &next, &err), 0);
	assert_int_equal(next, 3);
}

static void
test_key_get_and_list_give_versions_ascending_with_their_fields(void **state)
{
	struct fixture		*f = *state;
	struct store_keyset	 k, *v;
	struct cb_error		 err;
	uint32_t		 got;
	size_t			 n;
	char			*s;

	assert_int_equal(store_key_list(f->st, STORE_KEYPAIR, &v, &n, &err),
	    0);
	assert_int_equal(n, 0);
	store_keyset_list_free(v, n);

	kp_add(f->st, "zeta", 1, 3072, "CB1:1:z1", 300);
	kp_add(f->st, "alpha", 1, 2048, "CB1:1:a1", 100);
	kp_add(f->st, "alpha", 2, 4096, "CB1:1:a2", 200);
	kp_add(f->st, "alpha", 3, 2048, "CB1:1:a3", 250);
	/* Peer versions come from the counterpart, in any order. */
	assert_int_equal(store_peerkey_add(f->st, "datalens", 5, 4096,
	    "CB1:1:p5", 10, &err), 0);
	assert_int_equal(store_peerkey_add(f->st, "datalens", 2, 2048,
	    "CB1:1:p2", 20, &err), 0);

	assert_int_equal(store_key_get(f->st, STORE_KEYPAIR, "alpha", &k,
	    &err), 0);
	assert_string_equal(k.ident, "alpha");
	assert_int_equal(k.nversions, 3);
	assert_int_equal(k.versions[0].version, 1);
	assert_int_equal(k.versions[0].bits, 2048);
	assert_int_equal(k.versions[0].created_at, 100);
	assert_int_equal(k.versions[1].version, 2);
	assert_int_equal(k.versions[1].bits, 4096);
	assert_int_equal(k.versions[1].created_at, 200);
	assert_int_equal(k.versions[2].version, 3);
	assert_int_equal(k.versions[2].created_at, 250);
	assert_int_equal(k.created_at, 100);
	assert_int_equal(k.updated_at, 250);
	store_keyset_free(&k);

	assert_int_equal(store_key_get(f->st, STORE_PEERKEY, "datalens", &k,
	    &err), 0);
	assert_int_equal(k.nversions, 2);
	assert_int_equal(k.versions[0].version, 2);
	assert_int_equal(k.versions[0].bits, 2048);
	assert_int_equal(k.versions[1].version, 5);
	assert_int_equal(k.versions[1].bits, 4096);
	assert_int_equal(k.created_at, 10);
	assert_int_equal(k.updated_at, 20);
	store_keyset_free(&k);

	/* The classes are apart. */
	assert_int_equal(store_key_get(f->st, STORE_PEERKEY, "alpha", &k,
	    &err), -CB_ENOTFOUND);
	assert_int_equal(store_key_get(f->st, STORE_KEYPAIR, "datalens", &k,
	    &err), -CB_ENOTFOUND);

	assert_int_equal(store_key_list(f->st, STORE_KEYPAIR, &v, &n, &err),
	    0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].ident, "alpha");
	assert_int_equal(v[0].nversions, 3);
	assert_int_equal(v[0].versions[2].version, 3);
	assert_int_equal(v[0].created_at, 100);
	assert_int_equal(v[0].updated_at, 250);
	assert_string_equal(v[1].ident, "zeta");
	assert_int_equal(v[1].nversions, 1);
	assert_int_equal(v[1].versions[0].bits, 3072);
	assert_int_equal(v[1].created_at, 300);
	store_keyset_list_free(v, n);
	assert_int_equal(store_key_list(f->st, STORE_PEERKEY, &v, &n, &err),
	    0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].ident, "datalens");
	assert_int_equal(v[0].nversions, 2);
	assert_int_equal(v[0].versions[0].version, 2);
	assert_int_equal(v[0].versions[1].version, 5);
	store_keyset_list_free(v, n);

	/* Version 0 is the current (highest) one. */
	s = key_text(f->st, STORE_KEYPAIR, "alpha", 0, &got);
	assert_int_equal(got, 3);
	assert_string_equal(s, "CB1:1:a3");
	free(s);
	s = key_text(f->st, STORE_KEYPAIR, "alpha", 2, &got);
	assert_int_equal(got, 2);
	assert_string_equal(s, "CB1:1:a2");
	free(s);
	s = key_text(f->st, STORE_PEERKEY, "datalens", 0, &got);
	assert_int_equal(got, 5);
	assert_string_equal(s, "CB1:1:p5");
	free(s);
	s = key_text(f->st, STORE_PEERKEY, "datalens", 2, &got);
	assert_int_equal(got, 2);
	assert_string_equal(s, "CB1:1:p2");
	free(s);
	assert_true(side_can_write(f->path));
}

static void
test_key_delete_one_every_and_the_last_version(void **state)
{
	struct fixture	*f = *state;
	struct cb_error	 err;
	uint32_t	 next;
	int64_t		 removed;
	char		*s;
	static const uint32_t v13[] = { 1, 3 }, v1[] = { 1 }, v14[] = { 1, 4 },
	    p5[] = { 5 };

	kp_add(f->st, "alpha", 1, 2048, "CB1:1:a1", 1);
	kp_add(f->st, "alpha", 2, 2048, "CB1:1:a2", 2);
	kp_add(f->st, "alpha", 3, 2048, "CB1:1:a3", 3);
	kp_add(f->st, "beta", 1, 2048, "CB1:1:b1", 4);

	/* One version. */
	assert_int_equal(store_key_delete(f->st, STORE_KEYPAIR, "alpha", 2,
	    &removed, &err), 0);
	assert_int_equal(removed, 1);
	assert_versions(f->st, STORE_KEYPAIR, "alpha", v13, 2);
	cb_error_clear(&err);
	assert_int_equal(store_key_delete(f->st, STORE_KEYPAIR, "alpha", 2,
	    &removed, &err), -CB_ENOTFOUND);
	assert_int_equal(removed, 0);
	assert_string_equal(err.msg, "key pair 'alpha' has no version 2");

	/* The newest: its number is not given out again. */
	assert_int_equal(store_key_delete(f->st, STORE_KEYPAIR, "alpha", 3,
	    NULL, &err), 0);
	assert_versions(f->st, STORE_KEYPAIR, "alpha", v1, 1);
	assert_int_equal(store_keypair_next(f->st, "alpha", &next, &err), 0);
	assert_int_equal(next, 4);
	assert_int_equal(store_keypair_add(f->st, "alpha", 3, 2048,
	    "CB1:1:reused", 5, &err), -CB_ECONFLICT);
	kp_add(f->st, "alpha", 4, 2048, "CB1:1:a4", 6);
	assert_versions(f->st, STORE_KEYPAIR, "alpha", v14, 2);

	/* Every version: the key pair goes, and its counter with it. */
	assert_int_equal(store_key_delete(f->st, STORE_KEYPAIR, "alpha", 0,
	    &removed, &err), 0);
	assert_int_equal(removed, 2);
	cb_error_clear(&err);
	assert_int_equal(store_key_sealed(f->st, STORE_KEYPAIR, "alpha", 0,
	    &next, &s, &err), -CB_ENOTFOUND);
	assert_null(s);
	assert_string_equal(err.msg, "no key pair 'alpha'");
	assert_int_equal(store_keypair_next(f->st, "alpha", &next, &err), 0);
	assert_int_equal(next, 1);
	cb_error_clear(&err);
	assert_int_equal(store_key_delete(f->st, STORE_KEYPAIR, "alpha", 0,
	    &removed, &err), -CB_ENOTFOUND);
	assert_string_equal(err.msg, "no key pair 'alpha'");

	/* The last version, deleted by number: the same. */
	assert_int_equal(store_key_delete(f->st, STORE_KEYPAIR, "beta", 1,
	    &removed, &err), 0);
	assert_int_equal(removed, 1);
	assert_int_equal(store_keypair_next(f->st, "beta", &next, &err), 0);
	assert_int_equal(next, 1);
	s = side_query(f->path, "SELECT count(*) FROM keypairs");
	assert_string_equal(s, "0");
	free(s);
	s = side_query(f->path, "SELECT count(*) FROM keypair_versions");
	assert_string_equal(s, "0");
	free(s);
	kp_add(f->st, "beta", 1, 2048, "CB1:1:b1-new", 7);

	/* Peer keys. */
	assert_int_equal(store_peerkey_add(f->st, "peer", 2, 2048, "CB1:1:p2",
	    1, &err), 0);
	assert_int_equal(store_peerkey_add(f->st, "peer", 5, 2048, "CB1:1:p5",
	    1, &err), 0);
	assert_int_equal(store_key_delete(f->st, STORE_PEERKEY, "peer", 2,
	    &removed, &err), 0);
	assert_int_equal(removed, 1);
	assert_versions(f->st, STORE_PEERKEY, "peer", p5, 1);
	cb_error_clear(&err);
	assert_int_equal(store_key_delete(f->st, STORE_PEERKEY, "peer", 9,
	    &removed, &err), -CB_ENOTFOUND);
	assert_string_equal(err.msg, "peer key 'peer' has no version 9");
	assert_int_equal(store_key_delete(f->st, STORE_PEERKEY, "peer", 0,
	    &removed, &err), 0);
	assert_int_equal(removed, 1);
	s = side_query(f->path, "SELECT count(*) FROM peerkeys");
	assert_string_equal(s, "0");
	free(s);
	/* A key pair of the same name is another thing. */
	assert_int_equal(store_key_delete(f->st, STORE_PEERKEY, "beta", 0,
	    &removed, &err), -CB_ENOTFOUND);
	assert_versions(f->st, STORE_KEYPAIR, "beta", v1, 1);
	assert_true(side_can_write(f->path));
}

static void
test_key_not_found_names_the_ident_and_version(void **state)
{
	struct fixture		*f = *state;
	struct store_keyset	 k;
	struct cb_error		 err;
	uint32_t		 got = 7;
	char			*s = (char *)"x";

	kp_add(f->st, "alpha", 1, 2048, "CB1:1:a1", 1);
	assert_int_equal(store_peerkey_add(f->st, "peer", 4, 2048, "CB1:1:p4",
	    1, &err), 0);

	cb_error_clear(&err);
	assert_int_equal(store_key_get(f->st, STORE_KEYPAIR, "ghost", &k,
	    &err), -CB_ENOTFOUND);
	assert_string_equal(err.msg, "no key pair 'ghost'");
	assert_int_equal(k.nversions, 0);
	assert_null(k.versions);
	cb_error_clear(&err);
	assert_int_equal(store_key_sealed(f->st, STORE_KEYPAIR, "ghost", 0,
	    &got, &s, &err), -CB_ENOTFOUND);
	assert_string_equal(err.msg, "no key pair 'ghost'");
	assert_int_equal(got, 0);
	assert_null(s);
	cb_error_clear(&err);
	assert_int_equal(store_key_sealed(f->st, STORE_KEYPAIR, "ghost", 3,
	    &got, &s, &err), -CB_ENOTFOUND);
	assert_string_equal(err.msg, "no key pair 'ghost'");
	cb_error_clear(&err);
	assert_int_equal(store_key_sealed(f->st, STORE_KEYPAIR, "alpha", 3,
	    &got, &s, &err), -CB_ENOTFOUND);
	assert_string_equal(err.msg, "key pair 'alpha' has no version 3");
	cb_error_clear(&err);
	assert_int_equal(store_key_delete(f->st, STORE_KEYPAIR, "ghost", 3,
	    NULL, &err), -CB_ENOTFOUND);
	assert_string_equal(err.msg, "no key pair 'ghost'");

	cb_error_clear(&err);
	assert_int_equal(store_key_get(f->st, STORE_PEERKEY, "ghost", &k,
	    &err), -CB_ENOTFOUND);
	assert_string_equal(err.msg, "no peer key 'ghost'");
	cb_error_clear(&err);
	assert_int_equal(store_key_sealed(f->st, STORE_PEERKEY, "peer", 3,
	    &got, &s, &err), -CB_ENOTFOUND);
	assert_string_equal(err.msg, "peer key 'peer' has no version 3");
	cb_error_clear(&err);
	assert_int_equal(store_key_sealed(f->st, STORE_PEERKEY, "alpha", 0,
	    &got, &s, &err), -CB_ENOTFOUND);
	assert_string_equal(err.msg, "no peer key 'alpha'");
	assert_true(side_can_write(f->path));
}

static void
test_key_bad_idents_and_versions_are_bad_requests(void **state)
{
	struct fixture		*f = *state;
	struct store_keyset	 k, *v;
	struct store_keyrow	 row;
	struct cb_error		 err;
	uint32_t		 got;
	int64_t			 removed;
	size_t			 n, i;
	char			*s, *side;
	static const char *const bad[] = { "", "Upper", "1abc", "a-b",
	    "a b", "a/b", "a'b", "\xc3\xa9t\xc3\xa9",
	    "a1234567890123456789012345678901234567890123456789012345678901234",
	    NULL };
	static const char longest[] =
	    "b123456789012345678901234567890123456789012345678901234567890123";
	int			 c;

	assert_int_equal(strlen(bad[8]), STORE_IDENT_MAX + 1);
	assert_int_equal(strlen(longest), STORE_IDENT_MAX);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(store_keypair_next(f->st, bad[i], &got,
		    &err), -CB_EBADREQ);
		assert_int_equal(store_keypair_add(f->st, bad[i], 1, 2048,
		    "CB1:1:x", 1, &err), -CB_EBADREQ);
		assert_int_equal(store_peerkey_add(f->st, bad[i], 1, 2048,
		    "CB1:1:x", 1, &err), -CB_EBADREQ);
		for (c = STORE_KEYPAIR; c <= STORE_PEERKEY; c++) {
			assert_int_equal(store_key_get(f->st, c, bad[i], &k,
			    &err), -CB_EBADREQ);
			assert_int_equal(store_key_sealed(f->st, c, bad[i], 0,
			    &got, &s, &err), -CB_EBADREQ);
			assert_int_equal(store_key_delete(f->st, c, bad[i], 0,
			    &removed, &err), -CB_EBADREQ);
		}
	}
	/* 64 characters is the longest ident. */
	kp_add(f->st, longest, 1, 2048, "CB1:1:long", 1);

	/* Versions are 1 to INT32_MAX; 0 is "current" only where said. */
	assert_int_equal(store_keypair_add(f->st, "alpha", 0, 2048,
	    "CB1:1:x", 1, &err), -CB_EBADREQ);
	assert_int_equal(store_peerkey_add(f->st, "alpha", 0, 2048,
	    "CB1:1:x", 1, &err), -CB_EBADREQ);
	assert_int_equal(store_peerkey_add(f->st, "alpha",
	    (uint32_t)INT32_MAX + 1, 2048, "CB1:1:x", 1, &err), -CB_EBADREQ);
	assert_int_equal(store_peerkey_add(f->st, "alpha", UINT32_MAX, 2048,
	    "CB1:1:x", 1, &err), -CB_EBADREQ);
	assert_int_equal(store_peerkey_add(f->st, "alpha", INT32_MAX, 2048,
	    "CB1:1:max", 1, &err), 0);
	assert_int_equal(store_key_sealed(f->st, STORE_PEERKEY, "alpha",
	    (uint32_t)INT32_MAX + 1, &got, &s, &err), -CB_EBADREQ);
	assert_int_equal(store_key_delete(f->st, STORE_PEERKEY, "alpha",
	    (uint32_t)INT32_MAX + 1, &removed, &err), -CB_EBADREQ);
	s = key_text(f->st, STORE_PEERKEY, "alpha", 0, &got);
	assert_int_equal(got, INT32_MAX);
	free(s);

	/* An unknown class is the caller's mistake. */
	assert_int_equal(store_key_get(f->st, 2, "alpha", &k, &err),
	    -CB_EINTERNAL);
	assert_int_equal(store_key_list(f->st, -1, &v, &n, &err),
	    -CB_EINTERNAL);
	memset(&row, 0, sizeof(row));
	row.keyclass = 7;
	snprintf(row.ident, sizeof(row.ident), "alpha");
	row.version = INT32_MAX;
	row.sealed = (char *)"CB1:1:y";
	assert_int_equal(store_key_reseal(f->st, &row, 1, &err),
	    -CB_EINTERNAL);

	/* Nothing of the above was stored. */
	side = side_query(f->path, "SELECT count(*) FROM keypair_versions");
	assert_string_equal(side, "1");
	free(side);
	side = side_query(f->path, "SELECT count(*) FROM peerkeys");
	assert_string_equal(side, "1");
	free(side);
	assert_true(side_can_write(f->path));
}

static void
test_peerkey_add_of_an_existing_version_conflicts(void **state)
{
	struct fixture	*f = *state;
	struct cb_error	 err;
	uint32_t	 got;
	char		*s;
	static const uint32_t v13[] = { 1, 3 };

	assert_int_equal(store_peerkey_add(f->st, "datalens", 3, 2048,
	    "CB1:1:first", 1, &err), 0);
	cb_error_clear(&err);
	assert_int_equal(store_peerkey_add(f->st, "datalens", 3, 2048,
	    "CB1:1:second", 2, &err), -CB_ECONFLICT);
	assert_string_equal(err.msg, "peer key 'datalens' already has "
	    "version 3");
	s = key_text(f->st, STORE_PEERKEY, "datalens", 3, &got);
	assert_string_equal(s, "CB1:1:first");
	free(s);
	/* A lower version may come later. */
	assert_int_equal(store_peerkey_add(f->st, "datalens", 1, 2048,
	    "CB1:1:older", 3, &err), 0);
	assert_versions(f->st, STORE_PEERKEY, "datalens", v13, 2);
	s = key_text(f->st, STORE_PEERKEY, "datalens", 0, &got);
	assert_int_equal(got, 3);
	assert_string_equal(s, "CB1:1:first");
	free(s);
	/* A key pair of the same ident does not collide. */
	kp_add(f->st, "datalens", 1, 2048, "CB1:1:pair", 4);
	assert_true(side_can_write(f->path));
}

/* The five keys of the scan and reseal tests, in scan order. */
static void
add_five_keys(struct store *st)
{
	struct cb_error	err;

	kp_add(st, "zeta", 1, 2048, "CB1:1:z1", 1);
	kp_add(st, "alpha", 1, 2048, "CB1:1:a1", 2);
	kp_add(st, "alpha", 2, 2048, "CB1:1:a2", 3);
	assert_int_equal(store_peerkey_add(st, "peer", 7, 2048, "CB1:1:p7",
	    4, &err), 0);
	assert_int_equal(store_peerkey_add(st, "beta", 1, 2048, "CB1:1:b1",
	    5, &err), 0);
}

static void
test_key_scan_returns_every_row_of_both_classes(void **state)
{
	struct fixture		*f = *state;
	struct store_keyrow	*rows;
	struct cb_error		 err;
	size_t			 n;
	static const struct {
		int		 keyclass;
		const char	*ident;
		uint32_t	 version;
		const char	*sealed;
	} want[] = {
		{ STORE_KEYPAIR, "alpha", 1, "CB1:1:a1" },
		{ STORE_KEYPAIR, "alpha", 2, "CB1:1:a2" },
		{ STORE_KEYPAIR, "zeta", 1, "CB1:1:z1" },
		{ STORE_PEERKEY, "beta", 1, "CB1:1:b1" },
		{ STORE_PEERKEY, "peer", 7, "CB1:1:p7" },
	};
	size_t			 i;

	assert_int_equal(store_key_scan(f->st, &rows, &n, &err), 0);
	assert_int_equal(n, 0);
	store_keyrows_free(rows, n);

	add_five_keys(f->st);
	assert_int_equal(store_key_scan(f->st, &rows, &n, &err), 0);
	assert_int_equal(n, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < n; i++) {
		assert_int_equal(rows[i].keyclass, want[i].keyclass);
		assert_string_equal(rows[i].ident, want[i].ident);
		assert_int_equal(rows[i].version, want[i].version);
		assert_string_equal(rows[i].sealed, want[i].sealed);
	}
	store_keyrows_free(rows, n);
	assert_true(side_can_write(f->path));
}

static void
test_key_reseal_replaces_exactly_the_given_rows_or_nothing(void **state)
{
	struct fixture		*f = *state;
	struct store_keyrow	*rows, *again, bad[2];
	struct cb_error		 err;
	size_t			 n, m, i;
	char			*s;
	uint32_t		 got;

	add_five_keys(f->st);
	assert_int_equal(store_key_scan(f->st, &rows, &n, &err), 0);
	assert_int_equal(n, 5);
	/* New text for rows 0, 2 and 4; NULL (leave) for 1 and 3. */
	for (i = 0; i < n; i++) {
		free(rows[i].sealed);
		rows[i].sealed = NULL;
		if (i % 2 == 0)
			assert_true(asprintf(&rows[i].sealed, "CB1:2:new%zu",
			    i) > 0);
	}
	assert_int_equal(store_key_reseal(f->st, rows, n, &err), 0);
	store_keyrows_free(rows, n);

	assert_int_equal(store_key_scan(f->st, &again, &m, &err), 0);
	assert_int_equal(m, 5);
	assert_string_equal(again[0].sealed, "CB1:2:new0");
	assert_string_equal(again[1].sealed, "CB1:1:a2");
	assert_string_equal(again[2].sealed, "CB1:2:new2");
	assert_string_equal(again[3].sealed, "CB1:1:b1");
	assert_string_equal(again[4].sealed, "CB1:2:new4");
	store_keyrows_free(again, m);
	s = key_text(f->st, STORE_PEERKEY, "peer", 7, &got);
	assert_string_equal(s, "CB1:2:new4");
	free(s);

	/*
	 * A row naming a key or version that does not exist fails the
	 * whole call, and the rows before it are not changed either.
	 */
	memset(bad, 0, sizeof(bad));
	bad[0].keyclass = STORE_KEYPAIR;
	snprintf(bad[0].ident, sizeof(bad[0].ident), "alpha");
	bad[0].version = 2;
	bad[0].sealed = (char *)"CB1:3:lost";
	bad[1].keyclass = STORE_KEYPAIR;
	snprintf(bad[1].ident, sizeof(bad[1].ident), "ghost");
	bad[1].version = 1;
	bad[1].sealed = (char *)"CB1:3:ghost";
	cb_error_clear(&err);
	assert_int_equal(store_key_reseal(f->st, bad, 2, &err), -CB_ENOTFOUND);
	assert_string_equal(err.msg, "key pair 'ghost' has no version 1");
	/* Another class, or a version that is not there: the same. */
	bad[1].keyclass = STORE_PEERKEY;
	snprintf(bad[1].ident, sizeof(bad[1].ident), "alpha");
	bad[1].version = 2;
	assert_int_equal(store_key_reseal(f->st, bad, 2, &err), -CB_ENOTFOUND);
	bad[1].keyclass = STORE_KEYPAIR;
	bad[1].version = 3;
	assert_int_equal(store_key_reseal(f->st, bad, 2, &err), -CB_ENOTFOUND);
	s = key_text(f->st, STORE_KEYPAIR, "alpha", 2, &got);
	assert_string_equal(s, "CB1:1:a2");
	free(s);
	s = side_query(f->path, "SELECT count(*) FROM keypair_versions WHERE "
	    "sealed LIKE 'CB1:3:%'");
	assert_string_equal(s, "0");
	free(s);
	assert_true(side_can_write(f->path));

	/* Nothing to do is fine. */
	assert_int_equal(store_key_reseal(f->st, NULL, 0, &err), 0);
}

/*
 * A database of schema version 2, made by the released migrations as
 * they were, opens at version 3 with its types, values, settings and key
 * check value intact, and with empty key tables.
 */
static void
test_open_migrates_version_2_keeping_types_and_values(void **state)
{
	struct fixture		*f = *state;
	struct store		*st = NULL;
	struct store_type	 got;
	struct store_keyset	*v;
	struct cb_error		 err;
	sqlite3			*db;
	char			 path[160], *ans, *sealed;
	uint32_t		 next;
	size_t			 n;

	snprintf(path, sizeof(path), "%s/v2.db", f->dir);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	    "CREATE TABLE types (uuid TEXT PRIMARY KEY,"
	    " ident TEXT UNIQUE NOT NULL, name TEXT NOT NULL,"
	    " description TEXT NOT NULL DEFAULT '',"
	    " storage TEXT NOT NULL CHECK (storage IN ('db', 'vault')),"
	    " destinations TEXT NOT NULL DEFAULT '',"
	    " created_at INTEGER, updated_at INTEGER);"
	    "CREATE TABLE credvalues (type_uuid TEXT NOT NULL"
	    " REFERENCES types(uuid) ON DELETE CASCADE,"
	    " user_uuid TEXT NOT NULL, sealed TEXT NOT NULL,"
	    " updated_at INTEGER NOT NULL,"
	    " PRIMARY KEY (type_uuid, user_uuid)) WITHOUT ROWID;"
	    "CREATE INDEX credvalues_user ON credvalues(user_uuid);"
	    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	    "CREATE TABLE keycheck (id INTEGER PRIMARY KEY CHECK (id = 1),"
	    " kcv TEXT NOT NULL);"
	    "ALTER TABLE types ADD COLUMN generation INTEGER NOT NULL"
	    " DEFAULT 0;"
	    "INSERT INTO types VALUES ('" TYPE_A "', 'alpha', 'Alpha', 'd',"
	    " 'vault', 'https://a.example', 1, 2, 4);"
	    "INSERT INTO types VALUES ('" TYPE_B "', 'beta', 'Beta', '',"
	    " 'db', '', 5, 6, 0);"
	    "INSERT INTO credvalues VALUES ('" TYPE_B "', '" USER_1 "',"
	    " 'CB1:1:KEEP', 7);"
	    "INSERT INTO settings VALUES ('vault.url', 'https://v:8200');"
	    "INSERT INTO keycheck VALUES (1, 'kcv1:v2');"
	    "PRAGMA user_version = 2;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(store_open(path, &st, &err), 0);
	ans = side_query(path, "PRAGMA user_version");
	assert_string_equal(ans, "6");
	free(ans);
	assert_int_equal(store_type_get(st, "alpha", &got, &err), 0);
	assert_string_equal(got.uuid, TYPE_A);
	assert_string_equal(got.name, "Alpha");
	assert_string_equal(got.description, "d");
	assert_int_equal(got.storage, STORE_VAULT);
	assert_int_equal(got.ndestinations, 1);
	assert_string_equal(got.destinations[0], "https://a.example");
	assert_int_equal(got.created_at, 1);
	assert_int_equal(got.updated_at, 2);
	assert_int_equal(got.generation, 4);
	store_type_free(&got);
	assert_int_equal(store_type_get(st, "beta", &got, &err), 0);
	assert_int_equal(got.storage, STORE_DB);
	assert_int_equal(got.generation, 0);
	store_type_free(&got);
	assert_int_equal(store_value_get(st, TYPE_B, USER_1, &sealed, NULL,
	    &err), 0);
	assert_string_equal(sealed, "CB1:1:KEEP");
	free(sealed);
	assert_int_equal(store_setting_get(st, "vault.url", &sealed, &err), 0);
	assert_string_equal(sealed, "https://v:8200");
	free(sealed);
	assert_int_equal(store_kcv_get(st, &sealed, &err), 0);
	assert_string_equal(sealed, "kcv1:v2");
	free(sealed);

	assert_int_equal(store_key_list(st, STORE_KEYPAIR, &v, &n, &err), 0);
	assert_int_equal(n, 0);
	store_keyset_list_free(v, n);
	assert_int_equal(store_keypair_next(st, "signer", &next, &err), 0);
	assert_int_equal(next, 1);
	kp_add(st, "signer", 1, 2048, "CB1:1:k", 8);
	assert_int_equal(store_peerkey_add(st, "peer", 1, 2048, "CB1:1:p", 8,
	    &err), 0);
	store_close(st);
}

/*
 * A database of schema version 4 (before types had a CA file) opens at
 * version 5 with its types kept and no CA file; a CA file set then is
 * kept across a reopen, and an update without one clears it.
 */
static void
test_open_migrates_version_4_to_types_with_ca_file(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 t, got;
	struct cb_error		 err;
	sqlite3			*db;
	char			*ans;

	t = mktype(TYPE_A, "alpha", "Alpha", STORE_DB, NULL, 0);
	assert_int_equal(store_type_create(f->st, &t, &err), 0);
	store_close(f->st);
	f->st = NULL;
	/* What version 4 was: the same tables without types.ca_file. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
	    "ALTER TABLE types DROP COLUMN ca_file;"
	    "PRAGMA user_version = 4;", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(store_open(f->path, &f->st, &err), 0);
	ans = side_query(f->path, "PRAGMA user_version");
	assert_string_equal(ans, "6");
	free(ans);
	assert_int_equal(store_type_get(f->st, "alpha", &got, &err), 0);
	assert_string_equal(got.name, "Alpha");
	assert_null(got.ca_file);
	store_type_free(&got);

	t.ca_file = (char *)"/etc/ssl/private-ca.pem";
	t.updated_at = 2000;
	assert_int_equal(store_type_update(f->st, &t, &err), 0);
	reopen(f);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_string_equal(got.ca_file, "/etc/ssl/private-ca.pem");
	store_type_free(&got);
	ans = side_query(f->path, "SELECT ca_file FROM types");
	assert_string_equal(ans, "/etc/ssl/private-ca.pem");
	free(ans);

	/* The store refuses a relative path itself. */
	t.ca_file = (char *)"ca.pem";
	assert_int_equal(store_type_update(f->st, &t, &err), -CB_EBADREQ);

	t.ca_file = NULL;
	assert_int_equal(store_type_update(f->st, &t, &err), 0);
	reopen(f);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_null(got.ca_file);
	store_type_free(&got);
}

/* Turn the closed store at path back into schema 5's credvalues. */
static void
make_version_5(const char *path, const char *rows)
{
	sqlite3	*db;
	char	 sql[2048];

	snprintf(sql, sizeof(sql),
	    "DROP TABLE credvalues;"
	    "CREATE TABLE credvalues ("
	    "  type_uuid TEXT NOT NULL REFERENCES types(uuid) ON DELETE CASCADE,"
	    "  user_uuid TEXT NOT NULL,"
	    "  sealed TEXT NOT NULL,"
	    "  updated_at INTEGER NOT NULL,"
	    "  PRIMARY KEY (type_uuid, user_uuid)"
	    ") WITHOUT ROWID;"
	    "CREATE INDEX credvalues_user ON credvalues(user_uuid);"
	    "%s"
	    "PRAGMA user_version = 5;", rows);
	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/*
 * Schema 5 -> 6: the values' keys become 16-byte blobs, and every read,
 * write and walk of the store answers as before with text uuids.
 */
static void
test_open_migrates_version_5_to_uuid_blobs(void **state)
{
	struct fixture		*f = *state;
	struct store_status	*sv = NULL;
	struct store_row	*rows = NULL;
	struct cb_error		 err;
	char			*ans, *sealed = NULL, **users = NULL;
	int64_t			 at = 0, n = 0;
	size_t			 ns = 0, nu = 0;

	create_simple(f->st, TYPE_A, "alpha");
	create_simple(f->st, TYPE_B, "beta");
	store_close(f->st);
	f->st = NULL;
	make_version_5(f->path,
	    "INSERT INTO credvalues VALUES"
	    " ('" TYPE_A "', '" USER_2 "', 'CB1:1:a2', 12),"
	    " ('" TYPE_A "', '" USER_1 "', 'CB1:1:a1', 11),"
	    " ('" TYPE_B "', '" USER_1 "', 'CB1:1:b1', 21);");

	assert_int_equal(store_open(f->path, &f->st, &err), 0);
	ans = side_query(f->path, "PRAGMA user_version");
	assert_string_equal(ans, "6");
	free(ans);
	ans = side_query(f->path, "SELECT group_concat(typeof(type_uuid) ||"
	    " length(type_uuid) || typeof(user_uuid) || length(user_uuid))"
	    " FROM credvalues");
	assert_string_equal(ans, "blob16blob16,blob16blob16,blob16blob16");
	free(ans);

	assert_int_equal(store_value_get(f->st, TYPE_A, USER_1, &sealed, &at,
	    &err), 0);
	assert_string_equal(sealed, "CB1:1:a1");
	assert_int_equal(at, 11);
	free(sealed);
	assert_int_equal(store_value_get(f->st, TYPE_B, USER_2, &sealed, NULL,
	    &err), -CB_ENOTFOUND);

	assert_int_equal(store_value_list_user(f->st, USER_1, &sv, &ns, &err),
	    0);
	assert_int_equal(ns, 2);
	assert_string_equal(sv[0].type_uuid, TYPE_A);
	assert_int_equal(sv[0].updated_at, 11);
	assert_string_equal(sv[1].type_uuid, TYPE_B);
	free(sv);
	assert_int_equal(store_value_list_type(f->st, TYPE_A, &users, &nu,
	    &err), 0);
	assert_int_equal(nu, 2);
	assert_string_equal(users[0], USER_1);
	assert_string_equal(users[1], USER_2);
	free(users[0]);
	free(users[1]);
	free(users);
	assert_int_equal(store_value_count(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 2);

	/* The walk of a rotation: key order, from "" and from a row. */
	assert_int_equal(store_value_scan(f->st, "", "", 2, &rows, &ns, &err),
	    0);
	assert_int_equal(ns, 2);
	assert_string_equal(rows[0].type_uuid, TYPE_A);
	assert_string_equal(rows[0].user_uuid, USER_1);
	assert_string_equal(rows[1].user_uuid, USER_2);
	assert_string_equal(rows[1].sealed, "CB1:1:a2");
	store_rows_free(rows, ns);
	assert_int_equal(store_value_scan(f->st, TYPE_A, USER_2, 10, &rows,
	    &ns, &err), 0);
	assert_int_equal(ns, 1);
	assert_string_equal(rows[0].type_uuid, TYPE_B);
	assert_string_equal(rows[0].user_uuid, USER_1);
	store_rows_free(rows, ns);

	/* No type, no value: what the foreign key did before. */
	assert_int_equal(store_value_set(f->st, TYPE_C, USER_1, "CB1:1:c",
	    1, &err), -CB_ENOTFOUND);
	ans = side_query(f->path, "SELECT count(*) FROM credvalues");
	assert_string_equal(ans, "3");
	free(ans);
	/* Deleting a type deletes its values. */
	assert_int_equal(store_type_delete(f->st, TYPE_A, &err), 0);
	ans = side_query(f->path, "SELECT count(*) FROM credvalues WHERE "
	    BLOB_IS("type_uuid", TYPE_B));
	assert_string_equal(ans, "1");
	free(ans);
	ans = side_query(f->path, "SELECT count(*) FROM credvalues");
	assert_string_equal(ans, "1");
	free(ans);
}

/* A malformed uuid stops the migration and leaves version 5 as it was. */
static void
test_open_refuses_a_malformed_uuid_at_version_5(void **state)
{
	struct fixture	*f = *state;
	struct store	*st = NULL;
	struct cb_error	 err;
	char		*ans;

	create_simple(f->st, TYPE_A, "alpha");
	store_close(f->st);
	f->st = NULL;
	make_version_5(f->path,
	    "INSERT INTO credvalues VALUES"
	    " ('" TYPE_A "', '" USER_1 "', 'CB1:1:a1', 11),"
	    " ('" TYPE_A "', 'A8098C1A-F86E-11DA-BD1A-00112444BE1E', 'x', 1);");

	cb_error_clear(&err);
	assert_int_equal(store_open(f->path, &st, &err), -CB_EINTERNAL);
	assert_null(st);
	assert_non_null(strstr(err.msg, "cannot upgrade database "));
	assert_non_null(strstr(err.msg, f->path));
	assert_non_null(strstr(err.msg, "from schema version 5 to 6"));
	assert_non_null(strstr(err.msg, "a stored uuid is malformed"));
	ans = side_query(f->path, "PRAGMA user_version");
	assert_string_equal(ans, "5");
	free(ans);
	ans = side_query(f->path, "SELECT group_concat(typeof(user_uuid))"
	    " FROM credvalues");
	assert_string_equal(ans, "text,text");
	free(ans);
}

/* Accounts' values (SPEC 10): apart from users', by type and name. */
static void
test_account_values_are_kept_by_type_and_name(void **state)
{
	struct fixture	*f = *state;
	struct cb_error	 err;
	char		*sealed = NULL, **names = NULL;
	int64_t		*updated = NULL, at = 0, n;
	size_t		 nn = 0;

	create_simple(f->st, TYPE_A, "alpha");
	create_simple(f->st, TYPE_B, "beta");
	assert_int_equal(store_account_set(f->st, TYPE_A, "zeta", "z", 5,
	    &err), 0);
	assert_int_equal(store_account_set(f->st, TYPE_A, "reader", "r1", 6,
	    &err), 0);
	assert_int_equal(store_account_set(f->st, TYPE_A, "reader", "r2", 7,
	    &err), 0);
	assert_int_equal(store_account_set(f->st, TYPE_B, "reader", "b", 8,
	    &err), 0);
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "u", 9, &err),
	    0);
	assert_int_equal(store_account_get(f->st, TYPE_A, "reader", &sealed,
	    &at, &err), 0);
	assert_string_equal(sealed, "r2");
	assert_int_equal(at, 7);
	free(sealed);
	assert_int_equal(store_account_get(f->st, TYPE_C, "reader", &sealed,
	    &at, &err), -CB_ENOTFOUND);
	assert_int_equal(store_account_get(f->st, TYPE_A, "writer", &sealed,
	    &at, &err), -CB_ENOTFOUND);
	assert_non_null(strstr(err.msg, "writer"));
	assert_int_equal(store_account_list(f->st, TYPE_A, &names, &updated,
	    &nn, &err), 0);
	assert_int_equal(nn, 2);
	assert_string_equal(names[0], "reader");
	assert_int_equal(updated[0], 7);
	assert_string_equal(names[1], "zeta");
	store_account_list_free(names, updated, nn);
	/* Names have the grammar of idents; the type must exist. */
	assert_int_equal(store_account_set(f->st, TYPE_A, "Bad-Name", "x", 1,
	    &err), -CB_EBADREQ);
	assert_int_equal(store_account_set(f->st, TYPE_A, "../x", "x", 1,
	    &err), -CB_EBADREQ);
	assert_int_equal(store_account_set(f->st, TYPE_C, "reader", "x", 1,
	    &err), -CB_ENOTFOUND);
	/* Counted with the users' values, cleared with them. */
	assert_int_equal(store_value_count_all(f->st, &n, &err), 0);
	assert_int_equal(n, 4);
	assert_int_equal(store_value_count(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_value_count(f->st, TYPE_B, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_account_delete(f->st, TYPE_A, "zeta", &err), 0);
	assert_int_equal(store_account_delete(f->st, TYPE_A, "zeta", &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_value_clear(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(store_account_get(f->st, TYPE_A, "reader", &sealed,
	    &at, &err), -CB_ENOTFOUND);
	assert_int_equal(store_account_get(f->st, TYPE_B, "reader", &sealed,
	    &at, &err), 0);
	assert_string_equal(sealed, "b");
	free(sealed);
}

static void
test_link_is_replaced_counted_listed_and_deleted(void **state)
{
	struct fixture		*f = *state;
	struct cb_error		 err;
	struct store_link	 l, *v = NULL;
	char			 (*tv)[STORE_UUID_LEN + 1] = NULL;
	int64_t			 n;
	size_t			 nv = 0;

	create_simple(f->st, TYPE_A, "alpha");
	create_simple(f->st, TYPE_B, "beta");
	assert_int_equal(store_link_get(f->st, TYPE_A, USER_1, &l, &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_link_set(f->st, TYPE_A, USER_1, "reader",
	    "S:reader", 10, &err), 0);
	/* A user has one link per type: a new one replaces it. */
	assert_int_equal(store_link_set(f->st, TYPE_A, USER_1, "writer",
	    "S:writer", 11, &err), 0);
	assert_int_equal(store_link_get(f->st, TYPE_A, USER_1, &l, &err), 0);
	assert_string_equal(l.user_uuid, USER_1);
	assert_string_equal(l.account, "writer");
	assert_string_equal(l.sealed, "S:writer");
	assert_int_equal(l.updated_at, 11);
	store_link_free(&l);
	assert_int_equal(store_link_set(f->st, TYPE_A, USER_2, "writer",
	    "S:w2", 12, &err), 0);
	assert_int_equal(store_link_set(f->st, TYPE_B, USER_1, "reader",
	    "S:b", 13, &err), 0);
	assert_int_equal(store_link_count(f->st, TYPE_A, "writer", &n, &err),
	    0);
	assert_int_equal(n, 2);
	assert_int_equal(store_link_count(f->st, TYPE_A, "reader", &n, &err),
	    0);
	assert_int_equal(n, 0);
	assert_int_equal(store_link_count(f->st, TYPE_B, "reader", &n, &err),
	    0);
	assert_int_equal(n, 1);
	assert_int_equal(store_link_list(f->st, TYPE_A, &v, &nv, &err), 0);
	assert_int_equal(nv, 2);
	assert_string_equal(v[0].user_uuid, USER_1);
	assert_string_equal(v[1].user_uuid, USER_2);
	assert_string_equal(v[1].sealed, "S:w2");
	store_links_free(v, nv);
	assert_int_equal(store_link_list_user(f->st, USER_1, &tv, &v, &nv,
	    &err), 0);
	assert_int_equal(nv, 2);
	/* Ordered by type uuid: TYPE_A < TYPE_B. */
	assert_string_equal(tv[0], TYPE_A);
	assert_string_equal(v[0].account, "writer");
	assert_string_equal(tv[1], TYPE_B);
	assert_string_equal(v[1].account, "reader");
	store_links_free(v, nv);
	free(tv);
	assert_int_equal(store_link_delete(f->st, TYPE_A, USER_1, &err), 0);
	assert_int_equal(store_link_delete(f->st, TYPE_A, USER_1, &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_link_get(f->st, TYPE_A, USER_1, &l, &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_link_set(f->st, TYPE_C, USER_1, "reader", "S",
	    1, &err), -CB_ENOTFOUND);
	assert_int_equal(store_link_set(f->st, TYPE_A, USER_1, "Reader", "S",
	    1, &err), -CB_EBADREQ);
	assert_int_equal(store_link_set(f->st, TYPE_A, "nobody", "reader",
	    "S", 1, &err), -CB_EBADREQ);
}

/*
 * The default is written only by store_type_set_default, kept by type
 * updates, in the cache without a reload and in the file.
 */
static void
test_default_account_is_kept_by_updates_and_reopens(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 t, got, *v = NULL;
	struct cb_error		 err;
	size_t			 n = 0;

	create_simple(f->st, TYPE_A, "alpha");
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_string_equal(got.default_account, "");
	assert_null(got.default_sealed);
	store_type_free(&got);
	assert_int_equal(store_type_set_default(f->st, TYPE_A, "reader",
	    "S:reader", &err), 0);
	assert_int_equal(store_type_get(f->st, "alpha", &got, &err), 0);
	assert_string_equal(got.default_account, "reader");
	assert_string_equal(got.default_sealed, "S:reader");
	/* An update of the other fields (from a copy) keeps it. */
	free(got.name);
	got.name = strdup("renamed");
	assert_int_equal(store_type_update(f->st, &got, &err), 0);
	store_type_free(&got);
	t = mktype(TYPE_A, "alpha", "again", STORE_DB, NULL, 0);
	assert_int_equal(store_type_update(f->st, &t, &err), 0);
	assert_int_equal(store_type_list(f->st, &v, &n, &err), 0);
	assert_int_equal(n, 1);
	assert_string_equal(v[0].default_account, "reader");
	assert_string_equal(v[0].default_sealed, "S:reader");
	store_type_list_free(v, n);
	assert_int_equal(store_type_cache_loads(f->st), 1);
	reopen(f);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_string_equal(got.name, "again");
	assert_string_equal(got.default_account, "reader");
	assert_string_equal(got.default_sealed, "S:reader");
	store_type_free(&got);
	/* Cleared with both NULL; a name without its sealed text is not. */
	assert_int_equal(store_type_set_default(f->st, TYPE_A, "reader", NULL,
	    &err), -CB_EINTERNAL);
	assert_int_equal(store_type_set_default(f->st, TYPE_A, "Bad", "S",
	    &err), -CB_EBADREQ);
	assert_int_equal(store_type_set_default(f->st, TYPE_B, "reader", "S",
	    &err), -CB_ENOTFOUND);
	assert_int_equal(store_type_set_default(f->st, TYPE_A, NULL, NULL,
	    &err), 0);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_string_equal(got.default_account, "");
	assert_null(got.default_sealed);
	store_type_free(&got);
	reopen(f);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_null(got.default_sealed);
	store_type_free(&got);
}

/* type.clear: the type's links and default go, other types' stay. */
static void
test_links_clear_removes_the_links_and_default_of_one_type(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 got;
	struct store_link	 l;
	struct cb_error		 err;
	int64_t			 n;

	create_simple(f->st, TYPE_A, "alpha");
	create_simple(f->st, TYPE_B, "beta");
	assert_int_equal(store_link_set(f->st, TYPE_A, USER_1, "r", "S1", 1,
	    &err), 0);
	assert_int_equal(store_link_set(f->st, TYPE_A, USER_2, "r", "S2", 1,
	    &err), 0);
	assert_int_equal(store_link_set(f->st, TYPE_B, USER_1, "r", "S3", 1,
	    &err), 0);
	assert_int_equal(store_type_set_default(f->st, TYPE_A, "r", "D1",
	    &err), 0);
	assert_int_equal(store_type_set_default(f->st, TYPE_B, "r", "D2",
	    &err), 0);
	assert_int_equal(store_links_clear(f->st, TYPE_A, &n, &err), 0);
	assert_int_equal(n, 2);
	assert_int_equal(store_link_get(f->st, TYPE_A, USER_1, &l, &err),
	    -CB_ENOTFOUND);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_string_equal(got.default_account, "");
	assert_null(got.default_sealed);
	store_type_free(&got);
	assert_int_equal(store_link_get(f->st, TYPE_B, USER_1, &l, &err), 0);
	store_link_free(&l);
	assert_int_equal(store_type_get(f->st, TYPE_B, &got, &err), 0);
	assert_string_equal(got.default_sealed, "D2");
	store_type_free(&got);
	reopen(f);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_null(got.default_sealed);
	store_type_free(&got);
}

/* Key rotation: every link and default, replaced in one transaction. */
static void
test_bind_reseal_replaces_links_and_defaults_or_nothing(void **state)
{
	struct fixture		*f = *state;
	struct store_bindrow	*rows = NULL;
	struct store_type	 got;
	struct store_link	 l;
	struct cb_error		 err;
	size_t			 n = 0, i;

	create_simple(f->st, TYPE_A, "alpha");
	create_simple(f->st, TYPE_B, "beta");
	assert_int_equal(store_link_set(f->st, TYPE_A, USER_1, "r", "old1", 1,
	    &err), 0);
	assert_int_equal(store_link_set(f->st, TYPE_B, USER_2, "w", "old2", 1,
	    &err), 0);
	assert_int_equal(store_type_set_default(f->st, TYPE_A, "r", "oldd",
	    &err), 0);
	assert_int_equal(store_bind_scan(f->st, &rows, &n, &err), 0);
	assert_int_equal(n, 3);
	/* Links first, then defaults (no user). */
	assert_string_equal(rows[0].type_uuid, TYPE_A);
	assert_string_equal(rows[0].user_uuid, USER_1);
	assert_string_equal(rows[0].sealed, "old1");
	assert_string_equal(rows[1].type_uuid, TYPE_B);
	assert_string_equal(rows[1].user_uuid, USER_2);
	assert_string_equal(rows[2].type_uuid, TYPE_A);
	assert_string_equal(rows[2].user_uuid, "");
	assert_string_equal(rows[2].sealed, "oldd");
	for (i = 0; i < n; i++) {
		free(rows[i].sealed);
		rows[i].sealed = NULL;
	}
	rows[0].sealed = strdup("new1");
	rows[2].sealed = strdup("newd");
	assert_int_equal(store_bind_reseal(f->st, rows, n, &err), 0);
	assert_int_equal(store_link_get(f->st, TYPE_A, USER_1, &l, &err), 0);
	assert_string_equal(l.sealed, "new1");
	assert_string_equal(l.account, "r");
	store_link_free(&l);
	assert_int_equal(store_link_get(f->st, TYPE_B, USER_2, &l, &err), 0);
	assert_string_equal(l.sealed, "old2");
	store_link_free(&l);
	/* The cache follows without a reload. */
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_string_equal(got.default_sealed, "newd");
	assert_string_equal(got.default_account, "r");
	store_type_free(&got);
	assert_int_equal(store_type_cache_loads(f->st), 1);
	/* A row that is gone fails the whole call, which changes nothing. */
	assert_int_equal(store_link_delete(f->st, TYPE_A, USER_1, &err), 0);
	free(rows[2].sealed);
	rows[2].sealed = strdup("newer");
	assert_int_equal(store_bind_reseal(f->st, rows, n, &err),
	    -CB_ENOTFOUND);
	reopen(f);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_string_equal(got.default_sealed, "newd");
	store_type_free(&got);
	store_bindrows_free(rows, n);
}

/*
 * A change of storage deletes the db accounts' values with the users';
 * links and the default stay.  Deleting the type deletes everything.
 */
static void
test_storage_change_and_type_delete_cover_accounts(void **state)
{
	struct fixture		*f = *state;
	struct store_type	 t, got;
	struct store_link	 l;
	struct cb_error		 err;
	int64_t			 removed;
	char			*s, *sealed;

	create_simple(f->st, TYPE_A, "alpha");
	assert_int_equal(store_value_set(f->st, TYPE_A, USER_1, "u", 1, &err),
	    0);
	assert_int_equal(store_account_set(f->st, TYPE_A, "r", "a", 1, &err),
	    0);
	assert_int_equal(store_link_set(f->st, TYPE_A, USER_2, "r", "L", 1,
	    &err), 0);
	assert_int_equal(store_type_set_default(f->st, TYPE_A, "r", "D",
	    &err), 0);
	t = mktype(TYPE_A, "alpha", "alpha", STORE_VAULT, NULL, 0);
	assert_int_equal(store_type_update_count(f->st, &t, &removed, &err),
	    0);
	assert_int_equal(removed, 2);
	assert_int_equal(store_account_get(f->st, TYPE_A, "r", &sealed, NULL,
	    &err), -CB_ENOTFOUND);
	assert_int_equal(store_link_get(f->st, TYPE_A, USER_2, &l, &err), 0);
	store_link_free(&l);
	assert_int_equal(store_type_get(f->st, TYPE_A, &got, &err), 0);
	assert_string_equal(got.default_account, "r");
	assert_int_equal(got.generation, 1);
	store_type_free(&got);

	assert_int_equal(store_account_set(f->st, TYPE_A, "r", "a", 1, &err),
	    0);
	assert_int_equal(store_type_delete(f->st, TYPE_A, &err), 0);
	s = side_query(f->path, "SELECT (SELECT count(*) FROM credaccounts) ||"
	    " '/' || (SELECT count(*) FROM credlinks)");
	assert_string_equal(s, "0/0");
	free(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_type_lookup_cache,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_borrowed_type_outlives_every_change_of_the_cache,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_creates_0600_wal,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_mode_ignores_umask,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_missing_dir,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reopen_persists,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_open_newer_version_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_not_a_database,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_type_idents_case_sensitive,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_type_crud,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_type_update_destinations,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_type_list_order,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_values,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_value_messages_hold_no_value, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_list_user_skips_vault_types, setup, teardown),
		cmocka_unit_test_setup_teardown(test_type_delete_cascades,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_settings,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_kcv,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_no_lingering_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_secure_delete,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_write_lock_elsewhere_fails_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_open_migrates_version_1,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_user_status_50k_types,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_type_writes_do_not_reload_the_cache, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_storage_change_deletes_db_values, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_keypair_versions_count_up_and_a_stale_add_conflicts,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_get_and_list_give_versions_ascending_with_their_fields,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_delete_one_every_and_the_last_version,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_not_found_names_the_ident_and_version,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_bad_idents_and_versions_are_bad_requests,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_peerkey_add_of_an_existing_version_conflicts,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_scan_returns_every_row_of_both_classes,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_key_reseal_replaces_exactly_the_given_rows_or_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_open_migrates_version_2_keeping_types_and_values,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_open_migrates_version_4_to_types_with_ca_file,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_open_migrates_version_5_to_uuid_blobs, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_open_refuses_a_malformed_uuid_at_version_5, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_account_values_are_kept_by_type_and_name,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_link_is_replaced_counted_listed_and_deleted,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_default_account_is_kept_by_updates_and_reopens,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_links_clear_removes_the_links_and_default_of_one_type,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_bind_reseal_replaces_links_and_defaults_or_nothing,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_storage_change_and_type_delete_cover_accounts,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_open_readonly_creates_no_file, setup, teardown),
		cmocka_unit_test(test_uuid_new),
	};

	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}

/*
 * pgschema: the broker's tables on PostgreSQL and the migrations that
 * create them (pgschema.h), run through pg.c's batches.
 *
 * The tables mirror those of sqlite.c, in PostgreSQL's types:
 *   - uuids are uuid (16 bytes, checked by the server; the broker only
 *     ever writes lower-case uuids, which is what uuid prints);
 *   - idents and names are text COLLATE "C", so that ORDER BY gives the
 *     same byte order as SQLite's, whatever the database's locale;
 *   - sealed values are text: the sealed format is text already, and it
 *     goes in and out of the broker unchanged (no bytea encoding);
 *   - the times the broker reads back (created_at, updated_at) are bigint
 *     unix seconds, the broker's own unit, as in SQLite, so they round-trip
 *     exactly and a row copied from SQLite needs no conversion;
 *   - the fleet's liveness columns (brokers.started, brokers.heartbeat)
 *     are timestamptz set by the server's clock (now()), so that they are
 *     compared with the server's clock and never with a host's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cb_error.h"
#include "pg.h"
#include "pgschema.h"

/* SQLSTATE of the guard that finds the version moved under the lock. */
#define PGSCHEMA_MOVED		"CB001"
/* Rounds of "read the version, migrate once" before giving up. */
#define PGSCHEMA_ROUNDS_MAX(n)	(2 * (n) + 4)

/*
 * Migration 0 -> 1: the store's tables, as sqlite.c's schema version 4.
 * Never edit a released migration; append a new one.
 */
static const char *const pgschema_v1[] = {
	"CREATE TABLE types ("
	"  uuid uuid PRIMARY KEY,"
	"  ident text COLLATE \"C\" UNIQUE NOT NULL,"
	"  name text NOT NULL,"
	"  description text NOT NULL DEFAULT '',"
	"  storage text NOT NULL CHECK (storage IN ('db', 'vault')),"
	"  destinations text NOT NULL DEFAULT '',"	/* newline-separated */
	"  created_at bigint,"
	"  updated_at bigint,"
	"  generation bigint NOT NULL DEFAULT 0,"
	"  default_account text COLLATE \"C\" NOT NULL DEFAULT '',"
	"  default_sealed text"
	")",
	"CREATE TABLE credvalues ("
	"  type_uuid uuid NOT NULL REFERENCES types(uuid) ON DELETE CASCADE,"
	"  user_uuid uuid NOT NULL,"
	"  sealed text NOT NULL,"
	"  updated_at bigint NOT NULL,"
	"  PRIMARY KEY (type_uuid, user_uuid)"
	")",
	"CREATE INDEX credvalues_user ON credvalues(user_uuid)",
	"CREATE TABLE settings ("
	"  key text COLLATE \"C\" PRIMARY KEY,"
	"  value text NOT NULL"
	")",
	"CREATE TABLE keycheck ("
	"  id integer PRIMARY KEY CHECK (id = 1),"
	"  kcv text NOT NULL"
	")",
	"CREATE TABLE keypairs ("
	"  ident text COLLATE \"C\" PRIMARY KEY,"
	"  next_version integer NOT NULL CHECK (next_version >= 1),"
	"  created_at bigint NOT NULL,"
	"  updated_at bigint NOT NULL"
	")",
	"CREATE TABLE keypair_versions ("
	"  ident text COLLATE \"C\" NOT NULL"
	"    REFERENCES keypairs(ident) ON DELETE CASCADE,"
	"  version integer NOT NULL CHECK (version >= 1),"
	"  bits integer NOT NULL,"
	"  sealed text NOT NULL,"
	"  created_at bigint NOT NULL,"
	"  PRIMARY KEY (ident, version)"
	")",
	"CREATE TABLE peerkeys ("
	"  ident text COLLATE \"C\" NOT NULL,"
	"  version integer NOT NULL CHECK (version >= 1),"
	"  bits integer NOT NULL,"
	"  sealed text NOT NULL,"
	"  created_at bigint NOT NULL,"
	"  PRIMARY KEY (ident, version)"
	")",
	"CREATE TABLE credaccounts ("
	"  type_uuid uuid NOT NULL REFERENCES types(uuid) ON DELETE CASCADE,"
	"  name text COLLATE \"C\" NOT NULL,"
	"  sealed text NOT NULL,"
	"  updated_at bigint NOT NULL,"
	"  PRIMARY KEY (type_uuid, name)"
	")",
	"CREATE TABLE credlinks ("
	"  type_uuid uuid NOT NULL REFERENCES types(uuid) ON DELETE CASCADE,"
	"  user_uuid uuid NOT NULL,"
	"  account text COLLATE \"C\" NOT NULL,"
	"  sealed text NOT NULL,"
	"  updated_at bigint NOT NULL,"
	"  PRIMARY KEY (type_uuid, user_uuid)"
	")",
	"CREATE INDEX credlinks_account ON credlinks(type_uuid, account)",
	"CREATE INDEX credlinks_user ON credlinks(user_uuid)",
};

/*
 * Migration 1 -> 2: the brokers of the fleet (SPEC 12), for the
 * fleet-wide key rotation: each broker's row says where it runs, since
 * when, when it last said it was alive, and which master key versions it
 * holds.
 */
static const char *const pgschema_v2[] = {
	"CREATE TABLE brokers ("
	"  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),"
	"  host text NOT NULL,"
	"  pid integer NOT NULL,"
	"  started timestamptz NOT NULL DEFAULT now(),"
	"  heartbeat timestamptz NOT NULL DEFAULT now(),"
	"  key_versions integer[] NOT NULL DEFAULT '{}'"
	")",
	"CREATE INDEX brokers_heartbeat ON brokers(heartbeat)",
};

/*
 * Migration 2 -> 3: the CA file of a type (SPEC 13), as sqlite.c's
 * schema version 5: the trust store of the requests that carry its
 * values; NULL when none.
 */
static const char *const pgschema_v3[] = {
	"ALTER TABLE types ADD COLUMN ca_file text",
};

/*
 * Migration 3 -> 4: what keeps every broker's mirror of the shared tables
 * fresh (mirror.h), and what a change of storage does to the values.
 *
 * Every change of a row of a mirrored table sends NOTIFY credbroker with
 * the table's name and the row's key, tab-separated, from inside the
 * writing transaction (delivered at its commit, only then).  A change of
 * a type's storage deletes the type's values in the same statement, as
 * sqlite.c's store does (SPEC 4.3): the mirror that replays the change
 * holds no values.
 */
static const char *const pgschema_v4[] = {
	"CREATE FUNCTION credbroker_notify() RETURNS trigger"
	"  LANGUAGE plpgsql AS $$"
	"DECLARE"
	"  r jsonb;"
	"  p text;"
	"  i integer;"
	"BEGIN"
	"  IF TG_OP = 'DELETE' THEN r := to_jsonb(OLD);"
	"  ELSE r := to_jsonb(NEW); END IF;"
	"  p := TG_TABLE_NAME;"
	"  FOR i IN 0 .. TG_NARGS - 1 LOOP"
	"    p := p || chr(9) || (r ->> TG_ARGV[i]);"
	"  END LOOP;"
	"  PERFORM pg_notify('credbroker', p);"
	"  RETURN NULL;"
	"END $$",
	"CREATE TRIGGER types_notify AFTER INSERT OR UPDATE OR DELETE"
	"  ON types FOR EACH ROW EXECUTE FUNCTION credbroker_notify('uuid')",
	"CREATE TRIGGER settings_notify AFTER INSERT OR UPDATE OR DELETE"
	"  ON settings FOR EACH ROW EXECUTE FUNCTION credbroker_notify('key')",
	"CREATE TRIGGER keycheck_notify AFTER INSERT OR UPDATE OR DELETE"
	"  ON keycheck FOR EACH ROW EXECUTE FUNCTION credbroker_notify('id')",
	"CREATE TRIGGER keypairs_notify AFTER INSERT OR UPDATE OR DELETE"
	"  ON keypairs FOR EACH ROW EXECUTE FUNCTION"
	"  credbroker_notify('ident')",
	"CREATE TRIGGER keypair_versions_notify AFTER INSERT OR UPDATE OR"
	"  DELETE ON keypair_versions FOR EACH ROW EXECUTE FUNCTION"
	"  credbroker_notify('ident', 'version')",
	"CREATE TRIGGER peerkeys_notify AFTER INSERT OR UPDATE OR DELETE"
	"  ON peerkeys FOR EACH ROW EXECUTE FUNCTION"
	"  credbroker_notify('ident', 'version')",
	"CREATE TRIGGER credlinks_notify AFTER INSERT OR UPDATE OR DELETE"
	"  ON credlinks FOR EACH ROW EXECUTE FUNCTION"
	"  credbroker_notify('type_uuid', 'user_uuid')",
	"CREATE FUNCTION credbroker_storage_moved() RETURNS trigger"
	"  LANGUAGE plpgsql AS $$"
	"BEGIN"
	"  DELETE FROM credvalues WHERE type_uuid = NEW.uuid;"
	"  DELETE FROM credaccounts WHERE type_uuid = NEW.uuid;"
	"  RETURN NULL;"
	"END $$",
	"CREATE TRIGGER types_storage_moved AFTER UPDATE OF storage ON types"
	"  FOR EACH ROW WHEN (OLD.storage IS DISTINCT FROM NEW.storage)"
	"  EXECUTE FUNCTION credbroker_storage_moved()",
};

/*
 * Migration 4 -> 5: what the fleet-wide key rotation reads of each
 * broker (daemon/fleet.c): the key check values of the keys it holds
 * (the key in use, the new key of a running rotation, the key of
 * security.next_key_file), which reveal nothing of a key, and the key
 * version it seals new values with.
 */
static const char *const pgschema_v5[] = {
	"ALTER TABLE brokers ADD COLUMN key_kcvs text[] NOT NULL"
	"  DEFAULT '{}'",
	"ALTER TABLE brokers ADD COLUMN sealing integer",
};

#define PGSCHEMA_LEN(a)	(sizeof(a) / sizeof((a)[0]))

static const struct pgschema_migration pgschema_list[] = {
	{ "the store's tables", pgschema_v1, PGSCHEMA_LEN(pgschema_v1) },
	{ "the brokers table", pgschema_v2, PGSCHEMA_LEN(pgschema_v2) },
	{ "the CA file of types", pgschema_v3, PGSCHEMA_LEN(pgschema_v3) },
	{ "the notifications of the mirrored tables", pgschema_v4,
	    PGSCHEMA_LEN(pgschema_v4) },
	{ "the keys each broker holds", pgschema_v5,
	    PGSCHEMA_LEN(pgschema_v5) },
};

_Static_assert(PGSCHEMA_LEN(pgschema_list) == PGSCHEMA_VERSION,
    "one migration per schema version");

/* One pgschema_apply() in progress. */
struct pgschema_job {
	struct pg			*pg;
	const struct pgschema_migration	*list;
	int				 n;
	int				 version;	/* as last read */
	int				 rounds;
	pgschema_done_fn		 cb;
	void				*arg;
};

static void	pgschema_read_cb(void *, int, PGresult *,
		    const struct cb_error *);
static void	pgschema_migrated_cb(void *, int, PGresult *,
		    const struct cb_error *);

static void
pgschema_finish(struct pgschema_job *j, int rc, const struct cb_error *err)
{
	j->cb(j->arg, rc, rc == 0 ? j->version : 0, err);
	free(j);
}

/*
 * Read the version under the lock, creating schema_version first in a
 * new database: all three in one transaction, so two brokers starting on
 * an empty database cannot both create the table.  The table is created
 * only when it is missing from the schema where CREATE TABLE would put
 * it (CREATE TABLE IF NOT EXISTS would need the CREATE privilege even
 * then): a role without it can use a schema that is up to date.
 */
static int
pgschema_read(struct pgschema_job *j, struct cb_error *err)
{
	static const struct pg_stmt	 stmts[] = {
		{ "SELECT pg_advisory_xact_lock(" PGSCHEMA_LOCK_KEY ")",
		    0, NULL, NULL, NULL },
		{ "DO $cb$BEGIN IF to_regclass(quote_ident(current_schema()) "
		    "|| '.schema_version') IS NULL THEN "
		    "CREATE TABLE schema_version ("
		    "  version integer PRIMARY KEY CHECK (version >= 1),"
		    "  applied_at timestamptz NOT NULL DEFAULT now(),"
		    "  applied_by text NOT NULL DEFAULT current_user"
		    "); END IF; END$cb$", 0, NULL, NULL, NULL },
		{ "SELECT coalesce(max(version), 0) FROM schema_version",
		    0, NULL, NULL, NULL },
	};

	if (++j->rounds > PGSCHEMA_ROUNDS_MAX(j->n))
		return cb_error_set(err, CB_EINTERNAL, "the database schema "
		    "version keeps moving: another broker is migrating it");
	return pg_batch(j->pg, stmts, PGSCHEMA_LEN(stmts), pgschema_read_cb,
	    j, err);
}

/* Send the migration that takes j->version one step up. */
static int
pgschema_migrate(struct pgschema_job *j, struct cb_error *err)
{
	const struct pgschema_migration	*m = &j->list[j->version];
	struct pg_stmt			 stmts[PGSCHEMA_STMTS_MAX + 3];
	char				 guard[512], record[128];
	size_t				 i, n = 0;

	if (m->nstmts == 0 || m->nstmts > PGSCHEMA_STMTS_MAX)
		return cb_error_set(err, CB_EINTERNAL, "schema migration to "
		    "version %d has %zu statements", j->version + 1,
		    m->nstmts);
	/*
	 * Only the version that was read may be migrated from: a broker
	 * that waited for the lock while another migrated stops here,
	 * with nothing done, and reads the version again.
	 */
	snprintf(guard, sizeof(guard), "DO $cb$BEGIN IF (SELECT "
	    "coalesce(max(version), 0) FROM schema_version) <> %d THEN "
	    "RAISE EXCEPTION 'the schema version moved' USING ERRCODE = '"
	    PGSCHEMA_MOVED "'; END IF; END$cb$", j->version);
	snprintf(record, sizeof(record), "INSERT INTO schema_version "
	    "(version) VALUES (%d)", j->version + 1);
	memset(stmts, 0, sizeof(stmts));
	stmts[n++].sql = "SELECT pg_advisory_xact_lock(" PGSCHEMA_LOCK_KEY ")";
	stmts[n++].sql = guard;
	for (i = 0; i < m->nstmts; i++)
		stmts[n++].sql = m->stmts[i];
	stmts[n++].sql = record;
	return pg_batch(j->pg, stmts, n, pgschema_migrated_cb, j, err);
}

/* Where the version read leaves us: done, refused, or one more step. */
static void
pgschema_step(struct pgschema_job *j)
{
	struct cb_error	 err;
	int		 rc;

	cb_error_clear(&err);
	if (j->version == j->n) {
		pgschema_finish(j, 0, NULL);
		return;
	}
	if (j->version > j->n) {
		rc = cb_error_set(&err, CB_EINTERNAL, "the database schema is "
		    "version %d, newer than this broker knows (%d): upgrade "
		    "the broker", j->version, j->n);
		pgschema_finish(j, rc, &err);
		return;
	}
	if ((rc = pgschema_migrate(j, &err)) != 0)
		pgschema_finish(j, rc, &err);
}

static void
pgschema_read_cb(void *arg, int rc, PGresult *res, const struct cb_error *e)
{
	struct pgschema_job	*j = arg;
	struct cb_error		 err;
	const char		*v;
	char			*end;
	long			 version;

	cb_error_clear(&err);
	if (rc != 0) {
		rc = cb_error_set(&err, rc == -CB_EUNAVAILABLE ?
		    CB_EUNAVAILABLE : CB_EINTERNAL, "cannot read the database "
		    "schema version: %s", e->msg);
		pgschema_finish(j, rc, &err);
		return;
	}
	if (PQntuples(res) != 1 || PQnfields(res) != 1 ||
	    (v = PQgetvalue(res, 0, 0)) == NULL) {
		rc = cb_error_set(&err, CB_EINTERNAL,
		    "cannot read the database schema version");
		pgschema_finish(j, rc, &err);
		return;
	}
	version = strtol(v, &end, 10);
	if (*v == '\0' || *end != '\0' || version < 0 || version > 1000000) {
		rc = cb_error_set(&err, CB_EINTERNAL,
		    "malformed database schema version");
		pgschema_finish(j, rc, &err);
		return;
	}
	j->version = (int)version;
	pgschema_step(j);
}

static void
pgschema_migrated_cb(void *arg, int rc, PGresult *res,
    const struct cb_error *e)
{
	struct pgschema_job	*j = arg;
	struct cb_error		 err;
	const char		*state;

	cb_error_clear(&err);
	if (rc == 0) {
		j->version++;
		pgschema_step(j);
		return;
	}
	state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) :
	    NULL;
	if (state != NULL && strcmp(state, PGSCHEMA_MOVED) == 0) {
		/* Another broker migrated while we waited: read again. */
		if ((rc = pgschema_read(j, &err)) != 0)
			pgschema_finish(j, rc, &err);
		return;
	}
	rc = cb_error_set(&err, rc == -CB_EUNAVAILABLE ? CB_EUNAVAILABLE :
	    CB_EINTERNAL, "schema migration to version %d (%s) failed and "
	    "was rolled back: %s", j->version + 1, j->list[j->version].what,
	    e->msg);
	pgschema_finish(j, rc, &err);
}

int
pgschema_apply_list(struct pg *pg, const struct pgschema_migration *list,
    int n, pgschema_done_fn cb, void *arg, struct cb_error *err)
{
	struct pgschema_job	*j;
	int			 rc;

	if (pg == NULL || cb == NULL || n < 0 || (n > 0 && list == NULL))
		return cb_error_set(err, CB_EINTERNAL,
		    "bad schema migration arguments");
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return cb_error_set(err, CB_EINTERNAL, "out of memory");
	j->pg = pg;
	j->list = list;
	j->n = n;
	j->cb = cb;
	j->arg = arg;
	if ((rc = pgschema_read(j, err)) != 0)
		free(j);
	return rc;
}

int
pgschema_apply(struct pg *pg, pgschema_done_fn cb, void *arg,
    struct cb_error *err)
{
	return pgschema_apply_list(pg, pgschema_list, PGSCHEMA_VERSION, cb,
	    arg, err);
}

-- A credbroker database of schema version 5, as the release before schema
-- 6 (commit 428c438) wrote it: that broker's credbrokerd was started on an
-- empty file with the master key "schema5-fixture-key-0123456789ab" (test
-- only), a db type "legacy" was created and three users' values were set
-- with cred.set ("previous-release-value-0" .. "-2").  The file was then
-- dumped with Python's sqlite3 iterdump, unchanged but for these comments
-- and the user_version at the end, which a dump leaves out.
-- tests/integration/test_schema_upgrade.py loads it.
BEGIN TRANSACTION;
CREATE TABLE credaccounts (  type_uuid TEXT NOT NULL REFERENCES types(uuid) ON DELETE CASCADE,  name TEXT NOT NULL,  sealed TEXT NOT NULL,  updated_at INTEGER NOT NULL,  PRIMARY KEY (type_uuid, name)) WITHOUT ROWID;
CREATE TABLE credlinks (  type_uuid TEXT NOT NULL REFERENCES types(uuid) ON DELETE CASCADE,  user_uuid TEXT NOT NULL,  account TEXT NOT NULL,  sealed TEXT NOT NULL,  updated_at INTEGER NOT NULL,  PRIMARY KEY (type_uuid, user_uuid)) WITHOUT ROWID;
CREATE TABLE credvalues (  type_uuid TEXT NOT NULL REFERENCES types(uuid) ON DELETE CASCADE,  user_uuid TEXT NOT NULL,  sealed TEXT NOT NULL,  updated_at INTEGER NOT NULL,  PRIMARY KEY (type_uuid, user_uuid)) WITHOUT ROWID;
INSERT INTO "credvalues" VALUES('2abb6879-9551-4678-acf8-b32733be777c','11111111-1111-4111-8111-111111111111','CB1:1:PFXCeHXFqq2ZPjPi59uJ1Eyc6nQ/xXLCcl6w0OJMSfwqBr7D0dbTYa9rrI/LIvNK16yvPA==',1796585321);
INSERT INTO "credvalues" VALUES('2abb6879-9551-4678-acf8-b32733be777c','22222222-2222-4222-8222-222222222222','CB1:1:QSRGmkGxmNF0Rdr31RQ6Znhe99/PsFkVumX9OEEgKJejJ2P9CsCMoQ+/AfnhXCnEUpCCDA==',1796585321);
INSERT INTO "credvalues" VALUES('2abb6879-9551-4678-acf8-b32733be777c','33333333-3333-4333-8333-333333333333','CB1:1:JAS/jRigtJHMYIsM3Vz0d0laBcccLjdUDfhUY/mDbfPIbogaIiWhFQ+aTCMzDeGtZUwXHg==',1796585321);
CREATE TABLE keycheck (  id INTEGER PRIMARY KEY CHECK (id = 1),  kcv TEXT NOT NULL);
INSERT INTO "keycheck" VALUES(1,'kcv1:ef5094ef8c9762198e8d358e575fb589');
CREATE TABLE keypair_versions (  ident TEXT NOT NULL REFERENCES keypairs(ident) ON DELETE CASCADE,  version INTEGER NOT NULL CHECK (version >= 1),  bits INTEGER NOT NULL,  sealed TEXT NOT NULL,  created_at INTEGER NOT NULL,  PRIMARY KEY (ident, version)) WITHOUT ROWID;
CREATE TABLE keypairs (  ident TEXT PRIMARY KEY,  next_version INTEGER NOT NULL CHECK (next_version >= 1),  created_at INTEGER NOT NULL,  updated_at INTEGER NOT NULL);
CREATE TABLE peerkeys (  ident TEXT NOT NULL,  version INTEGER NOT NULL CHECK (version >= 1),  bits INTEGER NOT NULL,  sealed TEXT NOT NULL,  created_at INTEGER NOT NULL,  PRIMARY KEY (ident, version)) WITHOUT ROWID;
CREATE TABLE settings (  key TEXT PRIMARY KEY,  value TEXT NOT NULL);
CREATE TABLE types (  uuid TEXT PRIMARY KEY,  ident TEXT UNIQUE NOT NULL,  name TEXT NOT NULL,  description TEXT NOT NULL DEFAULT '',  storage TEXT NOT NULL CHECK (storage IN ('db', 'vault')),  destinations TEXT NOT NULL DEFAULT '',  created_at INTEGER,  updated_at INTEGER, generation INTEGER NOT NULL DEFAULT 0, default_account TEXT NOT NULL  DEFAULT '', default_sealed TEXT, ca_file TEXT);
INSERT INTO "types" VALUES('2abb6879-9551-4678-acf8-b32733be777c','legacy','Made by schema 5','','db','',1796585321,1796585321,0,'',NULL,NULL);
CREATE INDEX credvalues_user ON credvalues(user_uuid);
CREATE INDEX credlinks_account ON credlinks(type_uuid, account);
CREATE INDEX credlinks_user ON credlinks(user_uuid);
PRAGMA user_version = 5;
COMMIT;

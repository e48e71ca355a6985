#!/usr/bin/env python3
"""
A database written by the release before schema 6 opens under this one.

Schema 6 stores the keys of credvalues as 16-byte uuids instead of their
36-character text.  The database of each test starts from
tests/data/schema5.sql: a dump of a file that the previous release's
credbrokerd made (its schema exactly, its key check value and three values
it sealed).  The big test adds 100,000 values to it the way that release
stored them, sealed by an independent AES-GCM (Python's cryptography, as
in test_rotation.py), and requires every one of them to be substituted by
the upgraded broker.
"""

import os
import sqlite3
import sys
import time
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
import test_rotation as rot  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                       "..", "data", "schema5.sql")
FIXTURE_KEY = "schema5-fixture-key-0123456789ab"
FIXTURE_TYPE = "2abb6879-9551-4678-acf8-b32733be777c"
FIXTURE_USERS = ["11111111-1111-4111-8111-111111111111",
                 "22222222-2222-4222-8222-222222222222",
                 "33333333-3333-4333-8333-333333333333"]
NTYPES = 4
NUSERS = int(os.environ.get("CB_UPGRADE_USERS", "25000"))  # x 4 = 100,000
NLEGACY = 8                     # values in the platform's GCM: format


def make_schema5(path):
    """The fixture's database at path, mode 0600 (the broker checks it)."""
    with open(FIXTURE) as f:
        script = f.read()
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.close(fd)
    con = sqlite3.connect(path)
    try:
        con.executescript(script)
        assert con.execute("PRAGMA user_version").fetchone()[0] == 5
    finally:
        con.close()


def schema5_type(con, type_uuid, ident):
    """A db type row as schema 5 holds it."""
    con.execute("INSERT INTO types (uuid, ident, name, description, "
                "storage, destinations, created_at, updated_at, "
                "generation, default_account, default_sealed, ca_file) "
                "VALUES (?, ?, ?, '', 'db', '', 1700000000, 1700000000, "
                "0, '', NULL, NULL)", (type_uuid, ident, ident))


def key_text(value):
    return str(uuid.UUID(bytes=value))


@cbtest.sqlite_only("the migration of the SQLite file's schema")
class SchemaUpgradeTest(rot.RotationCase):

    def schema5_daemon(self, **kwargs):
        d = self.use_daemon(cbtest.Daemon(key=FIXTURE_KEY, **kwargs))
        make_schema5(d.database)
        return d

    def dump(self, d):
        con = sqlite3.connect("file:%s?mode=ro" % d.database, uri=True)
        try:
            return list(con.iterdump())
        finally:
            con.close()

    def rows(self, d):
        con = sqlite3.connect("file:%s?mode=ro" % d.database, uri=True)
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            rows = con.execute("SELECT type_uuid, user_uuid, sealed "
                               "FROM credvalues").fetchall()
        finally:
            con.close()
        return version, rows

    def test_database_of_schema_5_with_100000_values_opens_every_value(self):
        d = self.schema5_daemon()
        sealer = rot.Sealer(FIXTURE_KEY.encode())
        types = sorted(str(uuid.uuid4()) for _ in range(NTYPES))
        users = sorted(cbtest.new_user() for _ in range(NUSERS))
        legacy = set(users[i] for i in range(0, NUSERS,
                                             max(1, NUSERS // NLEGACY)))
        expected = {}
        rows = []
        t0 = time.monotonic()
        for ti, t in enumerate(types):
            for u in users:
                pt = rot.pt_for("v5", ti, u)
                expected[(t, u)] = pt
                sealed = (sealer.seal_legacy(pt) if ti == 0 and u in legacy
                          else sealer.seal(1, t, u, pt))
                rows.append((t, u, sealed, 1700000000))
        con = sqlite3.connect(d.database)
        try:
            with con:
                for ti, t in enumerate(types):
                    schema5_type(con, t, "t%d" % ti)
                con.executemany("INSERT INTO credvalues (type_uuid, "
                                "user_uuid, sealed, updated_at) "
                                "VALUES (?, ?, ?, ?)", rows)
        finally:
            con.close()
        built = time.monotonic() - t0

        t0 = time.monotonic()
        d.start()
        upgrade = time.monotonic() - t0
        sys.stderr.write("[%d values: built in %.1fs, upgraded and started "
                         "in %.1fs] " % (len(rows) + 3, built, upgrade))

        # Schema 6: every key is 16 bytes, and the rows are all there.
        version, got = self.rows(d)
        self.assertEqual(version, 6)
        self.assertEqual(len(got), len(rows) + len(FIXTURE_USERS))
        bad = [r for r in got if not (isinstance(r[0], bytes) and
                                      isinstance(r[1], bytes) and
                                      len(r[0]) == 16 and len(r[1]) == 16)]
        self.assertEqual(bad[:3], [])
        sealed_before = {(t, u): s for t, u, s, _ in rows}
        changed = [(key_text(t), key_text(u)) for t, u, s in got
                   if (key_text(t), key_text(u)) in sealed_before and
                   sealed_before[(key_text(t), key_text(u))] != s]
        self.assertEqual(changed[:3], [], "sealed text changed")

        with d.client() as c:
            # The values the previous release sealed itself.
            for i, u in enumerate(FIXTURE_USERS):
                res = c.ok("substitute", rot.sub_params(u, ["legacy"]))
                self.assertEqual(rot.sub_values(res, 1),
                                 [b"previous-release-value-%d" % i])
            # Every one of the 100,000, through the broker.
            self.check_substitute(c, types, expected, users)

            # The upgraded store takes writes as a new one does.
            u = users[1]
            c.ok("cred.set", {"type": "t1", "user": u, "value": "after"})
            res = c.ok("substitute", rot.sub_params(u, ["t1"]))
            self.assertEqual(rot.sub_values(res, 1), [b"after"])
            c.ok("cred.delete", {"type": "t1", "user": u})
            err, _ = c.call("substitute", rot.sub_params(u, ["t1"]))
            self.assertIsNotNone(err)
            # cred.status lists the user's values by type (a join on
            # the 16-byte keys).
            st = {e["ident"]: e["filled"]
                  for e in c.ok("cred.status", {"user": users[2]})}
            self.assertEqual(st, dict({"t%d" % i: True
                                       for i in range(NTYPES)},
                                      legacy=False))
            st = {e["ident"]: e["filled"]
                  for e in c.ok("cred.status", {"user": FIXTURE_USERS[0]})}
            self.assertEqual(st, dict({"t%d" % i: False
                                       for i in range(NTYPES)},
                                      legacy=True))
            c.ok("type.delete", {"type": "t2", "force": True})
        version, got = self.rows(d)
        self.assertEqual(len(got), len(rows) + len(FIXTURE_USERS) -
                         NUSERS - 1)
        self.assertNotIn(types[2], {key_text(t) for t, _, _ in got})
        d.stop()

    def test_malformed_uuid_refuses_the_upgrade_and_changes_nothing(self):
        d = self.schema5_daemon()
        con = sqlite3.connect(d.database)
        with con:
            con.execute("INSERT INTO credvalues VALUES (?, ?, 'CB1:1:x', 1)",
                        (FIXTURE_TYPE, "NOT-A-UUID"))
        con.close()
        before = self.dump(d)
        d.start(wait=False)
        self.assertEqual(d.wait_exit(), 1)
        d.checked = True
        msg = d.log()
        self.assertIn("cannot upgrade database %s from schema version 5 "
                      "to 6 (" % d.database, msg)
        self.assertIn("a stored uuid is malformed", msg)
        self.assertIn("it was left at version 5", msg)
        version, got = self.rows(d)
        self.assertEqual(version, 5)
        self.assertEqual(self.dump(d), before)


if __name__ == "__main__":
    cbtest.main()

#!/usr/bin/env python3
"""
credbrokerd on the postgresql backend: its configuration and start-up.

Where the password comes from (a file, the systemd credential), what is
refused and how (a password in the connection string, a password file
others may read, a wrong password, a schema newer than the broker, a
backend without a connection string), that libpq's own keywords pass
through (sslmode), that the password never shows in the process's
arguments, environment or log, and that the local mirror is made again
from PostgreSQL at every start.

One private cluster (tests/integration/pgtest.py) for the suite; each test
has a schema of its own in the cluster's database.
"""

import os
import shutil
import sqlite3
import unittest

import cbtest
import pgtest

CLUSTER = None
_SCHEMAS = [0]


def setUpModule():
    global CLUSTER
    CLUSTER = pgtest.Cluster().start()


def tearDownModule():
    if CLUSTER is not None:
        CLUSTER.cleanup()


class PgConfigTest(unittest.TestCase):

    def setUp(self):
        if not cbtest.have_binaries():
            self.skipTest("binaries not built")
        _SCHEMAS[0] += 1
        self.schema = "cfg%d" % _SCHEMAS[0]
        CLUSTER.sql("CREATE SCHEMA %s" % self.schema)
        self.daemons = []

    def tearDown(self):
        for d in self.daemons:
            d.cleanup()

    def conninfo(self, **kw):
        ci = CLUSTER.conninfo() + " options=-csearch_path=" + self.schema
        for k, v in kw.items():
            ci += " %s=%s" % (k, v)
        return ci

    def daemon(self, storage=None, password=None, mode=0o600, env=None):
        d = cbtest.Daemon(env=env, backend="sqlite")  # storage: its own
        self.daemons.append(d)
        pwfile = os.path.join(d.dir, "pg-password")
        if password is not False:
            cbtest.write_file(pwfile, ((password or CLUSTER.password) +
                                       "\n").encode(), mode=mode)
        items = storage
        if items is None:
            items = [("backend", "postgresql"),
                     ("postgresql", self.conninfo()),
                     ("postgresql_password_file", pwfile)]
        d.extra = {"storage": items}
        d.write_config()
        return d

    def start_fails(self, d):
        """Start d, expect exit 1; its log."""
        d.start(wait=False)
        rc = d.wait_exit()
        self.assertEqual(rc, 1, d.log())
        return d.log()

    def in_schema(self, query):
        return CLUSTER.sql("SET search_path TO %s; %s" % (self.schema, query))

    # -- the password -------------------------------------------------
    def test_password_from_a_file_connects_and_stays_out_of_sight(self):
        d = self.daemon().start()
        with d.client() as c:
            r = c.ok("type.create", {"ident": "github", "name": "GitHub",
                                      "storage": "db"})
            self.assertEqual(r["ident"], "github")
        self.assertEqual(self.in_schema("SELECT ident FROM types"), "github")
        pw = CLUSTER.password.encode()
        with open("/proc/%d/cmdline" % d.pid, "rb") as f:
            self.assertNotIn(pw, f.read())
        with open("/proc/%d/environ" % d.pid, "rb") as f:
            self.assertNotIn(pw, f.read())
        d.stop()
        self.assertNotIn(pw, d.all_logs())

    def test_password_from_the_systemd_credential(self):
        creds = cbtest.make_tmpdir("cbcred")
        self.addCleanup(shutil.rmtree, creds, True)
        cbtest.write_file(os.path.join(creds, "pg-password"),
                          (CLUSTER.password + "\n").encode(), mode=0o400)
        d = self.daemon(storage=[("backend", "postgresql"),
                                 ("postgresql", self.conninfo())],
                        password=False,
                        env={"CREDENTIALS_DIRECTORY": creds})
        d.start()
        with d.client() as c:
            c.ok("type.create", {"ident": "cred", "name": "C",
                                  "storage": "db"})
        self.assertEqual(self.in_schema("SELECT ident FROM types"), "cred")

    def test_wrong_password_refused_at_start_naming_the_cause(self):
        d = self.daemon(password="not-the-password-51xq")
        log = self.start_fails(d)
        self.assertIn("password authentication failed", log)
        self.assertNotIn("not-the-password-51xq", log)

    def test_password_file_that_others_may_read_is_refused(self):
        d = self.daemon(mode=0o644)
        log = self.start_fails(d)
        self.assertIn("PostgreSQL password file %s can be read or written "
                      "by other users (mode 0644); run: chmod 600 %s" % (
                          os.path.join(d.dir, "pg-password"),
                          os.path.join(d.dir, "pg-password")), log)
        self.assertNotIn(CLUSTER.password, log)

    def test_password_in_the_connection_string_is_refused_unquoted(self):
        secret = "Sekr1t-in-conninfo-77"
        for ci in (self.conninfo(password=secret),
                   "postgresql://%s:%s@localhost:%d/%s" % (
                       CLUSTER.role, secret, CLUSTER.port,
                       CLUSTER.database)):
            d = self.daemon(storage=[("backend", "postgresql"),
                                     ("postgresql", ci)])
            log = self.start_fails(d)
            self.assertIn("holds a password: give it separately", log)
            self.assertIn("storage.postgresql: ", log)
            self.assertNotIn(secret, log)
            # --check-config refuses it the same way.
            r = cbtest.subprocess.run(
                [cbtest.DAEMON, "--check-config", "-c", d.config],
                capture_output=True, timeout=30)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertNotIn(secret.encode(), r.stdout + r.stderr)

    # -- what is refused ----------------------------------------------
    def test_backend_postgresql_without_a_connection_string_is_refused(self):
        d = self.daemon(storage=[("backend", "postgresql")])
        log = self.start_fails(d)
        self.assertIn("storage.backend is postgresql but storage.postgresql "
                      "(the connection string) is not set", log)

    def test_unknown_backend_is_refused(self):
        d = self.daemon(storage=[("backend", "mysql")])
        log = self.start_fails(d)
        self.assertIn("storage.backend must be sqlite or postgresql, got "
                      "'mysql'", log)

    def test_sslmode_is_passed_through_to_libpq(self):
        # The test cluster has no TLS: sslmode=require must fail, and say
        # so, which shows the keyword reached libpq.
        d = self.daemon(storage=[
            ("backend", "postgresql"),
            ("postgresql", self.conninfo(host="127.0.0.1", sslmode="require")),
            ("postgresql_password_file", "/nonexistent")])
        cbtest.write_file(os.path.join(d.dir, "pg-password"),
                          CLUSTER.password.encode())
        d.extra["storage"][2] = ("postgresql_password_file",
                                 os.path.join(d.dir, "pg-password"))
        d.write_config()
        log = self.start_fails(d)
        self.assertIn("server does not support SSL", log)

    def test_schema_newer_than_the_broker_is_refused(self):
        d = self.daemon().start()
        d.stop()
        self.in_schema("INSERT INTO schema_version (version) VALUES (99)")
        log = self.start_fails(d)
        self.assertIn("the database schema is version 99, newer than this "
                      "broker knows", log)

    def test_unreachable_database_is_refused_at_start(self):
        d = self.daemon(storage=[
            ("backend", "postgresql"),
            ("postgresql", "host=%s port=%d user=x dbname=x" % (
                CLUSTER.sockdir, CLUSTER.port + 1)),
            ("postgresql_timeout", "2")])
        log = self.start_fails(d)
        self.assertIn("cannot connect to PostgreSQL", log)

    # -- the mirror -----------------------------------------------------
    def test_the_mirror_is_made_again_from_postgresql_at_start(self):
        d = self.daemon().start()
        with d.client() as c:
            c.ok("type.create", {"ident": "kept", "name": "K",
                                  "storage": "db"})
        d.stop()
        mirror = d.database + ".mirror"
        self.assertTrue(os.path.exists(mirror))
        # What the mirror holds and PostgreSQL does not goes at start.
        db = sqlite3.connect(mirror)
        db.execute("INSERT INTO types (uuid, ident, name, storage) VALUES "
                   "('00000000-0000-4000-8000-00000000beef', 'planted', "
                   "'P', 'db')")
        db.commit()
        db.close()
        d.start()
        with d.client() as c:
            self.assertEqual(c.ok("type.get", {"type": "kept"})["ident"],
                             "kept")
            err, _ = c.call("type.get", {"type": "planted"})
            self.assertEqual(err["code"], "not_found", err)
        d.stop()
        # And a mirror removed while stopped is no loss.
        os.unlink(mirror)
        d.start()
        with d.client() as c:
            self.assertEqual(c.ok("type.get", {"type": "kept"})["ident"],
                             "kept")
        # The SQLite store file of the sqlite backend is never made.
        self.assertFalse(os.path.exists(d.database))


if __name__ == "__main__":
    cbtest.main()

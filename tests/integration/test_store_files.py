"""
Store file tests (credbrokerd(8), FILES): one broker per database, held
by an exclusive lock on DATABASE.lock; a write lock held by another process
fails a write at once with `unavailable` while the loop keeps serving; an
existing empty database file is refused unless --init; the master key file
must be owned by the broker's user or root; group and other permission
bits on the database files are removed with a warning; SIGHUP with an
inline master key leaves no new copy of the key in memory.
"""

import hashlib
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import Daemon, new_user, plain_key  # noqa: E402
import test_memory  # noqa: E402

# Far above any normal answer and far below the busy timeout (5 s) the
# broker used to wait on a locked database.
PROMPT = 2.0


def digest(path):
    if not os.path.exists(path):
        return None
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def run_daemon(args, timeout=None):
    """Run credbrokerd to completion; (status, stdout + stderr)."""
    cmd = [cbtest.DAEMON] + args
    if cbtest.VALGRIND:
        cmd = ["valgrind", "--error-exitcode=99", "--leak-check=full",
               "--errors-for-leak-kinds=definite", "-q"] + cmd
    env = dict(os.environ)
    env.pop("CREDENTIALS_DIRECTORY", None)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env,
                       timeout=timeout or cbtest.START_TIMEOUT)
    return p.returncode, p.stdout.decode("utf-8", "replace")


class SecondBrokerTest(cbtest.DaemonTestCase):

    def test_second_broker_on_same_database_refuses_naming_first_pid(self):
        audit = os.path.join(self.tmp, "audit.log")
        self.c.close()
        self.d.args += ["-o", "audit.file=" + audit]
        self.d.restart()
        self.c = self.d.client()
        self.c.ok("type.create", {"ident": "tok", "name": "T",
                                  "storage": "db"})
        user = new_user()
        self.c.ok("cred.set", {"type": "tok", "user": user, "value": "v1"})
        # The second broker: same database and audit file, its own socket.
        other = os.path.join(self.tmp, "second")
        os.mkdir(other, 0o700)
        sock = os.path.join(other, "cb.sock")
        files = [self.d.database, self.d.database + "-wal", audit]
        before = {p: digest(p) for p in files}
        self.assertIsNotNone(before[audit])
        try:
            rc, out = run_daemon(["-f", "-c", self.d.config,
                                  "-o", "server.socket=" + sock,
                                  "-o", "audit.file=" + audit])
        except subprocess.TimeoutExpired:
            self.fail("a second broker started on the same database")
        self.assertNotEqual(rc, 0, "second broker started:\n" + out)
        self.assertIn("pid %d" % self.d.pid, out)
        self.assertIn("in use by another credbrokerd", out)
        self.assertFalse(os.path.exists(sock))
        self.assertEqual({p: digest(p) for p in files}, before,
                         "the refused start changed the database or the "
                         "audit file")
        # --check-config neither takes nor needs the lock.
        rc, out = run_daemon(["--check-config", "-c", self.d.config])
        self.assertEqual(rc, 0, out)
        self.assertIn("configuration and master key OK", out)
        # The first broker keeps serving.
        self.c.ok("hello", {})
        self.c.ok("cred.set", {"type": "tok", "user": user, "value": "v2"})
        st = self.c.ok("cred.status", {"user": user})
        self.assertTrue([e for e in st if e["ident"] == "tok"][0]["filled"])


@cbtest.sqlite_only("about a write lock on the SQLite file held by another "
                    "process")
class LockedDatabaseTest(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.c.ok("type.create", {"ident": "tok", "name": "T",
                                  "storage": "db"})
        self.user = new_user()
        self.c.ok("cred.set", {"type": "tok", "user": self.user,
                               "value": "before"})

    def hold_write_lock(self):
        """Another process's connection holding the write lock."""
        db = sqlite3.connect(self.d.database, timeout=0,
                             isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        return db

    def timed(self, client, method, params):
        t0 = time.monotonic()
        resp = client.call(method, params)
        return resp, time.monotonic() - t0

    def test_write_lock_held_elsewhere_answers_unavailable_at_once(self):
        db = self.hold_write_lock()
        try:
            results = {}

            def setter():
                with self.d.client(timeout=30 * cbtest.SCALE) as c:
                    results["set"] = self.timed(
                        c, "cred.set", {"type": "tok", "user": self.user,
                                        "value": "during"})

            t = threading.Thread(target=setter)
            t.start()
            # Meanwhile the loop answers other connections.
            with self.d.client() as c2:
                resp, dt = self.timed(c2, "hello", {})
                self.assertOk(resp)
                self.assertLess(dt, PROMPT, "hello waited %.1fs" % dt)
                resp, dt = self.timed(c2, "cred.status", {"user": self.user})
                self.assertOk(resp)
                self.assertLess(dt, PROMPT)
            t.join(30 * cbtest.SCALE)
            self.assertFalse(t.is_alive())
            resp, dt = results["set"]
            err = self.assertError(resp, "unavailable")
            self.assertIn("locked by another process", err["message"])
            self.assertLess(dt, PROMPT, "cred.set waited %.1fs" % dt)
            for _ in range(3):
                resp, dt = self.timed(self.c, "type.create",
                                      {"ident": "other", "name": "O",
                                       "storage": "db"})
                self.assertError(resp, "unavailable")
                self.assertLess(dt, PROMPT)
            self.assertOk(self.c.call("hello", {}))
        finally:
            db.rollback()
            db.close()
        # Released: writes work, the refused ones changed nothing, and
        # every acknowledged write is there after a restart.
        self.assertError(self.c.call("type.get", {"type": "other"}),
                         "not_found")
        res = self.c.ok("cred.set", {"type": "tok", "user": self.user,
                                     "value": "after"})
        self.c.close()
        self.d.restart()
        self.c = self.d.client()
        st = [e for e in self.c.ok("cred.status", {"user": self.user})
              if e["ident"] == "tok"][0]
        self.assertTrue(st["filled"])
        self.assertEqual(st["updated_at"], res["updated_at"])


class EmptyDatabaseTest(unittest.TestCase):

    def setUp(self):
        if not cbtest.have_binaries():
            self.skipTest("credbrokerd not built at %s" % cbtest.DAEMON)
        self.tmp = cbtest.make_tmpdir()
        self.addCleanup(cbtest.remove_tmpdir, self.tmp)
        self.d = Daemon(self.tmp)
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.d.finish)

    @cbtest.sqlite_only("about an existing empty SQLite database file")
    def test_existing_empty_database_refused_unless_init(self):
        cbtest.write_file(self.d.database, b"")
        self.d.start(wait=False)
        rc = self.d.wait_exit()
        self.d.checked = True           # a refusal: exit status checked here
        self.assertIsNotNone(rc, "broker started on an empty database")
        self.assertNotEqual(rc, 0)
        log = self.d.log()
        self.assertIn("is empty", log)
        self.assertIn("--init", log)
        self.assertNotIn("new store", log)
        self.assertEqual(os.path.getsize(self.d.database), 0)
        # --init starts a new store in it.
        self.d.args.append("--init")
        self.d.start()
        self.assertIn("new store", self.d.log())
        c = self.d.client()
        c.ok("hello", {})
        c.close()
        self.d.stop()
        # A missing file is a first start, as before.
        self.d.args.remove("--init")
        os.unlink(self.d.database)
        self.d.start()
        self.assertIn("new store", self.d.log())

    @cbtest.sqlite_only("about the modes of the SQLite database and its -wal")
    def test_database_group_and_other_bits_fixed_with_warning(self):
        self.d.start()
        self.d.stop()
        os.chmod(self.d.database, 0o644)
        self.d.start()
        self.assertEqual(stat.S_IMODE(os.stat(self.d.database).st_mode),
                         0o600)
        log = self.d.log()
        self.assertIn(self.d.database, log)
        self.assertIn("mode 0644", log)
        # A -wal left by a crash is checked too.
        self.d.kill9()
        wal = self.d.database + "-wal"
        self.assertTrue(os.path.exists(wal))
        os.chmod(wal, 0o664)
        self.d.start()
        self.assertEqual(stat.S_IMODE(os.stat(wal).st_mode), 0o600)
        self.assertIn("mode 0664", self.d.log())
        for p in (self.d.database, wal, self.d.database + "-shm"):
            if os.path.exists(p):
                self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), 0o600, p)


class KeyFileOwnerTest(unittest.TestCase):

    def setUp(self):
        if not cbtest.have_binaries():
            self.skipTest("credbrokerd not built at %s" % cbtest.DAEMON)
        if os.geteuid() != 0:
            self.fail("this test changes file owners: run it as root")
        self.tmp = cbtest.make_tmpdir()
        self.addCleanup(cbtest.remove_tmpdir, self.tmp)
        self.d = Daemon(self.tmp)
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.d.finish)

    def test_key_file_owned_by_another_user_refused(self):
        os.chown(self.d.key_file, 65534, 65534)
        self.assertEqual(stat.S_IMODE(os.stat(self.d.key_file).st_mode),
                         0o600)
        self.d.start(wait=False)
        rc = self.d.wait_exit()
        self.d.checked = True           # a refusal: exit status checked here
        self.assertIsNotNone(rc, "broker accepted a key file owned by "
                             "uid 65534")
        self.assertNotEqual(rc, 0)
        log = self.d.log()
        self.assertIn("owned by uid 65534", log)
        self.assertIn("uid %d" % os.geteuid(), log)
        # Owned by root (here also the broker's user): accepted.
        os.chown(self.d.key_file, 0, 0)
        self.d.start()
        with self.d.client() as c:
            c.ok("hello", {})


class ReloadKeyCopiesTest(cbtest.DaemonTestCase):
    """The inline master key is held once, in the locked key storage; a
    reload must not leave another copy behind."""

    daemon_kwargs = {"key_source": "inline"}
    RELOADS = 8

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("reading the daemon's memory needs root")
        self.daemon_kwargs = dict(self.daemon_kwargs, key=plain_key(32))
        super().setUp()

    def count(self):
        sc = test_memory.Scanner(self.d.pid, cbtest.daemon_sanitized())
        _, counts = sc.scan({"key": self.d.key_bytes,
                             "socket": self.d.socket.encode()})
        self.assertGreater(counts.get("socket", 0), 0, "scanner found "
                           "nothing")
        return counts.get("key", 0)

    def reload(self, n):
        log = self.d.log
        for i in range(n):
            want = log().count("configuration reloaded") + 1
            self.d.signal(1)
            cbtest.poll_until(
                lambda: log().count("configuration reloaded") >= want,
                cbtest.START_TIMEOUT, what="reload %d" % i)
            self.c.ok("hello", {})

    def test_sighup_with_inline_key_leaves_no_new_key_copy(self):
        before = self.count()
        self.reload(self.RELOADS)
        after = self.count()
        self.assertLessEqual(after, before, "%d copies of the master key "
                             "after %d reloads, %d before"
                             % (after, self.RELOADS, before))
        self.assertLessEqual(after, 1, "the master key is held %d times"
                             % after)


if __name__ == "__main__":
    unittest.main()

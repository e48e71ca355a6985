"""
Writes off the loop (storage/writer.h): every write the daemon makes (the
values of db-stored types, and types, accounts, links, keys and settings)
is committed by a thread of its own, in groups, while the loop keeps
answering.

The daemon runs with tests/tools/slowsync.so preloaded: every fsync of its
database and -wal file sleeps SLOW_MS while the flag file exists, so a
commit can be held in flight for as long as a test needs.  The set-up
runs at full speed (no flag).  On PostgreSQL, where the local mirror
commits without fsync, a test that must hold a write holds a lock on the
table it writes instead, in a psql session of its own (stall()): a SHARE
lock on credvalues holds the writes of values and lets their reads
through.
"""

import os
import statistics
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, pack_request  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402

SLOWSYNC = os.path.join(cbtest.BUILD_DIR, "tests", "slowsync.so")
SLOW_MS = 2000
# A wide bound against a stall of SLOW_MS: "not blocked for seconds".
PROMPT = 1.0
WAIT = 60 * cbtest.SCALE
URL = "https://api.example.com/v1/things"


def sub_params(user, ident):
    return {"component": {"kind": "action", "initiator": user,
                          "credentials": [{"id": "c", "type": ident}]},
            "request": {"method": "GET", "url": URL,
                        "headers": [["X-C", "<<.credentials.c>>"]]}}


def sub_value(res):
    name, value = res["request"]["headers"][0]
    assert name.lower() == "x-c", res
    return value


class SlowSyncTestCase(cbtest.DaemonTestCase):
    """The daemon under slowsync, with a db-stored type "tok"."""

    start_daemon = False
    slow_ms = SLOW_MS

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(SLOWSYNC), "%s is not built" %
                        SLOWSYNC)
        self.flag = os.path.join(self.tmp, "slow")
        env = {"LD_PRELOAD": SLOWSYNC,
               "CB_SLOWSYNC_DB": os.path.realpath(self.stalled_file()),
               "CB_SLOWSYNC_MS": str(self.slow_ms),
               "CB_SLOWSYNC_FLAG": self.flag}
        if cbtest.daemon_sanitized():
            env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                   ":verify_asan_link_order=0")
        self.d.env = env
        if self.d.backend == "postgresql":
            # A write held by stall() waits on the lock, not the timeout.
            self.d.extra.setdefault("storage", []).append(
                ("postgresql_timeout", "120"))
        self.d.start()
        self.c = self.d.client(timeout=WAIT)
        self.addCleanup(self.c.close)
        # Full speed again before the daemon stops (its last checkpoint).
        self.addCleanup(self.slow, False)
        self.c.ok("type.create", {"ident": "tok", "name": "T",
                                  "storage": "db"})

    def stalled_file(self):
        """The SQLite file whose commits the writer's thread makes: the
        store, or on PostgreSQL the local mirror, which commits each
        write once PostgreSQL has."""
        if self.d.backend == "postgresql":
            return self.d.database + ".mirror"
        return self.d.database

    def slow(self, on):
        if on:
            cbtest.write_file(self.flag, b"")
        elif os.path.exists(self.flag):
            os.unlink(self.flag)

    def stall(self, *tables, mode="ACCESS EXCLUSIVE"):
        """Hold the commits of the writes to tables until release(): the
        SQLite file's fsync slowed (each commit takes slow_ms), or on
        PostgreSQL the tables locked in mode by a transaction of psql's,
        open until release()."""
        if self.d.backend != "postgresql":
            self.slow(True)
            return
        pg = cbtest.pg_cluster()
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "LANG": "C", "LC_ALL": "C", "PGPASSWORD": pg.password,
               "PGCONNECT_TIMEOUT": "10"}
        self.locker = subprocess.Popen(
            [pg.psql_bin, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", pg.sockdir, "-p", str(pg.port), "-U", pg.role,
             "-d", self.d.pg_database], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, text=True)
        self.addCleanup(self.release)
        self.locker.stdin.write("BEGIN;\nLOCK TABLE %s IN %s MODE;\n"
                                "SELECT 'locked';\n" %
                                (", ".join(tables), mode))
        self.locker.stdin.flush()
        self.assertEqual(self.locker.stdout.readline().strip(), "locked")

    def release(self):
        """End stall(): on PostgreSQL the lock goes (on SQLite each
        stalled commit ends by itself; slow(False) stops the stall)."""
        p = getattr(self, "locker", None)
        if p is None:
            return
        self.locker = None
        try:
            p.communicate("COMMIT;\n", timeout=WAIT)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0)

    def wait_lock_waiter(self, what):
        """On PostgreSQL: poll until a statement waits for a lock (the
        one stall() holds)."""
        cbtest.poll_until(lambda: int(self.d.pg_sql(
            "SELECT count(*) FROM pg_locks WHERE NOT granted")) >= 1,
            WAIT, interval=0.05, what=what)

    def writer(self, c=None):
        return (c or self.c).ok("stats", {})["store"]["writer"]

    def wait_writer(self, what, fn, c=None):
        """Poll stats until fn(writer counters) holds."""
        cbtest.poll_until(lambda: fn(self.writer(c)), WAIT, what=what)

    def timed(self, c, method, params):
        t0 = time.monotonic()
        res = c.ok(method, params)
        return res, time.monotonic() - t0

    def set_in_thread(self, user, value, out):
        """cred.set on a connection of its own; out gets (resp, secs)."""
        def run():
            with self.d.client(timeout=WAIT) as c:
                t0 = time.monotonic()
                resp = c.call("cred.set", {"type": "tok", "user": user,
                                           "value": value})
                out.append((resp, time.monotonic() - t0))
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t


class WriterTest(SlowSyncTestCase):

    @cbtest.sqlite_only("db-stored values are committed in groups by the "
                        "writer's thread only on SQLite")
    def test_calls_answer_while_a_commit_is_stalled(self):
        stored = new_user()
        self.c.ok("cred.set", {"type": "tok", "user": stored,
                               "value": "stored-value"})
        self.slow(True)
        out = []
        t = self.set_in_thread(new_user(), "pending-value", out)
        self.wait_writer("a commit in flight",
                         lambda w: w["in_flight"] == 1)
        with self.d.client(timeout=WAIT) as c2:
            for method, params in (("hello", {}), ("health", {}),
                                   ("substitute", sub_params(stored,
                                                             "tok"))):
                res, dt = self.timed(c2, method, params)
                self.assertLess(dt, PROMPT, "%s took %.2fs while a commit "
                                "was stalled" % (method, dt))
                if method == "substitute":
                    self.assertEqual(sub_value(res), "stored-value")
            # All of that while the commit was still in flight.
            self.assertEqual(self.writer(c2)["in_flight"], 1)
            self.assertEqual(out, [], "the set was answered before its "
                             "commit ended")
        t.join(WAIT)
        self.assertFalse(t.is_alive())
        (err, res), dt = out[0]
        self.assertIsNone(err, err)
        self.assertGreaterEqual(dt, SLOW_MS / 1000.0 * 0.9,
                                "the commit was not slowed at all")

    @cbtest.sqlite_only("db-stored values are committed in groups by the "
                        "writer's thread only on SQLite")
    def test_writes_arriving_during_a_commit_share_the_next_one(self):
        before = self.writer()
        self.slow(True)
        first = []
        t = self.set_in_thread(new_user(), "first", first)
        self.wait_writer("a commit in flight",
                         lambda w: w["in_flight"] == 1)
        users = [new_user() for _ in range(20)]
        conns = []
        try:
            for u in users:
                c = self.d.client(timeout=WAIT)
                conns.append(c)
                c.send_raw(pack_request(1, "cred.set", {
                    "type": "tok", "user": u, "value": "v-" + u}))
            # All 20 wait behind the commit in flight.
            self.wait_writer("20 writes waiting",
                             lambda w: w["waiting"] == 20)
            acks = {}
            for u, c in zip(users, conns):
                m = c.wait_response(1, WAIT)
                self.assertIsNone(m[2], m)
                acks[u] = m[3]["updated_at"]
        finally:
            for c in conns:
                c.close()
        t.join(WAIT)
        self.assertIsNone(first[0][0][0])
        self.slow(False)
        after = self.writer()
        self.assertEqual(after["committed"] - before["committed"], 21)
        self.assertLessEqual(after["commits"] - before["commits"], 3,
                             (before, after))
        self.assertGreaterEqual(after["largest_group"], 10, after)
        self.assertEqual(after["waiting"], 0)
        self.assertGreaterEqual(after["waiting_max"], 20)
        self.assertEqual(after["failed_commits"], 0)
        for u in users:
            res = self.c.ok("substitute", sub_params(u, "tok"))
            self.assertEqual(sub_value(res), "v-" + u)
            st = {e["ident"]: e for e in self.c.ok("cred.status",
                                                   {"user": u})}
            self.assertEqual(st["tok"]["updated_at"], acks[u])

    def test_a_loop_write_waits_for_a_commit_in_flight(self):
        # type.create goes to the writer too: it waits in its queue for
        # the group in flight, and succeeds.  The write in flight is a
        # value's; on PostgreSQL, where the writer writes no values, a
        # peer key's, held by stall() until type.create is queued.
        pg = self.d.backend == "postgresql"
        out = []
        if pg:
            pem = spki_pem(rsa.generate_private_key(public_exponent=65537,
                                                    key_size=2048))
            self.stall("peerkeys")

            def run():
                with self.d.client(timeout=WAIT) as c:
                    out.append((c.call("peerkey.set", {
                        "ident": "idp", "version": 1, "pem": pem}), 0))
            t = threading.Thread(target=run, daemon=True)
            t.start()
        else:
            self.slow(True)
            t = self.set_in_thread(new_user(), "pending-value", out)
        self.wait_writer("a commit in flight",
                         lambda w: w["in_flight"] == 1)
        with self.d.client(timeout=WAIT) as c2:
            i = c2.new_id()
            c2.send_raw(pack_request(i, "type.create", {"ident": "other",
                                                        "name": "O",
                                                        "storage": "db"}))
            if pg:
                self.wait_writer("type.create queued behind it",
                                 lambda w: w["waiting"] == 1, c=self.c)
                self.assertEqual(out, [])
                self.release()
            err = c2.wait_response(i)[2]
            self.assertIsNone(err, "type.create during a group commit: "
                              "%r" % (err,))
        t.join(WAIT)
        self.assertIsNone(out[0][0][0])
        self.slow(False)
        self.assertEqual(self.c.ok("type.get", {"type": "other"})["ident"],
                         "other")

    def test_pipelined_set_then_get_of_the_same_value_sees_the_set(self):
        user, other = new_user(), new_user()
        self.c.ok("cred.set", {"type": "tok", "user": user,
                               "value": "old"})
        self.c.ok("cred.set", {"type": "tok", "user": other,
                               "value": "other"})
        self.slow(True)
        resps = self.c.pipeline([
            ("cred.set", {"type": "tok", "user": user, "value": "new"}),
            ("substitute", sub_params(user, "tok")),
            ("cred.delete", {"type": "tok", "user": other}),
            ("cred.status", {"user": other}),
        ], timeout=WAIT)
        for _, m in resps:
            self.assertIsNone(m[2], m)
        self.assertEqual(sub_value(resps[1][1][3]), "new")
        st = {e["ident"]: e for e in resps[3][1][3]}
        self.assertIs(st["tok"]["filled"], False, st)


class ReadStreamTest(SlowSyncTestCase):
    """Reads on other connections, back to back, for the whole length of
    a cred.set's commit held by a 1 s fsync stall (on PostgreSQL, by a
    SHARE lock on credvalues held for 1 s: the set's INSERT waits for it,
    every SELECT goes through).

    What the broker promises is that no read waits for a write: on a quiet
    machine each read answers within 50 ms whatever the commit in flight.
    The test asserts READ_BOUND, 0.25 s, instead: a margin for a busy
    machine, still a quarter of the stall, so that a read held by the
    commit fails it."""

    slow_ms = 1000
    READ_BOUND = 0.25 * cbtest.SCALE
    MIN_READS = 20
    DEPTH = 16

    def read_calls(self, user, acked):
        """The reads of the stream: (method, params, check of the
        result), about a value committed before the stall."""
        def check_substitute(res):
            self.assertEqual(sub_value(res), "stored-value")

        def check_status(res):
            st = {e["ident"]: e for e in res}
            self.assertIs(st["tok"]["filled"], True, st)
            self.assertEqual(st["tok"]["updated_at"], acked["updated_at"])

        def check_hello(res):
            self.assertRegex(res["server"], cbtest.SERVER_RE)

        return [("substitute", sub_params(user, "tok"), check_substitute),
                ("cred.status", {"user": user}, check_status),
                ("hello", {}, check_hello)]

    def pipelined_reads(self, calls, out, batches, failures):
        """On a connection of its own, until the set is answered: DEPTH
        reads sent in one write, answered in full, again and again;
        batches gets each round's seconds."""
        def run():
            try:
                with self.d.client(timeout=WAIT) as c:
                    deadline = time.monotonic() + WAIT
                    while not out and time.monotonic() < deadline:
                        reqs = [calls[i % len(calls)]
                                for i in range(self.DEPTH)]
                        t0 = time.monotonic()
                        resps = c.pipeline([(m, p) for m, p, _ in reqs],
                                           timeout=WAIT)
                        batches.append(time.monotonic() - t0)
                        for (_, _, check), (_, m) in zip(reqs, resps):
                            self.assertIsNone(m[2], m)
                            check(m[3])
            except BaseException as e:  # reported by the test's thread
                failures.append(e)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def test_a_stream_of_reads_is_not_delayed_by_a_stalled_cred_set(self):
        pg = self.d.backend == "postgresql"
        stored = new_user()
        acked = self.c.ok("cred.set", {"type": "tok", "user": stored,
                                       "value": "stored-value"})
        calls = self.read_calls(stored, acked)
        before = self.writer()
        if pg:
            self.stall("credvalues", mode="SHARE")
        else:
            self.slow(True)
        out = []
        t = self.set_in_thread(new_user(), "pending-value", out)
        if pg:
            self.wait_lock_waiter("the set's INSERT waiting for the lock")
        else:
            self.wait_writer("the set's commit in flight",
                             lambda w: w["in_flight"] == 1 or out)
        self.assertEqual(out, [], "the set was answered before its commit "
                         "was seen held: the stall did not hold it")
        # On PostgreSQL the stall lasts until release(), slow_ms from now.
        stall_end = time.monotonic() + self.slow_ms / 1000.0
        batches, failures = [], []
        piped = self.pipelined_reads(calls, out, batches, failures)
        reads = []              # (seconds, method), one at a time
        with self.d.client(timeout=WAIT) as c2:
            deadline = time.monotonic() + WAIT
            while (not out and time.monotonic() < deadline and
                   not (pg and time.monotonic() >= stall_end)):
                method, params, check = calls[len(reads) % len(calls)]
                res, dt = self.timed(c2, method, params)
                check(res)
                reads.append((dt, method))
        if pg:
            self.assertEqual(out, [], "the set was answered while the "
                             "lock held its INSERT")
            self.release()
        t.join(WAIT)
        piped.join(WAIT)
        self.assertFalse(t.is_alive() or piped.is_alive())
        if failures:
            raise failures[0]
        self.slow(False)
        (err, res), set_secs = out[0]
        self.assertIsNone(err, err)
        if not pg:
            after = self.writer()
            self.assertEqual(after["committed"] - before["committed"], 1)

        secs = sorted(dt for dt, _ in reads)
        worst = max(reads, default=(0.0, "no read"))
        summary = ("cred.set answered after %.3fs; %d reads one at a time: "
                   "max %.4fs (%s), median %.4fs; %d rounds of %d "
                   "pipelined: max %.4fs, median %.4fs" % (
                       set_secs, len(reads), worst[0], worst[1],
                       statistics.median(secs) if secs else 0,
                       len(batches), self.DEPTH,
                       max(batches, default=0),
                       statistics.median(batches) if batches else 0))
        try:
            # The stall happened, and the set waited for its commit.
            self.assertGreaterEqual(set_secs, self.slow_ms / 1000.0 * 0.9,
                                    "the commit was not slowed: " + summary)
            self.assertGreaterEqual(len(batches), 1, summary)
            self.assertLess(worst[0], self.READ_BOUND,
                            "a read waited for the stalled commit: " +
                            summary)
            self.assertLess(max(batches), self.READ_BOUND,
                            "pipelined reads waited for the stalled "
                            "commit: " + summary)
            self.assertGreaterEqual(len(reads), self.MIN_READS,
                                    "too few reads during the stall: " +
                                    summary)
        except AssertionError:
            print(summary, file=sys.stderr)
            raise


    def test_pipelined_reads_of_a_value_keep_their_order_with_its_held_set(
            self):
        # get, set, get and status of one value, pipelined, while the
        # set's commit is held: the get asked before the set gets the old
        # value at once, those after it wait for it and see the new one;
        # a read of another value on another connection waits for none.
        pg = self.d.backend == "postgresql"
        user, other = new_user(), new_user()
        self.c.ok("cred.set", {"type": "tok", "user": user, "value": "old"})
        self.c.ok("cred.set", {"type": "tok", "user": other,
                               "value": "other"})
        if pg:
            self.stall("credvalues", mode="SHARE")
        else:
            self.slow(True)
        reqs = [("substitute", sub_params(user, "tok")),
                ("cred.set", {"type": "tok", "user": user, "value": "new"}),
                ("substitute", sub_params(user, "tok")),
                ("cred.status", {"user": user})]
        ids = []
        buf = bytearray()
        for method, params in reqs:
            ids.append(self.c.new_id())
            buf += pack_request(ids[-1], method, params)
        self.c.send_raw(bytes(buf))
        first = self.c.wait_response(ids[0], WAIT)
        self.assertIsNone(first[2], first)
        self.assertEqual(sub_value(first[3]), "old")
        if pg:
            self.wait_lock_waiter("the set's INSERT waiting for the lock")
        with self.d.client(timeout=WAIT) as c2:
            res, dt = self.timed(c2, "substitute", sub_params(other, "tok"))
            self.assertEqual(sub_value(res), "other")
            self.assertLess(dt, PROMPT, "a read of another value waited "
                            "%.2fs for the held set" % dt)
        if pg:
            # The lock holds the set: nothing after it is answered.
            with self.assertRaises(TimeoutError):
                self.c.wait_response(ids[1], 0.3)
            self.release()
        rest = [self.c.wait_response(i, WAIT) for i in ids[1:]]
        for m in rest:
            self.assertIsNone(m[2], m)
        self.assertEqual(sub_value(rest[1][3]), "new")
        st = {e["ident"]: e for e in rest[2][3]}
        self.assertEqual(st["tok"]["updated_at"], rest[0][3]["updated_at"])
        self.slow(False)
        res = self.c.ok("substitute", sub_params(user, "tok"))
        self.assertEqual(sub_value(res), "new")


def spki_pem(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def pkcs8_pem(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class MetadataWriteTest(SlowSyncTestCase):
    """Types, accounts, links, keys and settings are written by the
    writer's thread too: a stalled commit of any of them holds no other
    connection's reads, and the write is answered only once committed."""

    slow_ms = 1000
    # Generous against a stall of 1 s: the reads wait for nothing.
    READ_BOUND = 0.2 * cbtest.SCALE

    def setUp(self):
        super().setUp()
        self.stored = new_user()
        self.linked = new_user()
        self.c.ok("cred.set", {"type": "tok", "user": self.stored,
                               "value": "stored-value"})
        self.c.ok("cred.set", {"type": "tok", "account": "shared",
                               "value": "shared-value"})
        self.c.ok("type.create", {"ident": "upd", "name": "U",
                                  "storage": "db"})
        self.c.ok("cred.set", {"type": "upd", "account": "shared",
                               "value": "upd-shared"})

    def call_in_thread(self, method, params, out):
        """method on a connection of its own; out[method] gets
        (err, result, seconds)."""
        return self.named_call_in_thread(method, method, params, out)

    def named_call_in_thread(self, name, method, params, out):
        def run():
            with self.d.client(timeout=WAIT) as c:
                t0 = time.monotonic()
                err, res = c.call(method, params)
                out[name] = (err, res, time.monotonic() - t0)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def assert_reads_prompt(self, c2):
        reads = (("hello", {}), ("type.get", {"type": "tok"}),
                 ("type.list", {}), ("cred.status", {"user": self.stored}),
                 ("substitute", sub_params(self.stored, "tok")))
        for method, params in reads:
            res, dt = self.timed(c2, method, params)
            self.assertLess(dt, self.READ_BOUND, "%s took %.3fs while "
                            "metadata writes were stalled" % (method, dt))
            if method == "substitute":
                self.assertEqual(sub_value(res), "stored-value")
            if method == "type.list":
                self.assertEqual(sorted(t["ident"] for t in res),
                                 ["tok", "upd"])

    @cbtest.sqlite_only("the stall is in the SQLite file's fsync; on "
                        "postgresql a write commits in PostgreSQL")
    def test_reads_answer_promptly_while_every_kind_of_metadata_write_commits(
            self):
        peer = rsa.generate_private_key(public_exponent=65537,
                                        key_size=2048)
        writes = [
            ("type.create", {"ident": "fresh", "name": "F",
                             "storage": "db"}),
            ("type.update", {"type": "upd", "name": "U2",
                             "destinations": ["https://api.example.com"],
                             "default_account": "shared"}),
            ("cred.link", {"type": "tok", "user": self.linked,
                           "account": "shared"}),
            ("cred.set", {"type": "tok", "account": "other",
                          "value": "other-value"}),
            ("peerkey.set", {"ident": "idp", "version": 1,
                             "pem": spki_pem(peer)}),
            ("vault.set", {"enabled": False,
                           "url": "https://vault.example:8200",
                           "path": "secret/data/cb"}),
        ]
        out = {}
        self.slow(True)
        # keypair.generate first: its key is made on the thread pool,
        # and its write is the group in flight the others queue behind.
        threads = [self.call_in_thread("keypair.generate",
                                       {"ident": "signer"}, out)]
        self.wait_writer("keypair.generate's write in flight",
                         lambda w: w["in_flight"] == 1)
        for method, params in writes:
            threads.append(self.call_in_thread(method, params, out))
        self.wait_writer("the other writes queued behind it",
                         lambda w: w["waiting"] == len(writes) or
                         len(out) > 0)
        self.assertEqual(out, {}, "a write was answered before its "
                         "commit")
        with self.d.client(timeout=WAIT) as c2:
            self.assert_reads_prompt(c2)
            # All of that while every write was still unanswered.
            w = self.writer(c2)
            self.assertEqual((w["in_flight"], w["waiting"]),
                             (1, len(writes)))
            self.assertEqual(out, {}, "a write was answered before its "
                             "commit")
            # What is not committed yet is not seen.
            self.assertError(c2.call("type.get", {"type": "fresh"}),
                             "not_found")
            self.assertEqual(c2.ok("type.get", {"type": "upd"})["name"],
                             "U")
        for t in threads:
            t.join(WAIT)
            self.assertFalse(t.is_alive())
        self.slow(False)
        for method in ["keypair.generate"] + [m for m, _ in writes]:
            err, res, dt = out[method]
            self.assertIsNone(err, "%s: %r" % (method, err))
            self.assertGreaterEqual(dt, self.slow_ms / 1000.0 * 0.9,
                                    "%s was answered before its commit "
                                    "ended" % method)
        # Each write is there, and the type cache followed the types.
        self.assertEqual(self.c.ok("type.get", {"type": "fresh"})["name"],
                         "F")
        upd = self.c.ok("type.get", {"type": "upd"})
        self.assertEqual(upd["name"], "U2")
        self.assertEqual(upd["default_account"], "shared")
        self.assertEqual(out["type.update"][1]["default_account"], "shared")
        st = {e["ident"]: e for e in self.c.ok("cred.status",
                                               {"user": self.linked})}
        self.assertEqual(st["tok"]["source"], "linked")
        accounts = {a["name"]: a for a in self.c.ok(
            "cred.status", {"type": "tok"})["accounts"]}
        self.assertEqual(accounts["other"]["updated_at"],
                         out["cred.set"][1]["updated_at"])
        self.assertEqual(self.c.ok("keypair.get",
                                   {"keypair": "signer"})["current"], 1)
        self.assertEqual(self.c.ok("peerkey.get",
                                   {"peerkey": "idp"})["current"], 1)
        self.assertEqual(self.c.ok("vault.get", {})["url"],
                         "https://vault.example:8200")

    def test_pipelined_type_create_then_cred_set_sees_the_new_type(self):
        # Each request waits, unread, for the write before it: three
        # stalled commits in a row.
        self.slow(True)
        user = new_user()
        resps = self.c.pipeline([
            ("type.create", {"ident": "piped", "name": "P",
                             "storage": "db"}),
            ("cred.set", {"type": "piped", "user": user, "value": "pv"}),
            ("substitute", sub_params(user, "piped")),
            ("type.update", {"type": "piped", "default_account": None,
                             "name": "P2"}),
            ("type.get", {"type": "piped"}),
            ("type.list", {}),
        ], timeout=WAIT)
        for _, m in resps:
            self.assertIsNone(m[2], m)
        self.assertEqual(sub_value(resps[2][1][3]), "pv")
        self.assertEqual(resps[4][1][3]["name"], "P2")
        self.assertEqual(sorted(t["ident"] for t in resps[5][1][3]),
                         ["piped", "tok", "upd"])

    def test_concurrent_keypair_imports_take_consecutive_versions(self):
        keys = [rsa.generate_private_key(public_exponent=65537,
                                         key_size=2048) for _ in range(3)]
        self.stall("keypair_versions")
        out = {}
        threads = [self.call_in_thread("keypair.import", {
            "ident": "kp", "pem": pkcs8_pem(keys[0])}, out)]
        self.wait_writer("the first import in flight",
                         lambda w: w["in_flight"] == 1)
        # Both read the same next version while the first is in flight.
        for i in (1, 2):
            threads.append(self.named_call_in_thread(
                "import%d" % i, "keypair.import",
                {"ident": "kp", "pem": pkcs8_pem(keys[i])}, out))
        self.wait_writer("both queued behind it",
                         lambda w: w["waiting"] == 2 or len(out) > 0)
        self.release()
        for t in threads:
            t.join(WAIT)
        self.slow(False)
        versions = []
        for name in ("keypair.import", "import1", "import2"):
            err, res, _ = out[name]
            self.assertIsNone(err, "%s: %r" % (name, err))
            versions.append(res["version"])
        self.assertEqual(sorted(versions), [1, 2, 3])
        kp = self.c.ok("keypair.get", {"keypair": "kp"})
        self.assertEqual([v["version"] for v in kp["versions"]], [1, 2, 3])
        pems = {v["version"]: v["public_pem"] for v in kp["versions"]}
        for name, key in zip(("keypair.import", "import1", "import2"),
                             keys):
            self.assertEqual(pems[out[name][1]["version"]].strip(),
                             spki_pem(key).strip())

    def test_concurrent_peerkey_sets_of_one_version_agree_or_conflict(self):
        same, other = (rsa.generate_private_key(public_exponent=65537,
                                                key_size=2048)
                       for _ in range(2))
        self.stall("peerkeys")
        out = {}
        threads = [self.call_in_thread("peerkey.set", {
            "ident": "idp", "version": 4, "pem": spki_pem(same)}, out)]
        self.wait_writer("the first peerkey.set in flight",
                         lambda w: w["in_flight"] == 1)
        # Both find version 4 unset while the first is in flight.
        for name, key in (("again", same), ("other", other)):
            threads.append(self.named_call_in_thread(name, "peerkey.set", {
                "ident": "idp", "version": 4, "pem": spki_pem(key)}, out))
        self.wait_writer("both queued behind it",
                         lambda w: w["waiting"] == 2 or len(out) > 0)
        self.release()
        for t in threads:
            t.join(WAIT)
        self.slow(False)
        err, first, _ = out["peerkey.set"]
        self.assertIsNone(err, err)
        # The same key again is no change; another key is a conflict.
        err, again, _ = out["again"]
        self.assertIsNone(err, err)
        self.assertEqual(again["versions"], first["versions"])
        err, _, _ = out["other"]
        self.assertEqual(err["code"], "conflict", err)
        self.assertIn("already set to another key", err["message"])
        pk = self.c.ok("peerkey.get", {"peerkey": "idp"})
        self.assertEqual([v["version"] for v in pk["versions"]], [4])
        self.assertEqual(pk["versions"][0]["public_pem"].strip(),
                         spki_pem(same).strip())


if __name__ == "__main__":
    unittest.main()

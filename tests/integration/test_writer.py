"""
Writes off the loop (storage/writer.h): the values of db-stored types are
committed by a thread of their own, in groups, while the loop keeps
answering.

The daemon runs with tests/tools/slowsync.so preloaded: every fsync of its
database and -wal file sleeps SLOW_MS while the flag file exists, so a
commit can be held in flight for as long as a test needs.  The set-up
runs at full speed (no flag).
"""

import os
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, pack_request  # noqa: E402

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


class WriterTest(cbtest.DaemonTestCase):

    start_daemon = False

    def setUp(self):
        super().setUp()
        self.assertTrue(os.path.exists(SLOWSYNC), "%s is not built" %
                        SLOWSYNC)
        self.flag = os.path.join(self.tmp, "slow")
        env = {"LD_PRELOAD": SLOWSYNC,
               "CB_SLOWSYNC_DB": os.path.realpath(self.d.database),
               "CB_SLOWSYNC_MS": str(SLOW_MS),
               "CB_SLOWSYNC_FLAG": self.flag}
        if cbtest.daemon_sanitized():
            env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                   ":verify_asan_link_order=0")
        self.d.env = env
        self.d.start()
        self.c = self.d.client(timeout=WAIT)
        self.addCleanup(self.c.close)
        # Full speed again before the daemon stops (its last checkpoint).
        self.addCleanup(self.slow, False)
        self.c.ok("type.create", {"ident": "tok", "name": "T",
                                  "storage": "db"})

    def slow(self, on):
        if on:
            cbtest.write_file(self.flag, b"")
        elif os.path.exists(self.flag):
            os.unlink(self.flag)

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
        # type.create still commits on the loop's connection: it waits
        # for the writer's group to release the lock, and succeeds.
        self.slow(True)
        out = []
        t = self.set_in_thread(new_user(), "pending-value", out)
        self.wait_writer("a commit in flight",
                         lambda w: w["in_flight"] == 1)
        with self.d.client(timeout=WAIT) as c2:
            err, res = c2.call("type.create", {"ident": "other",
                                               "name": "O",
                                               "storage": "db"})
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


if __name__ == "__main__":
    unittest.main()

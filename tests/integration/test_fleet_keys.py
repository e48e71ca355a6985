"""
The fleet's brokers and its master key (SPEC section 12): three brokers,
A, B and C, on one PostgreSQL database of the private cluster of cbtest
(tests/integration/pgtest.py), whatever CB_TEST_BACKEND says.

 - health lists the database (connected, latency, schema version) and the
   other brokers; key.status lists the live brokers and the keys each
   holds; credctl health and credctl key status show the same.
 - A broker killed without a clean shutdown drops out of "live" once its
   heartbeat is FLEET_LIVE_S old; a broker stopped cleanly removes its
   row at once.
 - key.rotate on A is refused while C does not hold the new key (naming
   C's host and pid), and accepted once C holds it
   (security.next_key_file and SIGHUP); asked of A and B at the same
   moment, one rotation alone starts.
 - A rotation of CB_FLEET_VALUES values (default 2,000; the goal is
   100,000) started on A while B and C serve substitutions without a
   pause: no call fails, every answer is right, every value opens on all
   three afterwards, and the old key is no longer needed (B restarted
   with the new key as security.secret_key_file starts and serves).
 - A key pair and links written through B with the old key and still on
   B's writer when B switches keys (held there by a trigger of the test
   that sleeps, their notifications held back) are re-sealed by the
   rotation: B restarted with the new key alone uses them.
 - A value written through B with the old key and held behind a read of
   the same value on B's reads' connection (held there by a row security
   policy of the test) when B's barrier is answered: B does not say it
   seals with the new key until that write has gone out; then the
   rotation completes and re-seals it, and B restarted with the new key
   alone substitutes it.
"""

import json
import os
import signal
import socket
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cbtest  # noqa: E402
from cbtest import new_user  # noqa: E402

# daemon/credbrokerd.h: FLEET_LIVE_S and FLEET_HEARTBEAT_MS.
LIVE_S = 10
HEARTBEAT_S = 2
DEADLINE = 30 * cbtest.SCALE
VALUES = int(os.environ.get("CB_FLEET_VALUES", "2000"))
URL = "https://api.example.com/v1/items"
# How long the trigger of the switch's test holds a write on B's writer.
HELD_S = 2
# The tables whose notifications that test holds back.
NOTIFIED = ("keypairs", "keypair_versions", "credlinks")


class FleetBase(unittest.TestCase):
    """Three brokers on a fresh database of their own."""

    def setUp(self):
        if not cbtest.have_binaries():
            self.skipTest("credbrokerd not built at %s" % cbtest.DAEMON)
        self.db = cbtest.pg_new_database()
        self.key = cbtest.strong_key()
        self.A, self.a = self.broker()
        self.B, self.b = self.broker()
        self.C, self.c = self.broker()

    def broker(self, key=None):
        return cbtest.fleet(self.db, self.key if key is None else key,
                            self.addCleanup)

    # helpers ---------------------------------------------------------------
    def pids_seen(self, client, method="health", live_only=False):
        res = client.ok(method)
        lst = res["brokers"] if method == "key.status" else \
            res["store"]["brokers"]
        return {b["pid"] for b in lst if b["live"] or not live_only}

    def wait_seen(self, client, pids, method="health", live_only=False):
        """Poll until client's broker lists exactly pids."""
        want = set(pids)
        return cbtest.poll_until(
            lambda: self.pids_seen(client, method, live_only) == want,
            DEADLINE, 0.1, "%s listing %s" % (method, sorted(want)))

    def key_holders(self, client, kcv):
        res = client.ok("key.status")
        return {b["pid"] for b in res["brokers"] if kcv in b["key_kcvs"]}

    def stage(self, d, path):
        """Give broker d security.next_key_file = path, and reload it."""
        d.extra.setdefault("security", [])
        d.extra["security"] = [kv for kv in d.extra["security"]
                               if kv[0] != "next_key_file"]
        d.extra["security"].append(("next_key_file", path))
        d.write_config()
        d.signal(signal.SIGHUP)



class FleetKeysCase(FleetBase):
    """The fleet's brokers in health and key.status: one database and
    three brokers for the whole class; a test that stops C starts it
    again."""

    @classmethod
    def setUpClass(cls):
        if not cbtest.have_binaries():
            raise unittest.SkipTest("credbrokerd not built")
        cls.shared = unittest.TestCase()
        cls.shared.db = cbtest.pg_new_database()
        cls.shared.key = cbtest.strong_key()
        cls.shared.cleanups = []
        cls.A, cls.a = cls.class_broker()
        cls.B, cls.b = cls.class_broker()
        cls.C, cls.c = cls.class_broker()

    @classmethod
    def class_broker(cls):
        return cbtest.fleet(cls.shared.db, cls.shared.key,
                            cls.shared.cleanups.append)

    @classmethod
    def tearDownClass(cls):
        # C's client may be a new one (start_c_again).
        for c in (cls.a, cls.b, cls.c):
            c.close()
        for fn in reversed(cls.shared.cleanups):
            fn()

    def setUp(self):
        pass

    def start_c_again(self):
        self.c.close()
        self.C.start()
        type(self).c = self.C.client()

    def test_health_shows_the_database_and_the_other_brokers(self):
        self.wait_seen(self.a, [self.B.pid, self.C.pid], live_only=True)
        st = self.a.ok("health")["store"]
        # A broker killed by another test may be listed, not live.
        st["brokers"] = [b for b in st["brokers"] if b["live"]]
        self.assertEqual(st["backend"], "postgresql")
        self.assertEqual(st["status"], "ok")
        db = st["database"]
        self.assertTrue(db["connected"])
        self.assertGreater(db["latency_us"], 0)
        self.assertEqual(db["schema_version"], int(self.A.pg_sql(
            "SELECT max(version) FROM schema_version")))
        self.assertIsNone(db["last_error"])
        host = socket.gethostname()
        mine = [b for b in self.a.ok("key.status")["brokers"]
                if b["self"]][0]["key_kcvs"][0]
        for b in st["brokers"]:
            self.assertEqual(b["host"], host)
            self.assertTrue(b["live"])
            self.assertFalse(b["self"])
            self.assertLess(b["heartbeat_age_ms"], LIVE_S * 1000)
            self.assertEqual(b["key_versions"], [1])
            self.assertEqual(b["sealing_version"], 1)
            self.assertIn(mine, b["key_kcvs"])
        # The same on the command line, for humans and as JSON.
        rc, out, err = cbtest.credctl(self.A.socket, "health", json=True)
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertEqual({b["pid"] for b in doc["store"]["brokers"]
                          if b["live"]}, {self.B.pid, self.C.pid})
        rc, out, err = cbtest.credctl(self.A.socket, "health")
        self.assertEqual(rc, 0, err)
        self.assertIn("postgresql", out)
        self.assertIn("schema_version", out)
        self.assertIn(str(self.C.pid), out)

    def test_key_status_lists_the_live_brokers_and_their_keys(self):
        self.wait_seen(self.b, [self.A.pid, self.B.pid, self.C.pid],
                       "key.status")
        res = self.b.ok("key.status")
        mine = [x for x in res["brokers"] if x["self"]]
        self.assertEqual([x["pid"] for x in mine], [self.B.pid])
        self.assertEqual(res["brokers"][0]["pid"], self.B.pid)
        kcvs = {x["key_kcvs"][0] for x in res["brokers"]}
        self.assertEqual(len(kcvs), 1, "one key, held by all: %r" % res)
        # A staged next key shows as a second check value, on C alone.
        path = os.path.join(self.C.dir, "next.key")
        cbtest.write_file(path, cbtest.strong_key() + "\n")
        self.stage(self.C, path)
        cbtest.poll_until(
            lambda: [len(x["key_kcvs"]) for x in self.b.ok("key.status")[
                "brokers"] if x["pid"] == self.C.pid] == [2],
            DEADLINE, 0.1, "C's staged key in B's key.status")
        rc, out, err = cbtest.credctl(self.B.socket, "key", "check")
        self.assertEqual(rc, 0, err)
        self.assertIn("brokers:", out)
        self.assertIn("pid %d" % self.C.pid, out)

    def test_a_killed_broker_drops_out_of_live_after_the_constant(self):
        self.wait_seen(self.a, [self.B.pid, self.C.pid], live_only=True)
        pid = self.C.pid
        killed = time.monotonic()
        self.C.kill9()
        self.addCleanup(self.start_c_again)
        # Still listed (its row stays), no longer live.
        cbtest.poll_until(
            lambda: self.pids_seen(self.a, live_only=True) == {self.B.pid},
            LIVE_S + DEADLINE, 0.2, "C no longer live on A")
        gone = time.monotonic() - killed
        self.assertIn(pid, self.pids_seen(self.a))
        self.assertNotIn(pid, self.pids_seen(self.a, "key.status"))
        # Not before its heartbeat is LIVE_S old: it beat at most
        # HEARTBEAT_S before the kill.
        self.assertGreater(gone, LIVE_S - HEARTBEAT_S - 0.5)

    def test_a_clean_shutdown_removes_the_row_at_once(self):
        self.wait_seen(self.a, [self.B.pid, self.C.pid], live_only=True)
        pid = self.C.pid
        self.C.stop()
        self.addCleanup(self.start_c_again)
        self.assertEqual(self.A.pg_sql(
            "SELECT count(*) FROM brokers WHERE pid = %d" % pid), "0")
        cbtest.poll_until(lambda: pid not in self.pids_seen(self.a),
                          DEADLINE, 0.1, "C gone from A's health")


class FleetRotationCase(FleetBase):
    """key.rotate on a fleet."""

    def new_key(self):
        """A new key's text, and its file on each broker's "host"."""
        k = cbtest.strong_key()
        paths = {}
        for d in (self.A, self.B, self.C):
            paths[d] = os.path.join(d.dir, "next.key")
            cbtest.write_file(paths[d], k + "\n")
        return k, paths

    def rotate(self, client, path):
        return client.call("key.rotate", {"new_key_file": path})

    def wait_rotated(self, client, version):
        def done():
            res = client.ok("key.status")
            return res["version"] == version and \
                res["rotation"]["state"] in ("done", "none")
        cbtest.poll_until(done, 120 * cbtest.SCALE, 0.1,
                          "key version %d" % version)

    def test_key_rotate_is_refused_while_a_broker_lacks_the_new_key(self):
        key, paths = self.new_key()
        self.stage(self.B, paths[self.B])
        # B has published it once key.status on A lists it.
        cbtest.poll_until(
            lambda: len([x for x in self.a.ok("key.status")["brokers"]
                         if x["pid"] == self.B.pid and
                         len(x["key_kcvs"]) == 2]) == 1,
            DEADLINE, 0.1, "B's staged key seen on A")
        err, res = self.rotate(self.a, paths[self.A])
        self.assertIsNotNone(err, res)
        self.assertEqual(err["code"], "conflict", err)
        self.assertIn("pid %d" % self.C.pid, err["message"])
        self.assertIn(socket.gethostname(), err["message"])
        self.assertIn("security.next_key_file", err["message"])
        self.assertNotIn("pid %d" % self.B.pid, err["message"])
        self.assertEqual(self.a.ok("key.status")["rotation"]["state"],
                         "none")
        self.assertEqual(self.a.ok("key.status")["version"], 1)
        # C (and A) get it and are reloaded: accepted.  Asked of A and
        # B at the same moment, one rotation alone starts; A's second
        # call, pipelined behind its first, is refused before it takes
        # the rotation's lock (which the connection's session holds).
        self.stage(self.C, paths[self.C])
        self.stage(self.A, paths[self.A])
        for c in (self.a, self.b):
            cbtest.poll_until(
                lambda cl=c: all(len(x["key_kcvs"]) == 2 for x in cl.ok(
                    "key.status")["brokers"]), DEADLINE, 0.1,
                "the new key held by all three")
        ids = []
        for c, d in ((self.a, self.A), (self.b, self.B)):
            i = c.new_id()
            c.send_raw(cbtest.pack_request(i, "key.rotate",
                                           {"new_key_file": paths[d]}))
            ids.append(i)
            if c is self.a:
                again = c.new_id()
                c.send_raw(cbtest.pack_request(
                    again, "key.rotate", {"new_key_file": paths[d]}))
        second = self.a.wait_response(again)[2]
        self.assertEqual(second["code"], "conflict", second)
        self.assertIn("being started on this broker", second["message"])
        answers = [c.wait_response(i)[2] for c, i in
                   zip((self.a, self.b), ids)]
        self.assertEqual(sorted(a is None for a in answers),
                         [False, True], answers)
        refused = [a for a in answers if a is not None][0]
        self.assertEqual(refused["code"], "conflict", refused)
        for c in (self.a, self.b, self.c):
            self.wait_rotated(c, 2)

    def send_to_b(self, method, params):
        """Send a call to broker B without waiting for its answer, on a
        client of its own (a write holds its caller): the client and the
        call's msgid."""
        c = self.B.client()
        self.addCleanup(c.close)
        i = c.new_id()
        c.send_raw(cbtest.pack_request(i, method, params))
        return c, i

    def held_sleeping(self, table):
        """Is a write to table held in pg_sleep by the test's trigger?"""
        return self.A.pg_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = "
            "'PgSleep' AND datname = current_database() AND query LIKE "
            "'%%INSERT INTO %s%%'" % table) == "1"

    def test_metadata_in_flight_at_the_switch_is_resealed(self):
        """Writes through B sealed with the old key and still on B's
        writer when B switches keys: a key pair, a link in the group that
        brings B the rotation's key state, and a link submitted while that
        group commits (each INSERT held HELD_S in pg_sleep by a trigger),
        their notifications held back (standing for ones that reach A
        after its last step's scan).  The rotation run by A re-seals them
        all, and B restarted with the new key alone uses them."""
        self.a.ok("type.create", {"ident": "lnk", "name": "Lnk",
                                  "storage": "db"})
        cbtest.poll_until(lambda: self.b.call(
            "type.get", {"type": "lnk"})[0] is None, DEADLINE, 0.05,
            "the type on B")
        value = "linked-" + cbtest.plain_key(16)
        self.a.ok("cred.set", {"type": "lnk", "account": "svc",
                               "value": value})
        key, paths = self.new_key()
        for d in (self.A, self.B, self.C):
            self.stage(d, paths[d])
        cbtest.poll_until(
            lambda: [len(x["key_kcvs"]) for x in self.a.ok(
                "key.status")["brokers"] if x["live"]] == [2, 2, 2],
            DEADLINE, 0.1, "the new key held by all three, seen on A")
        u1, u2 = new_user(), new_user()
        sql = [
            "CREATE FUNCTION cbtest_held() RETURNS trigger LANGUAGE "
            "plpgsql AS $$ BEGIN PERFORM pg_sleep(%d); RETURN NEW; END $$"
            % HELD_S,
            "CREATE TRIGGER cbtest_held BEFORE INSERT ON keypair_versions "
            "FOR EACH ROW WHEN (NEW.ident = 'held') EXECUTE FUNCTION "
            "cbtest_held()",
            "CREATE TRIGGER cbtest_held BEFORE INSERT ON credlinks FOR EACH "
            "ROW WHEN (NEW.user_uuid IN ('%s', '%s')) EXECUTE FUNCTION "
            "cbtest_held()" % (u1, u2)]
        sql += ["ALTER TABLE %s DISABLE TRIGGER %s_notify" % (t, t)
                for t in NOTIFIED]
        self.A.pg_sql("; ".join(sql))
        self.addCleanup(self.A.pg_sql, "; ".join(
            ["DROP TRIGGER IF EXISTS cbtest_held ON keypair_versions",
             "DROP TRIGGER IF EXISTS cbtest_held ON credlinks",
             "DROP FUNCTION IF EXISTS cbtest_held()"] +
            ["ALTER TABLE %s ENABLE TRIGGER %s_notify" % (t, t)
             for t in NOTIFIED]))
        calls = []

        def send(method, params):
            calls.append(self.send_to_b(method, params))

        stats = self.B.client()
        self.addCleanup(stats.close)

        def waiting():
            return stats.ok("stats")["store"]["writer"]["waiting"]

        # B's writer is held by the key pair; the rotation starts on A,
        # and the refresh of its key state queues behind, on B's writer.
        send("keypair.generate", {"ident": "held"})
        cbtest.poll_until(lambda: self.held_sleeping("keypair_versions"),
                          DEADLINE, 0.02, "the key pair held on B's writer")
        err, res = self.rotate(self.a, paths[self.A])
        self.assertIsNone(err, res)
        cbtest.poll_until(lambda: waiting() >= 1, DEADLINE, 0.02,
                          "the key state's refresh queued on B's writer")
        n = waiting()
        # A link sealed with the old key joins that refresh's group.
        send("cred.link", {"type": "lnk", "user": u1, "account": "svc"})
        cbtest.poll_until(lambda: waiting() > n, DEADLINE, 0.02,
                          "the first link queued on B's writer")
        # While that group commits, another: B switches keys when the
        # group is answered, with this one still on its writer.
        cbtest.poll_until(lambda: self.held_sleeping("credlinks"),
                          DEADLINE, 0.02, "the first link held")
        send("cred.link", {"type": "lnk", "user": u2, "account": "svc"})
        cbtest.poll_until(lambda: waiting() >= 1, DEADLINE, 0.02,
                          "the second link queued on B's writer")
        for c, i in calls:
            m = c.wait_response(i, timeout=DEADLINE)
            self.assertIsNone(m[2], m)
        for c in (self.a, self.b, self.c):
            self.wait_rotated(c, 2)
        for t in ("keypair_versions", "credlinks"):
            self.assertEqual(self.A.pg_sql(
                "SELECT count(*) FROM %s WHERE sealed NOT LIKE 'CB1:2:%%'"
                % t), "0", "%s left under the old key" % t)
        # The old key is no longer needed: B starts with the new one.
        self.B.write_key(key)
        self.B.restart()
        cl = self.B.client()
        self.addCleanup(cl.close)
        self.assertEqual(cl.ok("key.status")["version"], 2)
        for u in (u1, u2):
            self.assertEqual(self.bearer_of(cl, "lnk", u), value)
        kp = cl.ok("keypair.get", {"keypair": "held"})
        self.assertEqual([v["version"] for v in kp["versions"]], [1])
        self.assertIn("BEGIN PUBLIC KEY", kp["versions"][0]["public_pem"])

    def b_row(self):
        """B's row in brokers: (heartbeat, sealing, key_versions)."""
        return tuple(self.A.pg_sql(
            "SELECT extract(epoch FROM heartbeat), sealing, key_versions "
            "FROM brokers WHERE pid = %d" % self.B.pid).split("|"))

    def test_a_value_write_held_behind_a_read_at_the_switch_is_resealed(self):
        """A cred.set on B sealed with the old key and held behind a read
        of the same value asked before it (a substitution's, held on B's
        reads' connection by a row security policy of the test that
        sleeps while a gate row exists), still unsent when B's barrier is
        answered: B does not say it seals with the new key while that
        write waits, and the rotation waits for it; once the read is
        answered the write goes out, B says so, the rotation completes,
        every value in PostgreSQL is under the new key, and B restarted
        with the new key alone substitutes the value the write set."""
        # B's connections are told apart by their application_name, and
        # wait for a held statement longer than the test holds it.
        conninfo = self.B.pg_conninfo()
        self.B.pg_conninfo = lambda: conninfo + \
            " application_name=cbtest_b"
        self.B.extra.setdefault("storage", []).append(
            ("postgresql_timeout", str(int(4 * DEADLINE))))
        self.B.write_config()
        self.B.restart()
        self.b.close()
        self.b = self.B.client()
        self.addCleanup(self.b.close)
        self.a.ok("type.create", {"ident": "val", "name": "Val",
                                  "storage": "db"})
        cbtest.poll_until(lambda: self.b.call(
            "type.get", {"type": "val"})[0] is None, DEADLINE, 0.05,
            "the type on B")
        u = new_user()
        old = "old-" + cbtest.plain_key(16)
        new = "new-" + cbtest.plain_key(16)
        self.a.ok("cred.set", {"type": "val", "user": u, "value": old})
        key, paths = self.new_key()
        for d in (self.A, self.B, self.C):
            self.stage(d, paths[d])
        cbtest.poll_until(
            lambda: [len(x["key_kcvs"]) for x in self.a.ok(
                "key.status")["brokers"] if x["live"]] == [2, 2, 2],
            DEADLINE, 0.1, "the new key held by all three, seen on A")
        # Reads of credvalues by B sleep while cbtest_gate has a row.
        self.A.pg_sql("; ".join([
            "CREATE TABLE cbtest_gate (x integer)",
            "INSERT INTO cbtest_gate VALUES (1)",
            "CREATE FUNCTION cbtest_hold() RETURNS boolean LANGUAGE "
            "plpgsql VOLATILE AS $$ BEGIN WHILE current_setting("
            "'application_name') = 'cbtest_b' AND EXISTS (SELECT 1 FROM "
            "cbtest_gate) LOOP PERFORM pg_sleep(0.02); END LOOP; "
            "RETURN true; END $$",
            "CREATE POLICY cbtest_all ON credvalues USING (true) "
            "WITH CHECK (true)",
            "CREATE POLICY cbtest_held ON credvalues AS RESTRICTIVE FOR "
            "SELECT USING (cbtest_hold())",
            "ALTER TABLE credvalues ENABLE ROW LEVEL SECURITY",
            "ALTER TABLE credvalues FORCE ROW LEVEL SECURITY"]))
        # The gate is emptied in a transaction of its own before the
        # rest goes: a held statement keeps a lock on cbtest_gate.
        undo = "; ".join([
            "ALTER TABLE credvalues NO FORCE ROW LEVEL SECURITY",
            "ALTER TABLE credvalues DISABLE ROW LEVEL SECURITY",
            "DROP POLICY IF EXISTS cbtest_held ON credvalues",
            "DROP POLICY IF EXISTS cbtest_all ON credvalues",
            "DROP FUNCTION IF EXISTS cbtest_hold()",
            "DROP TABLE IF EXISTS cbtest_gate"])
        self.addCleanup(self.A.pg_sql, undo)
        self.addCleanup(self.A.pg_sql, "DELETE FROM cbtest_gate",
                        check=False)
        calls = []

        def send(method, params):
            calls.append(self.send_to_b(method, params))

        # The read, held on B's reads' connection; then the write of the
        # same value, sealed with the old key, waiting for it.
        send("substitute", cbtest.bearer_substitute(u, "val", URL))
        cbtest.poll_until(lambda: self.A.pg_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name "
            "= 'cbtest_b' AND wait_event = 'PgSleep' AND query LIKE "
            "'%credvalues%'") == "1", DEADLINE, 0.02,
            "B's read held")
        send("cred.set", {"type": "val", "user": u, "value": new})
        # The set's bytes reached B before a later call's: B has read
        # (and sealed) it by the time it answers that call.
        self.b.ok("stats")
        self.assertEqual(self.b_row()[1], "1", "B sealing before the start")
        err, res = self.rotate(self.a, paths[self.A])
        self.assertIsNone(err, res)
        # B switches (its row lists the new version) and its barrier goes
        # down its writer at its next heartbeat; with the write still
        # unsent, B goes on saying it seals with the old key over several
        # heartbeats, and the rotation waits for it.
        cbtest.poll_until(lambda: self.b_row()[2] == "{1,2}", DEADLINE,
                          0.05, "B holding the rotation's new key")
        beat = float(self.b_row()[0])
        cbtest.poll_until(
            lambda: float(self.b_row()[0]) >= beat + 3 * HEARTBEAT_S,
            DEADLINE, 0.1, "three more heartbeats of B")
        self.assertEqual(self.b_row()[1], "1",
                         "B says it seals with the new key, a write unsent")
        self.assertNotIn("this broker says it seals with the new key",
                         self.B.log())
        rot = self.a.ok("key.status")["rotation"]
        self.assertEqual(rot["state"], "running", rot)
        self.assertEqual(self.A.pg_sql(
            "SELECT count(*) FROM credvalues WHERE sealed LIKE 'CB1:2:%'"),
            "0", "values re-sealed before B says it seals with the new key")
        # The read goes, then the write, then B says so.
        self.A.pg_sql("DELETE FROM cbtest_gate")
        (c, i) = calls[0]
        m = c.wait_response(i, timeout=DEADLINE)
        self.assertIsNone(m[2], m)
        self.assertEqual(m[3]["request"]["headers"][0][1], "Bearer " + old)
        (c, i) = calls[1]
        m = c.wait_response(i, timeout=DEADLINE)
        self.assertIsNone(m[2], m)
        for c in (self.a, self.b, self.c):
            self.wait_rotated(c, 2)
        self.assertIn("this broker says it seals with the new key",
                      self.B.log())
        self.assertEqual(self.A.pg_sql(
            "SELECT count(*) FROM credvalues WHERE sealed NOT LIKE "
            "'CB1:2:%'"), "0", "credvalues left under the old key")
        self.A.pg_sql(undo)
        # The old key is no longer needed: B starts with the new one.
        self.B.write_key(key)
        self.B.restart()
        cl = self.B.client()
        self.addCleanup(cl.close)
        self.assertEqual(cl.ok("key.status")["version"], 2)
        self.assertEqual(self.bearer_of(cl, "val", u), new)

    def set_values(self, client, ident, n, tag):
        """n users with a value each, set through client: {user: value}."""
        out = {}
        todo = [(new_user(), "%s-%06d-%s" % (tag, i, cbtest.plain_key(12)))
                for i in range(n)]
        for i in range(0, n, 500):
            chunk = todo[i:i + 500]
            got = client.pipeline([("cred.set", {"type": ident, "user": u,
                                                 "value": v})
                                   for u, v in chunk], timeout=120)
            for (u, v), (_, m) in zip(chunk, got):
                self.assertIsNone(m[2], m)
                out[u] = v
        return out

    def bearer_of(self, client, ident, user):
        err, res = client.call("substitute",
                               cbtest.bearer_substitute(user, ident, URL))
        if err is not None:
            return err
        hdr = res["request"]["headers"][0]
        return hdr[1][len("Bearer "):]

    def check_all(self, client, ident, values, who):
        """Every value substitutes right through client (pipelined)."""
        items = list(values.items())
        for i in range(0, len(items), 500):
            chunk = items[i:i + 500]
            got = client.pipeline(
                [("substitute", cbtest.bearer_substitute(u, ident, URL))
                 for u, _ in chunk],
                timeout=120)
            for (u, v), (_, m) in zip(chunk, got):
                self.assertIsNone(m[2], "%s, user %s: %r" % (who, u, m[2]))
                self.assertEqual(m[3]["request"]["headers"][0][1],
                                 "Bearer " + v, "%s, user %s" % (who, u))

    def test_rotation_under_load_fails_no_call_and_retires_the_old_key(self):
        """CB_FLEET_VALUES values re-sealed by A while B and C substitute
        without a pause (and C sets new values): no call fails, every
        answer is right; afterwards every value opens on all three, the
        store holds nothing under the old key, and B starts with the new
        key alone."""
        self.a.ok("type.create", {"ident": "load", "name": "Load",
                                  "storage": "db"})
        for c in (self.b, self.c):
            cbtest.poll_until(lambda cl=c: cl.call(
                "type.get", {"type": "load"})[0] is None, DEADLINE, 0.05,
                "type on every broker")
        t0 = time.monotonic()
        values = self.set_values(self.a, "load", VALUES, "v")
        seeded = time.monotonic() - t0
        key, paths = self.new_key()
        for d in (self.A, self.B, self.C):
            self.stage(d, paths[d])
        sample = list(values.items())[:50]
        stop = threading.Event()
        stats = {"B": [0, []], "C": [0, []]}
        written = {}

        def serve(name, d):
            cl = d.client()
            try:
                i = 0
                while not stop.is_set():
                    u, v = sample[i % len(sample)]
                    got = self.bearer_of(cl, "load", u)
                    stats[name][0] += 1
                    if got != v:
                        stats[name][1].append((u, got))
                    # C writes too: new values, sealed during the
                    # rotation, under whichever key it holds then.
                    if name == "C" and i % 10 == 0:
                        nu = new_user()
                        nv = "w-%d-%s" % (i, cbtest.plain_key(12))
                        err, _ = cl.call("cred.set", {"type": "load",
                                                      "user": nu,
                                                      "value": nv})
                        if err is not None:
                            stats[name][1].append((nu, err))
                        else:
                            written[nu] = nv
                    i += 1
            except Exception as e:  # reported by the assertions below
                stats[name][1].append(("exception", repr(e)))
            finally:
                cl.close()

        threads = [threading.Thread(target=serve, args=(n, d))
                   for n, d in (("B", self.B), ("C", self.C))]
        for t in threads:
            t.start()
        try:
            cbtest.poll_until(
                lambda: self.rotate(self.a, paths[self.A])[0] is None,
                DEADLINE, 0.2, "key.rotate accepted")
            r0 = time.monotonic()
            before = dict((k, v[0]) for k, v in stats.items())
            for c in (self.a, self.b, self.c):
                self.wait_rotated(c, 2)
            rotated = time.monotonic() - r0
            during = dict((k, stats[k][0] - before[k]) for k in stats)
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        sys.stderr.write("\n  %d values: seeded in %.1f s, rotated in "
                         "%.1f s; substitutions during it: %r\n"
                         % (VALUES, seeded, rotated, during))
        for name in stats:
            self.assertEqual(stats[name][1], [], "failed calls on " + name)
        # Every value opens on all three.
        values.update(written)
        for c, name in ((self.a, "A"), (self.b, "B"), (self.c, "C")):
            self.check_all(c, "load", values, name)
        # Nothing is left under the old key.
        self.assertEqual(self.A.pg_sql(
            "SELECT count(*) FROM credvalues WHERE sealed NOT LIKE "
            "'CB1:2:%'"), "0")
        # The old key is no longer needed: B starts with the new one.
        self.B.write_key(key)
        self.B.restart()
        cl = self.B.client()
        self.addCleanup(cl.close)
        self.assertEqual(cl.ok("key.status")["version"], 2)
        u, v = sample[0]
        self.assertEqual(self.bearer_of(cl, "load", u), v)
        # The rotation's total (key.status) counted the values on
        # PostgreSQL from the start, and the keys: A logged it then.
        # C wrote values meanwhile, so it lies between the two counts.
        tag = "key rotation to version 2 started: "
        line = [x for x in self.A.log().splitlines() if tag in x]
        self.assertEqual(len(line), 1, self.A.log())
        total = int(line[0].split(tag)[1].split()[0])
        keys = int(self.A.pg_sql("SELECT (SELECT count(*) FROM "
                                 "keypair_versions) + (SELECT count(*) "
                                 "FROM peerkeys)"))
        self.assertGreaterEqual(total, VALUES + keys)
        self.assertLessEqual(total, len(values) + keys)


if __name__ == "__main__":
    cbtest.main()

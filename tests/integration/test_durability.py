"""
Durability and lifecycle tests (SPEC sections 4.1 and 8): every write the
broker acknowledges survives kill -9; SIGTERM exits 0 and removes the
socket; SIGHUP reloads permissions without dropping the daemon.
"""

import os
import signal
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import Daemon, new_user, pack_request, PERMISSIONS  # noqa: E402


class DurabilityTest(cbtest.DaemonTestCase):

    def reconnect(self):
        self.c.close()
        self.c = self.d.client()
        self.addCleanup(self.c.close)

    def crash_and_restart(self):
        self.d.kill9()
        self.d.start()
        self.reconnect()

    def status(self, user):
        return {e["ident"]: e for e in self.c.ok("cred.status",
                                                 {"user": user})}

    def test_set_kill9_twenty_cycles(self):
        # Five under valgrind, where every start costs seconds: they take
        # the same paths.
        cycles = 5 if cbtest.VALGRIND else 20
        self.c.ok("type.create", {"ident": "tok", "name": "T",
                                  "storage": "db"})
        expect = {}
        users = [new_user() for _ in range(8)]
        for i in range(cycles):
            user = users[i % len(users)]
            res = self.c.ok("cred.set", {"type": "tok", "user": user,
                                         "value": "value-%d" % i})
            expect[user] = res["updated_at"]
            self.crash_and_restart()
            for u, ts in expect.items():
                st = self.status(u)["tok"]
                self.assertIs(st["filled"], True, "cycle %d user %s" % (i, u))
                self.assertEqual(st["updated_at"], ts, "cycle %d" % i)

    def test_type_create_kill9(self):
        created = []
        for i in range(5):
            t = self.c.ok("type.create", {"ident": "k%d" % i, "name": "N%d" % i,
                                          "storage": "db" if i % 2 else
                                          "vault",
                                          "destinations": ["https://x%d.example"
                                                           % i]})
            created.append(t)
            self.crash_and_restart()
            for t in created:
                self.assertEqual(self.c.ok("type.get", {"type": t["uuid"]}),
                                 t)
        self.assertEqual(len(self.c.ok("type.list", {})), 5)

    def test_type_update_delete_kill9(self):
        t = self.c.ok("type.create", {"ident": "upd", "name": "A",
                                      "storage": "db"})
        u = self.c.ok("type.update", {"type": "upd", "name": "B",
                                      "destinations": ["https://b.example"]})
        self.crash_and_restart()
        g = self.c.ok("type.get", {"type": "upd"})
        self.assertEqual(g["name"], "B")
        self.assertEqual(g["destinations"], ["https://b.example"])
        self.assertEqual(g["updated_at"], u["updated_at"])
        self.assertEqual(g["uuid"], t["uuid"])
        self.assertEqual(self.c.ok("type.delete", {"type": "upd"}), {})
        self.crash_and_restart()
        err, _ = self.c.call("type.get", {"type": "upd"})
        self.assertEqual(err["code"], "not_found")

    def test_cred_delete_kill9(self):
        self.c.ok("type.create", {"ident": "del", "name": "D",
                                  "storage": "db"})
        users = [new_user() for _ in range(5)]
        for u in users:
            self.c.ok("cred.set", {"type": "del", "user": u, "value": "v"})
        for i, u in enumerate(users[:3]):
            self.assertEqual(self.c.ok("cred.delete",
                                       {"type": "del", "user": u}), {})
            self.crash_and_restart()
            for j, v in enumerate(users):
                self.assertIs(self.status(v)["del"]["filled"], j > i,
                              "after deleting %d, user %d" % (i, j))

    def test_type_clear_and_force_delete_kill9(self):
        self.c.ok("type.create", {"ident": "clr", "name": "C",
                                  "storage": "db"})
        users = [new_user() for _ in range(4)]
        for u in users:
            self.c.ok("cred.set", {"type": "clr", "user": u, "value": "v"})
        self.assertEqual(self.c.ok("type.clear", {"type": "clr"}),
                         {"removed": 4})
        self.crash_and_restart()
        for u in users:
            self.assertIs(self.status(u)["clr"]["filled"], False)
        self.c.ok("cred.set", {"type": "clr", "user": users[0], "value": "v"})
        self.c.ok("type.delete", {"type": "clr", "force": True})
        self.crash_and_restart()
        self.assertEqual(self.c.ok("cred.status", {"user": users[0]}), [])
        # A new type with the same ident does not see old values.
        self.c.ok("type.create", {"ident": "clr", "name": "C",
                                  "storage": "db"})
        self.assertIs(self.status(users[0])["clr"]["filled"], False)

    def test_pipelined_writes_kill9(self):
        self.c.ok("type.create", {"ident": "pipe", "name": "P",
                                  "storage": "db"})
        users = [new_user() for _ in range(30)]
        res = self.c.pipeline([("cred.set", {"type": "pipe", "user": u,
                                             "value": "v-" + u})
                               for u in users])
        stamps = {}
        for (mid, m), u in zip(res, users):
            self.assertIsNone(m[2], m)
            stamps[u] = m[3]["updated_at"]
        self.crash_and_restart()
        for u in users:
            st = self.status(u)["pipe"]
            self.assertIs(st["filled"], True)
            self.assertEqual(st["updated_at"], stamps[u])

    def test_acknowledged_writes_survive_kill9_mid_burst(self):
        # Writers on several connections keep 8 cred.set each in flight,
        # so the writer's thread commits them in groups; kill -9 lands
        # while groups are being committed.  Every write acknowledged
        # before the kill is there after the restart.
        self.c.ok("type.create", {"ident": "burst", "name": "B",
                                  "storage": "db"})
        acked = {}
        lock = threading.Lock()
        stop = threading.Event()

        def writer():
            try:
                c = self.d.client()
            except OSError:
                return
            try:
                while not stop.is_set():
                    users = [new_user() for _ in range(8)]
                    ids = []
                    buf = bytearray()
                    for u in users:
                        ids.append(c.new_id())
                        buf += pack_request(ids[-1], "cred.set", {
                            "type": "burst", "user": u, "value": "v-" + u})
                    c.send_raw(bytes(buf))
                    for i, u in zip(ids, users):
                        m = c.wait_response(i)
                        if m[2] is None:
                            with lock:
                                acked[u] = m[3]["updated_at"]
            except (cbtest.ConnectionClosed, OSError, TimeoutError):
                pass            # the daemon was killed under us
            finally:
                c.close()

        threads = [threading.Thread(target=writer, daemon=True)
                   for _ in range(6)]
        for t in threads:
            t.start()
        want = 200 if not cbtest.VALGRIND else 40
        cbtest.poll_until(lambda: len(acked) >= want, 60 * cbtest.SCALE,
                          interval=0.005, what="%d acknowledged writes"
                          % want)
        self.d.kill9()
        with lock:
            snapshot = dict(acked)
        stop.set()
        for t in threads:
            t.join(30 * cbtest.SCALE)
        self.d.start()
        self.reconnect()
        lost = []
        for u, ts in snapshot.items():
            st = self.status(u).get("burst")
            if st is None or st["filled"] is not True or \
                    st["updated_at"] != ts:
                lost.append(u)
        self.assertEqual(lost, [], "%d of %d acknowledged writes lost"
                         % (len(lost), len(snapshot)))

    def test_acknowledged_metadata_writes_survive_kill9_mid_burst(self):
        # Types created, accounts' values set and users linked, each
        # kind from connections of its own keeping 8 calls in flight, so
        # that the writer's thread commits them in groups; kill -9 lands
        # while groups are being committed.  Every write acknowledged
        # before the kill is there after the restart.
        self.c.ok("type.create", {"ident": "meta", "name": "M",
                                  "storage": "db"})
        self.c.ok("cred.set", {"type": "meta", "account": "shared",
                               "value": "shared-value"})
        acked = {"type": {}, "account": {}, "link": {}}
        lock = threading.Lock()
        stop = threading.Event()
        serial = iter(range(10 ** 9))

        def request(kind):
            with lock:
                n = next(serial)
            if kind == "type":
                key = "t%07d" % n
                return key, "type.create", {"ident": key, "name": key,
                                            "storage": "db"}
            if kind == "account":
                key = "a%07d" % n
                return key, "cred.set", {"type": "meta", "account": key,
                                         "value": "v-" + key}
            key = new_user()
            return key, "cred.link", {"type": "meta", "user": key,
                                      "account": "shared"}

        def writer(kind):
            try:
                c = self.d.client()
            except OSError:
                return
            try:
                while not stop.is_set():
                    reqs = [request(kind) for _ in range(8)]
                    ids = []
                    buf = bytearray()
                    for key, method, params in reqs:
                        ids.append(c.new_id())
                        buf += pack_request(ids[-1], method, params)
                    c.send_raw(bytes(buf))
                    for i, (key, _, _) in zip(ids, reqs):
                        m = c.wait_response(i)
                        if m[2] is None:
                            with lock:
                                acked[kind][key] = m[3]
            except (cbtest.ConnectionClosed, OSError, TimeoutError):
                pass            # the daemon was killed under us
            finally:
                c.close()

        threads = [threading.Thread(target=writer, args=(kind,),
                                    daemon=True)
                   for kind in ("type", "account", "link") * 2]
        for t in threads:
            t.start()
        want = 60 if not cbtest.VALGRIND else 12

        def enough():
            with lock:
                return all(len(v) >= want for v in acked.values())
        cbtest.poll_until(enough, 60 * cbtest.SCALE, interval=0.005,
                          what="%d acknowledged writes of each kind" % want)
        self.d.kill9()
        with lock:
            snapshot = {k: dict(v) for k, v in acked.items()}
        stop.set()
        for t in threads:
            t.join(30 * cbtest.SCALE)
        self.d.start()
        self.reconnect()
        idents = {t["ident"] for t in self.c.ok("type.list", {})}
        lost = [k for k in snapshot["type"] if k not in idents]
        self.assertEqual(lost, [], "%d of %d acknowledged types lost"
                         % (len(lost), len(snapshot["type"])))
        accounts = {a["name"]: a for a in self.c.ok(
            "cred.status", {"type": "meta"})["accounts"]}
        lost = [k for k, res in snapshot["account"].items()
                if k not in accounts or
                accounts[k]["updated_at"] != res["updated_at"]]
        self.assertEqual(lost, [], "%d of %d acknowledged account values "
                         "lost" % (len(lost), len(snapshot["account"])))
        self.assertGreaterEqual(accounts["shared"]["links"],
                                len(snapshot["link"]))
        lost = [u for u in snapshot["link"]
                if self.status(u)["meta"].get("source") != "linked"]
        self.assertEqual(lost, [], "%d of %d acknowledged links lost"
                         % (len(lost), len(snapshot["link"])))

    def test_stale_socket_after_kill9(self):
        self.d.kill9()
        # The socket file may be left behind; a restart must cope.
        self.d.start()
        self.reconnect()
        self.c.ok("hello", {})


class LifecycleTest(cbtest.DaemonTestCase):

    def test_sigterm_exits_zero_and_removes_socket(self):
        self.c.ok("hello", {})
        self.assertTrue(os.path.exists(self.d.socket))
        rc = self.d.stop()
        self.assertEqual(rc, 0)
        self.assertFalse(os.path.exists(self.d.socket))

    def test_sigterm_with_idle_and_busy_connections(self):
        idle = [self.d.client() for _ in range(5)]
        for cl in idle:
            self.addCleanup(cl.close)
        # One with a half-sent request.
        half = self.d.client()
        self.addCleanup(half.close)
        half.send_raw(cbtest.pack_request(1, "hello", {})[:3])
        self.c.ok("type.create", {"ident": "x", "name": "X",
                                  "storage": "db"})
        rc = self.d.stop()
        self.assertEqual(rc, 0)
        self.assertFalse(os.path.exists(self.d.socket))
        for cl in idle:
            cl.wait_closed()

    def test_sigterm_after_pipelined_burst(self):
        self.c.ok("type.create", {"ident": "burst", "name": "B",
                                  "storage": "db"})
        users = [new_user() for _ in range(20)]
        raw = b"".join(cbtest.pack_request(100 + i, "cred.set",
                                           {"type": "burst", "user": u,
                                            "value": "v"})
                       for i, u in enumerate(users))
        self.c.send_raw(raw)
        # Wait for the first answer so the burst is being processed.
        self.c.wait_response(100)
        self.d.signal(signal.SIGTERM)
        answered = {100}
        try:
            while True:
                m = self.c.recv()
                answered.add(m[1])
        except (cbtest.ConnectionClosed, TimeoutError):
            pass
        rc = self.d.wait_exit()
        self.assertEqual(rc, 0, self.d.log())
        if cbtest.VALGRIND:
            self.assertNotEqual(rc, 99)
        # Every acknowledged write is there after restart.
        self.d.start()
        with self.d.client() as c:
            for i, u in enumerate(users):
                st = {e["ident"]: e for e in c.ok("cred.status",
                                                   {"user": u})}
                if 100 + i in answered:
                    self.assertIs(st["burst"]["filled"], True)

    def test_sighup_reloads_grants(self):
        uid = os.getuid()

        def perms():
            with self.d.client() as c:
                return sorted(c.ok("hello", {})["permissions"])

        self.assertEqual(perms(), sorted(PERMISSIONS))
        self.c.ok("type.create", {"ident": "t", "name": "T",
                                  "storage": "db"})
        pid = self.d.pid

        # Narrow to read:health.
        self.d.grants = ["uid:%d read:health" % uid]
        self.d.write_config()
        self.d.signal(signal.SIGHUP)
        cbtest.poll_until(lambda: perms() == ["read:health"],
                          cbtest.CALL_TIMEOUT, what="reloaded permissions")
        with self.d.client() as c:
            err, _ = c.call("type.list", {})
            self.assertEqual(err["code"], "forbidden")
            c.ok("health", {})

        # Remove every grant: default deny.
        self.d.grants = []
        self.d.write_config()
        self.d.signal(signal.SIGHUP)
        cbtest.poll_until(lambda: perms() == [], cbtest.CALL_TIMEOUT,
                          what="empty permissions")
        with self.d.client() as c:
            err, _ = c.call("health", {})
            self.assertEqual(err["code"], "forbidden")

        # Restore.
        self.d.grants = ["uid:%d *" % uid]
        self.d.write_config()
        self.d.signal(signal.SIGHUP)
        cbtest.poll_until(lambda: perms() == sorted(PERMISSIONS),
                          cbtest.CALL_TIMEOUT, what="restored permissions")
        self.assertTrue(self.d.alive())
        self.assertEqual(self.d.pid, pid)
        # The connection opened before the reloads is still served.
        self.c.ok("hello", {})
        with self.d.client() as c:
            self.assertEqual([t["ident"] for t in c.ok("type.list", {})],
                             ["t"])

    def test_sighup_bad_config_keeps_running(self):
        cbtest.write_file(self.d.config, "[server\nthis is not valid\n")
        self.d.signal(signal.SIGHUP)
        # The daemon keeps its old configuration and keeps serving.
        deadline = time.monotonic() + 1.0 * cbtest.SCALE
        while time.monotonic() < deadline:
            self.assertTrue(self.d.alive(), self.d.log())
            with self.d.client() as c:
                self.assertEqual(sorted(c.ok("hello", {})["permissions"]),
                                 sorted(PERMISSIONS))
            time.sleep(0.05)
        self.d.write_config()
        self.d.stop()

    def test_second_instance_refused(self):
        # Another daemon on the same socket and database must not steal
        # the socket from the running one.
        other = Daemon(self.d.dir, key=self.d.key)
        self.addCleanup(other.cleanup)
        other.stderr_tag = "second"
        other.starts = 100      # separate stderr files
        other.start(wait=False)
        rc = other.wait_exit(cbtest.START_TIMEOUT)
        if rc is None:
            other.kill9()
            self.fail("second instance kept running")
        self.assertEqual(rc, 1, other.log())
        self.c.ok("hello", {})
        with self.d.client() as c:
            c.ok("hello", {})


if __name__ == "__main__":
    cbtest.main()

#!/usr/bin/python3
"""
Vault failures, token handling and the event loop, through the real daemon
against the Vault simulator (tests/vault/vaultsim.py): SPEC section 4.2.

 - Sealed Vault: vault calls fail with unavailable ("sealed") within the
   configured timeout while db-stored types keep answering; after unseal
   they work again without a restart, also when the seal hit a login (the
   broker logs in again by itself after its backoff).
 - A hung Vault: unavailable ("timed out") after timeout_ms.
 - 5xx answers, malformed JSON (truncated, HTML, empty, wrong shape; on
   reads and on logins), dropped connections (FIN and reset), a refused
   port: unavailable with the reason, then recovery.
 - Expired tokens (admin expire, clock past the max TTL): a transparent
   re-login, zero failed calls.
 - A policy refusal (403 permission denied): unavailable naming the
   permission, and no re-login storm.
 - Token life: renew-self at ~2/3 of the lease; a failed renewal is followed
   by a login at once; a token that is not renewable is replaced by logins
   and never renewed; SIGTERM lets a call waiting on Vault finish, and with
   Vault hung past server.shutdown_timeout the daemon still exits 0.
 - A wrong secret_id: vault.test's login step fails with Vault's message;
   over 10 s of continuous calls the login attempts follow the exponential
   backoff (0.5, 1, 2, 4 s, +-25%) and every call fails fast.
 - The loop never blocks: while Vault answers in 2 s, db-stored calls on
   other connections (and pipelined behind a vault call on the same one)
   answer in milliseconds.  Identical concurrent reads share one request,
   but a read issued after an acknowledged write or clear must not be
   answered by an older read.
"""

import os
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, poll_until  # noqa: E402
from vaulttest import (VaultCase, SECRET_ID, RO_ROLE_ID,  # noqa: E402
                       RO_SECRET_ID, NR_ROLE_ID, NR_SECRET_ID, SHORT_ROLE_ID,
                       SHORT_SECRET_ID, MOUNT, LOGIN_PATH, RENEW_PATH,
                       data_path, canary, Load, ResponseDelayProxy)

DATA_PREFIX = "/v1/%s/data/" % MOUNT
KV_PREFIX = "/v1/%s/" % MOUNT


class FailureTests(VaultCase):

    def setup_values(self, timeout_ms=5000):
        """A vault type and a db type with a value each for one user."""
        self.configure(timeout_ms=timeout_ms)
        self.mktype("fv")
        self.mktype("fdb", storage="db")
        self.u = new_user()
        self.vv, self.dv = canary(), canary()
        self.set_value("fv", self.u, self.vv)
        self.set_value("fdb", self.u, self.dv)
        self.wait_authenticated()

    def timed(self, fn, *a, **kw):
        t0 = time.monotonic()
        r = fn(*a, **kw)
        return time.monotonic() - t0, r

    def assertDbServes(self, limit=0.5):
        """db-stored calls answer, quickly."""
        dt, v = self.timed(self.sub_ok, "fdb", self.u)
        self.assertEqual(v, self.dv)
        self.assertLess(dt, limit)
        dt, _ = self.timed(self.set_value, "fdb", new_user(), canary())
        self.assertLess(dt, limit)

    def assertVaultRecovers(self, timeout=10):
        def attempt():
            err, res = self.sub("fv", self.u)
            return None if err is not None else self.sub_value(res)
        v = poll_until(attempt, timeout, interval=0.05,
                       what="vault calls to work again")
        self.assertEqual(v, self.vv)

    # -- sealed --------------------------------------------------------------
    def test_sealed_fails_fast_db_keeps_answering_recovers(self):
        self.setup_values(timeout_ms=1000)
        self.sim.seal()
        calls = [
            ("substitute", self.sub_params("fv", self.u)),
            ("cred.set", {"type": "fv", "user": self.u, "value": canary()}),
            ("cred.delete", {"type": "fv", "user": self.u}),
            ("type.clear", {"type": "fv"}),
        ]
        for method, p in calls:
            dt, resp = self.timed(self.c.call, method, p)
            self.assertUnavailable(resp, "sealed")
            self.assertLess(dt, 2.5, method)
        dt, st = self.timed(self.status_of, self.u)
        self.assertLess(dt, 2.5)
        self.assertIs(st["fdb"]["filled"], True)
        self.assertNotIn("error", st["fdb"])
        self.assertEqual(st["fv"]["error"]["code"], "unavailable")
        self.assertIn("sealed", st["fv"]["error"]["message"].lower())
        self.assertDbServes()
        self.assertIn("sealed", self.health_vault()["last_error"].lower())
        self.sim.unseal()
        self.assertVaultRecovers()
        # Nothing was lost while sealed.
        self.assertIs(self.status_of(self.u)["fv"]["filled"], True)
        self.assertTrue(self.d.alive())

    def test_sealed_at_login_recovers_by_itself(self):
        self.mktype("fv")
        self.mktype("fdb", storage="db")
        self.u = new_user()
        self.dv = canary()
        self.set_value("fdb", self.u, self.dv)
        self.sim.seal()
        self.configure(timeout_ms=1000)     # logs in at once: 503 sealed
        poll_until(lambda: self.sim.counters()["statuses"].get("503"), 5,
                   what="the sealed login")
        for _ in range(3):
            dt, resp = self.timed(self.c.call, "cred.set", {
                "type": "fv", "user": self.u, "value": canary()})
            self.assertUnavailable(resp, "sealed")
            self.assertLess(dt, 2.5)
        self.assertDbServes()
        h = self.health_vault()
        self.assertIs(h["authenticated"], False)
        self.assertIn("sealed", h["last_error"].lower())
        self.sim.unseal()
        # No calls: the broker logs in again by itself after the backoff.
        poll_until(lambda: self.health_vault()["authenticated"], 10,
                   interval=0.1, what="a login after unseal, unprompted")
        self.vv = canary()
        self.set_value("fv", self.u, self.vv)
        self.assertEqual(self.sub_ok("fv", self.u), self.vv)

    # -- hung, failing, garbled, dropping, unreachable -----------------------
    def test_timeout(self):
        self.setup_values(timeout_ms=1000)
        self.sim.fault({"delay": {"seconds": 5, "prefix": KV_PREFIX}})
        for method, p in (("substitute", self.sub_params("fv", self.u)),
                          ("cred.set", {"type": "fv", "user": new_user(),
                                        "value": canary()})):
            dt, resp = self.timed(self.c.call, method, p)
            self.assertUnavailable(resp, "timed out")
            self.assertGreater(dt, 0.8, method)
            self.assertLess(dt, 2.5, method)
        self.assertDbServes()
        self.assertIn("timed out", self.health_vault()["last_error"])
        self.sim.clear_faults()
        self.assertVaultRecovers()

    def test_server_errors(self):
        self.setup_values()
        self.sim.fault({"fail": {"count": 1, "status": 500,
                                 "prefix": KV_PREFIX}})
        self.assertUnavailable(self.sub("fv", self.u), "500",
                               "internal error")
        self.assertEqual(self.sub_ok("fv", self.u), self.vv)
        self.sim.fault({"fail": {"count": 1, "status": 502,
                                 "prefix": KV_PREFIX,
                                 "body": "<html>Bad Gateway</html>",
                                 "content_type": "text/html"}})
        self.assertUnavailable(self.sub("fv", self.u), "502")
        self.assertEqual(self.sub_ok("fv", self.u), self.vv)
        # A failed write leaves the old value in place.
        self.sim.fault({"fail": {"count": 1, "status": 500,
                                 "prefix": KV_PREFIX}})
        self.assertUnavailable(self.c.call("cred.set", {
            "type": "fv", "user": self.u, "value": canary()}), "500")
        self.assertEqual(self.sub_ok("fv", self.u), self.vv)
        st = self.status_of(self.u)
        self.assertIs(st["fv"]["filled"], True)
        self.assertNotIn("error", st["fv"])

    def test_malformed_answers(self):
        self.setup_values()
        for kind in ("truncate", "garbage", "empty", "wrong_type"):
            with self.subTest(kind=kind):
                self.sim.fault({"malformed": {"count": 1, "kind": kind,
                                              "prefix": KV_PREFIX,
                                              "methods": ["GET"]}})
                self.assertUnavailable(self.sub("fv", self.u), "malformed")
                self.assertEqual(self.sub_ok("fv", self.u), self.vv)
                self.sim.fault({"malformed": {"count": 1, "kind": kind,
                                              "prefix": KV_PREFIX,
                                              "methods": ["GET"]}})
                st = self.status_of(self.u)
                self.assertIn("malformed", st["fv"].get(
                    "error", {}).get("message", ""), st)
                self.assertIs(st["fdb"]["filled"], True)

    def test_malformed_login_answer_recovers(self):
        self.setup_values()
        seq = self.sim.last_seq()
        self.sim.fault({"malformed": {"count": 1, "kind": "truncate",
                                      "prefix": LOGIN_PATH}})
        self.sim.expire_tokens()
        self.assertUnavailable(self.sub("fv", self.u), "malformed")
        self.assertDbServes()
        self.assertVaultRecovers()
        logins = self.sim.logins_since(seq)
        self.assertEqual([e["fault"] for e in logins], ["malformed", None])

    def test_dropped_connections(self):
        self.setup_values()
        for mode in ("close", "reset"):
            with self.subTest(mode=mode):
                self.sim.fault({"drop": {"on": True, "mode": mode,
                                         "prefix": KV_PREFIX}})
                dt, resp = self.timed(self.sub, "fv", self.u)
                self.assertUnavailable(resp)
                self.assertLess(dt, 2.5)
                self.assertDbServes()
                self.sim.clear_faults()
                self.assertVaultRecovers()
        self.assertGreaterEqual(self.sim.counters()["faults"]["drop"], 2)

    def test_unreachable(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()                       # nothing listens there now
        self.mktype("fv")
        self.mktype("fdb", storage="db")
        self.u = new_user()
        self.dv = canary()
        self.set_value("fdb", self.u, self.dv)
        self.configure(url="http://127.0.0.1:%d" % port, timeout_ms=1000)
        for _ in range(2):
            dt, resp = self.timed(self.c.call, "cred.set", {
                "type": "fv", "user": self.u, "value": canary()})
            err = self.assertUnavailable(resp)
            self.assertRegex(err["message"].lower(), "refused|connect")
            self.assertLess(dt, 2.5)
        self.assertDbServes()
        res = self.c.ok("vault.test", {})
        self.assertIs(res["ok"], False)
        self.assertEqual(res["steps"][0]["step"], "login")
        self.assertRegex(res["steps"][0]["message"].lower(), "refused|connect")
        # Pointing it at Vault makes it work without a restart.
        self.configure()
        self.vv = canary()
        self.set_value("fv", self.u, self.vv)
        self.assertEqual(self.sub_ok("fv", self.u), self.vv)

    # -- tokens -----------------------------------------------------------
    def concurrent_calls(self, ident, users, nconn=4):
        """A substitute and a cred.status per user, spread over nconn
        connections, all sent before any answer is read."""
        clients = [self.d.client() for _ in range(nconn)]
        for c in clients:
            self.addCleanup(c.close)
        sent = []
        for i, u in enumerate(users):
            c = clients[i % nconn]
            p = self.sub_params(ident, u)
            sent.append((c, u, "substitute", self.send(c, "substitute", p)))
            sent.append((c, u, "cred.status",
                         self.send(c, "cred.status", {"user": u})))
        out = []
        for c, u, method, i in sent:
            out.append((u, method) + self.response(c, i))
        return out

    def test_expired_tokens_relogin_transparently(self):
        self.configure()
        self.mktype("exp")
        users = [new_user() for _ in range(16)]
        vals = {}
        for u in users:
            vals[u] = canary()
            self.set_value("exp", u, vals[u])
        for round_ in range(2):
            seq = self.sim.last_seq()
            self.assertGreaterEqual(self.sim.expire_tokens(), 1)
            failed = []
            for u, method, err, res in self.concurrent_calls("exp", users):
                if err is not None:
                    failed.append((method, err))
                elif method == "substitute":
                    self.assertEqual(self.sub_value(res), vals[u])
                else:
                    st = {e["ident"]: e for e in res}
                    self.assertIs(st["exp"]["filled"], True)
                    self.assertNotIn("error", st["exp"])
            self.assertEqual(failed, [], "round %d" % round_)
            logins = self.sim.logins_since(seq)
            self.assertGreaterEqual(len(logins), 1)
            self.assertTrue(all(e["status"] == 200 for e in logins))
            # Not one login per call: the re-login is shared.
            self.assertLessEqual(len(logins), 3, [e["seq"] for e in logins])
        self.assertIs(self.health_vault()["authenticated"], True)

    def test_clock_past_max_ttl_relogin(self):
        self.setup_values()
        self.sim.admin("POST", "clock", {"advance": 4000})  # > max_ttl 3600
        self.assertEqual([t["state"] for t in self.sim.tokens()],
                         ["expired"])
        seq = self.sim.last_seq()
        self.assertEqual(self.sub_ok("fv", self.u), self.vv)
        self.set_value("fv", self.u, canary())
        self.assertEqual(len(self.sim.logins_since(seq)), 1)

    def test_policy_refusal(self):
        self.configure()
        self.mktype("pol")
        u = new_user()
        v = canary()
        self.set_value("pol", u, v)
        seq = self.sim.last_seq()
        self.configure(role_id=RO_ROLE_ID, secret_id=RO_SECRET_ID)
        self.assertEqual(self.sub_ok("pol", u), v)        # read: allowed
        for method, p in (
                ("cred.set", {"type": "pol", "user": u, "value": canary()}),
                ("cred.set", {"type": "pol", "user": new_user(),
                              "value": canary()}),
                ("cred.delete", {"type": "pol", "user": u}),
                ("type.clear", {"type": "pol"})):
            self.assertUnavailable(self.c.call(method, p), "permission")
        self.assertEqual(self.sub_ok("pol", u), v)
        self.assertEqual(sorted(self.sim.secrets()),
                         [data_path(self.types["pol"], u)])
        logins = self.sim.logins_since(seq)
        self.assertEqual(len(logins), 1, "a policy refusal is not a reason "
                         "to log in again")
        h = self.health_vault()
        self.assertIs(h["authenticated"], True)
        self.assertIn("permission", h["last_error"])


class TokenLifeTests(VaultCase):
    """Renewal timing, non-renewable tokens, failed renewals, shutdown."""

    def run_load(self, ident, user, seconds):
        """substitute calls on 2 connections, 10/s in all, for seconds (the
        behaviour under test is time)."""
        load = Load(self.d.socket, nconn=2, rate=5,
                    make=lambda i, n: ("substitute",
                                       self.sub_params(ident, user))).start()
        try:
            time.sleep(seconds)
        finally:
            load.stop()
        self.assertEqual(load.exceptions, [])
        self.assertGreaterEqual(len(load.results), 5 * seconds)
        return load.failures()

    def test_renewal_at_two_thirds_then_failed_renewal_logs_in(self):
        self.configure(role_id=SHORT_ROLE_ID, secret_id=SHORT_SECRET_ID)
        self.mktype("ren")
        u = new_user()
        v = canary()
        self.set_value("ren", u, v)
        seq = self.sim.last_seq()
        self.configure(role_id=SHORT_ROLE_ID, secret_id=SHORT_SECRET_ID)
        # The next renewal fails: the broker logs in again at once.
        self.sim.fault({"fail": {"count": 1, "status": 500,
                                 "prefix": RENEW_PATH}})
        fails = self.run_load("ren", u, 5.0)
        self.assertEqual(fails, [])
        log = [e for e in self.sim.log(seq)
               if e["path"] in (LOGIN_PATH, RENEW_PATH)]
        kinds = [("login" if e["path"] == LOGIN_PATH else "renew",
                  e["status"]) for e in log]
        self.assertGreaterEqual(len(kinds), 4, kinds)
        self.assertEqual(kinds[:3], [("login", 200), ("renew", 500),
                                     ("login", 200)], kinds)
        # Renewal at 2/3 of the 3 s lease, +-10%.
        first = log[1]["time"] - log[0]["time"]
        self.assertGreaterEqual(first, 1.75, kinds)
        self.assertLessEqual(first, 2.5, kinds)
        self.assertLess(log[2]["time"] - log[1]["time"], 0.5,
                        "no login right after the failed renewal")
        self.assertEqual(kinds[3], ("renew", 200), kinds)
        self.assertIs(self.health_vault()["authenticated"], True)

    def test_non_renewable_token_is_replaced_by_login(self):
        self.configure(role_id=NR_ROLE_ID, secret_id=NR_SECRET_ID)
        self.mktype("nr")
        u = new_user()
        self.set_value("nr", u, canary())
        seq = self.sim.last_seq()
        fails = self.run_load("nr", u, 5.0)
        self.assertEqual(fails, [])
        reqs = self.sim.requests_since(seq)
        self.assertEqual([e for e in reqs if e["path"] == RENEW_PATH], [],
                         "renew-self of a token that is not renewable")
        logins = [e for e in reqs if e["path"] == LOGIN_PATH]
        self.assertTrue(all(e["status"] == 200 for e in logins))
        # A new login every ~2 s (2/3 of the 3 s lease).
        self.assertGreaterEqual(len(logins), 2)
        self.assertLessEqual(len(logins), 4)
        self.assertEqual(self.sim.counters()["statuses"].get("403", 0), 0)

    def test_sigterm_finishes_a_call_waiting_on_vault(self):
        self.configure()
        self.mktype("term")
        u = new_user()
        v = canary()
        self.set_value("term", u, v)
        self.sim.fault({"delay": {"seconds": 1.0, "prefix": KV_PREFIX}})
        seq = self.sim.last_seq()
        i = self.send(self.c, "substitute", self.sub_params("term", u))
        poll_until(lambda: self.sim.requests_since(seq), 5,
                   what="the read to reach Vault")
        self.d.signal(signal.SIGTERM)
        err, res = self.response(self.c, i, timeout=10)
        self.assertIsNone(err, err)
        self.assertEqual(self.sub_value(res), v)
        self.assertEqual(self.d.wait_exit(), 0)

    def test_sigterm_deadline_with_a_hung_vault(self):
        """Vault hangs past the shutdown deadline: the daemon still exits 0
        once the deadline passes (no crash closing the waiting call)."""
        self.d.stop()
        self.d.extra = {"server": [("shutdown_timeout", "1")]}
        self.d.write_config()
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.configure(timeout_ms=60000)
        self.mktype("hang")
        u = new_user()
        self.set_value("hang", u, canary())
        self.sim.fault({"delay": {"seconds": 30, "prefix": KV_PREFIX}})
        seq = self.sim.last_seq()
        ids = [self.send(self.c, "substitute", self.sub_params("hang", u)),
               self.send(self.c, "cred.status", {"user": u})]
        poll_until(lambda: self.sim.requests_since(seq), 5,
                   what="the read to reach Vault")
        t0 = time.monotonic()
        self.d.signal(signal.SIGTERM)
        rc = self.d.wait_exit(timeout=15)
        self.sim.clear_faults()
        self.assertEqual(rc, 0, self.d.log())
        self.assertLess(time.monotonic() - t0, 8)
        for i in ids:
            try:
                err, _ = self.response(self.c, i, timeout=1)
                self.assertIsNotNone(err)
            except (cbtest.ConnectionClosed, TimeoutError):
                pass


class BackoffTests(VaultCase):

    def test_wrong_secret_id_backs_off(self):
        self.configure()
        self.mktype("bo")
        u = new_user()
        self.set_value("bo", u, canary())
        res = self.c.ok("vault.test", {"secret_id": "wrong-" + SECRET_ID})
        self.assertIs(res["ok"], False)
        self.assertEqual([(s["step"], s["ok"]) for s in res["steps"]],
                         [("login", False)])
        self.assertIn("invalid role or secret ID", res["steps"][0]["message"])

        logins_before = self.health_vault()["logins"]
        seq = self.sim.last_seq()
        t0 = time.monotonic()
        self.configure(secret_id="wrong-" + SECRET_ID)
        results = []
        # Continuous calls for 10 s (time is what is under test here).
        while time.monotonic() - t0 < 10.0:
            ts = time.monotonic()
            err, _ = self.sub("bo", u)
            results.append((ts - t0, time.monotonic() - ts, err))
            time.sleep(0.05)
        logins = self.sim.logins_since(seq)
        n = len(logins)
        self.assertGreaterEqual(len(results), 50)
        bad = [r for r in results if r[2] is None or
               r[2].get("code") != "unavailable"]
        self.assertEqual(bad, [], "every call fails with unavailable")
        for _, dt, err in results:
            self.assertLess(dt, 1.0, "a call did not fail fast")
            self.assertIn("invalid role or secret id",
                          err["message"].lower())
        self.assertTrue(all(e["status"] == 400 for e in logins))
        # 0, ~0.5, ~1.5, ~3.5, ~7.5 s: 5 attempts; jitter allows 4..7.
        self.assertGreaterEqual(n, 4, "the broker stops retrying")
        self.assertLessEqual(n, 7, "login storm: %d attempts in 10 s" % n)
        times = [e["time"] for e in logins]
        for k in range(1, len(times)):
            gap = times[k] - times[k - 1]
            base = 0.5 * 2 ** (k - 1)
            self.assertGreaterEqual(gap, 0.75 * base - 0.05,
                                    "gap %d: %.3f s" % (k, gap))
            self.assertLessEqual(gap, 1.25 * base + 0.4,
                                 "gap %d: %.3f s" % (k, gap))
        h = self.health_vault()
        self.assertIs(h["authenticated"], False)
        self.assertIn("invalid role or secret ID", h["last_error"])
        self.assertEqual(h["logins"] - logins_before, n)
        # The right secret: working again at once.
        self.configure()
        v = canary()
        self.set_value("bo", u, v)
        self.assertEqual(self.sub_ok("bo", u), v)


class LoopTests(VaultCase):

    def test_slow_vault_does_not_block_the_loop(self):
        self.configure()
        self.mktype("slow")
        self.mktype("quick", storage="db")
        users = [new_user() for _ in range(5)]
        vals = {}
        for u in users:
            vals[u] = canary()
            self.set_value("slow", u, vals[u])
        du = new_user()
        dv = canary()
        self.set_value("quick", du, dv)
        self.sim.fault({"delay": {"seconds": 2.0, "prefix": KV_PREFIX}})

        vclients = [self.d.client() for _ in users]
        for c in vclients:
            self.addCleanup(c.close)
        t0 = time.monotonic()
        pending = [(c, u, self.send(c, "substitute",
                                    self.sub_params("slow", u)))
                   for c, u in zip(vclients, users)]
        # Pipelined behind a vault call on the same connection: answered
        # first, out of order.
        pid = self.send(vclients[0], "substitute",
                        self.sub_params("quick", du))
        err, res = self.response(vclients[0], pid, timeout=1.0)
        self.assertIsNone(err)
        self.assertEqual(self.sub_value(res), dv)
        self.assertLess(time.monotonic() - t0, 0.5)

        dbc = self.d.client()
        self.addCleanup(dbc.close)
        lat = []
        while time.monotonic() - t0 < 1.5:
            for method, p in (
                    ("substitute", self.sub_params("quick", du)),
                    ("cred.set", {"type": "quick", "user": new_user(),
                                  "value": canary()}),
                    ("type.list", {}), ("health", {})):
                ts = time.monotonic()
                err, _ = dbc.call(method, p)
                lat.append((method, time.monotonic() - ts))
                self.assertIsNone(err, (method, err))
        self.assertGreaterEqual(len(lat), 12)
        # Against Vault's 2 s: a read answers within 0.1 s; a cred.set
        # also waits for its commit's fsync, which a busy disk can make
        # last more than 0.1 s, so it gets 1 s.
        slow = [(m, round(t, 3)) for m, t in lat
                if t >= (1.0 if m == "cred.set" else 0.1)]
        self.assertEqual(slow, [], "db-stored calls waited on Vault")
        for c, u, i in pending:
            err, res = self.response(c, i, timeout=10)
            self.assertIsNone(err, err)
            self.assertEqual(self.sub_value(res), vals[u])
        dt = time.monotonic() - t0
        self.assertGreater(dt, 1.8)
        self.assertLess(dt, 4.0)

    def test_identical_reads_coalesce(self):
        self.configure()
        t = self.mktype("co")
        u = new_user()
        v = canary()
        self.set_value("co", u, v)
        self.sub_ok("co", u)
        self.sim.fault({"delay": {"seconds": 1.0, "prefix": DATA_PREFIX,
                                  "methods": ["GET"]}})
        seq = self.sim.last_seq()
        clients = [self.d.client() for _ in range(5)]
        for c in clients:
            self.addCleanup(c.close)
        sent = []
        for c in clients:
            sent.append((c, "substitute", self.send(
                c, "substitute", self.sub_params("co", u))))
            sent.append((c, "substitute", self.send(
                c, "substitute", self.sub_params("co", u))))
            sent.append((c, "cred.status", self.send(
                c, "cred.status", {"user": u})))
        for c, method, i in sent:
            err, res = self.response(c, i)
            self.assertIsNone(err, err)
            if method == "substitute":
                self.assertEqual(self.sub_value(res), v)
        path = "/v1/%s/data/%s" % (MOUNT, data_path(t["uuid"], u))
        gets = [e for e in self.sim.requests_since(seq) if e["path"] == path]
        self.assertEqual(len(gets), 1, "15 identical concurrent reads")

    def start_slow_read(self, ident, user):
        """Route the broker through a proxy, then start a substitute whose
        Vault read has been answered by the simulator but whose answer is
        held on the way back for 2 s.  Returns (client, msgid)."""
        proxy = ResponseDelayProxy("127.0.0.1", self.sim.proc.port)
        self.addCleanup(proxy.close)
        self.configure(url=proxy.url)
        self.sub_ok(ident, user)             # logged in through the proxy
        proxy.hold = 2.0
        seq = self.sim.last_seq()
        ca = self.d.client()
        self.addCleanup(ca.close)
        i = self.send(ca, "substitute", self.sub_params(ident, user))
        poll_until(lambda: [e for e in self.sim.requests_since(seq)
                            if e["method"] == "GET" and e["status"]], 5,
                   what="the slow read to be answered by the simulator")
        return ca, i

    def test_read_after_acknowledged_write_sees_it(self):
        """A substitute sent after cred.set was acknowledged must use the
        new value, not share a read that started before the write."""
        self.configure()
        self.mktype("raw")
        u = new_user()
        v1, v2 = canary(), canary()
        self.set_value("raw", u, v1)
        ca, i = self.start_slow_read("raw", u)
        cb = self.d.client()
        self.addCleanup(cb.close)
        self.set_value("raw", u, v2, client=cb)     # acknowledged
        seq = self.sim.last_seq()
        got = self.sub_ok("raw", u, client=cb)
        self.response(ca, i)
        gets = [e for e in self.sim.requests_since(seq)
                if e["method"] == "GET"]
        self.assertEqual(got == v1, False,
                         "substitute sent after cred.set was acknowledged "
                         "returned the previous value; Vault reads after "
                         "the write: %d (0: it shared the read that "
                         "started before the write)" % len(gets))
        self.assertEqual(got, v2)

    def test_read_after_acknowledged_clear_finds_nothing(self):
        """type.clear acknowledged: a later substitute must not be answered
        with a value read before the clear."""
        self.configure()
        self.mktype("rac")
        u = new_user()
        self.set_value("rac", u, canary())
        ca, i = self.start_slow_read("rac", u)
        cb = self.d.client()
        self.addCleanup(cb.close)
        self.assertEqual(cb.ok("type.clear", {"type": "rac"}),
                         {"removed": 1})
        self.assertEqual(self.sim.secrets(), {})
        seq = self.sim.last_seq()
        err, res = self.sub("rac", u, client=cb)
        self.response(ca, i)
        gets = [e for e in self.sim.requests_since(seq)
                if e["method"] == "GET"]
        self.assertIsNotNone(err, "a cleared value was substituted after "
                             "type.clear was acknowledged; Vault reads "
                             "after the clear: %d (0: it shared the read "
                             "that started before the clear)" % len(gets))
        self.assertEqual(err["code"], "not_found")


if __name__ == "__main__":
    cbtest.main()

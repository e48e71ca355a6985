#!/usr/bin/python3
"""
Vault token soak (SPEC 4.2): 60 seconds of continuous vault-stored calls
while the token must be renewed and replaced again and again.

The simulator's AppRole role issues tokens with ttl 3 s and max_ttl 10 s, so
the broker renews every ~2 s (two thirds of the lease), sees the lease
shrink when the max TTL caps it, and logs in again before the token dies:
about 4 renewals and one login every ~9 s.  Meanwhile four connections
issue substitute and cred.status calls on vault-stored types (about 20 per
second in all).  Not one call may fail; the simulator must count several
renewals and several re-logins, no failed renewal or login, no request with
a dead token; health must show the broker authenticated at the end.

Runs in CI as integration.test_vault_soak (about 65 s; ctest's limit is 300
s).  CB_SOAK_SECONDS changes the duration (the lower bounds on renewals and
logins scale with it).
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user  # noqa: E402
import vaulttest  # noqa: E402
from vaulttest import VaultCase, Load, canary  # noqa: E402

SOAK_SECONDS = float(os.environ.get("CB_SOAK_SECONDS", "60"))
SOAK_ROLE = "soak-role-" + os.urandom(4).hex()
SOAK_SECRET = "soak-secret-" + os.urandom(8).hex()
TTL, MAX_TTL = 3, 10


class SoakTests(VaultCase):
    sim_args = vaulttest.BASE_SIM_ARGS + [
        "--role", "%s:%s:ttl=%d,max_ttl=%d" % (SOAK_ROLE, SOAK_SECRET, TTL,
                                                MAX_TTL)]

    def test_token_renewal_and_relogin_soak(self):
        self.configure(role_id=SOAK_ROLE, secret_id=SOAK_SECRET)
        self.mktype("soak_a")
        self.mktype("soak_b")
        self.mktype("soak_db", storage="db")
        users = [new_user() for _ in range(8)]
        vals = {}
        for u in users:
            for ident in ("soak_a", "soak_b"):
                vals[(ident, u)] = canary()
                self.set_value(ident, u, vals[(ident, u)])
            self.set_value("soak_db", u, canary())
        self.wait_authenticated()
        self.sim.admin("POST", "counters/reset")
        h0 = self.health_vault()

        def make(conn, n):
            u = users[(conn * 3 + n) % len(users)]
            if n % 3 == 2:
                return "cred.status", {"user": u}
            ident = "soak_a" if n % 3 == 0 else "soak_b"
            return "substitute", self.sub_params(ident, u)

        load = Load(self.d.socket, nconn=4, rate=5, make=make).start()
        t0 = time.monotonic()
        seen_unauth = 0
        try:
            # The behaviour under test is time: run for SOAK_SECONDS.
            while True:
                left = SOAK_SECONDS - (time.monotonic() - t0)
                if left <= 0:
                    break
                time.sleep(min(1.0, left))
                if not self.health_vault()["authenticated"]:
                    seen_unauth += 1
                self.assertTrue(self.d.alive(), "daemon died")
        finally:
            load.stop()
        elapsed = time.monotonic() - t0

        fails = load.failures()
        self.assertEqual(load.exceptions, [])
        self.assertEqual(
            fails[:5], [], "%d of %d calls failed" % (len(fails),
                                                     len(load.results)))
        self.assertGreaterEqual(len(load.results), 8 * elapsed,
                                "the load did not run")
        slow = max(r[2] for r in load.results)
        self.assertLess(slow, 3.0, "a call took %.2f s" % slow)

        # Renewals and logins go on while we look: read the broker's
        # counts just before and just after the simulator's.
        h_pre = self.health_vault()
        c = self.sim.counters()
        h = self.health_vault()
        periods = SOAK_SECONDS / (MAX_TTL - 1)
        msg = "counters %r" % {k: c[k] for k in (
            "logins_ok", "logins_failed", "renewals_ok", "renewals_failed")}
        self.assertGreaterEqual(c["renewals_ok"], max(2, int(2 * periods)),
                                "too few renewals: " + msg)
        self.assertGreaterEqual(c["logins_ok"], max(1, int(periods * 0.6)),
                                "too few re-logins (max TTL): " + msg)
        # Not a storm either: about one login per max TTL, a renewal per
        # two thirds of the TTL.
        self.assertLessEqual(c["logins_ok"], 3 * periods + 3, msg)
        self.assertLessEqual(c["renewals_ok"],
                             3 * SOAK_SECONDS / (TTL * 0.6) + 3, msg)
        self.assertEqual(c["logins_failed"], 0, msg)
        self.assertEqual(c["renewals_failed"], 0, msg)
        self.assertEqual(c["statuses"].get("403", 0), 0,
                         "requests went out with a dead token: %r"
                         % c["statuses"])
        self.assertEqual([s for s in c["statuses"] if s.startswith("5")], [])

        # Authenticated at the end: a re-login (a few ms every ~9 s) may
        # be under way at this very moment, so allow it to finish.
        self.wait_authenticated(timeout=5)
        ha = self.health_vault()
        self.assertGreater(ha["token_ttl"], 0)
        self.assertLessEqual(ha["token_ttl"], TTL)
        self.assertIsNone(ha["last_error"])
        # The broker counts a renewal or login when Vault's answer
        # arrives, the simulator when it answers; one token request is in
        # flight at a time, so each boundary (the counter reset after h0,
        # and the reading of c) can see one of them on one side only.
        for k, ck in (("renewals", "renewals_ok"), ("logins", "logins_ok")):
            self.assertLessEqual(h_pre[k] - h0[k], c[ck] + 1, (k, c[ck]))
            self.assertLessEqual(c[ck], h[k] - h0[k] + 1, (k, c[ck]))
        # Values still right after all those tokens.
        for (ident, u), v in list(vals.items())[:4]:
            self.assertEqual(self.sub_ok(ident, u), v)
        sys.stderr.write(
            "soak: %.1f s, %d calls, max latency %.3f s, %d renewals, "
            "%d logins, health unauthenticated %d times\n"
            % (elapsed, len(load.results), slow, c["renewals_ok"],
               c["logins_ok"], seen_unauth))


if __name__ == "__main__":
    cbtest.main()

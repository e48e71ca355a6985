#!/usr/bin/python3
"""
Stopping the broker (SIGTERM) while calls wait on Vault: logins, reads and
vault.test connection tests in flight, held there by the simulator's delay
fault.  Each scenario is repeated CB_REPEAT times (default 5), each time
with a new daemon on the same store, since the order in which things end
at shutdown varies from run to run; under the sanitizers a repetition that
touches freed memory aborts the daemon and fails here.

  CB_REPEAT=50 CB_BUILD_DIR=build-asan /usr/bin/python3 \\
      tests/integration/test_vault_shutdown.py -v
"""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cbtest  # noqa: E402
from vaulttest import LOGIN_PATH, VaultCase, canary  # noqa: E402

REPEAT = int(os.environ.get("CB_REPEAT", "5"))
KV_PREFIX = "/v1/secrets/"
USERS = [cbtest.new_user() for _ in range(4)]
# Longer than any bound below: a call the broker does not end itself stays
# in flight until the test releases it.
HOLD = 120
# Vault's own timeout, far beyond the shutdown deadline: only the broker's
# deadline can end these calls in time.
VAULT_TIMEOUT_MS = 60000
EXIT_WITHIN = 15 * cbtest.SCALE


class ShutdownCase(VaultCase):
    shutdown_timeout = 1

    def setUp(self):
        self.daemon_kwargs = {"extra": {"server": [
            ("shutdown_timeout", str(self.shutdown_timeout))]}}
        super().setUp()
        self.configure(timeout_ms=VAULT_TIMEOUT_MS)
        self.mktype("t1")
        self.values = {}
        for u in USERS[:2]:
            self.values[u] = canary()
            self.set_value("t1", u, self.values[u])
        self.d.stop()
        # Whatever a repetition leaves held goes when the test ends.
        self.addCleanup(self.sim.clear_faults)

    def delayed(self):
        return self.sim.counters()["faults"]["delay"]

    def start_calls(self, logins_held):
        """Start the daemon with Vault holding every answer (logins_held)
        or only the KV ones, and put calls in flight: two vault.test, a
        cred.status per user and a substitute.  Returns the clients and
        their msgids once the simulator holds the requests."""
        prefix = "/v1/" if logins_held else KV_PREFIX
        self.sim.fault({"delay": {"seconds": HOLD, "prefix": prefix}})
        before = self.delayed()
        self.d.start()
        calls = []
        for _ in range(2):
            c = self.d.client()
            self.addCleanup(c.close)
            calls.append((c, "vault.test", self.send(c, "vault.test", {})))
        for u in USERS:
            c = self.d.client()
            self.addCleanup(c.close)
            calls.append((c, ("cred.status", u),
                          self.send(c, "cred.status", {"user": u})))
        c = self.d.client()
        self.addCleanup(c.close)
        calls.append((c, "substitute",
                      self.send(c, "substitute", self.sub_params("t1",
                                                                 USERS[0]))))
        # Held: the broker's login and both tests' logins; or both tests'
        # first write and a read per user (the substitute shares the
        # first user's).
        want = 3 if logins_held else 2 + len(USERS)
        cbtest.poll_until(lambda: self.delayed() - before >= want,
                          10 * cbtest.SCALE, what="requests held by Vault")
        return calls

    def sigterm(self):
        """SIGTERM, then wait until the daemon has begun to shut down (its
        socket is gone)."""
        self.d.signal(15)
        cbtest.poll_until(lambda: not os.path.exists(self.d.socket),
                          10 * cbtest.SCALE, what="listener closed")

    def assertExitsClean(self):
        t0 = time.monotonic()
        rc = self.d.wait_exit(EXIT_WITHIN)
        if rc is None:
            self.d.kill9()
            self.fail("credbrokerd still running %.0f s after SIGTERM with "
                      "calls waiting on Vault; stderr:\n%s"
                      % (EXIT_WITHIN, self.d.log()))
        self.assertEqual(rc, 0, "credbrokerd exited with %d; stderr:\n%s"
                         % (rc, self.d.log()))
        return time.monotonic() - t0


class TestVaultShutdown(ShutdownCase):

    def test_shutdown_deadline_ends_vault_calls_in_flight_and_exits_zero(self):
        for rep in range(REPEAT):
            with self.subTest(rep=rep):
                self.start_calls(logins_held=rep % 2 == 0)
                self.sigterm()
                # The deadline (1 s) fails what still waits, vault.test
                # included; Vault's 60 s timeout must not hold the exit.
                self.assertExitsClean()
                self.sim.clear_faults()
                self.assertNotIn(b"AddressSanitizer", self.d.all_logs())


class TestVaultShutdownDrain(ShutdownCase):
    shutdown_timeout = 60

    def test_shutdown_drains_vault_calls_in_flight_with_answers(self):
        for rep in range(REPEAT):
            with self.subTest(rep=rep):
                calls = self.start_calls(logins_held=rep % 2 == 0)
                self.sigterm()
                # Vault answers now, after the broker began to stop: every
                # waiting call completes with its real answer.
                self.sim.clear_faults()
                for c, method, msgid in calls:
                    err, res = self.response(c, msgid,
                                             timeout=EXIT_WITHIN)
                    self.assertIsNone(err, "%s failed during the drain: %r"
                                      % (method, err))
                    if method == "vault.test":
                        self.assertTrue(res["ok"], res)
                    elif method == "substitute":
                        self.assertEqual(self.sub_value(res),
                                         self.values[USERS[0]])
                    else:
                        self.assertEqual(len(res), 1, res)
                        self.assertEqual(res[0]["filled"],
                                         method[1] in self.values, res)
                self.assertExitsClean()
                self.assertNotIn(b"AddressSanitizer", self.d.all_logs())
                # The requests were the ones the broker is expected to make.
                self.assertGreater(self.sim.counters()["requests"].get(
                    "POST " + LOGIN_PATH, 0), 0)


if __name__ == "__main__":
    unittest.main()

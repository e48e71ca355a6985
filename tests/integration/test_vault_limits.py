#!/usr/bin/python3
"""
Bounds on what the broker asks of Vault at once: hundreds of pipelined
calls that go to Vault share vault.max_connections connections (the
simulator counts the client connections open at once), are answered
correctly, and the requests of a client that hangs up before they were
started are dropped.
"""

import os
import socket
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cbtest  # noqa: E402
from cbtest import pack_request  # noqa: E402
from vaulttest import VaultCase, canary  # noqa: E402

READ_PREFIX = "/v1/secrets/data/"
NCALLS = 600
DEFAULT_MAX_CONNECTIONS = 16
DEFAULT_MAX_INFLIGHT = 64


class LimitsCase(VaultCase):
    def prepare(self, nset=3):
        self.configure()
        self.mktype("t1")
        self.filled = set()
        for _ in range(nset):
            u = cbtest.new_user()
            self.set_value("t1", u, canary())
            self.filled.add(u)
        self.wait_authenticated()

    def status_calls(self, users, nclients):
        """cred.status for every user, pipelined over nclients connections
        (each sends its share in one write); returns {user: result}."""
        clients = [self.d.client(timeout=120) for _ in range(nclients)]
        for c in clients:
            self.addCleanup(c.close)
        sent = []
        for i, c in enumerate(clients):
            mine = users[i::nclients]
            reqs = []
            for u in mine:
                msgid = c.new_id()
                reqs.append(pack_request(msgid, "cred.status", {"user": u}))
                sent.append((c, msgid, u))
            c.send_raw(b"".join(reqs))
        out = {}
        for c, msgid, u in sent:
            err, res = self.response(c, msgid, timeout=120 * cbtest.SCALE)
            self.assertIsNone(err, "cred.status for %s: %r" % (u, err))
            out[u] = res
        return out

    def assertStatuses(self, out):
        for u, res in out.items():
            self.assertEqual(len(res), 1, res)
            self.assertEqual(res[0]["ident"], "t1")
            self.assertEqual(res[0]["filled"], u in self.filled,
                             "user %s: %r" % (u, res))
            self.assertNotIn("error", res[0], res)


class TestVaultConnectionCap(LimitsCase):

    def test_pipelined_status_calls_use_at_most_max_connections(self):
        self.prepare()
        users = sorted(self.filled) + [cbtest.new_user()
                                       for _ in range(NCALLS - 3)]
        # Answers take a moment, so that calls pile up in the broker.
        self.sim.fault({"delay": {"seconds": 0.02, "prefix": READ_PREFIX,
                                  "methods": ["GET"]}})
        self.sim.admin("POST", "counters/reset")
        out = self.status_calls(users, nclients=3)
        self.assertEqual(len(out), NCALLS)
        self.assertStatuses(out)
        c = self.sim.counters()
        self.assertEqual(c["kv_reads"], NCALLS)
        self.assertLessEqual(c["connections_max"], DEFAULT_MAX_CONNECTIONS,
                             "the broker opened %d connections to Vault at "
                             "once" % c["connections_max"])


class TestVaultConfiguredCap(LimitsCase):
    daemon_kwargs = {"extra": {"vault": [("max_connections", "2"),
                                         ("max_pending", "3")]}}

    def test_vault_max_connections_bounds_connections_to_vault(self):
        self.prepare()
        users = sorted(self.filled) + [cbtest.new_user() for _ in range(97)]
        self.sim.fault({"delay": {"seconds": 0.02, "prefix": READ_PREFIX,
                                  "methods": ["GET"]}})
        self.sim.admin("POST", "counters/reset")
        out = self.status_calls(users, nclients=2)
        self.assertStatuses(out)
        c = self.sim.counters()
        self.assertEqual(c["kv_reads"], len(users))
        self.assertLessEqual(c["connections_max"], 2)


class TestVaultDisconnect(LimitsCase):

    def test_requests_of_client_that_hangs_up_are_dropped(self):
        self.prepare()
        # Vault holds every read until released: calls pile up.
        self.sim.fault({"delay": {"seconds": 120, "prefix": READ_PREFIX,
                                  "methods": ["GET"]}})
        self.addCleanup(self.sim.clear_faults)
        self.sim.admin("POST", "counters/reset")
        gone = [cbtest.new_user() for _ in range(300)]
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.d.socket)
        s.sendall(b"".join(pack_request(i + 1, "cred.status", {"user": u})
                           for i, u in enumerate(gone)))
        cbtest.poll_until(
            lambda: self.sim.counters()["faults"]["delay"] > 0,
            10 * cbtest.SCALE, what="reads held by Vault")
        s.close()
        # Let the broker see the hang-up before Vault answers.
        c = self.d.client()
        self.addCleanup(c.close)
        cbtest.poll_until(lambda: c.ok("health", {}) is not None, 5,
                          what="health")
        self.sim.clear_faults()
        # The daemon keeps serving: a new client gets its answer, and it
        # comes after every read the broker started for the one that left.
        u = sorted(self.filled)[0]
        self.assertStatuses({u: c.ok("cred.status", {"user": u})})
        reads = self.sim.counters()["kv_reads"]
        # Calls started before the hang-up run to their end (their answers
        # are dropped); the requests behind them never reach Vault.
        self.assertLessEqual(reads, DEFAULT_MAX_INFLIGHT + 1,
                             "%d of the %d requests of a client that hung "
                             "up reached Vault" % (reads - 1, len(gone)))
        # Nothing more trickles out afterwards.
        self.assertStatuses({u: c.ok("cred.status", {"user": u})})
        self.assertLessEqual(self.sim.counters()["kv_reads"],
                             DEFAULT_MAX_INFLIGHT + 2)
        self.assertNotIn(b"AddressSanitizer", self.d.all_logs())


if __name__ == "__main__":
    unittest.main()

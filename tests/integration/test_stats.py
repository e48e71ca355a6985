#!/usr/bin/python3
"""
The stats method and `credctl stats` (SPEC sections 6 and 8), through the
real daemon:

 - after a known sequence of calls (hellos, calls refused as forbidden to
   a uid without a grant, cred.set with bad parameters, substitutes, an
   unknown method), the counters per method and outcome move by exactly
   those numbers; a stats call is counted once answered, not in its own
   reply;
 - latency percentiles are non-negative and ordered (p50 <= p90 <= p99 <=
   p99.9 <= max); store figures are plausible and count the types made;
 - Vault figures: not configured, and against the simulator (logins,
   operations by outcome, cache hits and misses, nothing in flight);
 - read:health is needed: a caller without it gets forbidden;
 - credctl stats prints a table, credctl --json stats the whole result;
 - no planted value, user id or type ident appears in any of it.

No wall-clock speed is asserted: only the order of the percentiles.
"""

import json
import os
import pwd
import re
import secrets
import shutil
import subprocess
import sys
import textwrap
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import find_leaks, new_user  # noqa: E402
from vaulttest import VaultCase  # noqa: E402

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = 65534
OUTCOMES = ["ok"] + cbtest.ERROR_CODES
QUANTILES = ["p50", "p90", "p99", "p99_9", "max"]
URL = "https://api.example.com/v1/things"


def read_methods():
    """Method names in proto/methods.def, in table order."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "..", "..", "proto", "methods.def")
    with open(path) as f:
        return re.findall(r'^CB_METHODDEF\(\w+,\s*"([^"]+)"', f.read(),
                          re.M)


METHODS = read_methods()

# Runs as nobody (no grant): calls each method once, prints the errors.
CLIENT = textwrap.dedent("""
    import json, socket, sys, msgpack
    path, methods = sys.argv[1], json.loads(sys.argv[2])
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    u = msgpack.Unpacker(raw=False)
    out = []
    for i, m in enumerate(methods, 1):
        s.sendall(msgpack.packb([0, i, m, [{}]]))
        while True:
            got = next(iter(u), None)
            if got is not None:
                break
            u.feed(s.recv(65536))
        out.append(got[2])
    print(json.dumps(out))
""")


def run_as_nobody(sock, methods):
    """Call methods as nobody; returns the list of error slots."""
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv is missing: scripts/install-deps installs it"
    cmd = [setpriv, "--reuid=%d" % NOBODY, "--regid=%d" % NOGROUP,
           "--clear-groups", "/usr/bin/python3", "-c", CLIENT, sock,
           json.dumps(methods)]
    out = subprocess.run(cmd, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def by_method(stats):
    return {m["method"]: m for m in stats["methods"]}


def counts(stats):
    """{method: {outcome: n}} of a stats result."""
    return {name: dict(m["outcomes"]) for name, m in by_method(stats).items()}


class StatsCase(cbtest.DaemonTestCase):
    """nobody may reach the socket (and has no grant)."""

    daemon_kwargs = {"extra": {"server": [("socket_mode", "0666")]}}

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("these tests switch to nobody with setpriv and need "
                      "root")
        super().setUp()
        os.chmod(self.d.dir, 0o755)
        self.planted = []
        self.addCleanup(self.check_no_leaks)

    def check_no_leaks(self):
        blob = self.d.all_logs() + b"".join(cbtest.CREDCTL_OUTPUT)
        self.assertEqual(find_leaks(blob, self.planted), [])

    def assertShape(self, stats):
        """Every method, every outcome, ordered non-negative percentiles,
        calls equal to the sum of outcomes."""
        self.assertEqual([m["method"] for m in stats["methods"]], METHODS)
        self.assertEqual(len(stats["methods"]), len(by_method(stats)))
        for m in stats["methods"]:
            self.assertEqual(sorted(m["outcomes"]), sorted(OUTCOMES),
                             m["method"])
            self.assertEqual(m["calls"], sum(m["outcomes"].values()),
                             m["method"])
            lat = [m["latency_us"][q] for q in QUANTILES]
            self.assertEqual(sorted(m["latency_us"]), sorted(QUANTILES))
            for v in lat:
                self.assertIsInstance(v, int)
                self.assertGreaterEqual(v, 0, m["method"])
            self.assertEqual(lat, sorted(lat),
                             "%s: percentiles out of order %r"
                             % (m["method"], lat))
            if m["calls"] == 0:
                self.assertEqual(lat, [0] * 5, m["method"])
        self.assertEqual(sorted(stats["refused"]),
                         sorted(cbtest.ERROR_CODES))
        for k in ("open", "accepted", "refused"):
            self.assertIsInstance(stats["connections"][k], int)
        self.assertGreaterEqual(stats["uptime"], 0)

    def sub_params(self, ident, user):
        return {"component": {"kind": "action", "initiator": user,
                              "credentials": [{"id": "tok",
                                               "type": ident}]},
                "request": {"method": "GET", "url": URL,
                            "headers": [["Authorization",
                                         "Bearer <<.credentials.tok>>"]]}}


class StatsTests(StatsCase):

    def test_stats_counts_each_call_by_method_and_outcome(self):
        c = self.c
        before = c.ok("stats")
        self.assertShape(before)

        k, m, n, s = 3, 2, 4, 5
        idents = ["st_%s" % secrets.token_hex(4) for _ in range(2)]
        for ident in idents:
            c.ok("type.create", {"ident": ident, "name": "Stats " + ident,
                                 "storage": "db"})
        user = new_user()
        value = "canary-" + secrets.token_hex(16)
        self.planted.append(value.encode())
        c.ok("cred.set", {"type": idents[0], "user": user, "value": value})
        for _ in range(k):
            c.ok("hello")
        # m forbidden calls of type.list and one of stats, from nobody.
        errs = run_as_nobody(self.d.socket, ["type.list"] * m + ["stats"])
        self.assertEqual([e["code"] for e in errs], ["forbidden"] * (m + 1))
        for _ in range(n):
            self.assertError(c.call("cred.set", {"type": idents[0],
                                                 "user": user}),
                             "bad_request")
        for _ in range(s):
            res = c.ok("substitute", self.sub_params(idents[0], user))
            self.assertEqual(res["request"]["headers"][0][1],
                             "Bearer " + value)
        self.assertError(c.call("no.such.method"), "bad_request")
        self.assertError(c.call("no.such.method"), "bad_request")

        after = c.ok("stats")
        self.assertShape(after)
        b, a = counts(before), counts(after)
        want = {name: {o: 0 for o in OUTCOMES} for name in a}
        want["hello"]["ok"] = k
        want["type.create"]["ok"] = 2
        want["type.list"]["forbidden"] = m
        want["stats"]["forbidden"] = 1
        want["stats"]["ok"] = 1            # the first stats call
        want["cred.set"]["ok"] = 1
        want["cred.set"]["bad_request"] = n
        want["substitute"]["ok"] = s
        got = {name: {o: a[name][o] - b[name][o] for o in OUTCOMES}
               for name in a}
        self.assertEqual(got, want)
        # Refused before a call existed: the two unknown methods.
        self.assertEqual(after["refused"]["bad_request"]
                         - before["refused"]["bad_request"], 2)
        for code in cbtest.ERROR_CODES:
            if code != "bad_request":
                self.assertEqual(after["refused"][code],
                                 before["refused"][code])
        # Connections: nobody's at least was accepted since.
        self.assertGreaterEqual(after["connections"]["accepted"]
                                - before["connections"]["accepted"], 1)
        self.assertGreaterEqual(after["connections"]["open"], 1)
        self.assertEqual(after["connections"]["refused"], 0)
        # Store: the two types, sane page figures.
        st = after["store"]
        self.assertEqual(st["backend"], self.d.backend)
        self.assertEqual(st["types"], 2)
        self.assertEqual(before["store"]["types"], 0)
        if self.d.backend == "sqlite":
            self.assertGreater(st["page_size"], 0)
            self.assertGreater(st["pages"], 0)
            self.assertLessEqual(st["free_pages"], st["pages"])
            self.assertEqual(st["bytes"], st["page_size"] * st["pages"])
            # Pages still in the write-ahead log count as well.
            wal = self.d.database + "-wal"
            self.assertLessEqual(st["bytes"],
                                 os.path.getsize(self.d.database)
                                 + (os.path.getsize(wal)
                                    if os.path.exists(wal) else 0))
        # No Vault configured: nothing counted.
        v = after["vault"]
        self.assertIs(v["configured"], False)
        self.assertIs(v["enabled"], False)
        self.assertEqual(sum(v["operations"].values()), 0)
        for key in ("logins", "login_failures", "renewals",
                    "renewal_failures", "in_flight", "waiting",
                    "cache_hits", "cache_misses", "cache_entries",
                    "joined"):
            self.assertEqual(v[key], 0, key)
        # Only counts and times: no value, user or ident in the reply.
        blob = json.dumps(after).encode()
        self.assertEqual(find_leaks(blob, self.planted), [])
        self.assertNotIn(user.encode(), blob)
        for ident in idents:
            self.assertNotIn(ident.encode(), blob)

    def test_stats_does_not_count_itself_until_answered(self):
        first = by_method(self.c.ok("stats"))["stats"]["outcomes"]["ok"]
        second = by_method(self.c.ok("stats"))["stats"]["outcomes"]["ok"]
        self.assertEqual(second, first + 1)

    def test_stats_refuses_unknown_parameters(self):
        err = self.assertError(self.c.call("stats", {"reset": True}),
                               "bad_request")
        self.assertIn("unknown parameter 'reset'", err["message"])

    def test_stats_needs_read_health_for_an_ungranted_uid(self):
        errs = run_as_nobody(self.d.socket, ["stats"])
        self.assertEqual(errs[0]["code"], "forbidden")
        self.assertIn("read:health", errs[0]["message"])

    def test_credctl_stats_prints_a_table_and_json(self):
        ident = "st_%s" % secrets.token_hex(4)
        user = new_user()
        value = "canary-" + secrets.token_hex(16)
        self.planted.append(value.encode())
        self.c.ok("type.create", {"ident": ident, "name": "Stats",
                                  "storage": "db"})
        self.c.ok("cred.set", {"type": ident, "user": user, "value": value})
        for _ in range(3):
            self.c.ok("substitute", self.sub_params(ident, user))

        rc, out, err = cbtest.credctl(self.d.socket, "stats")
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        header = [ln for ln in lines if ln.startswith("METHOD")]
        self.assertEqual(len(header), 1, out)
        for col in ("CALLS", "OK", "ERRORS", "P50", "P90", "P99", "P99.9",
                    "MAX"):
            self.assertIn(col, header[0].split())
        rows = {ln.split()[0]: ln.split() for ln in lines
                if ln.split() and ln.split()[0] in
                ("substitute", "cred.set", "type.create")}
        self.assertEqual(rows["substitute"][1:3], ["3", "3"], out)
        self.assertEqual(rows["cred.set"][1:3], ["1", "1"], out)
        self.assertIn("store:", lines)
        self.assertIn("vault:", lines)
        self.assertRegex(out, r"(?m)^\s+types:\s+1$")

        rc, out, err = cbtest.credctl(self.d.socket, "stats", json=True)
        self.assertEqual(rc, 0, err)
        doc = json.loads(out)
        self.assertShape(doc)
        self.assertEqual(by_method(doc)["substitute"]["outcomes"]["ok"], 3)
        self.assertEqual(doc["store"]["types"], 1)
        self.assertNotIn(ident, out)
        self.assertNotIn(user, out)


class StatsPermissionTests(StatsCase):
    """read:health is the permission: every other one is not enough."""

    daemon_kwargs = {"grants": [
        "uid:%d edit:user-access-credentials-types,edit:user-credentials,"
        "use:credentials" % os.getuid()],
        "extra": {"server": [("socket_mode", "0666")]}}

    def test_stats_is_forbidden_without_read_health(self):
        err = self.assertError(self.c.call("stats"), "forbidden")
        self.assertIn("read:health", err["message"])
        rc, out, errout = cbtest.credctl(self.d.socket, "stats")
        self.assertEqual(rc, 1)
        self.assertIn("forbidden", errout)


class StatsVaultTests(VaultCase):
    """Vault figures against the simulator."""

    def vault_stats(self):
        return self.c.ok("stats")["vault"]

    def test_stats_counts_vault_operations_and_cache(self):
        self.configure()
        ident = "sv_%s" % secrets.token_hex(4)
        self.mktype(ident)
        user, other = new_user(), new_user()
        value = "canary-" + secrets.token_hex(16)
        self.set_value(ident, user, value)
        v0 = self.vault_stats()
        self.assertIs(v0["configured"], True)
        self.assertIs(v0["enabled"], True)
        self.assertGreaterEqual(v0["logins"], 1)
        self.assertGreaterEqual(v0["operations"]["ok"], 1)   # the write

        # Cache off: two reads of a value, one of a missing value.
        self.sub_ok(ident, user)
        self.sub_ok(ident, user)
        self.assertError(self.sub(ident, other), "not_found")
        v1 = self.vault_stats()
        self.assertEqual(v1["operations"]["ok"] - v0["operations"]["ok"], 2)
        self.assertEqual(v1["operations"]["not_found"]
                         - v0["operations"]["not_found"], 1)
        self.assertEqual(v1["cache_hits"], 0)
        self.assertEqual(v1["cache_misses"], 0)
        self.assertEqual(v1["in_flight"], 0)
        self.assertEqual(v1["waiting"], 0)

        # Cache on: a miss, then a hit that sends nothing to Vault.
        self.configure(cache_seconds=600)
        v2 = self.vault_stats()
        self.sub_ok(ident, user)
        self.sub_ok(ident, user)
        v3 = self.vault_stats()
        self.assertEqual(v3["cache_misses"] - v2["cache_misses"], 1)
        self.assertEqual(v3["cache_hits"] - v2["cache_hits"], 1)
        self.assertEqual(v3["operations"]["ok"] - v2["operations"]["ok"], 1)
        self.assertEqual(v3["cache_entries"], 1)
        blob = json.dumps(self.c.ok("stats")).encode()
        self.assertEqual(find_leaks(blob, self.planted), [])
        self.assertNotIn(user.encode(), blob)
        self.assertNotIn(ident.encode(), blob)

    def test_stats_counts_failed_vault_logins(self):
        self.configure(secret_id="wrong-" + secrets.token_hex(8))
        cbtest.poll_until(lambda: self.vault_stats()["login_failures"] >= 1,
                          30, what="a failed login counted")
        v = self.vault_stats()
        self.assertGreaterEqual(v["logins"], v["login_failures"])
        self.assertIs(v["authenticated"], False)


if __name__ == "__main__":
    cbtest.main()

"""
Canary tests (SPEC sections 1, 3, 5.3, 7): plant unique values through the
protocol and through credctl, then search every place a value could leak
-- the database, its WAL, the daemon's stderr, every response, credctl's
output -- for the value in plain text, base64 (any alignment) and hex.  Then
prove that what the database holds is sealed as documented: CB1 values open
with AES-GCM under HKDF-SHA256(master) bound to their (type, user) row, and
fail to open when moved to another row or tried with another key.
"""

import base64
import os
import re
import secrets
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, find_leaks, strong_key  # noqa: E402

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    HAVE_CRYPTO = True
except ImportError:  # pragma: no cover
    HAVE_CRYPTO = False

CB1_RE = re.compile(r"^CB1:(\d+):([A-Za-z0-9+/]+={0,2})$")


def seal_key(master):
    return HKDF(algorithm=hashes.SHA256(), length=len(master), salt=None,
                info=b"credbroker seal v1").derive(master)


def aad_for(keyver, type_uuid, user_uuid):
    return ("credbroker/1|%s|%s/%s" % (keyver, type_uuid, user_uuid)).encode()


def open_cb1(master, sealed, type_uuid, user_uuid):
    m = CB1_RE.match(sealed)
    if not m:
        raise ValueError("not CB1: %r" % sealed[:16])
    keyver, b64 = m.group(1), m.group(2)
    raw = base64.b64decode(b64, validate=True)
    nonce, ct = raw[:12], raw[12:]
    return AESGCM(seal_key(master)).decrypt(
        nonce, ct, aad_for(keyver, type_uuid, user_uuid))


def canary():
    return "CANARY-" + secrets.token_hex(12)


def read_rows(d):
    """The value rows of daemon d's store (SQLite or PostgreSQL)."""
    return [(cbtest.uuid_text(t), cbtest.uuid_text(u), s, at)
            for t, u, s, at in d.store_rows(
                "SELECT type_uuid, user_uuid, sealed, updated_at "
                "FROM credvalues")]


def read_accounts(d):
    accounts = d.store_rows("SELECT type_uuid, name, sealed "
                            "FROM credaccounts")
    links = d.store_rows("SELECT type_uuid, user_uuid, account, sealed "
                         "FROM credlinks")
    defaults = d.store_rows("SELECT uuid, default_account, "
                            "default_sealed FROM types WHERE "
                            "default_sealed IS NOT NULL")
    return accounts, links, defaults


def open_ctx(master, sealed, context):
    """Open CB1 text sealed under any context (account, link, default)."""
    m = CB1_RE.match(sealed)
    if not m:
        raise ValueError("not CB1: %r" % sealed[:16])
    raw = base64.b64decode(m.group(2), validate=True)
    return AESGCM(seal_key(master)).decrypt(
        raw[:12], raw[12:],
        ("credbroker/1|%s|%s" % (m.group(1), context)).encode())


class CanaryTest(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        if not HAVE_CRYPTO:
            self.skipTest("python3-cryptography missing")
        # Reset the global record of everything received for this test.
        del cbtest.RECEIVED[:]
        del cbtest.CREDCTL_OUTPUT[:]
        self.types = {}
        for ident in ("alpha", "beta", "gamma"):
            t = self.c.ok("type.create", {"ident": ident,
                                          "name": "Type " + ident,
                                          "storage": "db"})
            self.types[ident] = t["uuid"]
        self.users = [new_user() for _ in range(4)]
        self.planted = []       # every canary ever sent (bytes)
        self.current = {}       # (type_uuid, user) -> expected plaintext

    def need_credctl(self):
        if not cbtest.have_credctl():
            self.skipTest("credctl not built at %s" % cbtest.CREDCTL)

    def plant_rpc(self, ident, user, value):
        v = value.encode() if isinstance(value, str) else value
        self.planted.append(v)
        self.c.ok("cred.set", {"type": ident, "user": user, "value": value})
        self.current[(self.types[ident], user)] = v

    def plant_ctl(self, ident, user, value, json=False):
        self.planted.append(value.encode())
        rc, out, err = cbtest.credctl(self.d.socket, "cred", "set", ident,
                                      user, input=value + "\n", json=json)
        self.assertEqual(rc, 0, out + err)
        self.current[(self.types[ident], user)] = value.encode()

    def scan(self, where, blob):
        leaks = find_leaks(blob, self.planted)
        self.assertEqual(leaks, [], "canary leaked into %s: %r"
                         % (where, leaks[:3]))
        # the random part on its own, too
        leaks = find_leaks(blob, [p[7:] for p in self.planted
                                  if p.startswith(b"CANARY-")])
        self.assertEqual(leaks, [], "canary tail leaked into %s: %r"
                         % (where, leaks[:3]))

    def scan_files(self, when):
        found_any = False
        sealed_seen = False
        for name, blob in self.d.store_blobs():
            found_any = found_any or bool(blob)
            sealed_seen = sealed_seen or b"CB1:" in blob
            self.scan("%s (%s)" % (name, when), blob)
        self.assertTrue(found_any, "no database file found")
        # The scan looked where the values are: sealed text is there.
        self.assertTrue(sealed_seen, "no CB1 value in the database files")

    def plant_everything(self):
        u = self.users
        self.plant_rpc("alpha", u[0], canary())
        self.plant_rpc("alpha", u[1], canary().encode())      # bin
        self.plant_rpc("beta", u[0], canary())
        self.plant_ctl("beta", u[1], canary())
        self.plant_ctl("gamma", u[2], canary(), json=True)
        self.plant_ctl("alpha", u[3], canary())
        # long value
        c1, c2 = canary(), canary()
        self.planted += [c1.encode(), c2.encode()]
        self.plant_rpc("gamma", u[3], c1 + "-" + "x" * 5000 + c2)
        # replace some (through both paths)
        self.plant_rpc("alpha", u[0], canary())
        self.plant_ctl("beta", u[0], canary())
        self.plant_rpc("beta", u[1], canary())
        # delete some
        self.plant_rpc("gamma", u[0], canary())
        self.c.ok("cred.delete", {"type": "gamma", "user": u[0]})
        del self.current[(self.types["gamma"], u[0])]
        rc, out, err = cbtest.credctl(self.d.socket, "cred", "rm", "alpha",
                                      u[3])
        self.assertEqual(rc, 0, out + err)
        del self.current[(self.types["alpha"], u[3])]
        # a value for a vault type is refused (and must not leak either)
        self.c.ok("type.create", {"ident": "vaulted", "name": "V",
                                  "storage": "vault"})
        v = canary()
        self.planted.append(v.encode())
        err, _ = self.c.call("cred.set", {"type": "vaulted", "user": u[0],
                                          "value": v})
        self.assertEqual(err["code"], "not_configured")
        # invalid requests carrying a value
        for p in ({"type": "nosuch", "user": u[0]},
                  {"type": "alpha", "user": "BAD"},
                  {"type": "alpha", "user": u[0], "junk": 1}):
            v = canary()
            self.planted.append(v.encode())
            p["value"] = v
            err, _ = self.c.call("cred.set", p)
            self.assertIsNotNone(err)
        v = canary()
        self.planted.append(v.encode())
        rc, out, err = cbtest.credctl(self.d.socket, "cred", "set", "nosuch",
                                      u[0], input=v)
        self.assertEqual(rc, 1, out + err)

    def read_everything(self):
        for u in self.users:
            self.c.ok("cred.status", {"user": u})
            for j in (False, True):
                rc, out, err = cbtest.credctl(self.d.socket, "cred", "status",
                                              u, json=j)
                self.assertEqual(rc, 0, out + err)
        for args in (("type", "list"), ("type", "show", "alpha"),
                     ("health",), ("hello",)):
            for j in (False, True):
                rc, out, err = cbtest.credctl(self.d.socket, *args, json=j)
                self.assertEqual(rc, 0, out + err)
        self.c.ok("type.list", {})
        self.c.ok("health", {})

    def test_canary_absent_everywhere(self):
        self.need_credctl()
        self.plant_everything()
        self.read_everything()
        # While the daemon runs: database, WAL, shm.
        self.scan_files("running")
        if self.d.backend == "sqlite":
            self.assertTrue(os.path.exists(self.d.database + "-wal"),
                            "database not in WAL mode")
        self.scan("responses", bytes(cbtest.RECEIVED))
        self.scan("credctl output", b"".join(cbtest.CREDCTL_OUTPUT))
        self.scan("daemon stderr (running)", self.d.all_logs())
        self.d.stop()
        self.scan_files("stopped")
        self.scan("daemon stderr", self.d.all_logs())
        # What is stored is the expected set of rows, each sealed.
        rows = read_rows(self.d)
        self.assertEqual({(r[0], r[1]) for r in rows}, set(self.current))
        for type_uuid, user, sealed, _ in rows:
            self.assertRegex(sealed, CB1_RE)
            pt = open_cb1(self.d.key_bytes, sealed, type_uuid, user)
            self.assertEqual(pt, self.current[(type_uuid, user)])

    def test_sealed_values_bound_to_row_and_key(self):
        u = self.users
        self.plant_rpc("alpha", u[0], canary())
        self.plant_rpc("alpha", u[1], canary())
        self.plant_rpc("beta", u[0], canary())
        self.d.stop()
        master = self.d.key_bytes
        rows = {(r[0], r[1]): r[2] for r in read_rows(self.d)}
        a0 = rows[(self.types["alpha"], u[0])]
        a1 = rows[(self.types["alpha"], u[1])]
        self.assertNotEqual(a0, a1)
        self.assertEqual(open_cb1(master, a0, self.types["alpha"], u[0]),
                         self.current[(self.types["alpha"], u[0])])
        # Another user's AAD, another type's AAD, another key: all fail.
        with self.assertRaises(InvalidTag):
            open_cb1(master, a0, self.types["alpha"], u[1])
        with self.assertRaises(InvalidTag):
            open_cb1(master, a0, self.types["beta"], u[0])
        with self.assertRaises(InvalidTag):
            open_cb1(strong_key(len(master)).encode(), a0,
                     self.types["alpha"], u[0])
        # Another key version in the AAD fails too.
        m = CB1_RE.match(a0)
        wrong = "CB1:%d:%s" % (int(m.group(1)) + 1, m.group(2))
        with self.assertRaises(InvalidTag):
            open_cb1(master, wrong, self.types["alpha"], u[0])
        # Copy u0's sealed value into u1's row with the daemon stopped.
        self.d.store_execute(
            "UPDATE credvalues SET sealed = ? WHERE type_uuid = ? "
            "AND user_uuid = ?", (a0, self.d.value_id(self.types["alpha"]),
                                  self.d.value_id(u[1])))
        rows = {(r[0], r[1]): r[2] for r in read_rows(self.d)}
        moved = rows[(self.types["alpha"], u[1])]
        self.assertEqual(moved, a0)
        with self.assertRaises(InvalidTag):
            open_cb1(master, moved, self.types["alpha"], u[1])
        # The daemon still starts on the tampered store and serves status.
        self.d.start()
        with self.d.client() as c:
            st = {e["ident"]: e for e in c.ok("cred.status", {"user": u[1]})}
            self.assertIs(st["alpha"]["filled"], True)
        self.d.stop()

    def test_same_value_different_ciphertext(self):
        v = canary()
        self.plant_rpc("alpha", self.users[0], v)
        self.d.stop()
        first = {(r[0], r[1]): r[2] for r in read_rows(self.d)}
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.plant_rpc("alpha", self.users[0], v)
        self.d.stop()
        second = {(r[0], r[1]): r[2] for r in read_rows(self.d)}
        k = (self.types["alpha"], self.users[0])
        self.assertNotEqual(first[k], second[k])
        for s in (first[k], second[k]):
            self.assertEqual(open_cb1(self.d.key_bytes, s, *k), v.encode())

    def test_credctl_strips_one_newline(self):
        self.need_credctl()
        u = self.users[0]
        cases = [("alpha", "plain-" + canary(), "\n"),
                 ("beta", "twonl-" + canary(), "\n\n"),
                 ("gamma", "none-" + canary(), "")]
        for ident, v, tail in cases:
            self.planted.append(v.encode())
            rc, out, err = cbtest.credctl(self.d.socket, "cred", "set",
                                          ident, u, input=v + tail)
            self.assertEqual(rc, 0, out + err)
        self.d.stop()
        rows = {(r[0], r[1]): r[2] for r in read_rows(self.d)}
        for ident, v, tail in cases:
            pt = open_cb1(self.d.key_bytes, rows[(self.types[ident], u)],
                          self.types[ident], u)
            expect = v + tail[:-1] if tail else v
            self.assertEqual(pt, expect.encode(), ident)

    def test_legacy_gcm_row_accepted(self):
        # SPEC 3: the source document's "GCM:" format stays readable.  No
        # API returns values, so check that such a row, written with the
        # master key directly and no AAD, is listed as filled and can be
        # replaced and deleted like any other.
        u = self.users[0]
        self.plant_rpc("alpha", u, canary())
        self.d.stop()
        master = self.d.key_bytes
        nonce = os.urandom(12)
        v = canary().encode()
        self.planted.append(v)
        ct = AESGCM(master).encrypt(nonce, v, None)
        legacy = "GCM:" + base64.b64encode(nonce + ct).decode()
        self.d.store_execute(
            "UPDATE credvalues SET sealed = ? WHERE type_uuid = ?"
            " AND user_uuid = ?", (legacy,
                                   self.d.value_id(self.types["alpha"]),
                                   self.d.value_id(u)))
        self.d.start()
        with self.d.client() as c:
            st = {e["ident"]: e for e in c.ok("cred.status", {"user": u})}
            self.assertIs(st["alpha"]["filled"], True)
            c.ok("cred.set", {"type": "alpha", "user": u, "value": "new"})
        self.d.stop()
        rows = {(r[0], r[1]): r[2] for r in read_rows(self.d)}
        self.assertRegex(rows[(self.types["alpha"], u)], CB1_RE)

    def test_keycheck_recorded(self):
        self.d.stop()
        rows = self.d.store_rows("SELECT * FROM keycheck")
        self.assertGreaterEqual(len(rows), 1)
        blob = repr(rows).encode()
        self.assertNotIn(self.d.key_bytes, blob)
        self.assertEqual(find_leaks(blob, [self.d.key_bytes]), [])

    def test_master_key_never_leaks(self):
        self.need_credctl()
        self.plant_rpc("alpha", self.users[0], canary())
        self.read_everything()
        self.d.stop()
        key = self.d.key_bytes
        for where, blob in (("stderr", self.d.all_logs()),
                            ("responses", bytes(cbtest.RECEIVED)),
                            ("credctl", b"".join(cbtest.CREDCTL_OUTPUT))):
            self.assertEqual(find_leaks(blob, [key]), [], where)
        for name, blob in self.d.store_blobs():
            self.assertEqual(find_leaks(blob, [key]), [],
                             "master key in " + name)

    def test_audit_lines(self):
        # SPEC 7: an audit line for each call that changes credentials,
        # naming the method and subject user -- never the value.
        u = self.users[2]
        v = canary()
        self.plant_rpc("beta", u, v)
        self.c.ok("cred.delete", {"type": "beta", "user": u})
        del self.current[(self.types["beta"], u)]
        cbtest.poll_until(lambda: "cred.delete" in self.d.log(),
                          cbtest.CALL_TIMEOUT, what="audit line")
        log = self.d.log()
        lines = [l for l in log.splitlines() if u in l]
        self.assertTrue(any("cred.set" in l for l in lines), log)
        self.assertTrue(any("cred.delete" in l for l in lines), log)
        self.scan("stderr", log.encode())

    def plant_account(self, ident, name, value):
        v = value.encode() if isinstance(value, str) else value
        self.planted.append(v)
        self.c.ok("cred.set", {"type": ident, "account": name,
                               "value": value})
        self.current[(self.types[ident], "account/" + name)] = v

    def test_account_canaries_absent_everywhere(self):
        """Technical accounts (SPEC 10): account values go through the
        same paths as users' values and leak nowhere either; what is
        stored is sealed to the account, and links and defaults to their
        row."""
        u = self.users
        self.plant_account("alpha", "reader", canary())
        self.plant_account("alpha", "writer", canary().encode())  # bin
        self.plant_account("beta", "reader", canary())
        c1, c2 = canary(), canary()
        self.planted += [c1.encode(), c2.encode()]
        self.plant_account("gamma", "big", c1 + "-" + "y" * 5000 + c2)
        # replaced, and deleted with force while linked
        self.plant_account("alpha", "reader", canary())
        self.plant_account("beta", "gone", canary())
        self.c.ok("cred.link", {"type": "alpha", "user": u[0],
                                "account": "reader"})
        self.c.ok("cred.link", {"type": "beta", "user": u[1],
                                "account": "gone"})
        self.c.ok("type.update", {"type": "alpha",
                                  "default_account": "writer"})
        self.c.ok("cred.delete", {"type": "beta", "account": "gone",
                                  "force": True})
        del self.current[(self.types["beta"], "account/gone")]
        # invalid requests carrying a value
        for p in ({"type": "nosuch", "account": "reader"},
                  {"type": "alpha", "account": "Bad-Name"},
                  {"type": "alpha", "account": "reader", "user": u[0]},
                  {"type": "alpha", "account": "reader", "junk": 1}):
            v = canary()
            self.planted.append(v.encode())
            p["value"] = v
            err, _ = self.c.call("cred.set", p)
            self.assertIsNotNone(err)
        # reading everything that describes accounts, and dry runs
        for user in u:
            self.c.ok("cred.status", {"user": user})
            self.c.ok("substitute", {
                "component": {"kind": "action", "initiator": user,
                              "credentials": [{"id": "a", "type": "alpha"},
                                              {"id": "b", "type": "beta"}]},
                "request": {"method": "GET",
                            "url": "https://x.example/<<.credentials.a>>/"
                                   "<<.credentials.b>>"},
                "dry_run": True})
        for ident in ("alpha", "beta", "gamma"):
            self.c.ok("cred.status", {"type": ident})
            self.c.ok("type.get", {"type": ident})
        self.scan_files("running")
        self.scan("responses", bytes(cbtest.RECEIVED))
        self.scan("daemon stderr (running)", self.d.all_logs())
        self.d.stop()
        self.scan_files("stopped")
        self.scan("daemon stderr", self.d.all_logs())
        # Every account value is stored once, sealed to its account.
        master = self.d.key_bytes
        accounts, links, defaults = read_accounts(self.d)
        self.assertEqual({(t, "account/" + n) for t, n, _ in accounts},
                         set(self.current))
        for type_uuid, name, sealed in accounts:
            self.assertRegex(sealed, CB1_RE)
            ctx = "%s/account/%s" % (type_uuid, name)
            self.assertEqual(open_ctx(master, sealed, ctx),
                             self.current[(type_uuid, "account/" + name)])
            # Not under another account's context, nor a user's.
            with self.assertRaises(InvalidTag):
                open_ctx(master, sealed, "%s/account/%s" % (
                    type_uuid, "reader" if name != "reader" else "writer"))
            with self.assertRaises(InvalidTag):
                open_ctx(master, sealed, "%s/%s" % (type_uuid, u[0]))
        # Links and the default hold the account's name, sealed to the row.
        self.assertEqual(sorted((t, usr, a) for t, usr, a, _ in links),
                         sorted([(self.types["alpha"], u[0], "reader"),
                                 (self.types["beta"], u[1], "gone")]))
        for type_uuid, user, account, sealed in links:
            self.assertEqual(open_ctx(master, sealed, "link/%s/%s"
                                      % (type_uuid, user)), account.encode())
            with self.assertRaises(InvalidTag):
                open_ctx(master, sealed, "link/%s/%s" % (type_uuid, u[3]))
        self.assertEqual([(t, a) for t, a, _ in defaults],
                         [(self.types["alpha"], "writer")])
        self.assertEqual(open_ctx(master, defaults[0][2], "default/%s"
                                  % self.types["alpha"]), b"writer")


class LeakFinderSelfTest(unittest.TestCase):
    """The scanner itself finds every encoding it claims to."""

    def test_finds_encodings(self):
        c = canary().encode()
        for pre in (b"", b"x", b"xy", b"xyz", b"\x00\x01\x02\x03"):
            for post in (b"", b"!", b"!?"):
                data = pre + c + post
                for blob in (data, base64.b64encode(data),
                             base64.urlsafe_b64encode(data),
                             data.hex().encode(),
                             data.hex().upper().encode()):
                    wrapped = b"junk" + blob + b"junk"
                    self.assertTrue(find_leaks(wrapped, [c]),
                                    "missed %r" % blob)
        self.assertEqual(find_leaks(b"nothing to see" * 100, [c]), [])


if __name__ == "__main__":
    cbtest.main()

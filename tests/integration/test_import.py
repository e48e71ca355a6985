"""
Moving the existing platform's database values in (SPEC section 11),
against a real daemon:

 - security.legacy_key_file: a weak key (refused as a master key) is
   taken, logged with a warning at start and on SIGHUP, and only opens
   GCM: values on import;
 - cred.import opens GCM: text sealed (by Python's cryptography, an
   independent AES-GCM) with the master key or the legacy key, re-seals it
   in the bound CB1 format, answers "imported", then "unchanged" for the
   same value, and "imported" again for another value; dry_run writes
   nothing; bad values (corrupt, truncated, wrong key, CB1 text, empty)
   and unknown types are refused without the value in the message; the
   permission is edit:user-credentials;
 - vault.adopt re-seals GCM: rows of a type stored in the database too;
 - credctl import FILE|- [--dry-run]: counts per outcome, reports every
   bad line by number, imports the good ones, a second run reports
   everything unchanged; no value, sealed or open, appears in any credctl
   output, daemon log or audit line (canary test).
"""

import base64
import json
import os
import signal
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

WEAK_LEGACY = "passwordpassword"          # refused as a master key


def gcm(key, pt):
    """Seal pt the platform's way: GCM:base64(nonce || ct || tag)."""
    if isinstance(key, str):
        key = key.encode()
    if isinstance(pt, str):
        pt = pt.encode()
    nonce = os.urandom(12)
    return "GCM:" + base64.b64encode(
        nonce + AESGCM(key).encrypt(nonce, pt, None)).decode()


def canary(tag="v"):
    return "CANARY-%s-%s" % (tag, os.urandom(9).hex())


class ImportTest(cbtest.DaemonTestCase):

    def setUp(self):
        self.tmp_legacy = cbtest.make_tmpdir()
        self.addCleanup(cbtest.remove_tmpdir, self.tmp_legacy)
        self.legacy_file = os.path.join(self.tmp_legacy, "legacy.key")
        cbtest.write_file(self.legacy_file, WEAK_LEGACY + "\n")
        self.audit_file = os.path.join(self.tmp_legacy, "audit.log")
        self.daemon_kwargs = {"extra": {
            "security": [("legacy_key_file", self.legacy_file)],
            "audit": [("file", self.audit_file)]}}
        super().setUp()
        self.secrets = []

    def mktype(self, ident):
        return self.c.ok("type.create", {"ident": ident, "name": ident,
                                         "storage": "db"})["uuid"]

    def value_of(self, ident, user):
        """The value substitution gives for user's credential ident."""
        res = self.c.ok("substitute", {
            "component": {"kind": "action", "initiator": user,
                          "credentials": [{"id": "x", "type": ident}]},
            "request": {"method": "GET", "url": "https://a.example/",
                        "headers": [["Authorization",
                                     "<<.credentials.x>>"]]}})
        return res["request"]["headers"][0][1]

    def stored(self, type_uuid, user):
        rows = self.d.store_rows("SELECT sealed FROM credvalues WHERE "
                                 "type_uuid = ? AND user_uuid = ?",
                                 (self.d.value_id(type_uuid),
                                  self.d.value_id(user)))
        return rows[0][0] if rows else None

    def test_legacy_key_warning_at_start_and_reload(self):
        self.assertIn("legacy key is configured", self.d.log())
        n = self.d.log().count("legacy key is configured")
        self.d.signal(signal.SIGHUP)
        cbtest.poll_until(lambda: self.d.log().count(
            "legacy key is configured") > n, 20 * cbtest.SCALE,
            what="warning on reload")
        self.assertNotIn(WEAK_LEGACY, self.d.log())

    def test_import_opens_master_and_legacy_values_and_reseals_bound(self):
        t = self.mktype("alpha")
        u1, u2 = new_user(), new_user()
        v1, v2 = canary("m"), canary("l")
        r = self.c.ok("cred.import", {"type": "alpha", "user": u1,
                                      "sealed": gcm(self.d.key, v1)})
        self.assertEqual(r, {"outcome": "imported"})
        r = self.c.ok("cred.import", {"type": t, "user": u2,
                                      "sealed": gcm(WEAK_LEGACY, v2)})
        self.assertEqual(r, {"outcome": "imported"})
        self.assertEqual(self.value_of("alpha", u1), v1)
        self.assertEqual(self.value_of("alpha", u2), v2)
        for u in (u1, u2):
            self.assertTrue(self.stored(t, u).startswith("CB1:"))
        # The same value again, sealed anew: unchanged, nothing written.
        before = self.stored(t, u2)
        r = self.c.ok("cred.import", {"type": "alpha", "user": u2,
                                      "sealed": gcm(WEAK_LEGACY, v2)})
        self.assertEqual(r, {"outcome": "unchanged"})
        self.assertEqual(self.stored(t, u2), before)
        # Another value replaces it.
        v3 = canary("n")
        r = self.c.ok("cred.import", {"type": "alpha", "user": u2,
                                      "sealed": gcm(self.d.key, v3)})
        self.assertEqual(r, {"outcome": "imported"})
        self.assertEqual(self.value_of("alpha", u2), v3)

    def test_adopt_reseals_gcm_rows_of_a_db_type(self):
        t = self.mktype("alpha")
        u = new_user()
        v = canary()
        self.c.ok("cred.set", {"type": "alpha", "user": u, "value": "x"})
        self.d.stop()
        self.d.store_execute("UPDATE credvalues SET sealed = ? WHERE "
                             "type_uuid = ? AND user_uuid = ?",
                             (gcm(WEAK_LEGACY, v), self.d.value_id(t),
                              self.d.value_id(u)))
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        r = self.c.ok("vault.adopt", {"type": "alpha"})
        self.assertEqual(r, {"adopted": 1, "already": 0, "failed": 0,
                             "failed_users": []})
        self.assertTrue(self.stored(t, u).startswith("CB1:"))
        self.assertEqual(self.value_of("alpha", u), v)

    def test_import_dry_run_writes_nothing(self):
        t = self.mktype("alpha")
        u = new_user()
        s = gcm(self.d.key, canary())
        r = self.c.ok("cred.import", {"type": "alpha", "user": u,
                                      "sealed": s, "dry_run": True})
        self.assertEqual(r, {"outcome": "would_import"})
        self.assertIsNone(self.stored(t, u))
        self.c.ok("cred.import", {"type": "alpha", "user": u, "sealed": s})
        r = self.c.ok("cred.import", {"type": "alpha", "user": u,
                                      "sealed": s, "dry_run": True})
        self.assertEqual(r, {"outcome": "unchanged"})

    def test_import_refuses_bad_values_without_showing_them(self):
        t = self.mktype("alpha")
        u = new_user()
        v = canary()
        good = gcm(self.d.key, v)
        raw = base64.b64decode(good[4:])
        corrupt = "GCM:" + base64.b64encode(
            raw[:20] + bytes([raw[20] ^ 1]) + raw[21:]).decode()
        cases = {
            "corrupt": corrupt,
            "truncated": good[:len(good) // 2],
            "wrong key": gcm(cbtest.strong_key(), v),
            "short": "GCM:" + base64.b64encode(raw[:20]).decode(),
            "not GCM": "CB1:1:" + good[4:],
            "plain": v,
        }
        for what, sealed in cases.items():
            err, res = self.c.call("cred.import", {"type": "alpha",
                                                   "user": u,
                                                   "sealed": sealed})
            self.assertIsNotNone(err, what)
            self.assertEqual(err["code"], "bad_request", what)
            self.assertNotIn(sealed[4:20], err["message"], what)
            self.assertNotIn(v, err["message"], what)
        self.assertIsNone(self.stored(t, u))
        err, _ = self.c.call("cred.import", {"type": "nosuch", "user": u,
                                             "sealed": good})
        self.assertEqual(err["code"], "not_found")
        err, _ = self.c.call("cred.import", {"type": "alpha",
                                             "user": "NOT-A-UUID",
                                             "sealed": good})
        self.assertEqual(err["code"], "bad_request")
        self.secrets.append(v.encode())
        blob = self.d.all_logs()
        with open(self.audit_file, "rb") as f:
            blob += f.read()
        self.assertEqual(find_leaks(blob, [v.encode(), good.encode(),
                                           corrupt.encode()]), [])

    def test_import_needs_edit_user_credentials(self):
        self.mktype("alpha")
        self.d.stop()
        self.d.grants = ["uid:%d use:credentials,"
                         "edit:user-access-credentials-types" % os.getuid()]
        self.d.write_config()
        self.d.start()
        with self.d.client() as c:
            err, _ = c.call("cred.import", {
                "type": "alpha", "user": new_user(),
                "sealed": gcm(self.d.key, canary())})
        self.assertEqual(err["code"], "forbidden")

    def test_legacy_values_do_not_open_without_the_legacy_key(self):
        self.mktype("alpha")
        self.d.stop()
        self.d.extra["security"] = []
        self.d.write_config()
        self.d.start()
        self.assertNotIn("legacy key is configured", self.d.log())
        with self.d.client() as c:
            err, _ = c.call("cred.import", {
                "type": "alpha", "user": new_user(),
                "sealed": gcm(WEAK_LEGACY, canary())})
        self.assertEqual(err["code"], "bad_request")

    def test_weak_legacy_key_is_still_refused_as_master_key(self):
        self.d.stop()
        self.d.write_key(WEAK_LEGACY)
        self.d.start(wait=False)
        self.assertEqual(self.d.wait_exit(), 1)
        self.d.checked = True
        self.assertIn("master key is too weak", self.d.log())

    def test_credctl_import_counts_reports_lines_and_is_idempotent(self):
        types = {i: self.mktype(i) for i in ("alpha", "beta", "gamma")}
        users = [new_user() for _ in range(12)]
        lines, good, values = [], {}, []
        for n, u in enumerate(users):
            for i, (ident, tu) in enumerate(sorted(types.items())):
                v = canary("%s%d" % (ident, n))
                values.append(v.encode())
                key = WEAK_LEGACY if (n + i) % 2 else self.d.key
                s = gcm(key, v)
                values.append(s.encode())
                rec = {"user": u, "sealed": s}
                if n % 3 == 0:
                    rec["type_uuid"] = tu
                else:
                    rec["type"] = ident
                lines.append(json.dumps(rec))
                good[(ident, u)] = v
        bad_value = canary("bad")
        values.append(bad_value.encode())
        wrong = gcm(cbtest.strong_key(), bad_value)
        trunc = gcm(self.d.key, bad_value)[:30]
        raw = base64.b64decode(gcm(self.d.key, bad_value)[4:])
        corrupt = "GCM:" + base64.b64encode(raw[:-1] + bytes(
            [raw[-1] ^ 0x80])).decode()
        for s in (wrong, trunc, corrupt):
            values.append(s.encode())
        bad = [
            json.dumps({"type": "alpha", "user": new_user(),
                        "sealed": corrupt}),
            json.dumps({"type": "beta", "user": new_user(),
                        "sealed": trunc}),
            json.dumps({"type": "gamma", "user": new_user(),
                        "sealed": wrong}),
            json.dumps({"type": "nosuch", "user": new_user(),
                        "sealed": gcm(self.d.key, bad_value)}),
            '{"type": "alpha", "user": ',
            json.dumps({"type": "alpha", "type_uuid": types["alpha"],
                        "user": new_user(), "sealed": corrupt}),
        ]
        # Bad lines at known places: 3, 10, 17, ...
        bad_at = []
        for k, b in enumerate(bad):
            pos = 2 + 7 * k
            lines.insert(pos, b)
        for k in range(len(bad)):
            bad_at.append(2 + 7 * k + 1)
        lines.insert(5, "")             # blank lines are skipped
        bad_at = [n + 1 if n > 5 else n for n in bad_at]
        path = os.path.join(self.tmp_legacy, "export.jsonl")
        cbtest.write_file(path, "\n".join(lines) + "\n")
        outputs = []

        rc, out, err = cbtest.credctl(self.d.socket, "import", "--dry-run",
                                      path)
        outputs += [out, err]
        self.assertEqual(rc, 1, err)
        self.assertIn("dry run: %d would be imported, 0 unchanged, %d "
                      "failed" % (len(good), len(bad)), out)
        for (ident, u) in good:
            self.assertIsNone(self.stored(types[ident], u))

        rc, out, err = cbtest.credctl(self.d.socket, "import", path)
        outputs += [out, err]
        self.assertEqual(rc, 1, err)
        self.assertIn("%d imported, 0 unchanged, %d failed"
                      % (len(good), len(bad)), out)
        self.assertIn("failed lines: " + " ".join(map(str, bad_at)), out)
        for n in bad_at:
            self.assertIn("line %d: " % n, err)
        for (ident, u), v in good.items():
            self.assertEqual(self.value_of(ident, u), v)

        # Again, from standard input, as JSON: everything unchanged.
        with open(path, "rb") as f:
            data = f.read()
        rc, out, err = cbtest.credctl(self.d.socket, "import", "-",
                                      input=data, json=True)
        outputs += [out, err]
        self.assertEqual(rc, 1, err)
        res = json.loads(out)
        self.assertEqual((res["imported"], res["unchanged"], res["failed"]),
                         (0, len(good), len(bad)))
        self.assertEqual(res["failed_lines"], bad_at)

        # A file of good lines only: exit 0.
        goodpath = os.path.join(self.tmp_legacy, "good.jsonl")
        cbtest.write_file(goodpath, "\n".join(
            b for b in lines if b not in bad and b) + "\n")
        rc, out, err = cbtest.credctl(self.d.socket, "import", goodpath)
        outputs += [out, err]
        self.assertEqual(rc, 0, err)
        self.assertIn("0 imported, %d unchanged, 0 failed" % len(good), out)

        blob = "".join(outputs).encode() + self.d.all_logs()
        with open(self.audit_file, "rb") as f:
            audit = f.read()
        self.assertIn(b"cred.import", audit)
        blob += audit
        self.assertEqual(find_leaks(blob, values), [])


if __name__ == "__main__":
    cbtest.main()

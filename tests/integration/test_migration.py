"""
The migration of docs/migrating.md, end to end (SPEC section 11), with the
platform's data built by an independent AES-GCM (Python's cryptography):
a master key and a weak legacy key; GCM: values of 3 types for 200 users,
two types in the database (a JSON Lines export) and one in the Vault
simulator under the type's UUID.  The test follows the guide's steps in
order, with credctl only, then substitutes every value through both
placeholder forms.

The types keep the platform's UUIDs ("credctl type add --uuid") and its
idents, which use the wider grammar ("jira.api-key").
"""

import base64
import json
import os
import sys
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402
import vaulttest  # noqa: E402
from vaulttest import (VaultCase, MOUNT, PATH, ROLE_ID, SECRET_ID,  # noqa
                       data_path)

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

NUSERS = 200
WEAK_LEGACY = "changemechangemechangeme"     # 24 bytes, well-known weak
TYPES = [("gitlab_token", "db"), ("jira.api-key", "db"),
         ("vault-token", "vault")]


def gcm(key, pt):
    if isinstance(key, str):
        key = key.encode()
    nonce = os.urandom(12)
    return "GCM:" + base64.b64encode(
        nonce + AESGCM(key).encrypt(nonce, pt.encode(), None)).decode()


class MigrationTest(VaultCase):

    start_daemon = False

    def setUp(self):
        super().setUp()
        self.outputs = []

    def ctl(self, *args, **kw):
        rc, out, err = cbtest.credctl(self.d.socket, *args, **kw)
        self.outputs += [out, err]
        return rc, out, err

    def test_migration_guide_end_to_end(self):
        d = self.d
        master = d.key_bytes
        # The platform's data: its types (with UUIDs) and values.
        uuids = {ident: str(uuid.uuid4()) for ident, _ in TYPES}
        users = [new_user() for _ in range(NUSERS)]
        values = {(ident, u): vaulttest.canary()
                  for ident, _ in TYPES for u in users}
        self.planted += [v.encode() for v in values.values()]

        # Step 1: the key.  The legacy key is refused as a master key but
        # taken as the legacy key; the broker warns about it.
        legacy_file = os.path.join(d.dir, "legacy.key")
        cbtest.write_file(legacy_file, WEAK_LEGACY)
        d.extra = {"security": [("legacy_key_file", legacy_file)]}
        d.write_config()
        d.start()
        self.c = d.client()
        self.addCleanup(self.c.close)
        self.assertIn("legacy key is configured", d.log())

        # Step 2: types with their UUIDs, and Vault.
        types = list(TYPES)
        for ident, storage in types:
            rc, out, err = self.ctl("type", "add", ident, "--uuid",
                                    uuids[ident], "--name", ident,
                                    "--storage", storage)
            self.assertEqual(rc, 0, err)
            self.assertEqual(self.c.ok("type.get", {"type": ident})["uuid"],
                             uuids[ident])
        rc, out, err = self.ctl("vault", "set", "--url", self.sim.url,
                                "--path", PATH, "--role-id", ROLE_ID,
                                "--secret-id-stdin", "--enable",
                                input=SECRET_ID + "\n")
        self.assertEqual(rc, 0, err)
        rc, out, err = self.ctl("vault", "test")
        self.assertEqual(rc, 0, out + err)

        # The platform's sealed values: most under its own (legacy) key,
        # a quarter under the key that is now the broker's master key.
        sealed = []
        lines = []
        for n, u in enumerate(users):
            for ident, storage in types:
                key = WEAK_LEGACY if n % 4 else master
                s = gcm(key, values[(ident, u)])
                sealed.append(s.encode())
                if storage == "db":
                    rec = {"user": u, "sealed": s}
                    if n % 2:
                        rec["type_uuid"] = uuids[ident]
                    else:
                        rec["type"] = ident
                    lines.append(json.dumps(rec))
                else:
                    self.sim.admin("POST", "secrets", {
                        "mount": MOUNT, "path": data_path(uuids[ident], u),
                        "data": {"value": s}})
        export = os.path.join(d.dir, "export.jsonl")
        cbtest.write_file(export, "\n".join(lines) + "\n")
        ndb = 2 * NUSERS

        # Step 3: database values, dry run first.
        rc, out, err = self.ctl("import", "--dry-run", export)
        self.assertEqual(rc, 0, err)
        self.assertIn("dry run: %d would be imported, 0 unchanged, 0 failed"
                      % ndb, out)
        rc, out, err = self.ctl("import", export)
        self.assertEqual(rc, 0, err)
        self.assertIn("%d imported, 0 unchanged, 0 failed" % ndb, out)
        rc, out, err = self.ctl("import", export)
        self.assertEqual(rc, 0, err)
        self.assertIn("0 imported, %d unchanged, 0 failed" % ndb, out)

        # Step 4: Vault values.
        vtype = [i for i, st in types if st == "vault"][0]
        rc, out, err = self.ctl("vault", "adopt", vtype)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("%d adopted, 0 already in the broker's format, "
                      "0 failed" % NUSERS, out)
        rc, out, err = self.ctl("vault", "adopt", vtype)
        self.assertEqual(rc, 0, out + err)
        self.assertIn("0 adopted, %d already" % NUSERS, out)
        dump = json.dumps(self.sim.secrets())
        self.assertNotIn("GCM:", dump)

        # Step 5: templates, both placeholder forms.
        ids = {ident: "c%d" % k for k, (ident, _) in enumerate(types)}
        forms = {"angle": "<<.credentials.%s>>",
                 "brace": "{{ .credentials.%s }}"}
        for form, pat in forms.items():
            hdrs = [["X-" + ids[i], pat % ids[i]] for i, _ in types]
            for u in users:
                res = self.c.ok("substitute", {
                    "component": {"kind": "action", "initiator": u,
                                  "credentials": [{"id": ids[i], "type": i}
                                                  for i, _ in types]},
                    "request": {"method": "GET", "url": vaulttest.URL,
                                "headers": hdrs}})
                got = [h[1] for h in res["request"]["headers"]]
                want = [values[(i, u)] for i, _ in types]
                self.assertEqual(got, want, form)

        # Step 6: remove the legacy key; the warning stops.
        d.extra = {}
        d.write_config()
        n = d.log().count("legacy key is configured")
        d.signal(cbtest.signal.SIGHUP)
        cbtest.poll_until(lambda: "configuration reloaded" in d.log(),
                          20 * cbtest.SCALE, what="reload")
        self.assertEqual(d.log().count("legacy key is configured"), n)

        blob = "".join(self.outputs).encode() + d.all_logs()
        self.assertEqual(find_leaks(blob, self.planted + sealed), [])


if __name__ == "__main__":
    cbtest.main()

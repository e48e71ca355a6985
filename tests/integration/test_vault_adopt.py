"""
vault.adopt and "credctl vault adopt TYPE" (SPEC section 11) against the
Vault simulator: the platform the broker replaces left its values at
{path}/credentials/{type_uuid}/users/{user_uuid}, sealed as GCM: text
(here by Python's cryptography) with its key, which may be a weak legacy
key (security.legacy_key_file).  Adoption re-seals them in place in the
bound format, counts what it did, leaves a value no key opens as it is
and names its user, and a second run finds everything adopted already.
No value appears in credctl's output, the daemon's log or the simulator.
"""

import base64
import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402
import vaulttest  # noqa: E402
from vaulttest import VaultCase, MOUNT, data_path, canary  # noqa: E402

from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402

WEAK_LEGACY = "secretsecretsecr"


def gcm(key, pt):
    if isinstance(key, str):
        key = key.encode()
    nonce = os.urandom(12)
    return "GCM:" + base64.b64encode(
        nonce + AESGCM(key).encrypt(nonce, pt.encode(), None)).decode()


class VaultAdoptTest(VaultCase):

    def setUp(self):
        self.kdir = cbtest.make_tmpdir()
        self.addCleanup(cbtest.remove_tmpdir, self.kdir)
        legacy = os.path.join(self.kdir, "legacy.key")
        cbtest.write_file(legacy, WEAK_LEGACY)
        self.daemon_kwargs = {"extra": {
            "security": [("legacy_key_file", legacy)]}}
        super().setUp()

    def put(self, type_uuid, user, text):
        self.sim.admin("POST", "secrets", {
            "mount": MOUNT, "path": data_path(type_uuid, user),
            "data": {"value": text}})

    def stored(self, type_uuid, user):
        s = self.sim.secrets()
        e = s.get(data_path(type_uuid, user))
        return json.dumps(e)

    def test_vault_adopt_reseals_gcm_values_in_place_and_resumes(self):
        self.configure()
        t = self.mktype("legacy")["uuid"]
        users = [new_user() for _ in range(10)]
        values = {}
        texts = []
        for n, u in enumerate(users):
            v = canary()
            values[u] = v
            self.planted.append(v.encode())
            s = gcm(WEAK_LEGACY if n % 2 else self.d.key_bytes, v)
            texts.append(s.encode())
            self.put(t, u, s)
        # One value the broker already wrote, one no key opens.
        own = new_user()
        values[own] = canary()
        self.set_value("legacy", own, values[own])
        bad_user = new_user()
        bad_value = canary()
        self.planted.append(bad_value.encode())
        bad = gcm(cbtest.strong_key(), bad_value)
        texts.append(bad.encode())
        self.put(t, bad_user, bad)

        rc, out, err = cbtest.credctl(self.d.socket, "vault", "adopt",
                                      "legacy")
        self.assertEqual(rc, 1, err)
        self.assertIn("10 adopted, 1 already in the broker's format, "
                      "1 failed", out)
        self.assertIn(bad_user, out)
        for u in users:
            self.assertIn("CB1:", self.stored(t, u))
            self.assertNotIn("GCM:", self.stored(t, u))
            self.assertEqual(self.sub_ok("legacy", u), values[u])
        self.assertEqual(self.sub_ok("legacy", own), values[own])
        self.assertIn(bad[4:], self.stored(t, bad_user))

        # Again (as after an interruption): nothing left to do.
        rc, out2, err2 = cbtest.credctl(self.d.socket, "vault", "adopt",
                                        "legacy", json=True)
        self.assertEqual(rc, 1, err2)
        res = json.loads(out2)
        self.assertEqual((res["adopted"], res["already"], res["failed"]),
                         (0, 11, 1))
        self.assertEqual(res["failed_users"], [bad_user])
        blob = (out + err + out2 + err2).encode() + self.d.all_logs()
        self.assertEqual(find_leaks(blob, self.planted + texts), [])

    def test_vault_adopt_needs_types_permission_and_a_type(self):
        self.configure()
        self.mktype("dbt", storage="db")
        u = new_user()
        self.set_value("dbt", u, canary())
        res = self.c.ok("vault.adopt", {"type": "dbt"})
        self.assertEqual(res, {"adopted": 0, "already": 1, "failed": 0,
                               "failed_users": []})
        err, _ = self.c.call("vault.adopt", {"type": "nosuch"})
        self.assertEqual(err["code"], "not_found")
        self.mktype("vt")
        self.d.stop()
        self.d.grants = ["uid:%d edit:user-credentials,use:credentials"
                         % os.getuid()]
        self.d.write_config()
        self.d.start()
        with self.d.client() as c:
            err, _ = c.call("vault.adopt", {"type": "vt"})
        self.assertEqual(err["code"], "forbidden")


if __name__ == "__main__":
    cbtest.main()

#!/usr/bin/python3
"""
Vault storage through the real daemon against the Vault simulator
(tests/vault/vaultsim.py): SPEC sections 3, 4.2, 4.3 and 6.

 - Values of vault-stored types: cred.set / cred.status / substitute /
   cred.delete / type.clear, checked against the simulator's secrets dump
   and request log: the exact KV v2 path
   {path}/credentials/{type_uuid}/users/{user_uuid}, a single key "value"
   holding CB1: sealed text, the plaintext nowhere in the simulator, all
   versions gone after cred.delete (metadata delete), type.clear's count.
 - Sealed text is bound to its (type, user): copied to another user's path
   in Vault it does not open; legacy GCM: text seeded into Vault opens.
 - vault.get never returns role_id / secret_id (raw response bytes checked),
   vault.set keeps stored ids when they are absent, persists them sealed
   across a restart; vault.test reports every step and cleans up.
 - Namespace header; not_configured when Vault is unconfigured or disabled.
 - https with a test CA made by the openssl CLI: the right CA works, another
   CA, no CA and a host name the certificate does not cover all fail with
   unavailable naming the certificate, and vault.test's login step says so.
 - Input checks: vault.set paths/ids/fields and user ids that could leave
   the prefix are refused with bad_request and nothing reaches Vault.
 - The stored ids go only to the endpoint they were stored for: vault.set
   and vault.test with another url, namespace or ca_file need role_id and
   secret_id again (a second simulator counts the logins that would have
   reached another server); the sealed ids are bound to the url, namespace
   and ca_file, so a settings row altered in the database does not open
   them; settings saved without the binding are read and re-sealed with
   it; vault.set and vault.test are audited without any id in the line.

Failure handling (sealed, timeouts, 5xx, malformed answers, drops, token
expiry, policy refusals, login backoff) and the event-loop checks are in
test_vault_faults.py; the 60-second renewal soak in test_vault_soak.py.
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
from vaulttest import (VaultCase, ROLE_ID, SECRET_ID, RO_ROLE_ID,  # noqa: E402
                       RO_SECRET_ID, NS_ROLE_ID, NS_SECRET_ID, MOUNT, PREFIX,
                       PATH, LOGIN_PATH, data_path, canary, make_ca,
                       make_server_cert)


try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    HAVE_CRYPTO = True
except ImportError:  # pragma: no cover
    HAVE_CRYPTO = False


def is_list(e):
    return e["method"] == "LIST" or (e["method"] == "GET" and
                                     "list=true" in (e["query"] or ""))


class StorageTests(VaultCase):
    """Values of vault-stored types, end to end."""

    def test_set_status_substitute_delete(self):
        self.configure()
        vt = self.mktype("gh_token")
        self.mktype("db_token", storage="db")
        u, other = new_user(), new_user()
        v1 = canary()
        seq = self.sim.last_seq()
        res = self.set_value("gh_token", u, v1)
        self.assertRegex(res["updated_at"], cbtest.TIME_RE)

        # Exactly one secret, at exactly the documented path, holding one
        # key "value" with CB1: sealed text.
        key = data_path(vt["uuid"], u)
        dump = self.sim.secrets()
        self.assertEqual(sorted(dump), [key])
        self.assertEqual(dump[key]["current_version"], 1)
        data = dump[key]["versions"]["1"]["data"]
        self.assertEqual(list(data), ["value"])
        self.assertTrue(data["value"].startswith("CB1:"), data["value"])
        writes = [e for e in self.sim.requests_since(seq)
                  if e["path"] != LOGIN_PATH]
        # The secret is limited to one version first (KV v2 metadata),
        # then written.
        self.assertEqual([(e["method"], e["path"], e["status"])
                          for e in writes],
                         [("POST", "/v1/%s/metadata/%s/credentials/%s/users/%s"
                           % (MOUNT, PREFIX, vt["uuid"], u), 204),
                          ("POST", "/v1/%s/credentials/%s/users/%s"
                           % (PATH, vt["uuid"], u), 200)])
        self.assertTrue(all(e["token"] for e in writes))
        self.assertEqual(dump[key]["max_versions"], 1)

        # status: filled for u, not for other; db types still listed.
        st = self.status_of(u)
        self.assertIs(st["gh_token"]["filled"], True)
        self.assertEqual(st["gh_token"]["storage"], "vault")
        self.assertRegex(st["gh_token"]["updated_at"], cbtest.TIME_RE)
        self.assertNotIn("error", st["gh_token"])
        self.assertIs(st["db_token"]["filled"], False)
        st = self.status_of(other)
        self.assertIs(st["gh_token"]["filled"], False)
        self.assertNotIn("error", st["gh_token"])

        # substitute reads it back and opens it.
        self.assertEqual(self.sub_ok("gh_token", u), v1)
        err, _ = self.sub("gh_token", other)
        self.assertEqual(err["code"], "not_found", err)
        self.assertIn("gh_token", err["message"])

        # Replace: a second version at the same path, and the first one
        # is gone from the history (max_versions 1), so a replaced value
        # cannot be read back from Vault.
        v2 = canary()
        old_text = data["value"]
        self.set_value("gh_token", u, v2)
        dump = self.sim.secrets()
        self.assertEqual(sorted(dump), [key])
        self.assertEqual(dump[key]["current_version"], 2)
        self.assertEqual(list(dump[key]["versions"]), ["2"])
        self.assertNotEqual(dump[key]["versions"]["2"]["data"]["value"],
                            old_text)
        for ver in dump[key]["versions"].values():
            self.assertTrue(ver["data"]["value"].startswith("CB1:"))
        self.assertEqual(self.sub_ok("gh_token", u), v2)

        # delete: every version and the metadata are gone.
        before = self.sim.counters()["kv_metadata_deletes"]
        seq = self.sim.last_seq()
        self.assertOk(self.c.call("cred.delete", {"type": "gh_token",
                                                  "user": u}))
        self.assertEqual(self.sim.secrets(), {})
        self.assertEqual(self.sim.counters()["kv_metadata_deletes"],
                         before + 1)
        dels = [e for e in self.sim.requests_since(seq)
                if e["method"] == "DELETE"]
        self.assertEqual([e["path"] for e in dels],
                         ["/v1/%s/metadata/%s/credentials/%s/users/%s"
                          % (MOUNT, PREFIX, vt["uuid"], u)])
        self.assertIs(self.status_of(u)["gh_token"]["filled"], False)
        err, _ = self.sub("gh_token", u)
        self.assertEqual(err["code"], "not_found", err)
        self.assertError(self.c.call("cred.delete", {"type": "gh_token",
                                                     "user": u}),
                         "not_found")

    def test_clear_reports_count_and_removes_everything(self):
        self.configure()
        a = self.mktype("clr_a")
        b = self.mktype("clr_b")
        users = [new_user() for _ in range(12)]
        for u in users:
            self.set_value("clr_a", u, canary())
        for u in users[:4]:                 # a second version for some
            self.set_value("clr_a", u, canary())
        keep = new_user()
        kv = canary()
        self.set_value("clr_b", keep, kv)
        # Things under the type's folder that this broker never writes:
        # not a user uuid, and a sub-folder.  They are not counted.
        for junk in ("not-a-uuid", "sub/" + new_user()):
            self.sim.admin("POST", "secrets", {
                "mount": MOUNT, "path": "%s/credentials/%s/users/%s"
                % (PREFIX, a["uuid"], junk), "data": {"value": "x"}})
        # An account's value goes with the type's values (what it holds
        # does not matter to a clear); a name outside the grammar of
        # account names is not the broker's and stays.
        for name in ("reader", "Not-A-Name"):
            self.sim.admin("POST", "secrets", {
                "mount": MOUNT, "path": "%s/credentials/%s/accounts/%s"
                % (PREFIX, a["uuid"], name), "data": {"value": "x"}})

        seq = self.sim.last_seq()
        res = self.assertOk(self.c.call("type.clear", {"type": "clr_a"}))
        self.assertEqual(res, {"removed": 13})
        left = sorted(self.sim.secrets())
        self.assertNotIn(True, [k.startswith(data_path(a["uuid"], u))
                                for k in left for u in users])
        self.assertIn(data_path(b["uuid"], keep), left)
        self.assertIn("%s/credentials/%s/accounts/Not-A-Name"
                      % (PREFIX, a["uuid"]), left)
        reqs = self.sim.requests_since(seq)
        lists = [e for e in reqs if is_list(e)]
        self.assertEqual(sorted(e["path"].rstrip("/") for e in lists),
                         ["/v1/%s/metadata/%s/credentials/%s/%s"
                          % (MOUNT, PREFIX, a["uuid"], folder)
                          for folder in ("accounts", "users")], reqs)
        dels = sorted(e["path"] for e in reqs if e["method"] == "DELETE")
        self.assertEqual(dels, sorted(
            ["/v1/%s/metadata/%s" % (MOUNT, data_path(a["uuid"], u))
             for u in users] +
            ["/v1/%s/metadata/%s/credentials/%s/accounts/reader"
             % (MOUNT, PREFIX, a["uuid"])]))
        for u in users[:3]:
            self.assertIs(self.status_of(u)["clr_a"]["filled"], False)
        self.assertEqual(self.assertOk(self.c.call(
            "type.clear", {"type": "clr_a"})), {"removed": 0})
        self.assertEqual(self.sub_ok("clr_b", keep), kv)
        # A type with nothing in Vault at all (LIST answers 404).
        self.mktype("clr_empty")
        self.assertEqual(self.assertOk(self.c.call(
            "type.clear", {"type": "clr_empty"})), {"removed": 0})

    def test_sealed_value_bound_to_its_owner(self):
        """A sealed value copied, inside Vault, to another user's path does
        not open (SPEC 3: associated data binds it to type and user)."""
        self.configure()
        t = self.mktype("bound")
        attacker, victim = new_user(), new_user()
        secret = canary()
        self.set_value("bound", attacker, secret)
        sealed = self.sim.secrets()[data_path(t["uuid"], attacker)][
            "versions"]["1"]["data"]["value"]
        self.sim.admin("POST", "secrets", {
            "mount": MOUNT, "path": data_path(t["uuid"], victim),
            "data": {"value": sealed}})
        start = len(self.c.raw)
        err, res = self.sub("bound", victim)
        self.assertIsNotNone(err, "a value moved to another user opened: "
                             "%r" % (res,))
        self.assertEqual(find_leaks(bytes(self.c.raw[start:]),
                                    [secret.encode()]), [])

    def test_legacy_gcm_value_in_vault_opens(self):
        """GCM: text (the source document's format, master key used
        directly) imported into Vault keeps working."""
        try:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        except ImportError:
            self.skipTest("python3-cryptography not installed")
        self.configure()
        t = self.mktype("legacy")
        u = new_user()
        value = canary()
        self.planted.append(value.encode())
        nonce = os.urandom(12)
        ct = AESGCM(self.d.key_bytes).encrypt(nonce, value.encode(), None)
        self.sim.admin("POST", "secrets", {
            "mount": MOUNT, "path": data_path(t["uuid"], u),
            "data": {"value": "GCM:" + base64.b64encode(nonce + ct).decode()}})
        self.assertIs(self.status_of(u)["legacy"]["filled"], True)
        self.assertEqual(self.sub_ok("legacy", u), value)

    def test_several_vault_credentials_in_one_call(self):
        """Two vault types and a db type in one substitute: every value
        arrives (the reads run concurrently)."""
        self.configure()
        self.mktype("va")
        self.mktype("vb")
        self.mktype("dbc", storage="db")
        u = new_user()
        vals = {i: canary() for i in ("va", "vb", "dbc")}
        for i, v in vals.items():
            self.set_value(i, u, v)
        p = {"component": {"kind": "widget", "initiator": u,
                           "credentials": [{"id": "a", "type": "va"},
                                           {"id": "b", "type": "vb"},
                                           {"id": "c", "type": "dbc"},
                                           {"id": "a2", "type": "va"}]},
             "request": {"method": "POST", "url": vaulttest.URL,
                         "headers": [["X-A", "<<.credentials.a>>"]],
                         "body": "<<.credentials.b>>|<<.credentials.c>>|"
                                 "<<.credentials.a2>>"}}
        res = self.c.ok("substitute", p)
        self.assertEqual(res["request"]["headers"], [["X-A", vals["va"]]])
        self.assertEqual(res["request"]["body"], "%s|%s|%s" % (
            vals["vb"], vals["dbc"], vals["va"]))
        self.assertEqual(res["subject"], u)

    def test_type_delete_refuses_while_vault_values_exist(self):
        """SPEC 6: type.delete answers conflict while values exist unless
        force.  A vault-stored type's values exist in Vault."""
        self.configure()
        self.mktype("vdel")
        u = new_user()
        self.set_value("vdel", u, canary())
        self.assertError(self.c.call("type.delete", {"type": "vdel"}),
                         "conflict")


class SettingsTests(VaultCase):
    """vault.get / vault.set / vault.test and their persistence."""

    def assertNoIds(self, blob, what):
        self.assertEqual(find_leaks(bytes(blob), [
            ROLE_ID.encode(), SECRET_ID.encode()]), [],
            "role_id or secret_id in %s" % what)

    def test_get_hides_ids_and_set_persists_across_restart(self):
        g = self.c.ok("vault.get", {})
        self.assertIs(g["configured"], False)
        self.assertIs(g["role_id_set"], False)
        self.assertIs(g["secret_id_set"], False)

        start = len(self.c.raw)
        self.configure(ca_file=None, namespace=None, timeout_ms=2500)
        g = self.c.ok("vault.get", {})
        self.assertEqual(g, {"configured": True, "enabled": True,
                             "url": self.sim.url, "path": PATH,
                             "ca_file": None, "namespace": None,
                             "timeout_ms": 2500, "cache_seconds": 0,
                             "role_id_set": True, "secret_id_set": True})
        self.c.ok("health", {})
        self.c.ok("vault.test", {})
        self.assertNoIds(self.c.raw[start:], "vault.set/get/test/health "
                         "answers")

        self.mktype("persist")
        u = new_user()
        value = canary()
        self.set_value("persist", u, value)

        # The ids are sealed at rest: not in the database files.
        blob = b"".join(b for _, b in self.d.store_blobs())
        self.assertNoIds(blob, "the database files")

        self.c.close()
        seq = self.sim.last_seq()
        self.d.restart()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        start = len(self.c.raw)
        g = self.c.ok("vault.get", {})
        self.assertIs(g["configured"], True)
        self.assertIs(g["enabled"], True)
        self.assertIs(g["role_id_set"], True)
        self.assertIs(g["secret_id_set"], True)
        self.assertEqual(g["timeout_ms"], 2500)
        self.assertNoIds(self.c.raw[start:], "vault.get after restart")
        # Calls still work: the daemon logs in with the stored ids.
        self.assertEqual(self.sub_ok("persist", u), value)
        logins = self.sim.logins_since(seq)
        self.assertTrue(logins, "no login after the restart")
        self.assertEqual(logins[-1]["status"], 200)
        self.wait_authenticated()
        self.assertNoIds(self.d.all_logs(), "daemon stderr")

        # credctl shows the Vault state, never the ids.
        if cbtest.have_credctl():
            rc, out, err = cbtest.credctl(self.d.socket, "health", json=True)
            self.assertEqual(rc, 0, err)
            self.assertNoIds((out + err).encode(), "credctl health")

    def test_set_without_ids_keeps_the_stored_ones(self):
        self.configure()
        self.mktype("keep")
        u = new_user()
        value = canary()
        self.set_value("keep", u, value)
        seq = self.sim.last_seq()
        self.c.ok("vault.set", self.settings(role_id=None, secret_id=None,
                                             timeout_ms=3000))
        g = self.c.ok("vault.get", {})
        self.assertIs(g["role_id_set"], True)
        self.assertIs(g["secret_id_set"], True)
        self.assertEqual(g["timeout_ms"], 3000)
        self.assertEqual(self.sub_ok("keep", u), value)
        logins = self.sim.logins_since(seq)
        self.assertEqual([e["status"] for e in logins], [200],
                         "vault.set drops the token: one new login, with "
                         "the stored ids")

    def test_enable_needs_ids(self):
        self.assertError(self.c.call("vault.set", self.settings(
            role_id=None, secret_id=None)), "bad_request")
        self.assertError(self.c.call("vault.set", self.settings(
            secret_id=None)), "bad_request")
        self.assertIs(self.c.ok("vault.get", {})["configured"], False)

    def test_vault_test_reports_every_step_and_cleans_up(self):
        self.configure()
        before = self.c.ok("vault.get", {})
        res = self.c.ok("vault.test", {})
        self.assertIs(res["ok"], True, res)
        self.assertEqual([s["step"] for s in res["steps"]],
                         ["login", "write", "read", "list"])
        for s in res["steps"]:
            self.assertIs(s["ok"], True, s)
            self.assertIsInstance(s["message"], str)
        # The test secret went under the configured path, and is gone.
        paths = {e["path"] for e in self.sim.log()
                 if e["path"] != LOGIN_PATH}
        self.assertTrue(paths)
        for p in paths:
            self.assertTrue(p.startswith("/v1/%s/data/%s/" % (MOUNT, PREFIX))
                            or p.startswith("/v1/%s/metadata/%s/"
                                            % (MOUNT, PREFIX)), p)
        self.assertEqual(self.sim.secrets(), {})
        self.assertEqual(self.c.ok("vault.get", {}), before)

        # With settings: a role that may not write.  The stored settings
        # do not change.
        res = self.c.ok("vault.test", {"role_id": RO_ROLE_ID,
                                       "secret_id": RO_SECRET_ID})
        self.assertIs(res["ok"], False)
        self.assertEqual([(s["step"], s["ok"]) for s in res["steps"][:2]],
                         [("login", True), ("write", False)])
        self.assertIn("permission denied", res["steps"][1]["message"])
        self.assertEqual(self.c.ok("vault.get", {}), before)

        # Wrong secret: the login step fails with Vault's message.
        res = self.c.ok("vault.test", {"secret_id": "wrong-" + SECRET_ID})
        self.assertIs(res["ok"], False)
        self.assertEqual(res["steps"][0]["step"], "login")
        self.assertIs(res["steps"][0]["ok"], False)
        self.assertIn("invalid role or secret ID", res["steps"][0]["message"])
        self.assertEqual(len(res["steps"]), 1, res)
        self.assertEqual(self.c.ok("vault.get", {}), before)

    def test_namespace_header(self):
        self.configure(namespace="team1", role_id=NS_ROLE_ID,
                       secret_id=NS_SECRET_ID)
        self.assertEqual(self.c.ok("vault.get", {})["namespace"], "team1")
        t = self.mktype("nsval")
        u = new_user()
        value = canary()
        self.set_value("nsval", u, value)
        self.assertEqual(self.sub_ok("nsval", u), value)
        self.assertOk(self.c.call("type.clear", {"type": "nsval"}))
        self.set_value("nsval", u, value)
        reqs = self.sim.requests_since(0)
        self.assertTrue(reqs)
        for e in reqs:
            self.assertEqual(e["namespace"], "team1", e)
            # Vault answers the LIST of an empty folder (the type's
            # accounts, here) with 404.
            if not (is_list(e) and e["status"] == 404):
                self.assertLess(e["status"], 400, e)
        self.assertEqual(self.sim.secrets(ns=""), {})
        self.assertEqual(sorted(self.sim.secrets(ns="team1")),
                         [data_path(t["uuid"], u)])
        self.assertIs(self.c.ok("vault.test", {})["ok"], True)
        # Clearing the namespace: the role is not in the root namespace.
        self.c.ok("vault.set", self.settings(
            namespace="", role_id=NS_ROLE_ID, secret_id=NS_SECRET_ID))
        self.assertIsNone(self.c.ok("vault.get", {})["namespace"])
        self.assertUnavailable(self.sub("nsval", u), "invalid role or secret")

    def test_vault_test_without_settings(self):
        """vault.test {} with nothing stored: not_configured ("settings are
        incomplete"), as rpc_vault_test intends, rather than a bad_request
        about a url the caller never sent."""
        self.assertError(self.c.call("vault.test", {}), "not_configured")
        # Partial settings still complete nothing: not_configured too.
        self.assertError(self.c.call("vault.test", {"url": self.sim.url,
                                                    "path": PATH}),
                         "not_configured")
        self.assertEqual(self.sim.requests_since(0), [])

    def test_not_configured_and_disabled(self):
        self.mktype("nc_v")
        self.mktype("nc_db", storage="db")
        u = new_user()
        self.set_value("nc_db", u, canary())

        def check(why):
            for method, p in (
                    ("cred.set", {"type": "nc_v", "user": u, "value": "x"}),
                    ("cred.delete", {"type": "nc_v", "user": u}),
                    ("type.clear", {"type": "nc_v"}),
                    ("substitute", self.sub_params("nc_v", u))):
                err = self.assertError(self.c.call(method, p),
                                       "not_configured")
                self.assertIn(why, err["message"].lower(), (method, err))
            st = self.status_of(u)
            self.assertIs(st["nc_db"]["filled"], True)
            self.assertIs(st["nc_v"]["filled"], False)
            self.assertEqual(st["nc_v"]["error"]["code"], "not_configured")
            h = self.health_vault()
            self.assertIs(h["enabled"], False)
            self.assertIs(h["authenticated"], False)
            return h

        h = check("not configured")
        self.assertIs(h["configured"], False)

        self.c.ok("vault.set", {"enabled": False, "url": self.sim.url,
                                "path": PATH})
        g = self.c.ok("vault.get", {})
        self.assertIs(g["configured"], True)
        self.assertIs(g["enabled"], False)
        h = check("disabled")
        self.assertIs(h["configured"], True)
        # Disabled with ids stored: still nothing is sent to Vault.
        self.configure(enabled=False)
        check("disabled")
        self.assertEqual(self.sim.requests_since(0), [])
        # Enabling works without a restart.
        self.configure()
        v = canary()
        self.set_value("nc_v", u, v)
        self.assertEqual(self.sub_ok("nc_v", u), v)


class ValidationTests(VaultCase):
    """Nothing malformed reaches Vault."""

    BAD_PATHS = [
        "secrets/ddp", "secrets", "data/ddp", "secrets/datax/ddp",
        "secrets/data/../x", "secrets/data/ddp/..", "../secrets/data/x",
        "secrets/data/./x", "secrets//data/x", "secrets/data//x",
        "/secrets/data/x", "secrets/data/x/", "secrets/data/a b",
        "secrets/data/x?list=true", "secrets/data/x#y",
        "secrets/data/%2e%2e", "secrets/data/x\n", "secrets/data/x\\y",
        "secrets/data/\u00fc", "secrets/data/x\x00y", "secrets/data/x:y",
        "secrets/data/x@y", "", "/", "secrets/data/x;y",
    ]

    def setUp(self):
        super().setUp()
        self.configure()
        self.wait_authenticated()       # the login vault.set starts is over
        self.before = self.c.ok("vault.get", {})

    def assertUnchanged(self):
        self.assertEqual(self.c.ok("vault.get", {}), self.before)

    def test_bad_paths(self):
        seq = self.sim.last_seq()
        for p in self.BAD_PATHS:
            with self.subTest(path=p):
                err = self.assertError(self.c.call(
                    "vault.set", self.settings(path=p)), "bad_request")
                self.assertIn("path", err["message"])
                self.assertError(self.c.call("vault.test", {"path": p}),
                                 "bad_request")
        err = self.assertError(self.c.call(
            "vault.set", self.settings(path="secrets/ddp")), "bad_request")
        self.assertIn("/data/", err["message"])
        self.assertUnchanged()
        self.assertEqual(self.sim.requests_since(seq), [])

    def test_bad_fields(self):
        seq = self.sim.last_seq()
        bad = [
            {"role_id": ""}, {"role_id": "a b"}, {"role_id": 'a"b'},
            {"role_id": "x" * 257}, {"secret_id": "a\nb"},
            {"secret_id": "s/ecret"}, {"secret_id": "x" * 257},
            {"secret_id": "\",\"role_id\":\"x"},
            {"url": "ftp://127.0.0.1:1"}, {"url": "file:///etc/passwd"},
            {"url": "http://user:pw@127.0.0.1:1"},
            {"url": "http://127.0.0.1:1/?x=1"}, {"url": "http://a b"},
            {"url": "127.0.0.1:8200"}, {"url": ""},
            {"timeout_ms": -1}, {"timeout_ms": 600001},
            {"timeout_ms": "5000"}, {"cache_seconds": -1},
            {"cache_seconds": 3601}, {"cache_seconds": "2"},
            {"ca_file": "relative/ca.pem"},
            {"namespace": "../x"}, {"namespace": "a//b"},
            {"namespace": "a b"}, {"enabled": "yes"},
            {"enabled": None}, {"url": None}, {"path": None},
            {"nonsense": 1},
        ]
        for over in bad:
            with self.subTest(over=over):
                p = self.settings()
                for k, v in over.items():
                    if v is None:
                        p.pop(k)
                    else:
                        p[k] = v
                self.assertError(self.c.call("vault.set", p), "bad_request")
        self.assertUnchanged()
        self.assertEqual(self.sim.requests_since(seq), [])

    def test_user_ids_cannot_leave_the_prefix(self):
        self.mktype("pfx")
        good = new_user()
        self.set_value("pfx", good, canary())       # logged in
        bad_users = [
            "../x", "../../" + good, good + "/..", good + "/../x",
            good.upper(), "a/b", good[:-1] + "/", good + "%2f",
            "%2e%2e", "", ".", "..", good + "\n", " " + good,
            good.replace("-", ""), "{" + good + "}", good + "x",
            "urn:uuid:" + good, good.replace("-", "/"),
        ]
        seq = self.sim.last_seq()
        for bu in bad_users:
            with self.subTest(user=bu):
                for method, p in (
                        ("cred.set", {"type": "pfx", "user": bu,
                                      "value": "v"}),
                        ("cred.delete", {"type": "pfx", "user": bu}),
                        ("cred.status", {"user": bu})):
                    self.assertError(self.c.call(method, p), "bad_request",
                                     "%s user=%r" % (method, bu))
                for role in ("initiator", "run_as"):
                    p = self.sub_params("pfx", good)
                    p["component"][role] = bu
                    err, _ = self.c.call("substitute", p)
                    self.assertIsNotNone(err, "substitute %s=%r" % (role, bu))
                    self.assertEqual(err["code"], "bad_request", err)
                p = self.sub_params("pfx", good)
                p["component"] = {"kind": "data_source",
                                  "system_account": bu,
                                  "credentials": [{"id": "tok",
                                                   "type": "pfx"}]}
                self.assertError(self.c.call("substitute", p), "bad_request")
        for bt in ("../pfx", "pfx/../x", "../../sys", "PFX/..", ""):
            self.assertIsNotNone(self.c.call(
                "cred.set", {"type": bt, "user": good, "value": "v"})[0])
        self.assertEqual(self.sim.requests_since(seq), [])

    def test_mount_root_path(self):
        """path "secrets/data" (KV v2 mount root): values at
        credentials/T/users/U in the mount, deleted by metadata."""
        self.configure(path=MOUNT + "/data")
        t = self.mktype("root")
        u = new_user()
        v = canary()
        self.set_value("root", u, v)
        key = "credentials/%s/users/%s" % (t["uuid"], u)
        self.assertEqual(sorted(self.sim.secrets()), [key])
        self.assertEqual(self.sub_ok("root", u), v)
        self.assertOk(self.c.call("cred.delete", {"type": "root", "user": u}))
        self.assertEqual(self.sim.secrets(), {})

    def test_nested_mount_and_data_like_segments(self):
        """Mounts whose names contain "data" or a "data..." segment: data and
        metadata URLs are built from the right /data segment."""
        cases = [("kv/prod", "kv/prod/data/ddp", "ddp/"),
                 ("mydata", "mydata/data/p", "p/"),
                 ("team/database", "team/database/data", ""),
                 ("store", "store/data/data/x", "data/x/")]
        for mount, path, prefix in cases:
            with self.subTest(path=path):
                self.sim.admin("POST", "mounts", {"mount": mount})
                self.configure(path=path)
                ident = "m_" + mount.replace("/", "_")
                t = self.mktype(ident)
                u = new_user()
                v = canary()
                self.set_value(ident, u, v)
                key = "%scredentials/%s/users/%s" % (prefix, t["uuid"], u)
                self.assertEqual(sorted(self.sim.secrets(mount=mount)),
                                 [key])
                self.assertEqual(self.sub_ok(ident, u), v)
                seq = self.sim.last_seq()
                self.assertOk(self.c.call("cred.delete",
                                          {"type": ident, "user": u}))
                self.assertEqual(
                    self.sim.secrets(mount=mount), {},
                    "cred.delete answered ok but the secret is still in "
                    "Vault; requests: %r" % [
                        (e["method"], e["path"], e["status"])
                        for e in self.sim.requests_since(seq)])


class TLSTests(VaultCase):
    """https with a test CA made with the openssl CLI."""

    @classmethod
    def setUpClass(cls):
        if not cbtest.have_binaries():
            return super().setUpClass()
        cls.pki = cbtest.make_tmpdir("cbpki")
        cls.ca, cls.ca_key = make_ca(cls.pki, "ca")
        cls.other_ca, _ = make_ca(cls.pki, "other")
        srv, key = make_server_cert(cls.pki, cls.ca, cls.ca_key)
        cls.sim_args = vaulttest.BASE_SIM_ARGS + ["--tls-cert", srv,
                                                  "--tls-key", key]
        cls.sim_kwargs = {"host": "127.0.0.1", "cafile": cls.ca}
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        if getattr(cls, "pki", None):
            cbtest.remove_tmpdir(cls.pki)

    def test_https_with_the_right_ca(self):
        self.assertTrue(self.sim.url.startswith("https://127.0.0.1:"))
        self.configure(ca_file=self.ca)
        self.assertEqual(self.c.ok("vault.get", {})["ca_file"], self.ca)
        t = self.mktype("tls")
        u = new_user()
        v = canary()
        self.set_value("tls", u, v)
        self.assertEqual(self.sub_ok("tls", u), v)
        self.assertIs(self.status_of(u)["tls"]["filled"], True)
        self.assertEqual(sorted(self.sim.secrets()), [data_path(t["uuid"], u)])
        res = self.c.ok("vault.test", {})
        self.assertIs(res["ok"], True, res)

    def check_refused(self, **over):
        self.configure(**over)
        self.mktype("tlsbad")
        u = new_user()
        err = self.assertUnavailable(self.c.call(
            "cred.set", {"type": "tlsbad", "user": u, "value": canary()}))
        self.assertIn("certificate", err["message"].lower(), err)
        err = self.assertUnavailable(self.sub("tlsbad", u))
        self.assertIn("certificate", err["message"].lower(), err)
        self.assertIn("certificate", self.health_vault()["last_error"].lower())
        res = self.c.ok("vault.test", {})
        self.assertIs(res["ok"], False)
        self.assertEqual(res["steps"][0]["step"], "login")
        self.assertIs(res["steps"][0]["ok"], False)
        self.assertIn("certificate", res["steps"][0]["message"].lower(), res)
        # Nothing got as far as an HTTP request.
        self.assertEqual(self.sim.requests_since(0), [])

    def test_another_ca_is_refused(self):
        self.check_refused(ca_file=self.other_ca)
        # vault.test with the right CA (and the ids again, as another
        # ca_file needs) passes; then fixing the settings makes calls work
        # without a restart.
        self.assertIs(self.c.ok("vault.test", {
            "ca_file": self.ca, "role_id": ROLE_ID,
            "secret_id": SECRET_ID})["ok"], True)
        self.configure(ca_file=self.ca)
        u = new_user()
        v = canary()
        self.set_value("tlsbad", u, v)
        self.assertEqual(self.sub_ok("tlsbad", u), v)

    def test_system_store_does_not_trust_the_test_ca(self):
        self.check_refused(ca_file=None)

    def test_host_name_is_verified(self):
        """The certificate covers IP 127.0.0.1 only: "localhost" fails."""
        url = self.sim.url.replace("127.0.0.1", "localhost")
        self.check_refused(ca_file=self.ca, url=url)


class EndpointBindingTests(VaultCase):
    """The stored AppRole ids are sent only to the url, namespace and
    ca_file they were stored with.  self.other is a second simulator that
    plays any other server: its log shows whether a login reached it."""

    other = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cbtest.have_binaries():
            cls.other = vaulttest.Sim(*vaulttest.BASE_SIM_ARGS).start()

    @classmethod
    def tearDownClass(cls):
        if cls.other is not None:
            cls.other.stop()
            cls.other = None
        super().tearDownClass()

    def setUp(self):
        if self.other is not None:
            self.other.reset()
        super().setUp()

    def assertRefusedFor(self, resp, what, missing="role_id and secret_id"):
        err = self.assertError(resp, "bad_request")
        self.assertIn("changing %s needs role_id and secret_id again"
                      % what, err["message"])
        self.assertIn("missing: %s" % missing, err["message"])
        return err

    def no_other_logins(self, seq):
        self.assertEqual(self.other.logins_since(seq), [],
                         "a login reached the other server")

    def read_doc(self):
        ((text,),) = self.d.store_rows("SELECT value FROM settings WHERE "
                                       "key = 'vault'")
        return json.loads(text)

    def write_doc(self, doc):
        self.d.store_execute("UPDATE settings SET value = ? WHERE "
                             "key = 'vault'", (json.dumps(doc),))

    def restart(self):
        self.c.close()
        self.d.restart()
        self.c = self.d.client()
        self.addCleanup(self.c.close)

    def test_vault_test_with_new_url_needs_new_secrets(self):
        self.configure()
        self.wait_authenticated()
        seq = self.other.last_seq()
        before = self.c.ok("vault.get", {})
        for extra in ({}, {"role_id": ROLE_ID}, {"secret_id": SECRET_ID}):
            missing = ("role_id and secret_id" if not extra else
                       "secret_id" if "role_id" in extra else "role_id")
            with self.subTest(given=sorted(extra)):
                p = dict({"url": self.other.url}, **extra)
                self.assertRefusedFor(self.c.call("vault.test", p), "url",
                                      missing)
        self.no_other_logins(seq)
        self.assertEqual(self.c.ok("vault.get", {}), before)
        # The same url written differently is not another endpoint.
        same = self.sim.url + "/"
        res = self.c.ok("vault.test", {"url": same})
        self.assertIs(res["ok"], True, res)
        self.no_other_logins(seq)

    def test_same_url_written_differently_is_not_a_change(self):
        """Host case, the default port and trailing slashes do not make
        another endpoint; another port, scheme, host or path does.
        Disabled, so that nothing logs in anywhere."""
        self.configure(enabled=False, url="http://vault.example")
        for url in ("http://VAULT.example/", "http://vault.example:80",
                    "http://Vault.Example:80//", "http://vault.example:"):
            with self.subTest(url=url):
                self.c.ok("vault.set", self.settings(
                    enabled=False, url=url, role_id=None, secret_id=None))
                self.assertEqual(self.c.ok("vault.get", {})["url"], url)
        for url in ("http://vault.example:8080", "https://vault.example",
                    "http://vault.example.org", "http://vault.example/v2",
                    "https://vault.example:80"):
            with self.subTest(url=url):
                self.assertRefusedFor(self.c.call("vault.set", self.settings(
                    enabled=False, url=url, role_id=None, secret_id=None)),
                    "url")
        self.assertEqual(self.sim.requests_since(0), [])

    def test_vault_set_with_new_url_needs_new_secrets(self):
        self.configure()
        self.mktype("bound")
        u = new_user()
        value = canary()
        self.set_value("bound", u, value)
        before = self.c.ok("vault.get", {})
        doc = self.read_doc()
        seq = self.other.last_seq()
        for over in ({}, {"enabled": False}, {"secret_id": None},
                     {"role_id": None}):
            with self.subTest(over=over):
                p = self.settings(url=self.other.url, **over)
                missing = ("secret_id" if "role_id" in p else
                           "role_id" if "secret_id" in p else
                           "role_id and secret_id")
                if "role_id" in p and "secret_id" in p:
                    p.pop("role_id")
                    p.pop("secret_id")
                    missing = "role_id and secret_id"
                self.assertRefusedFor(self.c.call("vault.set", p), "url",
                                      missing)
        self.assertEqual(self.c.ok("vault.get", {}), before)
        self.assertEqual(self.read_doc(), doc, "the stored row changed")
        # Later logins, after the token expired and after a restart, go
        # to the server the ids were stored for.
        seq_sim = self.sim.last_seq()
        self.sim.expire_tokens()
        self.assertEqual(self.sub_ok("bound", u), value)
        self.restart()
        self.assertEqual(self.sub_ok("bound", u), value)
        self.assertGreaterEqual(len(self.sim.logins_since(seq_sim)), 2)
        self.no_other_logins(seq)

    def test_namespace_and_ca_file_changes_need_new_secrets(self):
        self.configure()
        self.wait_authenticated()
        before = self.c.ok("vault.get", {})
        seq = self.sim.last_seq()
        changes = [("namespace", {"namespace": "team1"}),
                   ("ca_file", {"ca_file": "/etc/ssl/certs/"
                                "ca-certificates.crt"}),
                   ("url, namespace", {"url": self.other.url,
                                       "namespace": "team1"})]
        for what, over in changes:
            with self.subTest(change=what):
                self.assertRefusedFor(self.c.call("vault.set", self.settings(
                    role_id=None, secret_id=None, **over)), what)
                self.assertRefusedFor(self.c.call("vault.test", over), what)
        self.assertEqual(self.c.ok("vault.get", {}), before)
        self.assertEqual(self.sim.requests_since(seq), [],
                         "a refused call reached Vault")
        self.no_other_logins(0)

        # Stored with a namespace: clearing it is a change too.
        self.configure(namespace="team1", role_id=NS_ROLE_ID,
                       secret_id=NS_SECRET_ID)
        self.wait_authenticated()
        before = self.c.ok("vault.get", {})
        seq = self.sim.last_seq()
        self.assertRefusedFor(self.c.call("vault.set", self.settings(
            namespace="", role_id=None, secret_id=None)), "namespace")
        self.assertRefusedFor(self.c.call("vault.test", {"namespace": ""}),
                              "namespace")
        self.assertEqual(self.sim.requests_since(seq), [])
        self.assertEqual(self.c.ok("vault.get", {}), before)
        # Unchanged namespace and url: the stored ids are used.
        self.c.ok("vault.set", self.settings(namespace="team1", role_id=None,
                                             secret_id=None,
                                             timeout_ms=4000))
        self.assertIs(self.c.ok("vault.test", {})["ok"], True)

    def test_new_endpoint_with_both_ids_given_works(self):
        self.configure()
        self.wait_authenticated()
        seq = self.other.last_seq()
        res = self.c.ok("vault.test", {"url": self.other.url,
                                       "role_id": ROLE_ID,
                                       "secret_id": SECRET_ID})
        self.assertIs(res["ok"], True, res)
        self.assertEqual(len(self.other.logins_since(seq)), 1)
        self.assertEqual(self.c.ok("vault.get", {})["url"], self.sim.url)

        self.c.ok("vault.set", self.settings(url=self.other.url))
        self.assertEqual(self.c.ok("vault.get", {})["url"], self.other.url)
        self.mktype("moved")
        u = new_user()
        value = canary()
        self.set_value("moved", u, value)
        self.assertEqual(self.sub_ok("moved", u), value)
        t = self.types["moved"]
        self.assertEqual(sorted(self.other.secrets()), [data_path(t, u)])
        # The new binding holds across a restart.
        self.restart()
        self.assertEqual(self.sub_ok("moved", u), value)
        # The ids now belong to the new url: the old one needs them again.
        self.assertIs(self.read_doc().get("ids_bound"), True)
        seq_sim = self.sim.last_seq()
        self.assertRefusedFor(self.c.call("vault.test", {
            "url": self.sim.url}), "url")
        self.assertEqual(self.sim.logins_since(seq_sim), [])

        # Namespace and ca_file with both ids: accepted.
        self.c.ok("vault.set", self.settings(namespace="team1",
                                             role_id=NS_ROLE_ID,
                                             secret_id=NS_SECRET_ID))
        self.wait_authenticated()
        self.assertEqual(self.c.ok("vault.get", {})["namespace"], "team1")

    def test_url_altered_in_database_does_not_open_stored_ids(self):
        self.configure()
        self.wait_authenticated()
        self.c.close()
        self.d.stop()
        doc = self.read_doc()
        self.write_doc(dict(doc, url=self.other.url))
        seq = self.other.last_seq()
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        # Not configured: the ids did not open, so no login was started.
        h = self.health_vault()
        self.assertIs(h["configured"], False, h)
        self.assertIn("the stored Vault role_id cannot be opened",
                      self.d.log())
        g = self.c.ok("vault.get", {})
        self.assertEqual(g["url"], self.other.url)
        self.assertIs(g["role_id_set"], False)
        self.assertIs(g["secret_id_set"], False)
        # Nothing to log in with: vault.test is refused, nothing is sent.
        self.assertError(self.c.call("vault.test", {}), "not_configured")
        self.mktype("altered")
        self.assertError(self.c.call("cred.set", {
            "type": "altered", "user": new_user(), "value": canary()}),
            "not_configured")
        self.no_other_logins(seq)

        # The namespace and the ca_file are bound the same way.
        for over in ({"namespace": "team1"}, {"ca_file": "/etc/ssl/x.pem"}):
            with self.subTest(altered=over):
                self.c.close()
                self.d.stop()
                self.write_doc(dict(doc, **over))
                self.d.start()
                self.c = self.d.client()
                self.addCleanup(self.c.close)
                self.assertIn("cannot be opened", self.d.log())
                self.assertIs(self.health_vault()["configured"], False)

        # Put back as stored, the ids open again: nothing was lost.
        self.c.close()
        self.d.stop()
        self.write_doc(doc)
        seq_sim = self.sim.last_seq()
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.wait_authenticated()
        self.assertTrue(self.sim.logins_since(seq_sim))
        self.no_other_logins(seq)

    @staticmethod
    def sealer(master, keyver=1):
        """CB1 seal and open under master (as daemon/seal.c does)."""
        if not HAVE_CRYPTO:
            raise AssertionError("python3-cryptography is needed")
        aead = AESGCM(HKDF(algorithm=hashes.SHA256(), length=len(master),
                           salt=None, info=b"credbroker seal v1")
                      .derive(master))

        def aad(context):
            return ("credbroker/1|%d|%s" % (keyver, context)).encode()

        def seal(context, pt):
            nonce = os.urandom(12)
            ct = aead.encrypt(nonce, pt.encode(), aad(context))
            return "CB1:%d:%s" % (keyver,
                                  base64.b64encode(nonce + ct).decode())

        def opens(sealed, context):
            if not sealed.startswith("CB1:%d:" % keyver):
                return False
            raw = base64.b64decode(sealed.split(":", 2)[2])
            try:
                aead.decrypt(raw[:12], raw[12:], aad(context))
                return True
            except Exception:
                return False
        return seal, opens

    def bound_context(self, key, url=None):
        url = url or self.sim.url
        return ("vault/%s|url=%d:%s|namespace=0:|ca_file=0:"
                % (key, len(url), url))

    def start_with_unbound_settings(self):
        """Restart on settings as earlier releases saved them (contexts
        "vault/role_id" and "vault/secret_id", no "ids_bound"), check that
        they log in, and return the document."""
        seal, _ = self.sealer(self.d.key_bytes)
        self.configure()
        self.wait_authenticated()
        self.c.close()
        self.d.stop()
        old = {"enabled": True, "url": self.sim.url, "path": PATH,
               "timeout_ms": 5000, "cache_seconds": 0,
               "role_id": seal("vault/role_id", ROLE_ID),
               "secret_id": seal("vault/secret_id", SECRET_ID)}
        self.write_doc(old)
        seq = self.sim.last_seq()
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.wait_authenticated()
        self.assertTrue(self.sim.logins_since(seq))
        g = self.c.ok("vault.get", {})
        self.assertIs(g["role_id_set"], True)
        self.assertIs(g["secret_id_set"], True)
        return old

    def test_key_rotation_binds_settings_stored_without_binding(self):
        self.start_with_unbound_settings()
        new_key = cbtest.strong_key().encode()
        new_path = os.path.join(self.tmp, "new.key")
        cbtest.write_file(new_path, new_key + b"\n")
        self.c.ok("key.rotate", {"new_key_file": new_path})
        cbtest.poll_until(lambda: self.c.ok("key.status", {})["rotation"]
                          ["state"] == "done", 60 * cbtest.SCALE,
                          interval=0.05, what="rotation done")
        doc = self.read_doc()
        self.assertIs(doc.get("ids_bound"), True, doc)
        _, opens = self.sealer(new_key, keyver=2)
        for key in ("role_id", "secret_id"):
            self.assertTrue(opens(doc[key], self.bound_context(key)), key)
            self.assertFalse(opens(doc[key], "vault/" + key), key)
        # With the new key configured, the rotated settings log in.
        self.c.close()
        self.d.stop()
        self.d.key_file = new_path
        self.d.write_config()
        seq = self.sim.last_seq()
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.wait_authenticated()
        self.assertTrue(self.sim.logins_since(seq))

    def test_settings_without_binding_are_read_and_resealed(self):
        """A document saved before the ids were bound to their endpoint
        (contexts "vault/role_id" and "vault/secret_id") still works, and
        the next save binds them."""
        old = self.start_with_unbound_settings()
        seal, opens = self.sealer(self.d.key_bytes)

        # The next save binds them to url, namespace and ca_file.
        self.c.ok("vault.set", self.settings(role_id=None, secret_id=None,
                                             timeout_ms=4000))
        doc = self.read_doc()
        self.assertIs(doc.get("ids_bound"), True, doc)
        for key in ("role_id", "secret_id"):
            self.assertFalse(opens(doc[key], "vault/" + key))
            self.assertTrue(opens(doc[key], self.bound_context(key)))
        self.assertIs(self.c.ok("vault.test", {})["ok"], True)

        # Once bound, an unbound copy of the ids is not accepted instead.
        self.c.close()
        self.d.stop()
        self.write_doc(dict(old, ids_bound=True))
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.assertIn("cannot be opened", self.d.log())
        self.assertIs(self.health_vault()["configured"], False)

    def test_vault_set_and_test_are_audited_without_secrets(self):
        audit = os.path.join(self.tmp, "audit.log")
        self.c.close()
        self.d.stop()
        self.d.args += ["-o", "audit.file=" + audit]
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        # A canary secret_id: no such role, so the login fails; what
        # matters is that it appears in no log line.
        secret = "canary-" + os.urandom(12).hex()

        def audited():
            with open(audit, "rb") as f:
                data = f.read()
            return data, [(r["method"], r["outcome"]) for r in
                          map(json.loads, data.splitlines())
                          if r["method"].startswith("vault.")]

        self.configure(secret_id=secret)
        self.c.ok("vault.test", {})
        self.c.ok("vault.test", {"secret_id": secret + "x"})
        self.assertEqual(audited()[1], [("vault.set", "ok"),
                                        ("vault.test", "ok"),
                                        ("vault.test", "ok")])
        self.assertRefusedFor(self.c.call("vault.test", {
            "url": self.other.url}), "url")
        self.assertRefusedFor(self.c.call("vault.set", self.settings(
            url=self.other.url, role_id=None, secret_id=None)), "url")
        data, got = audited()
        self.assertEqual(got[3:], [("vault.test", "bad_request"),
                                   ("vault.set", "bad_request")])
        log = self.d.log()
        self.assertEqual(log.count("audit: method=vault.test"), 3, log)
        self.assertEqual(log.count("audit: method=vault.set"), 2, log)
        ids = [secret.encode(), (secret + "x").encode(), ROLE_ID.encode()]
        self.assertEqual(find_leaks(data, ids), [], "an id in the audit file")
        self.assertEqual(find_leaks(self.d.all_logs(), ids), [],
                         "an id in the daemon's stderr")


if __name__ == "__main__":
    cbtest.main()

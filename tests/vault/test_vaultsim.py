#!/usr/bin/python3
"""
Self-tests of the Vault simulator (vaultsim.py), written against Vault's
documented behaviour (see README.md), so that the simulator our client is
tested with is itself checked.  Standard library only; run with
/usr/bin/python3.  Takes a few seconds: clocks are moved with the admin API
rather than slept through, except where real expiry is the point.
"""

import http.client
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import vaultsim  # noqa: E402
from vaultsim import SimProcess  # noqa: E402

PD = "1 error occurred:\n\t* permission denied\n\n"
INVALID = "2 errors occurred:\n\t* permission denied\n\t* invalid token\n\n"
ENVELOPE = {"request_id", "lease_id", "renewable", "lease_duration", "data",
            "wrap_info", "warnings", "auth"}
CAP_RE = re.compile(r'^TTL of "[0-9hms]+" exceeded the effective max_ttl of '
                    r'"[0-9hms]+"; TTL value is capped accordingly$')

RO_POLICY = {"path": {
    "secrets/data/ro/*": {"capabilities": ["read"]},
    "secrets/metadata/ro/*": {"capabilities": ["list"]},
    "secrets/data/ro/hidden": {"capabilities": ["deny"]},
}}

SIM_ARGS = [
    "--namespace", "team1", "--namespace", "team2",
    "--kv-mount", "secrets", "--kv-mount", "kv/prod",
    "--kv-mount", "secrets@team1", "--kv-mount", "secrets@team2",
    "--policy", "ro=" + json.dumps(RO_POLICY),
    "--role", "app:s3cret:ttl=60,max_ttl=120",
    "--role", "short:sek:ttl=1,max_ttl=3",
    "--role", "capped:sek:ttl=2,max_ttl=5",
    "--role", "overcap:sek:ttl=10,max_ttl=4",
    "--role", "fixed:sek:ttl=30,renewable=false",
    "--role", "reader:sek:policies=ro",
    "--role", "nsrole:nssek:namespace=team1,secret_ids=other",
]


def rfc3339_ok(s):
    return re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", s)


class SimTestCase(unittest.TestCase):
    sim = None

    @classmethod
    def setUpClass(cls):
        cls.sim = SimProcess(*SIM_ARGS).start()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()

    def setUp(self):
        self.sim.admin("POST", "reset")

    # helpers
    def req(self, *a, **kw):
        return self.sim.request(*a, **kw)

    def login(self, role="app", secret="s3cret", namespace=None):
        r = self.sim.login(role, secret, namespace=namespace)
        self.assertEqual(r.status, 200, r)
        return r.json["auth"]["client_token"]

    def write(self, token, path, data, **kw):
        return self.req("POST", "/v1/secrets/data/" + path, {"data": data},
                        token=token, **kw)

    def assertErrors(self, r, status, errors):
        self.assertEqual(r.status, status, r)
        self.assertEqual(r.json, {"errors": errors}, r)


class SysTests(SimTestCase):
    def test_health(self):
        r = self.req("GET", "/v1/sys/health")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.json["initialized"])
        self.assertFalse(r.json["sealed"])
        self.assertFalse(r.json["standby"])
        self.assertIsInstance(r.json["server_time_utc"], int)
        self.assertEqual(r.headers["content-type"], "application/json")
        r = self.req("HEAD", "/v1/sys/health")
        self.assertEqual((r.status, r.body), (200, b""))

    def test_seal_status(self):
        r = self.req("GET", "/v1/sys/seal-status")
        self.assertEqual(r.status, 200)
        for k in ("type", "initialized", "sealed", "t", "n", "progress",
                  "version"):
            self.assertIn(k, r.json)
        self.assertFalse(r.json["sealed"])

    def test_sealed(self):
        token = self.login()
        self.sim.admin("POST", "seal")
        self.assertErrors(self.sim.login("app", "s3cret"), 503,
                          ["Vault is sealed"])
        self.assertErrors(self.req("GET", "/v1/secrets/data/x", token=token),
                          503, ["Vault is sealed"])
        self.assertErrors(self.req("POST", "/v1/auth/token/renew-self",
                                   token=token), 503, ["Vault is sealed"])
        r = self.req("GET", "/v1/sys/health")
        self.assertEqual(r.status, 503)
        self.assertTrue(r.json["sealed"])
        r = self.req("GET", "/v1/sys/health?sealedcode=200")
        self.assertEqual(r.status, 200)
        r = self.req("GET", "/v1/sys/seal-status")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.json["sealed"])
        self.sim.admin("POST", "unseal")
        self.assertEqual(self.req("GET", "/v1/secrets/data/x",
                                  token=token).status, 404)
        self.sim.admin("POST", "faults", {"sealed": True})
        self.assertEqual(self.req("GET", "/v1/sys/health").status, 503)

    def test_not_v1_and_methods(self):
        self.assertErrors(self.req("GET", "/"), 404, [])
        self.assertErrors(self.req("GET", "/v2/sys/health"), 404, [])
        self.assertErrors(self.req("FROB", "/v1/secrets/data/x"), 405, [])
        r = self.req("GET", "/v1/auth/approle/login")
        self.assertEqual(r.status, 405)
        self.assertIn("unsupported operation", r.errors[0])
        token = self.login()
        # A LIST names a folder ("data/x/"), which no data path matches.
        r = self.req("LIST", "/v1/secrets/data/x", token=token)
        self.assertEqual(r.status, 404)
        self.assertIn("Invalid path", r.json["warnings"][0])
        r = self.req("POST", "/v1/auth/token/lookup-self", token=token)
        self.assertEqual(r.status, 200)
        r = self.req("DELETE", "/v1/auth/token/renew-self", token=token)
        self.assertEqual(r.status, 405)
        self.assertIn("unsupported operation", r.errors[0])

    def test_admin_needs_token(self):
        r = self.req("GET", "/__sim/state")
        self.assertEqual(r.status, 403)
        r = self.req("GET", "/__sim/state",
                     headers={vaultsim.ADMIN_HEADER: "wrong"})
        self.assertEqual(r.status, 403)
        self.assertIn("counters", self.sim.admin("GET", "state"))

    def test_go_json(self):
        token = self.login()
        self.write(token, "html", {"v": "<a&b>\u00e9"})
        r = self.req("GET", "/v1/secrets/data/html", token=token)
        self.assertIn(b"\\u003ca\\u0026b\\u003e", r.body)
        self.assertIn("\u00e9".encode(), r.body)
        self.assertEqual(r.json["data"]["data"]["v"], "<a&b>\u00e9")
        self.assertTrue(r.body.endswith(b"\n"))

    def test_keepalive(self):
        conn = self.sim.connection()
        try:
            for _ in range(5):
                r = self.req("GET", "/v1/sys/health", conn=conn)
                self.assertEqual(r.status, 200)
                self.assertNotEqual(r.headers.get("connection"), "close")
            token = self.sim.request(
                "POST", "/v1/auth/approle/login",
                {"role_id": "app", "secret_id": "s3cret"},
                conn=conn).json["auth"]["client_token"]
            self.assertEqual(self.req("DELETE", "/v1/secrets/data/x",
                                      token=token, conn=conn).status, 204)
            self.assertEqual(self.req("GET", "/v1/sys/health",
                                      conn=conn).status, 200)
        finally:
            conn.close()
        conns = {e["conn"] for e in self.sim.admin("GET", "log")["entries"]}
        self.assertEqual(len(conns), 1)

    def test_chunked_body(self):
        conn = self.sim.connection()
        try:
            body = json.dumps({"role_id": "app", "secret_id": "s3cret"})
            conn.request("POST", "/v1/auth/approle/login",
                         body=iter([body[:5].encode(), body[5:].encode()]),
                         encode_chunked=True,
                         headers={"Transfer-Encoding": "chunked"})
            r = conn.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
        finally:
            conn.close()


class AppRoleTests(SimTestCase):
    def test_login(self):
        r = self.sim.login("app", "s3cret")
        self.assertEqual(r.status, 200, r)
        self.assertTrue(ENVELOPE <= set(r.json), r.json)
        self.assertIsNone(r.json["data"])
        self.assertEqual(r.json["lease_duration"], 0)
        auth = r.json["auth"]
        self.assertRegex(auth["client_token"], r"^hvs\.[A-Za-z0-9]{24}$")
        self.assertTrue(auth["accessor"])
        self.assertEqual(auth["lease_duration"], 60)
        self.assertTrue(auth["renewable"])
        self.assertEqual(auth["policies"], ["default", "sim-all"])
        self.assertEqual(auth["token_policies"], ["default", "sim-all"])
        self.assertEqual(auth["metadata"], {"role_name": "app"})
        self.assertEqual(auth["token_type"], "service")
        c = self.sim.admin("GET", "counters")
        self.assertEqual((c["logins_ok"], c["logins_failed"]), (1, 0))

    def test_login_put_and_two_tokens(self):
        a = self.login()
        r = self.req("PUT", "/v1/auth/approle/login",
                     {"role_id": "app", "secret_id": "s3cret"})
        self.assertEqual(r.status, 200)
        self.assertNotEqual(a, r.json["auth"]["client_token"])

    def test_wrong_credentials(self):
        self.assertErrors(self.sim.login("app", "wrong"), 400,
                          ["invalid role or secret ID"])
        self.assertErrors(self.sim.login("nobody", "s3cret"), 400,
                          ["invalid role or secret ID"])
        self.assertErrors(self.req("POST", "/v1/auth/approle/login",
                                   {"secret_id": "s3cret"}), 400,
                          ["missing role_id"])
        self.assertErrors(self.req("POST", "/v1/auth/approle/login",
                                   {"role_id": "app"}), 400,
                          ["missing secret_id"])
        r = self.req("POST", "/v1/auth/approle/login", "{not json")
        self.assertEqual(r.status, 400)
        self.assertTrue(r.errors[0].startswith("failed to parse JSON input"))
        c = self.sim.admin("GET", "counters")
        self.assertEqual((c["logins_ok"], c["logins_failed"]), (0, 4))

    def test_login_capped_by_max_ttl(self):
        r = self.sim.login("overcap", "sek")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["auth"]["lease_duration"], 4)
        self.assertEqual(len(r.json["warnings"]), 1)
        self.assertRegex(r.json["warnings"][0], CAP_RE)
        self.assertIn('TTL of "10s"', r.json["warnings"][0])

    def test_deny_login(self):
        self.sim.admin("POST", "faults", {"deny_login": {"count": 1}})
        self.assertErrors(self.sim.login("app", "s3cret"), 400,
                          ["invalid role or secret ID"])
        self.assertEqual(self.sim.login("app", "s3cret").status, 200)
        self.sim.admin("POST", "faults", {"deny_login": {"on": True}})
        for _ in range(3):
            self.assertEqual(self.sim.login("app", "s3cret").status, 400)
        self.sim.admin("DELETE", "faults/deny_login")
        self.assertEqual(self.sim.login("app", "s3cret").status, 200)
        c = self.sim.admin("GET", "counters")
        self.assertEqual((c["logins_ok"], c["logins_failed"]), (2, 4))
        self.assertEqual(c["faults"]["deny_login"], 4)

    def test_roles_at_run_time(self):
        self.sim.admin("POST", "roles", {"role_id": "new", "secret_id": "x",
                                         "ttl": "1m", "max_ttl": "2m",
                                         "renewable": False})
        r = self.sim.login("new", "x")
        self.assertEqual(r.json["auth"]["lease_duration"], 60)
        self.assertFalse(r.json["auth"]["renewable"])
        self.sim.admin("POST", "roles", {"role_id": "new", "secret_id": "y"})
        self.assertEqual(self.sim.login("new", "x").status, 400)
        self.assertEqual(self.sim.login("new", "y").status, 200)
        self.sim.admin("DELETE", "roles/new")
        self.assertEqual(self.sim.login("new", "y").status, 400)
        self.sim.admin("POST", "reset")
        self.assertEqual(self.sim.login("new", "y").status, 400)


class TokenTests(SimTestCase):
    def test_missing_and_unknown_token(self):
        self.assertErrors(self.req("GET", "/v1/secrets/data/x"), 403, [PD])
        self.assertErrors(self.req("GET", "/v1/secrets/data/x",
                                   token="hvs.nope"), 403, [INVALID])
        self.assertErrors(self.req("GET", "/v1/auth/token/lookup-self",
                                   token="hvs.nope"), 403, [INVALID])
        self.assertErrors(self.req("POST", "/v1/auth/token/renew-self",
                                   token="hvs.nope"), 403, [INVALID])

    def test_plain_error_style(self):
        self.sim.admin("POST", "config", {"error_style": "plain"})
        self.assertErrors(self.req("GET", "/v1/secrets/data/x",
                                   token="hvs.nope"), 403,
                          ["permission denied"])
        self.assertErrors(self.req("GET", "/v1/secrets/data/x"), 403,
                          ["permission denied"])

    def test_bearer_header(self):
        token = self.login()
        r = self.req("GET", "/v1/auth/token/lookup-self",
                     headers={"Authorization": "Bearer " + token})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["data"]["id"], token)

    def test_lookup_self(self):
        token = self.login()
        r = self.req("GET", "/v1/auth/token/lookup-self", token=token)
        self.assertEqual(r.status, 200)
        d = r.json["data"]
        self.assertEqual(d["id"], token)
        self.assertEqual(d["creation_ttl"], 60)
        self.assertIn(d["ttl"], (59, 60))
        self.assertTrue(d["renewable"])
        self.assertEqual(d["policies"], ["default", "sim-all"])
        self.assertEqual(d["path"], "auth/approle/login")
        self.assertTrue(rfc3339_ok(d["expire_time"]), d["expire_time"])
        self.assertTrue(rfc3339_ok(d["issue_time"]))
        self.assertEqual(self.req("POST", "/v1/auth/token/lookup-self",
                                  token=token).status, 200)

    def test_expiry_in_real_time(self):
        token = self.login("short", "sek")
        self.assertEqual(self.req("GET", "/v1/auth/token/lookup-self",
                                  token=token).status, 200)
        time.sleep(1.2)
        self.assertErrors(self.req("GET", "/v1/secrets/data/x", token=token),
                          403, [INVALID])
        self.assertErrors(self.req("POST", "/v1/auth/token/renew-self",
                                   token=token), 403, [INVALID])

    def test_renew_self(self):
        token = self.login("capped", "sek")
        r = self.req("POST", "/v1/auth/token/renew-self", token=token)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.json["auth"]["lease_duration"], 2)
        self.assertEqual(r.json["auth"]["client_token"], token)
        self.assertIsNone(r.json["warnings"])
        self.sim.admin("POST", "clock", {"advance": 1.5})
        r = self.req("POST", "/v1/auth/token/renew-self", {"increment": 1},
                     token=token)
        self.assertEqual(r.json["auth"]["lease_duration"], 1)
        r = self.req("POST", "/v1/auth/token/renew-self",
                     {"increment": "1s"}, token=token)
        self.assertEqual(r.json["auth"]["lease_duration"], 1)
        r = self.req("POST", "/v1/auth/token/renew-self",
                     {"increment": "soon"}, token=token)
        self.assertEqual(r.status, 400)
        c = self.sim.admin("GET", "counters")
        self.assertEqual((c["renewals_ok"], c["renewals_failed"]), (3, 1))

    def test_renew_capped_at_max_ttl(self):
        token = self.login("capped", "sek")     # ttl 2, max_ttl 5
        self.sim.admin("POST", "clock", {"advance": 1.5})
        r = self.req("POST", "/v1/auth/token/renew-self",
                     {"increment": "1h"}, token=token)
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.json["auth"]["lease_duration"], (3, 4))
        self.assertEqual(len(r.json["warnings"]), 1, r.json)
        self.assertRegex(r.json["warnings"][0], CAP_RE)
        self.assertTrue(r.json["warnings"][0].startswith('TTL of "1h"'))
        # Still valid just before issue + max_ttl ...
        self.sim.admin("POST", "clock", {"advance": 3.3})
        r = self.req("GET", "/v1/auth/token/lookup-self", token=token)
        self.assertEqual(r.status, 200)
        self.assertLessEqual(r.json["data"]["ttl"], 1)
        # ... and never after it, however it was renewed.
        self.sim.admin("POST", "clock", {"advance": 0.3})
        self.assertErrors(self.req("POST", "/v1/auth/token/renew-self",
                                   token=token), 403, [INVALID])
        self.assertErrors(self.req("GET", "/v1/secrets/data/x", token=token),
                          403, [INVALID])

    def test_expired_without_renewal(self):
        token = self.login("capped", "sek")
        self.sim.admin("POST", "clock", {"advance": 2.1})
        self.assertErrors(self.req("GET", "/v1/auth/token/lookup-self",
                                   token=token), 403, [INVALID])

    def test_non_renewable(self):
        r = self.sim.login("fixed", "sek")
        self.assertFalse(r.json["auth"]["renewable"])
        token = r.json["auth"]["client_token"]
        self.assertErrors(self.req("POST", "/v1/auth/token/renew-self",
                                   token=token), 400,
                          ["lease is not renewable"])
        self.assertEqual(self.req("GET", "/v1/auth/token/lookup-self",
                                  token=token).json["data"]["renewable"],
                         False)

    def test_expire_all_tokens(self):
        a, b = self.login(), self.login("reader", "sek")
        r = self.sim.admin("POST", "tokens/expire")
        self.assertEqual(r["expired"], 2)
        for t in (a, b):
            self.assertErrors(self.req("GET", "/v1/auth/token/lookup-self",
                                       token=t), 403, [INVALID])
        c = self.login()
        self.assertEqual(self.req("GET", "/v1/auth/token/lookup-self",
                                  token=c).status, 200)
        states = {t["id"]: t["state"]
                  for t in self.sim.admin("GET", "tokens")["tokens"]}
        self.assertEqual(states, {a: "expired", b: "expired", c: "valid"})

    def test_revoke_self(self):
        token = self.login()
        self.assertEqual(self.req("POST", "/v1/auth/token/revoke-self",
                                  token=token).status, 204)
        self.assertErrors(self.req("GET", "/v1/auth/token/lookup-self",
                                   token=token), 403, [INVALID])

    def test_unmounted_path(self):
        token = self.login()
        self.assertErrors(
            self.req("GET", "/v1/nowhere/data/x", token=token), 404,
            ['no handler for route "nowhere/data/x". route entry not found.'])


class KVTests(SimTestCase):
    def test_write_read_versions(self):
        token = self.login()
        r = self.write(token, "app/one", {"value": "a"})
        self.assertEqual(r.status, 200, r)
        self.assertTrue(ENVELOPE <= set(r.json))
        self.assertEqual(set(r.json["data"]),
                         {"created_time", "custom_metadata", "deletion_time",
                          "destroyed", "version"})
        self.assertEqual(r.json["data"]["version"], 1)
        self.assertEqual(r.json["data"]["deletion_time"], "")
        self.assertFalse(r.json["data"]["destroyed"])
        self.assertTrue(rfc3339_ok(r.json["data"]["created_time"]))
        r = self.req("PUT", "/v1/secrets/data/app/one",
                     {"data": {"value": "b"}}, token=token)
        self.assertEqual(r.json["data"]["version"], 2)

        r = self.req("GET", "/v1/secrets/data/app/one", token=token)
        self.assertEqual(r.status, 200)
        self.assertTrue(ENVELOPE <= set(r.json))
        self.assertEqual(r.json["data"]["data"], {"value": "b"})
        md = r.json["data"]["metadata"]
        self.assertEqual(md["version"], 2)
        self.assertEqual(md["deletion_time"], "")
        self.assertFalse(md["destroyed"])
        r = self.req("GET", "/v1/secrets/data/app/one?version=1", token=token)
        self.assertEqual(r.json["data"]["data"], {"value": "a"})
        self.assertEqual(r.json["data"]["metadata"]["version"], 1)
        self.assertErrors(self.req("GET", "/v1/secrets/data/app/one?version=7",
                                   token=token), 404, [])
        self.assertEqual(self.req("GET", "/v1/secrets/data/app/one?version=x",
                                  token=token).status, 400)

        r = self.req("GET", "/v1/secrets/metadata/app/one", token=token)
        self.assertEqual(r.json["data"]["current_version"], 2)
        self.assertEqual(r.json["data"]["oldest_version"], 1)
        self.assertEqual(sorted(r.json["data"]["versions"]), ["1", "2"])
        c = self.sim.admin("GET", "counters")
        self.assertEqual((c["kv_writes"], c["kv_reads"]), (2, 4))

    def test_missing(self):
        token = self.login()
        r = self.req("GET", "/v1/secrets/data/nothing/here", token=token)
        self.assertEqual((r.status, r.body), (404, b'{"errors":[]}\n'))
        self.assertErrors(self.req("GET", "/v1/secrets/metadata/nothing",
                                   token=token), 404, [])

    def test_soft_delete(self):
        token = self.login()
        self.write(token, "d", {"value": "1"})
        self.write(token, "d", {"value": "2"})
        r = self.req("DELETE", "/v1/secrets/data/d", token=token)
        self.assertEqual((r.status, r.body), (204, b""))
        r = self.req("GET", "/v1/secrets/data/d", token=token)
        self.assertEqual(r.status, 404, r)
        self.assertNotIn("errors", r.json)
        self.assertIsNone(r.json["data"]["data"])
        md = r.json["data"]["metadata"]
        self.assertEqual(md["version"], 2)
        self.assertTrue(rfc3339_ok(md["deletion_time"]))
        self.assertFalse(md["destroyed"])
        # Older versions stay readable; the key is still listed.
        r = self.req("GET", "/v1/secrets/data/d?version=1", token=token)
        self.assertEqual(r.json["data"]["data"], {"value": "1"})
        r = self.req("LIST", "/v1/secrets/metadata", token=token)
        self.assertEqual(r.json["data"]["keys"], ["d"])
        # Deleting again changes nothing; a write makes a new version.
        self.assertEqual(self.req("DELETE", "/v1/secrets/data/d",
                                  token=token).status, 204)
        r = self.write(token, "d", {"value": "3"})
        self.assertEqual(r.json["data"]["version"], 3)
        self.assertEqual(self.req("GET", "/v1/secrets/data/d", token=token)
                         .json["data"]["data"], {"value": "3"})
        # Deleting a missing secret is not an error.
        self.assertEqual(self.req("DELETE", "/v1/secrets/data/none",
                                  token=token).status, 204)

    def test_delete_undelete_destroy(self):
        token = self.login()
        for v in "abc":
            self.write(token, "v", {"value": v})
        self.assertEqual(self.req("POST", "/v1/secrets/delete/v",
                                  {"versions": [2, 3]}, token=token).status,
                         204)
        self.assertEqual(self.req("GET", "/v1/secrets/data/v?version=2",
                                  token=token).status, 404)
        self.assertEqual(self.req("POST", "/v1/secrets/undelete/v",
                                  {"versions": [2]}, token=token).status, 204)
        self.assertEqual(self.req("GET", "/v1/secrets/data/v?version=2",
                                  token=token).status, 200)
        self.assertEqual(self.req("POST", "/v1/secrets/destroy/v",
                                  {"versions": [1]}, token=token).status, 204)
        r = self.req("GET", "/v1/secrets/data/v?version=1", token=token)
        self.assertEqual(r.status, 404)
        self.assertTrue(r.json["data"]["metadata"]["destroyed"])
        self.assertIsNone(self.sim.admin("GET", "secrets")[""]["secrets"]
                          ["v"]["versions"]["1"]["data"])
        self.assertErrors(self.req("POST", "/v1/secrets/delete/v", {},
                                   token=token), 400,
                          ["no version number provided"])

    def test_list(self):
        token = self.login()
        for p in ("a/x", "a/b/y", "c", "a/b/z/w"):
            self.write(token, p, {"value": p})
        r = self.req("LIST", "/v1/secrets/metadata", token=token)
        self.assertEqual(r.status, 200)
        self.assertTrue(ENVELOPE <= set(r.json))
        self.assertEqual(r.json["data"], {"keys": ["a/", "c"]})
        for path in ("/v1/secrets/metadata/", "/v1/secrets/metadata?list=true",
                     "/v1/secrets/metadata/?list=1"):
            method = "LIST" if "list=" not in path else "GET"
            r = self.req(method, path, token=token)
            self.assertEqual(r.json["data"]["keys"], ["a/", "c"], path)
        r = self.req("LIST", "/v1/secrets/metadata/a", token=token)
        self.assertEqual(r.json["data"]["keys"], ["b/", "x"])
        r = self.req("GET", "/v1/secrets/metadata/a/b/?list=true", token=token)
        self.assertEqual(r.json["data"]["keys"], ["y", "z/"])
        self.assertErrors(self.req("LIST", "/v1/secrets/metadata/none",
                                   token=token), 404, [])
        self.assertErrors(self.req("LIST", "/v1/secrets/metadata/c",
                                   token=token), 404, [])
        self.assertEqual(self.sim.admin("GET", "counters")["kv_lists"], 8)

    def test_metadata_delete(self):
        token = self.login()
        self.write(token, "m/x", {"value": "1"})
        self.write(token, "m/x", {"value": "2"})
        self.write(token, "m/y", {"value": "1"})
        r = self.req("DELETE", "/v1/secrets/metadata/m/x", token=token)
        self.assertEqual((r.status, r.body), (204, b""))
        self.assertErrors(self.req("GET", "/v1/secrets/data/m/x",
                                   token=token), 404, [])
        self.assertErrors(self.req("GET", "/v1/secrets/data/m/x?version=1",
                                   token=token), 404, [])
        self.assertEqual(self.req("LIST", "/v1/secrets/metadata/m",
                                  token=token).json["data"]["keys"], ["y"])
        self.assertEqual(self.req("DELETE", "/v1/secrets/metadata/m/y",
                                  token=token).status, 204)
        self.assertErrors(self.req("LIST", "/v1/secrets/metadata/m",
                                   token=token), 404, [])
        self.assertEqual(self.req("DELETE", "/v1/secrets/metadata/m/none",
                                  token=token).status, 204)
        self.assertEqual(self.sim.admin("GET", "secrets")[""]["secrets"], {})
        r = self.write(token, "m/x", {"value": "again"})
        self.assertEqual(r.json["data"]["version"], 1)

    def test_cas(self):
        token = self.login()
        r = self.req("POST", "/v1/secrets/data/c",
                     {"data": {"v": 1}, "options": {"cas": 0}}, token=token)
        self.assertEqual(r.status, 200)
        self.assertErrors(self.req("POST", "/v1/secrets/data/c",
                                   {"data": {"v": 2}, "options": {"cas": 0}},
                                   token=token), 400,
                          ["check-and-set parameter did not match the "
                           "current version"])
        r = self.req("POST", "/v1/secrets/data/c",
                     {"data": {"v": 2}, "options": {"cas": 1}}, token=token)
        self.assertEqual(r.json["data"]["version"], 2)

    def test_bad_writes(self):
        token = self.login()
        self.assertErrors(self.req("POST", "/v1/secrets/data/w",
                                   {"value": "x"}, token=token), 400,
                          ["no data provided"])
        self.assertEqual(self.req("POST", "/v1/secrets/data/w",
                                  {"data": "x"}, token=token).status, 400)
        self.assertEqual(self.req("POST", "/v1/secrets/data/w", "[1]",
                                  token=token).status, 400)
        r = self.req("POST", "/v1/secrets/data/w", "{", token=token)
        self.assertEqual(r.status, 400)
        self.assertTrue(r.errors[0].startswith("failed to parse JSON input"))
        r = self.req("POST", "/v1/secrets/data/w",
                     {"data": {"value": "x"}, "value": "x"}, token=token)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json["warnings"], [
            "Endpoint ignored these unrecognized parameters: [value]"])

    def test_invalid_kv_paths(self):
        token = self.login()
        for method, path in (("GET", "/v1/secrets/app/x"),
                             ("POST", "/v1/secrets/app/x"),
                             ("GET", "/v1/secrets/data/dir/"),
                             ("GET", "/v1/secrets/data/")):
            r = self.req(method, path, {"data": {}} if method == "POST"
                         else None, token=token)
            self.assertEqual(r.status, 404, (method, path, r))
            self.assertIsNone(r.json["data"])
            self.assertIn("Invalid path for a versioned K/V secrets engine",
                          r.json["warnings"][0])

    def test_nested_mount(self):
        token = self.login()
        r = self.req("POST", "/v1/kv/prod/data/x", {"data": {"a": 1}},
                     token=token)
        self.assertEqual(r.status, 200)
        self.assertIn("x", self.sim.admin("GET", "secrets")[""]["kv/prod"])
        self.assertEqual(self.req("GET", "/v1/kv/data/x",
                                  token=token).status, 404)

    def test_max_versions(self):
        token = self.login()
        for i in range(12):
            self.write(token, "many", {"i": i})
        md = self.req("GET", "/v1/secrets/metadata/many",
                      token=token).json["data"]
        self.assertEqual((md["current_version"], md["oldest_version"]),
                         (12, 3))
        self.assertEqual(len(md["versions"]), 10)
        self.assertErrors(self.req("GET", "/v1/secrets/data/many?version=2",
                                   token=token), 404, [])

    def test_patch(self):
        token = self.login()
        self.write(token, "p", {"a": 1, "b": 2})
        r = self.req("PATCH", "/v1/secrets/data/p", {"data": {"b": None,
                                                             "c": 3}},
                     token=token)
        self.assertEqual(r.status, 415)
        r = self.req("PATCH", "/v1/secrets/data/p",
                     {"data": {"b": None, "c": 3}}, token=token,
                     headers={"Content-Type": "application/merge-patch+json"})
        self.assertEqual(r.json["data"]["version"], 2)
        self.assertEqual(self.req("GET", "/v1/secrets/data/p", token=token)
                         .json["data"]["data"], {"a": 1, "c": 3})

    def test_dump_and_credbroker_layout(self):
        token = self.login()
        t, u = str(uuid.uuid4()), str(uuid.uuid4())
        path = "cb/credentials/%s/users/%s" % (t, u)
        self.write(token, path, {"value": "sealed:v1:abc"})
        self.sim.admin("POST", "secrets", {"mount": "secrets",
                                           "path": "seeded",
                                           "data": {"value": "s"}})
        dump = self.sim.admin("GET", "secrets")
        self.assertEqual(sorted(dump), ["", "team1", "team2"])
        entry = dump[""]["secrets"][path]
        self.assertEqual(entry["current_version"], 1)
        self.assertEqual(entry["versions"]["1"]["data"],
                         {"value": "sealed:v1:abc"})
        self.assertEqual(self.req("GET", "/v1/secrets/data/seeded",
                                  token=token).json["data"]["data"],
                         {"value": "s"})
        self.assertEqual(self.req("LIST", "/v1/secrets/metadata/cb/"
                                  "credentials/%s/users" % t,
                                  token=token).json["data"]["keys"], [u])

    def test_keep_secrets_on_reset(self):
        token = self.login()
        self.write(token, "kept", {"v": 1})
        self.sim.admin("POST", "reset", {"keep_secrets": True})
        self.assertIn("kept", self.sim.admin("GET", "secrets")[""]["secrets"])
        self.sim.admin("POST", "reset")
        self.assertEqual(self.sim.admin("GET", "secrets")[""]["secrets"], {})


class PolicyTests(SimTestCase):
    def test_read_only_policy(self):
        for p in ("ro/a", "ro/hidden", "rw/b"):
            self.sim.admin("POST", "secrets", {"mount": "secrets", "path": p,
                                               "data": {"value": p}})
        token = self.login("reader", "sek")
        r = self.req("GET", "/v1/secrets/data/ro/a", token=token)
        self.assertEqual(r.status, 200)
        for method, path, body in (
                ("GET", "/v1/secrets/data/ro/hidden", None),
                ("GET", "/v1/secrets/data/rw/b", None),
                ("POST", "/v1/secrets/data/ro/a", {"data": {"v": 1}}),
                ("POST", "/v1/secrets/data/ro/new", {"data": {"v": 1}}),
                ("DELETE", "/v1/secrets/data/ro/a", None),
                ("DELETE", "/v1/secrets/metadata/ro/a", None),
                ("LIST", "/v1/secrets/metadata", None),
                ("GET", "/v1/nowhere/x", None)):
            self.assertErrors(self.req(method, path, body, token=token), 403,
                              [PD])
        r = self.req("LIST", "/v1/secrets/metadata/ro", token=token)
        self.assertEqual(r.json["data"]["keys"], ["a", "hidden"])
        # The built-in default policy still allows renewing and lookups.
        self.assertEqual(self.req("POST", "/v1/auth/token/renew-self",
                                  token=token).status, 200)
        self.assertEqual(self.req("GET", "/v1/auth/token/lookup-self",
                                  token=token).json["data"]["policies"],
                         ["default", "ro"])

    def test_policy_at_run_time(self):
        token = self.login("reader", "sek")
        self.sim.admin("PUT", "policies/ro", {"path": {
            "secrets/data/*": {"capabilities": ["create"]}}})
        self.assertEqual(self.write(token, "n", {"v": 1}).status, 200)
        self.assertEqual(self.write(token, "n", {"v": 2}).status, 403)

    def test_priority_rules(self):
        pol = [vaultsim.Policy("p", {"path": {
            "a/*": {"capabilities": ["read"]},
            "a/b/*": {"capabilities": ["deny"]},
            "a/+/c": {"capabilities": ["update"]},
            "a/b/c": {"capabilities": ["list"]}}})]
        allows = vaultsim.acl_allows
        self.assertTrue(allows(pol, "a/x", "read"))
        self.assertFalse(allows(pol, "a/b/x", "read"))
        self.assertTrue(allows(pol, "a/z/c", "update"))
        self.assertFalse(allows(pol, "a/z/c", "read"))
        self.assertTrue(allows(pol, "a/b/c", "list"))
        self.assertFalse(allows(pol, "b", "read"))


class NamespaceTests(SimTestCase):
    def test_isolation(self):
        # The role lives in team1: without the header there is no such role.
        self.assertErrors(self.sim.login("nsrole", "nssek"), 400,
                          ["invalid role or secret ID"])
        token = self.login("nsrole", "nssek", namespace="team1")
        ns_id = self.sim.admin("GET", "state")["namespaces"]["team1"]["id"]
        self.assertTrue(token.endswith("." + ns_id), token)
        self.assertEqual(self.login("nsrole", "other", namespace="team1/")
                         [-6:], "." + ns_id)
        r = self.write(token, "x", {"value": "1"}, namespace="team1")
        self.assertEqual(r.status, 200)
        r = self.req("GET", "/v1/secrets/data/x", token=token,
                     namespace="team1")
        self.assertEqual(r.json["data"]["data"], {"value": "1"})
        # The header and a leading path part are equivalent.
        r = self.req("GET", "/v1/team1/secrets/data/x", token=token)
        self.assertEqual(r.status, 200)
        # Forgetting the header, or naming another namespace, finds nothing.
        self.assertErrors(self.req("GET", "/v1/secrets/data/x", token=token),
                          403, [PD])
        self.assertErrors(self.req("GET", "/v1/secrets/data/x", token=token,
                                   namespace="team2"), 403, [PD])
        self.assertErrors(self.req("POST", "/v1/auth/token/renew-self",
                                   token=token), 403, [PD])
        self.assertEqual(self.req("POST", "/v1/auth/token/renew-self",
                                  token=token, namespace="team1").status, 200)
        dump = self.sim.admin("GET", "secrets")
        self.assertEqual(list(dump["team1"]["secrets"]), ["x"])
        self.assertEqual(dump[""]["secrets"], {})
        self.assertEqual(dump["team2"]["secrets"], {})
        # A root-namespace token writing without the header lands in root.
        root = self.login()
        self.write(root, "x", {"value": "root"})
        self.assertEqual(self.req("GET", "/v1/secrets/data/x", token=root)
                         .json["data"]["data"], {"value": "root"})
        self.assertEqual(self.req("GET", "/v1/secrets/data/x", token=token,
                                  namespace="team1")
                         .json["data"]["data"], {"value": "1"})
        log = self.sim.admin("GET", "log")["entries"]
        self.assertEqual(log[0]["namespace"], None)
        self.assertEqual(log[1]["namespace"], "team1")

    def test_unknown_namespace(self):
        token = self.login()
        r = self.req("GET", "/v1/secrets/data/x", token=token,
                     namespace="nope")
        self.assertEqual(r.status, 404)
        self.assertIn("no handler for route", r.errors[0])

    def test_namespace_at_run_time(self):
        self.sim.admin("POST", "namespaces", {"name": "late"})
        self.sim.admin("POST", "mounts", {"mount": "kv", "namespace": "late"})
        self.sim.admin("POST", "roles", {"role_id": "l", "secret_id": "s",
                                         "namespace": "late"})
        token = self.login("l", "s", namespace="late")
        self.assertEqual(self.req("POST", "/v1/kv/data/a", {"data": {"v": 1}},
                                  token=token, namespace="late").status, 200)


class FaultTests(SimTestCase):
    def test_fail_count(self):
        self.sim.admin("POST", "faults", {"fail": {"count": 2}})
        for _ in range(2):
            r = self.req("GET", "/v1/sys/health")
            self.assertEqual(r.status, 500)
            self.assertEqual(len(r.errors), 1)
        self.assertEqual(self.req("GET", "/v1/sys/health").status, 200)
        c = self.sim.admin("GET", "counters")
        self.assertEqual(c["faults"]["fail"], 2)
        self.assertEqual(c["statuses"], {"500": 2, "200": 1})

    def test_fail_prefix_status_body(self):
        token = self.login()
        self.sim.admin("POST", "faults", {"fail": {
            "on": True, "status": 502, "prefix": "/v1/auth/token/",
            "body": "<html>bad gateway</html>", "content_type": "text/html"}})
        r = self.req("POST", "/v1/auth/token/renew-self", token=token)
        self.assertEqual((r.status, r.body), (502, b"<html>bad gateway</html>"))
        self.assertEqual(r.headers["content-type"], "text/html")
        self.assertEqual(self.write(token, "x", {"v": 1}).status, 200)
        self.sim.admin("POST", "faults", {"fail": {
            "count": 1, "status": 503, "errors": ["Vault is sealed"],
            "methods": ["GET"]}})
        self.assertEqual(self.write(token, "x", {"v": 1}).status, 200)
        self.assertErrors(self.req("GET", "/v1/secrets/data/x", token=token),
                          503, ["Vault is sealed"])
        self.assertEqual(self.req("GET", "/v1/secrets/data/x",
                                  token=token).status, 200)

    def test_delay(self):
        self.sim.admin("POST", "faults", {"delay": {
            "seconds": 0.5, "prefix": "/v1/secrets/", "count": 1}})
        t0 = time.monotonic()
        self.assertEqual(self.req("GET", "/v1/sys/health").status, 200)
        self.assertLess(time.monotonic() - t0, 0.4)
        token = self.login()
        t0 = time.monotonic()
        self.assertEqual(self.req("GET", "/v1/secrets/data/x",
                                  token=token).status, 404)
        self.assertGreaterEqual(time.monotonic() - t0, 0.45)
        t0 = time.monotonic()
        self.req("GET", "/v1/secrets/data/x", token=token)
        self.assertLess(time.monotonic() - t0, 0.4)

    def test_delay_timeout_and_release(self):
        self.sim.admin("POST", "faults", {"delay": {"seconds": 30}})
        conn = self.sim.connection(timeout=0.3)
        with self.assertRaises((socket.timeout, TimeoutError)):
            self.req("GET", "/v1/sys/health", conn=conn)
        conn.close()
        result = {}

        def slow():
            result["r"] = self.req("GET", "/v1/sys/health", timeout=20)
        th = threading.Thread(target=slow)
        t0 = time.monotonic()
        th.start()
        time.sleep(0.3)
        self.sim.admin("DELETE", "faults/delay")
        th.join(10)
        self.assertLess(time.monotonic() - t0, 5)
        self.assertEqual(result["r"].status, 200)

    def test_drop(self):
        self.sim.admin("POST", "faults", {"drop": {"count": 1}})
        with self.assertRaises((http.client.HTTPException, ConnectionError)):
            self.req("GET", "/v1/sys/health")
        self.assertEqual(self.req("GET", "/v1/sys/health").status, 200)
        self.sim.admin("POST", "faults", {"drop": {"on": True,
                                                   "mode": "reset"}})
        for _ in range(2):
            with self.assertRaises((http.client.HTTPException,
                                    ConnectionError)):
                self.req("GET", "/v1/sys/health")
        self.sim.admin("DELETE", "faults")
        self.assertEqual(self.req("GET", "/v1/sys/health").status, 200)
        log = self.sim.admin("GET", "log")["entries"]
        self.assertEqual([e["status"] for e in log],
                         ["dropped", 200, "dropped", "dropped", 200])
        self.assertEqual(self.sim.admin("GET", "counters")["faults"]["drop"],
                         3)

    def test_malformed(self):
        token = self.login()
        self.write(token, "x", {"value": "v"})
        for kind in ("truncate", "garbage", "empty", "wrong_type"):
            self.sim.admin("POST", "faults", {"malformed": {"kind": kind}})
            r = self.req("GET", "/v1/secrets/data/x", token=token)
            self.assertEqual(r.status, 200, kind)
            self.assertFalse(isinstance(r.json, dict), (kind, r))
        r = self.req("GET", "/v1/secrets/data/x", token=token)
        self.assertEqual(r.json["data"]["data"], {"value": "v"})

    def test_faults_listed_and_cleared(self):
        self.sim.admin("POST", "faults", {"fail": {"count": 3},
                                          "delay": {"seconds": 0.01}})
        f = self.sim.admin("GET", "faults")
        self.assertEqual(f["fail"]["remaining"], 3)
        self.assertIsNone(f["delay"]["remaining"])
        self.sim.admin("DELETE", "faults")
        self.assertEqual(self.sim.admin("GET", "faults"), {})
        r = self.sim.admin("POST", "faults", {"bogus": {}}, expect=400)
        self.assertIn("unknown fault", r["error"])


class LogTests(SimTestCase):
    def test_request_log_and_counters(self):
        self.req("GET", "/v1/sys/health")
        token = self.login()
        self.write(token, "a", {"v": 1}, namespace="")
        self.req("GET", "/v1/secrets/data/a", token="hvs.bogus")
        entries = self.sim.admin("GET", "log")["entries"]
        self.assertEqual([(e["method"], e["path"], e["token"], e["status"])
                          for e in entries],
                         [("GET", "/v1/sys/health", False, 200),
                          ("POST", "/v1/auth/approle/login", False, 200),
                          ("POST", "/v1/secrets/data/a", True, 200),
                          ("GET", "/v1/secrets/data/a", True, 403)])
        self.assertEqual(entries[2]["token_state"], "valid")
        self.assertEqual(entries[2]["namespace"], "")
        self.assertEqual(entries[3]["token_state"], "unknown")
        last = entries[-1]["seq"]
        self.req("GET", "/v1/sys/health")
        later = self.sim.admin("GET", "log?since=%d" % last)["entries"]
        self.assertEqual(len(later), 1)
        c = self.sim.admin("GET", "counters")
        self.assertEqual(c["requests"]["POST /v1/auth/approle/login"], 1)
        self.assertEqual(c["requests"]["GET /v1/sys/health"], 2)
        self.assertEqual(c["total"], 5)
        self.sim.admin("POST", "counters/reset")
        self.sim.admin("DELETE", "log")
        self.assertEqual(self.sim.admin("GET", "counters")["total"], 0)
        self.assertEqual(self.sim.admin("GET", "log")["entries"], [])


    def wait_counter(self, key, want, deadline=10):
        end = time.monotonic() + deadline
        while True:
            got = self.sim.admin("GET", "counters")[key]
            if got == want or time.monotonic() > end:
                return got
            time.sleep(0.02)

    def test_connection_counters_count_client_connections_open_at_once(self):
        # Connections closed by earlier tests may still be winding down.
        self.assertEqual(self.wait_counter("connections_open", 0), 0)
        self.sim.admin("POST", "counters/reset")
        conns = [self.sim.connection() for _ in range(3)]
        try:
            for c in conns:
                r = self.req("GET", "/v1/sys/health", conn=c)
                self.assertEqual(r.status, 200, r)
            # A second request on an open connection is not a new one.
            self.req("GET", "/v1/sys/health", conn=conns[0])
            c = self.sim.admin("GET", "counters")
            self.assertEqual((c["connections_open"], c["connections_max"],
                              c["connections_total"]), (3, 3, 3))
            conns[0].close()
            conns[1].close()
            self.assertEqual(self.wait_counter("connections_open", 1), 1)
            c = self.sim.admin("GET", "counters")
            # Admin requests are not client connections.
            self.assertEqual((c["connections_max"], c["connections_total"]),
                             (3, 3))
            self.sim.admin("POST", "counters/reset")
            c = self.sim.admin("GET", "counters")
            self.assertEqual((c["connections_open"], c["connections_max"],
                              c["connections_total"]), (1, 1, 0))
            self.req("GET", "/v1/sys/health")      # opens and closes one
            self.assertEqual(self.wait_counter("connections_open", 1), 1)
            c = self.sim.admin("GET", "counters")
            self.assertEqual((c["connections_max"], c["connections_total"]),
                             (2, 1))
        finally:
            for c in conns:
                c.close()


class HelperTests(unittest.TestCase):
    def test_durations(self):
        self.assertEqual(vaultsim.parse_duration("1h30m"), 5400)
        self.assertEqual(vaultsim.parse_duration("90"), 90)
        self.assertEqual(vaultsim.parse_duration(15), 15)
        self.assertEqual(vaultsim.parse_duration("1.5s"), 1.5)
        for bad in ("1x", "h", "-1", True):
            with self.assertRaises(ValueError):
                vaultsim.parse_duration(bad)
        self.assertEqual(vaultsim.human_duration(3600), "1h")
        self.assertEqual(vaultsim.human_duration(3605), "1h5s")
        self.assertEqual(vaultsim.human_duration(90), "1m30s")
        self.assertEqual(vaultsim.human_duration(120), "2m")
        self.assertEqual(vaultsim.human_duration(7260), "2h1m")
        self.assertEqual(vaultsim.human_duration(0.5), "0s")

    def test_bad_command_line(self):
        for args in (["--role", "nosecret"], ["--policy", "x={"],
                     ["--kv-mount", "sys"], ["--kv-mount", "a@nons"]):
            p = subprocess.run(["/usr/bin/python3",
                                os.path.join(HERE, "vaultsim.py")] + args,
                               capture_output=True, timeout=20)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(b"vaultsim:", p.stderr)


@unittest.skipUnless(shutil.which("openssl"), "openssl not installed")
class TLSTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="vaultsim-tls-")
        d = cls.tmp

        def run(*args):
            subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                           capture_output=True, timeout=60)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes"]
        run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=vaultsim test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        run("req", *ec, "-keyout", "server.key", "-out", "server.csr",
            "-subj", "/CN=localhost")
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                    "basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n")
        run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem",
            "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem",
            "-days", "2", "-extfile", "ext.cnf")
        cls.sim = SimProcess(
            "--tls-cert", os.path.join(d, "server.pem"),
            "--tls-key", os.path.join(d, "server.key"),
            "--kv-mount", "secrets", "--role", "app:s3cret",
            cafile=os.path.join(d, "ca.pem")).start()

    @classmethod
    def tearDownClass(cls):
        cls.sim.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_tls_round_trip(self):
        self.assertTrue(self.sim.tls)
        self.assertTrue(self.sim.url.startswith("https://localhost:"))
        conn = self.sim.connection()
        try:
            r = self.sim.request("POST", "/v1/auth/approle/login",
                                 {"role_id": "app", "secret_id": "s3cret"},
                                 conn=conn)
            self.assertEqual(r.status, 200)
            token = r.json["auth"]["client_token"]
            r = self.sim.request("POST", "/v1/secrets/data/t",
                                 {"data": {"v": 1}}, token=token, conn=conn)
            self.assertEqual(r.status, 200)
            r = self.sim.request("GET", "/v1/secrets/data/t", token=token,
                                 conn=conn)
            self.assertEqual(r.json["data"]["data"], {"v": 1})
            self.assertIsNotNone(conn.sock.version())
        finally:
            conn.close()
        # By IP address too (the certificate names 127.0.0.1).
        ctx = ssl.create_default_context(cafile=self.sim.cafile)
        c = http.client.HTTPSConnection("127.0.0.1", self.sim.port,
                                        context=ctx, timeout=10)
        c.request("GET", "/v1/sys/health")
        self.assertEqual(c.getresponse().status, 200)
        c.close()

    def test_untrusted_and_plain_clients_fail(self):
        ctx = ssl.create_default_context()      # system roots only
        with self.assertRaises(ssl.SSLError):
            self.sim.request("GET", "/v1/sys/health",
                             conn=self.sim.connection(context=ctx))
        # A plain HTTP client gets no HTTP answer; the server keeps serving.
        c = http.client.HTTPConnection("127.0.0.1", self.sim.port,
                                       timeout=5)
        with self.assertRaises((http.client.HTTPException, ConnectionError,
                                socket.timeout)):
            c.request("GET", "/v1/sys/health")
            c.getresponse()
        c.close()
        self.assertEqual(self.sim.request("GET", "/v1/sys/health").status,
                         200)


if __name__ == "__main__":
    unittest.main(verbosity=2)

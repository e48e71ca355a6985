"""
Protocol tests (SPEC sections 6 and 7): every method through a plain
msgpack-rpc client, exact result shapes and error codes, pipelining, and
hostile input (malformed msgpack, oversized messages, non-array messages,
truncated messages, huge declared lengths) that must only ever affect the
connection that sent it.
"""

import os
import re
import secrets
import socket
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import (UUID_RE, TIME_RE, SERVER_RE, PERMISSIONS, ERROR_CODES,
                    new_user, pack_request)  # noqa: E402
import msgpack  # noqa: E402

TYPE_KEYS = {"uuid", "ident", "name", "description", "storage",
             "destinations", "created_at", "updated_at", "default_account",
             "ca_file"}
STATUS_KEYS = {"type", "ident", "name", "storage", "filled", "updated_at",
               "source", "account"}


class ProtocolBase(cbtest.DaemonTestCase):

    def create_type(self, ident, name=None, storage="db", **kw):
        p = {"ident": ident, "name": name or ("Type " + ident),
             "storage": storage}
        p.update(kw)
        return self.c.ok("type.create", p)

    def assertType(self, t, ident=None):
        self.assertIsInstance(t, dict)
        self.assertEqual(set(t.keys()) - {"notice"}, TYPE_KEYS, t)
        self.assertRegex(t["uuid"], UUID_RE)
        self.assertRegex(t["created_at"], TIME_RE)
        self.assertRegex(t["updated_at"], TIME_RE)
        self.assertIn(t["storage"], ("db", "vault"))
        self.assertIsInstance(t["destinations"], list)
        self.assertIsInstance(t["name"], str)
        self.assertIsInstance(t["description"], str)
        if ident is not None:
            self.assertEqual(t["ident"], ident)

    def send_quietly(self, cl, data):
        """Send, tolerating the daemon closing the connection early."""
        try:
            cl.send_raw(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


class TestHelloHealth(ProtocolBase):

    def test_hello(self):
        res = self.assertOk(self.c.call("hello", {}))
        self.assertEqual(res["protocol"], 1)
        self.assertRegex(res["server"], SERVER_RE)
        self.assertEqual(sorted(res["permissions"]), sorted(PERMISSIONS))
        self.assertEqual(res["uid"], os.getuid())

    def test_hello_empty_params_array_and_nil(self):
        # params may be an empty array or nil: both mean an empty map.
        for raw in (msgpack.packb([0, 77, "hello", []]),
                    msgpack.packb([0, 78, "hello", None])):
            self.c.send_raw(raw)
        for i in (77, 78):
            m = self.c.wait_response(i)
            self.assertIsNone(m[2], m)
            self.assertEqual(m[3]["protocol"], 1)

    def test_hello_unknown_param(self):
        err = self.assertError(self.c.call("hello", {"bogus": 1}),
                               "bad_request")
        self.assertIn("bogus", err["message"])

    def test_health(self):
        res = self.assertOk(self.c.call("health", {}))
        for k in ("status", "uptime", "store", "vault"):
            self.assertIn(k, res)
        self.assertIsInstance(res["uptime"], (int, float))
        self.assertGreaterEqual(res["uptime"], 0)
        v = res["vault"]
        self.assertIsInstance(v, dict)
        for k in ("configured", "enabled", "authenticated", "token_ttl",
                  "last_error"):
            self.assertIn(k, v)
        self.assertIs(v["configured"], False)
        self.assertIs(v["enabled"], False)
        self.assertIs(v["authenticated"], False)

    def test_unknown_method(self):
        err = self.assertError(self.c.call("no.such_method", {}),
                               "bad_request")
        self.assertIn("no.such_method", err["message"])
        # Methods of later phases that are not in this build behave alike,
        # and the connection stays usable.
        self.assertOk(self.c.call("hello", {}))

    def test_response_envelope(self):
        mid = 4242
        self.c.send_raw(pack_request(mid, "hello", {}))
        m = self.c.recv()
        self.assertIsInstance(m, list)
        self.assertEqual(len(m), 4)
        self.assertEqual(m[0], 1)
        self.assertEqual(m[1], mid)
        self.assertIsNone(m[2])
        # error slot shape
        self.c.send_raw(pack_request(mid + 1, "type.get", {"type": "nope"}))
        m = self.c.recv()
        self.assertEqual(m[:2], [1, mid + 1])
        self.assertEqual(set(m[2].keys()), {"code", "message"})
        self.assertIn(m[2]["code"], ERROR_CODES)
        self.assertIsNone(m[3])

    def test_large_msgid(self):
        mid = 0xFFFFFFFF
        self.c.send_raw(pack_request(mid, "hello", {}))
        m = self.c.wait_response(mid)
        self.assertIsNone(m[2])


class TestTypes(ProtocolBase):

    def test_create_and_get(self):
        before = self.assertOk(self.c.call("type.list", {}))
        self.assertEqual(before, [])
        t = self.create_type("github", name="GitHub token",
                             description="Personal access token",
                             destinations=["https://api.github.com"])
        self.assertType(t, "github")
        self.assertEqual(t["name"], "GitHub token")
        self.assertEqual(t["description"], "Personal access token")
        self.assertEqual(t["storage"], "db")
        self.assertEqual(t["destinations"], ["https://api.github.com"])
        self.assertEqual(t["created_at"], t["updated_at"])
        for ref in ("github", t["uuid"]):
            g = self.assertOk(self.c.call("type.get", {"type": ref}))
            self.assertEqual(g, t)

    def test_create_defaults(self):
        t = self.create_type("minimal")
        self.assertType(t, "minimal")
        self.assertEqual(t["description"], "")
        self.assertEqual(t["destinations"], [])
        v = self.create_type("in_vault", storage="vault")
        self.assertEqual(v["storage"], "vault")

    def test_create_ident_rules(self):
        good = ["a", "z9", "a_b_c", "x" + "y" * 63, "A", "Github", "a-b",
                "a.b"]
        for ident in good:
            self.create_type(ident)
        bad = ["", "1abc", "_abc", "-ab", ".ab", "a b", "x" * 65,
               "caf\u00e9", "a/b", "../etc",
               "deadbeef-0000-4000-8000-000000000000"]
        for ident in bad:
            self.assertError(self.c.call("type.create",
                                         {"ident": ident, "name": "n",
                                          "storage": "db"}),
                             "bad_request", "ident %r accepted" % ident)
        idents = sorted(t["ident"] for t in
                        self.assertOk(self.c.call("type.list", {})))
        self.assertEqual(idents, sorted(good))

    def test_create_duplicate(self):
        t = self.create_type("dup")
        self.assertError(self.c.call("type.create",
                                     {"ident": "dup", "name": "other",
                                      "storage": "db"}), "conflict")
        lst = self.assertOk(self.c.call("type.list", {}))
        self.assertEqual(lst, [t])

    def test_create_bad_params(self):
        base = {"ident": "ok", "name": "n", "storage": "db"}
        cases = [
            dict(base, ident=123),
            dict(base, name=5),
            dict(base, name=""),
            dict(base, storage="s3"),
            dict(base, storage=1),
            dict(base, description=["x"]),
            dict(base, destinations="https://a.example"),
            dict(base, destinations=[1]),
            dict(base, extra="x"),
            {"name": "n", "storage": "db"},          # missing ident
            {"ident": "ok", "storage": "db"},        # missing name
            {"ident": b"ok", "name": "n", "storage": "db"},  # bin ident
        ]
        for p in cases:
            self.assertError(self.c.call("type.create", p), "bad_request",
                             "accepted %r" % (p,))
        # Unknown parameter: the message names it.
        err = self.assertError(self.c.call("type.create",
                                           dict(base, colour="red")),
                               "bad_request")
        self.assertIn("colour", err["message"])
        self.assertEqual(self.assertOk(self.c.call("type.list", {})), [])

    def test_params_not_a_map(self):
        # params array holding something other than a map
        for bad in ([["x"]], ["ident"], [1], {"ident": "x"}, "x"):
            mid = self.c.new_id()
            self.c.send_raw(msgpack.packb([0, mid, "type.list", bad]))
            m = self.c.wait_response(mid)
            self.assertIsNotNone(m[2], "params %r accepted" % (bad,))
            self.assertEqual(m[2]["code"], "bad_request")
        self.assertOk(self.c.call("hello", {}))

    def test_get_errors(self):
        self.assertError(self.c.call("type.get", {"type": "missing"}),
                         "not_found")
        self.assertError(self.c.call("type.get", {"type": new_user()}),
                         "not_found")
        self.assertError(self.c.call("type.get", {}), "bad_request")
        self.assertError(self.c.call("type.get", {"type": 7}), "bad_request")
        self.assertError(self.c.call("type.get", {"type": "x", "y": 1}),
                         "bad_request")

    def test_list(self):
        a = self.create_type("alpha")
        b = self.create_type("beta", storage="vault")
        lst = self.assertOk(self.c.call("type.list", {}))
        self.assertIsInstance(lst, list)
        self.assertEqual(len(lst), 2)
        for t in lst:
            self.assertType(t)
        self.assertEqual({t["uuid"]: t for t in lst},
                         {a["uuid"]: a, b["uuid"]: b})
        self.assertError(self.c.call("type.list", {"x": 1}), "bad_request")

    def test_update(self):
        t = self.create_type("svc", description="d1")
        u = self.assertOk(self.c.call("type.update",
                                      {"type": "svc", "name": "Service",
                                       "description": "d2",
                                       "destinations": ["https://a.example",
                                                        "https://*.b.example:8443"]}))
        self.assertType(u, "svc")
        self.assertNotIn("notice", u)
        self.assertEqual(u["uuid"], t["uuid"])
        self.assertEqual(u["name"], "Service")
        self.assertEqual(u["description"], "d2")
        self.assertEqual(u["storage"], "db")
        self.assertEqual(u["destinations"], ["https://a.example",
                                             "https://*.b.example:8443"])
        self.assertEqual(u["created_at"], t["created_at"])
        self.assertGreaterEqual(u["updated_at"], t["updated_at"])
        # Partial update by uuid leaves the rest alone.
        u2 = self.assertOk(self.c.call("type.update",
                                       {"type": t["uuid"],
                                        "destinations": []}))
        self.assertEqual(u2["destinations"], [])
        self.assertEqual(u2["name"], "Service")
        self.assertEqual(u2["description"], "d2")
        g = self.assertOk(self.c.call("type.get", {"type": "svc"}))
        self.assertEqual(g, {k: v for k, v in u2.items() if k != "notice"})

    def test_update_storage_notice(self):
        self.create_type("moving")
        u = self.assertOk(self.c.call("type.update",
                                      {"type": "moving", "storage": "vault"}))
        self.assertEqual(u["storage"], "vault")
        self.assertIsInstance(u.get("notice"), str)
        self.assertTrue(u["notice"])
        g = self.assertOk(self.c.call("type.get", {"type": "moving"}))
        self.assertEqual(g["storage"], "vault")
        self.assertNotIn("notice", g)
        # Same storage again: not a change, no notice.
        u = self.assertOk(self.c.call("type.update",
                                      {"type": "moving", "storage": "vault"}))
        self.assertNotIn("notice", u)

    def test_update_storage_hides_old_values(self):
        self.create_type("flip")
        user = new_user()
        self.assertOk(self.c.call("cred.set", {"type": "flip", "user": user,
                                               "value": "v"}))
        self.assertOk(self.c.call("type.update",
                                  {"type": "flip", "storage": "vault"}))
        st = {e["ident"]: e for e in
              self.assertOk(self.c.call("cred.status", {"user": user}))}
        self.assertIs(st["flip"]["filled"], False)

    def test_update_errors(self):
        self.create_type("exists")
        self.assertError(self.c.call("type.update",
                                     {"type": "nope", "name": "x"}),
                         "not_found")
        for p in ({"type": "exists", "name": 1},
                  {"type": "exists", "name": ""},
                  {"type": "exists", "storage": "disk"},
                  {"type": "exists", "destinations": "x"},
                  {"type": "exists", "ident": "renamed"},
                  {"type": "exists", "bogus": True},
                  {"name": "x"}):
            self.assertError(self.c.call("type.update", p), "bad_request",
                             "accepted %r" % (p,))
        g = self.assertOk(self.c.call("type.get", {"type": "exists"}))
        self.assertEqual(g["name"], "Type exists")

    def test_delete(self):
        t = self.create_type("gone")
        self.assertEqual(self.assertOk(self.c.call("type.delete",
                                                   {"type": "gone"})), {})
        self.assertError(self.c.call("type.get", {"type": "gone"}),
                         "not_found")
        self.assertError(self.c.call("type.get", {"type": t["uuid"]}),
                         "not_found")
        self.assertError(self.c.call("type.delete", {"type": "gone"}),
                         "not_found")
        # By uuid
        t = self.create_type("gone2")
        self.assertOk(self.c.call("type.delete", {"type": t["uuid"]}))
        self.assertEqual(self.assertOk(self.c.call("type.list", {})), [])

    def test_delete_with_values(self):
        self.create_type("held")
        user = new_user()
        self.assertOk(self.c.call("cred.set", {"type": "held", "user": user,
                                               "value": "v"}))
        self.assertError(self.c.call("type.delete", {"type": "held"}),
                         "conflict")
        self.assertError(self.c.call("type.delete",
                                     {"type": "held", "force": False}),
                         "conflict")
        self.assertError(self.c.call("type.delete",
                                     {"type": "held", "force": "yes"}),
                         "bad_request")
        self.assertOk(self.c.call("type.get", {"type": "held"}))
        self.assertEqual(self.assertOk(self.c.call(
            "type.delete", {"type": "held", "force": True})), {})
        self.assertError(self.c.call("type.get", {"type": "held"}),
                         "not_found")
        # Recreating the ident starts empty.
        self.create_type("held")
        st = self.assertOk(self.c.call("cred.status", {"user": user}))
        self.assertEqual(len(st), 1)
        self.assertIs(st[0]["filled"], False)

    def test_clear(self):
        self.create_type("many")
        self.create_type("other")
        users = [new_user() for _ in range(5)]
        for u in users:
            self.assertOk(self.c.call("cred.set", {"type": "many", "user": u,
                                                   "value": "v-" + u}))
        self.assertOk(self.c.call("cred.set", {"type": "other",
                                               "user": users[0],
                                               "value": "keep"}))
        self.assertEqual(self.assertOk(self.c.call("type.clear",
                                                   {"type": "many"})),
                         {"removed": 5})
        for u in users:
            st = {e["ident"]: e for e in
                  self.assertOk(self.c.call("cred.status", {"user": u}))}
            self.assertIs(st["many"]["filled"], False)
        st = {e["ident"]: e for e in
              self.assertOk(self.c.call("cred.status", {"user": users[0]}))}
        self.assertIs(st["other"]["filled"], True)
        self.assertEqual(self.assertOk(self.c.call("type.clear",
                                                   {"type": "many"})),
                         {"removed": 0})
        self.assertError(self.c.call("type.clear", {"type": "nope"}),
                         "not_found")
        self.assertError(self.c.call("type.clear", {}), "bad_request")
        # Type survives a clear; delete without force now succeeds.
        self.assertOk(self.c.call("type.get", {"type": "many"}))
        self.assertOk(self.c.call("type.delete", {"type": "many"}))


class TestCreds(ProtocolBase):

    def setUp(self):
        super().setUp()
        self.t_db = self.create_type("token")
        self.t_db2 = self.create_type("password")
        self.t_vault = self.create_type("vaulted", storage="vault")

    def status(self, user):
        res = self.assertOk(self.c.call("cred.status", {"user": user}))
        self.assertIsInstance(res, list)
        return {e["ident"]: e for e in res}

    def test_status_empty(self):
        user = new_user()
        res = self.assertOk(self.c.call("cred.status", {"user": user}))
        self.assertEqual(len(res), 3)
        by = {e["ident"]: e for e in res}
        for t in (self.t_db, self.t_db2, self.t_vault):
            e = by[t["ident"]]
            if t["storage"] == "vault":
                # Vault is not configured: the status of a vault-stored
                # type is unknown, and the entry says why.
                self.assertEqual(set(e.keys()), STATUS_KEYS | {"error"}, e)
                self.assertEqual(e["error"],
                                 {"code": "not_configured",
                                  "message": "Vault is not configured"})
            else:
                self.assertEqual(set(e.keys()), STATUS_KEYS, e)
            self.assertEqual(e["type"], t["uuid"])
            self.assertEqual(e["name"], t["name"])
            self.assertEqual(e["storage"], t["storage"])
            self.assertIs(e["filled"], False)
            self.assertIsNone(e["updated_at"])

    def test_set_status_delete(self):
        user = new_user()
        res = self.assertOk(self.c.call("cred.set", {"type": "token",
                                                     "user": user,
                                                     "value": "s3cr3t"}))
        self.assertEqual(set(res.keys()), {"updated_at"})
        self.assertRegex(res["updated_at"], TIME_RE)
        st = self.status(user)
        self.assertIs(st["token"]["filled"], True)
        self.assertEqual(st["token"]["updated_at"], res["updated_at"])
        self.assertIs(st["password"]["filled"], False)
        self.assertIs(st["vaulted"]["filled"], False)
        # Another user is unaffected.
        other = new_user()
        self.assertIs(self.status(other)["token"]["filled"], False)
        # Replace (by type uuid), binary value.
        res2 = self.assertOk(self.c.call("cred.set",
                                         {"type": self.t_db["uuid"],
                                          "user": user,
                                          "value": b"\x00\x01\xffbin"}))
        self.assertGreaterEqual(res2["updated_at"], res["updated_at"])
        self.assertIs(self.status(user)["token"]["filled"], True)
        # Delete.
        self.assertEqual(self.assertOk(self.c.call(
            "cred.delete", {"type": "token", "user": user})), {})
        st = self.status(user)
        self.assertIs(st["token"]["filled"], False)
        self.assertIsNone(st["token"]["updated_at"])
        self.assertError(self.c.call("cred.delete",
                                     {"type": "token", "user": user}),
                         "not_found")

    def test_set_bad_user(self):
        bad = ["", "not-a-uuid", "6F9619FF-8B86-D011-B42D-00C04FC964FF",
               "6f9619ff8b86d011b42d00c04fc964ff",
               "{6f9619ff-8b86-d011-b42d-00c04fc964ff}",
               "6f9619ff-8b86-d011-b42d-00c04fc964f",
               "6f9619ff-8b86-d011-b42d-00c04fc964fff",
               "6f9619ff-8b86-d011-b42d-00c04fc964fg",
               "../../../../etc/passwd",
               "6f9619ff-8b86-d011-b42d-00c04fc964f/"]
        for u in bad:
            self.assertError(self.c.call("cred.set", {"type": "token",
                                                      "user": u,
                                                      "value": "v"}),
                             "bad_request", "user %r accepted" % u)
            self.assertError(self.c.call("cred.status", {"user": u}),
                             "bad_request", "user %r accepted" % u)
            self.assertError(self.c.call("cred.delete", {"type": "token",
                                                         "user": u}),
                             "bad_request", "user %r accepted" % u)
        self.assertError(self.c.call("cred.set", {"type": "token",
                                                  "user": 5, "value": "v"}),
                         "bad_request")

    def test_set_bad_params(self):
        user = new_user()
        cases = [
            {"type": "token", "user": user, "value": ""},
            {"type": "token", "user": user, "value": b""},
            {"type": "token", "user": user, "value": 42},
            {"type": "token", "user": user, "value": None},
            {"type": "token", "user": user, "value": ["x"]},
            {"type": "token", "user": user},
            {"type": "token", "value": "v"},
            {"user": user, "value": "v"},
            {"type": 1, "user": user, "value": "v"},
            {"type": "token", "user": user, "value": "v", "extra": 1},
        ]
        for p in cases:
            self.assertError(self.c.call("cred.set", p), "bad_request",
                             "accepted %r" % (p,))
        self.assertIs(self.status(user)["token"]["filled"], False)
        self.assertError(self.c.call("cred.status", {}), "bad_request")
        self.assertError(self.c.call("cred.status", {"user": user, "x": 1}),
                         "bad_request")
        self.assertError(self.c.call("cred.delete", {"user": user}),
                         "bad_request")
        self.assertError(self.c.call("cred.delete",
                                     {"type": "token", "user": user,
                                      "value": "x"}), "bad_request")

    def test_set_unknown_type(self):
        user = new_user()
        self.assertError(self.c.call("cred.set", {"type": "nosuch",
                                                  "user": user,
                                                  "value": "v"}), "not_found")
        self.assertError(self.c.call("cred.delete", {"type": "nosuch",
                                                     "user": user}),
                         "not_found")

    def test_set_vault_not_configured(self):
        user = new_user()
        err = self.assertError(self.c.call("cred.set",
                                           {"type": "vaulted", "user": user,
                                            "value": "vault-secret-value"}),
                               "not_configured")
        self.assertNotIn("vault-secret-value", err["message"])
        self.assertIs(self.status(user)["vaulted"]["filled"], False)

    def test_error_messages_do_not_echo_value(self):
        user = new_user()
        secret = "leak-check-" + os.urandom(8).hex()
        for p in ({"type": "nosuch", "user": user, "value": secret},
                  {"type": "token", "user": "bad", "value": secret},
                  {"type": "token", "user": user, "value": secret, "z": 1}):
            err = self.assertError(self.c.call("cred.set", p),
                                   err_code_for(p))
            self.assertNotIn(secret, err["message"])
        self.assertNotIn(secret.encode(), bytes(self.c.raw))


def err_code_for(p):
    return "not_found" if p["type"] == "nosuch" else "bad_request"


class TestPipelining(ProtocolBase):

    def test_fifty_in_one_write(self):
        self.create_type("p0")
        reqs = []
        expect = []
        for i in range(50):
            r = i % 5
            if r == 0:
                reqs.append(("hello", {}))
                expect.append(("ok", None))
            elif r == 1:
                reqs.append(("type.get", {"type": "p0"}))
                expect.append(("ok", "p0"))
            elif r == 2:
                reqs.append(("type.get", {"type": "missing%d" % i}))
                expect.append(("err", "not_found"))
            elif r == 3:
                reqs.append(("type.create", {"ident": "pipe%02d" % i,
                                             "name": "n%d" % i,
                                             "storage": "db"}))
                expect.append(("ok", "pipe%02d" % i))
            else:
                reqs.append(("type.create", {"ident": "_bad%d" % i,
                                             "name": "n", "storage": "db"}))
                expect.append(("err", "bad_request"))
        results = self.c.pipeline(reqs)
        self.assertEqual(len(results), 50)
        seen = set()
        for (mid, m), (kind, what) in zip(results, expect):
            self.assertEqual(m[0], 1)
            self.assertEqual(m[1], mid)
            seen.add(mid)
            if kind == "ok":
                self.assertIsNone(m[2], m)
                if what:
                    self.assertEqual(m[3]["ident"], what)
            else:
                self.assertIsNotNone(m[2], m)
                self.assertEqual(m[2]["code"], what)
        self.assertEqual(len(seen), 50)
        self.assertEqual(self.c.msgs, [])
        lst = self.assertOk(self.c.call("type.list", {}))
        self.assertEqual(len(lst), 1 + 10)

    def test_split_across_writes(self):
        # One request delivered a byte at a time, then several at once.
        raw = pack_request(900, "hello", {})
        for b in raw:
            self.c.send_raw(bytes([b]))
        m = self.c.wait_response(900)
        self.assertIsNone(m[2])
        raw = b"".join(pack_request(1000 + i, "hello", {}) for i in range(3))
        self.c.send_raw(raw[:7])
        self.c.send_raw(raw[7:])
        for i in range(3):
            self.assertIsNone(self.c.wait_response(1000 + i)[2])

    def test_same_msgid_repeated(self):
        raw = pack_request(5, "hello", {}) * 3
        self.c.send_raw(raw)
        for _ in range(3):
            m = self.c.wait_response(5)
            self.assertIsNone(m[2])

    def test_many_clients(self):
        clients = [self.d.client() for _ in range(20)]
        try:
            for k, cl in enumerate(clients):
                cl.send_raw(pack_request(k + 1, "hello", {}))
            for k, cl in enumerate(clients):
                self.assertIsNone(cl.wait_response(k + 1)[2])
        finally:
            for cl in clients:
                cl.close()


class TestHostileInput(ProtocolBase):
    """Each of these must affect only the connection that sent it."""

    def setUp(self):
        super().setUp()
        self.create_type("keep")
        self.bystander = self.d.client()
        self.addCleanup(self.bystander.close)
        self.assertOk(self.bystander.call("type.get", {"type": "keep"}))

    def assertBystanderFine(self):
        self.assertTrue(self.d.alive(), "daemon died:\n" + self.d.log())
        self.assertOk(self.bystander.call("type.get", {"type": "keep"}))
        self.assertOk(self.c.call("hello", {}))
        with self.d.client() as fresh:
            self.assertOk(fresh.call("hello", {}))

    def attacker(self):
        a = self.d.client()
        self.addCleanup(a.close)
        return a

    def test_malformed_msgpack(self):
        for junk in (b"\xc1", b"\xc1\xc1\xc1\xc1", b"\x94\x00\x01\xc1\x90"):
            a = self.attacker()
            self.assertOk(a.call("hello", {}))
            self.send_quietly(a, junk)
            msgs = a.wait_closed()
            for m in msgs:
                self.assertIsInstance(m, list)
                self.assertEqual(m[0], 1)
            self.assertBystanderFine()

    def test_malformed_after_good_requests(self):
        a = self.attacker()
        self.send_quietly(a, pack_request(1, "hello", {}) + b"\xc1")
        msgs = a.wait_closed()
        # The good request before the junk may or may not be answered,
        # but nothing else is.
        self.assertLessEqual(len(msgs), 1)
        self.assertBystanderFine()

    def test_non_array_messages(self):
        for obj in ({"method": "hello"}, 42, "hello", None, [],
                    [0], [0, 1], [0, 1, "hello"], [1, 1, None, None],
                    [0, "x", "hello", []],
                    [0, -1, "hello", []], [0, 1, 7, []],
                    [0, 1, "hello", [{}], "extra"]):
            a = self.attacker()
            self.send_quietly(a, msgpack.packb(obj))
            # Either closed, or answered with bad_request (when the msgid
            # was readable) -- and never a success.
            try:
                m = a.recv(timeout=cbtest.CALL_TIMEOUT)
            except cbtest.ConnectionClosed:
                m = None
            if m is not None:
                self.assertEqual(m[0], 1, (obj, m))
                self.assertIsNotNone(m[2], "invalid message %r answered "
                                     "with success: %r" % (obj, m))
                self.assertEqual(m[2]["code"], "bad_request", (obj, m))
            if not isinstance(obj, list):
                # Not an array at all: the connection must be closed.
                if m is not None:
                    a.wait_closed()
                else:
                    self.assertTrue(a.eof)
            a.close()
        self.assertBystanderFine()

    def test_bad_fields_get_bad_request(self):
        # A valid array whose msgid can be read gets a response.
        a = self.attacker()
        a.send_raw(msgpack.packb([0, 31, 12345, [{}]]))
        m = a.wait_response(31)
        self.assertEqual(m[2]["code"], "bad_request")
        a.send_raw(msgpack.packb([0, 32, "hello", "not-an-array"]))
        m = a.wait_response(32)
        self.assertEqual(m[2]["code"], "bad_request")
        self.assertOk(a.call("hello", {}))
        self.assertBystanderFine()

    def test_oversized_message(self):
        a = self.attacker()
        self.assertOk(a.call("hello", {}))
        big = pack_request(7, "hello", {"x": "A" * (2 << 20)})
        t = threading.Thread(target=self.send_quietly, args=(a, big),
                             daemon=True)
        t.start()
        msgs = a.wait_closed()
        t.join(cbtest.CALL_TIMEOUT)
        self.assertEqual(len(msgs), 1, msgs)
        m = msgs[0]
        self.assertEqual(m[0], 1)
        self.assertIn(m[1], (0, 7))
        self.assertEqual(m[2]["code"], "too_large")
        self.assertBystanderFine()

    def test_oversized_bin_value(self):
        a = self.attacker()
        user = new_user()
        big = pack_request(8, "cred.set", {"type": "keep", "user": user,
                                           "value": b"\x00" * (3 << 20)})
        t = threading.Thread(target=self.send_quietly, args=(a, big),
                             daemon=True)
        t.start()
        msgs = a.wait_closed()
        t.join(cbtest.CALL_TIMEOUT)
        self.assertEqual(len(msgs), 1, msgs)
        self.assertEqual(msgs[0][2]["code"], "too_large")
        self.assertBystanderFine()
        st = {e["ident"]: e for e in
              self.assertOk(self.c.call("cred.status", {"user": user}))}
        self.assertIs(st["keep"]["filled"], False)

    def test_message_just_under_limit(self):
        # A message comfortably below 1 MiB is read and answered normally
        # (here: bad_request for the unknown parameter, not too_large).
        a = self.attacker()
        err = self.assertError(a.call("hello", {"pad": "n" * (768 << 10)}),
                               "bad_request")
        self.assertIn("pad", err["message"])
        self.assertOk(a.call("hello", {}))
        self.assertBystanderFine()

    def test_truncated_then_close(self):
        raw = pack_request(3, "type.create", {"ident": "trunc",
                                              "name": "n", "storage": "db"})
        for cut in (1, 5, len(raw) // 2, len(raw) - 1):
            a = self.attacker()
            a.send_raw(raw[:cut])
            a.close()
        # also: half-close after a truncated message
        a = self.attacker()
        a.send_raw(raw[:len(raw) // 2])
        a.sock.shutdown(socket.SHUT_WR)
        a.wait_closed()
        self.assertBystanderFine()
        self.assertError(self.c.call("type.get", {"type": "trunc"}),
                         "not_found")

    def test_close_with_requests_in_flight(self):
        for _ in range(10):
            a = self.attacker()
            a.send_raw(b"".join(pack_request(i, "type.list", {})
                                for i in range(1, 30)))
            a.close()
        self.assertBystanderFine()

    def test_huge_declared_length(self):
        pid_mem0 = self.d.vm_kib("VmPeak")
        heads = [
            b"\xdb\xff\xff\xff\xff",                  # str32, 4 GiB
            b"\x94\x00\x01\xdb\xff\xff\xff\xff",      # inside a request
            b"\x94\x00\x01\xa5hello\x91\x81\xa1x\xc6\xff\xff\xff\xf0",  # bin32
            b"\xdd\xff\xff\xff\xff",                  # array32, 4G entries
            b"\xdf\xff\xff\xff\xff",                  # map32, 4G entries
        ]
        attackers = []
        for h in heads:
            a = self.attacker()
            self.send_quietly(a, h + b"abcdefgh")
            attackers.append(a)
        # The daemon must still serve others while these wait for data.
        self.assertBystanderFine()
        if (not cbtest.VALGRIND and pid_mem0
                and not cbtest.daemon_sanitized()):
            peak = self.d.vm_kib("VmPeak")
            self.assertLess(peak - pid_mem0, 1024 * 1024,
                            "daemon virtual size grew by %d KiB"
                            % (peak - pid_mem0))
            hwm = self.d.vm_kib("VmHWM")
            self.assertLess(hwm, 256 * 1024, "daemon RSS peak %d KiB" % hwm)
        # Feeding more than the limit gets too_large and a close; the
        # daemon never buffers the declared 4 GiB.
        for a in attackers[:2]:
            t = threading.Thread(target=self.send_quietly,
                                 args=(a, b"z" * (3 << 19)), daemon=True)
            t.start()
            msgs = a.wait_closed()
            t.join(cbtest.CALL_TIMEOUT)
            for m in msgs:
                self.assertEqual(m[2]["code"], "too_large", m)
        for a in attackers[2:]:
            a.close()
        self.assertBystanderFine()

    def test_max_message_size_override(self):
        # server.max_message_size is honoured (-o override).
        self.d.stop()
        self.d.args = ["-o", "server.max_message_size=4096"]
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.bystander = self.d.client()
        self.addCleanup(self.bystander.close)
        self.assertOk(self.c.call("type.create", {"ident": "small",
                                                  "name": "n",
                                                  "description": "d" * 3000,
                                                  "storage": "db"}))
        a = self.attacker()
        self.send_quietly(a, pack_request(9, "type.create",
                                          {"ident": "large", "name": "n",
                                           "description": "d" * 8192,
                                           "storage": "db"}))
        msgs = a.wait_closed()
        self.assertEqual(len(msgs), 1, msgs)
        self.assertIn(msgs[0][1], (0, 9))
        self.assertEqual(msgs[0][2]["code"], "too_large")
        self.assertError(self.c.call("type.get", {"type": "large"}),
                         "not_found")
        self.assertBystanderFine()


class TestNotifications(ProtocolBase):
    """msgpack-rpc notifications [2, method, params] are legal: never
    executed, never answered, counted in stats, and logged once per
    connection at level debug (the name, never the params)."""

    daemon_kwargs = {"extra": {"log": [("level", "debug")]}}
    IGNORED = ("uid %d pid %d: notification '%s' ignored (the broker "
               "executes requests only; further notifications on this "
               "connection are not logged)")

    def notifications(self):
        return self.assertOk(self.c.call("stats", {}))["notifications"]

    def client(self):
        cl = self.d.client()
        self.addCleanup(cl.close)
        return cl

    def notify(self, cl, method, params):
        cl.send_raw(msgpack.packb([2, method, params], use_bin_type=True))

    def log_messages(self, word):
        """The messages (without time and level) of the log lines that
        contain word."""
        out = []
        for line in self.d.log().splitlines():
            m = re.match(r"^\S+Z (?:debug|info): (.*)$", line)
            if m and word in m.group(1):
                out.append(m.group(1))
        return out

    def test_notification_is_not_executed_or_answered(self):
        before = self.notifications()
        a = self.client()
        # A method that would change something, and one that would answer.
        self.notify(a, "type.create", [{"ident": "bynotif", "name": "n",
                                        "storage": "db"}])
        self.notify(a, "hello", [{}])
        # Method names packed as bin, as pynvim sends them.
        self.notify(a, b"nvim_set_client_info", ["x", {}, "remote", {}, {}])
        a.send_raw(pack_request(5, "hello", {}))
        # The request's answer is the first and only message: nothing
        # was sent for the notifications before it.
        m = a.recv()
        self.assertEqual(m[:3], [1, 5, None])
        self.assertEqual(a.msgs, [])
        self.assertError(a.call("type.get", {"type": "bynotif"}),
                         "not_found")
        self.assertEqual(self.notifications(), before + 3)
        self.assertFalse(a.eof)
        rc, out, err = cbtest.credctl(self.d.socket, "stats")
        self.assertEqual(rc, 0, err)
        self.assertIn("\nnotifications ignored: %d\n" % (before + 3), out)

    def test_notification_logged_once_per_connection_without_params(self):
        canary = "nOtIfY" + secrets.token_hex(12)
        a = self.client()
        self.notify(a, "x\n evil", [{"value": canary}])
        self.notify(a, "second", [{"value": canary}])
        # The log is written before any reply: once hello is answered,
        # the lines of the notifications before it are in the file.
        self.assertOk(a.call("hello", {}))
        b = self.client()
        self.notify(b, b"nvim_set_client_info", [canary])
        self.assertOk(b.call("hello", {}))
        ids = (os.getuid(), os.getpid())
        self.assertEqual(self.log_messages("notification"), [
            self.IGNORED % (ids + ("x? evil",)),
            self.IGNORED % (ids + ("nvim_set_client_info",))])
        self.assertEqual(cbtest.find_leaks(self.d.all_logs(),
                                           [canary.encode()]), [])

    def test_malformed_notification_closes_the_connection(self):
        ids = (os.getuid(), os.getpid())
        seen = {}
        for obj, why in (([2, 7, []], "notification method must be a "
                          "string"),
                         ([2, None, [{}]], "notification method must be a "
                          "string"),
                         ([2, "hello", {}], "notification params must be "
                          "an array"),
                         ([2, "hello", None], "notification params must "
                          "be an array")):
            a = self.client()
            self.assertOk(a.call("hello", {}))
            a.send_raw(msgpack.packb(obj, use_bin_type=True))
            self.assertEqual(a.wait_closed(), [], obj)
            # Logged in the loop iteration that closed the connection,
            # possibly just after the close itself.
            line = "uid %d pid %d: %s; closing" % (ids + (why,))
            seen[line] = seen.get(line, 0) + 1
            cbtest.poll_until(
                lambda: self.log_messages("closing").count(line) ==
                seen[line], cbtest.CALL_TIMEOUT, what=line)
        self.assertOk(self.c.call("hello", {}))

    def test_oversized_notification_is_refused(self):
        a = self.client()
        big = msgpack.packb([2, "hello", ["A" * (2 << 20)]])
        t = threading.Thread(target=self.send_quietly, args=(a, big),
                             daemon=True)
        t.start()
        msgs = a.wait_closed()
        t.join(cbtest.CALL_TIMEOUT)
        self.assertEqual(len(msgs), 1, msgs)
        self.assertEqual(msgs[0][:2], [1, 0])
        self.assertEqual(msgs[0][2], {
            "code": "too_large",
            "message": "message exceeds the maximum message size"})
        self.assertEqual(self.notifications(), 0)


class TestBinaryKeys(ProtocolBase):
    """Parameter names are str: a bin key (or any other kind) is named as
    such, with where it is, never read as a missing parameter."""

    HINT = " (send map keys as msgpack str, not bin)"

    def call_bin(self, method, params):
        i = self.c.new_id()
        self.c.send_raw(msgpack.packb([0, i, method, [params]],
                                      use_bin_type=True))
        m = self.c.wait_response(i)
        return m[2], m[3]

    def test_binary_parameter_key_is_named(self):
        err = self.assertError(self.call_bin("type.get", {b"type": "x"}),
                               "bad_request")
        self.assertEqual(err["message"], "parameter keys must be strings: "
                         "got a binary key 'type' in params" + self.HINT)

    def test_binary_key_in_a_nested_map_names_its_path(self):
        self.create_type("keep")
        comp = {"kind": "action", "initiator": new_user(),
                "credentials": [{"id": "k", "type": "keep"},
                                {"id": "k2", b"type": "keep"}]}
        req = {"method": "GET", "url": "https://example.com/", "headers": []}
        err = self.assertError(self.call_bin(
            "substitute", {"component": comp, "request": req}),
            "bad_request")
        self.assertEqual(err["message"], "parameter keys must be strings: "
                         "got a binary key 'type' in "
                         "params.component.credentials[1]" + self.HINT)

    def test_other_key_kinds_are_named(self):
        for params, kind in (({1: "x"}, "an integer key"),
                             ({None: "x"}, "a nil key"),
                             ({True: "x"}, "a boolean key"),
                             ({"type": "x", 1.5: "y"}, "a float key")):
            err = self.assertError(self.call_bin("type.get", params),
                                   "bad_request")
            self.assertEqual(err["message"], "parameter keys must be "
                             "strings: got %s in params" % kind)

    def test_binary_key_changes_nothing(self):
        self.create_type("keep")
        user = new_user()
        err = self.assertError(self.call_bin(
            "cred.set", {b"type": "keep", "user": user, "value": "v"}),
            "bad_request")
        self.assertTrue(err["message"].startswith(
            "parameter keys must be strings: got a binary key 'type'"))
        st = {e["ident"]: e for e in
              self.assertOk(self.c.call("cred.status", {"user": user}))}
        self.assertIs(st["keep"]["filled"], False)


class TestAccess(ProtocolBase):
    """Default deny, and permissions per grant (SPEC section 7)."""

    daemon_kwargs = {"grants": ["uid:%d read:health" % os.getuid(),
                                "uid:%d edit:user-credentials" % os.getuid()]}

    def test_partial_grant(self):
        res = self.assertOk(self.c.call("hello", {}))
        self.assertEqual(sorted(res["permissions"]),
                         ["edit:user-credentials", "read:health"])
        self.assertOk(self.c.call("health", {}))
        for m, p in (("type.list", {}), ("type.get", {"type": "x"}),
                     ("type.create", {"ident": "x", "name": "x",
                                      "storage": "db"}),
                     ("type.update", {"type": "x", "name": "y"}),
                     ("type.delete", {"type": "x"}),
                     ("type.clear", {"type": "x"})):
            self.assertError(self.c.call(m, p), "forbidden", m)
        self.assertEqual(self.assertOk(self.c.call(
            "cred.status", {"user": new_user()})), [])


class TestNoGrant(ProtocolBase):

    daemon_kwargs = {"grants": ["uid:%d *" % (os.getuid() + 12345)]}

    def test_default_deny(self):
        res = self.assertOk(self.c.call("hello", {}))
        self.assertEqual(res["permissions"], [])
        self.assertEqual(res["uid"], os.getuid())
        for m, p in (("health", {}), ("type.list", {}),
                     ("cred.status", {"user": new_user()}),
                     ("cred.set", {"type": "x", "user": new_user(),
                                   "value": "v"}),
                     ("cred.delete", {"type": "x", "user": new_user()})):
            self.assertError(self.c.call(m, p), "forbidden", m)


class TestStop(ProtocolBase):

    def test_sigterm_clean_exit(self):
        self.assertOk(self.c.call("hello", {}))
        self.d.stop()
        self.assertFalse(os.path.exists(self.d.socket))


if __name__ == "__main__":
    cbtest.main()

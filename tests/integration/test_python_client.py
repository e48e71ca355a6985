#!/usr/bin/python3
"""
The Python client package (client/python, package credbroker) against the
real daemon.

 - Every method of proto/methods.def has its Client method, and every one
   of them is called with success against the real daemon in this file
   (checked at the end of a full run); every code of proto/errors.def has
   its exception class, and the broker's errors arrive as those classes
   with the broker's exact message (not_found, forbidden, bad_request,
   conflict, not_configured, unavailable, too_large).
 - Vault methods against the Vault simulator (tests/vault/vaultsim.py);
   request against a local HTTP service that echoes what it got.
 - Connections: the context manager closes the socket (the broker sees it
   go), the default socket ($CREDBROKER_SOCKET, else libcredbroker's
   default), connect errors with their messages, EACCES naming the
   socket's group (tried as user nobody), the too_large answer with msgid
   0, and against a scripted fake broker: a timed-out call leaves the
   connection usable, notifications are skipped, a response over the
   size limit and malformed msgpack are refused.
 - The package installs with pip from the source tree, offline.
"""

import base64
import http.server
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
SOURCE = os.environ.get("CB_SOURCE_DIR") or os.path.join(HERE, "..", "..")
PKG_DIR = os.path.join(SOURCE, "client", "python")
sys.path.insert(0, PKG_DIR)

import msgpack  # noqa: E402

import cbtest  # noqa: E402
from cbtest import new_user  # noqa: E402
import vaulttest  # noqa: E402
from vaulttest import MOUNT, data_path  # noqa: E402

import credbroker  # noqa: E402

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
import jwt  # noqa: E402


def read_def(name, macro):
    """The quoted names of proto/NAME's MACRO(...) lines."""
    with open(os.path.join(SOURCE, "proto", name)) as f:
        text = f.read()
    return re.findall(r'^%s\(\s*\w+\s*,\s*"([^"]+)"' % macro, text, re.M)


METHODS = read_def("methods.def", "CB_METHODDEF")
CODES = read_def("errors.def", "CB_ERRDEF")

# What the daemon answered with success, and the error codes it raised,
# through the package (recorded around Client.call, which every method
# of Client goes through).
CALLED_OK = set()
RAISED = set()
RAN = set()
_call = credbroker.Client.call


def _recording_call(self, method, params=None, **kw):
    try:
        res = _call(self, method, params, **kw)
    except credbroker.BrokerError as e:
        RAISED.add(e.code)
        raise
    CALLED_OK.add(method)
    return res


credbroker.Client.call = _recording_call


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pkcs8(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def spki(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def gcm(key, pt):
    """Seal pt the way the replaced platform did: GCM:base64(n||ct||tag)."""
    nonce = os.urandom(12)
    return "GCM:" + base64.b64encode(
        nonce + AESGCM(key).encrypt(nonce, pt.encode(), None)).decode()


def component(user, cid, type_ident):
    return {"kind": "action", "initiator": user,
            "credentials": [{"id": cid, "type": type_ident}]}


URL = "https://api.example.com/v1/things"


class Recorded:
    """Mixin: note each test that ran, for the coverage check; assertions
    on the package's exceptions."""

    def setUp(self):
        RAN.add(self.id())
        super().setUp()

    def assertRaisesExactly(self, cls, message, fn, *args, **kw):
        """fn raises exactly cls, with exactly this message."""
        with self.assertRaises(cls) as cm:
            fn(*args, **kw)
        self.assertIs(type(cm.exception), cls)
        self.assertEqual(cm.exception.code, cls.code)
        self.assertEqual(cm.exception.message, message)
        return cm.exception

    def assertRaisesBroker(self, cls, start, fn, *args, **kw):
        """fn raises exactly cls, with a message that starts so (where
        the rest of the broker's wording is not the point here)."""
        with self.assertRaises(cls) as cm:
            fn(*args, **kw)
        self.assertIs(type(cm.exception), cls)
        self.assertEqual(cm.exception.code, cls.code)
        self.assertTrue(cm.exception.message.startswith(start),
                        cm.exception.message)
        return cm.exception


class PackageTest(Recorded, unittest.TestCase):
    """The package mirrors the protocol's tables."""

    def test_every_method_of_the_protocol_has_a_client_method(self):
        self.assertIn("substitute", METHODS)
        missing = [m for m in METHODS
                   if not callable(getattr(credbroker.Client,
                                           m.replace(".", "_"), None))]
        self.assertEqual(missing, [])
        # cred.list is added to the daemon alongside; the client has it.
        self.assertTrue(callable(credbroker.Client.cred_list))
        self.assertTrue(callable(credbroker.Client.iter_cred_list))

    def test_every_error_code_has_its_exception_class(self):
        self.assertEqual(sorted(credbroker.ERRORS), sorted(CODES))
        for code in CODES:
            name = "".join(w.capitalize() for w in code.split("_"))
            cls = getattr(credbroker, name)
            self.assertIs(credbroker.ERRORS[code], cls)
            self.assertEqual(cls.code, code)
            self.assertTrue(issubclass(cls, credbroker.BrokerError))
            self.assertTrue(issubclass(cls, credbroker.Error))
            e = credbroker.error_from_map({"code": code, "message": "m"})
            self.assertIs(type(e), cls)
            self.assertEqual((e.code, e.message), (code, "m"))
        e = credbroker.error_from_map({"code": "newer_code",
                                       "message": "from a newer broker"})
        self.assertIs(type(e), credbroker.BrokerError)
        self.assertEqual((e.code, e.message, str(e)),
                         ("newer_code", "from a newer broker",
                          "newer_code: from a newer broker"))
        for cls, code in ((credbroker.ConnectError, "connect"),
                          (credbroker.ConnectionLost, "io"),
                          (credbroker.Timeout, "timeout"),
                          (credbroker.ProtocolError, "protocol")):
            self.assertTrue(issubclass(cls, credbroker.Error))
            self.assertFalse(issubclass(cls, credbroker.BrokerError))
            self.assertEqual(cls.code, code)

    def test_defaults_are_those_of_libcredbroker(self):
        with open(os.path.join(SOURCE, "client", "credbroker.h")) as f:
            h = f.read()
        sock = re.search(r'#define CREDBROKER_DEFAULT_SOCKET\s+"([^"]+)"', h)
        env = re.search(r'#define CREDBROKER_SOCKET_ENV\s+"([^"]+)"', h)
        self.assertEqual(credbroker.DEFAULT_SOCKET, sock.group(1))
        self.assertEqual(credbroker.SOCKET_ENV, env.group(1))
        self.assertIn("((size_t)16 * 1024 * 1024)", h)
        self.assertEqual(credbroker.DEFAULT_MAX_RESPONSE, 16 * 1024 * 1024)

    def test_package_version_is_the_project_version(self):
        with open(os.path.join(SOURCE, "CMakeLists.txt")) as f:
            v = re.search(r"project\(credbroker VERSION ([0-9.]+)",
                          f.read()).group(1)
        with open(os.path.join(PKG_DIR, "pyproject.toml")) as f:
            py = f.read()
        self.assertIn('\nversion = "%s"\n' % v, py)
        self.assertIn('dependencies = ["msgpack>=1.0"]', py)
        self.assertEqual(credbroker.__version__, v)


class ClientTestCase(Recorded, cbtest.DaemonTestCase):
    """A daemon per test and a credbroker.Client on it (self.cb)."""

    def setUp(self):
        super().setUp()
        if self.start_daemon:
            self.cb = credbroker.connect(self.d.socket, timeout=30)
            self.addCleanup(self.cb.close)


class MethodsTest(ClientTestCase):
    """Every method, through the package, against the real daemon."""

    def test_hello_health_and_stats(self):
        h = self.cb.hello()
        self.assertEqual(h["protocol"], credbroker.PROTOCOL)
        self.assertRegex(h["server"], cbtest.SERVER_RE)
        self.assertEqual(h["uid"], os.getuid())
        self.assertEqual(sorted(h["permissions"]), sorted(cbtest.PERMISSIONS))
        health = self.cb.health()
        self.assertEqual(health["status"], "ok")
        cbtest.assert_store_health(self, health["store"])
        stats = self.cb.stats()
        self.assertEqual([m["method"] for m in stats["methods"]], METHODS)
        hello = stats["methods"][METHODS.index("hello")]
        self.assertGreaterEqual(hello["outcomes"]["ok"], 1)
        # The generic call is the same call.
        self.assertEqual(self.cb.call("hello", {})["uid"], os.getuid())

    def test_types_create_get_list_update_clear_delete(self):
        t = self.cb.type_create("gh", "GitHub token", description="d",
                                destinations=["https://API.example.com:443"])
        self.assertRegex(t["uuid"], cbtest.UUID_RE)
        self.assertEqual(t["destinations"], ["https://api.example.com"])
        self.assertEqual(t["storage"], "db")
        self.assertEqual(self.cb.type_get("gh")["uuid"], t["uuid"])
        self.assertEqual(self.cb.type_get(t["uuid"])["ident"], "gh")
        self.cb.type_create("aaa", "First")
        self.assertEqual([x["ident"] for x in self.cb.type_list()],
                         ["aaa", "gh"])
        u = self.cb.type_update("gh", name="GitHub", destinations=[])
        self.assertEqual((u["name"], u["destinations"], u["description"]),
                         ("GitHub", [], "d"))
        # default_account: absent keeps it, None removes it.
        self.cb.cred_set("gh", "shared-value", account="shared")
        u = self.cb.type_update("gh", default_account="shared")
        self.assertEqual(u["default_account"], "shared")
        self.assertEqual(self.cb.type_update("gh", name="G")
                         ["default_account"], "shared")
        self.assertIsNone(self.cb.type_update("gh", default_account=None)
                          ["default_account"])
        # ca_file: absent keeps it, None removes it.
        ca = os.path.join(self.tmp, "ca.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", os.path.join(self.tmp, "ca.key"),
                        "-out", ca, "-days", "2", "-subj", "/CN=ca"],
                       check=True, capture_output=True)
        self.assertIsNone(t["ca_file"])
        self.assertEqual(self.cb.type_update("gh", ca_file=ca)["ca_file"], ca)
        self.assertEqual(self.cb.type_update("gh", name="G")["ca_file"], ca)
        self.assertIsNone(self.cb.type_update("gh", ca_file=None)["ca_file"])
        self.assertEqual(self.cb.type_create("pinned", "P", ca_file=ca)
                         ["ca_file"], ca)
        self.assertEqual(self.cb.type_delete("pinned"), {})
        self.cb.cred_set("gh", b"user-value", user=new_user())
        self.assertEqual(self.cb.type_clear("gh"), {"removed": 2})
        self.cb.cred_set("gh", "again", user=new_user())
        self.assertRaisesBroker(
            credbroker.Conflict,
            "credential type 'gh' still has 1 value(s) in the database",
            self.cb.type_delete, "gh")
        self.assertEqual(self.cb.type_delete("gh", force=True), {})
        self.assertEqual([x["ident"] for x in self.cb.type_list()], ["aaa"])

    def test_errors_arrive_as_their_classes_with_the_brokers_message(self):
        self.cb.type_create("gh", "GitHub token")
        self.assertRaisesExactly(credbroker.NotFound,
                                 "credential type 'nosuch' not found",
                                 self.cb.type_get, "nosuch")
        self.assertRaisesExactly(credbroker.Conflict,
                                 "credential type 'gh' already exists",
                                 self.cb.type_create, "gh", "Again")
        self.assertRaisesExactly(
            credbroker.BadRequest,
            "ident must match [A-Za-z][A-Za-z0-9_.-]{0,63} and not be a uuid",
            self.cb.type_create, "1gh", "Bad")
        self.assertRaisesExactly(credbroker.BadRequest,
                                 "unknown parameter 'bogus'",
                                 self.cb.call, "type.get",
                                 {"type": "gh", "bogus": 1})
        self.assertRaisesExactly(credbroker.BadRequest,
                                 "unknown method 'no.such'",
                                 self.cb.call, "no.such")
        # Every error is an Error with code and message; the connection
        # goes on.
        with self.assertRaises(credbroker.Error) as cm:
            self.cb.type_get("nosuch")
        self.assertEqual(cm.exception.code, "not_found")
        self.assertEqual(self.cb.type_get("gh")["ident"], "gh")

    def test_values_accounts_links_and_status(self):
        t = self.cb.type_create("db", "Database login")
        u, v = new_user(), new_user()
        r = self.cb.cred_set("db", "own-value", user=u)
        self.assertRegex(r["updated_at"], cbtest.TIME_RE)
        self.cb.cred_set("db", b"\x00shared\xff", account="reader")
        link = self.cb.cred_link("db", v, "reader")
        self.assertEqual(link["account"], "reader")
        st = {e["ident"]: e for e in self.cb.cred_status(user=v)}
        self.assertEqual((st["db"]["source"], st["db"]["account"],
                          st["db"]["filled"]), ("linked", "reader", True))
        self.assertNotIn("error", st["db"])
        self.assertEqual(self.cb.cred_status(user=u)[0]["source"], "own")
        ts = self.cb.cred_status(type="db")
        self.assertEqual(ts["type"], t["uuid"])
        self.assertEqual([(a["name"], a["links"]) for a in ts["accounts"]],
                         [("reader", 1)])
        self.assertRaisesBroker(
            credbroker.Conflict,
            "account 'reader' of credential type 'db' has 1 link(s)",
            self.cb.cred_delete, "db", account="reader")
        self.assertEqual(self.cb.cred_unlink("db", v), {})
        self.assertRaisesExactly(
            credbroker.NotFound,
            "user %s has no link for credential type 'db'" % v,
            self.cb.cred_unlink, "db", v)
        self.assertEqual(self.cb.cred_delete("db", account="reader"), {})
        self.assertEqual(self.cb.cred_delete("db", user=u), {})
        self.assertFalse(self.cb.cred_status(user=u)[0]["filled"])

    def test_cred_import_dry_run_then_import_then_unchanged(self):
        self.cb.type_create("db", "Database login")
        u = new_user()
        sealed = gcm(self.d.key_bytes, "imported-value")
        self.assertEqual(self.cb.cred_import("db", sealed, user=u,
                                             dry_run=True),
                         {"outcome": "would_import"})
        self.assertFalse(self.cb.cred_status(user=u)[0]["filled"])
        self.assertEqual(self.cb.cred_import("db", sealed, user=u),
                         {"outcome": "imported"})
        self.assertEqual(self.cb.cred_import("db", sealed, user=u),
                         {"outcome": "unchanged"})
        self.assertTrue(self.cb.cred_status(user=u)[0]["filled"])

    def test_substitute_fills_the_value_and_a_dry_run_masks_it(self):
        self.cb.type_create("gh", "GitHub token",
                            destinations=["https://api.example.com"])
        u = new_user()
        self.cb.cred_set("gh", "ghp_secret value", user=u)
        req = {"method": "POST", "url": URL + "?t=<<.credentials.g|urlquery>>",
               "headers": [["Authorization", "Bearer <<.credentials.g>>"]],
               "body": b"\x00bin <<.credentials.g>>"}
        res = self.cb.substitute(component(u, "g", "gh"), req)
        self.assertEqual(res["request"], {
            "method": "POST", "url": URL + "?t=ghp_secret%20value",
            "headers": [["Authorization", "Bearer ghp_secret value"]],
            "body": b"\x00bin ghp_secret value"})
        self.assertEqual(res["subject"], u)
        self.assertEqual(res["used"], [{"id": "g", "type": "gh",
                                        "source": "own"}])
        dry = self.cb.substitute(component(u, "g", "gh"), req, dry_run=True)
        self.assertTrue(dry["dry_run"])
        self.assertEqual(dry["request"]["headers"],
                         [["Authorization", "Bearer ~masked-g~"]])
        self.assertRaisesExactly(
            credbroker.Forbidden,
            "credential 'g' (type 'gh') may not be sent to "
            "https://evil.example.com",
            self.cb.substitute, component(u, "g", "gh"),
            {"method": "GET",
             "url": "https://evil.example.com/<<.credentials.g>>"})
        other = new_user()
        self.assertRaisesExactly(
            credbroker.NotFound,
            "credential 'g' (type 'gh') is not set for user %s: no own "
            "value, no link, no default account" % other,
            self.cb.substitute, component(other, "g", "gh"), req)

    def test_request_returns_the_response_with_the_value_scrubbed(self):
        # A local HTTP service that answers with the Authorization header
        # it got; the broker sends the request and scrubs the echo.
        seen = []

        class Echo(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                auth = self.headers.get("Authorization", "")
                seen.append((self.path, auth, body))
                self.send_response_only(201)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"you sent " + auth.encode())

            def log_message(self, *args):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        self.addCleanup(th.join, 10)
        self.addCleanup(srv.server_close)
        self.addCleanup(srv.shutdown)
        origin = "http://127.0.0.1:%d" % srv.server_address[1]
        self.cb.type_create("svc", "Local service", destinations=[origin])
        u = new_user()
        self.cb.cred_set("svc", "svc-secret-value", user=u)
        res = self.cb.request(
            component(u, "s", "svc"),
            {"method": "POST", "url": origin + "/hook",
             "headers": [["Authorization", "Bearer <<.credentials.s>>"]],
             "body": "ping"},
            timeout_ms=10000, max_response_bytes=65536,
            follow_redirects=False)
        self.assertEqual(seen, [("/hook", "Bearer svc-secret-value",
                                 b"ping")])
        self.assertEqual(res, {
            "status": 201, "reason": "Created",
            "headers": [["Content-Type", "text/plain"]],
            "body": b"you sent Bearer [REDACTED:s]",
            "scrubbed": 1,
            "used": [{"id": "s", "type": "svc", "source": "own"}]})
        self.assertRaisesBroker(
            credbroker.Forbidden, "credential 's' (type 'svc') may not be "
            "sent to http://127.0.0.2:%d" % srv.server_address[1],
            self.cb.request, component(u, "s", "svc"),
            {"method": "GET", "url": "http://127.0.0.2:%d/x"
             % srv.server_address[1],
             "headers": [["Authorization", "Bearer <<.credentials.s>>"]]})
        self.assertEqual(len(seen), 1)

    def test_key_status_and_rotate(self):
        st = self.cb.key_status()
        if cbtest.backend() == "postgresql":
            # The fleet's live brokers: this one alone.
            self.assertEqual(len(st.pop("brokers")), 1)
        self.assertEqual(st, {"version": 1, "rotation": {
            "state": "none", "done": 0, "total": 0}})
        self.assertRaisesExactly(
            credbroker.BadRequest,
            "new_key_file must be an absolute path",
            self.cb.key_rotate, "relative.key")
        self.cb.type_create("db", "Database login")
        self.cb.cred_set("db", "v", user=new_user())
        new = os.path.join(self.d.dir, "new.key")
        cbtest.write_file(new, cbtest.strong_key() + "\n")
        if cbtest.backend() == "postgresql":
            # Every broker of a fleet holds the new key first.
            self.d.extra.setdefault("security", []).append(
                ("next_key_file", new))
            self.d.write_config()
            self.d.signal(signal.SIGHUP)
            cbtest.poll_until(
                lambda: len(self.cb.key_status()["brokers"][0]
                            ["key_kcvs"]) == 2,
                20 * cbtest.SCALE, what="the new key held")
        st = self.cb.key_rotate(new)
        self.assertIn(st["rotation"]["state"], ("running", "done"))
        self.assertEqual(st["rotation"]["new_key_file"], new)
        cbtest.poll_until(
            lambda: self.cb.key_status()["rotation"]["state"] == "done",
            20 * cbtest.SCALE, what="rotation done")

    def test_keypairs_peerkeys_and_tokens(self):
        kp = self.cb.keypair_generate("signer")
        self.assertEqual((kp["ident"], kp["version"], kp["current"]),
                         ("signer", 1, 1))
        mine = rsa_key()
        imp = self.cb.keypair_import("signer", pkcs8(mine))
        self.assertEqual(imp["version"], 2)
        got = self.cb.keypair_get("signer")
        self.assertEqual([v["version"] for v in got["versions"]], [1, 2])
        self.assertEqual(got["versions"][1]["public_pem"], spki(mine))
        self.assertEqual([(k["ident"], k["versions"])
                          for k in self.cb.keypair_list()],
                         [("signer", [1, 2])])
        peer = rsa_key()
        p = self.cb.peerkey_set("idp", 7, spki(peer))
        self.assertEqual((p["ident"], p["version"]), ("idp", 7))
        self.assertEqual(self.cb.peerkey_get("idp")["versions"][0]
                         ["public_pem"], spki(peer))
        self.assertEqual([k["ident"] for k in self.cb.peerkey_list()],
                         ["idp"])
        self.assertRaisesExactly(
            credbroker.Conflict,
            "peer key idp version 7 is already set to another key; delete "
            "that version first",
            self.cb.peerkey_set, "idp", 7, spki(rsa_key()))

        tok = self.cb.token_partner("signer", "idp", {"db_name": "c1"})
        self.assertTrue(tok["token"].startswith("7:2:"))
        self.assertEqual((tok["keypair_version"], tok["peerkey_version"]),
                         (2, 7))
        emb = self.cb.token_embed("signer", "chart-1", ttl=60,
                                  params={"a": "b"})
        claims = jwt.decode(emb["token"], mine.public_key(),
                            algorithms=["PS256"])
        self.assertEqual((claims["embedId"], claims["params"]),
                         ("chart-1", {"a": "b"}))
        sso = self.cb.token_sso("signer", {"sub": "alice"}, ttl=120)
        claims = jwt.decode(sso["token"], mine.public_key(),
                            algorithms=["RS256"])
        self.assertEqual(claims["sub"], "alice")
        self.assertEqual(claims["exp"] - claims["iat"], 120)
        login = jwt.encode({"sub": "bob", "email": "b@example.com",
                            "exp": int(time.time()) + 60}, peer,
                           algorithm="RS256")
        ver = self.cb.token_verify("idp", login,
                                   attributes={"email": "email"})
        self.assertEqual((ver["claims"]["sub"], ver["attributes"]["email"],
                          ver["peerkey_version"]), ("bob", "b@example.com", 7))
        self.assertRaisesExactly(
            credbroker.NotFound, "no key pair 'nosuch'",
            self.cb.token_sso, "nosuch", {"sub": "x"})

        self.assertEqual(self.cb.keypair_delete("signer", version=1),
                         {"removed": 1})
        self.assertEqual(self.cb.keypair_delete("signer"), {"removed": 1})
        self.assertEqual(self.cb.peerkey_delete("idp"), {"removed": 1})
        self.assertEqual(self.cb.keypair_list(), [])
        self.assertEqual(self.cb.peerkey_list(), [])

    def test_cred_status_entry_error_is_a_code_message_map(self):
        # A vault-stored type while Vault is not configured: its entry
        # carries the error, the others are read.
        self.cb.type_create("db", "Database login")
        self.cb.type_create("vt", "In Vault", storage="vault")
        u = new_user()
        self.cb.cred_set("db", "x", user=u)
        st = {e["ident"]: e for e in self.cb.cred_status(user=u)}
        self.assertTrue(st["db"]["filled"])
        self.assertNotIn("error", st["db"])
        self.assertEqual(st["vt"]["error"], {
            "code": "not_configured",
            "message": "Vault is not configured"})
        self.assertRaisesExactly(credbroker.NotConfigured,
                                 "credential type 'vt' is stored in Vault: "
                                 "Vault is not configured",
                                 self.cb.cred_set, "vt", "x", user=u)

    def test_cred_list_pages_through_users_and_accounts(self):
        self.cb.type_create("db", "Database login")
        self.assertEqual(self.cb.cred_list("db"), {"items": [], "next": None})
        users = sorted(new_user() for _ in range(5))
        for u in users:
            self.cb.cred_set("db", "v-" + u, user=u)
        self.cb.cred_set("db", "a", account="alpha")
        self.cb.cred_set("db", "b", account="beta")
        first = self.cb.cred_list("db", limit=2)
        self.assertEqual(first["items"], users[:2])
        self.assertEqual(first["next"], users[1])
        second = self.cb.cred_list("db", kind="users", after=first["next"],
                                   limit=2)
        self.assertEqual(second["items"], users[2:4])
        self.assertEqual(list(self.cb.iter_cred_list("db", limit=2)), users)
        self.assertEqual(list(self.cb.iter_cred_list("db", kind="accounts",
                                                     limit=1)),
                         ["alpha", "beta"])
        self.assertEqual(self.cb.cred_list("db", kind="accounts"),
                         {"items": ["alpha", "beta"], "next": None})
        self.assertRaisesBroker(credbroker.BadRequest, "parameter 'limit'",
                                self.cb.cred_list, "db", limit=0)
        self.assertRaisesExactly(credbroker.NotFound,
                                 "credential type 'nosuch' not found",
                                 self.cb.cred_list, "nosuch")


class ForbiddenTest(ClientTestCase):
    """A caller granted only read:health."""

    daemon_kwargs = {"grants": ["uid:%d read:health" % os.getuid()]}

    def test_forbidden_names_the_permission(self):
        self.assertEqual(self.cb.hello()["permissions"], ["read:health"])
        self.assertEqual(self.cb.health()["status"], "ok")
        self.assertRaisesExactly(
            credbroker.Forbidden,
            "type.list needs permission edit:user-access-credentials-types, "
            "which uid %d does not have" % os.getuid(),
            self.cb.type_list)
        self.assertRaisesExactly(
            credbroker.Forbidden,
            "substitute needs permission use:credentials, which uid %d "
            "does not have" % os.getuid(),
            self.cb.substitute, component(new_user(), "g", "gh"),
            {"method": "GET", "url": URL})


class VaultTest(Recorded, vaulttest.VaultCase):
    """vault.* through the package, against the Vault simulator."""

    def setUp(self):
        super().setUp()
        self.cb = credbroker.connect(self.d.socket, timeout=60)
        self.addCleanup(self.cb.close)

    def test_vault_get_set_test_and_adopt(self):
        g = self.cb.vault_get()
        self.assertEqual((g["configured"], g["role_id_set"]), (False, False))
        self.assertRaisesExactly(
            credbroker.NotConfigured,
            "Vault settings are incomplete: url, path, role_id and "
            "secret_id are needed", self.cb.vault_test)
        self.assertEqual(self.cb.vault_set(**self.settings()), {})
        g = self.cb.vault_get()
        self.assertEqual((g["configured"], g["enabled"], g["url"],
                          g["path"], g["role_id_set"], g["secret_id_set"]),
                         (True, True, self.sim.url, vaulttest.PATH,
                          True, True))
        self.assertNotIn(vaulttest.ROLE_ID.encode(),
                         msgpack.packb(g, use_bin_type=True))
        t = self.cb.vault_test()
        self.assertTrue(t["ok"], t)
        self.assertEqual([s["step"] for s in t["steps"]],
                         ["login", "write", "read", "list"])
        self.assertRaisesExactly(
            credbroker.BadRequest,
            "changing url needs role_id and secret_id again in the same "
            "call: the stored ones are only sent to the endpoint they were "
            "stored for (missing: role_id and secret_id); nothing was "
            "changed",
            self.cb.vault_test, url="http://127.0.0.1:1")

        vt = self.cb.type_create("vt", "In Vault", storage="vault")
        self.wait_authenticated()
        u, legacy_user = new_user(), new_user()
        value = vaulttest.canary()
        self.planted.append(value.encode())
        self.cb.cred_set("vt", value, user=u)
        self.sim.admin("POST", "secrets", {
            "mount": MOUNT, "path": data_path(vt["uuid"], legacy_user),
            "data": {"value": gcm(self.d.key_bytes, value)}})
        self.assertEqual(self.cb.vault_adopt("vt"), {
            "adopted": 1, "already": 1, "failed": 0, "failed_users": []})
        res = self.cb.substitute(component(legacy_user, "t", "vt"),
                                 {"method": "GET", "url": URL,
                                  "headers": [["X-T", "<<.credentials.t>>"]]})
        self.assertEqual(res["request"]["headers"], [["X-T", value]])

    def test_unreachable_vault_is_unavailable(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.cb.vault_set(**self.settings(url="http://127.0.0.1:%d" % port))
        self.cb.type_create("vt", "In Vault", storage="vault")
        with self.assertRaises(credbroker.Unavailable) as cm:
            self.cb.cred_set("vt", "x", user=new_user())
        self.assertEqual(cm.exception.code, "unavailable")
        self.assertIn("127.0.0.1 port %d" % port, cm.exception.message)


class ConnectionTest(ClientTestCase):
    """Connections to the real daemon."""

    daemon_kwargs = {"extra": {"server": [("max_message_size", "4096")]}}

    def open_connections(self):
        with credbroker.connect(self.d.socket) as c:
            return c.stats()["connections"]["open"]

    def test_with_block_closes_the_socket(self):
        base = self.open_connections()
        with credbroker.connect(self.d.socket) as c:
            self.assertFalse(c.closed)
            self.assertEqual(c.hello()["uid"], os.getuid())
            self.assertEqual(self.open_connections(), base + 1)
        self.assertTrue(c.closed)
        self.assertEqual(c.fileno(), -1)
        cbtest.poll_until(lambda: self.open_connections() == base,
                          10 * cbtest.SCALE,
                          what="the broker to see the connection closed")
        self.assertRaisesExactly(credbroker.ConnectionLost,
                                 "the connection is closed", c.hello)
        c.close()   # twice is harmless

    def test_default_socket_is_the_environment_then_libcredbrokers(self):
        old = os.environ.get(credbroker.SOCKET_ENV)
        self.addCleanup(lambda: os.environ.__setitem__(
            credbroker.SOCKET_ENV, old) if old is not None else
            os.environ.pop(credbroker.SOCKET_ENV, None))
        os.environ[credbroker.SOCKET_ENV] = self.d.socket
        with credbroker.connect() as c:
            self.assertEqual(c.path, self.d.socket)
            self.assertEqual(c.hello()["protocol"], 1)
        for unset in ("", None):
            if unset is None:
                del os.environ[credbroker.SOCKET_ENV]
            else:
                os.environ[credbroker.SOCKET_ENV] = unset
            try:
                c = credbroker.connect()
            except credbroker.ConnectError as e:
                self.assertEqual(e.path, "/run/credbroker/credbroker.sock")
            else:
                self.assertEqual(c.path, "/run/credbroker/credbroker.sock")
                c.close()

    def test_connect_errors_say_what_is_wrong(self):
        missing = os.path.join(self.d.dir, "nosuch.sock")
        e = self.assertRaisesExactly(
            credbroker.ConnectError,
            "%s: no such socket (is credbrokerd running? its socket is "
            "server.socket in credbroker.conf(5))" % missing,
            credbroker.connect, missing)
        self.assertEqual((e.path, e.errno), (missing, 2))
        # A socket file nothing listens on.
        stale = os.path.join(self.d.dir, "stale.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)
        s.close()
        self.assertRaisesExactly(
            credbroker.ConnectError,
            "%s: connection refused (nothing listens on it: is "
            "credbrokerd running?)" % stale, credbroker.connect, stale)
        long_path = "/tmp/" + "x" * 103
        self.assertRaisesExactly(
            credbroker.ConnectError,
            "%s: socket path is too long (108 bytes, at most 107)"
            % long_path, credbroker.connect, long_path)

    def test_permission_denied_names_the_sockets_group(self):
        """connect(2) as user nobody: EACCES, and the group to join."""
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            self.fail("no user nobody to connect as")
        if os.getuid() != 0:
            self.fail("needs root, to connect as nobody")
        top = cbtest.make_tmpdir("cbpy")
        self.addCleanup(cbtest.remove_tmpdir, top)
        os.chmod(top, 0o755)
        shutil.copytree(os.path.join(PKG_DIR, "credbroker"),
                        os.path.join(top, "credbroker"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        import grp
        group = grp.getgrgid(0).gr_name
        # The socket's own group; then a directory on the way that nobody
        # cannot search, whose group is named instead.
        open_dir = os.path.join(top, "open")
        os.mkdir(open_dir, 0o755)
        closed_dir = os.path.join(top, "closed")
        os.mkdir(closed_dir, 0o750)
        os.chown(closed_dir, 0, 0)
        socks = []
        for d in (open_dir, closed_dir):
            p = os.path.join(d, "cb.sock")
            s = socket.socket(socket.AF_UNIX)
            s.bind(p)
            s.listen(1)
            os.chmod(p, 0o660)
            socks.append(s)
            self.addCleanup(s.close)
        script = ("import sys, json, credbroker\n"
                  "try:\n"
                  "    credbroker.connect(sys.argv[1])\n"
                  "except credbroker.Error as e:\n"
                  "    print(json.dumps([type(e).__name__, e.code, e.errno,"
                  " e.message]))\n")
        for d in (open_dir, closed_dir):
            p = os.path.join(d, "cb.sock")
            out = subprocess.run(
                [sys.executable, "-B", "-c", script, p], cwd=top,
                env={"PYTHONPATH": top, "PATH": "/usr/bin:/bin"},
                preexec_fn=lambda: (os.setgroups([]),
                                    os.setgid(nobody.pw_gid),
                                    os.setuid(nobody.pw_uid)),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
            self.assertEqual(out.returncode, 0, out.stderr)
            self.assertEqual(json.loads(out.stdout), [
                "ConnectError", "connect", 13,
                "%s: permission denied (the socket is for group %s: ask to "
                "be added to it)" % (p, group)])

    def test_too_large_request_is_answered_with_msgid_0_and_closes(self):
        self.cb.type_create("db", "Database login")
        self.assertRaisesExactly(
            credbroker.TooLarge,
            "message exceeds the maximum message size",
            self.cb.cred_set, "db", "x" * 8192, user=new_user())
        self.assertTrue(self.cb.closed)
        # So large that the broker closes while it is still being written:
        # the answer is read after the failed write.
        with credbroker.connect(self.d.socket) as c:
            self.assertRaisesExactly(
                credbroker.TooLarge,
                "message exceeds the maximum message size",
                c.cred_set, "db", b"x" * (4 << 20), user=new_user())
            self.assertTrue(c.closed)
        with credbroker.connect(self.d.socket) as c:
            self.assertEqual(c.type_get("db")["ident"], "db")


class FakeBroker:
    """A scripted peer on a UNIX socket: script(conn, requests) is run in
    a thread with the accepted socket and an Unpacker of what it reads."""

    def __init__(self, test, script):
        self.dir = cbtest.make_tmpdir("cbfake")
        test.addCleanup(cbtest.remove_tmpdir, self.dir)
        self.path = os.path.join(self.dir, "fake.sock")
        self.lsock = socket.socket(socket.AF_UNIX)
        self.lsock.bind(self.path)
        self.lsock.listen(1)
        self.error = None
        self.sent = 0
        self.thread = threading.Thread(target=self._run, args=(script,),
                                       daemon=True)
        self.thread.start()
        test.addCleanup(self.close)

    def _run(self, script):
        conn, _ = self.lsock.accept()
        conn.settimeout(30 * cbtest.SCALE)
        try:
            script(self, conn)
        except Exception as e:   # reported by close()
            self.error = e
        finally:
            conn.close()

    def read_request(self, conn, unpacker):
        while True:
            for m in unpacker:
                return m
            data = conn.recv(65536)
            if not data:
                return None
            unpacker.feed(data)

    def close(self):
        self.thread.join(30 * cbtest.SCALE)
        self.lsock.close()


def respond(msgid, result, err=None):
    return msgpack.packb([1, msgid, err, result], use_bin_type=True)


class FakeBrokerTest(Recorded, unittest.TestCase):
    """How the client reads, against a scripted peer."""

    def test_timed_out_call_leaves_the_connection_usable(self):
        def script(fb, conn):
            up = msgpack.Unpacker(raw=False)
            first = fb.read_request(conn, up)
            second = fb.read_request(conn, up)
            # The late answer to the abandoned call, then the right one.
            conn.sendall(respond(first[1], {"late": True}) +
                         respond(second[1], {"uid": 42}))
            fb.requests = [first, second]
            fb.read_request(conn, up)

        fb = FakeBroker(self, script)
        with credbroker.connect(fb.path, timeout=0.3) as c:
            t0 = time.monotonic()
            with self.assertRaises(credbroker.Timeout) as cm:
                c.hello()
            self.assertEqual(cm.exception.message,
                             "no response to msgid 1 within the time limit")
            self.assertLess(time.monotonic() - t0, 20)
            self.assertFalse(c.closed)
            self.assertEqual(c.call("hello", timeout=30), {"uid": 42})
        fb.close()
        self.assertIsNone(fb.error)
        self.assertEqual([r[:3] for r in fb.requests],
                         [[0, 1, "hello"], [0, 2, "hello"]])
        self.assertEqual(fb.requests[0][3], [{}])

    def test_notifications_are_skipped(self):
        def script(fb, conn):
            up = msgpack.Unpacker(raw=False)
            req = fb.read_request(conn, up)
            conn.sendall(msgpack.packb([2, "note", [1]]) +
                         respond(req[1], "ok"))
            fb.read_request(conn, up)

        fb = FakeBroker(self, script)
        with credbroker.connect(fb.path) as c:
            self.assertEqual(c.call("x", {"a": b"\x00"}), "ok")
        fb.close()
        self.assertIsNone(fb.error)

    def test_response_over_the_size_limit_is_refused(self):
        limit = 1 << 20

        def script(fb, conn):
            up = msgpack.Unpacker(raw=False)
            req = fb.read_request(conn, up)
            # [1, msgid, nil, bin of 64 MiB], streamed until the client
            # hangs up.
            conn.sendall(b"\x94\x01" + msgpack.packb(req[1]) +
                         b"\xc0\xc6\x04\x00\x00\x00")
            chunk = b"\0" * 65536
            try:
                while fb.sent < (64 << 20):
                    conn.sendall(chunk)
                    fb.sent += len(chunk)
            except OSError:
                pass

        fb = FakeBroker(self, script)
        c = credbroker.connect(fb.path, max_response=limit)
        with self.assertRaises(credbroker.ProtocolError) as cm:
            c.hello()
        self.assertEqual(cm.exception.message,
                         "the response is larger than the limit of "
                         "1048576 bytes")
        self.assertTrue(c.closed)
        fb.close()
        self.assertIsNone(fb.error)
        # It stopped reading near the limit (plus what the kernel
        # buffers), not at 64 MiB.
        self.assertLess(fb.sent, 16 << 20)

    def test_malformed_msgpack_and_an_odd_message_are_refused(self):
        for junk, message in ((b"\xc1", "the broker sent malformed msgpack"),
                              (msgpack.packb([0, 1, "x", []]),
                               "the broker sent a message that is not a "
                               "response"),
                              (msgpack.packb([1, 1, "oops", None]),
                               "the broker sent a malformed error")):
            def script(fb, conn, junk=junk):
                up = msgpack.Unpacker(raw=False)
                fb.read_request(conn, up)
                conn.sendall(junk)
                fb.read_request(conn, up)

            fb = FakeBroker(self, script)
            c = credbroker.connect(fb.path)
            with self.assertRaises(credbroker.ProtocolError) as cm:
                c.hello()
            self.assertEqual(cm.exception.message, message)
            self.assertTrue(c.closed)
            fb.close()
            self.assertIsNone(fb.error)


class InstallTest(ClientTestCase):
    """pip installs the package from the source tree, offline."""

    def test_pip_installs_the_package_from_the_source_tree(self):
        pip = subprocess.run([sys.executable, "-m", "pip", "--version"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertEqual(pip.returncode, 0,
                         "pip is needed: install python3-pip "
                         "(scripts/install-deps)")
        work = cbtest.make_tmpdir("cbpip")
        self.addCleanup(cbtest.remove_tmpdir, work)
        # A copy, so that the build leaves nothing in the source tree.
        src = os.path.join(work, "src")
        shutil.copytree(PKG_DIR, src,
                        ignore=shutil.ignore_patterns("__pycache__", "build",
                                                      "*.egg-info"))
        target = os.path.join(work, "site")
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1",
                   PIP_NO_INPUT="1", PIP_ROOT_USER_ACTION="ignore")
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps",
             "--no-build-isolation", "--no-index", "--target", target, src],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
            cwd=work, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout.decode())
        self.assertTrue(os.path.isfile(os.path.join(target, "credbroker",
                                                    "__init__.py")))
        meta = os.path.join(target, "credbroker-%s.dist-info"
                            % credbroker.__version__, "METADATA")
        with open(meta) as f:
            text = f.read()
        self.assertIn("Name: credbroker\n", text)
        self.assertIn("Requires-Dist: msgpack (>=1.0)", text)
        # The installed copy, not the source tree, talks to the daemon.
        script = ("import credbroker, json, sys\n"
                  "with credbroker.connect(sys.argv[1]) as c:\n"
                  "    print(json.dumps([credbroker.__file__,"
                  " c.hello()['protocol']]))\n")
        r = subprocess.run([sys.executable, "-B", "-s", "-c", script,
                            self.d.socket],
                           env={"PYTHONPATH": target, "PATH": "/usr/bin:/bin"},
                           cwd="/", stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        path, proto = json.loads(r.stdout)
        self.assertEqual(path, os.path.join(target, "credbroker",
                                            "__init__.py"))
        self.assertEqual(proto, 1)


def tearDownModule():
    """After a full run: every method of methods.def answered with success
    through the package, and the main error codes were mapped."""
    loader = unittest.defaultTestLoader
    all_tests = set()

    def walk(suite):
        for t in suite:
            if isinstance(t, unittest.TestSuite):
                walk(t)
            else:
                all_tests.add(t.id())
    walk(loader.loadTestsFromModule(sys.modules[__name__]))
    if not all_tests <= RAN:
        return      # a selection of tests ran
    missing = [m for m in METHODS if m not in CALLED_OK]
    if missing:
        raise AssertionError("methods never called with success through "
                             "the package: %s" % ", ".join(missing))
    codes = {"bad_request", "forbidden", "not_found", "conflict",
             "not_configured", "unavailable", "too_large"}
    if not codes <= RAISED:
        raise AssertionError("error codes never raised through the "
                             "package: %s" % ", ".join(sorted(codes - RAISED)))


if __name__ == "__main__":
    cbtest.main()

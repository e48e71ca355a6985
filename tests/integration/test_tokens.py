"""
Keys and tokens (SPEC section 9), checked from outside with independent
implementations: Python's `cryptography` package decrypts and verifies
partner tokens, PyJWT (Debian python3-jwt) decodes the broker's JWTs, and
tokens made by PyJWT are judged by token.verify.

  * KeyPairTest: keypair.generate/import/get/list/delete, versions, and
    every bad key refused with nothing changed.
  * PeerKeyTest: peerkey.set/get/list/delete.
  * PartnerTokenTest, EmbedTokenTest, SsoTokenTest, VerifyTest: the
    tokens, their versions and their limits.
  * KeyRotationTest: key.rotate of the master key keeps every key pair
    and peer key working, across a restart on the new key.
  * KeyCanaryTest: a private key and the minted tokens never reach the
    log, the audit trail, the database file or an error message.
  * KeyMemoryTest: after an import and a few hundred mints, no copy of
    the imported key's PEM text (nor its private numbers) is left in the
    daemon's memory.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import find_leaks, strong_key  # noqa: E402

import jwt  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402,E501

_KEYS = {}


def rsa_key(name, bits=2048):
    """A private RSA key, made once per name for the whole run."""
    if name not in _KEYS:
        _KEYS[name] = rsa.generate_private_key(public_exponent=65537,
                                               key_size=bits)
    return _KEYS[name]


def pkcs1(key, password=None):
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             enc).decode()


def pkcs8(key, password=None):
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8, enc).decode()


def spki(key):
    pub = key.public_key() if hasattr(key, "public_key") else key
    return pub.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo
                            ).decode()


def rsa_public_pkcs1(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.PKCS1).decode()


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_json(obj):
    return b64url(json.dumps(obj, separators=(",", ":")).encode())


def same_public(pem, key):
    """Whether SPKI PEM text is the public part of key."""
    pub = serialization.load_pem_public_key(pem.encode())
    return pub.public_numbers() == key.public_key().public_numbers()


class KeysTestCase(cbtest.DaemonTestCase):

    def import_key(self, ident, key, form=pkcs1):
        return self.c.ok("keypair.import", {"ident": ident,
                                            "pem": form(key)})

    def set_peer(self, ident, version, key):
        return self.c.ok("peerkey.set", {"ident": ident, "version": version,
                                         "pem": spki(key)})

    def state(self):
        """Everything the key methods can show, to prove nothing changed."""
        out = {"keypairs": self.c.ok("keypair.list", {}),
               "peerkeys": self.c.ok("peerkey.list", {})}
        for kp in out["keypairs"]:
            out["kp " + kp["ident"]] = self.c.ok("keypair.get",
                                                 {"keypair": kp["ident"]})
        return out


class KeyPairTest(KeysTestCase):

    def test_generate_makes_rsa_2048_with_e_65537(self):
        res = self.c.ok("keypair.generate", {"ident": "partner"})
        self.assertEqual(res["ident"], "partner")
        self.assertEqual(res["version"], 1)
        self.assertEqual(res["current"], 1)
        v, = res["versions"]
        self.assertEqual((v["version"], v["algorithm"], v["bits"]),
                         (1, "RSA", 2048))
        pub = serialization.load_pem_public_key(v["public_pem"].encode())
        self.assertEqual(pub.key_size, 2048)
        self.assertEqual(pub.public_numbers().e, 65537)
        self.assertTrue(v["public_pem"].startswith(
            "-----BEGIN PUBLIC KEY-----\n"), v["public_pem"])
        # The login service's SignaturePublicKey form: base64 of the PEM.
        self.assertEqual(base64.b64decode(v["public_pem_base64"]).decode(),
                         v["public_pem"])
        # No private part in any answer.
        for m, p in (("keypair.get", {"keypair": "partner"}),
                     ("keypair.list", {})):
            text = json.dumps(self.c.ok(m, p))
            self.assertNotIn("PRIVATE", text)

    def test_generation_runs_off_the_event_loop(self):
        # RSA key generation costs tens to hundreds of milliseconds of
        # CPU, which the event loop must not spend: it runs on libuv's
        # thread pool.  The CPU time of the daemon's threads
        # (/proc/PID/task/TID/stat, utime + stime) shows where it went,
        # whatever the machine's load: the main thread, which runs the
        # loop, must have spent a small part of what the others spent.
        def cpu_ticks():
            out = {}
            for tid in os.listdir("/proc/%d/task" % self.d.pid):
                with open("/proc/%d/task/%s/stat" % (self.d.pid, tid)) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                out[int(tid)] = int(fields[11]) + int(fields[12])
            return out
        self.c.ok("hello", {})
        before = cpu_ticks()
        for i in range(6):
            res = self.c.ok("keypair.generate", {"ident": "g%d" % i})
            self.assertEqual(res["versions"][0]["bits"], 2048)
        after = cpu_ticks()
        loop = after[self.d.pid] - before.get(self.d.pid, 0)
        pool = sum(v - before.get(t, 0) for t, v in after.items()
                   if t != self.d.pid)
        self.assertGreater(pool, 5 * loop,
                           "key generation spent %d ticks on the event loop's "
                           "thread and %d on other threads" % (loop, pool))

    def test_import_pkcs1_then_pkcs8_adds_versions(self):
        a, b = rsa_key("a"), rsa_key("b", 3072)
        r1 = self.import_key("login", a, pkcs1)
        self.assertEqual((r1["version"], r1["current"]), (1, 1))
        r2 = self.import_key("login", b, pkcs8)
        self.assertEqual((r2["version"], r2["current"]), (2, 2))
        got = self.c.ok("keypair.get", {"keypair": "login"})
        self.assertEqual([v["version"] for v in got["versions"]], [1, 2])
        self.assertEqual([v["bits"] for v in got["versions"]], [2048, 3072])
        self.assertTrue(same_public(got["versions"][0]["public_pem"], a))
        self.assertTrue(same_public(got["versions"][1]["public_pem"], b))
        lst = self.c.ok("keypair.list", {})
        self.assertEqual([(k["ident"], k["current"], k["versions"])
                          for k in lst], [("login", 2, [1, 2])])

    def test_versions_are_never_reused(self):
        for name in ("a", "b"):
            self.import_key("kp", rsa_key(name))
        self.assertEqual(self.c.ok("keypair.delete",
                                   {"keypair": "kp", "version": 2}),
                         {"removed": 1})
        self.assertEqual(self.c.ok("keypair.get", {"keypair": "kp"})
                         ["current"], 1)
        r = self.import_key("kp", rsa_key("c"))
        self.assertEqual(r["version"], 3)
        self.assertEqual(self.c.ok("keypair.delete", {"keypair": "kp"}),
                         {"removed": 2})
        self.assertError(self.c.call("keypair.get", {"keypair": "kp"}),
                         "not_found")
        self.assertEqual(self.c.ok("keypair.list", {}), [])
        self.assertError(self.c.call("keypair.delete", {"keypair": "kp"}),
                         "not_found")

    def test_bad_keys_are_refused_and_change_nothing(self):
        self.import_key("kp", rsa_key("a"))
        before = self.state()
        small = rsa_key("small", 1024)
        ec_key = ec.generate_private_key(ec.SECP256R1())
        ec_pem = ec_key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()).decode()
        cases = [
            ("garbage", "this is not a key", "bad_request", None),
            ("empty", "", "bad_request", None),
            ("truncated PEM", pkcs1(rsa_key("a"))[:300], "bad_request",
             None),
            ("encrypted PKCS#8", pkcs8(rsa_key("a"), b"pass phrase"),
             "bad_request", "encrypted"),
            ("encrypted PKCS#1", pkcs1(rsa_key("a"), b"pass phrase"),
             "bad_request", "encrypted"),
            ("RSA-1024", pkcs1(small), "bad_request", "1024"),
            ("EC key", ec_pem, "bad_request", "EC"),
            ("public key", spki(rsa_key("a")), "bad_request", None),
            ("oversized", "A" * 20000, "too_large", None),
        ]
        for what, pem, code, word in cases:
            with self.subTest(what):
                for ident in ("kp", "fresh"):
                    err = self.assertError(self.c.call(
                        "keypair.import", {"ident": ident, "pem": pem}), code)
                    if word:
                        self.assertIn(word, err["message"])
                    # The message never quotes the key's text.
                    for line in pem.splitlines():
                        if len(line) > 20:
                            self.assertNotIn(line, err["message"])
        for params in ({"ident": "Bad-Ident", "pem": pkcs1(rsa_key("a"))},
                       {"ident": "kp"},
                       {"ident": "kp", "pem": 7},
                       {"ident": "kp", "pem": pkcs1(rsa_key("a")), "x": 1}):
            self.assertError(self.c.call("keypair.import", params),
                             "bad_request")
        self.assertEqual(self.state(), before)

    def test_unknown_key_and_version(self):
        self.import_key("kp", rsa_key("a"))
        for m, p in (("keypair.get", {"keypair": "nope"}),
                     ("keypair.delete", {"keypair": "kp", "version": 5}),
                     ("token.sso", {"keypair": "nope", "claims": {}}),
                     ("token.sso", {"keypair": "kp", "claims": {},
                                    "keypair_version": 2}),
                     ("token.embed", {"keypair": "kp", "embed_id": "e",
                                      "keypair_version": 9})):
            with self.subTest(m, p=p):
                err = self.assertError(self.c.call(m, p), "not_found")
                self.assertTrue("nope" in err["message"] or
                                "version" in err["message"], err)
        for v in (0, -1, 2 ** 31, "1"):
            self.assertError(self.c.call("token.sso", {
                "keypair": "kp", "claims": {}, "keypair_version": v}),
                "bad_request")


class PeerKeyTest(KeysTestCase):

    def test_set_get_list_delete(self):
        dl1, dl2 = rsa_key("dl1"), rsa_key("dl2")
        r = self.set_peer("datalens", 3, dl1)
        self.assertEqual((r["ident"], r["current"]), ("datalens", 3))
        # The same key again changes nothing; PKCS#1 public PEM is fine.
        self.c.ok("peerkey.set", {"ident": "datalens", "version": 3,
                                  "pem": rsa_public_pkcs1(dl1)})
        err = self.assertError(self.c.call("peerkey.set", {
            "ident": "datalens", "version": 3, "pem": spki(dl2)}),
            "conflict")
        self.assertIn("version 3", err["message"])
        self.set_peer("datalens", 7, dl2)
        got = self.c.ok("peerkey.get", {"peerkey": "datalens"})
        self.assertEqual(got["current"], 7)
        self.assertEqual([v["version"] for v in got["versions"]], [3, 7])
        self.assertTrue(same_public(got["versions"][0]["public_pem"], dl1))
        self.assertTrue(same_public(got["versions"][1]["public_pem"], dl2))
        self.assertEqual([(k["ident"], k["versions"]) for k in
                          self.c.ok("peerkey.list", {})],
                         [("datalens", [3, 7])])
        self.assertEqual(self.c.ok("peerkey.delete",
                                   {"peerkey": "datalens", "version": 7}),
                         {"removed": 1})
        self.assertEqual(self.c.ok("peerkey.get", {"peerkey": "datalens"})
                         ["current"], 3)
        self.c.ok("peerkey.delete", {"peerkey": "datalens"})
        self.assertEqual(self.c.ok("peerkey.list", {}), [])

    def test_bad_peer_keys_are_refused(self):
        before = self.state()
        ec_pub = spki(ec.generate_private_key(ec.SECP256R1()))
        for what, p, code in (
                ("private key", {"pem": pkcs1(rsa_key("a"))}, "bad_request"),
                ("RSA-1024", {"pem": spki(rsa_key("small", 1024))},
                 "bad_request"),
                ("EC key", {"pem": ec_pub}, "bad_request"),
                ("garbage", {"pem": "-----BEGIN PUBLIC KEY-----\nxx\n"},
                 "bad_request"),
                ("no version", {"version": None}, "bad_request"),
                ("version 0", {"version": 0}, "bad_request")):
            with self.subTest(what):
                params = {"ident": "peer", "version": 1,
                          "pem": spki(rsa_key("a"))}
                params.update(p)
                params = {k: v for k, v in params.items() if v is not None}
                self.assertError(self.c.call("peerkey.set", params), code)
        self.assertEqual(self.state(), before)


class PartnerTokenTest(KeysTestCase):

    def setUp(self):
        super().setUp()
        self.partner = rsa_key("partner")
        self.datalens = rsa_key("datalens")
        self.import_key("partner", self.partner)
        self.set_peer("datalens", 4, self.datalens)

    def check_token(self, token, payload_bytes, pv, kv, kp_key):
        parts = token.split(":")
        self.assertEqual(len(parts), 4, token)
        self.assertEqual(parts[:2], [str(pv), str(kv)])
        ct = base64.b64decode(parts[2], validate=True)
        sig = base64.b64decode(parts[3], validate=True)
        self.assertEqual(base64.b64encode(ct).decode(), parts[2])
        # DataLens's side: decrypt with its private key...
        pt = self.datalens.decrypt(ct, padding.PKCS1v15())
        self.assertEqual(pt, payload_bytes)
        # ...and check the partner's SHA-1 signature of the ciphertext.
        kp_key.public_key().verify(sig, ct, padding.PKCS1v15(),
                                   hashes.SHA1())

    def test_partner_token_decrypts_and_verifies(self):
        res = self.c.ok("token.partner", {
            "keypair": "partner", "peerkey": "datalens",
            "payload": {"db_name": "client_1234383"}})
        self.assertEqual((res["keypair_version"], res["peerkey_version"]),
                         (1, 4))
        self.check_token(res["token"], b'{"db_name":"client_1234383"}', 4, 1,
                         self.partner)
        # RSA PKCS#1 v1.5 encryption is randomised: a new token each time.
        again = self.c.ok("token.partner", {
            "keypair": "partner", "peerkey": "datalens",
            "payload": {"db_name": "client_1234383"}})
        self.assertNotEqual(again["token"], res["token"])

    def test_new_version_is_used_and_old_one_on_request(self):
        newer = rsa_key("partner2")
        self.assertEqual(self.import_key("partner", newer)["version"], 2)
        payload = {"db_name": "c", "n": 1}
        res = self.c.ok("token.partner", {
            "keypair": "partner", "peerkey": "datalens", "payload": payload})
        self.check_token(res["token"], b'{"db_name":"c","n":1}', 4, 2, newer)
        res = self.c.ok("token.partner", {
            "keypair": "partner", "peerkey": "datalens", "payload": payload,
            "keypair_version": 1})
        self.check_token(res["token"], b'{"db_name":"c","n":1}', 4, 1,
                         self.partner)

    def test_payload_that_does_not_fit_one_block_is_too_large(self):
        # 2048-bit peer: at most 256 - 11 = 245 bytes of JSON.
        fits = {"d": "x" * (245 - len('{"d":""}'))}
        res = self.c.ok("token.partner", {
            "keypair": "partner", "peerkey": "datalens", "payload": fits})
        self.check_token(res["token"], json.dumps(
            fits, separators=(",", ":")).encode(), 4, 1, self.partner)
        over = {"d": "x" * (246 - len('{"d":""}'))}
        err = self.assertError(self.c.call("token.partner", {
            "keypair": "partner", "peerkey": "datalens", "payload": over}),
            "too_large")
        self.assertIn("245", err["message"])
        for bad in ("text", 5, [1], None):
            self.assertError(self.c.call("token.partner", {
                "keypair": "partner", "peerkey": "datalens",
                "payload": bad}), "bad_request")


class EmbedTokenTest(KeysTestCase):

    def setUp(self):
        super().setUp()
        self.key = rsa_key("embed")
        self.import_key("embed", self.key)
        self.pub = spki(self.key)

    def test_embed_token_decodes_with_pyjwt(self):
        t0 = int(time.time())
        res = self.c.ok("token.embed", {
            "keypair": "embed", "embed_id": "ieez7abc",
            "params": {"region": "north", "ids": ["1", "2"]}})
        tok = res["token"]
        self.assertEqual(jwt.get_unverified_header(tok),
                         {"alg": "PS256", "typ": "JWT"})
        claims = jwt.decode(tok, self.pub, algorithms=["PS256"])
        self.assertEqual(claims["embedId"], "ieez7abc")
        self.assertEqual(claims["dlEmbedService"],
                         "YC_DATALENS_EMBEDDING_SERVICE_MARK")
        self.assertEqual(claims["params"], {"region": "north",
                                            "ids": ["1", "2"]})
        self.assertEqual(claims["exp"] - claims["iat"], 600)
        self.assertEqual((res["iat"], res["exp"]),
                         (claims["iat"], claims["exp"]))
        self.assertLessEqual(abs(claims["iat"] - t0), 5)
        self.assertNotIn("url", res)
        # PSS with salt length 32, checked without PyJWT too.
        h, p, s = tok.split(".")
        sig = base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))
        self.key.public_key().verify(
            sig, (h + "." + p).encode(),
            padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
            hashes.SHA256())
        # RS256 is not what was used.
        with self.assertRaises(jwt.InvalidAlgorithmError):
            jwt.decode(tok, self.pub, algorithms=["RS256"])

    def test_embed_url(self):
        for base in ("https://datalens.example.com",
                     "https://datalens.example.com/"):
            res = self.c.ok("token.embed", {
                "keypair": "embed", "embed_id": "e1", "ttl": 60,
                "url_base": base, "kind": "dash"})
            self.assertEqual(res["url"], "https://datalens.example.com/"
                             "embeds/dash#dl_embed_token=" + res["token"])
        res = self.c.ok("token.embed", {
            "keypair": "embed", "embed_id": "e1",
            "url_base": "https://dl.example.com/base", "kind": "chart"})
        self.assertTrue(res["url"].startswith(
            "https://dl.example.com/base/embeds/chart#dl_embed_token=ey"))

    def test_ttl_limits(self):
        res = self.c.ok("token.embed", {"keypair": "embed", "embed_id": "e",
                                        "ttl": 36000})
        claims = jwt.decode(res["token"], self.pub, algorithms=["PS256"])
        self.assertEqual(claims["exp"] - claims["iat"], 36000)
        before = self.state()
        for ttl in (36001, 0, -5, 10 ** 12, "600"):
            with self.subTest(ttl=ttl):
                err = self.assertError(self.c.call("token.embed", {
                    "keypair": "embed", "embed_id": "e", "ttl": ttl}),
                    "bad_request")
                self.assertIn("ttl", err["message"])
        self.assertEqual(self.state(), before)

    def test_bad_embed_parameters(self):
        for p in ({"kind": "chart"},
                  {"url_base": "https://x.example"},
                  {"url_base": "https://x.example", "kind": "widget"},
                  {"url_base": "ftp://x.example", "kind": "chart"},
                  {"url_base": "https://", "kind": "chart"},
                  {"url_base": "https://x.example/#f", "kind": "chart"},
                  {"url_base": "https://x.example/a b", "kind": "chart"},
                  {"params": {"a": 1}},
                  {"params": {"a": ["x", 2]}},
                  {"params": "a=b"},
                  {"embed_id": ""},
                  {"embed_id": 5},
                  {"unknown": 1}):
            with self.subTest(p=p):
                params = {"keypair": "embed", "embed_id": "e"}
                params.update(p)
                self.assertError(self.c.call("token.embed", params),
                                 "bad_request")


class SsoTokenTest(KeysTestCase):

    def test_sso_token_decodes_with_pyjwt(self):
        key = rsa_key("sso")
        res = self.import_key("sso", key)
        pub = res["versions"][0]["public_pem"]
        claims = {"sub": "u-42", "name": "Анна", "groups": ["analysts"],
                  "nested": {"a": [1, 2.5, True, None]}}
        got = self.c.ok("token.sso", {"keypair": "sso", "claims": claims,
                                      "ttl": 120})
        self.assertEqual(jwt.get_unverified_header(got["token"]),
                         {"alg": "RS256", "typ": "JWT"})
        dec = jwt.decode(got["token"], pub, algorithms=["RS256"])
        self.assertEqual(dec["exp"] - dec["iat"], 120)
        self.assertEqual((got["iat"], got["exp"]), (dec["iat"], dec["exp"]))
        del dec["iat"], dec["exp"]
        self.assertEqual(dec, claims)
        # What the login service is given: base64 of the PEM.
        b64 = res["versions"][0]["public_pem_base64"]
        jwt.decode(got["token"], base64.b64decode(b64), algorithms=["RS256"])

    def test_new_version_is_used_and_old_one_on_request(self):
        k1, k2 = rsa_key("sso"), rsa_key("sso2")
        self.import_key("sso", k1)
        self.import_key("sso", k2)
        got = self.c.ok("token.sso", {"keypair": "sso", "claims": {"a": 1}})
        self.assertEqual(got["keypair_version"], 2)
        jwt.decode(got["token"], spki(k2), algorithms=["RS256"])
        with self.assertRaises(jwt.InvalidSignatureError):
            jwt.decode(got["token"], spki(k1), algorithms=["RS256"])
        old = self.c.ok("token.sso", {"keypair": "sso", "claims": {"a": 1},
                                      "keypair_version": 1})
        self.assertEqual(old["keypair_version"], 1)
        jwt.decode(old["token"], spki(k1), algorithms=["RS256"])

    def test_bad_sso_parameters(self):
        self.import_key("sso", rsa_key("sso"))
        for p in ({"claims": {"exp": 1}}, {"claims": {"iat": 1}},
                  {"claims": "x"}, {"claims": {"a": b"\x00"}},
                  {"claims": {}, "ttl": 0}, {"claims": {}, "ttl": 86401}):
            with self.subTest(p=p):
                params = {"keypair": "sso"}
                params.update(p)
                self.assertError(self.c.call("token.sso", params),
                                 "bad_request")


class VerifyTest(KeysTestCase):

    def setUp(self):
        super().setUp()
        self.idp = rsa_key("idp")
        self.set_peer("idp", 1, self.idp)
        self.idp_pem = pkcs8(self.idp).encode()

    def make(self, claims, key=None, alg="RS256", headers=None):
        return jwt.encode(claims, key or self.idp_pem, algorithm=alg,
                          headers=headers)

    def verify(self, token, **kw):
        p = {"peerkey": "idp", "token": token}
        p.update(kw)
        return self.c.call("token.verify", p)

    def test_valid_token(self):
        now = int(time.time())
        claims = {"sub": "u1", "iat": now, "exp": now + 60, "nbf": now - 1}
        res = self.assertOk(self.verify(self.make(claims)))
        self.assertEqual(res["claims"], claims)
        self.assertEqual(res["peerkey_version"], 1)
        self.assertEqual(res["attributes"], {"roles": ["USERS"],
                                             "additional": {}})

    def test_tokens_that_must_be_refused(self):
        now = int(time.time())
        good = {"sub": "u1", "exp": now + 60}
        other = rsa_key("other")
        pub_pem = spki(self.idp).encode()
        header = b64url_json({"alg": "HS256", "typ": "JWT"})
        body = b64url_json(good)
        mac = hmac.new(pub_pem, (header + "." + body).encode(),
                       hashlib.sha256).digest()
        hs256 = header + "." + body + "." + b64url(mac)
        none = b64url_json({"alg": "none", "typ": "JWT"}) + "." + body + "."
        signed = self.make(good)
        h, p, s = signed.split(".")
        tampered = h + "." + b64url_json(dict(good, sub="admin")) + "." + s
        cases = [
            ("expired", self.make({"sub": "u", "exp": now - 120}), "exp"),
            ("not yet valid", self.make({"sub": "u", "nbf": now + 600}),
             "nbf"),
            ("wrong key", self.make(good, pkcs8(other).encode()), None),
            ("alg none", none, "none"),
            ("HS256 with the public PEM as secret", hs256, "HS256"),
            ("PS256", self.make(good, alg="PS256"), "PS256"),
            ("tampered payload", tampered, None),
            ("two parts", h + "." + p, None),
            ("four parts", signed + ".x", None),
            ("not base64url", h + ".!!!." + s, None),
            ("crit header", self.make(good, headers={"crit": ["exp"]}),
             "crit"),
            ("exp not a number", self.make({"sub": "u", "exp": "soon"}),
             "exp"),
            ("empty", "", None),
        ]
        for what, tok, word in cases:
            with self.subTest(what):
                err = self.assertError(self.verify(tok), "bad_request")
                if word:
                    self.assertIn(word, err["message"])
                if len(tok) > 30:
                    self.assertNotIn(tok[-30:], err["message"])
        self.assertError(self.verify("x" * 20000), "too_large")

    def test_leeway(self):
        now = int(time.time())
        # Expired 10 s ago: fine with the default leeway of 30 s.
        tok = self.make({"sub": "u", "exp": now - 10})
        self.assertOk(self.verify(tok))
        self.assertError(self.verify(tok, leeway=0), "bad_request")
        tok = self.make({"sub": "u", "nbf": now + 10})
        self.assertOk(self.verify(tok))
        self.assertError(self.verify(tok, leeway=0), "bad_request")
        for bad in (-1, 601, "5"):
            self.assertError(self.verify(tok, leeway=bad), "bad_request")

    def test_older_peer_versions_still_verify(self):
        newer = rsa_key("idp2")
        self.set_peer("idp", 2, newer)
        old_tok = self.make({"sub": "u"})
        new_tok = self.make({"sub": "u"}, pkcs8(newer).encode())
        self.assertEqual(self.assertOk(self.verify(old_tok))
                         ["peerkey_version"], 1)
        self.assertEqual(self.assertOk(self.verify(new_tok))
                         ["peerkey_version"], 2)
        self.assertError(self.verify(old_tok, peerkey_version=2),
                         "bad_request")
        self.assertOk(self.verify(old_tok, peerkey_version=1))
        self.assertError(self.verify(old_tok, peerkey_version=3),
                         "not_found")
        self.assertError(self.c.call("token.verify", {
            "peerkey": "nope", "token": old_tok}), "not_found")

    def test_attributes(self):
        claims = {
            "sub": "u-1",
            "given_name": "Ivan",
            "profile": {"id": 42, "name": "Иван", "a/b": "slash",
                        "m~n": "tilde", "~1": "escaped tilde",
                        "": "empty"},
            "groups": ["analysts", "editors"],
            "upn": "ivan@corp.example",
            "contact": {"mail": "ivan@example.com"},
            "dept": "finance",
            "list": [{"x": "first"}, {"x": "second"}],
        }
        tok = self.make(claims)
        spec = {"user_id": "/profile/id", "user_name": "given_name",
                "roles": "/groups", "upn": "upn",
                "email": "/contact/mail",
                "additional": ["dept", "absent", "list"]}
        res = self.assertOk(self.verify(tok, attributes=spec))
        self.assertEqual(res["attributes"], {
            "user_id": 42, "user_name": "Ivan",
            "roles": ["analysts", "editors"], "upn": "ivan@corp.example",
            "email": "ivan@example.com",
            "additional": {"dept": "finance",
                           "list": [{"x": "first"}, {"x": "second"}]}})
        # Every JSON pointer form (RFC 6901).
        for ref, want in (("/profile/a~1b", "slash"),
                          ("/profile/m~0n", "tilde"),
                          ("/profile/~01", "escaped tilde"),
                          ("/profile/", "empty"),
                          ("/list/1/x", "second"),
                          ("/profile/name", "Иван"),
                          ("sub", "u-1")):
            with self.subTest(ref=ref):
                res = self.assertOk(self.verify(
                    tok, attributes={"user_name": ref}))
                self.assertEqual(res["attributes"]["user_name"], want)
        for ref in ("/list/01", "/list/-", "/list/9", "/nope", "nope",
                    "/sub/x"):
            with self.subTest(absent=ref):
                res = self.assertOk(self.verify(
                    tok, attributes={"user_name": ref}))
                self.assertNotIn("user_name", res["attributes"])
        for spec in ({"user_name": "/a~2b"}, {"user_name": "/a~"},
                     {"bogus": "x"}, {"user_name": 5},
                     {"additional": "dept"}):
            with self.subTest(bad=spec):
                self.assertError(self.verify(tok, attributes=spec),
                                 "bad_request")

    def test_roles_rules(self):
        for roles, want in ((["a", "b"], ["a", "b"]), ("solo", ["solo"]),
                            ([], [])):
            res = self.assertOk(self.verify(
                self.make({"sub": "u", "groups": roles}),
                attributes={"roles": "groups"}))
            self.assertEqual(res["attributes"]["roles"], want)
        # Missing roles (no claim, or no reference): the USERS group.
        for attrs in ({"roles": "groups"}, {"roles": "/x/groups"}, {}):
            res = self.assertOk(self.verify(self.make({"sub": "u"}),
                                            attributes=attrs))
            self.assertEqual(res["attributes"]["roles"], ["USERS"])
        for roles in (["users", "ADMINISTRATORS"], "ADMINISTRATORS",
                      ["administrators"]):
            with self.subTest(roles=roles):
                err = self.assertError(self.verify(
                    self.make({"sub": "u", "g": {"r": roles}}),
                    attributes={"roles": "/g/r"}), "forbidden")
                self.assertIn("ADMINISTRATORS", err["message"])
        self.assertError(self.verify(self.make({"sub": "u", "g": [1]}),
                                     attributes={"roles": "g"}),
                         "bad_request")


class KeyRotationTest(KeysTestCase):

    def test_master_key_rotation_keeps_every_key_working(self):
        kp, peer = rsa_key("rot"), rsa_key("rotpeer")
        self.import_key("rot", kp)
        self.import_key("rot", rsa_key("rot2"))
        self.set_peer("peer", 1, peer)
        db_before = self.sealed_rows()
        new_path = os.path.join(self.d.dir, "new.key")
        cbtest.write_file(new_path, strong_key().encode() + b"\n")
        self.c.ok("key.rotate", {"new_key_file": new_path})
        st = cbtest.poll_until(
            lambda: (lambda s: s if s["rotation"]["state"] == "done"
                     else None)(self.c.ok("key.status", {})),
            60 * cbtest.SCALE, what="the rotation to finish")
        self.assertEqual(st["version"], 2)
        after = self.sealed_rows()
        self.assertEqual(sorted(after), sorted(db_before))
        for k in after:
            self.assertNotEqual(after[k], db_before[k], k)
            self.assertTrue(after[k].startswith("CB1:2:"), after[k][:10])
        self.check_keys(kp, peer)
        # And after a restart on the new key alone.
        self.c.close()
        self.d.stop()
        self.d.write_key(open(new_path, "rb").read().strip().decode())
        self.d.start()
        self.c = self.d.client()
        self.check_keys(kp, peer)

    def sealed_rows(self):
        rows = {}
        for table in ("keypair_versions", "peerkeys"):
            for ident, version, sealed in self.d.store_rows(
                    "SELECT ident, version, sealed FROM %s" % table):
                rows[(table, ident, version)] = sealed
        return rows

    def check_keys(self, kp, peer):
        got = self.c.ok("keypair.get", {"keypair": "rot"})
        self.assertTrue(same_public(got["versions"][0]["public_pem"], kp))
        tok = self.c.ok("token.sso", {"keypair": "rot", "claims": {"a": 1},
                                      "keypair_version": 1})["token"]
        jwt.decode(tok, spki(kp), algorithms=["RS256"])
        idp = jwt.encode({"sub": "u"}, pkcs8(peer).encode(),
                         algorithm="RS256")
        self.c.ok("token.verify", {"peerkey": "peer", "token": idp})


class KeyCanaryTest(KeysTestCase):

    def setUp(self):
        self.audit = None
        super().setUp()

    daemon_kwargs = {}

    def test_private_key_and_tokens_never_leak(self):
        audit_path = os.path.join(self.d.dir, "audit.log")
        self.c.close()
        self.d.stop()
        self.d.extra = {"audit": [("file", audit_path)],
                        "log": [("level", "debug")]}
        self.d.write_config()
        self.d.start()
        self.c = self.d.client()
        key = rsa_key("canary")
        pem = pkcs1(key)
        peer = rsa_key("canarypeer")
        self.c.ok("keypair.import", {"ident": "canary", "pem": pem})
        self.c.ok("keypair.import", {"ident": "canary", "pem": pkcs8(key)})
        self.set_peer("peer", 1, peer)
        tokens = []
        for i in range(5):
            tokens.append(self.c.ok("token.sso", {
                "keypair": "canary", "claims": {"i": i}})["token"])
            tokens.append(self.c.ok("token.embed", {
                "keypair": "canary", "embed_id": "e%d" % i})["token"])
            tokens.append(self.c.ok("token.partner", {
                "keypair": "canary", "peerkey": "peer",
                "payload": {"i": i}})["token"])
        idp = jwt.encode({"sub": "u"}, pkcs8(peer).encode(), algorithm="RS256")
        self.c.ok("token.verify", {"peerkey": "peer", "token": idp})
        tokens.append(idp)
        # Failing calls carrying the key or a token.
        errors = []
        for m, p in (("keypair.import", {"ident": "Bad", "pem": pem}),
                     ("keypair.import", {"ident": "x", "pem": pem[:-40]}),
                     ("keypair.import", {"ident": "x", "pem": pem,
                                         "junk": 1}),
                     ("token.verify", {"peerkey": "peer",
                                       "token": tokens[0]}),
                     ("token.verify", {"peerkey": "nope", "token": idp}),
                     ("token.verify", {"peerkey": "peer",
                                       "token": idp[:-5]})):
            err, _ = self.c.call(m, p)
            self.assertIsNotNone(err, (m, p))
            errors.append(err["message"].encode())
        self.c.close()
        self.d.stop()

        d = key.private_numbers()
        secrets_ = [n.to_bytes((n.bit_length() + 7) // 8, "big")[:64]
                    for n in (d.d, d.p, d.q, d.dmp1, d.dmq1, d.iqmp)]
        der = key.private_bytes(serialization.Encoding.DER,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
        secrets_.append(der[40:120])
        body = [l for l in pem.splitlines() if not l.startswith("-----")]
        secrets_ += [l.encode() for l in body]
        tok_parts = []
        for t in tokens:
            for part in t.replace(":", ".").split("."):
                if len(part) >= 40:
                    tok_parts.append(part.encode())
        with open(audit_path, "rb") as f:
            audit = f.read()
        self.assertIn(b'"keys":["keypair/canary/2"]', audit)
        self.assertIn(b'"keys":["keypair/canary/2","peerkey/peer/1"]', audit)
        self.assertIn(b'"method":"token.verify"', audit)
        places = [("stderr", self.d.all_logs()), ("audit", audit),
                  ("error messages", b"\n".join(errors))]
        places += self.d.store_blobs()
        self.assertIn(b"keypair/canary/", self.d.all_logs())
        for where, blob in places:
            with self.subTest(where):
                for s in secrets_ + tok_parts:
                    self.assertNotIn(s, blob, where)
                self.assertEqual(find_leaks(blob, secrets_[:6]), [], where)


class KeyMemoryTest(KeysTestCase):
    """No copy of an imported private key's PEM text, nor of its private
    numbers, stays in the daemon's memory once the import has returned and
    a few hundred tokens were minted with it (the scanner of
    test_memory.py reads the live daemon through /proc/PID/mem)."""

    def test_no_copy_of_the_private_key_in_daemon_memory(self):
        if os.geteuid() != 0:
            self.fail("reading the non-dumpable daemon's memory needs root")
        import test_memory
        key = rsa_key("memory")
        peer = rsa_key("memorypeer")
        pem1, pem8 = pkcs1(key), pkcs8(key)
        self.c.ok("keypair.import", {"ident": "mem", "pem": pem1})
        self.c.ok("keypair.import", {"ident": "mem", "pem": pem8})
        self.set_peer("peer", 1, peer)
        # Refused imports of the same text (after parsing, and before).
        self.assertError(self.c.call("keypair.import", {
            "ident": "Bad", "pem": pem1}), "bad_request")
        self.assertError(self.c.call("keypair.import", {
            "ident": "mem", "pem": pem1, "junk": 1}), "bad_request")
        minted = 0
        other = self.d.client()
        try:
            for i in range(100):
                for v in (1, 2):
                    self.c.ok("token.sso", {"keypair": "mem",
                                            "claims": {"i": i},
                                            "keypair_version": v})
                    minted += 1
                other.ok("token.embed", {"keypair": "mem",
                                         "embed_id": "e%d" % i})
                self.c.ok("token.partner", {"keypair": "mem",
                                            "peerkey": "peer",
                                            "payload": {"i": i}})
                minted += 2
            self.c.ok("keypair.get", {"keypair": "mem"})
        finally:
            other.close()
        self.assertGreaterEqual(minted, 400)
        self.c.ok("hello", {})

        n = key.private_numbers()
        patterns = {"control: socket path": self.d.socket.encode()}
        for name, v in (("d", n.d), ("p", n.p), ("q", n.q),
                        ("dmp1", n.dmp1), ("dmq1", n.dmq1),
                        ("iqmp", n.iqmp)):
            raw = v.to_bytes((v.bit_length() + 7) // 8, "big")
            patterns["number %s" % name] = raw[:32]
            patterns["number %s, little-endian" % name] = raw[::-1][:32]
        for form, pem in (("PKCS#1", pem1), ("PKCS#8", pem8)):
            for j, line in enumerate(pem.splitlines()):
                if not line.startswith("-----"):
                    patterns["%s PEM line %d" % (form, j)] = line.encode()
        scanner = test_memory.Scanner(self.d.pid, cbtest.daemon_sanitized())
        hits, counts = scanner.scan(patterns)
        self.assertGreater(counts.get("control: socket path", 0), 0,
                           "the scan found not even the socket path")
        leaks = {l: c for l, c in counts.items()
                 if not l.startswith("control")}
        if leaks:
            self.fail("copies of the private key in the daemon's memory: "
                      "%s\n%s" % (leaks, "\n".join(
                          h.describe() for h in hits
                          if not h.label.startswith("control"))[:6000]))


if __name__ == "__main__":
    unittest.main(verbosity=2)

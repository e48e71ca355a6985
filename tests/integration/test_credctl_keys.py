"""
credctl keypair and peerkey commands (SPEC sections 9.1 and 9.2) against a
real daemon: table output and --json, keys imported from --file and from
standard input in PKCS#1 and PKCS#8 (made with Python's `cryptography`),
"show --pem" and "--base64" compared with cryptography's own public PEM,
--version, rm of one version and of all, the exit codes (1 broker error,
2 usage or unusable input, before the broker is contacted), and that the
private PEM is never taken from argv nor shown in any output.
"""

import base64
import json
import os
import pty
import re
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

_KEYS = {}


def rsa_key(name, bits=2048):
    """A private RSA key, made once per name for the whole run."""
    if name not in _KEYS:
        _KEYS[name] = rsa.generate_private_key(public_exponent=65537,
                                               key_size=bits)
    return _KEYS[name]


def pkcs1(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption()).decode()


def pkcs8(key):
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def spki(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def rsa_public_pkcs1(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.PKCS1).decode()


def pem_secrets(pem, key):
    """What of key's private PEM text must never be shown: each line of
    its body and every 16-character piece of that body (a line cut short
    is still the key), except the pieces that its public key's PEM holds
    too (the modulus is in both)."""
    pub = key.public_key()
    public = pub.public_bytes(
        serialization.Encoding.PEM,
        serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    if isinstance(pub, rsa.RSAPublicKey):
        public += pub.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.PKCS1).decode()
    public = public.replace("\n", "")
    lines = [ln for ln in pem.splitlines() if ln and not ln.startswith("-")]
    body = "".join(lines)
    pieces = lines + [body[i:i + 16] for i in range(0, len(body) - 15, 4)]
    return [p for p in pieces if p not in public]


class CredctlKeysTest(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        if not cbtest.have_credctl():
            self.skipTest("credctl not built at %s" % cbtest.CREDCTL)
        self.shown = []     # every output of credctl in this test

    def ctl(self, *args, input=None, json_out=False, sock=None):
        rc, out, err = cbtest.credctl(sock or self.d.socket, *args,
                                      input=input, json=json_out)
        self.shown.append(out + err)
        return rc, out, err

    def ok(self, *args, input=None):
        rc, out, err = self.ctl(*args, input=input)
        self.assertEqual(rc, 0, "credctl %s: rc %d\n%s%s"
                         % (" ".join(args[:3]), rc, out, err))
        return out

    def ok_json(self, *args, input=None):
        rc, out, err = self.ctl(*args, input=input, json_out=True)
        self.assertEqual(rc, 0, "credctl --json %s: rc %d\n%s%s"
                         % (" ".join(args[:3]), rc, out, err))
        return json.loads(out)

    def broker_error(self, code, *args, input=None):
        """Exit 1 with "credctl: CODE: ..." on stderr, and the same code
        as JSON with --json."""
        rc, out, err = self.ctl(*args, input=input)
        self.assertEqual(rc, 1, "credctl %s: rc %d\n%s%s"
                         % (" ".join(args[:3]), rc, out, err))
        self.assertTrue(err.startswith("credctl: %s: " % code), err)
        self.assertEqual(out, "")
        if "--pem" in args or "--base64" in args:
            return err      # they exclude --json
        rc, out, err = self.ctl(*args, input=input, json_out=True)
        self.assertEqual(rc, 1, out + err)
        doc = json.loads(out)
        self.assertEqual(doc["error"]["code"], code, doc)
        return doc["error"]["message"]

    def usage(self, *args, input=None, sock=None):
        rc, out, err = self.ctl(*args, input=input, sock=sock)
        self.assertEqual(rc, 2, "credctl %s: rc %d (expected 2)\n%s%s"
                         % (" ".join(args[:3]), rc, out, err))
        self.assertTrue(err.strip(), "no message on stderr")
        self.assertEqual(out, "")
        return err

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def assert_never_shown(self, pem, key):
        pieces = pem_secrets(pem, key)
        self.assertGreater(len(pieces), 40)
        for piece in pieces:
            for text in self.shown:
                self.assertNotIn(piece, text, "credctl showed part of a "
                                 "private key:\n" + text)

    def field(self, out, name):
        m = re.search(r"^%s:\s+(.*)$" % re.escape(name), out, re.M)
        self.assertIsNotNone(m, "no %s: line in\n%s" % (name, out))
        return m.group(1)

    def table(self, out, header):
        """The rows of the table that starts with header (its first
        column name), as lists of cells."""
        lines = out.splitlines()
        start = [i for i, ln in enumerate(lines)
                 if ln.split()[:1] == [header]]
        self.assertEqual(len(start), 1, out)
        rows = []
        for ln in lines[start[0] + 1:]:
            if not ln.strip():
                break
            rows.append(re.split(r"\s{2,}", ln.strip()))
        return lines[start[0]].split(), rows

    # -- key pairs --------------------------------------------------------
    def test_keypair_generate_then_show_and_list_as_tables_and_json(self):
        out = self.ok("keypair", "generate", "partner")
        self.assertEqual(self.field(out, "ident"), "partner")
        self.assertEqual(self.field(out, "version"), "1")
        self.assertEqual(self.field(out, "current"), "1")
        head, rows = self.table(out, "VERSION")
        self.assertEqual(head, ["VERSION", "ALGORITHM", "BITS",
                                "CREATED_AT"])
        self.assertEqual([r[:3] for r in rows], [["1", "RSA", "2048"]])

        doc = self.ok_json("keypair", "generate", "partner")
        self.assertEqual((doc["version"], doc["current"]), (2, 2))

        out = self.ok("keypair", "show", "partner")
        self.assertEqual(self.field(out, "ident"), "partner")
        self.assertEqual(self.field(out, "current"), "2")
        self.assertNotRegex(out, r"(?m)^version:")
        _, rows = self.table(out, "VERSION")
        self.assertEqual([r[:3] for r in rows],
                         [["1", "RSA", "2048"], ["2", "RSA", "2048"]])
        self.assertNotIn("PRIVATE", out)

        doc = self.ok_json("keypair", "show", "partner")
        self.assertEqual(doc, self.c.ok("keypair.get",
                                        {"keypair": "partner"}))
        self.assertEqual([v["version"] for v in doc["versions"]], [1, 2])
        for v in doc["versions"]:
            pub = serialization.load_pem_public_key(v["public_pem"].encode())
            self.assertEqual((pub.key_size, pub.public_numbers().e),
                             (2048, 65537))

        self.ok("keypair", "generate", "other")
        out = self.ok("keypair", "list")
        head, rows = self.table(out, "IDENT")
        self.assertEqual(head, ["IDENT", "CURRENT", "BITS", "VERSIONS",
                                "CREATED_AT", "UPDATED_AT"])
        self.assertEqual([r[:4] for r in rows],
                         [["other", "1", "2048", "1"],
                          ["partner", "2", "2048", "1, 2"]])
        doc = self.ok_json("keypair", "list")
        self.assertEqual(doc, self.c.ok("keypair.list", {}))
        self.assertEqual([(k["ident"], k["versions"]) for k in doc],
                         [("other", [1]), ("partner", [1, 2])])
        for text in self.shown:
            self.assertNotIn("PRIVATE", text)

    def test_keypair_import_from_file_and_stdin_pkcs1_and_pkcs8(self):
        a, b, c = rsa_key("a"), rsa_key("b", 3072), rsa_key("c")
        out = self.ok("keypair", "import", "login", "--file",
                      self.write("a.pem", pkcs1(a)))
        self.assertEqual(self.field(out, "version"), "1")
        out = self.ok("keypair", "import", "login", input=pkcs8(b))
        self.assertEqual(self.field(out, "version"), "2")
        doc = self.ok_json("keypair", "import", "login", "--file", "-",
                           input=pkcs1(c))
        self.assertEqual((doc["version"], doc["current"]), (3, 3))
        self.ok("keypair", "import", "login", "--file",
                self.write("c8.pem", pkcs8(c)))

        _, rows = self.table(self.ok("keypair", "show", "login"), "VERSION")
        self.assertEqual([r[:3] for r in rows],
                         [["1", "RSA", "2048"], ["2", "RSA", "3072"],
                          ["3", "RSA", "2048"], ["4", "RSA", "2048"]])
        for n, key in ((1, a), (2, b), (3, c), (4, c)):
            self.assertEqual(self.ok("keypair", "show", "login", "--pem",
                                     "--version", str(n)), spki(key))
        for key in (a, b, c):
            self.assert_never_shown(pkcs1(key), key)
            self.assert_never_shown(pkcs8(key), key)

    def test_show_pem_prints_exactly_the_public_pem(self):
        key = rsa_key("a")
        self.ok("keypair", "import", "embed", input=pkcs8(key))
        out = self.ok("keypair", "show", "embed", "--pem")
        self.assertEqual(out, spki(key))
        self.assertEqual(self.ok("keypair", "show", "--pem", "embed"), out)
        # A generated key: the PEM of the broker's answer, nothing else.
        self.ok("keypair", "generate", "gen")
        want = self.c.ok("keypair.get", {"keypair": "gen"})
        out = self.ok("keypair", "show", "gen", "--pem")
        self.assertEqual(out, want["versions"][0]["public_pem"])
        self.assertTrue(out.startswith("-----BEGIN PUBLIC KEY-----\n"), out)
        self.assertTrue(out.endswith("-----END PUBLIC KEY-----\n"), out)

    def test_show_base64_decodes_to_the_public_pem(self):
        key = rsa_key("b", 3072)
        self.ok("keypair", "import", "sso", input=pkcs1(key))
        out = self.ok("keypair", "show", "sso", "--base64")
        self.assertTrue(out.endswith("\n"))
        self.assertEqual(out.count("\n"), 1, out)
        self.assertEqual(base64.b64decode(out.strip(), validate=True)
                         .decode(), spki(key))

    def test_show_version_picks_an_older_version(self):
        a, b = rsa_key("a"), rsa_key("b", 3072)
        self.ok("keypair", "import", "k", input=pkcs1(a))
        self.ok("keypair", "import", "k", input=pkcs1(b))
        self.assertEqual(self.ok("keypair", "show", "k", "--pem"), spki(b))
        self.assertEqual(self.ok("keypair", "show", "k", "--pem",
                                 "--version", "1"), spki(a))
        out = self.ok("keypair", "show", "k", "--base64", "--version", "1")
        self.assertEqual(base64.b64decode(out).decode(), spki(a))
        out = self.ok("keypair", "show", "k", "--version", "1")
        self.assertEqual(self.field(out, "current"), "2")
        _, rows = self.table(out, "VERSION")
        self.assertEqual([r[:3] for r in rows], [["1", "RSA", "2048"]])
        doc = self.ok_json("keypair", "show", "k", "--version", "1")
        self.assertEqual((doc["version"], doc["bits"]), (1, 2048))
        self.assertEqual(doc["public_pem"], spki(a))
        msg = self.broker_error("not_found", "keypair", "show", "k",
                                "--version", "3")
        self.assertIn("version 3", msg)
        self.broker_error("not_found", "keypair", "show", "k", "--pem",
                          "--version", "3")

    def test_keypair_rm_of_one_version_then_of_all(self):
        for name in ("a", "b", "c"):
            self.ok("keypair", "import", "k", input=pkcs8(rsa_key(name)))
        out = self.ok("keypair", "rm", "k", "--version", "2")
        self.assertEqual(out, "removed 1 version(s)\n")
        doc = self.c.ok("keypair.get", {"keypair": "k"})
        self.assertEqual(([v["version"] for v in doc["versions"]],
                          doc["current"]), ([1, 3], 3))
        self.broker_error("not_found", "keypair", "show", "k", "--version",
                          "2")
        self.broker_error("not_found", "keypair", "rm", "k", "--version",
                          "2")
        self.assertEqual(self.ok_json("keypair", "rm", "k"), {"removed": 2})
        self.assertEqual(self.c.ok("keypair.list", {}), [])
        self.broker_error("not_found", "keypair", "show", "k")
        _, rows = self.table(self.ok("keypair", "list"), "IDENT")
        self.assertEqual(rows, [])

    # -- peer keys --------------------------------------------------------
    def test_peerkey_set_show_list_rm(self):
        k3, k5 = rsa_key("a"), rsa_key("b", 3072)
        out = self.ok("peerkey", "set", "datalens", "3", "--file",
                      self.write("k3.pem", spki(k3)))
        self.assertEqual(self.field(out, "ident"), "datalens")
        self.assertEqual(self.field(out, "version"), "3")
        # PKCS#1 "RSA PUBLIC KEY" from standard input.
        doc = self.ok_json("peerkey", "set", "datalens", "5",
                           input=rsa_public_pkcs1(k5))
        self.assertEqual((doc["version"], doc["current"]), (5, 5))

        out = self.ok("peerkey", "show", "datalens")
        self.assertEqual(self.field(out, "current"), "5")
        _, rows = self.table(out, "VERSION")
        self.assertEqual([r[:3] for r in rows],
                         [["3", "RSA", "2048"], ["5", "RSA", "3072"]])
        self.assertEqual(self.ok_json("peerkey", "show", "datalens"),
                         self.c.ok("peerkey.get", {"peerkey": "datalens"}))
        self.assertEqual(self.ok("peerkey", "show", "datalens", "--pem"),
                         spki(k5))
        self.assertEqual(self.ok("peerkey", "show", "datalens", "--pem",
                                 "--version", "3"), spki(k3))
        self.broker_error("not_found", "peerkey", "show", "datalens",
                          "--version", "4")

        _, rows = self.table(self.ok("peerkey", "list"), "IDENT")
        self.assertEqual([r[:4] for r in rows],
                         [["datalens", "5", "3072", "3, 5"]])
        self.assertEqual(self.ok_json("peerkey", "list"),
                         self.c.ok("peerkey.list", {}))

        # The same key again changes nothing; another key is a conflict.
        self.ok("peerkey", "set", "datalens", "3", input=spki(k3))
        self.broker_error("conflict", "peerkey", "set", "datalens", "3",
                          input=spki(k5))
        self.assertEqual(self.ok("peerkey", "show", "datalens", "--pem",
                                 "--version", "3"), spki(k3))

        self.assertEqual(self.ok("peerkey", "rm", "datalens", "--version",
                                 "3"), "removed 1 version(s)\n")
        self.assertEqual(self.ok_json("peerkey", "rm", "datalens"),
                         {"removed": 1})
        self.assertEqual(self.c.ok("peerkey.list", {}), [])
        self.broker_error("not_found", "peerkey", "show", "datalens")
        # A peer key is a counterpart's: only --pem, no --base64.
        self.usage("peerkey", "show", "datalens", "--base64")

    # -- errors -----------------------------------------------------------
    def test_unknown_key_is_not_found(self):
        for args in (("keypair", "show", "nokey"),
                     ("keypair", "show", "nokey", "--pem"),
                     ("keypair", "rm", "nokey"),
                     ("keypair", "rm", "nokey", "--version", "1"),
                     ("peerkey", "show", "nokey"),
                     ("peerkey", "rm", "nokey")):
            msg = self.broker_error("not_found", *args)
            self.assertIn("nokey", msg)

    def test_ec_key_is_bad_request_and_nothing_is_added(self):
        eck = ec.generate_private_key(ec.SECP256R1())
        pem = eck.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
        self.broker_error("bad_request", "keypair", "import", "k",
                          input=pem)
        self.broker_error("bad_request", "keypair", "import", "k",
                          "--file", self.write("ec.pem", pem))
        pub = eck.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self.broker_error("bad_request", "peerkey", "set", "p", "1",
                          input=pub)
        self.assertEqual(self.c.ok("keypair.list", {}), [])
        self.assertEqual(self.c.ok("peerkey.list", {}), [])
        self.assert_never_shown(pem, eck)

    def test_damaged_private_key_is_refused_without_showing_it(self):
        pem = pkcs1(rsa_key("c"))
        lines = pem.splitlines(True)
        damaged = "".join(lines[:5] + lines[6:])
        self.broker_error("bad_request", "keypair", "import", "k",
                          input=damaged)
        self.assertEqual(self.c.ok("keypair.list", {}), [])
        self.assert_never_shown(pem, rsa_key("c"))

    def test_private_key_given_as_peer_key_is_refused_without_showing_it(self):
        key = rsa_key("a")
        for pem in (pkcs1(key), pkcs8(key)):
            self.broker_error("bad_request", "peerkey", "set", "p", "1",
                              input=pem)
            self.assert_never_shown(pem, key)
        self.assertEqual(self.c.ok("peerkey.list", {}), [])

    def test_empty_or_oversized_input_is_refused_before_the_broker(self):
        # A socket where nothing listens: exit 2, not 3 (cannot connect),
        # shows that the input was refused before any connection.
        dead = os.path.join(self.tmp, "nobody.sock")
        for data in (b"", b"\n", b" \r\n\t\n"):
            err = self.usage("keypair", "import", "k", input=data,
                             sock=dead)
            self.assertIn("empty", err)
            self.usage("peerkey", "set", "p", "1", input=data, sock=dead)
            self.usage("keypair", "import", "k", "--file",
                       self.write("empty.pem", data.decode()), sock=dead)
        big = b"A" * 16385
        err = self.usage("keypair", "import", "k", input=big, sock=dead)
        self.assertIn("16384", err)
        self.usage("peerkey", "set", "p", "1", input=big, sock=dead)
        # 16384 bytes are sent: the broker refuses what is not a key.
        self.broker_error("bad_request", "keypair", "import", "k",
                          input=b"A" * 16384)
        rc, _, err = self.ctl("keypair", "import", "k", input=b"x",
                              sock=dead)
        self.assertEqual(rc, 3, err)
        self.assertEqual(self.c.ok("keypair.list", {}), [])

    def test_missing_file_is_a_usage_error_like_substitute(self):
        missing = os.path.join(self.tmp, "missing.pem")
        err = self.usage("keypair", "import", "k", "--file", missing)
        self.assertNotIn(missing, err)
        self.usage("peerkey", "set", "p", "1", "--file", missing)
        self.usage("keypair", "import", "k", "--file", self.tmp)
        # The existing command that reads --file exits the same way.
        rc, _, _ = self.ctl("substitute", "--dry-run", "--file", missing)
        self.assertEqual(rc, 2)

    def test_bad_arguments_are_usage_errors(self):
        self.ok("keypair", "generate", "k")
        for args in (("keypair", "generate", "k", "extra"),
                     ("keypair", "show", "k", "extra"),
                     ("keypair", "list", "extra"),
                     ("keypair", "rm", "k", "extra"),
                     ("peerkey", "set", "p", "1", "extra"),
                     ("peerkey", "show", "p", "extra"),
                     ("peerkey", "list", "extra"),
                     ("peerkey", "rm", "p", "extra"),
                     ("keypair", "import"),
                     ("peerkey", "set", "p"),
                     ("keypair", "show", "k", "--pem", "--base64"),
                     ("--json", "keypair", "show", "k", "--pem"),
                     ("keypair", "show", "k", "--base64", "--json"),
                     ("keypair", "show", "k", "--version", "0"),
                     ("keypair", "show", "k", "--version", "x"),
                     ("keypair", "show", "k", "--version", "2147483648"),
                     ("keypair", "rm", "k", "--version", "-1"),
                     ("keypair", "rm", "k", "--version", "1",
                      "--version", "1"),
                     ("keypair", "generate", "k", "--pem"),
                     ("peerkey", "set", "p", "0"),
                     ("peerkey", "set", "p", "v1")):
            self.usage(*args, input=spki(rsa_key("a")))
        self.assertEqual(len(self.c.ok("keypair.get",
                                       {"keypair": "k"})["versions"]), 1)
        self.assertEqual(self.c.ok("peerkey.list", {}), [])

    def test_pem_given_as_an_argument_is_refused_and_not_echoed(self):
        for key, pem in ((rsa_key("a"), pkcs1(rsa_key("a"))),
                         (rsa_key("b", 3072), pkcs8(rsa_key("b", 3072)))):
            for args in (("keypair", "import", "k", pem),
                         ("keypair", "import", "k", "--", pem),
                         ("keypair", "import", pem),
                         ("keypair", "import", "k", "--file", pem),
                         ("keypair", "import", "k", "--file=" + pem),
                         ("peerkey", "set", "p", "1", pem),
                         ("keypair", "show", "k", "--pem", pem)):
                self.usage(*args, input=pem)
            self.assert_never_shown(pem, key)
        self.assertEqual(self.c.ok("keypair.list", {}), [])
        self.assertEqual(self.c.ok("peerkey.list", {}), [])

    def test_import_refuses_a_terminal_on_standard_input(self):
        master, slave = pty.openpty()
        self.addCleanup(os.close, master)
        try:
            p = subprocess.run([cbtest.CREDCTL, "-s", self.d.socket,
                                "keypair", "import", "k"], stdin=slave,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               timeout=30 * cbtest.SCALE)
        finally:
            os.close(slave)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(b"terminal", p.stderr)
        self.assertEqual(self.c.ok("keypair.list", {}), [])


if __name__ == "__main__":
    unittest.main()

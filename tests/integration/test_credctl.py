"""
credctl tests (SPEC section 8): every command against a real daemon, table
output and --json, exit codes (0 ok, 1 broker error, 2 usage, 3 cannot
connect), and cred set reading the value from stdin only.
"""

import json
import os
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, UUID_RE, TIME_RE, SERVER_RE  # noqa: E402


class CredctlTest(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        if not cbtest.have_credctl():
            self.skipTest("credctl not built at %s" % cbtest.CREDCTL)

    def ctl(self, *args, input=None, json_out=False):
        return cbtest.credctl(self.d.socket, *args, input=input,
                              json=json_out)

    def ok(self, *args, input=None):
        rc, out, err = self.ctl(*args, input=input)
        self.assertEqual(rc, 0, "credctl %s: rc %d\n%s%s"
                         % (" ".join(args), rc, out, err))
        return out

    def ok_json(self, *args, input=None):
        rc, out, err = self.ctl(*args, input=input, json_out=True)
        self.assertEqual(rc, 0, "credctl --json %s: rc %d\n%s%s"
                         % (" ".join(args), rc, out, err))
        try:
            return json.loads(out)
        except ValueError:
            self.fail("credctl --json %s printed invalid JSON:\n%s"
                      % (" ".join(args), out))

    def err_json(self, code, *args, input=None):
        rc, out, err = self.ctl(*args, input=input, json_out=True)
        self.assertEqual(rc, 1, "credctl --json %s: rc %d\n%s%s"
                         % (" ".join(args), rc, out, err))
        doc = json.loads(out)
        self.assertEqual(set(doc.keys()), {"error"}, doc)
        self.assertEqual(set(doc["error"].keys()), {"code", "message"})
        self.assertEqual(doc["error"]["code"], code, doc)
        return doc["error"]

    def usage(self, *args, input=None):
        rc, out, err = self.ctl(*args, input=input)
        self.assertEqual(rc, 2, "credctl %s: rc %d (expected usage error)\n"
                         "%s%s" % (" ".join(args), rc, out, err))
        self.assertTrue(err.strip(), "no usage message on stderr")
        return out, err

    # -- hello / health -------------------------------------------------
    def test_hello(self):
        out = self.ok("hello")
        self.assertIn("credbroker", out)
        doc = self.ok_json("hello")
        self.assertEqual(doc["protocol"], 1)
        self.assertRegex(doc["server"], SERVER_RE)
        self.assertEqual(sorted(doc["permissions"]),
                         sorted(cbtest.PERMISSIONS))
        self.assertEqual(doc, self.c.ok("hello", {}))

    def test_health(self):
        out = self.ok("health")
        self.assertTrue(out.strip())
        doc = self.ok_json("health")
        for k in ("status", "uptime", "store", "vault"):
            self.assertIn(k, doc)
        self.assertIn("configured", doc["vault"])

    # -- types ----------------------------------------------------------
    def test_type_add_show_list(self):
        out = self.ok("type", "add", "github", "--name", "GitHub token",
                      "--description", "Personal access token",
                      "--destination", "https://api.github.com",
                      "--destination", "https://*.github.com:8443")
        self.assertIn("github", out)
        t = self.c.ok("type.get", {"type": "github"})
        self.assertEqual(t["name"], "GitHub token")
        self.assertEqual(t["description"], "Personal access token")
        self.assertEqual(t["storage"], "db")
        self.assertEqual(t["destinations"], ["https://api.github.com",
                                             "https://*.github.com:8443"])
        doc = self.ok_json("type", "add", "vaulty", "--name", "In Vault",
                           "--storage", "vault")
        self.assertRegex(doc["uuid"], UUID_RE)
        self.assertRegex(doc["created_at"], TIME_RE)
        self.assertEqual(doc["ident"], "vaulty")
        self.assertEqual(doc["storage"], "vault")
        self.assertEqual(doc["destinations"], [])
        self.assertEqual(doc, self.c.ok("type.get", {"type": "vaulty"}))

        # show: by ident and uuid, table and JSON
        for ref in ("github", t["uuid"]):
            out = self.ok("type", "show", ref)
            for s in (t["uuid"], "github", "GitHub token",
                      "Personal access token", "https://api.github.com",
                      "https://*.github.com:8443"):
                self.assertIn(s, out)
            self.assertEqual(self.ok_json("type", "show", ref), t)

        # list: a table with a header and one row per type
        out = self.ok("type", "list")
        lines = [l for l in out.splitlines() if l.strip()]
        self.assertGreaterEqual(len(lines), 3, out)
        header = lines[0].lower()
        for col in ("ident", "name", "storage"):
            self.assertIn(col, header, out)
        gh = [l for l in lines[1:] if "github" in l.split()]
        vt = [l for l in lines[1:] if "vaulty" in l.split()]
        self.assertEqual(len(gh), 1, out)
        self.assertEqual(len(vt), 1, out)
        self.assertIn("GitHub token", gh[0])
        self.assertIn("db", gh[0].split())
        self.assertIn("vault", vt[0].split())
        lst = self.ok_json("type", "list")
        self.assertIsInstance(lst, list)
        self.assertEqual(sorted(lst, key=lambda x: x["ident"]),
                         sorted(self.c.ok("type.list", {}),
                                key=lambda x: x["ident"]))

    def test_type_list_empty(self):
        self.ok("type", "list")
        self.assertEqual(self.ok_json("type", "list"), [])

    def test_type_add_errors(self):
        self.ok("type", "add", "dup", "--name", "Dup")
        rc, out, err = self.ctl("type", "add", "dup", "--name", "Dup")
        self.assertEqual(rc, 1, out + err)
        self.assertTrue(err.strip(), "no error message on stderr")
        self.err_json("conflict", "type", "add", "dup", "--name", "Dup")
        self.err_json("bad_request", "type", "add", "Bad/Ident",
                      "--name", "X")
        self.usage("type", "add", "noname")              # --name missing
        self.usage("type", "add", "--name", "X")         # ident missing
        self.usage("type", "add", "x", "--name", "X", "--storage", "tape")
        self.usage("type", "add", "x", "--name", "X", "--bogus")
        self.assertEqual([t["ident"] for t in self.c.ok("type.list", {})],
                         ["dup"])

    def test_type_edit(self):
        self.ok("type", "add", "ed", "--name", "Old", "--description", "d",
                "--destination", "https://one.example")
        self.ok("type", "edit", "ed", "--name", "New")
        t = self.c.ok("type.get", {"type": "ed"})
        self.assertEqual(t["name"], "New")
        self.assertEqual(t["description"], "d")
        self.assertEqual(t["destinations"], ["https://one.example"])
        doc = self.ok_json("type", "edit", t["uuid"], "--description", "dd",
                           "--destination", "https://two.example",
                           "--destination", "https://three.example")
        self.assertEqual(doc["description"], "dd")
        self.assertEqual(doc["destinations"], ["https://two.example",
                                               "https://three.example"])
        doc = self.ok_json("type", "edit", "ed", "--no-destinations")
        self.assertEqual(doc["destinations"], [])
        self.assertEqual(doc["name"], "New")
        # Storage change: the answer carries the notice, in the JSON and
        # (on stdout or stderr) in the human output.
        doc = self.ok_json("type", "edit", "ed", "--storage", "vault")
        self.assertEqual(doc["storage"], "vault")
        notice = doc.get("notice")
        self.assertIsInstance(notice, str)
        self.assertTrue(notice)
        self.c.ok("type.update", {"type": "ed", "storage": "db"})
        rc, out, err = self.ctl("type", "edit", "ed", "--storage", "vault")
        self.assertEqual(rc, 0, out + err)
        self.assertIn(notice, out + err)
        t = self.c.ok("type.get", {"type": "ed"})
        self.assertEqual(t["storage"], "vault")
        # No change of storage: no notice.
        doc = self.ok_json("type", "edit", "ed", "--storage", "vault")
        self.assertNotIn("notice", doc)
        # Errors
        self.err_json("not_found", "type", "edit", "nope", "--name", "X")
        rc, out, err = self.ctl("type", "edit", "nope", "--name", "X")
        self.assertEqual(rc, 1)
        self.usage("type", "edit", "ed", "--storage", "tape")
        self.usage("type", "edit")

    def test_type_ca_file_is_added_shown_changed_and_cleared(self):
        crt = os.path.join(self.tmp, "ca.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                        "-nodes", "-keyout", os.path.join(self.tmp, "ca.key"),
                        "-out", crt, "-days", "2", "-subj", "/CN=ca"],
                       check=True, capture_output=True)
        doc = self.ok_json("type", "add", "pinned", "--name", "P",
                           "--ca-file", crt)
        self.assertEqual(doc["ca_file"], crt)
        self.assertEqual(self.c.ok("type.get", {"type": "pinned"})[
            "ca_file"], crt)
        shown = [l.split() for l in self.ok("type", "show",
                                            "pinned").splitlines()]
        self.assertIn(["ca_file:", crt], shown)
        self.ok("type", "add", "plain", "--name", "Q")
        lines = self.ok("type", "list").splitlines()
        self.assertIn("CA FILE", lines[0])
        row = [l for l in lines[1:] if l.split()[0] == "pinned"]
        self.assertEqual(len(row), 1, lines)
        self.assertIn(crt, row[0].split())
        row = [l for l in lines[1:] if l.split()[0] == "plain"]
        self.assertNotIn(crt, row[0])
        self.assertIsNone(self.ok_json("type", "show", "plain")["ca_file"])
        # edit: set, then '' clears; other edits keep it.
        self.ok("type", "edit", "plain", "--ca-file", crt)
        self.assertEqual(self.c.ok("type.get", {"type": "plain"})[
            "ca_file"], crt)
        doc = self.ok_json("type", "edit", "plain", "--name", "R")
        self.assertEqual(doc["ca_file"], crt)
        doc = self.ok_json("type", "edit", "plain", "--ca-file", "")
        self.assertIsNone(doc["ca_file"])
        self.assertIsNone(self.c.ok("type.get", {"type": "plain"})[
            "ca_file"])
        # The broker's check, in the error.
        rc, out, err = self.ctl("type", "add", "rel", "--name", "X",
                                "--ca-file", "ca.pem")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("ca_file 'ca.pem' is not an absolute path", err)
        self.err_json("bad_request", "type", "edit", "pinned", "--ca-file",
                      os.path.join(self.tmp, "ca.key"))
        self.assertEqual(self.c.ok("type.get", {"type": "pinned"})[
            "ca_file"], crt)
        self.usage("type", "edit", "pinned", "--ca-file")

    def test_type_rm_and_clear(self):
        self.ok("type", "add", "rmme", "--name", "R")
        user = new_user()
        self.c.ok("cred.set", {"type": "rmme", "user": user, "value": "v"})
        self.err_json("conflict", "type", "rm", "rmme")
        rc, out, err = self.ctl("type", "rm", "rmme")
        self.assertEqual(rc, 1, out + err)
        self.c.ok("type.get", {"type": "rmme"})
        # clear reports the count
        self.c.ok("cred.set", {"type": "rmme", "user": new_user(),
                               "value": "v"})
        out = self.ok("type", "clear", "rmme")
        self.assertIn("2", out)
        self.assertEqual(self.ok_json("type", "clear", "rmme"),
                         {"removed": 0})
        self.c.ok("cred.set", {"type": "rmme", "user": user, "value": "v"})
        self.assertEqual(self.ok_json("type", "clear", "rmme"),
                         {"removed": 1})
        self.c.ok("cred.set", {"type": "rmme", "user": user, "value": "v"})
        self.ok("type", "rm", "rmme", "--force")
        err, _ = self.c.call("type.get", {"type": "rmme"})
        self.assertEqual(err["code"], "not_found")
        self.err_json("not_found", "type", "rm", "rmme")
        self.err_json("not_found", "type", "clear", "rmme")
        self.err_json("not_found", "type", "show", "rmme")
        # rm of an empty type needs no --force; --json result is {}
        self.ok("type", "add", "empty", "--name", "E")
        self.assertEqual(self.ok_json("type", "rm", "empty"), {})
        self.usage("type", "rm")
        self.usage("type", "clear")
        self.usage("type", "show")

    # -- credentials ----------------------------------------------------
    def test_cred_set_status_rm(self):
        self.ok("type", "add", "tok", "--name", "Token")
        self.ok("type", "add", "pw", "--name", "Password")
        self.ok("type", "add", "vt", "--name", "Vaulted", "--storage",
                "vault")
        user = new_user()
        secret = "s-" + os.urandom(8).hex()
        out = self.ok("cred", "set", "tok", user, input=secret + "\n")
        self.assertNotIn(secret, out)
        st = {e["ident"]: e for e in self.c.ok("cred.status",
                                               {"user": user})}
        self.assertIs(st["tok"]["filled"], True)
        self.assertIs(st["pw"]["filled"], False)
        # status table
        out = self.ok("cred", "status", user)
        lines = [l for l in out.splitlines() if l.strip()]
        header = lines[0].lower()
        for col in ("ident", "name", "storage"):
            self.assertIn(col, header, out)
        self.assertEqual(len(lines), 4, out)
        tok = [l for l in lines if "tok" in l.split()]
        pw = [l for l in lines if "pw" in l.split()]
        self.assertEqual(len(tok), 1, out)
        self.assertEqual(len(pw), 1, out)
        self.assertIn(st["tok"]["updated_at"], tok[0])
        self.assertNotEqual(tok[0].replace("tok", "").replace("Token", ""),
                            pw[0].replace("pw", "").replace("Password", ""))
        # status JSON equals the protocol result
        doc = self.ok_json("cred", "status", user)
        self.assertEqual(sorted(doc, key=lambda e: e["ident"]),
                         sorted(st.values(), key=lambda e: e["ident"]))
        # set --json
        doc = self.ok_json("cred", "set", "pw", user, input="pw-value")
        self.assertRegex(doc["updated_at"], TIME_RE)
        # replace
        self.ok("cred", "set", "pw", user, input="pw-value-2\n")
        # vault type: broker error not_configured
        self.err_json("not_configured", "cred", "set", "vt", user,
                      input="x\n")
        rc, out, err = self.ctl("cred", "set", "vt", user, input="x\n")
        self.assertEqual(rc, 1, out + err)
        # rm
        self.ok("cred", "rm", "tok", user)
        self.assertEqual(self.ok_json("cred", "rm", "pw", user), {})
        st = {e["ident"]: e for e in self.c.ok("cred.status",
                                               {"user": user})}
        self.assertIs(st["tok"]["filled"], False)
        self.assertIs(st["pw"]["filled"], False)
        self.err_json("not_found", "cred", "rm", "tok", user)
        rc, out, err = self.ctl("cred", "rm", "tok", user)
        self.assertEqual(rc, 1)
        self.err_json("not_found", "cred", "set", "nosuch", user,
                      input="v\n")
        self.err_json("bad_request", "cred", "status", "not-a-uuid")
        # A user id that is not a uuid is refused by credctl itself,
        # before the value is read (test_credctl_ux has the message).
        rc, out, err = self.ctl("cred", "set", "tok", "NOT-A-UUID",
                                input="v\n", json_out=True)
        self.assertEqual((rc, out), (2, ""))
        self.assertTrue(err.startswith("credctl: cred set: USER must be "
                                       "the platform's user id"), err)

    def test_cred_set_value_never_on_argv(self):
        self.ok("type", "add", "tok", "--name", "Token")
        user = new_user()
        secret = "argv-" + os.urandom(8).hex()
        for args in (("cred", "set", "tok", user, secret),
                     ("cred", "set", "tok", user, "--value", secret),
                     ("cred", "set", "tok", user, "--value=" + secret)):
            rc, out, err = self.ctl(*args, input="from-stdin\n")
            self.assertEqual(rc, 2, "%r: rc %d\n%s%s" % (args, rc, out, err))
            self.assertNotIn(secret, out)
            self.assertNotIn(secret, err)
            rc, out, err = self.ctl(*args, input="from-stdin\n",
                                    json_out=True)
            self.assertEqual(rc, 2)
            self.assertNotIn(secret, out + err)
        st = {e["ident"]: e for e in self.c.ok("cred.status",
                                               {"user": user})}
        self.assertIs(st["tok"]["filled"], False)
        self.assertNotIn(secret.encode(), self.d.all_logs())

    def test_cred_set_empty_stdin(self):
        self.ok("type", "add", "tok", "--name", "Token")
        user = new_user()
        for inp in (None, "", "\n"):
            rc, out, err = self.ctl("cred", "set", "tok", user, input=inp)
            self.assertIn(rc, (1, 2), "stdin %r: rc %d\n%s%s"
                          % (inp, rc, out, err))
            self.assertTrue(err.strip() or out.strip())
        st = {e["ident"]: e for e in self.c.ok("cred.status",
                                               {"user": user})}
        self.assertIs(st["tok"]["filled"], False)

    def test_cred_set_binary_and_large_stdin(self):
        self.ok("type", "add", "bin", "--name", "Binary")
        user = new_user()
        self.ok("cred", "set", "bin", user, input=b"\x00\x01\x02\xff\xfe")
        self.ok("cred", "set", "bin", user, input=os.urandom(64 << 10))
        st = {e["ident"]: e for e in self.c.ok("cred.status",
                                               {"user": user})}
        self.assertIs(st["bin"]["filled"], True)

    def test_cred_usage(self):
        self.usage("cred", "set", "tok")
        self.usage("cred", "set")
        self.usage("cred", "status")
        self.usage("cred", "status", new_user(), "extra")
        self.usage("cred", "rm", "tok")
        self.usage("cred", "bogus")

    # -- exit codes and global options ------------------------------------
    def test_usage_errors(self):
        for args in ((), ("bogus",), ("type",), ("type", "bogus"),
                     ("--no-such-option", "hello"), ("hello", "extra")):
            rc, out, err = cbtest.credctl(self.d.socket, *args)
            self.assertEqual(rc, 2, "%r: rc %d\n%s%s" % (args, rc, out, err))

    def test_cannot_connect(self):
        missing = os.path.join(self.tmp, "no-such.sock")
        for args in (("hello",), ("type", "list"),
                     ("cred", "status", new_user())):
            rc, out, err = cbtest.credctl(missing, *args)
            self.assertEqual(rc, 3, "%r: rc %d\n%s%s" % (args, rc, out, err))
            self.assertTrue(err.strip())
        rc, out, err = cbtest.credctl(missing, "cred", "set", "t", new_user(),
                                      input="v\n")
        self.assertEqual(rc, 3, out + err)
        # A path that exists but is not a socket.
        rc, out, err = cbtest.credctl(self.d.config, "hello")
        self.assertEqual(rc, 3, out + err)

    def test_cannot_connect_after_stop(self):
        sock = self.d.socket
        self.d.stop()
        rc, out, err = cbtest.credctl(sock, "hello")
        self.assertEqual(rc, 3, out + err)

    def test_forbidden_is_broker_error(self):
        self.d.stop()
        self.d.grants = ["uid:%d read:health" % os.getuid()]
        self.d.write_config()
        self.d.start()
        self.err_json("forbidden", "type", "list")
        rc, out, err = self.ctl("type", "add", "x", "--name", "X")
        self.assertEqual(rc, 1, out + err)
        self.ok("health")


if __name__ == "__main__":
    cbtest.main()

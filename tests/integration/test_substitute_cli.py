"""
credctl substitute tests (SPEC sections 5 and 8): "credctl substitute
--dry-run" shows where a template's values would go, masked, and which
values are set; it never prints a value.  A canary value is planted and
every output (human and --json, stdout and stderr) is searched for it in
plain text, hex and base64 at any alignment, and for its urlquery and json
filtered forms.  "credctl substitute" without --dry-run is a usage error
that never contacts the daemon.
"""

import base64
import json
import os
import secrets
import socket
import sys
import unittest
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402

ORIGIN = "https://api.example.com"


def mask(ident):
    return "~masked-%s~" % ident


class SubstituteCliTest(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        if not cbtest.have_credctl():
            self.skipTest("credctl not built at %s" % cbtest.CREDCTL)
        self.user = new_user()
        # Unique, and changed by every filter: quotes, '&', '/', space,
        # '<', non-ASCII.
        self.token = secrets.token_hex(12)
        self.canary = 'CANARY-%s "q&/ <é>' % self.token
        for ident in ("alpha", "beta"):
            self.c.ok("type.create", {"ident": ident, "name": ident,
                                      "storage": "db",
                                      "destinations": [ORIGIN]})
        self.c.ok("cred.set", {"type": "alpha", "user": self.user,
                               "value": self.canary})
        self.outputs = []

    def tearDown(self):
        # Nothing credctl printed, and nothing the daemon logged, holds
        # the canary in any form.
        blobs = self.outputs + [self.d.all_logs()]
        c = self.canary
        forms = [c.encode(), self.token.encode(),
                 urllib.parse.quote(c.encode(), safe="-._~").encode(),
                 json.dumps(c)[1:-1].encode(),
                 json.dumps(c, ensure_ascii=False)[1:-1].encode(),
                 base64.b64encode(c.encode())]
        for blob in blobs:
            self.assertEqual(find_leaks(blob, [c.encode()]), [])
            for f in forms:
                self.assertNotIn(f, blob)
        super().tearDown()

    def doc(self, **over):
        d = {
            "component": {
                "kind": "action", "initiator": self.user,
                "credentials": [{"id": "a", "type": "alpha"},
                                {"id": "b", "type": "beta"}],
            },
            "request": {
                "method": "POST",
                "url": ORIGIN + "/v1/x?key=<<.credentials.a|urlquery>>",
                "headers": [
                    ["Authorization", "Bearer <<.credentials.a>>"],
                    ["X-Basic", "<<.credentials.a|base64>>"],
                    ["X-Beta", "<< .credentials.b >>"],
                ],
                "body": '{"a":"<<.credentials.a|json>>",\n'
                        '"b":"<<.credentials.b|json>>"}',
            },
        }
        d.update(over)
        return json.dumps(d)

    def ctl(self, *args, input=None, json_out=False, sock=None):
        rc, out, err = cbtest.credctl(sock or self.d.socket, *args,
                                      input=input, json=json_out)
        self.outputs += [out.encode(), err.encode()]
        return rc, out, err

    def test_dry_run_human(self):
        rc, out, err = self.ctl("substitute", "--dry-run", input=self.doc())
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0], "POST " + ORIGIN + "/v1/x?key=" +
                         mask("a"))
        self.assertEqual(lines[1], "Authorization: Bearer " + mask("a"))
        self.assertEqual(lines[2], "X-Basic: " +
                         base64.b64encode(mask("a").encode()).decode())
        self.assertEqual(lines[3], "X-Beta: " + mask("b"))
        self.assertEqual(lines[4], "")
        self.assertEqual(lines[5], '{"a":"%s",' % mask("a"))
        self.assertEqual(lines[6], '"b":"%s"}' % mask("b"))
        self.assertIn("subject: " + self.user, out)
        table = lines[lines.index("subject: " + self.user) + 1:]
        self.assertEqual(table[0].split(),
                         ["ID", "TYPE", "FILLED", "SOURCE", "ACCOUNT"])
        rows = {l.split()[0]: l.split()[1:] for l in table[1:] if l}
        self.assertEqual(rows, {"a": ["alpha", "yes", "own", "-"],
                                "b": ["beta", "no", "-", "-"]})

    def test_dry_run_json_and_file(self):
        path = os.path.join(self.tmp, "doc.json")
        with open(path, "w") as f:
            f.write(self.doc())
        for args in (("--file", path), ("--file", "-"), ()):
            rc, out, err = self.ctl("substitute", "--dry-run", *args,
                                    input=self.doc() if args != (
                                        "--file", path) else None,
                                    json_out=True)
            self.assertEqual(rc, 0, err)
            res = json.loads(out)
            self.assertIs(res["dry_run"], True)
            self.assertEqual(res["subject"], self.user)
            self.assertEqual(res["request"]["method"], "POST")
            self.assertEqual(res["request"]["url"],
                             ORIGIN + "/v1/x?key=" + mask("a"))
            self.assertEqual(res["request"]["headers"][0],
                             ["Authorization", "Bearer " + mask("a")])
            self.assertEqual(res["request"]["body"],
                             '{"a":"%s",\n"b":"%s"}' % (mask("a"),
                                                         mask("b")))
            self.assertEqual(sorted(res["used"], key=lambda u: u["id"]),
                             [{"id": "a", "type": "alpha", "source": "own",
                               "filled": True},
                              {"id": "b", "type": "beta", "source": None,
                               "filled": False}])

    def test_dry_run_inherited_and_filters(self):
        """External-service credentials are inherited; every filter sees
        the mask, not the value."""
        d = json.loads(self.doc())
        d["component"]["credentials"] = []
        d["component"]["external_service"] = {
            "credentials": [{"id": "a", "type": "alpha"}]}
        d["request"] = {"method": "GET",
                        "url": ORIGIN + "/<<.credentials.a|urlpath>>",
                        "headers": [["X", "<<.credentials.a|json|base64>>"]]}
        rc, out, err = self.ctl("substitute", "--dry-run",
                                input=json.dumps(d), json_out=True)
        self.assertEqual(rc, 0, err)
        res = json.loads(out)
        self.assertEqual(res["request"]["url"], ORIGIN + "/" + mask("a"))
        self.assertEqual(res["request"]["headers"],
                         [["X", base64.b64encode(
                             mask("a").encode()).decode()]])
        self.assertNotIn("body", res["request"])
        self.assertEqual(res["used"],
                         [{"id": "a", "type": "alpha", "source": "own",
                           "filled": True}])

    def test_skipped(self):
        d = json.loads(self.doc())
        d["component"] = {"kind": "status_check", "credentials": []}
        rc, out, err = self.ctl("substitute", "--dry-run",
                                input=json.dumps(d))
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"^skipped: .+\n$")
        rc, out, err = self.ctl("substitute", "--dry-run",
                                input=json.dumps(d), json_out=True)
        self.assertEqual(rc, 0, err)
        res = json.loads(out)
        self.assertIs(res["skipped"], True)
        self.assertTrue(res["reason"])

    def test_broker_errors(self):
        d = json.loads(self.doc())
        d["request"]["headers"].append(["X", "<<.credentials.nope>>"])
        rc, out, err = self.ctl("substitute", "--dry-run",
                                input=json.dumps(d))
        self.assertEqual(rc, 1)
        self.assertIn("bad_request", err)
        self.assertIn("nope", err)
        d = json.loads(self.doc())
        d["request"]["url"] = "https://elsewhere.example/<<.credentials.a>>"
        rc, out, err = self.ctl("substitute", "--dry-run",
                                input=json.dumps(d), json_out=True)
        self.assertEqual(rc, 1)
        self.assertEqual(json.loads(out)["error"]["code"], "forbidden")

    def test_invalid_documents(self):
        for doc in ("", "not json", "[]", '{"component": {}}',
                    '{"component": {}, "request": [], "x": 1}',
                    '{"component": {}, "request": {}, "extra": 1}',
                    '{"component": {}, "request": {}, "dry_run": false}',
                    '{"component": {}, "component": {}, "request": {}}'):
            rc, out, err = self.ctl("substitute", "--dry-run", input=doc)
            self.assertEqual(rc, 2, (doc, out, err))
            self.assertTrue(err.strip())
        rc, out, err = self.ctl("substitute", "--dry-run", "--file",
                                os.path.join(self.tmp, "missing.json"))
        self.assertEqual(rc, 2)
        self.assertIn("missing.json", err)

    def test_without_dry_run_is_refused(self):
        # A socket that is listening but never accepts: credctl must not
        # even connect.
        path = os.path.join(self.tmp, "trap.sock")
        trap = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(trap.close)
        trap.bind(path)
        trap.listen(4)
        for args in (("substitute",), ("substitute", "--file", "-"),
                     ("substitute", "--json")):
            rc, out, err = self.ctl(*args, input=self.doc(), sock=path)
            self.assertEqual(rc, 2, (args, out, err))
            self.assertEqual(out, "")
            self.assertIn("--dry-run", err)
            self.assertIn("never prints credential values", err)
        trap.setblocking(False)
        with self.assertRaises(BlockingIOError):
            trap.accept()
        # And against the real daemon: still a usage error.
        rc, out, err = self.ctl("substitute", input=self.doc())
        self.assertEqual(rc, 2)
        self.assertEqual(out, "")

    def test_help_lists_substitute(self):
        rc, out, err = self.ctl("help")
        self.assertEqual(rc, 0)
        self.assertIn("substitute --dry-run", out)
        rc, out, err = self.ctl("substitute", "--help")
        self.assertEqual(rc, 0)
        self.assertIn("--dry-run", out)


def man_literal_blocks(after):
    """The literal displays of credctl(1) that follow the line starting
    with after, as text with the roff escapes undone."""
    page = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                        "..", "man", "credctl.1")
    with open(page, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(after))
    blocks, cur = [], None
    for ln in lines[start:]:
        if ln.startswith(".Bd -literal"):
            cur = []
        elif ln.startswith(".Ed") and cur is not None:
            blocks.append("".join(x + "\n" for x in cur))
            cur = None
        elif cur is not None:
            cur.append(ln.replace("\\e", "\\").replace("\\&", ""))
    return blocks


class ManPageDryRunTest(cbtest.DaemonTestCase):
    """The dry-run example of credctl(1), run as it is written."""

    def test_man_page_dry_run_example_matches_the_output(self):
        if not cbtest.have_credctl():
            self.skipTest("credctl not built at %s" % cbtest.CREDCTL)
        blocks = man_literal_blocks(".Sh THE DRY-RUN DOCUMENT")
        doc, shown = blocks[0], blocks[1]
        params = json.loads(doc)
        user = params["component"]["initiator"]
        self.c.ok("type.create", {"ident": "github_token", "name": "GitHub",
                                  "storage": "db", "destinations":
                                  ["https://api.github.com"]})
        for ident in ("db_login", "acme_key"):
            self.c.ok("type.create", {"ident": ident, "name": ident,
                                      "storage": "db"})
        self.c.ok("cred.set", {"type": "github_token", "user": user,
                               "value": "gh-value"})
        self.c.ok("cred.set", {"type": "db_login",
                               "account": "techno_reader",
                               "value": "db-value"})
        self.c.ok("cred.link", {"type": "db_login", "user": user,
                                "account": "techno_reader"})
        path = os.path.join(self.tmp, "template.json")
        with open(path, "w") as f:
            f.write(doc)
        rc, out, err = cbtest.credctl(self.d.socket, "substitute",
                                      "--dry-run", "--file", path)
        self.assertEqual((rc, err), (0, ""))
        self.maxDiff = None
        self.assertEqual(out, shown)


if __name__ == "__main__":
    cbtest.main()

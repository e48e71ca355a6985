#!/usr/bin/python3
"""
The clients of the broker-executed "request" method (SPEC section 13)
against the real daemon and a local HTTP service: credctl request (and its
--dry-run, --json and options), credbroker-example-runner --via-broker
(libcredbroker's credbroker_request()), and the Python package's
Client.request().

The service (http.server on 127.0.0.1, one thread per connection) records
every request it receives and answers with what it was sent: the
Authorization header it got, in a header and in the JSON body.  The
broker must send the substituted request (the service sees the value) and
return the response with each echo replaced by [REDACTED:ID]; every client
then shows exactly that response.  The type's destinations name the
service's loopback origin, which the broker requires for a loopback
address.  Canary: no output of credctl or the runner, and nothing the
daemon logged, holds the value in any encoding.
"""

import base64
import http.server
import json
import os
import secrets
import subprocess
import sys
import threading
import unittest
import urllib.parse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
SOURCE = os.environ.get("CB_SOURCE_DIR") or os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(SOURCE, "client", "python"))
import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402

import credbroker  # noqa: E402

RUNNER = os.path.join(cbtest.BUILD_DIR, "client", "credbroker-example-runner")
TYPE = "status_token"


class EchoService:
    """A local HTTP service that records each request (method, path,
    headers, body) and answers 200 with the Authorization header it got,
    in X-Seen and in a JSON body; /moved answers 302 to /whoami, and /big
    answers 64 KiB, /latin1 a status text, a header and a body that are
    not UTF-8."""

    def __init__(self):
        self.requests = []
        self.lock = threading.Lock()
        svc = self

        class Handler(http.server.BaseHTTPRequestHandler):
            # HTTP/1.0: the body ends when the connection closes, so the
            # answer needs no Content-Length (which would count the
            # unscrubbed body).
            protocol_version = "HTTP/1.0"

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                with svc.lock:
                    svc.requests.append({
                        "method": self.command, "path": self.path,
                        "headers": {k.lower(): v for k, v in
                                    self.headers.items()},
                        "body": body})
                if self.path == "/moved":
                    self.send_response_only(302)
                    self.send_header("Location", "/whoami")
                    self.end_headers()
                    return
                if self.path == "/latin1":
                    # Text that is not UTF-8 (latin-1 on the wire).
                    self.send_response_only(200, "Gr\xfc\xdf")
                    self.send_header("X-Raw", "caf\xe9")
                    self.end_headers()
                    self.wfile.write(b"\xff\x00ok")
                    return
                if self.path == "/big":
                    out = b"x" * 65536
                else:
                    seen = self.headers.get("Authorization", "")
                    out = json.dumps({"user": "octocat",
                                      "seen": seen}).encode() + b"\n"
                self.send_response_only(200)
                self.send_header("Content-Type", "application/json")
                if self.path != "/big":
                    self.send_header("X-Seen",
                                     self.headers.get("Authorization", ""))
                self.end_headers()
                self.wfile.write(out)

            do_GET = do_POST = handle_any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                      Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.origin = "http://127.0.0.1:%d" % self.port
        # close() waits for serve_forever's next poll: every 50 ms.
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       args=(0.05,), daemon=True)
        self.thread.start()

    def received(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def expected_body(cid):
    return json.dumps({"user": "octocat",
                       "seen": "Bearer [REDACTED:%s]" % cid}).encode() + b"\n"


class RequestClientsTest(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        if not cbtest.have_credctl() or not os.access(RUNNER, os.X_OK):
            self.skipTest("credctl or the runner is not built")
        self.svc = EchoService()
        self.addCleanup(self.svc.close)
        self.user = new_user()
        # Unique, and changed by the filters; no character a header
        # value would refuse.
        self.token = secrets.token_hex(12)
        self.canary = "CANARY-%s-q&/+=" % self.token
        self.c.ok("type.create", {"ident": TYPE, "name": "Status token",
                                  "storage": "db",
                                  "destinations": [self.svc.origin]})
        self.c.ok("cred.set", {"type": TYPE, "user": self.user,
                               "value": self.canary})
        self.outputs = []

    def tearDown(self):
        # Nothing credctl or the runner printed, and nothing the daemon
        # logged, holds the value.
        c = self.canary.encode()
        for blob in self.outputs + [self.d.all_logs()]:
            self.assertEqual(find_leaks(blob, [c]), [])
            self.assertNotIn(self.token.encode(), blob)
            self.assertNotIn(urllib.parse.quote(c, safe="").encode(), blob)
        super().tearDown()

    # -- helpers ----------------------------------------------------------
    def component(self):
        return {"kind": "action", "initiator": self.user,
                "credentials": [{"id": "st", "type": TYPE}]}

    def template(self, path="/whoami"):
        return {"method": "GET", "url": self.svc.origin + path,
                "headers": [["Authorization",
                             "Bearer <<.credentials.st>>"]]}

    def doc_file(self, path="/whoami"):
        f = os.path.join(self.tmp, "req.json")
        with open(f, "w") as fh:
            json.dump({"component": self.component(),
                       "request": self.template(path)}, fh)
        return f

    def credctl(self, *args, **kw):
        rc, out, err = cbtest.credctl(self.d.socket, *args, **kw)
        # The bytes credctl wrote, stdout then stderr.
        self.outputs += cbtest.CREDCTL_OUTPUT[-2:]
        return rc, out, err

    def runner(self, *args):
        p = subprocess.run([RUNNER, "-s", self.d.socket] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.outputs += [p.stdout, p.stderr]
        return p.returncode, p.stdout, p.stderr

    def assertServiceGotTheValue(self, n=1):
        got = self.svc.received()
        self.assertEqual(len(got), n)
        for r in got:
            self.assertEqual(r["method"], "GET")
            self.assertEqual(r["headers"]["authorization"],
                             "Bearer " + self.canary)

    def expected_text(self):
        return ("HTTP 200 OK\n"
                "Content-Type: application/json\n"
                "X-Seen: Bearer [REDACTED:st]\n"
                "\n").encode() + expected_body("st")

    # -- credctl ----------------------------------------------------------
    def test_credctl_request_prints_the_scrubbed_response(self):
        rc, out, err = self.credctl("request", "--file", self.doc_file())
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out.encode(), self.expected_text())
        self.assertServiceGotTheValue()
        self.assertEqual(self.svc.received()[0]["path"], "/whoami")

    def test_credctl_request_json_prints_the_result(self):
        rc, out, err = self.credctl("request", "--file", self.doc_file(),
                                    json=True)
        self.assertEqual((rc, err), (0, ""))
        res = json.loads(out)
        # The body is a msgpack bin: base64 in JSON.
        self.assertEqual(base64.b64decode(res.pop("body"), validate=True),
                         expected_body("st"))
        self.assertEqual(res, {
            "status": 200, "reason": "OK",
            "headers": [["Content-Type", "application/json"],
                        ["X-Seen", "Bearer [REDACTED:st]"]],
            "scrubbed": 2,
            "used": [{"id": "st", "type": TYPE, "source": "own"}]})
        self.assertServiceGotTheValue()

    def test_credctl_request_dry_run_sends_nothing(self):
        rc, out, err = self.credctl("request", "--dry-run", "--file",
                                    self.doc_file())
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "credctl: dry run: nothing was sent\n")
        self.assertEqual(out, (
            "GET %s/whoami\n"
            "Authorization: Bearer ~masked-st~\n"
            "\n"
            "subject: %s\n"
            "ID  TYPE          FILLED  SOURCE  ACCOUNT\n"
            "st  status_token  yes     own     -\n")
            % (self.svc.origin, self.user))
        self.assertEqual(self.svc.received(), [])

    def test_credctl_request_escapes_header_text_that_is_not_utf8(self):
        rc, out, err = self.credctl("request", "--file",
                                    self.doc_file("/latin1"))
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out, "HTTP 200 Gr\\xfc\\xdf\nX-Raw: caf\\xe9\n\n"
                         "\ufffd\x00ok")
        self.assertEqual(self.outputs[-2], b"HTTP 200 Gr\\xfc\\xdf\n"
                         b"X-Raw: caf\\xe9\n\n\xff\x00ok")
        with credbroker.connect(self.d.socket) as c:
            res = c.request(self.component(), self.template("/latin1"))
        self.assertEqual((res["reason"], res["headers"], res["body"]),
                         (b"Gr\xfc\xdf", [["X-Raw", b"caf\xe9"]],
                          b"\xff\x00ok"))

    def test_credctl_request_redirect_is_returned_unless_followed(self):
        rc, out, err = self.credctl("request", "--file",
                                    self.doc_file("/moved"))
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out, "HTTP 302 Found\nLocation: /whoami\n\n")
        self.assertEqual([r["path"] for r in self.svc.received()],
                         ["/moved"])
        rc, out, err = self.credctl("request", "--follow-redirects",
                                    "--file", self.doc_file("/moved"))
        self.assertEqual((rc, err), (0, ""))
        self.assertEqual(out.encode(), self.expected_text())
        self.assertEqual([r["path"] for r in self.svc.received()],
                         ["/moved", "/moved", "/whoami"])
        self.assertServiceGotTheValue(3)

    def test_credctl_request_max_response_bytes_reaches_the_broker(self):
        rc, out, err = self.credctl("request", "--max-response-bytes",
                                    "70000", "--file", self.doc_file("/big"))
        self.assertEqual((rc, err), (0, ""))
        self.assertTrue(out.startswith("HTTP 200 OK\n"), out[:100])
        rc, out, err = self.credctl("request", "--max-response-bytes",
                                    "4096", "--file", self.doc_file("/big"))
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(out, "")
        self.assertTrue(err.startswith("credctl: too_large: "), err)

    def test_credctl_request_bad_options_send_nothing(self):
        f = self.doc_file()
        for args in (["--timeout", "0"], ["--timeout", "12ms"],
                     ["--timeout", "-5"], ["--max-response-bytes", ""],
                     ["--max-response-bytes", "4294967296"]):
            rc, out, err = self.credctl("request", *args, "--file", f)
            self.assertEqual(rc, 2, args)
            self.assertIn("wants a whole number from 1 to 4294967295",
                          err)
        # A dry_run key belongs to --dry-run.
        d = os.path.join(self.tmp, "dry.json")
        with open(d, "w") as fh:
            json.dump({"component": self.component(),
                       "request": self.template(), "dry_run": True}, fh)
        rc, out, err = self.credctl("request", "--file", d)
        self.assertEqual(rc, 2)
        self.assertIn("unknown key 'dry_run' (use --dry-run)", err)
        self.assertEqual(self.svc.received(), [])

    def test_credctl_request_refused_destination_sends_nothing(self):
        doc = os.path.join(self.tmp, "other.json")
        tpl = self.template()
        tpl["url"] = "http://127.0.0.2:%d/whoami" % self.svc.port
        with open(doc, "w") as fh:
            json.dump({"component": self.component(), "request": tpl}, fh)
        rc, out, err = self.credctl("request", "--file", doc)
        self.assertEqual(rc, 1, out + err)
        self.assertTrue(err.startswith("credctl: forbidden: "), err)
        self.assertEqual(self.svc.received(), [])

    # -- the example runner -----------------------------------------------
    def test_runner_via_broker_prints_the_scrubbed_response(self):
        rc, out, err = self.runner(
            "--via-broker", "--kind", "action", "--initiator", self.user,
            "--cred", "st=" + TYPE,
            "--header", "Authorization: Bearer <<.credentials.st>>",
            "GET", self.svc.origin + "/whoami")
        self.assertEqual((rc, err), (0, b""))
        self.assertEqual(out, self.expected_text())
        self.assertServiceGotTheValue()

    def test_runner_via_broker_reports_a_refusal(self):
        rc, out, err = self.runner(
            "--via-broker", "--kind", "action", "--initiator", new_user(),
            "--cred", "st=" + TYPE,
            "--header", "Authorization: Bearer <<.credentials.st>>",
            "GET", self.svc.origin + "/whoami")
        self.assertEqual(rc, 1)
        self.assertEqual(out, b"")
        self.assertTrue(err.startswith(
            b"credbroker-example-runner: not_found: "), err)
        self.assertEqual(self.svc.received(), [])

    def test_runner_follow_redirects_needs_via_broker(self):
        rc, out, err = self.runner(
            "--follow-redirects", "--kind", "action", "--initiator",
            self.user, "GET", self.svc.origin + "/moved")
        self.assertEqual(rc, 2)
        self.assertIn(b"--follow-redirects needs --via-broker", err)
        self.assertEqual(self.svc.received(), [])

    # -- the Python package -----------------------------------------------
    def test_python_package_request_returns_the_scrubbed_response(self):
        with credbroker.connect(self.d.socket) as c:
            res = c.request(self.component(), self.template(),
                            timeout_ms=10000, max_response_bytes=65536)
        self.assertEqual(res, {
            "status": 200, "reason": "OK",
            "headers": [["Content-Type", "application/json"],
                        ["X-Seen", "Bearer [REDACTED:st]"]],
            "body": expected_body("st"),
            "scrubbed": 2,
            "used": [{"id": "st", "type": TYPE, "source": "own"}]})
        self.assertServiceGotTheValue()


class ManPageRequestTest(cbtest.DaemonTestCase):
    """The request example of credctl(1), run as it is written (with the
    service's real port)."""

    def test_man_page_request_example_matches_the_output(self):
        if not cbtest.have_credctl():
            self.skipTest("credctl not built at %s" % cbtest.CREDCTL)
        from test_substitute_cli import man_literal_blocks
        blocks = man_literal_blocks(".Sh BROKER-EXECUTED REQUESTS")
        doc, shown = blocks[0], blocks[1]
        svc = EchoService()
        self.addCleanup(svc.close)
        doc = doc.replace("http://127.0.0.1:8080", svc.origin)
        params = json.loads(doc)
        user = params["component"]["initiator"]
        self.c.ok("type.create", {"ident": TYPE, "name": "Status token",
                                  "storage": "db",
                                  "destinations": [svc.origin]})
        self.c.ok("cred.set", {"type": TYPE, "user": user,
                               "value": "st-value"})
        path = os.path.join(self.tmp, "whoami.json")
        with open(path, "w") as f:
            f.write(doc)
        rc, out, err = cbtest.credctl(self.d.socket, "request", "--file",
                                      path)
        self.assertEqual((rc, err), (0, ""))
        self.maxDiff = None
        self.assertEqual(out, shown)
        self.assertEqual(svc.received()[0]["headers"]["authorization"],
                         "Bearer st-value")


if __name__ == "__main__":
    cbtest.main()

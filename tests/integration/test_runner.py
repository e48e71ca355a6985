"""
Runner tests (SPEC section 5): the example runner
(client/examples/runner.c) asks the real daemon to substitute a request
template through libcredbroker and sends the result with libcurl to a
local HTTP server that records exactly what arrived.  Checked: the exact
path and query, header and body the server received for a value full of
characters that each filter must handle, the runner's output, a refused
destination (nothing sent), a value that is not set (nothing sent), a
skipped status check, external-service inheritance, and that the value
never shows up in the runner's output or the daemon's log.
"""

import http.server
import os
import subprocess
import sys
import threading
import unittest
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402

RUNNER = os.path.join(cbtest.BUILD_DIR, "client", "credbroker-example-runner")

# Quotes, '&', '/', '%', space, '<', non-ASCII (2-, 3- and 4-byte UTF-8),
# and something that looks like a placeholder (substitution is one pass).
HOSTILE = 'q"uo\'te&amp/sl%41 sp<é中😀<<.credentials.other>>'

RESPONSE_BODY = b"hello from the test server\n"


def json_inside(s):
    """The template's json filter, for expected values: '"' and '\\'
    escaped, '<', '>', '&' as \\u00XX, other non-ASCII unchanged."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "<>&" or ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


class Recorder:
    """A local HTTP server, in a thread, that records every request
    (method, raw path and query, headers as raw bytes, body) and answers
    200 with RESPONSE_BODY."""

    def __init__(self):
        self.requests = []
        rec = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                # http.server decodes header bytes as latin-1: undo it.
                hdrs = [(k.lower(), v.encode("latin-1"))
                        for k, v in self.headers.items()]
                rec.requests.append({"method": self.command,
                                     "path": self.path,
                                     "headers": hdrs, "body": body})
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(RESPONSE_BODY)))
                self.end_headers()
                self.wfile.write(RESPONSE_BODY)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.origin = "http://127.0.0.1:%d" % self.port
        # close() waits for serve_forever's next poll: every 50 ms.
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       args=(0.05,), daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def header(self, req, name):
        vals = [v for k, v in req["headers"] if k == name.lower()]
        return vals


class RunnerTest(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        if not os.access(RUNNER, os.X_OK):
            self.skipTest("runner not built at %s" % RUNNER)
        self.http = Recorder()
        self.addCleanup(self.http.stop)
        self.user = new_user()

    def add_type(self, ident, destinations):
        return self.c.ok("type.create", {"ident": ident, "name": ident,
                                         "storage": "db",
                                         "destinations": destinations})

    def set_value(self, ident, user, value):
        self.c.ok("cred.set", {"type": ident, "user": user, "value": value})

    def run_runner(self, *args):
        """Run the runner against the daemon; (rc, stdout, stderr) bytes.
        Proxy variables are dropped so that libcurl talks to 127.0.0.1
        directly."""
        env = {k: v for k, v in os.environ.items()
               if "proxy" not in k.lower()}
        p = subprocess.run([RUNNER, "-s", self.d.socket] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env,
                           timeout=60 * cbtest.SCALE)
        return p.returncode, p.stdout, p.stderr

    def assertNoLeak(self, blobs, value):
        for blob in blobs:
            self.assertEqual(find_leaks(blob, [value.encode()]), [])

    def test_hostile_value_exact(self):
        self.add_type("tokt", [self.http.origin])
        self.set_value("tokt", self.user, HOSTILE)
        rc, out, err = self.run_runner(
            "--kind", "action", "--initiator", self.user,
            "--cred", "tok=tokt",
            "--header", "Authorization: Bearer <<.credentials.tok>>",
            "--header", "Content-Type: application/json",
            "--data", '{"t":"<<.credentials.tok|json>>"}',
            "POST", self.http.origin +
            "/api?token=<<.credentials.tok|urlquery>>")
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, b"")
        self.assertEqual(out, b"HTTP 200\n" + RESPONSE_BODY)

        self.assertEqual(len(self.http.requests), 1)
        r = self.http.requests[0]
        self.assertEqual(r["method"], "POST")
        want_query = urllib.parse.quote(HOSTILE.encode(), safe="-._~")
        self.assertEqual(r["path"], "/api?token=" + want_query)
        # Spelled out once, so that the test does not only trust quote().
        self.assertTrue(want_query.startswith(
            "q%22uo%27te%26amp%2Fsl%2541%20sp%3C%C3%A9%E4%B8%AD"
            "%F0%9F%98%80%3C%3C.credentials.other%3E%3E"), want_query)
        self.assertEqual(self.http.header(r, "Authorization"),
                         [b"Bearer " + HOSTILE.encode()])
        self.assertEqual(self.http.header(r, "Content-Type"),
                         [b"application/json"])
        want_body = ('{"t":"' + json_inside(HOSTILE) + '"}').encode()
        self.assertEqual(r["body"], want_body)
        self.assertIn(b'\\"uo\'te\\u0026amp/sl%41 sp\\u003c\xc3\xa9',
                      r["body"])
        self.assertNoLeak([out, err, self.d.all_logs()], HOSTILE)

    def test_get_without_body_and_inherited_credential(self):
        """GET sends no body; a credential declared only by the external
        service is inherited; the component's own declaration of the
        same id wins over the service's."""
        self.add_type("mine", [self.http.origin])
        self.add_type("svc", [self.http.origin])
        self.set_value("mine", self.user, "own-value")
        self.set_value("svc", self.user, "service-value")
        rc, out, err = self.run_runner(
            "--kind", "widget", "--run-as", self.user,
            "--initiator", new_user(),
            "--cred", "a=mine", "--service-cred", "a=svc",
            "--service-cred", "b=svc",
            "--header", "X-A: <<.credentials.a>>",
            "--header", "X-B: <<.credentials.b|base64>>",
            "GET", self.http.origin + "/p/<<.credentials.a|urlpath>>")
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, b"HTTP 200\n" + RESPONSE_BODY)
        r = self.http.requests[0]
        self.assertEqual(r["method"], "GET")
        self.assertEqual(r["path"], "/p/own-value")
        self.assertEqual(self.http.header(r, "X-A"), [b"own-value"])
        self.assertEqual(self.http.header(r, "X-B"),
                         [b"c2VydmljZS12YWx1ZQ=="])
        self.assertEqual(r["body"], b"")
        self.assertEqual(self.http.header(r, "Content-Length"), [])

    def test_refused_destination(self):
        self.add_type("elsewhere", ["https://api.example.com"])
        self.set_value("elsewhere", self.user, "not-for-this-origin")
        rc, out, err = self.run_runner(
            "--kind", "action", "--initiator", self.user,
            "--cred", "tok=elsewhere",
            "--header", "Authorization: Bearer <<.credentials.tok>>",
            "GET", self.http.origin + "/api")
        self.assertEqual(rc, 1, (out, err))
        self.assertEqual(out, b"")
        self.assertIn(b"forbidden", err)
        self.assertIn(b"tok", err)
        self.assertEqual(self.http.requests, [])
        self.assertNoLeak([out, err, self.d.all_logs()],
                          "not-for-this-origin")

    def test_value_not_set(self):
        self.add_type("tokt", [self.http.origin])
        rc, out, err = self.run_runner(
            "--kind", "action", "--initiator", self.user,
            "--cred", "tok=tokt", "--data", "<<.credentials.tok>>",
            "PUT", self.http.origin + "/x")
        self.assertEqual(rc, 1, (out, err))
        self.assertIn(b"not_found", err)
        self.assertIn(self.user.encode(), err)
        self.assertEqual(self.http.requests, [])

    def test_skipped_status_check(self):
        self.add_type("tokt", [self.http.origin])
        self.set_value("tokt", self.user, "unused")
        args = ["--kind", "status_check", "--initiator", self.user,
                "--cred", "tok=tokt",
                "--header", "Authorization: <<.credentials.tok>>",
                "GET", self.http.origin + "/health"]
        rc, out, err = self.run_runner(*args)
        self.assertEqual(rc, 0, err)
        reason = self.c.ok("substitute", {
            "component": {"kind": "status_check",
                          "initiator": self.user,
                          "credentials": [{"id": "tok", "type": "tokt"}]},
            "request": {"method": "GET", "url": self.http.origin,
                        "headers": []}})["reason"]
        self.assertEqual(out, ("skipped: %s\n" % reason).encode())
        self.assertEqual(self.http.requests, [])

        # With a system account the check runs, as that account.
        system = new_user()
        self.set_value("tokt", system, "system-value")
        rc, out, err = self.run_runner("--system-account", system, *args)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.http.header(self.http.requests[0],
                                          "Authorization"),
                         [b"system-value"])

    def test_usage(self):
        for args in ([], ["GET", "http://x/"],
                     ["--kind", "action", "GET"],
                     ["--kind", "action", "--cred", "novalue", "GET",
                      "http://x/"],
                     ["--kind", "action", "--header", "NoColon", "GET",
                      "http://x/"]):
            rc, out, err = self.run_runner(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn(b"usage:", err)
        self.assertEqual(self.http.requests, [])


if __name__ == "__main__":
    cbtest.main()

#!/usr/bin/python3
"""The request method (SPEC section 13): the broker substitutes the
request, sends it itself to a local HTTP or HTTPS server started by the
test, and answers with the scrubbed response.

The servers here speak raw HTTP/1.1 over sockets, so that a test sees the
exact bytes the broker sent and controls the exact bytes it gets back
(reason phrases, chunk boundaries, Content-Length).  Destinations name
127.0.0.1 explicitly: loopback is a special address that only an explicit
allowance opens.
"""
import base64
import json
import os
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402


def tag():
    return os.urandom(6).hex()


class Upstream:
    """A raw HTTP/1.1 server on 127.0.0.1 in a thread.  respond(req) gets
    {"raw", "method", "target", "headers", "body"} and returns a list of
    byte strings to send (each one written as it is) or None to close
    without answering; every request received is kept in self.requests."""

    def __init__(self, respond, tls_ctx=None):
        self.respond = respond
        self.requests = []
        self.connections = 0
        self.lock = threading.Lock()
        up = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                sock = self.request
                if tls_ctx is not None:
                    try:
                        sock = tls_ctx.wrap_socket(sock, server_side=True)
                    except (ssl.SSLError, OSError):
                        return
                try:
                    self.serve(sock)
                finally:
                    if sock is not self.request:
                        sock.close()

            def serve(self, sock):
                with up.lock:
                    up.connections += 1
                buf = b""
                try:
                    while True:
                        while b"\r\n\r\n" not in buf:
                            d = sock.recv(65536)
                            if not d:
                                return
                            buf += d
                        head, _, buf = buf.partition(b"\r\n\r\n")
                        lines = head.split(b"\r\n")
                        method, target, _ = lines[0].split(b" ", 2)
                        headers = []
                        for l in lines[1:]:
                            n, _, v = l.partition(b":")
                            headers.append((n.decode(), v.strip()))
                        clen = 0
                        for n, v in headers:
                            if n.lower() == "content-length":
                                clen = int(v)
                        while len(buf) < clen:
                            d = sock.recv(65536)
                            if not d:
                                return
                            buf += d
                        body, buf = buf[:clen], buf[clen:]
                        req = {"raw": head + b"\r\n\r\n" + body,
                               "method": method.decode(),
                               "target": target.decode(),
                               "headers": headers, "body": body}
                        with up.lock:
                            up.requests.append(req)
                        out = up.respond(req)
                        if out is None:
                            return
                        for piece in out:
                            if isinstance(piece, (int, float)):
                                time.sleep(piece)
                            else:
                                sock.sendall(piece)
                except OSError:
                    return

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        # close() waits for serve_forever's next poll: every 50 ms.
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       args=(0.05,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def response(status=200, reason="OK", headers=(), body=b"",
             length=True):
    h = [b"HTTP/1.1 %d %s" % (status, reason.encode()
                              if isinstance(reason, str) else reason)]
    for n, v in headers:
        h.append(n.encode() + b": " + (v.encode() if isinstance(v, str)
                                       else v))
    if length:
        h.append(b"Content-Length: %d" % len(body))
    return [b"\r\n".join(h) + b"\r\n\r\n" + body]


def make_cert(d, name="localhost"):
    """A self-signed certificate for 127.0.0.1 and localhost."""
    key = os.path.join(d, name + ".key")
    crt = os.path.join(d, name + ".crt")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "2",
                    "-subj", "/CN=" + name, "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    return key, crt


FAKEDNS = os.path.join(cbtest.BUILD_DIR, "tests", "fakedns.so")


class RequestBase(cbtest.DaemonTestCase):
    """The daemon runs with tests/tools/fakedns.so preloaded: names written
    into self.hosts resolve as the test says (self.dns_calls counts the
    lookups); every other name resolves as usual."""

    start_daemon = False
    conf = {}
    # The scheme of the upstreams the tests make (see TLSUpstreams).
    scheme = "http"

    def setUp(self):
        super().setUp()
        self.upstreams = []
        self.planted = []
        self.assertTrue(os.path.exists(FAKEDNS), "%s is not built" % FAKEDNS)
        self.hosts = os.path.join(self.tmp, "hosts")
        self.dnslog = os.path.join(self.tmp, "dns.log")
        cbtest.write_file(self.hosts, b"")
        env = {"LD_PRELOAD": FAKEDNS, "CB_FAKEDNS_FILE": self.hosts,
               "CB_FAKEDNS_LOG": self.dnslog}
        if cbtest.daemon_sanitized():
            env["ASAN_OPTIONS"] = (os.environ.get("ASAN_OPTIONS", "") +
                                   ":verify_asan_link_order=0")
        self.d.env = env
        self.d.extra = {"request": list(self.conf.items())}
        self.d.write_config()
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)

    def resolve(self, name, first, later=None):
        with open(self.hosts, "a") as f:
            f.write("%s %s%s\n" % (name, first,
                                    " " + later if later else ""))

    def dns_calls(self, name):
        try:
            with open(self.dnslog) as f:
                return [l.strip() for l in f].count(name)
        except FileNotFoundError:
            return 0

    def upstream(self, respond, tls_ctx=None):
        if tls_ctx is None and self.scheme == "https":
            tls_ctx = self.server_tls
        u = Upstream(respond, tls_ctx)
        self.upstreams.append(u)
        self.addCleanup(u.close)
        return u

    def mktype(self, ident, destinations=None):
        p = {"ident": ident, "name": "Type " + ident, "storage": "db"}
        if destinations is not None:
            p["destinations"] = destinations
        return self.c.ok("type.create", p)

    def plant(self, ident, user, value):
        v = value.encode() if isinstance(value, str) else bytes(value)
        self.planted.append(v)
        self.c.ok("cred.set", {"type": ident, "user": user, "value": value})
        return v

    @staticmethod
    def comp(user, creds):
        return {"kind": "action", "initiator": user,
                "credentials": [{"id": i, "type": t} for i, t in creds]}

    def request(self, comp, method, url, headers=(), body=None, client=None,
                **kw):
        r = {"method": method, "url": url,
             "headers": [[n, v] for n, v in headers]}
        if body is not None:
            r["body"] = body
        p = {"component": comp, "request": r}
        p.update(kw)
        return (client or self.c).call("request", p)

    def setup_token(self, port, scheme="http", value=None):
        """A type allowed to 127.0.0.1:port and a user's value of it."""
        ident = "t" + tag()
        self.mktype(ident, ["%s://127.0.0.1:%d" % (scheme, port)])
        user = cbtest.new_user()
        v = self.plant(ident, user, value or ("tok-" + tag() + tag()))
        return ident, user, v


class TestRequest(RequestBase):

    def test_request_sends_exactly_the_substituted_request(self):
        u = self.upstream(lambda req: response(body=b"fine"))
        ident, user, v = self.setup_token(u.port, self.scheme)
        err, res = self.request(
            self.comp(user, [("gh", ident)]), "POST",
            self.scheme +
            "://127.0.0.1:%d/a/b?x=1&y=<<.credentials.gh|urlquery>>"
            % u.port,
            [("Authorization", "Bearer <<.credentials.gh>>"),
             ("X-Empty", ""), ("Content-Type", "application/json")],
            '{"k":"<<.credentials.gh|json>>"}')
        self.assertIsNone(err, err)
        self.assertEqual(res["status"], 200)
        self.assertEqual(res["body"], b"fine")
        self.assertEqual(res["scrubbed"], 0)
        self.assertEqual([(x["id"], x["type"]) for x in res["used"]],
                         [("gh", ident)])
        self.assertEqual(len(u.requests), 1)
        body = b'{"k":"' + v + b'"}'
        want = (b"POST /a/b?x=1&y=" + urllib.parse.quote(v, safe="")
                .encode() + b" HTTP/1.1\r\n"
                b"Host: 127.0.0.1:%d\r\n" % u.port +
                b"Authorization: Bearer " + v + b"\r\n"
                b"X-Empty:\r\n"
                b"Content-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.assertEqual(u.requests[0]["raw"], want)

    def test_request_returns_status_reason_headers_in_order(self):
        u = self.upstream(lambda req: response(
            201, "Made", [("X-B", "2"), ("X-A", "1"), ("X-B", "3")],
            b"\x00\xffbin"))
        ident, user, v = self.setup_token(u.port)
        err, res = self.request(self.comp(user, [("gh", ident)]), "GET",
                                "http://127.0.0.1:%d/" % u.port,
                                [("X-T", "<<.credentials.gh>>")])
        self.assertIsNone(err, err)
        self.assertEqual(res["status"], 201)
        self.assertEqual(res["reason"], "Made")
        self.assertEqual(res["headers"], [["X-B", "2"], ["X-A", "1"],
                                          ["X-B", "3"],
                                          ["Content-Length", "5"]])
        self.assertEqual(res["body"], b"\x00\xffbin")


    def test_request_returns_a_redirect_with_its_location_by_default(self):
        other = self.upstream(lambda req: response(body=b"other"))
        u = self.upstream(lambda req: response(
            302, "Found", [("Location", "http://127.0.0.1:%d/x"
                            % other.port)]))
        ident, user, v = self.setup_token(u.port)
        err, res = self.request(self.comp(user, [("gh", ident)]), "GET",
                                "http://127.0.0.1:%d/" % u.port,
                                [("X-T", "<<.credentials.gh>>")])
        self.assertIsNone(err, err)
        self.assertEqual(res["status"], 302)
        self.assertIn(["Location", "http://127.0.0.1:%d/x" % other.port],
                      res["headers"])
        self.assertEqual(other.requests, [])

    def test_header_that_is_not_utf8_comes_back_as_bytes(self):
        u = self.upstream(lambda req: response(
            200, b"Caf\xe9", [("X-Latin", b"caf\xe9"), ("X-Ok", "fine")]))
        ident, user, v = self.setup_token(u.port)
        err, res = self.request(self.comp(user, [("gh", ident)]), "GET",
                                "http://127.0.0.1:%d/" % u.port,
                                [("X-T", "<<.credentials.gh>>")])
        self.assertIsNone(err, err)
        self.assertEqual(res["reason"], b"Caf\xe9")
        self.assertEqual(res["headers"][:2], [["X-Latin", b"caf\xe9"],
                                              ["X-Ok", "fine"]])

    def test_folded_header_is_joined_and_scrubbed(self):
        def respond(req):
            v = header(req, "X-T")
            return [b"HTTP/1.1 200 OK\r\nX-Fold: first\r\n  " + v +
                    b"\r\nX-After: 1\r\nContent-Length: 0\r\n\r\n"]
        u = self.upstream(respond)
        ident, user, v = self.setup_token(u.port)
        err, res = self.request(self.comp(user, [("gh", ident)]), "GET",
                                "http://127.0.0.1:%d/" % u.port,
                                [("X-T", "<<.credentials.gh>>")])
        self.assertIsNone(err, err)
        self.assertEqual(res["headers"][:2],
                         [["X-Fold", "first [REDACTED:gh]"],
                          ["X-After", "1"]])
        self.assertEqual(res["scrubbed"], 1)

    def test_request_skipped_status_check_sends_nothing(self):
        u = self.upstream(lambda req: response())
        ident, user, v = self.setup_token(u.port)
        err, res = self.c.call("request", {
            "component": {"kind": "status_check",
                          "credentials": [{"id": "gh", "type": ident}]},
            "request": {"method": "GET",
                        "url": "http://127.0.0.1:%d/" % u.port,
                        "headers": [["X", "<<.credentials.gh>>"]]}})
        self.assertIsNone(err, err)
        self.assertEqual(res["skipped"], True)
        self.assertIn("reason", res)
        self.assertEqual(u.requests, [])

    def test_request_parameters_are_checked(self):
        ident, user, v = self.setup_token(1)
        comp = self.comp(user, [("gh", ident)])
        for kw in ({"timeout_ms": 0}, {"timeout_ms": 300001},
                   {"max_response_bytes": 0},
                   {"max_response_bytes": 2 << 20},
                   {"follow_redirects": "yes"}, {"dry_run": True}):
            with self.subTest(kw=kw):
                self.assertError(self.request(comp, "GET",
                                              "http://127.0.0.1:1/", **kw),
                                 "bad_request")

    def test_request_audit_names_origin_and_status(self):
        u = self.upstream(lambda req: response(204, "No Content",
                                               length=False))
        ident, user, v = self.setup_token(u.port)
        err, res = self.request(self.comp(user, [("gh", ident)]), "GET",
                                "http://127.0.0.1:%d/" % u.port,
                                [("X-T", "<<.credentials.gh>>")])
        self.assertIsNone(err, err)
        self.assertEqual(res["status"], 204)
        cbtest.poll_until(lambda: "method=request" in self.d.log(), 10,
                          what="audit line")
        line = [l for l in self.d.log().splitlines()
                if "method=request" in l][0]
        self.assertIn("origins=http://127.0.0.1:%d" % u.port, line)
        self.assertIn("status=204", line)
        self.assertIn("outcome=ok", line)
        self.assertNotIn(v.decode(), self.d.log())


class TestAddresses(RequestBase):
    """SSRF: the broker resolves the host itself, once, and connects only
    to an address it has checked."""

    def test_name_resolving_to_loopback_is_refused_without_allowance(self):
        u = self.upstream(lambda req: response())
        self.resolve("api.fake.test", "127.0.0.1")
        ident = "t" + tag()
        self.mktype(ident, ["http://api.fake.test:%d" % u.port])
        user = cbtest.new_user()
        self.plant(ident, user, "tok-" + tag())
        err = self.assertError(self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "http://api.fake.test:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")]), "forbidden")
        self.assertEqual(err["message"], "api.fake.test resolves to "
                         "127.0.0.1 (loopback), which the destinations of "
                         "type '%s' do not allow" % ident)
        self.assertEqual(u.connections, 0)

    def test_name_resolving_to_metadata_address_is_refused(self):
        self.resolve("meta.fake.test", "169.254.169.254")
        ident = "t" + tag()
        self.mktype(ident)
        user = cbtest.new_user()
        self.plant(ident, user, "tok-" + tag())
        err = self.assertError(self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "http://meta.fake.test/latest/meta-data",
            [("X-T", "<<.credentials.gh>>")]), "forbidden")
        self.assertIn("169.254.169.254 (link-local)", err["message"])

    def test_request_without_credential_gets_no_address_allowance(self):
        u = self.upstream(lambda req: response())
        err = self.assertError(self.request(
            self.comp(cbtest.new_user(), []), "GET",
            "http://127.0.0.1:%d/" % u.port), "forbidden")
        self.assertIn("127.0.0.1 is a loopback address", err["message"])
        self.assertEqual(u.connections, 0)

    def test_ip_literal_needs_explicit_allowance(self):
        u = self.upstream(lambda req: response(body=b"hi"))
        user = cbtest.new_user()
        cases = [(None, "forbidden"),
                 (["http://127.0.0.1:%d" % u.port], None),
                 (["http://[127.0.0.0/8]:%d" % u.port], None),
                 (["http://[10.0.0.0/8]:%d" % u.port], "forbidden"),
                 (["https://127.0.0.1:%d" % u.port], "forbidden")]
        for dest, code in cases:
            with self.subTest(dest=dest):
                ident = "t" + tag()
                self.mktype(ident, dest)
                self.plant(ident, user, "tok-" + tag())
                before = u.connections
                r = self.request(self.comp(user, [("gh", ident)]), "GET",
                                 "http://127.0.0.1:%d/" % u.port,
                                 [("X-T", "<<.credentials.gh>>")])
                if code is None:
                    self.assertIsNone(r[0], r[0])
                    self.assertEqual(r[1]["body"], b"hi")
                else:
                    self.assertError(r, code)
                    self.assertEqual(u.connections, before)

    def test_every_carried_type_must_allow_the_address(self):
        u = self.upstream(lambda req: response())
        user = cbtest.new_user()
        a, b = "a" + tag(), "b" + tag()
        self.mktype(a, ["http://127.0.0.1:%d" % u.port])
        self.mktype(b)
        self.plant(a, user, "tok-" + tag())
        self.plant(b, user, "tok-" + tag())
        err = self.assertError(self.request(
            self.comp(user, [("x", a), ("y", b)]), "GET",
            "http://127.0.0.1:%d/" % u.port,
            [("X", "<<.credentials.x>>"), ("Y", "<<.credentials.y>>")]),
            "forbidden")
        self.assertIn("type '%s'" % b, err["message"])
        self.assertEqual(u.connections, 0)

    def test_rebinding_name_is_resolved_once_and_pinned(self):
        u = self.upstream(lambda req: response(body=b"pinned"))
        self.resolve("rebind.fake.test", "127.0.0.1", "169.254.169.254")
        ident = "t" + tag()
        self.mktype(ident, ["http://rebind.fake.test:%d" % u.port,
                            "http://127.0.0.1:%d" % u.port])
        user = cbtest.new_user()
        self.plant(ident, user, "tok-" + tag())
        err, res = self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "http://rebind.fake.test:%d/p" % u.port,
            [("X-T", "<<.credentials.gh>>")], timeout_ms=5000)
        self.assertIsNone(err, err)
        self.assertEqual(res["body"], b"pinned")
        self.assertEqual(self.dns_calls("rebind.fake.test"), 1)
        self.assertEqual(len(u.requests), 1)
        self.assertIn(("Host", b"rebind.fake.test:%d" % u.port),
                      u.requests[0]["headers"])

    def test_first_allowed_address_is_used(self):
        u = self.upstream(lambda req: response(body=b"ok"))
        self.resolve("multi.fake.test", "169.254.169.254,127.0.0.1")
        ident = "t" + tag()
        self.mktype(ident, ["http://multi.fake.test:%d" % u.port,
                            "http://127.0.0.1:%d" % u.port])
        user = cbtest.new_user()
        self.plant(ident, user, "tok-" + tag())
        err, res = self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "http://multi.fake.test:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")], timeout_ms=5000)
        self.assertIsNone(err, err)
        self.assertEqual(res["body"], b"ok")
        self.assertEqual(self.dns_calls("multi.fake.test"), 1)


def chunked(pieces):
    """A chunked body: one chunk per piece, then the last chunk."""
    out = b""
    for p in pieces:
        if p:
            out += b"%x\r\n" % len(p) + p + b"\r\n"
    return out + b"0\r\n\r\n"


def header(req, name):
    for n, v in req["headers"]:
        if n.lower() == name.lower():
            return v
    return None


class TestScrub(RequestBase):
    """Echo scrubbing: what the upstream sends back of a value, in any
    encoding, comes back redacted."""

    def test_echo_in_reason_headers_and_body_is_redacted_exactly(self):
        def echo(req):
            raw, q, j, b = (header(req, "X-Raw"), header(req, "X-Q"),
                            header(req, "X-J"), header(req, "X-B"))
            basic = header(req, "Authorization")[len(b"Basic "):]
            body = (b"raw=" + raw + b" q=" + q + b" j=" + j + b" b=" + b +
                    b" basic=" + basic + b" end")
            return response(200, b"Echo " + raw,
                            [("X-Echo", raw), ("X-Echo-Q", q),
                             ("X-Plain", "nothing")], body)
        u = self.upstream(echo)
        user = cbtest.new_user()
        t1, t2 = "a" + tag(), "b" + tag()
        self.mktype(t1, [self.scheme + "://127.0.0.1:%d" % u.port])
        self.mktype(t2, [self.scheme + "://127.0.0.1:%d" % u.port])
        v = self.plant(t1, user, 'tok"en/+=' + tag())
        name = self.plant(t2, user, "user" + tag())
        # Basic of two values: the upstream computes it from what it got.
        err, res = self.request(
            self.comp(user, [("gh", t1), ("who", t2)]), "GET",
            self.scheme + "://127.0.0.1:%d/" % u.port,
            [("X-Raw", "<<.credentials.gh>>"),
             ("X-Q", "<<.credentials.gh|urlquery>>"),
             ("X-J", "<<.credentials.gh|json>>"),
             ("X-B", "<<.credentials.gh|base64>>"),
             ("X-Who", "<<.credentials.who>>"),
             ("Authorization", "Basic <<.credentials.who|base64>>")])
        self.assertIsNone(err, err)
        sent = u.requests[0]
        q, j, b = header(sent, "X-Q"), header(sent, "X-J"), \
            header(sent, "X-B")
        # The forms really differ from the raw value.
        self.assertNotIn(v, q + j + b)
        self.assertEqual(res["reason"], "Echo [REDACTED:gh]")
        self.assertEqual(res["headers"][:3],
                         [["X-Echo", "[REDACTED:gh]"],
                          ["X-Echo-Q", "[REDACTED:gh]"],
                          ["X-Plain", "nothing"]])
        self.assertEqual(res["body"],
                         b"raw=[REDACTED:gh] q=[REDACTED:gh] "
                         b"j=[REDACTED:gh] b=[REDACTED:gh] "
                         b"basic=[REDACTED:who] end")
        self.assertEqual(res["scrubbed"], 8)
        self.assertEqual(cbtest.find_leaks(json.dumps(res["headers"])
                                           .encode() + res["body"] +
                                           res["reason"].encode(),
                                           [v, name]), [])

    def test_basic_credential_of_two_values_is_redacted_as_a_pair(self):
        def echo(req):
            u_, p_ = header(req, "X-U"), header(req, "X-P")
            return response(body=b"auth=" + base64.b64encode(u_ + b":" +
                                                             p_))
        u = self.upstream(echo)
        user = cbtest.new_user()
        t1, t2 = "u" + tag(), "p" + tag()
        self.mktype(t1, [self.scheme + "://127.0.0.1:%d" % u.port])
        self.mktype(t2, [self.scheme + "://127.0.0.1:%d" % u.port])
        self.plant(t1, user, "alice" + tag())
        self.plant(t2, user, "s3cret" + tag())
        err, res = self.request(
            self.comp(user, [("u", t1), ("p", t2)]), "GET",
            self.scheme + "://127.0.0.1:%d/" % u.port,
            [("X-U", "<<.credentials.u>>"), ("X-P", "<<.credentials.p>>")])
        self.assertIsNone(err, err)
        self.assertEqual(res["body"], b"auth=[REDACTED:u+p]")
        self.assertEqual(res["scrubbed"], 1)

    def test_echo_split_across_chunks_at_every_offset_is_redacted(self):
        def echo(req):
            v = header(req, "X-T")
            at = int(req["target"].split("=")[1])
            body = b"<<" + v + b">>"
            hs = [("Transfer-Encoding", "chunked")]
            h = response(200, "OK", hs, length=False)[0]
            # One write per chunk, so that reads see the boundaries.
            out = [h]
            for piece in (body[:at], body[at:]):
                if piece:
                    out.append(b"%x\r\n" % len(piece) + piece + b"\r\n")
                    out.append(0.005)
            out.append(b"0\r\n\r\n")
            return out
        u = self.upstream(echo)
        ident, user, v = self.setup_token(u.port, self.scheme)
        comp = self.comp(user, [("gh", ident)])
        for at in range(0, len(v) + 5):
            with self.subTest(split=at):
                err, res = self.request(
                    comp, "GET",
                    self.scheme + "://127.0.0.1:%d/?at=%d" % (u.port, at),
                    [("X-T", "<<.credentials.gh>>")])
                self.assertIsNone(err, err)
                self.assertEqual(res["body"], b"<<[REDACTED:gh]>>")
                self.assertEqual(res["scrubbed"], 1)

    def test_body_in_one_byte_chunks_is_redacted(self):
        def echo(req):
            body = b"x" + header(req, "X-T") + b"y"
            return (response(200, "OK", [("Transfer-Encoding", "chunked")],
                             length=False) +
                    [chunked([body[i:i + 1] for i in range(len(body))])])
        u = self.upstream(echo)
        ident, user, v = self.setup_token(u.port, self.scheme)
        err, res = self.request(self.comp(user, [("gh", ident)]), "GET",
                                self.scheme + "://127.0.0.1:%d/" % u.port,
                                [("X-T", "<<.credentials.gh>>")])
        self.assertIsNone(err, err)
        self.assertEqual(res["body"], b"x[REDACTED:gh]y")


class TestRedirects(RequestBase):

    def test_cross_origin_redirect_is_followed_without_the_credential(self):
        other = self.upstream(lambda req: response(body=b"landed"))
        u = self.upstream(lambda req: response(
            302, "Found", [("Location", "http://localhost:%d/next?a=1"
                            % other.port)]))
        self.resolve("localhost", "127.0.0.1")
        ident, user, v = self.setup_token(u.port)
        # The second origin's address is allowed, its name is not a
        # destination: the hop may go there, without the value.
        self.c.ok("type.update", {"type": ident, "destinations": [
            "http://127.0.0.1:%d" % u.port,
            "http://127.0.0.1:%d" % other.port]})
        err, res = self.request(
            self.comp(user, [("gh", ident)]), "POST",
            "http://127.0.0.1:%d/" % u.port,
            [("Authorization", "Bearer <<.credentials.gh>>"),
             ("X-Plain", "kept"), ("Content-Type", "text/plain")],
            "body <<.credentials.gh>>", follow_redirects=True)
        self.assertIsNone(err, err)
        self.assertEqual(res["body"], b"landed")
        self.assertEqual(len(other.requests), 1)
        hop = other.requests[0]
        self.assertEqual(hop["raw"],
                         b"GET /next?a=1 HTTP/1.1\r\n"
                         b"Host: localhost:%d\r\n"
                         b"X-Plain: kept\r\n\r\n" % other.port)
        self.assertEqual(cbtest.find_leaks(hop["raw"], [v]), [])
        cbtest.poll_until(lambda: "method=request" in self.d.log(), 10,
                          what="audit line")
        self.assertIn("origins=http://127.0.0.1:%d,http://localhost:%d "
                      % (u.port, other.port), self.d.log())

    def test_redirect_to_a_forbidden_address_is_refused(self):
        u = self.upstream(lambda req: response(
            302, "Found",
            [("Location", "http://169.254.169.254/latest/meta-data")]))
        ident, user, v = self.setup_token(u.port)
        err = self.assertError(self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "http://127.0.0.1:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")], follow_redirects=True),
            "forbidden")
        self.assertIn("169.254.169.254 is a link-local address",
                      err["message"])

    def test_redirect_of_a_request_without_credential_stays_public(self):
        # A call that carries no value has no allowance at any hop.
        self.resolve("pub.fake.test", "127.0.0.1")
        err = self.assertError(self.request(
            self.comp(cbtest.new_user(), []), "GET",
            "http://pub.fake.test:1/"), "forbidden")
        self.assertIn("pub.fake.test resolves to 127.0.0.1 (loopback), and "
                      "a request that carries no credential",
                      err["message"])

    def test_relative_locations_resolve_against_the_current_url(self):
        port = []
        hops = {"/a/b?q=1": "c", "/a/c": "?x=2", "/a/c?x=2":
                "//127.0.0.1:%d/abs", "/abs": "/end#frag"}

        def respond(req):
            if req["target"] in hops:
                loc = hops[req["target"]]
                if "%d" in loc:
                    loc = loc % port[0]
                return response(302, "Found", [("Location", loc)])
            return response(body=req["target"].encode())
        u = self.upstream(respond)
        port.append(u.port)
        ident, user, v = self.setup_token(u.port)
        err, res = self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "http://127.0.0.1:%d/a/b?q=1" % u.port,
            [("X-T", "<<.credentials.gh>>")], follow_redirects=True)
        self.assertIsNone(err, err)
        self.assertEqual(res["body"], b"/end")
        self.assertEqual([r["target"] for r in u.requests],
                         ["/a/b?q=1", "/a/c", "/a/c?x=2", "/abs", "/end"])
        # Same origin all along: the credential went with every hop.
        self.assertEqual({header(r, "X-T") for r in u.requests}, {v})

    def test_cross_origin_307_with_credential_body_is_returned(self):
        other = self.upstream(lambda req: response(body=b"landed"))
        u = self.upstream(lambda req: response(
            307, "Temporary Redirect",
            [("Location", "http://localhost:%d/next" % other.port)]))
        ident, user, v = self.setup_token(u.port)
        err, res = self.request(
            self.comp(user, [("gh", ident)]), "POST",
            "http://127.0.0.1:%d/" % u.port, [],
            "b=<<.credentials.gh>>", follow_redirects=True)
        self.assertIsNone(err, err)
        self.assertEqual(res["status"], 307)
        self.assertEqual(other.requests, [])

    def test_redirect_limit_returns_the_last_redirect(self):
        u = self.upstream(lambda req: response(
            302, "Found", [("Location", "/again")]))
        ident, user, v = self.setup_token(u.port)
        err, res = self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "http://127.0.0.1:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")], follow_redirects=True)
        self.assertIsNone(err, err)
        self.assertEqual(res["status"], 302)
        self.assertEqual(len(u.requests), 6)    # 1 + max_redirects


class TestLimits(RequestBase):
    conf = {"max_in_flight_per_caller": "2"}

    def test_streamed_response_over_the_limit_is_too_large(self):
        u = self.upstream(lambda req: response(
            200, "OK", [("Transfer-Encoding", "chunked")], length=False) +
            [chunked([b"x" * 1000] * 10)])
        ident, user, v = self.setup_token(u.port)
        err = self.assertError(self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "http://127.0.0.1:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")], max_response_bytes=4000),
            "too_large")
        self.assertIn("larger than 4000 bytes", err["message"])

    def test_content_length_over_the_limit_fails_before_the_body(self):
        gate = threading.Event()
        self.addCleanup(gate.set)

        def respond(req):
            gate.wait(30)
            return None
        u = self.upstream(lambda req: [
            b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n",
            lambda: None] if False else [
            b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n",
            30])
        ident, user, v = self.setup_token(u.port)
        t0 = time.monotonic()
        err = self.assertError(self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "http://127.0.0.1:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")]), "too_large")
        # Not after the 30 s the body would take, nor the call's timeout.
        self.assertLess(time.monotonic() - t0, 20)

    def test_timeout_names_the_phase(self):
        u = self.upstream(lambda req: [30])
        ident, user, v = self.setup_token(u.port)
        err = self.assertError(self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "http://127.0.0.1:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")], timeout_ms=300),
            "unavailable")
        self.assertEqual(err["message"], "request timed out after 300 ms "
                         "waiting for the response headers from "
                         "http://127.0.0.1:%d" % u.port)

    def test_timeout_in_the_tls_handshake_names_it(self):
        # A server that accepts and never speaks TLS.
        u = self.upstream(lambda req: [30])
        ident, user, v = self.setup_token(u.port, "https")
        err = self.assertError(self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "https://127.0.0.1:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")], timeout_ms=300),
            "unavailable")
        self.assertEqual(err["message"], "request timed out after 300 ms "
                         "during the TLS handshake with "
                         "https://127.0.0.1:%d" % u.port)

    def test_per_caller_in_flight_limit_answers_unavailable(self):
        gate = threading.Event()
        self.addCleanup(gate.set)

        def respond(req):
            gate.wait(30)
            return response(body=b"late")
        u = self.upstream(respond)
        ident, user, v = self.setup_token(u.port)
        comp = self.comp(user, [("gh", ident)])
        params = {"component": comp, "request": {
            "method": "GET", "url": "http://127.0.0.1:%d/" % u.port,
            "headers": [["X-T", "<<.credentials.gh>>"]]}}
        ids = [self.c.new_id() for _ in range(2)]
        for i in ids:
            self.c.send_raw(cbtest.pack_request(i, "request", params))
        cbtest.poll_until(lambda: len(u.requests) == 2, 20,
                          what="two requests at the upstream")
        other = self.d.client()
        self.addCleanup(other.close)
        err = self.assertError(other.call("request", params), "unavailable")
        self.assertEqual(err["message"], "too many requests in flight: 2 "
                         "of 2 for this caller")
        gate.set()
        for i in ids:
            m = self.c.wait_response(i)
            self.assertIsNone(m[2], m[2])
            self.assertEqual(m[3]["body"], b"late")

    def test_caller_closing_cancels_its_outbound_request(self):
        gate = threading.Event()
        self.addCleanup(gate.set)
        closed = threading.Event()

        def respond(req):
            gate.wait(30)
            return response()
        u = self.upstream(respond)
        ident, user, v = self.setup_token(u.port)
        cl = self.d.client()
        params = {"component": self.comp(user, [("gh", ident)]),
                  "request": {"method": "GET",
                              "url": "http://127.0.0.1:%d/" % u.port,
                              "headers": [["X-T", "<<.credentials.gh>>"]]}}
        cl.send_raw(cbtest.pack_request(cl.new_id(), "request", params))
        cbtest.poll_until(lambda: len(u.requests) == 1, 20,
                          what="the request at the upstream")
        cl.close()
        # The broker drops the slot at once: two more fit again.
        ids = []
        for _ in range(2):
            i = self.c.new_id()
            ids.append(i)
            self.c.send_raw(cbtest.pack_request(i, "request", params))
        cbtest.poll_until(lambda: len(u.requests) == 3, 20,
                          what="two more requests at the upstream")
        cbtest.poll_until(
            lambda: "outcome=unavailable" in self.d.log(), 20,
            what="the cancelled call's audit line")
        gate.set()
        for i in ids:
            m = self.c.wait_response(i)
            self.assertIsNone(m[2], m[2])


class TestTLS(RequestBase):
    """https: the peer is always verified, here against request.ca_file."""

    @classmethod
    def setUpClass(cls):
        cls.certdir = cbtest.make_tmpdir()
        cls.key, cls.crt = make_cert(cls.certdir, "trusted")
        cls.other_key, cls.other_crt = make_cert(cls.certdir, "stranger")
        cls.conf = {"ca_file": cls.crt}

    @classmethod
    def tearDownClass(cls):
        cbtest.remove_tmpdir(cls.certdir)

    def tls(self, crt, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        return ctx

    def test_https_with_the_configured_ca_works(self):
        u = self.upstream(lambda req: response(body=b"secure"),
                          self.tls(self.crt, self.key))
        ident, user, v = self.setup_token(u.port, "https")
        err, res = self.request(self.comp(user, [("gh", ident)]), "GET",
                                "https://127.0.0.1:%d/" % u.port,
                                [("X-T", "<<.credentials.gh>>")])
        self.assertIsNone(err, err)
        self.assertEqual(res["body"], b"secure")
        self.assertEqual(header(u.requests[0], "X-T"), v)

    def test_https_with_an_unknown_issuer_is_unavailable_naming_tls(self):
        u = self.upstream(lambda req: response(body=b"secure"),
                          self.tls(self.other_crt, self.other_key))
        ident, user, v = self.setup_token(u.port, "https")
        err = self.assertError(self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "https://127.0.0.1:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")]), "unavailable")
        self.assertTrue(err["message"].startswith(
            "TLS with https://127.0.0.1:%d failed: " % u.port),
            err["message"])
        self.assertEqual(u.requests, [])


class TestTypeCAFile(RequestBase):
    """A type's own ca_file is the trust store of the requests carrying
    its values; request.ca_file is not set here, so the system store is
    the only other one."""

    @classmethod
    def setUpClass(cls):
        cls.certdir = cbtest.make_tmpdir()
        cls.key, cls.crt = make_cert(cls.certdir, "trusted")
        cls.other_key, cls.other_crt = make_cert(cls.certdir, "stranger")

    @classmethod
    def tearDownClass(cls):
        cbtest.remove_tmpdir(cls.certdir)

    def tls(self, crt, key):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        return ctx

    def typed_token(self, port, ca_file=None, extra_dest=()):
        ident = "t" + tag()
        p = {"ident": ident, "name": "Type " + ident, "storage": "db",
             "destinations": ["https://127.0.0.1:%d" % port] +
             list(extra_dest)}
        if ca_file is not None:
            p["ca_file"] = ca_file
        t = self.c.ok("type.create", p)
        user = cbtest.new_user()
        v = self.plant(ident, user, "tok-" + tag() + tag())
        return t, user, v

    def test_type_ca_file_verifies_https_without_request_ca_file(self):
        u = self.upstream(lambda req: response(body=b"secure"),
                          self.tls(self.crt, self.key))
        t, user, v = self.typed_token(u.port, self.crt)
        self.assertEqual(t["ca_file"], self.crt)
        self.assertEqual(self.c.ok("type.get", {"type": t["ident"]}), t)
        self.assertIn(t, self.c.ok("type.list", {}))
        err, res = self.request(self.comp(user, [("gh", t["ident"])]),
                                "GET", "https://127.0.0.1:%d/" % u.port,
                                [("X-T", "<<.credentials.gh>>")])
        self.assertIsNone(err, err)
        self.assertEqual(res["body"], b"secure")
        self.assertEqual(header(u.requests[0], "X-T"), v)

    def test_type_without_ca_file_fails_tls_verification(self):
        u = self.upstream(lambda req: response(body=b"secure"),
                          self.tls(self.crt, self.key))
        t, user, v = self.typed_token(u.port)
        self.assertIsNone(t["ca_file"])
        err = self.assertError(self.request(
            self.comp(user, [("gh", t["ident"])]), "GET",
            "https://127.0.0.1:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")]), "unavailable")
        self.assertTrue(err["message"].startswith(
            "TLS with https://127.0.0.1:%d failed: " % u.port),
            err["message"])
        self.assertEqual(u.requests, [])

    def test_type_ca_file_of_another_issuer_fails_tls_verification(self):
        u = self.upstream(lambda req: response(body=b"secure"),
                          self.tls(self.crt, self.key))
        t, user, v = self.typed_token(u.port, self.other_crt)
        err = self.assertError(self.request(
            self.comp(user, [("gh", t["ident"])]), "GET",
            "https://127.0.0.1:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")]), "unavailable")
        self.assertTrue(err["message"].startswith(
            "TLS with https://127.0.0.1:%d failed: " % u.port),
            err["message"])
        self.assertEqual(u.requests, [])

    def test_types_with_different_ca_files_are_refused(self):
        u = self.upstream(lambda req: response(body=b"secure"),
                          self.tls(self.crt, self.key))
        a, user, va = self.typed_token(u.port, self.crt)
        b = self.c.ok("type.create", {
            "ident": "b" + tag(), "name": "B", "storage": "db",
            "destinations": ["https://127.0.0.1:%d" % u.port],
            "ca_file": self.other_crt})
        self.plant(b["ident"], user, "tok-" + tag() + tag())
        none = self.c.ok("type.create", {
            "ident": "n" + tag(), "name": "N", "storage": "db",
            "destinations": ["https://127.0.0.1:%d" % u.port]})
        self.plant(none["ident"], user, "tok-" + tag() + tag())
        for other, shown in ((b, self.other_crt), (none, "no CA file")):
            err = self.assertError(self.request(
                self.comp(user, [("a", a["ident"]),
                                 ("b", other["ident"])]), "GET",
                "https://127.0.0.1:%d/" % u.port,
                [("X-A", "<<.credentials.a>>"),
                 ("X-B", "<<.credentials.b>>")]), "bad_request")
            self.assertEqual(
                err["message"],
                "the credentials of this request come from types with "
                "different CA files: %s (%s), %s (%s)"
                % (a["ident"], self.crt, other["ident"], shown))
        # Two values of types with the same CA file go.
        c = self.c.ok("type.create", {
            "ident": "c" + tag(), "name": "C", "storage": "db",
            "destinations": ["https://127.0.0.1:%d" % u.port],
            "ca_file": self.crt})
        self.plant(c["ident"], user, "tok-" + tag() + tag())
        self.assertEqual(u.connections, 0)
        err, res = self.request(
            self.comp(user, [("a", a["ident"]), ("c", c["ident"])]), "GET",
            "https://127.0.0.1:%d/" % u.port,
            [("X-A", "<<.credentials.a>>"), ("X-C", "<<.credentials.c>>")])
        self.assertIsNone(err, err)
        self.assertEqual(len(u.requests), 1)
        self.assertEqual(cbtest.find_leaks(self.d.all_logs(), self.planted), [])

    def test_cross_origin_redirect_hop_is_verified_against_system_store(self):
        # Both servers hold the certificate of the type's CA file; the
        # second is another origin, so its hop carries no value and is
        # verified against the system store only.
        other = self.upstream(lambda req: response(body=b"landed"),
                              self.tls(self.crt, self.key))

        def respond(req):
            if req["raw"].startswith(b"GET /cross "):
                return response(302, "Found", [(
                    "Location", "https://localhost:%d/next" % other.port)])
            if req["raw"].startswith(b"GET /same "):
                return response(302, "Found", [("Location", "/again")])
            return response(body=b"again")
        u = self.upstream(respond, self.tls(self.crt, self.key))
        self.resolve("localhost", "127.0.0.1")
        t, user, v = self.typed_token(
            u.port, self.crt, ["https://127.0.0.1:%d" % other.port])
        # Same origin: the hop carries the value, the type's CA holds.
        err, res = self.request(self.comp(user, [("gh", t["ident"])]),
                                "GET", "https://127.0.0.1:%d/same" % u.port,
                                [("X-T", "<<.credentials.gh>>")],
                                follow_redirects=True)
        self.assertIsNone(err, err)
        self.assertEqual(res["body"], b"again")
        self.assertEqual(header(u.requests[-1], "X-T"), v)
        err = self.assertError(self.request(
            self.comp(user, [("gh", t["ident"])]), "GET",
            "https://127.0.0.1:%d/cross" % u.port,
            [("X-T", "<<.credentials.gh>>")], follow_redirects=True),
            "unavailable")
        self.assertTrue(err["message"].startswith(
            "TLS with https://localhost:%d failed: " % other.port),
            err["message"])
        self.assertEqual(other.requests, [])

    def test_ca_file_gone_after_create_fails_the_request_naming_tls(self):
        u = self.upstream(lambda req: response(body=b"secure"),
                          self.tls(self.crt, self.key))
        ca = os.path.join(self.tmp, "ca.pem")
        with open(self.crt, "rb") as f:
            cbtest.write_file(ca, f.read())
        t, user, v = self.typed_token(u.port, ca)
        os.unlink(ca)
        err = self.assertError(self.request(
            self.comp(user, [("gh", t["ident"])]), "GET",
            "https://127.0.0.1:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")]), "unavailable")
        self.assertTrue(err["message"].startswith(
            "TLS with https://127.0.0.1:%d failed: " % u.port),
            err["message"])
        self.assertEqual(u.requests, [])

    def test_type_create_refuses_unusable_ca_files(self):
        junk = os.path.join(self.tmp, "junk.pem")
        cbtest.write_file(junk, b"not a certificate\n")
        broken = os.path.join(self.tmp, "broken.pem")
        cbtest.write_file(broken, b"-----BEGIN CERTIFICATE-----\n"
                          b"bm90IGEgY2VydGlmaWNhdGU=\n"
                          b"-----END CERTIFICATE-----\n")
        missing = os.path.join(self.tmp, "missing.pem")
        cases = [
            ("ca.pem", "ca_file 'ca.pem' is not an absolute path"),
            (missing, "cannot read ca_file '%s': No such file or "
             "directory" % missing),
            (junk, "ca_file '%s' holds no PEM certificate" % junk),
            (broken, "ca_file '%s' holds a malformed PEM certificate"
             % broken),
            (self.tmp, "ca_file '%s' is not a regular file" % self.tmp),
            ("/" + "a" * 4096, "ca_file '/%s...' is longer than 4095 "
             "bytes" % ("a" * 63)),
        ]
        for path, msg in cases:
            ident = "t" + tag()
            err = self.assertError(self.c.call("type.create", {
                "ident": ident, "name": "T", "ca_file": path}),
                "bad_request")
            self.assertEqual(err["message"], msg)
            self.assertError(self.c.call("type.get", {"type": ident}),
                             "not_found")
            # type.update checks the same way and changes nothing.
        t = self.c.ok("type.create", {"ident": "t" + tag(), "name": "T",
                                      "ca_file": self.crt})
        for path, msg in cases:
            err = self.assertError(self.c.call("type.update", {
                "type": t["ident"], "ca_file": path}), "bad_request")
            self.assertEqual(err["message"], msg)
        self.assertEqual(self.c.ok("type.get", {"type": t["ident"]}), t)

    def test_type_update_sets_changes_and_clears_ca_file(self):
        t = self.c.ok("type.create", {"ident": "t" + tag(), "name": "T"})
        self.assertIsNone(t["ca_file"])
        for path in (self.crt, self.other_crt):
            r = self.c.ok("type.update", {"type": t["ident"],
                                          "ca_file": path})
            self.assertEqual(r["ca_file"], path)
            self.assertEqual(self.c.ok("type.get", {"type": t["ident"]}),
                             r)
        # Other changes keep it.
        r = self.c.ok("type.update", {"type": t["ident"], "name": "U"})
        self.assertEqual(r["ca_file"], self.other_crt)
        for clear in ("", None):
            self.c.ok("type.update", {"type": t["ident"],
                                      "ca_file": self.crt})
            r = self.c.ok("type.update", {"type": t["ident"],
                                          "ca_file": clear})
            self.assertIsNone(r["ca_file"])
            self.assertIsNone(self.c.ok("type.get",
                                        {"type": t["ident"]})["ca_file"])
        # It survives a restart of the broker.
        self.c.ok("type.update", {"type": t["ident"], "ca_file": self.crt})
        self.c.close()
        self.d.stop()
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.assertEqual(self.c.ok("type.get", {"type": t["ident"]})[
            "ca_file"], self.crt)


class TestSlowUpstream(RequestBase):

    def test_slow_upstream_does_not_delay_other_connections(self):
        # The one multi-second wait of the suite: an upstream that takes
        # 5 s to answer, while other callers are served.
        u = self.upstream(lambda req: [5] + response(body=b"slow"))
        ident, user, v = self.setup_token(u.port)
        slow = self.d.client(timeout=60)
        self.addCleanup(slow.close)
        sid = slow.new_id()
        slow.send_raw(cbtest.pack_request(sid, "request", {
            "component": self.comp(user, [("gh", ident)]),
            "request": {"method": "GET",
                        "url": "http://127.0.0.1:%d/" % u.port,
                        "headers": [["X-T", "<<.credentials.gh>>"]]}}))
        cbtest.poll_until(lambda: len(u.requests) == 1, 20,
                          what="the request at the upstream")
        other = self.d.client()
        self.addCleanup(other.close)
        for _ in range(5):
            t0 = time.monotonic()
            other.ok("hello", {})
            other.ok("substitute", {
                "component": self.comp(user, [("gh", ident)]),
                "request": {"method": "GET",
                            "url": "http://127.0.0.1:%d/" % u.port,
                            "headers": [["X-T", "<<.credentials.gh>>"]]}})
            self.assertLess(time.monotonic() - t0, 1.0 * cbtest.SCALE)
        # Still pending: the calls above were not served after it.
        self.assertEqual(len(slow.msgs), 0)
        m = slow.wait_response(sid)
        self.assertIsNone(m[2], m[2])
        self.assertEqual(m[3]["body"], b"slow")


class TestTotalLimit(RequestBase):
    conf = {"max_in_flight": "1"}

    def test_total_in_flight_limit_answers_unavailable(self):
        gate = threading.Event()
        self.addCleanup(gate.set)

        def respond(req):
            gate.wait(30)
            return response(body=b"late")
        u = self.upstream(respond)
        ident, user, v = self.setup_token(u.port)
        params = {"component": self.comp(user, [("gh", ident)]),
                  "request": {"method": "GET",
                              "url": "http://127.0.0.1:%d/" % u.port,
                              "headers": [["X-T", "<<.credentials.gh>>"]]}}
        first = self.c.new_id()
        self.c.send_raw(cbtest.pack_request(first, "request", params))
        cbtest.poll_until(lambda: len(u.requests) == 1, 20,
                          what="the request at the upstream")
        other = self.d.client()
        self.addCleanup(other.close)
        err = self.assertError(other.call("request", params), "unavailable")
        self.assertEqual(err["message"], "too many requests in flight: 1 "
                         "of 1 in all")
        # substitute is not limited by it.
        other.ok("substitute", params)
        gate.set()
        m = self.c.wait_response(first)
        self.assertIsNone(m[2], m[2])


class TestDisabled(RequestBase):
    conf = {"enabled": "no"}

    def test_disabled_request_is_not_configured_and_sends_nothing(self):
        u = self.upstream(lambda req: response())
        ident, user, v = self.setup_token(u.port)
        err = self.assertError(self.request(
            self.comp(user, [("gh", ident)]), "GET",
            "http://127.0.0.1:%d/" % u.port,
            [("X-T", "<<.credentials.gh>>")]), "not_configured")
        self.assertIn("request.enabled", err["message"])
        self.assertEqual(u.connections, 0)


class TLSUpstreams:
    """The same tests with HTTPS upstreams, verified against
    request.ca_file: what goes out and what is scrubbed does not depend on
    the transport."""

    scheme = "https"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.certdir = cbtest.make_tmpdir()
        key, crt = make_cert(cls.certdir, "upstream")
        cls.conf = {"ca_file": crt}
        cls.server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cls.server_tls.load_cert_chain(crt, key)

    @classmethod
    def tearDownClass(cls):
        cbtest.remove_tmpdir(cls.certdir)
        super().tearDownClass()


class TestScrubHTTPS(TLSUpstreams, TestScrub):
    pass


class TestExactRequestHTTPS(TLSUpstreams, RequestBase):
    test_request_sends_exactly_the_substituted_request = \
        TestRequest.test_request_sends_exactly_the_substituted_request


if __name__ == "__main__":
    cbtest.main()

"""
Placeholder forms through the real daemon (SPEC sections 5.2 and 11).

 - {{.credentials.ID}}, with optional spaces and the same filters, is the
   same placeholder as <<.credentials.ID>>: every filter chain, spaced and
   not, in the URL, a header and the body gives exactly the request the
   angle form gives, and "used" is the same.
 - Text that starts a {{.credentials. placeholder and does not parse is
   bad_request naming it; the platform's own {{ ... }} text ({{ .vars.x }},
   {{ if .ok }}, {{.credential.x}}) passes through untouched.
 - substitute.syntax = angle refuses the brace form, brace refuses the
   angle form (dry runs and credctl substitute --dry-run included), other
   {{ ... }} text still passes, and a SIGHUP changes the setting.

Every test also checks that no planted value reached an answer that is an
error, credctl's output or the daemon's stderr.
"""

import base64
import json
import os
import secrets
import signal
import sys
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402

ORIGIN = "https://api.example.com"

# Quotes, backslash, '&', '/', space, '<', '>', '{', '}', non-ASCII.
HOSTILE = 'q"b\\s/&%+ <>{}|~._-=?#пароль'


def f_urlquery(b):
    return urllib.parse.quote_from_bytes(b, safe="-._~").encode()


def f_json(b):
    out = []
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f",
             "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    for ch in b.decode("utf-8"):
        o = ord(ch)
        if ch in short:
            out.append(short[ch])
        elif o < 0x20 or o == 0x7F or ch in "<>&" or o in (0x2028, 0x2029):
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    return "".join(out).encode("utf-8")


FILTERS = {"urlquery": f_urlquery, "urlpath": f_urlquery, "json": f_json,
           "base64": base64.b64encode}


def angle(ident, chain=(), spaced=False):
    if spaced:
        return "<< .credentials.%s %s>>" % (
            ident, "".join("| %s " % f for f in chain))
    return "<<.credentials.%s%s>>" % (ident, "".join("|" + f for f in chain))


def brace(ident, chain=(), spaced=False):
    if spaced:
        return "{{ .credentials.%s %s}}" % (
            ident, "".join("|  %s\t" % f for f in chain))
    return "{{.credentials.%s%s}}" % (ident, "".join("|" + f for f in chain))


class FormsBase(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.user = new_user()
        self.planted = []
        self.outputs = []
        self.c.ok("type.create", {"ident": "tok", "name": "Token",
                                  "storage": "db"})
        self.value = "%s-%s" % (HOSTILE, secrets.token_hex(8))
        self.planted.append(self.value.encode())
        self.c.ok("cred.set", {"type": "tok", "user": self.user,
                               "value": self.value})
        self.addCleanup(self.check_no_value)

    def comp(self):
        return {"kind": "action", "initiator": self.user,
                "credentials": [{"id": "t", "type": "tok"}]}

    @staticmethod
    def req(url, headers=(), body=None):
        r = {"method": "POST", "url": url,
             "headers": [[n, v] for n, v in headers]}
        if body is not None:
            r["body"] = body
        return r

    def call(self, request, dry_run=False):
        p = {"component": self.comp(), "request": request}
        if dry_run:
            p["dry_run"] = True
        start = len(self.c.raw)
        err, res = self.c.call("substitute", p)
        return err, res, bytes(self.c.raw[start:])

    def sub_ok(self, request, dry_run=False):
        err, res, _ = self.call(request, dry_run)
        self.assertIsNone(err, "request %r" % (request,))
        return res

    def sub_err(self, request, *needles, dry_run=False):
        err, res, raw = self.call(request, dry_run)
        self.assertIsNone(res, "request %r" % (request,))
        self.assertEqual(err["code"], "bad_request", err)
        for n in needles:
            self.assertIn(n, err["message"], "request %r" % (request,))
        self.outputs.append(raw)
        return err["message"]

    def ctl(self, *args, input=None):
        rc, out, err = cbtest.credctl(self.d.socket, *args, input=input)
        self.outputs += [out.encode(), err.encode()]
        return rc, out, err

    def check_no_value(self):
        blobs = self.outputs + [self.d.all_logs()]
        for blob in blobs:
            self.assertEqual(find_leaks(blob, self.planted), [])
            for v in self.planted:
                self.assertNotIn(v, blob)

    def set_syntax(self, syntax):
        """Rewrite the configuration with substitute.syntax and SIGHUP."""
        self.d.extra = {"substitute": [("syntax", syntax)]}
        self.d.write_config()
        self.d.signal(signal.SIGHUP)


class TestBothForms(FormsBase):
    """The default, substitute.syntax = both."""

    def test_brace_form_with_filters_and_spaces_is_the_angle_form(self):
        v = self.value.encode()
        chains = [(), ("urlquery",), ("urlpath",), ("json",), ("base64",),
                  ("json", "base64"), ("base64", "urlquery"),
                  ("urlpath", "json", "base64")]
        for chain in chains:
            want = v
            for f in chain:
                want = FILTERS[f](want)
            # A URL takes only printable ASCII: urlquery last.
            uchain = chain + ("urlquery",)
            uwant = f_urlquery(want)
            for spaced in (False, True):
                with self.subTest(chain=chain, spaced=spaced):
                    results = []
                    for form in (angle, brace):
                        r = self.req(
                            ORIGIN + "/v?k=" + form("t", uchain, spaced),
                            [("X-Key", form("t", ("base64",), spaced)),
                             ("X-Raw", "pre " + form("t", chain, spaced))],
                            body="a=" + form("t", chain, spaced) + ";")
                        results.append(self.sub_ok(r))
                    self.assertEqual(results[0], results[1])
                    got = results[1]["request"]
                    self.assertEqual(got["url"], ORIGIN + "/v?k=" +
                                     uwant.decode())
                    self.assertEqual(got["headers"],
                                     [["X-Key", base64.b64encode(v).decode()],
                                      ["X-Raw", "pre " + want.decode()]])
                    self.assertEqual(got["body"],
                                     "a=" + want.decode() + ";")
                    self.assertEqual(results[1]["used"],
                                     [{"id": "t", "type": "tok",
                                       "source": "own"}])

    def test_both_forms_mixed_in_one_request(self):
        res = self.sub_ok(self.req(
            ORIGIN + "/v?a=" + angle("t", ("urlquery",)) + "&b=" +
            brace("t", ("urlquery",), True),
            body=angle("t", ("json",)) + "|" + brace("t", ("json",))))
        q = f_urlquery(self.value.encode()).decode()
        j = f_json(self.value.encode()).decode()
        self.assertEqual(res["request"]["url"],
                         ORIGIN + "/v?a=" + q + "&b=" + q)
        self.assertEqual(res["request"]["body"], j + "|" + j)

    def test_malformed_brace_placeholder_is_an_error_naming_it(self):
        cases = [
            ("{{.credentials.t", "unterminated placeholder "
             "{{.credentials.t: missing '}}'"),
            ("{{.credentials.}}", "malformed placeholder "
             "{{.credentials.}}"),
            ("{{ .credentials.t | nope }}", "unknown filter 'nope' in "
             "placeholder {{ .credentials.t | nope }}"),
            ("{{.credentials.t>>", "malformed placeholder "
             "{{.credentials.t>>: expected '|' or '}}'"),
            ("{{.credentials.t json}}", "expected '|' or '}}'"),
            ("{{.credentials.9t}}", "{{.credentials.9t}}"),
            ("{{.credentials.t|}}", "missing filter name"),
        ]
        for text, needle in cases:
            for place in ("url", "header", "body"):
                if place == "url" and " " in text:
                    continue        # a space in a URL is refused first
                with self.subTest(text=text, place=place):
                    if place == "url":
                        r = self.req(ORIGIN + "/?q=" + text)
                    elif place == "header":
                        r = self.req(ORIGIN + "/", [("X", text)])
                    else:
                        r = self.req(ORIGIN + "/", body="x " + text)
                    self.sub_err(r, needle)
                    self.sub_err(r, needle, dry_run=True)

    def test_undeclared_id_in_brace_form_is_an_error(self):
        self.sub_err(self.req(ORIGIN + "/", body=brace("other")),
                     "placeholder {{.credentials.other}} names a credential "
                     "that the action does not declare")
        self.sub_err(self.req(ORIGIN + "/", body=angle("other")),
                     "placeholder <<.credentials.other>> names a credential "
                     "that the action does not declare")

    def test_other_brace_text_passes_through_untouched(self):
        texts = ["{{ .vars.x }}", "{{.vars.x}}", "{{ if .ok }}y{{ end }}",
                 "{{.credential.t}}", "{{.Credentials.t}}",
                 "{{ printf \"%s\" .credentials.t }}",
                 '{"a":{"b":1}}', "{{", "}}"]
        for text in texts:
            with self.subTest(text=text):
                res = self.sub_ok(self.req(ORIGIN + "/",
                                           [("X-Tpl", text)], body=text))
                self.assertEqual(res["request"]["headers"],
                                 [["X-Tpl", text]])
                self.assertEqual(res["request"]["body"], text)
                self.assertEqual(res["used"], [])
        res = self.sub_ok(self.req(ORIGIN + "/{{.vars.x}}/" + brace("t", (
            "urlpath",)), body="{{ .vars.x }} " + brace("t", ("json",))))
        self.assertEqual(res["request"]["url"], ORIGIN + "/{{.vars.x}}/" +
                         f_urlquery(self.value.encode()).decode())
        self.assertEqual(res["request"]["body"], "{{ .vars.x }} " +
                         f_json(self.value.encode()).decode())

    def test_brace_placeholder_cannot_form_the_authority(self):
        self.sub_err(self.req("https://" + brace("t") + "/"),
                     "placeholder {{.credentials.t}} may not form")

    def test_dry_run_masks_the_brace_form(self):
        res = self.sub_ok(self.req(ORIGIN + "/?k=" + brace("t", (
            "urlquery",), True), body=brace("t")), dry_run=True)
        self.assertEqual(res["request"]["url"], ORIGIN + "/?k=~masked-t~")
        self.assertEqual(res["request"]["body"], "~masked-t~")
        self.assertIs(res["dry_run"], True)

    def test_credctl_dry_run_reads_the_brace_form(self):
        if not cbtest.have_credctl():
            self.skipTest("credctl not built")
        doc = {"component": self.comp(),
               "request": self.req(ORIGIN + "/?k=" + brace("t", (
                   "urlquery",)), [("X-A", "{{ .vars.x }}")],
                   body='{"k":"' + brace("t", ("json",), True) + '"}')}
        rc, out, err = self.ctl("substitute", "--dry-run",
                                input=json.dumps(doc))
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        self.assertEqual(lines[0], "POST " + ORIGIN + "/?k=~masked-t~")
        self.assertEqual(lines[1], "X-A: {{ .vars.x }}")
        self.assertIn('{"k":"~masked-t~"}', lines)


class TestAngleOnly(FormsBase):
    daemon_kwargs = {"extra": {"substitute": [("syntax", "angle")]}}

    def test_angle_syntax_refuses_the_brace_form(self):
        for r in (self.req(ORIGIN + "/?k=" + brace("t", ("urlquery",))),
                  self.req(ORIGIN + "/", [("X", brace("t", (), True))]),
                  self.req(ORIGIN + "/", body="x " + brace("t"))):
            with self.subTest(request=r):
                msg = self.sub_err(r, "the {{.credentials.ID}} form is "
                                   "not accepted here (substitute.syntax "
                                   "= angle)", "{{")
                self.sub_err(r, msg, dry_run=True)
        # The angle form works, other {{ }} text passes.
        res = self.sub_ok(self.req(ORIGIN + "/", [("X", "{{ .vars.x }}")],
                                   body=angle("t", ("json",), True)))
        self.assertEqual(res["request"]["headers"], [["X", "{{ .vars.x }}"]])
        self.assertEqual(res["request"]["body"],
                         f_json(self.value.encode()).decode())

    def test_credctl_dry_run_refuses_the_brace_form(self):
        if not cbtest.have_credctl():
            self.skipTest("credctl not built")
        doc = {"component": self.comp(),
               "request": self.req(ORIGIN + "/", body=brace("t"))}
        rc, out, err = self.ctl("substitute", "--dry-run",
                                input=json.dumps(doc))
        self.assertNotEqual(rc, 0)
        self.assertIn("substitute.syntax = angle", err)

    def test_syntax_change_takes_effect_on_sighup(self):
        r = self.req(ORIGIN + "/", body=brace("t"))
        self.sub_err(r, "substitute.syntax = angle")
        pid = self.d.pid
        self.set_syntax("brace")

        def brace_ok():
            with self.d.client() as c:
                err, _ = c.call("substitute", {"component": self.comp(),
                                               "request": r})
                return err is None
        cbtest.poll_until(brace_ok, cbtest.CALL_TIMEOUT,
                          what="substitute.syntax reloaded")
        self.sub_err(self.req(ORIGIN + "/", body=angle("t")),
                     "substitute.syntax = brace")
        self.assertEqual(self.d.pid, pid)


class TestBraceOnly(FormsBase):
    daemon_kwargs = {"extra": {"substitute": [("syntax", "brace")]}}

    def test_brace_syntax_refuses_the_angle_form(self):
        for r in (self.req(ORIGIN + "/?k=" + angle("t", ("urlquery",))),
                  self.req(ORIGIN + "/", [("X", angle("t", (), True))]),
                  self.req(ORIGIN + "/", body="x " + angle("t"))):
            with self.subTest(request=r):
                msg = self.sub_err(r, "the <<.credentials.ID>> form is "
                                   "not accepted here (substitute.syntax "
                                   "= brace)", "<<")
                self.sub_err(r, msg, dry_run=True)
        res = self.sub_ok(self.req(ORIGIN + "/", [("X", "a << b")],
                                   body="{{ .vars.x }}" +
                                   brace("t", ("base64",), True)))
        self.assertEqual(res["request"]["headers"], [["X", "a << b"]])
        self.assertEqual(res["request"]["body"], "{{ .vars.x }}" +
                         base64.b64encode(self.value.encode()).decode())


class TestSyntaxConfig(cbtest.DaemonTestCase):
    start_daemon = False

    def test_invalid_syntax_value_refuses_to_start(self):
        self.d.extra = {"substitute": [("syntax", "curly")]}
        self.d.write_config()
        self.d.start(wait=False)
        self.assertEqual(self.d.wait_exit(), 1, self.d.log())
        self.assertIn("substitute.syntax must be one of both, angle, brace, "
                      "got 'curly'", self.d.log())
        self.d.checked = True       # the exit status was the point


if __name__ == "__main__":
    cbtest.main()

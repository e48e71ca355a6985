"""
Substitution tests (SPEC sections 5 and 6, method `substitute`) through the
real daemon.

 - Subjects (5.1): every row of the table, with values planted for several
   users so that the substituted output shows whose value was used; the
   shape of a skipped status check; a data_source without a system account;
   external-service inheritance, where an id declared by both sides takes
   the component's own type (different values per type prove which).
 - Placeholders and filters (5.2): every filter and chains of them on
   hostile values (quotes, backslashes, "пароль", CR/LF, '&', '/', '%', '+',
   placeholder text inside a value), each call checked against the EXACT
   request expected; structure protection in header values and URLs (the
   error names the placeholder, never the value); malformed placeholders,
   unknown filters and undeclared ids; all-or-nothing.
 - Destinations (5.2): allowed and refused origins, userinfo tricks, case,
   ports, trailing dots, IP literals, look-alike suffixes, wildcards; no
   placeholder in the scheme or authority; a type without destinations goes
   anywhere.
 - Also: vault-stored types (not_configured), the use:credentials
   permission, bin bodies, and dry runs (shape, masks, never a value).

Every test also checks, when it ends, that no planted value reached the
daemon's stderr.
"""

import base64
import json
import os
import secrets
import sys
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402
import msgpack  # noqa: E402

NOBODY = object()

# -- reference encoders (SPEC 5.2 / template.h) ----------------------------


def f_urlquery(b):
    """Percent-encode every byte but A-Z a-z 0-9 - . _ ~, upper-case hex."""
    return urllib.parse.quote_from_bytes(b, safe="").encode()


f_urlpath = f_urlquery


def f_json(b):
    """Inside of a JSON string, as template.h documents it: '"' and '\\'
    escaped, \\b \\f \\n \\r \\t, other controls, DEL, '<', '>', '&' as
    \\u00XX (lower-case hex), U+2028/U+2029 as \\u2028/\\u2029, other
    non-ASCII unchanged.  Raises UnicodeDecodeError for invalid UTF-8."""
    s = b.decode("utf-8")
    out = []
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f",
             "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    for ch in s:
        o = ord(ch)
        if ch in short:
            out.append(short[ch])
        elif o < 0x20 or o == 0x7F or ch in "<>&" or o in (0x2028, 0x2029):
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    return "".join(out).encode("utf-8")


def f_base64(b):
    return base64.b64encode(b)


FILTERS = {"urlquery": f_urlquery, "urlpath": f_urlpath, "json": f_json,
           "base64": f_base64}


def apply_chain(value, chain):
    for f in chain:
        value = FILTERS[f](value)
    return value


def ph(ident, chain=(), spaced=False):
    """The placeholder text for ident with a filter chain."""
    if spaced:
        return "<< .credentials.%s %s>>" % (
            ident, "".join("| %s " % f for f in chain))
    return "<<.credentials.%s%s>>" % (ident, "".join("|" + f for f in chain))


def url_ok(b):
    return all(0x21 <= c <= 0x7E for c in b)


def header_ok(b):
    return not any(c in b for c in b"\r\n\0")


def tag():
    return secrets.token_hex(6)


class LenientClient(cbtest.Client):
    """A Client whose unpacker survives a msgpack str that is not UTF-8
    (the bytes come back as lone surrogates), so a test can look at such
    an answer instead of dying in the unpacker."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                         max_buffer_size=64 << 20,
                                         unicode_errors="surrogateescape")


def bad_strs(obj, path="result"):
    """Paths of the str values in obj that were not valid UTF-8."""
    out = []
    if isinstance(obj, str):
        try:
            obj.encode("utf-8")
        except UnicodeEncodeError:
            out.append(path)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out += bad_strs(v, "%s.%s" % (path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += bad_strs(v, "%s[%d]" % (path, i))
    return out


# -- base -------------------------------------------------------------------


class SubBase(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.planted = []       # every value planted (bytes)
        self.types = {}         # ident -> uuid
        # Registered after the daemon's own clean-ups, so it runs first,
        # while the log files are still there.
        self.addCleanup(self.check_stderr)

    # helpers ---------------------------------------------------------------
    def mktype(self, ident, destinations=None, storage="db"):
        p = {"ident": ident, "name": "Type " + ident, "storage": storage}
        if destinations is not None:
            p["destinations"] = destinations
        t = self.c.ok("type.create", p)
        self.types[ident] = t["uuid"]
        return t

    def plant(self, ident, user, value):
        v = value.encode() if isinstance(value, str) else bytes(value)
        self.planted.append(v)
        self.c.ok("cred.set", {"type": ident, "user": user, "value": value})
        return v

    @staticmethod
    def comp(kind="action", creds=(), ext=None, **users):
        c = {"kind": kind,
             "credentials": [{"id": i, "type": t} for i, t in creds]}
        for k, v in users.items():
            c[k] = v
        if ext is not None:
            c["external_service"] = {
                "credentials": [{"id": i, "type": t} for i, t in ext]}
        return c

    @staticmethod
    def req(url, headers=(), body=NOBODY, method="GET"):
        r = {"method": method, "url": url,
             "headers": [[n, v] for n, v in headers]}
        if body is not NOBODY:
            r["body"] = body
        return r

    def call(self, component, request, dry_run=None, client=None):
        """substitute; returns (error, result, bytes of the response)."""
        c = client or self.c
        p = {"component": component, "request": request}
        if dry_run is not None:
            p["dry_run"] = dry_run
        start = len(c.raw)
        err, res = c.call("substitute", p)
        return err, res, bytes(c.raw[start:])

    def sub_ok(self, component, request, **kw):
        err, res, raw = self.call(component, request, **kw)
        self.assertIsNone(err, "substitute failed: %r\nrequest: %r"
                          % (err, request))
        return res

    def sub_err(self, component, request, code, *needles, **kw):
        """Expect error code; the message contains every needle and no
        planted value; the response holds no planted value at all."""
        err, res, raw = self.call(component, request, **kw)
        self.assertIsNotNone(err, "expected %s, got %r\nrequest: %r"
                             % (code, res, request))
        self.assertIsNone(res)
        self.assertEqual(err.get("code"), code, "%r\nrequest: %r"
                         % (err, request))
        self.assertEqual(set(err), {"code", "message"})
        msg = err["message"]
        for n in needles:
            self.assertIn(n, msg, "request: %r" % (request,))
        self.assertNoValue(raw, "error response")
        return msg

    def assertNoValue(self, blob, where, values=None):
        for v in (self.planted if values is None else values):
            if len(v) >= 6:
                self.assertNotIn(v, blob, "value %r in %s" % (v, where))
        long_values = [v for v in (self.planted if values is None
                                   else values) if len(v) >= 12]
        self.assertEqual(find_leaks(blob, long_values), [],
                         "value leaked into %s" % where)

    def check_stderr(self):
        if self.d.proc is None:
            return
        self.assertNoValue(self.d.all_logs(), "daemon stderr")


# -- item 1: subjects -------------------------------------------------------


class TestSubject(SubBase):
    """SPEC 5.1 through the daemon: whose value is used."""

    def setUp(self):
        super().setUp()
        self.mktype("alpha")
        self.A, self.B, self.C = new_user(), new_user(), new_user()
        self.nobody = new_user()        # has no value
        self.val = {}
        for name, u in (("A", self.A), ("B", self.B), ("C", self.C)):
            self.val[u] = "value-of-%s-%s" % (name, tag())
            self.plant("alpha", u, self.val[u])

    def run_row(self, kind, users, want):
        A, B, C = self.A, self.B, self.C
        comp = self.comp(kind, [("k", "alpha")], **users)
        request = self.req("https://api.example/v?k=" + ph("k"),
                           [("Authorization", "Bearer " + ph("k"))],
                           body="k=" + ph("k"))
        label = "%s %s" % (kind, sorted(users))
        if want == "error":
            self.sub_err(comp, request, "bad_request")
            return
        if want == "skip":
            err, res, raw = self.call(comp, request)
            self.assertIsNone(err, label)
            self.assertEqual(res, {"skipped": True, "reason": res["reason"]},
                             label)
            self.assertIsInstance(res["reason"], str)
            self.assertIn("system account", res["reason"])
            self.assertNoValue(raw, label)
            return
        res = self.sub_ok(comp, request)
        v = self.val[want]
        self.assertEqual(res, {
            "request": {"method": "GET",
                        "url": "https://api.example/v?k=" + v,
                        "headers": [["Authorization", "Bearer " + v]],
                        "body": "k=" + v},
            "subject": want,
            "used": [{"id": "k", "type": "alpha",
                      "source": "own"}]}, label)
        # Nobody else's value in the answer.
        others = [self.val[u].encode() for u in (A, B, C) if u != want]
        self.assertNoValue(repr(res).encode(), label, others)

    def test_every_row(self):
        A, B, C = self.A, self.B, self.C
        rows = [
            # action: run_as when given, else initiator
            ("action", {"initiator": A, "run_as": B}, B),
            ("action", {"initiator": A, "run_as": B, "system_account": C},
             B),
            ("action", {"run_as": B}, B),
            ("action", {"initiator": A}, A),
            ("action", {"initiator": A, "system_account": C}, A),
            ("action", {"system_account": C}, "error"),
            ("action", {}, "error"),
            # widget: the same
            ("widget", {"initiator": A, "run_as": B}, B),
            ("widget", {"initiator": A, "run_as": B, "system_account": C},
             B),
            ("widget", {"run_as": B}, B),
            ("widget", {"initiator": A}, A),
            ("widget", {"initiator": A, "system_account": C}, A),
            ("widget", {"system_account": C}, "error"),
            ("widget", {}, "error"),
            # data_source: system_account, always; never the initiator
            ("data_source", {"system_account": C}, C),
            ("data_source", {"system_account": C, "initiator": A}, C),
            ("data_source", {"system_account": C, "initiator": A,
                             "run_as": B}, C),
            ("data_source", {"initiator": A}, "error"),
            ("data_source", {"run_as": B}, "error"),
            ("data_source", {"initiator": A, "run_as": B}, "error"),
            ("data_source", {}, "error"),
            # status_check: system_account, else skipped
            ("status_check", {"system_account": C}, C),
            ("status_check", {"system_account": C, "initiator": A,
                              "run_as": B}, C),
            ("status_check", {}, "skip"),
            ("status_check", {"initiator": A}, "skip"),
            ("status_check", {"initiator": A, "run_as": B}, "skip"),
        ]
        for kind, users, want in rows:
            with self.subTest(kind=kind, users=sorted(users)):
                self.run_row(kind, users, want)

    def test_subject_without_value_is_not_replaced(self):
        # run_as wins even when run_as has no value: never a fallback to
        # the initiator (whose value exists).
        for kind, users, who in (
                ("action", {"run_as": self.nobody, "initiator": self.A},
                 self.nobody),
                ("widget", {"run_as": self.nobody, "initiator": self.A},
                 self.nobody),
                ("data_source", {"system_account": self.nobody,
                                 "initiator": self.A, "run_as": self.B},
                 self.nobody),
                ("status_check", {"system_account": self.nobody,
                                  "initiator": self.A}, self.nobody)):
            with self.subTest(kind=kind):
                comp = self.comp(kind, [("k", "alpha")], **users)
                self.sub_err(comp, self.req("https://x.example/?k=" +
                                            ph("k")),
                             "not_found", "'k'", "alpha", who)

    def test_data_source_without_system_account(self):
        comp = self.comp("data_source", [("k", "alpha")],
                         initiator=self.A, run_as=self.B)
        msg = self.sub_err(comp, self.req("https://x.example/?k=" + ph("k")),
                           "bad_request", "system_account")
        self.assertIn("data_source", msg)
        # Also in a dry run: the subject comes first.
        self.sub_err(comp, self.req("https://x.example/?k=" + ph("k")),
                     "bad_request", "system_account", dry_run=True)

    def test_action_without_subject(self):
        msg = self.sub_err(self.comp("action", [("k", "alpha")],
                                     system_account=self.C),
                           self.req("https://x.example/?k=" + ph("k")),
                           "bad_request", "run_as", "initiator")
        self.assertIn("action", msg)

    def test_skipped_status_check_shape(self):
        # Exactly {skipped, reason}; nothing is substituted, even with a
        # template full of placeholders of filled values, or of undeclared
        # ones: the check does not run.
        comp = self.comp("status_check", [("k", "alpha")], initiator=self.A,
                         run_as=self.B)
        for request in (
                self.req("https://x.example/?k=" + ph("k")),
                self.req("https://x.example/", [("A", ph("k", ["base64"]))],
                         body=ph("k"))):
            err, res, raw = self.call(comp, request)
            self.assertIsNone(err)
            self.assertEqual(set(res), {"skipped", "reason"})
            self.assertIs(res["skipped"], True)
            self.assertEqual(res["reason"],
                             "status check has no system account")
            self.assertNoValue(raw, "skipped answer")
        # A dry run of a skipped check is skipped too.
        err, res, raw = self.call(comp, self.req("https://x.example/"),
                                  dry_run=True)
        self.assertIsNone(err)
        self.assertEqual(set(res), {"skipped", "reason"})

    def test_invalid_users_refused(self):
        for field in ("initiator", "run_as", "system_account"):
            for bad in (self.A.upper(), self.A[:-1], self.A + "0",
                        self.A.replace("-", ""), "{%s}" % self.A, "", 7):
                with self.subTest(field=field, bad=bad):
                    comp = self.comp("data_source", [("k", "alpha")],
                                     system_account=self.C)
                    comp[field] = bad
                    self.sub_err(comp, self.req("https://x.example/?k=" +
                                                ph("k")),
                                 "bad_request", field)

    def test_component_errors(self):
        base = dict(kind="action", initiator=self.A,
                    credentials=[{"id": "k", "type": "alpha"}])
        request = self.req("https://x.example/?k=" + ph("k"))
        for change, needle in (
                ({"kind": "runner"}, "kind"),
                ({"kind": None}, "kind"),
                ({"bogus": 1}, "bogus"),
                ({"credentials": [{"id": "k", "type": "alpha"},
                                  {"id": "k", "type": "alpha"}]},
                 "'k' twice"),
                ({"credentials": [{"id": "1k", "type": "alpha"}]}, "id"),
                ({"credentials": [{"id": "k"}]}, "credentials[0]"),
                ({"credentials": [{"id": "c%d" % i, "type": "alpha"}
                                  for i in range(65)]}, "at most 64"),
                ({"external_service": []}, "external_service")):
            with self.subTest(change=change):
                comp = dict(base)
                comp.update(change)
                if comp.get("kind") is None:
                    del comp["kind"]
                self.sub_err(comp, request, "bad_request", needle)
        # 64 declarations are fine.
        comp = dict(base)
        comp["credentials"] = [{"id": "c%d" % i, "type": "alpha"}
                               for i in range(63)] + [
            {"id": "k", "type": "alpha"}]
        res = self.sub_ok(comp, request)
        self.assertEqual(res["request"]["url"],
                         "https://x.example/?k=" + self.val[self.A])

    def test_inheritance(self):
        # Own "tok" is alpha, the external service's "tok" is beta; "extra"
        # only the external service declares.  Different values per type
        # show which declaration was used.
        self.mktype("beta")
        self.mktype("gamma")
        u = self.A
        own = self.val[u]
        ext = self.plant("beta", u, "ext-type-value-" + tag()).decode()
        extra = self.plant("gamma", u, "ext-only-value-" + tag()).decode()
        request = self.req("https://x.example/?t=" + ph("tok") + "&e=" +
                           ph("extra"), [("X-Tok", ph("tok", ["base64"]))],
                           body=ph("extra") + "/" + ph("tok"))
        want = {"method": "GET",
                "url": "https://x.example/?t=%s&e=%s" % (own, extra),
                "headers": [["X-Tok", base64.b64encode(own.encode())
                             .decode()]],
                "body": "%s/%s" % (extra, own)}
        for kind, users in (("action", {"initiator": u}),
                            ("widget", {"run_as": u}),
                            ("data_source", {"system_account": u}),
                            ("status_check", {"system_account": u})):
            for order in ("ext-first", "ext-last"):
                with self.subTest(kind=kind, order=order):
                    ext_list = [("tok", "beta"), ("extra", "gamma")]
                    if order == "ext-last":
                        ext_list.reverse()
                    comp = self.comp(kind, [("tok", "alpha")], ext=ext_list,
                                     **users)
                    res = self.sub_ok(comp, request)
                    self.assertEqual(res["request"], want)
                    self.assertEqual(res["subject"], u)
                    self.assertEqual(res["used"],
                                     [{"id": "tok", "type": "alpha",
                                       "source": "own"},
                                      {"id": "extra", "type": "gamma",
                                       "source": "own"}])
                    self.assertNoValue(repr(res).encode(), "answer",
                                       [ext.encode()])
        # Without the component's own declaration, the inherited one is
        # used: the beta value.
        comp = self.comp("action", [], ext=[("tok", "beta")], initiator=u)
        res = self.sub_ok(comp, self.req("https://x.example/?t=" +
                                         ph("tok")))
        self.assertEqual(res["request"]["url"], "https://x.example/?t=" + ext)
        self.assertEqual(res["used"], [{"id": "tok", "type": "beta",
                                        "source": "own"}])
        # An inherited id is "declared" for the undeclared-id check, and a
        # duplicate inside the external list is an error.
        self.sub_err(self.comp("action", [], ext=[("tok", "beta"),
                                                  ("tok", "beta")],
                               initiator=u),
                     self.req("https://x.example/?t=" + ph("tok")),
                     "bad_request", "'tok' twice")

    def test_inheritance_duplicate_of_overridden_id(self):
        # The external service's list names "tok" twice: a mistake in that
        # list, refused as in test_inheritance -- also when the component
        # declares "tok" itself.
        self.mktype("beta")
        self.sub_err(self.comp("action", [("tok", "alpha")],
                               ext=[("tok", "beta"), ("tok", "beta")],
                               initiator=self.A),
                     self.req("https://x.example/?t=" + ph("tok")),
                     "bad_request", "'tok' twice")

    def test_type_by_uuid_and_unknown_type(self):
        comp = self.comp("action", [("k", self.types["alpha"])],
                         initiator=self.A)
        res = self.sub_ok(comp, self.req("https://x.example/?k=" + ph("k")))
        self.assertEqual(res["request"]["url"],
                         "https://x.example/?k=" + self.val[self.A])
        self.assertEqual(res["used"], [{"id": "k", "type": "alpha",
                                        "source": "own"}])
        # A type that does not exist: named with the credential id.
        comp = self.comp("action", [("k", "nosuchtype")], initiator=self.A)
        self.sub_err(comp, self.req("https://x.example/?k=" + ph("k")),
                     "not_found", "'k'", "nosuchtype")
        # Declared but not referenced: not looked up at all.
        comp = self.comp("action", [("k", "alpha"), ("z", "nosuchtype")],
                         initiator=self.A)
        res = self.sub_ok(comp, self.req("https://x.example/?k=" + ph("k")))
        self.assertEqual(res["used"], [{"id": "k", "type": "alpha",
                                        "source": "own"}])


# -- item 2: placeholders and filters ---------------------------------------


HOSTILE = 'q"b\\ пароль\r\n&/%+ <<.credentials.other>>'

# The exact encodings of HOSTILE, written out by hand (the reference
# encoders above are checked against these too).
HOSTILE_URLQUERY = ("q%22b%5C%20%D0%BF%D0%B0%D1%80%D0%BE%D0%BB%D1%8C%0D%0A"
                    "%26%2F%25%2B%20%3C%3C.credentials.other%3E%3E")
HOSTILE_JSON = ('q\\"b\\\\ пароль\\r\\n\\u0026/%+ '
                '\\u003c\\u003c.credentials.other\\u003e\\u003e')
HOSTILE_BASE64 = ("cSJiXCDQv9Cw0YDQvtC70YwNCiYvJSsgPDwuY3JlZGVudGlhbHMub3R"
                  "oZXI+Pg==")


class TestFilters(SubBase):

    def setUp(self):
        super().setUp()
        self.u = new_user()
        self.values = {
            "v": HOSTILE,
            "ru": "пароль",
            "sym": "a+b/c=d%e&f?g#h;i,j:k@l!m$n'o(p)q*r",
            "crlf": "tok\r\nX-Evil: 1",
            "nul": b"a\x00b\x00c",
            "sp": "a b\tc",
            "ph": "<<.credentials.other>>",
            "phf": "<< .credentials.other | base64 >> <<.credentials.x",
            "other": "OTHER-SECRET-" + tag(),
            "bad8": b"ok\xff\xfe",
            "ls": "a\u2028b\u2029c\x7f\x01\x1f<>&",
            "plain": "s3cr3t-" + tag(),
            "emoji": "key-\U0001F511-\u00e9",
        }
        for ident, v in self.values.items():
            self.mktype("t_" + ident)
            self.plant("t_" + ident, self.u, v)
        self.decl = [(i, "t_" + i) for i in self.values]
        self.component = self.comp("action", self.decl, initiator=self.u)

    def raw(self, ident):
        v = self.values[ident]
        return v.encode() if isinstance(v, str) else v

    def test_reference_encoders(self):
        # The hand-written encodings agree with the reference encoders,
        # so the big table below checks against something independent.
        h = HOSTILE.encode()
        self.assertEqual(f_urlquery(h).decode(), HOSTILE_URLQUERY)
        self.assertEqual(f_json(h).decode(), HOSTILE_JSON)
        self.assertEqual(f_base64(h).decode(), HOSTILE_BASE64)

    def test_hostile_exact(self):
        # One request using the hostile value everywhere, with every
        # filter, spacing variants and chains; checked byte for byte.
        url = ("https://api.example.com/a/" + ph("v", ["urlpath"]) +
               "/b?q=" + ph("v", ["urlquery"], spaced=True) +
               "&b=" + ph("v", ["base64", "urlquery"]) +
               "&j=" + ph("v", ["json", "urlquery"]) + "#frag")
        headers = [
            ("Authorization", "Basic " + ph("v", ["base64"])),
            ("X-Json", "<<\t.credentials.v\t|\tjson\t>>"),
            ("X-Query", ph("v", ["urlquery"])),
            ("X-Double", ph("v", ["urlpath", "urlpath"])),
            ("X-Chain", ph("v", ["json", "base64"])),
            ("x-dup", "1"), ("x-dup", "2"),
        ]
        body = ('{"password": "' + ph("v", ["json"]) + '", "raw": "' +
                ph("v") + '", "b": "' + ph("v", ["base64", "json"]) + '"}')
        res = self.sub_ok(self.component, self.req(url, headers, body,
                                                   method="POST"))
        self.assertEqual(res["request"], {
            "method": "POST",
            "url": ("https://api.example.com/a/" + HOSTILE_URLQUERY +
                    "/b?q=" + HOSTILE_URLQUERY +
                    "&b=" + HOSTILE_BASE64.replace("+", "%2B")
                    .replace("/", "%2F").replace("=", "%3D") +
                    "&j=" + f_urlquery(HOSTILE_JSON.encode()).decode() +
                    "#frag"),
            "headers": [
                ["Authorization", "Basic " + HOSTILE_BASE64],
                ["X-Json", HOSTILE_JSON],
                ["X-Query", HOSTILE_URLQUERY],
                ["X-Double", HOSTILE_URLQUERY.replace("%", "%25")],
                ["X-Chain", base64.b64encode(HOSTILE_JSON.encode())
                 .decode()],
                ["x-dup", "1"], ["x-dup", "2"]],
            "body": ('{"password": "' + HOSTILE_JSON + '", "raw": "' +
                     HOSTILE + '", "b": "' + HOSTILE_BASE64 + '"}')})
        self.assertEqual(res["used"], [{"id": "v", "type": "t_v",
                                        "source": "own"}])
        # The placeholder text inside the value came out literally: the
        # value of "other" was never pulled in.
        self.assertIn("<<.credentials.other>>", res["request"]["body"])
        self.assertNotIn(self.values["other"], repr(res))

    def test_every_filter_every_value_every_place(self):
        # The table: each value x each chain x each place, against the
        # reference encoders and the context rules of template.h.
        chains = [(), ("urlquery",), ("urlpath",), ("json",), ("base64",),
                  ("json", "base64"), ("base64", "urlquery"),
                  ("json", "urlquery"), ("urlquery", "json"),
                  ("urlpath", "urlpath"), ("base64", "json"),
                  ("urlquery", "base64", "urlquery", "json")]
        n = 0
        for ident in self.values:
            raw = self.raw(ident)
            for chain in chains:
                try:
                    enc = apply_chain(raw, chain)
                    enc_err = None
                except UnicodeDecodeError:
                    enc, enc_err = None, "not valid UTF-8"
                try:
                    text = enc.decode("utf-8") if enc is not None else None
                except UnicodeDecodeError:
                    text = None
                p = ph(ident, chain)
                label = "%s %s" % (ident, "|".join(chain) or "raw")
                n += 1
                with self.subTest(value=ident, chain=chain, place="url"):
                    request = self.req("https://api.example.com/p?x=" + p +
                                       "&y=1")
                    if enc_err:
                        self.sub_err(self.component, request, "bad_request",
                                     p, enc_err)
                    elif not url_ok(enc):
                        self.sub_err(self.component, request, "bad_request",
                                     p, "URL")
                    else:
                        res = self.sub_ok(self.component, request)
                        self.assertEqual(
                            res["request"]["url"],
                            "https://api.example.com/p?x=" + text + "&y=1",
                            label)
                with self.subTest(value=ident, chain=chain, place="header"):
                    request = self.req("https://api.example.com/",
                                       [("X-A", "1"), ("X-V", "<" + p + ">")])
                    if enc_err:
                        self.sub_err(self.component, request, "bad_request",
                                     p, enc_err)
                    elif not header_ok(enc):
                        self.sub_err(self.component, request, "bad_request",
                                     p, "header")
                    elif text is not None:
                        # (Raw bytes that are not UTF-8 in a str header
                        # cannot be read by a strict msgpack client; not
                        # checked here.)
                        res = self.sub_ok(self.component, request)
                        self.assertEqual(res["request"]["headers"],
                                         [["X-A", "1"],
                                          ["X-V", "<" + text + ">"]], label)
                with self.subTest(value=ident, chain=chain, place="bin body"):
                    request = self.req("https://api.example.com/", [],
                                       body=b"\x00\xff" + p.encode() +
                                       b"\xfe")
                    if enc_err:
                        self.sub_err(self.component, request, "bad_request",
                                     p, enc_err)
                    else:
                        res = self.sub_ok(self.component, request)
                        self.assertEqual(res["request"]["body"],
                                         b"\x00\xff" + enc + b"\xfe", label)
                with self.subTest(value=ident, chain=chain, place="str body"):
                    request = self.req("https://api.example.com/", [],
                                       body="{" + p + "}")
                    if enc_err:
                        self.sub_err(self.component, request, "bad_request",
                                     p, enc_err)
                    elif text is not None:
                        res = self.sub_ok(self.component, request)
                        self.assertEqual(res["request"]["body"],
                                         "{" + text + "}", label)
        self.assertGreater(n, 100)

    def test_header_line_breaks_refused_unless_filtered(self):
        for ident in ("crlf", "v", "nul"):
            p = ph(ident)
            with self.subTest(ident=ident):
                msg = self.sub_err(self.component, self.req(
                    "https://api.example.com/",
                    [("Authorization", "Bearer " + p)]),
                    "bad_request", p, "header")
                self.assertNotIn("X-Evil", msg)
                self.assertNotIn("tok", msg)
                self.assertNotIn("пароль", msg)
                for chain in (("base64",), ("urlquery",), ("json",),
                              ("urlpath",)):
                    res = self.sub_ok(self.component, self.req(
                        "https://api.example.com/",
                        [("Authorization", "Bearer " + ph(ident, chain))]))
                    self.assertEqual(
                        res["request"]["headers"],
                        [["Authorization", "Bearer " +
                          apply_chain(self.raw(ident), chain).decode()]])
        # The exact message, naming the placeholder by its template text.
        msg = self.sub_err(self.component, self.req(
            "https://api.example.com/", [("X", "<< .credentials.crlf >>")]),
            "bad_request")
        self.assertEqual(msg, "placeholder << .credentials.crlf >> would put "
                         "a line break or NUL into a header; use a filter "
                         "such as base64 or urlquery")

    def test_url_whitespace_refused_unless_filtered(self):
        for ident in ("sp", "v", "ru", "crlf", "ls", "emoji"):
            p = ph(ident)
            with self.subTest(ident=ident):
                for url in ("https://api.example.com/" + p,
                            "https://api.example.com/?q=" + p,
                            "https://api.example.com/#" + p):
                    self.sub_err(self.component, self.req(url),
                                 "bad_request", p, "URL")
                res = self.sub_ok(self.component, self.req(
                    "https://api.example.com/?q=" + ph(ident, ["urlquery"])))
                self.assertEqual(res["request"]["url"],
                                 "https://api.example.com/?q=" +
                                 f_urlquery(self.raw(ident)).decode())
        # json keeps non-ASCII as is: not enough for a URL.
        self.sub_err(self.component, self.req(
            "https://api.example.com/?q=" + ph("ru", ["json"])),
            "bad_request", ph("ru", ["json"]))
        # Printable ASCII values need no filter.
        res = self.sub_ok(self.component, self.req(
            "https://api.example.com/x/" + ph("plain") + "?q=" + ph("ph")))
        self.assertEqual(res["request"]["url"], "https://api.example.com/x/" +
                         self.values["plain"] + "?q=<<.credentials.other>>")

    def test_one_pass(self):
        # A value that looks like placeholders (even malformed ones) is
        # copied, never parsed, in every place and through every filter.
        for ident in ("ph", "phf"):
            v = self.values[ident]
            res = self.sub_ok(self.component, self.req(
                "https://api.example.com/?q=" + ph(ident, ["urlquery"]),
                [("X", ph(ident)), ("Y", ph(ident, ["json"]))],
                body=ph(ident)))
            self.assertEqual(res["request"], {
                "method": "GET",
                "url": "https://api.example.com/?q=" +
                f_urlquery(v.encode()).decode(),
                "headers": [["X", v], ["Y", f_json(v.encode()).decode()]],
                "body": v})
            self.assertEqual(res["used"],
                             [{"id": ident, "type": "t_" + ident,
                               "source": "own"}])
            self.assertNotIn(self.values["other"], repr(res))

    def test_json_invalid_utf8(self):
        p = ph("bad8", ["json"])
        self.sub_err(self.component, self.req(
            "https://api.example.com/", body='{"a":"' + p + '"}'),
            "bad_request", p, "UTF-8")
        res = self.sub_ok(self.component, self.req(
            "https://api.example.com/",
            body='{"a":"' + ph("bad8", ["base64"]) + '"}'))
        self.assertEqual(res["request"]["body"], '{"a":"b2v//g=="}')

    def test_str_fields_stay_utf8(self):
        # msgpack str is UTF-8 (and SPEC 6 promises any msgpack-rpc client
        # can talk to the broker; strict ones, like this harness's own
        # Client, fail to unpack anything else).  A value that is not UTF-8
        # substituted raw into a str header value or a str body must not
        # produce an invalid str: refuse it (naming the placeholder), as
        # the json filter does, or otherwise keep the answer valid.
        lc = LenientClient(self.d.socket)
        self.addCleanup(lc.close)
        for name, request in (
                ("str body", self.req("https://api.example.com/",
                                      body="v=" + ph("bad8"))),
                ("header value", self.req("https://api.example.com/",
                                          [("X-V", ph("bad8"))]))):
            with self.subTest(place=name):
                err, res, raw = self.call(self.component, request, client=lc)
                if err is not None:
                    self.assertEqual(err["code"], "bad_request", err)
                    self.assertIn(ph("bad8"), err["message"])
                    continue
                self.assertEqual(bad_strs(res), [],
                                 "the daemon answered with a msgpack str "
                                 "that is not UTF-8: %r" % (res["request"],))
        # The connection (and the daemon) carry on.
        self.assertEqual(lc.call("hello", {})[0], None)

    def test_malformed_placeholders(self):
        cases = [
            ("<<.credential.plain>>", "malformed placeholder "
             "<<.credential.plain>>"),
            ("<<.credentials.plain", "unterminated placeholder "
             "<<.credentials.plain"),
            ("<<.credentials.plain >", "<<.credentials.plain >"),
            ("<<.credentials.>>", "malformed placeholder <<.credentials.>>"),
            ("<< .creds.plain >>", "<< .creds.plain >>"),
            ("<<.credentials.plain | >>", "missing filter name"),
            ("<<.credentials.plain || json>>", "missing filter name"),
            ("<<.credentials.plain json>>", "expected '|' or '>>'"),
            ("<<.credentials.9plain>>", "<<.credentials.9plain>>"),
            ("<<.credentials.pl.ain>>", "<<.credentials.pl.ain>>"),
            ("<<.CREDENTIALS.plain>>", "<<.CREDENTIALS.plain>>"),
            ("<<\n.credentials.plain>>", "malformed placeholder"),
            ("<<.credentials.plain|urlquery|urlquery|urlquery|urlquery|"
             "urlquery>>", "too many filters"),
        ]
        for text, needle in cases:
            for place in ("url", "header", "body"):
                with self.subTest(text=text, place=place):
                    if place == "url":
                        r = self.req("https://api.example.com/?q=" + text)
                    elif place == "header":
                        r = self.req("https://api.example.com/",
                                     [("X-Ok", ph("plain")), ("X", text)])
                    else:
                        r = self.req("https://api.example.com/?q=" +
                                     ph("plain"), body="a " + text)
                    if place == "url" and "\n" in text:
                        # The URL check may speak first; still an error.
                        self.sub_err(self.component, r, "bad_request")
                        continue
                    self.sub_err(self.component, r, "bad_request", needle)

    def test_literal_angle_brackets_pass(self):
        # "<<" that is not followed by '.' is not an attempt.
        res = self.sub_ok(self.component, self.req(
            "https://api.example.com/", [("X", "a << b >> c")],
            body="cat <<EOF\n" + ph("plain") + "\nEOF\n<<"))
        self.assertEqual(res["request"]["headers"], [["X", "a << b >> c"]])
        self.assertEqual(res["request"]["body"],
                         "cat <<EOF\n" + self.values["plain"] + "\nEOF\n<<")

    def test_unknown_filter(self):
        for f in ("upper", "Base64", "basic:plain", "url", "jsonx", "sha256"):
            p = "<<.credentials.plain | %s>>" % f
            name = f.split(":")[0]
            for place in ("url", "header", "body"):
                with self.subTest(filter=f, place=place):
                    r = {"url": self.req("https://api.example.com/?q=" + p),
                         "header": self.req("https://api.example.com/",
                                            [("X", p)]),
                         "body": self.req("https://api.example.com/",
                                          body=p)}[place]
                    self.sub_err(self.component, r, "bad_request",
                                 "unknown filter '%s'" % name, p)

    def test_undeclared_id(self):
        for pid in ("nosuch", "V", "plain2", "Plain"):
            p = ph(pid)
            for place in ("url", "header", "body"):
                with self.subTest(id=pid, place=place):
                    r = {"url": self.req("https://api.example.com/?q=" + p),
                         "header": self.req("https://api.example.com/",
                                            [("X", p)]),
                         "body": self.req("https://api.example.com/?a=" +
                                          ph("plain"), body=p)}[place]
                    self.sub_err(self.component, r, "bad_request", p,
                                 "does not declare")
        # Undeclared even though a value exists for the type and user.
        comp = self.comp("action", [("plain", "t_plain")], initiator=self.u)
        self.sub_err(comp, self.req("https://api.example.com/?q=" +
                                    ph("sym")),
                     "bad_request", "<<.credentials.sym>>")

    def test_all_or_nothing(self):
        # "missing" is declared and its type exists, but this user has no
        # value: not_found naming id, type ident and user, and nothing of
        # the values that were there.
        self.mktype("t_missing")
        self.plant("t_missing", new_user(), "someone-elses-" + tag())
        comp = self.comp("action", self.decl + [("missing", "t_missing")],
                         initiator=self.u)
        layouts = [
            self.req("https://api.example.com/?a=" + ph("plain") + "&b=" +
                     ph("missing"), [("X", ph("other"))], body=ph("v")),
            self.req("https://api.example.com/?a=" + ph("plain"),
                     [("X", ph("other")), ("Y", ph("missing"))],
                     body=ph("v")),
            self.req("https://api.example.com/?a=" + ph("plain"),
                     [("X", ph("other"))], body=ph("v") + ph("missing")),
            self.req("https://api.example.com/?a=" + ph("missing", ["json",
                                                                    "base64"]),
                     [("X", ph("other"))], body=b"bin" + ph("v").encode()),
        ]
        for r in layouts:
            with self.subTest(request=r):
                msg = self.sub_err(comp, r, "not_found", "'missing'",
                                   "t_missing", self.u)
                self.assertNotIn("someone-elses", msg)
        # The connection carries on.
        res = self.sub_ok(comp, self.req("https://api.example.com/?a=" +
                                         ph("plain")))
        self.assertEqual(res["request"]["url"],
                         "https://api.example.com/?a=" + self.values["plain"])
        # A refused value (structure) after good ones: also nothing.
        self.sub_err(comp, self.req(
            "https://api.example.com/?a=" + ph("plain"),
            [("X", ph("other")), ("Y", ph("crlf"))], body=ph("v")),
            "bad_request", ph("crlf"))
        # A value not set is no error when no placeholder refers to it.
        res = self.sub_ok(comp, self.req("https://api.example.com/?a=" +
                                         ph("plain")))
        self.assertEqual(res["used"], [{"id": "plain", "type": "t_plain",
                                        "source": "own"}])

    def test_used_order_and_repeats(self):
        res = self.sub_ok(self.component, self.req(
            "https://api.example.com/?a=" + ph("plain") + "&b=" +
            ph("plain", ["base64"]),
            [("X", ph("other")), ("Y", ph("plain"))],
            body=ph("ru") + ph("other") + ph("sym")))
        self.assertEqual(res["used"], [{"id": "plain", "type": "t_plain",
                                        "source": "own"},
                                       {"id": "other", "type": "t_other",
                                        "source": "own"},
                                       {"id": "ru", "type": "t_ru",
                                        "source": "own"},
                                       {"id": "sym", "type": "t_sym",
                                        "source": "own"}])
        self.assertEqual(res["subject"], self.u)

    def test_request_shape(self):
        # Method passed through; headers optional; body only when given.
        res = self.sub_ok(self.component, {
            "method": "PATCH", "url": "https://api.example.com/" +
            ph("plain")})
        self.assertEqual(res["request"], {
            "method": "PATCH",
            "url": "https://api.example.com/" + self.values["plain"],
            "headers": []})
        res = self.sub_ok(self.component, self.req(
            "https://api.example.com/", [("X", ph("plain"))], body=None))
        self.assertNotIn("body", res["request"])
        res = self.sub_ok(self.component, self.req(
            "https://api.example.com/", body=""))
        self.assertEqual(res["request"]["body"], "")
        # Bad requests, each refused before any value is looked at.
        u = "https://api.example.com/?q=" + ph("plain")
        for request, needle in (
                ({"method": "GE T", "url": u}, "method"),
                ({"method": "", "url": u}, "method"),
                ({"method": 1, "url": u}, "method"),
                ({"url": u}, "method"),
                ({"method": "GET"}, "url"),
                ({"method": "GET", "url": b"https://x/"}, "url"),
                ({"method": "GET", "url": u, "headers": {"X": "1"}},
                 "headers"),
                ({"method": "GET", "url": u, "headers": [["X"]]},
                 "headers[0]"),
                ({"method": "GET", "url": u, "headers": [["X", 1]]},
                 "headers[0]"),
                ({"method": "GET", "url": u,
                  "headers": [[ph("plain"), "1"]]}, "header name"),
                ({"method": "GET", "url": u,
                  "headers": [["X-" + ph("plain"), "1"]]}, "header name"),
                ({"method": "GET", "url": u, "headers": [["X Y", "1"]]},
                 "header name"),
                ({"method": "GET", "url": u,
                  "headers": [["X\r\nY", "1"]]}, "header name"),
                ({"method": "GET", "url": u,
                  "headers": [["X", "1"]] * 129}, "at most 128"),
                ({"method": "GET", "url": u, "body": 5}, "body"),
                ({"method": "GET", "url": u, "extra": 1}, "extra")):
            with self.subTest(request=request):
                self.sub_err(self.component, request, "bad_request", needle)
        self.sub_err(self.component, None, "bad_request", "request")
        err, res = self.c.call("substitute", {"component": self.component})
        self.assertEqual(err["code"], "bad_request")
        err, res = self.c.call("substitute", {"request": self.req(u)})
        self.assertEqual(err["code"], "bad_request")

    def test_body_bin_stays_bin(self):
        body = b"\x00\x01\xff<<.credentials.plain>>\r\n\x80" + \
            ph("nul").encode() + b"|" + ph("bad8").encode()
        res = self.sub_ok(self.component, self.req(
            "https://api.example.com/", body=body))
        b = res["request"]["body"]
        self.assertIsInstance(b, bytes)
        self.assertEqual(b, b"\x00\x01\xff" + self.values["plain"].encode() +
                         b"\r\n\x80a\x00b\x00c|ok\xff\xfe")
        # And str stays str.
        res = self.sub_ok(self.component, self.req(
            "https://api.example.com/", body="x" + ph("plain")))
        self.assertIsInstance(res["request"]["body"], str)
        # An empty bin body is still bin.
        res = self.sub_ok(self.component, self.req(
            "https://api.example.com/", body=b""))
        self.assertEqual(res["request"]["body"], b"")

    def test_pipelined(self):
        # Many calls for different users in one write: each answer holds
        # its own user's value and nobody else's.
        users = [new_user() for _ in range(6)]
        vals = {}
        for u in users:
            vals[u] = self.plant("t_plain", u, "pipe-%s-%s" % (u[:8], tag()))
        reqs = []
        for i in range(60):
            u = users[i % len(users)]
            chain = [(), ("base64",), ("urlquery",), ("json",)][i % 4]
            comp = self.comp(["action", "widget", "data_source"][i % 3],
                             [("p", "t_plain")],
                             **({"system_account": u} if i % 3 == 2 else
                                {"initiator": u}))
            reqs.append(("substitute", {
                "component": comp,
                "request": self.req("https://api.example.com/?p=" +
                                    ph("p", chain))}))
        out = self.c.pipeline(reqs)
        for i, (mid, m) in enumerate(out):
            u = users[i % len(users)]
            chain = [(), ("base64",), ("urlquery",), ("json",)][i % 4]
            self.assertIsNone(m[2], m)
            self.assertEqual(m[3]["subject"], u)
            self.assertEqual(m[3]["request"]["url"],
                             "https://api.example.com/?p=" +
                             apply_chain(vals[u], chain).decode())
            others = [vals[o] for o in users if o != u]
            self.assertNoValue(repr(m[3]).encode(), "answer %d" % i, others)


# -- item 3: destinations ----------------------------------------------------


P = "<<.credentials.c>>"

DEST_TYPES = {
    "gh": ["https://api.github.com"],
    "wild": ["https://*.example.com:8443"],
    "ip4": ["http://127.0.0.1:8080"],
    "ip6": ["http://[::1]"],
    "net": ["https://[10.0.0.0/8]", "http://[fd00::/8]:8080"],
    "multi": ["https://api.github.com", "http://internal.example:8080"],
    "any": None,
}

OK = "ok"
BAD = "bad_request"

# (type, URL template, expected): expected is OK, BAD with a piece of the
# message, or the origin that must be refused (forbidden).
DEST_CASES = [
    ("gh", "https://api.github.com/user?t=" + P, OK),
    ("gh", "https://api.github.com?t=" + P, OK),
    ("gh", "https://api.github.com#" + P, OK),
    ("gh", "https://API.GitHub.COM/user?t=" + P, OK),
    ("gh", "HTTPS://api.github.com/user?t=" + P, OK),
    ("gh", "https://api.github.com:443/user?t=" + P, OK),
    ("gh", "https://api.github.com./user?t=" + P, OK),
    ("gh", "https://API.GITHUB.COM.:443/?t=" + P, OK),
    ("gh", "https://api.github.com:8443/?t=" + P,
     "https://api.github.com:8443"),
    ("gh", "http://api.github.com/?t=" + P, "http://api.github.com"),
    ("gh", "http://api.github.com:443/?t=" + P, "http://api.github.com:443"),
    ("gh", "https://api.github.com.evil.example/?t=" + P,
     "https://api.github.com.evil.example"),
    ("gh", "https://api.github.com.evil.example./?t=" + P,
     "https://api.github.com.evil.example"),
    ("gh", "https://evil.example/https://api.github.com/?t=" + P,
     "https://evil.example"),
    ("gh", "https://evil.example#@api.github.com/?t=" + P,
     "https://evil.example"),
    ("gh", "https://evil.example?@api.github.com/" + P,
     "https://evil.example"),
    ("gh", "https://github.com/?t=" + P, "https://github.com"),
    ("gh", "https://xapi.github.com/?t=" + P, "https://xapi.github.com"),
    ("gh", "https://sub.api.github.com/?t=" + P,
     "https://sub.api.github.com"),
    ("gh", "https://api-github.com/?t=" + P, "https://api-github.com"),
    ("gh", "https://xn--pi-7ld.github.com/?t=" + P,
     "https://xn--pi-7ld.github.com"),
    ("gh", "https://api.github.com@evil.example/?t=" + P,
     (BAD, "userinfo")),
    ("gh", "https://api.github.com:443@evil.example/?t=" + P,
     (BAD, "userinfo")),
    ("gh", "https://user:pw@api.github.com/?t=" + P, (BAD, "userinfo")),
    ("gh", "https://@api.github.com/?t=" + P, (BAD, "userinfo")),
    ("gh", "https://api.github.com\\@evil.example/?t=" + P, (BAD, "")),
    ("gh", "https://api.github.com\\.evil.example/?t=" + P,
     (BAD, "backslash")),
    ("gh", "https://api%2egithub.com/?t=" + P, (BAD, "percent")),
    ("gh", "https://api.github.com:0/?t=" + P, (BAD, "port")),
    ("gh", "https://api.github.com:65536/?t=" + P, (BAD, "port")),
    ("gh", "https://api.github.com:/?t=" + P, (BAD, "port")),
    ("gh", "https://api.github.com:44x/?t=" + P, (BAD, "port")),
    ("gh", "https://\u0430pi.github.com/?t=" + P, (BAD, "ASCII")),
    ("gh", "https://api.github.com /?t=" + P, (BAD, "whitespace")),
    ("gh", "https:///?t=" + P, (BAD, "host")),
    ("gh", "https://api..github.com/?t=" + P, (BAD, "host")),
    ("gh", "//api.github.com/?t=" + P, (BAD, "http:// or https://")),
    ("gh", "ftp://api.github.com/?t=" + P, (BAD, "http:// or https://")),
    ("gh", "https:api.github.com/?t=" + P, (BAD, "http:// or https://")),
    ("gh", " https://api.github.com/?t=" + P, (BAD, "http:// or https://")),
    ("wild", "https://a.example.com:8443/?t=" + P, OK),
    ("wild", "https://deep.sub.example.com:8443/?t=" + P, OK),
    ("wild", "https://A.Example.COM:8443/?t=" + P, OK),
    ("wild", "https://a.example.com.:8443/?t=" + P, OK),
    ("wild", "https://example.com:8443/?t=" + P, "https://example.com:8443"),
    ("wild", "https://a.example.com/?t=" + P, "https://a.example.com"),
    ("wild", "https://a.example.com:443/?t=" + P, "https://a.example.com"),
    ("wild", "http://a.example.com:8443/?t=" + P,
     "http://a.example.com:8443"),
    ("wild", "https://aexample.com:8443/?t=" + P,
     "https://aexample.com:8443"),
    ("wild", "https://a.example.com.evil.example:8443/?t=" + P,
     "https://a.example.com.evil.example:8443"),
    ("wild", "https://a.example.community:8443/?t=" + P,
     "https://a.example.community:8443"),
    ("wild", "https://a.example.com@evil.example:8443/?t=" + P,
     (BAD, "userinfo")),
    ("ip4", "http://127.0.0.1:8080/?t=" + P, OK),
    ("ip4", "http://127.0.0.1/?t=" + P, "http://127.0.0.1"),
    ("ip4", "https://127.0.0.1:8080/?t=" + P, "https://127.0.0.1:8080"),
    ("ip4", "http://127.0.0.2:8080/?t=" + P, "http://127.0.0.2:8080"),
    ("ip4", "http://localhost:8080/?t=" + P, "http://localhost:8080"),
    ("ip4", "http://[::ffff:127.0.0.1]:8080/?t=" + P,
     "http://[::ffff:127.0.0.1]:8080"),
    ("ip4", "http://127.1:8080/?t=" + P, (BAD, "IPv4")),
    ("ip4", "http://2130706433:8080/?t=" + P, (BAD, "IPv4")),
    ("ip4", "http://0x7f.0.0.1:8080/?t=" + P, (BAD, "IPv4")),
    ("ip4", "http://0177.0.0.1:8080/?t=" + P, (BAD, "IPv4")),
    ("ip4", "http://127.0.0.256:8080/?t=" + P, (BAD, "IPv4")),
    ("ip4", "http://1.2.3.4.5:8080/?t=" + P, (BAD, "IPv4")),
    ("ip4", "http://evil.example.0x7f:8080/?t=" + P, (BAD, "IPv4")),
    ("ip6", "http://[::1]/?t=" + P, OK),
    ("ip6", "http://[::1]:80/?t=" + P, OK),
    ("ip6", "http://[0:0:0:0:0:0:0:1]/?t=" + P, OK),
    ("ip6", "http://[0000::0001]/?t=" + P, OK),
    ("ip6", "http://[::1]:8080/?t=" + P, "http://[::1]:8080"),
    ("ip6", "https://[::1]/?t=" + P, "https://[::1]"),
    ("ip6", "http://[::2]/?t=" + P, "http://[::2]"),
    ("ip6", "http://127.0.0.1/?t=" + P, "http://127.0.0.1"),
    ("ip6", "http://[::1%25lo]/?t=" + P, (BAD, "")),
    ("ip6", "http://[::1/?t=" + P, (BAD, "host")),
    ("ip6", "http://::1/?t=" + P, (BAD, "host")),
    ("ip6", "http://[::1]x/?t=" + P, (BAD, "host")),
    ("ip6", "http://[::g]/?t=" + P, (BAD, "host")),
    ("net", "https://10.0.0.0/?t=" + P, OK),
    ("net", "https://10.255.255.255:443/?t=" + P, OK),
    ("net", "https://[::ffff:10.1.2.3]/?t=" + P, OK),
    ("net", "http://[fd00::1]:8080/?t=" + P, OK),
    ("net", "http://[FDFF:FFFF::1]:8080/?t=" + P, OK),
    ("net", "https://11.0.0.0/?t=" + P, "https://11.0.0.0"),
    ("net", "https://9.255.255.255/?t=" + P, "https://9.255.255.255"),
    ("net", "http://10.0.0.1/?t=" + P, "http://10.0.0.1"),
    ("net", "https://10.0.0.1:8443/?t=" + P, "https://10.0.0.1:8443"),
    ("net", "http://[fd00::1]/?t=" + P, "http://[fd00::1]"),
    ("net", "http://[fe00::1]:8080/?t=" + P, "http://[fe00::1]:8080"),
    ("net", "https://10.0.0.1.nip.io/?t=" + P, "https://10.0.0.1.nip.io"),
    ("net", "https://localhost/?t=" + P, "https://localhost"),
    ("net", "https://[10.0.0.0/8]/?t=" + P, (BAD, "host")),
    ("multi", "https://api.github.com/?t=" + P, OK),
    ("multi", "http://internal.example:8080/?t=" + P, OK),
    ("multi", "http://internal.example/?t=" + P, "http://internal.example"),
    ("multi", "https://internal.example:8080/?t=" + P,
     "https://internal.example:8080"),
    ("any", "https://anything.invalid/?t=" + P, OK),
    ("any", "http://10.1.2.3:9/?t=" + P, OK),
    ("any", "http://[fe80::1]:1/?t=" + P, OK),
    ("any", "https://api.github.com.evil.example/" + P, OK),
    ("any", "http://intranet_host/" + P, OK),
    ("any", "https://api.github.com@evil.example/?t=" + P,
     (BAD, "userinfo")),
    ("any", "http://127.1/?t=" + P, (BAD, "IPv4")),
]

# A placeholder may never form the scheme, host, port or userinfo --
# whatever the type's destinations.
AUTHORITY_CASES = [
    "https://" + P + "/",
    "https://" + P,
    "https://" + P + "?q=1",
    "https://api.github.com:" + P + "/",
    "https://" + P + "@api.github.com/",
    "https://user:" + P + "@api.github.com/",
    "https://api." + P + ".com/x",
    "https://api.github.com" + P + "/",
    "https://[" + P + "]/",
    "https://api.github.com\\" + P + "/",
    P + "://api.github.com/",
    "http" + P + "://api.github.com/",
    P,
    P + "/path",
    "https:" + P + "/x",
]


class TestDestinations(SubBase):

    def setUp(self):
        super().setUp()
        self.u = new_user()
        self.vals = {}
        for ident, dests in DEST_TYPES.items():
            self.mktype(ident, dests)
            self.vals[ident] = self.plant(
                ident, self.u, "tok-%s-%s" % (ident, tag())).decode()

    def component(self, ident, **kw):
        return self.comp("action", [("c", ident)], initiator=self.u, **kw)

    def test_destinations_table(self):
        for ident, url, want in DEST_CASES:
            with self.subTest(type=ident, url=url):
                comp = self.component(ident)
                request = self.req(url, [("X-T", P)], body="t=" + P)
                if want == OK:
                    res = self.sub_ok(comp, request)
                    v = self.vals[ident]
                    self.assertEqual(res["request"], {
                        "method": "GET", "url": url.replace(P, v),
                        "headers": [["X-T", v]], "body": "t=" + v})
                elif isinstance(want, tuple):
                    self.sub_err(comp, request, want[0], want[1])
                else:
                    msg = self.sub_err(comp, request, "forbidden", "'c'",
                                       " " + want)
                    self.assertEqual(
                        msg, "credential 'c' (type '%s') may not be sent "
                        "to %s" % (ident, want))
                    # In a dry run too: nothing to see, still refused.
                    self.sub_err(comp, request, "forbidden", want,
                                 dry_run=True)

    def test_placeholder_in_authority(self):
        for ident in ("gh", "any"):
            for url in AUTHORITY_CASES:
                with self.subTest(type=ident, url=url):
                    self.sub_err(self.component(ident), self.req(url),
                                 "bad_request", P,
                                 "may not form the scheme, host, port or "
                                 "userinfo")
                    self.sub_err(self.component(ident), self.req(url),
                                 "bad_request", P, dry_run=True)
        # Filters do not help.
        self.sub_err(self.component("any"), self.req(
            "https://<<.credentials.c|urlquery>>/"), "bad_request",
            "may not form")

    def test_refused_names_the_refused_credential(self):
        # Two credentials, one allowed anywhere: the refusal names the
        # restricted one, whichever comes first.
        comp = self.comp("action", [("free", "any"), ("c", "gh")],
                         initiator=self.u)
        for url in ("https://evil.example/?a=<<.credentials.free>>&b=" + P,
                    "https://evil.example/?b=" + P +
                    "&a=<<.credentials.free>>"):
            with self.subTest(url=url):
                self.sub_err(comp, self.req(url), "forbidden", "'c'",
                             "https://evil.example")
        # Allowed when both allow it.
        res = self.sub_ok(comp, self.req(
            "https://api.github.com/?a=<<.credentials.free>>&b=" + P))
        self.assertEqual(res["request"]["url"],
                         "https://api.github.com/?a=%s&b=%s"
                         % (self.vals["any"], self.vals["gh"]))
        # A credential in the header or body is checked against the URL too.
        comp = self.component("gh")
        self.sub_err(comp, self.req("https://evil.example/",
                                    [("Authorization", "Bearer " + P)]),
                     "forbidden", "'c'", "https://evil.example")
        self.sub_err(comp, self.req("https://evil.example/", body=P),
                     "forbidden", "'c'", "https://evil.example")

    def test_refused_whether_or_not_filled(self):
        # The destination check does not depend on the subject having a
        # value (no oracle, and no decrypting for nothing).
        comp = self.comp("action", [("c", "gh")], initiator=new_user())
        self.sub_err(comp, self.req("https://evil.example/?t=" + P),
                     "forbidden", "'c'", "https://evil.example")

    def test_inherited_credential_checked(self):
        comp = self.comp("action", [], ext=[("c", "gh")], initiator=self.u)
        self.sub_err(comp, self.req("https://evil.example/?t=" + P),
                     "forbidden", "'c'", "https://evil.example")
        res = self.sub_ok(comp, self.req("https://api.github.com/?t=" + P))
        self.assertEqual(res["request"]["url"],
                         "https://api.github.com/?t=" + self.vals["gh"])

    def test_block_destination_kept_in_normal_form_host_bits_refused(self):
        t = self.mktype("blocks", ["HTTPS://[10.0.0.0/8]:443/",
                                   "http://[FD00:0::/8]:8080",
                                   "https://[127.0.0.1/32]:9443"])
        self.assertEqual(t["destinations"], [
            "https://[10.0.0.0/8]", "http://[fd00::/8]:8080",
            "https://[127.0.0.1/32]:9443"])
        for dest, why in (
                ("https://[10.0.0.1/8]",
                 "10.0.0.1/8 has host bits set; write 10.0.0.0/8"),
                ("http://[fd00::1/8]:8080",
                 "fd00::1/8 has host bits set; write fd00::/8"),
                ("https://*.[10.0.0.0/8]", "is not an origin")):
            with self.subTest(dest=dest):
                err, _ = self.c.call("type.create", {
                    "ident": "hostbits", "name": "x", "storage": "db",
                    "destinations": [dest]})
                self.assertIsNotNone(err)
                self.assertEqual(err["code"], "bad_request")
                self.assertIn(why, err["message"])

    def test_destinations_change_takes_effect(self):
        comp = self.component("gh")
        request = self.req("https://evil.example/?t=" + P)
        self.sub_err(comp, request, "forbidden", "https://evil.example")
        self.c.ok("type.update", {"type": "gh", "destinations": [
            "https://api.github.com", "https://evil.example"]})
        res = self.sub_ok(comp, request)
        self.assertEqual(res["request"]["url"],
                         "https://evil.example/?t=" + self.vals["gh"])
        self.c.ok("type.update", {"type": "gh", "destinations": []})
        res = self.sub_ok(comp, self.req("http://anywhere.example:81/" + P))
        self.assertEqual(res["request"]["url"],
                         "http://anywhere.example:81/" + self.vals["gh"])


# -- storage, permission, dry run ------------------------------------------


class TestVault(SubBase):

    def test_vault_type_not_configured(self):
        u = new_user()
        self.mktype("vaulted", storage="vault")
        self.mktype("local")
        v = self.plant("local", u, "local-value-" + tag()).decode()
        comp = self.comp("action", [("vt", "vaulted"), ("lt", "local")],
                         initiator=u)
        for dry in (None, True):
            with self.subTest(dry_run=dry):
                self.sub_err(comp, self.req(
                    "https://x.example/?a=<<.credentials.lt>>&b="
                    "<<.credentials.vt>>"), "not_configured", "'vt'",
                    "vaulted", dry_run=dry)
        # Declared but unused: not looked at.
        res = self.sub_ok(comp, self.req(
            "https://x.example/?a=<<.credentials.lt>>"))
        self.assertEqual(res["request"]["url"], "https://x.example/?a=" + v)


class TestPermission(SubBase):
    """A caller without use:credentials may not substitute."""

    daemon_kwargs = {"grants": ["uid:%d edit:user-access-credentials-types,"
                                "edit:user-credentials,read:health"
                                % os.getuid()]}

    def test_forbidden_without_use_credentials(self):
        hello = self.c.ok("hello", {})
        self.assertNotIn("use:credentials", hello["permissions"])
        u = new_user()
        self.mktype("alpha")
        self.plant("alpha", u, "perm-value-" + tag())
        comp = self.comp("action", [("k", "alpha")], initiator=u)
        for dry in (None, True, False):
            with self.subTest(dry_run=dry):
                self.sub_err(comp, self.req("https://x.example/?k=" +
                                            ph("k")),
                             "forbidden", "use:credentials", dry_run=dry)
        # Even a call that would be skipped, or is malformed.
        self.sub_err(self.comp("status_check", []),
                     self.req("https://x.example/"), "forbidden",
                     "use:credentials")
        err, _ = self.c.call("substitute", {"junk": 1})
        self.assertEqual(err["code"], "forbidden")


class TestUseOnly(SubBase):
    """use:credentials alone is enough to substitute (and no more)."""

    daemon_kwargs = {"grants": ["uid:%d use:credentials" % os.getuid()]}

    def test_use_only(self):
        err, _ = self.c.call("type.create", {"ident": "alpha", "name": "A",
                                             "storage": "db"})
        self.assertEqual(err["code"], "forbidden")
        comp = self.comp("action", [], initiator=new_user())
        res = self.sub_ok(comp, self.req("https://x.example/plain"))
        self.assertEqual(res["request"]["url"], "https://x.example/plain")
        self.assertEqual(res["used"], [])


class TestDryRun(SubBase):

    def setUp(self):
        super().setUp()
        self.u = new_user()
        self.mktype("alpha", ["https://api.example.com"])
        self.mktype("beta")
        self.mktype("gamma")
        self.va = self.plant("alpha", self.u,
                             "dry-alpha-" + tag() + " \r\n\"x\"")
        self.vb = self.plant("beta", self.u, "dry-beta-" + tag())
        self.comp_ = self.comp("action", [("a", "alpha"), ("b", "beta"),
                                          ("g", "gamma")], initiator=self.u)

    def test_shape_and_masks(self):
        mask_a, mask_b, mask_g = "~masked-a~", "~masked-b~", "~masked-g~"
        request = self.req(
            "https://api.example.com/x/" + ph("a") + "?b=" +
            ph("b", ["urlquery"]) + "&g=" + ph("g", ["base64"]),
            [("Authorization", "Bearer " + ph("a")),
             ("X-J", ph("b", ["json"]))],
            body=b"\x00" + ph("a", ["base64"]).encode() + ph("g").encode())
        err, res, raw = self.call(self.comp_, request, dry_run=True)
        self.assertIsNone(err)
        self.assertEqual(res, {
            "request": {
                "method": "GET",
                "url": "https://api.example.com/x/%s?b=%s&g=%s" % (
                    mask_a, mask_b,
                    base64.b64encode(mask_g.encode()).decode()),
                "headers": [["Authorization", "Bearer " + mask_a],
                            ["X-J", mask_b]],
                "body": b"\x00" + base64.b64encode(mask_a.encode()) +
                mask_g.encode()},
            "subject": self.u,
            "used": [{"id": "a", "type": "alpha", "source": "own",
                      "filled": True},
                     {"id": "b", "type": "beta", "source": "own",
                      "filled": True},
                     {"id": "g", "type": "gamma", "source": None,
                      "filled": False}],
            "dry_run": True})
        # Never a value, in any form, in the answer.
        self.assertNoValue(raw, "dry-run answer")
        # The same without dry_run: the unfilled one is not_found, and the
        # raw CR/LF of "a" in a header would be refused anyway.
        self.sub_err(self.comp_, request, "not_found", "'g'")
        err, res, raw = self.call(self.comp_, request, dry_run=False)
        self.assertEqual(err["code"], "not_found")

    def test_dry_run_checks(self):
        # Still refused in a dry run: undeclared ids, malformed text,
        # placeholders in the authority, refused destinations.
        for request, code, needle in (
                (self.req("https://api.example.com/" + ph("zz")),
                 "bad_request", "zz"),
                (self.req("https://api.example.com/", body="<<.credentials."),
                 "bad_request", "placeholder"),
                (self.req("https://" + ph("b") + "/"), "bad_request",
                 "may not form"),
                (self.req("https://evil.example/" + ph("a")), "forbidden",
                 "https://evil.example")):
            with self.subTest(request=request):
                self.sub_err(self.comp_, request, code, needle,
                             dry_run=True)
        # dry_run must be a boolean.
        err, _, _ = self.call(self.comp_, self.req("https://x.example/"),
                              dry_run="yes")
        self.assertEqual(err["code"], "bad_request")

    def test_dry_run_nothing_used(self):
        res = self.sub_ok(self.comp_, self.req("https://x.example/"),
                          dry_run=True)
        self.assertEqual(res, {"request": {"method": "GET",
                                           "url": "https://x.example/",
                                           "headers": []},
                               "subject": self.u, "used": [],
                               "dry_run": True})
        # Without dry_run the answer has no dry_run key and no "filled".
        res = self.sub_ok(self.comp_, self.req(
            "https://x.example/?b=" + ph("b")))
        self.assertEqual(set(res), {"request", "subject", "used"})
        self.assertEqual(res["used"], [{"id": "b", "type": "beta",
                                        "source": "own"}])


# -- the template's own text and routing headers ------------------------------


class TestRequestStructure(SubBase):
    """SPEC 5.2: the destination check covers the whole request, not only
    the URL: routing headers and the template's own control characters."""

    ROUTING = ["Host", "host", "X-Forwarded-Host", "x-forwarded-host",
               "Forwarded", "X-Forwarded-Server", "X-Forwarded-Proto",
               "X-Forwarded-Port", "X-Host", "X-HTTP-Host-Override",
               "X-Original-URL", "X-Rewrite-URL", "X-Original-Host",
               "X-HTTP-Method-Override", "Proxy-Authorization",
               "Proxy-Foo", "Connection", "Keep-Alive", "TE",
               "Transfer-Encoding", "Upgrade"]

    def setUp(self):
        super().setUp()
        self.mktype("gh", destinations=["https://api.example.com"])
        self.mktype("free")
        self.u = new_user()
        self.canary = "canary-%s-%s" % (tag(), secrets.token_hex(16))
        self.plant("gh", self.u, self.canary)
        self.plant("free", self.u, "free-" + self.canary)
        self.component = self.comp("action", [("t", "gh"), ("f", "free")],
                                   initiator=self.u)

    def assertNoCanary(self, raw):
        self.assertEqual(find_leaks(raw, self.planted), [])
        self.assertEqual(find_leaks(self.d.all_logs(), self.planted), [])

    def test_host_header_naming_another_origin_is_refused(self):
        auth = ("Authorization", "Bearer " + ph("t"))
        for name in ("Host", "host", "HOST"):
            for dry in (None, True):
                with self.subTest(name=name, dry_run=dry):
                    msg = self.sub_err(
                        self.component,
                        self.req("https://api.example.com/user",
                                 [auth, (name, "evil.example")]),
                        "bad_request", "Host", "https://api.example.com",
                        dry_run=dry)
                    self.assertNotIn(self.canary, msg)
        # A credential in the body or URL counts as well.
        self.sub_err(self.component,
                     self.req("https://api.example.com/?k=" + ph("t"),
                              [("Host", "evil.example")]),
                     "bad_request", "Host")
        self.sub_err(self.component,
                     self.req("https://api.example.com/", [
                         ("Host", "evil.example")], body=ph("f")),
                     "bad_request", "Host")
        # Without any credential the request is returned as it came.
        res = self.sub_ok(self.component,
                          self.req("https://api.example.com/",
                                   [("Host", "evil.example")]))
        self.assertEqual(res["request"]["headers"],
                         [["Host", "evil.example"]])
        self.assertEqual(res["used"], [])
        err, res, raw = self.call(self.component, self.req(
            "https://api.example.com/user", [auth, ("Host", "evil.example")]))
        self.assertNoCanary(raw)

    def test_host_header_naming_the_url_origin_is_allowed(self):
        auth = ("Authorization", "Bearer " + ph("t"))
        for url, host in (
                ("https://api.example.com/u", "api.example.com"),
                ("https://api.example.com/u", "API.Example.COM"),
                ("https://api.example.com/u", "api.example.com:443"),
                ("https://API.example.com:443/u", "api.example.com"),
                ("http://10.1.2.3:8080/u", "10.1.2.3:8080"),
                ("http://[::1]/u", "[0:0::1]:80")):
            with self.subTest(url=url, host=host):
                comp = self.comp("action", [("f", "free")],
                                 initiator=self.u)
                if "api.example.com" in url.lower():
                    comp = self.component
                cred = "t" if comp is self.component else "f"
                res = self.sub_ok(comp, self.req(
                    url, [("Authorization", "Bearer " + ph(cred)),
                          ("Host", host)]))
                self.assertEqual(res["request"]["headers"][1],
                                 ["Host", host])
        for url, host in (("https://api.example.com/", "api.example.com:80"),
                          ("https://api.example.com/",
                           "api.example.com:8443"),
                          ("https://api.example.com/",
                           "api.example.com/evil"),
                          ("https://api.example.com/",
                           "x@api.example.com"),
                          ("https://api.example.com/",
                           "api.example.com.evil.example"),
                          ("https://api.example.com/", ph("t"))):
            with self.subTest(url=url, host=host):
                self.sub_err(self.component, self.req(url, [auth,
                                                            ("Host", host)]),
                             "bad_request", "Host")

    def test_routing_and_hop_by_hop_headers_refused_with_a_credential(self):
        auth = ("Authorization", "Bearer " + ph("t"))
        for name in self.ROUTING:
            for value in ("evil.example", "api.example.com"):
                if name.lower() == "host" and value == "api.example.com":
                    continue
                with self.subTest(name=name, value=value):
                    self.sub_err(self.component,
                                 self.req("https://api.example.com/",
                                          [auth, (name, value)]),
                                 "bad_request", "headers[1]", name)
        # Pseudo-headers are never header names.
        for name in (":authority", ":path", ":scheme", ":method"):
            with self.subTest(name=name):
                self.sub_err(self.component,
                             self.req("https://api.example.com/",
                                      [auth, (name, "api.example.com")]),
                             "bad_request", "pseudo-header", name)

    def test_line_break_in_template_header_value_is_refused(self):
        for value, what in (("1\r\nHost: evil.example", "0x0d"),
                            ("1\nHost: evil.example", "0x0a"),
                            ("1\rHost: evil.example", "0x0d"),
                            ("1\x00evil", "0x00"),
                            ("1\x7f", "0x7f"),
                            ("1\x0b", "0x0b")):
            for dry in (None, True):
                with self.subTest(value=value, dry_run=dry):
                    err, res, raw = self.call(
                        self.component,
                        self.req("https://api.example.com/",
                                 [("Authorization", "Bearer " + ph("t")),
                                  ("X-A", value)]), dry_run=dry)
                    self.assertIsNone(res)
                    self.assertEqual(err["code"], "bad_request", err)
                    self.assertIn("request.headers[1] 'X-A': the value "
                                  "contains the control character " + what,
                                  err["message"])
                    self.assertNoCanary(raw)
        # Also without a credential: the request is still malformed.
        self.sub_err(self.component,
                     self.req("https://api.example.com/",
                              [("X-A", "1\r\nHost: evil.example")]),
                     "bad_request", "X-A", "0x0d")
        # A tab is a legal header value character.
        res = self.sub_ok(self.component, self.req(
            "https://api.example.com/", [("X-A", "a\tb " + ph("t"))]))
        self.assertEqual(res["request"]["headers"],
                         [["X-A", "a\tb " + self.canary]])

    def test_credctl_dry_run_refuses_routing_headers_and_line_breaks(self):
        for headers, needles in (
                ([["Authorization", "Bearer " + ph("t")],
                  ["Host", "evil.example"]], ["Host"]),
                ([["Authorization", "Bearer " + ph("t")],
                  ["X-A", "1\r\nHost: evil.example"]], ["X-A", "0x0d"])):
            with self.subTest(headers=headers):
                doc = {"component": self.component,
                       "request": self.req("https://api.example.com/",
                                           headers)}
                rc, out, err = cbtest.credctl(self.d.socket, "substitute",
                                              "--dry-run",
                                              input=json.dumps(doc))
                self.assertNotEqual(rc, 0, out)
                self.assertIn("bad_request", out + err)
                for n in needles:
                    self.assertIn(n, err)
                self.assertNotIn("evil.example", out)
                self.assertEqual(find_leaks((out + err).encode(),
                                            self.planted), [])

    def test_control_characters_in_template_url_are_refused(self):
        base = "https://api.example.com/"
        for path, what in (("a\x00b", "0x00"), ("a\r\nHost: x", "0x0d"),
                           ("a\nb", "0x0a"), ("a b", "space"),
                           ("a\tb", "0x09"), ("a\x7fb", "0x7f"),
                           ("?q=" + ph("t") + " HTTP/1.1", "space"),
                           ("?q=" + ph("t") + "\r\nHost: evil", "0x0d")):
            for dry in (None, True):
                with self.subTest(path=path, dry_run=dry):
                    err, res, raw = self.call(
                        self.component, self.req(base + path),
                        dry_run=dry)
                    self.assertIsNone(res)
                    self.assertEqual(err["code"], "bad_request", err)
                    self.assertIn("request.url", err["message"])
                    self.assertIn(what, err["message"])
                    self.assertNoCanary(raw)
        res = self.sub_ok(self.component, self.req(
            base + "a%20b?q=" + ph("t")))
        self.assertEqual(res["request"]["url"],
                         base + "a%20b?q=" + self.canary)


# -- reply size -------------------------------------------------------------


class TestReplySize(SubBase):
    """SPEC 6: the reply size is bounded before rendering."""

    BIG = 512 * 1024

    def setUp(self):
        super().setUp()
        self.mktype("big")
        self.u = new_user()
        self.value = (secrets.token_hex(16) + "-").encode() * (
            self.BIG // 33) + b"x" * (self.BIG % 33)
        self.assertEqual(len(self.value), self.BIG)
        self.plant("big", self.u, self.value.decode())
        self.component = self.comp("action", [("k", "big")],
                                   initiator=self.u)

    def test_amplified_reply_is_too_large_before_rendering(self):
        body = ph("k") * 2000
        self.assertLess(len(body), 40 * 1024)
        msg = self.sub_err(self.component,
                           self.req("https://x.example/", body=body),
                           "too_large", "server.max_reply_size")
        self.assertIn(str(4 * 1024 * 1024), msg)
        # base64 grows the value by 4/3: still refused.
        self.sub_err(self.component,
                     self.req("https://x.example/",
                              body=ph("k", ["base64"]) * 2000),
                     "too_large")
        hwm = self.d.vm_kib("VmHWM")
        self.assertIsNotNone(hwm)
        self.assertLess(hwm, 64 * 1024, "peak RSS %d KiB" % hwm)
        # The daemon still serves, and a large but allowed reply works:
        # 3 copies and 2 base64 copies, about 3 MiB in all.
        res = self.sub_ok(self.component, self.req(
            "https://x.example/",
            [("X-K", ph("k", ["base64"]))],
            body=ph("k") * 3 + ph("k", ["base64"])))
        b64 = base64.b64encode(self.value).decode()
        self.assertEqual(res["request"]["body"],
                         self.value.decode() * 3 + b64)
        self.assertEqual(res["request"]["headers"], [["X-K", b64]])


class TestReplySizeConfigured(SubBase):
    """server.max_reply_size set in the configuration."""

    daemon_kwargs = {"extra": {"server": [("max_reply_size", "65536")]}}

    def test_max_reply_size_bounds_the_substituted_request(self):
        self.mktype("mid")
        u = new_user()
        v = self.plant("mid", u, "v" + secrets.token_hex(5000))  # 10 KB
        comp = self.comp("action", [("k", "mid")], initiator=u)
        # 4 copies (40 KB) fit; 4 through urlquery could be 120 KB.
        res = self.sub_ok(comp, self.req("https://x.example/",
                                         body=ph("k") * 4))
        self.assertEqual(res["request"]["body"], v.decode() * 4)
        self.sub_err(comp, self.req("https://x.example/",
                                    body=ph("k", ["urlquery"]) * 4),
                     "too_large", "65536")
        self.sub_err(comp, self.req("https://x.example/?" + ph("k") * 7),
                     "too_large")
        self.sub_err(comp, self.req("https://x.example/",
                                    [("A", ph("k"))] * 7), "too_large")


if __name__ == "__main__":
    cbtest.main()

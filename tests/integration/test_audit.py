"""
Audit trail tests (SPEC section 7, [audit] file): the daemon runs with
-o audit.file=PATH and every call that reads or changes credentials must
leave exactly one hash-chained JSON line in that file, whether it succeeds
or fails, while the other methods leave none; no value ever reaches the
file; "credctl audit verify" accepts the real file and rejects every kind
of tampering (an edited line, a deleted, swapped or cut line, a partial
last line, lines removed from the end when --head is given); a restart
continues the chain; health reports the head; and the broker refuses to
start on a file whose last line is partial.
"""

import fcntl
import hashlib
import json
import os
import re
import resource
import stat
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402

ZEROS = "0" * 64
FIELDS = {"seq", "time", "method", "uid", "pid", "subject", "types",
          "outcome", "ms", "prev"}
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def sha(line):
    return hashlib.sha256(line).hexdigest()


class AuditBase(cbtest.DaemonTestCase):
    start_daemon = False

    def setUp(self):
        super().setUp()
        self.audit = os.path.join(self.tmp, "audit.log")
        self.d.args += ["-o", "audit.file=" + self.audit]
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.user = new_user()

    # -- helpers --------------------------------------------------------
    def raw(self):
        with open(self.audit, "rb") as f:
            return f.read()

    def lines(self):
        data = self.raw()
        self.assertTrue(data == b"" or data.endswith(b"\n"))
        return data.split(b"\n")[:-1] if data else []

    def records(self):
        return [json.loads(x) for x in self.lines()]

    def audited(self, method, params, outcome="ok"):
        """Call method; exactly one new line must appear, with outcome."""
        before = len(self.lines())
        err, res = self.c.call(method, params)
        lines = self.lines()
        self.assertEqual(len(lines), before + 1,
                         "%s %r: %d lines added, expected 1"
                         % (method, params, len(lines) - before))
        rec = json.loads(lines[-1])
        self.assertEqual(rec["method"], method)
        self.assertEqual(rec["outcome"],
                         "ok" if err is None else err["code"])
        self.assertEqual(rec["outcome"], outcome, "%s: %r" % (method, err))
        self.assertEqual(rec["uid"], os.getuid())
        self.assertEqual(rec["pid"], os.getpid())
        return rec, err, res

    def silent(self, method, params):
        """Call method; no line may appear."""
        before = self.raw()
        err, res = self.c.call(method, params)
        self.assertEqual(self.raw(), before, "%s wrote an audit line"
                         % method)
        return err, res

    def verify(self, path=None, *args, json_out=False):
        return cbtest.credctl(self.d.socket, "audit", "verify",
                              path or self.audit, *args, json=json_out)

    def check_chain(self, lines):
        prev = ZEROS
        for i, line in enumerate(lines, 1):
            rec = json.loads(line)
            # "sources" only on the lines of calls that used values,
            # "dry_run" only on those of substitute dry runs.
            self.assertEqual(set(rec) - {"sources", "dry_run"}, FIELDS)
            if "dry_run" in rec:
                self.assertEqual((rec["method"], rec["dry_run"]),
                                 ("substitute", True))
            self.assertEqual(rec["seq"], i)
            self.assertEqual(rec["prev"], prev)
            self.assertRegex(rec["time"], TIME_RE)
            self.assertIsInstance(rec["types"], list)
            self.assertIsInstance(rec["ms"], int)
            prev = sha(line)
        return prev

    def make_traffic(self, t="gh"):
        """A mix of audited calls, some failing."""
        self.c.ok("type.create", {"ident": t, "name": "GitHub",
                                  "storage": "db"})
        self.c.call("type.create", {"ident": t, "name": "again",
                                    "storage": "db"})
        self.c.ok("cred.set", {"type": t, "user": self.user,
                               "value": "v1"})
        self.c.ok("cred.status", {"user": self.user})
        self.c.call("cred.delete", {"type": "nope", "user": self.user})
        self.c.ok("cred.set", {"type": t, "user": self.user,
                               "value": "v2"})
        self.c.ok("cred.delete", {"type": t, "user": self.user})
        self.c.ok("type.update", {"type": t, "name": "GH"})

    def write(self, path, data):
        with open(path, "wb") as f:
            f.write(data)



class AuditTest(AuditBase):

    # -- tests ----------------------------------------------------------
    def test_file_mode_and_health(self):
        st = os.stat(self.audit)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        # A new chain: the head is the zeros the first line will name.
        h = self.c.ok("health", {})["audit"]
        self.assertEqual(h, {"enabled": True, "seq": 0, "hash": ZEROS,
                             "failures": 0, "log_lines_lost": 0})
        self.make_traffic()
        lines = self.lines()
        h = self.c.ok("health", {})["audit"]
        self.assertTrue(h["enabled"])
        self.assertEqual(h["seq"], len(lines))
        self.assertEqual(h["hash"], sha(lines[-1]))
        self.assertEqual(h["failures"], 0)

    def test_each_audited_call_one_line(self):
        u = self.user
        rec, _, t = self.audited("type.create", {
            "ident": "gh", "name": "GitHub", "storage": "db",
            "destinations": ["https://api.github.com"]})
        self.assertEqual(rec["types"], ["gh"])
        self.assertIsNone(rec["subject"])
        self.audited("type.create", {"ident": "gh", "name": "x",
                                     "storage": "db"}, "conflict")
        self.audited("type.create", {"ident": "1BAD", "name": "x",
                                     "storage": "db"}, "bad_request")
        self.audited("type.create", {"ident": "vt", "name": "V",
                                     "storage": "vault"})
        self.audited("type.update", {"type": "gh", "name": "GH"})
        self.audited("type.update", {"type": "nosuch", "name": "x"},
                     "not_found")
        rec, _, _ = self.audited("cred.set", {"type": "gh", "user": u,
                                              "value": "s3cret"})
        self.assertEqual(rec["subject"], u)
        self.assertEqual(rec["types"], ["gh"])
        self.audited("cred.set", {"type": "gh", "user": "not-a-uuid",
                                  "value": "x"}, "bad_request")
        self.audited("cred.set", {"type": "vt", "user": u, "value": "x"},
                     "not_configured")
        self.audited("cred.set", {"type": "gh", "user": u}, "bad_request")
        rec, _, _ = self.audited("cred.status", {"user": u})
        self.assertEqual(rec["subject"], u)
        self.audited("cred.status", {"user": "x"}, "bad_request")
        rec, _, _ = self.audited("substitute", {
            "component": {"kind": "action", "initiator": u,
                          "credentials": [{"id": "g", "type": "gh"}]},
            "request": {"method": "GET",
                        "url": "https://api.github.com/<<.credentials.g>>",
                        "headers": []}})
        self.assertEqual(rec["subject"], u)
        self.assertIn("gh", rec["types"])
        self.assertEqual(rec["sources"], ["gh/own"])
        self.audited("substitute", {
            "component": {"kind": "action", "initiator": u,
                          "credentials": [{"id": "g", "type": "gh"}]},
            "request": {"method": "GET",
                        "url": "https://evil.example/<<.credentials.g>>",
                        "headers": []}}, "forbidden")
        self.audited("substitute", {"component": {}}, "bad_request")
        self.audited("cred.delete", {"type": "gh", "user": u})
        self.audited("cred.delete", {"type": "gh", "user": u}, "not_found")
        self.audited("type.clear", {"type": "gh"})
        self.audited("type.delete", {"type": "vt"})
        self.audited("type.delete", {"type": "vt"}, "not_found")
        self.audited("vault.set", {"enabled": False,
                                   "url": "https://vault.example:8200",
                                   "path": "secret/data/cb"})
        self.audited("vault.set", {"enabled": True, "url": "https://v",
                                   "path": "secret/cb"}, "bad_request")
        # Methods that touch no credential leave nothing.
        self.silent("hello", {})
        self.silent("health", {})
        self.silent("type.get", {"type": "gh"})
        self.silent("type.get", {"type": "nosuch"})
        self.silent("type.list", {})
        self.silent("vault.get", {})
        self.silent("no.such.method", {})
        self.check_chain(self.lines())
        # The stderr audit lines are still there.
        self.assertIn("audit: method=cred.set", self.d.log())

    def test_substitute_dry_run_is_audited_as_dry_run(self):
        u = self.user
        self.c.ok("type.create", {"ident": "gh", "name": "GitHub",
                                  "storage": "db"})
        self.c.ok("cred.set", {"type": "gh", "user": u, "value": "s3cret"})

        def sub(url, **kw):
            p = {"component": {"kind": "action", "initiator": u,
                               "credentials": [{"id": "g", "type": "gh"}]},
                 "request": {"method": "GET", "url": url, "headers": []}}
            p.update(kw)
            return p

        url = "https://api.github.com/<<.credentials.g>>"
        rec, _, res = self.audited("substitute", sub(url, dry_run=True))
        self.assertIs(rec["dry_run"], True)
        self.assertEqual(rec["sources"], ["gh/own"])
        self.assertTrue(res["dry_run"])
        # A dry run that fails is still a dry run.
        rec, _, _ = self.audited("substitute", sub(
            "https://x.example/<<.credentials.nope>>", dry_run=True),
            "bad_request")
        self.assertIs(rec["dry_run"], True)
        # A real one (and an explicit dry_run false) carries no such field.
        rec, _, _ = self.audited("substitute", sub(url))
        self.assertNotIn("dry_run", rec)
        rec, _, _ = self.audited("substitute", sub(url, dry_run=False))
        self.assertNotIn("dry_run", rec)
        # The log's audit lines say the same.
        lines = [x for x in self.d.log().splitlines()
                 if "audit: method=substitute " in x]
        self.assertEqual(len(lines), 4, lines)
        pid = os.getpid()
        for line, tail in zip(lines, (
                "gh sources=gh/own dry_run=true outcome=ok ms=",
                "- dry_run=true outcome=bad_request ms=",
                "gh sources=gh/own outcome=ok ms=",
                "gh sources=gh/own outcome=ok ms=")):
            self.assertRegex(line, r" info: audit: method=substitute "
                             r"uid=%d pid=%d subject=%s types=%s\d+$"
                             % (os.getuid(), pid, u, re.escape(tail)))
        # credctl still verifies the file with the new field in it.
        lines = self.lines()
        head = self.check_chain(lines)
        rc, out, err = self.verify()
        self.assertEqual(rc, 0, out + err)
        self.assertIn("OK: %d lines, head %s" % (len(lines), head), out)

    def test_stderr_line_precedes_its_answer(self):
        """The daemon writes log lines once per loop iteration, always
        before that iteration's replies: once a caller holds an answer,
        the call's audit line is already on stderr, for single calls and
        for a pipelined burst alike."""
        def count():
            return self.d.log().count("audit: method=cred.status ")

        n = count()
        for i in range(30):
            self.c.ok("cred.status", {"user": self.user})
            self.assertEqual(count(), n + i + 1, "call %d" % i)
        n = count()
        ids, buf = [], bytearray()
        for _ in range(40):
            ids.append(self.c.new_id())
            buf += cbtest.pack_request(ids[-1], "cred.status",
                                       {"user": self.user})
        self.c.send_raw(bytes(buf))
        for k, i in enumerate(ids):
            self.c.wait_response(i, cbtest.CALL_TIMEOUT)
            self.assertGreaterEqual(count(), n + k + 1, "reply %d" % k)
        self.assertEqual(count(), n + 40)

    def test_every_method_by_its_flag(self):
        """Every method of proto/methods.def, called with empty params:
        one line when it is flagged CB_MF_AUDIT, none otherwise."""
        src = cbtest.SOURCE_DIR or os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "..", "..")
        with open(os.path.join(src, "proto", "methods.def")) as f:
            defs = re.findall(r'^CB_METHODDEF\(\w+,\s*"([^"]+)",\s*\w+,'
                              r'\s*([^)]*)\)', f.read(), re.M)
        self.assertGreaterEqual(len(defs), 15)
        for name, flags in defs:
            if "CB_MF_AUDIT" in flags:
                before = len(self.lines())
                err, _ = self.c.call(name, {})
                lines = self.lines()
                self.assertEqual(len(lines), before + 1, name)
                rec = json.loads(lines[-1])
                self.assertEqual(rec["method"], name)
                self.assertEqual(rec["outcome"],
                                 "ok" if err is None else err["code"])
            else:
                self.silent(name, {})
        self.check_chain(self.lines())

    def test_forbidden_calls_are_audited(self):
        d = cbtest.Daemon(cbtest.make_tmpdir(), grants=[
            "uid:%d read:health" % os.getuid()])
        path = os.path.join(d.dir, "audit.log")
        d.args += ["-o", "audit.file=" + path]
        self.addCleanup(d.cleanup)
        d.start()
        with d.client() as c:
            err, _ = c.call("cred.set", {"type": "gh", "user": self.user,
                                         "value": "x"})
            self.assertEqual(err["code"], "forbidden")
            err, _ = c.call("type.list", {})
            self.assertEqual(err["code"], "forbidden")
        d.stop()
        with open(path, "rb") as f:
            lines = f.read().splitlines()
        self.assertEqual(len(lines), 1)
        rec = json.loads(lines[0])
        self.assertEqual((rec["method"], rec["outcome"], rec["seq"]),
                         ("cred.set", "forbidden", 1))

    def test_no_values_in_the_file(self):
        canaries = []
        self.c.ok("type.create", {"ident": "gh", "name": "GH",
                                  "storage": "db"})
        for i in range(3):
            v = "CANARY-%d-%s" % (i, os.urandom(12).hex())
            canaries.append(v.encode())
            self.c.ok("cred.set", {"type": "gh", "user": self.user,
                                   "value": v if i != 1 else v.encode()})
        res = self.c.ok("substitute", {
            "component": {"kind": "action", "initiator": self.user,
                          "credentials": [{"id": "g", "type": "gh"}]},
            "request": {"method": "POST",
                        "url": "https://h/<<.credentials.g>>",
                        "headers": [["X", "<<.credentials.g | base64>>"]],
                        "body": "<<.credentials.g | json>>"}})
        self.assertIn(canaries[-1].decode(), res["request"]["url"])
        # A value in a failing call, and in a parameter name.
        v = "CANARY-bad-" + os.urandom(12).hex()
        canaries.append(v.encode())
        self.c.call("cred.set", {"type": "nosuch", "user": self.user,
                                 "value": v})
        data = self.raw()
        self.assertEqual(len(self.lines()), 6)
        self.assertEqual(find_leaks(data, canaries), [])
        self.assertNotIn(b"CANARY", data)

    def test_verify_real_file(self):
        self.make_traffic()
        lines = self.lines()
        head = self.check_chain(lines)
        rc, out, err = self.verify()
        self.assertEqual(rc, 0, out + err)
        self.assertIn("OK: %d lines, head %s" % (len(lines), head), out)
        self.assertIn("--head", out)
        rc, out, err = self.verify(None, "--head", head)
        self.assertEqual(rc, 0, out + err)
        rc, out, err = self.verify(None, "--head", head.upper())
        self.assertEqual(rc, 0, out + err)
        # An earlier head is fine too: lines after it were appended.
        rc, out, err = self.verify(None, "--head", sha(lines[2]))
        self.assertEqual(rc, 0, out + err)
        self.assertIn("line 3 of %d" % len(lines), out)
        rc, out, err = self.verify(json_out=True)
        self.assertEqual(rc, 0, out + err)
        j = json.loads(out)
        self.assertEqual((j["ok"], j["lines"], j["head"]),
                         (True, len(lines), head))
        # Usage and I/O errors.
        rc, out, err = self.verify(None, "--head", "abc")
        self.assertEqual(rc, 2, out + err)
        rc, out, err = self.verify(os.path.join(self.tmp, "missing"))
        self.assertEqual(rc, 3, out + err)
        rc, out, err = cbtest.credctl(self.d.socket, "audit", "verify")
        self.assertEqual(rc, 2, out + err)

    def test_verify_detects_tampering(self):
        self.make_traffic()
        lines = self.lines()
        n = len(lines)
        self.assertGreaterEqual(n, 6)
        head = sha(lines[-1])
        t = os.path.join(self.tmp, "t.log")

        def bad(data, expect_line, *args):
            self.write(t, data)
            rc, out, err = cbtest.credctl(self.d.socket, "audit", "verify",
                                          t, *args)
            self.assertEqual(rc, 1, "tampering not detected:\n" + out + err)
            self.assertIn("FAIL", out)
            if expect_line is not None:
                self.assertIn("line %d:" % expect_line, out)
            return out

        join = lambda ls: b"".join(x + b"\n" for x in ls)  # noqa: E731
        # One character changed in a middle line (still valid JSON).
        ed = list(lines)
        ed[2] = ed[2].replace(b'"uid":', b'"uid":1', 1)
        self.assertNotEqual(ed[2], lines[2])
        bad(join(ed), 4)
        # One character changed so that the line no longer parses.
        ed = list(lines)
        ed[3] = ed[3][:-1] + b"]"
        bad(join(ed), 4)
        # A middle line deleted.
        bad(join(lines[:3] + lines[4:]), 4)
        # Two lines swapped.
        bad(join(lines[:2] + [lines[3], lines[2]] + lines[4:]), 3)
        # The first line cut at its start.
        bad(join([lines[0][10:]] + lines[1:]), 1)
        # The first line removed: the chain no longer starts at seq 1.
        bad(join(lines[1:]), 1)
        # A partial last line.
        out = bad(join(lines[:-1]) + lines[-1][:20], n)
        self.assertIn("partial", out)
        bad(join(lines)[:-1], n)
        # The last line removed: only --head sees it.
        self.write(t, join(lines[:-1]))
        rc, out, err = cbtest.credctl(self.d.socket, "audit", "verify", t)
        self.assertEqual(rc, 0, out + err)
        out = bad(join(lines[:-1]), None, "--head", head)
        self.assertIn("removed from the end", out)
        # Several removed, with --json.
        self.write(t, join(lines[:2]))
        rc, out, err = cbtest.credctl(self.d.socket, "audit", "verify", t,
                                      "--head", head, json=True)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(json.loads(out)["ok"], False)
        # A line appended by hand with a valid-looking seq but wrong prev.
        forged = json.dumps(dict(json.loads(lines[-1]), seq=n + 1),
                            separators=(",", ":")).encode()
        bad(join(lines + [forged]), n + 1)

    def test_restart_continues_chain(self):
        self.make_traffic()
        old = self.lines()
        old_head = sha(old[-1])
        self.c.close()
        self.d.stop()
        self.assertIn("closed at seq %d, head %s" % (len(old), old_head),
                      self.d.log())
        self.d.start()
        self.assertIn("continuing at seq %d, head %s" % (len(old), old_head),
                      self.d.log())
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        h = self.c.ok("health", {})["audit"]
        self.assertEqual((h["seq"], h["hash"]), (len(old), old_head))
        rec, _, _ = self.audited("cred.status", {"user": self.user})
        self.assertEqual(rec["seq"], len(old) + 1)
        self.assertEqual(rec["prev"], old_head)
        self.make_traffic("gh2")
        lines = self.lines()
        self.assertEqual(lines[:len(old)], old)
        head = self.check_chain(lines)
        h = self.c.ok("health", {})["audit"]
        self.assertEqual((h["seq"], h["hash"]), (len(lines), head))
        rc, out, err = self.verify(None, "--head", old_head)
        self.assertEqual(rc, 0, out + err)
        rc, out, err = self.verify(None, "--head", head)
        self.assertEqual(rc, 0, out + err)

    def test_refuses_partial_last_line(self):
        self.make_traffic()
        self.c.close()
        self.d.stop()
        good = self.raw()
        with open(self.audit, "ab") as f:
            f.write(b'{"seq":99,"time":"2026')
        self.d.start(wait=False)
        rc = self.d.wait_exit()
        self.assertEqual(rc, 1, self.d.log())
        self.assertIn("partial line", self.d.log())
        self.assertEqual(self.raw(), good + b'{"seq":99,"time":"2026')
        # An unparsable last line is refused too.
        self.write(self.audit, good + b"garbage\n")
        self.d.start(wait=False)
        self.assertEqual(self.d.wait_exit(), 1, self.d.log())
        self.assertIn("does not parse", self.d.log())
        # Repaired: it starts and goes on.
        self.write(self.audit, good)
        self.d.start()
        with self.d.client() as c:
            c.ok("cred.status", {"user": self.user})
        self.check_chain(self.lines())

    def test_second_broker_refused(self):
        d = cbtest.Daemon(cbtest.make_tmpdir())
        d.args += ["-o", "audit.file=" + self.audit]
        self.addCleanup(d.cleanup)
        d.start(wait=False)
        self.assertEqual(d.wait_exit(), 1, d.log())
        self.assertIn("in use by another process", d.log())

    def test_sync_off_and_check_config(self):
        self.c.close()
        self.d.stop()
        self.d.args += ["-o", "audit.sync=no"]
        self.d.start()
        with self.d.client() as c:
            c.ok("cred.status", {"user": self.user})
        self.assertEqual(len(self.lines()), 1)
        self.d.stop()
        p = os.path.join(self.tmp, "new-audit.log")
        rc = cbtest.subprocess.run(
            [cbtest.DAEMON, "-c", self.d.config, "-o", "audit.file=" + p,
             "--check-config"], capture_output=True).returncode
        self.assertEqual(rc, 0)
        self.assertFalse(os.path.exists(p))
        with open(self.audit, "ab") as f:
            f.write(b"{")
        r = cbtest.subprocess.run(
            [cbtest.DAEMON, "-c", self.d.config, "-o",
             "audit.file=" + self.audit, "--check-config"],
            capture_output=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"partial line", r.stderr)


class AuditFileFailureTest(AuditBase):
    """A line the audit file does not take whole (here: a file size limit
    reached in the middle of the line, as on a full disk) is counted in
    health and stats, logged as an AUDIT FAILURE, and cut off again: the
    file stays a valid chain and goes on once writes succeed."""

    # Enough lines that the audit file is the largest file the broker
    # writes: a size limit just above it stops only audit lines, and only
    # part way (a short write, not EFBIG with its SIGXFSZ).
    PREFILL = 4000

    def start_prefilled(self):
        self.c.close()
        self.d.stop()
        prev, out = ZEROS, bytearray()
        for i in range(1, self.PREFILL + 1):
            line = json.dumps({
                "seq": i, "time": "2026-01-02T03:04:05.678Z",
                "method": "cred.status", "uid": 0, "pid": 1,
                "subject": self.user, "types": [], "outcome": "ok",
                "ms": 0, "prev": prev}, separators=(",", ":")).encode()
            out += line + b"\n"
            prev = sha(line)
        self.write(self.audit, bytes(out))
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)

    def set_fsize(self, soft):
        _, hard = resource.prlimit(self.d.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(self.d.pid, resource.RLIMIT_FSIZE, (soft, hard))

    def test_failed_audit_write_is_counted_and_cut_off(self):
        self.start_prefilled()
        self.audited("cred.status", {"user": self.user})
        before = self.raw()
        # Larger than any file of the store (the SQLite database, or the
        # PostgreSQL backend's local mirror).
        self.assertGreater(len(before), max(
            os.path.getsize(p) for p in self.d.store_files()))
        self.addCleanup(self.set_fsize, resource.RLIM_INFINITY)
        self.set_fsize(len(before) + 10)
        for n in (1, 2):
            # The call itself still succeeds.
            self.c.ok("cred.status", {"user": self.user})
            self.assertEqual(self.raw(), before)
            h = self.c.ok("health", {})["audit"]
            self.assertEqual((h["seq"], h["failures"]),
                             (self.PREFILL + 1, n))
            self.assertEqual(self.c.ok("stats", {})["audit"],
                             {"failures": n, "log_lines_lost": 0})
            self.assertIn(" error: AUDIT FAILURE: audit file %s: write: No "
                          "space left on device (cred.status call of uid %d "
                          "pid %d; %d failures so far)\n"
                          % (self.audit, os.getuid(), os.getpid(), n),
                          self.d.log())
        self.set_fsize(resource.RLIM_INFINITY)
        rec, _, _ = self.audited("cred.status", {"user": self.user})
        self.assertEqual(rec["seq"], self.PREFILL + 2)
        lines = self.lines()
        self.check_chain(lines)
        rc, out, err = self.verify()
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(self.c.ok("health", {})["audit"]["failures"], 2)
        rc, out, err = cbtest.credctl(self.d.socket, "health")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^  failures: +2$")


class StderrPipeDaemon(cbtest.Daemon):
    """A daemon whose stderr is a small non-blocking pipe that the test
    reads only when it chooses to, as journald's stream can be when it
    falls behind."""

    def start(self, wait=True, extra_args=()):
        self.starts += 1
        self.killed = False
        self.checked = False
        self.out = bytearray()
        r, w = os.pipe()
        fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)
        # O_NONBLOCK belongs to the open file, which the daemon shares.
        fcntl.fcntl(w, fcntl.F_SETFL,
                    fcntl.fcntl(w, fcntl.F_GETFL) | os.O_NONBLOCK)
        fcntl.fcntl(r, fcntl.F_SETFL,
                    fcntl.fcntl(r, fcntl.F_GETFL) | os.O_NONBLOCK)
        self.rfd = r
        try:
            self.proc = subprocess.Popen(
                self.command(extra_args), stdin=subprocess.DEVNULL,
                stdout=w, stderr=w, env=self.environ(), cwd=self.dir)
        finally:
            os.close(w)
        cbtest._live_daemons.append(self)
        if wait:
            self.wait_ready()
            self.drain()
        return self

    def drain(self):
        """Read what the pipe holds now; returns it."""
        got = bytearray()
        while self.rfd is not None:
            try:
                b = os.read(self.rfd, 65536)
            except BlockingIOError:
                break
            if not b:
                break
            got += b
        self.out += got
        return bytes(got)

    def close_reader(self):
        os.close(self.rfd)
        self.rfd = None

    def log(self):
        return self.out.decode("utf-8", "replace")


class LogLinesLostTest(cbtest.DaemonTestCase):
    """Log lines, the journal's copy of the audit lines among them, that
    stderr does not take (a full non-blocking pipe: EAGAIN; no reader:
    EPIPE) are counted in health and stats; the lines that do get through
    are whole lines; the loop never waits for the reader."""

    start_daemon = False
    LINE_RE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                         rb"(error|warning|info|debug): ")

    def setUp(self):
        super().setUp()
        self.d = StderrPipeDaemon(self.tmp)
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.d.finish)
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.user = cbtest.new_user()

    def lost(self):
        n = self.c.ok("health", {})["audit"]["log_lines_lost"]
        self.assertEqual(self.c.ok("stats", {})["audit"]["log_lines_lost"],
                         n)
        return n

    def audit_lines(self, data):
        """The audit lines that arrived with their newline."""
        return [x for x in data.split(b"\n")[:-1]
                if b" info: audit: method=cred.status " in x]

    def whole(self, line):
        """One complete log line: one time stamp, up to the end."""
        return (self.LINE_RE.match(line) is not None and
                len(re.findall(rb"\d{4}-\d\d-\d\dT", line)) == 1 and
                re.search(rb" ms=\d+$", line) is not None)

    def test_full_stderr_pipe_counts_lost_lines(self):
        self.assertEqual(self.lost(), 0)
        # Nobody reads: the 4 KiB pipe fills (EAGAIN), and calls go on.
        calls = 0
        while self.lost() == 0:
            self.assertLess(calls, 500, "no line lost with a full pipe")
            self.c.ok("cred.status", {"user": self.user})
            calls += 1
        lost = self.lost()
        got = self.d.drain()
        # Every line either came through whole or is counted as lost
        # (every line logged here is an audit line).
        seen = [x for x in got.split(b"\n")[:-1] if self.whole(x)]
        self.assertEqual(len(self.audit_lines(got)), len(seen))
        self.assertEqual(len(seen) + lost, calls)
        # An empty pipe, and a burst whose lines go out in one write
        # larger than the pipe: the kernel takes part of it.
        n = 60
        for _, m in self.c.pipeline([("cred.status", {"user": self.user})]
                                    * n):
            self.assertIsNone(m[2])
        lost2 = self.lost() - lost
        self.assertGreater(lost2, 0)
        got = self.d.drain()
        seen = [x for x in got.split(b"\n")[:-1] if self.whole(x)]
        self.assertEqual(len(self.audit_lines(got)), len(seen))
        self.assertEqual(len(seen) + lost2, n)
        # With room again, the next line arrives whole, on a line of its
        # own even when the last write stopped inside a line: at most
        # the one line cut short is not whole.
        self.c.ok("cred.status", {"user": self.user})
        more = self.d.drain()
        self.assertTrue(more.endswith(b"\n"), more)
        self.assertTrue(self.whole(more.rstrip(b"\n").split(b"\n")[-1]),
                        more)
        both = (got + more).split(b"\n")[:-1]
        self.assertEqual(len([x for x in both if self.whole(x)]),
                         len(seen) + 1)
        cut = [x for x in both if not self.whole(x)]
        self.assertLessEqual(len(cut), 1, cut)
        self.assertEqual(self.lost(), lost + lost2)
        rc, out, err = cbtest.credctl(self.d.socket, "health")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^  log_lines_lost: +%d$"
                         % (lost + lost2))

    def test_stderr_without_reader_counts_lost_lines(self):
        self.d.close_reader()
        for i in range(1, 4):
            self.c.ok("cred.status", {"user": self.user})
            self.assertEqual(self.lost(), i)


class NoAuditFileTest(cbtest.DaemonTestCase):
    def test_health_without_audit_file(self):
        h = self.c.ok("health", {})["audit"]
        self.assertEqual(h, {"enabled": False, "seq": 0, "hash": None,
                             "failures": 0, "log_lines_lost": 0})


if __name__ == "__main__":
    cbtest.main()

"""
Memory test (SPEC 5.3): decrypted values live only for the duration of one
call and every buffer that held one is wiped.

The test plants a unique canary ("CANARY-" + 24 random hex digits, inside
several hostile values) with cred.set for a few users and types, runs a few
hundred substitutions (every filter and chains of them, some pipelined,
some failing before or after decryption, some dry runs, some on
connections closed abruptly before the answer is read) and a few hundred
cred.set calls (with the canary and with other values, valid and invalid,
some pipelined, some on connections cut mid-message), waits until every
answer is read and every connection is gone, and then reads the live
daemon's whole memory through /proc/PID/maps and /proc/PID/mem.  No copy of
the canary may be there: not the plaintext, and not any of the encoded
forms that the substitutions produced (base64 at any alignment, percent-
and JSON-escaped, chains).  The daemon's stderr is checked too.

Reading another process's memory needs CAP_SYS_PTRACE (the daemon makes
itself non-dumpable), so the test must run as root; it fails, rather than
skips, otherwise.  Two positive controls prove that the scanner works: it
must find a marker held by a helper process (also non-dumpable), and it
must find, in the daemon, a string that is known to be there (the socket
path).
"""

import base64
import os
import secrets
import socket
import struct
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, b64_forms, pack_request  # noqa: E402
import msgpack  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")
CHUNK = 1 << 20
BIG_REGION = 1 << 30            # read larger regions page by page (pagemap)
HUGE_REGION = 64 << 30          # and refuse to read anything larger
# AddressSanitizer's shadow memory on x86_64 (low shadow, gap, high
# shadow): bytes that describe other memory, never user data.
ASAN_SHADOW = (0x00007fff8000, 0x10007fff8000)
SKIP_NAMES = ("[vvar]", "[vvar_vclock]", "[vsyscall]")


# -- the scanner -----------------------------------------------------------


class Region:
    def __init__(self, line):
        f = line.split(None, 5)
        a, b = f[0].split("-")
        self.start, self.end = int(a, 16), int(b, 16)
        self.perms = f[1]
        self.offset = int(f[2], 16)
        self.name = f[5].strip() if len(f) > 5 else ""
        self.line = line.rstrip("\n")

    @property
    def size(self):
        return self.end - self.start

    def __repr__(self):
        return self.line


def read_maps(pid):
    with open("/proc/%d/maps" % pid) as f:
        return [Region(line) for line in f if line.strip()]


def hexdump(data, base):
    out = []
    for i in range(0, len(data), 16):
        row = data[i:i + 16]
        out.append("  %016x  %-48s |%s|" % (
            base + i, " ".join("%02x" % b for b in row),
            "".join(chr(b) if 0x20 <= b < 0x7F else "." for b in row)))
    return "\n".join(out)


class Hit:
    def __init__(self, label, pattern, addr, region, context, ctx_base):
        self.label = label
        self.pattern = pattern
        self.addr = addr
        self.region = region
        self.context = context
        self.ctx_base = ctx_base

    def describe(self):
        return ("%s found at 0x%x, offset 0x%x into mapping\n    %s\n"
                "  pattern %r\n%s" % (
                    self.label, self.addr, self.addr - self.region.start,
                    self.region.line, self.pattern[:80],
                    hexdump(self.context, self.ctx_base)))


class Scanner:
    """Search every readable mapping of a process for byte patterns."""

    def __init__(self, pid, sanitized=False):
        self.pid = pid
        self.sanitized = sanitized
        self.stats = {"regions": 0, "bytes": 0, "skipped": [],
                      "unreadable_pages": 0, "pagemap_regions": 0}

    def _present_runs(self, pm, region):
        """Runs (start, end) of pages of region that are in memory or in
        swap, from /proc/PID/pagemap."""
        runs = []
        npages = region.size // PAGE
        first = region.start // PAGE
        batch = 1 << 16
        cur = None
        for i in range(0, npages, batch):
            n = min(batch, npages - i)
            data = os.pread(pm, 8 * n, 8 * (first + i))
            for j, (e,) in enumerate(struct.iter_unpack("<Q", data)):
                addr = region.start + (i + j) * PAGE
                if e & (3 << 62):
                    if cur is not None and cur[1] == addr:
                        cur[1] = addr + PAGE
                    else:
                        cur = [addr, addr + PAGE]
                        runs.append(cur)
        return [tuple(r) for r in runs]

    def _read(self, mem, addr, size):
        """Read size bytes at addr; unreadable pages come back as zeros."""
        try:
            data = os.pread(mem, size, addr)
            if len(data) == size:
                return data
        except OSError:
            pass
        out = bytearray()
        for a in range(addr, addr + size, PAGE):
            n = min(PAGE, addr + size - a)
            try:
                d = os.pread(mem, n, a)
            except OSError:
                d = b""
            if len(d) < n:
                self.stats["unreadable_pages"] += 1
                d = d + b"\0" * (n - len(d))
            out += d
        return bytes(out)

    def scan(self, patterns, per_label=5):
        """patterns: {label: bytes}.  Returns (hits, counts): the first
        per_label Hits of each label, and the number of hits per label."""
        pats = [(label, p) for label, p in patterns.items() if p]
        overlap = max(len(p) for _, p in pats) - 1
        hits = []
        counts = {}
        seen = set()
        mem = os.open("/proc/%d/mem" % self.pid, os.O_RDONLY)
        pm = None
        try:
            for region in read_maps(self.pid):
                if "r" not in region.perms or region.name in SKIP_NAMES:
                    continue
                if region.start >= 1 << 63:
                    continue
                runs = [(region.start, region.end)]
                if self.sanitized and region.start >= ASAN_SHADOW[0] and \
                        region.end <= ASAN_SHADOW[1]:
                    self.stats["skipped"].append(("asan shadow", region))
                    continue
                if region.size > HUGE_REGION:
                    raise AssertionError("cannot scan mapping of %d GiB: %s"
                                         % (region.size >> 30, region.line))
                if region.size > BIG_REGION:
                    if pm is None:
                        pm = os.open("/proc/%d/pagemap" % self.pid,
                                     os.O_RDONLY)
                    runs = self._present_runs(pm, region)
                    self.stats["pagemap_regions"] += 1
                self.stats["regions"] += 1
                for rs, re_ in runs:
                    prev = b""
                    for a in range(rs, re_, CHUNK):
                        n = min(CHUNK, re_ - a)
                        data = self._read(mem, a, n)
                        self.stats["bytes"] += n
                        buf = prev + data
                        base = a - len(prev)
                        for label, p in pats:
                            i = buf.find(p)
                            while i >= 0:
                                addr = base + i
                                if (label, addr) not in seen:
                                    seen.add((label, addr))
                                    counts[label] = counts.get(label, 0) + 1
                                    if counts[label] <= per_label:
                                        lo = max(0, i - 32)
                                        hi = min(len(buf), i + len(p) + 32)
                                        hits.append(Hit(label, p, addr,
                                                        region, buf[lo:hi],
                                                        base + lo))
                                i = buf.find(p, i + 1)
                        prev = buf[-overlap:] if overlap > 0 else b""
        finally:
            os.close(mem)
            if pm is not None:
                os.close(pm)
        return hits, counts


# -- reference encoders (as in test_substitute.py) ---------------------------


def f_urlquery(b):
    return urllib.parse.quote_from_bytes(b, safe="").encode()


def f_json(b):
    s = b.decode("utf-8")
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f",
             "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    out = []
    for ch in s:
        o = ord(ch)
        if ch in short:
            out.append(short[ch])
        elif o < 0x20 or o == 0x7F or ch in "<>&" or o in (0x2028, 0x2029):
            out.append("\\u%04x" % o)
        else:
            out.append(ch)
    return "".join(out).encode()


FILTERS = {"urlquery": f_urlquery, "urlpath": f_urlquery, "json": f_json,
           "base64": base64.b64encode}


def ph(ident, *chain):
    return "<<.credentials.%s%s>>" % (ident, "".join("|" + f for f in chain))


# Every filter chain the workload uses (kept in step with TEMPLATES).
CHAINS = [(), ("urlquery",), ("urlpath",), ("json",), ("base64",),
          ("json", "base64"), ("base64", "urlquery"), ("urlquery", "json"),
          ("json", "urlquery"), ("urlpath", "urlpath"), ("base64", "json")]


def forms_of(value):
    """Byte strings that would betray value after any chain in CHAINS:
    each final form, and base64 (any alignment) of each base64 input."""
    forms = set()
    for chain in CHAINS:
        cur = value
        try:
            for f in chain:
                if f == "base64":
                    forms |= b64_forms(cur)
                cur = FILTERS[f](cur)
        except UnicodeDecodeError:
            continue
        forms.add(cur)
    forms |= b64_forms(value)
    forms.add(value.hex().encode())
    return {f for f in forms if len(f) >= 16}


# -- the workload ----------------------------------------------------------


class LenientClient(cbtest.Client):
    """A Client that survives a msgpack str which is not UTF-8 (some of the
    workload's raw substitutions of binary values produce one; that is
    test_substitute's business, not this test's)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                         max_buffer_size=64 << 20,
                                         unicode_errors="surrogateescape")


def templates():
    """(name, request) pairs; ids p, d, b (see MemoryTest.component)."""
    T = []
    T.append(("all filters", {
        "method": "POST",
        "url": "https://api.example.com/x/" + ph("d", "urlpath") + "?p=" +
        ph("p", "urlquery") + "&b=" + ph("b", "base64", "urlquery"),
        "headers": [["Authorization", "Basic " + ph("p", "base64")],
                    ["X-J", ph("d", "json")],
                    ["X-C", ph("d", "json", "base64")]],
        "body": '{"p":"' + ph("p", "json") + '","b":"' +
        ph("b", "base64", "json") + '"}'}))
    T.append(("chains in a bin body", {
        "method": "PUT", "url": "https://api.example.com/",
        "headers": [["X", ph("p", "urlquery", "json")]],
        "body": b"\x00" + (ph("b") + ph("p") + ph("d", "json", "urlquery") +
                           ph("d", "urlpath", "urlpath") + ph("d")).encode()}))
    T.append(("raw in a str body", {
        "method": "GET", "url": "https://api.example.com/",
        "headers": [], "body": "d=" + ph("d") + "&p=" + ph("p")}))
    T.append(("refused destination", {
        "method": "GET", "url": "https://evil.example/?d=" + ph("d"),
        "headers": [["X", ph("p")]]}))
    T.append(("raw value in a header", {
        "method": "GET", "url": "https://api.example.com/?p=" +
        ph("p", "urlquery"), "headers": [["X", ph("d")]]}))
    T.append(("json of a binary value", {
        "method": "GET", "url": "https://api.example.com/",
        "headers": [["X", ph("p", "base64")]],
        "body": '{"b":"' + ph("b", "json") + '"}'}))
    T.append(("raw value in the URL", {
        "method": "GET", "url": "https://api.example.com/?b=" + ph("b"),
        "headers": [["X", ph("p", "base64")]]}))
    T.append(("undeclared", {
        "method": "GET", "url": "https://api.example.com/?z=" + ph("z")}))
    return T


class MemoryTest(cbtest.DaemonTestCase):

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("test_memory must run as root: reading the memory of "
                      "the non-dumpable credbrokerd through /proc/PID/mem "
                      "needs CAP_SYS_PTRACE (run ctest as root, as CI does)")
        super().setUp()
        self.c = LenientClient(self.d.socket)
        self.addCleanup(self.c.close)
        self.sanitized = cbtest.daemon_sanitized()
        self.canary = "CANARY-" + secrets.token_hex(12)
        C = self.canary
        self.cvalues = [
            C.encode(),
            ('p"\\ пароль\r\n&/%+ ' + C + ' <<.credentials.x>>').encode(),
            b"\xff\xfe" + C.encode() + b"\x00\x01",
            ("sp " + C + "\t").encode(),
        ]
        self.users = [new_user() for _ in range(4)]
        self.nobody = new_user()        # never has a value
        self.linked = new_user()        # linked to accounts (SPEC 10)
        self.spare = new_user()
        for ident, dests, storage in (
                ("m_plain", None, "db"),
                ("m_dest", ["https://api.example.com"], "db"),
                ("m_bin", None, "db"),
                ("m_vault", None, "vault")):
            p = {"ident": ident, "name": ident, "storage": storage}
            if dests:
                p["destinations"] = dests
            self.c.ok("type.create", p)

    # -- helpers -----------------------------------------------------------
    def component(self, i, user):
        creds = [{"id": "p", "type": "m_plain"}, {"id": "d", "type": "m_dest"},
                 {"id": "b", "type": "m_bin"}]
        kind = ["action", "widget", "data_source", "status_check"][i % 4]
        c = {"kind": kind, "credentials": creds[:2]}
        c["external_service"] = {"credentials": creds[1:]}
        if kind in ("action", "widget"):
            c["initiator" if i % 2 else "run_as"] = user
        else:
            c["system_account"] = user
        return c

    def plant_all(self, round_):
        """cred.set of the canary values for every user and type, rotated
        by round so that every user and type sees each value."""
        reqs = []
        for k, u in enumerate(self.users):
            vals = self.cvalues[(k + round_) % 4], \
                self.cvalues[(k + round_ + 1) % 4], \
                self.cvalues[(k + round_ + 2) % 4]
            for ident, v in zip(("m_plain", "m_dest", "m_bin"), vals):
                reqs.append(("cred.set", {"type": ident, "user": u,
                                          "value": v}))
        # The accounts self.linked is linked to get the canary values too.
        for k, ident in enumerate(("m_plain", "m_dest", "m_bin")):
            reqs.append(("cred.set", {"type": ident, "account": "shared",
                                      "value": self.cvalues[(k + round_)
                                                            % 4]}))
        return reqs

    def invalid_sets(self):
        C = self.canary
        u = self.users[0]
        return [
            ("cred.set", {"type": "nosuch", "user": u, "value": C}),
            ("cred.set", {"type": "m_plain", "user": u.upper(), "value": C}),
            ("cred.set", {"type": "m_vault", "user": u, "value": C}),
            ("cred.set", {"type": "m_plain", "user": u, "value": C,
                          "junk": C}),
            ("cred.set", {"type": "m_plain", "user": u, "value": [C]}),
        ]

    def cut_connection(self, data, rst=True):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.d.socket)
        s.sendall(data)
        if rst:
            # Close at once, leaving the daemon's answers unread: its
            # writes then fail (EPIPE/ECONNRESET) with replies queued.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
        s.close()

    def daemon_sockets(self):
        n = 0
        d = "/proc/%d/fd" % self.d.pid
        for fd in os.listdir(d):
            try:
                if os.readlink(os.path.join(d, fd)).startswith("socket:"):
                    n += 1
            except OSError:
                pass
        return n

    def settled_sockets(self):
        """The daemon's socket count once it stays the same for 0.2 s."""
        n = self.daemon_sockets()
        for _ in range(4):
            time.sleep(0.05)
            if self.daemon_sockets() != n:
                return None
        return n

    def workload(self):
        counts = {"substitute": 0, "cred.set": 0, "cred.link": 0,
                  "errors": 0, "dry": 0, "cut": 0}
        T = templates()
        second = LenientClient(self.d.socket)
        self.addCleanup(second.close)

        def run(client, reqs, pipelined):
            if pipelined:
                out = [m for _, m in client.pipeline(reqs)]
            else:
                out = []
                for method, params in reqs:
                    err, res = client.call(method, params)
                    out.append([1, 0, err, res])
            for (method, _), m in zip(reqs, out):
                counts[method] += 1
                if m[2] is not None:
                    counts["errors"] += 1
            return out

        for round_ in range(8):
            # cred.set: canary values (valid), other values, invalid calls.
            sets = self.plant_all(round_)
            sets += [("cred.set", {"type": "m_plain", "user": new_user(),
                                   "value": "other-value-%d-%d" % (round_, i)})
                     for i in range(12)]
            sets += [("cred.set", {"type": "m_bin", "user": self.spare,
                                   "value": self.canary + "-%d" % i})
                     for i in range(3)]
            sets += self.invalid_sets()
            run(self.c if round_ % 2 else second, sets, round_ % 2 == 0)
            if round_ == 0:
                out = run(self.c, [("cred.link", {
                    "type": ident, "user": self.linked, "account": "shared"})
                    for ident in ("m_plain", "m_dest", "m_bin")], False)
                for m in out:
                    self.assertIsNone(m[2], m[2])
                err, res = self.c.call("substitute", {
                    "component": self.component(1, self.linked),
                    "request": T[0][1]})
                self.assertIsNone(err, err)
                self.assertEqual({u["source"] for u in res["used"]},
                                 {"linked"}, res["used"])
            # substitute: every template for every user, some dry runs,
            # some for a user without values.
            subs = []
            for i, (name, request) in enumerate(T):
                for k, u in enumerate(self.users + [self.nobody,
                                                    self.linked]):
                    p = {"component": self.component(i + k + round_, u),
                         "request": request}
                    if (i + k + round_) % 5 == 0:
                        p["dry_run"] = True
                        counts["dry"] += 1
                    subs.append(("substitute", p))
            if round_ % 2 == 0:
                run(second, subs, True)
            else:
                run(self.c, subs[:20], False)
                run(second, subs[20:], True)
            # Connections cut before the answers are read, and mid-message.
            cut = b"".join(pack_request(900 + j, method, params)
                           for j, (method, params) in enumerate(subs[:6]))
            self.cut_connection(cut)
            full = pack_request(1, "cred.set", {
                "type": "m_plain", "user": self.users[round_ % 4],
                "value": self.cvalues[round_ % 4]})
            self.cut_connection(full)
            self.cut_connection(full[:len(full) - 3], rst=False)
            self.cut_connection(full[:len(full) // 2])
            one = pack_request(2, "substitute", subs[1][1])
            self.cut_connection(one + full[:-1])
            counts["cut"] += 5
        return counts, second

    # -- the test ------------------------------------------------------------
    def positive_control_helper(self):
        """The scanner finds a marker (and its base64) in the heap of a
        non-dumpable helper process."""
        marker = ("MARKER-" + secrets.token_hex(12)).encode()
        marker2 = ("MARKER2-" + secrets.token_hex(12)).encode()
        code = (
            "import base64, ctypes, sys\n"
            "ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)\n"   # not dumpable
            "line = sys.stdin.buffer.readline().split()\n"
            "held = bytearray(b'<' + line[0] + b'>')\n"
            "held2 = bytearray(b'xy' + base64.b64encode(b'\\0' + line[1]))\n"
            "del line\n"
            "sys.stdout.write('ready\\n'); sys.stdout.flush()\n"
            "sys.stdin.buffer.read()\n")
        p = subprocess.Popen(["/usr/bin/python3", "-c", code],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        try:
            p.stdin.write(marker + b" " + marker2 + b"\n")
            p.stdin.flush()
            self.assertEqual(p.stdout.readline(), b"ready\n")
            with open("/proc/%d/status" % p.pid) as f:
                self.assertIn("python", f.read())
            pats = {"marker": marker}
            for j, f in enumerate(sorted(b64_forms(marker2))):
                pats["marker2 base64 form %d" % j] = f
            hits, counts = Scanner(p.pid).scan(pats)
        finally:
            p.stdin.close()
            p.wait(timeout=10)
            p.stdout.close()
        labels = set(counts)
        self.assertIn("marker", labels,
                      "positive control failed: the scanner did not find a "
                      "marker in a helper process's heap")
        self.assertTrue(any(l.startswith("marker2") for l in labels),
                        "positive control failed: no base64 form found")

    def test_no_plaintext_in_daemon_memory(self):
        self.run_scan()

    def check_counts(self, counts_w):
        self.assertGreaterEqual(counts_w["substitute"], 300, counts_w)
        self.assertGreaterEqual(counts_w["cred.set"], 200, counts_w)
        self.assertGreater(counts_w["errors"], 50, counts_w)

    def run_scan(self):
        self.positive_control_helper()

        # The daemon's sockets now: the listener and our two connections
        # (once the start-up probe's connection is gone).
        self.c.ok("hello", {})
        baseline = cbtest.poll_until(self.settled_sockets, cbtest.CALL_TIMEOUT,
                                     what="the daemon's sockets to settle")
        t0 = time.monotonic()
        counts_w, second = self.workload()
        second.close()
        # Every answer has been read (call/pipeline wait for them); now wait
        # until the daemon has closed every connection but ours.
        cbtest.poll_until(lambda: self.daemon_sockets() <= baseline,
                          cbtest.CALL_TIMEOUT,
                          what="the daemon to close the other connections")
        # One more round trip: whatever the daemon does after answering
        # (wiping the request it has just read) is done by then.
        self.c.ok("hello", {})
        workload_s = time.monotonic() - t0
        self.check_counts(counts_w)
        self.assertTrue(self.d.alive(), self.d.log())

        # What to look for.
        C = self.canary.encode()
        patterns = {"canary": C, "canary tail": C[len(b"CANARY-"):]}
        for v in self.cvalues:
            for j, f in enumerate(sorted(forms_of(v))):
                if C not in f:
                    patterns["form %d of %r" % (j, v[:12])] = f
        # The positive control in the daemon: its socket path.
        sock = self.d.socket.encode()
        patterns["control: socket path"] = sock

        t1 = time.monotonic()
        scanner = Scanner(self.d.pid, self.sanitized)
        hits, counts = scanner.scan(patterns)
        scan_s = time.monotonic() - t1
        st = scanner.stats
        sys.stderr.write(
            "\n  workload: %s in %.2fs; scanned %d mappings, %.1f MiB in "
            "%.2fs (%d via pagemap, %d skipped, %d unreadable pages); "
            "%d patterns\n"
            % (counts_w, workload_s, st["regions"], st["bytes"] / 1048576.0,
               scan_s, st["pagemap_regions"], len(st["skipped"]),
               st["unreadable_pages"], len(patterns)))
        for why, r in st["skipped"]:
            sys.stderr.write("  skipped (%s): %s\n" % (why, r.line))

        self.assertGreater(counts.get("control: socket path", 0), 0,
                           "positive control failed: the socket path %r was "
                           "not found in the daemon's memory (%d bytes "
                           "scanned), so the scan proves nothing"
                           % (sock, st["bytes"]))
        leaks = {l: n for l, n in counts.items()
                 if not l.startswith("control")}
        if leaks:
            msg = ["copies of the canary (or an encoding of it) in the "
                   "daemon's memory after the calls ended: %s" % leaks]
            msg += [h.describe() for h in hits
                    if not h.label.startswith("control")][:20]
            self.fail("\n".join(msg))

        # stderr: never the canary, in any form.
        logs = self.d.all_logs()
        for label, p in patterns.items():
            if not label.startswith("control"):
                self.assertNotIn(p, logs, "%s in the daemon's stderr" % label)


class RequestMemoryTest(MemoryTest):
    """The same scan after a few hundred request calls (SPEC 13): the
    broker sends the canary itself, gets it echoed back (raw and encoded,
    scrubbed on the way), and fails in every way a transfer can: refused
    connections, timeouts, TLS failures and oversized responses."""

    def setUp(self):
        super().setUp()
        from test_request import Upstream, make_cert, response
        self.certdir = cbtest.make_tmpdir()
        self.addCleanup(cbtest.remove_tmpdir, self.certdir)
        key, crt = make_cert(self.certdir, "untrusted")

        def echo(req):
            v = b""
            for n, hv in req["headers"]:
                if n == "X-T":
                    v = hv
            return response(200, b"Echo " + v, [("X-Echo", v)],
                            b"raw=" + v + b" b64=" + base64.b64encode(v) +
                            b" body=" + req["body"])
        self.ups = {
            "echo": Upstream(echo),
            "slow": Upstream(lambda req: [3] + response()),
            "big": Upstream(lambda req: response(body=b"x" * 20000)),
        }
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(crt, key)
        self.ups["tls"] = Upstream(echo, ctx)
        for u in self.ups.values():
            self.addCleanup(u.close)
        sk = socket.socket()
        sk.bind(("127.0.0.1", 0))
        self.refused = sk.getsockname()[1]
        sk.close()
        dests = ["http://127.0.0.1:%d" % u.port for k, u in self.ups.items()
                 if k != "tls"]
        dests += ["https://127.0.0.1:%d" % self.ups["tls"].port,
                  "http://127.0.0.1:%d" % self.refused]
        self.c.ok("type.create", {"ident": "m_req", "name": "m_req",
                                  "storage": "db", "destinations": dests})

    def request_params(self, i, user):
        kinds = ["echo"] * 6 + ["refused", "slow", "tls", "big"]
        kind = kinds[i % len(kinds)]
        hdrs = [["X-T", ph("r")],
                ["X-Q", ph("r", "urlquery")],
                ["X-B", ph("r", "base64")],
                ["Authorization", "Bearer " + ph("r", "json")]]
        if kind == "refused":
            url = "http://127.0.0.1:%d/" % self.refused
        elif kind == "tls":
            url = "https://127.0.0.1:%d/" % self.ups["tls"].port
        else:
            url = "http://127.0.0.1:%d/?q=%s" % (self.ups[kind].port,
                                                 ph("r", "urlquery"))
        p = {"component": {"kind": "action", "initiator": user,
                           "credentials": [{"id": "r", "type": "m_req"}]},
             "request": {"method": "POST", "url": url, "headers": hdrs,
                         "body": '{"v":"' + ph("r", "json") + '"}'},
             "max_response_bytes": 8000,
             # Only the slow upstream is meant to time out: the others get
             # a deadline a loaded machine and a sanitized build keep.
             "timeout_ms": (300 if kind == "slow" else 20000) * cbtest.SCALE}
        return kind, p

    def workload(self):
        counts = {"request": 0, "cred.set": 0, "errors": 0,
                  "scrubbed": 0, "cut": 0}
        self.error_kinds = {}
        second = LenientClient(self.d.socket)
        self.addCleanup(second.close)
        users = self.users[:2]
        # Whole values in headers: HTTP trims a header value's outer
        # blanks, so a value ending in one would be echoed cut short.
        values = [self.canary.encode(),
                  ('p"\\ /%+ ' + self.canary + ' x').encode()]
        for k, u in enumerate(users):
            self.c.ok("cred.set", {"type": "m_req", "user": u,
                                   "value": values[k]})
            counts["cred.set"] += 1
        messages = []
        for round_ in range(12):
            reqs = [("request", self.request_params(i, users[i % 2])[1])
                    for i in range(round_, round_ + 25)]
            client = self.c if round_ % 2 else second
            for _, m in client.pipeline(reqs):
                counts["request"] += 1
                if m[2] is not None:
                    counts["errors"] += 1
                    messages.append(m[2]["message"])
                    self.error_kinds[m[2]["code"]] = \
                        self.error_kinds.get(m[2]["code"], 0) + 1
                else:
                    counts["scrubbed"] += m[3]["scrubbed"]
                    messages.append(repr(m[3]))
            # A caller that goes before its answers.
            cut = b"".join(pack_request(900 + j, "request", p)
                           for j, (_, p) in enumerate(reqs[:4]))
            self.cut_connection(cut)
            counts["cut"] += 1
        blob = "\n".join(messages).encode()
        for v in values:
            for f in forms_of(v):
                self.assertNotIn(f, blob, "a form of the canary in an "
                                 "answer")
        return counts, second

    def check_counts(self, counts_w):
        self.assertGreaterEqual(counts_w["request"], 300, counts_w)
        msg = "%r, errors by code %r" % (counts_w, self.error_kinds)
        self.assertGreater(counts_w["errors"], 50, msg)
        self.assertGreater(counts_w["scrubbed"], 100, msg)


class MemoryTestBindNow(MemoryTest):
    """The same, with the dynamic linker told to resolve every symbol at
    start (LD_BIND_NOW=1).  Lazy binding is one known way for a value to
    reach the stack (see BindNowTest); this run shows whether anything
    else leaves a copy behind."""

    daemon_kwargs = {"env": {"LD_BIND_NOW": "1"}}


def elf_dynamic(path):
    """The (tag, value) entries of an ELF64 little-endian file's dynamic
    section."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise AssertionError("%s is not a little-endian ELF64 file" % path)
    phoff = struct.unpack_from("<Q", data, 0x20)[0]
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    out = []
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type != 2:         # PT_DYNAMIC
            continue
        for off in range(p_offset, p_offset + p_filesz, 16):
            tag, val = struct.unpack_from("<qQ", data, off)
            if tag == 0:
                break
            out.append((tag, val))
    return out


class BindNowTest(unittest.TestCase):
    """credbrokerd must be linked with immediate binding (-Wl,-z,now).

    With lazy binding, the first call of each imported function goes
    through glibc's _dl_runtime_resolve_xsave(c), which saves the whole
    vector register file (XSAVE: XMM/YMM/ZMM) on the stack to preserve the
    caller's argument registers.  Those registers still hold whatever the
    last memcpy/memmove moved -- a decrypted or rendered value -- and that
    copy stays on the stack, out of reach of every OPENSSL_cleanse
    (SPEC 5.3).  MemoryTest finds such copies; this checks the cause
    deterministically.  (Immediate binding is also ordinary hardening:
    full RELRO.)"""

    def test_daemon_binds_now(self):
        if not cbtest.have_binaries():
            self.fail("credbrokerd not built at %s" % cbtest.DAEMON)
        dyn = elf_dynamic(cbtest.DAEMON)
        self.assertTrue(dyn, "credbrokerd has no dynamic section")
        now = any(tag == 24 for tag, _ in dyn) or \
            any(tag == 30 and val & 0x8 for tag, val in dyn) or \
            any(tag == 0x6ffffffb and val & 0x1 for tag, val in dyn)
        self.assertTrue(now, "credbrokerd is linked for lazy binding (no "
                        "DT_BIND_NOW, DF_BIND_NOW or DF_1_NOW): the first "
                        "call of each imported function saves the vector "
                        "registers, with value bytes in them, on the stack; "
                        "link with -Wl,-z,relro,-z,now")


if __name__ == "__main__":
    cbtest.main()

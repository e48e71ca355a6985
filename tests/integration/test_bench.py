"""
credbroker-bench smoke test: the load generator of docs/performance.md runs
against a real daemon for about a second per workload and reports figures
that hang together.  No wall-clock assertion: throughput and latency depend
on the machine, so only their consistency is checked (counts add up,
percentiles are ordered, every reply was a success and, with --verify,
carried the values that --setup stored).  The request and sub+curl
workloads run against credbroker-bench-httpd.

scripts/bench-compare runs its workloads setting for a fraction of a second
per workload, with the load average read from a file of the test's own
(CB_BENCH_LOADAVG) and read again every 10 ms while it waits for the load
to settle (CB_BENCH_SETTLE_POLL), so that its waits, its refusal on a busy
machine and the marking of --noisy tables do not depend on the machine's
real load and take no real time.  Its backends
setting runs once, briefly, on a PostgreSQL cluster of the test's own
(--pg-conninfo): the table puts SQLite and PostgreSQL side by side, and the
values it seeded are in that database.  Its writes setting runs briefly in
a scratch directory of the test's own (--scratch), on the test's disk and
on /dev/shm (tmpfs, where its targets are not judged).  The verdicts of
the targets are checked on both sides of each threshold with results of
the test's own (CB_BENCH_REPLAY: the report of given results, nothing
measured).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cbtest  # noqa: E402

BENCH = os.path.join(cbtest.BUILD_DIR, "bench", "credbroker-bench")
HTTPD = os.path.join(cbtest.BUILD_DIR, "bench", "credbroker-bench-httpd")
TIMEOUT = 120 * cbtest.SCALE
COMPARE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                       "..", "scripts", "bench-compare")
COMPARE_TIMEOUT = 600 * cbtest.SCALE
# The workloads bench-compare runs in these tests (--workloads): the load
# average rules do not depend on which.
WORKLOADS = ("hello", "sub1")


class BenchTest(cbtest.DaemonTestCase):

    def setUp(self):
        if not os.access(BENCH, os.X_OK):
            self.skipTest("credbroker-bench not built at %s" % BENCH)
        super().setUp()

    def bench(self, *args, expect_rc=0, env=None):
        cmd = [BENCH, "-s", self.d.socket, "--pid", str(self.d.pid)]
        cmd += list(args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT,
                           env=dict(os.environ, **(env or {})))
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, expect_rc,
                         "credbroker-bench %r exited %d\nstdout:\n%s\n"
                         "stderr:\n%s" % (args, p.returncode, out, err))
        return out

    def bench_json(self, *args, expect_rc=0, env=None):
        out = self.bench("--json", *args, expect_rc=expect_rc, env=env)
        lines = [l for l in out.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, out)
        return json.loads(lines[0])

    def assertSane(self, r, workload):
        self.assertEqual(r["workload"], workload)
        self.assertGreater(r["requests"], 0)
        self.assertEqual(r["errors"], 0, r.get("first_error"))
        self.assertEqual(r["verify_failed"], 0, r.get("first_error"))
        self.assertNotIn("first_error", r)
        self.assertGreater(r["seconds"], 0)
        self.assertAlmostEqual(r["rps"], r["requests"] / r["seconds"],
                               delta=r["rps"] * 0.01 + 1)
        lat = r["latency_ms"]
        self.assertGreater(lat["p50"], 0)
        self.assertLessEqual(lat["p50"], lat["p99"])
        self.assertLessEqual(lat["p99"], lat["p999"])
        # Percentiles are bucket middles (1/128 wide); max is exact.
        self.assertLessEqual(lat["p999"], lat["max"] * 1.01 + 1e-6)
        self.assertGreater(lat["mean"], 0)
        d = r["daemon"]
        self.assertEqual(d["pid"], self.d.pid)
        self.assertGreater(d["rss_kib"], 0)
        self.assertGreaterEqual(d["hwm_kib"], d["rss_kib"])
        self.assertGreaterEqual(d["cpu_s"], 0)
        self.assertGreaterEqual(r["client_cpu_s"], 0)

    def minflt(self):
        """The daemon's minor page faults so far (/proc/PID/stat)."""
        with open("/proc/%d/stat" % self.d.pid) as f:
            stat = f.read()
        return int(stat[stat.rindex(")") + 2:].split()[7])

    def test_pipelined_bursts_do_not_fault_the_heap_back_in(self):
        # 50 connections at depth 16: each loop iteration allocates and
        # frees several MiB.  Given back to the kernel after each burst,
        # that memory came back as two or three page faults per call
        # (daemon/main.c, malloc_tune).  Counts, not time: a broker that
        # keeps its heap faults once per page, not once per burst.
        if cbtest.daemon_sanitized():
            self.skipTest("the sanitizers bring their own allocator")
        self.bench("--setup-only", "--users", "1000")
        self.bench("-w", "sub1", "-c", "50", "-P", "16", "-n", "20000",
                   "--warmup", "0", "--users", "1000")
        before = self.minflt()
        r = self.bench_json("-w", "sub1", "-c", "50", "-P", "16", "-n",
                            "40000", "--warmup", "0", "--users", "1000")
        faults = self.minflt() - before
        self.assertSane(r, "sub1")
        self.assertLess(faults / r["requests"], 0.25,
                        "%d page faults in %d calls" % (faults,
                                                        r["requests"]))

    def test_setup_then_substitute_verified(self):
        r = self.bench_json("--setup", "--users", "40", "--types", "5",
                            "-w", "sub1", "-c", "4", "-P", "4", "-d", "1",
                            "--warmup", "0.2", "--verify")
        self.assertEqual(r["setup"], {"values": 200, "seconds":
                                      r["setup"]["seconds"], "errors": 0})
        self.assertSane(r, "sub1")
        self.assertIn("-w sub1", r["command"])
        self.assertGreaterEqual(r["machine"]["nproc"], 1)
        self.assertTrue(r["machine"]["arch"])
        # What --setup stored is what the broker holds.
        st = self.c.ok("cred.status", {"user": "00000000-0000-4000-8000-"
                                       "000000000000"})
        idents = sorted(e["ident"] for e in st)
        self.assertEqual(idents, ["bench_t%d" % k for k in range(1, 6)])
        self.assertFalse(any(e["filled"] for e in st))

    def test_every_workload(self):
        self.bench("--setup-only", "--users", "20", "--types", "5")
        for w in ("hello", "status", "sub1", "sub5", "mix"):
            with self.subTest(workload=w):
                r = self.bench_json("-w", w, "--users", "20", "-c", "3",
                                    "-P", "2", "-n", "150", "--warmup", "0",
                                    "--verify")
                self.assertSane(r, w)
                self.assertGreaterEqual(r["requests"], 150)
                if w == "mix":
                    by = r["by_method"]
                    self.assertEqual(by["substitute"] + by["cred.set"],
                                     r["requests"])

    def test_text_output(self):
        self.bench("--setup-only", "--users", "5", "--types", "1")
        out = self.bench("-w", "sub1", "--users", "5", "--types", "1",
                         "-c", "2", "-d", "0.5", "--warmup", "0")
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith("# " + BENCH), out)
        self.assertTrue(lines[1].startswith("# machine: "), out)
        for word in ("throughput", "latency", "daemon", "client",
                     "machine", "memory"):
            self.assertTrue(any(l.startswith(word) for l in lines),
                            "no %s line in:\n%s" % (word, out))

    def test_machine_steal_and_idle_and_the_daemon_reads_per_request(self):
        # One connection at depth 1: the daemon reads each hello with a
        # read(2) of its own, so there is at least one per request, and
        # a handful at most (the read that finds the socket empty).
        r = self.bench_json("-w", "hello", "-c", "1", "-P", "1", "-n",
                            "2000", "--warmup", "0")
        self.assertSane(r, "hello")
        m = r["machine"]
        for k in ("steal_pct", "idle_pct"):
            self.assertGreaterEqual(m[k], 0, r)
            self.assertLessEqual(m[k], 100, r)
        self.assertLessEqual(m["steal_pct"] + m["idle_pct"], 100.01, r)
        reads = r["daemon"]["reads_per_request"]
        self.assertGreaterEqual(reads, 0.9, r)
        self.assertLess(reads, 10, r)

    def test_machine_shares_come_from_two_proc_stat_readings(self):
        # Over the window: user 1000, nice 100, system 400, idle 3000,
        # iowait 500, steal 1000 of 6000 ticks; guest (50) is counted in
        # user already and adds nothing.
        f = os.path.join(self.d.dir, "proc-stat")
        with open(f, "w") as fh:
            fh.write("cpu  1000 0 500 7000 500 0 0 1000 0 0\n"
                     "cpu  2000 100 900 10000 1000 0 0 2000 50 0\n")
        env = {"CB_BENCH_PROC_STAT": f}
        args = ("-w", "hello", "-c", "1", "-n", "50", "--warmup", "0")
        r = self.bench_json(*args, env=env)
        self.assertEqual(r["machine"]["steal_pct"], 16.67, r)
        self.assertEqual(r["machine"]["idle_pct"], 58.33, r)
        out = self.bench(*args, env=env)
        self.assertRegex(out, r"(?m)^machine +steal 16\.7%, idle 58%; "
                         r"daemon [0-9.]+ reads/request$")
        # Readings that do not make a window are unknown, not a failure.
        with open(f, "w") as fh:
            fh.write("cpu  1000 0 500 7000 500 0 0 1000 0 0\n")
        r = self.bench_json(*args, env=env)
        self.assertIsNone(r["machine"]["steal_pct"], r)
        self.assertIsNone(r["machine"]["idle_pct"], r)

    def test_idle_connections(self):
        r = self.bench_json("-w", "none", "--idle", "30")
        self.assertEqual(r["idle"]["connections"], 30)
        self.assertEqual(r["idle"]["answered"], 30)
        self.assertEqual(r["idle"]["lost"], 0)
        self.assertGreater(r["idle"]["rss_after_kib"], 0)
        self.assertNotIn("requests", r)

    def test_errors_are_reported(self):
        # No --setup: the types do not exist, so every substitution fails.
        r = self.bench_json("-w", "sub1", "-c", "2", "-n", "20",
                            "--warmup", "0", expect_rc=1)
        self.assertGreater(r["errors"], 0)
        self.assertIn("not_found", r["first_error"])
        self.assertIn("substitute", r["first_error"])

    def start_httpd(self):
        """credbroker-bench-httpd on a free port; returns its origin."""
        if not os.access(HTTPD, os.X_OK):
            self.skipTest("credbroker-bench-httpd not built at %s" % HTTPD)
        p = subprocess.Popen([HTTPD], stdout=subprocess.PIPE)
        self.addCleanup(p.wait, 30)
        self.addCleanup(p.terminate)
        port = int(p.stdout.readline())
        p.stdout.close()
        return "http://127.0.0.1:%d" % port

    def test_request_and_sub_curl_workloads(self):
        # About a second each: the broker sends the GET itself (request),
        # or the client sends the substituted GET with libcurl
        # (sub+curl), to the same keep-alive service.
        target = self.start_httpd()
        self.bench("--setup-only", "--users", "20", "--types", "1",
                   "--target", target)
        t = self.c.ok("type.get", {"type": "bench_t1"})
        self.assertEqual(t["destinations"], ["https://api.example.com",
                                             target])
        for w in ("request", "sub+curl"):
            with self.subTest(workload=w):
                r = self.bench_json("-w", w, "--target", target,
                                    "--users", "20", "--types", "1",
                                    "-c", "4", "-P", "2", "-d", "1",
                                    "--warmup", "0.2", "--verify")
                self.assertSane(r, w)
                self.assertEqual(r["target"], target)

    def test_sub_curl_counts_failed_http_requests(self):
        # Nothing listens on the target: every substitution succeeds and
        # every HTTP request fails, and each counts as an error.
        closed = "http://127.0.0.1:1"
        self.bench("--setup-only", "--users", "5", "--types", "1",
                   "--target", closed)
        r = self.bench_json("-w", "sub+curl", "--target", closed,
                            "--users", "5", "--types", "1", "-c", "2",
                            "-n", "10", "--warmup", "0", expect_rc=1)
        self.assertGreaterEqual(r["errors"], 10)
        self.assertEqual(r["verify_failed"], 0)
        self.assertIn("substitute+curl: ", r["first_error"])

    def test_usage_errors(self):
        for args in (["-w", "nope"], ["-c", "0"], ["-w", "sub5",
                                                     "--types", "2"],
                     ["-w", "request"], ["-w", "sub+curl"],
                     ["-w", "request", "--target", "https://x/"]):
            with self.subTest(args=args):
                p = subprocess.run([BENCH, "-s", self.d.socket] + args,
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=30)
                self.assertEqual(p.returncode, 2, args)


class BenchCompareCase(unittest.TestCase):
    """scripts/bench-compare, run in the release build only: what these
    tests check is the script's own rules and report, and figures taken
    under the sanitizers mean nothing (the broker's code runs under them
    in every other suite)."""

    def setUp(self):
        for f in (BENCH, cbtest.DAEMON, cbtest.CREDCTL):
            if not os.access(f, os.X_OK):
                self.skipTest("%s not built" % f)
        if cbtest.daemon_sanitized():
            self.skipTest("bench-compare is tested in the release build")
        self.tmp = tempfile.TemporaryDirectory(prefix="cbcmp.")
        self.addCleanup(self.tmp.cleanup)

    def run_compare(self, args, loads=("0.10",), rest="0.10 0.10 1/100 1",
                    env=None, timeout=COMPARE_TIMEOUT):
        """Runs bench-compare with ARGS, its load average readings served
        from a file (CB_BENCH_LOADAVG): one line per reading, the
        1-minute figure from LOADS and the rest of the line REST (the
        last line serves every later reading).  ENV adds to the
        environment.  Its exit status, stdout and stderr."""
        f = os.path.join(self.tmp.name, "loadavg")
        with open(f, "w") as fh:
            for l in loads:
                fh.write("%s %s\n" % (l, rest))
        # The host's real steal would make bench-compare take runs again,
        # each with readings of the load average of its own, so that the
        # sequences of readings these tests serve would no longer match
        # the runs: unless a test gives readings of its own, every run
        # sees none.
        e = dict(os.environ, CB_BENCH_LOADAVG=f, PYTHON=sys.executable)
        e.update(env or {})
        if "CB_BENCH_PROC_STAT" not in e:
            quiet = os.path.join(self.tmp.name, "no-steal")
            os.makedirs(quiet, exist_ok=True)
            e["CB_BENCH_PROC_STAT"] = proc_stat_file(quiet, [0])
        p = subprocess.run([COMPARE, "--build-dir", cbtest.BUILD_DIR] +
                           list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=e, timeout=timeout)
        return (p.returncode, p.stdout.decode("utf-8", "replace"),
                p.stderr.decode("utf-8", "replace"))


class BenchCompareLoadTest(BenchCompareCase):
    """bench-compare and the load average (the workloads setting only: it
    needs no redis)."""

    def compare(self, loads, *args):
        """Runs bench-compare with the 1-minute load averages LOADS served
        one per reading (the last one from then on): the first at the
        start, then for each run one as it begins (and one per poll while
        it waits for the load to settle) and one after it, and the last
        at the end.  The runs, in order: hello, sub1 and sub1 with
        log.level=warning at P=1, then the same at P=16."""
        return self.run_compare(
            ["--no-build", "--only", "workloads", "-d", "0.3", "--warmup",
             "0", "--workloads", ",".join(WORKLOADS), "--users", "50"] +
            list(args), loads, rest="0.40 0.30 2/345 6789",
            env={"CB_BENCH_SETTLE_POLL": "0.01"})

    def workload_table(self, out):
        """The workloads table: its header and rows as lists of cells,
        and the lines between its title and its header."""
        rows, pre = table_cells(self, out, "every workload")
        return rows[0], rows[1:], pre

    def assertEveryRow(self, out, before, after):
        header, rows, pre = self.workload_table(out)
        cpu = header.index("broker CPU us/req")
        ld = header.index("load 1 min before/after")
        labels = [r[0] for r in rows]
        for w in WORKLOADS:
            for p in ("1", "16"):
                self.assertIn("%s P=%s" % (w, p), labels, out)
        for w in ("status", "sub5", "mix"):
            self.assertNotIn("%s P=1" % w, labels, out)
        for r in rows:
            self.assertEqual(len(r), len(header), out)
            # A figure in every row; a run of 0.3 s on a slow (sanitized)
            # build may complete no request, and then it is 0.0.
            self.assertGreaterEqual(float(r[cpu]), 0, out)
            self.assertEqual(r[ld], "%s/%s" % (before, after), out)
        return pre

    def load_column(self, out):
        """The load column of the workloads table, by row label."""
        header, rows, pre = self.workload_table(out)
        ld = header.index("load 1 min before/after")
        return {r[0]: r[ld] for r in rows}

    def ran(self, err, label):
        """Whether bench-compare reported a run of LABEL on stderr."""
        return re.search(r"^bench-compare: +credbroker %s +[0-9]+ req/s" %
                         re.escape(label), err, re.M) is not None

    def test_bench_compare_refuses_on_a_busy_machine_without_noisy(self):
        rc, out, err = self.compare(["0.93"], "--settle", "0")
        self.assertEqual(rc, 3, err)
        self.assertIn("load average 0.93 at the start is above 0.5", err)
        self.assertIn("--noisy", err)
        self.assertNotIn("waiting", err)
        self.assertNotIn("ratio", out)
        self.assertNotIn("###", out)

    def test_bench_compare_its_own_load_after_each_run_neither_refuses_nor_marks(self):
        # Quiet at the start and as every run begins, busy after every
        # run and at the end: what a 2-core machine does by itself.
        runs = len(WORKLOADS) * 2 + 2
        rc, out, err = self.compare(["0.10"] + ["0.20", "0.90"] * runs +
                                    ["0.90"])
        self.assertEqual(rc, 0, err)
        self.assertNotIn("busy machine", out)
        self.assertNotIn("waiting", err)
        self.assertIn("at the start 0.10 0.40 0.30, at the end 0.90 0.40 "
                      "0.30", out)
        self.assertEveryRow(out, "0.20", "0.90")

    def test_bench_compare_waits_for_the_load_to_fall_at_the_start_and_before_a_run(self):
        # The start waits through 0.93 and begins at 0.20; hello P=1
        # begins at 0.20 and leaves 0.80; sub1 P=1 waits through 0.80 and
        # 0.70 and begins at 0.40.
        rc, out, err = self.compare(["0.93", "0.93", "0.20", "0.20", "0.80",
                                     "0.80", "0.70", "0.40"])
        self.assertEqual(rc, 0, err)
        self.assertIn("load average 0.93 at the start is above 0.5: "
                      "waiting up to 120 s", err)
        self.assertIn("load average 0.20 at the start after waiting", err)
        self.assertIn("load average 0.80 before workloads sub1 P=1 is above "
                      "0.5: waiting up to 120 s", err)
        self.assertIn("load average 0.40 before workloads sub1 P=1 after "
                      "waiting", err)
        self.assertEqual(err.count("waiting up to"), 2, err)
        self.assertNotIn("busy machine", out)
        # What the start and each run began with is the reading that
        # ended the wait.
        self.assertIn("at the start 0.20 0.40 0.30", out)
        loads = self.load_column(out)
        self.assertEqual(loads["hello P=1"], "0.20/0.80", out)
        self.assertEqual(loads["sub1 P=1"], "0.40/0.40", out)

    def test_bench_compare_refuses_a_run_the_load_does_not_settle_before(self):
        rc, out, err = self.compare(["0.10", "0.10", "0.80"], "--settle",
                                    "0.3")
        self.assertEqual(rc, 3, err)
        m = re.search(r"load average 0\.80 before workloads sub1 P=1 is "
                      r"still above 0\.5 after waiting ([0-9.]+) s: no ratio",
                      err)
        self.assertIsNotNone(m, err)
        self.assertGreaterEqual(float(m.group(1)), 0.3, err)
        self.assertIn("--settle", err)
        self.assertIn("--noisy", err)
        self.assertTrue(self.ran(err, "hello P=1"), err)
        self.assertFalse(self.ran(err, "sub1 P=1"), err)
        self.assertNotIn("###", out)

    def test_bench_compare_settle_0_refuses_a_busy_run_without_waiting(self):
        rc, out, err = self.compare(["0.10", "0.10", "0.10", "0.80", "0.10"],
                                    "--settle", "0")
        self.assertEqual(rc, 3, err)
        self.assertIn("load average 0.80 before workloads sub1 P=1 is above "
                      "0.5: no ratio", err)
        self.assertNotIn("waiting", err)
        self.assertFalse(self.ran(err, "sub1 P=1"), err)
        self.assertNotIn("###", out)

    def test_bench_compare_noisy_goes_on_after_the_wait_and_marks_the_table(self):
        rc, out, err = self.compare(["0.10", "0.10", "0.80"], "--noisy",
                                    "--settle", "0.1")
        self.assertEqual(rc, 0, err)
        self.assertIn("load average 0.80 before workloads sub1 P=1 is still "
                      "above 0.5 after waiting", err)
        self.assertIn("going on (--noisy)", err)
        header, rows, pre = self.workload_table(out)
        self.assertTrue(any("busy machine" in l and "0.10 to 0.80 as the "
                            "runs began" in l for l in pre), out)
        loads = self.load_column(out)
        self.assertEqual(loads["hello P=1"], "0.10/0.80", out)
        for label, ld in loads.items():
            if label != "hello P=1":
                self.assertEqual(ld, "0.80/0.80", (label, out))

    def test_bench_compare_noisy_marks_tables_taken_on_a_busy_machine(self):
        rc, out, err = self.compare(["0.93"], "--noisy", "--settle", "0")
        self.assertEqual(rc, 0, err)
        self.assertIn("load average (1, 5, 15 min) at the start 0.93 0.40 "
                      "0.30", out)
        pre = self.assertEveryRow(out, "0.93", "0.93")
        self.assertTrue(any("busy machine" in l and "0.93" in l and
                            "0.5" in l for l in pre), out)

    def test_bench_compare_rss_holds_1000_idle_connections_of_one_uid(self):
        # The rss setting, run briefly: its broker must take the 1,000
        # idle connections that one uid opens (server.max_connections_per_uid
        # defaults to 128) and judge the run.
        rc, out, err = self.run_compare(["--no-build", "--only", "rss",
                                         "-d", "0.3", "--warmup", "0"])
        self.assertEqual(rc, 0, err)
        rows, pre = table_rows(self, out, "memory:")
        self.assertEqual(len(rows), 1, out)
        self.assertIn(rows[0][""], ("met", "MISSED"), out)
        self.assertNotIn("idle connections answered", err)

    def test_bench_compare_request_table_has_the_load_column(self):
        if not os.access(HTTPD, os.X_OK):
            self.skipTest("credbroker-bench-httpd not built at %s" % HTTPD)
        rc, out, err = self.compare(["0.10", "0.20", "0.30"], "--only",
                                    "request", "--rounds", "1")
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        title = [i for i, l in enumerate(lines)
                 if l.startswith("### the broker sends the request")]
        self.assertEqual(len(title), 1, out)
        rows = [[x.strip() for x in l.strip("|").split("|")]
                for l in lines[title[0] + 1:]
                if l.startswith("| ") and not l.startswith("|---")]
        header, body = rows[0], rows[1:]
        self.assertEqual(header[-1], "load 1 min before/after", out)
        self.assertEqual([r[0] for r in body[:2]], ["request", "sub+curl"],
                         out)
        # request begins at 0.20, and every later reading is 0.30.
        self.assertEqual(body[0][-1], "0.20/0.30", out)
        self.assertEqual(body[1][-1], "0.30/0.30", out)
        self.assertNotIn("busy machine", out)

    def steal_runs(self, steal_pcts, *args):
        """Runs bench-compare (hello only) with each run's /proc/stat
        readings served from a file (CB_BENCH_PROC_STAT): the Nth run
        takes a window whose steal is the Nth of STEAL_PCTS (the last one
        from then on).  The runs, in order: hello and sub1 with
        log.level=warning at P=1, then the same at P=16."""
        f = proc_stat_file(self.tmp.name, steal_pcts)
        return self.run_compare(
            ["--no-build", "--only", "workloads", "-d", "0.3", "--warmup",
             "0", "--workloads", "hello", "--users", "20"] + list(args),
            env={"CB_BENCH_PROC_STAT": f})

    def runs_of(self, err, label):
        """How many runs of LABEL bench-compare reported on stderr."""
        return len(re.findall(r"(?m)^bench-compare: +credbroker %s +[0-9]+ "
                              r"req/s.* steal " % re.escape(label), err))

    def test_bench_compare_takes_a_run_above_the_steal_limit_again(self):
        # hello P=1 sees 12% then 3%: taken once more, the second kept;
        # every later run sees 3%.
        rc, out, err = self.steal_runs([12, 3])
        self.assertEqual(rc, 0, err)
        self.assertIn("steal 12.0% during workloads hello P=1 is above 5%: "
                      "running it again (1 of 2)", err)
        self.assertEqual(err.count("running it again"), 1, err)
        self.assertEqual(self.runs_of(err, "hello P=1"), 2, err)
        self.assertEqual(self.runs_of(err, "hello P=16"), 1, err)
        self.assertRegex(err, r"(?m)^bench-compare: +credbroker hello P=1 "
                         r".* steal 12\.0%$")
        rows, pre = table_rows(self, out, "every workload")
        steal = {r["workload"]: r["steal % max"] for r in rows}
        self.assertEqual(steal, {"hello P=1": "3.0", "hello P=16": "3.0",
                                 "sub1 P=1 log.level=warning": "3.0",
                                 "sub1 P=16 log.level=warning": "3.0"}, out)
        self.assertNotIn("Taken while the host took", out)

    def test_bench_compare_keeps_the_third_run_above_the_steal_limit_and_marks_it(self):
        # Every run sees 9%: each is taken three times, the last kept, and
        # nothing is refused.  --steal-max 10 takes each once.
        rc, out, err = self.steal_runs([9])
        self.assertEqual(rc, 0, err)
        for label in ("hello P=1", "hello P=16",
                      "sub1 P=1 log.level=warning"):
            self.assertEqual(self.runs_of(err, label), 3, err)
        self.assertEqual(err.count("running it again (2 of 2)"), 4, err)
        self.assertEqual(err.count("in the third run too: keeping it"), 4,
                         err)
        rows, pre = table_rows(self, out, "every workload")
        self.assertTrue(any(l.startswith("**Taken while the host took more "
                                         "than 5% of the machine's CPU**: "
                                         "steal 9.0% to 9.0% in 4 of the 4 "
                                         "runs") for l in pre), out)
        for r in rows:
            self.assertEqual(r["steal % max"], "9.0", out)
        rc, out, err = self.steal_runs([9], "--steal-max", "10")
        self.assertEqual(rc, 0, err)
        self.assertNotIn("running it again", err)
        self.assertEqual(self.runs_of(err, "hello P=1"), 1, err)
        self.assertNotIn("Taken while the host took", out)

    def test_bench_compare_refuses_a_steal_max_that_is_not_a_percentage(self):
        for v in ("abc", "-1", ""):
            with self.subTest(steal_max=v):
                rc, out, err = self.compare(["0.10"], "--steal-max", v)
                self.assertEqual(rc, 2, err)
                self.assertIn("--steal-max", err)
                self.assertNotIn("###", out)

    def test_bench_compare_refuses_a_settle_that_is_not_seconds(self):
        for v in ("abc", "-1", "1.2.3", ""):
            with self.subTest(settle=v):
                rc, out, err = self.compare(["0.10"], "--settle", v)
                self.assertEqual(rc, 2, err)
                self.assertIn("--settle", err)
                self.assertNotIn("###", out)


class BenchCompareTargetTest(BenchCompareCase):
    """bench-compare's table of targets 1 and 2 (the p1 setting: it needs
    redis, which scripts/install-deps installs)."""

    def setUp(self):
        super().setUp()
        for tool in ("redis-server", "redis-benchmark", "redis-cli"):
            self.assertIsNotNone(shutil.which(tool), "%s is missing: "
                                 "scripts/install-deps installs it" % tool)

    def test_bench_compare_p1_target_is_a_p99_of_1_ms(self):
        rc, out, err = self.run_compare(
            ["--no-build", "--only", "p1", "-d", "0.3", "--warmup", "0",
             "--rounds", "1", "--users", "50"])
        self.assertEqual(rc, 0, err)
        rows = [[x.strip() for x in l.strip("|").split("|")]
                for l in out.splitlines()
                if l.startswith("| ") and not l.startswith("|---")]
        self.assertGreater(len(rows), 1, out)
        header = rows[0]
        p1 = [dict(zip(header, r)) for r in rows[1:]
              if r[0] == "50 conns, P=1"]
        self.assertEqual(len(p1), 1, out)
        r = p1[0]
        self.assertEqual(r["target"], ">= 0.9x, p99 <= 1 ms", out)
        # The verdict follows that target (away from the rounding of the
        # printed figures).
        ratio, p99 = float(r["ratio"].rstrip("x")), float(r["p99 ms"])
        if abs(ratio - 0.9) > 0.01 and abs(p99 - 1.0) > 0.001:
            self.assertEqual(r[""], "met" if ratio >= 0.9 and p99 <= 1.0
                             else "MISSED", out)

    def test_bench_compare_reads_steal_around_redis_benchmark(self):
        # The redis run sees 8% then 2%: taken again, the second kept;
        # the broker's run sees 2%.
        f = proc_stat_file(self.tmp.name, [8, 2])
        rc, out, err = self.run_compare(
            ["--no-build", "--only", "p1", "-d", "0.3", "--warmup", "0",
             "--rounds", "1", "--users", "50", "--keep"],
            env={"CB_BENCH_PROC_STAT": f})
        scratch = re.search(r"scratch (/\S+);", err)
        self.assertIsNotNone(scratch, err)
        self.addCleanup(shutil.rmtree, scratch.group(1), True)
        self.assertEqual(rc, 0, err)
        self.assertIn("steal 8.0% during p1 redis is above 5%: running it "
                      "again (1 of 2)", err)
        self.assertEqual(len(re.findall(r"(?m)^bench-compare: +redis GET "
                                        r"redis .* steal 8\.0%$", err)), 1,
                         err)
        self.assertEqual(err.count("running it again"), 1, err)
        with open(os.path.join(scratch.group(1), "results.jsonl")) as fh:
            res = {r["label"]: r for r in map(json.loads, fh)}
        self.assertEqual(res["redis"]["machine"],
                         {"steal_pct": 2.0, "idle_pct": 78.0})
        self.assertEqual(res["redis"]["steal_retried"], [8.0])
        self.assertEqual(res["sub1"]["machine"]["steal_pct"], 2.0)
        self.assertNotIn("steal_retried", res["sub1"])
        rows, pre = table_rows(self, out, "substitute (1 placeholder")
        self.assertEqual(rows[0]["steal % max"], "2.0", out)


def proc_stat_file(d, steal_pcts):
    """A file for CB_BENCH_PROC_STAT in D: for each of STEAL_PCTS, two
    "cpu" lines 10,000 ticks apart, of which user 2,000, that percentage
    steal and the rest idle.  Its name."""
    f = os.path.join(d, "proc-stat")
    with open(f, "w") as fh:
        for st in steal_pcts:
            fh.write("cpu  1000 0 0 50000 0 0 0 100 0 0\n")
            fh.write("cpu  3000 0 0 %d 0 0 0 %d 0 0\n" %
                     (58000 - st * 100, 100 + st * 100))
    return f


def table_cells(testcase, out, title):
    """The one table of OUT whose title starts with TITLE: its header and
    rows as lists of cells, and the lines between its title and its
    header."""
    lines = out.splitlines()
    at = [i for i, l in enumerate(lines) if l.startswith("### " + title)]
    testcase.assertEqual(len(at), 1, "no one %r table in:\n%s"
                         % (title, out))
    pre, rows = [], []
    for l in lines[at[0] + 1:]:
        if l.startswith("|---"):
            continue
        if l.startswith("| "):
            rows.append([c.strip() for c in l.strip("|").split("|")])
        elif rows:
            break
        else:
            pre.append(l)
    testcase.assertGreater(len(rows), 1, out)
    return rows, pre


def table_rows(testcase, out, title):
    """The table of OUT whose title starts with TITLE: its rows as dicts
    by header, and the lines between its title and its header."""
    rows, pre = table_cells(testcase, out, title)
    header = rows[0]
    testcase.assertEqual(len(set(header)), len(header), header)
    for r in rows[1:]:
        testcase.assertEqual(len(r), len(header), out)
    return [dict(zip(header, r)) for r in rows[1:]], pre


class BenchCompareReplayTest(BenchCompareCase):
    """The verdicts of the Performance issue's targets, on either side of
    each threshold: bench-compare reports results of the test's own
    (CB_BENCH_REPLAY) and measures nothing."""

    def result(self, setting, label, rnd=1, rps=1000.0, p50=0.1, p99=0.5,
               p999=0.9, cpu=3.0, hwm_mib=20.0, seconds=10.0, sets=None,
               errors=0, load=0.10, steal=None, reads=None):
        r = {"setting": setting, "label": label, "round": rnd,
             "command": "credbroker-bench %s %s" % (setting, label),
             "rps": rps, "requests": int(rps * seconds), "errors": errors,
             "seconds": seconds,
             "latency_ms": {"p50": p50, "p99": p99, "p999": p999,
                            "max": p999 * 2, "mean": p50},
             "daemon": {"cpu_us_per_request": cpu,
                        "hwm_kib": int(hwm_mib * 1024)},
             "load_before": load, "load_after": 0.9}
        if steal is not None:
            r["machine"] = {"steal_pct": steal, "idle_pct": 40.0}
        if reads is not None:
            r["daemon"]["reads_per_request"] = reads
        if sets is not None:
            r["by_method"] = {"cred.set": int(sets * seconds),
                              "substitute": int((rps - sets) * seconds)}
        return r

    def report(self, results, *args):
        f = os.path.join(self.tmp.name, "results.jsonl")
        with open(f, "w") as fh:
            for r in results:
                fh.write(json.dumps(r) + "\n")
        rc, out, err = self.run_compare(args, env={"CB_BENCH_REPLAY": f},
                                        timeout=60)
        self.assertEqual(rc, 0, err)
        # Nothing was measured: no broker started, no run.
        self.assertNotIn("setting ", err)
        return out

    def redis_table(self, p1_cpu, p16_cpu, p1_p99=0.5, p16_ratio=0.6):
        res = []
        for rnd in (1, 2, 3):
            res.append(self.result("p1", "redis", rnd, rps=100000, cpu=3))
            res.append(self.result("p1", "sub1", rnd, rps=95000,
                                   p99=p1_p99, cpu=p1_cpu[rnd - 1]))
            res.append(self.result("p16", "redis", rnd, rps=1000000,
                                   cpu=0.7))
            res.append(self.result("p16", "sub1", rnd,
                                   rps=1000000 * p16_ratio,
                                   cpu=p16_cpu[rnd - 1]))
        rows, pre = table_rows(self, self.report(res), "substitute (1 "
                               "placeholder, SQLite) against redis GET")
        return {r["setting"]: r for r in rows}

    def test_bench_compare_p16_judges_broker_cpu_per_request_of_4_us(self):
        # The median of the rounds is judged: 3.9 met, 4.1 missed.
        for cpus, verdict in (([3.9, 6.0, 3.1], "met"),
                              ([4.1, 2.0, 4.5], "MISSED")):
            with self.subTest(cpus=cpus):
                t = self.redis_table([9.0, 9.0, 9.0], cpus)
                p16 = t["50 conns, P=16"]
                self.assertEqual(p16["broker CPU target"], "<= 4 us/req")
                self.assertEqual(p16["broker CPU us/req"],
                                 "%.1f" % sorted(cpus)[1])
                self.assertEqual(p16["CPU verdict"], verdict, t)
                # The ratio has its own verdict: 0.6x against 0.5x.
                self.assertEqual(p16["target"], ">= 0.5x")
                self.assertEqual(p16[""], "met", t)
                # At depth 1 the issue sets no CPU target.
                p1 = t["50 conns, P=1"]
                self.assertEqual(p1["broker CPU target"], "-")
                self.assertEqual(p1["CPU verdict"], "-")

    def test_bench_compare_p16_ratio_and_p1_targets_are_judged_apart_from_cpu(self):
        t = self.redis_table([1.0] * 3, [1.0] * 3, p1_p99=1.2,
                             p16_ratio=0.45)
        self.assertEqual(t["50 conns, P=16"][""], "MISSED", t)
        self.assertEqual(t["50 conns, P=16"]["CPU verdict"], "met", t)
        self.assertEqual(t["50 conns, P=1"]["target"],
                         ">= 0.9x, p99 <= 1 ms")
        self.assertEqual(t["50 conns, P=1"][""], "MISSED", t)
        t = self.redis_table([1.0] * 3, [1.0] * 3, p1_p99=0.9)
        self.assertEqual(t["50 conns, P=1"][""], "met", t)

    def test_bench_compare_marks_a_table_that_kept_a_run_above_the_steal_limit(self):
        res = []
        for rnd, st in ((1, 0.5), (2, 7.3)):
            res.append(self.result("scale-p1", "1k", rnd, steal=st,
                                   reads=1.5))
            res.append(self.result("scale-p1", "big", rnd, steal=0.2,
                                   reads=3.0 + rnd))
            res.append(self.result("request", "request", rnd, steal=4.9))
            res.append(self.result("request", "sub+curl", rnd, steal=1.0))
        mark = ("**Taken while the host took more than 5%% of the machine's "
                "CPU**: steal 7.3%% to 7.3%% in 1 of the %d runs")
        out = self.report(res)
        # The report's opening counts every run, the table its own.
        self.assertIn(mark % 8, out.split("###")[0], out)
        rows, pre = table_rows(self, out, "scale:")
        self.assertTrue(any(l.startswith(mark % 4) for l in pre), out)
        self.assertEqual(len(rows), 1, out)
        self.assertEqual(rows[0]["steal % max"], "7.3", out)
        # Each broker's read system calls per request, the median of its
        # rounds.
        self.assertEqual(rows[0]["1k reads/request"], "1.50", out)
        self.assertEqual(rows[0]["big reads/request"], "4.50", out)
        rows, pre = table_rows(self, out, "the broker sends the request")
        self.assertEqual([r["steal % max"] for r in rows], ["4.9", "1.0"],
                         out)
        self.assertFalse(any("Taken while the host" in l for l in pre), out)
        # Under a higher limit nothing is marked.
        out = self.report(res, "--steal-max", "7.5")
        self.assertNotIn("Taken while the host", out)
        rows, pre = table_rows(self, out, "scale:")
        self.assertEqual(rows[0]["steal % max"], "7.3", out)

    def writes(self, statfs="ext2/ext3", mount="ext4", mix_p999=(4.9,),
               sets=(10100,), set_errors=0):
        res = [{"setting": "writes", "label": "fs", "round": 0,
                "dir": "/var/tmp/cbbench.x", "statfs": statfs,
                "mount": mount, "journal": "WAL", "synchronous": "FULL"}]
        for rnd, (a, b) in enumerate(zip(mix_p999, sets), 1):
            res.append(self.result("writes", "mix P=16", rnd, rps=50000,
                                   p999=a, sets=5000))
            res.append(self.result("writes", "cred.set P=1", rnd, rps=b,
                                   sets=b, errors=set_errors))
        rows, pre = table_rows(self, self.report(res), "durable writes")
        return {r["workload"].split(",")[0]: r for r in rows}

    def test_bench_compare_writes_mix_target_is_a_p999_of_5_ms(self):
        for p999, verdict in (((4.9, 7.0, 2.0), "met"),
                              ((5.1, 1.0, 6.0), "MISSED")):
            with self.subTest(p999=p999):
                t = self.writes(mix_p999=p999, sets=(12000,) * 3)
                mix = t["mix (90% sub1"]
                self.assertEqual(mix["target"], "p99.9 <= 5 ms")
                self.assertEqual(mix["p99.9 ms"], "%.3f" % sorted(p999)[1])
                self.assertEqual(mix[""], verdict, t)
                self.assertEqual(mix["cred.set/s"], "5000")
                self.assertEqual(mix["rounds"], "3")
                self.assertEqual(t["cred.set only"][""], "met", t)

    def test_bench_compare_writes_needs_10000_durable_sets_per_second(self):
        for sets, errors, verdict in (((10100, 9000, 11000), 0, "met"),
                                      ((9900, 12000, 9000), 0, "MISSED"),
                                      ((20000, 20000, 20000), 1, "MISSED")):
            with self.subTest(sets=sets, errors=errors):
                t = self.writes(mix_p999=(1.0,) * 3, sets=sets,
                                set_errors=errors)
                w = t["cred.set only"]
                self.assertEqual(w["target"], ">= 10,000 cred.set/s")
                self.assertEqual(w["cred.set/s"], "%d" % sorted(sets)[1])
                self.assertEqual(w["errors"], "%d" % (3 * errors))
                self.assertEqual(w[""], verdict, t)
                self.assertEqual(t["mix (90% sub1"][""], "met", t)

    def test_bench_compare_writes_are_not_judged_on_tmpfs(self):
        for statfs, mount, shown in (("tmpfs", "tmpfs", "tmpfs"),
                                     ("ramfs", "ramfs", "ramfs"),
                                     ("ext2/ext3", "ext4",
                                      "ext4 (statfs: ext2/ext3)")):
            with self.subTest(statfs=statfs):
                # Figures that meet both targets.
                t = self.writes(statfs=statfs, mount=mount)
                for r in t.values():
                    self.assertEqual(r["file system"], shown, t)
                    self.assertEqual(r["commits"], "WAL, synchronous=FULL")
                    self.assertEqual(r[""], "met" if statfs == "ext2/ext3"
                                     else "not judged: " + statfs, t)

    def test_bench_compare_scale_judges_the_default_broker_at_090_and_64_mib(self):
        for ratio, hwm, verdict in ((0.91, 63.0, "met"), (0.89, 30.0, "MISSED"),
                                    (0.95, 65.0, "MISSED")):
            with self.subTest(ratio=ratio, hwm=hwm):
                res = []
                for p in ("1", "16"):
                    for rnd in (1, 2):
                        res.append(self.result("scale-p" + p, "1k", rnd,
                                               rps=10000))
                        # The peak is the largest VmHWM read.
                        res.append(self.result(
                            "scale-p" + p, "big", rnd, rps=10000 * ratio,
                            hwm_mib=hwm if (p, rnd) == ("16", 2) else 9))
                        res.append(self.result("scale-p" + p, "bigmap", rnd,
                                               rps=3000, hwm_mib=900))
                rows, pre = table_rows(self, self.report(res), "scale:")
                for r in rows:
                    if r["mmap_mb"] == "off":
                        self.assertEqual(r["target"],
                                         ">= 0.90, peak RSS <= 64 MiB")
                        if r["depth"] == "P=16":
                            self.assertEqual(r["big peak RSS MiB"],
                                             "%.1f" % hwm)
                            self.assertEqual(r[""], verdict, rows)
                    else:
                        # The mapped broker is for information: its 0.30
                        # and 900 MiB decide nothing.
                        self.assertEqual(r["target"], "none (information)")
                        self.assertEqual(r[""], "-", rows)
                self.assertEqual(len(rows), 4, rows)

    def test_bench_compare_rss_judges_only_a_run_without_errors(self):
        # 1,000 idle connections (bench-compare's default): a run in which
        # some were refused, or calls failed, measured a smaller broker
        # than asked, and its peak of 20 MiB must not be called met.
        for errors, answered, lost, verdict in (
                (0, 1000, 0, "met"), (0, 128, 0, "NOT JUDGED"),
                (0, 1000, 3, "NOT JUDGED"), (7, 1000, 0, "NOT JUDGED")):
            with self.subTest(errors=errors, answered=answered, lost=lost):
                r = self.result("rss", "sub1 + 1000 idle", errors=errors)
                r["idle"] = {"connections": 1000, "answered": answered,
                             "lost": lost, "rss_before_kib": 16 * 1024,
                             "rss_after_kib": 17 * 1024}
                rows, pre = table_rows(self, self.report([r]), "memory:")
                self.assertEqual(len(rows), 1, rows)
                self.assertEqual(rows[0]["peak (VmHWM) MiB"], "20.0")
                self.assertTrue(rows[0][""].startswith(verdict), rows)
                if verdict != "met":
                    self.assertIn("%d of 1000 idle connections answered"
                                  % answered, rows[0][""])


class BenchCompareWritesTest(BenchCompareCase):
    """bench-compare's writes setting, run briefly in a scratch directory
    of the test's own."""

    def compare(self, scratch, loads, *args):
        """Readings of the load average, in order: the start, then for
        each run one as it begins and one after it (mix P=16, then
        cred.set P=1), and the end."""
        rc, out, err = self.run_compare(
            ["--no-build", "--only", "writes", "-d", "0.3", "--warmup", "0",
             "--rounds", "1", "--users", "20", "--scratch", scratch] +
            list(args), loads, rest="0.40 0.30 2/345 6789",
            env={"CB_BENCH_SETTLE_POLL": "0.01"})
        m = re.search(r"scratch (/\S+);", err)
        if m:
            self.assertTrue(m.group(1).startswith(scratch + "/cbbench."),
                            err)
            self.assertFalse(os.path.exists(m.group(1)), err)
        return rc, out, err

    def statfs(self, d):
        return subprocess.run(["stat", "-f", "-c", "%T", d], check=True,
                              stdout=subprocess.PIPE).stdout.decode().strip()

    def test_bench_compare_writes_runs_mix_and_50_writers_in_the_scratch_directory(self):
        # The second run begins at 0.80: judged, and with --noisy marked.
        rc, out, err = self.compare(self.tmp.name,
                                    ["0.10", "0.10", "0.20", "0.80"],
                                    "--noisy", "--settle", "0")
        self.assertEqual(rc, 0, err)
        self.assertIn("load average 0.80 before writes cred.set P=1 is above"
                      " 0.5: going on (--noisy)", err)
        rows, pre = table_rows(self, out, "durable writes")
        self.assertTrue(any("busy machine" in l and "0.10 to 0.80 as the "
                            "runs began" in l for l in pre), out)
        self.assertEqual([r["workload"] for r in rows],
                         ["mix (90% sub1, 10% cred.set), 50 conns, P=16",
                          "cred.set only, 50 writers, P=1"], out)
        mix, wr = rows
        self.assertEqual(mix["load 1 min before/after"], "0.10/0.20")
        self.assertEqual(wr["load 1 min before/after"], "0.80/0.80")
        statfs = self.statfs(self.tmp.name)
        for r in rows:
            self.assertEqual(r["errors"], "0", out)
            self.assertEqual(r["rounds"], "1", out)
            self.assertIn(statfs, r["file system"], out)
            self.assertEqual(r["commits"], "WAL, synchronous=FULL", out)
            self.assertGreater(float(r["req/s"]), 0, out)
            # The daemon's CPU time is counted in clock ticks: a figure,
            # which a run of 0.3 s may leave at 0.
            self.assertGreaterEqual(float(r["broker CPU us/req"]), 0, out)
        # About one call in ten of mix is a cred.set; every call of the
        # writers is one.
        self.assertGreater(float(mix["cred.set/s"]), 0, out)
        self.assertLess(float(mix["cred.set/s"]), float(mix["req/s"]) / 2,
                        out)
        self.assertAlmostEqual(float(wr["cred.set/s"]), float(wr["req/s"]),
                               delta=float(wr["req/s"]) * 0.01 + 1,
                               msg=out)
        if statfs in ("tmpfs", "ramfs"):
            self.assertEqual(mix[""], "not judged: " + statfs, out)
        else:
            # The verdicts follow the figures (away from the rounding).
            p999 = float(mix["p99.9 ms"])
            if abs(p999 - 5) > 0.01:
                self.assertEqual(mix[""], "met" if p999 <= 5 else "MISSED",
                                 out)
            sets = float(wr["cred.set/s"])
            if abs(sets - 10000) > 1:
                self.assertEqual(wr[""], "met" if sets >= 10000
                                 else "MISSED", out)
        self.assertIn("-w mix -c 50 -P 16", out)
        self.assertIn("-w mix --set-percent 100 -c 50 -P 1", out)

    def test_bench_compare_writes_in_dev_shm_are_not_judged(self):
        self.assertEqual(self.statfs("/dev/shm"), "tmpfs")
        shm = tempfile.TemporaryDirectory(prefix="cbcmp.", dir="/dev/shm")
        self.addCleanup(shm.cleanup)
        rc, out, err = self.compare(shm.name, ["0.10"])
        self.assertEqual(rc, 0, err)
        self.assertIn("is on tmpfs", err)
        self.assertIn("--scratch DIR on a disk", err)
        rows, pre = table_rows(self, out, "durable writes")
        self.assertEqual(len(rows), 2, out)
        for r in rows:
            self.assertEqual(r["file system"], "tmpfs", out)
            self.assertEqual(r[""], "not judged: tmpfs", out)

    def test_bench_compare_writes_refuses_a_run_that_begins_on_a_busy_machine(self):
        rc, out, err = self.compare(self.tmp.name,
                                    ["0.10", "0.10", "0.20", "0.80"],
                                    "--settle", "0")
        self.assertEqual(rc, 3, err)
        self.assertIn("load average 0.80 before writes cred.set P=1 is above "
                      "0.5: no ratio", err)
        self.assertRegex(err, r"(?m)^bench-compare: +credbroker mix P=16 ")
        self.assertNotRegex(err, r"(?m)^bench-compare: +credbroker "
                            r"cred\.set P=1 ")
        self.assertNotIn("###", out)

    def test_bench_compare_refuses_a_scratch_directory_it_cannot_use(self):
        long_dir = os.path.join(self.tmp.name,
                                "d" * max(1, 76 - len(self.tmp.name)))
        os.mkdir(long_dir)
        for d, why in ((os.path.join(self.tmp.name, "none"), "is not a "
                        "directory"), (long_dir, "is too long")):
            with self.subTest(scratch=d):
                rc, out, err = self.compare(d, ["0.10"])
                self.assertEqual(rc, 2, err)
                self.assertIn("--scratch (or TMPDIR): %s %s" % (d, why), err)
                self.assertNotIn("###", out)


class BenchCompareBackendsTest(BenchCompareCase):
    """bench-compare's backends setting: substitute on SQLite and on
    PostgreSQL in one table."""

    def compare(self, *args):
        return self.run_compare(["--no-build", "-d", "0.3", "--warmup", "0",
                                 "--rounds", "1"] + list(args))

    def test_bench_compare_backends_puts_sqlite_and_postgresql_side_by_side(self):
        # Also --backend postgresql: the workloads setting's brokers on
        # the same database (hello only, quickly).
        import pgtest
        c = pgtest.Cluster(fsync=False)
        self.addCleanup(c.cleanup)
        c.start()
        rc, out, err = self.compare(
            "--only", "backends,workloads", "--workloads", "hello",
            "--backend", "postgresql", "--users", "20", "--keep", "-d", "0.5",
            "--pg-conninfo", c.conninfo(), "--pg-password-file", c.passfile)
        scratch = re.search(r"scratch (/\S+);", err)
        self.assertIsNotNone(scratch, err)
        self.addCleanup(shutil.rmtree, scratch.group(1), True)
        self.assertEqual(rc, 0, err)
        lines = out.splitlines()
        title = [i for i, l in enumerate(lines)
                 if l.startswith("### substitute (1 placeholder) on SQLite "
                                 "and on PostgreSQL")]
        self.assertEqual(len(title), 1, out)
        rows = [[x.strip() for x in l.strip("|").split("|")]
                for l in lines[title[0] + 1:]
                if l.startswith("| ") and not l.startswith("|---")]
        header, body = rows[0], rows[1:]
        self.assertEqual([r[0] for r in body[:2]], ["P=1", "P=16"], out)
        for r in body[:2]:
            d = dict(zip(header, r))
            # A figure in every row; at depth 16 a short run on a slow
            # (sanitized) build may complete no request, and then it is 0.
            for col in ("SQLite req/s", "PostgreSQL req/s",
                        "PostgreSQL p99 ms"):
                if r[0] == "P=16":
                    self.assertGreaterEqual(float(d[col]), 0, (col, out))
                else:
                    self.assertGreater(float(d[col]), 0, (col, out))
            self.assertEqual(d["errors"], "0", out)
        self.assertIn("PostgreSQL: the database of --pg-conninfo; the "
                      "brokers of p1, p16 and workloads on PostgreSQL", out)
        self.assertIn("| hello P=16 |", out)
        # Each broker's store: SQLite for "lite", PostgreSQL for the rest.
        for name, pg in (("lite", False), ("pg", True), ("main", True),
                         ("quiet", True)):
            with open(os.path.join(scratch.group(1), name, "cb.conf")) as f:
                conf = f.read()
            self.assertEqual("backend = postgresql" in conf, pg, name)
        # The PostgreSQL brokers' values are in the database given.
        self.assertEqual(c.sql("SELECT count(*) FROM credvalues"), "100")
        self.assertEqual(c.sql("SELECT count(*) FROM types WHERE ident "
                               "LIKE 'bench_t%'"), "5")

    def test_bench_compare_refuses_an_unknown_backend(self):
        for args in (["--backend", "mysql"],
                     ["--pg-password-file", "/dev/null"]):
            with self.subTest(args=args):
                rc, out, err = self.compare("--only", "backends", *args)
                self.assertEqual(rc, 2, err)
                self.assertNotIn("###", out)


if __name__ == "__main__":
    cbtest.main()

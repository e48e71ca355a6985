"""
credbroker-bench smoke test: the load generator of docs/performance.md runs
against a real daemon for about a second per workload and reports figures
that hang together.  No wall-clock assertion: throughput and latency depend
on the machine, so only their consistency is checked (counts add up,
percentiles are ordered, every reply was a success and, with --verify,
carried the values that --setup stored).  The request and sub+curl
workloads run against credbroker-bench-httpd.
"""

import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cbtest  # noqa: E402

BENCH = os.path.join(cbtest.BUILD_DIR, "bench", "credbroker-bench")
HTTPD = os.path.join(cbtest.BUILD_DIR, "bench", "credbroker-bench-httpd")
TIMEOUT = 120 * cbtest.SCALE


class BenchTest(cbtest.DaemonTestCase):

    def setUp(self):
        if not os.access(BENCH, os.X_OK):
            self.skipTest("credbroker-bench not built at %s" % BENCH)
        super().setUp()

    def bench(self, *args, expect_rc=0):
        cmd = [BENCH, "-s", self.d.socket, "--pid", str(self.d.pid)]
        cmd += list(args)
        p = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(p.returncode, expect_rc,
                         "credbroker-bench %r exited %d\nstdout:\n%s\n"
                         "stderr:\n%s" % (args, p.returncode, out, err))
        return out

    def bench_json(self, *args, expect_rc=0):
        out = self.bench("--json", *args, expect_rc=expect_rc)
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
                     "memory"):
            self.assertTrue(any(l.startswith(word) for l in lines),
                            "no %s line in:\n%s" % (word, out))

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


if __name__ == "__main__":
    cbtest.main()

"""
Tests of pgtest.py, the private PostgreSQL cluster the PostgreSQL tests
run on: it starts as an unprivileged user even when the tests run as root,
asks for a password on the socket and over TCP, survives a restart, a
stop and a crash with its data, and leaves nothing behind: no server
process and no directory, even when the test process is killed.
"""

import os
import signal
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import pgtest  # noqa: E402


def server_pids(datadir):
    """Pids of the postgres processes of a cluster: the server and every
    backend run in its data directory."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % p)
            cwd = os.readlink("/proc/%s/cwd" % p)
        except OSError:
            continue
        if os.path.basename(exe) == "postgres" and cwd == datadir:
            pids.append(int(p))
    return pids


def wait_for(pred, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


class PgTestCluster(unittest.TestCase):

    def test_cluster_starts_restarts_and_stops_leaving_nothing(self):
        c = pgtest.Cluster()
        c.start()
        top, data = c.dir, c.data
        try:
            self.assertTrue(c.running())
            # The server runs as the unprivileged user when we are root.
            st = os.stat("/proc/%d" % c.postmaster_pid())
            if os.getuid() == 0:
                self.assertNotEqual(st.st_uid, 0)
            self.assertEqual(st.st_uid, c.uid)
            # The role connects with its password, on the socket and TCP.
            self.assertEqual(c.sql("SELECT current_user"), pgtest.ROLE)
            self.assertEqual(c.sql("SELECT inet_client_addr()", tcp=True),
                             "127.0.0.1")
            c.sql("CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
            # ... and a wrong password is refused both ways.
            for tcp in (False, True):
                rc, out, errout = c.sql("SELECT 1", tcp=tcp,
                                        password="wrong", check=False)
                self.assertNotEqual(rc, 0)
                self.assertIn("password authentication failed", errout)
            pid = c.postmaster_pid()
            c.restart()
            self.assertNotEqual(c.postmaster_pid(), pid)
            self.assertEqual(c.sql("SELECT v FROM t"), "42")
            c.stop()
            self.assertFalse(c.running())
            # postmaster.pid goes a moment before the process does.
            self.assertTrue(wait_for(lambda: server_pids(data) == []))
            c.start()
            self.assertEqual(c.sql("SELECT v FROM t"), "42")
            c.kill()
            self.assertFalse(c.running())
            self.assertTrue(wait_for(lambda: server_pids(data) == []))
            c.start()
            self.assertEqual(c.sql("SELECT v FROM t", tcp=True), "42")
        finally:
            c.cleanup()
        self.assertFalse(os.path.exists(top))
        self.assertTrue(wait_for(lambda: server_pids(data) == []))

    def test_killed_test_process_leaves_no_server_running(self):
        # A child process starts a cluster, reports it, and is SIGKILLed:
        # neither atexit nor a signal handler runs, the watchdog must stop
        # the server and remove the directory.
        code = ("import sys; sys.path.insert(0, %r); import pgtest, time\n"
                "c = pgtest.Cluster().start()\n"
                "print(c.dir, c.data, c.postmaster_pid(), flush=True)\n"
                "time.sleep(600)\n" % HERE)
        p = subprocess.Popen([sys.executable, "-c", code],
                             stdout=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline().split()
            self.assertEqual(len(line), 3, "the child did not start")
            top, data, pid = line[0], line[1], int(line[2])
            os.kill(pid, 0)             # running
        finally:
            p.kill()
            p.wait()
            p.stdout.close()
        self.assertTrue(wait_for(lambda: server_pids(data) == [], 60),
                        "server still running after its test was killed")
        self.assertTrue(wait_for(lambda: not os.path.exists(top), 60))

    def test_sigterm_to_test_process_stops_its_server(self):
        code = ("import sys; sys.path.insert(0, %r); import pgtest, time\n"
                "c = pgtest.Cluster().start()\n"
                "print(c.dir, c.data, flush=True)\n"
                "time.sleep(600)\n" % HERE)
        p = subprocess.Popen([sys.executable, "-c", code],
                             stdout=subprocess.PIPE, text=True)
        try:
            top, data = p.stdout.readline().split()
        finally:
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=60)
            p.stdout.close()
        self.assertEqual(p.returncode, -signal.SIGTERM)
        self.assertTrue(wait_for(lambda: server_pids(data) == [], 60))
        self.assertTrue(wait_for(lambda: not os.path.exists(top), 60))

    def test_serve_answers_commands_and_cleans_up_at_end_of_input(self):
        p = subprocess.Popen([sys.executable,
                              os.path.join(HERE, "pgtest.py"), "serve"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
        try:
            info = dict(kv.split("=", 1)
                        for kv in p.stdout.readline().split())
            self.assertTrue(os.path.isdir(info["host"]))
            with open(info["passfile"]) as f:
                self.assertGreater(len(f.read().strip()), 16)
            for cmd, want in (("sql SELECT 6*7", "ok 42"),
                              ("restart", "ok"), ("stop", "ok"),
                              ("start", "ok"), ("bogus", "error")):
                p.stdin.write(cmd + "\n")
                p.stdin.flush()
                self.assertTrue(p.stdout.readline().startswith(want), cmd)
        finally:
            p.stdin.close()
            p.wait(timeout=120)
            p.stdout.close()
        data = os.path.join(info["dir"], "data")
        self.assertTrue(wait_for(lambda: server_pids(data) == [], 60))
        self.assertFalse(os.path.exists(info["dir"]))


if __name__ == "__main__":
    unittest.main()

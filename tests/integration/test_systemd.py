"""
systemd integration: socket activation (sd_listen_fds) and the notify
protocol (READY, STATUS, WATCHDOG, RELOADING, STOPPING), driven without
systemd itself: systemd-socket-activate passes a listening socket the way
PID 1 does, and a datagram socket stands in for NOTIFY_SOCKET.
"""

import os
import shutil
import signal
import socket
import subprocess
import time
import unittest

import cbtest


class NotifyListener:
    """A NOTIFY_SOCKET: collects the datagrams the daemon sends."""

    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.messages = []

    def drain(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                break
            self.messages.append(data.decode())
        return self.messages

    def wait_for(self, needle, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                if needle in m.split("\n"):
                    return m
            self.drain(0.05)
        raise AssertionError("no %r among %r" % (needle, self.messages))

    def close(self):
        self.sock.close()


class NotifyTest(unittest.TestCase):

    def setUp(self):
        self.d = cbtest.Daemon()
        self.n = NotifyListener(os.path.join(self.d.dir, "notify.sock"))
        self.d.env = {"NOTIFY_SOCKET": self.n.path,
                      "WATCHDOG_USEC": "300000"}

    def tearDown(self):
        self.d.cleanup()
        self.n.close()

    def test_ready_watchdog_reload_stopping(self):
        self.d.start()
        ready = self.n.wait_for("READY=1")
        self.assertIn("STATUS=serving on " + self.d.socket, ready)
        # Petted at half of WATCHDOG_USEC: several within a second.
        time.sleep(1.0)
        self.n.drain(0.1)
        self.assertGreaterEqual(
            sum(1 for m in self.n.messages if "WATCHDOG=1" in m), 3,
            self.n.messages)
        self.n.messages.clear()
        self.d.signal(signal.SIGHUP)
        self.n.wait_for("RELOADING=1")
        self.n.wait_for("READY=1")
        self.d.stop()
        self.n.drain(0.2)
        self.assertTrue(any("STOPPING=1" in m.split("\n")
                            for m in self.n.messages), self.n.messages)


class SocketActivationTest(unittest.TestCase):

    def setUp(self):
        self.tool = shutil.which("systemd-socket-activate")
        self.assertIsNotNone(self.tool, "systemd-socket-activate is "
                             "missing: scripts/install-deps installs systemd")
        self.d = cbtest.Daemon()
        self.act = os.path.join(self.d.dir, "act.sock")
        self.proc = None

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.d.cleanup()

    def test_listens_on_the_passed_socket(self):
        log = open(os.path.join(self.d.dir, "act.log"), "wb")
        self.proc = subprocess.Popen(
            [self.tool, "-l", self.act, cbtest.DAEMON, "-f", "-c",
             self.d.config], stdin=subprocess.DEVNULL, stdout=log,
            stderr=log, env=self.d.environ())
        log.close()
        cbtest.poll_until(lambda: os.path.exists(self.act), 10,
                          what="activation socket")
        with cbtest.Client(self.act) as c:
            res = c.ok("hello")
            self.assertEqual(res["protocol"], 1)
            # A second connection is served by the same daemon.
            with cbtest.Client(self.act) as c2:
                c2.ok("health")
        # server.socket is ignored when systemd passes the socket.
        self.assertFalse(os.path.exists(self.d.socket))
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=20), 0)
        with open(os.path.join(self.d.dir, "act.log"), "rb") as f:
            out = f.read().decode()
        self.assertIn("listening on the socket passed by systemd", out)
        # The socket belongs to systemd: the daemon does not remove it.
        self.assertTrue(os.path.exists(self.act))


if __name__ == "__main__":
    unittest.main(verbosity=2)

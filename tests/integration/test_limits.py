"""
Limits (SPEC 6): a thousand connections at once, a client that trickles
one byte at a time, and one that never reads its replies cannot stop the
others from being served; the idle timeout and max_connections hold; and
once they are gone, the daemon's descriptor count is back to its baseline.

"Served" is checked with a generous liveness bound (each call answered
within a few seconds), not a performance figure: performance lives in the
benchmark.
"""

import os
import resource
import socket
import threading
import time
import unittest

import msgpack

import cbtest

LIVENESS = 5.0      # seconds: far above any real answer time


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def stable_fd_count(pid):
    """The count once closed connections have been reaped."""
    last = fd_count(pid)
    for _ in range(50):
        time.sleep(0.1)
        now = fd_count(pid)
        if now == last:
            return now
        last = now
    return last


class LimitsTest(unittest.TestCase):

    def setUp(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < 4096:
            resource.setrlimit(resource.RLIMIT_NOFILE,
                               (min(hard, 8192), hard))
        self.d = cbtest.Daemon(extra={"server": [
            ("max_connections", "1100"), ("max_connections_per_uid", "1100"),
            ("idle_timeout", "30")]})
        self.d.start()
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.d.cleanup()

    def served(self, n=50):
        """n hello calls on a fresh connection; returns the slowest."""
        worst = 0.0
        with self.d.client() as c:
            for _ in range(n):
                t = time.monotonic()
                c.ok("hello")
                worst = max(worst, time.monotonic() - t)
        self.assertLess(worst, LIVENESS)
        return worst

    def test_thousand_connections_and_a_trickler(self):
        with self.d.client() as c:
            c.ok("hello")
        base = stable_fd_count(self.d.pid)

        # 1000 clients: each sends one request, half also wait for it.
        for i in range(1000):
            s = socket.socket(socket.AF_UNIX)
            s.connect(self.d.socket)
            s.sendall(msgpack.packb([0, 1, "hello", [{}]]))
            self.socks.append(s)
        unp = msgpack.Unpacker(raw=False)
        for s in self.socks[::2]:
            s.settimeout(LIVENESS)
            unp.feed(s.recv(4096))
            self.assertEqual(next(unp)[1], 1)
        cbtest.poll_until(lambda: fd_count(self.d.pid) >= base + 1000,
                          10, what="1000 connections accepted")

        # A trickler sends a request one byte at a time, slowly.
        stop = threading.Event()
        req = msgpack.packb([0, 7, "health", [{}]])
        trick = socket.socket(socket.AF_UNIX)
        trick.connect(self.d.socket)
        self.socks.append(trick)

        def trickle():
            for b in req[:-1]:
                if stop.wait(0.05):
                    return
                trick.send(bytes([b]))
        t = threading.Thread(target=trickle)
        t.start()

        # A client that sends many requests and never reads the replies.
        greedy = socket.socket(socket.AF_UNIX)
        greedy.connect(self.d.socket)
        greedy.setblocking(False)
        self.socks.append(greedy)
        burst = msgpack.packb([0, 9, "hello", [{}]]) * 2000
        sent = 0
        try:
            for _ in range(200):
                sent += greedy.send(burst)
        except BlockingIOError:
            pass

        worst = self.served(100)
        print("slowest of 100 calls with 1000 connections, a trickler and "
              "a non-reader open: %.1f ms" % (worst * 1000))
        t.join()
        # The trickler's request completes once its last byte arrives.
        trick.settimeout(LIVENESS)
        trick.send(req[-1:])
        unp = msgpack.Unpacker(raw=False)
        got = None
        while got is None:
            data = trick.recv(65536)
            self.assertTrue(data, "trickler's connection closed")
            unp.feed(data)
            got = next(unp, None)
        self.assertEqual(got[1], 7)
        self.assertIsNone(got[2])
        stop.set()

        for s in self.socks:
            s.close()
        self.socks = []
        cbtest.poll_until(lambda: fd_count(self.d.pid) == base, 20,
                          what="descriptor count back to %d" % base)
        self.served(10)

    def test_max_connections(self):
        d = cbtest.Daemon(extra={"server": [("max_connections", "5")]})
        d.start()
        try:
            held = []
            for _ in range(5):
                c = d.client()
                c.ok("hello")
                held.append(c)
            extra = socket.socket(socket.AF_UNIX)
            extra.connect(d.socket)
            extra.settimeout(LIVENESS)
            # Refused: closed without an answer (a reset when the
            # request had already arrived unread).
            try:
                extra.sendall(msgpack.packb([0, 1, "hello", [{}]]))
                self.assertEqual(extra.recv(100), b"")
            except (ConnectionResetError, BrokenPipeError):
                pass
            extra.close()
            held.pop().close()
            time.sleep(0.1)
            with d.client() as c:
                c.ok("hello")
            for c in held:
                c.close()
        finally:
            d.cleanup()

    def test_idle_timeout(self):
        d = cbtest.Daemon(extra={"server": [("idle_timeout", "1")]})
        d.start()
        try:
            s = socket.socket(socket.AF_UNIX)
            s.connect(d.socket)
            s.settimeout(LIVENESS)
            t = time.monotonic()
            self.assertEqual(s.recv(100), b"")
            self.assertGreaterEqual(time.monotonic() - t, 0.5)
            s.close()
        finally:
            d.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)

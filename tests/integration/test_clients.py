"""
Stock msgpack-rpc clients against the real daemon (SPEC section 6: "any
msgpack-rpc client in any language can talk to the broker").

pynvim's socket_session() (Debian's python3-pynvim), used unmodified: at
attach time it sends nvim_set_client_info as a notification, with its
method name packed as a bin; the broker must ignore it (never execute or
answer it, count it in stats) and go on serving the session's requests.
"""

import os
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

try:
    from pynvim import socket_session
except ImportError:         # reported as a failure in setUp, not a skip
    socket_session = None


class PynvimSessionTest(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.assertIsNotNone(socket_session, "python3-pynvim is not "
                             "installed (scripts/install-deps installs it)")

    def session(self):
        s = socket_session(self.d.socket)
        self.addCleanup(s.close)
        return s

    def notifications(self):
        return self.c.ok("stats", {})["notifications"]

    def test_pynvim_socket_session_calls_hello_and_health(self):
        before = self.notifications()
        s = self.session()
        # request(method, *args) sends args as the params array: [{}].
        hello = s.request("hello", {})
        self.assertEqual(hello["protocol"], 1)
        self.assertRegex(hello["server"], cbtest.SERVER_RE)
        self.assertEqual(sorted(hello["permissions"]),
                         sorted(cbtest.PERMISSIONS))
        health = s.request("health", {})
        self.assertEqual(health["status"], "ok")
        cbtest.assert_store_health(self, health["store"])
        # The attach-time nvim_set_client_info was received and ignored.
        self.assertEqual(self.notifications(), before + 1)
        # The session is still usable after both calls.
        self.assertEqual(s.request("hello", {})["protocol"], 1)


if __name__ == "__main__":
    cbtest.main()

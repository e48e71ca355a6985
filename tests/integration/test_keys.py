"""
Master key tests (SPEC section 3, 8): the daemon refuses to start with a
weak key, each rule with its own message; refuses a key that does not match
the store; takes the key from a file, a systemd credential, or (with a
warning) inline in the configuration; --check-config and --version.
"""

import os
import re
import subprocess
import sys
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import Daemon, new_user, strong_key, plain_key  # noqa: E402


def run_daemon(args, env=None, timeout=None):
    """Run credbrokerd to completion (for --version/--check-config)."""
    cmd = [cbtest.DAEMON] + args
    if cbtest.VALGRIND:
        cmd = ["valgrind", "--error-exitcode=99", "--leak-check=full",
               "--errors-for-leak-kinds=definite", "-q"] + cmd
    e = dict(os.environ)
    e.pop("CREDENTIALS_DIRECTORY", None)
    if env:
        e.update(env)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=e,
                       timeout=timeout or cbtest.START_TIMEOUT)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


class KeyTestBase(unittest.TestCase):

    def setUp(self):
        if not cbtest.have_binaries():
            self.skipTest("credbrokerd not built at %s" % cbtest.DAEMON)
        self.tmp = cbtest.make_tmpdir()
        self.addCleanup(cbtest.remove_tmpdir, self.tmp)

    def new_daemon(self, sub=None, **kw):
        d = os.path.join(self.tmp, sub) if sub else cbtest.make_tmpdir()
        if sub:
            os.makedirs(d, exist_ok=True)
        else:
            self.addCleanup(cbtest.remove_tmpdir, d)
        dm = Daemon(d, **kw)
        self.addCleanup(dm.cleanup)
        return dm

    def expect_refusal(self, dm, needle):
        """Start dm; it must exit 1 with needle in stderr and leave no
        socket behind.  Returns stderr."""
        dm.start(wait=False)
        rc = dm.wait_exit(cbtest.START_TIMEOUT)
        if rc is None:
            dm.kill9()
            self.fail("daemon kept running; expected refusal (%s); stderr:\n%s"
                      % (needle, dm.log()))
        log = dm.log()
        if cbtest.VALGRIND:
            self.assertNotEqual(rc, 99, "valgrind errors:\n" + log)
        self.assertEqual(rc, 1, "exit status %d; stderr:\n%s" % (rc, log))
        if needle is not None:
            self.assertIn(needle.lower(), log.lower(),
                          "expected %r in stderr:\n%s" % (needle, log))
        self.assertFalse(os.path.exists(dm.socket),
                         "socket left behind after refusal")
        return log


class TestWeakKeys(KeyTestBase):

    CASES = [
        # (label, key bytes, expected words in the message)
        ("len15", strong_key(15).encode(), "must be 16, 24 or 32 bytes"),
        ("len17", strong_key(17).encode(), "must be 16, 24 or 32 bytes"),
        ("len33", strong_key(33).encode(), "must be 16, 24 or 32 bytes"),
        ("len8", strong_key(8).encode(), "must be 16, 24 or 32 bytes"),
        ("nonprint_bel", strong_key(15).encode() + b"\x07",
         "printable ASCII"),
        ("nonprint_del", b"\x7f" + strong_key(23).encode(),
         "printable ASCII"),
        ("nonprint_nul", strong_key(10).encode() + b"\x00" +
         strong_key(5).encode(), "printable ASCII"),
        ("nonprint_high", strong_key(14).encode() + "\u00e9".encode(),
         "printable ASCII"),
        ("repeated_a16", b"a" * 16, "single repeated character"),
        ("repeated_Z32", b"Z" * 32, "single repeated character"),
        ("repeated_bang24", b"!" * 24, "single repeated character"),
        ("common_digits", b"0123456789abcdef", "weak"),
        ("common_password", b"passwordpassword", "weak"),
    ]

    def test_each_class_refused(self):
        needles = sorted({c[2] for c in self.CASES})
        for label, key, needle in self.CASES:
            with self.subTest(label):
                dm = self.new_daemon(label)
                cbtest.write_file(dm.key_file, key)
                log = self.expect_refusal(dm, needle)
                # Never put the key into the message.
                if len(set(key)) > 1 and b"\x00" not in key:
                    self.assertNotIn(key.decode("latin-1"), log)
                # Each rule has its own message: the others' words are not
                # in this one.
                for other in needles:
                    if other != needle:
                        self.assertNotIn(other.lower(), log.lower(),
                                         "%s: message also says %r:\n%s"
                                         % (label, other, log))

    def test_common_key_too_weak_wording(self):
        # The contract wording for the common-key rule is "too weak".
        for key in (b"0123456789abcdef", b"passwordpassword"):
            dm = self.new_daemon("w" + key[:4].decode())
            cbtest.write_file(dm.key_file, key)
            self.expect_refusal(dm, "too weak")

    def test_low_variety_key(self):
        # Entropy / variety check: two characters alternating.
        dm = self.new_daemon("ab")
        cbtest.write_file(dm.key_file, b"abababababababab")
        self.expect_refusal(dm, "weak")

    def test_empty_and_missing_key_file(self):
        dm = self.new_daemon("empty")
        cbtest.write_file(dm.key_file, b"")
        self.expect_refusal(dm, None)
        dm = self.new_daemon("missing")
        os.unlink(dm.key_file)
        self.expect_refusal(dm, None)
        dm = self.new_daemon("nokey", key_source="none")
        self.expect_refusal(dm, None)

    def test_key_file_readable_by_others_refused(self):
        # SPEC 7 hardening: a master key other users can read is refused,
        # with a message that says how to fix it, and without the key.
        for mode in (0o644, 0o640, 0o604, 0o660):
            dm = self.new_daemon("mode%o" % mode)
            os.chmod(dm.key_file, mode)
            log = self.expect_refusal(
                dm, "read or written by other users (mode %04o)" % mode)
            self.assertIn("chmod 600 " + dm.key_file, log)
            self.assertNotIn(dm.key, log)
        dm = self.new_daemon("mode400")
        os.chmod(dm.key_file, 0o400)
        dm.start()
        dm.stop()

    def test_strong_keys_accepted(self):
        for n in (16, 24, 32):
            for trailer in (b"", b"\n"):
                dm = self.new_daemon("ok%d%d" % (n, len(trailer)))
                k = strong_key(n)
                cbtest.write_file(dm.key_file, k.encode() + trailer)
                dm.key = k
                dm.start()
                dm.stop()

    def test_key_not_on_command_line(self):
        # SPEC 3: the key is never accepted on the command line.
        dm = self.new_daemon("cmdline", key_source="none")
        dm.args = ["-o", "security.secret_key=" + plain_key(32)]
        dm.start(wait=False)
        rc = dm.wait_exit(cbtest.START_TIMEOUT)
        if rc is None:
            dm.kill9()
            self.fail("daemon started with the key given on the command "
                      "line (-o security.secret_key=...)")
        self.assertNotEqual(rc, 0)
        self.assertFalse(os.path.exists(dm.socket))


class TestStoreKey(KeyTestBase):

    def test_mismatched_key_refused(self):
        dm = self.new_daemon("store")
        dm.start()
        with dm.client() as c:
            c.ok("type.create", {"ident": "t", "name": "T", "storage": "db"})
            c.ok("cred.set", {"type": "t", "user": new_user(), "value": "v"})
        dm.stop()
        good = dm.key
        other = strong_key(32)
        dm.write_key(other)
        log = self.expect_refusal(dm, "master key does not match this store")
        self.assertNotIn(other, log)
        self.assertNotIn(good, log)
        # A different length of key is refused the same way.
        dm.write_key(strong_key(16))
        self.expect_refusal(dm, "does not match")
        # The right key still opens it, data intact.
        dm.write_key(good)
        dm.start()
        with dm.client() as c:
            self.assertEqual(len(c.ok("type.list", {})), 1)
        dm.stop()

    def test_mismatch_on_empty_store(self):
        # The key check value is recorded at creation, before any value.
        dm = self.new_daemon("empty")
        dm.start()
        dm.stop()
        dm.write_key(strong_key(24))
        self.expect_refusal(dm, "does not match")

    def test_inline_key_with_warning(self):
        key = plain_key(32)
        dm = self.new_daemon("inline", key=key, key_source="inline")
        dm.start()
        with dm.client() as c:
            c.ok("type.create", {"ident": "t", "name": "T", "storage": "db"})
            c.ok("cred.set", {"type": "t", "user": new_user(), "value": "v"})
        dm.stop()
        log = dm.log()
        warnings = [l for l in log.splitlines()
                    if re.search(r"warn", l, re.I)
                    and re.search(r"secret_key|inline|config", l, re.I)]
        self.assertTrue(warnings, "no warning about the inline key:\n" + log)
        self.assertNotIn(key, log)
        # Same store, same key from a file: it matches, and no warning.
        dm.key_source = "file"
        dm.write_key(key)
        dm.write_config()
        dm.start()
        dm.stop()
        for w in warnings:
            # strip a leading timestamp/pid before comparing
            tail = w[w.lower().find("warn"):]
            self.assertNotIn(tail, dm.log())

    def test_credentials_directory(self):
        key = strong_key(32)
        credsdir = os.path.join(self.tmp, "creds")
        os.makedirs(credsdir)
        cbtest.write_file(os.path.join(credsdir, "master-key"), key + "\n")
        dm = self.new_daemon("cred", key=key, key_source="none",
                             env={"CREDENTIALS_DIRECTORY": credsdir})
        dm.start()
        with dm.client() as c:
            c.ok("type.create", {"ident": "t", "name": "T", "storage": "db"})
        dm.stop()
        # The credential name is configurable.
        os.rename(os.path.join(credsdir, "master-key"),
                  os.path.join(credsdir, "cbkey"))
        dm.start(wait=False)
        rc = dm.wait_exit(cbtest.START_TIMEOUT)
        if rc is None:
            dm.kill9()
            self.fail("started without its key")
        self.assertEqual(rc, 1)
        dm.extra = {"security": [("secret_key_credential", "cbkey")]}
        dm.write_config()
        dm.start()
        with dm.client() as c:
            self.assertEqual([t["ident"] for t in c.ok("type.list", {})],
                             ["t"])
        dm.stop()
        # A weak key in the credential is refused like any other.
        cbtest.write_file(os.path.join(credsdir, "cbkey"), b"a" * 32)
        self.expect_refusal(dm, "single repeated character")

    def test_key_file_takes_precedence_over_credential(self):
        # With both configured, secret_key_file is the documented source
        # when set; the credential must not silently replace it.
        key = strong_key(32)
        credsdir = os.path.join(self.tmp, "creds2")
        os.makedirs(credsdir)
        cbtest.write_file(os.path.join(credsdir, "master-key"), b"b" * 32)
        dm = self.new_daemon("both", key=key,
                             env={"CREDENTIALS_DIRECTORY": credsdir})
        dm.start()
        dm.stop()


class TestCommandLine(KeyTestBase):

    def test_version(self):
        rc, out, err = run_daemon(["--version"])
        self.assertEqual(rc, 0, err)
        self.assertRegex(out.strip(), cbtest.SERVER_RE)

    def test_check_config_good(self):
        dm = self.new_daemon("good")
        rc, out, err = run_daemon(["--check-config", "-c", dm.config])
        self.assertEqual(rc, 0, out + err)
        self.assertFalse(os.path.exists(dm.socket))

    def test_check_config_bad(self):
        dm = self.new_daemon("bad")
        bad_configs = {
            "bad_perm": "[server]\nsocket = %s\n[storage]\ndatabase = %s\n"
                        "[security]\nsecret_key_file = %s\n"
                        "[access]\ngrant = uid:%d no:such-permission\n",
            "bad_principal": "[server]\nsocket = %s\n[storage]\n"
                             "database = %s\n[security]\n"
                             "secret_key_file = %s\n"
                             "[access]\ngrant = teapot:7 *\n",
            "syntax": "[server\nsocket = %s\n[storage]\ndatabase = %s\n"
                      "[security]\nsecret_key_file = %s\n",
        }
        for label, text in bad_configs.items():
            with self.subTest(label):
                cbtest.write_file(dm.config, text.replace(
                    "uid:%d", "uid:%d" % os.getuid()) % (
                        dm.socket, dm.database, dm.key_file))
                rc, out, err = run_daemon(["--check-config", "-c",
                                           dm.config])
                self.assertEqual(rc, 1, "%s: rc %d\n%s" % (label, rc,
                                                          out + err))
                self.assertTrue(err.strip(), "no message on stderr")
        # Weak key: --check-config says so too.
        dm.write_config()
        cbtest.write_file(dm.key_file, b"passwordpassword")
        rc, out, err = run_daemon(["--check-config", "-c", dm.config])
        self.assertEqual(rc, 1, out + err)
        self.assertIn("weak", err.lower())
        # Missing config file.
        rc, out, err = run_daemon(["--check-config", "-c",
                                   os.path.join(self.tmp, "nope.conf")])
        self.assertEqual(rc, 1, out + err)
        self.assertFalse(os.path.exists(dm.socket))

    def test_check_config_unknown_key(self):
        # A misspelt key is an error, not silently ignored.
        dm = self.new_daemon("typo")
        dm.extra = {"server": [("sokcet", "/tmp/x.sock")]}
        dm.write_config()
        rc, out, err = run_daemon(["--check-config", "-c", dm.config])
        self.assertEqual(rc, 1, out + err)
        self.assertIn("sokcet", err)

    def test_start_with_bad_config(self):
        dm = self.new_daemon("badstart")
        cbtest.write_file(dm.config, "[server]\nsocket = %s\n[storage]\n"
                          "database = %s\n[security]\nsecret_key_file = %s\n"
                          "[access]\ngrant = uid:%d no:such-permission\n"
                          % (dm.socket, dm.database, dm.key_file,
                             os.getuid()))
        self.expect_refusal(dm, None)

    def test_override_socket(self):
        dm = self.new_daemon("ovr")
        alt = os.path.join(dm.dir, "alt.sock")
        dm.args = ["-o", "server.socket=" + alt]
        dm.start(wait=False)
        cbtest.poll_until(lambda: os.path.exists(alt) or not dm.alive(),
                          cbtest.START_TIMEOUT, what="override socket")
        self.assertTrue(dm.alive(), dm.log())
        dm.socket, orig = alt, dm.socket
        dm.wait_ready()
        self.assertFalse(os.path.exists(orig))
        dm.stop()
        self.assertFalse(os.path.exists(alt))


if __name__ == "__main__":
    cbtest.main()

"""
credctl vault show|set|test (SPEC sections 4.2, 6 and 8) against the real
daemon and the Vault simulator (tests/vault/vaultsim.py).

The simulator is started once for the class with one AppRole role; every
test gets a fresh daemon (cbtest.DaemonTestCase).  What is checked:

 - "vault show" before and after configuration, as key: value lines and
   --json, with role_id/secret_id only as set/not set;
 - "vault set" taking the secret_id from standard input (alone, or after
   the role_id on the first line) or from a no-echo prompt on a pty, never
   from argv ("--secret-id VALUE" is a usage error that does not echo the
   value and sends nothing); absent ids and a missing --enable/--disable
   keep what is stored;
 - "vault test": four ok steps and exit 0; a wrong secret_id fails the
   login step with the simulator's message and exit 1;
 - a path without /data/: exit 1 and the broker's bad_request message;
 - a vault-stored type used through "cred set"/"cred status";
 - after every test: no credctl output and no daemon log line contains the
   secret_ids or the role_id (in any common encoding).
"""

import fcntl
import json
import os
import re
import secrets
import select
import subprocess
import sys
import termios
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "vault"))

import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402
from vaultsim import SimProcess  # noqa: E402

ROLE_ID = "role-" + secrets.token_hex(10)
SECRET_ID = "sek-" + secrets.token_hex(16)
WRONG_SECRET_ID = "wrong-" + secrets.token_hex(16)
ARGV_SECRET = "argv-" + secrets.token_hex(16)
CANARIES = [s.encode() for s in (ROLE_ID, SECRET_ID, WRONG_SECRET_ID,
                                 ARGV_SECRET)]

MOUNT = "secrets"
PATH = MOUNT + "/data/ctl"
LOGIN_FAILED = "invalid role or secret ID"
SHOW_KEYS = ["configured", "enabled", "url", "path", "role_id",
             "secret_id", "ca_file", "namespace", "timeout_ms"]
STEPS = ["login", "write", "read", "list"]


class CredctlVaultTest(cbtest.DaemonTestCase):

    sim = None

    @classmethod
    def setUpClass(cls):
        if not cbtest.have_binaries() or not cbtest.have_credctl():
            raise unittest.SkipTest("credbrokerd or credctl not built in %s"
                                    % cbtest.BUILD_DIR)
        cls.sim = SimProcess("--kv-mount", MOUNT, "--role",
                             "%s:%s:ttl=300,max_ttl=3600"
                             % (ROLE_ID, SECRET_ID),
                             stderr=subprocess.DEVNULL)
        cls.sim.start()

    @classmethod
    def tearDownClass(cls):
        if cls.sim is not None:
            cls.sim.stop()

    def setUp(self):
        super().setUp()
        self.out_mark = len(cbtest.CREDCTL_OUTPUT)
        # Runs before the daemon is stopped (cleanups are LIFO).
        self.addCleanup(self.check_no_leaks)

    def check_no_leaks(self):
        blob = b"".join(cbtest.CREDCTL_OUTPUT[self.out_mark:])
        self.assertEqual(find_leaks(blob, CANARIES), [],
                         "credctl printed an id")
        self.assertEqual(find_leaks(self.d.all_logs(), CANARIES), [],
                         "the daemon logged an id")

    # -- helpers ------------------------------------------------------
    def ctl(self, *args, input=None, json_out=False):
        return cbtest.credctl(self.d.socket, *args, input=input,
                              json=json_out)

    def ok(self, *args, input=None):
        rc, out, err = self.ctl(*args, input=input)
        self.assertEqual(rc, 0, "credctl %s: rc %d\n%s%s"
                         % (" ".join(args), rc, out, err))
        return out

    def ok_json(self, *args, input=None, rc=0):
        got, out, err = self.ctl(*args, input=input, json_out=True)
        self.assertEqual(got, rc, "credctl --json %s: rc %d\n%s%s"
                         % (" ".join(args), got, out, err))
        try:
            return json.loads(out)
        except ValueError:
            self.fail("credctl --json %s printed invalid JSON:\n%s"
                      % (" ".join(args), out))

    def usage(self, *args, input=None):
        rc, out, err = self.ctl(*args, input=input)
        self.assertEqual(rc, 2, "credctl %s: rc %d (expected usage error)\n"
                         "%s%s" % (" ".join(args), rc, out, err))
        self.assertTrue(err.startswith("credctl: "), err)
        self.assertEqual(out, "")
        return err

    def show(self):
        """vault show as {key: value}, checking the field order."""
        out = self.ok("vault", "show")
        fields = []
        for line in out.splitlines():
            m = re.match(r"^([a-z_]+):\s+(.*)$", line)
            self.assertIsNotNone(m, "not a key: value line: %r" % line)
            fields.append((m.group(1), m.group(2)))
        self.assertEqual([k for k, _ in fields], SHOW_KEYS, out)
        return dict(fields)

    def configure(self, *extra, secret=SECRET_ID, enable=True):
        """vault set with the role_id on argv, the secret_id on stdin."""
        args = ["vault", "set", "--url", self.sim.url, "--path", PATH,
                "--role-id", ROLE_ID, "--secret-id-stdin"]
        if enable is not None:
            args.append("--enable" if enable else "--disable")
        return self.ok(*(args + list(extra)), input=secret + "\n")

    def assert_unconfigured(self):
        s = self.show()
        self.assertEqual(s["configured"], "no")
        self.assertEqual(s["role_id"], "not set")
        self.assertEqual(s["secret_id"], "not set")

    def parse_steps(self, out, ok):
        """Parse vault test output: step lines, then OK or FAILED."""
        lines = out.splitlines()
        self.assertEqual(lines[-1], "OK" if ok else "FAILED", out)
        steps = []
        for line in lines[:-1]:
            m = re.match(r"^(\w+)\s+(ok|failed)\s+(.+)$", line)
            self.assertIsNotNone(m, "not a step line: %r" % line)
            steps.append(m.groups())
        return steps

    # -- show -----------------------------------------------------------
    def test_show_unconfigured(self):
        s = self.show()
        self.assertEqual(s, {
            "configured": "no", "enabled": "no", "url": "-", "path": "-",
            "role_id": "not set", "secret_id": "not set", "ca_file": "-",
            "namespace": "-", "timeout_ms": "5000"})
        doc = self.ok_json("vault", "show")
        self.assertIs(doc["configured"], False)
        self.assertIs(doc["role_id_set"], False)
        self.assertIs(doc["secret_id_set"], False)
        self.assertNotIn("role_id", doc)
        self.assertNotIn("secret_id", doc)

    def test_help(self):
        out = self.ok("help", "vault")
        for cmd in ("vault show", "vault set", "vault test"):
            self.assertIn(cmd, out)
        out = self.ok("help")
        self.assertIn("--secret-id-stdin", out)
        self.assertIn("--secret-id-prompt", out)

    # -- set ------------------------------------------------------------
    def test_set_secret_from_stdin(self):
        out = self.configure()
        self.assertEqual(out, "Vault settings saved; Vault is enabled\n")
        s = self.show()
        self.assertEqual(s["configured"], "yes")
        self.assertEqual(s["enabled"], "yes")
        self.assertEqual(s["url"], self.sim.url)
        self.assertEqual(s["path"], PATH)
        self.assertEqual(s["role_id"], "set")
        self.assertEqual(s["secret_id"], "set")
        doc = self.ok_json("vault", "show")
        self.assertIs(doc["role_id_set"], True)
        self.assertIs(doc["secret_id_set"], True)
        self.assertIs(doc["enabled"], True)
        # The newline was stripped: the stored secret_id logs in.
        self.ok("vault", "test")

        # Neither ids nor --enable/--disable: everything else is kept.
        doc = self.ok_json("vault", "set", "--url", self.sim.url, "--path",
                           PATH, "--timeout-ms", "7000")
        self.assertEqual(doc, {})
        s = self.show()
        self.assertEqual((s["enabled"], s["role_id"], s["secret_id"],
                          s["timeout_ms"]), ("yes", "set", "set", "7000"))
        self.ok("vault", "test")

        out = self.ok("vault", "set", "--url", self.sim.url, "--path", PATH,
                      "--disable")
        self.assertEqual(out, "Vault settings saved; Vault is disabled\n")
        self.ok("vault", "set", "--url", self.sim.url, "--path", PATH)
        s = self.show()
        self.assertEqual((s["enabled"], s["role_id"], s["secret_id"]),
                         ("no", "set", "set"))

        # --namespace '' and --ca-file '' clear; a namespace is shown.
        # Another namespace or ca_file needs the ids again.
        self.ok("vault", "set", "--url", self.sim.url, "--path", PATH,
                "--namespace", "team1", "--ca-file", "/etc/ssl/ca.pem",
                "--role-id", ROLE_ID, "--secret-id-stdin",
                input=SECRET_ID + "\n")
        s = self.show()
        self.assertEqual((s["namespace"], s["ca_file"]),
                         ("team1", "/etc/ssl/ca.pem"))
        self.ok("vault", "set", "--url", self.sim.url, "--path", PATH,
                "--namespace", "", "--ca-file", "", "--role-id", ROLE_ID,
                "--secret-id-stdin", input=SECRET_ID + "\n")
        s = self.show()
        self.assertEqual((s["namespace"], s["ca_file"]), ("-", "-"))

    def test_set_role_and_secret_from_stdin(self):
        self.ok("vault", "set", "--url", self.sim.url, "--path", PATH,
                "--enable", "--role-id-stdin", "--secret-id-stdin",
                input="%s\r\n%s\r\n" % (ROLE_ID, SECRET_ID))
        self.assertEqual(self.show()["secret_id"], "set")
        self.ok("vault", "test")
        # The role_id alone (last line without a newline); secret kept.
        self.ok("vault", "set", "--url", self.sim.url, "--path", PATH,
                "--role-id-stdin", input=ROLE_ID)
        self.ok("vault", "test")

    def test_secret_id_prompt(self):
        """--secret-id-prompt on a terminal: prompt, no echo."""
        master, slave = os.openpty()

        def controlling_tty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        cmd = [cbtest.CREDCTL, "-s", self.d.socket, "vault", "set", "--url",
               self.sim.url, "--path", PATH, "--enable", "--role-id",
               ROLE_ID, "--secret-id-prompt"]
        try:
            p = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE,
                                 start_new_session=True,
                                 preexec_fn=controlling_tty)
        finally:
            os.close(slave)
        tty = b""
        try:
            deadline = time.monotonic() + 10 * cbtest.SCALE
            while b"Vault secret_id: " not in tty:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "no prompt: %r" % tty)
                r, _, _ = select.select([master], [], [], left)
                if r:
                    tty += os.read(master, 4096)
            os.write(master, SECRET_ID.encode() + b"\n")
            out, err = p.communicate(timeout=10 * cbtest.SCALE)
            while True:
                r, _, _ = select.select([master], [], [], 0.2)
                if not r:
                    break
                try:
                    data = os.read(master, 4096)
                except OSError:     # EIO: the terminal is gone
                    break
                if not data:
                    break
                tty += data
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            os.close(master)
        cbtest.CREDCTL_OUTPUT.extend([out, err, tty])
        self.assertEqual(p.returncode, 0, (out, err, tty))
        self.assertNotIn(SECRET_ID.encode(), tty, "the secret_id was echoed")
        self.assertEqual(self.show()["secret_id"], "set")
        self.ok("vault", "test")

    def test_secret_id_on_argv_refused(self):
        for cmd in (["vault", "set", "--url", self.sim.url, "--path", PATH],
                    ["vault", "test"]):
            for opt in (["--secret-id", ARGV_SECRET],
                        ["--secret-id=" + ARGV_SECRET],
                        ["--secret", ARGV_SECRET],
                        [ARGV_SECRET]):
                err = self.usage(*(cmd + opt))
                self.assertNotIn(ARGV_SECRET, err)
        # Nothing reached the broker.
        self.assert_unconfigured()

    def test_cache_seconds(self):
        """--cache-seconds: shown only while the cache is on, kept when
        not given, 0 turns it off."""
        self.configure()
        self.assertNotIn("cache_seconds", self.show())
        self.assertEqual(self.ok_json("vault", "show")["cache_seconds"], 0)
        self.ok("vault", "set", "--url", self.sim.url, "--path", PATH,
                "--cache-seconds", "30")
        out = self.ok("vault", "show")
        self.assertEqual(out.splitlines()[-1].split(),
                         ["cache_seconds:", "30"], out)
        self.ok("vault", "set", "--url", self.sim.url, "--path", PATH,
                "--timeout-ms", "4000")
        doc = self.ok_json("vault", "show")
        self.assertEqual((doc["cache_seconds"], doc["timeout_ms"]),
                         (30, 4000))
        self.ok("vault", "set", "--url", self.sim.url, "--path", PATH,
                "--cache-seconds", "0")
        self.assertNotIn("cache_seconds", self.show())
        self.assertEqual(self.ok_json("vault", "show")["cache_seconds"], 0)

    def test_usage_errors(self):
        base = ["vault", "set", "--url", self.sim.url, "--path", PATH]
        self.usage("vault", "set", "--path", PATH)
        self.usage("vault", "set", "--url", self.sim.url)
        self.usage(*base, "--enable", "--disable")
        self.usage(*base, "--role-id", ROLE_ID, "--role-id-stdin",
                   input="x\n")
        self.usage(*base, "--role-id", "")
        self.usage(*base, "--secret-id-stdin", "--secret-id-prompt",
                   input="x\n")
        self.usage(*base, "--role-id-stdin", "--secret-id-prompt",
                   input="x\n")
        # Not a terminal: the prompt is refused rather than reading a pipe.
        self.usage(*base, "--secret-id-prompt", input=SECRET_ID + "\n")
        for t in ("abc", "-1", "600001", "", "10 "):
            self.usage(*base, "--timeout-ms", t)
        for t in ("abc", "-1", "3601", "", "2s"):
            self.usage(*base, "--cache-seconds", t)
        self.usage(*base, "--cache-seconds", "2", "--cache-seconds", "3")
        self.usage("vault", "test", "--cache-seconds", "2")
        self.usage(*base, "--url", self.sim.url)
        self.usage("vault", "test", "--enable")
        self.usage("vault", "show", "--url", self.sim.url)
        # Bad standard input: exit 2, nothing sent.
        self.usage(*base, "--secret-id-stdin", input="")
        self.usage(*base, "--secret-id-stdin", input="\n")
        self.usage(*base, "--secret-id-stdin",
                   input="%s\n%s\n" % (SECRET_ID, SECRET_ID))
        self.usage(*base, "--role-id-stdin", "--secret-id-stdin",
                   input=ROLE_ID + "\n")
        self.usage(*base, "--role-id-stdin", "--secret-id-stdin",
                   input="\n" + SECRET_ID + "\n")
        self.assert_unconfigured()

    def test_broker_errors(self):
        # vault test with nothing stored: a broker error, exit 1 (the
        # broker checks the url before saying the settings are missing).
        rc, out, err = self.ctl("vault", "test")
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(err, r"^credctl: (not_configured|bad_request): ")
        # Enabling without ids: the broker refuses (bad_request).
        rc, out, err = self.ctl("vault", "set", "--url", self.sim.url,
                                "--path", PATH, "--enable")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("credctl: bad_request: ", err)
        # The broker checks the ids' syntax; its message quotes no value.
        rc, out, err = self.ctl("vault", "set", "--url", self.sim.url,
                                "--path", PATH, "--secret-id-stdin",
                                input=ARGV_SECRET + "!\n")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("secret_id must be", err)
        # No broker: exit 3, before anything is read.
        rc, out, err = cbtest.credctl(os.path.join(self.tmp, "nope.sock"),
                                      "vault", "set", "--url", self.sim.url,
                                      "--path", PATH, "--secret-id-stdin",
                                      input=SECRET_ID + "\n")
        self.assertEqual(rc, 3, out + err)
        self.assert_unconfigured()

    def test_new_url_without_ids_is_refused_with_a_hint(self):
        """Another url, namespace or ca_file without both ids: the broker
        refuses, credctl exits 1 and says which options give the ids;
        nothing changes and no login reaches the other server."""
        other = SimProcess("--kv-mount", MOUNT, stderr=subprocess.DEVNULL)
        other.start()
        self.addCleanup(other.stop)
        self.configure()
        before = self.show()
        cases = [
            ("set", "--url", other.url, "--path", PATH),
            ("set", "--url", self.sim.url, "--path", PATH, "--namespace",
             "team1"),
            ("set", "--url", self.sim.url, "--path", PATH, "--ca-file",
             "/etc/ssl/ca.pem", "--role-id", ROLE_ID),
            ("test", "--url", other.url),
        ]
        for case in cases:
            with self.subTest(case=case):
                rc, out, err = self.ctl("vault", *case)
                self.assertEqual(rc, 1, out + err)
                self.assertIn("credctl: bad_request: changing ", err)
                self.assertIn("needs role_id and secret_id again", err)
                self.assertIn("--role-id ID (or --role-id-stdin) and "
                              "--secret-id-stdin (or --secret-id-prompt)",
                              err)
        self.assertEqual(self.show(), before)
        log = other.admin("GET", "log?since=0")["entries"]
        self.assertEqual([e for e in log if e["path"] ==
                          "/v1/auth/approle/login"], [])
        # The same url written with a trailing slash is not a change.
        self.ok("vault", "test", "--url", self.sim.url + "/")
        # Both ids again: the change is made.
        self.ok("vault", "set", "--url", other.url, "--path", PATH,
                "--role-id", ROLE_ID, "--secret-id-stdin",
                input=SECRET_ID + "\n")
        self.assertEqual(self.show()["url"], other.url)

    def test_path_without_data(self):
        bad = MOUNT + "/ctl"
        rc, out, err = self.ctl("vault", "set", "--url", self.sim.url,
                                "--path", bad, "--role-id", ROLE_ID,
                                "--secret-id-stdin", "--enable",
                                input=SECRET_ID + "\n")
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(out, "")
        self.assertRegex(err, r"^credctl: bad_request: .*/data/")
        doc = self.ok_json("vault", "set", "--url", self.sim.url, "--path",
                           bad, "--role-id", ROLE_ID, "--secret-id-stdin",
                           input=SECRET_ID + "\n", rc=1)
        self.assertEqual(doc["error"]["code"], "bad_request")
        self.assertIn("/data/", doc["error"]["message"])
        self.assert_unconfigured()
        # The same check on a test override.
        self.configure()
        rc, out, err = self.ctl("vault", "test", "--path", bad)
        self.assertEqual(rc, 1, out + err)
        self.assertRegex(err, r"^credctl: bad_request: .*/data/")
        self.assertEqual(self.show()["path"], PATH)

    # -- test -----------------------------------------------------------
    def test_vault_test_ok(self):
        self.configure()
        out = self.ok("vault", "test")
        steps = self.parse_steps(out, True)
        self.assertEqual([s[0] for s in steps], STEPS, out)
        self.assertEqual([s[1] for s in steps], ["ok"] * 4, out)
        doc = self.ok_json("vault", "test")
        self.assertIs(doc["ok"], True)
        self.assertEqual([s["step"] for s in doc["steps"]], STEPS)
        self.assertTrue(all(s["ok"] is True for s in doc["steps"]), doc)
        self.assertTrue(all(isinstance(s["message"], str)
                            for s in doc["steps"]), doc)

    def test_vault_test_overrides_only(self):
        """Overrides on an unconfigured broker test without storing."""
        out = self.ok("vault", "test", "--url", self.sim.url, "--path", PATH,
                      "--role-id", ROLE_ID, "--secret-id-stdin",
                      "--timeout-ms", "3000", input=SECRET_ID + "\n")
        self.assertEqual(self.parse_steps(out, True)[0][:2], ("login", "ok"))
        self.assert_unconfigured()

    def test_vault_test_wrong_secret(self):
        self.configure()
        # Override on the command: the stored secret_id is left alone.
        rc, out, err = self.ctl("vault", "test", "--secret-id-stdin",
                                input=WRONG_SECRET_ID + "\n")
        self.assertEqual(rc, 1, out + err)
        steps = self.parse_steps(out, False)
        self.assertEqual(steps[0][:2], ("login", "failed"), out)
        self.assertIn(LOGIN_FAILED, steps[0][2])
        doc = self.ok_json("vault", "test", "--secret-id-stdin",
                           input=WRONG_SECRET_ID + "\n", rc=1)
        self.assertIs(doc["ok"], False)
        self.assertEqual(doc["steps"][0]["step"], "login")
        self.assertIs(doc["steps"][0]["ok"], False)
        self.assertIn(LOGIN_FAILED, doc["steps"][0]["message"])
        self.ok("vault", "test")

        # Stored: set accepts it (it does not test), test fails.
        self.configure(secret=WRONG_SECRET_ID, enable=None)
        rc, out, err = self.ctl("vault", "test")
        self.assertEqual(rc, 1, out + err)
        steps = self.parse_steps(out, False)
        self.assertEqual(steps[0][:2], ("login", "failed"), out)
        self.assertIn(LOGIN_FAILED, steps[0][2])

    # -- credentials through Vault --------------------------------------
    def test_cred_through_vault(self):
        self.configure()
        self.ok("type", "add", "gh", "--name", "GitHub", "--storage",
                "vault")
        user = new_user()
        value = "ghp_" + secrets.token_hex(16)
        out = self.ok("cred", "set", "gh", user, input=value + "\n")
        self.assertTrue(out.startswith("updated at "), out)
        out = self.ok("cred", "status", user)
        rows = [line.split() for line in out.splitlines()]
        self.assertEqual(rows[0][:4], ["IDENT", "NAME", "STORAGE", "FILLED"])
        self.assertEqual(rows[1][:4], ["gh", "GitHub", "vault", "yes"], out)
        doc = self.ok_json("cred", "status", user)
        self.assertEqual([(d["ident"], d["storage"], d["filled"])
                          for d in doc], [("gh", "vault", True)])
        # The value went to the simulator, sealed.
        dump = json.dumps(self.sim.admin("GET", "secrets"))
        self.assertIn("/users/" + user, dump)
        self.assertNotIn(value, dump)
        cbtest.CREDCTL_OUTPUT.append(dump.encode())

        # Disabled: vault-stored values cannot be set.
        self.ok("vault", "set", "--url", self.sim.url, "--path", PATH,
                "--disable")
        rc, out, err = self.ctl("cred", "set", "gh", user, input="x\n")
        self.assertEqual(rc, 1, out + err)
        self.assertIn("credctl: not_configured: ", err)


if __name__ == "__main__":
    cbtest.main()

"""
make demo (scripts/demo, scripts/install-deps --build, the Makefile):

  - run with standard output not a terminal, the demo exits 0 and writes no
    ESC byte; on a terminal it uses bold, unless NO_COLOR is set;
  - every command it prints ("$ " lines) is a shell line that can be pasted
    as printed: with --keep, the test starts the broker again on the kept
    scratch directory with the printed start line and runs the printed
    credctl lines with bash, exactly as printed, getting the output the
    demo showed;
  - the broker's log is where the demo says it is, after the demo ends; the
    scratch directory is removed unless --keep is given, as it says;
  - it says that a "user" is a platform UUID, not a Unix user;
  - make demo installs only what building and running need
    (install-deps --build: no clang, valgrind, strace, cmocka or test
    Python modules), and builds without the tests (-DCB_TESTS=OFF), which
    then look for neither cmocka nor Python.
"""

import os
import pty
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

BUILD_DIR = os.path.abspath(cbtest.BUILD_DIR)
SOURCE_DIR = os.path.abspath(cbtest.SOURCE_DIR or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEMO = os.path.join(SOURCE_DIR, "scripts", "demo")
INSTALL_DEPS = os.path.join(SOURCE_DIR, "scripts", "install-deps")
DEMO_TIMEOUT = 300

USER_TEXT = ('A "user" is a user of the data platform, named by its UUID; '
             'it is not a\nUnix user.')


def demo_env(**extra):
    env = dict(os.environ)
    for k in ("NO_COLOR", "CREDBROKER_SOCKET", "NOTIFY_SOCKET", "LISTEN_FDS",
              "LISTEN_PID", "CREDENTIALS_DIRECTORY"):
        env.pop(k, None)
    env.update(extra)
    return env


def run_demo(*args, env=None, build=BUILD_DIR):
    """scripts/demo with stdout and stderr a pipe: (status, output)."""
    r = subprocess.run([DEMO] + list(args) + [build],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=env or demo_env(),
                       timeout=DEMO_TIMEOUT)
    return r.returncode, r.stdout


def run_demo_on_tty(env):
    """scripts/demo with stdout a terminal: (status, output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen([DEMO, BUILD_DIR], stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave, env=env)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + DEMO_TIMEOUT
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 65536)
        except OSError:         # EIO: every writer has gone
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    try:
        status = p.wait(timeout=max(1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        raise
    return status, bytes(out)


def read_text(path):
    with open(path, errors="replace") as f:
        return f.read()


def commands(text):
    """[(line, output lines)] of every "$ " line of the transcript."""
    out, cur = [], None
    for line in text.splitlines():
        if line.startswith("$ "):
            cur = (line[2:], [])
            out.append(cur)
        elif line.startswith("==> "):
            cur = None
        elif cur is not None:
            cur[1].append(line)
    for _, lines in out:
        while lines and not lines[-1]:
            lines.pop()
    return out


class DemoTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        assert os.access(cbtest.DAEMON, os.X_OK), "no daemon in " + BUILD_DIR
        # The build directory by a name with a space and a quote, which
        # every printed path must quote.
        cls.tmp = cbtest.make_tmpdir("cbdemo")
        cls.build = os.path.join(cls.tmp, "the build's dir")
        os.symlink(BUILD_DIR, cls.build)
        cls.status, raw = run_demo("--keep", build=cls.build)
        cls.raw = raw
        cls.text = raw.decode("utf-8", "replace")
        m = re.search(r"^Scratch directory: (\S+)$", cls.text, re.M)
        cls.scratch = m.group(1) if m else None

    @classmethod
    def tearDownClass(cls):
        cbtest.remove_tmpdir(cls.tmp)
        if cls.scratch and cls.scratch.startswith("/tmp/credbroker-demo."):
            shutil.rmtree(cls.scratch, ignore_errors=True)

    def test_demo_exits_0_without_escape_codes_on_a_pipe(self):
        self.assertEqual(self.status, 0, self.text)
        self.assertNotIn(b"\x1b", self.raw)
        self.assertIn("HTTP 200\nservice: the Authorization header carries "
                      "the user's token; hello!\n", self.text)

    def test_demo_says_a_user_is_a_platform_uuid(self):
        self.assertIn(USER_TEXT, self.text)

    def test_log_is_where_the_demo_says_after_it_ends(self):
        m = re.search(r"^==> Start the broker \(its log: (.+)\)$",
                      self.text, re.M)
        self.assertIsNotNone(m, self.text)
        log = m.group(1)
        self.assertIn("The last lines of the broker's log, %s (kept):\n"
                      % log, self.text)
        with open(log) as f:
            text = f.read()
        self.assertIn("audit: method=cred.set", text)
        self.assertRegex(text, r"info: stopped\n$")

    def test_kept_scratch_directory_is_kept(self):
        self.assertIsNotNone(self.scratch, self.text)
        self.assertIn("(kept when the demo ends: --keep)", self.text)
        self.assertTrue(os.path.isfile(os.path.join(self.scratch,
                                                    "credbroker.conf")))

    def test_every_printed_command_runs_as_printed(self):
        self.assertEqual(self.status, 0, self.text)
        cmds = commands(self.text)
        self.assertGreater(len(cmds), 10)
        for line, _ in cmds:
            # Each line is well-formed shell, and names its program by a
            # path that exists, or one found on PATH.
            words = shlex.split(line)
            prog = words[0]
            if os.path.isabs(prog):
                self.assertTrue(os.access(prog, os.X_OK), line)
            else:
                self.assertIsNotNone(shutil.which(prog), line)
        # The broker is started in the background with its log where the
        # demo says, and, the scratch directory being kept, the demo ends
        # with the line that starts it again.
        daemon = os.path.join(self.build, "daemon", "credbrokerd")
        conf = os.path.join(self.scratch, "credbroker.conf")
        log = re.search(r"its log: (.+)\)$", self.text, re.M).group(1)
        self.assertEqual(log, os.path.join(self.build,
                                           "credbrokerd-demo.log"))
        start = [c for c, _ in cmds if shlex.split(c)[0] == daemon]
        self.assertEqual([shlex.split(c) for c in start], [
            [daemon, "-f", "-c", conf, "2>", log, "&"],
            [daemon, "-f", "-c", conf]])
        self.assertEqual(cmds[-1][0], start[1])
        # The broker again, with that last line, pasted into bash.
        log = os.path.join(self.scratch, "again.log")
        with open(log, "wb") as errf:
            p = subprocess.Popen(["bash", "-c", "exec " + start[1]],
                                 stdin=subprocess.DEVNULL,
                                 stdout=errf, stderr=errf, env=demo_env())
        try:
            sock = os.path.join(self.scratch, "credbroker.sock")
            deadline = time.monotonic() + cbtest.START_TIMEOUT
            while not self.accepts(sock):
                self.assertIsNone(p.poll(), read_text(log))
                self.assertLess(time.monotonic(), deadline, "no socket")
                time.sleep(0.05)
            # The read-only credctl lines, pasted into bash as printed,
            # print what the demo showed.
            ran = 0
            for line, shown in cmds:
                words = shlex.split(line)
                if not words[0].endswith("/credctl"):
                    continue
                verb = words[words.index("-s") + 2:][:2]
                if verb not in (["hello"], ["type", "list"],
                                ["cred", "status"],
                                ["substitute", "--dry-run"]):
                    continue
                r = subprocess.run(["bash", "-c", line],
                                   stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, env=demo_env(),
                                   timeout=60)
                self.assertEqual(r.returncode, 0, line)
                got = r.stdout.decode().splitlines()
                if verb in (["hello"], ["substitute", "--dry-run"]):
                    self.assertEqual(got, shown, line)
                else:
                    # The demo made another type after these: the rows
                    # it showed are still there, in wider columns.
                    rows = [g.split() for g in got]
                    for row in shown:
                        self.assertIn(row.split(), rows, line)
                ran += 1
            self.assertEqual(ran, 4)
        finally:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(timeout=cbtest.STOP_TIMEOUT), 0,
                         read_text(log))

    @staticmethod
    def accepts(path):
        """True when something listens on the UNIX socket path."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(path)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def test_terminal_gets_bold_unless_no_color(self):
        status, out = run_demo_on_tty(demo_env())
        self.assertEqual(status, 0, out.decode("utf-8", "replace"))
        self.assertIn(b"\x1b[1m==> Create a credential type", out)
        status, out = run_demo_on_tty(demo_env(NO_COLOR="1"))
        self.assertEqual(status, 0, out.decode("utf-8", "replace"))
        self.assertNotIn(b"\x1b", out)
        # Without --keep, the scratch directory is gone, as it says.
        text = out.decode("utf-8", "replace")
        m = re.search(r"^Scratch directory: (\S+)\r?$", text, re.M)
        self.assertIsNotNone(m, text)
        self.assertIn("The scratch directory %s is removed now." % m.group(1),
                      text)
        self.assertFalse(os.path.exists(m.group(1)))


class DemoDepsTest(unittest.TestCase):

    def deps(self, *args):
        r = subprocess.run([INSTALL_DEPS] + list(args) + ["--list"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        return r.stdout.decode().split()

    def test_build_mode_installs_no_test_toolchain(self):
        build = self.deps("--build")
        every = self.deps()
        self.assertEqual(self.deps("--all"), every)
        for p in ("build-essential", "cmake", "pkg-config", "libuv1-dev",
                  "libssl-dev", "libsqlite3-dev", "libmsgpack-dev",
                  "libinih-dev", "libjansson-dev", "libcurl4-openssl-dev",
                  "libsystemd-dev", "libpq-dev", "openssl", "python3"):
            self.assertIn(p, build)
        for p in ("clang", "valgrind", "strace", "libcmocka-dev",
                  "python3-msgpack", "python3-cryptography", "python3-jwt",
                  "python3-pynvim", "postgresql", "mandoc"):
            self.assertNotIn(p, build)
        # The PostgreSQL server is only for the tests.
        self.assertIn("postgresql", every)
        # make check's list has everything the build needs.
        self.assertEqual(sorted(set(build) - set(every)), [])
        r = subprocess.run([INSTALL_DEPS, "--bogus"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual((r.returncode, r.stderr.decode()),
                         (2, "usage: install-deps [--build | --all] "
                             "[--list]\n"))

    def test_make_demo_uses_the_build_list_and_no_tests(self):
        make = shutil.which("make")
        self.assertIsNotNone(make, "make is missing")
        r = subprocess.run([make, "-n", "-C", SOURCE_DIR, "demo",
                            "BUILD=" + BUILD_DIR], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out)
        lines = [l.strip() for l in out.splitlines()]
        self.assertIn("./scripts/install-deps --build", lines)
        self.assertNotIn("./scripts/install-deps", lines)
        self.assertIn("-DCB_TESTS=OFF", out)
        self.assertIn("./scripts/demo " + BUILD_DIR, lines)

    def test_build_without_tests_looks_for_no_test_tool(self):
        tmp = cbtest.make_tmpdir("cbdemo")
        self.addCleanup(cbtest.remove_tmpdir, tmp)
        r = subprocess.run(["cmake", "-S", SOURCE_DIR, "-B", tmp,
                            "-DCB_TESTS=OFF"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout.decode())
        with open(os.path.join(tmp, "CMakeCache.txt")) as f:
            cache = f.read()
        self.assertNotIn("CMOCKA", cache)
        self.assertNotIn("Python3_EXECUTABLE", cache)
        self.assertIn("CB_TESTS:BOOL=OFF", cache)


if __name__ == "__main__":
    unittest.main(verbosity=2)

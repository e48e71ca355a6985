"""
Start-up tests (credbrokerd(8)): what the daemon checks before it starts
and what it says when a check fails.

- The socket's directory is checked before binding: a missing directory,
  a file in its place and a directory the broker's user cannot write each
  have their own message.
- server.socket longer than sun_path is refused when the configuration is
  read (start, --check-config and SIGHUP), and no socket is left behind.
- --check-config creates and changes no file: a fresh directory and one
  holding a store a broker has used are byte-for-byte unchanged after it.
- A second broker refused for a busy socket has touched nothing: no new
  store, and the first broker's store and audit file are unchanged.
- A database directory the broker's user cannot write is named, with the
  reason (SQLite's -wal and -shm files).
- Without -f the daemon detaches: the inherited stderr is closed (its pipe
  reaches EOF), the daemon keeps serving and stops on SIGTERM.
- Usage errors exit 2, start-up failures exit 1.
- A key file with blanks after the key names the file and the cause.

Tests that need another user run credbrokerd as nobody through setpriv(1).
"""

import hashlib
import os
import pwd
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import Daemon  # noqa: E402

LINE_RE = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z (error|warning|info|debug): "
                     r"(.*)$")


def run_daemon(args, timeout=None, user=None):
    """Run credbrokerd to completion: (status, stdout, stderr)."""
    cmd = [cbtest.DAEMON] + args
    if cbtest.VALGRIND:
        cmd = ["valgrind", "--error-exitcode=99", "--leak-check=full",
               "--errors-for-leak-kinds=definite", "-q"] + cmd
    if user is not None:
        pw = pwd.getpwnam(user)
        cmd = [shutil.which("setpriv"), "--reuid=%d" % pw.pw_uid,
               "--regid=%d" % pw.pw_gid, "--clear-groups"] + cmd
    env = dict(os.environ)
    for k in ("CREDENTIALS_DIRECTORY", "LISTEN_FDS", "LISTEN_PID",
              "NOTIFY_SOCKET"):
        env.pop(k, None)
    p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, env=env,
                       timeout=timeout or cbtest.START_TIMEOUT)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def messages(text, level="error"):
    """The messages of the log lines of one level, without time stamps."""
    out = []
    for line in text.splitlines():
        m = LINE_RE.match(line)
        if m and m.group(1) == level:
            out.append(m.group(2))
    return out


def snapshot(top):
    """Everything about a directory tree that a write would change: every
    entry's name, type, mode, owner, size, mtime, ctime and content hash,
    the directories' own included."""
    snap = {}
    for root, dirs, files in os.walk(top):
        for name in [""] + dirs + files:
            path = os.path.join(root, name) if name else root
            st = os.lstat(path)
            entry = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode),
                     st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns,
                     st.st_ctime_ns)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    entry += (hashlib.sha256(f.read()).hexdigest(),)
            elif stat.S_ISLNK(st.st_mode):
                entry += (os.readlink(path),)
            snap[os.path.relpath(path, top)] = entry
    return snap


def need_root(test):
    if os.geteuid() != 0:
        test.fail("this test switches users with setpriv and needs root")
    if shutil.which("setpriv") is None:
        test.fail("setpriv is missing: scripts/install-deps installs "
                  "util-linux")


class StartupTestCase(cbtest.DaemonTestCase):
    start_daemon = False

    def refused(self, args, user=None):
        """Run the daemon, which must exit 1; its error messages."""
        rc, out, err = run_daemon(args, user=user)
        self.assertEqual(rc, 1, "expected a start-up failure (1):\n" + err)
        return messages(err)


class UsageTest(StartupTestCase):

    def test_usage_errors_exit_2_and_startup_failures_exit_1(self):
        for args, what in ((["-x"], "invalid option -- 'x'"),
                           (["-c"], "option requires an argument -- 'c'"),
                           (["--bogus"], "unrecognized option '--bogus'"),
                           (["-f", "-c", self.d.config, "extra"],
                            "credbrokerd: unexpected argument 'extra'")):
            rc, out, err = run_daemon(args)
            self.assertEqual(rc, 2, "%r: %s" % (args, err))
            self.assertIn(what, err)
            self.assertIn("usage: credbrokerd", err)
            self.assertEqual(out, "")
        rc, out, err = run_daemon(["--help"])
        self.assertEqual(rc, 0, err)
        self.assertIn("usage: credbrokerd", out)
        # A start-up failure is 1, not the usage code.
        missing = os.path.join(self.tmp, "missing.conf")
        self.assertEqual(self.refused(["-f", "-c", missing]),
                         ["configuration: cannot open configuration %s: "
                          "No such file or directory" % missing])


class KeyFileTest(StartupTestCase):

    def test_key_file_with_two_trailing_newlines_names_file_and_cause(self):
        cbtest.write_file(self.d.key_file, (self.d.key + "\n\n").encode())
        want = ["master key file %s: 34 bytes: the key is followed by 2 "
                "newlines; remove the extra newline (the file holds the key "
                "and at most one final newline)" % self.d.key_file]
        self.assertEqual(self.refused(["--check-config", "-c",
                                       self.d.config]), want)
        self.assertFalse(os.path.exists(self.d.database))
        self.assertEqual(self.refused(["-f", "-c", self.d.config]), want)
        # Nor does a start: the key is read before the store is opened.
        self.assertEqual([f for f in os.listdir(os.path.dirname(
            self.d.database)) if f.startswith(os.path.basename(
                self.d.database))], [])


class SocketDirectoryTest(StartupTestCase):

    def test_socket_in_missing_directory_says_the_directory_is_missing(self):
        sock = os.path.join(self.tmp, "nodir", "cb.sock")
        self.assertEqual(
            self.refused(["-f", "-c", self.d.config,
                          "-o", "server.socket=" + sock]),
            ["server.socket %s: directory %s does not exist; create it "
             "(under systemd, RuntimeDirectory=) or choose another path"
             % (sock, os.path.dirname(sock))])
        self.assertFalse(os.path.exists(self.d.database))
        # --check-config warns: systemd may pass the socket instead.
        rc, out, err = run_daemon(["--check-config", "-c", self.d.config,
                                   "-o", "server.socket=" + sock])
        self.assertEqual(rc, 0, err)
        self.assertEqual(messages(err, "warning"),
                         ["server.socket %s: directory %s does not exist; "
                          "create it (under systemd, RuntimeDirectory=) or "
                          "choose another path; a start would fail unless "
                          "systemd passes the socket"
                          % (sock, os.path.dirname(sock))])
        self.assertEqual(out, "configuration and master key OK\n")
        self.assertFalse(os.path.exists(self.d.database))

    def test_socket_directory_that_is_a_file_says_so(self):
        sock = os.path.join(self.d.key_file, "cb.sock")
        self.assertEqual(
            self.refused(["-f", "-c", self.d.config,
                          "-o", "server.socket=" + sock]),
            ["server.socket %s: %s is not a directory"
             % (sock, self.d.key_file)])
        deeper = os.path.join(self.d.key_file, "sub", "cb.sock")
        self.assertEqual(
            self.refused(["-f", "-c", self.d.config,
                          "-o", "server.socket=" + deeper]),
            ["server.socket %s: a component of %s is not a directory"
             % (deeper, os.path.dirname(deeper))])
        self.assertFalse(os.path.exists(self.d.database))

    def test_socket_directory_the_user_cannot_write_says_so(self):
        need_root(self)
        nobody = pwd.getpwnam("nobody").pw_uid
        os.chmod(self.tmp, 0o755)
        os.chmod(self.d.config, 0o644)
        rundir = os.path.join(self.tmp, "run")
        os.mkdir(rundir, 0o755)          # root's: nobody cannot write
        sock = os.path.join(rundir, "cb.sock")
        self.assertEqual(
            self.refused(["-f", "-c", self.d.config,
                          "-o", "server.socket=" + sock], user="nobody"),
            ["server.socket %s: directory %s is not writable and "
             "searchable by uid %d, which must create the socket in it; "
             "change its owner or mode, or choose another path"
             % (sock, rundir, nobody)])
        self.assertEqual(os.listdir(rundir), [])


class SocketLengthTest(StartupTestCase):

    def long_socket(self, n):
        base = os.path.join(self.tmp, "s")
        os.makedirs(base, exist_ok=True)
        path = base + "/" + "x" * (n - len(base) - 1)
        self.assertEqual(len(path), n)
        return path

    def test_socket_path_longer_than_sun_path_refused_when_config_is_read(self):
        sock = self.long_socket(108)
        want = ["configuration: -o:1: server.socket is 108 bytes long, but "
                "a UNIX socket path holds at most 107 bytes: choose a "
                "shorter path"]
        self.assertEqual(self.refused(["-f", "-c", self.d.config,
                                       "-o", "server.socket=" + sock]), want)
        self.assertEqual(self.refused(["--check-config", "-c",
                                       self.d.config,
                                       "-o", "server.socket=" + sock]), want)
        # Nothing was created: no socket, stray or cut, and no store.
        self.assertEqual(os.listdir(os.path.dirname(sock)), [])
        self.assertFalse(os.path.exists(self.d.database))
        # 107 bytes fit.
        ok = self.long_socket(107)
        self.d.socket = ok
        self.d.write_config()
        self.d.start()
        with self.d.client() as c:
            c.ok("hello", {})
        self.assertEqual(os.listdir(os.path.dirname(ok)),
                         [os.path.basename(ok)])
        # A reload with a longer path is refused; the broker serves on.
        with open(self.d.config) as f:
            text = f.read()
        with open(self.d.config, "w") as f:
            f.write(text.replace("socket = " + ok, "socket = " + ok + "y"))
        self.d.signal(signal.SIGHUP)
        cbtest.poll_until(lambda: "reload failed" in self.d.log(),
                          cbtest.START_TIMEOUT, what="the reload")
        self.assertIn("warning: reload failed, keeping the running "
                      "configuration: %s:2: server.socket is 108 bytes long, "
                      "but a UNIX socket path holds at most 107 bytes: "
                      "choose a shorter path" % self.d.config, self.d.log())
        with self.d.client() as c:
            c.ok("hello", {})
        self.d.stop()
        self.assertEqual(os.listdir(os.path.dirname(ok)), [])


class CheckConfigReadOnlyTest(StartupTestCase):

    def check_config(self, extra=()):
        rc, out, err = run_daemon(["--check-config", "-c", self.d.config]
                                  + list(extra))
        return rc, out, err

    @cbtest.sqlite_only("--check-config reads only a SQLite store; a "
                        "PostgreSQL one is checked at start")
    def test_check_config_leaves_a_fresh_directory_unchanged(self):
        audit = os.path.join(self.tmp, "audit.log")
        with open(self.d.config, "a") as f:
            f.write("[audit]\nfile = %s\n" % audit)
        before = snapshot(self.tmp)
        self.assertEqual(sorted(before), [".", "cb.conf", "master.key"])
        rc, out, err = self.check_config()
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "configuration and master key OK\n")
        self.assertEqual(messages(err, "info"),
                         ["database %s does not exist: it will be created "
                          "at the first start" % self.d.database])
        self.assertEqual(snapshot(self.tmp), before)

    @cbtest.sqlite_only("--check-config reads only a SQLite store; a "
                        "PostgreSQL one is checked at start")
    def test_check_config_leaves_a_used_store_unchanged(self):
        audit = os.path.join(self.tmp, "audit.log")
        self.d.args += ["-o", "audit.file=" + audit]
        self.d.start()
        c = self.d.client()
        c.ok("type.create", {"ident": "tok", "name": "T", "storage": "db"})
        c.ok("cred.set", {"type": "tok", "user": cbtest.new_user(),
                          "value": "v1"})
        # Beside a running broker it reads the store and changes nothing
        # of its own (the -shm index is the running broker's).
        running = {p: os.stat(os.path.join(self.tmp, p)).st_mtime_ns
                   for p in ("cb.db", "cb.db-wal", "audit.log")}
        rc, out, err = self.check_config(["-o", "audit.file=" + audit])
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "configuration and master key OK\n")
        self.assertEqual({p: os.stat(os.path.join(self.tmp, p)).st_mtime_ns
                          for p in running}, running)
        c.close()
        self.d.stop()
        for name in os.listdir(self.tmp):
            if name.startswith("stderr-"):
                os.unlink(os.path.join(self.tmp, name))
        before = snapshot(self.tmp)
        self.assertIn("cb.db", before)
        self.assertNotIn("cb.db-wal", before)
        rc, out, err = self.check_config(["-o", "audit.file=" + audit])
        self.assertEqual(rc, 0, err)
        self.assertEqual(out, "configuration and master key OK\n")
        self.assertEqual(messages(err), [])
        self.assertEqual(snapshot(self.tmp), before)
        # The key check is still done, read-only.
        other = os.path.join(self.tmp, "other.key")
        cbtest.write_file(other, (cbtest.strong_key() + "\n").encode())
        before = snapshot(self.tmp)
        rc, out, err = self.check_config(
            ["-o", "security.secret_key_file=" + other])
        self.assertEqual(rc, 1, err)
        self.assertEqual(messages(err),
                         ["master key does not match this store (%s): the "
                          "values in it were sealed with another key"
                          % self.d.database])
        self.assertEqual(snapshot(self.tmp), before)


class BusySocketTest(StartupTestCase):

    def test_second_broker_on_busy_socket_refused_before_touching_anything(
            self):
        audit = os.path.join(self.tmp, "audit.log")
        self.d.args += ["-o", "audit.file=" + audit]
        self.d.start()
        c = self.d.client()
        self.addCleanup(c.close)
        c.ok("type.create", {"ident": "tok", "name": "T", "storage": "db"})
        c.ok("cred.set", {"type": "tok", "user": cbtest.new_user(),
                          "value": "v1"})
        other = os.path.join(self.tmp, "second")
        os.mkdir(other, 0o700)
        newdb = os.path.join(other, "cb.db")
        # (-shm is the running broker's index, not the store.)
        files = [p for p in self.d.store_files()
                 if not p.endswith("-shm")] + [audit]
        before = snapshot(self.tmp)
        for args in (["-o", "audit.file=" + os.path.join(other, "a.log")],
                     ["-o", "audit.file=" + audit]):
            msgs = self.refused(["-f", "-c", self.d.config,
                                 "-o", "storage.database=" + newdb] + args)
            self.assertEqual(os.listdir(other), [],
                             "the refused broker created files")
            after = snapshot(self.tmp)
            for p in files:
                rel = os.path.relpath(p, self.tmp)
                self.assertEqual(after[rel], before[rel], rel)
            self.assertEqual(msgs, ["another broker is listening on %s"
                                    % self.d.socket])
        c.ok("hello", {})


class DatabaseDirectoryTest(StartupTestCase):

    def test_database_directory_the_user_cannot_write_names_wal_and_shm(self):
        need_root(self)
        nobody = pwd.getpwnam("nobody")
        os.chmod(self.tmp, 0o755)
        os.chmod(self.d.config, 0o644)
        os.chown(self.d.key_file, nobody.pw_uid, nobody.pw_gid)
        rundir = os.path.join(self.tmp, "run")
        os.mkdir(rundir, 0o755)
        os.chown(rundir, nobody.pw_uid, nobody.pw_gid)
        state = os.path.join(self.tmp, "state")
        os.mkdir(state, 0o755)           # root's: nobody cannot write
        db = os.path.join(state, "cb.db")
        want = ["database directory %s is not writable by uid %d: SQLite "
                "creates the -wal and -shm files of %s in it, so the "
                "broker's user must be able to write there; chown the "
                "directory to that user (under systemd use "
                "StateDirectory=)" % (state, nobody.pw_uid, db)]
        args = ["-c", self.d.config,
                "-o", "server.socket=" + os.path.join(rundir, "cb.sock"),
                "-o", "storage.database=" + db]
        self.assertEqual(self.refused(["-f"] + args, user="nobody"), want)
        # --check-config says the same of a store it would create.
        self.assertEqual(self.refused(["--check-config"] + args,
                                      user="nobody"), want)
        self.assertEqual(os.listdir(state), [])
        # Writable, it starts (the same user, the same files).
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
        rc, out, err = run_daemon(["--check-config"] + args, user="nobody")
        self.assertEqual(rc, 0, err)


class DetachTest(StartupTestCase):

    def test_detached_daemon_closes_inherited_stderr_and_keeps_serving(self):
        cmd = [cbtest.DAEMON, "-c", self.d.config]
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=self.d.environ(), cwd=self.tmp)
        # Every holder of the pipe's write ends (the parent, which exits,
        # and the detached daemon) must close them: read to EOF.
        got = {p.stdout.fileno(): b"", p.stderr.fileno(): b""}
        err = ""
        deadline = time.monotonic() + cbtest.START_TIMEOUT
        while got and time.monotonic() < deadline:
            r, _, _ = select.select(list(got), [], [], 0.5)
            for fd in r:
                data = os.read(fd, 65536)
                if data:
                    got[fd] += data
                else:
                    self.assertIn(fd, got)
                    out = got.pop(fd)
                    if fd == p.stderr.fileno():
                        err = out.decode("utf-8", "replace")
        p.stdout.close()
        p.stderr.close()
        self.assertEqual(got, {}, "stdout or stderr is still open after "
                         "%d s" % cbtest.START_TIMEOUT)
        self.assertEqual(p.wait(timeout=cbtest.STOP_TIMEOUT), 0, err)
        # Start-up went to stderr; nothing after the detach did.
        self.assertIn("listening on %s" % self.d.socket,
                      messages(err, "info")[-1])
        self.assertNotIn("started (pid", err)
        # The daemon's pid is in the lock file (written again after the
        # detach) and its standard descriptors are /dev/null.
        lock = self.d.lock_file

        def daemon_pid():
            with open(lock) as f:
                text = f.read().strip()
            return int(text) if text and int(text) != p.pid else None

        pid = cbtest.poll_until(daemon_pid, cbtest.START_TIMEOUT,
                                what="the daemon's pid in " + lock)
        self.addCleanup(self.kill_quietly, pid)
        for fd in (0, 1, 2):
            self.assertEqual(os.readlink("/proc/%d/fd/%d" % (pid, fd)),
                             "/dev/null")
        with self.d.client() as c:
            res = c.ok("hello", {})
            self.assertEqual(res["protocol"], 1)
        os.kill(pid, signal.SIGTERM)

        def gone():
            try:
                with open("/proc/%d/stat" % pid) as f:
                    return f.read().split(") ")[1].split()[0] in ("Z", "X")
            except FileNotFoundError:
                return True

        cbtest.poll_until(gone, cbtest.STOP_TIMEOUT, what="the daemon to stop")
        self.assertFalse(os.path.exists(self.d.socket),
                         "the stopped daemon left its socket")

    @staticmethod
    def kill_quietly(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


if __name__ == "__main__":
    unittest.main()

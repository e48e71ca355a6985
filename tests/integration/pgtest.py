"""
pgtest: a private PostgreSQL cluster for credbroker's tests.

Debian's postgresql package provides the server (initdb, pg_ctl, postgres);
this module makes a throw-away cluster in a temporary directory: a socket
directory of its own, TCP on 127.0.0.1 on a free port, a role with a
password (scram-sha-256 for every connection, over the socket as over TCP,
so that the password path is always exercised) and a database owned by it.

The tests run as root and initdb refuses root, so the server runs as an
unprivileged user (nobody by default, CB_PG_USER to change it): the whole
temporary directory belongs to it.  Its parents must be searchable by that
user; a TMPDIR that is not (under /root, say) is passed over for /tmp.

A cluster never outlives its test.  Besides an atexit hook and a SIGTERM /
SIGINT handler, every cluster has a watchdog: a small process holding the
read end of a pipe whose write end only the test holds.  When the test
ends in any way, SIGKILL included, the pipe closes and the watchdog stops
the server (immediate mode, then SIGKILL of its process group) and removes
the directory.

As a program, for tests written in C (tests/unit/test_pg.c):

    pgtest.py serve [--fsync]

starts a cluster and prints one line, "port=N host=SOCKDIR user=U
dbname=D passfile=FILE dir=DIR", then reads commands on standard input,
one a line, and answers "ok" or "error MESSAGE" to each: start, stop,
restart, kill, sql SQL (run as the superuser; the answer is "ok" followed
by psql's unaligned output on the same line).  End of input stops the
cluster and removes everything.

Not a test file itself (no test_ prefix): ctest only globs test_*.py.
"""

import atexit
import glob
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

START_TIMEOUT = 60
STOP_TIMEOUT = 60
KEEP_TMP = os.environ.get("CB_KEEP_TMP") == "1"

ROLE = "cbtest"
DATABASE = "cbtest"
SUPERUSER = "postgres"

_live = []              # clusters to stop at exit


def _version_key(path):
    """Sort key of /usr/lib/postgresql/VERSION/bin: the version, numerically."""
    v = os.path.basename(os.path.dirname(path))
    return [int(x) if x.isdigit() else 0 for x in v.split(".")]


def find_bindir():
    """The directory of initdb, pg_ctl and postgres: $CB_PG_BINDIR, else
    pg_config --bindir when it has them, else the newest
    /usr/lib/postgresql/*/bin."""
    env = os.environ.get("CB_PG_BINDIR")
    if env:
        return env
    try:
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True,
                             text=True, check=True).stdout.strip()
        if os.access(os.path.join(out, "initdb"), os.X_OK):
            return out
    except (OSError, subprocess.CalledProcessError):
        pass
    dirs = [d for d in glob.glob("/usr/lib/postgresql/*/bin")
            if os.access(os.path.join(d, "initdb"), os.X_OK)]
    if not dirs:
        raise RuntimeError("PostgreSQL's initdb not found: install Debian's "
                           "postgresql package (scripts/install-deps)")
    return sorted(dirs, key=_version_key, reverse=True)[0]


def find_psql(bindir):
    p = os.path.join(bindir, "psql")
    if os.access(p, os.X_OK):
        return p
    p = shutil.which("psql")
    if p is None:
        raise RuntimeError("psql not found: install postgresql-client")
    return p


def free_port():
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _searchable_by(path, uid, gid):
    """True when every directory from / down to path can be searched by
    uid/gid (the server must reach its data and socket directories)."""
    path = os.path.abspath(path)
    parts = path.split(os.sep)
    for i in range(1, len(parts) + 1):
        d = os.sep.join(parts[:i]) or os.sep
        try:
            st = os.stat(d)
        except OSError:
            return False
        if st.st_uid == uid:
            ok = st.st_mode & stat.S_IXUSR
        elif st.st_gid == gid:
            ok = st.st_mode & stat.S_IXGRP
        else:
            ok = st.st_mode & stat.S_IXOTH
        if not ok:
            return False
    return True


def _base_tmp(uid, gid):
    """A parent for the cluster's directory that the server can reach."""
    for d in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        # The socket's path (d/cb-pg-XXXXXXXX/sock/.s.PGSQL.N) must fit
        # in sun_path's 108 bytes.
        if (len(d) <= 60 and os.path.isdir(d) and
                _searchable_by(d, uid, gid)):
            return d
    raise RuntimeError("no temporary directory that %d can reach" % uid)


# The watchdog: runs in its own session (a Ctrl-C for the test does not
# reach it), waits for end of file on standard input, then stops the
# cluster whatever state it is in and removes its directory.
_WATCHDOG = r"""
import os, shutil, signal, subprocess, sys
pg_ctl, data, top, keep, uid = sys.argv[1:6]
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
while sys.stdin.buffer.read(4096):
    pass
def postmaster():
    try:
        with open(os.path.join(data, "postmaster.pid")) as f:
            return int(f.readline())
    except (OSError, ValueError):
        return None
pid = postmaster()
if pid is not None:
    kw = {}
    if os.getuid() == 0 and int(uid) != 0:
        kw = dict(user=int(uid), group=os.stat(data).st_gid, extra_groups=[])
    subprocess.run([pg_ctl, "-D", data, "-m", "immediate", "-w", "-t", "30",
                    "stop"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, cwd=top, **kw)
    try:
        os.killpg(os.getpgid(pid), signal.SIGKILL)
    except OSError:
        pass
if keep != "1":
    shutil.rmtree(top, ignore_errors=True)
"""


class Cluster:
    """A private PostgreSQL cluster.  start() makes it (initdb the first
    time) and returns self; stop(), restart() and kill() act on the
    server; cleanup() stops it and removes everything.

    fsync=False (the default) turns fsync and full_page_writes off, which
    is fine unless durability is the point of the test."""

    def __init__(self, fsync=False, user=None):
        self.fsync = fsync
        self.bindir = find_bindir()
        self.psql_bin = find_psql(self.bindir)
        self.role = ROLE
        self.database = DATABASE
        self.password = secrets.token_urlsafe(24)
        self.super_password = secrets.token_urlsafe(24)
        self.port = None
        self.dir = None
        self.watchdog = None
        self._initialised = False
        # Root runs the server as an unprivileged user; anyone else as
        # themselves.
        if os.getuid() == 0:
            pw = pwd.getpwnam(user or os.environ.get("CB_PG_USER", "nobody"))
            self.uid, self.gid = pw.pw_uid, pw.pw_gid
        else:
            self.uid, self.gid = os.getuid(), os.getgid()

    # Paths.
    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def sockdir(self):
        return os.path.join(self.dir, "sock")

    @property
    def logfile(self):
        return os.path.join(self.dir, "server.log")

    @property
    def passfile(self):
        """The role's password, alone in a file (mode 0600, the test's)."""
        return os.path.join(self.dir, "password")

    def conninfo(self, tcp=False):
        """A libpq connection string without the password."""
        host = "127.0.0.1" if tcp else self.sockdir
        return "host=%s port=%d user=%s dbname=%s" % (
            host, self.port, self.role, self.database)

    # Running the server's programs as its user.
    def _env(self):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "LANG": "C", "LC_ALL": "C", "HOME": self.dir, "TZ": "UTC"}
        return env

    def _run(self, argv, check=True, timeout=None, input=None):
        kw = {}
        if os.getuid() == 0 and self.uid != 0:
            kw = dict(user=self.uid, group=self.gid, extra_groups=[])
        r = subprocess.run(argv, cwd=self.dir, env=self._env(),
                           capture_output=True, text=True, timeout=timeout,
                           input=input, start_new_session=True, **kw)
        if check and r.returncode != 0:
            raise RuntimeError("%s failed (%d): %s%s" % (
                os.path.basename(argv[0]), r.returncode, r.stderr.strip(),
                self._log_tail()))
        return r

    def _log_tail(self):
        try:
            with open(self.logfile, errors="replace") as f:
                lines = f.read().splitlines()[-15:]
            return "\nserver log:\n" + "\n".join(lines) if lines else ""
        except OSError:
            return ""

    def _tool(self, name):
        return os.path.join(self.bindir, name)

    # Life cycle.
    def _make_dir(self):
        base = _base_tmp(self.uid, self.gid)
        self.dir = tempfile.mkdtemp(prefix="cb-pg-", dir=base)
        os.mkdir(self.sockdir, 0o700)
        # The password files are written before the directory changes
        # hands: owned by the test, readable by the test alone.
        for path, pw in ((self.passfile, self.password),
                         (os.path.join(self.dir, "superpw"),
                          self.super_password)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(pw + "\n")
        if self.uid != os.getuid():
            os.chown(self.dir, self.uid, self.gid)
            os.chown(self.sockdir, self.uid, self.gid)
            # initdb reads the superuser's password file as the server's
            # user.
            os.chown(os.path.join(self.dir, "superpw"), self.uid, self.gid)
        _live.append(self)
        self._start_watchdog()

    def _start_watchdog(self):
        r, w = os.pipe()
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG, self._tool("pg_ctl"),
             self.data, self.dir, "1" if KEEP_TMP else "0", str(self.uid)],
            stdin=r, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
        os.close(r)
        # Only this process holds the write end; children never inherit
        # it (os.pipe() descriptors are not inheritable).
        self._watch_fd = w

    def _initdb(self):
        self._run([self._tool("initdb"), "-D", self.data, "-U", SUPERUSER,
                   "--pwfile", os.path.join(self.dir, "superpw"),
                   "--auth-local=scram-sha-256",
                   "--auth-host=scram-sha-256", "--encoding=UTF8",
                   "--no-locale", "--no-sync"], timeout=START_TIMEOUT)
        with open(os.path.join(self.data, "pg_hba.conf"), "w") as f:
            f.write("# credbroker tests: a password for every connection\n"
                    "local all all scram-sha-256\n"
                    "host all all 127.0.0.1/32 scram-sha-256\n"
                    "host all all ::1/128 scram-sha-256\n")
        self._write_conf()
        self._initialised = True

    def _write_conf(self):
        conf = [
            "listen_addresses = '127.0.0.1'",
            "port = %d" % self.port,
            "unix_socket_directories = '%s'" % self.sockdir,
            "password_encryption = 'scram-sha-256'",
            "max_connections = 40",
            "shared_buffers = 16MB",
            "dynamic_shared_memory_type = posix",
            "wal_level = minimal",
            "max_wal_senders = 0",
            "logging_collector = off",
            "log_min_messages = warning",
            "log_connections = off",
        ]
        if not self.fsync:
            conf += ["fsync = off", "full_page_writes = off",
                     "synchronous_commit = off"]
        path = os.path.join(self.data, "postgresql.auto.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n")
        if self.uid != os.getuid():
            os.chown(path, self.uid, self.gid)

    def start(self):
        """Start the server (making the cluster first if needed) and wait
        until it accepts connections; the role and database exist on
        return."""
        if self.dir is None:
            self._make_dir()
        first = not self._initialised
        tries = 3 if first else 1
        for i in range(tries):
            if first:
                self.port = free_port()
                if not self._initialised:
                    self._initdb()
                else:
                    self._write_conf()
            try:
                self._run([self._tool("pg_ctl"), "-D", self.data, "-l",
                           self.logfile, "-w", "-t", str(START_TIMEOUT),
                           "start"], timeout=START_TIMEOUT + 10)
                break
            except RuntimeError:
                # Most likely the port was taken meanwhile: another one.
                if i == tries - 1:
                    raise
        if first:
            self._setup_role()
        return self

    def _setup_role(self):
        pw = self.password.replace("'", "''")
        self.sql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (self.role, pw),
                 superuser=True)
        self.sql("CREATE DATABASE %s OWNER %s" % (self.database, self.role),
                 superuser=True)

    def stop(self, mode="fast"):
        """Stop the server (mode fast, smart or immediate) and wait."""
        self._run([self._tool("pg_ctl"), "-D", self.data, "-m", mode, "-w",
                   "-t", str(STOP_TIMEOUT), "stop"],
                  timeout=STOP_TIMEOUT + 10)

    def restart(self, mode="fast"):
        """Restart the server: connections are cut, the data stays."""
        self._run([self._tool("pg_ctl"), "-D", self.data, "-l",
                   self.logfile, "-m", mode, "-w", "-t", str(START_TIMEOUT),
                   "restart"], timeout=START_TIMEOUT + STOP_TIMEOUT + 10)

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline())
        except (OSError, ValueError, TypeError):
            return None

    def kill(self):
        """SIGKILL the server and all its processes, as a crash would, and
        wait until they are gone."""
        pid = self.postmaster_pid()
        if pid is None:
            return
        try:
            pgid = os.getpgid(pid)
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            return
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline:
            try:
                os.killpg(pgid, 0)
            except OSError:
                return
            time.sleep(0.05)
        raise RuntimeError("PostgreSQL processes still alive after SIGKILL")

    def running(self):
        """True when the postmaster is alive."""
        pid = self.postmaster_pid()
        if pid is None:
            return False
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True

    def cleanup(self):
        """Stop the server if it runs and remove the directory (the
        watchdog does both when it sees the pipe close)."""
        if self.dir is None:
            return
        if self in _live:
            _live.remove(self)
        if self.running():
            try:
                self.stop(mode="immediate")
            except (RuntimeError, subprocess.TimeoutExpired):
                self.kill()
        os.close(self._watch_fd)
        try:
            self.watchdog.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.watchdog.kill()
            self.watchdog.wait()
        if not KEEP_TMP:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    # Running SQL.
    def sql(self, query, superuser=False, tcp=False, user=None,
            password=None, check=True):
        """Run SQL with psql (unaligned, tuples only) and return
        (returncode, stdout, stderr) or, with check, stdout.  The password
        goes through the environment, never the command line."""
        if superuser:
            user, password = SUPERUSER, self.super_password
        user = user or self.role
        password = self.password if password is None else password
        env = self._env()
        env["PGPASSWORD"] = password
        env["PGCONNECT_TIMEOUT"] = "10"
        argv = [self.psql_bin, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", "127.0.0.1" if tcp else self.sockdir,
                "-p", str(self.port), "-U", user,
                "-d", "postgres" if superuser else self.database,
                "-c", query]
        r = subprocess.run(argv, env=env, capture_output=True, text=True,
                           timeout=60, cwd=self.dir)
        if not check:
            return r.returncode, r.stdout, r.stderr
        if r.returncode != 0:
            raise RuntimeError("psql failed: %s" % r.stderr.strip())
        return r.stdout.rstrip("\n")

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _cleanup_all():
    for c in list(_live):
        try:
            c.cleanup()
        except Exception:       # noqa: BLE001 (best effort at exit)
            pass


atexit.register(_cleanup_all)


def _on_signal(signum, frame):
    # Only kill(2) here: signal-safe.  An immediate shutdown of every live
    # cluster; the watchdog removes the directories once we are gone.
    for c in list(_live):
        pid = c.postmaster_pid()
        if pid is not None:
            try:
                os.kill(pid, signal.SIGQUIT)
            except OSError:
                pass
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def install_signal_handlers():
    """Stop every cluster on SIGTERM and SIGINT before dying of them."""
    for s in (signal.SIGTERM, signal.SIGINT):
        if signal.getsignal(s) in (signal.SIG_DFL, signal.default_int_handler):
            signal.signal(s, _on_signal)


install_signal_handlers()


def _serve(argv):
    """pgtest.py serve: see the module's documentation."""
    c = Cluster(fsync="--fsync" in argv)
    try:
        c.start()
    except Exception as e:      # noqa: BLE001 (reported to the caller)
        print("error %s" % " ".join(str(e).split()), flush=True)
        c.cleanup()
        return 1
    print("port=%d host=%s user=%s dbname=%s passfile=%s dir=%s" % (
        c.port, c.sockdir, c.role, c.database, c.passfile, c.dir),
        flush=True)
    try:
        for line in sys.stdin:
            cmd, _, arg = line.strip().partition(" ")
            try:
                out = ""
                if cmd == "start":
                    c.start()
                elif cmd == "stop":
                    c.stop()
                elif cmd == "restart":
                    c.restart()
                elif cmd == "kill":
                    c.kill()
                elif cmd == "sql":
                    out = " " + " ".join(c.sql(arg, superuser=True).split())
                else:
                    raise RuntimeError("unknown command %r" % cmd)
                print("ok" + out, flush=True)
            except Exception as e:      # noqa: BLE001
                print("error %s" % " ".join(str(e).split()), flush=True)
    finally:
        c.cleanup()
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        sys.exit(_serve(sys.argv[2:]))
    sys.stderr.write("usage: pgtest.py serve [--fsync]\n")
    sys.exit(2)

"""
cbtest: harness for credbroker's integration tests.

Starts the real credbrokerd on a private socket in a temporary directory and
talks to it two ways: with a plain msgpack-rpc client written here against
the wire contract (SPEC section 6), and with the credctl binary.  Everything
a test starts is registered for clean-up, so daemons and temporary
directories go away even when an assertion fails half-way through.

Environment:
  CB_BUILD_DIR   build tree (binaries in daemon/ and client/)
  CB_SOURCE_DIR  source tree (unused by the harness, passed by ctest)
  CB_VALGRIND=1  run the daemon under valgrind and check its exit status
  CB_KEEP_TMP=1  keep temporary directories (for debugging)
  CB_TEST_SHARD=i/n
                 run the i-th of n shares of the suite's tests (1-based:
                 the i-th test, the (i+n)-th, ...), so that a slow suite
                 can run as n processes side by side
  CB_TEST_BACKEND=postgresql
                 every Daemon stores its metadata and db-stored values in
                 PostgreSQL (storage.backend = postgresql) instead of
                 SQLite: one private cluster per test process (pgtest.py,
                 started at the first Daemon, stopped and removed at exit,
                 on failure and on SIGTERM / SIGINT) and a fresh database
                 per store directory; sqlite (the default) is the other
                 value.  backend() says which; sqlite_only() and
                 postgresql_only() mark the tests that are about one
                 backend.
"""

import atexit
import base64
import errno
import itertools
import json
import os
import re
import secrets
import select
import shutil
import signal
import socket
import sqlite3
import string
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

import msgpack

BUILD_DIR = os.environ.get("CB_BUILD_DIR",
                           os.path.join(os.path.dirname(os.path.abspath(
                               __file__)), "..", "..", "build"))
SOURCE_DIR = os.environ.get("CB_SOURCE_DIR", "")
DAEMON = os.path.join(BUILD_DIR, "daemon", "credbrokerd")
CREDCTL = os.path.join(BUILD_DIR, "client", "credctl")
VALGRIND = os.environ.get("CB_VALGRIND") == "1"
KEEP_TMP = os.environ.get("CB_KEEP_TMP") == "1"
BACKENDS = ("sqlite", "postgresql")

# Time limits.  Valgrind makes everything an order of magnitude slower.
SCALE = 10 if VALGRIND else 1
START_TIMEOUT = 15 * SCALE
STOP_TIMEOUT = 20 * SCALE
CALL_TIMEOUT = 10 * SCALE

PERMISSIONS = [
    "edit:user-access-credentials-types",
    "edit:user-credentials",
    "use:credentials",
    "read:health",
    "edit:keys",
    "use:keys",
]
ERROR_CODES = ["bad_request", "forbidden", "not_found", "conflict",
               "not_configured", "unavailable", "too_large", "internal"]

UUID_RE = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
SERVER_RE = re.compile(r"^credbroker \d+\.\d+\.\d+$")

# Every byte any Client received and every credctl output, for the canary
# checks (test_canary.py scans them for leaked values).
RECEIVED = bytearray()
CREDCTL_OUTPUT = []

_live_daemons = []
_tmpdirs = []


def have_binaries():
    return os.access(DAEMON, os.X_OK)


def have_credctl():
    return os.access(CREDCTL, os.X_OK)


def daemon_sanitized():
    """True when credbrokerd is built with AddressSanitizer (memory
    figures from /proc are meaningless then)."""
    try:
        with open(DAEMON, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def new_user():
    """A fresh user id in the lower-case RFC 4122 text form."""
    return str(uuid.uuid4())


def bearer_substitute(user, ident, url):
    """substitute's params for an action of user's: a GET of url whose
    Authorization header carries the credential "tok" of type ident as a
    bearer token."""
    return {"component": {"kind": "action", "initiator": user,
                          "credentials": [{"id": "tok", "type": ident}]},
            "request": {"method": "GET", "url": url,
                        "headers": [["Authorization",
                                     "Bearer <<.credentials.tok>>"]]}}


def strong_key(n=32):
    """A random printable key of n characters with plenty of variety."""
    alphabet = string.ascii_letters + string.digits + "!$%&()*+,-./:<>?@[]^_{|}~"
    while True:
        k = "".join(secrets.choice(alphabet) for _ in range(n))
        if (any(c.islower() for c in k) and any(c.isupper() for c in k)
                and any(c.isdigit() for c in k) and len(set(k)) >= n // 2):
            return k


def plain_key(n=32):
    """A random alphanumeric key (safe inline in an INI file)."""
    alphabet = string.ascii_letters + string.digits
    while True:
        k = "".join(secrets.choice(alphabet) for _ in range(n))
        if (any(c.islower() for c in k) and any(c.isupper() for c in k)
                and any(c.isdigit() for c in k)):
            return k


def make_tmpdir(prefix="cbt"):
    """A temporary directory short enough for UNIX socket paths."""
    base = os.environ.get("TMPDIR", "/tmp")
    if len(base) > 60 or not os.path.isdir(base):
        base = "/tmp"
    d = tempfile.mkdtemp(prefix=prefix, dir=base)
    _tmpdirs.append(d)
    return d


def remove_tmpdir(d):
    if KEEP_TMP:
        sys.stderr.write("cbtest: keeping %s\n" % d)
        return
    shutil.rmtree(d, ignore_errors=True)
    if d in _tmpdirs:
        _tmpdirs.remove(d)


def write_file(path, data, mode=0o600):
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def write_config(path, sections):
    """Write an INI file.  sections: {name: [(key, value), ...]} (list so
    that repeatable keys such as access.grant can repeat)."""
    lines = []
    for sec, items in sections.items():
        lines.append("[%s]" % sec)
        for k, v in items:
            lines.append("%s = %s" % (k, v))
        lines.append("")
    write_file(path, "\n".join(lines))


def default_grants():
    return ["uid:%d *" % os.getuid()]


def poll_until(fn, timeout, interval=0.02, what="condition"):
    """Call fn until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s"
                                 % (timeout, what))
        time.sleep(interval)


def backend():
    """The store every Daemon uses unless told otherwise: "sqlite" (the
    default) or "postgresql" (CB_TEST_BACKEND)."""
    b = os.environ.get("CB_TEST_BACKEND") or "sqlite"
    if b not in BACKENDS:
        raise RuntimeError("CB_TEST_BACKEND=%s: expected one of %s"
                           % (b, ", ".join(BACKENDS)))
    return b


_default_backend = backend        # for code where "backend" is a parameter


def _only(which, reason):
    if not reason or "\n" in reason:
        raise ValueError("%s_only needs a one-line reason" % which)

    def decorate(obj):
        return unittest.skipUnless(
            backend() == which, "%s only: %s" % (which, reason))(obj)
    return decorate


# The reason of the tests that rotate the master key: until rotation is
# fleet-wide (SPEC 12), key.rotate refuses to run on PostgreSQL.
NO_PG_ROTATION = ("on postgresql, key.rotate first needs the new key in "
                  "security.next_key_file of every live broker: the fleet's "
                  "rotation is tested by test_fleet_keys")


def sqlite_only(reason):
    """Decorator for a test (or a class of tests) about the SQLite store
    itself (its file, its modes, its durability): skipped, with the
    reason, when CB_TEST_BACKEND=postgresql."""
    return _only("sqlite", reason)


def postgresql_only(reason):
    """Decorator for a test (or a class) that needs the PostgreSQL
    backend: skipped, with the reason, on the default SQLite one."""
    return _only("postgresql", reason)


def assert_store_health(testcase, store, backend=None):
    """Check health's store of a lone broker that is well: its backend
    (backend() unless given) and status "ok", and on PostgreSQL also the
    connected database and no other broker of the fleet."""
    backend = backend or _default_backend()
    store = dict(store)
    if backend == "postgresql":
        # The database and the fleet's other brokers (none here).
        testcase.assertTrue(store.pop("database")["connected"])
        testcase.assertEqual(store.pop("brokers"), [])
    testcase.assertEqual(store, {"backend": backend, "status": "ok"})


# The private PostgreSQL cluster of this process (pgtest.Cluster), started
# by the first Daemon that needs it; one database per store directory.
_pg = None
_pg_databases = {}      # realpath of a Daemon's directory -> database
_pg_seq = itertools.count(1)
_pg_strategy = None     # CREATE DATABASE's STRATEGY clause, once known
_pg_signals = {}


def pg_cluster():
    """The process's PostgreSQL cluster, started on first use (fsync off:
    the tests are not about PostgreSQL's own durability).  It is stopped
    and its directory removed at exit, after the daemons; on SIGTERM and
    SIGINT too; and by pgtest's watchdog if the process is killed."""
    global _pg
    if _pg is None:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import pgtest
        c = pgtest.Cluster(fsync=False)
        # Registered after pgtest's own hook, so run before it: the
        # daemons stop before their server does.
        atexit.register(_pg_cleanup)
        for s in (signal.SIGTERM, signal.SIGINT):
            _pg_signals[s] = signal.signal(s, _pg_on_signal)
        try:
            c.start()
        except BaseException:
            c.cleanup()
            raise
        _pg = c
    return _pg


def pg_new_database():
    """A new, empty database owned by the cluster's role; its name."""
    global _pg_strategy
    c = pg_cluster()
    name = "cb_%d" % next(_pg_seq)
    if _pg_strategy is None:
        # FILE_COPY (PostgreSQL 15 and later) copies template1's files
        # instead of writing them all to the WAL: faster for these small
        # databases, and durability is not the point (fsync is off).
        v = int(c.sql("SHOW server_version_num", superuser=True))
        _pg_strategy = " STRATEGY FILE_COPY" if v >= 150000 else ""
    c.sql("CREATE DATABASE %s OWNER %s%s" % (name, c.role, _pg_strategy),
          superuser=True)
    return name


def pg_database_for(directory):
    """The database of the store kept in directory: made the first time,
    the same one afterwards (as cb.db is the same file for every Daemon
    started on one directory)."""
    key = os.path.realpath(directory)
    if key not in _pg_databases:
        _pg_databases[key] = pg_new_database()
    return _pg_databases[key]


def fleet(database, key, cleanup, start=True, remove_dir=True):
    """One broker of a fleet: a directory of its own, the PostgreSQL store
    on the shared database and the fleet's master key.  cleanup(fn)
    registers what undoes it, last first (a TestCase's addCleanup, or the
    append of a list run in reverse): the directory (unless remove_dir is
    false: the caller removes it), then the daemon's clean-up and finish,
    then its client.  (daemon, client), or (daemon, None) not started."""
    tmp = make_tmpdir()
    if remove_dir:
        cleanup(lambda: remove_tmpdir(tmp))
    d = Daemon(tmp, key=key, backend="postgresql", pg_database=database)
    cleanup(d.cleanup)
    cleanup(d.finish)
    if not start:
        return d, None
    d.start()
    c = d.client()
    cleanup(c.close)
    return d, c


def pg_sql(query, database, check=True):
    """Run SQL in one of the cluster's databases as its role (psql,
    unaligned, tuples only); see pgtest.Cluster.sql."""
    c = pg_cluster()
    saved = c.database
    c.database = database
    try:
        return c.sql(query, check=check)
    finally:
        c.database = saved


def _pg_literal(v):
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, bytes):
        v = v.decode()
    return "'%s'" % str(v).replace("'", "''")


def _pg_bind(query, params):
    """query with each ? replaced by the literal of its parameter (the
    tests' statements hold no ? of their own)."""
    parts = query.split("?")
    assert len(parts) == len(params) + 1, (query, params)
    out = [parts[0]]
    for v, rest in zip(params, parts[1:]):
        out += [_pg_literal(v), rest]
    return "".join(out)


def _pg_cleanup():
    global _pg
    _cleanup_everything()
    if _pg is not None:
        c, _pg = _pg, None
        c.cleanup()


def _pg_on_signal(signum, frame):
    # Daemons first (they would log their lost connection otherwise),
    # then the server, then our directories; then die of the signal.
    for d in list(_live_daemons):
        try:
            if d.proc is not None and d.proc.poll() is None:
                d.proc.kill()
        except OSError:
            pass
    try:
        _pg_cleanup()
    finally:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def uuid_text(v):
    """A credvalues key read by store_rows as text (see value_id)."""
    return str(uuid.UUID(bytes=v)) if isinstance(v, bytes) else v


class DaemonDied(AssertionError):
    pass


class Daemon:
    """One credbrokerd on a private socket, database and key.

    Files live in a directory of their own (tmpdir): cb.sock, cb.db,
    master.key, cb.conf, and stderr-N.log for each start.

    backend: "sqlite" or "postgresql" (default: backend()).  On
    postgresql the store is a database of the process's cluster: the one
    of tmpdir (made at the first Daemon there), or pg_database, which
    several Daemons may share; the role's password is in tmpdir/pg-password
    (mode 0600), named by storage.postgresql_password_file.
    """

    def __init__(self, tmpdir=None, key=None, grants=None, extra=None,
                 key_source="file", args=None, env=None, backend=None,
                 pg_database=None):
        self.dir = tmpdir or make_tmpdir()
        self.socket = os.path.join(self.dir, "cb.sock")
        self.database = os.path.join(self.dir, "cb.db")
        self.key_file = os.path.join(self.dir, "master.key")
        self.config = os.path.join(self.dir, "cb.conf")
        assert len(self.socket) < 100, self.socket
        self.backend = backend or _default_backend()
        assert self.backend in BACKENDS, self.backend
        self.pg_database = None
        self.pg_password_file = None
        if self.backend == "postgresql":
            self.pg_database = pg_database or pg_database_for(self.dir)
            self.pg_password_file = os.path.join(self.dir, "pg-password")
            write_file(self.pg_password_file, pg_cluster().password + "\n")
        else:
            assert pg_database is None, "pg_database without postgresql"
        self.key = strong_key() if key is None else key
        self.grants = default_grants() if grants is None else grants
        self.extra = extra or {}
        self.key_source = key_source   # "file" | "inline" | "none"
        self.args = list(args or [])
        self.env = env
        self.proc = None
        self.starts = 0
        self.stderr_path = None
        self.write_key()
        self.write_config()

    # -- files --------------------------------------------------------
    def write_key(self, key=None):
        if key is not None:
            self.key = key
        k = self.key.encode() if isinstance(self.key, str) else self.key
        write_file(self.key_file, k + b"\n")

    @property
    def key_bytes(self):
        return self.key.encode() if isinstance(self.key, str) else self.key

    def config_sections(self):
        sec = {
            "server": [("socket", self.socket)],
            "storage": [("database", self.database)],
            "security": [],
            "access": [("grant", g) for g in self.grants],
        }
        if self.backend == "postgresql":
            sec["storage"] += [
                ("backend", "postgresql"),
                ("postgresql", self.pg_conninfo()),
                ("postgresql_password_file", self.pg_password_file)]
        if self.key_source == "file":
            sec["security"].append(("secret_key_file", self.key_file))
        elif self.key_source == "inline":
            sec["security"].append(("secret_key", self.key))
        for s, items in self.extra.items():
            sec.setdefault(s, []).extend(items)
        if not sec["security"]:
            del sec["security"]
        return sec

    def write_config(self):
        write_config(self.config, self.config_sections())

    def pg_conninfo(self):
        """storage.postgresql: libpq's conninfo, without the password."""
        c = pg_cluster()
        return "host=%s port=%d user=%s dbname=%s" % (
            c.sockdir, c.port, c.role, self.pg_database)

    def pg_sql(self, query, check=True):
        """SQL in this daemon's PostgreSQL database (see pg_sql)."""
        assert self.backend == "postgresql"
        return pg_sql(query, self.pg_database, check=check)

    # -- the store at rest, on either backend -------------------------
    # The tables have the same names and columns in the SQLite file and
    # in PostgreSQL (storage/sqlite.c, storage/pgschema.c), so a test
    # that reads or tampers with rows does it through these.
    def store_rows(self, query, params=()):
        """The rows (tuples) of a SELECT on the store's tables: the SQLite
        file (read-only), or the PostgreSQL database.  ? marks a
        parameter."""
        if self.backend == "sqlite":
            con = sqlite3.connect("file:%s?mode=ro" % self.database,
                                  uri=True)
            try:
                return con.execute(query, params).fetchall()
            finally:
                con.close()
        out = self.pg_sql("SELECT coalesce(json_agg(to_json(q)), '[]') "
                          "FROM (%s) q" % _pg_bind(query, params))
        return [tuple(r.values()) for r in json.loads(out)]

    def value_id(self, u):
        """A type or user uuid as credvalues keys it, for store_rows and
        store_execute: its 16 bytes in the SQLite file (schema 6), its
        text on PostgreSQL."""
        return uuid.UUID(u).bytes if self.backend == "sqlite" else u

    def store_execute(self, query, params=()):
        """Run one statement that changes the store (? marks a
        parameter): a test that tampers with rows, the daemon stopped."""
        if self.backend == "sqlite":
            con = sqlite3.connect(self.database)
            try:
                con.execute(query, params)
                con.commit()
            finally:
                con.close()
            return
        self.pg_sql(_pg_bind(query, params))

    @property
    def lock_file(self):
        """The file whose lock keeps a second broker off the store, with
        the holder's pid in it: storage.database's .lock, or on
        PostgreSQL the local mirror's."""
        if self.backend == "postgresql":
            return self.database + ".mirror.lock"
        return self.database + ".lock"

    def store_files(self):
        """The paths of the files the broker keeps next to
        storage.database: the SQLite database and its -wal, -shm,
        -journal and lock files, or the PostgreSQL backend's local mirror
        and lock file."""
        base = os.path.basename(self.database)
        return [os.path.join(self.dir, n) for n in sorted(os.listdir(self.dir))
                if n.startswith(base)]

    def store_blobs(self):
        """[(name, bytes)]: everything where the store keeps data at rest,
        to look for what must never be there.  SQLite: the database file
        and its -wal, -shm and -journal.  PostgreSQL: the files next to
        storage.database (the local mirror and lock), the text of every
        row of every table, and, after a checkpoint, the files of the
        database's directory in the cluster and its write-ahead log."""
        out = []
        for p in self.store_files():
            with open(p, "rb") as f:
                out.append((os.path.basename(p), f.read()))
        if self.backend == "sqlite":
            return out
        tables = self.pg_sql(
            "SELECT quote_ident(table_schema) || '.' || quote_ident("
            "table_name) FROM information_schema.tables WHERE "
            "table_type = 'BASE TABLE' AND table_schema NOT IN "
            "('pg_catalog', 'information_schema')").split()
        for t in tables:
            out.append(("table " + t,
                        self.pg_sql("SELECT t::text FROM %s t" % t).encode()))
        c = pg_cluster()
        c.sql("CHECKPOINT", superuser=True)
        oid = self.pg_sql("SELECT oid FROM pg_database WHERE "
                          "datname = current_database()")
        for sub in (os.path.join("base", oid), "pg_wal"):
            top = os.path.join(c.data, sub)
            for name in sorted(os.listdir(top)):
                p = os.path.join(top, name)
                if os.path.isfile(p):
                    with open(p, "rb") as f:
                        out.append(("%s/%s" % (sub, name), f.read()))
        return out

    # -- process ------------------------------------------------------
    def command(self, extra_args=()):
        cmd = [DAEMON, "-f", "-c", self.config] + self.args + list(extra_args)
        if VALGRIND:
            cmd = ["valgrind", "--error-exitcode=99", "--leak-check=full",
                   "--errors-for-leak-kinds=definite", "-q"] + cmd
        return cmd

    def environ(self):
        env = dict(os.environ)
        for k in ("CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "LISTEN_FDS",
                  "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC",
                  "WATCHDOG_PID"):
            env.pop(k, None)
        if self.env:
            env.update(self.env)
        return env

    def start(self, wait=True, extra_args=()):
        assert self.proc is None or self.proc.poll() is not None
        self.starts += 1
        self.killed = False     # set by kill9()
        self.checked = False    # exit status already checked by stop()
        self.stderr_path = os.path.join(self.dir, "stderr-%d.log" % self.starts)
        errf = open(self.stderr_path, "wb")
        try:
            self.proc = subprocess.Popen(
                self.command(extra_args), stdin=subprocess.DEVNULL,
                stdout=errf, stderr=errf, env=self.environ(),
                cwd=self.dir)
        finally:
            errf.close()
        if self not in _live_daemons:
            _live_daemons.append(self)
        if wait:
            self.wait_ready()
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        """stderr of the current (last) run."""
        if not self.stderr_path or not os.path.exists(self.stderr_path):
            return ""
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def all_logs(self):
        out = []
        for i in range(1, self.starts + 1):
            p = os.path.join(self.dir, "stderr-%d.log" % i)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    out.append(f.read())
        return b"".join(out)

    def wait_ready(self, timeout=START_TIMEOUT):
        """Poll until the socket accepts and hello answers."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise DaemonDied("credbrokerd exited with %d before it was "
                                 "ready; stderr:\n%s" % (rc, self.log()))
            if os.path.exists(self.socket):
                try:
                    c = Client(self.socket, timeout=2 * SCALE)
                    try:
                        err, res = c.call("hello", {})
                        if err is None:
                            return res
                        last = err
                    finally:
                        c.close()
                except (OSError, ConnectionClosed) as e:
                    last = e
            if time.monotonic() >= deadline:
                self.kill9()
                raise AssertionError("credbrokerd not ready after %.1fs "
                                     "(last: %r); stderr:\n%s"
                                     % (timeout, last, self.log()))
            time.sleep(0.02)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Wait for the process to exit; return its status or None."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout=STOP_TIMEOUT, check=True):
        """SIGTERM and wait.  With check, insist on exit status 0 (under
        valgrind: no memory errors, no definite leaks)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            rc = self.wait_exit(timeout)
            if rc is None:
                self.kill9()
                raise AssertionError("credbrokerd did not exit within %.1fs "
                                     "of SIGTERM; stderr:\n%s"
                                     % (timeout, self.log()))
        rc = self.proc.returncode
        if check:
            self.checked = True
            if VALGRIND and rc == 99:
                raise AssertionError("valgrind reported errors:\n%s"
                                     % self.log())
            if rc != 0:
                raise AssertionError("credbrokerd exited with %d on SIGTERM;"
                                     " stderr:\n%s" % (rc, self.log()))
        return rc

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.killed = True
            self.proc.kill()
            self.proc.wait()

    def finish(self):
        """End of a test: stop a running daemon with SIGTERM and require a
        clean exit (under valgrind: no errors); a daemon that exited by
        itself must have exited 0.  Catches crashes and, with valgrind or
        sanitizers, memory errors in whatever the test exercised."""
        if self.proc is None:
            return
        if self.alive():
            self.stop(check=True)
            return
        if not self.killed and not self.checked:
            rc = self.proc.returncode
            self.checked = True
            if rc != 0:
                raise AssertionError("credbrokerd exited unexpectedly with "
                                     "status %d; stderr:\n%s"
                                     % (rc, self.log()))

    def restart(self, wait=True):
        if self.alive():
            self.stop()
        return self.start(wait=wait)

    def cleanup(self):
        try:
            if self.alive():
                self.proc.send_signal(signal.SIGTERM)
                if self.wait_exit(STOP_TIMEOUT) is None:
                    self.kill9()
        finally:
            if self in _live_daemons:
                _live_daemons.remove(self)

    def client(self, timeout=CALL_TIMEOUT):
        return Client(self.socket, timeout=timeout)

    def vm_kib(self, field="VmHWM"):
        """A memory figure of the daemon from /proc (KiB), or None."""
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None


@atexit.register
def _cleanup_everything():
    for d in list(_live_daemons):
        try:
            d.kill9()
        except Exception:
            pass
    for t in list(_tmpdirs):
        remove_tmpdir(t)


class ConnectionClosed(Exception):
    pass


def pack_request(msgid, method, params=None, wrap=True):
    if params is None:
        params = {}
    return msgpack.packb([0, msgid, method, [params] if wrap else params],
                         use_bin_type=True)


class Client:
    """A plain msgpack-rpc client over a UNIX socket.

    call() sends one request and waits for the response with the same
    msgid; responses to other msgids that arrive meanwhile are kept.
    """

    def __init__(self, path, timeout=CALL_TIMEOUT):
        self.path = path
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.connect(path)
        except OSError:
            self.sock.close()
            raise
        self.unpacker = msgpack.Unpacker(raw=False, strict_map_key=False,
                                         max_buffer_size=64 << 20)
        self.msgs = []          # decoded messages not yet consumed
        self.raw = bytearray()  # every byte received on this connection
        self.next_id = 1
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def fileno(self):
        return self.sock.fileno()

    def new_id(self):
        i = self.next_id
        self.next_id += 1
        return i

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        """Read once (waiting until the deadline); False on timeout."""
        if self.eof:
            raise ConnectionClosed("connection closed by the daemon")
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([self.sock], [], [], left)
        if not r:
            return False
        try:
            data = self.sock.recv(1 << 16)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            raise ConnectionClosed("connection closed by the daemon")
        self.raw += data
        RECEIVED.extend(data)
        self.unpacker.feed(data)
        for m in self.unpacker:
            self.msgs.append(m)
        return True

    def recv(self, timeout=None):
        """Next message, raising ConnectionClosed or TimeoutError."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.msgs:
            if not self._fill(deadline):
                raise TimeoutError("no message within the deadline")
        return self.msgs.pop(0)

    def wait_response(self, msgid, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, m in enumerate(self.msgs):
                if (isinstance(m, list) and len(m) == 4 and m[0] == 1
                        and m[1] == msgid):
                    return self.msgs.pop(i)
            if not self._fill(deadline):
                raise TimeoutError("no response to msgid %d" % msgid)

    def call(self, method, params=None, msgid=None, timeout=None):
        """Send a request and return (error, result)."""
        if msgid is None:
            msgid = self.new_id()
        self.send_raw(pack_request(msgid, method, params))
        m = self.wait_response(msgid, timeout)
        return m[2], m[3]

    def ok(self, method, params=None):
        """call() that insists on success and returns the result."""
        err, res = self.call(method, params)
        if err is not None:
            raise AssertionError("%s %r failed: %r" % (method, params, err))
        return res

    def pipeline(self, requests, timeout=None):
        """Send [(method, params), ...] in one write; return the list of
        (msgid, response) in request order plus the msgids used."""
        ids = []
        buf = bytearray()
        for method, params in requests:
            i = self.new_id()
            ids.append(i)
            buf += pack_request(i, method, params)
        self.send_raw(bytes(buf))
        return [(i, self.wait_response(i, timeout)) for i in ids]

    def wait_closed(self, timeout=None):
        """Read until the daemon closes the connection.  Returns the list
        of messages received meanwhile; raises AssertionError on timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        got = list(self.msgs)
        self.msgs = []
        while True:
            try:
                if not self._fill(deadline):
                    raise AssertionError("connection not closed by the "
                                         "daemon within the deadline")
            except ConnectionClosed:
                break
            got.extend(self.msgs)
            self.msgs = []
        got.extend(self.msgs)
        self.msgs = []
        return got


def credctl(sock, *args, input=None, json=False, timeout=30 * SCALE,
            env=None):
    """Run credctl -s SOCK [--json] ARGS.  input: bytes/str for stdin (None:
    stdin is /dev/null).  Returns (rc, stdout, stderr) as text."""
    cmd = [CREDCTL, "-s", sock]
    if json:
        cmd.append("--json")
    cmd += list(args)
    if isinstance(input, str):
        input = input.encode()
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run(cmd, input=input if input is not None else None,
                       stdin=subprocess.DEVNULL if input is None else None,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, env=e)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    CREDCTL_OUTPUT.append(p.stdout)
    CREDCTL_OUTPUT.append(p.stderr)
    return p.returncode, out, err


class DaemonTestCase(unittest.TestCase):
    """A test case with one daemon started per test (self.d) and a client
    (self.c).  Subclasses may set daemon_kwargs."""

    daemon_kwargs = {}
    start_daemon = True

    def setUp(self):
        if not have_binaries():
            self.skipTest("credbrokerd not built at %s" % DAEMON)
        self.tmp = make_tmpdir()
        self.addCleanup(remove_tmpdir, self.tmp)
        self.d = Daemon(self.tmp, **self.daemon_kwargs)
        self.addCleanup(self.d.cleanup)
        self.addCleanup(self.d.finish)
        if self.start_daemon:
            self.d.start()
            self.c = self.d.client()
            self.addCleanup(self.c.close)

    def assertError(self, resp, code, msg=None):
        err, res = resp
        self.assertIsNotNone(err, msg or "expected error %s, got result %r"
                             % (code, res))
        self.assertIsInstance(err, dict)
        self.assertEqual(err.get("code"), code,
                         msg or "expected %s, got %r" % (code, err))
        self.assertIsInstance(err.get("message"), str)
        self.assertTrue(err["message"], "empty error message")
        return err

    def assertOk(self, resp):
        err, res = resp
        self.assertIsNone(err, "unexpected error %r" % (err,))
        return res

    def stop_daemon_checked(self):
        """Stop the daemon with SIGTERM and require a clean exit."""
        self.d.stop()


def b64_forms(data):
    """Substrings that any base64 encoding of data (standard or URL-safe,
    at any alignment inside a larger buffer) must contain."""
    forms = set()
    for k in range(3):
        enc = base64.b64encode(b"\0" * k + data)
        # Drop the group holding prefix bytes and the last (unstable) one.
        start = 4 if k else 0
        mid = enc[start:len(enc) - 4]
        if len(mid) >= 8:
            forms.add(mid)
            forms.add(mid.translate(bytes.maketrans(b"+/", b"-_")))
    return forms


def leak_forms(secret):
    """Every encoding of secret (bytes) to look for in outputs."""
    forms = {secret, secret.hex().encode(), secret.hex().upper().encode()}
    forms |= b64_forms(secret)
    return forms


def find_leaks(blob, secrets_list):
    """Return a list of (secret, form) found in blob."""
    found = []
    for s in secrets_list:
        for f in leak_forms(s):
            if f in blob:
                found.append((s, f))
    return found


class _ShardLoader(unittest.TestLoader):
    """Loads one share of a suite (CB_TEST_SHARD=i/n): of its tests in
    their usual order, the i-th, the (i+n)-th, and so on.  A class's
    setUpClass runs in every share that has one of its tests."""

    def __init__(self, index, count):
        super().__init__()
        self.index, self.count = index, count

    def loadTestsFromModule(self, module, *args, **kwargs):
        def flat(suite):
            for t in suite:
                if isinstance(t, unittest.TestSuite):
                    yield from flat(t)
                else:
                    yield t
        every = list(flat(super().loadTestsFromModule(module, *args,
                                                      **kwargs)))
        return self.suiteClass(every[self.index - 1::self.count])


def main():
    shard = os.environ.get("CB_TEST_SHARD")
    if not shard:
        unittest.main(verbosity=2)
        return
    m = re.fullmatch(r"([1-9][0-9]*)/([1-9][0-9]*)", shard)
    if m is None or int(m.group(1)) > int(m.group(2)):
        sys.exit("CB_TEST_SHARD=%r: want i/n with 1 <= i <= n" % shard)
    unittest.main(verbosity=2, testLoader=_ShardLoader(int(m.group(1)),
                                                        int(m.group(2))))

#!/usr/bin/python3
"""
The PostgreSQL store under faults (storage.backend = postgresql, SPEC
section 12; credbrokerd(8), "Running a fleet"): a database stopped in the
middle of a load, and a slow database.

Every test runs on PostgreSQL whatever CB_TEST_BACKEND says: one private
cluster for the suite (pgtest.Cluster, fsync off), a fresh schema per
test, a broker with storage.postgresql_timeout = 2, a db-stored type and a
Vault-stored type (tests/vault/vaultsim.py).

 - Stopped (fast and immediate shutdown) while client threads write and
   substitute: db-type calls answer unavailable, naming the cause, within
   the timeout plus a margin; hello and Vault-type substitutions keep
   answering, each answer checked; a type write answers unavailable and
   changes nothing.  Started again, the broker recovers by itself, and
   every write acknowledged before the stop reads back with its exact
   value; a type created before the stop is still there, in PostgreSQL
   too (a restarted broker rebuilds its mirror from it).
 - Slow: writes wait in a trigger (pg_sleep, its delay read from a table
   the test changes), reads behind a TCP proxy that holds the server's
   answers.  While a db call waits, hello and Vault-type substitutions on
   other connections answer within 500 ms (hello) and 1 s (Vault, behind
   the simulator) each: the loop never blocks.  A
   db call slower than the timeout answers unavailable, and a write given
   up on that way is not committed later (the sessions' statement_timeout).

Why a proxy for reads: a read is one SELECT on the values table, and
nothing on the server side can make that statement itself slow without
also slowing or blocking writes (a lock) or changing what the broker
sends.  A proxy that holds the server's bytes delays the answers exactly
as a slow network or a loaded server would, and only while the test says
so.

Every value set here is a canary: none may appear in the broker's log or
in any error message it sent.
"""

import collections
import os
import secrets
import socket
import sys
import threading
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402
import pgtest  # noqa: E402
import vaulttest  # noqa: E402
from vaulttest import VaultCase, canary  # noqa: E402

TIMEOUT = 2                     # storage.postgresql_timeout, seconds
# A db call that cannot be served answers within the timeout plus this.
MARGIN = 3.0
# A call that does not need the database, while the database is slow or
# down, is answered within these (wide: the machine is shared and busy).
# hello is the loop alone; a Vault-type substitution also waits on the
# Vault simulator, a Python process that a busy machine starves first.
# hello's is well below the delays of the slow database (1 s for a read,
# 1.5 s for a write): a loop blocked on the database fails it.
PROBE_BOUND = 0.5
VAULT_PROBE_BOUND = 1.0
# The broker reconnects with a growing delay (at most 10 s).
RECOVER_TIMEOUT = 30

DB = "pgf_db"                   # db-stored type
VT = "pgf_vault"                # Vault-stored type

_cluster = None
_seq = [0]


def setUpModule():
    global _cluster
    if not cbtest.have_binaries():
        return
    c = pgtest.Cluster(fsync=False)
    try:
        c.start()
        # fsync stays off (a crash of the server, not of the machine, is
        # tested), but a commit is acknowledged only once its WAL is
        # written: pgtest's synchronous_commit = off would lose the last
        # acknowledged commits in an immediate shutdown.
        c.sql("ALTER SYSTEM SET synchronous_commit = on", superuser=True)
        c.sql("SELECT pg_reload_conf()", superuser=True)
    except BaseException:
        c.cleanup()
        raise
    _cluster = c


def tearDownModule():
    global _cluster
    if _cluster is not None:
        c, _cluster = _cluster, None
        c.cleanup()


def new_schema():
    """A fresh schema of the cluster's database, owned by the broker's
    role: each test's store (the broker names it in search_path), much
    cheaper than a database of its own."""
    _seq[0] += 1
    name = "pgf_%d" % _seq[0]
    _cluster.sql("CREATE SCHEMA %s" % name)
    return name


def sql(schema, query):
    """SQL in schema as the broker's role (which owns its tables)."""
    return _cluster.sql("SET search_path TO %s; %s" % (schema, query))


class DelayProxy:
    """A TCP proxy in front of the cluster that holds the server's answers
    for `delay` seconds (0: none) on their way to the broker, in order,
    each chunk from when it arrived, as a slow network would."""

    def __init__(self, port):
        self.target = ("127.0.0.1", port)
        self.delay = 0.0
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.closing = False
        self.lock = threading.Lock()
        self.socks = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                cs, _ = self.lsock.accept()
            except OSError:
                return
            try:
                us = socket.create_connection(self.target, timeout=5)
            except OSError:
                cs.close()
                continue
            us.settimeout(None)
            for s in (cs, us):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.socks += [cs, us]
            threading.Thread(target=self._pump, args=(cs, us, False),
                             daemon=True).start()
            q = collections.deque()
            cv = threading.Condition()
            threading.Thread(target=self._pump, args=(us, cs, True, q, cv),
                             daemon=True).start()
            threading.Thread(target=self._deliver, args=(q, cv, cs, us),
                             daemon=True).start()

    def _pump(self, src, dst, held, q=None, cv=None):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if not held:
                    dst.sendall(data)
                    continue
                with cv:
                    q.append((time.monotonic() + self.delay, data))
                    cv.notify()
        except OSError:
            pass
        if held:
            with cv:
                q.append((None, None))
                cv.notify()
        else:
            self._close(src, dst)

    def _deliver(self, q, cv, cs, us):
        try:
            while True:
                with cv:
                    while not q:
                        cv.wait()
                    due, data = q.popleft()
                if data is None:
                    break
                left = due - time.monotonic()
                if left > 0:
                    time.sleep(left)
                cs.sendall(data)
        except OSError:
            pass
        self._close(cs, us)

    @staticmethod
    def _close(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                s.close()
            except OSError:
                pass

    def close(self):
        self.closing = True
        self.lsock.close()
        with self.lock:
            self._close(*self.socks)


class PgCase(VaultCase):
    """A broker on a fresh schema of the suite's cluster, Vault
    configured, a db-stored and a Vault-stored type."""

    tcp_port = None             # the port the broker connects to
    start_daemon = False        # start_broker(), below

    def setUp(self):
        if _cluster is None:
            self.skipTest("credbrokerd not built at %s" % cbtest.DAEMON)
        if not _cluster.running():
            _cluster.start()
        self.schema = new_schema()
        self.pw_dir = cbtest.make_tmpdir("cbpw")
        self.addCleanup(cbtest.remove_tmpdir, self.pw_dir)
        pwfile = os.path.join(self.pw_dir, "pg-password")
        cbtest.write_file(pwfile, _cluster.password + "\n")
        if self.tcp_port is not None:
            host, port = "127.0.0.1", self.tcp_port
        else:
            host, port = _cluster.sockdir, _cluster.port
        # Its own storage settings, whatever CB_TEST_BACKEND says.
        self.daemon_kwargs = {"backend": "sqlite", "extra": {"storage": [
            ("backend", "postgresql"),
            ("postgresql", "host=%s port=%d user=%s dbname=%s "
             "options=-csearch_path=%s" % (host, port, _cluster.role,
                                           _cluster.database,
                                           self.schema)),
            ("postgresql_password_file", pwfile),
            ("postgresql_timeout", str(TIMEOUT))]}}
        self.errors = []        # every error the broker answered
        self.errlock = threading.Lock()
        super().setUp()
        self.start_broker()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.configure()
        self.db_type = self.mktype(DB, storage="db")
        self.mktype(VT)
        self.vault_user = new_user()
        self.vault_value = canary()
        self.set_value(VT, self.vault_user, self.vault_value)
        self.addCleanup(self.check_errors_hold_no_value)

    def start_broker(self):
        """Start (or restart) the broker.  Start-up opens three connections
        to PostgreSQL in turn, each bounded by the 2-second timeout; on a
        machine starved of CPU one of them can time out before anything
        these tests check has run ("timeout expired").  Such a start is
        tried again, twice at most; any other failure fails the test."""
        if self.d.alive():
            self.d.stop()
        for attempt in range(3):
            try:
                self.d.start()
                return
            except cbtest.DaemonDied:
                log = self.d.log()
                if attempt == 2 or not ("timeout expired" in log or
                                        "did not answer within" in log):
                    raise
                self.d.checked = True       # its exit status is known

    # -- calls ---------------------------------------------------------
    def note(self, err):
        if err is not None:
            with self.errlock:
                self.errors.append(err)
        return err

    def call(self, client, method, params, timeout=None):
        """(err, res, seconds) of one call."""
        t0 = time.monotonic()
        err, res = client.call(method, params, timeout=timeout)
        return self.note(err), res, time.monotonic() - t0

    def probe(self, client, what):
        """hello and a Vault-type substitution, each answered right and
        within its bound; returns the slower one's time."""
        err, res, t1 = self.call(client, "hello", {})
        self.assertIsNone(err, "hello (%s): %r" % (what, err))
        self.assertRegex(res["server"], cbtest.SERVER_RE)
        err, res, t2 = self.call(client, "substitute",
                                 self.sub_params(VT, self.vault_user))
        self.assertIsNone(err, "Vault substitute (%s): %r" % (what, err))
        self.assertEqual(self.sub_value(res), self.vault_value, what)
        self.assertLess(t1, PROBE_BOUND, "hello took %.3f s (%s)"
                        % (t1, what))
        self.assertLess(t2, VAULT_PROBE_BOUND, "Vault substitute took "
                        "%.3f s (%s)" % (t2, what))
        return max(t1, t2)

    def db_set(self, client, user, value, timeout=None):
        v = value.encode()
        with self.errlock:
            self.planted.append(v)
        return self.call(client, "cred.set",
                         {"type": DB, "user": user, "value": value},
                         timeout=timeout)

    def db_sub(self, client, user, timeout=None):
        return self.call(client, "substitute", self.sub_params(DB, user),
                         timeout=timeout)

    def assertUnavailableIn(self, got, bound, *needles):
        err, res, dt = got
        # Not the result itself: it may hold a value.
        self.assertIsNotNone(err, "expected unavailable, got a result")
        self.assertEqual(err.get("code"), "unavailable", err)
        for n in needles:
            self.assertIn(n.lower(), err["message"].lower(), err)
        self.assertLess(dt, bound, "answered after %.2f s: %r" % (dt, err))
        return err

    def wait_db_back(self, client, user, value):
        """Poll until a db-type substitution answers again (bounded)."""
        def ok():
            err, res, _ = self.db_sub(client, user)
            if err is None:
                self.assertEqual(self.sub_value(res), value)
                return True
            self.assertEqual(err["code"], "unavailable", err)
            return False
        cbtest.poll_until(ok, RECOVER_TIMEOUT, interval=0.1,
                          what="db calls served again")

    def check_errors_hold_no_value(self):
        blob = repr(self.errors).encode()
        with self.errlock:
            vals = list(self.planted)
        self.assertEqual(find_leaks(blob, vals), [],
                         "a value in an error message")


class Writers:
    """Threads on connections of their own: `nset` set db values for new
    users and record each acknowledged one; `nsub` substitute a db value
    and check it.  Every answer is kept with its start time and
    latency."""

    def __init__(self, case, nset=3, nsub=2):
        self.case = case
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.acked = {}             # user -> value
        self.answers = []           # (kind, t0, seconds, err)
        self.bad = []               # wrong substituted values, exceptions
        self.threads = [threading.Thread(target=self._set, daemon=True)
                        for _ in range(nset)]
        self.threads += [threading.Thread(target=self._sub, daemon=True)
                         for _ in range(nsub)]
        self.sub_user = new_user()
        self.sub_value = canary()

    def start(self):
        c = self.case.d.client()
        self.case.assertIsNone(self.case.db_set(c, self.sub_user,
                                                self.sub_value)[0])
        c.close()
        for t in self.threads:
            t.start()
        return self

    def _loop(self, body):
        try:
            c = self.case.d.client(timeout=TIMEOUT + MARGIN + 5)
        except OSError as e:
            self.bad.append(repr(e))
            return
        try:
            while not self.stop_ev.is_set():
                t0 = time.monotonic()
                kind, err = body(c)
                with self.lock:
                    self.answers.append((kind, t0, time.monotonic() - t0,
                                         err))
                if err is not None:
                    # Down: do not spin.
                    self.stop_ev.wait(0.05)
        except Exception as e:      # a timeout or a closed connection
            self.bad.append(repr(e))
        finally:
            c.close()

    def _set(self):
        def body(c):
            u, v = new_user(), "pgf-" + secrets.token_hex(16)
            err, _, _ = self.case.db_set(c, u, v)
            if err is None:
                with self.lock:
                    self.acked[u] = v
            return "set", err
        self._loop(body)

    def _sub(self):
        def body(c):
            err, res, _ = self.case.db_sub(c, self.sub_user)
            if err is None and (self.case.sub_value(res) !=
                                self.sub_value):
                self.bad.append("substitute answered a wrong value")
            return "sub", err
        self._loop(body)

    def count_acked(self):
        with self.lock:
            return len(self.acked)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(TIMEOUT + MARGIN + 10)

    def since(self, t):
        with self.lock:
            return [a for a in self.answers if a[1] >= t]


class StoppedDatabaseTests(PgCase):
    """PostgreSQL stopped while clients write and substitute."""

    def stop_mid_load(self, mode):
        c = self.c
        # A type made through the broker just before the stop.
        pre = c.ok("type.create", {"ident": "pgf_before", "name": "Before",
                                   "storage": "db"})
        w = Writers(self).start()
        self.addCleanup(w.stop)
        cbtest.poll_until(lambda: w.count_acked() >= 30, 20,
                          what="30 acknowledged writes")
        _cluster.stop(mode=mode)
        t_stop = time.monotonic()
        with w.lock:
            acked_before = dict(w.acked)

        # A db call now: unavailable, naming the cause, in time.
        u = new_user()
        err = self.assertUnavailableIn(self.db_set(c, u, canary()),
                                       TIMEOUT + MARGIN, "postgresql")
        self.assertUnavailableIn(self.db_sub(c, w.sub_user),
                                 TIMEOUT + MARGIN, "postgresql")
        # A type write changes nothing and says why.
        err = self.assertUnavailableIn(
            self.call(c, "type.create", {"ident": "pgf_during",
                                         "name": "During",
                                         "storage": "db"}),
            TIMEOUT + MARGIN, "postgresql")
        # hello and Vault-type substitutions keep answering.
        p = self.d.client()
        self.addCleanup(p.close)
        for i in range(10):
            self.probe(p, "database stopped, round %d" % i)

        # The writers' calls made after the stop were all refused in
        # time; let them run into the outage for a while first.
        cbtest.poll_until(
            lambda: len([a for a in w.since(t_stop + 1.0)
                         if a[0] == "set"]) >= 3,
            TIMEOUT + MARGIN + 20, what="writes refused after the stop")
        late = w.since(t_stop)
        self.assertTrue(late)
        for kind, t0, dt, e in late:
            self.assertIsNotNone(e, "%s answered ok with PostgreSQL "
                                 "stopped" % kind)
            self.assertEqual(e["code"], "unavailable", e)
            self.assertIn("postgresql", e["message"].lower(), e)
            self.assertLess(dt, TIMEOUT + MARGIN, (kind, dt, e))

        # Back: the broker recovers by itself.
        _cluster.start()
        self.wait_db_back(c, w.sub_user, w.sub_value)
        cbtest.poll_until(
            lambda: any(a[3] is None and a[0] == "set"
                        for a in w.since(time.monotonic() - 0.5)), 20,
            what="the writers served again")
        w.stop()
        self.assertEqual(w.bad, [])
        self.assertGreaterEqual(len(acked_before), 30)

        # Every acknowledged write, exactly; before the stop and after.
        for user, value in sorted(w.acked.items()):
            err, res, _ = self.db_sub(c, user)
            self.assertIsNone(err, "acknowledged value of %s: %r"
                              % (user, err))
            self.assertEqual(self.sub_value(res), value, user)
        vals = c.ok("cred.status", {"user": next(iter(acked_before))})
        self.assertIs({e["ident"]: e for e in vals}[DB]["filled"], True)
        # The type made before the stop is there, the one refused is not,
        # also for a broker whose mirror is read again from PostgreSQL.
        for client in (c, None):
            if client is None:
                self.start_broker()
                client = self.d.client()
                self.addCleanup(client.close)
            self.assertEqual(client.ok("type.get",
                                       {"type": "pgf_before"})["uuid"],
                             pre["uuid"])
            self.assertError(client.call("type.get",
                                         {"type": "pgf_during"}),
                             "not_found")
        self.assertEqual(sql(self.schema, "SELECT count(*) FROM types "
                             "WHERE ident = 'pgf_during'"), "0")
        # Nothing written while it was down.
        err, _, _ = self.db_sub(client, u)
        self.assertEqual(err["code"], "not_found", err)

    def test_fast_stop_mid_load_refuses_db_calls_in_time_and_loses_no_acknowledged_write(self):
        self.stop_mid_load("fast")

    def test_immediate_stop_mid_load_refuses_db_calls_in_time_and_loses_no_acknowledged_write(self):
        self.stop_mid_load("immediate")


class SlowDatabaseTests(PgCase):
    """Writes slowed by a trigger, reads by a proxy that holds the
    server's answers."""

    def setUp(self):
        self.proxy = DelayProxy(_cluster.port if _cluster else 0)
        self.addCleanup(self.proxy.close)
        self.tcp_port = self.proxy.port
        super().setUp()
        sql(self.schema,
            "CREATE TABLE pgf_delay (seconds float8 NOT NULL);"
            "INSERT INTO pgf_delay VALUES (0);"
            "CREATE FUNCTION pgf_slow() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN PERFORM pg_sleep((SELECT seconds FROM pgf_delay));"
            " RETURN NEW; END $$;"
            "CREATE TRIGGER pgf_slow BEFORE INSERT OR UPDATE ON credvalues "
            "FOR EACH ROW EXECUTE FUNCTION pgf_slow()")
        self.user = new_user()
        self.value = canary()
        self.assertIsNone(self.db_set(self.c, self.user, self.value)[0])

    def write_delay(self, seconds):
        sql(self.schema, "UPDATE pgf_delay SET seconds = %s" % seconds)

    def while_waiting(self, start_slow_call, what):
        """Start a slow db call on a connection of its own; probe on
        another until it answers.  Returns its (err, res, seconds) and
        the number of probes answered while it waited."""
        got = []
        t = threading.Thread(target=lambda: got.append(start_slow_call()),
                             daemon=True)
        p = self.d.client()
        self.addCleanup(p.close)
        t.start()
        probes = 0
        while t.is_alive():
            self.probe(p, what)
            if t.is_alive():
                probes += 1
        t.join()
        return got[0], probes

    def test_loop_serves_hello_and_vault_while_a_write_waits_on_a_slow_database(self):
        self.write_delay(1.5)
        c = self.d.client(timeout=TIMEOUT + MARGIN + 5)
        self.addCleanup(c.close)
        u, v = new_user(), canary()
        (err, _, dt), probes = self.while_waiting(
            lambda: self.db_set(c, u, v), "slow write")
        self.assertIsNone(err, err)
        self.assertGreaterEqual(dt, 1.5)
        self.assertGreaterEqual(probes, 2, "no call answered while the "
                                "write waited")
        self.write_delay(0)
        self.assertEqual(self.sub_value(self.db_sub(c, u)[1]), v)

    def test_loop_serves_hello_and_vault_while_a_read_waits_on_a_slow_database(self):
        self.proxy.delay = 1.0
        c = self.d.client(timeout=TIMEOUT + MARGIN + 5)
        self.addCleanup(c.close)
        (err, res, dt), probes = self.while_waiting(
            lambda: self.db_sub(c, self.user), "slow read")
        self.assertIsNone(err, err)
        self.assertEqual(self.sub_value(res), self.value)
        self.assertGreaterEqual(dt, 1.0)
        self.assertGreaterEqual(probes, 2, "no call answered while the "
                                "read waited")

    def test_read_slower_than_the_timeout_answers_unavailable(self):
        self.proxy.delay = TIMEOUT + 1.5
        c = self.d.client(timeout=TIMEOUT + MARGIN + 5)
        self.addCleanup(c.close)
        got, probes = self.while_waiting(
            lambda: self.db_sub(c, self.user), "read past the timeout")
        self.assertUnavailableIn(got, TIMEOUT + MARGIN, "postgresql",
                                 "did not answer within %d ms"
                                 % (TIMEOUT * 1000))
        self.assertGreaterEqual(got[2], TIMEOUT - 0.1)
        self.assertGreaterEqual(probes, 2)
        self.proxy.delay = 0
        self.wait_db_back(c, self.user, self.value)

    def test_write_slower_than_the_timeout_answers_unavailable_and_is_never_committed(self):
        self.write_delay(TIMEOUT + 2)
        c = self.d.client(timeout=TIMEOUT + MARGIN + 5)
        self.addCleanup(c.close)
        u = new_user()
        got, probes = self.while_waiting(
            lambda: self.db_set(c, u, canary()), "write past the timeout")
        err = self.assertUnavailableIn(got, TIMEOUT + MARGIN, "postgresql")
        # The server is the slow one here: the session's statement_timeout
        # is as long as the broker's own deadline, and whichever ends the
        # statement first is named.
        msg = err["message"].lower()
        self.assertTrue("did not answer within %d ms" % (TIMEOUT * 1000)
                        in msg or "statement timeout (57014)" in msg, err)
        self.assertGreaterEqual(got[2], TIMEOUT - 0.1)
        self.assertGreaterEqual(probes, 2)
        self.write_delay(0)
        self.wait_db_back(c, self.user, self.value)
        # The write given up on does not go on in the server and commit
        # later: once no statement of the cluster sleeps in the trigger
        # any more, the value is not there.
        cbtest.poll_until(
            lambda: _cluster.sql("SELECT count(*) FROM pg_stat_activity "
                                 "WHERE wait_event = 'PgSleep'") == "0",
            RECOVER_TIMEOUT, interval=0.1, what="the slow write ended")
        err, _, _ = self.db_sub(c, u)
        self.assertIsNotNone(err, "a write answered unavailable was "
                             "committed")
        self.assertEqual(err["code"], "not_found", err)
        self.assertEqual(sql(self.schema, "SELECT count(*) FROM credvalues "
                             "WHERE user_uuid = '%s'" % u), "0")


if __name__ == "__main__":
    cbtest.main()

"""
Master-key rotation (SPEC sections 3, 6 and 8: key.status, key.rotate,
credctl key check|rotate).

What is checked:

  * RotationUnderLoad: 100,000 SQLite rows (written straight into the store
    with the daemon stopped, sealed CB1 version 1 here in Python exactly as
    test_canary.py opens them) and ~50 Vault-stored values (vaultsim) are
    re-sealed while several connections substitute continuously and
    another one keeps setting values: not one call may fail, every value
    must still open to its plaintext afterwards, and every stored value is
    CB1:2.
  * RotationCrash: kill -9 twice in the middle of the SQLite phase (the
    moment chosen from the progress committed in the store, so that it
    does not depend on the daemon answering); the rotation resumes by
    itself with the old key configured, loses at most one batch of
    progress, and completes with every value intact.  Also: calls are
    answered while rows are re-sealed, and a batch that fails (the
    database locked by another process for longer than the busy timeout)
    is retried rather than skipped.
  * RotationRefusals / RotationRestart / CredctlKey: the key.rotate
    refusals (same key, weak key, readable key file, relative path),
    the start-up refusal with the old key after a completed rotation and
    the start with the new one, and the credctl commands.
  * VaultRotation: a conflicting rotation and credctl while a rotation
    runs (held in its Vault phase), a value written while the rotation
    re-seals it, a disabled Vault, the KV version history.

Checks that depend on the daemon answering during the SQLite phase are
subTests, so that the rest of such a test still runs when they fail.

The 100,000-row store is built once per run (types created through the
API, rows inserted with Python) and copied for every test that needs it.
"""

import base64
import json
import os
import random
import re
import shutil
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import uuid
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "vault"))
import cbtest  # noqa: E402
from cbtest import new_user, strong_key, find_leaks  # noqa: E402

try:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    HAVE_CRYPTO = True
except ImportError:  # pragma: no cover
    HAVE_CRYPTO = False

try:
    import vaulttest
    HAVE_VAULTSIM = True
except Exception:  # pragma: no cover - simulator missing
    HAVE_VAULTSIM = False

CB1_RE = re.compile(r"^CB1:(\d+):([A-Za-z0-9+/]+={0,2})$")
URL = "https://api.example.com/v1/things"
BATCH = 256                     # daemon/keys.c KEYS_BATCH
NTYPES = 4                      # db types in the big store
NUSERS = 25000                  # users x types = 100,000 rows
NLEGACY = 8                     # of which sealed in the legacy GCM: format
ROTATE_TIMEOUT = 120 * cbtest.SCALE
LOAD_TIMEOUT = 60 * cbtest.SCALE


# -- sealing, as documented in daemon/seal.h (and test_canary.py) ----------

def seal_key(master):
    return HKDF(algorithm=hashes.SHA256(), length=len(master), salt=None,
                info=b"credbroker seal v1").derive(master)


def aad_for(keyver, type_uuid, user_uuid):
    return ("credbroker/1|%s|%s/%s" % (keyver, type_uuid, user_uuid)).encode()


class Sealer:
    """CB1 sealing and opening under one master key."""

    def __init__(self, master):
        self.master = master
        self.aead = AESGCM(seal_key(master))

    def seal(self, keyver, type_uuid, user_uuid, pt):
        nonce = os.urandom(12)
        ct = self.aead.encrypt(nonce, pt, aad_for(keyver, type_uuid,
                                                   user_uuid))
        return "CB1:%d:%s" % (keyver, base64.b64encode(nonce + ct).decode())

    def seal_legacy(self, pt):
        nonce = os.urandom(12)
        ct = AESGCM(self.master).encrypt(nonce, pt, None)
        return "GCM:" + base64.b64encode(nonce + ct).decode()

    def open(self, sealed, type_uuid, user_uuid):
        m = CB1_RE.match(sealed)
        if not m:
            raise ValueError("not CB1: %r" % sealed[:16])
        raw = base64.b64decode(m.group(2), validate=True)
        return self.aead.decrypt(raw[:12], raw[12:],
                                 aad_for(m.group(1), type_uuid, user_uuid))


def read_rows(db):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return [(cbtest.uuid_text(t), cbtest.uuid_text(u), s)
                for t, u, s in con.execute("SELECT type_uuid, user_uuid, "
                                           "sealed FROM credvalues")]
    finally:
        con.close()


def key_file(dirpath, name, key=None, mode=0o600):
    """Write a key file (key + newline, as echo writes it); its path."""
    p = os.path.join(dirpath, name)
    k = strong_key() if key is None else key
    cbtest.write_file(p, (k.encode() if isinstance(k, str) else k) + b"\n",
                      mode)
    return p, (k.encode() if isinstance(k, str) else k)


def pt_for(tag, type_idx, user):
    """A distinctive plaintext (header-safe printable ASCII)."""
    return ("%s-%d-%s-%s" % (tag, type_idx, user[:13],
                             os.urandom(6).hex())).encode()


# -- the big store, built once ----------------------------------------------

class BigStore:
    """A store with NTYPES db types, one vault type and 100,000 rows, kept
    in a directory of its own and copied for each test."""

    _instance = None

    @classmethod
    def get(cls):
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self):
        t0 = time.monotonic()
        self.dir = cbtest.make_tmpdir("cbrot")
        d = cbtest.Daemon(self.dir)
        try:
            d.start()
            with d.client() as c:
                self.types = [c.ok("type.create", {
                    "ident": "t%d" % i, "name": "Type %d" % i,
                    "storage": "db"})["uuid"] for i in range(NTYPES)]
                self.vtype = c.ok("type.create", {
                    "ident": "vt", "name": "Vault type",
                    "storage": "vault"})["uuid"]
            d.stop()
        finally:
            d.cleanup()
        self.key = d.key_bytes
        self.database = d.database
        sealer = Sealer(self.key)
        self.users = sorted(new_user() for _ in range(NUSERS))
        self.expected = {}      # (type_uuid, user) -> plaintext
        rows = []
        legacy = set(random.sample(range(NUSERS), NLEGACY))
        for ti, t in enumerate(self.types):
            for ui, u in enumerate(self.users):
                pt = pt_for("seed", ti, u)
                self.expected[(t, u)] = pt
                if ti == 0 and ui in legacy:
                    sealed = sealer.seal_legacy(pt)
                else:
                    sealed = sealer.seal(1, t, u, pt)
                rows.append((uuid.UUID(t).bytes, uuid.UUID(u).bytes,
                             sealed, 1700000000))
        rows.sort()
        con = sqlite3.connect(self.database)
        try:
            with con:
                con.executemany("INSERT INTO credvalues (type_uuid, "
                                "user_uuid, sealed, updated_at) "
                                "VALUES (?, ?, ?, ?)", rows)
        finally:
            con.close()
        for suffix in ("-wal", "-shm"):
            assert not os.path.exists(self.database + suffix), suffix
        self.legacy_users = [self.users[i] for i in sorted(legacy)]
        self.build_seconds = time.monotonic() - t0
        sys.stderr.write("[big store: %d rows in %.1fs] "
                         % (len(rows), self.build_seconds))

    def daemon(self, **kwargs):
        """A Daemon on a fresh copy of the store, with its key."""
        d = cbtest.Daemon(key=self.key.decode(), **kwargs)
        shutil.copyfile(self.database, d.database)
        os.chmod(d.database, 0o600)
        return d


# -- test helpers -------------------------------------------------------------

def sub_params(user, idents):
    """substitute params for user, one header per credential."""
    return {"component": {"kind": "action", "initiator": user,
                          "credentials": [{"id": "c%d" % i, "type": ident}
                                          for i, ident in
                                          enumerate(idents)]},
            "request": {"method": "GET", "url": URL,
                        "headers": [["X-C%d" % i,
                                     "<<.credentials.c%d>>" % i]
                                    for i in range(len(idents))]}}


def sub_values(res, n):
    hdrs = res["request"]["headers"]
    out = []
    for i in range(n):
        name, value = hdrs[i]
        assert name.lower() == ("x-c%d" % i), hdrs
        out.append(value.encode())
    return out


class RotationCase(cbtest.DaemonTestCase):
    """Helpers shared by the rotation tests; each test makes its daemon."""

    start_daemon = False

    def setUp(self):
        if not HAVE_CRYPTO:
            self.skipTest("python3-cryptography missing")
        super().setUp()

    def use_daemon(self, d):
        """Make d this test's daemon (clean-ups registered)."""
        self.d = d
        self.addCleanup(remove_dir, d.dir)
        self.addCleanup(d.cleanup)
        self.addCleanup(lambda: d.finish())
        return d

    def big(self, **kwargs):
        store = BigStore.get()
        d = self.use_daemon(store.daemon(**kwargs))
        return store, d

    def wait_done(self, c, timeout=ROTATE_TIMEOUT, what="rotation done"):
        def done():
            st = c.ok("key.status", {})
            return st if st["rotation"]["state"] == "done" else None
        return cbtest.poll_until(done, timeout, interval=0.05, what=what)

    def check_substitute(self, c, store_types, expected, users):
        """Substitute every type of store_types for users (pipelined);
        each value must equal expected[(type_uuid, user)]."""
        idents = ["t%d" % i for i in range(len(store_types))]
        users = list(users)
        for i in range(0, len(users), 50):
            chunk = users[i:i + 50]
            resps = c.pipeline([("substitute", sub_params(u, idents))
                                for u in chunk])
            for u, (_, m) in zip(chunk, resps):
                self.assertIsNone(m[2], "substitute for %s: %r" % (u, m[2]))
                got = sub_values(m[3], len(idents))
                want = [expected[(t, u)] for t in store_types]
                self.assertEqual(got, want, "values of %s" % u)

    def check_rows(self, db, sealer, expected, version=2):
        """Every SQLite row is CB1:<version>: and opens under sealer to its
        expected plaintext; the set of rows is the expected one."""
        rows = read_rows(db)
        bad = [r for r in rows if not r[2].startswith("CB1:%d:" % version)]
        self.assertEqual(len(bad), 0, "%d of %d rows not CB1:%d: (first: "
                         "%r)" % (len(bad), len(rows), version,
                                  [(b[0], b[1], b[2][:8]) for b in bad[:3]]))
        self.assertEqual(len(rows), len(expected))
        wrong = []
        for t, u, sealed in rows:
            try:
                pt = sealer.open(sealed, t, u)
            except InvalidTag:
                pt = None
            if pt != expected.get((t, u)):
                wrong.append((t, u))
        self.assertEqual(wrong[:5], [], "%d rows do not open to their value"
                         % len(wrong))


def remove_dir(d):
    cbtest.remove_tmpdir(d)


# -- item 1: rotation under load ---------------------------------------------

@unittest.skipUnless(HAVE_VAULTSIM, "tests/vault/vaultsim.py not available")
@cbtest.sqlite_only(cbtest.NO_PG_ROTATION)
class RotationUnderLoad(RotationCase):

    NSUB = 3            # substituting connections
    NVAULT = 50         # vault-stored values

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sim = None
        if cbtest.have_binaries():
            cls.sim = vaulttest.Sim(
                "--kv-mount", vaulttest.MOUNT, "--role",
                "%s:%s:ttl=300,max_ttl=3600" % (vaulttest.ROLE_ID,
                                                 vaulttest.SECRET_ID)).start()

    @classmethod
    def tearDownClass(cls):
        if cls.sim is not None:
            cls.sim.stop()
        super().tearDownClass()

    def test_rotation_under_load(self):
        t_start = time.monotonic()
        store, d = self.big()
        d.start()
        c = d.client()
        self.addCleanup(c.close)
        expected = dict(store.expected)
        c.ok("vault.set", {"enabled": True, "url": self.sim.url,
                           "path": vaulttest.PATH,
                           "role_id": vaulttest.ROLE_ID,
                           "secret_id": vaulttest.SECRET_ID,
                           "timeout_ms": 5000})
        vusers = [new_user() for _ in range(self.NVAULT)]
        for u in vusers:
            v = pt_for("vseed", 9, u)
            c.ok("cred.set", {"type": "vt", "user": u, "value": v.decode()})
            expected[(store.vtype, u)] = v
        st = c.ok("key.status", {})
        self.assertEqual(st["version"], 1)
        self.assertEqual(st["rotation"]["state"], "none")

        # Users the setter changes are not read by the substituters.
        reserved = set(random.sample(store.users, 200))
        readable = [u for u in store.users if u not in reserved]
        vreadable = vusers
        lock = threading.Lock()
        stop = threading.Event()
        failures = []
        counts = {"substitute": 0, "cred.set": 0}
        phases_seen = set()
        latency = []
        idents = ["t%d" % i for i in range(NTYPES)]

        def substituter(idx):
            rnd = random.Random(idx)
            try:
                cl = d.client(timeout=LOAD_TIMEOUT)
            except OSError as e:
                failures.append(("connect", repr(e)))
                return
            n = 0
            try:
                while not stop.is_set():
                    n += 1
                    if n % 10 == 0:
                        u = rnd.choice(vreadable)
                        types, ids = [store.vtype], ["vt"]
                    else:
                        u = rnd.choice(readable)
                        types, ids = store.types, idents
                    t0 = time.monotonic()
                    try:
                        err, res = cl.call("substitute", sub_params(u, ids))
                    except Exception as e:
                        failures.append(("substitute", u, repr(e)))
                        return
                    dt = time.monotonic() - t0
                    with lock:
                        counts["substitute"] += 1
                        latency.append(dt)
                        want = [expected[(t, u)] for t in types]
                    if err is not None:
                        failures.append(("substitute", u, err))
                    elif sub_values(res, len(ids)) != want:
                        failures.append(("substitute", u, "wrong value"))
            finally:
                cl.close()

        def setter():
            rnd = random.Random(99)
            try:
                cl = d.client(timeout=LOAD_TIMEOUT)
            except OSError as e:
                failures.append(("connect", repr(e)))
                return
            res_list = sorted(reserved)
            n = 0
            try:
                while not stop.is_set():
                    n += 1
                    if n % 5 == 0:
                        # vault: new users only.  Replacing a Vault value
                        # while the rotation re-seals it is a race of its
                        # own: VaultRotation.test_value_set_while_rotation_
                        # reads_it forces it deterministically.
                        u = new_user()
                        t, ident = store.vtype, "vt"
                    else:
                        u = (rnd.choice(res_list) if n % 3 else new_user())
                        ti = rnd.randrange(NTYPES)
                        t, ident = store.types[ti], "t%d" % ti
                    v = pt_for("set", n, u)
                    try:
                        err, _ = cl.call("cred.set", {"type": ident,
                                                      "user": u,
                                                      "value": v.decode()})
                    except Exception as e:
                        failures.append(("cred.set", u, repr(e)))
                        return
                    with lock:
                        counts["cred.set"] += 1
                        if err is None:
                            expected[(t, u)] = v
                    if err is not None:
                        failures.append(("cred.set", u, err))
                    time.sleep(0.002)
            finally:
                cl.close()

        threads = [threading.Thread(target=substituter, args=(i,),
                                    daemon=True) for i in range(self.NSUB)]
        threads.append(threading.Thread(target=setter, daemon=True))
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)             # load running before the rotation
            new_path, new_key = key_file(d.dir, "new.key")
            t_rot = time.monotonic()
            st = c.ok("key.rotate", {"new_key_file": new_path})
            self.assertEqual(st["rotation"]["state"], "running")
            self.assertEqual(st["rotation"]["new_version"], 2)
            self.assertEqual(st["rotation"]["new_key_file"], new_path)
            self.assertGreaterEqual(st["rotation"]["total"], 100000)
            max_done = 0
            while True:
                st = c.ok("key.status", {})
                r = st["rotation"]
                phases_seen.add(r["phase"])
                self.assertGreaterEqual(r["done"], max_done,
                                        "progress went backwards")
                max_done = r["done"]
                if r["state"] == "done":
                    break
                self.assertEqual(r["state"], "running", st)
                self.assertEqual(st["version"], 1)
                self.assertLess(time.monotonic() - t_rot, ROTATE_TIMEOUT,
                                "rotation did not finish: %r" % st)
                time.sleep(0.05)
            rot_seconds = time.monotonic() - t_rot
            time.sleep(0.2)             # a little load after the switch
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        self.assertEqual(failures[:10], [], "%d failed calls during the "
                         "rotation" % len(failures))
        self.assertTrue(all(not t.is_alive() for t in threads))
        self.assertGreater(counts["substitute"], 100, counts)
        self.assertGreater(counts["cred.set"], 20, counts)
        with self.subTest("calls answered between batches"):
            # key.status polled every 50 ms saw the SQLite phase, and no
            # substitute waited a whole second (see RotationCrash.test_
            # calls_answered_while_rows_are_resealed).
            self.assertIn("db", phases_seen, "key.status never saw the db "
                          "phase: it was not answered until the rows were "
                          "all re-sealed")
            self.assertLess(max(latency), 1.0, "a substitute waited %.1fs "
                            "during the rotation" % max(latency))

        st = c.ok("key.status", {})
        self.assertEqual(st["version"], 2)
        r = st["rotation"]
        self.assertEqual((r["state"], r["phase"], r["new_version"]),
                         ("done", "done", 2))
        self.assertGreaterEqual(r["done"], 100000)
        self.assertIn(new_path, r["message"] or "")
        self.assertIn("security.secret_key_file", d.log())
        self.assertIn(new_path, d.log())

        # Every value opens: a sample of users through the daemon, all the
        # Vault ones and everything the setter touched.
        sample = random.sample(readable, 500) + sorted(reserved)
        self.check_substitute(c, store.types, expected, sample)
        for u in vusers:
            err, res = c.call("substitute", sub_params(u, ["vt"]))
            self.assertIsNone(err, "vault value of %s: %r" % (u, err))
            self.assertEqual(sub_values(res, 1),
                             [expected[(store.vtype, u)]])
        # Vault: the current version of every secret is CB1:2 and opens
        # with the new key to the expected value.
        new_sealer = Sealer(new_key)
        dump = self.sim.secrets()
        vexp = {u: v for (t, u), v in expected.items() if t == store.vtype}
        self.assertEqual(len(dump), len(vexp))
        for path, sec in dump.items():
            u = path.rsplit("/", 1)[1]
            self.assertEqual(path, "%s/credentials/%s/users/%s"
                             % (vaulttest.PREFIX, store.vtype, u))
            cur = sec["versions"][str(sec["current_version"])]
            val = cur["data"]["value"]
            self.assertTrue(val.startswith("CB1:2:"), (path, val[:8]))
            # No version sealed with the retired key is left in the
            # secret's history (the broker keeps max_versions at 1).
            self.assertEqual(list(sec["versions"]),
                             [str(sec["current_version"])], path)
            self.assertEqual(new_sealer.open(val, store.vtype, u), vexp[u])
        c.close()
        d.stop()
        db_expected = {k: v for k, v in expected.items()
                       if k[0] != store.vtype}
        self.check_rows(d.database, new_sealer, db_expected)
        # The Vault settings were re-sealed too: the daemon starts with
        # the new key alone and still logs in to Vault.
        d.key_file = new_path
        d.write_config()
        d.start()
        with d.client() as c2:
            err, res = c2.call("substitute", sub_params(vusers[-1], ["vt"]))
            self.assertIsNone(err, err)
            self.assertEqual(sub_values(res, 1),
                             [expected[(store.vtype, vusers[-1])]])
        d.stop()
        # No plaintext in the daemon's stderr.
        self.assertEqual(find_leaks(d.all_logs(), [new_key, store.key]), [])
        sys.stderr.write("[rotation %.1fs, %d substitutes, %d cred.set; "
                         "max latency %.2fs; final progress %d/%d; test "
                         "%.1fs] " % (rot_seconds, counts["substitute"],
                                      counts["cred.set"], max(latency),
                                      r["done"], r["total"],
                                      time.monotonic() - t_start))


# -- item 2: kill -9 in the middle ---------------------------------------------

@cbtest.sqlite_only(cbtest.NO_PG_ROTATION)
class RotationCrash(RotationCase):

    def committed(self):
        """The rotation state committed in the store (the "key" setting:
        each batch of rows commits with it), read with SQLite directly so
        that it works whatever the daemon is doing."""
        con = sqlite3.connect("file:%s?mode=ro" % self.d.database, uri=True,
                              timeout=10)
        try:
            row = con.execute("SELECT value FROM settings WHERE key = 'key'"
                              ).fetchone()
        finally:
            con.close()
        return json.loads(row[0]) if row else None

    def kill_between(self, lo, hi):
        """Wait until the committed progress is in [lo, hi] of the total,
        then kill -9.  Returns the progress seen just before the kill."""
        deadline = time.monotonic() + ROTATE_TIMEOUT
        while True:
            self.assertTrue(self.d.alive(), self.d.log())
            doc = self.committed()
            r = (doc or {}).get("rotation")
            if r is not None and r["state"] == "running" and r["total"]:
                frac = r["done"] / float(r["total"])
                if lo <= frac <= hi and r["phase"] == "db":
                    self.d.kill9()
                    return r["done"]
                self.assertLess(frac, hi, "progress jumped past %.0f%% "
                                "before the kill could happen: %r"
                                % (hi * 100, r))
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.003)

    def check_resumed(self, before):
        """The log of this start says the rotation resumed with at most one
        batch of progress lost."""
        m = cbtest.poll_until(
            lambda: re.search(r"resuming key rotation to version 2 \((\d+) "
                              r"of (\d+) values done\)", self.d.log()),
            10, what="resume log line")
        done = int(m.group(1))
        self.assertGreaterEqual(done, before - BATCH, "progress lost: %d "
                                "before the kill, %d after" % (before, done))
        self.assertEqual(int(m.group(2)), 100000)
        return done

    def test_kill9_mid_rotation_resumes(self):
        t0 = time.monotonic()
        store, d = self.big()
        d.start()
        new_path, new_key = key_file(d.dir, "new.key")
        kills = []
        with d.client() as c:
            st = c.ok("key.rotate", {"new_key_file": new_path})
            self.assertEqual(st["rotation"]["total"], 100000)
            kills.append(self.kill_between(0.10, 0.40))
        # Same (old) configuration: the rotation resumes by itself.  The
        # second kill, too, goes by the committed progress.
        d.start(wait=False)
        self.check_resumed(kills[-1])
        kills.append(self.kill_between(0.55, 0.90))
        d.start(wait=False)
        resumed = self.check_resumed(kills[-1])
        d.wait_ready(timeout=ROTATE_TIMEOUT)
        with d.client() as c:
            st = c.ok("key.status", {})
            r = st["rotation"]
            self.assertEqual(r["new_key_file"], new_path)
            self.assertEqual(r["new_version"], 2)
            self.assertGreaterEqual(r["done"], resumed)
            with self.subTest("key.status right after the restart shows "
                              "the rotation running"):
                # Fails while the daemon re-seals all remaining rows
                # before it first answers (see test_calls_answered_while_
                # rows_are_resealed).
                self.assertEqual((st["version"], r["state"], r["phase"]),
                                 (1, "running", "db"), st)
            st = self.wait_done(c)
            self.assertEqual(st["version"], 2)
            self.assertEqual(st["rotation"]["done"], 100000)
            # values open (through the daemon) for a sample
            self.check_substitute(
                c, store.types, store.expected,
                random.sample(store.users, 500) + store.legacy_users)
        self.assertEqual(len(kills), 2)
        d.stop()
        self.check_rows(d.database, Sealer(new_key), store.expected)
        sys.stderr.write("[killed at %s; test %.1fs] "
                         % (kills, time.monotonic() - t0))

    def test_calls_answered_while_rows_are_resealed(self):
        # "calls are served between batches" (daemon/keys.c): key.status
        # and substitute answer promptly while the SQLite phase runs, and
        # key.status shows it part-way.
        store, d = self.big()
        d.start()
        new_path, _ = key_file(d.dir, "new.key")
        other_path, _ = key_file(d.dir, "other.key")
        with d.client(timeout=ROTATE_TIMEOUT) as c:
            st = c.ok("key.rotate", {"new_key_file": new_path})
            self.assertEqual((st["rotation"]["state"],
                              st["rotation"]["phase"]), ("running", "db"))
            # Batches commit on the writer's thread, so the first one
            # may not have committed yet: ask until it has.
            status_s = 0.0
            deadline = time.monotonic() + ROTATE_TIMEOUT
            while True:
                t = time.monotonic()
                st = c.ok("key.status", {})
                status_s = max(status_s, time.monotonic() - t)
                if (st["rotation"]["done"] > 0 or
                        st["rotation"]["state"] != "running" or
                        time.monotonic() > deadline):
                    break
                time.sleep(0.01)
            t = time.monotonic()
            err, _ = c.call("substitute", sub_params(store.users[7],
                                                     ["t0"]))
            sub_s = time.monotonic() - t
            self.assertIsNone(err)
            # a different rotation while this one runs: conflict
            conflict = c.call("key.rotate", {"new_key_file": other_path})
            self.wait_done(c)
        r = st["rotation"]
        self.assertLess(status_s, 1.0, "key.status took %.2fs during the "
                        "rotation (answered with %r): the event loop does "
                        "not serve calls between batches" % (status_s, st))
        self.assertLess(sub_s, 1.0, "substitute took %.2fs" % sub_s)
        self.assertEqual((r["state"], r["phase"]), ("running", "db"), st)
        self.assertTrue(0 < r["done"] < r["total"], st)
        self.assertError(conflict, "conflict")


    def test_sqlite_busy_during_a_batch_loses_nothing(self):
        # Another process holds the database's write lock for longer than
        # the busy timeout (5 s) while rows are being re-sealed: that
        # batch fails and is retried; no row may be left behind.
        store, d = self.big()
        d.start()
        new_path, new_key = key_file(d.dir, "new.key")
        with d.client() as c:
            c.ok("key.rotate", {"new_key_file": new_path})

        def part_way():
            r = (self.committed() or {}).get("rotation") or {}
            return r.get("phase") == "db" and r.get("done", 0) >= 10000
        cbtest.poll_until(part_way, ROTATE_TIMEOUT, interval=0.003,
                          what="rotation part-way")
        con = sqlite3.connect(d.database, timeout=10, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            held = self.committed()["rotation"]["done"]
            time.sleep(6.5)
            con.execute("ROLLBACK")
        finally:
            con.close()
        self.assertLess(held, 100000, "the rotation ended before the lock")
        with d.client(timeout=ROTATE_TIMEOUT) as c:
            st = self.wait_done(c)
            self.assertEqual(st["version"], 2)
        self.assertIn("retrying", d.log())
        d.stop()
        left = [(t, u) for t, u, sealed in read_rows(d.database)
                if not sealed.startswith("CB1:2:")]
        self.assertEqual(len(left), 0, "%d rows left sealed under the old "
                         "key after the rotation said it was done (the "
                         "failed batch was skipped, not retried); e.g. %r"
                         % (len(left), left[:2]))
        self.check_rows(d.database, Sealer(new_key), store.expected)


# -- item 3: refusals, restarts, credctl ---------------------------------------

class RotationRefusals(RotationCase):
    """key.rotate refuses what it must, and starts nothing then."""

    def small(self, n=20):
        d = self.use_daemon(cbtest.Daemon())
        d.start()
        self.values = {}
        with d.client() as c:
            c.ok("type.create", {"ident": "t0", "name": "T", "storage": "db"})
            for _ in range(n):
                u = new_user()
                v = pt_for("small", 0, u)
                c.ok("cred.set", {"type": "t0", "user": u,
                                  "value": v.decode()})
                self.values[u] = v
        return d

    def assertNothingStarted(self, c):
        st = c.ok("key.status", {})
        self.assertEqual(st, {"version": 1, "rotation": {
            "state": "none", "done": 0, "total": 0}})

    @cbtest.sqlite_only(cbtest.NO_PG_ROTATION)
    def test_rotate_to_key_in_use_refused(self):
        # The configured file itself, and another file holding the same key.
        d = self.small()
        copy_path, _ = key_file(d.dir, "copy.key", d.key)
        with d.client() as c:
            for p in (d.key_file, copy_path):
                err = self.assertError(c.call("key.rotate",
                                              {"new_key_file": p}),
                                       "bad_request",
                                       "rotation to the key in use (%s) "
                                       "accepted" % p)
                self.assertIn("key in use", err["message"])
                self.assertNothingStarted(c)

    @cbtest.sqlite_only(cbtest.NO_PG_ROTATION)
    def test_rotate_again_to_key_now_in_use_refused(self):
        # After a rotation, its key is the key in use: rotating to it again
        # must be refused, not start a rotation to version 3.
        d = self.small()
        new_path, _ = key_file(d.dir, "new.key")
        with d.client() as c:
            c.ok("key.rotate", {"new_key_file": new_path})
            self.wait_done(c)
            err = self.assertError(c.call("key.rotate",
                                          {"new_key_file": new_path}),
                                   "bad_request",
                                   "rotation to the key now in use accepted")
            self.assertIn("key in use", err["message"])
            st = c.ok("key.status", {})
            self.assertEqual((st["version"], st["rotation"]["state"]),
                             (2, "done"))

    @cbtest.sqlite_only(cbtest.NO_PG_ROTATION)
    def test_rotate_bad_key_files_refused(self):
        d = self.small()
        cases = [
            ("short.key", "Ab3$xY9!qZ", 0o600, "16, 24 or 32 bytes"),
            ("repeat.key", "k" * 32, 0o600, "single repeated character"),
            ("run.key", "abcdefghijklmnopqrstuvwxyz012345", 0o600,
             "too weak"),
            ("common.key", "passwordpassword", 0o600, "too weak"),
            ("ctrl.key", "Ab3$xY9!\x01qZ7#mK2", 0o600,
             "printable ASCII"),
            ("group.key", strong_key(), 0o640, "other users"),
            ("world.key", strong_key(), 0o604, "other users"),
        ]
        with d.client() as c:
            for name, key, mode, rule in cases:
                p, _ = key_file(d.dir, name, key, mode)
                self.assertEqual(stat.S_IMODE(os.stat(p).st_mode), mode)
                err = self.assertError(c.call("key.rotate",
                                              {"new_key_file": p}),
                                       "bad_request", name)
                self.assertIn(rule, err["message"], name)
                # the key itself is never in the message
                self.assertNotIn(key, err["message"])
                self.assertNothingStarted(c)
            for p, what in (("new.key", "absolute"),
                            (os.path.join(d.dir, "missing.key"),
                             "cannot open"),
                            (d.dir, "regular file")):
                err = self.assertError(c.call("key.rotate",
                                              {"new_key_file": p}),
                                       "bad_request", p)
                self.assertIn(what, err["message"])
                self.assertNothingStarted(c)
            for params in ({}, {"new_key_file": 7},
                           {"new_key_file": "/x", "key": "y"}):
                self.assertError(c.call("key.rotate", params), "bad_request")
            self.assertError(c.call("key.status", {"x": 1}), "bad_request")
            # a 0400 key file is fine
            p, _ = key_file(d.dir, "ro.key", mode=0o400)
            st = c.ok("key.rotate", {"new_key_file": p})
            self.assertEqual(st["rotation"]["state"], "running")
            self.wait_done(c)

    def test_rotate_needs_permission(self):
        d = self.use_daemon(cbtest.Daemon(grants=[
            "uid:%d edit:user-credentials,use:credentials,read:health"
            % os.getuid()]))
        d.start()
        p, _ = key_file(d.dir, "new.key")
        with d.client() as c:
            self.assertError(c.call("key.rotate", {"new_key_file": p}),
                             "forbidden")
            self.assertError(c.call("key.status", {}), "forbidden")


@cbtest.sqlite_only(cbtest.NO_PG_ROTATION)
class RotationRestart(RotationCase):

    def test_restart_after_rotation(self):
        t0 = time.monotonic()
        store, d = self.big()
        d.start()
        new_path, new_key = key_file(d.dir, "new.key", mode=0o400)
        with d.client() as c:
            c.ok("key.rotate", {"new_key_file": new_path})
            self.wait_done(c)
        d.stop()
        # The old key (still configured): refused, naming the new file.
        d.start(wait=False)
        rc = d.wait_exit()
        d.checked = True
        self.assertEqual(rc, 1, d.log())
        log = d.log()
        self.assertIn("does not match this store", log)
        self.assertIn("rotated to the key in %s" % new_path, log)
        self.assertNotIn(store.key.decode(), log)
        # --check-config says the same.
        d.start(wait=False, extra_args=["--check-config"])
        self.assertEqual(d.wait_exit(), 1)
        d.checked = True
        self.assertIn("does not match this store", d.log())
        # The new key configured: starts, version 2, values open.
        d.key_file = new_path
        d.write_config()
        d.start()
        with d.client() as c:
            st = c.ok("key.status", {})
            self.assertEqual(st["version"], 2)
            self.assertEqual(st["rotation"]["state"], "done")
            self.check_substitute(c, store.types, store.expected,
                                  random.sample(store.users, 500) +
                                  store.legacy_users)
            # New values are sealed with version 2.
            u = new_user()
            c.ok("cred.set", {"type": "t1", "user": u, "value": "fresh-1"})
        d.stop()
        rows = {(t, uu): s for t, uu, s in read_rows(d.database)}
        self.assertTrue(rows[(store.types[1], u)].startswith("CB1:2:"))
        self.assertEqual(Sealer(new_key).open(rows[(store.types[1], u)],
                                              store.types[1], u), b"fresh-1")
        sys.stderr.write("[test %.1fs] " % (time.monotonic() - t0))


@cbtest.sqlite_only(cbtest.NO_PG_ROTATION)
class CredctlKey(RotationCase):

    def setUp(self):
        super().setUp()
        if not cbtest.have_credctl():
            self.skipTest("credctl not built")

    def ctl(self, *args, json_out=False):
        return cbtest.credctl(self.d.socket, *args, json=json_out)

    def test_credctl_key_check_and_rotate_wait(self):
        store, d = self.big()
        d.start()
        rc, out, err = self.ctl("key", "check")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^key version: +1$")
        self.assertRegex(out, r"(?m)^rotation: +none$")
        rc, out, err = self.ctl("key", "check", json_out=True)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {"version": 1, "rotation": {
            "state": "none", "done": 0, "total": 0}})
        # A relative path is made absolute against credctl's directory.
        new_path, new_key = key_file(d.dir, "new.key")
        p = subprocess.run(
            [cbtest.CREDCTL, "-s", d.socket, "key", "rotate", "new.key",
             "--wait"], cwd=d.dir, stdin=subprocess.DEVNULL,
            capture_output=True, timeout=ROTATE_TIMEOUT)
        out, err = p.stdout.decode(), p.stderr.decode()
        self.assertEqual(p.returncode, 0, out + err)
        # progress on stderr while it ran, the instruction at the end
        for line in err.splitlines():
            self.assertRegex(line, r"^credctl: (re-sealing \(phase \w+\): "
                             r"\d+/\d+( \(\d+%\))?|broker: .*)$")
        with self.subTest("credctl key rotate --wait shows the progress"):
            # Needs key.status answered during the SQLite phase.
            self.assertRegex(err, r"re-sealing \(phase db\): \d+/100000")
        self.assertRegex(out, r"(?m)^key version: +2$")
        self.assertRegex(out, r"(?m)^rotation: +done$")
        self.assertRegex(out, r"(?m)^progress: +100000/100000 \(100%\)$")
        self.assertRegex(out, r"(?m)^new key file: +%s$"
                         % re.escape(new_path))
        self.assertIn("security.secret_key_file = %s" % new_path,
                      out.strip().splitlines()[-1])
        rc, out, err = self.ctl("key", "check")
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^rotation: +done$")
        self.assertIn("rotation complete", out)
        rc, out, err = self.ctl("key", "check", json_out=True)
        self.assertEqual(rc, 0, err)
        j = json.loads(out)
        self.assertEqual(j["version"], 2)
        self.assertEqual(j["rotation"]["state"], "done")
        self.assertEqual(j["rotation"]["new_key_file"], new_path)
        # Errors: broker refusal 1, usage 2, cannot connect 3.
        weak, _ = key_file(d.dir, "weak.key", "k" * 16)
        rc, out, err = self.ctl("key", "rotate", weak)
        self.assertEqual(rc, 1, out + err)
        self.assertIn("bad_request", err)
        self.assertIn("single repeated character", err)
        rc, out, err = self.ctl("key", "rotate", weak, json_out=True)
        self.assertEqual(rc, 1, out + err)
        self.assertEqual(json.loads(out)["error"]["code"], "bad_request")
        for args in (("key", "rotate"), ("key", "rotate", "a", "b"),
                     ("key", "check", "x"), ("key", "check", "--wait"),
                     ("key", "rotate", "")):
            rc, out, err = self.ctl(*args)
            self.assertEqual(rc, 2, "%r: %s" % (args, out + err))
        rc, out, err = cbtest.credctl(os.path.join(d.dir, "nosock"), "key",
                                      "check")
        self.assertEqual(rc, 3, out + err)
        # A rotation started without --wait returns at once.
        next_path, next_key = key_file(d.dir, "next.key")
        rc, out, err = self.ctl("key", "rotate", next_path)
        self.assertEqual(rc, 0, err)
        self.assertRegex(out, r"(?m)^rotation: +running$")
        self.assertRegex(out, r"(?m)^new version: +3$")
        with d.client() as c:
            self.wait_done(c)
        # The keys never appear in credctl's output or the daemon's log.
        blob = b"".join(cbtest.CREDCTL_OUTPUT) + p.stdout + p.stderr + \
            d.all_logs()
        self.assertEqual(find_leaks(blob, [new_key, next_key, store.key]),
                         [])
        rc, out, err = self.ctl("help", "key")
        self.assertEqual(rc, 0)
        self.assertIn("key rotate NEW_KEY_FILE [--wait]", out)


# -- Vault specifics ---------------------------------------------------------

@unittest.skipUnless(HAVE_VAULTSIM, "tests/vault/vaultsim.py not available")
@cbtest.sqlite_only(cbtest.NO_PG_ROTATION)
class VaultRotation(RotationCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.sim = None
        if cbtest.have_binaries():
            cls.sim = vaulttest.Sim(
                "--kv-mount", vaulttest.MOUNT, "--role",
                "%s:%s:ttl=300,max_ttl=3600" % (vaulttest.ROLE_ID,
                                                 vaulttest.SECRET_ID)).start()

    @classmethod
    def tearDownClass(cls):
        if cls.sim is not None:
            cls.sim.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.sim.reset()

    def settings(self, url=None, enabled=True):
        return {"enabled": enabled, "url": url or self.sim.url,
                "path": vaulttest.PATH, "role_id": vaulttest.ROLE_ID,
                "secret_id": vaulttest.SECRET_ID, "timeout_ms": 5000}

    def setup_vault(self, n, url=None):
        d = self.use_daemon(cbtest.Daemon())
        d.start()
        self.values = {}
        with d.client() as c:
            c.ok("vault.set", self.settings(url))
            self.vtype = c.ok("type.create", {"ident": "vt", "name": "V",
                                              "storage": "vault"})["uuid"]
            for _ in range(n):
                u = new_user()
                v = pt_for("v", 0, u)
                c.ok("cred.set", {"type": "vt", "user": u,
                                  "value": v.decode()})
                self.values[u] = v
        return d

    def sub_one(self, c, u):
        err, res = c.call("substitute", sub_params(u, ["vt"]))
        self.assertIsNone(err, "substitute for %s: %r" % (u, err))
        return sub_values(res, 1)[0]

    def test_conflict_and_credctl_while_rotation_runs(self):
        # Vault answers held back: the rotation stays in its Vault phase
        # long enough to look at it.
        proxy = vaulttest.ResponseDelayProxy("127.0.0.1", self.sim.proc.port)
        self.addCleanup(proxy.close)
        d = self.setup_vault(4, url=proxy.url)
        new_path, new_key = key_file(d.dir, "new.key")
        other_path, _ = key_file(d.dir, "other.key")
        with d.client() as c:
            proxy.hold = 0.7
            c.ok("key.rotate", {"new_key_file": new_path})

            def in_vault_phase():
                st = c.ok("key.status", {})
                return st if st["rotation"]["phase"] == "vault" else None
            st = cbtest.poll_until(in_vault_phase, 10, what="vault phase")
            self.assertEqual((st["version"], st["rotation"]["state"]),
                             (1, "running"))
            err = self.assertError(c.call("key.rotate",
                                          {"new_key_file": other_path}),
                                   "conflict")
            self.assertIn(new_path, err["message"])
            st = c.ok("key.rotate", {"new_key_file": new_path})
            self.assertEqual(st["rotation"]["state"], "running")
            rc, out, err = cbtest.credctl(d.socket, "key", "check")
            self.assertEqual(rc, 0, err)
            self.assertRegex(out, r"(?m)^rotation: +running$")
            self.assertRegex(out, r"(?m)^phase: +vault$")
            self.assertRegex(out, r"(?m)^progress: +\d+/\d+")
            self.assertRegex(out, r"(?m)^new version: +2$")
            # --wait on the running rotation: progress on stderr, then
            # the instruction.
            rc, out, err = cbtest.credctl(d.socket, "key", "rotate",
                                          new_path, "--wait")
            self.assertEqual(rc, 0, out + err)
            self.assertRegex(err, r"credctl: re-sealing \(phase vault\): ")
            self.assertRegex(out, r"(?m)^rotation: +done$")
            self.assertIn("security.secret_key_file = %s" % new_path,
                          out.strip().splitlines()[-1])
            proxy.hold = 0
            for u, v in self.values.items():
                self.assertEqual(self.sub_one(c, u), v)

    def test_value_set_while_rotation_reads_it(self):
        # A cred.set that lands between the rotation's read of a Vault
        # value and its write of the re-sealed copy must not be undone.
        proxy = vaulttest.ResponseDelayProxy("127.0.0.1", self.sim.proc.port)
        self.addCleanup(proxy.close)
        d = self.setup_vault(3, url=proxy.url)
        new_path, new_key = key_file(d.dir, "new.key")
        seq = self.sim.last_seq()
        with d.client() as c:
            proxy.hold = 1.5
            c.ok("key.rotate", {"new_key_file": new_path})
            prefix = "/v1/%s/data/%s/credentials/%s/users/" % (
                vaulttest.MOUNT, vaulttest.PREFIX, self.vtype)

            def first_read():
                for e in self.sim.log(seq):
                    if e["method"] == "GET" and e["path"].startswith(prefix):
                        return e["path"][len(prefix):]
                return None
            u = cbtest.poll_until(first_read, 10, what="rotation's read")
            self.assertIn(u, self.values)
            # The rotation's read is answered (old value) but held on the
            # way back; meanwhile the user's value is replaced.
            newer = b"newer-value-" + os.urandom(6).hex().encode()
            c.ok("cred.set", {"type": "vt", "user": u,
                              "value": newer.decode()})
            proxy.hold = 0
            self.wait_done(c, timeout=30)
            self.values[u] = newer
            got = self.sub_one(c, u)
            writes = [e["seq"] for e in self.sim.log(seq)
                      if e["method"] in ("POST", "PUT")
                      and e["path"] == prefix + u]
            self.assertEqual(got, newer, "the value set during the "
                             "rotation was overwritten by the rotation's "
                             "re-sealed copy of the old value (writes to "
                             "the secret, in order: cred.set's, then the "
                             "rotation's: %r)" % writes)

    def test_values_in_disabled_vault_survive_rotation(self):
        # Vault switched off for a while: its values are still stored.  The
        # rotation cannot re-seal them, so it waits in its Vault phase,
        # saying why, until Vault is switched back on; then it completes
        # and every value opens.
        d = self.setup_vault(5)
        new_path, _ = key_file(d.dir, "new.key")
        with d.client() as c:
            c.ok("vault.set", self.settings(enabled=False))
            c.ok("key.rotate", {"new_key_file": new_path})

            def waiting():
                rot = c.ok("key.status")["rotation"]
                return (rot["state"] == "running" and rot["phase"] == "vault"
                        and "disabled" in (rot.get("message") or ""))
            cbtest.poll_until(waiting, 60, what="rotation waiting for Vault")
            c.ok("vault.set", self.settings(enabled=True))
            self.wait_done(c)
            bad = []
            for u, v in self.values.items():
                err, res = c.call("substitute", sub_params(u, ["vt"]))
                if err is not None or sub_values(res, 1) != [v]:
                    bad.append((u, err))
            self.assertEqual(len(bad), 0, "%d of %d Vault values lost after "
                             "a rotation with Vault disabled; first: %r"
                             % (len(bad), len(self.values), bad[:1]))


# -- technical accounts: their values, links and defaults --------------------

def seal_under(master, keyver, context, pt):
    """CB1 text of pt sealed under an arbitrary seal context."""
    nonce = os.urandom(12)
    ad = ("credbroker/1|%s|%s" % (keyver, context)).encode()
    ct = AESGCM(seal_key(master)).encrypt(nonce, pt, ad)
    return "CB1:%d:%s" % (keyver, base64.b64encode(nonce + ct).decode())


def open_under(master, context, sealed):
    m = CB1_RE.match(sealed)
    if not m:
        raise ValueError("not CB1: %r" % sealed[:16])
    raw = base64.b64decode(m.group(2), validate=True)
    ad = ("credbroker/1|%s|%s" % (m.group(1), context)).encode()
    return AESGCM(seal_key(master)).decrypt(raw[:12], raw[12:], ad)


@cbtest.sqlite_only(cbtest.NO_PG_ROTATION)
class RotationAccounts(RotationCase):
    """Accounts' values, links and default accounts (kept in the database
    whatever the type's storage) are re-sealed under the new key, each
    under its own context."""

    def test_rotation_reseals_accounts_links_and_defaults(self):
        d = self.use_daemon(cbtest.Daemon())
        d.start()
        with d.client() as c:
            t = c.ok("type.create", {"ident": "acct", "name": "Accounts",
                                     "storage": "db"})["uuid"]
            v = c.ok("type.create", {"ident": "vacct", "name": "Vault",
                                     "storage": "vault"})["uuid"]
        d.stop()
        old = d.key_bytes
        users = sorted(new_user() for _ in range(40))
        accounts = {"reader": b"reader-secret-" + os.urandom(6).hex().encode(),
                    "writer": b"writer-secret-" + os.urandom(6).hex().encode()}
        con = sqlite3.connect(d.database)
        try:
            with con:
                for name, pt in accounts.items():
                    con.execute(
                        "INSERT INTO credaccounts VALUES (?, ?, ?, ?)",
                        (t, name, seal_under(old, 1, "%s/account/%s"
                                             % (t, name), pt), 1700000000))
                for i, u in enumerate(users):
                    tu = t if i % 2 == 0 else v
                    name = "reader" if i % 3 else "writer"
                    con.execute(
                        "INSERT INTO credlinks VALUES (?, ?, ?, ?, ?)",
                        (tu, u, name, seal_under(old, 1, "link/%s/%s"
                                                 % (tu, u), name.encode()),
                         1700000000))
                for tu in (t, v):
                    con.execute(
                        "UPDATE types SET default_account = 'reader', "
                        "default_sealed = ? WHERE uuid = ?",
                        (seal_under(old, 1, "default/%s" % tu, b"reader"),
                         tu))
        finally:
            con.close()
        d.start()
        new_path, new_key = key_file(d.dir, "new.key", mode=0o400)
        with d.client() as c:
            c.ok("key.rotate", {"new_key_file": new_path})
            self.wait_done(c)
        d.stop()
        con = sqlite3.connect("file:%s?mode=ro" % d.database, uri=True)
        try:
            arows = con.execute("SELECT type_uuid, name, sealed "
                                "FROM credaccounts").fetchall()
            lrows = con.execute("SELECT type_uuid, user_uuid, account, "
                                "sealed FROM credlinks").fetchall()
            drows = con.execute("SELECT uuid, default_account, "
                                "default_sealed FROM types").fetchall()
        finally:
            con.close()
        self.assertEqual(len(arows), 2)
        for tu, name, sealed in arows:
            self.assertTrue(sealed.startswith("CB1:2:"), sealed[:8])
            self.assertEqual(open_under(new_key, "%s/account/%s"
                                        % (tu, name), sealed),
                             accounts[name])
        self.assertEqual(len(lrows), len(users))
        for tu, u, name, sealed in lrows:
            self.assertTrue(sealed.startswith("CB1:2:"), sealed[:8])
            self.assertEqual(open_under(new_key, "link/%s/%s" % (tu, u),
                                        sealed), name.encode())
            # Bound to its own row: not another user's link.
            with self.assertRaises(InvalidTag):
                open_under(new_key, "link/%s/%s" % (tu, users[0] if u !=
                                                    users[0] else
                                                    users[1]), sealed)
        self.assertEqual(len(drows), 2)
        for tu, name, sealed in drows:
            self.assertEqual(name, "reader")
            self.assertTrue(sealed.startswith("CB1:2:"), sealed[:8])
            self.assertEqual(open_under(new_key, "default/%s" % tu,
                                        sealed), b"reader")
        # The new key configured: the store opens and says version 2.
        d.key_file = new_path
        d.write_config()
        d.start()
        with d.client() as c:
            self.assertEqual(c.ok("key.status", {})["version"], 2)
        d.stop()


if __name__ == "__main__":
    cbtest.main()

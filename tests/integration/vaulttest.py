"""
vaulttest: helpers for credbroker's Vault integration tests (test_vault*.py).

The daemon is the real credbrokerd (cbtest.Daemon); Vault is the simulator in
tests/vault/vaultsim.py, started once per test class and reset before every
test through its admin API.  Everything here talks to the daemon over the
msgpack-rpc socket (cbtest.Client) and looks at the simulator's counters,
request log and secrets dump to check what actually reached "Vault".

Not a test file itself (no test_ prefix): ctest only globs test_*.py.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "vault"))

import cbtest  # noqa: E402
from cbtest import find_leaks, pack_request  # noqa: E402
from vaultsim import SimProcess  # noqa: E402

# AppRole credentials of the main role: uuids, as Vault issues them.  They are
# also canaries: no daemon answer and no log line may ever contain them.
ROLE_ID = str(uuid.uuid4())
SECRET_ID = str(uuid.uuid4())
# A role whose policy lets it read and list but never write.
RO_ROLE_ID = "ro-" + secrets.token_hex(8)
RO_SECRET_ID = "ro-sek-" + secrets.token_hex(8)
# A role in namespace team1.
NS_ROLE_ID = "ns-" + secrets.token_hex(8)
NS_SECRET_ID = "ns-sek-" + secrets.token_hex(8)

# Short-lived tokens: not renewable (ttl 3 s); renewable (ttl 3 s, max 60 s).
NR_ROLE_ID = "nr-" + secrets.token_hex(8)
NR_SECRET_ID = "nr-sek-" + secrets.token_hex(8)
SHORT_ROLE_ID = "short-" + secrets.token_hex(8)
SHORT_SECRET_ID = "short-sek-" + secrets.token_hex(8)

MOUNT = "secrets"
PREFIX = "ddp"
PATH = MOUNT + "/data/" + PREFIX          # the broker's vault.path

RO_POLICY = {"path": {
    MOUNT + "/data/*": {"capabilities": ["read"]},
    MOUNT + "/metadata/*": {"capabilities": ["list", "read"]},
}}

BASE_SIM_ARGS = [
    "--kv-mount", MOUNT,
    "--namespace", "team1", "--kv-mount", MOUNT + "@team1",
    "--policy", "ro=" + json.dumps(RO_POLICY),
    "--role", "%s:%s:ttl=300,max_ttl=3600" % (ROLE_ID, SECRET_ID),
    "--role", "%s:%s:policies=ro" % (RO_ROLE_ID, RO_SECRET_ID),
    "--role", "%s:%s:namespace=team1" % (NS_ROLE_ID, NS_SECRET_ID),
    "--role", "%s:%s:ttl=3,renewable=false" % (NR_ROLE_ID, NR_SECRET_ID),
    "--role", "%s:%s:ttl=3,max_ttl=60" % (SHORT_ROLE_ID, SHORT_SECRET_ID),
]

LOGIN_PATH = "/v1/auth/approle/login"
RENEW_PATH = "/v1/auth/token/renew-self"
URL = "https://api.example.com/v1/things?page=1"


def data_path(type_uuid, user, prefix=PREFIX):
    """A value's key inside the mount (how the simulator's dump names it)."""
    return "%s/credentials/%s/users/%s" % (prefix, type_uuid, user)


def canary():
    """A distinctive plaintext value."""
    return "canary-" + secrets.token_hex(12) + "-p\u00e4ss"


class Sim:
    """A running vaultsim with admin helpers."""

    def __init__(self, *args, host=None, cafile=None):
        self.proc = SimProcess(*args, host=host, cafile=cafile,
                               stderr=subprocess.DEVNULL)

    def start(self):
        self.proc.start()
        self.url = self.proc.url
        return self

    def stop(self):
        self.proc.stop()

    def admin(self, method, path, body=None, expect=200):
        return self.proc.admin(method, path, body=body, expect=expect)

    def reset(self):
        self.admin("POST", "reset")

    def counters(self):
        return self.admin("GET", "counters")

    def log(self, since=0):
        return self.admin("GET", "log?since=%d" % since)["entries"]

    def last_seq(self):
        return self.admin("GET", "log?since=999999999")["last_seq"]

    def secrets(self, ns="", mount=MOUNT):
        return self.admin("GET", "secrets").get(ns, {}).get(mount, {})

    def fault(self, spec):
        return self.admin("POST", "faults", spec)

    def clear_faults(self, kind=None):
        if kind is None:
            return self.admin("DELETE", "faults")
        return self.admin("DELETE", "faults/" + kind)

    def seal(self):
        self.admin("POST", "seal")

    def unseal(self):
        self.admin("POST", "unseal")

    def expire_tokens(self):
        return self.admin("POST", "tokens/expire")["expired"]

    def tokens(self):
        return self.admin("GET", "tokens")["tokens"]

    def everything_raw(self):
        """Every byte the simulator holds that a leak could hide in: its
        state (roles, tokens, counters), request log and secrets."""
        out = b""
        for p in ("state", "log", "secrets"):
            r = self.proc.request("GET", "/__sim/" + p, headers={
                "X-Sim-Admin-Token": self.proc.admin_token})
            out += r.body
        return out

    def requests_since(self, seq, path_prefix="/v1/"):
        return [e for e in self.log(seq) if e["path"].startswith(path_prefix)]

    def logins_since(self, seq):
        return [e for e in self.log(seq) if e["path"] == LOGIN_PATH]


def make_ca(dirpath, name):
    """A test CA with the openssl CLI: returns (cert path, key path)."""
    cert = os.path.join(dirpath, name + ".pem")
    key = os.path.join(dirpath, name + ".key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=credbroker test CA %s" % name,
         "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def make_server_cert(dirpath, ca_cert, ca_key, name="server",
                     san="IP:127.0.0.1"):
    """A server certificate signed by the CA, for 127.0.0.1 by default."""
    cert = os.path.join(dirpath, name + ".pem")
    key = os.path.join(dirpath, name + ".key")
    csr = os.path.join(dirpath, name + ".csr")
    ext = os.path.join(dirpath, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n" % san)
    subprocess.run(
        ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", csr, "-subj", "/CN=127.0.0.1"],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run(
        ["openssl", "x509", "-req", "-in", csr, "-CA", ca_cert,
         "-CAkey", ca_key, "-set_serial", str(secrets.randbelow(1 << 60)),
         "-out", cert, "-days", "2", "-extfile", ext],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


class VaultCase(cbtest.DaemonTestCase):
    """One simulator per class (reset before each test), one daemon per
    test.  Subclasses may set sim_args / sim_kwargs."""

    sim_args = BASE_SIM_ARGS
    sim_kwargs = {}
    sim = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if not cbtest.have_binaries():
            return
        cls.sim = Sim(*cls.sim_args, **cls.sim_kwargs).start()

    @classmethod
    def tearDownClass(cls):
        if cls.sim is not None:
            cls.sim.stop()
            cls.sim = None
        super().tearDownClass()

    def setUp(self):
        if self.sim is not None:
            self.sim.reset()
        super().setUp()
        self.types = {}
        self.planted = []
        # Runs before the daemon's own clean-ups (LIFO): logs still there.
        self.addCleanup(self.check_no_leaks)

    # -- settings ----------------------------------------------------------
    def settings(self, **over):
        s = {"enabled": True, "url": self.sim.url, "path": PATH,
             "role_id": ROLE_ID, "secret_id": SECRET_ID, "timeout_ms": 5000}
        for k, v in over.items():
            if v is None:
                s.pop(k, None)
            else:
                s[k] = v
        return s

    def configure(self, client=None, **over):
        c = client or self.c
        return c.ok("vault.set", self.settings(**over))

    # -- types and values --------------------------------------------------
    def mktype(self, ident, storage="vault", client=None):
        c = client or self.c
        t = c.ok("type.create", {"ident": ident, "name": "Type " + ident,
                                 "storage": storage})
        self.types[ident] = t["uuid"]
        return t

    def set_value(self, ident, user, value, client=None):
        c = client or self.c
        v = value.encode() if isinstance(value, str) else bytes(value)
        self.planted.append(v)
        return c.ok("cred.set", {"type": ident, "user": user, "value": value})

    @staticmethod
    def sub_params(ident, user, cid="tok"):
        return {"component": {"kind": "action", "initiator": user,
                              "credentials": [{"id": cid, "type": ident}]},
                "request": {"method": "GET", "url": URL,
                            "headers": [["Authorization",
                                         "Bearer <<.credentials.%s>>" % cid]]}}

    def sub(self, ident, user, client=None, timeout=None):
        c = client or self.c
        return c.call("substitute", self.sub_params(ident, user),
                      timeout=timeout)

    @staticmethod
    def sub_value(res):
        hdr = res["request"]["headers"][0]
        assert hdr[0] == "Authorization", hdr
        assert hdr[1].startswith("Bearer "), hdr
        return hdr[1][len("Bearer "):]

    def sub_ok(self, ident, user, client=None):
        err, res = self.sub(ident, user, client=client)
        self.assertIsNone(err, "substitute %s for %s failed: %r"
                          % (ident, user, err))
        return self.sub_value(res)

    def status_of(self, user, client=None):
        c = client or self.c
        return {e["ident"]: e for e in c.ok("cred.status", {"user": user})}

    def health_vault(self, client=None):
        c = client or self.c
        return c.ok("health", {})["vault"]

    def wait_authenticated(self, timeout=10):
        return cbtest.poll_until(
            lambda: self.health_vault()["authenticated"], timeout,
            what="vault authenticated in health")

    # -- asynchronous calls --------------------------------------------------
    @staticmethod
    def send(client, method, params):
        """Send without waiting; returns the msgid."""
        i = client.new_id()
        client.send_raw(pack_request(i, method, params))
        return i

    @staticmethod
    def response(client, msgid, timeout=None):
        m = client.wait_response(msgid, timeout)
        return m[2], m[3]

    # -- assertions --------------------------------------------------------
    def assertUnavailable(self, resp, *needles):
        err = self.assertError(resp, "unavailable")
        for n in needles:
            self.assertIn(n.lower(), err["message"].lower(),
                          "message %r lacks %r" % (err["message"], n))
        return err

    def check_no_leaks(self):
        """No planted value (nor the AppRole secrets) in the simulator's
        storage, state or request log, or in the daemon's stderr."""
        blobs = {"daemon stderr": self.d.all_logs()}
        if self.sim is not None and self.sim.proc.proc.poll() is None:
            try:
                blobs["vaultsim"] = self.sim.everything_raw()
            except OSError:
                pass
        vals = list(self.planted)
        for name, blob in blobs.items():
            found = find_leaks(blob, vals)
            self.assertEqual(found, [], "plaintext value leaked into %s"
                             % name)
        found = find_leaks(self.d.all_logs(),
                           [SECRET_ID.encode(), RO_SECRET_ID.encode(),
                            NS_SECRET_ID.encode(), NR_SECRET_ID.encode(),
                            SHORT_SECRET_ID.encode()])
        self.assertEqual(found, [], "AppRole secret_id in daemon stderr")


class Load:
    """Background callers: nconn connections, each issuing calls produced by
    make(i, n) -> (method, params) at rate per second per connection.
    Records every outcome with its latency."""

    def __init__(self, sock, nconn, rate, make, timeout=15):
        self.sock = sock
        self.nconn = nconn
        self.period = 1.0 / rate
        self.make = make
        self.timeout = timeout
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.results = []       # (conn, t_start, latency, method, err)
        self.exceptions = []
        self.threads = []

    def _run(self, idx):
        try:
            c = cbtest.Client(self.sock, timeout=self.timeout)
        except OSError as e:
            self.exceptions.append(repr(e))
            return
        n = 0
        nxt = time.monotonic()
        try:
            while not self.stop_ev.is_set():
                method, params = self.make(idx, n)
                n += 1
                t0 = time.monotonic()
                try:
                    err, _ = c.call(method, params)
                except Exception as e:      # timeout or closed connection
                    err = {"code": "client", "message": repr(e)}
                dt = time.monotonic() - t0
                with self.lock:
                    self.results.append((idx, t0, dt, method, err))
                nxt += self.period
                left = nxt - time.monotonic()
                if left > 0:
                    self.stop_ev.wait(left)
                else:
                    nxt = time.monotonic()
        finally:
            c.close()

    def start(self):
        for i in range(self.nconn):
            t = threading.Thread(target=self._run, args=(i,), daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(self.timeout + 5)

    def failures(self):
        with self.lock:
            return [r for r in self.results if r[4] is not None]


class ResponseDelayProxy:
    """A TCP proxy in front of the simulator that can hold Vault's answers
    to GET requests for a while after the simulator produced them.

    The simulator's own "delay" fault sleeps before it evaluates a request,
    so a delayed read there always sees the latest data.  Holding the
    answer on the way back instead gives a read whose result is already
    fixed while it is still in flight, as on a slow network.
    """

    def __init__(self, target_host, target_port):
        self.target = (target_host, target_port)
        self.hold = 0.0             # seconds to hold GET answers; 0: none
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.closing = False
        self.socks = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                return
            try:
                s = socket.create_connection(self.target, timeout=10)
                s.settimeout(None)
            except OSError:
                c.close()
                continue
            state = {"get": False}
            with self.lock:
                self.socks += [c, s]
            threading.Thread(target=self._up, args=(c, s, state),
                             daemon=True).start()
            threading.Thread(target=self._down, args=(s, c, state),
                             daemon=True).start()

    def _up(self, src, dst, state):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                head = data.split(b" ", 1)[0]
                if head.isalpha() and head.isupper():
                    state["get"] = head == b"GET"
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src, dst)

    def _down(self, src, dst, state):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                hold = self.hold
                if hold > 0 and state["get"]:
                    time.sleep(hold)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close(src, dst)

    @staticmethod
    def _close(*socks):
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.closing = True
        try:
            self.lsock.close()
        except OSError:
            pass
        with self.lock:
            for s in self.socks:
                try:
                    s.close()
                except OSError:
                    pass
            self.socks = []

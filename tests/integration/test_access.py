"""
Access control seen from other users (SPEC 7): the caller is who the kernel
says it is.  Clients run as `nobody` through setpriv(1), with and without a
supplementary group that holds a grant; the daemon runs as root with no
grant for them.  Every method that needs a permission must answer
`forbidden`; hello must say what the caller may do.  Also: the running
daemon is not dumpable and has a core size limit of 0.
"""

import json
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
import unittest

import cbtest

NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = 65534
GRANT_GID = 4242        # a group nobody is in only when setpriv adds it

# Every method and the permission it needs (None: any caller).
METHODS = {
    "hello": None,
    "health": "read:health",
    "type.create": "edit:user-access-credentials-types",
    "type.get": "edit:user-access-credentials-types",
    "type.list": "edit:user-access-credentials-types",
    "type.update": "edit:user-access-credentials-types",
    "type.delete": "edit:user-access-credentials-types",
    "type.clear": "edit:user-access-credentials-types",
    "cred.set": "edit:user-credentials",
    "cred.status": "edit:user-credentials",
    "cred.delete": "edit:user-credentials",
    "substitute": "use:credentials",
    "vault.get": "edit:user-access-credentials-types",
    "vault.set": "edit:user-access-credentials-types",
    "vault.test": "edit:user-access-credentials-types",
    "stats": "read:health",
    "key.status": "edit:user-access-credentials-types",
    "key.rotate": "edit:user-access-credentials-types",
    "keypair.generate": "edit:keys",
    "keypair.import": "edit:keys",
    "keypair.get": "edit:keys",
    "keypair.list": "edit:keys",
    "keypair.delete": "edit:keys",
    "peerkey.set": "edit:keys",
    "peerkey.get": "edit:keys",
    "peerkey.list": "edit:keys",
    "peerkey.delete": "edit:keys",
    "token.partner": "use:keys",
    "token.embed": "use:keys",
    "token.sso": "use:keys",
    "token.verify": "use:keys",
}

KEYS_GID = 4343         # a group whose grant is use:keys alone

# Runs as the unprivileged user: calls each method, prints the answers.
CLIENT = textwrap.dedent("""
    import json, socket, sys, msgpack
    path, methods = sys.argv[1], json.loads(sys.argv[2])
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    u = msgpack.Unpacker(raw=False)
    out = {}
    for i, m in enumerate(methods, 1):
        s.sendall(msgpack.packb([0, i, m, [{}]]))
        while True:
            got = next(iter(u), None)
            if got is not None:
                break
            u.feed(s.recv(65536))
        out[m] = [got[2], got[3]]
    print(json.dumps(out))
""")


def run_as(uid, gid, groups, sock):
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv is missing: scripts/install-deps installs util-linux"
    cmd = [setpriv, "--reuid=%d" % uid, "--regid=%d" % gid]
    cmd += ["--groups=" + ",".join(map(str, groups))] if groups \
        else ["--clear-groups"]
    cmd += ["/usr/bin/python3", "-c", CLIENT, sock, json.dumps(list(METHODS))]
    out = subprocess.run(cmd, capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


class AccessTest(unittest.TestCase):

    def setUp(self):
        if os.geteuid() != 0:
            self.fail("these tests switch users with setpriv and need root")
        self.d = cbtest.Daemon(
            grants=["uid:0 *", "gid:%d use:credentials,read:health"
                    % GRANT_GID, "gid:%d use:keys" % KEYS_GID],
            extra={"server": [("socket_mode", "0666")]})
        os.chmod(self.d.dir, 0o755)
        self.d.start()

    def tearDown(self):
        self.d.cleanup()

    def test_ungranted_user_is_forbidden_everywhere(self):
        res = run_as(NOBODY, NOGROUP, [], self.d.socket)
        for m, perm in METHODS.items():
            err, result = res[m]
            if perm is None:
                self.assertIsNone(err, m)
                continue
            self.assertIsNotNone(err, m)
            self.assertEqual(err["code"], "forbidden", (m, err))
            self.assertIn(perm, err["message"])
            self.assertIn("uid %d" % NOBODY, err["message"])
        hello = res["hello"][1]
        self.assertEqual(hello["permissions"], [])
        self.assertEqual(hello["uid"], NOBODY)
        # The daemon is unhurt and root still has everything.
        with self.d.client() as c:
            self.assertEqual(len(c.ok("hello")["permissions"]), 6)

    def test_group_grant_through_supplementary_group(self):
        res = run_as(NOBODY, NOGROUP, [GRANT_GID], self.d.socket)
        self.assertEqual(sorted(res["hello"][1]["permissions"]),
                         ["read:health", "use:credentials"])
        self.assertIsNone(res["health"][0])
        # substitute passes the permission check and fails on its params.
        self.assertEqual(res["substitute"][0]["code"], "bad_request")
        for m in ("type.list", "cred.status", "vault.get"):
            self.assertEqual(res[m][0]["code"], "forbidden", m)

    def test_use_keys_mints_but_does_not_manage_keys(self):
        res = run_as(NOBODY, NOGROUP, [KEYS_GID], self.d.socket)
        self.assertEqual(res["hello"][1]["permissions"], ["use:keys"])
        for m, perm in METHODS.items():
            err = res[m][0]
            if perm == "use:keys":
                # Past the permission check, refused on its parameters.
                self.assertEqual(err["code"], "bad_request", (m, err))
            elif perm is not None:
                self.assertEqual(err["code"], "forbidden", (m, err))
                self.assertIn(perm, err["message"])

    def test_not_dumpable_and_no_core(self):
        pid = self.d.pid
        with open("/proc/%d/limits" % pid) as f:
            core = [l for l in f if l.startswith("Max core file size")][0]
        self.assertEqual(core.split()[4:6], ["0", "0"], core)
        # A non-dumpable process's /proc files belong to root whatever
        # its uid; run a daemon as nobody to tell the two apart.
        d2 = cbtest.Daemon(grants=["uid:%d *" % NOBODY])
        try:
            for p in (d2.key_file, d2.config, d2.pg_password_file):
                if p is not None:
                    os.chown(p, NOBODY, NOGROUP)
            os.chown(d2.dir, NOBODY, NOGROUP)
            d2.args = []
            cmd = d2.command()
            d2.command = lambda extra=(): ["setpriv", "--reuid=%d" % NOBODY,
                                           "--regid=%d" % NOGROUP,
                                           "--clear-groups"] + cmd
            d2.start()
            st = os.stat("/proc/%d/status" % d2.pid)
            with open("/proc/%d/status" % d2.pid) as f:
                uids = [l for l in f if l.startswith("Uid:")][0].split()
            self.assertEqual(int(uids[1]), NOBODY)
            self.assertEqual(st.st_uid, 0,
                             "/proc/PID of a daemon running as nobody is "
                             "owned by uid %d: it is dumpable" % st.st_uid)
        finally:
            d2.cleanup()


if __name__ == "__main__":
    unittest.main(verbosity=2)

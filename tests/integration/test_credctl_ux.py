"""
credctl for an operator who never reads the source (SPEC section 8): every
message checked here is asserted whole.

- "cred set" checks the user id, the caller's permission and the type
  before it prompts for the value (driven through a pseudo-terminal, so
  that a prompt would show) or reads standard input;
- "cred status" shows a type whose status the broker cannot tell as
  "error: CODE", never "no", and cred.status's per-entry error is the
  {code, message} map of a call's error;
- "credctl GROUP --help" prints the group, an unknown command is named,
  "delete" is another name of "rm", conflict messages name --force;
- "type add" warns about a type without destinations and about a
  Vault-stored type while Vault is not configured or disabled;
- cred.list pages through the users or the accounts holding a value of a
  type (SQLite and Vault), and "credctl cred list" through all pages;
- a connect refused for want of permission names the group that grants
  access to the socket.
"""

import errno
import grp
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
import vaulttest  # noqa: E402
from cbtest import new_user  # noqa: E402

GROUPS = ["type", "cred", "vault", "audit", "key", "keypair", "peerkey"]
RM_GROUPS = ["type", "cred", "keypair", "peerkey"]
BAD_USER = ("credctl: cred set: USER must be the platform's user id, a UUID "
            "in lower-case RFC 4122 text form such as "
            "123e4567-e89b-12d3-a456-426614174000 (the value itself is "
            "never an argument: it is read from standard input or a "
            "prompt); nothing was set\n")
FORBIDDEN = ("credctl: forbidden: cred.set needs permission "
             "edit:user-credentials, which you do not have: ask for a grant "
             "(access.grant in credbroker.conf(5)); nothing was set\n")
NO_DEST = ("credctl: warning: credential type '%s' has no destinations: its "
           "values may be sent to any origin; restrict them with 'credctl "
           "type edit %s --destination ORIGIN'\n")
VAULT_UNCONFIGURED = (
    "credctl: warning: credential type '%s' is stored in Vault, which is "
    "not configured: its values cannot be set or used until it is; "
    "configure it with 'credctl vault set --url URL --path PATH --role-id "
    "ID --secret-id-prompt --enable'\n")
VAULT_DISABLED = (
    "credctl: warning: credential type '%s' is stored in Vault, which is "
    "disabled: its values cannot be set or used until it is enabled with "
    "'credctl vault set --enable'\n")
PROMPT = "Value for"


def run_in_pty(argv, answer=None, timeout=30 * cbtest.SCALE):
    """Run argv with a pseudo-terminal as its controlling terminal and
    standard streams.  Returns (exit status, everything it wrote, whether
    it prompted).  When it prompts, answer (or an empty line) is typed, so
    that a wrong prompt cannot hang the test."""
    pid, fd = pty.fork()
    if pid == 0:
        try:
            os.execv(argv[0], argv)
        finally:
            os._exit(127)
    out = b""
    prompted = False
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            r, _, _ = select.select([fd], [], [], 0.5)
            if not r:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError as e:
                if e.errno == errno.EIO:     # the child closed the pty
                    break
                raise
            if not chunk:
                break
            out += chunk
            if not prompted and PROMPT.encode() in out:
                prompted = True
                os.write(fd, (answer or "").encode() + b"\n")
        else:
            os.kill(pid, 9)
            raise AssertionError("%r did not finish in %ss: %r"
                                 % (argv, timeout, out))
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    text = out.decode("utf-8", "replace").replace("\r\n", "\n")
    return os.waitstatus_to_exitcode(status), text, prompted


class CtlMixin:

    def ctl(self, *args, input=None, json_out=False):
        return cbtest.credctl(self.d.socket, *args, input=input,
                              json=json_out)

    def ok(self, *args, input=None):
        rc, out, err = self.ctl(*args, input=input)
        self.assertEqual(rc, 0, "credctl %s: rc %d\n%s%s"
                         % (" ".join(args), rc, out, err))
        return out, err

    def pty_set(self, *args, answer=None):
        return run_in_pty([cbtest.CREDCTL, "-s", self.d.socket, "cred",
                           "set"] + list(args), answer=answer)


class CredctlUxTest(CtlMixin, cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        if not cbtest.have_credctl():
            self.skipTest("credctl not built at %s" % cbtest.CREDCTL)
        self.user = new_user()
        self.c.ok("type.create", {"ident": "gh", "name": "GitHub",
                                  "storage": "db",
                                  "destinations": ["https://api.github.com"]})

    # -- cred set checks before it asks -----------------------------------
    def test_cred_set_prompts_for_a_valid_user_and_type(self):
        # The control: with nothing wrong the prompt does appear.
        rc, out, prompted = self.pty_set("gh", self.user, answer="s3cr3t")
        self.assertTrue(prompted, out)
        self.assertEqual(rc, 0, out)
        self.assertEqual(out.splitlines()[0],
                         "Value for gh of %s: " % self.user)
        st = {e["ident"]: e for e in self.c.ok("cred.status",
                                               {"user": self.user})}
        self.assertIs(st["gh"]["filled"], True)

    def test_cred_set_bad_user_fails_before_the_prompt(self):
        for user in ("alice", self.user.upper(), self.user + "0"):
            rc, out, prompted = self.pty_set("gh", user)
            self.assertFalse(prompted, out)
            self.assertEqual(rc, 2, out)
            self.assertEqual(out, BAD_USER)
        # From standard input too, and the broker heard nothing of it.
        rc, out, err = self.ctl("cred", "set", "gh", "alice", input="v")
        self.assertEqual((rc, out, err), (2, "", BAD_USER))

    def test_cred_set_unknown_type_fails_before_the_prompt(self):
        rc, out, prompted = self.pty_set("nope", self.user)
        self.assertFalse(prompted, out)
        self.assertEqual(rc, 1, out)
        self.assertEqual(out, "credctl: not_found: credential type 'nope' "
                         "not found\n")
        rc, out, err = self.ctl("cred", "set", "nope", self.user, input="v")
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(err, "credctl: not_found: credential type 'nope' "
                         "not found\n")

    # -- cred status -----------------------------------------------------
    def test_cred_status_shows_an_unreadable_type_as_error(self):
        self.c.ok("type.create", {"ident": "vt", "name": "Vaulted",
                                  "storage": "vault",
                                  "destinations": ["https://x.example"]})
        at = self.c.ok("cred.set", {"type": "gh", "user": self.user,
                                    "value": "v"})["updated_at"]
        # The protocol: the per-entry error is a {code, message} map.
        st = {e["ident"]: e for e in self.c.ok("cred.status",
                                               {"user": self.user})}
        self.assertEqual(st["vt"]["error"],
                         {"code": "not_configured",
                          "message": "Vault is not configured"})
        self.assertNotIn("error", st["gh"])
        out, err = self.ok("cred", "status", self.user)
        self.assertEqual(out.splitlines(), [
            "IDENT  NAME     STORAGE  FILLED                 SOURCE  "
            "ACCOUNT  UPDATED_AT",
            "gh     GitHub   db       yes                    own     "
            "-        " + at,
            "vt     Vaulted  vault    error: not_configured  -       "
            "-        -",
        ])
        self.assertEqual(err, "credctl: the status of 'vt' is unknown: "
                         "not_configured: Vault is not configured\n")
        rc, out, err = self.ctl("cred", "status", self.user, json_out=True)
        self.assertEqual(rc, 0)
        doc = {e["ident"]: e for e in json.loads(out)}
        self.assertEqual(doc["vt"]["error"]["code"], "not_configured")

    # -- help and commands -------------------------------------------------
    def test_group_help_prints_the_group_and_exits_0(self):
        _, full, _ = self.ctl("help")
        for g in GROUPS:
            for flag in ("--help", "-h"):
                rc, out, err = self.ctl(g, flag)
                self.assertEqual((rc, err), (0, ""), (g, flag, err))
                lines = out.splitlines()
                self.assertEqual(lines[0], "The %s commands:" % g)
                usages = [ln for ln in lines[1:] if ln.startswith("  ")]
                self.assertTrue(usages, out)
                for u in usages:
                    self.assertTrue(u.startswith("  %s " % g), u)
                    self.assertIn(u, full.splitlines())
                # Every command of the group, as the full help lists it.
                want = [ln for ln in full.splitlines()
                        if ln.startswith("  %s " % g)]
                self.assertEqual(usages, want)
                if g in RM_GROUPS:
                    self.assertEqual(lines[-1], "'%s delete' is another "
                                     "name of '%s rm'." % (g, g))
        for cmd in ("hello", "health", "stats"):
            rc, out, err = self.ctl(cmd, "--help")
            self.assertEqual((rc, err), (0, ""))
            self.assertEqual(out.splitlines()[0], "usage: credctl %s" % cmd)

    def test_unknown_command_is_named(self):
        rc, out, err = self.ctl("frob")
        self.assertEqual((rc, out), (2, ""))
        self.assertEqual(err, "credctl: unknown command 'frob'\n"
                         "see 'credctl help' for the commands\n")
        _, group, _ = self.ctl("type", "--help")
        group = "".join(ln + "\n" for ln in group.splitlines()
                        if not ln.startswith("'"))
        rc, out, err = self.ctl("type", "frob")
        self.assertEqual((rc, out), (2, ""))
        self.assertEqual(err, "credctl type: unknown command 'frob'\n"
                         + group)
        rc, out, err = self.ctl("type")
        self.assertEqual((rc, out), (2, ""))
        self.assertEqual(err, "credctl type: missing command\n" + group)
        # An option's argument is never echoed.
        rc, out, err = self.ctl("cred", "--secret=hunter2")
        self.assertEqual((rc, out), (2, ""))
        self.assertEqual(err.splitlines()[0], "credctl cred: missing "
                         "command before the options")
        self.assertNotIn("hunter2", err)
        # At most 64 characters of a word are named.
        rc, out, err = self.ctl("x" * 100)
        self.assertEqual(err, "credctl: unknown command '%s'...\n"
                         "see 'credctl help' for the commands\n" % ("x" * 64))
        rc, out, err = self.ctl("help", "frob")
        self.assertEqual((rc, out), (2, ""))
        self.assertEqual(err, "credctl help: unknown command 'frob'\n"
                         "see 'credctl help' for the commands\n")

    def test_delete_is_another_name_of_rm(self):
        for g in RM_GROUPS:
            rc, out, err = self.ctl(g, "delete", "--help")
            self.assertEqual((rc, err), (0, ""))
            self.assertTrue(out.startswith("usage: credctl %s rm " % g), out)
        self.c.ok("cred.set", {"type": "gh", "user": self.user,
                               "value": "v"})
        self.ok("cred", "delete", "gh", self.user)
        st = {e["ident"]: e for e in self.c.ok("cred.status",
                                               {"user": self.user})}
        self.assertIs(st["gh"]["filled"], False)
        self.ok("type", "delete", "gh")
        self.assertError(self.c.call("type.get", {"type": "gh"}),
                         "not_found")
        self.ok("keypair", "generate", "kp")
        self.ok("keypair", "delete", "kp")
        self.assertError(self.c.call("keypair.get", {"keypair": "kp"}),
                         "not_found")

    def test_conflicts_name_the_force_option(self):
        self.c.ok("cred.set", {"type": "gh", "user": self.user,
                               "value": "v"})
        self.c.ok("cred.set", {"type": "gh", "account": "shared",
                               "value": "w"})
        self.c.ok("cred.link", {"type": "gh", "user": new_user(),
                                "account": "shared"})
        rc, out, err = self.ctl("type", "rm", "gh")
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(err, "credctl: conflict: credential type 'gh' "
                         "still has 2 value(s) in the database; clear it "
                         "first, or delete it with force (credctl type rm "
                         "gh --force)\n")
        rc, out, err = self.ctl("cred", "rm", "gh", "--account", "shared")
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(err, "credctl: conflict: account 'shared' of "
                         "credential type 'gh' has 1 link(s) and is not "
                         "the type's default account; unlink it first, or "
                         "delete it with force (credctl cred rm gh "
                         "--account shared --force)\n")
        self.assertNotIn("pass force", err)
        self.ok("cred", "rm", "gh", "--account", "shared", "--force")
        self.ok("type", "rm", "gh", "--force")

    # -- type add warnings ---------------------------------------------------
    def test_type_add_warns_about_a_type_without_destinations(self):
        out, err = self.ok("type", "add", "open", "--name", "Open")
        self.assertEqual(err, NO_DEST % ("open", "open"))
        self.assertIn("ident:           open\n", out)
        out, err = self.ok("type", "add", "closed", "--name", "Closed",
                           "--destination", "https://api.example.com")
        self.assertEqual(err, "")

    def test_type_add_warns_about_vault_unconfigured_or_disabled(self):
        out, err = self.ok("type", "add", "vt", "--name", "V", "--storage",
                           "vault", "--destination", "https://x.example")
        self.assertEqual(err, VAULT_UNCONFIGURED % "vt")
        # Both warnings at once.
        out, err = self.ok("type", "add", "vt2", "--name", "V2",
                           "--storage", "vault")
        self.assertEqual(err, NO_DEST % ("vt2", "vt2")
                         + VAULT_UNCONFIGURED % "vt2")
        self.c.ok("vault.set", {"enabled": False,
                                "url": "https://vault.example:8200",
                                "path": "secrets/data/ddp"})
        out, err = self.ok("type", "add", "vt3", "--name", "V3",
                           "--storage", "vault", "--destination",
                           "https://x.example")
        self.assertEqual(err, VAULT_DISABLED % "vt3")
        # A db type says nothing about Vault.
        out, err = self.ok("type", "add", "d", "--name", "D",
                           "--destination", "https://x.example")
        self.assertEqual(err, "")

    # -- cred.list (SQLite) -----------------------------------------------
    def page_all(self, type_, kind, limit):
        items, after, pages = [], None, 0
        while True:
            p = {"type": type_, "kind": kind, "limit": limit}
            if after is not None:
                p["after"] = after
            res = self.c.ok("cred.list", p)
            self.assertEqual(set(res.keys()), {"items", "next"}, res)
            self.assertLessEqual(len(res["items"]), limit)
            self.assertEqual(res["items"], sorted(res["items"]))
            if after is not None:
                self.assertTrue(all(i > after for i in res["items"]), res)
            pages += 1
            items += res["items"]
            if res["next"] is None:
                return items, pages
            self.assertEqual(res["next"], res["items"][-1])
            after = res["next"]

    def test_cred_list_pages_users_and_accounts(self):
        users = sorted(new_user() for _ in range(5))
        for u in users:
            self.c.ok("cred.set", {"type": "gh", "user": u, "value": "v"})
        accounts = ["zeta", "alpha", "mid"]
        for a in accounts:
            self.c.ok("cred.set", {"type": "gh", "account": a, "value": "w"})
        # A user linked to an account has no value of its own: not listed.
        self.c.ok("cred.link", {"type": "gh", "user": new_user(),
                                "account": "alpha"})
        self.assertEqual(self.page_all("gh", "users", 2), (users, 3))
        self.assertEqual(self.page_all("gh", "accounts", 2),
                         (sorted(accounts), 2))
        # The default kind is users, the default limit holds them all.
        self.assertEqual(self.c.ok("cred.list", {"type": "gh"}),
                         {"items": users, "next": None})
        self.assertEqual(self.c.ok("cred.list", {"type": "gh", "limit": 5}),
                         {"items": users, "next": None})
        self.assertEqual(self.c.ok("cred.list", {"type": "gh", "limit": 4}),
                         {"items": users[:4], "next": users[3]})
        self.assertEqual(self.c.ok("cred.list", {"type": "gh",
                                                 "after": users[-1]}),
                         {"items": [], "next": None})
        self.assertEqual(self.c.ok("cred.list", {"type": "gh",
                                                 "after": "0"}),
                         {"items": users, "next": None})
        # By uuid too; an empty type.
        t = self.c.ok("type.get", {"type": "gh"})
        self.assertEqual(self.c.ok("cred.list", {"type": t["uuid"],
                                                 "kind": "accounts"}),
                         {"items": sorted(accounts), "next": None})
        self.c.ok("type.create", {"ident": "empty", "name": "E",
                                  "storage": "db"})
        for kind in ("users", "accounts"):
            self.assertEqual(self.c.ok("cred.list", {"type": "empty",
                                                     "kind": kind}),
                             {"items": [], "next": None})
        # Audited like cred.status.
        cbtest.poll_until(lambda: "audit: method=cred.list" in
                          self.d.log(), 10 * cbtest.SCALE, what="audit")

    def test_cred_list_refuses_bad_requests(self):
        err = self.assertError(self.c.call("cred.list", {"type": "nope"}),
                               "not_found")
        self.assertEqual(err["message"], "credential type 'nope' not found")
        for limit, got in ((0, "0"), (1001, "1001"), (-1, "-1")):
            err = self.assertError(self.c.call(
                "cred.list", {"type": "gh", "limit": limit}), "bad_request")
            self.assertEqual(err["message"], "parameter 'limit' must be "
                             "1..1000, got %s" % got)
        err = self.assertError(self.c.call(
            "cred.list", {"type": "gh", "limit": "10"}), "bad_request")
        self.assertEqual(err["message"], "parameter 'limit' must be an "
                         "integer")
        err = self.assertError(self.c.call(
            "cred.list", {"type": "gh", "kind": "values"}), "bad_request")
        self.assertEqual(err["message"], "parameter 'kind' must be "
                         "\"users\" or \"accounts\"")
        self.assertError(self.c.call("cred.list", {}), "bad_request")
        self.assertError(self.c.call("cred.list", {"type": "gh",
                                                   "value": "x"}),
                         "bad_request")
        self.assertError(self.c.call("cred.list", {"type": "gh",
                                                   "after": 3}),
                         "bad_request")
        self.assertEqual(self.c.ok("cred.list", {"type": "gh",
                                                 "limit": 1000}),
                         {"items": [], "next": None})

    def test_credctl_cred_list_pages_through_everything(self):
        # More users than one page of credctl's (1000).
        users = sorted(new_user() for _ in range(1003))
        reqs = [("cred.set", {"type": "gh", "user": u, "value": "v"})
                for u in users]
        for i in range(0, len(reqs), 20):
            for _, m in self.c.pipeline(reqs[i:i + 20]):
                self.assertIsNone(m[2], m)
        self.c.ok("cred.set", {"type": "gh", "account": "b_acc",
                               "value": "w"})
        self.c.ok("cred.set", {"type": "gh", "account": "a_acc",
                               "value": "w"})
        out, err = self.ok("cred", "list", "--type", "gh")
        self.assertEqual(err, "")
        want = ["KIND     NAME"] + ["user     " + u for u in users] + \
            ["account  a_acc", "account  b_acc"]
        self.assertEqual(out.splitlines(), want)
        rc, out, err = self.ctl("cred", "list", "--type", "gh",
                                json_out=True)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out), {"users": users,
                                           "accounts": ["a_acc", "b_acc"]})
        rc, out, err = self.ctl("cred", "list", "--type", "nope")
        self.assertEqual((rc, out), (1, ""))
        self.assertEqual(err, "credctl: not_found: credential type 'nope' "
                         "not found\n")
        rc, out, err = self.ctl("cred", "list")
        self.assertEqual(rc, 2)
        self.assertEqual(err, "credctl: cred list: --type TYPE is "
                         "required\nusage: credctl cred list --type TYPE\n")


class CredSetNoPermissionTest(CtlMixin, cbtest.DaemonTestCase):
    """A caller who may edit types but not set values."""

    daemon_kwargs = {"grants": ["uid:%d edit:user-access-credentials-types"
                                % os.getuid()]}

    def setUp(self):
        super().setUp()
        if not cbtest.have_credctl():
            self.skipTest("credctl not built at %s" % cbtest.CREDCTL)
        self.c.ok("type.create", {"ident": "gh", "name": "GitHub",
                                  "storage": "db"})

    def test_cred_set_without_permission_fails_before_the_prompt(self):
        rc, out, prompted = self.pty_set("gh", new_user())
        self.assertFalse(prompted, out)
        self.assertEqual(rc, 1, out)
        self.assertEqual(out, FORBIDDEN)
        rc, out, err = self.ctl("cred", "set", "gh", new_user(), input="v")
        self.assertEqual((rc, out, err), (1, "", FORBIDDEN))
        self.assertError(self.c.call("cred.list", {"type": "gh"}),
                         "forbidden")


class CredListVaultTest(vaulttest.VaultCase):

    def test_cred_list_pages_a_vault_type(self):
        self.configure()
        self.mktype("vt")
        users = sorted(new_user() for _ in range(5))
        for u in users:
            self.set_value("vt", u, vaulttest.canary())
        for a in ("zz", "aa", "mm"):
            self.c.ok("cred.set", {"type": "vt", "account": a,
                                   "value": vaulttest.canary()})
        got, after = [], None
        while True:
            p = {"type": "vt", "limit": 2}
            if after:
                p["after"] = after
            res = self.c.ok("cred.list", p)
            self.assertLessEqual(len(res["items"]), 2)
            got += res["items"]
            if res["next"] is None:
                break
            self.assertEqual(res["next"], res["items"][-1])
            after = res["next"]
        self.assertEqual(got, users)
        res = self.c.ok("cred.list", {"type": "vt", "kind": "accounts",
                                      "limit": 2})
        self.assertEqual(res, {"items": ["aa", "mm"], "next": "mm"})
        res = self.c.ok("cred.list", {"type": "vt", "kind": "accounts",
                                      "limit": 2, "after": "mm"})
        self.assertEqual(res, {"items": ["zz"], "next": None})
        self.mktype("vempty")
        self.assertEqual(self.c.ok("cred.list", {"type": "vempty"}),
                         {"items": [], "next": None})


@unittest.skipUnless(os.getuid() == 0, "needs root to run as nobody")
class ConnectPermissionTest(cbtest.DaemonTestCase):
    """credctl run as nobody, where the socket or its directory is only
    for a group nobody is not in."""

    def setUp(self):
        super().setUp()
        if not cbtest.have_credctl():
            self.skipTest("credctl not built at %s" % cbtest.CREDCTL)
        if shutil.which("setpriv") is None:
            self.fail("setpriv (util-linux) is needed to run as nobody")
        self.gid = grp.getgrnam("daemon").gr_gid

    def as_nobody(self):
        p = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup",
                            "--clear-groups", cbtest.CREDCTL, "-s",
                            self.d.socket, "hello"],
                           stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30 * cbtest.SCALE)
        return p.returncode, p.stdout.decode(), p.stderr.decode()

    def test_connect_denied_by_directory_names_its_group(self):
        os.chown(self.d.dir, 0, self.gid)
        os.chmod(self.d.dir, 0o750)
        rc, out, err = self.as_nobody()
        self.assertEqual((rc, out), (3, ""))
        self.assertEqual(err, "credctl: connect %s: permission denied (the "
                         "socket is for group daemon: ask to be added to "
                         "it)\n" % self.d.socket)

    def test_connect_denied_by_socket_names_its_group(self):
        os.chmod(self.d.dir, 0o755)
        os.chown(self.d.socket, 0, self.gid)
        os.chmod(self.d.socket, 0o660)
        rc, out, err = self.as_nobody()
        self.assertEqual((rc, out), (3, ""))
        self.assertEqual(err, "credctl: connect %s: permission denied (the "
                         "socket is for group daemon: ask to be added to "
                         "it)\n" % self.d.socket)
        # Once allowed in, it connects ("hello" needs no permission).
        os.chmod(self.d.socket, 0o666)
        rc, out, err = self.as_nobody()
        self.assertEqual(rc, 0, err)


if __name__ == "__main__":
    cbtest.main()

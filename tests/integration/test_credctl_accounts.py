"""
credctl and technical accounts (SPEC section 10) against a real daemon,
for a type stored in the database and for one stored in Vault (the
simulator, tests/vault/vaultsim.py):

 - "cred set TYPE --account NAME" stores a shared value (from standard
   input or a no-echo prompt), "cred link" / "cred unlink" point a user at
   it, "type edit --default-account" / "--no-default-account" set and
   clear the type's default, and a substitution for the user then gets the
   account's value with the source the broker reports;
 - "cred status USER" shows SOURCE and ACCOUNT (own before linked before
   default; a link to an account without a value is not filled and never
   falls back to the default), "cred status --type" the default and the
   accounts with their link counts, "substitute --dry-run" the source;
 - "cred rm --account" is refused with conflict while the account is
   linked or the default, until --force, after which the users get a
   not_found naming the account;
 - the table output and --json agree with the broker's own answers;
 - usage errors (exit 2) for a USER and --account together, neither,
   --force without --account, --default-account with
   --no-default-account, "cred status" with both or neither of USER and
   --type; nothing reaches the broker then;
 - no output of credctl and no daemon log line holds an account's value in
   any common encoding.
"""

import fcntl
import json
import os
import secrets
import select
import subprocess
import sys
import termios
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cbtest  # noqa: E402
import vaulttest  # noqa: E402
from cbtest import new_user, find_leaks, TIME_RE  # noqa: E402

URL = "https://api.example.com/v1/things"
TIME = TIME_RE.pattern[1:-1]        # a time inside a line


def table(out):
    """The rows of a table printed by credctl, header first, split on
    runs of spaces (no cell here holds a space)."""
    return [line.split() for line in out.splitlines() if line.strip()]


class AccountsCli:
    """The tests, run for the storage of the concrete class."""

    storage = None

    def setUp(self):
        super().setUp()
        if not cbtest.have_credctl():
            self.skipTest("credctl not built at %s" % cbtest.CREDCTL)
        self.values = []
        self.out_mark = len(cbtest.CREDCTL_OUTPUT)
        # Runs before the daemon's own clean-ups (LIFO): logs still there.
        self.addCleanup(self.check_values_not_shown)

    def check_values_not_shown(self):
        blobs = cbtest.CREDCTL_OUTPUT[self.out_mark:] + [self.d.all_logs()]
        for blob in blobs:
            self.assertEqual(find_leaks(blob, self.values), [],
                             "a value was shown")

    # -- helpers ----------------------------------------------------------
    def ctl(self, *args, input=None, json_out=False):
        return cbtest.credctl(self.d.socket, *args, input=input,
                              json=json_out)

    def ok(self, *args, input=None):
        rc, out, err = self.ctl(*args, input=input)
        self.assertEqual(rc, 0, "credctl %s: rc %d\n%s%s"
                         % (" ".join(args), rc, out, err))
        return out

    def ok_json(self, *args, input=None):
        rc, out, err = self.ctl(*args, input=input, json_out=True)
        self.assertEqual(rc, 0, "credctl --json %s: rc %d\n%s%s"
                         % (" ".join(args), rc, out, err))
        return json.loads(out)

    def broker_error(self, code, *args, input=None):
        """credctl fails with the broker's error code: exit 1, the code on
        stderr, and the same as JSON with --json.  Returns the message."""
        rc, out, err = self.ctl(*args, input=input)
        self.assertEqual(rc, 1, "credctl %s: rc %d\n%s%s"
                         % (" ".join(args), rc, out, err))
        self.assertTrue(err.startswith("credctl: %s: " % code), err)
        rc, out, err = self.ctl(*args, input=input, json_out=True)
        self.assertEqual(rc, 1, out + err)
        doc = json.loads(out)
        self.assertEqual(doc["error"]["code"], code, doc)
        return doc["error"]["message"]

    def usage(self, *args, input=None):
        rc, out, err = self.ctl(*args, input=input)
        self.assertEqual(rc, 2, "credctl %s: rc %d (expected usage error)\n"
                         "%s%s" % (" ".join(args), rc, out, err))
        self.assertIn("usage: credctl", err)
        return err

    def new_value(self, what):
        v = "%s-%s" % (what, secrets.token_hex(12))
        self.values.append(v.encode())
        return v

    def mktype(self, ident):
        self.ok("type", "add", ident, "--name", "Type " + ident,
                "--storage", self.storage)
        return self.c.ok("type.get", {"type": ident})

    def set_account(self, ident, account, value=None):
        value = value or self.new_value(account)
        out = self.ok("cred", "set", ident, "--account", account,
                      input=value + "\n")
        self.assertRegex(out, r"^updated at %s\n$" % TIME)
        return value

    def set_user(self, ident, user, value=None):
        value = value or self.new_value("own")
        self.ok("cred", "set", ident, user, input=value + "\n")
        return value

    def sub(self, ident, user, cid="tok"):
        return self.c.call("substitute", {
            "component": {"kind": "action", "initiator": user,
                          "credentials": [{"id": cid, "type": ident}]},
            "request": {"method": "GET", "url": URL,
                        "headers": [["Authorization",
                                     "Bearer <<.credentials.%s>>" % cid]]}})

    def sub_ok(self, ident, user):
        """The value substituted for user and the used entry."""
        err, res = self.sub(ident, user)
        self.assertIsNone(err, "substitute %s for %s: %r"
                          % (ident, user, err))
        hdr = res["request"]["headers"][0]
        self.assertTrue(hdr[1].startswith("Bearer "), hdr)
        self.assertEqual(len(res["used"]), 1, res["used"])
        return hdr[1][len("Bearer "):], res["used"][0]

    def status_row(self, user, ident):
        """The row of ident in "cred status USER", as a dict by header,
        checked against --json and the broker's own answer."""
        rows = table(self.ok("cred", "status", user))
        self.assertEqual(rows[0], ["IDENT", "NAME", "STORAGE", "FILLED",
                                   "SOURCE", "ACCOUNT", "UPDATED_AT"])
        doc = self.ok_json("cred", "status", user)
        self.assertEqual(doc, self.c.ok("cred.status", {"user": user}))
        mine = [r for r in rows[1:] if r[0] == ident]
        self.assertEqual(len(mine), 1, rows)
        # NAME is "Type IDENT": two cells.
        r = mine[0]
        row = dict(zip(["ident", "name", "storage", "filled", "source",
                        "account", "updated_at"],
                       [r[0], " ".join(r[1:3])] + r[3:]))
        entry = [e for e in doc if e["ident"] == ident][0]
        return row, entry

    def type_status(self, ident):
        """("key: value" fields, {account: [links, updated_at]}) of
        "cred status --type", checked against --json and the broker."""
        out = self.ok("cred", "status", "--type", ident)
        head, _, rest = out.partition("\n\n")
        fields = dict(line.split(":", 1) for line in head.splitlines())
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        rows = table(rest)
        self.assertEqual(rows[0], ["ACCOUNT", "LINKS", "UPDATED_AT"], out)
        doc = self.ok_json("cred", "status", "--type", ident)
        self.assertEqual(doc, self.c.ok("cred.status", {"type": ident}))
        accounts = {r[0]: r[1:] for r in rows[1:]}
        self.assertEqual(sorted(accounts),
                         sorted(a["name"] for a in doc["accounts"]), out)
        for a in doc["accounts"]:
            self.assertEqual(accounts[a["name"]],
                             [str(a["links"]), a["updated_at"] or "-"])
        return fields, accounts, doc

    # -- tests --------------------------------------------------------------
    def test_linked_user_gets_account_value_and_status_says_linked(self):
        t = self.mktype("db_login")
        user = new_user()
        value = self.set_account("db_login", "techno_reader")
        out = self.ok("cred", "link", "db_login", user, "techno_reader")
        self.assertRegex(out, r"^linked to techno_reader at %s\n$" % TIME)
        got, used = self.sub_ok("db_login", user)
        self.assertEqual(got, value)
        self.assertEqual((used["source"], used["account"]),
                         ("linked", "techno_reader"))

        row, entry = self.status_row(user, "db_login")
        self.assertEqual((row["storage"], row["filled"], row["source"],
                          row["account"]),
                         (self.storage, "yes", "linked", "techno_reader"))
        self.assertEqual((entry["filled"], entry["source"],
                          entry["account"]),
                         (True, "linked", "techno_reader"))
        # --json of link: the broker's result.
        doc = self.ok_json("cred", "link", "db_login", user,
                           "techno_reader")
        self.assertEqual(doc["account"], "techno_reader")
        self.assertRegex(doc["updated_at"], TIME_RE)
        if self.storage == "vault":
            dump = json.dumps(self.sim.admin("GET", "secrets"))
            self.assertIn("/credentials/%s/accounts/techno_reader"
                          % t["uuid"], dump)
            self.assertNotIn(value, dump)

    def test_own_value_comes_before_link_and_default(self):
        self.mktype("db_login")
        user = new_user()
        self.set_account("db_login", "shared")
        own = self.set_user("db_login", user)
        self.ok("cred", "link", "db_login", user, "shared")
        self.ok("type", "edit", "db_login", "--default-account", "shared")
        got, used = self.sub_ok("db_login", user)
        self.assertEqual((got, used["source"]), (own, "own"))
        row, entry = self.status_row(user, "db_login")
        self.assertEqual((row["filled"], row["source"], row["account"]),
                         ("yes", "own", "-"))
        self.assertEqual(entry["source"], "own")

    def test_default_account_set_and_cleared_by_type_edit(self):
        self.mktype("db_login")
        user = new_user()
        value = self.set_account("db_login", "techno_guest")

        out = self.ok("type", "edit", "db_login", "--default-account",
                      "techno_guest")
        self.assertRegex(out, r"(?m)^default_account: +techno_guest$")
        out = self.ok("type", "show", "db_login")
        self.assertRegex(out, r"(?m)^default_account: +techno_guest$")
        self.assertEqual(self.ok_json("type", "show", "db_login")
                         ["default_account"], "techno_guest")
        got, used = self.sub_ok("db_login", user)
        self.assertEqual((got, used["source"], used["account"]),
                         (value, "default", "techno_guest"))
        row, _ = self.status_row(user, "db_login")
        self.assertEqual((row["filled"], row["source"], row["account"]),
                         ("yes", "default", "techno_guest"))
        fields, _, doc = self.type_status("db_login")
        self.assertEqual(fields["default_account"], "techno_guest")

        doc = self.ok_json("type", "edit", "db_login",
                           "--no-default-account")
        self.assertIsNone(doc["default_account"])
        out = self.ok("type", "show", "db_login")
        self.assertRegex(out, r"(?m)^default_account: +-$")
        row, entry = self.status_row(user, "db_login")
        self.assertEqual((row["filled"], row["source"], row["account"]),
                         ("no", "-", "-"))
        self.assertIsNone(entry["source"])
        err, _ = self.sub("db_login", user)
        self.assertEqual(err["code"], "not_found", err)
        for part in ("tok", "db_login", user, "no default account"):
            self.assertIn(part, err["message"])

    def test_default_and_link_need_an_account_with_a_value(self):
        self.mktype("db_login")
        user = new_user()
        msg = self.broker_error("not_found", "type", "edit", "db_login",
                                "--default-account", "nobody")
        self.assertIn("nobody", msg)
        msg = self.broker_error("not_found", "cred", "link", "db_login",
                                user, "nobody")
        self.assertIn("nobody", msg)
        self.assertIsNone(self.c.ok("type.get", {"type": "db_login"})
                          ["default_account"])
        _, entry = self.status_row(user, "db_login")
        self.assertIsNone(entry["source"])

    def test_unlink_falls_back_to_default_and_second_unlink_is_not_found(self):
        self.mktype("db_login")
        user = new_user()
        linked = self.set_account("db_login", "reader")
        default = self.set_account("db_login", "guest")
        self.ok("type", "edit", "db_login", "--default-account", "guest")
        self.ok("cred", "link", "db_login", user, "reader")
        self.assertEqual(self.sub_ok("db_login", user)[0], linked)
        self.assertEqual(self.ok("cred", "unlink", "db_login", user), "")
        got, used = self.sub_ok("db_login", user)
        self.assertEqual((got, used["source"], used["account"]),
                         (default, "default", "guest"))
        self.broker_error("not_found", "cred", "unlink", "db_login", user)

    def test_link_replaces_the_previous_link(self):
        self.mktype("db_login")
        user = new_user()
        self.set_account("db_login", "first")
        second = self.set_account("db_login", "second")
        self.ok("cred", "link", "db_login", user, "first")
        self.ok("cred", "link", "db_login", user, "second")
        got, used = self.sub_ok("db_login", user)
        self.assertEqual((got, used["account"]), (second, "second"))
        _, accounts, _ = self.type_status("db_login")
        self.assertEqual(accounts["first"][0], "0")
        self.assertEqual(accounts["second"][0], "1")

    def test_changing_account_value_once_changes_every_linked_user(self):
        self.mktype("db_login")
        users = [new_user() for _ in range(5)]
        self.set_account("db_login", "shared")
        for u in users:
            self.ok("cred", "link", "db_login", u, "shared")
        new = self.set_account("db_login", "shared")
        for u in users:
            self.assertEqual(self.sub_ok("db_login", u)[0], new)

    def test_status_type_lists_accounts_link_counts_and_default(self):
        t = self.mktype("db_login")
        self.set_account("db_login", "reader")
        self.set_account("db_login", "writer")
        self.set_account("db_login", "idle")
        for _ in range(3):
            self.ok("cred", "link", "db_login", new_user(), "reader")
        self.ok("cred", "link", "db_login", new_user(), "writer")
        self.ok("type", "edit", "db_login", "--default-account", "writer")
        fields, accounts, doc = self.type_status("db_login")
        self.assertEqual(fields["ident"], "db_login")
        self.assertEqual(fields["type"], t["uuid"])
        self.assertEqual(fields["default_account"], "writer")
        self.assertEqual({a: v[0] for a, v in accounts.items()},
                         {"reader": "3", "writer": "1", "idle": "0"})
        for v in accounts.values():
            self.assertRegex(v[1], TIME_RE)
        # By uuid too; a type without accounts has an empty table.
        self.assertEqual(self.ok_json("cred", "status", "--type",
                                      t["uuid"]), doc)
        self.mktype("empty")
        fields, accounts, _ = self.type_status("empty")
        self.assertEqual((fields["default_account"], accounts), ("-", {}))
        self.broker_error("not_found", "cred", "status", "--type", "nosuch")

    def test_rm_account_conflict_until_force_then_users_not_found(self):
        self.mktype("db_login")
        linked, other = new_user(), new_user()
        self.set_account("db_login", "reader")
        self.set_account("db_login", "guest")
        self.ok("cred", "link", "db_login", linked, "reader")
        self.ok("type", "edit", "db_login", "--default-account", "guest")

        msg = self.broker_error("conflict", "cred", "rm", "db_login",
                                "--account", "reader")
        self.assertIn("1", msg)
        msg = self.broker_error("conflict", "cred", "rm", "db_login",
                                "--account", "guest")
        self.assertIn("default", msg)
        # Nothing was deleted.
        self.assertEqual(self.sub_ok("db_login", linked)[1]["source"],
                         "linked")
        self.assertEqual(self.sub_ok("db_login", other)[1]["source"],
                         "default")

        self.assertEqual(self.ok("cred", "rm", "db_login", "--account",
                                 "reader", "--force"), "")
        self.assertEqual(self.ok_json("cred", "rm", "db_login", "--account",
                                      "guest", "--force"), {})
        for user, account, source in ((linked, "reader", "linked"),
                                      (other, "guest", "default")):
            err, _ = self.sub("db_login", user)
            self.assertEqual(err["code"], "not_found", err)
            self.assertIn(account, err["message"])
            row, _ = self.status_row(user, "db_login")
            self.assertEqual((row["filled"], row["source"], row["account"]),
                             ("no", source, account))
        # The link and the default stay, the linked account is listed
        # without a value; setting the value again heals.
        fields, accounts, _ = self.type_status("db_login")
        self.assertEqual(fields["default_account"], "guest")
        self.assertEqual(accounts, {"reader": ["1", "-"]})
        value = self.set_account("db_login", "reader")
        self.assertEqual(self.sub_ok("db_login", linked)[0], value)

    def test_rm_unlinked_account_needs_no_force(self):
        self.mktype("db_login")
        self.set_account("db_login", "spare")
        self.assertEqual(self.ok("cred", "rm", "db_login", "--account",
                                 "spare"), "")
        _, accounts, _ = self.type_status("db_login")
        self.assertEqual(accounts, {})
        self.broker_error("not_found", "cred", "rm", "db_login",
                          "--account", "spare")

    def test_dry_run_shows_source_and_account(self):
        self.mktype("db_login")
        self.mktype("api_key")
        user = new_user()
        self.set_account("db_login", "reader")
        self.ok("cred", "link", "db_login", user, "reader")
        self.set_user("api_key", user)
        doc = {"component": {"kind": "action", "initiator": user,
                             "credentials": [{"id": "db", "type": "db_login"},
                                             {"id": "k", "type": "api_key"}]},
               "request": {"method": "GET", "url": URL,
                           "headers": [["X-Db", "<<.credentials.db>>"],
                                       ["X-Key", "<<.credentials.k>>"]]}}
        out = self.ok("substitute", "--dry-run", input=json.dumps(doc))
        rows = table(out.split("subject: " + user + "\n", 1)[1])
        self.assertEqual(rows[0], ["ID", "TYPE", "FILLED", "SOURCE",
                                   "ACCOUNT"])
        self.assertEqual(sorted(rows[1:]),
                         [["db", "db_login", "yes", "linked", "reader"],
                          ["k", "api_key", "yes", "own", "-"]])

    def test_type_clear_removes_accounts_links_and_default(self):
        self.mktype("db_login")
        user = new_user()
        self.set_account("db_login", "reader")
        self.ok("cred", "link", "db_login", user, "reader")
        self.ok("type", "edit", "db_login", "--default-account", "reader")
        self.ok("type", "clear", "db_login")
        fields, accounts, _ = self.type_status("db_login")
        self.assertEqual((fields["default_account"], accounts), ("-", {}))
        row, _ = self.status_row(user, "db_login")
        self.assertEqual((row["filled"], row["source"]), ("no", "-"))


class CredctlAccountsDbTest(AccountsCli, cbtest.DaemonTestCase):
    storage = "db"

    def test_account_value_from_prompt_is_not_echoed(self):
        """cred set --account on a terminal: the prompt names the
        account, the value is not echoed."""
        self.mktype("db_login")
        value = self.new_value("prompted")
        master, slave = os.openpty()

        def controlling_tty():
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        cmd = [cbtest.CREDCTL, "-s", self.d.socket, "cred", "set",
               "db_login", "--account", "techno_reader"]
        try:
            p = subprocess.Popen(cmd, stdin=slave, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE,
                                 start_new_session=True,
                                 preexec_fn=controlling_tty)
        finally:
            os.close(slave)
        prompt = b"Value for db_login of account techno_reader: "
        tty = b""
        try:
            deadline = time.monotonic() + 10 * cbtest.SCALE
            while prompt not in tty:
                left = deadline - time.monotonic()
                self.assertGreater(left, 0, "no prompt: %r" % tty)
                r, _, _ = select.select([master], [], [], left)
                if r:
                    tty += os.read(master, 4096)
            os.write(master, value.encode() + b"\n")
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
        self.assertNotIn(value.encode(), tty, "the value was echoed")
        user = new_user()
        self.ok("cred", "link", "db_login", user, "techno_reader")
        self.assertEqual(self.sub_ok("db_login", user)[0], value)

    def test_usage_errors_reach_no_broker(self):
        self.mktype("db_login")
        user = new_user()
        value = self.new_value("never")
        for args in (("cred", "set", "db_login"),
                     ("cred", "set", "db_login", user, "--account", "acc"),
                     ("cred", "set", "db_login", "--account", "a",
                      "--account", "b"),
                     ("cred", "rm", "db_login"),
                     ("cred", "rm", "db_login", user, "--account", "acc"),
                     ("cred", "rm", "db_login", user, "--force"),
                     ("cred", "link", "db_login", user),
                     ("cred", "unlink", "db_login"),
                     ("cred", "status"),
                     ("cred", "status", user, "--type", "db_login"),
                     ("type", "edit", "db_login", "--default-account", "acc",
                      "--no-default-account"),
                     ("type", "edit", "db_login", "--account", "acc")):
            self.usage(*args, input=value + "\n")
        # Nothing was set: no account, no default, no link.
        self.assertEqual(self.c.ok("cred.status", {"type": "db_login"})
                         ["accounts"], [])
        self.assertIsNone(self.c.ok("type.get", {"type": "db_login"})
                          ["default_account"])

    def test_account_names_follow_the_ident_grammar(self):
        self.mktype("db_login")
        good = ["a", "techno_reader2", "x" * 64]
        for name in good:
            self.set_account("db_login", name)
        for name in ("Techno", "1st", "a-b", "_a", "x" * 65):
            self.broker_error("bad_request", "cred", "set", "db_login",
                              "--account", name,
                              input=self.new_value("bad") + "\n")
        _, accounts, _ = self.type_status("db_login")
        self.assertEqual(sorted(accounts), sorted(good))


class CredctlAccountsVaultTest(AccountsCli, vaulttest.VaultCase):
    storage = "vault"

    def setUp(self):
        super().setUp()
        self.configure()


if __name__ == "__main__":
    cbtest.main()

"""
Technical accounts (SPEC section 10, seed 004) through the real daemon:
named accounts of a type holding shared values, users linked to them, and
a type's default account.

 - Resolution table: for db and for Vault storage, every combination of
   the user's own value (absent, present), the user's link (none, to an
   account with a value, to an account without one) and the type's
   default (none, an account with a value, one without): the substituted
   request or the not_found naming what was tried, the source and account
   reported in "used", and cred.status {user}.
 - 500 users linked to one account: one cred.set of the account changes
   what every one of them gets, with the rows of the SQLite file counted.
 - Deleting a linked account or the default: conflict until force, then
   not_found naming the missing account, with links and default kept.
 - cred.link / cred.unlink / type.update default_account / cred.status
   {type} answers and refusals; type.clear and type.delete.
 - key.rotate with accounts, links and a default: everything still
   resolves afterwards, and every sealed row is under the new key.
 - The audit lines name the sources, never a value.
 - A link row pointed at another account in the database is refused.

Every test also checks, when it ends, that no planted value reached the
daemon's logs.
"""

import json
import os
import sys
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "vault"))

import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402
import vaulttest  # noqa: E402
from vaulttest import URL  # noqa: E402

ROTATE_TIMEOUT = 60 * cbtest.SCALE


def bearer(res):
    hdr = res["request"]["headers"][0]
    assert hdr[0] == "Authorization" and hdr[1].startswith("Bearer "), hdr
    return hdr[1][len("Bearer "):]


class AccountsBase(vaulttest.VaultCase):
    """A daemon with an audit file, and the simulator for Vault types."""

    def setUp(self):
        super().setUp()
        self.audit = os.path.join(self.d.dir, "audit.log")

    # values ----------------------------------------------------------------
    def canary(self, what):
        v = "%s-%s" % (what, vaulttest.canary())
        self.planted.append(v.encode())
        return v

    def set_user(self, ident, user, value):
        return self.c.ok("cred.set", {"type": ident, "user": user,
                                      "value": value})

    def set_account(self, ident, name, value):
        return self.c.ok("cred.set", {"type": ident, "account": name,
                                      "value": value})

    def sub(self, ident, user, dry_run=None):
        p = cbtest.bearer_substitute(user, ident, URL)
        if dry_run is not None:
            p["dry_run"] = dry_run
        return self.c.call("substitute", p)

    def sub_ok(self, ident, user):
        err, res = self.sub(ident, user)
        self.assertIsNone(err, "substitute %s for %s: %r" % (ident, user, err))
        return bearer(res), res["used"][0]

    def sub_not_found(self, ident, user, *needles):
        err, res = self.sub(ident, user)
        self.assertIsNotNone(err, "expected not_found, got %r" % (res,))
        self.assertEqual(err["code"], "not_found", err)
        for n in needles:
            self.assertIn(n, err["message"])
        return err["message"]

    def status_of(self, user, client=None):
        return {e["ident"]: e for e in self.c.ok("cred.status",
                                                 {"user": user})}


class TestResolution(AccountsBase):
    """Own, else linked, else default, else not_found: every combination,
    for db and Vault storage."""

    OWN = (False, True)
    LINK = (None, "valued", "valueless")
    DEFAULT = (None, "valued", "valueless")

    def expected(self, own, link, dflt):
        """(source, account, outcome) where outcome is a value key or
        "missing" (the named account has no value) or "none"."""
        if own:
            return "own", None, "own"
        if link == "valued":
            return "linked", "acct_link", "link"
        if link == "valueless":
            return "linked", "acct_gone", "missing"
        if dflt == "valued":
            return "default", "acct_dflt", "dflt"
        if dflt == "valueless":
            return "default", "acct_lost", "missing"
        return None, None, "none"

    def run_table(self, storage):
        if storage == "vault":
            self.configure()
        n = 0
        for own in self.OWN:
            for link in self.LINK:
                for dflt in self.DEFAULT:
                    n += 1
                    ident = "t%s_%d" % (storage, n)
                    with self.subTest(storage=storage, own=own, link=link,
                                      default=dflt):
                        self.run_row(storage, ident, own, link, dflt)

    def run_row(self, storage, ident, own, link, dflt):
        self.mktype(ident, storage=storage)
        user, other = new_user(), new_user()
        vals = {"link": self.canary("link"), "dflt": self.canary("dflt"),
                "own": self.canary("own")}
        self.set_account(ident, "acct_link", vals["link"])
        self.set_account(ident, "acct_dflt", vals["dflt"])
        # Accounts that had a value when linked or made the default, and
        # lost it (deleted with force) afterwards.
        self.set_account(ident, "acct_gone", self.canary("gone"))
        self.set_account(ident, "acct_lost", self.canary("lost"))
        # Another user's own value never serves this one.
        self.set_user(ident, other, self.canary("other"))
        if own:
            self.set_user(ident, user, vals["own"])
        if link == "valued":
            self.c.ok("cred.link", {"type": ident, "user": user,
                                    "account": "acct_link"})
        elif link == "valueless":
            self.c.ok("cred.link", {"type": ident, "user": user,
                                    "account": "acct_gone"})
        if dflt == "valued":
            self.c.ok("type.update", {"type": ident,
                                      "default_account": "acct_dflt"})
        elif dflt == "valueless":
            self.c.ok("type.update", {"type": ident,
                                      "default_account": "acct_lost"})
        self.c.ok("cred.delete", {"type": ident, "account": "acct_gone",
                                  "force": True})
        self.c.ok("cred.delete", {"type": ident, "account": "acct_lost",
                                  "force": True})

        source, account, outcome = self.expected(own, link, dflt)
        err, res = self.sub(ident, user)
        if outcome in vals:
            self.assertIsNone(err, err)
            self.assertEqual(bearer(res), vals[outcome])
            want = {"id": "tok", "type": ident, "source": source}
            if account is not None:
                want["account"] = account
            self.assertEqual(res["used"], [want])
        else:
            self.assertIsNotNone(err, "expected not_found, got %r" % (res,))
            self.assertEqual(err["code"], "not_found", err)
            msg = err["message"]
            for needle in ("'tok'", "'%s'" % ident, user):
                self.assertIn(needle, msg)
            if outcome == "none":
                self.assertIn("no own value, no link, no default account",
                              msg)
            else:
                self.assertIn("the %s account '%s' has no value"
                              % (source, account), msg)
        # The dry run says the same without a value.
        err, res = self.sub(ident, user, dry_run=True)
        self.assertIsNone(err, err)
        u = res["used"][0]
        self.assertEqual((u["source"], u.get("account"), u["filled"]),
                         (source, account, outcome in vals))
        # cred.status {user}
        st = self.status_of(user)[ident]
        self.assertEqual((st["source"], st["account"], st["filled"]),
                         (source, account, outcome in vals), st)
        self.assertEqual(st["updated_at"] is not None, outcome in vals)

    def test_resolution_table_db(self):
        self.run_table("db")

    def test_resolution_table_vault(self):
        self.run_table("vault")

    def test_own_value_beats_link_and_default_then_falls_back(self):
        """Deleting the own value falls back to the link; unlinking, to the
        default; clearing the default, to not_found."""
        self.mktype("fb", storage="db")
        u = new_user()
        own, lk, df = (self.canary("own"), self.canary("lk"),
                       self.canary("df"))
        self.set_account("fb", "lk", lk)
        self.set_account("fb", "df", df)
        self.set_user("fb", u, own)
        self.c.ok("cred.link", {"type": "fb", "user": u, "account": "lk"})
        t = self.c.ok("type.update", {"type": "fb", "default_account": "df"})
        self.assertEqual(t["default_account"], "df")
        self.assertEqual(self.sub_ok("fb", u)[0], own)
        self.c.ok("cred.delete", {"type": "fb", "user": u})
        self.assertEqual(self.sub_ok("fb", u),
                         (lk, {"id": "tok", "type": "fb", "source": "linked",
                               "account": "lk"}))
        self.c.ok("cred.unlink", {"type": "fb", "user": u})
        self.assertEqual(self.sub_ok("fb", u),
                         (df, {"id": "tok", "type": "fb",
                               "source": "default", "account": "df"}))
        t = self.c.ok("type.update", {"type": "fb", "default_account": None})
        self.assertIsNone(t["default_account"])
        self.assertIsNone(self.c.ok("type.get", {"type": "fb"})
                          ["default_account"])
        self.sub_not_found("fb", u, "no own value, no link, no default")


class TestManyUsers(AccountsBase):
    """500 users share one account: one change reaches all of them."""

    USERS = 500

    def test_500_linked_users_follow_one_change_of_the_account(self):
        t = self.mktype("shared", storage="db")
        users = [new_user() for _ in range(self.USERS)]
        v1, v2 = self.canary("first"), self.canary("second")
        self.set_account("shared", "techno_reader", v1)
        out = self.c.pipeline([("cred.link", {"type": "shared", "user": u,
                                              "account": "techno_reader"})
                               for u in users])
        for _, m in out:
            self.assertIsNone(m[2], m[2])
            self.assertEqual(m[3]["account"], "techno_reader")

        def everyone_gets(value):
            out = self.c.pipeline([("substitute", cbtest.bearer_substitute(
                u, "shared", URL)) for u in users])
            for _, m in out:
                self.assertIsNone(m[2], m[2])
                self.assertEqual(bearer(m[3]), value)
                self.assertEqual(m[3]["used"][0]["source"], "linked")

        everyone_gets(v1)
        self.set_account("shared", "techno_reader", v2)
        everyone_gets(v2)
        # What is stored: one account value, 500 links, no user value.
        def count(sql, key=t["uuid"]):
            return self.d.store_rows(sql, (key,))[0][0]
        self.assertEqual(count("SELECT count(*) FROM credvalues "
                               "WHERE type_uuid = ?",
                               self.d.value_id(t["uuid"])), 0)
        self.assertEqual(count("SELECT count(*) FROM credaccounts "
                               "WHERE type_uuid = ?"), 1)
        self.assertEqual(count("SELECT count(*) FROM credlinks "
                               "WHERE type_uuid = ?"), self.USERS)
        st = self.c.ok("cred.status", {"type": "shared"})
        self.assertEqual(st["accounts"], [{
            "name": "techno_reader", "links": self.USERS,
            "updated_at": st["accounts"][0]["updated_at"]}])
        self.assertIsNotNone(st["accounts"][0]["updated_at"])


class TestConflictAndForce(AccountsBase):

    def check(self, storage):
        if storage == "vault":
            self.configure()
        ident = "cf_" + storage
        self.mktype(ident, storage=storage)
        linked, plain = new_user(), new_user()
        self.set_account(ident, "acct", self.canary("acct"))
        if storage == "vault":
            # One secret at the documented path, holding sealed text.
            key = "%s/credentials/%s/accounts/acct" % (vaulttest.PREFIX,
                                                      self.types[ident])
            dump = self.sim.secrets()
            self.assertEqual(sorted(dump), [key])
            data = dump[key]["versions"]["1"]["data"]
            self.assertTrue(data["value"].startswith("CB1:"), data)
        self.c.ok("cred.link", {"type": ident, "user": linked,
                                "account": "acct"})
        # Linked: conflict, saying how many links.
        err = self.assertError(self.c.call("cred.delete", {
            "type": ident, "account": "acct"}), "conflict")
        self.assertIn("1 link(s)", err["message"])
        self.assertIn("is not the type's default", err["message"])
        self.c.ok("type.update", {"type": ident, "default_account": "acct"})
        err = self.assertError(self.c.call("cred.delete", {
            "type": ident, "account": "acct"}), "conflict")
        self.assertIn("is the type's default", err["message"])
        self.c.ok("cred.unlink", {"type": ident, "user": linked})
        # The default alone is enough to refuse.
        err = self.assertError(self.c.call("cred.delete", {
            "type": ident, "account": "acct"}), "conflict")
        self.assertIn("0 link(s) and is the type's default", err["message"])
        self.c.ok("cred.link", {"type": ident, "user": linked,
                                "account": "acct"})
        # Nothing was deleted by the refusals.
        self.assertEqual(self.sub_ok(ident, plain)[1]["source"], "default")
        # force: the value goes, links and the default stay.
        self.c.ok("cred.delete", {"type": ident, "account": "acct",
                                  "force": True})
        self.sub_not_found(ident, linked, "linked account 'acct' has no "
                           "value", linked)
        self.sub_not_found(ident, plain, "default account 'acct' has no "
                           "value", plain)
        st = self.c.ok("cred.status", {"type": ident})
        self.assertEqual(st["default_account"], "acct")
        self.assertEqual(st["accounts"], [{"name": "acct", "links": 1,
                                           "updated_at": None}])
        # Deleting it again: not_found naming the account.
        err = self.assertError(self.c.call("cred.delete", {
            "type": ident, "account": "acct", "force": True}), "not_found")
        self.assertIn("account 'acct'", err["message"])
        if storage == "vault":
            self.assertEqual(self.sim.secrets(), {})
        # A new value heals both.
        v = self.canary("healed")
        self.set_account(ident, "acct", v)
        self.assertEqual(self.sub_ok(ident, linked)[0], v)
        self.assertEqual(self.sub_ok(ident, plain)[0], v)

    def test_delete_linked_or_default_account_conflict_until_force_db(self):
        self.check("db")

    def test_delete_linked_or_default_account_conflict_until_force_vault(
            self):
        self.check("vault")


class TestCalls(AccountsBase):
    """Answers and refusals of the account calls."""

    def test_link_needs_an_account_with_a_value(self):
        self.mktype("lk", storage="db")
        u = new_user()
        err = self.assertError(self.c.call("cred.link", {
            "type": "lk", "user": u, "account": "nobody"}), "not_found")
        self.assertIn("account 'nobody'", err["message"])
        err = self.assertError(self.c.call("type.update", {
            "type": "lk", "default_account": "nobody"}), "not_found")
        self.assertIn("account 'nobody'", err["message"])
        self.assertIsNone(self.c.ok("type.get", {"type": "lk"})
                          ["default_account"])
        self.assertError(self.c.call("cred.unlink", {
            "type": "lk", "user": u}), "not_found")

    def test_link_replaces_the_users_link(self):
        self.mktype("rl", storage="db")
        u = new_user()
        a, b = self.canary("a"), self.canary("b")
        self.set_account("rl", "first", a)
        self.set_account("rl", "second", b)
        r = self.c.ok("cred.link", {"type": "rl", "user": u,
                                    "account": "first"})
        self.assertEqual(set(r), {"account", "updated_at"})
        self.assertEqual(self.sub_ok("rl", u)[0], a)
        self.c.ok("cred.link", {"type": "rl", "user": u, "account": "second"})
        self.assertEqual(self.sub_ok("rl", u)[0], b)
        st = self.c.ok("cred.status", {"type": "rl"})
        self.assertEqual([(x["name"], x["links"]) for x in st["accounts"]],
                         [("first", 0), ("second", 1)])
        # Neither linked nor the default: deleted without force.
        self.c.ok("cred.delete", {"type": "rl", "account": "first"})
        st = self.c.ok("cred.status", {"type": "rl"})
        self.assertEqual([x["name"] for x in st["accounts"]], ["second"])
        self.assertEqual(self.sub_ok("rl", u)[0], b)

    def test_bad_requests(self):
        self.mktype("br", storage="db")
        u = new_user()
        cases = [
            ("cred.set", {"type": "br", "user": u, "account": "a",
                          "value": "x"}),
            ("cred.set", {"type": "br", "account": "Bad-Name",
                          "value": "x"}),
            ("cred.set", {"type": "br", "value": "x"}),
            ("cred.delete", {"type": "br", "user": u, "force": True}),
            ("cred.link", {"type": "br", "user": u}),
            ("cred.link", {"type": "br", "account": "a"}),
            ("cred.link", {"type": "br", "user": u, "account": "9a"}),
            ("cred.status", {"user": u, "type": "br"}),
            ("type.update", {"type": "br", "default_account": "A"}),
            ("type.update", {"type": "br", "default_account": 3}),
        ]
        for method, params in cases:
            with self.subTest(method=method, params=params):
                self.assertError(self.c.call(method, params), "bad_request")

    def test_account_values_are_write_only(self):
        self.mktype("wo", storage="db")
        v = self.canary("wo")
        r = self.set_account("wo", "acct", v)
        self.assertEqual(set(r), {"updated_at"})
        st = self.c.ok("cred.status", {"type": "wo"})
        self.assertNotIn(v.encode(), json.dumps(st).encode())
        self.assertEqual(set(st), {"type", "ident", "default_account",
                                   "accounts"})

    def test_clear_removes_accounts_links_and_default(self):
        self.mktype("cl", storage="db")
        u = new_user()
        self.set_account("cl", "acct", self.canary("cl"))
        self.set_user("cl", new_user(), self.canary("cl_user"))
        self.c.ok("cred.link", {"type": "cl", "user": u, "account": "acct"})
        self.c.ok("type.update", {"type": "cl", "default_account": "acct"})
        r = self.c.ok("type.clear", {"type": "cl"})
        self.assertEqual(r["removed"], 2)
        st = self.c.ok("cred.status", {"type": "cl"})
        self.assertEqual((st["default_account"], st["accounts"]), (None, []))
        self.sub_not_found("cl", u, "no own value, no link, no default")
        # type.delete: an account's value alone is a reason to refuse.
        self.set_account("cl", "acct", self.canary("cl2"))
        self.assertError(self.c.call("type.delete", {"type": "cl"}),
                         "conflict")
        self.c.ok("type.delete", {"type": "cl", "force": True})

    def test_tampered_link_is_refused(self):
        """A link row pointed at another account in the database (its
        clear name changed) does not resolve."""
        t = self.mktype("tl", storage="db")
        u = new_user()
        self.set_account("tl", "low", self.canary("low"))
        high = self.canary("high")
        self.set_account("tl", "high", high)
        self.c.ok("cred.link", {"type": "tl", "user": u, "account": "low"})
        self.d.stop()
        self.d.store_execute("UPDATE credlinks SET account = 'high' WHERE "
                             "type_uuid = ?", (t["uuid"],))
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        err = self.assertError(self.sub("tl", u), "internal")
        self.assertNotIn(high, err["message"])
        self.assertIn("tampered", self.d.log())


class TestAudit(AccountsBase):

    def setUp(self):
        super().setUp()
        self.d.stop()
        self.d.args += ["-o", "audit.file=" + self.audit]
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)

    def test_audit_lines_name_sources(self):
        self.mktype("au", storage="db")
        self.mktype("bu", storage="db")
        own, linked = new_user(), new_user()
        self.set_user("au", own, self.canary("au"))
        self.set_account("bu", "svc", self.canary("bu"))
        self.c.ok("cred.link", {"type": "bu", "user": linked,
                                "account": "svc"})
        self.c.ok("type.update", {"type": "au", "default_account": None})
        # Two ids of one type: its source is named once.
        p = {"component": {"kind": "action", "initiator": own,
                           "credentials": [{"id": "a", "type": "au"},
                                           {"id": "b", "type": "au"}]},
             "request": {"method": "GET",
                         "url": URL + "&b=<<.credentials.b|urlquery>>",
                         "headers": [["Authorization",
                                      "Bearer <<.credentials.a>>"]]}}
        self.c.ok("substitute", p)
        self.c.ok("substitute", cbtest.bearer_substitute(linked, "bu", URL))
        with open(self.audit, "rb") as f:
            blob = f.read()
        lines = [json.loads(x) for x in blob.decode().splitlines()]
        subs = [x for x in lines if x["method"] == "substitute"]
        self.assertEqual([x.get("sources") for x in subs],
                         [["au/own"], ["bu/linked/svc"]])
        for x in lines:
            if x["method"] != "substitute":
                self.assertNotIn("sources", x)
        link = [x for x in lines if x["method"] == "cred.link"]
        self.assertEqual((link[0]["subject"], link[0]["types"],
                          link[0]["outcome"]), (linked, ["bu"], "ok"))
        self.assertEqual(find_leaks(blob, self.planted), [])
        self.assertIn("sources=bu/linked/svc", self.d.log())


class TestRotation(AccountsBase):

    def test_key_rotate_keeps_accounts_links_and_default(self):
        self.configure()
        users = {}
        for storage in ("db", "vault"):
            ident = "kr_" + storage
            self.mktype(ident, storage=storage)
            own, linked, dflt = new_user(), new_user(), new_user()
            vo, vl, vd = (self.canary("o"), self.canary("l"),
                          self.canary("d"))
            self.set_user(ident, own, vo)
            self.set_account(ident, "linked_acct", vl)
            self.set_account(ident, "default_acct", vd)
            self.c.ok("cred.link", {"type": ident, "user": linked,
                                    "account": "linked_acct"})
            self.c.ok("type.update", {"type": ident,
                                      "default_account": "default_acct"})
            users[ident] = [(own, vo, "own"), (linked, vl, "linked"),
                            (dflt, vd, "default")]
        new_path = os.path.join(self.d.dir, "new.key")
        cbtest.write_file(new_path, cbtest.strong_key().encode() + b"\n")
        self.c.ok("key.rotate", {"new_key_file": new_path})

        def done():
            st = self.c.ok("key.status", {})
            return st if st["rotation"]["state"] == "done" else None
        cbtest.poll_until(done, ROTATE_TIMEOUT, interval=0.05,
                          what="rotation done")

        def check_all():
            for ident, rows in users.items():
                for user, value, source in rows:
                    got, used = self.sub_ok(ident, user)
                    self.assertEqual((got, used["source"]), (value, source))
        check_all()
        # Everything in the database is under the new key: the old one
        # is refused at start-up, and the new one opens every row.
        for sql in ("SELECT sealed FROM credlinks",
                    "SELECT sealed FROM credaccounts",
                    "SELECT default_sealed FROM types WHERE "
                    "default_sealed IS NOT NULL"):
            rows = self.d.store_rows(sql)
            self.assertTrue(rows, sql)
            for (s,) in rows:
                self.assertTrue(s.startswith("CB1:2:"), (sql, s[:8]))
        self.d.stop()
        self.d.key_file = new_path
        with open(new_path) as f:
            self.d.key = f.read().strip()
        self.d.write_config()
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        check_all()


if __name__ == "__main__":
    cbtest.main()

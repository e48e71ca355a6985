"""
A fleet (SPEC section 12): three brokers, A, B and C, each with its own
directory, socket and configuration, on one PostgreSQL database and with
the same master key.  This suite always runs on PostgreSQL, in the private
cluster of cbtest (tests/integration/pgtest.py), whatever CB_TEST_BACKEND
says.

 - A type created through A is answered by C within 1 s (the
   specification's bound: LISTEN/NOTIFY), polled every 20 ms.
 - A value set through B is substituted by C, and the value appears in
   none of the three logs, nor in the database, nor in the server's log.
 - A value deleted through C is not_found on A at the very next call
   (values are read from PostgreSQL on every call: no cache to wait for).
 - A type edit and a type delete through B reach A within 1 s.
 - A link and a default account set through A are used by C's
   substitution within 1 s.
 - A broker whose master key differs from the one the database recorded
   refuses to start, and says so; the others go on.
 - Three brokers started at the same moment on an empty database all
   come up on one schema.
 - A broker restarted after changes made without it serves them at once.
 - After the server restarts, the brokers answer again by themselves and
   changes propagate within 1 s again.
 - key.rotate is refused while the other brokers do not hold the new key,
   and changes nothing (test_fleet_keys.py has the rotation itself).
"""

import os
import sys
import time
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cbtest  # noqa: E402
from cbtest import new_user, find_leaks  # noqa: E402

# What SPEC section 12 promises: a change through one broker is seen by
# all within 1 s.
PROPAGATION = 1.0
# How long to keep polling, so that a late change is reported with how
# late it was rather than as a time-out.
POLL_DEADLINE = 10 * cbtest.SCALE
POLL_INTERVAL = 0.02
URL = "https://api.example.com/v1/items"


def bearer(res):
    hdr = res["request"]["headers"][0]
    assert hdr[0] == "Authorization" and hdr[1].startswith("Bearer "), hdr
    return hdr[1][len("Bearer "):]


class FleetCase(unittest.TestCase):
    """Three brokers on a fresh database of their own."""

    def setUp(self):
        if not cbtest.have_binaries():
            self.skipTest("credbrokerd not built at %s" % cbtest.DAEMON)
        self.fleet_setup()
        self.A, self.a = self.broker()
        self.B, self.b = self.broker()
        self.C, self.c = self.broker()

    def fleet_setup(self):
        self.db = cbtest.pg_new_database()
        self.key = cbtest.strong_key()
        self.planted = []
        self.daemons = []
        # Run in reverse: the brokers stop (their clean-ups are
        # registered later), then their logs are searched, then their
        # directories go.
        self.addCleanup(self.remove_dirs)
        self.addCleanup(self.check_no_value_anywhere)

    def remove_dirs(self):
        for d in self.daemons:
            cbtest.remove_tmpdir(d.dir)

    def broker(self, key=None, start=True):
        # The directory goes in remove_dirs, after the logs are searched.
        d, c = cbtest.fleet(self.db, self.key if key is None else key,
                            self.addCleanup, start=start, remove_dir=False)
        self.daemons.append(d)
        return d, c

    # helpers ---------------------------------------------------------------
    def canary(self, what):
        v = "%s-%s" % (what, cbtest.plain_key(24))
        self.planted.append(v.encode())
        return v

    def mktype(self, client, ident, **more):
        p = {"ident": ident, "name": "Type " + ident, "storage": "db"}
        p.update(more)
        return client.ok("type.create", p)

    def sub(self, client, ident, user, url=URL):
        return client.call("substitute",
                           cbtest.bearer_substitute(user, ident, url))

    def within(self, since, fn, what):
        """Poll fn every 20 ms until it is true; assert that it became
        true within PROPAGATION of since (monotonic time of the answer
        that made the change).  Returns fn's value."""
        v = cbtest.poll_until(fn, POLL_DEADLINE, POLL_INTERVAL, what)
        late = time.monotonic() - since
        self.assertLess(late, PROPAGATION,
                        "%s took %.3f s (SPEC 12: within 1 s)" % (what, late))
        return v

    def type_on(self, client, ident):
        """type.get's answer, or None when the broker says not_found."""
        err, res = client.call("type.get", {"type": ident})
        if err is not None:
            self.assertEqual(err["code"], "not_found", err)
            return None
        return res

    def check_no_value_anywhere(self):
        values = [v for v in self.planted if len(v) >= 12]
        if not values:
            return
        for d in self.daemons:
            blob = d.all_logs()
            if d.proc is not None and d.proc.returncode == 0:
                self.assertIn(b"started", blob, "no log of %s" % d.dir)
            self.assertEqual(find_leaks(blob, values), [],
                             "value in the log of %s" % d.dir)
        # At rest only sealed: every row of every table, as text.
        tables = cbtest.pg_sql(
            "SELECT quote_ident(table_schema) || '.' || quote_ident("
            "table_name) FROM information_schema.tables WHERE "
            "table_type = 'BASE TABLE' AND table_schema NOT IN "
            "('pg_catalog', 'information_schema')", self.db).split()
        self.assertTrue(tables, "no table in the fleet's database")
        for t in tables:
            rows = cbtest.pg_sql("SELECT t::text FROM %s t" % t, self.db)
            self.assertEqual(find_leaks(rows.encode(), values), [],
                             "value in table %s" % t)
        with open(cbtest.pg_cluster().logfile, "rb") as f:
            self.assertEqual(find_leaks(f.read(), values), [],
                             "value in PostgreSQL's log")


class TestFleet(FleetCase):

    def test_type_created_on_one_broker_is_answered_by_another_within_1s(
            self):
        self.assertIsNone(self.type_on(self.c, "shared_gh"))
        t = self.mktype(self.a, "shared_gh", description="from A",
                        destinations=["https://api.example.com"])
        since = time.monotonic()
        got = self.within(since, lambda: self.type_on(self.c, "shared_gh"),
                          "type.get on C")
        for k in ("uuid", "ident", "name", "description", "storage",
                  "destinations", "created_at"):
            self.assertEqual(got[k], t[k], k)
        # And by its uuid, and in C's list.
        self.assertEqual(self.c.ok("type.get", {"type": t["uuid"]})["ident"],
                         "shared_gh")
        self.assertIn("shared_gh", [x["ident"] for x in
                                    self.c.ok("type.list", {})])
        # The ident is taken fleet-wide: C cannot create it again.
        err, _ = self.c.call("type.create", {"ident": "shared_gh",
                                             "name": "again",
                                             "storage": "db"})
        self.assertIsNotNone(err)
        self.assertEqual(err["code"], "conflict", err)

    def test_value_set_on_one_broker_is_substituted_by_another_unlogged(
            self):
        self.mktype(self.a, "tok")
        since = time.monotonic()
        for client, name in ((self.b, "B"), (self.c, "C")):
            self.within(since, lambda cl=client: self.type_on(cl, "tok"),
                        "type.get on " + name)
        u = new_user()
        v = self.canary("through-B")
        self.b.ok("cred.set", {"type": "tok", "user": u, "value": v})
        # No wait: values are read from the database on every call.
        err, res = self.sub(self.c, "tok", u)
        self.assertIsNone(err, err)
        self.assertEqual(bearer(res), v)
        self.assertEqual(res["used"], [{"id": "tok", "type": "tok",
                                        "source": "own"}])
        st = {e["ident"]: e for e in self.a.ok("cred.status", {"user": u})}
        self.assertTrue(st["tok"]["filled"], st)
        # Replaced through C: B substitutes the new value at once.
        v2 = self.canary("through-C")
        self.c.ok("cred.set", {"type": "tok", "user": u, "value": v2})
        err, res = self.sub(self.b, "tok", u)
        self.assertIsNone(err, err)
        self.assertEqual(bearer(res), v2)
        # Stopped cleanly, their logs complete: checked by
        # check_no_value_anywhere, with the database and the server's log.
        for d in self.daemons:
            d.stop()

    def test_value_deleted_on_one_broker_is_not_found_on_another_at_once(
            self):
        self.mktype(self.b, "gone")
        since = time.monotonic()
        for client, name in ((self.a, "A"), (self.c, "C")):
            self.within(since, lambda cl=client: self.type_on(cl, "gone"),
                        "type.get on " + name)
        u = new_user()
        v = self.canary("deleted")
        self.b.ok("cred.set", {"type": "gone", "user": u, "value": v})
        err, res = self.sub(self.a, "gone", u)
        self.assertIsNone(err, err)
        self.assertEqual(bearer(res), v)
        self.c.ok("cred.delete", {"type": "gone", "user": u})
        # The very next call on A.
        err, res = self.sub(self.a, "gone", u)
        self.assertIsNotNone(err, "A still substitutes a deleted value: %r"
                             % (res,))
        self.assertEqual(err["code"], "not_found", err)
        self.assertIn(u, err["message"])
        self.assertNotIn(v, err["message"])
        st = {e["ident"]: e for e in self.a.ok("cred.status", {"user": u})}
        self.assertFalse(st["gone"]["filled"], st)

    def test_type_edit_and_delete_on_one_broker_reach_another_within_1s(
            self):
        self.mktype(self.b, "edited")
        since = time.monotonic()
        self.within(since, lambda: self.type_on(self.a, "edited"),
                    "the new type on A")
        u = new_user()
        v = self.canary("edited")
        self.a.ok("cred.set", {"type": "edited", "user": u, "value": v})
        err, res = self.sub(self.a, "edited", u)
        self.assertIsNone(err, err)

        # An edit: new name, and destinations that exclude URL.
        self.b.ok("type.update", {"type": "edited", "name": "Renamed",
                                  "destinations": ["https://other.example"]})
        since = time.monotonic()
        t = self.within(
            since, lambda: (self.type_on(self.a, "edited") or {}).get(
                "name") == "Renamed" and self.type_on(self.a, "edited"),
            "the edit on A")
        self.assertEqual(t["destinations"], ["https://other.example"])
        err, res = self.sub(self.a, "edited", u)
        self.assertIsNotNone(err, "A ignores the new destinations: %r"
                             % (res,))
        self.assertEqual(err["code"], "forbidden", err)

        # A delete (the value first: a type with values is kept).
        self.b.ok("cred.delete", {"type": "edited", "user": u})
        self.b.ok("type.delete", {"type": "edited"})
        since = time.monotonic()
        self.within(since, lambda: self.type_on(self.a, "edited") is None,
                    "the delete on A")
        self.assertNotIn("edited", [x["ident"] for x in
                                    self.a.ok("type.list", {})])
        err, _ = self.sub(self.a, "edited", u)
        self.assertIsNotNone(err)
        self.assertEqual(err["code"], "not_found", err)

    def test_link_and_default_account_set_on_one_broker_used_by_another(
            self):
        self.mktype(self.a, "acct")
        since = time.monotonic()
        self.within(since, lambda: self.type_on(self.c, "acct"),
                    "the new type on C")
        linked, dflt = self.canary("linked"), self.canary("default")
        self.a.ok("cred.set", {"type": "acct", "account": "reader",
                               "value": linked})
        self.a.ok("cred.set", {"type": "acct", "account": "fallback",
                               "value": dflt})
        u, other = new_user(), new_user()
        err, _ = self.sub(self.c, "acct", u)
        self.assertEqual((err or {}).get("code"), "not_found", err)

        def value_on_c(user):
            e, r = self.sub(self.c, "acct", user)
            return None if e is not None else (bearer(r), r["used"][0])

        self.a.ok("cred.link", {"type": "acct", "user": u,
                                "account": "reader"})
        since = time.monotonic()
        got = self.within(since, lambda: value_on_c(u),
                          "the link on C's substitution")
        self.assertEqual(got, (linked, {"id": "tok", "type": "acct",
                                        "source": "linked",
                                        "account": "reader"}))
        self.assertIsNone(value_on_c(other))

        self.a.ok("type.update", {"type": "acct",
                                  "default_account": "fallback"})
        since = time.monotonic()
        got = self.within(since, lambda: value_on_c(other),
                          "the default account on C's substitution")
        self.assertEqual(got, (dflt, {"id": "tok", "type": "acct",
                                      "source": "default",
                                      "account": "fallback"}))
        # The link still wins for u.
        self.assertEqual(value_on_c(u)[0], linked)

        # Unlinked through A: C falls back to the default.
        self.a.ok("cred.unlink", {"type": "acct", "user": u})
        since = time.monotonic()
        self.within(since, lambda: (value_on_c(u) or ("",))[0] == dflt,
                    "the unlink on C's substitution")

    def test_broker_with_another_master_key_refuses_to_start(self):
        self.mktype(self.a, "kept")
        d, _ = self.broker(key=cbtest.strong_key(), start=False)
        d.start(wait=False)
        rc = d.wait_exit(cbtest.START_TIMEOUT)
        self.assertIsNotNone(rc, "a broker with another key is running; "
                             "log:\n" + d.log())
        d.checked = True        # a failure exit is the point
        self.assertNotEqual(rc, 0, d.log())
        self.assertIn("master key does not match this store", d.log())
        # The fleet goes on, its data untouched.
        self.assertEqual(self.type_on(self.b, "kept")["ident"], "kept")
        self.mktype(self.b, "after")
        self.within(time.monotonic(),
                    lambda: self.type_on(self.a, "after"), "type on A")

    def test_broker_restarted_after_changes_serves_them_at_once(self):
        """Changes made while a broker was down are served as soon as it
        is back: its local copy of the metadata is not trusted over the
        database's."""
        self.mktype(self.a, "before")
        self.within(time.monotonic(),
                    lambda: self.type_on(self.c, "before"), "type on C")
        self.C.stop()
        self.a.ok("type.update", {"type": "before", "name": "Changed"})
        self.mktype(self.a, "during")
        self.a.ok("cred.set", {"type": "during", "account": "svc",
                               "value": self.canary("during")})
        self.a.ok("type.update", {"type": "during",
                                  "default_account": "svc"})
        self.C.start()
        c = self.C.client()
        self.addCleanup(c.close)
        # At once: no propagation delay to wait for at start-up.
        self.assertEqual(self.type_on(c, "before")["name"], "Changed")
        self.assertEqual(self.type_on(c, "during")["default_account"], "svc")
        err, res = self.sub(c, "during", new_user())
        self.assertIsNone(err, err)
        self.assertEqual(bearer(res), self.planted[-1].decode())

    def test_changes_propagate_again_after_the_server_restarts(self):
        """A lost connection answers unavailable and comes back by itself
        (SPEC 12), LISTEN included: a change made after the restart
        reaches the others within 1 s again."""
        self.mktype(self.a, "pre")
        since = time.monotonic()
        for client, name in ((self.b, "B"), (self.c, "C")):
            self.within(since, lambda cl=client: self.type_on(cl, "pre"),
                        "type.get on " + name)
        u = new_user()
        v = self.canary("restart")
        self.b.ok("cred.set", {"type": "pre", "user": u, "value": v})
        cbtest.pg_cluster().restart()

        def answers(client):
            err, res = self.sub(client, "pre", u)
            if err is not None:
                self.assertIn(err["code"], ("unavailable", "internal"), err)
                return False
            return bearer(res) == v
        for client in (self.a, self.b, self.c):
            cbtest.poll_until(lambda cl=client: answers(cl), POLL_DEADLINE,
                              0.05, "a broker back after the restart")
        for d in self.daemons:
            self.assertTrue(d.alive(), d.log())
        self.mktype(self.a, "post")
        since = time.monotonic()
        for client, name in ((self.b, "B"), (self.c, "C")):
            self.within(since, lambda cl=client: self.type_on(cl, "post"),
                        "a type created after the restart, on " + name)
        self.c.ok("cred.delete", {"type": "pre", "user": u})
        err, _ = self.sub(self.a, "pre", u)
        self.assertEqual((err or {}).get("code"), "not_found", err)

    def test_key_rotate_without_the_key_on_every_broker_changes_nothing(
            self):
        """key.rotate is refused while B and C do not hold the new key;
        every broker goes on with the key it has."""
        self.mktype(self.a, "rot")
        u = new_user()
        v = self.canary("rotate")
        self.a.ok("cred.set", {"type": "rot", "user": u, "value": v})
        before = self.A.store_rows("SELECT sealed FROM credvalues")
        new_path = os.path.join(self.A.dir, "new.key")
        cbtest.write_file(new_path, cbtest.strong_key() + "\n")
        err, res = self.a.call("key.rotate", {"new_key_file": new_path})
        self.assertIsNotNone(err, "key.rotate ran on PostgreSQL: %r"
                             % (res,))
        self.assertEqual(err["code"], "conflict", err)
        for d in (self.B, self.C):
            self.assertIn("pid %d" % d.pid, err["message"])
        self.assertEqual(self.A.store_rows("SELECT sealed FROM credvalues"),
                         before)
        for client in (self.a, self.b, self.c):
            err, res = self.sub(client, "rot", u)
            self.assertIsNone(err, err)
            self.assertEqual(bearer(res), v)


class TestFleetStart(FleetCase):

    def setUp(self):
        if not cbtest.have_binaries():
            self.skipTest("credbrokerd not built at %s" % cbtest.DAEMON)
        self.fleet_setup()

    def test_three_brokers_started_together_on_an_empty_database(self):
        ds = [self.broker(start=False)[0] for _ in range(3)]
        for d in ds:
            d.start(wait=False)
        clients = []
        for d in ds:
            d.wait_ready()
            c = d.client()
            self.addCleanup(c.close)
            clients.append(c)
        self.mktype(clients[2], "first")
        since = time.monotonic()
        for i, c in enumerate(clients[:2]):
            self.within(since, lambda cl=c: self.type_on(cl, "first"),
                        "type.get on broker %d" % i)
        u = new_user()
        v = self.canary("together")
        clients[0].ok("cred.set", {"type": "first", "user": u, "value": v})
        err, res = self.sub(clients[1], "first", u)
        self.assertIsNone(err, err)
        self.assertEqual(bearer(res), v)


if __name__ == "__main__":
    cbtest.main()

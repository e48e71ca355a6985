#!/usr/bin/python3
"""
cred.status and the type cache at 50,000 types.

The types (and one user's values) are written straight into the SQLite
file (or the PostgreSQL database) between two runs of the daemon, in one
transaction, instead of
through 50,000 fsync'd type.create calls.  Every tenth type is stored in
Vault (not configured here), and the user has a db row for three types in
four, also for vault-stored ones (rows an older release left behind,
which must not count).

 - cred.status lists every type in ident order with the right filled
   flags, and costs about what type.list costs: both walk the 50,000
   types once (the answer used to take a pass over the user's values for
   every type, about fifty times type.list's time).  The two are timed
   against each other in the same daemon, the best of three each, so the
   comparison holds on a slow or busy machine, where a fixed number of
   seconds would not.
 - type.create, type.update and type.delete among them keep the other
   calls prompt and the listing right.
"""

import os
import sqlite3
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user  # noqa: E402

NTYPES = 50000
# cred.status may cost this many times type.list (plus a little): the
# linear merge costs about 1 to 2 times; the old pass per type about 50.
STATUS_PER_LIST = 6
STATUS_SLACK_SECONDS = 0.5


def big_uuid(i):
    return "%08x-0000-4000-8000-%012x" % ((i * 2654435761) & 0xffffffff, i)


def is_vault(i):
    return i % 10 == 9


def has_row(i):
    return i % 4 != 3


def filled_expected(i):
    return has_row(i) and not is_vault(i)


class TypeScaleTests(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        self.user = new_user()
        self.d.stop()
        if self.d.backend == "postgresql":
            self.fill_postgresql()
        else:
            self.fill_sqlite()
        self.d.start()
        self.c.close()
        self.c = self.d.client(timeout=120 * cbtest.SCALE)

    def fill_postgresql(self):
        """The same rows as fill_sqlite, made by the server."""
        uuid = ("(lpad(to_hex((i::bigint * 2654435761) & 4294967295), 8, "
                "'0') || '-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))"
                "::uuid")
        self.d.pg_sql(
            "INSERT INTO types (uuid, ident, name, storage, created_at, "
            "updated_at) SELECT %s, 't' || lpad(i::text, 5, '0'), "
            "'Type ' || i, CASE WHEN i %% 10 = 9 THEN 'vault' ELSE 'db' "
            "END, 1, 1 FROM generate_series(0, %d) i" % (uuid, NTYPES - 1))
        self.d.pg_sql(
            "INSERT INTO credvalues (type_uuid, user_uuid, sealed, "
            "updated_at) SELECT %s, '%s', 'CB1:1:AAAA', 1700000000 + i "
            "FROM generate_series(0, %d) i WHERE i %% 4 <> 3"
            % (uuid, self.user, NTYPES - 1))
        self.assertEqual(self.d.store_rows(
            "SELECT uuid FROM types WHERE ident = 't12345'"),
            [(big_uuid(12345),)])

    def fill_sqlite(self):
        con = sqlite3.connect(self.d.database)
        try:
            with con:
                con.executemany(
                    "INSERT INTO types (uuid, ident, name, storage, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, 1, 1)",
                    ((big_uuid(i), "t%05d" % i, "Type %d" % i,
                      "vault" if is_vault(i) else "db")
                     for i in range(NTYPES)))
                con.executemany(
                    "INSERT INTO credvalues (type_uuid, user_uuid, sealed, "
                    "updated_at) VALUES (?, ?, 'CB1:1:AAAA', ?)",
                    ((self.d.value_id(big_uuid(i)),
                      self.d.value_id(self.user), 1700000000 + i)
                     for i in range(NTYPES) if has_row(i)))
        finally:
            con.close()

    def timed(self, method, params, times=3):
        """The answer of method and the shortest of times calls."""
        best = None
        for _ in range(times):
            t0 = time.monotonic()
            res = self.c.ok(method, params)
            secs = time.monotonic() - t0
            best = secs if best is None else min(best, secs)
        return res, best

    def status(self, user):
        return self.timed("cred.status", {"user": user})

    def assert_linear(self, status_secs):
        """cred.status costs about what a pass over the types costs."""
        _, list_secs = self.timed("type.list", {})
        sys.stderr.write("[cred.status %.3f s, type.list %.3f s] "
                         % (status_secs, list_secs))
        self.assertLess(status_secs,
                        STATUS_PER_LIST * list_secs + STATUS_SLACK_SECONDS,
                        "cred.status took %.2f s, type.list %.2f s: more "
                        "than one pass over the types" %
                        (status_secs, list_secs))

    def test_cred_status_at_50k_types_is_complete_and_prompt(self):
        self.c.ok("type.get", {"type": "t00000"})     # cache loaded
        res, secs = self.status(self.user)
        self.assertEqual(len(res), NTYPES)
        for i, e in enumerate(res):
            self.assertEqual(e["ident"], "t%05d" % i)
            self.assertEqual(e["type"], big_uuid(i))
            self.assertIs(e["filled"], filled_expected(i), e)
            if e["storage"] == "vault":
                self.assertEqual(e["error"]["code"], "not_configured", e)
        self.assert_linear(secs)
        res, secs = self.status(new_user())
        self.assertEqual(len(res), NTYPES)
        self.assertFalse(any(e["filled"] for e in res))
        self.assert_linear(secs)

    def test_type_writes_at_50k_types(self):
        self.c.ok("type.get", {"type": "t00000"})
        for i in range(5):
            self.c.ok("type.create", {"ident": "a%d" % i, "name": "x"})
            self.c.ok("type.update", {"type": "t%05d" % (i * 7),
                                      "name": "renamed"})
            self.c.ok("type.delete", {"type": "t%05d" % (i * 7 + 1),
                                      "force": True})
        res, secs = self.status(self.user)
        self.assert_linear(secs)
        self.assertEqual(len(res), NTYPES)
        self.assertEqual([e["ident"] for e in res[:5]],
                         ["a%d" % i for i in range(5)])
        byident = {e["ident"]: e for e in res}
        for i in range(5):
            self.assertEqual(byident["t%05d" % (i * 7)]["name"], "renamed")
            self.assertNotIn("t%05d" % (i * 7 + 1), byident)
            self.assertIs(byident["a%d" % i]["filled"], False)


if __name__ == "__main__":
    cbtest.main()

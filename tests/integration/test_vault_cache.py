#!/usr/bin/python3
"""
The read cache of vault-stored values (vault.set cache_seconds), through the
real daemon against the Vault simulator, counting the KV reads that reach
the simulator (its kv_reads counter):

 - cache_seconds: 0 by default, reported by vault.get, persisted, checked
   (0 to 3600, an integer);
 - off: every substitute of a vault-stored value reads Vault once;
 - on: repeated substitutes read once; "not set" is cached too;
 - the broker's own changes show at once: cred.set, cred.delete and
   type.clear drop what they touch, vault.set drops everything, and a key
   rotation re-seals what Vault holds, not what the cache kept;
 - a change made in Vault behind the broker's back shows once the entry
   has expired (that wait is the behaviour under test, hence the sleeps);
 - the cache holds sealed text only: nothing planted leaks (VaultCase
   checks the simulator and the daemon's stderr after every test).

No wall-clock performance is asserted here.
"""

import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user  # noqa: E402
from vaulttest import VaultCase, MOUNT, data_path, canary  # noqa: E402

TTL = 2         # cache_seconds of the tests that turn the cache on


class CacheTests(VaultCase):

    # -- helpers -----------------------------------------------------------
    def reads(self):
        return self.sim.counters()["kv_reads"]

    def sealed_of(self, type_uuid, user):
        """The sealed text of the current version at the simulator."""
        s = self.sim.secrets()[data_path(type_uuid, user)]
        return s["versions"][str(s["current_version"])]["data"]["value"]

    def plant_directly(self, type_uuid, user, sealed):
        """A new version written straight into the simulator, as another
        broker sharing the path would."""
        self.sim.admin("POST", "secrets", {
            "mount": MOUNT, "path": data_path(type_uuid, user),
            "data": {"value": sealed}})

    def assertReads(self, before, n, what):
        self.assertEqual(self.reads() - before, n,
                         "%s: %d Vault read(s) expected" % (what, n))

    # -- settings ----------------------------------------------------------
    def test_setting_default_persisted_and_checked(self):
        self.configure()
        self.assertEqual(self.c.ok("vault.get", {})["cache_seconds"], 0)
        self.configure(cache_seconds=30)
        self.assertEqual(self.c.ok("vault.get", {})["cache_seconds"], 30)
        # Absent: the stored value is kept, as for timeout_ms.
        self.configure(cache_seconds=None, timeout_ms=4000)
        g = self.c.ok("vault.get", {})
        self.assertEqual((g["cache_seconds"], g["timeout_ms"]), (30, 4000))
        for bad in (-1, 3601, "2", 1.5, True):
            with self.subTest(bad=bad):
                self.assertError(self.c.call("vault.set", self.settings(
                    cache_seconds=bad)), "bad_request")
        self.configure(cache_seconds=3600)
        self.c.close()
        self.d.restart()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.assertEqual(self.c.ok("vault.get", {})["cache_seconds"], 3600)
        self.configure(cache_seconds=0)
        self.assertEqual(self.c.ok("vault.get", {})["cache_seconds"], 0)

    # -- off -----------------------------------------------------------------
    def test_off_every_substitute_reads_vault(self):
        self.configure()
        self.mktype("nocache")
        u = new_user()
        v = canary()
        self.set_value("nocache", u, v)
        before = self.reads()
        for _ in range(4):
            self.assertEqual(self.sub_ok("nocache", u), v)
        self.assertReads(before, 4, "four substitutes without a cache")

    # -- on ------------------------------------------------------------------
    def test_on_reads_once_and_own_write_shows_at_once(self):
        self.configure(cache_seconds=TTL)
        t = self.mktype("cached")["uuid"]
        u = new_user()
        v1 = canary()
        self.set_value("cached", u, v1)
        s1 = self.sealed_of(t, u)

        before = self.reads()
        for _ in range(5):
            self.assertEqual(self.sub_ok("cached", u), v1)
        self.assertReads(before, 1, "five substitutes with the cache on")
        # cred.status reads the same path: answered from the cache too.
        self.assertIs(self.status_of(u)["cached"]["filled"], True)
        self.assertReads(before, 1, "cred.status after the substitutes")

        # A cred.set through this broker shows at the next substitute.
        v2 = canary()
        self.set_value("cached", u, v2)
        before = self.reads()
        t_cached = time.monotonic()
        self.assertEqual(self.sub_ok("cached", u), v2)
        self.assertEqual(self.sub_ok("cached", u), v2)
        self.assertReads(before, 1, "substitutes after cred.set")

        # Changed in Vault behind the broker's back (another broker): the
        # cached sealed text answers until it expires, then the new one.
        self.plant_directly(t, u, s1)
        got = self.sub_ok("cached", u)
        if time.monotonic() - t_cached < TTL - 0.5:
            self.assertEqual(got, v2, "changed in Vault: still the cached "
                             "value within cache_seconds")
            self.assertReads(before, 1, "a substitute within the TTL")
        left = t_cached + TTL + 0.3 - time.monotonic()
        if left > 0:
            time.sleep(left)
        # The entry was made when the read answered, a little after
        # t_cached: allow for that on a slow machine.
        before = self.reads()
        cbtest.poll_until(lambda: self.sub_ok("cached", u) == v1, TTL + 3,
                          what="the value changed in Vault, once the cached "
                          "one has expired")
        self.assertGreaterEqual(self.reads() - before, 1)
        before = self.reads()
        self.assertEqual(self.sub_ok("cached", u), v1)
        self.assertReads(before, 0, "cached again after the new read")

    def test_not_set_is_cached_and_set_shows_at_once(self):
        self.configure(cache_seconds=TTL)
        self.mktype("empty")
        u = new_user()
        before = self.reads()
        for _ in range(3):
            err, _ = self.sub("empty", u)
            self.assertEqual(err["code"], "not_found", err)
        self.assertReads(before, 1, "three substitutes of a value not set")
        v = canary()
        self.set_value("empty", u, v)
        self.assertEqual(self.sub_ok("empty", u), v)

    def test_delete_and_clear_show_at_once(self):
        self.configure(cache_seconds=TTL)
        self.mktype("gone")
        u1, u2, u3 = new_user(), new_user(), new_user()
        vals = {u: canary() for u in (u1, u2, u3)}
        for u, v in vals.items():
            self.set_value("gone", u, v)
        for u, v in vals.items():
            self.assertEqual(self.sub_ok("gone", u), v)

        # cred.delete starts with a read (from the cache here: it must
        # still answer the call exactly once), then destroys.
        self.assertOk(self.c.call("cred.delete", {"type": "gone",
                                                  "user": u1}))
        err, _ = self.sub("gone", u1)
        self.assertEqual(err["code"], "not_found", err)
        self.assertIs(self.status_of(u1)["gone"]["filled"], False)
        self.assertError(self.c.call("cred.delete", {"type": "gone",
                                                     "user": u1}),
                         "not_found")

        # type.clear lists the type's folder and destroys every value.
        self.assertEqual(self.sub_ok("gone", u2), vals[u2])
        res = self.assertOk(self.c.call("type.clear", {"type": "gone"}))
        self.assertEqual(res, {"removed": 2})
        for u in (u2, u3):
            err, _ = self.sub("gone", u)
            self.assertEqual(err["code"], "not_found", err)
        v = canary()
        self.set_value("gone", u3, v)
        self.assertEqual(self.sub_ok("gone", u3), v)

    def test_settings_change_drops_everything(self):
        self.configure(cache_seconds=3600)
        t = self.mktype("conf")["uuid"]
        u = new_user()
        v1, v2 = canary(), canary()
        self.set_value("conf", u, v1)
        s1 = self.sealed_of(t, u)
        self.set_value("conf", u, v2)
        self.assertEqual(self.sub_ok("conf", u), v2)
        self.plant_directly(t, u, s1)
        before = self.reads()
        self.assertEqual(self.sub_ok("conf", u), v2)
        self.assertReads(before, 0, "a cached substitute")
        # Saving the same settings again is a settings change too.
        self.configure(cache_seconds=3600)
        self.assertEqual(self.sub_ok("conf", u), v1)
        self.assertReads(before, 1, "a substitute after vault.set")
        # Turned off: every substitute reads again.
        self.configure(cache_seconds=0)
        before = self.reads()
        self.assertEqual(self.sub_ok("conf", u), v1)
        self.assertEqual(self.sub_ok("conf", u), v1)
        self.assertReads(before, 2, "substitutes with the cache off again")

    def test_key_rotation_reads_vault_not_the_cache(self):
        """The rotation lists each vault type's folder, which drops what is
        cached under it: it re-seals what Vault holds, and afterwards the
        values open under the new key."""
        self.configure(cache_seconds=3600)
        t = self.mktype("rot")["uuid"]
        vals = {new_user(): canary() for _ in range(3)}
        for u, v in vals.items():
            self.set_value("rot", u, v)
            self.assertEqual(self.sub_ok("rot", u), v)
        before_sealed = {u: self.sealed_of(t, u) for u in vals}
        before = self.reads()
        path = os.path.join(self.d.dir, "new.key")
        cbtest.write_file(path, cbtest.strong_key() + "\n")
        self.c.ok("key.rotate", {"new_key_file": path})
        cbtest.poll_until(lambda: self.c.ok("key.status", {})["rotation"][
            "state"] == "done", 60, interval=0.05, what="rotation done")
        self.assertReads(before, len(vals), "the rotation's reads")
        for u, v in vals.items():
            self.assertNotEqual(self.sealed_of(t, u), before_sealed[u],
                                "not re-sealed in Vault")
            self.assertEqual(self.sub_ok("rot", u), v)

    def test_concurrent_substitutes_share_the_cache(self):
        self.configure(cache_seconds=TTL)
        self.mktype("many")
        users = [new_user() for _ in range(3)]
        vals = {u: canary() for u in users}
        for u, v in vals.items():
            self.set_value("many", u, v)
        before = self.reads()
        # Sent all at once, answered in any order: coalesced or cached,
        # one read per path.
        ids = {}
        for rnd in range(4):
            for u in users:
                ids[self.send(self.c, "substitute",
                              self.sub_params("many", u))] = u
        for i, u in ids.items():
            err, res = self.response(self.c, i)
            self.assertIsNone(err, err)
            self.assertEqual(self.sub_value(res), vals[u])
        self.assertReads(before, len(users), "twelve substitutes of "
                         "three values")


if __name__ == "__main__":
    cbtest.main()

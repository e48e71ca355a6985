#!/usr/bin/python3
"""
Changing a type's storage (SPEC 4.3) never brings an old value back.

 - db -> vault: the db values are deleted with the change (the answer's
   "removed" counts them); switching back to db finds nothing.
 - vault -> db: the values left in Vault belong to an earlier storage
   generation of the type; switching back to vault does not serve them,
   report them as filled, or let cred.delete find them, even when Vault
   was unreachable at the moment of the change.
 - Any number of switches: only a value set since the last change is
   ever served; cred.status and substitute agree at every step.
 - type.clear, with the type in Vault again, removes the stale secrets.
"""

import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
from cbtest import new_user  # noqa: E402
from vaulttest import VaultCase, canary, data_path  # noqa: E402


class StorageSwitchTests(VaultCase):

    def switch(self, ident, storage):
        u = self.c.ok("type.update", {"type": ident, "storage": storage})
        self.assertEqual(u["storage"], storage)
        self.assertIsInstance(u.get("notice"), str)
        return u

    def assertNotServed(self, ident, user):
        """Not filled in cred.status, not_found from substitute."""
        st = self.status_of(user)
        self.assertIs(st[ident]["filled"], False, st[ident])
        self.assertNotIn("error", st[ident])
        err, res = self.sub(ident, user)
        self.assertIsNotNone(err, "an old value was served: %r" % (res,))
        self.assertEqual(err["code"], "not_found", err)

    def assertServed(self, ident, user, value):
        st = self.status_of(user)
        self.assertIs(st[ident]["filled"], True, st[ident])
        self.assertEqual(self.sub_ok(ident, user), value)

    def test_db_vault_db_with_value_replaced_and_deleted_in_vault(self):
        self.configure()
        self.mktype("flip", storage="db")
        u, other = new_user(), new_user()
        old = canary()
        self.set_value("flip", u, old)
        self.set_value("flip", other, canary())
        self.assertServed("flip", u, old)

        to_vault = self.switch("flip", "vault")
        self.assertNotServed("flip", u)
        new = canary()
        self.set_value("flip", u, new)
        self.assertServed("flip", u, new)
        newer = canary()
        self.set_value("flip", u, newer)
        self.assertServed("flip", u, newer)
        self.c.ok("cred.delete", {"type": "flip", "user": u})
        self.assertNotServed("flip", u)

        to_db = self.switch("flip", "db")
        self.assertNotServed("flip", u)
        self.assertNotServed("flip", other)
        self.assertError(self.c.call("cred.delete", {"type": "flip",
                                                     "user": u}),
                         "not_found")
        # The answers counted the db values the changes deleted.
        self.assertEqual(to_vault.get("removed"), 2, to_vault)
        self.assertEqual(to_db.get("removed"), 0, to_db)

    def test_vault_db_vault_with_value_changed_or_deleted_in_db(self):
        self.configure()
        t = self.mktype("flop")
        u, w = new_user(), new_user()
        old_u, old_w = canary(), canary()
        self.set_value("flop", u, old_u)
        self.set_value("flop", w, old_w)
        self.assertServed("flop", u, old_u)

        to_db = self.switch("flop", "db")
        self.assertNotServed("flop", u)
        db_u = canary()
        self.set_value("flop", u, db_u)
        self.assertServed("flop", u, db_u)
        self.c.ok("cred.delete", {"type": "flop", "user": u})
        self.set_value("flop", w, canary())

        to_vault = self.switch("flop", "vault")
        # The old secrets are still in Vault: it is the type that no longer
        # serves them.
        dump = self.sim.secrets()
        self.assertIn(data_path(t["uuid"], u), dump)
        self.assertIn(data_path(t["uuid"], w), dump)
        self.assertNotServed("flop", u)
        self.assertNotServed("flop", w)
        self.assertError(self.c.call("cred.delete", {"type": "flop",
                                                     "user": u}),
                         "not_found")
        # A value set now is served, and replaces the stale secret.
        fresh = canary()
        self.set_value("flop", u, fresh)
        self.assertServed("flop", u, fresh)
        self.assertNotServed("flop", w)
        self.assertEqual(to_db.get("removed"), 0, to_db)
        self.assertEqual(to_vault.get("removed"), 1, to_vault)
        # type.clear removes the stale secret with the current one.
        res = self.c.ok("type.clear", {"type": "flop"})
        self.assertEqual(res["removed"], 2)
        self.assertNotIn(data_path(t["uuid"], w), self.sim.secrets())
        self.assertNotServed("flop", u)

    def test_vault_to_db_while_vault_down_then_back_to_vault(self):
        self.configure()
        self.mktype("away")
        u = new_user()
        old = canary()
        self.set_value("away", u, old)
        self.assertServed("away", u, old)

        self.sim.seal()
        self.addCleanup(self.sim.unseal)
        self.switch("away", "db")
        self.assertNotServed("away", u)
        self.sim.unseal()
        self.wait_authenticated()

        self.switch("away", "vault")
        self.assertNotServed("away", u)
        # Also after a restart: the generation is stored with the type.
        self.d.restart()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.wait_authenticated()
        self.assertNotServed("away", u)

    def test_repeated_switches_never_revive_an_older_value(self):
        self.configure()
        self.mktype("spin", storage="db")
        u = new_user()
        storage = "db"
        for i in range(6):
            value = canary()
            self.set_value("spin", u, value)
            self.assertServed("spin", u, value)
            storage = "vault" if storage == "db" else "db"
            self.switch("spin", storage)
            self.assertNotServed("spin", u)
        # Switching to the same storage again is no change and keeps the
        # value set since the last one.
        value = canary()
        self.set_value("spin", u, value)
        u2 = self.c.ok("type.update", {"type": "spin", "storage": storage})
        self.assertNotIn("notice", u2)
        self.assertNotIn("removed", u2)
        self.assertServed("spin", u, value)


    def test_key_rotation_skips_values_of_an_earlier_generation(self):
        self.configure()
        t = self.mktype("turn")
        stale_user, u = new_user(), new_user()
        self.set_value("turn", stale_user, canary())
        self.switch("turn", "db")
        self.switch("turn", "vault")
        self.assertNotServed("turn", stale_user)
        value = canary()
        self.set_value("turn", u, value)

        path = os.path.join(self.d.dir, "new.key")
        cbtest.write_file(path, (cbtest.strong_key() + "\n").encode())
        self.c.ok("key.rotate", {"new_key_file": path})
        cbtest.poll_until(
            lambda: self.c.ok("key.status", {})["rotation"]["state"] ==
            "done", 60 * cbtest.SCALE, what="key rotation done")
        st = self.c.ok("key.status", {})
        self.assertEqual(st["version"], 2, st)
        # The current value was re-sealed under the new key; the stale one
        # was left as it was, and is still not served.
        dump = self.sim.secrets()
        cur = dump[data_path(t["uuid"], u)]
        text = cur["versions"][str(cur["current_version"])]["data"]["value"]
        self.assertIn("CB1:2:", text)
        old = dump[data_path(t["uuid"], stale_user)]
        text = old["versions"][str(old["current_version"])]["data"]["value"]
        self.assertTrue(text.startswith("CB1:1:"), text)
        self.assertServed("turn", u, value)
        self.assertNotServed("turn", stale_user)


if __name__ == "__main__":
    cbtest.main()

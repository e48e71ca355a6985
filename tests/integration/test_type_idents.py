"""
Type idents and type uuids brought in from an existing platform (SPEC
section 11): the type ident grammar ([A-Za-z][A-Za-z0-9_.-]{0,63},
case-sensitive, never a uuid) at its edges, type.create keeping a given
uuid (conflict when it exists, bad_request when malformed), credctl type
add --uuid, and Vault values found under a kept uuid by a second broker.
Key pair idents and account names keep [a-z][a-z0-9_]{0,63}.
"""

import json
import os
import sys
import unittest
import uuid

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402
import vaulttest  # noqa: E402
from cbtest import new_user  # noqa: E402

URL = "https://api.example.com/v1/things"

# Accepted type idents, each at an edge of the grammar.
GOOD_IDENTS = [
    "a", "Z", "GitHub", "github", "gitlab-token", "corp.jira.api_key",
    "a-", "a.", "a_", "a9", "a..b", "A.-_9",
    "q" * 64, "Q" + "-" * 62 + ".",
    # Upper case is not a uuid, so this is an ident.
    "ABCDEFAB-CDEF-ABCD-EFAB-CDEFABCDEFAB",
]
# Refused type idents.
BAD_IDENTS = [
    "", "q" * 65, "1abc", "_abc", "-abc", ".abc", "..", ".", "@a", "[a",
    "`a", "{a", "a b", "a/b", "a/../b", "../etc", "a\\b", "a:b", "a@b",
    "a+b", "a\u00e9", "caf\u00e9", "a\n", "a\t", "\u0430bc",
    # A uuid: a type reference must be a uuid or an ident, never both.
    "deadbeef-0000-4000-8000-000000000000",
    "abcdefab-cdef-abcd-efab-cdefabcdefab",
]
# Malformed type uuids.
BAD_UUIDS = [
    "", "not-a-uuid",
    "0F8FAD5B-D9CB-469F-A165-70867728950E",     # upper case
    "0f8fad5b-d9cb-469f-a165-70867728950E",     # one upper-case digit
    "{0f8fad5b-d9cb-469f-a165-70867728950e}",   # braces
    "0f8fad5bd9cb469fa16570867728950e",         # no dashes
    "0f8fad5b-d9cb-469f-a165-70867728950",      # 35 characters
    "0f8fad5b-d9cb-469f-a165-70867728950e0",    # 37 characters
    "0f8fad5b-d9cb-469f-a165-70867728950e ",    # trailing space
    "0f8fad5g-d9cb-469f-a165-70867728950e",     # not hex
    "0f8fad5b-d9cb4-69f-a165-70867728950e",     # groups misplaced
    "../../../../../../../../../etc/passwd0",
]


def sub_params(type_ref, user, cid="tok"):
    return {"component": {"kind": "action", "initiator": user,
                          "credentials": [{"id": cid, "type": type_ref}]},
            "request": {"method": "GET", "url": URL,
                        "headers": [["Authorization",
                                     "Bearer <<.credentials.%s>>" % cid]]}}


def sub_value(res):
    hdr = res["request"]["headers"][0]
    assert hdr[1].startswith("Bearer "), hdr
    return hdr[1][len("Bearer "):]


class TypeIdentTest(cbtest.DaemonTestCase):

    def create(self, ident, **kw):
        p = {"ident": ident, "name": "Type " + ident, "storage": "db"}
        p.update(kw)
        return self.c.call("type.create", p)

    def idents(self):
        return sorted(t["ident"] for t in self.c.ok("type.list", {}))

    def test_type_ident_grammar_edges(self):
        for ident in GOOD_IDENTS:
            t = self.assertOk(self.create(ident))
            self.assertEqual(t["ident"], ident)
        for ident in BAD_IDENTS:
            err = self.assertError(self.create(ident), "bad_request",
                                   "ident %r accepted" % ident)
            self.assertIn("[A-Za-z][A-Za-z0-9_.-]{0,63}", err["message"])
        self.assertEqual(self.idents(), sorted(GOOD_IDENTS))
        for ident in GOOD_IDENTS:
            self.assertEqual(self.c.ok("type.get", {"type": ident})
                             ["ident"], ident)

    def test_type_idents_are_matched_case_sensitively(self):
        low = self.assertOk(self.create("github"))
        self.assertError(self.c.call("type.get", {"type": "GitHub"}),
                         "not_found")
        up = self.assertOk(self.create("GitHub"))
        self.assertNotEqual(low["uuid"], up["uuid"])
        self.assertError(self.create("github"), "conflict")
        self.assertError(self.c.call("type.get", {"type": "GITHUB"}),
                         "not_found")
        user = new_user()
        self.c.ok("cred.set", {"type": "GitHub", "user": user,
                               "value": "upper-value"})
        status = {e["ident"]: e for e in
                  self.c.ok("cred.status", {"user": user})}
        self.assertTrue(status["GitHub"]["filled"])
        self.assertFalse(status["github"]["filled"])
        res = self.c.ok("substitute", sub_params("GitHub", user))
        self.assertEqual(sub_value(res), "upper-value")
        self.assertError(self.c.call("substitute",
                                     sub_params("github", user)),
                         "not_found")

    def test_wide_type_ident_serves_values_and_is_audited(self):
        audit = os.path.join(self.tmp, "audit.log")
        self.c.close()
        self.d.stop()
        self.d.args += ["-o", "audit.file=" + audit]
        self.d.start()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        ident = "corp.gitlab-token_v2"
        self.assertOk(self.create(ident))
        user = new_user()
        self.c.ok("cred.set", {"type": ident, "user": user,
                               "value": "dotted-value"})
        res = self.c.ok("substitute", sub_params(ident, user))
        self.assertEqual(sub_value(res), "dotted-value")
        status = {e["ident"]: e for e in
                  self.c.ok("cred.status", {"user": user})}
        self.assertTrue(status[ident]["filled"])
        with open(audit) as f:
            recs = [json.loads(x) for x in f.read().splitlines()]
        by_method = {}
        for r in recs:
            by_method.setdefault(r["method"], []).append(r)
        for m in ("type.create", "cred.set", "substitute"):
            self.assertIn(m, by_method, recs)
            self.assertEqual(by_method[m][-1]["types"], [ident],
                             by_method[m][-1])
            self.assertEqual(by_method[m][-1]["outcome"], "ok")
        self.assertEqual(by_method["substitute"][-1]["sources"],
                         [ident + "/own"])

    def test_type_create_keeps_a_given_uuid(self):
        u = str(uuid.uuid4())
        t = self.assertOk(self.create("kept", uuid=u))
        self.assertEqual(t["uuid"], u)
        self.assertEqual(self.c.ok("type.get", {"type": u})["ident"], "kept")
        self.assertEqual([x["uuid"] for x in self.c.ok("type.list", {})],
                         [u])
        # Version and variant bits are the platform's business.
        odd = "00000000-0000-0000-0000-000000000000"
        self.assertEqual(self.assertOk(self.create("zero", uuid=odd))
                         ["uuid"], odd)
        # Without a uuid one is made, and it is a fresh one.
        fresh = self.assertOk(self.create("fresh"))["uuid"]
        self.assertRegex(fresh, cbtest.UUID_RE)
        self.assertNotIn(fresh, (u, odd))
        # The kept uuid survives a restart.
        self.d.restart()
        self.c = self.d.client()
        self.addCleanup(self.c.close)
        self.assertEqual(self.c.ok("type.get", {"type": "kept"})["uuid"], u)

    def test_type_create_with_existing_uuid_is_conflict(self):
        u = str(uuid.uuid4())
        first = self.assertOk(self.create("first", uuid=u))
        err = self.assertError(self.create("second", uuid=u), "conflict")
        self.assertIn(u, err["message"])
        self.assertIn("uuid", err["message"])
        self.assertEqual(self.c.ok("type.list", {}), [first])
        self.assertError(self.c.call("type.get", {"type": "second"}),
                         "not_found")

    def test_type_create_with_malformed_uuid_is_bad_request(self):
        for bad in BAD_UUIDS:
            err = self.assertError(self.create("t", uuid=bad),
                                   "bad_request", "uuid %r accepted" % bad)
            self.assertIn("uuid", err["message"])
            self.assertIn("lower-case", err["message"])
        for bad in (123, True, ["x"], {"a": 1}, b"0" * 36):
            self.assertError(self.create("t", uuid=bad), "bad_request",
                             "uuid %r accepted" % (bad,))
        self.assertEqual(self.c.ok("type.list", {}), [])
        # nil is the same as no uuid.
        t = self.assertOk(self.create("t", uuid=None))
        self.assertRegex(t["uuid"], cbtest.UUID_RE)

    def test_account_names_keep_the_narrow_grammar(self):
        self.assertOk(self.create("Corp.Db-Login"))
        for name in ("a-b", "a.b", "Techno", "1st"):
            self.assertError(self.c.call("cred.set", {
                "type": "Corp.Db-Login", "account": name,
                "value": "v"}), "bad_request",
                "account %r accepted" % name)
        self.c.ok("cred.set", {"type": "Corp.Db-Login",
                               "account": "reader_1", "value": "v"})


class CredctlTypeUuidTest(cbtest.DaemonTestCase):

    def setUp(self):
        super().setUp()
        if not cbtest.have_credctl():
            self.skipTest("credctl not built at %s" % cbtest.CREDCTL)

    def ctl(self, *args):
        return cbtest.credctl(self.d.socket, *args, json=True)

    def test_credctl_type_add_uuid_keeps_it(self):
        u = str(uuid.uuid4())
        rc, out, err = self.ctl("type", "add", "Corp.gitlab-token",
                                "--name", "GitLab", "--storage", "vault",
                                "--uuid", u)
        self.assertEqual(rc, 0, out + err)
        self.assertEqual(json.loads(out)["uuid"], u)
        t = self.c.ok("type.get", {"type": u})
        self.assertEqual(t["ident"], "Corp.gitlab-token")
        self.assertEqual(t["storage"], "vault")

    def test_credctl_type_add_existing_uuid_is_refused(self):
        u = str(uuid.uuid4())
        rc, out, err = self.ctl("type", "add", "one", "--name", "One",
                                "--uuid", u)
        self.assertEqual(rc, 0, out + err)
        rc, out, err = self.ctl("type", "add", "two", "--name", "Two",
                                "--uuid", u)
        self.assertEqual(rc, 1, out + err)
        doc = json.loads(out)["error"]
        self.assertEqual(doc["code"], "conflict")
        self.assertIn(u, doc["message"])
        self.assertEqual([t["ident"] for t in self.c.ok("type.list", {})],
                         ["one"])

    def test_credctl_type_add_malformed_uuid_is_refused(self):
        u = str(uuid.uuid4()).upper()
        rc, out, err = self.ctl("type", "add", "one", "--name", "One",
                                "--uuid", u)
        self.assertEqual(rc, 1, out + err)
        doc = json.loads(out)["error"]
        self.assertEqual(doc["code"], "bad_request")
        self.assertIn("lower-case", doc["message"])
        self.assertEqual(self.c.ok("type.list", {}), [])

    def test_credctl_type_add_uuid_given_twice_is_a_usage_error(self):
        rc, out, err = self.ctl("type", "add", "one", "--name", "One",
                                "--uuid", str(uuid.uuid4()),
                                "--uuid", str(uuid.uuid4()))
        self.assertEqual(rc, 2, out + err)
        self.assertEqual(self.c.ok("type.list", {}), [])


class VaultKeptUuidTest(vaulttest.VaultCase):
    """Values in Vault live under the type's uuid: a broker that creates
    the type with the same uuid finds them where they are."""

    def second_broker(self):
        d = cbtest.Daemon(cbtest.make_tmpdir(), key=self.d.key)
        self.addCleanup(cbtest.remove_tmpdir, d.dir)
        self.addCleanup(d.cleanup)
        self.addCleanup(d.finish)
        d.start()
        c = d.client()
        self.addCleanup(c.close)
        self.configure(client=c)
        return d, c

    def test_vault_values_are_found_under_a_kept_type_uuid(self):
        self.configure()
        u = str(uuid.uuid4())
        ident = "corp.vault-token"
        self.c.ok("type.create", {"ident": ident, "name": "T",
                                  "storage": "vault", "uuid": u})
        users = [new_user() for _ in range(3)]
        for i, user in enumerate(users):
            self.set_value(ident, user, "kept-%d-%s" % (i, user))
        dump = self.sim.secrets()
        for user in users:
            self.assertIn(vaulttest.data_path(u, user), json.dumps(dump))

        _, c2 = self.second_broker()
        # Another uuid: the values are not there.
        other = c2.ok("type.create", {"ident": "elsewhere", "name": "E",
                                      "storage": "vault"})
        self.assertNotEqual(other["uuid"], u)
        self.assertError(c2.call("substitute",
                                 sub_params("elsewhere", users[0])),
                         "not_found")
        # The same uuid: every value is found.
        c2.ok("type.create", {"ident": ident, "name": "T",
                              "storage": "vault", "uuid": u})
        for i, user in enumerate(users):
            res = c2.ok("substitute", sub_params(ident, user))
            self.assertEqual(sub_value(res), "kept-%d-%s" % (i, user))


if __name__ == "__main__":
    cbtest.main()

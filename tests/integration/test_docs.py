"""
The manual pages against the code (SPEC section 8): the five pages are
clean under "mandoc -Tlint -W warning", and every name that is part of the
contract is documented where a reader looks for it:

  - every function that client/credbroker.h declares is in the NAME and
    SYNOPSIS of credbroker(3) and described in its DESCRIPTION, and the
    page documents no function the header lacks; the header names only
    documents that are installed (man pages), not files of the source tree;

  - every method of proto/methods.def has a subsection in METHODS of
    credbroker-protocol(7) that names its permission, says whether it is
    audited and whether its request or response carries secrets (the flags
    of methods.def), and no subsection documents a method that is gone;
  - every error code of proto/errors.def is an entry of ERROR CODES there,
    and every permission of proto/perms.def an entry of PERMISSIONS, and is
    named in credbroker.conf(5);
  - every key that daemon/conf.c accepts (its KEY("section", "key") lines)
    is an entry of the right "Section [name]" of credbroker.conf(5), no
    entry there documents a key the daemon refuses, and the example
    etc/credbroker.conf shows the key in the right section;
  - every command of credctl's command table (client/credctl.c) is an entry
    of COMMANDS in credctl(1), every long option of credctl and of
    credbrokerd is documented in its page, and every exit status of
    client/credctl.h is an entry of EXIT STATUS.

README.md's map names every source file of proto/, daemon/, storage/ and
client/, and every file that it or docs/architecture.md (the path of a
substitute call) names exists.

Only the sources are read; nothing needs to be built.  A missing mandoc is
a failure, not a skip: scripts/install-deps installs it.
"""

import os
import re
import shutil
import subprocess
import sys
import unittest

SOURCE_DIR = os.environ.get("CB_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
MAN = os.path.join(SOURCE_DIR, "man")
PAGES = ["credctl.1", "credbroker.3", "credbroker.conf.5",
         "credbroker-protocol.7", "credbrokerd.8"]


def read(*parts):
    with open(os.path.join(SOURCE_DIR, *parts), encoding="utf-8") as f:
        return f.read()


def strip_c_comments(text):
    return re.sub(r"/\*.*?\*/", "", text, flags=re.S)


def methods():
    """[(name, perm_symbol, flags)] from proto/methods.def."""
    out = []
    for m in re.finditer(r'^CB_METHODDEF\(\s*\w+\s*,\s*"([^"]+)"\s*,'
                         r'\s*(\w+)\s*,\s*([^)]*)\)',
                         strip_c_comments(read("proto", "methods.def")),
                         re.M):
        out.append((m.group(1), m.group(2), m.group(3)))
    return out


def perms():
    """{symbol: name} from proto/perms.def."""
    return dict(re.findall(r'^CB_PERMDEF\(\s*(\w+)\s*,\s*"([^"]+)"\s*\)',
                           strip_c_comments(read("proto", "perms.def")),
                           re.M))


def errors():
    return re.findall(r'^CB_ERRDEF\(\s*\w+\s*,\s*"([^"]+)"\s*\)',
                      strip_c_comments(read("proto", "errors.def")), re.M)


def conf_keys():
    """[(section, key)] accepted by daemon/conf.c."""
    return re.findall(r'KEY\(\s*"([a-z_]+)"\s*,\s*"([a-z_]+)"\s*\)',
                      strip_c_comments(read("daemon", "conf.c")))


def credctl_commands():
    """Names in credctl's command table (the .name of each entry)."""
    src = strip_c_comments(read("client", "credctl.c"))
    m = re.search(r"credctl_cmds\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
    assert m, "credctl_cmds[] not found in client/credctl.c"
    return re.findall(r'\.name\s*=\s*"([^"]+)"', m.group(1))


def long_options(*files):
    """Long option names of every struct option initialiser in files."""
    names = set()
    for f in files:
        src = strip_c_comments(read(*f))
        names.update(re.findall(
            r'\{\s*"([a-z][a-z0-9-]*)"\s*,\s*(?:no|required|optional)'
            r'_argument', src))
    return names


def credctl_exit_codes():
    return sorted(set(int(v) for v in re.findall(
        r"#define\s+CREDCTL_EXIT_\w+\s+(\d+)",
        read("client", "credctl.h"))))


class Page:
    """An mdoc page split by .Sh and .Ss: sections[Sh] is the list of its
    lines, subsections[(Sh, Ss)] likewise."""

    def __init__(self, name):
        self.name = name
        self.text = read("man", name)
        self.sections = {}
        self.subsections = {}
        sh = ss = None
        for line in self.text.splitlines():
            if line.startswith(".Sh "):
                sh, ss = line[4:].strip(), None
                self.sections.setdefault(sh, [])
                continue
            if line.startswith(".Ss "):
                ss = line[4:].strip()
                self.subsections.setdefault((sh, ss), [])
            if sh is not None:
                self.sections[sh].append(line)
            if ss is not None:
                self.subsections[(sh, ss)].append(line)

    def section(self, sh):
        assert sh in self.sections, "%s has no section %s" % (self.name, sh)
        return self.sections[sh]

    def subsection(self, sh, ss):
        assert (sh, ss) in self.subsections, \
            "%s has no subsection %r in %s" % (self.name, ss, sh)
        return self.subsections[(sh, ss)]

    def items(self, lines, macro):
        """Arguments of the ".It MACRO arg ..." lines (first word)."""
        out = []
        for line in lines:
            m = re.match(r"\.It %s (\S+)" % re.escape(macro), line)
            if m:
                out.append(m.group(1))
        return out


class LintTest(unittest.TestCase):

    def test_mandoc_lint_is_clean(self):
        mandoc = shutil.which("mandoc")
        self.assertIsNotNone(mandoc, "mandoc is missing: scripts/install-deps "
                             "installs it")
        for p in PAGES:
            self.assertTrue(os.path.isfile(os.path.join(MAN, p)), p)
        r = subprocess.run([mandoc, "-Tlint", "-W", "warning"] +
                           [os.path.join(MAN, p) for p in PAGES],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(r.stdout.decode(), "")
        self.assertEqual(r.returncode, 0)

    def test_pages_are_installed(self):
        cm = read("CMakeLists.txt")
        for p in PAGES:
            self.assertRegex(cm, r"install\(FILES man/%s DESTINATION "
                             r"\$\{CMAKE_INSTALL_MANDIR\}/man%s\)"
                             % (re.escape(p), p[-1]))


def header_functions():
    """The functions client/credbroker.h declares."""
    return sorted(set(re.findall(r"\b(credbroker_\w+)\s*\(",
                                 strip_c_comments(read("client",
                                                       "credbroker.h")))))


class LibraryPageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.page = Page("credbroker.3")

    def test_every_function_of_the_header(self):
        funcs = header_functions()
        self.assertGreaterEqual(len(funcs), 10)
        names = [l[4:].split()[0] for l in self.page.section("NAME")
                 if l.startswith(".Nm ")]
        self.assertEqual(sorted(names), funcs)
        synopsis = re.findall(r"^\.F[no] (credbroker_\w+)",
                              "\n".join(self.page.section("SYNOPSIS")), re.M)
        self.assertEqual(sorted(synopsis), funcs)
        described = set(re.findall(r"^\.Fn (credbroker_\w+)",
                                   "\n".join(self.page.section(
                                       "DESCRIPTION")), re.M))
        self.assertEqual(sorted(described), funcs)

    def test_header_names_only_installed_documents(self):
        text = read("client", "credbroker.h")
        # Pages it refers to, as name(section), are installed pages.
        for name, sec in re.findall(r"\b([a-z][\w.-]*)\(([1-8])\)", text):
            self.assertIn("%s.%s" % (name, sec), PAGES)
        # No path of the source tree or its documents.
        self.assertEqual(re.findall(
            r"\b(?:client|daemon|proto|storage|docs|tests)/[\w./-]+|"
            r"\bSPEC\b|\w+\.md\b", text), [])


class ProtocolPageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.page = Page("credbroker-protocol.7")

    def test_every_method_is_documented_with_its_permission_and_flags(self):
        pm = perms()
        ms = methods()
        self.assertGreater(len(ms), 10)
        for name, perm, flags in ms:
            with self.subTest(method=name):
                body = "\n".join(self.page.subsection("METHODS", name))
                m = re.search(r"Permission:\s*(?:none\.|\n\.Li (\S+) \.)",
                              body)
                self.assertIsNotNone(m, "%s: no 'Permission:' line" % name)
                if perm == "CB_PERM_NONE":
                    self.assertIsNone(m.group(1), name)
                else:
                    self.assertEqual(m.group(1), pm[perm], name)
                self.assertEqual("CB_MF_AUDIT" in flags,
                                 "\nAudited.\n" in body + "\n",
                                 "%s: 'Audited.' must match CB_MF_AUDIT"
                                 % name)
                self.assertEqual("CB_MF_SECRET_IN" in flags,
                                 bool(re.search(r"The request (carries|may "
                                                r"carry) (a )?secrets?",
                                                body)),
                                 "%s: request secrets must match "
                                 "CB_MF_SECRET_IN" % name)
                self.assertEqual("CB_MF_SECRET_OUT" in flags,
                                 "The response carries secrets" in body,
                                 "%s: response secrets must match "
                                 "CB_MF_SECRET_OUT" % name)
                self.assertEqual("CB_MF_SECRET_KEY" in flags,
                                 "The call opens a private key" in body,
                                 "%s: private keys must match "
                                 "CB_MF_SECRET_KEY" % name)
                self.assertIn("Parameters", body, name)
                self.assertIn("Result", body, name)

    def test_no_stale_method(self):
        names = {m[0] for m in methods()}
        documented = {ss for (sh, ss) in self.page.subsections
                      if sh == "METHODS"}
        self.assertEqual(documented - names, set(),
                         "documented methods that methods.def lacks")

    def test_every_error_code(self):
        documented = self.page.items(self.page.section("ERROR CODES"), "Er")
        self.assertEqual(sorted(documented), sorted(errors()))

    def test_every_permission(self):
        documented = self.page.items(self.page.section("PERMISSIONS"), "Li")
        self.assertEqual(sorted(documented), sorted(perms().values()))

    def test_framing_and_rules_are_described(self):
        for sh in ("FRAMING", "LIMITS", "PERMISSIONS", "METHODS",
                   "SUBSTITUTION", "ERROR CODES"):
            self.page.section(sh)
        for ss in ("Subject", "Placeholders", "Destinations", "Dry runs"):
            self.page.subsection("SUBSTITUTION", ss)
        framing = "\n".join(self.page.section("FRAMING"))
        for needle in ("[0, Ar msgid , Ar method , Ar params ]",
                       "[1, Ar msgid , Ar error , Ar result ]",
                       "msgid 0", "32 levels"):
            self.assertIn(needle, framing)
        # Every filter of daemon/template.c.
        filters = re.findall(r'\{\s*"(\w+)",\s*TPL_F_\w+\s*\}',
                             read("daemon", "template.c"))
        self.assertGreaterEqual(len(filters), 4)
        ph = self.page.items(self.page.subsection("SUBSTITUTION",
                                                  "Placeholders"), "Li")
        self.assertEqual(sorted(ph), sorted(filters))


class ConfPageTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.page = Page("credbroker.conf.5")

    def documented(self):
        out = set()
        for (sh, ss), lines in self.page.subsections.items():
            m = re.match(r"Section \[(\w+)\]$", ss)
            if sh == "DESCRIPTION" and m:
                for k in self.page.items(lines, "Ic"):
                    out.add((m.group(1), k))
        return out

    def test_every_key_in_its_section(self):
        keys = conf_keys()
        self.assertGreater(len(keys), 10)
        missing = sorted(set(keys) - self.documented())
        self.assertEqual(missing, [], "keys of daemon/conf.c that "
                         "credbroker.conf(5) does not document")

    def test_key_table_matches_the_parser(self):
        # conf_keys[] (the section hint and the given-twice check) must
        # list exactly the keys conf_apply() parses.
        src = strip_c_comments(read("daemon", "conf.c"))
        m = re.search(r"conf_keys\[\]\s*=\s*\{(.*?)\n\};", src, re.S)
        self.assertIsNotNone(m, "conf_keys[] not found in daemon/conf.c")
        table = re.findall(r'\{\s*"([a-z_]+)"\s*,\s*"([a-z_]+)"\s*,',
                           m.group(1))
        self.assertEqual(len(table), len(set(table)), "a key listed twice")
        self.assertEqual(sorted(set(table)), sorted(set(conf_keys())))

    def test_no_stale_key(self):
        stale = sorted(self.documented() - set(conf_keys()))
        self.assertEqual(stale, [], "documented keys that daemon/conf.c "
                         "refuses")

    def test_every_key_has_a_default_or_says_none(self):
        for (sh, ss), lines in self.page.subsections.items():
            if not ss.startswith("Section ["):
                continue
            text = "\n".join(lines)
            for item in re.split(r"\n\.It Ic ", text)[1:]:
                key = item.split()[0]
                if key == "grant":
                    self.assertIn("nothing is granted by", item)
                    continue
                self.assertTrue("Default" in item or "No default" in item,
                                "%s: %s has no default" % (ss, key))

    def test_every_permission(self):
        for p in perms().values():
            self.assertIn(".Li %s" % p, self.page.text)

    def test_example_configuration_shows_every_key(self):
        # The inline master key is deliberately not offered as a setting.
        hidden = {("security", "secret_key")}
        section, shown = None, set()
        for line in read("etc", "credbroker.conf").splitlines():
            m = re.match(r"\[(\w+)\]$", line)
            if m:
                section = m.group(1)
                continue
            m = re.match(r"#?(\w+) = ", line)
            if m and section:
                shown.add((section, m.group(1)))
        self.assertEqual(sorted(set(conf_keys()) - hidden - shown), [])
        self.assertEqual(sorted(shown - set(conf_keys())), [])


class CommandPagesTest(unittest.TestCase):

    def test_every_credctl_command(self):
        page = Page("credctl.1")
        lines = page.section("COMMANDS")
        cmds = credctl_commands()
        self.assertIn("cred set", cmds)
        for c in cmds:
            words = c.split()
            pat = r"\.It Cm %s(\s|$)" % r"\s+".join(map(re.escape, words))
            self.assertTrue(any(re.match(pat, l) for l in lines),
                            "credctl(1) COMMANDS lacks '.It Cm %s'" % c)

    def test_every_credctl_option(self):
        text = read("man", "credctl.1")
        for o in sorted(long_options(("client", "credctl.c"))):
            self.assertTrue(re.search(r"Fl Fl %s\b" % re.escape(o), text),
                            "credctl(1) does not document --%s" % o)

    def test_every_credctl_exit_status(self):
        page = Page("credctl.1")
        codes = credctl_exit_codes()
        self.assertEqual(codes, list(range(len(codes))))
        self.assertEqual([int(x) for x in page.items(
            page.section("EXIT STATUS"), "")], [])
        documented = [int(m) for m in re.findall(
            r"^\.It (\d+)$", "\n".join(page.section("EXIT STATUS")), re.M)]
        self.assertEqual(documented, codes)

    def test_every_daemon_option(self):
        text = read("man", "credbrokerd.8")
        opts = long_options(("daemon", "main.c"))
        self.assertIn("config", opts)
        for o in sorted(opts):
            self.assertTrue(re.search(r"Fl Fl %s\b" % re.escape(o), text),
                            "credbrokerd(8) does not document --%s" % o)

    def test_daemon_page_covers_systemd(self):
        text = read("man", "credbrokerd.8")
        for needle in ("sd_listen_fds", "READY=1", "STATUS=", "STOPPING=1",
                       "WATCHDOG=1", "systemd-creds", "LoadCredentialEncrypted",
                       "master-key.cred"):
            self.assertIn(needle, text)


class MapTest(unittest.TestCase):
    """README.md's map and docs/architecture.md match the tree."""

    DIRS = ("proto", "daemon", "storage", "client")

    def sources(self):
        found = []
        for d in self.DIRS:
            for name in sorted(os.listdir(os.path.join(SOURCE_DIR, d))):
                if name.endswith(".c"):
                    found.append((d, name))
        return found

    def test_readme_names_every_module(self):
        readme = read("README.md")
        missing = [d + "/" + n for d, n in self.sources()
                   if not re.search(r"(?<![\w.-])" + re.escape(n) +
                                    r"(?![\w.-])", readme)
                   and n not in ("credctl-audit.c", "credctl-cred.c",
                                 "credctl-import.c",
                                 "credctl-key.c", "credctl-keypair.c",
                                 "credctl-server.c",
                                 "credctl-substitute.c", "credctl-type.c",
                                 "credctl-vault.c")]
        self.assertEqual(missing, [], "README.md's map does not name these")
        # credctl's command files are named together, as credctl-*.c.
        self.assertIn("credctl-*.c", readme)

    def test_named_files_exist(self):
        for doc in ("README.md", os.path.join("docs", "architecture.md")):
            text = read(doc)
            named = set(re.findall(
                r"\b((?:proto|daemon|storage|client)/[\w.-]+\.[ch])\b",
                text))
            self.assertTrue(named, doc)
            gone = sorted(p for p in named
                          if not os.path.exists(os.path.join(SOURCE_DIR, p)))
            self.assertEqual(gone, [], "%s names files that do not exist"
                             % doc)

    def test_architecture_follows_substitute_through_the_tree(self):
        text = read("docs", "architecture.md")
        for path in ("daemon/server.c", "daemon/conn.c", "daemon/rpc.c",
                     "daemon/rpc-substitute.c", "daemon/seal.c",
                     "storage/values.h"):
            self.assertIn(path, text)
        self.assertIn("seal_open()", text)


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    unittest.main(verbosity=2)

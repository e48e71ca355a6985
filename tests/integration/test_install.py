"""
Shipping on hosts (SPEC section 8): what "cmake --install" puts on a
machine, and whether systemd accepts it.

  - the installed tree, file by file, for "--prefix /usr" into a DESTDIR,
    with the paths in the units and in credbroker.pc following the prefix;
  - the installed credctl and credbroker-example-runner carry a RUNPATH
    relative to themselves ($ORIGIN/../LIBDIR): under a prefix of their
    own, and after that prefix is moved, they run without LD_LIBRARY_PATH;
  - a build configured with -DCMAKE_INSTALL_PREFIX=/usr puts the library,
    credbroker.pc and the CMake package in Debian's multiarch libdir
    (lib/x86_64-linux-gnu), and the RUNPATH follows;
  - the installed libcredbroker.a exports the functions of credbroker.h
    and nothing else, and a program linked with it (pkg-config --static)
    calls the daemon without libcredbroker.so;
  - the installed unit turns journald's rate limit off
    (LogRateLimitIntervalSec=0), so no audit line is dropped;
  - a second install keeps an administrator's credbroker.conf;
  - a program built with "pkg-config --cflags --libs credbroker" against
    the staged tree calls hello through credbroker_call() on a running
    daemon (the installed one), and so does the installed credctl;
  - so does a CMake project outside the tree that finds the staged library
    with find_package(credbroker) and links credbroker::credbroker;
  - the installed example configuration is accepted by the daemon;
  - systemd-analyze verify has nothing to say about the installed units,
    and systemd-analyze security rates the service at most 2.0;
  - the unit's system-call filter allows every system call the daemon makes
    (traced with strace while it serves calls of every family), and only
    UNIX, IPv4 and IPv6 sockets are opened.

How the units are verified.  "systemd-analyze verify" checks that ExecStart=
names an existing executable and that the Documentation= man pages exist,
and it needs the system's own units (sysinit.target, sockets.target, ...)
for the dependencies.  --root= would take those from the staged tree too,
where they are not, so the test installs a second time with the staging
directory itself as the prefix (the units then name the staged daemon) and
runs

  MANPATH=STAGE/share/man SYSTEMD_UNIT_PATH=STAGE/lib/systemd/system: \\
      systemd-analyze verify STAGE/lib/systemd/system/credbroker.service \\
      STAGE/lib/systemd/system/credbroker.socket

The trailing ':' of SYSTEMD_UNIT_PATH appends the system's unit directories.

Tools are required, not optional: a missing cmake, cc, pkg-config,
systemd-analyze (systemd), man (man-db) or strace fails the test;
scripts/install-deps installs them.
"""

import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time
import unittest

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

BUILD_DIR = os.path.abspath(cbtest.BUILD_DIR)
SOURCE_DIR = os.path.abspath(cbtest.SOURCE_DIR or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MAX_EXPOSURE = 2.0

HELLO_C = r"""
/* A runner's first call: built with pkg-config --cflags --libs credbroker. */
#include <stdio.h>
#include <string.h>

#include <credbroker.h>

int
main(int argc, char *argv[])
{
	struct credbroker	*c;
	struct credbroker_reply	*r;
	struct credbroker_error	 err;
	const msgpack_object	*res;
	uint32_t		 i;

	if (argc != 2)
		return 2;
	if (credbroker_connect(argv[1], &c, &err) != 0) {
		fprintf(stderr, "connect: %s: %s\n", err.code, err.message);
		return 3;
	}
	if (credbroker_call(c, "hello", NULL, 0, &r, &err) != 0) {
		fprintf(stderr, "hello: %s: %s\n", err.code, err.message);
		credbroker_close(c);
		return 1;
	}
	res = credbroker_reply_result(r);
	for (i = 0; res->type == MSGPACK_OBJECT_MAP && i < res->via.map.size;
	    i++) {
		const msgpack_object *k = &res->via.map.ptr[i].key;
		const msgpack_object *v = &res->via.map.ptr[i].val;

		if (k->type != MSGPACK_OBJECT_STR)
			continue;
		if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			printf("%.*s=%llu\n", (int)k->via.str.size,
			    k->via.str.ptr, (unsigned long long)v->via.u64);
		else if (v->type == MSGPACK_OBJECT_STR)
			printf("%.*s=%.*s\n", (int)k->via.str.size,
			    k->via.str.ptr, (int)v->via.str.size,
			    v->via.str.ptr);
	}
	credbroker_reply_free(r);
	credbroker_close(c);
	return 0;
}
"""


def tool(name):
    """Path of a required tool; a missing one fails the test."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError("%s is missing: scripts/install-deps installs "
                             "it" % name)
    return path


def cache():
    """The build's CMakeCache.txt as {name: value}."""
    out = {}
    with open(os.path.join(BUILD_DIR, "CMakeCache.txt")) as f:
        for line in f:
            m = re.match(r"([A-Za-z_0-9]+):[A-Z]+=(.*)$", line.rstrip("\n"))
            if m:
                out[m.group(1)] = m.group(2)
    return out


def project_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        m = re.search(r"project\(credbroker VERSION (\d+\.\d+\.\d+)", f.read())
    assert m, "no project version in CMakeLists.txt"
    return m.group(1)


class Layout:
    """Where things go for a prefix, as CMake and GNUInstallDirs decide."""

    def __init__(self, prefix):
        c = cache()
        self.prefix = prefix.rstrip("/") or "/"

        def d(name, default):
            v = c.get(name) or default
            return v if os.path.isabs(v) else os.path.join(self.prefix, v)

        self.bindir = d("CMAKE_INSTALL_BINDIR", "bin")
        self.sbindir = d("CMAKE_INSTALL_SBINDIR", "sbin")
        self.libdir = d("CMAKE_INSTALL_LIBDIR", "lib")
        self.includedir = d("CMAKE_INSTALL_INCLUDEDIR", "include")
        self.mandir = d("CMAKE_INSTALL_MANDIR", os.path.join(
            c.get("CMAKE_INSTALL_DATAROOTDIR") or "share", "man"))
        self.unitdir = d("CB_SYSTEMD_UNITDIR", "lib/systemd/system")
        self.sysusersdir = d("CB_SYSUSERSDIR", "lib/sysusers.d")
        self.tmpfilesdir = d("CB_TMPFILESDIR", "lib/tmpfiles.d")
        etc = c.get("CMAKE_INSTALL_SYSCONFDIR") or "etc"
        if os.path.isabs(etc):
            self.sysconfdir = etc
        elif self.prefix in ("/", "/usr"):
            self.sysconfdir = "/" + etc
        elif self.prefix.startswith("/opt/"):
            self.sysconfdir = "/" + etc + self.prefix
        else:
            self.sysconfdir = os.path.join(self.prefix, etc)
        self.confdir = os.path.join(self.sysconfdir, "credbroker")
        self.sanitized = c.get("CB_SANITIZE", "OFF").upper() in (
            "ON", "1", "TRUE", "YES")
        self.cc = c.get("CMAKE_C_COMPILER") or "cc"
        self.build_type = c.get("CMAKE_BUILD_TYPE") or ""
        self.cmakedir = os.path.join(self.libdir, "cmake", "credbroker")

    def files(self, version):
        """Every file and symlink installed, as absolute paths."""
        j = os.path.join
        so = j(self.libdir, "libcredbroker.so")
        return {
            j(self.sbindir, "credbrokerd"),
            j(self.bindir, "credctl"),
            j(self.bindir, "credbroker-example-runner"),
            so, so + ".0", so + "." + version,
            j(self.libdir, "libcredbroker.a"),
            j(self.includedir, "credbroker.h"),
            j(self.libdir, "pkgconfig", "credbroker.pc"),
            j(self.cmakedir, "credbrokerConfig.cmake"),
            j(self.cmakedir, "credbrokerConfigVersion.cmake"),
            j(self.cmakedir, "credbrokerTargets.cmake"),
            j(self.cmakedir, "credbrokerTargets-%s.cmake"
              % (self.build_type.lower() or "noconfig")),
            j(self.mandir, "man1", "credctl.1"),
            j(self.mandir, "man3", "credbroker.3"),
            j(self.mandir, "man5", "credbroker.conf.5"),
            j(self.mandir, "man7", "credbroker-protocol.7"),
            j(self.mandir, "man8", "credbrokerd.8"),
            j(self.unitdir, "credbroker.service"),
            j(self.unitdir, "credbroker.socket"),
            j(self.sysusersdir, "credbroker.conf"),
            j(self.tmpfilesdir, "credbroker.conf"),
            j(self.confdir, "credbroker.conf"),
        }


def install(prefix, destdir=None):
    """cmake --install BUILD --prefix PREFIX [with DESTDIR]; returns the
    output.  The build type is passed as --config, as multi-config
    generators need it."""
    cmd = [tool("cmake"), "--install", BUILD_DIR, "--prefix", prefix]
    bt = cache().get("CMAKE_BUILD_TYPE")
    if bt:
        cmd += ["--config", bt]
    env = dict(os.environ)
    env.pop("DESTDIR", None)
    if destdir is not None:
        env["DESTDIR"] = destdir
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env, timeout=300)
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s" % (" ".join(cmd),
                                                      r.returncode, out))
    return out


def daemon_env():
    """The environment without anything systemd would pass a service."""
    env = dict(os.environ)
    for k in ("CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "LISTEN_FDS",
              "LISTEN_PID", "LISTEN_FDNAMES", "WATCHDOG_USEC",
              "WATCHDOG_PID"):
        env.pop(k, None)
    return env


def staged(destdir, path):
    return os.path.join(destdir, path.lstrip("/"))


def tree(root):
    """Every file and symlink under root, as absolute paths inside it."""
    out = set()
    for d, dirs, files in os.walk(root):
        for n in files + [x for x in dirs
                          if os.path.islink(os.path.join(d, x))]:
            out.add("/" + os.path.relpath(os.path.join(d, n), root))
    return out


def unit_settings(path):
    """[(section, key, value)] of a unit file, in order."""
    out, section = [], None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            m = re.match(r"\[(\w+)\]$", line)
            if m:
                section = m.group(1)
                continue
            k, _, v = line.partition("=")
            out.append((section, k.strip(), v.strip()))
    return out


def runpath(path):
    """The DT_RUNPATH of an ELF file (None without one); an old-style
    DT_RPATH fails the test, as it would override LD_LIBRARY_PATH."""
    r = subprocess.run([tool("readelf"), "-d", path], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode()
    assert r.returncode == 0, out
    assert "(RPATH)" not in out, "%s has a DT_RPATH:\n%s" % (path, out)
    m = re.search(r"\(RUNPATH\)\s+Library runpath: \[(.*)\]", out)
    return m.group(1) if m else None


def header_functions():
    """The functions credbroker.h declares."""
    with open(os.path.join(SOURCE_DIR, "client", "credbroker.h")) as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    return set(re.findall(r"\b(credbroker_\w+)\s*\(", text))


def no_ld_library_path():
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    return env


def syscall_group(name):
    """The system calls of a systemd syscall group, expanded."""
    r = subprocess.run([tool("systemd-analyze"), "syscall-filter",
                        "--no-pager", name], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr.decode()
    out = set()
    for line in r.stdout.decode().splitlines()[1:]:
        t = line.strip()
        if not t or t.startswith("#"):
            continue
        out |= syscall_group(t) if t.startswith("@") else {t}
    return out


def allowed_syscalls(unit):
    """What the SystemCallFilter= lines of unit allow (an allow list)."""
    allowed = None
    for section, k, v in unit_settings(unit):
        if section != "Service" or k != "SystemCallFilter" or not v:
            continue
        deny = v.startswith("~")
        names = set()
        for item in v.lstrip("~").split():
            names |= syscall_group(item) if item.startswith("@") else {item}
        assert not (deny and allowed is None), \
            "the filter must start with an allow list"
        allowed = (allowed - names) if deny else (allowed or set()) | names
    assert allowed, "no SystemCallFilter= allow list in %s" % unit
    return allowed


class InstalledDaemon(cbtest.Daemon):
    """A cbtest.Daemon that runs a given (installed) binary."""

    def __init__(self, binary, wrapper=(), **kw):
        self.binary = binary
        self.wrapper = list(wrapper)
        super().__init__(**kw)

    def command(self, extra_args=()):
        return self.wrapper + [self.binary, "-f", "-c", self.config] + \
            self.args + list(extra_args)


class InstallTestCase(unittest.TestCase):

    def setUp(self):
        self.assertTrue(os.path.isfile(os.path.join(BUILD_DIR,
                                                    "CMakeCache.txt")),
                        "no build tree at %s" % BUILD_DIR)
        self.tmp = cbtest.make_tmpdir("cbinst")
        self.addCleanup(cbtest.remove_tmpdir, self.tmp)

    def destdir_install(self, name="stage"):
        dest = os.path.join(self.tmp, name)
        out = install("/usr", dest)
        return dest, Layout("/usr"), out


class TreeTest(InstallTestCase):

    def test_tree_holds_every_file_and_nothing_else(self):
        dest, lay, _ = self.destdir_install()
        version = project_version()
        expected = lay.files(version)
        self.assertEqual(sorted(tree(dest)), sorted(expected))

        def p(path):
            return staged(dest, path)

        j = os.path.join
        for x in (j(lay.sbindir, "credbrokerd"), j(lay.bindir, "credctl"),
                  j(lay.bindir, "credbroker-example-runner")):
            self.assertTrue(os.access(p(x), os.X_OK), x)
        so = j(lay.libdir, "libcredbroker.so")
        self.assertEqual(os.readlink(p(so)), "libcredbroker.so.0")
        self.assertEqual(os.readlink(p(so + ".0")),
                         "libcredbroker.so." + version)
        for x in expected:
            if not os.access(p(x), os.X_OK) and not os.path.islink(p(x)):
                mode = stat.S_IMODE(os.stat(p(x)).st_mode)
                self.assertEqual(mode & 0o022, 0, "%s is writable by "
                                 "others: %o" % (x, mode))
                self.assertTrue(mode & 0o004, "%s is not readable: %o"
                                % (x, mode))
        with open(p(j(lay.confdir, "credbroker.conf"))) as f, \
                open(os.path.join(SOURCE_DIR, "etc", "credbroker.conf")) as g:
            self.assertEqual(f.read(), g.read())
        if not os.path.isabs(cache().get("CMAKE_INSTALL_SYSCONFDIR", "etc")):
            # GNUInstallDirs: the prefix /usr keeps its configuration in /etc.
            self.assertEqual(lay.confdir, "/etc/credbroker")
        for page in ("man1/credctl.1", "man3/credbroker.3",
                     "man5/credbroker.conf.5",
                     "man7/credbroker-protocol.7", "man8/credbrokerd.8"):
            with open(p(j(lay.mandir, page))) as f, \
                    open(os.path.join(SOURCE_DIR, "man",
                                      os.path.basename(page))) as g:
                self.assertEqual(f.read(), g.read(), page)

    def test_units_name_the_installed_paths(self):
        dest, lay, _ = self.destdir_install()
        svc = unit_settings(staged(dest, os.path.join(
            lay.unitdir, "credbroker.service")))
        execs = [v for s, k, v in svc if k == "ExecStart"]
        self.assertEqual(execs, ["%s/credbrokerd --foreground --config "
                                 "%s/credbroker.conf" % (lay.sbindir,
                                                         lay.confdir)])
        creds = [v for s, k, v in svc if k == "LoadCredentialEncrypted"]
        self.assertEqual(creds, ["master-key:%s/master-key.cred"
                                 % lay.confdir])
        # A prefix of its own moves both.
        other = os.path.join(self.tmp, "opt")
        install(other)
        svc = unit_settings(os.path.join(other, "lib", "systemd", "system",
                                         "credbroker.service"))
        self.assertIn(("Service", "ExecStart", "%s/sbin/credbrokerd "
                       "--foreground --config %s/etc/credbroker/"
                       "credbroker.conf" % (other, other)), svc)
        self.assertTrue(os.path.isfile(os.path.join(
            other, "etc", "credbroker", "credbroker.conf")))

    def test_installed_unit_never_rate_limits_the_journal(self):
        dest, lay, _ = self.destdir_install()
        svc = unit_settings(staged(dest, os.path.join(
            lay.unitdir, "credbroker.service")))
        # Audit lines go to stderr, that is to the journal: the service
        # turns journald's per-unit rate limit off, once, and nothing
        # turns it on again.
        self.assertEqual([(s, v) for s, k, v in svc
                          if k == "LogRateLimitIntervalSec"],
                         [("Service", "0")])
        self.assertEqual([v for s, k, v in svc
                          if k == "LogRateLimitBurst"], [])
        self.assertEqual([v for s, k, v in svc
                          if k in ("StandardError", "StandardOutput")], [])

    def test_unit_settings(self):
        svc = unit_settings(os.path.join(SOURCE_DIR, "systemd",
                                         "credbroker.service.in"))
        have = {(k, v) for s, k, v in svc if s == "Service"}
        for kv in [("Type", "notify"), ("User", "credbroker"),
                   ("Group", "credbroker"),
                   ("StateDirectory", "credbroker"),
                   ("StateDirectoryMode", "0700"),
                   ("RuntimeDirectory", "credbroker"),
                   ("RuntimeDirectoryMode", "0750"),
                   ("RuntimeDirectoryPreserve", "yes"),
                   ("ExecReload", "/bin/kill -HUP $MAINPID"),
                   ("WatchdogSec", "30s"), ("CapabilityBoundingSet", ""),
                   ("AmbientCapabilities", ""), ("NoNewPrivileges", "yes"),
                   ("ProtectSystem", "strict"), ("PrivateUsers", "no"),
                   ("SystemCallArchitectures", "native"),
                   ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
                   ("IPAddressDeny", "any"), ("UMask", "0077"),
                   ("LimitCORE", "0"), ("LimitMEMLOCK", "64M")]:
            self.assertIn(kv, have)
        sock = unit_settings(os.path.join(SOURCE_DIR, "systemd",
                                          "credbroker.socket"))
        have = {(k, v) for s, k, v in sock if s == "Socket"}
        for kv in [("ListenStream", "/run/credbroker/credbroker.sock"),
                   ("SocketMode", "0660"), ("SocketUser", "credbroker"),
                   ("SocketGroup", "credbroker"), ("Accept", "no")]:
            self.assertIn(kv, have)
        with open(os.path.join(SOURCE_DIR, "systemd",
                               "credbroker.sysusers")) as f:
            self.assertRegex(f.read(), r"(?m)^u credbroker - ")
        with open(os.path.join(SOURCE_DIR, "systemd",
                               "credbroker.tmpfiles")) as f:
            self.assertRegex(f.read(), r"(?m)^d /run/credbroker 0750 "
                             r"credbroker credbroker -$")


class ConfigTest(InstallTestCase):

    def test_second_install_keeps_a_changed_configuration(self):
        dest, lay, _ = self.destdir_install()
        conf = staged(dest, os.path.join(lay.confdir, "credbroker.conf"))
        with open(conf, "a") as f:
            f.write("\n# changed by the administrator\n[log]\nlevel = debug\n")
        with open(conf) as f:
            mine = f.read()
        out = install("/usr", dest)
        with open(conf) as f:
            self.assertEqual(f.read(), mine)
        self.assertIn("Keeping: " + conf, out)
        # Everything else is installed again as usual.
        self.assertEqual(sorted(tree(dest)),
                         sorted(lay.files(project_version())))
        # A removed one comes back.
        os.unlink(conf)
        install("/usr", dest)
        with open(conf) as f, \
                open(os.path.join(SOURCE_DIR, "etc", "credbroker.conf")) as g:
            self.assertEqual(f.read(), g.read())

    def test_example_configuration_is_accepted(self):
        dest, lay, _ = self.destdir_install()
        key = os.path.join(self.tmp, "master.key")
        cbtest.write_file(key, cbtest.strong_key() + "\n")
        r = subprocess.run(
            [staged(dest, os.path.join(lay.sbindir, "credbrokerd")),
             "-c", staged(dest, os.path.join(lay.confdir,
                                             "credbroker.conf")),
             "-o", "security.secret_key_file=" + key,
             "-o", "storage.database=" + os.path.join(self.tmp, "cb.db"),
             "--check-config"], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, timeout=60, env=daemon_env())
        self.assertEqual(r.returncode, 0, r.stdout.decode())
        self.assertIn("configuration and master key OK", r.stdout.decode())


class PkgConfigTest(InstallTestCase):

    def test_program_built_with_pkg_config_calls_the_daemon(self):
        dest, lay, _ = self.destdir_install()
        pcdir = staged(dest, os.path.join(lay.libdir, "pkgconfig"))
        env = dict(os.environ, PKG_CONFIG_PATH=pcdir,
                   PKG_CONFIG_SYSROOT_DIR=dest)
        pc = tool("pkg-config")

        def pkgconf(*args):
            r = subprocess.run([pc] + list(args) + ["credbroker"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr.decode())
            return r.stdout.decode().strip()

        self.assertEqual(pkgconf("--modversion"), project_version())
        self.assertEqual(pkgconf("--print-requires").split()[0], "msgpack")
        self.assertEqual(pkgconf("--print-requires-private").split()[0],
                         "libcrypto")
        flags = pkgconf("--cflags", "--libs")
        self.assertIn("-I" + staged(dest, lay.includedir), flags.split())
        self.assertIn("-L" + staged(dest, lay.libdir), flags.split())
        self.assertIn("-lcredbroker", flags.split())

        src = os.path.join(self.tmp, "hello.c")
        exe = os.path.join(self.tmp, "hello")
        cbtest.write_file(src, HELLO_C, 0o644)
        cc = tool(lay.cc)
        cmd = [cc, "-std=c11", "-Wall", "-Werror", "-o", exe, src] + \
            shlex.split(flags)
        if lay.sanitized:
            cmd.insert(1, "-fsanitize=address,undefined")
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        self.assertEqual(r.returncode, 0, "%s\n%s" % (" ".join(cmd),
                                                      r.stdout.decode()))

        d = InstalledDaemon(staged(dest, os.path.join(lay.sbindir,
                                                      "credbrokerd")),
                            tmpdir=cbtest.make_tmpdir())
        self.addCleanup(cbtest.remove_tmpdir, d.dir)
        self.addCleanup(d.cleanup)
        d.start()
        runenv = dict(os.environ, LD_LIBRARY_PATH=staged(dest, lay.libdir))
        r = subprocess.run([exe, d.socket], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=runenv, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        lines = r.stdout.decode().splitlines()
        self.assertIn("protocol=1", lines)
        self.assertIn("server=credbroker " + project_version(), lines)
        self.assertIn("uid=%d" % os.getuid(), lines)
        # The installed credctl finds the installed library.
        r = subprocess.run([staged(dest, os.path.join(lay.bindir, "credctl")),
                            "-s", d.socket, "--json", "hello"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=runenv, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn('"protocol": 1', r.stdout.decode())
        d.stop()


class RunPathTest(InstallTestCase):

    def start_daemon(self, binary):
        d = InstalledDaemon(binary, tmpdir=cbtest.make_tmpdir())
        self.addCleanup(cbtest.remove_tmpdir, d.dir)
        self.addCleanup(d.cleanup)
        d.start()
        return d

    def check_programs(self, lay, sock):
        """credctl and the example runner of lay, without LD_LIBRARY_PATH,
        find the library of lay and talk to the daemon on sock."""
        env = no_ld_library_path()
        credctl = os.path.join(lay.bindir, "credctl")
        runner = os.path.join(lay.bindir, "credbroker-example-runner")
        r = subprocess.run(["ldd", credctl], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=60)
        m = re.search(r"libcredbroker\.so\.0 => (\S+)", r.stdout.decode())
        self.assertIsNotNone(m, r.stdout.decode())
        self.assertEqual(os.path.realpath(m.group(1)), os.path.realpath(
            os.path.join(lay.libdir, "libcredbroker.so.0")))
        r = subprocess.run([credctl, "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=60)
        self.assertEqual((r.returncode, r.stdout.decode()),
                         (0, "credctl %s (protocol 1)\n" % project_version()))
        r = subprocess.run([credctl, "-s", sock, "--json", "hello"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn('"protocol": 1', r.stdout.decode())
        # A status check without a system account is skipped by the
        # broker: a whole substitute round trip, and no HTTP request.
        r = subprocess.run([runner, "-s", sock, "--kind", "status_check",
                            "GET", "http://127.0.0.1:9/"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertTrue(r.stdout.decode().startswith("skipped: "),
                        r.stdout.decode())

    def test_installed_programs_find_the_library_under_any_prefix(self):
        prefix = os.path.join(self.tmp, "pfx")
        install(prefix)
        lay = Layout(prefix)
        rel = os.path.relpath(lay.libdir, lay.bindir)
        for prog in ("credctl", "credbroker-example-runner"):
            self.assertEqual(runpath(os.path.join(lay.bindir, prog)),
                             "$ORIGIN/" + rel, prog)
        d = self.start_daemon(os.path.join(lay.sbindir, "credbrokerd"))
        self.check_programs(lay, d.socket)
        # The run path is relative: the whole prefix may move.
        moved = os.path.join(self.tmp, "moved")
        os.rename(prefix, moved)
        self.check_programs(Layout(moved), d.socket)
        d.stop()


HELLO_LOCATION_CMAKE = """
cmake_minimum_required(VERSION 3.18)
project(hello LANGUAGES C)
find_package(credbroker REQUIRED)
get_target_property(loc credbroker::credbroker IMPORTED_LOCATION_%(config)s)
message(STATUS "credbroker library: ${loc}")
"""


class MultiarchTest(InstallTestCase):

    def test_usr_prefix_at_configure_time_uses_the_multiarch_libdir(self):
        cmake = tool("cmake")
        r = subprocess.run([tool("dpkg-architecture"),
                            "-qDEB_HOST_MULTIARCH"], stdout=subprocess.PIPE,
                           timeout=60)
        ma = r.stdout.decode().strip()
        self.assertRegex(ma, r"^[a-z0-9_]+-linux-gnu\w*$")
        c = cache()
        bt = c.get("CMAKE_BUILD_TYPE") or "RelWithDebInfo"
        bdir = os.path.join(self.tmp, "build")
        r = subprocess.run([cmake, "-S", SOURCE_DIR, "-B", bdir,
                            "-DCMAKE_INSTALL_PREFIX=/usr",
                            "-DCMAKE_BUILD_TYPE=" + bt,
                            "-DCMAKE_C_COMPILER=" + tool(c.get(
                                "CMAKE_C_COMPILER") or "cc"),
                            "-DCB_SANITIZE=" + c.get("CB_SANITIZE", "OFF"),
                            "-DCB_TESTS=OFF"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout.decode())
        with open(os.path.join(bdir, "CMakeCache.txt")) as f:
            self.assertEqual(re.findall(r"(?m)^CMAKE_INSTALL_LIBDIR:\w+=(.*)$",
                                        f.read()), ["lib/" + ma])
        # What client/ installs: the library, its files and the programs
        # that link it (the daemon is not needed for that).
        r = subprocess.run([cmake, "--build", bdir, "-j2", "--target",
                            "credbroker", "credbroker_archive", "credctl",
                            "credbroker-example-runner"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=600)
        self.assertEqual(r.returncode, 0, r.stdout.decode()[-3000:])
        stage = os.path.join(self.tmp, "stage")
        env = dict(os.environ, DESTDIR=stage)
        r = subprocess.run([cmake, "-DCMAKE_INSTALL_CONFIG_NAME=" + bt, "-P",
                            os.path.join(bdir, "client",
                                         "cmake_install.cmake")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout.decode())
        lib = "/usr/lib/" + ma
        so = lib + "/libcredbroker.so"
        version = project_version()
        cmk = lib + "/cmake/credbroker/"
        self.assertEqual(sorted(tree(stage)), sorted({
            "/usr/bin/credctl", "/usr/bin/credbroker-example-runner",
            so, so + ".0", so + "." + version, lib + "/libcredbroker.a",
            lib + "/pkgconfig/credbroker.pc",
            "/usr/include/credbroker.h",
            cmk + "credbrokerConfig.cmake",
            cmk + "credbrokerConfigVersion.cmake",
            cmk + "credbrokerTargets.cmake",
            cmk + "credbrokerTargets-%s.cmake" % bt.lower()}))
        self.assertEqual(runpath(staged(stage, "/usr/bin/credctl")),
                         "$ORIGIN/../lib/" + ma)
        # credbroker.pc names the multiarch libdir.
        penv = dict(os.environ, PKG_CONFIG_PATH=staged(
            stage, lib + "/pkgconfig"))
        penv.pop("PKG_CONFIG_SYSROOT_DIR", None)
        r = subprocess.run([tool("pkg-config"), "--variable=libdir",
                            "credbroker"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=penv, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertEqual(r.stdout.decode().strip(), lib)
        # find_package() finds the CMake package there, and its target
        # names the library there.
        proj = os.path.join(self.tmp, "hello")
        os.mkdir(proj)
        cbtest.write_file(os.path.join(proj, "CMakeLists.txt"),
                          HELLO_LOCATION_CMAKE % {"config": bt.upper()},
                          0o644)
        env = dict(os.environ)
        for k in ("PKG_CONFIG_PATH", "CMAKE_PREFIX_PATH", "credbroker_DIR"):
            env.pop(k, None)
        r = subprocess.run([cmake, "-S", proj, "-B",
                            os.path.join(self.tmp, "hello-build"),
                            "-DCMAKE_PREFIX_PATH=" + staged(stage, "/usr")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env, timeout=300)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out)
        self.assertIn("credbroker library: %s.%s\n" % (staged(stage, so),
                                                       version), out)


class StaticLibraryTest(InstallTestCase):

    def test_static_library_exports_only_the_api_and_runs_alone(self):
        dest, lay, _ = self.destdir_install()
        archive = staged(dest, os.path.join(lay.libdir, "libcredbroker.a"))
        r = subprocess.run([tool("nm"), "-g", "--defined-only", archive],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout.decode())
        exported = {l.split()[2] for l in r.stdout.decode().splitlines()
                    if len(l.split()) == 3}
        api = header_functions()
        self.assertGreaterEqual(len(api), 10)
        self.assertEqual(sorted(exported), sorted(api))

        env = dict(os.environ, PKG_CONFIG_PATH=staged(
            dest, os.path.join(lay.libdir, "pkgconfig")),
            PKG_CONFIG_SYSROOT_DIR=dest)
        r = subprocess.run([tool("pkg-config"), "--static", "--cflags",
                            "--libs", "credbroker"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        flags = shlex.split(r.stdout.decode())
        self.assertIn("-lcredbroker", flags)
        self.assertIn("-lcrypto", flags)
        # The archive by name, so that the linker cannot pick the .so.
        flags = [archive if f == "-lcredbroker" else f for f in flags]
        src = os.path.join(self.tmp, "hello.c")
        exe = os.path.join(self.tmp, "hello-static")
        cbtest.write_file(src, HELLO_C, 0o644)
        cmd = [tool(lay.cc), "-std=c11", "-Wall", "-Werror", "-o", exe,
               src] + flags
        if lay.sanitized:
            cmd.insert(1, "-fsanitize=address,undefined")
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        self.assertEqual(r.returncode, 0, "%s\n%s" % (" ".join(cmd),
                                                      r.stdout.decode()))
        env = no_ld_library_path()
        r = subprocess.run(["ldd", exe], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=60)
        self.assertNotIn("libcredbroker", r.stdout.decode())
        d = InstalledDaemon(staged(dest, os.path.join(lay.sbindir,
                                                      "credbrokerd")),
                            tmpdir=cbtest.make_tmpdir())
        self.addCleanup(cbtest.remove_tmpdir, d.dir)
        self.addCleanup(d.cleanup)
        d.start()
        r = subprocess.run([exe, d.socket], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=env, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        self.assertIn("protocol=1", r.stdout.decode().splitlines())
        d.stop()


HELLO_CMAKE = """
cmake_minimum_required(VERSION 3.18)
project(hello LANGUAGES C)
find_package(credbroker %(version)s EXACT REQUIRED)
get_target_property(type credbroker::credbroker TYPE)
message(STATUS "credbroker ${credbroker_VERSION} ${type} in ${credbroker_DIR}")
add_executable(hello hello.c)
target_link_libraries(hello PRIVATE credbroker::credbroker)
"""


class CMakePackageTest(InstallTestCase):

    def test_program_built_with_find_package_calls_the_daemon(self):
        cmake = tool("cmake")
        dest, lay, _ = self.destdir_install()
        version = project_version()
        proj = os.path.join(self.tmp, "hello")
        os.mkdir(proj)
        cbtest.write_file(os.path.join(proj, "CMakeLists.txt"),
                          HELLO_CMAKE % {"version": version}, 0o644)
        cbtest.write_file(os.path.join(proj, "hello.c"), HELLO_C, 0o644)
        bdir = os.path.join(self.tmp, "hello-build")
        # Only the staged tree: pkg-config must not be what finds it.
        env = dict(os.environ)
        for k in ("PKG_CONFIG_PATH", "CMAKE_PREFIX_PATH", "credbroker_DIR"):
            env.pop(k, None)
        cmd = [cmake, "-S", proj, "-B", bdir,
               "-DCMAKE_C_COMPILER=" + tool(lay.cc),
               "-DCMAKE_PREFIX_PATH=" + staged(dest, lay.prefix),
               "-DCMAKE_C_FLAGS=-std=c11 -Wall -Werror"]
        if lay.sanitized:
            cmd[-1] += " -fsanitize=address,undefined"
            cmd.append("-DCMAKE_EXE_LINKER_FLAGS="
                       "-fsanitize=address,undefined")
        r = subprocess.run(cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=300)
        out = r.stdout.decode("utf-8", "replace")
        self.assertEqual(r.returncode, 0, "%s\n%s" % (" ".join(cmd), out))
        self.assertIn("credbroker %s SHARED_LIBRARY in %s" % (
            version, staged(dest, lay.cmakedir)), out)
        r = subprocess.run([cmake, "--build", bdir], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=env, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout.decode("utf-8", "replace"))

        d = InstalledDaemon(staged(dest, os.path.join(lay.sbindir,
                                                      "credbrokerd")),
                            tmpdir=cbtest.make_tmpdir())
        self.addCleanup(cbtest.remove_tmpdir, d.dir)
        self.addCleanup(d.cleanup)
        d.start()
        # No LD_LIBRARY_PATH: the imported target names the staged
        # library, and CMake's build tree run path finds it.
        runenv = dict(os.environ)
        runenv.pop("LD_LIBRARY_PATH", None)
        exe = os.path.join(bdir, "hello")
        r = subprocess.run(["ldd", exe], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, env=runenv, timeout=60)
        self.assertRegex(r.stdout.decode(), r"libcredbroker\.so\.0 => %s/"
                         % re.escape(staged(dest, lay.libdir)))
        r = subprocess.run([exe, d.socket], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, env=runenv, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr.decode())
        lines = r.stdout.decode().splitlines()
        self.assertIn("protocol=1", lines)
        self.assertIn("server=credbroker " + version, lines)
        self.assertIn("uid=%d" % os.getuid(), lines)
        d.stop()


class SystemdTest(InstallTestCase):

    def test_verify_is_silent_on_the_installed_units(self):
        analyze = tool("systemd-analyze")
        tool("man")
        stage = os.path.join(self.tmp, "root")
        install(stage)
        lay = Layout(stage)
        env = dict(os.environ, MANPATH=lay.mandir,
                   SYSTEMD_UNIT_PATH=lay.unitdir + ":")
        r = subprocess.run([analyze, "verify",
                            os.path.join(lay.unitdir, "credbroker.service"),
                            os.path.join(lay.unitdir, "credbroker.socket")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           env=env, timeout=120)
        self.assertEqual(r.stdout.decode(), "")
        self.assertEqual(r.returncode, 0)

    def exposure(self, unit):
        r = subprocess.run([tool("systemd-analyze"), "security",
                            "--offline=true", "--no-pager", unit],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120)
        out = r.stdout.decode("utf-8", "replace")
        m = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", out)
        self.assertIsNotNone(m, out)
        return float(m.group(1)), out

    def test_security_exposure_is_at_most_2(self):
        dest, lay, _ = self.destdir_install()
        unit = staged(dest, os.path.join(lay.unitdir, "credbroker.service"))
        level, out = self.exposure(unit)
        sys.stderr.write("%s: exposure %.1f\n" % (unit, level))
        self.assertLessEqual(level, MAX_EXPOSURE, out)

    @staticmethod
    def kill_quietly(pid):
        """SIGKILL pid if it is still a credbrokerd (not a reused pid)."""
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if b"credbrokerd" in f.read():
                    os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass

    def test_syscall_filter_allows_what_the_daemon_does(self):
        strace = tool("strace")
        if cbtest.daemon_sanitized():
            self.skipTest("sanitizer runtimes make system calls of their own")
        dest, lay, _ = self.destdir_install()
        unit = staged(dest, os.path.join(lay.unitdir, "credbroker.service"))
        allowed = allowed_syscalls(unit)
        # What the hardening needs must stay allowed.
        for name in ("mlock", "madvise", "prctl", "prlimit64"):
            self.assertIn(name, allowed)

        trace = os.path.join(self.tmp, "trace")
        d = InstalledDaemon(staged(dest, os.path.join(lay.sbindir,
                                                      "credbrokerd")),
                            wrapper=[strace, "-f", "-qq", "-o", trace],
                            tmpdir=cbtest.make_tmpdir())
        self.addCleanup(cbtest.remove_tmpdir, d.dir)
        self.addCleanup(d.cleanup)
        d.start()
        # The daemon is strace's child: signals go to it, not to strace,
        # and it must not outlive a failed test.
        with open("/proc/%d/task/%d/children" % (d.pid, d.pid)) as f:
            kid = int(f.read().split()[0])
        self.addCleanup(self.kill_quietly, kid)
        user = cbtest.new_user()
        with d.client(timeout=30) as c:
            c.ok("health", {})
            c.ok("type.create", {"ident": "gh", "name": "GitHub"})
            c.ok("cred.set", {"type": "gh", "user": user,
                              "value": "value-of-the-syscall-test"})
            c.ok("cred.status", {"user": user})
            c.ok("substitute", {
                "component": {"kind": "action", "initiator": user,
                              "credentials": [{"id": "g", "type": "gh"}]},
                "request": {"method": "GET",
                            "url": "https://api.github.com/?t="
                                   "<<.credentials.g|urlquery>>",
                            "headers": [["A", "<<.credentials.g|base64>>"]]}})
            # Vault over TCP (refused at once): libcurl and the resolver.
            c.call("vault.test", {"url": "http://localhost:1",
                                  "path": "secrets/data/t",
                                  "role_id": "r", "secret_id": "s"},
                   timeout=60)
            c.ok("cred.delete", {"type": "gh", "user": user})
        d.signal(signal.SIGHUP)
        time.sleep(0.3)
        os.kill(kid, signal.SIGTERM)
        self.assertEqual(d.proc.wait(timeout=cbtest.STOP_TIMEOUT), 0,
                         d.log())

        used, families = set(), set()
        with open(trace) as f:
            for line in f:
                m = re.match(r"\d+\s+(?:<\.\.\. )?([a-z_0-9]+)[( ]", line)
                if m:
                    used.add(m.group(1))
                m = re.match(r"\d+\s+socket\((\w+)", line)
                if m:
                    families.add(m.group(1))
        self.assertGreater(len(used), 20, "strace saw nothing")
        # Before the daemon runs: strace's child executing it.
        used.discard("execve")
        # SQLite gives its journal the database's owner, but only when
        # running as root; the service runs as credbroker.
        if os.geteuid() == 0:
            used.discard("fchown")
        self.assertEqual(sorted(used - allowed), [],
                         "system calls the unit's filter would refuse")
        self.assertLessEqual(families, {"AF_UNIX", "AF_INET", "AF_INET6"})


if __name__ == "__main__":
    unittest.main(verbosity=2)

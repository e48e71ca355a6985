#!/usr/bin/python3
"""
The daemon's seams.

The daemon's files call each other in one direction only: no file of
daemon/ calls into a file that calls back into it (as server.c and rpc.c,
or keys.c and rpc-cred.c, once did).  A request flows down, from the
listener through dispatch to the handlers and the backends, and answers
come back through callbacks and interfaces (the reply sink, the values
backends), never through a call back up.

The graph is read from the built objects of the cbdaemon library: an edge
A -> B for every relocation in A's code (.text sections) against a global
symbol that B defines.  The method table in rpc.c's read-only data, which
names the handlers, is data, not a call, and does not count.  Only the
build tree is read; nothing is started.

The handlers (daemon/rpc-*.c) never branch on a type's storage kind: a
new values backend needs no handler change.
"""

import glob
import os
import re
import subprocess
import sys
import unittest
from collections import defaultdict

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cbtest  # noqa: E402

SOURCE_DIR = os.environ.get("CB_SOURCE_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..")
OBJDIR = os.path.join(cbtest.BUILD_DIR, "daemon", "CMakeFiles",
                      "cbdaemon.dir")


def run(*args):
    return subprocess.run(args, check=True, capture_output=True,
                          text=True).stdout


def source(obj):
    return os.path.basename(obj)[:-len(".o")]


def call_graph():
    """{file: {file it calls: [symbols]}} over the daemon's objects."""
    objs = sorted(glob.glob(os.path.join(OBJDIR, "*.c.o")))
    defined = {}
    for o in objs:
        for line in run("nm", "--defined-only", "-g", o).splitlines():
            parts = line.split()
            if len(parts) == 3:
                defined[parts[2]] = source(o)
    graph = defaultdict(lambda: defaultdict(set))
    for o in objs:
        me = source(o)
        section = None
        for line in run("objdump", "-r", o).splitlines():
            if line.startswith("RELOCATION RECORDS FOR ["):
                section = line[len("RELOCATION RECORDS FOR ["):-2]
                continue
            parts = line.split()
            if (section is None or not section.startswith(".text") or
                    len(parts) != 3):
                continue
            sym = parts[2].split("-")[0].split("+")[0]
            other = defined.get(sym)
            if other is not None and other != me:
                graph[me][other].add(sym)
    return objs, graph


class CallGraphTest(unittest.TestCase):

    def test_no_file_calls_a_file_that_calls_it_back(self):
        objs, graph = call_graph()
        # A build tree of the daemon library, with its dispatcher.
        names = {source(o) for o in objs}
        self.assertIn("rpc.c", names, "no cbdaemon objects in " + OBJDIR)
        self.assertIn("rpc-cred.c", graph, "no edges read")
        cycles = []
        for a, calls in sorted(graph.items()):
            for b, syms in sorted(calls.items()):
                back = graph.get(b, {}).get(a)
                if back and a < b:
                    cycles.append("%s -> %s (%s), %s -> %s (%s)" % (
                        a, b, ", ".join(sorted(syms)[:3]), b, a,
                        ", ".join(sorted(back)[:3])))
        self.assertEqual(cycles, [], "calls in both directions:\n  " +
                         "\n  ".join(cycles))

    def test_graph_is_read_from_calls(self):
        # The reader itself: handlers do call into the dispatcher (to
        # finish a waiting call), so that edge must be seen.
        _, graph = call_graph()
        self.assertIn("rpc_finish", graph["rpc-cred.c"].get("rpc.c", ()))


    def test_handlers_do_not_branch_on_the_storage_kind(self):
        # The handlers reach values through values_for() and the backend's
        # operations (storage/values.h); a comparison with, or a case of,
        # a storage kind in daemon/rpc-*.c would be a backend branch.
        # The kinds are the members of enum store_kind (storage/store.h).
        with open(os.path.join(SOURCE_DIR, "storage", "store.h")) as f:
            body = re.search(r"enum store_kind \{(.*?)\}", f.read(),
                             re.S).group(1)
        kinds = "|".join(re.findall(r"\b(STORE_[A-Z]+)\b", body))
        self.assertIn("STORE_VAULT", kinds)
        branch = re.compile(r"(==|!=)\s*(%s)\b|"
                            r"\b(%s)\s*(==|!=|\?)|"
                            r"\bcase\s+(%s)\b" % (kinds, kinds, kinds))
        found = []
        for path in sorted(glob.glob(os.path.join(SOURCE_DIR, "daemon",
                                                  "rpc-*.c"))):
            with open(path) as f:
                for n, line in enumerate(f, 1):
                    if branch.search(line):
                        found.append("%s:%d: %s" % (os.path.basename(path),
                                                    n, line.strip()))
        self.assertEqual(found, [], "storage-kind branches:\n  " +
                         "\n  ".join(found))


if __name__ == "__main__":
    cbtest.main()

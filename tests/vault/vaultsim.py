#!/usr/bin/python3
"""
vaultsim: a HashiCorp Vault HTTP API simulator for credbroker's tests.

Vault cannot be installed on the test machines, so credbroker's Vault client
is tested against this server.  It was written from Vault's published API
documentation (see README.md next to this file for the pages), not from what
our client sends, so that it disagrees with the client wherever the client
disagrees with Vault.  Python 3 standard library only.

What it serves (all under /v1/, JSON in and out)
------------------------------------------------
  POST   auth/<approle>/login            AppRole login (role_id, secret_id)
  GET    auth/token/lookup-self          (POST accepted too)
  POST   auth/token/renew-self           optional "increment" ("1h", 3600)
  POST   auth/token/revoke-self
  GET    sys/health, HEAD sys/health     unauthenticated, works when sealed
  GET    sys/seal-status                 unauthenticated, works when sealed
  KV v2 at every configured mount M:
  GET    M/data/P[?version=N]            read (404 {"errors":[]} if missing,
                                         404 + metadata body if deleted)
  POST   M/data/P  (PUT too)             {"data": {...}, "options": {"cas": N}}
  PATCH  M/data/P                        JSON merge patch
  DELETE M/data/P                        soft-delete the latest version (204)
  POST   M/delete/P, M/undelete/P, M/destroy/P   {"versions": [..]}
  LIST   M/metadata/P  (GET ?list=true)  {"data": {"keys": [...]}}, folders
                                         end in "/", 404 {"errors":[]} empty
  GET    M/metadata/P                    metadata and versions
  POST   M/metadata/P                    max_versions, cas_required, ...
  DELETE M/metadata/P                    every version and the metadata (204)
  GET/POST M/config

Tokens come in X-Vault-Token (or "Authorization: Bearer"), the namespace in
X-Vault-Namespace (or as a leading part of the path, which the docs call
equivalent).  Each namespace has its own mounts, secrets, roles and tokens.

Command line
------------
  vaultsim.py [--bind 127.0.0.1] [--port 0] [--tls-cert F --tls-key F]
              [--admin-token T] [--namespace NS]... [--kv-mount M[@NS]]...
              [--role SPEC]... [--policy NAME=JSON|NAME=@FILE]...
              [--approle-mount approle] [--kv-max-versions 10]
              [--error-style multierror|plain] [--fault JSON]... [--sealed]
              [--log-limit 10000] [--verbose]

  When ready it prints one JSON line on stdout and flushes it:
    {"port": N, "admin_token": "...", "url": "http://127.0.0.1:N", "tls": false}

  Role SPEC:  ROLE_ID:SECRET_ID[:key=value,key=value...]
    keys: name, ttl, max_ttl (seconds or Go durations like "10s", "1h";
          0 means Vault's system default/maximum of 768h), renewable
          (true/false), policies (names joined with "+"), namespace,
          secret_ids (extra secret IDs joined with "+")
    e.g.  --role app:s3cret:ttl=3,max_ttl=10,renewable=true,policies=rw

  Policy JSON is Vault's JSON policy syntax, e.g.
    --policy 'ro={"path": {"secrets/data/*": {"capabilities": ["read"]},
                           "secrets/metadata/*": {"capabilities": ["list"]}}}'
  Paths are relative to the token's namespace; "*" (trailing glob), "+"
  (one segment) and "deny" work as in Vault, with Vault's priority rules.
  A role without policies gets "sim-all" (every capability on every path).
  Every token also has "default", which allows lookup-self, renew-self and
  revoke-self.

  --error-style: "multierror" (default) words errors the way current Vault
  does (403 for an invalid/expired token carries
  "2 errors occurred:\\n\\t* permission denied\\n\\t* invalid token\\n\\n");
  "plain" gives the older {"errors":["permission denied"]}.

Admin API (not under /v1/; header X-Sim-Admin-Token: <admin_token>)
------------------------------------------------------------------
  Admin requests are not counted, logged, delayed or faulted.  Bodies and
  answers are JSON; errors are {"error": "..."} with a 4xx status.

  GET    /__sim/state                everything below in one object
  GET    /__sim/counters             logins_ok, logins_failed, renewals_ok,
                                     renewals_failed, lookups, revocations,
                                     kv_reads, kv_writes, kv_lists,
                                     kv_deletes, kv_metadata_deletes,
                                     requests {"METHOD /v1/path": n},
                                     statuses {"200": n}, faults {kind: n},
                                     total, and client connections (those
                                     that made a /v1 request):
                                     connections_open (now),
                                     connections_max (most open at once),
                                     connections_total (opened)
  POST   /__sim/counters/reset       (connections_max restarts from the
                                     connections open now)
  GET    /__sim/log[?since=SEQ]      request log: seq, time, method, path,
                                     query, token (header present), token_state
                                     (valid/expired/revoked/unknown/null),
                                     namespace (header value or null), conn
                                     (connection number), status, fault
  DELETE /__sim/log
  GET    /__sim/secrets              dump: {ns: {mount: {path: {current_version,
                                     oldest_version, versions: {n: {data,
                                     created_time, deletion_time, destroyed}}}}}}
                                     ("" is the root namespace)
  POST   /__sim/secrets              seed {"namespace","mount","path","data"}
  POST   /__sim/seal, /__sim/unseal
  GET    /__sim/faults
  POST   /__sim/faults               set one or more faults (each replaces its
                                     kind); "count": N = the next N matching
                                     requests, "on": true = until cleared;
                                     "prefix" (default "/v1/") and "methods"
                                     restrict which requests match:
      {"fail":      {"count": 2, "status": 500, "errors": ["..."],
                     "body": "raw text", "content_type": "text/html"}}
      {"delay":     {"seconds": 2.5, "prefix": "/v1/secrets/"}}  (on until
                     cleared unless a count is given)
      {"drop":      {"count": 1, "mode": "close" | "reset"}}
      {"malformed": {"count": 1, "kind": "truncate"|"garbage"|"empty"|"wrong_type"}}
      {"deny_login":{"count": 1}}      login answers 400 invalid role or secret ID
      {"sealed": true}
  DELETE /__sim/faults[/KIND]        clear all faults (or one kind); clearing a
                                     delay releases requests already waiting
  GET    /__sim/tokens               tokens (id, accessor, namespace, role,
                                     policies, issue_time, expire_time,
                                     max_expire_time, renewable, renewals, state)
  POST   /__sim/tokens/expire        expire every token now, or {"accessor": A}
                                     / {"token": T} for one
  POST   /__sim/clock                {"advance": SECONDS} or {"offset": SECONDS}:
                                     shifts the simulator's clock (token expiry,
                                     timestamps) without sleeping
  POST   /__sim/roles                {"role_id", "secret_id" | "secret_ids",
                                     "name", "ttl", "max_ttl", "renewable",
                                     "policies", "namespace"} (replaces)
  DELETE /__sim/roles/ROLE_ID[?namespace=NS]
  PUT    /__sim/policies/NAME        Vault JSON policy; DELETE removes it
  POST   /__sim/namespaces           {"name": "ns1"}
  POST   /__sim/mounts               {"mount": "kv", "namespace": ""}
  DELETE /__sim/mounts               {"mount": "kv", "namespace": ""}
  POST   /__sim/config               {"error_style": "plain"|"multierror"}
  POST   /__sim/reset                back to the command-line configuration:
                                     no secrets, tokens, faults, counters or
                                     log, unsealed, clock offset 0
                                     ({"keep_secrets": true} keeps the secrets)

For Python tests, SimProcess (below) starts the simulator as a subprocess and
offers request() and admin() helpers; import this file to use it.
"""

import argparse
import copy
import http.client
import json
import os
import re
import secrets
import select
import signal
import socket
import ssl
import string
import struct
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections import deque
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

VERSION = "1.17.0+vaultsim"
SYSTEM_MAX_TTL = 768 * 3600        # Vault's default max_lease_ttl (32 days)
SYSTEM_DEFAULT_TTL = 768 * 3600    # Vault's default default_lease_ttl
MAX_REQUEST_SIZE = 32 * 1024 * 1024
DEFAULT_MAX_VERSIONS = 10
ALL_CAPS = ["create", "read", "update", "delete", "list", "patch", "sudo"]
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "LIST", "PATCH")
BASE62 = string.ascii_letters + string.digits
ADMIN_HEADER = "X-Sim-Admin-Token"


class SimError(Exception):
    """A configuration or admin-request error."""


# ---------------------------------------------------------------------------
# Small helpers: durations, times, JSON the way Go writes it.

_DUR_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h|d)")
_DUR_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1,
              "m": 60, "h": 3600, "d": 86400}


def parse_duration(v):
    """Seconds from an int, a numeric string or a Go duration ("1h30m")."""
    if v is None or v == "":
        return 0.0
    if isinstance(v, bool):
        raise ValueError("not a duration: %r" % (v,))
    if isinstance(v, (int, float)):
        if v < 0:
            raise ValueError("negative duration")
        return float(v)
    if not isinstance(v, str):
        raise ValueError("not a duration: %r" % (v,))
    s = v.strip()
    if re.fullmatch(r"\d+", s):
        return float(int(s))
    pos, total = 0, 0.0
    for m in _DUR_RE.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DUR_UNITS[m.group(2)]
        pos = m.end()
    if pos == 0 or pos != len(s):
        raise ValueError("time: invalid duration %s" % json.dumps(s))
    return total


def go_duration(sec):
    """time.Duration.String() for whole seconds."""
    d = int(sec)
    if d <= 0:
        return "0s"
    h, rem = divmod(d, 3600)
    m, s = divmod(rem, 60)
    if h:
        return "%dh%dm%ds" % (h, m, s)
    if m:
        return "%dm%ds" % (m, s)
    return "%ds" % s


def human_duration(sec):
    """Vault's sdk/framework humanDuration: Go's form without zero parts."""
    s = go_duration(sec)
    if s == "0s":
        return s
    if s.endswith("m0s"):
        s = s[:-2]
    idx = s.find("h0m")
    if idx > 0:
        s = s[:idx + 1] + s[idx + 3:]
    return s


def rfc3339(t):
    """Go's RFC3339Nano in UTC ("2018-03-22T02:24:06.945319214Z")."""
    if t is None:
        return ""
    dt = datetime.fromtimestamp(t, timezone.utc)
    frac = ("%06d" % dt.microsecond).rstrip("0")
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + ("." + frac if frac else "") + "Z"


class Struct(dict):
    """A JSON object that Vault encodes from a Go struct: its fields keep
    their order.  Every other object is a Go map, whose keys Go sorts."""


def _go_order(obj):
    if isinstance(obj, Struct):
        return {k: _go_order(v) for k, v in obj.items()}
    if isinstance(obj, dict):
        return {k: _go_order(obj[k]) for k in sorted(obj)}
    if isinstance(obj, (list, tuple)):
        return [_go_order(v) for v in obj]
    return obj


def go_json(obj):
    """JSON as Go's encoding/json Encoder writes it: map keys sorted, UTF-8,
    HTML characters escaped, one trailing newline."""
    s = json.dumps(_go_order(obj), ensure_ascii=False,
                   separators=(",", ":"))
    s = (s.replace("<", "\\u003c").replace(">", "\\u003e")
         .replace("&", "\\u0026").replace("\u2028", "\\u2028")
         .replace("\u2029", "\\u2029"))
    return (s + "\n").encode("utf-8")


def go_parse_bool(s):
    return s in ("1", "t", "T", "TRUE", "true", "True")


def rand62(n):
    return "".join(secrets.choice(BASE62) for _ in range(n))


def multierror(*msgs):
    """go-multierror's default format, which Vault puts in "errors"."""
    if len(msgs) == 1:
        return "1 error occurred:\n\t* %s\n\n" % msgs[0]
    return "%d errors occurred:\n\t%s\n\n" % (
        len(msgs), "\n\t".join("* " + m for m in msgs))


class Response:
    def __init__(self, status, body=b"", content_type="application/json",
                 headers=None, close=False):
        self.status = status
        self.body = body if body is not None else b""
        self.headers = [("Cache-Control", "no-store")]
        if content_type and status != 204:
            self.headers.append(("Content-Type", content_type))
        self.headers.extend(headers or [])
        self.close = close


def errors_response(status, errors):
    return Response(status, go_json(Struct(errors=list(errors))))


def json_response(status, obj):
    return Response(status, go_json(obj))


def no_content():
    return Response(204, b"", content_type=None)


# ---------------------------------------------------------------------------
# ACL policies (Vault's JSON policy syntax and path priority rules).

class Policy:
    def __init__(self, name, doc):
        self.name = name
        self.rules = {}
        if isinstance(doc, str):
            doc = json.loads(doc)
        if not isinstance(doc, dict):
            raise SimError("policy %s: expected a JSON object" % name)
        paths = doc.get("path", doc)
        if not isinstance(paths, dict):
            raise SimError("policy %s: \"path\" must be an object" % name)
        for pattern, rule in paths.items():
            if isinstance(rule, dict):
                caps = rule.get("capabilities", [])
            else:
                caps = rule
            if not isinstance(caps, list) or not all(
                    isinstance(c, str) for c in caps):
                raise SimError("policy %s: capabilities of %s must be a list"
                               % (name, pattern))
            for c in caps:
                if c not in ALL_CAPS + ["deny"]:
                    raise SimError("policy %s: unknown capability %s"
                                   % (name, c))
            self.rules[pattern.lstrip("/")] = set(caps)
        self.doc = {"path": {p: {"capabilities": sorted(c)}
                             for p, c in self.rules.items()}}


def _pattern_regex(pattern):
    glob = pattern.endswith("*")
    base = pattern[:-1] if glob else pattern
    parts = []
    for seg in base.split("/"):
        parts.append("[^/]*" if seg == "+" else re.escape(seg))
    return re.compile("/".join(parts) + (".*" if glob else "") + r"\Z",
                      re.S)


def _priority_key(p):
    """Bigger is more specific (Vault's documented priority rules)."""
    pos = [i for i in (p.find("+"), p.find("*")) if i != -1]
    first_wild = min(pos) if pos else 1 << 30
    return (first_wild, not p.endswith("*"), -p.split("/").count("+"),
            len(p), p)


def acl_allows(policies, path, cap):
    merged = {}
    for pol in policies:
        for pattern, caps in pol.rules.items():
            merged.setdefault(pattern, set()).update(caps)
    matches = [p for p in merged if _pattern_regex(p).match(path)]
    if not matches:
        return False
    best = max(matches, key=_priority_key)
    caps = merged[best]
    if "deny" in caps:
        return False
    return cap in caps


DEFAULT_POLICY = Policy("default", {"path": {
    "auth/token/lookup-self": {"capabilities": ["read"]},
    "auth/token/renew-self": {"capabilities": ["update"]},
    "auth/token/revoke-self": {"capabilities": ["update"]},
}})
SIM_ALL_POLICY = Policy("sim-all", {"path": {"*": {"capabilities": ALL_CAPS}}})


# ---------------------------------------------------------------------------
# State.

class Role:
    def __init__(self, role_id, secret_ids, name=None, ttl=0, max_ttl=0,
                 renewable=True, policies=None, namespace=""):
        if not role_id:
            raise SimError("role: empty role_id")
        self.role_id = role_id
        self.secret_ids = list(secret_ids)
        self.name = name or role_id
        self.ttl = parse_duration(ttl)
        self.max_ttl = parse_duration(max_ttl)
        self.renewable = bool(renewable)
        self.policies = list(policies) if policies else ["sim-all"]
        self.namespace = (namespace or "").strip("/")
        self.entity_id = str(uuid.uuid4())

    def effective_ttl(self):
        return self.ttl if self.ttl > 0 else SYSTEM_DEFAULT_TTL

    def effective_max_ttl(self):
        m = SYSTEM_MAX_TTL
        if 0 < self.max_ttl < m:
            m = self.max_ttl
        return m

    def to_json(self):
        return {"role_id": self.role_id, "secret_ids": list(self.secret_ids),
                "name": self.name, "ttl": self.ttl, "max_ttl": self.max_ttl,
                "renewable": self.renewable, "policies": list(self.policies),
                "namespace": self.namespace}

    @classmethod
    def from_json(cls, d):
        if not isinstance(d, dict):
            raise SimError("role: expected an object")
        sids = d.get("secret_ids")
        if sids is None:
            sids = [d["secret_id"]] if d.get("secret_id") else []
        if not isinstance(sids, list) or not sids:
            raise SimError("role: secret_id or secret_ids required")
        renewable = d.get("renewable", True)
        if isinstance(renewable, str):
            renewable = renewable.lower() in ("1", "true", "yes", "on")
        try:
            return cls(d.get("role_id", ""), sids, name=d.get("name"),
                       ttl=d.get("ttl", 0), max_ttl=d.get("max_ttl", 0),
                       renewable=renewable, policies=d.get("policies"),
                       namespace=d.get("namespace", ""))
        except ValueError as e:
            raise SimError("role: %s" % e)

    @classmethod
    def from_spec(cls, spec):
        parts = spec.split(":", 2)
        if len(parts) < 2:
            raise SimError("--role wants ROLE_ID:SECRET_ID[:opts], got %r"
                           % spec)
        d = {"role_id": parts[0], "secret_ids": [parts[1]]}
        if len(parts) == 3 and parts[2]:
            for kv in parts[2].split(","):
                if "=" not in kv:
                    raise SimError("--role option %r is not key=value" % kv)
                k, v = kv.split("=", 1)
                k = k.strip()
                if k in ("policies", "secret_ids"):
                    items = [x for x in v.split("+") if x]
                    if k == "secret_ids":
                        d["secret_ids"] += items
                    else:
                        d["policies"] = items
                elif k in ("name", "ttl", "max_ttl", "renewable",
                           "namespace"):
                    d[k] = v
                else:
                    raise SimError("--role: unknown option %r" % k)
        return cls.from_json(d)


class Token:
    def __init__(self, tid, accessor, role, namespace, policies, issue,
                 lease):
        self.id = tid
        self.accessor = accessor
        self.role_id = role.role_id
        self.role_name = role.name
        self.namespace = namespace
        self.policies = policies
        self.meta = {"role_name": role.name}
        self.entity_id = role.entity_id
        self.issue = issue
        self.creation_ttl = int(lease)
        self.expire = issue + lease
        self.ttl = role.effective_ttl()
        self.max_ttl = role.effective_max_ttl()
        self.renewable = role.renewable
        self.last_renewal = None
        self.renewals = 0
        self.revoked = False

    def state(self, now):
        if self.revoked:
            return "revoked"
        if now >= self.expire:
            return "expired"
        return "valid"

    def to_json(self, now):
        return {"id": self.id, "accessor": self.accessor,
                "namespace": self.namespace, "role_id": self.role_id,
                "role_name": self.role_name, "policies": self.policies,
                "issue_time": self.issue, "expire_time": self.expire,
                "max_expire_time": self.issue + self.max_ttl,
                "renewable": self.renewable, "renewals": self.renewals,
                "state": self.state(now)}


class Secret:
    """One KV v2 key: metadata and its versions."""

    def __init__(self, now):
        self.created = now
        self.updated = now
        self.current = 0
        self.oldest = 0
        self.versions = {}      # n -> {"data", "created", "deletion", "destroyed"}
        self.max_versions = 0
        self.cas_required = False
        self.custom_metadata = None

    def version_meta(self, n):
        v = self.versions[n]
        return {"created_time": rfc3339(v["created"]),
                "deletion_time": rfc3339(v["deletion"]),
                "destroyed": v["destroyed"]}

    def dump(self):
        return {"current_version": self.current,
                "oldest_version": self.oldest,
                "max_versions": self.max_versions,
                "created_time": rfc3339(self.created),
                "updated_time": rfc3339(self.updated),
                "custom_metadata": copy.deepcopy(self.custom_metadata),
                "versions": {str(n): dict(self.version_meta(n),
                                          data=copy.deepcopy(v["data"]))
                             for n, v in sorted(self.versions.items())}}


class Mount:
    def __init__(self, name):
        self.name = name
        self.secrets = {}
        self.max_versions = 0
        self.cas_required = False


class Namespace:
    def __init__(self, name, nsid):
        self.name = name
        self.id = nsid
        self.mounts = {}


def _mount_name(m):
    m = (m or "").strip("/")
    if not m or m.startswith("sys") and (m == "sys" or m.startswith("sys/")) \
            or m == "auth" or m.startswith("auth/"):
        raise SimError("bad or reserved mount path %r" % m)
    return m


class Config:
    """The command-line configuration, kept for /__sim/reset."""

    def __init__(self):
        self.namespaces = []
        self.mounts = []            # (mount, namespace)
        self.roles = []             # Role.to_json() dicts
        self.policies = {}          # name -> doc
        self.faults = []            # JSON dicts
        self.sealed = False
        self.approle_mount = "approle"
        self.max_versions = DEFAULT_MAX_VERSIONS
        self.error_style = "multierror"


class Sim:
    def __init__(self, config, admin_token, log_limit=10000, verbose=False):
        self.config = config
        self.admin_token = admin_token
        self.verbose = verbose
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.log = deque(maxlen=log_limit)
        self.conn_seq = 0
        self.client_conns = set()   # conn ids that made a /v1 request
        self.delay_gen = 0
        self.cluster_id = str(uuid.uuid4())
        self.cluster_name = "vault-cluster-" + secrets.token_hex(4)
        self.apply_config(keep_secrets=False)

    # -- configuration --------------------------------------------------

    def apply_config(self, keep_secrets):
        c = self.config
        with self.lock:
            old = getattr(self, "namespaces", {})
            self.namespaces = {"": Namespace("", "root")}
            for ns in c.namespaces:
                self._add_namespace(ns)
            for mount, ns in c.mounts:
                self._add_mount(mount, ns)
            if keep_secrets:
                for nsname, ns in old.items():
                    for mname, m in ns.mounts.items():
                        if nsname in self.namespaces and \
                                mname in self.namespaces[nsname].mounts:
                            self.namespaces[nsname].mounts[mname].secrets = \
                                m.secrets
            self.policies = {"default": DEFAULT_POLICY,
                             "sim-all": SIM_ALL_POLICY}
            for name, doc in c.policies.items():
                self.policies[name] = Policy(name, doc)
            self.roles = {}
            for rd in c.roles:
                self._add_role(Role.from_json(rd))
            self.tokens = {}
            self.sealed = c.sealed
            self.approle_mount = c.approle_mount
            self.max_versions = c.max_versions
            self.error_style = c.error_style
            self.clock_offset = 0.0
            self.faults = {}
            self.delay_gen += 1
            self.cond.notify_all()
            for f in c.faults:
                self.set_faults(f)
            self.reset_counters()
            self.log.clear()
            self.log_seq = 0

    def reset_counters(self):
        self.counters = {
            "logins_ok": 0, "logins_failed": 0,
            "renewals_ok": 0, "renewals_failed": 0,
            "lookups": 0, "revocations": 0,
            "kv_reads": 0, "kv_writes": 0, "kv_lists": 0, "kv_deletes": 0,
            "kv_metadata_deletes": 0,
            "requests": {}, "statuses": {},
            "faults": {"drop": 0, "delay": 0, "fail": 0, "malformed": 0,
                       "deny_login": 0},
            "total": 0,
            "connections_open": len(self.client_conns),
            "connections_max": len(self.client_conns),
            "connections_total": 0,
        }

    def _add_namespace(self, name):
        name = (name or "").strip("/")
        if not name:
            raise SimError("empty namespace name")
        if name not in self.namespaces:
            ids = {n.id for n in self.namespaces.values()}
            nsid = rand62(5)
            while nsid in ids:
                nsid = rand62(5)
            self.namespaces[name] = Namespace(name, nsid)
        return self.namespaces[name]

    def _add_mount(self, mount, ns):
        mount = _mount_name(mount)
        ns = (ns or "").strip("/")
        if ns not in self.namespaces:
            raise SimError("mount %s: unknown namespace %r" % (mount, ns))
        full = (ns + "/" if ns else "") + mount
        for other in self.namespaces:
            if other and (other == full or other.startswith(full + "/")):
                raise SimError("mount %s clashes with namespace %s"
                               % (full, other))
        space = self.namespaces[ns]
        if mount not in space.mounts:
            space.mounts[mount] = Mount(mount)

    def _add_role(self, role):
        if role.namespace not in self.namespaces:
            raise SimError("role %s: unknown namespace %r"
                           % (role.role_id, role.namespace))
        self.roles[(role.namespace, role.role_id)] = role

    def now(self):
        return time.time() + self.clock_offset

    # -- faults -----------------------------------------------------------

    FAULT_KINDS = ("fail", "delay", "drop", "malformed", "deny_login")

    def set_faults(self, spec):
        if not isinstance(spec, dict):
            raise SimError("faults: expected an object")
        with self.lock:
            for kind, f in spec.items():
                if kind == "sealed":
                    self.sealed = bool(f)
                    continue
                if kind not in self.FAULT_KINDS:
                    raise SimError("unknown fault %r" % kind)
                if f is None or f is False:
                    self.clear_faults(kind)
                    continue
                if f is True:
                    f = {"on": True}
                if not isinstance(f, dict):
                    raise SimError("fault %s: expected an object" % kind)
                g = {"prefix": f.get("prefix", "/v1/"),
                     "methods": [m.upper() for m in f.get("methods") or []]}
                if f.get("on"):
                    g["remaining"] = None
                else:
                    n = f.get("count", 1)
                    if not isinstance(n, int) or n < 1:
                        raise SimError("fault %s: count must be >= 1" % kind)
                    g["remaining"] = n
                if kind == "fail":
                    g["status"] = int(f.get("status", 500))
                    if not 100 <= g["status"] <= 599:
                        raise SimError("fail: bad status")
                    g["errors"] = f.get("errors")
                    g["body"] = f.get("body")
                    g["content_type"] = f.get("content_type",
                                              "application/json")
                elif kind == "delay":
                    g["seconds"] = float(f.get("seconds", 1.0))
                    if "count" not in f and "on" not in f:
                        g["remaining"] = None
                elif kind == "drop":
                    g["mode"] = f.get("mode", "close")
                    if g["mode"] not in ("close", "reset"):
                        raise SimError("drop: mode is close or reset")
                elif kind == "malformed":
                    g["kind"] = f.get("kind", "truncate")
                    if g["kind"] not in ("truncate", "garbage", "empty",
                                         "wrong_type"):
                        raise SimError("malformed: unknown kind")
                if kind == "deny_login":
                    g["prefix"] = "/v1/"
                if kind == "delay":
                    self.delay_gen += 1
                    self.cond.notify_all()
                self.faults[kind] = g

    def clear_faults(self, kind=None):
        with self.lock:
            if kind is None:
                self.faults = {}
            else:
                if kind not in self.FAULT_KINDS:
                    raise SimError("unknown fault %r" % kind)
                self.faults.pop(kind, None)
            if kind in (None, "delay"):
                self.delay_gen += 1
                self.cond.notify_all()

    def _take_fault(self, kind, method, path):
        f = self.faults.get(kind)
        if f is None:
            return None
        if not path.startswith(f["prefix"]):
            return None
        if f["methods"] and method not in f["methods"]:
            return None
        if f["remaining"] is not None:
            f["remaining"] -= 1
            if f["remaining"] <= 0:
                del self.faults[kind]
        self.counters["faults"][kind] += 1
        return dict(f)

    def begin(self, method, path, query, headers, conn_id):
        """Count and log a /v1 request, and pick the faults it meets."""
        with self.lock:
            c = self.counters
            c["total"] += 1
            if conn_id not in self.client_conns:
                self.client_conns.add(conn_id)
                c["connections_total"] += 1
                c["connections_open"] = len(self.client_conns)
                c["connections_max"] = max(c["connections_max"],
                                           c["connections_open"])
            key = "%s %s" % (method, path)
            c["requests"][key] = c["requests"].get(key, 0) + 1
            token = headers.get("X-Vault-Token")
            auth = headers.get("Authorization", "")
            if not token and auth[:7].lower() == "bearer ":
                token = auth[7:].strip()
            tok = self._find_token(token) if token else None
            self.log_seq += 1
            entry = {"seq": self.log_seq, "time": self.now(),
                     "method": method, "path": path, "query": query,
                     "token": bool(token),
                     "token_state": (tok.state(self.now()) if tok else
                                     ("unknown" if token else None)),
                     "namespace": headers.get("X-Vault-Namespace"),
                     "conn": conn_id, "status": None, "fault": None}
            self.log.append(entry)
            faults = {}
            f = self._take_fault("drop", method, path)
            if f:
                faults["drop"] = f
                entry["fault"] = "drop"
                return entry, faults
            for kind in ("delay", "fail"):
                f = self._take_fault(kind, method, path)
                if f:
                    faults[kind] = f
                    entry["fault"] = kind
            if "fail" not in faults:
                f = self._take_fault("malformed", method, path)
                if f:
                    faults["malformed"] = f
                    entry["fault"] = "malformed"
            return entry, faults

    def conn_closed(self, conn_id):
        """A connection has closed: it is no longer open."""
        with self.lock:
            if conn_id in self.client_conns:
                self.client_conns.discard(conn_id)
                self.counters["connections_open"] = len(self.client_conns)

    def finish(self, entry, status):
        with self.lock:
            entry["status"] = status
            k = str(status)
            self.counters["statuses"][k] = \
                self.counters["statuses"].get(k, 0) + 1

    def sleep_delay(self, seconds):
        end = time.monotonic() + seconds
        with self.cond:
            gen = self.delay_gen
            while self.delay_gen == gen:
                left = end - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)

    @staticmethod
    def fail_response(f):
        if f.get("body") is not None:
            body = f["body"]
            if not isinstance(body, bytes):
                body = body.encode() if isinstance(body, str) \
                    else go_json(body)
            return Response(f["status"], body,
                            content_type=f.get("content_type"))
        errs = f.get("errors")
        if errs is None:
            errs = [multierror("internal error")] if f["status"] == 500 \
                else ["simulated failure (status %d)" % f["status"]]
        return errors_response(f["status"], errs)

    @staticmethod
    def corrupt(resp, kind):
        status = 200 if resp.status == 204 else resp.status
        if kind == "truncate":
            body = resp.body[:max(1, len(resp.body) // 2)] if resp.body \
                else b"{\"errors\":["
            return Response(status, body)
        if kind == "garbage":
            return Response(status, b"<html><body>not json</body></html>\n",
                            content_type="text/html")
        if kind == "empty":
            return Response(status, b"")
        return Response(status, b"[\"not\",\"an\",\"object\"]\n")

    # -- error bodies in Vault's wording -----------------------------------

    def _multi(self, *msgs):
        if self.error_style == "plain":
            return msgs[0]
        return multierror(*msgs)

    def perm_denied(self):
        return errors_response(403, [self._multi("permission denied")])

    def invalid_token(self):
        if self.error_style == "plain":
            return errors_response(403, ["permission denied"])
        return errors_response(
            403, [multierror("permission denied", "invalid token")])

    def unsupported_op(self):
        return errors_response(405, [self._multi("unsupported operation")])

    def unsupported_path(self):
        return errors_response(404, [self._multi("unsupported path")])

    @staticmethod
    def envelope(data=None, auth=None, warnings=None, mount_type=""):
        return Struct(request_id=str(uuid.uuid4()), lease_id="",
                      renewable=False, lease_duration=0, data=data,
                      wrap_info=None, warnings=warnings or None, auth=auth,
                      mount_type=mount_type)

    @staticmethod
    def ignored_params(data, known):
        extra = sorted(k for k in data if k not in known)
        if not extra:
            return []
        return ["Endpoint ignored these unrecognized parameters: [%s]"
                % " ".join(extra)]

    # -- tokens -------------------------------------------------------------

    def _find_token(self, tid):
        return self.tokens.get(tid)

    def _new_token(self, role, namespace, lease, now):
        suffix = ""
        if namespace:
            suffix = "." + self.namespaces[namespace].id
        tid = "hvs." + rand62(24) + suffix
        while tid in self.tokens:
            tid = "hvs." + rand62(24) + suffix
        pols = sorted(set(["default"] + role.policies))
        tok = Token(tid, rand62(24) + suffix, role, namespace, pols, now,
                    lease)
        self.tokens[tid] = tok
        return tok

    @staticmethod
    def auth_block(tok, lease):
        return Struct(client_token=tok.id, accessor=tok.accessor,
                      policies=list(tok.policies),
                      token_policies=list(tok.policies),
                      metadata=dict(tok.meta), lease_duration=int(lease),
                      renewable=tok.renewable, entity_id=tok.entity_id,
                      token_type="service", orphan=True,
                      mfa_requirement=None, num_uses=0)

    # -- the Vault API ----------------------------------------------------

    def dispatch(self, method, url, headers, body):
        with self.lock:
            return self._dispatch(method, url, headers, body)

    def _dispatch(self, method, url, headers, body):
        raw = url.path
        if not raw.startswith("/v1/"):
            return errors_response(404, [])
        path = unquote(raw[len("/v1/"):])
        query = parse_qs(url.query, keep_blank_values=True)
        if method not in METHODS:
            return errors_response(405, [])
        op = {"GET": "read", "HEAD": "read", "POST": "update",
              "PUT": "update", "DELETE": "delete", "LIST": "list",
              "PATCH": "patch"}[method]
        if method == "GET" and go_parse_bool(query.get("list", [""])[0]):
            op = "list"
        if op == "list" and not path.endswith("/"):
            path += "/"

        # Unauthenticated system endpoints answer even when sealed.
        if path == "sys/health" and op == "read":
            return self.health(query)
        if path == "sys/seal-status" and op == "read":
            return json_response(200, self.seal_status())
        if self.sealed:
            return errors_response(503, ["Vault is sealed"])

        if headers.get("X-Vault-Wrap-TTL"):
            return errors_response(400, [
                "vaultsim: response wrapping (X-Vault-Wrap-TTL) is not "
                "simulated"])

        data = {}
        if method in ("POST", "PUT", "PATCH") and body.strip():
            try:
                parsed = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                return errors_response(400, [
                    "failed to parse JSON input: %s" % e])
            if parsed is None:
                parsed = {}
            if not isinstance(parsed, dict):
                return errors_response(400, [
                    "failed to parse JSON input: json: cannot unmarshal %s "
                    "into Go value of type map[string]interface {}"
                    % {list: "array", str: "string", int: "number",
                       float: "number", bool: "bool"}.get(type(parsed),
                                                          "value")])
            data = parsed

        ns, rel = self.resolve_namespace(headers.get("X-Vault-Namespace"),
                                         path)
        now = self.now()

        if rel == "auth/%s/login" % self.approle_mount:
            if op != "update":
                return self.unsupported_op()
            return self.login(ns, data, now)

        token = headers.get("X-Vault-Token")
        auth = headers.get("Authorization", "")
        if not token and auth[:7].lower() == "bearer ":
            token = auth[7:].strip()
        renewing = rel == "auth/token/renew-self"
        if not token:
            self.counters["renewals_failed"] += renewing
            return self.perm_denied()
        tok = self._find_token(token)
        if tok is None or tok.state(now) != "valid":
            self.counters["renewals_failed"] += renewing
            return self.invalid_token()
        if not (tok.namespace == "" or ns == tok.namespace
                or ns.startswith(tok.namespace + "/")):
            self.counters["renewals_failed"] += renewing
            return self.perm_denied()

        if rel in ("auth/token/lookup-self", "auth/token/renew-self",
                   "auth/token/revoke-self"):
            if ns != tok.namespace:
                self.counters["renewals_failed"] += renewing
                return self.perm_denied()
            if rel == "auth/token/lookup-self":
                if op not in ("read", "update"):
                    return self.unsupported_op()
                self.counters["lookups"] += 1
                return self.lookup_self(tok, now)
            if op != "update":
                return self.unsupported_op()
            if rel == "auth/token/renew-self":
                return self.renew_self(tok, data, now)
            tok.revoked = True
            self.counters["revocations"] += 1
            return no_content()

        rel_ns = ns[len(tok.namespace):].strip("/") if tok.namespace else ns
        acl_path = (rel_ns + "/" if rel_ns else "") + rel
        mount, sub = self.find_mount(ns, rel)
        cap = {"read": "read", "update": "update", "delete": "delete",
               "list": "list", "patch": "patch"}[op]
        if op == "update" and mount is not None and \
                not self.kv_exists(mount, sub):
            cap = "create"
        pols = [self.policies[p] for p in tok.policies if p in self.policies]
        if not acl_allows(pols, acl_path, cap):
            return self.perm_denied()

        if rel == "sys" or rel.startswith("sys/") or \
                rel.startswith("auth/token/") or \
                rel.startswith("auth/%s/" % self.approle_mount):
            return self.unsupported_path()
        if mount is None:
            return errors_response(404, [
                "no handler for route %s. route entry not found."
                % json.dumps(rel)])
        return self.kv(mount, sub, op, method, query, data, headers, now)

    def resolve_namespace(self, header, path):
        """The namespace and the path relative to it.  The header and a
        leading part of the path combine, as the API docs describe."""
        h = (header or "").strip("/")
        full = (h + "/" + path) if h else path
        best = ""
        for name in self.namespaces:
            if name and (full == name or full.startswith(name + "/")) and \
                    len(name) > len(best):
                best = name
        if not best:
            return "", full
        return best, full[len(best) + 1:]

    def find_mount(self, ns, rel):
        space = self.namespaces[ns]
        for name in sorted(space.mounts, key=len, reverse=True):
            if rel == name or rel.startswith(name + "/"):
                return space.mounts[name], rel[len(name) + 1:]
        return None, None

    # -- sys ------------------------------------------------------------------

    def health(self, query):
        def code(name, default):
            try:
                return int(query.get(name, [default])[0])
            except ValueError:
                return default
        body = Struct(initialized=True, sealed=self.sealed, standby=False,
                      performance_standby=False,
                      replication_performance_mode="disabled",
                      replication_dr_mode="disabled",
                      server_time_utc=int(self.now()), version=VERSION,
                      enterprise=len(self.namespaces) > 1)
        if not self.sealed:
            body["cluster_name"] = self.cluster_name
            body["cluster_id"] = self.cluster_id
        status = code("sealedcode", 503) if self.sealed \
            else code("activecode", 200)
        return json_response(status, body)

    def seal_status(self):
        body = Struct(type="shamir", initialized=True, sealed=self.sealed,
                      t=1, n=1, progress=0, nonce="", version=VERSION,
                      build_date="2024-01-01T00:00:00Z", migration=False,
                      recovery_seal=False, storage_type="inmem",
                      unseal_recovery_enabled=False)
        if not self.sealed:
            body["cluster_name"] = self.cluster_name
            body["cluster_id"] = self.cluster_id
        return body

    # -- AppRole and tokens -----------------------------------------------

    def login(self, ns, data, now):
        c = self.counters
        if self._take_fault("deny_login", "POST", "/v1/"):
            c["logins_failed"] += 1
            return errors_response(400, ["invalid role or secret ID"])
        role_id = data.get("role_id")
        role_id = role_id.strip() if isinstance(role_id, str) else ""
        if not role_id:
            c["logins_failed"] += 1
            return errors_response(400, ["missing role_id"])
        role = self.roles.get((ns, role_id))
        if role is None:
            c["logins_failed"] += 1
            return errors_response(400, ["invalid role or secret ID"])
        secret_id = data.get("secret_id")
        secret_id = secret_id.strip() if isinstance(secret_id, str) else ""
        if not secret_id:
            c["logins_failed"] += 1
            return errors_response(400, ["missing secret_id"])
        if secret_id not in role.secret_ids:
            c["logins_failed"] += 1
            return errors_response(400, ["invalid role or secret ID"])
        warnings = self.ignored_params(data, ("role_id", "secret_id"))
        ttl, max_ttl = role.effective_ttl(), role.effective_max_ttl()
        if ttl > max_ttl:
            warnings.append("TTL of %s exceeded the effective max_ttl of %s; "
                            "TTL value is capped accordingly"
                            % (json.dumps(human_duration(ttl)),
                               json.dumps(human_duration(max_ttl))))
            ttl = max_ttl
        tok = self._new_token(role, ns, ttl, now)
        c["logins_ok"] += 1
        return json_response(200, self.envelope(
            auth=self.auth_block(tok, ttl), warnings=warnings,
            mount_type="approle"))

    def _role_for(self, tok):
        return self.roles.get((tok.namespace, tok.role_id))

    def renew_self(self, tok, data, now):
        c = self.counters
        if not tok.renewable:
            c["renewals_failed"] += 1
            return errors_response(400, ["lease is not renewable"])
        try:
            inc = parse_duration(data.get("increment"))
        except ValueError as e:
            c["renewals_failed"] += 1
            return errors_response(400, [str(e)])
        role = self._role_for(tok)
        if role is not None:
            tok.ttl = role.effective_ttl()
            tok.max_ttl = role.effective_max_ttl()
        ttl = inc if inc > 0 else tok.ttl
        max_valid = tok.issue + tok.max_ttl - now
        if max_valid <= 0:
            c["renewals_failed"] += 1
            return errors_response(400, ["past the max TTL, cannot renew"])
        warnings = self.ignored_params(data, ("increment",))
        if ttl > max_valid:
            warnings.append("TTL of %s exceeded the effective max_ttl of %s; "
                            "TTL value is capped accordingly"
                            % (json.dumps(human_duration(ttl)),
                               json.dumps(human_duration(max_valid))))
            ttl = max_valid
        tok.expire = now + ttl
        tok.last_renewal = now
        tok.renewals += 1
        c["renewals_ok"] += 1
        return json_response(200, self.envelope(
            auth=self.auth_block(tok, int(ttl)), warnings=warnings,
            mount_type="token"))

    def lookup_self(self, tok, now):
        d = {"accessor": tok.accessor, "creation_time": int(tok.issue),
             "creation_ttl": tok.creation_ttl, "display_name": "approle",
             "entity_id": tok.entity_id, "expire_time": rfc3339(tok.expire),
             "explicit_max_ttl": 0, "id": tok.id,
             "issue_time": rfc3339(tok.issue), "meta": dict(tok.meta),
             "num_uses": 0, "orphan": True,
             "path": "auth/%s/login" % self.approle_mount,
             "policies": list(tok.policies), "renewable": tok.renewable,
             "ttl": max(0, int(tok.expire - now)), "type": "service"}
        if tok.namespace:
            d["namespace_path"] = tok.namespace + "/"
        if tok.last_renewal is not None:
            d["last_renewal"] = rfc3339(tok.last_renewal)
            d["last_renewal_time"] = int(tok.last_renewal)
        return json_response(200, self.envelope(data=d, mount_type="token"))

    # -- KV version 2 ---------------------------------------------------------

    @staticmethod
    def kv_exists(mount, sub):
        for prefix in ("data/", "metadata/"):
            if sub.startswith(prefix):
                return sub[len(prefix):] in mount.secrets
        return True

    def _max_versions(self, mount, secret):
        for n in (secret.max_versions, mount.max_versions, self.max_versions):
            if n and n > 0:
                return n
        return DEFAULT_MAX_VERSIONS

    def _invalid_kv_path(self, op):
        sub = {"update": "put", "read": "get", "list": "list",
               "delete": "delete", "patch": "patch"}.get(op, "")
        return json_response(404, self.envelope(warnings=[
            "Invalid path for a versioned K/V secrets engine. See the API "
            "docs for the appropriate API endpoints to use. If using the "
            "Vault CLI, use 'vault kv %s' for this operation." % sub]))

    def kv(self, mount, sub, op, method, query, data, headers, now):
        if sub == "config":
            if op == "read":
                return json_response(200, self.envelope(data={
                    "cas_required": mount.cas_required,
                    "delete_version_after": "0s",
                    "max_versions": mount.max_versions}, mount_type="kv"))
            if op == "update":
                if "max_versions" in data:
                    mount.max_versions = int(data["max_versions"])
                if "cas_required" in data:
                    mount.cas_required = bool(data["cas_required"])
                return no_content()
            return self.unsupported_op()
        m = re.fullmatch(r"data/(.*[^/])", sub, re.S)
        if m:
            return self.kv_data(mount, m.group(1), op, query, data, headers,
                                now)
        if sub.startswith("metadata/"):
            return self.kv_metadata(mount, sub[len("metadata/"):], op, data,
                                    now)
        m = re.fullmatch(r"(delete|undelete|destroy)/(.*[^/])", sub, re.S)
        if m:
            if op != "update":
                return self.unsupported_op()
            return self.kv_versions(mount, m.group(1), m.group(2), data, now)
        return self._invalid_kv_path(op)

    def _check_cas(self, mount, secret, data):
        options = data.get("options")
        if options is not None and not isinstance(options, dict):
            return errors_response(400, [
                "error converting input for field \"options\": expected a "
                "map"])
        options = options or {}
        current = secret.current if secret else 0
        if "cas" in options:
            try:
                cas = int(options["cas"])
            except (TypeError, ValueError):
                return errors_response(400, [
                    "error parsing check-and-set parameter"])
            if cas != current:
                return errors_response(400, [
                    "check-and-set parameter did not match the current "
                    "version"])
        elif mount.cas_required or (secret and secret.cas_required):
            return errors_response(400, [
                "check-and-set parameter required for this call"])
        return None

    def _add_version(self, mount, path, secret, value, now):
        if secret is None:
            secret = Secret(now)
            mount.secrets[path] = secret
        secret.current += 1
        secret.versions[secret.current] = {
            "data": copy.deepcopy(value), "created": now, "deletion": None,
            "destroyed": False}
        secret.updated = now
        if secret.oldest == 0:
            secret.oldest = 1
        keep = self._max_versions(mount, secret)
        while len(secret.versions) > keep:
            del secret.versions[min(secret.versions)]
        secret.oldest = min(secret.versions)
        return secret

    def _write_response(self, secret, warnings):
        vm = secret.version_meta(secret.current)
        return json_response(200, self.envelope(data={
            "created_time": vm["created_time"],
            "custom_metadata": copy.deepcopy(secret.custom_metadata),
            "deletion_time": vm["deletion_time"],
            "destroyed": vm["destroyed"], "version": secret.current},
            warnings=warnings, mount_type="kv"))

    def kv_data(self, mount, path, op, query, data, headers, now):
        secret = mount.secrets.get(path)
        if op == "read":
            self.counters["kv_reads"] += 1
            if secret is None:
                return errors_response(404, [])
            ver = secret.current
            vq = query.get("version", [""])[0]
            if vq != "":
                try:
                    v = int(vq)
                except ValueError:
                    return errors_response(400, [
                        "error converting input %s for field \"version\": "
                        "strconv.ParseInt: parsing %s: invalid syntax"
                        % (vq, json.dumps(vq))])
                if v > 0:
                    ver = v
            v = secret.versions.get(ver)
            if v is None:
                return errors_response(404, [])
            body = {"data": None, "metadata": dict(
                secret.version_meta(ver), version=ver,
                custom_metadata=copy.deepcopy(secret.custom_metadata))}
            if (v["deletion"] is not None and v["deletion"] <= now) or \
                    v["destroyed"]:
                return json_response(404, self.envelope(data=body,
                                                        mount_type="kv"))
            body["data"] = copy.deepcopy(v["data"])
            return json_response(200, self.envelope(data=body,
                                                    mount_type="kv"))
        if op == "update":
            if data.get("data") is None:
                return errors_response(400, ["no data provided"])
            if not isinstance(data["data"], dict):
                return errors_response(400, [
                    "error converting input for field \"data\": expected a "
                    "map"])
            bad = self._check_cas(mount, secret, data)
            if bad:
                return bad
            secret = self._add_version(mount, path, secret, data["data"], now)
            self.counters["kv_writes"] += 1
            return self._write_response(
                secret, self.ignored_params(data, ("data", "options",
                                                   "version")))
        if op == "delete":
            self.counters["kv_deletes"] += 1
            if secret is not None:
                v = secret.versions.get(secret.current)
                if v is not None and v["deletion"] is None and \
                        not v["destroyed"]:
                    v["deletion"] = now
                    secret.updated = now
            return no_content()
        if op == "patch":
            ctype = headers.get("Content-Type", "")
            if ctype.split(";")[0].strip() != "application/merge-patch+json":
                return errors_response(415, [
                    "PATCH requires Content-Type of "
                    "application/merge-patch+json, provided %s"
                    % json.dumps(ctype)])
            if data.get("data") is None:
                return errors_response(400, ["no data provided"])
            if secret is None or secret.current not in secret.versions:
                return errors_response(404, [])
            v = secret.versions[secret.current]
            if (v["deletion"] is not None and v["deletion"] <= now) or \
                    v["destroyed"]:
                return json_response(404, self.envelope(data=dict(
                    secret.version_meta(secret.current),
                    version=secret.current,
                    custom_metadata=secret.custom_metadata),
                    mount_type="kv"))
            bad = self._check_cas(mount, secret, data)
            if bad:
                return bad
            merged = _merge_patch(copy.deepcopy(v["data"]), data["data"])
            secret = self._add_version(mount, path, secret, merged, now)
            self.counters["kv_writes"] += 1
            return self._write_response(secret, [])
        return self.unsupported_op()

    def kv_metadata(self, mount, path, op, data, now):
        if op == "list":
            self.counters["kv_lists"] += 1
            prefix = path
            keys = set()
            for key in mount.secrets:
                if key.startswith(prefix):
                    rest = key[len(prefix):]
                    if "/" in rest:
                        keys.add(rest.split("/", 1)[0] + "/")
                    elif rest:
                        keys.add(rest)
            if not keys:
                return errors_response(404, [])
            return json_response(200, self.envelope(
                data={"keys": sorted(keys)}, mount_type="kv"))
        secret = mount.secrets.get(path)
        if op == "read":
            if secret is None:
                return errors_response(404, [])
            return json_response(200, self.envelope(data={
                "cas_required": secret.cas_required,
                "created_time": rfc3339(secret.created),
                "current_version": secret.current,
                "custom_metadata": copy.deepcopy(secret.custom_metadata),
                "delete_version_after": "0s",
                "max_versions": secret.max_versions,
                "oldest_version": secret.oldest,
                "updated_time": rfc3339(secret.updated),
                "versions": {str(n): secret.version_meta(n)
                             for n in sorted(secret.versions)}},
                mount_type="kv"))
        if op == "delete":
            self.counters["kv_metadata_deletes"] += 1
            mount.secrets.pop(path, None)
            return no_content()
        if op == "update":
            if not path or path.endswith("/"):
                return self._invalid_kv_path(op)
            if secret is None:
                secret = Secret(now)
                mount.secrets[path] = secret
            if "max_versions" in data:
                secret.max_versions = int(data["max_versions"])
            if "cas_required" in data:
                secret.cas_required = bool(data["cas_required"])
            if "custom_metadata" in data:
                secret.custom_metadata = data["custom_metadata"]
            secret.updated = now
            return no_content()
        return self.unsupported_op()

    def kv_versions(self, mount, what, path, data, now):
        versions = data.get("versions")
        if not versions or not isinstance(versions, list):
            return errors_response(400, ["no version number provided"])
        secret = mount.secrets.get(path)
        if secret is None:
            return no_content()
        for n in versions:
            try:
                v = secret.versions.get(int(n))
            except (TypeError, ValueError):
                return errors_response(400, ["invalid version %r" % (n,)])
            if v is None or v["destroyed"]:
                continue
            if what == "delete" and v["deletion"] is None:
                v["deletion"] = now
            elif what == "undelete":
                v["deletion"] = None
            elif what == "destroy":
                v["destroyed"] = True
                v["data"] = None
        secret.updated = now
        return no_content()

    # -- admin API --------------------------------------------------------

    def state(self):
        now = self.now()
        return {"sealed": self.sealed, "clock_offset": self.clock_offset,
                "error_style": self.error_style,
                "approle_mount": self.approle_mount,
                "namespaces": {n: {"id": ns.id, "mounts": sorted(ns.mounts)}
                               for n, ns in self.namespaces.items()},
                "roles": [r.to_json() for r in self.roles.values()],
                "policies": {n: p.doc for n, p in self.policies.items()},
                "faults": copy.deepcopy(self.faults),
                "counters": copy.deepcopy(self.counters),
                "tokens": [t.to_json(now) for t in self.tokens.values()]}

    def dump_secrets(self):
        return {ns: {m: {p: s.dump() for p, s in sorted(mount.secrets.items())}
                     for m, mount in space.mounts.items()}
                for ns, space in self.namespaces.items()}

    def admin(self, method, path, query, body):
        try:
            data = json.loads(body.decode("utf-8")) if body.strip() else {}
        except ValueError as e:
            return json_response(400, {"error": "bad JSON: %s" % e})
        if not isinstance(data, dict):
            return json_response(400, {"error": "expected a JSON object"})
        try:
            with self.lock:
                out = self._admin(method, path, parse_qs(query), data)
        except SimError as e:
            return json_response(400, {"error": str(e)})
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            return json_response(400, {"error": "%s: %s"
                                       % (type(e).__name__, e)})
        if out is None:
            return json_response(404, {"error": "no admin route %s %s"
                                       % (method, path)})
        return json_response(200, out)

    def _admin(self, method, path, query, data):
        p = path[len("/__sim"):].strip("/")
        if method == "GET" and p == "state":
            return self.state()
        if p == "counters" and method == "GET":
            return copy.deepcopy(self.counters)
        if p == "counters/reset" and method == "POST":
            self.reset_counters()
            return {"ok": True}
        if p == "log":
            if method == "GET":
                since = int(query.get("since", ["0"])[0])
                return {"entries": [dict(e) for e in self.log
                                    if e["seq"] > since],
                        "last_seq": self.log_seq}
            if method == "DELETE":
                self.log.clear()
                return {"ok": True}
        if p == "secrets":
            if method == "GET":
                return self.dump_secrets()
            if method == "POST":
                ns = (data.get("namespace") or "").strip("/")
                if ns not in self.namespaces:
                    raise SimError("unknown namespace %r" % ns)
                mount = self.namespaces[ns].mounts.get(
                    (data.get("mount") or "").strip("/"))
                if mount is None:
                    raise SimError("unknown mount %r" % data.get("mount"))
                if not isinstance(data.get("data"), dict) or \
                        not data.get("path"):
                    raise SimError("path and data (an object) required")
                s = self._add_version(mount, data["path"],
                                      mount.secrets.get(data["path"]),
                                      data["data"], self.now())
                return {"version": s.current}
        if method == "POST" and p == "seal":
            self.sealed = True
            return {"sealed": True}
        if method == "POST" and p == "unseal":
            self.sealed = False
            return {"sealed": False}
        if p == "faults":
            if method == "GET":
                return copy.deepcopy(self.faults)
            if method == "POST":
                self.set_faults(data)
                return copy.deepcopy(self.faults)
            if method == "DELETE":
                self.clear_faults()
                return {}
        if p.startswith("faults/") and method == "DELETE":
            self.clear_faults(p[len("faults/"):])
            return copy.deepcopy(self.faults)
        if p == "tokens" and method == "GET":
            now = self.now()
            return {"tokens": [t.to_json(now) for t in self.tokens.values()]}
        if p == "tokens/expire" and method == "POST":
            now = self.now()
            n = 0
            for t in self.tokens.values():
                if data.get("accessor") and t.accessor != data["accessor"]:
                    continue
                if data.get("token") and t.id != data["token"]:
                    continue
                if t.expire > now:
                    t.expire = now - 0.001
                    n += 1
            return {"expired": n}
        if p == "clock" and method == "POST":
            if "offset" in data:
                self.clock_offset = float(data["offset"])
            self.clock_offset += float(data.get("advance", 0))
            return {"offset": self.clock_offset, "now": self.now()}
        if p == "roles" and method == "POST":
            role = Role.from_json(data)
            self._add_role(role)
            return role.to_json()
        if p.startswith("roles/") and method == "DELETE":
            ns = (query.get("namespace", [""])[0]).strip("/")
            gone = self.roles.pop((ns, p[len("roles/"):]), None)
            return {"deleted": gone is not None}
        if p.startswith("policies/"):
            name = p[len("policies/"):]
            if name in ("default", "sim-all"):
                raise SimError("policy %s is built in" % name)
            if method in ("PUT", "POST"):
                self.policies[name] = Policy(name, data)
                return self.policies[name].doc
            if method == "DELETE":
                return {"deleted": self.policies.pop(name, None) is not None}
        if p == "namespaces" and method == "POST":
            ns = self._add_namespace(data.get("name"))
            return {"name": ns.name, "id": ns.id}
        if p == "mounts" and method == "POST":
            self._add_mount(data.get("mount"), data.get("namespace"))
            return {"ok": True}
        if p == "mounts" and method == "DELETE":
            ns = (data.get("namespace") or "").strip("/")
            space = self.namespaces.get(ns)
            gone = space.mounts.pop(_mount_name(data.get("mount")), None) \
                if space else None
            return {"deleted": gone is not None}
        if p == "config" and method == "POST":
            style = data.get("error_style", self.error_style)
            if style not in ("plain", "multierror"):
                raise SimError("error_style is plain or multierror")
            self.error_style = style
            return {"error_style": style}
        if p == "reset" and method == "POST":
            self.apply_config(keep_secrets=bool(data.get("keep_secrets")))
            return {"ok": True}
        return None


def _merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = _merge_patch(target.get(k), v)
    return target


# ---------------------------------------------------------------------------
# HTTP.

class BodyTooLarge(Exception):
    pass


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "vaultsim"
    sys_version = ""
    timeout = 120           # idle keep-alive connections are closed after this

    def setup(self):
        super().setup()
        # A kept-alive client waits for each answer before it sends the next
        # request.  With Nagle on, a small segment is held while earlier
        # data is unacknowledged, and a client with nothing to send delays
        # its ACK by up to 40 ms: a response written in two pieces (or whose
        # last segment is short) would cost every request after the first
        # that much.  _send also writes each response at once.  An
        # SSLSocket takes setsockopt like the plain socket under it.
        try:
            self.connection.setsockopt(socket.IPPROTO_TCP,
                                       socket.TCP_NODELAY, 1)
        except OSError:
            pass
        sim = self.server.sim
        with sim.lock:
            sim.conn_seq += 1
            self.conn_id = sim.conn_seq

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.sim.conn_closed(self.conn_id)

    def log_message(self, fmt, *args):
        if self.server.sim.verbose:
            sys.stderr.write("vaultsim: %s %s\n" % (self.address_string(),
                                                    fmt % args))

    def __getattr__(self, name):
        # Every method (LIST, PATCH, and unknown ones, which get 405) comes
        # through _handle.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n",
                                                              b""):
                        pass
                    break
                total += size
                if total > MAX_REQUEST_SIZE:
                    raise BodyTooLarge()
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
            return b"".join(chunks)
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0:
            raise ValueError("negative Content-Length")
        if n > MAX_REQUEST_SIZE:
            raise BodyTooLarge()
        return self.rfile.read(n) if n else b""

    def _send(self, resp, head=False):
        self.send_response(resp.status)
        for k, v in resp.headers:
            self.send_header(k, v)
        if resp.status != 204 and resp.status >= 200:
            self.send_header("Content-Length", str(len(resp.body)))
        if resp.close:
            self.send_header("Connection", "close")
            self.close_connection = True
        # end_headers() then wfile.write(body) would be two writes (two
        # segments, or two TLS records); append the body to the header
        # buffer that end_headers() flushes, so the response leaves in one.
        body = resp.body if not head and resp.status != 204 else b""
        if body and self.request_version != "HTTP/0.9":
            self._headers_buffer.append(b"\r\n")
            self._headers_buffer.append(body)
            self.flush_headers()
            return
        self.end_headers()
        if body:
            self.wfile.write(body)

    def _drop(self, mode):
        self.close_connection = True
        if mode == "reset":
            try:
                self.connection.setsockopt(socket.SOL_SOCKET,
                                           socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
                # Close without a FIN first, so the peer sees a reset.
                self.server.reset_fds.add(self.connection.fileno())
            except OSError:
                pass

    def _handle(self):
        sim = self.server.sim
        method = self.command
        try:
            body = self._read_body()
        except BodyTooLarge:
            self._send(Response(413, go_json(
                {"errors": ["http: request body too large"]}), close=True))
            return
        except ValueError:
            self._send(Response(400, go_json(
                {"errors": ["malformed request body"]}), close=True))
            return
        url = urlsplit(self.path)
        if url.path == "/__sim" or url.path.startswith("/__sim/"):
            if self.headers.get(ADMIN_HEADER) != sim.admin_token:
                self._send(json_response(403, {
                    "error": "admin requests need the %s header"
                    % ADMIN_HEADER}))
                return
            self._send(sim.admin(method, url.path, url.query, body))
            return
        entry, faults = sim.begin(method, url.path, url.query, self.headers,
                                  self.conn_id)
        if "drop" in faults:
            sim.finish(entry, "dropped")
            self._drop(faults["drop"]["mode"])
            return
        if "delay" in faults:
            sim.sleep_delay(faults["delay"]["seconds"])
        if "fail" in faults:
            resp = sim.fail_response(faults["fail"])
        else:
            try:
                resp = sim.dispatch(method, url, self.headers, body)
            except Exception as e:          # a simulator bug: say so loudly
                traceback.print_exc()
                resp = errors_response(500, ["vaultsim internal error: %s: %s"
                                             % (type(e).__name__, e)])
        if "malformed" in faults:
            resp = sim.corrupt(resp, faults["malformed"]["kind"])
        sim.finish(entry, resp.status)
        self._send(resp, head=(method == "HEAD"))


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(self, addr, sim, tls_context=None):
        self.sim = sim
        self.tls_context = tls_context
        self.reset_fds = set()
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.tls_context is not None:
            # The handshake happens on first read, in the handler's thread,
            # so a client that stalls it does not stop other connections.
            sock = self.tls_context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def shutdown_request(self, request):
        try:
            fd = request.fileno()
        except OSError:
            fd = -1
        if fd in self.reset_fds:
            self.reset_fds.discard(fd)
            self.close_request(request)
            return
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        if self.sim.verbose:
            super().handle_error(request, client_address)


# ---------------------------------------------------------------------------
# Command line.

def build_config(args):
    c = Config()
    c.namespaces = [n.strip("/") for n in args.namespace]
    mounts = args.kv_mount or ["secret"]
    for m in mounts:
        name, _, ns = m.partition("@")
        c.mounts.append((name, ns))
    for spec in args.policy:
        if "=" not in spec:
            raise SimError("--policy wants NAME=JSON or NAME=@FILE")
        name, doc = spec.split("=", 1)
        if doc.startswith("@"):
            with open(doc[1:]) as f:
                doc = f.read()
        try:
            c.policies[name] = json.loads(doc)
        except ValueError as e:
            raise SimError("--policy %s: %s" % (name, e))
        Policy(name, c.policies[name])
    for spec in args.role:
        c.roles.append(Role.from_spec(spec).to_json())
    for f in args.fault:
        try:
            c.faults.append(json.loads(f))
        except ValueError as e:
            raise SimError("--fault: %s" % e)
    c.sealed = args.sealed
    c.approle_mount = args.approle_mount.strip("/")
    c.max_versions = args.kv_max_versions
    c.error_style = args.error_style
    return c


def main(argv=None):
    ap = argparse.ArgumentParser(description="Vault API simulator")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--admin-token")
    ap.add_argument("--namespace", action="append", default=[])
    ap.add_argument("--kv-mount", action="append", default=[])
    ap.add_argument("--role", action="append", default=[])
    ap.add_argument("--policy", action="append", default=[])
    ap.add_argument("--approle-mount", default="approle")
    ap.add_argument("--kv-max-versions", type=int,
                    default=DEFAULT_MAX_VERSIONS)
    ap.add_argument("--error-style", choices=("multierror", "plain"),
                    default="multierror")
    ap.add_argument("--fault", action="append", default=[])
    ap.add_argument("--sealed", action="store_true")
    ap.add_argument("--log-limit", type=int, default=10000)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    try:
        config = build_config(args)
        sim = Sim(config, args.admin_token or "sim-" + secrets.token_hex(16),
                  log_limit=args.log_limit, verbose=args.verbose)
    except SimError as e:
        sys.stderr.write("vaultsim: %s\n" % e)
        return 2
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
    server = Server((args.bind, args.port), sim, ctx)
    port = server.server_address[1]

    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host = args.bind if ":" not in args.bind else "[%s]" % args.bind
    sys.stdout.write(json.dumps({
        "port": port, "admin_token": sim.admin_token,
        "url": "%s://%s:%d" % ("https" if ctx else "http", host, port),
        "tls": ctx is not None}) + "\n")
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


# ---------------------------------------------------------------------------
# For Python tests: run the simulator in a subprocess.

class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body
        try:
            self.json = json.loads(body.decode("utf-8")) if body else None
        except ValueError:
            self.json = None

    @property
    def errors(self):
        return (self.json or {}).get("errors") if isinstance(
            self.json, dict) else None

    def __repr__(self):
        return "<Reply %d %r>" % (self.status, self.body[:300])


class SimProcess:
    """Start vaultsim.py; use as a context manager or call start()/stop()."""

    def __init__(self, *args, python="/usr/bin/python3", cafile=None,
                 host=None, stderr=None, start_timeout=15):
        self.args = [str(a) for a in args]
        self.python = python if os.path.exists(python) else sys.executable
        self.cafile = cafile
        self.host = host
        self.stderr = stderr
        self.start_timeout = start_timeout
        self.proc = None

    def start(self):
        cmd = [self.python, os.path.abspath(__file__), "--port", "0"] + \
            self.args
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=self.stderr)
        deadline = time.monotonic() + self.start_timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("vaultsim did not start: %r" % line)
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if r:
                ch = os.read(self.proc.stdout.fileno(), 1)
                if not ch:
                    continue
                line += ch
        info = json.loads(line.decode())
        self.port = info["port"]
        self.admin_token = info["admin_token"]
        self.tls = info["tls"]
        self.host = self.host or ("localhost" if self.tls else "127.0.0.1")
        self.url = "%s://%s:%d" % ("https" if self.tls else "http",
                                   self.host, self.port)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def connection(self, timeout=10, context=None):
        if self.tls:
            if context is None:
                context = ssl.create_default_context(cafile=self.cafile)
            return http.client.HTTPSConnection(self.host, self.port,
                                               timeout=timeout,
                                               context=context)
        return http.client.HTTPConnection(self.host, self.port,
                                          timeout=timeout)

    def request(self, method, path, body=None, token=None, namespace=None,
                headers=None, conn=None, timeout=10):
        """One request; path like "/v1/sys/health".  body: dict (sent as
        JSON), bytes or str.  A given conn is reused and left open."""
        h = dict(headers or {})
        if token is not None:
            h["X-Vault-Token"] = token
        if namespace is not None:
            h["X-Vault-Namespace"] = namespace
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
        elif isinstance(body, str):
            body = body.encode()
        own = conn is None
        c = conn or self.connection(timeout=timeout)
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()},
                         data)
        finally:
            if own:
                c.close()

    def admin(self, method, path, body=None, expect=200):
        r = self.request(method, "/__sim/" + path.lstrip("/"), body=body,
                         headers={ADMIN_HEADER: self.admin_token})
        if expect is not None and r.status != expect:
            raise AssertionError("admin %s %s: %r" % (method, path, r))
        return r.json

    def login(self, role_id, secret_id, namespace=None):
        """AppRole login; returns the Reply."""
        return self.request("POST", "/v1/auth/approle/login",
                            {"role_id": role_id, "secret_id": secret_id},
                            namespace=namespace)


if __name__ == "__main__":
    sys.exit(main())

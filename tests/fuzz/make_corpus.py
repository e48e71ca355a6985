#!/usr/bin/python3
"""
make_corpus: write the seed corpora of the fuzz targets into
tests/fuzz/corpus/<target>/ (committed; rerun after changing this file).

  fuzz_proto     what a client sends on one connection: one or more
                 msgpack-rpc requests back to back.  A valid request for
                 every method in proto/methods.def, then sequences that go
                 somewhere (create a type, set a value, substitute it), the
                 Vault methods (which wait on the fuzz target's always
                 failing HTTP client), and malformed envelopes, oversized
                 and broken msgpack.  The broker is reset between inputs,
                 so each seed sets up what it needs itself.
  fuzz_template  [flags][template length, 2 bytes big-endian][template]
                 then values as [len][bytes] (len 0xff: a lookup that
                 fails): templates with every filter and chain, every
                 malformed placeholder form of template.h in both the
                 <<...>> and the {{...}} form, the platform's own {{ }}
                 text, each substitute.syntax (flags bits 1-2), URL
                 authority cases, and values with CR/LF/NUL, bad UTF-8,
                 U+2028.
  fuzz_token     a JWS compact token (and base64url text): RS256 tokens
                 signed with FUZZ_TOKEN_KEY (the private half of the key
                 in fuzz_token.c, a test key used nowhere else), with time
                 claims on both sides of the target's fixed now, and broken
                 variants: other algorithms, crit, two and four parts,
                 padding, whitespace, tampering, non-object JSON.

  fuzz_claims    [claims JSON] NUL [spec JSON]: every JSON pointer form
                 (escapes, array indexes, "/" alone, bad escapes), the
                 login attributes with ADMINISTRATORS in every spelling,
                 missing and null roles, additional names, and specs that
                 must be refused (unknown keys, limits, wrong types).
  fuzz_scrub     [N][N x (flags, len, bytes)][C][C chunk sizes][text]:
                 values and rendered patterns (flags bit 0: a value),
                 with the text holding them raw, urlquery, json, base64
                 and as HTTP Basic pairs; nested and overlapping patterns,
                 short values, bad UTF-8, and chunkings that split matches.

It also writes the dictionaries tests/fuzz/<target>.dict (libFuzzer's
-dict=): method names and parameter names as msgpack strings, enum values,
the placeholder and filter syntax, the pieces of a JWS token, and the
attribute names and pointer escapes.

Usage: tests/fuzz/make_corpus.py [OUTDIR]   (default: next to this file)
"""

import base64
import json

import hashlib
import json
import os
import re
import shutil
import sys

import msgpack

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(HERE))

USER = "886313e1-3b8a-5372-9b90-0c9aee199e5d"
USER2 = "a8098c1a-f86e-11da-bd1a-00112444be1e"


def req(msgid, method, params=None, raw_params=None):
    p = raw_params if raw_params is not None else [params or {}]
    return msgpack.packb([0, msgid, method, p], use_bin_type=True)


def seq(*calls):
    """Requests back to back, msgids 1, 2, ..."""
    return b"".join(req(i + 1, m, p) for i, (m, p) in enumerate(calls))


# Test-only RSA keys for the key and token seeds (made with
# "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048"; they
# protect nothing).
FUZZ_KEYPAIR_PEM = """-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCTM8+QQRbP97SI
omjantL1BWGY5r0eQs+/cp9fC6mTrClWk83QgpjTqsXaM74dbnvAxHUtMjHsF99w
xGz3V19eH3UdGCdoITJj1Gu662IXKIXyCxyeBcV4j3FysqSaEqFmsCetmlVnpDRS
gSTBHzTI4x5lOVN7uAP7Wx+F43z/vSMCIMx88t4z2SjoSWMIDkwzInOkeUjvL8ft
IlwnnBhNHZpK2J2ch54EIbKM7KvrSCxpnQJX2n5g7OeP+8vRdH3w461tcQeNjMyJ
Pq6Izrh+YYHrKGogddboZ3Q+w5JIEog5KIpBNRonYn8LtQ3TAHxumnLAd/SULduv
Y1Z0hyeHAgMBAAECggEAFB0hQInUTyh+r6jZgP3wv3AzzMvCja79aiCEbF1Ql5AP
uffKSLJ/pXSRQmaNlMHzAP0XMczJC4SbkHIWnZl/u4G64/XX9J+Mnh15dvoQ1i9A
Vjl0eJc7S2T2UIDegvsGuNxbH5qWDupeB+QDnKvh740xKw2xPZeAW8kwvn++JceC
OX+KRu/arLpd7A5lTHxamT4xOVeUnXvtDm922WoYd/hN1fYmoC18jJ97YrOT2aPt
gdnByZM2XrPmmCjp5vPPyGkI+OaweMkVXp4XpDaVLlbwlYj+sEZK5gBGphBWNPBd
2F+5WwXhGH84cubRADkHBsH6XEi6rxRiRZCtM66yYQKBgQDJi4RIjrAs+3sBzBUt
apfsF+IFMk1WVnN33DDVyzvXbWj6IRVuz5tNhXQRMmZqNehQRYFMj+XjISj4sOsc
Dxac9YfJf1f3DUef7QpHUNsyoIrqNwQHhr/lO5c620mE6bJ6NYyc7jLhRubj7ktE
gymbLH4GJTns5fZTVyPZG03DtwKBgQC6+YUNMZR96vO0D/zwm8kiK0uRMWXz4Zbg
XW2r9Ot6MI6jeL/vhvdxVq8AkqvOAlaJRcbQ31cIzGEDI1iNr9mrdb8p0/qNEkAG
Ky+B4cD/bB079AS0Na8bUYdkvvTxDyv5hjy10JYZ70DjlJYg0RUFkgM8QfYa5Y9m
cQjk96/asQKBgDmLdEGjO/ob84sX0hQdkzL9vrLtIde850sZu3fPh06DFq4UNCJn
dFg1+mXOlh9NNP92WOybSXAIT8JyAS8Jv9Mg55xIl70aNZEcBQtHss5JuGAXRTdA
6hlxYkSTx/IDJ8ps77D+8dgQfmwl5aeyK3b6xSDMEDXrkuFIyBt9CD8RAoGAX3l0
aGVN1vJ3mRWk6lQSY6FKCAz6a4thGJZ8nxcEezN6Up0hHTWE+tnxqNA8bIijGZuI
xzWUYsjCLPEKkecetj/86mX1Bb4w9TVuH9tgSs0xLGERWdgj30ZFZbtgpgtCQDs8
mva0/u896jgAZSd+nYaOomFoQxm/nObRTOHxaTECgYBxGzbFpUsqdMQYrjv4oGUT
t7CjiFBWOAKTUxBqAXid1wLvHX9N1PEjZfYnYoav/TH2b3YCVhX0rOoUiKEwDrBb
iC8OgTzsbTSJeHi1AL4OF75FkA65Ipm8PG/6eL1E2xCFnMTVg86yfFaY2wGu9j01
0879PfqhrxQjMcW3t3PsvA==
-----END PRIVATE KEY-----
"""
FUZZ_PEER_PEM = """-----BEGIN PRIVATE KEY-----
MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDzIP+u3Bh3aN0y
HkuKn/eLbwmcMvniBY0o+CbOimqhAEGEmGFmgBTFQtJZ7Ww1AMdfORPtEljqzrBx
hY7JY8l0bqSjxqfx8/AUsiGcV9Mq+2AlvXCtHxVQjzUIyKensH1CMBBpigRXbh8y
NvwwoK24gR7M31UmhgtmFhIn7nGp1qlItVjijsScBUuLSRZx3ltSPR/uujbJFhv7
y6To/fLC2Jo3rwea8yYENrumtcgkOKp6CqSaH5j+8kI9juqw7I3DBGMIDyQt9n5Y
EH4RfzGyvkifgEppwZM2xUmHQ3xzW+2o+jHwBJRuaTx80ZSWRBoAoXhF9DuTg794
Nj9r7ysBAgMBAAECggEAKMfmcz1aQj896P/xYld6NXJizYc0aF/PgWl8UuUfRRGu
q6/GmKOPuFXAxFJBdfODPZrsl3WeIgaYzHXfUTLycdv0ND9oYLpu0P3fCuMlWb6P
7kykF3nRALIArpA/pO5C2GUI/7bliwe+5lSYQQzWjs3jrXAhj4Ro6Y72rSl++cJi
6pGumcEXAEnsFTYJpl9K929lVIegPLQTtXqDYVMAjc1wCnmLE53cHaiY7LI1Sw/E
SkKlOV49loiuy1xXWaQH0QC44YRSt+KU2zf3B4csd/W4RwH2ZqaDXk1ec0AOl3Xk
zCc540Fq/Yc+Y0kMPWb10yKx/r9gT785O6/YoGW7ZQKBgQD/77w92KuFzBH15nkK
MTfEo0agsJn2ZdtqN2UIEBqAfoxI/GQ3DbBwQ/2GE1ft76xj8OTqsKcK+Ps8jPjm
SMqQewwzSKML/959kWpWiKxb2ldbJICX0VA6guosUOECiGvwHNC11rQ78wfjg5QY
sg2oG51GsXhwwfn5wOhbiI5qhQKBgQDzMHMUK41OcQG/PY/r600gGeA1wkZzCwwn
vMrHKlpXNGvyN+JoPaPfwZ2kmzqkG0pnIHOVngG4+kMeuTSLvu+fxF+cj8Cr2Esj
VZVx/hAK1BJo4m7cDSugm9oeVVQa+MnTr6QRANY3nLG49GjOFQIYBg/LPey+bqUA
m5torUztTQKBgCgDTQTGSRqj6vLs02OaikN9217n/UoeZo1Wl78I9Xu9TSVkAC7z
PvBuUMaTY53ZaLQ/RyrB73uxrWWsDIXEP5cTBbdG1ebcW+Z5w4w/1eKOYjXnoQsb
OFXNfdrr0iHZPjbN6ntjU85DkqopOhAaVjRADPiuakwGp5Q6aplU4h8ZAoGBAMKX
/S2hn+Opp4U4pKZZ1ZAfRHqf5zF9II/XkMcHy9xF1S6vqxpQYIXWbuddUvIn6ERX
AkYxdh1nHDhEaJh+A05rmzozCTA41f8DJ59cdcfEZKrKrXyliUhuDX4CN1eRxiX+
QKFecwty9f8Si56DzvYcO50dAwhqjtvKp/N94LVtAoGBAMxw4asse2JtssXPpo5j
HB3fEKAmdYXpnxwVHcGzt58AtQ/yWgHQQ13RzfDFdi1CKSRXx3GXIpfJDnacLZwC
FuRpo6AQunRB7z1INx6xVDzPTRKtcktpQEOQ9SSsb8dzeyc8FbGS267VcX9FyjK8
Vp2/Y8BBIxLbnebjUY4Lrpkw
-----END PRIVATE KEY-----
"""
FUZZ_PEER_PUBLIC_PEM = """-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA8yD/rtwYd2jdMh5Lip/3
i28JnDL54gWNKPgmzopqoQBBhJhhZoAUxULSWe1sNQDHXzkT7RJY6s6wcYWOyWPJ
dG6ko8an8fPwFLIhnFfTKvtgJb1wrR8VUI81CMinp7B9QjAQaYoEV24fMjb8MKCt
uIEezN9VJoYLZhYSJ+5xqdapSLVY4o7EnAVLi0kWcd5bUj0f7ro2yRYb+8uk6P3y
wtiaN68HmvMmBDa7prXIJDiqegqkmh+Y/vJCPY7qsOyNwwRjCA8kLfZ+WBB+EX8x
sr5In4BKacGTNsVJh0N8c1vtqPox8ASUbmk8fNGUlkQaAKF4RfQ7k4O/eDY/a+8r
AQIDAQAB
-----END PUBLIC KEY-----
"""


def fuzz_login_token():
    """An RS256 JWT signed by the peer's key (deterministic: PKCS#1 v1.5
    signatures are), with nested claims for the attribute paths."""
    import jwt
    return jwt.encode({"sub": "u-1", "groups": ["analysts"],
                       "profile": {"id": 42, "a/b": "x", "m~n": "y"},
                       "upn": "u@example.com"},
                      FUZZ_PEER_PEM, algorithm="RS256")

def methods():
    """Method names from proto/methods.def."""
    path = os.path.join(SRC, "proto", "methods.def")
    with open(path) as f:
        return re.findall(r'^CB_METHODDEF\(\w+,\s*"([^"]+)"', f.read(), re.M)


def type_create(ident, storage="db", dest=None, **kw):
    p = {"ident": ident, "name": ident.upper(), "storage": storage}
    if dest is not None:
        p["destinations"] = dest
    p.update(kw)
    return ("type.create", p)


def cred_set(t, value, user=USER):
    return ("cred.set", {"type": t, "user": user, "value": value})


def substitute(component, request):
    return ("substitute", {"component": component, "request": request})


def action(creds, **kw):
    c = {"kind": "action", "initiator": USER, "credentials": creds}
    c.update(kw)
    return c


def proto_seeds():
    s = {}
    # Every method once, with empty params (most answer bad_request).
    for m in methods():
        s["method-" + m] = req(1, m, {})
    s["hello"] = req(7, "hello", {})
    s["health"] = req(1, "health", {})
    s["types-crud"] = seq(
        type_create("gh", description="GitHub token"),
        ("type.get", {"type": "gh"}),
        ("type.list", {}),
        ("type.update", {"type": "gh", "name": "GH", "description": "",
                         "destinations": ["https://api.github.com"]}),
        ("type.update", {"type": "gh", "storage": "vault"}),
        ("type.delete", {"type": "gh"}),
        ("type.get", {"type": "gh"}))
    s["types-conflict"] = seq(
        type_create("aws"), type_create("aws"),
        cred_set("aws", "v1"),
        ("type.delete", {"type": "aws"}),
        ("type.clear", {"type": "aws"}),
        ("type.delete", {"type": "aws", "force": True}))
    s["types-bad"] = seq(
        type_create("Bad-Ident"), type_create("x" * 70),
        type_create("ok", storage="s3"),
        type_create("d", dest=["ftp://x", "https://*.example.com:8443",
                               "https://a.example.com:99999"]),
        ("type.get", {"type": "00000000-0000-0000-0000-000000000000"}),
        ("type.update", {"type": "nope", "name": 5}))
    s["types-kept-uuid"] = seq(
        type_create("Corp.gitlab-token",
                    uuid="0f8fad5b-d9cb-469f-a165-70867728950e"),
        type_create("other", uuid="0f8fad5b-d9cb-469f-a165-70867728950e"),
        type_create("upper", uuid="0F8FAD5B-D9CB-469F-A165-70867728950E"),
        type_create("deadbeef-0000-4000-8000-000000000000"),
        ("type.get", {"type": "Corp.gitlab-token"}),
        ("type.get", {"type": "corp.gitlab-token"}))
    s["creds"] = seq(
        type_create("gh"), type_create("slack"),
        cred_set("gh", "ghp_canary"), cred_set("slack", b"\x00\x01bin"),
        ("cred.status", {"user": USER}),
        ("cred.delete", {"type": "gh", "user": USER}),
        ("cred.delete", {"type": "gh", "user": USER}),
        ("cred.status", {"user": USER2}))
    s["creds-bad"] = seq(
        type_create("gh"),
        cred_set("gh", ""), cred_set("gh", "x", user="not-a-uuid"),
        cred_set("gh", "x", user=USER.upper()), cred_set("nope", "x"),
        ("cred.set", {"type": "gh", "user": USER, "value": 42}),
        ("cred.set", {"type": "gh", "user": USER}),
        ("cred.status", {"user": "../../etc"}))
    s["creds-vault-type"] = seq(
        type_create("vt", storage="vault"), cred_set("vt", "in-vault"),
        ("cred.status", {"user": USER}),
        ("cred.delete", {"type": "vt", "user": USER}),
        ("type.clear", {"type": "vt"}))
    req_ok = {
        "method": "POST",
        "url": "https://api.github.com/repos/<<.credentials.gh | urlpath>>"
               "?token=<<.credentials.gh|urlquery>>",
        "headers": [["Authorization", "Bearer <<.credentials.gh>>"],
                    ["X-B64", "<< .credentials.gh | base64 >>"]],
        "body": '{"t":"<<.credentials.gh | json>>"}'}
    s["substitute-action"] = seq(
        type_create("gh", dest=["https://api.github.com"]),
        cred_set("gh", "ghp_value"),
        substitute(action([{"id": "gh", "type": "gh"}]), req_ok))
    s["substitute-bin-body"] = seq(
        type_create("k"), cred_set("k", "v\r\nX: y"),
        substitute(action([{"id": "k", "type": "k"}]),
                   {"method": "PUT",
                    "url": "http://h/<<.credentials.k|urlpath>>",
                    "headers": [], "body": b"\x00<<.credentials.k>>\xff"}))
    # request: the same substitution, then a send that the fuzz target's
    # HTTP client fails (a name resolves to one public address there).
    s["request-action"] = seq(
        type_create("gh", dest=["https://api.github.com"]),
        cred_set("gh", "ghp_value"),
        ("request", {"component": action([{"id": "gh", "type": "gh"}]),
                     "request": req_ok, "timeout_ms": 1000,
                     "max_response_bytes": 4096,
                     "follow_redirects": True}))
    s["request-addresses"] = seq(
        type_create("lo", dest=["http://127.0.0.1:8080",
                                "https://[10.0.0.0/8]"]),
        cred_set("lo", "v"),
        ("request", {"component": action([{"id": "l", "type": "lo"}]),
                     "request": {"method": "GET",
                                 "url": "http://127.0.0.1:8080/"
                                        "<<.credentials.l>>",
                                 "headers": []}}),
        ("request", {"component": action([{"id": "l", "type": "lo"}]),
                     "request": {"method": "GET",
                                 "url": "https://10.1.2.3/",
                                 "headers": [["X", "<<.credentials.l>>"]]}}),
        ("request", {"component": action([]),
                     "request": {"method": "GET",
                                 "url": "http://169.254.169.254/",
                                 "headers": []}}),
        ("request", {"component": action([]),
                     "request": {"method": "DELETE",
                                 "url": "http://[::ffff:127.0.0.1]/",
                                 "headers": []}}))
    s["request-bad"] = seq(
        ("request", {"component": action([]),
                     "request": {"method": "GET", "url": "https://h/",
                                 "headers": []},
                     "timeout_ms": 0, "max_response_bytes": -1}),
        ("request", {"component": {"kind": "status_check",
                                   "credentials": []},
                     "request": {"method": "GET", "url": "https://h/",
                                 "headers": []}}),
        ("request", {"component": action([]), "dry_run": True,
                     "request": {"method": "GET", "url": "ftp://h/",
                                 "headers": []}}))
    s["substitute-kinds"] = seq(
        type_create("t"), cred_set("t", "x", user=USER2),
        substitute({"kind": "widget", "initiator": USER, "run_as": USER2,
                    "credentials": [{"id": "t", "type": "t"}]},
                   {"method": "GET", "url": "https://h/<<.credentials.t>>",
                    "headers": []}),
        substitute({"kind": "data_source", "initiator": USER,
                    "system_account": USER2,
                    "credentials": [{"id": "t", "type": "t"}]},
                   {"method": "GET", "url": "https://h/", "headers": []}),
        substitute({"kind": "data_source", "initiator": USER,
                    "credentials": []},
                   {"method": "GET", "url": "https://h/", "headers": []}),
        substitute({"kind": "status_check", "credentials": []},
                   {"method": "GET", "url": "https://h/", "headers": []}),
        substitute({"kind": "action", "initiator": USER,
                    "credentials": [{"id": "a", "type": "t"}],
                    "external_service": {"credentials": [
                        {"id": "a", "type": "nope"},
                        {"id": "b", "type": "t"}]}},
                   {"method": "GET", "url": "https://h/<<.credentials.b>>",
                    "headers": [["X", "<<.credentials.a>>"]]}))
    s["substitute-refused"] = seq(
        type_create("t", dest=["https://good.example"]), cred_set("t", "v"),
        substitute(action([{"id": "t", "type": "t"}]),
                   {"method": "GET", "url": "https://evil.example/"
                    "<<.credentials.t>>", "headers": []}),
        substitute(action([{"id": "t", "type": "t"}]),
                   {"method": "GET", "url": "https://<<.credentials.t>>/",
                    "headers": []}),
        substitute(action([{"id": "t", "type": "t"}]),
                   {"method": "GET", "url": "https://good.example/",
                    "headers": [["<<.credentials.t>>", "x"]]}),
        substitute(action([{"id": "t", "type": "t"}]),
                   {"method": "GET", "url": "https://good.example/"
                    "<<.credentials.u>>", "headers": []}),
        substitute(action([{"id": "t", "type": "t"}]),
                   {"method": "GET", "url": "https://good.example/"
                    "<<.credentials.t | upper>>", "headers": []}),
        substitute(action([{"id": "t", "type": "t"}], initiator=USER2),
                   {"method": "GET", "url": "https://good.example/"
                    "<<.credentials.t>>", "headers": []}))
    s["substitute-vault-type"] = seq(
        type_create("vt", storage="vault"),
        substitute(action([{"id": "v", "type": "vt"}]),
                   {"method": "GET", "url": "https://h/<<.credentials.v>>",
                    "headers": []}))
    vs = {"enabled": True, "url": "http://127.0.0.1:8200",
          "role_id": "role", "secret_id": "secret",
          "path": "secret/data/credbroker", "timeout_ms": 1000}
    s["vault-set-use"] = seq(
        ("vault.get", {}), ("vault.set", vs), ("vault.get", {}),
        type_create("vt", storage="vault"), cred_set("vt", "sealed"),
        substitute(action([{"id": "v", "type": "vt"}]),
                   {"method": "GET", "url": "https://h/<<.credentials.v>>",
                    "headers": []}),
        ("cred.delete", {"type": "vt", "user": USER}),
        ("type.clear", {"type": "vt"}), ("health", {}))
    s["vault-test"] = seq(
        ("vault.test", {}), ("vault.test", vs),
        ("vault.test", dict(vs, url="https://vault.example:8200",
                            ca_file="/nonexistent", namespace="ns")))
    s["vault-bad"] = seq(
        ("vault.set", dict(vs, path="secret/credbroker")),
        ("vault.set", dict(vs, url="ftp://x")),
        ("vault.set", dict(vs, timeout_ms=-1)),
        ("vault.set", dict(vs, enabled=False)), ("vault.get", {}))
    # Envelopes.
    s["accounts"] = seq(
        type_create("gh", dest=["https://api.github.com"]),
        ("cred.set", {"type": "gh", "account": "techno_reader",
                      "value": "shared"}),
        ("cred.link", {"type": "gh", "user": USER, "account":
                       "techno_reader"}),
        ("type.update", {"type": "gh", "default_account": "techno_reader"}),
        ("cred.status", {"type": "gh"}),
        ("cred.status", {"user": USER2}),
        substitute(action([{"id": "gh", "type": "gh"}], run_as=USER2),
                   req_ok),
        ("cred.delete", {"type": "gh", "account": "techno_reader"}),
        ("cred.delete", {"type": "gh", "account": "techno_reader",
                         "force": True}),
        ("cred.unlink", {"type": "gh", "user": USER}),
        ("type.update", {"type": "gh", "default_account": None}),
        ("type.clear", {"type": "gh"}))
    s["keys"] = seq(
        ("keypair.import", {"ident": "partner", "pem": FUZZ_KEYPAIR_PEM}),
        ("keypair.get", {"keypair": "partner"}),
        ("peerkey.set", {"ident": "datalens", "version": 3,
                         "pem": FUZZ_PEER_PUBLIC_PEM}),
        ("peerkey.set", {"ident": "datalens", "version": 3,
                         "pem": FUZZ_PEER_PUBLIC_PEM}),
        ("keypair.list", {}), ("peerkey.list", {}),
        ("peerkey.get", {"peerkey": "datalens"}),
        ("keypair.delete", {"keypair": "partner", "version": 1}),
        ("peerkey.delete", {"peerkey": "datalens"}))
    s["keys-bad"] = seq(
        ("keypair.import", {"ident": "k", "pem": "-----BEGIN RSA PRIVATE "
                            "KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"}),
        ("keypair.import", {"ident": "k", "pem": FUZZ_PEER_PUBLIC_PEM}),
        ("peerkey.set", {"ident": "p", "version": 0,
                         "pem": FUZZ_PEER_PUBLIC_PEM}),
        ("keypair.get", {"keypair": "nope"}),
        ("keypair.delete", {"keypair": "nope", "version": 2}))
    s["keys-bad-private"] = seq(
        ("keypair.import", {"ident": "Bad", "pem": FUZZ_KEYPAIR_PEM}),
        ("peerkey.set", {"ident": "p", "version": 1,
                         "pem": FUZZ_KEYPAIR_PEM}))
    s["tokens"] = seq(
        ("keypair.import", {"ident": "kp", "pem": FUZZ_KEYPAIR_PEM}),
        ("peerkey.set", {"ident": "peer", "version": 2,
                         "pem": FUZZ_PEER_PUBLIC_PEM}),
        ("token.partner", {"keypair": "kp", "peerkey": "peer",
                           "payload": {"db_name": "client_1234383"}}),
        ("token.embed", {"keypair": "kp", "embed_id": "ieez7", "ttl": 60,
                         "params": {"a": "b", "c": ["d", "e"]},
                         "url_base": "https://datalens.example.com",
                         "kind": "chart"}),
        ("token.sso", {"keypair": "kp", "claims": {"sub": "u", "n": [1.5,
                       None, True]}, "ttl": 120}),
        ("token.verify", {"peerkey": "peer", "token": fuzz_login_token(),
                          "leeway": 10,
                          "attributes": {"user_id": "/profile/id",
                                         "user_name": "sub",
                                         "roles": "groups", "upn": "upn",
                                         "email": "/profile/a~1b",
                                         "additional": ["profile"]}}))
    s["tokens-bad"] = seq(
        ("keypair.import", {"ident": "kp", "pem": FUZZ_KEYPAIR_PEM}),
        ("peerkey.set", {"ident": "peer", "version": 2,
                         "pem": FUZZ_PEER_PUBLIC_PEM}),
        ("token.partner", {"keypair": "kp", "peerkey": "peer",
                           "payload": {"d": "x" * 300}}),
        ("token.embed", {"keypair": "kp", "embed_id": "e", "ttl": 36001}),
        ("token.embed", {"keypair": "kp", "embed_id": "e", "kind": "x"}),
        ("token.sso", {"keypair": "kp", "claims": {"exp": 1}}),
        ("token.sso", {"keypair": "kp", "claims": {}, "keypair_version": 9}),
        ("token.verify", {"peerkey": "peer", "token": "a.b.c"}),
        ("token.verify", {"peerkey": "peer",
                          "token": "eyJhbGciOiJub25lIn0.e30."}),
        ("token.verify", {"peerkey": "peer", "token": fuzz_login_token(),
                          "attributes": {"roles": "/x~2"}}))
    s["env-not-array"] = msgpack.packb({"a": 1})
    s["env-response"] = msgpack.packb([1, 5, None, None])
    s["env-notify"] = msgpack.packb([2, "hello", []])
    s["env-msgid-big"] = msgpack.packb([0, 1 << 33, "hello", [{}]])
    s["env-msgid-neg"] = msgpack.packb([0, -1, "hello", [{}]])
    s["env-unknown-method"] = req(3, "no.such\x00method\xff", {})
    s["env-method-bin"] = msgpack.packb([0, 3, b"hello", [{}]],
                                        use_bin_type=True)
    s["env-params-forms"] = (req(1, "hello", raw_params=[]) +
                             msgpack.packb([0, 2, "hello", None]) +
                             req(3, "hello", raw_params=[{}, {}]) +
                             req(4, "hello", raw_params={"a": 1}) +
                             req(5, "hello", raw_params=[[1]]) +
                             req(6, "hello", {"extra": 1}))
    s["env-pipeline"] = b"".join(req(i, "hello", {}) for i in range(1, 40))
    s["env-same-msgid"] = req(9, "type.list", {}) * 3
    s["bad-c1"] = req(1, "hello", {}) + b"\xc1" + req(2, "hello", {})
    s["bad-truncated"] = req(1, "hello", {}) + req(2, "health", {})[:-3]
    s["bad-toobig"] = b"\x94\x00\x01\xa5hello\x91\xdb\x00\x01\x00\x00"
    s["bad-huge-array"] = b"\xdd\xff\xff\xff\xff"
    s["bad-deep"] = b"\x91" * 300 + b"\xc0"
    s["bad-map-keys"] = req(1, "type.create", raw_params=[{1: 2, b"ident":
                                                           "x"}])
    return s


def tpl_seed(template, values=(), flags=0):
    t = template.encode() if isinstance(template, str) else template
    out = bytes([flags]) + len(t).to_bytes(2, "big") + t
    for v in values:
        if v is None:
            out += b"\xff"
            continue
        v = v.encode() if isinstance(v, str) else v
        out += bytes([len(v)]) + v
    return out


def template_seeds():
    s = {}
    P = "<<.credentials.%s>>"
    s["plain"] = tpl_seed("no placeholders here, just << and >>")
    s["empty"] = tpl_seed("")
    s["one"] = tpl_seed(P % "gh", ["ghp_value"])
    s["url-path-query"] = tpl_seed(
        "https://api.example.com/a/<<.credentials.p | urlpath>>"
        "?q=<<.credentials.q|urlquery>>&r=<< .credentials.r >>",
        ["a/b c", "x&y=z+%", "plain"])
    s["header-bearer"] = tpl_seed("Bearer <<.credentials.tok>>",
                                  ["abc\r\nX-Injected: 1"], flags=1)
    s["header-base64"] = tpl_seed("Basic <<.credentials.tok | base64>>",
                                  ["user:pa\x00ss\r\n"])
    s["json-body"] = tpl_seed('{"v":"<<.credentials.v | json>>"}',
                              ['q"\\\n\t\x01\x7f<>&\u2028\u2029é'])
    s["json-bad-utf8"] = tpl_seed('"<<.credentials.v|json>>"',
                                  [b"\xc3\x28\xed\xa0\x80\xf4\x90\x80\x80"])
    s["chain-4"] = tpl_seed(
        "<<.credentials.a|json|base64|urlquery|urlpath>>", ["v"])
    s["chain-5"] = tpl_seed(
        "<<.credentials.a|json|base64|urlquery|urlpath|json>>", ["v"])
    s["notfound"] = tpl_seed(P % "a" + P % "b", ["x", None], flags=1)
    s["values-cycle"] = tpl_seed((P % "a") * 5, ["1", "", "\x00", "\xff"])
    s["id-max"] = tpl_seed(P % ("_" + "a" * 63), ["v"])
    s["id-too-long"] = tpl_seed(P % ("a" * 65), ["v"])
    for i, bad in enumerate([
            "<<.credential.x>>", "<< .creds.a >>", "<<.credentials.a",
            "<<\n.credentials.a>>", "<<.credentials.>>",
            "<<.credentials.1a>>", "<<.credentials.-a>>",
            "<<.credentials.a | upper>>", "<<.credentials.a |>>",
            "<<.credentials.a json>>", "<<\t.credentials.a\t|\tjson\t>>",
            "<<.credentials.a>", "<<. credentials.a>>"]):
        s["malformed-%02d" % i] = tpl_seed("x " + bad + " y", ["v"])
    s["literal-shifts"] = tpl_seed("a << b; cat <<EOF\n>> <<", [])
    s["triple-lt"] = tpl_seed("<<<.credentials.a>>>", ["v"])
    s["scheme-ph"] = tpl_seed("http<<.credentials.x>>://h/", ["s"])
    s["host-ph"] = tpl_seed("https://<<.credentials.h>>/", ["evil.com"])
    s["userinfo-ph"] = tpl_seed("https://u:<<.credentials.p>>@h/", ["pw"])
    s["port-ph"] = tpl_seed("HTTP://h:<<.credentials.p>>/x", ["80"])
    s["backslash"] = tpl_seed("https://h\\<<.credentials.p>>/", ["x"])
    s["no-scheme"] = tpl_seed("ftp://h/<<.credentials.p>>", ["x"])
    s["query-first"] = tpl_seed("https://h?<<.credentials.p|urlquery>>",
                                [" "])
    s["fragment"] = tpl_seed("HTTPS://h#<<.credentials.p>>", ["frag"])
    s["nul-in-text"] = tpl_seed(b"a\x00<<.credentials.a>>\x00b", ["\x00"])
    s["value-is-ph"] = tpl_seed(P % "a", [P % "b"])
    s["url-space-value"] = tpl_seed("https://h/" + P % "a",
                                    ["a b", "\u0085", "\u00a0"])
    # The brace form, {{.credentials.ID}}, and substitute.syntax in flags
    # bits 1-2 (0 both, 1 angle, 2 brace).
    B = "{{.credentials.%s}}"
    ANGLE, BRACE = 1 << 1, 2 << 1
    s["brace-one"] = tpl_seed(B % "gh", ["ghp_value"])
    s["brace-url"] = tpl_seed(
        "https://api.example.com/{{.vars.x}}/{{ .credentials.p | urlpath }}"
        "?q={{.credentials.q|urlquery}}&r={{\t.credentials.r\t}}",
        ["a/b c", "x&y=z+%", "plain"])
    s["brace-chain"] = tpl_seed(
        "{{ .credentials.a | json | base64 | urlquery | urlpath }}", ["v"])
    s["brace-mixed"] = tpl_seed(P % "a" + " " + B % "b", ["x", "y"])
    s["brace-triple"] = tpl_seed("{{{.credentials.a}}}", ["v"])
    s["brace-host"] = tpl_seed("https://{{.credentials.h}}/", ["evil.com"])
    s["brace-value-is-ph"] = tpl_seed(B % "a", [B % "b"])
    s["brace-other-text"] = tpl_seed(
        "{{ .vars.x }} {{ if .ok }}y{{ end }} {{.credential.x}} "
        "{{.Credentials.x}} {{< alert >}} {{ printf .credentials.x }}", [])
    for i, bad in enumerate([
            "{{.credentials.a", "{{.credentials.}}", "{{.credentials.a>>",
            "<<.credentials.a}}", "{{ .credentials.a | nope }}",
            "{{.credentials.a |}}", "{{.credentials.1a}}",
            "{{\n.credentials.a}}", "{{.credentials.a}",
            "{{.credentials.a.b}}"]):
        s["brace-malformed-%02d" % i] = tpl_seed("x " + bad + " y", ["v"])
    both = P % "a" + "|" + B % "b" + "|{{ .vars.x }}"
    s["syntax-angle"] = tpl_seed(both, ["x", "y"], flags=ANGLE)
    s["syntax-brace"] = tpl_seed(both, ["x", "y"], flags=BRACE)
    s["syntax-angle-only-angle"] = tpl_seed(P % "a" + "{{ .vars.x }}",
                                            ["x"], flags=ANGLE)
    s["syntax-brace-only-brace"] = tpl_seed("a << b " + B % "a", ["x"],
                                            flags=BRACE | 1)
    s["syntax-3"] = tpl_seed(both, ["x", "y"], flags=3 << 1)
    return s


# fuzz_token.c's fixed now (FZ_NOW) and the key its peer key belongs to.
FUZZ_TOKEN_NOW = 1700000100
FUZZ_TOKEN_KEY = """\
-----BEGIN PRIVATE KEY-----
MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCO8OiOLQLpViB0
t33s1rrJotAHwMbfQzbTWh1OQ+fT2qLZSG3yM28uwtcuN9RsKuP1LGkXFfwnY/QJ
D952fYNFmDGoSipAOkXadz3atj0j7BfxgrKdTc7tutX+MSt5U1GLeIkQKUE3CDfI
uKJke25QioY8avDHis1EIfLf41wL2sIJiq9T7Ig43P1dZ7gnYWxnlqq+FHXTlc2k
rzQKEHH11FKUj/T8brWCg9wZAg5rgLf5Zkg/iptZMjCLNcMu6Y4kxeOzgGq1TXAc
njmpAXBJNb0Sckrfqy4+j9405Ov9kJlilPODUIK+9gZqJOo+GBsM8EBHt2VwSsc3
Ui8mPM/DAgMBAAECggEAPf+ExsIELMPUAPvjbPn3+2QYWfyF5amIGqTP6DXw1AVV
M+xD79TaSQxue5fwlVgHFrzD+iTpgQZL/zA4W+l1qhZol2dPqxr7WFX26Km5nB6X
hgObyDnK4nbywTV/dzipulY2EOHr7NwuIevfV7jnsJxcu9DgjZQJEx+scepx7pu2
MQ2hhD40VIRZVmape6oLO9MMY79otc2SQramZ5WeBSPVUAgqskBBHcXS58wliBw0
nii3Z33Nfc8QqdQFSb0cjMCkIPOhHkBfFUkNVLYBCFZOMYxHyumco1bN96CCFVc/
9x+2xW6LWWbq3f4WVbOCqsx9w0SNM4Ai/ugix9rQMQKBgQDBVRl6RUs5B9QrsEIN
yHorizX7w3NiQsvhK4dNZUgFSqXekjKNH82XtTT/C47UcGeCHPGjVoAq20yrRdPi
ali4hcSq4H7tccUcwhxPwXwPkdyCSujoKCvtt1yuzW+6VzgYHwU9TpmkCcqCCwT1
b7odmXdhG83NnO+387OMLZadEwKBgQC9Rkl1akcVA+rTbP9WR12slTEUk9h2tMmn
KRkMixauYO2moz5jEkYnC+C1ov6GF71rUUYgrGIuNgz7Cfau3P7UxEraAPYKxGGl
dbaf740krdy4rhvEGx0AK/TIy38joPmjMxw83w0Kk46kx81M/8+8qwrQO5WnJ0HN
ZfxBu83IkQKBgHUQVVv/B1xiDCvkDysPYEJrieWHZJ9z+MXAOK45jJF/sM4DUk63
miKpW4yvb+3cniBf7ETOBM9ueI8gufrYEB6zCPG6+8BE6mjOdJwqeTdoR9AxEbQ5
Vtga9ij2Rhfb5iBc8Cw+IrP8Jb32dCs1Wsm/elS3pDdDNrf4/Zf8pr03AoGALk3g
sMHkS+bebwTuXowtBYimLjORNFE8OBHc1+27CcQav7aWD6Sr1ueX/Le4btOl+ngy
oNGrX0TH3i5s1BCqoyC2cyjjCHVMsi7fE7eGHyANrHyjvFEpwh3+z5TBMNUz3VIm
qVmkFh9NOVDMD/dROgXaKmE5VmBLP9WgZfBtApECgYAmWBJ+g0b6M/NlvwjPDIS0
bAWxQf9uDQeU0u69epH35XtTlzC86BTYcnPnagS304eBzPxgisiJNHPol4OJ3G4q
H2ZJP8K2XMFlXMoeb0u9K5zki9Yp4Jj1nKK+AGO1VMXsvQk8RFoqdxNGlESXspeh
SAhpVq3FafwI95Zhd6c95A==
-----END PRIVATE KEY-----
"""


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def jws(header, claims, alg="RS256", raw_header=None, raw_claims=None):
    """A JWS compact token signed with FUZZ_TOKEN_KEY (RS256 or PS256)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding
    key = serialization.load_pem_private_key(FUZZ_TOKEN_KEY.encode(), None)
    h = raw_header if raw_header is not None else json.dumps(
        header, separators=(",", ":")).encode()
    c = raw_claims if raw_claims is not None else json.dumps(
        claims, separators=(",", ":")).encode()
    msg = b64url(h) + b"." + b64url(c)
    if alg == "PS256":
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    else:
        pad = padding.PKCS1v15()
    return msg + b"." + b64url(key.sign(msg, pad, hashes.SHA256()))


def token_seeds():
    now = FUZZ_TOKEN_NOW
    rs = {"alg": "RS256", "typ": "JWT"}
    claims = {"sub": "user-1", "name": "Ann", "roles": ["USERS"],
              "iat": now - 10, "exp": now + 600}
    good = jws(rs, claims)
    h, p, sig = good.split(b".")
    s = {
        "valid": good,
        "valid-minimal": jws({"alg": "RS256"}, {}),
        "valid-nbf-real": jws(rs, {"nbf": now + 29.5, "exp": now + 1.5,
                                   "iat": 1.5, "attrs": {"a/b": "~"}}),
        "valid-nested": jws(rs, {"user": {"id": 7, "roles": ["A", "B"]},
                                 "email": "ann@example.com"}),
        "expired": jws(rs, dict(claims, exp=now - 30)),
        "expired-leeway": jws(rs, dict(claims, exp=now - 29)),
        "nbf-future": jws(rs, dict(claims, nbf=now + 31)),
        "exp-string": jws(rs, dict(claims, exp=str(now + 600))),
        "iat-null": jws(rs, dict(claims, iat=None)),
        "ps256": jws(dict(rs, alg="PS256"), claims, alg="PS256"),
        "alg-none": b64url(b'{"alg":"none"}') + b"." + p + b".",
        "alg-hs256": b64url(b'{"alg":"HS256","typ":"JWT"}') + b"." + p +
        b"." + b64url(b"\x00" * 32),
        "alg-missing": jws({"typ": "JWT"}, claims),
        "alg-number": jws({"alg": 256}, claims),
        "crit": jws(dict(rs, crit=["exp"]), claims),
        "dup-member": jws(None, None, raw_header=b'{"alg":"RS256"}',
                          raw_claims=b'{"sub":"a","sub":"b"}'),
        "payload-array": jws(None, None, raw_header=b'{"alg":"RS256"}',
                             raw_claims=b"[1,2]"),
        "payload-trailing": jws(None, None, raw_header=b'{"alg":"RS256"}',
                                raw_claims=b'{"a":1} x'),
        "header-array": jws(None, None, raw_header=b'["RS256"]',
                            raw_claims=b"{}"),
        "two-parts": h + b"." + p,
        "four-parts": good + b".AAAA",
        "empty-parts": b"..",
        "padded": good + b"=",
        "whitespace": h + b". " + p + b"." + sig,
        "std-alphabet": good.replace(b"-", b"+").replace(b"_", b"/"),
        "tampered": h + b"." + b64url(b'{"sub":"admin"}') + b"." + sig,
        "sig-short": good[:-2],
        "b64-foobar": b"Zm9vYmFy",
        "b64-one": b"Z",
        "b64-bits": b"Zh",
        "empty": b"",
    }
    return s


def claims_seed(claims, spec):
    """claims and spec: JSON texts, or Python values to dump."""
    c = claims if isinstance(claims, str) else json.dumps(claims)
    t = spec if isinstance(spec, str) else json.dumps(spec)
    return c.encode() + b"\x00" + t.encode()


def claims_seeds():
    s = {}
    doc = {"sub": "u-1", "name": "Alice", "a": {"b": "nested"},
           "a/b": "slash", "m~n": "tilde", "~1": "tilde-one", "/": "root",
           "arr": ["zero", "one", {"k": "v"}], "": "empty", "n": None,
           "groups": ["g1", "g2"], "upn": "alice@corp", "mail": "a@x",
           "uid": 42, "score": 1.5, "dept": "sales"}
    for i, ref in enumerate([
            "sub", "/a/b", "/a~1b", "/m~0n", "/~01", "/~1", "/arr/0",
            "/arr/1", "/arr/2/k", "/arr/01", "/arr/-", "/arr/9", "/",
            "/sub/0", "/a~2b", "/m~", "//", "/arr/",
            "/arr/99999999999999999999"]):
        s["lookup-%02d" % i] = claims_seed(doc, json.dumps(ref))
    full = {"user_id": "sub", "user_name": "name", "roles": "groups",
            "upn": "upn", "email": "mail", "additional": ["dept", "absent",
                                                          "n"]}
    s["attrs-full"] = claims_seed(doc, full)
    s["attrs-pointers"] = claims_seed(
        {"path": {"to": {"given_name": "gn", "groups": ["x"]}}},
        {"user_id": "/path/to/given_name", "roles": "/path/to/groups"})
    s["attrs-number-id"] = claims_seed(doc, {"user_id": "uid",
                                             "user_name": "score"})
    for i, roles in enumerate([
            ["g1", "ADMINISTRATORS"], "ADMINISTRATORS", "administrators",
            ["AdMiNiStRaToRs"], [" ADMINISTRATORS"], [], "one", None,
            ["g", 3], {"g": 1}, 7, [7, "administrators"],
            "ADMINISTRATORS\x00x", ["g", "administrators\x00"]]):
        s["roles-%02d" % i] = claims_seed({"groups": roles},
                                          {"roles": "groups"})
    s["roles-missing"] = claims_seed({"x": 1}, {"roles": "groups"})
    s["roles-no-ref"] = claims_seed({"groups": ["ADMINISTRATORS"]}, {})
    s["roles-array-root"] = claims_seed(["ADMINISTRATORS"], {"roles": "/0"})
    s["wrong-type-id"] = claims_seed({"sub": {"v": "CANARY-1"}},
                                     {"user_id": "sub"})
    s["additional-max"] = claims_seed(
        {"c63": 1}, {"additional": ["c%d" % i for i in range(64)]})
    s["additional-over"] = claims_seed(
        {}, {"additional": ["c%d" % i for i in range(65)]})
    for i, spec in enumerate([
            '{"groups": "g"}', '["user_id"]', '"sub"', "null",
            '{"user_id": 1}', '{"upn": ""}', '{"user_id": "/a~2b"}',
            '{"roles": "/g~"}', '{"user_name": "a\\u0000b"}',
            '{"additional": "dept"}', '{"additional": ["a", "a"]}',
            '{"additional": ["a", ""]}', '{"additional": [3]}',
            '{"user_id": "' + "a" * 1025 + '"}',
            '{"user_id": "/' + "a" * 1023 + '"}',
            '{"roles": "groups", "additional": [""]}']):
        s["spec-%02d" % i] = claims_seed(doc, spec)
    s["deep"] = claims_seed("[" * 17 + "]" * 17, '"/0/0/0"')
    s["deep-ok"] = claims_seed('{"k":' * 16 + "1" + "}" * 16, '"/k/k/k"')
    s["scalars"] = claims_seed(
        '[1e300, -0.0, -9223372036854775808, 9223372036854775807, true, '
        'false, null, "\\u0000\\u2028\\ud83d\\udd11", ""]', '"/7"')
    return s


def scrub_seed(pats, text, chunks=()):
    """pats: (is_value, id index 0-3, bytes); text: bytes."""
    out = bytes([len(pats)])
    for is_value, ident, b in pats:
        out += bytes([(1 if is_value else 0) | (ident << 1), len(b)]) + b
    return out + bytes([len(chunks)]) + bytes(chunks) + text


def scrub_seeds():
    tok = b"s3cr3t-t0ken/+ \\"
    user, pw = b"alice01", b"pw-secret"
    bad = b"ok\xff\xfe<a b>"
    b64 = base64.b64encode
    pq = lambda b: "".join(
        chr(c) if chr(c).isalnum() or chr(c) in "-._~" else "%%%02X" % c
        for c in b).encode()
    return {
        "raw": scrub_seed([(1, 0, tok)], b"token: " + tok + b" end"),
        "encodings": scrub_seed(
            [(1, 0, tok)],
            b"q=" + pq(tok) + b' {"t":"s3cr3t-t0ken/+ \\\\"} ' +
            b64(tok), (3, 1, 7)),
        "basic-pair": scrub_seed(
            [(1, 0, user), (1, 1, pw)],
            b"Authorization: Basic " + b64(user + b":" + pw) + b"\r\n" +
            b64(pw + b":" + user), (5,)),
        "nested": scrub_seed(
            [(0, 0, b"abcd"), (0, 1, b"abcdefghij"), (0, 2, b"cdefgh"),
             (0, 3, b"efgh")],
            b"abcdefghX abcdefghij xcdefghx abcdefgh", (1, 2, 3)),
        "short": scrub_seed([(1, 0, b"a"), (1, 1, b"abc"), (0, 2, b"xy")],
                            b"banana abc xy YQ== YTphYmM="),
        "bad-utf8": scrub_seed([(1, 2, bad)],
                               b"1 " + bad + b" " + b64(bad) + pq(bad)),
        "repeat": scrub_seed([(0, 0, b"aaaa"), (0, 1, b"a" * 40 + b"b")],
                             b"a" * 300 + b"b", (7, 0, 13)),
        "empty": scrub_seed([], b""),
    }


def scrub_dict():
    words = [b"[REDACTED:", b"]", b"%20", b"%2F", b"%2B", b"\\u00",
             b"\\\"", b"==", b"=", b":", b"Basic "]
    return "\n".join(dict_entry(w) for w in words) + "\n"


def dict_entry(b):
    return '"' + "".join(chr(c) if 0x20 <= c < 0x7f and c not in b'"\\'
                         else "\\x%02x" % c for c in b) + '"'


def proto_dict():
    words = set(methods())
    words |= {"ident", "name", "description", "storage", "destinations",
              "type", "force", "user", "value", "component", "request",
              "kind", "initiator", "run_as", "system_account", "credentials",
              "id", "external_service", "method", "url", "headers", "body",
              "enabled", "role_id", "secret_id", "path", "ca_file",
              "namespace", "timeout_ms", "new_key_file", "db", "vault",
              "action", "widget", "data_source", "status_check", USER,
              "https://", "http://", "secret/data/x",
              "keypair", "peerkey", "pem", "version", "keypair_version",
              "peerkey_version", "payload", "embed_id", "ttl", "params",
              "url_base", "chart", "dash", "claims", "token", "attributes",
              "leeway", "user_id", "user_name", "roles", "upn", "email",
              "additional", "-----BEGIN PUBLIC KEY-----\n",
              "account", "default_account", "source", "own", "linked",
              "default", "max_response_bytes", "follow_redirects",
              "-----BEGIN RSA PRIVATE KEY-----\n"}
    out = [dict_entry(msgpack.packb(w)) for w in sorted(words)]
    out += [dict_entry(x) for x in (b"\x94\x00", b"\x91\x80", b"\xc0",
                                    b"\xc3", b"\xc2")]
    out += [dict_entry(w.encode()) for w in (
        "<<.credentials.", ">>", "|urlquery", "|urlpath", "|json",
        "|base64")]
    return "\n".join(out) + "\n"


def template_dict():
    words = ["<<.credentials.", "<< .credentials.", ">>", " >>", "|",
             "{{.credentials.", "{{ .credentials.", "}}", " }}", "{{",
             "{{ .vars.x }}", ".credentials.",
             "urlquery", "urlpath", "json", "base64", "https://",
             "http://", "HTTPS://", "/", "?", "#", "@", ":", "\\",
             "\r\n", "\x00", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xc2\x85",
             "\xed\xa0\x80", "\xf4\x90\x80\x80", "<<\n.", "<<\t."]
    return "\n".join(dict_entry(w.encode("latin-1")) for w in words) + "\n"


def token_dict():
    words = [b".", b"-", b"_", b"=", b"eyJ", b"fQ", b"e30",
             b64url(b'{"alg":"RS256","typ":"JWT"}'), b64url(b'{"alg":"'),
             b64url(b'"exp":'), b64url(b'"nbf":'), b64url(b'"crit":'),
             b"AAAA", b"\n", b" "]
    return "\n".join(dict_entry(w) for w in words) + "\n"
def claims_dict():
    words = ["user_id", "user_name", "roles", "upn", "email", "additional",
             "ADMINISTRATORS", "administrators", "USERS", "CANARY", "/",
             "~0", "~1", "~", "/0", "/01", "/-", "\"\"", "\\u0000",
             "\x00", "null", "true", "[]", "{}", "\":"]
    return "\n".join(dict_entry(w.encode("latin-1")) for w in words) + "\n"


def write(outdir, name, seeds):
    d = os.path.join(outdir, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for k, v in sorted(seeds.items()):
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)
    return len(seeds)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE,
                                                                 "corpus")
    n1 = write(outdir, "fuzz_proto", proto_seeds())
    n2 = write(outdir, "fuzz_template", template_seeds())
    n3 = write(outdir, "fuzz_token", token_seeds())
    n4 = write(outdir, "fuzz_claims", claims_seeds())
    n5 = write(outdir, "fuzz_scrub", scrub_seeds())
    for name, text in (("fuzz_proto", proto_dict()),
                       ("fuzz_template", template_dict()),
                       ("fuzz_token", token_dict()),
                       ("fuzz_claims", claims_dict()),
                       ("fuzz_scrub", scrub_dict())):
        with open(os.path.join(HERE, name + ".dict"), "w") as f:
            f.write(text)
    print("make_corpus: %d fuzz_proto, %d fuzz_template, %d fuzz_token, "
          "%d fuzz_claims and %d fuzz_scrub seeds in %s" %
          (n1, n2, n3, n4, n5, outdir))


if __name__ == "__main__":
    main()

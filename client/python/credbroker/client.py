"""The connection to credbrokerd and one method per protocol method.

The wire format is credbroker-protocol(7): a request is
[0, msgid, method, [params]] in msgpack, a response
[1, msgid, error, result].  msgids start at 1 and never use 0, which the
broker reserves for the too_large answer to a request it stopped reading.
"""

import errno as _errno
import grp
import os
import select
import socket
import threading
import time

import msgpack

from .errors import (ConnectError, ConnectionLost, ProtocolError,
                     Timeout, error_from_map)

__all__ = ["Client", "connect", "DEFAULT_SOCKET", "SOCKET_ENV",
           "DEFAULT_TIMEOUT", "DEFAULT_MAX_RESPONSE", "PROTOCOL"]

# The same defaults as libcredbroker (credbroker.h).
DEFAULT_SOCKET = "/run/credbroker/credbroker.sock"
SOCKET_ENV = "CREDBROKER_SOCKET"
DEFAULT_MAX_RESPONSE = 16 * 1024 * 1024
# Seconds a call may take; None waits for ever.
DEFAULT_TIMEOUT = 30.0
# The protocol version this client speaks (hello's "protocol").
PROTOCOL = 1

_SUN_PATH_MAX = 107
_MSGID_MAX = 0xFFFFFFFF
_RECV_SIZE = 65536
# type.update: absent (keep) is not the same as None (remove).
_KEEP = object()
# _next_message(): nothing complete yet (None is a msgpack value).
_NOTHING = object()


def _socket_path(path):
    if path is None:
        path = os.environ.get(SOCKET_ENV) or DEFAULT_SOCKET
    return os.fspath(path)


def _socket_group(path):
    """The group whose members may reach the socket: the socket's own, or
    when a directory on the way cannot be searched, that directory's."""
    p = path
    while True:
        try:
            st = os.stat(p)
            break
        except PermissionError:
            slash = p.rfind("/")
            if slash <= 0:
                return None
            p = p[:slash]
        except OSError:
            return None
    try:
        return grp.getgrgid(st.st_gid).gr_name
    except KeyError:
        return str(st.st_gid)


def _connect_error(path, e):
    if e.errno == _errno.EACCES:
        group = _socket_group(path)
        if group is not None:
            msg = ("%s: permission denied (the socket is for group %s: "
                   "ask to be added to it)" % (path, group))
        else:
            msg = "%s: permission denied" % path
    elif e.errno == _errno.ENOENT:
        msg = ("%s: no such socket (is credbrokerd running? its socket is "
               "server.socket in credbroker.conf(5))" % path)
    elif e.errno == _errno.ECONNREFUSED:
        msg = ("%s: connection refused (nothing listens on it: is "
               "credbrokerd running?)" % path)
    else:
        msg = "%s: %s" % (path, os.strerror(e.errno) if e.errno else e)
    return ConnectError(msg, path=path, errno=e.errno)


def _params(**kw):
    """The params map: None means absent (the protocol treats nil so)."""
    return {k: v for k, v in kw.items() if v is not None}


class Client:
    """One connection to the broker.  Use connect() to make one.

    A Client is a context manager: leaving the with block closes the
    socket.  Calls are synchronous, one at a time; a lock makes a Client
    safe to share between threads, which then take turns.
    """

    def __init__(self, path=None, timeout=DEFAULT_TIMEOUT,
                 max_response=DEFAULT_MAX_RESPONSE):
        self._sock = None
        self._unpacker = None
        self.path = _socket_path(path)
        self.timeout = timeout
        self.max_response = max_response or DEFAULT_MAX_RESPONSE
        self._lock = threading.Lock()
        self._next_id = 1
        if self.path == "":
            raise ConnectError("empty socket path", path=self.path)
        n = len(os.fsencode(self.path))
        if n > _SUN_PATH_MAX:
            raise ConnectError("%s: socket path is too long (%d bytes, at "
                               "most %d)" % (self.path, n, _SUN_PATH_MAX),
                               path=self.path)
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.settimeout(timeout)
            s.connect(self.path)
        except socket.timeout:
            s.close()
            raise ConnectError("%s: connect timed out" % self.path,
                               path=self.path) from None
        except OSError as e:
            s.close()
            raise _connect_error(self.path, e) from None
        self._sock = s
        self._unpacker = self._new_unpacker()

    def _new_unpacker(self):
        # max_buffer_size bounds what is held of a response not yet
        # complete: a larger one fails with ProtocolError instead of
        # growing without end.
        return msgpack.Unpacker(raw=False, max_buffer_size=self.max_response)

    # -- connection -------------------------------------------------------
    @property
    def closed(self):
        return self._sock is None

    def close(self):
        """Close the socket; closing twice is harmless."""
        s, self._sock = self._sock, None
        self._unpacker = None
        if s is not None:
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def fileno(self):
        return -1 if self._sock is None else self._sock.fileno()

    # -- calls ------------------------------------------------------------
    def call(self, method, params=None, timeout=_KEEP):
        """Call method with the map params (None: no parameters) and
        return its result, or raise the Error of the broker's answer.
        timeout overrides the Client's for this call."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise TypeError("params must be a dict")
        if timeout is _KEEP:
            timeout = self.timeout
        with self._lock:
            if self._sock is None:
                raise ConnectionLost("the connection is closed")
            msgid = self._next_id
            self._next_id = msgid + 1 if msgid < _MSGID_MAX else 1
            data = msgpack.packb([0, msgid, method, [params]],
                                 use_bin_type=True)
            deadline = None if timeout is None else \
                time.monotonic() + timeout
            self._send(data, deadline)
            return self._wait(msgid, deadline)

    def _fail(self, exc):
        self.close()
        raise exc

    def _send(self, data, deadline):
        try:
            self._sock.settimeout(None if deadline is None else
                                  max(deadline - time.monotonic(), 0.001))
            self._sock.sendall(data)
        except socket.timeout:
            self._fail(Timeout("could not send the request within the "
                               "time limit"))
        except OSError as e:
            # The broker may have answered too_large (msgid 0) and closed
            # while the request was still being written: report that.
            self._drain_fatal()
            self._fail(ConnectionLost("sending the request failed: %s"
                                      % (os.strerror(e.errno) if e.errno
                                         else e)))

    def _drain_fatal(self):
        """After a failed write, read what the broker sent before it
        closed; raise the error of a msgid 0 response if there is one."""
        deadline = time.monotonic() + 1.0
        try:
            while True:
                m = self._next_message()
                if m is not _NOTHING:
                    self._classify(m, None)
                elif not self._recv(deadline):
                    return
        except (Timeout, ConnectionLost):
            return

    def _recv(self, deadline):
        """Read once into the unpacker.  False when the deadline passed;
        raises ConnectionLost at end of file."""
        if deadline is None:
            wait = None
        else:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return False
        sock = self._sock
        if sock is None:        # closed by another thread meanwhile
            raise ConnectionLost("the connection is closed")
        try:
            r, _, _ = select.select([sock], [], [], wait)
            if not r:
                return False
            data = sock.recv(_RECV_SIZE)
        except InterruptedError:
            return True
        except ValueError:
            self._fail(ConnectionLost("the connection is closed"))
        except OSError as e:
            self._fail(ConnectionLost("reading the response failed: %s"
                                      % (os.strerror(e.errno) if e.errno
                                         else e)))
        if not data:
            self._fail(ConnectionLost("the broker closed the connection"))
        try:
            self._unpacker.feed(data)
        except msgpack.BufferFull:
            self._fail(ProtocolError("the response is larger than the "
                                     "limit of %d bytes" % self.max_response))
        return True

    def _classify(self, m, msgid):
        """Return (True, result) for our response, (False, None) for a
        message to skip; raise for an error or a broken message."""
        if not isinstance(m, (list, tuple)) or not m:
            self._fail(ProtocolError("the broker sent something that is "
                                     "not a msgpack-rpc message"))
        if len(m) == 3 and m[0] == 2:
            return False, None          # a notification: not for us
        if len(m) != 4 or m[0] != 1:
            self._fail(ProtocolError("the broker sent a message that is "
                                     "not a response"))
        mid, err, res = m[1], m[2], m[3]
        if (not isinstance(mid, int) or isinstance(mid, bool) or mid < 0
                or mid > _MSGID_MAX):
            self._fail(ProtocolError("the broker sent a response with an "
                                     "invalid msgid"))
        fatal = mid == 0 and err is not None
        if not fatal and mid != msgid:
            return False, None          # a late answer to an abandoned call
        if err is None:
            return True, res
        if (not isinstance(err, dict) or not isinstance(err.get("code"), str)
                or not err["code"] or
                not isinstance(err.get("message"), (str, type(None)))):
            self._fail(ProtocolError("the broker sent a malformed error"))
        exc = error_from_map(err)
        if fatal:
            # The broker has stopped reading this connection.
            self.close()
        raise exc

    def _next_message(self):
        """The next complete message received, or _NOTHING."""
        try:
            return next(self._unpacker)
        except StopIteration:
            return _NOTHING
        except (msgpack.UnpackException, ValueError):
            self._fail(ProtocolError("the broker sent malformed msgpack"))

    def _wait(self, msgid, deadline):
        while True:
            m = self._next_message()
            if m is not _NOTHING:
                done, res = self._classify(m, msgid)
                if done:
                    return res
                continue
            if not self._recv(deadline):
                raise Timeout("no response to msgid %d within the time "
                              "limit" % msgid)

    # -- methods without parameters ---------------------------------------
    def hello(self):
        """{protocol, server, permissions, uid}: no permission needed."""
        return self.call("hello")

    def health(self):
        return self.call("health")

    def stats(self):
        return self.call("stats")

    # -- credential types -------------------------------------------------
    def type_create(self, ident, name, description=None, storage=None,
                    destinations=None, uuid=None, ca_file=None):
        return self.call("type.create", _params(
            ident=ident, name=name, description=description,
            storage=storage, destinations=destinations, uuid=uuid,
            ca_file=ca_file))

    def type_get(self, type):
        return self.call("type.get", {"type": type})

    def type_list(self):
        return self.call("type.list")

    def type_update(self, type, name=None, description=None, storage=None,
                    destinations=None, default_account=_KEEP,
                    ca_file=_KEEP):
        """Absent arguments leave the type as it is; default_account=None
        removes the default account, ca_file=None the CA file."""
        p = _params(type=type, name=name, description=description,
                    storage=storage, destinations=destinations)
        if default_account is not _KEEP:
            p["default_account"] = default_account
        if ca_file is not _KEEP:
            p["ca_file"] = ca_file
        return self.call("type.update", p)

    def type_delete(self, type, force=None):
        return self.call("type.delete", _params(type=type, force=force))

    def type_clear(self, type):
        return self.call("type.clear", {"type": type})

    # -- values -----------------------------------------------------------
    def cred_set(self, type, value, user=None, account=None):
        """Set a user's (user=UUID) or an account's value.  value is str
        (sent as msgpack str) or bytes/bytearray (sent as bin).  Python
        cannot wipe it: see the package's README."""
        if isinstance(value, memoryview):
            value = bytes(value)
        return self.call("cred.set", _params(type=type, user=user,
                                             account=account, value=value))

    def cred_status(self, user=None, type=None):
        """Status of a user's values (user=) or of a type's accounts
        (type=).  For a user, an entry whose status cannot be read has
        error: {code, message}."""
        return self.call("cred.status", _params(user=user, type=type))

    def cred_delete(self, type, user=None, account=None, force=None):
        return self.call("cred.delete", _params(type=type, user=user,
                                                account=account, force=force))

    def cred_link(self, type, user, account):
        return self.call("cred.link", {"type": type, "user": user,
                                       "account": account})

    def cred_unlink(self, type, user):
        return self.call("cred.unlink", {"type": type, "user": user})

    def cred_import(self, type, sealed, user=None, account=None,
                    dry_run=None):
        return self.call("cred.import", _params(
            type=type, user=user, account=account, sealed=sealed,
            dry_run=dry_run))

    def cred_list(self, type, kind=None, after=None, limit=None):
        """One page of the users (kind "users", the default) or accounts
        (kind "accounts") that have a value of the type: {items, next}.
        Pass next as after for the following page; next is None at the
        end."""
        return self.call("cred.list", _params(type=type, kind=kind,
                                              after=after, limit=limit))

    def iter_cred_list(self, type, kind=None, limit=None):
        """Every item of cred.list, following next page by page."""
        after = None
        while True:
            page = self.cred_list(type, kind=kind, after=after, limit=limit)
            for item in page["items"]:
                yield item
            after = page.get("next")
            if after is None:
                return

    # -- substitution -----------------------------------------------------
    def substitute(self, component, request, dry_run=None):
        """The request with the component's credentials substituted (see
        credbroker-protocol(7) SUBSTITUTION).  The result holds the values:
        send it and drop it."""
        return self.call("substitute", _params(component=component,
                                               request=request,
                                               dry_run=dry_run))

    def request(self, component, request, timeout_ms=None,
                max_response_bytes=None, follow_redirects=None):
        """Have the broker substitute the credentials, send the request
        itself and return the response (see credbroker-protocol(7)):
        {status, reason, headers: [[name, value], ...], body, scrubbed,
        used} (reason: the status text), with every echo of a used value
        in it replaced by "[REDACTED:ID]", or {skipped, reason} for a
        status check without a system account.
        No value ever reaches this process.  The call may last up to
        timeout_ms (the broker's default when None): give the Client a
        timeout longer than that."""
        return self.call("request", _params(
            component=component, request=request, timeout_ms=timeout_ms,
            max_response_bytes=max_response_bytes,
            follow_redirects=follow_redirects))

    # -- Vault ------------------------------------------------------------
    def vault_get(self):
        return self.call("vault.get")

    def vault_set(self, enabled, url, path, role_id=None, secret_id=None,
                  ca_file=None, namespace=None, timeout_ms=None,
                  cache_seconds=None):
        return self.call("vault.set", _params(
            enabled=enabled, url=url, path=path, role_id=role_id,
            secret_id=secret_id, ca_file=ca_file, namespace=namespace,
            timeout_ms=timeout_ms, cache_seconds=cache_seconds))

    def vault_test(self, enabled=None, url=None, path=None, role_id=None,
                   secret_id=None, ca_file=None, namespace=None,
                   timeout_ms=None, cache_seconds=None):
        """Test the stored settings, or these for this test only."""
        return self.call("vault.test", _params(
            enabled=enabled, url=url, path=path, role_id=role_id,
            secret_id=secret_id, ca_file=ca_file, namespace=namespace,
            timeout_ms=timeout_ms, cache_seconds=cache_seconds))

    def vault_adopt(self, type):
        return self.call("vault.adopt", {"type": type})

    # -- master key -------------------------------------------------------
    def key_status(self):
        return self.call("key.status")

    def key_rotate(self, new_key_file):
        return self.call("key.rotate", {"new_key_file": new_key_file})

    # -- key pairs and peer keys ------------------------------------------
    def keypair_generate(self, ident):
        return self.call("keypair.generate", {"ident": ident})

    def keypair_import(self, ident, pem):
        return self.call("keypair.import", {"ident": ident, "pem": pem})

    def keypair_get(self, keypair):
        return self.call("keypair.get", {"keypair": keypair})

    def keypair_list(self):
        return self.call("keypair.list")

    def keypair_delete(self, keypair, version=None):
        return self.call("keypair.delete", _params(keypair=keypair,
                                                   version=version))

    def peerkey_set(self, ident, version, pem):
        return self.call("peerkey.set", {"ident": ident, "version": version,
                                         "pem": pem})

    def peerkey_get(self, peerkey):
        return self.call("peerkey.get", {"peerkey": peerkey})

    def peerkey_list(self):
        return self.call("peerkey.list")

    def peerkey_delete(self, peerkey, version=None):
        return self.call("peerkey.delete", _params(peerkey=peerkey,
                                                   version=version))

    # -- tokens -----------------------------------------------------------
    def token_partner(self, keypair, peerkey, payload, keypair_version=None,
                      peerkey_version=None):
        return self.call("token.partner", _params(
            keypair=keypair, peerkey=peerkey, payload=payload,
            keypair_version=keypair_version,
            peerkey_version=peerkey_version))

    def token_embed(self, keypair, embed_id, ttl=None, params=None,
                    url_base=None, kind=None, keypair_version=None):
        return self.call("token.embed", _params(
            keypair=keypair, embed_id=embed_id, ttl=ttl, params=params,
            url_base=url_base, kind=kind, keypair_version=keypair_version))

    def token_sso(self, keypair, claims, ttl=None, keypair_version=None):
        return self.call("token.sso", _params(
            keypair=keypair, claims=claims, ttl=ttl,
            keypair_version=keypair_version))

    def token_verify(self, peerkey, token, attributes=None, leeway=None,
                     peerkey_version=None):
        return self.call("token.verify", _params(
            peerkey=peerkey, token=token, attributes=attributes,
            leeway=leeway, peerkey_version=peerkey_version))


def connect(path=None, timeout=DEFAULT_TIMEOUT,
            max_response=DEFAULT_MAX_RESPONSE):
    """Connect to the broker and return a Client.

    path: the socket; None means $CREDBROKER_SOCKET when that is set and
    not empty, else /run/credbroker/credbroker.sock (as libcredbroker).
    timeout: seconds for the connect and for each call (None: no limit).
    max_response: the largest response accepted, in bytes (16 MiB).
    Raises ConnectError when the socket cannot be reached.
    """
    return Client(path, timeout=timeout, max_response=max_response)

"""Exceptions of the credbroker client.

Every exception is a credbroker.Error with .code and .message.

An error the broker answered with is a BrokerError, of the class of its
code (proto/errors.def, credbroker-protocol(7) ERROR CODES):

    bad_request     BadRequest
    forbidden       Forbidden
    not_found       NotFound
    conflict        Conflict
    not_configured  NotConfigured
    unavailable     Unavailable
    too_large       TooLarge
    internal        Internal

A code this client does not know (a newer broker) raises BrokerError
itself, with that code.  Failures on this side of the socket have the
codes libcredbroker uses for them (credbroker.h): ConnectError
("connect"), ConnectionLost ("io"), Timeout ("timeout") and ProtocolError
("protocol").
"""

__all__ = [
    "Error", "BrokerError", "BadRequest", "Forbidden", "NotFound",
    "Conflict", "NotConfigured", "Unavailable", "TooLarge", "Internal",
    "ConnectError", "ConnectionLost", "Timeout", "ProtocolError",
    "ERRORS", "error_from_map",
]


class Error(Exception):
    """Base class of every exception of this package."""

    code = None

    def __init__(self, message, code=None):
        if code is not None:
            self.code = code
        self.message = message
        super().__init__(message)

    def __str__(self):
        if self.code is None:
            return self.message
        return "%s: %s" % (self.code, self.message)


class BrokerError(Error):
    """The broker answered the call with an error."""


class BadRequest(BrokerError):
    """The request is malformed or a parameter is invalid."""
    code = "bad_request"


class Forbidden(BrokerError):
    """The caller lacks the method's permission, or a destination refuses
    the request's origin."""
    code = "forbidden"


class NotFound(BrokerError):
    """A type, value, key pair, peer key or version does not exist."""
    code = "not_found"


class Conflict(BrokerError):
    """An ident is taken, a type still has values, or a peer key version
    holds another key."""
    code = "conflict"


class NotConfigured(BrokerError):
    """The call needs Vault, which is not configured or is disabled."""
    code = "not_configured"


class Unavailable(BrokerError):
    """The call needs Vault, which cannot be reached or refuses."""
    code = "unavailable"


class TooLarge(BrokerError):
    """The message, a value, a key or a token is over its limit.  When the
    request itself was too large the broker has closed the connection."""
    code = "too_large"


class Internal(BrokerError):
    """Anything else on the broker's side."""
    code = "internal"


class ConnectError(Error):
    """The broker's socket cannot be reached.  .path is the socket and
    .errno the error of connect(2), when there was one."""
    code = "connect"

    def __init__(self, message, path=None, errno=None):
        super().__init__(message)
        self.path = path
        self.errno = errno


class ConnectionLost(Error):
    """Reading or writing the socket failed, or the broker closed the
    connection; the Client is closed."""
    code = "io"


class Timeout(Error):
    """No response within the call's time limit.  The connection stays
    usable: a late response to the abandoned call is skipped."""
    code = "timeout"


class ProtocolError(Error):
    """The broker sent something that is not a valid msgpack-rpc response,
    or a response over the size limit; the Client is closed."""
    code = "protocol"


ERRORS = {cls.code: cls for cls in (BadRequest, Forbidden, NotFound,
                                      Conflict, NotConfigured, Unavailable,
                                      TooLarge, Internal)}


def error_from_map(err):
    """The exception for an error map {code, message} of the protocol."""
    code = err.get("code")
    message = err.get("message") or ""
    cls = ERRORS.get(code)
    if cls is None:
        return BrokerError(message, code=code)
    return cls(message)

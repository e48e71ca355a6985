"""credbroker: the Python client of the credbroker credential broker.

    import credbroker

    with credbroker.connect() as c:     # $CREDBROKER_SOCKET or the default
        res = c.substitute(component={...}, request={...})

Every method of credbroker-protocol(7) has a method of Client named after
it (type.create -> type_create) with the protocol's parameter names as
keyword arguments; Client.call(method, params) calls any method by name.
Errors are exceptions: credbroker.NotFound, credbroker.Forbidden, ... (one
per error code), all credbroker.Error with .code and .message.
"""

from .client import (DEFAULT_MAX_RESPONSE, DEFAULT_SOCKET, DEFAULT_TIMEOUT,
                     PROTOCOL, SOCKET_ENV, Client, connect)
from .errors import (ERRORS, BadRequest, BrokerError, Conflict, ConnectError,
                     ConnectionLost, Error, Forbidden, Internal, NotConfigured,
                     NotFound, ProtocolError, Timeout, TooLarge, Unavailable,
                     error_from_map)

__version__ = "0.1.0"

__all__ = [
    "connect", "Client", "DEFAULT_SOCKET", "SOCKET_ENV", "DEFAULT_TIMEOUT",
    "DEFAULT_MAX_RESPONSE", "PROTOCOL", "ERRORS", "error_from_map",
    "Error", "BrokerError", "BadRequest", "Forbidden", "NotFound",
    "Conflict", "NotConfigured", "Unavailable", "TooLarge", "Internal",
    "ConnectError", "ConnectionLost", "Timeout", "ProtocolError",
]

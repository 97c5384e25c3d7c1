"""Binding the stream's listening socket: for real, on the first free port of a range.

Why not probe-then-bind: checking that a port is free and binding it later leaves a window in which
another process takes it. The socket bound here is handed to werkzeug as-is (``fd=``).
"""

import errno
import logging
import socket
from typing import Optional

from werkzeug.serving import select_address_family

log = logging.getLogger("rlg_hotreload")


class StreamerError(RuntimeError):
    """The streaming server cannot start (bad setting, no free port); the message names the key."""


def bind_socket(host: str, port: int, tries: int) -> socket.socket:
    """Bind+listen on the first free port of ``port .. port+tries-1``; the bound socket is kept.

    Binding for real (instead of probing, closing, and binding again) leaves no window in which
    another process can take the port.
    """
    family = select_address_family(host, port)
    last_err: Optional[OSError] = None
    for p in range(port, port + tries) if port else [0]:
        if p > 65535:
            break
        try:
            addrs = socket.getaddrinfo(host, p, family, socket.SOCK_STREAM, 0, socket.AI_PASSIVE)
        except socket.gaierror as e:
            raise StreamerError("streamHost=%r cannot be resolved: %s" % (host, e)) from e
        af, kind, proto, _, addr = addrs[0]
        sock = socket.socket(af, kind, proto)
        try:
            # SO_REUSEADDR only skips TIME_WAIT leftovers on Linux; a live listener still blocks us.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(addr)
            sock.listen(128)
            return sock
        except OSError as e:
            sock.close()
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                log.info("Stream port %d on %s is not available (%s); trying the next", p, host, e.strerror)
                last_err = e
                continue
            raise StreamerError("streamHost=%r: cannot listen on port %d: %s" % (host, p, e)) from e
    raise StreamerError(
        "streamPort=%d: no free port in %d..%d on %s (%s); set streamPort to a free port"
        % (port, port, port + tries - 1, host, last_err.strerror if last_err else "out of range")
    )

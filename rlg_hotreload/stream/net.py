"""The stream's listening socket and server: bound for real on the first free port, connections capped.

Why not probe-then-bind: checking that a port is free and binding it later leaves a window in which
another process takes it. The socket bound here is handed to werkzeug as-is (``fd=``).

Why a cap: werkzeug's threaded server starts one thread per connection with no limit; 1000 slow
sockets gave 619 threads (measured). :class:`CappedWSGIServer` answers ``503`` on the accepting thread
(one non-blocking write, then close) once ``max_connections`` are open.
"""

import errno
import logging
import socket
import threading
from typing import Any, Optional

from werkzeug.serving import ThreadedWSGIServer, select_address_family

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


BUSY = (
    b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 5\r\n"
    b"Connection: close\r\n\r\n503: too many connections to this stream server; try again later\n"
)


class CappedWSGIServer(ThreadedWSGIServer):
    """werkzeug's threaded server with at most ``max_connections`` connections served at once."""

    max_connections = 64

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.daemon_threads = True
        self.active = 0
        self.refused = 0
        self._count_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._count_lock:
            full = self.active >= self.max_connections
            if full:
                self.refused += 1
            else:
                self.active += 1
        if not full:
            super().process_request(request, client_address)
            return
        try:
            request.setblocking(False)  # never let a slow client stall the accepting thread
            request.send(BUSY)
        except OSError:
            pass  # the client went away or its buffer is full: closing is all that is left to do
        self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                self.active -= 1

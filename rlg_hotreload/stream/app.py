"""The Flask app behind the streamer: page, MJPEG stream, status JSON, health check, optional token
(and the control routes of :mod:`rlg_hotreload.stream.control_routes`).

Why a factory taking the streamer: routes read only thread-safe state (the hub and an immutable
status snapshot the player thread publishes), so request threads never touch live player objects.

Why a Host check: without a token, any web page the user opens could read ``/status`` and ``/stream``
through DNS rebinding (its own name resolving to 127.0.0.1). Only the bound address and the loopback
names are answered then; a token or ``streamBindAll`` (the user chose to expose it) lifts the check.
"""

import functools
import hmac
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator, Optional

from flask import Flask, Response, g, jsonify, request, send_from_directory

from rlg_hotreload.stream.control_routes import add_control_routes
from rlg_hotreload.stream.handover import wait_handed_over
from rlg_hotreload.stream.hub import BOUNDARY

if TYPE_CHECKING:  # pragma: no cover
    from rlg_hotreload.stream.streamer import FrameStreamer

log = logging.getLogger("rlg_hotreload")

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
TOKEN_COOKIE = "rlg_stream_token"


def _token_ok(expected: str, supplied: Optional[str]) -> bool:
    if supplied is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), supplied.encode("utf-8"))


def create_app(streamer: "FrameStreamer") -> Flask:
    app = Flask("rlg_hotreload.stream", static_folder=None)
    hub = streamer.hub
    token = streamer.token

    @app.before_request
    def _check_host() -> Optional[Response]:
        allowed = streamer.allowed_hosts()
        host = request.headers.get("Host", "").strip().lower()
        if allowed is None or host in allowed:
            return None
        return Response(
            "403: Host %r is not served; open http://127.0.0.1:%s/ (or set streamToken)\n"
            % (host[:100], streamer.port),
            status=403 if host else 400,
            mimetype="text/plain",
        )

    @app.before_request
    def _check_token() -> Optional[Response]:
        if not token:
            return None
        from_query = request.args.get("token")
        supplied = from_query or request.cookies.get(TOKEN_COOKIE) or request.headers.get("X-Token")
        if not _token_ok(token, supplied):
            return Response(
                "401: this stream needs its token: open /?token=<streamToken>\n",
                status=401,
                mimetype="text/plain",
            )
        g.set_token_cookie = from_query is not None
        return None

    @app.after_request
    def _set_cookie(resp: Response) -> Response:
        if token and g.get("set_token_cookie"):
            # The page's <img> and fetch() calls then carry the token without repeating it in URLs.
            resp.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict")
        resp.headers.setdefault("Cache-Control", "no-store")
        return resp

    @app.route("/")
    def index() -> Response:
        with open(os.path.join(STATIC_DIR, "index.html"), encoding="utf-8") as f:
            html = f.read()
        html = html.replace("{{title}}", _html_escape(streamer.title))
        return Response(html, mimetype="text/html")

    @app.route("/static/<path:name>")
    def static_file(name: str) -> Response:
        return send_from_directory(STATIC_DIR, name, max_age=0)

    @app.route("/healthz")
    def healthz() -> Response:
        return jsonify(ok=True, uptime_s=round(time.monotonic() - streamer.started_at, 3))

    @app.route("/status")
    def status() -> Response:
        return jsonify(streamer.status())

    @app.route("/stream")
    def stream() -> Response:
        if not hub.try_add_client(streamer.max_stream_clients):
            return Response(
                "503: %d viewers already watch this stream; try again later\n" % streamer.max_stream_clients,
                status=503, mimetype="text/plain", headers={"Retry-After": "5"},
            )  # fmt: skip
        # werkzeug's own server gives the connection's socket: the frame process may then write to it
        return Response(
            _ClientStream(_frames(request.environ.get("werkzeug.socket")), hub.remove_client),
            mimetype="multipart/x-mixed-replace; boundary=%s" % BOUNDARY,
            direct_passthrough=True,
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    def _frames(sock: Optional[socket.socket]) -> Iterator[bytes]:
        # The client slot was taken in stream(); _ClientStream gives it back exactly once, when werkzeug
        # closes the response (the socket write failed: the viewer went away) or at shutdown.
        yield b""  # sends the headers now: the viewer knows it is connected before a frame exists
        last_seq = -1
        last_send = time.monotonic()
        retry_at = 0.0
        while not hub.closed:
            if sock is not None and hub.serving is not None and time.monotonic() >= retry_at:
                token = hub.hand_over(sock, streamer.keepalive_s, streamer.viewer_timeout_s)
                if token is not None:
                    if wait_handed_over(sock, functools.partial(hub.serves, token), lambda: hub.closed):
                        return
                    yield b"\r\n"  # taken back: ends a part the frame process may have cut short
                    continue
                retry_at = time.monotonic() + 1.0  # not taken now: frames are written here meanwhile
            frame = hub.wait_next(last_seq, timeout=min(0.5, streamer.keepalive_s))
            if frame is None:
                latest = hub.latest
                if latest is not None and time.monotonic() - last_send > streamer.keepalive_s:
                    last_send = time.monotonic()
                    yield latest.part
                continue
            last_seq = frame.seq
            last_send = time.monotonic()
            yield frame.part
            hub.mark_sent()

    add_control_routes(app, streamer)  # POST /control/<action>: pause, resume, pin, follow, back
    return app


class _ClientStream:
    """The MJPEG body: iterates the frame generator; ``close()`` releases the client slot once.

    A bare generator would not do: werkzeug may close a response before iterating it (the viewer left
    at once), and a never-started generator runs no ``finally``: the slot would leak.
    """

    def __init__(self, frames: Iterator[bytes], release: Callable[[], None]) -> None:
        self._frames = frames
        self._release: Optional[Callable[[], None]] = release
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        return self._frames

    def close(self) -> None:
        self._frames.close()
        with self._lock:
            release, self._release = self._release, None
        if release is not None:
            release()


def _html_escape(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")

"""``POST /control/<action>``: pause/resume, pin/follow and back, from the page (or curl).

Why so many checks for a button: these routes change what the monitor does, so a page the user happens
to have open in another tab must not be able to press them. Beyond the app's Host and token checks:

- POST only (``GET`` gets 405): a link or an ``<img>`` cannot trigger anything;
- a JSON body (``Content-Type: application/json``, else 415): an HTML form cannot send one, and a
  cross-origin ``fetch`` with it needs a CORS preflight this server never grants;
- ``Origin`` must be this server (the ``Host`` asked for) and ``Sec-Fetch-Site`` same-origin (or none,
  as curl sends), else 403;
- listening on all interfaces without a token, only loopback clients (an ssh tunnel) may control;
  others watch.

The request thread only queues a command (:class:`~rlg_hotreload.control.PlayerControl`); the player
applies it between steps and logs it (``Control: paused by 127.0.0.1 ...``). The answer waits for that,
bounded: 200 (done), 409 (refused, with why), or 202 (queued: the player is not stepping yet). Every
refused request is logged here with one line.
"""

import ipaddress
import logging
from typing import TYPE_CHECKING, Optional
from urllib.parse import urlsplit

from flask import Flask, Response, jsonify, request

from rlg_hotreload.control import ACTIONS

if TYPE_CHECKING:  # pragma: no cover
    from rlg_hotreload.stream.streamer import FrameStreamer

log = logging.getLogger("rlg_hotreload")

#: How long a request waits for the player to apply its command before answering 202.
ACK_WAIT_S = 3.0
ALL_INTERFACES = ("0.0.0.0", "::", "")


def _text(message: str, status: int) -> Response:
    return Response(message.rstrip("\n") + "\n", status=status, mimetype="text/plain")


def cross_site_reason() -> Optional[str]:
    """Why this request comes from another site (None if it does not, or cannot tell: curl, scripts)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return "Sec-Fetch-Site is %s" % site[:40]
    origin = request.headers.get("Origin")
    if origin is None:
        return None
    host = request.headers.get("Host", "").strip().lower()
    if origin == "null" or urlsplit(origin).netloc.lower() != host:
        return "Origin %s is not this server (%s)" % (origin[:100], host[:100])
    return None


def _is_loopback(addr: Optional[str]) -> bool:
    try:
        return ipaddress.ip_address((addr or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def add_control_routes(app: Flask, streamer: "FrameStreamer") -> None:
    """Register ``/control/<action>`` (see the module docstring) on the streamer's app."""

    @app.route("/control/<action>", methods=["POST"])
    def control(action: str) -> Response:
        ctl = streamer.control
        if action not in ACTIONS:
            return _text("404: no action %r; actions: %s" % (action[:40], ", ".join(ACTIONS)), 404)
        if ctl is None:
            return _text("404: this stream takes no control requests (stream.control=false, or the "
                         "player has none)", 404)  # fmt: skip
        why = cross_site_reason()
        if why is not None:
            return _text("403: cross-site control request refused: %s" % why, 403)
        if not streamer.token and streamer.host in ALL_INTERFACES and not _is_loopback(request.remote_addr):
            return _text("403: control from another machine needs streamToken (this server listens on all "
                         "interfaces without one); watching needs nothing", 403)  # fmt: skip
        if request.mimetype != "application/json":
            return _text("415: send a JSON body (Content-Type: application/json), e.g. {} or {\"to\": "
                         "\"previous\"}", 415)  # fmt: skip
        body = request.get_json(silent=True) if request.get_data() else {}
        if not isinstance(body, dict):
            return _text('400: the body must be a JSON object, e.g. {} or {"to": 3}', 400)
        try:
            cmd = ctl.submit(action, body.get("to"), who=request.remote_addr or "?")
        except ValueError as e:
            return _text("400: %s" % e, 400)
        if not cmd.wait(ACK_WAIT_S):
            log.info("Control: %s by %s queued: the player is not stepping yet", cmd.describe(), cmd.who)
            resp = jsonify(ok=None, message="queued: applies when the player steps", control=ctl.state())
            resp.status_code = 202
            return resp
        resp = jsonify(ok=cmd.ok, message=cmd.message, control=ctl.state())
        resp.status_code = 200 if cmd.ok else 409
        return resp

    @app.after_request
    def _log_refused(resp: Response) -> Response:
        if request.path.startswith("/control/") and resp.status_code >= 400 and resp.status_code != 409:
            reason = resp.get_data(as_text=True).strip().splitlines() if not resp.is_streamed else []
            log.warning("Control: refused %s %s from %s: %s", request.method, request.path[:60],
                        request.remote_addr, reason[0][:200] if reason else resp.status)  # fmt: skip
        return resp

"""FrameStreamer: a player callback that serves the live view over HTTP (page, MJPEG, status JSON).

Why a callback that owns its server: the player stays ignorant of HTTP; it calls hooks between
steps, and this object decides whether a frame is wanted (someone watches and the fps cap allows),
grabs it (for envs that allow it, only a copy of the state: the hub's thread renders it), and hands
it to the encode-once hub. Network work happens on the server's own threads.
"""

import logging
import socket
import threading
import time
from typing import Any, Callable, Dict, Optional, Set, Tuple

from werkzeug.serving import WSGIRequestHandler

from rlg_hotreload.callbacks import Controllable, PlayerCallback, PlayerView
from rlg_hotreload.control import PlayerControl
from rlg_hotreload.pacing import RealtimePacer
from rlg_hotreload.readyfile import write_ready_file
from rlg_hotreload.records import CheckpointInfo, EpisodeRecord, Summary
from rlg_hotreload.stream.app import create_app
from rlg_hotreload.stream.hub import FrameHub
from rlg_hotreload.stream.net import CappedWSGIServer, StreamerError, bind_socket
from rlg_hotreload.stream.render import RENDER_CHOICES
from rlg_hotreload.stream.status import MAX_CHECKPOINTS_IN_STATUS, player_snapshot

log = logging.getLogger("rlg_hotreload")

#: Open connections served at once (one thread each); more get 503. Stream viewers (each holds one
#: connection for as long as it watches) are capped lower so the page and /status stay reachable.
MAX_CONNECTIONS = 64
MAX_STREAM_CLIENTS = 16
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
#: a viewer that takes no bytes for this long is dropped instead of pinning a thread (or the frame process)
VIEWER_TIMEOUT_S = 10.0


class _Handler(WSGIRequestHandler):
    # werkzeug closes every connection anyway; HTTP/1.0 spares the chunked framing, i.e. three
    # writes per frame and client instead of one.
    protocol_version = "HTTP/1.0"
    timeout = VIEWER_TIMEOUT_S

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        # The page polls /status every second: access lines would drown the player's log.
        log.debug("stream http %s %s %s", self.address_string(), self.requestline, code)


class FrameStreamer(PlayerCallback):
    """Serve ``/`` (page), ``/stream`` (MJPEG), ``/status`` (JSON), ``/healthz`` and, for a player that
    takes them (``control=True``), ``POST /control/<action>`` (:mod:`rlg_hotreload.stream.control_routes`).

    ``size`` is a (width, height) box: frames larger than it are scaled down to fit, keeping their
    aspect ratio (never stretched, never upscaled). ``port=0`` picks any free port (tests). ``render``:
    where frames are drawn (``stream.render``: auto, process, thread, player; :mod:`.render`).
    """

    #: With no new frame for this long, the last one is sent again: a dead viewer's socket then fails
    #: and it stops being counted (and rendered for), even while the player is paused.
    keepalive_s = 2.0
    viewer_timeout_s = VIEWER_TIMEOUT_S
    #: False: no frames are taken, watched or not (viewers stay connected and keep the last frame); the
    #: paired benchmark (benchmarks/stream_paired.py) switches it every second
    frames_on = True
    #: True: a state copied after a step is drawn once the player has chosen the next actions (next to the
    #: physics, not the policy; FrameHub's docstring); the paired benchmark compares it with False
    hold_frames = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 58080,
        port_tries: int = 10,
        fps: float = 30.0,
        quality: int = 80,
        token: Optional[str] = None,
        size: Optional[Tuple[int, int]] = None,
        realtime: bool = False,
        ready_file: Optional[str] = None,
        title: str = "rlg-hotreload",
        max_connections: int = MAX_CONNECTIONS,
        max_stream_clients: int = MAX_STREAM_CLIENTS,
        control: bool = True,
        render: str = "auto",
    ) -> None:
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise StreamerError("streamPort must be an integer in 0..65535, got %r" % (port,))
        if not isinstance(port_tries, int) or port_tries < 1:
            raise StreamerError("port_tries must be >= 1, got %r" % (port_tries,))
        if not (isinstance(fps, (int, float)) and fps > 0):
            raise StreamerError("streamFps must be > 0, got %r" % (fps,))
        if not (isinstance(quality, int) and 1 <= quality <= 100):
            raise StreamerError("streamQuality must be an integer in 1..100, got %r" % (quality,))
        if size is not None and (len(size) != 2 or min(int(size[0]), int(size[1])) < 8):
            raise StreamerError("stream.width/stream.height must be >= 8 pixels, got %r" % (size,))
        if render not in RENDER_CHOICES:
            raise StreamerError("stream.render must be one of %s, got %r" % (", ".join(RENDER_CHOICES), render))
        if token is not None and not str(token):
            token = None
        self.host = str(host)
        self.requested_port = port
        self.port_tries = port_tries
        self.fps = float(fps)
        self.token = None if token is None else str(token)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.realtime = bool(realtime)
        self.ready_file = ready_file
        self.title = title
        self.max_connections = int(max_connections)
        self.max_stream_clients = int(max_stream_clients)
        self.control_enabled = bool(control)
        #: the player's controls, served at POST /control/<action> (None: view only)
        self.control: Optional[PlayerControl] = None
        self.hub = FrameHub(quality=quality, size=self.size, render=render)
        self.port: Optional[int] = None
        self.url: Optional[str] = None
        self.started_at = time.monotonic()
        self._server: Optional[CappedWSGIServer] = None
        self._reserved: Optional[socket.socket] = None  # bound by reserve(), served by start()
        self._health: Optional[Callable[[], Dict[str, Any]]] = None
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._snapshot: Dict[str, Any] = {"checkpoint": None, "checkpoints": [], "reloads": 0}
        self._snap_dirty = True
        self._snap_at = 0.0
        self._steps = 0
        self._next_frame_t = 0.0
        self._acting = False  # the player calls on_action (HotReloadPlayer, ComparePlayer do)
        # realtime: hold the player to wall-clock speed, watched or not (its own callback). Unwatched too,
        # because a monitor shares its machine with training: sprinting while nobody looks would take the
        # CPU that training needs, for episodes no one sees (frames are still rendered only when watched).
        self.pacer: Optional[RealtimePacer] = RealtimePacer() if realtime else None

    # -- server lifecycle --------------------------------------------------------------------
    def start(self) -> str:
        """Bind (first free port of ``port_tries``), serve in a thread, log and return the URL."""
        if self._server is not None:
            return self.url or ""
        sock, self._reserved = self._reserved or self.reserve(), None
        try:
            server = CappedWSGIServer(self.host, 0, create_app(self), _Handler, fd=sock.fileno())
        finally:
            sock.close()  # the server holds its own duplicate of the descriptor
        server.max_connections = self.max_connections
        self._server = server
        self.port = int(server.server_address[1])
        shown = "[%s]" % self.host if ":" in self.host else self.host
        self.url = "http://%s:%d/" % (shown, self.port)
        self.hub.start()
        self.started_at = time.monotonic()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="rlg-stream-http", daemon=True
        )
        self._thread.start()
        if self.host in ("0.0.0.0", "::", ""):
            log.warning(
                "Stream server listens on ALL interfaces (%s:%d): anyone who can reach this machine can "
                "watch%s. Open http://%s:%d/ from another machine.",
                self.host or "0.0.0.0",
                self.port,
                "" if self.token else "; set streamToken to require a token",
                socket.gethostname(),
                self.port,
            )
        if self.port != self.requested_port and self.requested_port:
            log.warning("streamPort %d was busy; using %d", self.requested_port, self.port)
        if self.ready_file:
            write_ready_file(self.ready_file, self.url, self.port)
        log.info("Streaming at %s%s", self.url, " (needs ?token=<streamToken>)" if self.token else "")
        return self.url

    def reserve(self) -> socket.socket:
        """Bind the port now (before a simulator starts: a bad host or a full port range fails fast);
        ``start`` serves on this socket later. ``stop`` closes it if serving never started."""
        if self._reserved is None:
            self._reserved = bind_socket(self.host, self.requested_port, self.port_tries)
        return self._reserved

    def setup(self, player: Any) -> None:
        """Player lifecycle: bind and serve (``start``) when the player starts following checkpoints."""
        if self.control_enabled and isinstance(player, Controllable):
            self.control = player.control
        self.start()

    def close(self) -> None:
        """Player lifecycle: stop serving (``stop``), after ``on_stop``."""
        self.stop()

    def stop(self, timeout: float = 3.0) -> None:
        """Close client streams, shut the server down and join its thread; every wait is bounded."""
        server, self._server = self._server, None
        if self._reserved is not None:
            self._reserved.close()
            self._reserved = None
        if server is None:
            return
        self.hub.close(timeout)
        if not self.hub.wait_clients(0, timeout):
            log.warning("%d stream client(s) still attached at shutdown", self.hub.clients)
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
        log.info("Stream server at %s stopped", self.url)

    def allowed_hosts(self) -> Optional[Set[str]]:
        """Host headers answered (DNS-rebinding guard), or None = any (a token is set, or all interfaces)."""
        if self.token or self.host in ("0.0.0.0", "::", "") or self.port is None:
            return None
        bound = "[%s]" % self.host if ":" in self.host else self.host
        names = {bound.lower(), *LOOPBACK_NAMES}
        return names | {"%s:%d" % (n, self.port) for n in names}

    @property
    def open_connections(self) -> int:
        server = self._server
        return server.active if server is not None else 0

    @property
    def wants_frames(self) -> bool:
        """True while at least one viewer is attached: only then does on_step render."""
        return self._server is not None and self.hub.clients > 0

    # -- player hooks (player thread) --------------------------------------------------------
    @property
    def paced_sleep_s(self) -> float:
        """Seconds slept to hold real time (0 without ``realtime``)."""
        return self.pacer.slept_s if self.pacer is not None else 0.0

    def on_start(self, player: PlayerView) -> None:
        self._snap_dirty = True
        self._health = player.reload_health

    def on_reload(self, player: PlayerView, info: CheckpointInfo) -> None:
        self._snap_dirty = True
        if self.pacer is not None:
            self.pacer.on_reload(player, info)
        self._refresh_snapshot(player)

    def on_episode_end(self, player: PlayerView, episode: EpisodeRecord) -> None:
        self._snap_dirty = True  # cheap: batched envs end many episodes per step

    def on_stop(self, player: PlayerView, summary: Summary) -> None:
        self._snap_dirty = True
        self._refresh_snapshot(player)  # the final numbers; close() (called next) stops the server

    def on_action(self, player: PlayerView, step: int) -> None:
        self._acting = True  # this player calls on_action: a state copied after a step can wait for it
        self.hub.release()

    def on_step(self, player: PlayerView, step: int) -> None:
        self._steps = step
        now = time.monotonic()
        if self._snap_dirty and now - self._snap_at > 0.5:
            self._refresh_snapshot(player)
        if self.pacer is not None:
            self.pacer.on_step(player, step)  # sleeps whether or not frames are wanted
            now = time.monotonic()
        if not self.frames_on or not self.wants_frames:
            return
        if now < self._next_frame_t:
            return
        interval = 1.0 / self.fps
        # Schedule-based cap keeps the average rate at exactly fps despite step granularity;
        # after a stall (or at the start) it resyncs to now instead of bursting to catch up.
        if now - self._next_frame_t > interval:
            self._next_frame_t = now + interval
        else:
            self._next_frame_t += interval
        # Pixels, or (when the env can) a copy of its state rendered elsewhere (stream.render: a frame
        # process or the hub's thread): the player thread then pays microseconds, not a render. Once per
        # step, however many callbacks ask.
        frame = player.grab_frame() if self.hub.render_on_player_thread else player.grab_frame_deferred()
        if frame is not None:
            self.hub.submit(frame, held=self._acting and self.hold_frames)

    # -- status --------------------------------------------------------------------------------
    def _refresh_snapshot(self, player: PlayerView) -> None:
        """Build the status dict on the player thread, so HTTP threads never iterate live dicts."""
        snap = player_snapshot(player, MAX_CHECKPOINTS_IN_STATUS)
        with self._lock:
            self._snapshot = snap
            self._snap_dirty = False
            self._snap_at = time.monotonic()

    def status(self) -> Dict[str, Any]:
        """The /status payload: last player snapshot + live stream counters + file age."""
        with self._lock:
            snap = dict(self._snapshot)
        cp = snap.get("checkpoint")
        snap["file_age_s"] = round(time.time() - cp["mtime"], 1) if cp and cp.get("mtime") else None
        snap["steps"] = self._steps
        health = self._health
        snap["watcher"] = health() if health is not None else None
        snap["title"] = self.title
        snap["control"] = self.control.state() if self.control is not None else None  # live, thread-safe
        snap["server_time"] = time.time()
        stream = self.hub.stats()
        stream.update(fps_cap=self.fps, realtime=self.realtime, watching=self.wants_frames)
        snap["stream"] = stream
        snap["clients"] = stream["clients"]
        snap["source_fps"] = stream["source_fps"]
        snap["delivered_fps"] = stream["delivered_fps"]  # what the page shows: frames/s a viewer receives
        return snap

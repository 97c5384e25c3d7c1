"""Encode-once frame hub: one JPEG per rendered frame, fanned out to every viewer by sequence number.

Why this shape: the seed split one frame queue between browser clients (each saw a fraction of the
frames) and re-encoded per client. Here the player thread only drops a frame into a one-slot
mailbox (never blocks; an older unencoded frame is replaced and counted as dropped), a single
encoder thread turns it into JPEG bytes once, and publishes ``(seq, jpeg, t_render)`` under a
condition variable. Each client waits for ``seq > last_seen`` and always takes the newest frame,
so a slow client skips frames instead of slowing anyone else.

Where the render strategy is a frame process, a client's socket is handed over to it instead
(:meth:`FrameHub.hand_over`, :mod:`rlg_hotreload.stream.fanout`): that process writes each frame to
every such viewer, and the player's process does no work per frame and viewer. ``serving`` tells the
request threads whether that is possible now; when it changes, they take their viewers back.

The frame dropped into the mailbox may be a :class:`~rlg_hotreload.frame_grab.PendingFrame` (the
watched env's state, copied by the player thread): then it is rendered first, where the render
strategy (``stream.render``, :mod:`rlg_hotreload.stream.render`) says: in a frame process (``auto``
for MuJoCo tasks) or on this thread. The strategy is created, used and closed on this thread (a GL
context belongs to one thread). A stale state is replaced like a stale array, so renders never queue
up either: at most one per published frame.

A state copied after a step may be *held* (``submit(held=True)``) until the player has chosen the next
step's actions (:meth:`FrameHub.release`, from ``on_action``): it is then drawn while the env's physics
runs, not while the policy does. Why: with the policy on the GPU that also draws, the GL draw is nearly
all that one viewer costs a 1-env BlindGrasping monitor (H100: 5–7 % of its steps/s with the asset's look,
2–4 % with the frames' lighter one); drawn right after a step, the draw meets the policy's next forward
pass (held: +1.4 points, within the noise; docs/benchmarks.md §5). The hold never waits more than
``HOLD_MAX_S``.
"""

import logging
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from rlg_hotreload.frame_grab import FrameLike, PendingFrame
from rlg_hotreload.stream.frames import BOUNDARY, Frame, RateMeter, fit_size, mjpeg_part, to_rgb_uint8
from rlg_hotreload.stream.handover import Handover
from rlg_hotreload.stream.render import RENDER_CHOICES, ThreadRender, make_render

log = logging.getLogger("rlg_hotreload")

#: the longest a held state waits for :meth:`FrameHub.release` (a player paused or stopping between steps)
HOLD_MAX_S = 0.1

__all__ = ["BOUNDARY", "Frame", "FrameHub", "RateMeter", "fit_size", "mjpeg_part", "to_rgb_uint8"]


class FrameHub:
    """Mailbox → encoder thread → latest frame + condition variable; counts everything it does."""

    def __init__(self, quality: int = 80, size: Optional[Tuple[int, int]] = None, render: str = "auto") -> None:
        if not 1 <= int(quality) <= 100:
            raise ValueError("quality must be in 1..100, got %r" % (quality,))
        self.quality = int(quality)
        self.size = size
        self.set_render(render)
        self._renders: Dict[str, ThreadRender] = {}  # strategies made so far, by name (encoder thread only)
        self.render_info: Dict[str, object] = {"name": render}
        self._cond = threading.Condition()
        self._mailbox: Optional[Tuple[FrameLike, float]] = None
        self._held = False  # the state in the mailbox waits for release() (the next step's physics)
        self._handovers: List[Handover] = []
        self.serving: Optional[object] = None  # what writes handed-over viewers' frames now (encoder thread)
        self.handed_over = 0  # viewers handed over so far
        self._latest: Optional[Frame] = None
        self._closed = False
        self._clients = 0
        self._thread: Optional[threading.Thread] = None
        self.submitted = 0  # frames handed in by the player
        self.encoded = 0  # JPEG encodes done (== published frames)
        self.dropped = 0  # replaced in the mailbox before the encoder got to them
        self.held = 0  # held states that release() let go (drawn next to the physics, not the policy)
        self.sent = 0  # frame deliveries summed over clients
        self.encode_s = 0.0  # total seconds spent encoding
        self.rendered = 0  # PendingFrames rendered off the player thread (encoder thread or frame process)
        self.render_s = 0.0  # total seconds spent rendering them
        self.source_rate = RateMeter()
        self.encode_rate = RateMeter()
        self.send_rate = RateMeter()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            self._closed = False
        self._thread = threading.Thread(target=self._encode_loop, name="rlg-jpeg", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 2.0) -> None:
        """Wake every waiter (clients return, the encoder exits) and join the encoder, bounded."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for render in list(self._renders.values()):
            render.abort()  # an encoder thread waiting for the frame process returns at once
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("JPEG encoder thread did not stop within %.1f s", timeout)
            self._thread = None

    def set_render(self, name: str) -> None:
        """Choose the render strategy (:data:`RENDER_CHOICES`); the encoder thread switches at its next
        frame (the benchmark switches on a running player)."""
        if name not in RENDER_CHOICES:
            raise ValueError("stream.render must be one of %s, got %r" % (", ".join(RENDER_CHOICES), name))
        self.render_name = name

    @property
    def render_on_player_thread(self) -> bool:
        """True when the player thread should render (``grab_frame``) rather than copy a state."""
        return self.render_name == "player"

    @property
    def closed(self) -> bool:
        return self._closed

    # -- clients -----------------------------------------------------------------------------
    @property
    def clients(self) -> int:
        return self._clients

    def add_client(self) -> None:
        with self._cond:
            self._clients += 1

    def try_add_client(self, limit: int) -> bool:
        """Count one more client unless ``limit`` are attached already (atomic check-and-add)."""
        with self._cond:
            if self._clients >= limit:
                return False
            self._clients += 1
            return True

    def remove_client(self) -> None:
        with self._cond:
            self._clients -= 1
            self._cond.notify_all()

    def wait_clients(self, n: int, timeout: float) -> bool:
        """Block until the client count equals ``n`` (tests and ``stop()`` use this)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._clients == n, timeout)

    # -- producer side (player thread) -------------------------------------------------------
    def submit(self, frame: FrameLike, t_render: Optional[float] = None, held: bool = False) -> None:
        """Hand a frame (pixels, or a PendingFrame to render) to the encoder without blocking; replaces an
        unencoded older one. ``t_render`` defaults to the PendingFrame's state time, else now. ``held``: a
        PendingFrame is drawn after :meth:`release` (or ``HOLD_MAX_S``), see the module docstring."""
        if t_render is None:
            t_render = frame.t_state if isinstance(frame, PendingFrame) else time.time()
        t = t_render
        with self._cond:
            if self._mailbox is not None:
                self.dropped += 1
            self._mailbox = (frame, t)
            self._held = held and isinstance(frame, PendingFrame)
            self.submitted += 1
            self._cond.notify_all()
        self.source_rate.tick()

    def release(self) -> None:
        """The env's physics starts now: a held state may be drawn (player thread; nothing held, no lock)."""
        if self._held:
            with self._cond:
                if self._held:
                    self._held = False
                    self.held += 1
                    self._cond.notify_all()

    # -- encoder thread ----------------------------------------------------------------------
    def _encode_loop(self) -> None:
        try:
            self._encode_frames()
        finally:
            self.serving = None
            with self._cond:
                for h in self._handovers:
                    h.done = True
                self._handovers = []
                self._cond.notify_all()
            renders, self._renders = self._renders, {}
            for render in renders.values():
                render.close()  # on this thread: a GL context it holds was made current here

    def _strategy(self) -> ThreadRender:
        """The strategy named now; one switched away from is kept (idle) until close: switching back (the
        benchmark does) then starts no second frame process."""
        name = self.render_name
        render = self._renders.get(name)
        if render is None:
            render = self._renders[name] = make_render(name, self.quality, self.size)
        return render

    def _encode_frames(self) -> None:
        active: Optional[ThreadRender] = None
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._mailbox is not None or bool(self._handovers) or self._closed)
                if self._held and not self._handovers:
                    self._cond.wait_for(lambda: not self._held or self._closed, HOLD_MAX_S)
                    self._held = False  # released, or waited HOLD_MAX_S: drawn now either way
                if self._closed:
                    return
                item = self._mailbox
                self._mailbox = None
                handovers, self._handovers = self._handovers, []
                for h in handovers:
                    h.taken = True
            render = self._strategy()
            if active is not None and active is not render:
                active.release_viewers()  # switched away: its viewers are taken back, none torn
            active = render
            self._answer(render, handovers)
            self.serving = render.serving()
            if item is None:
                continue
            frame, t_render = item
            latest = self._latest  # only this thread publishes: no lock needed to read it
            seq = latest.seq + 1 if latest is not None else 1
            out = render.produce(frame, seq, t_render)
            self.render_info = render.describe()
            self.serving = render.serving()
            if out is None:
                continue
            frame_out = Frame(seq, out.jpeg, t_render, out.width, out.height, out.part)
            with self._cond:
                self._latest = frame_out
                self.encoded += 1
                self.encode_s += out.encode_s
                self.sent += out.sent
                if out.render_s is not None and isinstance(frame, PendingFrame):
                    self.rendered += 1
                    self.render_s += out.render_s
                self._cond.notify_all()
            self.encode_rate.tick()
            if out.sent:
                self.send_rate.tick(count=out.sent)

    def _answer(self, render: ThreadRender, handovers: List[Handover]) -> None:
        for h in handovers:
            token = render.hand_over(h.sock, h.keepalive_s, h.stall_s)
            with self._cond:
                h.token, h.done = token, True
                if token is not None:
                    self.handed_over += 1
                self._cond.notify_all()

    # -- hand-over (a request thread) ---------------------------------------------------------
    def serves(self, token: object) -> bool:
        """True while ``token`` (from :meth:`hand_over`) still writes the frames of the viewers given to it."""
        return self.serving is token

    def hand_over(self, sock: Any, keepalive_s: float, stall_s: float, timeout: float = 5.0) -> Optional[object]:
        """Ask the encoder thread to hand this viewer's socket to what ``serving`` names; returns that
        token, or None (not possible now, or the encoder thread did not get to it within ``timeout``)."""
        h = Handover(sock, keepalive_s, stall_s)
        with self._cond:
            if self._closed or self.serving is None:
                return None
            self._handovers.append(h)
            self._cond.notify_all()
            # once taken, the encoder thread answers within the frame process's own bounded wait
            if not self._cond.wait_for(lambda: h.done or (self._closed and not h.taken), timeout):
                if not h.taken:
                    self._handovers.remove(h)
                    return None
                if not self._cond.wait_for(lambda: h.done, 60.0):  # its own waits are bounded by 10 s
                    log.error("The stream's encoder thread did not answer a viewer hand-over within 60 s")
            return h.token

    # -- consumer side (one server thread per client) ----------------------------------------
    @property
    def latest(self) -> Optional[Frame]:
        return self._latest

    def wait_next(self, last_seq: int, timeout: float) -> Optional[Frame]:
        """Newest frame with ``seq > last_seq``, or None on timeout / close (callers re-check)."""
        with self._cond:

            def ready() -> bool:
                return self._closed or (self._latest is not None and self._latest.seq > last_seq)

            if not self._cond.wait_for(ready, timeout) or self._closed:
                return None
            return self._latest

    def mark_sent(self) -> None:
        with self._cond:
            self.sent += 1
        self.send_rate.tick()

    def delivered_fps(self) -> float:
        """New frames per second that each viewer actually receives (mean over viewers; 0 with none).

        What a viewer sees, unlike ``source_fps`` (frames rendered) or the fps cap: a slow viewer that
        skips frames lowers it. Keepalive repeats of an old frame are not counted."""
        clients = self._clients
        return self.send_rate.rate() / clients if clients > 0 else 0.0

    def stats(self) -> Dict[str, object]:
        latest = self._latest
        return {
            "clients": self._clients,
            "source_fps": round(self.source_rate.rate(), 2),
            "encode_fps": round(self.encode_rate.rate(), 2),
            "send_fps": round(self.send_rate.rate(), 2),
            "delivered_fps": round(self.delivered_fps(), 2),
            "frames_submitted": self.submitted,
            "frames_encoded": self.encoded,
            "frames_dropped": self.dropped,
            "frames_held": self.held,  # drawn next to the following step's physics (on_action), not at once
            "frames_sent": self.sent,
            "handed_over": self.handed_over,  # viewers whose frames the frame process writes (so far)
            "encode_ms_mean": round(1000.0 * self.encode_s / self.encoded, 2) if self.encoded else None,
            "frames_rendered_by_encoder": self.rendered,  # rendered off the player thread (thread or process)
            "render": self.render_info,  # strategy in use: name, and for process its pid and any fallback
            "render_ms_mean": round(1000.0 * self.render_s / self.rendered, 2) if self.rendered else None,
            "seq": latest.seq if latest else 0,
            "width": latest.width if latest else None,
            "height": latest.height if latest else None,
            "quality": self.quality,
        }

"""Encode-once frame hub: one JPEG per rendered frame, fanned out to every viewer by sequence number.

Why this shape: the seed split one frame queue between browser clients (each saw a fraction of the
frames) and re-encoded per client. Here the player thread only drops a frame into a one-slot
mailbox (never blocks; an older unencoded frame is replaced and counted as dropped), a single
encoder thread turns it into JPEG bytes once, and publishes ``(seq, jpeg, t_render)`` under a
condition variable. Each client waits for ``seq > last_seen`` and always takes the newest frame,
so a slow client skips frames instead of slowing anyone else.

The frame dropped into the mailbox may be a :class:`~rlg_hotreload.frame_grab.PendingFrame` (the
watched env's state, copied by the player thread): then this same thread renders it first, with a
renderer it owns and closes when it ends (a GL context belongs to one thread). A stale state is
replaced like a stale array, so renders never queue up either: at most one per published frame.
"""

import io
import logging
import threading
import time
from collections import deque
from typing import Deque, Dict, NamedTuple, Optional, Tuple

import numpy as np
from PIL import Image

from rlg_hotreload.frame_grab import FrameLike, FrameResolver, PendingFrame

log = logging.getLogger("rlg_hotreload")


BOUNDARY = "rlgframe"


def mjpeg_part(jpeg: bytes, seq: int, t_render: float) -> bytes:
    """One multipart part; the extra headers let clients measure latency and spot skipped frames."""
    head = (
        "--%s\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n"
        "X-Frame-Seq: %d\r\nX-Render-Time: %.6f\r\n\r\n" % (BOUNDARY, len(jpeg), seq, t_render)
    )
    return head.encode("ascii") + jpeg + b"\r\n"


class Frame(NamedTuple):
    """One published frame. ``t_render`` is ``time.time()`` right after the render returned on the
    player thread, or, for a frame rendered on the encoder thread, when the player copied its state
    (so a latency measured from it includes that render).

    ``part`` is the complete multipart chunk, built once here so that each client thread only
    writes bytes (less work under the GIL per client, i.e. less pressure on the player thread).
    """

    seq: int
    jpeg: bytes
    t_render: float
    width: int
    height: int
    part: bytes


class RateMeter:
    """Events per second over a sliding window; reads 0 once events stop (no stale rates)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: Deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def rate(self, now: Optional[float] = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            n = len(self._times)
            if n < 2:
                return 0.0
            # (n-1) intervals since the oldest event in the window; measuring up to `now` (not the
            # newest event) makes the rate decay to 0 when the source stalls instead of freezing.
            return (n - 1) / max(now - self._times[0], 1e-6)


def to_rgb_uint8(frame: np.ndarray) -> np.ndarray:
    """Accept what renderers return (HxWx3/4 uint8 or float in [0,1]) and give HxWx3 uint8."""
    arr = np.asarray(frame)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise ValueError("frame must be HxWx3 or HxWx4, got shape %s" % (arr.shape,))
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    return np.ascontiguousarray(arr)


def fit_size(size: Tuple[int, int], box: Tuple[int, int]) -> Tuple[int, int]:
    """Largest size within ``box`` with the aspect ratio of ``size``; never upscales.

    Why not stretch to ``box``: a 500x500 classic-control frame forced to 640x480 looks wrong, and
    upscaling only costs bandwidth.
    """
    w, h = size
    scale = min(box[0] / w, box[1] / h, 1.0)
    return max(1, int(round(w * scale))), max(1, int(round(h * scale)))


class FrameHub:
    """Mailbox → encoder thread → latest frame + condition variable; counts everything it does."""

    def __init__(self, quality: int = 80, size: Optional[Tuple[int, int]] = None) -> None:
        if not 1 <= int(quality) <= 100:
            raise ValueError("quality must be in 1..100, got %r" % (quality,))
        self.quality = int(quality)
        self.size = size
        self._cond = threading.Condition()
        self._mailbox: Optional[Tuple[FrameLike, float]] = None
        self._latest: Optional[Frame] = None
        self._closed = False
        self._clients = 0
        self._thread: Optional[threading.Thread] = None
        self.submitted = 0  # frames handed in by the player
        self.encoded = 0  # JPEG encodes done (== published frames)
        self.dropped = 0  # replaced in the mailbox before the encoder got to them
        self.sent = 0  # frame deliveries summed over clients
        self.encode_s = 0.0  # total seconds spent encoding
        self.rendered = 0  # PendingFrames rendered by the encoder thread (off the player thread)
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
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("JPEG encoder thread did not stop within %.1f s", timeout)
            self._thread = None

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
    def submit(self, frame: FrameLike, t_render: Optional[float] = None) -> None:
        """Hand a frame (pixels, or a PendingFrame to render) to the encoder without blocking; replaces an
        unencoded older one. ``t_render`` defaults to the PendingFrame's state time, else now."""
        if t_render is None:
            t_render = frame.t_state if isinstance(frame, PendingFrame) else time.time()
        t = t_render
        with self._cond:
            if self._mailbox is not None:
                self.dropped += 1
            self._mailbox = (frame, t)
            self.submitted += 1
            self._cond.notify_all()
        self.source_rate.tick()

    # -- encoder thread ----------------------------------------------------------------------
    def encode(self, frame: np.ndarray) -> Tuple[bytes, int, int]:
        img = Image.fromarray(to_rgb_uint8(frame))
        if self.size is not None:
            fitted = fit_size(img.size, self.size)
            if fitted != img.size:
                img = img.resize(fitted, Image.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=self.quality)
        return buf.getvalue(), img.size[0], img.size[1]

    def _encode_loop(self) -> None:
        resolver = FrameResolver()
        try:
            self._encode_frames(resolver)
        finally:
            resolver.close()  # on this thread: its GL context was made current here

    def _encode_frames(self, resolver: FrameResolver) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._mailbox is not None or self._closed)
                if self._closed:
                    return
                item = self._mailbox
                self._mailbox = None
            assert item is not None
            pending, t_render = item
            if isinstance(pending, PendingFrame):
                done, spent = resolver.rendered, resolver.render_s
                frame = resolver(pending)
                with self._cond:
                    self.rendered += resolver.rendered - done
                    self.render_s += resolver.render_s - spent
                if frame is None:
                    continue
            else:
                frame = pending
            t0 = time.perf_counter()
            try:
                jpeg, w, h = self.encode(frame)
            except (ValueError, OSError, TypeError) as e:
                log.error("Cannot encode frame (shape %s): %s", getattr(frame, "shape", "?"), e)
                continue
            latest = self._latest  # only this thread publishes: no lock needed to read it
            seq = latest.seq + 1 if latest is not None else 1
            frame_out = Frame(seq, jpeg, t_render, w, h, mjpeg_part(jpeg, seq, t_render))
            dt = time.perf_counter() - t0
            with self._cond:
                self._latest = frame_out
                self.encoded += 1
                self.encode_s += dt
                self._cond.notify_all()
            self.encode_rate.tick()

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
            "frames_sent": self.sent,
            "encode_ms_mean": round(1000.0 * self.encode_s / self.encoded, 2) if self.encoded else None,
            "frames_rendered_by_encoder": self.rendered,  # rendered on the encoder thread, not the player's
            "render_ms_mean": round(1000.0 * self.render_s / self.rendered, 2) if self.rendered else None,
            "seq": latest.seq if latest else 0,
            "width": latest.width if latest else None,
            "height": latest.height if latest else None,
            "quality": self.quality,
        }

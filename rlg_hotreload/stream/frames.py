"""What a published frame is and how pixels become one: JPEG encode, the multipart part, a rate meter.

Why a module of its own: the encoder thread (:mod:`rlg_hotreload.stream.hub`) and the frame process
(:mod:`rlg_hotreload.stream.frameproc_child`) must encode exactly alike (same quality, same size box,
same part headers), and the frame process must not import torch, Flask or the player to do it: this
module needs only numpy and Pillow.
"""

import io
import threading
import time
from collections import deque
from typing import Deque, NamedTuple, Optional, Tuple

import numpy as np
from PIL import Image

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
    player thread, or, for a frame rendered elsewhere (encoder thread, frame process), when the player
    copied its state (so a latency measured from it includes that render).

    ``part`` is the complete multipart chunk, built once so that each client thread only writes bytes
    (less work under the GIL per client, i.e. less pressure on the player thread).
    """

    seq: int
    jpeg: bytes
    t_render: float
    width: int
    height: int
    part: bytes


class Encoded(NamedTuple):
    """What a render strategy hands the hub for one frame (see :mod:`rlg_hotreload.stream.render`).
    ``render_s`` is None when no render happened off the player thread (pixels came in); ``sent``: whole
    new parts the frame process wrote to viewers handed over to it since its last frame."""

    jpeg: bytes
    width: int
    height: int
    part: bytes
    render_s: Optional[float]
    encode_s: float
    sent: int = 0


class RateMeter:
    """Events per second over a sliding window; reads 0 once events stop (no stale rates)."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: Deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: Optional[float] = None, count: int = 1) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.extend([now] * count)
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


def encode_jpeg(frame: np.ndarray, quality: int, size: Optional[Tuple[int, int]]) -> Tuple[bytes, int, int]:
    """JPEG bytes of ``frame`` scaled down into the ``size`` box (if any), and the encoded width, height."""
    img = Image.fromarray(to_rgb_uint8(frame))
    if size is not None:
        fitted = fit_size(img.size, size)
        if fitted != img.size:
            img = img.resize(fitted, Image.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue(), img.size[0], img.size[1]

"""Where the stream's frames are drawn and encoded: one named strategy per place (``stream.render``).

- ``player``: the player thread renders (``grab_frame``); the hub's encoder thread encodes.
- ``thread``: the player thread copies the watched env's state (``grab_frame_deferred``); the encoder
  thread renders it (:class:`~rlg_hotreload.frame_grab.FrameResolver`) and encodes it.
- ``process``: as ``thread``, but a frame process (:mod:`rlg_hotreload.stream.frameproc`) renders and
  encodes, under a GIL of its own; the encoder thread only packs the state and receives the bytes.
- ``auto`` (default): ``process`` where the env can give a render state that a process can draw,
  else ``thread`` where it can render elsewhere at all, else the player thread (gymnasium's
  ``render()``, camera hooks: those always render on the player thread).

Why strategies: each place has its own failure and fallback rules, and the benchmark switches between
them on one running player. Strategies are used by ONE thread (the hub's encoder thread: a GL context
belongs to the thread that made it current), which creates and closes them. A frame process that dies,
hangs or cannot start costs one warning; its strategy then renders on the encoder thread, and the
player never notices.
"""

import logging
import time
from typing import Any, Dict, Optional, Tuple

from rlg_hotreload.frame_grab import FrameLike, FrameResolver, PendingFrame
from rlg_hotreload.stream.frameproc import (
    FrameProcess,
    FrameProcessGone,
    FrameRenderFailed,
    can_render_in_process,
)
from rlg_hotreload.stream.frames import Encoded, encode_jpeg, mjpeg_part

log = logging.getLogger("rlg_hotreload")

#: the values of ``stream.render`` (rlg_hotreload.schema holds the key)
RENDER_CHOICES = ("auto", "process", "thread", "player")


class ThreadRender:
    """Pixels are encoded here; a PendingFrame is rendered here first (encoder thread)."""

    name = "thread"
    on_player_thread = False  # the player thread hands over a state copy, not pixels

    def __init__(self, quality: int, size: Optional[Tuple[int, int]]) -> None:
        self.quality = quality
        self.size = size
        self.resolver = FrameResolver()

    def produce(self, frame: FrameLike, seq: int, t_render: float) -> Optional[Encoded]:
        """JPEG + part of ``frame`` or None (nothing to show, or an error already logged)."""
        render_s: Optional[float] = None
        if isinstance(frame, PendingFrame):
            spent = self.resolver.render_s
            pixels = self.resolver(frame)
            if pixels is None:
                return None
            render_s = self.resolver.render_s - spent
        else:
            pixels = frame
        t0 = time.perf_counter()
        try:
            jpeg, w, h = encode_jpeg(pixels, self.quality, self.size)
        except (ValueError, OSError, TypeError) as e:
            log.error("Cannot encode frame (shape %s): %s", getattr(pixels, "shape", "?"), e)
            return None
        return Encoded(jpeg, w, h, mjpeg_part(jpeg, seq, t_render), render_s, time.perf_counter() - t0)

    def serving(self) -> Optional[object]:
        """What writes frames to handed-over viewers now (a token compared by identity), or None: viewers
        cannot be handed over, and any handed over earlier must be taken back."""
        return None

    def hand_over(self, sock: Any, keepalive_s: float, stall_s: float) -> Optional[object]:
        """Let :meth:`serving` write every frame to this viewer's socket; the token, or None (not taken)."""
        return None

    def release_viewers(self) -> None:
        """Stop writing to handed-over viewers without ending their connections (a strategy switch)."""

    def abort(self) -> None:
        """From any thread, at shutdown: end waits on other processes (none here)."""

    def close(self) -> None:
        self.resolver.close()

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name}


class PlayerRender(ThreadRender):
    """The player thread renders; this thread only encodes."""

    name = "player"
    on_player_thread = True


class ProcessRender(ThreadRender):
    """A frame process renders and encodes what it can (see the module docstring); the rest, and
    everything after the process is gone, goes the ``thread`` way. ``explicit``: the user asked for
    ``process`` (a task that cannot be drawn in a process is then worth a warning)."""

    name = "process"

    def __init__(self, quality: int, size: Optional[Tuple[int, int]], explicit: bool = False) -> None:
        super().__init__(quality, size)
        self.explicit = explicit
        self.proc: Optional[FrameProcess] = None
        self._env: Any = None
        self.gone: Optional[str] = None  # why frames are drawn here now (None: the process is in use)
        self.failures = 0
        self.spawns = 0
        self.frames = 0  # frames the process drew and encoded
        self._aborted = False  # shutdown killed the process: its end is no news

    def produce(self, frame: FrameLike, seq: int, t_render: float) -> Optional[Encoded]:
        if isinstance(frame, PendingFrame) and self.gone is None:
            proc = self._process_for(frame.env)
            if proc is not None:
                try:
                    if proc.ready():  # until it is (~0.5 s), frames are drawn here: the viewer waits less
                        self.resolver.close()  # the GL context of those first frames is not needed any more
                        out = proc.render(frame.state, seq, t_render)
                        self.frames += 1
                        return out
                except FrameProcessGone as e:
                    self._fall_back(str(e))
                except FrameRenderFailed as e:
                    self.failures += 1
                    if self.failures % 100 == 1:
                        log.error("The frame process cannot draw a frame (%d failure(s)): %s", self.failures, e)
                    return None
        return super().produce(frame, seq, t_render)

    def serving(self) -> Optional[object]:
        proc = self.proc
        if proc is None or self.gone is not None:
            return None
        try:
            return proc if proc.ready() else None
        except FrameProcessGone:
            return None  # produce() falls back, with its warning, at the next frame

    def hand_over(self, sock: Any, keepalive_s: float, stall_s: float) -> Optional[object]:
        proc = self.proc
        if proc is None or self.serving() is None:
            return None
        try:
            refused = proc.hand_over(sock, keepalive_s, stall_s)
        except FrameProcessGone as e:
            self._fall_back(str(e))
            return None
        if refused is not None:
            log.error("The frame process did not take a stream viewer: %s", refused)
            return None
        return proc

    def release_viewers(self) -> None:
        proc = self.proc
        if proc is None:
            return
        try:
            proc.drop_viewers()
        except FrameProcessGone as e:
            self._fall_back(str(e))

    def _process_for(self, env: Any) -> Optional[FrameProcess]:
        if self.proc is not None and env is self._env:
            return self.proc
        self._stop_process()
        self._env = env
        try:
            renderer = env.make_frame_renderer()
        except Exception as e:  # noqa: BLE001 - a task's renderer factory can raise anything
            self._fall_back("the env's make_frame_renderer() failed (%s)" % e)
            return None
        if not can_render_in_process(renderer):
            renderer.close()
            self.gone = "the env's frame renderer cannot be drawn in a process (no pack/render_flat/state_size)"
            (log.warning if self.explicit else log.info)("stream.render=%s: %s; rendering frames on the stream's "
                                                         "thread", "process" if self.explicit else "auto", self.gone)  # fmt: skip
            return None
        proc = FrameProcess(renderer, self.quality, self.size)
        try:
            proc.start()
        except FrameProcessGone as e:
            proc.close()
            self._fall_back(str(e))
            return None
        self.proc = proc
        self.spawns += 1
        log.info("Stream frames are drawn and encoded in a frame process (pid %d)", proc.pid or 0)
        return proc

    def _fall_back(self, why: str) -> None:
        self.gone = why
        self._stop_process()
        if self._aborted:
            return
        log.warning("Stream frame process: %s; drawing frames on the stream's thread from now on (the player "
                    "keeps running)", why)  # fmt: skip

    def _stop_process(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.close()

    def abort(self) -> None:
        self._aborted = True
        proc = self.proc
        if proc is not None:
            proc.kill()

    def close(self) -> None:
        self._stop_process()
        super().close()

    def describe(self) -> Dict[str, Any]:
        proc = self.proc
        return {"name": self.name, "pid": proc.pid if proc is not None else None, "spawns": self.spawns,
                "frames": self.frames, "fallback": self.gone}  # fmt: skip


def make_render(name: str, quality: int, size: Optional[Tuple[int, int]]) -> ThreadRender:
    """The strategy called ``name`` (one of :data:`RENDER_CHOICES`); create it on the thread that uses it."""
    if name in ("auto", "process"):
        return ProcessRender(quality, size, explicit=name == "process")
    if name == "thread":
        return ThreadRender(quality, size)
    if name == "player":
        return PlayerRender(quality, size)
    raise ValueError("stream.render must be one of %s, got %r" % (", ".join(RENDER_CHOICES), name))

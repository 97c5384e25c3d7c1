"""FrameGrab: the player's frames (rendered at most once per step, here or elsewhere) and its clock.

Why a mixin of its own: rendering is what watchers pay for; its rules live here, apart from the play
loop. Render only when a callback asks, and only once per step however many ask. And, where the env
allows it, do not render on the player thread at all: a frame there costs the simulation its render
time (~2 ms on a GPU, ~70 ms with CPU EGL) 30 times a second while someone watches.

**Off-thread rendering, a backend capability.** An env that has both

- ``render_state() -> state``: a copy of what a picture of the watched env needs (for MuJoCo: qpos,
  qvel, act, mocap, per-reset model fields). Called on the player thread: it must be cheap and must not
  wait for a GPU (start an asynchronous copy; the state may carry a wait for it);
- ``make_frame_renderer() -> renderer``: a new object with ``render(state) -> HxWx3 uint8`` and
  ``close()``; it is created, used and closed on one watcher thread (an OpenGL/EGL context belongs to
  the thread that made it current), never on the player thread,

gets :meth:`FrameGrab.grab_frame_deferred` answered with a :class:`PendingFrame` (the state only); the
watcher's own thread turns it into pixels with a :class:`FrameResolver` (the streamer's JPEG thread,
the recorder's writer thread). Envs without the capability (gymnasium's ``render()``, a
``frame_source`` camera hook) are rendered synchronously here, as before. The streamer, the recorder and
the pacer read these through :class:`~rlg_hotreload.callbacks.PlayerView`.

A renderer that also has ``state_size`` (int), ``pack(state, out)`` (the state into a flat float64 array)
and ``render_flat(flat)``, and pickles, can be drawn in another process: the stream does that by
default (``stream.render=auto``, :mod:`rlg_hotreload.stream.render`), so that neither the render's nor
the JPEG encoder's Python work competes with the player thread for the GIL.
"""

import logging
import time
from typing import Any, Callable, NamedTuple, Optional, Union

import numpy as np
import torch

log = logging.getLogger("rlg_hotreload")


class PendingFrame(NamedTuple):
    """A frame not rendered yet: the env's ``render_state()`` taken at ``t_state`` (``time.time()``) and
    the env, whose ``make_frame_renderer()`` a :class:`FrameResolver` calls on its own thread."""

    state: Any
    env: Any
    t_state: float


#: what ``grab_frame_deferred`` returns: pixels, pixels-to-be, or nothing
FrameLike = Union[np.ndarray, PendingFrame, None]


def can_render_elsewhere(env: Any) -> bool:
    """True when ``env`` has the off-thread rendering capability (see the module docstring)."""
    return callable(getattr(env, "render_state", None)) and callable(getattr(env, "make_frame_renderer", None))


class FrameResolver:
    """Turns what ``grab_frame_deferred`` returned into pixels on the calling thread.

    Owns the renderer it made for the env of the frames (one at a time) and must be closed on the
    thread that used it. A failing render is logged (the first of its kind, then every 100th) and
    gives None: a watcher thread survives a broken renderer.
    """

    def __init__(self) -> None:
        self._env: Any = None
        self._renderer: Any = None
        self.rendered = 0  # PendingFrames drawn by this resolver
        self.render_s = 0.0
        self.failures = 0

    def __call__(self, frame: FrameLike) -> Optional[np.ndarray]:
        if not isinstance(frame, PendingFrame):
            return frame
        t0 = time.perf_counter()
        try:
            if self._renderer is None or self._env is not frame.env:
                self.close()
                self._env, self._renderer = frame.env, frame.env.make_frame_renderer()
            pixels = self._renderer.render(frame.state)
        except Exception as e:  # noqa: BLE001 - GL/EGL and simulator errors come in many types
            self.failures += 1
            if self.failures % 100 == 1:
                log.error("Cannot render a frame off the player thread (%d failure(s)): %s", self.failures, e)
            return None
        self.rendered += 1
        self.render_s += time.perf_counter() - t0
        return pixels if isinstance(pixels, np.ndarray) else None

    def close(self) -> None:
        renderer, self._renderer, self._env = self._renderer, None, None
        if renderer is not None:
            try:
                renderer.close()
            except Exception as e:  # noqa: BLE001 - as above; closing must not kill the thread
                log.warning("Closing the frame renderer failed: %s", e)


class FrameGrab:
    """Mixin for :class:`~rlg_hotreload.player.HotReloadPlayer`; call :meth:`init_frames` in ``__init__``."""

    env: Any
    summary: Any

    def init_frames(self) -> None:
        #: a camera hook (e.g. Isaac Gym's camera sensor) used instead of ``env.render()`` when set
        self.frame_source: Optional[Callable[[], Optional[np.ndarray]]] = None
        #: False = always render on the player thread (benchmarks compare both)
        self.defer_frames = True
        self._frame_step = -1  # summary.steps of the cached frame (see grab_frame)
        self._frame: Optional[np.ndarray] = None
        self._pending_step = -1
        self._pending: Optional[PendingFrame] = None
        self.frames_rendered_here = 0  # synchronous renders on the player thread
        self.frames_deferred = 0  # snapshots handed to watcher threads
        #: seconds of simulated time per step (None when the env does not say): pacing and video speed
        self.control_dt: Optional[float] = self._find_control_dt()

    def grab_frame(self) -> Optional[np.ndarray]:
        """This step's frame through ``frame_source`` if set, else ``env.render()``: rendered here on the
        first call of a step, the same array for every later call in that step."""
        step = self.summary.steps
        if self._frame_step == step:
            return self._frame
        if self.frame_source is not None:
            frame = self.frame_source()
        else:
            frame = self.env.render()
            if isinstance(frame, torch.Tensor):
                frame = frame.cpu().numpy()
        self.frames_rendered_here += 1
        self._frame_step, self._frame = step, frame if isinstance(frame, np.ndarray) else None
        return self._frame

    def grab_frame_deferred(self) -> FrameLike:
        """This step's frame, rendered elsewhere when the env allows it: a :class:`PendingFrame` (the same
        one for every call in the step), else what :meth:`grab_frame` gives. Resolve it with a
        :class:`FrameResolver` on the thread that consumes it."""
        step = self.summary.steps
        if self._frame_step == step:
            return self._frame  # already rendered in this step: share it
        if self._pending_step == step:
            return self._pending
        if self.frame_source is not None or not self.defer_frames or not can_render_elsewhere(self.env):
            return self.grab_frame()
        pending = PendingFrame(self.env.render_state(), self.env, time.time())
        self.frames_deferred += 1
        self._pending_step, self._pending = step, pending
        return pending

    def _find_control_dt(self) -> Optional[float]:
        env = self.env
        dt = getattr(env, "control_dt", None)
        if dt is None:
            dt = getattr(getattr(env, "unwrapped", None), "dt", None)
        return float(dt) if isinstance(dt, (int, float)) else None

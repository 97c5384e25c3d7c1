"""FrameGrab: the player's frames (rendered at most once per step) and its clock (``control_dt``).

Why a mixin of its own: rendering is what watchers pay for; its one rule (render only when a callback
asks, and only once per step however many ask) lives here, apart from the play loop. The streamer,
the recorder and the pacer read these through :class:`~rlg_hotreload.callbacks.PlayerView`.
"""

from typing import Any, Callable, Optional

import numpy as np
import torch


class FrameGrab:
    """Mixin for :class:`~rlg_hotreload.player.HotReloadPlayer`; call :meth:`init_frames` in ``__init__``."""

    env: Any
    summary: Any

    def init_frames(self) -> None:
        #: a camera hook (e.g. Isaac Gym's camera sensor) used instead of ``env.render()`` when set
        self.frame_source: Optional[Callable[[], Optional[np.ndarray]]] = None
        self._frame_step = -1  # summary.steps of the cached frame (see grab_frame)
        self._frame: Optional[np.ndarray] = None
        #: seconds of simulated time per step (None when the env does not say): pacing and video speed
        self.control_dt: Optional[float] = self._find_control_dt()

    def grab_frame(self) -> Optional[np.ndarray]:
        """This step's frame through ``frame_source`` if set, else ``env.render()``: rendered on the first
        call of a step, the same array for every later call in that step (streamer and recorder)."""
        step = self.summary.steps
        if self._frame_step == step:
            return self._frame
        if self.frame_source is not None:
            frame = self.frame_source()
        else:
            frame = self.env.render()
            if isinstance(frame, torch.Tensor):
                frame = frame.cpu().numpy()
        self._frame_step, self._frame = step, frame if isinstance(frame, np.ndarray) else None
        return self._frame

    def _find_control_dt(self) -> Optional[float]:
        env = self.env
        dt = getattr(env, "control_dt", None)
        if dt is None:
            dt = getattr(getattr(env, "unwrapped", None), "dt", None)
        return float(dt) if isinstance(dt, (int, float)) else None

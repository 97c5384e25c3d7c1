"""Pictures of env 0 for people: an offscreen frame (stream, recorder) and MuJoCo's passive viewer.

Why shared: the MuJoCo backend shows its own world 0; the MuJoCo Warp backend copies world 0's state
from the GPU into a host ``MjData`` first (only when someone watches) and then shows it the same way.
"""

import os
import sys
import time
from typing import Any, Callable, Optional

import mujoco
import numpy as np

from .config import BlindGraspingConfig


class MujocoView:
    """Renderer and viewer over one host ``(MjModel, MjData)`` pair; ``refresh`` updates that pair."""

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        cfg: BlindGraspingConfig,
        control_dt: float,
        refresh: Optional[Callable[[], None]] = None,
    ) -> None:
        self.model = model
        self.data = data
        self.cfg = cfg
        self.control_dt = control_dt
        self._refresh = refresh
        self._renderer: Optional[mujoco.Renderer] = None
        self._viewer_due = 0.0  # wall-clock time the viewer's next frame is due
        self._viewer: Any = None if cfg.headless else self._open_viewer()

    def render(self, mode: str = "rgb_array") -> np.ndarray:
        """RGB uint8 [H, W, 3] from the 'front' camera, rendered offscreen."""
        if mode != "rgb_array":
            raise ValueError("render mode={!r} is not supported; allowed: rgb_array".format(mode))
        if self._renderer is None:
            m, cfg = self.model, self.cfg
            if cfg.render_width > m.vis.global_.offwidth or cfg.render_height > m.vis.global_.offheight:
                raise ValueError(
                    "render_width x render_height = {}x{} exceeds the asset's offscreen buffer {}x{}".format(
                        cfg.render_width, cfg.render_height, m.vis.global_.offwidth, m.vis.global_.offheight
                    )
                )
            self._renderer = mujoco.Renderer(m, cfg.render_height, cfg.render_width)
        if self._refresh is not None:
            self._refresh()
        self._renderer.update_scene(self.data, camera="front")
        return self._renderer.render()

    def after_step(self) -> None:
        """Show the new state in the viewer (if open), paced to wall-clock speed so a person can follow."""
        if self._viewer is None or not self._viewer.is_running():
            return
        if self._refresh is not None:
            self._refresh()
        self._viewer.sync()
        now = time.monotonic()
        self._viewer_due = max(self._viewer_due, now - 0.25) + self.control_dt
        if self._viewer_due > now:
            time.sleep(self._viewer_due - now)

    def _open_viewer(self) -> Any:
        """MuJoCo's passive viewer (``headless=false``): the seed's ``test_viewer`` workflow."""
        import mujoco.viewer

        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            # GLFW would print an error and end the whole process: refuse before trying
            raise ValueError("headless=false: no display (DISPLAY is not set); use headless=true and watch "
                             "through the stream (config=test_stream)")  # fmt: skip
        try:
            return mujoco.viewer.launch_passive(self.model, self.data)
        except Exception as e:  # noqa: BLE001 - GLFW/display failures come in many types
            raise ValueError(
                "headless=false: cannot open the MuJoCo viewer ({}); use headless=true and watch "
                "through the stream (config=test_stream)".format(e)
            ) from e

    def close(self) -> None:
        if self._viewer is not None:
            self._viewer.close()
            self._viewer = None
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

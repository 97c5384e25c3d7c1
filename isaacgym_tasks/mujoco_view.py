"""Pictures of env 0 for people: an offscreen frame (stream, recorder) and MuJoCo's passive viewer.

Why shared: the MuJoCo backend shows its own world 0; the MuJoCo Warp backend copies world 0's state
from the GPU into a host ``MjData`` first (only when someone watches) and then shows it the same way.

Why a snapshot and a renderer of its own (:class:`MjState`, :class:`MjFrameRenderer`): rendering a
frame costs milliseconds (GPU EGL ~2 ms, CPU llvmpipe ~70 ms) that the player thread would otherwise pay
30 times a second while someone watches. The player thread only copies what a picture needs (qpos,
qvel, act, mocap, the per-reset box size: a few hundred bytes); a watcher's thread owns a model copy,
an ``MjData`` and an offscreen context, runs ``mj_forward`` and draws. MuJoCo releases the GIL inside
``mjr_render``/``mjr_readPixels`` (measured: the player thread kept ~90 % of its pace during them), so
the player steps on meanwhile. This is the backend capability ``render_state()`` +
``make_frame_renderer()`` described in :mod:`rlg_hotreload.frame_grab`.

Why :meth:`MjFrameRenderer.pack` / :meth:`MjFrameRenderer.render_flat` and pickling: the stream's frame
process (:mod:`rlg_hotreload.stream.frameproc`) renders in another process, so that neither the render's
nor the JPEG encoder's Python work competes with the player for its GIL. The renderer is sent there
once (pickled: the model as MuJoCo's own binary, no GL context yet); each frame is then one flat
float64 array (``mj_getState``-style: qpos, qvel, act, mocap, time, box size) packed on the parent's
side and rendered by the copy over there.
"""

import copy
import os
import sys
import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

import mujoco
import numpy as np

from .config import BlindGraspingConfig


class MjState(NamedTuple):
    """What a picture of one world needs, copied out of the simulator (arrays the simulator never
    writes again). ``ready`` (optional) blocks until an asynchronous device-to-host copy has landed."""

    qpos: np.ndarray
    qvel: np.ndarray
    act: np.ndarray
    mocap_pos: np.ndarray
    mocap_quat: np.ndarray
    time: float
    geom_size: np.ndarray  # whole [ngeom, 3]: the box is resized at every reset
    geom_rbound: np.ndarray
    ready: Optional[Callable[[], None]] = None


def host_state(model: mujoco.MjModel, data: mujoco.MjData) -> MjState:
    """Copy of a host world's state (microseconds; called on the player thread)."""
    return MjState(
        data.qpos.copy(), data.qvel.copy(), data.act.copy(), data.mocap_pos.copy(), data.mocap_quat.copy(),
        float(data.time), model.geom_size.copy(), model.geom_rbound.copy(),
    )  # fmt: skip


def check_render_size(model: mujoco.MjModel, cfg: BlindGraspingConfig) -> None:
    if cfg.render_width > model.vis.global_.offwidth or cfg.render_height > model.vis.global_.offheight:
        raise ValueError(
            "render_width x render_height = {}x{} exceeds the asset's offscreen buffer {}x{}".format(
                cfg.render_width, cfg.render_height, model.vis.global_.offwidth, model.vis.global_.offheight
            )
        )


class MjFrameRenderer:
    """Draws :class:`MjState` snapshots from the 'front' camera with its own model copy, ``MjData`` and
    offscreen context. Use it from ONE thread (create, render, close): a GL context is bound to a thread."""

    def __init__(self, model: mujoco.MjModel, cfg: BlindGraspingConfig) -> None:
        check_render_size(model, cfg)
        self.model = copy.copy(model)  # a deep copy: each snapshot writes its box size here
        quality = self.model.vis.quality  # the frames' shadow map and MSAA, at most the keys' (config.py: why)
        quality.shadowsize = min(int(quality.shadowsize), cfg.render_shadow_size)
        quality.offsamples = min(int(quality.offsamples), cfg.render_samples)
        self.data = mujoco.MjData(self.model)
        self.cfg = cfg
        self._renderer: Optional[mujoco.Renderer] = None
        self.frames = 0

    def __getstate__(self) -> Dict[str, Any]:
        """Pickled for the frame process: the model (MuJoCo pickles it as its binary ``mjb``) and the config;
        no data, no GL context (made at the first render, over there)."""
        return {"model": self.model, "cfg": self.cfg}

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__init__(state["model"], state["cfg"])  # type: ignore[misc]

    def _layout(self) -> List[Tuple[str, Tuple[int, ...]]]:
        m = self.model
        return [("qpos", (m.nq,)), ("qvel", (m.nv,)), ("act", (m.na,)), ("mocap_pos", (m.nmocap, 3)),
                ("mocap_quat", (m.nmocap, 4)), ("time", ()), ("geom_size", (m.ngeom, 3)),
                ("geom_rbound", (m.ngeom,))]  # fmt: skip

    @property
    def state_size(self) -> int:
        """Length of the flat float64 array :meth:`pack` writes."""
        return sum(int(np.prod(shape)) for _, shape in self._layout())

    def pack(self, state: MjState, out: np.ndarray) -> None:
        """Write ``state`` into ``out`` (float64, ``state_size`` long); waits for ``state.ready`` first."""
        if state.ready is not None:
            state.ready()
        i = 0
        for name, shape in self._layout():
            n = int(np.prod(shape))
            out[i : i + n] = np.ravel(getattr(state, name))
            i += n

    def unpack(self, flat: np.ndarray) -> MjState:
        """The :class:`MjState` that :meth:`pack` wrote (views into ``flat``)."""
        parts: Dict[str, Any] = {}
        i = 0
        for name, shape in self._layout():
            n = int(np.prod(shape))
            parts[name] = float(flat[i]) if not shape else flat[i : i + n].reshape(shape)
            i += n
        return MjState(**parts)

    def render_flat(self, flat: np.ndarray) -> np.ndarray:
        """As :meth:`render`, for a state :meth:`pack` wrote (the frame process calls this)."""
        return self.render(self.unpack(flat))

    def render(self, state: MjState) -> np.ndarray:
        """RGB uint8 [H, W, 3] of ``state`` (forward kinematics run here, off the player thread)."""
        if state.ready is not None:
            state.ready()
        m, d = self.model, self.data
        m.geom_size[:] = state.geom_size
        m.geom_rbound[:] = state.geom_rbound
        d.qpos[:], d.qvel[:], d.act[:] = state.qpos, state.qvel, state.act
        d.mocap_pos[:], d.mocap_quat[:] = state.mocap_pos, state.mocap_quat
        d.time = state.time
        mujoco.mj_forward(m, d)
        if self._renderer is None:
            self._renderer = mujoco.Renderer(m, self.cfg.render_height, self.cfg.render_width)
        self._renderer.update_scene(d, camera="front")
        self.frames += 1
        return self._renderer.render()

    @property
    def has_context(self) -> bool:
        """True from the first render until ``close``: an offscreen GL context is held."""
        return self._renderer is not None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None


class MujocoView:
    """Renderer and viewer over one host ``(MjModel, MjData)`` pair; ``refresh`` updates that pair."""

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        cfg: BlindGraspingConfig,
        control_dt: float,
        refresh: Optional[Callable[[], None]] = None,
        snapshot: Optional[Callable[[], MjState]] = None,
    ) -> None:
        self.model = model
        self.data = data
        self.cfg = cfg
        self.control_dt = control_dt
        self._refresh = refresh
        self._snapshot = snapshot
        self._renderer: Optional[mujoco.Renderer] = None
        self._viewer_due = 0.0  # wall-clock time the viewer's next frame is due
        self._viewer: Any = None if cfg.headless else self._open_viewer()

    def render(self, mode: str = "rgb_array") -> np.ndarray:
        """RGB uint8 [H, W, 3] from the 'front' camera, rendered offscreen."""
        if mode != "rgb_array":
            raise ValueError("render mode={!r} is not supported; allowed: rgb_array".format(mode))
        if self._renderer is None:
            check_render_size(self.model, self.cfg)
            self._renderer = mujoco.Renderer(self.model, self.cfg.render_height, self.cfg.render_width)
        if self._refresh is not None:
            self._refresh()
        self._renderer.update_scene(self.data, camera="front")
        return self._renderer.render()

    def render_state(self) -> MjState:
        """Env 0's state for :class:`MjFrameRenderer` (player thread; no rendering, no ``mj_forward``)."""
        if self._snapshot is not None:
            return self._snapshot()
        return host_state(self.model, self.data)

    def make_frame_renderer(self) -> MjFrameRenderer:
        """A renderer for :meth:`render_state` snapshots, to be used (and closed) on one other thread."""
        return MjFrameRenderer(self.model, self.cfg)

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

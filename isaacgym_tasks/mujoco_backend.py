"""MuJoCo (CPU) backend of BlindGrasping: ``num_envs`` worlds stepped as one batch.

Each world has its own ``MjModel`` copy because box size and mass are model
parameters in MuJoCo and are randomised per env at every reset; the copies
share nothing mutable, so stepping them is a plain loop of ``mj_step(nstep=K)``
calls whose Python overhead is small next to K physics steps. All task math
lives in :mod:`isaacgym_tasks.task_core`.
"""

import copy
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import gymnasium
import mujoco
import numpy as np
import torch

from .asset import ASSET_PATH, FINGERTIP_SITES, HAND_JOINTS, read_asset_info
from .config import BlindGraspingConfig
from .task_core import SimState, TaskCore
from .task_math import box_inertia
from .vecenv_api import VecEnvApi

_BADQACC = int(mujoco.mjtWarning.mjWARN_BADQACC)
ActionLike = Union[torch.Tensor, np.ndarray, Sequence[Sequence[float]]]


def _selector(index: np.ndarray) -> Union[slice, torch.Tensor]:
    """A slice when ``index`` is a contiguous run (cheap view), else an index tensor."""
    idx = [int(i) for i in index]
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return slice(idx[0], idx[0] + len(idx))
    return torch.tensor(idx, dtype=torch.long)


class MujocoBlindGrasping(VecEnvApi):
    """rl-games vecenv (``step``/``reset``/``get_env_info``...) backed by MuJoCo on CPU."""

    def __init__(self, num_envs: int, cfg: BlindGraspingConfig, asset_path: str = ASSET_PATH) -> None:
        if num_envs < 1:
            raise ValueError("num_envs={!r} must be >= 1".format(num_envs))
        self.cfg = cfg
        self.num_envs = num_envs
        base = mujoco.MjModel.from_xml_path(asset_path)
        self.models: List[mujoco.MjModel] = [base] + [copy.copy(base) for _ in range(num_envs - 1)]
        self.datas: List[mujoco.MjData] = [mujoco.MjData(m) for m in self.models]
        self.substeps = cfg.control_substeps
        info = read_asset_info(asset_path)
        self.core = TaskCore(cfg, info, num_envs, base.opt.timestep * self.substeps)
        self._index_model(base)
        # float32 staging buffers shared with torch (from_numpy), filled world by world
        self._qpos = np.zeros((num_envs, base.nq), dtype=np.float32)
        self._qvel = np.zeros((num_envs, base.nv), dtype=np.float32)
        self._sens = np.zeros((num_envs, base.nsensordata), dtype=np.float32)
        self._qpos_t = torch.from_numpy(self._qpos)
        self._qvel_t = torch.from_numpy(self._qvel)
        self._sens_t = torch.from_numpy(self._sens)
        self._unstable = np.zeros(num_envs, dtype=bool)
        self._pool: Optional[ThreadPoolExecutor] = None
        if cfg.num_threads > 1 and num_envs > 1:
            self._pool = ThreadPoolExecutor(cfg.num_threads)
        self._renderer: Optional[mujoco.Renderer] = None
        self._viewer_due = 0.0  # wall-clock time the viewer's next frame is due
        self._viewer: Any = None if cfg.headless else self._open_viewer()
        num_joints = len(HAND_JOINTS)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.core.obs_dim,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (num_joints,), np.float32)
        self._obs = self.reset()

    # -- model layout ---------------------------------------------------------------
    def _index_model(self, m: mujoco.MjModel) -> None:
        """Look up addresses by name so the XML may be reordered without breaking us."""
        self._hand_qadr = np.array([m.joint(n).qposadr[0] for n in HAND_JOINTS])
        self._hand_dadr = np.array([m.joint(n).dofadr[0] for n in HAND_JOINTS])
        for i, n in enumerate(HAND_JOINTS):
            if m.actuator(i).trnid[0] != m.joint(n).id:
                raise ValueError("actuator {} must drive joint {!r}".format(i, n))
        box_joint = m.joint("box_free")
        self._box_qadr = int(box_joint.qposadr[0])
        self._box_body = m.body("box").id
        self._box_geom = m.geom("box_geom").id
        self._palm_body = m.body("palm").id
        touch = [m.sensor("touch{}".format(i)).adr[0] for i in range(len(FINGERTIP_SITES))]
        tips = [m.sensor("tip{}_pos".format(i)).adr[0] for i in range(len(FINGERTIP_SITES))]
        self._touch_adr = np.array(touch)
        self._tip_adr = np.array([[a, a + 1, a + 2] for a in tips])
        self._palm_home = torch.tensor(m.body_pos[self._palm_body], dtype=torch.float32)
        self._q_sel = _selector(self._hand_qadr)
        self._qd_sel = _selector(self._hand_dadr)
        self._touch_sel = _selector(self._touch_adr)
        self._tip_sel = _selector(self._tip_adr.reshape(-1))

    # -- rl-games vecenv API --------------------------------------------------------
    def reset(self) -> torch.Tensor:
        """Reset every env and return observations [N, obs_dim]."""
        self._reset_envs(torch.arange(self.num_envs))
        self._obs = self.core.observe(self._state())
        return self._obs

    def step(self, actions: ActionLike) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        """Apply actions for ``control_substeps`` physics steps; auto-reset finished envs."""
        act = torch.as_tensor(actions, dtype=torch.float32).reshape(self.num_envs, -1)
        targets = self.core.apply_actions(act).numpy().astype(np.float64)
        if self._pool is not None:
            list(self._pool.map(lambda i: self._step_world(i, targets[i]), range(self.num_envs)))
        else:
            for i in range(self.num_envs):
                self._step_world(i, targets[i])
        unstable = None
        if self._unstable.any():
            unstable = torch.from_numpy(self._unstable.copy())
            self._unstable[:] = False
        res = self.core.evaluate(self._state(), unstable)
        obs = res.obs
        if res.reset_ids.numel() > 0:
            self._reset_envs(res.reset_ids)
            obs = self.core.observe(self._state())
        self._obs = obs
        if self._viewer is not None:
            self._sync_viewer()
        return obs, res.reward, res.done.to(torch.uint8), res.infos

    def _sync_viewer(self) -> None:
        """Show world 0 and pace to wall-clock speed, so a person can follow it (viewer mode only)."""
        if not self._viewer.is_running():
            return
        self._viewer.sync()
        now = time.monotonic()
        self._viewer_due = max(self._viewer_due, now - 0.25) + self.core.dt
        if self._viewer_due > now:
            time.sleep(self._viewer_due - now)

    def render(self, mode: str = "rgb_array") -> np.ndarray:
        """RGB uint8 [H, W, 3] of env 0 from the 'front' camera, rendered offscreen."""
        if mode != "rgb_array":
            raise ValueError("render mode={!r} is not supported; allowed: rgb_array".format(mode))
        if self._renderer is None:
            m = self.models[0]
            if (
                self.cfg.render_width > m.vis.global_.offwidth
                or self.cfg.render_height > m.vis.global_.offheight
            ):
                raise ValueError(
                    "render_width x render_height = {}x{} exceeds the asset's offscreen buffer {}x{}".format(
                        self.cfg.render_width,
                        self.cfg.render_height,
                        m.vis.global_.offwidth,
                        m.vis.global_.offheight,
                    )
                )
            self._renderer = mujoco.Renderer(m, self.cfg.render_height, self.cfg.render_width)
        self._renderer.update_scene(self.datas[0], camera="front")
        return self._renderer.render()

    def _open_viewer(self) -> Any:
        """MuJoCo's passive viewer on world 0 (``headless=false``): the seed's ``test_viewer`` workflow."""
        import mujoco.viewer

        if sys.platform.startswith("linux") and not (
            os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        ):
            # GLFW would print an error and end the whole process: refuse before trying
            raise ValueError("headless=false: no display (DISPLAY is not set); use headless=true and watch "
                             "through the stream (config=test_stream)")  # fmt: skip
        try:
            return mujoco.viewer.launch_passive(self.models[0], self.datas[0])
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
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    # -- internals ------------------------------------------------------------------
    def _step_world(self, i: int, target: np.ndarray) -> None:
        d = self.datas[i]
        d.ctrl[:] = target
        mujoco.mj_step(self.models[i], d, self.substeps)
        if d.warning[_BADQACC].number > 0:
            # MuJoCo already reset this world's state; end the episode so the task resets it properly.
            self._unstable[i] = True
        self._gather(i)

    def _gather(self, i: int) -> None:
        d = self.datas[i]
        self._qpos[i] = d.qpos
        self._qvel[i] = d.qvel
        self._sens[i] = d.sensordata

    def _state(self) -> SimState:
        """Batch readings as torch tensors (sensor positions lag one physics substep, 5 ms).

        The tensors are views of the staging buffers: consumers must not keep them
        across steps (TaskCore only derives new tensors from them).
        """
        qpos, sens = self._qpos_t, self._sens_t
        q = qpos[:, self._q_sel]
        b = self._box_qadr
        return SimState(
            q=q,
            qd=self._qvel_t[:, self._qd_sel],
            palm_pos=self._palm_home + q[:, :3],
            touch=sens[:, self._touch_sel],
            tip_pos=sens[:, self._tip_sel].reshape(self.num_envs, -1, 3),
            box_pos=qpos[:, b : b + 3],
            box_quat=qpos[:, b + 3 : b + 7],
        )

    def _reset_envs(self, env_ids: torch.Tensor) -> None:
        sample, q0 = self.core.sample_resets(env_ids)
        half = sample.box_half.double().numpy()
        mass = sample.box_mass.double().numpy()
        inertia = box_inertia(sample.box_mass.double(), sample.box_half.double()).numpy()
        xy = sample.box_xy.double().numpy()
        quat = sample.box_quat.double().numpy()
        q0n = q0.double().numpy()
        top = self.core.info.table_top_z
        g, bb = self._box_geom, self._box_body
        for k, env in enumerate(env_ids.tolist()):
            m, d = self.models[env], self.datas[env]
            m.geom_size[g] = half[k]
            m.geom_rbound[g] = float(np.linalg.norm(half[k]))
            m.geom_aabb[g, 3:] = half[k]
            m.body_mass[bb] = mass[k]
            m.body_inertia[bb] = inertia[k]
            mujoco.mj_setConst(m, d)  # refresh invweight0 etc., which the contact solver scales by
            mujoco.mj_resetData(m, d)
            d.qpos[self._box_qadr : self._box_qadr + 3] = (xy[k, 0], xy[k, 1], top + half[k, 2] + 0.001)
            d.qpos[self._box_qadr + 3 : self._box_qadr + 7] = quat[k]
            d.qpos[self._hand_qadr] = q0n[k]
            d.ctrl[:] = q0n[k]
            mujoco.mj_forward(m, d)
            self._gather(env)

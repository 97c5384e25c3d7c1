"""MuJoCo (CPU) backend of BlindGrasping: ``num_envs`` worlds stepped as one batch.

Each world has its own ``MjModel`` copy because box size and mass are model
parameters in MuJoCo and are randomised per env at every reset; the copies
share nothing mutable. How the worlds are stepped (a Python thread pool of
``mj_step(nstep=K)`` calls, or ``mujoco.rollout`` from many worlds up) lives in
:mod:`isaacgym_tasks.mujoco_stepper`. All task math lives in
:mod:`isaacgym_tasks.task_core`; per step it runs through its NumPy mirror
(:mod:`isaacgym_tasks.task_numpy`), or for one or two envs through plain Python
floats (:mod:`isaacgym_tasks.task_scalar`): with one env, ~150 small torch ops
cost 3x the physics (measured: 0.24x the raw mj_step rate).
"""

import copy
import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import gymnasium
import mujoco
import numpy as np
import torch

from .asset import ASSET_PATH, HAND_JOINTS, read_asset_info
from .config import BlindGraspingConfig, resolve_device
from .mjcf_layout import MjLayout
from .mujoco_stepper import PoolStepper, RolloutStepper, choose
from .mujoco_view import MujocoView
from .task_core import SimState, TaskCore
from .task_numpy import NumpyTaskMath, infos_to_torch
from .task_scalar import SCALAR_ENVS, ScalarTaskMath
from .vecenv_api import VecEnvApi

ActionLike = Union[torch.Tensor, np.ndarray, Sequence[Sequence[float]]]


class MujocoBlindGrasping(VecEnvApi):
    """rl-games vecenv (``step``/``reset``/``get_env_info``...) backed by MuJoCo on CPU.

    Physics and task math run on the CPU whatever ``sim_device`` says; what rl-games receives is
    moved to ``rl_device`` (the policy's device).
    """

    def __init__(
        self,
        num_envs: int,
        cfg: BlindGraspingConfig,
        asset_path: str = ASSET_PATH,
        fast_math: bool = True,
        stepper: str = "auto",
    ) -> None:
        """``fast_math=False``: per-step math in torch (TaskCore) instead of its NumPy mirror (tests compare).
        ``stepper``: ``pool`` (per-world mj_step), ``rollout`` (mujoco.rollout) or ``auto`` (by size, see
        mujoco_stepper)."""
        if num_envs < 1:
            raise ValueError("num_envs={!r} must be >= 1".format(num_envs))
        self.cfg = cfg
        self.num_envs = num_envs
        base = mujoco.MjModel.from_xml_path(asset_path)
        self.models: List[mujoco.MjModel] = [base] + [copy.copy(base) for _ in range(num_envs - 1)]
        self.datas: List[mujoco.MjData] = [mujoco.MjData(m) for m in self.models]
        self.substeps = cfg.control_substeps
        info = read_asset_info(asset_path)
        rl_device = resolve_device(cfg.rl_device, "rl_device")
        self.core = TaskCore(cfg, info, num_envs, base.opt.timestep * self.substeps, "cpu", rl_device)
        self.layout = MjLayout(base)
        self.fast: Optional[NumpyTaskMath] = None
        if fast_math:
            kind = ScalarTaskMath if num_envs <= SCALAR_ENVS else NumpyTaskMath
            self.fast = kind(self.core, self.layout)
        # float32 staging buffers shared with torch (from_numpy), filled world by world
        self._qpos = np.zeros((num_envs, base.nq), dtype=np.float32)
        self._qvel = np.zeros((num_envs, base.nv), dtype=np.float32)
        self._sens = np.zeros((num_envs, base.nsensordata), dtype=np.float32)
        self._qpos_t = torch.from_numpy(self._qpos)
        self._qvel_t = torch.from_numpy(self._qvel)
        self._sens_t = torch.from_numpy(self._sens)
        self.stepper_kind = choose(stepper, num_envs, cfg.num_threads)
        kind = RolloutStepper if self.stepper_kind == "rollout" else PoolStepper
        self.stepper = kind(
            self.models, self.datas, self.substeps, cfg.num_threads, self._qpos, self._qvel, self._sens
        )
        self.view = MujocoView(self.models[0], self.datas[0], cfg, self.core.dt, refresh=self._sync_env0)
        self._tile_view: Optional[MujocoView] = None  # envs other than 0 (see render_env)
        self._tile_index = 0
        num_joints = len(HAND_JOINTS)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.core.obs_dim,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (num_joints,), np.float32)
        self._obs = self.reset()

    # -- rl-games vecenv API --------------------------------------------------------
    def reset(self) -> torch.Tensor:
        """Reset every env and return observations [N, obs_dim] on ``rl_device``."""
        self._reset_envs(torch.arange(self.num_envs))
        self._obs = self.core.observe(self._state())
        return self._obs.to(self.core.rl_device)

    def step(self, actions: ActionLike) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        """Apply actions for ``control_substeps`` physics steps; auto-reset finished envs."""
        fast = self.fast
        if fast is not None:
            if isinstance(actions, torch.Tensor):
                plain = actions.is_cpu and not actions.requires_grad
                actions = actions.numpy() if plain else actions.detach().cpu().numpy()
            if not (isinstance(actions, np.ndarray) and actions.dtype == np.float32 and actions.ndim == 2):
                actions = np.asarray(actions, dtype=np.float32).reshape(self.num_envs, -1)
            return self._step_fast(fast, actions)
        act = torch.as_tensor(actions, dtype=torch.float32).reshape(self.num_envs, -1)
        targets = self.core.apply_actions(act).numpy().astype(np.float64)
        unstable = self._step_worlds(targets)
        res = self.core.evaluate(self._state(), None if unstable is None else torch.from_numpy(unstable))
        obs = res.obs
        reset_ids = res.reset_ids
        if reset_ids.numel() > 0:
            self._reset_envs(reset_ids)
            obs = self.core.observe(self._state())
        self._obs = obs
        self.view.after_step()
        return self.core.output(obs, res)

    def _step_fast(self, fast: NumpyTaskMath, act: np.ndarray) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        """``step`` with the task math in NumPy (same results as TaskCore's, see task_numpy)."""
        unstable = self._step_worlds(fast.apply_actions(act))
        obs, reward, done, infos = fast.evaluate(self._qpos, self._qvel, self._sens, unstable)
        reset_ids = done.nonzero()[0]
        if reset_ids.size:
            self._reset_envs(torch.from_numpy(reset_ids))
            obs = fast.observe(self._qpos, self._qvel, self._sens)
        rl = self.core.rl_device
        self._obs = torch.from_numpy(obs)
        self.view.after_step()
        out = (self._obs, torch.from_numpy(reward), torch.from_numpy(done.view(np.uint8)))
        if rl.type != "cpu":
            out = tuple(t.to(rl) for t in out)
        return out + (infos_to_torch(infos, rl),)  # type: ignore[return-value]

    def _step_worlds(self, targets: np.ndarray) -> Optional[np.ndarray]:
        """Step every world; return the mask of worlds whose physics diverged (None if none)."""
        st = self.stepper
        st.step(targets)
        if not st.any_unstable:
            return None
        unstable = st.unstable.copy()
        st.unstable[:] = False
        st.any_unstable = False
        return unstable

    def render(self, mode: str = "rgb_array") -> np.ndarray:
        """RGB uint8 [H, W, 3] of env 0 from the 'front' camera, rendered offscreen."""
        return self.view.render(mode)

    def render_state(self) -> Any:
        """Env 0's state, copied (microseconds): frames of it are drawn off the player thread."""
        self._sync_env0()
        return self.view.render_state()

    def make_frame_renderer(self) -> Any:
        """A renderer of ``render_state()`` snapshots for a watcher's thread (see mujoco_view)."""
        return self.view.make_frame_renderer()

    def render_env(self, i: int) -> np.ndarray:
        """RGB uint8 [H, W, 3] of env ``i`` (compare mode shows one env per slot).

        Env 0 has its own view; any other is mirrored (box size and mass, qpos, qvel) into one scratch
        model, so watching several envs costs one extra renderer, not one per env.
        """
        if i == 0:
            return self.view.render()
        if self._tile_view is None:
            m = copy.copy(self.models[0])
            cfg = dataclasses.replace(self.cfg, headless=True)  # never a second viewer window
            self._tile_view = MujocoView(m, mujoco.MjData(m), cfg, self.core.dt, refresh=self._mirror_tile)
        self._tile_index = int(i)
        return self._tile_view.render()

    def _mirror_tile(self) -> None:
        view = self._tile_view
        assert view is not None
        self.stepper.sync(self._tile_index)
        src_m, src_d, m, d = self.models[self._tile_index], self.datas[self._tile_index], view.model, view.data
        g, b = self.layout.box_geom, self.layout.box_body
        m.geom_size[g], m.geom_rbound[g], m.geom_aabb[g] = src_m.geom_size[g], src_m.geom_rbound[g], src_m.geom_aabb[g]
        m.body_mass[b] = src_m.body_mass[b]
        d.qpos[:], d.qvel[:] = src_d.qpos, src_d.qvel
        mujoco.mj_forward(m, d)

    def close(self) -> None:
        self.view.close()
        if self._tile_view is not None:
            self._tile_view.close()
        self.stepper.close()

    # -- internals ------------------------------------------------------------------
    def _gather(self, i: int) -> None:
        """World ``i``'s MjData changed here (reset, tests): take its readings and state."""
        self.stepper.world_reset(i)

    def _sync_env0(self) -> None:
        self.stepper.sync(0)

    def _state(self) -> SimState:
        """Batch readings as torch tensors (sensor positions lag one physics substep, 5 ms).

        The tensors are views of the staging buffers: consumers must not keep them
        across steps (TaskCore only derives new tensors from them).
        """
        return self.layout.state(self._qpos_t, self._qvel_t, self._sens_t)

    def _reset_envs(self, env_ids: torch.Tensor) -> None:
        sample, q0 = self.core.sample_resets(env_ids)
        # float64 NumPy from here (float32 -> float64 is exact; box_inertia's formula, same operations)
        half = sample.box_half.numpy().astype(np.float64)
        mass = sample.box_mass.numpy().astype(np.float64)
        sq = (2.0 * half) ** 2
        inertia = (mass / 12.0)[:, None] * np.stack(
            (sq[:, 1] + sq[:, 2], sq[:, 0] + sq[:, 2], sq[:, 0] + sq[:, 1]), -1
        )
        rbound = np.sqrt(np.add.reduce(half * half, axis=-1)).tolist()
        xy = sample.box_xy.numpy().astype(np.float64).tolist()
        quat = sample.box_quat.numpy().astype(np.float64)
        q0n = q0.numpy().astype(np.float64)
        top = self.core.info.table_top_z
        lay = self.layout
        g, bb, bq, hq = lay.box_geom, lay.box_body, lay.box_qadr, lay.hand_qadr
        for k, env in enumerate(env_ids.tolist()):
            m, d = self.models[env], self.datas[env]
            m.geom_size[g] = half[k]
            m.geom_rbound[g] = rbound[k]
            m.geom_aabb[g, 3:] = half[k]
            m.body_mass[bb] = mass[k]
            m.body_inertia[bb] = inertia[k]
            mujoco.mj_setConst(m, d)  # refresh invweight0 etc., which the contact solver scales by
            mujoco.mj_resetData(m, d)
            qpos = d.qpos
            qpos[bq : bq + 3] = (xy[k][0], xy[k][1], top + half[k, 2] + 0.001)
            qpos[bq + 3 : bq + 7] = quat[k]
            qpos[hq] = q0n[k]
            d.ctrl[:] = q0n[k]
            mujoco.mj_forward(m, d)
            self._gather(env)

"""MuJoCo Warp backend of BlindGrasping: thousands of worlds stepped on the GPU, Isaac Gym style.

Why MuJoCo Warp: it runs the very MJCF of the MuJoCo backend unchanged (elliptic cones, Newton
solver, cylinder-box contacts; MJX rejects them) at millions of physics steps per second on one GPU.
Everything stays on the device: warp arrays are shared with torch without copies (``wp.to_torch``),
the task math is the same torch code as on the CPU, the ``control_substeps`` physics steps of a
control step are one CUDA graph, and finished envs are reset with masks (no ``nonzero``, no host
sync). Box size and mass are per-world model fields (MuJoCo Warp batches them), so randomisation
draws from the same distributions as the MuJoCo backend. Warp's CPU device runs the same code
(slowly), which is how CI, without a GPU, tests it. Frames copy env 0's state to a host ``MjData``
only when someone watches.
"""

import logging
import time
from typing import Any, Dict, Sequence, Tuple, Union

import gymnasium
import mujoco
import numpy as np
import torch

from .asset import ASSET_PATH, HAND_JOINTS, read_asset_info
from .config import BlindGraspingConfig, resolve_device
from .mjcf_layout import MjLayout, free_box_invweight
from .mujoco_view import MjState, MujocoView
from .task_core import SimState, TaskCore
from .task_math import box_inertia
from .vecenv_api import VecEnvApi

log = logging.getLogger(__name__)
ActionLike = Union[torch.Tensor, np.ndarray, Sequence[Sequence[float]]]

#: Model fields that differ per world (box size and mass are randomised at every reset).
BATCHED_FIELDS = (
    "geom_size",
    "geom_aabb",
    "geom_rbound",
    "body_mass",
    "body_subtreemass",
    "body_inertia",
    "body_invweight0",
    "dof_invweight0",
)
#: Constraint rows and contacts allocated per world; MuJoCo Warp's defaults (64 rows) overflow when the
#: hand presses the box onto the table, and an overflow silently drops constraints.
NJMAX = 256
NCONMAX = 64
#: |qpos| or |qvel| beyond this (or non-finite) = a diverged world: its episode ends, it is reset.
DIVERGED = 1e4


class MjWarpBlindGrasping(VecEnvApi):
    """rl-games vecenv backed by MuJoCo Warp; ``sim_device`` cuda:N (or cpu, for tests)."""

    def __init__(self, num_envs: int, cfg: BlindGraspingConfig, asset_path: str = ASSET_PATH) -> None:
        import warp as wp

        # warp logs every kernel module it loads (hundreds of lines); one line of ours says it instead
        wp.config.log_level = max(wp.config.log_level, 30)
        import mujoco_warp as mjw

        if num_envs < 1:
            raise ValueError("num_envs={!r} must be >= 1".format(num_envs))
        self._wp, self._mjw = wp, mjw
        self.cfg = cfg
        self.num_envs = num_envs
        self.device = torch.device(resolve_device(cfg.sim_device, "sim_device"))
        rl_device = resolve_device(cfg.rl_device, "rl_device")
        wp.init()
        self._wp_device = wp.get_device(str(self.device))
        self.mjm = mujoco.MjModel.from_xml_path(asset_path)
        self.substeps = cfg.control_substeps
        info = read_asset_info(asset_path)
        self.core = TaskCore(
            cfg, info, num_envs, self.mjm.opt.timestep * self.substeps, self.device, rl_device
        )
        self.layout = MjLayout(self.mjm).to(self.device)
        self._stream: Any = None
        if self.device.type == "cuda":
            # torch and warp share one stream, so their kernels stay ordered without host syncs
            torch_stream = torch.cuda.Stream(self.device)
            torch.cuda.set_stream(torch_stream)
            self._stream = wp.stream_from_torch(torch_stream)
        with self._scope():
            self.m = mjw.put_model(self.mjm, batch_sizes={f: num_envs for f in BATCHED_FIELDS})
            self.d = mjw.make_data(self.mjm, nworld=num_envs, nconmax=NCONMAX, njmax=NJMAX)
        t = wp.to_torch
        d, m = self.d, self.m
        self._qpos, self._qvel, self._ctrl = t(d.qpos), t(d.qvel), t(d.ctrl)
        self._sens = t(d.sensordata)
        self._geom_size, self._geom_aabb, self._geom_rbound = t(m.geom_size), t(m.geom_aabb), t(m.geom_rbound)
        self._body_mass, self._body_inertia = t(m.body_mass), t(m.body_inertia)
        self._subtreemass, self._body_invw = t(m.body_subtreemass), t(m.body_invweight0)
        self._dof_invw = t(m.dof_invweight0)
        self._other_mass = float(self.mjm.body_subtreemass[0] - self.mjm.body_mass[self.layout.box_body])
        self._reset_mask = torch.zeros(num_envs, dtype=torch.bool, device=self.device)
        self._reset_mask_wp = wp.from_torch(self._reset_mask, dtype=wp.bool)
        self._graphs: Dict[str, Any] = {}
        started = time.monotonic()
        log.info("MuJoCo Warp: preparing %d worlds on %s (the first run on a machine compiles kernels "
                 "for minutes; later runs load them from warp's cache)", num_envs, self.device)  # fmt: skip
        self._compile()
        log.info("MuJoCo Warp: ready in %.1f s", time.monotonic() - started)
        self._host_data = mujoco.MjData(self.mjm)
        self._host_model = self.mjm
        self.view = MujocoView(
            self._host_model, self._host_data, cfg, self.core.dt, refresh=self._copy_env0, snapshot=self._env0_state
        )
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.core.obs_dim,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (len(HAND_JOINTS),), np.float32)
        self._obs = self.reset()

    # -- rl-games vecenv API --------------------------------------------------------
    def reset(self) -> torch.Tensor:
        """Reset every env and return observations [N, obs_dim] on ``rl_device``."""
        self._reset_where(torch.ones(self.num_envs, dtype=torch.bool, device=self.device))
        self._obs = self.core.observe(self._state())
        return self._obs.to(self.core.rl_device)

    def step(self, actions: ActionLike) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        """Apply actions for ``control_substeps`` physics steps (one graph launch); reset finished envs."""
        act = torch.as_tensor(actions, dtype=torch.float32, device=self.device).reshape(self.num_envs, -1)
        self._ctrl.copy_(self.core.apply_actions(act))
        self._simulate()
        bad = ~(torch.isfinite(self._qpos).all(1) & torch.isfinite(self._qvel).all(1))
        bad |= (self._qpos.abs().amax(1) > DIVERGED) | (self._qvel.abs().amax(1) > DIVERGED)
        res = self.core.evaluate(self._state(), bad)
        self._reset_where(res.done)
        self._obs = self.core.observe(self._state())
        self.view.after_step()
        return self.core.output(self._obs, res)

    def render(self, mode: str = "rgb_array") -> np.ndarray:
        """RGB uint8 [H, W, 3] of env 0: its state is copied to the host and drawn by MuJoCo's renderer."""
        return self.view.render(mode)

    def render_state(self) -> Any:
        """Env 0's state for a frame drawn off the player thread: one small device-to-host copy that
        the player thread does not wait for (the renderer's thread does)."""
        return self.view.render_state()

    def make_frame_renderer(self) -> Any:
        """A renderer of ``render_state()`` snapshots for a watcher's thread (see mujoco_view)."""
        return self.view.make_frame_renderer()

    def close(self) -> None:
        self.view.close()
        self._graphs.clear()

    # -- internals ------------------------------------------------------------------
    def _scope(self) -> Any:
        wp = self._wp
        if self._stream is None:
            return wp.ScopedDevice(self._wp_device)
        return wp.ScopedStream(self._stream)

    def _simulate(self) -> None:
        self._run("physics")

    def _run(self, name: str) -> None:
        """Run one of the recorded kernel sequences: a CUDA graph launch on a GPU, plain calls on the CPU.

        Outside a graph each MuJoCo Warp call is hundreds of kernel launches from Python (its solver
        loop too), which cost more than the physics itself at 4096 worlds.
        """
        wp = self._wp
        with self._scope():
            if self.device.type == "cuda":
                wp.capture_launch(self._graphs[name], stream=self._stream)
            else:
                self._sequence(name)()

    def _sequence(self, name: str) -> Any:
        mjw, m, d = self._mjw, self.m, self.d
        if name == "physics":

            def physics() -> None:
                for _ in range(self.substeps):
                    mjw.step(m, d)

            return physics
        if name == "reset":
            return lambda: mjw.reset_data(m, d, reset=self._reset_mask_wp)
        return lambda: mjw.forward(m, d)

    def _compile(self) -> None:
        """Run each kernel once (warp compiles on first use, then caches on disk), then, on a GPU,
        record the substep loop, the masked reset and the forward pass as CUDA graphs; ``reset``
        overwrites whatever state this touched."""
        wp = self._wp
        with self._scope():
            for name in ("physics", "reset", "forward"):
                self._sequence(name)()
            if self.device.type == "cuda":
                for name in ("physics", "reset", "forward"):
                    with wp.ScopedCapture(stream=self._stream) as capture:
                        self._sequence(name)()
                    self._graphs[name] = capture.graph

    def _state(self) -> SimState:
        return self.layout.state(self._qpos, self._qvel, self._sens)

    def _reset_where(self, mask: torch.Tensor) -> None:
        """Reset envs where ``mask`` [N] holds: new box size/mass/pose and hand pose, all on the device."""
        sample, q0 = self.core.sample_resets_where(mask)
        lay = self.layout
        g, b, bq, bd = lay.box_geom, lay.box_body, lay.box_qadr, lay.box_dadr
        m1 = mask.view(-1, 1)
        half = sample.box_half
        inertia = box_inertia(sample.box_mass, half)
        invw = free_box_invweight(sample.box_mass, inertia)
        self._geom_size[:, g] = torch.where(m1, half, self._geom_size[:, g])
        self._geom_aabb[:, g, 1] = torch.where(m1, half, self._geom_aabb[:, g, 1])
        self._geom_rbound[:, g] = torch.where(mask, half.norm(dim=-1), self._geom_rbound[:, g])
        self._body_mass[:, b] = torch.where(mask, sample.box_mass, self._body_mass[:, b])
        self._subtreemass[:, b] = self._body_mass[:, b]
        self._subtreemass[:, 0] = self._other_mass + self._body_mass[:, b]
        self._body_inertia[:, b] = torch.where(m1, inertia, self._body_inertia[:, b])
        self._body_invw[:, b] = torch.where(m1, invw, self._body_invw[:, b])
        dof_invw = torch.cat((invw[:, :1].expand(-1, 3), invw[:, 1:].expand(-1, 3)), dim=1)
        self._dof_invw[:, bd : bd + 6] = torch.where(m1, dof_invw, self._dof_invw[:, bd : bd + 6])
        self._reset_mask.copy_(mask)
        self._run("reset")
        top = self.core.info.table_top_z
        box_pos = torch.cat((sample.box_xy, (top + half[:, 2] + 0.001).unsqueeze(-1)), dim=-1)
        qpos = self._qpos
        qpos[:, bq : bq + 3] = torch.where(m1, box_pos, qpos[:, bq : bq + 3])
        qpos[:, bq + 3 : bq + 7] = torch.where(m1, sample.box_quat, qpos[:, bq + 3 : bq + 7])
        qpos[:, lay.q_sel] = torch.where(m1, q0, qpos[:, lay.q_sel])
        self._ctrl.copy_(torch.where(m1, q0, self._ctrl))
        self._run("forward")  # derived quantities (sensors) of the new states

    def _copy_env0(self) -> None:
        """Mirror env 0 into the host model/data for the renderer or viewer (a few hundred bytes)."""
        lay, hm, hd = self.layout, self._host_model, self._host_data
        g, b = lay.box_geom, lay.box_body
        hm.geom_size[g] = self._geom_size[0, g].cpu().numpy()
        hm.geom_rbound[g] = float(self._geom_rbound[0, g])
        hm.body_mass[b] = float(self._body_mass[0, b])
        hd.qpos[:] = self._qpos[0].cpu().numpy()
        hd.qvel[:] = self._qvel[0].cpu().numpy()
        mujoco.mj_forward(hm, hd)

    def _env0_state(self) -> MjState:
        """Env 0's qpos, qvel and box size in one device-to-host copy; on a GPU it is not waited for here:
        ``MjState.ready`` (called by the renderer's thread) waits for it."""
        hd = self._host_data
        parts = (self._qpos[0], self._qvel[0], self._geom_size[0].reshape(-1), self._geom_rbound[0])
        flat = torch.cat([p.float() for p in parts])
        ready = None
        if self.device.type == "cuda":
            host = flat.to("cpu", non_blocking=True)  # pinned memory; filled once the event has passed
            event = torch.cuda.Event()
            event.record()
            ready = event.synchronize
        else:
            host = flat
        arr = host.numpy()  # views below keep `host` alive
        nq, nv, ng = self.mjm.nq, self.mjm.nv, self.mjm.ngeom
        q, v, gs = arr[:nq], arr[nq : nq + nv], arr[nq + nv : nq + nv + 3 * ng].reshape(ng, 3)
        return MjState(
            q, v, hd.act.copy(), hd.mocap_pos.copy(), hd.mocap_quat.copy(), 0.0, gs, arr[nq + nv + 3 * ng :], ready
        )

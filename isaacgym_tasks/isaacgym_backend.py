"""Isaac Gym backend of BlindGrasping (VecTask-style; NOT exercised at runtime here).

Isaac Gym cannot be installed on any machine this project has, so this module
is checked statically only (mypy against isaacgym-stubs, vermin for Python
3.8). It is kept honest by owning no task logic: observations, rewards,
terminations and reset sampling come from :class:`TaskCore`, the code the
MuJoCo tests run. This file only moves tensors in and out of PhysX.

Import it only when ``isaacgym`` is importable; Isaac Gym also wants to be
imported before torch, so scripts using ``sim=isaacgym`` should ``import
isaacgym`` first.
"""

import os
import tempfile
from typing import Any, Dict, List, Optional, Tuple

import gymnasium
import numpy as np
import torch
from isaacgym import gymapi, gymtorch  # noqa: F401  (gymtorch registers tensor interop)

from .asset import ASSET_PATH, FINGERTIP_SITES, HAND_JOINTS, hand_only_mjcf, read_asset_info
from .config import BlindGraspingConfig, resolve_device
from .task_core import SimState, TaskCore
from .task_math import quat_rotate_inverse
from .vecenv_api import VecEnvApi

#: Fingertip sphere centre in the distal link frame (matches the MJCF site pos).
TIP_OFFSET = (0.0, 0.0, -0.05)


def _xyzw_to_wxyz(q: torch.Tensor) -> torch.Tensor:
    return q[..., [3, 0, 1, 2]]


def _wxyz_to_xyzw(q: torch.Tensor) -> torch.Tensor:
    return q[..., [1, 2, 3, 0]]


class IsaacGymBlindGrasping(VecEnvApi):
    """rl-games vecenv over Isaac Gym PhysX, same asset and task math as the MuJoCo backend."""

    def __init__(
        self,
        num_envs: int,
        cfg: BlindGraspingConfig,
        asset_path: str = ASSET_PATH,
    ) -> None:
        self.cfg = cfg
        self.num_envs = num_envs
        graphics_device_id = cfg.graphics_device_id
        # sim_device cuda:N = PhysX on GPU N with the GPU pipeline: tensors never leave that GPU
        self.device = torch.device(resolve_device(cfg.sim_device, "sim_device"))
        rl_device = resolve_device(cfg.rl_device, "rl_device")
        self.info = read_asset_info(asset_path)
        self.gym = gymapi.acquire_gym()
        self.substeps = cfg.control_substeps
        self.core = TaskCore(cfg, self.info, num_envs, self.info.timestep * self.substeps, self.device, rl_device)
        self.sim = self._create_sim(graphics_device_id)
        self._box_half_fixed = torch.zeros(num_envs, 3, device=self.device)
        self.envs: List[Any] = []
        self._camera: Optional[int] = None
        self._build_envs(asset_path, graphics_device_id >= 0)
        self.gym.prepare_sim(self.sim)
        self._viewer: Any = None
        if not cfg.headless:  # the seed's test_viewer workflow: Isaac Gym's own viewer window
            if graphics_device_id < 0:
                raise ValueError("headless=false needs a graphics device (graphics_device_id >= 0)")
            self._viewer = self.gym.create_viewer(self.sim, gymapi.CameraProperties())
            if self._viewer is None:
                raise ValueError("headless=false: Isaac Gym could not open a viewer (no display?)")
        self._acquire_tensors()
        nj = len(HAND_JOINTS)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (self.core.obs_dim,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (nj,), np.float32)
        self.reset()

    # -- construction ----------------------------------------------------------------
    def _create_sim(self, graphics_device_id: int) -> gymapi.Sim:
        params = gymapi.SimParams()
        params.dt = self.info.timestep
        params.substeps = 1
        params.up_axis = gymapi.UP_AXIS_Z
        params.gravity = gymapi.Vec3(0.0, 0.0, -9.81)
        params.use_gpu_pipeline = self.device.type == "cuda"
        params.physx.solver_type = 1
        params.physx.num_position_iterations = 8
        params.physx.num_velocity_iterations = 1
        params.physx.contact_offset = 0.002
        params.physx.rest_offset = 0.0
        params.physx.use_gpu = self.device.type == "cuda"
        compute_id = self.device.index or 0
        sim = self.gym.create_sim(compute_id, graphics_device_id, gymapi.SIM_PHYSX, params)
        if sim is None:
            raise RuntimeError("Isaac Gym create_sim failed (sim_device={})".format(self.device))
        plane = gymapi.PlaneParams()
        plane.normal = gymapi.Vec3(0.0, 0.0, 1.0)
        self.gym.add_ground(sim, plane)
        return sim

    def _load_hand(self, asset_path: str) -> gymapi.Asset:
        """Load the hand from the shared MJCF minus box/table (one articulation per actor)."""
        folder = tempfile.mkdtemp(prefix="blind_grasping_")
        name = "hand_only.xml"
        with open(os.path.join(folder, name), "w") as f:
            f.write(hand_only_mjcf(asset_path))
        opts = gymapi.AssetOptions()
        opts.fix_base_link = True
        opts.default_dof_drive_mode = int(gymapi.DOF_MODE_POS)
        opts.collapse_fixed_joints = False
        return self.gym.load_asset(self.sim, folder, name, opts)

    def _build_envs(self, asset_path: str, with_camera: bool) -> None:
        info, gym, sim = self.info, self.gym, self.sim
        hand = self._load_hand(asset_path)
        fixed = gymapi.AssetOptions()
        fixed.fix_base_link = True
        th = info.table_half_size
        table = gym.create_box(sim, 2 * th[0], 2 * th[1], 2 * th[2], fixed)
        dof_props = gym.get_asset_dof_properties(hand)
        for i in range(len(HAND_JOINTS)):
            dof_props["driveMode"][i] = gymapi.DOF_MODE_POS
            dof_props["stiffness"][i] = info.drive_kp[i]
            dof_props["damping"][i] = info.drive_kd[i]
            dof_props["effort"][i] = info.drive_effort[i]
        # Box size and mass are asset properties in Isaac Gym: drawn once per env here.
        sample, _ = self.core.sample_resets(torch.arange(self.num_envs, device=self.device))
        lower, upper = gymapi.Vec3(-0.5, -0.5, 0.0), gymapi.Vec3(0.5, 0.5, 1.0)
        per_row = int(np.ceil(np.sqrt(self.num_envs)))
        hand_idx: List[int] = []
        box_idx: List[int] = []
        tip_idx: List[int] = []
        for i in range(self.num_envs):
            env = gym.create_env(sim, lower, upper, per_row)
            half = sample.box_half[i].tolist()
            box_opts = gymapi.AssetOptions()
            box_opts.density = float(sample.box_mass[i]) / (8.0 * half[0] * half[1] * half[2])
            box = gym.create_box(sim, 2 * half[0], 2 * half[1], 2 * half[2], box_opts)
            pose = gymapi.Transform()
            pose.p = gymapi.Vec3(*info.palm_home)
            h = gym.create_actor(env, hand, pose, "hand", i, 0)
            gym.set_actor_dof_properties(env, h, dof_props)
            pose_t = gymapi.Transform()
            pose_t.p = gymapi.Vec3(0.0, 0.0, info.table_top_z - th[2])
            gym.create_actor(env, table, pose_t, "table", i, 0)
            pose_b = gymapi.Transform()
            pose_b.p = gymapi.Vec3(0.0, 0.0, info.table_top_z + half[2])
            b = gym.create_actor(env, box, pose_b, "box", i, 0)
            hand_idx.append(gym.get_actor_index(env, h, gymapi.DOMAIN_SIM))
            box_idx.append(gym.get_actor_index(env, b, gymapi.DOMAIN_SIM))
            for k in range(len(FINGERTIP_SITES)):
                body = "f{}_dist".format(k)
                tip_idx.append(gym.find_actor_rigid_body_index(env, h, body, gymapi.DOMAIN_SIM))
            if with_camera and i == 0:
                cam_props = gymapi.CameraProperties()
                cam_props.width = self.cfg.render_width
                cam_props.height = self.cfg.render_height
                self._camera = gym.create_camera_sensor(env, cam_props)
                gym.set_camera_location(
                    self._camera, env, gymapi.Vec3(0.0, -0.62, 0.86), gymapi.Vec3(0.0, 0.0, 0.45)
                )
            self._box_half_fixed[i] = sample.box_half[i]
            self.envs.append(env)
        dev = self.device
        self._hand_actors = torch.tensor(hand_idx, dtype=torch.int32, device=dev)
        self._box_actors = torch.tensor(box_idx, dtype=torch.int32, device=dev)
        self._tip_bodies = torch.tensor(tip_idx, dtype=torch.long, device=dev).view(self.num_envs, -1)
        self._palm_body = gym.find_actor_rigid_body_index(self.envs[0], 0, "palm", gymapi.DOMAIN_ENV)

    def _acquire_tensors(self) -> None:
        gym, sim = self.gym, self.sim
        self._root = gymtorch.wrap_tensor(gym.acquire_actor_root_state_tensor(sim))
        dof = gymtorch.wrap_tensor(gym.acquire_dof_state_tensor(sim))
        self._dof = dof.view(self.num_envs, len(HAND_JOINTS), 2)
        self._bodies = gymtorch.wrap_tensor(gym.acquire_rigid_body_state_tensor(sim))
        self._forces = gymtorch.wrap_tensor(gym.acquire_net_contact_force_tensor(sim))
        self._bodies_per_env = self._bodies.shape[0] // self.num_envs

    # -- rl-games vecenv API -----------------------------------------------------------
    def reset(self) -> torch.Tensor:
        self._reset_envs(torch.arange(self.num_envs, device=self.device))
        self._simulate_and_refresh(0)
        return self.core.observe(self._state()).to(self.core.rl_device)

    def step(self, actions: Any) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        act = torch.as_tensor(actions, dtype=torch.float32, device=self.device).reshape(self.num_envs, -1)
        targets = self.core.apply_actions(act).contiguous()
        self.gym.set_dof_position_target_tensor(self.sim, gymtorch.unwrap_tensor(targets))
        self._simulate_and_refresh(self.substeps)
        res = self.core.evaluate(self._state())
        obs = res.obs
        reset_ids = res.reset_ids
        if reset_ids.numel() > 0:
            self._reset_envs(reset_ids)
            self._simulate_and_refresh(0)
            obs = self.core.observe(self._state())
        if self._viewer is not None:
            self._draw_viewer()
        return self.core.output(obs, res)

    def _draw_viewer(self) -> None:
        """Draw and pace to real time, as IsaacGymEnvs' VecTask does; closing the window ends nothing."""
        if self.gym.query_viewer_has_closed(self._viewer):
            return
        if self.device.type != "cpu":
            self.gym.fetch_results(self.sim, True)
        self.gym.step_graphics(self.sim)
        self.gym.draw_viewer(self._viewer, self.sim, True)
        self.gym.sync_frame_time(self.sim)

    def render(self, mode: str = "rgb_array") -> np.ndarray:
        if self._camera is None:
            raise ValueError("render needs a graphics device; create the env with graphics_device_id >= 0")
        self.gym.step_graphics(self.sim)
        self.gym.render_all_camera_sensors(self.sim)
        img = self.gym.get_camera_image(self.sim, self.envs[0], self._camera, gymapi.IMAGE_COLOR)
        rgba = np.asarray(img, dtype=np.uint8).reshape(self.cfg.render_height, self.cfg.render_width, 4)
        return rgba[:, :, :3].copy()

    def close(self) -> None:
        if self._viewer is not None:
            self.gym.destroy_viewer(self._viewer)
            self._viewer = None
        self.gym.destroy_sim(self.sim)

    # -- internals --------------------------------------------------------------------
    def _simulate_and_refresh(self, steps: int) -> None:
        for _ in range(steps):
            self.gym.simulate(self.sim)
        if self.device.type == "cpu":
            self.gym.fetch_results(self.sim, True)
        self.gym.refresh_actor_root_state_tensor(self.sim)
        self.gym.refresh_dof_state_tensor(self.sim)
        self.gym.refresh_rigid_body_state_tensor(self.sim)
        self.gym.refresh_net_contact_force_tensor(self.sim)

    def _state(self) -> SimState:
        """Isaac Gym readings mapped onto the shared SimState (touch = |net force| on each distal link)."""
        bodies = self._bodies[self._tip_bodies]  # [N, F, 13]
        tip_quat = _xyzw_to_wxyz(bodies[..., 3:7])
        offset = torch.tensor(TIP_OFFSET, device=self.device).expand_as(bodies[..., :3])
        # rotate by the quaternion: inverse-rotate by its conjugate
        conj = tip_quat * torch.tensor([1.0, -1.0, -1.0, -1.0], device=self.device)
        tip_pos = bodies[..., :3] + quat_rotate_inverse(conj, offset)
        box = self._root[self._box_actors.long()]
        palm = self._bodies.view(self.num_envs, self._bodies_per_env, 13)[:, self._palm_body, :3]
        return SimState(
            q=self._dof[..., 0],
            qd=self._dof[..., 1],
            palm_pos=palm,
            touch=self._forces[self._tip_bodies].norm(dim=-1),
            tip_pos=tip_pos,
            box_pos=box[:, :3],
            box_quat=_xyzw_to_wxyz(box[:, 3:7]),
        )

    def _reset_envs(self, env_ids: torch.Tensor) -> None:
        sample, q0 = self.core.sample_resets(env_ids)
        half = self._box_half_fixed[env_ids]
        self.core.box_half[env_ids] = half  # sizes were fixed when the box assets were created
        self._dof[env_ids, :, 0] = q0
        self._dof[env_ids, :, 1] = 0.0
        hand = self._hand_actors[env_ids]
        self.gym.set_dof_state_tensor_indexed(
            self.sim,
            gymtorch.unwrap_tensor(self._dof.view(-1, 2)),
            gymtorch.unwrap_tensor(hand),
            int(hand.numel()),
        )
        self.gym.set_dof_position_target_tensor(
            self.sim, gymtorch.unwrap_tensor(self.core.targets.contiguous())
        )
        boxes = self._box_actors[env_ids]
        root = self._root
        rows = boxes.long()
        root[rows, 0:2] = sample.box_xy
        root[rows, 2] = self.info.table_top_z + half[:, 2] + 0.001
        root[rows, 3:7] = _wxyz_to_xyzw(sample.box_quat)
        root[rows, 7:13] = 0.0
        self.gym.set_actor_root_state_tensor_indexed(
            self.sim, gymtorch.unwrap_tensor(root), gymtorch.unwrap_tensor(boxes), int(boxes.numel())
        )

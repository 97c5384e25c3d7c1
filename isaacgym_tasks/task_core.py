"""Simulator-independent episode bookkeeping for BlindGrasping.

A backend reads its simulator into a :class:`SimState`, and this class turns it
into observations, rewards, dones and the list of envs to reset. Both backends
drive the same object, so the only per-simulator code left is moving tensors.
"""

from typing import Any, Dict, NamedTuple, Optional, Tuple

import torch

from . import task_math
from .asset import HAND_OPEN_POSE, NUM_BASE_JOINTS, AssetInfo
from .config import BlindGraspingConfig


class SimState(NamedTuple):
    """Simulator readings, all float32 on the task device, leading dim N."""

    q: torch.Tensor  # [N, J] hand joint positions
    qd: torch.Tensor  # [N, J] hand joint velocities
    palm_pos: torch.Tensor  # [N, 3] palm position in the world
    touch: torch.Tensor  # [N, F] fingertip normal force (N)
    tip_pos: torch.Tensor  # [N, F, 3] fingertip centres in the world
    box_pos: torch.Tensor  # [N, 3] (reward only; never observed)
    box_quat: torch.Tensor  # [N, 4] (w, x, y, z) (reward only; never observed)


class StepResult(NamedTuple):
    obs: torch.Tensor
    reward: torch.Tensor
    done: torch.Tensor
    infos: Dict[str, object]

    @property
    def reset_ids(self) -> torch.Tensor:
        """Indices of finished envs (a host sync on a GPU: backends that reset by mask never ask)."""
        return self.done.nonzero(as_tuple=False).flatten()


class TaskCore:
    """Buffers and per-step logic of one batch of BlindGrasping episodes."""

    def __init__(
        self,
        cfg: BlindGraspingConfig,
        info: AssetInfo,
        num_envs: int,
        control_dt: float,
        device: Any = "cpu",
        rl_device: Any = "cpu",
    ) -> None:
        """``device``: where the task math runs (the simulator's tensors); ``rl_device``: where
        :meth:`output` puts what rl-games receives (the policy's device)."""
        self.cfg = cfg
        self.info = info
        self.num_envs = num_envs
        self.dt = control_dt
        self.max_steps = max(1, int(round(cfg.episode_length_s / control_dt)))
        dev = torch.device(device)
        self.device = dev
        self.rl_device = torch.device(rl_device)
        j = len(info.joint_lower)
        self.num_joints = j
        self.lower = torch.tensor(info.joint_lower, dtype=torch.float32, device=dev)
        self.upper = torch.tensor(info.joint_upper, dtype=torch.float32, device=dev)
        scale = [cfg.base_action_scale] * NUM_BASE_JOINTS + [cfg.finger_action_scale] * (j - NUM_BASE_JOINTS)
        self.action_scale = torch.tensor(scale, dtype=torch.float32, device=dev)
        self.open_pose = torch.tensor(HAND_OPEN_POSE, dtype=torch.float32, device=dev)
        self.palm_home = torch.tensor(info.palm_home, dtype=torch.float32, device=dev)
        self.targets = self.open_pose.repeat(num_envs, 1)
        self.prev_actions = torch.zeros(num_envs, j, device=dev)
        self.progress = torch.zeros(num_envs, dtype=torch.long, device=dev)
        self.hold_time = torch.zeros(num_envs, device=dev)
        self.box_start_xy = torch.zeros(num_envs, 2, device=dev)
        self.box_half = torch.tensor(info.box_half_size, device=dev).repeat(num_envs, 1)
        # on the task device: a GPU backend draws its resets without leaving the GPU
        self.generator = torch.Generator(device=dev).manual_seed(cfg.seed)
        self.obs_dim = task_math.obs_dim(j)
        groups = cfg.reset_groups
        if num_envs % groups:
            raise ValueError("reset_groups={} must divide num_envs={}".format(groups, num_envs))
        #: compare mode (groups > 1): env e draws its resets from stream (seed, e mod group size, episode)
        self.grouped = groups > 1
        self.local_index = torch.arange(num_envs, device=dev) % (num_envs // groups)
        self.episode_no = torch.zeros(num_envs, dtype=torch.long, device=dev)
        self.hash_seed = cfg.seed

    def seed(self, seed: int) -> None:
        """Restart the reset-randomisation stream(s); the physics itself is deterministic."""
        self.generator.manual_seed(int(seed))
        self.hash_seed = int(seed)
        self.episode_no.zero_()

    def apply_actions(self, actions: torch.Tensor) -> torch.Tensor:
        """Return the new joint targets [N, J] for the simulator's position drives."""
        actions = actions.to(self.device, torch.float32)
        self.targets = task_math.scale_actions(
            actions, self.targets, self.action_scale, self.lower, self.upper
        )
        self.prev_actions = actions.clamp(-1.0, 1.0)
        return self.targets

    def sample_resets(self, env_ids: torch.Tensor) -> Tuple[task_math.ResetSample, torch.Tensor]:
        """Draw randomisation for ``env_ids``, reset their buffers, and return (sample, initial q [n, J])."""
        sample = self._draw(int(env_ids.numel()), env_ids)
        q0 = self._initial_pose(sample)
        self.targets[env_ids] = q0
        self.prev_actions[env_ids] = 0.0
        self.progress[env_ids] = 0
        self.hold_time[env_ids] = 0.0
        self.box_start_xy[env_ids] = sample.box_xy
        self.box_half[env_ids] = sample.box_half
        return sample, q0

    def sample_resets_where(self, mask: torch.Tensor) -> Tuple[task_math.ResetSample, torch.Tensor]:
        """Like :meth:`sample_resets` for the envs where ``mask`` [N] is true, with no host sync.

        Draws for all N envs (same distributions) and keeps the draws where ``mask`` holds; the
        returned sample and pose [N, J] are to be applied with the same mask.
        """
        sample = self._draw(self.num_envs, mask=mask)
        q0 = self._initial_pose(sample)
        m = mask.view(-1, 1)
        self.targets = torch.where(m, q0, self.targets)
        self.prev_actions = torch.where(m, torch.zeros_like(self.prev_actions), self.prev_actions)
        self.progress = torch.where(mask, torch.zeros_like(self.progress), self.progress)
        self.hold_time = torch.where(mask, torch.zeros_like(self.hold_time), self.hold_time)
        self.box_start_xy = torch.where(m, sample.box_xy, self.box_start_xy)
        self.box_half = torch.where(m, sample.box_half, self.box_half)
        return sample, q0

    def _draw(
        self, n: int, env_ids: Optional[torch.Tensor] = None, mask: Optional[torch.Tensor] = None
    ) -> task_math.ResetSample:
        """``n`` draws: for ``env_ids`` (or all envs, of which ``mask`` will be applied)."""
        cfg = self.cfg
        uniforms = None
        if self.grouped:  # per-index streams: the j-th episode of env i is the same in every group
            ids = env_ids.to(self.device) if env_ids is not None else torch.arange(n, device=self.device)
            uniforms = task_math.hashed_uniforms(self.hash_seed, self.local_index[ids], self.episode_no[ids])
            if mask is not None:
                self.episode_no += mask.to(self.device).long()
            else:
                self.episode_no[ids] += 1
        return task_math.sample_reset(
            self.generator,
            n,
            cfg.box_half_size_range,
            cfg.box_mass_range,
            cfg.box_xy_noise,
            cfg.box_yaw_noise,
            cfg.hand_xy_noise,
            cfg.hand_z_noise,
            uniforms,
        )

    def _initial_pose(self, sample: task_math.ResetSample) -> torch.Tensor:
        q0 = self.open_pose.repeat(sample.box_mass.shape[0], 1)
        q0[:, :NUM_BASE_JOINTS] += sample.hand_offset
        return torch.max(torch.min(q0, self.upper), self.lower)

    def output(self, obs: torch.Tensor, res: StepResult) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, Dict[str, Any]]:
        """``(obs, reward, done, infos)`` for rl-games, every tensor on ``rl_device``.

        rl-games passes an env's torch tensors to the policy unchanged (the Isaac Gym convention),
        so a CPU simulator next to a CUDA policy must move them; same device = no copy.
        """
        rl = self.rl_device
        infos = {k: _to(v, rl) for k, v in res.infos.items()}
        return obs.to(rl), res.reward.to(rl), res.done.to(rl, torch.uint8), infos

    def observe(self, s: SimState) -> torch.Tensor:
        """Observation [N, obs_dim] from the current state (no box pose in it)."""
        return task_math.compute_observations(
            s.q,
            s.qd,
            self.targets,
            s.palm_pos,
            s.touch,
            self.prev_actions,
            self.progress.float() / self.max_steps,
            self.lower,
            self.upper,
            self.palm_home,
        )

    def evaluate(self, s: SimState, unstable: Optional[torch.Tensor] = None) -> StepResult:
        """Reward, done flags and logging infos after one control step; advances episode clocks.

        ``unstable`` marks envs whose simulator diverged this step: they end (no
        bonus, no penalty) because their state no longer means anything.
        """
        cfg = self.cfg
        self.progress += 1
        contact = task_math.fingertip_box_contact(
            s.tip_pos, s.touch, s.box_pos, s.box_quat, self.box_half, self.info.fingertip_radius
        )
        lift = s.box_pos[:, 2] - (self.info.table_top_z + self.box_half[:, 2])
        n_contact = contact.sum(dim=-1)
        lifted = (lift >= cfg.success_height) & (n_contact >= 1)
        self.hold_time = task_math.update_hold_time(self.hold_time, lifted, self.dt)
        success, failure, timeout = task_math.compute_terminations(
            self.hold_time,
            s.box_pos,
            self.box_start_xy,
            self.info.table_top_z,
            self.progress,
            self.max_steps,
            cfg.success_hold_s,
        )
        reward, terms = task_math.compute_reward(
            s.tip_pos,
            s.box_pos,
            contact,
            lift,
            success,
            failure,
            self.prev_actions,
            cfg.reward_weights,
            cfg.success_height,
            self.max_steps - self.progress,
        )
        done = success | failure | timeout
        if unstable is not None:
            done = done | unstable
            reward = torch.where(unstable, torch.zeros_like(reward), reward)
        infos: Dict[str, object] = {
            "time_outs": timeout,
            "successes": success,
            # DefaultAlgoObserver logs infos['scores'] of finished envs as scores/mean = success rate;
            # it indexes them with numpy, so this one small array [N] is copied to the host each step.
            "scores": success.float().cpu().numpy(),
            "box_contacts": n_contact,
            "lift": lift,
            "episode": dict(zip(["rew_" + k for k in terms], torch.stack(list(terms.values())).mean(dim=1))),
        }
        return StepResult(self.observe(s), reward, done, infos)


def _to(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, dict):
        return {k: _to(v, device) for k, v in value.items()}
    return value

"""BlindGrasping task math: batched torch functions shared by every backend.

Each backend only moves numbers between its simulator and these functions, so
the Isaac Gym path, which cannot run here, computes observations, rewards,
terminations and reset samples with the exact code the MuJoCo tests exercise.
Quaternions are (w, x, y, z); Isaac Gym's (x, y, z, w) is converted by its backend.
"""

from typing import Dict, NamedTuple, Optional, Tuple

import torch

NUM_FINGERS = 3
#: Touch above this (N) counts as a contact; the sensor reads exactly 0 in free air.
TOUCH_THRESHOLD = 0.05
#: Extra gap (m) between fingertip sphere and box surface still counted as touching.
CONTACT_MARGIN = 0.006


def obs_dim(num_joints: int) -> int:
    """Observation width: q, qd, targets, palm xyz, touch, previous action, time."""
    return 3 * num_joints + 3 + NUM_FINGERS + num_joints + 1


def scale_actions(
    actions: torch.Tensor,
    targets: torch.Tensor,
    action_scale: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
) -> torch.Tensor:
    """New joint targets = old targets + clip(action, -1, 1) * scale, kept inside the joint limits.

    Deltas (not absolute targets) make a zero action mean "hold still", which is a
    safe default for a freshly initialised policy near a table.
    """
    delta = actions.clamp(-1.0, 1.0) * action_scale
    return torch.max(torch.min(targets + delta, upper), lower)


def compute_observations(
    q: torch.Tensor,
    qd: torch.Tensor,
    targets: torch.Tensor,
    palm_pos: torch.Tensor,
    touch: torch.Tensor,
    prev_actions: torch.Tensor,
    progress: torch.Tensor,
    lower: torch.Tensor,
    upper: torch.Tensor,
    palm_home: torch.Tensor,
) -> torch.Tensor:
    """Proprioception + touch only: no object pose or velocity ever enters here.

    Joint positions and targets are mapped to [-1, 1] over their limits; palm
    position is relative to its home pose in decimetres; touch is log-compressed
    because grasp forces span three orders of magnitude.
    """
    mid = 0.5 * (upper + lower)
    half = 0.5 * (upper - lower)
    return torch.cat(
        (
            (q - mid) / half,
            qd * 0.2,
            (targets - mid) / half,
            (palm_pos - palm_home) * 10.0,
            torch.log1p(touch.clamp(min=0.0)),
            prev_actions,
            progress.unsqueeze(-1),
        ),
        dim=-1,
    )


def quat_rotate_inverse(quat: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """Rotate ``vec`` [..., 3] by the inverse of unit quaternion ``quat`` [..., 4] (w, x, y, z)."""
    w = quat[..., :1]
    u = quat[..., 1:]
    t = 2.0 * torch.cross(u, vec, dim=-1)
    return vec - w * t + torch.cross(u, t, dim=-1)


def fingertip_box_contact(
    tip_pos: torch.Tensor,
    touch: torch.Tensor,
    box_pos: torch.Tensor,
    box_quat: torch.Tensor,
    box_half: torch.Tensor,
    tip_radius: float,
) -> torch.Tensor:
    """[N, F] bool: fingertip is pressing on something and that something is the box.

    Touch sensors cannot tell the box from the table, so a touch counts for the
    reward only when the fingertip sphere is within a few mm of the box surface.
    Any simulator that reports fingertip force and positions can feed this.
    """
    rel = tip_pos - box_pos.unsqueeze(1)
    local = quat_rotate_inverse(box_quat.unsqueeze(1).expand(-1, rel.shape[1], -1), rel)
    excess = local.abs() - box_half.unsqueeze(1)
    outside = excess.clamp(min=0.0).norm(dim=-1)
    inside = excess.max(dim=-1).values.clamp(max=0.0)
    surface_dist = outside + inside
    return (surface_dist < tip_radius + CONTACT_MARGIN) & (touch > TOUCH_THRESHOLD)


def update_hold_time(hold_time: torch.Tensor, lifted: torch.Tensor, dt: float) -> torch.Tensor:
    """Seconds the box has been continuously above the success height; drops to 0 when it sinks."""
    return torch.where(lifted, hold_time + dt, torch.zeros_like(hold_time))


def compute_reward(
    tip_pos: torch.Tensor,
    box_pos: torch.Tensor,
    box_contact: torch.Tensor,
    lift: torch.Tensor,
    success: torch.Tensor,
    failure: torch.Tensor,
    actions: torch.Tensor,
    weights: Dict[str, float],
    success_height: float,
    remaining_steps: torch.Tensor,
) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
    """Weighted sum of reach, contact, lift, hold, success, failure and action terms.

    Dense reach and contact terms give a gradient from the first episode; lift is
    gated on two fingertips on the box so flicking the box up does not pay.
    Success ends the episode, so besides its bonus it pays ``success_tail`` per
    step left in the episode (by default the most the dense terms could still
    earn): otherwise hovering just below the success height, collecting lift
    reward until the timeout, beats succeeding (a first training run found that).
    Returns the reward [N] and the unweighted terms for logging.
    """
    tip_dist = (tip_pos - box_pos.unsqueeze(1)).norm(dim=-1).mean(dim=-1)
    n_contact = box_contact.sum(dim=-1)
    terms = {
        "reach": 1.0 - torch.tanh(10.0 * tip_dist),
        "contact": n_contact.float() / box_contact.shape[-1],
        "lift": (lift / success_height).clamp(0.0, 1.0) * (n_contact >= 2).float(),
        "hold": ((lift >= success_height) & (n_contact >= 1)).float(),
        "success": success.float(),
        "success_tail": success.float() * remaining_steps.float(),
        "failure": failure.float(),
        "action": (actions * actions).sum(dim=-1),
    }
    reward = torch.zeros_like(tip_dist)
    for name, value in terms.items():
        reward = reward + weights[name] * value
    return reward, terms


def compute_terminations(
    hold_time: torch.Tensor,
    box_pos: torch.Tensor,
    box_start_xy: torch.Tensor,
    table_top_z: float,
    progress_steps: torch.Tensor,
    max_steps: int,
    success_hold_s: float,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(success, failure, timeout) booleans [N].

    Failure = box pushed more than 15 cm sideways, fallen below the table top or
    thrown 40 cm up: states from which the episode has nothing left to teach.
    Timeout excludes success/failure so rl-games can bootstrap only true time limits.
    """
    success = hold_time >= success_hold_s - 1e-6
    displaced = (box_pos[:, :2] - box_start_xy).norm(dim=-1) > 0.15
    fell = box_pos[:, 2] < table_top_z - 0.02
    thrown = box_pos[:, 2] > table_top_z + 0.4
    failure = (displaced | fell | thrown) & ~success
    timeout = (progress_steps >= max_steps) & ~success & ~failure
    return success, failure, timeout


class ResetSample(NamedTuple):
    """Per-env randomisation drawn at reset; all tensors have leading dim N."""

    box_half: torch.Tensor  # [N, 3] half extents (m)
    box_mass: torch.Tensor  # [N]
    box_xy: torch.Tensor  # [N, 2] offset from the table centre
    box_quat: torch.Tensor  # [N, 4] (w, x, y, z), yaw only
    hand_offset: torch.Tensor  # [N, 3] added to the open pose's base joints


#: Uniform numbers one reset consumes (see :func:`sample_reset`): yaw 1, hand 2 + 1, half 3, mass 1, xy 2.
RESET_UNIFORMS = 10
_M32 = 0xFFFFFFFF


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (two multiply-xorshift rounds) on int64 tensors holding values < 2**32;
    the products stay below 2**59, so nothing overflows on any device."""
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    x = (((x >> 16) ^ x) * 0x45D9F3B) & _M32
    return (x >> 16) ^ x


def hashed_uniforms(seed: int, index: torch.Tensor, episode: torch.Tensor, k: int = RESET_UNIFORMS) -> torch.Tensor:
    """[n, k] float32 uniforms in [0, 1), a pure function of (seed, index[i], episode[i], column).

    Why counter-based: in compare mode, env ``i`` of every group must start its ``j``-th episode from
    the same state although the groups finish episodes at different times; a shared stream would hand
    them different draws. Pure tensor ops: no host sync on a GPU.
    """
    index, episode = index.long(), episode.long()
    h = _mix32(_mix32((index & _M32) ^ (int(seed) & _M32)) ^ (episode & _M32))
    h = _mix32(h ^ ((episode >> 32) & _M32))
    col = torch.arange(k, dtype=torch.long, device=index.device)
    bits = _mix32(h.unsqueeze(-1) ^ _mix32(col + 0x9E3779B9))
    return (bits >> 8).float() * (1.0 / (1 << 24))


def sample_reset(
    generator: torch.Generator,
    n: int,
    half_range: Tuple[float, float],
    mass_range: Tuple[float, float],
    box_xy_noise: float,
    box_yaw_noise: float,
    hand_xy_noise: float,
    hand_z_noise: float,
    uniforms: Optional[torch.Tensor] = None,
) -> ResetSample:
    """Draw reset randomisation from ``generator`` so a seed fixes every episode; or, when
    ``uniforms`` [n, RESET_UNIFORMS] is given, map those numbers (in the same order) instead."""
    used = [0]

    def uniform(shape: Tuple[int, ...], lo: float, hi: float) -> torch.Tensor:
        if uniforms is None:
            return lo + (hi - lo) * torch.rand(shape, generator=generator, device=generator.device)
        width = 1 if len(shape) == 1 else shape[1]
        u = uniforms[:, used[0] : used[0] + width].reshape(shape)
        used[0] += width
        return lo + (hi - lo) * u

    yaw = uniform((n,), -box_yaw_noise, box_yaw_noise)
    half_yaw = 0.5 * yaw
    zeros = torch.zeros_like(yaw)
    quat = torch.stack((torch.cos(half_yaw), zeros, zeros, torch.sin(half_yaw)), dim=-1)
    hand = torch.cat(
        (uniform((n, 2), -hand_xy_noise, hand_xy_noise), uniform((n, 1), 0.0, hand_z_noise)),
        dim=-1,
    )
    return ResetSample(
        box_half=uniform((n, 3), half_range[0], half_range[1]),
        box_mass=uniform((n,), mass_range[0], mass_range[1]),
        box_xy=uniform((n, 2), -box_xy_noise, box_xy_noise),
        box_quat=quat,
        hand_offset=hand,
    )


def box_inertia(mass: torch.Tensor, half: torch.Tensor) -> torch.Tensor:
    """Diagonal inertia [N, 3] of a solid box, so mass randomisation stays physical."""
    full_sq = (2.0 * half) ** 2
    return (
        mass.unsqueeze(-1)
        / 12.0
        * torch.stack(
            (full_sq[:, 1] + full_sq[:, 2], full_sq[:, 0] + full_sq[:, 2], full_sq[:, 0] + full_sq[:, 1]),
            dim=-1,
        )
    )


def yaw_of(quat: torch.Tensor) -> torch.Tensor:
    """Yaw angle of (w, x, y, z) quaternions; used by tests and debugging."""
    w, x, y, z = quat.unbind(-1)
    return torch.atan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


__all__ = [
    "NUM_FINGERS",
    "RESET_UNIFORMS",
    "TOUCH_THRESHOLD",
    "ResetSample",
    "box_inertia",
    "compute_observations",
    "compute_reward",
    "compute_terminations",
    "fingertip_box_contact",
    "hashed_uniforms",
    "obs_dim",
    "quat_rotate_inverse",
    "sample_reset",
    "scale_actions",
    "update_hold_time",
    "yaw_of",
]

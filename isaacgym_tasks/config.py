"""Validated settings of the BlindGrasping task, shared by both backends.

Every key a user can put in ``env_config`` is a field here, so a typo is
rejected up front with the list of allowed keys instead of being ignored.
"""

import math
import re
from dataclasses import dataclass, field, fields
from typing import Any, Dict, Mapping, Tuple

SIM_CHOICES = ("auto", "mujoco", "mjwarp", "isaacgym")

#: Reward weights (per control step unless noted); see docs/blind_grasping.md.
DEFAULT_REWARD_WEIGHTS: Dict[str, float] = {
    "reach": 1.0,  # 1 - tanh(10 * mean fingertip-to-box-centre distance)
    "contact": 0.5,  # fraction of fingertips touching the box
    "lift": 5.0,  # box lift / success_height, clipped to [0, 1], needs >= 2 tips on the box
    "hold": 2.0,  # box at >= success_height with a tip on it
    "success": 50.0,  # once, on success
    "success_tail": 8.5,  # on success, per step left in the episode (= reach+contact+lift+hold)
    "failure": -10.0,  # once, when the box is knocked away or falls
    "action": -0.01,  # times the squared action norm
}


def resolve_device(spec: str, key: str = "device") -> str:
    """``auto`` -> ``cuda:0`` when torch sees a GPU, else ``cpu``; ``cuda`` -> ``cuda:0``; checks the index.

    Raises ValueError naming ``key`` when the device is malformed or absent on this machine.
    """
    import torch

    text = str(spec).strip().lower()
    if text == "auto":
        return "cuda:0" if torch.cuda.is_available() else "cpu"
    if text == "cpu":
        return "cpu"
    match = re.fullmatch(r"cuda(?::(\d+))?", text)
    if match is None:
        raise ValueError("{}={!r} is not a device; allowed: auto, cpu, cuda, cuda:N".format(key, spec))
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if index >= count:
        have = "no CUDA GPU" if count == 0 else "{} CUDA GPU(s): cuda:0..cuda:{}".format(count, count - 1)
        raise ValueError("{}={}: this machine has {}; allowed: auto, cpu{}".format(
            key, spec, have, ", cuda:0..cuda:{}".format(count - 1) if count else ""))
    return "cuda:{}".format(index)


@dataclass
class BlindGraspingConfig:
    """Task settings; units are SI (m, kg, s, rad)."""

    seed: int = 0
    sim: str = "auto"
    #: torch device of observations, rewards and dones (the policy's device); auto = cuda:0 if available
    rl_device: str = "auto"
    #: device the simulator steps on (MuJoCo: always the CPU); auto = cuda:0 if available
    sim_device: str = "auto"
    #: Isaac Gym's camera/viewer GPU; -1 = no graphics (then no render, no viewer)
    graphics_device_id: int = 0
    episode_length_s: float = 5.0
    control_substeps: int = 10
    render_width: int = 640
    render_height: int = 480
    #: shadow map size (pixels a side) of the frames drawn for the stream and the recorder; the asset's
    #: 2048 (viewer, ``render()``) costs a compute GPU (H100) ~0.9 ms per frame, stalling a policy on that
    #: GPU as long; 1024 half that, with 0.04 % of a 640x480 frame's pixels changed (docs/benchmarks.md §5)
    render_shadow_size: int = 1024
    #: multisampling (MSAA samples per pixel) of the same frames, at most the asset's 4 (viewer, ``render()``);
    #: on an H100 the 4x multisampling is most of what is left of a frame's GPU time (stall ~0.6 ms ->
    #: ~0.2-0.3 ms without it); at 640x480 after the JPEG encode the edges barely change (docs/benchmarks.md §5)
    render_samples: int = 0
    num_threads: int = 1
    #: compare mode: the envs form this many equal groups; env i of every group starts its j-th episode
    #: from the same state (per-index reset streams instead of one shared stream). 1 = one shared stream.
    reset_groups: int = 1
    #: Isaac Gym-style flag; neither backend opens a viewer, render() is always offscreen.
    headless: bool = True
    box_half_size_range: Tuple[float, float] = (0.025, 0.035)
    box_mass_range: Tuple[float, float] = (0.05, 0.2)
    box_xy_noise: float = 0.02
    box_yaw_noise: float = math.pi
    hand_xy_noise: float = 0.01
    hand_z_noise: float = 0.02
    success_height: float = 0.1
    success_hold_s: float = 1.0
    base_action_scale: float = 0.01
    finger_action_scale: float = 0.1
    reward_weights: Dict[str, float] = field(default_factory=lambda: dict(DEFAULT_REWARD_WEIGHTS))

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any]) -> "BlindGraspingConfig":
        """Build from ``env_config``; unknown keys or bad values raise ValueError naming them."""
        allowed = [f.name for f in fields(cls)]
        for key in kwargs:
            if key not in allowed:
                raise ValueError(
                    "unknown BlindGrasping env_config key {!r}; allowed keys: {}".format(
                        key, ", ".join(allowed)
                    )
                )
        values = dict(kwargs)
        if "reward_weights" in values:
            weights = dict(DEFAULT_REWARD_WEIGHTS)
            for key, val in dict(values["reward_weights"]).items():
                if key not in DEFAULT_REWARD_WEIGHTS:
                    raise ValueError(
                        "unknown reward_weights key {!r}; allowed keys: {}".format(
                            key, ", ".join(DEFAULT_REWARD_WEIGHTS)
                        )
                    )
                weights[key] = float(val)
            values["reward_weights"] = weights
        for key in ("box_half_size_range", "box_mass_range"):
            if key in values:
                values[key] = tuple(float(v) for v in values[key])
        cfg = cls(**values)
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Raise ValueError whose message names the first bad key and what is allowed."""
        if self.sim not in SIM_CHOICES:
            raise ValueError(
                "sim={!r} is not allowed; choose one of {}".format(self.sim, ", ".join(SIM_CHOICES))
            )
        positive = (
            "episode_length_s",
            "success_height",
            "success_hold_s",
            "base_action_scale",
            "finger_action_scale",
        )
        for key in positive:
            if not float(getattr(self, key)) > 0:
                raise ValueError("{}={!r} must be > 0".format(key, getattr(self, key)))
        for key in ("rl_device", "sim_device"):
            resolve_device(getattr(self, key), key)
        if not isinstance(self.graphics_device_id, int) or self.graphics_device_id < -1:
            raise ValueError("graphics_device_id={!r} must be an integer >= -1".format(self.graphics_device_id))
        for key in ("control_substeps", "render_width", "render_height", "render_shadow_size", "num_threads",
                    "reset_groups"):
            val = getattr(self, key)
            if not isinstance(val, int) or isinstance(val, bool) or val < 1:
                raise ValueError("{}={!r} must be an integer >= 1".format(key, val))
        samples = self.render_samples
        if not isinstance(samples, int) or isinstance(samples, bool) or samples < 0:
            raise ValueError("render_samples={!r} must be an integer >= 0 (0 = no multisampling)".format(samples))
        if not isinstance(self.headless, bool):
            raise ValueError("headless={!r} must be true or false".format(self.headless))
        if not isinstance(self.seed, int) or isinstance(self.seed, bool):
            raise ValueError("seed={!r} must be an integer".format(self.seed))
        for key in ("box_half_size_range", "box_mass_range"):
            lo_hi = getattr(self, key)
            if len(lo_hi) != 2 or not 0 < lo_hi[0] <= lo_hi[1]:
                raise ValueError("{}={!r} must be [low, high] with 0 < low <= high".format(key, lo_hi))
        for key in ("box_xy_noise", "box_yaw_noise", "hand_xy_noise", "hand_z_noise"):
            if float(getattr(self, key)) < 0:
                raise ValueError("{}={!r} must be >= 0".format(key, getattr(self, key)))

"""BlindGrasping: grasp and lift a box by touch and proprioception alone.

Importing this package imports neither MuJoCo nor Isaac Gym; ``make_env``
picks a backend when an env is created, so a machine without Isaac Gym (every
machine here) never touches its code paths.
"""

import importlib.util
from typing import Any

from .config import SIM_CHOICES, BlindGraspingConfig

TASK_NAME = "BlindGrasping"
VECENV_TYPE = "BLINDGRASPING"

__all__ = [
    "TASK_NAME",
    "VECENV_TYPE",
    "BlindGraspingConfig",
    "check_config",
    "make_env",
    "register",
    "resolve_sim",
]


def resolve_sim(sim: str) -> str:
    """Map ``auto`` to ``isaacgym`` when that package is importable, else ``mujoco``."""
    if sim not in SIM_CHOICES:
        raise ValueError("sim={!r} is not allowed; choose one of {}".format(sim, ", ".join(SIM_CHOICES)))
    if sim != "auto":
        return sim
    return "isaacgym" if importlib.util.find_spec("isaacgym") is not None else "mujoco"


def make_env(num_envs: int = 1, **kwargs: Any) -> Any:
    """Create a BlindGrasping vecenv of ``num_envs`` worlds; kwargs are ``env_config`` keys."""
    cfg = BlindGraspingConfig.from_kwargs(kwargs)
    sim = resolve_sim(cfg.sim)
    if sim == "mujoco":
        from .mujoco_backend import MujocoBlindGrasping

        return MujocoBlindGrasping(int(num_envs), cfg)
    if importlib.util.find_spec("isaacgym") is None:
        raise ValueError(
            "sim='isaacgym' was requested but the isaacgym package is not installed; use sim=mujoco or sim=auto"
        )
    from .isaacgym_backend import IsaacGymBlindGrasping

    return IsaacGymBlindGrasping(int(num_envs), cfg)


def check_config(**kwargs: Any) -> None:
    """Validate ``env_config`` without building an env: a launcher fails in a second, not after start-up.

    Raises ValueError (one line naming the key and what is allowed).
    """
    cfg = BlindGraspingConfig.from_kwargs({k: v for k, v in kwargs.items() if k != "num_envs"})
    sim = resolve_sim(cfg.sim)
    if sim == "isaacgym" and importlib.util.find_spec("isaacgym") is None:
        raise ValueError("sim=isaacgym: the isaacgym package is not installed; allowed here: mujoco, auto")


def _env_creator(**kwargs: Any) -> Any:
    num_envs = int(kwargs.pop("num_envs", 1))
    return make_env(num_envs, **kwargs)


def register() -> None:
    """Register ``BlindGrasping`` (vecenv type ``BLINDGRASPING``) in rl-games' registries.

    Idempotent: calling it again just overwrites the same two entries.
    """
    from rl_games.common import env_configurations, vecenv

    env_configurations.register(TASK_NAME, {"vecenv_type": VECENV_TYPE, "env_creator": _env_creator})
    vecenv.register(VECENV_TYPE, lambda config_name, num_actors, **kw: make_env(num_actors, **kw))

"""BlindGrasping: grasp and lift a box by touch and proprioception alone.

Importing this package imports neither MuJoCo nor Isaac Gym; ``make_env``
picks a backend when an env is created, so a machine without Isaac Gym (every
machine here) never touches its code paths.
"""

import importlib.util
from typing import Any

from .config import SIM_CHOICES, BlindGraspingConfig, resolve_device

TASK_NAME = "BlindGrasping"
VECENV_TYPE = "BLINDGRASPING"

__all__ = [
    "TASK_NAME",
    "VECENV_TYPE",
    "BlindGraspingConfig",
    "check_config",
    "make_env",
    "register",
    "resolve_device",
    "resolve_sim",
]


def _importable(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def resolve_sim(sim: str, sim_device: str = "cpu") -> str:
    """Map ``auto`` to a backend: isaacgym if importable, else mjwarp when ``sim_device`` is a GPU and
    MuJoCo Warp is installed, else mujoco."""
    if sim not in SIM_CHOICES:
        raise ValueError("sim={!r} is not allowed; choose one of {}".format(sim, ", ".join(SIM_CHOICES)))
    if sim != "auto":
        return sim
    if _importable("isaacgym"):
        return "isaacgym"
    device = resolve_device(sim_device, "sim_device")
    if device.startswith("cuda") and _importable("warp") and _importable("mujoco_warp"):
        return "mjwarp"
    return "mujoco"


def make_env(num_envs: int = 1, **kwargs: Any) -> Any:
    """Create a BlindGrasping vecenv of ``num_envs`` worlds; kwargs are ``env_config`` keys."""
    cfg = BlindGraspingConfig.from_kwargs(kwargs)
    sim = _checked_sim(cfg)
    if sim == "mujoco":
        from .mujoco_backend import MujocoBlindGrasping

        return MujocoBlindGrasping(int(num_envs), cfg)
    if sim == "mjwarp":
        from .mjwarp_backend import MjWarpBlindGrasping

        return MjWarpBlindGrasping(int(num_envs), cfg)
    from .isaacgym_backend import IsaacGymBlindGrasping

    return IsaacGymBlindGrasping(int(num_envs), cfg)


def _checked_sim(cfg: BlindGraspingConfig) -> str:
    """The backend ``cfg`` asks for, or ValueError (one line) saying what is missing for it here."""
    sim = resolve_sim(cfg.sim, cfg.sim_device)
    if sim == "isaacgym" and not _importable("isaacgym"):
        raise ValueError("sim=isaacgym: the isaacgym package is not installed; allowed here: mujoco, mjwarp, auto")
    if sim == "mjwarp":
        sim_device = resolve_device(cfg.sim_device, "sim_device")
        why = None
        missing = [name for name in ("warp", "mujoco_warp") if not _importable(name)]
        if missing:
            why = "{} not installed; install with pip install -e '.[gpu]'".format(" and ".join(missing))
        elif sim_device == "cpu" and cfg.sim_device == "auto":
            why = "no CUDA GPU visible to torch; use sim=mujoco (or sim_device=cpu: warp's CPU device, slow)"
        if why:
            raise ValueError("sim=mjwarp: " + why)
    return sim


def check_config(**kwargs: Any) -> str:
    """Validate ``env_config`` without building an env: a launcher fails in a second, not after start-up.

    Returns the backend that ``make_env`` would use. Raises ValueError (one line naming the key and
    what is allowed).
    """
    cfg = BlindGraspingConfig.from_kwargs({k: v for k, v in kwargs.items() if k != "num_envs"})
    return _checked_sim(cfg)


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

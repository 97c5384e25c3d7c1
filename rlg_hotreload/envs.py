"""Any gymnasium env as an rl-games task, stepped in-process (no ray).

Why: rl-games routes gym envs through its ``RAY`` vecenv, which needs ray and one process per actor —
heavy for a monitor and absent from our dependencies. ``InProcessVecEnv`` steps N envs in a loop in the
calling process, auto-resets finished ones (as Isaac Gym does), and is registered with rl-games'
own registries, so both training (A2CAgent) and playing use it unchanged.
"""

from typing import Any, Dict, List, Optional

import gymnasium as gym
import numpy as np
from rl_games.common import env_configurations, vecenv
from rl_games.common.ivecenv import IVecEnv

VECENV_TYPE = "RLGH_INPROC"


def make_gym_env(name: str, render_mode: Optional[str] = None, **kwargs: Any) -> gym.Env:
    """Create one gymnasium env (new 5-tuple API); ``seed`` is applied at the first reset."""
    kwargs.pop("seed", None)
    return gym.make(name, render_mode=render_mode, **kwargs)


def env_control_dt(env: gym.Env) -> Optional[float]:
    """Seconds of simulated time per ``step``: ``env.unwrapped.dt`` (MuJoCo/classic control envs), else
    ``1 / metadata['render_fps']`` (gymnasium's convention for real-time rendering), else None."""
    dt = getattr(env.unwrapped, "dt", None)
    if isinstance(dt, (int, float)) and not isinstance(dt, bool) and dt > 0:
        return float(dt)
    fps = (getattr(env, "metadata", None) or {}).get("render_fps")
    if isinstance(fps, (int, float)) and not isinstance(fps, bool) and fps > 0:
        return 1.0 / float(fps)
    return None


class InProcessVecEnv(IVecEnv):
    """``num_actors`` copies of a registered env creator, stepped sequentially, auto-reset."""

    def __init__(self, config_name: str, num_actors: int, **kwargs: Any) -> None:
        creator = env_configurations.configurations[config_name]["env_creator"]
        self.seed_value = kwargs.get("seed")
        self.envs: List[gym.Env] = [creator(**dict(kwargs)) for _ in range(num_actors)]
        self._seeded = False
        self.control_dt: Optional[float] = env_control_dt(self.envs[0])

    def _obs(self, obs: List[Any]) -> np.ndarray:
        return np.asarray(obs, dtype=np.float32)

    def reset(self) -> np.ndarray:
        out = []
        for i, env in enumerate(self.envs):
            seed = None
            if not self._seeded and self.seed_value is not None:
                seed = int(self.seed_value) + i
            out.append(env.reset(seed=seed)[0])
        self._seeded = True
        return self._obs(out)

    def step(self, actions: Any) -> Any:
        actions = np.asarray(actions)
        n = len(self.envs)
        obs, rewards = [], np.zeros(n, dtype=np.float32)
        dones = np.zeros(n, dtype=bool)
        time_outs = np.zeros(n, dtype=bool)
        for i, env in enumerate(self.envs):
            a = actions[i] if actions.ndim > 1 or n > 1 else actions
            o, r, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                dones[i] = True
                time_outs[i] = truncated and not terminated
                o, _ = env.reset()
            obs.append(o)
            rewards[i] = r
        return self._obs(obs), rewards, dones, {"time_outs": time_outs}

    def render(self, *args: Any, **kwargs: Any) -> Any:
        """Frame of env 0 (``render_mode='rgb_array'``: an HxWx3 uint8 array)."""
        return self.envs[0].render()

    def get_number_of_agents(self) -> int:
        return 1

    def get_env_info(self) -> Dict[str, Any]:
        env = self.envs[0]
        return {
            "action_space": env.action_space,
            "observation_space": env.observation_space,
            "state_space": None,
            "use_global_observations": False,
            "agents": 1,
            "value_size": 1,
        }

    def seed(self, seed: int) -> None:
        self.seed_value = seed
        self._seeded = False

    def has_action_masks(self) -> bool:
        return False

    def close(self) -> None:
        for env in self.envs:
            env.close()


def register_vecenv() -> None:
    if VECENV_TYPE not in vecenv.vecenv_config:
        vecenv.register(VECENV_TYPE, lambda name, n, **kw: InProcessVecEnv(name, n, **kw))


def is_gym_id(task: str) -> bool:
    return task in gym.registry


def has_box_actions(task: str) -> bool:
    """HotReloadPlayer is rl-games' continuous player: the task must have Box actions."""
    env = gym.make(task)
    try:
        return isinstance(env.action_space, gym.spaces.Box)
    finally:
        env.close()


def register_gym_task(task: str) -> None:
    """Register gymnasium id ``task`` as an rl-games env of the same name (idempotent).

    rl-games pre-registers a few gym ids (CartPole-v1, ...) on its ray vecenv; those entries are
    replaced by the in-process one, since ray is not a dependency.
    """
    register_vecenv()
    existing = env_configurations.configurations.get(task)
    if existing is None or existing.get("vecenv_type") == "RAY":  # rl-games' own gym entries need ray
        env_configurations.register(
            task,
            {
                "vecenv_type": VECENV_TYPE,
                "env_creator": lambda **kw: make_gym_env(task, **kw),
            },
        )

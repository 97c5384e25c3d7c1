"""The rl-games vecenv methods both BlindGrasping backends answer identically.

Why a base class: the MuJoCo and Isaac Gym backends differ in how they step physics, not in what
they tell rl-games about themselves; keeping this in one place keeps the two from drifting apart.
"""

from typing import Any, Dict, Optional


class VecEnvApi:
    """Mixin: agents, env info, masks, curriculum hooks (none) and seeding via ``self.core``."""

    core: Any
    action_space: Any
    observation_space: Any

    @property
    def control_dt(self) -> float:
        """Seconds of simulated time per ``step`` (players pace real-time viewing and video by it)."""
        return float(self.core.dt)

    def get_number_of_agents(self) -> int:
        return 1

    def get_env_info(self) -> Dict[str, Any]:
        return {
            "action_space": self.action_space,
            "observation_space": self.observation_space,
            "agents": 1,
            "value_size": 1,
        }

    def has_action_masks(self) -> bool:
        return False

    def set_train_info(self, env_frames: Any, *args: Any, **kwargs: Any) -> None:
        """No curriculum: nothing depends on training progress."""

    def get_env_state(self) -> Dict[str, Any]:
        """No curriculum state to checkpoint; an empty dict round-trips through torch.save."""
        return {}

    def set_env_state(self, env_state: Optional[Dict[str, Any]]) -> None:
        if env_state not in (None, {}) and not isinstance(env_state, dict):
            raise ValueError("env_state must be a dict or None, got {!r}".format(type(env_state).__name__))

    def seed(self, seed: int) -> None:
        self.core.seed(seed)

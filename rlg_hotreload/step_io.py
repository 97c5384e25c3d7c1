"""Where a step's rewards and dones live: on the env's device, never moved per step.

Why a mixin of its own: the single-policy and the compare player both step the env through
:meth:`StepIO.env_step` and keep their episode sums where it leaves rewards and dones
(:meth:`StepIO.step_device`); this is the one place that decides that device. rl-games' stock player
copies a tensor env's rewards and dones to the CPU at every step (a host sync per step for a GPU
simulator); this player once did the opposite and copied a CPU env's to a CUDA policy's device, which
cost two host-to-device copies, three kernel launches and a device sync (``nonzero``) per step:
0.87-0.93x of the stock player's steps/s with the policy on ``cuda:0`` and Pendulum on the CPU
(H100 machine, 2026-11-26). Now neither is moved.
"""

from typing import Any, Callable

import torch


class StepIO:
    """Mixin for rl-games players (before ``PpoPlayerContinuous`` in the bases)."""

    is_tensor_obses: bool
    value_size: int
    device: Any
    obs_to_torch: Callable[[Any], Any]

    def env_step(self, env: Any, actions: torch.Tensor) -> Any:
        """As rl-games', but rewards and dones stay where the env made them (see :meth:`step_device`).

        A CPU env (numpy outputs): exactly the stock conversion, CPU tensors. A tensor env (Isaac Gym, a
        GPU simulator): no ``.cpu()``, which the stock player does at every step (a host sync per step).
        """
        if not self.is_tensor_obses:
            return super().env_step(env, actions)  # type: ignore[misc]
        obs, rewards, dones, infos = env.step(actions)
        if self.value_size > 1:
            rewards = rewards[0]
        return self.obs_to_torch(obs), rewards, dones, infos

    def step_device(self) -> torch.device:
        """Where rewards, dones and the episode sums live: the env's device, never moved per step.

        Tensor envs return them on the RL device (rl-games' convention); numpy envs give CPU tensors.
        """
        return torch.device(self.device) if self.is_tensor_obses else torch.device("cpu")

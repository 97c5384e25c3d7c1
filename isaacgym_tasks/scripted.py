"""An open-loop grasp (descend, close, lift, hold): proof that the scene can be solved at all.

Why ship it: the tests use it to check that the physics allows a successful lift, and the speed
benchmark drives both the env and raw MuJoCo with the same actions; one definition serves both.
"""

import torch

EPISODE = 60  # control steps of one scripted grasp


def grasp_action(k: int, n: int) -> torch.Tensor:
    """Actions [n, 9] in [-1, 1] for step ``k`` of the scripted grasp (repeats every EPISODE steps)."""
    a = torch.zeros(n, 9)
    k %= EPISODE
    if k < 9:
        a[:, 2], a[:, 3:] = -1.0, -1.0  # palm down, fingers open
    elif k < 17:
        a[:, 3:] = 1.0  # close
    else:
        a[:, 2] = 1.0 if k < 31 else 0.0  # lift, then hold
        a[:, 3:] = 0.3
    return a

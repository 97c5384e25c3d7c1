"""The MuJoCo backend's NumPy task math gives what TaskCore's torch math gives, step for step.

Why: the torch code (task_math, TaskCore) is what the GPU backends run and cannot be tested here; the
MuJoCo backend steps with a NumPy mirror of it for speed (task_numpy). Both (and the per-env scalar variant, task_scalar) run the same real episodes
(scripted grasps that lift and succeed, random actions, resets, several worlds) and must agree.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402
import torch  # noqa: E402

from isaacgym_tasks import BlindGraspingConfig  # noqa: E402
from isaacgym_tasks.mujoco_backend import MujocoBlindGrasping  # noqa: E402
from isaacgym_tasks.scripted import grasp_action  # noqa: E402
from isaacgym_tasks.task_numpy import FEW_ENVS, NumpyTaskMath  # noqa: E402
from isaacgym_tasks.task_scalar import SCALAR_ENVS, ScalarTaskMath  # noqa: E402


def _close(a, b, what):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), what
        for k in a:
            _close(a[k], b[k], "%s.%s" % (what, k))
        return
    a, b = torch.as_tensor(a), torch.as_tensor(b)
    assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
    if a.is_floating_point():
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5), (what, (a - b).abs().max())
    else:
        assert torch.equal(a, b), (what, a, b)


# 1, 2: per-env Python floats (task_scalar); 3, 10: NumPy, both ways of computing the box frame;
# the worlds stepped per world (pool, the default) or by mujoco.rollout (stepper='rollout')
@pytest.mark.parametrize(
    "n, stepper", [(1, "pool"), (SCALAR_ENVS, "pool"), (3, "pool"), (FEW_ENVS + 2, "pool"), (FEW_ENVS + 2, "rollout")]
)
@pytest.mark.integration
def test_numpy_task_math_matches_torch_task_math_over_real_episodes(n, stepper):
    cfg = BlindGraspingConfig.from_kwargs({"seed": 7, "episode_length_s": 2.0, "success_hold_s": 0.5})
    fast = MujocoBlindGrasping(n, cfg, stepper=stepper)
    ref = MujocoBlindGrasping(n, cfg, fast_math=False, stepper=stepper)
    assert ref.fast is None and type(fast.fast) is (ScalarTaskMath if n <= SCALAR_ENVS else NumpyTaskMath)
    g = torch.Generator().manual_seed(3)
    successes = resets = 0
    try:
        _close(fast.reset(), ref.reset(), "reset obs")
        for k in range(100):  # 2.5 episodes: a grasp that succeeds, then random actions
            act = grasp_action(k % 40, n) if k < 60 else torch.rand(n, 9, generator=g) * 2.4 - 1.2
            got, want = fast.step(act), ref.step(act)
            for name, a, b in zip(("obs", "reward", "done", "infos"), got, want):
                _close(a, b, "step %d %s" % (k, name))
            successes += int(want[3]["successes"].sum())
            resets += int(want[2].sum())
    finally:
        fast.close()
        ref.close()
    assert successes >= 1 and resets >= n, (successes, resets)  # the comparison covered both

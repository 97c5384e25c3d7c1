"""The MuJoCo backend's NumPy task math gives what TaskCore's torch math gives, step for step.

Why: the torch code (task_math, TaskCore) is what the GPU backends run and cannot be tested here; the
MuJoCo backend steps with a NumPy mirror of it for speed (task_numpy). Both (and the per-env scalar variant, task_scalar) run the same real episodes
(scripted grasps that lift and succeed, random actions, resets, several worlds) and must agree.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
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


def test_scalar_actions_give_numpy_targets_bit_for_bit():
    """ScalarTaskMath.apply_actions (Python floats rounded through array('f')) == NumpyTaskMath's, every bit:
    clipped, at and beyond the joint limits, infinite and NaN actions included."""
    cfg = BlindGraspingConfig.from_kwargs({"seed": 1})
    envs = [MujocoBlindGrasping(SCALAR_ENVS, cfg) for _ in range(2)]
    try:
        numpy_math = NumpyTaskMath(envs[1].core, envs[1].layout)
        scalar = envs[0].fast
        assert type(scalar) is ScalarTaskMath
        g = torch.Generator().manual_seed(5)
        at_upper = at_lower = 0
        for k in range(400):
            act = (torch.randn(SCALAR_ENVS, 9, generator=g) * (0.3 if k % 50 < 25 else 30.0)).numpy()
            if k % 7 == 0:  # special values, one at a time
                act[0, k % 9] = (float("inf"), -float("inf"), 1.0, -1.0, 0.0, -0.0, float("nan"))[(k // 7) % 7]
            if k == 300:  # NaN targets stay NaN until a reset, in both
                act[1, 3] = float("nan")
            got, want = scalar.apply_actions(act).copy(), numpy_math.apply_actions(act).copy()
            assert np.array_equal(got, want, equal_nan=True), (k, got, want)
            assert np.array_equal(scalar.prev_actions, numpy_math.prev_actions, equal_nan=True), k
            at_upper += int((got == numpy_math.upper).sum())
            at_lower += int((got == numpy_math.lower).sum())
        assert np.isnan(scalar.targets).any() and at_upper > 0 and at_lower > 0, (at_upper, at_lower)
    finally:
        for env in envs:
            env.close()


@pytest.mark.integration
def test_one_env_outputs_are_fresh_every_step():
    """The 1-env step fills new arrays each step (StepOutputs): what a caller kept from earlier steps, as
    rl-games' IsaacAlgoObserver keeps every ``episode`` dict, never changes; types as TaskCore's."""
    cfg = BlindGraspingConfig.from_kwargs({"seed": 2, "episode_length_s": 1.0})
    env = MujocoBlindGrasping(1, cfg)
    kept, copies = [], []
    try:
        for k in range(30):  # 20 steps an episode: a reset included
            out = env.step(grasp_action(k, 1))
            kept.append(out)
            copies.append([out[0].clone(), out[1].clone(), out[2].clone(), {
                key: (v.copy() if isinstance(v, np.ndarray) else
                      {e: t.clone() for e, t in v.items()} if isinstance(v, dict) else v.clone())
                for key, v in out[3].items()}])  # fmt: skip
    finally:
        env.close()
    assert int(sum(int(o[2].sum()) for o in kept)) >= 1
    for k, (out, copy) in enumerate(zip(kept, copies)):
        for name, a, b in zip(("obs", "reward", "done", "infos"), out, copy):
            _close(a, b, "step %d %s" % (k, name))
    obs, reward, done, infos = kept[-1]
    assert (obs.dtype, reward.dtype, done.dtype) == (torch.float32, torch.float32, torch.uint8)
    assert list(infos) == ["time_outs", "successes", "box_contacts", "lift", "episode", "scores"]
    assert isinstance(infos["scores"], np.ndarray) and infos["episode"]["rew_reach"].dim() == 0


def test_reset_writes_the_float64_numpy_box_formulas_into_each_world():
    """Resets compute box inertia and bounding radius on Python floats: the same bits as the float64 NumPy
    they replaced (``(2 half) ** 2``, ``mass / 12 * ...``, ``sqrt(add.reduce(half ** 2))``), for every world."""
    cfg = BlindGraspingConfig.from_kwargs({"seed": 4})
    env = MujocoBlindGrasping(SCALAR_ENVS, cfg)
    g, bb, bq = env.layout.box_geom, env.layout.box_body, env.layout.box_qadr
    try:
        for _ in range(40):
            env.reset()
            half = np.array([m.geom_size[g] for m in env.models])
            mass = np.array([m.body_mass[bb] for m in env.models])
            sq = (2.0 * half) ** 2
            inertia = (mass / 12.0)[:, None] * np.stack((sq[:, 1] + sq[:, 2], sq[:, 0] + sq[:, 2], sq[:, 0] + sq[:, 1]), -1)
            assert np.array_equal(np.array([m.body_inertia[bb] for m in env.models]), inertia)
            assert np.array_equal(np.array([m.geom_rbound[g] for m in env.models]), np.sqrt(np.add.reduce(half * half, axis=-1)))
            assert np.array_equal(np.array([m.geom_aabb[g, 3:] for m in env.models]), half)
            z = np.array([d.qpos[bq + 2] for d in env.datas])
            assert np.array_equal(z, env.core.info.table_top_z + half[:, 2] + 0.001)
        assert len({m.body_mass[bb] for m in env.models}) == SCALAR_ENVS  # randomised per world
    finally:
        env.close()

"""The MuJoCo backend stepped by mujoco.rollout gives what per-world stepping gives, within a tolerance.

Why: with ``stepper="rollout"`` the backend steps with ``mujoco.rollout`` (no Python per world), which
restarts each world from its full-physics state with an estimated solver warm start, so trajectories
differ from continuous ``mj_step`` in the solver's last digits. Real episodes (the scripted grasp, which
lifts and succeeds, then random actions and resets) must agree within TOL, end at the same steps with
the same successes; a diverging world must end its episode; what a watcher renders must be current.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from isaacgym_tasks import BlindGraspingConfig  # noqa: E402
from isaacgym_tasks.mujoco_backend import MujocoBlindGrasping  # noqa: E402
from isaacgym_tasks.mujoco_stepper import choose  # noqa: E402
from isaacgym_tasks.scripted import grasp_action  # noqa: E402

TOL = 5e-3  # observations (scaled to ~[-1, 1]); measured max 1.1e-3 here (random actions), 2e-4 in the grasp


def _cfg(threads: int) -> BlindGraspingConfig:
    return BlindGraspingConfig.from_kwargs(
        {"seed": 5, "episode_length_s": 3.0, "success_hold_s": 0.5, "num_threads": threads}
    )


def test_auto_steps_per_world_whatever_the_size():  # rollout-trained policies did not learn (mujoco_stepper)
    assert {choose("auto", n, t) for n in (1, 63, 64, 1024) for t in (1, 16)} == {"pool"}
    assert choose("rollout", 1, 1) == "rollout"
    with pytest.raises(ValueError, match="stepper='threads'"):
        choose("threads", 8, 2)


@pytest.mark.parametrize("threads", [1, 2])
def test_rollout_matches_per_world_stepping_over_real_episodes(threads):
    n = 8
    pool = MujocoBlindGrasping(n, _cfg(threads), stepper="pool")
    roll = MujocoBlindGrasping(n, _cfg(threads), stepper="rollout")
    g = torch.Generator().manual_seed(2)
    successes, dones, worst = torch.zeros(n), 0, 0.0
    try:
        assert torch.equal(pool.reset(), roll.reset())  # seeded resets: the same episodes
        for k in range(130):  # 2+ episodes: the grasp (succeeds after ~2 s), then random actions
            act = grasp_action(k % 60, n) if k < 60 else torch.rand(n, 9, generator=g) * 2.4 - 1.2
            (o1, r1, d1, i1), (o2, r2, d2, i2) = pool.step(act), roll.step(act)
            worst = max(worst, float((o1 - o2).abs().max()))
            assert worst < TOL, (k, worst)
            assert torch.allclose(r1, r2, atol=50 * TOL), (k, r1, r2)
            assert torch.equal(d1, d2) and torch.equal(i1["successes"], i2["successes"]), k
            successes += i2["successes"].float()
            dones += int(d2.sum())
    finally:
        pool.close()
        roll.close()
    assert (successes > 0).sum() >= n - 1, successes  # the scripted grasp still succeeds
    assert dones >= n


@pytest.mark.parametrize("stepper", ["pool", "rollout"])
def test_a_diverging_world_ends_its_episode_and_a_watcher_sees_the_current_state(stepper):
    env = MujocoBlindGrasping(3, _cfg(2), stepper=stepper)
    try:
        for k in range(5):
            env.step(grasp_action(k, 3))
        v = 1 + env.models[0].nq
        dof = v + env.layout.hand_dadr[4]
        if stepper == "rollout":
            env.stepper.state[1, dof] = 1e9  # a finger at 1e9 rad/s: MuJoCo's BADQACC reset
        else:
            env.datas[1].qvel[dof - v] = 1e9
        obs, rew, done, infos = env.step(grasp_action(5, 3))
        assert done.tolist() == [0, 1, 0] and float(rew[1]) == 0.0
        obs, rew, done, infos = env.step(grasp_action(0, 3))  # env 1 was reset by the task; all go on
        assert done.tolist() == [0, 0, 0] and torch.isfinite(obs).all()
        snap = env.render_state()  # what a watcher draws: env 0 now, not env 0 at its last reset
        assert float(snap.time) == pytest.approx(7 * env.core.dt)
        if stepper == "rollout":
            assert np.array_equal(snap.qpos, env.stepper.state[0, 1:v])
    finally:
        env.close()

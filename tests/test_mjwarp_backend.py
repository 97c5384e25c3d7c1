"""The MuJoCo Warp backend of BlindGrasping on warp's CPU device: the same code that runs on a GPU.

CI has no GPU, so this is where the backend is exercised for real: shapes and devices, a scripted grasp
that succeeds, and agreement with the MuJoCo backend on the same states (task math, sensors, the
per-world model constants that box randomisation changes). Warp compiles its CPU kernels once per
machine (~1 min) and caches them on disk, so later tests and CLI runs reuse them.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import isaacgym_tasks  # noqa: E402
from isaacgym_tasks.scripted import grasp_action  # noqa: E402

pytestmark = pytest.mark.slow  # warp compiles its CPU kernels (~1 min on a fresh machine)


@pytest.fixture(autouse=True, scope="module")
def _warp() -> None:
    """Skips without mujoco_warp; imported here, not at collection (seconds that the fast part skips)."""
    pytest.importorskip("mujoco_warp")

KW = dict(sim="mjwarp", sim_device="cpu", rl_device="cpu")


@pytest.fixture(scope="module")
def pair():
    """A MuJoCo and a MuJoCo Warp env of 3 worlds with the same seed (same first reset draws)."""
    cpu = isaacgym_tasks.make_env(3, sim="mujoco", seed=5, rl_device="cpu")
    gpu_code = isaacgym_tasks.make_env(3, seed=5, **KW)
    yield cpu, gpu_code
    cpu.close()
    gpu_code.close()


def test_same_seed_draws_the_same_boxes_in_both_backends(pair):
    cpu, wrp = pair
    assert torch.allclose(cpu.core.box_half, wrp.core.box_half)
    g, b = cpu.layout.box_geom, cpu.layout.box_body
    for i, m in enumerate(cpu.models):
        assert torch.allclose(wrp._geom_size[i, g].double(), torch.from_numpy(m.geom_size[g]), atol=1e-6)
        assert abs(float(wrp._body_mass[i, b]) - m.body_mass[b]) < 1e-6
        # what mj_setConst derives from mass and inertia, the Warp backend computes on the device
        assert torch.allclose(wrp._body_invw[i, b].double(), torch.from_numpy(m.body_invweight0[b]), rtol=1e-4)
        d = cpu.layout.box_dadr
        assert torch.allclose(wrp._dof_invw[i, d : d + 6].double(), torch.from_numpy(m.dof_invweight0[d : d + 6]), rtol=1e-4)
        assert abs(float(wrp._geom_rbound[i, g]) - m.geom_rbound[g]) < 1e-6
    assert torch.allclose(wrp._qpos, cpu._qpos_t, atol=1e-6)  # same initial poses


def test_both_backends_agree_on_the_task_math_for_the_same_states(pair):
    """Drive the MuJoCo env into contact, copy its state into the Warp env, compare what the task sees."""
    cpu, wrp = pair
    for k in range(14):  # descend and close: fingertips touch the box
        cpu.step(grasp_action(k, 3))
    wrp._qpos.copy_(torch.from_numpy(cpu._qpos))
    wrp._qvel.copy_(torch.from_numpy(cpu._qvel))
    for i, d in enumerate(cpu.datas):
        wrp._ctrl[i] = torch.from_numpy(d.ctrl).float()
    wrp.core.targets.copy_(cpu.core.targets)
    wrp.core.progress.copy_(cpu.core.progress)
    wrp.core.prev_actions.copy_(cpu.core.prev_actions)
    for d, m in zip(cpu.datas, cpu.models):
        mujoco.mj_forward(m, d)  # sensors at the current state, as the Warp forward pass computes them
    for i in range(3):
        cpu._gather(i)
    wrp._run("forward")
    a, b = cpu._state(), wrp._state()
    for name in ("q", "qd", "palm_pos", "tip_pos", "box_pos", "box_quat"):
        assert torch.allclose(getattr(a, name), getattr(b, name), atol=1e-4), name
    assert (a.touch > 0.05).any(), "the scripted grasp should touch the box by now"
    assert torch.allclose(a.touch, b.touch, rtol=0.05, atol=0.05)
    diff = (cpu.core.observe(a) - wrp.core.observe(b)).abs().amax(dim=0)
    touch_cols = slice(3 * 9 + 3, 3 * 9 + 6)  # log1p(touch): contact forces come from two solvers
    assert diff[touch_cols].max() < 0.02
    diff[touch_cols] = 0.0
    assert diff.max() < 1e-4


def test_scripted_grasp_succeeds_with_tensors_on_rl_device_and_no_nan():
    env = isaacgym_tasks.make_env(4, seed=3, **KW)
    info = env.get_env_info()
    assert info["observation_space"].shape == (43,) and info["action_space"].shape == (9,)
    assert env.control_dt == pytest.approx(0.05)
    success = torch.zeros(4, dtype=torch.bool)
    max_lift = torch.full((4,), -1.0)
    for k in range(60):
        obs, rew, done, infos = env.step(grasp_action(k, 4))
        assert obs.shape == (4, 43) and rew.shape == (4,) and done.dtype == torch.uint8
        assert torch.isfinite(obs).all() and torch.isfinite(rew).all()
        assert obs.device.type == rew.device.type == infos["time_outs"].device.type == "cpu"
        success |= infos["successes"]
        max_lift = torch.max(max_lift, infos["lift"])
    assert success.all(), max_lift
    frame = env.render()
    assert frame.shape == (480, 640, 3) and frame.std() > 5  # a picture, not a blank buffer
    env.close()


def test_finished_envs_reset_by_mask_without_touching_the_others():
    env = isaacgym_tasks.make_env(3, seed=1, episode_length_s=0.5, **KW)  # 10 control steps
    env.step(torch.zeros(3, 9))
    before = env._qpos.clone()
    sizes = env._geom_size[:, env.layout.box_geom].clone()
    env.core.progress[1] = env.core.max_steps - 1  # env 1 times out on this step
    _, _, done, infos = env.step(torch.zeros(3, 9))
    assert done.tolist() == [0, 1, 0] and bool(infos["time_outs"][1])
    assert int(env.core.progress[1]) == 0 and int(env.core.progress[0]) == 2
    assert not torch.equal(env._geom_size[1, env.layout.box_geom], sizes[1])  # a new box
    assert torch.equal(env._geom_size[[0, 2], env.layout.box_geom], sizes[[0, 2]])
    assert not torch.allclose(env._qpos[1], before[1])
    env.close()

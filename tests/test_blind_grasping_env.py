"""The MuJoCo backend of BlindGrasping, run for real (no mocks)."""

import importlib.util
import os

os.environ.setdefault("MUJOCO_GL", "egl")

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import isaacgym_tasks  # noqa: E402
from isaacgym_tasks import asset  # noqa: E402
from isaacgym_tasks.scripted import grasp_action  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def scripted_grasp(env, steps=60):
    """Open-loop grasp: descend, close, lift, hold. Returns (any_success per env, max lift per env)."""
    n = env.num_envs
    success = torch.zeros(n, dtype=torch.bool)
    max_lift = torch.full((n,), -1.0)
    for k in range(steps):
        obs, rew, done, info = env.step(grasp_action(k, n))
        success |= info["successes"]
        max_lift = torch.max(max_lift, info["lift"])
    return success, max_lift


def test_asset_meets_the_spec():
    m = mujoco.MjModel.from_xml_path(asset.ASSET_PATH)
    assert m.nu >= 9
    slides = [m.joint(n).type for n in ("base_x", "base_y", "base_z")]
    assert slides == [mujoco.mjtJoint.mjJNT_SLIDE] * 3
    touch = [i for i in range(m.nsensor) if m.sensor(i).type == mujoco.mjtSensor.mjSENS_TOUCH]
    assert len(touch) == 3
    assert m.joint("box_free").type == mujoco.mjtJoint.mjJNT_FREE
    # the hand-only variant used by the Isaac Gym backend is still a valid MJCF
    hand = mujoco.MjModel.from_xml_string(asset.hand_only_mjcf())
    assert (
        hand.nu == 9 and hand.nsensor == 0 and mujoco.mj_name2id(hand, mujoco.mjtObj.mjOBJ_BODY, "box") == -1
    )


def test_spaces_shapes_and_dtypes():
    env = isaacgym_tasks.make_env(4, sim="mujoco", seed=3)
    info = env.get_env_info()
    assert info["action_space"].shape == (9,) and info["observation_space"].shape == (43,)
    assert env.get_number_of_agents() == 1 and info["agents"] == 1 and info["value_size"] == 1
    obs = env.reset()
    assert obs.shape == (4, 43) and obs.dtype == torch.float32
    obs, rew, done, infos = env.step(np.zeros((4, 9), dtype=np.float32))  # players may pass numpy
    assert obs.shape == (4, 43) and rew.shape == (4,) and done.shape == (4,)
    assert rew.dtype == torch.float32 and done.dtype == torch.uint8
    assert infos["time_outs"].shape == (4,) and infos["scores"].shape == (4,)
    assert torch.isfinite(obs).all() and torch.isfinite(rew).all()
    env.close()


def test_observation_does_not_contain_the_box_pose():
    env = isaacgym_tasks.make_env(2, sim="mujoco", seed=0)
    before = env.core.observe(env._state())
    d, m = env.datas[1], env.models[1]
    d.qpos[env.layout.box_qadr : env.layout.box_qadr + 3] += (0.05, -0.04, 0.0)  # move the box, nothing else
    mujoco.mj_forward(m, d)
    env._gather(1)
    after = env.core.observe(env._state())
    assert torch.equal(before, after)
    assert not torch.equal(env._state().box_pos[1], torch.zeros(3))


def test_scripted_grasp_lifts_and_succeeds():
    """The task is feasible: an open-loop grasp lifts >= 0.1 m for >= 1 s in most randomised episodes."""
    env = isaacgym_tasks.make_env(8, sim="mujoco", seed=11)
    success, max_lift = scripted_grasp(env)
    assert (max_lift >= 0.1).sum() >= 7, max_lift
    assert success.sum() >= 7, (success, max_lift)


def test_doing_nothing_never_succeeds_and_times_out():
    env = isaacgym_tasks.make_env(3, sim="mujoco", seed=0, episode_length_s=0.5)
    steps = env.core.max_steps
    assert steps == 10
    for _ in range(steps):
        obs, rew, done, info = env.step(torch.zeros(3, 9))
        assert not info["successes"].any()
    assert done.all() and info["time_outs"].all()
    # auto-reset: clocks restarted and the observed time went back to 0
    assert torch.equal(env.core.progress, torch.zeros(3, dtype=torch.long))
    assert torch.equal(obs[:, -1], torch.zeros(3))


def test_seeded_runs_are_reproducible_and_seeds_differ():
    def roll(seed):
        env = isaacgym_tasks.make_env(3, sim="mujoco", seed=seed, episode_length_s=0.5)
        g = torch.Generator().manual_seed(0)
        out = [env.reset()]
        for _ in range(25):  # crosses two auto-resets
            out.append(env.step(torch.rand(3, 9, generator=g) * 2 - 1)[0])
        return torch.stack(out)

    a, b, c = roll(5), roll(5), roll(6)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_reset_randomises_box_size_and_mass_per_world():
    env = isaacgym_tasks.make_env(4, sim="mujoco", seed=2)
    g = env.layout.box_geom
    sizes = np.array([m.geom_size[g].copy() for m in env.models])
    masses = np.array([m.body_mass[env.layout.box_body] for m in env.models])
    assert len({tuple(s) for s in sizes}) == 4 and len(set(masses)) == 4
    assert sizes.min() >= 0.025 and sizes.max() <= 0.035
    # box rests on the table top, not inside it
    z = env._state().box_pos[:, 2].numpy()
    assert np.allclose(z, 0.4 + sizes[:, 2], atol=0.003)


def test_render_returns_an_rgb_frame_of_the_configured_size():
    env = isaacgym_tasks.make_env(1, sim="mujoco", render_width=320, render_height=240)
    frame = env.render()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
    assert frame.std() > 5  # a scene, not a blank buffer
    env.close()
    with pytest.raises(ValueError, match="render_width"):
        isaacgym_tasks.make_env(1, sim="mujoco", render_width=4000).render()


def test_frames_for_watchers_draw_a_smaller_shadow_map_without_msaa_and_look_the_same():
    env = isaacgym_tasks.make_env(1, sim="mujoco", render_width=640, render_height=480)
    try:
        for k in range(25):  # the hand closes on the box: shadows of fingers and box on the table
            env.step(grasp_action(k, 1))
        reference = env.render().astype(np.int16)  # the asset's 2048² shadow map and 4x MSAA
        quality = env.models[0].vis.quality
        assert (quality.shadowsize, quality.offsamples) == (2048, 4), "the env's own renderer keeps the asset's"
        frames = env.make_frame_renderer()
        try:
            assert (frames.model.vis.quality.shadowsize, frames.model.vis.quality.offsamples) == (1024, 0)
            got = frames.render(env.render_state()).astype(np.int16)
        finally:
            frames.close()
        assert got.std() > 10, "nothing drawn"
        changed = np.abs(got - reference).max(axis=-1) > 8
        assert changed.mean() < 0.01, "more than 1 % of the pixels look different (edges and shadow borders)"
        assert np.abs(got - reference).mean() < 0.3
        for key, bad, allowed in (("render_shadow_size", (0, 1.5, True, "1024"), "integer >= 1"),
                                  ("render_samples", (-1, 2.0, False, "4"), "integer >= 0")):  # fmt: skip
            for value in bad:
                with pytest.raises(ValueError, match="%s=.*%s" % (key, allowed)):
                    isaacgym_tasks.make_env(1, sim="mujoco", **{key: value})
        big = isaacgym_tasks.make_env(1, sim="mujoco", render_shadow_size=4096, render_samples=16)
        try:
            q = big.make_frame_renderer().model.vis.quality
            assert (q.shadowsize, q.offsamples) == (2048, 4), "never above the asset's"
        finally:
            big.close()
    finally:
        env.close()


@pytest.mark.integration
def test_sim_selection_and_errors():
    has_isaacgym = importlib.util.find_spec("isaacgym") is not None
    has_warp = importlib.util.find_spec("mujoco_warp") is not None
    gpu_auto = "mjwarp" if has_warp and torch.cuda.is_available() else "mujoco"
    assert isaacgym_tasks.resolve_sim("auto", "auto") == ("isaacgym" if has_isaacgym else gpu_auto)
    assert isaacgym_tasks.resolve_sim("auto", "cpu") == ("isaacgym" if has_isaacgym else "mujoco")
    assert isaacgym_tasks.resolve_sim("mujoco") == "mujoco"
    with pytest.raises(ValueError, match="sim='bullet'.*auto, mujoco, mjwarp, isaacgym"):
        isaacgym_tasks.make_env(1, sim="bullet")
    if not has_isaacgym:
        with pytest.raises(ValueError, match="isaacgym package is not installed"):
            isaacgym_tasks.make_env(1, sim="isaacgym")
    display = os.environ.pop("DISPLAY", None)
    try:  # a viewer without a display: a clear error, not GLFW ending the process
        with pytest.raises(ValueError, match="headless=false: no display"):
            isaacgym_tasks.make_env(1, sim="mujoco", headless=False)
    finally:
        if display is not None:
            os.environ["DISPLAY"] = display
    with pytest.raises(ValueError, match="unknown BlindGrasping env_config key 'numEnvs'"):
        isaacgym_tasks.make_env(1, numEnvs=4)


@pytest.mark.slow
def test_rl_games_registry_and_short_training(tmp_path):
    """The yaml trains with a stock rl-games Runner and writes a checkpoint."""
    from rl_games.common import env_configurations, vecenv
    from rl_games.torch_runner import Runner

    isaacgym_tasks.register()
    assert env_configurations.configurations["BlindGrasping"]["vecenv_type"] == "BLINDGRASPING"
    env = vecenv.create_vec_env("BlindGrasping", 2, sim="mujoco", seed=1)
    assert env.reset().shape == (2, 43)
    with open(os.path.join(REPO, "cfg", "train", "BlindGraspingPPO.yaml")) as f:
        cfg = yaml.safe_load(f)
    c = cfg["params"]["config"]
    c.update(max_epochs=2, num_actors=8, horizon_length=16, minibatch_size=64, train_dir=str(tmp_path))
    runner = Runner()
    runner.load(cfg)
    runner.run({"train": True, "play": False, "checkpoint": None})
    assert list(tmp_path.glob("BlindGrasping*/nn/*.pth"))


@pytest.mark.integration
def test_package_import_is_lazy():
    """`import isaacgym_tasks` and register() load no simulator: backends import on env creation."""
    import subprocess
    import sys

    code = (
        "import sys, isaacgym_tasks; isaacgym_tasks.register(); "
        "print(sorted(m for m in ('isaacgym', 'mujoco') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stdout + r.stderr


def test_thread_pool_stepping_matches_serial_stepping():
    def roll(threads):
        env = isaacgym_tasks.make_env(3, sim="mujoco", seed=4, num_threads=threads)
        g = torch.Generator().manual_seed(1)
        out = [env.step(torch.rand(3, 9, generator=g) * 2 - 1)[0] for _ in range(10)]
        env.close()
        return torch.stack(out)

    assert torch.equal(roll(1), roll(2))

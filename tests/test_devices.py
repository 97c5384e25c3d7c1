"""Devices: ``rl_device``/``sim_device`` keys, their errors, and the product on CUDA (``gpu`` marker).

The ``gpu`` tests are skipped without CUDA; on the GPU machine: ``python -m pytest -m gpu``.
"""

import functools
import os
import re
import subprocess
import sys

import pytest
import torch
from helpers.procs import REPO, main_in_process, run_cli

from rlg_hotreload import run, schema


def gpu(test):
    """``gpu`` marker (select with ``-m gpu``), skipped without CUDA."""
    return pytest.mark.gpu(pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")(test))
@functools.lru_cache(maxsize=None)
def warp_missing() -> bool:
    """Asked in a child, and only when a test that needs warp runs (a string condition is evaluated at
    setup): importing mujoco_warp takes seconds, too long to pay while collecting the fast part."""
    return subprocess.run([sys.executable, "-c", "import mujoco_warp"], capture_output=True).returncode != 0


has_warp = pytest.mark.skipif("warp_missing()", reason="mujoco_warp is not installed")


@pytest.mark.parametrize(
    "args, message",
    [
        (["rl_device=cuda:3"], r"^error: rl_device=cuda:3: this machine has (no CUDA GPU|\d+ CUDA GPU)"),
        (["rl_device=gpu"], r"^error: rl_device='gpu' is not a device; allowed: auto, cpu, cuda, cuda:N$"),
        (["sim_device=tpu"], r"^error: sim_device='tpu' is not a device"),
        (["graphics_device_id=-2"], r"^error: graphics_device_id=-2: allowed range is -1 to 63$"),
        (["sim=bullet"], r"^error: sim=bullet: allowed values are auto, mujoco, mjwarp, isaacgym"),
    ],
)
def test_bad_devices_exit_2_with_one_line_and_write_nothing(tmp_path, monkeypatch, capsys, args, message):
    code, lines = main_in_process(["config=train_headless", "task=BlindGrasping", *args], tmp_path, monkeypatch, capsys)
    assert code == 2 and len(lines) == 1 and re.search(message, lines[0]), lines
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the machine has a GPU")
def test_mjwarp_without_cuda_says_what_is_missing(tmp_path, monkeypatch, capsys):
    code, lines = main_in_process(["config=train_headless", "task=BlindGrasping", "sim=mjwarp"], tmp_path, monkeypatch,
                                  capsys)  # fmt: skip
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: sim=mjwarp: "), lines
    assert "CUDA" in lines[0] or "install" in lines[0]
    assert not (tmp_path / "runs").exists()


def test_device_keys_are_documented_everywhere(capsys):
    readme = open(os.path.join(REPO, "README.md")).read()
    with pytest.raises(SystemExit):
        run.main(["--help"])
    help_text = capsys.readouterr().out
    for key in ("rl_device", "sim_device", "graphics_device_id"):
        assert key in schema.BY_NAME, key
        assert "`%s`" % key in readme, key
        assert key in help_text, key


@pytest.mark.slow
@has_warp
def test_blind_grasping_on_mjwarp_trains_and_hot_reload_plays_through_the_cli(tmp_path):
    """The real CLI path with sim=mjwarp (warp's CPU device here, CUDA on the GPU machine)."""
    dev = ["sim=mjwarp"] + ([] if torch.cuda.is_available() else ["sim_device=cpu", "rl_device=cpu"])
    r = run_cli(["config=train_headless", "task=BlindGrasping", "numEnvs=4", "maxEpochs=2", *dev], str(tmp_path), 600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert list((tmp_path / "runs" / "latest_train" / "nn").glob("*.pth"))
    r = run_cli(["config=test", "checkpoint=latest", "testGamesNum=1", *dev], str(tmp_path), 600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert re.search(r"Loaded .*\.pth \(epoch 2", r.stdout) and "Summary: 1 games" in r.stdout, r.stdout[-2000:]


@pytest.mark.slow
@gpu
def test_checkpoints_cross_devices(tmp_path):
    """A checkpoint trained on the CPU plays on CUDA, and one trained on CUDA plays on the CPU."""
    for train_dev, play_dev in (("cpu", "cuda:0"), ("cuda:0", "cpu")):
        work = tmp_path / train_dev.replace(":", "")
        work.mkdir()
        r = run_cli(["config=train_headless", "task=Pendulum-v1", "maxEpochs=2", "rl_device=" + train_dev], str(work), 300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        r = run_cli(["config=test", "task=Pendulum-v1", "checkpoint=latest", "testGamesNum=2", "rl_device=" + play_dev],
                    str(work), 300)  # fmt: skip
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        assert "Summary: 2 games" in r.stdout


@gpu
def test_mujoco_backend_hands_rl_games_tensors_on_the_policy_device():
    import isaacgym_tasks

    env = isaacgym_tasks.make_env(2, sim="mujoco", rl_device="cuda:0", seed=0)
    assert env.reset().device.type == "cuda"
    obs, rew, done, infos = env.step(torch.zeros(2, 9, device="cuda:0"))
    assert obs.device.type == rew.device.type == done.device.type == infos["time_outs"].device.type == "cuda"
    env.close()


@has_warp  # below @gpu's skip: without CUDA no child is started to ask for warp
@gpu
def test_mjwarp_on_cuda_scripted_grasp_stays_on_the_gpu():
    import isaacgym_tasks
    from isaacgym_tasks.scripted import grasp_action

    env = isaacgym_tasks.make_env(64, sim="mjwarp", sim_device="cuda:0", rl_device="cuda:0", seed=3)
    success = torch.zeros(64, dtype=torch.bool, device="cuda:0")
    for k in range(60):
        obs, rew, done, infos = env.step(grasp_action(k, 64).cuda())
        assert obs.is_cuda and rew.is_cuda and done.is_cuda and infos["successes"].is_cuda
        success |= infos["successes"]
    assert torch.isfinite(obs).all()
    assert success.float().mean() > 0.9
    frame = env.render()
    assert frame.shape == (480, 640, 3) and frame.std() > 5
    env.close()


def test_success_observer_logs_success_rate_of_finished_envs_only():
    """The CLI's training observer: one indexed mean instead of rl-games' loop over finished envs."""
    from types import SimpleNamespace

    from rlg_hotreload.observer import SuccessObserver

    obs = SuccessObserver()
    obs.after_init(SimpleNamespace(games_to_track=100, ppo_device="cpu", writer=None, num_agents=1))
    successes = torch.tensor([True, False, True, True])
    obs.process_infos({"successes": successes, "scores": successes.float().numpy()}, torch.tensor([[0], [1], [3]]))
    assert obs.game_scores.current_size == 3
    assert obs.game_scores.get_mean().item() == pytest.approx(2 / 3)
    obs.process_infos({"scores": [1.0, 0.0]}, torch.tensor([[1]]))  # no 'successes': the stock path
    assert obs.game_scores.current_size == 4

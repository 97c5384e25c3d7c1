"""Multi-GPU training (``multi_gpu=true`` under torchrun): launches that cannot work are refused with one
line before anything starts; on a machine with >= 2 GPUs (``gpu`` marker) a real 2-rank run trains and
``checkpoint=latest`` follows rank 0."""

import os
import re
import subprocess
import sys

import pytest
import torch
from helpers.procs import cli_env, cli_in_process

from rlg_hotreload.distributed import LaunchError, Ranks, apply_ranks, check_launch, ranks_from_env

TORCHRUN = {"WORLD_SIZE": "2", "RANK": "1", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29555"}


def run_cli(args, cwd, extra_env, monkeypatch, capsys):
    """The CLI's main() in this process, with the environment torchrun would give it (extra_env)."""
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    for k, v in extra_env.items():
        monkeypatch.setenv(k, v)
    return cli_in_process(args, cwd, monkeypatch, capsys)


def test_ranks_come_from_torchrun_environment():
    assert ranks_from_env({}) is None
    r = ranks_from_env(TORCHRUN)
    assert r == Ranks(rank=1, local_rank=1, world_size=2) and r.device == "cuda:1" and not r.is_main
    with pytest.raises(LaunchError, match="not a valid launch"):
        ranks_from_env({"WORLD_SIZE": "2", "RANK": "2"})
    with pytest.raises(LaunchError, match="whole numbers"):
        ranks_from_env({"WORLD_SIZE": "two"})


def test_each_rank_gets_its_gpu_and_only_rank_0_a_visible_run_folder():
    cfg = {"rl_device": "auto", "sim_device": "auto", "train": {"trainDir": "runs"}}
    apply_ranks(cfg, Ranks(rank=0, local_rank=0, world_size=2))
    assert cfg == {"rl_device": "cuda:0", "sim_device": "cuda:0", "train": {"trainDir": "runs"}}
    apply_ranks(cfg, Ranks(rank=3, local_rank=1, world_size=4))
    assert cfg["rl_device"] == cfg["sim_device"] == "cuda:1"
    assert cfg["train"]["trainDir"] == os.path.join("runs", ".rank3")  # hidden: never followed by latest


@pytest.mark.parametrize(
    "multi, ranks, cuda, devices, training, message",
    [
        (True, None, 2, {}, True, r"start it with torchrun"),
        (True, Ranks(0, 0, 2), 0, {}, True, r"needs CUDA GPUs"),
        (True, Ranks(1, 1, 2), 1, {}, True, r"LOCAL_RANK=1 but this machine has 1 CUDA GPU"),
        (True, Ranks(0, 0, 2), 2, {"rl_device": "cuda:1"}, True, r"rl_device=cuda:1: .*allowed: auto"),
        (True, Ranks(0, 0, 2), 2, {}, False, r"for training only"),
        (False, Ranks(0, 0, 2), 2, {}, True, r"multi_gpu=false under torchrun"),
    ],
)
def test_launches_that_cannot_work_are_refused(multi, ranks, cuda, devices, training, message):
    with pytest.raises(LaunchError, match=message):
        check_launch(multi, ranks, cuda, devices, training)


def test_valid_launches_pass():
    check_launch(False, None, 0, {"rl_device": "cpu"}, True)  # a plain run
    check_launch(False, Ranks(0, 0, 1), 0, {}, True)  # torchrun with one process
    check_launch(True, Ranks(1, 1, 2), 2, {"rl_device": "auto", "sim_device": "auto"}, True)


@pytest.mark.parametrize(
    "args, extra_env, message",
    [
        (["multi_gpu=true"], {}, r"^error: multi_gpu=true: start it with torchrun"),
        (["multi_gpu=true"], TORCHRUN, r"^error: multi_gpu=true: (needs CUDA GPUs|LOCAL_RANK=1)"),
        ([], TORCHRUN, r"^error: multi_gpu=false under torchrun \(WORLD_SIZE=2\)"),
        (["multi_gpu=2"], {}, r"^error: multi_gpu=2: allowed values are true, false"),
    ],
)
def test_cli_refuses_bad_launches_with_one_line_and_writes_nothing(tmp_path, args, extra_env, message, monkeypatch,
                                                                  capsys):
    if torch.cuda.device_count() >= 2 and extra_env:
        pytest.skip("this machine can run the launch")
    r = run_cli(["config=train_headless", "task=Pendulum-v1", *args], tmp_path, extra_env, monkeypatch, capsys)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), r.stderr
    assert not (tmp_path / "runs").exists()


def test_playing_with_multi_gpu_is_refused(tmp_path, monkeypatch, capsys):
    r = run_cli(["config=test", "task=Pendulum-v1", "checkpoint=latest", "multi_gpu=true"], tmp_path, TORCHRUN,
                monkeypatch, capsys)  # fmt: skip
    assert r.returncode == 2 and re.search(r"^error: multi_gpu=true: for training only", r.stderr), r.stderr


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_two_ranks_train_and_latest_follows_rank_0(tmp_path):
    """``torchrun --nproc_per_node=2 -m rlg_hotreload.run ... multi_gpu=true``, as the README says."""
    env = cli_env()
    for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "rlg_hotreload.run", "config=train_headless", "task=Pendulum-v1", "multi_gpu=true", "maxEpochs=3"]
    r = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert re.search(r"rank 0 of 2, cuda:0", out) and re.search(r"rank 1 of 2, cuda:1", out), out[-3000:]
    runs = tmp_path / "runs"
    latest = os.readlink(runs / "latest_train")
    assert not latest.startswith("."), latest
    assert list((runs / latest / "nn").glob("*.pth")), "rank 0 wrote no checkpoint"
    hidden = list((runs / ".rank1").glob("*/nn"))
    assert hidden and not list(hidden[0].glob("*.pth")), "rank 1 must not write checkpoints"

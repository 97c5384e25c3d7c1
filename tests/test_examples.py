"""examples/ run as a user runs them (``python examples/<x>.py ...``), on the real BlindGrasping task.

Each slow test trains BlindGrasping twice for a few epochs while the example plays ``checkpoint=latest``:
the first run's checkpoint is loaded, the second run's is hot-reloaded, Ctrl+C ends it cleanly.
"""

import glob
import os
import re
import signal
import subprocess
import sys
from typing import List

import pytest
import yaml
from helpers.procs import REPO, Proc, cli_env

EXAMPLES = os.path.join(REPO, "examples")
TRAIN_PY = os.path.join(EXAMPLES, "train.py")
RUNNER_PY = os.path.join(EXAMPLES, "rlg_runner.py")
TB_PY = os.path.join(EXAMPLES, "tensorboard_callback.py")
YAML = os.path.join(EXAMPLES, "blind_grasping_hot_reload.yaml")
RUN_FILE = r"runs/BlindGrasping_[\d-]+/nn/last_BlindGrasping_ep_%d_\S*\.pth \(epoch %d,"


def run_example(script: str, args: List[str], cwd: str, timeout: float = 240) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, script, *args], cwd=cwd, env=cli_env(), capture_output=True, text=True,
                       timeout=timeout)  # fmt: skip
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    return r


def train_checkpoint(script: str, args: List[str], cwd: str, epochs: int) -> str:
    """Train for ``epochs`` epochs with ``script``; the newest run's final checkpoint (it must exist)."""
    run_example(script, args, cwd)
    runs = sorted(glob.glob(os.path.join(cwd, "runs", "BlindGrasping_*")), key=os.path.getmtime)
    files = glob.glob(os.path.join(runs[-1], "nn", "last_BlindGrasping_ep_%d_*.pth" % epochs))
    assert files, "no checkpoint of epoch %d in %s" % (epochs, runs[-1])
    return files[0]


def watch_two_runs(play: Proc, train, games_each: int = 0) -> None:
    """While ``play`` follows checkpoint=latest: train run 1 (2 epochs), see it loaded; train run 2
    (3 epochs), see it hot-reloaded; then Ctrl+C, exit 0, a summary with both checkpoints."""
    try:
        play.wait_for(r"Waiting for a checkpoint in latest run in runs", 120)
        train(2)
        play.wait_for(r"\] Loaded " + RUN_FILE % (2, 2), 60)
        if games_each:
            play.wait_for(r"^reward: ", 60, count=games_each)
        start = len(play.lines)
        train(3)
        play.wait_for(r"\] Reloaded " + RUN_FILE % (3, 3), 60, start=start)
        if games_each:
            play.wait_for(r"^reward: ", 60, count=games_each, start=start)
        play.interrupt(signal.SIGINT, timeout=30)
        assert play.p.returncode == 0, play.output()[-3000:]
        assert play.count(r"Summary: \d+ games, .* 2 checkpoints, 1 reloads") == 1, play.output()[-3000:]
        assert "Traceback" not in play.output()
    finally:
        play.kill()


@pytest.mark.slow
def test_train_py_trains_and_its_test_mode_hot_reloads_the_next_run(tmp_path):
    cwd = str(tmp_path)
    play = Proc(["test=True", "checkpoint=latest", "reload_interval=0.5"], cwd, script=TRAIN_PY)
    watch_two_runs(
        play, lambda n: train_checkpoint(TRAIN_PY, ["max_iterations=%d" % n, "num_envs=32"], cwd, n)
    )


@pytest.mark.slow
def test_stock_yaml_through_rl_games_runner_hot_reloads(tmp_path):
    cwd = str(tmp_path)
    play = Proc(
        ["--play", "--file", YAML, "--checkpoint", "latest", "--num_actors", "1"], cwd, script=RUNNER_PY
    )
    train_args = ["--train", "--file", YAML, "--num_actors", "32"]
    watch_two_runs(play, lambda n: train_checkpoint(RUNNER_PY, train_args + ["--max_epochs", str(n)], cwd, n))


def test_example_yaml_is_the_task_yaml_plus_the_hot_reload_lines():
    with open(YAML) as f:
        example = yaml.safe_load(f)["params"]
    with open(os.path.join(REPO, "cfg", "train", "BlindGraspingPPO.yaml")) as f:
        stock = yaml.safe_load(f)["params"]
    assert example["algo"].pop("player") == "hot_reload"
    player = example["config"]["player"]
    assert (
        player.pop("games_num") == 0
        and player.pop("reload_interval") > 0
        and player.pop("train_dir") == "runs"
    )
    stock["config"]["player"].pop("games_num")
    assert example == stock


@pytest.mark.slow
def test_tensorboard_callback_writes_reloads_games_and_per_checkpoint_reward(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cwd, logdir = str(tmp_path), str(tmp_path / "tb")
    play = Proc(["--logdir", logdir, "checkpoint=latest", "reloadInterval=0.5"], cwd, script=TB_PY)
    watch_two_runs(
        play,
        lambda n: train_checkpoint(TRAIN_PY, ["max_iterations=%d" % n, "num_envs=32"], cwd, n),
        games_each=2,
    )
    out = play.output()
    games = int(re.search(r"Summary: (\d+) games", out).group(1))
    assert "TensorBoard: 2 checkpoints, %d games written to %s" % (games, logdir) in out
    # the player's own per-checkpoint table: "  last_BlindGrasping_ep_2_...@ep2   games    2  mean reward   41.20 ..."
    table = {int(m.group(1)): (int(m.group(2)), float(m.group(3)))
             for m in re.finditer(r"@ep(\d+)\s+games\s+(\d+)\s+mean reward\s+(\S+)", out)}  # fmt: skip
    assert sorted(table) == [2, 3] and all(n >= 2 for n, _ in table.values()), out[-2000:]

    acc = EventAccumulator(logdir)
    acc.Reload()
    scalars = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert scalars["reload/epoch"] == [(0, 2.0), (1, 3.0)]
    assert len(scalars["episode/reward"]) == games
    assert [s for s, _ in scalars["checkpoint/mean_reward"]] == [2, 3]  # step = training epoch
    assert [v for _, v in scalars["checkpoint/games"]] == [table[2][0], table[3][0]]
    for epoch, value in scalars["checkpoint/mean_reward"]:
        assert value == pytest.approx(table[epoch][1], abs=0.01)
    # BlindGrasping reports success: one rate per checkpoint, at the same steps as the reward, within [0, 1]
    assert [s for s, _ in scalars["checkpoint/success_rate"]] == [2, 3]
    assert all(0.0 <= v <= 1.0 for _, v in scalars["checkpoint/success_rate"])
    assert len(scalars["episode/success"]) == games


@pytest.mark.parametrize(
    "script, args, says",
    [
        (TRAIN_PY, ["num_envs=many"], "error: num_envs: Value 'many' of type 'str' could not be converted"),
        (RUNNER_PY, ["--play", "--file", YAML], "error: --play needs --checkpoint"),
        (TB_PY, ["reloadIntervl=1"], "error: unknown key 'reloadIntervl'; did you mean 'reloadInterval'?"),
    ],
    ids=["train.py", "rlg_runner.py", "tensorboard_callback.py"],
)
@pytest.mark.integration
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, script, args, says):
    r = subprocess.run([sys.executable, script, *args], cwd=str(tmp_path), env=cli_env(), capture_output=True,
                       text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2, r.stdout + r.stderr
    assert says in r.stderr.strip().splitlines()[-1], r.stderr
    assert "Traceback" not in r.stderr and os.listdir(tmp_path) == []

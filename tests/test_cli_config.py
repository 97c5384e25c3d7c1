"""The CLI validates everything first: bad input -> one line naming the key, exit 2, nothing written."""

import os

import pytest
from helpers.procs import REPO, run_cli

from rlg_hotreload import config

BAD = [
    (["reloadIntervl=5"], r"unknown key 'reloadIntervl'; did you mean 'reloadInterval'\?"),
    (["numEnvs=0"], r"numEnvs=0: allowed range is 1 to"),
    (["numEnvs=two"], r"numEnvs=two: must be a number"),
    (["sim=mjc"], r"sim=mjc: allowed values are auto, mujoco, mjwarp, isaacgym; did you mean 'mujoco'\?"),
    (["train.test=maybe"], r"train.test=maybe: allowed values are true, false"),
    (
        ["config=test_vewer"],
        r"config=test_vewer: no such preset; allowed: .*test_viewer.*did you mean 'test_viewer'\?",
    ),
    (["train.swapAt=sometimes"], r"train.swapAt=sometimes: allowed values are auto, game, step"),
    (["--cfg", "nope.yaml"], r"--cfg nope.yaml: no such file"),
    (
        ["config=test", "task=Pendulum-v1", "checkpoint=missing/run"],
        r"train.checkpoint=missing/run: no such file or folder",
    ),
    (["config=test", "task=NoSuchTask-v9"], r"task=NoSuchTask-v9: unknown task"),
    (
        ["config=train_headless", "task=Pendulum-v1", "train.config=nope.yaml"],
        r"train.config=nope.yaml: no such file",
    ),
    (
        ["config=test", "task=Pendulum-v1", "checkpoint=latest", "headless=false"],
        r"headless=false: no display",
    ),
    (["streamPort=70000"], r"stream.port=70000: allowed range is 1 to 65535"),
    (["checkpoint"], r"'checkpoint': overrides are key=value"),
]


@pytest.mark.parametrize("args,message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line_naming_the_key(tmp_path, args, message):
    env_display = os.environ.pop("DISPLAY", None)
    try:
        r = run_cli(args, str(tmp_path), timeout=120)
    finally:
        if env_display is not None:
            os.environ["DISPLAY"] = env_display
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    import re

    assert re.search(message, lines[0]), lines[0]
    assert lines[0].startswith("error: ")
    assert os.listdir(tmp_path) == [], "a failed start must write nothing"


def test_seed_spellings_map_to_canonical_keys():
    cfg = config.load(
        None,
        ["config=test_stream", "testGamesNum=0", "checkpoint=latest", "streamBindAll=true",
         "numEnvs=1", "train.reloadInterval=45", "train.checkpoint=runs/MyExperiment"],
    )  # fmt: skip
    assert cfg["train"]["test"] is True and cfg["stream"]["enabled"] is True
    assert cfg["stream"]["bindAll"] is True
    assert cfg["train"]["reloadInterval"] == 45.0
    assert cfg["train"]["checkpoint"] == "runs/MyExperiment"  # the later spelling wins
    assert cfg["numEnvs"] == 1


def test_presets_load_and_set_what_they_promise():
    viewer = config.load(os.path.join(REPO, "cfg", "test_viewer.yaml"), [])
    assert viewer["numEnvs"] == 4 and viewer["headless"] is False and viewer["train"]["test"]
    train = config.load(None, ["config=train_headless"])
    assert train["train"]["test"] is False and train["headless"] is True
    assert config.load(None, ["config=test"])["train"]["reloadInterval"] == 30.0


def test_discrete_gym_task_is_refused_with_exit_2(tmp_path):
    r = run_cli(["config=test", "task=CartPole-v1"], str(tmp_path))
    assert r.returncode == 2
    assert "task=CartPole-v1: has discrete actions" in r.stderr


@pytest.mark.slow
def test_any_continuous_gymnasium_id_trains_with_the_generic_config(tmp_path):
    r = run_cli(["config=train_headless", "task=MountainCarContinuous-v0", "maxEpochs=2"], str(tmp_path), 300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    link = tmp_path / "runs" / "latest_train"
    assert link.is_symlink() and os.readlink(link).startswith("MountainCarContinuous-v0_")
    assert list((link / "nn").glob("*.pth")), "no checkpoint written"


def test_text_keys_keep_the_value_as_typed():
    """`streamToken=0777` is the token "0777" (YAML would make it the number 511); null still unsets."""
    cfg = config.load(None, ["streamToken=0777", "checkpoint=0x10", "task=1e3"])
    assert cfg["stream"]["token"] == "0777"
    assert cfg["train"]["checkpoint"] == "0x10" and cfg["task"] == "1e3"
    assert config.load(None, ["streamToken=null"])["stream"]["token"] is None
    assert config.load(None, ["maxCheckpointMB=64"])["train"]["maxCheckpointMB"] == 64


def test_max_checkpoint_mb_is_range_checked(tmp_path):
    r = run_cli(["maxCheckpointMB=0"], str(tmp_path), timeout=120)
    assert r.returncode == 2 and r.stderr.strip() == "error: train.maxCheckpointMB=0: allowed range is 1 to 1048576"

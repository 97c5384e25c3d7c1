"""The public build API (``rlg_hotreload.build``): validate first, then build; errors in library terms."""

import os

import pytest

from rlg_hotreload import build
from rlg_hotreload.callbacks import PlayerCallback
from rlg_hotreload.config import ConfigError


def test_load_config_takes_words_or_a_mapping_with_the_same_result():
    words = build.load_config(["task=Pendulum-v1", "checkpoint=latest", "streamPort=9000"], preset="test")
    mapping = build.load_config(
        {"task": "Pendulum-v1", "checkpoint": "latest", "stream": {"port": 9000}}, preset="test"
    )
    assert words == mapping
    assert mapping["train"]["test"] is True and mapping["stream"]["port"] == 9000


@pytest.mark.parametrize(
    "given, message",
    [
        ({"streamPort": 70000}, r"stream\.port=70000: allowed range is 1 to 65535"),
        ({"swapAt": "never"}, r"train\.swapAt=never: allowed values are auto, game, step"),
        ({"reloadIntervall": 3}, r"unknown key 'reloadIntervall'; did you mean 'reloadInterval'"),
    ],
)
def test_load_config_raises_config_error_naming_the_key(given, message):
    with pytest.raises(ConfigError, match=message):
        build.load_config(given)


def test_a_single_string_is_refused_not_split_into_characters():
    with pytest.raises(ConfigError, match="list of key=value words or a mapping"):
        build.load_config("task=Pendulum-v1")


def test_make_params_validates_before_building_and_leaves_cfg_alone(tmp_path):
    cfg = build.load_config({"task": "Pendulum-v1", "trainDir": str(tmp_path), "numEnvs": 3}, preset="test")
    before = repr(cfg)
    params = build.make_params(cfg)
    assert repr(cfg) == before, "make_params must not change the caller's config"
    conf = params["config"]
    assert conf["num_actors"] == 3 and conf["env_name"] == "Pendulum-v1"
    assert params["algo"]["player"] == "hot_reload" and conf["player"]["checkpoint"] == "latest"
    assert conf["device"] == "cpu" or conf["device"].startswith("cuda")

    bad = build.load_config({"task": "NoSuchTask-v0"}, preset="test")
    with pytest.raises(ConfigError, match=r"task=NoSuchTask-v0: unknown task"):
        build.make_params(bad)
    missing = build.load_config({"task": "Pendulum-v1", "checkpoint": str(tmp_path / "nope" / "x")}, preset="test")
    with pytest.raises(ConfigError, match=r"train\.checkpoint=.*no such file or folder"):
        build.make_params(missing)


def test_train_refuses_a_play_config_and_make_player_plays_a_train_config(tmp_path):
    play_cfg = build.load_config({"task": "Pendulum-v1"}, preset="test")
    with pytest.raises(ConfigError, match=r"train\.test=true"):
        build.train(play_cfg)
    train_cfg = build.load_config(
        {"task": "Pendulum-v1", "trainDir": str(tmp_path), "checkpoint": "latest"}, preset="train_headless"
    )
    player = build.make_player(train_cfg)
    try:
        assert type(player).__name__ == "HotReloadPlayer"
        assert player.control_dt == pytest.approx(0.05)  # Pendulum-v1's dt, read from the env
    finally:
        player.close_all()


class Lifecycle(PlayerCallback):
    def __init__(self, log, name, fail=False):
        self.log, self.name, self.fail = log, name, fail

    def setup(self, player):
        self.log.append("setup " + self.name)
        if self.fail:
            raise RuntimeError("setup of %s failed" % self.name)

    def close(self):
        self.log.append("close " + self.name)


def test_callbacks_are_set_up_once_and_closed_once_in_reverse_even_when_setup_fails(tmp_path):
    from rlg_hotreload.callbacks import CallbackList

    log = []
    cbs = CallbackList([Lifecycle(log, "a"), Lifecycle(log, "b")])
    cbs.setup(None)
    cbs.setup(None)
    cbs.close()
    cbs.close()
    assert log == ["setup a", "setup b", "close b", "close a"]

    log.clear()
    cbs = CallbackList([Lifecycle(log, "a"), Lifecycle(log, "b", fail=True), Lifecycle(log, "c")])
    with pytest.raises(RuntimeError, match="setup of b failed"):
        cbs.setup(None)
    assert log == ["setup a", "setup b", "close a"], "c never set up; a closed; b (failed) not closed"


@pytest.mark.slow
def test_play_returns_the_summary_of_a_real_checkpoint(trained_run, tmp_path):
    _, files = trained_run
    cfg = build.load_config(
        {"task": "Pendulum-v1", "checkpoint": str(files[-1]), "testGamesNum": 2, "numEnvs": 2,
         "printStats": False, "trainDir": str(tmp_path)},
        preset=os.path.join(os.path.dirname(__file__), "..", "cfg", "test.yaml"),
    )  # fmt: skip
    summary = build.play(cfg)
    assert summary.games == 2 and summary.per_checkpoint[0].games == 2
    assert len(summary.checkpoints) == 1 and summary.checkpoints[0].path == str(files[-1])


@pytest.mark.parametrize("task, envs, expected", [("BlindGrasping", 16, 256), ("Pendulum-v1", 3, 192)])
def test_num_envs_keeps_the_batch_divisible_by_the_minibatch(task, envs, expected):
    """``numEnvs`` that the YAML's fixed ``minibatch_size`` does not divide: rl-games would stop with a
    traceback; the minibatch is scaled to keep the YAML's minibatches per epoch instead."""
    cfg = build.load_config(["config=train_headless", "task=%s" % task, "numEnvs=%d" % envs, "sim=mujoco"])
    conf = build.make_params(cfg)["config"]
    assert conf["num_actors"] == envs and conf["minibatch_size"] == expected
    assert (conf["horizon_length"] * envs) % conf["minibatch_size"] == 0


@pytest.mark.slow  # trains one epoch through the CLI
def test_training_with_few_envs_runs_through_rl_games(tmp_path):
    """The real trainer accepts the scaled minibatch (it asserts divisibility itself)."""
    from helpers.procs import run_cli

    r = run_cli(["config=train_headless", "task=Pendulum-v1", "numEnvs=3", "maxEpochs=1"], str(tmp_path), 300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "minibatch_size 512 -> 192" in r.stdout + r.stderr
    assert list((tmp_path / "runs" / "latest_train" / "nn").glob("*.pth"))

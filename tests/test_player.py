"""HotReloadPlayer in-process with a real Pendulum env and real checkpoints."""

import os
import shutil
import threading

from helpers.players import make_player
from rl_games.algos_torch.players import PpoPlayerContinuous
from rl_games.torch_runner import Runner

import rlg_hotreload
from rlg_hotreload import PlayerCallback
from rlg_hotreload.player import HotReloadPlayer


class StopAt(PlayerCallback):
    """Stops the player after ``steps`` steps; optionally runs ``action`` once at step ``at``."""

    def __init__(self, steps, at=None, action=None):
        self.steps, self.at, self.action = steps, at, action
        self.reloads = []
        self.episodes = []

    def on_reload(self, player, info):
        self.reloads.append(info)

    def on_episode_end(self, player, episode):
        self.episodes.append(episode)

    def on_step(self, player, step):
        if step == self.at:
            self.action(player)
        if step >= self.steps:
            player.request_stop()


def _params(tmp_path, algo_player=None):
    import yaml

    from rlg_hotreload import envs

    envs.register_gym_task("Pendulum-v1")
    cfg = yaml.safe_load(
        open(os.path.join(os.path.dirname(__file__), "..", "cfg", "train", "PendulumPPO.yaml"))
    )
    cfg["params"]["config"]["env_name"] = "Pendulum-v1"
    cfg["params"]["config"]["player"] = {"use_vecenv": True}
    if algo_player:
        cfg["params"]["algo"]["player"] = algo_player
    return cfg


def test_register_selects_hot_reload_only_with_the_yaml_line(tmp_path):
    for line, expected in ((None, PpoPlayerContinuous), ("hot_reload", HotReloadPlayer)):
        runner = Runner()
        rlg_hotreload.register(runner)
        runner.load(_params(tmp_path, line))
        player = runner.create_player()
        assert type(player) is expected


def test_games_num_plays_exactly_n_games_with_batched_envs(trained_run, tmp_path):
    work, files = trained_run
    seen = StopAt(10**9)
    player = make_player(tmp_path, [seen], numEnvs=4, testGamesNum=6, checkpoint=str(files[0]))
    player.restore(str(files[0]))
    summary = player.run()
    assert summary.games == 6
    assert summary.per_checkpoint[0].games == 6
    # Pendulum gives no success signal: None everywhere, and the summary shows none (not "0 %")
    assert len(seen.episodes) == 6 and all(e.success is None for e in seen.episodes)
    assert summary.success_rate is None and summary.per_checkpoint[0].success_rate is None
    assert not any("success" in line for line in summary.report_lines())


def test_unbounded_play_is_not_cut_at_27000_steps(trained_run, tmp_path):
    work, files = trained_run
    stop = StopAt(27200)
    player = make_player(tmp_path, [stop], numEnvs=2, testGamesNum=0, reloadInterval=0)
    player.restore(str(files[0]))
    summary = player.run()
    assert summary.steps == 27200
    assert summary.games == 2 * (27200 // 200)


def _new_version(folder, src, name):
    def write(player):
        import torch

        ckpt = torch.load(src, weights_only=False)
        ckpt["epoch"] = 99
        torch.save(ckpt, os.path.join(folder, name + ".tmp"))
        os.replace(os.path.join(folder, name + ".tmp"), os.path.join(folder, name))
        assert player.watcher.wait(15), "watcher did not prepare the new checkpoint"

    return write


def _play_with_new_checkpoint_at_step_50(files, tmp_path, **overrides):
    """400 steps from checkpoint a.pth; at step 50 a new version (epoch 99) lands as b.pth."""
    nn = tmp_path / "run" / "nn"
    nn.mkdir(parents=True)
    shutil.copy(files[0], nn / "a.pth")
    cb = StopAt(400, at=50, action=_new_version(str(nn), files[0], "b.pth"))
    player = make_player(tmp_path, [cb], reloadInterval=0.1, **overrides)
    player.restore(str(tmp_path / "run"))
    return player.run(), cb


def test_swap_between_steps_marks_episodes_in_progress_as_mixed(trained_run, tmp_path):
    s, cb = _play_with_new_checkpoint_at_step_50(trained_run[1], tmp_path, numEnvs=2, swapAt="step")
    assert [r.epoch for r in cb.reloads][-1] == 99 and s.reloads == 1
    assert s.per_checkpoint[None].games == 2  # both first episodes spanned the swap
    mixed = [e for e in cb.episodes if e.checkpoint is None]  # "mixed" is None in records, as in the summary
    assert len(mixed) == 2 and all(e.checkpoint in (None, 1) for e in cb.episodes)
    assert s.per_checkpoint[0].games == 0
    assert s.per_checkpoint[1].games == 2


def test_single_env_swaps_between_games(trained_run, tmp_path):
    s, cb = _play_with_new_checkpoint_at_step_50(trained_run[1], tmp_path, numEnvs=1)
    assert s.reloads == 1
    assert None not in s.per_checkpoint or s.per_checkpoint[None].games == 0
    assert s.per_checkpoint[0].games == 1 and s.per_checkpoint[1].games == 1


def test_player_waits_for_first_checkpoint(trained_run, tmp_path):
    """Nothing there yet: the player waits (no crash) and starts when a checkpoint lands."""
    work, files = trained_run
    nn = tmp_path / "runs" / "exp" / "nn"
    player = make_player(tmp_path / "runs", [StopAt(10)], checkpoint="latest", reloadInterval=0.2)
    player.restore("latest")
    assert player.current is None
    t = threading.Thread(target=player.run)
    t.start()
    nn.mkdir(parents=True)
    shutil.copy(files[0], nn / "x.pth")
    t.join(30)
    assert not t.is_alive()
    assert player.current is not None and player.summary.steps == 10


def test_a_swap_whose_first_forward_pass_fails_is_rolled_back(trained_run, tmp_path, caplog):
    """Weights that pass validation but break the network: the previous ones play on, the file is refused."""
    import logging

    import torch

    nn = tmp_path / "run" / "nn"
    nn.mkdir(parents=True)
    shutil.copy(trained_run[1][0], nn / "a.pth")
    ckpt = torch.load(trained_run[1][0], weights_only=False)
    key = next(k for k, v in ckpt["model"].items() if v.dim() == 2)

    def write(name, epoch, poison):
        def action(player):
            c = torch.load(trained_run[1][0], weights_only=False)
            c["epoch"] = epoch
            if poison:
                c["model"][key][0, 0] = 1000.0  # finite, right shape and dtype: validation lets it through
            torch.save(c, str(nn / (name + ".tmp")))
            os.replace(str(nn / (name + ".tmp")), str(nn / name))
            assert player.watcher.wait(15), "watcher did not prepare %s" % name

        return action

    actions = {50: write("b.pth", 2, True), 150: write("c.pth", 3, False)}

    class Script(StopAt):
        def on_step(self, player, step):
            if step in actions:
                actions[step](player)
            if step >= self.steps:
                player.request_stop()

    cb = Script(300)
    player = make_player(tmp_path, [cb], reloadInterval=0.1, swapAt="step", numEnvs=2)
    net = player.model.a2c_network
    plain = net.forward
    weight = key[len("_orig_mod."):] if key.startswith("_orig_mod.") else key

    def forward(*args, **kwargs):  # the network cannot act with these weights (e.g. a custom layer's limits)
        if float(player.model.state_dict()[weight][0, 0]) == 1000.0:
            raise RuntimeError("normal expects all elements of std >= 0.0")
        return plain(*args, **kwargs)

    net.forward = forward
    player.restore(str(tmp_path / "run"))
    with caplog.at_level(logging.WARNING, logger="rlg_hotreload"):
        s = player.run()
    assert s.steps == 300, "the player stopped early"
    rolled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Rolled back")]
    assert len(rolled) == 1 and "b.pth" in rolled[0] and "playing a@ep" in rolled[0], rolled
    assert [c.epoch for c in s.checkpoints] == [player.summary.checkpoints[0].epoch, 3]
    assert s.reloads == 1 and player.current.epoch == 3
    assert float(player.model.state_dict()[weight][0, 0]) != 1000.0


def test_rewards_and_dones_stay_where_a_cpu_env_made_them(trained_run, tmp_path):
    """A CPU env (numpy outputs) gives CPU rewards and dones, as the stock player has them, whatever the
    policy's device: moving them to a CUDA policy's device cost two copies and a sync per step (0.87-0.93x
    of stock steps/s on the H100 machine). On a GPU machine this runs the policy on ``cuda:0``."""
    import torch

    device = "cuda:0" if torch.cuda.is_available() else "cpu"
    seen = []

    class Probe(StopAt):
        def on_step(self, player, step):
            seen.append(player.step_device())
            super().on_step(player, step)

    stop = Probe(250)
    p = make_player(tmp_path, [stop], checkpoint=trained_run[1][0], rl_device=device, reloadInterval=0)
    obs = p.env_reset(p.env)
    _, r, done, _ = p.env_step(p.env, p.get_action(obs, True))
    assert r.device.type == "cpu" and done.device.type == "cpu" and not p.is_tensor_obses
    p.run()
    assert seen and all(d.type == "cpu" for d in seen)
    assert len(stop.episodes) == 1 and stop.episodes[0].length == 200  # Pendulum's time limit


class ActionOrder(PlayerCallback):
    """Records the order of on_action and on_step, with the player's step count at each (env stepped?)."""

    def __init__(self, steps):
        self.steps, self.calls = steps, []

    def on_action(self, player, step):
        self.calls.append(("action", step, player.summary.steps))

    def on_step(self, player, step):
        self.calls.append(("step", step, player.summary.steps))
        if step >= self.steps:
            player.request_stop()


def test_on_action_comes_between_the_policy_and_the_env_step_and_only_to_callbacks_that_override_it(
    trained_run, tmp_path
):
    work, files = trained_run
    order, plain = ActionOrder(25), StopAt(10**9)
    player = make_player(tmp_path, [plain, order], numEnvs=2, checkpoint=str(files[0]))
    assert player.callbacks.acting == [order]  # StopAt does not override on_action: never called for it
    player.restore(str(files[0]))
    player.run()
    # on_action(k) before step k's env step (the player has stepped k-1 times), then on_step(k)
    expected = []
    for k in range(1, 26):
        expected += [("action", k, k - 1), ("step", k, k)]
    assert order.calls == expected

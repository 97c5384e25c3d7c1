"""Compare mode (``compare=latest,best,<file>``) with the REAL BlindGrasping task on the MuJoCo backend.

What must hold: each slot plays its own checkpoint on its own envs, and the numbers per slot are that
policy's; env i of every slot starts its j-th episode from the same state even though the slots finish
episodes at different times; ``latest`` and ``best`` follow the run (a new file, an in-place rewrite)
while a file slot stays; /status and the page show one block per slot; bad input is one line, exit 2.
The scripted-grasp tests replace only the policy's output (``ComparePlayer.act``), as
``helpers/scripted_grasp`` does for the single player: env, watchers, loads and callbacks are real.
"""

import importlib.util
import io
import json
import threading
import time
import urllib.request

import pytest
import torch

pytest.importorskip("mujoco")
pytest.importorskip("flask")

from helpers.procs import cli_in_process, free_port  # noqa: E402
from helpers.scripted_grasp import save_checkpoint  # noqa: E402

from isaacgym_tasks.scripted import grasp_action  # noqa: E402
from rlg_hotreload import PlayerCallback, build, compare_spec  # noqa: E402
from rlg_hotreload.config import ConfigError  # noqa: E402
from rlg_hotreload.readyfile import wait_ready_file  # noqa: E402
from rlg_hotreload.stream.client import MjpegClient  # noqa: E402


def _cfg(tmp_path, compare, run, **extra):
    d = {"task": "BlindGrasping", "sim": "mujoco", "numEnvs": 2, "checkpoint": str(run), "trainDir": str(tmp_path),
         "printStats": False, "reloadInterval": 0.1, "compare": compare}  # fmt: skip
    d.update(extra)
    return build.load_config(d, preset="test")


def _episodes_of(seconds):
    def edit(params):
        params["config"]["env_config"]["episode_length_s"] = seconds

    return edit


class StartRecorder:
    """Wraps the env's reset/step (instance attributes): the observation each env starts each episode with."""

    def __init__(self, env):
        self.starts = {}  # env index -> [initial obs of episode 0, 1, ...]
        reset, step = env.reset, env.step

        def rec_reset():
            obs = reset()
            self.starts = {i: [obs[i].clone()] for i in range(obs.shape[0])}
            return obs

        def rec_step(actions):
            obs, r, done, info = step(actions)
            for i in done.nonzero().flatten().tolist():
                self.starts[i].append(obs[i].clone())
            return obs, r, done, info

        env.reset, env.step = rec_reset, rec_step


def scripted(path_word):
    """``act`` for a ComparePlayer: the slot whose checkpoint file contains ``path_word`` plays the shipped
    open-loop grasp (step from the observed episode clock, per env), every other slot holds still."""

    def act(slot, obs):
        if path_word not in slot.current.path:
            return torch.zeros(obs.shape[0], 9)
        max_steps = act.max_steps
        ks = (obs[:, -1] * max_steps).round().long().tolist()  # the observation's last column: step / max
        return torch.cat([grasp_action(k, 1) for k in ks])

    return act


class StatusAtStop(PlayerCallback):
    """Reads /status over HTTP in ``on_stop``: after the streamer's own ``on_stop`` refreshed its snapshot
    with the final numbers and before ``close()`` stops the server (callbacks run in list order), so the
    test sees the final per-slot blocks whatever the machine's speed (polling from outside can miss them)."""

    def __init__(self, ready_file: str) -> None:
        self.ready_file, self.status, self.error = ready_file, None, None

    def on_stop(self, player, summary) -> None:
        try:
            with open(self.ready_file) as f:
                url = json.load(f)["url"]
            with urllib.request.urlopen(url + "status", timeout=10) as r:
                self.status = json.load(r)
        except (OSError, ValueError) as e:
            self.error = repr(e)


NO_WARP = any(importlib.util.find_spec(m) is None for m in ("warp", "mujoco_warp"))  # without importing them
ON_CUDA = {"sim": "mjwarp", "sim_device": "cuda:0", "rl_device": "cuda:0"}


@pytest.mark.parametrize("backend", [
    {},  # MuJoCo, CPU
    pytest.param(ON_CUDA, marks=[pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
                                 pytest.mark.skipif(NO_WARP, reason="needs warp and mujoco_warp")]),
])  # fmt: skip
@pytest.mark.integration
def test_two_fixed_checkpoints_play_side_by_side_from_the_same_starts(tmp_path, rlg_log, backend):
    run = tmp_path / "exp"
    (run / "nn").mkdir(parents=True)
    still, grasp = tmp_path / "still.pth", tmp_path / "grasp.pth"
    ready = tmp_path / "stream.json"
    bootstrap = build.make_player(_cfg(tmp_path, None, "latest", numEnvs=1, **backend))
    save_checkpoint(bootstrap, str(still), epoch=3)
    save_checkpoint(bootstrap, str(grasp), epoch=9)
    bootstrap.close_all()
    cfg = _cfg(tmp_path, "%s,%s" % (still, grasp), run, testGamesNum=6,
               stream={"enabled": True, "port": free_port(), "readyFile": str(ready), "width": 320, "height": 240},
               **backend)  # fmt: skip
    status = StatusAtStop(str(ready))
    player = build.make_player(cfg, callbacks=[status], edit=_episodes_of(4.0))
    assert type(player).__name__ == "ComparePlayer" and player.config["num_actors"] == 4
    player.act = scripted("grasp")
    player.act.max_steps = player.env.core.max_steps
    starts = StartRecorder(player.env)

    done, seen, frames, page = threading.Event(), [], [], []

    def watch():  # a real HTTP client of /, /status and /stream while it plays
        info = wait_ready_file(str(ready), 60, alive=lambda: not done.is_set())
        if info is None:
            return
        with urllib.request.urlopen(info["url"], timeout=10) as r:
            page.append(r.read().decode())
        client = MjpegClient(info["url"] + "stream", timeout=10)
        try:
            for part in client.parts():
                frames.append(part.jpeg)
                break
        finally:
            client.close()
        while not done.is_set():
            try:
                with urllib.request.urlopen(info["url"] + "status", timeout=10) as r:
                    seen.append(json.load(r))
            except OSError:  # the server stops when run() ends
                return
            done.wait(0.3)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        player.restore(str(run))
        summary = player.run()
    finally:
        done.set()
        watcher.join(15)
    s_still, s_grasp = (sl.summary for sl in player.slots)
    # per-slot numbers: the policy that holds still never lifts the box; the grasp mostly does
    assert s_still.games == 6 and s_grasp.games == 6 and summary.games == 12
    assert s_still.success_rate == 0.0 and s_grasp.success_rate >= 0.5, (s_still, s_grasp)
    assert s_grasp.mean_reward > s_still.mean_reward + 20
    # the same starts: env i of both slots began each episode from the same observation, although the
    # slots finished episodes at different times (a success ends an episode early, holding still never)
    n_checked = 0
    for i in range(2):
        a, b = starts.starts[i], starts.starts[2 + i]
        for oa, ob in zip(a, b):
            assert torch.equal(oa, ob), (i, oa - ob)
            n_checked += 1
    assert n_checked >= 6 and s_grasp.mean_length < s_still.mean_length  # they did finish at different times
    assert not torch.equal(starts.starts[0][1], starts.starts[1][1])  # envs of one slot differ
    # the log: each slot's load and its summary lines
    assert any(ln.startswith("[still] Loaded") for ln in rlg_log.lines)
    assert any(ln.startswith("[grasp] 6 games") and "success" in ln for ln in rlg_log.lines), rlg_log.text
    assert any(ln.startswith("[still] 6 games") and "success   0.0 %" in ln for ln in rlg_log.lines)
    # /status: one block per slot, in tile order
    assert seen, "no /status answer"
    last = status.status
    assert last is not None, status.error
    assert [sl["label"] for sl in last["slots"]] == ["still", "grasp"]
    assert [sl["env_index"] for sl in last["slots"]] == [0, 2]
    assert last["slots"][0]["checkpoint"]["epoch"] == 3 and last["slots"][1]["checkpoint"]["epoch"] == 9
    assert last["slots"][0]["success_rate"] == 0.0 and last["slots"][0]["here"]["games"] >= 1, last["slots"]
    # the page has the slot cards' container; the stream's frame holds two tiles side by side
    assert page and 'id="slots"' in page[0]
    from PIL import Image

    assert frames, "no frame streamed"
    w, h = Image.open(io.BytesIO(frames[0])).size
    assert (w, h) == (320, 120), (w, h)  # two 160x120 tiles (stream box 320x240, two columns)


class FollowScript(PlayerCallback):
    """Lands a ``last_*`` file (latest moves, best stays), then rewrites the best file in place (best
    moves); stops once both were seen, or after ``max_s`` (a bounded wait)."""

    def __init__(self, player, nn, max_s=150.0):
        self.player, self.nn, self.phase = player, nn, 0
        self.deadline = time.monotonic() + max_s

    def on_step(self, player, step):
        latest, best, _ = player.slots
        if self.phase == 0 and latest.summary.games >= 1:
            save_checkpoint(player, str(self.nn / "last_BlindGrasping_ep_2_rew_1.0.pth"), epoch=2)
            self.phase = 1
        elif self.phase == 1 and latest.summary.reloads >= 1 and latest.stats_here().games >= 1:
            save_checkpoint(player, str(self.nn / "BlindGrasping.pth"), epoch=3)  # rewritten in place
            self.phase = 2
        elif self.phase == 2 and best.summary.reloads >= 1 and latest.summary.reloads >= 2:
            player.request_stop()
        if time.monotonic() > self.deadline:
            player.request_stop()


@pytest.mark.integration
def test_latest_and_best_follow_the_run_while_a_file_stays(tmp_path, rlg_log):
    run = tmp_path / "exp"
    nn = run / "nn"
    nn.mkdir(parents=True)
    fixed = tmp_path / "fixed.pth"
    bootstrap = build.make_player(_cfg(tmp_path, None, "latest", numEnvs=1))
    save_checkpoint(bootstrap, str(fixed), epoch=7)
    save_checkpoint(bootstrap, str(nn / "BlindGrasping.pth"), epoch=1)
    bootstrap.close_all()
    player = build.make_player(_cfg(tmp_path, "latest,best,%s" % fixed, run, numEnvs=1), edit=_episodes_of(0.5))
    player.callbacks.append(FollowScript(player, nn))
    player.restore(str(run))
    player.run()
    latest, best, stays = player.slots
    assert [c.epoch for c in latest.summary.checkpoints] == [1, 2, 3], rlg_log.text
    assert [c.epoch for c in best.summary.checkpoints] == [1, 3]
    assert [c.epoch for c in stays.summary.checkpoints] == [7] and stays.summary.reloads == 0
    assert stays.summary.games >= 3  # it kept playing its file the whole time
    assert any(ln.startswith("[latest] Reloaded") and "last_BlindGrasping_ep_2" in ln for ln in rlg_log.lines)
    assert any(ln.startswith("[best] Reloaded") and "BlindGrasping.pth (epoch 3" in ln for ln in rlg_log.lines)
    assert not any(ln.startswith("[fixed] Reloaded") for ln in rlg_log.lines)


def test_slot_words_labels_and_errors(tmp_path):
    f = tmp_path / "a.pth"
    f.write_bytes(b"x")
    slots = compare_spec.parse("latest,best,%s,latest" % f)
    assert [(s.label, s.kind) for s in slots] == [("latest", "latest"), ("best", "best"), ("a", "file"),
                                                  ("latest#2", "latest")]  # fmt: skip
    for text, want in [("latest", "at least two slots"), ("latest,,best", "an empty slot"),
                       ("latest,lates", "did you mean 'latest'"), ("best,%s" % tmp_path, "is a folder"),
                       ("best,nope/x.pth", "no such file")]:  # fmt: skip
        with pytest.raises(ConfigError, match=want):
            compare_spec.parse(text)


def test_reset_groups_give_every_group_the_same_starts_on_mujoco():
    import isaacgym_tasks

    _same_starts_when_groups_finish_at_different_times(isaacgym_tasks.make_env(
        4, sim="mujoco", seed=11, rl_device="cpu", reset_groups=2, episode_length_s=3.0))  # fmt: skip


def _same_starts_when_groups_finish_at_different_times(env):
    """Group 0 (envs 0, 1) holds still: every episode times out. Group 1 (envs 2, 3) plays the scripted
    grasp: its successes end episodes early. Env i of both groups must still start episode j alike."""
    rec = StartRecorder(env)
    env.reset()
    k = [0, 0]  # group 1's step within its current episode, per env
    lengths = {i: [] for i in range(4)}
    steps = [0] * 4
    try:
        for _ in range(600):
            actions = torch.zeros(4, 9)
            actions[2:] = torch.cat([grasp_action(k[0], 1), grasp_action(k[1], 1)])
            _, _, done, _ = env.step(actions)
            for i in range(4):
                steps[i] += 1
                if done[i]:
                    lengths[i].append(steps[i])
                    steps[i] = 0
            k = [0 if done[2 + j] else k[j] + 1 for j in range(2)]
            if min(len(v) for v in rec.starts.values()) >= 4:
                break
        assert min(len(v) for v in rec.starts.values()) >= 4
        assert lengths[0] != lengths[2] or lengths[1] != lengths[3], lengths  # different clocks per group
        for i in range(2):
            for oa, ob in zip(rec.starts[i], rec.starts[2 + i]):
                assert torch.allclose(oa, ob, atol=1e-6), (i, oa - ob)
    finally:
        env.close()


@pytest.mark.parametrize(
    "words, message",
    [
        (["compare=latest,bset"], "compare=latest,bset: unknown slot 'bset'; did you mean 'best'?"),
        (["task=Pendulum-v1", "compare=latest,best"], "task=Pendulum-v1 is not supported"),
    ],
)
def test_bad_compare_input_is_one_line_and_exit_2(tmp_path, words, message, monkeypatch, capsys):
    r = cli_in_process(["config=test", "trainDir=%s" % tmp_path] + words, tmp_path, monkeypatch, capsys)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.integration
def test_compare_with_a_checkpoint_of_another_network_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    other = tmp_path / "other.pth"
    torch.save({"model": {"a2c_network.mu.weight": torch.zeros(2, 3)}, "epoch": 1}, str(other))
    r = cli_in_process(["config=test", "sim=mujoco", "trainDir=%s" % tmp_path, "compare=latest,%s" % other],
                       tmp_path, monkeypatch, capsys)  # fmt: skip
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: compare=latest,%s: slot other (%s): network does not match" % (other, other))


@pytest.mark.slow  # warp compiles its CPU kernels once per machine (~1 min), then loads them from its cache
def test_reset_groups_give_every_group_the_same_starts_on_mujoco_warp():
    pytest.importorskip("mujoco_warp")
    import isaacgym_tasks

    env = isaacgym_tasks.make_env(4, sim="mjwarp", sim_device="cpu", rl_device="cpu", seed=11, reset_groups=2,
                                  episode_length_s=3.0, render_width=64, render_height=48)  # fmt: skip
    a, b = env.render_env(0), env.render_env(2)  # a compare tile of another env, through the same view
    assert a.shape == (48, 64, 3) and (a == b).all()  # env 2 starts as env 0 does
    _same_starts_when_groups_finish_at_different_times(env)

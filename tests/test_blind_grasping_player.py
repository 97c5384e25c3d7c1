"""A REAL BlindGrasping player (sim=mujoco, 1 env) built through ``rlg_hotreload.build``.

Why this test exists: tests used to drive the streamer and the recorder with a stand-in env that set
``control_dt`` itself, while real BlindGrasping players had none, so ``streamRealtime=true`` did nothing
and videos played 1.5x too fast. Here the real task, the real player, the config keys a user types, a
real HTTP client on 127.0.0.1 and the real mp4 decoder.
"""

import json
import threading
import time
import urllib.request

import pytest

pytest.importorskip("mujoco")
pytest.importorskip("flask")

from helpers.procs import free_port  # noqa: E402
from helpers.scripted_grasp import ScriptedGrasp, save_checkpoint, streamed_monitor  # noqa: E402
from helpers.video import decoded_frames  # noqa: E402

from rlg_hotreload import PlayerCallback, build  # noqa: E402
from rlg_hotreload.readyfile import wait_ready_file  # noqa: E402
from rlg_hotreload.stream import FrameStreamer  # noqa: E402
from rlg_hotreload.stream.client import MjpegClient  # noqa: E402

PACED_STEPS = 40
EPISODE_S = 1.5  # short episodes: the recorded one ends quickly


class PacingClock(PlayerCallback):
    """Times PACED_STEPS steps taken while a viewer is attached; stops the player once it has them and
    the recorder has finished its file (or after ``max_s`` seconds: a bounded wait)."""

    def __init__(self, max_s: float = 90.0) -> None:
        self.deadline = time.monotonic() + max_s
        self.marks = []  # (step, monotonic) while frames are wanted
        self.streamer = None
        self.recorder = None
        self.first_episode_steps = None  # env 0's first whole episode: the one the recorder writes

    def on_episode_end(self, player, episode):
        if self.first_episode_steps is None and episode.env_index == 0 and episode.checkpoint == 0:
            self.first_episode_steps = episode.length

    def on_start(self, player):
        cbs = player.callbacks.callbacks
        self.streamer = next(cb for cb in cbs if isinstance(cb, FrameStreamer))
        self.recorder = next(cb for cb in cbs if type(cb).__name__ == "Recorder")

    def on_step(self, player, step):
        if self.streamer.wants_frames and len(self.marks) <= PACED_STEPS:
            self.marks.append((step, time.monotonic()))
        if (len(self.marks) > PACED_STEPS and self.recorder.saved) or time.monotonic() > self.deadline:
            player.request_stop()


@pytest.mark.integration
def test_real_blind_grasping_player_paces_to_real_time_and_records_at_real_speed(tmp_path):
    clock = PacingClock()
    player, _, ckpt, ready = streamed_monitor(
        tmp_path, [clock], 160, 120, render=None, stream={"realtime": True},
        extra={"record": {"enabled": True, "dir": str(tmp_path / "videos"), "fps": 30}},
        env_config={"episode_length_s": EPISODE_S},
    )  # fmt: skip
    dt = player.control_dt
    assert dt is not None and 0.005 <= dt <= 0.2, "the real env must report its control step, got %r" % dt

    done = threading.Event()
    frames = []

    def watch():
        info = wait_ready_file(str(ready), 60, alive=lambda: not done.is_set())
        if info is None:
            return
        client = MjpegClient(info["url"] + "stream", timeout=10)
        try:
            for part in client.parts():
                frames.append(part.seq)
                if done.is_set():
                    break
        finally:
            client.close()

    viewer = threading.Thread(target=watch, daemon=True)
    viewer.start()
    try:
        player.restore(str(ckpt))
        summary = player.run()
    finally:
        done.set()
        viewer.join(15)
    assert not viewer.is_alive()
    assert frames, "the viewer got no frame"
    assert len(clock.marks) > PACED_STEPS, "only %d steps were watched" % len(clock.marks)
    (s0, t0), (s1, t1) = clock.marks[0], clock.marks[PACED_STEPS]
    simulated = (s1 - s0) * dt
    assert t1 - t0 >= 0.8 * simulated, "%d steps took %.2f s of wall time; real time is %.2f s" % (
        s1 - s0, t1 - t0, simulated)  # fmt: skip
    # (On a machine slower than real time pacing has nothing to do, so "it slept" is not asserted.)

    assert clock.recorder.saved, "no mp4 finished"
    path, _ = clock.recorder.saved[0]
    n, meta = decoded_frames(path)
    assert summary.games >= 1 and clock.first_episode_steps
    episode_s = clock.first_episode_steps * dt  # simulated seconds of the recorded episode
    played_s = n / meta["fps"]
    assert abs(played_s - episode_s) <= 0.15 * episode_s, (
        "mp4 plays %.2f s (%d frames at %s fps) for a %.2f s episode" % (played_s, n, meta["fps"], episode_s)
    )


@pytest.mark.integration
def test_real_blind_grasping_player_reports_success_per_episode_checkpoint_summary_status_and_reload(
    tmp_path, rlg_log
):
    nn = tmp_path / "exp" / "nn"
    nn.mkdir(parents=True)
    ready = tmp_path / "stream.json"
    cfg = build.load_config(
        {"task": "BlindGrasping", "sim": "mujoco", "numEnvs": 1, "checkpoint": str(nn.parent),
         "trainDir": str(tmp_path), "printStats": False, "reloadInterval": 0.1,
         "stream": {"enabled": True, "port": free_port(), "readyFile": str(ready)}},
        preset="test",
    )  # fmt: skip

    def episodes_of_4_s(params):  # room for the scripted grasp (lift, then hold 1 s); failures end sooner
        params["config"]["env_config"]["episode_length_s"] = 4.0

    player = build.make_player(cfg, edit=episodes_of_4_s)
    script = ScriptedGrasp(player, nn / "b.pth")  # stops once /status has shown checkpoint 1's success
    player.callbacks.append(script)
    save_checkpoint(player, str(nn / "a.pth"))

    done = threading.Event()
    seen = []

    def poll_status():  # a real HTTP client of /status while the player runs
        info = wait_ready_file(str(ready), 60, alive=lambda: not done.is_set())
        while info is not None and not done.is_set():
            try:
                with urllib.request.urlopen(info["url"] + "status", timeout=10) as r:
                    st = json.load(r)
            except OSError:  # the server stops when run() ends
                return
            seen.append(st)
            cps = st["checkpoints"]
            if len(cps) == 2 and cps[1]["success_episodes"] >= 1:
                script.status_seen.set()
            done.wait(0.3)

    poller = threading.Thread(target=poll_status, daemon=True)
    poller.start()
    try:
        player.restore(str(nn.parent))
        summary = player.run()
    finally:
        done.set()
        poller.join(15)

    # per episode: every BlindGrasping episode carries the task's success flag
    assert all(e.success is not None for e in script.episodes), script.episodes
    first = [e for e in script.episodes if e.checkpoint == 0]
    second = [e for e in script.episodes if e.checkpoint == 1]
    assert len(first) >= 2 and not any(e.success for e in first), first  # holding still never lifts
    assert len(second) >= 3, "checkpoint 1 played %d episodes (stopped by the deadline?)" % len(second)
    # per checkpoint and in total: the rate over the episodes that had a signal
    s0, s1 = summary.per_checkpoint[0], summary.per_checkpoint[1]
    assert s0.success_rate == 0.0 and s0.success_games == len(first)
    assert s1.success_rate == sum(e.success for e in second) / len(second) and s1.success_rate >= 0.5, second
    assert summary.success_rate == sum(bool(e.success) for e in script.episodes) / len(script.episodes)
    # the summary's lines and the reload line
    lines = summary.report_lines()
    assert "success" in lines[0] and any(" success   0.0 %" in ln and "a@ep1" in ln for ln in lines), lines
    reload_line = next(ln for ln in rlg_log.lines if ln.startswith("Reloaded") and "b.pth" in ln)
    assert "previous checkpoint: success 0.0 % of " in reload_line, reload_line
    # /status, read over HTTP while it played
    assert script.status_seen.is_set(), seen[-1:] if seen else "no /status answer"
    last = next(
        st
        for st in reversed(seen)
        if len(st["checkpoints"]) == 2 and st["checkpoints"][1]["success_episodes"]
    )
    assert last["checkpoints"][0]["success_rate"] == 0.0 and last["checkpoints"][0]["success_episodes"] >= 2
    assert last["checkpoints"][1]["success_rate"] is not None and last["success_rate"] is not None
    # nobody watched: nothing was rendered
    assert last["clients"] == 0 and last["stream"]["frames_submitted"] == 0

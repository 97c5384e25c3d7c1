"""Frames of the REAL BlindGrasping task drawn and encoded in the frame process (``stream.render``).

Why this test exists: watching cost the simulation ~11 % on a 16-core GPU machine although the render
ran off the player thread: the encoder and sender threads competed with the player for its GIL. The
frame process (:mod:`rlg_hotreload.stream.frameproc`) renders and encodes under a GIL of its own.
What that could break, checked here: a frame drawn over there must be the picture of the state the
player copied; several real HTTP clients must get the same frames, each encoded once; a frame process
that dies must cost one warning and the stream must go on (drawn in the player's process); Ctrl+C to
the terminal's process group must end the monitor with 0 and leave no frame process behind.
"""

import io
import logging
import os
import signal
import threading
import time

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")
pytest.importorskip("flask")

from helpers.procs import Proc, free_port  # noqa: E402
from helpers.scripted_grasp import grasping_mjwarp_env, play_watched, save_checkpoint, streamed_monitor  # noqa: E402
from PIL import Image  # noqa: E402

import isaacgym_tasks  # noqa: E402
from rlg_hotreload import PlayerCallback, build  # noqa: E402
from rlg_hotreload.readyfile import wait_ready_file  # noqa: E402
from rlg_hotreload.stream.client import MjpegClient  # noqa: E402
from rlg_hotreload.stream.frameproc import FrameProcess  # noqa: E402

W, H = 320, 240


def _pixels(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


def _diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not reaped yet) is gone for our purpose
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _check_drawn_in_a_process_like_here(env) -> None:
    """A state drawn and encoded in the frame process == the same state drawn here (JPEG noise aside)."""
    state = env.render_state()
    reference = env.make_frame_renderer()
    proc = FrameProcess(env.make_frame_renderer(), quality=95, size=(W, H))
    try:
        expected = reference.render(state).copy()
        proc.start()
        deadline = time.monotonic() + 60
        while not proc.ready():
            assert time.monotonic() < deadline, "the frame process did not start"
            time.sleep(0.05)
        out = proc.render(state, 7, 123.5)
        pid = proc.pid
    finally:
        proc.close()
        reference.close()
    got = _pixels(out.jpeg)
    assert (out.width, out.height) == (W, H) and got.shape == (H, W, 3)
    assert b"X-Frame-Seq: 7\r\n" in out.part and b"X-Render-Time: 123.500000" in out.part and out.part.endswith(
        out.jpeg + b"\r\n"
    )
    assert got.std() > 10, "a uniform picture: nothing drawn"
    assert _diff(got, expected) < 3.0, "the process drew another picture than this state's"
    assert pid is not None and pid != os.getpid() and not _alive(pid), "the frame process outlived close()"


@pytest.mark.integration  # starts the frame process
def test_a_state_drawn_in_the_frame_process_is_the_picture_of_that_state():
    env = isaacgym_tasks.make_env(1, sim="mujoco", render_width=W, render_height=H)
    try:
        for _ in range(10):
            env.step(np.random.default_rng(0).uniform(-1, 1, (1, 9)).astype(np.float32))
        _check_drawn_in_a_process_like_here(env)
    finally:
        env.close()


@pytest.mark.slow  # warp compiles its CPU kernels once per machine (~1 min), then loads them from its cache
def test_mjwarp_world_0_copied_from_the_device_is_drawn_in_the_frame_process():
    pytest.importorskip("mujoco_warp")
    env = grasping_mjwarp_env(W, H)
    try:
        _check_drawn_in_a_process_like_here(env)
    finally:
        env.close()


class Watched(PlayerCallback):
    """Stops the player once the test says so (or after ``max_s``); counts steps."""

    def __init__(self, max_s: float = 180.0) -> None:
        self.deadline = time.monotonic() + max_s
        self.done = threading.Event()
        self.steps = 0

    def on_step(self, player, step):
        self.steps = step
        if self.done.is_set() or time.monotonic() > self.deadline:
            player.request_stop()


@pytest.mark.integration  # starts the frame process
def test_blind_grasping_stream_drawn_in_the_frame_process_fans_out_and_survives_its_death(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="rlg_hotreload")
    script = Watched()
    player, streamer, ckpt, ready = streamed_monitor(tmp_path, [script], W, H)
    hub = streamer.hub
    got = {}  # client index -> parts
    phase = {}

    def client(i, url, n_before, n_after, start):
        parts = got.setdefault(i, [])
        c = MjpegClient(url, timeout=60)
        try:
            start.wait(60)
            for part in c.parts():
                parts.append(part)
                # kill once the frame process has drawn 10 frames (its start-up takes ~0.3-1 s, during
                # which frames are drawn here; how many depends on the machine), at most 600 frames in
                if i == 0 and "at" not in phase and len(parts) >= n_before and (
                    hub.render_info.get("frames", 0) >= 10 or len(parts) >= 600
                ):
                    phase["before"] = (hub.stats(), script.steps)
                    pid = hub.render_info["pid"]
                    phase["pid"], phase["at"] = pid, len(parts)
                    os.kill(pid, signal.SIGKILL)  # the frame process dies mid-stream
                if len(parts) >= (phase["at"] if i == 0 and "at" in phase else n_before) + n_after:
                    break
        finally:
            c.close()

    def watch():
        try:
            info = wait_ready_file(str(ready), 90, alive=lambda: not script.done.is_set())
            if info is None:
                return
            start = threading.Barrier(3)
            threads = [threading.Thread(target=client, args=(i, info["url"] + "stream", 15, 10, start), daemon=True)
                       for i in range(3)]  # fmt: skip
            for t in threads:
                t.start()
            for t in threads:
                t.join(150)
            phase["after"] = (hub.stats(), script.steps)
        finally:
            script.done.set()

    play_watched(player, ckpt, watch, script.done)
    before, steps_before = phase["before"]
    after, steps_after = phase["after"]

    # frames arrived at every client, decode to the asked size and show the scene
    for i in range(3):
        assert len(got[i]) >= 25, "client %d got %d frames" % (i, len(got[i]))
        for p in got[i][1::6]:
            px = _pixels(p.jpeg)
            assert px.shape == (H, W, 3) and px.std() > 10, "frame %d is not a picture of the scene" % p.seq
    # before the kill: drawn and encoded in the frame process, once per frame whatever the client count
    r = before["render"]
    assert r["name"] == "process" and r["fallback"] is None and r["frames"] >= 10, r
    # ... and written to the viewers by the frame process: their sockets were handed over to it, and the
    # frames it wrote to them are counted (3 viewers, >= 10 frames)
    assert before["handed_over"] == 3 and before["frames_sent"] >= 30, before
    # each state copied after a step was held until the player chose the next actions (on_action)
    assert before["frames_held"] >= 10, before
    assert player.frames_rendered_here == 0
    assert before["frames_encoded"] <= before["frames_submitted"] - before["frames_dropped"]
    seqs = [{p.seq for p in got[i][1:12]} for i in range(3)]
    assert len(set.intersection(*seqs)) >= 5, "the clients did not get the same (once encoded) frames"
    # the kill: one warning, then frames drawn in this process; the player never stopped
    r = after["render"]
    assert r["fallback"] and r["pid"] is None and r["spawns"] == 1, r
    warnings = [m for m in caplog.messages if "Stream frame process" in m]
    assert len(warnings) == 1 and "drawing frames on the stream's thread" in warnings[0], warnings
    assert after["frames_rendered_by_encoder"] - before["frames_rendered_by_encoder"] >= 10
    assert max(p.seq for p in got[0]) > before["seq"] + 5, "the stream did not go on after the kill"
    assert steps_after > steps_before
    assert not _alive(phase["pid"])
    assert not [t for t in threading.enumerate() if t.name == "rlg-jpeg"]


@pytest.mark.integration  # starts the frame process
def test_ctrl_c_to_the_process_group_ends_a_monitor_with_a_frame_process_cleanly(tmp_path):
    ckpt = tmp_path / "exp" / "nn" / "bg.pth"
    ckpt.parent.mkdir(parents=True)
    cfg = build.load_config({"task": "BlindGrasping", "sim": "mujoco", "numEnvs": 1, "trainDir": str(tmp_path),
                             "checkpoint": str(tmp_path / "exp")}, preset="test")  # fmt: skip
    player = build.make_player(cfg)
    save_checkpoint(player, str(ckpt))
    player.env.close()
    ready = tmp_path / "stream.json"
    mon = Proc(["config=test_stream", "task=BlindGrasping", "sim=mujoco", "numEnvs=1", "checkpoint=%s" % ckpt,
                "printStats=false", "streamPort=%d" % free_port(), "streamReadyFile=%s" % ready,
                "stream.render=process", "stream.width=%d" % W, "stream.height=%d" % H],
               str(tmp_path), new_session=True)  # fmt: skip
    pid = None
    try:
        info = wait_ready_file(str(ready), 120, alive=lambda: mon.p.poll() is None)
        assert info is not None, mon.output()[-3000:]
        c = MjpegClient(info["url"] + "stream", timeout=60)
        parts = []
        for part in c.parts():  # the first frames may be drawn here while the frame process starts
            parts.append(part)
            if "frame process (pid" in mon.output() and len(parts) >= 3:
                break
            assert len(parts) < 200, "no frame process started: " + mon.output()[-2000:]
        m = mon.wait_for(r"drawn and encoded in a frame process \(pid (\d+)\)", 5)
        pid = int(m.group(1))
        assert _alive(pid) and _pixels(parts[-1].jpeg).std() > 10
        os.killpg(mon.p.pid, signal.SIGINT)  # what a terminal's Ctrl+C does: the whole foreground group
        mon.p.wait(30)
        c.close()
        assert mon.p.returncode == 0, mon.output()[-3000:]
    finally:
        mon.kill()
    out = mon.output()
    assert "Traceback" not in out and "Stream frame process:" not in out, out[-3000:]
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:  # reaped by the monitor before it exited
        time.sleep(0.05)
    assert not _alive(pid), "the frame process outlived the monitor"

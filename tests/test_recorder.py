"""Recorder with real ffmpeg (imageio-ffmpeg) on frames of a real gymnasium env."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
from helpers.gym_driver import GymDriver
from helpers.procs import REPO
from helpers.video import decoded_frames

from rlg_hotreload.stream import Recorder

EPISODE = 200  # Pendulum-v1 truncates at 200 steps


@pytest.mark.integration
def test_first_episode_after_each_reload(tmp_path):
    rec = Recorder(out_dir=str(tmp_path / "videos"), episodes=1, fps=30.0)
    d = GymDriver([rec])
    d.start(epoch=10)  # checkpoint 0 at step 0: its first episode is steps 1..200
    d.run(steps=450)  # reload mid-episode at step 450: the episode ending at 600 is mixed
    d.reload(epoch=20)
    d.run(steps=400)  # 601..800 is checkpoint 1's first pure episode
    assert not rec.recording
    d.reload(epoch=20)  # same label again: must not overwrite
    d.run(steps=30)
    d.stop()  # on_stop finalizes the partial third file
    names = sorted(os.listdir(tmp_path / "videos"))
    assert names == ["pendulum@ep10.mp4", "pendulum@ep20.mp4", "pendulum@ep20_1.mp4"]
    n, meta = decoded_frames(str(tmp_path / "videos" / "pendulum@ep10.mp4"))
    assert n == EPISODE and meta["size"] == (500, 500)
    assert abs(meta["fps"] - 20.0) < 0.01  # Pendulum dt = 0.05 s: playback at real time
    assert decoded_frames(str(tmp_path / "videos" / "pendulum@ep20.mp4"))[0] == EPISODE
    assert decoded_frames(str(tmp_path / "videos" / "pendulum@ep20_1.mp4"))[0] == 30
    assert [n for _, n in rec.saved] == [EPISODE, EPISODE, 30]


@pytest.mark.integration
def test_resize_and_validation(tmp_path):
    with pytest.raises(ValueError, match="record.episodes"):
        Recorder(episodes=0)
    rec = Recorder(
        out_dir=str(tmp_path), episodes=1, fps=10.0, size=(161, 999)
    )  # fits to 161x161, cropped to even 160x160
    d = GymDriver([rec])
    d.control_dt = None  # unknown control rate: every step recorded, at the configured fps
    d.start(epoch=3)
    d.run(steps=EPISODE)
    d.stop()
    n, meta = decoded_frames(str(tmp_path / "pendulum@ep3.mp4"))
    assert n == EPISODE and meta["size"] == (160, 160) and abs(meta["fps"] - 10.0) < 0.01


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import json, sys, time
    from helpers.gym_driver import GymDriver  # tests/ is on PYTHONPATH
    from rlg_hotreload.stream import Recorder

    rec = Recorder(out_dir=sys.argv[1], episodes=1, fps=30.0)
    d = GymDriver([rec])
    d.start(epoch=7)
    try:
        while True:  # a slow simulator: one episode takes ~2 s, Ctrl+C lands mid-episode
            d.step()
            if d.steps == 40:
                print("READY", flush=True)
            time.sleep(0.01)
    except KeyboardInterrupt:
        d.stop()  # the player calls on_stop after Ctrl+C; so does this stand-in
        print(json.dumps({"saved": rec.saved, "steps": d.steps}), flush=True)
    """
)


@pytest.mark.integration
def test_ctrl_c_finalizes_the_mp4(tmp_path):
    out = tmp_path / "videos"
    proc = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT, str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join([REPO, os.path.join(REPO, "tests")])),
        start_new_session=True,  # own process group: we send Ctrl+C to the whole group, like a terminal
    )
    try:
        assert proc.stdout.readline().strip() == "READY"
        os.killpg(proc.pid, signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    result = json.loads(stdout.strip().splitlines()[-1])
    ((path, frames),) = result["saved"]
    assert 40 <= frames == result["steps"] < EPISODE, "stopped mid-episode, every step recorded"
    assert os.path.basename(path) == "pendulum@ep7.mp4"
    assert decoded_frames(path)[0] == frames

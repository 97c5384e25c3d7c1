"""End to end with the real CLI and HotReloadPlayer: stream + record a real checkpoint, reload, Ctrl+C."""

import io
import json
import os
import signal
import time
import urllib.request

from helpers.ckpt_factory import experiment_with_checkpoint, variant_bytes
from helpers.procs import Proc, free_port
from helpers.video import decoded_frames  # noqa: E402
from PIL import Image

from rlg_hotreload.readyfile import wait_ready_file
from rlg_hotreload.stream.client import MjpegClient


def _status(url: str) -> dict:
    with urllib.request.urlopen(url + "status", timeout=10) as r:
        return json.loads(r.read())


def test_real_player_streams_records_reloads_and_stops_on_ctrl_c(trained_run, tmp_path):
    _, files = trained_run
    real = files[0]
    nn = experiment_with_checkpoint(tmp_path, real)
    videos = tmp_path / "videos"
    ready = tmp_path / "stream.json"
    mon = Proc(["config=test_stream", "task=Pendulum-v1", "checkpoint=%s" % (tmp_path / "exp"),
                "reloadInterval=0.3", "printStats=false", "streamPort=%d" % free_port(),
                "record.enabled=true", "record.dir=%s" % videos, "streamReadyFile=%s" % ready],
               str(tmp_path))  # fmt: skip
    try:
        info = wait_ready_file(str(ready), 90, alive=lambda: mon.p.poll() is None)
        assert info is not None, mon.output()[-3000:]
        url = info["url"]
        assert url.startswith("http://127.0.0.1:") and info["port"] == int(url.rsplit(":", 1)[1].strip("/"))
        assert "Streaming at %s" % url in mon.output()  # the human's line names the same URL
        mon.wait_for(r"Loaded .*a\.pth \(epoch 1,", 90)
        c = MjpegClient(url + "stream")
        parts = [p for _, p in zip(range(5), c.parts())]
        assert [p.seq for p in parts] == sorted({p.seq for p in parts})
        for p in parts:
            Image.open(io.BytesIO(p.jpeg)).load()
        st = _status(url)
        assert st["checkpoint"]["epoch"] == 1 and st["checkpoint"]["path"].endswith("a.pth")
        assert st["clients"] == 1

        (nn / "b.pth").write_bytes(variant_bytes(real, 2))
        mon.wait_for(r"Reloaded .*b\.pth \(epoch 2,", 30)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the page polls the same way
            next(c.parts())  # keep watching (frames wanted) while waiting
            st = _status(url)
            if (
                st["reloads"] >= 1
                and st["checkpoint"]["epoch"] == 2
                and st["checkpoints"][0]["episodes"] >= 1
            ):
                break
        assert st["reloads"] >= 1 and st["checkpoint"]["epoch"] == 2
        assert st["checkpoints"][0]["episodes"] >= 1 and st["checkpoints"][0]["mean_reward"] is not None
        w = st["watcher"]  # the watcher's health: alive, checking, loading in the child process
        assert w["alive"] and w["checks"] >= 2 and w["last_check_age_s"] < 5 and w["loader"]["name"] == "process"
        (nn / "c.pth").write_bytes(os.urandom(5000))
        mon.wait_for(r"Skipping .*c\.pth: cannot load", 30)
        w = _status(url)["watcher"]
        assert w["errors"] >= 1 and "c.pth: cannot load" in w["last_error"] and w["alive"]
        c.close()
        assert mon.interrupt(signal.SIGINT, timeout=30) < 30
        assert mon.p.returncode == 0, mon.output()[-3000:]
    finally:
        mon.kill()
    out = mon.output()
    assert "Stream server at %s stopped" % url in out
    mp4s = sorted(videos.glob("*.mp4"))
    assert mp4s, out[-3000:]
    for mp4 in mp4s:  # finished episodes and the one cut by Ctrl+C all decode
        assert decoded_frames(str(mp4))[0] >= 1
    assert any(os.path.basename(str(p)).startswith("a@ep1") for p in mp4s)

"""The one-command demo: training + streaming monitor together; Ctrl+C stops both cleanly."""

import json
import os
import signal
import time
import urllib.request

import psutil
import pytest
from helpers.procs import Proc, free_port

from rlg_hotreload.readyfile import wait_ready_file

pytestmark = pytest.mark.slow  # trains a policy


def test_demo_trains_streams_and_stops_both_on_ctrl_c(tmp_path):
    port = free_port()
    ready = tmp_path / "stream.json"
    demo = Proc(["--task", "Pendulum-v1", "--port", str(port), "--reload-interval", "1", "--max-epochs", "400",
                 "--ready-file", str(ready)], str(tmp_path), module="rlg_hotreload.demo", new_session=True)  # fmt: skip
    try:
        info = wait_ready_file(str(ready), 180, alive=lambda: demo.p.poll() is None)
        assert info is not None, demo.output()[-3000:]
        url = info["url"]
        assert url == "http://127.0.0.1:%d/" % port
        demo.wait_for(r"\[demo\] Open %s" % url, 30)  # and the human is told the same URL
        demo.wait_for(r"\[watch\] .*Reloaded .*Pendulum-v1_.*\(epoch \d+", 180)
        with urllib.request.urlopen(url + "status", timeout=10) as r:
            status = json.load(r)
        assert status["checkpoint"]["epoch"] >= 1 and "Pendulum-v1_" in status["checkpoint"]["path"]
        children = psutil.Process(demo.p.pid).children(recursive=True)
        assert len(children) >= 2  # the training and the monitor process
        os.killpg(demo.p.pid, signal.SIGINT)  # what Ctrl+C in the terminal does
        assert demo.wait(60) == 0, demo.output()[-3000:]
        assert "[demo] stopped." in demo.output()
        assert demo.count(r"\[watch\] .*Summary: \d+ games") == 1
        assert "Traceback" not in demo.output() and "KeyboardInterrupt" not in demo.output()
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, "left running: %s" % alive
    finally:
        if demo.p.poll() is None:
            os.killpg(demo.p.pid, signal.SIGKILL)


def _status(url):
    with urllib.request.urlopen(url + "status", timeout=10) as r:
        return json.load(r)


def test_demo_monitor_keeps_playing_after_training_ends_until_ctrl_c(tmp_path):
    port = free_port()
    ready = tmp_path / "stream.json"
    demo = Proc(["--task", "Pendulum-v1", "--port", str(port), "--reload-interval", "1", "--max-epochs", "15",
                 "--ready-file", str(ready)], str(tmp_path), module="rlg_hotreload.demo", new_session=True)  # fmt: skip
    try:
        info = wait_ready_file(str(ready), 180, alive=lambda: demo.p.poll() is None)
        assert info is not None, demo.output()[-3000:]
        url = info["url"]
        demo.wait_for(r"\[demo\] Training ended \(exit code 0\); the monitor keeps playing", 240)
        demo.wait_for(r"\[watch\] .*(Loaded|Reloaded) .*Pendulum-v1_", 60)
        children = psutil.Process(demo.p.pid).children(recursive=True)  # the monitor (and its loader child)
        roles = [" ".join(c.cmdline()) for c in psutil.Process(demo.p.pid).children()]
        assert len(roles) == 1 and "config=test_stream" in roles[0], "only the monitor is left: %s" % roles
        first = _status(url)
        # the monitor keeps stepping (paced to real time: 20 steps/s for Pendulum) for as long as we look
        deadline = time.monotonic() + 30
        while _status(url)["steps"] < first["steps"] + 20 and time.monotonic() < deadline:
            time.sleep(0.2)  # polling another process's /status: no event to wait on
        later = _status(url)
        assert later["steps"] >= first["steps"] + 20, (first["steps"], later["steps"])
        assert later["checkpoint"]["epoch"] >= 5 and demo.p.poll() is None
        assert later["success_rate"] is None  # Pendulum reports no success
        os.killpg(demo.p.pid, signal.SIGINT)  # Ctrl+C: the demo's process group
        assert demo.wait(60) == 0, demo.output()[-3000:]
        assert demo.count(r"\[watch\] .*Summary: \d+ games") == 1
        assert "Traceback" not in demo.output() and "KeyboardInterrupt" not in demo.output()
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, "left running: %s" % alive
    finally:
        if demo.p.poll() is None:
            os.killpg(demo.p.pid, signal.SIGKILL)

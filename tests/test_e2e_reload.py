"""Two real processes, as a user runs them: rl-games training writes checkpoints, the monitor follows."""

import os
import re
import signal

import pytest
from helpers.procs import REPO, Proc

pytestmark = pytest.mark.slow  # trains a policy

PRESETS = os.path.join(REPO, "cfg")


def test_monitor_follows_a_live_training_run_and_stops_cleanly_on_ctrl_c(tmp_path):
    monitor = Proc(
        ["config=test", "task=Pendulum-v1", "checkpoint=latest", "reloadInterval=0.5",
         "testGamesNum=0", "printStats=false"],
        str(tmp_path),
    )  # fmt: skip
    train = None
    try:
        # Started before training: nothing to play yet -> it waits and says so, never crashes.
        monitor.wait_for(r"Waiting for a checkpoint in latest run", 60)
        train = Proc(["--cfg", os.path.join(PRESETS, "train_headless.yaml"), "task=Pendulum-v1",
                      "maxEpochs=40"], str(tmp_path))  # fmt: skip
        monitor.wait_for(r"Loaded .*Pendulum-v1_\d\d-\d\d-\d\d-\d\d/nn/.*\.pth \(epoch \d+", 120)
        monitor.wait_for(
            r"Reloaded .*\(epoch \d+, frame \d+, best reward -?[\d.]+, file age [\d.]+ s, load \d+ ms\)",
            120,
            count=3,
        )
        assert train.wait(300) == 0, train.output()[-3000:]
        # the final checkpoint of the run (epoch 40) is the one playing at the end
        monitor.wait_for(r"Reloaded .*\(epoch 40,", 60)
        assert monitor.p.poll() is None, "monitor exited on its own"
        assert "Traceback" not in monitor.output()
        elapsed = monitor.interrupt(signal.SIGINT)
        assert monitor.p.returncode == 0, monitor.output()[-3000:]
        assert elapsed < 2.0, "exit took %.2f s" % elapsed
        out = monitor.output()
        assert "Stopping (SIGINT)" in out
        summary = monitor.wait_for(r"Summary: (\d+) games, mean reward (-?[\d.]+|nan), mean length", 1)
        assert int(summary.group(1)) > 0
        assert (
            monitor.count(r"^\[rlg_hotreload\]\s+last_Pendulum|^\[rlg_hotreload\]\s+Pendulum") >= 2
        )  # per-checkpoint rows
    finally:
        monitor.kill()
        if train is not None:
            train.kill()


def test_with_file_events_a_reload_follows_each_save_whatever_reload_interval_is(tmp_path):
    """reloadInterval=30 (the default): file events, not the timer, bring each new checkpoint in."""
    monitor = Proc(["config=test", "task=Pendulum-v1", "checkpoint=latest", "reloadInterval=30", "watch=events",
                    "testGamesNum=0", "printStats=false"], str(tmp_path))  # fmt: skip
    train = None
    try:
        monitor.wait_for(r"Waiting for a checkpoint in latest run", 60)
        train = Proc(["--cfg", os.path.join(PRESETS, "train_headless.yaml"), "task=Pendulum-v1",
                      "maxEpochs=8"], str(tmp_path))  # fmt: skip
        monitor.wait_for(r"Loaded .*Pendulum-v1_\d\d-\d\d-\d\d-\d\d/nn/.*\.pth \(epoch \d+", 120)
        assert train.wait(240) == 0, train.output()[-3000:]
        ages = [float(a) for a in re.findall(r"Reloaded .*file age ([\d.]+) s", monitor.output())]
        # a short run saves every few seconds: the 30 s timer alone would bring one file at most, ~15 s old
        assert len(ages) >= 3 and max(ages) < 5.0, (ages, monitor.output()[-3000:])
        assert "Traceback" not in monitor.output()
    finally:
        monitor.kill()
        if train is not None:
            train.kill()

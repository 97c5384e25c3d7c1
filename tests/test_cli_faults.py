"""The real CLI against the faults of issue 9: another network, Ctrl+C from a terminal, SIGHUP.

A terminal's Ctrl+C signals the whole foreground process group; the test does exactly that
(``start_new_session`` + ``killpg``), with the loader child hung in the middle of a load.
"""

import os
import signal
import time

import psutil
import pytest
from helpers.ckpt_factory import experiment_with_checkpoint, other_shape_bytes, variant_bytes
from helpers.procs import Proc, run_cli

PLAY = ["config=test", "task=Pendulum-v1", "printStats=false"]


def _loader_child(pid, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in psutil.Process(pid).children(recursive=True):
            try:
                if "rlg_hotreload.reload.child" in " ".join(c.cmdline()):
                    return c
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.1)
    raise AssertionError("no loader child process")


def test_a_named_file_of_another_network_exits_2_with_one_line(trained_run, tmp_path):
    other = tmp_path / "other.pth"
    other.write_bytes(other_shape_bytes(trained_run[1][0]))
    r = run_cli(PLAY + ["checkpoint=%s" % other], str(tmp_path), timeout=180)
    assert r.returncode == 2, r.stdout[-2000:] + r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: train.checkpoint=%s: network does not match: " % other), lines
    assert "Traceback" not in r.stdout + r.stderr


def test_a_folder_without_a_fitting_file_says_so_and_keeps_waiting(trained_run, tmp_path):
    nn = tmp_path / "exp" / "nn"
    nn.mkdir(parents=True)
    (nn / "other.pth").write_bytes(other_shape_bytes(trained_run[1][0]))
    mon = Proc(PLAY + ["checkpoint=%s" % (tmp_path / "exp"), "reloadInterval=0.3", "testGamesNum=2"], str(tmp_path))
    try:
        mon.wait_for(r"Skipping .*other\.pth: network does not match: .*; nothing is playing yet: waiting for a "
                     r"checkpoint that fits this network", 120)  # fmt: skip
        (nn / "good.pth").write_bytes(variant_bytes(trained_run[1][0], 5))  # the right one arrives later
        mon.wait_for(r"Loaded .*good\.pth \(epoch 5,", 60)
        assert mon.wait(120) == 0  # testGamesNum=2: plays its two games and ends
        assert "still playing" not in mon.output() and "Traceback" not in mon.output()
    finally:
        mon.kill()


def test_ctrl_c_to_the_process_group_mid_load_exits_0_within_2_s(trained_run, tmp_path):
    real = trained_run[1][0]
    nn = experiment_with_checkpoint(tmp_path, real)
    mon = Proc(PLAY + ["checkpoint=%s" % (tmp_path / "exp"), "reloadInterval=0.2"], str(tmp_path), new_session=True)
    try:
        mon.wait_for(r"Loaded .*a\.pth \(epoch 1,", 120)
        child = _loader_child(mon.p.pid)
        child.suspend()  # the loader hangs in the middle of the next load (a dead NFS server, a huge file)
        (nn / "b.pth").write_bytes(variant_bytes(real, 2))
        time.sleep(1.0)  # several checks: the request for b.pth is in flight (no log line marks it)
        t0 = time.monotonic()
        os.killpg(os.getpgid(mon.p.pid), signal.SIGINT)  # what a terminal does on Ctrl+C
        rc = mon.wait(10)
        elapsed = time.monotonic() - t0
        out = mon.output()
        assert rc == 0, out[-3000:]
        assert elapsed <= 2.0, "exit took %.2f s" % elapsed
        assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
        assert "Stopping (SIGINT)" in out and "Summary:" in out
        assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, "the loader child outlived the player"
    finally:
        mon.kill()


def test_sighup_ends_like_sigterm_with_a_summary(trained_run, tmp_path):
    experiment_with_checkpoint(tmp_path, trained_run[1][0])
    mon = Proc(PLAY + ["checkpoint=%s" % (tmp_path / "exp")], str(tmp_path))
    try:
        mon.wait_for(r"Loaded .*a\.pth \(epoch 1,", 120)
        assert mon.interrupt(signal.SIGHUP) < 5.0
        assert mon.p.returncode == 0
        out = mon.output()
        assert "Stopping (SIGHUP)" in out and "Summary:" in out and "watcher:" in out
    finally:
        mon.kill()


@pytest.mark.integration
def test_a_fifo_named_as_the_checkpoint_never_hangs_the_start(tmp_path):
    """The first load runs off the player thread like every other: a FIFO is refused, Ctrl+C still works."""
    fifo = tmp_path / "x.pth"
    os.mkfifo(fifo)  # nobody ever writes into it: a plain open() + read() blocks forever
    mon = Proc(PLAY + ["checkpoint=%s" % fifo, "reloadInterval=0.3"], str(tmp_path))
    try:
        mon.wait_for(r"Skipping .*x\.pth: not a regular file \(a FIFO\); nothing is playing yet", 120)
        assert mon.interrupt(signal.SIGINT) < 2.0
        assert mon.p.returncode == 0 and "Traceback" not in mon.output()
    finally:
        mon.kill()

"""The watcher thread against a hostile filesystem (issue 9), with real rl-games checkpoints.

Asserted for each fault: the thread stays alive, says what is wrong once, keeps checking with backoff,
reports it in ``health()``, and loads the right file once the fault is gone.
"""

import os
import signal
import threading
import time

import pytest
from helpers.ckpt_factory import variant_bytes

from rlg_hotreload.reload import (
    CheckpointSource,
    CheckpointWatcher,
    load_weights_only,
    model_state,
    stat_version,
)

WAIT = 20.0


def _reference(path):
    with open(path, "rb") as f:
        return model_state(load_weights_only(f.read()))


@pytest.fixture
def lines(rlg_log):
    return rlg_log


def _watcher_on_one_file(checkpoint_copy, tmp_path):
    """A started process-loader watcher on a run folder holding one checkpoint (epoch 1)."""
    nn = tmp_path / "run" / "nn"
    nn.mkdir(parents=True)
    (nn / "a.pth").write_bytes(variant_bytes(checkpoint_copy, 1))
    w = CheckpointWatcher(CheckpointSource(str(tmp_path / "run")), _reference(checkpoint_copy), interval=0.05,
                          settle=0.0, loader="process")  # fmt: skip
    w.start()
    return w


def _until(predicate, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.05)


def _taken(w, timeout=WAIT):
    assert w.wait(timeout), "no checkpoint was prepared"
    return w.take()


def test_watcher_survives_a_symlink_loop_folder_and_recovers(checkpoint_copy, tmp_path, lines):
    run = tmp_path / "run"
    os.symlink(str(run), str(run))  # the folder itself is a loop: listdir raises ELOOP
    w = CheckpointWatcher(CheckpointSource(str(run)), _reference(checkpoint_copy), interval=0.05, settle=0.0)
    w.start()
    try:
        _until(lambda: w.health()["errors"] >= 3, "three failed checks")
        h = w.health()
        assert h["alive"] and "Too many levels of symbolic links" in h["last_error"]
        assert h["last_check_age_s"] is not None or h["checks"] == 0
        assert lines.count("Cannot check %s" % run) == 1, lines.lines  # logged once per cause
        os.unlink(run)
        (run / "nn").mkdir(parents=True)
        (run / "nn" / "a.pth").write_bytes(variant_bytes(checkpoint_copy, 3))
        assert _taken(w).epoch == 3
        assert lines.count("again (after") == 1
    finally:
        w.stop()
    assert not w.health()["alive"]


def test_a_bad_entry_never_hides_the_good_ones(checkpoint_copy, tmp_path, lines):
    nn = tmp_path / "run" / "nn"
    nn.mkdir(parents=True)
    os.symlink("loop.pth", str(nn / "loop.pth"))  # a symlink loop named like a checkpoint
    os.mkfifo(str(nn / "x.pth"))  # a FIFO where a .pth is expected: never opened for reading
    os.symlink("/dev/zero", str(nn / "zero.pth"))
    old = time.time() - 60
    for name in ("x.pth",):
        os.utime(str(nn / name), (old, old))
    (nn / "a.pth").write_bytes(variant_bytes(checkpoint_copy, 4))
    os.utime(str(nn / "a.pth"), (1_000_000, 1_000_000))  # the oldest of all (1970): tried last
    w = CheckpointWatcher(CheckpointSource(str(tmp_path / "run")), _reference(checkpoint_copy), interval=0.05, settle=0.0)
    w.start()
    try:
        assert _taken(w).epoch == 4
        for _ in range(2):  # more checks: still one line per bad entry
            n = w.health()["checks"]
            _until(lambda n=n: w.health()["checks"] > n + 2, "more checks")
    finally:
        w.stop()
    assert lines.count("Skipping %s: Too many levels of symbolic links" % (nn / "loop.pth")) == 1, lines.lines
    assert lines.count("Skipping %s: not a regular file (a FIFO)" % (nn / "x.pth")) == 1, lines.lines
    assert lines.count("Skipping %s: not a regular file (a character device)" % (nn / "zero.pth")) == 1, lines.lines


def test_future_mtime_is_treated_as_now_and_blocks_nothing(checkpoint_copy, tmp_path, lines):
    nn = tmp_path / "run" / "nn"
    nn.mkdir(parents=True)
    future = nn / "future.pth"
    future.write_bytes(variant_bytes(checkpoint_copy, 1))
    ahead = time.time() + 3600  # written on a machine whose clock is an hour ahead
    os.utime(str(future), (ahead, ahead))
    w = CheckpointWatcher(CheckpointSource(str(tmp_path / "run")), _reference(checkpoint_copy), interval=0.05, settle=0.0)
    w.start()
    try:
        assert _taken(w).epoch == 1
        later = nn / "later.pth"
        later.write_bytes(variant_bytes(checkpoint_copy, 2))
        assert _taken(w).epoch == 2, "a file dated in the future blocked a later checkpoint"
        copied = nn / "copied.pth"  # `rsync -a` keeps an old mtime: first seen later, so newer
        copied.write_bytes(variant_bytes(checkpoint_copy, 3))
        os.utime(str(copied), (1_000_000, 1_000_000))
        assert _taken(w).epoch == 3
    finally:
        w.stop()
    warned = [line for line in lines.lines if "in the future" in line]
    assert len(warned) == 1 and "future.pth" in warned[0] and "treating it as written now" in warned[0]


def test_a_loader_killed_mid_load_is_retried_not_rejected(checkpoint_copy, tmp_path, lines):
    w = _watcher_on_one_file(checkpoint_copy, tmp_path)
    nn = tmp_path / "run" / "nn"
    try:
        assert _taken(w, 60).epoch == 1
        pid = w.loader.pid
        os.kill(pid, signal.SIGSTOP)  # the child hangs (a dead NFS server) ...
        (nn / "b.pth").write_bytes(variant_bytes(checkpoint_copy, 2))
        _until(lambda: w.health()["loading"] == str(nn / "b.pth"), "the load of b.pth to start")
        os.kill(pid, signal.SIGKILL)  # ... and is killed mid-load
        assert _taken(w, 60).epoch == 2, "the file was rejected for a failure of the loader"
    finally:
        w.stop()
    assert lines.count("Cannot load %s yet: loader process killed by SIGKILL; retrying" % (nn / "b.pth")) == 1
    assert not any("Skipping" in line or "None" in line for line in lines.lines), lines.lines


def test_pauses_of_a_slow_writer_give_no_skipping_warning(checkpoint_copy, tmp_path, lines):
    nn = tmp_path / "run" / "nn"
    nn.mkdir(parents=True)
    w = CheckpointWatcher(CheckpointSource(str(tmp_path / "run")), _reference(checkpoint_copy), interval=0.05)
    w.start()
    try:
        data = variant_bytes(checkpoint_copy, 7)
        with open(nn / "slow.pth", "wb") as f:  # four chunks, 0.3 s apart (each pause > the 0.1 s settle)
            for i in range(4):
                f.write(data[i * len(data) // 4 : (i + 1) * len(data) // 4])
                f.flush()
                if i < 3:
                    n = w.health()["checks"]
                    _until(lambda n=n: w.health()["checks"] >= n + 3, "checks during the pause")
        assert _taken(w).epoch == 7
    finally:
        w.stop()
    assert not [line for line in lines.lines if "Skipping" in line], lines.lines


def test_version_key_includes_ctime(checkpoint_copy):
    before = stat_version(str(checkpoint_copy))
    time.sleep(0.01)  # ctime has ns resolution, but coarse clocks tick every few ms
    os.chmod(str(checkpoint_copy), 0o600)
    after = stat_version(str(checkpoint_copy))
    assert after.ctime_ns != before.ctime_ns and after != before


def test_stop_is_bounded_while_a_load_hangs(checkpoint_copy, tmp_path):
    w = _watcher_on_one_file(checkpoint_copy, tmp_path)
    nn = tmp_path / "run" / "nn"
    assert _taken(w, 60).epoch == 1
    os.kill(w.loader.pid, signal.SIGSTOP)
    (nn / "b.pth").write_bytes(variant_bytes(checkpoint_copy, 2))
    _until(lambda: w.health()["loading"] is not None, "a load to start")
    t0 = time.monotonic()
    w.stop()
    assert time.monotonic() - t0 < 2.0
    assert not any(t.name == "rlg-hotreload-watcher" and t.is_alive() for t in threading.enumerate())

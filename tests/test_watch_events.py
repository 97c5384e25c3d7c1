"""Event-driven reloads (issue 12): file events wake the watcher, the timer stays as a safety net.

Real rl-games checkpoints, the real loader child, real inotify events. With ``reloadInterval`` 30 a
reload seen within seconds of the write can only come from a file event (the next timer check is ~30 s
away); waits are bounded, no test asserts a speed (that is benchmarks/reload_latency.py's job).
"""

import errno
import os
import shutil
import time

import pytest
from helpers.ckpt_factory import variant_bytes

from rlg_hotreload import config
from rlg_hotreload.reload import (
    CheckpointSource,
    CheckpointWatcher,
    fstype,
    load_weights_only,
    model_state,
)

WAIT = 20.0
EVENT_WAIT = 10.0  # well inside the 30 s timer: a reload within this bound came from a file event


def _reference(path):
    with open(path, "rb") as f:
        return model_state(load_weights_only(f.read()))


def _watcher(checkpoint_copy, spec, interval=30.0, watch="events", train_dir="runs", loader="process"):
    w = CheckpointWatcher(CheckpointSource(str(spec), str(train_dir)), _reference(checkpoint_copy),
                          interval=interval, loader=loader, watch=watch)  # fmt: skip
    w.start()
    return w


def _taken(w, timeout=WAIT):
    assert w.wait(timeout), "no checkpoint was prepared within %.0f s" % timeout
    return w.take()


def _rename_into_place(path, data):
    tmp = path.parent / (".%s.tmp" % path.name)  # rsync / atomic writers: hidden temp file, then rename
    tmp.write_bytes(data)
    os.replace(str(tmp), str(path))


def _run_with_a(checkpoint_copy, tmp_path):
    """``<tmp>/run/nn/a.pth`` (epoch 1); returns the ``nn`` folder."""
    nn = tmp_path / "run" / "nn"
    nn.mkdir(parents=True)
    (nn / "a.pth").write_bytes(variant_bytes(checkpoint_copy, 1))
    return nn


def _loads_a_then_renamed_b(w, nn, checkpoint_copy):
    """The watcher plays a.pth (epoch 1), then b.pth renamed into place (epoch 2)."""
    assert _taken(w, 60).epoch == 1
    _rename_into_place(nn / "b.pth", variant_bytes(checkpoint_copy, 2))
    assert _taken(w).epoch == 2


def _first_load(w, epoch):
    """The first checkpoint (found by the first check), then the watcher waits on its 30 s timer."""
    assert _taken(w, 60).epoch == epoch
    deadline = time.monotonic() + WAIT
    while w.health()["watch"]["watching"] == [] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.health()["watch"]["using"] == "events", w.health()


def test_rename_and_in_place_rewrite_are_picked_up_at_once_with_interval_30(checkpoint_copy, tmp_path, rlg_log):
    nn = _run_with_a(checkpoint_copy, tmp_path)
    w = _watcher(checkpoint_copy, tmp_path / "run")
    try:
        _first_load(w, 1)
        checks = w.health()["checks"]
        _rename_into_place(nn / "b.pth", variant_bytes(checkpoint_copy, 2))
        assert _taken(w, EVENT_WAIT).epoch == 2
        with open(nn / "b.pth", "wb") as f:  # rl-games: torch.save to the final path, in place
            f.write(variant_bytes(checkpoint_copy, 3))
        assert _taken(w, EVENT_WAIT).epoch == 3
        assert w.health()["checks"] - checks <= 6, "checks on a timer, not on events: %s" % w.health()
    finally:
        w.stop()
    assert not [line for line in rlg_log.lines if "Skipping" in line or "Cannot" in line], rlg_log.lines


def test_a_file_closed_half_written_is_never_played(checkpoint_copy, tmp_path, rlg_log):
    """A writer that closes between two halves makes a close event for a partial file: validation refuses
    it quietly (it is young), and the complete file, closed later, is the one played."""
    nn = _run_with_a(checkpoint_copy, tmp_path)
    w = _watcher(checkpoint_copy, tmp_path / "run")
    try:
        _first_load(w, 1)
        data = variant_bytes(checkpoint_copy, 5)
        with open(nn / "b.pth", "wb") as f:
            f.write(data[: len(data) // 2])
        assert not w.wait(1.0), "a half-written file was prepared for the player"
        with open(nn / "b.pth", "ab") as f:
            f.write(data[len(data) // 2 :])
        loaded = _taken(w, EVENT_WAIT)
        assert loaded.epoch == 5 and loaded.version.size == len(data)
    finally:
        w.stop()
    assert not [line for line in rlg_log.lines if "Skipping" in line], rlg_log.lines


def test_a_chmod_after_the_load_does_not_reload_the_same_weights(checkpoint_copy, tmp_path):
    """The event brings the file in at once; a chmod right after changes only its ctime: not a new file."""
    nn = _run_with_a(checkpoint_copy, tmp_path)
    w = _watcher(checkpoint_copy, tmp_path / "run", interval=0.05)
    try:
        _loads_a_then_renamed_b(w, nn, checkpoint_copy)
        os.chmod(str(nn / "b.pth"), 0o600)  # a sync tool fixing permissions
        n = w.health()["checks"]
        assert not w.wait(1.0), "the same weights were loaded again"
        assert w.health()["checks"] > n + 3  # the timer did look at the changed file meanwhile
    finally:
        w.stop()


def test_a_new_run_folder_is_followed_by_events(checkpoint_copy, tmp_path):
    """`latest` without a link: a run folder created after start, its nn/ and its first file."""
    runs = tmp_path / "runs"
    (runs / "old" / "nn").mkdir(parents=True)
    (runs / "old" / "nn" / "a.pth").write_bytes(variant_bytes(checkpoint_copy, 1))
    w = _watcher(checkpoint_copy, "latest", train_dir=runs)
    try:
        _first_load(w, 1)
        (runs / "new").mkdir()
        (runs / "new" / "nn").mkdir()
        with open(runs / "new" / "nn" / "x.pth", "wb") as f:
            f.write(variant_bytes(checkpoint_copy, 7))
        loaded = _taken(w, EVENT_WAIT)
        assert loaded.epoch == 7 and "/new/nn/" in loaded.version.path
    finally:
        w.stop()


def test_a_folder_that_does_not_exist_yet_is_watched_once_it_appears(checkpoint_copy, tmp_path):
    run = tmp_path / "later" / "run"
    w = _watcher(checkpoint_copy, run)
    try:
        assert w.wait_first_check(WAIT) and not w.ready
        (run / "nn").mkdir(parents=True)
        _rename_into_place(run / "nn" / "a.pth", variant_bytes(checkpoint_copy, 1))
        _first_load(w, 1)
        assert str(run / "nn") in w.health()["watch"]["watching"]
        _rename_into_place(run / "nn" / "b.pth", variant_bytes(checkpoint_copy, 2))
        assert _taken(w, EVENT_WAIT).epoch == 2
    finally:
        w.stop()


def test_a_folder_deleted_and_made_again_is_watched_again(checkpoint_copy, tmp_path):
    nn = _run_with_a(checkpoint_copy, tmp_path)
    w = _watcher(checkpoint_copy, tmp_path / "run")
    try:
        _first_load(w, 1)
        shutil.rmtree(str(tmp_path / "run"))  # a user cleans up, training starts again in the same place
        deadline = time.monotonic() + WAIT
        while str(nn) in w.health()["watch"]["watching"]:  # the watcher noticed (the parent's event)
            assert time.monotonic() < deadline, w.health()
            time.sleep(0.05)
        nn.mkdir(parents=True)
        _rename_into_place(nn / "b.pth", variant_bytes(checkpoint_copy, 2))
        assert _taken(w, EVENT_WAIT).epoch == 2
        assert w.health()["watch"]["using"] == "events"
    finally:
        w.stop()


def test_poll_mode_starts_no_observer_and_still_reloads(checkpoint_copy, tmp_path):
    nn = _run_with_a(checkpoint_copy, tmp_path)
    w = _watcher(checkpoint_copy, tmp_path / "run", interval=0.05, watch="poll")
    try:
        _loads_a_then_renamed_b(w, nn, checkpoint_copy)
        h = w.health()["watch"]
        assert h["using"] == "poll" and h["watching"] == [] and w.events._observer is None
    finally:
        w.stop()


def test_inotify_watch_limit_falls_back_to_the_timer_with_one_warning(checkpoint_copy, tmp_path, rlg_log, monkeypatch):
    from watchdog.observers.api import BaseObserver

    def no_watch(*a, **k):
        raise OSError(errno.ENOSPC, "inotify watch limit reached")

    monkeypatch.setattr(BaseObserver, "schedule", no_watch)
    nn = _run_with_a(checkpoint_copy, tmp_path)
    w = _watcher(checkpoint_copy, tmp_path / "run", interval=0.05)
    try:
        _loads_a_then_renamed_b(w, nn, checkpoint_copy)
        h = w.health()
        assert h["alive"] and h["watch"]["using"] == "poll" and "watch limit" in h["watch"]["failed"]
    finally:
        w.stop()
    warned = [line for line in rlg_log.lines if "File events unavailable" in line]
    assert len(warned) == 1 and "max_user_watches" in warned[0], rlg_log.lines


def test_auto_mode_polls_a_folder_on_a_network_filesystem(checkpoint_copy, tmp_path, rlg_log, monkeypatch):
    mounts = tmp_path / "mounts"
    mounts.write_text("server:/export %s nfs4 rw,relatime 0 0\n" % tmp_path)
    monkeypatch.setattr(fstype, "MOUNTS", str(mounts))
    nn = _run_with_a(checkpoint_copy, tmp_path)
    w = _watcher(checkpoint_copy, tmp_path / "run", interval=0.05, watch="auto")
    try:
        _loads_a_then_renamed_b(w, nn, checkpoint_copy)
        h = w.health()["watch"]
        assert h["watching"] == [] and h["polled"] == {str(tmp_path / "run"): "nfs4", str(nn): "nfs4"}, h
    finally:
        w.stop()
    assert rlg_log.count("is on nfs4 (no file events from other machines)") == 2, rlg_log.lines


@pytest.mark.parametrize(
    "kind, mount, path, network",
    [
        ("nfs4", "nfs", "nfs/runs/a", True),  # a folder that does not exist yet: its mount decides
        ("fuse.sshfs", "ssh", "ssh", True),
        ("cifs", "smb", "smb/x", True),
        ("fuseblk", "usb", "usb/x", False),  # ntfs-3g on a local disk
        ("nfs4", "nfs", "nfsish/x", False),  # a prefix of the name is not a mount
        ("nfs4", "with space", "with space/x", True),  # /proc/mounts writes a space as \040
    ],
)
def test_filesystem_type_from_the_mount_table(tmp_path, kind, mount, path, network):
    (tmp_path / mount).mkdir()
    (tmp_path / "nfsish").mkdir(exist_ok=True)
    mounts = tmp_path / "mounts"
    point = str(tmp_path / mount).replace(" ", "\\040")
    mounts.write_text("/dev/vda / ext4 rw 0 0\nsrv:/x %s %s rw 0 0\n" % (point, kind))
    assert fstype.is_network_fs(fstype.fs_type(str(tmp_path / path), str(mounts))) is network


def test_watch_key_is_validated_up_front():
    with pytest.raises(config.ConfigError, match=r"train.watch=inotify: allowed values are auto, events, poll"):
        config.load(None, ["watch=inotify"])
    assert config.load(None, ["watch=poll"])["train"]["watch"] == "poll"

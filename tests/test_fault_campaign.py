"""Fault campaign: hundreds of mixed-style checkpoint writes while a real HotReloadPlayer plays (issue 5.2).

A real player (stock rl-games Runner, Pendulum-v1, child-process loader, reloadInterval 0.05, swap
between steps) runs on a thread. A seeded writer does >= 300 writes into the watched folder in bursts
of 1-3, in the styles real setups produce: rl-games' in-place rewrite (also slow: half, pause, rest),
rsync's hidden temp file + rename, a truncated copy, random bytes, a checkpoint of another network, a
malicious pickle, plus deletions; and the faults of issue 9: NaN weights (a diverged run), a symlink
loop, a FIFO named like a checkpoint, a file dated an hour in the future (clock skew), a file that is
unreadable for a while, and the loader child killed in the middle of a load. After each burst the
writer waits (bounded) for the watcher to settle on it: the reload of the burst's last valid version,
or the warning about its last bad file.

Asserted: the player thread never died; every checkpoint swapped in is a valid version written, with
exactly that version's weights, in increasing epoch order; the malicious pickle never ran; no file of
ours is left in /dev/shm; and at the end the weights playing equal those of the newest valid file.
"""

import collections
import glob
import io
import logging
import os
import random
import signal
import stat
import threading
import time

import torch
from helpers.ckpt_factory import evil_bytes, other_shape_bytes, variant_bytes
from helpers.players import make_player

from rlg_hotreload import PlayerCallback

MIN_WRITES = 300
WAIT = 20.0  # bound on any single wait (generous for a loaded 2-core CI box)
VALID = ("inplace", "inplace_slow", "rsync")
INVALID = ("truncated", "garbage", "other_shape", "evil", "nan", "fifo", "symlink_loop")
ODD_VALID = ("future_mtime", "unreadable")  # valid content, odd metadata
KILL_P = 0.05  # chance that a valid write is loaded by a loader child that gets killed mid-load


class Events(PlayerCallback, logging.Handler):
    """Reloads (player thread) and 'Skipping <path>' warnings (watcher thread), waitable."""

    def __init__(self, weight_key, base_weight):
        logging.Handler.__init__(self, level=logging.WARNING)
        self.cond = threading.Condition()
        self.reloads = []  # (epoch, path)
        self.skips = []  # basenames
        self.torn = []  # epochs whose weights did not match their label at swap time
        self.key, self.base = weight_key, base_weight

    def on_reload(self, player, info):
        # runs right after the swap, on the player thread: the weights must be that version's exactly
        w = player.model.state_dict()[self.key]
        expected = self.base + 0.001 * (info.epoch or 0)
        if not torch.allclose(w, expected, atol=1e-6, rtol=0):
            self.torn.append(info.epoch)
        with self.cond:
            self.reloads.append((info.epoch, info.path))
            self.cond.notify_all()

    def count_skips(self, name):
        with self.cond:
            return self.skips.count(name)

    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("Cannot load "):
            with self.cond:
                self.skips.append("transient:" + os.path.basename(msg.split(" ", 3)[2]))
                self.cond.notify_all()
        if msg.startswith("Skipping "):
            with self.cond:
                self.skips.append(os.path.basename(msg.split(" ", 2)[1].rstrip(":")))
                self.cond.notify_all()

    def wait(self, predicate, what, player_thread):
        deadline = time.monotonic() + WAIT
        with self.cond:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, "timed out waiting for %s; reloads %s, skips %s" % (
                    what, self.reloads[-3:], self.skips[-3:])  # fmt: skip
                assert player_thread.is_alive(), "player thread ended while waiting for %s" % what
                self.cond.wait(min(left, 0.5))


def _plain(key):
    """A state-dict key without torch.compile's prefix (training compiles by default)."""
    return key[len("_orig_mod.") :] if key.startswith("_orig_mod.") else key


def _nan_bytes(real, label):
    ckpt = torch.load(real, weights_only=False)
    ckpt["epoch"] = label
    w = next(v for v in ckpt["model"].values() if v.is_floating_point() and v.dim() == 2)
    w[0, 0] = float("nan")  # what a diverged run writes
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return buf.getvalue()


def _clear_special(path):
    """A FIFO or symlink at ``path`` is replaced, never written through (a FIFO would block the writer)."""
    if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
        os.unlink(path)


def _shm_files():
    return set(glob.glob("/dev/shm/rlg-hotreload-*"))


def _bad_bytes(style, real, label, other, evil, rng):
    if style == "nan":
        return _nan_bytes(real, label)
    if style == "truncated":
        good = variant_bytes(real, label)  # an epoch no valid write has: named if ever loaded
        return good[: rng.randint(1, len(good) - 1)]
    if style == "garbage":
        return os.urandom(rng.randint(100, 60000))
    return other if style == "other_shape" else evil


def _write(path, data, style, rng):
    _clear_special(path)
    if style in ("fifo", "symlink_loop") and os.path.lexists(path):
        os.unlink(path)  # a sync tool replacing the file with something else
    if style == "fifo":
        os.mkfifo(path)
    elif style == "symlink_loop":
        os.symlink(path.name, path)
    elif style == "future_mtime":  # written on a machine whose clock is an hour ahead, synced by rsync
        tmp = path.parent / (".%s.%06x" % (path.name, rng.randrange(1 << 24)))
        tmp.write_bytes(data)
        ahead = time.time() + 3600
        os.utime(tmp, (ahead, ahead))
        os.replace(tmp, path)
    elif style == "rsync":
        tmp = path.parent / (".%s.%06x" % (path.name, rng.randrange(1 << 24)))
        tmp.write_bytes(data)
        os.replace(tmp, path)
    elif style == "inplace_slow":
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])
            f.flush()
            time.sleep(rng.uniform(0.02, 0.2))  # the fault itself: a slow writer (sometimes > settle)
            f.write(data[len(data) // 2 :])
    else:
        with open(path, "wb") as f:
            f.write(data)


def _write_while_loader_dies(player, path, data, rng, player_thread):
    """The loader child hangs, the file lands, its load starts, the child is killed: retried, then loaded."""
    pid = player.watcher.loader.pid
    if pid is None:
        _write(path, data, "rsync", rng)
        return
    os.kill(pid, signal.SIGSTOP)
    _write(path, data, "rsync", rng)
    deadline = time.monotonic() + WAIT
    while player.watcher.health()["loading"] is None:
        assert time.monotonic() < deadline and player_thread.is_alive(), "no load started"
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)


def _write_unreadable(path, data, rng, ev, player_thread):
    """Written with mode 000 (a sync tool's permissions, a wrong umask), made readable after a failed try."""
    _write(path, data, "rsync", rng)
    before = ev.count_skips("transient:" + path.name)
    os.chmod(path, 0)
    if os.geteuid() != 0:  # root reads it anyway: then it simply loads
        ev.wait(lambda: ev.count_skips("transient:" + path.name) > before, "a retry of %s" % path.name, player_thread)
    os.chmod(path, 0o644)


def test_fault_campaign(trained_run, tmp_path):
    _, files = trained_run
    real = files[-1]
    base_model = torch.load(real, weights_only=False)["model"]
    # the tensor variant_bytes nudges by 0.001 * epoch: its value names the version playing
    nudged = next(k for k, v in base_model.items() if v.is_floating_point() and v.dim() == 2)
    key = _plain(nudged)
    nn = tmp_path / "exp" / "nn"
    nn.mkdir(parents=True)
    marker = tmp_path / "pwned"
    evil, other = evil_bytes(str(marker)), other_shape_bytes(real)
    epoch = 1
    (nn / "Pendulum.pth").write_bytes(variant_bytes(real, epoch))

    ev = Events(key, base_model[nudged].float())
    log = logging.getLogger("rlg_hotreload")
    log.addHandler(ev)
    player = make_player(tmp_path, callbacks=[ev], reloadInterval=0.05, swapAt="step")
    errors = []

    def play():
        try:
            player.run()
        except BaseException as e:  # noqa: BLE001 - the assertion below reports it
            errors.append(e)

    player.restore(str(tmp_path / "exp"))
    t = threading.Thread(target=play, name="campaign-player", daemon=True)
    t.start()
    rng = random.Random(5)
    valid_epochs = {epoch}
    newest_valid = (nn / "Pendulum.pth", variant_bytes(real, epoch))
    names = ["Pendulum.pth"] + ["last_Pendulum_ep_%d.pth" % i for i in range(6)]
    writes = deletions = 0
    used = collections.Counter()
    shm_before = _shm_files()
    try:
        ev.wait(lambda: ev.reloads, "the first checkpoint", t)
        while writes < MIN_WRITES:
            final = None  # what the burst's last operation should make the watcher do
            for name in rng.sample(names, rng.randint(1, 3)):  # one path at most once per burst
                path = nn / name
                # File times tick once per jiffy (~4 ms): two writes within one tick are equally new, and
                # nobody can tell which is the newest. Real checkpoints are seconds apart.
                time.sleep(0.01)
                if rng.random() < 0.08 and os.path.lexists(path):
                    path.unlink()  # a sync tool deletes (sometimes the file playing now)
                    deletions += 1
                    final = None
                    continue
                style = rng.choice(VALID + VALID + INVALID + ODD_VALID)
                used[style] += 1
                if style in VALID + ODD_VALID:
                    epoch += 1
                    data = variant_bytes(real, epoch)
                    if rng.random() < KILL_P:
                        _write_while_loader_dies(player, path, data, rng, t)
                        used["loader_killed"] += 1
                    elif style == "unreadable":
                        _write_unreadable(path, data, rng, ev, t)
                    else:
                        _write(path, data, style, rng)
                    valid_epochs.add(epoch)
                    newest_valid, final = (path, data), ("epoch", epoch)
                else:
                    was_loop = style == "symlink_loop" and os.path.islink(path)
                    data = _bad_bytes(style, real, 100000 + writes, other, evil, rng)
                    final = None if was_loop else ("skip", name, ev.count_skips(name))
                    _write(path, data, style if style in ("fifo", "symlink_loop") else rng.choice(("inplace", "rsync")), rng)
                writes += 1
            if final is not None and final[0] == "epoch":
                ev.wait(lambda e=final[1]: any(x == e for x, _ in ev.reloads), "epoch %d" % final[1], t)
            elif final is not None:  # the newest file is bad: wait for its warning
                ev.wait(lambda f=final: ev.skips.count(f[1]) > f[2], "a warning about %s" % final[1], t)
        # the last word: one more valid version, rsync-style, under a new name
        epoch += 1
        last_data = variant_bytes(real, epoch)
        _write(nn / "final.pth", last_data, "rsync", rng)
        valid_epochs.add(epoch)
        newest_valid = (nn / "final.pth", last_data)
        ev.wait(lambda: any(e == epoch for e, _ in ev.reloads), "the final epoch %d" % epoch, t)
        assert t.is_alive() and not errors, "player died: %r" % errors
    finally:
        player.request_stop()
        t.join(WAIT)
        log.removeHandler(ev)
    assert not t.is_alive(), "player did not stop"
    assert not errors, "player raised %r" % errors
    assert writes >= MIN_WRITES and deletions > 0
    assert all(used[s] >= 10 for s in VALID), used  # every style really was exercised
    assert all(used[s] >= 5 for s in INVALID + ODD_VALID) and used["loader_killed"] >= 3, used
    assert _shm_files() == shm_before, "files left in /dev/shm"
    loaded = [e for e, _ in ev.reloads]
    assert set(loaded) <= valid_epochs, "loaded a version no valid write produced: %s" % (
        sorted(set(loaded) - valid_epochs))  # fmt: skip
    assert loaded == sorted(set(loaded)), "reloads went backwards or repeated: %s" % loaded
    assert not ev.torn, "weights did not match the version's label at swap: %s" % ev.torn
    assert not marker.exists(), "the malicious pickle ran"
    assert len(ev.skips) > 50, "too few bad files were examined: %d" % len(ev.skips)
    path, data = newest_valid
    assert path.read_bytes() == data
    expected = {_plain(k): v for k, v in torch.load(path, weights_only=False)["model"].items()}
    playing = player.model.state_dict()
    assert set(playing) == set(expected)
    for k, v in expected.items():
        assert torch.equal(playing[k], v.to(playing[k].dtype)), k
    assert player.current is not None and player.current.epoch == epoch

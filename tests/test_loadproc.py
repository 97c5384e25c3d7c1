"""The child-process loader: same validation as in-process, zero-copy hand-over, nothing left behind.

Faults from issue 9: a child killed or hung mid-load (transient, retried, nothing left in /dev/shm), no
room for shared memory (one warning, then inline loads), Ctrl+C sent to the child (ignored), a parent
killed with SIGKILL (the child dies too), ``close()`` racing a start (no AttributeError).
"""

import glob
import logging
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest
import torch
from helpers.procs import cli_env

from rlg_hotreload.reload import (
    TRANSIENT,
    CheckpointError,
    CheckpointSource,
    CheckpointWatcher,
    InlineLoader,
    LoaderUnavailable,
    ProcessLoader,
    load_checkpoint_file,
    load_weights_only,
    model_state,
    stat_version,
)
from rlg_hotreload.reload.blob import PREFIX, named_blob_dir


def _blobs():
    return set(glob.glob(os.path.join(named_blob_dir(), PREFIX + "*")))


def _reference(path):
    with open(path, "rb") as f:
        return model_state(load_weights_only(f.read()))


def _gone(pid, timeout):
    """True once ``pid`` no longer runs (a zombie counts as gone), waiting at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/status" % pid) as f:
                if any(line.startswith("State:") and "Z" in line.split()[1] for line in f):
                    return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_child_loads_the_same_tensors_and_survives_its_own_death(checkpoint_copy, tmp_path):
    ref = _reference(checkpoint_copy)
    before = _blobs()
    loader = ProcessLoader(ref, timeout=60)
    try:
        version = stat_version(str(checkpoint_copy))
        got = loader.load(version)
        want = load_checkpoint_file(version, ref, "cpu")
        assert got.epoch == want.epoch == 10 and got.best_reward == pytest.approx(want.best_reward)
        assert set(got.state) == set(want.state)
        for k in want.state:
            assert torch.equal(got.state[k], want.state[k]), k
        junk = tmp_path / "junk.pth"
        junk.write_bytes(os.urandom(4096))
        with pytest.raises(CheckpointError, match="cannot load"):
            loader.load(stat_version(str(junk)))
        pid = loader.pid
        os.kill(pid, signal.SIGKILL)  # a reader crash takes down only the child ...
        assert _gone(pid, 10)
        assert loader.load(version).epoch == 10  # ... which is restarted at the next load
        assert loader.pid != pid
        fifo = tmp_path / "stuck.pth"  # a FIFO never blocks: refused before a byte is read
        os.mkfifo(fifo)
        t0 = time.monotonic()
        with pytest.raises(CheckpointError, match=r"not a regular file \(a FIFO\)"):
            loader.load(stat_version(str(fifo)))
        assert time.monotonic() - t0 < 5
        os.kill(loader.pid, signal.SIGSTOP)  # a hung child (dead NFS server): bounded, transient
        loader.timeout = 2.0
        with pytest.raises(CheckpointError, match="no answer within 2 s") as err:
            loader.load(version)
        assert err.value.kind == TRANSIENT
        loader.timeout = 60
        assert loader.load(version).epoch == 10
        os.kill(loader.pid, signal.SIGKILL)  # killed mid-request: transient, and says how it died
        with pytest.raises(CheckpointError, match="loader process killed by SIGKILL") as err:
            loader.load(version)
        assert err.value.kind == TRANSIENT and "None" not in str(err.value)
    finally:
        loader.close()
    assert loader.pid is None or _gone(loader.pid, 5)
    assert _blobs() == before, "shared-memory blobs left behind"


def test_no_room_for_shared_memory_falls_back_to_inline_once(checkpoint_copy, tmp_path, caplog):
    """`ulimit -f` (like a full /dev/shm) makes the child's blob write fail: one warning, inline loads."""
    ref = _reference(checkpoint_copy)
    nn = tmp_path / "run" / "nn"
    nn.mkdir(parents=True)
    (nn / "a.pth").write_bytes(checkpoint_copy.read_bytes())
    w = CheckpointWatcher(CheckpointSource(str(tmp_path / "run")), ref, interval=0.5, settle=0.0, loader="process")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # inherited by the child spawned now
    try:
        with caplog.at_level(logging.WARNING, logger="rlg_hotreload"):
            w.ensure_loader()  # spawn under the limit, then lift it for this process
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
            assert w.poll(), "the checkpoint was not loaded at all"
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        w.stop()
    assert isinstance(w.loader, InlineLoader)
    assert w.take().epoch == 10
    msgs = [r.getMessage() for r in caplog.records]
    assert len([m for m in msgs if "on the watcher thread from now on" in m]) == 1, msgs
    assert any("no room for the shared-memory blob" in m for m in msgs), msgs


PARENT = """
import sys, time, torch
from rlg_hotreload.reload import ProcessLoader
loader = ProcessLoader({"w": torch.zeros(2)}, timeout=60)
loader.start()
print(loader.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.integration
def test_child_ignores_ctrl_c_and_dies_with_its_parent(tmp_path):
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(PARENT)], env=cli_env(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        line = parent.stdout.readline()
        assert line.strip().isdigit(), parent.stderr.read()
        child = int(line)
        os.kill(child, signal.SIGINT)  # what a terminal's Ctrl+C does to the whole process group
        assert not _gone(child, 1.0), "the loader child died of SIGINT"
        parent.kill()  # no chance to clean up
        parent.wait(10)
        assert _gone(child, 2.0), "the loader child outlived its parent"
        assert "Traceback" not in parent.stderr.read()
    finally:
        parent.kill()


@pytest.mark.integration
def test_close_racing_a_start_raises_no_attribute_error():
    ref = {"w": torch.zeros(2)}
    for delay in (0.0, 0.05, 0.3, 1.0):
        loader = ProcessLoader(ref, timeout=60)
        errors = []

        def start(loader=loader, errors=errors):
            try:
                loader.start()
            except BaseException as exc:  # noqa: BLE001 - judged below: only our two error types are fine
                errors.append(exc)

        t = threading.Thread(target=start)
        t.start()
        time.sleep(delay)
        loader.close()
        t.join(10)
        assert not t.is_alive()
        assert all(isinstance(e, (CheckpointError, LoaderUnavailable)) for e in errors), errors
        assert loader.pid is None or _gone(loader.pid, 5)


FULL_SHM = """
import os, sys, torch
from rlg_hotreload.reload import ProcessLoader, load_weights_only, model_state, stat_version
path = sys.argv[1]
with open(path, "rb") as f:
    ref = model_state(load_weights_only(f.read()))
loader = ProcessLoader(ref, timeout=60)
print("epoch", loader.load(stat_version(path)).epoch, flush=True)
loader.close()
print("shm", sorted(os.listdir("/dev/shm")), flush=True)
"""


def test_a_full_docker_sized_dev_shm_does_not_matter(checkpoint_copy, tmp_path):
    """Docker's 64 MB /dev/shm, full of someone else's files: loads still work, nothing is added there."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("no user+mount namespaces here (unshare -rm) to mount a small /dev/shm")
    script = tmp_path / "full_shm.py"
    script.write_text(FULL_SHM)
    shell = ("mount -t tmpfs -o size=64k tmpfs /dev/shm && head -c 65536 /dev/zero > /dev/shm/fill; "
             "exec %s %s %s" % (sys.executable, script, checkpoint_copy))  # fmt: skip
    r = subprocess.run(["unshare", "-rm", "sh", "-c", shell], env=cli_env(), capture_output=True, text=True,
                       timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "epoch 10" in r.stdout and "shm ['fill']" in r.stdout, r.stdout + r.stderr


def test_child_warms_up_before_ready_and_traces_each_load(checkpoint_copy, tmp_path):
    """The child loads a zero checkpoint of the network's shape at start (so the first real load is not
    cold: a 47 ms first load against 13 ms on 16 cores), leaves no file behind, and every load carries
    its phase stamps in order; a corrupt file is still refused after the warm-up."""
    ref = _reference(checkpoint_copy)
    before = set(glob.glob(os.path.join(named_blob_dir(), PREFIX + "*")))
    loader = ProcessLoader(ref, timeout=60)
    try:
        loader.start()
        d = loader.describe()
        assert d["warm_ok"] is True and d["warm_ms"] > 0, d
        assert set(glob.glob(os.path.join(named_blob_dir(), PREFIX + "*"))) == before, "warm-up file left"
        version = stat_version(str(checkpoint_copy))
        got = loader.load(version)
        want = load_checkpoint_file(version, ref, "cpu")
        assert all(torch.equal(got.state[k], want.state[k]) for k in want.state)
        order = ["request", "child_start", "child_loaded", "child_blob", "reply", "mapped"]
        stamps = [got.phases[k] for k in order]
        assert stamps == sorted(stamps), got.phases
        assert stamps[-1] - stamps[0] < 60, got.phases
        bad = tmp_path / "bad.pth"
        bad.write_bytes(checkpoint_copy.read_bytes()[: checkpoint_copy.stat().st_size // 2])  # a torn write
        with pytest.raises(CheckpointError, match="cannot load"):
            loader.load(stat_version(str(bad)))
        assert loader.spawns == 1  # refused by the warm child, which lives on
    finally:
        loader.close()


def test_weights_in_the_shared_blob_mapping_equal_a_direct_load_and_stay_put(checkpoint_copy):
    """The blob is mapped shared (a tenth of the fault-in cost of a private mapping): the tensors must be
    exactly the file's, and must not change when the child moves on to its next blob."""
    ref = _reference(checkpoint_copy)
    loader = ProcessLoader(ref, timeout=60)
    try:
        version = stat_version(str(checkpoint_copy))
        first = loader.load(version)
        kept = {k: v.clone() for k, v in first.state.items()}
        second = loader.load(version)  # the child drops the first blob's descriptor now
        want = load_checkpoint_file(version, ref, "cpu")
        for k in want.state:
            assert torch.equal(first.state[k], kept[k]) and torch.equal(first.state[k], want.state[k]), k
            assert first.state[k].data_ptr() != second.state[k].data_ptr(), k
    finally:
        loader.close()

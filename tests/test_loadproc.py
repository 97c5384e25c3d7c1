"""The child-process loader: same validation as in-process, zero-copy hand-over, survives a dead child."""

import glob
import os

import pytest
import torch

from rlg_hotreload.checkpoints import stat_version
from rlg_hotreload.loader import CheckpointError, load_checkpoint_file, load_weights_only, model_state
from rlg_hotreload.loadproc import ProcessLoader, _blob_dir


def _blobs():
    return set(glob.glob(os.path.join(_blob_dir(), "rlg-hotreload-*")))


def test_child_loads_the_same_tensors_and_survives_its_own_death(checkpoint_copy, tmp_path):
    with open(checkpoint_copy, "rb") as f:
        ref = model_state(load_weights_only(f.read()))
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
        pid = loader._proc.pid
        loader._proc.kill()  # a reader crash takes down only the child ...
        loader._proc.wait(10)
        assert loader.load(version).epoch == 10  # ... which is restarted at the next load
        assert loader._proc.pid != pid
        fifo = tmp_path / "stuck.pth"  # a read that never returns (dead NFS server, FIFO)
        os.mkfifo(fifo)
        loader.timeout = 2.0
        with pytest.raises(CheckpointError, match="no answer within 2 s; restarted"):
            loader.load(stat_version(str(fifo)))
        loader.timeout = 60
        assert loader.load(version).epoch == 10
    finally:
        loader.close()
    assert loader._proc is None
    assert _blobs() == before, "shared-memory blobs left behind"

"""The child-process loader unmaps old blobs on its own (watcher) thread, never on the player's.

Why it matters: unmapping a blob frees its pages (~10 ms per 17 MB on the 2-core VM); when the last tensor
held the mapping, that happened on the player's thread right after each swap (benchmarks/player_overhead.py).
"""

import gc
import os

import pytest
import torch

from rlg_hotreload.reload import ProcessLoader, stat_version

_BEFORE: set = set()


def _blob_maps():
    """This process's mappings of loader blobs (memfd, or named files when memfd is unavailable), by inode
    (a new blob may be mapped where an old one was), less those mapped before this test began (earlier
    tests in the same process may still hold players and their weights)."""
    with open("/proc/self/maps") as f:
        return {line.split()[4] for line in f if "rlg-hotreload-" in line} - _BEFORE


@pytest.mark.integration
def test_a_blob_is_unmapped_by_tidy_after_a_hand_over_once_no_tensor_uses_it(tmp_path):
    gc.collect()
    _BEFORE.clear()
    _BEFORE.update(_blob_maps())
    ref = {"w": torch.zeros(64, 1024), "b": torch.zeros(64)}
    path = tmp_path / "a.pth"
    torch.save({"model": {k: torch.randn_like(v) for k, v in ref.items()}, "epoch": 3}, path)
    version = stat_version(str(path))
    loader = ProcessLoader(ref, timeout=60)
    try:
        first = loader.load(version)
        maps = _blob_maps()
        assert len(maps) == 1
        weights = first.state["w"]
        del first
        assert _blob_maps() == maps, "the loader dropped a mapping it handed over"
        second = loader.load(version)  # the first blob is still used by ``weights``: it stays mapped
        assert len(_blob_maps()) == 2 and maps < _blob_maps()
        del weights  # the player drops its previous weights: nothing is unmapped on this thread ...
        assert len(_blob_maps()) == 2
        third = loader.load(version)  # a load unmaps nothing: that would be on a reload's clock ...
        assert len(_blob_maps()) == 3
        loader.tidy()  # ... the watcher tidies after handing the load over, on its own thread
        now = _blob_maps()
        assert len(now) == 2 and not (maps & now)
        assert torch.equal(second.state["w"], third.state["w"]) and third.epoch == 3
        del second, third
    finally:
        loader.close()
    assert _blob_maps() == set(), "blobs left mapped after close()"
    assert os.path.exists(path)

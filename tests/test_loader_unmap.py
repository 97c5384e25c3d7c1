"""The child-process loader's hand-over blobs: two are reused in turn, never one still in use; one-off blobs
are unmapped on the loader's own (watcher) thread, never on the player's.

Why it matters: unmapping a blob frees its pages (~10 ms per 17 MB on the 2-core VM); when the last tensor
held the mapping, that happened on the player's thread right after each swap (benchmarks/player_overhead.py).
A reused blob costs neither new pages nor page faults; writing one the player still plays would corrupt
the weights in play.
"""

import gc
import os
import time

import pytest
import torch

from rlg_hotreload.reload import ProcessLoader, stat_version
from rlg_hotreload.reload.blob import use_memfd
from rlg_hotreload.reload.slots import SLOTS
from rlg_hotreload.steer import KEEP_CHECKPOINTS

_BEFORE: set = set()


def _blob_maps():
    """This process's mappings of loader blobs (memfd, or named files when memfd is unavailable), by inode
    (a new blob may be mapped where an old one was), less those mapped before this test began (earlier
    tests in the same process may still hold players and their weights)."""
    with open("/proc/self/maps") as f:
        return {line.split()[4] for line in f if "rlg-hotreload-" in line} - _BEFORE


@pytest.fixture
def own_maps():
    """Count only the blob mappings this test makes (earlier tests may still hold players and weights)."""
    gc.collect()
    _BEFORE.clear()
    _BEFORE.update(_blob_maps())


def _small_network():
    return {"w": torch.zeros(64, 1024), "b": torch.zeros(64)}


def _checkpoints(tmp_path, ref, n):
    """``n`` checkpoints of distinct weights: (version, model state) each."""
    out = []
    for i in range(n):
        model = {k: torch.randn_like(v) + 10 * i for k, v in ref.items()}
        path = tmp_path / ("c%d.pth" % i)
        torch.save({"model": model, "epoch": i}, path)
        out.append((stat_version(str(path)), model))
    return out


def _same(state, model):
    return all(torch.equal(state[k], model[k]) for k in model)


@pytest.mark.integration
def test_two_blobs_are_reused_in_turn_and_one_still_in_use_is_never_written(tmp_path, own_maps):
    ref = _small_network()
    (v0, m0), (v1, m1), (v2, m2), (v3, m3) = _checkpoints(tmp_path, ref, 4)
    loader = ProcessLoader(ref, timeout=60, slots=2)
    try:
        first = loader.load(v0)
        slot_a = _blob_maps()
        assert len(slot_a) == 1
        second = loader.load(v1)  # the first blob is in use (the weights in play): a second one
        both = _blob_maps()
        assert len(both) == 2 and slot_a < both
        assert _same(first.state, m0) and _same(second.state, m1)
        del first  # the player swapped to ``second`` and dropped the first weights
        third = loader.load(v2)  # written into the first blob again: no new mapping
        assert _blob_maps() == both
        assert _same(third.state, m2) and _same(second.state, m1), "a blob in use was overwritten"
        assert third.state["w"].data_ptr() != second.state["w"].data_ptr()
        fourth = loader.load(v3)  # both blobs in use: a one-off blob, unmapped by tidy once unused
        assert len(_blob_maps()) == 3 and both < _blob_maps()
        assert _same(fourth.state, m3) and _same(third.state, m2) and _same(second.state, m1)
        del fourth
        loader.tidy()
        assert _blob_maps() == both
        del second
        fifth = loader.load(v0)  # the second blob is free again
        assert _blob_maps() == both and _same(fifth.state, m0) and _same(third.state, m2)
        del third, fifth
    finally:
        loader.close()
    assert _blob_maps() == set(), "blobs left mapped after close()"


@pytest.mark.integration
def test_a_one_off_blob_is_unmapped_by_tidy_after_a_hand_over_once_no_tensor_uses_it(tmp_path, own_maps):
    ref = _small_network()
    ckpts = _checkpoints(tmp_path, ref, 4)
    loader = ProcessLoader(ref, timeout=60, slots=2)
    try:
        held = [loader.load(ckpts[0][0]), loader.load(ckpts[1][0])]  # both reused blobs in use
        kept = _blob_maps()
        extra = loader.load(ckpts[2][0])
        assert len(_blob_maps()) == 3
        weights = extra.state["w"]
        del extra
        loader.tidy()
        assert len(_blob_maps()) == 3, "the loader dropped a mapping still in use"
        another = loader.load(ckpts[3][0])  # a load unmaps nothing: that would be on a reload's clock ...
        assert len(_blob_maps()) == 4
        del weights  # the player drops its previous weights: nothing is unmapped on this thread ...
        assert len(_blob_maps()) == 4
        loader.tidy()  # ... the watcher tidies after handing the load over, on its own thread
        assert len(_blob_maps()) == 3 and kept < _blob_maps()
        assert _same(another.state, ckpts[3][1]) and all(_same(h.state, c[1]) for h, c in zip(held, ckpts))
        del another, held
    finally:
        loader.close()
    assert _blob_maps() == set(), "blobs left mapped after close()"


def test_enough_slots_for_the_weights_kept_for_back_plus_the_one_in_play_and_the_next():
    assert SLOTS >= KEEP_CHECKPOINTS + 2


def _child_blobs(pid):
    """The loader child's open hand-over blobs (memfd descriptors)."""
    out = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            out += "rlg-hotreload-blob" in os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass  # closed meanwhile
    return out


def _wait_for(cond, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)  # polling /proc: there is no event for another process's descriptors
    return False


@pytest.mark.integration
@pytest.mark.skipif(not use_memfd(), reason="blobs are made ahead only with memfd (Linux)")
def test_the_child_makes_the_next_blob_ahead_when_idle_up_to_its_slot_count(tmp_path):
    ref = _small_network()
    ckpts = _checkpoints(tmp_path, ref, 4)
    loader = ProcessLoader(ref, timeout=60, slots=3)
    try:
        loader.start()
        pid = loader.pid
        assert _wait_for(lambda: _child_blobs(pid) == 1), "no blob made ahead after the warm-up"
        held = []
        for i, (version, model) in enumerate(ckpts):
            held.append(loader.load(version))  # all kept in use: each load needs another blob
            assert _same(held[-1].state, model)
            want = min(i + 2, 3)  # the one just used, plus one ahead, up to 3 slots
            assert _wait_for(lambda want=want: _child_blobs(pid) >= want), "no blob made ahead after load %d" % i
        assert _child_blobs(pid) <= 4  # 3 slots and at most one one-off blob: never more ahead
        assert all(_same(h.state, c[1]) for h, c in zip(held, ckpts)), "a blob in use was written"
        del held
    finally:
        loader.close()

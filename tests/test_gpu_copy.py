"""Checkpoint copies to a GPU on a side stream (``reload/gpu_copy.py``): the values arrive whole, chunk
boundaries included, and the player's stream can read them right after ``settle``. ``gpu`` marker."""

import pytest
import torch

from rlg_hotreload.reload import gpu_copy

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


@pytest.mark.parametrize(
    "numel", [0, 1, gpu_copy.CHUNK_BYTES // 4 * 3 + 17]
)  # empty, tiny, 3 chunks + a tail
def test_a_tensor_copied_aside_equals_its_source_after_settle(numel):
    src = (
        torch.randn(numel, generator=torch.Generator().manual_seed(numel)).reshape(-1, 1)
        if numel
        else torch.empty(0)
    )
    dst = gpu_copy.to_device_aside(src, torch.device("cuda:0"))
    gpu_copy.settle([dst.device])
    assert dst.device.type == "cuda" and dst.shape == src.shape and dst.dtype == src.dtype
    assert torch.equal(dst.cpu(), src)
    assert torch.equal((dst * 2).cpu(), src * 2)  # usable on the current stream


def test_the_side_stream_is_not_the_players_stream():
    dev = torch.device("cuda:0")
    assert gpu_copy.side_stream(dev) != torch.cuda.current_stream(dev)
    assert gpu_copy.side_stream(dev) is gpu_copy.side_stream(torch.device("cuda"))


@pytest.mark.integration
def test_loads_to_a_gpu_stage_through_the_loaders_own_pinned_buffer_and_stay_whole(tmp_path):
    from rlg_hotreload.reload import ProcessLoader, stat_version

    dev = torch.device("cuda:0")
    ref = {"w": torch.zeros(512, 1024, device=dev), "b": torch.zeros(512, device=dev)}
    models = [{k: torch.randn(v.shape) + i for k, v in ref.items()} for i in range(3)]
    versions = []
    for i, m in enumerate(models):
        torch.save({"model": m, "epoch": i}, tmp_path / ("c%d.pth" % i))
        versions.append(stat_version(str(tmp_path / ("c%d.pth" % i))))
    loader = ProcessLoader(ref, timeout=60, slots=2)
    try:
        loader.start()
        staged = dict(loader.staging.buffers)
        assert staged and staged[dev].is_pinned() and staged[dev].numel() >= (512 * 1024 + 512) * 4
        loaded = [loader.load(v) for v in versions]  # each load overwrites the staging buffer
        for got, want in zip(loaded, models):
            assert all(got.state[k].device == dev and torch.equal(got.state[k].cpu(), want[k]) for k in want)
        assert loader.staging.buffers[dev] is staged[dev], "a load took new pinned memory"
    finally:
        loader.close()

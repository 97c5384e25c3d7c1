"""Copies of a new checkpoint to a GPU that the player's steps do not queue behind.

Why: the watcher thread copied the mapped blob with ``tensor.to("cuda:0")`` on the device's current
stream, the same stream as the player's forward passes, so a step issued during the copy of a 50 MB
checkpoint waited for all of it (a 4-5 ms step against a 0.85 ms median on an H100 with Pendulum on
the CPU: a 5-6x stall). Here each copy goes to a side stream (PyTorch's pool streams do not
synchronise with the default stream), from pinned memory, in chunks of a few MB, so a step's own small
copies and kernels interleave with it; the watcher thread then waits for the side stream before the checkpoint is handed
over (:func:`settle`), so the player never reads a half-copied tensor.

Memory: the destination is allocated on the device's current stream, as ``.to()`` did, and the side
stream first waits for that stream, so the caching allocator's stream bookkeeping is unchanged.

Why a staging buffer of its own (:class:`Staging`): taking a new pinned buffer from PyTorch's host
allocator calls ``cudaHostAlloc`` whenever its cache has no block of that size (the first loads of a
session, a network of a new size), and that call page-locks memory under a driver lock that the player's
own CUDA calls wait for. The loader takes one pinned buffer as large as a checkpoint's tensors when it
starts, and every load copies through it: between two loads, :func:`settle` has waited for the copies.
"""

from typing import Dict, Iterable, Optional

import torch

CHUNK_BYTES = 4 << 20
_STREAMS: Dict[torch.device, "torch.cuda.Stream"] = {}


def side_stream(device: torch.device) -> "torch.cuda.Stream":
    """The side stream used for checkpoint copies to ``device`` (one per device, made once)."""
    device = torch.device(device)
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    stream = _STREAMS.get(device)
    if stream is None:
        stream = _STREAMS[device] = torch.cuda.Stream(device=device, priority=0)
    return stream


class Staging:
    """One loader's pinned staging memory, one buffer per device, grown (never shrunk) on demand.

    Not shared between loaders: two players (compare mode) load on two threads at once."""

    def __init__(self) -> None:
        self.buffers: Dict[torch.device, torch.Tensor] = {}

    def reserve(self, device: torch.device, nbytes: int) -> torch.Tensor:
        buf = self.buffers.get(device)
        if buf is None or buf.numel() < nbytes:
            buf = self.buffers[device] = torch.empty(max(1, nbytes), dtype=torch.uint8, pin_memory=True)
        return buf

    def region(self, device: torch.device, nbytes: int, offset: int, like: torch.Tensor) -> torch.Tensor:
        """Bytes ``[offset, offset + nbytes)`` of ``device``'s buffer, viewed with ``like``'s dtype/shape."""
        buf = self.reserve(device, offset + nbytes)
        return buf[offset : offset + nbytes].view(like.dtype).view(like.shape)


def to_device_aside(src: torch.Tensor, device: torch.device, pinned: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Copy a host tensor to ``device`` on the side stream; call :func:`settle` before using the result.

    The bytes go through a pinned (page-locked) buffer from PyTorch's caching host allocator: the CPU
    copy into it runs on this thread without the CUDA driver, and the DMA from it is asynchronous. A copy
    from pageable memory would go through the driver's staging buffer, which the player's own small
    per-step copies (observations in, actions out) share and would wait behind. ``pinned``: pinned memory
    of ``src``'s dtype and shape to stage through (see :class:`Staging`); else one from PyTorch's allocator.
    """
    dst = torch.empty(src.shape, dtype=src.dtype, device=device)
    if src.numel() == 0:
        return dst
    if pinned is None:
        pinned = torch.empty(src.shape, dtype=src.dtype, pin_memory=True)
    pinned.copy_(src)
    stream = side_stream(dst.device)
    stream.wait_stream(torch.cuda.current_stream(dst.device))
    flat_src, flat_dst = pinned.view(-1), dst.view(-1)
    step = max(1, CHUNK_BYTES // max(1, src.element_size()))
    with torch.cuda.stream(stream):
        for start in range(0, flat_src.numel(), step):
            flat_dst[start : start + step].copy_(flat_src[start : start + step], non_blocking=True)
    return dst


def settle(devices: Iterable[torch.device]) -> None:
    """Wait (on this thread) until every side-stream copy to ``devices`` has landed."""
    for device in {torch.device(d) for d in devices if torch.device(d).type == "cuda"}:
        side_stream(device).synchronize()

"""Loading a checkpoint through a memory map, in the loader child: only the network's tensors are read.

Why: an rl-games checkpoint also holds the optimizer's state (Adam: twice the network). Reading the file
copies all of it, and the unpickler copies every tensor again: for a 47 MB checkpoint, 25 ms to read and
12 ms to unpickle on our 2-core VM, most of a reload's latency once file events removed the wait for the
timer. ``torch.load(mmap=True)`` maps the file and touches only the pages of the tensors used: the
network's, when they are validated (finite) and copied into the hand-over blob.

Why only in the child: a file truncated while mapped (an in-place ``torch.save`` starting during the
load) raises SIGBUS on the next access. In the child that ends the loader, which the watcher reports as
transient and retries with a new child; in the player's process it would be a crash.

Why it stays correct when the file changes: the descriptor is checked (``fstat``: regular, size bound,
the expected version) before mapping, and again after the tensors were copied out; a difference means the
copy may mix two versions and the load is refused as transient, exactly like the read path. Files in
torch's legacy (non-zip) format, and torch versions without ``mmap``, take the read path.
"""

import contextlib
import inspect
import os
import time
from typing import Any, Dict, Iterator

import torch

from rlg_hotreload.reload.checkpoint import (
    TRANSIENT,
    CheckpointError,
    LoadedCheckpoint,
    load_checkpoint_file,
    load_weights_only,
    open_regular,
    validated,
)  # fmt: skip
from rlg_hotreload.reload.source import FileVersion

ZIP_MAGIC = b"PK\x03\x04"
CAN_MAP = "mmap" in inspect.signature(torch.load).parameters and os.path.isdir("/proc/self/fd")


@contextlib.contextmanager
def mapped_checkpoint(version: FileVersion, reference: Dict[str, Any], max_bytes: int) -> Iterator[LoadedCheckpoint]:
    """The validated checkpoint on CPU, its tensors possibly views of the mapped file: copy them out inside
    the ``with`` block; leaving it raises CheckpointError (transient) if the file changed meanwhile."""
    if not CAN_MAP:
        yield load_checkpoint_file(version, reference, "cpu", max_bytes)
        return
    t0 = time.perf_counter()
    fd, before = open_regular(version.path, max_bytes, version)
    try:
        if os.pread(fd, len(ZIP_MAGIC), 0) != ZIP_MAGIC:
            os.close(fd)
            fd = -1
            yield load_checkpoint_file(version, reference, "cpu", max_bytes)
            return
        # the descriptor's own path: the same inode even if the name was replaced since the check
        yield validated(version, load_weights_only("/proc/self/fd/%d" % fd), reference, "cpu", t0)
        after = os.fstat(fd)
        if (after.st_size, after.st_mtime_ns, after.st_ino) != (before.st_size, before.st_mtime_ns, before.st_ino):
            raise CheckpointError("changed while being read", TRANSIENT)
    finally:
        if fd >= 0:
            os.close(fd)

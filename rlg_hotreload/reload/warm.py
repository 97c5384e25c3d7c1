"""Warming the loader child up before its first real load, so that load is as fast as every later one.

Why: a fresh interpreter pays once for what every load needs: importing the zip reader and the
weights-only unpickler, numpy's scalar globals, torch's first ``mmap`` load, the first memfd. Measured on
the 16-core GPU machine, the first reload of a session took 47 ms against 13 ms for the next ones, and the
player's longest step during it was 9.7x its median (1.2-1.5x for the later loads). The child therefore
loads one checkpoint of its own at start (zeros, shaped like the player's network, with an rl-games-like
optimizer entry and a numpy scalar), through exactly the path of a real load (map, unpickle, validate,
copy into a blob), then drops it. It runs before the child says it is ready, i.e. on the watcher thread's
time at start-up, never while a real checkpoint waits.

Why zeros of the real shapes only up to :data:`WARM_MAX_BYTES`: the temporary file lives in shared memory
(``/dev/shm`` is 64 MB in Docker). Larger networks warm with one-element tensors: the load is then
refused as a mismatch, after the cold parts (imports, the first mapped unpickle) have run.
"""

import json
import os
import tempfile
import time
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from rlg_hotreload.reload.blob import PREFIX, discard, named_blob_dir
from rlg_hotreload.reload.source import stat_version

WARM_MAX_BYTES = 32 << 20

Answer = Callable[[str, Dict[str, Any], int], Tuple[Optional[int], Dict[str, Any]]]


def warm_checkpoint(reference: Dict[str, torch.Tensor]) -> Dict[str, Any]:
    """A checkpoint dict shaped like rl-games' for a network like ``reference`` (meta tensors are fine)."""
    import numpy as np

    total = sum(t.numel() * t.element_size() for t in reference.values())
    full = total <= WARM_MAX_BYTES
    model = {k: torch.zeros(tuple(t.shape) if full else (1,), dtype=t.dtype) for k, t in reference.items()}
    optimizer = {"state": {0: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(1), "exp_avg_sq": torch.zeros(1)}},
                 "param_groups": [{"lr": 1e-4, "params": [0]}]}  # fmt: skip
    return {"model": model, "epoch": 0, "frame": 0, "optimizer": optimizer,
            "last_mean_rewards": np.float32(0.0), "env_state": None}  # fmt: skip


def warm_up(answer: Answer, reference: Dict[str, torch.Tensor], max_bytes: int) -> Dict[str, Any]:
    """Load a zero checkpoint through ``answer`` (the child's request handler); returns what happened:
    ``warm_ms`` and ``warm_ok`` (False for the one-element warm-up of a large network, or no room)."""
    t0 = time.perf_counter()
    fd, path = tempfile.mkstemp(prefix=PREFIX + "warm-", suffix=".pth", dir=named_blob_dir())
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(warm_checkpoint(reference), f)
        version = stat_version(path)
        ok = False
        if version is not None:
            blob_fd, reply = answer(json.dumps(list(version)), reference, max_bytes)
            ok = bool(reply.get("ok"))
            discard(blob_fd, reply)
    finally:
        os.unlink(path)
    return {"warm_ms": round((time.perf_counter() - t0) * 1000.0, 1), "warm_ok": ok}

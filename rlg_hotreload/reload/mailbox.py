"""The one-slot mailbox between the watcher thread and the player.

Why one slot: the player only ever wants the newest prepared checkpoint; an untaken older one is simply
replaced. Why a lock-free ``ready``: the player peeks at it between every two steps, which must cost
nothing (no lock, no I/O).
"""

import threading
from typing import Optional

import torch

from rlg_hotreload.reload.checkpoint import LoadedCheckpoint


def _settle(item: LoadedCheckpoint) -> None:
    """Finish the watcher thread's copies to a GPU before the player may read them: the player can run on
    another CUDA stream (the MuJoCo Warp backend sets one), which does not wait for this thread's."""
    devices = {t.device for t in item.state.values() if t.is_cuda}
    for device in devices:
        torch.cuda.current_stream(device).synchronize()


class Mailbox:
    """One slot between the watcher (put) and the player (take); a newer item replaces an untaken one."""

    def __init__(self) -> None:
        self._item: Optional[LoadedCheckpoint] = None
        self._lock = threading.Lock()
        self._event = threading.Event()

    @property
    def ready(self) -> bool:
        """Lock-free peek for the player's hot path."""
        return self._item is not None

    def put(self, item: LoadedCheckpoint) -> None:
        _settle(item)
        with self._lock:
            self._item = item
            self._event.set()

    def take(self) -> Optional[LoadedCheckpoint]:
        if self._item is None:
            return None
        with self._lock:
            item, self._item = self._item, None
            self._event.clear()
        return item

    def wait(self, timeout: float) -> bool:
        return self._event.wait(timeout)

    def wake(self) -> None:
        """Wake a waiter without an item (the watcher has news such as a fatal error)."""
        self._event.set()

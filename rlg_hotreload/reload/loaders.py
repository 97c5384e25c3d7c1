"""The ``Loader`` interface: turn one file version into a validated, swappable checkpoint.

Why an interface with named implementations: where a checkpoint is read is a deployment choice (a child
process keeps the player's GIL free; some sandboxes forbid child processes), and a fallback is then just
a swap of the object the watcher holds: when the child process cannot be started, or shared memory is
full, the watcher replaces its ``ProcessLoader`` with an ``InlineLoader`` and logs that once.
"""

from typing import Any, Dict

import torch

from rlg_hotreload.reload.checkpoint import DEFAULT_MAX_MB, LoadedCheckpoint, load_checkpoint_file
from rlg_hotreload.reload.source import FileVersion


class LoaderUnavailable(Exception):
    """This loader cannot work here at all (no child process, no shared memory): swap in another."""


class Loader:
    """Loads a file version for a network described by ``reference`` (name -> tensor, on its device)."""

    name = "abstract"

    def __init__(self, reference: Dict[str, torch.Tensor], max_bytes: int = DEFAULT_MAX_MB << 20,
                 timeout: float = 120.0) -> None:  # fmt: skip
        self.reference = {k: v.detach() for k, v in reference.items()}
        self.max_bytes = max_bytes
        self.timeout = timeout

    def start(self) -> None:
        """Get ready before the first load (spawn a child, ...); raises LoaderUnavailable."""

    def load(self, version: FileVersion) -> LoadedCheckpoint:
        """The validated checkpoint; raises CheckpointError (or LoaderUnavailable)."""
        raise NotImplementedError

    def tidy(self) -> None:
        """Release what earlier loads left behind; called after a load was handed over, off its clock."""

    def close(self, timeout: float = 1.0) -> None:
        """Release everything; safe from any thread, also while ``load`` runs; never blocks long."""

    def describe(self) -> Dict[str, Any]:
        return {"name": self.name}


class InlineLoader(Loader):
    """Reads and unpickles on the calling thread (the watcher's): no isolation, no time bound."""

    name = "inline"

    def load(self, version: FileVersion) -> LoadedCheckpoint:
        first = next(iter(self.reference.values()), None)
        device = first.device if first is not None else "cpu"
        return load_checkpoint_file(version, self.reference, device, self.max_bytes)

"""Which loader the watcher uses, and the fallback from the child process to loading inline.

Why apart from the watcher: the watcher decides *what* to load and *when* (versions, events, retries);
this decides *how*: the loader named by ``loader=`` is made on first use (the child process started,
and warmed up, before the first reload, not at it), and when it cannot work here at all
(:class:`~rlg_hotreload.reload.loaders.LoaderUnavailable`: no child process allowed, shared memory full)
it is replaced for good by an :class:`~rlg_hotreload.reload.loaders.InlineLoader`, with one warning.
A remote source's download and its clean-up around the load also live here.
"""

import dataclasses
import logging
from typing import Any, Callable, Dict, Optional, Type

import torch

from rlg_hotreload.reload.checkpoint import TRANSIENT, CheckpointError, LoadedCheckpoint
from rlg_hotreload.reload.loaders import InlineLoader, Loader, LoaderUnavailable
from rlg_hotreload.reload.process import ProcessLoader
from rlg_hotreload.reload.source import CheckpointSource, FileVersion

log = logging.getLogger("rlg_hotreload")

LOADERS: Dict[str, Type[Loader]] = {"process": ProcessLoader, "inline": InlineLoader, "thread": InlineLoader}


def make_loader(name: str, reference: Dict[str, torch.Tensor], **kwargs: Any) -> Loader:
    if name not in LOADERS:
        raise ValueError("loader=%s: allowed values are %s" % (name, ", ".join(LOADERS)))
    return LOADERS[name](reference, **kwargs)


class LoaderSlot:
    """The loader in use (None until first needed); ``kwargs`` are every loader's ``max_bytes``, ``timeout``."""

    def __init__(self, name: str, reference: Dict[str, torch.Tensor], **kwargs: Any) -> None:
        self.name = name
        self.reference = reference
        self.kwargs = kwargs
        self.loader: Optional[Loader] = None

    def ensure(self) -> Loader:
        if self.loader is None:
            self.loader = make_loader(self.name, self.reference, **self.kwargs)
            try:
                self.loader.start()
            except LoaderUnavailable as e:
                self.fall_back(e)
        return self.loader

    def fall_back(self, why: Exception) -> None:
        """Swap the loader object for an inline one, with one warning."""
        old = self.loader
        self.loader = InlineLoader(self.reference, **self.kwargs)
        if old is not None:
            old.close()
        log.warning("Loading checkpoints on the watcher thread from now on: %s", why)

    def load(self, source: CheckpointSource, version: FileVersion, stopping: Callable[[], bool]) -> LoadedCheckpoint:
        """``version`` of ``source`` (fetched first if remote), validated; raises CheckpointError."""
        loader = self.ensure()
        local = source.fetch(version, self.kwargs["max_bytes"])  # a download for a remote source
        try:
            try:
                loaded = loader.load(local)
            except LoaderUnavailable as e:
                if stopping():
                    raise CheckpointError("loader stopped", TRANSIENT) from e
                self.fall_back(e)
                loaded = self.ensure().load(local)
            return loaded if local is version else dataclasses.replace(loaded, version=version)
        finally:
            if local is not version:
                source.release(local)

    def tidy(self) -> None:
        if self.loader is not None:
            self.loader.tidy()

    def close(self, timeout: float = 1.0) -> None:
        if self.loader is not None:
            self.loader.close(timeout)

    def describe(self) -> Dict[str, Any]:
        loader = self.loader
        return loader.describe() if loader is not None else {"name": self.name}

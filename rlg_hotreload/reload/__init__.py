"""The reload path: from files on disk to validated weights in a one-slot mailbox, off the player's thread.

Why a package of small modules: each fault a long-running monitor meets has one home here.

- :mod:`~rlg_hotreload.reload.source` — which checkpoint files exist now (`file`, folder, `latest`);
- :mod:`~rlg_hotreload.reload.remote` — the same for object storage and remote filesystems (fsspec URLs);
- :mod:`~rlg_hotreload.reload.checkpoint` — reading one file (regular, size-bounded, weights only) and
  validating it (keys, shapes, dtypes, dense, finite);
- :mod:`~rlg_hotreload.reload.loaders` — the ``Loader`` interface and the inline loader;
- :mod:`~rlg_hotreload.reload.loading` — which loader the watcher uses, and the fallback to inline;
- :mod:`~rlg_hotreload.reload.process` / :mod:`~rlg_hotreload.reload.child` / :mod:`~rlg_hotreload.reload.blob`
  — the loader child process and its shared-memory hand-over; :mod:`~rlg_hotreload.reload.warm` — its
  warm-up load at start;
- :mod:`~rlg_hotreload.reload.events` — file events that wake the watcher (timer alone on network filesystems);
- :mod:`~rlg_hotreload.reload.watcher` — the thread that never dies, its health, and the mailbox.
"""

from rlg_hotreload.reload.checkpoint import (
    BAD,
    MISMATCH,
    TRANSIENT,
    CheckpointError,
    LoadedCheckpoint,
    check_compatible,
    load_checkpoint_file,
    load_weights_only,
    model_state,
    read_regular_file,
)  # fmt: skip
from rlg_hotreload.reload.events import MODES as WATCH_MODES
from rlg_hotreload.reload.loaders import InlineLoader, Loader, LoaderUnavailable
from rlg_hotreload.reload.loading import LOADERS, make_loader
from rlg_hotreload.reload.mailbox import Mailbox
from rlg_hotreload.reload.process import ProcessLoader
from rlg_hotreload.reload.remote import RemoteSource, make_source
from rlg_hotreload.reload.remote_check import check_remote
from rlg_hotreload.reload.source import CheckpointSource, FileVersion, stat_version
from rlg_hotreload.reload.watcher import CheckpointWatcher

__all__ = [
    "BAD", "LOADERS", "MISMATCH", "TRANSIENT", "WATCH_MODES", "CheckpointError", "CheckpointSource", "CheckpointWatcher",
    "FileVersion", "InlineLoader", "LoadedCheckpoint", "Loader", "LoaderUnavailable", "Mailbox", "ProcessLoader",
    "check_compatible", "load_checkpoint_file", "load_weights_only", "make_loader", "model_state",
    "read_regular_file", "stat_version", "RemoteSource", "check_remote", "make_source",
]  # fmt: skip

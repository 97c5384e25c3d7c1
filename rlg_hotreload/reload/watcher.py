"""The watcher thread: find the newest usable checkpoint and prepare it off the hot path.

When to look: at once when a file event says a checkpoint was closed or renamed into place (see
:mod:`~rlg_hotreload.reload.events`), and every ``interval`` s in any case (the only trigger in poll mode
and on network filesystems, a safety net otherwise).

Why a thread that never dies: a monitor runs for days next to training, on NFS/SSHFS mounts that go
stale, in folders that change owner; an exception that ends the thread would leave the player playing
stale weights forever with nothing in ``/status``. Every exception of a check is caught, logged once per
cause, and the check is retried with exponential backoff; :meth:`CheckpointWatcher.health` exposes the
last check time and the last error to ``/status`` and to the final summary.

Which version is newer (first seen, then mtime, whatever the writer's clock says) is
:mod:`~rlg_hotreload.reload.versions`'s to decide; the player never rolls back to an older one.

The player's side is the one-slot :class:`~rlg_hotreload.reload.mailbox.Mailbox`; how a file is loaded
(child process or inline, and the fallback between them) is :mod:`~rlg_hotreload.reload.loading`'s.
"""

import logging
import os
import threading
import time
from typing import Any, Dict, Optional, Set, Tuple

import torch

from rlg_hotreload.reload.checkpoint import (
    BAD,
    DEFAULT_MAX_MB,
    MISMATCH,
    TRANSIENT,
    CheckpointError,
    LoadedCheckpoint,
    one_line,
)  # fmt: skip
from rlg_hotreload.reload.events import FileEvents
from rlg_hotreload.reload.loaders import Loader
from rlg_hotreload.reload.loading import LoaderSlot
from rlg_hotreload.reload.mailbox import Mailbox
from rlg_hotreload.reload.source import CheckpointSource, FileVersion, stat_version
from rlg_hotreload.reload.versions import VersionOrder

log = logging.getLogger("rlg_hotreload")

MAX_BACKOFF_S = 60.0
FRESH_S = 1.0  # a corrupt file younger than this may still be being written: retried before warning


class CheckpointWatcher:
    """Background thread feeding a :class:`Mailbox` with validated checkpoints.

    ``interval == 0`` means load once: the thread ends after the first accepted checkpoint. Rejected file
    versions are remembered (and warned about once); a changed file is a new version and is tried again.
    """

    def __init__(
        self,
        source: CheckpointSource,
        reference: Dict[str, torch.Tensor],
        interval: float = 30.0,
        settle: float = 0.1,
        wait_log_every: float = 30.0,
        loader: str = "inline",
        max_bytes: int = DEFAULT_MAX_MB << 20,
        timeout: float = 120.0,
        watch: str = "auto",
    ) -> None:
        self.source = source
        self.reference = {k: v.detach() for k, v in reference.items()}
        self.interval = interval
        self.settle = settle
        self.wait_log_every = wait_log_every
        self.loading = LoaderSlot(loader, self.reference, max_bytes=max_bytes, timeout=timeout)
        self.mailbox = Mailbox()
        self.current_version: Optional[FileVersion] = None  # the version last handed to the player
        self.fatal: Optional[CheckpointError] = None  # the named file does not fit: nothing to wait for
        self.rejected: Set[FileVersion] = set()
        self.order = VersionOrder()
        self._retry: Dict[FileVersion, Tuple[int, float]] = {}  # transient failures: (count, not before)
        self._current_rank: Optional[Tuple[int, int, str]] = None
        self._logged: Set[str] = set()
        self._problems: Set[str] = set()
        self._polls = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by file events and by stop()
        self.events = FileEvents(watch, self._wake, interval)
        self._first_check = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._last_wait_log = 0.0
        self._health: Dict[str, Any] = {"checks": 0, "last_check_at": None, "errors": 0,
                                        "last_error": None, "last_error_at": None, "loading": None}  # fmt: skip

    # -- player side (no I/O) ----------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.mailbox.ready

    def take(self) -> Optional[LoadedCheckpoint]:
        return self.mailbox.take()

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` s until a checkpoint is ready (or there is news, see ``fatal``)."""
        return self.mailbox.wait(timeout)

    def wait_first_check(self, timeout: float) -> bool:
        return self._first_check.wait(timeout)

    def reject(self, version: FileVersion) -> None:
        """The player could not use ``version`` after all (its first forward pass failed)."""
        with self._lock:
            self.rejected.add(version)

    def health(self) -> Dict[str, Any]:
        """A copy, safe from any thread: checks, last check time (epoch s), errors, last error, loader."""
        with self._lock:
            h = dict(self._health)
        last = h["last_check_at"]
        h["last_check_age_s"] = round(time.time() - last, 1) if last else None
        h["alive"] = self._thread is not None and self._thread.is_alive()
        h["loader"] = self.loading.describe()
        h["watch"] = self.events.describe()
        h["source"] = self.source.describe()  # a URL without credentials for a remote source
        return h

    # -- thread ------------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="rlg-hotreload-watcher", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 1.0) -> None:
        """Bounded whatever a load is doing: the loader is closed first (a pending load ends at once)."""
        self._stop.set()
        self._wake.set()
        self.loading.close(timeout)
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        failures = 0
        try:
            if self.current_version is not None and self.interval > 0:
                self.ensure_loader()  # start the child now, not at the first reload
            while not self._stop.is_set():
                self._wake.clear()  # an event from now on means: look again
                accepted = False
                try:
                    accepted = self.poll()
                    if failures:
                        log.info("Checking %s again (after %d failed checks)", self.source.describe(), failures)
                        self._logged = {k for k in self._logged if not k.startswith("check:")}
                    failures = 0
                except Exception as e:  # noqa: BLE001 - a background thread logs and survives
                    failures += 1
                    self._error("check:%s: %s" % (type(e).__name__, e), "Cannot check %s: %s; retrying"
                                % (self.source.describe(), one_line(e)), not isinstance(e, OSError))  # fmt: skip
                finally:
                    self._first_check.set()
                if accepted and self.interval <= 0:
                    return
                if failures:
                    delay = min(max(self.interval, 0.5) * 2 ** (failures - 1), MAX_BACKOFF_S)
                elif self.current_version is None and self.interval > 0:
                    delay = min(self.interval, 1.0)
                else:
                    delay = self.interval or 1.0
                soon = [t for _, t in self._retry.values() if t > time.monotonic()]
                if soon:  # a file to try again soon (one young enough to be still being written)
                    delay = min(delay, min(soon) - time.monotonic() + 0.01)
                if not self._watch_folders():
                    self._wake.wait(delay)
        finally:
            self.events.close()
            self.source.close()
            self.loading.close()

    def _watch_folders(self) -> bool:
        """Follow the source's folders with file events; True if one is newly watched (look into it now)."""
        try:
            return self.events.sync(self.source.watch_dirs())
        except OSError:
            return False  # the folder is unusable: the next check reports it and backs off

    def _note(self, message: str) -> None:
        with self._lock:
            self._health.update(errors=self._health["errors"] + 1, last_error=message, last_error_at=time.time())

    def _error(self, cause: str, message: str, trace: bool = False) -> None:
        self._note(message)
        if cause not in self._logged and not self._stop.is_set():
            self._logged.add(cause)
            log.warning(message, exc_info=trace)

    @property
    def loader(self) -> Optional[Loader]:
        """The loader in use (None before the first load): see :mod:`~rlg_hotreload.reload.loading`."""
        return self.loading.loader

    def ensure_loader(self) -> Loader:
        return self.loading.ensure()

    def _load(self, version: FileVersion) -> LoadedCheckpoint:
        with self._lock:
            self._health["loading"] = version.path
        try:
            return self.loading.load(self.source, version, self._stop.is_set)
        finally:
            with self._lock:
                self._health["loading"] = None

    # -- one check ----------------------------------------------------------------------------------
    def poll(self) -> bool:
        """One check: returns True if a new checkpoint was prepared for the player."""
        self._polls += 1
        checked = time.monotonic()
        candidates = self.source.candidates()
        with self._lock:
            self._health.update(checks=self._health["checks"] + 1, last_check_at=time.time())
        problems = {"%s: %s" % kv for kv in self.source.problems.items()}
        for text in sorted(problems - self._problems):  # once per entry and cause, while it lasts
            self._note("Skipping %s" % text)
            log.warning("Skipping %s", text)
        self._problems = problems
        live = set(candidates)  # forget versions that are gone: a days-long run must not grow these
        with self._lock:
            self.rejected &= live
        self.order.keep_only(live)
        for v in [v for v in self._retry if v not in live]:
            del self._retry[v]
        if not candidates and self.current_version is None:
            now = time.monotonic()
            if now - self._last_wait_log >= self.wait_log_every:
                self._last_wait_log = now
                log.info("Waiting for a checkpoint in %s ...", self.source.describe())
            return False
        ranked = sorted(((self.order.rank(v, self._polls), v) for v in candidates), reverse=True)
        for rank, version in ranked:
            if self._current_rank is not None and (version == self.current_version or rank <= self._current_rank):
                return False  # nothing newer than what is playing: never roll back
            if self.current_version is not None and version._replace(ctime_ns=0) == self.current_version._replace(ctime_ns=0):
                # only its ctime changed (chmod, chown) since it was loaded: these weights play already
                self.current_version, self._current_rank = version, rank
                return False
            if version in self.rejected or self._retry.get(version, (0, 0.0))[1] > time.monotonic():
                continue
            if not self.source.atomic and not self.events.complete(version):  # no close/rename event vouches for it: look twice
                if self._wake.wait(self.settle):
                    return False  # stopping, or an event came (maybe vouching for it): look again now
                if stat_version(version.path) != version:
                    return False  # still being written: look again at the next check (or event)
            try:
                loaded = self._load(version)
            except CheckpointError as e:
                if not self._stop.is_set():
                    self._failed(version, e)
                continue
            self._retry.pop(version, None)
            self.current_version, self._current_rank = version, rank
            loaded.phases.update(check=checked, put=time.monotonic())
            if self.events.last_event_at is not None:
                loaded.phases["event"] = self.events.last_event_at
            self.mailbox.put(loaded)
            self.loading.tidy()  # the previous blobs: after the hand-over, not on the next reload's clock
            return True
        return False

    def _failed(self, version: FileVersion, e: CheckpointError) -> None:
        now = time.monotonic()
        count = self._retry.get(version, (0, 0.0))[0] + 1
        age = time.time() - min(version.mtime, self.order.seen_mtime(version))
        if e.kind == TRANSIENT or (e.kind == BAD and age < FRESH_S and count == 1):
            # transient, or a corrupt file so young it may still be being written: try again later
            delay = min(max(self.interval, 0.5) * 2 ** (count - 1), MAX_BACKOFF_S)
            self._retry[version] = (count, now + (delay if e.kind == TRANSIENT else FRESH_S - age))
            if e.kind == TRANSIENT:
                self._error("load:%s:%s" % (version.path, e), "Cannot load %s yet: %s; retrying" % (version.path, e))
            return
        with self._lock:
            self.rejected.add(version)
        if self.current_version is not None:
            tail = "; still playing %s" % os.path.basename(self.current_version.path)
        elif e.kind == MISMATCH and self.source.kind == "file":
            tail = ""
        else:
            tail = "; nothing is playing yet: waiting for a %s" % (
                "checkpoint that fits this network" if e.kind == MISMATCH else "usable checkpoint")
        self._note("Skipping %s: %s" % (version.path, e))
        log.warning("Skipping %s: %s%s", version.path, e, tail)
        if e.kind == MISMATCH and self.source.kind == "file" and self.current_version is None:
            self.fatal = e
            self.mailbox.wake()

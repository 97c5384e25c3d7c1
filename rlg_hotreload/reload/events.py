"""File events that wake the watcher the moment a checkpoint is complete, instead of at its next timer check.

Why events: with a timer alone, reload latency is the timer's period (half of it on average, 30 s at the
default ``reloadInterval``). watchdog's native observer (inotify, FSEvents, kqueue, ReadDirectoryChangesW)
tells us at once. The timer stays as a safety net: events only wake the watcher early, so a missed or
dropped event (queue overflow, an observer that died, a hard link, which makes no event we listen to)
costs at most one ``reloadInterval``, as before.

Why "complete" hints: on Linux a close after writing (``IN_CLOSE_WRITE``: rl-games' plain ``torch.save``
to the final path) or a rename into place (``IN_MOVED_TO``: rsync, atomic writers) says the writer is
done. For the file version seen at that moment the watcher skips its 0.1 s stability look; it still
loads it weights-only and validates keys, shapes and finiteness, and the loader still refuses a file
that changes while being read. Other platforms' observers report no close: their events wake the
watcher, which then makes its usual stability look. We do not listen to "modified" on Linux: a 50 MB
save is thousands of writes, each an event through Python threads next to the player.

Why polling for network filesystems: NFS, SMB, SSHFS and other FUSE mounts, 9p and virtiofs deliver
no events for writes made on another machine (the training host). ``watch=auto`` keeps such folders on
the timer alone (see :mod:`~rlg_hotreload.reload.fstype`); ``watch=events`` forces events (the writer is
on this host), ``watch=poll`` never starts an observer.

Why no debounce: a close or rename event of a ``.pth`` file wakes the watcher at once, and the watcher
loads that very version without its stability look; the time of the last such event is kept
(``last_event_at``) so that a reload's phases can be traced from the event on.

Why a missing folder's ancestor is watched: ``checkpoint=latest`` before training started, or a run
folder whose ``nn/`` does not exist yet. Watching the nearest existing ancestor (not recursively) wakes
the watcher when the folder appears; the watcher then watches the folder itself.
"""

import collections
import errno
import logging
import os
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from rlg_hotreload.reload.fstype import fs_type, is_network_fs
from rlg_hotreload.reload.source import LATEST_LINK, FileVersion

try:
    from watchdog.events import (
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileMovedEvent,
        FileSystemEventHandler,
    )  # fmt: skip
except ImportError:  # an install without watchdog: the timer alone, with one warning
    FileSystemEventHandler = object

log = logging.getLogger("rlg_hotreload")

MODES = ("auto", "events", "poll")
HINTS_KEPT = 64


def _make_observer() -> Any:
    """watchdog's native observer; on Linux with unmatched renames reported as moves, not creations."""
    if FileSystemEventHandler is object:
        raise RuntimeError("watchdog is not installed")
    from watchdog.observers import Observer

    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux
        InotifyObserver = None  # noqa: N806
    if InotifyObserver is not None and Observer is InotifyObserver:
        return Observer(generate_full_events=True)
    return Observer()


class FileEvents:
    """Native file events on a set of folders, with a timer fallback per folder.

    ``wake`` is set by every relevant event; :meth:`complete` says whether a close or rename event saw
    exactly this file version. Every observer failure (no watchdog, the inotify watch or instance limit,
    an observer thread that died) ends events for good with one warning: the timer goes on alone.
    """

    def __init__(self, mode: str, wake: threading.Event, interval: float) -> None:
        if mode not in MODES:
            raise ValueError("watch=%s: allowed values are %s" % (mode, ", ".join(MODES)))
        self.mode = mode
        self.wake = wake
        self.interval = interval
        self.failed: Optional[str] = None
        self.native = False  # the observer reports closes (inotify): events carry "complete" hints
        self._observer: Any = None
        self._watches: Dict[str, Tuple[str, int]] = {}  # wanted folder -> (folder watched, its inode)
        self._targets: Dict[str, Tuple[Any, int]] = {}  # folder watched -> (watchdog's watch, inode)
        self._polled: Dict[str, str] = {}  # wanted folder -> why it is left to the timer
        self._hints: "collections.OrderedDict[Tuple[int, int, int], None]" = collections.OrderedDict()
        self._lock = threading.Lock()
        self._handler_errors = 0
        self._announced = False
        self.last_event_at: Optional[float] = None  # time.monotonic() of the last close/rename of a .pth

    # -- the observer's thread -----------------------------------------------------------------------
    def on_event(self, event: Any) -> None:
        """Called by watchdog for every event: decide fast, never raise (that would end the observer)."""
        try:
            self._on_event(event)
        except Exception as e:  # noqa: BLE001 - the observer thread must survive; the timer still runs
            self._handler_errors += 1
            if self._handler_errors == 1:
                log.warning("File event handler failed (%s: %s); the timer still checks", type(e).__name__, e)
            self.wake.set()

    def _on_event(self, event: Any) -> None:
        path = getattr(event, "dest_path", "") or event.src_path
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if event.event_type == "deleted":
            if event.is_directory or path in self._targets:  # a watched folder's own deletion has no IN_ISDIR
                self.wake.set()  # a folder we watch is gone: watch what replaces it
            return
        if event.is_directory:
            if event.event_type in ("created", "moved"):
                self.wake.set()  # a new run folder, nn/ appearing, a folder we wait for
            return
        name = os.path.basename(path)
        if name == LATEST_LINK:
            self.wake.set()
            return
        if name.startswith(".") or not name.endswith(".pth"):
            return  # rsync's temp file, TensorBoard summaries, ...
        if self.native and event.event_type == "created" and not os.path.islink(path):
            return  # a writer opened it: its close (or the timer) follows
        if event.event_type in ("closed", "moved") or (self.native and event.event_type == "created"):
            try:
                st = os.stat(path)
            except OSError:
                st = None  # renamed or deleted again since: nothing to vouch for
            if st is not None:
                self.last_event_at = time.monotonic()
                with self._lock:
                    self._hints[(st.st_size, st.st_mtime_ns, st.st_ino)] = None
                    while len(self._hints) > HINTS_KEPT:
                        self._hints.popitem(last=False)
        self.wake.set()

    # -- the watcher's thread ------------------------------------------------------------------------
    def complete(self, v: FileVersion) -> bool:
        """A close-after-write or a rename event saw exactly this version (size, mtime, inode)."""
        with self._lock:
            return (v.size, v.mtime_ns, v.inode) in self._hints

    @property
    def active(self) -> bool:
        return self.mode != "poll" and self.failed is None

    def sync(self, wanted: Sequence[str]) -> bool:
        """Watch these folders (not recursively) and stop watching others; True if a watch was added.

        A folder that does not exist yet is watched through its nearest existing ancestor.
        """
        if not self.active:
            return False
        added = False
        try:
            if self._observer is None:
                self._start()
            elif not self._observer_alive():
                raise RuntimeError("the file event observer stopped")
            for folder in [f for f in self._watches if f not in wanted]:
                self._unwatch(folder)
            self._polled = {f: k for f, k in self._polled.items() if f in wanted}
            for folder in wanted:
                try:
                    added = self._watch(folder) or added
                except OSError as e:
                    if e.errno not in (errno.ENOENT, errno.ENOTDIR):
                        raise
                    # deleted while we looked: the next sync watches what is there then
        except Exception as e:  # noqa: BLE001 - ENOSPC (inotify limit), EMFILE, no watchdog, a dead thread
            self._fail(e)
            return False
        if added and not self._announced:
            self._announced = True
            log.info("Watching for new checkpoints with file events (%s)%s",
                     type(self._observer).__name__.replace("Observer", "") or "native",
                     "; checking every %g s as well" % self.interval if self.interval > 0 else "")  # fmt: skip
        return added

    def _start(self) -> None:
        observer = _make_observer()
        observer.start()
        self._observer = observer
        self.native = type(observer).__name__ == "InotifyObserver"

    def _observer_alive(self) -> bool:
        return bool(self._observer.is_alive())  # an emitter ends when its folder is deleted: re-watched below

    def _watch(self, folder: str) -> bool:
        target = folder
        while not os.path.isdir(target):
            parent = os.path.dirname(os.path.abspath(target))
            if parent == target:
                return False
            target = parent
        target = os.path.realpath(target)
        ino = os.stat(target).st_ino  # a folder deleted and made again is a new folder to watch
        if self._watches.get(folder) == (target, ino):
            return False
        if folder in self._watches:
            self._unwatch(folder)
        if self.mode == "auto":
            kind = fs_type(target)
            if is_network_fs(kind):
                if self._polled.get(folder) != kind:
                    self._polled[folder] = kind or ""
                    log.info("%s is on %s (no file events from other machines): checking it every %g s",
                             folder, kind, self.interval)  # fmt: skip
                return False
        self._polled.pop(folder, None)
        kinds: List[Any] = [FileClosedEvent, FileMovedEvent, FileCreatedEvent, DirCreatedEvent, DirMovedEvent,
                            DirDeletedEvent, FileDeletedEvent]  # fmt: skip
        if not self.native:
            kinds = None  # type: ignore[assignment]  # no close events: any change wakes the watcher
        current = self._targets.get(target)
        if current is None or current[1] != ino:
            if current is not None:
                self._unschedule(current[0])
            watch = self._observer.schedule(_Handler(self.on_event), target, recursive=False, event_filter=kinds)
            self._targets[target] = (watch, ino)
        self._watches[folder] = (target, ino)
        return True

    def _unwatch(self, folder: str) -> None:
        target, _ = self._watches.pop(folder)
        if target in self._targets and not any(t == target for t, _ in self._watches.values()):
            self._unschedule(self._targets.pop(target)[0])

    def _unschedule(self, watch: Any) -> None:
        try:
            self._observer.unschedule(watch)
        except KeyError:
            pass  # watchdog dropped it already (its folder was deleted)

    def _fail(self, e: Exception) -> None:
        self.failed = "%s: %s" % (type(e).__name__, e)
        hint = " (raise fs.inotify.max_user_watches?)" if getattr(e, "errno", None) == errno.ENOSPC else ""
        log.warning("File events unavailable (%s)%s; checking every %g s instead", e, hint, self.interval)
        self.close()

    def close(self) -> None:
        observer, self._observer = self._observer, None
        self._watches.clear()
        self._targets.clear()
        if observer is not None:
            try:
                observer.stop()
                observer.join(1.0)
            except Exception as e:  # noqa: BLE001 - closing is best effort; the thread is a daemon
                log.debug("closing the file event observer: %s", e)

    def describe(self) -> Dict[str, Any]:
        mode = "events" if self.active else "poll"
        out: Dict[str, Any] = {"mode": self.mode, "using": mode, "watching": sorted(self._targets)}
        if self._polled:
            out["polled"] = dict(self._polled)
        if self.failed:
            out["failed"] = self.failed
        return out


class _Handler(FileSystemEventHandler):  # type: ignore[misc,valid-type]
    """Hands every event to one callback (watchdog's per-type ``on_*`` methods are not needed)."""

    def __init__(self, callback: Any) -> None:
        super().__init__()
        self.callback = callback

    def dispatch(self, event: Any) -> None:
        self.callback(event)

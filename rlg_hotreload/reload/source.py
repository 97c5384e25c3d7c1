"""Where checkpoints come from: resolve a user's `checkpoint=` value to the candidate files that exist now.

Why a separate module: the *source* of checkpoints (a file, an experiment folder, `latest`) is policy
that changes while the monitor runs — a new training run starts, a file is deleted, rsync renames a
temp file — while loading is mechanism. Keeping them apart lets the watcher re-resolve the source at
every check, so a new run is followed.

Only plain `*.pth` names count. Hidden files (rsync's `.<name>.XXXXXX` temp files, editors' swap
files) are ignored, so a half-copied file is never a candidate; it becomes one when renamed. A single
bad entry (a symlink loop, an entry that cannot be stat'ed) is reported in :attr:`problems` and
skipped; it never hides the other files. An error on the folder itself (NFS ``ESTALE``, SSHFS
``ENOTCONN``, a permission change) is raised as ``OSError``: the watcher logs it and retries.
"""

import errno
import os
from typing import Dict, List, NamedTuple, Optional

LATEST = "latest"
LATEST_LINK = "latest_train"
_GONE = (errno.ENOENT, errno.ENOTDIR)


class FileVersion(NamedTuple):
    """Identity of one version of one file: a rewrite in place, a rename or a chmod changes it.

    ``tag``: an object store's ETag/generation (remote sources, where ``inode`` and ``ctime_ns`` are 0).
    """

    path: str
    size: int
    mtime_ns: int
    inode: int
    ctime_ns: int = 0
    tag: str = ""

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


def stat_version(path: str) -> Optional[FileVersion]:
    """One stat (following symlinks); None if the file vanished. Other ``OSError``s are raised."""
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno in _GONE:
            return None
        raise
    return FileVersion(path, st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def _listdir(folder: str) -> List[str]:
    """Names in ``folder``; [] if it does not exist (yet). Other errors are raised."""
    try:
        return os.listdir(folder)
    except OSError as e:
        if e.errno in _GONE:
            return []
        raise


class CheckpointSource:
    """A user's checkpoint spec, re-resolved on every call to :meth:`candidates`.

    - a `.pth` file: that file (it may not exist yet: the monitor waits for it);
    - a folder: its `nn/*.pth` (or its own `*.pth`);
    - `latest`: `<train_dir>/latest_train` when that link exists, else the run folder in `train_dir`
      whose newest checkpoint is the newest of all.
    """

    atomic = False  # files may be seen half-written: the watcher looks twice before loading

    def __init__(self, spec: str, train_dir: str = "runs") -> None:
        self.spec = spec
        self.train_dir = train_dir
        #: entries skipped by the last call, path -> reason (the watcher logs each once)
        self.problems: Dict[str, str] = {}
        self._run: Optional[str] = None  # the run folder the last call to candidates() listed
        if spec == LATEST:
            self.kind = "latest"
        elif spec.endswith(".pth") or os.path.isfile(spec):
            self.kind = "file"
        else:
            self.kind = "folder"

    def describe(self) -> str:
        if self.kind == "latest":
            return "latest run in %s" % self.train_dir
        return self.spec

    def _files(self, folder: str) -> List[FileVersion]:
        out = []
        for name in _listdir(folder):
            if name.startswith(".") or not name.endswith(".pth"):
                continue
            path = os.path.join(folder, name)
            try:
                v = stat_version(path)
            except OSError as e:  # a symlink loop, a dead mount point: skip this entry only
                self.problems[path] = e.strerror or type(e).__name__
                continue
            if v is not None and not os.path.isdir(path):
                out.append(v)  # FIFOs and devices too: reading refuses them with a reason
        return out

    def _run_files(self, run_dir: str) -> List[FileVersion]:
        """Checkpoints of one experiment folder: `<run>/nn/*.pth`, or `*.pth` directly inside it."""
        nn = os.path.join(run_dir, "nn")
        return self._files(nn) if os.path.isdir(nn) else self._files(run_dir)

    def run_dir(self) -> Optional[str]:
        """The experiment folder currently followed (for `latest`), or None."""
        if self.kind == "folder":
            return self.spec
        if self.kind == "file":
            return os.path.dirname(self.spec) or "."
        link = os.path.join(self.train_dir, LATEST_LINK)
        if os.path.isdir(link):
            # name the run itself (not the link) so logs say which run is playing
            target = os.readlink(link) if os.path.islink(link) else LATEST_LINK
            return os.path.join(self.train_dir, target)
        best: Optional[FileVersion] = None
        best_dir = None
        for name in _listdir(self.train_dir):
            d = os.path.join(self.train_dir, name)
            if name.startswith(".") or name == LATEST_LINK or not os.path.isdir(d):
                continue
            try:
                files = self._run_files(d)
            except OSError as e:  # one unreadable run folder must not hide the others
                self.problems[d] = e.strerror or type(e).__name__
                continue
            newest = max(files, key=lambda v: v.mtime_ns, default=None)
            if newest is not None and (best is None or newest.mtime_ns > best.mtime_ns):
                best, best_dir = newest, d
        return best_dir

    def candidates(self) -> List[FileVersion]:
        """Existing checkpoint files, newest mtime first; raises ``OSError`` for an unusable folder."""
        self.problems = {}
        if self.kind == "file":
            try:
                v = stat_version(self.spec)
            except OSError as e:
                self.problems[self.spec] = e.strerror or type(e).__name__
                return []
            return [v] if v is not None else []
        d = self._run = self.run_dir()
        files = self._run_files(d) if d else []
        return sorted(files, key=lambda v: (v.mtime_ns, v.path), reverse=True)

    def watch_dirs(self) -> List[str]:
        """Folders whose changes may bring a new candidate (for file events; they need not exist).

        For `latest`: the training folder (new runs, the `latest_train` link), the run followed and the
        run folder changed last (a new run, before it holds its first checkpoint).
        """
        if self.kind == "file":
            return [os.path.dirname(self.spec) or "."]
        if self.kind == "folder":
            return [self.spec, os.path.join(self.spec, "nn")]
        runs = [self._run] if self._run else []
        newest, newest_mtime = None, 0
        for name in _listdir(self.train_dir):
            d = os.path.join(self.train_dir, name)
            try:
                st = os.stat(d)
            except OSError:
                continue  # gone, or a symlink loop: reported by candidates() if it matters
            if not name.startswith(".") and name != LATEST_LINK and os.path.isdir(d) and st.st_mtime_ns > newest_mtime:
                newest, newest_mtime = d, st.st_mtime_ns
        if newest is not None and newest not in runs:
            runs.append(newest)
        return [self.train_dir] + [p for r in runs for p in (r, os.path.join(r, "nn"))]

    def fetch(self, version: FileVersion, max_bytes: int) -> FileVersion:
        """The local file to load for ``version`` (a remote source downloads it first)."""
        return version

    def release(self, local: FileVersion) -> None:
        """Done with what :meth:`fetch` returned (a remote source deletes its temp copy)."""

    def close(self) -> None:
        """Release what the source holds (a remote source's temp folder)."""

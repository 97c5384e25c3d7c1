"""Where checkpoints come from: resolve a user's `checkpoint=` value to the newest candidate files.

Why a separate module: the *source* of checkpoints (a file, an experiment folder, `latest`) is policy
that changes while the monitor runs — a new training run starts, a file is deleted, rsync renames a
temp file — while loading is mechanism. Keeping them apart (as watchdog separates event sources from
handlers) lets the loader re-resolve the source at every check, so a new run is followed.

Only plain `*.pth` files count. Hidden files (rsync's `.<name>.XXXXXX` temp files, editors' swap
files) are ignored, so a half-copied file is never a candidate; it becomes one when renamed.
"""

import os
from typing import List, NamedTuple, Optional

LATEST = "latest"
LATEST_LINK = "latest_train"


class FileVersion(NamedTuple):
    """Identity of one version of one file: a rewrite in place or a rename changes it."""

    path: str
    size: int
    mtime_ns: int
    inode: int

    @property
    def mtime(self) -> float:
        return self.mtime_ns / 1e9


def stat_version(path: str) -> Optional[FileVersion]:
    """One stat; None if the file vanished (deleted or renamed between listing and stat)."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return FileVersion(path, st.st_size, st.st_mtime_ns, st.st_ino)


def _checkpoint_files(folder: str) -> List[FileVersion]:
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for name in names:
        if name.startswith(".") or not name.endswith(".pth"):
            continue
        v = stat_version(os.path.join(folder, name))
        if v is not None and os.path.isfile(v.path):
            out.append(v)
    return out


def _run_checkpoints(run_dir: str) -> List[FileVersion]:
    """Checkpoints of one experiment folder: `<run>/nn/*.pth`, or `*.pth` directly inside it."""
    nn = os.path.join(run_dir, "nn")
    return _checkpoint_files(nn) if os.path.isdir(nn) else _checkpoint_files(run_dir)


def _newest_first(files: List[FileVersion]) -> List[FileVersion]:
    return sorted(files, key=lambda v: (v.mtime_ns, v.path), reverse=True)


class CheckpointSource:
    """A user's checkpoint spec, re-resolved on every call to :meth:`candidates`.

    - a `.pth` file: that file (it may not exist yet: the monitor waits for it);
    - a folder: its `nn/*.pth` (or its own `*.pth`), newest first;
    - `latest`: `<train_dir>/latest_train` when that link exists, else the run folder in `train_dir`
      whose newest checkpoint is the newest of all.
    """

    def __init__(self, spec: str, train_dir: str = "runs") -> None:
        self.spec = spec
        self.train_dir = train_dir
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
        try:
            entries = os.listdir(self.train_dir)
        except (FileNotFoundError, NotADirectoryError):
            return None
        for name in entries:
            d = os.path.join(self.train_dir, name)
            if name.startswith(".") or name == LATEST_LINK or not os.path.isdir(d):
                continue
            files = _newest_first(_run_checkpoints(d))
            if files and (best is None or files[0].mtime_ns > best.mtime_ns):
                best, best_dir = files[0], d
        return best_dir

    def candidates(self) -> List[FileVersion]:
        """Existing checkpoint files, newest first. Never raises for missing paths."""
        if self.kind == "file":
            v = stat_version(self.spec)
            return [v] if v is not None else []
        d = self.run_dir()
        return _newest_first(_run_checkpoints(d)) if d else []

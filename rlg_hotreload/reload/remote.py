"""Checkpoints in object storage or on a remote filesystem, through fsspec (``s3://``, ``gs://``, ``sftp://``...).

Why fsspec: one interface for every store (S3 and S3-compatible servers through s3fs, GCS through gcsfs,
SFTP, ...); credentials and endpoints come from each store's standard environment (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID``, profiles, ...) or from ``train.storageOptions``, passed to fsspec as is.

Why versions by ETag and not by time: an object store's ``LastModified`` has one-second resolution and
comes from the server; an overwrite within the same second, or a copy that keeps the date, would look
unchanged. A version is (URL, size, ETag/generation); ``LastModified`` only orders versions of one check.

Why one LIST per check: requests cost money and latency, and fsspec caches listings (a stale cache
would hide new uploads). Each check drops the cache and makes one recursive listing (``find``) of the
run folder or the training prefix (one ``ls`` of the parent for a single object).

Why download, then load like a local file: the loader (child process, weights-only unpickling, the
checks of keys, shapes and finiteness) stays the one path every checkpoint goes through. An object is
copied to a private temp folder (no more than ``maxCheckpointMB``; an object that changed since it was
listed is retried), loaded, then deleted. An object store writes an object at once (a PUT is visible
only when complete), so the watcher makes no stability look. Network errors are ``OSError``s for the
watcher: a warning once per cause, retries with backoff, playback goes on.
"""

import logging
import os
import re
import shutil
import tempfile
from datetime import datetime
from typing import Any, Dict, List, Optional, Tuple

from rlg_hotreload.reload.checkpoint import BAD, TRANSIENT, CheckpointError, one_line
from rlg_hotreload.reload.source import LATEST, LATEST_LINK, CheckpointSource, FileVersion, stat_version

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
INSTALL_HINT = "pip install 'rlg-hotreload[remote]'"
#: fail fast at start (an unreachable endpoint in seconds, not minutes); storageOptions may override
_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "s3": {"config_kwargs": {"connect_timeout": 3, "read_timeout": 30,
                                           "retries": {"max_attempts": 2, "mode": "standard"}}},  # fmt: skip
}
_CHUNK = 1 << 20


class RemoteError(OSError):
    """A store that cannot be listed or read now (network, credentials, missing bucket); one line."""


def protocol(spec: str) -> Optional[str]:
    """The URL scheme of ``spec`` (``s3``), or None for a local path (``C:\\x`` is no URL)."""
    m = _URL.match(spec or "")
    return m.group(1).lower() if m and len(m.group(1)) > 1 else None


def redact(url: str) -> str:
    """``url`` without a password or user name (for logs, ``/status`` and the summary)."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1", url)


def _merge(base: Dict[str, Any], over: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def describe_error(e: BaseException) -> str:
    """One line for a store error, naming the usual cause (credentials, endpoint, bucket)."""
    name = type(e).__name__
    text = one_line(e)
    if name in ("NoCredentialsError", "PartialCredentialsError"):
        return "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or train.storageOptions)"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ClientConnectorError", "ConnectionRefusedError"):
        return "cannot reach the endpoint: %s" % text
    if isinstance(e, FileNotFoundError):
        return "does not exist (%s)" % text
    if isinstance(e, PermissionError):
        return "access denied (%s)" % text
    return text if text.startswith(name) else "%s: %s" % (name, text)


def _mtime_ns(info: Dict[str, Any]) -> int:
    for key in ("LastModified", "mtime", "updated", "last_modified", "created"):
        t = info.get(key)
        if isinstance(t, datetime):
            return int(t.timestamp() * 1e9)
        if isinstance(t, (int, float)):
            return int(t * 1e9)
        if isinstance(t, str):
            try:
                return int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1e9)
            except ValueError:
                continue
    return 0


def _tag(info: Dict[str, Any]) -> str:
    """What tells versions of one object apart: ETag (S3), generation (GCS), a version id, else nothing."""
    for key in ("ETag", "etag", "generation", "VersionId", "version_id", "md5Hash"):
        if info.get(key):
            return str(info[key]).strip('"')
    return ""


class RemoteSource(CheckpointSource):
    """A checkpoint spec that is a URL: one object (``.pth``), a run folder (its ``nn/*.pth``), or
    ``latest`` with ``trainDir`` a URL (the run named by a ``latest_train`` marker, else the run whose
    newest checkpoint is the newest). Same interface as the local source, plus fetch/release/close."""

    atomic = True  # objects appear complete: no stability look

    def __init__(self, spec: str, train_dir: str = "runs", storage_options: Optional[Dict[str, Any]] = None) -> None:
        import fsspec  # lazy: only remote sources need it (extra `remote`)

        for name in ("botocore", "aiobotocore", "s3fs"):  # "Found credentials in ...": not the user's news
            if logging.getLogger(name).level == logging.NOTSET:
                logging.getLogger(name).setLevel(logging.WARNING)

        super().__init__(spec, train_dir)
        self.url = train_dir if spec == LATEST else spec
        self.url = self.url.rstrip("/")
        self.kind = "latest" if spec == LATEST else ("file" if self.url.endswith(".pth") else "folder")
        proto = protocol(self.url) or ""
        opts = _merge(_DEFAULTS.get(proto, {}), dict(storage_options or {}))
        self.fs, self.root = fsspec.core.url_to_fs(self.url, skip_instance_cache=True, **opts)
        self.root = self.root.rstrip("/")
        self._names: Dict[str, str] = {}  # URL -> the store's path
        self._marker: Tuple[str, str] = ("", "")  # latest_train marker: (tag, run name)
        self._tmp: Optional[str] = None
        self._count = 0

    def describe(self) -> str:
        return "latest run in %s" % redact(self.url) if self.kind == "latest" else redact(self.url)

    def _url(self, name: str) -> str:
        url = redact(self.fs.unstrip_protocol(name))
        self._names[url] = name
        return url

    def _version(self, info: Dict[str, Any]) -> FileVersion:
        size = int(info.get("size") or info.get("Size") or 0)
        return FileVersion(self._url(info["name"]), size, _mtime_ns(info), 0, 0, _tag(info))

    def _list(self) -> Dict[str, Dict[str, Any]]:
        """The one listing of this check: name -> info (files only)."""
        self.fs.invalidate_cache()
        try:
            if self.kind == "file":
                parent = self.root.rsplit("/", 1)[0]
                infos = self.fs.ls(parent, detail=True)
                return {i["name"].rstrip("/"): i for i in infos if i.get("type") != "directory"}
            return dict(self.fs.find(self.root, detail=True))
        except FileNotFoundError as e:
            if self.kind != "file":
                raise RemoteError(describe_error(e)) from e
            return {}  # the parent prefix holds nothing yet
        except Exception as e:  # noqa: BLE001 - botocore/aiohttp errors are no OSErrors: re-raised as one
            raise RemoteError(describe_error(e)) from e

    @staticmethod
    def _by_folder(listing: Dict[str, Dict[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
        """Checkpoint objects (``*.pth``, not hidden) grouped by the folder they are in."""
        out: Dict[str, List[Dict[str, Any]]] = {}
        for name, info in listing.items():
            head, _, base = name.rpartition("/")
            if base.endswith(".pth") and not base.startswith("."):
                out.setdefault(head, []).append(info)
        return out

    def _run_files(self, folders: Dict[str, List[Dict[str, Any]]], run: str) -> List[Dict[str, Any]]:  # type: ignore[override]
        return folders.get(run + "/nn") or folders.get(run) or []

    def _latest_run(self, listing: Dict[str, Dict[str, Any]], folders: Dict[str, List[Dict[str, Any]]]) -> Optional[str]:
        prefix = self.root + "/"
        runs = {name[len(prefix):].split("/", 1)[0] for name in listing
                if name.startswith(prefix) and "/" in name[len(prefix):]}  # fmt: skip
        marker = listing.get(prefix + LATEST_LINK)
        if marker is not None:  # an object naming the run (a symlink cannot be uploaded)
            run = self._read_marker(marker)
            if run:
                return prefix + run
        if LATEST_LINK in runs:  # a synced copy of the latest_train folder
            return prefix + LATEST_LINK
        best, best_t = None, -1
        for run in sorted(runs):
            if run.startswith("."):
                continue
            t = max((_mtime_ns(i) for i in self._run_files(folders, prefix + run)), default=-1)
            if t > best_t:
                best, best_t = prefix + run, t
        return best

    def _read_marker(self, info: Dict[str, Any]) -> str:
        tag = _tag(info) or str(_mtime_ns(info))
        if self._marker[0] != tag:  # a GET only when the marker changed
            with self.fs.open(info["name"], "rb") as f:
                text = f.read(4096).decode("utf-8", "replace").strip().strip("/")
            self._marker = (tag, text.rsplit("/", 1)[-1])
        return self._marker[1]

    def candidates(self) -> List[FileVersion]:
        """Objects that are checkpoints now, newest first; raises RemoteError (an OSError) if unlistable."""
        self.problems = {}
        listing = self._list()
        if self.kind == "file":
            infos = [listing[self.root]] if self.root in listing else []
        else:
            folders = self._by_folder(listing)
            try:
                run = self.root if self.kind == "folder" else self._latest_run(listing, folders)
            except Exception as e:  # noqa: BLE001 - reading the marker: re-raised as one OSError
                raise RemoteError("cannot read %s: %s" % (LATEST_LINK, describe_error(e))) from e
            self._run = run
            infos = self._run_files(folders, run) if run else []
        self._names = {}
        versions = [self._version(i) for i in infos]
        return sorted(versions, key=lambda v: (v.mtime_ns, v.path), reverse=True)

    def run_dir(self) -> Optional[str]:
        return self.fs.unstrip_protocol(self._run) if self._run else None

    def watch_dirs(self) -> List[str]:
        return []  # no file events from a store: the timer alone

    # -- the download -------------------------------------------------------------------------------
    def fetch(self, version: FileVersion, max_bytes: int) -> FileVersion:
        """Download ``version`` to a private temp file; its local version. CheckpointError if unusable."""
        if version.size > max_bytes:
            raise CheckpointError("%.0f MB is more than maxCheckpointMB=%d" % (version.size / 2**20, max_bytes // 2**20))
        if self._tmp is None:
            self._tmp = tempfile.mkdtemp(prefix="rlg-hotreload-remote-")
        self._count += 1
        part = os.path.join(self._tmp, ".part-%d" % self._count)
        final = os.path.join(self._tmp, "%d-%s" % (self._count, version.path.rsplit("/", 1)[-1]))
        try:
            with self.fs.open(self._names.get(version.path, version.path), "rb") as src, open(part, "wb") as dst:
                details = getattr(src, "details", None) or {}
                if version.tag and _tag(details) and _tag(details) != version.tag:
                    raise CheckpointError("changed since it was listed", TRANSIENT)
                total = 0
                while True:
                    chunk = src.read(_CHUNK)
                    if not chunk:
                        break
                    total += len(chunk)
                    if total > max_bytes:
                        raise CheckpointError("more than maxCheckpointMB=%d" % (max_bytes // 2**20), BAD)
                    dst.write(chunk)
            os.replace(part, final)
        except CheckpointError:
            _remove(part)
            raise
        except Exception as e:  # noqa: BLE001 - any store error: the object is tried again later
            _remove(part)
            if type(e).__name__ == "FileExpired":  # s3fs reads with If-Match: the listed ETag
                raise CheckpointError("changed since it was listed", TRANSIENT) from e
            raise CheckpointError("cannot download (%s)" % describe_error(e), TRANSIENT) from e
        local = stat_version(final)
        if local is None:
            raise CheckpointError("downloaded copy vanished from %s" % self._tmp, TRANSIENT)
        return local

    def release(self, local: FileVersion) -> None:
        _remove(local.path)

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def make_source(spec: str, train_dir: str = "runs", storage_options: Optional[Dict[str, Any]] = None) -> CheckpointSource:
    """A :class:`RemoteSource` for a URL (or ``latest`` in a URL ``trainDir``), else the local source."""
    if protocol(spec) or (spec == LATEST and protocol(train_dir)):
        return RemoteSource(spec, train_dir, storage_options)
    return CheckpointSource(spec, train_dir)

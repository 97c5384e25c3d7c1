"""Start-up checks of a remote checkpoint source: fail in seconds with one line, before any env is built.

Why at start and only then: a typo in a bucket name, missing credentials or an endpoint that does not
answer are the user's to fix, and the monitor would otherwise wait forever with a warning per cause. Once
playing, the same failures are outages: the watcher warns and retries (:mod:`~rlg_hotreload.reload.remote`).
"""

from typing import Any, Dict, Optional

from rlg_hotreload.reload.checkpoint import one_line
from rlg_hotreload.reload.remote import (
    INSTALL_HINT,
    RemoteError,
    RemoteSource,
    describe_error,
    protocol,
    redact,
)
from rlg_hotreload.reload.source import LATEST


def check_remote(spec: str, train_dir: str, storage_options: Optional[Dict[str, Any]], watch: str) -> None:
    """At start: the protocol is installed, the store answers, the bucket exists; ValueError (one line)."""
    url = train_dir if spec == LATEST else spec
    key = "train.trainDir" if spec == LATEST else "train.checkpoint"
    proto = protocol(url) or ""
    import fsspec

    try:
        fsspec.get_filesystem_class(proto)
    except ImportError as e:
        hint = INSTALL_HINT if proto in ("s3", "s3a") else "install the fsspec package for %s://" % proto
        raise ValueError("%s=%s: the %s protocol needs a package that is not installed (%s); %s"
                         % (key, redact(url), proto, one_line(e).rstrip("."), hint)) from e  # fmt: skip
    except ValueError as e:
        raise ValueError("%s=%s: unknown protocol '%s'; allowed: a path or an fsspec URL (s3://, gs://, sftp://, ...)"
                         % (key, redact(url), proto)) from e  # fmt: skip
    if watch == "events":
        raise ValueError("train.watch=events: %s is remote and sends no file events; allowed with a URL: auto, poll"
                         % redact(url))  # fmt: skip
    what = "%s=%s" % (key, redact(url))
    try:
        source = RemoteSource(spec, train_dir, storage_options)
        try:
            if source.kind == "file":
                source.fs.ls(source.root.split("/", 1)[0])  # the bucket must exist; the object may come later
            else:
                source.candidates()
        finally:
            source.close()
    except Exception as e:  # noqa: BLE001 - any store error at start: one line, exit 2
        cause = e.__cause__ if isinstance(e, RemoteError) and e.__cause__ is not None else e
        if isinstance(cause, TypeError) and storage_options:  # an option this store does not take
            what = "train.storageOptions=%s" % sorted(storage_options)
        raise ValueError("%s: %s" % (what, describe_error(cause))) from e

"""The stream's ready file: where a script learns the URL of a monitor it started.

Why a file and not the log: the port may differ from the one asked for (busy ports are skipped), and a
log line is for humans (its wording may change). The streamer writes ``{"url", "port", "pid"}`` as JSON
once it serves, atomically (temp file + rename), so a reader never sees a half-written file.
It lives outside stream/ and imports only the standard library: a launcher reads it without Flask.
"""

import json
import os
import time
from typing import Any, Callable, Dict, Optional


def write_ready_file(path: str, url: str, port: int) -> None:
    """Write the ready file atomically (readers see nothing, or all of it)."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    with open(tmp, "w") as f:
        json.dump({"url": url, "port": port, "pid": os.getpid()}, f)
    os.replace(tmp, path)


def wait_ready_file(
    path: str, timeout: float, alive: Optional[Callable[[], bool]] = None, poll_s: float = 0.1
) -> Optional[Dict[str, Any]]:
    """The ready file's content once it exists, or None after ``timeout`` s or once ``alive()`` is false.

    Polls: the file is written by another process, so there is no event to wait on here.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                data: Dict[str, Any] = json.load(f)
            return data
        except FileNotFoundError:
            pass  # not written yet
        if time.monotonic() >= deadline or (alive is not None and not alive()):
            return None
        time.sleep(poll_s)

"""Which of two checkpoint file versions is newer, when clocks disagree.

Why "first seen" orders versions: mtimes come from the writer's clock, which may be ahead (a file dated
in the future would otherwise block every later reload) or far behind (``rsync -a`` keeps the server's
mtime). A version seen in a later check is newer; within one check, mtime decides (a future mtime counts
as when the file last changed here, with one warning). The watcher never rolls back to a version seen
before the one playing.

Why apart from the watcher: this is pure bookkeeping (no thread, no I/O), and it is the one place that
defines "newer"; the watcher only asks.
"""

import logging
import time
from typing import Dict, Iterable, Set, Tuple

from rlg_hotreload.reload.source import FileVersion

log = logging.getLogger("rlg_hotreload")

FUTURE_SLACK_NS = 2 * 10**9

Rank = Tuple[int, int, str]


class VersionOrder:
    """Ranks of the versions seen: ``(check number first seen in, clamped mtime ns, path)``."""

    def __init__(self) -> None:
        self.seen: Dict[FileVersion, Tuple[int, int]] = {}  # (check no, clamped mtime ns)
        self._warned: Set[str] = set()

    def rank(self, v: FileVersion, check_no: int) -> Rank:
        """``v``'s rank; the first call for a version fixes it (``check_no`` = the current check)."""
        seen = self.seen.get(v)
        if seen is None:
            now_ns = time.time_ns()
            mtime = v.mtime_ns
            if mtime > now_ns + FUTURE_SLACK_NS:
                if v.path not in self._warned:
                    self._warned.add(v.path)
                    log.warning("%s is dated %.0f s in the future (clock skew?); treating it as written now",
                                v.path, (mtime - now_ns) / 1e9)  # fmt: skip
                # "now" = when it last changed here: ctime comes from this machine's clock (utime can't set it)
                mtime = min(now_ns, v.ctime_ns or now_ns)
            seen = self.seen[v] = (check_no, mtime)
        return (seen[0], seen[1], v.path)  # a later check first, then the (clamped) mtime

    def seen_mtime(self, v: FileVersion) -> float:
        """``v``'s (clamped) mtime in epoch seconds, as ranked."""
        return self.seen[v][1] / 1e9

    def keep_only(self, live: Iterable[FileVersion]) -> None:
        """Forget versions that are gone: a days-long run must not grow this."""
        live = set(live)
        for v in [v for v in self.seen if v not in live]:
            del self.seen[v]

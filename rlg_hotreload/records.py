"""What a play session produced: loaded checkpoints, finished episodes, per-checkpoint and total numbers.

Why its own module: these records are the player's output, read by callbacks, the summary log, the
status page and library users; they are plain dataclasses that import nothing heavy, kept apart from the
callback protocol (:mod:`rlg_hotreload.callbacks`) that passes them around.
"""

import os
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional


@dataclass
class CheckpointInfo:
    """What the player knows about one loaded checkpoint (one per accepted file version)."""

    index: int  # 0 for the first checkpoint played, then 1, 2, ... in load order
    path: str
    epoch: Optional[int] = None
    frame: Optional[int] = None
    best_reward: Optional[float] = None
    mtime: float = 0.0  # file modification time (seconds since epoch)
    size: int = 0
    load_ms: float = 0.0
    loaded_at: float = 0.0  # time.time() when the swap happened

    @property
    def label(self) -> str:
        """Short human name used in logs, the status page and recording file names."""
        base = os.path.splitext(os.path.basename(self.path))[0]
        return "%s@ep%s" % (base, self.epoch if self.epoch is not None else "?")


@dataclass
class EpisodeRecord:
    """One finished episode, attributed to the checkpoint that played all of it (or ``None`` = mixed)."""

    env_index: int
    reward: float
    length: int
    checkpoint: Optional[int]  # CheckpointInfo.index, or None when a swap happened mid-episode
    #: whether the task called it a success (``infos["successes"]``); None when the task has no such signal
    success: Optional[bool] = None


@dataclass
class CheckpointStats:
    """Sums over finished episodes; ``success_rate`` counts only episodes whose task gave a success signal."""

    games: int = 0
    reward_sum: float = 0.0
    length_sum: float = 0.0
    successes: int = 0
    success_games: int = 0  # episodes that carried a success signal (all or none, for one task)

    def add(self, episode: EpisodeRecord) -> None:
        self.games += 1
        self.reward_sum += episode.reward
        self.length_sum += episode.length
        if episode.success is not None:
            self.success_games += 1
            self.successes += bool(episode.success)

    @property
    def success_rate(self) -> Optional[float]:
        """Successes / episodes with a success signal, in [0, 1]; None when no episode had one."""
        return self.successes / self.success_games if self.success_games else None

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.games if self.games else float("nan")

    @property
    def mean_length(self) -> float:
        return self.length_sum / self.games if self.games else float("nan")


@dataclass
class Summary(CheckpointStats):
    """End-of-run numbers: overall (the inherited games/sums/means/``success_rate``) and per checkpoint
    (key ``None`` = episodes spanning a swap)."""

    steps: int = 0
    reloads: int = 0
    per_checkpoint: Dict[Optional[int], CheckpointStats] = field(default_factory=dict)
    checkpoints: List[CheckpointInfo] = field(default_factory=list)
    watcher: Dict[str, Any] = field(default_factory=dict)  # the watcher's health at the end (see /status)

    def report_lines(self, max_rows: int = 20) -> List[str]:
        """The summary as log lines: totals, the watcher's health, the newest ``max_rows`` checkpoints."""
        out = [
            "Summary: %d games, mean reward %.2f, mean length %.1f%s, %d checkpoints, %d reloads"
            % (self.games, self.mean_reward, self.mean_length, _success(self, ", "), len(self.checkpoints),
               self.reloads)
        ]  # fmt: skip
        h = self.watcher
        if h:
            out.append("  watcher: %d checks%s, last %s s ago, %d errors%s" % (
                h.get("checks", 0), " of %s" % h["source"] if h.get("source") else "", h.get("last_check_age_s"),
                h.get("errors", 0),
                " (last: %s)" % h["last_error"] if h.get("last_error") else ""))  # fmt: skip
        rows = [(k, v) for k, v in self.per_checkpoint.items() if k is not None]
        if len(rows) > max_rows:
            out.append("  (%d older checkpoints not listed)" % (len(rows) - max_rows))
            rows = rows[-max_rows:]
        if None in self.per_checkpoint:
            rows.append((None, self.per_checkpoint[None]))
        for key, st in rows:
            name = self.checkpoints[key].label if key is not None else "mixed (spans a reload)"
            out.append("  %-40s games %4d  mean reward %9.2f  mean length %7.1f%s"
                       % (name, st.games, st.mean_reward, st.mean_length, _success(st, "  ")))  # fmt: skip
        return out


def _success(stats: CheckpointStats, sep: str) -> str:
    """``<sep>success 45.0 %`` when the task reports success, else nothing (never a misleading 0 %)."""
    rate = stats.success_rate
    return "" if rate is None else "%ssuccess %5.1f %%" % (sep, 100.0 * rate)

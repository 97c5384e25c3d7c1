"""Player callback protocol: the tiny hook surface the streamer, recorder and loggers use.

Why a protocol and not subclassing: a monitor usually wants several independent add-ons at once
(a frame streamer, an mp4 recorder, a TensorBoard logger). Like SB3 callbacks, each is a small object
with a few optional hooks, composed in a list and called by the player in a fixed order.

All hooks run on the player thread, between environment steps. They must return quickly: heavy work
(JPEG/mp4 encoding, network I/O) belongs on the callback's own thread. A callback that wants a frame
calls ``player.grab_frame()`` from ``on_step``; rendering happens only then, so nobody pays for
frames nobody watches, and the player keeps that frame for the rest of the step, so two callbacks
wanting it cost one render.
"""

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Protocol, Sequence

log = logging.getLogger("rlg_hotreload")


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
        import os

        base = os.path.splitext(os.path.basename(self.path))[0]
        return "%s@ep%s" % (base, self.epoch if self.epoch is not None else "?")


@dataclass
class EpisodeRecord:
    """One finished episode, attributed to the checkpoint that played all of it (or ``None`` = mixed)."""

    env_index: int
    reward: float
    length: int
    checkpoint: Optional[int]  # CheckpointInfo.index, or None when a swap happened mid-episode


@dataclass
class CheckpointStats:
    games: int = 0
    reward_sum: float = 0.0
    length_sum: float = 0.0

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.games if self.games else float("nan")

    @property
    def mean_length(self) -> float:
        return self.length_sum / self.games if self.games else float("nan")


@dataclass
class Summary:
    """End-of-run numbers: overall and per checkpoint (key ``None`` = episodes spanning a swap)."""

    games: int = 0
    steps: int = 0
    reward_sum: float = 0.0
    length_sum: float = 0.0
    reloads: int = 0
    per_checkpoint: Dict[Optional[int], CheckpointStats] = field(default_factory=dict)
    checkpoints: List[CheckpointInfo] = field(default_factory=list)
    watcher: Dict[str, Any] = field(default_factory=dict)  # the watcher's health at the end (see /status)

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.games if self.games else float("nan")

    @property
    def mean_length(self) -> float:
        return self.length_sum / self.games if self.games else float("nan")

    def report_lines(self, max_rows: int = 20) -> List[str]:
        """The summary as log lines: totals, the watcher's health, the newest ``max_rows`` checkpoints."""
        out = [
            "Summary: %d games, mean reward %.2f, mean length %.1f, %d checkpoints, %d reloads"
            % (self.games, self.mean_reward, self.mean_length, len(self.checkpoints), self.reloads)
        ]
        h = self.watcher
        if h:
            out.append("  watcher: %d checks, last %s s ago, %d errors%s" % (
                h.get("checks", 0), h.get("last_check_age_s"), h.get("errors", 0),
                " (last: %s)" % h["last_error"] if h.get("last_error") else ""))  # fmt: skip
        rows = [(k, v) for k, v in self.per_checkpoint.items() if k is not None]
        if len(rows) > max_rows:
            out.append("  (%d older checkpoints not listed)" % (len(rows) - max_rows))
            rows = rows[-max_rows:]
        if None in self.per_checkpoint:
            rows.append((None, self.per_checkpoint[None]))
        for key, st in rows:
            name = self.checkpoints[key].label if key is not None else "mixed (spans a reload)"
            out.append("  %-40s games %4d  mean reward %9.2f  mean length %7.1f"
                       % (name, st.games, st.mean_reward, st.mean_length))  # fmt: skip
        return out


class PlayerView(Protocol):
    """What a callback may read from and ask of the player (HotReloadPlayer satisfies it).

    Why a protocol: callbacks are typed against this, not against the player class, so a stand-in
    (tests' GymDriver, your own loop) only needs these members, and nothing is found by ``getattr``.
    """

    #: seconds of simulated time per step (None when the env does not say): pacing and video speed
    control_dt: Optional[float]
    #: live numbers; final once ``on_stop`` is called
    summary: "Summary"
    #: the checkpoint playing now (None before the first load)
    current: Optional[CheckpointInfo]
    #: what the player follows, for humans (``latest in runs/``, a folder, a file)
    source: str

    def grab_frame(self) -> Any:
        """The current frame (HxWx3 uint8 array) or None; rendered at most once per step."""

    def request_stop(self) -> None:
        """End the play loop after the current step (thread-safe)."""

    def reload_health(self) -> Dict[str, Any]:
        """The checkpoint watcher's health (thread-safe)."""


class PlayerCallback:
    """Base class with no-op hooks; override the ones you need.

    Lifecycle (as SB3's ``init_callback``): ``setup(player)`` once, when the player starts following
    checkpoints (a streamer binds its port here), and ``close()`` once after ``on_stop`` (or after a failed
    start), whatever happened: release servers, threads and files there. Order of calls: ``on_start`` once (after the first weights are loaded, before the first step),
    ``on_reload`` for every checkpoint swapped in (including the first), ``on_step`` after every
    environment step, ``on_episode_end`` for each finished episode, ``on_stop`` once at the end
    (also after Ctrl+C / SIGTERM; the summary is final then).
    """

    def setup(self, player: PlayerView) -> None:
        pass

    def close(self) -> None:
        pass

    def on_start(self, player: PlayerView) -> None:
        pass

    def on_reload(self, player: PlayerView, info: CheckpointInfo) -> None:
        pass

    def on_step(self, player: PlayerView, step: int) -> None:
        pass

    def on_episode_end(self, player: PlayerView, episode: EpisodeRecord) -> None:
        pass

    def on_stop(self, player: PlayerView, summary: Summary) -> None:
        pass


class CallbackList(PlayerCallback):
    """Calls each callback in order; the player holds exactly one of these."""

    def __init__(self, callbacks: Sequence[PlayerCallback] = ()) -> None:
        self.callbacks: List[PlayerCallback] = list(callbacks)
        self._open: Optional[List[PlayerCallback]] = None  # those set up, until close()

    def setup(self, player: PlayerView) -> None:
        """Set each callback up once (later calls do nothing); if one fails, close those already set up."""
        if self._open is not None:
            return
        self._open = []
        try:
            for cb in self.callbacks:
                cb.setup(player)
                self._open.append(cb)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the callbacks that were set up, in reverse order, each exactly once."""
        opened, self._open = self._open or [], []
        errors: List[BaseException] = []
        for cb in reversed(opened):
            try:
                cb.close()
            except Exception as e:  # one failing close must not leave the others open; re-raised below
                log.error("closing %s failed: %s", type(cb).__name__, e)
                errors.append(e)
        if errors:
            raise errors[0]

    def append(self, cb: PlayerCallback) -> None:
        self.callbacks.append(cb)

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def on_start(self, player: PlayerView) -> None:
        for cb in self.callbacks:
            cb.on_start(player)

    def on_reload(self, player: PlayerView, info: CheckpointInfo) -> None:
        for cb in self.callbacks:
            cb.on_reload(player, info)

    def on_step(self, player: PlayerView, step: int) -> None:
        for cb in self.callbacks:
            cb.on_step(player, step)

    def on_episode_end(self, player: PlayerView, episode: EpisodeRecord) -> None:
        for cb in self.callbacks:
            cb.on_episode_end(player, episode)

    def on_stop(self, player: PlayerView, summary: Summary) -> None:
        for cb in self.callbacks:
            cb.on_stop(player, summary)

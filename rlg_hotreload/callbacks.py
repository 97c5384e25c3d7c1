"""Player callback protocol: the tiny hook surface the streamer, recorder and loggers use.

Why a protocol and not subclassing: a monitor usually wants several independent add-ons at once
(a frame streamer, an mp4 recorder, a TensorBoard logger). Like SB3 callbacks, each is a small object
with a few optional hooks, composed in a list and called by the player in a fixed order.

All hooks run on the player thread, between environment steps. They must return quickly: heavy work
(JPEG/mp4 encoding, network I/O) belongs on the callback's own thread. A callback that wants a frame
calls ``player.grab_frame()`` (or ``grab_frame_deferred()``, rendered on the callback's own thread where
the env allows, see :mod:`rlg_hotreload.frame_grab`) from ``on_step``; rendering happens only then, so
nobody pays for frames nobody watches, and the player keeps that frame for the rest of the step, so
two callbacks wanting it cost one render (one per consuming thread when deferred).
"""

import logging
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Protocol, Sequence, runtime_checkable

# the records hooks receive (re-exported: ``from rlg_hotreload.callbacks import Summary`` keeps working)
from rlg_hotreload.records import CheckpointInfo, CheckpointStats, EpisodeRecord, Summary

if TYPE_CHECKING:  # pragma: no cover
    from rlg_hotreload.control import PlayerControl

__all__ = [
    "CallbackList", "CheckpointInfo", "CheckpointStats", "CompareView", "Controllable", "EpisodeRecord",
    "PlayerCallback", "PlayerView", "Summary",
]  # fmt: skip

log = logging.getLogger("rlg_hotreload")


class PlayerView(Protocol):
    """What a callback may read from and ask of the player (HotReloadPlayer satisfies it).

    Why a protocol: callbacks are typed against this, not against the player class, so a stand-in
    (tests' GymDriver, your own loop) only needs these members, and nothing is found by ``getattr``.
    """

    #: seconds of simulated time per step (None when the env does not say): pacing and video speed
    control_dt: Optional[float]
    #: live numbers; final once ``on_stop`` is called
    summary: Summary
    #: the checkpoint playing now (None before the first load)
    current: Optional[CheckpointInfo]
    #: what the player follows, for humans (``latest in runs/``, a folder, a file)
    source: str

    def grab_frame(self) -> Any:
        """The current frame (HxWx3 uint8 array) or None; rendered at most once per step."""

    def grab_frame_deferred(self) -> Any:
        """As ``grab_frame``, or, when the env can render elsewhere, a ``frame_grab.PendingFrame`` (a copy of
        its state) that the caller's own thread renders with a ``frame_grab.FrameResolver``."""

    def request_stop(self) -> None:
        """End the play loop after the current step (thread-safe)."""

    def reload_health(self) -> Dict[str, Any]:
        """The checkpoint watcher's health (thread-safe)."""


@runtime_checkable
class CompareView(PlayerView, Protocol):
    """A player of several policies side by side (``compare=``; :mod:`rlg_hotreload.compare`).

    ``slots`` in tile order, each with ``label``, ``kind`` (latest|best|file), ``source`` (text),
    ``first_env`` (the env its tile shows), ``current`` (CheckpointInfo or None) and ``summary`` (its own
    :class:`Summary`). An :class:`EpisodeRecord`'s ``env_index`` is global (slot = env_index // envs per
    slot) and its ``checkpoint`` indexes that slot's ``summary.checkpoints``. ``current`` is slot 0's.
    """

    slots: Sequence[Any]


@runtime_checkable
class Controllable(Protocol):
    """A player that takes pause/resume, pin/follow and back requests (HotReloadPlayer does).

    ``control.pause()``, ``.resume()``, ``.pin()``, ``.follow()``, ``.back("previous" | index)`` may be
    called from any thread (the stream page's POSTs do); each returns a ``Command`` the player applies
    between two steps, in order, logging one line. From a callback, don't ``wait()`` on it: it applies
    after the callback returns. ``control.state()`` (thread-safe) is what ``/status`` shows. Why apart
    from :class:`PlayerView`: stand-ins and other players need not offer control; ``isinstance`` tells.
    """

    control: "PlayerControl"


class PlayerCallback:
    """Base class with no-op hooks; override the ones you need.

    Lifecycle (as SB3's ``init_callback``): ``setup(player)`` once, when the player starts following
    checkpoints (a streamer binds its port here), and ``close()`` once after ``on_stop`` (or after a failed
    start), whatever happened: release servers, threads and files there. Order of calls: ``on_start`` once (after the first weights are loaded, before the first step),
    ``on_reload`` for every checkpoint swapped in (including the first; after ``control.back`` an earlier
    ``info`` again, its index repeating), ``on_action`` once the policy has chosen a step's actions and
    before the environment steps them (its physics runs next), ``on_step`` after every
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

    def on_action(self, player: PlayerView, step: int) -> None:
        """Step ``step``'s actions are chosen, its physics is next: work that must not overlap the policy
        (a render on the GPU that the policy uses) starts here. Called only on callbacks that override it."""

    def on_step(self, player: PlayerView, step: int) -> None:
        pass

    def on_episode_end(self, player: PlayerView, episode: EpisodeRecord) -> None:
        pass

    def on_stop(self, player: PlayerView, summary: Summary) -> None:
        pass


def _acts(cb: PlayerCallback) -> bool:
    return type(cb).on_action is not PlayerCallback.on_action


class CallbackList(PlayerCallback):
    """Calls each callback in order; the player holds exactly one of these."""

    def __init__(self, callbacks: Sequence[PlayerCallback] = ()) -> None:
        self.callbacks: List[PlayerCallback] = list(callbacks)
        #: those that override ``on_action``: the player calls it only when there are some (no cost per step)
        self.acting: List[PlayerCallback] = [cb for cb in self.callbacks if _acts(cb)]
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
        if _acts(cb):
            self.acting.append(cb)

    def __bool__(self) -> bool:
        return bool(self.callbacks)

    def on_start(self, player: PlayerView) -> None:
        for cb in self.callbacks:
            cb.on_start(player)

    def on_reload(self, player: PlayerView, info: CheckpointInfo) -> None:
        for cb in self.callbacks:
            cb.on_reload(player, info)

    def on_action(self, player: PlayerView, step: int) -> None:
        for cb in self.acting:
            cb.on_action(player, step)

    def on_step(self, player: PlayerView, step: int) -> None:
        for cb in self.callbacks:
            cb.on_step(player, step)

    def on_episode_end(self, player: PlayerView, episode: EpisodeRecord) -> None:
        for cb in self.callbacks:
            cb.on_episode_end(player, episode)

    def on_stop(self, player: PlayerView, summary: Summary) -> None:
        for cb in self.callbacks:
            cb.on_stop(player, summary)

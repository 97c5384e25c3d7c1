"""PlayerControl: pause/resume, pin/follow and "back to an earlier checkpoint", asked from any thread.

Why a queue of commands and not flags the HTTP thread flips: the player's state (weights, the checkpoint
playing, episode attribution) changes only on the player thread, between two steps, like a reload. A
request thread (the stream page's POST, a library user's thread) submits a :class:`Command` and may wait
on it; the player takes the queue between steps (:mod:`rlg_hotreload.steer`), applies each command in
order, and marks it done with one line that says what happened. So "paused" is exact: once a pause is
done, no further step happens until a resume is.

The player publishes what pages show (paused, pinned, which checkpoints it can go back to) here, under a
lock; :meth:`PlayerControl.state` is safe from any thread. ``pending`` and ``paused`` are lock-free peeks
for the hot path (one attribute read per step).
"""

import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

ACTIONS = ("pause", "resume", "pin", "follow", "back")
PREVIOUS = "previous"
Target = Union[int, str, None]


class Command:
    """One request: ``action`` (see :data:`ACTIONS`), ``target`` (for ``back``), who asked; done once applied."""

    def __init__(self, action: str, target: Target = None, who: str = "library") -> None:
        self.action = action
        self.target = target
        self.who = who
        self.ok: Optional[bool] = None  # None until applied; False = refused (``message`` says why)
        self.message = ""
        self._done = threading.Event()

    def finish(self, ok: bool, message: str) -> None:
        self.ok, self.message = ok, message
        self._done.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` s until the player applied it. Never call this on the player thread
        (from a callback): the player applies commands only between steps, after the callback returns."""
        return self._done.wait(timeout)

    def describe(self) -> str:
        return self.action + ("" if self.target is None else " %s" % self.target)


def parse_target(value: Any) -> Target:
    """``back``'s target: ``"previous"`` (default) or a checkpoint index (``CheckpointInfo.index``, >= 0)."""
    if value is None or value == PREVIOUS:
        return PREVIOUS
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError("to=%r: allowed values are %r or a checkpoint index (0, 1, ...)" % (value, PREVIOUS))


class PlayerControl:
    """Thread-safe requests to a player; the player applies them between steps (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: List[Command] = []
        self._wake = threading.Event()
        #: written by the player thread only (lock-free reads)
        self.paused = False
        self.pinned = False
        self._kept: List[Dict[str, Any]] = []  # [{"index", "label"}] the player can go back to
        self._last: Optional[str] = None
        self._last_at: Optional[float] = None
        #: set by the player: is a newer checkpoint prepared but not played (pinned)?
        self.newer_ready: Callable[[], bool] = lambda: False

    # -- any thread ------------------------------------------------------------------------------
    def submit(self, action: str, target: Target = None, who: str = "library") -> Command:
        """Queue ``action`` (ValueError for an unknown action or a bad ``back`` target)."""
        if action not in ACTIONS:
            raise ValueError("action %r: allowed actions are %s" % (action, ", ".join(ACTIONS)))
        cmd = Command(action, parse_target(target) if action == "back" else None, who)
        with self._lock:
            self._queue.append(cmd)
        self._wake.set()
        return cmd

    def pause(self, who: str = "library") -> Command:
        """Stop stepping (the stream keeps the last frame; Ctrl+C still stops the player)."""
        return self.submit("pause", who=who)

    def resume(self, who: str = "library") -> Command:
        return self.submit("resume", who=who)

    def pin(self, who: str = "library") -> Command:
        """Keep playing the current checkpoint; newer ones are still checked and prepared, not played."""
        return self.submit("pin", who=who)

    def follow(self, who: str = "library") -> Command:
        """Play the newest checkpoint again (at once if one is ready) and keep following new ones."""
        return self.submit("follow", who=who)

    def back(self, target: Target = PREVIOUS, who: str = "library") -> Command:
        """Play an earlier checkpoint again (``"previous"`` or its index) from memory; implies pin."""
        return self.submit("back", target, who)

    def wake(self) -> None:
        """Wake a paused player now (e.g. a stop was requested)."""
        self._wake.set()

    def state(self) -> Dict[str, Any]:
        """For ``/status``: paused, pinned, following, the checkpoints kept for ``back``, the last action."""
        with self._lock:
            kept = [dict(k) for k in self._kept]
            last, last_at, queued = self._last, self._last_at, len(self._queue)
        return {
            "paused": self.paused,
            "pinned": self.pinned,
            "following": not self.pinned,
            "newer_waiting": bool(self.pinned and self.newer_ready()),
            "kept": kept,
            "queued": queued,
            "last_action": last,
            "last_action_at": last_at,
        }

    # -- player thread ---------------------------------------------------------------------------
    @property
    def pending(self) -> bool:
        """Lock-free peek: are commands waiting?"""
        return bool(self._queue)

    def take(self) -> List[Command]:
        with self._lock:
            cmds, self._queue = self._queue, []
            self._wake.clear()
        return cmds

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` s or until a command (or :meth:`wake`) arrives."""
        woke = self._wake.wait(timeout)
        with self._lock:
            if not self._queue:
                self._wake.clear()  # a bare wake() is consumed: the next wait sleeps again
        return woke

    def publish(self, kept: Sequence[Tuple[int, str]]) -> None:
        """The checkpoints the player can go back to (index, label), oldest first."""
        with self._lock:
            self._kept = [{"index": i, "label": label} for i, label in kept]

    def note(self, line: str) -> None:
        """The last applied action, as logged (for ``/status``)."""
        with self._lock:
            self._last, self._last_at = line, time.time()

"""Steer: the player's side of :class:`~rlg_hotreload.control.PlayerControl` (pause, pin, follow, back).

Why commands are applied here, on the player thread, between two steps: pausing, pinning and going back
change what plays, exactly like a reload does, and a reload happens only between steps (never inside a
forward pass). Each command is applied in the order it came, logged with one line naming who asked
(``Control: paused by 127.0.0.1 ...``), and marked done with that line, so the asker can report it.

Why "back" plays weights kept in memory and never re-reads the file: rl-games rewrites ``<name>.pth`` in
place (the best checkpoint so far), and ``last_*`` files get deleted by cleanup scripts; the file behind
an earlier checkpoint is often not what played. The validated state dicts of the last
:data:`KEEP_CHECKPOINTS` checkpoints played are kept (references to the tensors that were swapped in,
on the policy's device: no copy, memory = that many networks); older ones are refused with a message
that says so. Going back pins: the watcher keeps checking (``/status`` health) and prepares newer files,
the newest of which waits in its one-slot mailbox; ``follow`` swaps it in at once (or, when none came,
returns to the newest checkpoint played).
"""

import logging
from collections import OrderedDict
from typing import Any, Dict, Optional, Tuple

import torch

from rlg_hotreload.control import PREVIOUS, Command, PlayerControl
from rlg_hotreload.records import CheckpointInfo
from rlg_hotreload.reload import LoadedCheckpoint
from rlg_hotreload.swap import WeightSwap

log = logging.getLogger("rlg_hotreload")

#: Checkpoints whose weights stay in memory for "back" (the newest played ones).
KEEP_CHECKPOINTS = 8

Kept = Tuple[Dict[str, torch.Tensor], Any]  # (state dict, env_state)


class Steer(WeightSwap):
    """Mixin for :class:`~rlg_hotreload.player.HotReloadPlayer`; call :meth:`init_steer` in ``__init__``."""

    def init_steer(self) -> None:
        #: requests from other threads (the stream page, your code); see :mod:`rlg_hotreload.control`
        self.control = PlayerControl()
        self.control.newer_ready = lambda: self.watcher is not None and self.watcher.ready
        self._kept: "OrderedDict[int, Kept]" = OrderedDict()

    # -- keeping played weights --------------------------------------------------------------------
    def swap_in(self, loaded: Optional[LoadedCheckpoint]) -> None:
        before = self.current
        super().swap_in(loaded)
        if loaded is not None and self.current is not None and self.current is not before:
            self._kept[self.current.index] = (loaded.state, loaded.env_state)
            while len(self._kept) > KEEP_CHECKPOINTS:
                self._kept.popitem(last=False)
            self._publish()

    def roll_back(self, error: BaseException) -> None:
        dropped = self.current
        super().roll_back(error)
        if dropped is not None:
            self._kept.pop(dropped.index, None)
            self._publish()

    def _publish(self) -> None:
        cps = self.summary.checkpoints
        self.control.publish([(i, cps[i].label) for i in sorted(self._kept) if i < len(cps)])

    # -- applying commands (player thread, between steps) -------------------------------------------
    def steer(self) -> bool:
        """Apply the queued commands in order; True if the weights changed (the episodes under way are
        then mixed). A command that fails is refused with its reason; play goes on."""
        changed = False
        for cmd in self.control.take():
            before = self.current
            try:
                ok, line = self._apply(cmd)
            except (RuntimeError, ValueError) as e:  # e.g. torch refusing the state: refuse, keep playing
                ok, line = False, "%s failed: %s" % (cmd.describe(), e)
            changed = changed or self.current is not before
            text = "Control: %s" % line if ok else "Control: %s refused (asked by %s): %s" % (
                cmd.describe(), cmd.who, line)  # fmt: skip
            (log.info if ok else log.warning)("%s", text)
            self.control.note(text)
            cmd.finish(ok, text)
        return changed

    def _apply(self, cmd: Command) -> Tuple[bool, str]:
        c, who = self.control, cmd.who
        playing = self.current.label if self.current is not None else "nothing yet"
        if cmd.action == "pause":
            already, c.paused = c.paused, True
            return True, "%s by %s (step %d, playing %s)" % ("still paused" if already else "paused", who,
                                                               self.summary.steps, playing)  # fmt: skip
        if cmd.action == "resume":
            was, c.paused = c.paused, False
            return True, "%s by %s (step %d, playing %s)" % ("resumed" if was else "not paused; playing on",
                                                               who, self.summary.steps, playing)  # fmt: skip
        if cmd.action == "pin":
            c.pinned = True
            return True, "pinned %s by %s: newer checkpoints are checked but not played until 'follow'" % (
                playing, who)  # fmt: skip
        if cmd.action == "follow":
            return True, self._follow(who)
        return self._back(cmd.target, who)

    def _follow(self, who: str) -> str:
        self.control.pinned = False
        if self.watcher is not None and self.watcher.ready:
            self.swap_in(self.watcher.take())  # its first step may still roll it back, as any reload
        else:
            newest = self.summary.checkpoints[-1] if self.summary.checkpoints else None
            if newest is not None and newest is not self.current and newest.index in self._kept:
                self._play_kept(newest)
        playing = self.current.label if self.current is not None else "nothing yet"
        return "following new checkpoints again (by %s); playing %s" % (who, playing)

    def _back(self, target: Any, who: str) -> Tuple[bool, str]:
        cur = self.current
        if cur is None:
            return False, "nothing is playing yet"
        if target == PREVIOUS:
            earlier = [i for i in self._kept if i < cur.index]
            if not earlier:
                return False, "no checkpoint before %s is kept in memory (the last %d played are)" % (
                    cur.label, KEEP_CHECKPOINTS)  # fmt: skip
            target = max(earlier)
        cps = self.summary.checkpoints
        if not isinstance(target, int) or target >= len(cps):
            return False, "no checkpoint #%s: %d were loaded (indices 0..%d)" % (target, len(cps), len(cps) - 1)
        if target not in self._kept:
            return False, "#%d %s is no longer kept in memory (the last %d played are: %s)" % (
                target, cps[target].label, KEEP_CHECKPOINTS, ", ".join("#%d" % i for i in sorted(self._kept)))  # fmt: skip
        self.control.pinned = True
        if target == cur.index:
            return True, "back to #%d %s by %s: already playing it; pinned" % (target, cur.label, who)
        self._play_kept(cps[target])
        return True, "back to #%d %s by %s (was %s); pinned: 'follow' plays the newest again" % (
            target, cps[target].label, who, cur.label)  # fmt: skip

    def _play_kept(self, info: CheckpointInfo) -> None:
        """Swap in weights played before, from memory (validated then; their first step succeeded)."""
        if self.pending_rollback is not None and self.current is not None:
            # the one playing never took a step (its first forward pass is what proves it): not kept, so that
            # a later back never plays weights that could fail with no rollback to fall back on
            self._kept.pop(self.current.index, None)
        state, env_state = self._kept[info.index]
        self.model.load_state_dict(state, **self._assign_kw())
        if env_state is not None and self.env is not None and self.load_env_state == "always":
            self.env.set_env_state(env_state)
        if self.is_rnn and self.states is not None:
            self.init_rnn()
        self.pending_rollback = None  # these weights have played: nothing to roll back to
        self._kept.move_to_end(info.index)  # played again: the last to be dropped
        self.current = info
        self._publish()
        self.callbacks.on_reload(self, info)

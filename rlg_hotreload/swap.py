"""Putting new weights into the running policy between two steps, and taking them out again.

Why a mixin of its own: the swap is the one place where the player's state changes because of a file
(weights, env state, RNN states, the summary's checkpoint list, callbacks), so its rules live together:
``load_state_dict(assign=True)`` swaps tensors by reference (no copy on the hot path); the previous
weights are kept until the first forward pass with the new ones succeeded, and a swap whose first
forward pass raises is rolled back (validation proves a checkpoint fits the network, not that the
network can act with it), the file refused, the previous checkpoint playing on.
"""

import logging
import time
from typing import Any, Dict, Optional

import torch

from rlg_hotreload.records import CheckpointInfo, CheckpointStats
from rlg_hotreload.reload import LoadedCheckpoint

log = logging.getLogger("rlg_hotreload")


class WeightSwap:
    """Mixin for :class:`~rlg_hotreload.player.HotReloadPlayer` (an rl-games player)."""

    model: Any
    env: Any
    watcher: Any
    summary: Any
    callbacks: Any
    current: Optional[CheckpointInfo]
    load_env_state: str
    is_rnn: bool
    states: Any
    #: (previous state, previous CheckpointInfo, version) from a swap until the first step succeeds
    pending_rollback: Optional[Any] = None
    initial_state: Dict[str, torch.Tensor]
    #: put before this object's log lines (compare mode: ``[best] ``, naming the slot)
    log_prefix: str = ""

    def swap_in(self, loaded: Optional[LoadedCheckpoint]) -> None:
        """Put new weights in place. Called on the player thread between two steps only."""
        if loaded is None:
            return
        previous = dict(self.model.state_dict())  # references only: the old tensors, kept for a rollback
        try:
            self.model.load_state_dict(loaded.state, **self._assign_kw())
        except RuntimeError as e:  # validated already; keep playing if torch still disagrees
            log.warning("Could not swap in %s: %s", loaded.version.path, e)
            if self.watcher is not None:
                self.watcher.reject(loaded.version)
            return
        self.pending_rollback = (previous, self.current, loaded.version)
        first = self.current is None
        if loaded.env_state is not None and self.env is not None:
            if self.load_env_state == "always" or (self.load_env_state == "first" and first):
                self.env.set_env_state(loaded.env_state)
        if self.is_rnn and self.states is not None:
            self.init_rnn()
        v = loaded.version
        info = CheckpointInfo(
            index=len(self.summary.checkpoints),
            path=v.path,
            epoch=loaded.epoch,
            frame=loaded.frame,
            best_reward=loaded.best_reward,
            mtime=v.mtime,
            size=v.size,
            load_ms=loaded.load_ms,
            loaded_at=time.time(),
        )
        before = self.summary.per_checkpoint.get(self.current.index) if self.current is not None else None
        self.summary.checkpoints.append(info)
        self.summary.per_checkpoint[info.index] = CheckpointStats()
        if not first:
            self.summary.reloads += 1
        self.current = info
        best = "%.2f" % info.best_reward if info.best_reward is not None else "n/a"
        log.info(
            "%s%s %s (epoch %s, frame %s, best reward %s, file age %.1f s, load %.0f ms)%s",
            self.log_prefix,
            "Loaded" if first else "Reloaded",
            v.path,
            info.epoch,
            info.frame,
            best,
            max(0.0, time.time() - v.mtime),
            info.load_ms,
            _previous_success(before),
        )
        self.callbacks.on_reload(self, info)

    _assign_supported: Optional[bool] = None

    @classmethod
    def _assign_kw(cls) -> Dict[str, bool]:
        """``assign=True`` (torch >= 2.1) swaps tensors by reference: O(#tensors), no copy on the hot path."""
        if cls._assign_supported is None:
            import inspect

            cls._assign_supported = "assign" in inspect.signature(torch.nn.Module.load_state_dict).parameters
        return {"assign": True} if cls._assign_supported else {}

    def roll_back(self, error: BaseException) -> None:
        """Undo the last swap: its first forward pass failed. The previous weights play on."""
        previous, info, version = self.pending_rollback
        self.pending_rollback = None
        self.model.load_state_dict(previous if info is not None else self.initial_state, **self._assign_kw())
        if self.watcher is not None:
            self.watcher.reject(version)
        s = self.summary
        dropped = s.checkpoints.pop()
        s.per_checkpoint.pop(dropped.index, None)
        if info is not None:
            s.reloads -= 1
        self.current = info
        if self.is_rnn and self.states is not None:
            self.init_rnn()
        msg = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
        log.warning(
            "%sRolled back %s: its first forward pass failed (%s: %s); %s",
            self.log_prefix, version.path, type(error).__name__, msg,
            "playing %s again" % info.label if info is not None else "nothing is playing: waiting for a checkpoint",
        )  # fmt: skip


def _previous_success(stats: Optional[CheckpointStats]) -> str:
    """``; previous checkpoint: success 45.0 % of 20 episodes`` when the task reports success, else ''."""
    if stats is None or stats.success_rate is None:
        return ""
    return "; previous checkpoint: success %.1f %% of %d episodes" % (
        100.0 * stats.success_rate,
        stats.success_games,
    )

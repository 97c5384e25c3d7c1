"""One slot of a comparison (``compare=``): its policy, watcher, envs and numbers; and the ``best`` source.

Why apart from :mod:`rlg_hotreload.compare`: a slot is the single player's swap-and-rollback unit
(:class:`~rlg_hotreload.swap.WeightSwap`) applied to one model among several; the ComparePlayer's loop
only drives slots. Kept small so each reads on its own.
"""

import os
from typing import TYPE_CHECKING, Any, List, Optional

import torch

from rlg_hotreload.compare_spec import SlotSpec
from rlg_hotreload.episode_tracker import EpisodeTracker
from rlg_hotreload.records import CheckpointInfo, CheckpointStats, Summary
from rlg_hotreload.reload import CheckpointSource, CheckpointWatcher, FileVersion
from rlg_hotreload.swap import WeightSwap

if TYPE_CHECKING:  # pragma: no cover
    from rlg_hotreload.compare import ComparePlayer


class BestSource(CheckpointSource):
    """The best file (``<name>.pth``) of the followed run (``latest`` or a run folder), re-resolved at
    every check like ``latest``: a new training run is followed, an in-place rewrite is a new version."""

    def __init__(self, run: str, train_dir: str, best_name: str) -> None:
        super().__init__(run, train_dir)
        self.best_name = best_name

    def describe(self) -> str:
        return "%s of %s" % (self.best_name, super().describe())

    def candidates(self) -> List[FileVersion]:
        return [v for v in super().candidates() if os.path.basename(v.path) == self.best_name]


class SlotHooks:
    """WeightSwap announces a swap to ``callbacks.on_reload``: a slot's swap is its player's reload."""

    def __init__(self, player: "ComparePlayer") -> None:
        self.player = player

    def on_reload(self, _slot: Any, info: CheckpointInfo) -> None:
        self.player.callbacks.on_reload(self.player, info)


class CompareSlot(WeightSwap):
    """One policy of the comparison: its model, watcher, envs ``[first_env, first_env + n)`` and numbers."""

    def __init__(self, index: int, spec: SlotSpec, model: Any, watcher: CheckpointWatcher, first_env: int,
                 n: int, player: "ComparePlayer") -> None:  # fmt: skip
        self.index, self.label, self.kind = index, spec.label, spec.kind
        self.model, self.watcher, self.env = model, watcher, None  # env None: no env_state from a slot
        self.first_env, self.n, self.envs = first_env, n, slice(first_env, first_env + n)
        self.source = watcher.source.describe()
        self.summary = Summary()
        self.current: Optional[CheckpointInfo] = None
        self.callbacks = SlotHooks(player)
        self.load_env_state = "never"  # one env for all slots: a checkpoint's curriculum state can't apply
        self.is_rnn = bool(model.is_rnn())
        self.states: Optional[List[torch.Tensor]] = None
        self.pending_rollback = None
        self.initial_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        self.log_prefix = "[%s] " % spec.label
        self.tracker: Optional[EpisodeTracker] = None
        self.device = next(iter(self.initial_state.values())).device

    def init_rnn(self) -> None:
        if self.is_rnn:
            self.states = [torch.zeros(s.size(0), self.n, s.size(2), device=self.device)
                           for s in self.model.get_default_rnn_state()]  # fmt: skip

    def stats_here(self) -> CheckpointStats:
        """Numbers of the checkpoint playing now."""
        cur = self.current
        return self.summary.per_checkpoint.get(cur.index, CheckpointStats()) if cur else CheckpointStats()

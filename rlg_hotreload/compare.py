"""ComparePlayer: several checkpoints played side by side in one batched simulation (``compare=``).

Why a subclass with its own loop: the single-policy player's hot path stays exactly as it is; compare
mode adds slots around it. Slot ``k`` of ``K`` owns envs ``[k*n, (k+1)*n)`` of one env of ``K*n``
envs (``numEnvs`` = n per slot) and plays its own model on them, observation normaliser included
(``running_mean_std`` is part of each checkpoint's model), one batched forward pass per slot.

Why the starts are the same: the env is built with ``reset_groups=K``: every env draws its reset
randomisation from a counter-based stream keyed by (seed, index within its slot, episode number), so the
``j``-th episode of env ``i`` starts from the same state in every slot, whenever each slot finishes it.
No slot waits for another (synchronised resets would idle the fast slots' envs).

Per slot: a watcher (``latest`` follows the run's newest checkpoint, ``best`` its ``<name>.pth``, which
rl-games rewrites in place; a file is loaded once), swaps and rollbacks under
:class:`~rlg_hotreload.swap.WeightSwap`'s rules, its own :class:`~rlg_hotreload.records.Summary`. Play
starts when every slot has a checkpoint. What a comparison shows (log lines, summary, tiled view) is
:mod:`~rlg_hotreload.compare_view`; one slot's swap-and-rollback state is :mod:`~rlg_hotreload.compare_slot`.
"""

import logging
import time
from typing import Any, Dict, List, Optional

import torch
from rl_games.algos_torch.players import rescale_actions

from rlg_hotreload import compare_view
from rlg_hotreload.compare_slot import BestSource, CompareSlot
from rlg_hotreload.compare_spec import SlotSpec
from rlg_hotreload.episode_tracker import EpisodeTracker, success_signal
from rlg_hotreload.player import FIRST_CHECK_WAIT_S, SUMMARY_ROWS, HotReloadPlayer
from rlg_hotreload.records import CheckpointStats, EpisodeRecord, Summary
from rlg_hotreload.reload import (
    CheckpointError,
    CheckpointSource,
    CheckpointWatcher,
    LoadedCheckpoint,
)

log = logging.getLogger("rlg_hotreload")

REPORT_S = 30.0  # default seconds between the log's per-slot comparison lines (player key compare_report_s)


class ComparePlayer(HotReloadPlayer):
    """Plays ``player.compare`` slots side by side; see the module docstring. Keys of ``params.config.player``
    as HotReloadPlayer's, plus ``compare`` (list of SlotSpec dicts), ``best_name`` and ``compare_report_s``."""

    def __init__(self, params: Dict[str, Any], callbacks: Any = ()) -> None:
        super().__init__(params, callbacks)
        pc = self.player_config
        specs = [SlotSpec(**d) for d in pc["compare"]]
        total = int(self.config["num_actors"])
        if total % len(specs):
            raise ValueError("num_actors=%d is not a multiple of the %d compare slots" % (total, len(specs)))
        n = total // len(specs)
        run = str(pc.get("checkpoint") or "latest")
        best_name = str(pc.get("best_name") or self.config["name"] + ".pth")
        self.report_s = float(pc.get("compare_report_s", REPORT_S))
        self.slots: List[CompareSlot] = []
        for k, spec in enumerate(specs):
            model = self.model if k == 0 else self._new_model()
            watcher = self._slot_watcher(spec, run, best_name, model)
            self.slots.append(CompareSlot(k, spec, model, watcher, k * n, n, self))
        self.source = " | ".join("%s: %s" % (s.label, s.source) for s in self.slots)
        self.frame_source = self._tiles

    def _new_model(self) -> Any:
        """Another network like ``self.model`` (as PpoPlayerContinuous builds it)."""
        model = self.network.build({
            "actions_num": self.actions_num, "input_shape": self.obs_shape, "num_seqs": self.num_agents,
            "value_size": self.env_info.get("value_size", 1), "normalize_value": self.normalize_value,
            "normalize_input": self.normalize_input,
        })  # fmt: skip
        model.to(self.device)
        model.eval()
        return model

    def _slot_watcher(self, spec: SlotSpec, run: str, best_name: str, model: Any) -> CheckpointWatcher:
        interval = self.reload_interval
        if spec.kind == "file":
            source, interval = CheckpointSource(spec.path, self.train_dir), 0.0  # a file stays: loaded once
        elif spec.kind == "best":
            source = BestSource(run, self.train_dir, best_name)
        else:
            source = CheckpointSource(run, self.train_dir)
        return CheckpointWatcher(source, model.state_dict(), interval, loader=self.loader,
                                 max_bytes=int(self.max_checkpoint_mb * 2**20))  # fmt: skip

    # -- checkpoints ---------------------------------------------------------------------------------
    def restore(self, fn: str) -> None:
        """Start every slot's watcher and load what is there (``fn``, the followed run, is in the slots
        already). A file slot of another network raises CheckpointError naming the slot."""
        self.callbacks.setup(self)
        for s in self.slots:
            s.watcher.start()
        if self._restore_signals is None:
            self._restore_signals = self._install_signal_handlers()
        try:
            deadline = time.monotonic() + FIRST_CHECK_WAIT_S
            pending = list(self.slots)
            while pending and not self._stop_event.is_set() and time.monotonic() < deadline:
                if pending[0].watcher.wait_first_check(0.2):
                    pending.pop(0)
            self._raise_if_fatal()
        except BaseException:
            self._put_signals_back()
            raise
        self._take_ready()

    def _raise_if_fatal(self) -> None:
        for s in self.slots:
            fatal = s.watcher.fatal
            if fatal is not None and s.current is None:
                for t in self.slots:
                    t.watcher.stop()
                raise CheckpointError("slot %s (%s): %s" % (s.label, s.source, fatal), fatal.kind)

    def _swap(self, slot: CompareSlot, loaded: Optional[LoadedCheckpoint]) -> None:
        slot.swap_in(loaded)
        if slot.index == 0:
            self.current = slot.current

    def _take_ready(self) -> None:
        for s in self.slots:
            if s.watcher.ready:
                self._swap(s, s.watcher.take())
                if s.tracker is not None and s.current is not None:
                    s.tracker.swapped(s.current.index)

    def reload_health(self) -> Dict[str, Any]:
        """Every slot's watcher health, and totals (thread-safe, for /status)."""
        per = [dict(s.watcher.health(), slot=s.label) for s in self.slots]
        return {"alive": all(h["alive"] for h in per), "checks": sum(h["checks"] for h in per),
                "errors": sum(h["errors"] for h in per), "slots": per}  # fmt: skip

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> Summary:
        """Play until every slot has ``games_num`` games (0 = forever) or Ctrl+C / SIGTERM."""
        if self._restore_signals is None:
            self._restore_signals = self._install_signal_handlers()
        try:
            self.callbacks.setup(self)
            for s in self.slots:
                s.watcher.start()
            started = False
            while not self._stop_event.is_set():
                while any(s.current is None for s in self.slots) and not self._stop_event.is_set():
                    self._take_ready()
                    self._raise_if_fatal()
                    waiting = [s for s in self.slots if s.current is None]
                    if waiting:
                        waiting[0].watcher.wait(0.2)
                if any(s.current is None for s in self.slots):
                    break
                if not started:
                    started = True
                    self.callbacks.on_start(self)
                if not self._play():
                    break  # else a slot's first checkpoint was rolled back: wait for another
        finally:
            for s in self.slots:
                s.watcher.stop()
                s.summary.watcher = s.watcher.health()
            self._put_signals_back()
            self._finish()
        return self.summary

    def act(self, slot: CompareSlot, obs: torch.Tensor) -> torch.Tensor:
        """Actions of ``slot``'s policy for its envs' observations (as PpoPlayerContinuous.get_action)."""
        with torch.no_grad():
            res = slot.model({"is_train": False, "prev_actions": None, "obs": self._preproc_obs(obs),
                              "rnn_states": slot.states})  # fmt: skip
        slot.states = res["rnn_states"]
        action = res["mus"] if self.is_deterministic else res["actions"]
        if self.clip_actions:
            return rescale_actions(self.actions_low, self.actions_high, torch.clamp(action, -1.0, 1.0))
        return action

    def _slot_action(self, slot: CompareSlot, obs: torch.Tensor) -> Optional[torch.Tensor]:
        """``act``, undoing a fresh swap whose first forward pass fails; None if the slot has nothing left."""
        try:
            action = self.act(slot, obs)
        except (RuntimeError, ValueError) as e:
            if slot.pending_rollback is None:
                raise
            slot.roll_back(e)
            if slot.index == 0:
                self.current = slot.current
            if slot.current is None:
                return None
            assert slot.tracker is not None
            slot.tracker.claim_fresh(slot.current.index)
            action = self.act(slot, obs)
        slot.pending_rollback = None
        return action

    def _play(self) -> bool:
        """The step loop. Returns True if it must wait for first checkpoints again (a rollback)."""
        slots, cbs = self.slots, self.callbacks
        obses = self.env_reset(self.env)
        dev = self.step_device()  # where env_step leaves r, done; known once env_reset has seen the obs
        total = self.get_batch_size(obses, 1)
        n = slots[0].n
        if total != n * len(slots):
            raise ValueError("the env has %d envs; compare needs %d (%d slots x %d)" % (total, n * len(slots), len(slots), n))
        for s in slots:
            s.tracker = EpisodeTracker(n, dev, s.current.index)  # type: ignore[union-attr]
            s.init_rnn()
        step_no, next_report = 0, time.monotonic() + self.report_s
        while not self._stop_event.is_set():
            self._take_ready()
            actions = []
            for s in slots:
                a = self._slot_action(s, obses[s.envs])
                if a is None:
                    return True
                actions.append(a)
            if cbs.acting:
                cbs.on_action(self, step_no + 1)
            obses, r, done, info = self.env_step(self.env, torch.cat(actions))
            for s in slots:
                s.tracker.step(r[s.envs])  # type: ignore[union-attr]
            step_no += 1
            self.summary.steps = step_no
            if cbs.callbacks:
                cbs.on_step(self, step_no)
            if self.report_s > 0 and time.monotonic() >= next_report:
                next_report = time.monotonic() + self.report_s
                log.info("Compare at step %d: %s", step_no, " | ".join(compare_view.slot_line(s) for s in slots))
            ended = done.nonzero(as_tuple=False).flatten().tolist()  # the one host sync of a step
            if ended:
                self._finish_episodes(ended, done, success_signal(info, dev))
                if self.games_num and all(s.summary.games >= self.games_num for s in slots):
                    break
        return False

    def _finish_episodes(self, ended: List[int], done: torch.Tensor, successes: Optional[torch.Tensor]) -> None:
        n = self.slots[0].n
        for s in self.slots:
            local = [i - s.first_env for i in ended if s.first_env <= i < s.first_env + n]
            if not local:
                continue
            idx = torch.tensor(local, dtype=torch.long, device=done.device)
            if s.is_rnn and s.states is not None:
                for st in s.states:
                    st[:, idx, :] = 0.0
            flags = successes[s.envs] if successes is not None else None
            for ep in s.tracker.finish(idx, done[s.envs], flags, s.current.index):  # type: ignore[union-attr]
                if self.games_num and s.summary.games >= self.games_num:
                    break  # this slot has its games: later episodes are not counted
                self._record_slot(s, ep)

    def _record_slot(self, slot: CompareSlot, episode: EpisodeRecord) -> None:
        episode.env_index += slot.first_env
        slot.summary.add(episode)
        slot.summary.per_checkpoint.setdefault(episode.checkpoint, CheckpointStats()).add(episode)
        self.summary.add(episode)
        if self.print_stats:
            print("[%s] reward: %.2f steps: %d" % (slot.label, episode.reward, episode.length), flush=True)
        if self.callbacks:
            self.callbacks.on_episode_end(self, episode)

    # -- reports (what they show: compare_view) ------------------------------------------------------
    def report_lines(self) -> List[str]:
        """The end-of-run summary: per slot its totals, watcher and checkpoints."""
        return compare_view.summary_lines(self.slots, self.summary, SUMMARY_ROWS)

    def _finish(self) -> None:
        try:
            self.callbacks.on_stop(self, self.summary)
        finally:
            for line in self.report_lines():
                log.info("%s", line)
            self.close_all()

    def close_all(self) -> None:
        try:
            for s in self.slots:
                s.watcher.stop()
        finally:
            super().close_all()

    def _tiles(self) -> Any:
        """The view: env ``first_env`` of each slot, side by side, labelled."""
        return compare_view.tiles(self.env, self.slots)

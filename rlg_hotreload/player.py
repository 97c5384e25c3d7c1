"""HotReloadPlayer: rl-games' continuous PPO player that plays forever and follows new checkpoints.

Why a subclass with its own ``run()``: the stock loop caps a game at 27000 steps, plays nothing (then
crashes in its summary) for ``games_num: 0``, and reloads in evaluation mode by copying weights while
the policy may run. Here the loop is the stock one in spirit (same per-game prints, same RNN handling)
with three additions: an unbounded mode, a weight swap between two steps (never inside a forward
pass), and per-checkpoint episode attribution with the task's success flag
(:mod:`rlg_hotreload.episode_tracker`). All file I/O happens on the watcher thread
(:mod:`rlg_hotreload.reload`), the first load included.

Why a rollback: validation proves a checkpoint fits the network, not that the network can act with it; a
swap whose first forward pass raises is undone (the previous weights play on) and the file is refused.
"""

import logging
import threading
import time
from typing import Any, Callable, Dict, Optional

from rl_games.algos_torch.players import PpoPlayerContinuous

from rlg_hotreload.callbacks import CallbackList
from rlg_hotreload.episode_tracker import EpisodeTracker, success_signal
from rlg_hotreload.frame_grab import FrameGrab
from rlg_hotreload.records import CheckpointInfo, CheckpointStats, EpisodeRecord, Summary
from rlg_hotreload.reload import (
    LOADERS,
    WATCH_MODES,
    CheckpointError,
    CheckpointWatcher,
    make_source,
)
from rlg_hotreload.signals import install_stop_handlers
from rlg_hotreload.steer import Steer
from rlg_hotreload.step_io import StepIO

log = logging.getLogger("rlg_hotreload")

SWAP_AT = ("auto", "game", "step")
ENV_STATE = ("always", "first", "never")
SUMMARY_ROWS = 20  # per-checkpoint lines in the final summary (a week-long run reloads thousands of times)
FIRST_CHECK_WAIT_S = 60.0  # restore() waits this long at most for the first check (bounded, interruptible)
PAUSE_POLL_S = 0.25  # a paused player looks at its stop flag this often (a command or a stop wakes it at once)


def _ensure_log_handler() -> None:
    """Reload lines are the product: show them even when the host program configured no logging."""
    if not log.handlers and not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("[rlg_hotreload] %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


ensure_log_handler = _ensure_log_handler  # public: the compare player shows its lines the same way


def _choice(cfg: Dict[str, Any], key: str, allowed: Any, default: str) -> str:
    value = cfg.get(key, default)
    if value not in allowed:
        raise ValueError("player.%s=%r: allowed values are %s" % (key, value, ", ".join(allowed)))
    return value


class HotReloadPlayer(Steer, FrameGrab, StepIO, PpoPlayerContinuous):
    """Plays the newest checkpoint of a run forever; swaps in each new one as it lands.

    Extra keys of ``params.config.player`` (all optional): ``reload_interval`` (s, default 30;
    0 = load once), ``swap_at`` (auto|game|step; auto = game for one env, step for batched envs),
    ``load_env_state`` (always|first|never, default always, as stock ``restore``), ``train_dir``
    (where ``latest`` looks, default ``runs``), ``checkpoint`` (used when ``restore`` is not called).
    ``games_num: 0`` plays until Ctrl+C / SIGTERM. ``control`` (:class:`~rlg_hotreload.control.PlayerControl`)
    pauses, pins, goes back to an earlier checkpoint or follows again, from any thread.
    """

    def __init__(self, params: Dict[str, Any], callbacks: Any = ()) -> None:
        super().__init__(params)
        _ensure_log_handler()
        pc = self.player_config
        self.reload_interval = float(pc.get("reload_interval", 30.0))
        if self.reload_interval < 0:
            raise ValueError("player.reload_interval=%r: must be >= 0" % self.reload_interval)
        self.swap_at = _choice(pc, "swap_at", SWAP_AT, "auto")
        self.load_env_state = _choice(pc, "load_env_state", ENV_STATE, "always")
        self.train_dir = str(pc.get("train_dir", "runs"))
        self.loader = _choice(pc, "loader", tuple(LOADERS), "process")
        self.watch = _choice(pc, "watch", WATCH_MODES, "auto")  # file events | timer only (see reload.events)
        self.storage_options = dict(pc.get("storage_options") or {})  # fsspec options for URL checkpoints
        self.max_checkpoint_mb = float(pc.get("max_checkpoint_mb", 2048))
        if not self.max_checkpoint_mb > 0:
            raise ValueError("player.max_checkpoint_mb=%r: must be > 0" % self.max_checkpoint_mb)
        games = int(pc.get("games_num", 0))
        self.games_num = games if games > 0 else 0  # 0 = unbounded
        self.callbacks = CallbackList(list(callbacks))
        self.summary = Summary()
        self.current: Optional[CheckpointInfo] = None
        self.source = ""
        self.init_frames()
        self.init_steer()
        self.watcher: Optional[CheckpointWatcher] = None
        self._stop_event = threading.Event()
        # set from restore() until run() ends: a stop signal between the two must not kill the process
        self._restore_signals: Optional[Callable[[], None]] = None
        self._restore_spec = pc.get("checkpoint") or None
        self._env_closed = False
        self.pending_rollback: Optional[Any] = None  # (previous state, previous info, version) until a step succeeds
        self.initial_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    # -- checkpoint handling ---------------------------------------------------------------------
    def restore(self, fn: str) -> None:
        """Follow ``fn`` (a .pth file, an experiment folder, or ``latest``); load it now if present.

        rl-games' Runner calls this with ``checkpoint``. Unlike the stock restore, a missing or bad
        file is not fatal: the player waits for a valid one. The load runs on the watcher (in the loader
        child) like every later one; this waits for the first check, bounded and interruptible. A named
        file of another network raises CheckpointError (kind ``mismatch``).
        """
        self._restore_spec = fn
        self.callbacks.setup(self)  # e.g. the stream page is up while the first checkpoint is awaited
        watcher = self._make_watcher(fn)
        watcher.start()
        if self._restore_signals is None:
            self._restore_signals = self._install_signal_handlers()  # run() puts the old ones back
        try:
            deadline = time.monotonic() + FIRST_CHECK_WAIT_S
            while not self._stop_event.is_set() and time.monotonic() < deadline:
                if watcher.wait_first_check(0.2):
                    break
            self._raise_if_fatal()
        except BaseException:
            self._put_signals_back()
            raise
        if watcher.ready:
            self.swap_in(watcher.take())

    def _make_watcher(self, spec: str) -> CheckpointWatcher:
        if self.watcher is None or self.watcher.source.spec != spec:
            source = make_source(spec, self.train_dir, self.storage_options)
            self.source = source.describe()
            self.watcher = CheckpointWatcher(
                source, self.model.state_dict(), self.reload_interval, loader=self.loader,
                max_bytes=int(self.max_checkpoint_mb * 2**20), watch="poll" if source.atomic else self.watch,
            )  # fmt: skip
        return self.watcher

    def _raise_if_fatal(self) -> None:
        if self.watcher is not None and self.watcher.fatal is not None and self.current is None:
            self.watcher.stop()
            raise self.watcher.fatal

    def reload_health(self) -> Dict[str, Any]:
        """The watcher's health (last check, last error, loader); thread-safe, for /status."""
        return self.watcher.health() if self.watcher is not None else {}

    def request_stop(self) -> None:
        """Ask the play loop to end after the current step (thread-safe; used by signal handlers)."""
        self._stop_event.set()
        self.control.wake()  # a paused player notices at once

    # -- the loop ------------------------------------------------------------------------------------
    def run(self) -> Summary:
        """Play until ``games_num`` games are done (0 = forever) or Ctrl+C / SIGTERM; return the summary."""
        if self._restore_signals is None:
            self._restore_signals = self._install_signal_handlers()
        try:
            self.callbacks.setup(self)  # once: a no-op when restore() did it
            if self.watcher is None:
                if not self._restore_spec:
                    raise CheckpointError("no checkpoint given: set checkpoint=<file|folder|latest>")
                self._make_watcher(self._restore_spec)
            assert self.watcher is not None
            self.watcher.start()
            started = False
            while not self._stop_event.is_set():
                while self.current is None and not self._stop_event.is_set():
                    if self.watcher.wait(0.2):
                        self._raise_if_fatal()
                        self.swap_in(self.watcher.take())
                if self.current is None:
                    break
                if not started:
                    started = True
                    self.callbacks.on_start(self)
                if not self._play():
                    break  # else the first checkpoint was rolled back: wait for another
        finally:
            if self.watcher is not None:
                self.watcher.stop()
                self.summary.watcher = self.watcher.health()
            self._put_signals_back()
            self._finish()
        return self.summary

    def _play(self) -> bool:
        """The step loop. Returns True if it must wait for a first checkpoint again (a rollback)."""
        assert self.watcher is not None
        watcher, cbs, summary = self.watcher, self.callbacks, self.summary
        deterministic = self.is_deterministic
        obses = self.env_reset(self.env)
        batch_size = self.get_batch_size(obses, 1)
        manual_reset = not self.player_config.get("use_vecenv", False) and batch_size == 1
        swap_at_game = self.swap_at == "game" or (self.swap_at == "auto" and batch_size == 1)
        self.init_rnn()
        dev = self.step_device()  # next to the env's rewards and dones: no copy per step
        episodes = EpisodeTracker(batch_size, dev, self.current.index if self.current else 0)
        n_games = self.games_num
        at_boundary = True
        step_no = 0
        control = self.control
        while not self._stop_event.is_set():
            if control.pending and self.steer():  # pause, pin, back, follow: applied here, between steps
                episodes.swapped(self.current.index)  # type: ignore[union-attr]
            if control.paused:
                control.wait(PAUSE_POLL_S)
                continue
            if watcher.ready and not control.pinned and (at_boundary or not swap_at_game):
                self.swap_in(watcher.take())
                episodes.swapped(self.current.index)  # type: ignore[union-attr]
            at_boundary = False
            try:
                action = self.get_action(obses, deterministic)
            except (RuntimeError, ValueError) as e:
                if self.pending_rollback is None:
                    raise
                self.roll_back(e)
                if self.current is None:
                    return True
                episodes.claim_fresh(self.current.index)
                continue
            self.pending_rollback = None
            if cbs.acting:
                cbs.on_action(self, step_no + 1)
            obses, r, done, info = self.env_step(self.env, action)
            episodes.step(r)
            step_no += 1
            summary.steps = step_no
            if self.render_env:
                self.env.render()
            if cbs.callbacks:
                cbs.on_step(self, step_no)
            done_indices = done.nonzero(as_tuple=False)[:: self.num_agents]
            if len(done_indices) == 0:
                continue
            if self.is_rnn and self.states is not None:
                all_done = done.nonzero(as_tuple=False)
                for s in self.states:
                    s[:, all_done, :] = s[:, all_done, :] * 0.0
            index = self.current.index  # type: ignore[union-attr]
            for episode in episodes.finish(done_indices, done, success_signal(info, dev), index):
                if n_games and summary.games >= n_games:
                    break  # several envs finished at once: count exactly games_num games
                self._record(episode)
            at_boundary = True
            if n_games and summary.games >= n_games:
                break
            if manual_reset:
                obses = self.env_reset(self.env)
        return False

    def _record(self, episode: EpisodeRecord) -> None:
        self.summary.add(episode)
        self.summary.per_checkpoint.setdefault(episode.checkpoint, CheckpointStats()).add(episode)
        if self.print_stats:
            print("reward: %.2f steps: %d" % (episode.reward, episode.length), flush=True)
        if self.callbacks:
            self.callbacks.on_episode_end(self, episode)

    def _finish(self) -> None:
        s = self.summary
        try:
            self.callbacks.on_stop(self, s)
        finally:
            for line in s.report_lines(SUMMARY_ROWS):
                log.info("%s", line)
            if s.games:
                print("av reward:", s.mean_reward, "av steps:", s.mean_length, flush=True)
            self.close_all()

    def close_all(self) -> None:
        """Release everything: callbacks (each ``close()`` once), the watcher, the env. ``run()`` ends with
        this; call it yourself only when ``run()`` never ran (e.g. ``restore()`` raised)."""
        try:
            self.callbacks.close()
        finally:
            if self.watcher is not None:
                self.watcher.stop()
            close = getattr(self.env, "close", None)  # rl-games' IVecEnv does not require one
            if close is not None and not self._env_closed:
                self._env_closed = True
                close()

    def _put_signals_back(self) -> None:
        if self._restore_signals is not None:
            self._restore_signals()
            self._restore_signals = None

    def _install_signal_handlers(self) -> Callable[[], None]:
        return install_stop_handlers(self._stop_event, lambda name: log.info("Stopping (%s) ...", name))

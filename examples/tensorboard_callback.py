"""A custom callback: reload events and per-checkpoint reward (and success rate) in TensorBoard.

    python examples/tensorboard_callback.py --logdir runs/monitor_tb checkpoint=latest    # + any CLI key=value
    tensorboard --logdir runs/monitor_tb

Scalars written (``step`` is the training epoch of the checkpoint, so reward is plotted against training):
``reload/epoch`` and ``reload/load_ms`` per checkpoint loaded (step = 0, 1, 2, ... in load order), ``episode/reward`` and
``episode/length`` per finished game (step = game count), and once a checkpoint has been replaced (or
the monitor stops): ``checkpoint/mean_reward``, ``checkpoint/games`` and, for tasks that report success
(BlindGrasping), ``checkpoint/success_rate``. Games that spanned a reload count for no checkpoint.

Built with :mod:`rlg_hotreload.build` (the "From Python" route): the config is validated like the CLI's,
and errors are one ``error:`` line with exit code 2.
"""

import argparse
import sys
from typing import Optional, Set

from torch.utils.tensorboard import SummaryWriter

from rlg_hotreload import CheckpointInfo, EpisodeRecord, PlayerCallback, PlayerView, Summary, build
from rlg_hotreload.config import ConfigError
from rlg_hotreload.reload import CheckpointError


class TensorBoardCallback(PlayerCallback):
    """Writes what the monitor sees to TensorBoard; the writer lives from ``setup`` to ``close``."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self.writer: Optional[SummaryWriter] = None
        self.logged: Set[int] = set()  # checkpoints whose final numbers are written

    def setup(self, player: PlayerView) -> None:
        self.writer = SummaryWriter(self.logdir, flush_secs=10)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def on_reload(self, player: PlayerView, info: CheckpointInfo) -> None:
        assert self.writer is not None
        self.writer.add_scalar("reload/epoch", info.epoch if info.epoch is not None else -1, info.index)
        self.writer.add_scalar("reload/load_ms", info.load_ms, info.index)
        # the checkpoints before this one get no more games: their numbers are final now
        self._log_checkpoints(player.summary, upto=info.index)

    def on_episode_end(self, player: PlayerView, episode: EpisodeRecord) -> None:
        assert self.writer is not None
        n = player.summary.games
        self.writer.add_scalar("episode/reward", episode.reward, n)
        self.writer.add_scalar("episode/length", episode.length, n)
        success = episode.success  # None when the task gives no success signal
        if success is not None:
            self.writer.add_scalar("episode/success", float(success), n)

    def on_stop(self, player: PlayerView, summary: Summary) -> None:
        self._log_checkpoints(summary, upto=len(summary.checkpoints))
        if self.writer is not None:
            self.writer.flush()

    def _log_checkpoints(self, summary: Summary, upto: int) -> None:
        assert self.writer is not None
        for info in summary.checkpoints[:upto]:
            stats = summary.per_checkpoint.get(info.index)
            if info.index in self.logged or stats is None or not stats.games:
                continue
            self.logged.add(info.index)
            step = info.epoch if info.epoch is not None else info.index
            self.writer.add_scalar("checkpoint/mean_reward", stats.mean_reward, step)
            self.writer.add_scalar("checkpoint/games", stats.games, step)
            rate = stats.success_rate  # None when no episode had a success signal
            if rate is not None:
                self.writer.add_scalar("checkpoint/success_rate", rate, step)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--logdir", default="runs/monitor_tb", help="TensorBoard folder (default: runs/monitor_tb)"
    )
    ap.add_argument("overrides", nargs="*", help="CLI key=value words (checkpoint=latest, task=..., ...)")
    args = ap.parse_args()
    try:
        cfg = build.load_config(args.overrides, preset="test")  # headless play, checkpoint=latest
        summary = build.play(cfg, callbacks=[TensorBoardCallback(args.logdir)])
    except (ConfigError, CheckpointError) as e:  # a bad key or value; a named file of another network
        print("error: %s" % e, file=sys.stderr)
        return 2
    print(
        "TensorBoard: %d checkpoints, %d games written to %s"
        % (len(summary.checkpoints), summary.games, args.logdir)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

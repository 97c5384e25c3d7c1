"""One player of compare_eval_mode.py, run in its own process so that a crash is observed, not suffered.

Usage: python benchmarks/_eval_worker.py stock|hot <run_dir> [update_checkpoint_freq]

``stock``: a stock rl-games Runner without ``player: hot_reload`` (PpoPlayerContinuous) in its own
evaluation mode: ``config.player.evaluation: true``, ``dir_to_monitor: <run_dir>/nn``,
``update_checkpoint_freq``; started as ``runner.run({'play': True})`` with no checkpoint, as an
evaluation worker next to a training run is. ``hot``: HotReloadPlayer through the same Runner,
``checkpoint=<run_dir>``, ``reloadInterval=0.5``. Neither is patched. The line ``WORKER READY`` is
printed once the player is built (stock: its watchdog observer is running), before ``run``.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import REPO  # noqa: E402


def main() -> None:
    kind, run_dir = sys.argv[1], sys.argv[2]
    freq = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    import torch
    from rl_games.torch_runner import Runner

    from rlg_hotreload import build

    torch.set_num_threads(1)
    cfg = build.load_config(
        ["task=Pendulum-v1", "trainDir=%s" % run_dir, "printStats=false", "reloadInterval=0.5",
         "testGamesNum=%d" % (0 if kind == "hot" else 10**9)],
        preset=os.path.join(REPO, "cfg", "test.yaml"),
    )  # fmt: skip
    params = build.make_params(cfg)
    if kind == "stock":
        del params["algo"]["player"]
        params["config"]["player"].update(
            evaluation=True, dir_to_monitor=os.path.join(run_dir, "nn"), update_checkpoint_freq=freq
        )
        runner = Runner()  # a plain Runner: rl-games' own player factory, unpatched
        runner.load({"params": params})
    else:
        runner = build.make_runner(params)
    # Runner.run_play, spelled out only to print READY between create_player and run
    player = runner.create_player()
    if kind == "hot":
        player.restore(run_dir)
    elif os.path.exists(os.path.join(run_dir, "nn", "Pendulum.pth")):
        player.restore(os.path.join(run_dir, "nn", "Pendulum.pth"))  # Runner._restore(checkpoint=...)
    print("WORKER READY", flush=True)
    player.run()


if __name__ == "__main__":
    main()

"""rl-games' own ``runner.py``, plus the one line that selects hot reload for YAMLs that ask for it.

    python examples/rlg_runner.py --train --file examples/blind_grasping_hot_reload.yaml
    python examples/rlg_runner.py --play --file examples/blind_grasping_hot_reload.yaml --checkpoint latest

The YAML says ``player: hot_reload`` under ``params.algo`` (and hot-reload settings under
``params.config.player``); ``rlg_hotreload.register(runner)`` makes this Runner build HotReloadPlayer for
it. Everything else is rl-games as shipped: its ``Runner``, its trainer, its ``run_play``. With
``--checkpoint latest`` (or a run folder) the player follows the newest run and swaps in each new
checkpoint; Ctrl+C ends it with a summary.
"""

import argparse
import os
import sys

import yaml

import isaacgym_tasks
import rlg_hotreload


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-f", "--file", required=True, help="rl-games YAML")
    ap.add_argument("-tr", "--train", action="store_true", help="train")
    ap.add_argument("-p", "--play", action="store_true", help="play (with player: hot_reload, forever)")
    ap.add_argument("-c", "--checkpoint", default=None, help="a .pth file, a run folder, or latest")
    ap.add_argument("-na", "--num_actors", type=int, default=None, help="override config.num_actors")
    ap.add_argument("--max_epochs", type=int, default=None, help="override config.max_epochs")
    args = ap.parse_args()
    if args.train == args.play:
        ap.error("give exactly one of --train, --play")
    if args.play and not args.checkpoint:
        ap.error("--play needs --checkpoint (a .pth file, a run folder, or latest)")
    try:
        with open(args.file) as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        ap.error("--file %s: %s" % (args.file, e))
    if not isinstance(config, dict) or not isinstance(config.get("params"), dict):
        ap.error("--file %s: not an rl-games YAML (needs params:)" % args.file)
    conf = config["params"]["config"]
    if args.num_actors:
        conf["num_actors"] = args.num_actors
    if args.max_epochs:
        conf["max_epochs"] = args.max_epochs

    isaacgym_tasks.register()  # BlindGrasping in rl-games' env registries (IsaacGymEnvs does the same)
    from rl_games.torch_runner import Runner

    runner = Runner()
    rlg_hotreload.register(runner)  # the one line: `player: hot_reload` in a YAML now means HotReloadPlayer
    runner.load(config)
    runner.reset()
    runner.run({"train": args.train, "play": args.play, "checkpoint": args.checkpoint})
    return 0


if __name__ == "__main__":
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering, should anything render
    sys.exit(main())

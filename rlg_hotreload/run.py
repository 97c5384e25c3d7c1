"""``python -m rlg_hotreload.run --cfg cfg/<preset>.yaml [key=value ...]``: train or watch, via rl-games' Runner.

Why a thin CLI over the stock Runner: users keep their rl-games YAMLs; this only merges our presets and
overrides into them (seed-workflow spellings included) and hands the config to :mod:`rlg_hotreload.build`,
which validates every value before the simulator starts and builds. This module is the one place where
library errors (ConfigError, a named checkpoint that does not fit) become ``error: ...`` and exit code 2.
"""

import argparse
import logging
import os
import sys
from typing import Any, Dict, Optional, Sequence

from rlg_hotreload import config as cfglib
from rlg_hotreload import params as paramslib
from rlg_hotreload.config import ConfigError

log = logging.getLogger("rlg_hotreload")


# Kept for benchmarks/gpu.py, which predates rlg_hotreload.build (use build/params in new code).
_register_task = paramslib.register_task
_train_config_path = paramslib.train_config_path
resolve_devices = paramslib.resolve_devices
build_params = paramslib.build_params

_played = False  # set once a play session has run to its end (see cli())


def run(cfg: Dict[str, Any]) -> int:
    """Validate everything, then train or play (:mod:`rlg_hotreload.build`). Returns the exit code."""
    from rlg_hotreload import build

    global _played
    try:
        if cfg["train"]["test"]:
            build.play(cfg)
            _played = True
            return 0
        return build.train(cfg)
    except KeyboardInterrupt:
        log.info("Interrupted.")
        _played = bool(cfg["train"]["test"])
        return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rlg_hotreload.run",
        description="Train with rl-games, or play the newest checkpoint forever with hot reload.",
        epilog="Keys (all in cfg/base.yaml; README: config reference): task, sim (auto|mujoco|mjwarp|isaacgym), "
        "rl_device and sim_device (auto|cpu|cuda:N), graphics_device_id, numEnvs, seed, headless, checkpoint, "
        "reloadInterval, testGamesNum, maxEpochs, stream.*, record.*. "
        "Examples: --cfg cfg/train_headless.yaml task=Pendulum-v1 | "
        "config=test_stream testGamesNum=0 checkpoint=latest | config=train_headless sim=mjwarp rl_device=cuda:0",
    )
    parser.add_argument("--cfg", help="preset YAML (cfg/test.yaml, cfg/test_stream.yaml, ...)")
    parser.add_argument("overrides", nargs="*", help="key=value (see README: config reference)")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[rlg_hotreload] %(message)s", stream=sys.stdout)
    try:
        cfg = cfglib.load(ns.cfg, ns.overrides)
        return run(cfg)
    except ConfigError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    except Exception as e:
        from rlg_hotreload.reload import CheckpointError  # torch is loaded by then: no cost

        if not isinstance(e, CheckpointError):
            raise
        # a named file that does not fit the network: nothing to wait for
        key = "compare=%s" % cfg["compare"] if cfg.get("compare") else "train.checkpoint=%s" % cfg["train"]["checkpoint"]
        print("error: %s: %s" % (key, e), file=sys.stderr)
        return 2


def cli() -> None:
    """Console entry point. After a play session everything is already closed (env, streamer, loader
    child, recordings finalized in ``on_stop``), so skip the interpreter's teardown of torch, MuJoCo and
    EGL, which alone takes ~1.2 s: Ctrl+C must end the monitor within 2 s. Training exits normally
    (rl-games' summary writers flush at exit)."""
    code = main()
    if _played:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    cli()

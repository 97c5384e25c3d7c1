"""``rlg-hotreload [--cfg PRESET] [key=value ...]`` (or ``python -m rlg_hotreload.run``): train or watch.

Why a thin CLI over the stock Runner: users keep their rl-games YAMLs; this only merges our presets and
overrides into them (seed-workflow spellings included) and hands the config to :mod:`rlg_hotreload.build`,
which validates every value before the simulator starts and builds. This module is the one place where
library errors (ConfigError, a named checkpoint that does not fit) become ``error: ...`` and exit code 2.
``--help`` is generated from :mod:`rlg_hotreload.schema`, as is the README's config reference.
"""

import argparse
import logging
import os
import sys
from typing import Any, Dict, Optional, Sequence

from rlg_hotreload import __version__, schema
from rlg_hotreload import config as cfglib
from rlg_hotreload.config import ConfigError

log = logging.getLogger("rlg_hotreload")

MODULE_PROG = "python -m rlg_hotreload.run"
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


def typed_prog(argv0: str) -> str:
    """The command as the user typed it: ``rlg-hotreload`` (console script) or ``python -m ...``."""
    name = os.path.basename(argv0)
    return MODULE_PROG if not name or name.endswith(".py") or name == "-m" else name


def epilog(prog: str) -> str:
    presets = ["  %-15s %s" % (name, what) for name, what in cfglib.presets().items()]
    return "\n".join(
        [
            "presets (config=NAME, or --cfg FILE; ./cfg/NAME.yaml overrides the shipped one):",
            *presets,
            "",
            "keys (key=value; train.* keys also without their prefix; aliases after |):",
            *schema.help_lines(),
            "",
            "examples:",
            "  %s config=train_headless task=Pendulum-v1" % prog,
            "  %s config=test_stream checkpoint=latest streamBindAll=true" % prog,
            "  %s config=train_headless sim=mjwarp rl_device=cuda:0" % prog,
        ]
    )


def parser(prog: str = MODULE_PROG) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Train with rl-games, or play the newest checkpoint forever with hot reload.",
        epilog=epilog(prog),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--cfg", metavar="FILE", help="a preset YAML (a path, or cfg/NAME.yaml of the shipped presets)"
    )
    p.add_argument("--version", action="version", version="%(prog)s (rlg-hotreload) " + __version__)
    p.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config=NAME picks a preset; see keys below"
    )
    return p


def main(argv: Optional[Sequence[str]] = None, prog: str = MODULE_PROG) -> int:
    ns = parser(prog).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[rlg_hotreload] %(message)s", stream=sys.stdout)
    cfg: Dict[str, Any] = {}
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
    code = main(prog=typed_prog(sys.argv[0]))
    if _played:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    cli()

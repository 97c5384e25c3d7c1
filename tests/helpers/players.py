"""Real players and training runs for tests, built the way users build them (``rlg_hotreload.build``)."""

import os
from typing import Any, Sequence

from helpers.procs import REPO
from rlg_hotreload import build
from rlg_hotreload.callbacks import PlayerCallback


def make_player(train_dir: Any, callbacks: Sequence[PlayerCallback] = (), **overrides: Any) -> Any:
    """A real HotReloadPlayer for Pendulum-v1 (preset ``cfg/test.yaml``, ``key=value`` overrides)."""
    args = ["task=Pendulum-v1", "trainDir=%s" % train_dir, "printStats=false"]
    args += ["%s=%s" % kv for kv in overrides.items()]
    cfg = build.load_config(args, preset=os.path.join(REPO, "cfg", "test.yaml"))
    return build.make_player(cfg, callbacks)

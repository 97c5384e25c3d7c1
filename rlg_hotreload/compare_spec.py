"""``compare=latest,best,<file>``: which checkpoints play side by side, checked before anything starts.

Why its own light module: the CLI validates every value before the simulator boots (no torch here), and
the player (:mod:`rlg_hotreload.compare`) and the params builder read the same parsed slots.

A slot is one of:

- ``latest`` — the newest checkpoint of the followed run (hot reload, as ``checkpoint=latest``);
- ``best`` — the run's best file, ``<name>.pth``, which rl-games rewrites in place (followed too);
- a path to a ``.pth`` file — fixed: loaded once.

The followed run is ``checkpoint=`` (``latest`` = the newest run in ``trainDir``, or a run folder).
"""

import os
from dataclasses import asdict, dataclass
from typing import Any, Dict, List

from rlg_hotreload.config import ConfigError, suggest

WORDS = ("latest", "best")
MAX_SLOTS = 8
#: the one task whose envs can start every slot from the same states (``reset_groups``)
SUPPORTED_TASK = "BlindGrasping"


@dataclass(frozen=True)
class SlotSpec:
    """One slot: ``kind`` is ``latest``, ``best`` or ``file`` (then ``path`` is the file)."""

    label: str
    kind: str
    path: str = ""

    def to_dict(self) -> Dict[str, str]:
        return asdict(self)


def _allowed() -> str:
    return "allowed: latest, best, or an existing .pth file"


def parse(text: str) -> List[SlotSpec]:
    """The slots of ``compare=text``, in tile order; ConfigError (one line) for anything unusable."""
    words = [w.strip() for w in str(text).split(",")]
    if len(words) < 2:
        raise ConfigError("compare=%s: give at least two slots, comma-separated (e.g. compare=latest,best); "
                          "to play one checkpoint use checkpoint=" % text)  # fmt: skip
    if len(words) > MAX_SLOTS:
        raise ConfigError("compare=%s: %d slots; at most %d" % (text, len(words), MAX_SLOTS))
    out: List[SlotSpec] = []
    for w in words:
        if not w:
            raise ConfigError("compare=%s: an empty slot; %s" % (text, _allowed()))
        if w in WORDS:
            kind, label, path = w, w, ""
        elif os.path.isfile(w):
            kind, label, path = "file", os.path.splitext(os.path.basename(w))[0], w
        elif os.path.isdir(w):
            raise ConfigError("compare=%s: '%s' is a folder; %s (the run that latest and best follow is "
                              "checkpoint=)" % (text, w, _allowed()))  # fmt: skip
        elif os.sep in w or w.endswith(".pth"):
            raise ConfigError("compare=%s: '%s': no such file; %s" % (text, w, _allowed()))
        else:
            raise ConfigError("compare=%s: unknown slot '%s'%s; %s" % (text, w, suggest(w, WORDS), _allowed()))
        taken = {s.label for s in out}
        if label in taken:  # the same word twice is an A/A comparison: tell the tiles apart
            label = next("%s#%d" % (label, i) for i in range(2, MAX_SLOTS + 2) if "%s#%d" % (label, i) not in taken)
        out.append(SlotSpec(label, kind, path))
    return out


def check(cfg: Dict[str, Any]) -> List[SlotSpec]:
    """The slots of a validated CLI config (``[]`` without ``compare``); ConfigError when compare mode
    cannot run with the rest of ``cfg`` (training, a gym task, a file as the followed run, recording)."""
    text = cfg.get("compare")
    if not text:
        return []
    slots = parse(text)
    if not cfg["train"]["test"]:
        raise ConfigError("compare=%s: compares checkpoints while playing; allowed only with train.test=true "
                          "(e.g. config=test)" % text)  # fmt: skip
    if cfg["task"] != SUPPORTED_TASK:
        raise ConfigError("compare=%s: task=%s is not supported; allowed: task=%s (its envs start every slot "
                          "from the same states)" % (text, cfg["task"], SUPPORTED_TASK))  # fmt: skip
    run = cfg["train"]["checkpoint"] or "latest"
    if run != "latest" and (run.endswith(".pth") or os.path.isfile(run)):
        raise ConfigError("train.checkpoint=%s: with compare=, checkpoint names the run that latest and best "
                          "follow (latest or a run folder); put files in compare=" % run)  # fmt: skip
    if cfg["record"]["enabled"]:
        raise ConfigError("record.enabled=true: not supported with compare=; watch it with config=test_stream")
    return slots


def grid(k: int) -> int:
    """Columns of the tiled view for ``k`` slots: one row up to 3, then a near-square grid."""
    if k <= 3:
        return k
    cols = 1
    while cols * cols < k:
        cols += 1
    return cols

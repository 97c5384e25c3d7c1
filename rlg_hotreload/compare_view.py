"""What a comparison (``compare=``) shows: the per-slot log line, the end-of-run summary, the tiled view.

Why apart from :mod:`rlg_hotreload.compare`: these read slots and never change them, so the ComparePlayer's
loop (swaps, rollbacks, episode bookkeeping) reads without them, and a change of wording or layout never
touches the loop. Each function takes the slots as they are at the moment it is called.
"""

from typing import Any, List, Optional, Sequence

import numpy as np
import torch

from rlg_hotreload.compare_slot import CompareSlot
from rlg_hotreload.compare_spec import grid
from rlg_hotreload.frame_tiles import tile_frames
from rlg_hotreload.records import Summary


def slot_line(s: CompareSlot) -> str:
    """``latest BlindGrasping@ep40: 24 games, reward 281.07, success 75.0 %`` (the checkpoint playing now)."""
    st = s.stats_here()
    rate = "" if st.success_rate is None else ", success %.1f %%" % (100.0 * st.success_rate)
    reward = "%.2f" % st.mean_reward if st.games else "n/a"
    return "%s %s: %d games, reward %s%s" % (s.label, s.current.label if s.current else "-", st.games, reward, rate)


def summary_lines(slots: Sequence[CompareSlot], summary: Summary, rows: int) -> List[str]:
    """The end-of-run summary: per slot its totals, watcher and checkpoints (Summary.report_lines)."""
    out = ["Compare summary: %d steps, %d slots x %d envs" % (summary.steps, len(slots), slots[0].n)]
    for s in slots:
        lines = s.summary.report_lines(rows)
        out.append("[%s] %s" % (s.label, lines[0].replace("Summary: ", "", 1)))
        out.extend("  " + line for line in lines[1:])
    return out


def tiles(env: Any, slots: Sequence[CompareSlot]) -> Optional[np.ndarray]:
    """Env ``first_env`` of each slot, side by side, labelled (see :mod:`frame_tiles`); None when nothing is drawn."""
    render_env = getattr(env, "render_env", None)  # BlindGrasping's MuJoCo and Warp backends
    frames = []
    for s in slots:
        if render_env is not None:
            f = render_env(s.first_env)
        else:  # only env 0 can be drawn: the other tiles stay black
            f = env.render() if s.index == 0 else None
        frames.append(f.cpu().numpy() if isinstance(f, torch.Tensor) else f)
    labels = ["%s  %s" % (s.label, s.current.label if s.current else "waiting") for s in slots]
    return tile_frames(frames, labels, grid(len(slots)))

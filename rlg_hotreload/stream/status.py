"""The /status JSON of a player: its checkpoints, their episodes' numbers, compare slots.

Why its own module: the streamer serves these dicts, but what they hold is the player's record, not
HTTP; kept apart they can be read (and tested) without a server. Built on the player thread (between
steps), so HTTP threads only ever copy a finished dict.
"""

import math
from typing import Any, Dict, List, Optional

from rlg_hotreload.callbacks import CompareView, PlayerView
from rlg_hotreload.records import CheckpointInfo, CheckpointStats, Summary

#: Status keeps the newest this many checkpoints (a week-long run may reload thousands of times).
MAX_CHECKPOINTS_IN_STATUS = 500


def finite(x: Optional[float]) -> Optional[float]:
    """JSON has no NaN: the browser's JSON.parse would reject the whole status."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def info_dict(info: CheckpointInfo) -> Dict[str, Any]:
    return {
        "index": info.index,
        "label": info.label,
        "path": info.path,
        "epoch": info.epoch,
        "frame": info.frame,
        "best_reward": finite(info.best_reward),
        "mtime": info.mtime,
        "size": info.size,
        "load_ms": info.load_ms,
        "loaded_at": info.loaded_at,
    }


def checkpoint_dict(info: CheckpointInfo, st: Optional[CheckpointStats]) -> Dict[str, Any]:
    """A checkpoint and its episodes' numbers (the plot's and the reload list's points)."""
    d = info_dict(info)
    d.update(
        episodes=st.games if st else 0,
        mean_reward=finite(st.mean_reward) if st else None,
        mean_length=finite(st.mean_length) if st else None,
        success_rate=st.success_rate if st else None,  # None: the task reports no success
        success_episodes=st.success_games if st else 0,
    )
    return d


def slot_dict(slot: Any) -> Dict[str, Any]:
    """/status block of one compare slot (see ``callbacks.CompareView``): totals and the checkpoint now."""
    st, cur = slot.summary, slot.current
    here = st.per_checkpoint.get(cur.index) if cur is not None else None
    return {
        "label": slot.label, "kind": slot.kind, "source": slot.source, "env_index": slot.first_env,
        "checkpoint": info_dict(cur) if cur is not None else None,
        "games": st.games, "mean_reward": finite(st.mean_reward), "mean_length": finite(st.mean_length),
        "success_rate": st.success_rate, "success_episodes": st.success_games, "reloads": st.reloads,
        "checkpoints_loaded": len(st.checkpoints),
        "checkpoints": [checkpoint_dict(info, st.per_checkpoint.get(info.index)) for info in st.checkpoints[-20:]],
        "here": None if here is None else {
            "games": here.games, "mean_reward": finite(here.mean_reward), "success_rate": here.success_rate},
    }  # fmt: skip


def player_snapshot(player: PlayerView, max_checkpoints: int = MAX_CHECKPOINTS_IN_STATUS) -> Dict[str, Any]:
    """What the player did so far: source, checkpoint playing, per-checkpoint numbers, slots."""
    summary: Optional[Summary] = player.summary
    current: Optional[CheckpointInfo] = player.current
    snap: Dict[str, Any] = {
        "source": str(player.source or ""),
        "checkpoint": info_dict(current) if current is not None else None,
        "control_dt": player.control_dt,
    }
    cps: List[Dict[str, Any]] = []
    if summary is not None:
        per = dict(summary.per_checkpoint)
        for info in summary.checkpoints[-max_checkpoints:]:
            cps.append(checkpoint_dict(info, per.get(info.index)))
        mixed = per.get(None)
        snap.update(
            reloads=summary.reloads,
            checkpoints_loaded=len(summary.checkpoints),
            games=summary.games,
            mean_reward=finite(summary.mean_reward),
            success_rate=summary.success_rate,
            mixed_episodes=mixed.games if mixed else 0,
        )
    snap["checkpoints"] = cps
    if isinstance(player, CompareView):
        snap["slots"] = [slot_dict(sl) for sl in player.slots]
    return snap

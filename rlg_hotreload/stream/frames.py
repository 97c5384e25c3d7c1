"""Shared frame grabbing: one render per player step, however many callbacks want that frame.

Why: the streamer and the recorder are independent callbacks; both may want the frame of the same
step. Rendering is the expensive part (often more than the policy), so the first caller in a step
renders through ``player.grab_frame()`` and later callers in the same step get the same array.
"""

import logging
import weakref
from typing import Any, Optional, Tuple

import numpy as np

log = logging.getLogger("rlg_hotreload")

_cache: "weakref.WeakKeyDictionary[Any, Tuple[int, Optional[np.ndarray]]]" = weakref.WeakKeyDictionary()


def grab_frame_once(player: Any, step: int) -> Optional[np.ndarray]:
    """``player.grab_frame()`` at most once per (player, step); None when the source has no frame."""
    try:
        hit = _cache.get(player)
    except TypeError:  # player not weak-referenceable: no sharing, but still correct
        return player.grab_frame()
    if hit is not None and hit[0] == step:
        return hit[1]
    frame = player.grab_frame()
    _cache[player] = (step, frame)
    return frame

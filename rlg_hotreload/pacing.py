"""RealtimePacer: a callback that holds the player to wall-clock speed (one ``control_dt`` per step).

Why pace at all: a monitor watched in a browser shows motion at the speed it happened; unpaced, a fast
simulator plays many times faster than real time and takes CPU from the training it shares the machine
with. Why a callback of its own: pacing is about the player's clock, not about HTTP; the streamer uses
one (pacing only while someone watches), and any other add-on can too.
"""

import time
from typing import Callable, Optional, Tuple

from rlg_hotreload.callbacks import PlayerCallback, PlayerView
from rlg_hotreload.records import CheckpointInfo

#: Sleep at most this long per step (a huge control_dt must not freeze the loop).
MAX_SLEEP_S = 1.0
#: Slower than real time by more than this: re-anchor instead of sprinting to catch up later.
MAX_LAG_S = 0.25


class RealtimePacer(PlayerCallback):
    """Sleep in ``on_step`` so that step ``n`` happens ``n * player.control_dt`` after the anchor.

    ``when()`` says whether to pace now (default: always); while it is false, or the player has no
    ``control_dt``, nothing sleeps and the next paced step starts a new anchor.
    """

    def __init__(self, when: Optional[Callable[[], bool]] = None) -> None:
        self.when = when
        self.slept_s = 0.0
        self._anchor: Optional[Tuple[float, int]] = None  # (wall time, step)

    def on_reload(self, player: PlayerView, info: CheckpointInfo) -> None:
        self._anchor = None  # a reload may take a moment; don't try to "catch up" afterwards

    def on_step(self, player: PlayerView, step: int) -> None:
        dt = player.control_dt
        if not dt or (self.when is not None and not self.when()):
            self._anchor = None
            return
        now = time.monotonic()
        if self._anchor is None:
            self._anchor = (now, step)
            return
        t0, s0 = self._anchor
        ahead = t0 + (step - s0) * dt - now
        if ahead > 0:
            sleep = min(ahead, MAX_SLEEP_S)
            time.sleep(sleep)
            self.slept_s += sleep
        elif ahead < -MAX_LAG_S:
            self._anchor = (now, step)

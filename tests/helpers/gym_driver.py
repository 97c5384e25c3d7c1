"""GymDriver: a minimal stand-in for HotReloadPlayer's hook calls, stepping a REAL gymnasium env.

Why it exists: the streamer and recorder are callbacks; testing them needs something that steps an
environment, renders real frames and calls the hooks in the documented order, with the attributes
the player exposes (``callbacks.PlayerView``: grab_frame, summary, current, control_dt, source, ...). It loads no checkpoints:
``reload()`` fabricates a CheckpointInfo and changes a controller gain, which is all a callback sees.
"""

import os
import threading
import time
from typing import List, Optional

import gymnasium
import numpy as np

from rlg_hotreload.callbacks import (
    CallbackList,
    CheckpointInfo,
    CheckpointStats,
    EpisodeRecord,
    PlayerCallback,
    Summary,
)


class GymDriver:
    """Steps ``Pendulum-v1`` (rgb_array) and calls on_start/on_reload/on_step/on_episode_end/on_stop."""

    def __init__(
        self, callbacks: List[PlayerCallback] = (), env_id: str = "Pendulum-v1", seed: int = 0
    ) -> None:
        self.env = gymnasium.make(env_id, render_mode="rgb_array")
        self.callbacks = CallbackList(callbacks)
        self.summary = Summary()
        self.current: Optional[CheckpointInfo] = None
        self.control_dt: Optional[float] = float(getattr(self.env.unwrapped, "dt", 0.05))
        self.source = "runs/test_driver"
        self.frame_source = None
        self._frame_step = -1
        self._frame: Optional[np.ndarray] = None
        self.renders = 0
        self.steps = 0
        self.stop_event = threading.Event()
        self._gain = 1.0
        self._obs, _ = self.env.reset(seed=seed)
        self._ep_reward = 0.0
        self._ep_len = 0
        self._ep_ckpt: Optional[int] = None

    # -- attributes callbacks rely on ----------------------------------------------------------
    def grab_frame(self) -> Optional[np.ndarray]:
        """As the player: rendered once per step, the same array for later calls in that step."""
        if self._frame_step == self.steps:
            return self._frame
        self.renders += 1
        frame = self.frame_source() if self.frame_source is not None else self.env.render()
        self._frame_step, self._frame = self.steps, frame
        return frame

    def grab_frame_deferred(self) -> Optional[np.ndarray]:
        """gymnasium envs cannot render off the player thread: the synchronous frame, as the player."""
        return self.grab_frame()

    def request_stop(self) -> None:
        self.stop_event.set()

    def reload_health(self) -> dict:
        return {"alive": True, "checks": 0, "errors": 0, "last_error": None}

    # -- driving -----------------------------------------------------------------------------------
    def reload(
        self, epoch: int, path: str = "runs/test_driver/nn/pendulum.pth", reward: float = 0.0
    ) -> CheckpointInfo:
        """Pretend a new checkpoint was swapped in between two steps."""
        info = CheckpointInfo(
            index=len(self.summary.checkpoints),
            path=path,
            epoch=epoch,
            frame=epoch * 1000,
            best_reward=reward,
            mtime=time.time() - 3.0,
            size=1234,
            loaded_at=time.time(),
        )
        self.summary.checkpoints.append(info)
        if info.index > 0:
            self.summary.reloads += 1
        self.current = info
        self._gain = 1.0 + 0.5 * info.index
        if self._ep_len == 0:
            self._ep_ckpt = info.index
        self.callbacks.on_reload(self, info)
        return info

    def start(self, epoch: int = 10) -> None:
        self.callbacks.setup(self)
        self.reload(epoch)
        self._ep_ckpt = 0
        self.callbacks.on_start(self)

    def step(self) -> None:
        th, thdot = float(self._obs[0]), float(self._obs[2])
        action = np.array(
            [np.clip(-self._gain * (np.arctan2(self._obs[1], th) + 0.1 * thdot), -2, 2)], np.float32
        )
        self._obs, reward, term, trunc, _ = self.env.step(action)
        self.steps += 1
        self.summary.steps += 1
        self._ep_reward += float(reward)
        self._ep_len += 1
        self.callbacks.on_step(self, self.steps)
        if term or trunc:
            ck = self._ep_ckpt if self.current is not None and self._ep_ckpt == self.current.index else None
            ep = EpisodeRecord(env_index=0, reward=self._ep_reward, length=self._ep_len, checkpoint=ck)
            self.summary.add(ep)  # Pendulum reports no success: ep.success stays None, as the player's
            self.summary.per_checkpoint.setdefault(ck, CheckpointStats()).add(ep)
            self.callbacks.on_episode_end(self, ep)
            self._obs, _ = self.env.reset()
            self._ep_reward, self._ep_len = 0.0, 0
            self._ep_ckpt = self.current.index if self.current else None

    def run(
        self,
        steps: Optional[int] = None,
        max_s: float = 30.0,
        reload_every: int = 0,
        step_sleep: float = 0.0,
    ) -> None:
        """Step ``steps`` times or until ``stop_event``; never longer than max_s.

        ``reload_every`` swaps in a new fake checkpoint every N steps (on this thread, as the real
        player does); ``step_sleep`` slows the loop down like a slow simulator would.
        """
        t_end = time.monotonic() + max_s
        n = 0
        while (steps is None or n < steps) and time.monotonic() < t_end and not self.stop_event.is_set():
            self.step()
            n += 1
            if reload_every and self.steps % reload_every == 0:
                self.reload(
                    epoch=10 * (len(self.summary.checkpoints) + 1),
                    reward=float(len(self.summary.checkpoints)),
                )
            if step_sleep:
                time.sleep(step_sleep)

    def stop(self) -> None:
        """As the player's end: ``on_stop``, then each callback's ``close()`` once, then the env."""
        try:
            self.callbacks.on_stop(self, self.summary)
        finally:
            self.callbacks.close()
            self.env.close()


def run_in_thread(driver: GymDriver, **kw) -> threading.Thread:
    t = threading.Thread(target=driver.run, kwargs=kw, name="gym-driver", daemon=True)
    t.start()
    return t


if os.environ.get("SDL_VIDEODRIVER") is None:
    os.environ["SDL_VIDEODRIVER"] = "dummy"  # pygame must not try to open a window

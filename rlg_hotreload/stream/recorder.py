"""Recorder: an mp4 of the first episode(s) after each reload, named by checkpoint.

Why per reload: a video per checkpoint is the record of how the policy changed during training.
Why a writer thread: H.264 encoding takes milliseconds per frame; the player thread only queues
arrays, or, for envs that can render off the player thread, copies of the state that the writer
thread renders (:mod:`rlg_hotreload.frame_grab`). The queue is bounded and ``put`` blocks (bounded
wait), so during a recorded episode the player is throttled to the writer's speed instead of
silently losing frames.

Episodes are counted for env 0 only. The episode running when a reload happens spans two
checkpoints (the player reports it with ``checkpoint=None``): if env 0's first episode after a
reload is such a mixed one, its frames are thrown away and recording restarts with the next one.
On ``on_stop`` (also after Ctrl+C / SIGTERM) the open file is finalized, so it always plays.
"""

import logging
import os
import queue
import re
import threading
from typing import Any, Optional, Tuple

import imageio.v2 as imageio
import numpy as np
from PIL import Image

from rlg_hotreload.callbacks import PlayerCallback, PlayerView
from rlg_hotreload.frame_grab import FrameResolver
from rlg_hotreload.records import CheckpointInfo, EpisodeRecord, Summary
from rlg_hotreload.stream.hub import fit_size, to_rgb_uint8

log = logging.getLogger("rlg_hotreload")

_OPEN, _FRAME, _CLOSE = "open", "frame", "close"


def _safe_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._@=-]+", "_", label).strip("._") or "checkpoint"


class Recorder(PlayerCallback):
    """Write ``<out_dir>/<checkpoint label>.mp4`` with the first ``episodes`` episodes per reload.

    ``size`` is a (width, height) box: frames are scaled down to fit, keeping their aspect ratio,
    then cropped to even sizes (H.264 yuv420p needs them). ``fps`` caps the video frame rate; when
    the player knows its ``control_dt`` every k-th step is recorded so playback runs at real time.
    """

    def __init__(
        self,
        out_dir: str = "videos",
        episodes: int = 1,
        fps: float = 30.0,
        size: Optional[Tuple[int, int]] = None,
        queue_frames: int = 64,
    ) -> None:
        if not isinstance(episodes, int) or episodes < 1:
            raise ValueError("record.episodes must be an integer >= 1, got %r" % (episodes,))
        if not (isinstance(fps, (int, float)) and fps > 0):
            raise ValueError("record.fps must be > 0, got %r" % (fps,))
        self.out_dir = out_dir
        self.episodes = episodes
        self.fps = float(fps)
        self.size = None if size is None else (int(size[0]), int(size[1]))  # a box: aspect is kept
        self._q: "queue.Queue[Tuple[str, Any]]" = queue.Queue(maxsize=queue_frames)
        self._thread: Optional[threading.Thread] = None
        self._target: Optional[CheckpointInfo] = None  # checkpoint being recorded, None = idle
        self._left = 0
        self._every = 1  # record every k-th step so playback runs at about real time
        self._phase = 0
        self._path: Optional[str] = None
        self._video_fps = self.fps
        self.frames_queued = 0  # frames of the current file (reset per file)
        self.saved: list = []  # (path, frames) for each finalized file, in order

    @property
    def recording(self) -> bool:
        return self._target is not None

    # -- player hooks --------------------------------------------------------------------------
    def on_reload(self, player: PlayerView, info: CheckpointInfo) -> None:
        self._finish(keep=True, reason="next checkpoint loaded")
        dt = player.control_dt
        if dt:
            self._every = max(1, int(round(1.0 / (self.fps * dt))))
            video_fps = min(self.fps, 1.0 / (dt * self._every))
        else:
            self._every, video_fps = 1, self.fps
        self._target, self._left, self._phase = info, self.episodes, 0
        self._open(self._unique_path(info.label), video_fps)

    def on_step(self, player: PlayerView, step: int) -> None:
        if self._target is None:
            return
        self._phase += 1
        if (self._phase - 1) % self._every:
            return
        frame = player.grab_frame_deferred()  # once per step, shared with the streamer; maybe a state to render
        if frame is None:
            return
        try:
            self._q.put((_FRAME, frame), timeout=10.0)
            self.frames_queued += 1
        except queue.Full:
            log.error("Recorder: encoder stalled for 10 s, dropping a frame of %s", self._path)

    def on_episode_end(self, player: PlayerView, episode: EpisodeRecord) -> None:
        if self._target is None or episode.env_index != 0:
            return
        if episode.checkpoint != self._target.index:
            # Mixed episode (started under the previous weights): restart the file with the next one.
            path, fps = self._path, self._video_fps
            self._finish(keep=False, reason="episode spanned a reload")
            if path is not None:
                self._open(path, fps)
            return
        self._left -= 1
        if self._left <= 0:
            self._finish(keep=True, reason="%d episode(s) done" % self.episodes)

    def on_stop(self, player: PlayerView, summary: Summary) -> None:
        self._finish(keep=True, reason="player stopped")
        self.close()  # the file plays once on_stop returns (close() is idempotent; the player calls it too)

    # -- file handling ---------------------------------------------------------------------------
    def _unique_path(self, label: str) -> str:
        base = os.path.join(self.out_dir, _safe_name(label))
        path, n = base + ".mp4", 1
        while os.path.exists(path):
            path, n = "%s_%d.mp4" % (base, n), n + 1
        return path

    def _open(self, path: str, fps: float) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="rlg-recorder", daemon=True)
            self._thread.start()
        self._path, self._video_fps, self.frames_queued = path, fps, 0
        if self._target is not None and not self._send(_OPEN, (path, fps)):
            self._target = None

    def _finish(self, keep: bool, reason: str) -> None:
        if self._target is None:
            return
        self._send(_CLOSE, (keep, reason))
        if not keep:
            return  # caller reopens for the same checkpoint
        self._target = None

    def _send(self, kind: str, arg: Any) -> bool:
        """Queue a command for the writer; a writer stuck for 10 s costs this recording, not the player."""
        try:
            self._q.put((kind, arg), timeout=10.0)
            return True
        except queue.Full:
            log.error("Recorder: writer stuck for 10 s; giving up on %s", self._path)
            return False

    def close(self, timeout: float = 30.0) -> None:
        """Stop the writer thread after it has finalized everything queued (bounded wait)."""
        if self._thread is None:
            return
        try:
            self._q.put((_CLOSE, None), timeout=timeout)
        except queue.Full:
            log.error("Recorder: writer thread stuck; %s may be unfinished", self._path)
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error(
                "Recorder: writer did not finish within %.0f s; %s may be unfinished", timeout, self._path
            )
        self._thread = None

    # -- writer thread -----------------------------------------------------------------------------
    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        arr = to_rgb_uint8(frame)
        if self.size is not None:
            fitted = fit_size((arr.shape[1], arr.shape[0]), self.size)
            if fitted != (arr.shape[1], arr.shape[0]):
                arr = np.asarray(Image.fromarray(arr).resize(fitted, Image.BILINEAR))
        h, w = arr.shape[0] // 2 * 2, arr.shape[1] // 2 * 2  # yuv420p needs even sizes
        return arr[:h, :w]

    def _work(self) -> None:
        resolver = FrameResolver()
        try:
            self._write_files(resolver)
        finally:
            resolver.close()  # on this thread: its GL context was made current here

    def _write_files(self, resolve: FrameResolver) -> None:
        writer: Any = None
        path: Optional[str] = None
        fps = self.fps
        count = 0
        while True:
            kind, arg = self._q.get()
            if kind == _OPEN:
                path, fps = arg
                count = 0
            elif kind == _FRAME:
                if path is None:
                    continue
                frame = resolve(arg)
                if frame is None:
                    continue
                try:
                    if writer is None:
                        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                        writer = imageio.get_writer(
                            path,
                            format="FFMPEG",
                            fps=fps,
                            codec="libx264",
                            pixelformat="yuv420p",
                            macro_block_size=2,
                            ffmpeg_log_level="error",
                        )
                    writer.append_data(self._prepare(frame))
                    count += 1
                except (OSError, ValueError, RuntimeError) as e:
                    log.error("Recorder: cannot write %s: %s; skipping this recording", path, e)
                    path = None
            else:  # _CLOSE
                if writer is not None:
                    try:
                        writer.close()
                    except (OSError, RuntimeError) as e:
                        log.error("Recorder: ffmpeg failed to finalize %s: %s", path, e)
                    writer = None
                    if arg is not None and path is not None:
                        keep, reason = arg
                        if keep:
                            self.saved.append((path, count))
                            log.info("Recorded %s (%d frames at %.3g fps; %s)", path, count, fps, reason)
                        else:
                            try:
                                os.remove(path)
                                log.info("Recorder: discarded %s (%s)", path, reason)
                            except OSError as e:
                                log.warning("Recorder: cannot remove %s (%s): %s", path, reason, e)
                path = None
                if arg is None:
                    return

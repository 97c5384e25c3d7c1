"""Stream viewers handed over to the frame process, with the REAL BlindGrasping task and real HTTP clients.

Why this test exists: 16 viewers cost the simulation ~17 % more than one when each had a thread in the
player's process writing every frame (their system calls kept taking the player's GIL). Now a viewer's
socket is passed to the frame process, which writes every frame to every viewer
(:mod:`rlg_hotreload.stream.fanout`, :mod:`rlg_hotreload.stream.handover`). What that could break,
checked here: viewers must get the same whole frames as before, counted on the status page; one that
leaves must free its slot; switching ``stream.render`` while viewers watch must take them back and
then hand them over again without a torn frame; stopping the player must end every stream.
"""

import io
import threading
import time

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")
pytest.importorskip("flask")

from helpers.scripted_grasp import play_watched, streamed_monitor  # noqa: E402
from PIL import Image  # noqa: E402

import isaacgym_tasks  # noqa: E402, F401  (registers BlindGrasping)
from rlg_hotreload import PlayerCallback  # noqa: E402
from rlg_hotreload.readyfile import wait_ready_file  # noqa: E402
from rlg_hotreload.stream.client import MjpegClient  # noqa: E402

W, H = 320, 240
VIEWERS = 4


class Stopper(PlayerCallback):
    def __init__(self, max_s: float = 240.0) -> None:
        self.deadline = time.monotonic() + max_s
        self.done = threading.Event()

    def on_step(self, player, step):
        if self.done.is_set() or time.monotonic() > self.deadline:
            player.request_stop()


class Viewer:
    """One real MJPEG client reading on its own thread; ``parts`` grows as frames come."""

    def __init__(self, url: str) -> None:
        self.client = MjpegClient(url, timeout=60)
        self.parts = []
        self.ended = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for part in self.client.parts():
                self.parts.append(part)
        except OSError:
            pass  # closed by the test (close()) or at shutdown: the stream is over either way
        finally:
            self.ended.set()

    def close(self) -> None:
        self.client.close()


def _until(cond, timeout: float, what: str) -> None:
    """Bounded wait for a counter kept by another thread (no event exists for these counters)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out waiting for " + what
        time.sleep(0.02)


def _pixels(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


@pytest.mark.integration  # starts the frame process
def test_viewers_are_served_by_the_frame_process_taken_back_on_a_switch_and_ended_at_stop(tmp_path):
    stopper = Stopper()
    player, streamer, ckpt, ready = streamed_monitor(tmp_path, [stopper], W, H)
    hub = streamer.hub
    seen = {}
    viewers = []

    def watch():
        try:
            info = wait_ready_file(str(ready), 90, alive=lambda: not stopper.done.is_set())
            assert info is not None
            viewers.extend(Viewer(info["url"] + "stream") for _ in range(VIEWERS))
            # 1. every viewer is handed over once the frame process runs; it writes their frames
            _until(lambda: hub.stats()["handed_over"] >= VIEWERS, 60, "the viewers to be handed over")
            sent0, counts0 = hub.stats()["frames_sent"], [len(v.parts) for v in viewers]
            _until(lambda: all(len(v.parts) >= c + 15 for v, c in zip(viewers, counts0)), 60, "15 frames each")
            seen["served"] = (hub.stats(), sent0, [list(v.parts) for v in viewers], counts0)
            # 2. one viewer leaves: its slot is freed
            viewers[0].close()
            seen["left"] = hub.wait_clients(VIEWERS - 1, 10)
            # 3. the render strategy switches: the others are taken back and go on, frames drawn here
            hub.set_render("thread")
            counts1 = [len(v.parts) for v in viewers[1:]]
            _until(lambda: all(len(v.parts) >= c + 10 for v, c in zip(viewers[1:], counts1)), 60,
                   "10 frames each after the switch")  # fmt: skip
            seen["thread"] = (hub.stats(), counts1)
            # 4. and back: handed over again
            hub.set_render("process")
            _until(lambda: hub.stats()["handed_over"] >= 2 * VIEWERS - 1, 60, "a second hand-over")
            counts2 = [len(v.parts) for v in viewers[1:]]
            _until(lambda: all(len(v.parts) >= c + 10 for v, c in zip(viewers[1:], counts2)), 60,
                   "10 frames each after the second hand-over")  # fmt: skip
        finally:
            stopper.done.set()

    play_watched(player, ckpt, watch, stopper.done, join_s=120)
    assert "served" in seen and "thread" in seen, "the viewer thread failed (see its traceback above)"

    stats, sent0, parts, counts0 = seen["served"]
    assert stats["render"]["name"] == "process" and stats["render"]["fallback"] is None, stats["render"]
    assert stats["handed_over"] == VIEWERS and stats["clients"] == VIEWERS
    # the frames the frame process wrote are counted (the status page's fps comes from them)
    assert stats["frames_sent"] - sent0 >= VIEWERS * 15
    # the viewers got the same, once-encoded frames, in order, whole
    by_seq = {}
    for vparts, c in zip(parts, counts0):
        seqs = [p.seq for p in vparts[c:]]
        assert seqs == sorted(set(seqs)), "frames out of order or repeated: %s" % seqs
        for p in vparts[c:]:
            by_seq.setdefault(p.seq, set()).add(p.jpeg)
    assert sum(len(s) == 1 for s in by_seq.values()) >= 10 and all(len(s) == 1 for s in by_seq.values())
    assert _pixels(parts[1][-1].jpeg).shape == (H, W, 3)

    assert seen["left"], "the viewer that left still holds a slot"
    stats, counts1 = seen["thread"]
    assert stats["render"]["name"] == "thread"
    for v, c in zip(viewers[1:], counts1):
        for p in v.parts[c - 1 :]:  # from the last frame before the switch on: every one whole
            assert _pixels(p.jpeg).shape == (H, W, 3)
    assert stats["frames_rendered_by_encoder"] > 0

    # the player stopped: every stream ended, every slot is free
    for v in viewers[1:]:
        assert v.ended.wait(15), "a stream did not end when the player stopped"
    assert hub.clients == 0
    for v in viewers:
        v.close()

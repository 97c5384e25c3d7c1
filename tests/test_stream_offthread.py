"""Frames of the REAL BlindGrasping task (sim=mujoco) rendered off the player thread.

Why this test exists: watching used to cost the simulation its render time, on the player thread, 30
times a second. Now the player thread copies env 0's state (``render_state()``) and a watcher's thread
renders it. These tests check what that could break: the picture must be of the state copied (not of
the live, later state; not a stale one), frames must reach a real HTTP client, nothing may render while
nobody watches, and stopping must join the thread that holds the GL context and release that context.
"""

import io
import threading
import time

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")
pytest.importorskip("flask")

from helpers.scripted_grasp import grasping_mjwarp_env, play_watched, streamed_monitor  # noqa: E402
from PIL import Image  # noqa: E402

import isaacgym_tasks  # noqa: E402
from rlg_hotreload import PlayerCallback  # noqa: E402
from rlg_hotreload.frame_grab import FrameResolver, PendingFrame  # noqa: E402
from rlg_hotreload.readyfile import wait_ready_file  # noqa: E402
from rlg_hotreload.stream import FrameStreamer  # noqa: E402
from rlg_hotreload.stream.client import MjpegClient  # noqa: E402

W, H = 320, 240


def _diff(a, b) -> float:
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


@pytest.mark.integration
def test_a_snapshot_rendered_on_another_thread_is_the_picture_of_that_state_not_of_the_live_one():
    # the asset's shadow map and MSAA for the frames too: this test compares pictures of one state pixel by pixel
    env = isaacgym_tasks.make_env(1, sim="mujoco", render_width=W, render_height=H, render_shadow_size=2048,
                                 render_samples=4)
    try:
        zeros, ones = np.zeros((1, 9), np.float32), np.ones((1, 9), np.float32)
        for _ in range(5):
            env.step(zeros)
        state = env.render_state()
        mujoco.mj_forward(env.models[0], env.datas[0])  # the reference: a sync render of the same state
        reference = env.render().copy()
        for _ in range(20):  # the live state moves on after the copy
            env.step(ones)
        moved = env.render().copy()
        env.reset()  # new box size and pose
        after_reset = env.render_state()

        out, made = {}, []
        make = env.make_frame_renderer
        env.make_frame_renderer = lambda: made.append(make()) or made[-1]

        def watcher():
            resolve = FrameResolver()
            try:
                out["old"] = resolve(PendingFrame(state, env, time.time()))
                out["reset"] = resolve(PendingFrame(after_reset, env, time.time()))
                out["had_context"] = [r.has_context for r in made]
            finally:
                resolve.close()

        t = threading.Thread(target=watcher, name="watcher")
        t.start()
        t.join(120)
        assert not t.is_alive()
        old, reset = out["old"], out["reset"]
        assert old.shape == (H, W, 3) and old.dtype == np.uint8
        assert np.abs(old.astype(np.int16) - reference).max() <= 2, "off-thread frame != sync render of the state"
        assert _diff(old, moved) > 0.5, "the scene did not move; the test would prove nothing"
        assert _diff(reset, old) > 0.5, "the frame after a reset shows the state before it"
        assert out["had_context"] == [True], "one renderer for both frames, made on the watcher's thread"
        assert not made[0].has_context, "the GL context was not released on its thread"
    finally:
        env.close()


class WatchScript(PlayerCallback):
    """Steps unwatched first (records what that rendered), then lets a client watch; keeps each copied
    state by its time so the test can check every received frame against the state it claims to show."""

    UNWATCHED_STEPS = 60

    def __init__(self, max_s: float = 120.0) -> None:
        self.deadline = time.monotonic() + max_s
        self.unwatched = None
        self.may_watch = threading.Event()
        self.watched_enough = threading.Event()
        self.states = {}  # t_state -> state, for frames the streamer took
        self.streamer = None
        self._submitted = 0
        self.player_thread = None

    def on_start(self, player):
        self.streamer = next(cb for cb in player.callbacks.callbacks if isinstance(cb, FrameStreamer))
        self.player_thread = threading.current_thread().name

    def on_step(self, player, step):
        hub = self.streamer.hub
        if step == self.UNWATCHED_STEPS:
            self.unwatched = (player.frames_rendered_here, player.frames_deferred, hub.submitted, hub.rendered)
            self.may_watch.set()
        if hub.submitted != self._submitted:  # the streamer took this step's frame: the same PendingFrame
            self._submitted = hub.submitted
            pending = player.grab_frame_deferred()
            if isinstance(pending, PendingFrame):
                self.states[round(pending.t_state, 6)] = pending.state
        if self.watched_enough.is_set() or time.monotonic() > self.deadline:
            player.request_stop()


@pytest.mark.integration
def test_real_player_streams_frames_rendered_off_its_thread_only_while_watched_and_joins_on_stop(tmp_path):
    script = WatchScript()
    player, _, ckpt, ready = streamed_monitor(tmp_path, [script], W, H, render=None, stream={"quality": 95},
                                              env_config={"episode_length_s": 1.0})  # fmt: skip
    env = player.env
    made = []  # (thread name, renderer) for every renderer of off-thread frames
    make = env.make_frame_renderer

    def recording_make():
        r = make()
        made.append((threading.current_thread().name, r))
        return r

    env.make_frame_renderer = recording_make
    parts = []

    def watch():
        info = wait_ready_file(str(ready), 60, alive=lambda: not script.watched_enough.is_set())
        if info is None or not script.may_watch.wait(90):
            return
        client = MjpegClient(info["url"] + "stream", timeout=30)
        try:
            for part in client.parts():
                parts.append(part)
                if len(parts) >= 12:
                    break
        finally:
            client.close()
            script.watched_enough.set()

    play_watched(player, ckpt, watch, script.watched_enough)

    # nobody watching: nothing snapshotted, submitted or rendered anywhere
    assert script.unwatched == (0, 0, 0, 0), script.unwatched
    # watched: frames arrived, none rendered on the player thread, every one rendered elsewhere
    assert len(parts) >= 12, "the client got %d frames" % len(parts)
    hub = next(cb for cb in player.callbacks.callbacks if isinstance(cb, FrameStreamer)).hub
    assert player.frames_rendered_here == 0 and player.frames_deferred >= 12
    assert made and all(name == "rlg-jpeg" for name, _ in made) and script.player_thread != "rlg-jpeg", made
    # one render per published frame; stale states were replaced, never queued (one waits at most)
    assert hub.rendered == hub.encoded and hub.submitted - hub.dropped - hub.rendered <= 1
    # stop joined the render thread and released its GL context
    assert not [t for t in threading.enumerate() if t.name == "rlg-jpeg"]
    assert not any(r.has_context for _, r in made)

    # each frame shows the state the player copied at its X-Render-Time, not a neighbouring one
    reference = env.make_frame_renderer()  # this (main) thread's own renderer and context
    try:
        checked = 0
        for a, b in zip(parts[1:], parts[2:]):  # the first part may be an older frame
            sa, sb = script.states.get(round(a.t_render, 6)), script.states.get(round(b.t_render, 6))
            if sa is None or sb is None:
                continue
            got = np.asarray(Image.open(io.BytesIO(a.jpeg)).convert("RGB"))
            own, other = reference.render(sa), reference.render(sb)
            if _diff(own, other) < 1.0:
                continue  # two states that look alike tell nothing
            assert _diff(got, own) < 0.5 * _diff(got, other), "frame %d shows another state" % a.seq
            checked += 1
        assert checked >= 3, "only %d frames could be checked against their state" % checked
    finally:
        reference.close()


@pytest.mark.slow  # warp compiles its CPU kernels once per machine (~1 min), then loads them from its cache
def test_mjwarp_world_0_copied_from_the_device_renders_elsewhere_as_the_sync_render_does():
    pytest.importorskip("mujoco_warp")
    from isaacgym_tasks.scripted import grasp_action

    env = grasping_mjwarp_env(W, H, render_shadow_size=2048, render_samples=4)  # pixel by pixel, as above
    try:
        state = env.render_state()
        reference = env.render().copy()  # world 0 copied to the host MjData, drawn on this thread
        for k in range(15, 30):
            env.step(grasp_action(k, 2))
        out = {}

        def watcher():
            resolve = FrameResolver()
            try:
                out["frame"] = resolve(PendingFrame(state, env, time.time()))
            finally:
                resolve.close()

        t = threading.Thread(target=watcher, name="watcher")
        t.start()
        t.join(120)
        frame = out["frame"]
        assert frame is not None and frame.shape == (H, W, 3)
        assert np.abs(frame.astype(np.int16) - reference).max() <= 2
        assert _diff(env.render(), reference) > 0.5, "the hand did not move; the test would prove nothing"
    finally:
        env.close()

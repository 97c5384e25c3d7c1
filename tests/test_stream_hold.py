"""A state copied after a step is drawn once the player has chosen the next actions (``FrameHub`` hold).

Why: with the policy on the GPU that also draws the frames, a render started right after a step runs next
to the policy's next forward pass; held until ``on_action``, it runs next to the env's physics instead.
What could break: a held state drawn at once (the hold does nothing), never drawn (a player paused between
steps, or one that never calls ``on_action``: the stream freezes), or pixels held (nothing to wait for).
Real BlindGrasping states, drawn on the hub's thread (``stream.render=thread``), read back as JPEG.
"""

import time

import numpy as np
import pytest

mujoco = pytest.importorskip("mujoco")

import isaacgym_tasks  # noqa: E402
from rlg_hotreload.stream import hub as hub_module  # noqa: E402
from rlg_hotreload.stream.hub import FrameHub  # noqa: E402

W, H = 160, 120


@pytest.fixture
def env():
    e = isaacgym_tasks.make_env(1, sim="mujoco", render_width=W, render_height=H)
    e.step(np.zeros((1, 9), np.float32))
    yield e
    e.close()


@pytest.fixture
def hub(env):
    """A started hub that has drawn one frame already: its GL context exists, so a draw takes milliseconds
    and a late frame means a held one."""
    h = FrameHub(render="thread")
    h.start()
    h.submit(_pending(env))
    assert h.wait_next(0, timeout=60) is not None
    yield h
    h.close()


@pytest.mark.integration
def test_a_held_state_is_drawn_after_release_and_not_before(env, hub, monkeypatch):
    monkeypatch.setattr(hub_module, "HOLD_MAX_S", 60.0)  # no time-out here: only release() lets it go
    hub.submit(_pending(env), held=True)
    assert hub.wait_next(1, timeout=1.0) is None, "a held state was drawn before release()"
    assert hub.encoded == 1 and hub.held == 0
    t_release = time.time()
    hub.release()
    frame = hub.wait_next(1, timeout=30)
    assert frame is not None and (frame.width, frame.height) == (W, H)
    assert hub.held == 1 and hub.rendered == 2
    hub.release()  # nothing held any more: counts nothing, wakes nobody
    assert hub.held == 1
    assert frame.t_render <= t_release  # the picture is of the state copied before the release


@pytest.mark.integration
def test_a_held_state_nobody_releases_is_drawn_after_hold_max_s(env, hub):
    t0 = time.monotonic()
    hub.submit(_pending(env), held=True)
    frame = hub.wait_next(1, timeout=30)
    waited = time.monotonic() - t0
    assert frame is not None and hub.held == 0
    assert waited >= hub_module.HOLD_MAX_S * 0.9, "drawn after %.3f s: not held" % waited


@pytest.mark.integration
def test_states_not_held_and_pixels_are_drawn_at_once(env, hub, monkeypatch):
    monkeypatch.setattr(hub_module, "HOLD_MAX_S", 60.0)
    hub.submit(_pending(env))
    assert hub.wait_next(1, timeout=30) is not None
    pixels = np.zeros((H, W, 3), np.uint8)
    hub.submit(pixels, held=True)  # pixels: already drawn, nothing to hold
    frame = hub.wait_next(2, timeout=30)
    assert frame is not None and hub.held == 0


def _pending(env):
    from rlg_hotreload.frame_grab import PendingFrame

    return PendingFrame(env.render_state(), env, time.time())

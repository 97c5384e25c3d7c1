"""The live page in real headless Chromium: moving video, filled status fields, drawn reward plot.

Set RLG_SCREENSHOT=docs/stream_screenshot.png to refresh the README screenshot from this test.
"""

import os
import shutil
import threading
import time
from typing import Any, Callable

import pytest
from helpers.gym_driver import GymDriver, run_in_thread

from rlg_hotreload.stream import FrameStreamer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)), reason="chromium not installed"
    ),
]

# Draw the <img> (current MJPEG frame) into a canvas and return a cheap checksum of its pixels.
SNAPSHOT_JS = """
const img = document.getElementById('video');
if (!img.naturalWidth) return null;
const c = document.createElement('canvas');
c.width = img.naturalWidth; c.height = img.naturalHeight;
const ctx = c.getContext('2d');
ctx.drawImage(img, 0, 0);
const d = ctx.getImageData(0, 0, c.width, c.height).data;
let h = 0;
for (let i = 0; i < d.length; i += 7) { h = (h * 31 + d[i]) | 0; }
return [c.width, c.height, h];
"""


def wait_for(fn: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)  # polling a browser: there is no event to wait on from here
    raise AssertionError("timed out waiting for " + what)


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-dev-shm-usage",
        "--window-size=1200,760",
        "--user-data-dir=%s" % (tmp_path / "chrome"),
    ):
        opts.add_argument(arg)
    drv = webdriver.Chrome(options=opts, service=Service(CHROMEDRIVER))
    drv.set_page_load_timeout(30)
    drv.set_script_timeout(10)
    yield drv
    drv.quit()


def test_page_shows_moving_video_status_and_plot(browser):
    s = FrameStreamer(port=0, token="tok3n", title="Pendulum-v1 live")
    s.start()
    d = GymDriver([s])
    d.start(epoch=10)
    # Reloads land on episode boundaries (every 2nd episode); the sleep keeps it to ~2 reloads/s.
    t = run_in_thread(d, max_s=60.0, reload_every=400, step_sleep=0.001)
    try:
        browser.get(s.url + "?token=tok3n")
        text = lambda i: browser.find_element("id", i).text  # noqa: E731

        first = wait_for(lambda: browser.execute_script(SNAPSHOT_JS), what="first frame")
        assert first[:2] == [500, 500]
        wait_for(lambda: browser.execute_script(SNAPSHOT_JS)[2] != first[2], what="a different frame")
        assert s.hub.clients >= 1

        wait_for(lambda: text("reloads") not in ("", "–", "0"), what="a reload in the status")
        assert text("ck-label").startswith("pendulum@ep")
        assert int(text("ck-epoch")) >= 20
        assert text("ck-age").endswith(" s")
        assert text("conn") == "live"
        wait_for(lambda: float(text("fps")) > 0, what="a delivered fps (needs two polls while watched)")
        assert browser.find_elements("css selector", "#events li"), "reload events listed"

        plot = browser.find_element("id", "plot")
        wait_for(lambda: int(plot.get_attribute("data-points") or 0) >= 2, timeout=30, what="2 plot points")
        assert browser.find_elements("css selector", "#plot polyline")
        assert len(browser.find_elements("css selector", "#plot circle")) >= 2
        assert browser.find_elements("css selector", "#plot line.reload")
        # Pendulum reports no success: no second series, no legend, no "success here" row (not zeros)
        assert plot.get_attribute("data-success-points") == "0"
        assert not browser.find_elements("css selector", "#plot .success")
        assert not browser.find_element("id", "legend-success").is_displayed()
        assert not browser.find_element("id", "ck-success").is_displayed()

        shot = os.environ.get("RLG_SCREENSHOT")
        if shot:  # a fuller plot for the README
            wait_for(lambda: int(plot.get_attribute("data-points") or 0) >= 8, timeout=30, what="8 points")
            time.sleep(1.2)  # let the next status poll fill the side panel for the picture
        png = browser.get_screenshot_as_png()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        if shot:
            with open(shot, "wb") as f:
                f.write(png)
    finally:
        d.stop_event.set()
        t.join(10)
        s.stop()
        d.env.close()


def test_page_plots_success_as_a_second_series_for_blind_grasping(browser, tmp_path):
    """A REAL BlindGrasping player (scripted grasp, see helpers.scripted_grasp) streamed to the page."""
    pytest.importorskip("mujoco")
    from helpers.procs import free_port
    from helpers.scripted_grasp import ScriptedGrasp, save_checkpoint

    from rlg_hotreload import build
    from rlg_hotreload.readyfile import wait_ready_file

    nn = tmp_path / "exp" / "nn"
    nn.mkdir(parents=True)
    ready = tmp_path / "stream.json"
    cfg = build.load_config(
        {"task": "BlindGrasping", "sim": "mujoco", "numEnvs": 1, "checkpoint": str(nn.parent),
         "trainDir": str(tmp_path), "printStats": False, "reloadInterval": 0.1,
         "stream": {"enabled": True, "port": free_port(), "readyFile": str(ready), "width": 160, "height": 120,
                    "fps": 10}},
        preset="test",
    )  # fmt: skip

    def episodes_of_4_s(params):
        params["config"]["env_config"]["episode_length_s"] = 4.0

    player = build.make_player(cfg, edit=episodes_of_4_s)
    script = ScriptedGrasp(player, nn / "b.pth", max_s=150.0)
    player.callbacks.append(script)
    save_checkpoint(player, str(nn / "a.pth"))
    t = threading.Thread(target=lambda: (player.restore(str(nn.parent)), player.run()), daemon=True)
    t.start()
    try:
        info = wait_ready_file(str(ready), 60, alive=t.is_alive)
        assert info is not None
        browser.get(info["url"])
        # the page's stream is handed over to the frame process, which writes its frames: the video moves
        hub = next(cb for cb in player.callbacks.callbacks if isinstance(cb, FrameStreamer)).hub
        wait_for(lambda: hub.stats()["handed_over"] >= 1, timeout=60, what="the page's stream to be handed over")
        first_frame = wait_for(lambda: browser.execute_script(SNAPSHOT_JS), what="a frame in the page")
        assert first_frame[:2] == [160, 120], first_frame
        wait_for(lambda: (browser.execute_script(SNAPSHOT_JS) or first_frame)[2] != first_frame[2],
                 what="the video to move")  # fmt: skip
        plot = browser.find_element("id", "plot")
        # checkpoint 0 (holds still): 0 %; checkpoint 1 (the grasp): its rate, on the right axis
        wait_for(lambda: int(plot.get_attribute("data-success-points") or 0) >= 2, timeout=120,
                 what="success points for 2 checkpoints")  # fmt: skip
        assert browser.find_elements("css selector", "#plot polyline.success")
        assert len(browser.find_elements("css selector", "#plot rect.success")) >= 2
        assert browser.find_element("id", "legend-success").is_displayed()
        wait_for(lambda: browser.find_element("id", "ck-success").text.endswith(" %"), what="success here")
        first = browser.find_element("css selector", "#plot rect.success title").get_attribute("textContent")
        assert first.startswith("a@ep1: 0 % success over "), first
        script.status_seen.set()  # the page has shown it: the player may stop
    finally:
        script.status_seen.set()
        player.request_stop()
        t.join(30)
    assert not t.is_alive()


def test_page_controls_pause_resume_and_back(browser, tmp_path):
    """A REAL Pendulum player: the page's buttons POST (cookie token, same origin) and reflect /status."""
    from helpers.controlled import ControlledRun

    r = ControlledRun(tmp_path, token="tok3n").start()
    try:
        browser.get(r.streamer.url + "?token=tok3n")
        el = lambda i: browser.find_element("id", i)  # noqa: E731
        wait_for(lambda: el("controls").is_displayed(), what="the controls")
        wait_for(lambda: el("ctl-state").text == "playing · following", what="the control state")

        el("btn-pause").click()
        wait_for(lambda: el("controls").get_attribute("data-paused") == "true", what="paused on the page")
        assert r.player.control.paused
        assert el("btn-pause").text == "Resume" and el("ctl-state").text.startswith("paused")
        assert "Control: paused by 127.0.0.1" in el("ctl-msg").text
        steps = r.player.summary.steps
        polls = int(browser.find_element("tag name", "body").get_attribute("data-polls"))
        wait_for(lambda: int(browser.find_element("tag name", "body").get_attribute("data-polls")) >= polls + 2,
                 what="two more status polls while paused")  # fmt: skip
        assert r.player.summary.steps == steps, "paused from the page, yet the player stepped"

        el("btn-pause").click()
        wait_for(lambda: el("controls").get_attribute("data-paused") == "false", what="resumed on the page")
        wait_for(lambda: r.player.summary.steps > steps, what="steps after resume")

        r.save("b.pth", 2)
        wait_for(lambda: el("ck-label").text == "b@ep2", timeout=30, what="b.pth playing")
        wait_for(lambda: el("btn-back").is_enabled(), what="a checkpoint to go back to")
        el("btn-back").click()
        wait_for(lambda: el("ck-label").text == "a@ep1", what="back to a@ep1 on the page")
        assert r.player.current.index == 0 and r.weights_are(1)
        assert el("controls").get_attribute("data-pinned") == "true" and el("btn-pin").text == "Follow"
        el("btn-pin").click()
        wait_for(lambda: el("ck-label").text == "b@ep2", what="following again: the newest plays")
    finally:
        r.stop()

"""FrameStreamer against a real loopback HTTP server, real sockets and a real gymnasium env."""

import http.client
import io
import itertools
import json
import socket
import struct
import threading
import time
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pytest
from helpers.gym_driver import GymDriver, run_in_thread
from PIL import Image

from rlg_hotreload.stream import FrameStreamer, StreamerError
from rlg_hotreload.stream.client import MjpegClient


def _get(port: int, path: str, headers: Dict[str, str] = None) -> Tuple[int, Dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def _strict_json(body: bytes) -> dict:
    def no_nan(c: str) -> None:
        raise AssertionError("status JSON contains %s (invalid for browsers)" % c)

    return json.loads(body, parse_constant=no_nan)


@pytest.fixture
def live() -> Iterator[Tuple[FrameStreamer, GymDriver]]:
    """A started streamer on an ephemeral loopback port, fed by a driver stepping in a thread."""
    s = FrameStreamer(port=0, fps=30.0)
    s.start()
    d = GymDriver([s])
    d.start()
    t = run_in_thread(d, max_s=60.0, reload_every=450)
    d.thread = t
    yield s, d
    d.stop_event.set()
    t.join(10)
    assert not t.is_alive()
    s.stop()
    d.env.close()


def test_concurrent_clients_get_distinct_decodable_frames(live):
    s, d = live
    n_clients, n_frames = 4, 8
    results: List[List] = [[] for _ in range(n_clients)]
    errors: List[BaseException] = []

    def reader(i: int) -> None:
        try:
            c = MjpegClient(s.url + "stream")
            for part in c.parts():
                results[i].append(part)
                if len(results[i]) == n_frames:
                    break
            c.close()
        except BaseException as e:  # reported to the main thread below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    for parts in results:
        assert len(parts) == n_frames
        seqs = [p.seq for p in parts]
        assert seqs == sorted(set(seqs)), "each client sees each frame at most once, in order"
        imgs = [Image.open(io.BytesIO(p.jpeg)) for p in parts]
        for im in imgs:
            im.load()  # full decode, raises on a truncated JPEG
            assert im.format == "JPEG" and im.size == (500, 500)
        assert len({im.tobytes() for im in imgs}) > 1, "the pendulum moves: frames must differ"
    # Encode once: JPEG encodes never exceed renders, whatever the client count.
    d.stop_event.set()  # counters read while the driver steps race (it renders, then submits)
    d.thread.join(10)
    assert 0 < s.hub.encoded <= s.hub.submitted == d.renders
    assert s.hub.sent >= n_clients * n_frames


def test_renders_only_while_watched(live):
    s, d = live
    steps0 = d.steps
    deadline = time.monotonic() + 10
    while d.steps < steps0 + 300 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert d.steps >= steps0 + 300
    assert d.renders == 0 and s.hub.submitted == 0, "nobody watches: nothing rendered"
    c = MjpegClient(s.url + "stream")
    first = next(c.parts())
    assert first.seq >= 1 and d.renders >= 1
    c.close()
    assert s.hub.wait_clients(0, timeout=10), "a closed client must stop counting"
    r = d.renders
    steps1 = d.steps
    while d.steps < steps1 + 300 and time.monotonic() < deadline + 10:
        time.sleep(0.01)
    assert d.renders <= r + 1, "rendering stops once the last viewer leaves"


def test_abrupt_disconnects_leave_server_and_player_healthy(live):
    s, d = live
    for _ in range(6):
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=5)
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % s.port)
        assert b"multipart/x-mixed-replace" in sock.recv(4096)
        # RST instead of FIN: the rudest possible goodbye.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    assert s.hub.wait_clients(0, timeout=10)
    status, _, body = _get(s.port, "/healthz")
    assert status == 200 and _strict_json(body)["ok"] is True
    steps = d.steps
    c = MjpegClient(s.url + "stream")
    parts = [p for _, p in zip(range(3), c.parts())]
    c.close()
    assert len(parts) == 3 and parts[0].seq < parts[1].seq < parts[2].seq
    assert d.steps > steps, "the player kept stepping"


@pytest.mark.integration
def test_disconnect_noticed_while_player_is_paused():
    """No new frames (player waiting for a checkpoint): keep-alive resends still reveal a dead viewer."""
    s = FrameStreamer(port=0)
    s.keepalive_s = 0.3
    s.start()
    d = GymDriver([s])
    d.start()
    try:
        c = MjpegClient(s.url + "stream")
        assert s.hub.wait_clients(1, timeout=10)
        d.step()  # one rendered frame, then the player pauses
        first = next(c.parts())
        again = next(c.parts())  # the keep-alive resend of the same frame
        assert again.seq == first.seq
        c.close()
        assert s.hub.wait_clients(0, timeout=10), "dead viewer still counted (it would keep rendering on)"
    finally:
        s.stop()
        d.env.close()


@pytest.mark.integration
def test_status_reports_checkpoint_episodes_and_stream_counters(live):
    s, d = live
    c = MjpegClient(s.url + "stream")
    it = c.parts()
    deadline = time.monotonic() + 20
    st: dict = {}
    while time.monotonic() < deadline:
        next(it)
        st = _strict_json(_get(s.port, "/status")[2])
        cps = st["checkpoints"]
        # >= 1 s of frames before judging the rate: a few frames estimate it poorly on a loaded box
        if len(cps) >= 2 and cps[0]["episodes"] >= 2 and st["stream"]["frames_submitted"] >= 30:
            break
    c.close()
    cp = st["checkpoint"]
    assert cp["path"].endswith("pendulum.pth") and cp["epoch"] >= 10 and cp["frame"] == cp["epoch"] * 1000
    assert 2.0 <= st["file_age_s"] < 60
    assert st["reloads"] >= 1 and st["reloads"] == len(st["checkpoints"]) - 1
    first = st["checkpoints"][0]
    assert first["episodes"] >= 2 and first["mean_reward"] < 0  # Pendulum rewards are negative
    # Pendulum gives no success signal: null (the page then draws no success series), never 0
    assert first["success_rate"] is None and first["success_episodes"] == 0 and st["success_rate"] is None
    assert st["clients"] == 1 and 0 < st["source_fps"] <= 40  # capped at 30 fps
    assert st["source"] == "runs/test_driver"
    assert st["stream"]["frames_encoded"] <= st["stream"]["frames_submitted"]


def test_page_and_static_files_are_served(live):
    s, _ = live
    status, headers, body = _get(s.port, "/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert (
        b'src="static/app.js"' in body and b"rlg-hotreload" in body and b"http" not in body.split(b"<body")[1]
    )
    for name, ctype in (("app.js", "javascript"), ("style.css", "text/css")):
        status, headers, body = _get(s.port, "/static/" + name)
        assert status == 200 and ctype in headers["content-type"] and len(body) > 100
    assert _get(s.port, "/static/../streamer.py")[0] == 404


@pytest.mark.integration
def test_slow_client_skips_frames_and_slows_nobody():
    """A viewer that stops reading fills the socket buffers; then it must skip, not stall others."""
    s = FrameStreamer(port=0, quality=90)
    s.start()
    d = GymDriver([s])
    # Noise frames through the camera hook: ~300 kB JPEGs fill loopback socket buffers in ~20 frames.
    rng = np.random.default_rng(0)
    noise = itertools.cycle([rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(4)])
    d.frame_source = lambda: next(noise)
    d.start()
    t = run_in_thread(d, max_s=60.0)
    try:
        slow = MjpegClient(s.url + "stream")
        slow_parts = slow.parts()
        next(slow_parts)  # ... and then it stops reading while the fast viewer watches 60 frames
        fast = MjpegClient(s.url + "stream")
        steps0 = d.steps
        seqs = [p.seq for _, p in zip(range(60), fast.parts())]
        # the fast viewer keeps getting frames (it may skip a few itself when the CPU is starved by
        # these ~300 kB noise encodes, as on a loaded 2-core CI box; a stall would deliver none)
        assert len(seqs) == 60 and seqs[-1] - seqs[0] + 1 <= 90, "the fast viewer got most frames: %s" % seqs
        assert d.steps - steps0 > 500, "the player kept stepping"
        got = [p.seq for _, p in zip(range(60), slow_parts)]
        gaps = [b - a for a, b in zip(got, got[1:])]
        assert all(g >= 1 for g in gaps) and max(gaps) > 1, "the slow viewer skipped frames: %s" % got
        slow.close()
        fast.close()
    finally:
        d.stop_event.set()
        t.join(10)
        s.stop()
        d.env.close()


@pytest.mark.integration
def test_realtime_paces_the_player_watched_or_not_and_renders_only_while_watched():
    """A monitor next to training takes one real-time env's worth of CPU, never all it can get."""
    s = FrameStreamer(port=0, realtime=True, fps=20.0)
    s.start()
    d = GymDriver([s])
    d.control_dt = 0.01  # 100 steps per simulated second
    d.start()
    t = run_in_thread(d, max_s=30.0)
    try:
        c = MjpegClient(s.url + "stream")
        parts = c.parts()
        next(parts)
        t0, steps0 = time.monotonic(), d.steps
        for _ in range(30):
            next(parts)
        rate = (d.steps - steps0) / (time.monotonic() - t0)
        st = _strict_json(_get(s.port, "/status")[2])
        c.close()
        assert 50 < rate < 150, "paced to ~100 steps/s of wall clock while watched, got %.0f" % rate
        # the page's fps is what the viewer received (cap 20), not the cap and not the steps/s
        assert st["clients"] == 1 and 10 <= st["delivered_fps"] <= 24, st["stream"]
        assert s.hub.wait_clients(0, timeout=10)
        renders, t1, steps1 = d.renders, time.monotonic(), d.steps
        time.sleep(1.5)  # measuring a rate over wall-clock time: nothing to wait on
        rate = (d.steps - steps1) / (time.monotonic() - t1)
        assert 50 < rate < 150, "paced to ~100 steps/s with nobody watching too, got %.0f" % rate
        assert d.renders == renders, "rendered %d frames nobody watched" % (d.renders - renders)
        assert _strict_json(_get(s.port, "/status")[2])["delivered_fps"] == 0
    finally:
        d.stop_event.set()
        t.join(10)
        s.stop()
        d.env.close()


def test_size_scales_down_keeping_aspect_and_quality_applies():
    s = FrameStreamer(port=0, size=(320, 240), quality=30)
    s.start()
    d = GymDriver([s])
    d.start()
    t = run_in_thread(d, max_s=30.0)
    try:
        c = MjpegClient(s.url + "stream")
        part = next(c.parts())
        c.close()
        im = Image.open(io.BytesIO(part.jpeg))
        assert im.size == (240, 240), "500x500 fits 320x240 as 240x240, not stretched"
        # Quality 30 at 240x240 is far smaller than the default 80 at 500x500 (~20 kB).
        assert len(part.jpeg) < 10000
    finally:
        d.stop_event.set()
        t.join(10)
        s.stop()
        d.env.close()


def test_stop_with_attached_clients_is_bounded():
    s = FrameStreamer(port=0)
    s.start()
    d = GymDriver([s])
    d.start()
    t = run_in_thread(d, max_s=30.0)
    clients = [MjpegClient(s.url + "stream") for _ in range(3)]
    for c in clients:
        next(c.parts())
    t0 = time.monotonic()
    s.stop()
    assert time.monotonic() - t0 < 5
    for c in clients:  # every stream ends (no hang: the socket timeout would raise) once the hub closes
        rest = list(c.parts())
        assert len(rest) < 100
        c.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.port), timeout=2).close()
    d.stop_event.set()
    t.join(10)
    d.env.close()


def test_busy_port_moves_to_next_and_logs(rlg_log):
    caplog = rlg_log
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    busy = blocker.getsockname()[1]
    s = FrameStreamer(port=busy, port_tries=10)
    try:
        url = s.start()
        assert busy < s.port < busy + 10
        assert url == "http://127.0.0.1:%d/" % s.port
        assert "Streaming at http://127.0.0.1:%d/" % s.port in caplog.text
        assert "streamPort %d was busy" % busy in caplog.text
        assert _get(s.port, "/healthz")[0] == 200
    finally:
        s.stop()
        blocker.close()


def test_no_free_port_is_an_error_naming_the_key():
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen(1)
    busy = blocker.getsockname()[1]
    try:
        with pytest.raises(StreamerError, match="streamPort=%d" % busy):
            FrameStreamer(port=busy, port_tries=1).start()
    finally:
        blocker.close()
    with pytest.raises(StreamerError, match="streamHost"):
        FrameStreamer(host="no-such-host.invalid", port=0).start()
    with pytest.raises(StreamerError, match="streamQuality"):
        FrameStreamer(quality=0)


def test_binds_loopback_unless_asked(rlg_log):
    caplog = rlg_log
    s = FrameStreamer(port=0)
    s.start()
    try:
        assert s._server.socket.getsockname()[0] == "127.0.0.1"
        assert "ALL interfaces" not in caplog.text
    finally:
        s.stop()
    s = FrameStreamer(host="0.0.0.0", port=0)
    s.start()
    try:
        assert s._server.socket.getsockname()[0] == "0.0.0.0"
        assert "ALL interfaces" in caplog.text and "streamToken" in caplog.text
        assert _get(s.port, "/healthz")[0] == 200
    finally:
        s.stop()


def test_token_enforced_on_every_route():
    s = FrameStreamer(port=0, token="s3cret")
    s.start()
    try:
        for path in ("/", "/stream", "/status", "/healthz", "/static/app.js"):
            assert _get(s.port, path)[0] == 401, path
            assert _get(s.port, path + "?token=wrong")[0] == 401, path
        status, headers, _ = _get(s.port, "/healthz?token=s3cret")
        assert status == 200 and "rlg_stream_token=s3cret" in headers["set-cookie"]
        assert "httponly" in headers["set-cookie"].lower()
        assert _get(s.port, "/status", {"Cookie": "rlg_stream_token=s3cret"})[0] == 200
        assert _get(s.port, "/status", {"Cookie": "rlg_stream_token=s3cre"})[0] == 401
    finally:
        s.stop()

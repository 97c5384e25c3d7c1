"""The streamer's guards (issue 9): Host check against DNS rebinding, connection and viewer caps (503).

Real server on 127.0.0.1, real sockets; the Host header is what a browser sends for the name it opened.
"""

import http.client
import socket
import time

import pytest
from helpers.gym_driver import GymDriver, run_in_thread

from rlg_hotreload.stream import FrameStreamer
from rlg_hotreload.stream.client import MjpegClient


def _get(port, path, host=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", path, headers={"Host": host} if host is not None else {})
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def _until(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached within %.0f s" % timeout
        time.sleep(0.05)


@pytest.fixture
def streamer():
    made = []

    def make(**kw):
        s = FrameStreamer(port=0, **kw)
        s.start()
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.mark.parametrize("route", ["/", "/status", "/stream", "/healthz"])
def test_foreign_host_header_is_refused(streamer, route):
    s = streamer()
    status, body = _get(s.port, route, host="attacker.example:%d" % s.port)
    assert status == 403 and b"not served" in body
    status, _ = _get(s.port, route, host="")
    assert status == 400


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "[::1]", "LOCALHOST"])
def test_loopback_host_headers_are_served(streamer, name):
    s = streamer()
    assert _get(s.port, "/healthz", host="%s:%d" % (name, s.port))[0] == 200


def test_token_or_bind_all_lifts_the_host_check(streamer):
    s = streamer(token="0777")
    assert _get(s.port, "/healthz?token=0777", host="monitor.lan:%d" % s.port)[0] == 200
    assert _get(s.port, "/healthz", host="monitor.lan:%d" % s.port)[0] == 401
    s = streamer(host="0.0.0.0")
    assert _get(s.port, "/healthz", host="monitor.lan:%d" % s.port)[0] == 200


def test_connections_are_capped_with_503(streamer):
    s = streamer(max_connections=4)
    idle = [socket.create_connection(("127.0.0.1", s.port), timeout=5) for _ in range(4)]  # slow clients
    try:
        _until(lambda: s.open_connections == 4)
        status, body = _get(s.port, "/healthz")
        assert status == 503 and b"too many connections" in body
    finally:
        for c in idle:
            c.close()
    _until(lambda: s.open_connections == 0)
    assert _get(s.port, "/healthz")[0] == 200


def test_stream_viewers_are_capped_and_slots_come_back(streamer):
    s = streamer(max_stream_clients=2)
    d = GymDriver([s])
    d.start()
    t = run_in_thread(d, max_s=60.0)
    try:
        viewers = [MjpegClient(s.url + "stream") for _ in range(2)]
        assert all(v.status == 200 for v in viewers)
        third = MjpegClient(s.url + "stream")
        assert third.status == 503
        third.close()
        assert s.hub.clients == 2
        viewers[0].close()  # a viewer leaves: its slot is free again
        assert s.hub.wait_clients(1, 15)
        again = MjpegClient(s.url + "stream")
        assert again.status == 200 and next(again.parts()).jpeg[:2] == b"\xff\xd8"
        for v in (again, viewers[1]):
            v.close()
        assert s.hub.wait_clients(0, 15)
    finally:
        d.stop_event.set()
        t.join(10)
        d.env.close()

"""The single stream writer (rlg_hotreload.stream.fanout) against a real server and real sockets.

What it must keep: every viewer gets the newest frames in order, the same bytes (one encode per
frame), from ONE sending thread however many watch; a viewer that stops reading is dropped (its
slot given back) without slowing the others; a viewer that leaves frees its slot at once.
"""

import http.client
import itertools
import json
import socket
import struct
import threading
from collections import Counter
from typing import Dict, Iterator, List, Tuple

import numpy as np
import pytest
from helpers.gym_driver import GymDriver, run_in_thread

from rlg_hotreload.stream import FrameStreamer
from rlg_hotreload.stream.client import MjpegClient
from rlg_hotreload.stream.fanout import WRITER_THREAD_NAME, StreamWriter


def _status(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/status")
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()


def _raw_viewer(port: int, rcvbuf: int = 0) -> socket.socket:
    """A /stream connection whose reading the test controls; returns after the response headers."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: sets the window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /stream HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % port)
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        assert chunk, "the server closed before its headers"
        head += chunk
    assert head.startswith(b"HTTP/1.0 200") and b"multipart/x-mixed-replace" in head, head
    # close-delimited, not chunked: the writer puts raw part bytes on the socket
    assert b"transfer-encoding" not in head.lower(), head
    return sock


@pytest.fixture
def live() -> Iterator[Tuple[FrameStreamer, GymDriver]]:
    s = FrameStreamer(port=0, fps=30.0)
    s.start()
    d = GymDriver([s])
    d.start()
    t = run_in_thread(d, max_s=90.0)
    d.thread = t
    yield s, d
    d.stop_event.set()
    t.join(10)
    assert not t.is_alive()
    s.stop()
    d.env.close()


@pytest.mark.integration
def test_sixteen_viewers_get_the_same_bytes_per_frame_from_one_writer_thread(live):
    s, d = live
    n_clients, n_frames = 16, 15
    assert s.max_stream_clients >= n_clients
    results: List[List] = [[] for _ in range(n_clients)]
    errors: List[BaseException] = []
    all_attached = threading.Barrier(n_clients + 1, timeout=30)
    status: Dict[str, dict] = {}

    def reader(i: int) -> None:
        try:
            c = MjpegClient(s.url + "stream", timeout=30)
            parts = c.parts()
            results[i].append(next(parts))
            all_attached.wait()  # every viewer streams at once while the main thread looks
            all_attached.wait()
            for part in parts:
                results[i].append(part)
                if len(results[i]) == n_frames:
                    break
            c.close()
        except BaseException as e:  # reported to the main thread below
            errors.append(e)
            all_attached.abort()

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(n_clients)]
    for t in threads:
        t.start()
    all_attached.wait()
    status["during"] = _status(s.port)["stream"]
    writers = [t for t in threading.enumerate() if t.name == WRITER_THREAD_NAME]
    all_attached.wait()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)

    by_seq: Dict[int, bytes] = {}
    for parts in results:
        assert len(parts) == n_frames
        seqs = [p.seq for p in parts]
        assert seqs == sorted(set(seqs)), "each viewer gets each frame at most once, in order: %s" % seqs
        for p in parts:
            assert p.jpeg[:2] == b"\xff\xd8" and p.jpeg[-2:] == b"\xff\xd9", "a whole JPEG"
            assert by_seq.setdefault(p.seq, p.jpeg) == p.jpeg, "frame %d differs between viewers" % p.seq
    viewers_per_seq = Counter(p.seq for parts in results for p in parts)
    assert sum(n > 1 for n in viewers_per_seq.values()) >= n_frames // 2, "the viewers watched the same frames (one encode, fanned out)"
    writer = status["during"]["writer"]
    assert status["during"]["clients"] == n_clients and writer["viewers"] == n_clients
    # One thread sends every part, however many viewers: not one woken thread per viewer and frame.
    assert len(writers) == 1, [t.name for t in writers]
    assert s.hub.stats()["writer"]["send_threads"] == 1
    assert s.hub.sent >= n_clients * n_frames and s.hub.stats()["writer"]["frames_delivered"] == s.hub.sent
    assert s.hub.wait_clients(0, timeout=10), "every viewer that left gave its slot back"
    d.stop_event.set()  # counters read while the driver steps race (it renders, then submits)
    d.thread.join(10)
    assert s.hub.encoded <= s.hub.submitted == d.renders


@pytest.mark.integration
def test_viewer_that_stops_reading_is_dropped_and_slows_nobody(monkeypatch):
    monkeypatch.setattr(StreamWriter, "stall_s", 1.0)
    s = FrameStreamer(port=0, quality=90)
    s.start()
    d = GymDriver([s])
    # Noise frames: ~300 kB JPEGs fill the loopback buffers of a viewer that reads nothing in a few frames.
    rng = np.random.default_rng(0)
    noise = itertools.cycle([rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(4)])
    d.frame_source = lambda: next(noise)
    d.start()
    t = run_in_thread(d, max_s=60.0)
    slow = _raw_viewer(s.port, rcvbuf=4096)  # ... and it never reads again
    try:
        fast = MjpegClient(s.url + "stream")
        seqs = [p.seq for _, p in zip(range(60), fast.parts())]
        # A stall would deliver none; a loaded 2-core box may make the fast viewer skip a few itself.
        assert len(seqs) == 60 and seqs[-1] - seqs[0] + 1 <= 90, "the fast viewer got most frames: %s" % seqs
        assert s.hub.wait_clients(1, timeout=15), "the viewer that reads nothing was not dropped"
        writer = _status(s.port)["stream"]["writer"]
        assert writer["dropped_stalled"] == 1 and writer["viewers"] == 1, writer
        more = [p.seq for _, p in zip(range(10), fast.parts())]
        assert len(more) == 10 and more[0] > seqs[-1], "the fast viewer streams on"
        # The dropped viewer's connection ends: what was in flight, then EOF (bounded by its timeout).
        slow.settimeout(10)
        while slow.recv(65536):
            pass
        fast.close()
        assert s.hub.wait_clients(0, timeout=10)
    finally:
        slow.close()
        d.stop_event.set()
        t.join(10)
        s.stop()
        d.env.close()


def test_viewers_that_leave_free_their_slots_at_once_even_with_no_frames():
    """No frame to send (player paused) and keepalives 60 s apart: a viewer's EOF or RST alone frees
    its slot; a send that fails would come too late (the page would render for nobody)."""
    s = FrameStreamer(port=0)
    s.keepalive_s = 60.0
    s.start()
    d = GymDriver([s])
    d.start()
    try:
        viewers = [_raw_viewer(s.port) for _ in range(6)]
        assert s.hub.wait_clients(6, timeout=10)
        for i, v in enumerate(viewers):
            if i % 2:  # RST instead of FIN: the rudest goodbye
                v.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            v.close()
        assert s.hub.wait_clients(0, timeout=5), "%d slot(s) still taken" % s.hub.clients
        writer = _status(s.port)["stream"]["writer"]
        assert writer["viewers"] == 0 and writer["dropped_gone"] == 6, writer
        # Mid-stream too: viewers watching frames leave, and the ones that stay keep streaming.
        t = run_in_thread(d, max_s=30.0)
        try:
            clients = [MjpegClient(s.url + "stream") for _ in range(4)]
            for c in clients:
                assert len([p for _, p in zip(range(3), c.parts())]) == 3
            for c in clients[:3]:
                c.close()
            assert s.hub.wait_clients(1, timeout=5)
            seqs = [p.seq for _, p in zip(range(5), clients[3].parts())]
            assert seqs == sorted(set(seqs)) and len(seqs) == 5
            clients[3].close()
            assert s.hub.wait_clients(0, timeout=5)
        finally:
            d.stop_event.set()
            t.join(10)
    finally:
        s.stop()
        d.env.close()

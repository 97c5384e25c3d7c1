"""``FanOut``, the frame process's writer to handed-over stream viewers, on real sockets.

Why this test exists: the frame process writes each frame to every viewer's socket without blocking
(one slow or dead viewer must never hold up the others, nor the frames the player waits for). What
that could break, checked here: a part torn or interleaved with the next one at a slow viewer; a slow
viewer blocking the writer; a dead or stalled viewer kept (its connection must end, so the player's
request thread returns); deliveries miscounted (the status page's fps comes from them); keepalives
missing while no frame comes (paused player).
"""

import socket
import time

from rlg_hotreload.stream.fanout import FanOut


def _pair(sndbuf=None):
    """(our end, the viewer's end) of a real TCP connection on loopback."""
    lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    viewer = socket.create_connection(lsock.getsockname(), timeout=5)
    ours, _ = lsock.accept()
    lsock.close()
    if sndbuf:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        viewer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    return ours, viewer


def _read(sock, n, timeout=5.0):
    sock.settimeout(timeout)
    out = b""
    while len(out) < n:
        got = sock.recv(n - len(out))
        if not got:
            break
        out += got
    return out


def _read_flushing(fan, sock, n):
    """Read n bytes as they come while the fan-out writes more whenever the socket can take it."""
    got = b""
    sock.settimeout(5)
    deadline = time.monotonic() + 10
    while len(got) < n and time.monotonic() < deadline:
        got += sock.recv(min(65536, n - len(got)))  # whatever has arrived
        fan.flush(fan.blocked())  # the socket can take more now
    return got


def _part(i, size):
    return (b"--part %06d--" % i) + bytes([i % 251]) * size


def test_every_viewer_gets_each_whole_part_and_each_delivery_counts():
    fan = FanOut()
    pairs = [_pair() for _ in range(4)]
    for ours, _ in pairs:
        fan.add(ours, keepalive_s=60, stall_s=60)
    parts = [_part(i, 20000) for i in range(3)]
    for p in parts:
        fan.publish(p)
        for _, viewer in pairs:
            assert _read(viewer, len(p)) == p
    assert fan.take_delivered() == 12 and fan.take_delivered() == 0
    assert fan.skipped == 0 and not fan.blocked()
    fan.close()
    for _, viewer in pairs:
        viewer.close()


def test_a_slow_viewer_never_blocks_skips_frames_and_gets_no_torn_part():
    fan = FanOut()
    slow_ours, slow = _pair(sndbuf=65536)
    fast_ours, fast = _pair()
    fan.add(slow_ours, keepalive_s=60, stall_s=60)
    fan.add(fast_ours, keepalive_s=60, stall_s=60)
    parts = [_part(i, 2_000_000) for i in range(6)]  # far more than the slow socket's buffers hold
    t0 = time.monotonic()
    for p in parts[:5]:
        fan.publish(p)
        assert _read(fast, len(p)) == p  # the fast viewer gets every part, at once
    assert time.monotonic() - t0 < 5, "publishing blocked on the slow viewer"
    assert [v.sock for v in fan.blocked()] == [slow_ours] and fan.skipped == 4
    # the slow viewer now reads: the rest of part 0 comes whole, nothing of parts 1-4 (skipped), then 5
    assert _read_flushing(fan, slow, len(parts[0])) == parts[0] and not fan.blocked()
    fan.publish(parts[5])  # the next part after the skipped ones, whole
    assert _read_flushing(fan, slow, len(parts[5])) == parts[5] and not fan.blocked()
    assert _read(fast, len(parts[5])) == parts[5]
    assert fan.take_delivered() == 6 + 2  # fast: all 6 parts; slow: part 0 (once finished) and part 5
    fan.close()
    slow.close()
    fast.close()


def test_a_viewer_that_left_is_dropped_and_the_others_go_on():
    fan = FanOut()
    gone_ours, gone = _pair()
    ok_ours, ok = _pair()
    fan.add(gone_ours, keepalive_s=60, stall_s=60)
    fan.add(ok_ours, keepalive_s=60, stall_s=60)
    gone.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    gone.close()  # RST: the next writes fail
    p = _part(1, 1000)
    for _ in range(3):
        fan.publish(p)
        assert _read(ok, len(p)) == p
    assert len(fan.viewers) == 1 and fan.viewers[0].sock is ok_ours and fan.dropped == 1
    fan.close()
    ok.close()


def test_a_stalled_viewer_is_shut_down_and_its_peer_sees_the_end():
    fan = FanOut()
    ours, viewer = _pair(sndbuf=4096)
    fan.add(ours, keepalive_s=60, stall_s=0.3)
    fan.publish(_part(0, 400000))  # the viewer reads nothing: the socket fills up
    assert fan.blocked()
    deadline = time.monotonic() + 5
    while fan.viewers and time.monotonic() < deadline:
        wait = fan.tick()
        assert wait is None or wait <= 0.3 + 1e-6
        time.sleep(wait or 0)  # the child's select would wait this long
    assert not fan.viewers and fan.dropped == 1
    viewer.settimeout(5)  # a socket.timeout here would mean the connection was never ended
    total = 0
    while True:
        got = viewer.recv(65536)
        if not got:
            break
        total += len(got)
        assert total < 10_000_000
    viewer.close()


def test_with_no_new_frame_the_last_part_is_sent_again_and_not_counted():
    fan = FanOut()
    ours, viewer = _pair()
    fan.add(ours, keepalive_s=0.2, stall_s=60)
    assert fan.tick() is not None  # a viewer: a keepalive is due some time
    p = _part(7, 5000)
    fan.publish(p)
    assert _read(viewer, len(p)) == p and fan.take_delivered() == 1
    wait = fan.tick()
    assert 0 < wait <= 0.2
    time.sleep(wait)
    fan.tick()
    assert _read(viewer, len(p)) == p  # the same part again
    assert fan.take_delivered() == 0
    fan.close()
    viewer.close()

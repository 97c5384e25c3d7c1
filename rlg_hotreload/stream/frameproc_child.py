"""The frame process: ``python -m rlg_hotreload.stream.frameproc_child <parent pid> <socket fd>``.

Why a process: in the player's process, every thread that renders or encodes competes with the player
thread for the GIL between its C calls (measured on a 16-core H100 machine: 0.89x of the unwatched
steps/s with one viewer, although the render itself is off the player thread). Here the render
(MuJoCo on EGL) and the JPEG encode (Pillow) run under a GIL of their own; the player's process only
packs the watched env's state (a flat float64 array, ~1 KB) and receives finished multipart bytes.

Why ``python -m`` and not ``multiprocessing`` (as the checkpoint loader, :mod:`rlg_hotreload.reload.child`):
spawn re-imports the user's main script in the child, and fork is unsafe in a process with CUDA, GL and
threads. Why it ignores SIGINT and dies with its parent: Ctrl+C reaches the whole foreground process
group; the parent decides when this process ends (EOF on the socket, or a kill), and it must never
outlive the parent. It imports neither torch nor Flask (start-up ~0.3 s, not ~1.5 s).

Protocol (``multiprocessing.connection`` messages over a socketpair): first the pickled
``{"renderer", "quality", "size"}`` (the renderer from the env's ``make_frame_renderer()``, see
:mod:`rlg_hotreload.frame_grab`), answered ``b"R"`` or ``b"E<one line>"``; then per frame a float64 array
``[seq, t_render, *state]``, answered ``b"F" + HEADER + part`` or ``b"E<one line>"`` (the part is first
written to every handed-over viewer, :mod:`rlg_hotreload.stream.fanout`). Two more requests, told from
a frame by their length (never a multiple of 8): ``b"V" + VIEWER`` followed by one descriptor
(``SCM_RIGHTS``), a stream viewer's socket to write to, answered ``b"K"``; ``b"D"``, forget every viewer
(the player's process takes them back), answered ``b"K"``.
"""

import os
import pickle
import select
import signal
import socket
import struct
import sys
import time
from multiprocessing.connection import Connection
from multiprocessing.reduction import recvfds
from typing import Any

from rlg_hotreload.childproc import die_with_parent, step_aside
from rlg_hotreload.stream.fanout import FanOut

#: after b"F": width, height, offset of the JPEG in the part, its length, render ms, encode ms, and the
#: whole new parts written to viewers since the last answer
HEADER = struct.Struct("<IIIIffI")
#: after b"V": keepalive seconds, stall seconds (see :mod:`rlg_hotreload.stream.fanout`)
VIEWER = struct.Struct("<dd")


def one_line(e: BaseException) -> str:
    return ("%s: %s" % (type(e).__name__, e)).replace("\n", " ")[:500]


def serve(conn: Connection) -> None:
    import numpy as np

    from rlg_hotreload.stream.frames import encode_jpeg, mjpeg_part

    try:
        init = pickle.loads(conn.recv_bytes())
        renderer: Any = init["renderer"]
        quality, size = int(init["quality"]), init["size"]
        n = 2 + int(renderer.state_size)
    except EOFError:
        return
    except Exception as e:  # noqa: BLE001 - unpickling a user's renderer can raise anything: report it
        conn.send_bytes(b"E" + one_line(e).encode())
        return
    conn.send_bytes(b"R")
    buf = bytearray(max(8 * n, 1 + VIEWER.size))  # room for the longest command too
    flat = np.frombuffer(buf, dtype=np.float64, count=n)
    fan = FanOut()
    # a second handle on the socketpair, for the descriptors that come with b"V" (recvmsg)
    fds = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(conn.fileno()))
    try:
        while True:
            wait = fan.tick()
            blocked = fan.blocked()
            ready, writable, _ = select.select([conn], blocked, [], wait)
            if writable:
                fan.flush(writable)
            if not ready:
                continue
            try:
                got = conn.recv_bytes_into(buf)
            except EOFError:
                return
            if got != 8 * n:
                conn.send_bytes(_control(bytes(buf[:got]), fds, fan))
                continue
            try:
                t0 = time.perf_counter()
                pixels = renderer.render_flat(flat[2:])
                t1 = time.perf_counter()
                jpeg, w, h = encode_jpeg(pixels, quality, size)
                t2 = time.perf_counter()
            except Exception as e:  # noqa: BLE001 - GL/EGL, MuJoCo and Pillow errors come in many types
                conn.send_bytes(b"E" + one_line(e).encode())
                continue
            part = mjpeg_part(jpeg, int(flat[0]), float(flat[1]))
            fan.publish(part)
            head = HEADER.pack(w, h, len(part) - len(jpeg) - 2, len(jpeg), 1000 * (t1 - t0), 1000 * (t2 - t1),
                               fan.take_delivered())  # fmt: skip
            conn.send_bytes(b"F" + head + part)
    finally:
        fan.close()
        fds.close()
        renderer.close()  # releases the GL context on the thread that used it


def _control(msg: bytes, fds: socket.socket, fan: FanOut) -> bytes:
    """Answer a request that is not a frame: b"V" (a viewer's socket follows), b"D" (forget viewers)."""
    if msg[:1] == b"V" and len(msg) == 1 + VIEWER.size:
        keepalive_s, stall_s = VIEWER.unpack_from(msg, 1)
        try:
            got = recvfds(fds, 1)
        except (OSError, EOFError, RuntimeError) as e:  # no descriptor came with it (the parent's bug)
            return b"E" + one_line(e).encode()
        fan.add(socket.socket(fileno=got[0]), keepalive_s, stall_s)
        return b"K"
    if msg == b"D":
        fan.close()
        return b"K"
    return b"E" + ("a request of %d bytes that is neither a state nor a known command" % len(msg)).encode()


def main(argv: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(int(argv[1]))
    step_aside(10)  # background work: on a busy machine the player's threads go first
    conn = Connection(int(argv[2]))
    try:
        serve(conn)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the parent went away mid-reply: nothing left to tell it
    finally:
        conn.close()


if __name__ == "__main__":
    main(sys.argv)

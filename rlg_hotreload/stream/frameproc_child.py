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
``[seq, t_render, *state]``, answered ``b"F" + HEADER + part`` or ``b"E<one line>"``.
"""

import pickle
import signal
import struct
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

from rlg_hotreload.childproc import die_with_parent, step_aside

#: after b"F": width, height, offset of the JPEG in the part, its length, render ms, encode ms
HEADER = struct.Struct("<IIIIff")


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
    buf = bytearray(8 * n)
    flat = np.frombuffer(buf, dtype=np.float64)
    try:
        while True:
            try:
                got = conn.recv_bytes_into(buf)
            except EOFError:
                return
            if got != len(buf):
                conn.send_bytes(b"E" + ("state of %d bytes, expected %d" % (got, len(buf))).encode())
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
            head = HEADER.pack(w, h, len(part) - len(jpeg) - 2, len(jpeg), 1000 * (t1 - t0), 1000 * (t2 - t1))
            conn.send_bytes(b"F" + head + part)
    finally:
        renderer.close()  # releases the GL context on the thread that used it


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

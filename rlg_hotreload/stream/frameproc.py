"""``FrameProcess``: the player process's side of the frame process (:mod:`.frameproc_child`).

Why a socketpair and no shared-memory segment: a frame's input is the watched env's state, ~1 KB of
float64 (packed by the renderer's ``pack``), and its output a ~40 KB multipart part; one
``send_bytes`` and one ``recv_bytes`` each (the GIL is released while they wait in the kernel) cost the
parent no more than writing into a mapped segment would, and nothing is left in ``/dev/shm`` when a
process dies (Docker's is 64 MB; named segments leak on a crash).

Why these rules: the caller (the stream's encoder thread, never the player's) waits for each answer,
bounded by ``frame_timeout``; a child that died, hung or cannot start raises
:class:`FrameProcessGone` (the caller falls back to rendering on its thread); a frame the child could
not draw raises :class:`FrameRenderFailed` (the next frame is tried). ``close`` ends the child by EOF
(it releases its GL context) and kills it if it has not exited within a second. The child runs in its
own session, so a terminal's Ctrl+C never reaches it, and dies with the parent (``PR_SET_PDEATHSIG``).
"""

import os
import pickle
import socket
import subprocess
import sys
import time
from multiprocessing.connection import Connection
from multiprocessing.reduction import sendfds
from typing import Any, Dict, Optional, Tuple

import numpy as np

from rlg_hotreload.childproc import reap
from rlg_hotreload.stream.frameproc_child import HEADER, VIEWER
from rlg_hotreload.stream.frames import Encoded

CHILD_MODULE = "rlg_hotreload.stream.frameproc_child"


class FrameProcessGone(Exception):
    """The frame process died, hung or could not start (one line: why)."""


class FrameRenderFailed(Exception):
    """The frame process could not draw or encode this frame; it still runs."""


def can_render_in_process(renderer: Any) -> bool:
    """True when a renderer from ``make_frame_renderer()`` can be sent to a frame process: it packs a
    state into a flat float64 array (``state_size``, ``pack``), draws one (``render_flat``) and pickles."""
    return all(callable(getattr(renderer, a, None)) for a in ("pack", "render_flat")) and isinstance(
        getattr(renderer, "state_size", None), int
    )


def _exit_text(proc: "subprocess.Popen[bytes]") -> str:
    code = proc.poll()
    if code is None:
        return "stopped answering"
    return "was killed by signal %d" % -code if code < 0 else "exited with code %d" % code


class FrameProcess:
    """One child that renders and encodes frames of one env; see the module docstring for the rules."""

    def __init__(self, renderer: Any, quality: int, size: Optional[Tuple[int, int]],
                 start_timeout: float = 60.0, frame_timeout: float = 10.0) -> None:  # fmt: skip
        self.renderer = renderer  # packs states here; its pickled copy draws them over there
        self.quality = int(quality)
        self.size = size
        self.start_timeout = start_timeout
        self.frame_timeout = frame_timeout
        self.proc: Optional["subprocess.Popen[bytes]"] = None
        self._conn: Optional[Connection] = None
        self._fds: Optional[socket.socket] = None  # the same socketpair end, for sending descriptors
        self.viewers = 0  # viewers handed over since the last drop_viewers()
        self._ready = False
        self._started_at = 0.0
        self._buf = np.zeros(2 + int(renderer.state_size), dtype=np.float64)

    @property
    def pid(self) -> Optional[int]:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> None:
        """Spawn the child and send it the renderer; does not wait (see :meth:`ready`)."""
        try:
            blob = pickle.dumps({"renderer": self.renderer, "quality": self.quality, "size": self.size})
        except Exception as e:  # noqa: BLE001 - pickling a task's renderer can raise anything
            raise FrameProcessGone("the env's frame renderer cannot be sent to a process (%s)" % e) from e
        ours, theirs = socket.socketpair()
        here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, OMP_NUM_THREADS="1")
        # the parent's own import path entries (not the interpreter's: the child has those): the renderer's
        # class, a task's module, must unpickle over there
        ours_only = [p for p in sys.path if p and os.path.isdir(p) and not p.startswith((sys.prefix, sys.base_prefix))]
        env["PYTHONPATH"] = os.pathsep.join([here] + ours_only)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", CHILD_MODULE, str(os.getpid()), str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), env=env, start_new_session=True,
            )  # fmt: skip
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            ours.close()
            raise FrameProcessGone("cannot start the frame process (%s)" % e) from e
        finally:
            theirs.close()
        self._conn = Connection(ours.detach())
        self._fds = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=os.dup(self._conn.fileno()))
        self._started_at = time.monotonic()
        try:
            self._conn.send_bytes(blob)
        except OSError as e:
            raise FrameProcessGone("the frame process %s" % _exit_text(self.proc)) from e

    def ready(self) -> bool:
        """True once the child has said it is ready (never blocks); FrameProcessGone if it cannot be."""
        if self._ready:
            return True
        conn, proc = self._conn, self.proc
        if conn is None or proc is None:
            raise FrameProcessGone("the frame process is not running")
        try:
            if conn.poll(0):
                msg = conn.recv_bytes()
                if msg[:1] != b"R":
                    raise FrameProcessGone("the frame process did not start: %s" % msg[1:].decode(errors="replace"))
                self._ready = True
                return True
        except (EOFError, OSError) as e:
            raise FrameProcessGone("the frame process %s while starting" % _exit_text(proc)) from e
        if proc.poll() is not None:
            raise FrameProcessGone("the frame process %s while starting" % _exit_text(proc))
        if time.monotonic() - self._started_at > self.start_timeout:
            raise FrameProcessGone("the frame process did not start within %.0f s" % self.start_timeout)
        return False

    def render(self, state: Any, seq: int, t_render: float) -> Encoded:
        """JPEG and multipart part of ``state``, drawn over there; waits for them (bounded)."""
        conn, proc, buf = self._conn, self.proc, self._buf
        if conn is None or proc is None:
            raise FrameProcessGone("the frame process is not running")
        buf[0], buf[1] = seq, t_render
        self.renderer.pack(state, buf[2:])  # waits for an asynchronous device copy, if any
        try:
            conn.send_bytes(buf)
            if not conn.poll(self.frame_timeout):
                proc.kill()
                raise FrameProcessGone("the frame process gave no frame within %.0f s" % self.frame_timeout)
            msg = conn.recv_bytes()
        except (EOFError, OSError) as e:
            raise FrameProcessGone("the frame process %s" % _exit_text(proc)) from e
        if msg[:1] != b"F":
            raise FrameRenderFailed(msg[1:].decode(errors="replace"))
        w, h, off, n, render_ms, encode_ms, sent = HEADER.unpack_from(msg, 1)
        part = msg[1 + HEADER.size :]
        return Encoded(part[off : off + n], w, h, part, render_ms / 1000.0, encode_ms / 1000.0, sent)

    def hand_over(self, sock: socket.socket, keepalive_s: float, stall_s: float) -> Optional[str]:
        """Pass a stream viewer's socket to the child, which writes every frame to it from now on (see
        :mod:`rlg_hotreload.stream.fanout`); waits for its answer (bounded). None, or why it refused."""
        answer = self._ask(b"V" + VIEWER.pack(keepalive_s, stall_s), sock.fileno())
        if answer != b"K":
            return answer[1:].decode(errors="replace")
        self.viewers += 1
        return None

    def drop_viewers(self) -> None:
        """The child forgets every viewer (closes its copies, ends no connection); bounded."""
        if self.viewers:
            self._ask(b"D")
            self.viewers = 0

    def _ask(self, msg: bytes, fd: Optional[int] = None) -> bytes:
        conn, proc, fds = self._conn, self.proc, self._fds
        if conn is None or proc is None or fds is None:
            raise FrameProcessGone("the frame process is not running")
        try:
            conn.send_bytes(msg)
            if fd is not None:
                sendfds(fds, [fd])
            if not conn.poll(self.frame_timeout):
                proc.kill()
                raise FrameProcessGone("the frame process gave no answer within %.0f s" % self.frame_timeout)
            return conn.recv_bytes()
        except (EOFError, OSError) as e:
            raise FrameProcessGone("the frame process %s" % _exit_text(proc)) from e

    def kill(self) -> None:
        """End the child now (any thread): a pending :meth:`render` then fails at once."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def close(self, timeout: float = 1.0) -> None:
        """EOF to the child (it releases its GL context and exits), then kill it if it lingers; bounded."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        fds, self._fds = self._fds, None
        if fds is not None:
            fds.close()
        proc = self.proc
        if proc is None:
            return
        reap(proc, timeout)

    def describe(self) -> Dict[str, Any]:
        return {"pid": self.pid, "ready": self._ready}

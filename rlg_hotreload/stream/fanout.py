"""``FanOut``: the frame process writes each new part to every stream viewer handed over to it.

Why here and not on one thread per viewer in the player's process: each frame written from there is
several system calls per viewer, and every one of them gives up and takes back the player process's
GIL, so the player thread waits for the sender threads in turn (measured on a 16-core H100 machine:
16 viewers cost the simulation 17-20 % against 3-4 % for one; one writer thread for all viewers did
not help). A viewer's socket is therefore passed to the frame process once (``SCM_RIGHTS``, after
Flask has checked the Host, the token and the viewer cap and sent the headers), and this process,
which encodes every frame anyway, writes it to every viewer under a GIL of its own.

Why these rules: a send never blocks (``MSG_DONTWAIT``; the descriptor is shared with the player's
process, whose file flags are left alone); what a slow viewer's socket does not take now is kept and
written when the socket can take more, and that viewer skips frames until then (it always gets the
newest, like the threads did). A viewer that takes nothing for ``stall_s``, or whose socket fails, is
shut down (both processes see it end: the player's request thread then returns) and forgotten. With
no new frame for ``keepalive_s`` (the player is paused) the last part is written again, so a viewer
that vanished without a word is found out.
"""

import socket
import time
from typing import List, Optional


class Viewer:
    """One handed-over socket: bytes not written yet, and when it last took a whole part."""

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.pending: Optional[memoryview] = None  # the rest of a part the socket has not taken yet
        self.counted = False  # the pending part is a new frame (counted as delivered once written)
        self.last_progress = now  # when the socket last took bytes
        self.last_part = now  # when a whole part was last written (keepalives go by this)

    def fileno(self) -> int:
        return self.sock.fileno()


class FanOut:
    """Every viewer handed over to this process; ``publish`` a part, ``flush`` the writable ones."""

    def __init__(self) -> None:
        self.viewers: List[Viewer] = []
        self.last: Optional[bytes] = None
        self.keepalive_s = 2.0
        self.stall_s = 10.0
        self.delivered = 0  # whole new parts written, summed over viewers (read and reset by the caller)
        self.skipped = 0  # new parts a viewer missed because it had not taken the last one yet
        self.dropped = 0  # viewers shut down here (gone, or stalled for stall_s)

    def add(self, sock: socket.socket, keepalive_s: float, stall_s: float) -> None:
        self.keepalive_s, self.stall_s = keepalive_s, stall_s
        self.viewers.append(Viewer(sock, time.monotonic()))

    def take_delivered(self) -> int:
        n, self.delivered = self.delivered, 0
        return n

    def blocked(self) -> List[Viewer]:
        """Viewers with bytes waiting (select them for writing)."""
        return [v for v in self.viewers if v.pending is not None]

    def publish(self, part: bytes) -> None:
        """Write a new part to every viewer that has taken the last one; the others skip it."""
        self.last = part
        now = time.monotonic()
        for v in list(self.viewers):
            if v.pending is not None:
                self.skipped += 1
                continue
            self._write(v, memoryview(part), True, now)

    def flush(self, ready: List[Viewer]) -> None:
        """Go on writing to viewers whose sockets can take more (``select`` said so)."""
        now = time.monotonic()
        for v in ready:
            if v in self.viewers and v.pending is not None:
                self._write(v, v.pending, v.counted, now)

    def tick(self) -> Optional[float]:
        """Keepalives and stall checks; returns the seconds until the next one is due (None: no viewer)."""
        if not self.viewers:
            return None
        now = time.monotonic()
        due = []
        for v in list(self.viewers):
            if v.pending is not None:
                if now - v.last_progress > self.stall_s:
                    self._drop(v)
                else:
                    due.append(v.last_progress + self.stall_s)
            elif self.last is not None and now - v.last_part >= self.keepalive_s:
                self._write(v, memoryview(self.last), False, now)
                due.append(now + self.keepalive_s)
            else:
                due.append(v.last_part + self.keepalive_s)
        return max(0.0, min(due) - now) if due else None

    def close(self) -> None:
        """Forget every viewer without ending its connection (the player's process takes them back)."""
        for v in self.viewers:
            v.sock.close()
        self.viewers = []

    def _write(self, v: Viewer, data: memoryview, counted: bool, now: float) -> None:
        try:
            n = v.sock.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            n = 0
        except OSError:  # EPIPE, ECONNRESET, ...: the viewer is gone
            self._drop(v)
            return
        if n:
            v.last_progress = now
        if n < len(data):
            v.pending, v.counted = data[n:], counted
            return
        v.pending = None
        v.last_part = now
        if counted:
            self.delivered += 1

    def _drop(self, v: Viewer) -> None:
        self.viewers.remove(v)
        self.dropped += 1
        try:
            v.sock.shutdown(socket.SHUT_RDWR)  # the player's request thread sees the end and returns
        except OSError:
            pass  # already shut down by the other side: closing is all that is left
        v.sock.close()

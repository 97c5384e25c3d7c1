"""A stream viewer handed over to the frame process: the request thread's side.

Why (see :mod:`rlg_hotreload.stream.fanout`): with the frame process writing every frame to the
viewer's socket, the player's process does nothing per frame and viewer; the viewer's request thread
only keeps the response open, asleep in ``select`` on the socket, until:

- the viewer leaves (the socket reads as closed; the frame process shuts down a viewer whose socket
  fails or stalls, which reads the same here): the response ends;
- the stream closes: the connection is shut down (the frame process then fails to write to it and
  forgets it) and the response ends;
- the frame process no longer serves it (it died, or the render strategy changed, which first makes it
  forget its viewers): the viewer is *taken back*, and the request thread writes frames itself again.
  A part the frame process was cut off in the middle of is then followed by a fresh boundary (viewers
  find the next part by its boundary line; at worst one frame shows torn).
"""

import select
import socket
from typing import Any, Callable, Optional

#: how often a sleeping request thread checks that the stream is open and its viewer still served
POLL_S = 0.5


class Handover:
    """One request to hand a viewer over; the hub's encoder thread answers it (``token``, ``done``)."""

    def __init__(self, sock: Any, keepalive_s: float, stall_s: float) -> None:
        self.sock = sock
        self.keepalive_s = keepalive_s
        self.stall_s = stall_s
        self.taken = False  # the encoder thread is working on it: wait for its answer
        self.done = False
        self.token: Optional[object] = None  # what serves the viewer now, or None: not handed over


def wait_handed_over(sock: socket.socket, served: Callable[[], bool], closed: Callable[[], bool]) -> bool:
    """Sleep while the frame process serves this viewer. True: the response is over (the viewer left or
    the stream closed; the connection is shut down); False: taken back, write frames here again."""
    while True:
        if closed():
            _shut(sock)
            return True
        if not served():
            return False
        try:
            readable, _, _ = select.select([sock], [], [], POLL_S)
        except (OSError, ValueError):  # the descriptor was closed under us
            return True
        if not readable:
            continue
        try:
            data = sock.recv(4096, socket.MSG_DONTWAIT)
        except BlockingIOError:
            continue
        except OSError:  # ECONNRESET: the viewer is gone
            data = b""
        if not data:  # end of stream: the viewer left, or the frame process shut the connection
            _shut(sock)
            return True
        # anything a viewer sends after its request is ignored (a browser sends nothing)


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)  # the frame process's copy fails at its next write and is dropped
    except OSError:
        pass  # already shut down (by the viewer or the frame process): nothing left to end

"""One writer thread that sends every MJPEG viewer its frames: non-blocking sockets, one ``selectors`` loop.

Why not a thread per viewer (werkzeug's way, and ours before): each viewer's thread was woken for
every frame to write the same bytes; with 16 viewers that is 16 Python threads per frame competing for
the GIL with the player in the same process (the simulation ran at 0.83x of unwatched with 16 viewers,
0.96x with one: docs/benchmarks.md §5). Here the request thread checks the request, sends the
response headers through werkzeug, hands the connection's socket to :class:`StreamWriter` and sleeps
on an event until the viewer is gone; one thread then writes ``frame.part`` (built once per frame by
the hub) to every socket.

Why non-blocking with at most one pending part per viewer: a viewer that reads slowly keeps the rest of
its current part pending (a part cut short would break the multipart stream) and then takes the newest
frame, skipping the ones in between: it never stalls the others nor grows memory. A part not taken in
full within :attr:`StreamWriter.stall_s` drops that viewer, as the old per-thread socket timeout did.

Why a wake-up socket: ``select`` cannot wait on the hub's condition variable, so the hub calls
:meth:`StreamWriter.wake` once per published frame (and on close) and the loop wakes once per frame.
The socket is given back to werkzeug (timeout restored, unregistered) before the request thread
returns, so socketserver's ``shutdown_request`` never races a send.
"""

import logging
import selectors
import socket
import threading
import time
from typing import Dict, Optional, Set

from rlg_hotreload.stream.hub import Frame, FrameHub

log = logging.getLogger("rlg_hotreload")

WRITER_THREAD_NAME = "rlg-stream-writer"


class StreamClient:
    """One viewer's socket and what is left of the part being sent to it (writer thread's state)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.timeout = sock.gettimeout()  # restored when the socket goes back to werkzeug
        self.done = threading.Event()  # set when the writer is through with this viewer
        self.reason = ""
        self.pending: Optional[memoryview] = None
        self.pending_since = 0.0
        self.counted = False  # the pending part is a new frame (counted once delivered), not a keepalive
        self.seq = -1  # newest frame started for this viewer
        self.last_send = time.monotonic()
        self.events = selectors.EVENT_READ


class StreamWriter:
    """The single sender of ``/stream`` parts; :meth:`serve` blocks a request thread until its viewer goes."""

    #: A viewer that has not taken a whole part within this many seconds is dropped (slow link or gone).
    stall_s = 10.0

    def __init__(self, hub: FrameHub, keepalive_s: float) -> None:
        self.hub = hub
        self.keepalive_s = float(keepalive_s)
        # guards clients, selector and counters; held only around non-blocking work
        self._lock = threading.Lock()
        self._clients: Dict[int, StreamClient] = {}
        self._sel: Optional[selectors.BaseSelector] = None
        self._wake_r: Optional[socket.socket] = None
        self._wake_w: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._send_threads: Set[str] = set()  # names of threads that ever sent a part (one: this design)
        self.delivered = 0  # new frames delivered in full, summed over viewers
        self.keepalives = 0  # repeats of the latest frame sent while nothing new came
        self.skipped = 0  # frames a slow viewer never got (it took a newer one)
        self.dropped_stalled = 0
        self.dropped_gone = 0
        self.errors = 0
        hub.add_listener(self.wake)

    # -- request threads -----------------------------------------------------------------------
    def serve(self, sock: socket.socket, poll_s: float = 1.0) -> str:
        """Stream to ``sock`` (headers already sent) until the viewer goes or the hub closes; returns why.

        The request thread sleeps on the client's event (woken when the viewer is dropped or the hub
        closes, and every ``poll_s`` to re-check the hub), never per frame."""
        client = self.attach(sock)
        try:
            while not client.done.wait(poll_s):
                if self.hub.closed:
                    client.reason = client.reason or "server stopping"
                    break
        finally:
            self.detach(client)
        return client.reason

    def attach(self, sock: socket.socket) -> StreamClient:
        client = StreamClient(sock)
        with self._lock:
            if self.hub.closed:
                client.reason = "server stopping"
                client.done.set()
                return client
            self._ensure_thread()
            assert self._sel is not None
            sock.setblocking(False)
            self._sel.register(client.fd, selectors.EVENT_READ, client)
            self._clients[client.fd] = client
        self.wake()
        return client

    def detach(self, client: StreamClient) -> None:
        """Take the socket out of the writer (idempotent) and give it back to werkzeug as it was."""
        with self._lock:
            self._forget(client)
        client.done.set()
        try:
            client.sock.settimeout(client.timeout)
        except OSError as e:  # already closed: nothing left to restore
            log.debug("stream writer: restoring a socket's timeout failed: %s", e)

    def wake(self) -> None:
        """Called by the hub per published frame and on close (any thread): the loop looks again."""
        w = self._wake_w
        if w is None:
            return
        try:
            w.send(b"\0")
        except BlockingIOError:
            pass  # a wake-up is already pending: one is enough
        except OSError as e:  # the writer is closing its wake-up socket right now
            log.debug("stream writer: wake-up not sent: %s", e)

    def stats(self) -> Dict[str, object]:
        with self._lock:
            return {
                "viewers": len(self._clients),
                "send_threads": len(self._send_threads),
                "frames_delivered": self.delivered,
                "frames_skipped": self.skipped,
                "keepalives": self.keepalives,
                "dropped_stalled": self.dropped_stalled,
                "dropped_gone": self.dropped_gone,
                "errors": self.errors,
            }

    # -- the writer thread ---------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        """Start the writer unless one runs (lock held). A writer clears ``_sel`` (under the lock) as it
        ends, when the hub closes; a server started again then gets a fresh one."""
        if self._sel is not None:
            return
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r.fileno(), selectors.EVENT_READ, None)
        self._thread = threading.Thread(target=self._run, name=WRITER_THREAD_NAME, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sel = self._sel
        assert sel is not None
        try:
            while not self.hub.closed:
                try:
                    self._step(sel)
                except Exception:  # a bug here must not leave every viewer frozen: log, count, go on
                    self.errors += 1
                    log.exception("stream writer: unexpected error; carrying on")
                    time.sleep(0.1)  # a persistent error then logs 10 lines/s, not a busy loop
        finally:
            with self._lock:
                for client in list(self._clients.values()):
                    client.reason = client.reason or "server stopping"
                    self._forget(client)
                sel.close()
                for s in (self._wake_r, self._wake_w):
                    if s is not None:
                        s.close()
                self._sel = self._wake_r = self._wake_w = None

    def _step(self, sel: selectors.BaseSelector) -> None:
        events = sel.select(self._timeout())
        with self._lock:
            if self.hub.closed:
                return
            for key, _mask in events:
                client = key.data
                if client is None:
                    self._drain_wake()
                elif self._clients.get(client.fd) is client:
                    self._read(client)
            latest = self.hub.latest
            now = time.monotonic()
            for client in list(self._clients.values()):
                self._serve_one(client, latest, now)

    def _timeout(self) -> float:
        """Seconds until the next keepalive or stall deadline (the loop also wakes on frames and I/O)."""
        now = time.monotonic()
        deadline = now + 1.0
        has_frame = self.hub.latest is not None
        with self._lock:
            for c in self._clients.values():
                if c.pending is not None:
                    deadline = min(deadline, c.pending_since + self.stall_s)
                elif has_frame:
                    deadline = min(deadline, c.last_send + self.keepalive_s)
        return max(0.005, deadline - now)

    def _drain_wake(self) -> None:
        r = self._wake_r
        try:
            while r is not None and r.recv(4096):
                pass
        except BlockingIOError:
            pass  # drained

    def _read(self, client: StreamClient) -> None:
        """The viewer sent something: EOF or an error means it left (no need to wait for a failed send)."""
        try:
            data = client.sock.recv(4096)  # anything a viewer sends after its request is ignored
        except BlockingIOError:
            return
        except OSError as e:
            self._drop(client, "gone: %s" % e, stalled=False)
            return
        if not data:
            self._drop(client, "closed the connection", stalled=False)

    def _serve_one(self, client: StreamClient, latest: Optional[Frame], now: float) -> None:
        # Twice at most: a part that drains at once lets the newest frame start now, not at the next wake.
        for _ in range(2):
            if not self._send_some(client, latest, now):
                return

    def _send_some(self, client: StreamClient, latest: Optional[Frame], now: float) -> bool:
        """Start the newest frame (or a keepalive) if nothing is pending, send what the socket takes;
        True when a part was completed and another may follow at once."""
        if client.pending is None and latest is not None:
            if latest.seq > client.seq:
                if client.seq > 0:
                    self.skipped += latest.seq - client.seq - 1
                self._start(client, latest, now, counted=True)
            elif now - client.last_send >= self.keepalive_s:
                # Nothing new (player paused): repeat the latest frame so that a dead viewer shows up.
                self.keepalives += 1
                self._start(client, latest, now, counted=False)
        if client.pending is None:
            self._want(client, selectors.EVENT_READ)
            return False
        try:
            n = client.sock.send(client.pending)
        except BlockingIOError:
            n = 0
        except OSError as e:
            self._drop(client, "gone: %s" % e, stalled=False)
            return False
        self._send_threads.add(threading.current_thread().name)
        rest = client.pending[n:]
        if len(rest):
            if now - client.pending_since > self.stall_s:
                self._drop(client, "took no whole frame in %.0f s" % self.stall_s, stalled=True)
                return False
            client.pending = rest
            self._want(client, selectors.EVENT_READ | selectors.EVENT_WRITE)
            return False
        client.pending = None
        client.last_send = now
        if client.counted:
            self.delivered += 1
            self.hub.mark_sent()
        self._want(client, selectors.EVENT_READ)
        return True

    def _start(self, client: StreamClient, frame: Frame, now: float, counted: bool) -> None:
        client.pending = memoryview(frame.part)
        client.pending_since = now
        client.counted = counted
        client.seq = frame.seq

    def _want(self, client: StreamClient, events: int) -> None:
        if client.events != events and self._sel is not None:
            self._sel.modify(client.fd, events, client)
            client.events = events

    def _drop(self, client: StreamClient, reason: str, stalled: bool) -> None:
        if stalled:
            self.dropped_stalled += 1
        else:
            self.dropped_gone += 1
        client.reason = reason
        log.debug("stream viewer dropped: %s", reason)
        self._forget(client)

    def _forget(self, client: StreamClient) -> None:
        """Unregister and release the viewer's request thread (lock held; idempotent)."""
        if self._clients.get(client.fd) is client:
            del self._clients[client.fd]
            if self._sel is not None:
                self._sel.unregister(client.fd)
        client.done.set()

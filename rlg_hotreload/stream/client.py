"""A small MJPEG client over plain ``http.client``: for tests, the benchmark and scripts.

Why ship it: checking a stream (every part a JPEG, sequence numbers, render timestamps for latency)
needs a multipart reader; browsers hide all of that.
"""

import http.client
from typing import Dict, Iterator, NamedTuple, Optional
from urllib.parse import urlsplit


class Part(NamedTuple):
    seq: int
    t_render: float
    jpeg: bytes


class MjpegClient:
    """Connect to ``/stream`` and iterate parts; ``close()`` drops the connection at once."""

    def __init__(self, url: str, timeout: float = 10.0, headers: Optional[Dict[str, str]] = None) -> None:
        u = urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=timeout)
        path = (u.path or "/") + ("?" + u.query if u.query else "")
        self.conn.request("GET", path, headers=headers or {})
        self.resp = self.conn.getresponse()
        self.status = self.resp.status
        ctype = self.resp.getheader("Content-Type", "")
        self.boundary = ctype.split("boundary=", 1)[1].strip() if "boundary=" in ctype else ""

    def parts(self) -> Iterator[Part]:
        if self.status != 200:
            raise http.client.HTTPException("stream answered HTTP %d" % self.status)
        marker = ("--" + self.boundary).encode("ascii")
        while True:
            line = self.resp.readline()
            if not line:
                return  # server closed the stream
            if line.strip() != marker:
                continue
            headers: Dict[str, str] = {}
            while True:
                h = self.resp.readline()
                if not h:
                    return
                if h in (b"\r\n", b"\n"):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            body = self.resp.read(int(headers["content-length"]))
            yield Part(int(headers.get("x-frame-seq", -1)), float(headers.get("x-render-time", 0.0)), body)

    def close(self) -> None:
        self.conn.close()
        self.resp.close()

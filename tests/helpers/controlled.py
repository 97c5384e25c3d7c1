"""A real Pendulum HotReloadPlayer streaming on a loopback port, fed checkpoints of its own network.

Why its own checkpoints: the control tests need several distinct, real rl-games checkpoint files written
while the player runs (a new one, one rewritten in place); the player's own network, nudged per epoch
and saved as rl-games saves, gives them in milliseconds instead of a training run.
"""

import http.client
import json
import os
import threading
import time
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from helpers.players import make_player
from helpers.procs import free_port
from rlg_hotreload.stream import FrameStreamer


def poll_until(fn: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    """``fn()`` until truthy, at most ``timeout`` s (HTTP state has no event to wait on from here)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s" % (timeout, what))
        time.sleep(0.02)


class ControlledRun:
    """``start()``: a player following ``<tmp>/exp`` (a.pth = epoch 1), streaming as ``stream.enabled=true``
    builds it (``streamToken`` = ``token``); ``stop()``. ``overrides``: more ``key=value`` settings."""

    def __init__(self, tmp_path: Any, token: Optional[str] = "s3cret", **overrides: Any) -> None:
        self.token = token
        self.exp = tmp_path / "exp"
        self.nn = self.exp / "nn"
        self.nn.mkdir(parents=True)
        opts = {"reloadInterval": 0.1, "numEnvs": 1, "stream.enabled": "true", "stream.port": free_port(),
                "stream.width": 160, "stream.height": 120, "stream.fps": 10}  # fmt: skip
        if token:
            opts["streamToken"] = token
        opts.update(overrides)
        self.player = make_player(tmp_path, **opts)
        self.streamer = next(cb for cb in self.player.callbacks.callbacks if isinstance(cb, FrameStreamer))
        self.saved: Dict[int, Dict[str, torch.Tensor]] = {}  # epoch -> the weights written
        self.thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None

    # -- checkpoints ---------------------------------------------------------------------------------
    def save(self, name: str, epoch: int) -> None:
        """``nn/<name>`` = the player's initial network nudged by ``epoch`` (written atomically)."""
        state = {k: v.detach().clone() for k, v in self.player.initial_state.items()}
        key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 2)
        state[key] += 0.01 * epoch
        self.saved[epoch] = state
        tmp = self.nn / (name + ".tmp")
        torch.save({"model": state, "epoch": epoch, "frame": 1000 * epoch, "optimizer": {},
                    "last_mean_rewards": float(epoch), "env_state": None}, tmp)  # fmt: skip
        os.replace(tmp, self.nn / name)

    def weights_are(self, epoch: int) -> bool:
        live = self.player.model.state_dict()
        return all(torch.equal(live[k].cpu(), v.cpu()) for k, v in self.saved[epoch].items())

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "ControlledRun":
        self.save("a.pth", 1)

        def play() -> None:
            try:
                self.player.restore(str(self.exp))
                self.player.run()
            except BaseException as e:  # reported by stop()
                self.error = e

        self.thread = threading.Thread(target=play, name="controlled-player", daemon=True)
        self.thread.start()
        poll_until(
            lambda: self.streamer.port is not None and self.status()["steps"] > 0, 60, "the first steps"
        )
        return self

    def stop(self) -> None:
        self.player.request_stop()
        if self.thread is not None:
            self.thread.join(30)
            assert not self.thread.is_alive(), "the player did not stop"
        assert self.error is None, repr(self.error)

    # -- HTTP --------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Optional[bytes] = None,
                headers: Optional[Dict[str, str]] = None, token: bool = True) -> Tuple[int, str]:  # fmt: skip
        h = {"Host": "127.0.0.1:%d" % self.streamer.port}
        if token and self.token:
            h["X-Token"] = self.token
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", self.streamer.port, timeout=15)
        try:
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def post(self, action: str, body: Any = None, **kw: Any) -> Tuple[int, Any]:
        """POST /control/<action> as the page does (JSON body, same origin)."""
        headers = {"Content-Type": "application/json", "Origin": "http://127.0.0.1:%d" % self.streamer.port,
                   "Sec-Fetch-Site": "same-origin"}  # fmt: skip
        headers.update(kw.pop("headers", {}))
        status, text = self.request(
            "POST", "/control/" + action, json.dumps(body or {}).encode(), headers, **kw
        )
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def status(self) -> Dict[str, Any]:
        code, text = self.request("GET", "/status")
        assert code == 200, (code, text)
        return json.loads(text)  # type: ignore[no-any-return]

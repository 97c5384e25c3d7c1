"""Live view of the hot-reloading player: an MJPEG/Flask streamer and an mp4 recorder (callbacks).

``FrameStreamer`` serves the page, the MJPEG stream and a status JSON; ``Recorder`` writes the
first episode(s) after each reload to ``<dir>/<checkpoint label>.mp4``. Both render only while
they need frames, through ``player.grab_frame()`` (the player renders at most once per step).

Why the names are imported lazily (PEP 562): the frame process (:mod:`.frameproc_child`) is a module of
this package and must start without torch and Flask, which the streamer and the recorder import.
"""

import importlib
from typing import Any

_HOMES = {"FrameHub": "hub", "FrameStreamer": "streamer", "StreamerError": "streamer", "Recorder": "recorder"}

__all__ = ["FrameHub", "FrameStreamer", "Recorder", "StreamerError"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError("module %r has no attribute %r" % (__name__, name))
    return getattr(importlib.import_module("rlg_hotreload.stream." + home), name)

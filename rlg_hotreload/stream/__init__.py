"""Live view of the hot-reloading player: an MJPEG/Flask streamer and an mp4 recorder (callbacks).

``FrameStreamer`` serves the page, the MJPEG stream and a status JSON; ``Recorder`` writes the
first episode(s) after each reload to ``<dir>/<checkpoint label>.mp4``. Both render only while
they need frames, through ``player.grab_frame()`` (the player renders at most once per step).
"""

from rlg_hotreload.stream.hub import FrameHub
from rlg_hotreload.stream.recorder import Recorder
from rlg_hotreload.stream.streamer import FrameStreamer, StreamerError

__all__ = ["FrameHub", "FrameStreamer", "Recorder", "StreamerError"]

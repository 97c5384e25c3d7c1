"""Stop signals for a play session: SIGINT, SIGTERM and SIGHUP all end the loop after the current step.

Why SIGHUP too: closing the terminal (or an ssh session dropping) sends it; the player must then print
its summary, finalize recordings and exit 0 like on Ctrl+C, not die mid-write. Why handlers only on the
main thread: Python allows nothing else, and a library user may run the player on any thread.
"""

import signal
import threading
from typing import Any, Callable

STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def install_stop_handlers(stop: threading.Event, announce: Callable[[str], None]) -> Callable[[], None]:
    """Set ``stop`` on the first stop signal (after ``announce(name)``); a second one raises KeyboardInterrupt.

    Returns a function that puts the previous handlers back. A no-op off the main thread.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        announce(signal.Signals(signum).name)
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}

    def restore() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    return restore

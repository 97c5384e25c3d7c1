"""Stop signals for a play session: SIGINT, SIGTERM and SIGHUP all end the loop after the current step.

Why SIGHUP too: closing the terminal (or an ssh session dropping) sends it; the player must then print
its summary, finalize recordings and exit 0 like on Ctrl+C, not die mid-write. Why handlers only on the
main thread: Python allows nothing else, and a library user may run the player on any thread.
"""

import os
import signal
import threading
from typing import Any, Callable

STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def install_stop_handlers(stop: threading.Event, announce: Callable[[str], None]) -> Callable[[], None]:
    """Set ``stop`` on the first stop signal (after ``announce(name)``); a second one raises KeyboardInterrupt.

    Returns a function that puts the previous handlers back. Installing is a no-op off the main thread.
    Putting back may be called from any thread (the player may be restored on the main thread and run on
    another): off the main thread the handlers are only disarmed, and the first signal that arrives puts
    the previous handlers back (handlers always run on the main thread) and is delivered to them.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    armed = threading.Event()
    armed.set()

    def handler(signum: int, frame: Any) -> None:
        if not armed.is_set():
            put_back()
            os.kill(os.getpid(), signum)  # as if these handlers had never been installed
            return
        if stop.is_set():
            raise KeyboardInterrupt
        announce(signal.Signals(signum).name)
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}

    def put_back() -> None:
        for sig, h in old.items():
            signal.signal(sig, h)

    def restore() -> None:
        armed.clear()
        if threading.current_thread() is threading.main_thread():
            put_back()

    return restore

"""``python -m rlg_hotreload.demo``: train BlindGrasping and watch it improve in the browser, one command.

Why a launcher and not threads: training and the monitor are the two processes a user runs in two
terminals (see the seed workflow); the demo starts exactly those two commands, prefixes their output,
prints the URL (read from the monitor's ready file, ``stream.readyFile``: never parsed from its log), and
on Ctrl+C stops both (each exits cleanly on SIGINT).

Why the monitor outlives training: the point is to watch what was learned; when training ends (e.g.
``--max-epochs``) the monitor keeps playing the last checkpoint until Ctrl+C.
Why each child gets its own process group: Ctrl+C in a terminal signals the whole foreground group, and
the player treats a second SIGINT as "stop now" (KeyboardInterrupt); here only the demo receives it and
forwards exactly one SIGINT to each child. A child whose demo dies (even by SIGKILL) gets SIGTERM on Linux.
Why the monitor shares the machine politely: it is niced and paced to real time (``streamRealtime``,
watched or not), and it renders only while a browser watches.
"""

import argparse
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Callable, List, Optional

from rlg_hotreload.readyfile import wait_ready_file


def _pump(stream: IO[str], prefix: str) -> None:
    for line in stream:
        sys.stdout.write("%s %s" % (prefix, line))
        sys.stdout.flush()


PR_SET_PDEATHSIG = 1  # linux/prctl.h
# resolved here, before any fork: the child (between fork and exec) only calls it
_PRCTL: Optional[Callable[..., int]] = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None


def _child_setup(nice: int) -> None:
    """Runs in the child before exec: own process group, lower priority, SIGTERM when the demo dies."""
    os.setpgrp()
    if nice:
        os.nice(nice)
    if _PRCTL is not None:
        _PRCTL(PR_SET_PDEATHSIG, int(signal.SIGTERM))


def _start(args: List[str], prefix: str, nice: int = 0) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    p = subprocess.Popen(
        [sys.executable, "-m", "rlg_hotreload.run", *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        preexec_fn=lambda: _child_setup(nice),
    )  # fmt: skip
    assert p.stdout is not None
    threading.Thread(target=_pump, args=(p.stdout, prefix), daemon=True).start()
    return p


def _wait_for_new_run(train_dir: str, before: Optional[str], proc: subprocess.Popen, timeout: float) -> bool:
    """Until training has pointed ``latest_train`` at its new run (so the monitor follows that run)."""
    link = os.path.join(train_dir, "latest_train")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if os.path.islink(link) and os.readlink(link) != before:
            return True
        time.sleep(0.1)  # polling a path another process creates: no event to wait on
    return False


def _watch(train: subprocess.Popen, monitor: subprocess.Popen, stop: threading.Event) -> int:
    """Until Ctrl+C or the monitor exits; training ending (or failing) leaves the monitor playing.
    Returns the first abnormal exit code of the two (0 if none)."""
    told = False
    while not stop.is_set() and monitor.poll() is None:
        if train.poll() is not None and not told:
            told = True
            print("[demo] Training ended (exit code %s); the monitor keeps playing its last checkpoint. "
                  "Ctrl+C stops it." % train.returncode, flush=True)  # fmt: skip
        stop.wait(0.5)
    for p in (train, monitor):
        if p.poll() is not None and p.returncode not in (0, -signal.SIGINT):
            return p.returncode
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rlg_hotreload.demo", description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="BlindGrasping")
    ap.add_argument(
        "--train-envs", type=int, default=None, help="numEnvs for training (default: train config)"
    )
    ap.add_argument("--port", type=int, default=58080)
    ap.add_argument("--bind-all", action="store_true", help="serve on all interfaces (0.0.0.0)")
    ap.add_argument("--reload-interval", type=float, default=10.0)
    ap.add_argument("--train-dir", default="runs")
    ap.add_argument("--max-epochs", type=int, default=None)
    ap.add_argument(
        "--fps", type=float, default=15.0, help="stream frame cap (rendering costs CPU training needs)"
    )
    ap.add_argument(
        "--ready-file", default=None,
        help="the monitor writes its stream URL here as JSON once serving (default: a temporary file)",
    )  # fmt: skip
    a = ap.parse_args(argv)
    ready_file = a.ready_file or os.path.join(tempfile.mkdtemp(prefix="rlg_demo_"), "stream.json")
    if os.path.exists(ready_file):
        os.remove(ready_file)  # a stale file from an earlier run would give the wrong URL
    common = ["task=%s" % a.task, "trainDir=%s" % a.train_dir]
    train_args = ["config=train_headless", *common]
    if a.train_envs:
        train_args.append("numEnvs=%d" % a.train_envs)
    if a.max_epochs:
        train_args.append("maxEpochs=%d" % a.max_epochs)
    watch_args = ["config=test_stream", *common, "checkpoint=latest", "testGamesNum=0",
                  "reloadInterval=%s" % a.reload_interval, "streamPort=%d" % a.port,
                  "streamBindAll=%s" % str(a.bind_all).lower(), "printStats=false", "streamFps=%s" % a.fps,
                  "streamRealtime=true", "stream.readyFile=%s" % ready_file]  # fmt: skip
    link = os.path.join(a.train_dir, "latest_train")
    before = os.readlink(link) if os.path.islink(link) else None
    procs = [_start(train_args, "[train]")]
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):  # Ctrl+C, kill, the terminal closing
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), on_signal)
    code = 0
    try:
        if not _wait_for_new_run(a.train_dir, before, procs[0], 120):
            code = procs[0].wait(10) or 1
            print("[demo] training did not start (exit code %s)" % code, flush=True)
            return code
        # the monitor yields the CPU to training: niced, and paced to real time watched or not
        procs.append(_start(watch_args, "[watch]", nice=10))
        ready = wait_ready_file(ready_file, 120, alive=lambda: procs[1].poll() is None and not stop.is_set())
        if ready is not None:
            print(
                "\n[demo] Open %s to watch the policy improve. Ctrl+C stops both.\n" % ready["url"],
                flush=True,
            )
        code = _watch(procs[0], procs[1], stop)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    print("[demo] stopped.", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())

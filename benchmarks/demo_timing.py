"""How fast the demo shows learning on this machine: ``python -m rlg_hotreload.demo`` as a user runs it,
with one browser-like client watching the stream the whole time.

    PYTHONPATH=$PWD MUJOCO_GL=egl python benchmarks/demo_timing.py --minutes 5

Reports training's success rate (rl-games' ``scores/time`` TensorBoard scalar, which our observer fills
with BlindGrasping's per-episode success) at 1, 2, 3, 4, 5 minutes of training time and when it first
exceeded 0 and 50 %, the frames per second the watcher received, and the load average before and after.
Ends the demo with one SIGINT to its process group, as Ctrl+C in a terminal does. Writes
``benchmarks/results/demo_timing.json``.
"""

import argparse
import glob
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, print_table, write_result  # noqa: E402


def scores(run_root: str) -> List[Any]:
    """(training seconds, success rate) points of the newest run's ``scores/time``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    dirs = sorted(glob.glob(os.path.join(run_root, "runs", "*", "summaries")), key=os.path.getmtime)
    if not dirs:
        return []
    acc = EventAccumulator(dirs[-1])
    acc.Reload()
    if "scores/time" not in acc.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in acc.Scalars("scores/time")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="how long the demo runs (default 5)")
    ap.add_argument("--task", default="BlindGrasping")
    a = ap.parse_args()
    from rlg_hotreload.readyfile import wait_ready_file
    from rlg_hotreload.stream.client import MjpegClient

    work = tempfile.mkdtemp(prefix="rlg_demo_timing_")
    ready = os.path.join(work, "stream.json")
    load_before = os.getloadavg()
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    log = open(os.path.join(work, "demo.log"), "w")
    p = subprocess.Popen([sys.executable, "-m", "rlg_hotreload.demo", "--task", a.task, "--ready-file", ready,
                          "--port", "58190"], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT,
                         start_new_session=True)  # fmt: skip
    t0 = time.monotonic()
    info = wait_ready_file(ready, 300, alive=lambda: p.poll() is None)
    if info is None:
        p.kill()
        raise SystemExit("the demo did not start; see %s" % os.path.join(work, "demo.log"))
    frames: List[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            try:
                client = MjpegClient(info["url"] + "stream", timeout=10)
                for _ in client.parts():
                    frames.append(time.monotonic())
                    if stop.is_set():
                        break
                client.close()
            except OSError:
                stop.wait(0.5)

    th = threading.Thread(target=watch, daemon=True)
    th.start()
    stop.wait(max(0.0, a.minutes * 60 - (time.monotonic() - t0)))
    load_after = os.getloadavg()
    stop.set()
    os.killpg(p.pid, signal.SIGINT)
    try:
        rc: Optional[int] = p.wait(60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        rc = None
    th.join(15)
    log.close()
    pts = scores(work)
    at = {}
    for m in range(1, int(a.minutes) + 1):
        seen = [v for s, v in pts if s <= m * 60]
        at["%d min" % m] = round(seen[-1], 3) if seen else None
    first = next((s for s, v in pts if v > 0), None)
    half = next((s for s, v in pts if v >= 0.5), None)
    span = [f for f in frames if f - frames[0] > 5] if frames else []
    fps = (len(span) - 1) / (span[-1] - span[0]) if len(span) > 2 else 0.0
    out: Dict[str, Any] = {
        "task": a.task, "minutes": a.minutes, "exit_code": rc, "load_avg_before": load_before,
        "load_avg_after": load_after, "success_at_training_time": at, "first_success_s": first,
        "success_50pct_s": half, "watcher_fps": round(fps, 1), "frames": len(frames), "scores_time": pts,
    }  # fmt: skip
    write_result("demo_timing", out, " ".join(sys.argv))
    print_table([[k, v] for k, v in at.items()] + [
        ["first success (training s)", first], ["50 % success (training s)", half],
        ["watcher fps", out["watcher_fps"]], ["exit code after SIGINT", rc],
        ["load avg before / after", "%s / %s" % (load_before, load_after)],
    ], ["what", "value"])  # fmt: skip


if __name__ == "__main__":
    main()

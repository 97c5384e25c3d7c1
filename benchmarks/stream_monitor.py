"""What watching costs a REAL BlindGrasping monitor: sim steps/s with 0, 1 and 16 MJPEG clients.

Run through ``benchmarks/stream.py --task BlindGrasping`` (see its docstring). One real HotReloadPlayer
(``sim=mujoco``, 1 env, not paced, streaming 640x480 at a 30 fps cap) plays a real rl-games checkpoint
on the main thread; this module's thread measures windows of ``--seconds`` in interleaved, rotated
repeats, each with a fresh reader process holding the clients (their own GIL, like browsers):

- ``0 clients (A)`` and ``0 clients (A')``: the same configuration twice; their ratio is the noise floor;
- ``1 client, process`` and ``16 clients, process``: ``stream.render=process``, the frame process renders
  and encodes env 0's state (the player's process packs the state and receives JPEG bytes);
- ``1 client, thread`` and ``16 clients, thread``: ``stream.render=thread``, the stream's encoder thread
  renders and encodes (the "off-thread" rows of earlier runs);
- ``1 client, player``: ``stream.render=player``, the render on the player thread (before both).

Per window: steps/s, the player thread's CPU time per step (``time.thread_time``; other processes cannot
inflate it), frames/renders/encodes per second, mean render time, client fps, latency from the state
copy to the client, and the 1-minute load average at the start and the end.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Callable, Dict, List, Tuple

from rlg_hotreload.callbacks import PlayerCallback

#: (name, clients, stream.render)
CONFIGS: List[Tuple[str, int, str]] = [
    ("0 clients (A)", 0, "process"),
    ("0 clients (A')", 0, "process"),
    ("1 client, process", 1, "process"),
    ("16 clients, process", 16, "process"),
    ("1 client, thread", 1, "thread"),
    ("16 clients, thread", 16, "thread"),
    ("1 client, player", 1, "player"),
]


class StepClock(PlayerCallback):
    """The step count and the player thread's CPU seconds, read by the bench thread."""

    def __init__(self) -> None:
        self.steps = 0
        self.cpu_s = 0.0
        self.started = threading.Event()
        self.record = False  # while True, each step's wall time is appended to ``durations``
        self.durations: List[float] = []
        self._t = 0.0

    def on_start(self, player: Any) -> None:
        self.started.set()

    def on_step(self, player: Any, step: int) -> None:
        self.steps = step
        self.cpu_s = time.thread_time()
        t = time.perf_counter()
        if self.record:
            self.durations.append(t - self._t)
        self._t = t


def _window(player: Any, clock: StepClock, hub: Any, url: str, name: str, n: int, render: str,
            seconds: float, warmup: float, script: str) -> Dict[str, Any]:  # fmt: skip
    hub.set_render(render)  # the hub's thread switches at its next frame (a frame process lives on)
    proc = None
    if n:
        proc = subprocess.Popen(
            [sys.executable, script, "--reader", url + "stream", str(n), str(seconds + warmup)],
            stdout=subprocess.PIPE,
            text=True,
        )
        if not hub.wait_clients(n, timeout=30):
            raise RuntimeError("%d clients did not connect within 30 s" % n)
    time.sleep(warmup)
    load0 = os.getloadavg()[0]
    s0, c0, t0 = clock.steps, clock.cpu_s, time.perf_counter()
    h0 = (hub.submitted, hub.rendered, hub.encoded, hub.dropped, hub.render_s)
    here0 = player.frames_rendered_here
    if proc is not None:
        clients = json.loads(proc.communicate(timeout=seconds + 60)[0])
    else:
        time.sleep(seconds)
        clients = []
    dt = time.perf_counter() - t0
    steps, cpu = clock.steps - s0, clock.cpu_s - c0
    sub, ren, enc, drop, rs = (a - b for a, b in zip((hub.submitted, hub.rendered, hub.encoded, hub.dropped,
                                                       hub.render_s), h0))  # fmt: skip
    if n:
        hub.wait_clients(0, timeout=30)  # the next window starts with nobody attached
    res: Dict[str, Any] = {
        "config": name, "clients": n, "render": render, "render_info": hub.render_info, "seconds": dt,
        "steps_per_s": steps / dt, "player_cpu_us_per_step": 1e6 * cpu / max(steps, 1),
        "frames_per_s": sub / dt, "renders_off_thread_per_s": ren / dt, "encodes_per_s": enc / dt,
        "renders_on_player_thread_per_s": (player.frames_rendered_here - here0) / dt,
        "dropped_per_s": drop / dt, "render_ms_mean": 1000.0 * rs / ren if ren else None,
        "load1_start": load0, "load1_end": os.getloadavg()[0],
    }  # fmt: skip
    if clients:
        fps, lat = [], []
        for c in clients:
            seqs, times = c["seqs"][1:], c["times"][1:]  # the first part may be an old frame
            if len(times) > 1:
                fps.append((len(seqs) - 1) / (times[-1] - times[0]))
            lat += c["lat"][1:]
        lat.sort()
        res.update(client_fps_mean=statistics.mean(fps) if fps else 0.0, client_fps_min=min(fps, default=0.0))
        if lat:
            res.update(latency_ms_p50=1000 * lat[len(lat) // 2], latency_ms_p95=1000 * lat[int(len(lat) * 0.95)])
    return res


def make_monitor(args: Any) -> Tuple[Any, StepClock, Any, str]:
    """The real monitor the benchmarks watch: (player, its StepClock, its FrameStreamer, checkpoint)."""
    from helpers.procs import free_port
    from helpers.scripted_grasp import save_checkpoint

    from rlg_hotreload import build
    from rlg_hotreload.stream import FrameStreamer

    tmp = tempfile.mkdtemp(prefix="rlg_stream_bench_")
    ckpt = os.path.join(tmp, "exp", "nn", "bg.pth")
    os.makedirs(os.path.dirname(ckpt))
    cfg = build.load_config(
        {"task": "BlindGrasping", "sim": "mujoco", "numEnvs": 1, "checkpoint": os.path.dirname(os.path.dirname(ckpt)), "trainDir": tmp,
         "printStats": False, "reloadInterval": 0, "rl_device": getattr(args, "rl_device", "auto"),
         "stream": {"enabled": True, "port": free_port(), "fps": args.fps, "width": 640, "height": 480}},
        preset="test",
    )  # fmt: skip
    clock = StepClock()
    looks = {k: getattr(args, k, None) for k in ("render_shadow_size", "render_samples")}

    def env_config(params: Dict[str, Any]) -> None:
        for key, value in looks.items():
            if value is not None:
                params["config"]["env_config"][key] = value

    player = build.make_player(cfg, [clock], edit=env_config)
    save_checkpoint(player, ckpt)
    streamer = next(cb for cb in player.callbacks.callbacks if isinstance(cb, FrameStreamer))
    return player, clock, streamer, ckpt


def drive(player: Any, clock: StepClock, ckpt: str, warmup: float, measure: Callable[[], None]) -> None:
    """Play on this thread while ``measure()`` runs on a "bench" thread, from ``warmup`` s after the
    player started; the player stops when it returns, and what it raised is raised here."""
    failure: List[BaseException] = []

    def bench() -> None:
        try:
            if not clock.started.wait(120):
                raise RuntimeError("the player did not start within 120 s")
            time.sleep(warmup)
            measure()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread after the player stops
            failure.append(e)
        finally:
            player.request_stop()

    t = threading.Thread(target=bench, name="bench", daemon=True)
    t.start()
    player.restore(ckpt)
    player.run()
    t.join(60)
    if failure:
        raise failure[0]


def run(args: Any, script: str) -> Dict[str, Any]:
    """Build the monitor, measure every window, print the table; returns the JSON payload."""
    player, clock, streamer, ckpt = make_monitor(args)
    rows: Dict[str, List[Dict[str, Any]]] = {c[0]: [] for c in CONFIGS}

    def measure() -> None:
        for rep in range(args.repeat):  # interleaved, rotated: machine noise hits every config alike
            k = rep % len(CONFIGS)
            for name, n, render in CONFIGS[k:] + CONFIGS[:k]:
                if args.only and name not in args.only and n:
                    continue
                r = _window(player, clock, streamer.hub, streamer.url or "", name, n, render, args.seconds,
                            args.warmup, script)  # fmt: skip
                rows[name].append(r)
                print("  run %d %-22s %7.0f steps/s  load %.2f  %s" % (rep + 1, name, r["steps_per_s"],
                      r["load1_start"], r["render_info"]), flush=True)  # fmt: skip

    drive(player, clock, ckpt, args.warmup, measure)
    return _report(rows, args)


def _median(runs: List[Dict[str, Any]], key: str) -> Any:
    vals = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _report(rows: Dict[str, List[Dict[str, Any]]], args: Any) -> Dict[str, Any]:
    base = _median(rows[CONFIGS[0][0]], "steps_per_s")
    base_cpu = _median(rows[CONFIGS[0][0]], "player_cpu_us_per_step")
    table = []
    for name, _, _ in CONFIGS:
        runs = rows[name]
        if not runs:
            continue
        med = {k: _median(runs, k) for k in runs[0] if isinstance(runs[0][k], (int, float)) and k != "clients"}
        med.update(config=name, clients=runs[0]["clients"], render=runs[0]["render"],
                   sim_ratio=med["steps_per_s"] / base, cpu_ratio=base_cpu / med["player_cpu_us_per_step"],
                   sim_ratio_runs=[r["steps_per_s"] / base for r in runs], repeats=runs)  # fmt: skip
        table.append(med)
    gl = os.environ.get("MUJOCO_GL", "(unset)")
    print("\nBlindGrasping monitor (sim=mujoco, 1 env, unpaced), 640x480 frames, %g fps cap, MUJOCO_GL=%s;"
          " medians of %d runs of %g s; sim x and cpu x relative to '0 clients (A)'" % (
              args.fps, gl, args.repeat, args.seconds))  # fmt: skip
    hdr = "%-22s %8s %6s %18s %7s %6s %6s %7s %6s %7s %7s %7s %6s"
    print(hdr % ("config", "steps/s", "sim x", "sim x runs", "cpu us", "cpu x", "fps", "rend/s", "enc/s",
                 "rend ms", "cli fps", "p95 ms", "load"))  # fmt: skip

    def f(v: Any, fmt: str) -> str:
        return fmt % v if v is not None else "-"

    for r in table:
        print(hdr % (
            r["config"], f(r["steps_per_s"], "%.0f"), f(r["sim_ratio"], "%.2f"),
            " ".join("%.2f" % x for x in r["sim_ratio_runs"]), f(r["player_cpu_us_per_step"], "%.0f"),
            f(r["cpu_ratio"], "%.2f"), f(r["frames_per_s"], "%.1f"),
            f(r["renders_off_thread_per_s"] or r["renders_on_player_thread_per_s"], "%.1f"),
            f(r["encodes_per_s"], "%.1f"), f(r.get("render_ms_mean"), "%.1f"), f(r.get("client_fps_mean"), "%.1f"),
            f(r.get("latency_ms_p95"), "%.0f"), f(r["load1_start"], "%.2f"),
        ))  # fmt: skip
    aa = table[1]["sim_ratio"]
    print("A/A noise floor: %.2f (0 clients twice); load average 1/5/15 min now: %s" % (
        aa, " ".join("%.2f" % x for x in os.getloadavg())))  # fmt: skip
    return {"task": "BlindGrasping", "sim": "mujoco", "num_envs": 1, "fps_cap": args.fps, "size": [640, 480],
            "mujoco_gl": gl, "seconds": args.seconds, "repeat": args.repeat, "aa_ratio": aa, "rows": table}  # fmt: skip

"""Streaming benchmark: delivered fps per client, encodes vs frames, sim slowdown, latency.

One run measures, for 0 (streamer attached, nobody watching), 1, 4 and 16 concurrent MJPEG clients:
- delivered fps per client and the fraction of published frames each client got (target >= 0.95);
- JPEG encodes per second vs frames rendered per second (target: equal, whatever the client count);
- a last row with the env's render replaced by a pre-rendered array ("no render"): the cost of the
  streaming machinery alone, without the cost of rendering (which belongs to the env);
- sim steps/s relative to the same loop with no streamer at all (target >= 0.9), both wall-clock
  ("sim x") and as player-thread CPU time per step ("cpu x"), which other jobs on a shared machine
  cannot disturb;
- render -> client latency p95 on loopback (target <= 50 ms), from the X-Render-Time part header.

The sim is the test stand-in driver (tests/helpers/gym_driver.py: real Pendulum-v1, rgb_array rendering)
plus a 3-layer MLP forward per step, roughly the work the real player does. Clients run in a
separate process (their own GIL), like browsers would.

    python benchmarks/stream.py [--seconds 3] [--repeat 3] [--clients 1 4 16] [--step-us 0 1000]
                                [--out benchmarks/results/stream.json]

``--task BlindGrasping``: instead, what watching costs a REAL BlindGrasping monitor (sim=mujoco, 1 env,
unpaced, 640x480): steps/s with 0 clients (twice: A/A), 1 and 16 clients for each place frames are
drawn (``stream.render``: process, thread) and 1 client rendered on the player thread; see
benchmarks/stream_monitor.py. About 3.5 min. ``--paired``: viewers stay connected while the frames are
switched on and off every second, which separates a few per cent from the monitor's own ±15-30 %
window-to-window swings (benchmarks/stream_paired.py; 3 runs of 20 pairs: about 7 min):

    MUJOCO_GL=egl PYTHONPATH=$PWD python benchmarks/stream.py --task BlindGrasping [--seconds 5]
        [--repeat 3] [--only "1 client, process" ...] [--out benchmarks/results/stream_blind_grasping.json]
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from typing import Any, Dict, List

# Before torch loads: the sim runs in a worker thread, where torch.set_num_threads() of the main
# thread does not apply (OpenMP settings are per thread); 2 spinning OpenMP threads on a shared
# 2-core machine made each policy step 50x slower and the numbers meaningless.
os.environ.setdefault("OMP_NUM_THREADS", "1")
WARMUP_S = 0.5
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]


def reader_main(url: str, n: int, seconds: float) -> None:
    """Child process: n client threads read for `seconds`, then print one JSON line."""
    from rlg_hotreload.stream.client import MjpegClient

    out: List[Dict[str, Any]] = [{} for _ in range(n)]
    start = threading.Barrier(n + 1)

    def one(i: int) -> None:
        c = MjpegClient(url)
        seqs: List[int] = []
        lat: List[float] = []
        times: List[float] = []
        start.wait()
        t_end = time.time() + seconds
        for part in c.parts():
            now = time.time()
            seqs.append(part.seq)
            times.append(now)
            lat.append(now - part.t_render)
            if now >= t_end:
                break
        c.close()
        out[i] = {"seqs": seqs, "times": times, "lat": lat}

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start.wait()
    for t in threads:
        t.join(seconds + 30)
    print(json.dumps(out))


def make_driver(callbacks: list, extra_us: float = 0.0) -> Any:
    import torch
    from helpers.gym_driver import GymDriver

    torch.set_num_threads(1)
    net = torch.nn.Sequential(
        torch.nn.Linear(3, 256),
        torch.nn.ELU(),
        torch.nn.Linear(256, 128),
        torch.nn.ELU(),
        torch.nn.Linear(128, 1),
    )
    d = GymDriver(callbacks)
    step = d.step

    def step_with_policy() -> None:
        with torch.no_grad():
            net(torch.as_tensor(d._obs, dtype=torch.float32).unsqueeze(0))
        step()
        if extra_us:  # emulate a heavier simulator/policy; holds the GIL like a C extension would
            t_end = time.perf_counter() + extra_us * 1e-6
            while time.perf_counter() < t_end:
                pass
        d.cpu_s = time.thread_time()  # player-thread CPU time: immune to other jobs on the machine

    d.step = step_with_policy  # type: ignore[method-assign]
    d.cpu_s = 0.0
    return d


def measure(
    n_clients: int, seconds: float, stream: bool, extra_us: float, static: bool = False
) -> Dict[str, Any]:
    from rlg_hotreload.stream import FrameStreamer

    s = FrameStreamer(port=0, fps=30.0, quality=80) if stream else None
    if s is not None:
        s.start()
    d = make_driver([s] if s else [], extra_us)
    if static:  # isolates the streaming machinery from the env's own render cost (pygame: ~2 ms)
        import numpy as np

        frame = np.asarray(d.env.render())
        d.frame_source = lambda: frame
    d.start()
    t = threading.Thread(target=d.run, kwargs={"max_s": seconds + 60}, daemon=True)
    t.start()
    proc = None
    if n_clients:
        assert s is not None
        proc = subprocess.Popen(
            [sys.executable, __file__, "--reader", s.url + "stream", str(n_clients), str(seconds + WARMUP_S)],
            stdout=subprocess.PIPE,
            text=True,
        )
        s.hub.wait_clients(n_clients, timeout=30)
    time.sleep(WARMUP_S)  # connections settle; the window below ends when the readers finish
    steps0, t0, cpu0 = d.steps, time.perf_counter(), d.cpu_s
    sub0, enc0 = (s.hub.submitted, s.hub.encoded) if s else (0, 0)
    if proc is not None:
        clients = json.loads(proc.communicate(timeout=seconds + 60)[0])
    else:
        time.sleep(seconds)
        clients = []
    dt = time.perf_counter() - t0
    steps, cpu = d.steps - steps0, d.cpu_s - cpu0
    sub, enc = (s.hub.submitted - sub0, s.hub.encoded - enc0) if s else (0, 0)
    d.stop_event.set()
    t.join(10)
    if s is not None:
        s.stop()
    d.env.close()
    res: Dict[str, Any] = {
        "clients": n_clients,
        "stream": stream,
        "static_frame": static,
        "steps_per_s": steps / dt,
        "player_cpu_us_per_step": 1e6 * cpu / max(steps, 1),
        "frames_per_s": sub / dt,
        "encodes_per_s": enc / dt,
    }
    if clients:
        per = []
        lat: List[float] = []
        for c in clients:
            seqs, times = c["seqs"][1:], c["times"][1:]  # first part may be an old frame
            span = seqs[-1] - seqs[0] + 1
            per.append(
                {
                    "fps": (len(seqs) - 1) / (times[-1] - times[0]),
                    "got_fraction": len(set(seqs)) / span,
                }
            )
            lat += c["lat"][1:]
        lat.sort()
        res.update(
            client_fps_min=min(p["fps"] for p in per),
            client_fps_mean=statistics.mean(p["fps"] for p in per),
            got_fraction_min=min(p["got_fraction"] for p in per),
            latency_ms_p50=1000 * lat[len(lat) // 2],
            latency_ms_p95=1000 * lat[int(len(lat) * 0.95)],
        )
    return res


def run_table(args: argparse.Namespace, extra_us: float) -> List[Dict[str, Any]]:
    configs = [(0, False, False), (0, True, False)] + [(n, True, False) for n in args.clients]
    configs.append((max(args.clients), True, True))
    runs: Dict[Any, List[Dict[str, Any]]] = {c: [] for c in configs}
    for rep in range(args.repeat):  # interleaved, rotated repeats: machine noise hits all configs alike
        for n, stream, static in configs[rep % len(configs) :] + configs[: rep % len(configs)]:
            runs[(n, stream, static)].append(measure(n, args.seconds, stream, extra_us, static))
    rows = []
    for c in configs:  # median of each metric over the repeats
        keys = runs[c][0].keys()
        row = {
            k: statistics.median(r[k] for r in runs[c]) if isinstance(runs[c][0][k], float) else runs[c][0][k]
            for k in keys
        }
        row["repeats"] = runs[c]
        row["extra_step_us"] = extra_us
        rows.append(row)
    baseline = rows[0]
    for r in rows:
        r["sim_ratio"] = r["steps_per_s"] / baseline["steps_per_s"]
        cpu = r["player_cpu_us_per_step"]
        r["cpu_ratio"] = baseline["player_cpu_us_per_step"] / cpu if cpu else float("nan")
    print(
        "\nPendulum-v1 + MLP policy%s, 30 fps cap, quality 80, 500x500 frames; medians of %d runs"
        % (" + %.0f us busy work per step" % extra_us if extra_us else "", args.repeat)
    )
    cols = ("config", "steps/s", "sim x", "cpu us", "cpu x", "fps", "enc/s", "cli fps", "cli min", "got min")
    hdr = "%-22s %8s %6s %7s %6s %6s %6s %8s %8s %8s %7s %7s"
    print(hdr % (cols + ("p50 ms", "p95 ms")))
    for r in rows:
        name = "no streamer" if not r["stream"] else "streamer, %d client(s)" % r["clients"]
        if r["static_frame"]:
            name = "%d clients, no render" % r["clients"]

        def get(k: str, f: str = "%.1f", r: Dict[str, Any] = r) -> str:
            return f % r[k] if k in r else "-"

        print(
            hdr
            % (
                name,
                "%.0f" % r["steps_per_s"],
                "%.2f" % r["sim_ratio"],
                "%.0f" % r["player_cpu_us_per_step"],
                "%.2f" % r["cpu_ratio"],
                "%.1f" % r["frames_per_s"],
                "%.1f" % r["encodes_per_s"],
                get("client_fps_mean"),
                get("client_fps_min"),
                get("got_fraction_min", "%.3f"),
                get("latency_ms_p50"),
                get("latency_ms_p95"),
            )
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", choices=("Pendulum-v1", "BlindGrasping"), default="Pendulum-v1")
    ap.add_argument("--seconds", type=float, default=None, help="per window (default 3; BlindGrasping 5)")
    ap.add_argument("--fps", type=float, default=30.0, help="stream fps cap (BlindGrasping)")
    ap.add_argument("--warmup", type=float, default=1.0, help="s before each window (BlindGrasping)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument(
        "--step-us",
        type=float,
        nargs="+",
        default=[0.0, 1000.0],
        help="extra busy work per step (0 = bare Pendulum + MLP, ~50 us; 1000 ~ a MuJoCo task + policy)",
    )
    ap.add_argument("--render-shadow-size", type=int, default=None,
                    help="BlindGrasping: env_config render_shadow_size of the watched frames (default: the task's)")
    ap.add_argument("--render-samples", type=int, default=None,
                    help="BlindGrasping: env_config render_samples (MSAA) of the watched frames (default: the task's)")
    ap.add_argument("--rl-device", default="auto", help="BlindGrasping: the monitor policy's device (auto, cpu, cuda:0)")
    ap.add_argument("--repeat", type=int, default=3, help="interleaved repeats; the table shows medians")
    ap.add_argument("--only", nargs="+", default=None,
                    help="BlindGrasping: watched configs to run (the 0-client A/A rows always run)")
    ap.add_argument("--paired", action="store_true",
                    help="BlindGrasping: frames switched on and off every --half s, viewers connected (stream_paired)")
    ap.add_argument("--pairs", type=int, default=20, help="--paired: on/off pairs per run")
    ap.add_argument("--half", type=float, default=1.0, help="--paired: seconds per half")
    ap.add_argument("--out", default=None, help="default benchmarks/results/stream[_blind_grasping].json")
    args = ap.parse_args()
    if args.seconds is None:
        args.seconds = 5.0 if args.task == "BlindGrasping" else 3.0
    if args.out is None:
        name = "stream_blind_grasping.json" if args.task == "BlindGrasping" else "stream.json"
        name = "stream_blind_grasping_paired.json" if args.paired else name
        args.out = os.path.join(REPO, "benchmarks", "results", name)
    if args.task == "BlindGrasping":
        import stream_monitor  # benchmarks/ is on sys.path: this script's folder
        import stream_paired

        bench = stream_paired if args.paired else stream_monitor
        payload = bench.run(args, os.path.abspath(__file__))
        meta = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine(),
                "host": platform.node(), "command": " ".join(sys.argv)}  # fmt: skip
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump({"meta": meta, **payload}, f, indent=2)
        print("wrote", args.out)
        return

    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    all_rows: List[Dict[str, Any]] = []
    for extra in args.step_us:
        all_rows += run_table(args, extra)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    meta = {"python": platform.python_version(), "cpus": os.cpu_count(), "machine": platform.machine()}
    with open(args.out, "w") as f:
        json.dump({"meta": meta, "seconds": args.seconds, "rows": all_rows}, f, indent=2)
    print("wrote", args.out)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--reader":
        reader_main(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        main()

"""What watching costs a REAL BlindGrasping monitor, measured in pairs of short stretches: frames on, off.

Run through ``benchmarks/stream.py --task BlindGrasping --paired`` (see its docstring). Why pairs: the
steps/s of a 1-env BlindGrasping monitor vary by 15-30 % from one 5-second window to the next on an
idle 16-core machine (a grasp in contact costs more physics than a hand in free air; the policy's GPU
synchronisation jitters), far more than the few per cent that watching costs, so windows of several
configurations, even interleaved, did not separate them (A/A 0.98-1.28x in 3-5 runs).

Here the viewers (a reader process, their own GIL, like browsers) stay connected for a whole run, and
the streamer's frames are switched on and off every ``--half`` seconds (``FrameStreamer.frames_on``) in
the order on, off, off, on, on, off... (a steady drift cancels); the ratio is the steps/s of the "on"
halves over that of the "off" halves of the same run. The A/A row keeps the frames off in both halves
(one viewer connected): its spread is the method's noise floor. Rows are interleaved and rotated.
"""

import os
import statistics
import subprocess
import sys
import time
from typing import Any, Dict, List, Tuple

import psutil
from common import stall_ms_per_frame

#: (name, clients, frames in the "on" halves, FrameStreamer.hold_frames in them)
CONFIGS: List[Tuple[str, int, bool, bool]] = [
    ("A/A (1 client, frames off/off)", 1, False, True),
    ("1 client", 1, True, True),
    ("16 clients", 16, True, True),
    ("1 client, not held", 1, True, False),  # each state drawn at once, next to the policy (before the hold)
]


def _cpu_s(pid: Any) -> float:
    """CPU seconds (user + system, all threads) of process ``pid`` so far; 0.0 if it is gone or unknown."""
    try:
        t = psutil.Process(int(pid)).cpu_times()
    except (psutil.Error, TypeError, ValueError):
        return 0.0
    return t.user + t.system


def _pairs(clock: Any, streamer: Any, n: int, frames: bool, hold: bool, args: Any, script: str) -> Dict[str, Any]:
    hub = streamer.hub
    streamer.hold_frames = hold
    total = 2 * args.pairs * args.half + 2 * args.warmup
    proc = subprocess.Popen([sys.executable, script, "--reader", (streamer.url or "") + "stream", str(n), str(total)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    if not hub.wait_clients(n, timeout=30):
        raise RuntimeError("%d clients did not connect within 30 s" % n)
    streamer.frames_on = True
    time.sleep(args.warmup)  # viewers handed over to the frame process (where it serves them) meanwhile
    load0 = os.getloadavg()[0]
    acc = {True: [0, 0.0, 0.0], False: [0, 0.0, 0.0]}  # half "on" / "off": steps, seconds, player CPU s
    others = {True: [0.0, 0.0], False: [0.0, 0.0]}  # CPU s of the frame process, of the viewers' process
    frame_pid = hub.render_info.get("pid")
    e0, s0, h0 = hub.encoded, hub.sent, getattr(hub, "held", 0)
    durs: Dict[bool, List[float]] = {True: [], False: []}
    drawn = 0
    for k in range(args.pairs):
        for half in (True, False) if k % 2 == 0 else (False, True):
            streamer.frames_on = frames and half
            time.sleep(0.05)  # a frame asked for in the last half lands outside this one
            clock.durations, clock.record = [], True
            steps, cpu, t0 = clock.steps, clock.cpu_s, time.perf_counter()
            e_half = hub.encoded
            frame_pid = hub.render_info.get("pid") or frame_pid  # (started at the first frame)
            fp0, rd0 = _cpu_s(frame_pid), _cpu_s(proc.pid)
            time.sleep(args.half)
            others[half][0] += _cpu_s(frame_pid) - fp0
            others[half][1] += _cpu_s(proc.pid) - rd0
            a = acc[half]
            a[0] += clock.steps - steps
            a[1] += time.perf_counter() - t0
            a[2] += clock.cpu_s - cpu
            clock.record = False
            durs[half] += clock.durations
            drawn += hub.encoded - e_half if half else 0
    streamer.frames_on = streamer.hold_frames = True
    encoded, sent, held = hub.encoded - e0, hub.sent - s0, getattr(hub, "held", 0) - h0
    proc.communicate(timeout=total + 60)
    hub.wait_clients(0, timeout=30)  # the next run starts with nobody attached
    (son, ton, con), (soff, toff, coff) = acc[True], acc[False]
    return {
        "clients": n, "frames": frames, "hold": hold, "ratio": (son / ton) / (soff / toff),
        # A/A: as many of the longest steps as 30 fps would draw frames: the metric's own floor
        "stall_ms_per_frame": stall_ms_per_frame(durs[True], durs[False], drawn if frames else round(args.fps * ton)),
        "cpu_ratio": (coff / max(soff, 1)) / (con / max(son, 1)),
        # share of one core used by the frame process and by the viewers' (reader) process, halves on / off
        "frameproc_cores_on": others[True][0] / ton, "frameproc_cores_off": others[False][0] / toff,
        "viewers_cores_on": others[True][1] / ton, "viewers_cores_off": others[False][1] / toff,
        "steps_per_s_on": son / ton, "steps_per_s_off": soff / toff,
        "encodes_per_s_on": encoded / ton, "sends_per_s_on": sent / ton, "held_per_s_on": held / ton, "handed_over": getattr(hub, "handed_over", 0),  # (absent before the hand-over: A/B runs)
        "render_info": hub.render_info, "load1_start": load0, "load1_end": os.getloadavg()[0],
    }  # fmt: skip


def run(args: Any, script: str) -> Dict[str, Any]:
    """Build the monitor, run every configuration ``args.repeat`` times, print the table; the JSON payload."""
    from stream_monitor import drive, make_monitor

    player, clock, streamer, ckpt = make_monitor(args)
    configs = [c for c in CONFIGS if not c[2] or args.only is None or c[0] in args.only]  # A/A always runs
    rows: Dict[str, List[Dict[str, Any]]] = {c[0]: [] for c in configs}

    def measure() -> None:
        for rep in range(args.repeat):  # interleaved, rotated
            k = rep % len(configs)
            for name, n, frames, hold in configs[k:] + configs[:k]:
                r = _pairs(clock, streamer, n, frames, hold, args, script)
                rows[name].append(r)
                print("  run %d %-32s on/off %.3f  (%5.0f / %5.0f steps/s)  stall %.2f ms/frame  cores: frame "
                      "process %.2f, viewers %.2f  load %.2f" % (
                    rep + 1, name, r["ratio"], r["steps_per_s_on"], r["steps_per_s_off"], r["stall_ms_per_frame"],
                    r["frameproc_cores_on"], r["viewers_cores_on"], r["load1_start"]), flush=True)  # fmt: skip

    drive(player, clock, ckpt, args.warmup, measure)
    table = []
    print("\nBlindGrasping monitor (sim=mujoco, 1 env, unpaced), 640x480 at %g fps, policy on %s, MUJOCO_GL=%s;"
          " %d runs of %d pairs of %g s halves" % (args.fps, args.rl_device, os.environ.get("MUJOCO_GL", "(unset)"),
                                                   args.repeat, args.pairs, args.half))  # fmt: skip
    print("%-32s %8s %22s %7s %9s %8s %8s %7s %9s %10s %9s" % ("config", "on/off", "runs", "cpu x", "steps/s",
                                                               "enc/s", "sends/s", "load", "stall ms", "framep. c",
                                                               "viewers c"))  # fmt: skip
    for name, _, _, _ in configs:
        runs = rows[name]
        med = {k: statistics.median(r[k] for r in runs) for k in ("ratio", "cpu_ratio", "steps_per_s_off",
                                                                  "encodes_per_s_on", "sends_per_s_on", "load1_start",
                                                                  "stall_ms_per_frame", "frameproc_cores_on",
                                                                  "viewers_cores_on")}  # fmt: skip
        table.append(dict(med, config=name, ratio_runs=[r["ratio"] for r in runs], repeats=runs))
        print("%-32s %8.3f %22s %7.3f %9.0f %8.1f %8.1f %7.2f %9.2f %10.2f %9.2f" % (
            name, med["ratio"], " ".join("%.3f" % r["ratio"] for r in runs), med["cpu_ratio"],
            med["steps_per_s_off"], med["encodes_per_s_on"], med["sends_per_s_on"], med["load1_start"],
            med["stall_ms_per_frame"], med["frameproc_cores_on"], med["viewers_cores_on"]))  # fmt: skip
    print("load average 1/5/15 min now: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    return {"task": "BlindGrasping", "sim": "mujoco", "num_envs": 1, "fps_cap": args.fps, "size": [640, 480],
            "method": "paired halves", "pairs": args.pairs, "half_s": args.half, "repeat": args.repeat,
            "rl_device": args.rl_device, "render_shadow_size": getattr(args, "render_shadow_size", None),
            "render_samples": getattr(args, "render_samples", None),
            "rows": table}  # fmt: skip

"""What one frame drawn by ANOTHER process on the same GPU costs a 1-env monitor whose policy is on that GPU.

Usage (GPU machine): PYTHONPATH=$PWD MUJOCO_GL=egl python benchmarks/draw_contention.py \
           [--variants none,full,msaa0,...] [--pairs 16] [--half 0.5] [--repeat 3] \
           [--rl-device cuda:0] [--fps 30] [--drawer-nice N] [--out NAME]

Why this exists next to ``stream.py --paired``: that benchmark measures the whole monitor (rl-games
player, hub, frame process, viewers) and found the cost of watching to sit in the GL draw (benchmarks.md
§5); its per-run noise (sd ~0.034) is as large as the effects left to explain. Here the monitor is
reduced to its hot loop, which is what the draw competes with: the REAL BlindGrasping env (MuJoCo on
the CPU, 1 env) stepped with actions from an MLP of the task's size ([128, 128, 64], elu) on
``--rl-device``, observations and actions crossing to the device and back each step as in the player.
A drawer process (its own GL context, as the stream's frame process) draws the task's frame renderer at
``--fps`` when told to, in one of these ways (``--variants``):

- ``none``: the drawer runs and draws nothing (the A/A row: the method's noise floor);
- ``full``: what the frame process does per frame: ``mj_forward``, the scene, ``mjr_render``, the
  pixels read back, a JPEG encode;
- ``msaa0`` / ``msaa2``: as ``full`` with the offscreen buffer's multisampling off / at 2 samples
  (``vis.quality.offsamples``; the asset's is MuJoCo's default, 4);
- ``shadow1024``: as ``full`` with a 1024² shadow map (the asset's is 2048²);
- ``noshadow`` / ``norefl`` / ``plain``: as ``full`` without shadows / the floor's reflection / both
  (scene flags); ``bare``: ``plain`` and ``msaa0``;
- ``offsize`` / ``offsize1024``: as ``full`` / ``shadow1024`` with the offscreen buffer of the frame's
  size (640x480) instead of the asset's (1280x960);
- ``s1024msaa2`` / ``s1024msaa0``: ``shadow1024`` with 2x / no multisampling; ``shadow512``: a 512² map;
- ``ss2``: ``s1024msaa0`` drawn at twice the width and height, then halved (2x2 pixels averaged: Pillow);
- ``tiny``: a 1x1 rectangle drawn and 1 pixel read back: GL's smallest round trip (context switch);
- ``cpu``: ``full``'s CPU part only (``mj_forward``, the scene, an encode of the last frame), no GL;
- ``lowprio``: as ``full`` from a context asking ``EGL_IMG_context_priority`` LOW (printed: granted?).

Steps/s are counted in halves switched on/off in the order on, off, off, on, ... (a drift cancels);
each row's ratio is on/off, its median over ``--repeat`` runs. ``--drawer-nice`` renices the drawer. Also printed: the player time one
frame costs (ms), and the step-time tail in "on" vs "off" halves (one long stall per frame, or a
spread cost?).
"""

import argparse
import ctypes
import json
import os
import pickle
import queue
import select
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import stall_ms_per_frame  # noqa: E402

#: variant -> (offsamples or None = the asset's, shadowsize or None, shadows, reflections, offscreen buffer
#: of the frame's size instead of the asset's); "none", "tiny", "cpu" and "lowprio" are handled by name
LOOKS = {"full": (None, None, True, True, False), "msaa0": (0, None, True, True, False),
         "msaa2": (2, None, True, True, False), "shadow1024": (None, 1024, True, True, False),
         "noshadow": (None, None, False, True, False), "norefl": (None, None, True, False, False),
         "plain": (None, None, False, False, False), "bare": (0, None, False, False, False),
         "offsize": (None, None, True, True, True), "offsize1024": (None, 1024, True, True, True),
         "s1024msaa2": (2, 1024, True, True, False), "s1024msaa0": (0, 1024, True, True, False),
         "shadow512": (None, 512, True, True, False), "ss2": (0, 1024, True, True, False),
         "lowprio": (None, None, True, True, False), "cpu": (None, None, True, True, False)}  # fmt: skip
VARIANTS = ("none", "tiny") + tuple(LOOKS)


# ---------------------------------------------------------------------------------------------- drawer
def _low_priority_contexts() -> None:
    """Make MuJoCo's EGL contexts ask for EGL_IMG_context_priority LOW (attribute 0x3100 = 0x3103)."""
    import mujoco.egl as megl

    create = megl.EGL.eglCreateContext

    def low(display: Any, config: Any, share: Any, attrs: Any) -> Any:
        return create(display, config, share, (ctypes.c_int * 3)(0x3100, 0x3103, 0x3038))  # EGL_NONE

    megl.EGL.eglCreateContext = low


def _granted_priority() -> str:
    import mujoco.egl as megl

    ctx, v = megl.EGL.eglGetCurrentContext(), ctypes.c_int(0)
    megl.EGL.eglQueryContext(megl.EGL_DISPLAY, ctx, 0x3100, ctypes.byref(v))
    ext = megl.EGL.eglQueryString(megl.EGL_DISPLAY, megl.EGL.EGL_EXTENSIONS)
    has = b"EGL_IMG_context_priority" in (ext if isinstance(ext, bytes) else str(ext).encode())
    return "extension %s, granted 0x%x (LOW 0x3103, MEDIUM 0x3102)" % ("offered" if has else "absent", v.value)


def drawer(variant: str, renderer_path: str, fps: float, nice: int = 0) -> None:
    """Draw at ``fps`` while the last line read from stdin is "1"; "q" ends it (prints a JSON summary)."""
    import mujoco
    import numpy as np
    from PIL import Image

    from rlg_hotreload.stream.frames import encode_jpeg

    if variant == "lowprio":
        _low_priority_contexts()
    if nice:
        os.nice(nice)
    with open(renderer_path, "rb") as f:
        frame_renderer, flat = pickle.load(f)
    state = frame_renderer.unpack(flat)
    m = frame_renderer.model
    d = mujoco.MjData(m)
    d.qpos[:], d.mocap_pos[:], d.mocap_quat[:] = state.qpos, state.mocap_pos, state.mocap_quat
    samples, shadowsize, shadows, reflections, offsize = LOOKS.get(variant, LOOKS["full"])
    if samples is not None:
        m.vis.quality.offsamples = samples
    if shadowsize is not None:
        m.vis.quality.shadowsize = shadowsize
    h, w = frame_renderer.cfg.render_height, frame_renderer.cfg.render_width
    if offsize:
        m.vis.global_.offwidth, m.vis.global_.offheight = w, h
    note = ""
    if variant == "tiny":  # a context of its own: 1x1 offscreen, one rectangle, one pixel back
        gl = mujoco.GLContext(w, h)
        gl.make_current()
        mjr = mujoco.MjrContext(m, mujoco.mjtFontScale.mjFONTSCALE_150)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, mjr)
        dot, rect = np.zeros((1, 1, 3), np.uint8), mujoco.MjrRect(0, 0, 1, 1)
    else:
        ss = 2 if variant == "ss2" else 1
        renderer = mujoco.Renderer(m, ss * h, ss * w)
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
        renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = reflections
        mujoco.mj_forward(m, d)
        renderer.update_scene(d, camera="front")
        pixels = renderer.render()
        if variant == "lowprio":
            note = _granted_priority()
    print(json.dumps({"ready": True, "note": note}), flush=True)
    on, frames, busy, period = False, 0, 0.0, 1.0 / fps
    due = time.perf_counter()
    lines: "queue.Queue[str]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x.strip()) for x in sys.stdin] + [lines.put("q")], daemon=True).start()
    while True:
        wait = max(0.0, due - time.perf_counter()) if on else None
        try:
            line = lines.get(timeout=wait)
        except queue.Empty:
            line = None
        if line is not None:
            if line == "q":
                break
            on, due = line == "1", time.perf_counter()
            continue
        t0 = time.perf_counter()
        if variant == "tiny":
            mujoco.mjr_rectangle(rect, 0.5, 0.5, 0.5, 1.0)
            mujoco.mjr_readPixels(dot, None, rect, mjr)
        elif variant != "none":
            mujoco.mj_forward(m, d)
            renderer.update_scene(d, camera="front")
            if variant != "cpu":
                pixels = renderer.render()
            if variant == "ss2":
                pixels = np.asarray(Image.fromarray(pixels).reduce(2))
            encode_jpeg(pixels, 80, None)
        busy += time.perf_counter() - t0
        frames += 1
        due += period
        if due < time.perf_counter():  # a slow frame: no catching up in a burst
            due = time.perf_counter() + period
    print(json.dumps({"frames": frames, "ms_per_frame": 1000.0 * busy / max(frames, 1)}), flush=True)


# ---------------------------------------------------------------------------------------------- player
class Loop:
    """The monitor's hot loop on the main thread; ``steps`` and the step durations are read by the bench."""

    def __init__(self, rl_device: str) -> None:
        import torch

        import isaacgym_tasks

        self.torch = torch
        self.env = isaacgym_tasks.make_env(1, sim="mujoco", sim_device="cpu", rl_device=rl_device)
        obs = self.env.reset()
        obs = obs["obs"] if isinstance(obs, dict) else obs
        n_act = 9
        layers: List[Any] = []
        width = obs.shape[-1]
        for units in (128, 128, 64):
            layers += [torch.nn.Linear(width, units), torch.nn.ELU()]
            width = units
        self.mlp = torch.nn.Sequential(*layers, torch.nn.Linear(width, n_act)).to(rl_device).eval()
        self.obs = obs
        self.steps = 0
        self.durations: List[float] = []
        self.record = False
        self.stop = threading.Event()

    def run(self) -> None:
        torch, t_prev = self.torch, time.perf_counter()
        with torch.no_grad():
            while not self.stop.is_set():
                act = self.mlp(self.obs).clamp(-1.0, 1.0)
                out = self.env.step(act)
                self.obs = out[0]["obs"] if isinstance(out[0], dict) else out[0]
                self.steps += 1
                t = time.perf_counter()
                if self.record:
                    self.durations.append(t - t_prev)
                t_prev = t


def _tail(durs: List[float]) -> Dict[str, float]:
    s = sorted(durs)
    return {"p50_ms": 1e3 * s[len(s) // 2], "p99_ms": 1e3 * s[int(0.99 * (len(s) - 1))], "max_ms": 1e3 * s[-1]}


def _line(proc: "subprocess.Popen[str]", timeout: float) -> Dict[str, Any]:
    """The drawer's next JSON line, waiting at most ``timeout`` s ({} when none came)."""
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], timeout)[0]:
        return {}
    return json.loads(proc.stdout.readline() or "{}")


def _run_variant(loop: Loop, variant: str, renderer_path: str, args: Any) -> Dict[str, Any]:
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--drawer", variant, "--renderer", renderer_path,
                             "--fps", str(args.fps), "--drawer-nice", str(args.drawer_nice)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    hello = _line(proc, 120)
    if not hello.get("ready"):
        raise RuntimeError("drawer %s did not start" % variant)

    def say(x: str) -> None:
        proc.stdin.write(x + "\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]

    say("1")
    time.sleep(args.warmup)
    acc = {True: [0, 0.0], False: [0, 0.0]}
    durs: Dict[bool, List[float]] = {True: [], False: []}
    load0 = os.getloadavg()[0]
    for k in range(args.pairs):
        for half in (True, False) if k % 2 == 0 else (False, True):
            say("1" if half and variant != "none" else "0")
            time.sleep(0.05)  # the switch settles (outside the measured stretch)
            loop.durations, loop.record = [], True
            s0, t0 = loop.steps, time.perf_counter()
            time.sleep(args.half)
            acc[half][0] += loop.steps - s0
            acc[half][1] += time.perf_counter() - t0
            loop.record = False
            durs[half] += loop.durations
    say("1")
    say("q")
    summary = _line(proc, 60)
    proc.wait(30)
    on, off = acc[True][0] / acc[True][1], acc[False][0] / acc[False][1]
    ratio = on / off
    drawn = 0 if variant == "none" else int(round(args.fps * acc[True][1]))
    return {"variant": variant, "stall_ms_per_frame": stall_ms_per_frame(durs[True], durs[False], drawn), "ratio": ratio, "steps_per_s_on": on, "steps_per_s_off": off,
            "ms_lost_per_frame": (1.0 - ratio) * 1000.0 / args.fps, "drawer_ms_per_frame": summary.get("ms_per_frame"),
            "tail_on": _tail(durs[True]), "tail_off": _tail(durs[False]), "note": hello.get("note", ""),
            "load1_start": load0}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", default="none,full,msaa0,plain,tiny,cpu,lowprio")
    p.add_argument("--pairs", type=int, default=16)
    p.add_argument("--half", type=float, default=0.5)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--fps", type=float, default=30.0)
    p.add_argument("--rl-device", default="cuda:0")
    p.add_argument("--drawer-nice", type=int, default=0, help="the drawer process's niceness increment")
    p.add_argument("--out", default=None, help="results JSON name in benchmarks/results/")
    p.add_argument("--drawer", default=None, help=argparse.SUPPRESS)
    p.add_argument("--renderer", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.drawer:
        drawer(args.drawer, args.renderer, args.fps, args.drawer_nice)
        return
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        print("--variants: unknown %s; allowed: %s" % (", ".join(bad), ", ".join(VARIANTS)), file=sys.stderr)
        sys.exit(2)
    if "none" not in variants:
        variants.insert(0, "none")
    loop = Loop(args.rl_device)
    renderer = loop.env.make_frame_renderer()
    flat = __import__("numpy").zeros(renderer.state_size)
    renderer.pack(loop.env.render_state(), flat)
    renderer_path = os.path.join(tempfile.mkdtemp(prefix="rlg_draw_"), "renderer.pkl")
    with open(renderer_path, "wb") as f:
        pickle.dump((renderer, flat), f)
    rows: Dict[str, List[Dict[str, Any]]] = {v: [] for v in variants}
    failure: List[BaseException] = []

    def bench() -> None:
        try:
            time.sleep(args.warmup)
            for rep in range(args.repeat):
                k = rep % len(variants)
                for v in variants[k:] + variants[:k]:
                    r = _run_variant(loop, v, renderer_path, args)
                    rows[v].append(r)
                    print("  run %d %-10s on/off %.3f  %5.0f/%5.0f steps/s  %.2f ms/frame lost  stall %.2f ms  draw %.2f ms  "
                          "p99 on/off %.2f/%.2f ms  %s" % (rep + 1, v, r["ratio"], r["steps_per_s_on"], r["steps_per_s_off"],
                          r["ms_lost_per_frame"], r["stall_ms_per_frame"], r["drawer_ms_per_frame"] or 0.0, r["tail_on"]["p99_ms"],
                          r["tail_off"]["p99_ms"], r["note"]), flush=True)  # fmt: skip
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            failure.append(e)
        finally:
            loop.stop.set()

    t = threading.Thread(target=bench, daemon=True)
    t.start()
    loop.run()
    t.join(60)
    if failure:
        raise failure[0]
    print("\n1-env BlindGrasping loop, policy MLP on %s; a drawer process at %g fps; %d runs of %d pairs of %g s"
          % (args.rl_device, args.fps, args.repeat, args.pairs, args.half))
    print("%-10s %8s %24s %10s %9s %9s %9s" % ("variant", "on/off", "runs", "ms lost/fr", "stall ms", "draw ms",
                                              "steps/s"))
    table = []
    for v in variants:
        runs = rows[v]
        med = statistics.median(r["ratio"] for r in runs)
        lost = statistics.median(r["ms_lost_per_frame"] for r in runs)
        draw = statistics.median(r["drawer_ms_per_frame"] or 0.0 for r in runs)
        stall = statistics.median(r["stall_ms_per_frame"] for r in runs)
        sps = statistics.median(r["steps_per_s_off"] for r in runs)
        table.append({"variant": v, "ratio": med, "ms_lost_per_frame": lost, "stall_ms_per_frame": stall, "drawer_ms_per_frame": draw,
                      "steps_per_s_off": sps, "runs": runs})  # fmt: skip
        print("%-10s %8.3f %24s %10.2f %9.2f %9.2f %9.0f" % (v, med, " ".join("%.3f" % r["ratio"] for r in runs), lost,
                                                           stall, draw, sps))
    print("load average 1/5/15 min now: %s" % " ".join("%.2f" % x for x in os.getloadavg()))
    if args.out:
        from common import write_result

        dev = args.rl_device
        if dev.startswith("cuda"):
            import torch

            dev = "%s (%s)" % (dev, torch.cuda.get_device_name(torch.device(dev)))
        path = write_result(args.out, {"device": dev, "fps": args.fps, "pairs": args.pairs, "half_s": args.half,
                                       "repeat": args.repeat, "rows": table}, " ".join(sys.argv))  # fmt: skip
        print("wrote", path)


if __name__ == "__main__":
    main()

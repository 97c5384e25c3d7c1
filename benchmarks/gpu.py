"""BlindGrasping on a GPU (issue 8): MuJoCo Warp speed, PPO to 80 % success, hot reload and stream on CUDA.

Run on the GPU machine, from the project root:

    python benchmarks/gpu.py --stage speed            # env vs raw physics vs the CPU backend
    python benchmarks/gpu.py --stage train --seconds 240   # PPO + a streaming HotReloadPlayer on cuda:0

Each stage prints a table and merges its figures into ``benchmarks/results/gpu.json`` (with the GPU's
name). ``--out DIR`` also writes the JSON there (the device tool brings back what is under $OUT).
Speeds exclude the policy; "after compile" = wall clock from the backend's "ready" log line.
"""

import argparse
import glob
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import REPO, RESULTS, machine, print_table  # noqa: E402

os.environ.setdefault("MUJOCO_GL", "egl")
import torch  # noqa: E402

CUDA = "cuda:0"


def _timed_steps(env: Any, actions: List[torch.Tensor], steps: int) -> float:
    for k in range(10):  # warm-up: allocator, first resets
        env.step(actions[k % len(actions)])
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for k in range(steps):
        env.step(actions[k % len(actions)])
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def mjwarp_env_speed(n: int, steps: int) -> Tuple[float, int]:
    """Control steps/s of the MuJoCo Warp env with task math and resets (random actions, no policy)."""
    import isaacgym_tasks

    env = isaacgym_tasks.make_env(n, sim="mjwarp", sim_device=CUDA, rl_device=CUDA, seed=0)
    g = torch.Generator(device=CUDA).manual_seed(0)
    actions = [torch.rand(n, 9, device=CUDA, generator=g) * 2 - 1 for _ in range(16)]
    dt = _timed_steps(env, actions, steps)
    substeps = env.substeps
    env.close()
    return n * steps / dt, substeps


def raw_physics_speed(n: int, steps: int) -> float:
    """Physics steps/s of bare ``mujoco_warp.step`` on the same MJCF, one CUDA graph per step."""
    import mujoco
    import mujoco_warp as mjw
    import warp as wp

    from isaacgym_tasks.asset import ASSET_PATH
    from isaacgym_tasks.mjwarp_backend import NCONMAX, NJMAX

    mjm = mujoco.MjModel.from_xml_path(ASSET_PATH)
    with wp.ScopedDevice(CUDA):
        m = mjw.put_model(mjm)
        d = mjw.make_data(mjm, nworld=n, nconmax=NCONMAX, njmax=NJMAX)  # as the env allocates
        lo, hi = (torch.tensor(mjm.actuator_ctrlrange[:, i], device=CUDA) for i in (0, 1))
        ctrl = wp.to_torch(d.ctrl)
        ctrl.copy_(lo + (hi - lo) * torch.rand(n, mjm.nu, device=CUDA))  # random targets per world
        torch.cuda.synchronize()
        mjw.step(m, d)
        with wp.ScopedCapture() as cap:
            mjw.step(m, d)
        wp.synchronize()
        t0 = time.perf_counter()
        for _ in range(steps):
            wp.capture_launch(cap.graph)
        wp.synchronize()
        return n * steps / (time.perf_counter() - t0)


def cpu_env_speed(n: int, steps: int) -> float:
    """Control steps/s of the MuJoCo (CPU) backend, all cores, same actions."""
    import isaacgym_tasks

    threads = os.cpu_count() or 1
    env = isaacgym_tasks.make_env(n, sim="mujoco", rl_device="cpu", seed=0, num_threads=threads)
    g = torch.Generator().manual_seed(0)
    actions = [torch.rand(n, 9, generator=g) * 2 - 1 for _ in range(16)]
    for k in range(3):
        env.step(actions[k])
    t0 = time.perf_counter()
    for k in range(steps):
        env.step(actions[k % 16])
    dt = time.perf_counter() - t0
    env.close()
    return n * steps / dt


def stage_speed(args: argparse.Namespace) -> Dict[str, Any]:
    started = time.perf_counter()
    env_sps, substeps = mjwarp_env_speed(args.num_envs, args.steps)  # the first call compiles kernels
    raw = raw_physics_speed(args.num_envs, args.steps * substeps)
    cpu = cpu_env_speed(args.cpu_envs, 20)
    big = {n: mjwarp_env_speed(n, args.steps)[0] for n in (1024, 16384)}
    out = {
        "num_envs": args.num_envs,
        "substeps": substeps,
        "mjwarp_env_steps_per_s": round(env_sps),
        "raw_physics_steps_per_s": round(raw),
        "env_vs_raw_over_substeps": round(env_sps / (raw / substeps), 3),
        "cpu_env_steps_per_s": round(cpu),
        "cpu_num_envs": args.cpu_envs,
        "cpu_threads": os.cpu_count(),
        "gpu_vs_cpu": round(env_sps / cpu, 1),
        "mjwarp_env_steps_per_s_by_num_envs": {str(k): round(v) for k, v in big.items()},
        "stage_wall_s": round(time.perf_counter() - started, 1),
    }
    print_table(
        [
            ["MuJoCo Warp env (task math, resets)", args.num_envs, "%.0f" % env_sps],
            ["raw mujoco_warp.step / substeps", args.num_envs, "%.0f" % (raw / substeps)],
            ["MuJoCo CPU env (%d threads)" % (os.cpu_count() or 1), args.cpu_envs, "%.0f" % cpu],
        ]
        + [["MuJoCo Warp env", k, "%.0f" % v] for k, v in big.items()],
        ["what", "envs", "control steps/s"],
    )
    return out


# -- training, hot reload, stream ------------------------------------------------------------------------
class Proc:
    """A CLI subprocess whose output lines are kept with their arrival times."""

    def __init__(self, args: List[str], cwd: str, log_path: str, launcher: Sequence[str] = ()) -> None:
        import subprocess

        env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.lines: List[Tuple[float, str]] = []
        self.log = open(log_path, "w")
        self.p = subprocess.Popen(
            [sys.executable, *launcher, "-m", "rlg_hotreload.run", *args],  # launcher: e.g. torchrun's module
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1,
        )  # fmt: skip
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append((time.time(), line.rstrip("\n")))
            self.log.write(line)
            self.log.flush()

    def wait_for(self, pattern: str, timeout: float) -> Optional[Tuple[float, str]]:
        rx = re.compile(pattern)
        deadline = time.time() + timeout
        seen = 0
        while time.time() < deadline:
            for t, line in self.lines[seen:]:
                if rx.search(line):
                    return t, line
            seen = len(self.lines)
            if self.p.poll() is not None and seen == len(self.lines):
                return None
            time.sleep(0.2)
        return None

    def stop(self, timeout: float = 20.0) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(timeout)
            except Exception:  # noqa: BLE001 - any failure to stop politely ends in a kill
                self.p.kill()
                self.p.wait(5)
        self.t.join(5)
        self.log.close()
        return int(self.p.returncode)


def _fps_lines(lines: List[Tuple[float, str]], t0: float, t1: float) -> List[float]:
    rx = re.compile(r"fps total:\s*([0-9.]+)")
    return [float(m.group(1)) for t, ln in lines if t0 <= t < t1 for m in [rx.search(ln)] if m]


def evaluate(ckpt: str, num_envs: int, seed: int) -> Tuple[float, float]:
    """Deterministic policy of ``ckpt`` for one episode in each of ``num_envs`` fresh envs:
    (success rate, mean reward)."""
    from rl_games.torch_runner import Runner

    from rlg_hotreload import build

    cfg = build.load_config(["task=BlindGrasping", "sim=mjwarp", "test=true", "numEnvs=%d" % num_envs,
                             "seed=%d" % seed, "checkpoint=%s" % ckpt])  # fmt: skip
    # the stock player (its model and get_action are all that is used): drop our player from params
    params = build.make_params(cfg, edit=lambda p: p["algo"].pop("player"))
    runner = Runner()
    runner.load({"params": params})
    player = runner.create_player()
    state = torch.load(ckpt, map_location=CUDA, weights_only=False)  # our own training's file
    player.model.load_state_dict(state["model"])
    env = player.env
    obs = env.reset()
    player.get_batch_size(obs, 1)  # tells the stock player its input is batched
    finished = torch.zeros(num_envs, dtype=torch.bool, device=CUDA)
    success = torch.zeros(num_envs, dtype=torch.bool, device=CUDA)
    reward = torch.zeros(num_envs, device=CUDA)
    while not bool(finished.all()):
        obs, r, done, info = env.step(player.get_action(obs, True))
        live = ~finished
        reward += r * live
        success |= info["successes"].bool() & live
        finished |= done.bool()
    env.close()
    return float(success.float().mean()), float(reward.mean())


def stage_train(args: argparse.Namespace) -> Dict[str, Any]:
    from rlg_hotreload.stream.client import MjpegClient

    work = tempfile.mkdtemp(prefix="gpu_bench_")
    logs = args.out or work
    train = Proc(["config=train_headless", "task=BlindGrasping", "sim=mjwarp", "maxEpochs=100000"],
                 work, os.path.join(logs, "train.log"))  # fmt: skip
    ready = train.wait_for(r"MuJoCo Warp: ready", 900)
    if ready is None:
        train.stop()
        raise SystemExit("training did not start; see %s" % os.path.join(logs, "train.log"))
    t_ready = ready[0]
    # thirds: training alone | + a HotReloadPlayer on cuda:0 following it | + one client watching it
    t_monitor, t_watch = t_ready + args.seconds / 3, t_ready + 2 * args.seconds / 3
    while time.time() < t_monitor:
        time.sleep(1)
    if args.monitor_sim == "none":  # A/A: training alone in all three thirds (how much speed drifts by itself)
        while time.time() < t_ready + args.seconds:
            time.sleep(1)
        train.stop()
        thirds = [_fps_lines(train.lines, a + 10, b) for a, b in ((t_ready, t_monitor), (t_monitor, t_watch),
                                                                   (t_watch, t_ready + args.seconds))]
        med = [statistics.median(x) if x else None for x in thirds]
        print("training alone, thirds:", med)
        return {"monitor": "none (A/A)", "train_fps_total_thirds_median": med,
                "third_vs_first": round(med[2] / med[0], 3) if med[0] and med[2] else None}
    monitor = Proc(["config=test_stream", "checkpoint=latest", "reloadInterval=1", "sim=" + args.monitor_sim,
                    "rl_device=" + CUDA, "numEnvs=1", "streamPort=%d" % args.port,
                    "streamRealtime=%s" % ("true" if args.monitor_realtime else "false"),
                    "printStats=false"], work, os.path.join(logs, "monitor.log"))  # fmt: skip
    monitor.wait_for(r"Streaming at", 600)
    while time.time() < t_watch:
        time.sleep(1)
    stream_times: List[float] = []
    url = "http://127.0.0.1:%d/stream" % args.port
    watch_start = time.time()
    try:
        client = MjpegClient(url, timeout=10)
        for _part in client.parts():
            stream_times.append(time.time())
            if time.time() > t_ready + args.seconds:
                break
        client.close()
    except OSError as e:
        print("stream client failed: %s" % e)
    watch_end = time.time()
    train_rc = train.stop()
    monitor_rc = monitor.stop()
    alone = _fps_lines(train.lines, t_ready + 10, t_monitor)
    unwatched = _fps_lines(train.lines, t_monitor + 10, watch_start)
    watched = _fps_lines(train.lines, watch_start + 2, watch_end)
    st = stream_times
    fps_stream = (len(st) - 1) / (st[-1] - st[0]) if len(st) > 2 else 0.0
    reload_lines = [ln for _, ln in monitor.lines if "Reloaded " in ln or "Loaded " in ln]
    ages = [float(m.group(1)) for ln in reload_lines for m in [re.search(r"file age ([0-9.]+) s", ln)] if m]
    # failed swaps or loads; "retrying" notes about a file caught mid-write are not failures
    errors = [ln for _, ln in monitor.lines
              if re.search(r"Traceback|Error|Could not|refused|rolled back", ln) and "retrying" not in ln]
    # success of the deterministic policy on fresh seeds, checkpoint by checkpoint
    nn = glob.glob(os.path.join(work, "runs", "latest_train", "nn", "last_*_ep_*.pth"))
    nn.sort(key=lambda p: int(re.search(r"_ep_(\d+)_", p).group(1)))  # type: ignore[union-attr]
    curve = []
    for path in nn[:: max(1, len(nn) // args.eval_points)] + nn[-1:]:
        succ, rew = evaluate(path, args.eval_envs, seed=12345)
        minutes = (os.path.getmtime(path) - t_ready) / 60.0
        epoch = int(re.search(r"_ep_(\d+)_", path).group(1))  # type: ignore[union-attr]
        curve.append({"minutes": round(minutes, 2), "epoch": epoch, "success": round(succ, 3), "reward": round(rew, 1)})
        print("epoch %5d  %5.2f min  success %.3f  reward %.1f" % (epoch, minutes, succ, rew))
    hit = next((c["minutes"] for c in curve if c["success"] >= 0.8), None)
    frames = [int(m.group(1)) for _, ln in train.lines for m in [re.search(r"frames: (\d+)", ln)] if m]
    out = {
        "monitor": "HotReloadPlayer, policy on %s, sim=%s, 1 env, stream 30 fps cap, realtime %s"
        % (CUDA, args.monitor_sim, args.monitor_realtime),
        "train_seconds_after_compile": args.seconds,
        "minutes_to_80pct_success": hit,
        "success_curve": curve,
        "train_fps_total_alone_median": statistics.median(alone) if alone else None,
        "train_fps_total_unwatched_median": statistics.median(unwatched) if unwatched else None,
        "train_fps_total_watched_median": statistics.median(watched) if watched else None,
        "train_speed_watched_vs_alone": round(statistics.median(watched) / statistics.median(alone), 3)
        if watched and alone else None,
        "note": "training speed drifts as episodes shorten; thirds: alone, monitor unwatched, watched",
        "stream_fps_while_watched": round(fps_stream, 1),
        "stream_frames": len(st),
        "hot_reload_on_cuda": {
            "reloads": max(0, len(reload_lines) - 1),
            "errors": len(errors),
            "latency_p95_s": round(sorted(ages)[int(0.95 * (len(ages) - 1))], 2) if ages else None,
            "error_lines": errors[:5],
        },
        "exit_codes": {"train": train_rc, "monitor": monitor_rc},
        "train_frames": frames[-1] if frames else None,
    }
    print_table(
        [
            ["minutes to 80 % success (deterministic, fresh seeds)", hit],
            ["training env steps/s alone / monitor / watched", "%s / %s / %s" % (
                out["train_fps_total_alone_median"], out["train_fps_total_unwatched_median"],
                out["train_fps_total_watched_median"])],
            ["stream fps while watched", out["stream_fps_while_watched"]],
            ["hot reloads / errors / p95 file age (s)", "%d / %d / %s" % (
                out["hot_reload_on_cuda"]["reloads"], len(errors), out["hot_reload_on_cuda"]["latency_p95_s"])],
        ],
        ["what", "value"],
    )  # fmt: skip
    return out


def summary(result: Dict[str, Any]) -> Dict[str, Any]:
    """The headline figures under the names the issue asked for (medians of the speed runs; the
    training runs keyed by the monitor they ran with)."""
    out: Dict[str, Any] = {"device": result.get("device")}
    med = result.get("speed_median") or {}
    runs = result.get("speed_runs") or [{}]
    out.update(
        num_envs=runs[-1].get("num_envs"),
        mjwarp_env_steps_per_s=med.get("mjwarp_env_steps_per_s"),
        raw_physics_steps_per_s=med.get("raw_physics_steps_per_s"),
        cpu_env_steps_per_s=med.get("cpu_env_steps_per_s"),
        speed_runs=len(runs),
    )
    trains = {k[len("train_monitor_"):]: v for k, v in result.items() if k.startswith("train_monitor_")}
    out["minutes_to_80pct_success"] = {k: v.get("minutes_to_80pct_success") for k, v in trains.items() if k != "none"}
    out["hot_reload_on_cuda"] = {k: v.get("hot_reload_on_cuda") for k, v in trains.items() if k != "none"}
    out["stream_fps_while_watched"] = {k: v.get("stream_fps_while_watched") for k, v in trains.items() if k != "none"}
    out["train_speed_watched_vs_alone"] = {
        k: v.get("train_speed_watched_vs_alone") for k, v in trains.items() if k != "none"
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stage", choices=("speed", "train", "all"), default="all")
    ap.add_argument("--num-envs", type=int, default=4096)
    ap.add_argument("--cpu-envs", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=240.0, help="training wall time after compile")
    ap.add_argument("--eval-envs", type=int, default=1024)
    ap.add_argument("--eval-points", type=int, default=12)
    ap.add_argument("--port", type=int, default=58090)
    ap.add_argument("--monitor-realtime", action="store_true", help="the monitor paces itself to real time")
    ap.add_argument("--monitor-sim", choices=("mjwarp", "mujoco", "none"), default="mujoco",
                    help="the monitor's simulator (its policy is on cuda:0 either way)")
    ap.add_argument("--out", default=None, help="also write gpu.json (and logs) here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("benchmarks/gpu.py needs a CUDA GPU (torch sees none)")
    path = os.path.join(RESULTS, "gpu.json")
    result: Dict[str, Any] = {}
    if os.path.exists(path):
        with open(path) as f:
            result = json.load(f)
    result["device"] = torch.cuda.get_device_name(0)
    if args.stage in ("speed", "all"):
        runs = result.get("speed_runs", [])
        runs.append({"machine": machine(), **stage_speed(args)})
        result["speed_runs"] = runs
        result["speed_median"] = {
            key: statistics.median(r[key] for r in runs)
            for key in ("mjwarp_env_steps_per_s", "raw_physics_steps_per_s", "env_vs_raw_over_substeps",
                        "cpu_env_steps_per_s", "gpu_vs_cpu")
        }  # fmt: skip
    if args.stage in ("train", "all"):
        key = "train_monitor_" + args.monitor_sim + ("_realtime" if args.monitor_realtime else "")
        result[key] = {"machine": machine(), **stage_train(args)}
    result["command"] = "python benchmarks/gpu.py " + " ".join(sys.argv[1:])
    result["summary"] = summary(result)
    for folder in [RESULTS] + ([args.out] if args.out else []):
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "gpu.json"), "w") as f:
            json.dump(result, f, indent=2)
    print("wrote", path)


if __name__ == "__main__":
    main()

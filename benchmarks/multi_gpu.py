"""BlindGrasping PPO on 1 GPU vs N GPUs (issue 13): env steps/s and minutes to 80 % success.

Run on a machine with >= 2 GPUs, from the project root:

    python benchmarks/multi_gpu.py --gpus 1 2 --seconds 150 --out $OUT

For each GPU count it trains through the CLI (``torchrun --nproc_per_node=N ... multi_gpu=true`` for
N > 1; each rank runs the backend's default 4096 envs), for ``--seconds`` after MuJoCo Warp is ready, then
evaluates rank 0's checkpoints with the deterministic policy in fresh envs (the same ``evaluate`` as
``benchmarks/gpu.py``). Env steps/s is rl-games' "fps total" (all ranks: rank 0 prints frames x world
size), median over the run after its first 10 s. Writes ``benchmarks/results/multi_gpu.json``.
Run the 1-GPU case first on a fresh machine: it compiles warp's kernels (~3 min) for every later run.
"""

import argparse
import glob
import os
import re
import statistics
import sys
import tempfile
import time
from typing import Any, Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import print_table, write_result  # noqa: E402
from gpu import Proc, evaluate  # noqa: E402


def fps_after(lines: List[Any], t0: float) -> List[float]:
    rx = re.compile(r"fps total:\s*([0-9.]+)")
    return [float(m.group(1)) for t, ln in lines if t >= t0 for m in [rx.search(ln)] if m]


def train_run(gpus: int, seconds: float, work: str, logs: str, eval_points: int, eval_envs: int) -> Dict[str, Any]:
    args = ["config=train_headless", "task=BlindGrasping", "sim=mjwarp", "maxEpochs=100000"]
    if gpus > 1:
        args.append("multi_gpu=true")
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=%d" % gpus]
    else:
        launcher = []
    proc = Proc(args, work, os.path.join(logs, "train_%dgpu.log" % gpus), launcher=launcher)
    ready = proc.wait_for(r"MuJoCo Warp: ready", 900)
    if ready is None:
        proc.stop()
        raise SystemExit("training on %d GPU(s) did not start; see %s" % (gpus, logs))
    t_ready = ready[0]
    while time.time() < t_ready + seconds and proc.p.poll() is None:
        time.sleep(1)
    rc = proc.stop()
    fps = fps_after(proc.lines, t_ready + 10)
    nn = glob.glob(os.path.join(work, "runs", "latest_train", "nn", "last_*_ep_*.pth"))
    nn.sort(key=lambda p: int(re.search(r"_ep_(\d+)_", p).group(1)))  # type: ignore[union-attr]
    picks = sorted(set(nn[:: max(1, len(nn) // eval_points)] + nn[-1:]), key=nn.index)
    curve = []
    for path in picks:
        succ, rew = evaluate(path, eval_envs, seed=12345)
        epoch = int(re.search(r"_ep_(\d+)_", path).group(1))  # type: ignore[union-attr]
        minutes = (os.path.getmtime(path) - t_ready) / 60.0
        curve.append({"minutes": round(minutes, 2), "epoch": epoch, "success": round(succ, 3), "reward": round(rew, 1)})
        print("%d GPU(s)  epoch %5d  %5.2f min  success %.3f" % (gpus, epoch, minutes, succ))
    hit = next((c["minutes"] for c in curve if c["success"] >= 0.8), None)
    return {
        "gpus": gpus,
        "exit_code": rc,
        "env_steps_per_s_median": statistics.median(fps) if fps else None,
        "env_steps_per_s_spread": [min(fps), max(fps)] if fps else None,
        "minutes_to_80pct_success": hit,
        "success_curve": curve,
        "ranks_seen": sorted(set(int(m.group(1)) for _, ln in proc.lines for m in [re.search(r"rank (\d+) of", ln)] if m)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gpus", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seconds", type=float, default=150.0, help="training time after MuJoCo Warp is ready")
    ap.add_argument("--eval-points", type=int, default=6)
    ap.add_argument("--eval-envs", type=int, default=1024)
    ap.add_argument("--out", default=None, help="also write logs and the JSON here")
    args = ap.parse_args()
    import torch

    from rlg_hotreload import params as paramslib

    paramslib.register_task("BlindGrasping")  # for evaluate(), which builds a stock player in this process
    runs = []
    for n in args.gpus:
        work = tempfile.mkdtemp(prefix="mgpu_%d_" % n)
        runs.append(train_run(n, args.seconds, work, args.out or work, args.eval_points, args.eval_envs))
    base = runs[0]["env_steps_per_s_median"]
    for r in runs:
        r["speedup_vs_first"] = round(r["env_steps_per_s_median"] / base, 2) if base and r["env_steps_per_s_median"] else None
    result = {"device": torch.cuda.get_device_name(0), "gpu_count": torch.cuda.device_count(),
              "train_seconds_after_compile": args.seconds, "envs_per_gpu": 4096, "runs": runs}  # fmt: skip
    path = write_result("multi_gpu", result, " ".join(sys.argv))
    if args.out:
        with open(os.path.join(args.out, "multi_gpu.json"), "w") as f, open(path) as src:
            f.write(src.read())
    print_table(
        [[r["gpus"], r["env_steps_per_s_median"], r["speedup_vs_first"], r["minutes_to_80pct_success"], r["exit_code"]]
         for r in runs],
        ["GPUs", "env steps/s (median)", "speed-up", "min to 80 % success", "exit"],
    )  # fmt: skip


if __name__ == "__main__":
    main()

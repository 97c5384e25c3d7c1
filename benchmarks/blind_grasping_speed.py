"""BlindGrasping MuJoCo backend speed: env steps/s vs raw MuJoCo, at 1 env and at N envs, 3 runs.

Usage: PYTHONPATH=$PWD python benchmarks/blind_grasping_speed.py [--envs 1,64] [--threads 1] [--runs 3]
       [--seconds 2] [--render]     (the defaults take ~1 min; 1024 envs on 16 threads: ~1.5 min)

Each env is driven with the scripted grasp (descend, close, lift, hold), so contacts are as in real
episodes. References, measured in the same run:
- 1 env: one world stepped in a bare loop, ``mj_step(m, d, nstep=substeps)``, same control sequence;
  target env steps/s >= 0.6x (raw mj_step/s / substeps). Its A/A: the same raw loop measured again at
  the end of the run, over the first.
- N envs: MuJoCo's own batched stepping, ``mujoco.rollout.Rollout(nthread=T)`` over N model copies
  (C threads, no Python per world), with the same control sequence; target >= 0.6x its physics steps/s
  / substeps. The env uses its thread pool (``num_threads=T``) when T > 1.
Prints the load average before/after each run; writes benchmarks/results/blind_grasping_speed.json.
"""

import argparse
import copy
import os
import sys
import time

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import print_table, write_result  # noqa: E402

import isaacgym_tasks  # noqa: E402
from isaacgym_tasks.asset import ASSET_PATH, HAND_OPEN_POSE  # noqa: E402
from isaacgym_tasks.scripted import EPISODE, grasp_action  # noqa: E402


def raw_rate(substeps: int, seconds: float) -> float:
    """mj_step/s of one world, control targets following the same grasp (delta-integrated here)."""
    m = mujoco.MjModel.from_xml_path(ASSET_PATH)
    d = mujoco.MjData(m)
    scale = np.array([0.01] * 3 + [0.1] * 6)
    lo, hi = m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1]
    steps, k = 0, 0
    target = np.array(HAND_OPEN_POSE)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if k % EPISODE == 0:
            mujoco.mj_resetData(m, d)
            target = np.array(HAND_OPEN_POSE)
            d.qpos[7:16] = target
        target = np.clip(target + grasp_action(k, 1)[0].numpy() * scale, lo, hi)
        d.ctrl[:] = target
        mujoco.mj_step(m, d, substeps)
        steps += substeps
        k += 1
    return steps / (time.perf_counter() - t0)


def batch_raw_rate(num_envs: int, threads: int, substeps: int, seconds: float) -> float:
    """Physics steps/s of MuJoCo's own batched stepping (``mujoco.rollout``, ``threads`` C threads)."""
    from mujoco import rollout

    m = mujoco.MjModel.from_xml_path(ASSET_PATH)
    d = mujoco.MjData(m)
    lo, hi = m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1]
    scale = np.array([0.01] * 3 + [0.1] * 6)
    target = np.array(HAND_OPEN_POSE)
    ctrl = np.empty((EPISODE * substeps, m.nu))
    for k in range(EPISODE):  # the scripted grasp's targets, each held for ``substeps`` physics steps
        target = np.clip(target + grasp_action(k, 1)[0].numpy() * scale, lo, hi)
        ctrl[k * substeps : (k + 1) * substeps] = target
    d.qpos[7:16] = HAND_OPEN_POSE
    mujoco.mj_forward(m, d)
    state0 = np.empty(mujoco.mj_stateSize(m, mujoco.mjtState.mjSTATE_FULLPHYSICS))
    mujoco.mj_getState(m, d, state0, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    models = [m] + [copy.copy(m) for _ in range(num_envs - 1)]
    datas = [mujoco.MjData(m) for _ in range(max(1, threads))]
    init = np.tile(state0, (num_envs, 1))
    control = np.broadcast_to(ctrl, (num_envs,) + ctrl.shape).copy()
    steps = 0
    with rollout.Rollout(nthread=threads if threads > 1 else 0) as r:
        r.rollout(models, datas, init, control[:, :substeps])  # warm-up (allocations)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            r.rollout(models, datas, init, control)
            steps += num_envs * ctrl.shape[0]
        return steps / (time.perf_counter() - t0)


def env_rate(num_envs: int, threads: int, seconds: float) -> float:
    # Episodes end only at the timeout (success needs 100 s of holding), so every world follows
    # the same 60-step grasp as the raw loop, resets included.
    env = isaacgym_tasks.make_env(
        num_envs, sim="mujoco", seed=0, episode_length_s=EPISODE * 0.05, success_hold_s=100.0,
        num_threads=threads,
    )  # fmt: skip
    actions = [grasp_action(k, num_envs) for k in range(EPISODE)]
    for k in range(EPISODE):  # one full episode of warm-up keeps k aligned with the episode
        env.step(actions[k])
    steps, k = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        env.step(actions[k % EPISODE])
        steps += num_envs
        k += 1
    rate = steps / (time.perf_counter() - t0)
    env.close()
    return rate


def render_ms(frames: int = 30) -> float:
    env = isaacgym_tasks.make_env(1, sim="mujoco")
    env.render()
    t0 = time.perf_counter()
    for k in range(frames):
        env.step(grasp_action(k, 1))
        env.render()
    t1 = time.perf_counter()
    for k in range(frames):
        env.step(grasp_action(k, 1))
    t2 = time.perf_counter()
    env.close()
    return ((t1 - t0) - (t2 - t1)) / frames * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--envs", default="1,64", help="comma-separated env counts (default 1,64)")
    parser.add_argument("--threads", type=int, default=1, help="threads for N > 1 envs (default 1)")
    parser.add_argument("--runs", type=int, default=3, help="consecutive runs (default 3)")
    parser.add_argument("--seconds", type=float, default=2.0, help="measuring time per figure (default 2)")
    parser.add_argument("--render", action="store_true", help="also time a 640x480 render")
    args = parser.parse_args()
    try:
        envs = [int(x) for x in args.envs.split(",")]
        if not envs or min(envs) < 1:
            raise ValueError
    except ValueError:
        print("--envs=%r: a comma-separated list of env counts >= 1, e.g. 1,64,1024" % args.envs, file=sys.stderr)
        sys.exit(2)
    for name in ("threads", "runs"):
        if getattr(args, name) < 1:
            print("--%s=%r: must be >= 1" % (name, getattr(args, name)), file=sys.stderr)
            sys.exit(2)
    if not args.seconds > 0:
        print("--seconds=%r: must be > 0" % args.seconds, file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(1)
    substeps = isaacgym_tasks.BlindGraspingConfig().control_substeps
    runs, rows = [], []
    for run in range(1, args.runs + 1):
        load0 = os.getloadavg()
        raw = raw_rate(substeps, args.seconds)
        figures = []
        for n in envs:
            threads = args.threads if n > 1 else 1
            ref = raw if n == 1 else batch_raw_rate(n, threads, substeps, args.seconds)
            rate = env_rate(n, threads, args.seconds)
            ratio = rate / (ref / substeps)
            figures.append({"num_envs": n, "threads": threads, "env_steps_per_s": rate,
                            "reference": "mj_step loop" if n == 1 else "mujoco.rollout",
                            "reference_physics_steps_per_s": ref, "ratio": ratio,
                            "env_physics_steps_per_s": rate * substeps})  # fmt: skip
        raw_again = raw_rate(substeps, args.seconds)
        load1 = os.getloadavg()
        runs.append({"raw_mj_steps_per_s": raw, "raw_again": raw_again, "aa": raw_again / raw, "rows": figures,
                     "loadavg_before": load0, "loadavg_after": load1})  # fmt: skip
        for f in figures:
            rows.append((run, f["num_envs"], f["threads"], "%.0f" % f["env_steps_per_s"],
                         "%.0f" % (f["env_physics_steps_per_s"] / 1e3),
                         "%.0f (%s)" % (f["reference_physics_steps_per_s"] / 1e3, f["reference"]),
                         "%.2fx" % f["ratio"], "%.3fx" % (raw_again / raw),
                         "%.2f -> %.2f" % (load0[0], load1[0])))  # fmt: skip
        print("run %d done" % run, flush=True)
    print("cores: %d; substeps per env step: %d; torch threads: 1" % (os.cpu_count() or 0, substeps))
    print_table(rows, ("run", "envs", "threads", "env steps/s", "env k physics/s", "raw k physics/s",
                       "env/raw", "A/A raw", "load avg"))  # fmt: skip
    met = {str(n): all(f["ratio"] >= 0.6 for r in runs for f in r["rows"] if f["num_envs"] == n) for n in envs}
    print("target env/raw >= 0.6x in every run: " + ", ".join("%s envs %s" % (n, "met" if ok else "NOT met")
                                                            for n, ok in met.items()))  # fmt: skip
    data = {"substeps": substeps, "args": vars(args), "cores": os.cpu_count(), "runs": runs, "targets_met": met}
    if args.render:
        data["render_ms_640x480"] = ms = render_ms()
        print("render 640x480 (env 0, offscreen, MUJOCO_GL=%s): %.1f ms/frame" % (os.environ.get("MUJOCO_GL"), ms))
    cmd = "PYTHONPATH=$PWD python benchmarks/blind_grasping_speed.py " + " ".join(sys.argv[1:])
    print("wrote", write_result("blind_grasping_speed", data, cmd.strip()))


if __name__ == "__main__":
    main()

"""BlindGrasping MuJoCo backend speed: env steps/s vs raw MuJoCo, at 1 env and at N envs, 3 runs.

Usage: PYTHONPATH=$PWD python benchmarks/blind_grasping_speed.py [--envs 1,64] [--threads 1] [--runs 3]
       [--seconds 4] [--stepper auto|pool|rollout|pool,rollout] [--render]
       (defaults: ~1 min on 2 cores; --envs 1,64,1024 --threads 16 --stepper pool,rollout: ~5 min)

Each env is driven with the scripted grasp (descend, close, lift, hold), so contacts are as in real
episodes, and compared with the same worlds stepped by MuJoCo alone under the same controls:
- 1 env: one world in a bare loop, ``mj_step(m, d, nstep=substeps)``; target env steps/s >= 0.6x
  (raw mj_step/s / substeps).
- N envs: MuJoCo's own batched stepping, ``mujoco.rollout.Rollout(nthread=T)`` over N model copies
  (C threads, no Python per world); target >= 0.6x. The env steps its worlds with ``--stepper``
  (isaacgym_tasks.mujoco_stepper: ``pool``, per-world mj_step on T Python threads; ``rollout``,
  mujoco.rollout on T C threads; ``auto``, the env's own choice by size); several compare them.
Raw A, the env and raw B take turns episode by episode (see ``paired``): each figure is a median of
per-round ratios, printed beside its A/A (raw A / raw B) and the load average before/after the run.
Writes benchmarks/results/blind_grasping_speed.json.
"""

import argparse
import copy
import os
import statistics
import sys
import time
from typing import Any, Dict, List

os.environ.setdefault("MUJOCO_GL", "egl")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import mujoco  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from common import print_table, write_result  # noqa: E402

import isaacgym_tasks  # noqa: E402
from isaacgym_tasks.asset import ASSET_PATH, HAND_OPEN_POSE  # noqa: E402
from isaacgym_tasks.mujoco_backend import MujocoBlindGrasping  # noqa: E402
from isaacgym_tasks.mujoco_stepper import STEPPERS  # noqa: E402
from isaacgym_tasks.scripted import EPISODE, grasp_action  # noqa: E402


def grasp_controls(m: mujoco.MjModel) -> np.ndarray:
    """The scripted grasp's joint targets [EPISODE, nu], integrated from its actions as the env does."""
    scale = np.array([0.01] * 3 + [0.1] * 6)
    lo, hi = m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1]
    target = np.array(HAND_OPEN_POSE)
    out = np.empty((EPISODE, m.nu))
    for k in range(EPISODE):
        target = np.clip(target + grasp_action(k, 1)[0].numpy() * scale, lo, hi)
        out[k] = target
    return out


class RawWorlds:
    """``n`` worlds stepped by MuJoCo alone under the grasp's controls: one world in a bare
    ``mj_step(m, d, nstep=substeps)`` loop, or MuJoCo's batched ``mujoco.rollout`` (C threads)."""

    def __init__(self, n: int, threads: int, substeps: int) -> None:
        from mujoco import rollout

        self.n, self.substeps = n, substeps
        self.m = mujoco.MjModel.from_xml_path(ASSET_PATH)
        self.d = mujoco.MjData(self.m)
        self.ctrl = grasp_controls(self.m)
        self.pool = None
        if n > 1:
            m, d = self.m, self.d
            d.qpos[7:16] = HAND_OPEN_POSE
            mujoco.mj_forward(m, d)
            spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
            state0 = np.empty(mujoco.mj_stateSize(m, spec))
            mujoco.mj_getState(m, d, state0, spec)
            self.models = [m] + [copy.copy(m) for _ in range(n - 1)]
            self.datas = [mujoco.MjData(m) for _ in range(max(1, threads))]
            self.init = np.tile(state0, (n, 1))
            self.control = np.repeat(self.ctrl, substeps, axis=0)[None].repeat(n, axis=0)
            self.pool = rollout.Rollout(nthread=threads if threads > 1 else 0)
            self.state = np.empty((n, self.control.shape[1], state0.size))
            self.sens = np.empty((n, self.control.shape[1], m.nsensordata))

    def episode(self) -> float:
        """Seconds for one episode (EPISODE control steps) of every world."""
        t0 = time.perf_counter()
        if self.pool is not None:
            self.pool.rollout(self.models, self.datas, self.init, self.control, state=self.state,
                              sensordata=self.sens)  # fmt: skip
        else:
            m, d, n = self.m, self.d, self.substeps
            mujoco.mj_resetData(m, d)
            d.qpos[7:16] = HAND_OPEN_POSE
            for target in self.ctrl:
                d.ctrl[:] = target
                mujoco.mj_step(m, d, n)
        return time.perf_counter() - t0

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()


def paired(
    num_envs: int, threads: int, substeps: int, seconds: float, stepper: str = "auto"
) -> Dict[str, Any]:
    """Episodes in turn: raw A, the env, raw B (order alternating), until ``seconds`` (>= 5 rounds).

    Per round: env/raw = raw A's time / the env's time for the same episode (both step num_envs worlds
    through 60 control steps); A/A = raw A / raw B. Medians over rounds: a machine whose load changes
    within seconds moves both sides of a round alike.
    """
    raw_a, raw_b = RawWorlds(num_envs, threads, substeps), RawWorlds(num_envs, threads, substeps)
    # Episodes end only at the timeout (success needs 100 s of holding), so every world follows
    # the same 60-step grasp as the raw worlds, resets included.
    cfg = isaacgym_tasks.BlindGraspingConfig.from_kwargs(
        {"sim": "mujoco", "seed": 0, "episode_length_s": EPISODE * 0.05, "success_hold_s": 100.0,
         "num_threads": threads}  # fmt: skip
    )
    env = MujocoBlindGrasping(num_envs, cfg, stepper=stepper)
    actions = [grasp_action(k, num_envs) for k in range(EPISODE)]

    def env_episode() -> float:
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        return time.perf_counter() - t0

    env_episode(), raw_a.episode(), raw_b.episode()  # warm-up; keeps the env's episodes aligned
    rounds: List[Dict[str, float]] = []
    end = time.perf_counter() + seconds
    while len(rounds) < 5 or time.perf_counter() < end:
        r: Dict[str, float] = {}
        for kind in ("a", "env", "b") if len(rounds) % 2 else ("b", "env", "a"):
            r[kind] = env_episode() if kind == "env" else (raw_a if kind == "a" else raw_b).episode()
        rounds.append(r)
    env.close()
    raw_a.close()
    raw_b.close()
    steps = num_envs * EPISODE
    return {
        "num_envs": num_envs,
        "threads": threads,
        "stepper": env.stepper_kind,
        "reference": "mj_step loop" if num_envs == 1 else "mujoco.rollout",
        "rounds": len(rounds),
        "ratio": statistics.median(r["a"] / r["env"] for r in rounds),
        "aa": statistics.median(r["a"] / r["b"] for r in rounds),
        "env_steps_per_s": statistics.median(steps / r["env"] for r in rounds),
        "raw_physics_steps_per_s": statistics.median(steps * substeps / r["a"] for r in rounds),
        "raw_s": [[round(r["a"], 5), round(r["env"], 5), round(r["b"], 5)] for r in rounds],
    }


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
    parser.add_argument("--seconds", type=float, default=4.0, help="measuring time per figure (default 4)")
    parser.add_argument("--stepper", default="auto",
                        help="comma-separated env steppers to measure: auto, pool, rollout (default auto)")  # fmt: skip
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
    steppers = args.stepper.split(",")
    if not steppers or any(s not in STEPPERS for s in steppers):
        print("--stepper=%r: a comma-separated list of %s" % (args.stepper, ", ".join(STEPPERS)), file=sys.stderr)
        sys.exit(2)
    if not args.seconds > 0:
        print("--seconds=%r: must be > 0" % args.seconds, file=sys.stderr)
        sys.exit(2)
    torch.set_num_threads(1)
    substeps = isaacgym_tasks.BlindGraspingConfig().control_substeps
    runs, rows = [], []
    for run in range(1, args.runs + 1):
        load0 = os.getloadavg()
        figures = [paired(n, args.threads if n > 1 else 1, substeps, args.seconds, s)
                   for n in envs for s in (steppers if n > 1 else steppers[:1])]  # fmt: skip
        load1 = os.getloadavg()
        runs.append({"rows": figures, "loadavg_before": load0, "loadavg_after": load1})
        for f in figures:
            rows.append((run, f["num_envs"], f["threads"], f["stepper"], "%.0f" % f["env_steps_per_s"],
                         "%.1f" % (f["env_steps_per_s"] * substeps / 1e3),
                         "%.1f (%s)" % (f["raw_physics_steps_per_s"] / 1e3, f["reference"]),
                         "%.2fx" % f["ratio"], "%.3fx" % f["aa"], f["rounds"],
                         "%.2f -> %.2f" % (load0[0], load1[0])))  # fmt: skip
        print("run %d done" % run, flush=True)
    print("cores: %d; substeps per env step: %d; torch threads: 1" % (os.cpu_count() or 0, substeps))
    print_table(rows, ("run", "envs", "threads", "stepper", "env steps/s", "env k physics/s", "raw k physics/s",
                       "env/raw", "A/A raw", "rounds", "load avg"))  # fmt: skip
    keys = sorted({(f["num_envs"], f["stepper"]) for r in runs for f in r["rows"]})
    met = {
        "%d %s" % k: all(f["ratio"] >= 0.6 for r in runs for f in r["rows"] if (f["num_envs"], f["stepper"]) == k)
        for k in keys
    }
    verdicts = ("%s envs (%s) %s" % (*k.split(), "met" if ok else "NOT met") for k, ok in met.items())
    print("target env/raw >= 0.6x in every run: " + ", ".join(verdicts))
    data = {"substeps": substeps, "args": vars(args), "cores": os.cpu_count(), "runs": runs, "targets_met": met}
    if args.render:
        data["render_ms_640x480"] = ms = render_ms()
        print("render 640x480 (env 0, offscreen, MUJOCO_GL=%s): %.1f ms/frame" % (os.environ.get("MUJOCO_GL"), ms))
    cmd = "PYTHONPATH=$PWD python benchmarks/blind_grasping_speed.py " + " ".join(sys.argv[1:])
    print("wrote", write_result("blind_grasping_speed", data, cmd.strip()))


if __name__ == "__main__":
    main()

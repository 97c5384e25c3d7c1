"""BlindGrasping MuJoCo backend speed: env steps/s vs the raw mj_step rate, and render time.

Usage: MUJOCO_GL=egl python benchmarks/blind_grasping_speed.py [--seconds 3]

For numEnvs 1, 16 and 64 the env is driven with the scripted grasp (descend,
close, lift, hold), so contacts are as in real episodes. The reference is the
same model stepped in a bare C loop, ``mj_step(m, d, nstep=substeps)``, under
the same control sequence: env steps/s divided by (raw mj_step/s / substeps)
is the fraction of raw physics speed the batched env keeps (target >= 0.5).
Writes benchmarks/results/blind_grasping_speed.json.
"""

import argparse
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


def env_rate(num_envs: int, seconds: float) -> float:
    # Episodes end only at the timeout (success needs 100 s of holding), so every world follows
    # the same 60-step grasp as the raw loop, resets included.
    env = isaacgym_tasks.make_env(
        num_envs, sim="mujoco", seed=0, episode_length_s=EPISODE * 0.05, success_hold_s=100.0
    )
    for k in range(EPISODE):  # one full episode of warm-up keeps k aligned with the episode
        env.step(grasp_action(k, num_envs))
    steps, k = 0, 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        env.step(grasp_action(k, num_envs))
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
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per row")
    args = parser.parse_args()
    torch.set_num_threads(1)
    substeps = isaacgym_tasks.BlindGraspingConfig().control_substeps
    raw = raw_rate(substeps, args.seconds)
    raw_env_equiv = raw / substeps
    rows, data = [], []
    for n in (1, 16, 64):
        rate = env_rate(n, args.seconds)
        ratio = rate / raw_env_equiv
        rows.append(
            (n, "%.0f" % rate, "%.0f" % raw_env_equiv, "%.2f" % ratio, "yes" if ratio >= 0.5 else "NO")
        )
        data.append(
            {"num_envs": n, "env_steps_per_s": rate, "raw_env_steps_per_s": raw_env_equiv, "ratio": ratio}
        )
    ms = render_ms()
    print("raw mj_step rate: %.0f steps/s; substeps per env step: %d" % (raw, substeps))
    print_table(rows, ("numEnvs", "env steps/s", "raw mj_step/s / substeps", "ratio", ">= 0.5"))
    print(
        "render 640x480 (env 0, offscreen, MUJOCO_GL=%s): %.1f ms/frame" % (os.environ.get("MUJOCO_GL"), ms)
    )
    path = write_result(
        "blind_grasping_speed",
        {
            "raw_mj_steps_per_s": raw,
            "substeps": substeps,
            "rows": data,
            "render_ms_640x480": ms,
            "mujoco_gl": os.environ.get("MUJOCO_GL"),
            "torch_threads": 1,
            "load_avg_at_end": os.getloadavg(),
        },
        "MUJOCO_GL=egl python benchmarks/blind_grasping_speed.py --seconds %g" % args.seconds,
    )
    print("wrote", path)


if __name__ == "__main__":
    main()

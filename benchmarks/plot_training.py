"""Plot a training run's curve from rl-games' TensorBoard summaries and print its key numbers.

Usage: python benchmarks/plot_training.py runs/<Task>_<stamp> docs/<name>.png
Reads `rewards/time` (mean episode reward vs wall time) and `scores/mean` (success rate for BlindGrasping,
whose infos carry `scores`).
"""

import glob
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def scalars(acc, tag):
    return [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def main(run_dir, out_png):
    files = glob.glob(os.path.join(run_dir, "summaries", "events.*"))
    acc = EventAccumulator(files[0] if len(files) == 1 else os.path.join(run_dir, "summaries"))
    acc.Reload()
    rew_t = scalars(acc, "rewards/time")  # step = seconds since start
    succ_t = scalars(acc, "scores/time")
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot([t / 60 for t, _ in rew_t], [v for _, v in rew_t], label="mean episode reward")
    ax.set_xlabel("wall time (min)")
    ax.set_ylabel("mean episode reward")
    if succ_t:
        ax2 = ax.twinx()
        ax2.plot([t / 60 for t, _ in succ_t], [100 * v for _, v in succ_t], color="tab:green", label="success %")
        ax2.set_ylabel("success rate (%)")
        ax2.set_ylim(0, 100)
    fig.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    first = rew_t[0] if rew_t else None
    print("points", len(rew_t), "first", first, "last", rew_t[-1] if rew_t else None)
    if succ_t:
        first_success = next((t for t, v in succ_t if v > 0), None)
        print("first success at %.1f min" % (first_success / 60) if first_success is not None else "no success")
        tail = [v for t, v in succ_t if t >= succ_t[-1][0] - 120]
        print("success rate, mean of last 2 min: %.1f%%" % (100 * sum(tail) / len(tail)))
    print("wrote", out_png)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

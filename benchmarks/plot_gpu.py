"""Plot the GPU training curves recorded by ``benchmarks/gpu.py`` (success of the deterministic policy on
fresh seeds vs wall-clock minutes after the kernel compile) into ``docs/gpu_training.png``.

Usage: python benchmarks/plot_gpu.py [benchmarks/results/gpu.json] [docs/gpu_training.png]
"""

import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(src: str, out_png: str) -> None:
    with open(src) as f:
        result = json.load(f)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for key, run in sorted(result.items()):
        if not key.startswith("train_monitor_") or "success_curve" not in run:
            continue
        curve = run["success_curve"]
        label = "PPO run, monitor sim=%s" % key[len("train_monitor_"):]
        ax.plot([c["minutes"] for c in curve], [100 * c["success"] for c in curve], marker="o", label=label)
    ax.axhline(80, color="grey", lw=0.8, ls="--")
    ax.set_xlabel("minutes of training after the kernel compile")
    ax.set_ylabel("success % (deterministic, 1024 fresh envs)")
    ax.set_ylim(0, 102)
    ax.set_title("BlindGrasping on MuJoCo Warp, 4096 envs, %s" % result.get("device", "GPU"))
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_png, dpi=110)
    print("wrote", out_png)


if __name__ == "__main__":
    main(
        sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "benchmarks", "results", "gpu.json"),
        sys.argv[2] if len(sys.argv) > 2 else os.path.join(REPO, "docs", "gpu_training.png"),
    )

"""Shared bits of the benchmark scripts: build real players, write result JSON with machine info."""

import datetime
import json
import os
import platform
import sys
from typing import Any, Dict, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPO, "benchmarks", "results")
sys.path.insert(0, REPO)


def machine() -> Dict[str, Any]:
    import torch

    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "host": platform.node(),
    }


def write_result(name: str, data: Dict[str, Any], command: str) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, name + ".json")
    payload = {"machine": machine(), "command": command, **data}
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    return path


def print_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> None:
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    for j, r in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if j == 0:
            print("  ".join("-" * w for w in widths))


def build_player(
    checkpoint_dir: str,
    overrides: Sequence[str] = (),
    callbacks: Sequence[Any] = (),
    hot_reload: bool = True,
    network_units: Optional[Sequence[int]] = None,
) -> Any:
    """A real player for Pendulum-v1 through a stock rl-games Runner (HotReloadPlayer or stock).

    Both kinds run with one intra-op torch thread (rl-games' ``torch_threads: 1``): a monitor shares the
    machine with training, and with rl-games' default (2 threads on 2 cores) any other busy process —
    training, or the loader child during a reload — stalls each OpenMP region for a scheduler slice
    (measured: 15 ms steps instead of 1.2 ms).
    """
    from rlg_hotreload import build

    cfg = build.load_config(
        ["task=Pendulum-v1", "trainDir=%s" % checkpoint_dir, "printStats=false", *overrides],
        preset=os.path.join(REPO, "cfg", "test.yaml"),
    )

    def edit(params: Dict[str, Any]) -> None:
        if network_units is not None:
            params["network"]["mlp"]["units"] = list(network_units)
            params["network"]["separate"] = False
        if not hot_reload:
            del params["algo"]["player"]  # the registered factory then builds rl-games' stock player
        params["torch_threads"] = 1  # see above: rl-games' default would be min(4, cores)

    return build.make_player(cfg, callbacks, edit=edit)


def fake_training_checkpoint(model: Any, epoch: int) -> Dict[str, Any]:
    """A checkpoint dict shaped exactly like rl-games' (model, epoch, frame, optimizer, best reward)."""
    import numpy as np
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    return {
        "model": model.state_dict(),
        "epoch": epoch,
        "frame": epoch * 1000,
        "optimizer": opt.state_dict(),
        "last_mean_rewards": np.float32(-100.0 + epoch),
        "env_state": None,
    }


def stall_ms_per_frame(on: Sequence[float], off: Sequence[float], frames: int) -> float:
    """Player time one drawn frame costs in the longest steps (ms): the ``frames`` longest step times of
    the "on" stretches minus as many of the longest "off" ones (scaled to the same number of steps),
    over ``frames``. Unlike a steps/s ratio, this barely moves with the drift of a 1-env monitor's pace."""
    if frames <= 0 or not on or not off:
        return 0.0
    frames = min(frames, len(on))
    k_off = max(1, round(frames * len(off) / len(on)))
    top_on = sum(sorted(on)[-frames:])
    top_off = sum(sorted(off)[-k_off:]) * frames / k_off
    return 1e3 * (top_on - top_off) / frames

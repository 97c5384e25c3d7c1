import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from procs import REPO, run_cli  # noqa: E402


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A real rl-games training run of Pendulum-v1 (10 epochs): real checkpoints on disk."""
    work = tmp_path_factory.mktemp("trained")
    preset = os.path.join(REPO, "cfg", "train_headless.yaml")
    r = run_cli(["--cfg", preset, "task=Pendulum-v1", "maxEpochs=10"], str(work), 300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    nn = work / "runs" / "latest_train" / "nn"
    files = sorted(nn.glob("*.pth"))
    assert files, "training wrote no checkpoint"
    return work, files


def make_player(train_dir, callbacks=(), **overrides):
    """A real HotReloadPlayer for Pendulum-v1 through the public build API (a stock rl-games Runner)."""
    from rlg_hotreload import build

    args = ["task=Pendulum-v1", "trainDir=%s" % train_dir, "printStats=false"]
    args += ["%s=%s" % kv for kv in overrides.items()]
    cfg = build.load_config(args, preset=os.path.join(REPO, "cfg", "test.yaml"))
    return build.make_player(cfg, callbacks)


@pytest.fixture
def checkpoint_copy(trained_run, tmp_path):
    """A private copy of one real checkpoint (tests may corrupt it)."""
    _, files = trained_run
    dst = tmp_path / "ckpt.pth"
    shutil.copy(next(f for f in files if "_ep_10_" in f.name), dst)
    return dst

"""Session fixtures (a real training run) and markers: a test using ``trained_run`` is ``slow``."""

import logging
import os
import shutil
from typing import Iterator, List

import pytest
from helpers.procs import REPO, run_cli


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


@pytest.fixture
def checkpoint_copy(trained_run, tmp_path):
    """A private copy of one real checkpoint (tests may corrupt it)."""
    _, files = trained_run
    dst = tmp_path / "ckpt.pth"
    shutil.copy(next(f for f in files if "_ep_10_" in f.name), dst)
    return dst


def pytest_collection_modifyitems(config, items):
    """Anything that needs the training fixture is slow (it trains for ~1 minute on 2 cores)."""
    for item in items:
        if "trained_run" in getattr(item, "fixturenames", ()):  # direct or through checkpoint_copy
            item.add_marker(pytest.mark.slow)


class LogLines(logging.Handler):
    """Messages of the "rlg_hotreload" logger, caught at the logger itself (it may not propagate)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: List[str] = []

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def rlg_log() -> Iterator[LogLines]:
    logger = logging.getLogger("rlg_hotreload")
    h, old = LogLines(), logger.level
    logger.addHandler(h)
    logger.setLevel(logging.INFO)
    yield h
    logger.removeHandler(h)
    logger.setLevel(old)

"""Session fixtures (a real training run) and the markers that keep the fast part fast.

``python -m pytest -m "not slow and not browser and not integration"`` is what a developer runs while
working (seconds); ``python -m pytest`` (CI, the README) runs everything. A marker is only worth something
if a new test cannot forget it, so the costs are checked, not trusted:
- ``slow``: trains (uses ``trained_run``: marked here automatically) or runs for minutes;
- ``integration``: starts a Python process (the CLI, an example, a loader child: ~4 s of interpreter and
  torch start-up each) or takes more than a second in itself (a real player stepped in real time, an HTTP
  server with clients). A test that starts a Python process without ``integration``, ``slow`` or
  ``browser`` fails, saying so; one that merely takes long is listed at the end of the run.
"""

import logging
import os
import re
import shutil
import subprocess
import sys
from typing import Any, Dict, Iterator, List

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


NOT_FAST = ("slow", "browser", "integration")  # markers that keep a test out of the fast part
LONG_S = 1.5  # an unmarked test slower than this (setup + call) is listed at the end of the run
_PYTHON = re.compile(r"(^|[/\\ ])python[0-9.]*( |$)")


def _starts_python(args: Any) -> bool:
    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args)
    line = " ".join(os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in argv)
    return sys.executable in line or bool(_PYTHON.search(line))


def _is_fast(item: pytest.Item) -> bool:
    return not any(item.get_closest_marker(m) for m in NOT_FAST)


@pytest.fixture(autouse=True)
def _python_processes_are_integration(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Fails a test of the fast part that starts a Python process (from any thread, through any helper)."""
    if not _is_fast(request.node):
        yield
        return
    started: List[str] = []
    popen_init = subprocess.Popen.__init__

    def init(self: subprocess.Popen, args: Any, *a: Any, **kw: Any) -> None:
        if _starts_python(args):
            started.append(str(args)[:200])
        popen_init(self, args, *a, **kw)

    monkeypatch.setattr(subprocess.Popen, "__init__", init)
    yield
    if started:
        pytest.fail(
            "this test starts a Python process (%s): mark it @pytest.mark.integration (tests/conftest.py "
            "says why), or call the CLI in this process (helpers.procs.cli_in_process)" % started[0],
            pytrace=False,
        )


_long: Dict[str, float] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when in ("setup", "call") and not any(m in report.keywords for m in NOT_FAST):
        _long[report.nodeid] = _long.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: Any) -> None:
    slow = sorted(((d, n) for n, d in _long.items() if d > LONG_S), reverse=True)
    if slow:
        terminalreporter.write_sep("-", "unmarked tests slower than %.1f s: mark them integration" % LONG_S)
        for d, n in slow:
            terminalreporter.write_line("%.2fs %s" % (d, n))


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

"""Static promises: Python 3.8 syntax in the shipped packages (users of Isaac Gym run 3.8), lint clean."""

import os
import shutil
import subprocess
import sys

import pytest
from helpers.procs import REPO

PACKAGES = [p for p in ("rlg_hotreload", "isaacgym_tasks") if os.path.isdir(os.path.join(REPO, p))]


def _tool(name):
    exe = shutil.which(name)
    if exe is None:
        pytest.skip("%s is not installed (pip install -e '.[dev]')" % name)
    return exe


@pytest.mark.integration
def test_packages_use_python_38_syntax_only():
    r = subprocess.run(
        [_tool("vermin"), "-q", "--no-tips", "-t=3.8-", "--violations", *PACKAGES],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr


def test_ruff_lint_is_clean():
    r = subprocess.run([_tool("ruff"), "check", "."], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]


@pytest.mark.integration
def test_package_imports_without_torch_side_effects():
    """`import rlg_hotreload` stays light: the CLI validates config before importing torch/rl-games."""
    code = "import sys, rlg_hotreload, rlg_hotreload.config; print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stdout + r.stderr

"""Static checks of the Isaac Gym backend, which cannot run on any machine here.

mypy checks every gymapi call against the published isaacgym-stubs; vermin
checks the package stays Python 3.8 compatible (Isaac Gym's last Python).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BACKEND = REPO / "isaacgym_tasks" / "isaacgym_backend.py"

# isaacgym-stubs ships gymapi only; gymtorch's two functions are declared here.
GYMTORCH_PYI = """import torch
from .gymapi import Tensor

def wrap_tensor(gym_tensor: Tensor, offsets: object = ..., counts: object = ...) -> torch.Tensor: ...
def unwrap_tensor(torch_tensor: torch.Tensor) -> Tensor: ...
"""


def _stubs_dir():
    """Folder of the installed isaacgym-stubs (a stub-only package, so not importable)."""
    for base in sys.path:
        cand = Path(base) / "isaacgym-stubs"
        if (cand / "gymapi.pyi").is_file():
            return cand
    return None


def _run(cmd, **kw):
    return subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True, timeout=240, **kw)


def test_vermin_finds_nothing_newer_than_python_3_8(tmp_path):
    if shutil.which("vermin") is None:
        pytest.skip("vermin is not installed")
    cmd = ["vermin", "-q", "--no-tips", "-t=3.8-", "--violations"]
    r = _run(cmd + ["isaacgym_tasks"])
    assert r.returncode == 0 and not r.stdout.strip(), r.stdout + r.stderr
    # The check has teeth: Python 3.10 syntax is reported.
    newer = tmp_path / "newer.py"
    newer.write_text("def f(x):\n    match x:\n        case 1:\n            return 2\n")
    r = _run(cmd + [str(newer)])
    assert r.returncode != 0 and r.stdout.strip(), r.stdout


@pytest.mark.slow  # mypy over the package: ~20 s
def test_mypy_checks_isaacgym_backend_against_stubs(tmp_path):
    if shutil.which("mypy") is None:
        pytest.skip("mypy is not installed")
    stubs = _stubs_dir()
    if stubs is None:
        pytest.skip("isaacgym-stubs is not installed")
    # The published stubs name a property `lambda` (a syntax error for mypy); rename it in a copy.
    pkg = tmp_path / "isaacgym"
    pkg.mkdir()
    text = (stubs / "gymapi.pyi").read_text()
    (pkg / "gymapi.pyi").write_text(text.replace("def lambda(", "def lambda_("))
    (pkg / "gymtorch.pyi").write_text(GYMTORCH_PYI)
    (pkg / "__init__.pyi").write_text("from . import gymapi as gymapi\nfrom . import gymtorch as gymtorch\n")
    env = dict(os.environ, MYPYPATH=str(tmp_path))
    cmd = ["mypy", "--config-file", "tests/mypy_isaacgym.ini", "--cache-dir", str(tmp_path / "cache")]
    r = _run(cmd + [str(BACKEND)], env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    # The check has teeth: a wrong gymapi call in a copy of the backend is reported.
    broken = tmp_path / "broken_backend.py"
    src = BACKEND.read_text().replace("gym.create_box(sim, 2 * th[0]", 'gym.create_box(sim, "wide"', 1)
    assert src != BACKEND.read_text()
    broken.write_text(src)
    r = _run(cmd + [str(broken)], env=env)
    assert r.returncode != 0 and 'incompatible type "str"' in r.stdout, r.stdout

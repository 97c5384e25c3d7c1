"""A regular (non-editable) install carries the page, the MJCF asset and the cfg/ presets."""

import os
import subprocess
import sys
import zipfile

import pytest
from helpers.procs import REPO

pytestmark = pytest.mark.slow  # builds and installs a wheel


def test_wheel_ships_static_files_asset_and_presets(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), REPO],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(p for p in os.listdir(tmp_path) if p.endswith(".whl"))
    names = set(zipfile.ZipFile(os.path.join(tmp_path, wheel)).namelist())
    for need in ("rlg_hotreload/stream/static/index.html", "rlg_hotreload/stream/static/app.js",
                 "isaacgym_tasks/assets/blind_grasping.xml", "rlg_hotreload/presets/test.yaml",
                 "rlg_hotreload/presets/test_stream.yaml", "rlg_hotreload/presets/train/BlindGraspingPPO.yaml"):  # fmt: skip
        assert need in names, need
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        os.path.join(tmp_path, wheel)], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr[-2000:]
    code = (
        "import rlg_hotreload.config as c; assert c.__file__.startswith(%r); "
        "cfg = c.load(None, ['config=test_stream']); print(cfg['stream']['enabled'], cfg['task'])"
        % str(target)
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=str(tmp_path), env=dict(os.environ, PYTHONPATH=str(target)),
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0 and r.stdout.split() == ["True", "BlindGrasping"], r.stdout + r.stderr

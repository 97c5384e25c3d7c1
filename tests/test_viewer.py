"""The seed's viewer workflow (`config=test_viewer ... checkpoint=latest`) on a real X server (Xvfb)."""

import os
import shutil
import subprocess
import sys

import pytest
from helpers.procs import REPO, cli_env, run_cli

pytestmark = pytest.mark.slow  # trains a policy


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="xvfb-run not installed (Debian package xvfb)")
def test_test_viewer_preset_opens_the_mujoco_viewer_and_plays(tmp_path):
    r = run_cli(
        ["--cfg", os.path.join(REPO, "cfg", "train_headless.yaml"), "maxEpochs=1"], str(tmp_path), 300
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    env = cli_env()
    env.pop("MUJOCO_GL", None)  # the viewer uses GLFW on the X display
    p = subprocess.run(
        ["xvfb-run", "-a", sys.executable, "-m", "rlg_hotreload.run", "config=test_viewer", "testGamesNum=4",
         "checkpoint=latest"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-3000:]
    assert "Loaded runs/BlindGrasping_" in out and "Summary: 4 games" in out

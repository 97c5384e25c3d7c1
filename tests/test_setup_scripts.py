"""scripts/setup.sh (behind scripts/demo.sh and scripts/test.sh): looks before it installs, says what it does.

Nothing here installs anything: the real install is what CI does once through scripts/test.sh. These
tests run the script's --check mode, and its system-package step against stand-in dpkg-query / apt-get /
sudo / id commands (shims first on PATH) to see which command it would run as root, with sudo, or neither.
"""

import os
import subprocess
import sys

import pytest
from helpers.procs import REPO

SETUP = os.path.join(REPO, "scripts", "setup.sh")


def run_setup(args, env_extra, timeout=60):
    env = dict(os.environ, RLG_PYTHON=sys.executable, **env_extra)
    return subprocess.run(["bash", SETUP, *args], env=env, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)  # fmt: skip


def test_check_says_what_it_would_do_and_changes_nothing(tmp_path):
    venv = tmp_path / "venv"
    r = run_setup(["--dev", "--check"], {"RLG_VENV": str(venv)})
    assert r.returncode == 1, r.stdout + r.stderr  # 1 = something to do
    assert "[setup] would create virtualenv %s from " % venv in r.stdout, r.stdout
    assert "[setup] system packages: " in r.stdout and "[setup] would then install " in r.stdout
    assert not venv.exists()


def test_unknown_option_is_one_line_and_exit_2(tmp_path):
    r = run_setup(["--chek"], {"RLG_VENV": str(tmp_path / "venv")})
    assert r.returncode == 2
    assert r.stderr.strip() == "error: scripts/setup.sh: unknown option '--chek'; allowed: --dev, --check"
    assert not (tmp_path / "venv").exists()


@pytest.mark.skipif(
    os.path.realpath(sys.prefix) != os.path.realpath(os.path.join(REPO, ".venv")),
    reason="run through scripts/test.sh (it makes .venv): checks that its second setup has nothing to do",
)
def test_after_scripts_test_sh_a_second_setup_has_nothing_to_do():
    r = run_setup(["--dev", "--check"], {})
    lines = r.stdout.splitlines()
    for step in ("virtualenv ", "torch ", "rlg-hotreload["):
        assert any(line.startswith("[setup] " + step) and "already there" in line for line in lines), r.stdout
    if r.returncode == 0:
        assert lines[-1] == "[setup] nothing to do", r.stdout
    else:  # only a browser apt could not install (Ubuntu's chromium is a snap) may still be missing
        assert r.returncode == 1 and [line for line in lines if "would" in line] == [
            "[setup] would install system packages: chromium chromium-driver"
        ], r.stdout


def _shims(tmp_path, uid, sudo_ok):
    """Stand-ins: nothing is installed (dpkg-query), we are ``uid``, sudo works without a password or not."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    scripts = {
        "dpkg-query": "exit 1",
        "id": "echo %d" % uid,
        "apt-get": 'echo "apt-get $*" >> %s' % log,
        "sudo": ('[ "$1" = -n ] && exit %d\necho "sudo $1" >> %s\nexec "$@"' % (0 if sudo_ok else 1, log)),
    }
    for name, body in scripts.items():
        p = bin_dir / name
        p.write_text("#!/bin/sh\n%s\n" % body)
        p.chmod(0o755)
    return {"PATH": "%s:%s" % (bin_dir, os.environ["PATH"])}, log


@pytest.mark.parametrize(
    "uid, sudo_ok, runs",
    [(0, False, "apt-get"), (1000, True, "sudo"), (1000, False, None)],
    ids=["root", "sudo", "neither"],
)
def test_system_packages_installed_as_root_or_with_sudo_else_named(tmp_path, uid, sudo_ok, runs):
    env, log = _shims(tmp_path, uid, sudo_ok)
    env["RLG_VENV"] = str(tmp_path / "venv")
    r = subprocess.run(["bash", "-c", 'source "%s" && rlg_system_packages 0 0' % SETUP],
                       env=dict(os.environ, RLG_PYTHON=sys.executable, **env), capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    calls = log.read_text().splitlines() if log.exists() else []
    wanted = "libegl1 libgl1 libegl-mesa0 libglx-mesa0 libgl1-mesa-dri"
    if runs is None:
        assert calls == []
        assert "[setup] not root and no sudo: ask an admin to run: apt-get install %s" % wanted in r.stdout
    else:
        assert calls[-1] == "apt-get install -y -qq --no-install-recommends %s" % wanted, calls
        assert calls[0] == ("sudo env" if runs == "sudo" else "apt-get update -qq"), calls
        assert (
            "[setup] running: %sapt-get install %s" % ("sudo " if runs == "sudo" else "", wanted) in r.stdout
        )

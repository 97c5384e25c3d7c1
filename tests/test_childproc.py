"""Helper processes step aside: a child in a session of its own lowers its autogroup's weight with its
nice value (``rlg_hotreload/childproc.py``), so a frame process cannot take a training run's CPU share."""

import os
import subprocess
import sys

import pytest

from tests.helpers.procs import REPO

AUTOGROUP = os.path.exists("/proc/self/autogroup")

CHILD = (
    "import os; os.setsid();"
    "from rlg_hotreload.childproc import step_aside; step_aside(7);"
    "print(os.nice(0)); print(open('/proc/self/autogroup').read().strip() if os.path.exists('/proc/self/autogroup') else '-')"
)


@pytest.mark.integration  # starts a Python process in a session of its own, as the children are
def test_a_child_in_its_own_session_lowers_its_process_and_its_autogroup():
    base = os.nice(0)
    r = subprocess.run([sys.executable, "-c", CHILD], cwd=REPO, capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=REPO))  # fmt: skip
    assert r.returncode == 0, r.stderr
    nice, group = r.stdout.split("\n")[:2]
    assert int(nice) == min(19, base + 7)
    if AUTOGROUP:  # "/autogroup-<n> nice <level>"
        assert group.split()[-2:] == ["nice", str(min(19, base + 7))], group

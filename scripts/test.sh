#!/usr/bin/env bash
# The whole test suite, from a fresh clone: set up whatever is missing, test tools included
# (scripts/setup.sh --dev), then run pytest in the checkout. Arguments go to pytest:
#   scripts/test.sh -m "not slow and not browser and not integration"      scripts/test.sh tests/test_build.py -x
# .ci/run runs exactly this script.
set -uo pipefail
# shellcheck source=scripts/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
rlg_setup --dev || exit $?
cd "$RLG_ROOT" || exit 1
export VIRTUAL_ENV="$RLG_VENV" PATH="$RLG_VENV/bin:$PATH"  # as `source .venv/bin/activate`: its tools first
export MUJOCO_GL="${MUJOCO_GL:-egl}"  # headless rendering
echo "[test] running: $RLG_VENV/bin/python -m pytest $*"
exec "$RLG_VENV/bin/python" -m pytest "$@"

#!/usr/bin/env bash
# The demo, from a fresh clone: set up whatever is missing (scripts/setup.sh), then train BlindGrasping and
# stream the monitor (python -m rlg_hotreload.demo). Arguments go to the demo: --task Pendulum-v1, --port, ...
# Runs from the checkout, so training writes runs/ there.
set -uo pipefail
# shellcheck source=scripts/setup.sh
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
rlg_setup || exit $?
cd "$RLG_ROOT" || exit 1
export VIRTUAL_ENV="$RLG_VENV" PATH="$RLG_VENV/bin:$PATH"  # as `source .venv/bin/activate`: its tools first
echo "[demo] running: $RLG_VENV/bin/python -m rlg_hotreload.demo $*"
exec "$RLG_VENV/bin/python" -m rlg_hotreload.demo "$@"

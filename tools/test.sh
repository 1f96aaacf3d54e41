#!/usr/bin/env bash
# Set up (first run only) and run the fast test suite. Extra arguments go to pytest
# (e.g. `-m slow` for the long tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export WANDB_MODE=disabled MUJOCO_GL=${MUJOCO_GL:-egl}
exec .venv/bin/python -m pytest "$@"

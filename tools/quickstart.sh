#!/usr/bin/env bash
# Set up (first run only) and run the project's main job: `imitation quickstart`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
exec .venv/bin/imitation quickstart --overwrite "$@"

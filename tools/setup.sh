#!/usr/bin/env bash
# Create (or reuse) the virtual environment in .venv and install the project into it.
# torch is installed first: the CPU build (pinned) when no NVIDIA GPU is present, so that pip does
# not pull a multi-gigabyte CUDA build on machines that cannot use it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        .venv/bin/python -m pip install --quiet "torch>=2.4"
    else
        .venv/bin/python -m pip install --quiet "torch==2.13.0"
    fi
fi
# Reinstall only when the dependency list changed.
stamp=.venv/.imitation-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/python -m pip install --quiet -e ".[dev,metaworld,formats,s3]"
    # Meta-World pins mujoco==3.3.0; envs/metaworld.py runs it on the MuJoCo installed above.
    .venv/bin/python -m pip install --quiet --no-deps "metaworld==3.1.1"
    echo "$want" > "$stamp"
fi

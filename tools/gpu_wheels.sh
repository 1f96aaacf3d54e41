#!/usr/bin/env bash
# Wheels for a GPU machine that has CUDA PyTorch (Python 3.12) but no package registry: what this
# project needs beyond such an image (MuJoCo, zarr, imagecodecs, diffusers, gymnasium, tyro), and
# LeRobot 0.4.4's modelling code with the few packages its import chain needs, so that
# tools/bench_gpu.sh can time LeRobot's models beside ours on the same GPU. Downloaded here, into
# .whl/ (git-ignored), for cp312 manylinux x86_64; bench_gpu.sh installs them there with
# `pip install --no-index --no-deps --target`.
#
#   bash tools/gpu_wheels.sh            # then carry .whl/ to the GPU machine with the checkout
#
# PyAV (LeRobot's video decoding, 35 MB) is left out: the models never touch video, and
# tools/bench_train.py stands a stub in for it when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
PINS=(
    # this project (the versions its CPU environment runs)
    mujoco==4.0.1 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 crc32c imagecodecs==2026.3.6
    diffusers==0.42.1 gymnasium==1.4.0 farama-notifications tyro==1.0.17 docstring-parser
    typeguard==4.6.1 shtab
    # LeRobot's modelling code and its import chain
    lerobot==0.4.4 draccus==0.10.0 mergedeep pyyaml-include toml deepdiff orderly-set datasets dill
    multiprocess
)
for pin in "${PINS[@]}"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "$pin"
done
du -sh .whl

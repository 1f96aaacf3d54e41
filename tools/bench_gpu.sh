#!/usr/bin/env bash
# Every GPU figure of BENCHMARKS.md from one run on a machine with one CUDA GPU, each stage
# time-boxed so that a short lease still returns what it measured (about 9 minutes in all):
#   0. the packages: .whl/ (tools/gpu_wheels.sh) installed into /tmp/site when present;
#   1. the GPU tests (pytest -m gpu): graphed and eager inference agree, draws and device batches
#      equal the CPU's;
#   2. model step and select_action latency at batch 1, ours beside LeRobot 0.4.4's where it
#      imports (same GPU, same batch, bf16 autocast, batches in memory; our inference from CUDA
#      graphs and eagerly): the paper-scale image presets, then the camera preset at the training
#      run's batch;
#   3. the same, ours compiled (torch.compile COMPILE_MODE; compile time reported apart);
#   4. camera-based ACT on PickPlace (joints + top and wrist cameras, no object state,
#      configs/train/pick_place_act_camera_cpu.yaml): DEMOS scripted demos recorded, trained for
#      TRAIN_MIN minutes from the store on the device data path with the schedule fitted to the
#      time, evaluated on EPISODES unseen seeds from 100000. Its steps/s beside stage 2's model
#      step at the same batch is the data path's cost.
#
#   bash tools/bench_gpu.sh [OUT]        # default OUT: bench/gpu
#   env: PYTHON (python3), DEVICE (cuda), TRAIN_MIN (3), EPISODES (100), DEMOS (50), BATCH (32),
#        COMPILE_MODE (max-autotune-no-cudagraphs), STAGES (1234)
#
# Results under OUT: log.txt, gpu_tests.txt, step_lerobot.jsonl, step_compiled.jsonl,
# run/metrics.jsonl, eval/results.json.
set -u
OUT=${1:-bench/gpu}
PY=${PYTHON:-python3}
TRAIN_MIN=${TRAIN_MIN:-3}
EPISODES=${EPISODES:-100}
DEMOS=${DEMOS:-50}
BATCH=${BATCH:-32}
DEVICE=${DEVICE:-cuda}
COMPILE_MODE=${COMPILE_MODE:-max-autotune-no-cudagraphs}
STAGES=${STAGES:-1234}
export MUJOCO_GL=${MUJOCO_GL:-egl} WANDB_MODE=disabled PYTHONUNBUFFERED=1
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
stage() { echo "=== $(date +%T) $*"; }
want() { [[ "$STAGES" == *"$1"* ]]; }

stage "0. GPU and packages"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:.${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
LEROBOT=""
if $PY -c "import sys; sys.path.insert(0, 'tools'); import bench_train; bench_train.stub_video_stack(); import lerobot; print('lerobot', lerobot.__version__)"; then
    LEROBOT="--lerobot"
else
    echo "LeRobot does not import here (above): our figures alone"
fi

if want 1; then
    stage "1. GPU tests"
    timeout 60 $PY -m pytest -q -m gpu tests/policies/test_graphs.py tests/policies/test_common.py \
        tests/test_device_data.py -p no:cacheprovider 2>&1 | tee "$OUT/gpu_tests.txt" | tail -n 15
fi

if want 2; then
    stage "2. model step and latency, eager, ours $([ -n "$LEROBOT" ] && echo "beside LeRobot's")"
    timeout 100 $PY tools/bench_train.py --device "$DEVICE" $LEROBOT --presets act-image dp-image \
        --steps 40 --infer-calls 40 | tee "$OUT/step_lerobot.jsonl"
    timeout 40 $PY tools/bench_train.py --device "$DEVICE" --presets act-camera --batch "$BATCH" \
        --steps 40 --infer-calls 20 | tee -a "$OUT/step_lerobot.jsonl"
fi

if want 3; then
    stage "3. model step, ours compiled ($COMPILE_MODE)"
    timeout 110 $PY tools/bench_train.py --device "$DEVICE" --compile "$COMPILE_MODE" \
        --presets act-image dp-image --steps 40 --infer-calls 4 | tee "$OUT/step_compiled.jsonl"
fi

if want 4; then
    stage "4a. record $DEMOS PickPlace demos (state + top and wrist cameras)"
    timeout 100 $PY -m imitation.cli record --env imitation/PickPlace-v0 --episodes "$DEMOS" --seed 0 \
        --cameras top wrist --out "$OUT/demos.zarr" || exit 1
    stage "4b. train camera ACT for $TRAIN_MIN min (device data path, schedule fitted to the time)"
    timeout $($PY -c "print(int(60 * $TRAIN_MIN + 60))") $PY -m imitation.cli train \
        --config configs/train/pick_place_act_camera_cpu.yaml --store "$OUT/demos.zarr" --out "$OUT/run" \
        --overwrite --device "$DEVICE" --max-minutes "$TRAIN_MIN" --steps 100000 --batch-size "$BATCH" \
        --data-path device --val-every 0 --save-every 100000 --log-every 200 --wandb disabled || exit 1
    tail -n 3 "$OUT/run/metrics.jsonl"
    stage "4c. evaluate on $EPISODES seeds from 100000"
    timeout 150 $PY -m imitation.cli eval --checkpoint "$OUT/run" --env imitation/PickPlace-v0 \
        --episodes "$EPISODES" --seed 100000 --num-envs 16 --device "$DEVICE" --videos 0 --out "$OUT/eval"
fi
stage "done"

#!/usr/bin/env bash
# The GPU rows of BENCHMARKS.md, in one run on a machine with one CUDA GPU:
#   1. training step time and select_action latency of the four PickPlace presets at paper scale
#      (bf16 autocast; Diffusion Policy with 10 DDIM steps), tools/bench_train.py --device cuda;
#   2. one results-table row: image-based ACT on PickPlace (state + 96x96 top camera, no env_state),
#      50 scripted demos, trained for TRAIN_MIN minutes of wall time, evaluated on EPISODES unseen
#      seeds from 100000.
#
#   bash tools/bench_gpu.sh [OUT]        # default OUT: bench/gpu
#   env: PYTHON (python), DEVICE (cuda), TRAIN_MIN (3.5), EPISODES (200), DEMOS (50), BATCH (64),
#        LR (1e-4), BENCH (1; 0 skips stage 1)
#
# Each stage has a time limit and the stages after a failed one still run where they can, so a
# short lease still returns what it measured. Results: OUT/bench_train.jsonl, OUT/eval/results.json,
# OUT/run/metrics.jsonl, OUT/log.txt.
set -u
OUT=${1:-bench/gpu}
PY=${PYTHON:-python}
TRAIN_MIN=${TRAIN_MIN:-3.5}
EPISODES=${EPISODES:-200}
DEMOS=${DEMOS:-50}
BATCH=${BATCH:-64}
LR=${LR:-1e-4}
DEVICE=${DEVICE:-cuda}
BENCH=${BENCH:-1}
export MUJOCO_GL=${MUJOCO_GL:-egl} WANDB_MODE=disabled PYTHONUNBUFFERED=1
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
stage() { echo "=== $(date +%T) $*"; }

stage "GPU"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

stage "model step time and latency (bench_train --device cuda)"
[ "$BENCH" = 1 ] && timeout 150 $PY tools/bench_train.py --device "$DEVICE" --steps 40 --infer-calls 40 | tee "$OUT/bench_train.jsonl"

stage "headless rendering ($MUJOCO_GL)"
if ! timeout 60 $PY -c "
import mujoco
m = mujoco.MjModel.from_xml_string('<mujoco><worldbody><geom size=\".1\"/></worldbody></mujoco>')
r = mujoco.Renderer(m, 32, 32); d = mujoco.MjData(m); r.update_scene(d); print('render ok', r.render().shape)"; then
    echo "no headless rendering: the image row needs MuJoCo rendering (MUJOCO_GL=egl or osmesa)"
    exit 1
fi

stage "record $DEMOS PickPlace demos (state + 96x96 top camera)"
timeout 150 $PY -m imitation.cli record --env imitation/PickPlace-v0 --episodes "$DEMOS" --seed 0 \
    --out "$OUT/demos.zarr" || exit 1

stage "train image ACT for $TRAIN_MIN min (configs/train/act_image.yaml, batch $BATCH, lr $LR)"
timeout $(python3 -c "print(int(60 * $TRAIN_MIN + 90))") $PY -m imitation.cli train \
    --config configs/train/act_image.yaml --store "$OUT/demos.zarr" --out "$OUT/run" \
    --max-minutes "$TRAIN_MIN" --steps 100000 --batch-size "$BATCH" --act.lr "$LR" --act.lr-backbone "$LR" \
    --device "$DEVICE" --num-workers 4 --val-every 0 --save-every 100000 --log-every 100 --wandb disabled || exit 1
tail -n 2 "$OUT/run/metrics.jsonl"

stage "evaluate on $EPISODES seeds from 100000"
timeout 200 $PY -m imitation.cli eval --checkpoint "$OUT/run" --env imitation/PickPlace-v0 \
    --episodes "$EPISODES" --seed 100000 --num-envs 16 --device "$DEVICE" --videos 0 --out "$OUT/eval"
stage "done"

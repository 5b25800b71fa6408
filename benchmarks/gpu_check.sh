#!/usr/bin/env bash
# The GPU checks of the training stage, in one run (<= 10 minutes on one H200): the real
# InternVL3.5-4B shape with random weights, upstream's sequence lengths, bf16.
#   1. forward + backward per task, one GPU (benchmarks/model_step.py --real-4b)
#   2. 30 optimizer steps through our DeepSpeed ZeRO-2 engine on every visible GPU (benchmarks/train_4b.py)
# Each prints samples/s, tokens/s, peak memory and MFU; the last lines are their RESULT lines.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
GPUS=$("$PY" -c "from sa2va_st.devices import visible_gpu_count; print(visible_gpu_count())")
if [ "$GPUS" -lt 1 ]; then
    echo "gpu_check: no GPU visible (CUDA_VISIBLE_DEVICES / nvidia-smi)" >&2
    exit 1
fi
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
export PYTHONWARNINGS=ignore TOKENIZERS_PARALLELISM=false
timeout 240 "$PY" benchmarks/model_step.py --real-4b --steps 10 --warmup 2 | tee /tmp/gpu_check_model_step.txt
timeout 330 "$(dirname "$PY")/torchrun" --standalone --nproc-per-node "$GPUS" benchmarks/train_4b.py --steps 30 \
    | tee /tmp/gpu_check_train_4b.txt
grep '^RESULT' /tmp/gpu_check_model_step.txt /tmp/gpu_check_train_4b.txt

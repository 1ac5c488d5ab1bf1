#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md in one run (minutes), for a machine where
# `crossrt doctor --device cuda` says ready. Writes JSON results and logs to OUT_DIR.
#
#   benchmarks/gpu_check.sh MNIST_DIR OUT_DIR [GPU_LIMIT_PROBE]
#
# 1. doctor, 2. the CUDA tests, 3. 100-epoch training, fp32 and bf16 (CUDA graphs on), 4. the
# reference's recipe per epoch, and the probe of its limit when the probe's path is given, on
# the same GPU in the same run, 5. bench-infer on CUDA and CPU: end-to-end, device-resident
# and cuda-graph rows, parity.
set -euo pipefail
data=${1:?usage: benchmarks/gpu_check.sh MNIST_DIR OUT_DIR [GPU_LIMIT_PROBE]}
out=${2:?usage: benchmarks/gpu_check.sh MNIST_DIR OUT_DIR [GPU_LIMIT_PROBE]}
probe=${3:-}
py=${PYTHON:-python3}
mkdir -p "$out"
step() { echo "== $*" | tee -a "$out/steps.log"; }

step doctor
$py -m crossrt doctor --device cuda | tee "$out/doctor.txt"
step cuda tests
$py -m pytest -q -m cuda tests 2>&1 | tail -5 | tee "$out/cuda-tests.txt"
for precision in fp32 bf16; do
  step "train 100 epochs $precision"
  $py -m crossrt train --device cuda --data-dir "$data" --dataset mnist --precision "$precision" \
    --out "$out/exports-$precision" --json "$out/train-$precision.json" | tail -25 | tee "$out/train-$precision.txt"
done
step "the reference recipe on the same GPU, 3 epochs"
$py benchmarks/reference_recipe.py --device cuda --epochs 3 --data-dir "$data" --dataset mnist \
  --json "$out/reference-recipe.json" | tail -5 | tee "$out/reference-recipe.txt"
if [ -n "$probe" ]; then
  step "probe $probe"
  $py "$probe" "$data" --variants graph,graph-bf16 | tee "$out/probe.jsonl"
fi
step bench-infer
$py -m crossrt bench-infer --model "$out/exports-fp32/lenet5.onnx" --data-dir "$data" --dataset mnist \
  --provider cuda,cpu --threads 1,16 --batch-size 100,1000 --json "$out/bench-infer.json" | tee "$out/bench-infer.txt"

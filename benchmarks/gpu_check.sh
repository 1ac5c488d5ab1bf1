#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md in one run (minutes), step by step: a step that fails is logged
# and the next one runs; the last line lists the steps that failed (exit 1 when any did).
#
#   benchmarks/gpu_check.sh [--dry-run] MNIST_DIR OUT_DIR [GPU_LIMIT_PROBE]
#
# It runs crossrt from this tree (PYTHONPATH) with $PYTHON (default python3) and installs nothing,
# so it works on an offline GPU machine that has a CUDA build of torch, onnx, numpy, rich and
# pytest. What each step needs is said beside it; onnxruntime-gpu is needed only for the ONNX
# Runtime CUDA parts (the doctor's ORT CUDA line, bench-infer's ORT CUDA rows, the ORT CUDA tests).
# Training and the reference recipe (and the probe, when its path is given) run first, while the
# machine is fresh; the tests run last. --dry-run prints each step's command and runs none.
# DEVICE=cpu (with EPOCHS, THREADS, BATCHES to fit a small dataset) runs the same steps on a CPU: a
# check of the script itself.
set -uo pipefail
dry=0
if [ "${1:-}" = "--dry-run" ]; then dry=1; shift; fi
usage="usage: benchmarks/gpu_check.sh [--dry-run] MNIST_DIR OUT_DIR [GPU_LIMIT_PROBE]"
# Every step runs from the tree's root: paths given relative to where the script was started are
# made absolute first.
absolute() { case $1 in /*|"") echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
data=$(absolute "${1:?$usage}")
out=$(absolute "${2:?$usage}")
probe=$(absolute "${3:-}")
py=${PYTHON:-python3}
device=${DEVICE:-cuda}
epochs=${EPOCHS:-100}
threads=${THREADS:-1,16}
batches=${BATCHES:-100,1000}
root=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
providers=$([ "$device" = cuda ] && echo cuda,cpu || echo cpu)
failed=()

# step NAME NEEDS COMMAND...: run COMMAND from the tree, its output in OUT_DIR/NAME.log.
step() {
  local name=$1 needs=$2
  shift 2
  echo "== $name (needs $needs)"
  echo "   $*"
  [ "$dry" = 1 ] && return 0
  (cd "$root" && "$@") >"$out/$name.log" 2>&1
  local code=$?
  if [ "$code" = 0 ]; then
    echo "   ok"
  else
    echo "   FAILED (exit $code); the end of $out/$name.log:"
    tail -n 5 "$out/$name.log" | sed 's/^/   | /'
    failed+=("$name")
  fi
}

[ "$dry" = 1 ] || mkdir -p "$out"
for precision in fp32 bf16; do
  step "train-$precision" "torch (a CUDA build for DEVICE=cuda), onnx, onnxruntime (its CPU provider checks the export)" \
    "$py" -m crossrt train --device "$device" --data-dir "$data" --dataset mnist --precision "$precision" \
    --epochs "$epochs" --out "$out/exports-$precision" --json "$out/train-$precision.json"
done
step reference-recipe "torch" \
  "$py" benchmarks/reference_recipe.py --device "$device" --epochs 3 --data-dir "$data" --dataset mnist \
  --json "$out/reference-recipe.json"
if [ -n "$probe" ]; then
  step probe "torch" "$py" "$probe" "$data" --device "$device" --epochs "$epochs" --variants graph,graph-bf16
fi
step torchrun-1-rank "torch with NCCL (gloo for DEVICE=cpu)" \
  "$py" -m torch.distributed.run --nproc-per-node 1 -m crossrt train --device "$device" --epochs 2 \
  --data-dir "$data" --dataset mnist --no-export --out "$out/exports-ranked" --json "$out/train-ranked.json"
step doctor "torch, onnx, onnxruntime; onnxruntime-gpu for its ORT CUDA line" \
  "$py" -m crossrt doctor --device "$device" --data-dir "$data"
step bench-infer "onnxruntime (onnxruntime-gpu for the ORT CUDA rows), the model train-fp32 wrote" \
  "$py" -m crossrt bench-infer --model "$out/exports-fp32/lenet5.onnx" --data-dir "$data" --dataset mnist \
  --provider "$providers" --threads "$threads" --batch-size "$batches" --json "$out/bench-infer.json"
step tests "pytest; onnxruntime-gpu for the ORT CUDA tests" "$py" -m pytest -q -m cuda tests

echo "failed steps: ${failed[*]:-none}"
[ "${#failed[@]}" = 0 ]

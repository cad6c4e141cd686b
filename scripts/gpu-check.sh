#!/usr/bin/env bash
# The GPU checks in one run, for a machine with an NVIDIA GPU and its own PyTorch (it may
# have no network, so nothing is installed: vaekit runs from src/). In order:
#   1. what the machine is (GPU, driver, torch, CUDA),
#   2. the tests that need CUDA (tests/test_cuda.py) and the fast-path tests,
#   3. `vaekit bench --device cuda`: the seed notebook (on the CPU, as it is written)
#      against the plain loop, the CUDA-graph loop, the floor and `vaekit train` on the GPU.
# Everything it writes goes to $OUT (default gpu-check/): machine.txt, tests.log,
# bench.log, gpu.json, gpu.md. Sized for one 10-minute device run (an estimate: it has
# been rehearsed on a CPU with DEVICE=cpu, not yet run on a GPU).
#
#   MNIST=path/to/mnist PYTHON=python3 OUT=gpu-check scripts/gpu-check.sh
#
# MNIST defaults to .device/mnist (a copy of ../shared/data/mnist carried along with the
# checkout); REPETITIONS (default 2) and PRECISIONS (default fp32,bf16,fp16) size the bench,
# BENCH_ARGS adds flags to it, and DEVICE=cpu rehearses the whole script on a CPU machine:
#   DEVICE=cpu PRECISIONS=fp32 BENCH_ARGS="--quick --eval-images 20" scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
MNIST=$(realpath "${MNIST:-.device/mnist}")
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export VAEKIT_TEST_MNIST="$MNIST"
status=0

{
    date -u +"%Y-%m-%d %H:%M UTC"
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv
    "$PYTHON" -c 'import sys, torch; print("python", sys.version.split()[0], "torch",
        torch.__version__, "cuda", torch.version.cuda, torch.cuda.is_available() and
        torch.cuda.get_device_name(0))'
    lscpu | grep -E "^(Model name|CPU\(s\))"
} 2>&1 | tee "$OUT/machine.txt"

"$PYTHON" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py tests/test_fast_paths.py \
    2>&1 | tee "$OUT/tests.log" || status=1

"$PYTHON" -m vaekit bench --device "${DEVICE:-cuda}" --data-dir "$MNIST" \
    --parts seed,plain,graphed,floor,vaekit,eval --eval-images 10000 \
    --repetitions "${REPETITIONS:-2}" --precisions "${PRECISIONS:-fp32,bf16,fp16}" \
    --json "$OUT/gpu.json" --markdown "$OUT/gpu.md" ${BENCH_ARGS:-} 2>&1 |
    tee "$OUT/bench.log" || status=1

exit $status

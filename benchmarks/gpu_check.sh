#!/usr/bin/env bash
# Check and measure neurodyn on an NVIDIA GPU in one go.
#
#   bash benchmarks/gpu_check.sh [--quick]   install the [gpu] extra (CuPy), run the GPU tests (none may
#                                            skip), run the GPU benchmarks: tables and plots go to
#                                            benchmarks/results/*_cuda.{md,csv}
#   bash benchmarks/gpu_check.sh --dry-run   on a machine without a GPU: check everything up to where
#                                            one is needed (the package and benchmarks import, the GPU
#                                            tests collect, the CUDA sources compile for sm_80/sm_90 with
#                                            nvcc when installed) and print what would run
#
# PYTHON: the interpreter to use (default .venv/bin/python, else python3).  On the GPU machine it
# needs a CUDA build of torch; the check stops with the reason when torch or CuPy cannot see a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

DRY=0
QUICK=""
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY=1 ;;
        --quick) QUICK="--quick" ;;
        -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check: unknown option '$arg' (use --dry-run, --quick)" >&2; exit 2 ;;
    esac
done
if [ -n "${PYTHON:-}" ]; then PY=$PYTHON; elif [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi

GPU_TESTS="tests/kernels/test_cuda_kernels.py tests/kernels/test_cuda_recurrent.py tests/kernels/test_delay_gpu.py tests/core/test_gpu.py tests/nn/test_gpu_stack.py tests/train/test_device.py"
BENCHMARKS="batch_run lif_sweep open_neuromorphic recurrent delays_shd"
INSTALL="$PY -m pip install -e .[gpu]"
TESTS="$PY -m pytest -q -rs $GPU_TESTS"
BENCH="$PY -m benchmarks $BENCHMARKS${QUICK:+ $QUICK} -- --device cuda"

step() { echo; echo "== $*"; }

step "1/4 install the GPU extra"
"$PY" - <<'EOF'
import tomllib
extras = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]
if "gpu" not in extras:
    raise SystemExit("gpu_check: pyproject.toml has no [gpu] extra")
print("gpu extra:", ", ".join(extras["gpu"]))
EOF
if [ "$DRY" = 1 ]; then echo "would run: $INSTALL"; else $INSTALL; fi

step "2/4 the GPU"
STATUS=$("$PY" - <<'EOF'
import torch
from neurodyn.kernels import cupy_status
why = cupy_status() or (None if torch.cuda.is_available() else f"torch {torch.__version__} sees no CUDA device")
print(f"ok: {torch.cuda.get_device_name(0)}, torch {torch.__version__}" if why is None else f"no GPU: {why}")
EOF
)
echo "$STATUS"
if [ "$DRY" = 0 ] && [ "${STATUS#ok}" = "$STATUS" ]; then
    echo "gpu_check: stopping, the GPU tests and benchmarks need a usable GPU ($STATUS)" >&2
    exit 1
fi

step "3/4 GPU tests"
if [ "$DRY" = 1 ]; then
    # what runs without a GPU: the nvcc compiles (the rest runs in the test suite); the tests that
    # need the GPU skip and are listed
    "$PY" -m pytest -q -p no:cacheprovider -k "compiles or cupy" $GPU_TESTS | tail -n 1
    echo "the tests that need the GPU (skipped here):"
    "$PY" -m pytest -q --collect-only -p no:cacheprovider -k "cupy" $GPU_TESTS | grep "::" | sed 's/^/    /'
    echo "would run: $TESTS"
else
    LOG=$(mktemp)
    $TESTS | tee "$LOG"
    if grep -q "no usable GPU backend" "$LOG"; then
        echo "gpu_check: GPU tests were skipped on a GPU machine (see above)" >&2
        exit 1
    fi
    rm -f "$LOG"
fi

step "4/4 GPU benchmarks"
for b in $BENCHMARKS; do
    "$PY" -m benchmarks."$b" --help | grep -q -- "--device" || { echo "gpu_check: benchmarks.$b has no --device" >&2; exit 1; }
    echo "benchmarks.$b: writes benchmarks/results/${b}_cuda.md"
done
if [ "$DRY" = 1 ]; then
    echo "would run: $BENCH"
    echo "dry run done: nothing above needed a GPU"
else
    $BENCH
    echo "GPU results written; record them:"
    git status --short benchmarks/results
fi

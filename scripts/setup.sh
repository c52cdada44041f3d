#!/usr/bin/env bash
# Create .venv with neurodyn and its test peers, staying on the CPU build of torch.
# Usage: bash scripts/setup.sh   (idempotent; ~2 minutes on a fresh machine)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The CPU build of torch 2.13.0 (pip takes it from the local wheel store on these machines);
# the constraint keeps every later install from pulling a multi-GB CUDA torch.
CONSTRAINT=$(mktemp)
echo "torch==2.13.0" > "$CONSTRAINT"
python -m pip install -q -c "$CONSTRAINT" "torch==2.13.0"
python -m pip install -q -c "$CONSTRAINT" -e ".[dev,nir,docs]"
# SpikingJelly (peer in tests) declares torchaudio/torchvision, which it does not need for neurons.
python -m pip install -q --no-deps "spikingjelly==2.0.0"
rm -f "$CONSTRAINT"
python -c "import torch, numba, neurodyn; print('neurodyn ready: torch', torch.__version__, 'numba', numba.__version__)"

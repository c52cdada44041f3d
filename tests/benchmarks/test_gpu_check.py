"""The GPU check script's dry run (everything short of a GPU) and the recurrent-layer benchmark at toy sizes."""
import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_gpu_check_dry_run_needs_no_gpu():
    r = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--quick"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHON": sys.executable}, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "would run: " in out and "pip install -e .[gpu]" in out
    assert "pytest -q -rs tests/kernels/test_cuda_kernels.py tests/kernels/test_cuda_recurrent.py" in out
    assert "-m benchmarks batch_run lif_sweep open_neuromorphic recurrent delays_shd --quick -- --device cuda" in out
    for name in ("batch_run", "lif_sweep", "open_neuromorphic", "recurrent"):
        assert f"benchmarks/results/{name}_cuda.md" in out
    assert "test_cupy_recurrent_matches_numba_on_gpu" in out  # the GPU tests it would run, listed
    assert "dry run done" in out


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_gpu_check_rejects_unknown_options():
    r = subprocess.run(["bash", str(SCRIPT), "--fast"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "unknown option '--fast'" in r.stderr


def test_recurrent_benchmark_tiny(tmp_path, monkeypatch):
    common = pytest.importorskip("benchmarks.common")
    monkeypatch.setenv("NEURODYN_BENCH_TINY", "1")
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    from benchmarks import recurrent
    recurrent.main(["--device", "cpu"])
    with open(tmp_path / "recurrent.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["neuron"], r["backend"]) for r in rows} == {(n, b) for n in ("LIF", "ALIF") for b in ("numba", "torch")}
    for r in rows:
        assert float(r["train_ms"]) > 0 and float(r["infer_ms"]) > 0
        if r["backend"] == "numba":  # the fused kernel reproduces the reference loop
            assert float(r["spike_mismatch"]) == 0.0 and float(r["rel_grad_diff"]) < 1e-4, r
    assert (tmp_path / "recurrent.md").read_text().startswith("## Recurrent layer")

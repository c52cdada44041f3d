"""Every script in examples/ runs (its ``main(out)``, as ``python examples/<name>.py`` does) and
shows what it says it shows; each takes well under a minute on 2 cores."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_example_has_a_test():
    names = {p.stem for p in EXAMPLES.glob("*.py")}
    tested = {n[len("test_"):] for n in globals() if n.startswith("test_") and n[len("test_"):] in names}
    assert names == tested, f"examples without a test here: {sorted(names - tested)}"


def _plots_written(result: dict) -> None:
    for key, value in result.items():
        if isinstance(value, Path) and value.suffix == ".png":
            assert value.stat().st_size > 5_000, key


def test_lif_neuron(tmp_path):
    r = _load("lif_neuron").main(tmp_path)
    assert r["membrane_error"] < 1e-12          # the exact exponential, float64
    assert r["count_mismatch"] == 0             # every current fires as often as the closed form says
    _plots_written(r)


def test_feedforward_nmnist(tmp_path):
    r = _load("feedforward_nmnist").main(tmp_path, epochs=4)
    assert r["test_accuracy"] >= 0.85            # chance 0.1
    assert r["event_core_agrees"]
    _plots_written(r)


def test_recurrent_shd(tmp_path):
    r = _load("recurrent_shd").main(tmp_path, epochs=20)
    assert r["test_accuracy"] >= 0.9             # chance 0.05; a feed-forward MLP gets ~0.5 here
    assert r["event_core_agrees"]
    _plots_written(r)


def test_export_to_chip(tmp_path):
    r = _load("export_to_chip").main(tmp_path, epochs=4)
    assert r["float_accuracy"] >= 0.8
    assert r["int_accuracy"] >= r["float_accuracy"] - 0.05   # 8-bit weights cost little
    assert r["bit_exact"] and r["hdf5_same"]
    assert r["nir_error"] < 1e-5                             # float32 model vs its float64 NIR rebuild
    _plots_written(r)


def test_conv_nmnist(tmp_path):
    r = _load("conv_nmnist").main(tmp_path, epochs=6)
    assert r["test_accuracy"] >= 0.85            # chance 0.1
    _plots_written(r)


def test_early_exit(tmp_path):
    r = _load("early_exit").main(tmp_path, epochs=6)
    assert r["mean_steps"] < 0.6 * r["full_steps"]            # most of each sample is skipped
    assert r["accuracy"] >= r["full_accuracy"] - 0.06         # for at most a few points
    _plots_written(r)


def test_neural_ode(tmp_path):
    pytest.importorskip("sklearn")
    r = _load("neural_ode").main(tmp_path, epochs=15)
    assert r["plain"]["accuracy"] >= 0.9 and r["regularized"]["accuracy"] >= r["plain"]["accuracy"] - 0.02
    assert r["regularized"]["nfe"] < 0.75 * r["plain"]["nfe"]   # the point: cheaper solves
    _plots_written(r)


def test_learnable_delays(tmp_path):
    r = _load("learnable_delays").main(tmp_path, epochs=12)
    assert r["accuracy_delays"] >= r["accuracy_plain"] + 0.2   # the sample's classes differ by timing
    assert r["event_core_agrees"]
    _plots_written(r)


def test_ltc_cfc(tmp_path):
    r = _load("ltc_cfc").main(tmp_path, epochs=30)
    acc = r["accuracy"]
    assert acc["CfC, elapsed times"] >= 0.85 and acc["LTC (numba), elapsed times"] >= 0.9   # chance 1/3
    assert acc["CfC, elapsed times"] >= acc["CfC, gaps taken as 1"] + 0.2                   # time is the cue
    assert acc["LTC (numba), elapsed times"] >= acc["LTC (numba), gaps taken as 1"] + 0.2
    assert r["kernel_error"] < 1e-4            # float32 fused kernel vs the torch loop, 32 steps x 3 unfolds
    _plots_written(r)


def test_streaming(tmp_path):
    r = _load("streaming").main(tmp_path)
    assert r["stream_equals_whole_run"]                          # 10 ms chunks == one run, to the bit
    assert (r["steps"] < r["lengths"]).any() and (r["steps"] == r["lengths"]).any()  # some exit, some run out
    assert r["skipped"] > 0.1
    _plots_written(r)

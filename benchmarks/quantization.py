"""Quantization: float vs fixed-point accuracy of trained spiking MLPs, run in the bit-exact integer simulator.

For each data set (default: the SHD-format and N-MNIST-format samples in datasets/) a spiking
MLP is trained with neurodyn.train (configs/<kind>_mlp.toml), then quantized
(neurodyn.export.quantize) to several formats -- the Loihi-like preset (8-bit weights), the
same with 6- and 4-bit weights, and a wide 16-bit format -- with per-layer scales from 64
training samples, plus the Loihi preset without calibration.  Each integer network is scored on
the test split by the integer simulator (every sample its own length).  Low bit widths are
also fine-tuned with quantization-aware training (neurodyn.export.qat, straight-through
estimator) before quantizing.  Table: benchmarks/results/quantization.md/.csv; plot:
quantization.png (accuracy vs weight bits).

    python -m benchmarks.quantization [--quick] [--data PATH ...] [--epochs N] [--qat-epochs N]
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from .common import CONFIGS, add_data_arguments, data_kind, data_paths, write_table



def _formats(quick: bool):
    """(label, format, calibrate, qat) rows to evaluate."""
    from neurodyn.export import get_format
    loihi = get_format("loihi")
    rows = [("loihi (no calib)", loihi, False, False), ("loihi", loihi, True, False),
            ("loihi w6", loihi.replace(name="loihi-w6", weight_bits=6), True, False),
            ("loihi w4", loihi.replace(name="loihi-w4", weight_bits=4), True, False),
            ("wide16", get_format("wide16"), True, False),
            ("loihi w4 + QAT", loihi.replace(name="loihi-w4", weight_bits=4), True, True)]
    if not quick:
        rows.append(("loihi + QAT", loihi, True, True))
    return rows


def _fine_tune(model, fmt, calib, train_ds, loss: str, epochs: int, lr: float, seed: int):
    """Quantization-aware fine-tuning of a copy of ``model``; returns (QuantizedNetwork, the
    fine-tuned float model without fake quantization)."""
    from neurodyn.data import pad_collate
    from neurodyn.export import qat
    from neurodyn.train.losses import loss_fn

    m = copy.deepcopy(model)
    h = qat(m, fmt, calib=calib)
    opt = torch.optim.Adam(m.parameters(), lr=lr)
    lf = loss_fn(loss)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        m.train()
        for x, y, lengths in DataLoader(train_ds, batch_size=32, shuffle=True, collate_fn=pad_collate, generator=g):
            out = m(x.reshape(x.shape[0], x.shape[1], -1))
            opt.zero_grad()
            lf(out, y, lengths).backward()
            opt.step()
    m.eval()
    q = h.quantize(calib=calib)
    return q, h.remove()


def run_one(path: Path, epochs: int | None, qat_epochs: int, quick: bool, out: Path) -> list[dict]:
    from neurodyn.data import load_dataset
    from neurodyn.export.evaluate import calibration_input, evaluate_quantized
    from neurodyn.train import load_config, train
    from neurodyn.train.evaluation import eval_run, load_run, resolve_checkpoint

    kind = data_kind(path)
    sets = [f'data.path="{path}"', f'out="{out}"'] + ([f"train.epochs={epochs}"] if epochs is not None else [])
    cfg = load_config(CONFIGS[kind] if CONFIGS[kind].is_file() else None, sets)
    train(cfg, plots=False)
    run = load_run(resolve_checkpoint(run=out))
    train_ds, _ = load_dataset(cfg.data.path, dt_us=cfg.data.bin_us, channel_pool=cfg.data.channel_pool,
                               seed=cfg.train.seed)
    loss = cfg.train.loss
    float_acc = eval_run(run, progress=False)["accuracy"]
    calib = calibration_input(train_ds, 64, seed=cfg.train.seed)
    rows = []
    for label, fmt, calibrate, fine_tune in _formats(quick):
        t0 = time.perf_counter()
        ft_float = ""
        if fine_tune:
            model, tuned = _fine_tune(run.model, fmt, calib, train_ds, loss, qat_epochs, lr=cfg.train.lr / 5,
                                      seed=cfg.train.seed)
            ft_float = eval_run(dataclasses.replace(run, model=tuned), progress=False)["accuracy"]
        else:
            model = run.model
        m = evaluate_quantized(model, run.test_loader(), fmt, loss=loss, calib=calib if calibrate else None,
                               n_classes=run.n_classes, progress=False)
        rows.append({"data": kind, "format": label, "weight_bits": fmt.weight_bits, "state_bits": fmt.state_bits,
                     "frac_bits": fmt.frac_bits, "calibrated": calibrate, "qat_epochs": qat_epochs if fine_tune else 0,
                     "test_samples": m["n_samples"], "float_acc": float_acc, "int_acc": m["accuracy"],
                     "delta_points": 100.0 * (m["accuracy"] - float_acc), "qat_float_acc": ft_float,
                     "saturations": m["saturations"],
                     "seconds": time.perf_counter() - t0})
        print(f"{kind:8s} {label:18s} float {float_acc:.3f}  integer {m['accuracy']:.3f}  "
              f"saturations {m['saturations']}")
    return rows


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(ap, "2 training epochs, 1 QAT epoch, fewer formats", "training epochs (default: the config's)")
    ap.add_argument("--qat-epochs", type=int, help="quantization-aware fine-tuning epochs (default 3, quick 1)")
    a = ap.parse_args(argv)
    paths = data_paths(a, "quantization")
    epochs = a.epochs if a.epochs is not None else (2 if a.quick else None)
    qat_epochs = a.qat_epochs if a.qat_epochs is not None else (1 if a.quick else 3)
    rows = []
    with tempfile.TemporaryDirectory(prefix="neurodyn_quant_") as tmp:
        for k, p in enumerate(paths):
            rows += run_one(p, epochs, qat_epochs, a.quick, Path(tmp) / f"{k}_{p.name}")
    name = "quantization_quick" if a.quick else "quantization"
    text = write_table(name, rows, "## Quantization: float vs fixed-point (integer simulator) test accuracy",
                       notes=["int_acc: the quantized network run by the bit-exact integer simulator "
                              "(neurodyn.export.simulate), each test sample for its own number of steps.",
                              "delta_points = 100 * (int_acc - float_acc); the aim is >= -1 at the Loihi-like preset.",
                              "QAT rows fine-tune the trained model for qat_epochs more epochs with fake "
                              "quantization; qat_float_acc is that fine-tuned model run in float (so extra training "
                              "and quantization effects can be told apart).",
                              "calibrated: per-layer state scales from the integer network's peaks on 64 training "
                              "samples; otherwise from the parameters alone.",
                              "sample data (datasets/) are small stand-ins in the real formats: one test sample is "
                              "0.5 (SHD sample, 200) or 1 (N-MNIST sample, 100) points."])
    from .plots import plot_lines
    series: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        if not r["calibrated"]:
            continue
        series.setdefault(f"{r['data']} float", []).append((r["weight_bits"], r["float_acc"]))
        key = f"{r['data']} integer" + (" + QAT" if r["qat_epochs"] else "")
        series.setdefault(key, []).append((r["weight_bits"], r["int_acc"]))
    plot_lines(series, name, "Test accuracy vs weight bits (integer simulator)", "weight mantissa bits",
               "test accuracy", logx=False, logy=False)
    print(text)
    return text


if __name__ == "__main__":
    main()

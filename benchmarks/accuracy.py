"""Accuracy: train and evaluate the standard SHD and N-MNIST spiking MLPs with the trainer
(``neurodyn.train.train``), recording test accuracy, epochs and time.

By default the sample data in datasets/ (real file formats, small): ``--data PATH`` points to
the real SHD folder (shd_train.h5, shd_test.h5) or N-MNIST root (Train/, Test/) instead
(repeatable).  The config is configs/shd_mlp.toml or configs/nmnist_mlp.toml (whichever fits
the data) when present, else the trainer's defaults; ``--config`` picks one explicitly.

    python -m benchmarks.accuracy [--quick] [--data PATH ...] [--epochs N] [--out DIR]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .common import CONFIGS, ROOT, add_data_arguments, data_kind, data_paths, write_table





def run_one(path: Path, config: Path | None, epochs: int | None, out: Path) -> tuple[dict, list]:
    """Train on ``path``; returns the table row and the test-accuracy curve [(epoch, acc)]."""
    from neurodyn.train import load_config, train
    kind = data_kind(path)
    cfg_path = config if config is not None else (CONFIGS[kind] if CONFIGS[kind].is_file() else None)
    sets = [f'data.path="{path}"', f'out="{out}"']
    if epochs is not None:
        sets.append(f"train.epochs={epochs}")
    cfg = load_config(cfg_path, sets)
    t0 = time.perf_counter()
    m = train(cfg, plots=False)
    seconds = time.perf_counter() - t0
    h = m["history"]
    row = {"data": kind, "path": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
           "config": cfg_path.name if cfg_path else "defaults", "model": f"{cfg.model.get('kind')} {cfg.model.get('hidden')}",
           "epochs": len(h["epoch"]), "test_accuracy": m["test_accuracy"], "best_test_accuracy": max(h["test_acc"]),
           "train_accuracy": h["train_acc"][-1], "chance": 1.0 / m["n_classes"], "train_s": seconds,
           "s_per_epoch": sum(h["seconds"]) / max(1, len(h["seconds"]))}
    return row, list(zip(h["epoch"], h["test_acc"]))


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(ap, "1 epoch per data set", "override the config's epochs")
    ap.add_argument("--config", help="TOML config for every data set (default: configs/<kind>_mlp.toml)")
    ap.add_argument("--out", help="folder for the run folders (default: a temporary folder, removed after)")
    a = ap.parse_args(argv)
    paths = data_paths(a, "accuracy")
    epochs = a.epochs if a.epochs is not None else (1 if a.quick else None)
    rows, curves = [], {}
    with tempfile.TemporaryDirectory(prefix="neurodyn_acc_") as tmp:
        base = Path(a.out) if a.out else Path(tmp)
        for k, p in enumerate(paths):
            row, curve = run_one(p, Path(a.config) if a.config else None, epochs, base / f"{k}_{p.name}")
            rows.append(row)
            curves[f"{row['data']} ({p.name})"] = curve
    text = write_table("accuracy", rows, "## Accuracy: spiking MLPs trained with neurodyn.train on SHD / N-MNIST",
                       notes=["sample data (datasets/) are small stand-ins in the real formats: their accuracies "
                              "say the pipeline learns, not what the real data sets reach.",
                              "train_s: wall time of train() (all epochs, test evaluation after each)."])
    from .plots import plot_lines
    plot_lines(curves, "accuracy", "Test accuracy per epoch", "epoch", "test accuracy", logx=False, logy=False)
    print(text)
    return text


if __name__ == "__main__":
    main()

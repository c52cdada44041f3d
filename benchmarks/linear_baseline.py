"""The linear baseline a spiking recipe has to beat: logistic regression on binned spike counts.

Each sample's events are counted per (time bin, channel group): SHD-format data in
``time_bins`` bins over the longest sample and 700 channels summed in groups of
``channel_group``; N-MNIST-format data in ``time_bins`` bins x 2 polarities x 34 x 34 pixels.
Counts go through log1p and standardisation; the inverse regularisation C is chosen by 3-fold
cross-validation on the training split only, and the model is scored once on the test split.

    python -m benchmarks.linear_baseline [--data PATH ...]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .common import add_data_arguments, data_kind, data_paths


def count_features(ds, time_bins: int, channel_group: int, t_max: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(features [N, time_bins * groups], labels [N])`` from an EventDataset of frames [T, ...]."""
    frames = [ds[i][0].numpy() for i in range(len(ds))]
    t_max = t_max or max(f.shape[0] for f in frames)
    edges = np.linspace(0, t_max, time_bins + 1).round().astype(int)
    feats = []
    for f in frames:
        f = f.reshape(f.shape[0], -1)
        if f.shape[1] % channel_group == 0 and channel_group > 1:
            f = f.reshape(f.shape[0], -1, channel_group).sum(-1)
        steps = np.minimum(np.arange(f.shape[0]), t_max - 1)
        binned = np.zeros((time_bins, f.shape[1]), np.float64)
        np.add.at(binned, np.searchsorted(edges, steps, side="right") - 1, f)
        feats.append(binned.ravel())
    return np.log1p(np.stack(feats)), np.asarray(ds.labels, dtype=np.int64)


def logistic_regression(path: Path, seed: int = 0) -> dict:
    """Fit on the training split of ``path`` and score on its test split; returns the row."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from neurodyn.data import load_dataset
    kind = data_kind(path)
    time_bins, group = (10, 10) if kind == "SHD" else (3, 1)
    train_ds, test_ds = load_dataset(path, dt_us=10_000)
    t0 = time.perf_counter()
    t_max = max(max(train_ds[i][0].shape[0] for i in range(len(train_ds))),
                max(test_ds[i][0].shape[0] for i in range(len(test_ds))))
    x_tr, y_tr = count_features(train_ds, time_bins, group, t_max)
    x_te, y_te = count_features(test_ds, time_bins, group, t_max)
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    folds = int(min(3, np.bincount(y_tr).min())) if len(np.unique(y_tr)) > 1 else 0
    if folds >= 2:
        model = GridSearchCV(pipe, {"logisticregression__C": [0.01, 0.1, 1.0]}, cv=folds).fit(x_tr, y_tr)
        c = model.best_params_["logisticregression__C"]
    else:  # too few samples per class to cross-validate
        model, c = pipe.fit(x_tr, y_tr), 1.0
    return {"data": kind, "features": f"{time_bins} time bins x {x_tr.shape[1] // time_bins} channel groups",
            "C": c, "train_accuracy": float(model.score(x_tr, y_tr)), "test_accuracy": float(model.score(x_te, y_te)),
            "fit_s": time.perf_counter() - t0}


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_arguments(ap, "(no effect)", "(no effect)")
    rows = [logistic_regression(p) for p in data_paths(ap.parse_args(argv), "linear_baseline")]
    for r in rows:
        print(r)
    return rows


if __name__ == "__main__":
    main()

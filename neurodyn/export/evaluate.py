"""Accuracy of a model run as a chip would run it: quantized, in the bit-exact integer simulator."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..data import pad_collate
from ..errors import ConfigError
from ..train.losses import class_scores
from ..train.trainer import accuracy_of, confusion_counts
from .fixed_point import FixedPointFormat
from .quantize import QuantizedNetwork, quantize


def calibration_input(ds: Dataset, n: int = 64, seed: int = 0) -> torch.Tensor:
    """Up to ``n`` samples of ``ds`` (chosen with ``seed``) as one padded batch [T, B, features]."""
    if len(ds) == 0:
        raise ConfigError("calibration needs a non-empty data set")
    idx = np.random.default_rng(seed).permutation(len(ds))[:n]
    x, _, _ = pad_collate([ds[int(i)] for i in idx])
    return x.reshape(x.shape[0], x.shape[1], -1)


def evaluate_quantized(model: nn.Module | QuantizedNetwork, loader: DataLoader,
                       preset: str | FixedPointFormat = "loihi", loss: str = "mean_membrane",
                       calib: torch.Tensor | None = None, n_classes: int | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """Quantize ``model`` (unless it already is) and score it on ``loader`` in the integer simulator.

    loader yields (x [T, B, ...] counts, y [B], lengths [B]); each sample runs its own
    ``lengths[b]`` steps.  Predictions use the same scores as training (``loss``: the
    readout membrane's mean, or spike counts).  calib: input for choosing the state scales
    (see ``quantize``; None: from the parameters alone).  Returns accuracy, confusion matrix,
    saturation count, the preset and the per-layer quantization report.
    """
    q = model if isinstance(model, QuantizedNetwork) else quantize(model, preset, calib=calib)
    preds, ys, sats = [], [], 0
    for x, y, lengths in tqdm(loader, desc=f"evaluate ({q.fmt.name})", leave=False, disable=not progress):
        x = x.reshape(x.shape[0], x.shape[1], -1)
        res = q.simulate(x, steps=lengths)
        sats += res.saturations
        # The readout in state units: a positive per-layer scale, so the argmax is the chip's.
        scores = class_scores(torch.from_numpy(res.out).double(), lengths, loss)
        preds.append(scores.argmax(1))
        ys.append(y)
    cm = confusion_counts(preds, ys, n_classes)
    return {"accuracy": accuracy_of(cm), "n_samples": int(cm.sum()),
            "confusion": cm.tolist(), "saturations": int(sats), "preset": q.fmt.name, "format": q.fmt.to_dict(),
            "quantization": q.report}


__all__ = ["calibration_input", "evaluate_quantized"]

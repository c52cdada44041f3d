"""Choose the early-exit threshold on held-out data for a target accuracy loss.

Method (deterministic, no tuning knobs beyond the target):

1. Run the network once at full length on a held-out calibration set (not the training
   data: a trained network is over-confident on what it has seen) and record the readout.
2. From that run, compute for every distinct threshold in [0, 1] the calibration accuracy
   and mean timesteps of the exit rule exactly (``curves.threshold_sweep``).
3. A threshold is *admissible* when its accuracy loss against the full-length run on the
   same data is at most ``max_loss`` (a fraction: 0.005 = 0.5 points).  ``rule="net"``
   counts the loss as the accuracy difference (samples made wrong minus samples made
   right); ``rule="harm"`` counts only samples that were right at full length and are made
   wrong (stricter: gains do not pay for losses).
4. The chosen threshold is the lowest one from which *every* higher threshold is also
   admissible.  Mean timesteps never decrease as the threshold rises, but accuracy is not
   monotone; this guard keeps the choice away from an admissible point that is only a
   lucky dip between inadmissible ones, which would not carry over to new data.

Threshold 1.0 (never exit early) is always admissible, so calibration always succeeds; it
returns 1.0 when no earlier exit meets the target.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..errors import ConfigError
from .confidence import check_measure, confidence_trace
from .curves import threshold_sweep


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold and what it gave on the calibration data (accuracies as fractions)."""

    threshold: float
    measure: str
    min_steps: int
    max_loss: float
    rule: str
    accuracy: float
    full_accuracy: float
    mean_steps: float
    full_mean_steps: float
    n_samples: int

    def as_dict(self) -> dict:
        return asdict(self)


RULES = ("net", "harm")


def calibrate_from_trace(conf: torch.Tensor, pred: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor,
                         max_loss: float = 0.005, min_steps: int = 1, rule: str = "net",
                         measure: str = "max_softmax") -> Calibration:
    """Calibrate from recorded traces conf, pred [T, B] (of ``measure``), labels y [B], lengths [B]."""
    if not (0.0 <= max_loss <= 1.0):
        raise ConfigError(f"max_loss is a fraction of samples in [0, 1] (0.005 = 0.5 points), got {max_loss!r}")
    if rule not in RULES:
        raise ConfigError(f"unknown calibration rule '{rule}'; choose one of {RULES}")
    curve = threshold_sweep(conf, pred, y, lengths, min_steps)
    full_acc = float(curve.accuracy[-1])
    loss = full_acc - curve.accuracy if rule == "net" else curve.harm_rate
    ok = loss <= max_loss + 1e-12
    bad = np.nonzero(~ok)[0]
    k = int(bad.max()) + 1 if bad.size else 0
    return Calibration(threshold=float(curve.param[k]), measure=measure, min_steps=min_steps, max_loss=max_loss,
                       rule=rule, accuracy=float(curve.accuracy[k]), full_accuracy=full_acc,
                       mean_steps=float(curve.mean_steps[k]), full_mean_steps=float(curve.mean_steps[-1]),
                       n_samples=int(y.shape[0]))


def calibrate_threshold(v: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor, max_loss: float = 0.005,
                        measure: str = "max_softmax", min_steps: int = 1, rule: str = "net") -> Calibration:
    """Calibrate from a recorded full-length readout v [T, B, C] of held-out data, labels y [B], lengths [B]."""
    conf, pred = confidence_trace(v, check_measure(measure))
    return calibrate_from_trace(conf, pred, y, lengths, max_loss=max_loss, min_steps=min_steps, rule=rule,
                                measure=measure)


__all__ = ["Calibration", "RULES", "calibrate_threshold", "calibrate_from_trace"]

"""Choose the early-exit threshold on held-out data for a target accuracy loss.

Method (deterministic, no tuning knobs beyond the target):

1. Run the network once at full length on a held-out calibration set (not the training
   data: a trained network is over-confident on what it has seen) and record the readout.
2. From that run, compute for every distinct threshold in [0, 1] the calibration accuracy
   and mean timesteps of the exit rule exactly (``curves.threshold_sweep``).
3. A threshold is *admissible* when an upper confidence bound of its accuracy loss
   against the full-length run is at most ``max_loss`` (a fraction: 0.005 = 0.5 points).
   Per sample the exit either harms (right at full length, wrong at the exit), gains (the
   reverse) or changes nothing; with harm and gain rates h and g on N calibration samples,
   ``rule="harm"`` (default) bounds h by Wilson's upper bound at one-sided level
   ``confidence_level``: the loss h - g is at most h, and gains do not pay for losses.
   ``rule="net"`` bounds h - g by Wilson's upper bound of h minus Wilson's lower bound of
   g, each at level 1 - (1 - confidence_level) / 2 (so both hold together with probability
   >= confidence_level): it lets gains offset harms, but costs a wider bound on h, so it
   only pays where early exits also correct many answers.  Wilson's score interval stays honest
   at zero counts (0 harms in N samples still bounds h by about z^2 / N), which a normal
   approximation does not: a small calibration set cannot certify a small loss, and then
   the rule keeps the full length.  ``confidence_level=None`` uses the plain calibration
   loss (h - g, or h), with no allowance for sampling error.
4. The chosen threshold is the lowest one from which *every* higher threshold is also
   admissible.  Mean timesteps never decrease as the threshold rises, but accuracy is not
   monotone; this guard keeps the choice away from an admissible point that is only a
   lucky dip between inadmissible ones.

5. With several evidence exponents ``gamma`` (see ``confidence``), steps 2-4 run for each
   and the one whose threshold gives the fewest calibration mean timesteps is kept.

Threshold 1.0 (never exit early) changes nothing and is always admissible, so calibration
always succeeds; it returns 1.0 when no earlier exit meets the target.  Small calibration
sets give wide bounds and so cautious thresholds: that is the price of the guarantee (to
certify 0.5 points at 95% takes several hundred calibration samples).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
import torch

from ..errors import ConfigError
from ..core.confidence import check_gamma, check_measure, confidence_trace
from .curves import threshold_sweep


@dataclass(frozen=True)
class Calibration:
    """The chosen threshold and what it gave on the calibration data (accuracies as fractions)."""

    threshold: float
    measure: str
    gamma: float
    min_steps: int
    max_loss: float
    rule: str
    confidence_level: float | None
    accuracy: float
    full_accuracy: float
    mean_steps: float
    full_mean_steps: float
    n_samples: int

    def as_dict(self) -> dict:
        return asdict(self)


RULES = ("harm", "net")


def wilson_bounds(p: np.ndarray, n: int, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval (lower, upper) of a binomial rate p observed on n samples, z-score z."""
    p = np.asarray(p, dtype=np.float64)
    den = 1.0 + z * z / n
    mid = p + z * z / (2 * n)
    half = z * np.sqrt(np.clip(p * (1 - p), 0.0, None) / n + z * z / (4 * n * n))
    return np.clip((mid - half) / den, 0.0, 1.0), np.clip((mid + half) / den, 0.0, 1.0)


def calibrate_from_trace(conf: torch.Tensor, pred: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor,
                         max_loss: float = 0.005, min_steps: int = 1, rule: str = "harm",
                         measure: str = "max_softmax", confidence_level: float | None = 0.95,
                         gamma: float = 1.0) -> Calibration:
    """Calibrate from recorded traces conf, pred [T, B] (of ``measure`` and ``gamma``), labels y [B], lengths [B]."""
    if not (0.0 <= max_loss <= 1.0):
        raise ConfigError(f"max_loss is a fraction of samples in [0, 1] (0.005 = 0.5 points), got {max_loss!r}")
    if rule not in RULES:
        raise ConfigError(f"unknown calibration rule '{rule}'; choose one of {RULES}")
    if confidence_level is not None and not (0.5 < confidence_level < 1.0):
        raise ConfigError(f"confidence_level must lie in (0.5, 1) or be None, got {confidence_level!r}")
    curve = threshold_sweep(conf, pred, y, lengths, min_steps)
    full_acc = float(curve.accuracy[-1])
    harm = curve.harm_rate
    gain = np.clip(curve.accuracy - full_acc + harm, 0.0, None)
    n = max(int(y.shape[0]), 1)
    if confidence_level is None:
        bound = harm - gain if rule == "net" else harm
    elif rule == "net":
        z = NormalDist().inv_cdf(1.0 - (1.0 - confidence_level) / 2)
        bound = wilson_bounds(harm, n, z)[1] - wilson_bounds(gain, n, z)[0]
    else:
        bound = wilson_bounds(harm, n, NormalDist().inv_cdf(confidence_level))[1]
    # Threshold 1.0 changes nothing: admissible by definition (its bound is not 0 at small N).
    ok = (bound <= max_loss + 1e-12) | (curve.param >= 1.0)
    bad = np.nonzero(~ok)[0]
    k = int(bad.max()) + 1 if bad.size else 0
    return Calibration(threshold=float(curve.param[k]), measure=measure, gamma=float(gamma), min_steps=min_steps,
                       max_loss=max_loss,
                       rule=rule, confidence_level=confidence_level, accuracy=float(curve.accuracy[k]),
                       full_accuracy=full_acc,
                       mean_steps=float(curve.mean_steps[k]), full_mean_steps=float(curve.mean_steps[-1]),
                       n_samples=int(y.shape[0]))


def calibrate_threshold(v: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor, max_loss: float = 0.005,
                        measure: str = "max_softmax", min_steps: int = 1, rule: str = "harm",
                        confidence_level: float | None = 0.95,
                        gamma: float | Sequence[float] = 1.0) -> Calibration:
    """Calibrate from a recorded full-length readout v [T, B, C] of held-out data, labels y [B], lengths [B].

    gamma: the evidence exponent, or several to choose from (step 5 of the method).
    """
    gammas = [gamma] if isinstance(gamma, (int, float)) else list(gamma)
    if not gammas:
        raise ConfigError("give at least one evidence exponent gamma")
    best = None
    for g in gammas:
        conf, pred = confidence_trace(v, check_measure(measure), check_gamma(g))
        cal = calibrate_from_trace(conf, pred, y, lengths, max_loss=max_loss, min_steps=min_steps, rule=rule,
                                   measure=measure, confidence_level=confidence_level, gamma=g)
        if best is None or cal.mean_steps < best.mean_steps:
            best = cal
    return best


__all__ = ["Calibration", "RULES", "wilson_bounds", "calibrate_threshold", "calibrate_from_trace"]

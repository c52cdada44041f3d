"""Exit steps and accuracy-vs-timesteps curves from one recorded full-length run.

The exit rule only looks at the past, so one full run's confidence trace [T, B] tells
every threshold's outcome: a sample stops at the first step t >= min_steps (1-based,
t <= its length) with confidence > threshold, else at its length, and predicts the
running-mean argmax of that step.  ``threshold_sweep`` computes accuracy and mean steps
for every distinct threshold exactly (not on a grid): a sample's exit step only changes
where the threshold crosses one of its running-maximum confidence values.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ShapeError


def _check(conf: torch.Tensor, pred: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor) -> None:
    if conf.dim() != 2 or pred.shape != conf.shape:
        raise ShapeError(f"confidence and prediction traces must both be [T, B], got {tuple(conf.shape)} "
                         f"and {tuple(pred.shape)}")
    T, B = conf.shape
    if y.shape != (B,) or lengths.shape != (B,):
        raise ShapeError(f"labels and lengths must be [{B}], got {tuple(y.shape)} and {tuple(lengths.shape)}")
    if bool((lengths < 0).any()) or bool((lengths > T).any()):
        raise ShapeError(f"lengths must lie in [0, {T}]")


def final_prediction(pred: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Prediction [B] at each sample's last step (its length) from a trace pred [T, B]."""
    # A sample with no steps predicts class 0, the argmax of an all-zero readout (as the kernel).
    idx = (lengths - 1).clamp(min=0)
    p = pred.gather(0, idx[None]).squeeze(0)
    return torch.where(lengths > 0, p, torch.zeros_like(p))


def exit_from_trace(conf: torch.Tensor, pred: torch.Tensor, lengths: torch.Tensor, threshold: float,
                    min_steps: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """(steps [B], prediction [B]) of the exit rule at ``threshold`` from traces conf, pred [T, B]."""
    T, B = conf.shape
    t = torch.arange(T)[:, None]
    hit = (conf > threshold) & (t + 1 >= min_steps) & (t < lengths[None, :])
    any_hit = hit.any(0)
    first = hit.to(torch.int8).argmax(0)  # first True
    steps = torch.where(any_hit, first + 1, lengths)
    return steps, final_prediction(pred, steps)


def fixed_steps(pred: torch.Tensor, lengths: torch.Tensor, n_steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(steps [B], prediction [B]) when every sample is cut after n_steps (or its length)."""
    steps = lengths.clamp(max=int(n_steps))
    return steps, final_prediction(pred, steps)


@dataclass
class Curve:
    """Accuracy and mean timesteps per operating point (threshold or fixed step count), sorted by
    the parameter, plus the count of correct-at-full-length samples made wrong ('harms')."""

    param: np.ndarray
    accuracy: np.ndarray
    mean_steps: np.ndarray
    harm_rate: np.ndarray

    def as_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("param", "accuracy", "mean_steps", "harm_rate")}


def threshold_sweep(conf: torch.Tensor, pred: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor,
                    min_steps: int = 1) -> Curve:
    """Exact accuracy / mean steps / harm rate of the exit rule for every distinct threshold in [0, 1].

    ``param`` holds the thresholds (ascending; the last is 1.0, the full-length run).  Between
    two consecutive listed thresholds the outcome is that of the lower one.
    """
    _check(conf, pred, y, lengths)
    T, B = conf.shape
    c = conf.detach().to(torch.float64).numpy()
    correct = (pred == y[None, :]).numpy()
    L = lengths.numpy().astype(np.int64)
    t = np.arange(T)[:, None]
    eligible = (t + 1 >= min_steps) & (t < L[None, :])
    cm = np.where(eligible, c, -np.inf)
    prev_max = np.maximum.accumulate(np.vstack([np.full((1, B), -np.inf), cm[:-1]]), axis=0)
    is_rec = eligible & (cm > prev_max)  # the steps where the running max rises
    bb, tt = np.nonzero(is_rec.T)  # sample-major, time ascending within a sample
    final_ok = final_prediction(pred, lengths).eq(y).numpy()
    # Next outcome of each record: the next record of the same sample, else the full length.
    nxt_same = np.append(bb[1:] == bb[:-1], False)
    nxt_steps = np.where(nxt_same, np.append(tt[1:], 0) + 1, L[bb])
    nxt_ok = np.where(nxt_same, correct[np.append(tt[1:], 0), np.append(bb[1:], 0)], final_ok[bb])
    rec_ok = correct[tt, bb]
    vals = cm[tt, bb]
    # Lowering the threshold below a record's value moves its sample from the next outcome to it.
    d_steps = (tt + 1) - nxt_steps
    d_ok = rec_ok.astype(np.int64) - nxt_ok.astype(np.int64)
    d_harm = final_ok[bb] * (nxt_ok.astype(np.int64) - rec_ok.astype(np.int64))
    order = np.argsort(-vals, kind="stable")
    vals, d_steps, d_ok, d_harm = vals[order], d_steps[order], d_ok[order], d_harm[order]
    cs_steps, cs_ok, cs_harm = (np.concatenate([[0], np.cumsum(a)]) for a in (d_steps, d_ok, d_harm))
    thr = np.unique(np.clip(np.concatenate([vals, [0.0, 1.0]]), 0.0, 1.0))
    # Events with value > thr are applied: their count in the descending list.
    n_applied = np.searchsorted(-vals, -thr, side="left")
    base_steps, base_ok = L.sum(), final_ok.sum()
    n = max(B, 1)
    return Curve(param=thr, accuracy=(base_ok + cs_ok[n_applied]) / n,
                 mean_steps=(base_steps + cs_steps[n_applied]) / n, harm_rate=cs_harm[n_applied] / n)


def fixed_steps_curve(pred: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor,
                      step_counts: list[int] | None = None) -> Curve:
    """Accuracy / mean steps when every sample is cut at n steps, for n in step_counts (default 1..T)."""
    T = pred.shape[0]
    counts = list(range(1, T + 1)) if step_counts is None else sorted(set(int(s) for s in step_counts))
    full_ok = final_prediction(pred, lengths).eq(y)
    acc, ms, harm = [], [], []
    for n in counts:
        steps, p = fixed_steps(pred, lengths, n)
        ok = p.eq(y)
        acc.append(ok.double().mean().item())
        ms.append(steps.double().mean().item())
        harm.append((full_ok & ~ok).double().mean().item())
    return Curve(param=np.asarray(counts, dtype=np.float64), accuracy=np.asarray(acc),
                 mean_steps=np.asarray(ms), harm_rate=np.asarray(harm))


__all__ = ["Curve", "final_prediction", "exit_from_trace", "fixed_steps", "threshold_sweep", "fixed_steps_curve"]

"""Oracle exits: the best mean timesteps any exit rule could reach, knowing the labels.

Two oracles, both from one recorded full-length run (prediction trace [T, B] of the
running-mean readout):

- ``first_correct`` (Li, Jones and Furber, ICCV 2023, the upper bound of Fig. 1): a sample
  stops at the first step whose prediction is correct.  Its accuracy is the fraction of
  samples that are correct at *some* step, which can exceed the full-length accuracy.
- ``stays_correct``: a sample stops at the first step from which its prediction stays
  correct up to its length.  Its accuracy equals the full-length run's: it is the fewest
  mean timesteps at which the full-length decisions can be kept, the bound for a
  causal exit rule at no accuracy loss.

Samples that the rule never makes correct run their full length in both (an oracle that
stopped them at step 1 would report fewer steps only by giving up on them).
"""
from __future__ import annotations

import torch

from ..errors import ConfigError
from .curves import _check

ORACLES = ("first_correct", "stays_correct")


def oracle_steps(pred: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor,
                 rule: str = "first_correct") -> tuple[torch.Tensor, torch.Tensor]:
    """(steps [B], correct [B] bool) of the oracle ``rule`` from a prediction trace pred [T, B]."""
    if rule not in ORACLES:
        raise ConfigError(f"unknown oracle '{rule}'; choose one of {ORACLES}")
    _check(pred.to(torch.float64), pred, y, lengths)
    T, B = pred.shape
    t = torch.arange(T)[:, None]
    valid = t < lengths[None, :]
    ok = (pred == y[None, :]) & valid
    if rule == "first_correct":
        good = ok
    else:
        # ok from t to the end: reverse cumulative AND over the valid steps.
        bad_after = torch.flip(torch.cumsum(torch.flip((~ok & valid).to(torch.int64), [0]), 0), [0])
        good = ok & (bad_after == 0)
    found = good.any(0)
    first = good.to(torch.int8).argmax(0)
    steps = torch.where(found, first + 1, lengths)
    return steps, found


def oracle_summary(pred: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor) -> dict:
    """Mean steps and accuracy of each oracle: {rule: {"mean_steps", "accuracy"}}."""
    out = {}
    for rule in ORACLES:
        steps, ok = oracle_steps(pred, y, lengths, rule)
        out[rule] = {"mean_steps": steps.double().mean().item(), "accuracy": ok.double().mean().item()}
    return out


__all__ = ["ORACLES", "oracle_steps", "oracle_summary"]

"""Classification losses on a readout ``v [T, B, C]`` with per-sample step counts ``lengths [B]``.

Steps ``t >= lengths[b]`` are padding and never count.  Each loss has a matching score
``[B, C]`` whose argmax is the prediction:

- ``mean_membrane``: cross-entropy on the mean readout over the sample's own steps.
- ``spike_count``: cross-entropy on output spike counts (the readout must emit 0/1 spikes).
- ``per_step``: cross-entropy on the running mean readout at every step, averaged over the
  sample's steps; trains the answer to be right early (used by early exit).  Scores are the
  running mean at the last step (= ``mean_membrane``'s).
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from torch.nn import functional as F

from ..core.confidence import running_logits
from ..errors import ConfigError, ShapeError


def step_mask(lengths: torch.Tensor, T: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[T, B] with 1 where step t < lengths[b]."""
    return (torch.arange(T, device=lengths.device)[:, None] < lengths[None, :]).to(dtype)


def _check(v: torch.Tensor, lengths: torch.Tensor) -> None:
    if v.dim() != 3 or lengths.dim() != 1 or lengths.shape[0] != v.shape[1]:
        raise ShapeError(f"readout must be [T, B, C] with lengths [B], got {tuple(v.shape)} and {tuple(lengths.shape)}")


def readout_logits(v: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean readout over each sample's own steps: v [T, B, C], lengths [B] -> [B, C]."""
    _check(v, lengths)
    mask = step_mask(lengths, v.shape[0], v.dtype)
    return (v * mask[..., None]).sum(0) / lengths.clamp(min=1)[:, None].to(v.dtype)


def spike_counts(v: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Output spikes summed over each sample's own steps: [T, B, C] -> [B, C]."""
    _check(v, lengths)
    return (v * step_mask(lengths, v.shape[0], v.dtype)[..., None]).sum(0)


def running_mean(v: torch.Tensor) -> torch.Tensor:
    """Mean readout up to and including each step: [T, B, C] -> [T, B, C] (the early-exit
    evidence ``core.confidence.running_logits`` at gamma 1)."""
    return running_logits(v)


def running_mean_ce(v: torch.Tensor, y: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the running mean readout at every step, weighted: v [T, B, C], y [B],
    weights [T, B] (0 on padding).  Each sample's weighted mean over its steps, then the mean
    over samples (a sample without steps counts 0)."""
    T, B, C = v.shape
    ce = F.cross_entropy(running_mean(v).reshape(T * B, C), y.repeat(T), reduction="none").reshape(T, B)
    return ((ce * weights).sum(0) / weights.sum(0).clamp(min=1)).mean()


def _mean_membrane(v: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(readout_logits(v, lengths), y)


def _spike_count(v: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        if not bool(((v == 0) | (v == 1)).all()):
            raise ConfigError("loss 'spike_count' needs a spiking readout (0/1 outputs); "
                              "for the mlp set model.readout = \"lif\"")
    return F.cross_entropy(spike_counts(v, lengths), y)


def _per_step(v: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    _check(v, lengths)
    return running_mean_ce(v, y, step_mask(lengths, v.shape[0], v.dtype))


LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
LOSS_FNS: dict[str, LossFn] = {"mean_membrane": _mean_membrane, "spike_count": _spike_count, "per_step": _per_step}


def loss_fn(name: str) -> LossFn:
    """``fn(v [T, B, C], y [B], lengths [B]) -> scalar`` for a loss name."""
    if name not in LOSS_FNS:
        raise ConfigError(f"unknown loss '{name}'; choose one of {', '.join(LOSS_FNS)}")
    return LOSS_FNS[name]


def class_scores(v: torch.Tensor, lengths: torch.Tensor, loss: str = "mean_membrane") -> torch.Tensor:
    """The scores [B, C] a model trained with ``loss`` predicts from (argmax = class)."""
    if loss == "spike_count":
        return spike_counts(v, lengths)
    if loss in LOSS_FNS:
        return readout_logits(v, lengths)
    raise ConfigError(f"unknown loss '{loss}'; choose one of {', '.join(LOSS_FNS)}")

"""Training losses that make early decisions better (anytime inference).

The exit rule predicts from the running mean of the readout, z_t = mean(v_1..v_t).  The
usual loss only scores z at the sample's last step, so nothing asks z_t to be right early.
``anytime_loss`` scores every step's running mean: the cross-entropy of z_t averaged over
the sample's steps (each sample weighted equally whatever its length), so the network is
trained to be right, and confidently so, as early as the evidence allows.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError, ShapeError
from ..train.losses import running_mean_ce, step_mask

WEIGHTINGS = ("uniform", "linear")


def anytime_loss(v: torch.Tensor, y: torch.Tensor, lengths: torch.Tensor | None = None,
                 weighting: str = "uniform") -> torch.Tensor:
    """Mean over samples of the step-averaged cross-entropy of the running-mean readout.

    v [T, B, C] readout (e.g. LI membrane), y [B] class labels, lengths [B] steps per sample
    (default T; steps after a sample's length are ignored).  weighting: 'uniform' weighs
    every step alike; 'linear' weighs step t by t (late steps count more, step 1 least).
    """
    if v.dim() != 3:
        raise ShapeError(f"anytime_loss expects a readout [T, B, C], got {tuple(v.shape)}")
    T, B, C = v.shape
    if y.shape != (B,):
        raise ShapeError(f"labels must be [{B}], got {tuple(y.shape)}")
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"unknown weighting '{weighting}'; choose one of {WEIGHTINGS}")
    if lengths is None:
        lengths = torch.full((B,), T, dtype=torch.int64)
    elif lengths.shape != (B,) or bool((lengths < 1).any()) or bool((lengths > T).any()):
        raise ShapeError(f"lengths must be [{B}] integers in [1, {T}]")
    w = step_mask(lengths.to(v.device), T, v.dtype)
    if weighting == "linear":
        w = w * torch.arange(1, T + 1, dtype=v.dtype, device=v.device)[:, None]
    return running_mean_ce(v, y, w)


__all__ = ["anytime_loss", "WEIGHTINGS"]

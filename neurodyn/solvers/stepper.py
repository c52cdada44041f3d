"""One explicit Runge-Kutta step for any ``ButcherTableau`` over a batch of rows, each with its own t and h.

Shapes: ``t, h [b]`` (time units of the problem), ``y [b, D]`` (flattened state), stages ``[b, D]``.
The right-hand side is called as ``f(t [b], y [b, D], *args)`` with ``args`` already restricted
to the same rows, so only the rows passed in cost an evaluation.
"""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional, Sequence

import torch

from .tableaus import ButcherTableau

Tensor = torch.Tensor
RHS = Callable[..., Tensor]


class StepResult(NamedTuple):
    y_new: Tensor          # [b, D] propagated solution at t + h
    err: Optional[Tensor]  # [b, D] embedded local error estimate (h sum b_err k), None for fixed-step methods
    ks: list               # s stage derivatives [b, D]
    ys: list               # s stage inputs [b, D]


def lincomb(coefs: Sequence[float], ks: Sequence[Tensor]) -> Optional[Tensor]:
    """``sum_i coefs_i ks_i`` over the nonzero coefficients (None if all are zero)."""
    acc = None
    for c, k in zip(coefs, ks):
        if c != 0.0:
            acc = k * c if acc is None else acc + k * c
    return acc


def rk_step(f: RHS, tab: ButcherTableau, t: Tensor, y: Tensor, h: Tensor, k1: Optional[Tensor],
            args: tuple = ()) -> StepResult:
    """One step of ``tab`` from ``(t, y)`` with step ``h``; ``k1 = f(t, y)`` if already known (FSAL)."""
    hc = h.unsqueeze(-1)
    ks = [f(t, y, *args) if k1 is None else k1]
    ys = [y]
    for i in range(1, tab.stages):
        yi = y + hc * lincomb(tab.a[i], ks)
        ys.append(yi)
        ks.append(f(t + tab.c[i] * h, yi, *args))
    # FSAL: the last stage input is the new solution.
    y_new = ys[-1] if tab.fsal else y + hc * lincomb(tab.b, ks)
    err = hc * lincomb(tab.b_err, ks) if tab.adaptive else None
    return StepResult(y_new, err, ks, ys)


def rms_norm(x: Tensor) -> Tensor:
    """Root-mean-square over the last dim, ``[b, D] -> [b]`` (gradient 0, not NaN, at 0)."""
    return torch.linalg.vector_norm(x, dim=-1) / (x.shape[-1] ** 0.5)


def error_ratio(step: StepResult, y: Tensor, rtol: float, atol: float) -> Tensor:
    """Scaled RMS error ``||err / (atol + rtol max(|y|, |y_new|))||_rms`` per row ``[b]``; <= 1 accepts."""
    scale = atol + rtol * torch.maximum(y.abs(), step.y_new.abs())
    return rms_norm(step.err / scale)


def stiffness_estimate(step: StepResult) -> Optional[Tensor]:
    """Stage-difference Lipschitz estimate ``||k_s - k_{s-1}|| / ||Y_s - Y_{s-1}||`` per row ``[b]``
    (Hairer & Wanner's dopri5 stiffness test, the quantity Pal et al. 2021 regularize); ``h`` times it
    near 3.3 means the step is stability-limited.  None for one-stage methods."""
    if len(step.ks) < 2:
        return None
    num = torch.linalg.vector_norm(step.ks[-1] - step.ks[-2], dim=-1)
    den = torch.linalg.vector_norm(step.ys[-1] - step.ys[-2], dim=-1)
    # den == 0 only where both stage inputs coincide (then num == 0 too for c_s == c_{s-1}).
    return num / den.clamp_min(torch.finfo(den.dtype).tiny ** 0.5)


def dense_eval(b_theta: Tensor, y: Tensor, h: Tensor, ks: Tensor, theta: Tensor) -> Tensor:
    """``y(t + theta h) = y + h sum_i b_i(theta) k_i`` per row: ``b_theta [s, P]`` (the tableau's
    polynomials as a tensor), ``y [m, D]``, ``h, theta [m]`` (theta in [0, 1]), stacked stages ``ks [m, s, D]``."""
    powers = theta.unsqueeze(-1) ** torch.arange(b_theta.shape[1], device=y.device, dtype=y.dtype)  # [m, P]
    w = powers @ b_theta.T                                                     # [m, s]
    return y + h.unsqueeze(-1) * torch.einsum("ms,msd->md", w, ks)

"""Confidence of a classifier's running evidence, defined once for the event core and torch.

After step t (1-based) of a sample the evidence is its accumulated readout scaled by a
power of t, ``z_t = (sum_{s<=t} v_s) / t**gamma`` ([C] logits).  gamma = 1 (default) is the
running mean: exactly the logits the trainer's ``readout_logits`` predicts from if the
sample ended at t.  gamma = 0 is the running sum: consistent evidence makes the confidence
grow with t, as in a sequential probability ratio test (for Gaussian per-step noise the
log posterior odds are linear in the sum).  The prediction, argmax z_t, is the same for
every gamma; only the confidence differs, and calibration can choose gamma on held-out
data.  Every measure is a straight-line function of the statistics of z (computed by
``softmax_stats``, a loop the Numba kernel inlines, or by ``softmax_stats_torch``):

    z1 = max_i z_i,  z2 = second largest,  S = sum_i exp(z_i - z1) >= 1,
    Q = sum_i (z_i - z1) exp(z_i - z1) <= 0,  log_n = log C

    max_softmax  p_max = 1 / S
    margin       p_1 - p_2 = (1 - exp(z2 - z1)) / S
    entropy      1 - H(p) / log C,   H = log S - Q / S (nats)

Each lies in [0, 1] (1 meaning certain).  The upper bound holds exactly also in floating
point (S >= 1 and Q <= 0 by construction); entropy may dip below 0 by a rounding error.
A sample stops at the first step t >= ``min_steps`` whose confidence is strictly greater
than the threshold, so a threshold of 1.0 never stops a sample early.  The measure
functions are compiled unchanged into the event kernel (Numba, scalars) and bound to
torch primitives here (tensors), like the neuron steps.
"""
from __future__ import annotations

import inspect
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import torch

from ..errors import ConfigError, ShapeError
from ..neurons.symbolic import compile_source


def max_softmax(z1, z2, S, Q, log_n):
    return 1.0 / S


def margin(z1, z2, S, Q, log_n):
    return (1.0 - exp(z2 - z1)) / S  # noqa: F821 - primitive bound per backend


def entropy(z1, z2, S, Q, log_n):
    return 1.0 + (Q / S - log(S)) / log_n  # noqa: F821


MEASURES: dict[str, Callable] = {"max_softmax": max_softmax, "margin": margin, "entropy": entropy}


# Where the full sums can be cut short.  Each measure is at most a decreasing function U of S
# (1/S, (1 - e2)/S, and 1 - log(S)/log C since Q <= 0), so once a partial sum of S reaches
# limit = U^-1(threshold) the sample cannot be confident at this step.  ``softmax_sums`` starts
# from the top two classes (S = 1 + e2, e2 = exp(z2 - z1)), so most steps are ruled out after
# one exp, and it stops the loop over the other classes as soon as the partial sum reaches
# the limit.  Cost only, never a
# different decision (tested).
def max_softmax_limit(threshold, e2, log_n):
    return 1.0 / threshold


def margin_limit(threshold, e2, log_n):
    return (1.0 - e2) / threshold


def entropy_limit(threshold, e2, log_n):
    return exp((1.0 - threshold) * log_n)  # noqa: F821


LIMITS: dict[str, Callable] = {"max_softmax": max_softmax_limit, "margin": margin_limit, "entropy": entropy_limit}


def top2(acc):
    """Indices (k1, k2) of the largest and second largest entries of acc [C >= 2]; ties go to the
    lowest index, as torch.argmax."""
    k1 = 0
    k2 = 1
    if acc[1] > acc[0]:
        k1 = 1
        k2 = 0
    for j in range(2, acc.shape[0]):
        if acc[j] > acc[k1]:
            k2 = k1
            k1 = j
        elif acc[j] > acc[k2]:
            k2 = j
    return k1, k2


def softmax_sums(acc, scale, z1, z2, k1, k2, limit):
    """S = sum_j exp(z_j - z1) and Q = sum_j (z_j - z1) exp(z_j - z1) of z = acc / scale, given the
    top two (z1 = z[k1], z2 = z[k2]).  Starts from those two terms and stops early (partial sums,
    S >= limit) once S reaches ``limit`` (math.inf: never)."""
    e2 = math.exp(z2 - z1)
    S = 1.0 + e2
    Q = (z2 - z1) * e2
    if S >= limit:
        return S, Q
    for j in range(acc.shape[0]):
        if j != k1 and j != k2:
            d = acc[j] / scale - z1
            e = math.exp(d)
            S += e
            Q += d * e
            if S >= limit:
                break
    return S, Q


def softmax_stats(acc, scale):
    """(z1, z2, S, Q, argmax) of z = acc / scale; acc [C] running sum of the readout, scale = t**gamma.

    Plain loops over a 1-D array: the same source runs in Python and inside the event kernel.
    """
    k1, k2 = top2(acc)
    z1 = acc[k1] / scale
    z2 = acc[k2] / scale
    S, Q = softmax_sums(acc, scale, z1, z2, k1, k2, math.inf)
    return z1, z2, S, Q, k1


def softmax_stats_torch(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z1, z2, S, Q), each [...], of logits z [..., C] (C >= 2); see the module docstring."""
    top = z.topk(2, dim=-1).values
    z1, z2 = top[..., 0], top[..., 1]
    d = z - z1[..., None]
    e = torch.exp(d)
    return z1, z2, e.sum(-1), (d * e).sum(-1)


def check_measure(name: str) -> str:
    if name not in MEASURES:
        raise ConfigError(f"unknown confidence measure '{name}'; choose one of {sorted(MEASURES)}")
    return name


def check_gamma(gamma: float) -> float:
    if not (isinstance(gamma, (int, float)) and 0.0 <= float(gamma) <= 1.0):
        raise ConfigError(f"evidence exponent gamma must be a number in [0, 1] (1 = running mean, 0 = sum), "
                          f"got {gamma!r}")
    return float(gamma)


def measure_source(name: str) -> str:
    """Source text of a measure (what the kernel generator compiles)."""
    return inspect.getsource(MEASURES[check_measure(name)])


_TORCH_PRIMS = {"exp": torch.exp, "log": torch.log}


@lru_cache(maxsize=None)
def torch_measure(name: str) -> Callable:
    """The measure ``name`` bound to torch primitives (elementwise over tensors)."""
    return compile_source(measure_source(name), name, _TORCH_PRIMS)


@lru_cache(maxsize=None)
def torch_limit(name: str) -> Callable:
    """The S-limit of measure ``name`` bound to torch primitives: fn(threshold, e2, log_n)."""
    fn = LIMITS[check_measure(name)]
    return compile_source(inspect.getsource(fn), fn.__name__, _TORCH_PRIMS)


def evidence_scales(T: int, gamma: float = 1.0) -> torch.Tensor:
    """t**gamma for t = 1..T (float64 [T]): the divisor of the running readout sum.  The event
    kernel gets this very table, so both sides divide by identical numbers.

    Entry t does not depend on T (libm's pow, one entry at a time): torch's vectorized pow
    rounds the last entries of an array differently, and a stream, which extends its table as
    it runs, must divide by the same numbers as a whole run of any length."""
    g = check_gamma(gamma)
    return torch.tensor([math.pow(t, g) for t in range(1, T + 1)], dtype=torch.float64)


@dataclass(frozen=True)
class EarlyExit:
    """Per-sample early termination: stop at the first step t >= min_steps (1-based) whose
    confidence ``measure`` of the evidence (readout sum / t**gamma) is > ``threshold`` (in [0, 1])."""

    threshold: float
    measure: str = "max_softmax"
    min_steps: int = 1
    gamma: float = 1.0

    def __post_init__(self) -> None:
        check_measure(self.measure)
        check_gamma(self.gamma)
        if not (isinstance(self.threshold, (int, float)) and 0.0 <= float(self.threshold) <= 1.0):
            raise ConfigError(f"early-exit threshold must be a number in [0, 1], got {self.threshold!r}")
        if not isinstance(self.min_steps, int) or self.min_steps < 1:
            raise ConfigError(f"min_steps must be an integer >= 1, got {self.min_steps!r}")

    @property
    def code(self) -> int:
        """1-based index of the measure in MEASURES (0 means early exit off in the kernel)."""
        return list(MEASURES).index(self.measure) + 1


def confidence(z: torch.Tensor, measure: str = "max_softmax") -> torch.Tensor:
    """Confidence [...] of logits z [..., C] (C >= 2)."""
    if z.dim() < 1 or z.shape[-1] < 2:
        raise ShapeError(f"confidence needs logits [..., C] with C >= 2 classes, got {tuple(z.shape)}")
    z1, z2, S, Q = softmax_stats_torch(z)
    return torch_measure(check_measure(measure))(z1, z2, S, Q, math.log(z.shape[-1]))


def running_logits(v: torch.Tensor, dtype: torch.dtype | None = None, gamma: float = 1.0) -> torch.Tensor:
    """Running evidence z [T, B, C] of a readout v [T, B, C]: z[t] = sum(v[0..t]) / (t+1)**gamma
    (gamma 1: running mean; differentiable).  dtype: compute in this dtype (default v's)."""
    if v.dim() != 3:
        raise ShapeError(f"readout must be [T, B, C], got {tuple(v.shape)}")
    v = v if dtype is None else v.to(dtype)
    steps = evidence_scales(v.shape[0], gamma).to(device=v.device, dtype=v.dtype)
    return torch.cumsum(v, 0) / steps[:, None, None]


def confidence_trace(v: torch.Tensor, measure: str = "max_softmax",
                     gamma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence [T, B] (float64) and prediction [T, B] (int64) after every step of a readout v [T, B, C].

    The torch twin of what the event kernel evaluates while it runs (float64 sequential
    sums, as the kernel): one full recorded run gives every threshold's exit (``curves``).
    """
    with torch.no_grad():
        acc = torch.cumsum(v.detach().to(torch.float64), 0)
        if acc.dim() != 3:
            raise ShapeError(f"readout must be [T, B, C], got {tuple(v.shape)}")
        scale = evidence_scales(v.shape[0], gamma)
        # Prediction from the sum (the kernel's argmax), the same as from z for any gamma.
        return confidence(acc / scale[:, None, None], measure), acc.argmax(-1)


__all__ = ["MEASURES", "LIMITS", "EarlyExit", "evidence_scales", "top2", "softmax_sums", "max_softmax", "margin", "entropy", "softmax_stats", "softmax_stats_torch",
           "torch_measure", "torch_limit", "measure_source", "check_measure", "check_gamma", "confidence", "running_logits", "confidence_trace"]

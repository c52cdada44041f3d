"""Regularizing the solver's own heuristics (Pal et al. 2021 "Opening the Blackbox"; 2023 "Locally
Regularized Neural Differential Equations").

Global: ``R_E = sum_j E_j |h_j|`` (embedded error estimate times step) and ``R_S = sum_j S_j``
(stiffness estimate) over all accepted steps, averaged over the batch; needs ``grad="backprop"``
(the heuristics' gradients come from the solver's graph).  Local: the same two quantities at one
accepted step per sample, at a uniformly sampled time (solve with ``sample_local=True``); works
with either gradient mode.  A training loop adds ``SolverRegularization(...).terms(stats)["total"]``
to its loss.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Mapping

import torch

from ..errors import ConfigError
from .stats import SolverStats

Tensor = torch.Tensor
REG_MODES = ("global", "local")


@dataclass(frozen=True)
class SolverRegularization:
    """Weights of the heuristic regularizers: ``error`` (lambda_E), ``stiffness`` (lambda_S), ``mode``."""

    error: float = 0.0
    stiffness: float = 0.0
    mode: str = "global"

    def __post_init__(self) -> None:
        for name in ("error", "stiffness"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ConfigError(f"regularization weight {name} must be a finite float >= 0, got {v!r}")
        if self.mode not in REG_MODES:
            raise ConfigError(f"unknown regularization mode {self.mode!r}; choose one of {list(REG_MODES)}")

    @classmethod
    def from_options(cls, options: Mapping) -> "SolverRegularization":
        """From a trainer's options dict; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"unknown solver regularization option(s) {unknown}; known: {sorted(known)}")
        return cls(**options)

    @property
    def active(self) -> bool:
        return self.error > 0 or self.stiffness > 0

    @property
    def needs_local_sample(self) -> bool:
        """Solve with ``sample_local=True`` to feed this regularizer."""
        return self.active and self.mode == "local"

    def terms(self, stats: SolverStats) -> dict[str, Tensor]:
        """``{"error", "stiffness", "total"}``: weighted batch means (0-d tensors with gradients)."""
        return solver_regularization(stats, error=self.error, stiffness=self.stiffness, mode=self.mode)


def _term(stats: SolverStats, name: str, mode: str) -> Tensor:
    attr = name if mode == "global" else f"local_{name}"
    v = getattr(stats, attr)
    if v is None:
        if mode == "local" and stats.local_time is None:
            raise ConfigError("local regularization needs the solve to run with sample_local=True")
        what = "an embedded error estimate (use an adaptive method)" if name == "error" \
            else "a stiffness estimate (needs a method with >= 2 stages)"
        raise ConfigError(f"{name} regularization needs {what}")
    if mode == "global" and not stats.differentiable and torch.is_grad_enabled():
        raise ConfigError("global solver regularization needs grad='backprop' (the adjoint forward keeps no "
                          "graph); use mode='local', which recomputes its one step with gradients")
    return v.mean()


def solver_regularization(stats: SolverStats, error: float = 0.0, stiffness: float = 0.0,
                          mode: str = "global") -> dict[str, Tensor]:
    """Regularization terms from solver statistics: ``error * mean_b R_E + stiffness * mean_b R_S``.

    Returns ``{"error": ..., "stiffness": ..., "total": ...}`` (0-d tensors); a zero weight gives
    a zero term and does not need its statistic.
    """
    cfg = SolverRegularization(error=error, stiffness=stiffness, mode=mode)
    zero = stats.last_step.new_zeros(())
    out = {}
    for name in ("error", "stiffness"):
        w = getattr(cfg, name)
        out[name] = w * _term(stats, name, cfg.mode) if w > 0 else zero
    out["total"] = out["error"] + out["stiffness"]
    return out

"""Per-sample solver statistics: work counters and the Pal et al. (2021) heuristics with gradients."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import NamedTuple, Optional

import torch

Tensor = torch.Tensor


class LocalStep(NamedTuple):
    """The accepted step of each sample that contains its sampled time (detached), ``[B]`` / ``[B, D]``.

    Enough to recompute that one step (``stepper.rk_step``) with gradients, e.g. after an adjoint solve."""

    t: Tensor     # [B] step start
    y: Tensor     # [B, D] state at the step start (flattened)
    h: Tensor     # [B] step size


@dataclass
class SolverStats:
    """What the solver did, per sample (``B`` samples).

    ``nfe``, ``n_accepted``, ``n_rejected`` ``[B]`` (int64): right-hand-side evaluations (rows of f
    actually evaluated; the initial-step heuristic included), accepted and rejected steps.

    ``error [B]``: ``R_E = sum_j E_j |h_j|`` over accepted steps, ``E_j`` the scaled RMS embedded
    error estimate that the step-size controller used (dimensionless; ``h`` in time units).
    ``stiffness [B]``: ``R_S = sum_j S_j``, ``S_j`` the stage-difference Lipschitz estimate
    (1 / time units).  Both carry gradients in backprop mode (``differentiable``); None where the
    method has no such estimate (error: fixed-step methods; stiffness: one-stage Euler).

    ``local_error``, ``local_stiffness [B]``: ``E_j |h_j|`` and ``S_j`` of the one accepted step that
    contains the sample's random time ``local_time [B]`` (``sample_local=True``; "Locally
    Regularized Neural Differential Equations", Pal et al. 2023, unbiased sampling).
    ``last_step [B]``: the controller's next proposed step (warm start for a following solve).
    """

    nfe: Tensor
    n_accepted: Tensor
    n_rejected: Tensor
    error: Optional[Tensor] = None
    stiffness: Optional[Tensor] = None
    local_error: Optional[Tensor] = None
    local_stiffness: Optional[Tensor] = None
    local_time: Optional[Tensor] = None
    local_step: Optional[LocalStep] = None
    last_step: Optional[Tensor] = None
    differentiable: bool = True

    @property
    def batch(self) -> int:
        return self.nfe.shape[0]

    def detach(self) -> "SolverStats":
        """A copy whose tensors carry no gradient."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, Tensor):
                v = v.detach()
            elif isinstance(v, LocalStep):
                v = LocalStep(*(x.detach() for x in v))
            out[f.name] = v
        out["differentiable"] = False
        return SolverStats(**out)

    def __add__(self, other: "SolverStats") -> "SolverStats":
        """Totals of two solves of the same batch one after the other (e.g. the steps of a sequence):
        counters and heuristics add; the later solve's last step and local sample are kept where only
        it has one (local terms add, each solve sampled its own time)."""
        def add(a, b):
            if a is None or b is None:
                return b if a is None else a
            return a + b
        return SolverStats(
            nfe=self.nfe + other.nfe, n_accepted=self.n_accepted + other.n_accepted,
            n_rejected=self.n_rejected + other.n_rejected, error=add(self.error, other.error),
            stiffness=add(self.stiffness, other.stiffness), local_error=add(self.local_error, other.local_error),
            local_stiffness=add(self.local_stiffness, other.local_stiffness),
            local_time=other.local_time if other.local_time is not None else self.local_time,
            local_step=other.local_step if other.local_step is not None else self.local_step,
            last_step=other.last_step if other.last_step is not None else self.last_step,
            differentiable=self.differentiable and other.differentiable)

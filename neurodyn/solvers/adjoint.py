"""Continuous adjoint (Chen et al. 2018) with per-sample step control, as a ``torch.autograd.Function``.

Forward: the solve runs without a graph and keeps only the outputs ``ys [K, B, D]`` (memory
independent of the number of steps).  Backward, interval by interval from ``t_eval[K-1]`` down to
``t_eval[0]``, it integrates the augmented state ``z = [y, a]`` (``a = dL/dy``) backward in time,
per sample with the same solver and tolerances::

    dy/dt = f(t, y),      da/dt = -a^T df/dy,      dL/dtheta = int a^T df/dtheta dt

``y`` restarts from the stored forward value at every output time and ``a`` jumps by the output's
gradient there.  The parameter (and ``args``) integral is not part of the controlled state: after
each accepted step its stages are re-evaluated on the accepted rows and ``h sum_i b_i a_i^T df/dtheta``
is accumulated with one vector-Jacobian product (the "seminorm" choice of torchdiffeq).
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch

from .integrate import SolverConfig, integrate
from .stats import SolverStats
from .stepper import RHS, StepResult

Tensor = torch.Tensor


def _augmented_rhs(f: RHS, D: int) -> RHS:
    """``[y, a]`` dynamics in reversed time ``s = -t``: ``dy/ds = -f``, ``da/ds = a^T df/dy``."""
    def aug(s: Tensor, z: Tensor, *args: Tensor) -> Tensor:
        y, a = z[:, :D], z[:, D:]
        with torch.enable_grad():
            y_ = y.detach().requires_grad_(True)
            fy = f(-s, y_, *args)
            (vjp,) = torch.autograd.grad(fy, y_, a, allow_unused=True)
        if vjp is None:
            vjp = torch.zeros_like(a)
        return torch.cat([-fy.detach(), vjp], dim=1)
    return aug


class _ParamIntegral:
    """Accumulates ``int a^T df/d(params, args) dt`` from the accepted steps of the backward solve."""

    def __init__(self, f: RHS, cfg: SolverConfig, D: int, params: tuple, args: tuple):
        self.f, self.tab, self.D = f, cfg.tableau, D
        self.params = params
        self.args = args
        self.args_grad = [a.requires_grad for a in args]
        self.g_params = [torch.zeros_like(p) for p in params]
        self.g_args = [torch.zeros_like(a) if r else None for a, r in zip(args, self.args_grad)]

    def __call__(self, rows: Tensor, accept: Tensor, t: Tensor, h: Tensor, step: StepResult) -> None:
        acc = accept.nonzero().squeeze(1)
        want_args = any(self.args_grad)
        if acc.numel() == 0 or not (self.params or want_args):
            return
        ra, ta, ha = rows[acc], t[acc], h[acc]
        D = self.D
        with torch.enable_grad():
            leaves = tuple(a.detach()[ra].requires_grad_(r) for a, r in zip(self.args, self.args_grad))
            total = None
            for i, (bi, ci) in enumerate(zip(self.tab.b, self.tab.c)):
                if bi == 0.0:
                    continue
                z = step.ys[i][acc]
                fy = self.f(-(ta + ci * ha), z[:, :D].detach(), *leaves)
                term = ((fy * z[:, D:].detach()).sum(-1) * (ha * bi)).sum()
                total = term if total is None else total + term
            wrt = list(self.params) + [x for x, r in zip(leaves, self.args_grad) if r]
            grads = torch.autograd.grad(total, wrt, allow_unused=True)
        for j, g in enumerate(grads[: len(self.params)]):
            if g is not None:
                self.g_params[j] += g
        rest = iter(grads[len(self.params):])
        for j, r in enumerate(self.args_grad):
            g = next(rest) if r else None
            if g is not None:
                self.g_args[j].index_add_(0, ra, g)


def adjoint_integrate(f: RHS, y0: Tensor, t_eval: Tensor, cfg: SolverConfig, args: tuple, params: tuple,
                      first_step: Optional[Tensor] = None, local_times: Optional[Tensor] = None
                      ) -> tuple[Tensor, SolverStats]:
    """``integrate`` with gradients by the continuous adjoint for ``y0``, ``args`` and ``params``."""
    holder: dict = {}
    n_args = len(args)

    class _Adjoint(torch.autograd.Function):
        @staticmethod
        def forward(ctx, y0_, *tensors):
            a_, p_ = tensors[:n_args], tensors[n_args:]
            ys, stats = integrate(f, y0_, t_eval, cfg, a_, first_step=first_step, local_times=local_times)
            holder["stats"] = stats
            ctx.save_for_backward(ys)
            return ys

        @staticmethod
        def backward(ctx, gys):
            (ys,) = ctx.saved_tensors
            # args and params from the closure: they keep the caller's requires_grad flags.
            a_, p_ = tuple(args), tuple(params)
            K, B, D = ys.shape
            aug = _augmented_rhs(f, D)
            acc = _ParamIntegral(f, cfg, D, p_, a_)
            adj = gys[-1]
            h = None
            for k in range(K - 1, 0, -1):
                z = torch.cat([ys[k], adj], dim=1)
                te = torch.stack([-t_eval[k], -t_eval[k - 1]])
                zs, st = integrate(aug, z, te, cfg, a_, first_step=h, on_accept=acc)
                h = st.last_step if cfg.tableau.adaptive else None
                adj = zs[-1][:, D:] + gys[k - 1]
            return (adj, *acc.g_args, *acc.g_params)

    inputs = [y0, *args, *params]
    ys = _Adjoint.apply(*inputs)
    stats: SolverStats = holder["stats"]
    return ys, dataclasses.replace(stats, differentiable=False)

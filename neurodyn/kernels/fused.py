"""The autograd Function shared by the fused multi-step backends (Numba on CPU, CuPy on GPU).

A backend only supplies a launcher: how to run its generated ``forward`` and ``backward``
kernels on torch tensors.  Saving trajectories, picking the kernel variant for the
gradients autograd asks for and reducing coefficient gradients over the batch happen
here, once for every backend.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import torch

from ..neurons.base import NeuronModel


class Launcher(Protocol):
    """Runs one backend's generated kernels on torch tensors (shapes as in ``codegen``)."""

    def forward(self, model: NeuronModel, surrogate: str, alpha: float | None, x: torch.Tensor,
                state0: Sequence[torch.Tensor], coefs: Sequence[torch.Tensor], lengths: torch.Tensor,
                out: torch.Tensor, trajs: Sequence[torch.Tensor]) -> None: ...

    def backward(self, model: NeuronModel, surrogate: str, alpha: float | None, need_c: tuple[bool, ...],
                 need_t: tuple[bool, ...], tensors: Sequence[torch.Tensor]) -> None: ...


class FusedNeuronFn(torch.autograd.Function):
    """out, *trajectories = neuron over all T steps; args: launcher, model, surrogate, alpha, lengths, x, *s0, *coefs."""

    @staticmethod
    def forward(ctx, launcher, model, surrogate, alpha, lengths, x, *rest):  # noqa: D401
        S = len(model.states)
        state0, coefs = rest[:S], rest[S:]
        out = torch.empty_like(x)
        trajs = tuple(torch.empty_like(x) for _ in range(S))
        launcher.forward(model, surrogate, alpha, x, state0, coefs, lengths, out, trajs)
        ctx.launcher, ctx.model, ctx.surrogate, ctx.alpha = launcher, model, surrogate, alpha
        ctx.save_for_backward(lengths, x, *state0, *coefs, *trajs)
        ctx.mark_non_differentiable(lengths)
        # Unused trajectories get None, not materialised zeros [T, B, N] (a large fill per call).
        ctx.set_materialize_grads(False)
        return (out, *trajs)

    @staticmethod
    def backward(ctx, g_out, *g_trajs):
        model = ctx.model
        S, C = len(model.states), len(model.coefs)
        lengths, x, *rest = ctx.saved_tensors
        state0, coefs, trajs = rest[:S], rest[S:S + C], rest[S + C:]
        T, B, N = x.shape
        if g_out is None:
            g_out = torch.zeros_like(x)
        first_coef = 6 + S  # position of the first coefficient among forward's inputs
        need_c = tuple(bool(ctx.needs_input_grad[first_coef + k]) for k in range(C))
        need_t = tuple(g is not None for g in g_trajs)
        # Unused gradient buffers are passed as tiny dummies the kernel variant never touches.
        dummy3 = torch.zeros((1, 1, 1), dtype=x.dtype, device=x.device)
        dummy2 = torch.zeros((1, 1), dtype=x.dtype, device=x.device)
        g_trs = [g.contiguous() if g is not None else dummy3 for g in g_trajs]
        g_x = torch.empty_like(x)
        g_s0 = [torch.empty((B, N), dtype=x.dtype, device=x.device) for _ in range(S)]
        g_c = [torch.empty((B, N), dtype=x.dtype, device=x.device) if k else dummy2 for k in need_c]
        tensors = [x, *state0, *coefs, lengths, *trajs, g_out.contiguous(), *g_trs, g_x, *g_s0, *g_c]
        ctx.launcher.backward(model, ctx.surrogate, ctx.alpha, need_c, need_t, tensors)
        g_coefs = [g.sum(0) if k else None for k, g in zip(need_c, g_c)]
        g_state = [g if ctx.needs_input_grad[6 + k] else None for k, g in enumerate(g_s0)]
        return (None, None, None, None, None, g_x if ctx.needs_input_grad[5] else None, *g_state, *g_coefs)


def run_fused(launcher: Launcher, model: NeuronModel, x: torch.Tensor, state0: tuple[torch.Tensor, ...],
              coefs: tuple[torch.Tensor, ...], lengths: torch.Tensor, surrogate: str,
              alpha: float | None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Same contract as ``reference.run_reference``; all T steps run inside one kernel call."""
    out, *trajs = FusedNeuronFn.apply(launcher, model, surrogate, alpha, lengths, x, *state0, *coefs)
    return out, tuple(trajs)

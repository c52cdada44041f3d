"""The Numba CPU backend: fused multi-step forward and backward kernels as one autograd Function."""
from __future__ import annotations

import torch

from ..neurons.base import NeuronModel
from .codegen import cpu_kernels


class _NumbaNeuron(torch.autograd.Function):
    @staticmethod
    def forward(ctx, model, surrogate, alpha, lengths, x, *rest):  # noqa: D401
        S = len(model.states)
        state0, coefs = rest[:S], rest[S:]
        kern = cpu_kernels(model, surrogate, alpha)
        out = torch.empty_like(x)
        trajs = tuple(torch.empty_like(x) for _ in range(S))
        kern.forward(x.numpy(), *(s.numpy() for s in state0), *(c.numpy() for c in coefs),
                     lengths.numpy(), out.numpy(), *(t.numpy() for t in trajs))
        ctx.model, ctx.surrogate, ctx.alpha = model, surrogate, alpha
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
        need_c = tuple(bool(ctx.needs_input_grad[5 + S + k]) for k in range(C))
        need_t = tuple(g is not None for g in g_trajs)
        # One kernel variant per gradient pattern: unused parts of the VJP are not computed.
        kern = cpu_kernels(model, ctx.surrogate, ctx.alpha, need_c, need_t)
        dummy3 = torch.zeros((1, 1, 1), dtype=x.dtype)
        dummy2 = torch.zeros((1, 1), dtype=x.dtype)
        g_trs = [g.contiguous() if g is not None else dummy3 for g in g_trajs]
        g_x = torch.empty_like(x)
        g_s0 = [torch.empty((B, N), dtype=x.dtype) for _ in range(S)]
        g_c = [torch.empty((B, N), dtype=x.dtype) if k else dummy2 for k in need_c]
        kern.backward(x.numpy(), *(s.numpy() for s in state0), *(c.numpy() for c in coefs), lengths.numpy(),
                      *(t.numpy() for t in trajs), g_out.contiguous().numpy(), *(g.numpy() for g in g_trs),
                      g_x.numpy(), *(g.numpy() for g in g_s0), *(g.numpy() for g in g_c))
        g_coefs = [g.sum(0) if k else None for k, g in zip(need_c, g_c)]
        g_state = [g if ctx.needs_input_grad[5 + k] else None for k, g in enumerate(g_s0)]
        return (None, None, None, None, g_x if ctx.needs_input_grad[4] else None, *g_state, *g_coefs)


def run_numba(
    model: NeuronModel,
    x: torch.Tensor,
    state0: tuple[torch.Tensor, ...],
    coefs: tuple[torch.Tensor, ...],
    lengths: torch.Tensor,
    surrogate: str,
    alpha: float | None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Same contract as ``reference.run_reference``; all T steps run inside one kernel call."""
    out, *trajs = _NumbaNeuron.apply(model, surrogate, alpha, lengths, x, *state0, *coefs)
    return out, tuple(trajs)

"""The autograd Function shared by the fused multi-step backends (Numba on CPU, CuPy on GPU).

A backend only supplies a launcher: how to run its generated ``forward`` and ``backward``
kernels on a list of torch tensors (in the kernels' argument order, see ``codegen``).
Saving trajectories, picking the kernel variant for the gradients autograd asks for and
reducing coefficient gradients over the batch happen here, once for every backend; the
recurrent weight gradient (a sum over spikes) is the launcher's.
"""
from __future__ import annotations

from typing import Protocol, Sequence

import torch

from ..neurons.base import NeuronModel


class Launcher(Protocol):
    """Runs one backend's generated kernels on torch tensors."""

    def forward(self, model: NeuronModel, surrogate: str, alpha: float | None, recurrent: bool,
                tensors: Sequence[torch.Tensor]) -> None: ...

    def backward(self, model: NeuronModel, surrogate: str, alpha: float | None, recurrent: bool,
                 need_c: tuple[bool, ...], need_t: tuple[bool, ...], tensors: Sequence[torch.Tensor]) -> None: ...

    def recurrent_weight_grad(self, model: NeuronModel, surrogate: str, alpha: float | None, out: torch.Tensor,
                              g_cur: torch.Tensor) -> torch.Tensor:
        """dL/dW [N, N] of cur[t] += W out[t-1]: the sum over t, b of g_cur[t] out[t-1]^T, over the spikes."""
        ...


class FusedNeuronFn(torch.autograd.Function):
    """out, *trajectories = neuron over all T steps.

    Arguments: launcher, model, surrogate, alpha, lengths, x [T, B, N], rec_weight ([N, N] or
    None: input of neuron n gets ``rec_weight[n, j]`` for each spike of neuron j last step),
    *state0 ([B, N] each), *coefs ([N] each).
    """

    @staticmethod
    def forward(ctx, launcher, model, surrogate, alpha, lengths, x, rec_weight, *rest):  # noqa: D401
        S = len(model.states)
        state0, coefs = rest[:S], rest[S:]
        rec = rec_weight is not None
        out = torch.empty_like(x)
        trajs = tuple(torch.empty_like(x) for _ in range(S))
        if rec:
            cur = torch.empty_like(x)  # total input per step (feed-forward + recurrent)
            launcher.forward(model, surrogate, alpha, True,
                             [x, rec_weight.t().contiguous(), *state0, *coefs, lengths, out, *trajs, cur])
            ctx.save_for_backward(lengths, x, rec_weight, *state0, *coefs, *trajs, cur, out)
        else:
            launcher.forward(model, surrogate, alpha, False, [x, *state0, *coefs, lengths, out, *trajs])
            ctx.save_for_backward(lengths, x, *state0, *coefs, *trajs)
        ctx.launcher, ctx.model, ctx.surrogate, ctx.alpha, ctx.rec = launcher, model, surrogate, alpha, rec
        ctx.mark_non_differentiable(lengths)
        # Unused trajectories get None, not materialised zeros [T, B, N] (a large fill per call).
        ctx.set_materialize_grads(False)
        return (out, *trajs)

    @staticmethod
    def backward(ctx, g_out, *g_trajs):
        model, rec = ctx.model, ctx.rec
        S, C = len(model.states), len(model.coefs)
        saved = list(ctx.saved_tensors)
        lengths, x = saved[0], saved[1]
        w = saved[2] if rec else None
        rest = saved[3:] if rec else saved[2:]
        state0, coefs, trajs = rest[:S], rest[S:S + C], rest[S + C:S + C + S]
        if g_out is None:
            g_out = torch.zeros_like(x)
        first_coef = 7 + S  # position of the first coefficient among forward's inputs
        need_c = tuple(bool(ctx.needs_input_grad[first_coef + k]) for k in range(C))
        head = [x, w.contiguous(), *state0, *coefs, lengths, *trajs, rest[-2]] if rec else \
            [x, *state0, *coefs, lengths, *trajs]
        g_x, g_s0, g_c = launch_backward(ctx.launcher, model, ctx.surrogate, ctx.alpha, rec, need_c, head, g_out,
                                         g_trajs)
        g_w = None
        if rec and ctx.needs_input_grad[6]:
            g_w = ctx.launcher.recurrent_weight_grad(model, ctx.surrogate, ctx.alpha, rest[-1], g_x)
        g_coefs = [g.sum(0) if k else None for k, g in zip(need_c, g_c)]
        g_state = [g if ctx.needs_input_grad[7 + k] else None for k, g in enumerate(g_s0)]
        return (None, None, None, None, None, g_x if ctx.needs_input_grad[5] else None, g_w, *g_state, *g_coefs)


def launch_backward(launcher: Launcher, model: NeuronModel, surrogate: str, alpha: float | None, recurrent: bool,
                    need_c: tuple[bool, ...], head: list[torch.Tensor], g_out: torch.Tensor,
                    g_trajs: Sequence[torch.Tensor | None]) -> tuple[torch.Tensor, list, list]:
    """The backward kernel of a neuron layer: ``head`` the forward's tensors as the kernel takes
    them (x [T, B, N] first), g_out [T, B, N] and the state trajectories' gradients (None where
    there is none: that kernel variant skips them).  Returns g_x [T, B, N], g_s0 ([B, N] per
    state) and g_c ([B, N] per coefficient; a dummy where ``need_c`` is False)."""
    x = head[0]
    T, B, N = x.shape
    # Unused gradient buffers are passed as tiny dummies the kernel variant never touches.
    dummy3 = torch.zeros((1, 1, 1), dtype=x.dtype, device=x.device)
    dummy2 = torch.zeros((1, 1), dtype=x.dtype, device=x.device)
    need_t = tuple(g is not None for g in g_trajs)
    g_trs = [g.contiguous() if g is not None else dummy3 for g in g_trajs]
    g_x = torch.empty_like(x)
    g_s0 = [torch.empty((B, N), dtype=x.dtype, device=x.device) for _ in model.states]
    g_c = [torch.empty((B, N), dtype=x.dtype, device=x.device) if k else dummy2 for k in need_c]
    launcher.backward(model, surrogate, alpha, recurrent, need_c, need_t,
                      head + [g_out.contiguous(), *g_trs, g_x, *g_s0, *g_c])
    return g_x, g_s0, g_c


def run_fused(launcher: Launcher, model: NeuronModel, x: torch.Tensor, state0: tuple[torch.Tensor, ...],
              coefs: tuple[torch.Tensor, ...], lengths: torch.Tensor, surrogate: str,
              alpha: float | None, rec_weight: torch.Tensor | None = None,
              ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Same contract as ``reference.run_reference``; all T steps run inside one kernel call.

    ``rec_weight`` [N, N]: recurrent weights (as ``nn.Linear(N, N).weight``), or None.
    """
    out, *trajs = FusedNeuronFn.apply(launcher, model, surrogate, alpha, lengths, x, rec_weight, *state0, *coefs)
    return out, tuple(trajs)

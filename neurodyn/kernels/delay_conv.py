"""Causal temporal convolution of spike trains with per-synapse kernels, event-driven on CPU.

y[t, b, o] = sum_i sum_k kern[i, k, o] * x[t - k, b, i]   (x [T, B, I], kern [I, K, O], y [T, B, O])

This is the synapse of a layer with spread (DCLS-style) delays: tap k of kern[i, :, o] is
the weight that input i gives output o after k steps.  With sparse spike input the cost is
events x K x O (each event adds a [K, O] block of the kernel into the next K output steps)
instead of T x B x I x K x O for a dense convolution.  The backward pass scatters the kernel
gradient from the same event list; the input gradient (needed by layers whose input is
itself trained) is dense, K matrix products.
"""
from __future__ import annotations

import numba
import torch
from numba import prange

from .sparse_linear import to_csr


@numba.njit(parallel=True, cache=True)
def _conv_events(ptr, idx, val, T, kern, y):
    # kern [I, K*O] (taps flattened), y [B, T*O] (one sample's steps contiguous): an event at
    # step t adds kern[i, :n] to y[b, t*O : t*O + n], one contiguous, vectorizable run.
    # Rows of (ptr, idx, val) are t * B + b; one sample per thread, so no two threads write one y row.
    B = y.shape[0]
    KO = kern.shape[1]
    O = y.shape[1] // T
    for b in prange(B):
        yb = y[b]
        for t in range(T):
            r = t * B + b
            n = min(KO, (T - t) * O)
            for e in range(ptr[r], ptr[r + 1]):
                kr = kern[idx[e]]
                a = val[e]
                dst = yb[t * O: t * O + n]
                for j in range(n):
                    dst[j] += a * kr[j]


@numba.njit(parallel=True, cache=True)
def _kernel_grad_events(ptr, idx, val, T, gy, gkern, n_blocks):
    # gkern [I, K*O] += a * gy[b, t*O : t*O + K*O] for every event (t, b, i, a), gy [B, T*O].
    # Parallel over blocks of the flattened tap axis so that no two threads write one element.
    B = gy.shape[0]
    KO = gkern.shape[1]
    O = gy.shape[1] // T
    for blk in prange(n_blocks):
        j0 = blk * KO // n_blocks
        j1 = (blk + 1) * KO // n_blocks
        for t in range(T):
            n = min(j1, (T - t) * O) - j0
            if n <= 0:
                continue
            for b in range(B):
                r = t * B + b
                src = gy[b, t * O + j0: t * O + j0 + n]
                for e in range(ptr[r], ptr[r + 1]):
                    dst = gkern[idx[e], j0: j0 + n]
                    a = val[e]
                    for j in range(n):
                        dst[j] += a * src[j]


def delay_conv_torch(x: torch.Tensor, kern: torch.Tensor) -> torch.Tensor:
    """Reference (any device, autograd): x [T, B, I], kern [I, K, O] -> y [T, B, O].

    Shift-and-add over taps: y[k:] += x[:T-k] @ kern[:, k, :].
    """
    T, B, I = x.shape
    K, O = kern.shape[1], kern.shape[2]
    y = x.new_zeros((T, B, O))
    for k in range(min(K, T)):
        y[k:] += (x[: T - k].reshape(-1, I) @ kern[:, k, :]).reshape(T - k, B, O)
    return y


def _input_grad(gy: torch.Tensor, kern: torch.Tensor) -> torch.Tensor:
    """gx[t] = sum_k gy[t + k] @ kern[:, k, :]^T  (gy [T, B, O] -> gx [T, B, I])."""
    T, B, O = gy.shape
    I, K = kern.shape[0], kern.shape[1]
    gx = gy.new_zeros((T, B, I))
    g2 = gy.reshape(T * B, O)
    for k in range(min(K, T)):
        gx[: T - k] += (g2[k * B:] @ kern[:, k, :].t()).reshape(T - k, B, I)
    return gx


class DelayConvEventFn(torch.autograd.Function):
    """Event-driven ``delay_conv_torch`` for CPU float inputs that are mostly zero."""

    @staticmethod
    def forward(ctx, x, kern):  # noqa: D401
        T, B, I = x.shape
        xn = x.detach().contiguous().reshape(T * B, I).numpy()
        csr = to_csr(xn)
        I, K, O = kern.shape
        kn = kern.detach().contiguous().reshape(I, K * O)
        y = torch.zeros((B, T * O), dtype=x.dtype)
        _conv_events(*csr, T, kn.numpy(), y.numpy())
        ctx.csr, ctx.T = csr, T
        ctx.save_for_backward(kern)
        return y.reshape(B, T, O).transpose(0, 1)

    @staticmethod
    def backward(ctx, gy):
        (kern,) = ctx.saved_tensors
        gy = gy.contiguous()
        gx = gk = None
        if ctx.needs_input_grad[0]:
            gx = _input_grad(gy, kern.detach())
        if ctx.needs_input_grad[1]:
            I, K, O = kern.shape
            T, B = gy.shape[0], gy.shape[1]
            gk = torch.zeros((I, K * O), dtype=gy.dtype)
            gyb = gy.transpose(0, 1).contiguous().reshape(B, T * O)
            blocks = max(1, min(numba.get_num_threads(), K * O))
            _kernel_grad_events(*ctx.csr, ctx.T, gyb.numpy(), gk.numpy(), blocks)
            gk = gk.reshape(I, K, O)
        return gx, gk


def delay_conv(x: torch.Tensor, kern: torch.Tensor, event: bool | str = "auto",
               max_density: float = 0.1) -> torch.Tensor:
    """Causal per-synapse temporal convolution x [T, B, I] * kern [I, K, O] -> [T, B, O].

    ``event``: 'auto' takes the event-driven Numba path on CPU when at most ``max_density``
    of x is nonzero, True forces it (CPU float32/float64), False always uses the torch path.
    Both compute the same function and gradients.
    """
    use = event is True or (
        event == "auto" and x.numel() > 0
        and torch.count_nonzero(x).item() <= max_density * x.numel())
    if use and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64) and kern.dtype == x.dtype:
        return DelayConvEventFn.apply(x, kern)
    return delay_conv_torch(x, kern)

"""Event-driven linear maps: y = b + x W^T computed by adding the weight rows of active inputs.

Cost grows with the number of nonzero inputs (spikes), not with inputs x steps.  The
forward pass builds a CSR list of the active inputs of every row of x [M, K] once; the
backward pass reuses it to scatter the weight gradient (dW[:, k] += x[m, k] g[m, :]).
"""
from __future__ import annotations

import numba
import numpy as np
import torch
from numba import prange

from .event_scan import bits, chunks, emit_row, pack, scan_buffers, to_csr
from .row_adds import add_rows


@numba.njit(parallel=True, cache=True)
def _scan_matmul(x, xb, mask, wt, bias, has_bias, y, counts, idx, val, bounds):
    # One pass over x: find each row's events (event_scan.scan_rows' layout, kept for the
    # weight gradient) and add their weight rows while the row's events are in cache.
    K = x.shape[1]
    N = wt.shape[1]
    for c in prange(bounds.shape[0] - 1):
        e = bounds[c] * K
        act = np.empty(K, dtype=np.int32)
        for m in range(bounds[c], bounds[c + 1]):
            n = emit_row(x[m], xb[m], mask, act, idx, val, e)
            yr = y[m]
            for j in range(N):
                yr[j] = bias[j] if has_bias else 0.0
            add_rows(yr, wt, idx, val, e, e + n)
            e += n
            counts[m] = n


@numba.njit(parallel=True, cache=True)
def _csr_weight_grad(indptr, idx, val, g, gwt, n_blocks):
    # Parallel over blocks of output columns so that no two threads write one element.
    M = indptr.shape[0] - 1
    N = g.shape[1]
    for blk in prange(n_blocks):
        j0 = blk * N // n_blocks
        j1 = (blk + 1) * N // n_blocks
        for m in range(M):
            gr = g[m, j0:j1]
            for e in range(indptr[m], indptr[m + 1]):
                # 1-D views indexed from 0: lets LLVM vectorize (no negative-index checks)
                row = gwt[idx[e], j0:j1]
                a = val[e]
                for j in range(row.shape[0]):
                    row[j] += a * gr[j]


class EventLinearFn(torch.autograd.Function):
    """y [M, N] = x [M, K] @ W^T + b with x sparse; gradients for x (dense), W and b."""

    @staticmethod
    def forward(ctx, x, weight, bias):  # noqa: D401
        xn = x.detach().contiguous().numpy()
        M, K = xn.shape
        wt = weight.detach().t().contiguous()
        y = torch.empty((M, weight.shape[0]), dtype=x.dtype)
        b = bias.detach().contiguous() if bias is not None else torch.zeros(1, dtype=x.dtype)
        counts, idx, val = scan_buffers(M, K, xn.dtype)
        bounds = chunks(M)
        _scan_matmul(xn, *bits(xn), wt.numpy(), b.numpy(), bias is not None, y.numpy(), counts, idx, val, bounds)
        ctx.csr = pack(counts, idx, val, K, bounds)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(weight)
        ctx.k = K
        return y

    @staticmethod
    def backward(ctx, g):
        (weight,) = ctx.saved_tensors
        g = g.contiguous()
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g @ weight
        if ctx.needs_input_grad[1]:
            gwt = torch.zeros((ctx.k, weight.shape[0]), dtype=g.dtype)
            blocks = max(1, min(numba.get_num_threads(), weight.shape[0]))
            _csr_weight_grad(*ctx.csr, g.numpy(), gwt.numpy(), blocks)
            gw = gwt.t()
        if ctx.has_bias and ctx.needs_input_grad[2]:
            gb = g.sum(0)
        return gx, gw, gb


# Forward cost per input entry on one AVX2 core (ns), fitted to benchmarks of 256/700 inputs
# into 20/256 outputs at 1.5-30% density: finding events costs more as rows fill (the
# compaction is serial), then saturates; each event adds a weight row; torch's matmul has a
# per-entry overhead plus a multiply-add per output.  They only steer the choice: both paths
# compute the same function and gradients.
_NS_SCAN, _NS_SCAN_PER_DENSITY, _NS_SCAN_MAX, _NS_ROW_ADD = 0.5, 20.0, 1.5, 0.1
_NS_DENSE_ENTRY, _NS_DENSE_MAC = 0.3, 0.035


def prefer_events(density: float, n_out: int) -> bool:
    """Whether the event path is expected to beat a dense matmul for inputs with this
    fraction of nonzeros feeding ``n_out`` outputs."""
    event = _NS_SCAN + min(_NS_SCAN_PER_DENSITY * density, _NS_SCAN_MAX) + density * n_out * _NS_ROW_ADD
    return event < _NS_DENSE_ENTRY + n_out * _NS_DENSE_MAC


def sampled_density(x: torch.Tensor, rows: int = 64) -> float:
    """Fraction of nonzeros of x [..., K], estimated from up to ``rows`` evenly spaced rows."""
    x2 = x.detach().reshape(-1, x.shape[-1])
    step = max(1, x2.shape[0] // rows)
    sample = x2[::step]
    return float(torch.count_nonzero(sample)) / max(1, sample.numel())


def event_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Event-driven ``torch.nn.functional.linear`` for CPU float inputs [..., K] that are mostly zero."""
    lead = x.shape[:-1]
    y = EventLinearFn.apply(x.reshape(-1, x.shape[-1]), weight, bias)
    return y.reshape(*lead, weight.shape[0])

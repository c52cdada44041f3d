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


@numba.njit(parallel=True, cache=True)
def _count_nonzero_rows(x, counts):
    M, K = x.shape
    for m in prange(M):
        c = 0
        for k in range(K):
            if x[m, k] != 0:
                c += 1
        counts[m] = c


@numba.njit(parallel=True, cache=True)
def _fill_csr(x, indptr, idx, val):
    # For sparse rows: the branch is almost never taken, so it predicts well.
    M, K = x.shape
    for m in prange(M):
        e = indptr[m]
        for k in range(K):
            if x[m, k] != 0:
                idx[e] = k
                val[e] = x[m, k]
                e += 1


@numba.njit(parallel=True, cache=True)
def _fill_csr_dense(x, indptr, idx, val, n_chunks):
    # For rows with many nonzeros: branch-free compaction into a row buffer (a taken/not-taken
    # branch per element mispredicts often at ~10% density), then one copy.
    M, K = x.shape
    for c in prange(n_chunks):
        bi = np.empty(K, dtype=idx.dtype)
        bv = np.empty(K, dtype=val.dtype)
        for m in range(c * M // n_chunks, (c + 1) * M // n_chunks):
            xr = x[m]
            e = 0
            for k in range(K):
                v = xr[k]
                bi[e] = k
                bv[e] = v
                e += v != 0
            o = indptr[m]
            for j in range(e):
                idx[o + j] = bi[j]
                val[o + j] = bv[j]


def csr_counts(x: np.ndarray) -> np.ndarray:
    """indptr [M+1] (int64) of the nonzeros of each row of x [M, K]: the first half of ``to_csr``."""
    M = x.shape[0]
    counts = np.empty(M, dtype=np.int64)
    _count_nonzero_rows(x, counts)
    indptr = np.zeros(M + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return indptr


def csr_fill(x: np.ndarray, indptr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr, idx [nnz] int32, val [nnz]) of x given its ``csr_counts``."""
    nnz = int(indptr[-1])
    idx = np.empty(nnz, dtype=np.int32)
    val = np.empty(nnz, dtype=x.dtype)
    if x.size and nnz > 0.04 * x.size:
        _fill_csr_dense(x, indptr, idx, val, max(1, min(x.shape[0], 4 * numba.get_num_threads())))
    else:
        _fill_csr(x, indptr, idx, val)
    return indptr, idx, val


def to_csr(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr [M+1] int64, idx [nnz] int32, val [nnz]) of the nonzeros of x [M, K]."""
    return csr_fill(x, csr_counts(x))


@numba.njit(parallel=True, cache=True)
def _csr_matmul(indptr, idx, val, wt, bias, has_bias, y):
    M = indptr.shape[0] - 1
    N = wt.shape[1]
    for m in prange(M):
        yr = y[m]
        for j in range(N):
            yr[j] = bias[j] if has_bias else 0.0
        for e in range(indptr[m], indptr[m + 1]):
            row = wt[idx[e]]
            a = val[e]
            for j in range(N):
                yr[j] += a * row[j]


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
    def forward(ctx, x, weight, bias, indptr=None):  # noqa: D401
        xn = x.detach().contiguous().numpy()
        indptr, idx, val = csr_fill(xn, csr_counts(xn) if indptr is None else indptr)
        wt = weight.detach().t().contiguous()
        y = torch.empty((x.shape[0], weight.shape[0]), dtype=x.dtype)
        b = bias.detach().contiguous() if bias is not None else torch.zeros(1, dtype=x.dtype)
        _csr_matmul(indptr, idx, val, wt.numpy(), b.numpy(), bias is not None, y.numpy())
        ctx.csr = (indptr, idx, val)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(weight)
        ctx.k = x.shape[1]
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
        return gx, gw, gb, None


def event_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                 indptr: np.ndarray | None = None) -> torch.Tensor:
    """Event-driven ``torch.nn.functional.linear`` for CPU float inputs [..., K] that are mostly zero.

    ``indptr``: the rows' ``csr_counts`` if already computed (e.g. to decide on the event path).
    """
    lead = x.shape[:-1]
    y = EventLinearFn.apply(x.reshape(-1, x.shape[-1]), weight, bias, indptr)
    return y.reshape(*lead, weight.shape[0])

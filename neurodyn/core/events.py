"""Dense multi-step input [T, B, N] -> sample-major CSR events, without a transposed copy.

Row ``b * T + t`` of (ptr, idx, val) lists the nonzero inputs of sample b at step t, so a
sample's events are contiguous (what the event kernel walks, and what an event file holds).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange


@numba.njit(parallel=True, cache=True)
def _count(x, counts):
    T, B, N = x.shape
    for b in prange(B):
        for t in range(T):
            r = x[t, b]
            c = 0
            for k in range(N):
                c += r[k] != 0  # branch-free, so it vectorizes
            counts[b * T + t] = c


@numba.njit(parallel=True, cache=True)
def _fill(x, ptr, idx, val):
    T, B, N = x.shape
    for b in prange(B):
        for t in range(T):
            r = x[t, b]
            e = ptr[b * T + t]
            if ptr[b * T + t + 1] == e:
                continue
            for k in range(N):
                if r[k] != 0:
                    idx[e] = k
                    val[e] = r[k]
                    e += 1


def dense_to_events(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR events (ptr [B*T+1] int64, channel [E] int32, value [E]) of x [T, B, N] (C-contiguous)."""
    T, B, _ = x.shape
    counts = np.empty(B * T, dtype=np.int64)
    _count(x, counts)
    ptr = np.zeros(B * T + 1, dtype=np.int64)
    np.cumsum(counts, out=ptr[1:])
    nnz = int(ptr[-1])
    idx = np.empty(nnz, dtype=np.int32)
    val = np.empty(nnz, dtype=x.dtype)
    _fill(x, ptr, idx, val)
    return ptr, idx, val

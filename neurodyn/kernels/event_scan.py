"""Finding the nonzero entries (events) of dense rows: the one scan every event path uses.

Dense spike frames are mostly zeros, so the scan reads the row's bits as unsigned integers
and tests 8 entries at once (an OR over the block); only blocks with an event are compacted,
branch-free.  ``bits(x)`` gives the unsigned view and the mask that makes the test equal to
``x != 0``: for floats the sign bit is masked off (-0.0 == 0), NaN counts as nonzero.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def bits(x: np.ndarray) -> tuple[np.ndarray, np.integer]:
    """(unsigned-int view of x, mask): ``(view & mask) != 0`` exactly where ``x != 0``."""
    u = _UINT[x.dtype.itemsize]
    full = np.iinfo(u).max
    mask = full >> 1 if x.dtype.kind == "f" else full  # floats: drop the sign bit
    return x.view(u), u(mask)


@numba.njit(inline="always", cache=True)
def row_nonzeros(xb, mask, act) -> int:
    """Indices of the nonzero entries of one row (its bits ``xb`` [K]) into ``act`` [>= K]; returns their count."""
    K = xb.shape[0]
    n = 0
    full = K - K % 8
    for k0 in range(0, full, 8):
        m = xb[k0]
        for k in range(k0 + 1, k0 + 8):
            m |= xb[k]
        if m & mask:
            for k in range(k0, k0 + 8):
                act[n] = k  # branch-free append: advance only on an event
                n += (xb[k] & mask) != 0
    for k in range(full, K):
        act[n] = k
        n += (xb[k] & mask) != 0
    return n


@numba.njit(inline="always", cache=True)
def emit_row(xr, xbr, mask, act, idx, val, e) -> int:
    """Find one row's events (``row_nonzeros``) and write their (column, value) to idx/val
    from offset e on; returns their count (``act`` holds the columns too)."""
    n = row_nonzeros(xbr, mask, act)
    for q in range(n):
        k = act[q]
        idx[e + q] = k
        val[e + q] = xr[k]
    return n


def chunks(M: int) -> np.ndarray:
    """Row boundaries [n_chunks + 1] that split M rows for the parallel scans."""
    n = max(1, min(M, 4 * numba.get_num_threads()))
    return np.array([c * M // n for c in range(n)] + [M], dtype=np.int64)


@numba.njit(parallel=True, cache=True)
def scan_rows(x, xb, mask, counts, idx, val, bounds):
    """One pass over frames x [T, B, K] in sample-major row order: row r = b*T + t (frame
    x[t, b]) has its nonzeros (column, value) written to idx/val from offset ``bounds[c] * K``
    on (c: the row's chunk), packed within the chunk; counts[r] = how many.

    idx/val are [B*T*K] buffers from ``np.empty``: only the pages written are ever touched, so
    this costs memory in proportion to the events (``pack`` copies them out).
    """
    T, B, K = x.shape
    for c in prange(bounds.shape[0] - 1):
        e = bounds[c] * K
        act = np.empty(K, dtype=np.int32)
        for r in range(bounds[c], bounds[c + 1]):
            b, t = r // T, r % T
            n = emit_row(x[t, b], xb[t, b], mask, act, idx, val, e)
            e += n
            counts[r] = n


def scan_buffers(M: int, K: int, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """counts [M], idx [M*K], val [M*K] for ``scan_rows``-style kernels."""
    return np.empty(M, dtype=np.int64), np.empty(M * K, dtype=np.int32), np.empty(M * K, dtype=dtype)


def frames_to_csr(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample-major CSR (ptr [B*T+1] int64, idx [nnz] int32, val [nnz]) of frames x [T, B, K]
    (C-contiguous): row b*T + t lists the nonzeros of x[t, b]."""
    T, B, K = x.shape
    counts, idx, val = scan_buffers(B * T, K, x.dtype)
    bounds = chunks(B * T)
    scan_rows(x, *bits(x), counts, idx, val, bounds)
    return pack(counts, idx, val, K, bounds)


def to_csr(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr [M+1] int64, idx [nnz] int32, val [nnz]) of the nonzeros of x [M, K] (C-contiguous)."""
    M, K = x.shape
    return frames_to_csr(x.reshape(M, 1, K))  # M frames of one sample: row m is x[m]


def pack(counts: np.ndarray, idx: np.ndarray, val: np.ndarray, K: int, bounds: np.ndarray):
    """CSR (indptr, idx, val) from the per-chunk segments of a ``scan_rows``-style kernel."""
    M = counts.shape[0]
    indptr = np.zeros(M + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    parts_i, parts_v = [], []
    for r0, r1 in zip(bounds[:-1], bounds[1:]):
        n = int(indptr[r1] - indptr[r0])
        parts_i.append(idx[r0 * K:r0 * K + n])
        parts_v.append(val[r0 * K:r0 * K + n])
    # a compact copy, so that the large mostly-untouched buffers are freed
    return indptr, np.concatenate(parts_i), np.concatenate(parts_v)

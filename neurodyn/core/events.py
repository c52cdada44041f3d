"""Dense multi-step input [T, B, N] -> sample-major CSR events, without a transposed copy.

Row ``b * T + t`` of (ptr, idx, val) lists the nonzero inputs of sample b at step t, so a
sample's events are contiguous (what the event kernel walks, and what an event file holds).
The nonzeros are found by the shared scan (``kernels.event_scan``).
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange

from ..kernels.event_scan import bits, chunks, emit_row, pack, scan_buffers


@numba.njit(parallel=True, cache=True)
def _scan_samples(x, xb, mask, counts, idx, val, bounds):
    # event_scan.scan_rows over the rows b*T + t, read from the frames x[t, b]
    T, B, N = x.shape
    for c in prange(bounds.shape[0] - 1):
        e = bounds[c] * N
        act = np.empty(N, dtype=np.int32)
        for r in range(bounds[c], bounds[c + 1]):
            b, t = r // T, r % T
            n = emit_row(x[t, b], xb[t, b], mask, act, idx, val, e)
            e += n
            counts[r] = n


def dense_to_events(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR events (ptr [B*T+1] int64, channel [E] int32, value [E]) of x [T, B, N] (C-contiguous)."""
    T, B, N = x.shape
    counts, idx, val = scan_buffers(B * T, N, x.dtype)
    bounds = chunks(B * T, align=max(T, 1))
    _scan_samples(x, *bits(x), counts, idx, val, bounds)
    return pack(counts, idx, val, N, bounds)

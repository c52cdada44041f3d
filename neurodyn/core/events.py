"""Dense multi-step input [T, B, N] -> sample-major CSR events, without a transposed copy.

Row ``b * T + t`` of (ptr, idx, val) lists the nonzero inputs of sample b at step t, so a
sample's events are contiguous (what the event kernel walks, and what an event file holds).
The nonzeros are found by the shared scan (``kernels.event_scan``).
"""
from __future__ import annotations

import numpy as np

from ..kernels.event_scan import frames_to_csr


def dense_to_events(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR events (ptr [B*T+1] int64, channel [E] int32, value [E]) of x [T, B, N] (C-contiguous)."""
    return frames_to_csr(x)

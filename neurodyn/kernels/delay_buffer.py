"""Integer synaptic delays on CPU: per-synapse delay ring buffers, event-driven (Numba).

A layer with weights W [N_in, N_out] and integer delays D [N_in, N_out] (steps, 0 <= D <= Dmax)
keeps, per sample, future input currents in a ring of S = Dmax + 1 slots of N_out.  An input
event of size a on channel k at step t adds a * W[k, j] to the current due at step t + D[k, j]
(``ring_push``); at step t the layer reads the currents due now into its input and clears them
(``ring_pop``).  The cost is events x N_out, as for undelayed event propagation.  The ring is
stored as 2 S rows so that a push needs no wrap-around test: it writes row (t mod S) + D[k, j],
and a pop at slot s reads rows s and s + S (the latter holds what wrapped into this lap).

For a generated network kernel (``neurodyn.core.engine``): pass ``W`` and ``off, S =
ring_offsets(D)`` per delayed layer; per sample allocate ``ring = np.zeros(2 * S * N_out)``;
at every step t with ``slot = t % S``: ``cur[:] = bias``, ``ring_push(ring, slot, k, a, W, off)``
for every input event (k, a) of step t, then ``ring_pop(ring, slot, S, cur)`` and the neuron
update.  ``delayed_propagate`` runs one layer that way over a batch of CSR events.
"""
from __future__ import annotations

import numba
import numpy as np
import torch
from numba import prange

from ..errors import ShapeError
from .dispatch import step_counts
from .sparse_linear import to_csr

_inl = numba.njit(inline="always", cache=True)


def ring_offsets(D: np.ndarray) -> tuple[np.ndarray, int]:
    """Flat ring offsets ``off[k, j] = D[k, j] * N_out + j`` (int32) and the slot count S = Dmax + 1
    for integer delays D [N_in, N_out] (validated: non-negative)."""
    D = np.asarray(D)
    if D.ndim != 2 or not np.issubdtype(D.dtype, np.integer) or (D.size and D.min() < 0):
        raise ShapeError("delays must be a [N_in, N_out] array of non-negative integers (steps)")
    n_out = D.shape[1]
    off = D.astype(np.int64) * n_out + np.arange(n_out, dtype=np.int64)[None, :]
    return np.ascontiguousarray(off.astype(np.int32)), int(D.max()) + 1 if D.size else 1


@_inl
def ring_push(ring, slot, k, a, W, off):
    """Schedule an event of size a on input k at the step whose slot is ``slot`` (= t mod S).

    ring [2 * S * N_out] holds row r = slot + D (0 <= r < 2S - 1, no wrap-around arithmetic);
    a row r >= S is due in the next lap at slot r - S, and ``ring_pop`` reads both rows.
    Adds a * W[k, j] at ring[slot * N_out + off[k, j]] for all outputs j.
    """
    base = slot * W.shape[1]
    Wk = W[k]
    ok = off[k]
    for j in range(Wk.shape[0]):
        ring[base + ok[j]] += a * Wk[j]


@_inl
def ring_pop(ring, slot, n_slots, cur):
    """Add the currents due at ``slot`` into cur [N_out] and clear them for reuse."""
    N = cur.shape[0]
    r0 = slot * N
    r1 = (slot + n_slots) * N
    for j in range(N):
        cur[j] += ring[r0 + j] + ring[r1 + j]
        ring[r0 + j] = 0.0
        ring[r1 + j] = 0.0


@numba.njit(parallel=True, cache=True)
def delayed_propagate(ev_ptr, ev_idx, ev_val, T, steps, W, off, n_slots, out):
    """Delayed synaptic input of one layer, one sample per thread, time-major.

    ev_ptr [B*T+1] int64, ev_idx [E] int32, ev_val [E]: CSR events, row b*T+t = sample b's
    inputs at step t (the layout of ``core.Network.run_events``); steps [B] int64: steps
    sample b runs (the rest of out[:, b] is left as is); W [N_in, N_out]; off, n_slots from
    ``ring_offsets(D)``; out [T, B, N_out] receives the input currents.
    """
    B = steps.shape[0]
    N = W.shape[1]
    for b in prange(B):
        ring = np.zeros(2 * n_slots * N, dtype=out.dtype)
        cur = np.empty(N, dtype=out.dtype)
        for t in range(steps[b]):
            slot = t % n_slots
            for e in range(ev_ptr[b * T + t], ev_ptr[b * T + t + 1]):
                ring_push(ring, slot, ev_idx[e], ev_val[e], W, off)
            cur[:] = 0.0
            ring_pop(ring, slot, n_slots, cur)
            out[t, b, :] = cur


def propagate_delayed(x: torch.Tensor, weight: torch.Tensor, delays: torch.Tensor,
                      steps: torch.Tensor | None = None) -> torch.Tensor:
    """Integer-delay synapses through ring buffers: x [T, B, I], weight [O, I], delays [O, I] int
    steps -> y [T, B, O] with y[t, o] = sum_i weight[o, i] x[t - delays[o, i], i] (steps past
    ``steps[b]`` are 0).  Same function as ``nn.delays.shift_add``; CPU, no gradient."""
    if x.dim() != 3 or x.shape[2] != weight.shape[1] or delays.shape != weight.shape:
        raise ShapeError(f"propagate_delayed: x [T, B, {weight.shape[1]}], weight {tuple(weight.shape)} and delays "
                         f"of the same shape expected; got x {tuple(x.shape)}, delays {tuple(delays.shape)}")
    if delays.dtype.is_floating_point or (delays.numel() and int(delays.min()) < 0):
        raise ShapeError("propagate_delayed: delays must be non-negative integers (steps)")
    T, B, I = x.shape
    dt = np.float64 if x.dtype == torch.float64 else np.float32
    ptr, idx, val = to_csr(np.ascontiguousarray(x.detach().cpu().permute(1, 0, 2).reshape(B * T, I).numpy().astype(dt)))
    W = np.ascontiguousarray(weight.detach().cpu().t().numpy().astype(dt))
    off, n_slots = ring_offsets(delays.detach().cpu().t().numpy())
    st = step_counts(steps, B, T)
    out = np.zeros((T, B, W.shape[1]), dtype=dt)
    delayed_propagate(ptr, idx, val, T, st, W, off, n_slots, out)
    return torch.from_numpy(out).to(x.dtype)

"""Integer synaptic delays on CPU: per-synapse delay ring buffers, event-driven (Numba).

A layer with weights W [N_in, N_out] and integer delays D [N_in, N_out] (steps, 0 <= D <= Dmax)
keeps, per sample, a ring of S = Dmax + 1 future input currents [S, N_out].  An input event
of size a on channel k at step t adds a * W[k, j] into slot (t + D[k, j]) mod S for every j
(``ring_push``); at step t the layer reads slot t mod S into its current and clears it
(``ring_pop``).  The cost is events x N_out, as for undelayed event propagation.

``ring_push`` / ``ring_pop`` are inlined Numba functions meant to be called from a generated
network kernel (``neurodyn.core.engine``): per sample allocate ``ring = np.zeros((S, N_out))``,
and at every step t, with ``slot = t % S``: ``cur[:] = bias``; ``ring_push(ring, slot, k, a,
W, D)`` for every input event (k, a) of step t; then ``ring_pop(ring, slot, cur)``.
``delayed_propagate`` runs one layer that way over a batch of CSR events.
"""
from __future__ import annotations

import numba
import numpy as np
import torch
from numba import prange

from ..errors import ShapeError
from .sparse_linear import to_csr

_inl = numba.njit(inline="always", cache=True)


@_inl
def ring_push(ring, slot, k, a, W, D):
    """Schedule an event of size a on input k at the step whose slot is ``slot``:
    ring[(slot + D[k, j]) mod S, j] += a * W[k, j] for all outputs j."""
    S = ring.shape[0]
    Wk = W[k]
    Dk = D[k]
    for j in range(Wk.shape[0]):
        s = slot + Dk[j]
        if s >= S:
            s -= S
        ring[s, j] += a * Wk[j]


@_inl
def ring_pop(ring, slot, cur):
    """Add the currents due at ``slot`` into cur [N_out] and clear the slot for reuse."""
    r = ring[slot]
    for j in range(cur.shape[0]):
        cur[j] += r[j]
        r[j] = 0.0


@numba.njit(parallel=True, cache=True)
def delayed_propagate(ev_ptr, ev_idx, ev_val, T, steps, W, D, n_slots, out):
    """Delayed synaptic input of one layer, one sample per thread, time-major.

    ev_ptr [B*T+1] int64, ev_idx [E] int32, ev_val [E]: CSR events, row b*T+t = sample b's
    inputs at step t (the layout of ``core.Network.run_events``); steps [B] int64: steps
    sample b runs (the rest of out[:, b] is left as is); W [N_in, N_out], D [N_in, N_out]
    integer delays in [0, n_slots - 1]; out [T, B, N_out] receives the input currents.
    """
    B = steps.shape[0]
    N = W.shape[1]
    for b in prange(B):
        ring = np.zeros((n_slots, N), dtype=out.dtype)
        cur = np.empty(N, dtype=out.dtype)
        for t in range(steps[b]):
            slot = t % n_slots
            for e in range(ev_ptr[b * T + t], ev_ptr[b * T + t + 1]):
                ring_push(ring, slot, ev_idx[e], ev_val[e], W, D)
            cur[:] = 0.0
            ring_pop(ring, slot, cur)
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
    D = np.ascontiguousarray(delays.detach().cpu().t().numpy().astype(np.int32))
    n_slots = int(D.max()) + 1 if D.size else 1
    if steps is None:
        st = np.full(B, T, dtype=np.int64)
    else:
        st = np.asarray(torch.as_tensor(steps).cpu().numpy(), dtype=np.int64)
        if st.shape != (B,) or (st < 0).any() or (st > T).any():
            raise ShapeError(f"steps must be [{B}] integers in [0, {T}]")
    out = np.zeros((T, B, W.shape[1]), dtype=dt)
    delayed_propagate(ptr, idx, val, T, st, W, D, n_slots, out)
    return torch.from_numpy(out).to(x.dtype)

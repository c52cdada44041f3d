"""Integer-delay ring buffers (Numba) against the torch shift-and-add reference and closed forms."""
import numpy as np
import pytest
import torch

from neurodyn.errors import ShapeError
from neurodyn.kernels.delay_buffer import delayed_propagate, propagate_delayed, ring_offsets
from neurodyn.kernels.sparse_linear import to_csr
from neurodyn.nn.delays import shift_add


def _sparse(T, B, n, p, dtype):
    x = (torch.rand(T, B, n) < p).to(dtype)
    return x * torch.rand(T, B, n, dtype=dtype) * 2  # graded events, not only 0/1


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ring_buffer_equals_shift_and_add(dtype):
    T, B, I, O, Dmax = 40, 5, 13, 9, 11
    x = _sparse(T, B, I, 0.2, dtype)
    w = torch.randn(O, I, dtype=dtype)
    d = torch.randint(0, Dmax + 1, (O, I))
    d[0, :] = 0          # undelayed synapses share the slot being read this step
    d[1, :] = Dmax       # the longest delay wraps the ring exactly once
    ref = shift_add(x, w, d)
    got = propagate_delayed(x, w, d)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(got, ref, rtol=tol, atol=tol)
    assert got.abs().max() > 0


def test_single_event_arrives_exactly_after_its_delay():
    # Closed form: one event of size a on input k at step t0 gives a * W[o, k] at t0 + D[o, k] only.
    T, I, O = 20, 3, 4
    w = torch.arange(1.0, 1.0 + O * I, dtype=torch.float64).reshape(O, I)
    d = torch.tensor([[0, 3, 7], [5, 1, 2], [7, 7, 0], [4, 6, 3]])
    x = torch.zeros(T, 1, I, dtype=torch.float64)
    x[4, 0, 1] = 0.5
    y = propagate_delayed(x, w, d)
    expect = torch.zeros(T, 1, O, dtype=torch.float64)
    for o in range(O):
        expect[4 + d[o, 1], 0, o] = 0.5 * w[o, 1]
    torch.testing.assert_close(y, expect, rtol=0, atol=0)


def test_per_sample_steps_stop_each_sample():
    T, B, I, O = 30, 4, 6, 5
    x = _sparse(T, B, I, 0.3, torch.float64)
    w = torch.randn(O, I, dtype=torch.float64)
    d = torch.randint(0, 8, (O, I))
    steps = torch.tensor([30, 0, 11, 23])
    got = propagate_delayed(x, w, d, steps=steps)
    ref = shift_add(x, w, d)
    for b, s in enumerate(steps.tolist()):
        torch.testing.assert_close(got[:s, b], ref[:s, b], rtol=1e-12, atol=1e-12)
        assert bool((got[s:, b] == 0).all())


def test_kernel_reads_the_engines_event_layout():
    # Rows of the CSR events are b * T + t, as in core.Network.run_events.
    T, B, I, O = 12, 3, 4, 3
    x = _sparse(T, B, I, 0.4, torch.float64)
    w = torch.randn(O, I, dtype=torch.float64)
    d = torch.randint(0, 5, (O, I))
    ptr, idx, val = to_csr(np.ascontiguousarray(x.permute(1, 0, 2).reshape(B * T, I).numpy()))
    out = np.zeros((T, B, O))
    off, n_slots = ring_offsets(d.t().numpy())
    assert n_slots == int(d.max()) + 1
    delayed_propagate(ptr, idx, val, T, np.full(B, T, dtype=np.int64), np.ascontiguousarray(w.t().numpy()), off,
                      n_slots, out)
    torch.testing.assert_close(torch.from_numpy(out), shift_add(x, w, d), rtol=1e-12, atol=1e-12)


def test_bad_delays_and_shapes_are_errors():
    x = torch.zeros(5, 2, 3)
    w = torch.zeros(4, 3)
    with pytest.raises(ShapeError, match="non-negative integers"):
        propagate_delayed(x, w, torch.full((4, 3), -1))
    with pytest.raises(ShapeError, match="non-negative integers"):
        propagate_delayed(x, w, torch.zeros(4, 3))
    with pytest.raises(ShapeError, match="same shape"):
        propagate_delayed(x, w, torch.zeros(3, 4, dtype=torch.long))
    with pytest.raises(ShapeError, match="steps"):
        propagate_delayed(x, w, torch.zeros(4, 3, dtype=torch.long), steps=torch.tensor([9, 1]))

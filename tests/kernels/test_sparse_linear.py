"""Event-driven Linear (weight rows of active inputs) against torch's dense Linear: values and gradients."""
import numpy as np
import pytest
import torch

import neurodyn.nn as ndn
from neurodyn.kernels.sparse_linear import event_linear, prefer_events, to_csr


@pytest.mark.parametrize("density", [0.0, 0.01, 0.08, 0.5])  # skipped and filled scan blocks, and empty input
def test_to_csr_round_trip(density):
    rng = np.random.default_rng(0)
    x = ((rng.random((57, 91)) < density) * rng.standard_normal((57, 91))).astype(np.float32)
    indptr, idx, val = to_csr(x)
    back = np.zeros_like(x)
    for m in range(x.shape[0]):
        back[m, idx[indptr[m]:indptr[m + 1]]] = val[indptr[m]:indptr[m + 1]]
    np.testing.assert_array_equal(back, x)
    assert indptr[-1] == np.count_nonzero(x)


@pytest.mark.parametrize("density", [0.0, 0.02, 0.3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_event_linear_matches_dense(density, dtype):
    g = torch.Generator().manual_seed(0)
    x = ((torch.rand(13, 6, 50, generator=g) < density) * torch.randn(13, 6, 50, generator=g)).to(dtype)
    x.requires_grad_()
    lin = torch.nn.Linear(50, 37).to(dtype)
    y_ev = event_linear(x, lin.weight, lin.bias)
    y_dn = lin(x)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(y_ev, y_dn, **tol)
    gy = torch.randn(y_dn.shape, generator=g, dtype=dtype)
    ge = torch.autograd.grad(y_ev, [x, lin.weight, lin.bias], gy)
    gd = torch.autograd.grad(y_dn, [x, lin.weight, lin.bias], gy)
    for a, b in zip(ge, gd):
        torch.testing.assert_close(a, b, **tol)


def test_linear_auto_takes_event_path_only_when_sparse(monkeypatch):
    import neurodyn.kernels.sparse_linear as sl
    calls = []
    real = sl.EventLinearFn.apply
    monkeypatch.setattr(sl.EventLinearFn, "apply", lambda *a: calls.append(1) or real(*a))
    lin = ndn.Linear(40, 256, max_density=0.1)
    sparse = torch.zeros(5, 2, 40)
    sparse[:, :, :2] = 1.0
    dense = torch.ones(5, 2, 40)
    ref = torch.nn.functional.linear(sparse, lin.weight, lin.bias)
    torch.testing.assert_close(lin(sparse), ref)
    assert len(calls) == 1
    lin(dense)
    assert len(calls) == 1, "dense input must not take the event path"


def test_cost_model_prefers_dense_for_narrow_outputs():
    # SHD's 700 -> 256 layer at 1.5% input activity: events; 256 -> 20 at 10% spikes: dense.
    assert prefer_events(0.015, 256)
    assert not prefer_events(0.10, 20)
    assert not prefer_events(1.0, 4096)


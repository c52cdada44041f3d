"""Every Numba kernel against the torch reference: outputs and gradients (inputs, state, coefficients)."""
import pytest
import torch

from neurodyn.kernels import run_neuron
from neurodyn.neurons import NEURONS

COEF = {"decay": 0.9, "gain": 0.4, "v_rest": 0.05, "threshold": 1.0, "v_reset": -0.1, "alpha_syn": 0.7,
        "adapt_decay": 0.95, "adapt_beta": 0.6}


def _coefs(model, n, reset_sub, dtype):
    g = torch.Generator().manual_seed(1)
    cs = []
    for c in model.coefs:
        if c == "reset_sub":
            cs.append(torch.full((n,), reset_sub, dtype=dtype))
        else:  # per-neuron values around the nominal one
            cs.append((COEF[c] * (1 + 0.1 * torch.rand(n, generator=g, dtype=dtype))).requires_grad_())
    return cs


def _run(model, backend, x, cs, s0, lengths, surrogate):
    out, trajs = run_neuron(model, x, cs, state0=s0, lengths=lengths, surrogate=surrogate, backend=backend)
    g = torch.Generator().manual_seed(2)
    w = torch.randn(out.shape, generator=g, dtype=out.dtype)
    loss = (out * w).sum() + sum((tr * torch.randn(tr.shape, generator=g, dtype=tr.dtype)).sum() for tr in trajs)
    wrt = [x] + [c for c in cs if c.requires_grad] + list(s0)
    return out, trajs, torch.autograd.grad(loss, wrt)


@pytest.mark.parametrize("name", sorted(NEURONS))
@pytest.mark.parametrize("reset_sub", [1.0, 0.0])
@pytest.mark.parametrize("shape", [(1, 1, 1), (17, 3, 5), (40, 8, 33)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_numba_matches_reference(name, reset_sub, shape, dtype):
    model = NEURONS[name]
    T, B, N = shape
    x = (torch.randn(shape, dtype=dtype) * 1.5 + 0.3).requires_grad_()
    cs = _coefs(model, N, reset_sub, dtype)
    s0 = [(0.3 * torch.randn(B, N, dtype=dtype)).requires_grad_() for _ in model.states]
    lengths = torch.randint(0, T + 1, (B,))
    lengths[0] = T
    ref = _run(model, "torch", x, cs, s0, lengths, "atan")
    got = _run(model, "numba", x, cs, s0, lengths, "atan")
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-4)
    if model.spiking:
        assert torch.equal(ref[0], got[0]), "spike trains differ"
        assert ref[0].sum() > 0 or T == 1
    torch.testing.assert_close(got[0], ref[0], **tol)
    for a, b in zip(got[1], ref[1]):
        torch.testing.assert_close(a, b, **tol)
    for a, b in zip(got[2], ref[2]):
        torch.testing.assert_close(a, b, **tol)
    # past their length, samples output nothing
    for b_ in range(B):
        assert got[0][lengths[b_]:, b_].abs().sum() == 0


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "sigmoid", "triangle"])
def test_numba_surrogates_match_reference(surrogate):
    model = NEURONS["lif"]
    x = torch.randn(30, 4, 9, dtype=torch.float64, requires_grad=True)
    cs = _coefs(model, 9, 1.0, torch.float64)
    s0 = [torch.zeros(4, 9, dtype=torch.float64, requires_grad=True)]
    L = torch.full((4,), 30)
    ref = _run(model, "torch", x, cs, s0, L, surrogate)
    got = _run(model, "numba", x, cs, s0, L, surrogate)
    for a, b in zip(got[2], ref[2]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", [n for n in sorted(NEURONS) if NEURONS[n].spiking])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_numba_recurrent_matches_reference(name, dtype):
    """Recurrent layers: the fused kernel (spike row-adds forward, gradient back through W) vs the step loop."""
    model = NEURONS[name]
    T, B, N = 31, 5, 23
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(T, B, N, generator=g, dtype=dtype) * 1.5 + 0.4).requires_grad_()
    w = (torch.randn(N, N, generator=g, dtype=dtype) * 0.4).requires_grad_()
    cs = _coefs(model, N, 1.0, dtype)
    s0 = [(0.3 * torch.randn(B, N, generator=g, dtype=dtype)).requires_grad_() for _ in model.states]
    lengths = torch.tensor([T, 0, 7, T - 1, 18])
    res = {}
    for backend in ("torch", "numba"):
        out, trajs = run_neuron(model, x, cs, state0=s0, lengths=lengths, backend=backend, rec_weight=w)
        gg = torch.Generator().manual_seed(4)
        loss = (out * torch.randn(out.shape, generator=gg, dtype=dtype)).sum()
        loss = loss + sum((tr * torch.randn(tr.shape, generator=gg, dtype=dtype)).sum() for tr in trajs)
        res[backend] = (out, trajs, torch.autograd.grad(loss, [x, w, *[c for c in cs if c.requires_grad], *s0]))
    (ro, rt, rg), (go, gt, gg_) = res["torch"], res["numba"]
    assert torch.equal(go, ro), "spike trains differ"
    assert ro[1:].sum() > 0 and ro[:, 1].abs().sum() == 0  # spikes happen; a 0-length sample stays silent
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=5e-4, atol=5e-4)
    for a, b in zip(gt, rt):
        torch.testing.assert_close(a, b, **tol)
    for a, b in zip(gg_, rg):
        torch.testing.assert_close(a, b, **tol)
    assert rg[1].abs().sum() > 0, "recurrent weights got no gradient"

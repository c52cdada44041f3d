"""Gradients: backprop through the solver vs closed forms, the continuous adjoint vs backprop, adjoint memory."""
import pytest
import torch
from torch import nn

from neurodyn.solvers import odesolve
from tests.solvers.conftest import decay


@pytest.mark.parametrize("method,opts", [("dopri5", dict(rtol=1e-10, atol=1e-12)),
                                         ("rk4", dict(step_size=0.01))])
def test_backprop_matches_closed_form(f64, method, opts):
    # y(T) = y0 exp(lam T): dy/dlam = T y(T), dy/dy0 = exp(lam T)
    lam = torch.tensor([-0.7, -2.0, 0.3], requires_grad=True)
    y0 = torch.tensor([[1.0], [2.0], [-1.0]], requires_grad=True)
    T = 1.5
    sol = odesolve(decay, y0, [0.0, T], method=method, args=(lam,), **opts)
    sol.y_final.sum().backward()
    yT = (y0 * torch.exp(lam * T)[:, None]).detach()
    assert torch.allclose(lam.grad, T * yT[:, 0], atol=1e-8)
    assert torch.allclose(y0.grad[:, 0], torch.exp(lam * T).detach(), atol=1e-8)


class MLP(nn.Module):
    def __init__(self, d=3, width=8):
        super().__init__()
        self.l1, self.l2 = nn.Linear(d + 1, width), nn.Linear(width, d)

    def forward(self, t, y, u=None):
        h = torch.tanh(self.l1(torch.cat([y, t[:, None]], dim=1)))
        out = self.l2(h) - 0.2 * y
        return out if u is None else out + u * y


def _loss(ys):
    w = torch.linspace(-1.0, 1.0, ys[1:].numel()).reshape(ys[1:].shape)
    return (ys[1:] * w).sum() + (ys[-1] ** 2).sum()


@pytest.mark.parametrize("method,opts", [("dopri5", dict(rtol=1e-9, atol=1e-11)),
                                         ("tsit5", dict(rtol=1e-9, atol=1e-11)),
                                         ("rk4", dict(step_size=0.02))])
def test_adjoint_equals_backprop(f64, method, opts):
    torch.manual_seed(0)
    f = MLP().double()
    y0 = torch.randn(4, 3, requires_grad=True)
    u = (0.3 * torch.randn(4, 1)).requires_grad_(True)    # a per-sample input passed through args
    te = torch.tensor([[0.0] * 4, [0.4, 0.5, 0.6, 0.7], [1.0, 1.1, 1.3, 1.5]])
    grads = {}
    for mode in ("backprop", "adjoint"):
        for p in (*f.parameters(), y0, u):
            p.grad = None
        sol = odesolve(f, y0, te, method=method, args=(u,), grad=mode, **opts)
        _loss(sol.ys).backward()
        grads[mode] = [p.grad.clone() for p in (*f.parameters(), y0, u)]
    for gb, ga in zip(grads["backprop"], grads["adjoint"]):
        assert torch.allclose(gb, ga, atol=1e-6, rtol=1e-5), (gb - ga).abs().max()


def _saved_bytes(fn):
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return total[0]


def test_adjoint_memory_does_not_grow_with_steps(f64):
    f = MLP().double()
    y0 = torch.randn(8, 3, requires_grad=True)

    def run(grad, rtol):
        return lambda: odesolve(f, y0, [0.0, 2.0], rtol=rtol, atol=rtol * 1e-2, grad=grad)

    loose, tight = odesolve(f, y0, [0.0, 2.0], rtol=1e-4, atol=1e-6), odesolve(f, y0, [0.0, 2.0], rtol=1e-9, atol=1e-11)
    assert int(tight.stats.n_accepted.sum()) > 4 * int(loose.stats.n_accepted.sum())
    adj = _saved_bytes(run("adjoint", 1e-4))
    assert adj == _saved_bytes(run("adjoint", 1e-9))
    assert adj <= 2 * (2 * 8 * 3 * 8)  # the outputs ys [K=2, 8, 3] float64 and little else
    assert _saved_bytes(run("backprop", 1e-9)) > 4 * _saved_bytes(run("backprop", 1e-4))

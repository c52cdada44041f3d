"""Solver statistics: counters, the Pal et al. heuristics (values and gradients), local sampling."""
import pytest
import torch

from neurodyn.solvers import odesolve
from tests.solvers.conftest import decay
from tests.solvers.test_gradients import MLP


@pytest.mark.parametrize("method", ["dopri5", "tsit5", "bosh3", "rk4", "midpoint"])
def test_stiffness_estimate_is_the_eigenvalue_of_a_linear_ode(f64, method):
    # For y' = lam y every stage difference satisfies k_s - k_{s-1} = lam (Y_s - Y_{s-1}): S_j = |lam|.
    lam = torch.tensor([-0.5, -4.0, 2.0])
    opts = dict(step_size=0.1) if method in ("rk4", "midpoint") else dict(rtol=1e-6, atol=1e-8)
    sol = odesolve(decay, torch.ones(3, 2), [0.0, 1.0], method=method, args=(lam,), **opts)
    st = sol.stats
    assert torch.allclose(st.stiffness, lam.abs() * st.n_accepted, rtol=1e-9)
    assert (st.nfe > 0).all() and (st.n_accepted > 0).all()
    if method in ("rk4", "midpoint"):
        assert st.error is None and st.n_rejected.sum() == 0
    else:
        # R_E = sum_j E_j h_j with every accepted E_j <= 1 and sum_j h_j = 1
        assert ((st.error > 0) & (st.error <= 1.0 + 1e-12)).all()


def test_euler_has_no_heuristics(f64):
    sol = odesolve(decay, torch.ones(2, 1), [0.0, 1.0], method="euler", step_size=0.1, args=(torch.ones(2),))
    assert sol.stats.error is None and sol.stats.stiffness is None


def test_heuristics_are_finite_and_differentiable(f64):
    torch.manual_seed(1)
    f = MLP().double()
    y0 = torch.randn(5, 3)
    sol = odesolve(f, y0, [0.0, 1.0], method="dopri5", rtol=1e-5, atol=1e-7)
    st = sol.stats
    for v in (st.error, st.stiffness):
        assert v.shape == (5,) and torch.isfinite(v).all() and v.requires_grad
    (st.error.sum() + st.stiffness.sum()).backward()
    grads = [p.grad for p in f.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # The gradient is the true derivative of the estimate: one accepted step of pinned size (t_eval
    # spans exactly first_step), compared with central differences on one weight.
    w = f.l2.weight

    def one_step_error():
        s1 = odesolve(f, y0, [0.0, 0.05], rtol=1e-5, atol=1e-7, first_step=0.05).stats
        assert s1.n_accepted.tolist() == [1] * 5 and s1.n_rejected.sum() == 0
        return s1.error.sum()

    f.zero_grad()
    one_step_error().backward()
    with torch.no_grad():
        base = w[0, 0].item()
        vals = []
        for d in (1e-6, -1e-6):
            w[0, 0] = base + d
            vals.append(float(one_step_error()))
        w[0, 0] = base
    fd = (vals[0] - vals[1]) / 2e-6
    assert abs(fd - float(w.grad[0, 0])) < 1e-5 * max(1.0, abs(fd)), (fd, float(w.grad[0, 0]))


def test_local_sample_picks_one_step_per_sample(f64):
    lam = torch.tensor([-0.5, -4.0, -1.0, -8.0])
    g = torch.Generator().manual_seed(0)
    sol = odesolve(decay, torch.ones(4, 2), [0.0, 2.0], args=(lam,), sample_local=True, generator=g)
    st = sol.stats
    assert ((st.local_time > 0) & (st.local_time <= 2.0)).all()
    assert torch.allclose(st.local_stiffness, lam.abs())         # exactly one step's S_j = |lam|
    assert ((st.local_error > 0) & (st.local_error < st.error)).all()
    ls = st.local_step
    assert ((ls.t < st.local_time) & (st.local_time <= ls.t + ls.h + 1e-12)).all()
    assert torch.allclose(ls.y[:, 0], torch.exp(lam * ls.t), rtol=1e-6)


def test_local_heuristics_with_adjoint_match_backprop_values(f64):
    torch.manual_seed(2)
    f = MLP().double()
    y0 = torch.randn(3, 3)
    out = {}
    for mode in ("backprop", "adjoint"):
        sol = odesolve(f, y0, [0.0, 1.0], rtol=1e-6, atol=1e-8, grad=mode, sample_local=True,
                       generator=torch.Generator().manual_seed(5))
        out[mode] = sol.stats
    assert torch.allclose(out["backprop"].local_error, out["adjoint"].local_error, rtol=1e-10)
    assert torch.allclose(out["backprop"].local_stiffness, out["adjoint"].local_stiffness, rtol=1e-10)
    assert not out["adjoint"].differentiable and out["adjoint"].local_error.requires_grad
    out["adjoint"].local_error.sum().backward()
    assert f.l1.weight.grad is not None and torch.isfinite(f.l1.weight.grad).all()

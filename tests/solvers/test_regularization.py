"""Regularizers built from the solver statistics."""
import pytest
import torch

from neurodyn.errors import ConfigError
from neurodyn.solvers import SolverRegularization, odesolve, solver_regularization
from tests.solvers.conftest import decay
from tests.solvers.test_gradients import MLP


def test_terms_are_weighted_batch_means(f64):
    lam = torch.tensor([-0.5, -4.0])
    st = odesolve(decay, torch.ones(2, 1), [0.0, 1.0], args=(lam,), sample_local=True).stats
    t = solver_regularization(st, error=2.0, stiffness=0.5)
    assert torch.allclose(t["error"], 2.0 * st.error.mean())
    assert torch.allclose(t["stiffness"], 0.5 * st.stiffness.mean())
    assert torch.allclose(t["total"], t["error"] + t["stiffness"])
    loc = SolverRegularization(error=1.0, stiffness=1.0, mode="local").terms(st)
    assert torch.allclose(loc["stiffness"], lam.abs().mean())
    assert float(solver_regularization(st)["total"]) == 0.0


def test_one_gradient_step_lowers_each_regularizer(f64):
    for name in ("error", "stiffness"):
        torch.manual_seed(0)
        f = MLP().double()
        with torch.no_grad():
            f.l2.weight.mul_(4.0)   # make the field stiff enough to have something to remove
        y0 = torch.randn(6, 3)
        reg = SolverRegularization(**{name: 1.0})
        opt = torch.optim.SGD(f.parameters(), lr=1e-3)
        total = reg.terms(odesolve(f, y0, [0.0, 1.0], rtol=1e-4, atol=1e-6).stats)["total"]
        total.backward()
        before = total.item()
        opt.step()
        with torch.no_grad():
            after = reg.terms(odesolve(f, y0, [0.0, 1.0], rtol=1e-4, atol=1e-6).stats)["total"]
        assert after.item() < before, (name, before, after.item())


def test_bad_options():
    with pytest.raises(ConfigError, match="unknown solver regularization option"):
        SolverRegularization.from_options({"error": 1.0, "stifness": 1.0})
    with pytest.raises(ConfigError, match="mode"):
        SolverRegularization(mode="sometimes")
    with pytest.raises(ConfigError, match=">= 0"):
        SolverRegularization(error=-1.0)
    assert SolverRegularization.from_options({"stiffness": 0.1, "mode": "local"}).needs_local_sample


def test_missing_statistics_are_errors(f64):
    lam = torch.tensor([-1.0], requires_grad=True)
    fixed = odesolve(decay, torch.ones(1, 1), [0.0, 1.0], method="rk4", step_size=0.1, args=(lam,)).stats
    with pytest.raises(ConfigError, match="embedded error estimate"):
        solver_regularization(fixed, error=1.0)
    plain = odesolve(decay, torch.ones(1, 1), [0.0, 1.0], args=(lam,)).stats
    with pytest.raises(ConfigError, match="sample_local=True"):
        solver_regularization(plain, stiffness=1.0, mode="local")
    adj = odesolve(decay, torch.ones(1, 1), [0.0, 1.0], args=(lam,), grad="adjoint").stats
    with pytest.raises(ConfigError, match="grad='backprop'"):
        solver_regularization(adj, error=1.0)

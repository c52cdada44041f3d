"""NeuralODE and the LTC layer solved as an ODE (the same cell as the fused step)."""
import pytest
import torch
from torch import nn

from neurodyn.errors import ConfigError
from neurodyn.nn.ltc import LTC
from neurodyn.nn import NeuralODE, ODELTC
from neurodyn.solvers import SolverRegularization
from tests.solvers.test_gradients import MLP


def _cell(seed=0, F=2, H=5, M=3):
    return LTC(F, H, M, generator=torch.Generator().manual_seed(seed)).double()


@torch.no_grad()
def test_fused_ltc_step_converges_to_ode_solution(f64):
    cell = _cell()
    x = torch.randn(4, 3, 2, generator=torch.Generator().manual_seed(1))
    elapsed = torch.tensor([[1.0, 0.5, 2.0]]).expand(4, 3)          # per-sample step lengths [T, B]
    ref = ODELTC(cell, method="dopri5", rtol=1e-9, atol=1e-11)(x, elapsed=elapsed)
    errs = []
    for n in (24, 96, 384):
        cell.unfolds = n
        errs.append(float((cell(x, elapsed=elapsed) - ref).abs().max()))
    ratios = [a / b for a, b in zip(errs, errs[1:])]
    assert all(3.5 < r < 4.5 for r in ratios), (errs, ratios)   # semi-implicit Euler: first order in 1/unfolds
    assert errs[-1] < 2.5e-3
    # a fixed-step RK4 solve of the same cell agrees with the adaptive one
    rk4 = ODELTC(cell, method="rk4", step_size=0.05)(x, elapsed=elapsed)
    assert torch.allclose(rk4, ref, atol=1e-6)


def test_ode_ltc_adjoint_equals_backprop(f64):
    cell = _cell(seed=2, H=4, M=2)
    x = torch.randn(3, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    grads = {}
    for mode in ("backprop", "adjoint"):
        cell.zero_grad()
        y = ODELTC(cell, rtol=1e-9, atol=1e-11, grad=mode)(x)
        (y ** 2).sum().backward()
        grads[mode] = {n: p.grad.clone() for n, p in cell.named_parameters()}
    for n in grads["backprop"]:
        assert torch.allclose(grads["backprop"][n], grads["adjoint"][n], atol=1e-6, rtol=1e-5), n


def test_ode_ltc_stats_accumulate_over_steps(f64):
    cell = _cell()
    x = torch.randn(5, 2, 2, dtype=torch.float64)
    m = ODELTC(cell, rtol=1e-6, atol=1e-8, sample_local=True)
    m(x)
    st = m.stats
    assert (st.n_accepted >= 5).all() and st.error.requires_grad
    reg = SolverRegularization(error=1.0, stiffness=0.1, mode="local").terms(st)["total"]
    reg.backward()
    assert cell.w.grad is not None and torch.isfinite(cell.w.grad).all()


def test_neural_ode_module(f64):
    torch.manual_seed(0)
    node = NeuralODE(MLP().double(), t_span=(0.0, 0.5, 1.0), rtol=1e-6, atol=1e-8)
    y0 = torch.randn(4, 3)
    sol = node(y0)
    assert sol.ys.shape == (3, 4, 3) and node.stats is sol.stats
    sol.y_final.sum().backward()
    assert all(p.grad is not None for p in node.parameters())
    with pytest.raises(ConfigError, match="nn.Module"):
        NeuralODE(lambda t, y: y)
    with pytest.raises(ConfigError, match="unknown ODE method"):
        NeuralODE(MLP(), method="rk45")
    with pytest.raises(ConfigError, match="neurodyn.nn.LTC"):
        ODELTC(nn.Linear(2, 2))

"""Fixed-step methods: measured convergence order on a linear ODE with a closed form."""
import math

import pytest
import torch

from neurodyn.solvers import TABLEAUS, odesolve
from tests.solvers.conftest import spiral_matrix


@pytest.mark.parametrize("method", ["euler", "midpoint", "rk4"])
def test_convergence_order(f64, method):
    A = spiral_matrix()
    y0 = torch.tensor([[1.0, 0.0], [0.3, -2.0]])
    T = 2.0
    exact = y0 @ torch.linalg.matrix_exp(A * T).T
    hs = [T / n for n in (16, 32, 64, 128)]
    errs = []
    for h in hs:
        sol = odesolve(lambda t, y: y @ A.T, y0, [0.0, T], method=method, step_size=h)
        errs.append(float((sol.y_final - exact).abs().max()))
        assert sol.stats.nfe.tolist() == [round(T / h) * TABLEAUS[method].stages] * 2
    slope = (math.log(errs[0]) - math.log(errs[-1])) / (math.log(hs[0]) - math.log(hs[-1]))
    assert abs(slope - TABLEAUS[method].order) < 0.1, (errs, slope)


def test_steps_land_on_output_times(f64):
    # Intervals not multiples of step_size are split into equal sub-steps ending exactly on t_eval.
    lam = torch.tensor([-1.0])
    te = torch.tensor([0.0, 0.15, 0.4, 1.0])
    sol = odesolve(lambda t, y: lam * y, torch.ones(1, 1), te, method="rk4", step_size=0.1)
    assert sol.stats.n_accepted.item() == 2 + 3 + 6
    assert torch.allclose(sol.ys[:, 0, 0], torch.exp(-te), atol=1e-6)


def test_time_dependent_rhs_gets_per_row_time(f64):
    # y' = cos(t): y = sin(t); t arrives as a [b] tensor, per-sample t_eval shifts each row.
    te = torch.tensor([[0.0, 1.0], [1.0, 2.5]])  # [K=2, B=2]
    sol = odesolve(lambda t, y: torch.cos(t)[:, None], torch.zeros(2, 1), te, method="rk4", step_size=0.01)
    want = torch.sin(te[1]) - torch.sin(te[0])
    assert torch.allclose(sol.y_final[:, 0], want, atol=1e-9)

"""Bad input gets one clear error from neurodyn.errors."""
import pytest
import torch

from neurodyn.errors import ConfigError, NeurodynError, ShapeError
from neurodyn.solvers import odesolve
from tests.solvers.conftest import decay

F = lambda t, y: -y  # noqa: E731


@pytest.mark.parametrize("kwargs,err,match", [
    (dict(y0=torch.tensor([[1.0], [float("nan")]])), ConfigError, "y0 contains NaN"),
    (dict(t_eval=[0.0, 1.0, 1.0]), ConfigError, "strictly increasing"),
    (dict(t_eval=[1.0, 0.0]), ConfigError, "strictly increasing"),
    (dict(t_eval=[0.0, float("inf")]), ConfigError, "NaN or inf"),
    (dict(t_eval=[0.0]), ConfigError, "at least 2"),
    (dict(t_eval=torch.zeros(2, 3)), ShapeError, r"\[K\] or \[K, 2\]"),
    (dict(method="rk45"), ConfigError, "unknown ODE method 'rk45'"),
    (dict(method="rk4"), ConfigError, "needs step_size"),
    (dict(method="rk4", step_size=0.1, rtol=1e-3), ConfigError, "rtol is for adaptive"),
    (dict(step_size=0.1), ConfigError, "step_size is for fixed-step"),
    (dict(rtol=-1.0), ConfigError, "rtol"),
    (dict(rtol=0.0, atol=0.0), ConfigError, "both be 0"),
    (dict(grad="discrete"), ConfigError, "unknown grad mode"),
    (dict(batch="together"), ConfigError, "unknown batch mode"),
    (dict(args=(torch.ones(3),)), ShapeError, r"args\[0\]"),
    (dict(first_step=torch.ones(3)), ShapeError, "first_step"),
    (dict(y0=torch.ones(2, 1, dtype=torch.long)), ShapeError, "floating"),
    (dict(adjoint_params=()), ConfigError, "adjoint_params"),
    (dict(batch="lockstep", t_eval=torch.tensor([[0.0, 0.0], [1.0, 2.0]])), ConfigError, "same t_eval"),
])
def test_bad_input(kwargs, err, match):
    call = dict(f=F, y0=torch.ones(2, 1), t_eval=[0.0, 1.0])
    call.update(kwargs)
    with pytest.raises(err, match=match):
        odesolve(call.pop("f"), call.pop("y0"), call.pop("t_eval"), **call)


def test_rhs_with_wrong_output_shape():
    with pytest.raises(ShapeError, match="state's shape"):
        odesolve(lambda t, y: y[:, :1], torch.ones(2, 3), [0.0, 1.0])


def test_step_limit_and_underflow_are_reported():
    with pytest.raises(NeurodynError, match="max_steps=5"):
        odesolve(decay, torch.ones(2, 1), [0.0, 10.0], args=(torch.tensor([-1.0, -100.0]),), max_steps=5,
                 rtol=1e-10, atol=1e-12)
    with pytest.raises(NeurodynError, match="NaN/inf at the initial state of samples \\[1\\]"):
        odesolve(lambda t, y: y / (y - 2.0) ** 2, torch.tensor([[1.0], [2.0]]), [0.0, 1.0])
    # finite at the start, blows up at t = 1: steps shrink until they underflow
    with pytest.raises(NeurodynError, match="underflow"):
        odesolve(lambda t, y: y ** 2, torch.ones(1, 1), [0.0, 2.0])


def test_a_last_step_shorter_than_the_underflow_limit_finishes_the_solve():
    # The first step ends 2^-53 before t = 1: the last step is that remainder, below the
    # underflow limit (16 eps), and the sample is done, not stuck.
    y0 = torch.ones(3, 2, dtype=torch.float64)
    sol = odesolve(lambda t, y: 0 * y, y0, [0.0, 1.0], first_step=1 - 2 ** -53)
    assert torch.equal(sol.ys[-1], y0)
    assert bool((sol.stats.n_accepted == 2).all())

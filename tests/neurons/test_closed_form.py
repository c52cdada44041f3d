"""The reference path against closed-form solutions."""
import math

import pytest
import torch

from neurodyn.nn import CUBALIF, LIF


def test_lif_subthreshold_decay_is_exact_exponential():
    tau, dt, v0 = 12.5, 0.5, 0.8
    lif = LIF(tau_mem=tau, dt=dt, threshold=1e9, backend="torch").double()
    T = 200
    out, (v,) = lif.run(torch.zeros(T, 1, 1, dtype=torch.float64),
                        state0=(torch.full((1, 1), v0, dtype=torch.float64),))
    t = torch.arange(1, T + 1, dtype=torch.float64) * dt
    torch.testing.assert_close(v[:, 0, 0], v0 * torch.exp(-t / tau), rtol=1e-12, atol=1e-14)
    assert out.sum() == 0


@pytest.mark.parametrize("drive", [1.2, 2.0, 5.0])
def test_lif_constant_input_spike_times_match_analytic(drive):
    # tau dv/dt = -v + I, v(0) = 0, spike at v >= 1, reset to 0: period tau ln(I / (I - 1)).
    tau, dt, T = 10.0, 0.01, 6000
    lif = LIF(tau_mem=tau, dt=dt, threshold=1.0, reset="zero", backend="torch").double()
    s = lif(torch.full((T, 1, 1), drive, dtype=torch.float64))[:, 0, 0]
    t_star = tau * math.log(drive / (drive - 1.0))
    # Exact integration samples the continuous solution: first spike at the first step past t*.
    period = math.ceil(t_star / dt - 1e-9)
    expected = torch.zeros(T, dtype=torch.float64)
    expected[period - 1::period] = 1.0
    assert torch.equal(s, expected)
    times = (torch.nonzero(s)[:, 0] + 1).double() * dt
    assert abs(times[0].item() - t_star) <= dt


def test_cuba_impulse_response_two_exponentials():
    tau_s, tau_m, dt, q = 3.0, 10.0, 0.01, 2.0
    cell = CUBALIF(tau_syn=tau_s, tau_mem=tau_m, dt=dt, threshold=1e9, normalize_input=False, backend="torch").double()
    T = 8000
    x = torch.zeros(T, 1, 1, dtype=torch.float64)
    x[0] = q
    _, (v, i) = cell.run(x)
    a, b = math.exp(-dt / tau_s), math.exp(-dt / tau_m)
    k = torch.arange(T, dtype=torch.float64)
    torch.testing.assert_close(i[:, 0, 0], q * a ** k, rtol=1e-12, atol=1e-14)
    # Discrete closed form: v_t = q (b^{t+1} - a^{t+1}) / (b - a)
    torch.testing.assert_close(v[:, 0, 0], q * (b ** (k + 1) - a ** (k + 1)) / (b - a), rtol=1e-10, atol=1e-12)
    # ... which tends to the continuous two-exponential kernel as dt -> 0:
    # dv/dt = -v/tau_m + i/dt, i = q e^{-t/tau_s}  =>  v = q/dt tau_s tau_m/(tau_m - tau_s) (e^{-t/tau_m} - e^{-t/tau_s})
    t = k * dt
    cont = q / dt * tau_s * tau_m / (tau_m - tau_s) * (torch.exp(-t / tau_m) - torch.exp(-t / tau_s))
    err = (v[:, 0, 0] - cont).abs().max() / cont.max()
    assert err < 0.01  # Riemann-sum error O(dt / tau)

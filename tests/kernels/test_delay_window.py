"""Spread-delay synapses over tap windows (kernels.delay_window) against the torch reference:
gaussian_taps + the dense causal convolution, values and gradients for input, weight and delays."""
import math

import pytest
import torch

from neurodyn.kernels import delay_window
from neurodyn.kernels.delay_conv import delay_conv_torch
from neurodyn.kernels.delay_window import TAP_TOL, SpreadDelayFn, spread_delay_linear, window_length, window_taps
from neurodyn.nn.delays import DelayedLinear, gaussian_taps

MAX_DELAY = 9


def _reference(x, w, d, sigma, max_delay):
    kern = (w.unsqueeze(-1) * gaussian_taps(d, sigma, max_delay)).permute(1, 2, 0)
    return delay_conv_torch(x, kern)


def _case(dtype, seed, T=23, B=3, I=7, O=5, density=0.25):
    g = torch.Generator().manual_seed(seed)
    x = ((torch.rand(T, B, I, generator=g) < density) * torch.randn(T, B, I, generator=g)).to(dtype)
    w = torch.randn(O, I, generator=g).to(dtype)
    d = (torch.rand(O, I, generator=g) * MAX_DELAY).to(dtype)
    d[0, :3] = torch.tensor([0.0, float(MAX_DELAY), 4.5])  # both edges and a half-integer
    gy = torch.randn(T, B, O, generator=g).to(dtype)
    gy[T - 6:, 1] = 0.0   # ragged: sample 1 ends early (no gradient past its length)
    gy[:, 2] = 0.0        # a sample without any gradient
    return x, w, d, gy


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("sigma", [0.0, 0.23, 0.8, 3.0, 12.5])
def test_values_and_gradients_match_the_reference(dtype, rtol, sigma):
    for seed in range(3):
        x, w, d, gy = _case(dtype, seed)
        leaves = [t.clone().requires_grad_() for t in (x, w, d)]
        y_ref = _reference(*leaves, sigma, MAX_DELAY)
        g_ref = torch.autograd.grad(y_ref, leaves, gy, allow_unused=True)
        fast = [t.clone().requires_grad_() for t in (x, w, d)]
        y = spread_delay_linear(*fast, sigma, MAX_DELAY)
        g = torch.autograd.grad(y, fast, gy)
        for name, got, ref in [("y", y, y_ref), ("gx", g[0], g_ref[0]), ("gw", g[1], g_ref[1]),
                               ("gd", g[2], g_ref[2] if g_ref[2] is not None else torch.zeros_like(d))]:
            scale = max(float(ref.detach().abs().max()), 1e-30)
            err = float((got.detach() - ref.detach()).abs().max()) / scale
            assert err <= rtol, (name, seed, err)
        if sigma == 0:
            assert bool((g[2] == 0).all())  # the one-hot limit has no delay gradient
        else:
            assert float(g[2].abs().max()) > 0


def test_both_input_gradient_paths_run():
    # narrow windows: shifted rows over the window; wide ones: K matrix products
    # (test_delay_lanes runs both with 12 taps, the largest window of MAX_DELAY here is 10)
    d = torch.rand(5, 7, dtype=torch.float64) * 25
    assert window_length(d, 0.3, 25) <= delay_window.WINDOWED_INPUT_GRAD_MAX_TAPS
    assert window_length(d, 6.0, 25) == 26 > delay_window.WINDOWED_INPUT_GRAD_MAX_TAPS
    assert window_length(d, 0.0, 25) == 1


def test_window_holds_every_tap_above_the_cutoff():
    # The window keeps exactly the taps g_k >= tol * max_j g_j of the full normalised kernel; each
    # dropped tap is below tol of the sum, so the kept taps, renormalised, differ from the full
    # kernel's by less than (K - 1) tol.
    d = torch.cat([torch.rand(400) * MAX_DELAY,  # float32 values, exact in both dtypes
                   torch.tensor([0.0, MAX_DELAY, 0.5, 4.5, 8.999])]).reshape(-1, 1).double()
    for sigma in (0.1, 0.23, 0.7, 1.5):
        for dtype in (torch.float32, torch.float64):
            tol = TAP_TOL[dtype]
            full = gaussian_taps(d.to(torch.float64), sigma, MAX_DELAY)[:, 0]  # [N, K]
            start, g, _ = window_taps(d.to(dtype), sigma, MAX_DELAY)
            k = torch.arange(MAX_DELAY + 1)
            s = torch.from_numpy(start[:, 0]).long()
            n = torch.from_numpy((g[:, 0] != 0).sum(-1)).long()
            inside = (k >= s[:, None]) & (k < (s + n)[:, None])
            rel = full / full.max(-1, keepdim=True).values
            assert bool((rel[~inside] < tol).all()), (sigma, dtype)
            assert bool((rel[inside] >= tol * 0.999).all()), (sigma, dtype)
            assert float((full * ~inside).sum(-1).max()) < MAX_DELAY * tol
            dense = torch.zeros_like(full)
            for row in range(len(d)):
                dense[row, s[row]:s[row] + n[row]] = torch.from_numpy(g[row, 0, :n[row]]).to(torch.float64)
            eps = torch.finfo(dtype).eps
            assert float((dense - full).abs().max()) <= MAX_DELAY * tol + 4 * eps


def test_window_shrinks_with_sigma():
    d = torch.rand(16, 16) * 25
    widths = [window_length(d, s, 25) for s in (12.5, 2.0, 1.0, 0.5, 0.23)]
    assert widths[0] == 26 and widths == sorted(widths, reverse=True)
    # float32 cut-off 2^-24: |k - d| <= sigma sqrt(2 ln 2^24) + the nearest tap's offset
    assert widths[-1] <= 3 and window_length(d.double(), 0.23, 25) <= 4


def test_layer_trains_through_the_fused_path(monkeypatch):
    calls = []
    orig = SpreadDelayFn.apply
    monkeypatch.setattr(SpreadDelayFn, "apply", lambda *a: calls.append(a[3]) or orig(*a))
    torch.manual_seed(5)
    x = (torch.rand(30, 4, 8) < 0.1).double()
    fast = DelayedLinear(8, 6, max_delay=7, sigma_init=0.4, bias=True, event=True, dtype=torch.float64)
    ref = DelayedLinear(8, 6, max_delay=7, sigma_init=0.4, bias=True, event=False, dtype=torch.float64)
    ref.load_state_dict(fast.state_dict())
    for m in (fast, ref):
        m(x).pow(2).sum().backward()
    assert calls == [0.4]
    for p, q in zip(fast.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12)
    # dense input under 'auto' takes the torch reference
    calls.clear()
    auto = DelayedLinear(8, 6, max_delay=7, sigma_init=0.4, dtype=torch.float64)
    auto(torch.rand(30, 4, 8, dtype=torch.float64))
    auto((torch.rand(30, 4, 8) < 0.05).double())
    assert len(calls) == 1


def test_bad_arguments_are_errors():
    x, w, d = torch.zeros(4, 2, 3), torch.zeros(2, 3), torch.zeros(2, 3)
    with pytest.raises(ValueError, match="weight and delay"):
        spread_delay_linear(x, w, torch.zeros(3, 2), 1.0, 4)
    with pytest.raises(ValueError, match="one dtype"):
        spread_delay_linear(x.double(), w, d, 1.0, 4)
    with pytest.raises(ValueError, match="sigma"):
        window_taps(d, -1.0, 4)
    with pytest.raises(ValueError, match="sigma"):
        window_taps(d, math.nan, 4)
    with pytest.raises(ValueError, match=r"\[O, I\]"):
        window_taps(torch.zeros(3), 1.0, 4)

"""Spread-delay synapses in the lanes layout (kernels.delay_lanes), the spectral input gradient
of wide windows (kernels.delay_spectral) and the choice between them and the event kernels
(kernels.delay_window): values and gradients of every form against the torch reference in
float64, for windows narrow and wide, ragged and empty event lists, odd sizes, and inputs with
and without requires_grad."""
import numpy as np
import pytest
import torch

from neurodyn.kernels import delay_lanes, delay_spectral, delay_window
from neurodyn.kernels.delay_conv import _input_grad, delay_conv_torch
from neurodyn.kernels.delay_lanes import from_lanes, grouped, to_lanes
from neurodyn.kernels.delay_spectral import spectral_input_grad
from neurodyn.kernels.delay_window import spread_delay_linear
from neurodyn.nn.delays import gaussian_taps

MAX_DELAY = 14  # K = 15 taps, more than WINDOWED_INPUT_GRAD_MAX_TAPS


def _reference(x, w, d, sigma, max_delay):
    kern = (w.unsqueeze(-1) * gaussian_taps(d, sigma, max_delay)).permute(1, 2, 0)
    return delay_conv_torch(x, kern)


def _case(seed, T=19, B=5, I=9, O=7, density=0.2):
    g = torch.Generator().manual_seed(seed)
    x = ((torch.rand(T, B, I, generator=g) < density) * torch.randn(T, B, I, generator=g)).double()
    w = torch.randn(O, I, generator=g).double()
    d = (torch.rand(O, I, generator=g) * MAX_DELAY).double()
    gy = torch.randn(T, B, O, generator=g).double()
    if B >= 5 and I >= 4:
        x[:, 1] = 0.0          # a sample without events
        x[T // 2:, 3] = 0.0    # a sample whose events stop early
        x[:, :, 2] = 0.0       # an input that never fires
        d[0, :4] = torch.tensor([0.0, float(MAX_DELAY), 4.5, 7.0])  # both edges, a half-integer, an integer
        gy[T - 5:, 0] = 0.0    # ragged: sample 0 ends early
        gy[:, 4] = 0.0         # a sample without any gradient
    return x, w, d, gy


def _compare(x, w, d, gy, sigma, dtype, rtol, x_grad=True):
    """spread_delay_linear in dtype against the float64 reference on the same (rounded) values."""
    x, w, d, gy = (t.to(dtype) for t in (x, w, d, gy))
    ref_in = [t.double().clone().requires_grad_(r) for t, r in ((x, x_grad), (w, True), (d, True))]
    y_ref = _reference(*ref_in, sigma, MAX_DELAY)
    g_ref = torch.autograd.grad(y_ref, [t for t in ref_in if t.requires_grad], gy.double(), allow_unused=True)
    fast = [t.clone().requires_grad_(r) for t, r in ((x, x_grad), (w, True), (d, True))]
    y = spread_delay_linear(*fast, sigma, MAX_DELAY)
    g = torch.autograd.grad(y, [t for t in fast if t.requires_grad], gy)
    names = (["gx"] if x_grad else []) + ["gw", "gd"]
    for name, got, ref in [("y", y, y_ref), *zip(names, g, g_ref)]:
        ref = torch.zeros_like(got, dtype=torch.float64) if ref is None else ref.detach()
        assert got.dtype == dtype and got.shape == ref.shape, name
        scale = max(float(ref.abs().max()), 1e-30)
        err = float((got.detach().double() - ref).abs().max()) / scale
        assert err <= rtol, (name, sigma, dtype, err)
    return y, g


@pytest.fixture(params=["lanes", "events"])
def form(request, monkeypatch):
    """Force one form of the forward pass and the weight/delay gradient."""
    monkeypatch.setattr(delay_window, "_use_lanes", lambda *a: request.param == "lanes")
    return request.param


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("sigma", [0.0, 0.23, 0.8, 2.0, 6.0])
def test_both_forms_match_the_reference(form, dtype, rtol, sigma):
    # sigma 0.23 / 0.8: windows of 3 / ~9 taps (one or several passes of three); 2.0 and 6.0:
    # windows of all 15 taps (the input gradient is then K matrix products)
    assert delay_window.window_length(torch.rand(9, 9) * MAX_DELAY, 2.0, MAX_DELAY) == MAX_DELAY + 1
    for seed in range(3):
        x, w, d, gy = _case(seed)
        _compare(x, w, d, gy, sigma, dtype, rtol)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 2, 1, 2), (4, 1, 3, 3), (30, 2, 2, 1), (6, 3, 8, 5),
                                   (12, 2, 3, 40), (5, 3, 6, 64)])
def test_small_odd_and_short_shapes(form, shape):
    # T shorter than the delays, single inputs/outputs (the pair passes' odd remainders), outputs
    # over several blocks of the event kernels (OUT_BLOCK), the last one partial
    T, B, I, O = shape
    x, w, d, gy = _case(7, T=T, B=B, I=I, O=O, density=0.5)
    for sigma in (0.23, 1.5):
        _compare(x, w, d, gy, sigma, torch.float64, 1e-12)


def test_all_zero_input_and_gradient(form):
    x, w, d, gy = _case(3)
    x.zero_()
    y, g = _compare(x, w, d, gy, 0.5, torch.float64, 1e-12)
    assert bool((y == 0).all()) and bool((g[1] == 0).all()) and bool((g[2] == 0).all())
    x, w, d, gy = _case(4)
    gy.zero_()
    _, g = _compare(x, w, d, gy, 0.5, torch.float64, 1e-12)
    assert all(bool((t == 0).all()) for t in g)


def test_no_input_gradient_for_data(form, monkeypatch):
    # The first layer's input is data: no input gradient is computed, the others are unchanged.
    calls = []
    for mod, name in [(delay_window, "lanes_input_grad"), (delay_window, "_input_grad"),
                      (delay_window, "spectral_input_grad")]:
        orig = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _o=orig, _n=name: calls.append(_n) or _o(*a))
    x, w, d, gy = _case(5)
    for sigma in (0.3, 6.0):
        calls.clear()
        _, g_data = _compare(x, w, d, gy, sigma, torch.float64, 1e-12, x_grad=False)
        assert calls == []
        _, g_all = _compare(x, w, d, gy, sigma, torch.float64, 1e-12, x_grad=True)
        assert len(calls) == 1
        for a, b in zip(g_data, g_all[1:]):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_event_kernels_block_the_outputs():
    assert delay_window.OUT_BLOCK == 32  # the shapes above cover one, two and a partial block


def test_the_cheaper_form_is_chosen():
    T, B, I, K = 100, 32, 256, 26
    dense_events = int(0.08 * T * B * I)
    sparse_events = int(0.01 * T * B * I)
    assert delay_window._use_lanes(T, B, I, K, 3, dense_events)       # short windows, 8% input
    assert not delay_window._use_lanes(T, B, I, K, 26, dense_events)  # all K taps
    assert not delay_window._use_lanes(T, B, I, K, 3, sparse_events)  # few events


def test_forms_agree_in_a_training_layer(monkeypatch):
    from neurodyn.nn.delays import DelayedLinear
    torch.manual_seed(2)
    x = (torch.rand(25, 4, 10) < 0.15).double()
    grads = {}
    for use in (True, False):
        monkeypatch.setattr(delay_window, "_use_lanes", lambda *a, _u=use: _u)
        torch.manual_seed(3)
        m = DelayedLinear(10, 6, max_delay=8, sigma_init=0.3, bias=True, event=True, dtype=torch.float64)
        xin = x.clone().requires_grad_()
        m(xin).pow(2).sum().backward()
        grads[use] = [xin.grad] + [p.grad for p in m.parameters()]
    for a, b in zip(grads[True], grads[False]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("N", [1, 4, 16, 17, 40])  # one, a partial and several channel blocks
def test_lanes_layout_round_trip(N):
    x = torch.randn(6, 3, N)
    out = np.full((N, (2 + 6 + 3) * 3), np.nan, dtype=np.float32)
    to_lanes(x.numpy(), 2, 3, out)
    lanes = torch.from_numpy(out).reshape(N, 11, 3)
    assert bool((lanes[:, :2] == 0).all()) and bool((lanes[:, 8:] == 0).all())
    torch.testing.assert_close(lanes[:, 2:8], x.permute(2, 0, 1), rtol=0, atol=0)
    back = torch.empty(6, 3, N)
    from_lanes(np.ascontiguousarray(out[:, 6:]), back.numpy())
    torch.testing.assert_close(back, x, rtol=0, atol=0)


@pytest.mark.parametrize("O", [1, 31, 32, 70])
def test_output_blocks_round_trip(O):
    # the event kernels' [nb, B, T * OUT_BLOCK] layout, zero past O in the last block
    OB = delay_window.OUT_BLOCK
    x = torch.randn(5, 3, O)
    nb = -(-O // OB)
    blocks = np.full((nb, 3, 5 * OB), np.nan, dtype=np.float32)
    delay_window._to_blocks(x.numpy(), blocks)
    full = torch.zeros(5, 3, nb * OB)
    full[:, :, :O] = x
    torch.testing.assert_close(torch.from_numpy(blocks).reshape(nb, 3, 5, OB),
                               full.reshape(5, 3, nb, OB).permute(2, 1, 0, 3), rtol=0, atol=0)
    back = torch.full((5, 3, O), float("nan"))
    delay_window._from_blocks(blocks, back.numpy())
    torch.testing.assert_close(back, x, rtol=0, atol=0)


def test_spread_kernel_layouts_agree():
    # [K, O, I] (spectral) and [I, K, O] (matrix products) from the same windows, including
    # windows that run past the last tap
    d = torch.rand(5, 7, dtype=torch.float64) * MAX_DELAY
    d[0, :3] = torch.tensor([0.0, float(MAX_DELAY), MAX_DELAY - 0.4])
    start, g, _ = delay_window.window_taps(d, 1.5, MAX_DELAY)
    K = MAX_DELAY + 1
    koi = np.full((K, 5, 7), np.nan)
    delay_spectral.spread_kernel_koi(start, g, koi)
    iko = np.zeros((7, K, 5))
    delay_window._spread_kernel(start, g, iko)
    np.testing.assert_array_equal(koi, iko.transpose(1, 2, 0))
    ref = gaussian_taps(d, 1.5, MAX_DELAY).permute(2, 0, 1).numpy()
    np.testing.assert_allclose(koi, ref, rtol=0, atol=1e-15)


def test_grouped_taps_pad_to_whole_passes():
    g = np.arange(2 * 3 * 8, dtype=np.float64).reshape(2, 3, 8)
    g[:, :, 5:] = 0
    for n, G in [(1, 3), (3, 3), (4, 6), (5, 6)]:
        h = grouped(g if n == 5 else np.where(np.arange(8) < n, g, 0), n)
        assert h.shape == (2, 3, G) and h.flags.c_contiguous
        assert bool((h[:, :, n:] == 0).all())
    assert delay_lanes.GROUP == 3


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("T,B,O,I,K", [(19, 5, 7, 9, 15), (40, 3, 4, 6, 26), (1, 2, 3, 2, 4), (7, 1, 1, 1, 1)])
def test_spectral_input_grad_matches_the_matrix_products(dtype, rtol, T, B, O, I, K):
    # transform lengths T + K - 1 odd and even; gy zero in a tail (ragged samples)
    g = torch.Generator().manual_seed(T * K)
    gy = torch.randn(T, B, O, generator=g, dtype=torch.float64)
    gy[T // 2:, 0] = 0.0
    kern = torch.randn(K, O, I, generator=g, dtype=torch.float64)
    ref = _input_grad(gy, kern.permute(2, 0, 1).contiguous())  # [I, K, O] layout
    got = spectral_input_grad(gy.to(dtype), kern.to(dtype))
    assert got.dtype == dtype and got.shape == (T, B, I)
    err = float((got.double() - ref).abs().max()) / float(ref.abs().max())
    assert err <= rtol, err


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
def test_wide_windows_through_the_spectral_input_gradient(form, monkeypatch, dtype, rtol):
    calls = []
    orig = delay_window.spectral_input_grad
    monkeypatch.setattr(delay_window, "spectral_input_grad", lambda *a: calls.append(1) or orig(*a))
    monkeypatch.setattr(delay_window, "_use_spectral", lambda *a: True)
    for seed, sigma in [(0, 2.0), (1, 6.0)]:
        x, w, d, gy = _case(seed)
        _compare(x, w, d, gy, sigma, dtype, rtol)
    assert len(calls) == 2


def test_spectral_is_chosen_for_wide_windows_of_wide_layers():
    assert delay_window._use_spectral(105, 32, 256, 256, 26)   # the SHD recipe's hidden layer
    assert not delay_window._use_spectral(19, 5, 9, 7, 15)     # small: the matrix products

"""ndn.Conv2d, pooling and Flatten over [T, B, C, H, W]: the same values and gradients as torch's
layers on every frame, whichever path runs; event lists in; the 'conv' model kind."""
import pytest
import torch
from torch import nn
from torch.nn import functional as F

import neurodyn.nn as ndn
from neurodyn.core import Events
from neurodyn.errors import ConfigError, ShapeError
from neurodyn.kernels import sparse_conv
from neurodyn.train.models import build_model


def _frames(shape, density, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g) < density).to(dtype)


def _folded(module, x):
    T, B = x.shape[:2]
    y = module(x.reshape(T * B, *x.shape[2:]))
    return y.reshape(T, B, *y.shape[1:])


def _count_event_calls(monkeypatch):
    calls = []
    orig = sparse_conv.EventConv2dFn.apply
    monkeypatch.setattr(sparse_conv.EventConv2dFn, "apply", lambda *a: calls.append(1) or orig(*a))
    return calls


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("event", [True, "auto", False])
@pytest.mark.parametrize("kw", [dict(kernel_size=5), dict(kernel_size=3, stride=2, padding=1),
                                dict(kernel_size=(3, 5), padding="same", bias=False), dict(kernel_size=2, padding="valid")])
def test_conv2d_equals_torch_conv2d(kw, event, dtype):
    torch.manual_seed(0)
    conv = ndn.Conv2d(3, 6, event=event, **kw).to(dtype)
    ref = nn.Conv2d(3, 6, **kw).to(dtype)
    ref.load_state_dict(conv.state_dict())
    x = _frames((4, 3, 3, 12, 11), 0.05, dtype).requires_grad_()
    y, y_ref = conv(x), _folded(ref, x)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(y, y_ref, rtol=tol, atol=tol)
    g = torch.randn_like(y)
    params = [p for p in conv.parameters()]
    got = torch.autograd.grad(y, [x] + params, g)
    want = torch.autograd.grad(y_ref, [x] + list(ref.parameters()), g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, float(b.abs().max())))


def test_auto_scatters_events_only_below_max_density(monkeypatch):
    calls = _count_event_calls(monkeypatch)
    conv = ndn.Conv2d(2, 4, 3, max_density=0.1)
    conv(_frames((3, 2, 2, 10, 10), 0.03))
    assert calls == [1] and conv.event_reason(_frames((3, 2, 2, 10, 10), 0.03)) is None
    dense = _frames((3, 2, 2, 10, 10), 0.5)
    conv(dense)
    assert calls == [1] and "max_density" in conv.event_reason(dense)
    assert ndn.Conv2d(2, 4, 3, event=True)(dense).shape == (3, 2, 4, 8, 8) and calls == [1, 1]
    # settings the event kernel does not cover run torch's convolution, with the same result
    for kw in (dict(dilation=2), dict(groups=2), dict(padding=1, padding_mode="reflect"), dict(padding="same")):
        c = ndn.Conv2d(2, 4, 2 if kw.get("padding") == "same" else 3, **kw)
        assert c.event_reason(dense) is not None
        ref = nn.Conv2d(2, 4, 2 if kw.get("padding") == "same" else 3, **kw)
        ref.load_state_dict(c.state_dict())
        torch.testing.assert_close(c(dense), _folded(ref, dense))
    assert calls == [1, 1]


def test_flattened_frames_and_event_lists_in():
    conv = ndn.Conv2d(2, 5, 3, padding=1, input_size=(6, 8))
    x = _frames((4, 3, 2, 6, 8), 0.1)
    y = conv(x)
    assert torch.equal(conv(x.reshape(4, 3, -1)), y)
    assert torch.equal(conv(Events.from_dense(x.reshape(4, 3, -1))), y)
    sq = ndn.Conv2d(2, 5, 3)   # square frames need no input_size
    xs = _frames((2, 2, 2, 7, 7), 0.1)
    assert torch.equal(sq(Events.from_dense(xs.reshape(2, 2, -1))), sq(xs))
    # frames denser than max_density: the events are made dense and run torch's convolution
    lazy = ndn.Conv2d(2, 5, 3, event=False)
    lazy.load_state_dict(sq.state_dict())
    torch.testing.assert_close(lazy(Events.from_dense(xs.reshape(2, 2, -1))), sq(xs))


def test_sequential_hands_event_lists_to_a_first_conv(monkeypatch):
    torch.manual_seed(1)
    net = ndn.Sequential(ndn.Conv2d(2, 4, 3, input_size=(8, 8)), ndn.LIF(tau_mem=5.0), ndn.SumPool2d(2),
                         ndn.Flatten(), ndn.Linear(4 * 3 * 3, 3), ndn.LI())
    x = _frames((6, 2, 2 * 8 * 8), 0.1)
    dense_calls = []
    monkeypatch.setattr(Events, "to_dense", lambda self: dense_calls.append(1))
    out = net(Events.from_dense(x))
    assert not dense_calls
    torch.testing.assert_close(out, net(x))


@pytest.mark.parametrize("cls, divide", [(ndn.AvgPool2d, True), (ndn.SumPool2d, False)])
@pytest.mark.parametrize("kw", [dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1), dict(kernel_size=(2, 3))])
def test_pooling_equals_torch(cls, divide, kw):
    x = (_frames((3, 2, 4, 9, 10), 0.2, torch.float64) * 1.5).requires_grad_()
    y = cls(**kw)(x)
    k = kw["kernel_size"]
    area = k * k if isinstance(k, int) else k[0] * k[1]
    ref = _folded(lambda z: F.avg_pool2d(z, k, kw.get("stride"), kw.get("padding", 0)), x) * (1 if divide else area)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    g = torch.randn_like(y)
    torch.testing.assert_close(torch.autograd.grad(y, x, g)[0], torch.autograd.grad(ref, x, g)[0])


def test_flatten_keeps_time_and_batch():
    x = torch.randn(3, 2, 4, 5, 6)
    assert ndn.Flatten()(x).shape == (3, 2, 120)
    assert torch.equal(ndn.Flatten()(x)[1, 0], x[1, 0].reshape(-1))


def test_errors_name_the_problem():
    conv = ndn.Conv2d(2, 4, 3)
    with pytest.raises(ShapeError, match=r"\[T, B, C, H, W\]"):
        conv(torch.zeros(2, 2, 8, 8))
    with pytest.raises(ShapeError, match="does not fit"):
        conv(torch.zeros(2, 8, 8))   # flattened frames of 2 x 2 x 2
    with pytest.raises(ShapeError, match="3 input channels"):
        conv(torch.zeros(2, 2, 3, 8, 8))
    with pytest.raises(ShapeError, match="square"):
        conv(torch.zeros(2, 2, 2 * 6 * 7))
    with pytest.raises(ShapeError, match="multiple of in_channels"):
        conv(Events.from_dense(torch.zeros(2, 1, 9)))
    with pytest.raises(ConfigError, match="event must be"):
        ndn.Conv2d(2, 4, 3, event="yes")
    with pytest.raises(ConfigError, match="max_density"):
        ndn.Conv2d(2, 4, 3, max_density=2.0)
    with pytest.raises(ConfigError, match="padding"):
        ndn.AvgPool2d(2, padding=2)
    with pytest.raises(ShapeError, match=r"\[T, B, C, H, W\]"):
        ndn.SumPool2d(2)(torch.zeros(3, 4, 4))
    with pytest.raises(ShapeError, match=r"\[T, B, \.\.\.\]"):
        ndn.Flatten()(torch.zeros(3))


def test_conv_model_kind_builds_and_trains_a_step():
    torch.manual_seed(0)
    net = build_model({"kind": "conv", "channels": [4, 6], "kernel": 3}, 2 * 14 * 14, 5, dt_ms=10.0)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Conv2d", "LIF", "AvgPool2d", "Conv2d", "LIF", "AvgPool2d", "Flatten", "Linear", "LI"]
    assert net[7].in_features == 6 * 2 * 2
    x = _frames((8, 3, 2 * 14 * 14), 0.05)
    out = net(Events.from_dense(x))
    assert out.shape == (8, 3, 5)
    torch.testing.assert_close(out, net(x))
    out.mean(0).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    with pytest.raises(ConfigError, match="square"):
        build_model({"kind": "conv"}, 2 * 14 * 15, 5, dt_ms=1.0)
    with pytest.raises(ConfigError, match="too small"):
        build_model({"kind": "conv", "channels": [4, 4, 4]}, 2 * 14 * 14, 5, dt_ms=1.0)
    with pytest.raises(ConfigError, match="pool_kind"):
        build_model({"kind": "conv", "pool_kind": "max"}, 2 * 14 * 14, 5, dt_ms=1.0)

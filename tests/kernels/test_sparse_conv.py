"""Event-driven conv2d (kernels.sparse_conv) against torch's conv2d: values and gradients on random
sparse frames of several densities, strides, paddings, kernel sizes and odd shapes."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from neurodyn.core import Events
from neurodyn.errors import ShapeError
from neurodyn.kernels.sparse_conv import event_conv2d, out_size

TOL = {torch.float64: 1e-10, torch.float32: 1e-5}

CASES = [  # (C, Co, H, W, kernel, stride, padding)
    (2, 12, 34, 34, 5, 1, 0),      # N-MNIST's first layer
    (3, 4, 7, 9, 3, 2, 1),         # stride 2 with padding, non-square
    (2, 5, 8, 6, (3, 2), (1, 2), (2, 1)),  # rectangular kernel, mixed strides
    (1, 2, 5, 5, 5, 3, 4),         # padding larger than the input: rows of bias only
    (4, 3, 11, 13, 1, 1, 0),       # 1x1 kernel
    (3, 7, 6, 10, (2, 4), (3, 1), 0),
]


def _reference(x, w, b, stride, padding):
    T, B = x.shape[:2]
    y = F.conv2d(x.reshape(T * B, *x.shape[2:]), w, b, stride=stride, padding=padding)
    return y.reshape(T, B, *y.shape[1:])


def _sparse(shape, density, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(shape, generator=g) < density
    return mask.to(dtype) * (0.5 + torch.rand(shape, generator=g, dtype=dtype))


def _close(a, b, dtype):
    # relative to the size of the values: float32 sums of many terms
    tol = TOL[dtype]
    scale = max(1.0, float(b.detach().abs().max()))
    torch.testing.assert_close(a, b, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("density", [0.0, 0.02, 0.1, 0.5])
@pytest.mark.parametrize("case", CASES)
def test_values_and_gradients_equal_torch_conv2d(case, density, dtype):
    C, Co, H, W, k, s, p = case
    T, B = 3, 2
    x = _sparse((T, B, C, H, W), density, dtype, seed=hash((case, density)) % 1000).requires_grad_()
    conv = torch.nn.Conv2d(C, Co, k, stride=s, padding=p).to(dtype)
    w, b = conv.weight, conv.bias
    y = event_conv2d(x, w, b, s, p)
    y_ref = _reference(x, w, b, s, p)
    assert y.shape == y_ref.shape and y.dtype == dtype
    _close(y, y_ref, dtype)
    g = torch.randn_like(y_ref)
    for a, r in zip(torch.autograd.grad(y, (x, w, b), g), torch.autograd.grad(y_ref, (x, w, b), g)):
        _close(a, r, dtype)


def test_without_bias_and_gradcheck():
    x = _sparse((2, 2, 2, 5, 6), 0.3, torch.float64, 3).requires_grad_()
    w = torch.randn(3, 2, 3, 2, dtype=torch.float64, requires_grad=True)
    torch.testing.assert_close(event_conv2d(x, w, None, (2, 1), 1), _reference(x, w, None, (2, 1), 1),
                               rtol=1e-12, atol=1e-12)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda xx, ww, bb: event_conv2d(xx, ww, bb, (2, 1), 1), (x, w, b))


def test_event_lists_give_the_same_values_and_weight_gradient():
    T, B, C, H, W = 5, 3, 2, 9, 7
    x = _sparse((T, B, C, H, W), 0.1, torch.float32, 4)
    ev = Events.from_dense(x.reshape(T, B, -1))
    w = torch.randn(4, C, 3, 3, requires_grad=True)
    b = torch.randn(4, requires_grad=True)
    y_ev = event_conv2d(ev, w, b, 1, 1, input_size=(H, W))
    y = event_conv2d(x, w, b, 1, 1)
    assert torch.equal(y_ev, y)
    g = torch.randn_like(y)
    ga = torch.autograd.grad(y_ev, (w, b), g)
    gb = torch.autograd.grad(y, (w, b), g)
    assert all(torch.equal(a, c) for a, c in zip(ga, gb))


def test_autograd_function_skips_unneeded_gradients():
    x = _sparse((2, 2, 1, 6, 6), 0.2, torch.float64, 5)   # no input gradient asked for
    w = torch.randn(2, 1, 3, 3, dtype=torch.float64, requires_grad=True)
    y = event_conv2d(x, w, None)
    (gw,) = torch.autograd.grad(y.sum(), (w,))
    torch.testing.assert_close(gw, torch.autograd.grad(_reference(x, w, None, 1, 0).sum(), (w,))[0])


def test_out_size_matches_torch():
    for size, k, s, p in [(34, 5, 1, 0), (7, 3, 2, 1), (5, 5, 3, 4), (10, 4, 3, 0)]:
        assert out_size(size, k, s, p) == F.conv2d(torch.zeros(1, 1, size, size), torch.zeros(1, 1, k, k),
                                                   stride=s, padding=p).shape[-1]


def test_errors_name_the_problem():
    w = torch.randn(4, 2, 3, 3)
    with pytest.raises(ShapeError, match=r"\[T, B, 2, H, W\]"):
        event_conv2d(torch.zeros(3, 2, 3, 8, 8), w, None)
    with pytest.raises(ShapeError, match=r"\[T, B, 2, H, W\]"):
        event_conv2d(torch.zeros(3, 2, 8, 8), w, None)
    with pytest.raises(ShapeError, match="float64"):
        event_conv2d(torch.zeros(3, 2, 2, 8, 8, dtype=torch.float64), w, None)
    with pytest.raises(ShapeError, match="does not fit"):
        event_conv2d(torch.zeros(3, 2, 2, 2, 2), w, None)
    ev = Events.from_dense(np.zeros((2, 1, 2 * 6 * 5), np.float32))
    with pytest.raises(ShapeError, match="square"):
        event_conv2d(ev, w, None)
    with pytest.raises(ShapeError, match="not 2 x 5 x 5"):
        event_conv2d(ev, w, None, input_size=(5, 5))

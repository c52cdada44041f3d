"""Event-driven delay convolution against the torch reference and a direct sum (forward and gradients)."""
import pytest
import torch

from neurodyn.kernels.delay_conv import DelayConvEventFn, delay_conv, delay_conv_torch


def _direct(x, kern):
    # y[t] = sum_k x[t - k] @ kern[:, k, :], written as the definition.
    T, K = x.shape[0], kern.shape[1]
    y = torch.zeros(T, x.shape[1], kern.shape[2], dtype=x.dtype)
    for t in range(T):
        for k in range(min(K, t + 1)):
            y[t] += x[t - k] @ kern[:, k, :]
    return y


@pytest.mark.parametrize("K", [1, 5, 30])  # 30 > T: taps past the sequence end must be dropped
def test_reference_equals_definition(K):
    x = torch.randn(17, 3, 4, dtype=torch.float64)
    kern = torch.randn(4, K, 6, dtype=torch.float64)
    torch.testing.assert_close(delay_conv_torch(x, kern), _direct(x, kern), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_event_path_forward_and_gradients_match_reference(dtype):
    T, B, I, K, O = 25, 4, 9, 7, 6
    x = ((torch.rand(T, B, I) < 0.15).to(dtype) * torch.rand(T, B, I, dtype=dtype)).requires_grad_()
    kern = torch.randn(I, K, O, dtype=dtype, requires_grad=True)
    y_ev = DelayConvEventFn.apply(x, kern)
    y_ref = delay_conv_torch(x, kern)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(y_ev, y_ref, rtol=tol, atol=tol)
    g = torch.randn_like(y_ref)
    ge = torch.autograd.grad(y_ev, (x, kern), g)
    gr = torch.autograd.grad(y_ref, (x, kern), g)
    for a, b in zip(ge, gr):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


def test_event_path_passes_gradcheck():
    x = ((torch.rand(8, 2, 3) < 0.4).double() * torch.rand(8, 2, 3, dtype=torch.float64)).requires_grad_()
    kern = torch.randn(3, 4, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(DelayConvEventFn.apply, (x, kern))


def test_auto_picks_event_path_only_for_sparse_input(monkeypatch):
    calls = []
    orig = DelayConvEventFn.apply
    monkeypatch.setattr(DelayConvEventFn, "apply", lambda *a: calls.append(1) or orig(*a))
    kern = torch.randn(5, 3, 4)
    delay_conv((torch.rand(10, 2, 5) < 0.05).float(), kern)
    assert calls == [1]
    delay_conv(torch.rand(10, 2, 5), kern)  # dense input: torch path
    assert calls == [1]
    delay_conv(torch.rand(10, 2, 5), kern, event=True)
    assert calls == [1, 1]

"""kernels.delay_gpu: the spread-delay synapse as one causal conv1d (the GPU path of
DelayedLinear) equals the shift-and-add reference in values and gradients (input, weights,
delays through the taps), on CPU tensors here and on CUDA where there is one."""
import pytest
import torch

from neurodyn.kernels.delay_conv import delay_conv_torch
from neurodyn.kernels.delay_gpu import delay_conv1d
from neurodyn.nn.delays import DelayedLinear


def _check(device):
    torch.manual_seed(0)
    layer = DelayedLinear(12, 7, max_delay=9, sigma_init=2.5, bias=True).double().to(device)
    x = (torch.rand(30, 4, 12) < 0.3).double().to(device).requires_grad_()
    g = torch.randn(30, 4, 7, dtype=torch.float64).to(device)
    outs = []
    for fn in (delay_conv_torch, delay_conv1d):
        layer.zero_grad()
        x.grad = None
        y = fn(x, layer.kernel())
        (y * g).sum().backward()
        outs.append((y.detach(), x.grad.clone(), layer.weight.grad.clone(), layer.delay_param.grad.clone()))
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert outs[0][3].abs().sum() > 0


def test_conv1d_equals_shift_and_add_on_cpu():
    _check("cpu")


def test_short_sequences_and_one_tap():
    x = torch.randn(3, 2, 4, dtype=torch.float64)
    for K in (1, 5):
        kern = torch.randn(4, K, 6, dtype=torch.float64)
        torch.testing.assert_close(delay_conv1d(x, kern), delay_conv_torch(x, kern), rtol=1e-12, atol=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no usable GPU backend here: a CUDA device is needed (the conv1d path is checked on CPU tensors above)")
def test_conv1d_equals_shift_and_add_on_gpu():
    _check("cuda")

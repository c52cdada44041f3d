"""The GPU training stack (``nn.gpu_stack``): its forward (the CUDA network kernel) and backward
(per-neuron CUDA VJPs, then matrix products), run through their host C++ builds on CPU tensors,
equal the layer-by-layer modules in outputs and in the gradients of weights, biases, learnable
time constants and the input."""
import pytest
import torch

import neurodyn.nn as ndn
from neurodyn.errors import ConfigError
from neurodyn.kernels.cuda_host import host_compiler
from neurodyn.nn.fused_stack import stack_layers
from neurodyn.nn.gpu_stack import frames_to_events, run_gpu_stack

pytestmark = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build of the CUDA kernels")
TOL = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}


def _stack(dtype, surrogate="atan"):
    torch.manual_seed(0)
    net = ndn.Sequential(ndn.Linear(30, 40), ndn.LIF(tau_mem=5.0, learn_tau=True, surrogate=surrogate),
                         ndn.Linear(40, 25), ndn.ALIF(tau_mem=4.0, tau_adapt=20.0),
                         ndn.Linear(25, 6), ndn.LI(tau_mem=8.0), fused=False).to(dtype)
    with torch.no_grad():
        for i, m in enumerate(net):
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(4.0 if i != 2 else 12.0)
    return net


def _grads(net, x, lengths, run):
    net.zero_grad()
    x = x.clone().requires_grad_(x.requires_grad)
    out = run(net, x, lengths)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(7), dtype=out.dtype)
    (out * g).sum().backward()
    return out.detach(), [p.grad.clone() for p in net.parameters()], x.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("input_grad", [False, True])
def test_gpu_stack_equals_the_modules(dtype, input_grad):
    net = _stack(dtype)
    g = torch.Generator().manual_seed(1)
    x = (torch.rand(40, 7, 30, generator=g) < 0.15).to(dtype) * torch.randint(1, 3, (40, 7, 30), generator=g)
    x.requires_grad_(input_grad)
    lengths = torch.tensor([40, 3, 0, 39, 40, 17, 40])
    ref = _grads(net, x, lengths, lambda n, xx, ln: n(xx, ln))
    layers = stack_layers(list(net), training=True)
    got = _grads(net, x, lengths, lambda n, xx, ln: run_gpu_stack(layers, xx, ln, launcher="host"))
    torch.testing.assert_close(got[0], ref[0], **TOL[dtype])
    assert got[0][:, :, :].abs().sum() > 0
    names = [n for n, _ in net.named_parameters()]
    for name, a, b in zip(names, got[1], ref[1]):
        torch.testing.assert_close(a, b, **TOL[dtype], msg=name)
        assert b.abs().sum() > 0, f"{name}: the test should reach every parameter"
    if input_grad:
        torch.testing.assert_close(got[2], ref[2], **TOL[dtype])


def test_frames_to_events_lists_each_sample_in_order():
    x = torch.zeros(3, 2, 4)
    x[0, 1, 2] = 2.0
    x[2, 0, 0] = 1.0
    x[2, 0, 3] = 0.5
    ptr, idx, val = frames_to_events(x)
    assert ptr.tolist() == [0, 0, 0, 2, 3, 3, 3]  # rows b * T + t
    assert idx.tolist() == [0, 3, 2] and val.tolist() == [1.0, 0.5, 2.0]


def test_dropout_is_refused_by_name():
    net = ndn.Sequential(ndn.Linear(4, 3), ndn.LIF(), torch.nn.Dropout(0.5), ndn.Linear(3, 2), ndn.LI())
    with pytest.raises(ConfigError, match="dropout"):
        run_gpu_stack(stack_layers(list(net), training=True), torch.zeros(2, 1, 4), launcher="host")


def test_sequential_routes_cuda_input_to_the_gpu_stack_only_with_fused_true(monkeypatch):
    """Planning without a GPU: a CUDA-looking input is simulated by asking the planner directly."""
    net = _stack(torch.float32)
    layers = stack_layers(list(net), training=True)
    x = torch.zeros(5, 2, 30)
    assert "fused=True" in net._gpu_plan(x, layers)
    net.fused = True
    import neurodyn.kernels as kernels
    monkeypatch.setattr(kernels, "cupy_status", lambda: None)
    assert net._gpu_plan(x, layers)[0] == "gpu"
    monkeypatch.setattr(kernels, "cupy_status", lambda: "cupy is not installed")
    assert "needs CuPy: cupy is not installed" in net._gpu_plan(x, layers)


def _gpu():
    try:
        from neurodyn.kernels import cupy_status
        return cupy_status() is None and torch.cuda.is_available()
    except Exception:
        return False


@pytest.mark.skipif(not _gpu(), reason="no usable GPU backend here: cupy and a CUDA device are needed")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cupy_gpu_stack_equals_the_modules_on_gpu(dtype):
    net = _stack(dtype).cuda()
    g = torch.Generator().manual_seed(1)
    x = ((torch.rand(40, 7, 30, generator=g) < 0.15).to(dtype) * 2).cuda()
    lengths = torch.tensor([40, 3, 0, 39, 40, 17, 40])
    ref = _grads(net, x, lengths, lambda n, xx, ln: n(xx, ln))
    net.fused = True
    assert net.fused_reason(x) is None
    got = _grads(net, x, lengths, lambda n, xx, ln: n(xx, ln))
    torch.testing.assert_close(got[0], ref[0], **TOL[dtype])
    for a, b in zip(got[1], ref[1]):
        torch.testing.assert_close(a, b, **TOL[dtype])

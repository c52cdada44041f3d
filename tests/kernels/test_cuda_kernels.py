"""The generated CUDA kernels against the torch reference.

On any machine: the CUDA source's per-thread bodies built by the host C++ compiler
(``cuda_host.HostCudaLauncher``) run through the same autograd Function as the GPU
backend, values and gradients vs the reference; and the source compiles for the GPU with
nvcc when it is installed.  On a machine with a CUDA GPU and cupy: the real backend.
"""
import shutil
import subprocess

import pytest
import torch

from neurodyn.kernels import run_neuron
from neurodyn.kernels.cuda_codegen import render_cuda_module
from neurodyn.kernels.cuda_host import HostCudaLauncher, host_compiler
from neurodyn.kernels.dispatch import cupy_status, prepare_coefs
from neurodyn.kernels.fused import run_fused
from neurodyn.neurons import NEURONS

from test_numba_vs_reference import _coefs

needs_cxx = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler to build the host CUDA check")


def _loss_grads(out, trajs, wrt):
    g = torch.Generator().manual_seed(2)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    loss = loss + sum((tr * torch.randn(tr.shape, generator=g, dtype=tr.dtype)).sum() for tr in trajs)
    return torch.autograd.grad(loss, wrt, allow_unused=True)


def _case(name, shape, dtype, reset_sub, learn_coefs=True):
    model = NEURONS[name]
    T, B, N = shape
    torch.manual_seed(0)
    x = (torch.randn(shape, dtype=dtype) * 1.5 + 0.3).requires_grad_()
    cs = _coefs(model, N, reset_sub, dtype)
    if not learn_coefs:
        cs = [c.detach() for c in cs]
    s0 = [(0.3 * torch.randn(B, N, dtype=dtype)).requires_grad_() for _ in model.states]
    lengths = torch.randint(0, T + 1, (B,))
    lengths[0] = T
    return model, x, cs, s0, lengths


def _host_run(model, x, cs, s0, lengths, surrogate):
    c = prepare_coefs(model, cs, x.shape[2], x)
    return run_fused(HostCudaLauncher(), model, x, tuple(s0), c, lengths, surrogate, None)


@needs_cxx
@pytest.mark.parametrize("name", sorted(NEURONS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reset_sub", [1.0, 0.0])
def test_host_cuda_matches_reference(name, dtype, reset_sub):
    model, x, cs, s0, lengths = _case(name, (23, 3, 7), dtype, reset_sub)
    wrt = [x, *[c for c in cs if c.requires_grad], *s0]
    ref_out, ref_tr = run_neuron(model, x, cs, state0=s0, lengths=lengths, backend="torch")
    got_out, got_tr = _host_run(model, x, cs, s0, lengths, "atan")
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-4)
    if model.spiking:
        assert torch.equal(got_out, ref_out), "spike trains differ"
        assert ref_out.sum() > 0
    torch.testing.assert_close(got_out, ref_out, **tol)
    for a, b in zip(got_tr, ref_tr):
        torch.testing.assert_close(a, b, **tol)
    for a, b in zip(_loss_grads(got_out, got_tr, wrt), _loss_grads(ref_out, ref_tr, wrt)):
        torch.testing.assert_close(a, b, **tol)


@needs_cxx
@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "sigmoid", "triangle"])
def test_host_cuda_surrogates_and_partial_gradients(surrogate):
    """Other surrogates; fixed coefficients and only the output used (the lean kernel variant)."""
    model, x, cs, s0, lengths = _case("lif", (30, 4, 9), torch.float64, 1.0, learn_coefs=False)
    ref_out, _ = run_neuron(model, x, cs, state0=s0, lengths=lengths, surrogate=surrogate, backend="torch")
    got_out, _ = _host_run(model, x, cs, s0, lengths, surrogate)
    g = torch.randn(ref_out.shape, dtype=ref_out.dtype)
    ref = torch.autograd.grad((ref_out * g).sum(), [x, *s0])
    got = torch.autograd.grad((got_out * g).sum(), [x, *s0])
    for a, b in zip(got, ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed: GPU compile check skipped")
@pytest.mark.parametrize("name", ["lif", "cuba"])
def test_generated_source_compiles_for_gpu(tmp_path, name):
    src = tmp_path / "k.cu"
    src.write_text(render_cuda_module(NEURONS[name], "atan", None))
    r = subprocess.run(["nvcc", "-arch=sm_80", "--ptx", "--fmad=false", str(src), "-o", str(tmp_path / "k.ptx")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    ptx = (tmp_path / "k.ptx").read_text()
    for k in ("forward_f32", "forward_f64", "backward_f32", "backward_f64"):
        assert f".entry {k}(" in ptx


@pytest.mark.skipif(cupy_status() is not None or not torch.cuda.is_available(),
                    reason=f"no usable GPU backend here: {cupy_status() or 'torch sees no CUDA device'}")
@pytest.mark.parametrize("name", sorted(NEURONS))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cupy_matches_reference_on_gpu(name, dtype):
    model, x, cs, s0, lengths = _case(name, (40, 8, 33), dtype, 1.0)
    dev = torch.device("cuda")
    xg = x.detach().to(dev).requires_grad_()
    csg = [c.detach().to(dev).requires_grad_(c.requires_grad) for c in cs]
    s0g = [s.detach().to(dev).requires_grad_() for s in s0]
    ref_out, ref_tr = run_neuron(model, x, cs, state0=s0, lengths=lengths, backend="torch")
    got_out, got_tr = run_neuron(model, xg, csg, state0=s0g, lengths=lengths.to(dev), backend="cupy")
    tol = dict(rtol=1e-9, atol=1e-9) if dtype == torch.float64 else dict(rtol=2e-4, atol=2e-4)
    torch.testing.assert_close(got_out.cpu(), ref_out, **tol)
    ref_g = _loss_grads(ref_out, ref_tr, [x, *[c for c in cs if c.requires_grad], *s0])
    got_g = _loss_grads(got_out, got_tr, [xg, *[c for c in csg if c.requires_grad], *s0g])
    for a, b in zip(got_g, ref_g):
        torch.testing.assert_close(a.cpu(), b, **tol)

"""The generated CUDA kernels of a recurrent layer (one block per sample) against the CPU.

On any machine with a C++ compiler: the host build of the CUDA source (``cuda_host``: the
block's threads run phase by phase, barrier to barrier) through the same autograd Function
as the GPU backend, against the Numba kernel and the torch reference, values and gradients
(input, recurrent weights, coefficients, initial state), ragged per-sample lengths, every
spiking neuron and reset mode; a build with AddressSanitizer and UBSan on exact-size buffers
(out-of-bounds safety on ragged batches).  With nvcc: the source compiles for sm_80 and sm_90.
With cupy and a GPU: the real backend, and ``ndn.Recurrent`` on CUDA tensors uses it.
"""
import shutil
import subprocess
import sys
from functools import partial

import pytest
import torch

import neurodyn.nn as ndn
from neurodyn.kernels import dispatch, run_neuron
from neurodyn.kernels.cuda_codegen import block_threads, kernel_params, render_cuda_module
from neurodyn.kernels.cuda_host import HostCudaLauncher, host_compiler
from neurodyn.kernels.dispatch import cupy_status, prepare_coefs
from neurodyn.kernels.fused import run_fused
from neurodyn.neurons import NEURONS

from test_numba_vs_reference import COEF, _coefs

SPIKING = [n for n in sorted(NEURONS) if NEURONS[n].spiking]
needs_cxx = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler to build the host CUDA check")
# float32 / float64: what "equal to the CPU kernels" means here (they are in fact bit-identical)
TOL = {torch.float32: dict(rtol=1e-6, atol=1e-6), torch.float64: dict(rtol=1e-12, atol=1e-12)}
# the torch reference sums the recurrent input as a dense matmul (another order)
REF_TOL = {torch.float32: dict(rtol=5e-4, atol=5e-4), torch.float64: dict(rtol=1e-9, atol=1e-9)}


def _case(name, dtype, reset_sub, T=31, B=5, N=23, learn_coefs=True):
    model = NEURONS[name]
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(T, B, N, generator=g, dtype=dtype) * 1.5 + 0.4).requires_grad_()
    w = (torch.randn(N, N, generator=g, dtype=dtype) * 0.4).requires_grad_()
    cs = _coefs(model, N, reset_sub, dtype)
    if not learn_coefs:
        cs = [c.detach() for c in cs]
    s0 = [(0.3 * torch.randn(B, N, generator=g, dtype=dtype)).requires_grad_() for _ in model.states]
    lengths = torch.tensor([T, 0, 7, T - 1, 18, 1, T][:B])  # ragged: full, empty, one step
    return model, x, w, cs, s0, lengths


def _run(how, model, x, w, cs, s0, lengths, surrogate="atan", use_trajs=True):
    """(out, trajectories, gradients wrt [x, w, learnable coefs, s0]) of one backend."""
    if isinstance(how, HostCudaLauncher):
        c = prepare_coefs(model, cs, x.shape[2], x)
        out, trajs = run_fused(how, model, x, tuple(s0), c, lengths, surrogate, None, w)
    else:
        out, trajs = run_neuron(model, x, cs, state0=s0, lengths=lengths, surrogate=surrogate, backend=how,
                                rec_weight=w)
    g = torch.Generator().manual_seed(4)
    loss = (out * torch.randn(out.shape, generator=g, dtype=out.dtype)).sum()
    if use_trajs:
        loss = loss + sum((tr * torch.randn(tr.shape, generator=g, dtype=tr.dtype)).sum() for tr in trajs)
    wrt = [x, w, *[c for c in cs if c.requires_grad], *s0]
    return out, trajs, torch.autograd.grad(loss, wrt)


def _assert_same(got, want, tol, what):
    g_out, g_tr, g_grads = got
    w_out, w_tr, w_grads = want
    assert torch.equal(g_out, w_out), f"spike trains differ from {what}"
    for a, b in zip(g_tr, w_tr):
        torch.testing.assert_close(a, b, **tol)
    assert len(g_grads) == len(w_grads)
    for a, b in zip(g_grads, w_grads):
        torch.testing.assert_close(a, b, **tol)


@needs_cxx
@pytest.mark.parametrize("name", SPIKING)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("reset_sub", [1.0, 0.0])
@pytest.mark.parametrize("threads", [None, 8])
def test_host_recurrent_matches_numba_and_reference(name, dtype, reset_sub, threads):
    """threads=8 < N: every thread strides over several neurons, as on the GPU beyond 1024."""
    model, x, w, cs, s0, lengths = _case(name, dtype, reset_sub)
    got = _run(HostCudaLauncher(threads), model, x, w, cs, s0, lengths)
    numba = _run("numba", model, x, w, cs, s0, lengths)
    ref = _run("torch", model, x, w, cs, s0, lengths)
    assert got[0][1:].sum() > 0 and got[0][:, 1].abs().sum() == 0  # spikes; the empty sample stays silent
    for b, n in enumerate(lengths.tolist()):  # past their length, samples output nothing, states frozen
        assert got[0][n:, b].abs().sum() == 0
        for tr, s in zip(got[1], s0):
            assert torch.equal(tr[n:, b], (tr[n - 1, b] if n else s[b]).expand_as(tr[n:, b]))
    _assert_same(got, numba, TOL[dtype], "the Numba kernel")
    _assert_same(got, ref, REF_TOL[dtype], "the torch reference")
    assert got[2][1].abs().sum() > 0, "recurrent weights got no gradient"


@needs_cxx
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_host_recurrent_is_bit_identical_to_numba(dtype):
    """Same operations in the same order (row-adds in neuron order, the surrogate as written,
    no FMA contraction): the host build and the Numba kernel agree to the last bit."""
    model, x, w, cs, s0, lengths = _case("alif", dtype, 1.0)
    got = _run(HostCudaLauncher(), model, x, w, cs, s0, lengths)
    want = _run("numba", model, x, w, cs, s0, lengths)
    for a, b in zip([got[0], *got[1], *got[2]], [want[0], *want[1], *want[2]]):
        assert torch.equal(a, b)


@needs_cxx
@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "sigmoid", "triangle"])
def test_host_recurrent_surrogates_and_lean_gradients(surrogate):
    """Other surrogates; fixed coefficients and only the output used (the lean kernel variant,
    whose unused gradient buffers are 1-element dummies)."""
    model, x, w, cs, s0, lengths = _case("cuba", torch.float64, 1.0, learn_coefs=False)
    got = _run(HostCudaLauncher(5), model, x, w, cs, s0, lengths, surrogate, use_trajs=False)
    want = _run("numba", model, x, w, cs, s0, lengths, surrogate, use_trajs=False)
    _assert_same(got, want, TOL[torch.float64], "the Numba kernel")


@needs_cxx
def test_host_recurrent_edge_shapes():
    """No steps (zero gradients, written), one step (no recurrent input), one neuron, more threads than neurons."""
    for T, B, N in [(0, 2, 5), (1, 3, 4), (6, 2, 1), (9, 1, 40)]:
        model, x, w, cs, s0, _ = _case("lif", torch.float64, 1.0, T=T, B=B, N=N)
        lengths = torch.full((B,), T)
        got = _run(HostCudaLauncher(64), model, x, w, cs, s0, lengths)
        want = _run("numba", model, x, w, cs, s0, lengths)
        _assert_same(got, want, TOL[torch.float64], f"the Numba kernel at {(T, B, N)}")


@needs_cxx
def test_recurrent_module_runs_the_cuda_kernels_through_its_launcher(monkeypatch):
    """``ndn.Recurrent`` -> ``run_neuron(rec_weight=...)`` -> the fused Function -> a CUDA
    launcher (here the host build standing in for the GPU): values and parameter gradients
    equal the Numba kernel's."""
    calls = []

    class Counting(HostCudaLauncher):
        def forward(self, model, surrogate, alpha, recurrent, tensors):
            calls.append(recurrent)
            super().forward(model, surrogate, alpha, recurrent, tensors)

    real = dispatch._runner

    def runner(name):  # the named 'numba' backend runs the CUDA source's host build instead
        return partial(run_fused, Counting()) if name == "numba" else real(name)

    torch.manual_seed(0)
    layer = ndn.Recurrent(12, 20, ndn.ALIF(tau_mem=5.0, learn_tau=True, normalize_input=False)).double()
    x = (torch.rand(25, 4, 12, dtype=torch.float64) < 0.3).double()
    lengths = torch.tensor([25, 9, 0, 17])
    results = []
    for patched in (False, True):
        if patched:
            monkeypatch.setattr(dispatch, "_runner", runner)
        layer.zero_grad()
        out = layer(x, lengths=lengths)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)).sum().backward()
        results.append((out.detach(), [p.grad.clone() for p in layer.parameters()]))
    assert calls == [True], "the recurrent CUDA kernel did not run"
    (o_cpu, g_cpu), (o_cuda, g_cuda) = results
    assert torch.equal(o_cuda, o_cpu) and o_cpu.sum() > 0
    for a, b in zip(g_cuda, g_cpu):
        torch.testing.assert_close(a, b, **TOL[torch.float64])


# --- out-of-bounds safety: AddressSanitizer + UBSan on exact-size buffers --------------------

def _harness(model, recurrent, need_c, need_t, T, B, N, threads, lengths, shrink=None) -> str:
    """C++ main that runs every host entry of the module (float and double) on buffers of exactly
    their documented size ([T, B, N], [B, N], [N], [N, N]; 1 for the gradient buffers a lean
    variant never touches); ``shrink`` names one buffer made one element short (a control)."""
    TBN, BN, NN = T * B * N, B * N, N * N

    def size(name):
        if name in ("x", "out", "cur", "g_out", "g_x", "g_cur") or name.startswith("tr_"):
            return TBN
        if name.startswith("g_tr_"):
            return TBN if need_t[model.states.index(name[5:])] else 1
        if name.startswith("g_c_"):
            return BN if need_c[model.coefs.index(name[4:])] else 1
        if name.startswith(("s0_", "g_s0_")):
            return BN
        if name.startswith("c_"):
            return N
        if name == "lengths":
            return B
        if name in ("w_rec", "rec_weight", "g_wt"):
            return NN
        raise AssertionError(name)

    lines = ['#include <cstdio>', '#include "k.cu"', "",
             "static unsigned long long nd_seed = 12345;",
             "static double nd_uniform() { nd_seed = nd_seed * 6364136223846793005ULL + 1442695040888963407ULL;"
             " return double(nd_seed >> 11) / double(1ULL << 53); }",
             "template <typename S> S* nd_buf(ndi n, double lo, double hi) {",
             "    S* p = new S[n];  // its own allocation: ASan guards both ends",
             "    for (ndi i = 0; i < n; ++i) p[i] = S(lo + (hi - lo) * nd_uniform());",
             "    return p;", "}", "",
             "template <typename S> int run() {",
             f"    const ndi T = {T}, B = {B}, N = {N}, threads = {threads};",
             f"    ndi* lengths = new ndi[{B}];"]
    lines += [f"    lengths[{b}] = {n};" for b, n in enumerate(lengths)]
    declared = {"lengths"}
    for kind, params in kernel_params(model, recurrent).items():
        for _, name in params:
            if name in declared:
                continue
            declared.add(name)
            n = size(name) - (1 if name == shrink else 0)
            lo, hi = (-1.1, 1.9) if name == "x" else (-0.2, 0.2) if name in ("w_rec", "rec_weight") else (-0.5, 0.5)
            if name.startswith("c_"):
                c = name[2:]
                lo = hi = {"reset_sub": 1.0}.get(c, COEF.get(c, 0.0))
                hi = hi * 1.1 if c != "reset_sub" else hi
            lines.append(f"    S* {name} = nd_buf<S>({n}, {lo!r}, {hi!r});")
    for kind, params in kernel_params(model, recurrent).items():
        sfx = "_host(" + ", ".join([name for _, name in params] + ["T", "B", "N"]
                                   + (["threads"] if recurrent and kind != "weight_grad" else [])) + ");"
        lines.append(f"    if constexpr (sizeof(S) == 4) {kind}_f32{sfx} else {kind}_f64{sfx}")
    lines += ["    int spikes = 0;", "    for (ndi i = 0; i < T * B * N; ++i) spikes += out[i] != S(0);",
              "    return spikes;", "}", "",
              "int main() {",
              '    std::printf("spikes %d %d\\n", run<float>(), run<double>());',
              "    return 0;", "}"]
    return "\n".join(lines) + "\n"


def _build_and_run(tmp_path, sanitized_run, model, recurrent, need_c, need_t, shrink=None):
    T, B, N = 9, 6, 37
    threads = 16  # < N: threads stride over neurons
    return sanitized_run(tmp_path, render_cuda_module(model, "atan", None, need_c, need_t, recurrent),
                         _harness(model, recurrent, need_c, need_t, T, B, N, threads, [T, 0, 1, 4, T - 1, T], shrink))


@needs_cxx
@pytest.mark.skipif(sys.platform != "linux", reason="sanitizer builds are checked on Linux")
@pytest.mark.parametrize("name,recurrent,lean", [("lif", True, False), ("cuba", True, False), ("alif", True, False),
                                                 ("cuba", True, True), ("alif", False, False), ("cuba", False, True)])
def test_sanitized_host_build_stays_in_bounds_on_ragged_batches(tmp_path, sanitized_run, name, recurrent, lean):
    model = NEURONS[name]
    need_c = tuple(False for _ in model.coefs) if lean else tuple(True for _ in model.coefs)
    need_t = tuple(k == 0 for k in range(len(model.states))) if lean else tuple(True for _ in model.states)
    r = _build_and_run(tmp_path, sanitized_run, model, recurrent, need_c, need_t)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "ERROR: AddressSanitizer" not in r.stderr, r.stderr[-3000:]
    f32, f64 = map(int, r.stdout.split()[1:3])
    assert f32 > 0 and f64 > 0, "no spikes: the recurrent row-adds were not exercised"


@needs_cxx
@pytest.mark.skipif(sys.platform != "linux", reason="sanitizer builds are checked on Linux")
def test_sanitized_host_build_catches_a_short_buffer(tmp_path, sanitized_run):
    """The control: one input a single element short is reported, so the check above means something."""
    r = _build_and_run(tmp_path, sanitized_run, NEURONS["lif"], True, (True,) * 6, (True,), shrink="cur")
    assert r.returncode != 0 and "AddressSanitizer" in r.stderr


# --- the GPU compile --------------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed: GPU compile check skipped")
@pytest.mark.parametrize("name", SPIKING)
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_recurrent_source_compiles_for_gpu(tmp_path, name, arch):
    """nvcc down to machine code (ptxas): every kernel, without spilling registers."""
    src = tmp_path / "k.cu"
    src.write_text(render_cuda_module(NEURONS[name], "atan", None, recurrent=True))
    r = subprocess.run(["nvcc", f"-arch={arch}", "-cubin", "--fmad=false", "-Xptxas", "-v", str(src),
                        "-o", str(tmp_path / "k.cubin")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for k in ("forward_f32", "forward_f64", "backward_f32", "backward_f64", "weight_grad_f32", "weight_grad_f64"):
        assert f"Compiling entry function '{k}' for '{arch}'" in r.stderr
    assert " 0 bytes spill stores" in r.stderr and "bytes spill stores" not in r.stderr.replace(" 0 bytes spill", "")


# --- the real GPU -----------------------------------------------------------------------------

_GPU_WHY = cupy_status() or (None if torch.cuda.is_available() else "torch sees no CUDA device")
needs_gpu = pytest.mark.skipif(_GPU_WHY is not None, reason=f"no usable GPU backend here: {_GPU_WHY}")


def _to(dev, x, w, cs, s0):
    return (x.detach().to(dev).requires_grad_(), w.detach().to(dev).requires_grad_(),
            [c.detach().to(dev).requires_grad_(c.requires_grad) for c in cs],
            [s.detach().to(dev).requires_grad_() for s in s0])


@needs_gpu
@pytest.mark.parametrize("name", SPIKING)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(31, 5, 23), (20, 3, 1100), (8, 2, 2100)])
def test_cupy_recurrent_matches_numba_on_gpu(monkeypatch, name, dtype, shape):
    """N = 1100: threads stride over neurons; N = 2100 in float64: over 48 KiB of shared memory."""
    from neurodyn.kernels import cupy_backend
    ran = []
    monkeypatch.setattr(cupy_backend, "_launch_recurrent",
                        lambda *a, _f=cupy_backend._launch_recurrent: (ran.append(a[1]), _f(*a)))
    T, B, N = shape
    model, x, w, cs, s0, lengths = _case(name, dtype, 1.0, T=T, B=B, N=N)
    with torch.no_grad():
        w *= 23 / N  # the same recurrent drive at every width
    want = _run("numba", model, x, w, cs, s0, lengths)
    xg, wg, csg, s0g = _to("cuda", x, w, cs, s0)
    got = _run("cupy", model, xg, wg, csg, s0g, lengths.cuda())
    assert ran == ["forward", "backward"], "the recurrent CUDA kernels did not run"
    _assert_same(tuple(_cpu(v) for v in got), want, TOL[dtype], "the Numba kernel")


def _cpu(v):
    return v.cpu() if isinstance(v, torch.Tensor) else type(v)(t.cpu() for t in v)


@needs_gpu
def test_recurrent_module_on_cuda_uses_the_cupy_kernels():
    torch.manual_seed(0)
    layer = ndn.Recurrent(12, 20, ndn.CUBALIF(tau_syn=3.0, tau_mem=5.0, normalize_input=False)).double()
    x = (torch.rand(25, 4, 12, dtype=torch.float64) < 0.3).double()
    want = layer(x)
    want.sum().backward()
    g_want = [p.grad.clone() for p in layer.parameters()]
    layer = layer.cuda()
    layer.zero_grad()
    assert dispatch.resolve_backend(layer.neuron.backend, x.cuda()) == "cupy"
    got = layer(x.cuda())
    got.sum().backward()
    assert torch.equal(got.cpu(), want)
    for p, g in zip(layer.parameters(), g_want):
        torch.testing.assert_close(p.grad.cpu(), g, **TOL[torch.float64])

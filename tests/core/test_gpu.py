"""GPU batch runs (``core.gpu``, kernel ``kernels.cuda_network``): the kernel's host C++ build on
CPU arrays gives the Numba event core's outputs to the bit; on a machine with a GPU, so does CuPy.
nvcc compiles the source for sm_80 and sm_90."""
import shutil
import subprocess

import numpy as np
import pytest
import torch

import neurodyn.nn as ndn
from neurodyn.core import Events
from neurodyn.core.gpu import chunk_samples, gpu_signature, network_source, result_bytes, run_batch, sample_bytes
from neurodyn.errors import BackendUnavailableError, ConfigError
from neurodyn.inference import EarlyExit
from neurodyn.kernels.cuda_host import host_compiler
from neurodyn.kernels.delay_buffer import ring_offsets
from neurodyn.kernels.sparse_conv import conv_args
from neurodyn.nn.convert import to_network
from neurodyn.nn.delays import DelayedLinear, round_delays

needs_cxx = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build of the CUDA kernel")
N_IN = 40


def _net(kind: str, dtype):
    torch.manual_seed(0)
    if kind == "lif":
        layers = [ndn.Linear(N_IN, 48), ndn.LIF(tau_mem=5.0), ndn.Linear(48, 10), ndn.LI(tau_mem=10.0)]
    elif kind == "delays":  # delayed synapses into ALIF, a recurrent CUBA-LIF, a delayed LI readout
        layers = [DelayedLinear(N_IN, 24, max_delay=6, bias=True), ndn.ALIF(tau_mem=5.0, tau_adapt=30.0),
                  ndn.Recurrent(24, 16, ndn.CUBALIF(tau_syn=2.0, tau_mem=5.0, reset="zero")),
                  DelayedLinear(16, 6, max_delay=3), ndn.LI(tau_mem=8.0)]
    else:  # ALIF, a recurrent CUBA-LIF, a non-spiking layer feeding values to a LIF layer
        layers = [ndn.Linear(N_IN, 37), ndn.ALIF(tau_mem=5.0, tau_adapt=50.0, reset="zero", v_reset=-0.1),
                  ndn.Recurrent(37, 300, ndn.CUBALIF(tau_syn=2.0, tau_mem=5.0)), ndn.Linear(300, 12),
                  ndn.LI(tau_mem=3.0), ndn.Linear(12, 7), ndn.LIF(tau_mem=4.0, normalize_input=False)]
    net = torch.nn.Sequential(*layers).to(dtype).eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.is_floating_point():
                p.mul_(6.0)
    return to_network(round_delays(net) if kind == "delays" else net)


def _events(dtype, T=50, B=9, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, N_IN, generator=g) < 0.1).to(dtype) * torch.randint(1, 3, (T, B, N_IN), generator=g)
    return Events.from_dense(x)


@needs_cxx
@pytest.mark.parametrize("kind,dtype,threads", [("lif", torch.float32, 256), ("mixed", torch.float32, 64),
                                                ("mixed", torch.float64, 7), ("lif", torch.float64, 32),
                                                ("delays", torch.float32, 16), ("delays", torch.float64, 64)])
def test_host_build_equals_the_numba_core(kind, dtype, threads):
    net = _net(kind, dtype)
    ev = _events(dtype)
    steps = torch.tensor([50, 0, 13, 50, 1, 49, 50, 27, 50])
    cpu = net.run(ev, steps=steps, record=True)
    gpu = run_batch(net, ev.ptr, ev.idx, ev.val, ev.T, steps.numpy(), record=True, launcher="host", threads=threads)
    assert torch.equal(gpu.out, cpu.out)
    assert torch.equal(gpu.steps, cpu.steps) and torch.equal(gpu.pred, cpu.pred)
    for a, b in zip(gpu.counts, cpu.counts):
        assert torch.equal(a, b)
    for a, b in zip(gpu.records, cpu.records):
        assert torch.equal(a, b)
    assert all(c.sum() > 0 for c, l in zip(cpu.counts, net.layers) if l.model.spiking)


def _threshold(net, ev, steps, measure, gamma, q):
    """A threshold between two observed confidences (no ties): some samples exit, some do not."""
    trace = net.run(ev, steps=steps, record=True, early_exit=EarlyExit(1.0, measure, gamma=gamma)).confidence_trace
    vals = torch.unique(trace[trace > 0])
    k = int(q * (len(vals) - 2))
    return float(vals[k] + vals[k + 1]) / 2


@needs_cxx
@pytest.mark.parametrize("kind,measure,gamma,min_steps,dtype", [("mixed", "max_softmax", 1.0, 1, torch.float32),
                                                                ("mixed", "margin", 0.5, 5, torch.float64),
                                                                ("mixed", "entropy", 0.0, 2, torch.float32),
                                                                ("delays", "margin", 1.0, 3, torch.float32)])
@pytest.mark.parametrize("record", [False, True])
def test_host_build_early_exit_equals_the_numba_core(kind, measure, gamma, min_steps, dtype, record):
    net = _net(kind, dtype)
    ev = _events(dtype, B=12, seed=3)
    steps = torch.tensor([50, 0, 13, 50, 1, 49, 50, 27, 50, 50, 8, 50])
    ee = EarlyExit(_threshold(net, ev, steps, measure, gamma, 0.6), measure, min_steps=min_steps, gamma=gamma)
    cpu = net.run(ev, steps=steps, record=record, early_exit=ee)
    assert 0 < int((cpu.steps < steps).sum()) < int((steps > 0).sum()), "some samples should exit, not all"
    gpu = run_batch(net, ev.ptr, ev.idx, ev.val, ev.T, steps.numpy(), record=record, early_exit=ee,
                    launcher="host", threads=32, chunk=5)
    assert torch.equal(gpu.out, cpu.out) and torch.equal(gpu.steps, cpu.steps) and torch.equal(gpu.pred, cpu.pred)
    assert torch.equal(gpu.confidence, cpu.confidence)
    for a, b in zip(gpu.counts, cpu.counts):
        assert torch.equal(a, b)
    if record:
        assert torch.equal(gpu.confidence_trace, cpu.confidence_trace)
        for a, b in zip(gpu.records, cpu.records):
            assert torch.equal(a, b)


@needs_cxx
def test_chunks_of_samples_give_the_whole_batch():
    net = _net("mixed", torch.float32)
    ev = _events(torch.float32, B=10)
    steps = np.array([50, 3, 0, 50, 50, 7, 50, 0, 1, 50])
    whole = run_batch(net, ev.ptr, ev.idx, ev.val, ev.T, steps, launcher="host")
    for chunk in (1, 3, 4):
        part = run_batch(net, ev.ptr, ev.idx, ev.val, ev.T, steps, launcher="host", chunk=chunk)
        assert torch.equal(part.out, whole.out) and torch.equal(part.pred, whole.pred)
        for a, b in zip(part.counts, whole.counts):
            assert torch.equal(a, b)


def test_chunk_size_from_free_memory():
    net = _net("lif", torch.float32)
    per = sample_bytes(net.layers, T=100, events_per_sample=500.0, itemsize=4, record=False)
    assert per > 100 * 10 * 4  # at least the readout
    assert chunk_samples(per, free_bytes=2 * 1000 * per, batch=10**5) == 1000
    assert chunk_samples(per, free_bytes=2**40, batch=64) == 64
    with pytest.raises(ConfigError, match="one sample needs"):
        chunk_samples(per, free_bytes=per, batch=8)
    kept = result_bytes(net.layers, T=100, itemsize=4, record=True)
    assert kept >= 100 * (48 + 10) * 4 and kept > result_bytes(net.layers, T=100, itemsize=4, record=False)


def test_results_that_do_not_fit_are_named(monkeypatch):
    import neurodyn.core.gpu as gpu
    net = _net("lif", torch.float32)
    ev = _events(torch.float32)
    monkeypatch.setattr(gpu, "array_module", lambda launcher: (np, None))
    monkeypatch.setattr(gpu, "_cupy_free_bytes", lambda: 1000)
    with pytest.raises(ConfigError, match="results of 9 samples"):
        run_batch(net, ev.ptr, ev.idx, ev.val, ev.T, np.full(9, 50), record=True, launcher="cuda")


def _conv_net(kind: str, dtype):
    torch.manual_seed(3)
    C, H = 2, 14
    if kind == "stack":  # the conv_snn layout: conv, LIF, average pool, conv, LIF, sum pool, flatten, readout
        layers = [ndn.Conv2d(C, 4, 3, input_size=(H, H)), ndn.LIF(tau_mem=5.0), ndn.AvgPool2d(2),
                  ndn.Conv2d(4, 6, 3), ndn.LIF(tau_mem=4.0), ndn.SumPool2d(2), ndn.Flatten(),
                  ndn.Linear(6 * 2 * 2, 5), ndn.LI(tau_mem=8.0)]
        scales = {0: 4.0, 3: 96.0}
    else:  # strides, padding, overlapping windows, pooling of the input and of a non-spiking layer
        layers = [ndn.AvgPool2d(3, stride=1, padding=1), ndn.Conv2d(C, 5, 3, stride=2, padding=1), ndn.LIF(tau_mem=5.0),
                  ndn.SumPool2d(3, stride=2, padding=1), ndn.Conv2d(5, 3, (3, 2), padding=(1, 0)),
                  ndn.LI(tau_mem=3.0), ndn.AvgPool2d(2, stride=1), ndn.Flatten(), ndn.Linear(3 * 3 * 2, 4),
                  ndn.LIF(tau_mem=6.0)]
        scales = {1: 12.0, 4: 12.0, 8: 12.0}
    net = torch.nn.Sequential(*layers).to(dtype).eval()
    with torch.no_grad():
        for i, f in scales.items():
            net[i].weight.mul_(f)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(25, 5, C * H * H, generator=g) < 0.15).to(dtype) * torch.randint(1, 3, (25, 5, C * H * H), generator=g)
    return to_network(net, input_shape=(C, H, H)), Events.from_dense(x)


@needs_cxx
@pytest.mark.parametrize("kind,dtype,threads", [("stack", torch.float32, 64), ("stack", torch.float64, 5),
                                                ("strided", torch.float64, 32), ("strided", torch.float32, 256)])
def test_host_build_runs_conv_networks_as_the_numba_core(kind, dtype, threads):
    net, ev = _conv_net(kind, dtype)
    steps = torch.tensor([25, 0, 9, 24, 25])
    ee = EarlyExit(1.0, "margin")  # threshold 1: nothing exits, the confidence is still computed
    cpu = net.run(ev, steps=steps, record=True, early_exit=ee)
    gpu = run_batch(net, ev.ptr, ev.idx, ev.val, ev.T, steps.numpy(), record=True, early_exit=ee, launcher="host",
                    threads=threads)
    assert torch.equal(gpu.out, cpu.out) and torch.equal(gpu.pred, cpu.pred)
    assert torch.equal(gpu.confidence, cpu.confidence)
    for a, b in zip(gpu.records, cpu.records):
        assert torch.equal(a, b)
    for a, b, l in zip(gpu.counts, cpu.counts, net.layers):
        assert torch.equal(a, b)
        assert not l.model.spiking or b.sum() > 0 or l is net.layers[-1]


def test_what_the_gpu_kernel_does_not_run_is_named():
    net = _net("lif", torch.float32)
    with pytest.raises(ConfigError, match="device must be"):
        net.run(_events(torch.float32), device="tpu")


def test_cuda_without_cupy_says_how_to_get_it(no_cupy):
    with pytest.raises(BackendUnavailableError, match="neurodyn\\[gpu\\]"):
        _net("lif", torch.float32).run(_events(torch.float32), device="cuda")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed: GPU compile check skipped")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_network_kernel_compiles_for_gpu(tmp_path, arch):
    for net in (_net("mixed", torch.float32), _net("delays", torch.float32), _conv_net("strided", torch.float32)[0]):
        src = tmp_path / "net.cu"
        src.write_text(network_source(gpu_signature(net.layers)))
        r = subprocess.run(["nvcc", f"-arch={arch}", "-cubin", "--fmad=false", str(src), "-o",
                            str(tmp_path / "net.cubin")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-2000:]


def _gpu():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0 and torch.cuda.is_available()
    except Exception:
        return False


@pytest.mark.skipif(not _gpu(), reason="no usable GPU backend here: cupy and a CUDA device are needed")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cupy_network_equals_the_numba_core_on_gpu(dtype):
    net = _net("mixed", dtype)
    ev = _events(dtype, B=33)
    steps = torch.randint(0, 51, (33,))
    cpu = net.run(ev, steps=steps, record=True)
    gpu = net.run(ev, steps=steps, record=True, device="cuda")
    assert torch.equal(gpu.out.cpu(), cpu.out) and torch.equal(gpu.pred.cpu(), cpu.pred)
    for a, b in zip(gpu.records, cpu.records):
        assert torch.equal(a.cpu(), b)


# --- out-of-bounds safety: the host build under AddressSanitizer + UBSan, exact-size buffers ---

def _harness(net, ev, steps, threads: int, shrink: str | None) -> str:
    """C++ main running run_f64_host on buffers of exactly their documented size, each its own
    allocation (filled from this network and these events); ``shrink``: one buffer one short."""
    from neurodyn.kernels.cuda_network import kernel_args
    T, B = ev.T, ev.B
    arrays = {"rows": np.arange(B), "ev_ptr": ev.ptr, "ev_idx": ev.idx, "ev_val": ev.val, "steps": steps,
              "done": np.zeros(B)}
    for l, layer in enumerate(net.layers):
        N = layer.size
        arrays.update({f"W{l}": layer.weight, f"b{l}": layer.bias, f"o{l}": np.zeros(B * N),
                       f"li{l}": np.zeros(B * N), f"lv{l}": np.zeros(B * N), f"ln{l}": np.zeros(B),
                       f"cnt{l}": np.zeros(B), f"rec{l}": np.zeros(T * B * N), f"kx{l}": np.zeros(T * B * N)})
        arrays.update({f"ks{l}_{s}": np.zeros(T * B * N) for s in layer.model.states})
        if layer.recurrent is not None:
            arrays[f"R{l}"] = layer.recurrent
        if layer.delays is not None:
            off, S = ring_offsets(layer.delays)
            arrays.update({f"off{l}": off, f"rg{l}": np.zeros(B * 2 * S * N)})
        if layer.pool is not None:
            P = int(np.prod(layer.pool.out_shape))
            arrays.update({f"pg{l}": layer.pool.geometry(), f"pb{l}": np.zeros(B * P), f"qi{l}": np.zeros(B * P),
                           f"qv{l}": np.zeros(B * P), f"qn{l}": np.zeros(B)})
        if layer.conv is not None:
            wf, _, cg = conv_args(layer.weight, layer.bias, layer.conv.shape, layer.conv.stride, layer.conv.padding)
            arrays.update({f"W{l}": wf, f"cg{l}": cg, f"ca{l}": np.zeros(B * N)})
        arrays.update({f"c{l}_{c}": v for c, v in zip(layer.model.coefs, layer.coefs)})
        arrays.update({f"st{l}_{s}": np.broadcast_to(v, (B, N)) for s, v in zip(layer.model.states, layer.init)})
    C = net.layers[-1].size
    arrays.update({"out": np.zeros(T * B * C), "acc": np.zeros(B * C), "scales": np.arange(1, T + 1),
                   "exited": np.zeros(B), "conf": np.zeros(B), "conf_rec": np.zeros(T * B)})
    lines = ['#include <cstdio>', '#include "k.cu"', "int main() {"]
    names = []
    for ty, name in kernel_args(gpu_signature(net.layers)):
        base = ty.replace("const ", "").replace("*", "").strip().replace("scalar_t", "double")
        a = np.asarray(arrays[name], dtype=np.float64).reshape(-1)
        n = a.size - (1 if name == shrink else 0)
        vals = ", ".join(repr(float(v)) if base == "double" else str(int(v)) for v in a[:n])
        lines += [f"    {base}* {name} = new {base}[{max(n, 1)}];",
                  f"    {{ const {base} init[] = {{{vals or 0}}}; for (int i = 0; i < {n}; ++i) {name}[i] = init[i]; }}"]
        names.append(name)
    sizes = [net.layers[0].n_in] + [l.size for l in net.layers] + [ring_offsets(l.delays)[1] for l in net.layers
                                                                   if l.delays is not None]
    sizes += [int(np.prod(l.pool.out_shape)) for l in net.layers if l.pool is not None]
    # record, keep, T, B, exit code 2 (margin) with threshold 0.5, min_steps 2, log C: the exit test runs too
    lines += [f"    run_f64_host({', '.join(names)}, 1, 1, {T}, {B}, 2, 0.5, 2, {float(np.log(C))!r}, {', '.join(map(str, sizes))}, "
              f"{B}, {threads});",
              "    long long spikes = 0;",
              f"    for (int i = 0; i < {B}; ++i) spikes += cnt0[i];",
              '    std::printf("spikes %lld\\n", spikes);', "    return 0;", "}"]
    return "\n".join(lines) + "\n"


def _build_and_run(tmp_path, sanitized_run, kind="mixed", shrink=None):
    if kind == "conv":
        net, ev = _conv_net("strided", torch.float64)
        ev = Events.from_dense(ev.to_dense()[:9].repeat(1, 2, 1)[:, :6])
    else:
        net = _net(kind, torch.float64)
        ev = _events(torch.float64, T=9, B=6)
    steps = np.array([9, 0, 1, 4, 8, 9])
    return sanitized_run(tmp_path, network_source(gpu_signature(net.layers)),
                         _harness(net, ev, steps, threads=16, shrink=shrink))


@needs_cxx
@pytest.mark.parametrize("kind", ["mixed", "delays", "conv"])
def test_sanitized_host_build_stays_in_bounds_on_ragged_batches(tmp_path, sanitized_run, kind):
    r = _build_and_run(tmp_path, sanitized_run, kind)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "runtime error" not in r.stderr and "AddressSanitizer" not in r.stderr, r.stderr[-3000:]
    assert int(r.stdout.split()[1]) > 0, "no spikes: the row adds were not exercised"


@needs_cxx
def test_sanitized_host_build_catches_a_short_buffer(tmp_path, sanitized_run):
    """The control: the recurrent layer's outputs one element short is reported."""
    r = _build_and_run(tmp_path, sanitized_run, shrink="o1")
    assert r.returncode != 0 and "AddressSanitizer" in r.stderr
    r = _build_and_run(tmp_path, sanitized_run, "delays", shrink="rg0")  # the delay ring one element short
    assert r.returncode != 0 and "AddressSanitizer" in r.stderr
    r = _build_and_run(tmp_path, sanitized_run, "conv", shrink="ca1")  # a convolution's sums one element short
    assert r.returncode != 0 and "AddressSanitizer" in r.stderr


@needs_cxx
@pytest.mark.parametrize("kind", ["delays", "conv"])
@pytest.mark.parametrize("chunk", [1, 7, 25])
def test_gpu_stream_in_chunks_equals_the_whole_run(kind, chunk):
    """``GpuNetworkStream`` (its host build): chunks of 1, 7 and T steps, early exit deciding as
    the stream goes, give the CPU core's whole run to the bit; a reset slot starts over."""
    from neurodyn.core.gpu import GpuNetworkStream
    from neurodyn.core import StreamChunk
    if kind == "conv":
        net, ev = _conv_net("stack", torch.float32)
    else:
        net, ev = _net(kind, torch.float32), _events(torch.float32, T=25, B=5, seed=3)
    x = ev.to_dense()
    lengths = torch.tensor([25, 3, 0, 19, 25])
    trace = net.run(x, steps=lengths, record=True, early_exit=EarlyExit(1.0, "margin")).confidence_trace
    vals = torch.unique(trace[trace > 0])
    ee = EarlyExit(float(vals[len(vals) // 2] + vals[len(vals) // 2 + 1]) / 2, "margin", min_steps=2)
    whole = net.run(x, steps=lengths, record=True, early_exit=ee)
    s = GpuNetworkStream(net, 5, lengths=lengths, early_exit=ee, record=True, launcher="host", threads=32)
    parts = [s.step(x[i:i + chunk] if i % 2 == 0 else Events.from_dense(x[i:i + chunk])) for i in range(0, 25, chunk)]
    j = StreamChunk.join(parts)
    assert torch.equal(j.out, whole.out) and torch.equal(j.steps, whole.steps) and torch.equal(j.pred, whole.pred)
    assert torch.equal(j.confidence, whole.confidence) and torch.equal(j.confidence_trace, whole.confidence_trace)
    for a, b in zip(j.records, whole.records):
        assert torch.equal(a, b)
    for a, b in zip(parts[-1].total_counts, whole.counts):
        assert torch.equal(a, b)
    assert bool(s.done.all())
    s.reset(0, lengths=25)  # slot 0 starts a new sample: the same input gives the same run
    again = s.step(x)
    assert torch.equal(again.out[:, 0], whole.out[:, 0]) and torch.equal(again.steps[1:], torch.zeros(4, dtype=torch.int64))


@pytest.mark.skipif(not _gpu(), reason="no usable GPU backend here: cupy and a CUDA device are needed")
def test_cupy_stream_equals_the_numba_core_on_gpu():
    net = _net("delays", torch.float32)
    x = _events(torch.float32, T=25, B=5, seed=3).to_dense()
    whole = net.run(x)
    s = net.stream(5, device="cuda")
    out = torch.cat([s.step(x[i:i + 7]).out.cpu() for i in range(0, 25, 7)])
    assert torch.equal(out, whole.out)


@needs_cxx
def test_gpu_stream_refuses_bad_chunks_by_name():
    from neurodyn.core.gpu import GpuNetworkStream
    from neurodyn.errors import ShapeError
    s = GpuNetworkStream(_net("lif", torch.float32), 3, launcher="host")
    with pytest.raises(ShapeError, match="NaN or inf"):
        s.step(torch.full((2, 3, N_IN), float("nan")))
    with pytest.raises(ShapeError, match="the stream has a batch of 3"):
        s.step(torch.zeros(2, 4, N_IN))

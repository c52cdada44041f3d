"""GPU batch runs of the event-driven network: ``Network.run(events, device="cuda")``.

The kernel (``kernels.cuda_network``: one thread block per sample, every step inside) runs
the samples in chunks whose arrays fit the GPU's free memory, each chunk's CSR events copied
to the device once (or taken as they are when already there).  The same launch code drives
the kernel's host C++ build on CPU arrays (``launcher="host"``), which is how it is tested
without a GPU: both give the Numba kernel's outputs.

Covered: everything the CPU core runs in one call -- dense layers (Linear, optional recurrent
weights, optional integer synaptic delays), convolutional layers and pooling, any neuron model
-- with per-sample step counts, records and early exit (the confidence test compiled into the
kernel from ``core.confidence`` through ``kernels.py_cxx``; an exited sample's block stops).
``GpuNetworkStream`` keeps each sample's state on the GPU between chunks (``Network.stream(B,
device="cuda")``).
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..errors import BackendUnavailableError, ConfigError
from ..kernels.delay_buffer import ring_offsets
from ..kernels.cuda_network import Signature, render_network_cuda
from ..kernels.py_cxx import to_cxx
from ..kernels.sparse_conv import conv_args
from .engine import signature_name
from .confidence import LIMITS, MEASURES, EarlyExit, softmax_sums, top2
from .result import NetworkResult
from .events import Events
from .result import StreamChunk
from .stream import (NetworkState, PerSample, Stream, check_early_exit, chunk_frames, chunk_length, exit_args,
                     layer_signature, scales_table, stream_scales)

if TYPE_CHECKING:
    from .network import Layer, Network

THREADS = 256
MEMORY_SHARE = 0.5  # of the free device memory, for one chunk's arrays


def gpu_signature(layers: list[Layer]) -> Signature:
    """The kernel signature of a network: per layer (model, recurrent, delayed, conv, pooled), as
    the Numba kernel's (``stream.layer_signature``)."""
    return layer_signature(layers)


def sample_bytes(layers: list[Layer], T: int, events_per_sample: float, itemsize: int, record: bool) -> int:
    """Device bytes one sample needs: its events, neuron states, outputs, lists, readout and records."""
    n = 0
    for l in layers:
        per_neuron = len(l.model.states) + 1 + 1 + 1  # states, output, list values (float), list indices (int64)
        n += l.size * per_neuron * itemsize + l.size * 8 + 3 * 8
        if l.delays is not None:  # the ring of future currents
            n += 2 * (int(l.delays.max(initial=0)) + 1) * l.size * itemsize
        if l.conv is not None:  # the convolution's sums
            n += l.size * itemsize
        if l.pool is not None:  # the pooled frame and its list
            n += int(np.prod(l.pool.out_shape)) * (2 * itemsize + 8) + 8
        if record:
            n += T * l.size * itemsize
    C = layers[-1].size
    return int(n + T * C * itemsize + C * 8 + (T + 1) * 8 + events_per_sample * (8 + itemsize) + 3 * 8)


def result_bytes(layers: list[Layer], T: int, itemsize: int, record: bool) -> int:
    """Device bytes of one sample's results, which stay on the GPU for the whole batch: its
    readout [T, C], steps, counts, prediction and confidence, and with ``record`` every layer's
    outputs [T, N] and the confidence trace [T]."""
    n = T * layers[-1].size * itemsize + (3 + len(layers)) * 8
    if record:
        n += T * sum(l.size for l in layers) * itemsize + T * 8
    return n


def chunk_samples(per_sample: int, free_bytes: int, batch: int, share: float = MEMORY_SHARE) -> int:
    """Samples per chunk: as many as fit ``share`` of the free memory (at most the batch);
    ConfigError when one sample alone does not fit."""
    budget = int(free_bytes * share)
    if per_sample > budget:
        raise ConfigError(f"one sample needs {per_sample / 2**20:.1f} MiB on the GPU, more than {share:.0%} of the "
                          f"{free_bytes / 2**20:.1f} MiB free: shorten the input (T), record less or free memory")
    return max(1, min(batch, budget // max(per_sample, 1)))


@dataclass
class KernelLayer:
    """What a launch needs of one layer (numpy or CuPy arrays): weights [K, N] (a convolution's
    flipped taps, ``sparse_conv.conv_args``) and bias, the constants after them in the kernel's order (recurrent
    weights, ring offsets, coefficients [N]), its size N, initial state per state variable ([N]),
    ring slots (delayed layers), the pooling geometry and pooled size (pooled layers) and the
    convolution geometry (convolutional layers)."""

    weight: Any
    bias: Any
    tail: list[Any]
    size: int
    init: list[Any]
    slots: int | None = None
    pool: tuple[Any, int] | None = None
    conv: Any = None


@dataclass
class Chunk:
    """One launch's arrays (numpy or CuPy) in the kernel's argument order, and what comes back:
    out [T, B, C], per layer counts [B] (this launch), records [T, B, N], kept currents
    [T, B, N] and states (lists per layer), conf_rec [T, B]; the samples' state (``NetworkState``
    of arrays: neuron states, outputs, rings, evidence, steps run, exited, confidence) is
    ``state``, updated in place."""

    args: list[Any]
    out: Any
    counts: list[Any]
    records: list[Any]
    currents: list[Any]
    states: list[list[Any]]
    conf_rec: Any
    state: NetworkState


def fresh_state(xp, layers: list[KernelLayer], B: int, dtype: np.dtype) -> NetworkState:
    """B samples at step 0 on the array module xp, as the kernel reads them (``exited`` int64)."""
    C = layers[-1].size
    return NetworkState(
        states=[{k: xp.broadcast_to(xp.asarray(i, dtype=dtype), (B, l.size)).copy() for k, i in enumerate(l.init)}
                for l in layers],
        outputs=[xp.zeros((B, l.size), dtype=dtype) for l in layers],
        rings=[xp.zeros((B, 2 * l.slots * l.size), dtype=dtype) if l.slots is not None else None for l in layers],
        evidence=xp.zeros((B, C), dtype=np.float64), steps=xp.zeros(B, dtype=np.int64),
        exited=xp.zeros(B, dtype=np.int64), counts=[xp.zeros(B, dtype=np.int64) for _ in layers],
        pred=xp.zeros(B, dtype=np.int64), confidence=xp.zeros(B, dtype=np.float64))


def _chunk_arrays(xp, layers: list[KernelLayer], state: NetworkState, rows, ptr, idx, val, T: int, steps,
                  dtype: np.dtype, record: bool, keep: bool, scales: Any) -> Chunk:
    B = steps.shape[0]
    a: list[Any] = [xp.asarray(rows, dtype=np.int64), xp.asarray(ptr, dtype=np.int64), xp.asarray(idx, dtype=np.int64),
                    xp.asarray(val, dtype=dtype), xp.asarray(steps, dtype=np.int64), state.steps]
    counts, records, currents, states = [], [], [], []
    for li, l in enumerate(layers):
        N = l.size
        if l.pool is not None:  # scratch: each step's pooled frame is zeroed after its cells are listed
            P = l.pool[1]
            a += [l.pool[0], xp.zeros((B, P), dtype=dtype), xp.zeros((B, P), dtype=np.int64),
                  xp.zeros((B, P), dtype=dtype), xp.zeros(B, dtype=np.int64)]
        a += [l.weight, l.bias] + ([l.conv, xp.zeros((B, N), dtype=dtype)] if l.conv is not None else [])
        a += l.tail
        a += [state.states[li][k] for k in range(len(l.init))]
        ring = [state.rings[li]] if l.slots is not None else []
        cnt = xp.zeros(B, dtype=np.int64)
        rec = xp.zeros((T, B, N) if record else (1,), dtype=dtype)
        kx = xp.zeros((T, B, N) if keep else (1,), dtype=dtype)
        ks = [xp.zeros((T, B, N) if keep else (1,), dtype=dtype) for _ in l.init]
        # the nonzero-output lists are rebuilt from the outputs at the start of every launch
        a += [state.outputs[li], *ring, xp.zeros((B, N), dtype=np.int64), xp.zeros((B, N), dtype=dtype),
              xp.zeros(B, dtype=np.int64), cnt, rec, kx, *ks]
        counts.append(cnt)
        records.append(rec)
        currents.append(kx)
        states.append(ks)
    out = xp.zeros((T, B, layers[-1].size), dtype=dtype)
    conf_rec = xp.zeros((T, B) if record else (1,), dtype=np.float64)
    a += [out, state.evidence, scales, state.exited, state.confidence, conf_rec]
    return Chunk(a, out, counts, records, currents, states, conf_rec, state)


def _kernel_layers(xp, layers: list[Layer], dtype: np.dtype) -> list[KernelLayer]:
    out = []
    for l in layers:
        tail = []
        if l.recurrent is not None:
            tail.append(xp.asarray(np.ascontiguousarray(l.recurrent, dtype)))
        if l.delays is not None:
            tail.append(xp.asarray(ring_offsets(l.delays)[0].astype(np.int64)))
        tail += [xp.asarray(np.ascontiguousarray(v, dtype)) for v in l.coefs]
        pool = None if l.pool is None else (xp.asarray(l.pool.geometry()), int(np.prod(l.pool.out_shape)))
        weight, bias = np.asarray(l.weight, dtype), np.asarray(l.bias, dtype)
        conv = None
        if l.conv is not None:  # the same arrays as the Numba kernel's (sparse_conv.conv_args)
            weight, bias, conv = conv_args(weight, bias, l.conv.shape, l.conv.stride, l.conv.padding)
            conv = xp.asarray(conv)
        out.append(KernelLayer(xp.asarray(np.ascontiguousarray(weight)), xp.asarray(np.ascontiguousarray(bias)), tail,
                               l.size, [np.asarray(i, dtype) for i in l.init],
                               _slots(l) if l.delays is not None else None, pool, conv))
    return out


def _slots(l: Layer) -> int:
    return ring_offsets(l.delays)[1]


def _sizes(n_in: int, layers: list[KernelLayer]) -> list[int]:
    return ([n_in] + [l.size for l in layers] + [l.slots for l in layers if l.slots is not None]
            + [l.pool[1] for l in layers if l.pool is not None])


def network_source(signature: Signature) -> str:
    """The CUDA source of the network kernel, with the confidence functions of ``core.confidence``."""
    conf = "\n".join([to_cxx(top2, {"acc": "array"}, ("ndi", "ndi")),
                      to_cxx(softmax_sums, {"acc": "array", "k1": "ndi", "k2": "ndi"}, ("double", "double"))]
                     + [to_cxx(f) for f in (*MEASURES.values(), *LIMITS.values())])
    return render_network_cuda(signature, conf, tuple(f.__name__ for f in MEASURES.values()),
                               tuple(LIMITS[m].__name__ for m in MEASURES))


@lru_cache(maxsize=None)
def _host_library(signature: Signature):
    from ..kernels.cuda_host import compile_host
    return compile_host(network_source(signature), "net_" + signature_name(signature))


@lru_cache(maxsize=None)
def _cupy_module(signature: Signature):
    from ..kernels.cupy_backend import NVRTC_OPTIONS, require_cupy
    return require_cupy().RawModule(code=network_source(signature), options=NVRTC_OPTIONS)


def _launch_host(signature: Signature, ch: Chunk, flags: tuple[int, int], T: int, sizes: list[int],
                 dtype: np.dtype, threads: int, exit_args: tuple) -> None:
    fn = getattr(_host_library(signature), f"run_{'f32' if dtype == np.float32 else 'f64'}_host")
    B, R = ch.state.steps.shape[0], ch.args[0].shape[0]
    code, thr, min_steps, log_n = exit_args
    ptrs = [ctypes.c_void_p(x.ctypes.data) for x in ch.args]
    ll, dd = ctypes.c_longlong, ctypes.c_double
    fn(*ptrs, ll(flags[0]), ll(flags[1]), ll(T), ll(B), ll(code), dd(thr), ll(min_steps), dd(log_n), *map(ll, sizes),
       ll(R), ll(threads))


def _launch_cupy(signature: Signature, ch: Chunk, flags: tuple[int, int], T: int, sizes: list[int],
                 dtype: np.dtype, threads: int, exit_args: tuple) -> None:
    fn = _cupy_module(signature).get_function(f"run_{'f32' if dtype == np.float32 else 'f64'}")
    B, R = ch.state.steps.shape[0], ch.args[0].shape[0]
    if R == 0:
        return
    code, thr, min_steps, log_n = exit_args
    scalars = (np.int64(flags[0]), np.int64(flags[1]), np.int64(T), np.int64(B), np.int64(code), np.float64(thr),
               np.int64(min_steps), np.float64(log_n), *map(np.int64, sizes))
    import cupy
    # on torch's current stream, so the kernel orders with the torch ops around it
    with cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream):
        fn((R,), (threads,), (*ch.args, *scalars), shared_mem=(threads + 1) * 8)


def to_torch(a) -> torch.Tensor:
    """A numpy or CuPy array as a torch tensor sharing its memory (CPU or CUDA)."""
    return torch.from_numpy(a) if isinstance(a, np.ndarray) else torch.from_dlpack(a)


def to_host(a) -> np.ndarray:
    """A numpy or CuPy array as a numpy array (a copy from the device for CuPy)."""
    return a.get() if hasattr(a, "get") else np.asarray(a)


def array_module(launcher: str):
    """(numpy or cupy, the launch function) of a launcher: 'cuda' (CuPy) or 'host' (the host C++ build)."""
    if launcher == "host":
        return np, _launch_host
    if launcher == "cuda":
        try:
            import cupy
        except ImportError:
            raise BackendUnavailableError("device='cuda' needs cupy and a GPU (pip install 'neurodyn[gpu]')") from None
        return cupy, _launch_cupy
    raise ConfigError(f"unknown launcher '{launcher}'; choose 'cuda' or 'host'")


def launch(launcher: str, signature: Signature, layers: list[KernelLayer], n_in: int, ptr, idx, val, T: int,
           steps, dtype: np.dtype, record: bool = False, keep: bool = False,
           early_exit: EarlyExit | None = None, threads: int = THREADS, state: NetworkState | None = None,
           rows=None, scales=None) -> Chunk:
    """One launch of the network kernel for samples given by CSR events (rows b*T + t, offsets
    from 0; numpy or CuPy arrays), each running ``steps[b]`` steps from ``state`` (default: a
    fresh one) on; rows: the samples to run (default: all); ``keep``: also return each step's
    input currents and states (for a backward pass)."""
    xp, fn = array_module(launcher)
    B = steps.shape[0]
    if scales is None:
        scales = xp.asarray(scales_table(max(T, 1), early_exit.gamma if early_exit is not None else 1.0))
    state = fresh_state(xp, layers, B, dtype) if state is None else state
    rows = xp.arange(B, dtype=np.int64) if rows is None else rows
    ch = _chunk_arrays(xp, layers, state, rows, ptr, idx, val, T, steps, dtype, record, keep, scales)
    fn(signature, ch, (int(record), int(keep)), T, _sizes(n_in, layers), dtype, threads,
       exit_args(early_exit, layers[-1].size))
    for total, c in zip(state.counts, ch.counts):
        total += c
    state.pred[...] = xp.argmax(state.evidence, axis=1)
    return ch


def _cupy_free_bytes() -> int:
    from ..kernels.cupy_backend import require_cupy
    return int(require_cupy().cuda.runtime.memGetInfo()[0])


def run_batch(net: Network, ptr: np.ndarray, idx: np.ndarray, val: np.ndarray, T: int, steps: np.ndarray,
              record: bool = False, early_exit: EarlyExit | None = None, launcher: str = "cuda",
              chunk: int | None = None, threads: int = THREADS) -> NetworkResult:
    """Run ``net`` on CSR events (ptr, idx, val: numpy arrays, or CuPy arrays already on the GPU;
    row b*T + t: sample b's inputs at step t) for ``steps[b]`` steps
    each, in chunks of samples, stopping each sample early under ``early_exit`` (as
    ``Network.run``); ``launcher`` 'cuda' (CuPy, results on the GPU as torch tensors)
    or 'host' (the kernel's host C++ build on CPU arrays).  chunk: samples per chunk (default:
    as many as fit ``MEMORY_SHARE`` of the free GPU memory; the whole batch on the host)."""
    layers, dtype = net.layers, net.dtype
    sig = gpu_signature(layers)
    check_early_exit(early_exit, layers[-1].size)
    B = steps.shape[0]
    xp, _ = array_module(launcher)
    if chunk is None:
        if launcher == "host":
            chunk = max(B, 1)
        else:
            per = sample_bytes(layers, T, len(idx) / max(B, 1), dtype.itemsize, record)
            free = _cupy_free_bytes() - B * result_bytes(layers, T, dtype.itemsize, record)
            if free <= 0:
                raise ConfigError(f"the results of {B} samples (outputs{', records' if record else ''}) do not fit the "
                                  "GPU's free memory: run fewer samples per call" + (" or record=False" if record else ""))
            chunk = chunk_samples(per, free, max(B, 1))
    klayers = _kernel_layers(xp, layers, dtype)
    ptr_h = to_host(ptr).astype(np.int64, copy=False)  # chunk offsets, on the host
    outs, preds, dones, counts, records = [], [], [], [[] for _ in layers], [[] for _ in layers]
    confs, conf_recs = [], []
    for b0 in range(0, B, chunk):
        b1 = min(B, b0 + chunk)
        e0, e1 = int(ptr_h[b0 * T]), int(ptr_h[b1 * T])
        ch = launch(launcher, sig, klayers, layers[0].n_in, xp.asarray(ptr[b0 * T:b1 * T + 1], dtype=np.int64) - e0,
                    idx[e0:e1], val[e0:e1], T, steps[b0:b1], dtype, record, early_exit=early_exit, threads=threads)
        outs.append(ch.out)
        preds.append(ch.state.pred)
        dones.append(ch.state.steps)
        confs.append(ch.state.confidence)
        conf_recs.append(ch.conf_rec)
        for i in range(len(layers)):
            counts[i].append(ch.counts[i])
            if record:
                records[i].append(ch.records[i])
    cat = (lambda parts, axis: xp.concatenate(parts, axis=axis)) if B else (lambda parts, axis: None)
    if B == 0:
        C = layers[-1].size
        empty = torch.zeros((T, 0, C), dtype=torch.float32 if dtype == np.float32 else torch.float64)
        return NetworkResult(out=empty, counts=[torch.zeros(0, dtype=torch.int64) for _ in layers],
                             steps=torch.zeros(0, dtype=torch.int64), records=[], pred=torch.zeros(0, dtype=torch.int64))
    ee = early_exit is not None
    return NetworkResult(out=to_torch(cat(outs, 1)), counts=[to_torch(cat(c, 0)) for c in counts],
                         steps=to_torch(cat(dones, 0)), pred=to_torch(cat(preds, 0)),
                         records=[to_torch(cat(r, 1)) for r in records] if record else [],
                         confidence=to_torch(cat(confs, 0)) if ee else None,
                         confidence_trace=to_torch(cat(conf_recs, 1)) if (ee and record) else None)


class GpuNetworkStream(Stream):
    """``Network.stream(B, device="cuda")``: online inference of B samples fed in chunks, each
    sample's state (neuron states, outputs, delay rings, evidence, steps run, exit) kept on the
    GPU between chunks; the chunks give the whole run's outputs, as ``core.stream.NetworkStream``
    does on the CPU, with the same ``StreamChunk`` results (CUDA tensors).  Exited and ended
    samples get no thread block.  ``launcher='host'`` runs the kernel's host build (tests)."""

    def __init__(self, net: Network, batch: int, *, lengths: PerSample = None, early_exit: EarlyExit | None = None,
                 record: bool = False, launcher: str = "cuda", threads: int = THREADS) -> None:
        check_early_exit(early_exit, net.layers[-1].size)
        self.net, self.early_exit, self.record = net, early_exit, bool(record)
        self.launcher, self.threads = launcher, threads
        self._xp, _ = array_module(launcher)
        self._sig = gpu_signature(net.layers)
        self._klayers = _kernel_layers(self._xp, net.layers, net.dtype)
        self._scales = None  # the evidence divisors on the device, copied again only when they grow
        super().__init__(batch, lengths, lambda b: fresh_state(self._xp, self._klayers, b, net.dtype))

    @property
    def done(self) -> torch.Tensor:
        """[B] bool: samples that run no more steps (exited, or their stream has ended)."""
        return torch.from_numpy((to_host(self._state.exited) != 0) | self.clock.ended)

    def step(self, x: torch.Tensor | np.ndarray | Events, steps: PerSample = None) -> StreamChunk:
        """Run the next t steps: x dense [t, B, N_in] (or one step [B, N_in]) or ``Events`` (T = t);
        steps as for ``NetworkStream.step``."""
        net, st, xp = self.net, self._state, self._xp
        B = self.batch
        t = chunk_length(x, B, net.in_features)
        if not isinstance(x, Events):
            x = Events.from_dense(torch.from_numpy(chunk_frames(x, t, B, net.dtype)))
        before = to_host(st.steps).copy()
        exited = to_host(st.exited) != 0
        n = self.clock.chunk_steps(t, steps, before)
        n[exited] = 0
        ee = self.early_exit
        scales = stream_scales(int((before + n).max(initial=0)), ee)
        if self._scales is None or self._scales.shape[0] != scales.shape[0]:
            self._scales = xp.asarray(scales)
        ch = launch(self.launcher, self._sig, self._klayers, net.in_features, x.ptr, x.idx, x.val, t, n, net.dtype,
                    self.record, early_exit=ee, threads=self.threads, state=st,
                    rows=xp.asarray(np.flatnonzero(n > 0)), scales=self._scales)
        tt, now = to_torch, to_host(st.exited) != 0
        return StreamChunk(
            out=tt(ch.out), counts=[tt(c) for c in ch.counts], steps=tt(st.steps - xp.asarray(before)),
            records=[tt(r) for r in ch.records] if self.record else [], pred=tt(st.pred.copy()),
            confidence=tt(st.confidence.copy()) if ee is not None else None,
            confidence_trace=tt(ch.conf_rec) if (self.record and ee is not None) else None,
            total_steps=tt(st.steps.copy()), total_counts=[tt(c.copy()) for c in st.counts],
            exited=torch.from_numpy(now), new_exits=torch.from_numpy(now & ~exited),
            ended=torch.from_numpy(self.clock.ended.copy()))


__all__ = ["THREADS", "GpuNetworkStream", "MEMORY_SHARE", "Chunk", "KernelLayer", "array_module", "chunk_samples", "gpu_signature", "launch",
           "network_source", "result_bytes", "run_batch", "sample_bytes", "to_host", "to_torch"]

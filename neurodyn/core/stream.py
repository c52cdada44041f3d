"""Streaming (online) inference: feed a batch's input in chunks, keep each sample's state between them.

``Network.stream(batch)`` returns a ``NetworkStream``; ``s.step(chunk)`` runs the next t steps of
every sample (chunk: dense [t, B, N_in], one step [B, N_in] or ``Events`` with T = t) and returns
a ``StreamChunk``.  The state between chunks (``NetworkState``: neuron states, last outputs,
delay rings, the readout evidence, steps run, exits) is what the one event kernel
(``core.engine``) reads and writes, so streaming in chunks of any size gives, to the bit, the
outputs of one run over the whole input, early exit included: delay slots, evidence scales and
``min_steps`` count each sample's own steps since it started.  A whole ``Network.run`` is one
chunk of a fresh state (``launch``).

A sample costs nothing once it is done: the kernel runs only the samples listed in ``rows``
(those with steps left in this chunk that have not exited), so exited and ended samples are
never touched and the threads share the live ones.  Per-sample ends: ``lengths`` (total steps,
known in advance) or a chunk's ``steps`` (a sample given fewer than the chunk's t steps ends
there); ``reset(samples)`` starts new samples in those batch slots.  ``StreamClock`` keeps
this bookkeeping for the integer simulator's stream too (``export.int_stream``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from functools import lru_cache
from typing import TYPE_CHECKING, Callable, Sequence, Union

import numpy as np
import torch

from ..errors import ConfigError, ShapeError
from ..kernels.delay_buffer import ring_offsets
from ..kernels.dispatch import step_counts
from ..kernels.event_scan import bits
from ..kernels.sparse_conv import conv_args
from ..neurons.base import NeuronModel
from .confidence import EarlyExit, evidence_scales
from .engine import network_kernel
from .events import Events
from .result import StreamChunk

if TYPE_CHECKING:  # annotations only: network.py builds streams
    from .network import Layer, Network

# Per-sample integers [B] (steps, lengths: one number for all where it says so), and batch slots
# (an index, indices or a bool mask [B]).
PerSample = Union[int, Sequence[int], np.ndarray, torch.Tensor, None]
Samples = Union[int, Sequence[int], np.ndarray, torch.Tensor, None]


@lru_cache(maxsize=64)
def scales_table(T: int, gamma: float) -> np.ndarray:
    """The evidence divisors t**gamma [T] as the kernel reads them (cached: torch per call costs ~20 us)."""
    a = evidence_scales(T, gamma).numpy()
    a.setflags(write=False)
    return a


def dense_input(frames: np.ndarray) -> tuple:
    """Kernel input arguments for dense frames [T, B, N_in] (C-contiguous, the network's dtype)."""
    none = np.zeros(1, dtype=np.int64)
    return none, none.astype(np.int32), np.zeros(1, frames.dtype), frames, *bits(frames), True


def event_input(ptr: np.ndarray, idx: np.ndarray, val: np.ndarray, dtype: np.dtype) -> tuple:
    """Kernel input arguments for CSR events (row b*T + t: sample b's inputs at step t)."""
    no_frames = np.zeros((1, 1, 1), dtype=dtype)
    return ptr, idx, val.astype(dtype, copy=False), no_frames, *bits(no_frames), False


def finite(a: np.ndarray) -> bool:
    """Whether every entry of a float array is finite: its max and min are (NaN propagates through
    both; two SIMD reductions cost ~30% less than ``isfinite(a).all()`` and allocate nothing)."""
    return a.size == 0 or bool(np.isfinite(a.max()) and np.isfinite(a.min()))


def check_early_exit(early_exit: EarlyExit | None, n_out: int) -> None:
    if early_exit is not None and not isinstance(early_exit, EarlyExit):
        raise ConfigError(f"early_exit must be an EarlyExit or None, got {type(early_exit).__name__}")
    if early_exit is not None and n_out < 2:
        raise ShapeError(f"early exit needs a readout with at least 2 classes, the network has {n_out}")


def _leaves(v) -> list[np.ndarray]:
    """The arrays of a state field: an array, or lists / dicts of them (None entries skipped)."""
    if isinstance(v, list):
        return [a for x in v for a in _leaves(x)]
    if isinstance(v, dict):
        return [a for x in v.values() for a in _leaves(x)]
    return [] if v is None else [v]


def _copied(v):
    if isinstance(v, list):
        return [_copied(x) for x in v]
    if isinstance(v, dict):
        return {k: _copied(x) for k, x in v.items()}
    return None if v is None else v.copy()


class SampleState:
    """A dataclass of per-sample arrays [B, ...] (also in lists and dicts, one entry per layer):
    restarting samples and snapshots, for ``NetworkState`` and the integer ``IntState``."""

    def restart(self, rows: np.ndarray, fresh: "SampleState") -> None:
        """Put samples ``rows`` back to ``fresh``'s state (their row in it)."""
        for f in fields(self):
            for a, b in zip(_leaves(getattr(self, f.name)), _leaves(getattr(fresh, f.name))):
                a[rows] = b[rows]

    def copy(self) -> SampleState:
        """A deep copy (a snapshot the stream does not change)."""
        return type(self)(**{f.name: _copied(getattr(self, f.name)) for f in fields(self)})


@dataclass
class NetworkState(SampleState):
    """Each sample's state between two steps, as the kernel reads and writes it (numpy, [B, ...]).

    states: per layer, the neuron's state variables by name ([B, N] each, e.g. ``{'v': ...}``);
    outputs: per layer, its output at the last step run [B, N] (spikes feed the recurrent input
    of the next step); rings: per layer, the delay ring buffer of future input currents
    [B, 2 S N] (``kernels.delay_buffer``; None without delays); evidence: running sum of the
    readout [B, C] float64; steps: steps run [B]; exited [B] bool; counts: spikes per layer [B];
    pred [B] (argmax of evidence); confidence [B] (at the last step run, under early exit).
    """

    states: list[dict[str, np.ndarray]]
    outputs: list[np.ndarray]
    rings: list[np.ndarray | None]
    evidence: np.ndarray
    steps: np.ndarray
    exited: np.ndarray
    counts: list[np.ndarray]
    pred: np.ndarray
    confidence: np.ndarray

    @classmethod
    def fresh(cls, layers: Sequence[Layer], batch: int, dtype: np.dtype) -> "NetworkState":
        """B samples at step 0: each layer's initial state, no outputs, empty delay rings."""
        def ring(l):  # 2 S rows of N, S = max delay + 1 slots (as ``ring_offsets`` counts them)
            if l.delays is None:
                return None
            return np.zeros((batch, 2 * (int(l.delays.max(initial=0)) + 1) * l.size), dtype)
        return cls(
            states=[{s: np.broadcast_to(np.asarray(i, dtype), (batch, l.size)).copy()
                     for s, i in zip(l.model.states, l.init)} for l in layers],
            outputs=[np.zeros((batch, l.size), dtype) for l in layers], rings=[ring(l) for l in layers],
            evidence=np.zeros((batch, layers[-1].size), np.float64), steps=np.zeros(batch, np.int64),
            exited=np.zeros(batch, np.bool_), counts=[np.zeros(batch, np.int64) for _ in layers],
            pred=np.zeros(batch, np.int64), confidence=np.zeros(batch, np.float64))


def layer_args(layers: Sequence[Layer]) -> list[list]:
    """Per layer, the kernel's constant arguments: weights, bias, recurrent weights, ring offsets, coefficients."""
    out = []
    for l in layers:
        a = [l.pool.geometry()] if l.pool is not None else []
        if l.conv is not None:
            a += conv_args(l.weight, l.bias, l.conv.shape, l.conv.stride, l.conv.padding)
        else:
            a += [l.weight, l.bias]
        a += [l.recurrent] if l.recurrent is not None else []
        if l.delays is not None:
            a += list(ring_offsets(l.delays))
        out.append(a + list(l.coefs))
    return out


def layer_signature(layers: Sequence[Layer]) -> tuple[tuple[NeuronModel, bool, bool, bool, bool], ...]:
    """Per layer (model, recurrent, delayed, conv, pooled): what the network kernels are generated for."""
    return tuple((l.model, l.recurrent is not None, l.delays is not None, l.conv is not None, l.pool is not None)
                 for l in layers)


def exit_args(early_exit: EarlyExit | None, n_out: int) -> tuple[int, float, int, float]:
    """The network kernels' early-exit arguments: (measure code, 0 for none; threshold; min_steps; log C)."""
    log_n = float(np.log(max(n_out, 2)))
    if early_exit is None:
        return 0, 1.0, 1, log_n
    return early_exit.code, float(early_exit.threshold), int(early_exit.min_steps), log_n


def stream_scales(need: int, early_exit: EarlyExit | None) -> np.ndarray:
    """The evidence divisors a stream needs for ``need`` global steps, in a table of a power of
    two entries (>= 64), so that chunks rarely build a new one."""
    return scales_table(max(64, 1 << max(need - 1, 0).bit_length()),
                        early_exit.gamma if early_exit is not None else 1.0)


def launch(layers: Sequence[Layer], dtype: np.dtype, consts: list[list], state: NetworkState, inputs: tuple,
           T: int, steps: np.ndarray, rows: np.ndarray, record: bool, early_exit: EarlyExit | None,
           scales: np.ndarray) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Run samples ``rows`` for ``steps[b]`` steps of the input from their ``state`` on (updated in place).

    Returns out [T, B, N_out], spikes per layer in these steps ([B] each), the records
    [T, B, N] per layer and the confidence after every step [T, B] (dummies unless recording).
    """
    B = steps.shape[0]
    n_out = layers[-1].size
    kern = network_kernel(layer_signature(layers), dtype.name)
    dummy = np.zeros((1, 1, 1), dtype=dtype)
    args: list = [rows, *inputs, T, steps]
    recs, cnts = [], []
    for l, c, st, o, rg in zip(layers, consts, state.states, state.outputs, state.rings):
        rec = np.zeros((T, B, l.size), dtype=dtype) if record else dummy
        cnt = np.zeros(B, dtype=np.int64)
        recs.append(rec)
        cnts.append(cnt)
        args += c + [st[s] for s in l.model.states] + [o] + ([rg] if rg is not None else []) + [rec, cnt]
    out = np.zeros((T, B, n_out), dtype=dtype)
    ee = early_exit
    conf_rec = np.zeros((T, B) if (record and ee is not None) else (1, 1), dtype=np.float64)
    code, threshold, min_steps, log_n = exit_args(ee, n_out)
    args += [record, out, code, threshold, min_steps, scales, log_n, state.evidence,
             state.steps, state.exited, state.pred, state.confidence, conf_rec]
    kern.run_network(*args)
    for total, c in zip(state.counts, cnts):
        total += c
    return out, cnts, recs, conf_rec


class StreamClock:
    """Where each of B streams stands: its length (total steps, or open-ended) and whether it has ended.

    ``chunk_steps`` turns a chunk of t steps (and optional per-sample ``steps``) into the steps
    each sample runs, checking them against the ends; the streams of ``Network.stream`` and of
    the integer simulator share it.
    """

    def __init__(self, batch: int, lengths: PerSample = None) -> None:
        if not isinstance(batch, (int, np.integer)) or batch < 1:
            raise ConfigError(f"a stream needs a batch size >= 1, got {batch!r}")
        self.batch = int(batch)
        self.lengths = np.full(self.batch, -1, dtype=np.int64)  # -1: open-ended
        self.ended = np.zeros(self.batch, dtype=np.bool_)
        self.restart(np.arange(self.batch), lengths)

    def select(self, samples: Samples) -> np.ndarray:
        """Batch slots [k] (int64) of ``samples``: None (all), an index, indices or a bool mask [B]."""
        B = self.batch
        if samples is None:
            return np.arange(B)
        a = np.asarray(samples.cpu().numpy() if isinstance(samples, torch.Tensor) else samples)
        if a.dtype == np.bool_:
            if a.shape != (B,):
                raise ShapeError(f"a sample mask must be [{B}] booleans, got {list(a.shape)}")
            return np.flatnonzero(a)
        a = a.reshape(-1)
        if not np.issubdtype(a.dtype, np.integer) or (a.size and (a.min() < 0 or a.max() >= B)):
            raise ShapeError(f"samples must be indices in [0, {B}) or a bool mask [{B}], got {samples!r}")
        return a.astype(np.int64)

    def restart(self, rows: np.ndarray, lengths: PerSample = None) -> None:
        """New streams in slots ``rows``: lengths None (open-ended), one number, or one per slot."""
        if lengths is None:
            new = np.full(rows.shape[0], -1, dtype=np.int64)
        else:
            a = np.asarray(lengths.cpu().numpy() if isinstance(lengths, torch.Tensor) else lengths)
            if not np.issubdtype(a.dtype, np.integer) or a.ndim > 1 or (a.ndim == 1 and a.shape[0] != rows.shape[0]):
                raise ShapeError(f"lengths must be one integer or {rows.shape[0]} (one per sample), got {lengths!r}")
            if (a < 0).any():
                raise ShapeError("lengths must be >= 0 steps")
            new = np.broadcast_to(a.astype(np.int64), rows.shape).copy()
        self.lengths[rows] = new
        self.ended[rows] = new == 0

    def chunk_steps(self, t: int, steps: PerSample, run: np.ndarray) -> np.ndarray:
        """Steps [B] each sample runs in a chunk of t steps, given the steps ``run`` [B] so far.

        steps None: all t, cut at each sample's length (0 once it has ended).  steps [B]: sample
        b's input fills the first steps[b] steps of the chunk, and a sample given fewer than t
        ends its stream with this chunk; giving steps to a sample whose stream has ended, or more
        than its length leaves, is a ConfigError.
        """
        B = self.batch
        left = np.where(self.lengths >= 0, self.lengths - run, np.iinfo(np.int64).max)
        if steps is None:
            n = np.minimum(np.where(self.ended, 0, t), left)
        else:
            n = step_counts(steps, B, t).copy()  # (may share the caller's memory)
            late = np.flatnonzero((n > 0) & self.ended)
            if late.size:
                b = int(late[0])
                raise ConfigError(f"sample {b}'s stream ended after {int(run[b])} steps; a chunk gives it "
                                  f"{int(n[b])} more (reset({b}) starts a new sample in that slot)")
            over = np.flatnonzero(n > left)
            if over.size:
                b = int(over[0])
                raise ConfigError(f"sample {b}'s stream has {int(self.lengths[b])} steps and has run {int(run[b])}; "
                                  f"a chunk gives it {int(n[b])} more")
            self.ended |= n < t
        self.ended |= (self.lengths >= 0) & (run + n >= self.lengths)
        return n


def chunk_length(x: torch.Tensor | np.ndarray | Events, B: int, n_in: int) -> int:
    """Steps t of a chunk (dense [t, B, N_in] / [B, N_in] or Events), checking its batch and width."""
    if isinstance(x, Events):
        if x.B != B or x.n_channels != n_in:
            raise ShapeError(f"the chunk's events are for {x.B} samples x {x.n_channels} channels, "
                             f"the stream takes {B} x {n_in}")
        return x.T
    shape = tuple(x.shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3 or shape[2] != n_in:
        raise ShapeError(f"a chunk must be [t, B, {n_in}] (or one step [B, {n_in}]), got {list(x.shape)}")
    if shape[1] != B:
        raise ShapeError(f"the chunk is for {shape[1]} samples, the stream has a batch of {B}")
    return shape[0]


def chunk_frames(x: torch.Tensor | np.ndarray, t: int, B: int, dtype: np.dtype) -> np.ndarray:
    """A dense chunk (torch or numpy, [t, B, N_in] or one step [B, N_in]) as C-contiguous frames
    [t, B, N_in] in ``dtype``; ShapeError for non-numbers, NaN or inf."""
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.dtype.kind not in "fiub":
        raise ShapeError(f"a chunk must hold numbers, got {a.dtype}")
    frames = np.ascontiguousarray(a.reshape(t, B, -1), dtype=dtype)
    if not finite(frames):
        raise ShapeError("the chunk has NaN or inf values")
    return frames


class Stream:
    """What the streams of the event core and of the integer simulator share: each sample's
    clock (``StreamClock``), its state (a ``SampleState`` [B, ...]) and a fresh state to restart
    samples from.  ``fresh(batch)`` builds the initial state of a batch."""

    def __init__(self, batch: int, lengths: PerSample, fresh: Callable[[int], SampleState]) -> None:
        self.clock = StreamClock(batch, lengths)
        self._fresh = fresh(self.clock.batch)
        self._state = self._fresh.copy()

    @property
    def batch(self) -> int:
        return self.clock.batch

    @property
    def state(self) -> SampleState:
        """The live state (arrays [B, ...]; ``state.copy()`` for a snapshot)."""
        return self._state

    def reset(self, samples: Samples = None, lengths: PerSample = None) -> None:
        """Start new samples in batch slots ``samples`` (None: all; indices or a bool mask [B]) at
        step 0 from the network's initial state; lengths: theirs (None: open-ended)."""
        rows = self.clock.select(samples)
        self.clock.restart(rows, lengths)
        self._state.restart(rows, self._fresh)


class NetworkStream(Stream):
    """Online inference of a ``Network`` on B samples fed in chunks (see the module docstring).

    lengths: total steps per sample [B] (or one number) when known, else open-ended.
    early_exit: stop each sample once its running readout is confident, deciding step by step
    as the chunks come (``core.confidence.EarlyExit``).  record: every chunk also returns each
    layer's output [t, B, N] (and the confidence after every step).
    """

    def __init__(self, net: Network, batch: int, *, lengths: PerSample = None, early_exit: EarlyExit | None = None,
                 record: bool = False) -> None:
        check_early_exit(early_exit, net.layers[-1].size)
        self.net, self.early_exit, self.record = net, early_exit, bool(record)
        self._consts = layer_args(net.layers)  # (checks the delays first)
        super().__init__(batch, lengths, lambda b: NetworkState.fresh(net.layers, b, net.dtype))

    @property
    def done(self) -> torch.Tensor:
        """[B] bool: samples that run no more steps (exited, or their stream has ended)."""
        return torch.from_numpy(self._state.exited | self.clock.ended)

    def step(self, x: torch.Tensor | np.ndarray | Events, steps: PerSample = None) -> StreamChunk:
        """Run the next t steps: x dense [t, B, N_in] (or one step [B, N_in]) or ``Events`` (T = t).

        steps: [B] steps of the chunk that belong to each sample (default: all t, up to its
        length); a sample given fewer ends its stream here.  Exited and ended samples are not
        computed: the kernel does not visit them.
        """
        net, st = self.net, self._state
        B = self.batch
        t = chunk_length(x, B, net.in_features)
        if isinstance(x, Events):
            inputs = event_input(x.ptr, x.idx, x.val, net.dtype)
        else:
            inputs = dense_input(chunk_frames(x, t, B, net.dtype))
        before, exited = st.steps.copy(), st.exited.copy()
        n = self.clock.chunk_steps(t, steps, before)
        n[exited] = 0
        rows = np.flatnonzero(n > 0)
        ee = self.early_exit
        scales = stream_scales(int((before + n).max(initial=0)), ee)
        out, cnts, recs, conf_rec = launch(net.layers, net.dtype, self._consts, st, inputs, t, n, rows,
                                           self.record, ee, scales)
        tt = torch.from_numpy
        return StreamChunk(
            out=tt(out), counts=[tt(c) for c in cnts], steps=tt(st.steps - before),
            records=[tt(r) for r in recs] if self.record else [], pred=tt(st.pred.copy()),
            confidence=tt(st.confidence.copy()) if ee is not None else None,
            confidence_trace=tt(conf_rec) if (self.record and ee is not None) else None,
            total_steps=tt(st.steps.copy()), total_counts=[tt(c.copy()) for c in st.counts],
            exited=tt(st.exited.copy()), new_exits=tt(st.exited & ~exited), ended=tt(self.clock.ended.copy()))


__all__ = ["NetworkState", "NetworkStream", "SampleState", "Stream", "StreamClock", "exit_args", "launch", "layer_args",
           "layer_signature", "stream_scales",
           "scales_table", "dense_input", "event_input", "chunk_frames", "chunk_length", "check_early_exit", "finite"]

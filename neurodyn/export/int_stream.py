"""Streaming the integer simulator: a quantized network fed in chunks, each sample's state kept between them.

``q.stream(batch)`` (or ``IntStream(q, batch)``) returns an ``IntStream``; ``s.step(chunk)``
runs the next t steps of every sample on integer counts (dense [t, B, N_in], one step
[B, N_in], or ``core.Events`` with whole-number values) and returns an ``IntChunk``.  The
state between chunks (``int_sim.IntState``: neuron states, last outputs, delay buffers, steps
run) is what the one integer kernel reads and writes, so the chunks give, to the bit, what
``simulate`` gives on the whole input.  Per-sample ends and ``reset(samples)`` work as for the
event core's stream (``core.stream.StreamClock``); a sample whose stream has ended is not
computed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..core.events import Events
from ..core.stream import PerSample, Stream, chunk_length, finite
from ..errors import ConfigError, ShapeError
from .int_sim import COUNTERS, IntResult, IntState, dense_events, integer_input, launch, layer_args

if TYPE_CHECKING:  # annotations only: QuantizedNetwork.stream builds streams
    from .quantize import QuantizedNetwork

_PEAKS = ("peak_input", "peak_state")


@dataclass
class IntChunk(IntResult):
    """One chunk of t steps of an integer stream.

    The ``IntResult`` fields cover this chunk: out [t, B, N_out], per layer the spikes,
    saturations and peaks of its steps ([B] each), steps run in it [B] and records [t, B, N]
    (0 after a sample's last step).  Beside them, each sample's stream so far: total_steps [B],
    ended [B] (bool: its stream is over: its length reached, or a chunk gave it fewer steps than
    the chunk has) and ``totals``: the same five per-layer
    counters since the sample started ({'counts': [[B], ...], 'sat_input': ..., ...}).
    """

    total_steps: np.ndarray | None = None
    ended: np.ndarray | None = None
    totals: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @staticmethod
    def join(chunks: list["IntChunk"]) -> IntResult:
        """The chunks of a stream since its start (or its last reset) as one run: the
        ``IntResult`` that ``simulate`` returns on the whole input, to the bit."""
        if not chunks:
            raise ConfigError("IntChunk.join needs at least one chunk")
        last = chunks[-1]

        def per_layer(name: str) -> list[np.ndarray]:
            op = np.maximum.reduce if name in _PEAKS else np.add.reduce
            return [op([getattr(c, name)[i] for c in chunks]) for i in range(len(last.counts))]

        return IntResult(out=np.concatenate([c.out for c in chunks]), **{k: per_layer(k) for k in COUNTERS},
                         steps=np.add.reduce([c.steps for c in chunks]),
                         records=[{k: np.concatenate([c.records[i][k] for c in chunks]) for k in rec}
                                  for i, rec in enumerate(last.records)])


def _chunk_counts(x: torch.Tensor | np.ndarray | Events, t: int, B: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR int64 (ptr, channel, count) of a chunk's integer input."""
    if isinstance(x, Events):
        if not np.all(x.val == np.rint(x.val)):
            raise ConfigError("the integer simulator takes whole-number inputs (spike counts); got fractional values")
        return x.ptr, x.idx.astype(np.int64), x.val.astype(np.int64)
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.dtype.kind == "f" and not finite(a):
        raise ShapeError("the chunk has NaN or inf values")
    return dense_events(integer_input(a.reshape(t, B, n_in), n_in))


class IntStream(Stream):
    """The integer simulator on B samples fed in chunks (see the module docstring).

    lengths: total steps per sample [B] (or one number) when known, else open-ended.
    record: every chunk also returns each layer's output and states [t, B, N].
    parallel: threads over the batch (False: the serial build of the same kernel).
    """

    def __init__(self, q: QuantizedNetwork, batch: int, *, lengths: PerSample = None, record: bool = False,
                 parallel: bool = True) -> None:
        self.q, self.record, self.parallel = q, bool(record), bool(parallel)
        self._consts = layer_args(q)
        super().__init__(batch, lengths, lambda b: IntState.fresh(q, b))

    @property
    def done(self) -> np.ndarray:
        """[B] bool: samples whose stream has ended."""
        return self.clock.ended.copy()

    def step(self, x: torch.Tensor | np.ndarray | Events, steps: PerSample = None) -> IntChunk:
        """Run the next t steps: x integer counts [t, B, N_in] (or one step [B, N_in]; torch or
        numpy) or ``Events`` (T = t).  steps: [B] steps of the chunk that belong to each sample
        (default: all t, up to its length); a sample given fewer ends its stream here."""
        B, st = self.batch, self._state
        t = chunk_length(x, B, self.q.in_features)
        ptr, idx, val = _chunk_counts(x, t, B, self.q.in_features)
        before = st.steps.copy()
        n = self.clock.chunk_steps(t, steps, before)
        res = launch(self.q, self._consts, st, ptr, idx, val, t, n, np.flatnonzero(n > 0), self.record, self.parallel)
        for k, arrs in st.totals.items():
            for total, c in zip(arrs, getattr(res, k)):
                if k in _PEAKS:
                    np.maximum(total, c, out=total)
                else:
                    total += c
        return IntChunk(**{k: getattr(res, k) for k in ("out", "steps", "records", *COUNTERS)},
                        total_steps=st.steps.copy(), ended=self.clock.ended.copy(),
                        totals={k: [a.copy() for a in arrs] for k, arrs in st.totals.items()})


def stream(q: QuantizedNetwork, batch: int, *, lengths: PerSample = None, record: bool = False,
           parallel: bool = True) -> IntStream:
    """An ``IntStream`` of the quantized network ``q`` on ``batch`` samples."""
    return IntStream(q, batch, lengths=lengths, record=record, parallel=parallel)


__all__ = ["IntChunk", "IntStream", "stream"]

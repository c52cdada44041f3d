"""The event-driven network: layers of (weights, neuron coefficients) run by one kernel.

The same network trains as a torch module (dense path) and infers here, event-driven,
with identical outputs: ``neurodyn.nn.to_network(model)`` copies the weights and the
neuron coefficients; ``run`` propagates spikes as weight-row additions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ConfigError, ShapeError
from .confidence import EarlyExit
from ..neurons.base import NeuronModel
from ..kernels.dispatch import step_counts
from .events import Events, dense_to_events
from .result import NetworkResult
from .stream import (NetworkState, NetworkStream, PerSample, check_early_exit, dense_input, event_input, launch,
                     layer_args, scales_table)


@dataclass
class Layer:
    """One layer: input weights W [N_in, N_out] (rows added per event), bias [N_out],
    optional recurrent weights R [N_out, N_out], the neuron model, its coefficients and
    initial state (each [N_out]), optional integer input delays [N_in, N_out] (steps)."""

    weight: np.ndarray
    bias: np.ndarray
    model: NeuronModel
    coefs: tuple[np.ndarray, ...]
    init: tuple[np.ndarray, ...]
    recurrent: np.ndarray | None = None
    delays: np.ndarray | None = None  # integer synaptic delays [N_in, N_out] (steps), or None

    @property
    def size(self) -> int:
        return self.weight.shape[1]


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(dtype, copy=False))


class Network:
    """A feed-forward stack of (optionally recurrent) neuron layers run event-driven on CPU."""

    def __init__(self, layers: list[Layer], dtype=np.float32) -> None:
        if not layers:
            raise ConfigError("a Network needs at least one layer")
        for a, b in zip(layers, layers[1:]):
            if a.size != b.weight.shape[0]:
                raise ShapeError(f"layer sizes do not chain: {a.size} outputs into {b.weight.shape[0]} inputs")
        self.layers, self.dtype = layers, np.dtype(dtype)

    @property
    def in_features(self) -> int:
        return self.layers[0].weight.shape[0]

    def events_from_dense(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR events (ptr [B*T+1], channel [E], value [E]) of a dense input x [T, B, N_in]."""
        if x.dim() != 3 or x.shape[2] != self.in_features:
            raise ShapeError(f"network input must be [T, B, {self.in_features}], got {tuple(x.shape)}")
        return dense_to_events(_np(x, self.dtype))

    def run(self, x: torch.Tensor | Events, steps: torch.Tensor | None = None, record: bool = False,
            early_exit: EarlyExit | None = None) -> NetworkResult:
        """Run the network event-driven on a dense input x [T, B, N_in] (or on ``Events``:
        ``run_events`` on its lists).

        The kernel finds the nonzero inputs of each step in the frame itself (no conversion
        pass over all frames first), so the result equals ``run_events`` on
        ``events_from_dense(x)``.  steps: [B] number of steps each sample runs at most
        (default T); the rest cost nothing and output 0.  record: also return every layer's
        output [T, B, N].  early_exit: stop each sample once its running readout is confident
        (see ``core.confidence.EarlyExit``); None runs every sample for its ``steps``.
        """
        if isinstance(x, Events):
            if x.n_channels != self.in_features:
                raise ShapeError(f"the events have {x.n_channels} channels, the network takes {self.in_features}")
            return self.run_events(x.ptr, x.idx, x.val, x.T, step_counts(steps, x.B, x.T), record, early_exit)
        if x.dim() != 3 or x.shape[2] != self.in_features:
            raise ShapeError(f"network input must be [T, B, {self.in_features}], got {tuple(x.shape)}")
        T, B = x.shape[0], x.shape[1]
        steps_np = step_counts(steps, B, T)
        return self._launch(dense_input(_np(x, self.dtype)), T, steps_np, record, early_exit)

    def run_events(self, ptr: np.ndarray, idx: np.ndarray, val: np.ndarray, T: int, steps: np.ndarray,
                   record: bool = False, early_exit: EarlyExit | None = None) -> NetworkResult:
        """Run on CSR input events: row b*T+t of (ptr, idx, val) lists sample b's inputs at step t."""
        B = steps.shape[0]
        if ptr.shape[0] != B * T + 1:
            raise ShapeError(f"event pointer must have B*T+1 = {B * T + 1} entries, got {ptr.shape[0]}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.in_features):
            raise ShapeError(f"input event channel out of range [0, {self.in_features})")
        return self._launch(event_input(ptr, idx, val, self.dtype), T, steps, record, early_exit)

    def stream(self, batch: int, *, lengths: PerSample = None, early_exit: EarlyExit | None = None,
               record: bool = False) -> NetworkStream:
        """Online inference on ``batch`` samples fed in chunks: ``s = net.stream(B)``, then
        ``s.step(chunk)`` per chunk of input (dense [t, B, N_in] or ``Events``) returns that
        chunk's ``StreamChunk``; the chunks of a stream give, to the bit, ``run`` on the whole
        input.  lengths: total steps per sample when known (else each ends with a chunk that
        gives it fewer than t steps); early_exit, record: as for ``run``.  See ``core.stream``."""
        return NetworkStream(self, batch, lengths=lengths, early_exit=early_exit, record=record)

    def _launch(self, inputs: tuple, T: int, steps: np.ndarray, record: bool,
                early_exit: EarlyExit | None) -> NetworkResult:
        # A whole run: one chunk of a fresh state (the stream's kernel launch).
        B = steps.shape[0]
        check_early_exit(early_exit, self.layers[-1].size)
        ee = early_exit
        consts = layer_args(self.layers)  # (checks the delays first)
        state = NetworkState.fresh(self.layers, B, self.dtype)
        out, cnts, recs, conf_rec = launch(self.layers, self.dtype, consts, state, inputs, T, steps,
                                           np.flatnonzero(steps > 0), record, ee,
                                           scales_table(max(T, 1), ee.gamma if ee is not None else 1.0))
        return NetworkResult(out=torch.from_numpy(out), counts=[torch.from_numpy(c) for c in cnts],
                             steps=torch.from_numpy(state.steps),
                             records=[torch.from_numpy(r) for r in recs] if record else [],
                             pred=torch.from_numpy(state.pred),
                             confidence=torch.from_numpy(state.confidence) if ee is not None else None,
                             confidence_trace=torch.from_numpy(conf_rec) if (record and ee is not None) else None)

"""The event-driven network: layers of (weights, neuron coefficients) run by one kernel.

The same network trains as a torch module (dense path) and infers here, event-driven,
with identical outputs: ``neurodyn.nn.to_network(model)`` copies the weights and the
neuron coefficients; ``run`` propagates spikes as weight-row additions.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

from ..errors import ConfigError, ShapeError
from .confidence import EarlyExit, evidence_scales
from ..neurons.base import NeuronModel
from ..kernels.delay_buffer import ring_offsets
from ..kernels.dispatch import step_counts
from ..kernels.event_scan import bits
from .engine import network_kernel
from .events import Events, dense_to_events


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


@dataclass
class NetworkResult:
    """out [T, B, N_out] (spikes or readout membrane; 0 after a sample's last step), spike
    counts per layer ([B] each), steps run per sample [B] (the exit step under early exit),
    prediction [B] (argmax of the readout summed over the steps run: frozen at the exit),
    and per-layer recordings [T, B, N] if asked for.  Under early exit also the confidence
    at the last step run [B] and, when recording, the confidence after every step [T, B]
    (0 after the exit)."""

    out: torch.Tensor
    counts: list[torch.Tensor]
    steps: torch.Tensor
    records: list[torch.Tensor] = field(default_factory=list)
    pred: torch.Tensor | None = None
    confidence: torch.Tensor | None = None
    confidence_trace: torch.Tensor | None = None


@lru_cache(maxsize=64)
def _scales(T: int, gamma: float) -> np.ndarray:
    # The evidence divisors t**gamma as the kernel reads them (cached: torch per call costs ~20 us).
    a = evidence_scales(T, gamma).numpy()
    a.setflags(write=False)
    return a


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
        none = np.zeros(1, dtype=np.int64)
        frames = _np(x, self.dtype)
        return self._launch((none, none.astype(np.int32), np.zeros(1, self.dtype), frames, *bits(frames), True),
                            T, steps_np, record, early_exit)

    def run_events(self, ptr: np.ndarray, idx: np.ndarray, val: np.ndarray, T: int, steps: np.ndarray,
                   record: bool = False, early_exit: EarlyExit | None = None) -> NetworkResult:
        """Run on CSR input events: row b*T+t of (ptr, idx, val) lists sample b's inputs at step t."""
        B = steps.shape[0]
        if ptr.shape[0] != B * T + 1:
            raise ShapeError(f"event pointer must have B*T+1 = {B * T + 1} entries, got {ptr.shape[0]}")
        if idx.size and (idx.min() < 0 or idx.max() >= self.in_features):
            raise ShapeError(f"input event channel out of range [0, {self.in_features})")
        no_frames = np.zeros((1, 1, 1), dtype=self.dtype)
        return self._launch((ptr, idx, val.astype(self.dtype, copy=False), no_frames, *bits(no_frames), False), T,
                            steps, record, early_exit)

    def _launch(self, inputs: tuple, T: int, steps: np.ndarray, record: bool,
                early_exit: EarlyExit | None) -> NetworkResult:
        B = steps.shape[0]
        if early_exit is not None and not isinstance(early_exit, EarlyExit):
            raise ConfigError(f"early_exit must be an EarlyExit or None, got {type(early_exit).__name__}")
        n_out = self.layers[-1].size
        if early_exit is not None and n_out < 2:
            raise ShapeError(f"early exit needs a readout with at least 2 classes, the network has {n_out}")
        sig = tuple((l.model, l.recurrent is not None, l.delays is not None) for l in self.layers)
        kern = network_kernel(sig, self.dtype.name)
        dummy = np.zeros((1, 1, 1), dtype=self.dtype)
        args: list = [*inputs, T, steps]
        recs, cnts = [], []
        for layer in self.layers:
            args += [layer.weight, layer.bias] + ([layer.recurrent] if layer.recurrent is not None else [])
            if layer.delays is not None:
                args += list(ring_offsets(layer.delays))
            args += list(layer.coefs) + list(layer.init)
            rec = np.zeros((T, B, layer.size), dtype=self.dtype) if record else dummy
            cnt = np.zeros(B, dtype=np.int64)
            recs.append(rec)
            cnts.append(cnt)
            args += [rec, cnt]
        out = np.zeros((T, B, n_out), dtype=self.dtype)
        stop = np.zeros(B, dtype=np.int64)
        pred = np.zeros(B, dtype=np.int64)
        conf = np.zeros(B, dtype=np.float64)
        ee = early_exit
        conf_rec = np.zeros((T, B) if (record and ee is not None) else (1, 1), dtype=np.float64)
        args += [record, out, ee.code if ee is not None else 0, float(ee.threshold) if ee is not None else 1.0,
                 ee.min_steps if ee is not None else 1,
                 _scales(max(T, 1), ee.gamma if ee is not None else 1.0),
                 float(np.log(max(n_out, 2))), stop, pred, conf, conf_rec]
        kern.run_network(*args)
        return NetworkResult(out=torch.from_numpy(out), counts=[torch.from_numpy(c) for c in cnts],
                             steps=torch.from_numpy(stop),
                             records=[torch.from_numpy(r) for r in recs] if record else [],
                             pred=torch.from_numpy(pred),
                             confidence=torch.from_numpy(conf) if ee is not None else None,
                             confidence_trace=torch.from_numpy(conf_rec) if (record and ee is not None) else None)

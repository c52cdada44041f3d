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
from ..kernels.event_pool import pool_geometry
from ..kernels.sparse_conv import out_size
from .events import Events, dense_to_events
from .result import NetworkResult
from .stream import (NetworkState, NetworkStream, PerSample, check_early_exit, dense_input, event_input, launch,
                     layer_args, scales_table)


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))


@dataclass(frozen=True)
class Pool:
    """Pooling of a layer's input frames [C, H, W] before its connection (the pooling modules
    between a neuron layer and the next connection): windows ``kernel`` (kh, kw), ``stride``,
    zero ``padding`` (counted in averages); ``divide``: average (True) or sum pooling."""

    shape: tuple[int, int, int]
    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int] = (0, 0)
    divide: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        for f in ("kernel", "stride", "padding"):
            object.__setattr__(self, f, _pair(getattr(self, f)))
        if len(self.shape) != 3 or min(self.shape) < 1 or min(self.kernel) < 1 or min(self.stride) < 1 \
                or min(self.padding) < 0 or min(self.out_shape[1:]) < 1:
            raise ConfigError(f"pooling {self.kernel} (stride {self.stride}, padding {self.padding}) does not fit "
                              f"frames {self.shape}")

    @property
    def out_shape(self) -> tuple[int, int, int]:
        C, H, W = self.shape
        return (C, out_size(H, self.kernel[0], self.stride[0], self.padding[0]),
                out_size(W, self.kernel[1], self.stride[1], self.padding[1]))

    def geometry(self) -> np.ndarray:
        """The kernels' int64 geometry array (``kernels.event_pool.pool_geometry``)."""
        return pool_geometry(self.shape, self.kernel, self.stride, self.padding, self.divide)


@dataclass(frozen=True)
class Conv:
    """A layer connected by a 2-D convolution (``torch.nn.functional.conv2d`` of every frame,
    groups = dilation = 1, zero padding) of input frames ``shape`` (C, H, W); the layer's
    ``weight`` is the kernel [C_out, C, kh, kw] and its neurons are the output pixels, in
    NCHW order (C_out x H_out x W_out)."""

    shape: tuple[int, int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(v) for v in self.shape))
        object.__setattr__(self, "stride", _pair(self.stride))
        object.__setattr__(self, "padding", _pair(self.padding))
        if len(self.shape) != 3 or min(self.shape) < 1 or min(self.stride) < 1 or min(self.padding) < 0:
            raise ConfigError(f"a convolution needs frames (C, H, W) >= 1, stride >= 1 and padding >= 0, got "
                              f"{self.shape}, {self.stride}, {self.padding}")

    def out_shape(self, weight_shape: tuple[int, ...]) -> tuple[int, int, int]:
        Co, C, kh, kw = weight_shape
        _, H, W = self.shape
        return (Co, out_size(H, kh, self.stride[0], self.padding[0]), out_size(W, kw, self.stride[1], self.padding[1]))


class ConnectionSizes:
    """``size`` and ``n_in`` of a layer with ``weight``, ``conv`` and ``pool`` attributes
    (``Layer`` and the export's ``QuantizedLayer``)."""

    weight: np.ndarray
    conv: "Conv | None"
    pool: "Pool | None"

    @property
    def size(self) -> int:
        """Neurons N_out."""
        return connection_sizes(self.weight.shape, self.conv, self.pool)[1]

    @property
    def n_in(self) -> int:
        """Inputs N_in (before pooling, if any)."""
        return connection_sizes(self.weight.shape, self.conv, self.pool)[0]


@dataclass
class Layer(ConnectionSizes):
    """One layer: input weights W [N_in, N_out] (rows added per event), bias [N_out],
    optional recurrent weights R [N_out, N_out], the neuron model, its coefficients and
    initial state (each [N_out]), optional integer input delays [N_in, N_out] (steps).

    conv: the connection is a convolution (``Conv``; then W is the kernel [C_out, C, kh, kw]
    and bias [C_out]); pool: the input frames are pooled first (``Pool``).  Convolutional
    layers have no recurrent weights or delays.
    """

    weight: np.ndarray
    bias: np.ndarray
    model: NeuronModel
    coefs: tuple[np.ndarray, ...]
    init: tuple[np.ndarray, ...]
    recurrent: np.ndarray | None = None
    delays: np.ndarray | None = None  # integer synaptic delays [N_in, N_out] (steps), or None
    conv: Conv | None = None
    pool: Pool | None = None

    def __post_init__(self) -> None:
        if self.conv is not None:
            if self.weight.ndim != 4 or self.weight.shape[1] != self.conv.shape[0]:
                raise ShapeError(f"a convolutional layer's weight must be [C_out, {self.conv.shape[0]}, kh, kw], got "
                                 f"{list(self.weight.shape)}")
            if self.bias.shape != (self.weight.shape[0],):
                raise ShapeError(f"a convolutional layer's bias must be [{self.weight.shape[0]}], got "
                                 f"{list(self.bias.shape)}")
            if min(self.conv.out_shape(self.weight.shape)[1:]) < 1:
                raise ShapeError(f"a {self.weight.shape[2]}x{self.weight.shape[3]} kernel does not fit frames "
                                 f"{self.conv.shape} (stride {self.conv.stride}, padding {self.conv.padding})")
            if self.recurrent is not None or self.delays is not None:
                raise ConfigError("convolutional layers take no recurrent weights or delays in the event core")
        elif self.weight.ndim != 2:
            raise ShapeError(f"a layer's weight must be [N_in, N_out], got {list(self.weight.shape)}")
        if self.pool is not None:
            pooled = self.pool.out_shape
            takes = self.conv.shape if self.conv is not None else (self.weight.shape[0],)
            if (pooled if self.conv is not None else (int(np.prod(pooled)),)) != tuple(takes):
                raise ShapeError(f"pooling {self.pool.shape} gives {pooled}, the connection takes {takes}")


def connection_sizes(weight_shape: tuple[int, ...], conv: Conv | None, pool: Pool | None) -> tuple[int, int]:
    """(N_in, N_out) of a connection: weights [N_in, N_out], or a convolution's kernel
    [C_out, C, kh, kw] on frames ``conv.shape`` (N_out = C_out x H_out x W_out); N_in counts the
    inputs before pooling."""
    n_out = int(np.prod(conv.out_shape(weight_shape))) if conv is not None else weight_shape[1]
    if pool is not None:
        return int(np.prod(pool.shape)), n_out
    return (int(np.prod(conv.shape)) if conv is not None else weight_shape[0]), n_out


def _device_kind(device: str | torch.device) -> str:
    """'cpu' or 'cuda' (any 'cuda:<n>'); ConfigError for anything else."""
    kind = str(device).split(":")[0]
    if kind not in ("cpu", "cuda"):
        raise ConfigError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return kind


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(dtype, copy=False))


class Network:
    """A feed-forward stack of (optionally recurrent) neuron layers run event-driven on CPU."""

    def __init__(self, layers: list[Layer], dtype=np.float32) -> None:
        if not layers:
            raise ConfigError("a Network needs at least one layer")
        for a, b in zip(layers, layers[1:]):
            if a.size != b.n_in:
                raise ShapeError(f"layer sizes do not chain: {a.size} outputs into {b.n_in} inputs")
        self.layers, self.dtype = layers, np.dtype(dtype)

    @property
    def in_features(self) -> int:
        return self.layers[0].n_in

    def events_from_dense(self, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR events (ptr [B*T+1], channel [E], value [E]) of a dense input x [T, B, N_in]."""
        if x.dim() != 3 or x.shape[2] != self.in_features:
            raise ShapeError(f"network input must be [T, B, {self.in_features}], got {tuple(x.shape)}")
        return dense_to_events(_np(x, self.dtype))

    def run(self, x: torch.Tensor | Events, steps: torch.Tensor | None = None, record: bool = False,
            early_exit: EarlyExit | None = None, device: str | torch.device = "cpu") -> NetworkResult:
        """Run the network event-driven on a dense input x [T, B, N_in] (or on ``Events``:
        ``run_events`` on its lists).

        The kernel finds the nonzero inputs of each step in the frame itself (no conversion
        pass over all frames first), so the result equals ``run_events`` on
        ``events_from_dense(x)``.  steps: [B] number of steps each sample runs at most
        (default T); the rest cost nothing and output 0.  record: also return every layer's
        output [T, B, N].  early_exit: stop each sample once its running readout is confident
        (see ``core.confidence.EarlyExit``); None runs every sample for its ``steps``.
        device: 'cuda' runs the batch on the GPU (``core.gpu``: one thread block per sample, in
        chunks that fit its memory; results as CUDA tensors); dense and recurrent layers.
        """
        if _device_kind(device) == "cuda":
            if not isinstance(x, Events):
                x = Events.from_dense(x.detach().cpu())
            if x.n_channels != self.in_features:
                raise ShapeError(f"the events have {x.n_channels} channels, the network takes {self.in_features}")
            from .gpu import run_batch
            return run_batch(self, x.ptr, x.idx, x.val, x.T, step_counts(steps, x.B, x.T), record, early_exit,
                             launcher="cuda")
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
               record: bool = False, device: str = "cpu") -> NetworkStream:
        """Online inference on ``batch`` samples fed in chunks: ``s = net.stream(B)``, then
        ``s.step(chunk)`` per chunk of input (dense [t, B, N_in] or ``Events``) returns that
        chunk's ``StreamChunk``; the chunks of a stream give, to the bit, ``run`` on the whole
        input.  lengths: total steps per sample when known (else each ends with a chunk that
        gives it fewer than t steps); early_exit, record: as for ``run``.  See ``core.stream``.
        device 'cuda': the samples' state stays on the GPU (``core.gpu.GpuNetworkStream``)."""
        if _device_kind(device) == "cuda":
            from .gpu import GpuNetworkStream
            return GpuNetworkStream(self, batch, lengths=lengths, early_exit=early_exit, record=record)
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

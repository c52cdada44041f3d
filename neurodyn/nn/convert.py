"""Lift torch modules into the event core: ``to_network(model)`` copies weights and neuron coefficients.

The one place where modules become a ``core.Network`` (the core holds no torch modules), and
``fold_batchnorm``, which first turns a BatchNorm after a connection into that connection's weights.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..core.network import Conv, Layer, Network, Pool
from ..errors import ConfigError
from .conv import Conv2d, Flatten, _Pool2d
from .delays import DelayedLinear
from .linear import MultiStep
from .neurons import SpikingNeuron
from .recurrent import Recurrent


def _array(t: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(dtype, copy=False))


def to_network(model: nn.Module, dtype: np.dtype | str | None = None,
               input_shape: tuple[int, int, int] | None = None) -> Network:
    """The event-core ``Network`` of an nn.Sequential of (Linear, neuron) pairs, Recurrent layers
    and convolutional stacks (Conv2d, neuron, AvgPool2d / SumPool2d, Flatten).

    Dropout and Identity are skipped (inference).  ``DelayedLinear`` layers with rounded
    delays (``round_delays``) run with per-synapse delay ring buffers; a BatchNorm after a
    connection is folded into it first.  A pooling module becomes the pooling of the next
    layer's input.  input_shape: the frames (C, H, W) of a first Conv2d (default: its
    ``input_size`` and ``in_channels``).  Anything else is an error naming it.
    """
    mods = list(model) if isinstance(model, nn.Sequential) else [model]
    if any(isinstance(getattr(m, "module", None), nn.modules.batchnorm._BatchNorm) for m in mods):
        mods = list(fold_batchnorm(nn.Sequential(*mods)))
    layers: list[Layer] = []
    pending: nn.Module | None = None
    ptype = None
    frames = tuple(int(v) for v in input_shape) if input_shape is not None else None  # (C, H, W) or None (flat)
    pool: Pool | None = None
    for m in mods:
        if isinstance(m, (nn.Dropout, nn.Identity)):
            continue
        if isinstance(m, DelayedLinear) and not m.rounded:
            raise ConfigError("the event core runs integer delays: round the DelayedLinear delays first "
                              "(neurodyn.nn.delays.round_delays(model))")
        if isinstance(m, (nn.Linear, DelayedLinear, Conv2d)):
            if pending is not None:
                raise ConfigError("two connections in a row: put a neuron module between them")
            pending = m
            ptype = m.weight.dtype
            if isinstance(m, Conv2d):
                frames = _conv_frames(m, frames, pool, not layers)
        elif isinstance(m, _Pool2d):
            if frames is None and not layers and pending is None:
                raise ConfigError(f"{type(m).__name__} pools the input frames, whose shape is unknown: pass "
                                  "input_shape=(C, H, W)")
            if pending is not None or pool is not None or frames is None:
                raise ConfigError(f"{type(m).__name__} must follow a convolutional neuron layer")
            pool = Pool(frames, m.kernel_size, m.stride, m.padding, divide=m.divide)
            frames = pool.out_shape
        elif isinstance(m, Flatten):
            frames = None
        elif isinstance(m, SpikingNeuron):
            if pending is None:
                raise ConfigError(f"{type(m).__name__} must follow a Linear or Conv2d layer")
            layers.append(_layer(pending, None, m, pool, frames))
            if isinstance(pending, Conv2d):
                frames = layers[-1].conv.out_shape(layers[-1].weight.shape)
            pending, pool = None, None
        elif isinstance(m, Recurrent):
            if pending is not None:
                raise ConfigError("a Linear directly before Recurrent is not supported; fold it into Recurrent")
            layers.append(_layer(m.ff, m.rec, m.neuron, pool, None))
            pool = None
            ptype = m.ff.weight.dtype
        else:
            raise ConfigError(f"module {type(m).__name__} is not supported by the event-driven core"
                          + (" (use neurodyn.nn.Conv2d, the multi-step convolution)" if isinstance(m, nn.Conv2d) else ""))
    if pending is not None:
        raise ConfigError("the model ends in a Linear or Conv2d layer: add a neuron (e.g. LI readout) after it")
    if pool is not None:
        raise ConfigError("the model ends in pooling: the event core's last layer must be neurons")
    dt = np.dtype(dtype) if dtype is not None else (np.float64 if ptype == torch.float64 else np.float32)
    for layer in layers:
        layer.weight, layer.bias = layer.weight.astype(dt), layer.bias.astype(dt)
        layer.coefs = tuple(c.astype(dt) for c in layer.coefs)
        layer.init = tuple(c.astype(dt) for c in layer.init)
        if layer.recurrent is not None:
            layer.recurrent = layer.recurrent.astype(dt)
    return Network(layers, dtype=dt)


def _conv_frames(m: Conv2d, frames: tuple[int, int, int] | None, pool: Pool | None,
                 first: bool) -> tuple[int, int, int]:
    """The input frames (C, H, W) of convolution ``m``, checking that the event core runs it."""
    if m._event_padding() is None:
        raise ConfigError(f"{m}: the event core runs ndn.Conv2d with groups = dilation = 1, zero padding and "
                          "odd kernels for 'same' padding")
    if frames is None and first and m.input_size is not None:
        frames = (m.in_channels, *m.input_size)
    if frames is None:
        raise ConfigError(f"{m}: the input frames are unknown; pass input_shape=(C, H, W) to to_network"
                          if first else f"{m} follows a flat layer: a convolution needs frames")
    if frames[0] != m.in_channels:
        raise ConfigError(f"{m} takes {m.in_channels} channels, its input frames are {frames}")
    return frames


def _layer(conn: nn.Module, rec: nn.Linear | None, nrn: SpikingNeuron, pool: Pool | None = None,
           frames: tuple[int, int, int] | None = None) -> Layer:
    dt = np.float64
    conv = None
    if isinstance(conn, Conv2d):
        conv = Conv(frames, conn.stride, conn._event_padding())
        n = int(np.prod(conv.out_shape(conn.weight.shape)))
        weight = _array(conn.weight, dt)
        bias = _array(conn.bias, dt) if conn.bias is not None else np.zeros(conn.out_channels, dtype=dt)
    else:
        n = conn.out_features
        weight = _array(conn.weight.t(), dt)
        bias = _array(conn.bias, dt) if conn.bias is not None else np.zeros(n, dtype=dt)
    coefs = tuple(_array(torch.broadcast_to(c.detach().to(torch.float64).reshape(-1), (n,)), dt)
                  for c in nrn.coefficients())
    probe = torch.zeros(1, n, dtype=torch.float64)
    init = tuple(_array(s[0], dt) for s in nrn.initial_state(1, n, probe))
    delays = conn.integer_delays().t().numpy().astype(np.int64) if hasattr(conn, "integer_delays") else None
    return Layer(weight=weight, bias=bias, model=nrn.model, coefs=coefs, init=init,
                 recurrent=None if rec is None else _array(rec.weight.t(), dt),
                 delays=None if delays is None else np.ascontiguousarray(delays), conv=conv, pool=pool)


def fold_batchnorm(model: nn.Sequential) -> nn.Sequential:
    """Inference copy of ``model`` with every BatchNorm folded into the connection before it.

    A ``MultiStep(BatchNorm1d)`` in eval mode is y -> a y + c per output neuron, so after a
    DelayedLinear or Linear it becomes W'[o] = a[o] W[o], bias'[o] = a[o] bias[o] + c[o]
    (delays unchanged): the same outputs, and a stack the event core can take.
    """
    mods = [copy.deepcopy(m) for m in model]
    out: list[nn.Module] = []
    for m in mods:
        bn = m.module if isinstance(m, MultiStep) and isinstance(m.module, nn.BatchNorm1d) else None
        if bn is None:
            out.append(m)
            continue
        prev = out[-1] if out else None
        if not isinstance(prev, (DelayedLinear, nn.Linear)):
            raise ConfigError(f"a BatchNorm must follow a DelayedLinear or Linear to be folded, not "
                              f"{type(prev).__name__ if prev is not None else 'nothing'}")
        if bn.running_mean is None:
            raise ConfigError("fold_batchnorm needs BatchNorm running statistics (track_running_stats=True)")
        with torch.no_grad():
            a = 1.0 / torch.sqrt(bn.running_var + bn.eps)
            a = a * bn.weight if bn.affine else a
            c = -bn.running_mean * a + (bn.bias if bn.affine else 0.0)
            prev.weight.mul_(a[:, None].to(prev.weight.dtype))
            b0 = prev.bias if prev.bias is not None else torch.zeros_like(c)
            prev.bias = nn.Parameter((a * b0 + c).to(prev.weight.dtype))
    folded = nn.Sequential(*out)
    folded.eval()
    return folded


__all__ = ["fold_batchnorm", "to_network"]

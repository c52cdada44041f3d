"""Lift torch modules into the event core: ``to_network(model)`` copies weights and neuron coefficients.

The one place where modules become a ``core.Network`` (the core holds no torch modules), and
``fold_batchnorm``, which first turns a BatchNorm after a connection into that connection's weights.
"""
from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from ..core.network import Layer, Network
from ..errors import ConfigError
from .delays import DelayedLinear
from .linear import MultiStep
from .neurons import SpikingNeuron
from .recurrent import Recurrent


def _array(t: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(dtype, copy=False))


def to_network(model: nn.Module, dtype: np.dtype | str | None = None) -> Network:
    """The event-core ``Network`` of an nn.Sequential of (Linear, neuron) pairs and Recurrent layers.

    Dropout and Identity are skipped (inference).  ``DelayedLinear`` layers with rounded
    delays (``round_delays``) run with per-synapse delay ring buffers; a BatchNorm after a
    connection is folded into it first.  Anything else is an error naming it.
    """
    mods = list(model) if isinstance(model, nn.Sequential) else [model]
    if any(isinstance(getattr(m, "module", None), nn.modules.batchnorm._BatchNorm) for m in mods):
        mods = list(fold_batchnorm(nn.Sequential(*mods)))
    layers: list[Layer] = []
    pending: nn.Linear | None = None
    ptype = None
    for m in mods:
        if isinstance(m, (nn.Dropout, nn.Identity)):
            continue
        if isinstance(m, DelayedLinear) and not m.rounded:
            raise ConfigError("the event core runs integer delays: round the DelayedLinear delays first "
                              "(neurodyn.nn.delays.round_delays(model))")
        if isinstance(m, (nn.Linear, DelayedLinear)):
            if pending is not None:
                raise ConfigError("two Linear layers in a row: put a neuron module between them")
            pending = m
            ptype = m.weight.dtype
        elif isinstance(m, SpikingNeuron):
            if pending is None:
                raise ConfigError(f"{type(m).__name__} must follow a Linear layer")
            layers.append(_layer(pending, None, m))
            pending = None
        elif isinstance(m, Recurrent):
            if pending is not None:
                raise ConfigError("a Linear directly before Recurrent is not supported; fold it into Recurrent")
            layers.append(_layer(m.ff, m.rec, m.neuron))
            ptype = m.ff.weight.dtype
        else:
            raise ConfigError(f"module {type(m).__name__} is not supported by the event-driven core")
    if pending is not None:
        raise ConfigError("the model ends in a Linear layer: add a neuron (e.g. LI readout) after it")
    dt = np.dtype(dtype) if dtype is not None else (np.float64 if ptype == torch.float64 else np.float32)
    for layer in layers:
        layer.weight, layer.bias = layer.weight.astype(dt), layer.bias.astype(dt)
        layer.coefs = tuple(c.astype(dt) for c in layer.coefs)
        layer.init = tuple(c.astype(dt) for c in layer.init)
        if layer.recurrent is not None:
            layer.recurrent = layer.recurrent.astype(dt)
    return Network(layers, dtype=dt)


def _layer(lin: nn.Linear, rec: nn.Linear | None, nrn: SpikingNeuron) -> Layer:
    n = lin.out_features
    dt = np.float64
    coefs = tuple(_array(torch.broadcast_to(c.detach().to(torch.float64), (n,)), dt) for c in nrn.coefficients())
    probe = torch.zeros(1, n, dtype=torch.float64)
    init = tuple(_array(s[0], dt) for s in nrn.initial_state(1, n, probe))
    bias = _array(lin.bias, dt) if lin.bias is not None else np.zeros(n, dtype=dt)
    delays = lin.integer_delays().t().numpy().astype(np.int64) if hasattr(lin, "integer_delays") else None
    return Layer(weight=_array(lin.weight.t(), dt), bias=bias, model=nrn.model, coefs=coefs, init=init,
                 recurrent=None if rec is None else _array(rec.weight.t(), dt),
                 delays=None if delays is None else np.ascontiguousarray(delays))


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

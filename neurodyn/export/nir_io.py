"""NIR graphs (the ``nir`` package) for neurodyn networks: write, read, and re-quantize.

NIR neurons are continuous-time; neurodyn's are discrete steps of ``dt`` ms with decay
``d`` per step.  The mapping, for both integrations ('exact': d = exp(-dt/tau), 'euler':
d = 1 - dt/tau), uses that the input factor per step is always ``1 - d`` times the NIR
resistance (piecewise-constant input over a step):

    LIF      tau = tau_mem,  r = gain / (1 - d),  v_leak = v_rest, v_threshold, v_reset
    CubaLIF  tau_syn from alpha_syn, w_in = 1 / (1 - alpha_syn)   (i' = alpha i + x),
             tau_mem, r = gain / (1 - d) as LIF
    LI       tau, r = gain / (1 - d), v_leak = v_rest

Times in NIR are seconds (neurodyn uses ms).  Weights are ``Affine`` (``Linear`` for
recurrent weights, an edge neuron -> Linear -> neuron).  Per-synapse integer delays are
written exactly: one Affine/Linear branch per distinct delay value, each followed by a
``Delay`` node (delay * dt seconds) into the neuron (NIR sums converging edges).

neurodyn-specific facts go into node metadata so a neurodyn reader restores the exact
model: ``neurodyn_reset`` ('subtract' or 'zero': NIR's LIF resets to v_reset, other
readers do that), and on the graph ``neurodyn_dt_ms`` and ``neurodyn_integration``.  A
quantized network is written dequantized (every value exact in float64), with its format
and per-layer exponents in metadata so ``quantized_from_nir`` rebuilds the same integers.
Note: NIR fires on v > threshold, neurodyn on v >= threshold (they differ only on equality).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core.network import Network
from ..nn.convert import to_network
from ..errors import ConfigError, DataFormatError
from ..neurons import get_neuron
from ..nn.neurons import SpikingNeuron
from .atomic import write_atomic
from .fixed_point import FixedPointFormat, round_half_away
from .int_step import COEF_KINDS
from .quantize import QuantizedLayer, QuantizedNetwork, _dequant_coef

try:
    import nir
except ImportError:  # optional dependency: neurodyn[nir]
    nir = None

_NEURON_NODE = {"lif": "LIF", "cuba": "CubaLIF", "li": "LI"}
_QUANT_KEYS = ("scale", "weight_exp", "bias_exp", "threshold_exp", "recurrent_exp")


def _need_nir():
    if nir is None:
        raise ConfigError("NIR export needs the 'nir' package: pip install 'neurodyn[nir]'")
    return nir


@dataclass
class _IRLayer:
    """A layer between neurodyn and NIR: float64 arrays, weights [N_in, N_out], delays in steps."""

    model_name: str
    weight: np.ndarray
    bias: np.ndarray
    coefs: dict[str, np.ndarray]
    recurrent: np.ndarray | None = None
    delay: np.ndarray | None = None
    quant: dict | None = None


# ------------------------------------------------------------------------------------------ time constants


def _tau(decay: np.ndarray, dt: float, integration: str) -> np.ndarray:
    """Time constant (ms) of a per-step decay."""
    d = np.asarray(decay, dtype=np.float64)
    if np.any(d >= 1) or np.any(d <= 0):
        raise ConfigError("a decay of 0 or >= 1 per step (no leak) has no NIR time constant")
    return -dt / np.log(d) if integration == "exact" else dt / (1.0 - d)


def _decay(tau: np.ndarray, dt: float, integration: str) -> np.ndarray:
    tau = np.asarray(tau, dtype=np.float64)
    return np.exp(-dt / tau) if integration == "exact" else 1.0 - dt / tau


# ------------------------------------------------------------------------------------------ write


def _ir_from(obj) -> tuple[list[_IRLayer], float | None, str, FixedPointFormat | None]:
    """(layers, dt ms, integration, format) of a module, core.Network or QuantizedNetwork."""
    if isinstance(obj, (Network, QuantizedNetwork)) and any(l.conv is not None or l.pool is not None
                                                             for l in obj.layers):
        raise ConfigError(f"NIR export of a {type(obj).__name__} with convolutional or pooled layers is not "
                          "supported: export the torch model (to_nir(model)), whose Conv2d and pooling become NIR nodes")
    if isinstance(obj, QuantizedNetwork):
        out = []
        for l in obj.layers:
            s = l.scale
            coefs = {c: _dequant_coef(c, l.coefs[c], s, obj.fmt) for c in l.model.coefs}
            rec = l.recurrent_int()
            out.append(_IRLayer(l.model.name, l.weight_int() / s, l.bias_int() / s, coefs,
                                None if rec is None else rec / s, l.delay,
                                quant={"scale": s, "weight_exp": l.weight_exp, "bias_exp": l.bias_exp,
                                       "threshold_exp": l.threshold_exp, "recurrent_exp": l.recurrent_exp}))
        return out, obj.dt, "exact", obj.fmt
    integration = "exact"
    dt = None
    if isinstance(obj, nn.Module):
        nrns = [m for m in obj.modules() if isinstance(m, SpikingNeuron)]
        dts = {float(m.dt) for m in nrns}
        ints = {m.integration for m in nrns}
        if len(dts) > 1 or len(ints) > 1:
            raise ConfigError(f"NIR export needs one dt and one integration for all neurons, got dt={sorted(dts)}, "
                              f"integration={sorted(ints)}")
        dt = dts.pop() if dts else None
        integration = ints.pop() if ints else "exact"
        obj = to_network(obj, dtype=np.float64)
    if not isinstance(obj, Network):
        raise ConfigError(f"to_nir takes an nn.Module, core.Network or QuantizedNetwork, got {type(obj).__name__}")
    out = []
    for l in obj.layers:
        if l.model.name not in _NEURON_NODE:
            raise ConfigError(f"neuron '{l.model.name}' has no NIR node (supported: {sorted(_NEURON_NODE)})")
        coefs = {c: np.asarray(v, dtype=np.float64) for c, v in zip(l.model.coefs, l.coefs)}
        out.append(_IRLayer(l.model.name, l.weight.astype(np.float64), l.bias.astype(np.float64), coefs,
                            None if l.recurrent is None else l.recurrent.astype(np.float64), l.delays))
    return out, dt, integration, None


def _neuron_node(l: _IRLayer, dt: float, integration: str):
    c = l.coefs
    ms = 1e-3
    d = c["decay"]
    r = c["gain"] / (1.0 - d)
    meta = {}
    if l.quant is not None:
        meta.update({f"neurodyn_{k}": v for k, v in l.quant.items()})
    if l.model_name == "li":
        return nir.LI(tau=_tau(d, dt, integration) * ms, r=r, v_leak=c["v_rest"].copy(), metadata=meta)
    rs = np.unique(c["reset_sub"])
    if rs.size != 1:
        raise ConfigError("NIR needs one reset mode per layer; this layer mixes subtract and zero reset")
    meta["neurodyn_reset"] = "subtract" if rs[0] == 1 else "zero"
    common = dict(r=r, v_leak=c["v_rest"].copy(), v_threshold=c["threshold"].copy(), v_reset=c["v_reset"].copy(),
                  metadata=meta)
    if l.model_name == "lif":
        return nir.LIF(tau=_tau(d, dt, integration) * ms, **common)
    a = c["alpha_syn"]
    return nir.CubaLIF(tau_syn=_tau(a, dt, integration) * ms, tau_mem=_tau(d, dt, integration) * ms,
                       w_in=1.0 / (1.0 - a), **common)


def to_nir(obj, dt: float | None = None, integration: str | None = None,
           input_shape: tuple[int, int, int] | None = None):
    """NIR graph of a network: an nn.Sequential (dt and integration read from its neurons),
    a core.Network (pass ``dt`` ms and ``integration``) or a QuantizedNetwork (dequantized,
    with its format in metadata; delays become Delay nodes).  A Sequential with Conv2d,
    pooling or Flatten layers becomes a chain of Conv2d / AvgPool2d / SumPool2d / Flatten /
    Affine and neuron nodes; ``input_shape`` (C, H, W) is needed unless its first Conv2d
    has ``input_size``."""
    _need_nir()
    if isinstance(obj, nn.Module) and _is_conv_chain(obj):
        return _conv_to_nir(obj, dt, integration, input_shape)
    layers, dt0, integ0, fmt = _ir_from(obj)
    dt = dt if dt is not None else dt0
    integration = integration or integ0
    if dt is None:
        raise ConfigError("to_nir needs the time step: pass dt (ms)")
    if integration not in ("exact", "euler"):
        raise ConfigError(f"unknown integration '{integration}'; choose 'exact' or 'euler'")
    nodes = {"input": nir.Input(input_type={"input": np.array([layers[0].weight.shape[0]])})}
    edges = []
    prev = "input"
    for i, l in enumerate(layers):
        name = f"{l.model_name}{i}"
        nodes[name] = _neuron_node(l, dt, integration)
        dvals = [0] if l.delay is None else sorted(int(v) for v in np.unique(l.delay))
        for k, dv in enumerate(dvals):
            w = l.weight if l.delay is None else np.where(l.delay == dv, l.weight, 0.0)
            fc = f"fc{i}" if len(dvals) == 1 and dv == 0 else f"fc{i}_d{dv}"
            # The bias rides on the first branch only (it is added once per step).
            nodes[fc] = nir.Affine(weight=np.ascontiguousarray(w.T), bias=l.bias.copy() if k == 0 else np.zeros_like(l.bias))
            edges.append((prev, fc))
            if dv == 0:
                edges.append((fc, name))
            else:
                dn = f"delay{i}_d{dv}"
                nodes[dn] = nir.Delay(delay=np.full(l.weight.shape[1], dv * dt * 1e-3))
                edges += [(fc, dn), (dn, name)]
        if l.recurrent is not None:
            nodes[f"rec{i}"] = nir.Linear(weight=np.ascontiguousarray(l.recurrent.T))
            edges += [(name, f"rec{i}"), (f"rec{i}", name)]
        prev = name
    nodes["output"] = nir.Output(output_type={"output": np.array([layers[-1].weight.shape[1]])})
    edges.append((prev, "output"))
    meta = {"neurodyn_dt_ms": float(dt), "neurodyn_integration": integration}
    if fmt is not None:
        meta.update({f"neurodyn_fmt_{k}": (np.asarray(v) if isinstance(v, tuple) else v) for k, v in fmt.to_dict().items()})
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


# ------------------------------------------------------------------------------------------ read


def _meta(node, key, default=None):
    v = (getattr(node, "metadata", None) or {}).get(key, default)
    return v.decode() if isinstance(v, bytes) else v


def _ir_layers(graph, dt: float | None, integration: str | None) -> tuple[list[_IRLayer], float, str]:
    _need_nir()
    if not isinstance(graph, nir.NIRGraph):
        raise ConfigError(f"expected a nir.NIRGraph, got {type(graph).__name__}")
    dt = dt if dt is not None else _meta(graph, "neurodyn_dt_ms")
    if dt is None:
        raise ConfigError("the NIR graph has no neurodyn_dt_ms metadata: pass dt (ms) to read it")
    dt = float(dt)
    integration = integration or _meta(graph, "neurodyn_integration", "exact")
    nodes, edges = graph.nodes, list(graph.edges)
    preds: dict[str, list[str]] = {k: [] for k in nodes}
    succs: dict[str, list[str]] = {k: [] for k in nodes}
    for a, b in edges:
        if a not in nodes or b not in nodes:
            raise ConfigError(f"NIR edge ({a}, {b}) names a node that is not in the graph")
        preds[b].append(a)
        succs[a].append(b)
    inputs = [k for k, n in nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ConfigError(f"the NIR graph must have exactly one Input node, got {len(inputs)}")
    neuron_types = (nir.LIF, nir.CubaLIF, nir.LI)
    layers: list[_IRLayer] = []
    source = inputs[0]
    n_in = int(np.prod(nodes[source].input_type["input"]))
    while True:
        # The neuron fed (directly or through Delay) by the weight nodes hanging off `source`.
        targets = set()
        for fc in succs[source]:
            if isinstance(nodes[fc], nir.Output):
                continue
            if not isinstance(nodes[fc], (nir.Affine, nir.Linear)):
                raise ConfigError(f"NIR node '{fc}' ({type(nodes[fc]).__name__}) is not supported here: "
                                  "neurodyn reads Affine/Linear -> [Delay] -> LIF/CubaLIF/LI chains")
            for nxt in succs[fc]:
                tgt = succs[nxt][0] if isinstance(nodes[nxt], nir.Delay) and len(succs[nxt]) == 1 else nxt
                targets.add(tgt)
        targets = {t for t in targets if t != source}
        if not targets:
            break
        if len(targets) != 1 or not isinstance(nodes[next(iter(targets))], neuron_types):
            raise ConfigError(f"after '{source}' the NIR graph must continue into exactly one LIF/CubaLIF/LI node, "
                              f"got {sorted(targets)}")
        name = targets.pop()
        node = nodes[name]
        n_out = int(np.asarray(node.output_type["output"]).prod())
        W = np.zeros((n_in, n_out))
        D = np.zeros((n_in, n_out), dtype=np.int64)
        has_delay = False
        b = np.zeros(n_out)
        R = None
        for p in preds[name]:
            delay_steps = 0
            fc = p
            if isinstance(nodes[p], nir.Delay):
                (fc,) = preds[p]
                steps = np.asarray(nodes[p].delay, dtype=np.float64) * 1e3 / dt
                if np.any(np.abs(steps - np.rint(steps)) > 1e-6) or np.unique(np.rint(steps)).size != 1:
                    raise ConfigError(f"NIR Delay '{p}' is not one whole number of {dt} ms steps")
                delay_steps = int(np.rint(steps[0]))
                has_delay = True
            wn = nodes[fc]
            w = np.asarray(wn.weight, dtype=np.float64).T
            if preds[fc] == [name]:
                R = w if R is None else R + w
                continue
            if preds[fc] != [source]:
                raise ConfigError(f"NIR weight node '{fc}' must be fed by '{source}' only, got {preds[fc]}")
            if np.any((W != 0) & (w != 0)):
                raise ConfigError(f"two NIR branches into '{name}' share a synapse; neurodyn needs one delay per synapse")
            W += w
            D[w != 0] = delay_steps
            if isinstance(wn, nir.Affine):
                b += np.asarray(wn.bias, dtype=np.float64)
        model_name, coefs = _neuron_coefs(node, dt, integration)
        layers.append(_IRLayer(model_name, W, b, coefs, recurrent=R, delay=D if has_delay else None,
                               quant=({k: _meta(node, f"neurodyn_{k}") for k in _QUANT_KEYS}
                                      if _meta(node, "neurodyn_scale") is not None else None)))
        source, n_in = name, n_out
    if not layers:
        raise ConfigError("the NIR graph has no LIF/CubaLIF/LI layer after its Input")
    return layers, dt, integration


def _neuron_coefs(node, dt: float, integration: str) -> tuple[str, dict[str, np.ndarray]]:
    f = lambda a: np.asarray(a, dtype=np.float64).reshape(-1)  # noqa: E731
    ms = 1e3
    if isinstance(node, nir.CubaLIF):
        model, d = "cuba", _decay(f(node.tau_mem) * ms, dt, integration)
        a = _decay(f(node.tau_syn) * ms, dt, integration)
        # The synapse's input factor (1 - alpha) w_in is folded into the weights by the caller.
        coefs = {"alpha_syn": a, "syn_in": (1.0 - a) * f(node.w_in)}
    elif isinstance(node, nir.LIF):
        model, d, coefs = "lif", _decay(f(node.tau) * ms, dt, integration), {}
    else:
        model, d, coefs = "li", _decay(f(node.tau) * ms, dt, integration), {}
    coefs.update(decay=d, gain=(1.0 - d) * f(node.r), v_rest=f(node.v_leak))
    if model != "li":
        reset = _meta(node, "neurodyn_reset", "zero")
        if reset not in ("subtract", "zero"):
            raise ConfigError(f"unknown neurodyn_reset '{reset}' in NIR metadata")
        coefs.update(threshold=f(node.v_threshold), v_reset=f(node.v_reset),
                     reset_sub=np.full(d.shape, 1.0 if reset == "subtract" else 0.0))
    return model, coefs


def _close(a: np.ndarray, b, tol: float = 1e-9) -> bool:
    return bool(np.all(np.abs(np.asarray(a) - b) <= tol * np.maximum(1.0, np.abs(b))))


def from_nir(graph, dt: float | None = None, integration: str | None = None) -> nn.Sequential:
    """An nn.Sequential of neurodyn modules (float64) computing the NIR graph.

    dt (ms) and integration default to the graph's neurodyn metadata.  Input scalings that
    are not a neurodyn gain (r, w_in) are folded into the weights.  Affine -> Delay branches
    (whole steps of dt) become a ``DelayedLinear`` with rounded integer delays.
    """
    from .. import nn as ndn

    if nir is not None and isinstance(graph, nir.NIRGraph) and any(
            isinstance(n, _CONV_NODES) for n in graph.nodes.values()):
        return _conv_from_nir(graph, dt, integration)
    layers, dt, integration = _ir_layers(graph, dt, integration)
    mods: list[nn.Module] = []
    for l in layers:
        delayed = l.delay is not None and bool(l.delay.any())
        nrn, fold = _neuron_module(l.model_name, l.coefs, dt, integration)
        n_in, n_out = l.weight.shape
        with torch.no_grad():
            if delayed and l.recurrent is not None:
                raise ConfigError("the NIR graph has delays into a recurrent layer: no neurodyn module computes that")
            if delayed:  # integer delays: a DelayedLinear with its delays set and rounded
                from ..nn.delays import DelayedLinear
                dl = DelayedLinear(n_in, n_out, max_delay=int(l.delay.max()), bias=True, dtype=torch.float64)
                dl.weight.copy_(torch.from_numpy((l.weight * fold).T))
                dl.bias.copy_(torch.from_numpy(l.bias * fold))
                dl.delay_param.copy_(torch.from_numpy(l.delay.T.astype(np.float64)) / dl.delay_lr_scale)
                mods += [dl.round_delays_(), nrn.double()]
            elif l.recurrent is not None:
                rec = ndn.Recurrent(n_in, n_out, nrn)
                rec.ff.weight.copy_(torch.from_numpy((l.weight * fold).T))
                rec.ff.bias.copy_(torch.from_numpy(l.bias * fold))
                rec.rec.weight.copy_(torch.from_numpy((l.recurrent * fold).T))
                mods.append(rec.double())
            else:
                lin = ndn.Linear(n_in, n_out).double()
                lin.weight.copy_(torch.from_numpy((l.weight * fold).T))
                lin.bias.copy_(torch.from_numpy(l.bias * fold))
                mods += [lin, nrn.double()]
    return nn.Sequential(*mods).double().eval()


def _neuron_module(model_name: str, c: dict[str, np.ndarray], dt: float, integration: str):
    """(neuron module, input factor [N] to fold into the weights before it) for NIR neuron coefficients."""
    from .. import nn as ndn
    d = c["decay"]
    # Pick the module's input convention that matches the gain exactly; fold the rest.
    fold = np.ones_like(d)
    if "syn_in" in c:
        if not _close(c["syn_in"], 1.0):
            fold = fold * c["syn_in"]
    if _close(c["gain"], 1.0 - d):
        normalize = True
    elif _close(c["gain"], 1.0):
        normalize = False
    else:
        normalize, fold = True, fold * c["gain"] / (1.0 - d)
    tau = torch.from_numpy(_tau(d, dt, integration))
    kw = dict(dt=dt, integration=integration, normalize_input=normalize, v_rest=torch.from_numpy(c["v_rest"]))
    if model_name == "li":
        nrn = ndn.LI(tau_mem=tau, **kw)
    else:
        kw.update(threshold=torch.from_numpy(c["threshold"]), v_reset=torch.from_numpy(c["v_reset"]),
                  reset="subtract" if c["reset_sub"][0] == 1 else "zero")
        if model_name == "lif":
            nrn = ndn.LIF(tau_mem=tau, **kw)
        else:
            nrn = ndn.CUBALIF(tau_syn=torch.from_numpy(_tau(c["alpha_syn"], dt, integration)), tau_mem=tau, **kw)
    return nrn, fold


# ------------------------------------------------------------------------------------------ conv chains

_CONV_NODES = () if nir is None else (nir.Conv2d, nir.AvgPool2d, nir.SumPool2d, nir.Flatten)


def _is_conv_chain(module: nn.Module) -> bool:
    from ..nn.conv import AvgPool2d, Flatten, SumPool2d
    return any(isinstance(m, (nn.Conv2d, AvgPool2d, SumPool2d, Flatten)) for m in module.modules())


def _chain(module: nn.Module) -> list[nn.Module]:
    """The leaf modules of nested Sequentials, in order (eval-time no-ops dropped)."""
    out = []
    for m in (module if isinstance(module, nn.Sequential) else [module]):
        if isinstance(m, nn.Sequential):
            out += _chain(m)
        elif not isinstance(m, (nn.Dropout, nn.Identity)):
            out.append(m)
    return out


def _conv_to_nir(module: nn.Module, dt: float | None, integration: str | None, input_shape):
    """A chain graph input -> node_0 -> ... -> output, one node per layer (see ``to_nir``)."""
    from ..nn.conv import AvgPool2d, Flatten, SumPool2d
    from ..nn.linear import MultiStep
    mods = [m.module if isinstance(m, MultiStep) else m for m in _chain(module)]
    nrns = [m for m in mods if isinstance(m, SpikingNeuron)]
    dt = dt if dt is not None else (float(nrns[0].dt) if nrns else None)
    integration = integration or (nrns[0].integration if nrns else "exact")
    if dt is None:
        raise ConfigError("to_nir needs the time step: pass dt (ms)")
    if any(float(m.dt) != dt or m.integration != integration for m in nrns):
        raise ConfigError("NIR export needs one dt and one integration for all neurons")
    first = mods[0]
    if input_shape is None and isinstance(first, nn.Conv2d) and getattr(first, "input_size", None):
        input_shape = (first.in_channels, *first.input_size)
    if input_shape is None:
        raise ConfigError("to_nir of a convolutional network needs input_shape=(C, H, W)")
    shape = tuple(int(v) for v in input_shape)
    f64 = lambda t: t.detach().double().cpu().numpy()  # noqa: E731
    nodes = {"input": nir.Input(input_type={"input": np.array(shape)})}
    names = ["input"]
    for i, m in enumerate(mods):
        if isinstance(m, nn.Conv2d):
            if len(shape) != 3 or shape[0] != m.in_channels:
                raise ConfigError(f"layer {i}: Conv2d({m.in_channels}, ...) after a layer of shape {shape}")
            pad = m.padding if isinstance(m.padding, str) else tuple(m.padding)
            node = nir.Conv2d(input_shape=shape[1:], weight=f64(m.weight), stride=tuple(m.stride), padding=pad,
                              dilation=tuple(m.dilation), groups=m.groups,
                              bias=f64(m.bias) if m.bias is not None else np.zeros(m.out_channels))
            shape = tuple(int(v) for v in node.output_type["output"])
        elif isinstance(m, (AvgPool2d, SumPool2d)):
            cls = nir.AvgPool2d if isinstance(m, AvgPool2d) else nir.SumPool2d
            node = cls(kernel_size=np.array(m.kernel_size), stride=np.array(m.stride), padding=np.array(m.padding))
            shape = (shape[0],) + tuple((s + 2 * p - k) // st + 1
                                        for s, k, st, p in zip(shape[1:], m.kernel_size, m.stride, m.padding))
        elif isinstance(m, (Flatten, nn.Flatten)):
            # NIR shapes have no batch axis: start_dim 0 flattens all features of a step
            node = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
            shape = (int(np.prod(shape)),)
        elif isinstance(m, nn.Linear):
            if shape != (m.in_features,):
                raise ConfigError(f"layer {i}: Linear({m.in_features}, ...) after a layer of shape {shape}")
            node = nir.Affine(weight=f64(m.weight), bias=f64(m.bias) if m.bias is not None else np.zeros(m.out_features))
            shape = (m.out_features,)
        elif isinstance(m, SpikingNeuron):
            if m.model.name not in _NEURON_NODE:
                raise ConfigError(f"neuron '{m.model.name}' has no NIR node (supported: {sorted(_NEURON_NODE)})")
            n = int(np.prod(shape))
            coefs = {c: np.broadcast_to(f64(v.reshape(-1) if v.dim() else v), (n,)).reshape(shape).copy()
                     for c, v in zip(m.model.coefs, m.coefficients())}
            node = _neuron_node(_IRLayer(m.model.name, None, None, coefs), dt, integration)
        else:
            raise ConfigError(f"layer {i}: {type(m).__name__} has no NIR node in a convolutional chain")
        name = f"{type(node).__name__.lower()}{i}"
        nodes[name] = node
        names.append(name)
    nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
    names.append("output")
    return nir.NIRGraph(nodes=nodes, edges=list(zip(names[:-1], names[1:])),
                        metadata={"neurodyn_dt_ms": float(dt), "neurodyn_integration": integration})


def _conv_from_nir(graph, dt: float | None, integration: str | None) -> nn.Sequential:
    """Modules for a chain graph with Conv2d / pooling / Flatten nodes (float64, eval mode)."""
    from .. import nn as ndn
    dt = dt if dt is not None else _meta(graph, "neurodyn_dt_ms")
    if dt is None:
        raise ConfigError("the NIR graph has no neurodyn_dt_ms metadata: pass dt (ms) to read it")
    dt, integration = float(dt), integration or _meta(graph, "neurodyn_integration", "exact")
    succ: dict[str, list[str]] = {k: [] for k in graph.nodes}
    for a, b in graph.edges:
        if a not in graph.nodes or b not in graph.nodes:
            raise ConfigError(f"NIR edge ({a}, {b}) names a node that is not in the graph")
        succ[a].append(b)
    inputs = [k for k, n in graph.nodes.items() if isinstance(n, nir.Input)]
    if len(inputs) != 1:
        raise ConfigError(f"the NIR graph must have exactly one Input node, got {len(inputs)}")
    mods: list[nn.Module] = []
    name = inputs[0]
    while True:
        if len(succ[name]) != 1:
            raise ConfigError(f"a convolutional NIR graph must be a chain; '{name}' has {len(succ[name])} successors")
        name = succ[name][0]
        node = graph.nodes[name]
        if isinstance(node, nir.Output):
            break
        if isinstance(node, nir.Conv2d):
            w = torch.from_numpy(np.asarray(node.weight, dtype=np.float64))
            m = ndn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=tuple(node.stride), padding=node.padding,
                           dilation=tuple(node.dilation), groups=int(node.groups)).double()
            with torch.no_grad():
                m.weight.copy_(w)
                m.bias.copy_(torch.from_numpy(np.asarray(node.bias, dtype=np.float64)))
            if node.input_shape is not None:
                m.input_size = tuple(int(v) for v in node.input_shape)
        elif isinstance(node, (nir.AvgPool2d, nir.SumPool2d)):
            cls = ndn.AvgPool2d if isinstance(node, nir.AvgPool2d) else ndn.SumPool2d
            pair = lambda v: tuple(int(a) for a in np.broadcast_to(np.asarray(v), (2,)))  # noqa: E731
            m = cls(pair(node.kernel_size), pair(node.stride), pair(node.padding))
        elif isinstance(node, nir.Flatten):
            # 0 per NIR (no batch axis); 1 as written by exporters that count the batch axis
            if node.end_dim != -1 or node.start_dim not in (0, 1):
                raise ConfigError(f"NIR Flatten '{name}' flattens dims {node.start_dim}..{node.end_dim}; "
                                  "neurodyn flattens all features of a step")
            m = ndn.Flatten()
        elif isinstance(node, (nir.Affine, nir.Linear)):
            w = torch.from_numpy(np.asarray(node.weight, dtype=np.float64))
            m = ndn.Linear(w.shape[1], w.shape[0], bias=isinstance(node, nir.Affine)).double()
            with torch.no_grad():
                m.weight.copy_(w)
                if isinstance(node, nir.Affine):
                    m.bias.copy_(torch.from_numpy(np.asarray(node.bias, dtype=np.float64)))
        elif isinstance(node, (nir.LIF, nir.CubaLIF, nir.LI)):
            model_name, coefs = _neuron_coefs(node, dt, integration)
            flat = {k: v.reshape(-1) for k, v in coefs.items()}
            m, fold = _neuron_module(model_name, flat, dt, integration)
            m = m.double()
            if not _close(fold, 1.0):
                prev = mods[-1] if mods else None
                if not isinstance(prev, (nn.Conv2d, nn.Linear)) or np.unique(fold).size != 1:
                    raise ConfigError(f"NIR neuron '{name}': its input scaling must follow a Conv2d/Affine and be "
                                      "one value for the layer")
                with torch.no_grad():
                    prev.weight.mul_(float(fold.flat[0]))
                    if prev.bias is not None:
                        prev.bias.mul_(float(fold.flat[0]))
        else:
            raise ConfigError(f"NIR node '{name}' ({type(node).__name__}) is not supported in a convolutional graph")
        mods.append(m)
    return nn.Sequential(*mods).double().eval()


def quantized_from_nir(graph) -> QuantizedNetwork:
    """Rebuild the exact QuantizedNetwork from a graph written by ``to_nir(quantized_network)``."""
    fields = {k[len("neurodyn_fmt_"):]: v for k, v in (graph.metadata or {}).items() if k.startswith("neurodyn_fmt_")}
    if not fields:
        raise ConfigError("the NIR graph carries no neurodyn fixed-point format: quantize(from_nir(graph)) instead")
    fmt = FixedPointFormat.from_dict(fields)
    layers, dt, _ = _ir_layers(graph, None, "exact")
    out = []
    for i, l in enumerate(layers):
        if l.quant is None or any(v is None for v in l.quant.values()):
            raise ConfigError(f"NIR layer {i} lacks neurodyn quantization metadata")
        s = float(l.quant["scale"])
        model = get_neuron(l.model_name)
        c = dict(l.coefs)
        if "syn_in" in c and not _close(c.pop("syn_in"), 1.0, 1e-6):
            raise ConfigError(f"NIR layer {i}: w_in does not match a quantized CUBA synapse")

        def mant(a, e):
            return round_half_away(np.asarray(a) * s / 2.0 ** int(e)).astype(np.int64)

        coefs = {}
        for name in model.coefs:
            v = c[name]
            kind = COEF_KINDS[name]
            q = v * fmt.one if kind == "fraction" else v * s if kind == "state" else v
            coefs[name] = round_half_away(q).astype(np.int64)
        init = tuple(coefs["v_rest"].copy() if st == "v" else np.zeros(l.weight.shape[1], np.int64)
                     for st in model.states)
        out.append(QuantizedLayer(
            model=model, weight=mant(l.weight, l.quant["weight_exp"]), weight_exp=int(l.quant["weight_exp"]),
            bias=mant(l.bias, l.quant["bias_exp"]), bias_exp=int(l.quant["bias_exp"]), coefs=coefs, init=init,
            scale=s, threshold_exp=int(l.quant["threshold_exp"]),
            recurrent=None if l.recurrent is None else mant(l.recurrent, l.quant["recurrent_exp"]),
            recurrent_exp=int(l.quant["recurrent_exp"]), delay=l.delay))
    return QuantizedNetwork(out, fmt, dt=dt)


def write_nir(obj, path: str | os.PathLike, **kw) -> Path:
    """Write ``to_nir(obj, **kw)`` (or a NIRGraph) to an HDF5 .nir file atomically."""
    _need_nir()
    graph = obj if isinstance(obj, nir.NIRGraph) else to_nir(obj, **kw)
    return write_atomic(path, lambda tmp: nir.write(tmp, graph))


def read_nir(path: str | os.PathLike):
    """Read a NIR file (the graph; turn it into modules with ``from_nir``)."""
    _need_nir()
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    try:
        return nir.read(path)
    except Exception as e:  # nir/h5py raise many kinds (OSError, KeyError, ValueError)
        raise DataFormatError(f"{path}: not a readable NIR file ({type(e).__name__}: {e})") from None


__all__ = ["from_nir", "quantized_from_nir", "read_nir", "to_nir", "write_nir"]

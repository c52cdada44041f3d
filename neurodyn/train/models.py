"""Models the trainer can build by name: a registry plus the built-in spiking MLP.

A config's ``[model]`` section names a ``kind`` and that kind's options.  Any package can add
a kind with ``register_model(name, builder, defaults)``; ``builder(n_in, n_classes, model_cfg,
dt_ms, backend)`` returns an ``nn.Module`` mapping ``x [T, B, n_in]`` to the readout
``[T, B, n_classes]`` (membrane or spikes).  ``defaults`` lists every option the kind accepts,
so unknown keys in a config are errors naming the key.  Packages that register kinds on import
are listed in ``MODEL_PACKAGES`` and imported the first time a kind is not found.
"""
from __future__ import annotations

import copy
import importlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import nn as ndn
from ..errors import ConfigError

Builder = Callable[[int, int, dict, float, str], nn.Module]

# Imported (if present) before a lookup of an unknown kind fails; each registers its kinds on import.
MODEL_PACKAGES: tuple[str, ...] = ("neurodyn.delays", "neurodyn.inference", "neurodyn.solvers", "neurodyn.export")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model kind: its builder and the options it accepts with their defaults."""

    name: str
    builder: Builder
    defaults: dict[str, Any] = field(default_factory=dict)


_MODELS: dict[str, ModelSpec] = {}
_plugins_loaded = False


def register_model(name: str, builder: Builder, defaults: Mapping[str, Any] | None = None, *,
                   replace: bool = False) -> None:
    """Make ``[model] kind = name`` build models with ``builder``.

    ``defaults`` maps every accepted option to its default (TOML types: str, int, float,
    bool, lists of them).  Registering a taken name is an error unless ``replace``.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"model kind must be an identifier string, got {name!r}")
    if not callable(builder):
        raise ConfigError(f"builder for model kind '{name}' is not callable")
    defaults = dict(defaults or {})
    if "kind" in defaults:
        raise ConfigError(f"model kind '{name}': 'kind' is reserved and cannot be an option")
    if name in _MODELS and not replace and _MODELS[name].builder is not builder:
        raise ConfigError(f"model kind '{name}' is already registered")
    _MODELS[name] = ModelSpec(name, builder, defaults)


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for pkg in MODEL_PACKAGES:
        try:
            importlib.import_module(pkg)
        except ModuleNotFoundError as e:
            # Only the package itself may be absent; a missing import inside it is a real error.
            if e.name is None or not (pkg == e.name or pkg.startswith(e.name + ".")):
                raise


def available_models() -> list[str]:
    """Names of all registered model kinds."""
    _load_plugins()
    return sorted(_MODELS)


def model_spec(kind: str) -> ModelSpec:
    """The registered spec of ``kind``; ConfigError listing the known kinds if there is none."""
    if kind not in _MODELS:
        _load_plugins()
    if kind not in _MODELS:
        raise ConfigError(f"unknown model kind '{kind}'; registered kinds: {', '.join(sorted(_MODELS))}")
    return _MODELS[kind]


def _type_ok(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple))
    return isinstance(value, type(default))


def resolve_model_config(model_cfg: Mapping[str, Any]) -> dict[str, Any]:
    """``{"kind": ..., options...}`` completed with the kind's defaults and checked.

    Unknown options and values of the wrong type raise ConfigError naming ``model.<key>``.
    """
    kind = model_cfg.get("kind", "mlp")
    if not isinstance(kind, str):
        raise ConfigError(f"model.kind must be a string, got {kind!r}")
    spec = model_spec(kind)
    out: dict[str, Any] = {"kind": kind, **copy.deepcopy(spec.defaults)}
    for key, value in model_cfg.items():
        if key == "kind":
            continue
        if key not in spec.defaults:
            raise ConfigError(f"unknown config key 'model.{key}' for model kind '{kind}'; "
                              f"options: {', '.join(sorted(spec.defaults)) or '(none)'}")
        if not _type_ok(value, spec.defaults[key]):
            raise ConfigError(f"model.{key} = {value!r}: expected {type(spec.defaults[key]).__name__} "
                              f"like the default {spec.defaults[key]!r}")
        if isinstance(spec.defaults[key], float):
            value = float(value)
        out[key] = list(value) if isinstance(value, tuple) else value
    return out


def build_model(model_cfg: Mapping[str, Any], n_in: int, n_classes: int, dt_ms: float,
                backend: str = "auto") -> nn.Module:
    """Build the model a ``[model]`` section describes: x [T, B, n_in] -> [T, B, n_classes]."""
    full = resolve_model_config(model_cfg)
    opts = {k: v for k, v in full.items() if k != "kind"}
    model = model_spec(full["kind"]).builder(int(n_in), int(n_classes), opts, float(dt_ms), backend)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"builder of model kind '{full['kind']}' returned {type(model).__name__}, not an nn.Module")
    return model


def spiking_mlp(in_features: int, hidden: list[int], n_classes: int, neuron: str = "lif", tau_mem: float = 20.0,
                tau_out: float = 20.0, dt: float = 1.0, dropout: float = 0.0, recurrent: bool = False,
                surrogate: str = "atan", backend: str = "auto", readout: str = "li",
                learn_tau: bool = False) -> ndn.Sequential:
    """x [T, B, in_features] -> readout [T, B, n_classes].

    Hidden layers: Linear (event-driven on sparse input) + neuron ('lif', 'cuba', 'alif');
    time constants in ms at step dt ms.  ``readout='li'``: leaky-integrator membrane;
    ``'lif'``: output spikes (for spike-count losses).  Runs unchanged in ``core.Network``.
    ``learn_tau``: the hidden neurons' time constants are trained (per neuron).
    Returns a ``neurodyn.nn.Sequential``: without recurrence, training runs the fused stack
    kernels (``nn.fused_stack``, dropout included); with it, the modules one by one.
    """
    if not hidden:
        raise ConfigError("spiking_mlp needs at least one hidden layer")
    if any(not isinstance(h, int) or isinstance(h, bool) or h < 1 for h in hidden):
        raise ConfigError(f"hidden sizes must be positive integers, got {hidden!r}")
    if readout not in ("li", "lif"):
        raise ConfigError(f"unknown readout '{readout}'; choose 'li' (membrane) or 'lif' (spikes)")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    layers: list[nn.Module] = []
    n = in_features
    for h in hidden:
        kw = dict(tau_mem=tau_mem, dt=dt, surrogate=surrogate, backend=backend, learn_tau=learn_tau)
        if learn_tau:  # learned time constants are one per neuron (a scalar would be one per layer)
            kw["size"] = h
        nrn = ndn.make_neuron(neuron, **kw)
        if recurrent:
            layers.append(ndn.Recurrent(n, h, nrn))
        else:
            layers += [ndn.Linear(n, h), nrn]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n = h
    layers.append(ndn.Linear(n, n_classes))
    if readout == "li":
        layers.append(ndn.LI(tau_mem=tau_out, dt=dt, backend=backend))
    else:
        layers.append(ndn.LIF(tau_mem=tau_out, dt=dt, surrogate=surrogate, backend=backend))
    return ndn.Sequential(*layers)


MLP_DEFAULTS: dict[str, Any] = {"hidden": [128], "neuron": "lif", "tau_mem": 20.0, "tau_out": 20.0, "dropout": 0.1,
                                "recurrent": False, "surrogate": "atan", "readout": "li", "learn_tau": False}


def _build_mlp(n_in: int, n_classes: int, cfg: dict, dt_ms: float, backend: str) -> nn.Module:
    return spiking_mlp(n_in, list(cfg["hidden"]), n_classes, neuron=cfg["neuron"], tau_mem=cfg["tau_mem"],
                       tau_out=cfg["tau_out"], dt=dt_ms, dropout=cfg["dropout"], recurrent=cfg["recurrent"],
                       surrogate=cfg["surrogate"], backend=backend, readout=cfg["readout"],
                       learn_tau=cfg["learn_tau"])


register_model("mlp", _build_mlp, MLP_DEFAULTS)


def conv_snn(in_features: int, n_classes: int, channels: list[int], kernel: int = 5, pool: int = 2,
             in_channels: int = 2, neuron: str = "lif", tau_mem: float = 20.0, tau_out: float = 20.0, dt: float = 1.0,
             dropout: float = 0.0, surrogate: str = "atan", backend: str = "auto", readout: str = "li",
             pool_kind: str = "avg") -> ndn.Sequential:
    """x [T, B, in_features] (flattened square frames of ``in_channels``, e.g. N-MNIST's
    2 x 34 x 34; or ``core.Events`` of them) -> readout [T, B, n_classes].

    Per entry of ``channels``: Conv2d (``kernel`` x ``kernel``, stride 1, no padding; event-driven
    on sparse input) + neuron + ``pool`` x ``pool`` pooling ('avg' or 'sum'); then Flatten,
    Linear and the readout ('li': membrane, 'lif': spikes).  Time constants in ms at step dt ms.
    """
    if not channels or any(not isinstance(c, int) or isinstance(c, bool) or c < 1 for c in channels):
        raise ConfigError(f"conv channels must be a non-empty list of positive integers, got {channels!r}")
    if kernel < 1 or pool < 1:
        raise ConfigError(f"kernel and pool must be >= 1, got kernel={kernel}, pool={pool}")
    if readout not in ("li", "lif"):
        raise ConfigError(f"unknown readout '{readout}'; choose 'li' (membrane) or 'lif' (spikes)")
    if pool_kind not in ("avg", "sum"):
        raise ConfigError(f"unknown pool_kind '{pool_kind}'; choose 'avg' or 'sum'")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"dropout must be in [0, 1), got {dropout!r}")
    side = round((in_features / in_channels) ** 0.5) if in_features % in_channels == 0 else 0
    if side * side * in_channels != in_features:
        raise ConfigError(f"conv model: {in_features} inputs are not {in_channels} square frames")
    pool_cls = ndn.AvgPool2d if pool_kind == "avg" else ndn.SumPool2d
    layers: list[nn.Module] = []
    c_in, size = in_channels, side
    for c in channels:
        if size - kernel + 1 < max(1, pool):
            raise ConfigError(f"conv model: a {size}x{size} map is too small for a {kernel}x{kernel} kernel "
                              f"and {pool}x{pool} pooling (channels {channels})")
        layers += [ndn.Conv2d(c_in, c, kernel, input_size=(size, size) if not layers else None),
                   ndn.make_neuron(neuron, tau_mem=tau_mem, dt=dt, surrogate=surrogate, backend=backend)]
        size = size - kernel + 1
        if pool > 1:
            layers.append(pool_cls(pool))
            size //= pool
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        c_in = c
    layers += [ndn.Flatten(), ndn.Linear(c_in * size * size, n_classes)]
    if readout == "li":
        layers.append(ndn.LI(tau_mem=tau_out, dt=dt, backend=backend))
    else:
        layers.append(ndn.LIF(tau_mem=tau_out, dt=dt, surrogate=surrogate, backend=backend))
    # torch's default init leaves sparse-input convolutions silent (no spikes, no gradient):
    # Gaussian weights scaled so that a neuron's summed input has the same spread whatever its
    # fan-in, for ~5% input activity and ~10% hidden activity (hidden layers then fire in ~10% of steps)
    activity = 0.05
    with torch.no_grad():
        for m in layers:
            if isinstance(m, ndn.Conv2d):
                m.weight.normal_(0.0, 2.0 / math.sqrt(m.weight[0].numel() * activity))
                m.bias.zero_()
                activity = 0.1
    return ndn.Sequential(*layers)


CONV_DEFAULTS: dict[str, Any] = {"channels": [12, 32], "kernel": 5, "pool": 2, "pool_kind": "avg", "in_channels": 2,
                                 "neuron": "lif", "tau_mem": 20.0, "tau_out": 20.0, "dropout": 0.0,
                                 "surrogate": "atan", "readout": "li"}


def _build_conv(n_in: int, n_classes: int, cfg: dict, dt_ms: float, backend: str) -> nn.Module:
    return conv_snn(n_in, n_classes, list(cfg["channels"]), kernel=cfg["kernel"], pool=cfg["pool"],
                    in_channels=cfg["in_channels"], neuron=cfg["neuron"], tau_mem=cfg["tau_mem"],
                    tau_out=cfg["tau_out"], dt=dt_ms, dropout=cfg["dropout"], surrogate=cfg["surrogate"],
                    backend=backend, readout=cfg["readout"], pool_kind=cfg["pool_kind"])


register_model("conv", _build_conv, CONV_DEFAULTS)

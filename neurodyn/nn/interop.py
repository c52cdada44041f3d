"""Convert SpikingJelly LIF neurons into neurodyn modules with matched dynamics."""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError
from .neurons import LIF

_SJ_SURROGATES = {"ATan": "atan", "Sigmoid": "sigmoid"}


def from_spikingjelly(node: nn.Module, backend: str = "auto") -> LIF:
    """A neurodyn LIF equal to a SpikingJelly ``LIFNode`` (multi-step, Euler, same surrogate).

    SpikingJelly: H = V + (X - (V - V_reset)) / tau (decay_input=True), hard reset to
    v_reset or soft reset (v_reset=None).  That is our LIF with integration='euler',
    dt=1, normalize_input=decay_input, v_rest=v_reset.
    """
    name = type(node).__name__
    if name not in ("LIFNode",):
        raise ConfigError(f"cannot convert SpikingJelly {name}; supported: LIFNode")
    if getattr(node, "detach_reset", False):
        raise ConfigError("SpikingJelly detach_reset=True is not supported (gradients would differ)")
    sg = type(node.surrogate_function).__name__
    if sg not in _SJ_SURROGATES:
        raise ConfigError(f"SpikingJelly surrogate {sg} has no neurodyn equivalent; supported: {sorted(_SJ_SURROGATES)}")
    hard = node.v_reset is not None
    v_reset = float(node.v_reset) if hard else 0.0
    return LIF(tau_mem=float(node.tau), dt=1.0, integration="euler", normalize_input=bool(node.decay_input),
               threshold=float(node.v_threshold), v_rest=v_reset, v_reset=v_reset,
               reset="zero" if hard else "subtract", surrogate=_SJ_SURROGATES[sg],
               alpha=float(node.surrogate_function.alpha), backend=backend)


def convert_spikingjelly(model: nn.Module, backend: str = "auto") -> nn.Module:
    """Replace every SpikingJelly LIFNode in ``model`` (in place) by its neurodyn equivalent.

    The model must run in multi-step mode ([T, B, ...] inputs), as neurodyn modules do.
    """
    for name, child in model.named_children():
        if type(child).__name__ == "LIFNode":
            setattr(model, name, from_spikingjelly(child, backend))
        else:
            convert_spikingjelly(child, backend)
    return model

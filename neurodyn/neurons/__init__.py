"""Neuron models, each defined once as a step function (see ``base.NeuronModel``)."""
from __future__ import annotations

from ..errors import ConfigError
from .alif import ALIF
from .base import NeuronModel
from .lif import CUBA, LI, LIF
from .surrogate import SURROGATES

NEURONS: dict[str, NeuronModel] = {m.name: m for m in (LIF, CUBA, ALIF, LI)}


def get_neuron(name: str) -> NeuronModel:
    """Look up a neuron model by name ('lif', 'cuba', 'alif', 'li')."""
    try:
        return NEURONS[name]
    except KeyError:
        raise ConfigError(f"unknown neuron '{name}'; choose one of {sorted(NEURONS)}") from None


__all__ = ["NEURONS", "NeuronModel", "get_neuron", "LIF", "CUBA", "ALIF", "LI", "SURROGATES"]

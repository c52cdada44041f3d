"""Ready models for event classification: an MLP of spiking layers with a leaky-integrator readout."""
from __future__ import annotations

from torch import nn

from .. import nn as ndn
from ..errors import ConfigError


def spiking_mlp(in_features: int, hidden: list[int], n_classes: int, neuron: str = "lif", tau_mem: float = 20.0,
                tau_out: float = 20.0, dt: float = 1.0, dropout: float = 0.0, recurrent: bool = False,
                surrogate: str = "atan", backend: str = "auto") -> nn.Sequential:
    """x [T, B, in_features] -> readout membrane [T, B, n_classes].

    Hidden layers: Linear (event-driven on sparse input) + neuron ('lif', 'cuba', 'alif');
    time constants in ms at step dt ms.  Runs unchanged in ``core.Network`` for inference.
    """
    if not hidden:
        raise ConfigError("spiking_mlp needs at least one hidden layer")
    layers: list[nn.Module] = []
    n = in_features
    for h in hidden:
        kw = dict(tau_mem=tau_mem, dt=dt, surrogate=surrogate, backend=backend, learn_tau=False)
        nrn = ndn.make_neuron(neuron, **kw)
        if recurrent:
            layers.append(ndn.Recurrent(n, h, nrn))
        else:
            layers += [ndn.Linear(n, h), nrn]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        n = h
    layers += [ndn.Linear(n, n_classes), ndn.LI(tau_mem=tau_out, dt=dt, backend=backend)]
    return nn.Sequential(*layers)

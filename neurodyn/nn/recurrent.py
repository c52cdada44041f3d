"""A recurrent spiking layer: feed-forward Linear + recurrent Linear (no bias) + a neuron.

The feed-forward part is one call for all T (event-driven when the input is sparse);
the neuron and its recurrence then run in one fused kernel for all T: Numba on CPU, and on
CUDA tensors the CUDA kernels generated from the same neuron definition (CuPy backend, one
thread block per sample); both add the weight rows of last step's spikes, and the backward
sends input gradients back through the weights.  backend='torch' runs the reference step
loop.  Inference in ``core.Network`` adds the recurrent weight rows of last step's spikes
the same way.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from .linear import Linear
from .neurons import SpikingNeuron


class Recurrent(nn.Module):
    """x [T, B, in_features] -> spikes [T, B, out_features] with recurrent input W_rec s[t-1]."""

    def __init__(self, in_features: int, out_features: int, neuron: SpikingNeuron, bias: bool = True) -> None:
        super().__init__()
        if not isinstance(neuron, SpikingNeuron) or not neuron.model.spiking:
            raise ConfigError("Recurrent needs a spiking neuron module (LIF, CUBALIF, ALIF)")
        self.ff = Linear(in_features, out_features, bias=bias)
        self.rec = nn.Linear(out_features, out_features, bias=False)
        self.neuron = neuron

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.ff.in_features:
            raise ShapeError(f"Recurrent expects [T, B, {self.ff.in_features}], got {tuple(x.shape)}")
        return self.neuron.run(self.ff(x), lengths=lengths, rec_weight=self.rec.weight)[0]

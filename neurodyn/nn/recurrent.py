"""A recurrent spiking layer: feed-forward Linear + recurrent Linear (no bias) + a neuron.

Training runs the neuron's derived step (torch reference) in a loop over time, since
the recurrence couples neurons within a step; the feed-forward part is one call for
all T (event-driven when the input is sparse).  Inference in ``core.Network`` adds the
recurrent weight rows of last step's spikes.
"""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from ..kernels.reference import torch_step
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
        cur = self.ff(x)
        T, B, N = cur.shape
        nrn = self.neuron
        step = torch_step(nrn.model, nrn.surrogate, nrn.alpha)
        coefs = tuple(c.to(cur.dtype) for c in nrn.coefficients())
        state = nrn.initial_state(B, N, cur)
        s = torch.zeros((B, N), dtype=cur.dtype)
        outs = []
        for t in range(T):
            o, *new = step(cur[t] + self.rec(s), *state, *coefs)
            if lengths is not None:
                m = (t < lengths).to(cur.dtype)[:, None]
                o = o * m
                new = [m * n + (1 - m) * st for n, st in zip(new, state)]
            outs.append(o)
            state, s = tuple(new), o
        return torch.stack(outs)

"""Connections for multi-step tensors: a Linear that propagates events, and a time-folding wrapper."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


class Linear(nn.Linear):
    """``torch.nn.Linear`` that adds weight rows of active inputs when the input is sparse.

    Works on any [..., in_features] tensor, e.g. [T, B, F] spike trains.  ``event``:
    'auto' uses the event path on CPU when it is expected to be faster than a dense matmul
    (``sparse_linear.prefer_events``: input density, estimated on a few rows of the batch,
    against the output width), capped at ``max_density``; True forces it (CPU), False never
    uses it.  Both paths compute the same function and gradients.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, event: bool | str = "auto",
                 max_density: float = 0.1, **kw) -> None:
        super().__init__(in_features, out_features, bias=bias, **kw)
        if event not in (True, False, "auto"):
            raise ConfigError(f"event must be True, False or 'auto', got {event!r}")
        self.event, self.max_density = event, float(max_density)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.event is False or x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) \
                or x.numel() == 0:
            return super().forward(x)
        from ..kernels.sparse_linear import event_linear, prefer_events, sampled_density
        if self.event is True:
            return event_linear(x, self.weight, self.bias)
        d = sampled_density(x)
        if d <= self.max_density and prefer_events(d, self.out_features):
            return event_linear(x, self.weight, self.bias)
        return super().forward(x)


class MultiStep(nn.Module):
    """Apply a stateless module (Conv2d, BatchNorm2d, pooling...) to [T, B, ...] by folding T into B."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        y = self.module(x.reshape(T * B, *x.shape[2:]))
        return y.reshape(T, B, *y.shape[1:])

"""Connections for multi-step tensors: a Linear that propagates events, and a time-folding wrapper."""
from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError


class Linear(nn.Linear):
    """``torch.nn.Linear`` that adds weight rows of active inputs when the input is sparse.

    Works on any [..., in_features] tensor, e.g. [T, B, F] spike trains.  ``event``:
    'auto' uses the event path on CPU when at most ``max_density`` of the inputs are
    nonzero (measured on the batch), True forces it (CPU), False never uses it.  Both
    paths compute the same function and gradients.
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
        from ..kernels.sparse_linear import csr_counts, event_linear
        # Counting the nonzeros per row is the first half of building the event list, so the
        # density check costs nothing extra when the event path is taken.
        indptr = csr_counts(x.detach().reshape(-1, x.shape[-1]).contiguous().numpy())
        if self.event is True or indptr[-1] <= self.max_density * x.numel():
            return event_linear(x, self.weight, self.bias, indptr)
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

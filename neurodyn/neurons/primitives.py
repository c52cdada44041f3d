"""The primitive functions a step is written in, bound once per backend.

The same step source (see ``symbolic.py``) is executed in one of these namespaces:
torch tensors with autograd (the reference) here; Numba scalars in kernels/numba_prims.py.
"""
from __future__ import annotations

import inspect
import math
import textwrap
from functools import lru_cache
from typing import Callable

import torch

from .surrogate import SURROGATES, check_surrogate
from .symbolic import compile_source


def _surrogate_source(name: str) -> str:
    return textwrap.dedent(inspect.getsource(SURROGATES[name]))


# ---------------------------------------------------------------- torch (reference)

_TORCH_BASE = {
    "exp": torch.exp,
    "log": torch.log,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "sigmoid_": torch.sigmoid,
    "abs_": torch.abs,
    "relu": torch.relu,
    "PI": math.pi,
}


class _SpikeFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, grad_fn):  # noqa: D401
        ctx.save_for_backward(u)
        ctx.grad_fn = grad_fn
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g * ctx.grad_fn(u), None


@lru_cache(maxsize=None)
def torch_namespace(surrogate: str = "atan", alpha: float | None = None) -> dict:
    """Primitives for the torch reference path; ``spike`` uses the given surrogate."""
    name, a = check_surrogate(surrogate, alpha)
    sg = compile_source(_surrogate_source(name), name, _TORCH_BASE)

    def spike_grad(u: torch.Tensor) -> torch.Tensor:
        return sg(u, a)

    def spike(u: torch.Tensor) -> torch.Tensor:
        return _SpikeFn.apply(u, spike_grad)

    return {**_TORCH_BASE, "spike": spike, "spike_grad": spike_grad}


# Numba scalars: see neurodyn/kernels/numba_prims.py (a real module, so Numba can cache it).


def render(src: str, name: str, namespace: dict) -> Callable:
    """Compile generated step/VJP source against a backend namespace."""
    return compile_source(src, name, namespace)

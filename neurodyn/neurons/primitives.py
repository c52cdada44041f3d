"""The primitive functions a step is written in, bound once per backend.

The same step source (see ``symbolic.py``) is executed in one of these namespaces:
torch tensors with autograd (the reference), or scalars compiled by Numba.
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


# ---------------------------------------------------------------- numba (CPU scalars)

@lru_cache(maxsize=None)
def numba_namespace(surrogate: str = "atan", alpha: float | None = None) -> dict:
    """Primitives as inlined Numba scalar functions; ``spike_grad`` has alpha baked in."""
    import numba

    name, a = check_surrogate(surrogate, alpha)
    jit = numba.njit(inline="always", fastmath=False, cache=False)

    @jit
    def sigmoid_(x):
        # Stable for large |x|; one exp either way.
        if x >= 0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)

    @jit
    def abs_(x):
        return abs(x)

    @jit
    def relu(x):
        return x if x > 0 else 0.0 * x

    @jit
    def spike(u):
        return 1.0 if u >= 0 else 0.0

    base = {
        "exp": math.exp, "log": math.log, "tanh": math.tanh,
        "sigmoid": sigmoid_, "sigmoid_": sigmoid_, "abs_": abs_, "relu": relu, "PI": math.pi,
    }
    sg = jit(compile_source(_surrogate_source(name), name, base))

    @jit
    def spike_grad(u):
        return sg(u, a)

    return {**base, "spike": spike, "spike_grad": spike_grad}


def render(src: str, name: str, namespace: dict) -> Callable:
    """Compile generated step/VJP source against a backend namespace."""
    return compile_source(src, name, namespace)

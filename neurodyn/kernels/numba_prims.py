"""Scalar primitives for generated Numba kernels (a real module, so Numba can cache them)."""
from __future__ import annotations

import math

import numba

_inl = numba.njit(inline="always", cache=True, error_model="numpy")


@_inl
def sigmoid_(x):
    # Stable for large |x|: only ever exp of a non-positive number.
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


@_inl
def abs_(x):
    return abs(x)


@_inl
def relu(x):
    return x if x > 0 else 0.0 * x


@_inl
def spike(u):
    return 1.0 if u >= 0 else 0.0

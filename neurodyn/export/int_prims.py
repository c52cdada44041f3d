"""Integer primitives of the fixed-point step, written once for Numba scalars and numpy arrays.

Each is a Numba ``njit(inline='always')`` function; the numpy reference simulator calls the
very same Python source through ``.py_func`` on whole [B, N] int64 arrays.  So the kernel and
the reference cannot disagree about rounding or saturation.  ``>>`` on int64 is an
arithmetic shift (floor division by a power of two) in both numpy and LLVM.
"""
from __future__ import annotations

import numba
import numpy as np

_inl = numba.njit(inline="always", cache=True)


@_inl
def spike(u):
    """H(u) = 1 if u >= 0 else 0, as an integer."""
    return (u >= 0) * 1


@_inl
def sat(x, lo, hi):
    """Clamp to [lo, hi] (saturating arithmetic)."""
    return np.minimum(np.maximum(x, lo), hi)


@_inl
def qmul_trunc(c, x, f):
    """c * x / 2**f rounded toward zero (Loihi's decay, lava's sign(p) * (|p| >> f))."""
    # Branch-free: an arithmetic shift floors, so negative products first get 2**f - 1 added.
    p = c * x
    return (p + ((p >> 63) & ((1 << f) - 1))) >> f


@_inl
def qmul_floor(c, x, f):
    """c * x / 2**f rounded toward -inf (a plain arithmetic shift)."""
    return (c * x) >> f


@_inl
def qmul_nearest(c, x, f):
    """c * x / 2**f rounded to nearest, ties toward +inf."""
    return (c * x + (1 << (f - 1))) >> f


QMUL = {"trunc": "qmul_trunc", "floor": "qmul_floor", "nearest": "qmul_nearest"}


def numpy_namespace() -> dict:
    """The primitives as plain Python functions (same source) for numpy arrays."""
    return {"np": np, "spike": spike.py_func, "sat": sat.py_func, "qmul_trunc": qmul_trunc.py_func,
            "qmul_floor": qmul_floor.py_func, "qmul_nearest": qmul_nearest.py_func}

"""Pooling of event frames: each input event adds its value to the windows that hold it.

For a [C, H, W] frame pooled with windows kh x kw, stride (sh, sw) and zero padding (ph, pw),
pooled cell (c, i, j) sums the inputs (c, y, x) with i*sh - ph <= y < i*sh - ph + kh (and the
same along x); average pooling divides by kh * kw (padding counted, as torch's
``count_include_pad`` and NIR's AvgPool2d), sum pooling does not.  Events arrive in increasing
input index, so each cell's sum is taken in the row-major order of torch's pooling loop.

The geometry travels as one int64 array ``g`` (``pool_geometry``): C, H, W, kh, kw, sh, sw,
ph, pw, Ho, Wo, divide.
"""
from __future__ import annotations

import numba
import numpy as np

from .sparse_conv import out_size


def pool_geometry(shape: tuple[int, int, int], kernel: tuple[int, int], stride: tuple[int, int],
                  padding: tuple[int, int], divide: bool) -> np.ndarray:
    """The kernels' int64 geometry array of a pooling of [C, H, W] frames (see the module docstring)."""
    C, H, W = shape
    Ho, Wo = out_size(H, kernel[0], stride[0], padding[0]), out_size(W, kernel[1], stride[1], padding[1])
    return np.array([C, H, W, *kernel, *stride, *padding, Ho, Wo, int(divide)], dtype=np.int64)


@numba.njit(cache=True, error_model="numpy")
def pool_events(buf, g, idx, val, e0: int, e1: int) -> None:
    """buf [C * Ho * Wo] += val[e] in every window holding input idx[e] (flattened (c, y, x)),
    for the events e0 <= e < e1."""
    H, W, kh, kw, sh, sw, ph, pw, Ho, Wo = g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10]
    HW = H * W
    for e in range(e0, e1):
        k = idx[e]
        c = k // HW
        r = k - c * HW
        y = r // W + ph
        x = r - (r // W) * W + pw
        # windows i with i*sh <= y < i*sh + kh (Python's floor division: the bounds may be negative)
        i0 = max(0, (y - kh) // sh + 1)
        i1 = min(Ho - 1, y // sh)
        j0 = max(0, (x - kw) // sw + 1)
        j1 = min(Wo - 1, x // sw)
        a = val[e]
        for i in range(i0, i1 + 1):
            row = (c * Ho + i) * Wo
            for j in range(j0, j1 + 1):
                buf[row + j] += a


@numba.njit(cache=True, error_model="numpy")
def pooled_events(buf, g, pidx, pval) -> int:
    """The nonzero cells of a pooled frame ``buf`` as events (pidx, pval, in increasing index;
    values divided by the window area for average pooling); buf is zeroed.  Returns their count."""
    area = g[3] * g[4]
    divide = g[11] != 0
    n = 0
    for k in range(buf.shape[0]):
        s = buf[k]
        if s != 0.0:
            pidx[n] = k
            pval[n] = s / area if divide else s
            n += 1
            buf[k] = 0.0
    return n


__all__ = ["pool_geometry", "pool_events", "pooled_events"]

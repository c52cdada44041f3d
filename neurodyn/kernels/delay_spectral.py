"""Input gradient of spread-delay synapses with wide windows through a real DFT over time (CPU).

The input gradient of y[t, b, o] = sum_i sum_k kern[k, o, i] x[t - k, b, i] (t < T, K taps) is
gx[t, b, i] = sum_o sum_k kern[k, o, i] gy[t + k, b, o]: K matrix products of T x B rows when
every synapse has all K taps (sigma not yet decayed).  In the frequency domain of a length
L = T + K - 1 transform (long enough that nothing wraps around) it is one [B, O] x [O, I]
complex product per frequency, F = L // 2 + 1 of them: with T ~ 4 K the arithmetic is about
4 F / (K T) ~ 1/10 of the K products, plus the transforms, which are matrix products too
(DFT matrices, no FFT: the sizes are small and the layouts then need no transposes).

The map is written as the exact adjoint of the forward transform pipeline (real and imaginary
parts as separate real matrices), so the result equals the time-domain sum up to float
rounding (relative ~1e-6 of the largest entry in float32, measured).
"""
from __future__ import annotations

import functools
import math

import numba
import torch
from numba import prange

# Frequencies per block of the kernel's spectrum (bounds its [2 f, O * I] buffer).
FREQ_BLOCK = 12


@functools.lru_cache(maxsize=16)
def _dft(T: int, K: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DFT matrices of the length-L transform, L = T + K - 1, F = L // 2 + 1 frequencies:
    to_gy [2F, T] (gy's spectrum: the adjoint of the real inverse transform, real rows then
    imaginary), of_kern [2F, K] (the kernel's forward transform), back [T, 2F] (the adjoint of
    x's forward transform).  Computed in float64, returned in dtype."""
    L = T + K - 1
    F = L // 2 + 1
    ang = 2.0 * math.pi * torch.outer(torch.arange(F, dtype=torch.float64), torch.arange(L, dtype=torch.float64)) / L
    cos, sin = torch.cos(ang), torch.sin(ang)
    w = torch.full((F, 1), 2.0, dtype=torch.float64)  # real inverse: both halves of the spectrum
    w[0] = 1.0
    if L % 2 == 0:
        w[-1] = 1.0
    to_gy = torch.cat([w * cos[:, :T], -w * sin[:, :T]], 0) / L
    of_kern = torch.cat([cos[:, :K], -sin[:, :K]], 0)
    back = torch.cat([cos[:, :T].T, -sin[:, :T].T], 1)
    return to_gy.to(dtype).contiguous(), of_kern.to(dtype).contiguous(), back.to(dtype).contiguous()


@numba.njit(parallel=True, cache=True)
def spread_kernel_koi(start, coef, kern):
    # kern [K, O, I] (every element written): kern[k, o, i] = coef[o, i, k - start[o, i]] inside the
    # window, else 0.  Written tap by tap, contiguous over inputs (scattering each synapse's taps
    # K x O x I apart measured 3.5x slower at 256 x 256 synapses, 26 taps).
    O, I, Wn = coef.shape
    K = kern.shape[0]
    for k in prange(K):
        for o in range(O):
            kr = kern[k, o]
            for i in range(I):
                j = k - start[o, i]
                kr[i] = coef[o, i, j] if 0 <= j < Wn else 0.0


def spectral_cost(T: int, B: int, I: int, O: int, K: int) -> float:
    """Multiply-adds of ``spectral_input_grad`` (the K matrix products take K T B O I)."""
    F2 = 2 * ((T + K - 1) // 2 + 1)
    return F2 * (K * O * I + T * B * O + 2 * B * O * I + T * B * I)


def spectral_input_grad(gy: torch.Tensor, kern: torch.Tensor) -> torch.Tensor:
    """gx [T, B, I] = sum_k gy[t + k] @ kern[k] (gy [T, B, O] zero from step T on, kern
    [K, O, I]), through the length T + K - 1 real DFT."""
    T, B, O = gy.shape
    K, I = kern.shape[0], kern.shape[2]
    to_gy, of_kern, back = _dft(T, K, gy.dtype)
    F = to_gy.shape[0] // 2
    spec = (to_gy @ gy.reshape(T, B * O)).reshape(2, F, B, O)     # gy's spectrum (re, im)
    gxs = torch.empty((2, F, B, I), dtype=gy.dtype)
    k2 = kern.reshape(K, O * I)
    for f0 in range(0, F, FREQ_BLOCK):
        f1 = min(F, f0 + FREQ_BLOCK)
        rows = torch.cat([of_kern[f0:f1], of_kern[F + f0:F + f1]], 0)
        ks = (rows @ k2).reshape(2, f1 - f0, O, I)                   # the kernels' spectrum (re, im)
        gr, gi = spec[0, f0:f1], spec[1, f0:f1]
        # the adjoint of (x_re, x_im) -> (x_re k_re - x_im k_im, x_re k_im + x_im k_re)
        torch.baddbmm(torch.bmm(gr, ks[0]), gi, ks[1], out=gxs[0, f0:f1])
        torch.baddbmm(torch.bmm(gi, ks[0]), gr, ks[1], alpha=-1, out=gxs[1, f0:f1])
    return (back @ gxs.reshape(2 * F, B * I)).reshape(T, B, I)

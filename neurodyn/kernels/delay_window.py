"""Spread-delay synapses over each synapse's tap window, event-driven on CPU (Numba).

The DCLS synapse (``nn.delays``) from input i to output o is W[o, i] times a Gaussian of
width sigma (steps) centred at the delay d[o, i], normalised over the K = max_delay + 1 taps:

    y[t, b, o] = sum_i W[o, i] sum_k g(k; d[o, i], sigma) x[t - k, b, i].

Once sigma is small (most of training, after the width has decayed) a synapse's taps are
numerically zero a few sigma away from its delay.  Here every synapse keeps only its window
of taps k with g_k >= tol * max_j g_j (``window_taps``; tol = 2^-24 in float32, 2^-53 in
float64, the unit roundoff of the taps' sum), renormalised over the window.  Each dropped tap
is below tol of the taps' sum and the dropped mass is below (K - 1) tol, so the result is the
full kernel's up to float rounding; with sigma >= ~K / 6 (float32) every window is all K taps.
Synapses share one window length Wn (the longest): a synapse's taps are ``start[o, i] + j``,
j < Wn, zero past its own window.

Cost, for E input events, T x B steps, I inputs and O outputs: the forward pass and the
kernel gradient run over the events with the [I, K, O] kernel (E x K x O, vectorized over taps
and outputs: a scalar scatter over the Wn window taps alone measured no faster); the input
gradient sums shifted rows of gy over the windows, T x B x I x O x Wn, instead of K matrix
products.  The taps, their derivatives with respect to the delays and the chain from the
kernel gradient to the weight and delay gradients run in Numba over the windows, so no
[O, I, K] autograd graph is built.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import prange

from .delay_conv import _conv_events, _input_grad, _kernel_grad_events
from .sparse_linear import to_csr

# Per-dtype tap cut-off: the unit roundoff of a sum of taps that is 1.
TAP_TOL = {torch.float32: 2.0 ** -24, torch.float64: 2.0 ** -53}
# gx loops over the window four taps per pass (an unrolled, vectorizable pass over time).
_PASS = 4
# Longest (padded) window for which the windowed input gradient beats K matrix products
# (measured at 256 x 256 synapses, 26 taps, T 102, batch 32, one thread).
WINDOWED_INPUT_GRAD_MAX_TAPS = 8


@numba.njit(cache=True)
def _window_bounds(d, sigma, K, log_inv_tol):
    # First and last tap of every synapse's window: taps k with
    # (k - d)^2 <= (k* - d)^2 + 2 sigma^2 ln(1/tol), k* the nearest tap (the largest g_k).
    O, I = d.shape
    lo = np.empty((O, I), dtype=np.int32)
    hi = np.empty((O, I), dtype=np.int32)
    for o in range(O):
        for i in range(I):
            c = d[o, i]
            near = min(max(math.floor(c + 0.5), 0.0), K - 1.0)
            r = math.sqrt((near - c) ** 2 + 2.0 * sigma * sigma * log_inv_tol)
            lo[o, i] = int(max(math.ceil(c - r), 0.0))
            hi[o, i] = int(min(math.floor(c + r), K - 1.0))
    return lo, hi


@numba.njit(parallel=True, cache=True)
def _window_taps(d, sigma, lo, hi, g, dg):
    # g[o, i, j]: normalised Gaussian at tap lo + j (softmax of z_k = -(k - d)^2 / (2 sigma^2)
    # over the window, shifted by the nearest tap's z against underflow); dg = d g / d d
    # = g_k (u_k - sum_j g_j u_j) with u_k = (k - d) / sigma^2.  float64 inside.
    O, I, Wn = g.shape
    inv_s2 = 1.0 / (sigma * sigma)
    for o in prange(O):
        for i in range(I):
            c = d[o, i]
            n = hi[o, i] - lo[o, i] + 1
            near = min(max(math.floor(c + 0.5), 0.0), lo[o, i] + n - 1.0)
            zmax = -0.5 * (near - c) ** 2 * inv_s2
            tot = 0.0
            mean_u = 0.0
            for j in range(n):
                u = lo[o, i] + j - c
                e = math.exp(-0.5 * u * u * inv_s2 - zmax)
                g[o, i, j] = e
                tot += e
                mean_u += e * u
            mean_u *= inv_s2 / tot
            for j in range(n):
                gj = g[o, i, j] / tot
                g[o, i, j] = gj
                dg[o, i, j] = gj * ((lo[o, i] + j - c) * inv_s2 - mean_u)
            for j in range(n, Wn):
                g[o, i, j] = 0.0
                dg[o, i, j] = 0.0


def window_taps(delay: torch.Tensor, sigma: float, max_delay: int, tol: float | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Windowed normalised Gaussian taps of delays [O, I] (steps, in [0, max_delay]).

    Returns start [O, I] int32 (first tap), g [O, I, Wn] (tap start + j; zero past the
    synapse's window) and dg = d g / d delay [O, I, Wn], in delay's dtype; Wn is the longest
    window, padded up to a multiple of 4.  sigma 0: one tap at round(d) (torch's rounding, half
    to even), dg = 0.  tol: relative cut-off (default ``TAP_TOL`` of the dtype).
    """
    if delay.dim() != 2:
        raise ValueError(f"window_taps: delays must be [O, I], got {tuple(delay.shape)}")
    if not (math.isfinite(sigma) and sigma >= 0):
        raise ValueError(f"window_taps: sigma must be a finite number of steps >= 0, got {sigma!r}")
    dtype = delay.dtype
    tol = TAP_TOL.get(dtype, 2.0 ** -53) if tol is None else tol
    if not 0 < tol < 1:
        raise ValueError(f"window_taps: tol must be in (0, 1), got {tol!r}")
    d = delay.detach().cpu()
    np_dt = np.float64 if dtype == torch.float64 else np.float32
    O, I = d.shape
    if sigma == 0:
        start = torch.round(d).clamp(0, max_delay).to(torch.int32).numpy()
        g = np.zeros((O, I, _PASS), dtype=np_dt)
        g[:, :, 0] = 1.0
        return np.ascontiguousarray(start), g, np.zeros_like(g)
    d64 = np.ascontiguousarray(d.to(torch.float64).numpy())
    lo, hi = _window_bounds(d64, float(sigma), max_delay + 1, math.log(1.0 / tol))
    n = int((hi - lo).max()) + 1 if lo.size else 1
    wn = -(-n // _PASS) * _PASS
    g = np.empty((O, I, wn), dtype=np.float64)
    dg = np.empty((O, I, wn), dtype=np.float64)
    _window_taps(d64, float(sigma), lo, hi, g, dg)
    return lo, g.astype(np_dt, copy=False), dg.astype(np_dt, copy=False)


def window_length(delay: torch.Tensor, sigma: float, max_delay: int) -> int:
    """Taps per synapse that ``window_taps`` keeps (the longest window, unpadded)."""
    if sigma == 0 or delay.numel() == 0:
        return 1
    tol = TAP_TOL.get(delay.dtype, 2.0 ** -53)
    d64 = np.ascontiguousarray(delay.detach().cpu().to(torch.float64).numpy())
    lo, hi = _window_bounds(d64, float(sigma), max_delay + 1, math.log(1.0 / tol))
    return int((hi - lo).max()) + 1


@numba.njit(parallel=True, cache=True)
def _spread_kernel(start, coef, kern):
    # kern [I, K, O] (zeroed): kern[i, start[o, i] + j, o] = coef[o, i, j] for taps inside [0, K).
    O, I, Wn = coef.shape
    K = kern.shape[1]
    for i in prange(I):
        for o in range(O):
            s = start[o, i]
            for j in range(min(Wn, K - s)):
                kern[i, s + j, o] = coef[o, i, j]


@numba.njit(parallel=True, cache=True)
def _chain_grads(gkern, start, g, dg, gw, gd):
    # Through kern[i, k, o] = W[o, i] g_k: gw[o, i] = sum_j gkern[i, start + j, o] g_j and
    # gd[o, i] = sum_j gkern[i, start + j, o] dg_j (times W outside), over the window only.
    O, I, Wn = g.shape
    K = gkern.shape[1]
    for o in prange(O):
        for i in range(I):
            s = start[o, i]
            acc_g = 0.0
            acc_d = 0.0
            for j in range(min(Wn, K - s)):
                v = gkern[i, s + j, o]
                acc_g += v * g[o, i, j]
                acc_d += v * dg[o, i, j]
            gw[o, i] = acc_g
            gd[o, i] = acc_d


@numba.njit(parallel=True, cache=True)
def _win_input_grad(gyt, start_t, coef_t, steps, gxt):
    # gx[t, b, i] = sum_o sum_j coef[o, i, j] gy[t + start[o, i] + j, b, o]: per (b, i) a
    # sum of shifted rows of gy[b, o, :], four taps per pass (vectorizes over t).
    # gyt [B, O, T + pad] (zero from step T on), start_t [I, O], coef_t [I, O, Wn], gxt [B, I, T].
    B, O, _ = gyt.shape
    I, T = gxt.shape[1], gxt.shape[2]
    Wn = coef_t.shape[2]
    for b in prange(B):
        n = steps[b]  # gx is zero from the last step with a gradient on
        acc = np.zeros(T, dtype=gxt.dtype)
        for i in range(I):
            acc[:] = 0.0
            for o in range(O):
                c = coef_t[i, o]
                for j in range(0, Wn, 4):
                    c0, c1, c2, c3 = c[j], c[j + 1], c[j + 2], c[j + 3]
                    src = gyt[b, o, start_t[i, o] + j:]
                    for t in range(n):
                        acc[t] += c0 * src[t] + c1 * src[t + 1] + c2 * src[t + 2] + c3 * src[t + 3]
            gxt[b, i, :] = acc


def _grad_steps(gy: torch.Tensor) -> np.ndarray:
    """Per sample, 1 + the last step at which gy [T, B, O] is nonzero (0 if none): later steps
    carry no gradient (padding past a sample's length)."""
    T = gy.shape[0]
    live = (gy != 0).any(dim=2)  # [T, B]
    last = torch.where(live, torch.arange(1, T + 1).unsqueeze(1), torch.zeros((), dtype=torch.long))
    return np.ascontiguousarray(last.max(dim=0).values.numpy().astype(np.int64))


class SpreadDelayFn(torch.autograd.Function):
    """y [T, B, O] = DCLS synapses (weight [O, I], delays [O, I] steps in [0, max_delay], width
    sigma steps) applied to x [T, B, I], CPU float32/float64, x mostly zero.  Gradients for x,
    weight and delays (not sigma).

    The taps and their derivatives come from ``window_taps``.  Forward and kernel gradient run
    over the input events with the [I, K, O] kernel (contiguous over taps and outputs, so
    vectorized; zeros outside the windows cost as much as taps, but a scatter over the
    windows alone measured slower); the weight and delay gradients are read off the kernel
    gradient over each window.  The input gradient, dense, sums shifted rows of gy over the
    windows (``_win_input_grad``) when they are short, else K matrix products.
    """

    @staticmethod
    def forward(ctx, x, weight, delay, sigma, max_delay):  # noqa: D401
        T, B, I = x.shape
        O, K = weight.shape[0], max_delay + 1
        start, g, dg = window_taps(delay, sigma, max_delay)
        coef = g * weight.detach().contiguous().numpy()[:, :, None]
        kern = torch.zeros((I, K, O), dtype=x.dtype)
        _spread_kernel(start, coef, kern.numpy())
        csr = to_csr(x.detach().contiguous().reshape(T * B, I).numpy())
        y = torch.zeros((B, T * O), dtype=x.dtype)
        _conv_events(*csr, T, kern.numpy().reshape(I, K * O), y.numpy())
        ctx.csr, ctx.taps = csr, (start, g, dg, coef)
        ctx.save_for_backward(weight, kern)
        return y.reshape(B, T, O).transpose(0, 1)

    @staticmethod
    def backward(ctx, gy):
        weight, kern = ctx.saved_tensors
        start, g, dg, coef = ctx.taps
        T, B, O = gy.shape
        I, K = kern.shape[0], kern.shape[1]
        gy = gy.contiguous()
        gx = gw = gd = None
        if ctx.needs_input_grad[0]:
            n_taps = g.shape[2]
            if n_taps <= WINDOWED_INPUT_GRAD_MAX_TAPS:
                gyt = torch.zeros((B, O, T + K + n_taps), dtype=gy.dtype)  # reads reach T - 1 + K - 1 + n_taps
                gyt[:, :, :T] = gy.permute(1, 2, 0)
                gxt = torch.empty((B, I, T), dtype=gy.dtype)
                _win_input_grad(gyt.numpy(), np.ascontiguousarray(start.T),
                                np.ascontiguousarray(coef.transpose(1, 0, 2)), _grad_steps(gy), gxt.numpy())
                gx = gxt.permute(2, 0, 1)
            else:
                gx = _input_grad(gy, kern)
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            gk = torch.zeros((I, K * O), dtype=gy.dtype)
            gyb = gy.transpose(0, 1).contiguous().reshape(B, T * O)
            blocks = max(1, min(numba.get_num_threads(), K * O))
            _kernel_grad_events(*ctx.csr, T, gyb.numpy(), gk.numpy(), blocks)
            gw = torch.empty((O, I), dtype=gy.dtype)
            gd = torch.empty((O, I), dtype=gy.dtype)
            _chain_grads(gk.numpy().reshape(I, K, O), start, g, dg, gw.numpy(), gd.numpy())
            gd = gd * weight.detach()
        return gx, gw, gd, None, None


def spread_delay_linear(x: torch.Tensor, weight: torch.Tensor, delay: torch.Tensor, sigma: float,
                        max_delay: int) -> torch.Tensor:
    """DCLS synapses, event-driven: x [T, B, I] (CPU float32/float64, mostly zero), weight and
    delay [O, I] (steps, in [0, max_delay]; the caller clamps), sigma steps -> y [T, B, O]."""
    if x.dim() != 3 or weight.dim() != 2 or x.shape[2] != weight.shape[1] or delay.shape != weight.shape:
        raise ValueError(f"spread_delay_linear: x [T, B, I], weight and delay [O, I] expected; got x "
                         f"{tuple(x.shape)}, weight {tuple(weight.shape)}, delay {tuple(delay.shape)}")
    if not (x.dtype == weight.dtype == delay.dtype and x.dtype in TAP_TOL and x.device.type == "cpu"):
        raise ValueError("spread_delay_linear: x, weight and delay must be CPU tensors of one dtype, "
                         f"float32 or float64; got {x.dtype}, {weight.dtype}, {delay.dtype} on {x.device}")
    return SpreadDelayFn.apply(x, weight, delay, float(sigma), int(max_delay))

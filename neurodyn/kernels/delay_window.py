"""Spread-delay synapses over each synapse's tap window on CPU (Numba): event-driven or lanes.

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

Cost, for E input events, T x B steps, I inputs, O outputs and windows of n taps (G = n
rounded up to a multiple of 3): the forward pass and the weight/delay gradient take the
cheaper (``_use_lanes``) of two forms.  Over the events with the kernel in blocks of
``OUT_BLOCK`` outputs, [nb, I, K, OUT_BLOCK]: E x K x O (vectorized over taps and outputs;
zeros outside the windows cost as much as taps, but a scatter over the window taps alone
measured slower, it cannot be vectorized).  Or over the window taps as shifted rows of x and
gy in the lanes layout [N, T * B] (``delay_lanes``): T x B x I x O x G whatever the density,
which wins once sigma has decayed (n of 3 at sigma 0.23 in float32) and the input is not
very sparse.  The input gradient, dense, is the lanes pass over the windows (T x B x I x O x
G) up to ``WINDOWED_INPUT_GRAD_MAX_TAPS``, else K matrix products (T x B x I x O x K) or, when
cheaper (``_use_spectral``), the same map through a real DFT over time (``delay_spectral``:
~4 F x B x I x O for F ~ (T + K) / 2 frequencies, plus the transforms); it is not computed
for an input that does not require grad (data).  The taps, their derivatives with respect to
the delays and the chain to the weight and delay gradients run in Numba over the windows, so
no [O, I, K] autograd graph is built.
"""
from __future__ import annotations

import math

import numba
import numpy as np
import torch
from numba import prange

from .delay_conv import _input_grad
from .delay_lanes import GROUP, from_lanes, grouped, lanes_forward, lanes_input_grad, lanes_param_grad, to_lanes
from .delay_spectral import spectral_cost, spectral_input_grad, spread_kernel_koi
from .sparse_linear import to_csr

# Per-dtype tap cut-off: the unit roundoff of a sum of taps that is 1.
TAP_TOL = {torch.float32: 2.0 ** -24, torch.float64: 2.0 ** -53}
# Window length padding (taps; zeros past each synapse's own window).
_PASS = 4
# Longest window for which the lanes input gradient beats K matrix products (measured at
# 256 x 256 synapses, 26 taps, T 105, batch 32, one thread: equal at 12 taps).
WINDOWED_INPUT_GRAD_MAX_TAPS = 12


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
def _tap_exponents(d, sigma, lo, hi, z):
    # z[o, i, j] = z_k - z_max at tap k = lo + j of the window, z_k = -(k - d)^2 / (2 sigma^2),
    # z_max the nearest tap's (against underflow); -inf past the window (exp gives 0).
    O, I, W = z.shape
    inv_s2 = 1.0 / (sigma * sigma)
    for o in prange(O):
        for i in range(I):
            c = d[o, i]
            k0 = lo[o, i]
            n = hi[o, i] - k0 + 1
            near = min(max(math.floor(c + 0.5), 0.0), k0 + n - 1.0)
            zmax = -0.5 * (near - c) ** 2 * inv_s2
            for j in range(n):
                u = k0 + j - c
                z[o, i, j] = -0.5 * u * u * inv_s2 - zmax
            for j in range(n, W):
                z[o, i, j] = -np.inf


@numba.njit(parallel=True, cache=True)
def _window_taps(d, sigma, lo, hi, e, g, dg):
    # g[o, i, j]: normalised Gaussian at tap lo + j, the softmax of z over the window given its
    # exponentials e [O, I, W] (``_tap_exponents``, then np.exp: vectorized, unlike a scalar
    # exp here); dg = d g / d d = g_k (u_k - sum_j g_j u_j) with u_k = (k - d) / sigma^2.
    # float64 inside, stored in g's dtype, zero past each window.
    O, I, Wn = g.shape
    inv_s2 = 1.0 / (sigma * sigma)
    for o in prange(O):
        for i in range(I):
            c = d[o, i]
            k0 = lo[o, i]
            n = hi[o, i] - k0 + 1
            tot = 0.0
            mean_u = 0.0
            for j in range(n):
                tot += e[o, i, j]
                mean_u += e[o, i, j] * (k0 + j - c)
            mean_u *= inv_s2 / tot
            for j in range(n):
                gj = e[o, i, j] / tot
                g[o, i, j] = gj
                dg[o, i, j] = gj * ((k0 + j - c) * inv_s2 - mean_u)
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
    return _taps(delay, sigma, max_delay, tol)[:3]


def _taps(delay: torch.Tensor, sigma: float, max_delay: int, tol: float | None = None
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``window_taps`` and the longest window's length (taps, unpadded)."""
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
        return np.ascontiguousarray(start), g, np.zeros_like(g), 1
    d64 = np.ascontiguousarray(d.to(torch.float64).numpy())
    lo, hi = _window_bounds(d64, float(sigma), max_delay + 1, math.log(1.0 / tol))
    n = int((hi - lo).max()) + 1 if lo.size else 1
    wn = -(-n // _PASS) * _PASS
    e = np.empty((O, I, n), dtype=np.float64)
    _tap_exponents(d64, float(sigma), lo, hi, e)
    np.exp(e, out=e)
    g = np.empty((O, I, wn), dtype=np_dt)
    dg = np.empty((O, I, wn), dtype=np_dt)
    _window_taps(d64, float(sigma), lo, hi, e, g, dg)
    return lo, g, dg, n


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


# Outputs per block of the event kernels: the kernel's block [I, K, OUT_BLOCK] and a sample's
# outputs [T, OUT_BLOCK] stay in cache across the events (the unblocked [I, K, O] kernel was
# read from memory at every event; measured 10-40% faster at 32 than unblocked, 8, 16 or 64).
OUT_BLOCK = 32


@numba.njit(parallel=True, cache=True)
def _spread_blocks(start, coef, kb):
    # kb [nb, I, K, OB] (zeroed): kb[o // OB, i, start[o, i] + j, o % OB] = coef[o, i, j], taps in [0, K).
    O, I, Wn = coef.shape
    K, OB = kb.shape[2], kb.shape[3]
    for i in prange(I):
        for o in range(O):
            s = start[o, i]
            for j in range(min(Wn, K - s)):
                kb[o // OB, i, s + j, o % OB] = coef[o, i, j]


@numba.njit(parallel=True, cache=True)
def _conv_blocks(ptr, idx, val, T, kb, y):
    # kb [nb, I, K * OB], y [nb, B, T * OB] (zeroed): an event (t, b, i, a) adds a kb[blk, i, :n]
    # to y[blk, b, t * OB:], one contiguous run per block.  Rows of (ptr, idx, val) are t * B + b.
    # One sample per thread: no two threads write one element.
    nb, I, KOB = kb.shape
    B = y.shape[1]
    OB = y.shape[2] // T
    for b in prange(B):
        for blk in range(nb):
            yb = y[blk, b]
            kbb = kb[blk]
            for t in range(T):
                r = t * B + b
                n = min(KOB, (T - t) * OB)
                dst = yb[t * OB: t * OB + n]
                for e in range(ptr[r], ptr[r + 1]):
                    kr = kbb[idx[e]]
                    a = val[e]
                    for j in range(n):
                        dst[j] += a * kr[j]


@numba.njit(parallel=True, cache=True)
def _kernel_grad_blocks(ptr, idx, val, T, gyb, gkb):
    # gkb [nb, I, K * OB] (zeroed) += a gyb[blk, b, t * OB: t * OB + K * OB] for every event
    # (t, b, i, a); gyb [nb, B, T * OB].  One block per thread: no two threads write one element.
    nb, I, KOB = gkb.shape
    B = gyb.shape[1]
    OB = gyb.shape[2] // T
    for blk in prange(nb):
        gk = gkb[blk]
        for b in range(B):
            g = gyb[blk, b]
            for t in range(T):
                r = t * B + b
                n = min(KOB, (T - t) * OB)
                src = g[t * OB: t * OB + n]
                for e in range(ptr[r], ptr[r + 1]):
                    dst = gk[idx[e]]
                    a = val[e]
                    for j in range(n):
                        dst[j] += a * src[j]


@numba.njit(parallel=True, cache=True)
def _to_blocks(x, out):
    # x [T, B, O] -> out [nb, B, T * OB]: out[o // OB, b, t * OB + o % OB] = x[t, b, o], zero past O.
    # Contiguous runs of OB (no division per element; measured 4x faster than element-wise).
    T, B, O = x.shape
    nb = out.shape[0]
    OB = out.shape[2] // T
    for blk in prange(nb):
        o0 = blk * OB
        n = min(OB, O - o0)
        for b in range(B):
            row = out[blk, b]
            for t in range(T):
                dst = row[t * OB:(t + 1) * OB]
                src = x[t, b, o0:o0 + n]
                for u in range(n):
                    dst[u] = src[u]
                for u in range(n, OB):
                    dst[u] = 0.0


@numba.njit(parallel=True, cache=True)
def _from_blocks(y, out):
    # y [nb, B, T * OB] -> out [T, B, O], block by block (contiguous runs of OB).  Parallel over steps.
    T, B, O = out.shape
    nb = y.shape[0]
    OB = y.shape[2] // T
    for t in prange(T):
        for b in range(B):
            orow = out[t, b]
            for blk in range(nb):
                src = y[blk, b, t * OB:(t + 1) * OB]
                o0 = blk * OB
                for u in range(min(OB, O - o0)):
                    orow[o0 + u] = src[u]


@numba.njit(parallel=True, cache=True)
def _chain_grads(gkb, start, g, dg, w, gw, gd):
    # Through kern[k, o, i] = w[o, i] g_k: gw[o, i] = sum_j gkern[start + j] g_j and
    # gd[o, i] = w[o, i] sum_j gkern[start + j] dg_j over the window, gkern read from the
    # blocked kernel gradient gkb [nb, I, K, OB].
    O, I, Wn = g.shape
    K, OB = gkb.shape[2], gkb.shape[3]
    for o in prange(O):
        blk, u = o // OB, o % OB
        for i in range(I):
            s = start[o, i]
            acc_g = 0.0
            acc_d = 0.0
            for j in range(min(Wn, K - s)):
                v = gkb[blk, i, s + j, u]
                acc_g += v * g[o, i, j]
                acc_d += v * dg[o, i, j]
            gw[o, i] = acc_g
            gd[o, i] = acc_d * w[o, i]


# Event kernels against lanes (``delay_lanes``): a lanes pass costs about this fraction of an
# event kernel per synapse tap and (step, sample) vs per event, tap of K and output (measured
# at 256 x 256 synapses, 26 taps, T 105, batch 32, one thread: 30 vs 12.5 G multiply-adds/s).
LANES_COST = 0.42


def _use_lanes(T: int, B: int, I: int, K: int, n_taps: int, events: int) -> bool:
    """Whether the lanes kernels (T B I O G, G = n_taps rounded up to whole passes of
    ``delay_lanes.GROUP``) beat the event kernels (events K O)."""
    G = -(-max(n_taps, 1) // GROUP) * GROUP
    return T * B * I * G * LANES_COST < events * K


# The spectral input gradient (``delay_spectral``) runs at about half the multiply-add rate of
# the K matrix products (thin matrix products; measured 1.0 G in ~40 ms against 5.7 G in ~110 ms
# at 256 x 256 synapses, 26 taps, T 105, batch 32, one thread).
SPECTRAL_COST = 2.0


def _use_spectral(T: int, B: int, I: int, O: int, K: int) -> bool:
    """Whether the wide windows' input gradient is cheaper through the DFT than as K products."""
    return spectral_cost(T, B, I, O, K) * SPECTRAL_COST < K * T * B * O * I


class SpreadDelayFn(torch.autograd.Function):
    """y [T, B, O] = DCLS synapses (weight [O, I], delays [O, I] steps in [0, max_delay], width
    sigma steps) applied to x [T, B, I], CPU float32/float64, x mostly zero.  Gradients for x,
    weight and delays (not sigma).

    The taps and their derivatives come from ``window_taps``.  Forward and weight/delay
    gradient take the cheaper of two forms (``_use_lanes``): over the input events with the
    kernel in blocks of outputs [nb, I, K, OUT_BLOCK] (contiguous over taps and outputs, so
    vectorized; zeros outside the windows cost as much as taps), or, when the windows are
    short against K x density, over
    the windows' taps as shifted rows of x and gy laid out [N, T * B] (``delay_lanes``).  The
    input gradient, dense, is the lanes pass over the windows when they are short, else K
    matrix products or, when cheaper, their equivalent through a DFT over time
    (``delay_spectral``).
    """

    @staticmethod
    def forward(ctx, x, weight, delay, sigma, max_delay, events=None):  # noqa: D401
        T, B, I = x.shape
        O, K = weight.shape[0], max_delay + 1
        start, g, dg, n_taps = _taps(delay, sigma, max_delay)
        w = weight.detach().contiguous().numpy()
        coef = g * w[:, :, None]
        xn = x.detach().contiguous().numpy()
        events = int(np.count_nonzero(xn)) if events is None else events
        ctx.lanes = _use_lanes(T, B, I, K, n_taps, events)
        ctx.csr = ctx.xl = None
        ctx.grouped = None
        if ctx.lanes:
            gG, dgG = grouped(g, n_taps), grouped(dg, n_taps)
            coefG = gG * w[:, :, None]
            front = K + gG.shape[2]  # zero steps before x: the reach of start + j
            xl = np.empty((I, (front + T) * B), dtype=xn.dtype)
            to_lanes(xn, front, 0, xl)
            yl = np.empty((O, T * B), dtype=xn.dtype)
            lanes_forward(xl, front, B, start, coefG, yl)
            y = torch.empty((T, B, O), dtype=x.dtype)
            from_lanes(yl, y.numpy())
            ctx.xl, ctx.front, ctx.grouped = xl, front, (gG, dgG, coefG)
        else:
            nb = -(-O // OUT_BLOCK)
            kb = np.zeros((nb, I, K, OUT_BLOCK), dtype=xn.dtype)
            _spread_blocks(start, coef, kb)
            csr = to_csr(xn.reshape(T * B, I))
            yb = np.zeros((nb, B, T * OUT_BLOCK), dtype=xn.dtype)
            _conv_blocks(*csr, T, kb.reshape(nb, I, K * OUT_BLOCK), yb)
            y = torch.empty((T, B, O), dtype=x.dtype)
            _from_blocks(yb, y.numpy())
            ctx.csr = csr
        ctx.taps = (start, g, dg, coef, n_taps)
        ctx.max_delay = max_delay
        ctx.save_for_backward(weight)
        return y

    @staticmethod
    def backward(ctx, gy):
        (weight,) = ctx.saved_tensors
        start, g, dg, coef, n_taps = ctx.taps
        T, B, O = gy.shape
        I, K = coef.shape[1], ctx.max_delay + 1
        gyn = gy.contiguous().numpy()
        gx = gw = gd = None
        gl = None
        lanes_gx = n_taps <= WINDOWED_INPUT_GRAD_MAX_TAPS
        if ctx.grouped is None and (lanes_gx and ctx.needs_input_grad[0]):
            gG = grouped(g, n_taps)
            ctx.grouped = (gG, None, gG * weight.detach().contiguous().numpy()[:, :, None])

        def lanes_gy():
            # zero from step T on: reads reach T - 1 + max(start) + G - 1
            back = K + ctx.grouped[0].shape[2]
            out = np.empty((O, (T + back) * B), dtype=gyn.dtype)
            to_lanes(gyn, 0, back, out)
            return out

        if ctx.needs_input_grad[0]:
            if lanes_gx:
                gl = lanes_gy()
                gxl = np.empty((I, T * B), dtype=gyn.dtype)
                lanes_input_grad(gl, B, start, ctx.grouped[2], gxl)
                gx = torch.empty((T, B, I), dtype=gy.dtype)
                from_lanes(gxl, gx.numpy())
            elif _use_spectral(T, B, I, O, K):
                kern = np.empty((K, O, I), dtype=gyn.dtype)
                spread_kernel_koi(start, coef, kern)
                gx = spectral_input_grad(torch.from_numpy(gyn), torch.from_numpy(kern))
            else:
                kern = np.zeros((I, K, O), dtype=gyn.dtype)
                _spread_kernel(start, coef, kern)
                gx = _input_grad(torch.from_numpy(gyn), torch.from_numpy(kern))
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            gw = torch.empty((O, I), dtype=gy.dtype)
            gd = torch.empty((O, I), dtype=gy.dtype)
            w = weight.detach().contiguous().numpy()
            if ctx.lanes:
                gl = lanes_gy() if gl is None else gl
                gG, dgG, _ = ctx.grouped
                lanes_param_grad(ctx.xl, ctx.front, gl, B, T * B, start, gG, dgG, w, gyn.dtype.type(0),
                                 gw.numpy(), gd.numpy())
            else:
                nb = -(-O // OUT_BLOCK)
                gyb = np.empty((nb, B, T * OUT_BLOCK), dtype=gyn.dtype)
                _to_blocks(gyn, gyb)
                gkb = np.zeros((nb, I, K * OUT_BLOCK), dtype=gyn.dtype)
                _kernel_grad_blocks(*ctx.csr, T, gyb, gkb)
                _chain_grads(gkb.reshape(nb, I, K, OUT_BLOCK), start, g, dg, w, gw.numpy(), gd.numpy())
        return gx, gw, gd, None, None, None


def spread_delay_linear(x: torch.Tensor, weight: torch.Tensor, delay: torch.Tensor, sigma: float,
                        max_delay: int, events: int | None = None) -> torch.Tensor:
    """DCLS synapses, event-driven or lanes: x [T, B, I] (CPU float32/float64, mostly zero),
    weight and delay [O, I] (steps, in [0, max_delay]; the caller clamps), sigma steps -> y
    [T, B, O].  events: the number of nonzeros of x when the caller has counted them."""
    if x.dim() != 3 or weight.dim() != 2 or x.shape[2] != weight.shape[1] or delay.shape != weight.shape:
        raise ValueError(f"spread_delay_linear: x [T, B, I], weight and delay [O, I] expected; got x "
                         f"{tuple(x.shape)}, weight {tuple(weight.shape)}, delay {tuple(delay.shape)}")
    if not (x.dtype == weight.dtype == delay.dtype and x.dtype in TAP_TOL and x.device.type == "cpu"):
        raise ValueError("spread_delay_linear: x, weight and delay must be CPU tensors of one dtype, "
                         f"float32 or float64; got {x.dtype}, {weight.dtype}, {delay.dtype} on {x.device}")
    return SpreadDelayFn.apply(x, weight, delay, float(sigma), int(max_delay), events)

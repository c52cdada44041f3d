"""Spread-delay synapses over short tap windows, dense over steps and samples (Numba, CPU).

The synapse from input i to output o adds coef[o, i, j] x[t - start[o, i] - j, b, i] to
y[t, b, o] for the taps j < cnt[o, i] of its window (``delay_window.window_taps``).  Here the
signals are laid out channel-major with the samples innermost, [N, T * B] ("lanes": row n
holds channel n at step t, sample b in column t * B + b), so that a delay of s steps is an
offset of s * B along a row: every synapse tap is then one shifted multiply-add over a
contiguous row of T * B values (vectorized, no scatter), a few taps per pass.

Cost, for T x B steps, I inputs, O outputs and windows of n taps: T x B x I x O x n for each
of the forward pass, the input gradient and the weight/delay gradient, whatever the input
density; the event-driven kernels (``delay_conv``) cost E x K x O for E input events and the
K = max_delay + 1 taps instead, so these pay when n is small against K x density.
"""
from __future__ import annotations

import numba
import numpy as np
from numba import prange


# Channels per block of the layout conversions: a block's rows are written (read) one step
# after the other, so a thread walks a few rows at a time instead of all N rows (pages) at
# every step (measured 10x faster for to_lanes and 1.5x for from_lanes at 256 channels, T 107,
# batch 32, one thread).
CHANNEL_BLOCK = 16


@numba.njit(parallel=True, cache=True)
def to_lanes(x, front, back, out):
    # x [T, B, N] -> out [N, (front + T + back) * B]: out[n, (front + t) * B + b] = x[t, b, n],
    # the front and back padding zero.  Parallel over blocks of channels (disjoint rows of out).
    T, B, N = x.shape
    p0 = front * B
    p1 = (front + T) * B
    for blk in prange((N + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK):
        n0 = blk * CHANNEL_BLOCK
        n1 = min(N, n0 + CHANNEL_BLOCK)
        for n in range(n0, n1):
            out[n, :p0] = 0.0
            out[n, p1:] = 0.0
        for t in range(T):
            c = p0 + t * B
            for n in range(n0, n1):
                dst = out[n, c:c + B]
                for b in range(B):
                    dst[b] = x[t, b, n]


@numba.njit(parallel=True, cache=True)
def from_lanes(y, out):
    # y [N, >= T * B] (lanes) -> out [T, B, N].  Parallel over blocks of channels.
    T, B, N = out.shape
    for blk in prange((N + CHANNEL_BLOCK - 1) // CHANNEL_BLOCK):
        n0 = blk * CHANNEL_BLOCK
        n1 = min(N, n0 + CHANNEL_BLOCK)
        for t in range(T):
            for b in range(B):
                c = t * B + b
                orow = out[t, b]
                for n in range(n0, n1):
                    orow[n] = y[n, c]


# Taps per pass: a pass adds three taps of two synapses into one row (loads of the row's
# partial sums shared by six multiply-adds; the kernels are bound by loads, not arithmetic:
# two synapses a pass measured ~10% faster than one, four no faster than two).
GROUP = 3


def grouped(g: np.ndarray, n_taps: int) -> np.ndarray:
    """g [O, I, Wn] cut or zero-padded to [O, I, G], G = n_taps rounded up to a multiple of
    ``GROUP`` (C-contiguous, g's dtype); taps past n_taps must be zero in g."""
    G = -(-max(n_taps, 1) // GROUP) * GROUP
    out = np.zeros(g.shape[:2] + (G,), dtype=g.dtype)
    n = min(G, g.shape[2])
    out[:, :, :n] = g[:, :, :n]
    return out


@numba.njit(cache=True, inline="always")
def _pass2(dst, N, ra, rb, oa, ob, step, ca, cb, j):
    # dst[n] += taps j..j+2 of two synapses: rows ra, rb read at r*[o* + n + m * step], m = 0, 1, 2
    # (step +B: later steps, -B: earlier steps), coefficients c*[j + m].
    a0, a1, a2 = ca[j], ca[j + 1], ca[j + 2]
    b0, b1, b2 = cb[j], cb[j + 1], cb[j + 2]
    ra0 = ra[oa:]
    ra1 = ra[oa + step:]
    ra2 = ra[oa + 2 * step:]
    rb0 = rb[ob:]
    rb1 = rb[ob + step:]
    rb2 = rb[ob + 2 * step:]
    for n in range(N):
        dst[n] += (a0 * ra0[n] + a1 * ra1[n] + a2 * ra2[n]) + (b0 * rb0[n] + b1 * rb1[n] + b2 * rb2[n])


@numba.njit(cache=True, inline="always")
def _pass1(dst, N, ra, oa, step, ca, j):
    a0, a1, a2 = ca[j], ca[j + 1], ca[j + 2]
    ra0 = ra[oa:]
    ra1 = ra[oa + step:]
    ra2 = ra[oa + 2 * step:]
    for n in range(N):
        dst[n] += a0 * ra0[n] + a1 * ra1[n] + a2 * ra2[n]


@numba.njit(parallel=True, cache=True)
def lanes_forward(xl, front, B, start, coef, y):
    # y [O, N] (N = T * B) = sum_i sum_j coef[o, i, j] xl[i, front * B + n - (start[o, i] + j) * B]:
    # xl [I, (front + T) * B] is x in lanes after front zero steps, front >= max(start) + G where
    # coef is [O, I, G] (G a multiple of 3, zero past each window).  Parallel over outputs.
    O, N = y.shape
    I = xl.shape[0]
    G = coef.shape[2]
    p0 = front * B
    for o in prange(O):
        yo = y[o]
        for n in range(N):
            yo[n] = 0.0
        for i in range(0, I - 1, 2):
            for j in range(0, G, 3):
                _pass2(yo, N, xl[i], xl[i + 1], p0 - (start[o, i] + j) * B, p0 - (start[o, i + 1] + j) * B,
                       -B, coef[o, i], coef[o, i + 1], j)
        if I % 2 == 1:
            for j in range(0, G, 3):
                _pass1(yo, N, xl[I - 1], p0 - (start[o, I - 1] + j) * B, -B, coef[o, I - 1], j)


@numba.njit(parallel=True, cache=True)
def lanes_input_grad(gl, B, start, coef, gx):
    # gx [I, N] = sum_o sum_j coef[o, i, j] gl[o, n + (start[o, i] + j) * B]: gl [O, >= N +
    # (max(start) + G) * B] is gy in lanes, zero from step T on; coef [O, I, G] as in
    # lanes_forward.  Parallel over inputs.
    I, N = gx.shape
    O = gl.shape[0]
    G = coef.shape[2]
    for i in prange(I):
        gi = gx[i]
        for n in range(N):
            gi[n] = 0.0
        for o in range(0, O - 1, 2):
            for j in range(0, G, 3):
                _pass2(gi, N, gl[o], gl[o + 1], (start[o, i] + j) * B, (start[o + 1, i] + j) * B,
                       B, coef[o, i], coef[o + 1, i], j)
        if O % 2 == 1:
            for j in range(0, G, 3):
                _pass1(gi, N, gl[O - 1], (start[O - 1, i] + j) * B, B, coef[O - 1, i], j)


# reassoc: the dot products over T * B run as vector partial sums (a different summation
# order from the reference's, within float rounding); two outputs per pass share the loads of x
@numba.njit(parallel=True, cache=True, fastmath={"reassoc", "contract"})
def lanes_param_grad(xl, front, gl, B, N, start, g, dg, w, zero, gw, gd):
    # Through coef[o, i, j] = w[o, i] g[o, i, j]: gc_j = sum_n x_i[n] gy_o[n + (start + j) B]
    # (n < N = T * B, x_i = xl[i, front * B:], gl as in lanes_input_grad), gw[o, i] = sum_j gc_j g_j,
    # gd[o, i] = w[o, i] sum_j gc_j dg_j; g and dg [O, I, G] zero past each window.  zero: 0 in
    # the data's dtype (the accumulators').  Two outputs per pass share the loads of x.
    # Parallel over pairs of outputs.
    O, I = start.shape
    G = g.shape[2]
    p0 = front * B
    for oh in prange((O + 1) // 2):
        o = 2 * oh
        ob = min(o + 1, O - 1)  # an odd last output pairs with itself
        ga = gl[o]
        gb = gl[ob]
        for i in range(I):
            xi = xl[i, p0:p0 + N]
            ba = start[o, i] * B
            bb = start[ob, i] * B
            wa = zero
            da = zero
            wb = zero
            db = zero
            for j in range(0, G, 3):
                ga0 = ga[ba + j * B:]
                ga1 = ga[ba + (j + 1) * B:]
                ga2 = ga[ba + (j + 2) * B:]
                gb0 = gb[bb + j * B:]
                gb1 = gb[bb + (j + 1) * B:]
                gb2 = gb[bb + (j + 2) * B:]
                a0 = zero
                a1 = zero
                a2 = zero
                b0 = zero
                b1 = zero
                b2 = zero
                for n in range(N):
                    v = xi[n]
                    a0 += v * ga0[n]
                    a1 += v * ga1[n]
                    a2 += v * ga2[n]
                    b0 += v * gb0[n]
                    b1 += v * gb1[n]
                    b2 += v * gb2[n]
                wa += a0 * g[o, i, j] + a1 * g[o, i, j + 1] + a2 * g[o, i, j + 2]
                da += a0 * dg[o, i, j] + a1 * dg[o, i, j + 1] + a2 * dg[o, i, j + 2]
                wb += b0 * g[ob, i, j] + b1 * g[ob, i, j + 1] + b2 * g[ob, i, j + 2]
                db += b0 * dg[ob, i, j] + b1 * dg[ob, i, j + 1] + b2 * dg[ob, i, j + 2]
            gw[o, i] = wa
            gd[o, i] = da * w[o, i]
            gw[ob, i] = wb
            gd[ob, i] = db * w[ob, i]


"""Fused Numba CPU kernel for LTC layers: all T steps x all unfolds, forward and backward, one call each.

The synapse sums (``synapse_sums`` in ``neurons/ltc.py``) run here, in one loop
(``_synapses`` and its reverse ``_synapses_vjp``) shared by two kernels: the sensory synapses,
which depend on the input only, for all T x B rows at once (``_sensory_forward``: torch's
[T*B, F, H] temporaries took as long as the whole recurrent kernel), and the recurrent ones
inside the time loop.  Everything else stays in torch and comes from the one definition in
``neurons/ltc.py``: the input map, the leak terms and ``cm / dt``, which enter the recurrent
kernel as per-step additive terms ``a = gleak vleak + sensory_num``, ``d = gleak + sensory_den
+ epsilon`` and ``cmt = cm / (elapsed / unfolds)``, all ``[T, B, H]``; torch's autograd chains
the kernels' gradients w.r.t. them back to the parameters.  The recurrent kernel computes, per
unfold (``ltc_unfold``; the test ``tests/kernels/test_ltc_numba.py`` holds both kernels to
``ltc_step``, forward and gradients)::

    g_ji = wm_ji sigmoid(sigma_ji (v_j - mu_ji))        wm = w * mask
    v_i <- (cmt_i v_i + a_i + sum_j g_ji erev_ji) / (cmt_i + d_i + sum_j g_ji)

The sigmoid uses no libm call, so LLVM vectorizes the inner loop over post-synaptic neurons
without SVML (``ltc_sigmoid``, one per precision):

* float64: ``exp(x) = (exp(x / 256))^256`` with a degree-11 Taylor polynomial on
  ``|x / 256| <= 0.16`` (relative error ~1e-14 after the 8 squarings; arguments clamped to
  +-40, where the sigmoid is within 5e-18 of 0 or 1);
* float32: ``exp(x) = 2^n exp(r)``, ``n = round(x / ln 2)``, ``r`` by a two-part ln 2 (Cody-Waite)
  so ``|r| <= 0.35``, a degree-7 Taylor polynomial for ``exp(r)`` and ``2^n`` as an exact product
  of powers of two chosen by the bits of ``|n|`` (selects, no bit casts): within 2.4 ulp of the
  sigmoid (numpy's float32 ``1 / (1 + exp(-z))``: 3.2 ulp); arguments clamped to +-80 (the
  sigmoid there is within 2e-35 of 0 or 1).  Twice as many lanes and no squarings: the float32
  kernels run ~1.9x faster than the float64 ones.

The kernels compute in the inputs' precision (float64 inputs in float64; float32 and lower in
float32, as torch and ncps do).  Batch samples run in parallel (``numba.prange`` over chunks of
the batch); parameter gradients are accumulated per chunk and summed.
"""
from __future__ import annotations

import math
from typing import Union

import numba
import numpy as np
import torch
from numba import types
from numba.extending import overload

from ..errors import ConfigError, ShapeError
from ..neurons.ltc import LTCParams, check_ltc_params, ltc_map_inputs

_FM = {"reassoc", "contract", "nsz", "arcp"}  # no nnan/ninf: NaNs must still show


@numba.njit(fastmath=_FM, error_model="numpy", cache=True)
def _sigmoid(z):
    """sigmoid(z) = 1 / (1 + exp(-z)) in float64 from arithmetic only (SIMD-friendly), |rel. error| ~1e-14."""
    z = min(max(z, -40.0), 40.0)
    x = z * (-1.0 / 256.0)
    p = 1.0 + x * (1.0 + x * (1.0 / 2 + x * (1.0 / 6 + x * (1.0 / 24 + x * (1.0 / 120 + x * (
        1.0 / 720 + x * (1.0 / 5040 + x * (1.0 / 40320 + x * (1.0 / 362880 + x * (
            1.0 / 3628800 + x * (1.0 / 39916800)))))))))))
    for _ in range(8):
        p = p * p
    return 1.0 / (1.0 + p)


_F = np.float32
_INV_LN2 = _F(1.4426950408889634)
_LN2_HI = _F(0.693145751953125)  # 16 significant bits: n * _LN2_HI is exact for |n| < 2^8 (here <= 116)
_LN2_LO = _F(1.4286068203094172e-06)


# fastmath set explicitly: a njit function called from a fastmath kernel inherits the
# caller's flags unless it sets its own, and reassociation would undo the ln 2 split (5 ulp)
@numba.njit(fastmath={"contract"}, error_model="numpy", cache=True)
def _sigmoid32(z):
    """sigmoid(z) in float32 from arithmetic and selects only (SIMD-friendly), within 2.4 ulp."""
    z = min(max(z, _F(-80.0)), _F(80.0))
    n = np.floor(z * -_INV_LN2 + _F(0.5))
    r = (-z - n * _LN2_HI) - n * _LN2_LO  # -z - n ln 2, |r| <= 0.35
    p = _F(1.0) + r * (_F(1.0) + r * (_F(1 / 2) + r * (_F(1 / 6) + r * (_F(1 / 24) + r * (
        _F(1 / 120) + r * (_F(1 / 720) + r * _F(1 / 5040)))))))
    k = np.int32(n)
    m = abs(k)
    # 2^|n| (|n| <= 116) as a product of exact powers of two picked by its bits
    s = (((_F(2.0) if m & 1 else _F(1.0)) * (_F(4.0) if m & 2 else _F(1.0)))
         * ((_F(16.0) if m & 4 else _F(1.0)) * (_F(256.0) if m & 8 else _F(1.0)))
         * ((_F(65536.0) if m & 16 else _F(1.0)) * (_F(4294967296.0) if m & 32 else _F(1.0)))
         * (_F(18446744073709551616.0) if m & 64 else _F(1.0)))
    e = p * s if k >= 0 else p / s  # exp(-z)
    return _F(1.0) / (_F(1.0) + e)


def ltc_sigmoid(z):
    """The kernels' sigmoid in z's precision (``_sigmoid32`` for float32, else ``_sigmoid``)."""
    return _sigmoid(z)


@overload(ltc_sigmoid)
def _ltc_sigmoid_typed(z):
    if isinstance(z, types.Float) and z.bitwidth == 32:
        return lambda z: _sigmoid32(z)
    return lambda z: _sigmoid(z)


@numba.njit(fastmath=_FM, error_model="numpy", cache=True, inline="always")
def _synapses(pre, wm, mu, sigma, erev, num, den):  # pragma: no cover - jitted
    """``synapse_sums`` from pre [P] onto num, den [H] (added): g_ji = wm_ji sigmoid(sigma_ji (pre_j - mu_ji)),
    num_i += sum_j g_ji erev_ji, den_i += sum_j g_ji; wm, mu, sigma, erev [P, H]."""
    for j in range(pre.shape[0]):
        vj, w_j, mu_j, sg_j, er_j = pre[j], wm[j], mu[j], sigma[j], erev[j]
        for i in range(num.shape[0]):  # vectorized: contiguous rows, no libm call
            g = w_j[i] * ltc_sigmoid(sg_j[i] * (vj - mu_j[i]))
            num[i] += g * er_j[i]
            den[i] += g


@numba.njit(fastmath=_FM, error_model="numpy", cache=True, inline="always")
def _synapses_vjp(pre, wm, mu, sigma, erev, gN, gD, g_pre, g_wm, g_mu, g_sigma, g_erev):  # pragma: no cover
    """Reverse of ``_synapses`` given d loss / d num, d den [H]: adds to g_pre [P] and to the
    parameter gradients g_wm, g_mu, g_sigma, g_erev [P, H]."""
    one = np.ones(1, dtype=gN.dtype)[0]  # literals would be float64 and widen float32 sums
    for j in range(pre.shape[0]):
        vj, w_j, mu_j, sg_j, er_j = pre[j], wm[j], mu[j], sigma[j], erev[j]
        gw_j, gmu_j, gsg_j, ger_j = g_wm[j], g_mu[j], g_sigma[j], g_erev[j]
        acc = one - one
        for i in range(gN.shape[0]):
            dv = vj - mu_j[i]
            s = ltc_sigmoid(sg_j[i] * dv)
            gg = gN[i] * er_j[i] + gD[i]          # d loss / d g_ji
            gw_j[i] += gg * s
            ger_j[i] += gN[i] * w_j[i] * s
            dz = gg * w_j[i] * s * (one - s)      # through the sigmoid
            gsg_j[i] += dz * dv
            gmu_j[i] -= dz * sg_j[i]
            acc += dz * sg_j[i]
        g_pre[j] += acc


@numba.njit(parallel=True, fastmath=_FM, error_model="numpy", cache=True)
def _sensory_forward(u, wm, mu, sigma, erev, nchunks, num, den):  # pragma: no cover - jitted
    """Sensory synapse sums of mapped inputs u [R, F] (R = T * B rows): num, den [R, H]."""
    R = u.shape[0]
    for c in numba.prange(nchunks):
        for r in range(c * R // nchunks, (c + 1) * R // nchunks):
            num[r] = 0.0
            den[r] = 0.0
            _synapses(u[r], wm, mu, sigma, erev, num[r], den[r])


@numba.njit(parallel=True, fastmath=_FM, error_model="numpy", cache=True)
def _sensory_backward(g_num, g_den, u, wm, mu, sigma, erev, g_u, g_wm, g_mu, g_sigma, g_erev):  # pragma: no cover
    """Reverse of ``_sensory_forward``: g_u [R, F] (zeroed by the caller) and per-chunk parameter
    gradients [nchunks, F, H] (zeroed by the caller)."""
    R = u.shape[0]
    nchunks = g_wm.shape[0]
    for c in numba.prange(nchunks):
        for r in range(c * R // nchunks, (c + 1) * R // nchunks):
            _synapses_vjp(u[r], wm, mu, sigma, erev, g_num[r], g_den[r], g_u[r], g_wm[c], g_mu[c], g_sigma[c],
                          g_erev[c])


@numba.njit(parallel=True, fastmath=_FM, error_model="numpy", cache=True)
def _forward(a, d, cmt, v0, wm, mu, sigma, erev, unfolds, nchunks, out, traj, dens):  # pragma: no cover - jitted
    """a, d, cmt [T, B, H]; v0 [B, H]; wm, mu, sigma, erev [H, H] (pre, post).
    Writes out [T, B, H], traj [T, U, B, H] (state before each unfold), dens [T, U, B, H]."""
    T, B, H = a.shape
    for c in numba.prange(nchunks):
        num = np.empty(H, dtype=a.dtype)
        den = np.empty(H, dtype=a.dtype)
        v = np.empty(H, dtype=a.dtype)
        for b in range(c, B, nchunks):
            v[:] = v0[b]
            for t in range(T):
                for k in range(unfolds):
                    traj[t, k, b] = v
                    num[:] = 0.0
                    den[:] = 0.0
                    _synapses(v, wm, mu, sigma, erev, num, den)
                    # ltc_unfold: semi-implicit Euler sub-step
                    for i in range(H):
                        dn = cmt[t, b, i] + d[t, b, i] + den[i]
                        dens[t, k, b, i] = dn
                        v[i] = (cmt[t, b, i] * v[i] + a[t, b, i] + num[i]) / dn
                out[t, b] = v


@numba.njit(parallel=True, fastmath=_FM, error_model="numpy", cache=True)
def _backward(g_out, cmt, wm, mu, sigma, erev, unfolds, out, traj, dens,
              g_a, g_d, g_cmt, g_v0, g_wm, g_mu, g_sigma, g_erev):  # pragma: no cover - jitted
    """Reverse pass of ``_forward``. Writes g_a, g_d, g_cmt [T, B, H], g_v0 [B, H] and the
    per-chunk parameter gradients g_wm, g_mu, g_sigma, g_erev [nchunks, H, H] (zeroed by the caller)."""
    T, B, H = g_out.shape
    nchunks = g_wm.shape[0]
    for c in numba.prange(nchunks):
        gv = np.empty(H, dtype=g_out.dtype)
        gv_prev = np.empty(H, dtype=g_out.dtype)
        gN = np.empty(H, dtype=g_out.dtype)
        gD = np.empty(H, dtype=g_out.dtype)
        for b in range(c, B, nchunks):
            gv[:] = 0.0
            for t in range(T - 1, -1, -1):
                for i in range(H):
                    gv[i] += g_out[t, b, i]
                    g_a[t, b, i] = 0.0
                    g_d[t, b, i] = 0.0
                    g_cmt[t, b, i] = 0.0
                for k in range(unfolds - 1, -1, -1):
                    # v_new = N / Dn:  dN = gv / Dn,  dDn = -gv v_new / Dn
                    for i in range(H):
                        vn = traj[t, k + 1, b, i] if k + 1 < unfolds else out[t, b, i]
                        dn = dens[t, k, b, i]
                        gN[i] = gv[i] / dn
                        gD[i] = -gv[i] * vn / dn
                        g_a[t, b, i] += gN[i]
                        g_d[t, b, i] += gD[i]
                        g_cmt[t, b, i] += gN[i] * traj[t, k, b, i] + gD[i]
                        gv_prev[i] = gN[i] * cmt[t, b, i]
                    _synapses_vjp(traj[t, k, b], wm, mu, sigma, erev, gN, gD, gv_prev, g_wm[c], g_mu[c], g_sigma[c],
                                  g_erev[c])
                    gv[:] = gv_prev
            g_v0[b] = gv


def _np(t: torch.Tensor, dtype: torch.dtype) -> np.ndarray:
    return t.detach().to(dtype).contiguous().numpy()


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64; float32 and the half types compute in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


class _LTCUnfolds(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, d, cmt, v0, wm, mu, sigma, erev, unfolds):  # noqa: D401
        T, B, H = a.shape
        ct = _compute_dtype(a.dtype)
        nt = np.float64 if ct == torch.float64 else np.float32
        out = np.empty((T, B, H), dtype=nt)
        traj = np.empty((T, unfolds, B, H), dtype=nt)
        dens = np.empty((T, unfolds, B, H), dtype=nt)
        an, cn, wn, mn, sn, en = (_np(t, ct) for t in (a, cmt, wm, mu, sigma, erev))
        _forward(an, _np(d, ct), cn, _np(v0, ct), wn, mn, sn, en, unfolds, min(B, numba.get_num_threads()), out,
                 traj, dens)
        ctx.unfolds, ctx.dtype, ctx.compute = unfolds, a.dtype, ct
        ctx.arrays = (cn, wn, mn, sn, en, out, traj, dens)
        return torch.from_numpy(out).to(a.dtype)

    @staticmethod
    def backward(ctx, g_out):
        cn, wn, mn, sn, en, out, traj, dens = ctx.arrays
        T, B, H = out.shape
        nchunks = min(B, numba.get_num_threads())
        nt = out.dtype
        g_a, g_d, g_cmt = (np.empty((T, B, H), dtype=nt) for _ in range(3))
        g_v0 = np.empty((B, H), dtype=nt)
        g_par = [np.zeros((nchunks, H, H), dtype=nt) for _ in range(4)]
        _backward(_np(g_out, ctx.compute), cn, wn, mn, sn, en, ctx.unfolds, out, traj, dens, g_a, g_d, g_cmt, g_v0,
                  *g_par)
        dt = ctx.dtype
        g_wm, g_mu, g_sigma, g_erev = (torch.from_numpy(g.sum(0)).to(dt) for g in g_par)
        tt = lambda x: torch.from_numpy(x).to(dt)  # noqa: E731
        return tt(g_a), tt(g_d), tt(g_cmt), tt(g_v0), g_wm, g_mu, g_sigma, g_erev, None


class _SensorySums(torch.autograd.Function):
    """(num, den) [R, H] of the sensory synapses of mapped inputs u [R, F] (``_sensory_forward``)."""

    @staticmethod
    def forward(ctx, u, wm, mu, sigma, erev):  # noqa: D401
        ct = _compute_dtype(u.dtype)
        arrays = tuple(_np(t, ct) for t in (u, wm, mu, sigma, erev))
        R, H = u.shape[0], wm.shape[1]
        nchunks = max(1, min(R, numba.get_num_threads()))
        num, den = np.empty((R, H), dtype=arrays[0].dtype), np.empty((R, H), dtype=arrays[0].dtype)
        _sensory_forward(*arrays, nchunks, num, den)
        ctx.arrays, ctx.dtype, ctx.compute, ctx.nchunks = arrays, u.dtype, ct, nchunks
        return torch.from_numpy(num).to(u.dtype), torch.from_numpy(den).to(u.dtype)

    @staticmethod
    def backward(ctx, g_num, g_den):
        un, wn = ctx.arrays[0], ctx.arrays[1]
        R, H = un.shape[0], wn.shape[1]
        gn, gd = (_np(g, ctx.compute) if g is not None else np.zeros((R, H), dtype=un.dtype) for g in (g_num, g_den))
        g_u = np.zeros_like(un)
        g_par = [np.zeros((ctx.nchunks,) + wn.shape, dtype=un.dtype) for _ in range(4)]
        _sensory_backward(gn, gd, *ctx.arrays, g_u, *g_par)
        dt = ctx.dtype
        return (torch.from_numpy(g_u).to(dt), *(torch.from_numpy(g.sum(0)).to(dt) for g in g_par))


def ltc_numba(x: torch.Tensor, v0: torch.Tensor, p: LTCParams,
              elapsed: Union[float, torch.Tensor, None] = None, unfolds: int = 6,
              epsilon: float = 1e-8) -> torch.Tensor:
    """All T LTC steps in one Numba call: ``x [T, B, F]``, ``v0 [B, H]`` -> states ``[T, B, H]``.

    Same contract and numbers as looping ``ltc_step`` over time (``p`` effective parameters,
    ``elapsed`` a float or ``[T]`` / ``[T, B]``); differentiable w.r.t. x, v0, elapsed and every
    field of ``p``.  Outputs: ``ltc_output(states, p)``.
    """
    if not isinstance(x, torch.Tensor) or x.dim() != 3 or x.shape[-1] != p.in_features or not x.is_floating_point():
        got = f"{list(x.shape)} {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__
        raise ShapeError(f"ltc_numba expects a floating x of shape [T, B, {p.in_features}], got {got}")
    T, B, _ = x.shape
    H = p.hidden
    if not isinstance(v0, torch.Tensor) or tuple(v0.shape) != (B, H) or not v0.is_floating_point():
        raise ShapeError(f"ltc_numba expects a floating v0 of shape [{B}, {H}]")
    if x.device.type != "cpu":
        raise ConfigError("ltc_numba runs on CPU tensors only")
    if isinstance(unfolds, bool) or not isinstance(unfolds, int) or unfolds < 1:
        raise ConfigError(f"unfolds must be a positive int, got {unfolds!r}")
    check_ltc_params(p)
    if elapsed is None:
        elapsed = 1.0
    if isinstance(elapsed, torch.Tensor):
        e = elapsed.to(x.dtype)
        if e.dim() == 1 and e.shape[0] == T:
            e = e[:, None]
        elif not (e.dim() == 0 or (e.dim() == 2 and tuple(e.shape) == (T, B))):
            raise ShapeError(f"elapsed must be a float or a tensor [{T}] / [{T}, {B}], got {list(e.shape)}")
        if not bool((torch.isfinite(e) & (e > 0)).all()):
            raise ConfigError("elapsed times must be positive and finite")
        e = e.expand(T, B)[..., None]
    else:
        if not (isinstance(elapsed, (int, float)) and math.isfinite(elapsed) and elapsed > 0):
            raise ConfigError(f"elapsed must be positive and finite, got {elapsed!r}")
        e = float(elapsed)
    # ltc_sensory, with its synapse sums in the kernels' synapse loop
    s_num, s_den = _SensorySums.apply(ltc_map_inputs(x.reshape(T * B, -1), p), p.sensory_w * p.sensory_mask,
                                      p.sensory_mu, p.sensory_sigma, p.sensory_erev)
    a = (p.gleak * p.vleak + s_num).reshape(T, B, H)
    d = (p.gleak + s_den + epsilon).reshape(T, B, H)
    cmt = (p.cm / (e / unfolds)).expand(T, B, H)                # as ltc_unfold's cm_t
    wm = p.w * p.mask
    return _LTCUnfolds.apply(a, d, cmt, v0, wm, p.mu, p.sigma, p.erev, unfolds)


__all__ = ["ltc_numba"]

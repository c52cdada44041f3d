"""Event-driven 2-D convolution of spike frames: each input event adds its kernel patch.

y[t, b, o, i, j] = bias[o] + sum_{c, u, v} w[o, c, u, v] x[t, b, c, i*sh - ph + u, j*sw - pw + v]

(``torch.nn.functional.conv2d`` with groups = dilation = 1, on every frame of x [T, B, C, H, W]).
An input event (c, y, x) with value a reaches the outputs (i, j) with i*sh - ph + u = y and
j*sw - pw + v = x: it adds ``a * w[:, c, u, v]`` there, so a frame costs events x kh x kw x
C_out multiply-adds instead of H_out x W_out x C x kh x kw x C_out.

Layout: each frame is summed in a channels-last scratch [H_out, W_out * C_out] that stays in
cache; with stride 1 along the width, the outputs one event reaches in one kernel row are
consecutive pixels, i.e. one contiguous run of kw * C_out values in the scratch, matched by a
contiguous run of the weights stored as ``wf[c, u, kw - 1 - v, o]`` (width-flipped, channels
last).  Long runs vectorize; an NCHW output would give C_out runs of kw each.  The finished
frame is written (plus bias) to the NCHW output once.  The weight gradient walks the same
events with the output gradient of the frame transposed into the same scratch layout:
dwf[c, u, run] += a * g[i, run].  The input gradient (dense: the surrogate gradient reaches
every neuron) is torch's transposed convolution.

Events are sample-major CSR rows r = b * T + t over the flattened (c, y, x) index of a frame
(``core.Events`` of frames [T, B, C*H*W], or ``event_scan.frames_to_csr``).
"""
from __future__ import annotations

import numba
import numpy as np
import torch
from numba import prange

from ..errors import ShapeError
from .event_scan import frames_to_csr

# Share of nonzero inputs above which torch's dense convolution (oneDNN) is faster than the
# event scatter, measured on benchmarks/conv_nmnist.py's layers (T=30, batch 32, one thread,
# on a loaded 2-core machine, so roughly): 2->12 channels 5x5, forward ~0.15-0.2, forward +
# weight gradient ~0.2-0.3; 12->32 channels 5x5, forward ~0.07-0.1, forward + weight gradient
# ~0.1-0.2.  0.2 favours training (where the weight gradient dominates).
MAX_DENSITY = 0.2


@numba.njit(inline="always", cache=True)
def _div(k, n, inv):
    """k // n for 0 <= k < 2**31 through a float multiply (``inv`` = 1 / n) and one correction:
    an integer division costs ~25-40 cycles, and an event needs several."""
    q = np.int64(k * inv)
    if q * n > k:
        q -= 1
    elif (q + 1) * n <= k:
        q += 1
    return q


@numba.njit(inline="always", cache=True)
def _event_site(k, HW, W, inv_hw, inv_w):
    """(channel, row, column) of flattened input index k of a [C, H, W] frame."""
    c = _div(k, HW, inv_hw)
    r = k - c * HW
    y = _div(r, W, inv_w)
    return c, y, r - y * W


@numba.njit(inline="always", cache=True)
def _axpy(dst, d0, src, s0, a, n) -> None:
    """dst[d0:d0+n] += a * src[s0:s0+n].  Bounded slices: indexing whole rows at an offset
    (dst[d0 + q]) keeps Numba's negative-index handling in the loop and measured 3-6x slower."""
    d = dst[d0:d0 + n]
    s = src[s0:s0 + n]
    for q in range(n):
        d[q] += a * s[q]


@numba.njit(inline="always", cache=True)
def _patch(img, wk, a, y, x, ph, pw, sh, sw, Co, grad) -> None:
    """The multiply-adds of one event (value a at row y, column x) between a frame's
    channels-last sums ``img`` [Ho, Wo * Co] and its channel's flipped taps ``wk`` [kh, kw * Co]:
    img += a * taps (forward), or taps += a * img (``grad``: the weight gradient, img holding
    the output gradient)."""
    Ho = img.shape[0]
    Wo = img.shape[1] // Co
    kh = wk.shape[0]
    kw = wk.shape[1] // Co
    if sh == 1:  # the rows reached form one range of taps: no divisions
        u0 = max(0, y + ph - Ho + 1)
        u1 = min(kh, y + ph + 1)
    else:
        u0, u1 = 0, kh
    for u in range(u0, u1):
        i = y + ph - u
        if sh != 1:
            if i < 0 or i % sh != 0:
                continue
            i //= sh
            if i >= Ho:
                continue
        irow = img[i]
        wrow = wk[u]
        if sw == 1:
            # outputs j = x + pw - v for taps v: consecutive pixels, one run of n * Co values
            j0 = x + pw - kw + 1
            v0 = 0
            if j0 < 0:
                v0 = -j0
                j0 = 0
            n = (min(x + pw, Wo - 1) - j0 + 1) * Co
            if n > 0:
                if grad:
                    _axpy(wrow, v0 * Co, irow, j0 * Co, a, n)
                else:
                    _axpy(irow, j0 * Co, wrow, v0 * Co, a, n)
        else:
            for v in range(kw):
                j = x + pw - v
                if j < 0 or j % sw != 0:
                    continue
                j //= sw
                if j >= Wo:
                    continue
                if grad:
                    _axpy(wrow, (kw - 1 - v) * Co, irow, j * Co, a, Co)
                else:
                    _axpy(irow, j * Co, wrow, (kw - 1 - v) * Co, a, Co)


@numba.njit(cache=True, error_model="numpy")
def conv_frame(acc, wf, idx, val, e0: int, e1: int, H: int, W: int, sh: int, sw: int, ph: int, pw: int,
               Co: int) -> None:
    """acc [Ho, Wo * Co] (a frame's channels-last sums) += the kernel patches of the events
    e0 <= e < e1 (value val[e] at the flattened (c, y, x) index idx[e] of a [C, H, W] frame);
    wf [C, kh, kw * Co]: the flipped taps.  The one summation of every event-driven convolution
    (the modules' and the event core's), so they agree to the bit."""
    HW = H * W
    inv_hw, inv_w = 1.0 / HW, 1.0 / W
    for e in range(e0, e1):
        c, y, x = _event_site(idx[e], HW, W, inv_hw, inv_w)
        _patch(acc, wf[c], val[e], y, x, ph, pw, sh, sw, Co, False)


@numba.njit(cache=True, error_model="numpy")
def finish_frame(acc, bias, o) -> None:
    """o [Co * Ho * Wo] (NCHW, flattened) = acc [Ho, Wo * Co] (channels-last) + bias [Co]; acc is
    zeroed for the next frame.  Read in order, Co write streams."""
    Co = bias.shape[0]
    Ho = acc.shape[0]
    Wo = acc.shape[1] // Co
    for i in range(Ho):
        arow = acc[i]
        for co in range(Co):
            dst = o[(co * Ho + i) * Wo:(co * Ho + i + 1) * Wo]
            bc = bias[co]
            for j in range(Wo):
                dst[j] = arow[j * Co + co] + bc
        arow[:] = 0


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _conv_forward(ptr, idx, val, T, B, H, W, wf, bias, Ho, Wo, sh, sw, ph, pw, out, bounds):
    # wf [C, kh, kw * Co] (flipped taps, channels last), out [T * B, Co * Ho * Wo] (frame t*B + b).
    Co = bias.shape[0]
    for chunk in prange(bounds.shape[0] - 1):
        acc = np.zeros((Ho, Wo * Co), dtype=out.dtype)
        for f in range(bounds[chunk], bounds[chunk + 1]):
            t = f // B
            b = f - t * B
            r = b * T + t
            if ptr[r + 1] > ptr[r]:
                conv_frame(acc, wf, idx, val, ptr[r], ptr[r + 1], H, W, sh, sw, ph, pw, Co)
            finish_frame(acc, bias, out[f])


@numba.njit(parallel=True, cache=True, error_model="numpy")
def _conv_weight_grad(ptr, idx, val, T, B, H, W, g, Ho, Wo, sh, sw, ph, pw, gwf, bounds):
    # g [T * B, Co, Ho * Wo]; gwf [n_chunks, C, kh, kw * Co]: one slab per chunk of frames, so
    # that no two threads write one element (summed by the caller).
    Co = g.shape[1]
    HW = H * W
    inv_hw, inv_w = 1.0 / HW, 1.0 / W
    for chunk in prange(bounds.shape[0] - 1):
        gacc = np.empty((Ho, Wo * Co), dtype=g.dtype)
        slab = gwf[chunk]
        for f in range(bounds[chunk], bounds[chunk + 1]):
            t = f // B
            b = f - t * B
            r = b * T + t
            if ptr[r + 1] == ptr[r]:
                continue
            gf = g[f]
            for i in range(Ho):
                grow = gacc[i]
                for co in range(Co):
                    src = gf[co, i * Wo:(i + 1) * Wo]
                    for j in range(Wo):
                        grow[j * Co + co] = src[j]
            for e in range(ptr[r], ptr[r + 1]):
                c, y, x = _event_site(idx[e], HW, W, inv_hw, inv_w)
                _patch(gacc, slab[c], val[e], y, x, ph, pw, sh, sw, Co, True)


def _frame_chunks(n_frames: int) -> np.ndarray:
    """Frame boundaries [n_chunks + 1] for the parallel loops (a few chunks per thread)."""
    n = max(1, min(n_frames, 4 * numba.get_num_threads()))
    return np.array([c * n_frames // n for c in range(n)] + [n_frames], dtype=np.int64)


def out_size(size: int, k: int, stride: int, pad: int) -> int:
    """Output length of a convolution or pooling along one axis (no dilation)."""
    return (size + 2 * pad - k) // stride + 1


class EventConv2dFn(torch.autograd.Function):
    """y [T, B, Co, Ho, Wo] = conv2d of frames given as CSR events; gradients for the dense
    input (if it needs one), the weight and the bias.

    Arguments: geometry (T, B, C, H, W, stride, padding), csr (ptr, idx, val), x (the dense
    input the events came from, or None), weight [Co, C, kh, kw], bias [Co] or None.
    """

    @staticmethod
    def forward(ctx, geom, csr, x, weight, bias):  # noqa: D401
        T, B, C, H, W, (sh, sw), (ph, pw) = geom
        Co, _, kh, kw = weight.shape
        Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
        dt = weight.dtype
        b = bias.detach().contiguous() if bias is not None else torch.zeros(Co, dtype=dt)
        wf, bn, _ = conv_args(weight.detach().numpy(), b.numpy(), (C, H, W), (sh, sw), (ph, pw))
        out = torch.empty((T, B, Co, Ho, Wo), dtype=dt)
        bounds = _frame_chunks(T * B)
        _conv_forward(*csr, T, B, H, W, wf, bn, Ho, Wo, sh, sw, ph, pw, out.view(T * B, Co * Ho * Wo).numpy(), bounds)
        ctx.geom, ctx.csr, ctx.has_bias = geom, csr, bias is not None
        ctx.save_for_backward(weight)
        return out

    @staticmethod
    def backward(ctx, g):
        (weight,) = ctx.saved_tensors
        T, B, C, H, W, stride, padding = ctx.geom
        Co, _, kh, kw = weight.shape
        g = g.contiguous()
        Ho, Wo = g.shape[3], g.shape[4]
        gx = gw = gb = None
        if ctx.needs_input_grad[2]:
            gx = torch.nn.grad.conv2d_input((T * B, C, H, W), weight.detach(), g.reshape(T * B, Co, Ho, Wo),
                                            stride=stride, padding=padding).reshape(T, B, C, H, W)
        if ctx.needs_input_grad[3]:
            bounds = _frame_chunks(T * B)
            slabs = np.zeros((bounds.shape[0] - 1, C, kh, kw * Co), dtype=g.numpy().dtype)
            _conv_weight_grad(*ctx.csr, T, B, H, W, g.view(T * B, Co, Ho * Wo).numpy(), Ho, Wo, *stride, *padding,
                              slabs, bounds)
            gwf = torch.from_numpy(slabs.sum(0) if slabs.shape[0] > 1 else slabs[0])
            gw = gwf.reshape(C, kh, kw, Co).permute(3, 0, 1, 2).flip(3).contiguous()
        if ctx.has_bias and ctx.needs_input_grad[4]:
            gb = g.sum((0, 1, 3, 4))
        return None, None, gx, gw, gb


def conv_args(weight: np.ndarray, bias: np.ndarray, shape: tuple[int, int, int], stride: tuple[int, int],
              padding: tuple[int, int]) -> list[np.ndarray]:
    """A convolution's arrays for the compiled kernels (``conv_frame`` / ``finish_frame`` and the
    CUDA network kernel): the flipped channels-last taps wf [C, kh, kw * Co] (tap (co, c, u, v)
    at wf[c, u, (kw - 1 - v) * Co + co]), the bias [Co] and the int64 geometry
    [C, H, W, Co, Ho, Wo, sh, sw, ph, pw, kh, kw] (weight [Co, C, kh, kw], frames ``shape`` (C, H, W))."""
    Co, C, kh, kw = weight.shape
    _, H, W = shape
    wf = np.ascontiguousarray(np.flip(weight, 3).transpose(1, 2, 3, 0)).reshape(C, kh, kw * Co)
    geom = np.array([C, H, W, Co, out_size(H, kh, stride[0], padding[0]), out_size(W, kw, stride[1], padding[1]),
                     *stride, *padding, kh, kw], dtype=np.int64)
    return [wf, np.ascontiguousarray(bias), geom]


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def event_conv2d(x, weight: torch.Tensor, bias: torch.Tensor | None, stride=1, padding=0,
                 input_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Event-driven ``conv2d`` of every frame of x: a CPU float tensor [T, B, C, H, W] (mostly
    zeros), or ``core.Events`` over the C*H*W flattened pixels of each frame (then
    ``input_size`` = (H, W); default: square).  weight [Co, C, kh, kw], bias [Co] or None;
    returns [T, B, Co, Ho, Wo] in the weight's dtype.  Gradients reach weight, bias and a
    dense x."""
    stride, padding = _pair(stride), _pair(padding)
    Co, C, kh, kw = weight.shape
    if isinstance(x, torch.Tensor):
        if x.dim() != 5 or x.shape[2] != C:
            raise ShapeError(f"event_conv2d expects frames [T, B, {C}, H, W], got {tuple(x.shape)}")
        T, B, _, H, W = x.shape
        if x.dtype != weight.dtype:
            raise ShapeError(f"input is {x.dtype}, the weight {weight.dtype}")
        xn = x.detach().contiguous().reshape(T, B, C * H * W).numpy()
        csr = frames_to_csr(xn)
        dense = x
    else:
        T, B, K = x.shape
        H, W = input_size if input_size is not None else square_size(K, C)
        if C * H * W != K:
            raise ShapeError(f"the events have {K} channels per step, not {C} x {H} x {W}")
        if x.val.dtype != weight.detach().numpy().dtype:
            raise ShapeError(f"event values are {x.val.dtype}, the weight {weight.dtype}")
        csr, dense = (x.ptr, x.idx, x.val), None
    Ho, Wo = out_size(H, kh, stride[0], padding[0]), out_size(W, kw, stride[1], padding[1])
    if Ho < 1 or Wo < 1:
        raise ShapeError(f"a {kh}x{kw} kernel (stride {stride}, padding {padding}) does not fit a {H}x{W} input")
    return EventConv2dFn.apply((T, B, C, H, W, stride, padding), csr, dense, weight, bias)


def square_size(K: int, C: int) -> tuple[int, int]:
    """(H, W) of a square frame of C channels and K values, or ShapeError."""
    side = int(round((K / C) ** 0.5)) if K % C == 0 else 0
    if side * side * C != K:
        raise ShapeError(f"{K} values per step are not {C} square channels: give input_size=(H, W)")
    return side, side


__all__ = ["EventConv2dFn", "MAX_DENSITY", "conv_args", "conv_frame", "event_conv2d", "finish_frame", "out_size", "square_size"]

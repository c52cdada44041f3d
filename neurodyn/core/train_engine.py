"""Generate the fused training kernels of a Linear -> neuron stack: one forward, one backward.

The dense training path runs a layer at a time and moves every [T, B, N] intermediate
(input current, spikes, state trajectory, and their gradients) through memory.  For a
stack of (Linear, neuron) layers fed sparse input, these two kernels instead walk each
sample through all layers, step by step, with the layer's rows in cache:

- ``train_forward``: input events are found in the dense frames (``event_scan.row_nonzeros``)
  or read from given event lists (``events_in``: ``core.Events``), and their weight rows
  added (``kernels.row_adds``, as the event core and the event-driven Linear add them: the
  same sums to the bit); hidden layers pass spikes as events (spike lists), so the next
  layer adds one weight row per spike.  Kept for the backward: every layer's input current
  [B, T, N], the input events and the hidden spike lists (per sample, in its own region).
  The state trajectory is not kept.
- ``train_backward``: per sample, first the state trajectory is recomputed from the kept
  currents with the same step functions (into a [T + 1, N] buffer that stays in cache),
  then BPTT runs in reverse time through all layers with the derived VJPs.  Weight
  gradients are summed over the events of a block of samples grouped by input
  (``row_adds.scatter_grouped``: one pass over a gradient row per four events), or, for a
  gradient that fits in L1 (``direct``), step by step (``row_adds.scatter_row``); bias and
  coefficient gradients summed; each thread-chunk of samples owns its gradient slab (no
  atomics; the caller sums the slabs), so results do not depend on scheduling.

The neuron math is the derived step/VJP of ``neurons.symbolic`` (the same source as the
per-layer kernels); the VJP of each layer is renamed per layer so layers with different
surrogates can share a kernel.
"""
from __future__ import annotations

import re
from functools import lru_cache
from types import ModuleType

from ..kernels.codegen import HEADER, decorated, load_module, typed_prelude, surrogate_src, typed_literals
from ..neurons.base import NeuronModel

# (model, surrogate name, alpha, coefficient-gradient flags, dropout on its output) per layer
LayerSig = tuple[NeuronModel, str, float, tuple[bool, ...], bool]


def _layer_vjp(model: NeuronModel, li: int) -> str:
    """The derived VJP of ``model`` renamed ``<step>_vjp_<li>``, calling ``spike_grad_<li>``."""
    d = model.derived
    src = d.vjp_src.replace(f"def {d.step_name}_vjp(", f"def {d.step_name}_vjp_{li}(", 1)
    return re.sub(r"\bspike_grad\(", f"spike_grad_{li}(", src)


def render_train_module(signature: tuple[LayerSig, ...], dtype: str = "float32", part: str = "forward",
                        events_in: bool = False) -> str:
    """Source of ``train_forward`` (``part='forward'``) or ``train_backward`` for ``signature``.

    Every layer but the last must be spiking (its output is passed on as events).  The
    forward does not depend on surrogates or gradient flags (one compiled forward serves
    them all).  ``events_in``: the forward reads the input as given event lists (``core.Events``)
    instead of finding them in frames.
    """
    if dtype not in ("float32", "float64"):
        raise ValueError(f"training kernel dtype must be float32 or float64, got {dtype!r}")
    if part not in ("forward", "backward"):
        raise ValueError(f"part must be 'forward' or 'backward', got {part!r}")
    if not signature:
        raise ValueError("a fused stack needs at least one layer")
    for m, *_ in signature[:-1]:
        if not m.spiking:
            raise ValueError(f"hidden layer neuron '{m.name}' is not spiking: it cannot pass events on")
    if signature[-1][4]:
        raise ValueError("dropout on the last layer's output is not part of a fused stack")
    parts = [HEADER.format(name=_sig_name(signature), sg="per layer" if part == "backward" else None, alpha=None)]
    parts.append("from neurodyn.kernels.event_scan import row_nonzeros\n")
    parts.append("from neurodyn.kernels.row_adds import add_dense_rows, add_rows, block_events, scatter_grouped, "
                 "scatter_row\n")
    parts.append(typed_prelude(dtype))
    seen_sg, seen_step = set(), set()
    for li, (m, sg, alpha, *_) in enumerate(signature):
        if m.name not in seen_step:
            parts.append(decorated(typed_literals(m.derived.step_src)))
            seen_step.add(m.name)
        parts.append(_step_row(li, m))
        if part == "backward":
            if sg not in seen_sg:
                parts.append(surrogate_src(sg))
                seen_sg.add(sg)
            parts.append(decorated(f"def spike_grad_{li}(u):\n    return sg_{sg}(u, F({float(alpha)!r}))\n"))
            parts.append(decorated(typed_literals(_layer_vjp(m, li))))
            parts.append(_vjp_row(li, signature[li]))
    parts.append(_forward(signature, events_in) if part == "forward" else _backward(signature))
    return "".join(parts)


# How the loops over one row [N] of neurons are compiled.  A separate (not inlined) function
# costs ~100 ns per call in the arrays it is passed (each one reference-counted), which over
# the B * T * layers calls of a step adds up to milliseconds; inlined, the step loops
# vectorize inside the kernels as well (measured faster or equal for LIF, CUBA and ALIF).
# The VJP loops only do so when small: a one-state VJP that sums no coefficient gradient
# (LIF, fixed time constants; backward -8%).  Larger ones (two states, as CUBA and ALIF, or
# coefficient gradients summed, as with learnable time constants) are 1.4-1.9x slower
# inlined, float32 and float64 alike (LLVM leaves them scalar), so they stay called.
_CALLED = '@numba.njit(cache=True, error_model="numpy")'
_INLINED = "@_inl"
STEP_DECO, VJP_SMALL_DECO, VJP_LARGE_DECO = _INLINED, _INLINED, _CALLED


def _vjp_deco(m: NeuronModel, need_c: tuple[bool, ...]) -> str:
    """How ``vjp_row`` of a layer is compiled: inlined only when its VJP is small (see above)."""
    return VJP_SMALL_DECO if len(m.states) == 1 and not any(need_c) else VJP_LARGE_DECO


def _step_row(li: int, m: NeuronModel) -> str:
    """``step_row_<li>(x, *states, *coefs, o)``: one step of a row of neurons, states in place."""
    S = list(m.states)
    st = [f"s_{s}" for s in S]
    cs = [f"c_{c}" for c in m.coefs]
    step = [
        STEP_DECO,
        f"def step_row_{li}(x, {', '.join(st)}, {', '.join(cs)}, o):",
        "    for j in range(x.shape[0]):",
        f"        ov, {', '.join('n_' + s for s in S)}, = {m.derived.step_name}(x[j], "
        f"{', '.join(v + '[j]' for v in st + cs)})",
        "        o[j] = ov",
    ] + [f"        s_{s}[j] = n_{s}" for s in S]
    return "\n".join(step) + "\n\n\n"


def _vjp_row(li: int, layer: LayerSig) -> str:
    """``vjp_row_<li>(x, *prev states, *coefs, g_o, *adjoints, g_x, g_b, g_c)``: the step's VJP
    over a row, adjoints in place, bias and (needed) coefficient gradients [C, N] accumulated."""
    m, _, _, need_c, _ = layer
    S, C = list(m.states), list(m.coefs)
    st = [f"s_{s}" for s in S]
    cs = [f"c_{c}" for c in C]
    ad = [f"a_{s}" for s in S]
    outs = ["d_x"] + [f"d_{s}" for s in S] + [f"d_{c}" for c in C]
    vjp = [
        _vjp_deco(m, need_c),
        f"def vjp_row_{li}(x, {', '.join(st)}, {', '.join(cs)}, g_o, {', '.join(ad)}, g_x, g_b, g_c):",
        "    for j in range(x.shape[0]):",
        f"        {', '.join(outs)}, = {m.derived.step_name}_vjp_{li}(x[j], {', '.join(v + '[j]' for v in st + cs)}, "
        f"g_o[j], {', '.join(a + '[j]' for a in ad)})",
        "        g_x[j] = d_x",
        "        g_b[j] += d_x",
    ] + [f"        a_{s}[j] = d_{s}" for s in S]
    vjp += [f"        g_c[{k}, j] += d_{c}" for k, (c, need) in enumerate(zip(C, need_c)) if need]
    return "\n".join(vjp) + "\n\n\n"


def _event_args(li: int, signature: tuple[LayerSig, ...]) -> list[str]:
    """A hidden layer's spike-list arrays (and its dropout mask [T, B, N] if it has one)."""
    if li == len(signature) - 1:
        return []
    return [f"sp_beg{li}", f"sp_cnt{li}", f"sp_idx{li}", f"sp_val{li}"] + ([f"D{li}"] if signature[li][4] else [])


def _layer_args(li: int, m: NeuronModel) -> list[str]:
    return [f"c{li}_{c}" for c in m.coefs] + [f"i{li}_{s}" for s in m.states]


def _forward(signature: tuple[LayerSig, ...], events_in: bool) -> str:
    L = len(signature)
    args = (["steps"] if events_in else ["X", "Xb", "xmask", "steps"]) + ["in_beg", "in_cnt", "in_idx", "in_val"]
    for li, (m, *_) in enumerate(signature):
        args += [f"W{li}", f"b{li}"] + _layer_args(li, m) + [f"cur{li}"] + _event_args(li, signature)
    args += ["out"]
    i1, i2, i3 = " " * 8, " " * 12, " " * 16
    body = [
        '@numba.njit(parallel=True, cache=True, error_model="numpy")',
        f"def train_forward({', '.join(args)}):",
        "    T, B = out.shape[0], out.shape[1]",
    ]
    if not events_in:
        body.append("    K = X.shape[2]")
    body += ["    for b in prange(B):", f"{i1}Tb = steps[b]"]
    if not events_in:  # the events found go to the sample's own region of the buffers
        body += [f"{i1}act = np.empty(K, dtype=np.int32)", f"{i1}e = b * T * K"]
    for li, (m, *_) in enumerate(signature):
        body.append(f"{i1}N{li} = W{li}.shape[1]")
        body.append(f"{i1}cu{li} = np.empty(N{li}, dtype=out.dtype)")
        body.append(f"{i1}o{li} = np.empty(N{li}, dtype=out.dtype)")
        for s in m.states:
            body.append(f"{i1}s{li}_{s} = i{li}_{s}.copy()")
        if li < L - 1:
            body.append(f"{i1}f{li} = b * T * N{li}")
    body.append(f"{i1}for t in range(Tb):")
    body.append(f"{i2}r = b * T + t")
    for li, (m, *_) in enumerate(signature):
        body += [f"{i2}for j in range(N{li}):", f"{i3}cu{li}[j] = b{li}[j]"]
        if li == 0 and events_in:
            body.append(f"{i2}add_rows(cu0, W0, in_idx, in_val, in_beg[r], in_beg[r] + in_cnt[r])")
        elif li == 0:
            body += [
                f"{i2}xr = X[t, b]",
                f"{i2}nin = row_nonzeros(Xb[t, b], xmask, act)",
                f"{i2}in_beg[r] = e",
                f"{i2}in_cnt[r] = nin",
                f"{i2}for q in range(nin):",
                f"{i3}k = act[q]",
                f"{i3}in_idx[e + q] = k",
                f"{i3}in_val[e + q] = xr[k]",
                f"{i2}add_rows(cu0, W0, in_idx, in_val, e, e + nin)",
                f"{i2}e += nin",
            ]
        else:
            p = li - 1
            body.append(f"{i2}add_rows(cu{li}, W{li}, sp_idx{p}, sp_val{p}, sp_beg{p}[r], sp_beg{p}[r] + sp_cnt{p}[r])")
        st = ", ".join(f"s{li}_{s}" for s in m.states)
        cs = ", ".join(f"c{li}_{c}" for c in m.coefs)
        body += [f"{i2}step_row_{li}(cu{li}, {st}, {cs}, o{li})", f"{i2}cur{li}[b, t, :] = cu{li}"]
        if li < L - 1:
            # Branch-free append (write always, advance on an event) into the sample's region;
            # an event's value is the spike times its dropout mask (dropped spikes are no event).
            drop = signature[li][4]
            body += [f"{i2}sp_beg{li}[r] = f{li}", f"{i2}n = 0"]
            body += [f"{i2}dr = D{li}[t, b]"] if drop else []
            body += [
                f"{i2}for j in range(N{li}):",
                f"{i3}v = o{li}[j] * dr[j]" if drop else f"{i3}v = o{li}[j]",
                f"{i3}sp_idx{li}[f{li} + n] = j",
                f"{i3}sp_val{li}[f{li} + n] = v",
                f"{i3}n += v != 0.0",
                f"{i2}sp_cnt{li}[r] = n",
                f"{i2}f{li} += n",
            ]
        else:
            body.append(f"{i2}out[t, b, :] = o{li}")
    body += [f"{i1}for t in range(Tb, T):", f"{i2}out[t, b, :] = 0.0"]
    return "\n".join(body) + "\n\n\n"


def _events(li: int) -> tuple[str, str, str, str]:
    """Names of the CSR arrays (beg, cnt, idx, val) of the events feeding layer ``li``."""
    return ("in_beg", "in_cnt", "in_idx", "in_val") if li == 0 else tuple(
        f"sp_{a}{li - 1}" for a in ("beg", "cnt", "idx", "val"))


def _backward(signature: tuple[LayerSig, ...]) -> str:
    L = len(signature)
    args = ["steps", "bounds", "sblock", "direct", "in_beg", "in_cnt", "in_idx", "in_val"]
    for li, (m, *_) in enumerate(signature):
        args += [f"V{li}"] + _layer_args(li, m) + [f"cur{li}"] + _event_args(li, signature)
        args += [f"gW{li}", f"gb{li}", f"gc{li}"]
    args += ["g_out"]
    i1, i2, i3, i4 = (" " * n for n in (8, 12, 16, 20))
    body = [
        '@numba.njit(parallel=True, cache=True, error_model="numpy")',
        f"def train_backward({', '.join(args)}):",
        "    T = cur0.shape[1]",
        "    for c in prange(bounds.shape[0] - 1):",
    ]
    # Per-chunk buffers: the recomputed state history [T + 1, N] per state, adjoints, the
    # gradient reaching the layer's output, the current gradients of a block of sblock samples
    # (GX [sblock * T, N], for the weight gradient) and the buffers to sort the block's events.
    for li, (m, *_) in enumerate(signature):
        body.append(f"{i1}N{li} = cur{li}.shape[2]")
        for s in m.states:
            body.append(f"{i1}h{li}_{s} = np.empty((T + 1, N{li}), dtype=g_out.dtype)")
            body.append(f"{i1}a{li}_{s} = np.empty(N{li}, dtype=g_out.dtype)")
            body.append(f"{i1}p{li}_{s} = np.empty(N{li}, dtype=g_out.dtype)")
        body.append(f"{i1}o{li} = np.empty(N{li}, dtype=g_out.dtype)")
        if li < L - 1:
            body.append(f"{i1}go{li} = np.empty(N{li}, dtype=g_out.dtype)")
        body += [f"{i1}gWc{li} = gW{li}[c]", f"{i1}gbc{li} = gb{li}[c]", f"{i1}gcc{li} = gc{li}[c]"]
        cnt = _events(li)[1]
        body += [
            f"{i1}GX{li} = np.empty((sblock * T, N{li}), dtype=g_out.dtype)",
            f"{i1}mx{li} = 0",
            f"{i1}for b0 in range(bounds[c], bounds[c + 1], sblock):",
            f"{i2}if not direct[{li}]:",
            f"{i3}mx{li} = max(mx{li}, block_events({cnt}, steps, T, b0, min(b0 + sblock, bounds[c + 1])))",
            f"{i1}pos{li} = np.empty(gW{li}.shape[1] + 1, dtype=np.int64)",
            f"{i1}et{li} = np.empty(mx{li}, dtype=np.int64)",
            f"{i1}ev{li} = np.empty(mx{li}, dtype=g_out.dtype)",
        ]
    body.append(f"{i1}for b0 in range(bounds[c], bounds[c + 1], sblock):")
    body.append(f"{i2}b1 = min(b0 + sblock, bounds[c + 1])")
    body.append(f"{i2}for b in range(b0, b1):")
    body.append(f"{i3}Tb = steps[b]")
    # Recompute every layer's state trajectory from its kept input current.
    for li, (m, *_) in enumerate(signature):
        st = ", ".join(f"p{li}_{s}" for s in m.states)
        cs = ", ".join(f"c{li}_{c}" for c in m.coefs)
        # (state stepped in its own buffer p, then copied into the history)
        body += [f"{i3}p{li}_{s}[:] = i{li}_{s}" for s in m.states]
        body += [f"{i3}h{li}_{s}[0, :] = i{li}_{s}" for s in m.states]
        body += [f"{i3}a{li}_{s}[:] = 0.0" for s in m.states]
        body += [f"{i3}for t in range(Tb):", f"{i4}step_row_{li}(cur{li}[b, t], {st}, {cs}, o{li})"]
        body += [f"{i4}h{li}_{s}[t + 1, :] = p{li}_{s}" for s in m.states]
    body.append(f"{i3}for t in range(Tb - 1, -1, -1):")
    for li in range(L - 1, -1, -1):
        m = signature[li][0]
        g_o = "g_out[t, b]" if li == L - 1 else f"go{li}"
        st = ", ".join(f"h{li}_{s}[t]" for s in m.states)
        cs = ", ".join(f"c{li}_{c}" for c in m.coefs)
        adj = ", ".join(f"a{li}_{s}" for s in m.states)
        # the current gradient goes to the block's GX row (the weight gradient is summed from it)
        body.append(f"{i4}gxr = GX{li}[(b - b0) * T + t]")
        body.append(f"{i4}vjp_row_{li}(cur{li}[b, t], {st}, {cs}, {g_o}, {adj}, gxr, gbc{li}, gcc{li})")
        beg, cnt, idx, val = _events(li)
        row = f"{beg}[b * T + t]"
        body += [f"{i4}if direct[{li}]:",
                 f"{i4}    scatter_row(gWc{li}, gxr, {idx}, {val}, {row}, {row} + {cnt}[b * T + t])"]
        if li > 0:
            p = li - 1
            # gradient reaching the previous layer's output: gx [N_out] @ V [N_out, N_in]
            body += [f"{i4}go{p}[:] = 0.0", f"{i4}add_dense_rows(go{p}, gxr, V{li})"]
            if signature[p][4]:  # through the dropout mask
                body += [f"{i4}dr = D{p}[t, b]", f"{i4}for k in range(N{p}):", f"{i4}    go{p}[k] *= dr[k]"]
    # Weight gradients of the block: each layer's events grouped by input (row_adds.scatter_grouped).
    for li in range(L):
        ev = ", ".join(_events(li))
        body += [f"{i2}if not direct[{li}]:",
                 f"{i3}scatter_grouped(gWc{li}, GX{li}, {ev}, steps, T, b0, b1, pos{li}, et{li}, ev{li})"]
    return "\n".join(body) + "\n"


@lru_cache(maxsize=None)
def _sig_name(signature: tuple[LayerSig, ...]) -> str:
    return "_".join(s[0].name + ("_d" if s[4] else "") for s in signature)


@lru_cache(maxsize=None)
def train_kernels(signature: tuple[LayerSig, ...], dtype: str = "float32", part: str = "forward",
                  events_in: bool = False) -> ModuleType:
    """Compiled (lazily) fused training kernel module (``part``: 'forward' | 'backward';
    ``events_in``: a forward fed event lists, ``core.Events``, instead of frames)."""
    if part == "forward":  # one forward for every surrogate and gradient variant
        signature = tuple((m, "atan", 2.0, (), drop) for m, _, _, _, drop in signature)
    stem = f"train_{part[:3]}{'_ev' if events_in and part == 'forward' else ''}_{_sig_name(signature)}_{dtype}"
    return load_module(render_train_module(signature, dtype, part, events_in and part == "forward"), stem)


__all__ = ["render_train_module", "train_kernels", "LayerSig"]

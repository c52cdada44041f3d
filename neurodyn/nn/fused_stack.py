"""Train a Linear -> neuron stack with the fused event-driven kernels (``core.train_engine``).

``stack_layers(modules, training)`` gives the (Linear, neuron) layers of a list of torch
modules, or why they cannot run fused (``nn.sequential.Sequential._plan`` adds the checks on the input);
``run_stack`` runs them as one autograd Function whose gradients reach the Linear weights and
biases and the neuron coefficients (so learnable time constants learn), exactly as the
layer-by-layer modules would compute them.  When no gradient is needed it runs the event
core's inference kernel instead (``_infer``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numba
import numpy as np
import torch
from torch import nn

from ..kernels.dispatch import prepare_coefs, step_counts
from ..kernels.event_scan import bits
from .neurons import SpikingNeuron
from ..core.events import Events
from ..core.train_engine import train_kernels


@dataclass(frozen=True)
class StackLayer:
    """A Linear, the neuron it feeds, and the dropout probability applied to the neuron's output."""

    linear: nn.Linear
    neuron: SpikingNeuron
    dropout: float = 0.0


def stack_layers(modules: list[nn.Module], training: bool) -> list[StackLayer] | str:
    """The (Linear, neuron) pairs of ``modules``, or the reason they cannot run fused."""
    from .delays import DelayedLinear
    layers: list[StackLayer] = []
    pending = None
    for m in modules:
        if isinstance(m, nn.Identity) or (isinstance(m, nn.Dropout) and (not training or m.p == 0)):
            continue
        if type(m) is nn.Dropout:  # while training: a mask on the previous neuron's spikes
            if pending is not None or not layers or layers[-1].dropout:
                return "Dropout not directly after a neuron"
            layers[-1] = replace(layers[-1], dropout=float(m.p))
            continue
        if isinstance(m, DelayedLinear) or (isinstance(m, nn.Linear) and getattr(m, "event", "auto") is False):
            return f"{type(m).__name__} with event=False or delays"
        if isinstance(m, nn.Linear):
            if pending is not None:
                return "two Linear layers in a row"
            pending = m
        elif isinstance(m, SpikingNeuron):
            if pending is None:
                return f"{type(m).__name__} not after a Linear"
            if m.stateful:
                return "a stateful neuron (state carried between calls)"
            if m.backend not in ("auto", "numba"):
                return f"a neuron with backend '{m.backend}'"
            layers.append(StackLayer(pending, m))
            pending = None
        else:
            return f"module {type(m).__name__}"
    if pending is not None or not layers:
        return "the stack does not end in a neuron"
    if layers[-1].dropout:
        return "Dropout after the last neuron"
    for lay in layers[:-1]:
        if not lay.neuron.model.spiking:
            return f"hidden neuron {type(lay.neuron).__name__} does not spike"
    return layers


class FusedStackFn(torch.autograd.Function):
    """out [T, B, N_last] of the stack; arguments: spec (per layer: (model, surrogate, alpha),
    initial states, coefficient counts, dropout masks [T, B, N] or None), x: frames [T, B, K]
    or ``Events``, steps [B] (int64 numpy), then per layer weight [N, K_l], bias [N] (or None),
    coefficients ([N] each)."""

    @staticmethod
    def forward(ctx, spec, x, steps, *params):  # noqa: D401
        sig_models, inits, n_coefs, masks = spec
        T, B, K = x.shape
        dt = _np_dtype(x)
        starts = _param_starts(n_coefs)
        arrays = _layer_arrays(params, n_coefs, dt)
        # params start at forward's input 3
        need_c = [tuple(bool(ctx.needs_input_grad[3 + i + 2 + k]) for k in range(nc)) for i, nc in zip(starts, n_coefs)]
        L = len(n_coefs)
        sig = tuple((m, sg, a, nc, masks[li] is not None) for li, ((m, sg, a), nc) in enumerate(zip(sig_models, need_c)))
        dmasks = [None if mk is None else mk.detach().contiguous().numpy() for mk in masks]
        kern = train_kernels(sig, dt.name, "forward", events_in=isinstance(x, Events))
        if isinstance(x, Events):  # the given lists are the input events
            in_beg, in_cnt, in_idx, in_val = x.ptr[:-1], np.diff(x.ptr), x.idx, x.val
            args: list = [steps, in_beg, in_cnt, in_idx, in_val]
        else:
            # Event regions: each sample owns T * width slots, so the forward (parallel over
            # samples) writes them without coordination; untouched pages cost nothing.
            xn = x.detach().contiguous().numpy()
            in_beg = np.zeros(B * T, dtype=np.int64)
            in_cnt = np.zeros(B * T, dtype=np.int64)
            in_idx = _lazy(B * T * K, np.int32)
            in_val = _lazy(B * T * K, dt)
            args = [xn, *bits(xn), steps, in_beg, in_cnt, in_idx, in_val]
        curs, spikes = [], []
        for li in range(L):
            w_t, bias, coefs = arrays[li]
            n = w_t.shape[1]
            cur = np.empty((B, T, n), dtype=dt)  # sample-major: each sample's rows are contiguous
            curs.append(cur)
            args += [w_t, bias, *coefs] + [s.numpy() for s in inits[li]] + [cur]
            if li < L - 1:
                sp = (np.zeros(B * T, dtype=np.int64), np.zeros(B * T, dtype=np.int64),
                      _lazy(B * T * n, np.int32), _lazy(B * T * n, dt))
                sp += (dmasks[li],) if dmasks[li] is not None else ()
                spikes.append(sp)
                args += list(sp)
        out = torch.empty((T, B, arrays[-1][0].shape[1]), dtype=x.dtype)
        args.append(out.numpy())
        kern.train_forward(*args)
        ctx.sig, ctx.steps, ctx.events = sig, steps, (in_beg, in_cnt, in_idx, in_val)
        # saved through autograd: an in-place change of a weight before backward is an error
        ctx.save_for_backward(*(params[j] for j in starts))
        ctx.curs, ctx.spikes, ctx.coefs, ctx.inits = curs, spikes, [a[2] for a in arrays], inits
        ctx.has_bias = [params[j + 1] is not None for j in starts]
        ctx.n_coefs, ctx.need_c = n_coefs, need_c
        return out

    @staticmethod
    def backward(ctx, g_out):
        L = len(ctx.n_coefs)
        B, T, _ = ctx.curs[0].shape
        g = g_out.detach().contiguous().numpy()
        nch = max(1, min(numba.get_num_threads(), B))
        bounds = np.array([B * c // nch for c in range(nch + 1)], dtype=np.int64)
        weights = [w.detach() for w in ctx.saved_tensors]
        direct = np.array([_direct_scatter(w.shape[1], w.shape[0], g.itemsize) for w in weights], dtype=np.bool_)
        args: list = [ctx.steps, bounds, _sample_block(T, max(w.shape[0] for w in weights), g.itemsize), direct,
                      *ctx.events]
        slabs = []
        for li in range(L):
            w = weights[li]
            n, k = w.shape
            gw = np.zeros((nch, k, n), dtype=g.dtype)
            gb = np.zeros((nch, n), dtype=g.dtype)
            gc = np.zeros((nch, max(1, ctx.n_coefs[li]), n), dtype=g.dtype)
            slabs.append((gw, gb, gc))
            args += [w.contiguous().numpy()] + list(ctx.coefs[li])
            args += [s.numpy() for s in ctx.inits[li]] + [ctx.curs[li]]
            if li < L - 1:
                args += list(ctx.spikes[li])
            args += [gw, gb, gc]
        args.append(g)
        train_kernels(ctx.sig, g.dtype.name, "backward").train_backward(*args)
        grads: list = [None, None, None]
        for li, (gw, gb, gc) in enumerate(slabs):
            # [N, K] in the weight's own layout: autograd then keeps it instead of copying it
            grads.append(torch.from_numpy(np.ascontiguousarray((gw[0] if gw.shape[0] == 1 else gw.sum(0)).T)))
            grads.append(torch.from_numpy(gb.sum(0)) if ctx.has_bias[li] else None)
            gcs = gc.sum(0)
            grads += [torch.from_numpy(gcs[k].copy()) if need else None for k, need in enumerate(ctx.need_c[li])]
        return tuple(grads)


def _sample_block(T: int, widest: int, itemsize: int) -> int:
    """Samples per block of the backward's weight-gradient sums: their current gradients
    [block * T, widest] take about 256 KB (half this machine's L2 per core), 1 to 8 samples."""
    return int(max(1, min(8, (256 * 1024) // (T * widest * itemsize))))


def _direct_scatter(K: int, N: int, itemsize: int) -> bool:
    """Whether a [N, K] weight's gradient is summed step by step (each step's current gradient
    added onto the rows of that step's events while it is in cache) rather than per sample
    block grouped by input: when the gradient fits in L1 (64 KB), so per-event row updates hit
    cache; larger ones would be fetched from L3 once per event (``row_adds.scatter_grouped``)."""
    return K * N * itemsize <= 64 * 1024


def _lazy(n: int, dtype) -> np.ndarray:
    """An uninitialised [n] buffer whose untouched pages cost no memory.

    The event buffers hold each sample's worst case (every input, every neuron) in its own
    region, written sparsely; NumPy asks for transparent huge pages on large arrays, which
    would make every 2 MB page that a region touches resident (the whole buffer).  torch's
    allocator does not, so only the pages written count.
    """
    return torch.empty(n, dtype=torch.from_numpy(np.empty(0, dtype=dtype)).dtype).numpy()


def _layer_arrays(params: list, n_coefs, dtype: np.dtype) -> list[tuple[np.ndarray, np.ndarray, tuple]]:
    """Per layer, the arrays both kernels read: W^T [N_in, N_out] (a row added per input event),
    bias [N_out] (zeros without one) and the neuron coefficients [N_out]."""
    out = []
    for i, nc in zip(_param_starts(tuple(n_coefs)), n_coefs):
        w, bias = params[i].detach(), params[i + 1]
        b = bias.detach().contiguous().numpy() if bias is not None else np.zeros(w.shape[0], dtype=dtype)
        out.append((np.ascontiguousarray(w.t().numpy()), b,
                    tuple(c.detach().contiguous().numpy() for c in params[i + 2:i + 2 + nc])))
    return out


def _np_dtype(x: torch.Tensor | Events) -> np.dtype:
    """The numpy dtype of the input's values (frames or event lists)."""
    return x.val.dtype if isinstance(x, Events) else x.detach().numpy().dtype


def _param_starts(n_coefs: tuple[int, ...]) -> list[int]:
    out, i = [], 0
    for nc in n_coefs:
        out.append(i)
        i += 2 + nc
    return out


def stack_params(layers: list[StackLayer], like: torch.Tensor) -> tuple[list, list, list[int], list]:
    """Per layer (model, surrogate, alpha), initial states ([N] each, in like's dtype and device)
    and coefficient counts, and the autograd inputs of all layers in order: weight [N, K], bias
    (or None), coefficients ([N] each)."""
    sig, inits, n_coefs, params = [], [], [], []
    for lay in layers:
        nrn, lin = lay.neuron, lay.linear
        n = lin.out_features
        coefs = prepare_coefs(nrn.model, nrn.coefficients(), n, like)
        sig.append((nrn.model, nrn.surrogate, nrn.alpha))
        inits.append(tuple(s[0].detach().to(like.dtype).contiguous() for s in nrn.initial_state(1, n, like)))
        n_coefs.append(len(coefs))
        params += [lin.weight, lin.bias, *coefs]
    return sig, inits, n_coefs, params


def run_stack(layers: list[StackLayer], x: torch.Tensor | Events, lengths: torch.Tensor | None = None) -> torch.Tensor:
    """Output [T, B, N_last] of the (Linear, neuron) stack on x (frames [T, B, K], CPU float,
    or ``Events``), fused.

    lengths: [B] steps each sample runs (the rest output 0 and cost nothing), or None.
    """
    T, B, _ = x.shape
    like = torch.empty(0, dtype=x.dtype)
    steps = step_counts(lengths, B, T)
    sig, inits, n_coefs, params = stack_params(layers, like)
    masks = [dropout_mask((T, B, lay.linear.out_features), lay.dropout, like) if lay.dropout else None
             for lay in layers]
    if not any(mk is not None for mk in masks) and not (
            torch.is_grad_enabled() and any(p is not None and p.requires_grad for p in params)):
        return _infer(layers, x, steps, params, inits, n_coefs)
    return FusedStackFn.apply((tuple(sig), tuple(inits), tuple(n_coefs), tuple(masks)), x, steps, *params)


def _infer(layers: list[StackLayer], x: torch.Tensor | Events, steps: np.ndarray, params: list, inits: list,
           n_coefs: list[int]) -> torch.Tensor:
    """Without gradients, the stack runs in the event core's inference kernel (``core.engine``):
    the same sums and steps as the training forward, minus keeping currents and event lists."""
    from ..core.network import Layer, Network
    dt = _np_dtype(x)
    net_layers = [Layer(weight=w_t, bias=bias, model=lay.neuron.model, coefs=coefs, init=tuple(s.numpy() for s in init))
                  for lay, (w_t, bias, coefs), init in zip(layers, _layer_arrays(params, n_coefs, dt), inits)]
    return Network(net_layers, dtype=dt).run(x if isinstance(x, Events) else x.detach(), torch.from_numpy(steps)).out


def dropout_mask(shape: tuple[int, ...], p: float, like: torch.Tensor) -> torch.Tensor:
    """What ``nn.Dropout(p)`` multiplies by in training: 0 with probability p, else 1 / (1 - p)."""
    if p >= 1.0:
        return torch.zeros(shape, dtype=like.dtype)
    return torch.empty(shape, dtype=like.dtype).bernoulli_(1.0 - p).div_(1.0 - p)


__all__ = ["stack_layers", "stack_params", "run_stack", "StackLayer", "FusedStackFn"]

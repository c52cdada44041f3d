"""Train a Linear -> neuron stack on the GPU: one event-driven forward kernel, BPTT layer by layer.

The forward is the event core's CUDA network kernel (``kernels.cuda_network``: one thread
block per sample, every layer and step inside, hidden spikes passed as spike lists and their
weight rows added), asked to keep each step's input currents and states.  The backward runs
layer by layer from the last: the neuron's derived VJP over all steps (the per-neuron CUDA
kernels of ``kernels.cuda_codegen``, as ``kernels.fused`` launches them), then the weight
gradient and the gradient reaching the layer below as matrix products over all (step, sample)
rows -- on a GPU a dense product over the batch outruns scattering per spike.  Layers connect
only forward, so BPTT through each layer's own state needs nothing from the others.

``launcher`` 'cuda' runs the CuPy kernels on CUDA tensors; 'host' runs their host C++ builds on
CPU tensors (how it is tested without a GPU).  Gradients reach the Linear weights and biases and
the neuron coefficients, as the layer-by-layer modules compute them.
"""
from __future__ import annotations

import numpy as np
import torch

from ..core.gpu import KernelLayer, array_module, launch, to_torch
from ..errors import ConfigError
from ..kernels.dispatch import step_counts
from ..kernels.fused import launch_backward
from .fused_stack import StackLayer, _param_starts, stack_params


def frames_to_events(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Sample-major CSR (ptr [B*T+1] int64, idx [E] int64, val [E]) of frames x [T, B, K], on x's device."""
    T, B, K = x.shape
    rows = x.detach().transpose(0, 1).reshape(B * T, K)
    nz = rows.nonzero()  # row-major: rows in order, channels ascending within a row
    counts = torch.bincount(nz[:, 0], minlength=B * T)
    ptr = torch.zeros(B * T + 1, dtype=torch.int64, device=x.device)
    ptr[1:] = torch.cumsum(counts, 0)
    return ptr, nz[:, 1].contiguous(), rows[nz[:, 0], nz[:, 1]].contiguous()


def _neuron_launcher(launcher: str):
    if launcher == "host":
        from ..kernels.cuda_host import HostCudaLauncher
        return HostCudaLauncher()
    from ..kernels.cupy_backend import CupyLauncher
    return CupyLauncher()


def _to_xp(t: torch.Tensor, xp):
    """A torch tensor as a numpy / CuPy array sharing its memory."""
    t = t.detach().contiguous()
    return t.numpy() if xp is np else xp.asarray(t)


class GpuStackFn(torch.autograd.Function):
    """out [T, B, N_last] of the stack; arguments: spec (launcher, per layer (model, surrogate,
    alpha), initial states [N] per layer, coefficient counts), x frames [T, B, K], steps [B]
    (int64 numpy), then per layer weight [N, K], bias [N] or None, coefficients ([N] each)."""

    @staticmethod
    def forward(ctx, spec, x, steps, *params):  # noqa: D401
        launcher, models, inits, n_coefs = spec
        xp, _ = array_module(launcher)
        T, B, K = x.shape
        dt = np.float32 if x.dtype == torch.float32 else np.float64
        klayers, weights, i = [], [], 0
        for (m, _, _), init, nc in zip(models, inits, n_coefs):
            w, bias, coefs = params[i], params[i + 1], params[i + 2:i + 2 + nc]
            i += 2 + nc
            b = bias if bias is not None else torch.zeros(w.shape[0], dtype=x.dtype, device=x.device)
            klayers.append(KernelLayer(_to_xp(w.t(), xp), _to_xp(b, xp), [_to_xp(c, xp) for c in coefs], w.shape[0],
                                       [_to_xp(s, xp) for s in init]))
            weights.append(w)
        ptr, idx, val = frames_to_events(x)
        sig = tuple((m, False, False, False, False) for m, _, _ in models)
        ch = launch(launcher, sig, klayers, K, _to_xp(ptr, xp), _to_xp(idx, xp), _to_xp(val, xp), T,
                    xp.asarray(steps), np.dtype(dt), record=True, keep=True)
        tt = to_torch
        ctx.spec, ctx.steps = spec, steps
        ctx.outs = [tt(r) for r in ch.records]
        ctx.currents = [tt(c) for c in ch.currents]
        ctx.states = [[tt(s) for s in ss] for ss in ch.states]
        ctx.save_for_backward(x, *(p for p in params if p is not None))
        ctx.has_bias = [params[j + 1] is not None for j in _param_starts(n_coefs)]
        return tt(ch.out).clone()

    @staticmethod
    def backward(ctx, g_out):
        launcher, models, inits, n_coefs = ctx.spec
        saved = list(ctx.saved_tensors)
        x = saved.pop(0)
        params, it = [], iter(saved)
        for nc, hb in zip(n_coefs, ctx.has_bias):
            params += [next(it), next(it) if hb else None] + [next(it) for _ in range(nc)]
        T, B, _ = x.shape
        dev = x.device
        lengths = torch.as_tensor(ctx.steps, dtype=torch.int64, device=dev)
        neurons = _neuron_launcher(launcher)
        starts = _param_starts(n_coefs)
        grads: list = [None] * len(params)
        g_x_in = None
        g = g_out.contiguous()
        for li in reversed(range(len(models))):
            model, surrogate, alpha = models[li]
            j = starts[li]
            w, coefs = params[j], params[j + 2:j + 2 + n_coefs[li]]
            N = w.shape[0]
            need_c = tuple(bool(ctx.needs_input_grad[3 + j + 2 + k]) for k in range(n_coefs[li]))
            s0 = [s.to(x.dtype).expand(B, N).contiguous() for s in inits[li]]
            head = [ctx.currents[li], *s0, *[c.detach().contiguous() for c in coefs], lengths, *ctx.states[li]]
            g_cur, _, g_c = launch_backward(neurons, model, surrogate, alpha, False, need_c, head, g,
                                            [None] * len(model.states))
            rows = g_cur.reshape(T * B, N)
            inp = x if li == 0 else ctx.outs[li - 1]
            if ctx.needs_input_grad[3 + j]:
                grads[j] = rows.t() @ inp.reshape(T * B, -1)
            if ctx.has_bias[li] and ctx.needs_input_grad[3 + j + 1]:
                grads[j + 1] = rows.sum(0)
            for k, need in enumerate(need_c):
                if need:
                    grads[j + 2 + k] = g_c[k].sum(0)
            if li > 0:
                g = (rows @ w.detach()).reshape(T, B, -1)
            elif ctx.needs_input_grad[1]:
                g_x_in = (rows @ w.detach()).reshape(T, B, -1)
        return (None, g_x_in, None, *grads)


def run_gpu_stack(layers: list[StackLayer], x: torch.Tensor, lengths: torch.Tensor | None = None,
                  launcher: str = "cuda") -> torch.Tensor:
    """Output [T, B, N_last] of the (Linear, neuron) stack on frames x [T, B, K] through the GPU
    network kernel, with gradients for the weights, biases and neuron coefficients."""
    if any(lay.dropout for lay in layers):
        raise ConfigError("the GPU stack has no dropout masks: run the modules one by one (fused=False)")
    T, B, _ = x.shape
    steps = step_counts(lengths, B, T)
    models, inits, n_coefs, params = stack_params(layers, x)
    return GpuStackFn.apply((launcher, tuple(models), tuple(inits), tuple(n_coefs)), x, steps, *params)


__all__ = ["GpuStackFn", "frames_to_events", "run_gpu_stack"]

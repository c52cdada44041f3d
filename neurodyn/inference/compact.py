"""Early exit on the dense torch path, with batch compaction between chunks of steps.

Batched dense kernels (torch, and later CuPy on GPU) cannot end one sample's loop, so
finished samples are removed from the batch instead: the network runs ``chunk`` steps at
a time on the samples still going, with every layer's state carried between chunks;
after each chunk the confidence of the running-mean readout (``core.confidence.confidence``,
the same measure the event kernel compiles) decides which samples stop, their step and
prediction are frozen, and the batch and the carried state shrink to the rest.  The
outcome does not depend on the chunk size or on compaction (tested), only the cost does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from ..kernels.reference import torch_step
from ..nn.linear import MultiStep
from ..nn.neurons import SpikingNeuron
from ..nn.recurrent import Recurrent
from ..core.confidence import EarlyExit, confidence, evidence_scales

_STATELESS = (nn.Linear, MultiStep, nn.Dropout, nn.Identity)


@dataclass
class ExitResult:
    """steps [B] run per sample, prediction [B] frozen at the exit, confidence [B] at the exit,
    and the number of sample-steps computed (the cost; == steps.sum() when compacted)."""

    steps: torch.Tensor
    pred: torch.Tensor
    confidence: torch.Tensor
    sample_steps: int


def _modules(model: nn.Module) -> list[nn.Module]:
    mods = list(model) if isinstance(model, nn.Sequential) else [model]
    for m in mods:
        if not isinstance(m, _STATELESS + (SpikingNeuron, Recurrent)):
            raise ConfigError(f"module {type(m).__name__} is not supported by the chunked early-exit path "
                              "(supported: Linear, MultiStep, Dropout, Identity, neuron modules, Recurrent)")
    return mods


def _run_recurrent(m: Recurrent, x: torch.Tensor, state: tuple | None) -> tuple[torch.Tensor, tuple]:
    # Recurrent.forward starts from rest; here the (neuron state, last spikes) carry over.
    cur = m.ff(x)
    T, B, N = cur.shape
    nrn = m.neuron
    step = torch_step(nrn.model, nrn.surrogate, nrn.alpha)
    coefs = tuple(c.to(cur.dtype) for c in nrn.coefficients())
    st, s = state if state is not None else (nrn.initial_state(B, N, cur), torch.zeros((B, N), dtype=cur.dtype))
    outs = []
    for t in range(T):
        o, *new = step(cur[t] + m.rec(s), *st, *coefs)
        outs.append(o)
        st, s = tuple(new), o
    return torch.stack(outs), (st, s)


def _run_chunk(mods: list[nn.Module], x: torch.Tensor, states: list) -> torch.Tensor:
    h = x
    for i, m in enumerate(mods):
        if isinstance(m, SpikingNeuron):
            h, trajs = m.run(h, state0=states[i])
            states[i] = tuple(tr[-1] for tr in trajs)
        elif isinstance(m, Recurrent):
            h, states[i] = _run_recurrent(m, h, states[i])
        else:
            h = m(h)
    return h


def _select(states: list, keep: torch.Tensor) -> list:
    def sel(s):
        if s is None:
            return None
        if isinstance(s, tuple):
            return tuple(sel(u) for u in s)
        return s[keep]
    return [sel(s) for s in states]


@torch.no_grad()
def run_dense_early_exit(model: nn.Module, x: torch.Tensor, early_exit: EarlyExit,
                         lengths: torch.Tensor | None = None, chunk: int = 8, compact: bool = True) -> ExitResult:
    """Run ``model`` (x [T, B, ...] -> readout [T, B, C]) with per-sample early exit.

    lengths [B]: steps per sample (default T).  chunk: steps per batched call.  compact:
    drop finished samples between chunks (False keeps computing them, results unchanged).
    Runs on x's device (the model's); the results are there too.
    """
    if not isinstance(early_exit, EarlyExit):
        raise ConfigError(f"early_exit must be an EarlyExit, got {type(early_exit).__name__}")
    if x.dim() < 3:
        raise ShapeError(f"input must be [T, B, ...], got {tuple(x.shape)}")
    if not isinstance(chunk, int) or chunk < 1:
        raise ConfigError(f"chunk must be a positive number of steps, got {chunk!r}")
    T, B = x.shape[:2]
    dev = x.device  # every table on the input's device: the loop runs where the model runs
    lengths = torch.full((B,), T, dtype=torch.int64, device=dev) if lengths is None else lengths.to(dev, torch.int64)
    if lengths.shape != (B,) or bool((lengths < 0).any()) or bool((lengths > T).any()):
        raise ShapeError(f"lengths must be [{B}] integers in [0, {T}]")
    if model.training:
        raise ConfigError("call model.eval() before early-exit inference (dropout would differ per chunk)")
    mods = _modules(model)
    scales = evidence_scales(T, early_exit.gamma).to(dev)
    steps = lengths.clone()
    pred = torch.zeros(B, dtype=torch.int64, device=dev)
    conf = torch.zeros(B, dtype=torch.float64, device=dev)
    alive = torch.nonzero(lengths > 0).squeeze(1)  # batch rows still running (indices into B)
    rows = torch.arange(B, device=dev) if not compact else alive  # rows the network computes
    states: list = [None] * len(mods)
    acc: torch.Tensor | None = None  # float64 running readout sum of `rows`
    done = lengths == 0
    work = 0
    t0 = 0
    while t0 < T and not bool(done.all()):
        t1 = min(T, t0 + chunk)
        xc = x[t0:t1] if rows.numel() == B else x[t0:t1, rows]  # a view while nobody has left
        v = _run_chunk(mods, xc, states)
        work += (t1 - t0) * int(rows.numel())
        if v.dim() != 3:
            raise ShapeError(f"the model must output a readout [T, B, C], got {tuple(v.shape)}")
        cs = torch.cumsum(v.to(torch.float64), 0)
        if acc is not None:
            cs = cs + acc[None]
        acc = cs[-1]
        tt = torch.arange(t0, t1, device=dev)[:, None]
        z = cs / scales[t0:t1, None, None]
        c = confidence(z, early_exit.measure)
        L = lengths[rows][None, :]
        hit = (c > early_exit.threshold) & (tt + 1 >= early_exit.min_steps) & (tt < L)
        ends = (tt + 1 == L) | hit  # stop here: confident, or the sample's last step
        newly = ends.any(0) & ~done[rows]
        first = ends.to(torch.int8).argmax(0)
        idx = torch.nonzero(newly).squeeze(1)
        r = rows[idx]
        f = first[idx]
        steps[r] = t0 + f + 1
        pred[r] = z[f, idx].argmax(-1)
        conf[r] = c[f, idx]
        done[r] = True
        if compact:
            keep = ~done[rows]
            rows = rows[keep]
            acc = acc[keep]
            states = _select(states, keep)
        t0 = t1
    return ExitResult(steps=steps, pred=pred, confidence=conf, sample_steps=work)


__all__ = ["ExitResult", "run_dense_early_exit"]

"""The torch reference backend: the derived step run in a Python loop over time, autograd for gradients.

This path defines the truth every other backend is tested against.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

import torch

from ..neurons.base import NeuronModel
from ..neurons.primitives import render, torch_namespace


@lru_cache(maxsize=None)
def torch_step(model: NeuronModel, surrogate: str, alpha: float | None) -> Callable:
    """The model's step bound to torch primitives (spike with the given surrogate)."""
    d = model.derived
    return render(d.step_src, d.step_name, torch_namespace(surrogate, alpha))


def run_reference(
    model: NeuronModel,
    x: torch.Tensor,
    state0: tuple[torch.Tensor, ...],
    coefs: tuple[torch.Tensor, ...],
    lengths: torch.Tensor,
    surrogate: str,
    alpha: float | None,
    rec_weight: torch.Tensor | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Run ``model`` over x [T, B, N]; returns out [T, B, N] and state trajectories ([T, B, N], ...).

    Steps t >= lengths[b] output 0 and keep the state (the per-sample active mask).
    ``rec_weight`` [N, N]: the input of step t also gets ``out[t-1] @ rec_weight.T``.
    """
    step = torch_step(model, surrogate, alpha)
    T = x.shape[0]
    state = tuple(state0)
    full = bool((lengths >= T).all())
    outs, trajs = [], [[] for _ in state]
    for t in range(T):
        inp = x[t] if rec_weight is None or t == 0 else x[t] + outs[-1] @ rec_weight.t()
        o, *new = step(inp, *state, *coefs)
        if not full:
            m = (t < lengths).to(x.dtype)[:, None]
            o = o * m
            new = [m * n + (1 - m) * s for n, s in zip(new, state)]
        outs.append(o)
        for tr, n in zip(trajs, new):
            tr.append(n)
        state = tuple(new)
    return torch.stack(outs), tuple(torch.stack(tr) for tr in trajs)

"""``odesolve``: the public entry point; inputs are validated and normalised once here."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from torch import nn

from ..errors import ConfigError, ShapeError
from .adjoint import adjoint_integrate
from .integrate import SolverConfig, integrate
from .stats import SolverStats
from .stepper import error_ratio, rk_step, stiffness_estimate
from .tableaus import get_tableau

Tensor = torch.Tensor
GRAD_MODES = ("backprop", "adjoint")
BATCH_MODES = ("per_sample", "lockstep")


@dataclass
class ODESolution:
    """``ys [K, B, *S]`` the state at ``t_eval [K, B]``; ``stats`` what the solver did per sample."""

    ys: Tensor
    t_eval: Tensor
    stats: SolverStats

    @property
    def y_final(self) -> Tensor:
        """The state at each sample's last output time ``[B, *S]``."""
        return self.ys[-1]


def _positive(name: str, v, allow_zero: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0 \
            or (v == 0 and not allow_zero):
        raise ConfigError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} finite float, got {v!r}")
    return float(v)


def _normalise_t_eval(t_eval, B: int, like: Tensor) -> Tensor:
    """``t_eval`` ([K] or [K, B], strictly increasing, finite) as a ``[K, B]`` tensor of y0's dtype."""
    if not isinstance(t_eval, Tensor):
        try:
            t_eval = torch.as_tensor(t_eval, dtype=like.dtype)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"t_eval must be a tensor or a sequence of floats: {e}") from None
    t_eval = t_eval.detach().to(device=like.device, dtype=like.dtype)
    if t_eval.dim() == 1:
        t_eval = t_eval.unsqueeze(1).expand(-1, B)
    if t_eval.dim() != 2 or t_eval.shape[1] != B:
        raise ShapeError(f"t_eval must have shape [K] or [K, {B}] (B from y0), got {list(t_eval.shape)}")
    if t_eval.shape[0] < 2:
        raise ConfigError(f"t_eval needs at least 2 times (start and end), got {t_eval.shape[0]}")
    if not bool(torch.isfinite(t_eval).all()):
        raise ConfigError("t_eval contains NaN or inf")
    if not bool((t_eval[1:] > t_eval[:-1]).all()):
        raise ConfigError("t_eval must be strictly increasing along its first dim (integrate forward in time; "
                          "for backward time substitute s = -t)")
    return t_eval.contiguous()


def _flat_rhs(f: Callable, shape: tuple) -> Callable:
    """``f(t [b], y [b, *S], *args)`` as a function of flattened rows ``[b, D]``, checking its output shape."""
    def g(t: Tensor, y: Tensor, *args: Tensor) -> Tensor:
        b = y.shape[0]
        out = f(t, y.view(b, *shape), *args)
        if not isinstance(out, Tensor) or tuple(out.shape) != (b, *shape):
            got = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ShapeError(f"the ODE right-hand side must return the state's shape {[b, *shape]}, got {got}")
        return out.reshape(b, -1)
    return g


def odesolve(f: Callable, y0: Tensor, t_eval: Union[Tensor, Sequence[float]], *, method: str = "dopri5",
             rtol: Optional[float] = None, atol: Optional[float] = None, step_size: Optional[float] = None,
             first_step: Union[None, float, Tensor] = None, args: Sequence[Tensor] = (),
             grad: str = "backprop", adjoint_params: Optional[Sequence[Tensor]] = None,
             batch: str = "per_sample", sample_local: bool = False, generator: Optional[torch.Generator] = None,
             max_steps: int = 10_000, safety: float = 0.9, ifactor: float = 10.0, dfactor: float = 0.2
             ) -> ODESolution:
    """Solve ``dy/dt = f(t, y, *args)`` for a batch of initial states; values at ``t_eval``.

    ``f(t [b], y [b, *S], *args) -> [b, *S]`` is called on the rows still integrating only, with
    each row's own time ``t`` (a ``[b]`` tensor: write ``t[:, None]`` to broadcast) and ``args``
    (tensors ``[B, ...]``, e.g. a per-sample input) restricted to the same rows.
    ``y0 [B, *S]``; ``t_eval [K]`` or per sample ``[K, B]``, strictly increasing (``t_eval[0]``: start).

    ``method``: ``"euler"``, ``"midpoint"``, ``"rk4"`` (fixed step ``step_size``; each interval
    between output times is split into equal steps of at most ``step_size``) or ``"bosh3"``,
    ``"dopri5"``, ``"tsit5"`` (adaptive; ``rtol`` default 1e-6, ``atol`` 1e-8; optional
    ``first_step`` float or ``[B]``; controller ``safety``, growth/shrink limits ``ifactor``/``dfactor``).
    ``grad``: ``"backprop"`` (through the solver's operations) or ``"adjoint"`` (continuous
    adjoint; ``adjoint_params`` default ``f.parameters()`` for an ``nn.Module`` f).
    ``batch``: ``"per_sample"`` (own step sizes, finished samples leave the batch) or ``"lockstep"``
    (one step size for the batch: for right-hand sides that couple samples, e.g. batch norm).
    ``sample_local``: also record the heuristics of one accepted step per sample, at a time drawn
    uniformly from the sample's span (``generator``), for local regularization.
    Returns ``ODESolution(ys [K, B, *S], t_eval [K, B], stats)``.
    """
    if not callable(f):
        raise ConfigError(f"f must be callable f(t, y, *args), got {type(f).__name__}")
    if not isinstance(y0, Tensor) or y0.dim() < 1 or y0.shape[0] < 1 or y0.numel() == 0:
        raise ShapeError(f"y0 must be a tensor [B, ...] with B >= 1, got "
                         f"{list(y0.shape) if isinstance(y0, Tensor) else type(y0).__name__}")
    if not y0.is_floating_point():
        raise ShapeError(f"y0 must be a floating tensor, got {y0.dtype}")
    if not bool(torch.isfinite(y0).all()):
        raise ConfigError("y0 contains NaN or inf")
    tab = get_tableau(method)
    B, shape = y0.shape[0], tuple(y0.shape[1:])
    te = _normalise_t_eval(t_eval, B, y0)

    if tab.adaptive:
        if step_size is not None:
            raise ConfigError(f"step_size is for fixed-step methods; {method} chooses its steps (use first_step)")
        rtol = 1e-6 if rtol is None else _positive("rtol", rtol, allow_zero=True)
        atol = 1e-8 if atol is None else _positive("atol", atol, allow_zero=True)
        if rtol == 0 and atol == 0:
            raise ConfigError("rtol and atol cannot both be 0")
        if first_step is not None:
            if isinstance(first_step, Tensor):
                fs = first_step.detach().to(y0.dtype).reshape(-1).expand(B) if first_step.numel() == 1 \
                    else first_step.detach().to(y0.dtype)
                if tuple(fs.shape) != (B,):
                    raise ShapeError(f"first_step must be a float or a tensor [{B}], got {list(first_step.shape)}")
                if not bool((torch.isfinite(fs) & (fs > 0)).all()):
                    raise ConfigError("first_step must be positive and finite")
                first_step = fs.contiguous()
            else:
                first_step = torch.full((B,), _positive("first_step", first_step), dtype=y0.dtype, device=y0.device)
        for name, v, lo, hi in (("safety", safety, 0, 1), ("dfactor", dfactor, 0, 1), ("ifactor", ifactor, 1, math.inf)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v <= hi:
                raise ConfigError(f"{name} must be in ({lo}, {hi}], got {v!r}")
    else:
        for name, v in (("rtol", rtol), ("atol", atol), ("first_step", first_step)):
            if v is not None:
                raise ConfigError(f"{name} is for adaptive methods; {method} takes a fixed step_size")
        if step_size is None:
            raise ConfigError(f"fixed-step method {method} needs step_size")
        step_size = _positive("step_size", step_size)
        rtol = atol = 0.0
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ConfigError(f"max_steps must be a positive int, got {max_steps!r}")
    if grad not in GRAD_MODES:
        raise ConfigError(f"unknown grad mode {grad!r}; choose one of {list(GRAD_MODES)}")
    if batch not in BATCH_MODES:
        raise ConfigError(f"unknown batch mode {batch!r}; choose one of {list(BATCH_MODES)}")
    if batch == "lockstep" and not bool((te == te[:, :1]).all()):
        raise ConfigError("batch='lockstep' needs the same t_eval for every sample")
    args = tuple(args)
    for i, a in enumerate(args):
        if not isinstance(a, Tensor) or a.dim() < 1 or a.shape[0] != B:
            raise ShapeError(f"args[{i}] must be a tensor [{B}, ...] (one row per sample), got "
                             f"{list(a.shape) if isinstance(a, Tensor) else type(a).__name__}")
    if grad == "adjoint":
        if adjoint_params is None:
            adjoint_params = tuple(f.parameters()) if isinstance(f, nn.Module) else ()
        adjoint_params = tuple(p for p in adjoint_params)
        if not all(isinstance(p, Tensor) for p in adjoint_params):
            raise ConfigError("adjoint_params must be tensors")
        adjoint_params = tuple(p for p in adjoint_params if p.requires_grad)
    elif adjoint_params is not None:
        raise ConfigError("adjoint_params is only used with grad='adjoint'")
    if not isinstance(sample_local, bool):
        raise ConfigError(f"sample_local must be a bool, got {sample_local!r}")

    cfg = SolverConfig(tab, rtol=rtol, atol=atol, step_size=step_size, max_steps=max_steps, safety=float(safety),
                       ifactor=float(ifactor), dfactor=float(dfactor), lockstep=batch == "lockstep")
    fr = _flat_rhs(f, shape)
    local_times = None
    if sample_local:
        u = 1.0 - torch.rand(B, generator=generator, dtype=y0.dtype, device="cpu").to(y0.device)  # (0, 1]
        local_times = te[0] + u * (te[-1] - te[0])
    y0f = y0.reshape(B, -1)
    if grad == "adjoint":
        ys, stats = adjoint_integrate(fr, y0f, te, cfg, args, adjoint_params, first_step, local_times)
        if sample_local and torch.is_grad_enabled():
            stats = _differentiable_local(fr, cfg, stats, args)
    else:
        ys, stats = integrate(fr, y0f, te, cfg, args, first_step=first_step, local_times=local_times)
    return ODESolution(ys.view(te.shape[0], B, *shape), te, stats)


def _differentiable_local(f: Callable, cfg: SolverConfig, stats: SolverStats, args: tuple) -> SolverStats:
    """Recompute each sample's sampled step with gradients (to the parameters and args; the state at
    the step start is held fixed), so local regularization works with the adjoint (Pal et al. 2023)."""
    ls = stats.local_step
    step = rk_step(f, cfg.tableau, ls.t, ls.y, ls.h, None, args)
    err = error_ratio(step, ls.y, cfg.rtol, cfg.atol) * ls.h if cfg.tableau.adaptive else None
    stats.local_error, stats.local_stiffness = err, stiffness_estimate(step)
    return stats

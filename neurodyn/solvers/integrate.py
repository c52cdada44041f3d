"""The time loop: per-sample step-size control over a shrinking set of active rows.

Every sample (row) has its own time ``t``, step ``h``, accepted/rejected steps and next output
index.  Rows that reach their final time leave the active set (the batch is compacted), so the
right-hand side is evaluated only on rows still integrating.  This assumes the right-hand side
treats rows independently; one that couples the batch (batch norm in training mode, a mean over
the batch) sees a different batch as samples finish: use ``lockstep=True`` for those, which keeps
all rows together with one shared step (the largest error ratio of the batch decides).

Shapes: ``y0 [B, D]`` flattened state, ``t_eval [K, B]`` per-sample output times (strictly
increasing in K; the solve runs from ``t_eval[0]`` to ``t_eval[-1]``), output ``[K, B, D]``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch

from ..errors import NeurodynError
from .stats import LocalStep, SolverStats
from .stepper import RHS, StepResult, dense_eval, error_ratio, rk_step, rms_norm, stiffness_estimate
from .tableaus import ButcherTableau

Tensor = torch.Tensor
#: on_accept(rows [b], accept [b] bool, t [b], h [b], step) after every attempted step.
AcceptHook = Callable[[Tensor, Tensor, Tensor, Tensor, StepResult], None]


@dataclass(frozen=True)
class SolverConfig:
    """Validated options of one solve (see ``solve.odesolve`` for their meaning)."""

    tableau: ButcherTableau
    rtol: float = 1e-6
    atol: float = 1e-8
    step_size: Optional[float] = None
    max_steps: int = 10_000
    safety: float = 0.9
    ifactor: float = 10.0
    dfactor: float = 0.2
    lockstep: bool = False


def initial_step(f: RHS, tab: ButcherTableau, t0: Tensor, y0: Tensor, f0: Tensor, span: Tensor,
                 rtol: float, atol: float, args: tuple) -> Tensor:
    """Hairer, Norsett & Wanner (I, II.4) starting step per row ``[B]``; costs one evaluation of f."""
    with torch.no_grad():
        scale = atol + rtol * y0.abs()
        d0, d1 = rms_norm(y0 / scale), rms_norm(f0 / scale)
        h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1.clamp_min(1e-300))
        h0 = torch.minimum(h0, span)
        f1 = f(t0 + h0, y0 + h0.unsqueeze(-1) * f0, *args)
        d2 = rms_norm((f1 - f0) / scale) / h0
        dm = torch.maximum(d1, d2)
        h1 = torch.where(dm <= 1e-15, torch.maximum(torch.full_like(h0, 1e-6), h0 * 1e-3),
                         (0.01 / dm.clamp_min(1e-300)) ** (1.0 / (tab.order + 1)))
        return torch.minimum(torch.minimum(100 * h0, h1), span)


def _step_factor(ratio: Tensor, cfg: SolverConfig) -> Tensor:
    """Integral controller: ``safety ratio^(-1/(q+1))`` clamped to [dfactor, ifactor]; NaN ratio shrinks."""
    q = cfg.tableau.err_order
    r = ratio.detach()
    fac = cfg.safety * r.clamp_min(1e-300) ** (-1.0 / (q + 1))
    fac = torch.where(r == 0, torch.full_like(r, cfg.ifactor), fac)
    fac = torch.where(torch.isnan(r), torch.full_like(r, cfg.dfactor), fac)
    return fac.clamp(cfg.dfactor, cfg.ifactor)


def integrate(f: RHS, y0: Tensor, t_eval: Tensor, cfg: SolverConfig, args: tuple = (),
              first_step: Optional[Tensor] = None, local_times: Optional[Tensor] = None,
              on_accept: Optional[AcceptHook] = None) -> tuple[Tensor, SolverStats]:
    """Solve ``dy/dt = f(t, y, *args)`` for every row of ``y0 [B, D]``; values at ``t_eval [K, B]``.

    ``args``: tensors ``[B, ...]`` restricted to the active rows on every call of f.
    ``first_step [B]``: the adaptive methods' first step (default: the Hairer heuristic).
    ``local_times [B]``: record the heuristics of the accepted step containing each time.
    Returns ``(ys [K, B, D], stats)``; gradients flow through everything when grad mode is on.
    """
    tab = cfg.tableau
    B, D = y0.shape
    K = t_eval.shape[0]
    dev = y0.device
    rows = torch.arange(B, device=dev)
    t, tend = t_eval[0], t_eval[-1]
    y, args = y0, tuple(args)
    nk = torch.ones(B, dtype=torch.long, device=dev)          # next output index (output 0 is y0)
    out_idx, out_val = [rows], [y0]                            # flat index k * B + b, value [D]
    nfe, n_acc, n_rej = (torch.zeros(B, dtype=torch.long, device=dev) for _ in range(3))
    attempts = torch.zeros(B, dtype=torch.long, device=dev)
    err_sum = y0.new_zeros(B) if tab.adaptive else None
    stiff_sum = y0.new_zeros(B) if tab.stages > 1 else None
    last_step = y0.new_zeros(B)
    local = None
    if local_times is not None:
        local = {"err": y0.new_zeros(B) if tab.adaptive else None,
                 "stiff": y0.new_zeros(B) if tab.stages > 1 else None,
                 "t": y0.new_zeros(B), "y": y0.new_zeros(B, D).detach(), "h": y0.new_zeros(B)}

    k1 = None
    if tab.adaptive:
        k1 = f(t, y, *args)
        nfe += 1
        bad = ~torch.isfinite(k1).all(dim=1)
        if bool(bad.any()):
            raise NeurodynError(f"the ODE right-hand side returned NaN/inf at the initial state of samples "
                                f"{rows[bad].tolist()[:10]}")
        if first_step is None:
            h = initial_step(f, tab, t, y, k1.detach(), tend - t, cfg.rtol, cfg.atol, args)
            nfe += 1
        else:
            h = torch.minimum(first_step.to(y0.dtype), tend - t)
        if cfg.lockstep:
            h = h.min().expand(B).clone()
    else:
        h_nom = torch.full((B,), float(cfg.step_size), dtype=y0.dtype, device=dev)

    evals_per_step = tab.stages - (1 if tab.fsal else 0)
    b_theta = None if tab.b_theta is None else torch.as_tensor(tab.b_theta, dtype=y0.dtype, device=dev)
    while rows.numel() > 0:
        if tab.adaptive:
            last = t + h >= tend
            h = torch.where(last, tend - t, h)
            t_new = torch.where(last, tend, t + h)
        else:
            target = t_eval[nk, rows]
            n_sub = torch.ceil((target - t) / h_nom - 1e-7).clamp_min(1)
            h = (target - t) / n_sub
            land = n_sub == 1
            t_new = torch.where(land, target, t + h)

        step = rk_step(f, tab, t, y, h, k1, args)
        nfe.index_add_(0, rows, torch.full_like(rows, evals_per_step))
        attempts.index_add_(0, rows, torch.ones_like(rows))

        if tab.adaptive:
            ratio = error_ratio(step, y, cfg.rtol, cfg.atol)
            ctrl = ratio.detach()
            if cfg.lockstep:
                ctrl = torch.nan_to_num(ctrl, nan=math.inf).max().expand_as(ctrl)
            accept = ctrl <= 1.0
        else:
            ratio = None
            accept = torch.ones_like(rows, dtype=torch.bool)
        acc = accept.nonzero().squeeze(1)
        rows_acc = rows[acc]
        n_acc.index_add_(0, rows_acc, torch.ones_like(rows_acc))
        n_rej.index_add_(0, rows[~accept], torch.ones_like(rows[~accept]))

        stiff = stiffness_estimate(step)
        if err_sum is not None:
            err_sum = err_sum.index_add(0, rows_acc, (ratio * h)[acc])
        if stiff_sum is not None:
            stiff_sum = stiff_sum.index_add(0, rows_acc, stiff[acc])
        if local is not None:
            tr = local_times[rows]
            hit = (accept & (t < tr) & (tr <= t_new)).nonzero().squeeze(1)
            if hit.numel():
                rh = rows[hit]
                if local["err"] is not None:
                    local["err"] = local["err"].index_add(0, rh, (ratio * h)[hit])
                if local["stiff"] is not None:
                    local["stiff"] = local["stiff"].index_add(0, rh, stiff[hit])
                for name, v in (("t", t), ("y", y), ("h", h)):
                    local[name].index_copy_(0, rh, v[hit].detach())
        if on_accept is not None:
            on_accept(rows, accept, t, h, step)

        # Outputs: every t_eval in (t, t_new] of an accepted row, all of this step's at once.
        cnt = ((t_eval[:, rows] <= t_new).sum(0) - nk).clamp_min(0) * accept
        n_out = int(cnt.sum())
        if n_out:
            src = torch.repeat_interleave(torch.arange(rows.numel(), device=dev), cnt)   # local row of each output
            kk = nk[src] + torch.arange(n_out, device=dev) - (torch.cumsum(cnt, 0) - cnt)[src]
            te = t_eval[kk, rows[src]]
            exact = (te == t_new[src]).unsqueeze(-1)
            if tab.b_theta is None or bool(exact.all()):
                val = step.y_new[src]
            else:
                theta = (te - t[src]) / h[src]
                val = dense_eval(b_theta, y[src], h[src], torch.stack(step.ks, dim=1)[src], theta)
                val = torch.where(exact, step.y_new[src], val)
            out_idx.append(kk * B + rows[src])
            out_val.append(val)
            nk = nk + cnt

        all_acc = acc.numel() == rows.numel()
        y = step.y_new if all_acc else torch.where(accept.unsqueeze(-1), step.y_new, y)
        t = t_new if all_acc else torch.where(accept, t_new, t)
        if tab.fsal:
            k1 = step.ks[-1] if all_acc else torch.where(accept.unsqueeze(-1), step.ks[-1], k1)
        if tab.adaptive:
            h = h * _step_factor(ctrl, cfg)
            tiny = 16 * torch.finfo(h.dtype).eps * t.abs().clamp_min(1.0)
            # NaN included; a row that has just landed on its end time may have taken a last step
            # shorter than tiny (the remainder to t_end) and is done, not stuck.
            small = ~(h >= tiny) & (t < tend)
            if bool(small.any()):
                raise NeurodynError(f"ODE step size underflow (h < {float(tiny.max()):.3g}) for samples "
                                    f"{rows[small].tolist()[:10]} at t = {t[small][:10].tolist()}: too stiff for "
                                    f"{tab.name} at rtol={cfg.rtol}, atol={cfg.atol}, or f returns NaN/inf")
        if bool((attempts[rows] >= cfg.max_steps).any()):
            bad = rows[attempts[rows] >= cfg.max_steps].tolist()
            raise NeurodynError(f"ODE solve exceeded max_steps={cfg.max_steps} for samples {bad[:10]} "
                                f"(method {tab.name}); raise max_steps or loosen rtol/atol")

        done = nk >= K
        if bool(done.any()):
            last_step[rows[done]] = (h if tab.adaptive else h_nom)[done].detach()
            keep = (~done).nonzero().squeeze(1)
            rows, t, tend, h, y, nk = rows[keep], t[keep], tend[keep], h[keep], y[keep], nk[keep]
            args = tuple(a[keep] for a in args)
            if k1 is not None:
                k1 = k1[keep]
            if not tab.adaptive:
                h_nom = h_nom[keep]

    ys = torch.index_copy(y0.new_zeros(K * B, D), 0, torch.cat(out_idx), torch.cat(out_val)).view(K, B, D)
    stats = SolverStats(nfe=nfe, n_accepted=n_acc, n_rejected=n_rej, error=err_sum, stiffness=stiff_sum,
                        last_step=last_step, differentiable=torch.is_grad_enabled())
    if local is not None:
        stats.local_error, stats.local_stiffness, stats.local_time = local["err"], local["stiff"], local_times
        stats.local_step = LocalStep(local["t"], local["y"], local["h"])
    return ys, stats

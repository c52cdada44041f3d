"""``neurodyn eval --early-exit``: accuracy, timesteps and wall-clock of per-sample early exit.

``early_exit_report`` runs a trained network in the event core twice on the same data: at
full length (recording the readout) and with early exit (each sample's loop ends when its
running readout is confident).  The recorded run gives, through the torch twin of the
kernel's confidence, the exact accuracy-vs-mean-timesteps curve over all thresholds (the
Pareto curve), the fixed-T curve (every sample cut at T steps) and the oracles.

Where the threshold comes from: given explicitly; or calibrated on separate held-out data
(``calib_loader``); or, with neither, by 2-fold cross-calibration on the evaluated data:
samples are split by index parity, each half is run with the threshold calibrated on the
other half, so no sample is scored with a threshold fitted to it.  The threshold to deploy
(``threshold``) is then the one calibrated on all evaluated samples.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..errors import ConfigError, ShapeError
from .calibrate import Calibration, calibrate_threshold
from ..core.confidence import EarlyExit, check_measure, confidence_trace
from .curves import exit_from_trace, final_prediction, fixed_steps_curve, threshold_sweep
from .oracle import oracle_summary


def _network(model):
    from ..core import Network
    from ..nn.convert import to_network
    return model if isinstance(model, Network) else to_network(model.eval())


def _prepare(net, loader: Iterable, desc: str, progress: bool) -> list[tuple]:
    """Per batch: (events ptr, idx, val, T, lengths np.int64 [B], y [B])."""
    batches = []
    for batch in tqdm(loader, desc=desc, leave=False, disable=not progress):
        if len(batch) != 3:
            raise ShapeError("the loader must yield (x [T, B, ...], y [B], lengths [B]) batches (pad_collate)")
        x, y, lengths = batch
        x3 = x.reshape(x.shape[0], x.shape[1], -1)
        ptr, idx, val = net.events_from_dense(x3)
        batches.append((ptr, idx, val, int(x3.shape[0]), lengths.numpy().astype(np.int64), y.to(torch.int64)))
    if not batches:
        raise ShapeError("the loader yielded no batches")
    return batches


def _timed(fn, repeats: int):
    best, res = float("inf"), None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t0)
    return res, best


def _warm_up(net, batches: list[tuple]) -> None:
    # Compile (or load) the kernel outside the timed runs: one step of one sample, exit off and on.
    ptr, idx, val, T, L, _ = batches[0]
    one = np.minimum(L, 1) * (np.arange(L.shape[0]) == 0)
    net.run_events(ptr, idx, val, T, one)
    net.run_events(ptr, idx, val, T, one, early_exit=EarlyExit(1.0))


def _record(net, batches: list[tuple], repeats: int, progress: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Full-length run: readout v [T_max, N, C] (0 past each length), y [N], lengths [N], kernel seconds."""
    _warm_up(net, batches)
    outs, secs = [], 0.0
    for ptr, idx, val, T, L, _ in tqdm(batches, desc="full-length run", leave=False, disable=not progress):
        res, s = _timed(lambda: net.run_events(ptr, idx, val, T, L), repeats)
        outs.append(res.out)
        secs += s
    t_max = max(o.shape[0] for o in outs)
    v = torch.cat([torch.nn.functional.pad(o, (0, 0, 0, 0, 0, t_max - o.shape[0])) for o in outs], 1)
    y = torch.cat([b[5] for b in batches])
    lengths = torch.from_numpy(np.concatenate([b[4] for b in batches]))
    return v, y, lengths, secs


def record_readout(model, loader: Iterable, progress: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Full-length event-core readout v [T, N, C], labels y [N] and lengths [N] of a loader's data."""
    net = _network(model)
    v, y, lengths, _ = _record(net, _prepare(net, loader, "events", progress), 1, progress)
    return v, y, lengths


def _percentiles(steps: torch.Tensor) -> dict:
    s = steps.double().numpy()
    return {"mean": float(s.mean()), "p50": float(np.percentile(s, 50)), "p90": float(np.percentile(s, 90)),
            "p99": float(np.percentile(s, 99)), "max": float(s.max())}


GAMMAS = (1.0, 0.5, 0.0)


def early_exit_report(model: nn.Module, loader: Iterable, *, measure: str = "max_softmax", max_loss: float = 0.005,
                      rule: str = "harm", confidence_level: float | None = 0.95, gamma: float | Sequence[float] | None = None,
                      threshold: float | None = None, calib_loader: Iterable | None = None, min_steps: int = 1,
                      repeats: int = 1, progress: bool = True) -> dict:
    """Evaluate per-sample early exit of ``model`` (a trained nn.Sequential or core.Network) on ``loader``.

    gamma: evidence exponent(s) calibration chooses from (default 1.0, 0.5 and 0.0; with an
    explicit ``threshold``, one number, default 1.0).  Returns a dict: accuracy and
    timesteps of the full-length and early-exit runs (mean, percentiles), event-core seconds
    of both (best of ``repeats`` per batch) and their ratio, the threshold(s) and how they
    were chosen, the oracles, the Pareto curves (one per gamma) and the fixed-T curve, and
    ``mismatches``: samples whose kernel exit differs from the exit rule replayed on the
    recorded trace (0 unless floating-point ties).
    """
    check_measure(measure)
    if threshold is not None:
        if gamma is not None and not isinstance(gamma, (int, float)):
            raise ConfigError("with an explicit threshold give one evidence exponent gamma, not several")
        gammas = [1.0 if gamma is None else float(gamma)]
        EarlyExit(threshold, measure, min_steps, gammas[0])  # validates
    else:
        gammas = list(GAMMAS if gamma is None else ([gamma] if isinstance(gamma, (int, float)) else gamma))
    net = _network(model)
    batches = _prepare(net, loader, "events", progress)
    v, y, lengths, t_full = _record(net, batches, repeats, progress)
    N = y.shape[0]
    cal_kw = dict(max_loss=max_loss, min_steps=min_steps, rule=rule, measure=measure,
                  confidence_level=confidence_level, gamma=gammas)

    folds = torch.zeros(N, dtype=torch.int64)
    cals: list[Calibration] = []
    if threshold is not None:
        exits, how, deploy = [EarlyExit(float(threshold), measure, min_steps, gammas[0])], "given", None
    elif calib_loader is not None:
        cv, cy, cl = record_readout(net, calib_loader, progress)
        cals = [calibrate_threshold(cv, cy, cl, **cal_kw)]
        exits = [EarlyExit(cals[0].threshold, measure, min_steps, cals[0].gamma)]
        how, deploy = f"calibrated on held-out data ({cy.shape[0]} samples)", cals[0]
    else:
        if N < 2:
            raise ConfigError("2-fold cross-calibration needs at least 2 samples; pass a threshold or calib_loader")
        folds = torch.arange(N) % 2
        exits = []
        for k in (0, 1):
            o = folds != k
            cals.append(calibrate_threshold(v[:, o], y[o], lengths[o], **cal_kw))
            exits.append(EarlyExit(cals[-1].threshold, measure, min_steps, cals[-1].gamma))
        deploy = calibrate_threshold(v, y, lengths, **cal_kw)
        how = "2-fold cross-calibration on the evaluated data (each half scored with the other half's threshold)"

    # Early-exit runs in the event core: one call per fold, the other fold's samples get 0 steps (free).
    steps = torch.zeros(N, dtype=torch.int64)
    preds = torch.zeros(N, dtype=torch.int64)
    t_exit, start = 0.0, 0
    for ptr, idx, val, T, L, _ in tqdm(batches, desc="early-exit run", leave=False, disable=not progress):
        B = L.shape[0]
        fb = folds[start:start + B].numpy()
        for k, ee in enumerate(exits):
            Lk = np.where(fb == k, L, 0)
            res, s = _timed(lambda: net.run_events(ptr, idx, val, T, Lk, early_exit=ee), repeats)
            t_exit += s
            m = torch.from_numpy(fb == k)
            steps[start:start + B][m] = res.steps[m]
            preds[start:start + B][m] = res.pred[m]
        start += B
    mism = 0
    for k, ee in enumerate(exits):
        o = folds == k
        conf, pred = confidence_trace(v[:, o], measure, ee.gamma)
        s_tr, p_tr = exit_from_trace(conf, pred, lengths[o], ee.threshold, min_steps)
        mism += int(((s_tr != steps[o]) | (p_tr != preds[o])).sum())

    _, pred = confidence_trace(v, measure)
    full_pred = final_prediction(pred, lengths)
    acc_full = float((full_pred == y).double().mean())
    acc_exit = float((preds == y).double().mean())
    pareto = {}
    for g in sorted(set(gammas) | {e.gamma for e in exits}, reverse=True):
        conf_g, _ = confidence_trace(v, measure, g)
        pareto[f"{g:g}"] = threshold_sweep(conf_g, pred, y, lengths, min_steps).as_dict()
    t_max = v.shape[0]
    grid = sorted(set(int(round(q)) for q in np.linspace(1, t_max, min(t_max, 50))))
    fixed = fixed_steps_curve(pred, y, lengths, grid)
    return {
        "n_samples": int(N),
        "measure": measure,
        "min_steps": min_steps,
        "threshold": deploy.threshold if deploy is not None else float(threshold),
        "gamma": deploy.gamma if deploy is not None else gammas[0],
        "exits_used": [{"threshold": e.threshold, "gamma": e.gamma} for e in exits],
        "threshold_source": how,
        "calibration": [c.as_dict() for c in cals],
        "full": {"accuracy": acc_full, "steps": _percentiles(lengths), "event_core_s": t_full},
        "early_exit": {"accuracy": acc_exit, "steps": _percentiles(steps), "event_core_s": t_exit,
                       "exited_early": float((steps < lengths).double().mean())},
        "accuracy_change_points": 100.0 * (acc_exit - acc_full),
        "step_saving": 1.0 - steps.double().sum().item() / max(lengths.double().sum().item(), 1.0),
        "wall_clock_speedup": t_full / t_exit if t_exit > 0 else float("nan"),
        "mismatches": mism,
        "oracle": oracle_summary(pred, y, lengths),
        "curves": {"pareto": pareto, "fixed_T": fixed.as_dict()},
    }


def format_report(r: dict) -> str:
    """Human-readable summary lines of an ``early_exit_report`` dict."""
    f, e = r["full"], r["early_exit"]
    ts = ", ".join(f"{e['threshold']:.6g} (gamma {e['gamma']:g})" for e in r["exits_used"])
    lines = [
        f"early exit: measure {r['measure']}, threshold {r['threshold']:.6g} with gamma {r['gamma']:g} to deploy; "
        f"scored with {ts}: {r['threshold_source']}",
        f"  full length : accuracy {100 * f['accuracy']:.2f}%  timesteps mean {f['steps']['mean']:.1f}  "
        f"p50 {f['steps']['p50']:.0f}  p90 {f['steps']['p90']:.0f}  p99 {f['steps']['p99']:.0f}  "
        f"event core {1e3 * f['event_core_s']:.1f} ms",
        f"  early exit  : accuracy {100 * e['accuracy']:.2f}%  timesteps mean {e['steps']['mean']:.1f}  "
        f"p50 {e['steps']['p50']:.0f}  p90 {e['steps']['p90']:.0f}  p99 {e['steps']['p99']:.0f}  "
        f"event core {1e3 * e['event_core_s']:.1f} ms",
        f"  change      : {r['accuracy_change_points']:+.2f} points, {100 * r['step_saving']:.1f}% fewer steps, "
        f"{r['wall_clock_speedup']:.2f}x wall-clock (event core)",
    ]
    for k, o in r["oracle"].items():
        lines.append(f"  oracle {k:<14}: accuracy {100 * o['accuracy']:.2f}%  timesteps mean {o['mean_steps']:.1f}")
    cals = r.get("calibration") or []
    if cals and all(e["threshold"] >= 1.0 for e in r["exits_used"]):
        c = cals[0]
        lvl = f"at {100 * c['confidence_level']:g}% confidence " if c["confidence_level"] else ""
        lines.append(f"  note: no threshold below 1.0 keeps the loss within {100 * c['max_loss']:g} points {lvl}on "
                     f"{c['n_samples']} calibration samples (with no harm seen, certifying a loss p takes about "
                     f"2.7 / p samples at 95%); more held-out data, a larger max loss or an explicit threshold "
                     f"would let samples exit early")
    if r["mismatches"]:
        lines.append(f"  warning: {r['mismatches']} samples exited differently in the kernel than in the replayed trace")
    return "\n".join(lines)


def plot_pareto(r: dict, path: str | os.PathLike) -> Path:
    """Accuracy vs mean timesteps: early-exit thresholds (Pareto), fixed T, oracles, operating point (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    p, fx = r["curves"]["pareto"], r["curves"]["fixed_T"]
    fig, ax = plt.subplots(figsize=(6, 4))
    # Every distinct threshold, in order (mean steps rise with the threshold), per evidence exponent.
    for i, (g, c) in enumerate(p.items()):
        ax.plot(c["mean_steps"], 100 * np.asarray(c["accuracy"]), "-", lw=1.2, color=f"C{(5 + i) % 10}" if i else "C0",
                label=f"early exit, all thresholds ({r['measure']}, gamma {g})")
    ax.plot(fx["mean_steps"], 100 * np.asarray(fx["accuracy"]), "s-", ms=3, color="C1", label="fixed T")
    for (k, o), mk in zip(r["oracle"].items(), ("*", "P")):
        ax.plot(o["mean_steps"], 100 * o["accuracy"], mk, ms=11, color="C2" if mk == "*" else "C4", ls="none",
                label=f"oracle ({k.replace('_', ' ')})")
    e, f = r["early_exit"], r["full"]
    ax.plot(e["steps"]["mean"], 100 * e["accuracy"], "o", ms=9, mfc="none", color="C3", label="calibrated exit")
    ax.plot(f["steps"]["mean"], 100 * f["accuracy"], "D", ms=6, color="k", label="full length")
    ax.set(xlabel="mean timesteps per sample", ylabel="accuracy (%)",
           title=f"accuracy vs timesteps ({r['n_samples']} samples)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def eval_early_exit_run(run, out: str | os.PathLike, batch_size: int | None = None, progress: bool = True,
                        **kw) -> tuple[dict, list[Path]]:
    """``neurodyn eval --early-exit``: report a loaded run (``train.evaluation.LoadedRun``) on its test
    split, write ``eval_early_exit.json`` and ``eval_early_exit_pareto.png`` into ``out``.

    kw: options of ``early_exit_report`` (measure, max_loss, threshold, ...).
    """
    from ..train.evaluation import write_eval
    r = early_exit_report(run.model, run.test_loader(batch_size), progress=progress, **kw)
    r["checkpoint"], r["data"] = str(run.checkpoint), str(run.config.data.path)
    paths = write_eval(r, out, prefix="eval_early_exit")
    paths.append(plot_pareto(r, Path(out) / "eval_early_exit_pareto.png"))
    return r, paths


__all__ = ["early_exit_report", "eval_early_exit_run", "record_readout", "format_report", "plot_pareto"]

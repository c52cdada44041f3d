"""Early exit: timesteps saved, accuracy change and wall-clock speed-up of per-sample early exit.

Data: SHD-format and N-MNIST-format sets made by datasets/make_sample_data.py (the generator of
the shipped samples, the real file formats and readers) with more samples per class than the
shipped ones, because certifying an accuracy loss of 0.5 points takes several hundred held-out
samples (cached under $NEURODYN_CACHE/bench_data); ``--sample`` uses the shipped datasets/
samples as they are.  On each, a spiking MLP is trained twice: with the usual loss on the final
mean readout (``mean_membrane``) and with the anytime loss on every step's running readout
(``neurodyn.inference.anytime_loss``).  40% of the training split is held out (never trained
on) to calibrate the exit threshold so that at most 0.5% of the test samples that are right at full length
become wrong, at 95% confidence (the default 'harm' rule with Wilson bounds, see
``neurodyn.inference.calibrate``).  On the test split, side by side:

- the event core at full length vs with early exit (its per-sample loop ends when confident):
  kernel time on prebuilt input events, and end to end from dense frames;
- the dense torch path at full length vs early exit with batch compaction (chunks of 8 steps).

    python -m benchmarks.early_exit [--quick] [--sample] [--threads 1] [--retrain]

Times are the CPU time of the process (median of repeats): with one thread that is the wall
time of an idle machine, and it is not inflated by other jobs on a shared one.  Trained weights
are cached in $NEURODYN_CACHE/bench_models; ``--retrain`` ignores the cache.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from .common import RESULTS, ROOT, SAMPLES, set_threads, tiny, write_table

# Samples per class (train, test) of the generated sets: 40% of the training split calibrates,
# and certifying <= 0.5% harmed at 95% needs about 550 calibration samples even with no harm
# seen, so --quick trains smaller models for fewer epochs on the same data.
SIZES = {"SHD": (100, 50), "N-MNIST": (150, 100)}
LOSSES = ("mean_membrane", "anytime")
CALIB_FRACTION = 0.4


def _cache(sub: str) -> Path:
    root = os.environ.get("NEURODYN_CACHE") or os.path.join(Path.home(), ".cache", "neurodyn")
    p = Path(root) / sub
    p.mkdir(parents=True, exist_ok=True)
    return p


def make_data(name: str, n_train: int, n_test: int, seed: int = 0) -> Path:
    """An SHD- or N-MNIST-format set from datasets/make_sample_data.py (cached; built atomically)."""
    out = _cache("bench_data") / f"{name.lower().replace('-', '')}_{n_train}_{n_test}_s{seed}"
    if out.is_dir():
        return out
    spec = importlib.util.spec_from_file_location("make_sample_data", ROOT / "datasets" / "make_sample_data.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"early_exit: generating {name} data ({n_train}/{n_test} samples per class) into {out}")
    if name == "SHD":
        gen.make_shd(tmp, seed, n_train, n_test, 0.8, 0.15)
    else:
        gen.make_nmnist(tmp, seed, n_train, n_test, 1.0, 60)
    os.replace(tmp, out)
    return out


def cpu_time(fn, repeats: int = 5, warmup: int = 1) -> float:
    """Median CPU time of the process for fn() in seconds (see the module docstring)."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        ts.append(time.process_time() - t0)
    return statistics.median(ts)


def _loaders(path: Path, seed: int, batch: int):
    from torch.utils.data import DataLoader, Subset

    from neurodyn.data import load_dataset, pad_collate
    train, test = load_dataset(path, dt_us=10_000)
    perm = np.random.default_rng(seed).permutation(len(train))
    n_cal = int(len(train) * CALIB_FRACTION)
    cal_idx, fit_idx = perm[:n_cal].tolist(), perm[n_cal:].tolist()
    if tiny():
        fit_idx, cal_idx = fit_idx[:64], cal_idx[:32]
    fit = DataLoader(Subset(train, fit_idx), batch_size=32, shuffle=True, collate_fn=pad_collate,
                     generator=torch.Generator().manual_seed(seed))
    cal = DataLoader(Subset(train, cal_idx), batch_size=batch, collate_fn=pad_collate)
    test_ds = Subset(test, list(range(min(len(test), 48)))) if tiny() else test
    tst = DataLoader(test_ds, batch_size=batch, collate_fn=pad_collate)
    x0, _ = train[0]
    return fit, cal, tst, int(np.prod(x0.shape[1:])), int(max(train.num_classes, test.num_classes)), len(cal_idx)


def _flat(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], x.shape[1], -1)


def train_model(name: str, path: Path, loss: str, hidden: int, epochs: int, seed: int, retrain: bool):
    """A spiking MLP (LIF hidden, LI readout, 10 ms steps) trained with ``loss``; cached by its settings."""
    from tqdm import tqdm

    from neurodyn.inference import anytime_loss
    from neurodyn.train import build_model, loss_fn
    fit, cal, tst, n_in, n_cls, n_cal = _loaders(path, seed, 64)
    torch.manual_seed(seed)
    model = build_model({"kind": "mlp", "hidden": [hidden], "dropout": 0.1}, n_in, n_cls, 10.0)
    key = json.dumps([name, str(path), loss, hidden, epochs, seed, tiny(), len(fit.dataset)])
    file = _cache("bench_models") / f"early_exit_{hashlib.sha1(key.encode()).hexdigest()[:12]}.pt"
    if file.is_file() and not retrain:
        model.load_state_dict(torch.load(file))
        return model.eval(), cal, tst, n_cal, 0.0
    lf = anytime_loss if loss == "anytime" else loss_fn(loss)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    t0 = time.perf_counter()
    for ep in range(epochs):
        model.train()
        for x, y, lengths in tqdm(fit, desc=f"{name} {loss} epoch {ep + 1}/{epochs}", leave=False):
            lf_val = lf(model(_flat(x)), y, lengths)
            opt.zero_grad()
            lf_val.backward()
            opt.step()
        sched.step()
    seconds = time.perf_counter() - t0
    tmp = file.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    os.replace(tmp, file)
    return model.eval(), cal, tst, n_cal, seconds


def _time_paths(model, loader, ee, reps: int) -> dict:
    """Median ms (summed over test batches) of full-length vs early-exit runs on three paths."""
    from neurodyn.nn import to_network
    from neurodyn.inference import run_dense_early_exit
    net = to_network(model)
    out = {k: 0.0 for k in ("event_full", "event_exit", "e2e_full", "e2e_exit", "dense_full", "dense_exit")}
    work = [0, 0]
    for x, _, lengths in loader:
        x3 = _flat(x)
        ptr, idx, val = net.events_from_dense(x3)
        T, L = x3.shape[0], lengths.numpy().astype(np.int64)
        out["event_full"] += cpu_time(lambda: net.run_events(ptr, idx, val, T, L), repeats=reps)
        out["event_exit"] += cpu_time(lambda: net.run_events(ptr, idx, val, T, L, early_exit=ee), repeats=reps)
        out["e2e_full"] += cpu_time(lambda: net.run(x3, steps=lengths), repeats=reps)
        out["e2e_exit"] += cpu_time(lambda: net.run(x3, steps=lengths, early_exit=ee), repeats=reps)
        with torch.no_grad():
            out["dense_full"] += cpu_time(lambda: model(x3), repeats=max(3, reps // 2))
        out["dense_exit"] += cpu_time(lambda: run_dense_early_exit(model, x3, ee, lengths, chunk=8),
                                    repeats=max(3, reps // 2))
        r = run_dense_early_exit(model, x3, ee, lengths, chunk=8)
        work[0] += r.sample_steps
        work[1] += x3.shape[0] * x3.shape[1]
    ms = {k: 1e3 * v for k, v in out.items()}
    ms["dense_work_fraction"] = work[0] / max(work[1], 1)
    return ms


def run(a: argparse.Namespace) -> tuple[list[dict], list[dict]]:
    from neurodyn.inference import EarlyExit, early_exit_report, plot_pareto
    rows, reports = [], []
    hidden = 16 if tiny() else (64 if a.quick else 128)
    for name in ("SHD", "N-MNIST"):
        if a.sample or tiny():
            path = SAMPLES[name]
            if not path.is_dir():
                print(f"early_exit: {path} missing, {name} skipped")
                continue
        else:
            path = make_data(name, *SIZES[name])
        epochs = 1 if tiny() else {"SHD": 8 if a.quick else 15, "N-MNIST": 4 if a.quick else 8}[name]
        for loss in LOSSES:
            model, cal, tst, n_cal, train_s = train_model(name, path, loss, hidden, epochs, a.seed, a.retrain)
            r = early_exit_report(model, tst, calib_loader=cal, max_loss=0.005, confidence_level=0.95,
                                  progress=False)
            ee = EarlyExit(r["exits_used"][0]["threshold"], r["measure"], 1, r["exits_used"][0]["gamma"])
            reps = 3 if (a.quick or tiny()) else 7
            ms = _time_paths(model, tst, ee, reps)
            f, e = r["full"], r["early_exit"]
            rows.append({
                "data": name, "train_loss": loss, "hidden": hidden, "epochs": epochs, "n_test": r["n_samples"],
                "n_calib": n_cal, "acc_full_%": 100 * f["accuracy"], "acc_exit_%": 100 * e["accuracy"],
                "d_acc_points": r["accuracy_change_points"], "steps_full": f["steps"]["mean"],
                "steps_exit": e["steps"]["mean"], "steps_exit_p90": e["steps"]["p90"],
                "step_saving_%": 100 * r["step_saving"],
                "oracle_steps": r["oracle"]["stays_correct"]["mean_steps"],
                "event_ms_full": ms["event_full"], "event_ms_exit": ms["event_exit"],
                "event_speedup": ms["event_full"] / ms["event_exit"],
                "e2e_ms_full": ms["e2e_full"], "e2e_ms_exit": ms["e2e_exit"],
                "e2e_speedup": ms["e2e_full"] / ms["e2e_exit"],
                "dense_ms_full": ms["dense_full"], "dense_ms_compacted": ms["dense_exit"],
                "dense_speedup": ms["dense_full"] / ms["dense_exit"],
                "dense_work_%": 100 * ms["dense_work_fraction"],
                "threshold": ee.threshold, "gamma": ee.gamma, "mismatches": r["mismatches"],
                "train_s": train_s if train_s > 0 else float("nan"),
            })
            reports.append(r)
            tag = f"{name.lower().replace('-', '')}_{loss}"
            plot_pareto(r, RESULTS / f"early_exit_{tag}.png")
            print(f"{name} / {loss}: acc {100 * f['accuracy']:.1f}% -> {100 * e['accuracy']:.1f}%, steps "
                  f"{f['steps']['mean']:.1f} -> {e['steps']['mean']:.1f}, event core "
                  f"{ms['event_full']:.1f} -> {ms['event_exit']:.1f} ms")
    return rows, reports


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller models, fewer epochs and repeats")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain", action="store_true", help="ignore cached trained weights")
    ap.add_argument("--sample", action="store_true", help="use the small shipped datasets/ samples as they are")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    rows, _ = run(a)
    if not rows:
        raise SystemExit("early_exit: no data found under datasets/")
    hdr = ("## Early exit (dynamic confidence): steps, accuracy and wall-clock, full length vs per-sample exit"
           + (" (--quick)" if a.quick else "") + "\n\n"
           "Threshold calibrated on a held-out 40% of the training split so that at most 0.5% of the samples right at "
           "full length turn wrong, at 95% confidence (Wilson bound); evidence exponent gamma chosen there too. "
           "Numbers on the test split.")
    notes = [
        "event_ms: event-core kernel on prebuilt CSR input events, summed over test batches of 64 (median CPU "
        "time of repeats); e2e_ms: Network.run on the dense frames (the kernel finds the active inputs in each "
        "frame as it reaches it, so an early exit also skips reading the rest).",
        "dense_ms: the torch modules at full length vs run_dense_early_exit (chunks of 8 steps, finished samples "
        "dropped from the batch between chunks); dense_work_%: sample-steps computed vs T x batch.",
        "train_s: nan when the trained weights came from the cache (--retrain trains again); mismatches: "
        "samples whose kernel exit differs from the exit rule replayed on the recorded run (0 = exact).",
        "oracle_steps: mean steps if every sample stopped at the first step from which its prediction stays "
        "the full-length one (the bound at no accuracy change).",
        "Data: " + ("the shipped datasets/ samples" if a.sample else "sets generated by datasets/make_sample_data.py, "
                    f"(train, test) samples per class {SIZES}") + ".",
    ]
    text = write_table("early_exit", rows, hdr, notes=notes)
    print(text)
    return text


if __name__ == "__main__":
    main()

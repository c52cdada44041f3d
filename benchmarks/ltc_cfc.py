"""LTC and CfC layers: neurodyn (torch reference loop, and for LTC the fused Numba kernel) vs the
``ncps`` package's own modules with copied weights (``LTC.from_ncps`` / ``CfC.from_ncps``).

Before timing, every neurodyn variant is run on the same input as ncps and the largest output
and input-gradient differences are recorded: a speed row counts only for the same numbers.
Forward (no autograd) and forward+backward (loss = mean square of the outputs) are timed
side by side in one process (timed round-robin), same threads, warm-up, median of repeats; peak memory as the
second column.  Default size: 32 inputs, 64 fully connected neurons (ncps semantics: 6 ODE
unfolds per step), T=100, batch 64, float32 (ncps's default dtype).

    python -m benchmarks.ltc_cfc [--quick] [--threads 1]
"""
from __future__ import annotations

import argparse

import torch

from .common import peak_memory_mb, set_threads, timeit_interleaved, tiny, write_table


def _models(F: int, H: int):
    """{(model, library, how): module} with identical weights; ncps sequence modules time-major."""
    import ncps.torch as nt
    from neurodyn.nn import CfC, LTC
    torch.manual_seed(0)
    ltc = nt.LTC(F, H, batch_first=False)
    cfc = nt.CfC(F, H, batch_first=False)
    return {
        ("LTC", "ncps", "LTC module"): ltc,
        ("LTC", "neurodyn", "torch loop"): LTC.from_ncps(ltc, backend="torch"),
        ("LTC", "neurodyn", "fused Numba kernel"): LTC.from_ncps(ltc, backend="numba"),
        ("CfC", "ncps", "CfC module"): cfc,
        ("CfC", "neurodyn", "torch loop"): CfC.from_ncps(cfc),
    }


def _out(model, x):
    y = model(x)
    return y[0] if isinstance(y, tuple) else y  # ncps returns (outputs, last state)


def _compare(model, ref_model, x) -> tuple[float, float]:
    """Largest |output| difference and largest |d loss / d x| difference vs the ncps module."""
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    ya, yb = _out(model, xa), _out(ref_model, xb)
    ga, = torch.autograd.grad(ya.square().mean(), xa)
    gb, = torch.autograd.grad(yb.square().mean(), xb)
    out_diff = (ya - yb).detach().abs().max()
    return float(out_diff), float((ga - gb).abs().max() / gb.abs().max().clamp_min(1e-30))


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="T=50, batch 16, 3 repeats")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    set_threads(a.threads)
    if tiny():
        F, H, T, B, reps = 4, 8, 5, 2, 1
    elif a.quick:
        F, H, T, B, reps = 32, 64, 50, 16, 3
    else:
        F, H, T, B, reps = 32, 64, 100, 64, 5
    models = _models(F, H)
    x = torch.randn(T, B, F, generator=torch.Generator().manual_seed(1))
    rows = []
    from tqdm import tqdm
    for kind in tqdm(sorted({k for k, _, _ in models}, reverse=True), desc="ltc_cfc", leave=False):
        mine = {key: m for key, m in models.items() if key[0] == kind}
        ref = mine[(kind, "ncps", f"{kind} module")]
        fns: dict[str, dict] = {"fwd": {}, "fwd+bwd": {}}
        checks = {}
        for key, m in mine.items():
            checks[key] = _compare(m, ref, x)
            params = list(m.parameters())

            def infer(m=m):
                with torch.no_grad():
                    return _out(m, x)

            def train(m=m, params=params):
                for p in params:
                    p.grad = None
                _out(m, x).square().mean().backward()

            fns["fwd"][key], fns["fwd+bwd"][key] = infer, train
        for task, by_key in fns.items():
            # round-robin over the libraries (benchmarks.common.timeit_interleaved): load bursts hit all alike
            times = timeit_interleaved(by_key, repeats=reps, warmup=1, budget_s=20.0 * len(by_key))
            for (_, lib, how), fn in by_key.items():
                out_diff, grad_diff = checks[(kind, lib, how)]
                rows.append({"model": kind, "library": lib, "how": how, "task": task,
                             "ms": times[(kind, lib, how)] * 1e3, "peak_MB": peak_memory_mb(fn),
                             "max_out_diff_vs_ncps": out_diff, "max_rel_grad_diff_vs_ncps": grad_diff})
    for r in rows:
        base = next(q for q in rows if q["model"] == r["model"] and q["library"] == "ncps" and q["task"] == r["task"])
        r["speedup_vs_ncps"] = base["ms"] / r["ms"]
    hdr = (f"## LTC / CfC {F}->{H} (fully connected, ncps semantics), T={T}, batch {B}, float32, median of {reps}")
    notes = ["same weights (copied with from_ncps); max_*_diff_vs_ncps: largest output difference and largest "
             "input-gradient difference relative to ncps's largest gradient, on the timed input.",
             "speedup_vs_ncps = ncps time / this row's time (>1: faster than ncps)."]
    text = write_table("ltc_cfc", rows, hdr, notes=notes)
    print(text)
    return text


if __name__ == "__main__":
    main()

"""LIF network 700-W-20 over T, batch, width W and input sparsity: neurodyn vs SpikingJelly,
snnTorch, Norse and a plain torch loop, training step (fwd+bwd) and inference (fwd), plus
neurodyn's event-driven core (``to_network(model).run(x)``).  On CPU neurodyn is
also timed fed the same input as event lists (``core.Events``, built before timing, as a data
loader hands them over): a training step and the event core.

One parameter is swept at a time around a base point (T=100, batch 64, W=256, 1.5% input
activity: SHD-like).  Every library runs the same network (``lif_models``: same weights, same
LIF, same surrogate), in one process, with the same threads, warm-up and median of repeats.
Each row records the fraction of output spikes that differ from neurodyn's (``spike_mismatch``)
and, for training, whether the weight gradient is the same (rel. 1e-4); peak memory (``common.peak_memory_mb``) is the
second measured column.  ``vs_fastest_peer`` = fastest peer's time / this time (>1: faster
than every peer).  On a CUDA machine the sweep runs again on the GPU (the event core is
CPU-only and is skipped there).

    python -m benchmarks.lif_sweep [--quick] [--threads 1] [--device cpu|cuda|all]
"""
from __future__ import annotations

import argparse

import torch

from neurodyn.core import Events

from . import lif_models as lm
from .common import describe_device, devices_to_run, peak_memory_mb, set_threads, timeit_interleaved, tiny, write_table

N_IN, N_OUT = 700, 20
BASE = dict(T=100, batch=64, width=256, activity=0.015)
SWEEPS = {"T": [25, 50, 100, 200, 500], "batch": [16, 32, 64, 128, 256],
          "width": [128, 256, 512, 1024, 2048], "activity": [0.005, 0.015, 0.05, 0.15, 0.5]}
GPU_SWEEPS = {**SWEEPS, "batch": [16, 64, 256, 1024, 4096]}
QUICK_BASE = dict(T=50, batch=32, width=128, activity=0.015)
QUICK_SWEEPS = {"T": [50, 100], "width": [128, 512], "activity": [0.015, 0.15]}
TINY_BASE = dict(T=8, batch=4, width=16, activity=0.1)
TINY_SWEEPS = {"T": [8, 12]}
PLOT_AXES = [("T", "T", True), ("batch", "batch", True), ("width", "width", True), ("activity", "activity", True)]


def make_input(T: int, B: int, n: int, activity: float, seed: int = 0) -> torch.Tensor:
    """Bernoulli spikes [T, B, n] with the given probability per channel and step."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n, generator=g) < activity).float()


def sweep_points(base: dict, sweeps: dict[str, list]) -> list[tuple[str, dict]]:
    """(sweep label, point) pairs; a point shared by several sweeps (the base) runs once and is
    labelled with all of them, e.g. 'T+batch+width+activity'."""
    pts: dict[tuple, list[str]] = {}
    for name, values in sweeps.items():
        for v in values:
            p = {**base, name: v}
            pts.setdefault(tuple(sorted(p.items())), []).append(name)
    return [("+".join(names), dict(key)) for key, names in pts.items()]


def _first_grad(peer: lm.Peer) -> torch.Tensor:
    """Gradient of the first layer's weight after a training step, in the units of W (snnTorch
    holds W / TAU, so its gradient is d/dW' = TAU d/dW)."""
    w = next(p for p in peer.model.parameters() if p.dim() == 2)
    g = w.grad.detach().cpu()
    return g / lm.TAU if peer.name == "snntorch" else g


def _same_grad(g: torch.Tensor, ref: torch.Tensor) -> bool:
    """Whether a weight gradient equals neurodyn's dense run's (rel. 1e-4)."""
    return bool(torch.allclose(g, ref, rtol=1e-4, atol=1e-6 * float(ref.abs().max())))


def measure_point(point: dict, n_in: int, device: str, reps: int, budget_s: float) -> list[dict]:
    """All libraries at one point; returns long-format rows (one per library and task)."""
    T, B, W, act = point["T"], point["batch"], point["width"], point["activity"]
    weights = lm.init_weights([n_in, W, N_OUT], act)
    peers, missing = lm.available(lm.LIBRARIES, weights, device)
    x = make_input(T, B, n_in, act).to(device)
    y = torch.randint(0, N_OUT, (B,), generator=torch.Generator().manual_seed(2)).to(device)
    ref_peer = next(p for p in peers if p.name == "neurodyn")
    ref = lm.infer_fn(ref_peer, x)()
    lm.train_fn(ref_peer, x, y)()
    ref_grad = _first_grad(ref_peer)
    rows = []
    checks = {}
    for p in peers:
        mismatch = lm.spike_mismatch(lm.infer_fn(p, x)(), ref)
        lm.train_fn(p, x, y)()
        g = _first_grad(p)
        checks[p.name] = (mismatch, _same_grad(g, ref_grad))
    # neurodyn also fed the input as event lists (core.Events, built before timing as a data
    # loader would: the form event data such as SHD comes in), on CPU where its kernels read them.
    ev = Events.from_dense(x) if device == "cpu" else None
    if ev is not None:
        lm.train_fn(ref_peer, ev, y)()
        ev_grad = _first_grad(ref_peer)
        ev_check = (lm.spike_mismatch(lm.infer_fn(ref_peer, ev)(), ref), _same_grad(ev_grad, ref_grad))
        why = ref_peer.model.fused_reason(ev)
        ev_how = "fused stack (ndn.Sequential)" if why is None else f"{ref_peer.note}, layer by layer ({why})"
    # Round-robin over the libraries (benchmarks.common.timeit_interleaved): load bursts hit all alike.
    for task, make in (("fwd+bwd", lm.train_fn), ("fwd", lm.infer_fn)):
        fns = {p.name: make(p, x, y) if task == "fwd+bwd" else make(p, x) for p in peers}
        if ev is not None and task == "fwd+bwd":
            fns[EVENTS] = make(ref_peer, ev, y)
        times = timeit_interleaved(fns, repeats=reps, warmup=1, device=device, budget_s=budget_s * len(fns))
        for p in peers:
            mismatch, same_grad = checks[p.name]
            rows.append({"library": p.name, "how": lm.how(p, x), "task": task, "ms": times[p.name] * 1e3,
                         "peak_MB": peak_memory_mb(fns[p.name], device), "spike_mismatch": mismatch,
                         "same_grad": same_grad if task == "fwd+bwd" else ""})
        if EVENTS in fns:
            rows.append({"library": "neurodyn", "how": ev_how + ", event lists in",
                         "task": f"{task} (event lists in)", "ms": times[EVENTS] * 1e3,
                         "peak_MB": peak_memory_mb(fns[EVENTS], device), "spike_mismatch": ev_check[0],
                         "same_grad": ev_check[1]})
    hidden_rate = float("nan")
    if device == "cpu":
        from neurodyn.nn import to_network
        net = to_network(ref_peer.model)
        res = net.run(x)
        hidden_rate = float(res.counts[0].sum()) / (T * B * W)
        res_ev = net.run(ev)
        fns = {"frames": lambda: net.run(x), "events": lambda: net.run(ev)}
        times = timeit_interleaved(fns, repeats=reps, warmup=1, budget_s=budget_s * len(fns))
        for key, task, how, out in (("frames", "fwd (event core)", "event-driven core", res.out),
                                    ("events", "fwd (event core, event lists in)", "event-driven core, event lists in",
                                     res_ev.out)):
            rows.append({"library": "neurodyn", "how": how, "task": task, "ms": times[key] * 1e3,
                         "peak_MB": peak_memory_mb(fns[key]), "spike_mismatch": lm.spike_mismatch(out, ref),
                         "same_grad": ""})
    for r in rows:
        r.update(point)
        r["hidden_rate"] = hidden_rate
    for task in ("fwd+bwd", "fwd"):
        peer_ms = [r["ms"] for r in rows if r["task"] == task and r["library"] != "neurodyn"]
        best = min(peer_ms) if peer_ms else float("nan")
        for r in rows:
            if PEER_TASK.get(r["task"]) == task:
                r["vs_fastest_peer"] = best / r["ms"]
    for lib, why in missing.items():
        rows.append({"library": lib, "how": f"not run: {why}", "task": "", "ms": float("nan"), **point})
    return rows


EVENTS = "neurodyn, event lists in"  # the timing key of neurodyn fed event lists
# the peers' task each of neurodyn's rows is compared with
PEER_TASK = {"fwd+bwd": "fwd+bwd", "fwd+bwd (event lists in)": "fwd+bwd", "fwd": "fwd", "fwd (event core)": "fwd",
             "fwd (event core, event lists in)": "fwd"}


def summarize(rows: list[dict]) -> list[dict]:
    """Wide rows: per point and task, neurodyn's time vs the fastest peer's, with memory."""
    out = []
    keys = []
    for r in rows:
        k = (r["sweep"], r["T"], r["batch"], r["width"], r["activity"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        at = [r for r in rows if (r["sweep"], r["T"], r["batch"], r["width"], r["activity"]) == k and r["task"]]
        for task, peer_task in PEER_TASK.items():
            nd = [r for r in at if r["library"] == "neurodyn" and r["task"] == task]
            peers = [r for r in at if r["library"] != "neurodyn" and r["task"] == peer_task]
            if not nd or not peers:
                continue
            best = min(peers, key=lambda r: r["ms"])
            out.append({"sweep": k[0], "T": k[1], "batch": k[2], "width": k[3], "activity": k[4],
                        "hidden_rate": nd[0]["hidden_rate"], "neurodyn": task, "neurodyn_ms": nd[0]["ms"],
                        "fastest_peer": best["library"], "peer_ms": best["ms"],
                        "speedup": best["ms"] / nd[0]["ms"], "neurodyn_MB": nd[0]["peak_MB"],
                        "peer_MB": best["peak_MB"], "peer_spike_mismatch": best["spike_mismatch"]})
    return out


def run_device(device: str, base: dict, sweeps: dict, n_in: int, reps: int, budget_s: float) -> list[dict]:
    from tqdm import tqdm
    rows = []
    for label, point in tqdm(sweep_points(base, sweeps), desc=f"lif_sweep ({device})", leave=False):
        for r in measure_point(point, n_in, device, reps, budget_s):
            rows.append({"sweep": label, **r})
    order = ["sweep", "T", "batch", "width", "activity", "hidden_rate", "library", "how", "task", "ms",
             "vs_fastest_peer", "peak_MB", "spike_mismatch", "same_grad"]
    return [{c: r.get(c, "") for c in order} for r in rows]


NOTES = [
    "same LIF (SpikingJelly LIFNode decay_input, hard reset to 0, tau 2 steps) and surrogate 1/(1+|u|)^2 "
    "in every library; ms = median wall time per call, libraries timed round-robin; peak_MB = peak RSS (GPU: allocated memory) added by one call.",
    "same_grad False for snnTorch: snnTorch detaches the reset from the graph (its Leaky design), the others "
    "differentiate through it; its time is still that of the same network.",
    "spike_mismatch: fraction of output spikes that differ from neurodyn's dense run (0: identical); small "
    "values are float32 rounding of sums taken in another order (event row additions vs BLAS), which "
    "flips spikes sitting on the threshold; snnTorch and Norse also fire on u > 0 where the others fire on u >= 0.",
    "vs_fastest_peer = fastest peer / this row (>1: faster than every peer); the event core is compared "
    "with the peers' fwd.",
    "'event lists in' rows: neurodyn fed the same input as core.Events (built before timing, as a data loader "
    "hands them over) instead of the dense frames every library gets (above ndn.Sequential's max_density they "
    "run the modules, as frames do).",
]


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a handful of small points (~1-2 min on 2 cores)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                    help="all: CPU, then CUDA when a GPU is present")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    if tiny():
        base, sweeps, n_in, reps, budget = TINY_BASE, TINY_SWEEPS, 32, 1, 1.0
    elif a.quick:
        base, sweeps, n_in, reps, budget = QUICK_BASE, QUICK_SWEEPS, N_IN, 3, 3.0
    else:
        base, sweeps, n_in, reps, budget = BASE, SWEEPS, N_IN, 5, 10.0
    devices = devices_to_run(a.device, "lif_sweep")
    text = ""
    for dev in devices:
        sw = GPU_SWEEPS if (dev == "cuda" and not (a.quick or tiny())) else sweeps
        rows = run_device(dev, base, sw, n_in, reps, budget)
        suffix = "" if dev == "cpu" else "_cuda"
        hdr = (f"## LIF {n_in}-W-20 sweep on {describe_device(dev)}: one parameter at a time around "
               f"T={base['T']}, batch {base['batch']}, W={base['width']}, activity {base['activity']:.1%}; "
               f"median of {reps}")
        text += write_table(f"lif_sweep{suffix}", rows, hdr, device=dev, notes=NOTES) + "\n"
        text += write_table(f"lif_sweep{suffix}_summary", summarize(rows),
                            f"## LIF sweep summary ({dev}): neurodyn vs the fastest peer at each point",
                            device=dev, notes=NOTES[:1] + NOTES[3:]) + "\n"
        from .plots import plot_sweep
        axes = [ax for ax in PLOT_AXES if ax[0] in sw]
        plot_sweep(rows, f"lif_sweep{suffix}", f"LIF {n_in}-W-20 on {describe_device(dev)}", axes)
    print(text)
    return text


if __name__ == "__main__":
    main()

"""The Open Neuromorphic SNN library benchmark setup: one Linear(n, n) into one LIF layer, T=500,
batch 16, n = 4096 / 8192 / 16384 neurons, Gaussian input; forward (autograd on) and backward
(``out.sum().backward(retain_graph=True)``) timed separately, plus peak memory.

Our rows are measured here, in one process, with the same network in every library
(``lif_models``: same weights, LIF, surrogate).  On CPU the n x n matmul dominates (it is the
same torch call in every library), so a "Linear alone" row gives the floor.  The numbers that
the Open Neuromorphic blog published (on one GPU, another machine, other versions) are written
to a separate table, ``open_neuromorphic_published``, and never mixed into measured rows.

    python -m benchmarks.open_neuromorphic [--quick] [--threads 1] [--sizes 4096,8192] [--device cpu|cuda|all]
"""
from __future__ import annotations

import argparse
import time

import torch

from . import lif_models as lm
from .common import _sync, describe_device, devices_to_run, peak_memory_mb, set_threads, timeit, tiny, write_table

BATCH = 16
SOURCE = ("https://open-neuromorphic.org/blog/spiking-neural-network-framework-benchmarking/ "
          "(2023-08-02, updated 2024-02-20; chart data framework-benchmarking-16k.json and "
          "framework-benchmarking-mem-16k.json in github.com/open-neuromorphic/open-neuromorphic.github.io)")
# Published forward+backward latency (s) and max GPU memory (GB) on one GPU at 16384 neurons.
PUBLISHED_16K = [
    ("Spyx half-precision v0.1.18", 0.04701, None),
    ("Spyx full-precision v0.1.18", 0.07636, None),
    ("Norse v1.0.0", 0.1095, 5.428),
    ("SpikingJelly CuPy v0.0.0.0.15", 0.1182, 5.964),
    ("Lava DL v0.4.0.dev0", 0.1708, 6.893),
    ("Sinabs EXODUS v1.1.2", 0.1787, 7.937),
    ("Rockpool EXODUS v2.7", 0.1900, 9.490),
    ("SpikingJelly PyTorch v0.0.0.0.15", 1.341, 6.857),
    ("Sinabs v1.2.10", 2.190, 6.486),
    ("Rockpool v2.7", 3.066, 8.175),
    ("snnTorch v0.7.0", 3.078, 6.964),
]


def published_rows() -> list[dict]:
    return [{"framework": f, "neurons": 16384, "T": 500, "batch": 16, "fwd+bwd_s": t,
             "max_gpu_memory_GB": m if m is not None else "n/a"} for f, t, m in PUBLISHED_16K]


def _linear_floor(n: int, device: str) -> lm.Peer:
    """The Linear layer alone (no neuron): the floor every library pays."""
    lin = lm._linears(lm.init_weights([n, n], 1.0))[0].to(device)
    return lm.Peer("Linear alone", lin, None, "torch nn.Linear, no neuron")


def _passes(p: lm.Peer, x: torch.Tensor):
    """(fwd, bwd, fwd_bwd) callables of the benchmark's protocol for one library."""
    state: dict[str, torch.Tensor] = {}

    def fwd():
        if p.reset:
            p.reset(p.model)
        state["out"] = p.model(x)

    def bwd():
        state["out"].sum().backward(retain_graph=True)

    def fwd_bwd():
        fwd()
        state.pop("out").sum().backward()
    return fwd, bwd, fwd_bwd, state


def _timed_once(fwd, bwd, device: str) -> tuple[float, float, float]:
    """One forward and one backward, timed, inside one peak-memory reading (for sizes where a
    call takes tens of seconds on CPU): (fwd s, bwd s, peak MB)."""
    t: dict[str, float] = {}

    def once():
        t0 = time.perf_counter()
        fwd()
        _sync(device)
        t["f"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        bwd()
        _sync(device)
        t["b"] = time.perf_counter() - t0
    mb = peak_memory_mb(once, device)
    return t["f"], t["b"], mb


def measure(n: int, T: int, device: str, reps: int, libs=lm.LIBRARIES, single: bool = False) -> list[dict]:
    """Rows for n neurons.  single: one timed fwd and bwd per library, warmed up on a small slice
    of the input only, memory read during those same calls."""
    weights = lm.init_weights([n, n], 1.0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(T, BATCH, n, generator=g).to(device)
    libs = ["neurodyn"] + [lib for lib in libs if lib != "neurodyn"]
    peers, missing = lm.available(libs, weights, device)
    if str(device).startswith("cuda") and any(p.name == "neurodyn" for p in peers):
        peers.insert(1, lm.gpu_stack_peer(weights, device))
    ref_peer = next(p for p in peers if p.name == "neurodyn")
    ref = lm.infer_fn(ref_peer, x)()
    rows = []
    for p in peers + [_linear_floor(n, device)]:
        mismatch = "" if p.name == "Linear alone" else lm.spike_mismatch(lm.infer_fn(p, x)(), ref)
        fwd, bwd, fwd_bwd, state = _passes(p, x)
        if single:
            _passes(p, x[:2, :2])[2]()  # compile / warm up on a 2-step, 2-sample slice
            t_f, t_b, mb = _timed_once(fwd, bwd, device)
        else:
            t_f = timeit(fwd, repeats=reps, warmup=1, device=device)
            t_b = timeit(bwd, repeats=reps, warmup=1, device=device)
            state.clear()
            mb = peak_memory_mb(fwd_bwd, device)
        state.clear()
        rows.append({"neurons": n, "T": T, "batch": BATCH, "library": p.name, "how": p.note, "fwd_s": t_f,
                     "bwd_s": t_b, "fwd+bwd_s": t_f + t_b, "peak_MB": mb, "spike_mismatch": mismatch,
                     "repeats": 1 if single else reps})
        for q in p.model.parameters():
            q.grad = None
    best = min((r["fwd+bwd_s"] for r in rows if r["library"] not in ("neurodyn", "Linear alone")), default=float("nan"))
    for r in rows:
        r["vs_fastest_peer"] = best / r["fwd+bwd_s"]
    for lib, why in missing.items():
        rows.append({"neurons": n, "T": T, "batch": BATCH, "library": lib, "how": f"not run: {why}"})
    return rows


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="T=100 and only 4096 neurons on CPU")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sizes", help="comma-separated neuron counts (default CPU 4096,8192; GPU 4096,8192,16384)")
    ap.add_argument("--T", type=int, help="time steps (default 500; --quick 100)")
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    if tiny():
        cpu_sizes, gpu_sizes, T, reps = [64], [64], 10, 1
    elif a.quick:
        cpu_sizes, gpu_sizes, T, reps = [4096], [4096, 16384], 100, 1
    else:
        cpu_sizes, gpu_sizes, T, reps = [4096, 8192], [4096, 8192, 16384], 500, 3
    if a.sizes:
        cpu_sizes = gpu_sizes = [int(s) for s in a.sizes.split(",")]
    T = a.T or T
    devices = devices_to_run(a.device, "open_neuromorphic")
    from tqdm import tqdm
    text = ""
    groups: dict[str, dict[str, float]] = {}
    for dev in devices:
        rows = []
        sizes = cpu_sizes if dev == "cpu" else gpu_sizes
        libs = list(lm.LIBRARIES)
        for n in tqdm(sizes, desc=f"open_neuromorphic ({dev})", leave=False):
            # On CPU one fwd+bwd at 8192+ neurons takes about a minute per library: there the
            # run is single-shot and limited to neurodyn and the fastest peer of the size before.
            big = dev == "cpu" and n > 4096 and not tiny()
            rows_n = measure(n, T, dev, reps, libs if big else lm.LIBRARIES, single=big)
            rows += rows_n
            peers_n = [r for r in rows_n if "fwd+bwd_s" in r and r["library"] not in ("neurodyn", "Linear alone")]
            if peers_n:
                libs = ["neurodyn", min(peers_n, key=lambda r: r["fwd+bwd_s"])["library"]]
            groups[f"{n} ({dev})"] = {r["library"]: r["fwd+bwd_s"] for r in rows_n if "fwd+bwd_s" in r}
        suffix = "" if dev == "cpu" else "_cuda"
        hdr = (f"## Open Neuromorphic setup, measured here: Linear(n, n) -> LIF, T={T}, batch {BATCH}, "
               f"on {describe_device(dev)}")
        notes = ["fwd timed with autograd on, bwd = out.sum().backward(retain_graph=True), median of 'repeats' "
                 "calls; peak_MB = memory added by one fwd+bwd.  On CPU above 4096 neurons: one timed call, "
                 "only neurodyn and the fastest peer at the size before.",
                 "vs_fastest_peer = fastest peer's fwd+bwd / this row's; 'Linear alone' is the n x n matmul "
                 "without a neuron (the floor on CPU, where it dominates); spike_mismatch: fraction of output spikes "
                 "that differ from neurodyn's (float32 rounding, see lif_sweep)."]
        text += write_table(f"open_neuromorphic{suffix}", rows, hdr, device=dev, notes=notes) + "\n"
    text += write_table("open_neuromorphic_published", published_rows(),
                        "## Published (other machine): Open Neuromorphic SNN library benchmark, one GPU, "
                        "16384 neurons, T=500, batch 16",
                        notes=[f"source: {SOURCE}", "not measured here: other hardware, other versions; for "
                               "orientation only."], measured=False) + "\n"
    if groups:
        from .plots import plot_bars
        plot_bars(groups, "open_neuromorphic", f"Linear(n,n)->LIF, T={T}, batch {BATCH}: fwd+bwd",
                  "seconds per fwd+bwd")
    print(text)
    return text


if __name__ == "__main__":
    main()

"""Batch-run mode: many independent simulations of one trained network in one call, samples per second.

The SHD-sized LIF network 700-256-20 (``lif_models``), T=100 steps, 1.5% input activity, over
growing batches.  CPU: neurodyn's event-driven core (``Network.run_events`` on CSR events, the
form event data arrives in, and ``Network.run`` on a dense tensor), neurodyn's dense modules
and the peers' inference.  CUDA (when a GPU is present): neurodyn's dense modules on the CuPy
kernels and the peers on the GPU, and the event core's GPU kernel (``Network.run(..., device="cuda")``,
one thread block per sample; CSR events already on the device), batches up to 65536.  Every
row records the fraction of its output spikes that differ from neurodyn's dense run.

    python -m benchmarks.batch_run [--quick] [--threads 1] [--device cpu|cuda|all]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from . import lif_models as lm
from .common import describe_device, devices_to_run, peak_memory_mb, set_threads, timeit, tiny, write_table

N_IN, N_HID, N_OUT, T, ACTIVITY = 700, 256, 20, 100, 0.015
DENSE_LIMIT_BYTES = 512 * 2 ** 20  # peers need the dense [T, B, 700] input: run them up to this size on CPU


def random_events(B: int, T: int, n: int, p: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bernoulli(p) input spikes as sample-major CSR (ptr [B*T+1], channel [E], value [E]);
    row b*T+t holds sample b's spikes at step t (the layout of ``Network.run_events``)."""
    rng = np.random.default_rng(seed)
    ptrs, idxs = [np.zeros(1, np.int64)], []
    rows_per_chunk = max(T, (1 << 24) // n // T * T)  # ~16 M draws at a time
    total = 0
    for r0 in range(0, B * T, rows_per_chunk):
        rows = min(rows_per_chunk, B * T - r0)
        rr, cc = np.nonzero(rng.random((rows, n), dtype=np.float32) < p)
        counts = np.bincount(rr, minlength=rows)
        ptrs.append(total + np.cumsum(counts))
        total += int(counts.sum())
        idxs.append(cc.astype(np.int64))
    idx = np.concatenate(idxs) if idxs else np.zeros(0, np.int64)
    return np.concatenate(ptrs), idx, np.ones(idx.shape[0], np.float32)


def dense_from_events(ptr: np.ndarray, idx: np.ndarray, B: int, T: int, n: int) -> torch.Tensor:
    """The dense [T, B, n] tensor of the same events."""
    rows = np.repeat(np.arange(B * T), np.diff(ptr))
    x = torch.zeros(B * T, n)
    x[torch.from_numpy(rows), torch.from_numpy(idx)] = 1.0
    return x.reshape(B, T, n).transpose(0, 1).contiguous()


def _row(B, lib, how, seconds, mb, mismatch):
    return {"batch": B, "library": lib, "how": how, "ms_per_call": seconds * 1e3, "samples_per_s": B / seconds,
            "peak_MB": mb, "spike_mismatch": mismatch}


def run_cpu(batches: list[int], reps: int, T: int = T) -> list[dict]:
    from neurodyn.nn import to_network
    weights = lm.init_weights([N_IN, N_HID, N_OUT], ACTIVITY)
    peers, missing = lm.available(lm.LIBRARIES, weights)
    nd = next(p for p in peers if p.name == "neurodyn")
    net = to_network(nd.model)
    rows = []
    from tqdm import tqdm
    for B in tqdm(batches, desc="batch_run (cpu)", leave=False):
        ptr, idx, val = random_events(B, T, N_IN, ACTIVITY)
        steps = np.full(B, T, dtype=np.int64)
        ev = lambda: net.run_events(ptr, idx, val, T, steps)  # noqa: E731 - the timed call
        res = ev()
        dense_ok = T * B * N_IN * 4 <= DENSE_LIMIT_BYTES
        ref = None
        if dense_ok:
            x = dense_from_events(ptr, idx, B, T, N_IN)
            ref = lm.infer_fn(nd, x)()
        same_ev = lm.spike_mismatch(res.out, ref) if ref is not None else ""
        rows.append(_row(B, "neurodyn", "event core, CSR events in", timeit(ev, reps, 1), peak_memory_mb(ev), same_ev))
        if not dense_ok:
            for p in peers:
                rows.append({"batch": B, "library": p.name, "how": f"not run: dense input > "
                             f"{DENSE_LIMIT_BYTES >> 20} MB", "samples_per_s": float("nan")})
            continue
        dn = lambda: net.run(x)  # noqa: E731
        rows.append(_row(B, "neurodyn", "event core, dense in", timeit(dn, reps, 1), peak_memory_mb(dn),
                         lm.spike_mismatch(dn().out, ref)))
        for p in peers:
            fn = lm.infer_fn(p, x)
            rows.append(_row(B, p.name, p.note, timeit(fn, reps, 1, budget_s=20.0), peak_memory_mb(fn),
                             lm.spike_mismatch(fn(), ref)))
    for lib, why in missing.items():
        rows.append({"batch": "", "library": lib, "how": f"not run: {why}"})
    return rows


def run_cuda(batches: list[int], reps: int, T: int = T) -> list[dict]:
    import cupy

    from neurodyn.core.gpu import run_batch
    from neurodyn.nn import to_network
    weights = lm.init_weights([N_IN, N_HID, N_OUT], ACTIVITY)
    peers, missing = lm.available(lm.LIBRARIES, weights, "cuda")
    nd = next(p for p in peers if p.name == "neurodyn")
    net = to_network(lm.neurodyn_model(weights))  # the same weights, lifted on the CPU
    rows = []
    for B in batches:
        try:
            ptr, idx, val = random_events(B, T, N_IN, ACTIVITY)
            x = dense_from_events(ptr, idx, B, T, N_IN).cuda()
            ref = lm.infer_fn(nd, x)()
            steps = np.full(B, T, dtype=np.int64)
            d_ptr, d_idx, d_val = cupy.asarray(ptr), cupy.asarray(idx), cupy.asarray(val)
            core = lambda: run_batch(net, d_ptr, d_idx, d_val, T, steps, launcher="cuda").out  # noqa: E731
            rows.append(_row(B, "neurodyn", "event core on the GPU, CSR events on the device",
                             # (its arrays come from CuPy's pool, which torch's peak counter does not see)
                             timeit(core, reps, 1, device="cuda"), float("nan"), lm.spike_mismatch(core(), ref)))
            for p in peers:
                fn = lm.infer_fn(p, x)
                rows.append(_row(B, p.name, p.note, timeit(fn, reps, 1, device="cuda"), peak_memory_mb(fn, "cuda"),
                                 lm.spike_mismatch(fn(), ref)))
            del x, ref
        except torch.cuda.OutOfMemoryError:
            rows.append({"batch": B, "library": "all", "how": "not run: CUDA out of memory", "samples_per_s": float("nan")})
        torch.cuda.empty_cache()
    for lib, why in missing.items():
        rows.append({"batch": "", "library": lib, "how": f"not run: {why}"})
    return rows


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="batches 256 and 1024 only")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    steps = T
    if tiny():
        cpu_b, gpu_b, reps, steps = [8], [8], 1, 10
    elif a.quick:
        cpu_b, gpu_b, reps = [256, 1024], [1024, 16384], 3
    else:
        cpu_b, gpu_b, reps = [256, 1024, 4096, 16384], [1024, 4096, 16384, 65536], 3
    text = ""
    series: dict[str, list[tuple[float, float]]] = {}
    runs = []
    for dev in devices_to_run(a.device, "batch_run"):
        runs.append((dev, run_cpu(cpu_b, reps, steps) if dev == "cpu" else run_cuda(gpu_b, reps, steps)))
    for dev, rows in runs:
        hdr = (f"## Batch run: LIF {N_IN}-{N_HID}-{N_OUT}, T={steps}, {ACTIVITY:.1%} input activity, inference of "
               f"many independent samples per call, on {describe_device(dev)}, median of {reps}")
        notes = ["samples_per_s = batch / time per call; spike_mismatch: fraction of output spikes that differ "
                 "from neurodyn's dense run on the same input (0: identical; small values are float32 rounding, "
                 "see lif_sweep; empty where that reference was not computed)."]
        text += write_table("batch_run" + ("" if dev == "cpu" else "_cuda"), rows, hdr, device=dev, notes=notes) + "\n"
        for r in rows:
            if r.get("samples_per_s", float("nan")) == r.get("samples_per_s", float("nan")):
                series.setdefault(f"{r['library']} ({dev}, {r['how']})", []).append((r["batch"], r["samples_per_s"]))
    if series:
        from .plots import plot_lines
        plot_lines(series, "batch_run", f"Batch run, LIF {N_IN}-{N_HID}-{N_OUT}, T={steps}", "batch size",
                   "samples per second")
    print(text)
    return text


if __name__ == "__main__":
    main()

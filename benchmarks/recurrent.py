"""Recurrent spiking layer: training step and inference of ``ndn.Recurrent``, fused kernels vs the step loop.

An SHD-sized recurrent layer 700 -> 256 (input weights and 256 x 256 recurrent weights), LIF and
ALIF neurons, T=100 steps, 1.5% input activity, float32.  CPU: the fused Numba kernel against
backend='torch' (the reference loop over time).  CUDA (when a GPU is present): the CUDA kernels
generated from the same neuron definitions (CuPy backend, one thread block per sample) against
backend='torch' on the same GPU, over growing batches.  Every row records the fraction of output
spikes that differ from the reference run and the largest difference of the recurrent weight
gradient relative to its largest entry.

    python -m benchmarks.recurrent [--quick] [--threads 1] [--device cpu|cuda|all]
"""
from __future__ import annotations

import argparse
import math

import torch

from . import lif_models as lm
from .common import describe_device, devices_to_run, peak_memory_mb, set_threads, timeit_interleaved, tiny, write_table

N_IN, N_HID, T, ACTIVITY = 700, 256, 100, 0.015
FUSED = {"cpu": "numba", "cuda": "cupy"}


def build(neuron: str, n_in: int, n_hid: int):
    """The layer: input weights as in ``lif_models``, recurrent weights Gaussian with spread
    0.5 / sqrt(0.1 n_hid); the tables report the hidden firing rate this gives (~20%)."""
    import neurodyn.nn as ndn
    cls = {"LIF": ndn.LIF, "ALIF": ndn.ALIF}[neuron]
    layer = ndn.Recurrent(n_in, n_hid, cls(tau_mem=20.0, normalize_input=False))
    (w, b), = lm.init_weights([n_in, n_hid], ACTIVITY)
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        layer.ff.weight.copy_(w)
        layer.ff.bias.copy_(b)
        layer.rec.weight.copy_(torch.randn(n_hid, n_hid, generator=g) * 0.5 / math.sqrt(n_hid * 0.1))
    return layer


def measure(neuron: str, B: int, steps: int, n_in: int, n_hid: int, device: str, reps: int) -> list[dict]:
    layer = build(neuron, n_in, n_hid).to(device)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(steps, B, n_in, generator=g) < ACTIVITY).float().to(device)
    proj = torch.randn(steps, B, n_hid, generator=g).to(device)  # a fixed readout for the loss

    def infer(backend):
        def run():
            layer.neuron.backend = backend
            with torch.no_grad():
                return layer(x)
        return run

    def train(backend):
        def run():
            layer.neuron.backend = backend
            layer.zero_grad(set_to_none=True)
            (layer(x) * proj).sum().backward()
            return layer.rec.weight.grad
        return run

    fused = FUSED[device]
    ref_out, ref_grad = infer("torch")(), train("torch")().clone()
    fns = {f"{b} {task}": (infer if task == "infer" else train)(b) for b in (fused, "torch") for task in ("infer", "train")}
    times = timeit_interleaved(fns, repeats=reps, warmup=1, device=device, budget_s=20.0)
    rows = []
    for b in (fused, "torch"):
        out, grad = infer(b)(), train(b)()
        rows.append({
            "neuron": neuron, "T": steps, "batch": B, "hidden": n_hid, "backend": b,
            "how": "fused kernel, all T steps in one call" if b == fused else "reference loop over T",
            "train_ms": times[f"{b} train"] * 1e3, "infer_ms": times[f"{b} infer"] * 1e3,
            "train_speedup": times["torch train"] / times[f"{b} train"],
            "infer_speedup": times["torch infer"] / times[f"{b} infer"],
            "peak_MB": peak_memory_mb(fns[f"{b} train"], device),
            "hidden_rate": float(ref_out.mean()),
            "spike_mismatch": lm.spike_mismatch(out, ref_out),
            "rel_grad_diff": float((grad - ref_grad).abs().max() / ref_grad.abs().max().clamp_min(1e-30)),
        })
    return rows


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="one batch per device, fewer repeats")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all")
    a = ap.parse_args(argv)
    set_threads(a.threads)
    steps, n_in, n_hid = T, N_IN, N_HID
    batches = {"cpu": [64], "cuda": [64, 1024, 8192]}
    reps = 7
    if tiny():
        steps, n_in, n_hid, batches, reps = 10, 40, 16, {"cpu": [4], "cuda": [4]}, 1
    elif a.quick:
        batches, reps = {"cpu": [64], "cuda": [64, 1024]}, 3
    text = ""
    for dev in devices_to_run(a.device, "recurrent"):
        rows = [r for neuron in ("LIF", "ALIF") for B in batches[dev]
                for r in measure(neuron, B, steps, n_in, n_hid, dev, reps)]
        hdr = (f"## Recurrent layer {n_in}->{n_hid} (recurrent {n_hid}x{n_hid}), T={steps}, {ACTIVITY:.1%} input "
               f"activity, float32, on {describe_device(dev)}: fused kernels vs the reference loop, median of {reps}")
        notes = ["train_ms: forward + BPTT backward of one batch (gradients of the input and recurrent weights); "
                 "infer_ms: forward without autograd; speed-ups against backend='torch' on the same device",
                 "spike_mismatch: fraction of output spikes that differ from the reference run; rel_grad_diff: "
                 "max |dW_rec - reference| / max |reference| (the reference sums the recurrent input as a matmul, "
                 "in another order)"]
        text += write_table("recurrent" + ("" if dev == "cpu" else "_cuda"), rows, hdr, device=dev, notes=notes) + "\n"
    return text


if __name__ == "__main__":
    print(main())

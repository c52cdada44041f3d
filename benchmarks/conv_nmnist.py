"""Conv SNN on N-MNIST-format input (2x34x34 -> 12c5 -> pool 2 -> 32c5 -> pool 2 -> 10): neurodyn vs SpikingJelly, snnTorch.

One training step (forward + backward, cross-entropy on output spike counts; no optimizer
update) and one inference pass, side by side in one process, same threads, interleaved
timing, at T = 30 and 100 steps and 2% / 5% input activity.  Every library has the same
weights and the same LIF (``benchmarks.lif_models``: SpikingJelly's LIFNode with decay_input,
hard reset to 0, fast-sigmoid surrogate); pooling is average pooling.  neurodyn runs its
event-driven ``ndn.Conv2d`` (each input event adds its kernel patch) fed dense frames like the
peers, and fed the same input as event lists (``core.Events``, what the data loader hands over);
inference also runs in the event core (``nn.to_network(model).run``: one compiled kernel per
sample, conv layers adding kernel patches, pooling folded into the next layer's input events).

    python -m benchmarks.conv_nmnist [--quick] [--threads 1]
"""
from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from . import lif_models as lm
from .common import set_threads, timeit_interleaved, tiny, write_table

C_IN, SIDE, CH, K, N_OUT = 2, 34, (12, 32), 5, 10


def conv_weights(input_activity: float, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight, bias) of conv1 [12, 2, 5, 5], conv2 [32, 12, 5, 5], fc [10, 800]: Gaussian, scaled as
    ``lif_models.init_weights`` (a neuron's summed input has the same spread whatever its fan-in
    and input activity; hidden layers assume ~10%)."""
    g = torch.Generator().manual_seed(seed)
    shapes = [(CH[0], C_IN, K, K), (CH[1], CH[0], K, K), (N_OUT, CH[1] * 5 * 5)]
    out = []
    for i, sh in enumerate(shapes):
        fan_in = math.prod(sh[1:])
        act = input_activity if i == 0 else 0.1
        out.append((torch.randn(sh, generator=g) * 1.5 / math.sqrt(fan_in * act), torch.zeros(sh[0])))
    return out


def _load(mod: nn.Module, w: torch.Tensor, b: torch.Tensor, scale: float = 1.0) -> nn.Module:
    with torch.no_grad():
        mod.weight.copy_(w * scale)
        mod.bias.copy_(b * scale)
    return mod


def neurodyn_model(weights) -> nn.Module:
    import neurodyn.nn as ndn

    def lif():
        return ndn.LIF(tau_mem=lm.TAU, dt=1.0, integration="euler", threshold=1.0, reset="zero",
                       surrogate="fast_sigmoid", alpha=1.0)
    (w1, b1), (w2, b2), (w3, b3) = weights
    return ndn.Sequential(_load(ndn.Conv2d(C_IN, CH[0], K, input_size=(SIDE, SIDE)), w1, b1), lif(), ndn.AvgPool2d(2),
                          _load(ndn.Conv2d(CH[0], CH[1], K), w2, b2), lif(), ndn.AvgPool2d(2), ndn.Flatten(),
                          _load(ndn.Linear(CH[1] * 25, N_OUT), w3, b3), lif())


def spikingjelly_model(weights) -> nn.Module:
    """SpikingJelly 2.0 multi-step layers (step_mode='m': convolutions fold T into the batch)."""
    from spikingjelly.activation_based import layer, neuron, surrogate

    def lif():
        return neuron.LIFNode(tau=lm.TAU, decay_input=True, v_threshold=1.0, v_reset=0.0,
                              surrogate_function=surrogate.SuperSpike(alpha=1.0), step_mode="m")
    (w1, b1), (w2, b2), (w3, b3) = weights
    return nn.Sequential(_load(layer.Conv2d(C_IN, CH[0], K, step_mode="m"), w1, b1), lif(),
                         layer.AvgPool2d(2, step_mode="m"), _load(layer.Conv2d(CH[0], CH[1], K, step_mode="m"), w2, b2),
                         lif(), layer.AvgPool2d(2, step_mode="m"), layer.Flatten(step_mode="m"),
                         _load(layer.Linear(CH[1] * 25, N_OUT, step_mode="m"), w3, b3), lif())


class SnnTorchConv(nn.Module):
    """snnTorch's convolutional tutorial network: a Python loop over T, each step Conv2d -> Leaky
    -> pooling; x / TAU folded into the weights (as ``lif_models.SnnTorchNet``)."""

    def __init__(self, weights):
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate
        (w1, b1), (w2, b2), (w3, b3) = weights
        s = 1.0 / lm.TAU
        self.c1 = _load(nn.Conv2d(C_IN, CH[0], K), w1, b1, s)
        self.c2 = _load(nn.Conv2d(CH[0], CH[1], K), w2, b2, s)
        self.fc = _load(nn.Linear(CH[1] * 25, N_OUT), w3, b3, s)
        self.lifs = nn.ModuleList(snn.Leaky(beta=1.0 - s, threshold=1.0, reset_mechanism="zero",
                                            spike_grad=surrogate.fast_sigmoid(slope=1.0)) for _ in range(3))

    def forward(self, x):
        mems = [lif.init_leaky() for lif in self.lifs]
        out = []
        for t in range(x.shape[0]):
            s1, mems[0] = self.lifs[0](self.c1(x[t]), mems[0])
            s2, mems[1] = self.lifs[1](self.c2(nn.functional.avg_pool2d(s1, 2)), mems[1])
            s3, mems[2] = self.lifs[2](self.fc(nn.functional.avg_pool2d(s2, 2).flatten(1)), mems[2])
            out.append(s3)
        return torch.stack(out)


def peers(weights) -> tuple[dict[str, lm.Peer], dict[str, str]]:
    built, missing = {}, {}
    for name, make in (("spikingjelly", spikingjelly_model), ("snntorch", SnnTorchConv)):
        try:
            model = make(weights)
            reset = None
            if name == "spikingjelly":
                from spikingjelly.activation_based import functional
                reset = functional.reset_net
            built[name] = lm.Peer(name, model, reset)
        except Exception as e:  # a peer that cannot be built is reported in the table notes, not fatal
            missing[name] = f"{type(e).__name__}: {e}".splitlines()[0][:160]
    return built, missing


def hidden_rates(model: nn.Module, x: torch.Tensor) -> list[float]:
    """Share of steps in which the neurons of each LIF layer of the neurodyn model fire."""
    import neurodyn.nn as ndn
    rates, h = [], x
    with torch.no_grad():
        for m in model:
            h = m(h)
            if isinstance(m, ndn.LIF):
                rates.append(float(h.mean()))
    return rates


def run_case(T: int, B: int, activity: float, reps: int) -> tuple[list[dict], dict[str, str]]:
    from neurodyn.core import Events
    from neurodyn.nn import to_network
    weights = conv_weights(activity)
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(T, B, C_IN, SIDE, SIDE, generator=g) < activity).float()
    y = torch.randint(0, N_OUT, (B,), generator=g)
    nd = neurodyn_model(weights)
    libs = {"neurodyn": lm.Peer("neurodyn", nd, None), "neurodyn, events": lm.Peer("neurodyn", nd, None)}
    built, missing = peers(weights)
    libs.update(built)
    inputs = {"neurodyn, events": Events.from_dense(x.reshape(T, B, -1))}
    ref = lm.infer_fn(libs["neurodyn"], x)()
    mismatch = {name: lm.spike_mismatch(lm.infer_fn(p, inputs.get(name, x))(), ref) for name, p in libs.items()}
    infer_fns = {n: lm.infer_fn(p, inputs.get(n, x)) for n, p in libs.items()}
    net = to_network(nd)
    core = {"neurodyn, event core": (lambda: net.run(x.reshape(T, B, -1)).out),
            "neurodyn, event core, events": (lambda: net.run(inputs["neurodyn, events"]).out)}
    for n, f in core.items():
        mismatch[n] = lm.spike_mismatch(f(), ref)
    infer = timeit_interleaved({**infer_fns, **core}, repeats=reps)
    train = timeit_interleaved({n: lm.train_fn(p, inputs.get(n, x), y) for n, p in libs.items()}, repeats=reps)
    rates = hidden_rates(nd, x)
    rows = []
    for name in [*libs, *core]:
        rows.append({"T": T, "batch": B, "input_activity": activity,
                     "hidden_rates": "/".join(f"{r:.3f}" for r in rates[:2]),
                     "library": "neurodyn" if name.startswith("neurodyn") else name,
                     "path": "event core" if "event core" in name else "modules",
                     "input": "event lists" if name.endswith("events") else "dense frames",
                     "train_step_ms": train[name] * 1e3 if name in train else float("nan"),
                     "infer_ms": infer[name] * 1e3, "spike_mismatch": mismatch[name]})
    peer_rows = [r for r in rows if r["library"] != "neurodyn"]
    best_t = min((r["train_step_ms"] for r in peer_rows), default=float("nan"))
    best_i = min((r["infer_ms"] for r in peer_rows), default=float("nan"))
    for r in rows:
        r["train_vs_fastest_peer"] = best_t / r["train_step_ms"]
        r["infer_vs_fastest_peer"] = best_i / r["infer_ms"]
    return rows, missing


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes and repeats, for CI-like machines")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    a = ap.parse_args(argv)
    set_threads(a.threads)
    if tiny() or a.quick:
        cases, B, reps = [(8, 0.05)], 2, 2
    else:
        cases, B, reps = [(30, 0.02), (30, 0.05), (100, 0.02), (100, 0.05)], a.batch, 5
    rows, missing = [], {}
    for T, act in cases:
        r, m = run_case(T, B, act, reps)
        rows += r
        missing.update(m)
    hdr = (f"## Conv SNN 2x34x34-12c5-p2-32c5-p2-10 (LIF), batch {B}, {a.threads} thread(s), median of {reps}\n\n"
           "Speed-ups are against the fastest peer in the same run (same case).  hidden_rates: share of steps "
           "in which the two convolutional LIF layers fire.  spike_mismatch: share of output entries that "
           "differ from neurodyn's (float32 sums in another order can flip a spike at threshold)."
           + (f" Not run: {'; '.join(f'{k} ({v})' for k, v in missing.items())}." if missing else ""))
    text = write_table("conv_nmnist", rows, hdr)
    print(text)
    return text


if __name__ == "__main__":
    main()

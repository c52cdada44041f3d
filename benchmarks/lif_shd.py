"""LIF 700-256-20, T=100, batch 64, SHD-like sparse input: neurodyn vs SpikingJelly, snnTorch, plain torch.

One training step (forward + backward, cross-entropy on output spike counts; no optimizer
update) and one inference pass, side by side in one process, same threads, median of repeats.
Also the event-driven inference time as the input activity grows (cost ~ spikes).  The models
are ``benchmarks.lif_models``' (the same LIF and surrogate in every library) with this
benchmark's weights (``shd_weights``).

    python -m benchmarks.lif_shd [--quick] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy

import torch
from torch import nn

from . import lif_models as lm
from .common import peak_memory_mb, set_threads, timeit, timeit_interleaved, write_table

N_IN, N_HID, N_OUT = 700, 256, 20


def make_input(T: int, B: int, activity: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, N_IN, generator=g) < activity).float()


def shd_weights(seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight [out, in], bias [out]) of the 700-256-20 network: N(0, 0.5^2) weights, zero biases."""
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(N_HID, N_IN, generator=g) * 0.5
    w2 = torch.randn(N_OUT, N_HID, generator=g) * 0.5
    return [(w1, torch.zeros(N_HID)), (w2, torch.zeros(N_OUT))]


FUSED = "neurodyn fused"
FUSED_EV = "neurodyn fused, events"


def main(argv=None) -> str:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small repeats, for CI-like machines")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--activity", type=float, default=0.015)
    a = ap.parse_args(argv)
    set_threads(a.threads)
    reps = 3 if a.quick else 15
    x = make_input(a.T, a.batch, a.activity)
    y = torch.randint(0, N_OUT, (a.batch,), generator=torch.Generator().manual_seed(2))

    from neurodyn.core import Events
    from neurodyn.nn import to_network
    import neurodyn.nn as ndn
    weights = shd_weights()
    nd = nn.Sequential(*lm.neurodyn_model(weights))
    # neurodyn three times: its fused stack (ndn.Sequential: one forward and one backward kernel
    # for all layers) fed frames like the peers, the same fed event lists (core.Events, the form
    # SHD files hold: spike times and channels, binned; no frames are read), and the same
    # modules run one by one in a plain nn.Sequential.
    libs = {FUSED: lm.Peer(FUSED, ndn.Sequential(*copy.deepcopy(list(nd))), None),
            FUSED_EV: lm.Peer(FUSED_EV, ndn.Sequential(*copy.deepcopy(list(nd))), None),
            "neurodyn": lm.Peer("neurodyn", nd, None)}
    built, missing = lm.available(("spikingjelly", "snntorch", "torch"), weights)
    libs.update({"torch loop" if p.name == "torch" else p.name: p for p in built})
    x_ev = Events.from_dense(x)
    inputs = {FUSED_EV: x_ev}

    # Same numbers first: every library sees the same weights and must produce the same spikes.
    ref = lm.infer_fn(libs["neurodyn"], x)()
    same = {name: bool(torch.equal(lm.infer_fn(p, inputs.get(name, x))(), ref)) for name, p in libs.items()}
    # The event core on the same weights.
    same_event = bool(torch.equal(to_network(nd).run(x).out, ref))

    # Timed round-robin (benchmarks.common.timeit_interleaved): load from other jobs hits every
    # library alike.  The timed training steps leave the weights as they are (no optimizer update).
    net = to_network(nd)
    # The event core is also fed event lists, the format SHD files hold (spike times and
    # channels): every library gets its input ready-made, peers as dense frames, that row as events.
    ev = net.events_from_dense(x)
    steps = torch.full((a.batch,), a.T, dtype=torch.int64).numpy()
    same_csr = bool(torch.equal(net.run_events(*ev, a.T, steps).out, ref))
    infer_fns = {name: lm.infer_fn(p, inputs.get(name, x)) for name, p in libs.items()}
    train_fns = {name: lm.train_fn(p, inputs.get(name, x), y) for name, p in libs.items()}
    train = timeit_interleaved(train_fns, repeats=reps)
    # Peak memory a training step adds (resident set; the smallest of 3 calls, after the timing).
    train_mb = {name: min(peak_memory_mb(f) for _ in range(3)) for name, f in train_fns.items()}
    infer_fns["event frames"] = lambda: net.run(x)
    infer_fns["event lists"] = lambda: net.run_events(*ev, a.T, steps)
    infer = timeit_interleaved(infer_fns, repeats=reps)
    rows = []
    modes = {FUSED: "fused stack (ndn.Sequential)", FUSED_EV: "fused stack, event lists in",
             "neurodyn": "torch modules, layer by layer"}
    for name in libs:
        rows.append({"library": "neurodyn" if name in modes else name, "mode": modes.get(name, "default"),
                     "train_step_ms": train[name] * 1e3, "infer_ms": infer[name] * 1e3, "same_spikes": same[name],
                     "train_peak_MB": train_mb[name]})
    rows.append({"library": "neurodyn", "mode": "event-driven core, dense frames in", "train_step_ms": float("nan"),
                 "infer_ms": infer["event frames"] * 1e3, "same_spikes": same_event, "train_peak_MB": float("nan")})
    rows.append({"library": "neurodyn", "mode": "event-driven core, event lists in", "train_step_ms": float("nan"),
                 "infer_ms": infer["event lists"] * 1e3, "same_spikes": same_csr, "train_peak_MB": float("nan")})
    peers = [r for r in rows if r["library"] != "neurodyn"]
    best_train = min(r["train_step_ms"] for r in peers) if peers else float("nan")
    best_inf = min(r["infer_ms"] for r in peers) if peers else float("nan")
    for r in rows:
        r["train_speedup_vs_best_peer"] = best_train / r["train_step_ms"] if r["train_step_ms"] == r["train_step_ms"] else float("nan")
        r["infer_speedup_vs_best_peer"] = best_inf / r["infer_ms"]
    hdr = (f"## LIF {N_IN}-{N_HID}-{N_OUT}, T={a.T}, batch {a.batch}, input activity {a.activity:.1%}, "
           f"{a.threads} thread(s), median of {reps}\n\nSpeed-ups are against the fastest peer in the same run. "
           "Peers and the frame rows get dense frames [T, B, 700]; the event-list rows get the same "
           "input as event lists (core.Events, the binned spike times and channels an SHD file holds), "
           "built before timing as a data loader would."
           + (f" Not run: {'; '.join(f'{k} ({v})' for k, v in missing.items())}." if missing else ""))
    text = write_table("lif_shd", rows, hdr)

    # Scaling with spike count: event-driven inference cost vs input activity.
    scal = []
    peer = "spikingjelly" if "spikingjelly" in libs else "torch loop"
    for act in (0.005, 0.015, 0.05, 0.15):
        xa = make_input(a.T, a.batch, act, seed=3)
        ra = net.run(xa)
        ev = int(torch.count_nonzero(xa)) + sum(int(c.sum()) for c in ra.counts)
        csr = net.events_from_dense(xa)
        t = timeit(lambda: net.run(xa), repeats=reps)
        t_ev = timeit(lambda: net.run_events(*csr, a.T, steps), repeats=reps)
        t_sj = timeit(lm.infer_fn(libs[peer], xa), repeats=max(2, reps // 3))
        scal.append({"input_activity": act, "events_per_run": ev, "neurodyn_event_ms": t * 1e3,
                     "ns_per_event": t * 1e9 / max(ev, 1), "neurodyn_event_lists_ms": t_ev * 1e3,
                     "lists_ns_per_event": t_ev * 1e9 / max(ev, 1), "peer_infer_ms": t_sj * 1e3,
                     "peer": peer})
    text += "\n" + write_table("lif_shd_scaling", scal, "## Event-driven inference vs input activity (cost ~ events): "
                               "dense frames in (neurodyn_event_ms) and event lists in")
    print(text)
    return text


if __name__ == "__main__":
    main()

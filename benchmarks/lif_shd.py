"""LIF 700-256-20, T=100, batch 64, SHD-like sparse input: neurodyn vs SpikingJelly, snnTorch, plain torch.

One training step (forward + backward, cross-entropy on output spike counts) and one
inference pass, side by side in one process, same threads, median of repeats.  Also the
event-driven inference time as the input activity grows (cost ~ spikes).

    python -m benchmarks.lif_shd [--quick] [--threads 1]
"""
from __future__ import annotations

import argparse
import copy
import math

import torch
from torch import nn

from .common import peak_memory_mb, set_threads, timeit, timeit_interleaved, write_table

N_IN, N_HID, N_OUT = 700, 256, 20
TAU = 2.0  # SpikingJelly-style tau (steps) shared by every library


def make_input(T: int, B: int, activity: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, N_IN, generator=g) < activity).float()


def _init(lin1: nn.Linear, lin2: nn.Linear) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        lin1.weight.copy_(torch.randn(N_HID, N_IN, generator=g) * 0.5)
        lin2.weight.copy_(torch.randn(N_OUT, N_HID, generator=g) * 0.5)
        lin1.bias.zero_()
        lin2.bias.zero_()


def neurodyn_model() -> nn.Sequential:
    import neurodyn.nn as ndn
    lif = dict(tau_mem=TAU, dt=1.0, integration="euler", threshold=1.0, reset="zero", surrogate="atan", alpha=2.0)
    m = nn.Sequential(ndn.Linear(N_IN, N_HID), ndn.LIF(**lif), ndn.Linear(N_HID, N_OUT), ndn.LIF(**lif))
    _init(m[0], m[2])
    return m


def spikingjelly_model():
    from spikingjelly.activation_based import neuron, surrogate
    kw = dict(tau=TAU, decay_input=True, v_threshold=1.0, v_reset=0.0, surrogate_function=surrogate.ATan(alpha=2.0),
              step_mode="m")
    m = nn.Sequential(nn.Linear(N_IN, N_HID), neuron.LIFNode(**kw), nn.Linear(N_HID, N_OUT), neuron.LIFNode(**kw))
    _init(m[0], m[2])
    return m


class TorchLoop(nn.Module):
    """Plain torch: the same LIF written as a Python loop over time."""

    def __init__(self):
        super().__init__()
        self.l1, self.l2 = nn.Linear(N_IN, N_HID), nn.Linear(N_HID, N_OUT)
        _init(self.l1, self.l2)

    @staticmethod
    def _spike(u):
        # ATan surrogate via the straight-through trick
        sg = torch.atan(math.pi / 2 * 2.0 * u) / math.pi + 0.5
        return (u >= 0).float() + sg - sg.detach()

    def _lif(self, cur):
        v = torch.zeros_like(cur[0])
        out = []
        for t in range(cur.shape[0]):
            h = v + (cur[t] - v) / TAU
            s = self._spike(h - 1.0)
            v = h * (1 - s)
            out.append(s)
        return torch.stack(out)

    def forward(self, x):
        return self._lif(self.l2(self._lif(self.l1(x))))


class SnnTorchNet(nn.Module):
    def __init__(self):
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate
        beta = 1 - 1 / TAU
        self.l1, self.l2 = nn.Linear(N_IN, N_HID), nn.Linear(N_HID, N_OUT)
        _init(self.l1, self.l2)
        self.n1 = snn.Leaky(beta=beta, reset_mechanism="zero", spike_grad=surrogate.atan(alpha=2.0))
        self.n2 = snn.Leaky(beta=beta, reset_mechanism="zero", spike_grad=surrogate.atan(alpha=2.0))

    def forward(self, x):
        m1, m2 = self.n1.init_leaky(), self.n2.init_leaky()
        c1 = self.l1(x) / TAU  # input scaling of SpikingJelly's decay_input
        out = []
        for t in range(x.shape[0]):
            s1, m1 = self.n1(c1[t], m1)
            s2, m2 = self.n2(self.l2(s1[None])[0] / TAU, m2)
            out.append(s2)
        return torch.stack(out)


FUSED = "neurodyn fused"
FUSED_EV = "neurodyn fused, events"


def train_step_fn(model, x, y, reset=None):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)

    def step():
        if reset:
            reset(model)
        opt.zero_grad()
        out = model(x)
        loss = nn.functional.cross_entropy(out.sum(0), y)
        loss.backward()
        opt.step()
    return step


def infer_fn(model, x, reset=None):
    def run():
        if reset:
            reset(model)
        with torch.no_grad():
            return model(x)
    return run


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

    libs = {}
    from neurodyn.core import Events
    from neurodyn.nn import to_network
    import neurodyn.nn as ndn
    nd = neurodyn_model()
    # neurodyn three times: its fused stack (ndn.Sequential: one forward and one backward kernel
    # for all layers) fed frames like the peers, the same fed event lists (core.Events, the form
    # SHD files hold: spike times and channels, binned; no frames are read), and the same
    # modules run one by one in a plain nn.Sequential.
    libs[FUSED] = (ndn.Sequential(*copy.deepcopy(nd)), None)
    libs[FUSED_EV] = (ndn.Sequential(*copy.deepcopy(nd)), None)
    libs["neurodyn"] = (nd, None)
    x_ev = Events.from_dense(x)
    inputs = {FUSED_EV: x_ev}
    try:
        from spikingjelly.activation_based import functional
        libs["spikingjelly"] = (spikingjelly_model(), functional.reset_net)
    except ImportError:
        pass
    try:
        libs["snntorch"] = (SnnTorchNet(), None)
    except ImportError:
        pass
    libs["torch loop"] = (TorchLoop(), None)

    # Same numbers first: every library sees the same weights and must produce the same spikes.
    ref = infer_fn(nd, x)()
    same = {name: bool(torch.equal(infer_fn(m, inputs.get(name, x), r)(), ref)) for name, (m, r) in libs.items()}
    # The event core on the same (untrained) weights: the timed training steps below change them.
    same_event = bool(torch.equal(to_network(nd).run(x).out, ref))

    # Timed round-robin (benchmarks.common.timeit_interleaved): load from other jobs hits every
    # library alike.  Training steps change the weights, so inference runs on copies taken before.
    net = to_network(nd)
    # The event core is also fed event lists, the format SHD files hold (spike times and
    # channels): every library gets its input ready-made, peers as dense frames, that row as events.
    ev = net.events_from_dense(x)
    steps = torch.full((a.batch,), a.T, dtype=torch.int64).numpy()
    same_csr = bool(torch.equal(net.run_events(*ev, a.T, steps).out, ref))
    infer_fns = {name: infer_fn(copy.deepcopy(m), inputs.get(name, x), r) for name, (m, r) in libs.items()}
    train_fns = {name: train_step_fn(m, inputs.get(name, x), y, r) for name, (m, r) in libs.items()}
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
           "built before timing as a data loader would.")
    text = write_table("lif_shd", rows, hdr)

    # Scaling with spike count: event-driven inference cost vs input activity.
    scal = []
    peer = "spikingjelly" if "spikingjelly" in libs else "torch loop"
    peer_model, peer_reset = libs[peer]
    for act in (0.005, 0.015, 0.05, 0.15):
        xa = make_input(a.T, a.batch, act, seed=3)
        ra = net.run(xa)
        ev = int(torch.count_nonzero(xa)) + sum(int(c.sum()) for c in ra.counts)
        csr = net.events_from_dense(xa)
        t = timeit(lambda: net.run(xa), repeats=reps)
        t_ev = timeit(lambda: net.run_events(*csr, a.T, steps), repeats=reps)
        t_sj = timeit(infer_fn(peer_model, xa, peer_reset), repeats=max(2, reps // 3))
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

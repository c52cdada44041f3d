"""The same feed-forward LIF network in every library, for side-by-side timing.

``build(lib, sizes, device)`` returns a ``Peer``: a multi-step module [T, B, sizes[0]] ->
[T, B, sizes[-1]] (spikes) of Linear -> LIF layers with identical weights in every library,
and the function that clears its state before a run.  The neuron is the discrete LIF of
SpikingJelly's ``LIFNode(decay_input=True)`` with hard reset to 0:

    h[t] = v[t-1] + (x[t] - v[t-1]) / TAU,  s[t] = H(h[t] - 1),  v[t] = h[t] (1 - s[t])

and every library uses the same surrogate derivative 1 / (1 + |u|)^2 (fast sigmoid / SuperSpike
with width 1): neurodyn ``fast_sigmoid(alpha=1)``, SpikingJelly ``SuperSpike(alpha=1)``, snnTorch
``fast_sigmoid(slope=1)``, Norse ``method="super"`` (Norse 1.1's SuperSpike ignores its alpha and
uses width 1).  Known differences, reported by the benchmarks' ``spike_mismatch`` check rather
than assumed away: snnTorch and Norse fire on u > 0 (the others on u >= 0); snnTorch writes the
update as beta v + x / TAU (input scaling folded into its weights), which rounds differently.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

TAU = 2.0          # membrane time constant in steps (SpikingJelly's tau)
LIBRARIES = ("neurodyn", "spikingjelly", "snntorch", "norse", "torch")


@dataclass
class Peer:
    """A library's model, how to clear its state, and a note on how it runs (backend)."""

    name: str
    model: nn.Module
    reset: Callable[[nn.Module], None] | None
    note: str = ""


def init_weights(sizes: Sequence[int], input_activity: float, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(weight [out, in], bias [out]) per layer: Gaussian, scaled so that a layer's summed input
    has the same spread whatever its fan-in and input activity (hidden layers assume ~10%): hidden
    neurons then fire in ~8-11% of steps, as in trained SHD networks; the tables report the rate."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        act = input_activity if i == 0 else 0.1
        scale = 1.5 / math.sqrt(max(1.0, n_in * act))
        out.append((torch.randn(n_out, n_in, generator=g) * scale, torch.zeros(n_out)))
    return out


def _linears(weights, scale: float = 1.0) -> list[nn.Linear]:
    layers = []
    for w, b in weights:
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w * scale)
            lin.bias.copy_(b * scale)
        layers.append(lin)
    return layers


def how(peer: "Peer", x: torch.Tensor) -> str:
    """How a library runs on x: its note, and for neurodyn whether its stack runs fused."""
    fused_reason = getattr(peer.model, "fused_reason", None)
    if fused_reason is None or x.device.type != "cpu":
        return peer.note
    why = fused_reason(x)
    return "fused stack (ndn.Sequential)" if why is None else f"{peer.note}, layer by layer ({why})"


def neurodyn_model(weights, backend: str = "auto") -> nn.Sequential:
    import neurodyn.nn as ndn
    mods: list[nn.Module] = []
    for w, b in weights:
        lin = ndn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        mods += [lin, ndn.LIF(tau_mem=TAU, dt=1.0, integration="euler", threshold=1.0, reset="zero",
                              surrogate="fast_sigmoid", alpha=1.0, backend=backend)]
    return ndn.Sequential(*mods)


def gpu_stack_peer(weights, device: str) -> Peer:
    """neurodyn's GPU training stack (``ndn.Sequential(fused=True)`` on CUDA: the event network
    kernel forward, BPTT layer by layer) with these weights."""
    model = neurodyn_model(weights, "auto").to(device)
    model.fused = True
    return Peer("neurodyn", model, None, "GPU stack (fused=True): event kernel forward, layered BPTT")


def spikingjelly_model(weights) -> nn.Sequential:
    """SpikingJelly 2.0 picks its LIF implementation from the tensor's device (no backend
    argument): on CPU a fused op (loop over T in torch, hand-written backward) for built-in
    surrogates such as SuperSpike; on CUDA its native CUDA / Triton kernels."""
    from spikingjelly.activation_based import neuron, surrogate
    mods: list[nn.Module] = []
    for lin in _linears(weights):
        mods += [lin, neuron.LIFNode(tau=TAU, decay_input=True, v_threshold=1.0, v_reset=0.0,
                                     surrogate_function=surrogate.SuperSpike(alpha=1.0), step_mode="m")]
    return nn.Sequential(*mods)


class SnnTorchNet(nn.Module):
    """snnTorch ``Leaky`` layers stepped in a Python loop (snnTorch's documented usage)."""

    def __init__(self, weights):
        super().__init__()
        import snntorch as snn
        from snntorch import surrogate
        self.lins = nn.ModuleList(_linears(weights, 1.0 / TAU))  # x / TAU folded into the weights
        self.lifs = nn.ModuleList(snn.Leaky(beta=1.0 - 1.0 / TAU, threshold=1.0, reset_mechanism="zero",
                                            spike_grad=surrogate.fast_sigmoid(slope=1.0)) for _ in weights)

    def forward(self, x):
        cur = self.lins[0](x)  # the first Linear sees all T steps at once, as in the other libraries
        for k, (lin, lif) in enumerate(zip(self.lins, self.lifs)):
            if k:
                cur = lin(cur)
            mem = lif.init_leaky()
            out = []
            for t in range(cur.shape[0]):
                s, mem = lif(cur[t], mem)
                out.append(s)
            cur = torch.stack(out)
        return cur


class NorseNet(nn.Module):
    """Norse ``LIFBoxCell`` (current-free LIF, v += dt/tau (x - v)) stepped in a Python loop."""

    def __init__(self, weights):
        super().__init__()
        from norse.torch import LIFBoxCell, LIFBoxParameters
        p = LIFBoxParameters(tau_mem_inv=torch.as_tensor(1.0 / TAU), v_leak=torch.as_tensor(0.0),
                             v_th=torch.as_tensor(1.0), v_reset=torch.as_tensor(0.0), method="super",
                             alpha=torch.as_tensor(1.0))
        self.lins = nn.ModuleList(_linears(weights))
        self.cells = nn.ModuleList(LIFBoxCell(p, dt=1.0) for _ in weights)

    def forward(self, x):
        cur = x
        for lin, cell in zip(self.lins, self.cells):
            cur = lin(cur)
            state, out = None, []
            for t in range(cur.shape[0]):
                z, state = cell(cur[t], state)
                out.append(z)
            cur = torch.stack(out)
        return cur


class _Spike(torch.autograd.Function):
    """H(u) (u >= 0) forward, 1 / (1 + |u|)^2 backward."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        return g / (1.0 + u.abs()) ** 2


class TorchLoop(nn.Module):
    """Plain torch: the same LIF written as a Python loop over time, autograd for BPTT."""

    def __init__(self, weights):
        super().__init__()
        self.lins = nn.ModuleList(_linears(weights))

    def forward(self, x):
        cur = x
        for lin in self.lins:
            cur = lin(cur)
            v = torch.zeros_like(cur[0])
            out = []
            for t in range(cur.shape[0]):
                h = v + (cur[t] - v) / TAU
                s = _Spike.apply(h - 1.0)
                v = h * (1.0 - s)
                out.append(s)
            cur = torch.stack(out)
        return cur


def build(lib: str, weights, device: str = "cpu") -> Peer:
    """The network with these weights in library ``lib`` on ``device`` (ImportError if missing)."""
    cuda = str(device).startswith("cuda")
    if lib == "neurodyn":
        backend = "cupy" if cuda else "numba"
        return Peer(lib, neurodyn_model(weights, backend).to(device), None, f"{backend} kernels")
    if lib == "spikingjelly":
        from spikingjelly.activation_based import functional
        note = "native CUDA/Triton kernels (auto)" if cuda else "fused CPU op (auto)"
        return Peer(lib, spikingjelly_model(weights).to(device), functional.reset_net, note)
    if lib == "snntorch":
        return Peer(lib, SnnTorchNet(weights).to(device), None, "Leaky, loop over T")
    if lib == "norse":
        return Peer(lib, NorseNet(weights).to(device), None, "LIFBoxCell, loop over T")
    if lib == "torch":
        return Peer(lib, TorchLoop(weights).to(device), None, "Python loop over T")
    raise ValueError(f"unknown library '{lib}'; choose from {LIBRARIES}")


def available(libs: Sequence[str], weights, device: str = "cpu") -> tuple[list[Peer], dict[str, str]]:
    """Build every library that imports and runs here; returns (peers, {missing lib: reason})."""
    peers, missing = [], {}
    for lib in libs:
        try:
            peers.append(build(lib, weights, device))
        except Exception as e:  # a peer that cannot be built is reported in the table notes, not fatal
            missing[lib] = f"{type(e).__name__}: {e}".splitlines()[0][:160]
    return peers, missing


def spike_mismatch(out: torch.Tensor, ref: torch.Tensor) -> float:
    """Fraction of output entries that differ from the reference run (0.0: identical spike trains).

    Small nonzero values come from float32 rounding, not from a different model: the same sum
    taken in another order (neurodyn adds weight rows of the active inputs, BLAS blocks a
    matmul) can put a membrane a rounding error either side of the threshold, and one flipped
    spike then changes that neuron's later steps and the next layer."""
    return float((out != ref).float().mean())


def infer_fn(peer: Peer, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    """One inference pass (no autograd graph)."""
    def run():
        if peer.reset:
            peer.reset(peer.model)
        with torch.no_grad():
            return peer.model(x)
    return run


def train_fn(peer: Peer, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    """One training step without the optimizer update: forward, cross-entropy on the output
    spike counts, backward (BPTT through all T steps)."""
    params = list(peer.model.parameters())

    def step():
        if peer.reset:
            peer.reset(peer.model)
        for p in params:
            p.grad = None
        out = peer.model(x)
        nn.functional.cross_entropy(out.sum(0), y).backward()
    return step

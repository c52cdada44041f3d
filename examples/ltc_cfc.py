"""Liquid time-constant (LTC) and closed-form continuous-time (CfC) networks on irregularly sampled signals.

Each sequence is a noisy sine observed at random times (each sequence its own mean gap,
0.1..0.5 s, each gap 0.5..1.5 times it), and the task is to tell its frequency (0.25, 0.4 or
0.55 Hz) from the samples. Because the sampling rate varies, the number of steps per cycle says
little; a model has to know how much time passed between two samples.
LTC and CfC take that as ``elapsed [T, B]`` (the ``ts`` of ncps). The example trains

``CfC`` and ``LTC`` (``backend="numba"``: all steps and their backward in one fused CPU kernel),
each given the elapsed times and told every gap is 1 (what a discrete-time RNN assumes), and
checks the LTC kernel against the torch reference loop on the trained model.

    python examples/ltc_cfc.py [--epochs 30]
"""
from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from tqdm import trange  # noqa: E402

from neurodyn.nn import LTC, CfC  # noqa: E402

FREQS_HZ = (0.25, 0.4, 0.55)


def irregular_sines(n: int, steps: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x [T, B, 1]`` noisy samples, ``elapsed [T, B]`` gaps (s) before each sample, ``y [B]`` class."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(len(FREQS_HZ), (n,), generator=g)
    rate = 0.1 + 0.4 * torch.rand(n, generator=g)               # each sequence its own mean gap (s)
    gaps = rate * (0.5 + torch.rand(steps, n, generator=g))
    t = gaps.cumsum(0)
    phase = 2 * math.pi * torch.rand(n, generator=g)
    omega = 2 * math.pi * torch.tensor(FREQS_HZ)[y]
    x = torch.sin(omega * t + phase) + 0.1 * torch.randn(steps, n, generator=g)
    return x[..., None], gaps, y


class Classifier(nn.Module):
    """A continuous-time layer read out at its last step: ``[T, B, 1] -> [B, classes]``."""

    def __init__(self, rnn: nn.Module, hidden: int) -> None:
        super().__init__()
        self.rnn, self.head = rnn, nn.Linear(hidden, len(FREQS_HZ))

    def forward(self, x: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        return self.head(self.rnn(x, elapsed=elapsed)[-1])


def fit(model: Classifier, data, test, epochs: int, use_time: bool, label: str, lr: float = 0.02) -> dict:
    x, e, y = data
    xt, et, yt = test
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses, t0 = [], time.perf_counter()
    for _ in trange(epochs, desc=label, leave=False):
        model.train()
        total, batches = 0.0, 0
        for idx in torch.randperm(y.numel(), generator=torch.Generator().manual_seed(len(losses))).split(64):
            gaps = e[:, idx] if use_time else torch.ones_like(e[:, idx])
            loss = nn.functional.cross_entropy(model(x[:, idx], gaps), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if hasattr(model.rnn, "apply_weight_constraints"):
                model.rnn.apply_weight_constraints()
            total, batches = total + loss.item(), batches + 1
        losses.append(total / batches)
    model.eval()
    with torch.no_grad():
        acc = float((model(xt, et if use_time else torch.ones_like(et)).argmax(1) == yt).float().mean())
    print(f"{label}: test accuracy {acc:.3f} ({time.perf_counter() - t0:.1f} s)")
    return {"accuracy": acc, "losses": losses, "seconds": time.perf_counter() - t0}


def main(out: Path = Path("runs/examples/ltc_cfc"), epochs: int = 30) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    train_set, test_set = irregular_sines(768, seed=0), irregular_sines(384, seed=1)
    hidden = 16
    cfc = lambda: Classifier(CfC(1, hidden, backbone_units=32), hidden)  # noqa: E731
    ltc = lambda: Classifier(LTC(1, hidden, backend="numba", unfolds=3), hidden)  # noqa: E731
    runs = {                                                   # label: (model, given elapsed times, lr)
        "CfC, elapsed times": (cfc(), True, 0.005),
        "CfC, gaps taken as 1": (cfc(), False, 0.005),
        "LTC (numba), elapsed times": (ltc(), True, 0.02),
        "LTC (numba), gaps taken as 1": (ltc(), False, 0.02),
    }
    results = {label: fit(model, train_set, test_set, epochs, use_time, label, lr)
               for label, (model, use_time, lr) in runs.items()}

    layer = runs["LTC (numba), elapsed times"][0].rnn
    xt, et, _ = test_set
    with torch.no_grad():
        fused = layer(xt, elapsed=et)
        layer.backend = "torch"                                # the reference loop over time
        loop = layer(xt, elapsed=et)
        layer.backend = "numba"
    kernel_error = float((fused - loop).abs().max())

    fig, (a0, a1) = plt.subplots(1, 2, figsize=(9.5, 3.4))
    xs, es, ys = train_set
    for c in range(len(FREQS_HZ)):
        b = int((ys == c).nonzero()[0])
        a0.plot(es[:, b].cumsum(0), xs[:, b, 0], "o-", ms=3, label=f"{FREQS_HZ[c]} Hz")
    a0.set(xlabel="time (s)", ylabel="observation", title="irregularly sampled inputs")
    a0.legend(fontsize=8)
    for label, r in results.items():
        a1.plot(range(1, epochs + 1), r["losses"], label=f"{label} ({r['accuracy']:.2f})")
    a1.set(xlabel="epoch", ylabel="training loss (epoch mean)", title="training (test accuracy)")
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "ltc_cfc.png", dpi=120)
    plt.close(fig)
    print(f"LTC fused kernel vs torch loop: max difference {kernel_error:.1e}; plot: {out / 'ltc_cfc.png'}")
    return {"accuracy": {k: r["accuracy"] for k, r in results.items()}, "kernel_error": kernel_error,
            "plot": out / "ltc_cfc.png"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/examples/ltc_cfc"))
    ap.add_argument("--epochs", type=int, default=30)
    a = ap.parse_args()
    main(a.out, a.epochs)

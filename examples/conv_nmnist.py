"""A convolutional spiking network on N-MNIST.

Stateless layers (Conv2d, pooling, BatchNorm) act on every time step at once through
``ndn.MultiStep``, which folds time into the batch (Conv -> BatchNorm -> LIF, as SpikingJelly's
convolutional examples; the normalization keeps the LIF layers firing from the first step); the LIF layers keep state across steps and
accept any feature shape ([T, B, C, H, W] here). The event camera's ON/OFF polarities are the two
input channels. Training is BPTT with a plain PyTorch loop on padded frames; the plot shows the
first convolution's filters and the feature-map spikes of one test sample.

    python examples/conv_nmnist.py [--data datasets/nmnist_sample] [--epochs 6]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm import tqdm  # noqa: E402

import neurodyn.nn as ndn  # noqa: E402
from neurodyn.data import load_dataset, pad_collate  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def conv_snn(dt_ms: float) -> nn.Sequential:
    """[T, B, 2, 34, 34] events -> [T, B, 10] readout membrane."""
    lif = dict(tau_mem=20.0, dt=dt_ms, normalize_input=False, surrogate="atan")
    return nn.Sequential(
        ndn.MultiStep(nn.Conv2d(2, 8, 5, stride=2, padding=2)),                     # 8 x 17 x 17
        ndn.MultiStep(nn.BatchNorm2d(8)), ndn.LIF(**lif),
        ndn.MultiStep(nn.Conv2d(8, 16, 3, stride=2, padding=1)),                    # 16 x 9 x 9
        ndn.MultiStep(nn.BatchNorm2d(16)), ndn.LIF(**lif),
        ndn.MultiStep(nn.Flatten()), ndn.Linear(16 * 9 * 9, 10), ndn.LI(tau_mem=20.0, dt=dt_ms),
    )


def main(out: Path = Path("runs/examples/conv_nmnist"), data: Path = ROOT / "datasets" / "nmnist_sample",
         epochs: int = 6) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    train_ds, test_ds = load_dataset(data, dt_us=10_000)
    train = DataLoader(train_ds, batch_size=32, shuffle=True, collate_fn=pad_collate)
    test = DataLoader(test_ds, batch_size=128, collate_fn=pad_collate)
    model = conv_snn(dt_ms=10.0)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    t0, history = time.perf_counter(), []
    for epoch in range(epochs):
        model.train()
        for x, y, _ in tqdm(train, desc=f"epoch {epoch + 1}/{epochs}", leave=False):   # x [T, B, 2, 34, 34]
            loss = nn.functional.cross_entropy(model(x).mean(0), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            hits = sum(int((model(x).mean(0).argmax(1) == y).sum()) for x, y, _ in test)
        history.append(hits / len(test_ds))
        print(f"epoch {epoch + 1}: test accuracy {history[-1]:.3f}")
    seconds = time.perf_counter() - t0

    x, y, _ = next(iter(test))
    spikes = {}
    hook = model[2].register_forward_hook(lambda m, i, o: spikes.setdefault("conv1", o.detach()))
    with torch.no_grad():
        model(x[:, :1])
    hook.remove()
    fig, ax = plt.subplots(2, 8, figsize=(12, 3.4))
    w = model[0].module.weight.detach()
    for c in range(8):
        ax[0, c].imshow((w[c, 0] - w[c, 1]).numpy(), cmap="RdBu_r")                 # ON minus OFF weights
        ax[0, c].set_title(f"filter {c}", fontsize=8)
        ax[1, c].imshow(spikes["conv1"][:, 0, c].sum(0).numpy(), cmap="Greys")     # spikes per pixel, all steps
        ax[1, c].set_title(f"{int(spikes['conv1'][:, 0, c].sum())} spikes", fontsize=7)
    for a in ax.flat:
        a.set_xticks([])
        a.set_yticks([])
    ax[0, 0].set_ylabel("ON - OFF\nweights")
    ax[1, 0].set_ylabel(f"spikes\n(digit {int(y[0])})")
    fig.suptitle(f"conv SNN on N-MNIST: test accuracy {history[-1]:.3f}")
    fig.tight_layout()
    fig.savefig(out / "conv_nmnist.png", dpi=120)
    plt.close(fig)
    print(f"test accuracy {history[-1]:.3f} after {epochs} epochs ({seconds:.0f} s); plot: {out / 'conv_nmnist.png'}")
    return {"test_accuracy": history[-1], "seconds": seconds, "plot": out / "conv_nmnist.png"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/examples/conv_nmnist"))
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "nmnist_sample")
    ap.add_argument("--epochs", type=int, default=6)
    a = ap.parse_args()
    main(a.out, a.data, a.epochs)

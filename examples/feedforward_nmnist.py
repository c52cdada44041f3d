"""A feed-forward spiking network on N-MNIST, trained with a plain PyTorch loop.

The data set is read from the real N-MNIST file layout (``Train/<digit>/*.bin``,
``Test/<digit>/*.bin``; the sample in datasets/ or the real root), binned into 10 ms steps and
batched as event lists (``core.Events``): the fused kernels then never build a frame. The model
is a drop-in ``torch.nn.Sequential``; the loss is cross-entropy on the mean membrane of a leaky
readout. After training, the same weights run in the event-driven core.

    python examples/feedforward_nmnist.py [--data datasets/nmnist_sample] [--epochs 4]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from tqdm import tqdm  # noqa: E402

import neurodyn.nn as ndn  # noqa: E402
from neurodyn.data import events_collate, load_dataset  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def accuracy(model: torch.nn.Module, loader: DataLoader) -> float:
    model.eval()
    hits = n = 0
    with torch.no_grad():
        for x, y, _ in loader:
            hits += int((model(x).mean(0).argmax(1) == y).sum())
            n += len(y)
    model.train()
    return hits / n


def main(out: Path = Path("runs/examples/feedforward_nmnist"), data: Path = ROOT / "datasets" / "nmnist_sample",
         epochs: int = 4) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    train_ds, test_ds = load_dataset(data, dt_us=10_000)           # frames [T, 2, 34, 34] per sample
    train_ds.sparse = test_ds.sparse = True                          # hand over nonzeros, not frames
    train = DataLoader(train_ds, batch_size=32, shuffle=True, collate_fn=events_collate)
    test = DataLoader(test_ds, batch_size=128, collate_fn=events_collate)

    model = ndn.Sequential(
        ndn.Linear(2 * 34 * 34, 128), ndn.LIF(tau_mem=20.0, dt=10.0), torch.nn.Dropout(0.1),
        ndn.Linear(128, 10), ndn.LI(tau_mem=20.0, dt=10.0),
    )
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    history = {"loss": [], "test_acc": []}
    t0 = time.perf_counter()
    for epoch in range(epochs):
        total = 0.0
        for x, y, _ in tqdm(train, desc=f"epoch {epoch + 1}/{epochs}", leave=False):
            loss = torch.nn.functional.cross_entropy(model(x).mean(0), y)   # readout [T, B, 10]
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(y)
        history["loss"].append(total / len(train_ds))
        history["test_acc"].append(accuracy(model, test))
        print(f"epoch {epoch + 1}: loss {history['loss'][-1]:.3f}  test accuracy {history['test_acc'][-1]:.3f}")
    seconds = time.perf_counter() - t0

    # The trained weights in the event-driven core: same readout, computed from spikes only.
    x, y, lengths = next(iter(test))
    net = ndn.to_network(model.eval())
    with torch.no_grad():
        same = torch.allclose(net.run(x, steps=lengths).out, model(x), atol=1e-4)

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ep = range(1, epochs + 1)
    ax[0].plot(ep, history["loss"], "o-")
    ax[0].set(xlabel="epoch", ylabel="cross-entropy", title="training loss")
    ax[1].plot(ep, history["test_acc"], "s-")
    ax[1].set(xlabel="epoch", ylabel="test accuracy", ylim=(0, 1), title="N-MNIST test accuracy")
    fig.tight_layout()
    fig.savefig(out / "feedforward_nmnist.png", dpi=120)
    plt.close(fig)
    print(f"test accuracy {history['test_acc'][-1]:.3f} after {epochs} epochs ({seconds:.0f} s); event core "
          f"agrees: {same}; plot: {out / 'feedforward_nmnist.png'}")
    return {"test_accuracy": history["test_acc"][-1], "event_core_agrees": same, "seconds": seconds,
            "plot": out / "feedforward_nmnist.png"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/examples/feedforward_nmnist"))
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "nmnist_sample")
    ap.add_argument("--epochs", type=int, default=4)
    a = ap.parse_args()
    main(a.out, a.data, a.epochs)

"""Learnable synaptic delays on spoken digits (SHD format), against the same network without them.

``DelayedLinear`` gives every synapse a delay that training moves (DCLS-style: a Gaussian
kernel over the delay taps whose position is learned and whose width shrinks to one tap,
Hammouamri et al. 2023). This is the ``delays`` model of ``configs/shd_delays.toml`` at a small
size, trained on the SHD sample with and without delays. After training the delays are rounded
to whole steps and the network runs in the event-driven core with per-synapse delay buffers.

    python examples/learnable_delays.py [--data datasets/shd_sample] [--epochs 12]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import neurodyn.nn as ndn  # noqa: E402
from neurodyn.data import pad_collate  # noqa: E402
from neurodyn.delays import plot_delay_histograms  # noqa: E402
from neurodyn.train import load_config, train  # noqa: E402
from neurodyn.train.evaluation import load_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path = Path("runs/examples/learnable_delays"), data: Path = ROOT / "datasets" / "shd_sample",
         epochs: int = 12) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    acc = {}
    for delays in (True, False):
        name = "delays" if delays else "no_delays"
        cfg = load_config(ROOT / "configs" / "shd_delays.toml", [
            f'data.path="{data}"', f'out="{out / name}"', f"train.epochs={epochs}", "model.hidden=[64,64]",
            f"model.delays={str(delays).lower()}", f"model.readout_delays={str(delays).lower()}",
            "model.sigma_decay_epochs=3", "train.batch_size=32", "train.lr=0.005"])
        acc[name] = train(cfg, plots=False)["test_accuracy"]
        print(f"{name}: test accuracy {acc[name]:.3f}")

    run = load_run(out / "delays" / "model.pt")                 # delays rounded to whole steps at the end
    x, y, lengths = pad_collate([run.test_ds[i] for i in range(16)])
    net = ndn.to_network(run.model)                             # per-synapse delay ring buffers
    with torch.no_grad():
        event, dense = net.run(x, steps=lengths).out.float(), run.model(x).float()
    # the event core stops each sample at its own length; the module runs the padded batch to T
    valid = torch.arange(x.shape[0])[:, None] < torch.as_tensor(lengths)[None, :]
    same = torch.allclose(event[valid], dense[valid], atol=1e-4)
    hist = plot_delay_histograms(run.model, out / "delays_hist.png", dt_ms=run.config.dt_ms)

    fig, ax = plt.subplots(figsize=(4.5, 3.3))
    ax.bar(["with delays", "without"], [acc["delays"], acc["no_delays"]], color=["C0", "0.6"])
    ax.set(ylim=(0, 1), ylabel="test accuracy", title=f"SHD sample, {epochs} epochs, 2 x 64 LIF")
    fig.tight_layout()
    fig.savefig(out / "learnable_delays.png", dpi=120)
    plt.close(fig)
    print(f"with delays {acc['delays']:.3f}, without {acc['no_delays']:.3f}; event core with rounded delays "
          f"agrees: {same}; plots: {out / 'learnable_delays.png'}, {hist}")
    return {"accuracy_delays": acc["delays"], "accuracy_plain": acc["no_delays"], "event_core_agrees": same,
            "plot": out / "learnable_delays.png", "histograms": Path(hist)}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/examples/learnable_delays"))
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "shd_sample")
    ap.add_argument("--epochs", type=int, default=12)
    a = ap.parse_args()
    main(a.out, a.data, a.epochs)

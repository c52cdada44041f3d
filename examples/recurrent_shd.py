"""A recurrent spiking network on spoken digits (SHD format), and its spikes recorded and plotted.

SHD words are told apart by their time course. In the sample in datasets/, classes 10-19 are
classes 0-9 played backwards (same channels, same spike counts), so a network needs memory
longer than its ~20 ms membranes: here a recurrent LIF layer (``ndn.Recurrent``). Training uses
``neurodyn.train`` from Python (the same trainer as ``neurodyn train``); the trained network is
then lifted into the event-driven core, which records every layer's spikes for a raster plot.

    python examples/recurrent_shd.py [--data datasets/shd_sample] [--epochs 20]
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
from neurodyn.train import TrainConfig, train  # noqa: E402
from neurodyn.train.evaluation import load_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path = Path("runs/examples/recurrent_shd"), data: Path = ROOT / "datasets" / "shd_sample",
         epochs: int = 20) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(data={"path": str(data), "bin_us": 10_000},
                      model={"kind": "mlp", "hidden": [128], "recurrent": True, "dropout": 0.1},
                      train={"epochs": epochs, "lr": 5e-3, "batch_size": 32, "seed": 0}, out=str(out / "run"))
    metrics = train(cfg)                                      # checkpoints, metrics.json, plots in out/run
    print(f"test accuracy {metrics['test_accuracy']:.3f}")

    # The trained weights, rebuilt from the checkpoint, in the event-driven core with recording on.
    run = load_run(out / "run" / "model.pt")                 # model (eval mode), config, test split
    x, y, lengths = pad_collate([run.test_ds[i] for i in range(8)])  # x [T, 8, 700], zero-padded
    net = ndn.to_network(run.model)
    res = net.run(x, steps=lengths, record=True)              # records: per layer [T, B, N]
    with torch.no_grad():
        same = torch.allclose(res.out, run.model(x, lengths), atol=1e-4)

    b = 0
    fig, ax = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
    dt = cfg.dt_ms
    t, n = torch.nonzero(x[:, b], as_tuple=True)
    ax[0].scatter(t * dt, n, s=1, c="k")
    ax[0].set(ylabel="input channel", title=f"test sample {b}: class {int(y[b])}, predicted {int(res.pred[b])}")
    t, n = torch.nonzero(res.records[0][:, b], as_tuple=True)
    ax[1].scatter(t * dt, n, s=1, c="k")
    ax[1].set(ylabel="recurrent LIF neuron")
    steps_ms = torch.arange(x.shape[0]) * dt
    ax[2].plot(steps_ms, res.out[:, b], color="0.75", lw=0.8)
    ax[2].plot(steps_ms, res.out[:, b, int(y[b])], color="C3", lw=2, label=f"class {int(y[b])} (true)")
    ax[2].set(xlabel="time (ms)", ylabel="readout membrane")
    ax[2].legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(out / "recurrent_shd_raster.png", dpi=120)
    plt.close(fig)
    print(f"event core agrees with the modules: {same}; hidden spikes per sample: "
          f"{res.counts[0].tolist()}; plot: {out / 'recurrent_shd_raster.png'}")
    return {"test_accuracy": metrics["test_accuracy"], "event_core_agrees": same,
            "raster": out / "recurrent_shd_raster.png", "curves": out / "run" / "curves.png"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/examples/recurrent_shd"))
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "shd_sample")
    ap.add_argument("--epochs", type=int, default=20)
    a = ap.parse_args()
    main(a.out, a.data, a.epochs)

"""Dynamic-confidence early exit: each sample stops as soon as its output is confident.

A spiking MLP is trained on the N-MNIST sample. Half of the test split calibrates the exit
threshold: from one full-length run, the smallest threshold on the max-softmax confidence of
the running readout that costs at most 2 points of accuracy there (the empirical rule: with 50
calibration samples a 95% bound would allow no exit at all; ``confidence_level=0.95`` adds it on
real test splits). The other half
then runs in the event-driven core with that ``EarlyExit``: every sample runs only until its
confidence passes the threshold, inside the kernel, and the example reports the steps saved, the
accuracy against the full-length run and the wall time of both.

    python examples/early_exit.py [--data datasets/nmnist_sample] [--epochs 6]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import neurodyn.nn as ndn  # noqa: E402
from neurodyn.data import pad_collate  # noqa: E402
from neurodyn.inference import EarlyExit, calibrate_threshold  # noqa: E402
from neurodyn.train import load_config, train  # noqa: E402
from neurodyn.train.evaluation import load_run  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(out: Path = Path("runs/examples/early_exit"), data: Path = ROOT / "datasets" / "nmnist_sample",
         epochs: int = 6) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(ROOT / "configs" / "nmnist_mlp.toml",
                      [f'data.path="{data}"', f'out="{out / "run"}"', f"train.epochs={epochs}"])
    train(cfg, plots=False)
    run = load_run(out / "run" / "model.pt")
    net = ndn.to_network(run.model)

    n = len(run.test_ds)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
    x_cal, y_cal, len_cal = pad_collate([run.test_ds[i] for i in order[: n // 2]])
    x_ev, y_ev, len_ev = pad_collate([run.test_ds[i] for i in order[n // 2:]])
    x_cal, x_ev = x_cal.flatten(2), x_ev.flatten(2)                    # [T, B, 2*34*34] event counts

    full_cal = net.run(x_cal, steps=len_cal)                           # one full-length run to calibrate on
    cal = calibrate_threshold(full_cal.out, y_cal, len_cal, max_loss=0.02, measure="max_softmax", confidence_level=None)
    ee = EarlyExit(threshold=cal.threshold, measure=cal.measure, min_steps=cal.min_steps, gamma=cal.gamma)

    t0 = time.perf_counter()
    full = net.run(x_ev, steps=len_ev)
    t_full = time.perf_counter() - t0
    t0 = time.perf_counter()
    early = net.run(x_ev, steps=len_ev, early_exit=ee)
    t_early = time.perf_counter() - t0
    acc_full = float((full.pred == y_ev).float().mean())
    acc_early = float((early.pred == y_ev).float().mean())
    steps_full, steps_early = float(len_ev.float().mean()), float(early.steps.float().mean())

    fig, ax = plt.subplots(1, 2, figsize=(9, 3.3))
    dt = cfg.dt_ms
    ax[0].hist(early.steps.numpy() * dt, bins=range(0, int(len_ev.max()) * int(dt) + int(dt), int(dt)), color="C0")
    ax[0].axvline(steps_full * dt, color="k", ls="--", label="full length")
    ax[0].set(xlabel="exit time (ms)", ylabel="test samples", title="when each sample stops")
    ax[0].legend()
    ax[1].bar(["full length", "early exit"], [acc_full, acc_early], color=["0.6", "C0"])
    ax[1].set(ylim=(0, 1), ylabel="test accuracy",
              title=f"{steps_early:.1f} of {steps_full:.0f} steps, {t_full / t_early:.1f}x faster")
    fig.tight_layout()
    fig.savefig(out / "early_exit.png", dpi=120)
    plt.close(fig)
    print(f"threshold {cal.threshold:.3f}: mean steps {steps_early:.1f} of {steps_full:.0f}; accuracy "
          f"{acc_early:.3f} (full length {acc_full:.3f}); event core {t_full / t_early:.1f}x faster; "
          f"plot: {out / 'early_exit.png'}")
    return {"threshold": cal.threshold, "mean_steps": steps_early, "full_steps": steps_full, "accuracy": acc_early,
            "full_accuracy": acc_full, "speedup": t_full / t_early, "plot": out / "early_exit.png"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/examples/early_exit"))
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "nmnist_sample")
    ap.add_argument("--epochs", type=int, default=6)
    a = ap.parse_args()
    main(a.out, a.data, a.epochs)

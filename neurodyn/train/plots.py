"""Plots of a run: loss/accuracy curves, spike raster of one test sample, confusion matrix (PNG)."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


def _save(fig, path: Path) -> None:
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)


def plot_run(hist: dict, model: torch.nn.Module, test_ds, cm: np.ndarray | None, out: Path) -> list[Path]:
    """Write curves.png, raster.png and confusion.png into ``out``; returns their paths."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..nn import SpikingNeuron

    paths = []
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(hist["epoch"], hist["loss"], "o-")
    ax[0].set(xlabel="epoch", ylabel="train loss")
    ax[1].plot(hist["epoch"], hist["train_acc"], "o-", label="train")
    ax[1].plot(hist["epoch"], hist["test_acc"], "s-", label="test")
    ax[1].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    ax[1].legend()
    _save(fig, out / "curves.png")
    paths.append(out / "curves.png")
    plt.close(fig)

    x, y = test_ds[0]
    x = torch.as_tensor(x)[:, None].reshape(x.shape[0], 1, -1)
    model.eval()
    layers, h = [("input", x)], x
    with torch.no_grad():
        for m in model:
            h = m(h)
            if isinstance(m, SpikingNeuron) and m.model.spiking:
                layers.append((f"{type(m).__name__} layer", h))
    fig, ax = plt.subplots(len(layers), 1, figsize=(8, 2.2 * len(layers)), sharex=True)
    for a, (name, s) in zip(np.atleast_1d(ax), layers):
        t, n = torch.nonzero(s[:, 0], as_tuple=True)
        a.scatter(t.numpy(), n.numpy(), s=1.5, c="k")
        a.set(ylabel=f"{name}\nneuron")
    np.atleast_1d(ax)[-1].set(xlabel="time step")
    np.atleast_1d(ax)[0].set_title(f"spike raster, test sample 0 (label {y})")
    _save(fig, out / "raster.png")
    paths.append(out / "raster.png")
    plt.close(fig)

    if cm is not None:
        fig, a = plt.subplots(figsize=(4.5, 4))
        a.imshow(cm, cmap="Blues")
        a.set(xlabel="predicted", ylabel="true", title="confusion (test)")
        _save(fig, out / "confusion.png")
        paths.append(out / "confusion.png")
        plt.close(fig)
    return paths

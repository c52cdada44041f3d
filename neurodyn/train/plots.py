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


def plot_run(hist: dict, model: torch.nn.Module, test_ds, cm: np.ndarray | None, out: Path,
             dt_ms: float | None = None) -> list[Path]:
    """Write curves.png, raster.png and confusion.png into ``out``; returns their paths.

    ``dt_ms``: the network's time step, for the raster's time axis in ms (steps without it)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    paths = []
    fig, ax = plt.subplots(1, 2, figsize=(9, 3.2))
    ax[0].plot(hist["epoch"], hist["loss"], "o-")
    ax[0].set(xlabel="epoch", ylabel="train loss")
    ax[1].plot(hist["epoch"], hist["train_acc"], "o-", label="train")
    if hist.get("val_acc"):
        ax[1].plot(hist["epoch"], hist["val_acc"], "^-", label="validation")
    ax[1].plot(hist["epoch"], hist["test_acc"], "s-", label="test")
    ax[1].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    ax[1].legend()
    ax[0].set_title("training loss")
    ax[1].set_title(f"accuracy (final test {hist['test_acc'][-1]:.3f})" if hist["test_acc"] else "accuracy")
    for a in ax:
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    _save(fig, out / "curves.png")
    paths.append(out / "curves.png")
    plt.close(fig)

    paths.append(plot_raster(model, test_ds, out / "raster.png", dt_ms=dt_ms))
    if cm is not None:
        paths.append(plot_confusion(cm, out / "confusion.png"))
    return paths


def plot_raster(model: torch.nn.Module, test_ds, path: Path, index: int = 0, dt_ms: float | None = None) -> Path:
    """Spike raster of test sample ``index``: its input and every spiking layer of ``model``
    (time axis in ms when ``dt_ms``, the step width, is given; in steps otherwise).

    Spiking layers are found with forward hooks, so any model built of neurodyn neurons works
    (a Recurrent layer runs its neuron's step itself, so the layer is hooked, not the neuron).
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..nn import Recurrent, SpikingNeuron
    from .device import model_device

    x, y = test_ds[index]
    x = torch.as_tensor(x).reshape(x.shape[0], 1, -1)
    layers: list[tuple[str, torch.Tensor]] = [("input", x)]
    hooks = [m.register_forward_hook(lambda m, i, o: layers.append((f"{type(m).__name__} layer", o.detach().cpu())))
             for m in model.modules()
             if isinstance(m, Recurrent) or (isinstance(m, SpikingNeuron) and m.model.spiking)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x.to(model_device(model)))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    fig, ax = plt.subplots(len(layers), 1, figsize=(8, 2.2 * len(layers)), sharex=True)
    axes = np.atleast_1d(ax)
    for a, (name, s) in zip(axes, layers):
        t, n = torch.nonzero(s.reshape(s.shape[0], s.shape[1], -1)[:, 0], as_tuple=True)
        a.scatter(t.numpy() * (dt_ms or 1.0), n.numpy(), s=1.5, c="k")
        a.set(ylabel=f"{name}\nneuron")
    axes[-1].set(xlabel="time (ms)" if dt_ms else "time step")
    axes[0].set_title(f"spike raster, test sample {index} (label {y})")
    _save(fig, path)
    plt.close(fig)
    return path


def plot_confusion(cm: np.ndarray, path: Path, title: str = "confusion (test)") -> Path:
    """Confusion matrix [C, C] (rows: true class) as an image with counts, written to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    cm = np.asarray(cm)
    fig, a = plt.subplots(figsize=(4.5, 4))
    im = a.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=a, fraction=0.046, label="samples")
    acc = np.trace(cm) / cm.sum() if cm.sum() else float("nan")
    a.set(xlabel="predicted class", ylabel="true class", title=f"{title}, accuracy {acc:.3f}")
    a.xaxis.set_major_locator(MaxNLocator(integer=True))
    a.yaxis.set_major_locator(MaxNLocator(integer=True))
    _save(fig, Path(path))
    plt.close(fig)
    return Path(path)

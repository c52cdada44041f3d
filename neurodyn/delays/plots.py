"""Plot of the learned delay distribution of every DelayedLinear layer (PNG, Agg backend)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from torch import nn

from ..errors import ConfigError
from ..nn.delays import delayed_layers


def plot_delay_histograms(model: nn.Module, path: str | os.PathLike, dt_ms: float | None = None) -> Path:
    """One histogram per DelayedLinear of ``model`` (delays of all its synapses, integer bins);
    x axis in ms when ``dt_ms`` is given, else steps.  Written atomically; returns the path."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = delayed_layers(model)
    if not layers:
        raise ConfigError("plot_delay_histograms: the model has no DelayedLinear layer")
    unit, scale = ("ms", float(dt_ms)) if dt_ms else ("steps", 1.0)
    fig, axes = plt.subplots(1, len(layers), figsize=(4.2 * len(layers), 3.2), squeeze=False)
    for li, (ax, m) in enumerate(zip(axes[0], layers)):
        d = m.delay.detach().clamp(0, m.max_delay).cpu().numpy().ravel()
        edges = (np.arange(m.max_delay + 2) - 0.5) * scale
        ax.hist(d * scale, bins=edges, color="C0" if not m.rounded else "C2")
        state = "rounded" if m.rounded else f"sigma {m.sigma:.2g} steps"
        ax.set_title(f"layer {li}: {m.in_features}->{m.out_features} ({state})", fontsize=9)
        ax.set_xlabel(f"delay ({unit})")
        ax.set_ylabel("synapses" if li == 0 else "")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return out

"""Plots of benchmark results (matplotlib, Agg backend, PNG written atomically next to the tables)."""
from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path
from typing import Sequence

from . import common

# One colour per library, the same in every plot.
COLORS = {"neurodyn": "tab:red", "neurodyn event core": "darkred", "neurodyn event lists": "tab:pink",
          "spikingjelly": "tab:blue",
          "snntorch": "tab:green", "norse": "tab:purple", "torch": "tab:gray", "ncps": "tab:orange"}
TASK_STYLE = {"fwd+bwd": "-", "fwd": "--", "fwd (event core)": ":", "fwd+bwd (event lists in)": "-.",
              "fwd (event core, event lists in)": ":"}


def _save(fig, name: str) -> Path:
    import matplotlib.pyplot as plt
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    path = common.RESULTS / f"{name}.png"
    common._atomic_write(path, buf.getvalue())
    return path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_sweep(rows: Sequence[dict], name: str, title: str, axes: Sequence[tuple[str, str, bool]]) -> Path:
    """Time vs problem size, one panel per swept parameter.

    rows: long-format rows with 'sweep', 'library', 'task', 'ms' and the swept parameter's column;
    axes: (sweep name, column, log-x) per panel.  Solid lines: fwd+bwd, dashed: fwd,
    dotted: event-driven inference, dash-dotted: training fed event lists."""
    plt = _pyplot()
    from matplotlib.ticker import NullFormatter
    fig, axs = plt.subplots(1, len(axes), figsize=(4.2 * len(axes), 3.6), squeeze=False)
    fig.subplots_adjust(wspace=0.35)
    for ax, (sweep, col, logx) in zip(axs[0], axes):
        lines: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
        for r in rows:
            if sweep in str(r["sweep"]).split("+") and r["ms"] == r["ms"]:
                lines[(r["library"], r["task"])].append((float(r[col]), float(r["ms"])))
        for (lib, task), pts in sorted(lines.items()):
            pts.sort()
            key = ("neurodyn event lists" if "event lists" in task else
                   "neurodyn event core" if "event core" in task else lib)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], TASK_STYLE.get(task, "-"), marker="o", ms=3,
                    color=COLORS.get(key), label=f"{lib} {task}")
        ax.set_yscale("log")
        if logx:
            ax.set_xscale("log")
        xs = sorted({p[0] for pts in lines.values() for p in pts})
        if xs:  # label the swept values only (log axes otherwise print crowded minor labels)
            ax.set_xticks(xs, [f"{v:g}" for v in xs], fontsize=7)
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(col)
        ax.set_ylabel("time per call (ms)")
        ax.grid(alpha=0.3, which="both")
    handles, labels = axs[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(5, max(1, len(labels))), fontsize=7,
               bbox_to_anchor=(0.5, -0.12 - 0.04 * (len(labels) // 5)))
    fig.suptitle(title, fontsize=10)
    return _save(fig, name)


def plot_bars(groups: dict[str, dict[str, float]], name: str, title: str, ylabel: str, logy: bool = True) -> Path:
    """Grouped bars: groups {group label: {series label: value}} (NaN values are skipped)."""
    plt = _pyplot()
    series = []
    for g in groups.values():
        series += [s for s in g if s not in series]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(groups) * max(1, len(series)) / 3), 3.8))
    width = 0.8 / max(1, len(series))
    for i, s in enumerate(series):
        xs = [k + i * width for k, g in enumerate(groups.values()) if g.get(s, float("nan")) == g.get(s, float("nan"))]
        ys = [g[s] for g in groups.values() if g.get(s, float("nan")) == g.get(s, float("nan"))]
        ax.bar(xs, ys, width, label=s, color=COLORS.get(s.split(" ")[0].lower()))
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(groups))], list(groups), fontsize=8)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, axis="y", which="both")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    return _save(fig, name)


def plot_lines(series: dict[str, list[tuple[float, float]]], name: str, title: str, xlabel: str, ylabel: str,
               logx: bool = True, logy: bool = True) -> Path:
    """Simple line plot: {label: [(x, y), ...]}."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, pts in series.items():
        pts = sorted(p for p in pts if p[1] == p[1])
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=label,
                    color=COLORS.get(label.split(" ")[0].lower()))
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    ax.set_title(title, fontsize=10)
    return _save(fig, name)

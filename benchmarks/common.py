"""Shared helpers for benchmarks: fair timing, thread control, result tables written atomically."""
from __future__ import annotations

import csv
import io
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

RESULTS = Path(__file__).resolve().parent / "results"


def set_threads(n: int) -> None:
    """Same thread count for torch and Numba (peers side by side on equal terms)."""
    import numba
    import torch
    torch.set_num_threads(n)
    numba.set_num_threads(n)


def timeit(fn: Callable[[], object], repeats: int = 7, warmup: int = 2) -> float:
    """Median wall time of fn() in seconds after warm-up calls (compilation, caches)."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine(), "cpu": platform.processor() or "?"}
    for mod in ("torch", "numba", "spikingjelly", "snntorch", "norse", "ncps"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", "?")
        except Exception:  # a missing peer is reported, not fatal
            out[mod] = "not installed"
    return out


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def write_table(name: str, rows: list[dict], header: str) -> str:
    """Write rows as benchmarks/results/<name>.md and .csv; returns the markdown."""
    cols = list(rows[0].keys())
    md = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        md.append("| " + " | ".join(_fmt(r[c]) for c in cols) + " |")
    vs = versions()
    md += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in vs.items())]
    text = "\n".join(md) + "\n"
    _atomic_write(RESULTS / f"{name}.md", text)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
    _atomic_write(RESULTS / f"{name}.csv", buf.getvalue())
    return text


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)

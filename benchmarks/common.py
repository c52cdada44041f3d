"""Shared helpers for benchmarks: fair timing, thread control, peak memory, machine description,
and result tables written atomically (markdown + CSV) into ``RESULTS``.

Environment:
    NEURODYN_BENCH_RESULTS  write tables and plots here instead of benchmarks/results/ (tests use it)
    NEURODYN_BENCH_TINY     "1": benchmarks shrink to toy sizes (only for the end-to-end test)
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import ctypes
import io
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

RESULTS = Path(os.environ.get("NEURODYN_BENCH_RESULTS") or Path(__file__).resolve().parent / "results")

# Peers and optional parts whose versions every table records ("not installed" when absent).
VERSIONED = ("torch", "numba", "numpy", "spikingjelly", "snntorch", "norse", "ncps", "torchdiffeq", "torchode",
             "nir", "cupy")


# The sample data sets in datasets/ and the training config each one runs with.
ROOT = Path(__file__).resolve().parents[1]
SAMPLES = {"SHD": ROOT / "datasets" / "shd_sample", "N-MNIST": ROOT / "datasets" / "nmnist_sample"}
# Synthetic spoken digits (espeak-ng voices through the SHD cochlea model), test voices unseen in train.
SPEECH = ROOT / "datasets" / "shd_speech"
CONFIGS = {"SHD": ROOT / "configs" / "shd_mlp.toml", "N-MNIST": ROOT / "configs" / "nmnist_mlp.toml"}


def data_kind(path: Path) -> str:
    """'SHD' (HDF5 files) or 'N-MNIST' (Train/ and Test/ folders); ConfigError otherwise."""
    from neurodyn.errors import ConfigError
    if path.is_file() and path.suffix in (".h5", ".hdf5"):
        return "SHD"
    if path.is_dir():
        if any(path.glob("*.h5")) or any(path.glob("*.hdf5")):
            return "SHD"
        if (path / "Train").is_dir() and (path / "Test").is_dir():
            return "N-MNIST"
    raise ConfigError(f"{path}: not an SHD folder (*.h5) or an N-MNIST root (Train/, Test/)")


def add_data_arguments(ap: argparse.ArgumentParser, quick_help: str, epochs_help: str) -> None:
    """The options every training benchmark takes: --quick, --data (repeatable), --epochs, --threads."""
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--data", action="append", help="data set folder (repeatable; default: the samples)")
    ap.add_argument("--epochs", type=int, help=epochs_help)
    ap.add_argument("--threads", type=int, default=1)


def data_paths(a: argparse.Namespace, who: str) -> list[Path]:
    """The --data folders, or the sample folders that exist; sets the thread count from --threads."""
    set_threads(a.threads)
    paths = [Path(p).resolve() for p in a.data] if a.data else [p for p in SAMPLES.values() if p.is_dir()]
    if not paths:
        raise SystemExit(f"{who}: no data (the sample folders are missing; pass --data PATH)")
    return paths


def tiny() -> bool:
    """True when the end-to-end test asks for toy sizes (NEURODYN_BENCH_TINY=1)."""
    return os.environ.get("NEURODYN_BENCH_TINY", "") not in ("", "0")


def set_threads(n: int) -> None:
    """Same thread count for torch and Numba (peers side by side on equal terms); also keeps
    freed heap memory in the process (``keep_heap``), for every library alike."""
    import numba
    import torch
    torch.set_num_threads(n)
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    keep_heap()


_HEAP_KEPT: bool | None = None


def keep_heap() -> bool:
    """Ask glibc malloc to keep freed memory instead of returning it to the OS after every
    large free (M_TRIM_THRESHOLD) and to serve large blocks from the heap (M_MMAP_THRESHOLD),
    as a long training loop would want.  Otherwise each step's [T, B, N] buffers page-fault
    afresh, a cost that swamps the kernels and varies with what ran before (measured: the
    neurodyn training step 44 -> 32 ms, SpikingJelly's alike).  Process-wide, so it applies to
    all libraries in one run.  Returns whether it took effect (False off glibc)."""
    global _HEAP_KEPT
    if _HEAP_KEPT is None:
        import ctypes
        import ctypes.util
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
            _HEAP_KEPT = bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 25))
        except (OSError, AttributeError):
            _HEAP_KEPT = False
    return _HEAP_KEPT


def thread_counts() -> str:
    """The thread counts in effect now, e.g. 'torch 1, numba 1'."""
    out = []
    try:
        import torch
        out.append(f"torch {torch.get_num_threads()}")
    except ImportError:
        pass
    try:
        import numba
        out.append(f"numba {numba.get_num_threads()}")
    except ImportError:
        pass
    return ", ".join(out) or "?"


def _sync(device: str | None) -> None:
    if device is not None and str(device).startswith("cuda"):
        import torch
        torch.cuda.synchronize()


def timeit(fn: Callable[[], object], repeats: int = 7, warmup: int = 2, device: str | None = None,
           budget_s: float | None = None) -> float:
    """Median wall time of fn() in seconds after warm-up calls (compilation, caches).

    device 'cuda...': synchronize before reading the clock.  budget_s: stop repeating once
    this much time was spent in timed calls (at least 3 repeats, or ``repeats`` if fewer)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    ts: list[float] = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
        if budget_s is not None and len(ts) >= 3 and sum(ts) > budget_s:
            break
    return statistics.median(ts)


def timeit_interleaved(fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2,
                       device: str | None = None, budget_s: float | None = None) -> dict[str, float]:
    """Median wall time (s) of each fn, timed round-robin: repeat i of every fn runs before
    repeat i + 1 of any, so a burst of load from other jobs hits all of them alike and the
    ratios between them stay meaningful on a noisy machine.  Each timed call follows an
    untimed call of the same fn, so it finds its caches warm as in a loop of its own.
    budget_s: stop after the round in which the timed calls (all fns) passed this many
    seconds (at least 3 rounds, or ``repeats`` if fewer)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    ts: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            fn()
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            ts[k].append(time.perf_counter() - t0)
        rounds = len(next(iter(ts.values()), []))
        if budget_s is not None and rounds >= 3 and sum(map(sum, ts.values())) > budget_s:
            break
    return {k: statistics.median(v) for k, v in ts.items()}


# ----------------------------------------------------------------------------- memory

def _status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            m = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M)
    except OSError:
        return None
    return int(m.group(1)) if m else None


def _reset_peak_rss() -> bool:
    """Linux >= 4.0: writing 5 to /proc/self/clear_refs resets VmHWM (peak RSS) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _trim_heap() -> None:
    """Give freed heap memory back to the OS (glibc malloc_trim), so that a call's allocations
    show up as new resident pages instead of reusing pages kept from earlier calls."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def peak_memory_mb(fn: Callable[[], object], device: str | None = None) -> float:
    """Peak memory that one call of fn() adds, in MiB (NaN if it cannot be measured here).

    CPU: the peak resident set size during the call minus the resident size just before it.
    The kernel keeps the peak (VmHWM); it is reset right before the call (/proc/self/clear_refs)
    after freed heap memory is returned to the OS (malloc_trim), so memory that torch, NumPy or
    Numba allocate during the call counts even when an earlier call had used the same pages.
    Memory that a library keeps cached across calls (allocated before, still held) is not
    counted: it is part of the baseline.  CUDA: torch.cuda.max_memory_allocated during the
    call minus memory_allocated before it (tensors allocated through torch only)."""
    if device is not None and str(device).startswith("cuda"):
        import torch
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - base) / 2 ** 20
    import gc
    gc.collect()
    _trim_heap()
    base = _status_kb("VmRSS")
    if base is None or not _reset_peak_rss():
        return float("nan")
    fn()
    peak = _status_kb("VmHWM")
    return float("nan") if peak is None else max(peak - base, 0) / 1024


# ----------------------------------------------------------------------------- machine

def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (platform.processor() is often empty on Linux) and core count."""
    name = None
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
            name = m.group(1).strip() if m else None
    return f"{name or platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)"


def gpu_name() -> str | None:
    """Name of CUDA device 0, or None when torch sees no GPU."""
    try:
        import torch
        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # a broken CUDA install means no GPU for the benchmarks
        return None
    return None


def cuda_skip_reason() -> str | None:
    """None if the GPU part of the benchmarks can run here, else why not (no CUDA GPU visible to
    torch, or no CuPy for neurodyn's GPU kernels)."""
    if gpu_name() is None:
        return "torch sees no CUDA GPU on this machine"
    from neurodyn.kernels.dispatch import cupy_status
    why = cupy_status()
    return None if why is None else f"neurodyn's GPU kernels cannot run: {why}"


def devices_to_run(choice: str, who: str) -> list[str]:
    """'cpu' / 'cuda' / 'all' -> the devices to measure on; prints why CUDA is skipped."""
    devs = ["cpu"] if choice in ("cpu", "all") else []
    if choice in ("cuda", "all"):
        why = cuda_skip_reason()
        if why is None:
            devs.append("cuda")
        else:
            print(f"{who}: CUDA part skipped: {why}")
    return devs


def describe_device(device: str = "cpu") -> str:
    """What ran the measurements: the CPU model, plus the GPU name when device is CUDA."""
    cpu = cpu_model()
    if str(device).startswith("cuda"):
        return f"GPU {gpu_name() or '?'}; host CPU {cpu}"
    return f"CPU {cpu}"


def versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "machine": platform.machine()}
    from importlib import metadata
    for mod in VERSIONED:
        try:
            out[mod] = metadata.version(mod if mod != "cupy" else _cupy_dist())
        except metadata.PackageNotFoundError:  # a missing peer is reported, not fatal
            out[mod] = "not installed"
    return out


def _cupy_dist() -> str:
    from importlib import metadata
    for d in ("cupy", "cupy-cuda12x", "cupy-cuda11x"):
        try:
            metadata.version(d)
            return d
        except metadata.PackageNotFoundError:
            continue
    return "cupy"


# ----------------------------------------------------------------------------- tables

def record_written(path: Path) -> None:
    """Note a result file in $NEURODYN_BENCH_MANIFEST (set by the runner), so that the summary
    names what each benchmark wrote even when other processes write to the same folder."""
    manifest = os.environ.get("NEURODYN_BENCH_MANIFEST")
    if manifest:
        with open(manifest, "a") as f:
            f.write(path.name + "\n")


def _atomic_write(path: Path, text: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are ordinary readable files
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        os.replace(tmp, path)
        record_written(path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_table(name: str, rows: list[dict], header: str, *, device: str | None = None,
                notes: Sequence[str] = (), measured: bool = True) -> str:
    """Write rows as RESULTS/<name>.md and .csv; returns the markdown.

    Both files record the library versions, the device (``describe_device(device)``, CPU by
    default) and the torch/Numba thread counts in effect: the markdown in a footer, the CSV as
    the extra columns ``device``, ``threads`` and ``versions``.  ``notes``: lines printed under
    the table (caveats a reader needs).  ``measured=False``: figures copied from elsewhere
    (published results); the footer says so instead of describing this machine."""
    if not rows:
        raise ValueError(f"write_table('{name}'): no rows")
    cols: list[str] = []
    for r in rows:  # union of keys in first-seen order: rows may differ (missing -> empty)
        cols += [k for k in r if k not in cols]
    if measured:
        dev, thr, vs = describe_device(device or "cpu"), thread_counts(), versions()
    else:
        dev, thr, vs = "not measured here (published figures, see the source)", "n/a", {}
    md = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        md.append("| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |")
    md.append("")
    md += [f"Note: {n}" for n in notes]
    heap = "; glibc heap kept between calls (benchmarks.common.keep_heap), for every library" if (measured and _HEAP_KEPT) else ""
    md.append(f"Device: {dev}; threads: {thr}{heap}")
    if vs:
        md.append("Versions: " + ", ".join(f"{k} {v}" for k, v in vs.items()))
    text = "\n".join(md) + "\n"
    _atomic_write(RESULTS / f"{name}.md", text)
    buf = io.StringIO()
    meta = {"device": dev, "threads": thr, "versions": "; ".join(f"{k} {v}" for k, v in vs.items())}
    w = csv.DictWriter(buf, fieldnames=cols + list(meta))
    w.writeheader()
    for r in rows:
        w.writerow({**{c: r.get(c, "") for c in cols}, **meta})
    _atomic_write(RESULTS / f"{name}.csv", buf.getvalue())
    return text


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)

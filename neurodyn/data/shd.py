"""Reader and writer for the Spiking Heidelberg Datasets (SHD, SSC) HDF5 files.

Published layout (Cramer et al. 2020, https://zenkelab.org/datasets/; dtypes as in the
released files and in tonic's test fixtures)::

    spikes/times          [N] vlen float16   spike times of sample i, SECONDS
    spikes/units          [N] vlen uint16    channel (unit) id of each spike, 0..699
    labels                [N] uint16         class index (SHD 20 classes, SSC 35)
    extra/speaker         [N] uint16         speaker index
    extra/keys            [C] bytes          class names, keys[label]
    extra/meta_info/gender       [S] bytes   per speaker
    extra/meta_info/age          [S] int     per speaker
    extra/meta_info/body_height  [S] float   per speaker

Only ``spikes/times``, ``spikes/units`` and ``labels`` are required to read; ``extra`` is
optional (SSC files carry less of it). Samples come back as ``TXP_DTYPE`` event arrays
with times in integer microseconds (see ``events.py``).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ..errors import ConfigError, DataFormatError, ShapeError
from .events import TXP_DTYPE, PathLike, atomic_write, check_events

SHD_CHANNELS = 700
SHD_CLASSES = 20
SSC_CLASSES = 35

# Class names of our synthetic sample files follow SHD's digit set: English 0-9 then German 0-9.
SHD_KEYS = tuple(
    [f"english {w}" for w in "zero one two three four five six seven eight nine".split()]
    + [f"german {w}" for w in "null eins zwei drei vier fuenf sechs sieben acht neun".split()]
)

_REQUIRED = ("spikes/times", "spikes/units", "labels")
# Far beyond any recording, and small enough that microseconds fit int64.
_MAX_TIME_S = 1e9


def _bad(path: PathLike, problem: str) -> DataFormatError:
    return DataFormatError(f"{os.fspath(path)}: {problem}")


def _open_h5(path: Path) -> h5py.File:
    if not path.exists():
        raise _bad(path, "no such file")
    if not path.is_file():
        raise _bad(path, "not a file (an SHD/SSC .h5 file was expected)")
    try:
        is_h5 = h5py.is_hdf5(path)
    except OSError as exc:
        raise _bad(path, f"cannot read file ({exc})") from None
    if not is_h5:
        raise _bad(path, "not an HDF5 file (no HDF5 signature)")
    try:
        return h5py.File(path, "r")
    except OSError as exc:  # truncated or corrupt despite the signature
        raise _bad(path, f"corrupt HDF5 file ({exc})") from None


def _decode(values: np.ndarray) -> list[str]:
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values]


class SHDFile:
    """One SHD/SSC HDF5 file; ``ds[i] -> (events TXP_DTYPE [n_spikes], label int)``.

    Structure, dtypes and labels are checked when opening; each sample's spikes are
    checked when read (length match, finite non-negative times, unit id < n_channels).
    Any violation raises one ``DataFormatError`` naming the file and the problem.
    The file handle is opened lazily per process, so instances work in DataLoader workers.
    """

    def __init__(self, path: PathLike, n_channels: int = SHD_CHANNELS) -> None:
        self.path = Path(path)
        self.n_channels = int(n_channels)
        if self.n_channels <= 0:
            raise ConfigError(f"n_channels must be positive, got {n_channels}")
        self._h5: h5py.File | None = None
        self._pid: int | None = None
        with _open_h5(self.path) as f:
            self._check_layout(f)
            self.labels: np.ndarray = f["labels"][()].astype(np.int64)
            self.keys: list[str] | None = _decode(f["extra/keys"][()]) if "extra/keys" in f else None
            self.speakers: np.ndarray | None = (
                f["extra/speaker"][()].astype(np.int64) if "extra/speaker" in f else None
            )
            self.meta_info: dict[str, np.ndarray] = {}
            if "extra/meta_info" in f and isinstance(f["extra/meta_info"], h5py.Group):
                for name, ds in f["extra/meta_info"].items():
                    if isinstance(ds, h5py.Dataset):
                        val = ds[()]
                        self.meta_info[name] = (
                            np.array(_decode(val)) if val.dtype.kind in "SOU" else val
                        )
        if self.labels.size and self.labels.min() < 0:
            raise _bad(self.path, f"negative label {self.labels.min()} in 'labels'")
        if self.keys is not None and self.labels.size and self.labels.max() >= len(self.keys):
            raise _bad(
                self.path,
                f"label {self.labels.max()} >= number of classes {len(self.keys)} in 'extra/keys'",
            )
        if self.speakers is not None and self.speakers.shape != self.labels.shape:
            raise _bad(
                self.path,
                f"'extra/speaker' has {self.speakers.shape[0]} entries, 'labels' {self.labels.shape[0]}",
            )

    def _check_layout(self, f: h5py.File) -> None:
        for key in _REQUIRED:
            if key not in f:
                raise _bad(
                    self.path,
                    f"HDF5 file lacks '{key}' (SHD/SSC files have {', '.join(_REQUIRED)})",
                )
            if not isinstance(f[key], h5py.Dataset):
                raise _bad(self.path, f"'{key}' is a group, expected a dataset")
        times, units, labels = (f[k] for k in _REQUIRED)
        for key, ds, kind in (("spikes/times", times, "f"), ("spikes/units", units, "ui")):
            base = h5py.check_vlen_dtype(ds.dtype)
            if base is None or ds.ndim != 1:
                raise _bad(
                    self.path,
                    f"'{key}' must be a 1-D variable-length array, got dtype {ds.dtype} shape {ds.shape}",
                )
            if base.kind not in kind:
                want = "float (seconds)" if kind == "f" else "integer (unit ids)"
                raise _bad(self.path, f"'{key}' has element dtype {base}, expected {want}")
        if labels.ndim != 1 or labels.dtype.kind not in "ui":
            raise _bad(
                self.path, f"'labels' must be a 1-D integer array, got dtype {labels.dtype} shape {labels.shape}"
            )
        if not (times.shape[0] == units.shape[0] == labels.shape[0]):
            raise _bad(
                self.path,
                f"sample counts differ: spikes/times {times.shape[0]}, "
                f"spikes/units {units.shape[0]}, labels {labels.shape[0]}",
            )

    @property
    def num_classes(self) -> int:
        """Number of classes: len(extra/keys) if present, else max(label) + 1."""
        if self.keys is not None:
            return len(self.keys)
        return int(self.labels.max()) + 1 if self.labels.size else 0

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _file(self) -> h5py.File:
        # h5py handles must not cross a fork, so each process opens its own.
        if self._h5 is None or self._pid != os.getpid():
            self._h5 = _open_h5(self.path)
            self._pid = os.getpid()
        return self._h5

    def read_spikes(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Raw spikes of sample ``index``: (times float64 [n] seconds, units int64 [n])."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"sample {index} out of range for {n} samples in {self.path}")
        index = index % n
        f = self._file()
        try:
            times = np.asarray(f["spikes/times"][index])
            units = np.asarray(f["spikes/units"][index])
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise _bad(self.path, f"cannot read sample {index} ({exc})") from None
        if times.shape != units.shape or times.ndim != 1:
            raise _bad(
                self.path,
                f"sample {index}: spikes/times has {times.size} entries but spikes/units {units.size}",
            )
        times = times.astype(np.float64)
        if times.size:
            if not np.isfinite(times).all():
                raise _bad(self.path, f"sample {index}: non-finite spike time")
            if times.min() < 0:
                raise _bad(self.path, f"sample {index}: negative spike time {times.min()} s")
            if times.max() > _MAX_TIME_S:
                raise _bad(self.path, f"sample {index}: spike time {times.max()} s is implausibly large")
            if units.max() >= self.n_channels:
                raise _bad(
                    self.path,
                    f"sample {index}: unit id {units.max()} >= {self.n_channels} channels",
                )
        return times, units.astype(np.int64)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        times, units = self.read_spikes(index)
        ev = np.empty(times.shape[0], dtype=TXP_DTYPE)
        ev["t"] = np.rint(times * 1e6)
        ev["x"] = units
        ev["p"] = 1
        return ev, int(self.labels[index])

    def close(self) -> None:
        """Close this process's file handle (it reopens on the next read)."""
        if self._h5 is not None and self._pid == os.getpid():
            self._h5.close()
        self._h5 = None

    def __enter__(self) -> SHDFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_h5"] = None
        state["_pid"] = None
        return state

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"SHDFile('{self.path}', samples={len(self)}, classes={self.num_classes})"


def write_shd(
    path: PathLike,
    samples: Sequence[np.ndarray],
    labels: Sequence[int] | np.ndarray,
    *,
    keys: Sequence[str] | None = None,
    speakers: Sequence[int] | np.ndarray | None = None,
    meta_info: Mapping[str, Sequence[Any] | np.ndarray] | None = None,
    n_channels: int = SHD_CHANNELS,
    times_dtype: str | np.dtype = "float16",
) -> None:
    """Write samples to ``path`` in the SHD/SSC HDF5 layout, atomically.

    ``samples[i]`` is an event array with fields t (microseconds) and x (unit id < n_channels);
    times are stored in seconds as ``times_dtype`` (float16 as in the published files, which
    rounds to ~0.5 ms near 1 s; pass "float32" to keep microseconds). ``keys`` are class names,
    ``speakers`` one index per sample, ``meta_info`` per-speaker arrays (gender, age, ...).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.shape[0] != len(samples):
        raise ShapeError(f"need one label per sample: {len(samples)} samples, labels shape {labels.shape}")
    if labels.size and (labels.dtype.kind not in "ui" or labels.min() < 0 or labels.max() > 0xFFFF):
        raise ConfigError("labels must be integers in [0, 65535]")
    if keys is not None and labels.size and labels.max() >= len(keys):
        raise ConfigError(f"label {labels.max()} has no entry in keys ({len(keys)} names)")
    times_dtype = np.dtype(times_dtype)
    if times_dtype.kind != "f":
        raise ConfigError(f"times_dtype must be a float dtype, got {times_dtype}")
    if not 0 < n_channels <= 0xFFFF + 1:
        raise ConfigError(f"n_channels must be in [1, 65536], got {n_channels}")
    times_list, units_list = [], []
    for i, ev in enumerate(samples):
        check_events(ev)
        if ev.size and (ev["t"].min() < 0 or ev["x"].min() < 0 or ev["x"].max() >= n_channels):
            raise ConfigError(
                f"sample {i}: times must be >= 0 and unit ids in [0, {n_channels}), "
                f"got t min {ev['t'].min()}, x range [{ev['x'].min()}, {ev['x'].max()}]"
            )
        times_list.append((ev["t"].astype(np.float64) * 1e-6).astype(times_dtype))
        units_list.append(ev["x"].astype(np.uint16))
    if speakers is not None:
        speakers = np.asarray(speakers)
        if speakers.shape != labels.shape:
            raise ShapeError(f"need one speaker per sample, got shape {speakers.shape}")

    def write(tmp: Any) -> None:
        with h5py.File(tmp, "w") as f:
            n = len(samples)
            t_ds = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(times_dtype))
            u_ds = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.dtype("uint16")))
            for i in range(n):
                t_ds[i] = times_list[i]
                u_ds[i] = units_list[i]
            f.create_dataset("labels", data=labels.astype(np.uint16))
            if speakers is not None:
                f.create_dataset("extra/speaker", data=speakers.astype(np.uint16))
            if keys is not None:
                f.create_dataset("extra/keys", data=np.array([k.encode("utf-8") for k in keys]))
            for name, values in (meta_info or {}).items():
                arr = np.asarray(values)
                if arr.dtype.kind == "U":
                    arr = np.array([s.encode("utf-8") for s in arr])
                f.create_dataset(f"extra/meta_info/{name}", data=arr)

    atomic_write(path, write, binary_handle=False)


__all__ = ["SHDFile", "write_shd", "SHD_CHANNELS", "SHD_CLASSES", "SSC_CLASSES", "SHD_KEYS"]

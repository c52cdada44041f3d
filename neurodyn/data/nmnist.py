"""Reader and writer for N-MNIST binary event files (Orchard et al. 2015).

Folder layout: ``<root>/Train/<digit>/<id>.bin`` and ``<root>/Test/<digit>/<id>.bin``.
Each ``.bin`` file is a flat sequence of 40-bit events, 5 bytes each::

    byte 0   x                          (pixel column, 0..33)
    byte 1   y                          (pixel row, 0..33)
    byte 2   bit 7: polarity (1 = ON), bits 6..0: timestamp bits 22..16
    byte 3   timestamp bits 15..8
    byte 4   timestamp bits 7..0        (timestamp in microseconds, 23 bits)

An event with y == 240 is a timestamp-overflow marker, not a spike; as in the reference
reader (Orchard's ``eventvision.read_dataset``, also used by tonic) each marker adds 2**13
to the timestamps of all later events. N-MNIST recordings (~300 ms) never contain one.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataFormatError, ShapeError
from .events import XYTP_DTYPE, PathLike, atomic_write, check_events

NMNIST_SENSOR = (34, 34)  # (width, height)
NMNIST_CLASSES = 10
MAX_TIMESTAMP_US = 2**23 - 1
_OVERFLOW_Y = 240
_OVERFLOW_STEP_US = 2**13


def _bad(path: PathLike, problem: str) -> DataFormatError:
    return DataFormatError(f"{os.fspath(path)}: {problem}")


def decode_nmnist_bytes(raw: bytes | np.ndarray, sensor_size: tuple[int, int] = NMNIST_SENSOR,
                        source: PathLike = "<bytes>") -> np.ndarray:
    """Decode N-MNIST event bytes into an ``XYTP_DTYPE`` array (t in microseconds).

    ``source`` only names the data in error messages.
    """
    data = np.frombuffer(raw, dtype=np.uint8) if isinstance(raw, (bytes, bytearray)) else np.asarray(raw, np.uint8)
    if data.size % 5:
        raise _bad(
            source,
            f"truncated: {data.size} bytes is not a multiple of 5 (5 bytes per event; "
            f"{data.size % 5} trailing bytes)",
        )
    rec = data.reshape(-1, 5).astype(np.int64)
    x, y = rec[:, 0], rec[:, 1]
    p = rec[:, 2] >> 7
    t = ((rec[:, 2] & 0x7F) << 16) | (rec[:, 3] << 8) | rec[:, 4]
    overflow = y == _OVERFLOW_Y
    if overflow.any():
        t = t + _OVERFLOW_STEP_US * np.cumsum(overflow)
        keep = ~overflow
        x, y, t, p = x[keep], y[keep], t[keep], p[keep]
    width, height = sensor_size
    outside = (x >= width) | (y >= height)
    if outside.any():
        k = int(np.argmax(outside))
        raise _bad(
            source,
            f"event {k} at (x={x[k]}, y={y[k]}) lies outside the {width}x{height} sensor "
            f"({int(outside.sum())} such events)",
        )
    ev = np.empty(t.shape[0], dtype=XYTP_DTYPE)
    ev["x"], ev["y"], ev["t"], ev["p"] = x, y, t, p
    return ev


def read_nmnist_bin(path: PathLike, sensor_size: tuple[int, int] = NMNIST_SENSOR) -> np.ndarray:
    """Read one N-MNIST ``.bin`` file -> ``XYTP_DTYPE`` events [n], t in microseconds.

    ``sensor_size`` is (width, height); events outside it are a format error.
    """
    path = Path(path)
    if not path.exists():
        raise _bad(path, "no such file")
    if not path.is_file():
        raise _bad(path, "not a file (an N-MNIST .bin file was expected)")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise _bad(path, f"cannot read file ({exc.strerror or exc})") from None
    return decode_nmnist_bytes(raw, sensor_size, source=path)


def encode_nmnist_bytes(events: np.ndarray, sensor_size: tuple[int, int] = NMNIST_SENSOR) -> bytes:
    """Encode ``XYTP`` events (t in microseconds, 0 <= t < 2**23) into N-MNIST bytes."""
    if not check_events(events) or "p" not in events.dtype.names:
        raise ShapeError(f"N-MNIST events need fields x, y, t, p; got {events.dtype.names}")
    width, height = sensor_size
    x, y, t, p = (events[f].astype(np.int64) for f in ("x", "y", "t", "p"))
    if events.size:
        if x.min() < 0 or x.max() >= min(width, 256) or y.min() < 0 or y.max() >= min(height, 240):
            raise ConfigError(
                f"coordinates outside the {width}x{height} sensor: x in [{x.min()}, {x.max()}], "
                f"y in [{y.min()}, {y.max()}]"
            )
        if t.min() < 0 or t.max() > MAX_TIMESTAMP_US:
            raise ConfigError(
                f"timestamps must lie in [0, {MAX_TIMESTAMP_US}] us (23 bits), "
                f"got [{t.min()}, {t.max()}]"
            )
        if not np.isin(p, (0, 1)).all():
            raise ConfigError("polarity p must be 0 (OFF) or 1 (ON)")
    out = np.empty((events.size, 5), dtype=np.uint8)
    out[:, 0] = x
    out[:, 1] = y
    out[:, 2] = (p << 7) | (t >> 16)
    out[:, 3] = (t >> 8) & 0xFF
    out[:, 4] = t & 0xFF
    return out.tobytes()


def write_nmnist_bin(path: PathLike, events: np.ndarray, sensor_size: tuple[int, int] = NMNIST_SENSOR) -> None:
    """Write ``XYTP`` events to an N-MNIST ``.bin`` file atomically (temp file + rename)."""
    payload = encode_nmnist_bytes(events, sensor_size)
    atomic_write(path, lambda fh: fh.write(payload), binary_handle=True)


class NMNISTFolder:
    """N-MNIST split folder ``<root>/<split>/<digit>/*.bin``; ``ds[i] -> (events XYTP, label)``.

    Files are listed (sorted by digit, then name) when constructed and parsed on access.
    """

    def __init__(self, root: PathLike, split: str = "Train", sensor_size: tuple[int, int] = NMNIST_SENSOR) -> None:
        if split not in ("Train", "Test"):
            raise ConfigError(f"split must be 'Train' or 'Test', got {split!r}")
        self.root = Path(root)
        self.split = split
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        folder = self.root / split
        if not folder.is_dir():
            raise _bad(folder, "no such folder (an N-MNIST root holds Train/ and Test/ folders)")
        files: list[Path] = []
        labels: list[int] = []
        for sub in sorted(folder.iterdir(), key=lambda q: q.name):
            if sub.name.startswith(".") or not sub.is_dir():
                continue
            if not sub.name.isdigit():
                raise _bad(sub, "class folder name is not a digit label")
            found = sorted(q for q in sub.iterdir() if q.suffix == ".bin")
            files += found
            labels += [int(sub.name)] * len(found)
        if not files:
            raise _bad(folder, "contains no <digit>/*.bin files")
        self.files = files
        self.labels = np.asarray(labels, dtype=np.int64)

    @property
    def num_classes(self) -> int:
        """10 for N-MNIST (or max label + 1 for a folder with more classes)."""
        return max(NMNIST_CLASSES, int(self.labels.max()) + 1)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return read_nmnist_bin(self.files[index], self.sensor_size), int(self.labels[index])

    def __repr__(self) -> str:
        return f"NMNISTFolder('{self.root}', split='{self.split}', samples={len(self)})"


__all__ = [
    "read_nmnist_bin",
    "write_nmnist_bin",
    "decode_nmnist_bytes",
    "encode_nmnist_bytes",
    "NMNISTFolder",
    "NMNIST_SENSOR",
    "NMNIST_CLASSES",
    "MAX_TIMESTAMP_US",
]

"""In-memory event representation shared by all readers and transforms (tonic-style).

An event stream is a 1-D numpy *structured* array, one record per event, sorted by time
as recorded. Two layouts are used:

``XYTP_DTYPE`` (cameras, e.g. N-MNIST)::

    x  int16   pixel column, 0 <= x < width
    y  int16   pixel row,    0 <= y < height
    t  int64   time in MICROSECONDS from the start of the recording
    p  int8    polarity: 1 = ON (brightness up), 0 = OFF (brightness down)

``TXP_DTYPE`` (audio / channel data, e.g. SHD and SSC; field set as in tonic's HSD)::

    t  int64   time in MICROSECONDS from the start of the recording
    x  int16   channel (unit) id, 0 <= x < n_channels
    p  int8    always 1 (spikes carry no polarity)

Times are integers in microseconds everywhere in neurodyn.data: SHD stores seconds as
floats and N-MNIST stores integer microseconds, so one integer unit keeps both exact
enough and makes binning pure integer arithmetic.
"""
from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

import numpy as np

from ..errors import ConfigError, ShapeError

XYTP_DTYPE = np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "i1")])
TXP_DTYPE = np.dtype([("t", "<i8"), ("x", "<i2"), ("p", "i1")])

PathLike = str | os.PathLike


def make_events(
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray | None = None,
    p: np.ndarray | int | None = None,
) -> np.ndarray:
    """Build an event array from columns: ``[N]`` each, t in microseconds.

    With ``y`` the result has ``XYTP_DTYPE`` (p defaults to 1), without it ``TXP_DTYPE``.
    Values are checked to fit the field types (no silent wrap-around).
    """
    t = np.asarray(t)
    x = np.asarray(x)
    if t.ndim != 1 or x.shape != t.shape:
        raise ShapeError(f"t and x must be 1-D of equal length, got {t.shape} and {x.shape}")
    dtype = TXP_DTYPE if y is None else XYTP_DTYPE
    out = np.empty(t.shape[0], dtype=dtype)
    _put(out, "t", t)
    _put(out, "x", x)
    if y is not None:
        y = np.asarray(y)
        if y.shape != t.shape:
            raise ShapeError(f"y must have the shape of t {t.shape}, got {y.shape}")
        _put(out, "y", y)
    if p is None:
        out["p"] = 1
    else:
        p = np.broadcast_to(np.asarray(p), t.shape)
        if p.size and not np.isin(p, (0, 1)).all():
            raise ConfigError("polarity p must be 0 (OFF) or 1 (ON)")
        out["p"] = p
    return out


def _put(out: np.ndarray, name: str, values: np.ndarray) -> None:
    if values.size and not (np.issubdtype(values.dtype, np.integer) or values.dtype == bool):
        if not np.all(values == np.round(values)):
            raise ShapeError(f"field '{name}' must hold integers, got dtype {values.dtype}")
    info = np.iinfo(out.dtype[name])
    if values.size and (values.min() < info.min or values.max() > info.max):
        raise ConfigError(
            f"field '{name}' out of range [{info.min}, {info.max}]: "
            f"min {values.min()}, max {values.max()}"
        )
    out[name] = values


def empty_events(spatial: bool = False) -> np.ndarray:
    """An empty event array: ``XYTP_DTYPE`` if ``spatial`` else ``TXP_DTYPE``."""
    return np.empty(0, dtype=XYTP_DTYPE if spatial else TXP_DTYPE)


def check_events(events: np.ndarray) -> bool:
    """Validate an event array; return True if it has a ``y`` field (camera layout).

    Raises ShapeError unless ``events`` is 1-D structured with integer fields t, x (and p).
    """
    if not isinstance(events, np.ndarray) or events.dtype.names is None:
        raise ShapeError(
            "events must be a structured numpy array with fields t, x (, y, p); "
            f"got {type(events).__name__} {getattr(events, 'dtype', '')}"
        )
    if events.ndim != 1:
        raise ShapeError(f"events must be 1-D, got shape {events.shape}")
    names = events.dtype.names
    for f in ("t", "x"):
        if f not in names:
            raise ShapeError(f"events lack field '{f}' (fields: {names})")
    for f in names:
        if f in ("t", "x", "y", "p") and not (
            np.issubdtype(events.dtype[f], np.integer) or events.dtype[f] == bool
        ):
            raise ShapeError(f"event field '{f}' must be integer, got {events.dtype[f]}")
    return "y" in names


def sort_by_time(events: np.ndarray) -> np.ndarray:
    """Events reordered by time (stable, so simultaneous events keep their order)."""
    return events[np.argsort(events["t"], kind="stable")]


def atomic_write(path: PathLike, write: Callable[[IO[bytes] | str], None], *, binary_handle: bool) -> None:
    """Write ``path`` via a temp file in the same folder and ``os.replace``.

    ``write`` gets an open binary handle (``binary_handle=True``) or the temp file's name
    (for libraries such as h5py that open files themselves). On any error the temp file
    is removed and an existing ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if binary_handle:
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
        else:
            os.close(fd)
            write(tmp)
        # mkstemp creates 0600; published data files should be readable like any other.
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


__all__ = [
    "XYTP_DTYPE",
    "TXP_DTYPE",
    "make_events",
    "empty_events",
    "check_events",
    "sort_by_time",
    "atomic_write",
]

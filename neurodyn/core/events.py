"""Binned event input: ``Events``, a batch of event streams as sample-major CSR lists.

Row ``b * T + t`` of (ptr, idx, val) lists the inputs of sample b at step t, channels
ascending, so a sample's events are contiguous (what the event kernels walk, and what an
event file holds).  Dense frames [T, B, K] convert both ways; the nonzeros of frames are
found by the shared scan (``kernels.event_scan``), so events made from frames give the
same sums, to the bit, as the frames themselves.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import ShapeError
from ..kernels.event_scan import frames_to_csr

_FLOATS = (np.float32, np.float64)


def dense_to_events(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR events (ptr [B*T+1] int64, channel [E] int32, value [E]) of x [T, B, N] (C-contiguous)."""
    return frames_to_csr(x)


def row_pointer(rows: np.ndarray, n_rows: int) -> np.ndarray:
    """CSR pointer [n_rows + 1] int64 of events listed in row order (``rows`` [E], ascending)."""
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=ptr[1:])
    return ptr


@dataclass(frozen=True, eq=False)
class Events:
    """B event streams binned into T steps over K channels: the event-list form of frames [T, B, K].

    ptr [B*T + 1] int64: row b*T + t (sample b, step t) holds events ptr[r] <= e < ptr[r + 1];
    idx [E] int32: their channels, strictly ascending within a row (one event per channel
    and step: duplicates are summed by ``from_coo``); val [E] float32/float64: their values
    (1 for a spike; a count or weight otherwise).  ``ndn.Sequential`` trains and infers on
    it without ever building frames; ``Network.run`` takes it too.  Checked on construction.
    """

    ptr: np.ndarray
    idx: np.ndarray
    val: np.ndarray
    T: int
    B: int
    n_channels: int

    def __post_init__(self) -> None:
        T, B, K = self.T, self.B, self.n_channels
        if min(T, B, K) < 0 or (K == 0):
            raise ShapeError(f"Events needs T, B >= 0 and n_channels >= 1, got T={T}, B={B}, n_channels={K}")
        ptr, idx, val = self.ptr, self.idx, self.val
        if not all(isinstance(a, np.ndarray) and a.ndim == 1 for a in (ptr, idx, val)):
            raise ShapeError("Events ptr, idx and val must be 1-D numpy arrays")
        if ptr.dtype != np.int64 or idx.dtype != np.int32 or val.dtype not in _FLOATS:
            raise ShapeError(f"Events arrays must be ptr int64, idx int32, val float32/float64; got "
                             f"{ptr.dtype}, {idx.dtype}, {val.dtype}")
        if ptr.shape[0] != B * T + 1:
            raise ShapeError(f"Events ptr must have B*T + 1 = {B * T + 1} entries, got {ptr.shape[0]}")
        E = idx.shape[0]
        if val.shape[0] != E or ptr[0] != 0 or ptr[-1] != E or np.any(np.diff(ptr) < 0):
            raise ShapeError(f"Events ptr must rise from 0 to the {E} events (idx and val), "
                             f"got ptr[0]={ptr[0]}, ptr[-1]={ptr[-1]}, {val.shape[0]} values")
        if E and (idx.min() < 0 or idx.max() >= K):
            raise ShapeError(f"Events channels must lie in [0, {K}), got {idx.min()}..{idx.max()}")
        if E > 1:
            rising = np.diff(idx) > 0
            starts = ptr[1:-1]
            rising[starts[(starts > 0) & (starts < E)] - 1] = True  # a new row may start lower
            if not rising.all():
                raise ShapeError("Events channels must be strictly ascending within each step "
                                 "(Events.from_coo sorts them and sums duplicates)")
        if not np.isfinite(val).all():
            raise ShapeError("Events values must be finite")

    @property
    def shape(self) -> tuple[int, int, int]:
        """(T, B, n_channels): the shape of the frames these events stand for."""
        return (self.T, self.B, self.n_channels)

    @property
    def dtype(self) -> torch.dtype:
        return torch.from_numpy(self.val[:0]).dtype

    def __len__(self) -> int:
        return int(self.idx.shape[0])

    @classmethod
    def from_dense(cls, x: torch.Tensor | np.ndarray) -> "Events":
        """The nonzero entries of frames x [T, B, K] (float32/float64; -0.0 is no event)."""
        xn = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        if xn.ndim != 3 or xn.dtype not in _FLOATS:
            raise ShapeError(f"Events.from_dense needs float32/float64 frames [T, B, K], got {xn.dtype} {xn.shape}")
        ptr, idx, val = dense_to_events(np.ascontiguousarray(xn))
        return cls(ptr, idx, val, xn.shape[0], xn.shape[1], xn.shape[2])

    @classmethod
    def from_coo(cls, sample: np.ndarray, step: np.ndarray, channel: np.ndarray, value: np.ndarray | None,
                 T: int, B: int, n_channels: int, dtype=np.float32) -> "Events":
        """Events from unordered (sample, step, channel[, value]) lists [E]: sorted into rows,
        and events of one channel at one step summed into one (value default 1: spike counts)."""
        s, t, c = (np.asarray(a, dtype=np.int64).ravel() for a in (sample, step, channel))
        if not (s.shape == t.shape == c.shape):
            raise ShapeError(f"Events.from_coo: sample, step and channel differ in length: "
                             f"{s.shape}, {t.shape}, {c.shape}")
        v = np.ones(s.shape[0], dtype=dtype) if value is None else np.asarray(value, dtype=dtype).ravel()
        if v.shape != s.shape:
            raise ShapeError(f"Events.from_coo: {v.shape[0]} values for {s.shape[0]} events")
        for name, a, hi in (("sample", s, B), ("step", t, T), ("channel", c, n_channels)):
            if a.size and (a.min() < 0 or a.max() >= hi):
                raise ShapeError(f"Events.from_coo: {name} out of range [0, {hi})")
        key = (s * T + t) * n_channels + c
        uniq, inv = np.unique(key, return_inverse=True)
        val = np.zeros(uniq.shape[0], dtype=dtype)
        np.add.at(val, inv, v)
        keep = val != 0  # summed to zero: no event (as in frames)
        uniq, val = uniq[keep], val[keep]
        return cls(row_pointer(uniq // n_channels, B * T), (uniq % n_channels).astype(np.int32), val, T, B,
                   n_channels)

    def to_dense(self) -> torch.Tensor:
        """Frames [T, B, K] of these events (zeros elsewhere)."""
        T, B, K = self.shape
        out = np.zeros((B * T, K), dtype=self.val.dtype)
        rows = np.repeat(np.arange(B * T), np.diff(self.ptr))
        out[rows, self.idx] = self.val
        return torch.from_numpy(out.reshape(B, T, K).transpose(1, 0, 2).copy())

    def to(self, dtype: torch.dtype) -> "Events":
        """The same events with values in ``dtype`` (torch.float32 / torch.float64)."""
        npd = torch.empty(0, dtype=dtype).numpy().dtype
        return self if npd == self.val.dtype else Events(self.ptr, self.idx, self.val.astype(npd), *self.shape)


__all__ = ["Events", "dense_to_events", "row_pointer"]

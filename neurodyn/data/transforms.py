"""Event transforms: binning to dense frames, time crop, channel pooling, augmentation (time
shift / stretch / jitter, channel shift / jitter, event drop).

All functions take and return the structured event arrays of ``events.py`` (times in
integer microseconds) except ``to_frames``, which returns dense float32 counts. Binning is
one ``np.bincount`` over flat (step, channel) indices: no Python loop over events.
Augmentations take an explicit ``numpy.random.Generator`` so runs are reproducible.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .events import check_events, sort_by_time


def _frame_shape(events: np.ndarray, n_channels: int | None, sensor_size: tuple[int, int] | None,
                 n_polarities: int) -> tuple[tuple[int, ...], np.ndarray]:
    """Per-event flat channel index and the per-step frame shape."""
    spatial = check_events(events)
    if spatial:
        if sensor_size is None:
            raise ConfigError("events have x, y fields: pass sensor_size=(width, height), e.g. (34, 34)")
        width, height = int(sensor_size[0]), int(sensor_size[1])
        x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
        p = events["p"].astype(np.int64) if "p" in events.dtype.names else np.zeros_like(x)
        if events.size and (
            x.min() < 0 or x.max() >= width or y.min() < 0 or y.max() >= height
            or p.min() < 0 or p.max() >= n_polarities
        ):
            raise ConfigError(
                f"events outside the frame: x in [{x.min()}, {x.max()}], y in [{y.min()}, {y.max()}], "
                f"p in [{p.min()}, {p.max()}] for sensor {width}x{height} with {n_polarities} polarities"
            )
        return (n_polarities, height, width), (p * height + y) * width + x
    if n_channels is None:
        raise ConfigError("pass n_channels for channel (x-only) events, e.g. 700 for SHD")
    x = events["x"].astype(np.int64)
    if events.size and (x.min() < 0 or x.max() >= n_channels):
        raise ConfigError(f"channel ids in [{x.min()}, {x.max()}] do not fit n_channels={n_channels}")
    return (int(n_channels),), x


def to_frames(
    events: np.ndarray,
    n_channels: int | None = None,
    dt_us: int | None = None,
    n_steps: int | None = None,
    *,
    sensor_size: tuple[int, int] | None = None,
    n_polarities: int = 2,
    t_start_us: int = 0,
    t_stop_us: int | None = None,
) -> np.ndarray:
    """Count events per time bin -> float32 ``[T, n_channels]`` or ``[T, P, height, width]``.

    Channel events (no ``y`` field) need ``n_channels``; camera events need ``sensor_size``
    = (width, height) and give frames indexed ``[t, p, y, x]`` (N-MNIST: ``[T, 2, 34, 34]``).
    Only events with ``t_start_us <= t < t_stop_us`` count. Time grid:

    * ``dt_us`` and ``n_steps``: T = n_steps bins of dt_us from t_start_us; later events dropped.
    * ``dt_us`` only: bins of dt_us up to t_stop_us (default: last event), T = ceil(span / dt_us);
      T = 0 for an empty stream without t_stop_us.
    * ``n_steps`` only: the span [t_start_us, t_stop_us) (default: up to last event) split in
      n_steps equal bins; bin = (t - t_start) * n_steps // span, exact integer arithmetic.
    """
    if dt_us is None and n_steps is None:
        raise ConfigError("to_frames needs dt_us, n_steps or both")
    if dt_us is not None and dt_us <= 0:
        raise ConfigError(f"dt_us must be positive, got {dt_us}")
    if n_steps is not None and n_steps < 0:
        raise ConfigError(f"n_steps must be >= 0, got {n_steps}")
    frame_shape, chan = _frame_shape(events, n_channels, sensor_size, n_polarities)
    n_chan = math.prod(frame_shape)
    t = events["t"].astype(np.int64) - int(t_start_us)
    keep = t >= 0
    if t_stop_us is not None:
        keep &= t < int(t_stop_us) - int(t_start_us)
    if not keep.all():
        t, chan = t[keep], chan[keep]
    if t_stop_us is not None:
        span = int(t_stop_us) - int(t_start_us)
    else:
        span = int(t.max()) + 1 if t.size else 0

    if dt_us is not None and n_steps is not None:
        n_t = int(n_steps)
        step = t // int(dt_us)
    elif dt_us is not None:
        n_t = -(-span // int(dt_us)) if span > 0 else 0
        step = t // int(dt_us)
    else:
        n_t = int(n_steps)
        step = t * n_t // span if span > 0 else t
    inside = step < n_t
    if not inside.all():
        step, chan = step[inside], chan[inside]
    counts = np.bincount(step * n_chan + chan, minlength=n_t * n_chan)
    return counts.astype(np.float32).reshape((n_t, *frame_shape))


def crop_time(events: np.ndarray, t_start_us: int = 0, t_stop_us: int | None = None, *,
              rezero: bool = False) -> np.ndarray:
    """Events with ``t_start_us <= t < t_stop_us``; with ``rezero`` times shift so t_start_us -> 0."""
    check_events(events)
    keep = events["t"] >= t_start_us
    if t_stop_us is not None:
        keep &= events["t"] < t_stop_us
    out = events[keep]
    if rezero and t_start_us:
        out["t"] -= t_start_us
    return out


def pool_channels(events: np.ndarray, factor: int) -> np.ndarray:
    """Merge groups of ``factor`` neighbouring channels (x // factor; also y for camera events).

    700 SHD channels pooled by k give ``pooled_size(700, k)`` = ceil(700 / k) channels.
    """
    if factor < 1:
        raise ConfigError(f"pooling factor must be >= 1, got {factor}")
    spatial = check_events(events)
    out = events.copy()
    if factor > 1:
        out["x"] //= factor
        if spatial:
            out["y"] //= factor
    return out


def pooled_size(n: int, factor: int) -> int:
    """Number of channels (or pixels per side) after ``pool_channels`` with ``factor``."""
    return -(-int(n) // int(factor))


def channel_shift(events: np.ndarray, max_shift: int, n_channels: int, rng: np.random.Generator) -> np.ndarray:
    """Shift all channel ids by one random integer in [-max_shift, max_shift]; drop those leaving [0, n)."""
    check_events(events)
    if max_shift <= 0 or events.size == 0:
        return events.copy()
    shift = int(rng.integers(-max_shift, max_shift + 1))
    x = events["x"].astype(np.int64) + shift
    out = events[(x >= 0) & (x < n_channels)].copy()
    out["x"] += shift
    return out


def channel_jitter(events: np.ndarray, sigma: float, n_channels: int, rng: np.random.Generator) -> np.ndarray:
    """Move each event to channel round(x + N(0, sigma^2)); drop those leaving [0, n_channels)."""
    check_events(events)
    if sigma <= 0 or events.size == 0:
        return events.copy()
    x = events["x"].astype(np.int64) + np.rint(rng.normal(0.0, sigma, events.size)).astype(np.int64)
    keep = (x >= 0) & (x < n_channels)
    out = events[keep].copy()
    out["x"] = x[keep]
    return out


def time_jitter(events: np.ndarray, std_us: float, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, std_us^2) microseconds to each event time (clipped at 0), re-sorted by time."""
    check_events(events)
    if std_us <= 0 or events.size == 0:
        return events.copy()
    out = events.copy()
    t = out["t"] + np.rint(rng.normal(0.0, std_us, out.size)).astype(np.int64)
    out["t"] = np.maximum(t, 0)
    return sort_by_time(out)


def time_shift(events: np.ndarray, max_shift_us: float, rng: np.random.Generator) -> np.ndarray:
    """Move the whole sample by one random offset in [-max_shift_us, max_shift_us] us (rounded to
    whole us); events pushed before t = 0 are dropped. The order of events is kept."""
    check_events(events)
    if max_shift_us < 0 or not math.isfinite(max_shift_us):
        raise ConfigError(f"max_shift_us must be a finite number >= 0, got {max_shift_us}")
    if max_shift_us == 0 or events.size == 0:
        return events.copy()
    shift = int(np.rint(rng.uniform(-max_shift_us, max_shift_us)))
    t = events["t"].astype(np.int64) + shift
    out = events[t >= 0].copy()
    out["t"] = t[t >= 0]
    return out


def time_stretch(events: np.ndarray, max_stretch: float, rng: np.random.Generator) -> np.ndarray:
    """Speak faster or slower: every time is scaled by one factor s, log-uniform in
    [1 / (1 + max_stretch), 1 + max_stretch], and rounded to whole us (t -> round(s t))."""
    check_events(events)
    if max_stretch < 0 or not math.isfinite(max_stretch):
        raise ConfigError(f"max_stretch must be a finite number >= 0, got {max_stretch}")
    if max_stretch == 0 or events.size == 0:
        return events.copy()
    hi = math.log1p(max_stretch)
    s = math.exp(rng.uniform(-hi, hi))
    out = events.copy()
    out["t"] = np.rint(events["t"].astype(np.float64) * s).astype(out["t"].dtype)
    return out  # a monotone map keeps the time order


def drop_events(events: np.ndarray, p_drop: float, rng: np.random.Generator) -> np.ndarray:
    """Drop each event independently with probability ``p_drop``."""
    check_events(events)
    if not 0.0 <= p_drop <= 1.0:
        raise ConfigError(f"p_drop must be in [0, 1], got {p_drop}")
    return events[rng.random(events.size) >= p_drop]


@dataclass(frozen=True)
class SHDAugment:
    """Random SHD augmentation, in this order: time stretch, time shift, channel shift, per-spike
    channel jitter, per-spike time jitter, event drop.

    ``aug(events, rng) -> events``; parameters in channels and microseconds (``max_stretch``:
    the largest relative change of speaking rate, e.g. 0.1 for 1/1.1..1.1); 0 disables a part.
    The defaults (channel shift 20, jitter 1 channel and 1 ms) are those of ``data.augment = true``.
    """

    n_channels: int = 700
    max_shift: int = 20
    channel_sigma: float = 1.0
    time_std_us: float = 1000.0
    p_drop: float = 0.0
    max_time_shift_us: float = 0.0
    max_stretch: float = 0.0

    def __call__(self, events: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = events
        if self.max_stretch > 0:
            out = time_stretch(out, self.max_stretch, rng)
        if self.max_time_shift_us > 0:
            out = time_shift(out, self.max_time_shift_us, rng)
        out = channel_shift(out, self.max_shift, self.n_channels, rng)
        out = channel_jitter(out, self.channel_sigma, self.n_channels, rng)
        out = time_jitter(out, self.time_std_us, rng)
        if self.p_drop > 0:
            out = drop_events(out, self.p_drop, rng)
        return out


@dataclass(frozen=True)
class ToFrames:
    """Binning as a callable: ``ToFrames(...)(events) -> float32 [T, ...]`` (see ``to_frames``).

    ``channel_pool`` > 1 pools channels (or pixels) first; the output then has
    ceil(n_channels / channel_pool) channels (or a pooled sensor).
    """

    n_channels: int | None = None
    dt_us: int | None = None
    n_steps: int | None = None
    sensor_size: tuple[int, int] | None = None
    t_start_us: int = 0
    t_stop_us: int | None = None
    channel_pool: int = 1

    def __post_init__(self) -> None:
        if self.dt_us is None and self.n_steps is None:
            raise ConfigError("ToFrames needs dt_us, n_steps or both")
        if self.channel_pool < 1:
            raise ConfigError(f"channel_pool must be >= 1, got {self.channel_pool}")

    def __call__(self, events: np.ndarray) -> np.ndarray:
        k = self.channel_pool
        n_ch, sensor = self.n_channels, self.sensor_size
        if k > 1:
            events = pool_channels(events, k)
            n_ch = pooled_size(n_ch, k) if n_ch is not None else None
            sensor = (pooled_size(sensor[0], k), pooled_size(sensor[1], k)) if sensor is not None else None
        return to_frames(
            events, n_ch, self.dt_us, self.n_steps, sensor_size=sensor,
            t_start_us=self.t_start_us, t_stop_us=self.t_stop_us,
        )


__all__ = [
    "to_frames",
    "crop_time",
    "pool_channels",
    "pooled_size",
    "channel_shift",
    "channel_jitter",
    "time_jitter",
    "time_shift",
    "time_stretch",
    "drop_events",
    "SHDAugment",
    "ToFrames",
]

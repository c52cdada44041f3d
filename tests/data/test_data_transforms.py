"""Binning checked against hand-computed counts; pooling, crop and augmentation."""
from __future__ import annotations

import numpy as np
import pytest

from neurodyn.data import (
    SHDAugment,
    SHDFile,
    ToFrames,
    channel_jitter,
    channel_shift,
    crop_time,
    make_events,
    pool_channels,
    pooled_size,
    drop_events,
    time_jitter,
    time_shift,
    time_stretch,
    to_frames,
)
from neurodyn.errors import ConfigError, ShapeError

EV = make_events(np.array([0, 999, 1000, 2500, 2999]), np.array([0, 1, 0, 2, 2]))


def test_dt_binning_by_hand():
    fr = to_frames(EV, 3, dt_us=1000)
    assert fr.dtype == np.float32
    np.testing.assert_array_equal(fr, [[1, 1, 0], [1, 0, 0], [0, 0, 2]])


def test_dt_and_n_steps_fix_the_grid():
    np.testing.assert_array_equal(to_frames(EV, 3, dt_us=1000, n_steps=2), [[1, 1, 0], [1, 0, 0]])
    fr = to_frames(EV, 3, dt_us=1000, n_steps=5)
    assert fr.shape == (5, 3) and fr[3:].sum() == 0 and fr.sum() == 5
    np.testing.assert_array_equal(to_frames(EV, 3, dt_us=2000), [[2, 1, 0], [0, 0, 2]])


def test_n_steps_only_splits_the_span_exactly():
    ev = make_events(np.array([0, 10, 20, 29]), np.array([0, 1, 0, 1]))
    # span = 30 us, bin = t * 3 // 30 -> [0, 1, 2, 2]
    np.testing.assert_array_equal(to_frames(ev, 2, n_steps=3), [[1, 0], [0, 1], [1, 1]])
    # explicit window [10, 40): span 30, t - 10 = [0, 10, 19] -> bins [0, 1, 1]; t=0 dropped
    np.testing.assert_array_equal(
        to_frames(ev, 2, n_steps=3, t_start_us=10, t_stop_us=40), [[0, 1], [1, 1], [0, 0]]
    )


def test_window_crop():
    fr = to_frames(EV, 3, dt_us=1000, t_start_us=999, t_stop_us=2999)
    # kept t = 999, 1000, 2500 -> relative 0, 1, 1501
    np.testing.assert_array_equal(fr, [[1, 1, 0], [0, 0, 1]])


def test_empty_and_single():
    empty = make_events(np.array([], np.int64), np.array([], np.int64))
    assert to_frames(empty, 700, dt_us=1000).shape == (0, 700)
    assert to_frames(empty, 700, dt_us=1000, n_steps=4).sum() == 0
    assert to_frames(empty, 700, n_steps=4).shape == (4, 700)
    one = make_events(np.array([4321]), np.array([699]))
    fr = to_frames(one, 700, dt_us=1000)
    assert fr.shape == (5, 700) and fr[4, 699] == 1 and fr.sum() == 1


def test_camera_frames_index_t_p_y_x():
    ev = make_events(np.array([150, 150, 2100]), np.array([5, 5, 33]), y=np.array([7, 7, 0]), p=np.array([1, 1, 0]))
    fr = to_frames(ev, dt_us=1000, sensor_size=(34, 34))
    assert fr.shape == (3, 2, 34, 34)
    assert fr[0, 1, 7, 5] == 2 and fr[2, 0, 0, 33] == 1 and fr.sum() == 3
    # non-square sensor: (width, height)
    fr = to_frames(ev, dt_us=1000, sensor_size=(40, 10))
    assert fr.shape == (3, 2, 10, 40) and fr[2, 0, 0, 33] == 1


def test_errors():
    with pytest.raises(ConfigError):
        to_frames(EV, 3)
    with pytest.raises(ConfigError, match="n_channels"):
        to_frames(EV, 2, dt_us=1000)
    cam = make_events(np.array([0]), np.array([1]), y=np.array([1]))
    with pytest.raises(ConfigError, match="sensor_size"):
        to_frames(cam, dt_us=1000)
    with pytest.raises(ShapeError):
        to_frames(np.zeros(3), 3, dt_us=10)


def test_counts_are_conserved_on_the_sample(datasets_dir):
    with SHDFile(datasets_dir / "shd_sample" / "shd_train.h5") as ds:
        ev, _ = ds[0]
    fr = to_frames(ev, 700, dt_us=1000)
    assert fr.sum() == ev.size
    np.testing.assert_array_equal(fr.sum(0), np.bincount(ev["x"], minlength=700))
    np.testing.assert_array_equal(fr.sum(1), np.bincount(ev["t"] // 1000, minlength=fr.shape[0]))


def test_pool_channels_equals_summing_groups(datasets_dir):
    with SHDFile(datasets_dir / "shd_sample" / "shd_train.h5") as ds:
        ev, _ = ds[3]
    full = to_frames(ev, 700, dt_us=10_000)
    pooled = to_frames(pool_channels(ev, 4), pooled_size(700, 4), dt_us=10_000)
    assert pooled.shape == (full.shape[0], 175)
    np.testing.assert_array_equal(pooled, full.reshape(-1, 175, 4).sum(-1))
    assert pooled_size(700, 3) == 234
    np.testing.assert_array_equal(ToFrames(n_channels=700, dt_us=10_000, channel_pool=4)(ev), pooled)
    cam = make_events(np.array([0, 1]), np.array([33, 2]), y=np.array([32, 3]), p=np.array([1, 0]))
    np.testing.assert_array_equal(pool_channels(cam, 2)[["x", "y"]].tolist(), [(16, 16), (1, 1)])


def test_crop_time_rezero():
    out = crop_time(EV, 1000, 2999, rezero=True)
    assert out["t"].tolist() == [0, 1500] and out["x"].tolist() == [0, 2]
    assert EV["t"].tolist() == [0, 999, 1000, 2500, 2999]  # input untouched


def test_channel_shift_moves_all_events_by_one_amount():
    ev = make_events(np.arange(6), np.array([0, 1, 2, 500, 698, 699]))
    out = channel_shift(ev, 5, 700, np.random.default_rng(0))
    s = int(np.random.default_rng(0).integers(-5, 6))
    assert s != 0
    keep = (ev["x"] + s >= 0) & (ev["x"] + s < 700)
    assert out["x"].tolist() == (ev["x"][keep] + s).tolist()
    assert out["t"].tolist() == ev["t"][keep].tolist()
    np.testing.assert_array_equal(channel_shift(ev, 5, 700, np.random.default_rng(0)), out)


def test_channel_and_time_jitter():
    rng = np.random.default_rng(1)
    n = 20_000
    ev = make_events(np.sort(rng.integers(0, 10**6, n)), np.full(n, 350))
    out = channel_jitter(ev, 2.0, 700, np.random.default_rng(2))
    assert out.size == n and abs(out["x"].std() - 2.0) < 0.1 and abs(out["x"].mean() - 350) < 0.1
    out = time_jitter(ev, 500.0, np.random.default_rng(3))
    assert np.all(np.diff(out["t"]) >= 0) and out["t"].min() >= 0
    assert abs(np.sort(out["t"]).mean() - ev["t"].mean()) < 20
    edge = make_events(np.array([0, 0, 0]), np.array([0, 0, 0]))
    assert channel_jitter(edge, 50.0, 1, np.random.default_rng(0)).size < 3  # dropped, not clipped


def test_shd_augment_is_reproducible():
    rng = np.random.default_rng(0)
    ev = make_events(np.sort(rng.integers(0, 10**6, 500)), rng.integers(0, 700, 500))
    aug = SHDAugment(max_shift=10, channel_sigma=1.0, time_std_us=300.0, p_drop=0.1)
    a = aug(ev, np.random.default_rng(7))
    b = aug(ev, np.random.default_rng(7))
    c = aug(ev, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert 350 < a.size < 500 and a["x"].max() < 700


class _Fixed:
    """A stand-in generator whose draws are given: uniform() returns ``u`` (a point of its range)."""

    def __init__(self, u: float) -> None:
        self.u = u

    def uniform(self, lo: float, hi: float) -> float:
        return lo + self.u * (hi - lo)


def test_time_shift_by_hand():
    ev = make_events(np.array([0, 400, 1000, 2500]), np.array([3, 1, 0, 2]))
    later = time_shift(ev, 1000.0, _Fixed(0.75))          # +500 us
    np.testing.assert_array_equal(later["t"], [500, 900, 1500, 3000])
    np.testing.assert_array_equal(later["x"], [3, 1, 0, 2])
    earlier = time_shift(ev, 1000.0, _Fixed(0.0))         # -1000 us: the first two events fall before 0
    np.testing.assert_array_equal(earlier["t"], [0, 1500])
    np.testing.assert_array_equal(earlier["x"], [0, 2])
    np.testing.assert_array_equal(time_shift(ev, 0.0, _Fixed(0.3)), ev)


def test_time_stretch_by_hand():
    ev = make_events(np.array([0, 100, 1000, 2501]), np.array([3, 1, 0, 2]))
    # u = 1: factor 1 + max_stretch = 1.5; u = 0: its inverse 1/1.5; u = 0.5: 1
    np.testing.assert_array_equal(time_stretch(ev, 0.5, _Fixed(1.0))["t"], [0, 150, 1500, 3752])
    np.testing.assert_array_equal(time_stretch(ev, 0.5, _Fixed(0.0))["t"], [0, 67, 667, 1667])
    np.testing.assert_array_equal(time_stretch(ev, 0.5, _Fixed(0.5))["t"], ev["t"])
    np.testing.assert_array_equal(time_stretch(ev, 0.5, _Fixed(1.0))["x"], ev["x"])
    factors = [time_stretch(make_events(np.array([10**6]), np.array([0])), 0.2, np.random.default_rng(s))["t"][0] / 1e6
               for s in range(200)]
    assert min(factors) >= 1 / 1.2 - 1e-6 and max(factors) <= 1.2 + 1e-6 and min(factors) < 0.9 < 1.1 < max(factors)


def test_drop_events_by_hand():
    ev = make_events(np.arange(6) * 10, np.arange(6))

    class Draws:
        def random(self, n):
            return np.array([0.1, 0.9, 0.5, 0.29, 0.31, 0.0])[:n]

    np.testing.assert_array_equal(drop_events(ev, 0.3, Draws())["x"], [1, 2, 4])
    with pytest.raises(ConfigError, match="p_drop"):
        drop_events(ev, 1.5, Draws())


@pytest.mark.parametrize("fn, arg", [(time_shift, -1.0), (time_stretch, -0.1), (time_stretch, float("nan"))])
def test_time_augmentations_reject_bad_ranges(fn, arg):
    with pytest.raises(ConfigError):
        fn(EV, arg, np.random.default_rng(0))


def test_shd_augment_time_parts_keep_time_order_and_range():
    rng = np.random.default_rng(0)
    ev = make_events(np.sort(rng.integers(0, 10**6, 500)), rng.integers(0, 700, 500))
    aug = SHDAugment(max_shift=0, channel_sigma=0.0, time_std_us=0.0, max_time_shift_us=50_000.0, max_stretch=0.2)
    for seed in range(20):
        out = aug(ev, np.random.default_rng(seed))
        assert np.all(np.diff(out["t"]) >= 0) and out["t"].min() >= 0
        np.testing.assert_array_equal(out["x"], ev["x"][ev.size - out.size:])  # only the earliest can drop
        assert out["t"].max() <= 1.2 * ev["t"].max() + 50_000 + 1

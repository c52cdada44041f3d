"""EventDataset caching, pad_collate, load_dataset on the shipped samples."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from neurodyn.data import (
    EventDataset,
    SHDAugment,
    SparseFrames,
    ToFrames,
    events_collate,
    load_dataset,
    make_events,
    pad_collate,
    to_frames,
)
from neurodyn.errors import ConfigError, DataFormatError, ShapeError


class CountingReader:
    """A tiny in-memory reader that counts parses."""

    def __init__(self, samples, labels, num_classes=3):
        self.samples, self.labels, self.num_classes = samples, np.asarray(labels), num_classes
        self.reads = 0

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        self.reads += 1
        return self.samples[i], int(self.labels[i])


def _reader():
    rng = np.random.default_rng(0)
    samples = [
        make_events(np.sort(rng.integers(0, n * 1000, 40 * n)), rng.integers(0, 20, 40 * n)) for n in (3, 5, 1)
    ]
    return CountingReader(samples, [2, 0, 1])


def test_cache_hit_on_second_access():
    reader = _reader()
    ds = EventDataset(reader, ToFrames(n_channels=20, dt_us=1000))
    x0, y0 = ds[1]
    assert reader.reads == 1 and ds.cache_misses == 1 and ds.cache_hits == 0
    x1, y1 = ds[1]
    assert reader.reads == 1 and ds.cache_hits == 1  # not parsed again
    assert torch.equal(x0, x1) and y0 == y1 == 0
    assert x0.dtype == torch.float32 and x0.shape == (5, 20)
    # the cached copy is exact, not an approximation
    np.testing.assert_array_equal(x1.numpy(), to_frames(reader.samples[1], 20, dt_us=1000))
    for i in range(3):
        ds[i]
    for i in range(3):
        ds[i]
    assert reader.reads == 3 and ds.cache_hits == 5
    ds.clear_cache()
    ds[0]
    assert reader.reads == 4


def test_no_cache_reparses():
    reader = _reader()
    ds = EventDataset(reader, ToFrames(n_channels=20, dt_us=1000), cache=False)
    ds[0], ds[0]
    assert reader.reads == 2


def test_augmented_dataset_caches_events_not_frames():
    reader = _reader()
    aug = SHDAugment(n_channels=20, max_shift=3, channel_sigma=1.0, time_std_us=200.0)
    ds = EventDataset(reader, ToFrames(n_channels=20, dt_us=1000, n_steps=5), augment=aug, seed=4)
    a, _ = ds[0]
    b, _ = ds[0]
    assert reader.reads == 1 and ds.cache_hits == 1
    assert not torch.equal(a, b)  # a fresh augmentation each access
    ds2 = EventDataset(_reader(), ToFrames(n_channels=20, dt_us=1000, n_steps=5), augment=aug, seed=4)
    assert torch.equal(ds2[0][0], a) and torch.equal(ds2[0][0], b)  # same seed, same stream


def test_pad_collate_shapes_and_padding():
    f3 = torch.arange(3 * 4, dtype=torch.float32).reshape(3, 4) + 1
    f5 = torch.ones(5, 4) * 7
    f1 = torch.ones(1, 4) * 2
    x, y, lengths = pad_collate([(f3, 2), (f5, 0), (f1, 1)])
    assert x.shape == (5, 3, 4) and x.dtype == torch.float32
    assert y.tolist() == [2, 0, 1] and y.dtype == torch.int64
    assert lengths.tolist() == [3, 5, 1] and lengths.dtype == torch.int64
    assert torch.equal(x[:3, 0], f3) and x[3:, 0].abs().sum() == 0
    assert torch.equal(x[:, 1], f5)
    assert torch.equal(x[:1, 2], f1) and x[1:, 2].abs().sum() == 0
    # camera frames keep their trailing dims
    x, _, _ = pad_collate([(torch.ones(2, 2, 34, 34), 0), (torch.ones(4, 2, 34, 34), 1)])
    assert x.shape == (4, 2, 2, 34, 34) and x[2:, 0].sum() == 0 and x.sum() == 6 * 2 * 34 * 34
    with pytest.raises(ShapeError):
        pad_collate([(torch.ones(2, 4), 0), (torch.ones(2, 5), 1)])
    with pytest.raises(ShapeError):
        pad_collate([])


def test_events_collate_holds_the_nonzeros_of_pad_collate():
    g = torch.Generator().manual_seed(0)
    batch = [((torch.rand(T, 2, 3, generator=g) < 0.4).float() * (1 + torch.arange(6.0).reshape(2, 3)), lbl)
             for T, lbl in ((3, 2), (5, 0), (1, 1), (4, 3))]
    batch[1][0][0, 0, 0] = -0.0  # no event
    x, y, lengths = pad_collate(batch)
    ev, y2, lengths2 = events_collate(batch)
    assert torch.equal(y, y2) and torch.equal(lengths, lengths2)
    assert ev.shape == (5, 4, 6) and torch.equal(ev.to_dense(), x.reshape(5, 4, 6))
    with pytest.raises(ShapeError):
        events_collate([(torch.ones(2, 4), 0), (torch.ones(2, 5), 1)])


def test_sparse_frames_round_trip_exactly():
    rng = np.random.default_rng(3)
    counts = (rng.random((6, 2, 3, 4)) < 0.3) * rng.integers(1, 300, (6, 2, 3, 4))
    sf = SparseFrames.from_dense(counts.astype(np.float32))
    assert sf.shape == (6, 2, 3, 4) and sf.values.dtype == np.uint16  # whole counts over 255
    assert np.all(np.diff(sf.index) > 0)
    np.testing.assert_array_equal(sf.to_dense(), counts.astype(np.float32))
    small = SparseFrames.from_dense(np.minimum(counts, 9).astype(np.float32))
    assert small.values.dtype == np.uint8
    frac = np.where(counts > 0, counts * 0.5 - 40.0, 0.0).astype(np.float32)
    sf = SparseFrames.from_dense(frac)  # not whole non-negative counts: kept as they are
    assert sf.values.dtype == np.float32
    np.testing.assert_array_equal(sf.to_dense(), frac)
    empty = SparseFrames.from_dense(np.zeros((0, 5), np.float32))
    assert empty.shape == (0, 5) and empty.index.size == 0 and empty.to_dense().shape == (0, 5)


@pytest.mark.parametrize("index, values, shape, match", [
    ([3, 1], [1, 1], (2, 4), "ascending"),
    ([1, 1], [1, 1], (2, 4), "ascending"),
    ([8], [1], (2, 4), "ascending positions in \\[0, 8\\)"),
    ([-1], [1], (2, 4), "ascending"),
    ([1, 2], [1], (2, 4), "one length"),
    ([1.0], [1], (2, 4), "integer positions"),
    ([1], [1], (), "shape must be"),
    ([1], [1], (2, -1), "shape must be"),
])
def test_sparse_frames_reject_bad_input(index, values, shape, match):
    with pytest.raises(ShapeError, match=match):
        SparseFrames(shape, np.asarray(index), np.asarray(values))


@pytest.mark.parametrize("augment", [False, True])
def test_sparse_samples_are_the_dense_samples(augment):
    aug = SHDAugment(n_channels=20, max_shift=3, channel_sigma=1.0, time_std_us=200.0) if augment else None
    dense = EventDataset(_reader(), ToFrames(n_channels=20, dt_us=1000, n_steps=5 if augment else None),
                         augment=aug, seed=4)
    sparse = EventDataset(_reader(), dense.transform, augment=aug, seed=4, sparse=True)
    for i in (0, 1, 2, 0, 1):  # misses, then cache hits
        (xd, yd), (xs, ys) = dense[i], sparse[i]
        assert isinstance(xs, SparseFrames) and yd == ys
        assert torch.equal(torch.from_numpy(xs.to_dense()), xd)
    assert sparse.cache_hits == dense.cache_hits == 2


def test_with_sparse_is_a_view_sharing_the_cache():
    reader = _reader()
    ds = EventDataset(reader, ToFrames(n_channels=20, dt_us=1000))
    view = ds.with_sparse()
    assert view.sparse and not ds.sparse and view.reader is reader
    a, _ = ds[1]
    b, _ = view[1]
    assert reader.reads == 1 and view.cache_hits == 1  # parsed once, for both
    assert isinstance(b, SparseFrames) and torch.equal(torch.from_numpy(b.to_dense()), a)
    assert isinstance(view.with_sparse(False)[1][0], torch.Tensor)


def test_collates_take_sparse_samples_as_the_dense_ones():
    ds = EventDataset(_reader(), ToFrames(n_channels=20, dt_us=1000))
    dense = [ds[i] for i in range(3)]
    sparse = [ds.with_sparse()[i] for i in range(3)]
    mixed = [sparse[0], dense[1], sparse[2]]
    x, y, lengths = pad_collate(dense)
    for batch in (sparse, mixed):
        x2, y2, l2 = pad_collate(batch)
        assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(lengths, l2)
    ev, _, _ = events_collate(dense)
    for batch in (sparse, mixed):
        ev2, y2, l2 = events_collate(batch)
        assert torch.equal(y, y2) and torch.equal(lengths, l2)
        for a, b in ((ev.ptr, ev2.ptr), (ev.idx, ev2.idx), (ev.val, ev2.val)):
            assert a.dtype == b.dtype and np.array_equal(a, b)
    assert torch.equal(ev.to_dense(), x)
    bad = SparseFrames((2, 21), np.array([0], np.int32), np.array([1], np.uint8))
    with pytest.raises(ShapeError, match="frame shape"):
        events_collate([sparse[0], (bad, 0)])


def test_load_shd_sample(datasets_dir):
    train, test = load_dataset(datasets_dir / "shd_sample", dt_us=10_000)
    assert len(train) == 600 and len(test) == 200 and train.num_classes == 20
    x, y = train[0]
    assert x.shape[1] == 700 and 40 <= x.shape[0] <= 150 and y == int(train.labels[0])
    loader = DataLoader(train, batch_size=16, collate_fn=pad_collate)
    xb, yb, lengths = next(iter(loader))
    assert xb.shape == (int(lengths.max()), 16, 700)
    assert torch.equal(yb, torch.as_tensor(train.labels[:16]))
    for b in range(16):  # padding after each sample's end is zero, the sample itself is intact
        assert torch.equal(xb[: lengths[b], b], train[b][0])
        assert xb[lengths[b]:, b].sum() == 0
    # the same file, the train path form, pooled channels and a fixed grid
    tr2, _ = load_dataset(datasets_dir / "shd_sample" / "shd_train.h5", dt_us=10_000, n_steps=100, channel_pool=7)
    x2, _ = tr2[0]
    assert x2.shape == (100, 100)
    np.testing.assert_array_equal(x2[: x.shape[0]].numpy(), x.numpy().reshape(-1, 100, 7).sum(-1)[:100])


def test_load_nmnist_sample(datasets_dir):
    train, test = load_dataset(datasets_dir / "nmnist_sample", n_steps=10, t_stop_us=300_000)
    assert len(train) == 300 and len(test) == 100 and test.num_classes == 10
    x, y = test[0]
    assert x.shape == (10, 2, 34, 34) and y == 0
    xb, yb, lengths = pad_collate([train[i] for i in range(4)])
    assert xb.shape == (10, 4, 2, 34, 34) and lengths.tolist() == [10] * 4


def test_load_dataset_errors(tmp_path, datasets_dir):
    with pytest.raises(DataFormatError, match="no such file or folder"):
        load_dataset(tmp_path / "nothing")
    with pytest.raises(DataFormatError, match="not a dataset"):
        load_dataset(tmp_path)
    with pytest.raises(ConfigError):
        load_dataset(datasets_dir / "nmnist_sample", augment=True)
    (tmp_path / "only_train.h5").write_bytes(b"")
    with pytest.raises(DataFormatError, match="only_test.h5"):
        load_dataset(tmp_path / "only_train.h5")

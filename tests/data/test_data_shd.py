"""SHD/SSC HDF5 reader and writer: the shipped sample, hand-made edge cases, bad files."""
from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from neurodyn.data import SHD_KEYS, TXP_DTYPE, SHDFile, make_events, write_shd
from neurodyn.errors import ConfigError

SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "shd_sample"


# --------------------------------------------------------------------------- sample files


def test_sample_files_have_the_published_layout_and_dtypes():
    for name, n in (("shd_train.h5", 600), ("shd_test.h5", 200)):
        with h5py.File(SAMPLE / name, "r") as f:
            assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
            assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
            assert f["labels"].dtype == np.uint16 and f["labels"].shape == (n,)
            assert f["extra/speaker"].dtype == np.uint16 and f["extra/speaker"].shape == (n,)
            assert [k.decode() for k in f["extra/keys"][()]] == list(SHD_KEYS)
            assert set(f["extra/meta_info"]) == {"gender", "age", "body_height"}
            assert f["extra/meta_info/gender"].shape == (12,)


def test_sample_reader_values():
    with SHDFile(SAMPLE / "shd_train.h5") as ds:
        assert len(ds) == 600 and ds.num_classes == 20
        assert np.bincount(ds.labels, minlength=20).tolist() == [30] * 20
        assert ds.keys == list(SHD_KEYS)
        assert set(np.unique(ds.speakers)) <= set(range(10))  # speakers 10, 11 are test-only
        n_spikes = []
        for i in range(0, 600, 37):
            ev, label = ds[i]
            assert ev.dtype == TXP_DTYPE and label == ds.labels[i]
            assert ev.size > 100
            assert ev["x"].min() >= 0 and ev["x"].max() < 700
            assert np.all(np.diff(ev["t"]) >= 0)  # stored sorted by time
            assert 0 <= ev["t"].min() and ev["t"].max() < 1_500_000  # utterances last < 1.5 s
            assert np.all(ev["p"] == 1)
            n_spikes.append(ev.size)
        # the raw spikes agree with the events (seconds -> microseconds)
        times, units = ds.read_spikes(5)
        ev, _ = ds[5]
        np.testing.assert_array_equal(ev["t"], np.rint(times * 1e6).astype(np.int64))
        np.testing.assert_array_equal(ev["x"], units)
    with SHDFile(SAMPLE / "shd_test.h5") as ds:
        assert len(ds) == 200 and np.bincount(ds.labels).tolist() == [10] * 20


# --------------------------------------------------------------------------- round trip, edge cases


def test_round_trip_exact_with_float32_times(tmp_path):
    a = make_events(np.array([0, 1, 250_000, 999_999]), np.array([0, 699, 3, 3]))
    empty = make_events(np.array([], np.int64), np.array([], np.int64))
    single = make_events(np.array([123_456]), np.array([42]))
    path = tmp_path / "x_train.h5"
    write_shd(path, [a, empty, single], [3, 0, 19], keys=SHD_KEYS, speakers=[1, 2, 3], times_dtype="float32")
    ds = SHDFile(path)
    assert len(ds) == 3 and ds.num_classes == 20
    assert ds.labels.tolist() == [3, 0, 19] and ds.speakers.tolist() == [1, 2, 3]
    ev, lbl = ds[0]
    assert lbl == 3
    assert ev["t"].tolist() == [0, 1, 250_000, 999_999] and ev["x"].tolist() == [0, 699, 3, 3]
    ev, lbl = ds[1]
    assert ev.size == 0 and ev.dtype == TXP_DTYPE and lbl == 0
    ev, lbl = ds[2]
    assert ev["t"].tolist() == [123_456] and ev["x"].tolist() == [42] and lbl == 19
    assert ds[-1][1] == 19
    with pytest.raises(IndexError):
        ds[3]
    ds.close()


def test_float16_times_round_like_the_published_files(tmp_path):
    # float16(0.005) = 0.0050010681..., float16(0.9) = 0.89990234375 (spacing 2**-11 s near 1 s)
    path = tmp_path / "h.h5"
    write_shd(path, [make_events(np.array([5000, 900_000]), np.array([1, 2]))], [0])
    ev, _ = SHDFile(path)[0]
    assert ev["t"].tolist() == [5001, 899_902]


def test_num_classes_without_keys(tmp_path):
    path = tmp_path / "nokeys.h5"
    write_shd(path, [make_events(np.array([0]), np.array([0]))] * 2, [4, 34])
    ds = SHDFile(path)
    assert ds.keys is None and ds.num_classes == 35 and ds.speakers is None


def test_writer_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "keep.h5"
    write_shd(path, [make_events(np.array([7]), np.array([1]))], [2], times_dtype="float32")
    before = path.read_bytes()
    # invalid input: rejected before anything is written
    with pytest.raises(ConfigError):
        write_shd(path, [make_events(np.array([7]), np.array([700]))], [2])
    # failure in the middle of writing: the old file survives, no temp file is left
    import neurodyn.data.shd as shd_mod

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(shd_mod.h5py, "vlen_dtype", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        write_shd(path, [make_events(np.array([8]), np.array([1]))], [2])
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.h5"]
    assert SHDFile(path)[0][0]["t"].tolist() == [7]


# --------------------------------------------------------------------------- bad files


def _raw_h5(path: Path, times, units, labels, times_dt="float16", units_dt="uint16", keys=None):
    with h5py.File(path, "w") as f:
        if times is not None:
            d = f.create_dataset("spikes/times", (len(times),), dtype=h5py.vlen_dtype(np.dtype(times_dt)))
            for i, t in enumerate(times):
                d[i] = np.asarray(t, times_dt)
        if units is not None:
            d = f.create_dataset("spikes/units", (len(units),), dtype=h5py.vlen_dtype(np.dtype(units_dt)))
            for i, u in enumerate(units):
                d[i] = np.asarray(u, units_dt)
        if labels is not None:
            f.create_dataset("labels", data=np.asarray(labels))
        if keys is not None:
            f.create_dataset("extra/keys", data=np.array([k.encode() for k in keys]))
    return path


def test_missing_and_not_a_file(tmp_path, raises_format):
    with raises_format(tmp_path / "nope.h5", "no such file"):
        SHDFile(tmp_path / "nope.h5")
    with raises_format(tmp_path, "not a file"):
        SHDFile(tmp_path)


def test_not_hdf5(tmp_path, raises_format):
    p = tmp_path / "text.h5"
    p.write_text("spikes,units\n1,2\n")
    with raises_format(p, "not an HDF5 file"):
        SHDFile(p)


def test_truncated_hdf5(tmp_path, raises_format):
    p = tmp_path / "cut.h5"
    write_shd(p, [make_events(np.arange(2000) * 100, np.arange(2000) % 700)] * 4, [0, 1, 2, 3])
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    with raises_format(p, "corrupt HDF5"):
        ds = SHDFile(p)
        for i in range(len(ds)):
            ds[i]


@pytest.mark.parametrize("missing", ["spikes/times", "spikes/units", "labels"])
def test_missing_key(tmp_path, missing, raises_format):
    args = dict(times=[[0.1]], units=[[1]], labels=[0])
    args[{"spikes/times": "times", "spikes/units": "units", "labels": "labels"}[missing]] = None
    p = _raw_h5(tmp_path / "miss.h5", **args)
    with raises_format(p, f"lacks '{missing}'"):
        SHDFile(p)


def test_wrong_dtypes(tmp_path, raises_format):
    p = _raw_h5(tmp_path / "t_int.h5", [[1]], [[1]], [0], times_dt="int32")
    with raises_format(p, "'spikes/times' has element dtype int32"):
        SHDFile(p)
    p = _raw_h5(tmp_path / "u_float.h5", [[0.1]], [[1.5]], [0], units_dt="float32")
    with raises_format(p, "'spikes/units' has element dtype float32"):
        SHDFile(p)
    p = _raw_h5(tmp_path / "l_float.h5", [[0.1]], [[1]], np.array([0.5]))
    with raises_format(p, "'labels' must be a 1-D integer array"):
        SHDFile(p)
    p = tmp_path / "flat.h5"
    with h5py.File(p, "w") as f:  # times not variable-length
        f.create_dataset("spikes/times", data=np.zeros(1, np.float32))
        f.create_dataset("spikes/units", data=np.zeros(1, np.uint16))
        f.create_dataset("labels", data=np.zeros(1, np.uint16))
    with raises_format(p, "variable-length"):
        SHDFile(p)


def test_times_units_length_mismatch(tmp_path, raises_format):
    p = _raw_h5(tmp_path / "len.h5", [[0.1, 0.2], [0.3, 0.4, 0.5]], [[1, 2], [1, 2]], [0, 1])
    ds = SHDFile(p)
    assert ds[0][0].size == 2  # the good sample still reads
    with raises_format(p, "sample 1: spikes/times has 3 entries but spikes/units 2"):
        ds[1]


def test_sample_count_mismatch(tmp_path, raises_format):
    p = _raw_h5(tmp_path / "count.h5", [[0.1], [0.2]], [[1], [2]], [0])
    with raises_format(p, "sample counts differ"):
        SHDFile(p)


def test_unit_id_out_of_range(tmp_path, raises_format):
    p = _raw_h5(tmp_path / "unit.h5", [[0.1, 0.2]], [[3, 700]], [0])
    with raises_format(p, "unit id 700 >= 700 channels"):
        SHDFile(p)[0]


def test_negative_or_nan_time(tmp_path, raises_format):
    p = _raw_h5(tmp_path / "neg.h5", [[-0.1]], [[3]], [0])
    with raises_format(p, "negative spike time"):
        SHDFile(p)[0]
    p = _raw_h5(tmp_path / "nan.h5", [[np.nan]], [[3]], [0])
    with raises_format(p, "non-finite"):
        SHDFile(p)[0]


def test_label_beyond_keys(tmp_path, raises_format):
    p = _raw_h5(tmp_path / "lab.h5", [[0.1]], [[3]], np.array([2], np.uint16), keys=["a", "b"])
    with raises_format(p, "label 2 >= number of classes 2"):
        SHDFile(p)

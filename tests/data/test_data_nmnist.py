"""N-MNIST .bin reader/writer: bit layout by hand, the shipped sample, bad files."""
from __future__ import annotations

import os

import numpy as np
import pytest

from neurodyn.data import (
    MAX_TIMESTAMP_US,
    XYTP_DTYPE,
    NMNISTFolder,
    make_events,
    read_nmnist_bin,
    write_nmnist_bin,
)
from neurodyn.errors import ConfigError

# Two events written out by hand from the spec:
#   x=3,  y=4,  ON,  t=2**23-1 -> 03 04 FF FF FF   (polarity bit 7 and all 23 time bits set)
#   x=33, y=0,  OFF, t=0x012345 -> 21 00 01 23 45
HAND = bytes([0x03, 0x04, 0xFF, 0xFF, 0xFF, 0x21, 0x00, 0x01, 0x23, 0x45])


def test_decode_bits_by_hand(tmp_path):
    p = tmp_path / "hand.bin"
    p.write_bytes(HAND)
    ev = read_nmnist_bin(p)
    assert ev.dtype == XYTP_DTYPE
    assert ev["x"].tolist() == [3, 33]
    assert ev["y"].tolist() == [4, 0]
    assert ev["p"].tolist() == [1, 0]
    assert ev["t"].tolist() == [MAX_TIMESTAMP_US, 0x012345]
    assert MAX_TIMESTAMP_US == 8_388_607


def test_writer_produces_the_hand_bytes(tmp_path):
    ev = make_events(np.array([MAX_TIMESTAMP_US, 0x012345]), np.array([3, 33]), y=np.array([4, 0]), p=np.array([1, 0]))
    p = tmp_path / "w.bin"
    write_nmnist_bin(p, ev)
    assert p.read_bytes() == HAND
    assert sorted(os.listdir(tmp_path)) == ["w.bin"]  # no temp file left


def test_empty_and_single_event(tmp_path):
    p = tmp_path / "empty.bin"
    p.write_bytes(b"")
    ev = read_nmnist_bin(p)
    assert ev.size == 0 and ev.dtype == XYTP_DTYPE
    p = tmp_path / "one.bin"
    p.write_bytes(bytes([0, 33, 0x80, 0x00, 0x01]))
    ev = read_nmnist_bin(p)
    assert ev.tolist() == [(0, 33, 1, 1)]


def test_overflow_marker_advances_time_like_the_reference_reader(tmp_path):
    # event, overflow marker (y == 240), event: the second gets +2**13 us and the marker vanishes
    raw = bytes([1, 1, 0x00, 0x00, 0x10, 0, 240, 0, 0, 0, 2, 2, 0x80, 0x00, 0x20])
    p = tmp_path / "ovf.bin"
    p.write_bytes(raw)
    ev = read_nmnist_bin(p)
    assert ev["t"].tolist() == [0x10, 0x20 + 8192]
    assert ev["x"].tolist() == [1, 2] and ev["p"].tolist() == [0, 1]


def test_random_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    n = 5000
    ev = make_events(
        np.sort(rng.integers(0, MAX_TIMESTAMP_US + 1, n)), rng.integers(0, 34, n),
        y=rng.integers(0, 34, n), p=rng.integers(0, 2, n),
    )
    p = tmp_path / "r.bin"
    write_nmnist_bin(p, ev)
    assert p.stat().st_size == 5 * n
    np.testing.assert_array_equal(read_nmnist_bin(p), ev)


def test_writer_rejects_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(ConfigError, match="23 bits"):
        write_nmnist_bin(tmp_path / "a.bin", make_events([MAX_TIMESTAMP_US + 1], [0], y=[0]))
    with pytest.raises(ConfigError, match="outside the 34x34"):
        write_nmnist_bin(tmp_path / "b.bin", make_events([0], [34], y=[0]))
    assert os.listdir(tmp_path) == []


def test_truncated_file(tmp_path, raises_format):
    p = tmp_path / "cut.bin"
    p.write_bytes(HAND[:7])
    with raises_format(p, "7 bytes is not a multiple of 5"):
        read_nmnist_bin(p)


def test_coordinates_outside_sensor(tmp_path, raises_format):
    p = tmp_path / "big.bin"
    p.write_bytes(HAND + bytes([34, 5, 0, 0, 9]))
    with raises_format(p, "event 2 at (x=34, y=5) lies outside the 34x34 sensor"):
        read_nmnist_bin(p)


def test_missing_and_directory(tmp_path, raises_format):
    with raises_format(tmp_path / "none.bin", "no such file"):
        read_nmnist_bin(tmp_path / "none.bin")
    with raises_format(tmp_path, "not a file"):
        read_nmnist_bin(tmp_path)


def test_sample_folder(datasets_dir):
    root = datasets_dir / "nmnist_sample"
    train, test = NMNISTFolder(root, "Train"), NMNISTFolder(root, "Test")
    assert len(train) == 300 and len(test) == 100 and train.num_classes == 10
    assert np.bincount(train.labels).tolist() == [30] * 10
    assert np.bincount(test.labels).tolist() == [10] * 10
    assert not set(f.name for f in train.files) & set(f.name for f in test.files)
    for i in range(0, 300, 23):
        ev, label = train[i]
        assert label == int(train.files[i].parent.name)
        assert 500 < ev.size < 4000
        assert ev["t"].min() >= 0 and ev["t"].max() < 300_000  # three 100 ms saccades
        assert np.all(np.diff(ev["t"]) >= 0)
        assert 0.3 < ev["p"].mean() < 0.7  # ON and OFF edges both present
        # most events in each saccade third: the glyph moves all the time
        counts = np.bincount(ev["t"] // 100_000, minlength=3)
        assert counts.min() > 0.15 * ev.size


def test_folder_errors(tmp_path, raises_format):
    with raises_format(tmp_path / "Train", "no such folder"):
        NMNISTFolder(tmp_path, "Train")
    (tmp_path / "Train" / "3").mkdir(parents=True)
    with raises_format(tmp_path / "Train", "contains no <digit>/*.bin files"):
        NMNISTFolder(tmp_path, "Train")
    (tmp_path / "Train" / "three").mkdir()
    with raises_format(tmp_path / "Train" / "three", "not a digit label"):
        NMNISTFolder(tmp_path, "Train")
    with pytest.raises(ConfigError):
        NMNISTFolder(tmp_path, "Valid")


def test_bad_file_inside_folder_names_that_file(tmp_path, raises_format):
    d = tmp_path / "Test" / "7"
    d.mkdir(parents=True)
    (d / "00001.bin").write_bytes(HAND)
    (d / "00002.bin").write_bytes(HAND[:-1])
    ds = NMNISTFolder(tmp_path, "Test")
    assert ds[0][1] == 7 and ds[0][0].size == 2
    with raises_format(d / "00002.bin", "not a multiple of 5"):
        ds[1]

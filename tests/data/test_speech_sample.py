"""The committed espeak-ng speech sample (datasets/shd_speech/, made by
datasets/make_speech_sample.py): the real SHD layout, read through the project's readers."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from neurodyn.data import SHD_CHANNELS, SHD_KEYS, TXP_DTYPE, SHDFile, load_dataset

SPEECH = Path(__file__).resolve().parents[2] / "datasets" / "shd_speech"
SPLITS = ("train", "test")
MAX_DURATION_US = 1_400_000  # the script's longest recording (PAD_S)


@pytest.fixture(scope="module")
def files() -> dict[str, SHDFile]:
    out = {split: SHDFile(SPEECH / f"shd_{split}.h5") for split in SPLITS}
    yield out
    for ds in out.values():
        ds.close()


def test_files_have_the_published_layout_and_dtypes():
    for split in SPLITS:
        with h5py.File(SPEECH / f"shd_{split}.h5", "r") as f:
            n = f["labels"].shape[0]
            assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
            assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
            assert f["spikes/times"].shape == f["spikes/units"].shape == (n,)
            assert f["labels"].dtype == np.uint16
            assert f["extra/speaker"].dtype == np.uint16 and f["extra/speaker"].shape == (n,)
            assert [k.decode() for k in f["extra/keys"][()]] == list(SHD_KEYS)
            meta = f["extra/meta_info"]
            assert {"gender", "voice", "split"} <= set(meta)
            n_speakers = meta["gender"].shape[0]
            assert meta["voice"].shape == meta["split"].shape == (n_speakers,)
            assert f["extra/speaker"][()].max() < n_speakers


def test_small_enough_for_the_repository():
    assert sum((SPEECH / f"shd_{s}.h5").stat().st_size for s in SPLITS) < 4.5e6


def test_every_class_in_both_splits_and_held_out_speakers(files):
    for split, ds in files.items():
        assert ds.num_classes == 20 and ds.keys == list(SHD_KEYS)
        counts = np.bincount(ds.labels, minlength=20)
        assert counts.min() >= (15 if split == "train" else 5) and counts.min() == counts.max(), counts
    train_spk, test_spk = set(files["train"].speakers), set(files["test"].speakers)
    assert len(train_spk) >= 10 and len(test_spk) >= 4
    assert not train_spk & test_spk
    # meta_info says the same: each speaker's split, and each speaker a different voice.
    meta = files["train"].meta_info
    assert all(meta["split"][s] == "train" for s in train_spk)
    assert all(meta["split"][s] == "test" for s in test_spk)
    assert len(set(meta["voice"])) == len(meta["voice"])


def test_spikes_are_sorted_in_range_and_speech_like(files):
    units_seen = np.zeros(SHD_CHANNELS, bool)
    for ds in files.values():
        n_spikes = []
        for i in range(len(ds)):
            ev, label = ds[i]
            assert ev.dtype == TXP_DTYPE and label == ds.labels[i]
            assert np.all(np.diff(ev["t"]) >= 0)
            assert ev["t"].min() >= 0 and ev["t"].max() <= MAX_DURATION_US
            assert ev["x"].min() >= 0 and ev["x"].max() < SHD_CHANNELS
            units_seen[ev["x"]] = True
            n_spikes.append(ev.size)
        assert 300 < np.median(n_spikes) < 4000 and min(n_spikes) > 50
    # Channel 0 is the membrane's base (~22 kHz), 699 its apex (~110 Hz): every place below
    # ~9 kHz fires somewhere; above, espeak's 22.05 kHz audio has little energy.
    assert units_seen[120:].all() and units_seen[:120].mean() < 0.5


def test_load_dataset_bins_it_like_real_shd(files):
    train, test = load_dataset(SPEECH, dt_us=10_000, cache=False)
    assert len(train) == len(files["train"]) and len(test) == len(files["test"])
    x, y = train[0]
    assert x.shape[1] == SHD_CHANNELS and x.shape[0] <= MAX_DURATION_US // 10_000 + 1
    assert int(y) == files["train"].labels[0]

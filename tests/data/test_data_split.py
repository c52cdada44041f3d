"""Validation split: whole speakers held out where known, else stratified by class; seeded."""
import numpy as np
import pytest

from neurodyn.data.split import validation_split
from neurodyn.errors import ConfigError


def test_split_by_speaker_holds_out_whole_voices():
    speakers = np.repeat(np.arange(6), 10)            # 6 speakers x 10 samples
    labels = np.tile(np.arange(10), 6)
    tr, va = validation_split(labels, 0.25, seed=1, speakers=speakers)
    assert np.array_equal(np.sort(np.concatenate([tr, va])), np.arange(60))
    assert not set(speakers[tr]) & set(speakers[va])   # no voice on both sides
    assert len(va) == 20                                # whole speakers until >= 25% (15): two of them
    again = validation_split(labels, 0.25, seed=1, speakers=speakers)
    assert np.array_equal(again[1], va)                 # same seed, same split
    other = [tuple(validation_split(labels, 0.25, seed=s, speakers=speakers)[1]) for s in range(2, 8)]
    assert len(set(other)) > 1                          # the seed picks the speakers


def test_split_never_takes_every_speaker():
    speakers = np.array([0, 0, 0, 1])
    tr, va = validation_split(np.zeros(4, int), 0.9, seed=0, speakers=speakers)
    assert len(tr) >= 1 and len(va) >= 1


def test_split_without_speakers_is_stratified():
    labels = np.repeat(np.arange(4), [10, 20, 5, 1])
    tr, va = validation_split(labels, 0.2, seed=0)
    counts = np.bincount(labels[va], minlength=4)
    assert counts.tolist() == [2, 4, 1, 0]              # round(0.2 n_c), at least 1, never a lone sample
    assert np.all(np.diff(tr) > 0) and np.all(np.diff(va) > 0)
    one_speaker = validation_split(labels, 0.2, seed=0, speakers=np.zeros(36, int))
    assert np.array_equal(one_speaker[1], va)           # one voice only: stratified as without speakers


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, float("nan"), True])
def test_split_rejects_bad_fractions(fraction):
    with pytest.raises(ConfigError, match="validation fraction"):
        validation_split(np.arange(10) % 2, fraction)


def test_split_rejects_mismatched_speakers():
    with pytest.raises(ConfigError, match="one speaker per sample"):
        validation_split(np.arange(10) % 2, 0.2, speakers=np.zeros(9, int))

"""Validation split taken from a training set: whole speakers where the file says who speaks
(so validation voices are not trained on, as SHD's test voices are not), else stratified by class.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import ConfigError


def validation_split(labels: np.ndarray, fraction: float, seed: int = 0,
                     speakers: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train [N - V], val [V])`` of a split holding out about ``fraction`` of N samples.

    With ``speakers [N]`` (two or more distinct ones) whole speakers go to validation, drawn in
    a seeded random order until they hold at least ``fraction`` of the samples (never all of
    them). Otherwise each class gives ``round(fraction * n_c)`` of its ``n_c`` samples (at
    least one where it has two or more). Both index arrays are sorted; the split depends only on
    ``labels``, ``speakers``, ``fraction`` and ``seed``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ConfigError(f"validation_split expects labels [N], got shape {list(labels.shape)}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not (0.0 < fraction < 1.0) \
            or not math.isfinite(fraction):
        raise ConfigError(f"validation fraction must be in (0, 1), got {fraction!r}")
    n = labels.shape[0]
    rng = np.random.default_rng([int(seed), 0x5EED])
    val = np.zeros(n, dtype=bool)
    if speakers is not None:
        speakers = np.asarray(speakers)
        if speakers.shape != labels.shape:
            raise ConfigError(f"one speaker per sample needed: speakers {list(speakers.shape)}, "
                              f"labels {list(labels.shape)}")
    if speakers is not None and np.unique(speakers).size >= 2:
        ids = rng.permutation(np.unique(speakers))
        for s in ids[:-1]:                             # the last speaker always stays in train
            if val.sum() >= fraction * n:
                break
            val |= speakers == s
    else:
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            k = int(round(fraction * idx.size))
            if idx.size >= 2:
                k = min(max(k, 1), idx.size - 1)
            else:
                k = 0
            val[rng.permutation(idx)[:k]] = True
    if not val.any():
        raise ConfigError(f"validation fraction {fraction} of {n} samples leaves no validation sample")
    return np.flatnonzero(~val), np.flatnonzero(val)


__all__ = ["validation_split"]

"""A tiny SHD-format data set written with the real writer: 3 classes told apart by which
channel band fires, 24 training and 12 test samples of ~40 ms (4 frames of 10 ms)."""
from pathlib import Path

import numpy as np

from neurodyn.data import make_events, write_shd


def write_tiny_shd(folder: Path, n_train: int = 24, n_test: int = 12, n_classes: int = 3, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % n_classes
        samples = []
        for lbl in labels:
            k = int(rng.integers(30, 60))
            ch = 100 * lbl + rng.integers(0, 100, size=k)      # class band
            noise = rng.integers(0, 700, size=5)
            t = np.sort(rng.integers(0, 40_000, size=k + 5))    # microseconds
            samples.append(make_events(t, np.concatenate([ch, noise])))
        write_shd(folder / f"tiny_{split}.h5", samples, labels.astype(np.uint16), times_dtype="float32")
    return folder

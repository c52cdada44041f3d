"""A short training run on the SHD-format sample data ends well above chance (1/20) and writes its plots."""
from pathlib import Path

import pytest

from neurodyn.train import TrainConfig, train

SAMPLE = Path(__file__).resolve().parents[2] / "datasets" / "shd_sample"


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="sample data missing")
def test_train_on_shd_sample(tmp_path):
    m = train(TrainConfig(data=str(SAMPLE), out=str(tmp_path), model={"hidden": [64]}, train={"epochs": 5, "seed": 0}))
    assert m["test_accuracy"] > 0.4  # chance is 0.05
    for f in ("curves.png", "raster.png", "confusion.png", "metrics.json", "model.pt", "config.toml"):
        assert (tmp_path / f).stat().st_size > 0

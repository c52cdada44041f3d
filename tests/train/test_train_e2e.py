"""Short training runs on the sample data of both formats end well above chance and write their plots."""
import json
from pathlib import Path

import pytest

from neurodyn.cli import main
from neurodyn.train import TrainConfig, train

DATASETS = Path(__file__).resolve().parents[2] / "datasets"
SHD, NMNIST = DATASETS / "shd_sample", DATASETS / "nmnist_sample"


@pytest.mark.skipif(not SHD.is_dir(), reason="sample data missing")
def test_train_on_shd_sample(tmp_path):
    m = train(TrainConfig(data=str(SHD), out=str(tmp_path), model={"hidden": [64]}, train={"epochs": 3, "seed": 0}))
    assert m["test_accuracy"] > 0.25  # chance is 0.05
    for f in ("curves.png", "raster.png", "confusion.png", "metrics.json", "model.pt", "config.toml"):
        assert (tmp_path / f).stat().st_size > 0


@pytest.mark.skipif(not NMNIST.is_dir(), reason="sample data missing")
def test_cli_train_on_nmnist_sample(tmp_path, capsys):
    assert main(["train", "--data", str(NMNIST), "--out", str(tmp_path), "--epochs", "3", "--hidden", "64"]) == 0
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["test_accuracy"] > 0.6  # chance is 0.1
    out = capsys.readouterr().out
    assert f"test accuracy: {m['test_accuracy']:.3f}" in out
    assert f"model of epoch 3: train accuracy {m['train_accuracy']:.3f}" in out

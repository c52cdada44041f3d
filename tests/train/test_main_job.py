"""The README's main job (configs/shd_rsnn.toml on the spoken-digit sample) learns what it says.

The test split is spoken by voices that are not in the training split; logistic regression on
binned spike counts reaches 0.55 there (benchmarks/results/accuracy.md), chance is 0.05.
"""
from pathlib import Path

from neurodyn.train import load_config, train

ROOT = Path(__file__).resolve().parents[2]


def test_main_job_reaches_its_accuracy_and_writes_its_plots(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the config's data path is relative to the repository root
    cfg = load_config(ROOT / "configs" / "shd_rsnn.toml", [f"out={tmp_path}"])
    assert cfg.model["recurrent"] and cfg.data.path == "datasets/shd_speech"
    metrics = train(cfg)
    assert metrics["epochs_trained"] == 40  # the step budget over the sample's 28 batches
    assert metrics["test_accuracy"] >= 0.75, metrics["test_accuracy"]
    for name in ("curves.png", "raster.png", "confusion.png", "metrics.json", "model.pt"):
        assert (tmp_path / name).stat().st_size > 0, name

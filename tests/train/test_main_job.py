"""The README's main job (configs/shd_rsnn.toml on the SHD-format sample) learns what it says.

The sample's classes 10-19 are classes 0-9 played backwards, so a model that only counts spikes
per channel is at ~50%; the recurrent network must tell the time courses apart.
"""
from pathlib import Path

from neurodyn.train import load_config, train

ROOT = Path(__file__).resolve().parents[2]


def test_main_job_reaches_its_accuracy_and_writes_its_plots(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # the config's data path is relative to the repository root
    cfg = load_config(ROOT / "configs" / "shd_rsnn.toml", [f"out={tmp_path}"])
    assert cfg.model["recurrent"] and cfg.data.path == "datasets/shd_sample"
    metrics = train(cfg)
    assert metrics["test_accuracy"] >= 0.9, metrics["test_accuracy"]
    for name in ("curves.png", "raster.png", "confusion.png", "metrics.json", "model.pt"):
        assert (tmp_path / name).stat().st_size > 0, name

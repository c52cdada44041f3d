"""The trainer with a registered non-spiking kind: any nn.Module from the registry trains, is
plotted, and gets its ``on_epoch_end`` hook after every epoch."""
import json

import pytest
import torch
from torch import nn

from neurodyn.errors import ConfigError
from neurodyn.train import TrainConfig, load_checkpoint, register_model, train
from neurodyn.train.models import _MODELS


class _Readout(nn.Module):
    def __init__(self, n_in, n_classes):
        super().__init__()
        self.lin = nn.Linear(n_in, n_classes)
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.int64))
        self.calls = []

    def forward(self, x):  # [T, B, n_in] -> [T, B, C]
        return self.lin(x)

    def on_epoch_end(self, epoch):
        self.calls.append(epoch)
        self.epochs_seen.fill_(epoch)


@pytest.fixture
def readout_kind():
    built = []

    def build(n_in, n_classes, cfg, dt_ms, backend):
        built.append(_Readout(n_in, n_classes))
        return built[-1]

    register_model("readout_for_test", build, {})
    yield built
    _MODELS.pop("readout_for_test", None)


def test_registered_kind_trains_with_hooks_and_plots(tiny_shd, tmp_path, readout_kind):
    cfg = TrainConfig(data=str(tiny_shd), out=str(tmp_path), model={"kind": "readout_for_test"},
                      train={"epochs": 3, "batch_size": 6, "lr": 0.05, "scheduler": "step", "step_size": 1,
                             "gamma": 0.5})
    m = train(cfg)
    assert readout_kind[0].calls == [1, 2, 3]
    assert int(load_checkpoint(tmp_path / "model.pt")["model"]["epochs_seen"]) == 3  # hook ran before the save
    assert m["history"]["lr"] == pytest.approx([0.05, 0.025, 0.0125])  # step schedule, lr in force per epoch
    assert m["test_accuracy"] > 0.9  # the classes are channel bands: linearly separable counts
    assert json.loads((tmp_path / "metrics.json").read_text())["test_accuracy"] == m["test_accuracy"]
    for f in ("curves.png", "raster.png", "confusion.png"):
        assert (tmp_path / f).stat().st_size > 0


def test_train_refuses_bad_setups(tiny_shd, tmp_path):
    with pytest.raises(ConfigError, match="no data"):
        train(TrainConfig(out=str(tmp_path)))
    with pytest.raises(ConfigError, match="is not SHD/SSC-format"):
        train(TrainConfig(data={"path": "datasets/nmnist_sample", "augment": True}, out=str(tmp_path)))
    with pytest.raises(ConfigError, match="spiking readout"):
        train(TrainConfig(data=str(tiny_shd), out=str(tmp_path), model={"hidden": [4]},
                          train={"epochs": 1, "loss": "spike_count"}))


def test_on_train_end_finalises_the_saved_model(tiny_shd, tmp_path):
    """A model's on_train_end (delays: round to integer steps) runs once after the last epoch;
    the reported accuracy and the checkpoint are those of the finalised model."""
    cfg = TrainConfig(data=str(tiny_shd), out=str(tmp_path),
                      model={"kind": "delays", "hidden": [8], "max_delay_ms": 40.0},
                      train={"epochs": 2, "batch_size": 6, "lr": 0.01})
    m = train(cfg)
    assert "test_accuracy_before_finalize" in m
    state = load_checkpoint(tmp_path / "model.pt")["model"]
    flags = [v for k, v in state.items() if k.endswith("_extra_state") and isinstance(v, dict) and "rounded" in v]
    assert flags and all(f["rounded"] and f["sigma"] == 0.0 for f in flags)


def test_event_list_batches_train_exactly_like_frames(tiny_shd, tmp_path):
    """``data.input = "events"`` feeds the fused stack event lists (``data.events_collate``), with
    the same numbers as padded frames: identical weights and metrics after training."""
    runs = {}
    for kind in ("events", "frames"):
        cfg = TrainConfig(data={"path": str(tiny_shd), "input": kind}, out=str(tmp_path / kind),
                          model={"hidden": [24], "dropout": 0.2}, train={"epochs": 2, "batch_size": 6})
        runs[kind] = (train(cfg), load_checkpoint(tmp_path / kind / "model.pt")["model"])
    (m_ev, w_ev), (m_fr, w_fr) = runs["events"], runs["frames"]
    assert m_ev["history"]["loss"] == m_fr["history"]["loss"] and m_ev["confusion"] == m_fr["confusion"]
    for name in w_fr:
        assert torch.equal(w_ev[name], w_fr[name]), name
    with pytest.raises(ConfigError, match="data.input"):
        TrainConfig(data={"path": str(tiny_shd), "input": "spikes"})

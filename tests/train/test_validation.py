"""Validation split, early stopping, the best checkpoint (kept across resume), warm-up, clipping."""
import math

import pytest
import torch
from torch import nn

from neurodyn.errors import ConfigError
from neurodyn.train import TrainConfig, load_checkpoint, register_model, train
from neurodyn.train.models import _MODELS


class _Breaks(nn.Module):
    """A linear readout that outputs zeros (accuracy = share of class 0) after epoch ``breaks_after``."""

    def __init__(self, n_in, n_classes, breaks_after):
        super().__init__()
        self.lin = nn.Linear(n_in, n_classes)
        self.breaks_after = breaks_after
        self.register_buffer("broken", torch.zeros((), dtype=torch.bool))
        self.initial = {k: v.clone() for k, v in self.state_dict().items()}

    def forward(self, x):                       # [T, B, n_in] -> [T, B, C]
        y = self.lin(x)
        return y * 0 if bool(self.broken) else y

    def on_epoch_end(self, epoch):
        if epoch >= self.breaks_after:
            self.broken.fill_(True)


@pytest.fixture
def breaking_kind():
    built = []

    def build(n_in, n_classes, cfg, dt_ms, backend):
        built.append(_Breaks(n_in, n_classes, cfg["breaks_after"]))
        return built[-1]

    register_model("breaks_for_test", build, {"breaks_after": 2})
    yield built
    _MODELS.pop("breaks_for_test", None)


def _cfg(data, out, **train_kw):
    return TrainConfig(data=str(data), out=str(out), model={"kind": "breaks_for_test"},
                       train={"epochs": 10, "batch_size": 6, "lr": 0.05, "val_fraction": 0.25,
                              "early_stopping": 2, **train_kw})


def _stop_after(epoch):
    def cb(ep, row):
        if ep == epoch:
            raise KeyboardInterrupt
    return cb


def test_early_stopping_keeps_the_best_validation_model(tiny_shd, tmp_path, breaking_kind):
    m = train(_cfg(tiny_shd, tmp_path), plots=False)
    val = m["history"]["val_acc"]
    best_epoch = 1 + val.index(max(val))
    assert best_epoch <= 2 and max(val) > 0.9            # the classes are separable until the model breaks
    assert m["epochs_trained"] == best_epoch + 2         # two epochs without a better validation accuracy
    assert m["model_epoch"] == best_epoch and m["val_accuracy"] == max(val)
    assert m["test_accuracy"] > 0.9                      # the kept model is the best one, not the broken last
    best = load_checkpoint(tmp_path / "best.pt")
    kept = load_checkpoint(tmp_path / "model.pt")
    assert best["epoch"] == best_epoch and not bool(best["model"]["broken"])
    for k in best["model"]:
        assert torch.equal(best["model"][k], kept["model"][k]), k
    assert kept["stopped_early"] and kept["best"] == {"epoch": best_epoch, "val_acc": max(val)}


def test_validation_samples_are_not_trained_on(tiny_shd, tmp_path, breaking_kind):
    """24 training samples, a quarter held out: each epoch trains on 18 (3 batches of 6)."""
    m = train(_cfg(tiny_shd, tmp_path, early_stopping=0, epochs=1), plots=False)
    assert len(m["history"]["val_acc"]) == 1
    ck = load_checkpoint(tmp_path / "model.pt")
    steps = {int(s["step"]) for s in ck["optimizer"]["state"].values()}
    assert steps == {3}


def test_resume_keeps_best_and_early_stopping(tiny_shd, tmp_path, breaking_kind):
    full = train(_cfg(tiny_shd, tmp_path / "full"), plots=False)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(tiny_shd, tmp_path / "cut"), on_epoch_end=_stop_after(3), plots=False)
    resumed = train(_cfg(tiny_shd, tmp_path / "cut"), resume=True, plots=False)
    assert resumed["resumed_from_epoch"] == 3
    for key in ("epochs_trained", "model_epoch", "val_accuracy", "test_accuracy"):
        assert resumed[key] == full[key], key
    for key in full["history"]:
        if key != "seconds":
            assert resumed["history"][key] == full["history"][key], key
    a, b = load_checkpoint(tmp_path / "full" / "model.pt"), load_checkpoint(tmp_path / "cut" / "model.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    again = train(_cfg(tiny_shd, tmp_path / "cut"), resume=True, plots=False)   # stopped early: nothing to do
    assert again["history"]["epoch"] == full["history"]["epoch"]


def test_warmup_then_cosine(tiny_shd, tmp_path, breaking_kind):
    m = train(_cfg(tiny_shd, tmp_path, early_stopping=0, val_fraction=0.0, epochs=5, warmup_epochs=2),
              plots=False)
    lr = 0.05
    expect = [lr / 3, 2 * lr / 3, lr, lr * 0.5 * (1 + math.cos(math.pi / 3)), lr * 0.5 * (1 + math.cos(2 * math.pi / 3))]
    assert m["history"]["lr"] == pytest.approx(expect)
    assert "val_acc" not in m["history"] and "val_accuracy" not in m


def test_grad_clip_bounds_the_update(tiny_shd, tmp_path, breaking_kind):
    """Adam's step is ~lr whatever the gradient's scale, unless the gradient is below its eps:
    clipped to 1e-12 the weights move by about lr * 1e-4 per step."""
    moved = {}
    for clip in (0.0, 1e-12):
        train(_cfg(tiny_shd, tmp_path / str(clip), early_stopping=0, val_fraction=0.0, epochs=1, grad_clip=clip,
                   scheduler="none"), plots=False)
        w = load_checkpoint(tmp_path / str(clip) / "model.pt")["model"]["lin.weight"]
        moved[clip] = float((w - breaking_kind[-1].initial["lin.weight"]).abs().max())
    assert moved[0.0] > 0.04 and moved[1e-12] < 4 * 0.05 * 1e-4


@pytest.mark.parametrize("kw, match", [
    ({"early_stopping": 3}, "needs a validation split"),
    ({"val_fraction": 1.0}, "train.val_fraction"),
    ({"val_fraction": float("nan")}, "train.val_fraction"),
    ({"grad_clip": -1.0}, "train.grad_clip"),
    ({"warmup_epochs": 6, "epochs": 6}, "train.warmup_epochs"),
    ({"early_stopping": -1, "val_fraction": 0.1}, "train.early_stopping"),
    ({"steps": -5}, "train.steps"),
])
def test_bad_validation_settings_are_named(kw, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig(train=kw)


def test_a_step_budget_chooses_the_epochs_from_the_data_size(tiny_shd, tmp_path, breaking_kind):
    """24 training samples in batches of 6 (18 after the validation split: 3 steps per epoch)."""
    m = train(_cfg(tiny_shd, tmp_path / "a", early_stopping=0, val_fraction=0.0, steps=10, epochs=1), plots=False)
    assert m["history"]["epoch"] == [1, 2, 3]                      # ceil(10 / 4) epochs of 4 steps
    steps = {int(s["step"]) for s in load_checkpoint(tmp_path / "a" / "model.pt")["optimizer"]["state"].values()}
    assert steps == {12}
    m = train(_cfg(tiny_shd, tmp_path / "b", early_stopping=0, steps=7, warmup_epochs=1), plots=False)
    assert m["history"]["epoch"] == [1, 2, 3]                      # ceil(7 / 3)
    assert m["history"]["lr"][:2] == pytest.approx([0.05 / 2, 0.05])  # warm-up, then the cosine over 2 epochs
    with pytest.raises(ConfigError, match="train.warmup_epochs = 3 leaves no epoch"):
        train(_cfg(tiny_shd, tmp_path / "c", early_stopping=0, val_fraction=0.0, steps=8, warmup_epochs=3), plots=False)


def test_augmentation_settings_reach_the_training_split(tiny_shd):
    from neurodyn.train.config import DataConfig
    from neurodyn.train.trainer import _datasets
    data = DataConfig(path=str(tiny_shd), augment=True, aug_channel_shift=3, aug_time_stretch=0.1, aug_drop=0.2,
                      aug_time_shift_us=5000.0)
    train_ds, test_ds, rng = _datasets(data, seed=0, rank=0)
    aug = train_ds.augment.aug
    assert (aug.max_shift, aug.max_stretch, aug.p_drop, aug.max_time_shift_us) == (3, 0.1, 0.2, 5000.0)
    assert test_ds.augment is None and rng is not None


@pytest.mark.parametrize("key, value", [("aug_drop", 1.5), ("aug_time_stretch", -0.1), ("aug_channel_shift", -1),
                                        ("aug_time_shift_us", float("inf"))])
def test_bad_augmentation_settings_are_named(key, value):
    with pytest.raises(ConfigError, match=f"data.{key}"):
        TrainConfig(data={"path": "x", key: value})

"""Losses against plain per-sample loops; padding steps never count."""
import pytest
import torch
from torch.nn import functional as F

from neurodyn.errors import ConfigError, ShapeError
from neurodyn.train.losses import class_scores, loss_fn, readout_logits, running_mean, spike_counts

T, B, C = 7, 4, 3


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    v = torch.randn(T, B, C, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 2, 1, 2])
    lengths = torch.tensor([7, 3, 1, 5])
    return v, y, lengths


def _per_sample(v, lengths):
    return [v[: int(n), b] for b, n in enumerate(lengths)]


def test_mean_membrane_is_ce_of_the_mean_over_own_steps(batch):
    v, y, lengths = batch
    logits = torch.stack([s.mean(0) for s in _per_sample(v, lengths)])
    torch.testing.assert_close(readout_logits(v, lengths), logits)
    torch.testing.assert_close(loss_fn("mean_membrane")(v, y, lengths), F.cross_entropy(logits, y))


def test_per_step_averages_ce_of_the_running_mean(batch):
    v, y, lengths = batch
    per = []
    for b, s in enumerate(_per_sample(v, lengths)):
        steps = [F.cross_entropy(s[: t + 1].mean(0, keepdim=True), y[b : b + 1]) for t in range(s.shape[0])]
        per.append(torch.stack(steps).mean())
    torch.testing.assert_close(loss_fn("per_step")(v, y, lengths), torch.stack(per).mean())
    # the running mean at each sample's last step is the mean-membrane score
    rm = running_mean(v)
    torch.testing.assert_close(rm[lengths - 1, torch.arange(B)], readout_logits(v, lengths))
    torch.testing.assert_close(class_scores(v, lengths, "per_step"), readout_logits(v, lengths))


def test_spike_count_counts_own_steps_and_needs_spikes(batch):
    v, y, lengths = batch
    s = (v > 0.3).to(v.dtype)
    counts = torch.stack([x.sum(0) for x in _per_sample(s, lengths)])
    torch.testing.assert_close(spike_counts(s, lengths), counts)
    torch.testing.assert_close(loss_fn("spike_count")(s, y, lengths), F.cross_entropy(counts, y))
    torch.testing.assert_close(class_scores(s, lengths, "spike_count"), counts)
    with pytest.raises(ConfigError, match="spiking readout"):
        loss_fn("spike_count")(v, y, lengths)


@pytest.mark.parametrize("name", ["mean_membrane", "spike_count", "per_step"])
def test_padding_does_not_count(batch, name):
    v, y, lengths = batch
    if name == "spike_count":
        v = (v > 0).to(v.dtype)
    w = v.clone()
    pad = torch.arange(T)[:, None] >= lengths[None, :]
    w[pad] = 1.0 - w[pad] if name == "spike_count" else w[pad] * 100 + 5
    assert not torch.equal(v, w)
    torch.testing.assert_close(loss_fn(name)(v, y, lengths), loss_fn(name)(w, y, lengths))


def test_losses_give_gradients_only_through_own_steps(batch):
    v, y, lengths = batch
    v = v.clone().requires_grad_(True)
    loss_fn("per_step")(v, y, lengths).backward()
    pad = torch.arange(T)[:, None] >= lengths[None, :]
    assert torch.all(v.grad[pad] == 0) and torch.all(v.grad[~pad].abs().sum(-1) > 0)


def test_bad_names_and_shapes():
    with pytest.raises(ConfigError, match="unknown loss 'mse'"):
        loss_fn("mse")
    with pytest.raises(ConfigError, match="unknown loss"):
        class_scores(torch.zeros(2, 1, 3), torch.tensor([2]), "mse")
    with pytest.raises(ShapeError, match=r"\[T, B, C\]"):
        readout_logits(torch.zeros(2, 3), torch.tensor([2, 2]))

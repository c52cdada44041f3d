"""The trainer model kind 'delays': recipe config, kernel-width schedule over epochs, histogram plot."""
from pathlib import Path

import pytest
import torch
from torch import nn

import neurodyn.nn as ndn
from neurodyn.delays import DelaySNN, TimeSharedDropout, delay_snn, fold_batchnorm, plot_delay_histograms
from neurodyn.errors import ConfigError
from neurodyn.nn.delays import DelayedLinear, delayed_layers
from neurodyn.train.config import load_config
from neurodyn.train.models import build_model

ROOT = Path(__file__).resolve().parents[2]


def test_recipe_config_builds_the_papers_network():
    cfg = load_config(ROOT / "configs" / "shd_delays.toml")
    assert cfg.data.channel_pool == 5 and cfg.dt_ms == 10.0
    net = build_model(cfg.model, 140, 20, cfg.dt_ms)
    assert isinstance(net, DelaySNN)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["DelayedLinear", "MultiStep", "LIF", "TimeSharedDropout"] * 2 + ["DelayedLinear", "LI"]
    dl = delayed_layers(net)
    assert [(m.in_features, m.out_features) for m in dl] == [(140, 256), (256, 256), (256, 20)]
    assert all(m.max_delay == 25 and m.sigma == 12.5 and m.bias is None for m in dl)
    lif = net[2]
    # SpikingJelly LIF(tau=1.005 steps, decay_input=False): v <- v (1 - 1/tau) + x, hard reset
    decay, gain = lif.coefficients()[:2]
    assert float(decay) == pytest.approx(1 - 10.0 / 10.05, rel=1e-5) and float(gain) == 1.0 and lif.reset_mode == "zero"
    plain = build_model({**cfg.model, "delays": False}, 140, 20, cfg.dt_ms)
    assert not delayed_layers(plain) and [type(m).__name__ for m in plain][0] == "Linear"


def _tiny(**kw) -> DelaySNN:
    torch.manual_seed(0)
    return delay_snn(6, [5], 3, dt_ms=1.0, max_delay_ms=8.0, sigma_init=4.0, sigma_final=0.5, sigma_decay_epochs=3,
                     **kw)


def _fake_epoch(net: nn.Module, x: torch.Tensor, batches: int = 2) -> None:
    net.train()
    for _ in range(batches):
        net(x).sum().backward()
    net.eval()
    with torch.no_grad():
        net(x)


def test_schedule_follows_a_loop_that_evaluates_every_epoch():
    net = _tiny()
    x = (torch.rand(12, 2, 6) < 0.3).float()
    expect = [4.0 * (0.5 / 4.0) ** (min(e, 3) / 3) for e in range(5)]
    seen = []
    for _ in range(5):
        _fake_epoch(net, x)
        seen.append(delayed_layers(net)[0].sigma)
    # the sigma used during epoch e (0-based) is sigma_at(e)
    assert seen == pytest.approx(expect)
    # resume: a fresh model loading the state continues the schedule at the next training batch
    again = _tiny()
    again.load_state_dict(net.state_dict())
    assert again.epochs_done == 4
    _fake_epoch(again, x)
    assert delayed_layers(again)[0].sigma == pytest.approx(0.5) and again.epochs_done == 5


def test_explicit_hooks_take_over_and_round_at_the_end():
    net = _tiny()
    x = (torch.rand(12, 2, 6) < 0.3).float()
    assert net.on_epoch_end(1) == pytest.approx(4.0 * (0.5 / 4.0) ** (1 / 3))
    for _ in range(3):
        _fake_epoch(net, x)  # evaluations no longer advance the count
    assert net.epochs_done == 1
    net.on_train_end()
    assert all(m.rounded for m in delayed_layers(net))


def test_time_shared_dropout_masks_whole_neurons():
    d = TimeSharedDropout(0.5)
    y = d(torch.ones(7, 4, 50))
    assert bool((y == y[0]).all()) and set(y.unique().tolist()) == {0.0, 2.0}
    d.eval()
    assert torch.equal(d(torch.ones(3, 2, 5)), torch.ones(3, 2, 5))


def test_bad_options_are_errors():
    with pytest.raises(ConfigError, match="hidden"):
        delay_snn(4, [], 2)
    with pytest.raises(ConfigError, match="neuron"):
        delay_snn(4, [3], 2, neuron="li")
    with pytest.raises(ConfigError, match="decay_epochs"):
        delay_snn(4, [3], 2, sigma_decay_epochs=0)
    with pytest.raises(ConfigError, match="model.max_delay"):
        load_config(ROOT / "configs" / "shd_delays.toml", ["model.max_delay=3"])


def test_delay_histogram_png(tmp_path):
    net = nn.Sequential(DelayedLinear(8, 6, max_delay=10), ndn.LIF(), DelayedLinear(6, 2, max_delay=10))
    out = plot_delay_histograms(net, tmp_path / "delays.png", dt_ms=10.0)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    with pytest.raises(ConfigError, match="no DelayedLinear"):
        plot_delay_histograms(nn.Sequential(ndn.Linear(2, 2)), tmp_path / "x.png")


def test_batchnorm_folds_into_the_delayed_connection():
    torch.manual_seed(4)
    net = delay_snn(10, [8, 8], 3, dt_ms=1.0, max_delay_ms=6.0, sigma_decay_epochs=2, tau_mem=3.0,
                    integration="exact").double()
    x = (torch.rand(30, 16, 10) < 0.3).double()
    net.train()
    for _ in range(3):
        net(x)  # running statistics that differ from the initial (0, 1)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm1d):
                m.weight.uniform_(0.5, 2.0)
                m.bias.uniform_(-0.5, 0.5)
    net.on_train_end()
    net.eval()
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, ndn.MultiStep) for m in folded)
    with torch.no_grad():
        ref, got = net(x), folded(x)
        assert net[2](net[1](net[0](x))).sum() > 10  # hidden spikes happen
    torch.testing.assert_close(got, ref, rtol=1e-10, atol=1e-10)
    assert all(m.rounded for m in delayed_layers(folded))
    with pytest.raises(ConfigError, match="must follow"):
        fold_batchnorm(nn.Sequential(ndn.MultiStep(nn.BatchNorm1d(3))))

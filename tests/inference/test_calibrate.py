"""Threshold calibration meets its accuracy target on held-out data (synthetic evidence streams)."""
import numpy as np
import pytest
import torch
from torch.nn import functional as F

from neurodyn.errors import ConfigError
from neurodyn.inference import calibrate_threshold, confidence_trace, exit_from_trace, threshold_sweep


def _stream(n, seed, T=40, C=5):
    """Readouts like a trained network's: noise until a per-sample onset (early for most samples),
    then a strong drive to one class (the label for 85% of samples)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (n,), generator=g)
    wrong = torch.rand(n, generator=g) < 0.15
    target = torch.where(wrong, (y + torch.randint(1, C, (n,), generator=g)) % C, y)
    onset = (T * torch.rand(n, generator=g) ** 2).long()
    on = (torch.arange(T)[:, None] >= onset[None, :]).double()
    v = torch.randn(T, n, C, generator=g, dtype=torch.float64) + 4.0 * on[..., None] * F.one_hot(target, C)
    lengths = torch.randint(T // 2, T + 1, (n,), generator=g)
    return v, y, lengths


def _loss_and_steps(v, y, lengths, thr):
    conf, pred = confidence_trace(v)
    steps, p = exit_from_trace(conf, pred, lengths, thr)
    full = exit_from_trace(conf, pred, lengths, 1.0)[1]
    return float((full == y).double().mean() - (p == y).double().mean()), steps.double().mean().item()


@pytest.mark.parametrize("rule", ["net", "harm"])
def test_calibrated_threshold_meets_target_on_held_out_data(rule):
    # 3000 calibration samples; the held-out set is large so its loss is close to the true loss.
    v_cal, y_cal, l_cal = _stream(3000, seed=1)
    v_test, y_test, l_test = _stream(20000, seed=2)
    cal = calibrate_threshold(v_cal, y_cal, l_cal, max_loss=0.01, rule=rule)
    loss, steps = _loss_and_steps(v_test, y_test, l_test, cal.threshold)
    assert loss <= 0.01
    full_steps = l_test.double().mean().item()
    assert steps < 0.75 * full_steps, "calibration should find a real saving here, not fall back to 1.0"
    assert cal.mean_steps < cal.full_mean_steps


def test_plain_net_rule_meets_target_on_calibration_data_and_every_higher_threshold():
    v, y, lengths = _stream(1000, seed=3)
    cal = calibrate_threshold(v, y, lengths, max_loss=0.02, confidence_level=None, rule="net")
    conf, pred = confidence_trace(v)
    curve = threshold_sweep(conf, pred, y, lengths)
    above = curve.param >= cal.threshold
    assert np.all(curve.accuracy[-1] - curve.accuracy[above] <= 0.02 + 1e-12)
    # ... and it is the lowest such threshold: the candidate just below breaks the target somewhere above it.
    k = int(np.searchsorted(curve.param, cal.threshold))
    assert k > 0 and curve.accuracy[-1] - curve.accuracy[k - 1] > 0.02
    assert cal.accuracy == pytest.approx(curve.accuracy[k])


def test_confidence_bound_is_more_cautious():
    v, y, lengths = _stream(500, seed=4)
    plain = calibrate_threshold(v, y, lengths, max_loss=0.01, confidence_level=None)
    bounded = calibrate_threshold(v, y, lengths, max_loss=0.01, confidence_level=0.95)
    assert bounded.threshold >= plain.threshold
    assert calibrate_threshold(v, y, lengths, max_loss=0.0, rule="harm").mean_steps >= bounded.mean_steps


def test_small_calibration_sets_cannot_certify_small_losses():
    # 100 samples: even with no sample harmed, Wilson's bound on the harm rate is ~2.6% > 0.5%.
    v, y, lengths = _stream(100, seed=5)
    cal = calibrate_threshold(v, y, lengths, max_loss=0.005, rule="harm")
    assert cal.threshold == 1.0 and cal.mean_steps == cal.full_mean_steps


def test_wilson_bounds_cover_the_rate():
    from neurodyn.inference.calibrate import wilson_bounds
    lo, hi = wilson_bounds(np.array([0.0, 0.1, 1.0]), 100, 1.96)
    assert lo[0] == 0.0 and 0.03 < hi[0] < 0.04  # 0/100: upper ~ z^2 / (n + z^2)
    assert lo[1] < 0.1 < hi[1] and hi[2] == pytest.approx(1.0)
    lo0, hi0 = wilson_bounds(np.array([0.1]), 100, 0.0)
    assert lo0[0] == pytest.approx(0.1) and hi0[0] == pytest.approx(0.1)


def test_calibration_errors():
    v, y, lengths = _stream(10, seed=0)
    with pytest.raises(ConfigError, match="max_loss"):
        calibrate_threshold(v, y, lengths, max_loss=5.0)
    with pytest.raises(ConfigError, match="rule"):
        calibrate_threshold(v, y, lengths, rule="vibes")
    with pytest.raises(ConfigError, match="confidence_level"):
        calibrate_threshold(v, y, lengths, confidence_level=0.5)

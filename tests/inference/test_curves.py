"""The exact threshold sweep equals replaying the exit rule threshold by threshold."""
import numpy as np
import pytest
import torch

from neurodyn.inference import exit_from_trace, fixed_steps_curve, threshold_sweep
from neurodyn.inference.curves import fixed_steps


def _traces(T=30, B=40, C=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, C, (B,), generator=g)
    v = torch.randn(T, B, C, generator=g) + 0.6 * torch.nn.functional.one_hot(y, C).double()
    from neurodyn.inference import confidence_trace
    conf, pred = confidence_trace(v, "max_softmax")
    conf = torch.round(conf * 50) / 50  # many ties, the hard case
    lengths = torch.randint(0, T + 1, (B,), generator=g)
    return conf, pred, y, lengths


@pytest.mark.parametrize("min_steps", [1, 4])
def test_sweep_equals_replay_at_every_threshold(min_steps):
    conf, pred, y, lengths = _traces()
    full_ok = exit_from_trace(conf, pred, lengths, 1.0, min_steps)[1] == y
    curve = threshold_sweep(conf, pred, y, lengths, min_steps)
    assert curve.param[-1] == 1.0 and curve.param[0] == 0.0
    mids = (curve.param[1:] + curve.param[:-1]) / 2
    for thr, expect_at in [(t, i) for i, t in enumerate(curve.param)] + [(t, i) for i, t in enumerate(mids)]:
        steps, p = exit_from_trace(conf, pred, lengths, float(thr), min_steps)
        ok = p == y
        assert curve.accuracy[expect_at] == pytest.approx(ok.double().mean().item(), abs=1e-12)
        assert curve.mean_steps[expect_at] == pytest.approx(steps.double().mean().item(), abs=1e-12)
        assert curve.harm_rate[expect_at] == pytest.approx((full_ok & ~ok).double().mean().item(), abs=1e-12)
    assert np.all(np.diff(curve.mean_steps) >= 0)
    assert curve.mean_steps[-1] == pytest.approx(lengths.double().mean().item())


def test_exit_rule_by_hand():
    conf = torch.tensor([[0.2, 0.9], [0.7, 0.1], [0.95, 0.3]], dtype=torch.float64)  # [T=3, B=2]
    pred = torch.tensor([[1, 0], [2, 0], [3, 1]])
    steps, p = exit_from_trace(conf, pred, torch.tensor([3, 3]), 0.5)
    assert steps.tolist() == [2, 1] and p.tolist() == [2, 0]
    steps, p = exit_from_trace(conf, pred, torch.tensor([3, 3]), 0.5, min_steps=3)
    assert steps.tolist() == [3, 3] and p.tolist() == [3, 1]
    steps, p = exit_from_trace(conf, pred, torch.tensor([1, 0]), 0.5)  # lengths cut first
    assert steps.tolist() == [1, 0] and p.tolist() == [1, 0]


def test_fixed_steps_curve():
    conf, pred, y, lengths = _traces()
    c = fixed_steps_curve(pred, y, lengths, [1, 5, 30])
    for n, acc, ms in zip(c.param, c.accuracy, c.mean_steps):
        steps, p = fixed_steps(pred, lengths, int(n))
        assert ms == pytest.approx(lengths.clamp(max=int(n)).double().mean().item())
        assert acc == pytest.approx((p == y).double().mean().item())

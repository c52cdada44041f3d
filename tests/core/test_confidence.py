"""Confidence measures: the one definition against textbook formulas, in range, and the kernel's loop statistics."""
import math

import numpy as np
import pytest
import torch

from neurodyn.errors import ConfigError, ShapeError
from neurodyn.inference import MEASURES, confidence, confidence_trace
from neurodyn.core.confidence import softmax_stats, softmax_stats_torch


def _logits(shape=(50, 7)):
    z = torch.randn(*shape, dtype=torch.float64) * 3
    z[0] = 0.0  # uniform
    z[1, 2] = 1e3  # one-hot to the last bit
    return z


def test_measures_equal_textbook_formulas():
    z = _logits()
    p = torch.softmax(z, -1)
    top = p.topk(2, -1).values
    h = -(p * torch.log(p.clamp_min(1e-300))).sum(-1)
    torch.testing.assert_close(confidence(z, "max_softmax"), top[:, 0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(confidence(z, "margin"), top[:, 0] - top[:, 1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(confidence(z, "entropy"), 1 - h / math.log(7), rtol=1e-12, atol=1e-12)
    assert confidence(z[:1], "max_softmax").item() == pytest.approx(1 / 7)
    assert confidence(z[:1], "entropy").abs().item() < 1e-12


@pytest.mark.parametrize("measure", list(MEASURES))
def test_measures_lie_in_unit_interval_also_in_float32(measure):
    z = torch.cat([_logits(), torch.randn(200, 7) * 50]).float()
    c = confidence(z, measure)
    assert (c >= -1e-6).all() and (c <= 1).all()  # <= 1 exactly: threshold 1.0 never fires


def test_loop_statistics_equal_torch_statistics():
    z = _logits()
    n = 3.0
    got = np.array([softmax_stats((z[i] * n).numpy(), n) for i in range(z.shape[0])])
    want = torch.stack(list(softmax_stats_torch(z)) + [z.argmax(-1).double()], 1).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_trace_is_confidence_of_running_mean():
    v = torch.randn(9, 4, 5)
    conf, pred = confidence_trace(v, "margin")
    for t in range(9):
        z = v[: t + 1].double().mean(0)
        torch.testing.assert_close(conf[t], confidence(z, "margin"))
        assert torch.equal(pred[t], z.argmax(-1))


def test_confidence_errors():
    with pytest.raises(ShapeError, match="C >= 2"):
        confidence(torch.zeros(3, 1))
    with pytest.raises(ConfigError, match="unknown confidence measure"):
        confidence(torch.zeros(3, 2), "nope")


@pytest.mark.parametrize("measure", list(MEASURES))
def test_s_limits_rule_out_exactly_what_cannot_be_confident(measure):
    from neurodyn.core.confidence import torch_limit
    z = torch.cat([_logits((400, 6)), torch.zeros(5, 6), torch.randn(100, 6) * 0.01, torch.randn(100, 6) * 30])
    z1, z2, S, Q = softmax_stats_torch(z)
    e2 = torch.exp(z2 - z1)
    conf = confidence(z, measure)
    for thr in (0.05, 0.3, 0.6, 0.9, 0.999):
        lim = torch_limit(measure)(torch.tensor(thr, dtype=torch.float64), e2, math.log(6)) + 0 * S
        assert (conf[S >= lim] <= thr + 1e-12).all()  # beyond the limit: never confident
        assert (conf[1 + e2 >= lim] <= thr + 1e-12).all()  # the top-2 test is a special case
        # ... and the limit is tight: U(lim) == thr, so confident samples lie below it.
        assert (S[conf > thr + 1e-9] < lim[conf > thr + 1e-9]).all()


def test_partial_sums_stop_at_the_limit():
    from neurodyn.core.confidence import softmax_sums
    acc = np.array([-3.0, 0.0, -1.0, -2.0])  # top two: classes 1, 2
    full = 1 + math.exp(-1) + math.exp(-2) + math.exp(-3)
    S, Q = softmax_sums(acc, 1.0, 0.0, -1.0, 1, 2, math.inf)
    assert S == pytest.approx(full)
    assert Q == pytest.approx(-math.exp(-1) - 2 * math.exp(-2) - 3 * math.exp(-3))
    S_cut, _ = softmax_sums(acc, 1.0, 0.0, -1.0, 1, 2, 1.4)
    assert S_cut == pytest.approx(1 + math.exp(-1) + math.exp(-3))  # stopped after class 0
    S_top, _ = softmax_sums(acc, 1.0, 0.0, -1.0, 1, 2, 1.3)
    assert S_top == pytest.approx(1 + math.exp(-1))  # the top two alone reach the limit


def test_top2_ties_go_to_the_lowest_index():
    from neurodyn.core.confidence import top2
    assert top2(np.array([1.0, 1.0, 0.0])) == (0, 1)
    assert top2(np.array([0.0, 2.0, 2.0, 1.0])) == (1, 2)
    assert top2(np.array([3.0, 1.0, 2.0])) == (0, 2)

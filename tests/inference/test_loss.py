"""anytime_loss: cross-entropy of every step's running-mean readout, per-sample lengths respected."""
import pytest
import torch
from torch.nn import functional as F

from neurodyn.errors import ConfigError, ShapeError
from neurodyn.inference import anytime_loss


def _explicit(v, y, lengths, weighting):
    per = []
    for b in range(v.shape[1]):
        L = int(lengths[b])
        terms, ws = [], []
        for t in range(L):
            z = v[: t + 1, b].mean(0)
            terms.append(F.cross_entropy(z[None], y[b:b + 1]))
            ws.append(1.0 if weighting == "uniform" else t + 1.0)
        w = torch.tensor(ws, dtype=v.dtype)
        per.append((torch.stack(terms) * w).sum() / w.sum())
    return torch.stack(per).mean()


@pytest.mark.parametrize("weighting", ["uniform", "linear"])
def test_anytime_loss_matches_explicit_loops_with_gradients(weighting):
    v = torch.randn(12, 5, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (5,))
    lengths = torch.tensor([12, 3, 1, 7, 12])
    got = anytime_loss(v, y, lengths, weighting)
    want = _explicit(v, y, lengths, weighting)
    torch.testing.assert_close(got, want)
    g1, = torch.autograd.grad(got, v)
    g2, = torch.autograd.grad(want, v)
    torch.testing.assert_close(g1, g2)
    assert g1[3:, 1].abs().sum() == 0  # steps past a sample's length do not matter


def test_single_step_is_cross_entropy():
    v = torch.randn(1, 6, 3)
    y = torch.randint(0, 3, (6,))
    torch.testing.assert_close(anytime_loss(v, y), F.cross_entropy(v[0], y))


def test_anytime_loss_errors():
    v, y = torch.zeros(4, 2, 3), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ShapeError, match="lengths"):
        anytime_loss(v, y, torch.tensor([0, 4]))
    with pytest.raises(ConfigError, match="weighting"):
        anytime_loss(v, y, weighting="quadratic")
    with pytest.raises(ShapeError, match="readout"):
        anytime_loss(torch.zeros(4, 3), y)

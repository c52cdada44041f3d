"""Oracle exits on hand-made prediction traces."""
import pytest
import torch

from neurodyn.errors import ConfigError
from neurodyn.inference import oracle_steps, oracle_summary


def test_oracles_by_hand():
    # T=4, B=4, label 1 for all; sample 0: wrong, right, wrong, right; sample 1: right throughout;
    # sample 2: never right; sample 3: right at step 2, length 2.
    pred = torch.tensor([[0, 1, 0, 0], [1, 1, 0, 1], [0, 1, 0, 0], [1, 1, 0, 0]]).long()
    y = torch.ones(4, dtype=torch.long)
    lengths = torch.tensor([4, 4, 3, 2])
    s, ok = oracle_steps(pred, y, lengths, "first_correct")
    assert s.tolist() == [2, 1, 3, 2] and ok.tolist() == [True, True, False, True]
    s, ok = oracle_steps(pred, y, lengths, "stays_correct")
    assert s.tolist() == [4, 1, 3, 2] and ok.tolist() == [True, True, False, True]
    summ = oracle_summary(pred, y, lengths)
    assert summ["first_correct"]["mean_steps"] == pytest.approx(2.0)
    assert summ["stays_correct"]["accuracy"] == pytest.approx(0.75)


def test_stays_correct_accuracy_is_full_length_accuracy():
    g = torch.Generator().manual_seed(3)
    pred = torch.randint(0, 3, (20, 50), generator=g)
    y = torch.randint(0, 3, (50,), generator=g)
    lengths = torch.randint(1, 21, (50,), generator=g)
    _, ok = oracle_steps(pred, y, lengths, "stays_correct")
    final = pred.gather(0, (lengths - 1)[None]).squeeze(0)
    assert torch.equal(ok, final == y)
    s_first, _ = oracle_steps(pred, y, lengths, "first_correct")
    s_stay, _ = oracle_steps(pred, y, lengths, "stays_correct")
    assert (s_first <= s_stay).all()


def test_unknown_oracle():
    with pytest.raises(ConfigError, match="unknown oracle"):
        oracle_steps(torch.zeros(2, 2).long(), torch.zeros(2).long(), torch.ones(2).long(), "psychic")

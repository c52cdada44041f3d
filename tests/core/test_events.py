"""core.events.Events: event-list input, its checks, and conversions to and from frames."""
import numpy as np
import pytest
import torch

from neurodyn.nn.convert import to_network
from neurodyn.core import Events
from neurodyn.errors import ShapeError


def _frames(T=6, B=3, K=9, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, K, generator=g) < 0.3).float() * torch.randint(1, 4, (T, B, K), generator=g).float()
    x[0, 0, 0] = -0.0  # no event
    return x


def test_from_dense_is_sample_major_and_round_trips():
    x = _frames()
    ev = Events.from_dense(x)
    assert ev.shape == (6, 3, 9) and len(ev) == int(torch.count_nonzero(x))
    for b in range(3):
        for t in range(6):
            r = b * 6 + t
            ch = ev.idx[ev.ptr[r]:ev.ptr[r + 1]]
            assert ch.tolist() == torch.nonzero(x[t, b]).flatten().tolist()
            assert np.array_equal(ev.val[ev.ptr[r]:ev.ptr[r + 1]], x[t, b, ch].numpy())
    assert torch.equal(ev.to_dense(), x)
    assert ev.to(torch.float64).val.dtype == np.float64 and ev.dtype == torch.float32


def test_from_coo_sorts_and_sums_duplicates():
    # (sample, step, channel): out of order, one channel twice in a step, one pair summing to 0
    s = [1, 0, 1, 0, 0, 0]
    t = [2, 0, 2, 1, 1, 0]
    c = [4, 3, 4, 0, 0, 1]
    v = [1.0, 2.0, 1.0, 1.5, -1.5, 0.5]
    ev = Events.from_coo(s, t, c, v, T=3, B=2, n_channels=5)
    dense = torch.zeros(3, 2, 5)
    dense[2, 1, 4] = 2.0
    dense[0, 0, 3] = 2.0
    dense[0, 0, 1] = 0.5
    assert torch.equal(ev.to_dense(), dense)
    assert ev.idx[ev.ptr[0]:ev.ptr[1]].tolist() == [1, 3]  # ascending within the step
    spikes = Events.from_coo([0, 0], [1, 1], [2, 2], None, T=2, B=1, n_channels=3)
    assert spikes.val.tolist() == [2.0]  # spike counts


@pytest.mark.parametrize("change, match", [
    (lambda p, i, v: (p, i[::-1].copy(), v), "ascending"),
    (lambda p, i, v: (p, np.where(i == i.max(), 9, i).astype(np.int32), v), "channels must lie"),
    (lambda p, i, v: (p[:-1], i, v), "B\\*T \\+ 1"),
    (lambda p, i, v: (p, i.astype(np.int64), v), "int32"),
    (lambda p, i, v: (p, i, np.where(v > 0, np.nan, v).astype(np.float32)), "finite"),
    (lambda p, i, v: (p, i, v[:-1]), "rise from 0"),
])
def test_bad_event_lists_are_one_clear_error(change, match):
    ev = Events.from_dense(_frames())
    p, i, v = change(ev.ptr.copy(), ev.idx.copy(), ev.val.copy())
    with pytest.raises(ShapeError, match=match):
        Events(p, i, v, 6, 3, 9)


def test_from_coo_and_from_dense_reject_bad_input():
    with pytest.raises(ShapeError, match="channel out of range"):
        Events.from_coo([0], [0], [5], None, T=1, B=1, n_channels=5)
    with pytest.raises(ShapeError, match="differ in length"):
        Events.from_coo([0, 0], [0], [1], None, T=1, B=1, n_channels=5)
    with pytest.raises(ShapeError, match="float32/float64 frames"):
        Events.from_dense(torch.zeros(2, 3, dtype=torch.float32))


def test_network_runs_events_like_frames():
    import neurodyn.nn as ndn
    from neurodyn.core import Network
    torch.manual_seed(0)
    model = torch.nn.Sequential(ndn.Linear(9, 12), ndn.LIF(tau_mem=3.0), ndn.Linear(12, 4), ndn.LI(tau_mem=5.0))
    net = to_network(model)
    x = _frames()
    steps = torch.tensor([6, 2, 0])
    a, b = net.run(x, steps), net.run(Events.from_dense(x), steps)
    assert torch.equal(a.out, b.out) and a.out.abs().sum() > 0
    with pytest.raises(ShapeError, match="channels"):
        net.run(Events.from_dense(torch.zeros(2, 1, 5)))

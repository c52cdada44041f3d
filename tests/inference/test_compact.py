"""Early exit on the dense torch path: batch compaction changes the cost, never the result."""
import pytest
import torch

import neurodyn.nn as ndn
from neurodyn.nn.convert import to_network
from neurodyn.core import Network
from neurodyn.errors import ConfigError
from neurodyn.inference import EarlyExit, confidence_trace, exit_from_trace, run_dense_early_exit


def _net(recurrent=False):
    hidden = ndn.Recurrent(40, 32, ndn.LIF(tau_mem=5.0)) if recurrent else torch.nn.Sequential(
        ndn.Linear(40, 32), ndn.CUBALIF(tau_syn=3.0, tau_mem=5.0))
    mods = list(hidden) if isinstance(hidden, torch.nn.Sequential) else [hidden]
    net = torch.nn.Sequential(*mods, torch.nn.Dropout(0.3), ndn.Linear(32, 6), ndn.LI(tau_mem=10.0)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(5.0)
    return net


def _data(T=24, B=12):
    x = (torch.rand(T, B, 40) < 0.1).double()
    lengths = torch.randint(0, T + 1, (B,))
    lengths[0] = T
    return x, lengths


def _threshold(net, x, lengths, measure, gamma=1.0):
    with torch.no_grad():
        conf, _ = confidence_trace(net(x), measure, gamma)
    vals = torch.unique(conf[torch.arange(x.shape[0])[:, None] < lengths[None, :]])
    k = len(vals) // 2
    return float(vals[k] + vals[k + 1]) / 2  # between observed values: no ties


@pytest.mark.parametrize("recurrent,measure,gamma", [(False, "max_softmax", 1.0), (False, "entropy", 0.0),
                                                     (True, "margin", 0.5)])
def test_compacted_equals_uncompacted_equals_replay(recurrent, measure, gamma):
    net = _net(recurrent)
    x, lengths = _data()
    ee = EarlyExit(_threshold(net, x, lengths, measure, gamma), measure, min_steps=3, gamma=gamma)
    comp = run_dense_early_exit(net, x, ee, lengths, chunk=5, compact=True)
    full = run_dense_early_exit(net, x, ee, lengths, chunk=5, compact=False)
    one = run_dense_early_exit(net, x, ee, lengths, chunk=1, compact=True)
    for other in (full, one):
        assert torch.equal(comp.steps, other.steps) and torch.equal(comp.pred, other.pred)
        torch.testing.assert_close(comp.confidence, other.confidence, rtol=1e-12, atol=1e-12)
    # ... and all equal the exit rule replayed on one full-length run of the same model.
    with torch.no_grad():
        conf, pred = confidence_trace(net(x), measure, gamma)
    s, p = exit_from_trace(conf, pred, lengths, ee.threshold, ee.min_steps)
    assert torch.equal(comp.steps, s) and torch.equal(comp.pred, p)
    assert (comp.steps < lengths).any() and (comp.steps == lengths).any()
    # Compaction is what saves the work: only the steps run are computed (up to chunk rounding).
    assert one.sample_steps == int(lengths.sum()) - int((lengths - one.steps).sum())
    assert comp.sample_steps < full.sample_steps


def test_dense_exit_equals_event_core_exit():
    net = torch.nn.Sequential(ndn.Linear(40, 32), ndn.LIF(tau_mem=5.0), ndn.Linear(32, 10),
                              ndn.LI(tau_mem=10.0)).double().eval()  # the signature tests/core compiles
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(6.0)
    x, lengths = _data(B=10)
    ee = EarlyExit(_threshold(net, x, lengths, "max_softmax"), "max_softmax")
    dense = run_dense_early_exit(net, x, ee, lengths, chunk=7)
    event = to_network(net).run(x, steps=lengths, early_exit=ee)
    assert torch.equal(dense.steps, event.steps) and torch.equal(dense.pred, event.pred)
    torch.testing.assert_close(dense.confidence, event.confidence, rtol=1e-12, atol=1e-12)


def test_threshold_one_runs_full_length():
    net = _net()
    x, lengths = _data()
    r = run_dense_early_exit(net, x, EarlyExit(1.0), lengths)
    assert torch.equal(r.steps, lengths)
    with torch.no_grad():
        v = net(x)
    mask = (torch.arange(x.shape[0])[:, None] < lengths[None, :]).double()[..., None]
    assert torch.equal(r.pred[lengths > 0], (v * mask).sum(0).argmax(1)[lengths > 0])


def test_compact_errors():
    net = _net()
    x, lengths = _data()
    with pytest.raises(ConfigError, match="eval"):
        run_dense_early_exit(net.train(), x, EarlyExit(0.5), lengths)
    net.eval()
    with pytest.raises(ConfigError, match="chunk"):
        run_dense_early_exit(net, x, EarlyExit(0.5), lengths, chunk=0)
    with pytest.raises(ConfigError, match="not supported"):
        run_dense_early_exit(torch.nn.Sequential(torch.nn.Flatten(), net).eval(), x, EarlyExit(0.5), lengths)

"""Per-sample early exit inside the event kernel.

All networks here are LIF -> LI in float64, the signature test_event_vs_dense.py compiles
too, so the suite builds that kernel once.
"""
import pytest
import torch

import neurodyn.nn as ndn
from neurodyn.nn.convert import to_network
from neurodyn.core import Network
from neurodyn.errors import ConfigError, ShapeError
from neurodyn.inference import MEASURES, EarlyExit, confidence_trace, exit_from_trace


def _net(n_in=40, n_hid=32, n_out=10, gain=6.0):
    net = torch.nn.Sequential(ndn.Linear(n_in, n_hid), ndn.LIF(tau_mem=5.0), ndn.Linear(n_hid, n_out),
                              ndn.LI(tau_mem=10.0)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(gain)
    return net


def _input(T, B, n_in=40, p=0.1):
    return (torch.rand(T, B, n_in) < p).double()


@pytest.mark.parametrize("measure", list(MEASURES))
def test_threshold_one_never_exits_and_equals_full_run(measure):
    net = _net()
    x = _input(60, 7)
    lengths = torch.tensor([60, 60, 45, 10, 1, 0, 33])
    n = to_network(net)
    full = n.run(x, steps=lengths)
    ee = n.run(x, steps=lengths, early_exit=EarlyExit(1.0, measure))
    assert torch.equal(ee.steps, lengths)
    torch.testing.assert_close(ee.out, full.out, rtol=0, atol=0)
    assert all(torch.equal(a, b) for a, b in zip(ee.counts, full.counts))
    # Predictions are the full run's: argmax of the dense model's readout over each sample's steps.
    with torch.no_grad():
        v = net(x)
    mask = (torch.arange(60)[:, None] < lengths[None, :]).double()[..., None]
    expect = (v * mask).sum(0).argmax(1)
    assert torch.equal(ee.pred, expect)
    assert torch.equal(full.pred, expect)
    assert (ee.confidence[lengths > 0] < 1.0).all()


def test_constant_output_sample_stops_at_first_step():
    # Readout with no memory (tau -> 0: v = input each step) and a bias favouring class 0:
    # sample 0 gets no input, so its readout is the bias at every step -> confident at step 1.
    # Sample 1's input makes hidden neuron 0 spike every step, pushing class 1 level with class 0.
    net = torch.nn.Sequential(ndn.Linear(4, 3), ndn.LIF(tau_mem=5.0, normalize_input=False),
                              ndn.Linear(3, 5), ndn.LI(tau_mem=1e-3)).double().eval()
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.zero_()
        net[0].weight[0, 0] = 2.0
        net[2].weight.zero_()
        net[2].weight[1, 0] = 4.0
        net[2].bias.copy_(torch.tensor([4.0, 0.0, 0.0, 0.0, 0.0]))
    x = torch.zeros(20, 2, 4, dtype=torch.float64)
    x[:, 1, 0] = 1.0
    res = to_network(net).run(x, early_exit=EarlyExit(0.9, "max_softmax"), record=True)
    assert res.steps.tolist() == [1, 20]
    assert res.pred[0] == 0
    assert res.counts[0].tolist() == [0, 20]
    torch.testing.assert_close(res.out[0, 0], torch.tensor([4.0, 0, 0, 0, 0], dtype=torch.float64))
    assert res.out[1:, 0].abs().sum() == 0  # stopped: nothing computed after step 1
    assert res.confidence[0] > 0.9 and res.confidence[1] < 0.9


@pytest.mark.parametrize("measure", list(MEASURES))
def test_kernel_exit_equals_replayed_torch_trace(measure):
    net = _net()
    x = _input(50, 12)
    lengths = torch.randint(20, 51, (12,))
    n = to_network(net)
    full = n.run(x, steps=lengths)
    conf, pred = confidence_trace(full.out, measure)
    vals = torch.unique(conf[torch.arange(50)[:, None] < lengths[None, :]])  # sorted
    for q, min_steps in ((0.3, 1), (0.6, 5), (0.9, 1)):
        k = int(q * (len(vals) - 1))
        thr = float(vals[k] + vals[k + 1]) / 2  # between two observed values: no ties with the threshold
        res = n.run(x, steps=lengths, early_exit=EarlyExit(thr, measure, min_steps), record=True)
        s, p = exit_from_trace(conf, pred, lengths, thr, min_steps)
        assert torch.equal(res.steps, s) and torch.equal(res.pred, p)
        # Without recording the kernel skips the full sums where the top-2 bound rules an exit out:
        # same exits, same final confidence.
        quiet = n.run(x, steps=lengths, early_exit=EarlyExit(thr, measure, min_steps))
        assert torch.equal(quiet.steps, s) and torch.equal(quiet.pred, p)
        torch.testing.assert_close(quiet.confidence, res.confidence, rtol=0, atol=0)
        last = conf.gather(0, (s - 1).clamp(min=0)[None])[0]
        torch.testing.assert_close(quiet.confidence, last, rtol=1e-12, atol=1e-12)
        assert (res.steps < lengths).any(), "threshold should stop some samples early"
        # The kernel's confidence after every step run is the torch measure of the same run.
        run = torch.arange(50)[:, None] < res.steps[None, :]
        torch.testing.assert_close(res.confidence_trace[run], conf[run], rtol=1e-12, atol=1e-12)
        assert (res.confidence_trace[~run] == 0).all()


def test_stopped_sample_costs_nothing_more():
    net = _net()
    x = _input(40, 6)
    n = to_network(net)
    full = n.run(x, record=True)
    conf, _ = confidence_trace(full.out)
    res = n.run(x, early_exit=EarlyExit(float(conf.median()), "max_softmax"), record=True)
    assert (res.steps < 40).any()
    for b, s in enumerate(res.steps.tolist()):
        # Spike counts are those of the first s steps; records and outputs stop there.
        assert res.counts[0][b] == full.records[0][:s, b].sum()
        torch.testing.assert_close(res.records[0][:s, b], full.records[0][:s, b], rtol=0, atol=0)
        assert res.records[0][s:, b].abs().sum() == 0 and res.out[s:, b].abs().sum() == 0


def test_early_exit_errors():
    n = to_network(_net(n_out=1))
    with pytest.raises(ShapeError, match="at least 2 classes"):
        n.run(_input(5, 2), early_exit=EarlyExit(0.5))
    with pytest.raises(ConfigError, match="threshold"):
        EarlyExit(1.5)
    with pytest.raises(ConfigError, match="measure"):
        EarlyExit(0.5, "variance")
    with pytest.raises(ConfigError, match="min_steps"):
        EarlyExit(0.5, min_steps=0)
    with pytest.raises(ConfigError, match="EarlyExit"):
        to_network(_net()).run(_input(5, 2), early_exit=0.5)


def test_dense_frames_and_csr_events_give_the_same_run():
    # run() reads the dense frames inside the kernel; run_events() walks CSR lists.
    net = _net()
    x = _input(30, 5) * torch.randint(1, 3, (30, 5, 40)).double()
    n = to_network(net)
    lengths = torch.tensor([30, 12, 0, 30, 7])
    ee = EarlyExit(0.3, "margin")
    for early_exit in (None, ee):
        a = n.run(x, steps=lengths, record=True, early_exit=early_exit)
        b = n.run_events(*n.events_from_dense(x), 30, lengths.numpy(), record=True, early_exit=early_exit)
        torch.testing.assert_close(a.out, b.out, rtol=0, atol=0)
        assert torch.equal(a.steps, b.steps) and torch.equal(a.pred, b.pred)
        assert all(torch.equal(p, q) for p, q in zip(a.counts, b.counts))

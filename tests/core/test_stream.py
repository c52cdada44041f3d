"""Streaming inference (``Network.stream``): chunks of any size give the whole run, to the bit.

Networks mix the neuron models (ALIF, recurrent CUBA-LIF, LIF, LI readout) with integer delays,
ragged per-sample lengths and early exit that decides as the chunks come.
"""
import numpy as np
import pytest
import torch

import neurodyn.core.stream as core_stream
import neurodyn.nn as ndn
from neurodyn.core import Events, NetworkStream, StreamChunk
from neurodyn.core.confidence import evidence_scales
from neurodyn.errors import ConfigError, ShapeError
from neurodyn.inference import EarlyExit, confidence_trace
from neurodyn.nn.convert import to_network
from neurodyn.nn.delays import DelayedLinear, round_delays

T, B, N_IN = 45, 7, 30
LENGTHS = torch.tensor([45, 3, 0, 31, 45, 44, 1])


def _net(kind: str, dtype=torch.float64):
    torch.manual_seed(0)
    if kind == "delays":  # ALIF after delayed synapses, a recurrent CUBA layer, a delayed LI readout
        layers = [DelayedLinear(N_IN, 24, max_delay=6, bias=True), ndn.ALIF(tau_mem=5.0, tau_adapt=30.0),
                  ndn.Recurrent(24, 16, ndn.CUBALIF(tau_syn=2.0, tau_mem=5.0, reset="zero")),
                  DelayedLinear(16, 6, max_delay=3), ndn.LI(tau_mem=8.0)]
    else:  # no delays: LIF, a recurrent LIF, LI readout
        layers = [ndn.Linear(N_IN, 20), ndn.LIF(tau_mem=5.0), ndn.Recurrent(20, 16, ndn.LIF(tau_mem=4.0)),
                  ndn.Linear(16, 5), ndn.LI(tau_mem=10.0)]
    net = torch.nn.Sequential(*layers)
    with torch.no_grad():  # strong weights and no biases: the readout follows each sample's input
        for p in net.parameters():
            if p.is_floating_point():
                p.mul_(12.0) if p.dim() == 2 else p.zero_()
    return to_network(round_delays(net).eval().to(dtype))


def _input(dtype=torch.float64, seed=1, t=T, b=B):
    g = torch.Generator().manual_seed(seed)
    rate = torch.rand(b, N_IN, generator=g) ** 3 * 0.6  # each sample drives its own channels
    return (torch.rand(t, b, N_IN, generator=g) < rate).to(dtype) * torch.randint(1, 3, (t, b, N_IN), generator=g)


def _threshold(net, x, measure, gamma, lengths=LENGTHS, q=0.5):
    """A threshold between two observed confidences (no ties): some samples exit, some do not."""
    conf, _ = confidence_trace(net.run(x, steps=lengths).out, measure, gamma)
    vals = torch.unique(conf[torch.arange(x.shape[0])[:, None] < lengths[None, :]])
    k = int(q * (len(vals) - 1))
    return float(vals[k] + vals[k + 1]) / 2


def _assert_same(whole, chunks: list[StreamChunk]):
    j = StreamChunk.join(chunks)
    last = chunks[-1]
    assert np.array_equal(j.out.numpy(), whole.out.numpy())
    assert np.array_equal(j.steps.numpy(), whole.steps.numpy())
    assert np.array_equal(last.total_steps.numpy(), whole.steps.numpy())
    assert np.array_equal(j.pred.numpy(), whole.pred.numpy())
    for a, b, c in zip(j.counts, whole.counts, last.total_counts):
        assert np.array_equal(a.numpy(), b.numpy()) and np.array_equal(c.numpy(), b.numpy())
    assert len(j.records) == len(whole.records)
    for a, b in zip(j.records, whole.records):
        assert np.array_equal(a.numpy(), b.numpy())
    for f in ("confidence", "confidence_trace"):
        a, b = getattr(j, f), getattr(whole, f)
        assert (a is None) == (b is None), f
        assert a is None or np.array_equal(a.numpy(), b.numpy()), f


def _chunks(x, c: int):
    return [x[i:i + c] for i in range(0, x.shape[0], c)]


EXITS = [None, ("max_softmax", 1, 1.0), ("margin", 4, 0.3), ("entropy", 2, 0.0)]


@pytest.mark.parametrize("kind,dtype", [("delays", torch.float64), ("delays", torch.float32),
                                        ("plain", torch.float64)])
@pytest.mark.parametrize("exit_", EXITS, ids=["off", "max_softmax", "margin", "entropy"])
def test_chunks_equal_the_whole_run(kind, dtype, exit_):
    net, x = _net(kind, dtype), _input(dtype)
    ee = None
    if exit_ is not None:
        measure, min_steps, gamma = exit_
        ee = EarlyExit(_threshold(net, x, measure, gamma), measure, min_steps, gamma)
    whole = net.run(x, steps=LENGTHS, record=True, early_exit=ee)
    if ee is not None:
        assert ((whole.steps < LENGTHS) & (whole.steps > 0)).any(), "some sample should exit early"
        assert (whole.steps == LENGTHS)[LENGTHS > 1].any(), "some sample should run to its end"
    for c in (1, 7, T):
        s = net.stream(B, lengths=LENGTHS, early_exit=ee, record=True)
        _assert_same(whole, [s.step(xc) for xc in _chunks(x, c)])
        assert s.done.all()


@pytest.mark.parametrize("c", [1, 7, T])
def test_events_and_per_chunk_steps_equal_the_whole_run(c):
    # Events chunks, and the ragged ends given chunk by chunk (steps) instead of up front.
    net, x = _net("delays"), _input()
    ee = EarlyExit(_threshold(net, x, "max_softmax", 1.0, q=0.6), "max_softmax")
    whole = net.run(x, steps=LENGTHS, record=True, early_exit=ee)
    s = net.stream(B, early_exit=ee, record=True)
    chunks = []
    for i, xc in zip(range(0, T, c), _chunks(x, c)):
        steps = (LENGTHS - i).clamp(0, xc.shape[0])
        chunks.append(s.step(Events.from_dense(xc), steps=steps))
    _assert_same(whole, chunks)
    assert torch.equal(chunks[-1].ended, LENGTHS < T)


def test_one_step_frames_and_record_off():
    net, x = _net("plain"), _input()
    ee = EarlyExit(_threshold(net, x, "margin", 1.0), "margin", 3)
    whole = net.run(x, steps=LENGTHS, early_exit=ee)
    s = net.stream(B, lengths=LENGTHS, early_exit=ee)
    chunks = [s.step(x[t].numpy()) for t in range(T)]  # [B, N_in] numpy: one step each
    assert chunks[0].out.shape == (1, B, 5) and chunks[0].records == [] and chunks[0].confidence_trace is None
    _assert_same(whole, chunks)


def test_exits_as_the_stream_goes():
    net, x = _net("delays"), _input()
    thr = _threshold(net, x, "max_softmax", 1.0, q=0.95)
    ee = EarlyExit(thr, "max_softmax")
    whole = net.run(x, early_exit=ee, record=True)
    # the whole run's exits: the confidence after the last step run passed the threshold
    last = whole.confidence_trace.gather(0, (whole.steps - 1).clamp(min=0)[None])[0]
    exits = (whole.steps > 0) & (last > thr)
    s = net.stream(B, early_exit=ee)
    seen = torch.zeros(B, dtype=torch.bool)
    for i, xc in zip(range(0, T, 5), _chunks(x, 5)):
        ch = s.step(xc)
        assert torch.equal(ch.new_exits, ch.exited & ~seen)
        # a sample exits in the chunk that holds its exit step, and then its steps are frozen
        now = (whole.steps > i) & (whole.steps <= i + 5) & exits
        assert torch.equal(ch.new_exits, now)
        seen |= ch.exited
        assert torch.equal(ch.total_steps[seen], whole.steps[seen])
    assert seen.any() and not seen.all()


def test_exited_and_ended_samples_are_not_computed(monkeypatch):
    net, x = _net("delays"), _input()
    ee = EarlyExit(_threshold(net, x, "max_softmax", 1.0, q=0.3), "max_softmax")
    runs, real = [], core_stream.launch  # the rows (samples) each kernel call runs
    monkeypatch.setattr(core_stream, "launch", lambda *a, **k: runs.append(a[7].copy()) or real(*a, **k))
    s = net.stream(B, lengths=LENGTHS, early_exit=ee, record=True)
    s.step(x[:10])
    done = s.done.numpy().copy()
    assert done.any() and not done.all()
    frozen = s.state.copy()
    ch = s.step(x[10:])
    assert not np.isin(runs[-1], np.flatnonzero(done)).any()
    assert (ch.steps[done] == 0).all() and (ch.out[:, done] == 0).all() and (ch.records[0][:, done] == 0).all()
    st = s.state
    for a, b in zip(st.outputs + st.counts + [st.evidence, st.steps, st.exited, st.pred, st.confidence],
                    frozen.outputs + frozen.counts + [frozen.evidence, frozen.steps, frozen.exited, frozen.pred,
                                                      frozen.confidence]):
        assert np.array_equal(a[done], b[done])
    for d, e in zip(st.states, frozen.states):
        assert all(np.array_equal(d[k][done], e[k][done]) for k in d)
    for r, q in zip(st.rings, frozen.rings):
        assert r is None or np.array_equal(r[done], q[done])
    # and the samples still running did change
    assert not np.array_equal(st.steps[~done], frozen.steps[~done])


def test_reset_starts_new_samples_in_some_slots():
    net = _net("delays")
    x1, x2 = _input(seed=1), _input(seed=2)
    ee = EarlyExit(_threshold(net, x1, "margin", 0.3), "margin", 2, 0.3)
    s = net.stream(B, lengths=T, early_exit=ee, record=True)
    s.step(x1[:20])
    slots = np.array([1, 4, 6])
    s.reset(slots, lengths=[T, 17, 30])
    # the other slots go on with x1 to its end; the reset ones start x2 from step 0
    feed = torch.cat([x1[20:], torch.zeros(20, B, N_IN, dtype=x1.dtype)])
    feed[:, slots] = x2[:, slots]
    chunks = [s.step(xc) for xc in _chunks(feed, 9)]
    j = StreamChunk.join(chunks)
    new = net.run(x2[:, slots], steps=torch.tensor([T, 17, 30]), early_exit=ee, record=True)
    assert np.array_equal(j.out[:, slots].numpy(), new.out.numpy())
    assert np.array_equal(j.steps[slots].numpy(), new.steps.numpy())
    assert np.array_equal(j.pred[slots].numpy(), new.pred.numpy())
    assert np.array_equal(j.confidence[slots].numpy(), new.confidence.numpy())
    old = net.run(x1, early_exit=ee, record=True)
    keep = np.setdiff1d(np.arange(B), slots)
    assert np.array_equal(j.out[:25, keep].numpy(), old.out[20:, keep].numpy())
    assert np.array_equal(chunks[-1].total_steps[keep].numpy(), old.steps[keep].numpy())
    assert (j.out[25:, keep] == 0).all()


def test_evidence_scales_do_not_depend_on_the_length():
    # A stream extends its table as it runs: entry t must be the same in a table of any length.
    for gamma in (0.0, 0.3, 0.5, 0.77, 1.0):
        big = evidence_scales(300, gamma)
        assert all(torch.equal(evidence_scales(n, gamma), big[:n]) for n in range(1, 300))


def test_stream_errors():
    net, x = _net("plain"), _input()
    s = net.stream(B, lengths=LENGTHS)
    with pytest.raises(ShapeError, match=r"\[t, B, 30\]"):
        s.step(torch.zeros(3, B, 29))
    with pytest.raises(ShapeError, match="batch of 7"):
        s.step(torch.zeros(3, B + 1, N_IN))
    with pytest.raises(ShapeError, match="7 x 30"):
        s.step(Events.from_dense(torch.zeros(3, B - 1, N_IN)))
    bad = x[:3].clone()
    bad[1, 2, 5] = float("nan")
    with pytest.raises(ShapeError, match="NaN"):
        s.step(bad)
    s.step(x[:3])  # sample 2 (length 0) and sample 6 (length 1) have ended; sample 1 has no steps left
    with pytest.raises(ConfigError, match="sample 1's stream ended after 3 steps"):
        s.step(x[3:5], steps=[2, 2, 0, 2, 2, 2, 0])
    with pytest.raises(ConfigError, match="sample 3's stream has 31 steps and has run 3"):
        s.step(torch.zeros(40, B, N_IN), steps=[0, 0, 0, 40, 0, 0, 0])
    with pytest.raises(ShapeError, match="steps"):
        s.step(x[3:5], steps=[3, 0, 0, 0, 0, 0, 0])
    s.step(x[3:5], steps=[2, 0, 0, 0, 2, 2, 0])  # sample 3 is given fewer than 2 steps: its stream ends
    with pytest.raises(ConfigError, match="sample 3's stream ended"):
        s.step(x[5:6], steps=[1, 0, 0, 1, 0, 0, 0])
    with pytest.raises(ShapeError, match="lengths"):
        net.stream(B, lengths=[1, 2])
    with pytest.raises(ConfigError, match="batch size"):
        net.stream(0)
    with pytest.raises(ConfigError, match="EarlyExit"):
        net.stream(B, early_exit=0.5)
    with pytest.raises(ShapeError, match="samples must be"):
        s.reset([B])
    assert isinstance(s, NetworkStream)


def test_a_batch_of_one():
    net, x = _net("plain"), _input()[:, :1]
    whole = net.run(x, record=True)
    s = net.stream(1, record=True)
    _assert_same(whole, [s.step(xc) for xc in _chunks(x, 7)])

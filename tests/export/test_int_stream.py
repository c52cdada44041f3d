"""Streaming the integer simulator (``QuantizedNetwork.stream``): chunks of any size give ``simulate``, to the bit."""
import numpy as np
import pytest
import torch

import neurodyn.export.int_stream as int_stream
from export_nets import make_net, spikes_input
from neurodyn.core import Events
from neurodyn.errors import ConfigError, ShapeError
from neurodyn.export import IntChunk, IntStream, quantize, simulate

T = 60
LENGTHS = np.array([60, 17, 0, 45, 59])
SHAPES = [(40, 32), (32, 24), (24, 10)]
FIELDS = ("counts", "sat_input", "sat_state", "peak_input", "peak_state")


@pytest.fixture(scope="module")
def delayed_net():
    # LIF, recurrent CUBA-LIF, LI readout, random integer delays on every layer (test_int_sim's network)
    rng = np.random.default_rng(0)
    x = spikes_input()
    q = quantize(make_net("mixed"), "loihi", calib=x, delays=[rng.integers(0, 6, size=s) for s in SHAPES])
    return q, x.numpy().astype(np.int64)


def _assert_same(whole, chunks: list[IntChunk]):
    j = IntChunk.join(chunks)
    last = chunks[-1]
    assert np.array_equal(j.out, whole.out)
    assert np.array_equal(j.steps, whole.steps) and np.array_equal(last.total_steps, whole.steps)
    for f in FIELDS:
        for a, b, c in zip(getattr(j, f), getattr(whole, f), last.totals[f]):
            assert np.array_equal(a, b) and np.array_equal(c, b), f
    assert len(j.records) == len(whole.records)
    for ra, rb in zip(j.records, whole.records):
        assert ra.keys() == rb.keys() and all(np.array_equal(ra[k], rb[k]) for k in ra)


@pytest.mark.parametrize("c", [1, 7, T])
def test_chunks_equal_the_whole_run(delayed_net, c):
    q, x = delayed_net
    whole = simulate(q, x, steps=LENGTHS, record=True)
    assert whole.counts[0].sum() > 0 and whole.counts[1].sum() > 0, "the test network should spike"
    s = q.stream(5, lengths=LENGTHS, record=True)
    _assert_same(whole, [s.step(x[i:i + c]) for i in range(0, T, c)])
    assert s.done.all()


@pytest.mark.parametrize("c", [1, 7, T])
def test_events_per_chunk_steps_and_serial_kernel(delayed_net, c):
    q, x = delayed_net
    whole = simulate(q, x, steps=LENGTHS)
    s = IntStream(q, 5, parallel=False)
    chunks = []
    for i in range(0, T, c):
        xc = x[i:i + c]
        steps = np.clip(LENGTHS - i, 0, xc.shape[0])
        chunks.append(s.step(Events.from_dense(torch.from_numpy(xc).double()), steps=steps))
    _assert_same(whole, chunks)
    assert np.array_equal(chunks[-1].ended, LENGTHS < T)


def test_ended_samples_are_not_computed(delayed_net, monkeypatch):
    q, x = delayed_net
    runs, real = [], int_stream.launch  # the rows (samples) each kernel call runs
    monkeypatch.setattr(int_stream, "launch", lambda *a, **k: runs.append(a[8].copy()) or real(*a, **k))
    s = q.stream(5, lengths=LENGTHS, record=True)
    s.step(x[:20])
    done = s.done
    assert done.tolist() == [False, True, True, False, False]
    frozen = s.state.copy()
    ch = s.step(x[20:])
    assert not np.isin(runs[-1], np.flatnonzero(done)).any()
    assert (ch.steps[done] == 0).all() and (ch.out[:, done] == 0).all()
    assert all((getattr(ch, f)[i][done] == 0).all() for f in FIELDS for i in range(3))
    st = s.state
    assert np.array_equal(st.steps[done], frozen.steps[done])
    for a, b in zip(st.outputs, frozen.outputs):
        assert np.array_equal(a[done], b[done])
    for d, e in zip(st.states, frozen.states):
        assert all(np.array_equal(d[k][done], e[k][done]) for k in d)
    for a, b in zip(st.buffers, frozen.buffers):
        assert np.array_equal(a[done], b[done])
    assert not np.array_equal(st.steps[~done], frozen.steps[~done])


def test_reset_starts_new_samples(delayed_net):
    q, x = delayed_net
    x2 = spikes_input(seed=7).numpy().astype(np.int64)
    s = q.stream(5, lengths=T)
    s.step(x[:25])
    s.reset([0, 3], lengths=[30, 60])
    feed = np.concatenate([x[25:], np.zeros((25, 5, 40), np.int64)])
    feed[:, [0, 3]] = x2[:, [0, 3]]
    chunks = [s.step(feed[i:i + 11]) for i in range(0, T, 11)]
    j = IntChunk.join(chunks)
    new = simulate(q, x2[:, [0, 3]], steps=[30, 60])
    assert np.array_equal(j.out[:, [0, 3]], new.out)
    assert np.array_equal(chunks[-1].totals["counts"][1][[0, 3]], new.counts[1])
    old = simulate(q, x)
    keep = [1, 2, 4]
    assert np.array_equal(j.out[:35, keep], old.out[25:, keep])
    assert np.array_equal(chunks[-1].totals["counts"][0][keep], old.counts[0][keep])


def test_stream_errors(delayed_net):
    q, x = delayed_net
    s = q.stream(5, lengths=LENGTHS)
    with pytest.raises(ShapeError, match=r"\[t, B, 40\]"):
        s.step(np.zeros((3, 5, 39), np.int64))
    with pytest.raises(ShapeError, match="batch of 5"):
        s.step(np.zeros((3, 4, 40), np.int64))
    with pytest.raises(ConfigError, match="whole-number"):
        s.step(np.full((3, 5, 40), 0.5))
    with pytest.raises(ConfigError, match="whole-number"):
        s.step(Events.from_dense(np.full((3, 5, 40), 0.5)))
    bad = x[:3].astype(np.float64)
    bad[0, 0, 0] = np.nan
    with pytest.raises(ShapeError, match="NaN"):
        s.step(bad)
    s.step(x[:20])
    with pytest.raises(ConfigError, match="sample 1's stream ended after 17 steps"):
        s.step(x[20:22], steps=[2, 2, 0, 2, 2])
    with pytest.raises(ConfigError, match="sample 3's stream has 45 steps and has run 20"):
        s.step(np.zeros((30, 5, 40), np.int64), steps=[0, 0, 0, 30, 0])


def test_a_batch_of_one(delayed_net):
    q, x = delayed_net
    whole = simulate(q, x[:, :1], record=True)
    s = q.stream(1, record=True)
    _assert_same(whole, [s.step(x[i:i + 7, :1]) for i in range(0, T, 7)])

"""The integer simulator: hand-computed traces, kernel == numpy reference, determinism, saturation."""
import numba
import numpy as np
import pytest
import torch

from export_nets import make_net, spikes_input
from neurodyn.errors import ConfigError, ShapeError
from neurodyn.export import LOIHI, QuantizedLayer, QuantizedNetwork, quantize, simulate, simulate_reference
from neurodyn.neurons import LIF

M = LOIHI.state_max  # 2^23 - 1


def _lif_layer(weight, weight_exp, decay, threshold, reset_sub, delay=None):
    n = len(decay)
    return QuantizedLayer(
        model=LIF, weight=np.array(weight, dtype=np.int64), weight_exp=weight_exp,
        bias=np.zeros(n, np.int64), bias_exp=0,
        coefs={"decay": np.array(decay, np.int64), "gain": np.full(n, 4096, np.int64), "v_rest": np.zeros(n, np.int64),
               "threshold": np.array(threshold, np.int64), "v_reset": np.zeros(n, np.int64),
               "reset_sub": np.array(reset_sub, np.int64)},
        init=(np.zeros(n, np.int64),), scale=1.0, delay=None if delay is None else np.array(delay, np.int64))


def _three_neurons() -> QuantizedNetwork:
    # Increments (mantissa << 6): neuron 0 gets 6400 from input 0; neuron 1 -3200 from input 0;
    # neuron 2 8128 from both inputs.
    # Zero delays: the same compiled kernel as the delay test (compilation is the slow part).
    layer = _lif_layer(weight=[[100, -50, 127], [0, 0, 127]], weight_exp=6, decay=[2048, 3000, 2048],
                       threshold=[10000] * 3, reset_sub=[1, 0, 1], delay=np.zeros((2, 3), np.int64))
    return QuantizedNetwork([layer], LOIHI)


X3 = np.zeros((4, 1, 2), np.int64)
X3[0, 0, 0] = 1
X3[2, 0, 0] = 3
X3[3, 0, 1] = 2000

# Worked by hand, Loihi rounding: decay products sign(p) * (|p| >> 12).
#  n0 (subtract reset): 6400; 3200; 1600 + 19200 = 20800 >= 10000 -> spike, 10800; 5400
#  n1 (zero reset, decay 3000/4096): -3200; -9600000/4096 = -2343.75 -> -2343 (floor would be -2344);
#     -7029000/4096 = -1716.06 -> -1716, + 3 * -3200 = -11316; -33948000/4096 -> -8288
#  n2: 8128; 4064; 2032 + 24384 = 26416 -> spike, 16416;
#     t=3: input 2000 * 8128 = 16256000 saturates to 2^23-1 (1 input clamp); h = 8208 + 8388607
#     saturates to 8388607 (1 state clamp), spikes, subtract: 8388607 - 10000 = 8378607
V3 = np.array([[6400, -3200, 8128], [3200, -2343, 4064], [10800, -11316, 16416], [5400, -8288, 8378607]])
S3 = np.array([[0, 0, 0], [0, 0, 0], [1, 0, 1], [0, 0, 1]])


@pytest.mark.parametrize("runner", ["kernel", "reference"])
def test_hand_computed_three_neuron_trace(runner):
    q = _three_neurons()
    if runner == "reference":
        r = simulate_reference(q, X3, record=True)
    else:
        r = simulate(q, X3, record=True)
    np.testing.assert_array_equal(r.records[0]["v"][:, 0], V3)
    np.testing.assert_array_equal(r.records[0]["out"][:, 0], S3)
    np.testing.assert_array_equal(r.out[:, 0], S3)
    assert r.counts[0].tolist() == [3]
    assert r.sat_input[0].tolist() == [1] and r.sat_state[0].tolist() == [1]
    assert r.peak_input[0].tolist() == [16256000] and r.peak_state[0].tolist() == [8378607]


def test_hand_computed_delays():
    # Two non-leaky neurons (decay 1.0) fed by one input; neuron 1's synapse is 2 steps late.
    layer = _lif_layer(weight=[[10, 20]], weight_exp=0, decay=[4096, 4096], threshold=[1000, 1000], reset_sub=[1, 1],
                       delay=[[0, 2]])
    q = QuantizedNetwork([layer], LOIHI)
    x = np.zeros((5, 1, 1), np.int64)
    x[0, 0, 0] = 1
    x[1, 0, 0] = 2
    want = np.array([[10, 0], [30, 0], [30, 20], [30, 60], [30, 60]])
    for r in (simulate(q, x, record=True), simulate_reference(q, x, record=True)):
        np.testing.assert_array_equal(r.records[0]["v"][:, 0], want)
    # A sample cut at 3 steps never receives the input scheduled for step 3.
    r = simulate(q, np.repeat(x, 2, axis=1), steps=np.array([5, 3]), record=True)
    np.testing.assert_array_equal(r.records[0]["v"][:3, 1], want[:3])
    assert (r.records[0]["v"][3:, 1] == 0).all()


def _random_delays(q_shapes, max_delay, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, max_delay + 1, size=s) for s in q_shapes]


SHAPES = [(40, 32), (32, 24), (24, 10)]


@pytest.fixture(scope="module")
def delayed_net():
    net = make_net("mixed")
    x = spikes_input()
    q = quantize(net, "loihi", calib=x, delays=_random_delays(SHAPES, 5))
    return q, x


def test_kernel_equals_reference_with_delays_and_recurrence(delayed_net):
    q, x = delayed_net
    steps = np.array([60, 17, 0, 45, 60])
    a = simulate(q, x, steps=steps, record=True)
    b = simulate_reference(q, x, steps=steps, record=True)
    assert a.counts[0].sum() > 0 and a.counts[1].sum() > 0, "the test network should spike"
    np.testing.assert_array_equal(a.out, b.out)
    for ra, rb in zip(a.records, b.records):
        for k in ra:
            np.testing.assert_array_equal(ra[k], rb[k], err_msg=k)
    for f in ("counts", "sat_input", "sat_state", "peak_input", "peak_state"):
        for u, v in zip(getattr(a, f), getattr(b, f)):
            np.testing.assert_array_equal(u, v, err_msg=f)


def test_deterministic_and_thread_independent(delayed_net):
    q, x = delayed_net
    runs = [simulate(q, x), simulate(q, x), simulate(q, x, parallel=False)]
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        runs.append(simulate(q, x))
    finally:
        numba.set_num_threads(old)
    for r in runs[1:]:
        np.testing.assert_array_equal(r.out, runs[0].out)
        for u, v in zip(r.counts, runs[0].counts):
            np.testing.assert_array_equal(u, v)


def test_saturation_counted_and_identical_in_reference():
    # A narrow 16-bit state with no headroom: strong inputs must saturate, and both paths agree.
    fmt = LOIHI.replace(name="narrow", state_bits=16, weight_exp=(0, 7), threshold_bits=10, threshold_exp=(0, 5),
                        bias_bits=8, bias_exp=(0, 7), headroom_bits=0)
    net = make_net("mixed", scale=12.0)
    x = spikes_input(p=0.4) * 3
    q = quantize(net, fmt, delays=[np.zeros(s, np.int64) for s in SHAPES])
    a, b = simulate(q, x, record=True), simulate_reference(q, x, record=True)
    assert a.saturations > 0
    assert a.saturations == b.saturations
    np.testing.assert_array_equal(a.out, b.out)
    for rec in a.records:
        for k, v in rec.items():
            if k != "out":
                assert np.abs(v).max() <= fmt.state_max
    hit = [np.abs(rec["v"]).max() == fmt.state_max for rec in a.records]
    assert any(hit), "some membrane should sit at the saturation limit"


def test_bad_inputs_raise():
    q = _three_neurons()
    with pytest.raises(ConfigError, match="whole-number"):
        simulate(q, np.full((3, 1, 2), 0.5))
    with pytest.raises(ShapeError, match=r"\[T, B, 2\]"):
        simulate(q, np.zeros((3, 1, 5)))
    with pytest.raises(ShapeError, match="steps"):
        simulate(q, np.zeros((3, 2, 2)), steps=[4, 1])


def test_torch_input_accepted():
    q = _three_neurons()
    r = simulate(q, torch.from_numpy(X3).double(), record=True)
    np.testing.assert_array_equal(r.records[0]["v"][:, 0], V3)

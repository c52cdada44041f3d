"""Quantization: formats, scale choice and calibration, float vs integer agreement, clear errors."""
import numpy as np
import pytest
import torch

import neurodyn.nn as ndn
from export_nets import make_net, spikes_input
from neurodyn.nn.convert import to_network
from neurodyn.core import Network
from neurodyn.errors import ConfigError, ShapeError
from neurodyn.export import LOIHI, format_report, get_format, quantize, simulate
from neurodyn.export.fixed_point import FixedPointFormat, mantissa_exponent

SHAPES = [(40, 32), (32, 24), (24, 10)]


def _zero_delays():
    # All-zero delays: same results as none, and the same compiled kernel as the other tests.
    return [np.zeros(s, np.int64) for s in SHAPES]


def test_formats_validate():
    assert get_format("loihi") is LOIHI and LOIHI.state_max == 2**23 - 1 and LOIHI.one == 4096
    assert get_format("loihi", weight_bits=4).weight_bits == 4
    with pytest.raises(ConfigError, match="unknown fixed-point preset"):
        get_format("truenorth")
    with pytest.raises(ConfigError, match="weight_bits"):
        LOIHI.replace(weight_bits=0)
    with pytest.raises(ConfigError, match="does not fit"):
        LOIHI.replace(weight_exp=(0, 20))
    with pytest.raises(ConfigError, match="unknown fixed-point format field"):
        LOIHI.replace(colour="blue")
    assert FixedPointFormat.from_dict(LOIHI.to_dict()) == LOIHI


def test_mantissa_exponent_picks_smallest_shift():
    m, e, clipped = mantissa_exponent(np.array([1000.0, -500.0, 3.0]), 8, (0, 13))
    assert e == 3 and clipped == 0          # 1000 / 8 = 125 fits 8 bits, / 4 = 250 does not
    np.testing.assert_array_equal(m, [125, -63, 0])    # ties round away from zero: -62.5 -> -63
    m, e, clipped = mantissa_exponent(np.array([1e9]), 8, (0, 2))
    assert e == 2 and clipped == 1 and m[0] == 127


def test_gain_folded_and_integers_in_format():
    net = make_net("mixed")
    q = quantize(net, "loihi", delays=_zero_delays())
    src = to_network(net, dtype=np.float64)
    for ql, fl in zip(q.layers, src.layers):
        assert (ql.coefs["gain"] == 4096).all()
        g = fl.coefs[fl.model.coefs.index("gain")]
        # the integer weight is (gain * W) at the layer's scale, to within one mantissa step
        err = np.abs(ql.weight_int() / ql.scale - fl.weight * g)
        assert err.max() <= 0.5 * (1 << ql.weight_exp) / ql.scale + 1e-12
        assert np.abs(ql.weight).max() <= 127 and np.abs(ql.weight).max() >= 64   # uses the 8 bits
        dq = fl.coefs[fl.model.coefs.index("decay")]
        np.testing.assert_array_equal(ql.coefs["decay"], np.floor(dq * 4096 + 0.5))


def test_float_and_integer_paths_agree():
    # The LIF + LI net: the same compiled kernels as the other tests (compilation is the slow part).
    net = make_net("lif")
    x = spikes_input()
    fres = to_network(net).run(x, record=True)
    for preset, min_agree in (("wide16", 0.995), ("loihi", 0.97)):
        q = quantize(net, preset, calib=x)
        r = simulate(q, x, record=True)
        assert r.saturations == 0
        for ql, rec, frec in zip(q.layers, r.records, fres.records):
            if ql.model.spiking:
                assert frec.sum() > 0
                assert (rec["out"] == frec.numpy()).mean() >= min_agree, (preset, ql.model.name)
        readout = r.out / q.layers[-1].scale
        c = np.corrcoef(readout.ravel(), fres.out.numpy().ravel())[0, 1]
        assert c > (0.999 if preset == "wide16" else 0.98)


def test_calibration_uses_the_range_and_removes_saturation():
    fmt = LOIHI.replace(name="narrow", state_bits=16, weight_exp=(0, 7), threshold_bits=10, threshold_exp=(0, 5),
                        bias_bits=8, bias_exp=(0, 7), headroom_bits=0)
    net = make_net("mixed", scale=12.0)
    x = spikes_input(p=0.4) * 3
    static = quantize(net, fmt, delays=_zero_delays())
    assert simulate(static, x).saturations > 0
    cal = quantize(net, fmt, calib=x, delays=_zero_delays())
    r = simulate(cal, x)
    assert r.saturations == 0
    for i, info in enumerate(cal.report):
        assert info["saturations"] == 0
        # the peak sits in the top two bits below the limit: the range is used
        assert fmt.state_bits - 3 <= info["peak_bits"] <= fmt.state_bits - 1, info
    assert "log2_scale" in format_report(cal)


def test_bad_networks_and_delays_raise():
    with pytest.raises(ConfigError, match="alif"):
        quantize(torch.nn.Sequential(ndn.Linear(3, 2), ndn.ALIF()))
    net = make_net("lif")
    shapes = [(40, 32), (32, 10)]
    with pytest.raises(ConfigError, match=r"\[0, 63\]"):
        quantize(net, delays=[np.full(shapes[0], 64), None])
    with pytest.raises(ConfigError, match="whole numbers"):
        quantize(net, delays=[np.full(shapes[0], 1.5), None])
    with pytest.raises(ShapeError, match="weight shape"):
        quantize(net, delays=[np.zeros((3, 3)), None])
    with pytest.raises(ConfigError, match="one entry per layer"):
        quantize(net, delays=[None])
    with pytest.raises(ConfigError, match="negative threshold"):
        quantize(torch.nn.Sequential(ndn.Linear(3, 2), ndn.LIF(threshold=-1.0)))
    with pytest.raises(ConfigError, match="readout"):
        quantize(torch.nn.Sequential(ndn.Linear(3, 2), ndn.LI(), ndn.Linear(2, 2), ndn.LIF()))


def test_a_delayed_model_keeps_its_rounded_delays():
    """quantize(model) takes the integer delays the model's rounded DelayedLinear layers hold: the
    integer network, its dequantized core.Network and the float event core agree."""
    from neurodyn.nn.delays import DelayedLinear, round_delays
    torch.manual_seed(0)
    net = torch.nn.Sequential(DelayedLinear(30, 24, max_delay=7, bias=True, dtype=torch.float64),
                              ndn.LIF(tau_mem=5.0, threshold=0.3),
                              DelayedLinear(24, 6, max_delay=4, dtype=torch.float64), ndn.LI(tau_mem=8.0))
    with torch.no_grad():
        for m in net:
            if isinstance(m, DelayedLinear):
                m.weight.mul_(3.0)
    net = round_delays(net).eval()
    x = spikes_input(T=40, B=5, n=30)
    core = to_network(net)
    q = quantize(net, "wide16", calib=x)
    for ql, cl in zip(q.layers, core.layers):
        np.testing.assert_array_equal(ql.delay, cl.delays)
    assert q.layers[0].max_delay > 0
    dq = q.to_network()
    np.testing.assert_array_equal(dq.layers[0].delays, core.layers[0].delays)
    ref = core.run(x, record=True)
    res = dq.run(x, record=True)
    assert ref.records[0].sum() > 0
    assert float((res.records[0] != ref.records[0]).float().mean()) < 0.02    # 16-bit weights: few flips
    ints = q.simulate(x)
    np.testing.assert_array_equal(np.asarray(ints.counts[0]), res.counts[0].numpy())

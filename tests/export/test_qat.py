"""Quantization-aware fine-tuning: the fake-quantized forward is the chip's parameters, gradients pass."""
import numpy as np
import torch

from export_nets import make_net, spikes_input
from neurodyn.export import qat, quantize


def test_fake_quantized_forward_is_the_dequantized_chip_network():
    net = make_net("lif")
    x = spikes_input()
    with qat(net, "loihi", calib=x) as h:
        q = h.quantize()
        with torch.no_grad():
            hidden = net[:2](x)
            out = net(x)
        ref = q.to_network().run(x, record=True)
    assert hidden.sum() > 0
    torch.testing.assert_close(hidden, ref.records[0], rtol=0, atol=0)
    torch.testing.assert_close(out, ref.out, rtol=1e-9, atol=1e-9)


def test_same_integers_as_quantize_and_clean_removal():
    net = make_net("lif")
    x = spikes_input()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    h = qat(net, "loihi", calib=x)
    q_qat = h.quantize()
    h.remove()
    q = quantize(net, "loihi", log2_scales=h.log2_scales)
    for a, b in zip(q_qat.layers, q.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)
        if a.recurrent is not None:
            np.testing.assert_array_equal(a.recurrent, b.recurrent)
        for c in a.model.coefs:
            np.testing.assert_array_equal(a.coefs[c], b.coefs[c])
    after = net.state_dict()
    assert set(after) == set(before)
    for k in before:
        torch.testing.assert_close(after[k], before[k], rtol=0, atol=0)
    assert "coefficients" not in vars(net[1])


def test_straight_through_gradients_reach_the_float_weights():
    net = make_net("mixed", scale=3.0)
    x = spikes_input()
    h = qat(net, "loihi")
    out = net(x)
    out.pow(2).mean().backward()
    ff = net[0].parametrizations.weight.original
    rec = net[2].rec.parametrizations.weight.original
    assert ff.grad is not None and ff.grad.abs().sum() > 0
    assert rec.grad is not None and rec.grad.abs().sum() > 0
    h.remove()

"""Convolutional networks in the event core: the same spikes as the torch modules, to the bit.

Conv2d layers add each input event's kernel patch (``kernels.sparse_conv``, the modules' own
summation); pooling modules become the pooling of the next layer's input events
(``kernels.event_pool``); Flatten is the NCHW order the layers already use.
"""
import numpy as np
import pytest
import torch

import neurodyn.nn as ndn
from neurodyn.core import Conv, Events, Layer, Pool, StreamChunk
from neurodyn.errors import ConfigError, ShapeError
from neurodyn.inference import EarlyExit
from neurodyn.nn.convert import to_network
from neurodyn.neurons import LIF as LIF_MODEL

C, H = 2, 14


def _net(kind: str, dtype=torch.float64) -> torch.nn.Sequential:
    torch.manual_seed(3)
    if kind == "stack":  # the conv_snn layout: conv, LIF, average pool, conv, LIF, pool, flatten, readout
        layers = [ndn.Conv2d(C, 4, 3, input_size=(H, H)), ndn.LIF(tau_mem=5.0), ndn.AvgPool2d(2),
                  ndn.Conv2d(4, 6, 3), ndn.LIF(tau_mem=4.0), ndn.SumPool2d(2), ndn.Flatten(),
                  ndn.Linear(6 * 2 * 2, 5), ndn.LI(tau_mem=8.0)]
    else:  # strides, padding, overlapping windows, pooling of the input and of a non-spiking layer
        layers = [ndn.AvgPool2d(3, stride=1, padding=1), ndn.Conv2d(C, 5, 3, stride=2, padding=1), ndn.LIF(tau_mem=5.0),
                  ndn.SumPool2d(3, stride=2, padding=1), ndn.Conv2d(5, 3, (3, 2), padding=(1, 0)),
                  ndn.LI(tau_mem=3.0), ndn.AvgPool2d(2, stride=1), ndn.Flatten(), ndn.Linear(3 * 3 * 2, 4),
                  ndn.LIF(tau_mem=6.0)]
    net = torch.nn.Sequential(*layers).to(dtype).eval()
    with torch.no_grad():
        for i, m in enumerate(net):
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.mul_(12.0 if kind != "stack" else 96.0 if i == 3 else 4.0)
    return net


def _input(dtype, T=25, B=3, p=0.15, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, C * H * H, generator=g) < p).to(dtype) * torch.randint(1, 3, (T, B, C * H * H), generator=g)


def _module_outputs(net, x):
    """Each neuron layer's output [T, B, N] (NCHW flattened) from the torch modules."""
    out, h = [], x.reshape(x.shape[0], x.shape[1], C, H, H)
    with torch.no_grad():
        for m in net:
            h = m(h)
            if isinstance(m, ndn.SpikingNeuron):
                out.append(h.reshape(h.shape[0], h.shape[1], -1))
    return out


@pytest.mark.parametrize("kind,dtype", [("stack", torch.float64), ("stack", torch.float32),
                                        ("strided", torch.float64)])
def test_conv_network_equals_modules(kind, dtype):
    net = _net(kind, dtype)
    x = _input(dtype)
    ref = _module_outputs(net, x)
    res = to_network(net, input_shape=(C, H, H)).run(x, record=True)
    assert len(res.records) == len(ref)
    neurons = [m for m in net if isinstance(m, ndn.SpikingNeuron)]
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    for m, rec, d in zip(neurons, res.records, ref):
        if m.model.spiking:  # the same spikes, to the bit
            assert torch.equal(rec, d)
        else:  # a readout after a dense torch Linear: sums in another order
            torch.testing.assert_close(rec, d, rtol=tol, atol=tol)
    for i in [i for i, m in enumerate(neurons[:-1]) if m.model.spiking]:
        assert ref[i].sum() > 0, "the test network should spike in every hidden layer"
        assert torch.equal(res.counts[i], ref[i].sum((0, 2)).long())


def test_event_lists_equal_frames():
    net = to_network(_net("stack"))
    x = _input(torch.float64)
    steps = torch.tensor([25, 9, 0])
    a = net.run(x, steps=steps, record=True)
    b = net.run(Events.from_dense(x), steps=steps, record=True)
    for ra, rb in zip(a.records, b.records):
        assert torch.equal(ra, rb)
    assert a.out[9:, 1].abs().sum() == 0 and a.counts[0][2] == 0


@pytest.mark.parametrize("chunk", [1, 7, 25])
def test_streaming_a_conv_network_equals_the_whole_run(chunk):
    mods = _net("stack")
    with torch.no_grad():  # a readout that follows each sample's input
        mods[-2].weight.mul_(20.0)
        mods[-2].bias.zero_()
    net = to_network(mods)
    x = _input(torch.float64, p=0.3) * (torch.rand(1, 3, C * H * H, generator=torch.Generator().manual_seed(1)) < 0.5)
    trace = net.run(x, early_exit=EarlyExit(1.0, "margin"), record=True).confidence_trace[2:]
    vals = torch.unique(trace)  # a threshold between two observed confidences: no ties
    k = len(vals) * 3 // 4
    ee = EarlyExit(float(vals[k] + vals[k + 1]) / 2, "margin", min_steps=3)
    whole = net.run(x, early_exit=ee, record=True)
    assert 0 < int(whole.steps.lt(25).sum()) < 3, "some samples should exit early, not all"
    s = net.stream(3, early_exit=ee, record=True)
    chunks = [s.step(x[i:i + chunk]) for i in range(0, 25, chunk)]
    j = StreamChunk.join(chunks)
    assert torch.equal(j.out, whole.out) and torch.equal(j.steps, whole.steps) and torch.equal(j.pred, whole.pred)
    for a, b in zip(j.records, whole.records):
        assert torch.equal(a, b)


def _lif_layer(weight, bias, **kw):
    n = kw.pop("n")
    coefs = tuple(np.full(n, v) for v in (0.8, 0.2, 0.0, 1.0, 0.0, 1.0))
    return Layer(weight=weight, bias=bias, model=LIF_MODEL, coefs=coefs, init=(np.zeros(n),), **kw)


def test_bad_layers_are_named():
    w = np.zeros((4, 2, 3, 3))
    with pytest.raises(ConfigError, match="no recurrent weights or delays"):
        _lif_layer(w, np.zeros(4), n=4 * 8 * 8, conv=Conv((2, 10, 10)), recurrent=np.zeros((256, 256)))
    with pytest.raises(ShapeError, match="weight must be"):
        _lif_layer(w, np.zeros(4), n=4 * 8 * 8, conv=Conv((3, 10, 10)))
    with pytest.raises(ShapeError, match="does not fit"):
        _lif_layer(w, np.zeros(4), n=4, conv=Conv((2, 2, 2)))
    with pytest.raises(ShapeError, match="pooling"):
        _lif_layer(w, np.zeros(4), n=4 * 8 * 8, conv=Conv((2, 10, 10)), pool=Pool((2, 10, 10), 2, 2))
    with pytest.raises(ConfigError, match="does not fit"):
        Pool((2, 1, 1), 3, 1)
    ok = _lif_layer(w, np.zeros(4), n=4 * 8 * 8, conv=Conv((2, 10, 10)), pool=Pool((2, 20, 21), 2, 2))
    assert (ok.n_in, ok.size) == (2 * 20 * 21, 4 * 8 * 8)


def test_unsupported_conv_modules_are_named():
    grouped = torch.nn.Sequential(ndn.Conv2d(2, 4, 3, groups=2, input_size=(6, 6)), ndn.LIF())
    with pytest.raises(ConfigError, match="groups = dilation = 1"):
        to_network(grouped)
    with pytest.raises(ConfigError, match="input_shape"):
        to_network(torch.nn.Sequential(ndn.Conv2d(2, 4, 3), ndn.LIF()))
    with pytest.raises(ConfigError, match="must follow a convolutional"):
        to_network(torch.nn.Sequential(ndn.Linear(4, 4), ndn.LIF(), ndn.AvgPool2d(2)))
    with pytest.raises(ConfigError, match="ends in pooling"):
        to_network(torch.nn.Sequential(ndn.Conv2d(2, 4, 3, input_size=(6, 6)), ndn.LIF(), ndn.AvgPool2d(2)))

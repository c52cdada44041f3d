"""Convolutional networks in fixed point: quantized with the same presets, run bit-exact by the
integer kernel (== the numpy reference, which unrolls convolutions and pooling into matrices)."""
import numpy as np
import pytest
import torch

import neurodyn.nn as ndn
from neurodyn.core import Conv, Pool
from neurodyn.errors import ConfigError
from neurodyn.export import LOIHI, QuantizedLayer, QuantizedNetwork, quantize, simulate, simulate_reference
from neurodyn.neurons import LIF
from neurodyn.nn.convert import to_network

C, H = 2, 14


def _conv_net(kind: str) -> torch.nn.Sequential:
    torch.manual_seed(3)
    if kind == "stack":  # conv, LIF, average pool, conv, LIF, sum pool, flatten, LI readout
        layers = [ndn.Conv2d(C, 4, 3, input_size=(H, H)), ndn.LIF(tau_mem=5.0), ndn.AvgPool2d(2),
                  ndn.Conv2d(4, 6, 3), ndn.LIF(tau_mem=4.0), ndn.SumPool2d(2), ndn.Flatten(),
                  ndn.Linear(6 * 2 * 2, 5), ndn.LI(tau_mem=8.0)]
        scale = 4.0
    else:  # strides, padding, overlapping windows, pooling of the input
        layers = [ndn.AvgPool2d(3, stride=1, padding=1), ndn.Conv2d(C, 5, 3, stride=2, padding=1, input_size=(H, H)),
                  ndn.LIF(tau_mem=5.0), ndn.SumPool2d(3, stride=2, padding=1), ndn.Conv2d(5, 3, (3, 2), padding=(1, 0)),
                  ndn.LIF(tau_mem=3.0), ndn.AvgPool2d(2, stride=1), ndn.Flatten(), ndn.Linear(3 * 3 * 2, 4),
                  ndn.LIF(tau_mem=6.0)]
        scale = 12.0
    net = torch.nn.Sequential(*layers).double().eval()
    with torch.no_grad():
        for i, m in enumerate(net):
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                m.weight.mul_(scale * (24.0 if kind == "stack" and i == 3 else 1.0))
    return net


def _counts(T=25, B=3, p=0.15, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, C * H * H, generator=g) < p).double() * torch.randint(1, 3, (T, B, C * H * H), generator=g)


def _same(a, b):
    np.testing.assert_array_equal(a.out, b.out)
    for k in ("counts", "sat_input", "sat_state", "peak_input", "peak_state"):
        for x, y in zip(getattr(a, k), getattr(b, k)):
            np.testing.assert_array_equal(x, y, err_msg=k)
    for ra, rb in zip(a.records, b.records):
        for k in ra:
            np.testing.assert_array_equal(ra[k], rb[k], err_msg=k)


@pytest.mark.parametrize("kind", ["stack", "strided"])
def test_quantized_conv_kernel_equals_reference_and_follows_the_float_network(kind):
    net = _conv_net(kind)
    x = _counts()
    q = quantize(net, "loihi", calib=x, input_shape=(C, H, H))
    assert [l.conv is not None for l in q.layers][:2] == [True, True]
    assert all(l.pool is None or not l.pool.divide for l in q.layers)  # averages became sums + weights / area
    r = simulate(q, x, record=True)
    _same(r, simulate_reference(q, x, record=True))
    _same(r, simulate(q, x, record=True, parallel=False))
    assert r.saturations == 0
    fres = to_network(net, input_shape=(C, H, H)).run(x, record=True)
    for ql, rec, frec in zip(q.layers, r.records, fres.records):
        if ql.model.spiking:
            assert frec.sum() > 0 and rec["out"].sum() > 0
            assert (rec["out"] == frec.numpy()).mean() >= 0.97, ql.model.name
    # the dequantized float network runs the very same layers (convolutions, sum pooling)
    back = q.to_network()
    assert [l.conv for l in back.layers] == [l.conv for l in q.layers]
    assert [l.pool for l in back.layers] == [l.pool for l in q.layers]


def test_hand_computed_convolution_and_sum_pooling():
    # 1 x 4 x 4 frames, sum pooling 2 x 2 stride 1 (-> 3 x 3), kernel [[1, 2], [3, 4]] (-> 2 x 2), no leak.
    n = 4
    layer = QuantizedLayer(
        model=LIF, weight=np.array([[[[1, 2], [3, 4]]]], np.int64), weight_exp=0, bias=np.array([5], np.int64),
        bias_exp=0, coefs={"decay": np.full(n, 4096, np.int64), "gain": np.full(n, 4096, np.int64),
                           "v_rest": np.zeros(n, np.int64), "threshold": np.full(n, 1000, np.int64),
                           "v_reset": np.zeros(n, np.int64), "reset_sub": np.ones(n, np.int64)},
        init=(np.zeros(n, np.int64),), scale=1.0, conv=Conv((1, 3, 3)), pool=Pool((1, 4, 4), 2, 1, divide=False))
    q = QuantizedNetwork([layer], LOIHI)
    x = np.zeros((2, 1, 16), np.int64)
    x[0, 0, 5] = 1   # pixel (1, 1): pooled cells (0..1, 0..1) get 1
    x[1, 0, 15] = 2  # pixel (3, 3): pooled cell (2, 2) gets 2
    # step 0: pooled [[1,1,0],[1,1,0],[0,0,0]]; out(i,j) = sum_uv k[u,v] p[i+u, j+v] + 5
    #   (0,0): 1+2+3+4 = 10, (0,1): 1+3 = 4, (1,0): 1+2 = 3, (1,1): 1 -> + 5
    # step 1: pooled (2,2) = 2 reaches out (1,1) through k[1,1] = 4: + 8 + 5
    want = np.array([[15, 9, 8, 6], [20, 14, 13, 19]])
    for r in (simulate(q, x, record=True), simulate_reference(q, x, record=True)):
        np.testing.assert_array_equal(r.records[0]["v"][:, 0], want)


def test_conv_stream_in_chunks_equals_the_whole_run():
    q = quantize(_conv_net("stack"), "loihi")
    x = _counts().numpy().astype(np.int64)
    whole = simulate(q, x, record=True)
    for c in (1, 7):
        s = q.stream(3, record=True)
        parts = [s.step(x[i:i + c]) for i in range(0, x.shape[0], c)]
        np.testing.assert_array_equal(np.concatenate([p.out for p in parts]), whole.out)
        for li in range(len(q.layers)):
            np.testing.assert_array_equal(np.concatenate([p.records[li]["out"] for p in parts]),
                                          whole.records[li]["out"])


def test_bad_conv_layers_are_named():
    n = 4
    kw = dict(model=LIF, weight_exp=0, bias=np.zeros(1, np.int64), bias_exp=0,
              coefs={"decay": np.full(n, 4096, np.int64), "gain": np.full(n, 4096, np.int64),
                     "v_rest": np.zeros(n, np.int64), "threshold": np.full(n, 1000, np.int64),
                     "v_reset": np.zeros(n, np.int64), "reset_sub": np.ones(n, np.int64)},
              init=(np.zeros(n, np.int64),), scale=1.0)
    w = np.ones((1, 1, 2, 2), np.int64)
    with pytest.raises(ConfigError, match="sum pooling"):
        QuantizedNetwork([QuantizedLayer(weight=w, conv=Conv((1, 3, 3)), pool=Pool((1, 4, 4), 2, 1), **kw)], LOIHI)
    with pytest.raises(ConfigError, match="weight outside"):
        QuantizedNetwork([QuantizedLayer(weight=w * 1000, conv=Conv((1, 3, 3)), **kw)], LOIHI)
    with pytest.raises(Exception, match="quantized layer 0"):
        QuantizedNetwork([QuantizedLayer(weight=w, conv=Conv((2, 3, 3)), **kw)], LOIHI)


def test_chip_file_round_trip_of_a_conv_network(tmp_path):
    import h5py

    from neurodyn.export import read_hdf5, write_hdf5
    q = quantize(_conv_net("strided"), "loihi", input_shape=(C, H, H))
    path = write_hdf5(q, tmp_path / "conv.h5")
    with h5py.File(path) as f:  # lava's Conv layout: x (width) first, weight [C_out, kW, kH, C_in]
        assert f["layer/1/type"][()] == b"conv"
        assert list(f["layer/1/inShape"][()]) == [H, H, C] and list(f["layer/1/shape"][()]) == [7, 7, 5]
        assert f["layer/2/weight"].shape == (3, 2, 3, 5) and list(f["layer/2/padding"][()]) == [0, 1]
        assert list(f["layer/1/pool/kernel"][()]) == [3, 3]
    back = read_hdf5(path)
    x = _counts()
    _same(simulate(back, x, record=True), simulate(q, x, record=True))
    for a, b in zip(back.layers, q.layers):
        assert a.conv == b.conv and a.pool == b.pool
        np.testing.assert_array_equal(a.weight, b.weight)


def test_nir_export_of_lifted_conv_networks_is_refused_by_name():
    pytest.importorskip("nir")
    from neurodyn.export import to_nir
    net = _conv_net("stack")
    with pytest.raises(ConfigError, match="export the torch model"):
        to_nir(quantize(net, "loihi"))
    with pytest.raises(ConfigError, match="export the torch model"):
        to_nir(to_network(net), dt=1.0)

"""neurodyn -> HDF5 chip network file -> neurodyn gives the same integers and the same outputs."""
import h5py
import numpy as np
import pytest

from export_nets import make_net, spikes_input
from neurodyn.errors import DataFormatError
from neurodyn.export import quantize, simulate
from neurodyn.export.hdf5_io import read_hdf5, write_hdf5


@pytest.fixture(scope="module")
def qnet():
    x = spikes_input()
    rng = np.random.default_rng(3)
    delays = [rng.integers(0, 4, size=(40, 32)), rng.integers(0, 2, size=(32, 24)), rng.integers(0, 3, size=(24, 10))]
    return quantize(make_net("mixed"), "loihi", calib=x, delays=delays), x


def test_round_trip_same_integers_and_outputs(qnet, tmp_path):
    q, x = qnet
    p = write_hdf5(q, tmp_path / "net.h5")
    r = read_hdf5(p)
    assert r.fmt == q.fmt and r.dt == q.dt and r.report == q.report
    for a, b in zip(q.layers, r.layers):
        assert a.model is b.model
        for f in ("weight", "bias", "recurrent", "delay"):
            u, v = getattr(a, f), getattr(b, f)
            assert (u is None) == (v is None)
            if u is not None:
                np.testing.assert_array_equal(u, v)
        assert (a.weight_exp, a.bias_exp, a.threshold_exp, a.recurrent_exp, a.scale) == \
               (b.weight_exp, b.bias_exp, b.threshold_exp, b.recurrent_exp, b.scale)
        for c in a.model.coefs:
            np.testing.assert_array_equal(a.coefs[c], b.coefs[c])
    ra, rb = simulate(q, x, record=True), simulate(r, x, record=True)
    assert ra.counts[0].sum() > 0
    np.testing.assert_array_equal(ra.out, rb.out)
    for u, v in zip(ra.records, rb.records):
        np.testing.assert_array_equal(u["out"], v["out"])


def test_netx_style_layout(qnet, tmp_path):
    q, _ = qnet
    p = write_hdf5(q, tmp_path / "net.h5")
    with h5py.File(p) as f:
        assert f["layer/0/type"][()] == b"input"
        assert f["layer/1/type"][()] == b"dense"
        assert f["layer/1/weight"].shape == (32, 40) and f["layer/1/weight"].dtype == np.int8
        assert f["layer/2/neuron/type"][()] == b"CUBA"
        # vDecay is the Loihi decay amount: 4096 - multiplier
        np.testing.assert_array_equal(f["layer/1/neuron/vDecay"][()], 4096 - q.layers[0].coefs["decay"])
        np.testing.assert_array_equal(f["layer/2/neuron/vThMant"][()] << f["layer/2/neuron/vThExp"][()],
                                      q.layers[1].coefs["threshold"])
        assert "recurrent" in f["layer/2"] and "recurrent" not in f["layer/1"] and "delay" in f["layer/1"]


def test_dequantized_float_network_rebuilt(tmp_path):
    x = spikes_input()
    q = quantize(make_net("lif"), "loihi", calib=x)
    p = write_hdf5(q, tmp_path / "n.h5")
    with h5py.File(p) as f:
        assert "delay" not in f["layer/1"]
    r = read_hdf5(p)
    assert all(l.delay is None for l in r.layers)
    a, b = q.to_network().run(x), r.to_network().run(x)
    np.testing.assert_array_equal(a.out.numpy(), b.out.numpy())


def test_bad_files(tmp_path, qnet):
    q, _ = qnet
    with pytest.raises(DataFormatError, match="no such file"):
        read_hdf5(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(DataFormatError, match="not an HDF5 file"):
        read_hdf5(junk)
    p = write_hdf5(q, tmp_path / "net.h5")
    with h5py.File(p, "a") as f:
        del f["layer/2/neuron/vThMant"]
    with pytest.raises(DataFormatError, match="layer/2/neuron/vThMant"):
        read_hdf5(p)
    p = write_hdf5(q, tmp_path / "net2.h5")
    with h5py.File(p, "a") as f:
        w = f["layer/1/weight"][()].astype(np.int32)
        del f["layer/1/weight"]
        f["layer/1/weight"] = w * 4   # no longer fits 8 bits
    with pytest.raises(DataFormatError, match="weight outside the 8-bit"):
        read_hdf5(p)


def test_write_is_atomic(qnet, tmp_path, monkeypatch):
    q, _ = qnet
    p = write_hdf5(q, tmp_path / "net.h5")
    before = p.read_bytes()

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(h5py.Group, "create_group", boom)
    with pytest.raises(RuntimeError):
        write_hdf5(q, p)
    assert p.read_bytes() == before
    assert [c.name for c in tmp_path.iterdir()] == ["net.h5"]

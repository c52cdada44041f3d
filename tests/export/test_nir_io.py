"""NIR: neurodyn -> NIR -> neurodyn round trips, quantized graphs with delays, and peers reading our graphs."""
import contextlib
import io

import numpy as np
import pytest
import torch

import neurodyn.nn as ndn
from export_nets import make_net, spikes_input
from neurodyn.errors import ConfigError, DataFormatError
from neurodyn.export import quantize, simulate
from neurodyn.export.nir_io import from_nir, quantized_from_nir, read_nir, to_nir, write_nir

nir = pytest.importorskip("nir", reason="the nir package is not installed (pip install 'neurodyn[nir]')")


@pytest.mark.parametrize("integration", ["exact", "euler"])
def test_module_round_trip_same_outputs(tmp_path, integration):
    net = make_net("mixed")
    for m in net.modules():
        if isinstance(m, ndn.SpikingNeuron):
            m.integration = integration
    x = spikes_input()
    g = read_nir(write_nir(net, tmp_path / "net.nir"))
    assert {type(n).__name__ for n in g.nodes.values()} >= {"LIF", "CubaLIF", "LI", "Affine", "Linear"}
    back = from_nir(g)
    with torch.no_grad():
        a, b = net(x), back(x)
        ha, hb = net[:2](x), back[:2](x)
    assert ha.sum() > 0, "the test network should spike"
    torch.testing.assert_close(hb, ha, rtol=0, atol=0)
    torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-12)
    # Subtract reset survives through metadata; the CUBA layer's zero reset too.
    assert back[1].reset_sub == 1.0 and back[2].neuron.reset_sub == 0.0


def test_parameter_mapping_in_seconds():
    net = torch.nn.Sequential(ndn.Linear(3, 2), ndn.LIF(tau_mem=5.0, dt=0.5, integration="euler", threshold=0.7,
                                                        normalize_input=False))
    g = to_nir(net)
    lif = g.nodes["lif0"]
    np.testing.assert_allclose(lif.tau, 5e-3, rtol=1e-6)
    # gain 1 with decay 1 - dt/tau: r = gain / (1 - decay) = tau / dt
    np.testing.assert_allclose(lif.r, 10.0, rtol=1e-6)
    np.testing.assert_allclose(lif.v_threshold, 0.7)
    np.testing.assert_array_equal(g.nodes["fc0"].weight, net[0].weight.detach().numpy())


def test_quantized_with_delays_round_trip(tmp_path):
    net = make_net("mixed")
    x = spikes_input()
    rng = np.random.default_rng(5)
    delays = [rng.integers(0, 4, size=s) for s in [(40, 32), (32, 24), (24, 10)]]
    q = quantize(net, "loihi", calib=x, delays=delays)
    g = read_nir(write_nir(q, tmp_path / "q.nir"))
    d = g.nodes["delay0_d3"]
    np.testing.assert_allclose(d.delay, 3e-3)     # 3 steps of 1 ms, in seconds
    q2 = quantized_from_nir(g)
    assert q2.fmt == q.fmt
    for a, b in zip(q.layers, q2.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        live = a.weight != 0   # a synapse whose weight rounded to 0 carries no delay in NIR
        np.testing.assert_array_equal(a.delay[live], b.delay[live])
        for c in a.model.coefs:
            np.testing.assert_array_equal(a.coefs[c], b.coefs[c])
    np.testing.assert_array_equal(simulate(q, x).out, simulate(q2, x).out)
    with pytest.raises(ConfigError, match="delays"):
        from_nir(g)


def test_errors(tmp_path):
    net = make_net("lif")
    g = to_nir(net)
    g.metadata = {}
    with pytest.raises(ConfigError, match="dt"):
        from_nir(g)
    assert isinstance(from_nir(g, dt=1.0), torch.nn.Sequential)
    with pytest.raises(ConfigError, match="fixed-point"):
        quantized_from_nir(to_nir(net))
    junk = tmp_path / "junk.nir"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(DataFormatError, match="junk.nir"):
        read_nir(junk)
    with pytest.raises(ConfigError, match="alif"):
        to_nir(torch.nn.Sequential(ndn.Linear(3, 2), ndn.ALIF()))


# ------------------------------------------------------------------------------------------ peers
# Peers discretize NIR with forward Euler and reset to v_reset, so the neurodyn side uses
# integration='euler' and reset='zero' (the subtract reset has no NIR meaning for them).


def _peer_net(neuron: str, dt: float) -> torch.nn.Sequential:
    torch.manual_seed(3)
    if neuron == "lif":
        def mk():
            return ndn.LIF(tau_mem=5.0 * dt, dt=dt, integration="euler", reset="zero")
        gain = 6.0
    else:
        # snnTorch's Synaptic has no input gain: normalize_input=False (gain 1).
        def mk():
            return ndn.CUBALIF(tau_syn=2.0 * dt, tau_mem=5.0 * dt, dt=dt, integration="euler", reset="zero",
                               normalize_input=False)
        gain = 0.6
    net = torch.nn.Sequential(ndn.Linear(20, 16), mk(), ndn.Linear(16, 8), mk()).eval()
    with torch.no_grad():
        net[0].weight.mul_(gain)
        net[2].weight.mul_(gain * 3)
        net[2].bias.fill_(0.1 * gain)
    return net


def _run_steps(module, x, stateful_return: bool):
    outs, state = [], None
    with torch.no_grad():
        for t in range(x.shape[0]):
            if stateful_return:
                o, state = module(x[t], state)
            else:
                o = module(x[t])
                o = o[0] if isinstance(o, tuple) else o
            outs.append(o)
    return torch.stack(outs)


@pytest.mark.parametrize("neuron", ["lif", "cuba"])
def test_norse_reads_our_nir(neuron):
    norse_torch = pytest.importorskip("norse.torch", reason="norse is not installed")
    net = _peer_net(neuron, dt=1.0)
    x = (torch.rand(80, 6, 20, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    with torch.no_grad():
        ours = net(x)
    peer = norse_torch.from_nir(to_nir(net), dt=1e-3)
    theirs = _run_steps(peer, x, stateful_return=True)
    assert ours.sum() >= 50, "the test network should spike"
    # float32 on both sides, same Euler step: identical spike trains
    torch.testing.assert_close(theirs, ours, rtol=0, atol=0)


@pytest.mark.parametrize("neuron", ["lif", "cuba"])
def test_snntorch_reads_our_nir(neuron):
    pytest.importorskip("snntorch", reason="snntorch is not installed")
    from snntorch import utils as sutils
    from snntorch.import_nir import import_from_nir
    # snnTorch's importer assumes dt = 1e-4 s: build ours with dt = 0.1 ms.
    net = _peer_net(neuron, dt=0.1)
    x = (torch.rand(80, 6, 20, generator=torch.Generator().manual_seed(1)) < 0.3).float()
    with torch.no_grad():
        ours = net(x)
    with contextlib.redirect_stdout(io.StringIO()):   # its importer prints warnings about weight scaling
        peer = import_from_nir(to_nir(net))
    sutils.reset(peer)
    theirs = _run_steps(peer, x, stateful_return=False)
    assert ours.sum() >= 50, "the test network should spike"
    # snnTorch rescales the threshold instead of the input (v/gain): float32 rounding may
    # move a value sitting exactly at threshold, nothing more.
    assert (theirs != ours).float().mean() <= 1e-3
    assert abs(theirs.sum() - ours.sum()) <= 2


def test_a_delayed_model_round_trips_with_its_delays():
    """Rounded DelayedLinear layers (of a module or a core.Network) go out as Affine -> Delay
    branches and come back as DelayedLinear with the same integer delays: the same outputs."""
    from neurodyn.nn.convert import to_network
    from neurodyn.nn.delays import DelayedLinear, round_delays
    torch.manual_seed(0)
    net = torch.nn.Sequential(DelayedLinear(10, 8, max_delay=5, bias=True), ndn.LIF(tau_mem=5.0),
                              ndn.Linear(8, 3), ndn.LI(tau_mem=8.0)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            if p.is_floating_point():
                p.mul_(6.0)
    net = round_delays(net)
    x = (torch.rand(30, 4, 10) < 0.2).double()
    want = to_network(net).run(x).out
    for src in (to_nir(net), to_nir(to_network(net), dt=1.0)):
        assert sum(isinstance(n, nir.Delay) for n in src.nodes.values()) > 1
        back = from_nir(src)
        assert isinstance(back[0], DelayedLinear) and back[0].rounded
        assert torch.equal(back[0].integer_delays(), net[0].integer_delays())
        torch.testing.assert_close(to_network(back).run(x).out, want, rtol=1e-12, atol=1e-12)

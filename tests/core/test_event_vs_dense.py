"""The same network run dense (torch modules) and event-driven (core.Network) gives identical outputs."""
import pytest
import torch

import neurodyn.nn as ndn
from neurodyn.nn.convert import to_network
from neurodyn.core import Network


def _net(kind: str) -> torch.nn.Sequential:
    if kind == "lif":
        layers = [ndn.Linear(40, 32), ndn.LIF(tau_mem=5.0), ndn.Linear(32, 10), ndn.LI(tau_mem=10.0)]
    elif kind == "mixed":
        layers = [ndn.Linear(40, 32), ndn.ALIF(tau_mem=5.0, tau_adapt=50.0, reset="zero", v_reset=-0.1),
                  ndn.Recurrent(32, 24, ndn.CUBALIF(tau_syn=2.0, tau_mem=5.0)), torch.nn.Dropout(0.2),
                  ndn.Linear(24, 12), ndn.LIF(tau_mem=4.0, normalize_input=False)]
    net = torch.nn.Sequential(*layers).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(6.0)
    return net


@pytest.mark.parametrize("kind", ["lif", "mixed"])
def test_event_driven_equals_dense(kind):
    net = _net(kind)
    x = (torch.rand(80, 6, 40) < 0.08).double() * torch.randint(1, 3, (80, 6, 40)).double()
    with torch.no_grad():
        dense = [x]
        h = x
        for m in net:
            h = m(h)
            if isinstance(m, (ndn.SpikingNeuron, ndn.Recurrent)):
                dense.append(h)
    res = to_network(net).run(x, record=True)
    assert len(res.records) == len(dense) - 1
    for rec, d in zip(res.records, dense[1:]):
        torch.testing.assert_close(rec, d, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(res.out, dense[-1], rtol=1e-12, atol=1e-12)
    for rec, cnt in zip(res.records[:-1], res.counts[:-1]):
        assert rec.sum() > 0, "test network should spike"
        assert torch.equal(rec.sum((0, 2)).long(), cnt)


def test_per_sample_steps_stop_samples():
    net = _net("lif")
    x = (torch.rand(50, 4, 40) < 0.1).double()
    steps = torch.tensor([50, 20, 0, 35])
    full = to_network(net).run(x)
    part = to_network(net).run(x, steps=steps)
    for b, s in enumerate(steps.tolist()):
        torch.testing.assert_close(part.out[:s, b], full.out[:s, b])
        assert part.out[s:, b].abs().sum() == 0
    assert part.counts[0][2] == 0


def test_float32_network_matches_dense_float32():
    net = _net("lif").float()
    x = (torch.rand(60, 5, 40) < 0.1).float()
    with torch.no_grad():
        y = net(x)
    res = to_network(net).run(x)
    torch.testing.assert_close(res.out, y, rtol=1e-4, atol=1e-4)

"""Rounded learnable delays in the event core: per-synapse ring buffers give the dense network's outputs."""
import numpy as np
import pytest
import torch
from torch import nn

import neurodyn.nn as ndn
from neurodyn.nn.convert import to_network
from neurodyn.core import Network
from neurodyn.delays import delay_snn
from neurodyn.errors import ConfigError
from neurodyn.nn.delays import DelayedLinear, round_delays


def _net(dtype=torch.float64):
    torch.manual_seed(0)
    net = nn.Sequential(DelayedLinear(30, 24, max_delay=7, bias=True, dtype=dtype),
                        ndn.LIF(tau_mem=5.0, threshold=0.3),
                        DelayedLinear(24, 6, max_delay=4, dtype=dtype), ndn.LI(tau_mem=8.0))
    with torch.no_grad():
        for m in net:
            if isinstance(m, DelayedLinear):
                m.weight.mul_(3.0)
    return round_delays(net).eval()


def _input(T=40, B=5, n=30, dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    return (torch.rand(T, B, n, generator=g) < 0.1).to(dtype)


def test_event_core_with_delays_equals_dense():
    net, x = _net(), _input()
    with torch.no_grad():
        ref = net(x)
        hidden = net[1](net[0](x))
    core = to_network(net)
    assert core.layers[0].delays.shape == (30, 24) and core.layers[0].delays.max() > 0
    res = core.run(x, record=True)
    assert hidden.sum() > 0
    assert torch.equal(res.records[0], hidden), "hidden spikes differ"
    torch.testing.assert_close(res.out, ref, rtol=1e-10, atol=1e-10)
    ptr, idx, val = core.events_from_dense(x)
    ev = core.run_events(ptr, idx, val, x.shape[0], np.full(x.shape[1], x.shape[0], dtype=np.int64))
    torch.testing.assert_close(ev.out, ref, rtol=1e-10, atol=1e-10)


def test_delays_change_the_event_core_output():
    """Guard against a kernel that ignores the delays: zero delays give another answer."""
    net, x = _net(), _input()
    delayed = to_network(net).run(x).out
    with torch.no_grad():
        for m in net:
            if isinstance(m, DelayedLinear):
                m.delay_param.zero_()
    assert not torch.allclose(to_network(net).run(x).out, delayed)


def test_recipe_network_with_batchnorm_runs_event_driven():
    torch.manual_seed(0)
    net = delay_snn(12, [10], 3, dt_ms=1.0, max_delay_ms=6.0, sigma_init=0.5, sigma_decay_epochs=1)
    x = (torch.rand(25, 4, 12) < 0.3).float()
    net.train()
    for _ in range(3):  # give batch norm running statistics
        net(x)
    with pytest.raises(ConfigError, match="round"):
        to_network(net.eval())
    round_delays(net).eval()
    with torch.no_grad():
        ref = net(x)
    torch.testing.assert_close(to_network(net).run(x).out, ref, rtol=1e-4, atol=1e-4)

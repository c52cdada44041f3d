"""Our LIF against SpikingJelly's LIFNode and snnTorch's Leaky with matched parameters."""
import math

import pytest
import torch

from neurodyn.nn import LIF, from_spikingjelly


@pytest.mark.parametrize("hard_reset", [True, False])
@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_lif_matches_spikingjelly(hard_reset, backend):
    sj = pytest.importorskip("spikingjelly.activation_based.neuron", reason="spikingjelly not installed")
    from spikingjelly.activation_based import functional, surrogate

    tau = 2.0
    node = sj.LIFNode(tau=tau, decay_input=True, v_threshold=1.0, v_reset=0.0 if hard_reset else None,
                      surrogate_function=surrogate.ATan(alpha=2.0), step_mode="m")
    ours = LIF(tau_mem=tau, dt=1.0, integration="euler", normalize_input=True, threshold=1.0,
               reset="zero" if hard_reset else "subtract", surrogate="atan", alpha=2.0, backend=backend)
    x = (torch.rand(60, 4, 32, dtype=torch.float64) * 3.0).requires_grad_()
    functional.reset_net(node)
    s_sj = node(x)
    s_ours = ours.double()(x)
    assert s_sj.sum() > 10
    assert torch.equal(s_sj, s_ours)
    w = torch.randn_like(s_sj)
    g_sj, = torch.autograd.grad((s_sj * w).sum(), x)
    g_ours, = torch.autograd.grad((s_ours * w).sum(), x)
    torch.testing.assert_close(g_ours, g_sj, rtol=1e-9, atol=1e-9)
    # conversion helper builds the same neuron
    conv = from_spikingjelly(node).double()
    assert torch.equal(conv(x), s_sj)


def test_lif_matches_snntorch_leaky():
    snn = pytest.importorskip("snntorch", reason="snntorch not installed")
    beta = 0.85
    leaky = snn.Leaky(beta=beta, threshold=1.0, reset_mechanism="zero")
    tau = -1.0 / math.log(beta)  # exp(-dt/tau) == beta
    ours = LIF(tau_mem=tau, dt=1.0, integration="exact", normalize_input=False, threshold=1.0,
               reset="zero").double()
    x = torch.rand(80, 3, 16, dtype=torch.float64) * 0.6
    mem = leaky.init_leaky()
    spk = []
    for t in range(x.shape[0]):
        s, mem = leaky(x[t], mem)
        spk.append(s)
    spk = torch.stack(spk)
    got = ours(x)
    assert spk.sum() > 10
    assert torch.equal(got, spk.to(got.dtype))

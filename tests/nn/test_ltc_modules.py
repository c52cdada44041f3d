"""Multi-step LTC / CfC modules: copied from ncps they compute the same numbers and gradients."""
import pytest
import torch

from neurodyn.errors import ConfigError, ShapeError
from neurodyn.nn.ltc import LTC, CfC

ncps_torch = pytest.importorskip("ncps.torch")
wirings = pytest.importorskip("ncps.wirings")
D = torch.float64


def _run_cell(cell, x, ts=None, h=None):
    """ncps cell over time with [B, 1] elapsed times (ncps's sequence wrappers squeeze them to [B])."""
    T, B = x.shape[:2]
    h = torch.zeros(B, cell.state_size if hasattr(cell, "state_size") else cell.hidden_size,
                    dtype=x.dtype) if h is None else h
    outs = []
    for t in range(T):
        o, h = cell(x[t], h, 1.0 if ts is None else ts[t][:, None])
        outs.append(o)
    return torch.stack(outs), h


def _grads(loss, tensors):
    return torch.autograd.grad(loss, tensors)


@pytest.mark.parametrize("wiring, implicit", [
    (lambda: wirings.FullyConnected(8), False),
    (lambda: wirings.FullyConnected(8, output_dim=3), True),
    (lambda: wirings.AutoNCP(16, 4), False),
    (lambda: wirings.AutoNCP(16, 4), True),
])
def test_ltc_matches_ncps_sequence(wiring, implicit):
    rnn = ncps_torch.LTC(5, wiring(), batch_first=False, implicit_param_constraints=implicit).to(D)
    with torch.no_grad():
        for k in ("input_w", "input_b", "output_w", "output_b"):
            rnn.rnn_cell._params[k].add_(0.2 * torch.randn_like(rnn.rnn_cell._params[k]))
    ours = LTC.from_ncps(rnn)
    assert ours.constraint == ("softplus" if implicit else "clip")
    x = torch.randn(12, 3, 5, dtype=D, requires_grad=True)
    h0 = 0.3 * torch.randn(3, ours.hidden, dtype=D)
    ref, ref_h = rnn(x, h0)
    y, h = ours(x, h0, return_state=True)
    assert y.shape == ref.shape == (12, 3, ours.out_features)
    assert torch.allclose(y, ref, rtol=0, atol=1e-12) and torch.allclose(h, ref_h, rtol=0, atol=1e-12)
    wts = torch.randn_like(ref)
    g_ref = _grads((ref * wts).sum(), [x, rnn.rnn_cell._params["sigma"], rnn.rnn_cell._params["gleak"]])
    g = _grads((y * wts).sum(), [x, ours.sigma, ours.gleak])
    for a, b in zip(g, g_ref):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
        assert a.abs().max() > 0


def test_ltc_irregular_elapsed_matches_ncps_cell():
    cell = ncps_torch.LTCCell(wirings.AutoNCP(12, 3), in_features=4).to(D)
    ours = LTC.from_ncps(cell)
    x = torch.randn(10, 6, 4, dtype=D, requires_grad=True)
    ts = torch.rand(10, 6, dtype=D) * 2 + 0.05
    ref, ref_h = _run_cell(cell, x, ts)
    y, h = ours(x, elapsed=ts, return_state=True)
    assert torch.allclose(y, ref, rtol=0, atol=1e-12) and torch.allclose(h, ref_h, rtol=0, atol=1e-12)
    assert not torch.allclose(y, ours(x), atol=1e-3)  # the times matter
    g_ref, = _grads(ref.square().sum(), [x])
    g, = _grads(y.square().sum(), [x])
    assert torch.allclose(g, g_ref, rtol=1e-9, atol=1e-12)
    # [T] elapsed = the same time for every sample
    assert torch.allclose(ours(x, elapsed=ts[:, 0]), _run_cell(cell, x, ts[:, :1].expand(10, 6))[0], atol=1e-12)


def test_ltc_float32_matches_ncps():
    rnn = ncps_torch.LTC(6, wirings.AutoNCP(20, 5), batch_first=False)
    ours = LTC.from_ncps(rnn)
    x = torch.randn(30, 4, 6)
    assert torch.allclose(ours(x), rnn(x)[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("mode", ["default", "pure", "no_gate"])
def test_cfc_matches_ncps_sequence(mode):
    rnn = ncps_torch.CfC(5, 8, proj_size=3, batch_first=False, mode=mode, backbone_units=16,
                         backbone_layers=2).to(D).eval()
    ours = CfC.from_ncps(rnn)
    assert ours.out_features == 3 and ours.mode == mode
    x = torch.randn(9, 4, 5, dtype=D, requires_grad=True)
    h0 = torch.randn(4, 8, dtype=D)
    ref, ref_h = rnn(x, h0)
    y, h = ours(x, h0, return_state=True)
    assert torch.allclose(y, ref, rtol=0, atol=1e-12) and torch.allclose(h, ref_h, rtol=0, atol=1e-12)
    wts = torch.randn_like(ref)
    g_ref = _grads((ref * wts).sum(), [x, rnn.rnn_cell.ff1.weight, rnn.fc.weight])
    g = _grads((y * wts).sum(), [x, ours.ff1_w, ours.proj.weight])
    for a, b in zip(g, g_ref):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("mode", ["default", "pure", "no_gate"])
def test_cfc_irregular_elapsed_matches_ncps_cell(mode):
    cell = ncps_torch.CfCCell(3, 7, mode=mode, backbone_activation="gelu", backbone_units=12,
                              backbone_layers=1).to(D)
    ours = CfC.from_ncps(cell)
    assert ours.activation == "gelu"
    x = torch.randn(8, 5, 3, dtype=D)
    ts = torch.rand(8, 5, dtype=D) * 3
    ref, ref_h = _run_cell(cell, x, ts)
    y, h = ours(x, elapsed=ts, return_state=True)
    assert torch.allclose(y, ref, rtol=0, atol=1e-12) and torch.allclose(h, ref_h, rtol=0, atol=1e-12)


def test_cfc_float32_and_no_backbone():
    cell = ncps_torch.CfCCell(4, 10, backbone_layers=0)
    ours = CfC.from_ncps(cell)
    x = torch.randn(20, 3, 4)
    assert torch.allclose(ours(x), _run_cell(cell, x)[0], rtol=0, atol=1e-5)


@pytest.mark.parametrize("make", [lambda: LTC(3, 6, 2), lambda: CfC(3, 6, 2, backbone_units=8)])
def test_state_carries_over_split_sequences(make):
    m = make().double()
    x = torch.randn(10, 2, 3, dtype=D)
    ts = torch.rand(10, 2, dtype=D) + 0.1
    full, h_full = m(x, elapsed=ts, return_state=True)
    a, h_a = m(x[:4], elapsed=ts[:4], return_state=True)
    b, h_b = m(x[4:], state=h_a, elapsed=ts[4:], return_state=True)
    assert torch.allclose(torch.cat([a, b]), full, rtol=0, atol=1e-14)
    assert torch.equal(h_b, h_full)


def test_ltc_constraints_and_training_step():
    m = LTC(3, 5, constraint="clip")
    with torch.no_grad():
        m.w.sub_(0.5)
    m.apply_weight_constraints()
    assert float(m.w.detach().min()) == 0.0 and float(m.cm.detach().min()) > 0
    s = LTC(3, 5)  # softplus: stored values may be negative, effective ones positive
    with torch.no_grad():
        s.cm.fill_(-3.0)
    assert float(s.params().cm.detach().min()) > 0 and torch.isfinite(s(torch.randn(4, 2, 3))).all()
    # every trainable parameter gets a gradient
    y = s(torch.randn(4, 2, 3))
    y.square().sum().backward()
    for name, prm in s.named_parameters():
        assert prm.grad is not None and prm.grad.abs().max() > 0, name


def test_bad_inputs():
    ltc, cfc = LTC(3, 4), CfC(3, 4, backbone_units=8)
    for m in (ltc, cfc):
        with pytest.raises(ShapeError, match=r"\[T, B, 3\]"):
            m(torch.randn(5, 3))
        with pytest.raises(ShapeError, match=r"\[T, B, 3\]"):
            m(torch.randn(5, 2, 4))
        with pytest.raises(ShapeError, match="dtype"):
            m(torch.ones(5, 2, 3, dtype=torch.int32))
        with pytest.raises(ShapeError, match=r"state of shape \[2, 4\]"):
            m(torch.randn(5, 2, 3), state=torch.zeros(2, 3))
        with pytest.raises(ShapeError, match="elapsed"):
            m(torch.randn(5, 2, 3), elapsed=torch.ones(4, 2))
        with pytest.raises(ShapeError, match="float64"):
            m(torch.randn(5, 2, 3, dtype=D))
    with pytest.raises(ConfigError, match="positive"):
        ltc(torch.randn(5, 2, 3), elapsed=-torch.ones(5, 2))
    with torch.no_grad():
        ltc.sensory_mu[0, 0] = float("nan")
        cfc.time_a_w[1, 1] = float("inf")
    with pytest.raises(ConfigError, match="sensory_mu"):
        ltc(torch.randn(5, 2, 3))
    with pytest.raises(ConfigError, match="time_a_w"):
        cfc(torch.randn(5, 2, 3))
    with pytest.raises(ConfigError, match="constraint"):
        LTC(3, 4, constraint="abs")
    with pytest.raises(ConfigError, match="mode"):
        CfC(3, 4, mode="closed")
    with pytest.raises(ConfigError, match="from_ncps"):
        LTC.from_ncps(torch.nn.Linear(2, 2))

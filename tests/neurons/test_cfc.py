"""CfC pure step: against ncps's CfCCell in every mode, and its closed-form limits."""
import pytest
import torch

from neurodyn.errors import ConfigError, ShapeError
from neurodyn.neurons.cfc import CfCParams, cfc_step, check_cfc_params, init_cfc_params, lecun_tanh

ncps_torch = pytest.importorskip("ncps.torch")
D = torch.float64


def _params_from_cell(cell) -> CfCParams:
    lin = [m for m in cell.backbone if isinstance(m, torch.nn.Linear)] if cell.backbone is not None else []
    heads = {"ff1_w": cell.ff1.weight, "ff1_b": cell.ff1.bias}
    if cell.mode == "pure":
        heads.update(w_tau=cell.w_tau[0], A=cell.A[0])
    else:
        for n in ("ff2", "time_a", "time_b"):
            heads[f"{n}_w"], heads[f"{n}_b"] = getattr(cell, n).weight, getattr(cell, n).bias
    return CfCParams(backbone=tuple((m.weight, m.bias) for m in lin), mask=cell.sparsity_mask, **heads)


@pytest.mark.parametrize("mode", ["default", "pure", "no_gate"])
@pytest.mark.parametrize("layers, act", [(0, "lecun_tanh"), (1, "lecun_tanh"), (2, "silu"), (1, "gelu"),
                                         (1, "relu"), (1, "tanh")])
def test_step_matches_ncps_cell(mode, layers, act):
    cell = ncps_torch.CfCCell(4, 6, mode=mode, backbone_activation=act, backbone_units=10,
                              backbone_layers=layers).to(D)
    p = _params_from_cell(cell)
    check_cfc_params(p, mode)
    B = 5
    x = torch.randn(B, 4, dtype=D, requires_grad=True)
    h = torch.randn(B, 6, dtype=D, requires_grad=True)
    ts = torch.rand(B, 1, dtype=D) * 2
    for t in (1.0, ts):
        ref, _ = cell(x, h, t)
        ours = cfc_step(x, h, p, t, mode=mode, activation=act)
        assert torch.allclose(ours, ref, rtol=0, atol=1e-13)
    assert torch.allclose(cfc_step(x, h, p, ts[:, 0], mode=mode, activation=act), cell(x, h, ts)[0], atol=1e-13)
    wts = torch.randn(B, 6, dtype=D)
    params = [x, h, cell.ff1.weight]
    g_ref = torch.autograd.grad((cell(x, h, ts)[0] * wts).sum(), params)
    g_ours = torch.autograd.grad((cfc_step(x, h, p, ts, mode=mode, activation=act) * wts).sum(), params)
    for a, b in zip(g_ours, g_ref):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-13)
        assert a.abs().max() > 0


def test_sparsity_mask_matches_ncps():
    mask = torch.randint(-1, 2, (4 + 6, 6)).numpy().astype("int32")  # signed, 0 = no synapse; ncps takes |.|
    cell = ncps_torch.CfCCell(4, 6, backbone_layers=0, sparsity_mask=mask).to(D)
    p = _params_from_cell(cell)
    x, h = torch.randn(3, 4, dtype=D), torch.randn(3, 6, dtype=D)
    assert torch.allclose(cfc_step(x, h, p, 0.7), cell(x, h, 0.7)[0], rtol=0, atol=1e-13)
    assert not torch.allclose(cfc_step(x, h, p._replace(mask=None), 0.7), cell(x, h, 0.7)[0], atol=1e-3)


def test_float32_matches_ncps():
    cell = ncps_torch.CfCCell(5, 16, backbone_layers=2, backbone_units=32)
    p = _params_from_cell(cell)
    x, h = torch.randn(8, 5), torch.zeros(8, 16)
    for _ in range(10):
        ref, _ = cell(x, h, 1.0)
        assert torch.allclose(cfc_step(x, h, p), ref, rtol=0, atol=1e-6)
        h = ref


def test_closed_form_limits():
    g = torch.Generator().manual_seed(0)
    x, h = torch.randn(4, 3, generator=g, dtype=D), torch.randn(4, 5, generator=g, dtype=D)
    p = init_cfc_params(3, 5, mode="pure", backbone_units=8, generator=g, dtype=D)
    # pure: h' = A - A exp(-ts (|w_tau| + |f|)) f  ->  A as ts -> inf, A - A f at ts = 0
    assert torch.allclose(cfc_step(x, h, p, 1e6, mode="pure"), p.A.expand(4, 5), atol=1e-12)
    z = lecun_tanh(torch.cat([x, h], 1) @ p.backbone[0][0].T + p.backbone[0][1])
    f = z @ p.ff1_w.T + p.ff1_b
    assert torch.allclose(cfc_step(x, h, p, 0.0, mode="pure"), p.A - p.A * f, atol=1e-14)
    # default is a convex mix of tanh(ff1) and tanh(ff2): bounded by 1, and no_gate = default + gate * ff1
    q = init_cfc_params(3, 5, backbone_units=8, generator=g, dtype=D)
    d = cfc_step(x, h, q, 0.5)
    n = cfc_step(x, h, q, 0.5, mode="no_gate")
    assert float(d.abs().max()) < 1.0
    z = lecun_tanh(torch.cat([x, h], 1) @ q.backbone[0][0].T + q.backbone[0][1])
    gate = torch.sigmoid((z @ q.time_a_w.T + q.time_a_b) * 0.5 + z @ q.time_b_w.T + q.time_b_b)
    assert torch.allclose(n - d, gate * torch.tanh(z @ q.ff1_w.T + q.ff1_b), atol=1e-14)


def test_dropout_follows_layers_after_the_first():
    g = torch.Generator().manual_seed(0)
    x, h = torch.randn(4, 3, dtype=D), torch.randn(4, 5, dtype=D)
    one = init_cfc_params(3, 5, backbone_layers=1, generator=g, dtype=D)
    two = init_cfc_params(3, 5, backbone_layers=2, generator=g, dtype=D)
    assert torch.equal(cfc_step(x, h, one, dropout=0.5, training=True), cfc_step(x, h, one))  # ncps quirk
    assert not torch.equal(cfc_step(x, h, two, dropout=0.5, training=True), cfc_step(x, h, two))
    assert torch.equal(cfc_step(x, h, two, dropout=0.5, training=False), cfc_step(x, h, two))


def test_init_matches_ncps_scales():
    p = init_cfc_params(20, 30, backbone_units=64, generator=torch.Generator().manual_seed(0))
    a = (6 / (64 + 50)) ** 0.5
    W = p.backbone[0][0]
    assert W.shape == (64, 50) and float(W.abs().max()) <= a and float(W.abs().max()) > 0.9 * a
    assert float(p.backbone[0][1].abs().max()) <= 1 / 50 ** 0.5
    assert p.ff1_w.shape == (30, 64) and p.w_tau is None


def test_bad_inputs():
    p = init_cfc_params(3, 4, backbone_units=8)
    x, h = torch.randn(2, 3), torch.zeros(2, 4)
    with pytest.raises(ShapeError, match=r"\[B, 3\]"):
        cfc_step(torch.randn(2, 7), h, p)
    with pytest.raises(ShapeError, match=r"\[2, 4\]"):
        cfc_step(x, torch.zeros(3, 4), p)
    with pytest.raises(ShapeError, match="floating"):
        cfc_step(x.long(), h, p)
    with pytest.raises(ShapeError, match="ts"):
        cfc_step(x, h, p, torch.ones(5))
    with pytest.raises(ConfigError, match="mode"):
        cfc_step(x, h, p, mode="fancy")
    with pytest.raises(ConfigError, match="activation"):
        cfc_step(x, h, p, activation="swish")
    with pytest.raises(ShapeError, match="w_tau"):
        check_cfc_params(p, "pure")
    bad = p.ff2_w.clone()
    bad[0, 0] = float("inf")
    with pytest.raises(ConfigError, match="ff2_w"):
        check_cfc_params(p._replace(ff2_w=bad))

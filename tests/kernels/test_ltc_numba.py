"""The fused Numba LTC kernel against the torch reference ``ltc_step`` (outputs and gradients)."""
import numpy as np
import pytest
import torch

from neurodyn.errors import ConfigError, ShapeError
from neurodyn.neurons.ltc import LTCParams, constrain_ltc_params, init_ltc_params, ltc_output, ltc_step

K = pytest.importorskip("neurodyn.kernels.ltc_numba")
D = torch.float64


def _setup(T=6, B=5, F_in=4, H=9, M=3, seed=0, dtype=D):
    g = torch.Generator().manual_seed(seed)
    adj = torch.randint(-1, 2, (H, H), generator=g)          # sparse signed wiring
    p = init_ltc_params(F_in, H, M, adjacency=adj, generator=g, dtype=dtype)
    p = p._replace(input_w=p.input_w + 0.3 * torch.randn(F_in, generator=g, dtype=dtype),
                   input_b=0.3 * torch.randn(F_in, generator=g, dtype=dtype),
                   vleak=p.vleak + 0.1 * torch.randn(H, generator=g, dtype=dtype))
    leaves = LTCParams(*(t.clone().requires_grad_(True) for t in p))
    x = torch.randn(T, B, F_in, generator=g, dtype=dtype).requires_grad_(True)
    v0 = (0.3 * torch.randn(B, H, generator=g, dtype=dtype)).requires_grad_(True)
    ts = (torch.rand(T, B, generator=g, dtype=dtype) * 2 + 0.1).requires_grad_(True)
    return leaves, x, v0, ts


def _reference(x, v0, p, ts, unfolds=6):
    v, out = v0, []
    for t in range(x.shape[0]):
        v = ltc_step(x[t], v, p, ts if not isinstance(ts, torch.Tensor) else ts[t], unfolds=unfolds)
        out.append(v)
    return torch.stack(out)


@pytest.mark.parametrize("constraint", ["clip", "softplus"])
def test_forward_and_gradients_match_reference(constraint):
    raw, x, v0, ts = _setup()
    p = constrain_ltc_params(raw, constraint)
    ours = K.ltc_numba(x, v0, p, ts, unfolds=6)
    assert type(ours.grad_fn).__name__.startswith("_LTCUnfolds")  # the kernel really ran
    ref = _reference(x, v0, p, ts)
    assert torch.allclose(ours, ref, rtol=0, atol=1e-12)
    wts = torch.randn(ref.shape[:2] + (p.out_features,), dtype=D)
    inputs = [x, v0, ts, *(t for t in raw if t.requires_grad)]
    names = ["x", "v0", "elapsed", *LTCParams._fields]
    g_ours = torch.autograd.grad((ltc_output(ours, p) * wts).sum(), inputs, allow_unused=True, retain_graph=True)
    g_ref = torch.autograd.grad((ltc_output(ref, p) * wts).sum(), inputs, allow_unused=True)
    for n, a, b in zip(names, g_ours, g_ref):
        assert (a is None) == (b is None), n
        if a is not None:
            assert torch.allclose(a, b, rtol=1e-10, atol=1e-12), n
    assert float(g_ref[names.index("w")].abs().max()) > 0 and float(g_ref[names.index("mu")].abs().max()) > 0


def test_float_elapsed_and_unfolds():
    raw, x, v0, _ = _setup(T=4, B=3, H=6, M=6, seed=1)
    for e, u in ((1.0, 6), (0.25, 1), (3.0, 11)):
        assert torch.allclose(K.ltc_numba(x, v0, raw, e, unfolds=u), _reference(x, v0, raw, e, u), rtol=0, atol=1e-12)
    # [T] elapsed = the same step for every sample
    e_t = torch.tensor([0.5, 1.0, 2.0, 0.1], dtype=D)
    assert torch.allclose(K.ltc_numba(x, v0, raw, e_t), _reference(x, v0, raw, e_t[:, None].expand(4, 3)), atol=1e-12)


def test_float32_inputs():
    raw, x, v0, ts = _setup(dtype=torch.float32, seed=2)
    ours = K.ltc_numba(x, v0, raw, ts)
    assert ours.dtype == torch.float32
    assert torch.allclose(ours, _reference(x, v0, raw, ts), rtol=0, atol=2e-6)


def test_float32_kernel_values_and_gradients_against_float64():
    """The float32 kernel (float32 sigmoid and sums) against the float64 reference: float32 rounding only."""
    raw, x, v0, ts = _setup(T=8, B=6, H=12, seed=4)
    leaves32 = [t.detach().float().requires_grad_(True) for t in (x, v0, ts, *raw)]
    x32, v032, ts32, *p32 = leaves32
    ours = K.ltc_numba(x32, v032, LTCParams(*p32), ts32)
    ref = _reference(x, v0, raw, ts)
    assert ours.dtype == torch.float32
    assert float((ours.detach().double() - ref.detach()).abs().max()) < 2e-6
    wts = torch.randn(ref.shape[:2] + (raw.out_features,), dtype=D, generator=torch.Generator().manual_seed(5))
    g_ours = torch.autograd.grad((ltc_output(ours, LTCParams(*p32)) * wts.float()).sum(), leaves32, allow_unused=True)
    g_ref = torch.autograd.grad((ltc_output(ref, raw) * wts).sum(), [x, v0, ts, *raw], allow_unused=True)
    for name, a, b in zip(["x", "v0", "elapsed", *LTCParams._fields], g_ours, g_ref):
        assert (a is None) == (b is None), name
        if a is not None:
            scale = float(b.abs().max())
            assert float((a.double() - b).abs().max()) <= 1e-5 * scale + 1e-7, name


def test_float32_sigmoid_accuracy():
    from scipy.special import expit
    z = np.concatenate([np.linspace(-90, 90, 20001), [-1e30, 1e30, 0.0, -80.0, 80.0]]).astype(np.float32)
    got = np.array([K._sigmoid32(v) for v in z])  # Numba returns float32 results as Python floats
    assert np.array_equal(got.astype(np.float32), got)  # computed in float32
    ref = expit(z.astype(np.float64))
    inside = np.abs(z) <= 80
    ulp = np.spacing(ref.astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - ref)[inside] / ulp[inside]) < 2.5
    assert np.max(np.abs(got - ref)[~inside]) < 2e-35  # clamped: saturated to within 2e-35


def test_simd_sigmoid_accuracy():
    from scipy.special import expit
    z = np.concatenate([np.linspace(-45, 45, 20001), [-1e6, 1e6, 0.0]])
    got = np.array([K._sigmoid(v) for v in z])
    ref = expit(z)
    inside = np.abs(z) <= 40
    assert np.max(np.abs(got - ref)[inside] / ref[inside]) < 1e-13
    assert np.max(np.abs(got - ref)) < 1e-13
    assert np.max(np.abs(got - ref)[~inside]) < 5e-18  # clamped: saturated to within 5e-18


def test_module_backend_matches_torch_backend():
    from neurodyn.nn.ltc import LTC
    m = LTC(3, 8, 2, constraint="softplus", generator=torch.Generator().manual_seed(3)).double()
    n = LTC(3, 8, 2, constraint="softplus", backend="numba").double()
    n.load_state_dict(m.state_dict())
    x = torch.randn(7, 4, 3, dtype=D)
    ts = torch.rand(7, 4, dtype=D) + 0.5
    (ya, ha), (yb, hb) = m(x, elapsed=ts, return_state=True), n(x, elapsed=ts, return_state=True)
    assert torch.allclose(ya, yb, rtol=0, atol=1e-12) and torch.allclose(ha, hb, rtol=0, atol=1e-12)
    ya.square().sum().backward()
    yb.square().sum().backward()
    for (name, a), b in zip(m.named_parameters(), n.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-10, atol=1e-12), name
    with pytest.raises(ConfigError, match="backend"):
        LTC(3, 8, backend="cuda")


def test_bad_inputs():
    raw, x, v0, ts = _setup()
    with pytest.raises(ShapeError, match=r"\[T, B, 4\]"):
        K.ltc_numba(x[0], v0, raw)
    with pytest.raises(ShapeError, match=r"v0 of shape \[5, 9\]"):
        K.ltc_numba(x, v0[:, :3], raw)
    with pytest.raises(ShapeError, match="elapsed"):
        K.ltc_numba(x, v0, raw, ts[:, :2])
    with pytest.raises(ConfigError, match="elapsed"):
        K.ltc_numba(x, v0, raw, -1.0)
    with pytest.raises(ConfigError, match="NaN"):
        K.ltc_numba(x, v0, raw._replace(mu=raw.mu.detach() * float("nan")))

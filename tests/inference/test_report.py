"""early_exit_report / plot_pareto end to end on a small network (LIF -> LI float64, as tests/core)."""
import pytest
import torch

import neurodyn.nn as ndn
from neurodyn.errors import ConfigError
from neurodyn.inference import early_exit_report, format_report, plot_pareto


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = torch.nn.Sequential(ndn.Linear(40, 32), ndn.LIF(tau_mem=5.0), ndn.Linear(32, 10),
                              ndn.LI(tau_mem=10.0)).double().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(6.0)
    batches = []
    for _ in range(3):
        x = (torch.rand(30, 16, 40) < 0.1).float()
        lengths = torch.randint(10, 31, (16,))
        with torch.no_grad():
            v = net(x.double()) * (torch.arange(30)[:, None] < lengths[None, :])[..., None]
        y = v.sum(0).argmax(1)
        flip = torch.rand(16) < 0.25
        y[flip] = torch.randint(0, 10, (int(flip.sum()),))
        batches.append((x, y, lengths))
    return net, batches


def test_cross_calibrated_report(setup, tmp_path):
    net, batches = setup
    r = early_exit_report(net, batches, max_loss=0.05, confidence_level=None, progress=False)
    assert r["n_samples"] == 48 and r["mismatches"] == 0
    assert len(r["exits_used"]) == 2 and "cross-calibration" in r["threshold_source"]
    L = torch.cat([b[2] for b in batches]).double()
    assert r["full"]["steps"]["mean"] == pytest.approx(L.mean().item())
    assert r["early_exit"]["steps"]["mean"] <= r["full"]["steps"]["mean"]
    assert r["step_saving"] == pytest.approx(1 - r["early_exit"]["steps"]["mean"] / r["full"]["steps"]["mean"])
    assert set(r["curves"]["pareto"]) == {"1", "0.5", "0"}
    assert r["oracle"]["stays_correct"]["accuracy"] == pytest.approx(r["full"]["accuracy"])
    text = format_report(r)
    assert "timesteps mean" in text and "oracle first_correct" in text
    png = plot_pareto(r, tmp_path / "pareto.png")
    assert png.stat().st_size > 10_000 and not list(tmp_path.glob("*.tmp*"))


def test_given_threshold_and_held_out_calibration(setup):
    net, batches = setup
    r1 = early_exit_report(net, batches, threshold=1.0, progress=False)
    assert r1["early_exit"]["accuracy"] == r1["full"]["accuracy"] and r1["step_saving"] == 0.0
    r2 = early_exit_report(net, batches[:1], calib_loader=batches[1:], gamma=0.0, max_loss=0.1, progress=False)
    assert r2["calibration"][0]["n_samples"] == 32 and r2["gamma"] == 0.0 and r2["mismatches"] == 0
    with pytest.raises(ConfigError, match="one evidence exponent"):
        early_exit_report(net, batches, threshold=0.5, gamma=[0.0, 1.0], progress=False)


def test_eval_early_exit_run_writes_json_and_plot(setup, tmp_path):
    # What `neurodyn eval --early-exit` calls, on a stand-in for a loaded training run.
    import json
    from types import SimpleNamespace

    from neurodyn.inference import eval_early_exit_run
    net, batches = setup
    run = SimpleNamespace(model=net, test_loader=lambda batch_size=None: batches, checkpoint=tmp_path / "model.pt",
                          config=SimpleNamespace(data=SimpleNamespace(path="synthetic")))
    r, paths = eval_early_exit_run(run, tmp_path, confidence_level=None, max_loss=0.05, progress=False)
    assert [p.name for p in paths] == ["eval_early_exit.json", "eval_early_exit_pareto.png"]
    saved = json.loads((tmp_path / "eval_early_exit.json").read_text())
    assert saved["early_exit"]["steps"]["mean"] == pytest.approx(r["early_exit"]["steps"]["mean"])
    assert saved["data"] == "synthetic"

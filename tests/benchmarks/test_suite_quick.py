"""The benchmark suite runs end to end (toy sizes) and writes complete tables; a failing benchmark
is reported while the others still run.  Results go to a temporary folder, never to the
committed benchmarks/results/."""
import csv
import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("matplotlib")
common = pytest.importorskip("benchmarks.common")
runner = pytest.importorskip("benchmarks.__main__")

# Columns each table must have (on top of device, threads, versions, which every CSV carries).
COLUMNS = {
    "lif_sweep": ["sweep", "T", "batch", "width", "activity", "hidden_rate", "library", "how", "task", "ms",
                  "vs_fastest_peer", "peak_MB", "spike_mismatch", "same_grad"],
    "lif_sweep_summary": ["sweep", "neurodyn", "neurodyn_ms", "fastest_peer", "peer_ms", "speedup", "neurodyn_MB",
                          "peer_MB", "peer_spike_mismatch"],
    "open_neuromorphic": ["neurons", "T", "batch", "library", "fwd_s", "bwd_s", "fwd+bwd_s", "peak_MB",
                          "spike_mismatch", "vs_fastest_peer"],
    "open_neuromorphic_published": ["framework", "neurons", "fwd+bwd_s", "max_gpu_memory_GB"],
    "ltc_cfc": ["model", "library", "how", "task", "ms", "peak_MB", "max_out_diff_vs_ncps",
                "max_rel_grad_diff_vs_ncps", "speedup_vs_ncps"],
    "batch_run": ["batch", "library", "how", "ms_per_call", "samples_per_s", "peak_MB", "spike_mismatch"],
    "accuracy": ["data", "epochs", "test_accuracy", "train_accuracy", "chance", "train_s", "s_per_epoch"],
    "delays_shd": ["network", "epochs", "test acc", "run s (epochs with test eval)", "run time vs no delays",
                   "sigma steps (first)", "train s/epoch (first)", "epoch time vs no delays (first)",
                   "sigma steps (last)", "train s/epoch (last)", "epoch time vs no delays (last)"],
    "delays_shd_cuda": ["batch", "steps/epoch", "network", "train s/epoch", "epoch time vs no delays"],
}
META = ["device", "threads", "versions"]


@pytest.fixture
def results(tmp_path, monkeypatch):
    out = tmp_path / "results"
    monkeypatch.setenv("NEURODYN_BENCH_RESULTS", str(out))
    monkeypatch.setenv("NEURODYN_BENCH_TINY", "1")
    monkeypatch.setattr(common, "RESULTS", out)  # the module may have been imported before the env var was set
    return out


def _table(folder: Path, name: str) -> list[dict]:
    for ext in ("md", "csv"):
        assert (folder / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext} missing"
    with open(folder / f"{name}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows, f"{name}.csv has no rows"
    missing = [c for c in COLUMNS[name] + META if c not in rows[0]]
    assert not missing, f"{name}.csv lacks columns {missing}"
    for r in rows:
        assert r["device"].startswith(("CPU", "GPU")) and "torch" in r["versions"] or \
            r["device"].startswith("not measured")
    return rows


def _measured(rows, col):
    return [float(r[col]) for r in rows if r.get(col) not in ("", None) and not r.get("how", "").startswith("not run")]


def test_suite_runs_and_writes_complete_tables(results, capsys):
    names = ["lif_sweep", "open_neuromorphic", "ltc_cfc", "batch_run"]
    assert runner.main(names + ["--quick", "--in-process", "--threads", "1"]) == 0
    assert "4 ok, 0 failed" in capsys.readouterr().out
    for name in ("lif_sweep", "open_neuromorphic", "batch_run"):
        assert (results / f"{name}.png").stat().st_size > 1000

    sweep = _table(results, "lif_sweep")
    times = _measured(sweep, "ms")
    assert times and all(t > 0 and math.isfinite(t) for t in times)
    libs = {r["library"] for r in sweep}
    assert "neurodyn" in libs and len(libs) > 1, "no peer ran"
    tasks = {r["task"] for r in sweep if r["library"] == "neurodyn"}
    assert tasks == {"fwd+bwd", "fwd", "fwd (event core)", "fwd+bwd (event lists in)",
                     "fwd (event core, event lists in)"}
    # the event core reproduces neurodyn's dense run exactly; the plain torch loop is the same network
    for r in sweep:
        if r["library"] == "neurodyn":
            assert float(r["spike_mismatch"]) == 0.0, r
        if r["library"] == "torch":
            assert float(r["spike_mismatch"]) < 0.01, r
    assert all(r["threads"] == "torch 1, numba 1" for r in sweep)

    summ = _table(results, "lif_sweep_summary")
    for r in summ:
        assert math.isclose(float(r["speedup"]), float(r["peer_ms"]) / float(r["neurodyn_ms"]), rel_tol=1e-9)

    on = _table(results, "open_neuromorphic")
    for r in on:
        if r["fwd_s"]:
            assert math.isclose(float(r["fwd+bwd_s"]), float(r["fwd_s"]) + float(r["bwd_s"]), rel_tol=1e-9)
    assert {r["library"] for r in on} >= {"neurodyn", "Linear alone"}
    pub = _table(results, "open_neuromorphic_published")
    assert all(r["device"].startswith("not measured") for r in pub)

    ltc = _table(results, "ltc_cfc")
    assert {(r["model"], r["library"]) for r in ltc} >= {("LTC", "ncps"), ("LTC", "neurodyn"), ("CfC", "neurodyn")}
    for r in ltc:
        assert float(r["max_out_diff_vs_ncps"]) < 1e-4 and float(r["max_rel_grad_diff_vs_ncps"]) < 1e-3, r

    batch = _table(results, "batch_run")
    ev = [r for r in batch if r["how"] == "event core, CSR events in"]
    assert ev and all(float(r["samples_per_s"]) > 0 and float(r["spike_mismatch"]) == 0.0 for r in ev)


def _write_tiny_shd(folder: Path) -> Path:
    """Two classes in the SHD file format: low channels vs high channels, 40 ms each."""
    from neurodyn.data import make_events, write_shd
    rng = np.random.default_rng(0)
    folder.mkdir()
    for split, n in (("train", 16), ("test", 8)):
        labels = np.arange(n) % 2
        samples = [make_events(np.sort(rng.integers(0, 40_000, 40)), 350 * c + rng.integers(0, 350, 40))
                   for c in labels]
        write_shd(folder / f"tiny_{split}.h5", samples, labels.astype(np.uint16), times_dtype="float32")
    return folder


def test_accuracy_on_user_data(results, tmp_path):
    from benchmarks import accuracy
    data = _write_tiny_shd(tmp_path / "shd")
    accuracy.main(["--quick", "--data", str(data)])
    rows = _table(results, "accuracy")
    recipes = [name for name, _ in accuracy.RECIPES["SHD"] if (accuracy.CONFIG_DIR / name).is_file()]
    assert [r["config"] for r in rows] == recipes and len(recipes) >= 3   # every SHD recipe, one row each
    for r in rows:
        assert r["data"] == "SHD" and r["epochs"] == "1" and float(r["chance"]) == 0.5
        assert 0.0 <= float(r["test_accuracy"]) <= 1.0 and 0.0 <= float(r["linear_test_accuracy"]) <= 1.0
    assert (results / "accuracy.png").stat().st_size > 1000


def test_failing_benchmark_is_reported_and_the_rest_run(results, monkeypatch, capsys):
    def boom_main(argv=None):
        raise RuntimeError("broken on purpose")

    def fine_main(argv=None):
        assert argv == ["--quick"]
        return common.write_table("fine", [{"x": 1.0}], "## fine")
    for name, fn in (("boom", boom_main), ("fine", fine_main)):
        mod = types.ModuleType(f"benchmarks.{name}")
        mod.main = fn
        monkeypatch.setitem(sys.modules, f"benchmarks.{name}", mod)
    monkeypatch.setattr(runner, "discover", lambda: {"boom": "fails", "fine": "works"})
    assert runner.main(["--quick", "--in-process"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "RuntimeError: broken on purpose" in out
    assert "1 ok, 1 failed: boom" in out and "fine.md" in out
    assert (results / "fine.csv").is_file()


def test_list_and_unknown_names(capsys):
    assert runner.main(["--list"]) == 0
    listed = capsys.readouterr().out
    for name in ("lif_sweep", "open_neuromorphic", "ltc_cfc", "batch_run", "accuracy", "lif_shd"):
        assert name in listed
    assert "common" not in listed.split() and "lif_models" not in listed.split()
    assert runner.main(["no_such_benchmark"]) == 2


def test_delays_benchmark_quick(results, capsys):
    assert runner.main(["delays_shd", "--quick", "--in-process", "--threads", "1"]) == 0
    assert "1 ok, 0 failed" in capsys.readouterr().out
    rows = {r["network"].split()[-1]: r for r in _table(results, "delays_shd")}
    assert set(rows) == {"Linear", "DelayedLinear"}
    plain, delayed = rows["Linear"], rows["DelayedLinear"]
    for when in ("first", "last"):
        assert float(plain[f"epoch time vs no delays ({when})"]) == 1.0
        ratio = float(delayed[f"epoch time vs no delays ({when})"])
        assert math.isclose(ratio, float(delayed[f"train s/epoch ({when})"]) / float(plain[f"train s/epoch ({when})"]),
                            rel_tol=1e-9) and ratio > 0
    assert float(delayed["sigma steps (first)"]) > float(delayed["sigma steps (last)"]) > 0
    assert math.isclose(float(delayed["run time vs no delays"]),
                        float(delayed["run s (epochs with test eval)"]) / float(plain["run s (epochs with test eval)"]),
                        rel_tol=1e-9)


def test_delays_gpu_table(results, monkeypatch):
    """The GPU epoch table (written on a GPU machine) from the same timing code, run here on the CPU."""
    mod = __import__("benchmarks.delays_shd", fromlist=["_epoch_times"])
    real = mod._epoch_times
    monkeypatch.setattr(mod, "_epoch_times", lambda data, hidden, batch, rounds, device: real(data, hidden, batch, 1))
    mod._gpu_epochs(str(ROOT / "datasets" / "shd_sample"), 16, quick=True)
    rows = _table(results, "delays_shd_cuda")
    assert [r["network"].split(",")[0] for r in rows] == ["no delays", "delays", "delays"]
    plain = float(rows[0]["train s/epoch"])
    for r in rows:
        assert r["batch"] == "32" and int(r["steps/epoch"]) > 0 and r["device"].startswith("GPU")
        assert math.isclose(float(r["epoch time vs no delays"]), float(r["train s/epoch"]) / plain, rel_tol=1e-9)

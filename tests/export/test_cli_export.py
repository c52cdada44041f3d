"""`neurodyn export` and `neurodyn eval --quantized` on a run trained on a tiny SHD-format data set."""
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from neurodyn.cli import main
from neurodyn.export import from_nir, read_hdf5, read_nir



def _write_tiny_shd(folder: Path) -> Path:
    # The trainer tests' tiny SHD writer (tests/train/tiny_shd_data.py), loaded by path.
    spec = importlib.util.spec_from_file_location("train_tiny_shd", Path(__file__).parents[1] / "train" / "tiny_shd_data.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.write_tiny_shd(folder)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    data = _write_tiny_shd(tmp_path_factory.mktemp("tiny_shd"))
    out = tmp_path_factory.mktemp("run")
    rc = main(["train", "--data", str(data), "--out", str(out), "--epochs", "2", "--hidden", "16"])
    assert rc == 0
    return out


def test_export_hdf5_and_nir(run_dir, capsys):
    from neurodyn.export.run_export import quantize_run
    from neurodyn.train.evaluation import load_run, resolve_checkpoint

    assert main(["export", "--run", str(run_dir), "--format", "hdf5", "--preset", "loihi", "--calib", "16"]) == 0
    text = capsys.readouterr().out
    assert "log2_scale" in text and "model_loihi.h5" in text
    q = read_hdf5(run_dir / "model_loihi.h5")
    assert (run_dir / "model_loihi.md").is_file()
    run = load_run(resolve_checkpoint(run=run_dir))
    want = quantize_run(run, "loihi", calib_samples=16)
    for a, b in zip(q.layers, want.layers):
        np.testing.assert_array_equal(a.weight, b.weight)
        assert a.scale == b.scale

    assert main(["export", "--run", str(run_dir), "--format", "nir", "--preset", "none"]) == 0
    back = from_nir(read_nir(run_dir / "model_none.nir"))
    x, _ = run.test_ds[0]
    x = torch.as_tensor(x)[:, None].double()
    with torch.no_grad():
        torch.testing.assert_close(back(x), run.model.double()(x), rtol=1e-9, atol=1e-9)


def test_eval_quantized(run_dir, capsys):
    assert main(["eval", "--run", str(run_dir), "--quantized", "loihi"]) == 0
    out = capsys.readouterr().out
    assert "quantized (loihi, integer simulator): test accuracy" in out
    f = json.loads((run_dir / "eval.json").read_text())
    qm = json.loads((run_dir / "eval_loihi.json").read_text())
    assert qm["n_samples"] == f["n_samples"] == 12
    assert qm["saturations"] == 0
    assert abs(qm["accuracy"] - f["accuracy"]) <= 1 / 12 + 1e-9


def test_export_errors_are_one_line(run_dir, capsys):
    assert main(["export", "--run", str(run_dir), "--format", "hdf5", "--preset", "none"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only for --format nir" in err[0]


def test_a_conv_run_quantizes_and_exports(tmp_path, capsys):
    # configs/nmnist_conv.toml for a few steps on the N-MNIST-format sample: the conv layers
    # go through quantize, the integer simulator and the chip file like the dense ones.
    root = Path(__file__).parents[2]
    out = tmp_path / "conv"
    assert main(["train", "--config", str(root / "configs" / "nmnist_conv.toml"), "--data",
                 str(root / "datasets" / "nmnist_sample"), "--out", str(out), "--set", "train.steps=4"]) == 0
    capsys.readouterr()
    assert main(["eval", "--run", str(out), "--quantized", "loihi"]) == 0
    float_acc = json.loads((out / "eval.json").read_text())["accuracy"]
    q_acc = json.loads((out / "eval_loihi.json").read_text())["accuracy"]
    assert abs(q_acc - float_acc) <= 0.05, (q_acc, float_acc)
    assert main(["export", "--run", str(out), "--format", "hdf5", "--preset", "loihi", "--calib", "8"]) == 0
    q = read_hdf5(out / "model_loihi.h5")
    assert [l.conv is not None for l in q.layers] == [True, True, False]
    assert q.layers[1].pool is not None and q.layers[2].pool is not None

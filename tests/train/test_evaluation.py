"""`neurodyn train --config ... --set ...` then `neurodyn eval`: the saved run scores as it did in training."""
import json
import shutil

import pytest
from tiny_shd_data import write_tiny_shd

from neurodyn.cli import main
from neurodyn.train import load_config
from neurodyn.train.evaluation import eval_run, load_run, resolve_checkpoint, write_eval


@pytest.fixture(scope="module")
def run_dir(tiny_shd, tmp_path_factory):
    root = tmp_path_factory.mktemp("evalrun")
    cfg_file = root / "c.toml"
    cfg_file.write_text('[model]\nkind = "mlp"\nhidden = [9]\n[train]\nepochs = 5\nlr = 0.01\nloss = "per_step"\n')
    out = root / "run"
    # file < plain flags < --set: epochs 5 (file) -> --epochs 3 -> --set epochs=1; lr from the file
    rc = main(["train", "--config", str(cfg_file), "--data", str(tiny_shd), "--out", str(out), "--epochs", "3",
               "--batch-size", "6", "--set", "epochs=1", "--set", "model.hidden=[12]"])
    assert rc == 0
    return out


def test_cli_train_merges_file_flags_and_overrides(run_dir, tiny_shd):
    cfg = load_config(run_dir / "config.toml")  # the run folder records the config it ran with
    assert cfg.train.epochs == 1 and cfg.train.batch_size == 6 and cfg.train.lr == 0.01
    assert cfg.model["hidden"] == [12] and cfg.train.loss == "per_step" and cfg.data.path == str(tiny_shd)


def test_eval_reproduces_training_metrics(run_dir, tmp_path, capsys):
    trained = json.loads((run_dir / "metrics.json").read_text())
    run = load_run(resolve_checkpoint(run=run_dir))
    m = eval_run(run, progress=False)
    assert m["accuracy"] == trained["test_accuracy"] and m["confusion"] == trained["confusion"]
    assert m["n_samples"] == 12 and m["epoch"] == 1 and m["loss"] == "per_step"
    paths = write_eval(m, tmp_path)
    assert [p.name for p in paths] == ["eval.json", "eval_confusion.png"] and paths[1].stat().st_size > 0

    # the CLI: same number, on the run's data or on a copy given with --data
    copy = tmp_path / "copy"
    shutil.copytree(run.config.data.path, copy)
    assert main(["eval", "--run", str(run_dir), "--data", str(copy), "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy: {trained['test_accuracy']:.3f} on 12 samples of {copy}" in out
    assert json.loads((tmp_path / "e" / "eval.json").read_text())["confusion"] == trained["confusion"]


def test_eval_errors_are_one_line(run_dir, tmp_path, capsys):
    assert main(["eval", "--checkpoint", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt: no such checkpoint file" in capsys.readouterr().err
    assert main(["eval", "--run", str(tmp_path / "nope")]) == 2
    assert "no such run folder" in capsys.readouterr().err
    # data the model does not fit: more classes than the readout has
    five = write_tiny_shd(tmp_path / "five", n_train=5, n_test=5, n_classes=5)
    assert main(["eval", "--run", str(run_dir), "--data", str(five)]) == 2
    assert "5 classes, the model in" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --run and --checkpoint are exclusive
        main(["eval", "--run", str(run_dir), "--checkpoint", str(run_dir / "model.pt")])


def test_eval_on_the_gpu_path_scores_as_the_cpu(run_dir, tmp_path, capsys, monkeypatch):
    """`neurodyn eval --device cuda` lifts the model into the event core and runs the GPU kernel;
    here its host C++ build stands in for the GPU (core.gpu.run_batch with launcher='host')."""
    import neurodyn.core.gpu as gpu
    from neurodyn.kernels.cuda_host import host_compiler
    if host_compiler() is None:
        pytest.skip("no C++ compiler for the host build of the GPU kernel")
    trained = json.loads((run_dir / "metrics.json").read_text())
    real = gpu.run_batch
    monkeypatch.setattr(gpu, "run_batch", lambda *a, **k: real(*a, **{**k, "launcher": "host"}))
    assert main(["eval", "--run", str(run_dir), "--device", "cuda", "--out", str(tmp_path)]) == 0
    m = json.loads((tmp_path / "eval.json").read_text())
    assert m["device"] == "cuda" and m["confusion"] == trained["confusion"]


def test_eval_on_cuda_without_cupy_is_one_line(run_dir, capsys, no_cupy):
    assert main(["eval", "--run", str(run_dir), "--device", "cuda"]) == 2
    assert "neurodyn[gpu]" in capsys.readouterr().err

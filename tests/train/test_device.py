"""train.device: the names it takes, the clear errors without a GPU, batches and models moved
to the device; on a GPU machine a run on CUDA scores as the same run on the CPU."""
import pytest
import torch
from torch import nn

from neurodyn.cli import main
from neurodyn.core.events import Events
from neurodyn.errors import BackendUnavailableError, ConfigError
from neurodyn.train import TrainConfig, train
from neurodyn.train.device import check_device_name, model_device, resolve_device, to_device, wants_cuda
from neurodyn.train.evaluation import eval_run, load_run

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the errors of a machine without a GPU")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (torch sees none here)")


@pytest.mark.parametrize("name", ["cpu", "cuda", "cuda:1", "auto"])
def test_device_names_taken(name):
    check_device_name(name)


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:", "cuda:x", "", "mps"])
def test_other_device_names_are_refused_by_key(name, tiny_shd):
    with pytest.raises(ConfigError, match="train.device"):
        check_device_name(name)
    with pytest.raises(ConfigError, match="train.device"):
        TrainConfig(data=str(tiny_shd), train={"device": name})


@no_cuda
def test_cuda_without_a_gpu_is_one_clear_error(tiny_shd, tmp_path, capsys):
    assert not wants_cuda("auto") and resolve_device("auto") == torch.device("cpu")
    with pytest.raises(BackendUnavailableError, match="sees no CUDA device"):
        resolve_device("cuda")
    with pytest.raises(BackendUnavailableError, match="sees no CUDA device"):
        train(TrainConfig(data=str(tiny_shd), out=str(tmp_path / "run"), train={"epochs": 1, "device": "cuda:0"}))
    assert not (tmp_path / "run").exists()  # stopped before the run folder was made
    assert main(["train", "--data", str(tiny_shd), "--out", str(tmp_path / "cli"), "--epochs", "1",
                 "--device", "cuda"]) == 2
    assert not (tmp_path / "cli").exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "train.device = 'cuda'" in err and "sees no CUDA device" in err


def test_batches_and_models_move_events_stay():
    cpu = torch.device("cpu")
    x = torch.zeros(3, 2, 4)
    assert to_device(x, cpu) is x
    ev = Events.from_dense(x)
    assert to_device(ev, cpu) is ev
    assert to_device(torch.tensor([1, 2]), torch.device("meta")).device.type == "meta"
    assert model_device(nn.Linear(2, 2)) == cpu and model_device(nn.ReLU()) == cpu
    assert model_device(nn.Linear(2, 2, device="meta")).type == "meta"


@no_cuda
def test_auto_on_this_machine_trains_as_cpu(tiny_shd, tmp_path):
    runs = [train(TrainConfig(data=str(tiny_shd), out=str(tmp_path / dev), model={"hidden": [16]},
                              train={"epochs": 2, "batch_size": 6, "device": dev}), plots=False)
            for dev in ("cpu", "auto")]
    assert runs[0]["history"]["loss"] == runs[1]["history"]["loss"]
    assert runs[0]["confusion"] == runs[1]["confusion"]


@needs_cuda
def test_a_run_on_cuda_scores_as_on_the_cpu(tiny_shd, tmp_path):
    """The same recipe on the GPU (dense frames, CuPy or torch neuron kernels) learns as on the CPU,
    and its checkpoint loads and scores on the CPU."""
    # no dropout: its masks come from each device's own random stream
    base = dict(data=str(tiny_shd), model={"hidden": [24], "recurrent": True, "dropout": 0.0},
                train={"epochs": 4, "batch_size": 6})
    cpu = train(TrainConfig(out=str(tmp_path / "cpu"), **base))
    gpu_cfg = TrainConfig(out=str(tmp_path / "gpu"), **base)
    gpu_cfg.train.device = "cuda"
    gpu = train(gpu_cfg)
    assert gpu["history"]["loss"] == pytest.approx(cpu["history"]["loss"], rel=0.05)
    assert abs(gpu["test_accuracy"] - cpu["test_accuracy"]) <= 0.1
    run = load_run(tmp_path / "gpu" / "model.pt")
    assert eval_run(run, progress=False)["accuracy"] == pytest.approx(gpu["test_accuracy"], abs=0.02)
    for f in ("curves.png", "raster.png", "confusion.png"):
        assert (tmp_path / "gpu" / f).stat().st_size > 0

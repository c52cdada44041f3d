"""Evaluate a saved run: load its checkpoint and config, rebuild the model, score the test split.

``load_run`` gives a ``LoadedRun`` (config, model in eval mode, test data); ``eval_run``
returns a dict of metrics, so other evaluations (early exit, quantized models) can take the
same ``LoadedRun`` and add their own keys; ``write_eval`` writes the dict and a confusion plot.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from torch.utils.data import DataLoader

from ..data import EventDataset, load_dataset, pad_collate
from ..errors import ConfigError, DataFormatError, ShapeError
from .checkpoint import load_checkpoint
from .config import TrainConfig
from .models import build_model
from .trainer import CHECKPOINT_NAME, accuracy_of, confusion_matrix


@dataclass
class LoadedRun:
    """A trained model with the config it was trained with and the test split to score it on."""

    config: TrainConfig
    model: nn.Module
    test_ds: EventDataset
    n_classes: int
    checkpoint: Path
    epoch: int

    def test_loader(self, batch_size: int | None = None) -> DataLoader:
        """Test split in order, padded batches ``(x [T, B, ...], y [B], lengths [B])``."""
        return DataLoader(self.test_ds, batch_size=batch_size or self.config.train.eval_batch_size, shuffle=False,
                          collate_fn=pad_collate)


def resolve_checkpoint(run: str | os.PathLike | None = None, checkpoint: str | os.PathLike | None = None) -> Path:
    """The checkpoint file of a run folder (``run/model.pt``) or the file given directly."""
    if (run is None) == (checkpoint is None):
        raise ConfigError("give exactly one of a run folder (--run) or a checkpoint file (--checkpoint)")
    if checkpoint is not None:
        return Path(checkpoint)
    folder = Path(run)  # type: ignore[arg-type]
    if not folder.is_dir():
        raise DataFormatError(f"{folder}: no such run folder")
    return folder / CHECKPOINT_NAME


def load_run(checkpoint: str | os.PathLike, data: str | os.PathLike | None = None,
             backend: str | None = None) -> LoadedRun:
    """Rebuild the model saved in ``checkpoint``; ``data`` replaces the config's data path."""
    path = Path(checkpoint)
    ck = load_checkpoint(path)
    for key in ("config", "model", "n_in", "n_classes"):
        if key not in ck:
            raise DataFormatError(f"{path}: not a neurodyn training checkpoint (no '{key}')")
    raw = dict(ck["config"])
    if data is not None:
        raw["data"] = {**raw.get("data", {}), "path": os.fspath(data)}
    if backend is not None:
        raw["train"] = {**raw.get("train", {}), "backend": backend}
    cfg = TrainConfig.from_dict(raw)
    _, test_ds = load_dataset(cfg.data.path, dt_us=cfg.data.bin_us, channel_pool=cfg.data.channel_pool,
                              seed=cfg.train.seed)
    x0, _ = test_ds[0]
    n_in = int(np.prod(x0.shape[1:]))
    if n_in != int(ck["n_in"]):
        raise ShapeError(f"{cfg.data.path}: frames have {n_in} features per step, the model in {path} "
                         f"was trained on {ck['n_in']}")
    if test_ds.num_classes > int(ck["n_classes"]):
        raise ShapeError(f"{cfg.data.path}: {test_ds.num_classes} classes, the model in {path} has {ck['n_classes']}")
    model = build_model(cfg.model, n_in, int(ck["n_classes"]), cfg.dt_ms, cfg.train.backend)
    try:
        model.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise DataFormatError(f"{path}: weights do not fit model {cfg.model} ({str(e).splitlines()[0]})") from None
    model.eval()
    return LoadedRun(cfg, model, test_ds, int(ck["n_classes"]), path, int(ck.get("epoch", 0)))


def eval_run(run: LoadedRun, batch_size: int | None = None, progress: bool = True,
             device: str = "cpu") -> dict[str, Any]:
    """Accuracy and confusion matrix of ``run.model`` on its test split, as a dict of metrics.

    device 'cuda': the model lifted into the event core (``nn.to_network``) runs each test batch
    on the GPU (``Network.run(..., device="cuda")``, one thread block per sample); the class
    scores are taken from its readout as on the CPU."""
    loader = run.test_loader(batch_size)
    if device == "cpu":
        cm = confusion_matrix(run.model, loader, run.config.train.loss, run.n_classes, progress=progress)
    elif str(device).startswith("cuda"):
        cm = _event_core_confusion(run, loader, device, progress)
    else:
        raise ConfigError(f"device must be 'cpu' or 'cuda', got {device!r}")
    return {"accuracy": accuracy_of(cm), "n_samples": int(cm.sum()), "n_classes": run.n_classes,
            "confusion": cm.tolist(), "checkpoint": str(run.checkpoint), "epoch": run.epoch,
            "data": run.config.data.path, "loss": run.config.train.loss, "device": str(device)}


def _event_core_confusion(run: LoadedRun, loader: DataLoader, device: str, progress: bool) -> np.ndarray:
    from ..nn.convert import to_network
    from .trainer import confusion_of
    net = to_network(run.model.eval())
    return confusion_of(lambda x, lengths: net.run(x, steps=lengths, device=device).out.cpu(), loader,
                        run.config.train.loss, run.n_classes, progress, desc=f"evaluate ({device})")


def write_eval(metrics: dict[str, Any], out: str | os.PathLike, prefix: str = "eval") -> list[Path]:
    """Write ``<prefix>.json`` and ``<prefix>_confusion.png`` into ``out``; returns the paths."""
    from .plots import plot_confusion

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    js = out / f"{prefix}.json"
    tmp = js.with_name(js.name + ".tmp")
    tmp.write_text(json.dumps(metrics, indent=1, default=_jsonable))
    os.replace(tmp, js)
    paths = [js]
    if "confusion" in metrics:
        name = Path(str(metrics.get("data", ""))).name or "test"
        paths.append(plot_confusion(np.asarray(metrics["confusion"]), out / f"{prefix}_confusion.png",
                                    title=f"confusion ({name})"))
    return paths


def _jsonable(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")

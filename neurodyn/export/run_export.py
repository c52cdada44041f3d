"""Export and quantized evaluation of a saved training run (what ``neurodyn export`` and
``neurodyn eval --quantized`` call)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..data import load_dataset
from ..errors import ConfigError
from .atomic import write_atomic
from .evaluate import calibration_input, evaluate_quantized
from .fixed_point import PRESETS
from .quantize import QuantizedNetwork, format_report, quantize

FORMATS = ("nir", "hdf5")


def _calibration(run, n: int):
    """``n`` training samples of the run's data set (None when n == 0: scales from parameters alone)."""
    if n <= 0:
        return None
    d = run.config.data
    train_ds, _ = load_dataset(d.path, dt_us=d.bin_us, channel_pool=d.channel_pool, seed=run.config.train.seed)
    return calibration_input(train_ds, n, seed=run.config.train.seed)


def quantize_run(run, preset: str = "loihi", calib_samples: int = 64) -> QuantizedNetwork:
    """The run's model quantized to ``preset`` with scales calibrated on its training data."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown preset '{preset}'; choose one of {sorted(PRESETS)}")
    return quantize(run.model, preset, calib=_calibration(run, calib_samples))


def export_run(run=None, checkpoint=None, fmt: str = "hdf5", preset: str = "loihi", out=None,
               calib_samples: int = 64) -> dict[str, Any]:
    """Quantize the model of a run folder (or checkpoint) and write it as NIR or HDF5.

    preset 'none' (NIR only) writes the float network.  Default output:
    ``<run>/model_<preset>.nir|.h5``; the quantization report goes beside it as ``.md``.
    Returns {'path', 'report' (markdown or None), 'preset', 'format'}.
    """
    from ..train.evaluation import load_run, resolve_checkpoint
    from .hdf5_io import write_hdf5
    from .nir_io import write_nir

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; choose one of {list(FORMATS)}")
    if preset == "none" and fmt != "nir":
        raise ConfigError("preset 'none' (float network) is only for --format nir; HDF5 holds a quantized network")
    ckpt = resolve_checkpoint(run, checkpoint)
    r = load_run(ckpt)
    path = Path(out) if out is not None else ckpt.parent / f"model_{preset}.{'nir' if fmt == 'nir' else 'h5'}"
    report = None
    if preset == "none":
        write_nir(r.model, path)
    else:
        q = quantize_run(r, preset, calib_samples)
        (write_nir if fmt == "nir" else write_hdf5)(q, path)
        report = format_report(q)
        text = f"# Quantization report: {ckpt} -> {path.name}\n\n{report}\n"
        write_atomic(path.with_suffix(".md"), lambda tmp: Path(tmp).write_text(text))
    return {"path": str(path), "report": report, "preset": preset, "format": fmt}


def eval_quantized_run(run, preset: str, batch_size: int | None = None, calib_samples: int = 64) -> dict[str, Any]:
    """Test accuracy of the run's model quantized to ``preset``, in the integer simulator."""
    q = quantize_run(run, preset, calib_samples)
    return evaluate_quantized(q, run.test_loader(batch_size), loss=run.config.train.loss, n_classes=run.n_classes)


__all__ = ["FORMATS", "eval_quantized_run", "export_run", "quantize_run"]

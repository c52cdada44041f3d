"""The ``neurodyn`` command: ``train``, ``eval``, ``export`` and ``info``."""
from __future__ import annotations

import argparse
import json
import sys
import time

from .errors import ConfigError, NeurodynError


# Plain `train` flags and the config keys they set (they override the config file; --set overrides both).
_TRAIN_FLAGS = {"data": "data.path", "out": "out", "epochs": "train.epochs", "batch_size": "train.batch_size",
                "lr": "train.lr", "hidden": "model.hidden", "neuron": "model.neuron", "bin_us": "data.bin_us",
                "channel_pool": "data.channel_pool", "seed": "train.seed", "backend": "train.backend",
                "loss": "train.loss", "device": "train.device"}


def _train_config(a: argparse.Namespace):
    """Defaults <- --config FILE <- plain flags <- --set key=value (in order)."""
    from .train import load_config
    sets = []
    for flag, key in _TRAIN_FLAGS.items():
        value = getattr(a, flag)
        if value is None:
            continue
        if flag == "hidden":
            try:
                value = [int(h) for h in value.split(",")]
            except ValueError:
                raise ConfigError(f"--hidden {value!r}: expected comma-separated integers, e.g. 256,256") from None
        sets.append(f"{key}={json.dumps(value)}")
    return load_config(a.config, sets + list(a.set))


def _train(a: argparse.Namespace) -> int:
    from .train import train
    cfg = _train_config(a)
    t0 = time.perf_counter()
    m = train(cfg, resume=a.resume)
    if m["rank"] == 0:  # under torchrun every process returns the same metrics
        if "val_accuracy" in m:
            print(f"model of epoch {m['model_epoch']} of {m['epochs_trained']}: train accuracy "
                  f"{m['train_accuracy']:.3f}, validation accuracy {m['val_accuracy']:.3f}")
        elif "train_accuracy" in m:
            print(f"model of epoch {m['model_epoch']}: train accuracy {m['train_accuracy']:.3f}")
        print(f"test accuracy: {m['test_accuracy']:.3f}   ({time.perf_counter() - t0:.0f} s; "
              f"plots (curves.png, raster.png, confusion.png) and metrics in {cfg.out}/)")
    return 0


def _eval(a: argparse.Namespace) -> int:
    """Score a saved run on its (or another) test split; prints accuracy, writes eval.json + plot."""
    from pathlib import Path

    from .train.evaluation import eval_run, load_run, resolve_checkpoint, write_eval
    ckpt = resolve_checkpoint(a.run, a.checkpoint)
    run = load_run(ckpt, data=a.data, backend=a.backend)
    metrics = eval_run(run, batch_size=a.batch_size, device=a.device)
    paths = write_eval(metrics, a.out if a.out is not None else Path(ckpt).parent)
    print(f"test accuracy: {metrics['accuracy']:.3f} on {metrics['n_samples']} samples of {run.config.data.path} "
          f"({ckpt}, epoch {run.epoch})")
    if a.early_exit:
        from .inference import eval_early_exit_run, format_report
        er, ep = eval_early_exit_run(run, a.out if a.out is not None else Path(ckpt).parent, batch_size=a.batch_size,
                                     measure=a.exit_measure, max_loss=a.max_loss / 100.0, threshold=a.exit_threshold,
                                     confidence_level=a.exit_confidence or None)
        print(format_report(er))
        paths += ep
    if a.quantized:
        from .export.run_export import eval_quantized_run
        qm = eval_quantized_run(run, a.quantized, batch_size=a.batch_size)
        paths += write_eval(qm, a.out if a.out is not None else Path(ckpt).parent, prefix=f"eval_{a.quantized}")
        print(f"quantized ({a.quantized}, integer simulator): test accuracy {qm['accuracy']:.3f}, "
              f"{qm['saturations']} saturations")
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return 0


def _export(a: argparse.Namespace) -> int:
    """Quantize a saved run to a chip format and write it as NIR or an HDF5 chip network file."""
    from .export.run_export import export_run
    r = export_run(a.run, a.checkpoint, fmt=a.format, preset=a.preset, out=a.out, calib_samples=a.calib)
    if r["report"]:
        print(r["report"])
    print(f"wrote {r['path']} ({r['format']}, preset {r['preset']})")
    return 0


def _info(a: argparse.Namespace) -> int:
    from .data import load_dataset
    tr, te = load_dataset(a.data, dt_us=a.bin_us)
    for name, ds in (("train", tr), ("test", te)):
        x, _ = ds[0]
        print(f"{name}: {len(ds)} samples, frames of sample 0: {tuple(x.shape)} at {a.bin_us} us bins")
    return 0


def _bench(a: argparse.Namespace) -> int:
    """Forward to the benchmark runner (``python -m benchmarks``) of a source checkout."""
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "__main__.py").is_file():
        raise ConfigError(f"no benchmarks/ folder next to {root / 'neurodyn'}: run from a source checkout")
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from benchmarks.__main__ import main as bench_main
    return bench_main(a.args)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="neurodyn", description="Spiking / continuous-time network simulator")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a spiking classifier on SHD-format or N-MNIST-format data",
                       description="Settings come from defaults, then --config FILE, then the plain flags, "
                                   "then --set key=value overrides.")
    t.add_argument("--config", help="TOML config file ([data], [model], [train]; see configs/)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key: train.epochs=3, model.hidden=[256,256], or a unique bare name "
                        "(epochs=3); repeatable")
    t.add_argument("--resume", action="store_true", help="continue from OUT/model.pt (exact: same weights as "
                                                           "an uninterrupted run)")
    t.add_argument("--data", help="SHD folder (*train*.h5, *test*.h5) or N-MNIST root (Train/, Test/)")
    t.add_argument("--out", help="run folder (default runs/latest)")
    t.add_argument("--epochs", type=int)
    t.add_argument("--batch-size", type=int, help="global batch size (split over torchrun processes)")
    t.add_argument("--lr", type=float)
    t.add_argument("--hidden", help="comma-separated hidden sizes (model.hidden)")
    t.add_argument("--neuron", choices=["lif", "cuba", "alif"])
    t.add_argument("--bin-us", type=int, help="time bin in microseconds")
    t.add_argument("--channel-pool", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--backend", choices=["auto", "torch", "numba", "cupy"])
    t.add_argument("--loss", choices=["mean_membrane", "spike_count", "per_step"])
    t.add_argument("--device", help="cpu (default), cuda, cuda:N or auto (train.device)")
    t.set_defaults(fn=_train)
    e = sub.add_parser("eval", help="evaluate a trained run on the test split (accuracy, confusion plot)")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", help="run folder holding model.pt (e.g. runs/latest)")
    src.add_argument("--checkpoint", help="checkpoint file")
    e.add_argument("--data", help="evaluate on this data set instead of the one in the run's config")
    e.add_argument("--out", help="folder for eval.json and eval_confusion.png (default: the checkpoint's folder)")
    e.add_argument("--batch-size", type=int)
    e.add_argument("--backend", choices=["auto", "torch", "numba", "cupy"])
    e.add_argument("--quantized", metavar="PRESET", choices=["loihi", "wide16"],
                   help="also score the model quantized to a chip preset in the bit-exact integer simulator")
    e.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="cuda: run the test split through the event core on the GPU (batch runs; needs the [gpu] "
                        "extra)")
    e.add_argument("--early-exit", action="store_true",
                   help="also run per-sample early exit in the event core: accuracy, mean/percentile timesteps, "
                        "wall-clock, and the accuracy-vs-timesteps plot (Pareto, fixed T, oracle)")
    e.add_argument("--exit-measure", default="max_softmax", choices=["max_softmax", "margin", "entropy"])
    e.add_argument("--max-loss", type=float, default=0.5,
                   help="accuracy (points) the calibrated exit threshold may cost: at most this %% of the samples "
                        "turn from right to wrong (default 0.5)")
    e.add_argument("--exit-threshold", type=float, help="use this confidence threshold instead of calibrating one")
    e.add_argument("--exit-confidence", type=float, default=0.95,
                   help="statistical confidence that the calibrated threshold keeps --max-loss on new data "
                        "(default 0.95; 0: use the plain calibration loss)")
    e.set_defaults(fn=_eval)
    x = sub.add_parser("export", help="quantize a trained run (chip preset) and write it as NIR or HDF5")
    xs = x.add_mutually_exclusive_group(required=True)
    xs.add_argument("--run", help="run folder holding model.pt (e.g. runs/latest)")
    xs.add_argument("--checkpoint", help="checkpoint file")
    x.add_argument("--format", choices=["nir", "hdf5"], default="hdf5")
    x.add_argument("--preset", choices=["loihi", "wide16", "none"], default="loihi",
                   help="fixed-point preset; 'none' writes the float network (NIR only)")
    x.add_argument("--out", help="output file (default: RUN/model_<preset>.nir|.h5)")
    x.add_argument("--calib", type=int, default=64, help="training samples for the per-layer scales (0: none)")
    x.set_defaults(fn=_export)
    i = sub.add_parser("info", help="describe a data set")
    i.add_argument("--data", required=True)
    i.add_argument("--bin-us", type=int, default=10_000)
    i.set_defaults(fn=_info)
    # '+' as prefix: every argument (--quick, --list, names) goes through to the runner untouched.
    b = sub.add_parser("bench", help="run the benchmark suite (same arguments as python -m benchmarks; "
                       "neurodyn bench --help)", add_help=False, prefix_chars="+")
    b.add_argument("args", nargs="*")
    b.set_defaults(fn=_bench)
    a = p.parse_args(argv)
    try:
        return a.fn(a)
    except NeurodynError as e:
        print(f"neurodyn: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

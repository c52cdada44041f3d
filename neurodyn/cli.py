"""The ``neurodyn`` command: ``train`` and ``info``."""
from __future__ import annotations

import argparse
import sys

from .errors import NeurodynError


def _train(a: argparse.Namespace) -> int:
    from .train import TrainConfig, train
    cfg = TrainConfig(data=a.data, out=a.out, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
                      hidden=[int(h) for h in a.hidden.split(",")], neuron=a.neuron, bin_us=a.bin_us,
                      channel_pool=a.channel_pool, seed=a.seed, backend=a.backend)
    m = train(cfg)
    print(f"test accuracy: {m['test_accuracy']:.3f}   (plots and metrics in {cfg.out}/)")
    return 0


def _info(a: argparse.Namespace) -> int:
    from .data import load_dataset
    tr, te = load_dataset(a.data, dt_us=a.bin_us)
    for name, ds in (("train", tr), ("test", te)):
        x, _ = ds[0]
        print(f"{name}: {len(ds)} samples, frames of sample 0: {tuple(x.shape)} at {a.bin_us} us bins")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="neurodyn", description="Spiking / continuous-time network simulator")
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a spiking classifier on SHD-format or N-MNIST-format data")
    t.add_argument("--data", required=True, help="SHD folder (*train*.h5, *test*.h5) or N-MNIST root (Train/, Test/)")
    t.add_argument("--out", default="runs/latest")
    t.add_argument("--epochs", type=int, default=10)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=5e-3)
    t.add_argument("--hidden", default="128", help="comma-separated hidden sizes")
    t.add_argument("--neuron", default="lif", choices=["lif", "cuba", "alif"])
    t.add_argument("--bin-us", type=int, default=10_000, help="time bin in microseconds")
    t.add_argument("--channel-pool", type=int, default=1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--backend", default="auto", choices=["auto", "torch", "numba", "cupy"])
    t.set_defaults(fn=_train)
    i = sub.add_parser("info", help="describe a data set")
    i.add_argument("--data", required=True)
    i.add_argument("--bin-us", type=int, default=10_000)
    i.set_defaults(fn=_info)
    a = p.parse_args(argv)
    try:
        return a.fn(a)
    except NeurodynError as e:
        print(f"neurodyn: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

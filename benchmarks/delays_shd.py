"""The same SNN with and without learnable delays on SHD-format data: accuracy and time per epoch.

Both runs go through ``neurodyn.train.train`` with ``configs/shd_delays.toml`` (the DCLS
recipe: 140 pooled channels, 10 ms steps, BatchNorm, LIF, dropout, delays up to 250 ms)
and differ only in ``model.delays``.  After training, the delayed network is rounded to
integer delays and scored again (the form the event core runs), and the test-set inference
time of the spread-kernel form and of the integer ring-buffer form is measured.  Writes
``benchmarks/results/delays_shd.md/.csv`` and ``delays_shd_hist.png`` (learned delays).

    python -m benchmarks.delays_shd [--quick] [--threads 2] [--data datasets/shd_sample]

The sample in datasets/ has 600 training recordings: accuracies here compare the two
networks on equal terms, they are not the paper's numbers (which need the real SHD).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from .common import RESULTS, set_threads, timeit, write_table

ROOT = Path(__file__).resolve().parent.parent


def _warm_up(hidden: int) -> None:
    """Compile the Numba kernels once so the first epoch's time is not compilation."""
    from neurodyn.delays import delay_snn
    for delays in (True, False):
        m = delay_snn(140, [hidden, hidden], 20, dt_ms=10.0, delays=delays)
        x = (torch.rand(30, 4, 140) < 0.05).float()
        m(x).sum().backward()
        m.eval()
        with torch.no_grad():
            m(x)


def _run(data: str, out: Path, delays: bool, epochs: int, hidden: int, batch: int, lr: float,
         decay_epochs: int, delay_lr_scale: float) -> dict:
    from neurodyn.train.config import load_config
    from neurodyn.train.trainer import train
    cfg = load_config(ROOT / "configs" / "shd_delays.toml", [
        f'data.path="{data}"', f'out="{out}"', f"epochs={epochs}", f"batch_size={batch}", f"lr={lr}",
        f"model.hidden=[{hidden}, {hidden}]", f"model.delays={'true' if delays else 'false'}",
        f"model.sigma_decay_epochs={decay_epochs}", f"model.delay_lr_scale={delay_lr_scale}"])
    return train(cfg, plots=False)


def _step_times(data: str, hidden: int, batch: int, rounds: int = 5) -> dict[bool, float]:
    """Median time of one training step (forward, backward, Adam) on the same batch, the two
    networks interleaved round by round so that load on the machine hits both alike."""
    from torch.utils.data import DataLoader

    from neurodyn.data import load_dataset, pad_collate
    from neurodyn.delays import delay_snn
    from neurodyn.train.losses import loss_fn
    train_ds, _ = load_dataset(data, dt_us=10_000, channel_pool=5, seed=0)
    x, y, lengths = next(iter(DataLoader(train_ds, batch_size=batch, collate_fn=pad_collate)))
    x = x.reshape(x.shape[0], x.shape[1], -1)
    lossf = loss_fn("mean_membrane")
    steps = {}
    for delays in (True, False):
        torch.manual_seed(0)
        net = delay_snn(x.shape[2], [hidden, hidden], 20, dt_ms=10.0, delays=delays)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def step(net=net, opt=opt):
            opt.zero_grad()
            lossf(net(x), y, lengths).backward()
            opt.step()
        step()
        steps[delays] = step
    times: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(rounds):
        for delays, step in steps.items():
            times[delays].append(timeit(step, repeats=1, warmup=0))
    return {k: statistics.median(v) for k, v in times.items()}


def _test_time(model, loader) -> float:
    def run():
        with torch.no_grad():
            for x, _, _ in loader:
                model(x.reshape(x.shape[0], x.shape[1], -1))
    return timeit(run, repeats=3, warmup=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs and smaller hidden layers")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=str(ROOT / "datasets" / "shd_sample"))
    ap.add_argument("--epochs", type=int, default=None)
    args = ap.parse_args()
    set_threads(args.threads)
    epochs = args.epochs or (4 if args.quick else 20)
    hidden = 64 if args.quick else 256
    batch, lr, dls = 32, 5e-3, 20.0
    decay = max(1, epochs // 4)  # the paper's schedule: a quarter of the epochs
    _warm_up(hidden)

    from neurodyn.delays import plot_delay_histograms, round_delays
    from neurodyn.train.evaluation import eval_run, load_run

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for delays in (False, True):
            out = Path(tmp) / ("delays" if delays else "plain")
            print(f"== {'with' if delays else 'without'} delays: {epochs} epochs, hidden {hidden}x2")
            m = _run(args.data, out, delays, epochs, hidden, batch, lr, decay, dls)
            h = m["history"]
            run = load_run(out / "model.pt")
            row = {"network": f"140-{hidden}-{hidden}-20 " + ("DelayedLinear" if delays else "Linear"),
                   "epochs": epochs, "s/epoch (median)": statistics.median(h["seconds"]),
                   "train acc": h["train_acc"][-1], "test acc": m["test_accuracy"], "best test acc": max(h["test_acc"])}
            t_dense = _test_time(run.model, run.test_loader())
            if delays:
                plot_delay_histograms(run.model, RESULTS / "delays_shd_hist.png", dt_ms=run.config.dt_ms)
                round_delays(run.model)
                row["test acc (rounded delays)"] = eval_run(run, progress=False)["accuracy"]
                row["test inference s (spread kernels)"] = t_dense
                row["test inference s (integer delays)"] = _test_time(run.model, run.test_loader())
            else:
                row["test acc (rounded delays)"] = float("nan")
                row["test inference s (spread kernels)"] = float("nan")
                row["test inference s (integer delays)"] = t_dense
            rows.append(row)
            print(row)
    step = _step_times(args.data, hidden, batch)
    for r, delays in zip(rows, (False, True)):
        r["train step s (interleaved)"] = step[delays]
        r["step time vs no delays"] = step[delays] / step[False]
    header = (f"# SNN with vs without learnable delays, SHD-format data ({Path(args.data).name}), "
              f"{time.strftime('%Y-%m-%d')}\n\n"
              f"configs/shd_delays.toml with batch {batch}, lr {lr}, delay_lr_scale {dls}, sigma decay over "
              f"{decay} epochs, {args.threads} threads. Epoch time includes the test evaluation and is exposed to other load "
              f"on the machine; the training step times are measured on one batch of {batch}, the two networks "
              f"interleaved. 'integer delays': rounded, run through the Numba ring buffers (inference, no "
              f"grad); inference times are for the whole test split, data loading included.")
    print(write_table("delays_shd", rows, header))


if __name__ == "__main__":
    main()

"""The same SNN with and without learnable delays on SHD-format data: accuracy and time per epoch.

Both runs go through ``neurodyn.train.train`` with ``configs/shd_delays.toml`` (the DCLS
recipe: 140 pooled channels, 10 ms steps, BatchNorm, LIF, dropout, delays up to 250 ms)
and differ only in ``model.delays``.  After training, the delayed network is rounded to
integer delays and scored again (the form the event core runs), and the test-set inference
time of the spread-kernel form and of the integer ring-buffer form is measured.  Writes
``benchmarks/results/delays_shd.md/.csv`` and ``delays_shd_hist.png`` (learned delays).
On a machine with a GPU (``--device cuda`` or ``all``) the epoch times are also measured with
model and batches on the GPU: ``delays_shd_cuda.md/.csv``.

    python -m benchmarks.delays_shd [--quick] [--threads 1] [--data datasets/shd_sample] [--device cpu|cuda|all]

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

from .common import RESULTS, devices_to_run, set_threads, timeit, timeit_interleaved, tiny, write_table

ROOT = Path(__file__).resolve().parent.parent


def _warm_up(hidden: int) -> None:
    """Compile the Numba kernels once so the first epoch's time is not compilation."""
    from neurodyn.delays import delay_snn
    from neurodyn.nn.delays import set_sigma
    for delays in (True, False):
        m = delay_snn(140, [hidden, hidden], 20, dt_ms=10.0, delays=delays)
        x = (torch.rand(30, 4, 140) < 0.1).float()
        m(x).sum().backward()
        if delays:  # narrow windows: the lanes kernels
            set_sigma(m, m.sigma_final)
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


def _epoch_times(data: str, hidden: int, batch: int, rounds: int,
                 device: str = "cpu") -> tuple[dict[str, float], dict[str, float], int]:
    """Median time of one training epoch (every batch of the training split: forward, backward,
    Adam; no evaluation) of the network without delays and of the delayed one at the first
    epoch's kernel width (sigma_init, the widest) and at the last (sigma_final): the cost
    depends on the width.  The three are interleaved epoch by epoch so that load on the machine
    hits all alike.  device 'cuda': model and batches on the GPU (the delayed layers run their
    taps as one cuDNN convolution over time).  Returns ({name: s/epoch}, {name: sigma steps},
    steps per epoch)."""
    from torch.utils.data import DataLoader

    from neurodyn.data import load_dataset, pad_collate
    from neurodyn.delays import delay_snn
    from neurodyn.nn.delays import set_sigma
    from neurodyn.train.losses import loss_fn
    train_ds, _ = load_dataset(data, dt_us=10_000, channel_pool=5, seed=0)
    batches = [(x.reshape(x.shape[0], x.shape[1], -1).to(device), y.to(device), n.to(device))
               for x, y, n in DataLoader(train_ds, batch_size=batch, shuffle=True, collate_fn=pad_collate,
                                         generator=torch.Generator().manual_seed(0))]
    lossf = loss_fn("mean_membrane")
    n_in = batches[0][0].shape[2]
    probe = delay_snn(n_in, [hidden, hidden], 20, dt_ms=10.0)
    sigmas = {"first": probe.sigma_init, "last": probe.sigma_final}
    fns = {}
    for name, sigma in [("no delays", None), *sigmas.items()]:
        torch.manual_seed(0)
        net = delay_snn(n_in, [hidden, hidden], 20, dt_ms=10.0, delays=sigma is not None).to(device)
        net.train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)

        def epoch(net=net, opt=opt, sigma=sigma):
            for x, y, lengths in batches:
                if sigma is not None:
                    set_sigma(net, sigma)  # the width the schedule sets in that epoch
                opt.zero_grad()
                lossf(net(x), y, lengths).backward()
                opt.step()
        fns[name] = epoch
    return timeit_interleaved(fns, repeats=rounds, warmup=0 if device == "cpu" else 1, device=device), sigmas, \
        len(batches)


def _gpu_epochs(data: str, hidden: int, quick: bool) -> str:
    """The epoch-time comparison on the GPU, at the benchmark's batch and at the recipe's (256):
    writes delays_shd_cuda.md/.csv."""
    rows = []
    for batch in ([32] if quick else [32, 256]):
        epoch, sigmas, n_steps = _epoch_times(data, hidden, batch, rounds=2 if quick else 5, device="cuda")
        for name in ("no delays", "first", "last"):
            rows.append({"batch": batch, "steps/epoch": n_steps, "network": name if name == "no delays" else
                         f"delays, sigma {sigmas[name]:.3g} steps ({name} epoch)", "train s/epoch": epoch[name],
                         "epoch time vs no delays": epoch[name] / epoch["no delays"]})
    header = (f"# SNN with vs without learnable delays on the GPU, SHD-format data ({Path(data).name}), "
              f"{time.strftime('%Y-%m-%d')}\n\n140-{hidden}-{hidden}-20 (configs/shd_delays.toml's network), "
              f"one training epoch (forward, backward, Adam; no evaluation), the three networks interleaved "
              f"epoch by epoch, median of the rounds; model and batches on the GPU.")
    return write_table("delays_shd_cuda", rows, header, device="cuda")


def _test_time(model, loader) -> float:
    def run():
        with torch.no_grad():
            for x, _, _ in loader:
                model(x.reshape(x.shape[0], x.shape[1], -1))
    return timeit(run, repeats=3, warmup=1)


def main(argv: list[str] | None = None) -> str:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer epochs and smaller hidden layers")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=str(ROOT / "datasets" / "shd_sample"))
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--device", choices=["cpu", "cuda", "all"], default="all",
                    help="cpu: training runs and epoch times; cuda: epoch times on the GPU (delays_shd_cuda)")
    args = ap.parse_args(argv)
    set_threads(args.threads)
    epochs = args.epochs or (2 if tiny() else 4 if args.quick else 20)
    hidden = 16 if tiny() else 64 if args.quick else 256
    devices = devices_to_run(args.device, "delays_shd")
    text = _gpu_epochs(args.data, hidden, args.quick) + "\n" if "cuda" in devices else ""
    if "cpu" not in devices:
        print(text)
        return text
    batch, lr, dls = 32, 5e-3, 20.0
    decay = max(1, epochs // 4)  # the paper's schedule: a quarter of the epochs
    _warm_up(hidden)

    from neurodyn.delays import plot_delay_histograms, round_delays
    from neurodyn.train.evaluation import eval_run, load_run

    rows, histories = [], []
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
            histories.append(h)
            print(row)
    epoch, sigmas, n_steps = _epoch_times(args.data, hidden, batch, rounds=2 if args.quick else 3)
    plain_run = sum(histories[0]["seconds"])
    for r, delays, h in zip(rows, (False, True), histories):
        r["run s (epochs with test eval)"] = sum(h["seconds"])
        r["run time vs no delays"] = sum(h["seconds"]) / plain_run
        for when in ("first", "last"):
            t = epoch[when] if delays else epoch["no delays"]
            r[f"sigma steps ({when})"] = sigmas[when] if delays else float("nan")
            r[f"train s/epoch ({when})"] = t
            r[f"epoch time vs no delays ({when})"] = t / epoch["no delays"]
    header = (f"# SNN with vs without learnable delays, SHD-format data ({Path(args.data).name}), "
              f"{time.strftime('%Y-%m-%d')}\n\n"
              f"configs/shd_delays.toml with batch {batch}, lr {lr}, delay_lr_scale {dls}, sigma decay over "
              f"{decay} epochs, {args.threads} threads. 'train s/epoch': one training epoch ({n_steps} steps of "
              f"{batch}, no evaluation), the network without delays and the delayed one at the first epoch's "
              f"kernel width (sigma_init, the widest) and at the last (sigma_final) interleaved epoch by epoch, "
              f"median of the rounds. 'run s': the whole training runs above (epochs with their test evaluation, "
              f"one run after the other, so exposed to other load on the machine). 'integer delays': rounded, "
              f"run through the Numba ring "
              f"buffers (inference, no grad); inference times are for the whole test split, data loading "
              f"included.")
    text += write_table("delays_shd", rows, header)
    print(text)
    return text


if __name__ == "__main__":
    main()

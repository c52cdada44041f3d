"""Streaming inference: SHD recordings fed to the event core 10 ms at a time, each sample exiting on its own.

A deployed network sees its input as it arrives. ``Network.stream`` keeps every sample's state
(membranes, recurrent spikes, the early-exit evidence) between chunks, so feeding 10 ms at a
time gives exactly the outputs of one run over the whole recordings, and a sample whose readout
is confident stops there, mid-stream, and costs nothing after. Here eight test recordings of
the SHD sample (1 ms steps, each its own length) stream through a recurrent spiking network.
Nothing is trained: the weights are random, so the predictions mean nothing, and the exit
threshold is simply the median of the confidences the samples reach at the end of their
recordings, so that about half of them exit early (examples/early_exit.py calibrates a trained
network's threshold). The example prints when each sample exits or its
recording ends, checks the stream against the whole run and plots each sample's confidence.

    python examples/streaming.py [--data datasets/shd_sample] [--samples 8] [--chunk-ms 10]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import neurodyn.nn as ndn  # noqa: E402
from neurodyn.core import StreamChunk  # noqa: E402
from neurodyn.data import SHD_CHANNELS, SHDFile, to_frames  # noqa: E402
from neurodyn.inference import EarlyExit, confidence_trace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DT_US = 1000  # 1 ms steps


def main(out: Path = Path("runs/examples/streaming"), data: Path = ROOT / "datasets" / "shd_sample",
         samples: int = 8, chunk_ms: int = 10) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    shd = SHDFile(data / "shd_test.h5")
    frames = [torch.from_numpy(to_frames(shd[i][0], n_channels=SHD_CHANNELS, dt_us=DT_US)) for i in range(samples)]
    lengths = torch.tensor([f.shape[0] for f in frames])            # each recording's own length (steps)
    x = torch.zeros(int(lengths.max()), samples, SHD_CHANNELS)      # [T, B, 700] spike counts, zero-padded
    for b, f in enumerate(frames):
        x[:f.shape[0], b] = f

    torch.manual_seed(0)
    model = torch.nn.Sequential(ndn.Linear(SHD_CHANNELS, 128), ndn.LIF(tau_mem=20.0, normalize_input=False),
                                ndn.Recurrent(128, 128, ndn.LIF(tau_mem=20.0, normalize_input=False)),
                                ndn.Linear(128, 20), ndn.LI(tau_mem=20.0)).eval()
    with torch.no_grad():  # random weights strong enough to spike on SHD's sparse input; no biases
        for i, p in enumerate(model.parameters()):
            p.mul_(30.0 if i == 0 else 5.0) if p.dim() == 2 else p.zero_()
    net = ndn.to_network(model)

    conf, _ = confidence_trace(net.run(x, steps=lengths).out)                  # [T, B] after every step
    at_end = conf[lengths - 1, torch.arange(samples)]
    ee = EarlyExit(threshold=float(at_end.median()), measure="max_softmax", min_steps=20)
    whole = net.run(x, steps=lengths, early_exit=ee, record=True)   # the reference: one run, all input at once

    stream = net.stream(samples, lengths=lengths, early_exit=ee, record=True)
    chunks, wall = [], []
    for t0 in range(0, x.shape[0], chunk_ms):                       # the input as it arrives, 10 ms at a time
        tic = time.perf_counter()
        ch = stream.step(x[t0:t0 + chunk_ms])
        wall.append(time.perf_counter() - tic)
        chunks.append(ch)
        now = t0 + ch.out.shape[0]
        for b in torch.nonzero(ch.new_exits).flatten().tolist():
            print(f"{now:5d} ms: sample {b} exits after {int(ch.total_steps[b])} ms, class {int(ch.pred[b])}, "
                  f"confidence {float(ch.confidence[b]):.3f} (recording {int(lengths[b])} ms)")
        for b in torch.nonzero(ch.ended & ~ch.exited & (ch.steps > 0)).flatten().tolist():
            print(f"{now:5d} ms: sample {b}'s recording ends at {int(ch.total_steps[b])} ms without an exit, "
                  f"class {int(ch.pred[b])}")
        if stream.done.all():
            break
    joined = StreamChunk.join(chunks)
    T_run = joined.out.shape[0]
    same = (torch.equal(joined.out, whole.out[:T_run]) and not whole.out[T_run:].any()
            and torch.equal(joined.steps, whole.steps) and torch.equal(joined.pred, whole.pred)
            and torch.equal(joined.confidence, whole.confidence)
            and all(torch.equal(a, b) for a, b in zip(joined.counts, whole.counts)))
    saved = 1 - float(whole.steps.sum()) / float(lengths.sum())
    per_chunk_ms = 1e3 * sorted(wall)[len(wall) // 2]

    fig, ax = plt.subplots(figsize=(8, 3.5))
    trace = torch.cat([c.confidence_trace for c in chunks])        # [T, B], 0 after a sample's last step
    for b in range(samples):
        s = int(whole.steps[b])
        ax.plot(torch.arange(1, s + 1), trace[:s, b], lw=1, color=f"C{b % 10}")
        ax.plot([s], [trace[s - 1, b]], "o" if s < int(lengths[b]) else "x", color=f"C{b % 10}")
    ax.axhline(ee.threshold, color="k", ls="--", lw=0.8, label="exit threshold")
    ax.set(xlabel="time (ms)", ylabel="max-softmax confidence",
           title=f"streamed in {chunk_ms} ms chunks: {saved:.0%} of the steps skipped (o: exit, x: recording ends)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "streaming.png", dpi=120)
    plt.close(fig)
    print(f"stream == whole run: {same}; {saved:.0%} of the sample-steps skipped by early exit; "
          f"{per_chunk_ms:.2f} ms per {chunk_ms} ms chunk of {samples} samples; plot: {out / 'streaming.png'}")
    return {"stream_equals_whole_run": same, "steps": whole.steps, "lengths": lengths, "skipped": saved,
            "chunk_wall_ms": per_chunk_ms, "plot": out / "streaming.png"}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "datasets" / "shd_sample", help="SHD folder (shd_test.h5)")
    ap.add_argument("--samples", type=int, default=8, help="test recordings streamed side by side")
    ap.add_argument("--chunk-ms", type=int, default=10, help="input per chunk (ms; one step is 1 ms)")
    ap.add_argument("--out", type=Path, default=Path("runs/examples/streaming"), help="folder for the plot")
    main(**vars(ap.parse_args()))

"""Train and evaluate a spiking classifier on event data ([T, B, ...] frames with lengths)."""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..data import load_dataset, pad_collate
from .checkpoint import save_checkpoint
from .models import spiking_mlp


@dataclass
class TrainConfig:
    """Everything a run depends on. Times in ms (dt) and microseconds (bin_us)."""

    data: str
    out: str = "runs/latest"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 5e-3
    hidden: list[int] = field(default_factory=lambda: [128])
    neuron: str = "lif"
    tau_mem: float = 20.0
    tau_out: float = 20.0
    bin_us: int = 10_000
    channel_pool: int = 1
    dropout: float = 0.1
    seed: int = 0
    backend: str = "auto"


def readout_logits(v: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean readout membrane over each sample's own steps: v [T, B, C], lengths [B] -> [B, C]."""
    T = v.shape[0]
    mask = (torch.arange(T)[:, None] < lengths[None, :]).to(v.dtype)
    return (v * mask[..., None]).sum(0) / lengths.clamp(min=1)[:, None].to(v.dtype)


def _flatten(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], x.shape[1], -1)


def evaluate(model: nn.Module, loader: DataLoader) -> tuple[float, np.ndarray]:
    """Accuracy and confusion matrix [C, C] (rows: true class) of ``model`` on ``loader``."""
    model.eval()
    preds, ys = [], []
    with torch.no_grad():
        for x, y, lengths in loader:
            preds.append(readout_logits(model(_flatten(x)), lengths).argmax(1))
            ys.append(y)
    p, t = torch.cat(preds).numpy(), torch.cat(ys).numpy()
    n = int(max(p.max(), t.max())) + 1
    cm = np.zeros((n, n), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return float((p == t).mean()), cm


def train(cfg: TrainConfig) -> dict:
    """Run training; writes metrics.json, model.pt and plots into cfg.out; returns the metrics."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    train_ds, test_ds = load_dataset(cfg.data, dt_us=cfg.bin_us, channel_pool=cfg.channel_pool, seed=cfg.seed)
    x0, _ = train_ds[0]
    n_in = int(np.prod(x0.shape[1:]))
    n_classes = int(max(train_ds.num_classes, test_ds.num_classes))
    g = torch.Generator().manual_seed(cfg.seed)
    tl = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, collate_fn=pad_collate, generator=g)
    vl = DataLoader(test_ds, batch_size=128, shuffle=False, collate_fn=pad_collate)
    model = spiking_mlp(n_in, cfg.hidden, n_classes, neuron=cfg.neuron, tau_mem=cfg.tau_mem, tau_out=cfg.tau_out,
                        dt=cfg.bin_us / 1000.0, dropout=cfg.dropout, backend=cfg.backend)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    hist: dict[str, list] = {"epoch": [], "loss": [], "train_acc": [], "test_acc": [], "seconds": []}
    for ep in range(cfg.epochs):
        model.train()
        t0, tot, correct, n = time.time(), 0.0, 0, 0
        bar = tqdm(tl, desc=f"epoch {ep + 1}/{cfg.epochs}", leave=False)
        for x, y, lengths in bar:
            logits = readout_logits(model(_flatten(x)), lengths)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            tot += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
            n += len(y)
            bar.set_postfix(loss=f"{tot / n:.3f}", acc=f"{correct / n:.2f}")
        sched.step()
        acc, cm = evaluate(model, vl)
        for k, v in zip(hist, (ep + 1, tot / n, correct / n, acc, time.time() - t0)):
            hist[k].append(v)
        print(f"epoch {ep + 1}: loss {tot / n:.3f}  train acc {correct / n:.3f}  test acc {acc:.3f}  "
              f"({hist['seconds'][-1]:.1f} s)")
        save_checkpoint(out / "model.pt", {"config": asdict(cfg), "model": model.state_dict(),
                                           "optimizer": opt.state_dict(), "epoch": ep + 1})
    metrics = {"config": asdict(cfg), "history": hist, "test_accuracy": hist["test_acc"][-1] if hist["test_acc"] else None,
               "confusion": cm.tolist() if cfg.epochs else None}
    tmp = out / "metrics.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=1))
    tmp.replace(out / "metrics.json")
    from .plots import plot_run
    plot_run(hist, model, test_ds, cm if cfg.epochs else None, out)
    return metrics

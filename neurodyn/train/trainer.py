"""Train and evaluate a classifier on event data ([T, B, ...] frames with lengths).

One process, or data-parallel under ``torchrun`` (DistributedDataParallel; gloo on CPU):
``train.batch_size`` is the global batch, split evenly over the processes; every process
reads its share of each global batch (a DistributedSampler over the same per-epoch
permutation, so one process and N processes see the same global batches), gradients are
averaged by DDP, metrics are summed over processes, and only rank 0 writes files.

A run folder (``cfg.out``) holds ``config.toml`` (the exact config), ``model.pt`` (the
checkpoint after the last finished epoch: model, optimizer, scheduler, epoch, history and
every process's RNG state, so ``resume=True`` continues bit-identically), ``metrics.json``
and the plots.  A model with a method ``on_epoch_end(epoch)`` has it called after each
epoch's evaluation (epoch 1-based), before the checkpoint is written.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, Subset
from tqdm import tqdm

from ..core.events import Events
from ..data import SHD_CHANNELS, EventDataset, SHDAugment, SHDFile, events_collate, load_dataset, pad_collate
from ..data.split import validation_split
from ..errors import BackendUnavailableError, ConfigError
from ..nn.sequential import Sequential
from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from .config import DataConfig, TrainConfig, TrainOptions, write_config
from .device import model_device, resolve_device, to_device, wants_cuda
from .losses import class_scores, loss_fn, readout_logits
from .models import build_model, model_spec

__all__ = ["BEST_NAME", "CHECKPOINT_NAME", "DataConfig", "TrainConfig", "TrainOptions", "confusion_counts", "confusion_matrix",
           "evaluate", "make_optimizer", "make_scheduler", "readout_logits", "run_epochs", "train"]

CHECKPOINT_NAME = "model.pt"
BEST_NAME = "best.pt"
EpochCallback = Callable[[int, dict], None]


def flatten_frames(x: torch.Tensor | Events) -> torch.Tensor | Events:
    """[T, B, ...] -> [T, B, features] (the layout every registered model takes); Events as they are."""
    return x if isinstance(x, Events) else x.reshape(x.shape[0], x.shape[1], -1)


# ----------------------------------------------------------------------------- evaluation

def confusion_matrix(model: nn.Module, loader: DataLoader, loss: str = "mean_membrane",
                     n_classes: int | None = None, progress: bool = False) -> np.ndarray:
    """Counts [C, C] (rows: true class, columns: predicted) of ``model`` on ``loader``.

    Predictions are the argmax of the scores matching ``loss`` (see losses.class_scores).
    Without ``n_classes`` C is 1 + the largest label or prediction seen.
    """
    model.eval()
    dev = model_device(model)
    return confusion_of(lambda x, lengths: model(to_device(x, dev)).cpu(), loader, loss, n_classes, progress)


def confusion_of(forward: Callable[[Any, torch.Tensor], torch.Tensor], loader: DataLoader,
                 loss: str = "mean_membrane", n_classes: int | None = None, progress: bool = False,
                 desc: str = "evaluate") -> np.ndarray:
    """``confusion_matrix`` of any forward pass: forward(x [T, B, features] or Events, lengths [B])
    -> readout [T, B, C] (a CPU tensor)."""
    preds, ys = [], []
    with torch.no_grad():
        for x, y, lengths in tqdm(loader, desc=desc, leave=False, disable=not progress):
            preds.append(class_scores(forward(flatten_frames(x), lengths), lengths, loss).argmax(1))
            ys.append(y)
    return confusion_counts(preds, ys, n_classes)


def confusion_counts(preds: list[torch.Tensor], labels: list[torch.Tensor], n_classes: int | None = None) -> np.ndarray:
    """Confusion matrix [C, C] (rows: true class) from batches of predicted and true classes [B].

    Without ``n_classes`` C is 1 + the largest label or prediction seen.
    """
    p = torch.cat(preds).numpy() if preds else np.zeros(0, np.int64)
    t = torch.cat(labels).numpy() if labels else np.zeros(0, np.int64)
    if n_classes is None:
        n_classes = int(max(p.max(initial=-1), t.max(initial=-1))) + 1
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    return cm


def accuracy_of(cm: np.ndarray) -> float:
    """Fraction on the diagonal of a confusion matrix (nan if it is empty)."""
    total = cm.sum()
    return float(np.trace(cm) / total) if total else float("nan")


def evaluate(model: nn.Module, loader: DataLoader, loss: str = "mean_membrane",
             n_classes: int | None = None) -> tuple[float, np.ndarray]:
    """Accuracy and confusion matrix [C, C] (rows: true class) of ``model`` on ``loader``."""
    cm = confusion_matrix(model, loader, loss, n_classes)
    return accuracy_of(cm), cm


# ----------------------------------------------------------------------------- pieces of a run

def make_optimizer(params, t: TrainOptions) -> torch.optim.Optimizer:
    """The optimizer ``[train]`` names (Adam or AdamW) with lr and weight decay."""
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[t.optimizer]
    return cls(params, lr=t.lr, weight_decay=t.weight_decay)


def make_scheduler(opt: torch.optim.Optimizer, t: TrainOptions) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch learning-rate schedule: cosine over all epochs, step decay, or none; with
    ``warmup_epochs`` w the lr first rises linearly (lr/(w+1), 2 lr/(w+1), ...) and the schedule
    then spans the remaining epochs."""
    w = t.warmup_epochs
    if w == 0:
        if t.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t.epochs)
        if t.scheduler == "step":
            return torch.optim.lr_scheduler.StepLR(opt, step_size=t.step_size, gamma=t.gamma)
        return None

    def factor(epoch: int) -> float:
        if epoch < w:
            return (epoch + 1) / (w + 1)
        e = epoch - w
        if t.scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * e / (t.epochs - w)))
        if t.scheduler == "step":
            return t.gamma ** (e // t.step_size)
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def run_epochs(t: TrainOptions, steps_per_epoch: int) -> TrainOptions:
    """``t`` with the number of epochs the run makes: ``t.epochs``, or with a step budget
    (``t.steps`` > 0) ceil(steps / steps_per_epoch), so that a small data set is not
    under-trained by an epoch count chosen for a large one."""
    if not t.steps:
        return t
    epochs = max(1, -(-t.steps // max(1, steps_per_epoch)))
    if t.warmup_epochs >= epochs:
        raise ConfigError(f"train.warmup_epochs = {t.warmup_epochs} leaves no epoch of the {epochs} that "
                          f"train.steps = {t.steps} gives at {steps_per_epoch} steps per epoch")
    return dataclasses.replace(t, epochs=epochs)


def seed_everything(seed: int) -> None:
    """Seed torch, numpy's global generator and Python's ``random``."""
    import random
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


@dataclass
class _Dist:
    rank: int = 0
    world: int = 1
    owns_group: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0


def _setup_dist(cuda: bool = False) -> _Dist:
    """Join the process group torchrun describes (WORLD_SIZE > 1), or use one already set up.
    cuda: the run is on GPUs, so the group's default backend is nccl (gloo on CPU);
    NEURODYN_DIST_BACKEND overrides it."""
    if dist.is_available() and dist.is_initialized():
        return _Dist(dist.get_rank(), dist.get_world_size(), False)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return _Dist()
    if not dist.is_available():
        raise BackendUnavailableError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    dist.init_process_group(backend=os.environ.get("NEURODYN_DIST_BACKEND", "nccl" if cuda else "gloo"))
    return _Dist(dist.get_rank(), dist.get_world_size(), True)


def _all_sum(values: list[float], d: _Dist) -> list[float]:
    if d.world == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.cpu().tolist()


def _collective_device() -> torch.device:
    """Where tensors for the process group's collectives live: the GPU under nccl, else the CPU."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


class _OwnRngAugment:
    """Augmentation drawing from one generator the trainer owns (and checkpoints)."""

    def __init__(self, aug: SHDAugment, rng: np.random.Generator) -> None:
        self.aug, self.rng = aug, rng

    def __call__(self, events: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.aug(events, self.rng)


def _datasets(data: DataConfig, seed: int, rank: int) -> tuple[EventDataset, EventDataset, np.random.Generator | None]:
    train_ds, test_ds = load_dataset(data.path, dt_us=data.bin_us, channel_pool=data.channel_pool, seed=seed)
    if not data.augment:
        return train_ds, test_ds, None
    if not isinstance(train_ds.reader, SHDFile):
        raise ConfigError(f"data.augment = true is SHD augmentation; {data.path} is not SHD/SSC-format data")
    rng = np.random.default_rng([seed, rank])
    aug = _OwnRngAugment(SHDAugment(n_channels=SHD_CHANNELS, max_shift=data.aug_channel_shift,
                                    channel_sigma=data.aug_channel_jitter, time_std_us=data.aug_time_jitter_us,
                                    p_drop=data.aug_drop, max_time_shift_us=data.aug_time_shift_us,
                                    max_stretch=data.aug_time_stretch), rng)
    return EventDataset(train_ds.reader, train_ds.transform, augment=aug, seed=seed), test_ds, rng


def _check_resumable(ck: dict, cfg: TrainConfig, world: int, path: Path) -> None:
    old, new = ck.get("config", {}), cfg.to_dict()
    defaults = TrainConfig().to_dict()
    diffs = []
    for sec in ("data", "model", "train"):
        for key in sorted(set(old.get(sec, {})) | set(new[sec])):
            if sec == "data" and key == "path":
                continue  # the same data may have moved
            # a key added after the checkpoint was written counts as its default there
            if sec == "model":
                same_kind = old.get("model", {}).get("kind") == new["model"].get("kind")
                missing = model_spec(new["model"]["kind"]).defaults.get(key, "<missing>") if same_kind else "<missing>"
            else:
                missing = defaults[sec].get(key, "<missing>")
            a, b = old.get(sec, {}).get(key, missing), new[sec].get(key, "<missing>")
            if a != b:
                diffs.append(f"{sec}.{key} ({a!r} in the checkpoint, {b!r} now)")
    if diffs:
        raise ConfigError(f"{path}: cannot resume with a different config: {'; '.join(diffs)}")
    if ck.get("world_size", 1) != world:
        raise ConfigError(f"{path}: written by {ck.get('world_size')} processes, resuming with {world}; "
                          "exact resume needs the same number")


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


# ----------------------------------------------------------------------------- the loop

def train(cfg: TrainConfig, *, resume: bool = False, on_epoch_end: EpochCallback | None = None,
          plots: bool = True) -> dict:
    """Train ``cfg``; writes config.toml, model.pt (every epoch), metrics.json and plots to cfg.out.

    ``resume``: continue from ``cfg.out/model.pt`` if it exists (same config and process
    count required), giving the same weights as an uninterrupted run.  ``on_epoch_end(epoch,
    row)`` runs on every process after each epoch's checkpoint is written (an exception
    there stops training, as a crash would).  Returns the metrics (on every process, with its "rank").
    """
    if not isinstance(cfg, TrainConfig):
        raise ConfigError(f"train() needs a TrainConfig, got {type(cfg).__name__}")
    if not cfg.data.path:
        raise ConfigError("no data: set data.path (CLI: --data PATH)")
    d = _setup_dist(wants_cuda(cfg.train.device))
    try:
        return _train(cfg, d, resume, on_epoch_end, plots)
    finally:
        if d.owns_group:
            dist.destroy_process_group()


def _train(cfg: TrainConfig, d: _Dist, resume: bool, on_epoch_end: EpochCallback | None, plots: bool) -> dict:
    t_opt = cfg.train
    if t_opt.batch_size % d.world:
        raise ConfigError(f"train.batch_size = {t_opt.batch_size} does not split over {d.world} processes")
    device = resolve_device(t_opt.device, d.world)  # no GPU: one error before anything is written
    seed_everything(t_opt.seed + d.rank)
    out = Path(cfg.out)
    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        write_config(cfg, out / "config.toml")

    train_ds, test_ds, aug_rng = _datasets(cfg.data, t_opt.seed, d.rank)
    x0, _ = train_ds[0]
    n_in = int(np.prod(x0.shape[1:]))
    n_classes = int(max(train_ds.num_classes, test_ds.num_classes))
    net = build_model(cfg.model, n_in, n_classes, cfg.dt_ms, t_opt.backend).to(device)
    model: nn.Module = net
    if d.world > 1:  # broadcasts rank 0's initial weights
        model = nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    opt = make_optimizer(net.parameters(), t_opt)
    lossf = loss_fn(t_opt.loss)

    # One permutation per epoch (seed + epoch), cut into world-size shares: the global batches
    # are the same for any number of processes.
    # event lists feed the CPU kernels; on a GPU the batches go over as dense frames
    use_events = cfg.data.input == "events" and isinstance(net, Sequential) and device.type == "cpu"
    fit_ds: Any = train_ds.with_sparse(use_events)
    val_ds, val_idx = None, None
    if t_opt.val_fraction > 0:
        fit_idx, val_idx = validation_split(train_ds.labels, t_opt.val_fraction, t_opt.seed,
                                            getattr(train_ds.reader, "speakers", None))
        fit_ds = Subset(fit_ds, fit_idx.tolist())
        val_ds = EventDataset(train_ds.reader, train_ds.transform, seed=t_opt.seed)  # not augmented
        if d.main:
            by = "speakers" if getattr(train_ds.reader, "speakers", None) is not None else "class-stratified"
            print(f"validation: {len(val_idx)} of {len(train_ds)} training samples held out ({by})")
    sampler = DistributedSampler(fit_ds, num_replicas=d.world, rank=d.rank, shuffle=True, seed=t_opt.seed)
    g = torch.Generator().manual_seed(t_opt.seed + d.rank)
    # Event lists go straight into a fused stack's kernels (no frames read); other models take
    # frames. The datasets hand the lists over as their cached nonzeros: no frame is built or scanned.
    collate = events_collate if use_events else pad_collate
    tl = DataLoader(fit_ds, batch_size=t_opt.batch_size // d.world, sampler=sampler, collate_fn=collate, generator=g)
    t_opt = run_epochs(t_opt, len(tl))
    if d.main and cfg.train.steps:
        print(f"{t_opt.epochs} epochs of {len(tl)} steps for a budget of {cfg.train.steps} steps")
    sched = make_scheduler(opt, t_opt)
    test_l = _eval_loader(test_ds.with_sparse(use_events), range(len(test_ds)), t_opt.eval_batch_size, collate, d)
    val_l = None if val_idx is None else _eval_loader(val_ds.with_sparse(use_events), val_idx, t_opt.eval_batch_size,
                                                      collate, d)

    hist: dict[str, list] = {"epoch": [], "loss": [], "train_acc": [], "test_acc": [], "lr": [], "seconds": []}
    if val_l is not None:
        hist["val_acc"] = []
    best = {"epoch": 0, "val_acc": -1.0}         # by validation accuracy; kept in best.pt
    stopped_early = finished = False
    start, resumed_from = 0, None
    ckpt_path = out / CHECKPOINT_NAME
    if resume and ckpt_path.is_file():
        ck = load_checkpoint(ckpt_path)
        _check_resumable(ck, cfg, d.world, ckpt_path)
        net.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        if sched is not None:
            sched.load_state_dict(ck["scheduler"])
        start = resumed_from = int(ck["epoch"])
        hist = {k: list(v) for k, v in ck["history"].items()}
        best = dict(ck.get("best", best))
        stopped_early = bool(ck.get("stopped_early", False))
        # finished: the end of the run (best model kept, finalised) is in the checkpoint; older
        # checkpoints without the flag were finalised when they reached their last epoch
        finished = bool(ck.get("finished", start >= t_opt.epochs and "best" not in ck))
        set_rng_state(ck["rng"][d.rank], g, aug_rng)
        if d.main:
            print(f"resuming {ckpt_path} after epoch {start}")
    elif resume and d.main:
        print(f"no checkpoint at {ckpt_path}; starting from scratch")

    cm = None
    for ep in range(start, t_opt.epochs):
        if stopped_early:
            break
        sampler.set_epoch(ep)
        model.train()
        t0, tot, correct, n = time.time(), 0.0, 0, 0
        lr = opt.param_groups[0]["lr"]
        bar = tqdm(tl, desc=f"epoch {ep + 1}/{t_opt.epochs}", leave=False, disable=not d.main)
        for x, y, lengths in bar:
            x, y, lengths = (to_device(a, device) for a in (x, y, lengths))
            v = model(flatten_frames(x))
            loss = lossf(v, y, lengths)
            opt.zero_grad()
            loss.backward()
            if t_opt.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(net.parameters(), t_opt.grad_clip)
            opt.step()
            with torch.no_grad():
                tot += loss.item() * len(y)
                correct += int((class_scores(v, lengths, t_opt.loss).argmax(1) == y).sum())
            n += len(y)
            bar.set_postfix(loss=f"{tot / n:.3f}", acc=f"{correct / n:.2f}")
        if sched is not None:
            sched.step()
        tot, correct, n = _all_sum([tot, float(correct), float(n)], d)
        cm = _test_confusion(net, test_l, t_opt.loss, n_classes, d)
        row = {"epoch": ep + 1, "loss": tot / n, "train_acc": correct / n, "test_acc": accuracy_of(cm), "lr": lr,
               "seconds": time.time() - t0}
        improved = False
        if val_l is not None:
            row["val_acc"] = accuracy_of(_test_confusion(net, val_l, t_opt.loss, n_classes, d))
            improved = row["val_acc"] > best["val_acc"]
            if improved:
                best = {"epoch": ep + 1, "val_acc": row["val_acc"]}
            stopped_early = bool(t_opt.early_stopping) and ep + 1 - best["epoch"] >= t_opt.early_stopping
        for k in hist:
            hist[k].append(row[k])
        if improved and d.main:  # the weights this epoch was validated with, before model-side schedules move on
            save_checkpoint(out / BEST_NAME, {"format": 1, "config": cfg.to_dict(), "epoch": ep + 1,
                                              "val_acc": row["val_acc"], "model": net.state_dict(),
                                              "n_in": n_in, "n_classes": n_classes})
        if callable(getattr(net, "on_epoch_end", None)):
            net.on_epoch_end(ep + 1)  # model-side schedules (e.g. delays' kernel width); saved with the weights
        rngs = [rng_state(g, aug_rng)]
        if d.world > 1:
            rngs = [None] * d.world
            dist.all_gather_object(rngs, rng_state(g, aug_rng))
        if d.main:
            val = f"  val acc {row['val_acc']:.3f}" if "val_acc" in row else ""
            print(f"epoch {ep + 1}: loss {row['loss']:.3f}  train acc {row['train_acc']:.3f}{val}  "
                  f"test acc {row['test_acc']:.3f}  ({row['seconds']:.1f} s)")
            save_checkpoint(ckpt_path, {
                "format": 1, "config": cfg.to_dict(), "epoch": ep + 1, "model": net.state_dict(),
                "optimizer": opt.state_dict(), "scheduler": sched.state_dict() if sched is not None else None,
                "history": hist, "rng": rngs, "world_size": d.world, "n_in": n_in, "n_classes": n_classes,
                "best": best, "stopped_early": stopped_early})
            if stopped_early:
                print(f"early stopping: no better validation accuracy for {t_opt.early_stopping} epochs "
                      f"(best {best['val_acc']:.3f} after epoch {best['epoch']})")
        if d.world > 1:
            dist.barrier()  # the checkpoint exists before any process moves on
        if on_epoch_end is not None:
            on_epoch_end(ep + 1, row)

    finalized: dict[str, Any] = {}
    last = hist["epoch"][-1] if hist["epoch"] else 0
    if finished:  # a finished run resumed: report the checkpoint's model as it is
        cm = _test_confusion(net, test_l, t_opt.loss, n_classes, d)
    else:
        if val_l is not None and best["epoch"] and best["epoch"] != last:
            # keep the model of the best validation epoch, not the last one
            net.load_state_dict(load_checkpoint(out / BEST_NAME)["model"])
            cm = None
            if d.main:
                print(f"kept the model of epoch {best['epoch']} (best validation accuracy {best['val_acc']:.3f})")
        if cm is None:  # the last epoch's test confusion is not that of the model kept
            cm = _test_confusion(net, test_l, t_opt.loss, n_classes, d)
        if callable(getattr(net, "on_train_end", None)):
            # Model-side finalisation (e.g. rounding learned delays to integer steps, the form the
            # event core and chips run): evaluate again and keep the finalised model in the checkpoint.
            finalized["test_accuracy_before_finalize"] = accuracy_of(cm)
            net.on_train_end()
            cm = _test_confusion(net, test_l, t_opt.loss, n_classes, d)
            if d.main:
                print(f"finalised model ({type(net).__name__}.on_train_end): test acc {accuracy_of(cm):.3f} "
                      f"(before: {finalized['test_accuracy_before_finalize']:.3f})")
        if d.main and last:
            ck = load_checkpoint(ckpt_path)  # the model to use; optimizer and RNG state stay the last epoch's
            ck["model"], ck["finished"] = net.state_dict(), True
            ck["model_epoch"] = best["epoch"] if val_l is not None and best["epoch"] else last
            save_checkpoint(ckpt_path, ck)
        if d.world > 1:
            dist.barrier()
    summary = _summary(hist, best if val_l is not None else None, accuracy_of(cm))
    metrics = {"config": cfg.to_dict(), "history": hist, "test_accuracy": accuracy_of(cm), "confusion": cm.tolist(),
               "n_classes": n_classes, "world_size": d.world, "resumed_from_epoch": resumed_from, **summary,
               **finalized}
    if d.main:
        _write_json(out / "metrics.json", metrics)
        if plots:
            from .plots import plot_run
            plot_run(hist, net, test_ds, cm, out, dt_ms=cfg.dt_ms)
    return {**metrics, "rank": d.rank}


def _eval_loader(ds: Any, indices: Any, batch_size: int, collate: Callable, d: _Dist) -> DataLoader:
    """This process's share of ``ds[indices]``, in order (metrics are summed over processes)."""
    idx = list(indices)
    return DataLoader(Subset(ds, idx[d.rank::d.world]), batch_size=batch_size, shuffle=False, collate_fn=collate)


def _summary(hist: dict, best: dict | None, test_acc: float) -> dict:
    """Train / val / test accuracy of the model kept (the best validation epoch, or the last)."""
    if not hist["epoch"]:
        return {}
    i = hist["epoch"].index(best["epoch"]) if best is not None and best["epoch"] in hist["epoch"] else -1
    out = {"train_accuracy": hist["train_acc"][i], "model_epoch": hist["epoch"][i],
           "epochs_trained": hist["epoch"][-1]}
    if best is not None:
        out["val_accuracy"] = hist["val_acc"][i]
    return out


def _test_confusion(net: nn.Module, loader: DataLoader, loss: str, n_classes: int, d: _Dist) -> np.ndarray:
    cm = confusion_matrix(net, loader, loss, n_classes)
    if d.world > 1:
        t = torch.from_numpy(cm).to(_collective_device())
        dist.all_reduce(t)
        cm = t.cpu().numpy()
    return cm

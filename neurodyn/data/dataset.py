"""torch Dataset over an event reader, with an in-memory cache, a padding collate and
``load_dataset`` that recognises SHD/SSC HDF5 files and N-MNIST folders.

Samples are float32 frames ``[T, ...]`` (T varies per sample); ``pad_collate`` stacks a
batch time-major as ``x [T_max, B, ...]`` with zero padding, labels ``y [B]`` and the true
lengths ``[B]``, the multi-step layout of neurodyn.nn.
"""
from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from ..core.events import Events, row_pointer
from ..errors import ConfigError, DataFormatError, ShapeError
from .nmnist import NMNIST_SENSOR, NMNISTFolder
from .shd import SHD_CHANNELS, SHDFile
from .transforms import SHDAugment, ToFrames

Augment = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class EventReader(Protocol):
    """What EventDataset needs from a reader (SHDFile, NMNISTFolder satisfy it)."""

    labels: np.ndarray

    @property
    def num_classes(self) -> int: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]: ...


@dataclass(frozen=True, eq=False)
class SparseFrames:
    """One sample's frames ``[T, ...]`` held as their nonzeros (what ``EventDataset(sparse=True)``
    gives and ``events_collate`` batches without reading a frame).

    shape: the frames' shape; index [E] int32/int64: flat positions in the C-ordered frames,
    ascending (step, then channel); values [E]: the entries there (a small unsigned dtype when
    they are whole counts, which is what binned events are, else the frames' own dtype).
    """

    shape: tuple[int, ...]
    index: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        idx, vals, shape = self.index, self.values, self.shape
        if len(shape) < 1 or min(shape) < 0:
            raise ShapeError(f"SparseFrames shape must be [T, ...] with sizes >= 0, got {shape}")
        if not (isinstance(idx, np.ndarray) and isinstance(vals, np.ndarray) and idx.ndim == vals.ndim == 1
                and idx.shape == vals.shape and idx.dtype.kind == "i" and vals.dtype.kind in "uif"):
            raise ShapeError("SparseFrames index and values must be 1-D numpy arrays of one length "
                             "(integer positions, real values)")
        if idx.size and (idx[0] < 0 or idx[-1] >= np.prod(shape, dtype=np.int64) or np.any(idx[1:] <= idx[:-1])):
            raise ShapeError(f"SparseFrames index must be strictly ascending positions in [0, {np.prod(shape)}) "
                             f"of the frames {shape}")

    @classmethod
    def from_dense(cls, frames: np.ndarray) -> SparseFrames:
        """The nonzeros of ``frames`` [T, ...] (any real dtype), values kept exactly."""
        flat = np.asarray(frames).reshape(-1)
        idx = np.flatnonzero(flat)
        vals = flat[idx]
        if np.all(vals == np.rint(vals)) and (vals.size == 0 or (vals.min() >= 0 and vals.max() <= 65535)):
            vals = vals.astype(np.uint8 if vals.size == 0 or vals.max() <= 255 else np.uint16)
        index_dtype = np.int32 if flat.size < 2**31 else np.int64
        return cls(tuple(int(n) for n in np.shape(frames)), idx.astype(index_dtype), vals)

    def to_dense(self) -> np.ndarray:
        """The frames, float32 ``shape``."""
        out = np.zeros(int(np.prod(self.shape, dtype=np.int64)), dtype=np.float32)
        out[self.index] = self.values
        return out.reshape(self.shape)


class EventDataset(Dataset):
    """Reader + binning as a torch Dataset: ``ds[i] -> (frames float32 [T, ...], label int)``,
    or with ``sparse`` ``(SparseFrames, label)``: the same frames as their nonzeros, which
    ``events_collate`` batches into event lists without building or scanning frames.

    With ``cache`` each sample is parsed once: without ``augment`` the binned frames are
    kept (sparsely, exact counts), with ``augment`` the parsed events are kept and augmented
    and re-binned on every access. The cache lives in the process that reads, so use
    ``persistent_workers=True`` with DataLoader workers. ``augment(events, rng)`` draws from
    a Generator seeded by ``seed`` (and by the DataLoader's per-worker seed in workers).
    """

    def __init__(
        self,
        reader: EventReader,
        transform: Callable[[np.ndarray], np.ndarray],
        *,
        augment: Augment | None = None,
        cache: bool = True,
        seed: int = 0,
        sparse: bool = False,
    ) -> None:
        self.reader = reader
        self.transform = transform
        self.augment = augment
        self.cache = cache
        self.seed = int(seed)
        self.sparse = bool(sparse)
        self._store: dict[int, object] = {}
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple[int, int] | None = None
        self.cache_hits = 0
        self.cache_misses = 0

    @property
    def labels(self) -> np.ndarray:
        """Labels of all samples, int64 [N]."""
        return self.reader.labels

    @property
    def num_classes(self) -> int:
        """Number of classes of the underlying reader."""
        return self.reader.num_classes

    def __len__(self) -> int:
        return len(self.reader)

    def _generator(self) -> np.random.Generator:
        info = get_worker_info()
        key = (os.getpid(), info.seed if info is not None else -1)
        if self._rng is None or self._rng_key != key:
            # A DataLoader worker gets a fresh seed each epoch; mixing it in keeps workers
            # (and epochs with non-persistent workers) from repeating the same augmentations.
            entropy = [self.seed] if info is None else [self.seed, info.seed % 2**63]
            self._rng = np.random.default_rng(entropy)
            self._rng_key = key
        return self._rng

    def _frames(self, index: int) -> np.ndarray | SparseFrames:
        """The sample's frames: dense float32, or ``SparseFrames`` where that is what is at hand
        (the cache holds them so; the caller converts to the form asked for)."""
        if self.augment is None:
            if self.cache and index in self._store:
                self.cache_hits += 1
                return self._store[index]  # type: ignore[return-value]
            self.cache_misses += 1
            events, _ = self.reader[index]
            frames = np.asarray(self.transform(events), dtype=np.float32)
            if self.cache:
                self._store[index] = packed = SparseFrames.from_dense(frames)
                return packed if self.sparse else frames
            return frames
        if self.cache and index in self._store:
            self.cache_hits += 1
            events = self._store[index]
        else:
            self.cache_misses += 1
            events, _ = self.reader[index]
            if self.cache:
                self._store[index] = events
        return np.asarray(self.transform(self.augment(events, self._generator())), dtype=np.float32)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[torch.Tensor | SparseFrames, int]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"sample {index} out of range for {n} samples")
        index = int(index) % n
        frames = self._frames(index)
        if self.sparse:
            sample = frames if isinstance(frames, SparseFrames) else SparseFrames.from_dense(frames)
        else:
            sample = torch.from_numpy(frames.to_dense() if isinstance(frames, SparseFrames) else frames)
        return sample, int(self.reader.labels[index])

    def with_sparse(self, sparse: bool = True) -> EventDataset:
        """This dataset giving its samples as ``SparseFrames`` (or, ``sparse=False``, dense
        frames): a view sharing the reader, transform, augmentation, generator and cache."""
        view = copy.copy(self)
        view.sparse = bool(sparse)
        return view

    def clear_cache(self) -> None:
        """Forget cached samples (e.g. after changing ``transform``)."""
        self._store.clear()


Sample = tuple["torch.Tensor | np.ndarray | SparseFrames", int]


def _batch_frames(batch: Sequence[Sample]) -> tuple[list, torch.Tensor, torch.Tensor]:
    """The samples' frames (each a float32 tensor [T_i, *same] or ``SparseFrames``), labels
    [B] and lengths [B] of a batch."""
    if len(batch) == 0:
        raise ShapeError("cannot collate an empty batch")
    frames = [f if isinstance(f, SparseFrames) else torch.as_tensor(f, dtype=torch.float32) for f, _ in batch]
    shapes = [tuple(f.shape) for f in frames]
    tail = shapes[0][1:]
    for i, sh in enumerate(shapes):
        if len(sh) < 1 or sh[1:] != tail:
            raise ShapeError(f"sample {i} has frame shape {sh}, expected [T, {', '.join(map(str, tail))}]")
    lengths = torch.tensor([sh[0] for sh in shapes], dtype=torch.int64)
    y = torch.tensor([int(lbl) for _, lbl in batch], dtype=torch.int64)
    return frames, y, lengths


def pad_collate(batch: Sequence[Sample]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Stack ``[(frames [T_i, ...], label), ...]`` -> ``x [T_max, B, ...]`` float32 (zero-padded
    after each sample's end), ``y [B]`` int64, ``lengths [B]`` int64 (= T_i).  Frames may
    be ``SparseFrames``."""
    frames, y, lengths = _batch_frames(batch)
    x = torch.zeros((int(lengths.max()), len(frames), *frames[0].shape[1:]), dtype=torch.float32)
    for b, f in enumerate(frames):
        x[: f.shape[0], b] = torch.from_numpy(f.to_dense()) if isinstance(f, SparseFrames) else f
    return x, y, lengths


def events_collate(batch: Sequence[Sample]) -> tuple[Events, torch.Tensor, torch.Tensor]:
    """``pad_collate`` as event lists: ``[(frames [T_i, ...], label), ...]`` -> (``core.Events``
    over T_max steps and the flattened features, none after a sample's end), ``y [B]``,
    ``lengths [B]``.  The events are exactly the nonzero entries of ``pad_collate``'s frames
    (flattened per step, channels ascending), so a model sees the same input in either form;
    no padded [T_max, B, K] array is built.  ``SparseFrames`` samples (``EventDataset(sparse=True)``)
    are taken as they are; dense ones are scanned for their nonzeros."""
    frames, y, lengths = _batch_frames(batch)
    T, B = int(lengths.max()), len(frames)
    K = int(np.prod(frames[0].shape[1:], dtype=np.int64))
    rows, idx, val = [], [], []
    for b, f in enumerate(frames):
        if isinstance(f, SparseFrames):
            flat, v = f.index, f.values
        else:
            f1 = f.reshape(-1).numpy()
            flat = np.flatnonzero(f1)  # ascending: by step, then channel
            v = f1[flat]
        t, k = np.divmod(flat, K)
        rows.append(b * T + t)
        idx.append(k.astype(np.int32))
        val.append(v)
    ptr = row_pointer(np.concatenate(rows), B * T)
    return Events(ptr, np.concatenate(idx), np.concatenate(val).astype(np.float32, copy=False), T, B, K), y, lengths


def _find_h5_pair(path: Path) -> tuple[Path, Path] | None:
    if path.is_file() and path.suffix in (".h5", ".hdf5"):
        if "train" not in path.name:
            raise DataFormatError(f"{path}: expected a *train*.h5 file with a *test*.h5 beside it")
        test = path.with_name(path.name.replace("train", "test"))
        if not test.is_file():
            raise DataFormatError(f"{test}: no such file (the test split of {path.name})")
        return path, test
    if path.is_dir():
        trains = sorted(q for q in path.glob("*train*.h5"))
        pairs = [(q, q.with_name(q.name.replace("train", "test"))) for q in trains]
        pairs = [(a, b) for a, b in pairs if b.is_file()]
        if len(pairs) > 1:
            raise ConfigError(
                f"{path} holds several datasets ({', '.join(a.name for a, _ in pairs)}); pass one *train*.h5 file"
            )
        return pairs[0] if pairs else None
    return None


def load_dataset(
    path: str | os.PathLike,
    *,
    dt_us: int | None = None,
    n_steps: int | None = None,
    t_stop_us: int | None = None,
    channel_pool: int = 1,
    augment: bool | Augment = False,
    cache: bool = True,
    seed: int = 0,
) -> tuple[EventDataset, EventDataset]:
    """Open a dataset and return ``(train, test)`` EventDatasets of binned frames.

    ``path`` is an SHD/SSC folder holding ``*train*.h5`` and ``*test*.h5`` (or the train file
    itself), or an N-MNIST root holding ``Train/`` and ``Test/``. Frames are ``[T, 700 /
    channel_pool]`` for SHD/SSC and ``[T, 2, 34, 34]`` for N-MNIST; without ``dt_us`` and
    ``n_steps`` the bins are 10 ms (10_000 us). ``augment=True`` applies ``SHDAugment`` to the
    SHD training split; a callable ``aug(events, rng)`` is applied to the training split.
    """
    root = Path(path)
    if not root.exists():
        raise DataFormatError(f"{root}: no such file or folder")
    if dt_us is None and n_steps is None:
        dt_us = 10_000
    pair = _find_h5_pair(root)
    if pair is not None:
        train_reader: EventReader = SHDFile(pair[0])
        test_reader: EventReader = SHDFile(pair[1])
        transform = ToFrames(n_channels=SHD_CHANNELS, dt_us=dt_us, n_steps=n_steps,
                             t_stop_us=t_stop_us, channel_pool=channel_pool)
        aug = SHDAugment(n_channels=SHD_CHANNELS) if augment is True else (augment or None)
    elif root.is_dir() and (root / "Train").is_dir() and (root / "Test").is_dir():
        train_reader = NMNISTFolder(root, "Train")
        test_reader = NMNISTFolder(root, "Test")
        transform = ToFrames(sensor_size=NMNIST_SENSOR, dt_us=dt_us, n_steps=n_steps,
                             t_stop_us=t_stop_us, channel_pool=channel_pool)
        if augment is True:
            raise ConfigError("augment=True means SHD augmentation; pass a callable for N-MNIST")
        aug = augment or None
    else:
        raise DataFormatError(
            f"{root}: not a dataset: expected an SHD/SSC folder with *train*.h5 and *test*.h5, "
            "a *train*.h5 file, or an N-MNIST root with Train/ and Test/ folders"
        )
    train = EventDataset(train_reader, transform, augment=aug, cache=cache, seed=seed)  # type: ignore[arg-type]
    test = EventDataset(test_reader, transform, augment=None, cache=cache, seed=seed)
    return train, test


__all__ = ["EventDataset", "EventReader", "SparseFrames", "pad_collate", "events_collate", "load_dataset"]

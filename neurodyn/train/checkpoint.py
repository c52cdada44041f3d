"""Checkpoints written atomically (temp file + fsync + rename): a crash mid-save leaves the old
one intact.  Also the random-number state a run needs to resume bit-exactly: torch, numpy,
Python ``random``, the DataLoader generator and the augmentation generator, stored as plain
tensors/ints so checkpoints load with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import os
import pickle
import random
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataFormatError


def save_checkpoint(path: str | os.PathLike, state: dict) -> None:
    """torch.save ``state`` to ``path`` via a temporary file in the same folder and os.replace."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder for fsync.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint saved by ``save_checkpoint`` (tensors and plain data only)."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, OSError) as e:
        first = str(e).splitlines()[0] if str(e) else ""
        raise DataFormatError(f"{path}: not a readable checkpoint ({type(e).__name__}: {first})") from None
    if not isinstance(state, dict):
        raise DataFormatError(f"{path}: checkpoint holds {type(state).__name__}, expected a dict")
    return state


# ----------------------------------------------------------------------------- RNG state

def _numpy_global_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _set_numpy_global_state(s: dict[str, Any]) -> None:
    np.random.set_state((s["name"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["gauss"]))


def _python_state() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _set_python_state(s: list) -> None:
    random.setstate((s[0], tuple(s[1]), s[2]))


def rng_state(loader_generator: torch.Generator | None = None,
              augment_rng: np.random.Generator | None = None) -> dict[str, Any]:
    """Every random state of this process that training draws from."""
    st: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": _numpy_global_state(), "python": _python_state()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    if loader_generator is not None:
        st["loader"] = loader_generator.get_state()
    if augment_rng is not None:
        st["augment"] = augment_rng.bit_generator.state
    return st


def set_rng_state(st: dict[str, Any], loader_generator: torch.Generator | None = None,
                  augment_rng: np.random.Generator | None = None) -> None:
    """Restore what ``rng_state`` captured (into the given generators, in place)."""
    torch.set_rng_state(st["torch"])
    _set_numpy_global_state(st["numpy"])
    _set_python_state(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    if loader_generator is not None and "loader" in st:
        loader_generator.set_state(st["loader"])
    if augment_rng is not None and "augment" in st:
        augment_rng.bit_generator.state = st["augment"]

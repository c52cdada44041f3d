"""Run configuration: a TOML file with ``[data]``, ``[model]`` and ``[train]`` sections,
dotted overrides (``train.epochs=3``, ``model.hidden=[256,256]``, or a bare ``epochs=3``
when the name is unique), validation that names any unknown key, and a TOML writer so
every run folder records the exact config it ran with.

Example (``configs/shd_mlp.toml``)::

    out = "runs/latest"
    [data]
    path = "datasets/shd_sample"    # relative to the working directory
    bin_us = 10000                   # time bin, microseconds
    [model]
    kind = "mlp"                     # any kind registered with train.models.register_model
    hidden = [128]
    [train]
    epochs = 6
    loss = "mean_membrane"           # | "spike_count" | "per_step"
"""
from __future__ import annotations

import copy
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from ..errors import ConfigError
from .device import check_device_name
from .models import resolve_model_config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

LOSSES = ("mean_membrane", "spike_count", "per_step")
OPTIMIZERS = ("adam", "adamw")
SCHEDULERS = ("cosine", "step", "none")
BACKENDS = ("auto", "torch", "numba", "cupy")
INPUTS = ("events", "frames")


@dataclass
class DataConfig:
    """``[data]``: where the data set is and how events become frames."""

    path: str = ""              # SHD folder / *train*.h5 file, or N-MNIST root
    bin_us: int = 10_000        # frame width, microseconds (dt of the network = bin_us / 1000 ms)
    channel_pool: int = 1       # sum this many neighbouring channels (pixels) into one
    augment: bool = False       # SHD only: augment the training split with the aug_* settings below
    aug_channel_shift: int = 20         # whole sample moved by up to this many channels
    aug_channel_jitter: float = 1.0     # each spike moved by N(0, this^2) channels
    aug_time_jitter_us: float = 1000.0  # each spike moved by N(0, this^2) us
    aug_time_shift_us: float = 0.0      # whole sample moved by up to this many us
    aug_time_stretch: float = 0.0       # speaking rate changed by a factor up to 1 + this (or its inverse)
    aug_drop: float = 0.0               # share of spikes dropped
    input: str = "events"       # batches as event lists (core.Events; models that are not an ndn.Sequential
                                # get frames) or as padded frames [T, B, ...]: the same numbers either way


@dataclass
class TrainOptions:
    """``[train]``: loss, optimizer, schedule, seed and batch sizes."""

    epochs: int = 6
    steps: int = 0              # > 0: a budget of optimizer steps; the epochs are then chosen from the data
                                # size (ceil(steps / batches per epoch)) and ``epochs`` is not used
    batch_size: int = 32        # global: split evenly over the processes under torchrun
    lr: float = 5e-3
    weight_decay: float = 0.0
    optimizer: str = "adam"     # adam | adamw
    scheduler: str = "cosine"   # cosine (over all epochs) | step (x gamma every step_size epochs) | none
    step_size: int = 5
    gamma: float = 0.5
    loss: str = "mean_membrane"  # mean_membrane | spike_count | per_step
    seed: int = 0
    backend: str = "auto"       # kernel backend of the neuron layers
    device: str = "cpu"         # cpu | cuda | cuda:N | auto (cuda when torch sees a GPU); see train.device
    eval_batch_size: int = 128
    val_fraction: float = 0.0   # share of train held out for validation (whole speakers where known); 0 = none
    early_stopping: int = 0     # stop after this many epochs without a better validation accuracy; 0 = off
    grad_clip: float = 0.0      # clip the gradient's global L2 norm to this; 0 = off
    warmup_epochs: int = 0      # linear learning-rate warm-up before the schedule (which then spans the rest)


def _default_model() -> dict[str, Any]:
    return {"kind": "mlp"}


@dataclass
class TrainConfig:
    """Everything a run depends on.  ``data`` may be given as a path string, sections as dicts.

    ``model`` is completed with the defaults of its kind (so ``cfg.model`` always lists every
    option); ``validate()`` runs on construction and raises ConfigError naming the bad key.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=_default_model)
    train: TrainOptions = field(default_factory=TrainOptions)
    out: str = "runs/latest"

    def __post_init__(self) -> None:
        if isinstance(self.data, (str, os.PathLike)):
            self.data = DataConfig(path=os.fspath(self.data))
        elif isinstance(self.data, Mapping):
            self.data = _section(DataConfig, self.data, "data")
        if isinstance(self.train, Mapping):
            self.train = _section(TrainOptions, self.train, "train")
        if not isinstance(self.data, DataConfig) or not isinstance(self.train, TrainOptions):
            raise ConfigError("TrainConfig.data / .train must be DataConfig / TrainOptions or dicts")
        if not isinstance(self.model, Mapping):
            raise ConfigError(f"[model] must be a table, got {self.model!r}")
        self.model = resolve_model_config(self.model)
        if isinstance(self.out, os.PathLike):
            self.out = os.fspath(self.out)
        self.validate()

    @property
    def dt_ms(self) -> float:
        """Network time step in ms (the frame width)."""
        return self.data.bin_us / 1000.0

    def validate(self) -> None:
        """Check types, ranges and choices; ConfigError names the key."""
        for sec, obj in (("data", self.data), ("train", self.train)):
            hints = get_type_hints(type(obj))
            for f in fields(obj):
                setattr(obj, f.name, _check_type(f"{sec}.{f.name}", getattr(obj, f.name), hints[f.name]))
        _check_type("out", self.out, str)
        d, t = self.data, self.train
        for key, ok in (("data.bin_us", d.bin_us >= 1), ("data.channel_pool", d.channel_pool >= 1),
                        ("data.aug_channel_shift", d.aug_channel_shift >= 0),
                        ("data.aug_channel_jitter", 0 <= d.aug_channel_jitter < math.inf),
                        ("data.aug_time_jitter_us", 0 <= d.aug_time_jitter_us < math.inf),
                        ("data.aug_time_shift_us", 0 <= d.aug_time_shift_us < math.inf),
                        ("data.aug_time_stretch", 0 <= d.aug_time_stretch < math.inf),
                        ("data.aug_drop", 0 <= d.aug_drop <= 1),
                        ("train.epochs", t.epochs >= 1), ("train.batch_size", t.batch_size >= 1),
                        ("train.eval_batch_size", t.eval_batch_size >= 1), ("train.step_size", t.step_size >= 1),
                        ("train.lr", t.lr > 0 and math.isfinite(t.lr)),
                        ("train.weight_decay", t.weight_decay >= 0 and math.isfinite(t.weight_decay)),
                        ("train.gamma", 0 < t.gamma <= 1),
                        ("train.val_fraction", 0 <= t.val_fraction < 1),
                        ("train.early_stopping", t.early_stopping >= 0),
                        ("train.grad_clip", t.grad_clip >= 0 and math.isfinite(t.grad_clip)),
                        ("train.steps", t.steps >= 0),
                        ("train.warmup_epochs", 0 <= t.warmup_epochs and (t.steps or t.warmup_epochs < t.epochs))):
            if not ok:
                value = _get(self.to_dict(), key)
                raise ConfigError(f"{key} = {value!r} is out of range")
        for key, value, choices in (("data.input", d.input, INPUTS), ("train.loss", t.loss, LOSSES),
                                    ("train.optimizer", t.optimizer, OPTIMIZERS),
                                    ("train.scheduler", t.scheduler, SCHEDULERS),
                                    ("train.backend", t.backend, BACKENDS)):
            if value not in choices:
                raise ConfigError(f"{key} = {value!r}: choose one of {', '.join(choices)}")
        check_device_name(t.device)
        if t.early_stopping and not t.val_fraction:
            raise ConfigError(f"train.early_stopping = {t.early_stopping} needs a validation split: set "
                              "train.val_fraction (early stopping on the test split would select on it)")

    def to_dict(self) -> dict[str, Any]:
        """Nested plain dict (the TOML layout)."""
        return {"out": self.out,
                "data": {f.name: copy.deepcopy(getattr(self.data, f.name)) for f in fields(self.data)},
                "model": copy.deepcopy(self.model),
                "train": {f.name: copy.deepcopy(getattr(self.train, f.name)) for f in fields(self.train)}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TrainConfig:
        """Build from the nested layout; unknown keys raise ConfigError naming them."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"a config must be a table, got {type(d).__name__}")
        for key in d:
            if key not in ("out", "data", "model", "train"):
                raise ConfigError(f"unknown config key '{key}'; top-level keys: out, [data], [model], [train]")
        for sec in ("data", "model", "train"):
            if sec in d and not isinstance(d[sec], Mapping):
                raise ConfigError(f"'{sec}' must be a table ([{sec}]), got {d[sec]!r}")
        kw: dict[str, Any] = {k: d[k] for k in ("data", "model", "train") if k in d}
        if "data" in kw:
            kw["data"] = dict(kw["data"])
        if "out" in d:
            kw["out"] = d["out"]
        return cls(**kw)


def _section(cls: type, d: Mapping[str, Any], name: str):
    names = [f.name for f in fields(cls)]
    for key in d:
        if key not in names:
            raise ConfigError(f"unknown config key '{name}.{key}'; [{name}] keys: {', '.join(names)}")
    return cls(**dict(d))


def _check_type(key: str, value: Any, typ: Any) -> Any:
    if typ is bool:
        ok = isinstance(value, bool)
    elif typ is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif typ is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif typ is str:
        ok = isinstance(value, str)
    else:  # pragma: no cover - only the types above occur in the sections
        ok = True
    if not ok:
        raise ConfigError(f"{key} = {value!r}: expected {getattr(typ, '__name__', typ)}")
    return value


def _get(d: Mapping[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        d = d[part]
    return d


# ----------------------------------------------------------------------------- files and overrides

def read_toml(path: str | os.PathLike) -> dict[str, Any]:
    """Parse a TOML file; ConfigError naming the file on a missing file or bad syntax."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        with open(p, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{p}: not valid TOML ({e})") from None


def parse_value(text: str) -> Any:
    """A TOML value (``3``, ``1e-3``, ``true``, ``[256, 256]``, ``"x"``), else the text as a string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _leaf_keys(d: Mapping[str, Any]) -> list[str]:
    keys = []
    for sec in ("data", "model", "train"):
        keys += [f"{sec}.{k}" for k in d.get(sec, {})]
    return keys + ["out"]


def apply_overrides(d: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply ``key=value`` overrides in order to the nested layout ``d`` (returns a new dict).

    ``key`` is dotted (``train.lr``, ``model.hidden``) or a bare name that occurs in exactly
    one section (``epochs``).  Unknown and ambiguous names raise ConfigError naming them.
    """
    out = TrainConfig.from_dict(d).to_dict()
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not key=value")
        key, text = (s.strip() for s in item.split("=", 1))
        value = parse_value(text)
        if "." not in key:
            if key in ("data", "model", "train"):
                raise ConfigError(f"'{key}' is a section; set one of its keys, e.g. {key}.<key>=...")
            matches = [k for k in _leaf_keys(out) if k.split(".")[-1] == key]
            if not matches:
                raise ConfigError(f"unknown config key '{key}'; keys: {', '.join(_leaf_keys(out))}")
            if len(matches) > 1:
                raise ConfigError(f"config key '{key}' is ambiguous ({', '.join(matches)}); use the dotted name")
            key = matches[0]
        sec, _, name = key.partition(".")
        if key == "out":
            out["out"] = value
        elif sec not in ("data", "model", "train") or not name or "." in name:
            raise ConfigError(f"unknown config key '{key}'; keys: {', '.join(_leaf_keys(out))}")
        elif sec == "model" and name == "kind" and value != out["model"].get("kind"):
            out["model"] = {"kind": value}  # options of the old kind do not carry over
        else:
            out[sec][name] = value
        out = TrainConfig.from_dict(out).to_dict()  # validate now, so the error names this override
    return out


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] = (),
                base: Mapping[str, Any] | None = None) -> TrainConfig:
    """Defaults <- ``base`` (nested dict) <- TOML file ``path`` <- ``overrides`` (``key=value``)."""
    d: dict[str, Any] = TrainConfig().to_dict() if base is None else TrainConfig.from_dict(base).to_dict()
    if path is not None:
        d = _merge(d, read_toml(path), where=str(path))
    return TrainConfig.from_dict(apply_overrides(d, overrides))


def _merge(base: dict[str, Any], upd: Mapping[str, Any], where: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in upd.items():
        if key in ("data", "train") and isinstance(value, Mapping):
            out[key].update(value)
        elif key == "model" and isinstance(value, Mapping):
            kind = value.get("kind", out["model"].get("kind"))
            out["model"] = ({**out["model"], **value} if kind == out["model"].get("kind") else dict(value))
        else:
            out[key] = value
    try:
        TrainConfig.from_dict(out)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return out


# ----------------------------------------------------------------------------- TOML writer

def _toml_value(v: Any, key: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x, key) for x in v) + "]"
    raise ConfigError(f"config key '{key}': cannot write {type(v).__name__} {v!r} as TOML")


def dump_toml(d: Mapping[str, Any]) -> str:
    """Nested dict of TOML-able values -> TOML text (tables for dict values)."""
    lines: list[str] = []

    def emit(table: Mapping[str, Any], prefix: str) -> None:
        subs = []
        for k, v in table.items():
            if not isinstance(k, str) or not k.replace("_", "a").replace("-", "a").isalnum():
                raise ConfigError(f"config key {k!r} cannot be written as a bare TOML key")
            if isinstance(v, Mapping):
                subs.append((k, v))
            else:
                lines.append(f"{k} = {_toml_value(v, prefix + k)}")
        for k, v in subs:
            lines.append("")
            lines.append(f"[{prefix}{k}]")
            emit(v, f"{prefix}{k}.")

    emit(d, "")
    return "\n".join(lines).lstrip("\n") + "\n"


def write_config(cfg: TrainConfig, path: str | os.PathLike) -> Path:
    """Write ``cfg`` as TOML to ``path`` atomically (temp file + os.replace)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text("# written by neurodyn: the exact config of this run\n" + dump_toml(cfg.to_dict()))
    os.replace(tmp, p)
    return p

"""The chip network file: a quantized network in HDF5, laid out like lava-dl's netx files.

Layout (netx names where netx has the quantity; integers unless noted)::

    /                      attrs: format = "neurodyn-chip-network", version = 1
    /simulation/dt         time step (ms, float; NaN if unknown)            [netx: simulation/Ts]
    /fixed_point/<field>   every FixedPointFormat field (bits, exponent ranges, rounding, name)
    /layer/0/type          "input"; shape = [N_in]
    /layer/<i>/type        "dense" (i >= 1: one neuron layer each, fed by layer i-1)
              shape        [N_out]; inFeatures, outFeatures
              weight       [N_out, N_in] signed mantissas (netx orientation: out x in)
              weightExp    left shift of the mantissas (state units = mantissa << weightExp)
              bias, biasExp        [N_out] signed mantissas and their shift
              delay        [N_out, N_in] per-synapse delay in steps (optional; netx stores a
                           per-neuron axonal delay [N_out] -- per-synapse is the general case)
              recurrent/weight, recurrent/weightExp   [N_out, N_out] (optional; not in netx)
    /layer/<i>/type        "conv": a convolutional connection (as lava's Conv process, x = width)
              inShape      [W, H, C] input frame; shape [W_out, H_out, C_out]
              weight       [C_out, kW, kH, C_in] signed mantissas; stride, padding [x, y];
                           dilation [1, 1]; groups 1; bias [C_out]; the neurons as for "dense",
                           [N_out] in the order C_out x H_out x W_out (NCHW flattened)
    /layer/<i>/pool        sum pooling of the layer's input frames first (optional; not in netx):
              inShape [W, H, C], kernel, stride, padding [x, y]
              scale        state units per float unit of the source network (float)
              neuron/type  "LIF" | "CUBA" | "LI";  neuron/model: neurodyn model name
              neuron/vDecay, iDecay   [N_out] decay *amounts* in units of 2^-frac_bits: the
                           state is multiplied by (2^frac_bits - vDecay) / 2^frac_bits per step
                           (Loihi's du/dv; iDecay only for CUBA)
              neuron/gain  [N_out] input gain in units of 2^-frac_bits (2^frac_bits after folding)
              neuron/vThMant [N_out], vThExp   threshold = vThMant << vThExp (spiking layers)
              neuron/vRest, vReset [N_out] (state units), resetSub [N_out] 1: subtract, 0: to vReset
              neuron/refDelay = 1, gradedSpike = 0 (netx fields: no refractory period, binary spikes)
              neuron/init/<state>  [N_out] initial state (state units)

``read_hdf5`` rebuilds the QuantizedNetwork (``.to_network()`` gives the float network,
``.simulate(x)`` runs it bit-exactly); a missing or malformed entry raises
DataFormatError naming the file and the entry.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import h5py
import numpy as np

from ..core.network import Conv, Pool
from ..errors import ConfigError, DataFormatError, NeurodynError
from ..neurons import get_neuron
from .atomic import write_atomic
from .fixed_point import FixedPointFormat
from .quantize import QuantizedLayer, QuantizedNetwork

FORMAT_TAG = "neurodyn-chip-network"
VERSION = 1
_TYPE = {"lif": "LIF", "cuba": "CUBA", "li": "LI"}
# coefficient -> (dataset name, stored as a decay amount (one - value))
_COEF_FIELDS = {"decay": ("vDecay", True), "alpha_syn": ("iDecay", True), "gain": ("gain", False),
                "v_rest": ("vRest", False), "v_reset": ("vReset", False), "reset_sub": ("resetSub", False)}


def _smallest_int(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.int64)
    for dt in (np.int8, np.int16, np.int32):
        if a.size == 0 or (a.min() >= np.iinfo(dt).min and a.max() <= np.iinfo(dt).max):
            return a.astype(dt)
    return a


def write_hdf5(q: QuantizedNetwork, path: str | os.PathLike) -> Path:
    """Write ``q`` to ``path`` atomically (temp file + rename). Returns the path."""
    one = q.fmt.one

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = FORMAT_TAG
            f.attrs["version"] = VERSION
            f.create_dataset("simulation/dt", data=float("nan") if q.dt is None else float(q.dt))
            fp = f.create_group("fixed_point")
            for k, v in q.fmt.to_dict().items():
                fp.create_dataset(k, data=np.asarray(v) if isinstance(v, tuple) else v)
            if q.report:
                f.attrs["report"] = json.dumps(q.report)
            f.create_dataset("layer/0/type", data="input")
            f.create_dataset("layer/0/shape", data=np.array([q.in_features]))
            for i, l in enumerate(q.layers, start=1):
                g = f.create_group(f"layer/{i}")
                g.create_dataset("type", data="dense" if l.conv is None else "conv")
                g.create_dataset("inFeatures", data=l.n_in)
                g.create_dataset("outFeatures", data=l.size)
                if l.conv is None:
                    g.create_dataset("shape", data=np.array([l.size]))
                    g.create_dataset("weight", data=_smallest_int(l.weight.T), compression="gzip")
                else:
                    g.create_dataset("shape", data=np.array(l.conv.out_shape(l.weight.shape)[::-1]))
                    g.create_dataset("inShape", data=np.array(l.conv.shape[::-1]))
                    g.create_dataset("weight", data=_smallest_int(l.weight.transpose(0, 3, 2, 1)), compression="gzip")
                    g.create_dataset("stride", data=np.array(l.conv.stride[::-1]))
                    g.create_dataset("padding", data=np.array(l.conv.padding[::-1]))
                    g.create_dataset("dilation", data=np.array([1, 1]))
                    g.create_dataset("groups", data=1)
                if l.pool is not None:
                    g.create_dataset("pool/inShape", data=np.array(l.pool.shape[::-1]))
                    for k in ("kernel", "stride", "padding"):
                        g.create_dataset(f"pool/{k}", data=np.array(getattr(l.pool, k)[::-1]))
                g.create_dataset("weightExp", data=l.weight_exp)
                g.create_dataset("bias", data=_smallest_int(l.bias))
                g.create_dataset("biasExp", data=l.bias_exp)
                g.create_dataset("scale", data=float(l.scale))
                if l.delay is not None:
                    g.create_dataset("delay", data=_smallest_int(l.delay.T), compression="gzip")
                if l.recurrent is not None:
                    g.create_dataset("recurrent/weight", data=_smallest_int(l.recurrent.T), compression="gzip")
                    g.create_dataset("recurrent/weightExp", data=l.recurrent_exp)
                n = g.create_group("neuron")
                n.create_dataset("type", data=_TYPE[l.model.name])
                n.create_dataset("model", data=l.model.name)
                n.create_dataset("refDelay", data=1)
                n.create_dataset("gradedSpike", data=0)
                for c in l.model.coefs:
                    v = l.coefs[c]
                    if c == "threshold":
                        n.create_dataset("vThMant", data=_smallest_int(v >> l.threshold_exp))
                        n.create_dataset("vThExp", data=l.threshold_exp)
                    else:
                        name, amount = _COEF_FIELDS[c]
                        n.create_dataset(name, data=_smallest_int(one - v if amount else v))
                for s, v in zip(l.model.states, l.init):
                    n.create_dataset(f"init/{s}", data=_smallest_int(v))

    return write_atomic(path, write)


def _read(g: h5py.Group, key: str, file: Path):
    if key not in g:
        raise DataFormatError(f"{file}: missing entry '{g.name.rstrip('/')}/{key}' (not a neurodyn chip network file?)")
    v = g[key][()]
    return v.decode() if isinstance(v, bytes) else v


def _xy(g: h5py.Group, key: str, file: Path) -> list[int]:
    """An [x, y] or [W, H, C] entry in the reverse (NCHW) order: [y, x] or [C, H, W]."""
    return [int(v) for v in np.asarray(_read(g, key, file)).reshape(-1)[::-1]]


def read_hdf5(path: str | os.PathLike) -> QuantizedNetwork:
    """Rebuild the QuantizedNetwork written by ``write_hdf5``."""
    path = Path(path)
    if not path.is_file():
        raise DataFormatError(f"{path}: no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DataFormatError(f"{path}: not an HDF5 file ({e})") from None
    with f:
        if f.attrs.get("format") != FORMAT_TAG:
            raise DataFormatError(f"{path}: not a neurodyn chip network file (attribute format="
                                  f"{f.attrs.get('format')!r}, expected {FORMAT_TAG!r})")
        if int(f.attrs.get("version", -1)) > VERSION:
            raise DataFormatError(f"{path}: file version {f.attrs.get('version')} is newer than this reader ({VERSION})")
        try:
            fp = f.get("fixed_point")
            if fp is None:
                raise DataFormatError(f"{path}: missing group '/fixed_point'")
            fmt = FixedPointFormat.from_dict({k: _read(fp, k, path) for k in fp})
            dt = float(_read(f, "simulation/dt", path))
            one = fmt.one
            layers = []
            nl = len(f.get("layer", {}))
            if nl < 2:
                raise DataFormatError(f"{path}: needs an input layer and at least one dense layer under '/layer'")
            if _read(f["layer/0"], "type", path) != "input":
                raise DataFormatError(f"{path}: '/layer/0/type' must be 'input'")
            for i in range(1, nl):
                g = f.get(f"layer/{i}")
                if g is None:
                    raise DataFormatError(f"{path}: layers must be numbered 0..{nl - 1}; '/layer/{i}' is missing")
                kind = _read(g, "type", path)
                if kind not in ("dense", "conv"):
                    raise DataFormatError(f"{path}: '/layer/{i}/type' must be 'dense' or 'conv', got {kind!r}")
                n = g["neuron"] if "neuron" in g else None
                if n is None:
                    raise DataFormatError(f"{path}: missing group '/layer/{i}/neuron'")
                model = get_neuron(_read(n, "model", path))
                coefs, te = {}, 0
                for c in model.coefs:
                    if c == "threshold":
                        te = int(_read(n, "vThExp", path))
                        coefs[c] = np.asarray(_read(n, "vThMant", path), dtype=np.int64) << te
                    else:
                        name, amount = _COEF_FIELDS[c]
                        v = np.asarray(_read(n, name, path), dtype=np.int64)
                        coefs[c] = one - v if amount else v
                rec = g.get("recurrent")
                w = np.asarray(_read(g, "weight", path), np.int64)
                conv = pool = None
                if kind == "conv":
                    if w.ndim != 4:
                        raise DataFormatError(f"{path}: '/layer/{i}/weight' of a conv layer must be [C_out, kW, kH, C_in]")
                    w = w.transpose(0, 3, 2, 1)
                    conv = Conv(tuple(_xy(g, "inShape", path)), tuple(_xy(g, "stride", path)),
                                tuple(_xy(g, "padding", path)))
                if "pool" in g:
                    p = g["pool"]
                    pool = Pool(tuple(_xy(p, "inShape", path)), *(tuple(_xy(p, k, path)) for k in ("kernel", "stride", "padding")),
                                divide=False)
                layers.append(QuantizedLayer(
                    model=model, weight=np.ascontiguousarray(w if conv is not None else w.T),
                    weight_exp=int(_read(g, "weightExp", path)),
                    bias=np.asarray(_read(g, "bias", path), np.int64), bias_exp=int(_read(g, "biasExp", path)),
                    coefs=coefs, init=tuple(np.asarray(_read(n, f"init/{s}", path), np.int64) for s in model.states),
                    scale=float(_read(g, "scale", path)), threshold_exp=te,
                    recurrent=None if rec is None else np.ascontiguousarray(np.asarray(_read(rec, "weight", path), np.int64).T),
                    recurrent_exp=0 if rec is None else int(_read(rec, "weightExp", path)),
                    delay=np.ascontiguousarray(np.asarray(g["delay"][()], np.int64).T) if "delay" in g else None,
                    conv=conv, pool=pool))
            report = json.loads(f.attrs["report"]) if "report" in f.attrs else []
            return QuantizedNetwork(layers, fmt, dt=None if math.isnan(dt) else dt, report=report)
        except DataFormatError:
            raise
        except (NeurodynError, ConfigError) as e:
            raise DataFormatError(f"{path}: invalid network: {e}") from None
        except (KeyError, ValueError, TypeError) as e:
            raise DataFormatError(f"{path}: malformed entry ({e})") from None


__all__ = ["read_hdf5", "write_hdf5"]

"""Quantization of a trained spiking network to a chip-style fixed-point network.

``quantize(model, fmt)`` lifts the model with ``nn.to_network`` and turns every
layer into integers (see ``fixed_point`` for the formats):

- the neuron's input gain (``1 - decay`` with ``normalize_input``) is folded into the
  weights and bias (exact in real arithmetic), so the integer gain is exactly 1;
- each layer gets a *state scale* ``2**k`` (state units per float unit).  Without
  calibration data, ``k`` puts the largest threshold ``headroom_bits`` below the top of
  the state range; a readout (LI) layer gets the worst-case bound of its membrane.  With
  calibration data (``calib``), the integer network is run and ``k`` is moved so that the
  peak |state| and |input| sit one bit below the top (repeated until stable): the range
  is used, nothing saturates on that data.  ``k`` is then capped so the weights fit the
  mantissa and exponent range, and the threshold its mantissa;
- weights, recurrent weights, biases and thresholds become mantissas with one exponent
  per layer, decays become integers in units of 2**-frac_bits, rest/reset potentials
  state units; optional per-synapse integer delays are checked against the format.

``QuantizedNetwork.report`` says, per layer, the scale, exponents, bits used, rounding
error and (with calibration) the peak state and saturation counts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..core.network import ConnectionSizes, Conv, Layer, Network, Pool
from ..nn.convert import to_network
from ..errors import ConfigError, ShapeError
from ..neurons.base import NeuronModel
from ..nn.neurons import SpikingNeuron
from .fixed_point import FixedPointFormat, get_format, mantissa_exponent, mantissa_range, round_half_away
from .int_step import COEF_KINDS, check_model

if TYPE_CHECKING:  # annotations only: int_stream runs this module's networks
    from ..core.stream import PerSample
    from .int_stream import IntStream


@dataclass
class QuantizedLayer(ConnectionSizes):
    """One layer in integers.

    weight [N_in, N_out] (a convolution's kernel [C_out, C, kh, kw] with ``conv``) / recurrent
    [N_out, N_out] / bias [N_out] ([C_out] with ``conv``): mantissas (int64) with
    shifts ``*_exp`` (an increment is ``mantissa << exp`` state units); coefs: the neuron's
    coefficients by name as effective integers [N_out] (fractions in units of 2**-frac_bits,
    thresholds and potentials in state units, thresholds multiples of 2**threshold_exp);
    init: initial state (state units); scale: state units per float unit of the source
    network; delay: optional per-synapse delays in steps [N_in, N_out]; conv, pool: a
    convolutional connection and sum pooling of the input frames (as ``core.Layer``; average
    pooling is a sum pooling whose 1 / area is in the weights).
    """

    model: NeuronModel
    weight: np.ndarray
    weight_exp: int
    bias: np.ndarray
    bias_exp: int
    coefs: dict[str, np.ndarray]
    init: tuple[np.ndarray, ...]
    scale: float
    threshold_exp: int = 0
    recurrent: np.ndarray | None = None
    recurrent_exp: int = 0
    delay: np.ndarray | None = None
    conv: Conv | None = None
    pool: Pool | None = None

    def weight_int(self) -> np.ndarray:
        return np.ascontiguousarray(self.weight.astype(np.int64) << self.weight_exp)

    def recurrent_int(self) -> np.ndarray | None:
        return None if self.recurrent is None else np.ascontiguousarray(self.recurrent.astype(np.int64) << self.recurrent_exp)

    def bias_int(self) -> np.ndarray:
        return np.ascontiguousarray(self.bias.astype(np.int64) << self.bias_exp)

    def coef_tuple(self) -> tuple[np.ndarray, ...]:
        return tuple(np.ascontiguousarray(self.coefs[c], dtype=np.int64) for c in self.model.coefs)

    @property
    def max_delay(self) -> int:
        return 0 if self.delay is None else int(self.delay.max(initial=0))


@dataclass
class QuantizedNetwork:
    """A network in a fixed-point format: layers, the format, the step dt (ms) and the report."""

    layers: list[QuantizedLayer]
    fmt: FixedPointFormat
    dt: float | None = None
    report: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        validate(self)

    @property
    def in_features(self) -> int:
        return self.layers[0].n_in

    @property
    def log2_scales(self) -> list[int]:
        """Per-layer state scale exponents (scale = 2**k)."""
        return [int(round(math.log2(l.scale))) for l in self.layers]

    def simulate(self, x, steps=None, record: bool = False, parallel: bool = True):
        """Run the integer simulator (see ``int_sim.simulate``)."""
        from .int_sim import simulate
        return simulate(self, x, steps=steps, record=record, parallel=parallel)

    def stream(self, batch: int, *, lengths: PerSample = None, record: bool = False,
               parallel: bool = True) -> IntStream:
        """The integer simulator on ``batch`` samples fed in chunks (see ``int_stream.IntStream``)."""
        from .int_stream import IntStream
        return IntStream(self, batch, lengths=lengths, record=record, parallel=parallel)

    def to_network(self) -> Network:
        """The dequantized float network (float64 core.Network): integers / scale, gain 1,
        the same integer delays."""
        out = []
        for l in self.layers:
            s = l.scale
            coefs = tuple(_dequant_coef(c, l.coefs[c], s, self.fmt) for c in l.model.coefs)
            rec = l.recurrent_int()
            out.append(Layer(weight=l.weight_int() / s, bias=l.bias_int() / s, model=l.model, coefs=coefs,
                             init=tuple(i / s for i in l.init), recurrent=None if rec is None else rec / s,
                             delays=None if l.delay is None else np.asarray(l.delay, dtype=np.int64),
                             conv=l.conv, pool=l.pool))
        return Network(out, dtype=np.float64)


def _dequant_coef(name: str, v: np.ndarray, scale: float, fmt: FixedPointFormat) -> np.ndarray:
    kind = COEF_KINDS[name]
    v = v.astype(np.float64)
    return v / fmt.one if kind == "fraction" else v / scale if kind == "state" else v


def validate(q: QuantizedNetwork) -> None:
    """Check shapes, dtypes and that every integer fits the format; ConfigError/ShapeError otherwise."""
    fmt = q.fmt
    if not q.layers:
        raise ConfigError("a quantized network needs at least one layer")
    for i, l in enumerate(q.layers):
        where = f"quantized layer {i} ({l.model.name})"
        check_model(l.model)
        if not l.model.spiking and i != len(q.layers) - 1:
            raise ConfigError(f"{where}: a non-spiking layer can only be the last (readout) layer")
        if i and q.layers[i - 1].size != l.n_in:
            raise ShapeError(f"{where}: {l.n_in} inputs but the previous layer has {q.layers[i - 1].size} neurons")
        n = l.size

        def fits(name, a, bits, exp, exp_range, signed=True, shape=None):
            a = np.asarray(a)
            if shape is not None and a.shape != shape:
                raise ShapeError(f"{where}: {name} must have shape {shape}, got {a.shape}")
            if not np.issubdtype(a.dtype, np.integer):
                raise ConfigError(f"{where}: {name} must be integers, got {a.dtype}")
            lo, hi = mantissa_range(bits, signed)
            if a.size and (a.min() < lo or a.max() > hi):
                raise ConfigError(f"{where}: {name} outside the {bits}-bit {'signed' if signed else 'unsigned'} "
                                  f"range [{lo}, {hi}] of format '{fmt.name}'")
            if exp is not None and not (exp_range[0] <= exp <= exp_range[1]):
                raise ConfigError(f"{where}: {name} exponent {exp} outside {exp_range} of format '{fmt.name}'")

        if l.conv is not None or l.pool is not None:
            _check_frames(l, where)
        if l.conv is not None:
            fits("weight", l.weight, fmt.weight_bits, l.weight_exp, fmt.weight_exp)
            fits("bias", l.bias, fmt.bias_bits, l.bias_exp, fmt.bias_exp, shape=(l.weight.shape[0],))
        else:
            rows = l.n_in if l.pool is None else int(np.prod(l.pool.out_shape))  # (inputs after pooling)
            fits("weight", l.weight, fmt.weight_bits, l.weight_exp, fmt.weight_exp, shape=(rows, n))
            fits("bias", l.bias, fmt.bias_bits, l.bias_exp, fmt.bias_exp, shape=(n,))
        if l.recurrent is not None:
            fits("recurrent weight", l.recurrent, fmt.weight_bits, l.recurrent_exp, fmt.weight_exp, shape=(n, n))
        if l.delay is not None:
            fits("delay", l.delay, fmt.delay_bits, None, None, signed=False, shape=l.weight.shape)
        if set(l.coefs) != set(l.model.coefs):
            raise ConfigError(f"{where}: coefficients {sorted(l.coefs)} != {sorted(l.model.coefs)}")
        for c in l.model.coefs:
            v = np.asarray(l.coefs[c])
            kind = COEF_KINDS[c]
            if v.shape != (n,) or not np.issubdtype(v.dtype, np.integer):
                raise ShapeError(f"{where}: coefficient '{c}' must be [{n}] integers, got {v.shape} {v.dtype}")
            if kind == "fraction" and (v.min() < 0 or v.max() > fmt.one):
                raise ConfigError(f"{where}: fraction '{c}' outside [0, {fmt.one}] (units of 2^-{fmt.frac_bits})")
            if kind == "flag" and not np.isin(v, (0, 1)).all():
                raise ConfigError(f"{where}: flag '{c}' must be 0 or 1")
            if kind == "state" and np.abs(v).max() > fmt.state_max:
                raise ConfigError(f"{where}: '{c}' outside the {fmt.state_bits}-bit state range")
        if "threshold" in l.coefs:
            th = l.coefs["threshold"]
            fits("threshold mantissa", th >> l.threshold_exp, fmt.threshold_bits, l.threshold_exp, fmt.threshold_exp,
                 signed=False)
            if np.any((th >> l.threshold_exp) << l.threshold_exp != th):
                raise ConfigError(f"{where}: threshold is not a multiple of 2^{l.threshold_exp}")
        if len(l.init) != len(l.model.states):
            raise ConfigError(f"{where}: {len(l.init)} initial states for states {l.model.states}")
        for s, v in zip(l.model.states, l.init):
            v = np.asarray(v)
            if v.shape != (n,) or not np.issubdtype(v.dtype, np.integer) or np.abs(v).max() > fmt.state_max:
                raise ConfigError(f"{where}: initial '{s}' must be [{n}] integers within the state range")
        if not (math.isfinite(l.scale) and l.scale > 0):
            raise ConfigError(f"{where}: scale must be a positive number, got {l.scale}")


def _check_frames(l: QuantizedLayer, where: str) -> None:
    """A convolutional or pooled layer: the shapes chain, sum pooling, no recurrence or delays."""
    try:  # core.Layer holds the shape rules of convolutions and pooling
        Layer(weight=np.asarray(l.weight), bias=np.asarray(l.bias), model=l.model, coefs=(), init=(),
              recurrent=l.recurrent, delays=l.delay, conv=l.conv, pool=l.pool)
    except (ConfigError, ShapeError) as e:
        raise type(e)(f"{where}: {e}") from None
    if l.pool is not None and l.pool.divide:
        raise ConfigError(f"{where}: integer layers take sum pooling (an average's 1 / area goes into the weights)")


# ------------------------------------------------------------------------------------------ quantize


def _lift(model: nn.Module | Network, input_shape: tuple[int, int, int] | None = None) -> tuple[Network, float | None]:
    if isinstance(model, Network):
        return model, None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"quantize needs an nn.Module or core.Network, got {type(model).__name__}")
    net = to_network(model, dtype=np.float64, input_shape=input_shape)
    dts = {float(m.dt) for m in model.modules() if isinstance(m, SpikingNeuron)}
    if len(dts) > 1:
        raise ConfigError(f"all neurons must share one time step to run on a chip clock, got dt = {sorted(dts)} ms")
    return net, (dts.pop() if dts else None)


@dataclass
class _FloatLayer:
    """A source layer with the input gain folded into the weights (float64)."""

    layer: Layer
    coefs: dict[str, np.ndarray]
    w: np.ndarray
    b: np.ndarray
    r: np.ndarray | None
    pool: Pool | None = None  # sum pooling (an average's 1 / area is in w)


def _fold(layer: Layer) -> _FloatLayer:
    check_model(layer.model)
    coefs = {c: np.asarray(v, dtype=np.float64) for c, v in zip(layer.model.coefs, layer.coefs)}
    g = coefs.get("gain", np.ones(layer.size))
    if layer.conv is not None:  # one gain per output channel: it scales that channel's kernel
        gc = g.reshape(layer.weight.shape[0], -1)
        if not np.all(gc == gc[:, :1]):
            raise ConfigError(f"layer {layer.model.name}: a convolution's neurons need one input gain per channel "
                              "to fold it into the kernel")
        w = layer.weight.astype(np.float64) * gc[:, 0, None, None, None]
        b = layer.bias.astype(np.float64) * gc[:, 0]
    else:
        w = layer.weight.astype(np.float64) * g[None, :]
        b = layer.bias.astype(np.float64) * g
    pool = layer.pool
    if pool is not None and pool.divide:  # average pooling = sum pooling and weights / area
        w = w / (pool.kernel[0] * pool.kernel[1])
        pool = Pool(pool.shape, pool.kernel, pool.stride, pool.padding, divide=False)
    r = None if layer.recurrent is None else layer.recurrent.astype(np.float64) * g[None, :]
    for name, a in (("weight", w), ("bias", b), ("recurrent", r)):
        if a is not None and not np.isfinite(a).all():
            raise ConfigError(f"layer {layer.model.name}: {name} has NaN or inf values")
    return _FloatLayer(layer, coefs, w, b, r, pool)


def _static_log2_scale(f: _FloatLayer, fmt: FixedPointFormat, input_max: float) -> int:
    """Scale exponent from the parameters alone (no data)."""
    c = f.coefs
    if f.layer.model.spiking:
        ref = max(float(np.max(np.abs(c[k]))) for k in ("threshold", "v_rest", "v_reset"))
        need = ref * 2.0 ** fmt.headroom_bits
    else:
        # Worst case of a leaky readout: every input active every step, |v| <= drive / (1 - decay).
        drive = _drive(f, input_max)
        leak = np.maximum(1.0 - c["decay"], 1.0 / fmt.one)
        need = float(np.max(drive / leak + np.abs(c["v_rest"]))) if drive.size else 0.0
    if need <= 0:
        return 0
    return int(math.floor(math.log2(fmt.state_max / need)))


def _drive(f: _FloatLayer, input_max: float) -> np.ndarray:
    """Largest |input| of each neuron [N_out] when every input is input_max (a pooled cell: the
    window's sum)."""
    if f.pool is not None:
        input_max = input_max * f.pool.kernel[0] * f.pool.kernel[1]
    if f.layer.conv is None:
        return input_max * np.abs(f.w).sum(0) + np.abs(f.b)
    per_channel = input_max * np.abs(f.w).sum((1, 2, 3)) + np.abs(f.b)
    return np.repeat(per_channel, f.layer.size // f.w.shape[0])


def _max_log2_scale(f: _FloatLayer, fmt: FixedPointFormat) -> int:
    """The largest scale exponent at which weights and thresholds still fit their formats."""
    caps = [60]
    wmax = ((1 << (fmt.weight_bits - 1)) - 1) * 2.0 ** fmt.weight_exp[1]
    for a in (f.w, f.r):
        if a is not None and a.size and np.max(np.abs(a)) > 0:
            caps.append(math.floor(math.log2(wmax / np.max(np.abs(a)))))
    if f.layer.model.spiking:
        tmax = ((1 << fmt.threshold_bits) - 1) * 2.0 ** fmt.threshold_exp[1]
        th = float(np.max(np.abs(f.coefs["threshold"])))
        if th > 0:
            caps.append(math.floor(math.log2(tmax / th)))
    return min(caps)


def _quantize_layer(f: _FloatLayer, k: int, fmt: FixedPointFormat, delay: np.ndarray | None) -> tuple[QuantizedLayer, dict]:
    s = 2.0 ** k
    model = f.layer.model
    wm, we, wclip = mantissa_exponent(f.w * s, fmt.weight_bits, fmt.weight_exp)
    rm, re_, rclip = (None, 0, 0) if f.r is None else mantissa_exponent(f.r * s, fmt.weight_bits, fmt.weight_exp)
    bm, be, bclip = mantissa_exponent(f.b * s, fmt.bias_bits, fmt.bias_exp)
    coefs: dict[str, np.ndarray] = {}
    te = 0
    for name in model.coefs:
        v = f.coefs[name]
        kind = COEF_KINDS[name]
        if name == "gain":
            coefs[name] = np.full(v.shape, fmt.one, dtype=np.int64)   # folded into the weights
        elif kind == "fraction":
            coefs[name] = np.clip(round_half_away(v * fmt.one), 0, fmt.one).astype(np.int64)
        elif kind == "flag":
            if not np.isin(v, (0.0, 1.0)).all():
                raise ConfigError(f"layer {model.name}: '{name}' must be 0 or 1 per neuron")
            coefs[name] = v.astype(np.int64)
        elif name == "threshold":
            if np.any(v < 0):
                raise ConfigError(f"layer {model.name}: a negative threshold has no fixed-point form")
            tm, te, _ = mantissa_exponent(v * s, fmt.threshold_bits, fmt.threshold_exp, signed=False)
            coefs[name] = tm << te
        else:
            q = round_half_away(v * s)
            if np.abs(q).max(initial=0) > fmt.state_max:
                raise ConfigError(f"layer {model.name}: '{name}' does not fit the state range at scale 2^{k}")
            coefs[name] = q.astype(np.int64)
    init = tuple(round_half_away(np.asarray(i, dtype=np.float64) * s).astype(np.int64) for i in f.layer.init)
    if delay is not None:
        delay = _check_delay(delay, f.w.shape, fmt)
    ql = QuantizedLayer(model=model, weight=wm, weight_exp=we, bias=bm, bias_exp=be, coefs=coefs, init=init,
                        scale=s, threshold_exp=te, recurrent=rm, recurrent_exp=re_, delay=delay,
                        conv=f.layer.conv, pool=f.pool)
    wq = ql.weight_int() / s
    nz = f.w != 0
    info = {
        "neuron": model.name, "n_in": ql.n_in, "n_out": ql.size, "log2_scale": k, "weight_exp": we,
        "weight_bits_used": int(np.abs(wm).max(initial=0)).bit_length() + 1,
        "weight_rel_err": float(np.linalg.norm(wq - f.w) / max(np.linalg.norm(f.w), 1e-300)),
        "weights_to_zero": float(np.mean(wm[nz] == 0)) if nz.any() else 0.0,
        "clipped": wclip + rclip + bclip,
        "threshold": int(coefs["threshold"].max()) if "threshold" in coefs else None,
        "threshold_exp": te if "threshold" in coefs else None,
        "decay": sorted({int(x) for x in coefs["decay"]})[:4],
        "max_delay": ql.max_delay,
    }
    return ql, info


def _check_delay(delay, shape: tuple[int, int], fmt: FixedPointFormat) -> np.ndarray:
    d = np.asarray(delay)
    if d.shape != shape:
        raise ShapeError(f"delays must have the weight shape [N_in, N_out] = {list(shape)}, got {list(d.shape)}")
    if not np.issubdtype(d.dtype, np.integer):
        if not np.all(d == np.rint(d)):
            raise ConfigError("delays must be whole numbers of time steps (round learned delays first)")
    d = d.astype(np.int64)
    if d.size and (d.min() < 0 or d.max() > fmt.max_delay):
        raise ConfigError(f"delays must be in [0, {fmt.max_delay}] steps ({fmt.delay_bits}-bit) for format "
                          f"'{fmt.name}', got [{d.min()}, {d.max()}]")
    return np.ascontiguousarray(d)


def quantize(model: nn.Module | Network, fmt: str | FixedPointFormat = "loihi", *,
             calib: torch.Tensor | np.ndarray | None = None, calib_steps=None,
             delays: list[np.ndarray | None] | None = None, input_max: float = 1.0,
             log2_scales: list[int] | None = None, max_iter: int = 4,
             input_shape: tuple[int, int, int] | None = None) -> QuantizedNetwork:
    """Quantize a trained network (nn.Sequential of Linear/neuron/Recurrent/Conv2d/pooling, or a core.Network).

    fmt: preset name ('loihi', 'wide16') or a FixedPointFormat.  calib: optional input
    [T, B, N_in] (integer counts) to choose the per-layer scales from the integer network's
    own peaks.  delays: per-layer integer delays [N_in, N_out] in steps (None per layer for
    none); by default the network's own (a model's rounded ``DelayedLinear`` delays, or a
    core.Network's ``Layer.delays``).  input_max: largest input count per channel and step (the readout's
    worst-case bound without calibration).  log2_scales: fix the per-layer state scales
    (e.g. those a quantization-aware fine-tuning trained with); calib then only fills the report.
    input_shape: the input frames (C, H, W) of a convolutional model whose first module does not
    say them (see ``nn.to_network``).  Convolutions and pooling are quantized like the other
    connections; an average pooling becomes a sum pooling with the 1 / area in the next weights.
    """
    fmt = get_format(fmt)
    net, dt = _lift(model, input_shape)
    folded = [_fold(l) for l in net.layers]
    if delays is None:
        delays = [l.delays for l in net.layers]
    if len(delays) != len(folded):
        raise ConfigError(f"delays: one entry per layer ({len(folded)}), got {len(delays)}")
    caps = [_max_log2_scale(f, fmt) for f in folded]
    if log2_scales is not None:
        if len(log2_scales) != len(folded):
            raise ConfigError(f"log2_scales: one per layer ({len(folded)}), got {len(log2_scales)}")
        ks = [int(k) for k in log2_scales]
    else:
        ks = [min(_static_log2_scale(f, fmt, input_max if i == 0 else 1.0), c)
              for i, (f, c) in enumerate(zip(folded, caps))]

    def build(ks):
        pairs = [_quantize_layer(f, k, fmt, d) for f, k, d in zip(folded, ks, delays)]
        return QuantizedNetwork([p[0] for p in pairs], fmt, dt=dt, report=[p[1] for p in pairs])

    q = build(ks)
    if calib is not None:
        target = fmt.state_max / 2
        for _ in range(max_iter if log2_scales is None else 0):
            res = q.simulate(calib, steps=calib_steps)
            new = []
            for i, k in enumerate(ks):
                peak = max(int(res.peak_input[i].max(initial=0)), int(res.peak_state[i].max(initial=0)))
                delta = 0 if peak == 0 else math.floor(math.log2(target / peak))
                new.append(min(k + delta, caps[i]))
            if new == ks:
                break
            ks = new
            q = build(ks)
        res = q.simulate(calib, steps=calib_steps)
        for i, info in enumerate(q.report):
            peak = max(int(res.peak_input[i].max(initial=0)), int(res.peak_state[i].max(initial=0)))
            info["peak_bits"] = peak.bit_length()
            info["saturations"] = int(res.sat_input[i].sum() + res.sat_state[i].sum())
    return q


def format_report(q: QuantizedNetwork) -> str:
    """The per-layer quantization report as a markdown table."""
    if not q.report:
        return "(no report)"
    cols = list(dict.fromkeys(k for r in q.report for k in r))
    lines = [f"fixed-point format '{q.fmt.name}': {q.fmt.weight_bits}-bit weights, {q.fmt.frac_bits}-bit fractions, "
             f"{q.fmt.state_bits}-bit state", "", "| layer | " + " | ".join(cols) + " |",
             "|---" * (len(cols) + 1) + "|"]
    for i, r in enumerate(q.report):
        vals = [f"{r[c]:.3g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        lines.append(f"| {i} | " + " | ".join(vals) + " |")
    return "\n".join(lines)


__all__ = ["QuantizedLayer", "QuantizedNetwork", "format_report", "quantize", "validate"]

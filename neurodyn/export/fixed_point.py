"""Chip-style fixed-point formats: how many bits each quantity gets, and the named presets.

A format says how a layer's numbers are stored as integers:

- **weights**: signed ``weight_bits`` mantissas with one shift per layer (``weight_exp``
  range); the synaptic increment is ``mantissa << exp`` state units.
- **fractions** (decays, input gains): unsigned integers in units of ``2**-frac_bits``,
  in ``[0, 2**frac_bits]``; a product ``c * x`` is ``(c * x) >> frac_bits`` rounded as
  ``rounding`` says.
- **state** (membrane voltage, synaptic current and every intermediate of the step):
  signed ``state_bits`` integers, *saturating* at ``±(2**(state_bits-1) - 1)`` (symmetric,
  as Loihi clips its voltage); every clamp is counted.
- **threshold**: unsigned ``threshold_bits`` mantissa with a per-layer shift.
- **bias**: signed ``bias_bits`` mantissa with a per-layer shift.
- **delays**: unsigned ``delay_bits`` integers, in time steps.

``headroom_bits``: without calibration data the state scale puts the largest threshold
``headroom_bits`` below the top of the state range (room for input overshoot).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

ROUNDINGS = ("trunc", "floor", "nearest")


@dataclass(frozen=True)
class FixedPointFormat:
    """Bit widths and exponent ranges of a chip's integer arithmetic (see the module docstring)."""

    name: str = "custom"
    weight_bits: int = 8
    weight_exp: tuple[int, int] = (0, 13)
    frac_bits: int = 12
    state_bits: int = 24
    threshold_bits: int = 17
    threshold_exp: tuple[int, int] = (0, 6)
    bias_bits: int = 13
    bias_exp: tuple[int, int] = (0, 7)
    delay_bits: int = 6
    rounding: str = "trunc"
    headroom_bits: int = 6

    def __post_init__(self) -> None:
        for f in ("weight_bits", "frac_bits", "state_bits", "threshold_bits", "bias_bits", "delay_bits"):
            v = getattr(self, f)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(f"fixed-point format '{self.name}': {f} must be a positive integer, got {v!r}")
        for f in ("weight_exp", "threshold_exp", "bias_exp"):
            lo, hi = getattr(self, f)
            if not (0 <= lo <= hi):
                raise ConfigError(f"fixed-point format '{self.name}': {f} must be a range 0 <= lo <= hi, got {(lo, hi)}")
        if self.rounding not in ROUNDINGS:
            raise ConfigError(f"unknown rounding '{self.rounding}'; choose one of {list(ROUNDINGS)}")
        # int64 arithmetic in the simulator: a fraction times a state must not overflow, and
        # neither may a weight increment or a threshold.
        if self.state_bits + self.frac_bits + 1 > 62 or self.state_bits > 40:
            raise ConfigError(f"fixed-point format '{self.name}': state_bits + frac_bits too large for int64 "
                              f"({self.state_bits} + {self.frac_bits})")
        for what, bits, (_, hi) in (("weight", self.weight_bits, self.weight_exp),
                                    ("threshold", self.threshold_bits + 1, self.threshold_exp),
                                    ("bias", self.bias_bits, self.bias_exp)):
            if bits - 1 + hi > self.state_bits - 1:
                raise ConfigError(f"fixed-point format '{self.name}': the largest {what} (2^{bits - 1 + hi}) "
                                  f"does not fit the {self.state_bits}-bit state")
        if not (0 <= self.headroom_bits < self.state_bits - 1):
            raise ConfigError(f"fixed-point format '{self.name}': headroom_bits must be in [0, state_bits - 1)")

    @property
    def state_max(self) -> int:
        """Largest state value; the smallest is -state_max (symmetric saturation)."""
        return (1 << (self.state_bits - 1)) - 1

    @property
    def one(self) -> int:
        """The fraction 1.0 in units of 2**-frac_bits."""
        return 1 << self.frac_bits

    @property
    def max_delay(self) -> int:
        return (1 << self.delay_bits) - 1

    def replace(self, **changes) -> "FixedPointFormat":
        """A copy with some fields changed (validated again)."""
        bad = set(changes) - {f.name for f in dataclasses.fields(self)}
        if bad:
            raise ConfigError(f"unknown fixed-point format field(s) {sorted(bad)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FixedPointFormat":
        names = {f.name for f in dataclasses.fields(cls)}
        bad = set(d) - names
        if bad:
            raise ConfigError(f"unknown fixed-point format field(s) {sorted(bad)}")
        kw = {k: (tuple(int(x) for x in v) if k.endswith("_exp") else v) for k, v in d.items()}
        for k in ("weight_bits", "frac_bits", "state_bits", "threshold_bits", "bias_bits", "delay_bits",
                  "headroom_bits"):
            if k in kw:
                kw[k] = int(kw[k])
        for k in ("name", "rounding"):
            if k in kw:
                kw[k] = kw[k].decode() if isinstance(kw[k], bytes) else str(kw[k])
        return cls(**kw)


# Loihi-like (Intel Loihi 1, as modelled bit-accurately by lava's PyLifModelBitAcc):
# 8-bit signed weight mantissas scaled by 2^(6 + wexp) on the chip -> here one left shift
# per layer in [0, 13]; current and voltage decays du, dv of 12 bits, i.e. the decay
# multiplier (4096 - du)/4096 in units of 1/4096, rounded toward zero; 24-bit current and
# voltage (lava clips the voltage to ±(2^23 - 1); here both saturate, counted); threshold
# vth a 17-bit unsigned mantissa (the chip shifts it by 6; here a per-layer shift 0..6);
# bias a 13-bit signed mantissa with a 3-bit exponent; synaptic delays of 6 bits (0..63 steps).
LOIHI = FixedPointFormat(name="loihi")

# A wider format for comparison: 16-bit weights, 16-bit fractions, 32-bit state.
WIDE = FixedPointFormat(name="wide16", weight_bits=16, weight_exp=(0, 15), frac_bits=16, state_bits=32,
                        threshold_bits=24, threshold_exp=(0, 7), bias_bits=16, bias_exp=(0, 15), delay_bits=8,
                        headroom_bits=8)

PRESETS: dict[str, FixedPointFormat] = {"loihi": LOIHI, "wide16": WIDE}


def get_format(fmt: str | FixedPointFormat, **overrides) -> FixedPointFormat:
    """A preset by name ('loihi', 'wide16') or a format, with optional field overrides."""
    if isinstance(fmt, FixedPointFormat):
        base = fmt
    elif isinstance(fmt, str):
        if fmt not in PRESETS:
            raise ConfigError(f"unknown fixed-point preset '{fmt}'; choose one of {sorted(PRESETS)}")
        base = PRESETS[fmt]
    else:
        raise ConfigError(f"a fixed-point format must be a preset name or FixedPointFormat, got {type(fmt).__name__}")
    return base.replace(**overrides) if overrides else base


def round_half_away(x: np.ndarray) -> np.ndarray:
    """Round to nearest, ties away from zero (deterministic, unlike numpy's ties-to-even)."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def mantissa_range(bits: int, signed: bool = True) -> tuple[int, int]:
    """(lo, hi) of a ``bits``-bit mantissa (two's complement if signed)."""
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def shared_exponent(peak: float, bits: int, exp_range: tuple[int, int], signed: bool = True) -> int:
    """Smallest shift in ``exp_range`` at which ``peak`` (state units) rounds into the mantissa."""
    hi = mantissa_range(bits, signed)[1]
    e = exp_range[0]
    while e < exp_range[1] and peak / (1 << e) > hi + 0.5:
        e += 1
    return e


def mantissa_exponent(values: np.ndarray, bits: int, exp_range: tuple[int, int], signed: bool = True,
                      ) -> tuple[np.ndarray, int, int]:
    """Integers ``values`` (already in state units, float) as ``mant << exp`` with one shared exp.

    The exponent is the smallest in ``exp_range`` whose mantissas fit ``bits`` bits
    (signed: two's complement); values that still do not fit are clipped.
    Returns (mantissa int64 array, exp, number of clipped values).
    """
    v = np.asarray(values, dtype=np.float64)
    lo, hi = mantissa_range(bits, signed)
    e = shared_exponent(float(np.max(np.abs(v))) if v.size else 0.0, bits, exp_range, signed)
    m = round_half_away(v / (1 << e))
    clipped = int(np.count_nonzero((m > hi) | (m < lo)))
    return np.clip(m, lo, hi).astype(np.int64), e, clipped


__all__ = ["FixedPointFormat", "LOIHI", "PRESETS", "ROUNDINGS", "WIDE", "get_format", "mantissa_exponent",
           "mantissa_range", "round_half_away", "shared_exponent"]

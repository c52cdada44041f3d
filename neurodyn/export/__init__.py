"""Export to neuromorphic chips: fixed-point quantization, a bit-exact integer simulator, NIR and HDF5.

- ``quantize(model, "loihi", calib=x)`` -> QuantizedNetwork (integers + format + report)
- ``simulate(q, x)`` runs it with integer arithmetic only (Numba), ``simulate_reference``
  with numpy (same integer step, dense propagation); ``q.stream(B)`` feeds it in chunks
- ``qat(model, "loihi")`` fake-quantizes a model for quantization-aware fine-tuning
- ``to_nir`` / ``from_nir`` / ``write_nir`` / ``read_nir``: NIR graphs
- ``write_hdf5`` / ``read_hdf5``: the layered chip network file (see ``hdf5_io``)
"""
from .fixed_point import LOIHI, PRESETS, WIDE, FixedPointFormat, get_format
from .int_sim import IntResult, IntState, simulate, simulate_reference
from .int_stream import IntChunk, IntStream
from .hdf5_io import read_hdf5, write_hdf5
from .nir_io import from_nir, quantized_from_nir, read_nir, to_nir, write_nir
from .qat import QAT, qat
from .quantize import QuantizedLayer, QuantizedNetwork, format_report, quantize

__all__ = ["FixedPointFormat", "IntChunk", "IntResult", "IntState", "IntStream", "LOIHI", "PRESETS", "QAT",
           "QuantizedLayer", "QuantizedNetwork", "WIDE", "format_report", "from_nir", "get_format", "qat", "quantize", "quantized_from_nir", "read_hdf5", "read_nir",
           "simulate", "simulate_reference", "to_nir", "write_hdf5", "write_nir"]

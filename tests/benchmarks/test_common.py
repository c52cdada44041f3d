"""Benchmark helpers: the memory reading sees what a call allocates, tables carry the machine
description and stay backward compatible, timing takes the median."""
import csv
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
common = pytest.importorskip("benchmarks.common")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")
def test_peak_memory_sees_a_temporary_allocation():
    def alloc():
        a = np.ones(200 * 2 ** 20 // 8)  # 200 MiB, touched, freed before returning
        return float(a[-1])
    assert 180 < common.peak_memory_mb(alloc) < 260
    # the same allocation again is seen again (freed pages were returned, not silently reused)
    assert 180 < common.peak_memory_mb(alloc) < 260
    assert common.peak_memory_mb(lambda: sum(range(1000))) < 20


def test_timeit_is_the_median():
    calls = iter([0.0, 0.0, 0.2, 0.001, 0.001])  # two warm-up calls, then three timed ones (mean 0.067 s)
    assert 0.0008 < common.timeit(lambda: time.sleep(next(calls)), repeats=3, warmup=2) < 0.04


def test_write_table_records_machine_and_is_backward_compatible(tmp_path, monkeypatch):
    monkeypatch.setattr(common, "RESULTS", tmp_path)
    text = common.write_table("t", [{"a": 1.23456789, "b": "x"}, {"a": 2.0, "c": 3}], "## header")
    assert "| a | b | c |" in text and "| 1.235 | x |  |" in text
    assert "Device: CPU" in text and "threads: torch" in text and "norse" in text and "cupy" in text
    with open(tmp_path / "t.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["a"] for r in rows] == ["1.23456789", "2.0"] and rows[1]["c"] == "3"
    assert rows[0]["device"].startswith("CPU") and "torch" in rows[0]["versions"] and rows[0]["threads"]
    assert not list(tmp_path.glob("*.tmp"))
    pub = common.write_table("p", [{"x": 1}], "## published", measured=False)
    assert "not measured here" in pub and "Versions" not in pub
    with pytest.raises(ValueError, match="no rows"):
        common.write_table("empty", [], "## nothing")


def test_cpu_model_and_cuda_reason():
    assert "logical cores" in common.cpu_model()
    why = common.cuda_skip_reason()
    assert why is None or isinstance(why, str) and why

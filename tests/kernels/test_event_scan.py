"""The shared event scan (kernels/event_scan.py) against numpy's nonzero: every row length,
chunking, dtype, and the bit-level cases (-0.0, NaN, integer sign bits)."""
import numpy as np
import pytest

from neurodyn.core.events import dense_to_events
from neurodyn.kernels.event_scan import bits, chunks, pack, row_nonzeros, scan_buffers, scan_rows, to_csr


@pytest.mark.parametrize("K", [0, 1, 7, 8, 9, 16, 63, 700])
@pytest.mark.parametrize("density", [0.0, 0.02, 0.5, 1.0])
def test_row_nonzeros_matches_flatnonzero(K, density):
    rng = np.random.default_rng(K)
    x = ((rng.random(K) < density) * rng.standard_normal(K)).astype(np.float32)
    act = np.empty(max(K, 1), dtype=np.int32)
    n = row_nonzeros(*bits(x), act)
    np.testing.assert_array_equal(act[:n], np.flatnonzero(x))

@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64, np.int32])
def test_to_csr_exact_on_signed_zero_nan_and_integers(dtype):
    # The scan tests bits: -0.0 must count as zero and NaN as an event, like x != 0.
    rng = np.random.default_rng(1)
    x = ((rng.random((9, 37)) < 0.2) * rng.integers(-3, 4, (9, 37))).astype(dtype)
    if np.dtype(dtype).kind == "f":
        x[0, 3], x[2, 36], x[5, 8] = -0.0, np.nan, -np.inf
    x[4, :] = np.iinfo(np.int32).min if np.dtype(dtype).kind == "i" else -1.0  # sign bit only matters for floats
    indptr, idx, val = to_csr(x)
    nz = x != 0
    assert indptr[-1] == nz.sum()
    for m in range(x.shape[0]):
        np.testing.assert_array_equal(idx[indptr[m]:indptr[m + 1]], np.flatnonzero(nz[m]))
        np.testing.assert_array_equal(val[indptr[m]:indptr[m + 1]], x[m][nz[m]])


@pytest.mark.parametrize("bounds", [[0, 40], [0, 1, 2, 40], [0, 13, 13, 27, 40]])
def test_chunked_scan_packs_like_one_chunk(bounds):
    # chunks write at (first row of chunk) * K and pack() joins them: any split gives one CSR
    rng = np.random.default_rng(3)
    x = ((rng.random((40, 23)) < 0.1) * rng.standard_normal((40, 23))).astype(np.float64)
    b = np.array(bounds, dtype=np.int64)
    counts, idx, val = scan_buffers(40, 23, x.dtype)
    frames = x.reshape(40, 1, 23)
    scan_rows(frames, *bits(frames), counts, idx, val, b)
    ptr, i, v = pack(counts, idx, val, 23, b)
    ref = to_csr(x)
    for a, r in zip((ptr, i, v), ref):
        np.testing.assert_array_equal(a, r)


@pytest.mark.parametrize("M", [0, 1, 3, 35, 1000])
def test_chunks_cover_rows(M):
    b = chunks(M)
    assert b[0] == 0 and b[-1] == M and np.all(np.diff(b) >= 0) and len(b) >= 2


def test_dense_to_events_is_sample_major():
    rng = np.random.default_rng(4)
    x = ((rng.random((6, 3, 19)) < 0.2) * rng.standard_normal((6, 3, 19))).astype(np.float32)
    ptr, idx, val = dense_to_events(x)
    T, B, _ = x.shape
    for b in range(B):
        for t in range(T):
            r = b * T + t
            np.testing.assert_array_equal(idx[ptr[r]:ptr[r + 1]], np.flatnonzero(x[t, b]))
            np.testing.assert_array_equal(val[ptr[r]:ptr[r + 1]], x[t, b][x[t, b] != 0])

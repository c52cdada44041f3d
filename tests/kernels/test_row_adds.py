"""The shared weight-row sums (kernels.row_adds): against NumPy, and the unit-value variant
against the general one to the bit (the event core and the training paths must agree)."""
import numpy as np
import pytest

from neurodyn.kernels.row_adds import add_dense_rows, add_rows, add_unit_rows, block_events, scatter_grouped


@pytest.mark.parametrize("n_events", [0, 1, 3, 4, 5, 9])
def test_add_rows_matches_numpy_and_unit_rows(n_events):
    rng = np.random.default_rng(n_events)
    W = rng.standard_normal((30, 13)).astype(np.float32)
    idx = rng.integers(0, 30, size=n_events + 2).astype(np.int32)  # repeats allowed
    val = rng.standard_normal(n_events + 2).astype(np.float32)
    y = rng.standard_normal(13).astype(np.float32)
    got = y.copy()
    add_rows(got, W, idx, val, 1, 1 + n_events)  # an offset range, as the kernels pass it
    want = y.astype(np.float64) + (val[1:1 + n_events, None].astype(np.float64) * W[idx[1:1 + n_events]]).sum(0)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    ones = np.ones_like(val)
    a, b = y.copy(), y.copy()
    add_rows(a, W, idx, ones, 1, 1 + n_events)
    add_unit_rows(b, W, idx, 1, 1 + n_events)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("J", [1, 4, 7])
def test_add_dense_rows_is_a_vector_matrix_product(J):
    rng = np.random.default_rng(J)
    a, V = rng.standard_normal(J), rng.standard_normal((J, 11))
    y = rng.standard_normal(11)
    got = y.copy()
    add_dense_rows(got, a, V)
    np.testing.assert_allclose(got, y + a @ V, rtol=1e-12, atol=1e-12)


def test_scatter_grouped_equals_event_by_event_scatter():
    rng = np.random.default_rng(0)
    T, B, K, N = 6, 5, 9, 4
    steps = np.array([6, 2, 0, 5, 6], dtype=np.int64)
    cnt = rng.integers(0, 4, size=B * T).astype(np.int64)
    beg = np.concatenate([[0], np.cumsum(cnt)[:-1]]).astype(np.int64)
    idx = rng.integers(0, K, size=int(cnt.sum())).astype(np.int32)
    val = rng.standard_normal(int(cnt.sum()))
    b0, b1 = 1, 5  # a block of samples 1..4
    GX = rng.standard_normal(((b1 - b0) * T, N))
    want = rng.standard_normal((K, N))
    got = want.copy()
    for b in range(b0, b1):
        for t in range(steps[b]):  # rows past a sample's steps are not its events
            r = b * T + t
            for q in range(beg[r], beg[r] + cnt[r]):
                want[idx[q]] += val[q] * GX[(b - b0) * T + t]
    n = block_events(cnt, steps, T, b0, b1)
    assert n == sum(int(cnt[b * T:b * T + steps[b]].sum()) for b in range(b0, b1))
    scatter_grouped(got, GX, beg, cnt, idx, val, steps, T, b0, b1, np.empty(K + 1, dtype=np.int64),
                    np.empty(n, dtype=np.int64), np.empty(n))
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)

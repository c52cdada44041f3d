"""kernels.py_cxx: the confidence functions printed as C++ compute what Python computes, and
constructs it does not translate are refused by name."""
import ctypes
import math

import numpy as np
import pytest

from neurodyn.core.confidence import LIMITS, MEASURES, softmax_sums, top2
from neurodyn.kernels.cuda_host import compile_host, host_compiler
from neurodyn.kernels.py_cxx import to_cxx

needs_cxx = pytest.mark.skipif(host_compiler() is None, reason="no C++ compiler for the host build")

PRELUDE = """#include <cmath>
#include <limits>
#define ND_DEV inline
#define ND_RESTRICT __restrict__
#define ND_INF std::numeric_limits<double>::infinity()
using std::exp; using std::log;
typedef long long ndi;
"""


@needs_cxx
def test_confidence_functions_in_cxx_equal_python():
    fns = [to_cxx(top2, {"acc": "array"}, ("ndi", "ndi")),
           to_cxx(softmax_sums, {"acc": "array", "k1": "ndi", "k2": "ndi"}, ("double", "double"))]
    fns += [to_cxx(f) for f in (*MEASURES.values(), *LIMITS.values())]
    wrappers = ['extern "C" void c_top2(const double* a, ndi n, ndi* k) { top2(a, n, k[0], k[1]); }',
                'extern "C" void c_sums(const double* a, ndi n, double sc, double z1, double z2, ndi k1, ndi k2, '
                'double lim, double* r) { softmax_sums(a, n, sc, z1, z2, k1, k2, lim, r[0], r[1]); }']
    wrappers += [f'extern "C" double c_{f.__name__}(double a, double b, double c, double d, double e) '
                 f'{{ return {f.__name__}(a, b, c, d, e); }}' for f in MEASURES.values()]
    wrappers += [f'extern "C" double c_{f.__name__}(double a, double b, double c) {{ return {f.__name__}(a, b, c); }}'
                 for f in LIMITS.values()]
    lib = compile_host(PRELUDE + "\n".join(fns + wrappers), "py_cxx_test")
    rng = np.random.default_rng(0)
    dp = ctypes.POINTER(ctypes.c_double)
    for C in (2, 3, 10, 35):
        for _ in range(20):
            acc = np.round(rng.normal(size=C) * 5, 1)  # ties included
            k = np.zeros(2, np.int64)
            lib.c_top2(acc.ctypes.data_as(dp), ctypes.c_longlong(C), k.ctypes.data_as(ctypes.POINTER(ctypes.c_longlong)))
            k1, k2 = top2(acc)
            assert (k[0], k[1]) == (k1, k2)
            sc = float(rng.uniform(1, 30))
            z1, z2 = acc[k1] / sc, acc[k2] / sc
            for lim in (math.inf, 1.0 + math.exp(z2 - z1) + 0.5):
                r = np.zeros(2)
                lib.c_sums(acc.ctypes.data_as(dp), ctypes.c_longlong(C), ctypes.c_double(sc), ctypes.c_double(z1),
                           ctypes.c_double(z2), ctypes.c_longlong(k1), ctypes.c_longlong(k2), ctypes.c_double(lim),
                           r.ctypes.data_as(dp))
                assert tuple(r) == softmax_sums(acc, sc, z1, z2, k1, k2, lim)  # to the bit
            S, Q = softmax_sums(acc, sc, z1, z2, k1, k2, math.inf)
            for name, f in MEASURES.items():
                fn = getattr(lib, f"c_{name}")
                fn.restype = ctypes.c_double
                want = _bound(f)(z1, z2, S, Q, math.log(C))
                assert fn(*map(ctypes.c_double, (z1, z2, S, Q, math.log(C)))) == want, name
            for name, f in LIMITS.items():
                fn = getattr(lib, f"c_{f.__name__}")
                fn.restype = ctypes.c_double
                assert fn(*map(ctypes.c_double, (0.7, math.exp(z2 - z1), math.log(C)))) == \
                    _bound(f)(0.7, math.exp(z2 - z1), math.log(C))


def _bound(f):
    """f with exp and log bound to the math module (as the Numba kernels and C++ see them)."""
    return type(f)(f.__code__, {**f.__globals__, "exp": math.exp, "log": math.log}, f.__name__)


def test_untranslated_constructs_are_refused_by_name():
    def while_loop(x):
        while x > 0:
            x -= 1.0
        return x

    def tuple_return(x):
        return x, x

    def escaping_local(x):
        if x > 0:
            y = 1.0
        return y  # noqa: F821

    with pytest.raises(ValueError, match="While"):
        to_cxx(while_loop)
    with pytest.raises(ValueError, match="tuple return"):
        to_cxx(tuple_return)
    with pytest.raises(ValueError, match="'y' used where it is not assigned"):
        to_cxx(escaping_local)

"""NumPy's BLAS: its thread count, and whether its float32 products beat torch's."""

import contextlib
import time

import numpy as np
import torch

__all__ = ["blas_threads", "numpy_products_faster"]


def blas_threads(limit):
    """A context limiting NumPy's and SciPy's BLAS to ``limit`` threads
    (threadpoolctl, which scikit-learn requires; a no-op context without it)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - installed with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=limit, user_api="blas")


_NUMPY_FASTER = None


def numpy_products_faster():
    """Whether NumPy's BLAS multiplies float32 matrices faster than torch's
    on this CPU, one thread each.

    The two libraries often bring different BLAS builds (torch's wheels
    Intel's MKL, NumPy's OpenBLAS), and which is faster depends on the
    processor: on an AMD EPYC with AVX-512, OpenBLAS took 0.76 times MKL's
    time for a 512 x 128 by 128 x 8192 product. Measured once per process
    (the best of three products of 256 x 128 by 128 x 1024 with each, after
    one that initialises the library) and remembered. Where the two are
    about as fast, either answer costs little.
    """
    global _NUMPY_FASTER
    if _NUMPY_FASTER is None:
        _NUMPY_FASTER = _time_products()
    return _NUMPY_FASTER


def _time_products():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((256, 128), dtype=np.float32)
    b = rng.standard_normal((1024, 128), dtype=np.float32)
    out = np.empty((256, 1024), dtype=np.float32)
    a_t, b_t, out_t = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)

    def best(product):
        product()
        times = []
        for _ in range(3):
            start = time.perf_counter()
            product()
            times.append(time.perf_counter() - start)
        return min(times)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with blas_threads(1):
            numpy_time = best(lambda: np.matmul(a, b.T, out=out))
            torch_time = best(lambda: torch.mm(a_t, b_t.T, out=out_t))
    finally:
        torch.set_num_threads(threads)
    return numpy_time < torch_time

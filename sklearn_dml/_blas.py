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
    """Whether NumPy's BLAS multiplies float32 matrices clearly faster than
    torch's on this CPU, one thread each.

    The two libraries often bring different BLAS builds (torch's wheels
    Intel's MKL, NumPy's OpenBLAS), and which is faster depends on the
    processor: on an AMD EPYC with AVX-512, OpenBLAS took 0.76 times MKL's
    time for a 512 x 128 by 128 x 8192 product. Measured once per process
    (about 20 ms: the best of five products of 512 x 128 by 128 x 2048 with
    each) and remembered; "clearly" is a tenth less time.
    """
    global _NUMPY_FASTER
    if _NUMPY_FASTER is None:
        _NUMPY_FASTER = _time_products()
    return _NUMPY_FASTER


def _time_products():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((512, 128), dtype=np.float32)
    b = rng.standard_normal((2048, 128), dtype=np.float32)
    out = np.empty((512, 2048), dtype=np.float32)
    a_t, b_t, out_t = torch.from_numpy(a), torch.from_numpy(b), torch.from_numpy(out)

    def best(product):
        product()
        times = []
        for _ in range(5):
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
    return numpy_time < 0.9 * torch_time

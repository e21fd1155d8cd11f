"""CPU-side numerical work (a cell's metrics, a merge's held-out scores, the analysis) runs with
one BLAS thread.

Its matrices are small (a cell is 100 rows on the quick profile, 1,000 on the paper one), so
numpy's and scipy's OpenBLAS threads spend their time waking up and waiting, on a machine whose
cores torch's and scikit-learn's OpenMP threads are still spinning on after their own parallel
regions. Measured on a 2-core AMD EPYC Zen 5 (avx512_bf16), the seven default metrics of a cell
scored right after a torch pass: 0.142 s with two BLAS threads against 0.054 s with one at 100
rows, 0.43 against 0.17 s at 1,000 rows (``bench/metrics.py``). OpenMP (scikit-learn's k-means)
keeps its threads: limiting it too was slower from a thousand rows on. Scores do not change
beyond the order of a floating-point sum: equal to the bit at 100 rows, within 3e-15 at 1,000.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Numpy's and scipy's BLAS on one thread for the duration (about 3 ms to enter, so wrap a
    batch of work, not each small call). threadpoolctl limits the libraries loaded when the
    limit is set, so scipy's own BLAS, which scipy loads lazily, is loaded first."""
    from threadpoolctl import threadpool_limits

    with contextlib.suppress(ImportError):
        import scipy.linalg  # noqa: F401  (loads scipy's BLAS)
    with threadpool_limits(limits=1, user_api="blas"):
        yield

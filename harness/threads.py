"""CPU-side numerical work (a cell's metrics, a merge's held-out scores, the analysis) runs with
one BLAS thread.

Its matrices are small (a cell is 100 rows on the quick profile, 1,000 on the paper one), so
numpy's and scipy's OpenBLAS threads spend their time waking up and waiting, on a machine whose
cores torch's and scikit-learn's OpenMP threads are still spinning on after their own parallel
regions. Measured on a 2-core AMD EPYC Zen 5 (avx512_bf16), the seven default metrics of a cell
scored right after a torch pass: 0.144 s with two BLAS threads against 0.060 s with one at 100
rows, 0.49 against 0.19 s at 1,000 rows, 1.92 against 0.99 s at 4,000 (``bench/metrics.py``
prints the same comparison). OpenMP keeps its threads (scikit-learn's k-means uses them well
from a thousand rows on). Scores do not change beyond the order of a floating-point sum: equal
to the bit at 100 rows, within 1e-15 at 1,000.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Numpy's and scipy's BLAS on one thread for the duration (every BLAS library loaded by
    then; about 2 ms to enter, so wrap a batch of work, not each small call)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield

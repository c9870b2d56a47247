"""FAISS's process-wide settings for a build or a search, the extra that installs it, and the
default shape of an IVF-PQ index.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mtmct_reid._runtime import usable_cores
from mtmct_reid.errors import ReIDError
from mtmct_reid.validation import positive_int

#: Queries handed to FAISS at once: enough for its matrix-product path, and a bounded block of
#: scores (QUERY_BATCH × DATABASE_BLOCK float32, 16 MiB).
QUERY_BATCH = 256
#: Gallery rows per matrix product in FAISS's batched exact search (FAISS's default is 1024): a
#: million-row gallery is 62 products instead of 977, and as many fewer hand-offs between threads.
DATABASE_BLOCK = 16384
#: FAISS's thread count and block sizes are process-wide: one build or search changes them at a time.
_SETTINGS_LOCK = threading.RLock()
_EXTRA = "pip install 'mtmct-reid[index]'"


def require_faiss() -> Any:
    """The ``faiss`` module, or a :class:`ReIDError` naming the extra that installs it."""
    # FAISS's loader logs at INFO each SIMD build it tries and the error of each one it lacks
    # (about eight lines, tracebacks' last lines among them): noise at a command's INFO level.
    logging.getLogger("faiss.loader").setLevel(logging.WARNING)
    try:
        import faiss
    except ImportError:
        raise ReIDError(f"gallery indexes need faiss: {_EXTRA}") from None
    return faiss


def faiss_threads(threads: int | None) -> int:
    """Threads for FAISS: ``threads``, or every core this process may use when None.

    Raises:
        ReIDError: ``threads`` below 1 or above the usable cores (more threads than cores only
            make them wait for each other).

    Example:
        >>> faiss_threads(None) == usable_cores() and faiss_threads(1)
        1
    """
    cores = usable_cores()
    if threads is None:
        return cores
    threads = positive_int("--threads", threads)
    if threads > cores:
        raise ReIDError(f"--threads {threads}: this process may use {cores} cores")
    return threads


def _matrix_product_threshold(faiss: Any, dim: int) -> int:
    """A ``distance_compute_blas_threshold`` that sends two or more queries to FAISS's
    matrix-product path. FAISS 1.15 compares it with queries × D (default 128,000: fewer than 250
    queries of 512-d scan the gallery once per query, in parallel over queries only); earlier
    versions compare it with the number of queries (default 20)."""
    found = re.match(r"(\d+)\.(\d+)", str(getattr(faiss, "__version__", "")))
    version = (int(found[1]), int(found[2])) if found else (0, 0)
    return 2 * dim if version >= (1, 15) else 2


@contextmanager
def faiss_settings(faiss: Any, threads: int, dim: int | None = None) -> Iterator[None]:
    """FAISS's process-wide settings for one build (``dim`` None) or search, restored after it;
    builds and searches from several Python threads take turns.

    A search sends batches of two or more queries to the matrix-product path (one pass over the
    gallery per batch instead of one per query), in blocks of ``QUERY_BATCH`` × ``DATABASE_BLOCK``
    scores (FAISS allocates 4,096 × its database block otherwise).
    """
    with _SETTINGS_LOCK:
        saved = (
            faiss.omp_get_max_threads(),
            faiss.cvar.distance_compute_blas_threshold,
            faiss.cvar.distance_compute_blas_query_bs,
            faiss.cvar.distance_compute_blas_database_bs,
        )
        try:
            faiss.omp_set_num_threads(threads)
            if dim is not None:
                faiss.cvar.distance_compute_blas_threshold = _matrix_product_threshold(faiss, dim)
                faiss.cvar.distance_compute_blas_query_bs = QUERY_BATCH
                faiss.cvar.distance_compute_blas_database_bs = DATABASE_BLOCK
            yield
        finally:
            faiss.omp_set_num_threads(saved[0])
            faiss.cvar.distance_compute_blas_threshold = saved[1]
            faiss.cvar.distance_compute_blas_query_bs = saved[2]
            faiss.cvar.distance_compute_blas_database_bs = saved[3]


def default_nlist(count: int) -> int:
    """Cells of an IVF index: about √N (1,000 at a million), at least 1, and at most N / 39 (FAISS
    wants 39 training points per centroid). Fast-scan codes make visiting more cells cheap, while
    k-means over 4·√N cells (FAISS's usual advice) takes 16 times longer to train.

    Example:
        >>> default_nlist(1_000_000), default_nlist(100)
        (1000, 2)
    """
    return int(max(1, min(round(math.sqrt(count)), count // 39)))


def default_m(dim: int, nbits: int = 4) -> int:
    """Sub-quantisers of IVF-PQ: D/4 bytes of codes per vector (1/16 of float32) where a divisor
    of D allows it, at most 256 bytes.

    Args:
        dim: the feature dimension D.
        nbits: bits per sub-quantiser code (4: FAISS's fast scan; 8: classic PQ).

    Example:
        >>> default_m(512), default_m(512, nbits=8), default_m(3072), default_m(3072, nbits=8)
        (256, 128, 512, 256)
    """
    target = max(1, min(dim // 4, 256) * 8 // nbits)
    return max(m for m in range(1, target + 1) if dim % m == 0)


def default_nprobe(nlist: int) -> int:
    """Cells an IVF query visits by default: nlist / 16 (62 of 1,000), at least 1. At 1,000,000
    vectors of 512-d, benchmarks/bench_index.py measured recall@10 0.953 with the top 100 re-scored,
    1 ms per query (nlist / 32: 0.893, the recall target being 0.9).

    Example:
        >>> default_nprobe(1000), default_nprobe(10)
        (62, 1)
    """
    return max(1, nlist // 16)

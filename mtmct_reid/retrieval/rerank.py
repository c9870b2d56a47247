"""Exact k-reciprocal re-ranking (Zhong et al., CVPR 2017) without dense N x N matrices.

The classic implementation (layumi / st-ReID ``re_ranking``) builds the (query + gallery)^2 distance
matrix, sorts every row, fills a dense N x N encoding ``V`` and scans its columns; on MSMT17 that is more
than 25 GB. Only three things of that matrix are ever used:

1. the ``max(k1 + 1, k2)`` nearest neighbours of every sample (with their distances) and the largest
   distance of its row (the normalisation),
2. the distances of query rows to gallery columns (the final blend),
3. a few distances between a sample and its expanded reciprocal neighbours (the encoding weights).

So the score matrix is read once, in row chunks, keeping (1) and (2); the encoding ``V`` is a sparse
matrix with a few ``k1`` non-zeros per row; query expansion is a sparse product; and the Jaccard term
is computed for query rows against gallery columns only, from the columns of ``V``. Memory is
O(N * k1 + chunk * N) plus the [num_query, num_gallery] result.

The result equals the dense algorithm up to float32 rounding. Ties between equal distances are broken by
column index (``np.argsort``'s quicksort leaves their order unspecified; random scores have none).

:func:`rerank_features` adds a faster neighbour search for cosine similarities of features: on CPUs with
native bfloat16 arithmetic the gallery rows are first scored with a bfloat16 product, the candidates are
re-scored in float32, and a rigorous bound on the bfloat16 error proves, row by row, that no sample left
out could enter the neighbour list; rows where it cannot be proved are recomputed in float32. The
result is therefore the same as with float32 products throughout.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse
from tqdm import tqdm

from mtmct_reid.errors import ReIDError

log = logging.getLogger(__name__)

#: What a score callback returns: one [rows, N] matrix, or several over the same samples.
ScoreRows = np.ndarray | tuple[np.ndarray, ...]

#: How many of the lowest approximate scores are re-scored to find a row's largest distance.
_APPROX_BOTTOM = 6
#: Pairs per call of a user's ``similarity_pairs``.
_PAIR_BATCH = 65536
# Temporaries are kept well below glibc's largest mmap threshold (32 MiB): bigger ones are fresh
# mappings every time, and first-touch page faults are slow on virtual machines.
#: Upper bound on (query, gallery, feature) triples expanded at once in the Jaccard step.
_JACCARD_TRIPLES = 262_144
#: Upper bound on the bytes of the float64 Jaccard accumulator of one query chunk.
_JACCARD_BYTES = 8 << 20
#: Rows per block of elementwise passes over the features.
_BLOCK_ROWS = 512


@contextlib.contextmanager
def _float32_products() -> Iterator[None]:
    """Full float32 matrix products for the duration (a caller may have allowed bfloat16 ones)."""
    import torch

    previous = torch.get_float32_matmul_precision()
    if previous != "highest":
        torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        if previous != "highest":
            torch.set_float32_matmul_precision(previous)


@contextlib.contextmanager
def _timed(phase: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    log.debug("re-ranking: %s took %.2f s", phase, time.perf_counter() - start)


def k_reciprocal_rerank(
    similarity_rows: Callable[[int, int], ScoreRows],
    num_query: int,
    num_total: int,
    *,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    chunk_size: int = 1024,
    progress: bool = True,
    similarity_pairs: Callable[[np.ndarray, np.ndarray], ScoreRows] | None = None,
) -> np.ndarray | list[np.ndarray]:
    """k-reciprocal re-ranking of a symmetric score matrix delivered in row chunks.

    Samples are ordered queries first, then gallery. Distances are derived from scores as in st-ReID:
    ``d = (2 - 2 * score) ** 2`` divided by the largest ``d`` of the row.

    Args:
        similarity_rows: ``similarity_rows(start, stop)`` returns rows ``start:stop`` of the
            (num_total x num_total) score matrix (higher = more similar): one float array
            [stop - start, num_total], or a tuple of such arrays (several score matrices over the same
            samples, e.g. visual and spatial-temporal fused, computed from one matrix product).
        num_query: number of query samples (the first rows).
        num_total: number of samples, queries plus gallery.
        k1: size of the reciprocal neighbourhood.
        k2: number of neighbours averaged by query expansion (1 disables it).
        lambda_value: weight of the original distance in the final blend (0..1).
        chunk_size: rows requested per call of ``similarity_rows``.
        progress: show tqdm progress bars.
        similarity_pairs: optional ``similarity_pairs(rows, cols)`` returning the scores of the given
            index pairs (same structure as ``similarity_rows``). A handful of sample pairs outside every
            neighbour list are needed for the encoding weights; without this callback the rows holding
            them are requested again from ``similarity_rows``.

    Returns:
        The re-ranked distances [num_query, num_total - num_query] float32 (lower = better), or a
        list of them, one per matrix, when the rows were tuples.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.random((50, 8)).astype(np.float32)
        >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
        >>> dist = k_reciprocal_rerank(lambda a, b: x[a:b] @ x.T, 10, 50, k1=5, k2=3, progress=False)
        >>> dist.shape
        (10, 40)
    """
    needed = _check_arguments(num_query, num_total, k1, k2, lambda_value, chunk_size)
    # A wide margin: every encoding pair missing from the lists costs a row requested again.
    stored = min(2 * needed, num_total)
    tables: list[_NeighbourTable] = []
    single = True
    with tqdm(
        total=num_total, desc="re-ranking: neighbours", unit="row", disable=not progress
    ) as bar:
        for start in range(0, num_total, chunk_size):
            stop = min(start + chunk_size, num_total)
            blocks, is_tuple = _score_blocks(similarity_rows(start, stop), start, stop, num_total)
            if not tables:
                single = not is_tuple
                tables = [_NeighbourTable(num_total, num_query, needed, stored) for _ in blocks]
            elif len(blocks) != len(tables):
                raise ReIDError(
                    f"similarity_rows({start}, {stop}) returned {len(blocks)} matrices, "
                    f"but earlier calls returned {len(tables)}"
                )
            rows = np.arange(start, stop)
            for table, block in zip(tables, blocks, strict=True):
                table.add_exact(rows, block)
            bar.update(stop - start)

    if similarity_pairs is not None:

        def fill(pair_lists: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
            return _scores_from_pairs(similarity_pairs, pair_lists, num_total)

    else:

        def fill(pair_lists: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
            return _scores_from_rows(similarity_rows, pair_lists, num_total, chunk_size)

    results = _encode_and_rank(tables, fill, k1, k2, lambda_value, progress)
    return results[0] if single else results


def rerank_features(
    query_features: np.ndarray,
    gallery_features: np.ndarray,
    *,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    chunk_size: int = 1024,
    progress: bool = True,
    approximate_search: bool | None = None,
) -> np.ndarray:
    """k-reciprocal re-ranking of the cosine similarities of L2-normalised features.

    Args:
        query_features: [Nq, D] query embeddings (normalised here).
        gallery_features: [Ng, D] gallery embeddings.
        k1: size of the reciprocal neighbourhood.
        k2: number of neighbours averaged by query expansion (1 disables it).
        lambda_value: weight of the original distance in the final blend (0..1).
        chunk_size: rows of the similarity matrix computed at once.
        progress: show tqdm progress bars.
        approximate_search: find the gallery rows' neighbour candidates with a bfloat16 product and
            prove them with an error bound (the result does not change). ``None`` chooses it when the CPU
            has native bfloat16 arithmetic and the problem is large enough to gain from it.

    Returns:
        The re-ranked distances [Nq, Ng] float32 (lower = better).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> q, g = rng.random((5, 16)), rng.random((40, 16))
        >>> rerank_features(q, g, k1=6, k2=3, progress=False).shape
        (5, 40)
    """
    import torch

    with _timed("normalising features"):
        features = _normalised_features(query_features, gallery_features)
    num_query = len(query_features)
    num_total = len(features)
    needed = _check_arguments(num_query, num_total, k1, k2, lambda_value, chunk_size)
    # A narrower margin than from score rows: each kept neighbour of a gallery row is re-scored in
    # float32, while a pair missing from the lists costs only one dot product.
    stored = min(needed + max(8, needed // 2), num_total)
    if approximate_search is None:
        approximate_search = num_total >= 4096 and _cpu_has_fast_bf16()
    table = _NeighbourTable(num_total, num_query, needed, stored)
    features_t = torch.from_numpy(features)
    if approximate_search:
        with _timed("bfloat16 copy and error bounds"):
            features_bf16 = features_t.to(torch.bfloat16)
            error_bound = _bf16_error_bounds(features, features_bf16)
    # Query rows are needed exactly anyway (their distances to the gallery are part of the result);
    # blocks never straddle the query/gallery boundary so each block takes one path.
    blocks = [(s, min(s + chunk_size, num_query)) for s in range(0, num_query, chunk_size)]
    blocks += [(s, min(s + chunk_size, num_total)) for s in range(num_query, num_total, chunk_size)]
    pending: list[np.ndarray] = []
    # Reused product buffers: a fresh [chunk, N] allocation per block is paid again in page faults.
    exact_buffer = torch.empty((min(chunk_size, num_total), num_total), dtype=torch.float32)
    approx_buffer = (
        torch.empty((min(chunk_size, num_total), num_total), dtype=torch.bfloat16)
        if approximate_search
        else None
    )

    def compute_exact(rows: np.ndarray) -> None:
        for start in range(0, len(rows), chunk_size):
            part = rows[start : start + chunk_size]
            out = exact_buffer[: len(part)]
            torch.mm(features_t.index_select(0, torch.from_numpy(part)), features_t.T, out=out)
            table.add_exact(part, out.numpy())

    seconds = {"float32 products": 0.0, "bfloat16 products": 0.0, "neighbour selection": 0.0}
    with (
        _float32_products(),
        tqdm(
            total=num_total, desc="re-ranking: neighbours", unit="row", disable=not progress
        ) as bar,
    ):
        for start, stop in blocks:
            rows = np.arange(start, stop)
            tic = time.perf_counter()
            if approximate_search and start >= num_query:
                approx = approx_buffer[: stop - start]
                torch.mm(features_bf16[start:stop], features_bf16.T, out=approx)
                toc = time.perf_counter()
                seconds["bfloat16 products"] += toc - tic
                failed = table.add_approximate(rows, approx, features, error_bound)
                if failed.size:
                    pending.append(failed)
                if sum(p.size for p in pending) >= chunk_size:
                    compute_exact(np.concatenate(pending))
                    pending.clear()
            else:
                out = exact_buffer[: stop - start]
                torch.mm(features_t[start:stop], features_t.T, out=out)
                toc = time.perf_counter()
                seconds["float32 products"] += toc - tic
                table.add_exact(rows, out.numpy())
            seconds["neighbour selection"] += time.perf_counter() - toc
            bar.update(stop - start)
        if pending:
            compute_exact(np.concatenate(pending))
    log.debug(
        "re-ranking: %s",
        ", ".join(f"{name} {value:.2f} s" for name, value in seconds.items()),
    )
    if approximate_search:
        log.debug(
            "re-ranking: %d of %d gallery rows needed an exact float32 row",
            table.exact_fallbacks,
            num_total - num_query,
        )

    def fill(pair_lists: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        return [_pair_dots(features, rows, cols) for rows, cols in pair_lists]

    return _encode_and_rank([table], fill, k1, k2, lambda_value, progress)[0]


# --------------------------------------------------------------------------------------------------
# Argument checks and inputs


def _check_arguments(
    num_query: int,
    num_total: int,
    k1: int,
    k2: int,
    lambda_value: float,
    chunk_size: int,
) -> int:
    """Validate the parameters; return how many nearest neighbours must be exactly ordered."""
    for name, value in (("num_query", num_query), ("num_total", num_total), ("k1", k1), ("k2", k2)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ReIDError(f"re-ranking: {name} must be an integer, got {value!r}")
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, (int, np.integer))
        or chunk_size < 1
    ):
        raise ReIDError(f"re-ranking: chunk_size must be a positive integer, got {chunk_size!r}")
    if num_query < 1:
        raise ReIDError(f"re-ranking: num_query must be at least 1, got {num_query}")
    if num_query >= num_total:
        raise ReIDError(
            f"re-ranking: num_query ({num_query}) must be smaller than num_total ({num_total}); "
            "the samples are the queries followed by at least one gallery sample"
        )
    if k1 < 1:
        raise ReIDError(f"re-ranking: k1 must be at least 1, got {k1}")
    if k1 + 1 > num_total:
        raise ReIDError(
            f"re-ranking: k1 + 1 = {k1 + 1} neighbours requested but there are only {num_total} "
            "samples; lower k1"
        )
    if k2 < 1 or k2 > num_total:
        raise ReIDError(f"re-ranking: k2 must be between 1 and {num_total} samples, got {k2}")
    if not (isinstance(lambda_value, (int, float, np.floating)) and 0.0 <= lambda_value <= 1.0):
        raise ReIDError(
            f"re-ranking: lambda_value must be a number in [0, 1], got {lambda_value!r}"
        )
    return max(k1 + 1, k2)


def _score_blocks(
    value: object, start: int, stop: int, num_total: int
) -> tuple[list[np.ndarray], bool]:
    """Check one answer of ``similarity_rows`` and return its matrices as float32 C arrays."""
    is_tuple = isinstance(value, (tuple, list))
    items = list(value) if is_tuple else [value]
    if not items:
        raise ReIDError(f"similarity_rows({start}, {stop}) returned an empty tuple")
    blocks = []
    for position, item in enumerate(items):
        where = f"similarity_rows({start}, {stop})" + (f"[{position}]" if is_tuple else "")
        array = np.asarray(item)
        if array.shape != (stop - start, num_total):
            raise ReIDError(
                f"{where} has shape {array.shape}, expected ({stop - start}, {num_total})"
            )
        if not np.issubdtype(array.dtype, np.number):
            raise ReIDError(f"{where} has dtype {array.dtype}, expected float scores")
        array = np.ascontiguousarray(array, dtype=np.float32)
        if not np.isfinite(array).all():
            raise ReIDError(f"{where} contains NaN or infinite scores")
        blocks.append(array)
    return blocks, is_tuple


def _normalised_features(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Stack query and gallery features and L2-normalise each row (float32)."""
    arrays = []
    for name, value in (("query_features", query), ("gallery_features", gallery)):
        array = np.asarray(value)
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] == 0:
            raise ReIDError(
                f"re-ranking: {name} has shape {array.shape}, expected [N, D] with N, D > 0"
            )
        if not np.issubdtype(array.dtype, np.number):
            raise ReIDError(f"re-ranking: {name} has dtype {array.dtype}, expected floats")
        arrays.append(array)
    if arrays[0].shape[1] != arrays[1].shape[1]:
        raise ReIDError(
            f"re-ranking: query_features have dimension {arrays[0].shape[1]} but gallery_features "
            f"have {arrays[1].shape[1]}"
        )
    features = np.concatenate(arrays, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", features, features))
    bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
    if bad.size:
        row = int(bad[0])
        side, index = ("query", row) if row < len(arrays[0]) else ("gallery", row - len(arrays[0]))
        raise ReIDError(
            f"re-ranking: {side}_features row {index} is zero or not finite; cosine similarity "
            "needs a non-zero finite vector"
        )
    features /= norms[:, None]
    return features


# --------------------------------------------------------------------------------------------------
# Distances and the neighbour table


def _squared_distance(scores: np.ndarray) -> np.ndarray:
    """``(2 - 2 * score) ** 2`` in float32, rounded exactly as the dense algorithm rounds it."""
    scores = np.asarray(scores, dtype=np.float32)
    return np.square(np.float32(2.0) - np.float32(2.0) * scores)


class _NeighbourTable:
    """What the encoding needs from one score matrix, filled row block by row block.

    ``index[i]`` holds the ``stored`` nearest samples of ``i`` by (normalised distance, index); the
    first ``needed`` are the exact head of the dense ``argsort`` row. ``sq_dist`` holds their
    un-normalised squared distances, ``row_max`` the normalisation of each row, and ``query_dist`` the
    normalised distances from query rows to gallery columns (the blend's second term, later the result).
    """

    def __init__(self, num_total: int, num_query: int, needed: int, stored: int) -> None:
        self.num_total = num_total
        self.num_query = num_query
        self.needed = needed
        self.stored = stored
        self.index = np.zeros((num_total, stored), dtype=np.int64)
        self.sq_dist = np.zeros((num_total, stored), dtype=np.float32)
        self.row_max = np.zeros(num_total, dtype=np.float32)
        self.query_dist = np.empty((num_query, num_total - num_query), dtype=np.float32)
        self.exact_fallbacks = 0

    def add_exact(self, rows: np.ndarray, scores: np.ndarray) -> None:
        """Take complete score rows ``scores[r]`` of samples ``rows[r]`` (float32 [b, N], C order)."""
        import torch

        # (2 - 2s)^2 is convex in s, so its largest value over a row sits at the row's extreme scores.
        row_max = np.maximum(
            _squared_distance(scores.min(axis=1)), _squared_distance(scores.max(axis=1))
        )
        _check_row_max(row_max, rows)
        take = min(self.stored + 1, self.num_total)
        top = torch.topk(torch.from_numpy(scores), take, dim=1)
        top_scores, top_index = top.values.numpy(), top.indices.numpy()
        sq = _squared_distance(top_scores)
        dist = sq / row_max[:, None]
        order = np.lexsort((top_index, dist), axis=1)
        top_index = np.take_along_axis(top_index, order, axis=1)
        sq = np.take_along_axis(sq, order, axis=1)
        dist = np.take_along_axis(dist, order, axis=1)
        if take < self.num_total:
            # Any sample outside the top ``take`` scores has a distance at least this large, as long
            # as that score is at most 1 (the distance falls as the score rises only up to 1).
            outside = _squared_distance(top_scores[:, -1]) / row_max
            unsure = np.flatnonzero(
                ~((dist[:, self.needed - 1] < outside) & (top_scores[:, -1] <= 1))
            )
        else:
            unsure = np.empty(0, dtype=np.int64)
        # Exact ties at the boundary, or scores above 1: sort the whole row like the dense algorithm.
        for r in unsure:
            full_sq = _squared_distance(scores[r])
            full_order = np.argsort(full_sq / row_max[r], kind="stable")[: self.stored]
            top_index[r, : self.stored] = full_order
            sq[r, : self.stored] = full_sq[full_order]
        self._store(rows, top_index[:, : self.stored], sq[:, : self.stored], row_max)
        for r in np.flatnonzero(rows < self.num_query):
            # Row by row into the result buffer: no [b, Ng] temporaries (fresh pages cost here).
            out = self.query_dist[rows[r]]
            np.multiply(scores[r, self.num_query :], np.float32(-2.0), out=out)
            out += np.float32(2.0)
            np.square(out, out=out)
            out /= row_max[r]

    def add_approximate(
        self,
        rows: np.ndarray,
        approx: object,
        features: np.ndarray,
        error_bound: np.ndarray,
    ) -> np.ndarray:
        """Take bfloat16 score rows of gallery samples; return the rows that need an exact pass.

        ``approx`` is the torch bfloat16 [b, N] product of the bfloat16-rounded features;
        ``error_bound[i]`` bounds |approximate score - float32 score| of row ``i`` before the product's
        own rounding to bfloat16, which is added here from the values.
        """
        import torch

        pending = np.arange(len(rows))
        take, bottom_take = self.stored + 1, _APPROX_BOTTOM
        # Two widening attempts; past that a float32 row is cheaper than gathering more candidates.
        for _ in range(2):
            if not pending.size or 2 * (take + bottom_take) > self.num_total:
                break
            sub = approx[torch.from_numpy(pending)] if pending.size < len(rows) else approx
            top = torch.topk(sub, take, dim=1)
            bottom = torch.topk(sub, bottom_take, dim=1, largest=False)
            top_approx = top.values.float().numpy()
            bottom_approx = bottom.values.float().numpy()
            top_index = top.indices.numpy()
            candidates = np.concatenate([top_index, bottom.indices.numpy()], axis=1)
            exact = _row_dots(features, rows[pending], candidates)
            smin, smax = exact.min(axis=1), exact.max(axis=1)
            eps = error_bound[rows[pending]]
            # Bounds on the float32 score of every sample outside the candidate sets.
            upper = top_approx[:, -1] + _bf16_half_ulp(top_approx[:, -1]) + eps
            lower = bottom_approx[:, -1] - _bf16_half_ulp(bottom_approx[:, -1]) - eps
            row_max = np.maximum(_squared_distance(smin), _squared_distance(smax))
            sq = _squared_distance(exact[:, :take])
            dist = sq / np.maximum(row_max, np.float32(np.finfo(np.float32).tiny))[:, None]
            order = np.lexsort((top_index, dist), axis=1)
            top_index = np.take_along_axis(top_index, order, axis=1)
            sq = np.take_along_axis(sq, order, axis=1)
            dist = np.take_along_axis(dist, order, axis=1)
            outside = _squared_distance(_float32_at_least(np.minimum(upper, 1.0))) / row_max
            proven = (
                (upper <= smax)
                & (lower >= smin)
                & (row_max > 0)
                & (dist[:, self.needed - 1] < outside)
            )
            done = pending[proven]
            self._store(
                rows[done],
                top_index[proven, : self.stored],
                sq[proven, : self.stored],
                row_max[proven],
            )
            pending = pending[~proven]
            take, bottom_take = 4 * take, 4 * bottom_take
        self.exact_fallbacks += pending.size
        return rows[pending]

    def _store(
        self, rows: np.ndarray, index: np.ndarray, sq: np.ndarray, row_max: np.ndarray
    ) -> None:
        self.index[rows] = index
        self.sq_dist[rows] = sq
        self.row_max[rows] = row_max

    def lookup(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Squared distances of pairs found in a neighbour list (either direction); and which were not."""
        n = self.num_total
        own = np.arange(n, dtype=np.int64)[:, None]
        keys = np.concatenate([(own * n + self.index).ravel(), (self.index * n + own).ravel()])
        values = np.concatenate([self.sq_dist.ravel(), self.sq_dist.ravel()])
        # Stable, with the row's own list first: a pair listed both ways takes the row's own score.
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        wanted = rows * n + cols
        position = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        found = keys[position] == wanted
        return np.where(found, values[position], np.float32(0)), ~found


def _check_row_max(row_max: np.ndarray, rows: np.ndarray) -> None:
    bad = np.flatnonzero(~(row_max > 0))
    if bad.size:
        raise ReIDError(
            f"re-ranking: every score of sample {int(rows[bad[0]])} equals 1 (all samples identical "
            "to it), so its distances cannot be normalised"
        )


# --------------------------------------------------------------------------------------------------
# bfloat16 candidate search


def _cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (otherwise a bfloat16 product is emulated, slow)."""
    if os.environ.get("MTMCT_REID_NO_BF16"):
        return False
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        return False
    return False


def _bf16_error_bounds(features: np.ndarray, features_bf16: object) -> np.ndarray:
    """Per row ``i``, a bound on |bf16 score(i, j) - float32 score(i, j)| valid for every ``j``.

    With ``x = x~ + e`` (``x~`` the bfloat16 rounding), ``x_i.x_j - x~_i.x~_j = e_i.x_j + x~_i.e_j``,
    bounded by Cauchy-Schwarz with ``|x~| <= |x| + |e|``; both products accumulate in float32, each
    within ``gamma_D |a| |b|`` of its real value. The product's final rounding to bfloat16 is added by
    the caller from the rounded values themselves.
    """
    dim = features.shape[1]
    num = len(features)
    x_norm = np.empty(num, dtype=np.float32)
    e_norm = np.empty(num, dtype=np.float32)
    for start in range(0, num, _BLOCK_ROWS):
        rows = slice(start, start + _BLOCK_ROWS)
        x = features[rows]
        e = (
            x - features_bf16[rows].float().numpy()
        )  # exact: the bits that bfloat16 rounding dropped
        x_norm[rows] = np.sqrt(np.einsum("ij,ij->i", x, x))
        e_norm[rows] = np.sqrt(np.einsum("ij,ij->i", e, e))
    unit = 2.0**-24
    gamma = dim * unit / (1 - dim * unit)
    # The norms were computed in float32: inflate them past their own rounding error.
    x_norm = x_norm.astype(np.float64) * (1 + 2 * gamma)
    e_norm = e_norm.astype(np.float64) * (1 + 2 * gamma)
    x_max, e_max = x_norm.max(), e_norm.max()
    xb_norm = x_norm + e_norm
    bound = e_norm * x_max + xb_norm * e_max + gamma * (xb_norm * (x_max + e_max) + x_norm * x_max)
    # Slack for products flushed to zero (denormals) by the bfloat16 kernels.
    return bound + dim * 2.0**-120


def _bf16_half_ulp(values: np.ndarray) -> np.ndarray:
    """Half the bfloat16 spacing at each (bfloat16-representable) value: its rounding error bound."""
    _, exponent = np.frexp(values.astype(np.float64))
    return np.ldexp(1.0, exponent - 9)


def _float32_at_least(values: np.ndarray) -> np.ndarray:
    """float32 values rounded up (never below the float64 input), so bounds stay bounds."""
    rounded = values.astype(np.float32)
    low = rounded.astype(np.float64) < values
    rounded[low] = np.nextafter(rounded[low], np.float32(np.inf))
    return rounded


def _row_dots(features: np.ndarray, rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """float32 scores of ``rows[r]`` with each of ``candidates[r]`` (``rows`` distinct), [b, c]."""
    pair_rows = np.repeat(rows, candidates.shape[1])
    return _pair_dots(features, pair_rows, candidates.reshape(-1)).reshape(candidates.shape)


def _num_threads() -> int:
    import torch

    return max(1, torch.get_num_threads())


def _pair_dots(features: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """float32 scores of the pairs (rows[p], cols[p]); equal rows consecutive (e.g. sorted)."""
    out = np.empty(len(rows), dtype=np.float32)
    if not len(rows):
        return out
    starts = np.flatnonzero(np.concatenate(([True], rows[1:] != rows[:-1])))
    stops = np.append(starts[1:], len(rows))

    def work(lo: int, hi: int) -> None:
        # One small gather + matrix-vector product per row: far cheaper than gathering a [p, D]
        # block, and numpy releases the GIL in both, so threads split the rows.
        for start, stop in zip(starts[lo:hi].tolist(), stops[lo:hi].tolist(), strict=True):
            np.matmul(features[cols[start:stop]], features[rows[start]], out=out[start:stop])

    threads = min(_num_threads(), max(1, len(starts) // 64))
    if threads == 1:
        work(0, len(starts))
        return out
    bounds = np.linspace(0, len(starts), threads + 1).astype(int)
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, bounds[:-1], bounds[1:]))
    return out


# --------------------------------------------------------------------------------------------------
# Scores of pairs outside the neighbour lists


def _scores_from_pairs(
    similarity_pairs: Callable[[np.ndarray, np.ndarray], ScoreRows],
    pair_lists: list[tuple[np.ndarray, np.ndarray]],
    num_total: int,
) -> list[np.ndarray]:
    keys = np.unique(np.concatenate([r * num_total + c for r, c in pair_lists]))
    if keys.size == 0:
        return [np.empty(0, np.float32) for _ in pair_lists]
    rows, cols = keys // num_total, keys % num_total
    parts: list[list[np.ndarray]] = [[] for _ in pair_lists]
    for start in range(0, len(keys), _PAIR_BATCH):
        stop = min(start + _PAIR_BATCH, len(keys))
        value = similarity_pairs(rows[start:stop], cols[start:stop])
        items = list(value) if isinstance(value, (tuple, list)) else [value]
        if len(items) != len(pair_lists):
            raise ReIDError(
                f"similarity_pairs returned {len(items)} score arrays, expected {len(pair_lists)} "
                "(one per matrix of similarity_rows)"
            )
        for m, item in enumerate(items):
            array = np.asarray(item, dtype=np.float32)
            if array.shape != (stop - start,):
                raise ReIDError(
                    f"similarity_pairs returned an array of shape {array.shape} for "
                    f"{stop - start} pairs, expected ({stop - start},)"
                )
            parts[m].append(array)
    out = []
    for m, (r, c) in enumerate(pair_lists):
        values = np.concatenate(parts[m])
        out.append(values[np.searchsorted(keys, r * num_total + c)])
    return out


def _scores_from_rows(
    similarity_rows: Callable[[int, int], ScoreRows],
    pair_lists: list[tuple[np.ndarray, np.ndarray]],
    num_total: int,
    chunk_size: int,
) -> list[np.ndarray]:
    """Scores of the given pairs by requesting again the (few) rows that hold them."""
    out = [np.empty(len(r), dtype=np.float32) for r, _ in pair_lists]
    needed_rows = np.unique(np.concatenate([r for r, _ in pair_lists]))
    if needed_rows.size == 0:
        return out
    log.info(
        "re-ranking: requesting %d score rows again for encoding weights "
        "(pass similarity_pairs to compute just the %d pairs)",
        needed_rows.size,
        sum(len(r) for r, _ in pair_lists),
    )
    for start, stop in _row_ranges(needed_rows, chunk_size):
        blocks, _ = _score_blocks(similarity_rows(start, stop), start, stop, num_total)
        for m, (rows, cols) in enumerate(pair_lists):
            lo, hi = np.searchsorted(rows, [start, stop])
            out[m][lo:hi] = blocks[m][rows[lo:hi] - start, cols[lo:hi]]
    return out


def _row_ranges(rows: np.ndarray, max_length: int, max_gap: int = 16) -> list[tuple[int, int]]:
    """Cover sorted row indices with [start, stop) ranges, merging near neighbours."""
    ranges: list[tuple[int, int]] = []
    start = prev = int(rows[0])
    for row in rows[1:].tolist():
        if row - prev > max_gap or row + 1 - start > max_length:
            ranges.append((start, prev + 1))
            start = row
        prev = row
    ranges.append((start, prev + 1))
    return ranges


# --------------------------------------------------------------------------------------------------
# k-reciprocal encoding, query expansion and the Jaccard distance


def _encode_and_rank(
    tables: Sequence[_NeighbourTable],
    fill: Callable[[list[tuple[np.ndarray, np.ndarray]]], list[np.ndarray]],
    k1: int,
    k2: int,
    lambda_value: float,
    progress: bool,
) -> list[np.ndarray]:
    expansions = []
    with _timed("reciprocal expansion"):
        for table in tables:
            rows, cols = _expansion_pairs(table.index, k1)
            sq, missing = table.lookup(rows, cols)
            expansions.append((rows, cols, sq, missing))
    missing_pairs = [(r[m], c[m]) for r, c, _, m in expansions]
    num_missing = sum(len(r) for r, _ in missing_pairs)
    if num_missing:
        with _timed(f"scores of {num_missing} encoding pairs outside the neighbour lists"):
            scores = fill(missing_pairs)
            for (_, _, sq, missing), values in zip(expansions, scores, strict=True):
                sq[missing] = _squared_distance(values)
    results = []
    for table, (rows, cols, sq, _) in zip(tables, expansions, strict=True):
        with _timed("encoding and query expansion"):
            encoding = _encoding(table, rows, cols, sq)
            if k2 != 1:
                encoding = _query_expansion(encoding, table.index[:, :k2])
        with _timed("jaccard distances"):
            _blend_jaccard(table, encoding, lambda_value, progress)
        results.append(table.query_dist)
    return results


def _contains(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    position = np.minimum(np.searchsorted(sorted_keys, keys), len(sorted_keys) - 1)
    return sorted_keys[position] == keys


def _reciprocal(neighbours: np.ndarray) -> np.ndarray:
    """``mask[i, p]``: sample ``i`` is itself among the neighbours of its neighbour ``neighbours[i, p]``."""
    n = len(neighbours)
    own = np.arange(n, dtype=np.int64)[:, None]
    keys = np.sort((own * n + neighbours).ravel())
    return _contains(keys, neighbours * n + own)


def _expansion_pairs(
    index: np.ndarray, k1: int, block: int = 2048
) -> tuple[np.ndarray, np.ndarray]:
    """(row, column) of every non-zero of the encoding: each sample's expanded reciprocal set.

    R(i): the k1-reciprocal neighbours of i. For each c in R(i), its round(k1/2)-reciprocal set R'(c)
    joins the expansion when more than 2/3 of R'(c) lies in R(i). Pairs are sorted by (row, column).
    """
    n = len(index)
    forward = index[:, : k1 + 1]
    half = index[:, : int(np.around(k1 / 2)) + 1]
    reciprocal = _reciprocal(forward)
    half_reciprocal = _reciprocal(half)
    half_size = half_reciprocal.sum(axis=1)
    own = np.arange(n, dtype=np.int64)[:, None]
    reciprocal_keys = np.sort((own * n + forward)[reciprocal])
    parts = []
    for start in range(0, n, block):
        stop = min(start + block, n)
        mask = reciprocal[start:stop]
        pair_row = np.nonzero(mask)[0] + start
        pair_candidate = forward[start:stop][mask]
        candidate_set = half[pair_candidate]
        candidate_mask = half_reciprocal[pair_candidate]
        shared = _contains(reciprocal_keys, pair_row[:, None] * n + candidate_set) & candidate_mask
        # Same float expression as the dense code, so that borderline counts decide alike.
        joins = shared.sum(axis=1) > 2.0 / 3 * half_size[pair_candidate]
        extra = (pair_row[joins, None] * n + candidate_set[joins])[candidate_mask[joins]]
        own_keys = (own[start:stop] * n + forward[start:stop])[mask]
        parts.append(np.unique(np.concatenate([own_keys, extra])))
    keys = np.concatenate(parts)
    return keys // n, keys % n


def _encoding(
    table: _NeighbourTable, rows: np.ndarray, cols: np.ndarray, sq: np.ndarray
) -> sparse.csr_matrix:
    """The sparse encoding V: Gaussian-kernel weights over each row's expansion set, summing to 1."""
    n = table.num_total
    dist = sq / table.row_max[rows]
    weight = np.exp(-dist)
    totals = np.bincount(rows, weights=weight, minlength=n).astype(np.float32)
    values = weight / totals[rows]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))])
    return sparse.csr_matrix((values, cols, indptr), shape=(n, n))


def _query_expansion(encoding: sparse.csr_matrix, nearest: np.ndarray) -> sparse.csr_matrix:
    """Each row replaced by the mean of the rows of its ``k2`` nearest samples (itself included)."""
    n, k2 = nearest.shape
    averaging = sparse.csr_matrix(
        (np.ones(n * k2, dtype=np.float32), nearest.ravel(), np.arange(0, n * k2 + 1, k2)),
        shape=(n, n),
    )
    expanded = (averaging @ encoding).tocsr()
    expanded.data /= np.float32(k2)
    return expanded


def _blend_jaccard(
    table: _NeighbourTable, encoding: sparse.csr_matrix, lambda_value: float, progress: bool
) -> None:
    """Turn ``table.query_dist`` (original distances) into the final blend with the Jaccard distance.

    For query q and gallery g the dense code sums min(V[q, f], V[g, f]) over the features f where both
    are non-zero; here the pairs come from V's rows (query side) and columns (gallery side).
    """
    num_query = table.num_query
    num_gallery = table.num_total - num_query
    query_side = encoding[:num_query]
    gallery_side = encoding[num_query:].tocsc()
    column_count = np.diff(gallery_side.indptr)
    triples = np.bincount(
        np.repeat(np.arange(num_query), np.diff(query_side.indptr)),
        weights=column_count[query_side.indices],
        minlength=num_query,
    )
    max_rows = max(1, _JACCARD_BYTES // (8 * num_gallery))
    chunks = []
    start = 0
    while start < num_query:
        stop = start + 1
        budget = triples[start]
        while (
            stop < num_query
            and stop - start < max_rows
            and budget + triples[stop] <= _JACCARD_TRIPLES
        ):
            budget += triples[stop]
            stop += 1
        chunks.append((start, stop))
        start = stop
    for start, stop in tqdm(chunks, desc="re-ranking: jaccard", unit="chunk", disable=not progress):
        shared = _shared_minimum_sums(query_side[start:stop], gallery_side, num_gallery)
        jaccard = np.float32(1.0) - shared / (np.float32(2.0) - shared)
        out = table.query_dist[start:stop]
        out *= np.float32(lambda_value)
        out += jaccard * np.float32(1 - lambda_value)


def _shared_minimum_sums(
    query_rows: sparse.csr_matrix, gallery_columns: sparse.csc_matrix, num_gallery: int
) -> np.ndarray:
    """``out[q, g] = sum_f min(V[q, f], V[g, f])`` over features non-zero in both (float32 [b, Ng])."""
    num_rows = query_rows.shape[0]
    features = query_rows.indices
    starts = gallery_columns.indptr[features].astype(np.int64)
    counts = gallery_columns.indptr[features + 1].astype(np.int64) - starts
    total = int(counts.sum())
    if total == 0:
        return np.zeros((num_rows, num_gallery), dtype=np.float32)
    # Positions of every gallery entry of every query feature, as one flat ragged range.
    first = np.cumsum(counts) - counts
    positions = np.repeat(starts - first, counts) + np.arange(total)
    gallery = gallery_columns.indices[positions]
    minimum = np.minimum(np.repeat(query_rows.data, counts), gallery_columns.data[positions])
    query = np.repeat(np.repeat(np.arange(num_rows), np.diff(query_rows.indptr)), counts)
    sums = np.bincount(
        query * num_gallery + gallery, weights=minimum, minlength=num_rows * num_gallery
    )
    return sums.reshape(num_rows, num_gallery).astype(np.float32)


__all__ = ["k_reciprocal_rerank", "rerank_features", "ScoreRows"]

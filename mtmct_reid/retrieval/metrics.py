"""Ranking metrics of re-identification: CMC, mAP and mINP with the Market-1501 junk rule.

For each query, the gallery entries with its id and its camera, and every entry with id ``-1``, are junk
(removed from the ranking); distractors (id ``0``) stay as non-matches; the good entries are those with
its id from another camera. A query without a good entry is skipped (``standard``) or counted as a miss
(``streid``, as the st-ReID code divides by all queries). Queries with id ``<= 0`` never have a good
entry: distractors and junk are never a true match.

Ranking is by descending score, ties broken by gallery index (as a stable sort would). Only the ranks of
the good entries are needed, and the rank of a good entry is one plus the number of valid entries that
score higher. So each chunk of rows is copied with its junk set to ``-inf`` and sorted by value (a SIMD
sort of floats, no argsort), and every good entry finds its rank with a binary search in its sorted
row. Entries tied with a good entry are ordered by gallery index in a separate exact pass over the few
rows where such ties occur. Memory is O(chunk x gallery).

Two protocols:

- ``standard``: AP is the mean of the precision at each good hit (non-interpolated); CMC, mAP and mINP
  are averaged over the queries that have a good entry.
- ``streid``: AP is the trapezoid rule of the Market-1501 / st-ReID evaluation code (the mean of the
  precision before and after each hit); CMC, mAP and mINP are divided by all queries.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from mtmct_reid._runtime import usable_cores
from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval.protocol import good_and_same_camera_pairs, junk_columns

# Which queries can be evaluated is the protocol's rule; importable from here as it always was.
from mtmct_reid.retrieval.protocol import valid_query_mask as valid_query_mask
from mtmct_reid.validation import as_int, positive_int

log = logging.getLogger(__name__)

PROTOCOLS = ("standard", "streid")
#: Query rows ranked at once by :func:`evaluate_scores` (a working copy of chunk x gallery scores).
DEFAULT_CHUNK_SIZE = 512

NO_VALID_QUERY_HINT = (
    "a gallery image counts as a match only when it shows the query's person (id > 0) from ANOTHER "
    "camera (same-id same-camera images and id -1 are ignored); check that the camera ids are set "
    "(a dataset without camera ids puts every image in one camera) and that query ids occur in the "
    "gallery"
)


@dataclass(frozen=True)
class RankingResult:
    """CMC, mAP and mINP of a set of queries (fractions in [0, 1]).

    Args:
        mAP: mean average precision.
        cmc: [max_rank] cumulative matching characteristic; ``cmc[k - 1]`` is rank-k accuracy.
        mINP: mean inverse negative penalty (number of good entries / rank of the hardest one).
        num_queries: queries evaluated, including those without a valid match.
        num_valid: queries with at least one valid match.

    Example:
        >>> r = RankingResult(mAP=0.5, cmc=np.linspace(0.6, 1, 10), mINP=0.2, num_queries=4, num_valid=4)
        >>> round(r.R1, 2), r.as_dict()["queries"]
        (0.6, 4)
    """

    mAP: float
    cmc: np.ndarray
    mINP: float
    num_queries: int
    num_valid: int

    @property
    def R1(self) -> float:
        return float(self.cmc[0])

    @property
    def R5(self) -> float:
        return float(self.cmc[4])

    @property
    def R10(self) -> float:
        return float(self.cmc[9])

    def as_dict(self) -> dict[str, float | int]:
        """The figures of the evaluation JSON: mAP, R1, R5, R10, mINP (fractions) and query count."""
        return {
            "mAP": float(self.mAP),
            "R1": self.R1,
            "R5": self.R5,
            "R10": self.R10,
            "mINP": float(self.mINP),
            "queries": int(self.num_queries),
        }


class RetrievalEvaluator:
    """Accumulates ranking metrics over chunks of query rows.

    Args:
        protocol: ``"standard"`` (non-interpolated AP, averaged over queries with a valid match) or
            ``"streid"`` (trapezoid AP, averaged over all queries, as the st-ReID code reports).
        max_rank: length of the CMC curve (at least 10, so that R10 exists).
        threads: threads that rank large chunks in row blocks (default: the usable cores, at most 8).

    Example:
        >>> scores = np.array([[0.9, 0.2, 0.5], [0.1, 0.8, 0.3]])
        >>> evaluator = RetrievalEvaluator()
        >>> evaluator.add(scores, np.array([1, 2]), np.array([1, 1]), np.array([1, 2, 2]),
        ...               np.array([2, 2, 2]))
        >>> result = evaluator.compute()
        >>> result.R1, result.mAP
        (1.0, 1.0)
    """

    def __init__(
        self, protocol: str = "standard", max_rank: int = 50, threads: int | None = None
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ReIDError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
        self.protocol = protocol
        self.max_rank = as_int("max_rank (R10 is reported)", max_rank, minimum=10)
        self.threads = min(usable_cores(), 8) if threads is None else max(1, int(threads))
        self.reset()

    def reset(self) -> None:
        """Forget every query added so far."""
        self._cmc_hits = np.zeros(self.max_rank, dtype=np.int64)
        self._ap_sum = 0.0
        self._inp_sum = 0.0
        self._num_queries = 0
        self._num_valid = 0

    @property
    def num_queries(self) -> int:
        return self._num_queries

    @property
    def num_valid(self) -> int:
        return self._num_valid

    def add(
        self,
        scores: np.ndarray,
        query_pids: np.ndarray,
        query_cams: np.ndarray,
        gallery_pids: np.ndarray,
        gallery_cams: np.ndarray,
    ) -> None:
        """Rank a chunk of query rows against the gallery and accumulate their metrics.

        Args:
            scores: [q, G] scores of these queries against the whole gallery, higher = better (pass
                ``-distance`` for distances). Not modified.
            query_pids: [q] ids of these queries.
            query_cams: [q] cameras of these queries.
            gallery_pids: [G] gallery ids (``-1`` junk, ``0`` distractor).
            gallery_cams: [G] gallery cameras.
        """
        scores, q_pids, q_cams, g_pids, g_cams = _check_inputs(
            scores, query_pids, query_cams, gallery_pids, gallery_cams
        )
        num_rows = scores.shape[0]
        if num_rows == 0:
            return
        ranks, good_rows = good_ranks(scores, q_pids, q_cams, g_pids, g_cams, threads=self.threads)
        ap, inp, first = _per_query(ranks, good_rows, num_rows, self.protocol)
        valid = first > 0
        hits = first[valid & (first <= self.max_rank)]
        self._cmc_hits += np.cumsum(np.bincount(hits - 1, minlength=self.max_rank))
        self._ap_sum += float(ap.sum())
        self._inp_sum += float(inp.sum())
        self._num_queries += num_rows
        self._num_valid += int(valid.sum())

    def compute(self) -> RankingResult:
        """The metrics of every query added so far.

        Raises:
            ReIDError: when no query was added, or none has a valid match.
        """
        if self._num_queries == 0:
            raise ReIDError("no queries to evaluate")
        if self._num_valid == 0:
            raise ReIDError(
                f"none of the {self._num_queries} queries has a valid match: {NO_VALID_QUERY_HINT}"
            )
        denominator = self._num_valid if self.protocol == "standard" else self._num_queries
        return RankingResult(
            mAP=self._ap_sum / denominator,
            cmc=self._cmc_hits / denominator,
            mINP=self._inp_sum / denominator,
            num_queries=self._num_queries,
            num_valid=self._num_valid,
        )


def evaluate_scores(
    scores: np.ndarray,
    query_pids: np.ndarray,
    query_cams: np.ndarray,
    gallery_pids: np.ndarray,
    gallery_cams: np.ndarray,
    protocol: str = "standard",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    max_rank: int = 50,
    threads: int | None = None,
) -> RankingResult:
    """CMC, mAP and mINP of a full [Q, G] score matrix (higher = better), in chunks of query rows.

    Args:
        scores: [Q, G] scores (pass ``-distance`` for distances).
        query_pids: [Q] query ids.
        query_cams: [Q] query cameras.
        gallery_pids: [G] gallery ids (``-1`` junk, ``0`` distractor).
        gallery_cams: [G] gallery cameras.
        protocol: ``"standard"`` or ``"streid"`` (see :class:`RetrievalEvaluator`).
        chunk_size: query rows ranked at once (memory is O(chunk_size x G)).
        max_rank: length of the CMC curve.
        threads: see :class:`RetrievalEvaluator`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> scores = rng.random((6, 20))
        >>> pids, cams = rng.integers(1, 4, 20), rng.integers(1, 3, 20)
        >>> result = evaluate_scores(scores, pids[:6], cams[:6] % 2 + 1, pids, cams)
        >>> 0.0 <= result.mAP <= 1.0
        True
    """
    chunk_size = positive_int("chunk_size", chunk_size)
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ReIDError(f"scores have shape {scores.shape}, expected 2-D [queries, gallery]")
    query_pids, query_cams = np.asarray(query_pids), np.asarray(query_cams)
    evaluator = RetrievalEvaluator(protocol=protocol, max_rank=max_rank, threads=threads)
    for start in range(0, max(scores.shape[0], 1), chunk_size):
        stop = start + chunk_size
        evaluator.add(
            scores[start:stop],
            query_pids[start:stop],
            query_cams[start:stop],
            gallery_pids,
            gallery_cams,
        )
    return evaluator.compute()


def good_ranks(
    scores: np.ndarray,
    query_pids: np.ndarray,
    query_cams: np.ndarray,
    gallery_pids: np.ndarray,
    gallery_cams: np.ndarray,
    *,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """The rank (1-based, junk removed) of every good gallery entry of every query row.

    Args:
        scores: [q, G] scores, higher = better.
        query_pids: [q] query ids.
        query_cams: [q] query cameras.
        gallery_pids: [G] gallery ids.
        gallery_cams: [G] gallery cameras.

        threads: threads counting row blocks of large chunks.

    Returns:
        ``(ranks, rows)``: int64 arrays, one entry per good (query, gallery) pair, grouped by query row
        in increasing order; within a row the ranks are increasing.

    Example:
        >>> ranks, rows = good_ranks(np.array([[0.1, 0.9, 0.5]]), np.array([7]), np.array([1]),
        ...                          np.array([7, -1, 7]), np.array([2, 2, 3]))
        >>> ranks.tolist(), rows.tolist()
        ([1, 2], [0, 0])
    """
    num_rows, num_gallery = scores.shape
    (good_rows, good_cols), (junk_rows, junk_cols) = good_and_same_camera_pairs(
        query_pids, query_cams, gallery_pids, gallery_cams
    )

    # float32 stays float32 (half the memory traffic); integers and half floats become float64.
    work_dtype = np.float32 if scores.dtype == np.float32 else np.float64
    work = np.array(scores, dtype=work_dtype, order="C", copy=True)
    nan_rows = np.flatnonzero(np.isnan(work).any(axis=1))
    if nan_rows.size:
        raise ReIDError(f"scores contain NaN (first in query row {nan_rows[0]} of this chunk)")
    work[:, junk_columns(gallery_pids)] = -np.inf
    work[junk_rows, junk_cols] = -np.inf

    good_scores = scores[good_rows, good_cols].astype(work_dtype)
    greater, equal = _greater_and_equal(work, good_rows, good_scores, threads)
    ranks = greater + 1
    # A good entry equal to another entry of its row is tied with it (junk at -inf included):
    # the valid entries of equal score and lower gallery index come before it.
    tied = np.flatnonzero(equal > 1)
    if tied.size:
        ranks[tied] += _tied_before(
            scores, gallery_pids, junk_rows, junk_cols, good_rows[tied], good_cols[tied]
        )

    order = np.lexsort((ranks, good_rows))
    return ranks[order], good_rows[order]


def _greater_and_equal(
    work: np.ndarray, rows: np.ndarray, values: np.ndarray, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """For each (row, value): how many entries of ``work[row]`` are greater, and how many equal.

    ``rows`` must be non-decreasing. Large chunks are cut into row blocks counted on ``threads``
    threads: numpy releases the GIL in the comparisons and sorts that take the time.
    """
    workers = min(threads, work.shape[0])
    if workers < 2 or work.size < PARALLEL_MIN_ELEMENTS:
        return _count_block(work, rows, values)
    from concurrent.futures import ThreadPoolExecutor

    bounds = np.linspace(0, work.shape[0], workers + 1).astype(np.int64)
    cuts = np.searchsorted(rows, bounds)

    def block(i: int) -> tuple[np.ndarray, np.ndarray]:
        part = slice(cuts[i], cuts[i + 1])
        return _count_block(work[bounds[i] : bounds[i + 1]], rows[part] - bounds[i], values[part])

    with ThreadPoolExecutor(workers) as pool:
        counted = list(pool.map(block, range(workers)))
    return (
        np.concatenate([greater for greater, _ in counted]),
        np.concatenate([equal for _, equal in counted]),
    )


def _count_block(
    work: np.ndarray, rows: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_greater_and_equal` of one block, in the calling thread.

    Only entries at least as high as the lowest good score of their row can be greater or equal,
    and on real rankings they are a small part of each row: those are gathered and sorted by (row,
    value), which costs far less than sorting every row. When they are not few (a random ranking),
    or the scores are not float32, the rows are sorted instead.
    """
    num_rows, width = work.shape
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    threshold = np.full(num_rows, np.nan, dtype=work.dtype)
    np.fmin.at(threshold, rows, values)
    candidates = work >= threshold[:, None]  # NaN threshold (no good entry): nothing
    num_candidates = int(np.count_nonzero(candidates))
    few = num_candidates <= work.size // _CANDIDATE_FRACTION
    if not few or work.dtype != np.float32:  # the keys below order float32 values
        # Said, for whoever profiles a slow evaluation: this is the costly path.
        log.debug(
            "ranking %d rows: whole rows sorted (%s, %d candidate entries of %d)",
            num_rows,
            work.dtype,
            num_candidates,
            work.size,
        )
        work.sort(axis=1)
        lower = _searchsorted_rows(work, rows, values, side="left")
        upper = _searchsorted_rows(work, rows, values, side="right")
        return width - upper, upper - lower
    cand_rows, cand_cols = np.nonzero(candidates)
    # (row, value) as one integer whose order is that of the rows, then of the values: sorting the
    # keys sorts each row's candidates, and equal keys are equal scores.
    keys = np.sort(_row_value_keys(cand_rows, work[cand_rows, cand_cols]))
    own = _row_value_keys(rows, values)
    lower = np.searchsorted(keys, own, side="left")
    upper = np.searchsorted(keys, own, side="right")
    next_row = _row_value_keys(rows + 1, np.full(len(rows), -np.inf, dtype=np.float32))
    return np.searchsorted(keys, next_row) - upper, upper - lower


def _row_value_keys(rows: np.ndarray, values: np.ndarray) -> np.ndarray:
    """uint64 keys ordered by row, then by float32 value (exactly; -0.0 equals 0.0)."""
    bits = (values.astype(np.float32) + np.float32(0.0)).view(np.uint32)
    negative = (bits >> np.uint32(31)).astype(bool)
    ordered = np.where(negative, ~bits, bits | np.uint32(1 << 31))
    return (rows.astype(np.uint64) << np.uint64(32)) | ordered.astype(np.uint64)


#: Above one candidate in this many entries, :func:`_count_block` sorts whole rows.
_CANDIDATE_FRACTION = 4
#: Below this many scores a chunk is counted in the calling thread (threads would cost more); at
#: or above it, in row blocks on the evaluator's ``threads``.
PARALLEL_MIN_ELEMENTS = 1 << 20


def _check_inputs(
    scores: np.ndarray,
    query_pids: np.ndarray,
    query_cams: np.ndarray,
    gallery_pids: np.ndarray,
    gallery_cams: np.ndarray,
) -> tuple[np.ndarray, ...]:
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ReIDError(f"scores have shape {scores.shape}, expected 2-D [queries, gallery]")
    if not (np.issubdtype(scores.dtype, np.floating) or np.issubdtype(scores.dtype, np.integer)):
        raise ReIDError(f"scores have dtype {scores.dtype}, expected numbers")
    num_rows, num_gallery = scores.shape
    labels = {}
    for name, value, length in (
        ("query_pids", query_pids, num_rows),
        ("query_cams", query_cams, num_rows),
        ("gallery_pids", gallery_pids, num_gallery),
        ("gallery_cams", gallery_cams, num_gallery),
    ):
        array = np.asarray(value)
        if array.shape != (length,):
            raise ReIDError(
                f"{name} has shape {array.shape}, expected [{length}] to match scores {scores.shape}"
            )
        if not np.issubdtype(array.dtype, np.integer) and not (
            np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0)
        ):
            raise ReIDError(f"{name} has dtype {array.dtype}, expected integers")
        labels[name] = array.astype(np.int64, copy=False)
    if num_gallery == 0:
        raise ReIDError("the gallery is empty; there is nothing to rank")
    return (
        scores,
        labels["query_pids"],
        labels["query_cams"],
        labels["gallery_pids"],
        labels["gallery_cams"],
    )


def _searchsorted_rows(
    sorted_rows: np.ndarray, rows: np.ndarray, values: np.ndarray, side: str
) -> np.ndarray:
    """``np.searchsorted(sorted_rows[r], v, side)`` for many (r, v) pairs at once (binary search)."""
    width = sorted_rows.shape[1]
    flat = sorted_rows.reshape(-1)
    base = rows * width
    lo = np.zeros(len(rows), dtype=np.int64)
    hi = np.full(len(rows), width, dtype=np.int64)
    for _ in range(int(width).bit_length()):
        mid = (lo + hi) >> 1
        probe = flat[base + np.minimum(mid, width - 1)]
        go_right = (probe < values) if side == "left" else (probe <= values)
        active = lo < hi
        lo = np.where(active & go_right, mid + 1, lo)
        hi = np.where(active & ~go_right, mid, hi)
    return lo


def _tied_before(
    scores: np.ndarray,
    gallery_pids: np.ndarray,
    junk_rows: np.ndarray,
    junk_cols: np.ndarray,
    rows: np.ndarray,
    cols: np.ndarray,
) -> np.ndarray:
    """For good entries (rows, cols): how many valid entries of the same row have an equal score and a
    lower gallery index."""
    global_valid = ~junk_columns(gallery_pids)
    before = np.empty(len(rows), dtype=np.int64)
    boundaries = np.flatnonzero(np.diff(rows)) + 1
    for members in np.split(np.arange(len(rows)), boundaries):
        row = int(rows[members[0]])
        row_scores = scores[row]
        valid = global_valid.copy()
        valid[junk_cols[junk_rows == row]] = False
        targets = row_scores[cols[members]]
        candidates = np.flatnonzero(np.isin(row_scores, targets) & valid)
        values = row_scores[candidates]
        # Order candidates by (score, gallery index): a good entry's offset inside its score group is
        # the number of tied valid entries before it.
        order = np.lexsort((candidates, values))
        position = np.empty(len(order), dtype=np.int64)
        position[order] = np.arange(len(order))
        own = position[np.searchsorted(candidates, cols[members])]
        group_start = np.searchsorted(values[order], targets, side="left")
        before[members] = own - group_start
    return before


def _per_query(
    ranks: np.ndarray, rows: np.ndarray, num_rows: int, protocol: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-query AP, INP and first good rank (0 for a query without good entries)."""
    num_good = np.bincount(rows, minlength=num_rows)
    starts = np.cumsum(num_good) - num_good
    hit_number = np.arange(len(ranks)) - starts[rows] + 1  # i-th good hit of its query
    precision = hit_number / ranks
    if protocol == "streid":
        before = np.where(ranks == 1, 1.0, (hit_number - 1) / np.maximum(ranks - 1, 1))
        precision = (before + precision) / 2
    valid = num_good > 0
    ap = np.zeros(num_rows)
    ap[valid] = np.bincount(rows, weights=precision, minlength=num_rows)[valid] / num_good[valid]
    first = np.zeros(num_rows, dtype=np.int64)
    first[valid] = ranks[starts[valid]]
    inp = np.zeros(num_rows)
    inp[valid] = num_good[valid] / ranks[starts[valid] + num_good[valid] - 1]
    return ap, inp, first

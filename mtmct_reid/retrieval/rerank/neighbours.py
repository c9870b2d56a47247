"""The part of the (query + gallery)^2 distance matrix that re-ranking reads: each row's nearest samples.

Distances are st-ReID's: ``d = 2 - 2 * score`` (for unit features, the squared Euclidean distance),
each row divided by its largest value. The classic code divides each *column* by its maximum and
transposes, which is the same for the symmetric score matrices used here.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval.rerank.bf16 import float32_at_least

#: How many of the lowest approximate scores are re-scored to find a row's largest distance.
APPROX_BOTTOM = 6

#: ``exact(rows, candidates)``: float32 [b, c] exact scores of ``rows[r]`` with ``candidates[r]``.
ExactScores = Callable[[np.ndarray, np.ndarray], np.ndarray]
#: ``bound(values, rows)``: float64 [b] bound on the exact score of any sample of row ``rows[r]``
#: whose approximate score is at most (upper bound) or at least (lower bound) ``values[r]``.
ScoreBound = Callable[[np.ndarray, np.ndarray], np.ndarray]


def distance(scores: np.ndarray) -> np.ndarray:
    """``2 - 2 * score`` in float32, rounded exactly as the dense algorithm rounds it.

    Example:
        >>> distance(np.array([1.0, 0.5, -1.0]))
        array([0., 1., 4.], dtype=float32)
    """
    scores = np.asarray(scores, dtype=np.float32)
    return np.float32(2.0) - np.float32(2.0) * scores


class NeighbourTable:
    """What the encoding needs from one score matrix, filled row block by row block.

    ``index[i]`` holds the ``stored`` nearest samples of ``i`` by (normalised distance, index); the
    first ``needed`` are the exact head of the dense ``argsort`` row (ties broken by index).
    ``raw_dist`` holds their distances before normalisation, ``row_max`` the normalisation of each row,
    and ``query_gallery`` the exact scores of the query rows against the gallery (the encoding turns
    them into the blend's second term, then the result, in place).

    Args:
        num_total: samples, queries first.
        num_query: query samples.
        needed: nearest neighbours that must be exactly ordered.
        stored: neighbours kept per row (``needed`` plus a margin that saves encoding look-ups).

    Example:
        >>> table = NeighbourTable(4, 1, 2, 3)
        >>> scores = np.array([[1, .5, .2, 0], [.5, 1, .1, .3]], np.float32)
        >>> table.add_exact(np.array([0, 1]), scores)
        >>> table.index[:2].tolist()
        [[0, 1, 2], [1, 0, 3]]
    """

    def __init__(self, num_total: int, num_query: int, needed: int, stored: int) -> None:
        self.num_total = num_total
        self.num_query = num_query
        self.needed = needed
        self.stored = stored
        self.index = np.zeros((num_total, stored), dtype=np.int64)
        self.raw_dist = np.zeros((num_total, stored), dtype=np.float32)
        self.row_max = np.zeros(num_total, dtype=np.float32)
        self.query_gallery = np.empty((num_query, num_total - num_query), dtype=np.float32)
        #: Rows whose approximate candidates could not be proven and were scored in full.
        self.exact_fallbacks = 0

    def add_exact(self, rows: np.ndarray, scores: np.ndarray) -> None:
        """Take complete score rows ``scores[r]`` of samples ``rows[r]`` (float32 [b, N], C order)."""
        import torch

        # d = 2 - 2s falls as s rises (also after float32 rounding): the row's largest distance is
        # that of its smallest score.
        row_max = distance(scores.min(axis=1))
        check_row_max(row_max, rows)
        take = min(self.stored + 1, self.num_total)
        top = torch.topk(torch.from_numpy(scores), take, dim=1)
        top_scores, top_index = top.values.numpy(), top.indices.numpy()
        raw = distance(top_scores)
        dist = raw / row_max[:, None]
        order = np.lexsort((top_index, dist), axis=1)
        top_index = np.take_along_axis(top_index, order, axis=1)
        raw = np.take_along_axis(raw, order, axis=1)
        dist = np.take_along_axis(dist, order, axis=1)
        if take < self.num_total:
            # Any sample outside the top ``take`` scores is at least this far.
            outside = distance(top_scores[:, -1]) / row_max
            unsure = np.flatnonzero(~(dist[:, self.needed - 1] < outside))
        else:
            unsure = np.empty(0, dtype=np.int64)
        # Exact ties at the boundary: sort the whole row like the dense algorithm.
        for r in unsure:
            full_raw = distance(scores[r])
            full_order = np.argsort(full_raw / row_max[r], kind="stable")[: self.stored]
            top_index[r, : self.stored] = full_order
            raw[r, : self.stored] = full_raw[full_order]
        self._store(rows, top_index[:, : self.stored], raw[:, : self.stored], row_max)
        for r in np.flatnonzero(rows < self.num_query):
            # Row by row into the result buffer: no [b, Ng] temporaries (fresh pages cost here).
            self.query_gallery[rows[r]] = scores[r, self.num_query :]

    def add_approximate(
        self,
        rows: np.ndarray,
        approx: object,
        exact: ExactScores,
        upper: ScoreBound,
        lower: ScoreBound,
    ) -> np.ndarray:
        """Take approximate score rows of gallery samples; return the rows that need an exact pass.

        The highest and lowest approximate scores of each row are re-scored exactly; the row is
        accepted when the bounds prove that no other sample is nearer than its ``needed``-th
        neighbour or farther than its farthest candidate.

        Args:
            rows: sample indices of the rows (not queries: their distances are part of the result).
            approx: torch [b, N] approximate scores (bfloat16 or float32).
            exact: the exact scores of candidate samples.
            upper: bound on the exact score of samples whose approximate score is at most a value.
            lower: bound on the exact score of samples whose approximate score is at least a value.
        """
        import torch

        pending = np.arange(len(rows))
        take, bottom_take = self.stored + 1, APPROX_BOTTOM
        # Two widening attempts; past that a full exact row is cheaper than gathering more.
        for _ in range(2):
            if not pending.size or 2 * (take + bottom_take) > self.num_total:
                break
            sub = approx[torch.from_numpy(pending)] if pending.size < len(rows) else approx
            top = torch.topk(sub, take, dim=1)
            bottom = torch.topk(sub, bottom_take, dim=1, largest=False)
            top_approx = top.values.double().numpy()[:, -1]
            bottom_approx = bottom.values.double().numpy()[:, -1]
            top_index = top.indices.numpy()
            candidates = np.concatenate([top_index, bottom.indices.numpy()], axis=1)
            scores = exact(rows[pending], candidates)
            smin = scores.min(axis=1)
            high = upper(top_approx, rows[pending])
            low = lower(bottom_approx, rows[pending])
            row_max = distance(smin)
            raw = distance(scores[:, :take])
            safe_max = np.maximum(row_max, np.float32(np.finfo(np.float32).tiny))
            dist = raw / safe_max[:, None]
            order = np.lexsort((top_index, dist), axis=1)
            top_index = np.take_along_axis(top_index, order, axis=1)
            raw = np.take_along_axis(raw, order, axis=1)
            dist = np.take_along_axis(dist, order, axis=1)
            with np.errstate(invalid="ignore", over="ignore"):
                outside = distance(float32_at_least(high)) / safe_max
                proven = (
                    np.isfinite(high)
                    & (low >= smin)
                    & (row_max > 0)
                    & (dist[:, self.needed - 1] < outside)
                )
            done = pending[proven]
            self._store(
                rows[done],
                top_index[proven, : self.stored],
                raw[proven, : self.stored],
                row_max[proven],
            )
            pending = pending[~proven]
            take, bottom_take = 4 * take, 4 * bottom_take
        self.exact_fallbacks += pending.size
        return rows[pending]

    def _store(
        self, rows: np.ndarray, index: np.ndarray, raw: np.ndarray, row_max: np.ndarray
    ) -> None:
        self.index[rows] = index
        self.raw_dist[rows] = raw
        self.row_max[rows] = row_max

    def lookup(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw distances of pairs found in a neighbour list (either direction); and which were not."""
        n = self.num_total
        own = np.arange(n, dtype=np.int64)[:, None]
        keys = np.concatenate([(own * n + self.index).ravel(), (self.index * n + own).ravel()])
        values = np.concatenate([self.raw_dist.ravel(), self.raw_dist.ravel()])
        # Stable, with the row's own list first: a pair listed both ways takes the row's own score.
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        wanted = rows * n + cols
        position = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
        found = keys[position] == wanted
        return np.where(found, values[position], np.float32(0)), ~found


def check_row_max(row_max: np.ndarray, rows: np.ndarray) -> None:
    """Refuse rows whose distances cannot be normalised (largest distance not positive).

    Example:
        >>> check_row_max(np.array([0.0], np.float32), np.array([7]))
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: re-ranking: every score of sample 7 is at least 1 (all samples identical to it), so its distances cannot be normalised
    """
    bad = np.flatnonzero(~(row_max > 0))
    if bad.size:
        raise ReIDError(
            f"re-ranking: every score of sample {int(rows[bad[0]])} is at least 1 (all samples "
            "identical to it), so its distances cannot be normalised"
        )

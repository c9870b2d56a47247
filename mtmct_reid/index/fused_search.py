"""Search a gallery index with transit-time fusion, and say per query whether the list is provably
the one a search of the whole gallery gives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np

from mtmct_reid.index.faiss_index import GalleryIndex
from mtmct_reid.retrieval.search import RANKED_JOINT, SearchResult
from mtmct_reid.validation import positive_int

if TYPE_CHECKING:
    from mtmct_reid.retrieval.fusion import FusionParams
    from mtmct_reid.retrieval.transit import TransitTimeModel

#: Allowance for float32 rounding between FAISS's cosine similarities and the search's own (two
#: 512-term float32 dot products of unit vectors differ by well under 1e-5).
VISUAL_MARGIN = 1e-4
#: Relative allowance for the float32 rounding of a joint score.
JOINT_MARGIN = 1e-5


@dataclass(frozen=True)
class IndexedSearchResult(SearchResult):
    """A :class:`~mtmct_reid.retrieval.search.SearchResult` from an index, with whether it is
    provably the result of a search of the whole gallery.

    Args:
        exact: True when the ranking is provably the one a search of the whole gallery gives
            (same rows, same order): the candidates were every gallery row, or (flat index) no
            gallery image outside the candidates can score above the last entry, even with the
            highest transit-time probability the query's camera has.
        candidates: gallery rows the index returned for this query.
        outside_bound: the highest score (joint, or visual when ranked by appearance) that a gallery
            image outside the candidates could reach; ``-inf`` when there is none outside, NaN when
            it cannot be bounded (approximate candidates).
    """

    exact: bool = False
    candidates: int = 0
    outside_bound: float = math.nan

    @property
    def exactness(self) -> str:
        """One line for people: whether the result is exact, and why (or why not).

        Example:
            >>> result = search_index(index, q, [1], [41250.0], st_model=st)[0]  # doctest: +SKIP
            >>> result.exactness  # doctest: +SKIP
            'exact: no image outside the 1000 candidates can reach 0.3121 (rank 10: 0.4410)'
        """
        if self.exact and math.isinf(self.outside_bound):
            return f"exact: the {self.candidates} candidates are the whole gallery"
        if self.exact:
            return (
                f"exact: no image outside the {self.candidates} candidates can reach "
                f"{self.outside_bound:.4f} (rank {len(self)}: {float(self.scores[-1]):.4f})"
            )
        if math.isnan(self.outside_bound):
            return (
                f"approximate: the {self.candidates} candidates of an ivf-pq index are not "
                "provably the nearest"
            )
        last = f"{float(self.scores[-1]):.4f}" if len(self) else "none"
        return (
            f"not proven exact: an image outside the {self.candidates} candidates could reach "
            f"{self.outside_bound:.4f} (rank {len(self)}: {last}); raise --candidates"
        )


def _max_st_probability(st_model: TransitTimeModel, camera: int) -> float:
    """The highest transit-time probability between ``camera`` and any camera at any delay (the
    lookup is symmetric: the camera may be the earlier or the later one)."""
    (row,) = st_model.camera_index(np.array([camera]), "query camera")
    table = st_model.probabilities
    # Rounding to float32 (as the lookups do) keeps the order, so round the maximum alone.
    return float(np.float32(max(table[row].max(), table[:, row].max())))


def _outside_bound(
    last_visual: float,
    ranked_joint: bool,
    st_max: float,
    fusion: FusionParams,
) -> float:
    """The highest score a gallery image could reach whose cosine similarity is at most
    ``last_visual`` (the candidates' lowest) and whose transit probability is in [0, st_max].

    Both logistic cues are monotone (either way, by the sign of γ), so the maximum over an interval is
    at one of its ends.
    """
    visual = min(last_visual + VISUAL_MARGIN, 1.0 + VISUAL_MARGIN)
    if not ranked_joint:
        return visual

    def cue(x: float, lam: float, gamma: float) -> float:
        return 1.0 / (1.0 + lam * math.exp(min(-gamma * x, 700.0)))

    best_visual = max(cue(v, fusion.lambda0, fusion.gamma0) for v in (-1.0, visual))
    best_st = max(cue(p, fusion.lambda1, fusion.gamma1) for p in (0.0, st_max))
    return best_visual * best_st * (1.0 + JOINT_MARGIN)


def search_index(
    index: GalleryIndex,
    query_features: np.ndarray,
    query_cams: Sequence[int] | np.ndarray,
    query_times: Sequence[float] | np.ndarray,
    *,
    st_model: TransitTimeModel | None = None,
    fusion: FusionParams | None = None,
    top_k: int = 10,
    candidates: int = 1000,
    query_pids: Sequence[int] | np.ndarray | None = None,
    cross_camera: bool = False,
) -> list[SearchResult]:
    """Rank a large gallery: the ``candidates`` rows most similar in appearance come from the index,
    and :func:`~mtmct_reid.retrieval.search.search_gallery` ranks them (transit-time fusion, protocol filters).

    With a flat index the candidates and their visual scores are exact, so the result equals a
    search of the whole gallery whenever the fused top ``top_k`` lie among the ``candidates``
    visually closest rows (always when ``candidates`` ≥ the gallery size). With IVF-PQ the
    candidates are approximate nearest neighbours and their visual scores those of the quantised
    vectors.

    Args:
        index: the gallery index.
        query_features: [n, D] query features.
        query_cams, query_times: [n] the queries' cameras and times.
        st_model: transit-time model; None ranks by appearance only.
        fusion: logistic smoothing parameters (default: the st-ReID ones).
        top_k: entries kept per query.
        candidates: rows taken from the index per query before fusion.
        query_pids: [n] the queries' ids when known (protocol filters, match marks).
        cross_camera: leave out gallery images of the query's own camera.

    Example:
        >>> results = search_index(GalleryIndex.load("gallery.faiss"), q, [1], [41250.0],
        ...                        st_model=st, top_k=5)  # doctest: +SKIP
    """
    from mtmct_reid.retrieval.fusion import DEFAULT_FUSION
    from mtmct_reid.retrieval.search import search_gallery

    candidates = positive_int("candidates", candidates)
    queries = np.asarray(query_features)
    scores, rows = index.search(queries, int(min(candidates, len(index))))
    n = len(queries)
    cams = np.broadcast_to(np.asarray(query_cams), (n,))
    times = np.broadcast_to(np.asarray(query_times), (n,))
    pids = None if query_pids is None else np.broadcast_to(np.asarray(query_pids), (n,))
    options: dict[str, Any] = {"st_model": st_model, "top_k": top_k, "cross_camera": cross_camera}
    if fusion is not None:
        options["fusion"] = fusion
    params = fusion if fusion is not None else DEFAULT_FUSION
    # Exact visual scores of the right rows: a flat index, or ivf-pq re-scoring every row it found
    # from its vectors (only when it found the whole gallery).
    exact_scores = index.kind == "flat" or index.vectors is not None
    results = []
    st_max: dict[int, float] = {}  # per query camera
    for query in range(n):
        valid = rows[query] >= 0
        # Candidates in gallery order, so ties break as in a search of the whole gallery.
        found = np.sort(rows[query][valid])
        (result,) = search_gallery(
            queries[query : query + 1],
            cams[query : query + 1],
            times[query : query + 1],
            index.side(found),
            query_pids=None if pids is None else pids[query : query + 1],
            **options,
        )
        if len(found) == len(index):
            exact = exact_scores
            bound = -math.inf if exact else math.nan
        elif index.kind == "flat":
            joint = result.ranked_by == RANKED_JOINT
            camera = int(cams[query])
            if joint and camera not in st_max:
                st_max[camera] = _max_st_probability(st_model, camera)
            last_visual = float(scores[query][valid].min()) if valid.any() else 1.0
            bound = _outside_bound(last_visual, joint, st_max.get(camera, 0.0), params)
            # A full list whose last entry beats anything outside the candidates is the whole
            # gallery's: filters only remove rows, and ties break by gallery order.
            exact = len(result) == top_k and float(result.scores[-1]) > bound
        else:
            bound, exact = math.nan, False
        values = {f.name: getattr(result, f.name) for f in fields(result)}
        values.update(query_index=query, gallery_indices=found[result.gallery_indices])
        results.append(
            IndexedSearchResult(
                **values, exact=bool(exact), candidates=len(found), outside_bound=bound
            )
        )
    return results

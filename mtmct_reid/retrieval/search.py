"""Person search across cameras: rank a gallery for one or more queries, by appearance and, when a
transit-time model is given, by the st-ReID joint score of appearance and camera-to-camera timing.

:func:`search_gallery` ranks gallery features for query features (numpy only). A query whose camera
the transit-time model never saw, or whose time is unknown, is ranked by visual similarity alone
(with a warning) instead of failing the whole search. Reading a gallery and caching its features is
:mod:`mtmct_reid.gallery`'s job.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import (
    FeatureSide,
)
from mtmct_reid.retrieval.fusion import DEFAULT_FUSION, FusionParams, fuse
from mtmct_reid.retrieval.protocol import ignored_for_query, normalise_rows
from mtmct_reid.validation import positive_int

if TYPE_CHECKING:
    from mtmct_reid.retrieval.transit import TransitTimeModel

log = logging.getLogger(__name__)

#: Query rows scored at once (a [chunk, gallery] float32 block).
SEARCH_CHUNK = 256
#: ``SearchResult.ranked_by`` when the joint (visual + spatial-temporal) score ranks the gallery.
RANKED_JOINT = "visual+st"
#: ``SearchResult.ranked_by`` when visual similarity alone ranks the gallery.
RANKED_VISUAL = "visual"


@dataclass(frozen=True)
class SearchResult:
    """The top-ranked gallery images of one query.

    Args:
        query_index: row of the query in the searched query features.
        query_camera: the query's camera id (``-1`` when unknown).
        query_time: the query's time (NaN when unknown).
        query_pid: the query's person id when known (``> 0``), else ``-1``.
        ranked_by: ``"visual+st"`` (joint score) or ``"visual"``.
        gallery_indices: int64 [k] rows of the gallery, best first.
        paths: [k] image paths of those rows, or None when the gallery has no paths.
        cameras: int64 [k] camera ids.
        times: float64 [k] times.
        pids: int64 [k] person ids (``0`` distractor / unlabelled, ``-1`` junk).
        visual_scores: float32 [k] cosine similarities.
        st_probabilities: float32 [k] transit-time probabilities (NaN without a usable model).
        joint_scores: float32 [k] joint st-ReID scores (NaN without a usable model).
    """

    query_index: int
    query_camera: int
    query_time: float
    query_pid: int
    ranked_by: str
    gallery_indices: np.ndarray
    paths: np.ndarray | None
    cameras: np.ndarray
    times: np.ndarray
    pids: np.ndarray
    visual_scores: np.ndarray
    st_probabilities: np.ndarray
    joint_scores: np.ndarray

    def __len__(self) -> int:
        return len(self.gallery_indices)

    @property
    def scores(self) -> np.ndarray:
        """The scores the list is ranked by (joint or visual), best first."""
        return self.joint_scores if self.ranked_by == RANKED_JOINT else self.visual_scores

    @property
    def labelled(self) -> bool:
        """True when the query's identity is known, so each entry is a match or a mistake."""
        return self.query_pid > 0

    @property
    def matches(self) -> np.ndarray:
        """bool [k]: the entry shows the query's person (all False when the query id is unknown)."""
        return (self.pids == self.query_pid) & (self.query_pid > 0)


def search_gallery(
    query_features: np.ndarray,
    query_cams: Sequence[int] | np.ndarray,
    query_times: Sequence[float] | np.ndarray,
    gallery: FeatureSide,
    *,
    st_model: TransitTimeModel | None = None,
    fusion: FusionParams = DEFAULT_FUSION,
    top_k: int = 10,
    query_pids: Sequence[int] | np.ndarray | None = None,
    cross_camera: bool = False,
    chunk_size: int = SEARCH_CHUNK,
) -> list[SearchResult]:
    """Rank the gallery for each query: by the joint st-ReID score when the transit-time model can
    score the query, else by visual (cosine) similarity. Ties keep gallery order.

    Args:
        query_features: [n, D] query embeddings (normalised here, any scale accepted).
        query_cams: [n] camera id of each query (``-1`` when unknown: visual only).
        query_times: [n] time of each query (NaN when unknown: visual only).
        gallery: the gallery's features and labels (:class:`~mtmct_reid.featureset.FeatureSide`).
        st_model: transit-time model; None ranks by appearance only.
        fusion: logistic smoothing parameters of the joint score.
        top_k: entries kept per query (fewer when the gallery is smaller).
        query_pids: [n] person ids of the queries when known; then, as in evaluation, gallery
            images of the same person from the query's own camera and junk images (id -1) are
            left out, and each entry is marked a match or a mistake.
        cross_camera: leave out every gallery image from the query's own camera.
        chunk_size: query rows scored at once.

    Returns:
        One :class:`SearchResult` per query, in query order.

    Raises:
        ReIDError: shapes that do not agree, a dimension other than the gallery's, or a bad top_k.

    Example:
        >>> side = FeatureSide(np.eye(3, dtype=np.float32), np.array([1, 2, 3]),
        ...                    np.array([2, 2, 3]), np.array([10.0, 20.0, 30.0]))
        >>> result = search_gallery(np.array([[0.1, 1.0, 0.0]]), [1], [0.0], side, top_k=2)[0]
        >>> result.gallery_indices.tolist(), result.ranked_by
        ([1, 0], 'visual')
    """
    queries = np.asarray(query_features)
    if queries.ndim != 2 or not np.issubdtype(queries.dtype, np.number):
        raise ReIDError(f"query features have shape {queries.shape}, expected numbers [n, D]")
    n = queries.shape[0]
    if queries.shape[1] != gallery.features.shape[1]:
        raise ReIDError(
            f"query features are {queries.shape[1]}-d but the gallery's are "
            f"{gallery.features.shape[1]}-d; both must come from the same model"
        )
    if not np.isfinite(queries).all():
        raise ReIDError("query features contain NaN or inf")
    cams = _query_column(query_cams, n, "query cameras", np.int64)
    times = _query_column(query_times, n, "query times", np.float64)
    pids = None if query_pids is None else _query_column(query_pids, n, "query ids", np.int64)
    top_k = positive_int("top_k", top_k)
    chunk_size = positive_int("chunk_size", chunk_size)

    gallery_unit = normalise_rows(gallery.features)
    query_unit = normalise_rows(queries)
    st_rows = _st_usable_rows(st_model, cams, times) if st_model is not None else np.zeros(n, bool)
    st_columns = _st_usable_columns(st_model, gallery) if st_rows.any() else None

    results: list[SearchResult] = []
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        visual = query_unit[start:stop] @ gallery_unit.T
        probability = np.full(visual.shape, np.nan, dtype=np.float32)
        joint = np.full(visual.shape, np.nan, dtype=np.float32)
        rows = np.flatnonzero(st_rows[start:stop])
        if rows.size:
            assert st_model is not None and st_columns is not None
            block = np.zeros((rows.size, len(gallery)), dtype=np.float32)
            block[:, st_columns] = st_model.probability(
                cams[start + rows, None],
                times[start + rows, None],
                gallery.cams[None, st_columns],
                gallery.times[None, st_columns],
            )
            probability[rows] = block
            joint[rows] = fuse(visual[rows], block, fusion)
        for row in range(stop - start):
            query = start + row
            with_st = bool(st_rows[query])
            scores = joint[row] if with_st else visual[row]
            keep = _kept_columns(
                gallery, cams[query], None if pids is None else pids[query], cross_camera
            )
            candidates = np.flatnonzero(keep) if keep is not None else np.arange(len(gallery))
            # Descending score, ties by gallery index: a stable sort of the negated scores.
            order = candidates[np.argsort(-scores[candidates], kind="stable")[:top_k]]
            results.append(
                SearchResult(
                    query_index=query,
                    query_camera=int(cams[query]),
                    query_time=float(times[query]),
                    query_pid=int(pids[query]) if pids is not None and pids[query] > 0 else -1,
                    ranked_by=RANKED_JOINT if with_st else RANKED_VISUAL,
                    gallery_indices=order.astype(np.int64),
                    paths=None if gallery.paths is None else gallery.paths[order],
                    cameras=gallery.cams[order],
                    times=gallery.times[order],
                    pids=gallery.pids[order],
                    visual_scores=visual[row, order].astype(np.float32),
                    st_probabilities=probability[row, order],
                    joint_scores=joint[row, order],
                )
            )
    return results


def _query_column(values: Any, n: int, name: str, dtype: type) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 0:
        array = np.full(n, array)
    if array.shape != (n,):
        raise ReIDError(f"{name} have shape {array.shape}, expected [{n}] (one per query)")
    if array.size and not np.issubdtype(array.dtype, np.number):
        raise ReIDError(f"{name} have dtype {array.dtype}, expected numbers")
    return array.astype(dtype)


def _st_usable_rows(st_model: TransitTimeModel, cams: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Queries the transit-time model can score; each other one is warned about once."""
    known = np.isin(cams, st_model.camera_ids)
    timed = np.isfinite(times)
    for query in np.flatnonzero(~known | ~timed):
        if cams[query] < 0:
            reason = "its camera is unknown"
        elif not known[query]:
            reason = (
                f"camera {int(cams[query])} is not in the transit-time model (cameras "
                f"{st_model.camera_ids.tolist()})"
            )
        else:
            reason = "its time is unknown"
        log.warning("query %d: %s; ranked by visual similarity only", int(query), reason)
    return known & timed


def _st_usable_columns(st_model: TransitTimeModel, gallery: FeatureSide) -> np.ndarray:
    """Gallery rows with a known camera and time; the others get transit probability 0."""
    usable = np.isin(gallery.cams, st_model.camera_ids) & np.isfinite(gallery.times)
    if not usable.all():
        unknown = np.unique(gallery.cams[~np.isin(gallery.cams, st_model.camera_ids)])
        log.warning(
            "%d of %d gallery images have %s; their transit probability is taken as 0",
            int(np.count_nonzero(~usable)),
            len(gallery),
            f"cameras {unknown.tolist()} unknown to the transit-time model"
            if unknown.size
            else "no time",
        )
    return np.flatnonzero(usable)


def _kept_columns(
    gallery: FeatureSide, camera: int, pid: int | None, cross_camera: bool
) -> np.ndarray | None:
    keep = None
    if cross_camera:
        keep = gallery.cams != camera
    if pid is not None and pid > 0:
        # The evaluation protocol's junk: the same person seen by the same camera, and junk boxes.
        protocol = ~ignored_for_query(pid, camera, gallery.pids, gallery.cams)
        keep = protocol if keep is None else keep & protocol
    return keep

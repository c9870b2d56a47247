"""Scores between the samples of a features file: visual (cosine) and st-ReID's joint score with a
transit-time model, computed in row blocks (:class:`FeatureSetScorer`).

The transit-time probability is zero beyond the model's last bin, so the joint score looks the
probability up only for the pairs whose time difference is within the model's range (a range of the
time-sorted columns per row) and gives every other pair the joint score of probability zero.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from mtmct_reid._runtime import usable_cores
from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import FeatureSet, check_times
from mtmct_reid.retrieval.fusion import (
    DEFAULT_FUSION,
    FusionParams,
    fuse,
    fuse_denominator,
    logistic_denominator,
)
from mtmct_reid.retrieval.protocol import normalise_rows

if TYPE_CHECKING:
    from mtmct_reid.retrieval.transit import TransitTimeModel

#: Sample pairs whose features are gathered at once by :meth:`FeatureSetScorer.pairs`.
_PAIR_BLOCK = 1024
#: Score-matrix elements whose transit-time probabilities are looked up at once.
_ST_BLOCK_ELEMENTS = 1 << 18
#: Above this fraction of pairs within the model's time range, look every pair up directly.
WINDOW_FRACTION = 0.5


@dataclass(frozen=True)
class _Columns:
    """Camera indices (in the transit-time model) and times of a set of score columns, with the
    columns' order by time."""

    cam_index: np.ndarray
    times: np.ndarray
    order: np.ndarray
    sorted_times: np.ndarray


class FeatureSetScorer:
    """Visual and spatial-temporal joint scores between the samples of a features file, in row blocks.

    Samples are ordered queries first, then gallery (the order re-ranking expects). Features are
    L2-normalised once (a zero vector stays zero, i.e. similarity 0 with everything).

    Args:
        features: the query and gallery features with their labels.
        st_model: transit-time model for the joint score, or None for visual scores only.
        fusion: parameters of the logistic smoothing.
        source: name of the features in error messages (e.g. the file path).
        window_fraction: look the transit-time probability up for every pair of a row block when more
            than this fraction of them are within the model's time range, else only for those.

    Example:
        >>> from mtmct_reid.featureset import FeatureSide
        >>> side = lambda x: FeatureSide(np.asarray(x, np.float32), np.arange(len(x)),
        ...                              np.ones(len(x), np.int64), np.full(len(x), np.nan))
        >>> scorer = FeatureSetScorer(FeatureSet(side([[1, 0]]), side([[1, 0], [0, 2]])))
        >>> scorer.query_gallery(0, 1)[0]
        array([[1., 0.]], dtype=float32)
    """

    def __init__(
        self,
        features: FeatureSet,
        *,
        st_model: TransitTimeModel | None = None,
        fusion: FusionParams = DEFAULT_FUSION,
        source: str = "features",
        window_fraction: float = WINDOW_FRACTION,
    ) -> None:
        self.window_fraction = window_fraction
        self.num_query = len(features.query)
        self.num_gallery = len(features.gallery)
        self.num_total = self.num_query + self.num_gallery
        self.st_model = st_model
        self.fusion = fusion
        stacked = _stacked_rows(features)
        if stacked is None:
            stacked = np.concatenate(
                [features.query.features, features.gallery.features], dtype=np.float32
            )
        # In place: features from :func:`stacked_featureset` are not copied a second time.
        self.embeddings = normalise_rows(stacked, in_place=True)
        self.cams = np.concatenate([features.query.cams, features.gallery.cams])
        self.times = np.concatenate([features.query.times, features.gallery.times])
        self._threads = min(usable_cores(), 8)
        #: Wall seconds spent so far, by phase (for ``--verbose`` timings).
        self.seconds = {"products": 0.0, "spatial-temporal fusion": 0.0}
        self._column_cache: dict[tuple[int | None, int | None], _Columns] = {}
        #: Index of each sample's camera in the transit-time model, checked once here so that the
        #: lookups of the score blocks need not check them again.
        self._cam_index: np.ndarray | None = None
        if st_model is not None:
            check_st_inputs(features, st_model, source=source)
            self._cam_index = st_model.camera_index(self.cams, f"{source} cams")
            # One bin of margin: rounding of the time differences cannot reach past it.
            self._st_window = (st_model.num_bins + 1) * float(st_model.bin_width)
            self._st_zero_denominator = logistic_denominator(
                np.float32(0), fusion.lambda1, fusion.gamma1
            )

    def query_gallery(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores of queries ``start:stop`` against the gallery.

        Returns:
            ``(visual, joint)``: float32 [stop - start, num_gallery] each; ``joint`` is None without
            a transit-time model.
        """
        return self._block(np.arange(start, stop), slice(self.num_query, None))

    def rows(
        self, start: int, stop: int, *, visual: bool = True, joint: bool = False
    ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Rows ``start:stop`` of the (num_total x num_total) score matrix (queries, then gallery).

        Returns:
            The visual rows, the joint rows, or the tuple ``(visual, joint)`` when both are asked
            (the form ``k_reciprocal_rerank``'s ``similarity_rows`` returns).
        """
        visual_rows, joint_rows = self._block(np.arange(start, stop), slice(None), joint=joint)
        return self._select(visual_rows, joint_rows, visual, joint)

    def pairs(
        self, rows: np.ndarray, cols: np.ndarray, *, visual: bool = True, joint: bool = False
    ) -> np.ndarray | tuple[np.ndarray, ...]:
        """Scores of the sample pairs ``(rows[i], cols[i])`` (same forms as :meth:`rows`)."""
        rows, cols = np.asarray(rows), np.asarray(cols)
        similarity = np.empty(len(rows), dtype=np.float32)
        # Gathering all pairs' features at once costs more in page faults than the products.
        for start in range(0, len(rows), _PAIR_BLOCK):
            block = slice(start, start + _PAIR_BLOCK)
            similarity[block] = np.einsum(
                "ij,ij->i", self.embeddings[rows[block]], self.embeddings[cols[block]]
            )
        joint_scores = self.fuse_pairs(rows, cols, similarity) if joint else None
        return self._select(similarity, joint_scores, visual, joint)

    def fuse_rows(
        self, rows: np.ndarray, visual: np.ndarray, out: np.ndarray, cols: slice = slice(None)
    ) -> None:
        """Joint scores of samples ``rows`` against samples ``cols``, from their visual scores.

        Args:
            rows: sample indices.
            visual: float32 [len(rows), len(cols)] visual scores (exact or approximate).
            out: float32 array of ``visual``'s shape for the joint scores (may be a strided view).
            cols: a slice of the samples.
        """
        self._fuse_into(rows, cols, visual, out)

    def pair_factor_max(self) -> float:
        """The largest spatial-temporal factor ``1 / (1 + λ1 exp(-γ1 p))`` of the joint score.

        Example:
            >>> from mtmct_reid.featureset import FeatureSide
            >>> from mtmct_reid.retrieval.transit import TransitTimeModel
            >>> side = FeatureSide(np.eye(2, dtype=np.float32), np.arange(2), np.arange(2), np.zeros(2))
            >>> model = TransitTimeModel.fit([1, 1], [0, 1], [0.0, 0.0])
            >>> round(FeatureSetScorer(FeatureSet(side, side), st_model=model).pair_factor_max(), 4)
            0.3512
        """
        p_max = float(self._model().probabilities.max())
        lam, gamma = float(self.fusion.lambda1), float(self.fusion.gamma1)
        return max(1 / (1 + lam * math.exp(-gamma * p)) for p in (0.0, p_max))

    def fuse_pairs(self, rows: np.ndarray, cols: np.ndarray, visual: np.ndarray) -> np.ndarray:
        """Joint scores of the sample pairs ``(rows[p], cols[p])`` from their visual scores.

        Args:
            rows: sample indices of the first samples.
            cols: sample indices of the second samples.
            visual: float32 visual scores of the pairs.

        Returns:
            float32 joint scores of the pairs.
        """
        cam_index = self._checked_cam_index()
        probability = self._model().probability_at(
            cam_index[rows], self.times[rows], cam_index[cols], self.times[cols]
        )
        return fuse(np.asarray(visual, dtype=np.float32), probability, self.fusion)

    def _block(
        self, rows: np.ndarray, cols: slice, *, joint: bool | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        if joint is None:
            joint = self.st_model is not None
        shape = (len(rows), len(range(*cols.indices(self.num_total))))
        similarity = np.empty(shape, dtype=np.float32)
        joint_scores = np.empty(shape, dtype=np.float32) if joint else None
        self.scores_into(rows, cols, similarity, joint_scores)
        return similarity, joint_scores

    def scores_into(
        self,
        rows: np.ndarray,
        cols: slice,
        visual_out: np.ndarray,
        joint_out: np.ndarray | None = None,
    ) -> None:
        """Write the visual (and joint) scores of samples ``rows`` against samples ``cols``.

        Args:
            rows: sample indices (queries first, then gallery).
            cols: a slice of samples.
            visual_out: float32 [len(rows), len(cols)], may be a view with row stride.
            joint_out: same for the joint scores, or None.
        """
        tic = time.perf_counter()
        np.matmul(self.embeddings[rows], self.embeddings[cols].T, out=visual_out)
        self.seconds["products"] += time.perf_counter() - tic
        if joint_out is not None:
            self._fuse_into(rows, cols, visual_out, joint_out)

    def _fuse_into(
        self, rows: np.ndarray, cols: slice, visual_out: np.ndarray, joint_out: np.ndarray
    ) -> None:
        columns = self._columns(cols)
        # A few rows at a time, the temporaries stay in the cache instead of being fresh,
        # page-faulted mappings; numpy releases the GIL in its loops, so row groups run on all
        # cores (as the product does).
        step = max(1, _ST_BLOCK_ELEMENTS // max(visual_out.shape[1], 1))

        def fuse_rows(start: int) -> None:
            part = slice(start, start + step)
            self._fuse_rows(rows[part], columns, visual_out[part], joint_out[part])

        tic = time.perf_counter()
        starts = range(0, len(rows), step)
        if self._threads > 1 and len(starts) > 1:
            with ThreadPoolExecutor(self._threads) as pool:
                list(pool.map(fuse_rows, starts))
        else:
            for start in starts:
                fuse_rows(start)
        self.seconds["spatial-temporal fusion"] += time.perf_counter() - tic

    def _columns(self, cols: slice) -> _Columns:
        key = (cols.start, cols.stop)
        columns = self._column_cache.get(key)
        if columns is None:
            cam_index, times = self._checked_cam_index()[cols], self.times[cols]
            order = np.argsort(times, kind="stable")
            columns = _Columns(cam_index, times, order, times[order])
            # All samples and the gallery are asked for again and again; other ranges are not.
            if key in ((None, None), (0, None), (self.num_query, None)):
                self._column_cache[key] = columns
        return columns

    def _fuse_rows(
        self, rows: np.ndarray, columns: _Columns, similarity: np.ndarray, out: np.ndarray
    ) -> None:
        """Joint scores of ``rows`` against ``columns`` into ``out``, equal to
        ``fuse(similarity, model.probability(...))`` (the cameras were checked once, in ``__init__``).

        The transit probability is 0 past the model's last bin, so only the columns within
        ``(bins + 1) · bin_width`` of a row's time (a range of the time-sorted columns) are looked up;
        every other entry takes the spatial-temporal denominator of probability 0.
        """
        model, fusion = self._model(), self.fusion
        row_index, row_times = self._checked_cam_index()[rows], self.times[rows]
        lo = np.searchsorted(columns.sorted_times, row_times - self._st_window, side="left")
        hi = np.searchsorted(columns.sorted_times, row_times + self._st_window, side="right")
        counts = hi - lo
        total = int(counts.sum())
        if total > self.window_fraction * similarity.size:
            probability = model.probability_at(
                row_index[:, None],
                row_times[:, None],
                columns.cam_index[None, :],
                columns.times[None, :],
            )
            st_denominator = logistic_denominator(probability, fusion.lambda1, fusion.gamma1)
        else:
            st_denominator = np.full(similarity.shape, self._st_zero_denominator, np.float32)
            pair_rows = np.repeat(np.arange(len(rows)), counts)
            offsets = np.repeat(lo - (np.cumsum(counts) - counts), counts)
            pair_cols = columns.order[offsets + np.arange(total)]
            probability = model.probability_at(
                row_index[pair_rows],
                row_times[pair_rows],
                columns.cam_index[pair_cols],
                columns.times[pair_cols],
            )
            st_denominator[pair_rows, pair_cols] = logistic_denominator(
                probability, fusion.lambda1, fusion.gamma1
            )
        fuse_denominator(similarity, st_denominator, fusion, out=out)

    def _model(self) -> TransitTimeModel:
        if self.st_model is None:
            raise ReIDError("joint scores need a transit-time model (st_model)")
        return self.st_model

    def _checked_cam_index(self) -> np.ndarray:
        """The samples' camera indices in the transit-time model (raises without a model)."""
        self._model()
        assert self._cam_index is not None  # set with the model in __init__
        return self._cam_index

    @staticmethod
    def _select(
        visual_scores: np.ndarray, joint_scores: np.ndarray | None, visual: bool, joint: bool
    ) -> np.ndarray | tuple[np.ndarray, ...]:
        chosen = [m for m, wanted in ((visual_scores, visual), (joint_scores, joint)) if wanted]
        if not chosen:
            raise ReIDError("ask for visual scores, joint scores, or both")
        return chosen[0] if len(chosen) == 1 else tuple(chosen)


def stacked_featureset(features: FeatureSet) -> FeatureSet:
    """The same features, the query and gallery rows views of one float32 array.

    :class:`FeatureSetScorer` (so the evaluation) then normalises that array in place instead of
    copying every feature once more, which is what ``mtmct-reid evaluate`` does with the file it read.
    The features of the returned set are therefore changed (L2-normalised) by an evaluation.

    Args:
        features: query and gallery features.

    Example:
        >>> from mtmct_reid.featureset import FeatureSide
        >>> side = FeatureSide(np.ones((2, 3), np.float32), np.arange(2), np.ones(2), np.zeros(2))
        >>> stacked = stacked_featureset(FeatureSet(side, side))
        >>> stacked.query.features.base is stacked.gallery.features.base
        True
    """
    rows = np.concatenate([features.query.features, features.gallery.features], dtype=np.float32)
    split = len(features.query.features)
    return FeatureSet(
        replace(features.query, features=rows[:split]),
        replace(features.gallery, features=rows[split:]),
        metadata=features.metadata,
    )


def _stacked_rows(features: FeatureSet) -> np.ndarray | None:
    """The one writable float32 array whose rows are the query then the gallery features, if so."""
    query, gallery = features.query.features, features.gallery.features
    base = query.base
    if not (
        isinstance(base, np.ndarray)
        and gallery.base is base
        and base.dtype == np.float32
        and base.ndim == 2
        and base.flags.c_contiguous
        and base.flags.writeable
        and base.shape == (len(query) + len(gallery), query.shape[1])
    ):
        return None
    start = base.__array_interface__["data"][0]
    row_bytes = base.strides[0]
    if (
        query.__array_interface__["data"][0] == start
        and gallery.__array_interface__["data"][0] == start + len(query) * row_bytes
    ):
        return base
    return None


def fused_scores(
    similarity: np.ndarray,
    cams_a: np.ndarray,
    times_a: np.ndarray,
    cams_b: np.ndarray,
    times_b: np.ndarray,
    st_model: TransitTimeModel,
    fusion: FusionParams = DEFAULT_FUSION,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Joint st-ReID scores of visual similarities and the transit-time probabilities of the pairs.

    Cameras and times broadcast like :meth:`TransitTimeModel.probability` (``[q, 1]`` against
    ``[1, g]`` for a matrix) to ``similarity``'s shape.

    Args:
        similarity: visual similarities (cosine).
        cams_a: cameras of the first sample of each pair.
        times_a: times of the first sample.
        cams_b: cameras of the second sample.
        times_b: times of the second sample.
        st_model: the transit-time model.
        fusion: logistic smoothing parameters.
        out: optional float32 array of ``similarity``'s shape for the result.

    Returns:
        float32 joint scores of ``similarity``'s shape (``out`` when given).
    """
    probability = st_model.probability(cams_a, times_a, cams_b, times_b)
    return fuse(similarity, probability, fusion, out=out)


def check_st_inputs(
    features: FeatureSet, st_model: TransitTimeModel, *, source: str = "features"
) -> None:
    """Raise :class:`ReIDError` unless every image has a time and a camera the model knows."""
    for side_name in ("query", "gallery"):
        side = getattr(features, side_name)
        if not side.has_times:
            check_times(side.times, f"{source}: {side_name}_times")
            missing = int(np.count_nonzero(~np.isfinite(side.times)))
            raise ReIDError(
                f"{source}: {side_name}_times missing/NaN ({missing} of {len(side)} images); "
                "the ST model needs a time per image"
            )
        st_model.check_cameras(side.cams, where=f"{source} {side_name}_cams")

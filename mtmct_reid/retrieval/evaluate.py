"""The four evaluation modes of st-ReID on a features file: visual, +ST, +re-rank, +ST +re-rank.

- ``visual``: cosine similarity of the L2-normalised features.
- ``visual+st``: the logistic-smoothed product of that similarity and the transit-time probability
  (:func:`mtmct_reid.retrieval.fusion.fuse`).
- ``visual+rerank`` / ``visual+st+rerank``: k-reciprocal re-ranking of the visual / joint scores over
  the (query + gallery)^2 matrix (st-ReID re-ranks the joint score).

Scores are computed in blocks of query rows and ranked at once, so memory stays O(chunk x gallery)
beyond the features. With re-ranking, the (query + gallery)^2 score rows are computed once by
:func:`mtmct_reid.retrieval.rerank.rerank`: the query rows among them are also what the
non-re-ranked modes rank, so the query x gallery product is not repeated, and one product feeds both
re-ranked modes.

The transit-time probability is zero beyond the model's last bin, so the joint score looks the
probability up only for the pairs whose time difference is within the model's range (a range of the
time-sorted columns per row) and gives every other pair the joint score of probability zero.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from mtmct_reid._runtime import usable_cores
from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import FeatureSet
from mtmct_reid.retrieval.fusion import (
    DEFAULT_FUSION,
    FusionParams,
    fuse,
    fuse_denominator,
    logistic_denominator,
)
from mtmct_reid.retrieval.metrics import NO_VALID_QUERY_HINT, RankingResult, RetrievalEvaluator
from mtmct_reid.retrieval.protocol import normalise_rows, valid_query_mask

if TYPE_CHECKING:
    from mtmct_reid.retrieval.transit import TransitTimeModel

log = logging.getLogger(__name__)

MODES = ("visual", "visual+st", "visual+rerank", "visual+st+rerank")
#: Query rows scored at once (a [chunk, gallery] float32 block per mode).
DEFAULT_CHUNK_SIZE = 512
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


@dataclass(frozen=True)
class EvaluationReport:
    """The ranking metrics of each evaluated mode.

    Args:
        protocol: ``"standard"`` or ``"streid"``.
        modes: mode name (see :data:`MODES`) -> its :class:`RankingResult`, in evaluation order.
        seconds: wall time of the whole evaluation.

    Example:
        >>> from mtmct_reid.retrieval.metrics import evaluate_scores
        >>> result = evaluate_scores(np.eye(3)[:, ::-1], [1, 2, 3], [1, 1, 1], [3, 2, 1], [2, 2, 2])
        >>> report = EvaluationReport("standard", {"visual": result})
        >>> report.as_json()["modes"]["visual"]["R1"]
        1.0
    """

    protocol: str
    modes: Mapping[str, RankingResult]
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """``{"protocol": ..., "modes": {mode: {"mAP", "R1", "R5", "R10", "mINP", "queries"}}}``
        (fractions in [0, 1])."""
        return {
            "protocol": self.protocol,
            "modes": {name: result.as_dict() for name, result in self.modes.items()},
        }

    def format_table(self, style: str = "text", *, decimals: int = 2, queries: bool = True) -> str:
        """The results table: one row per mode, mAP, R1, R5, R10, mINP in percent.

        The one writer of results tables (``mtmct-reid evaluate``, training's ``test_results.md``,
        the demo's report).

        Args:
            style: ``"text"`` (aligned columns and a protocol line) or ``"markdown"`` (a table only).
            decimals: digits after the decimal point.
            queries: add the number of queries of each mode.

        Example:
            >>> from mtmct_reid.retrieval.metrics import evaluate_scores
            >>> result = evaluate_scores(np.eye(2)[:, ::-1], [1, 2], [1, 1], [2, 1], [2, 2])
            >>> print(EvaluationReport("standard", {"visual": result}).format_table("markdown"))
            | mode | mAP | R1 | R5 | R10 | mINP | queries |
            |---|---:|---:|---:|---:|---:|---:|
            | visual | 100.00 | 100.00 | 100.00 | 100.00 | 100.00 | 2 |
        """
        columns = ("mAP", "R1", "R5", "R10", "mINP")
        rows = []
        for name, result in self.modes.items():
            figures = result.as_dict()
            cells = [f"{100 * figures[c]:.{decimals}f}" for c in columns]
            rows.append((name, cells + ([str(result.num_queries)] if queries else [])))
        header = list(columns) + (["queries"] if queries else [])
        if style == "markdown":
            lines = [
                "| mode | " + " | ".join(header) + " |",
                "|---|" + "---:|" * len(header),
            ]
            lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
            return "\n".join(lines)
        if style != "text":
            raise ReIDError(f"table style must be 'text' or 'markdown', got {style!r}")
        width = max(len("mode"), *(len(name) for name in self.modes))
        cell = max(6, decimals + 4)
        widths = [cell] * len(columns) + ([8] if queries else [])
        lines = [
            f"{'mode':<{width}}  "
            + "  ".join(f"{c:>{w}}" for c, w in zip(header, widths, strict=True))
        ]
        for name, cells in rows:
            lines.append(
                f"{name:<{width}}  "
                + "  ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
            )
        lines.append(f"(protocol: {self.protocol}; figures in %)")
        return "\n".join(lines)


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
            missing = int(np.count_nonzero(~np.isfinite(side.times)))
            raise ReIDError(
                f"{source}: {side_name}_times missing/NaN ({missing} of {len(side)} images); "
                "the ST model needs a time per image"
            )
        st_model.check_cameras(side.cams, where=f"{source} {side_name}_cams")


def evaluate_featureset(
    features: FeatureSet,
    *,
    st_model: TransitTimeModel | None = None,
    rerank: bool = False,
    protocol: str = "standard",
    fusion: FusionParams = DEFAULT_FUSION,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: bool = True,
    max_rank: int = 50,
    source: str = "features",
    approximate_search: bool | None = None,
) -> EvaluationReport:
    """Evaluate a features file in the st-ReID modes: visual, and +ST / +re-rank / both when asked.

    Args:
        features: query and gallery features with ids, cameras (and times for ST).
        st_model: a transit-time model fitted on the training split; adds ``visual+st`` (and
            ``visual+st+rerank`` with ``rerank``).
        rerank: add the k-reciprocal re-ranked modes.
        protocol: ``"standard"`` or ``"streid"`` (see :class:`RetrievalEvaluator`).
        fusion: logistic smoothing parameters of the joint score.
        k1: re-ranking's reciprocal neighbourhood size.
        k2: re-ranking's query-expansion size.
        lambda_value: re-ranking's weight of the original distance.
        chunk_size: rows of scores computed at once.
        progress: show progress bars.
        max_rank: length of the CMC curves.
        source: name of the features in error messages (e.g. the file path).
        approximate_search: re-ranking's bfloat16 candidate search (same result; ``None`` where the
            CPU has native bfloat16, ``False`` float32 throughout), see
            :func:`mtmct_reid.retrieval.rerank.rerank`.

    Returns:
        The :class:`EvaluationReport` of the evaluated modes (in :data:`MODES` order).

    Raises:
        ReIDError: no query has a valid match, times missing or cameras unknown with ``st_model``,
            or bad parameters.
    """
    started = time.perf_counter()
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, (int, np.integer))
        or chunk_size < 1
    ):
        raise ReIDError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if not isinstance(fusion, FusionParams):
        raise ReIDError(f"fusion must be a FusionParams, got {type(fusion).__name__}")
    query, gallery = features.query, features.gallery
    with_st = st_model is not None
    names = ["visual"] + (["visual+st"] if with_st else [])
    names += (["visual+rerank"] + (["visual+st+rerank"] if with_st else [])) if rerank else []
    evaluators = {name: RetrievalEvaluator(protocol, max_rank) for name in names}
    _check_valid_queries(features, protocol, source)
    scorer = FeatureSetScorer(features, st_model=st_model, fusion=fusion, source=source)
    ranking_seconds = 0.0

    def rank(name: str, scores: np.ndarray, start: int, stop: int) -> None:
        nonlocal ranking_seconds
        tic = time.perf_counter()
        evaluators[name].add(
            scores, query.pids[start:stop], query.cams[start:stop], gallery.pids, gallery.cams
        )
        ranking_seconds += time.perf_counter() - tic

    def rank_query_rows(
        start: int, stop: int, visual: np.ndarray, joint: np.ndarray | None
    ) -> None:
        rank("visual", visual, start, stop)
        if joint is not None:
            rank("visual+st", joint, start, stop)

    if not rerank:
        with tqdm(
            total=scorer.num_query, desc="evaluating", unit="query", disable=not progress
        ) as bar:
            for start in range(0, scorer.num_query, chunk_size):
                stop = min(start + chunk_size, scorer.num_query)
                visual, joint = scorer.query_gallery(start, stop)
                rank_query_rows(start, stop, visual, joint)
                bar.update(stop - start)
    else:
        from mtmct_reid.retrieval.rerank import rerank as k_reciprocal

        distances = k_reciprocal(
            scorer.embeddings,
            scorer.num_query,
            joint=scorer if with_st else None,
            k1=k1,
            k2=k2,
            lambda_value=lambda_value,
            chunk_size=chunk_size,
            progress=progress,
            approximate_search=approximate_search,
            query_rows=rank_query_rows,
        )
        for name, distance in zip(
            [name for name in names if name.endswith("rerank")], distances, strict=True
        ):
            for start in range(0, scorer.num_query, chunk_size):
                stop = min(start + chunk_size, scorer.num_query)
                rank(name, -distance[start:stop], start, stop)
    modes = {name: evaluators[name].compute() for name in MODES if name in evaluators}
    seconds = time.perf_counter() - started
    log.info("evaluated %s in %.1f s", ", ".join(modes), seconds)
    phases = scorer.seconds | {"ranking": ranking_seconds}
    log.debug(
        "evaluation: %s, the rest (%s) %.2f s",
        ", ".join(f"{name} {value:.2f} s" for name, value in phases.items()),
        "set-up, re-ranking's own work" if rerank else "set-up",
        seconds - sum(phases.values()),
    )
    return EvaluationReport(protocol=protocol, modes=modes, seconds=seconds)


def _check_valid_queries(features: FeatureSet, protocol: str, source: str) -> None:
    """Refuse when no query can be matched; warn about the queries that cannot."""
    query, gallery = features.query, features.gallery
    valid = valid_query_mask(query.pids, query.cams, gallery.pids, gallery.cams)
    if not valid.any():
        raise ReIDError(
            f"{source}: none of the {len(query)} queries has a valid match in the gallery "
            f"({np.unique(query.cams).size} query camera(s), {np.unique(gallery.cams).size} gallery "
            f"camera(s)): {NO_VALID_QUERY_HINT}"
        )
    invalid = int(np.count_nonzero(~valid))
    if invalid:
        log.warning(
            "%d of %d queries have no valid match in the gallery (same id from another camera); "
            "they are %s",
            invalid,
            len(query),
            "skipped" if protocol == "standard" else "counted as misses (streid protocol)",
        )

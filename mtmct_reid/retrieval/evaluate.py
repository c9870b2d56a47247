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
re-ranked modes. The scores themselves come from :class:`~mtmct_reid.retrieval.scoring.FeatureSetScorer`
(:mod:`mtmct_reid.retrieval.scoring`, whose public names are importable from here too).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import FeatureSet
from mtmct_reid.retrieval.fusion import DEFAULT_FUSION, FusionParams
from mtmct_reid.retrieval.metrics import NO_VALID_QUERY_HINT, RankingResult, RetrievalEvaluator
from mtmct_reid.retrieval.protocol import valid_query_mask
from mtmct_reid.retrieval.scoring import (
    WINDOW_FRACTION,
    FeatureSetScorer,
    check_st_inputs,
    fused_scores,
    stacked_featureset,
)
from mtmct_reid.validation import positive_int

if TYPE_CHECKING:
    from mtmct_reid.retrieval.transit import TransitTimeModel

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MODES",
    "WINDOW_FRACTION",
    "EvaluationReport",
    "FeatureSetScorer",
    "check_st_inputs",
    "evaluate_featureset",
    "fused_scores",
    "stacked_featureset",
]

MODES = ("visual", "visual+st", "visual+rerank", "visual+st+rerank")
#: Query rows scored at once (a [chunk, gallery] float32 block per mode).
DEFAULT_CHUNK_SIZE = 512


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
    chunk_size = positive_int("chunk_size", chunk_size)
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

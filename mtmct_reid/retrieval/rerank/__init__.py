"""Exact k-reciprocal re-ranking (Zhong et al., CVPR 2017) without dense N x N matrices.

Distances are st-ReID's: ``d = 2 - 2 * S`` with ``S`` the cosine similarity of L2-normalised features
(or st-ReID's joint visual + spatial-temporal score), each row divided by its largest value. The classic
implementation (st-ReID's ``re_ranking``) builds the (query + gallery)^2 matrix of these distances,
sorts every row, fills a dense N x N encoding and scans its columns; on MSMT17 that is more than 25 GB.
Only three things of that matrix are ever used:

1. the ``max(k1 + 1, k2)`` nearest neighbours of every sample (with their distances) and the largest
   distance of its row (the normalisation),
2. the distances of query rows to gallery columns (the final blend),
3. a few distances between a sample and its expanded reciprocal neighbours (the encoding weights).

:func:`rerank` computes the matrix once, in row blocks, keeping (1) and (2)
(:mod:`~mtmct_reid.retrieval.rerank.neighbours`), then builds the sparse encoding and the Jaccard term
(:mod:`~mtmct_reid.retrieval.rerank.encoding`). Memory is O(N * k1 + chunk * N) plus the
[num_query, num_gallery] results.

Gallery rows are first scored with a bfloat16 product where the CPU has native bfloat16 arithmetic:
their highest and lowest candidates are re-scored in float32, and a rigorous bound on the bfloat16 error
(:mod:`~mtmct_reid.retrieval.rerank.bf16`) proves, row by row, that no sample left out could enter the
neighbour list; rows where it cannot be proven are scored in float32. The result therefore equals the
dense algorithm on float32 scores (ties broken by index, as a stable sort does) either way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import numpy as np
from tqdm import tqdm

from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval.rerank.bf16 import (
    BF16_ROUNDING,
    bf16_error_bounds,
    bf16_half_ulp,
    cpu_has_native_bf16,
    pair_dots,
)
from mtmct_reid.retrieval.rerank.encoding import encode_and_rank
from mtmct_reid.retrieval.rerank.neighbours import NeighbourTable, distance
from mtmct_reid.validation import as_float, as_int, positive_int

if TYPE_CHECKING:
    from mtmct_reid.retrieval.fusion import FusionParams

log = logging.getLogger(__name__)

#: Below this many samples the bfloat16 candidate search does not pay for its set-up.
APPROXIMATE_MIN_SAMPLES = 4096
#: Largest memory for the mirrored gallery tiles of the bfloat16 search (beyond it, at MSMT17 size,
#: every gallery row is computed in full).
MIRRORED_TILE_BYTES = 1 << 30
#: Relative rounding error allowed to a float32 joint score (a handful of float32 operations).
_JOINT_ROUNDING = 64 * 2.0**-24

#: What the re-ranked modes' callers receive for each block of query rows, as they pass:
#: ``query_rows(start, stop, visual, joint)`` with the float32 scores against the gallery.
QueryRows = Callable[[int, int, np.ndarray, "np.ndarray | None"], None]


class JointScores(Protocol):
    """st-ReID's joint score of sample pairs from their visual similarity (see ``FeatureSetScorer``).

    The joint score must be symmetric in its two samples, and, for a fixed pair, the logistic of the
    visual similarity times a factor that does not depend on it (that is what bounds its error).
    """

    fusion: FusionParams

    def fuse_rows(
        self, rows: np.ndarray, visual: np.ndarray, out: np.ndarray, cols: slice = slice(None)
    ) -> None:
        """Joint scores of samples ``rows`` against samples ``cols``, from their visual scores."""

    def fuse_pairs(self, rows: np.ndarray, cols: np.ndarray, visual: np.ndarray) -> np.ndarray:
        """Joint scores of the pairs ``(rows[p], cols[p])`` from their visual scores."""

    def pair_factor_max(self) -> float:
        """The largest value the pair's factor of the joint score takes (at most 1)."""


def rerank(
    embeddings: np.ndarray,
    num_query: int,
    *,
    joint: JointScores | None = None,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    chunk_size: int = 512,
    progress: bool = True,
    approximate_search: bool | None = None,
    query_rows: QueryRows | None = None,
    tile_memory: int = MIRRORED_TILE_BYTES,
) -> list[np.ndarray]:
    """k-reciprocal re-ranking of the cosine similarities of unit vectors (and of the joint score).

    Args:
        embeddings: float32 [N, D] L2-normalised rows, the queries first, then the gallery.
        num_query: number of query rows.
        joint: also re-rank st-ReID's joint score of the same samples.
        k1: size of the reciprocal neighbourhood.
        k2: number of neighbours averaged by query expansion (1 disables it).
        lambda_value: weight of the original distance in the final blend (0..1).
        chunk_size: rows of the score matrix computed at once.
        progress: show tqdm progress bars.
        approximate_search: find the gallery rows' neighbour candidates with a bfloat16 product and
            prove them with an error bound (the result does not change). ``None``: when torch reports
            native bfloat16 arithmetic on this CPU and there are enough samples to gain from it;
            ``False`` forces float32 products throughout.
        query_rows: called with each block of query rows' exact scores against the gallery (visual,
            and joint or None), e.g. to rank the modes without re-ranking from the same product.
        tile_memory: bytes the search may keep to compute each gallery x gallery tile once (a
            quarter of that matrix); above it every gallery row is computed in full.

    Returns:
        The re-ranked distances [num_query, N - num_query] float32 (lower = better) of the visual
        score, followed by those of the joint score when ``joint`` is given.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.random((50, 8)).astype(np.float32)
        >>> x /= np.linalg.norm(x, axis=1, keepdims=True)
        >>> [dist] = rerank(x, 10, k1=5, k2=3, progress=False)
        >>> dist.shape
        (10, 40)
    """
    import torch

    features = _checked_embeddings(embeddings)
    num_total = len(features)
    needed = check_arguments(num_query, num_total, k1, k2, lambda_value, chunk_size)
    # Checked above; plain numbers from here on (numpy integers or numeric text included).
    num_query, k1, k2, chunk_size = int(num_query), int(k1), int(k2), int(chunk_size)
    lambda_value = float(lambda_value)
    # Each kept neighbour of a gallery row is re-scored exactly, while a pair missing from the lists
    # costs one dot product at the encoding: a narrow margin.
    stored = min(needed + max(8, needed // 2), num_total)
    if approximate_search is None:
        approximate_search = num_total >= APPROXIMATE_MIN_SAMPLES and cpu_has_native_bf16()
    tables = [NeighbourTable(num_total, num_query, needed, stored) for _ in range(1 + bool(joint))]
    features_t = torch.from_numpy(features)
    rows_wide = min(chunk_size, num_total)
    exact_buffer = np.empty((rows_wide, num_total), dtype=np.float32)
    joint_buffer = np.empty((rows_wide, num_total), dtype=np.float32) if joint else None
    seconds = dict.fromkeys(("products", "joint scores", "neighbour selection"), 0.0)

    recent = _RecentDots(features)

    def visual_exact(rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        return recent.dots(rows, candidates)

    def joint_exact(rows: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        assert joint is not None
        # The joint score's candidates are mostly the visual ones: reuse their products.
        visual = recent.dots(rows, candidates, remember=False).reshape(-1)
        pair_rows = np.repeat(rows, candidates.shape[1])
        return joint.fuse_pairs(pair_rows, candidates.reshape(-1), visual).reshape(candidates.shape)

    def exact_rows(
        rows: np.ndarray, which: list[NeighbourTable], tiles: _MirroredTiles | None = None
    ) -> None:
        """Score ``rows`` against every sample in float32 and add them to the tables ``which``
        (``tiles``: ``rows`` are one gallery block whose mirrored tiles are kept there)."""
        for start in range(0, len(rows), rows_wide):
            part = rows[start : start + rows_wide]
            first, last = int(part[0]), int(part[-1]) + 1
            tic = time.perf_counter()
            # numpy's BLAS: about twice torch's float32 product on CPUs where MKL is slow (AMD).
            visual = exact_buffer[: len(part)]
            for cols in columns_to_compute(part, visual, 0, tiles):
                np.matmul(features[part], features[cols].T, out=visual[:, cols])
            if tiles is not None:
                tiles.keep(first, last, visual, 0)
            toc = time.perf_counter()
            seconds["products"] += toc - tic
            scores = [visual]
            # A fallback row of the visual table alone needs no joint scores.
            if joint is not None and (len(which) > 1 or which[0] is tables[1]):
                assert joint_buffer is not None
                joint_rows = joint_buffer[: len(part)]
                for cols in columns_to_compute(part, joint_rows, 1, tiles):
                    joint.fuse_rows(part, visual[:, cols], joint_rows[:, cols], cols)
                if tiles is not None:
                    tiles.keep(first, last, joint_rows, 1)
                scores.append(joint_rows)
            tic = time.perf_counter()
            seconds["joint scores"] += tic - toc
            for table, block in zip(tables, scores, strict=False):
                if table in which:
                    table.add_exact(part, block)
            seconds["neighbour selection"] += time.perf_counter() - tic
            if query_rows is not None and part[0] < num_query:
                query_rows(
                    first,
                    last,
                    scores[0][:, num_query:],
                    scores[1][:, num_query:] if joint is not None else None,
                )

    def columns_to_compute(
        rows: np.ndarray, buffer: object, kind: int, tiles: _MirroredTiles | None
    ) -> list[slice]:
        """Fill what is known of score rows ``rows`` (of kind 0 visual, 1 joint) into ``buffer``;
        return the columns left to compute.

        The matrices are symmetric: gallery rows take their query columns from the query rows'
        exact scores, which the tables keep (and ``tiles`` the gallery columns left of the block).
        Into a bfloat16 buffer they are rounded, within the bound of a bfloat16 product.
        """
        if rows[0] < num_query:
            return [slice(None)]
        first, last = int(rows[0]), int(rows[-1]) + 1
        contiguous = last - first == len(rows)
        gallery = slice(first - num_query, last - num_query) if contiguous else rows - num_query
        known = tables[kind].query_gallery[:, gallery].T
        if isinstance(buffer, torch.Tensor):
            buffer[:, :num_query].copy_(torch.from_numpy(known))
        else:
            buffer[:, :num_query] = known
        if tiles is None:
            return [slice(num_query, None)]
        return tiles.fill(first, last, buffer, kind)

    num_gallery = num_total - num_query
    # Without the bfloat16 search, float32 gallery rows are mirrored the same way (float32 tiles).
    exact_tiles = mirror = None
    if (
        not approximate_search
        and num_gallery * num_gallery // 4 * 4 * (1 + bool(joint)) <= tile_memory
    ):
        exact_tiles = _MirroredTiles(num_query, num_total, chunk_size)
    if approximate_search:
        features_bf16 = features_t.to(torch.bfloat16)
        error_bound = bf16_error_bounds(features, features_bf16)
        approx_buffer = torch.empty((rows_wide, num_total), dtype=torch.bfloat16)
        widened_buffer = torch.empty((rows_wide if joint else 0, num_total), dtype=torch.float32)
        # bfloat16 visual tiles, and float32 joint ones: a quarter of the gallery x gallery matrix each.
        tile_bytes = num_gallery * num_gallery // 4 * (2 + 4 * bool(joint))
        if tile_bytes <= tile_memory:
            mirror = _MirroredTiles(num_query, num_total, chunk_size)

        def visual_upper(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return values + bf16_half_ulp(values) + error_bound[rows]

        def visual_lower(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
            return values - bf16_half_ulp(values) - error_bound[rows]

        joint_upper, joint_lower = _joint_bounds(joint, error_bound) if joint else (None, None)

    # Query rows are needed exactly anyway (their distances to the gallery are part of the result);
    # blocks never straddle the query/gallery boundary so each block takes one path.
    blocks = [(s, min(s + chunk_size, num_query)) for s in range(0, num_query, chunk_size)]
    blocks += [(s, min(s + chunk_size, num_total)) for s in range(num_query, num_total, chunk_size)]
    with tqdm(
        total=num_total, desc="re-ranking: neighbours", unit="row", disable=not progress
    ) as bar:
        for start, stop in blocks:
            rows = np.arange(start, stop)
            if not (approximate_search and start >= num_query):
                exact_rows(rows, tables, exact_tiles if start >= num_query else None)
                bar.update(stop - start)
                continue
            tic = time.perf_counter()
            approx = approx_buffer[: stop - start]
            for cols in columns_to_compute(rows, approx, 0, mirror):
                approx[:, cols] = torch.mm(features_bf16[start:stop], features_bf16[cols].T)
            if mirror:
                mirror.keep(start, stop, approx, 0)
            toc = time.perf_counter()
            seconds["products"] += toc - tic
            failed = [
                tables[0].add_approximate(rows, approx, visual_exact, visual_upper, visual_lower)
            ]
            tic = time.perf_counter()
            seconds["neighbour selection"] += tic - toc
            if joint is not None:
                assert joint_buffer is not None
                widened = widened_buffer[: stop - start]
                joint_rows = joint_buffer[: stop - start]
                for cols in columns_to_compute(rows, joint_rows, 1, mirror):
                    # Only the columns fused here: the known ones come with their joint scores.
                    widened[:, cols].copy_(approx[:, cols])
                    joint.fuse_rows(rows, widened.numpy()[:, cols], joint_rows[:, cols], cols)
                if mirror:
                    mirror.keep(start, stop, joint_rows, 1)
                toc = time.perf_counter()
                seconds["joint scores"] += toc - tic
                failed.append(
                    tables[1].add_approximate(
                        rows,
                        torch.from_numpy(joint_rows),
                        joint_exact,
                        joint_upper,
                        joint_lower,
                    )
                )
                seconds["neighbour selection"] += time.perf_counter() - toc
            # A row neither table could prove gets one float32 row for both.
            both = np.intersect1d(*failed) if len(failed) > 1 else np.empty(0, dtype=np.int64)
            if both.size:
                exact_rows(both, tables)
            for table, rows_failed in zip(tables, failed, strict=True):
                rows_failed = np.setdiff1d(rows_failed, both)
                if rows_failed.size:
                    exact_rows(rows_failed, [table])
            bar.update(stop - start)
    log.debug(
        "re-ranking: %s", ", ".join(f"{name} {value:.2f} s" for name, value in seconds.items())
    )
    if approximate_search:
        log.debug(
            "re-ranking: %s gallery rows of %d needed an exact float32 row",
            " and ".join(str(table.exact_fallbacks) for table in tables),
            num_total - num_query,
        )

    def visual_distances(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        return distance(pair_dots(features, rows, cols))

    def joint_distances(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        assert joint is not None
        return distance(joint.fuse_pairs(rows, cols, pair_dots(features, rows, cols)))

    results = []
    for table, raw_distances in zip(tables, (visual_distances, joint_distances), strict=False):
        tic = time.perf_counter()
        results.append(encode_and_rank(table, raw_distances, k1, k2, lambda_value, progress))
        log.debug("re-ranking: encoding and jaccard took %.2f s", time.perf_counter() - tic)
    return results


class _RecentDots:
    """float32 dot products of candidate pairs, remembering the last block's first candidates so that
    the joint score's candidates (mostly the same samples) are not multiplied again."""

    def __init__(self, features: np.ndarray) -> None:
        self.features = features
        self.rows = np.empty(0, dtype=np.int64)
        self.candidates = np.empty((0, 0), dtype=np.int64)
        self.scores = np.empty((0, 0), dtype=np.float32)

    def dots(self, rows: np.ndarray, candidates: np.ndarray, remember: bool = True) -> np.ndarray:
        """``out[r, c]``: the dot product of ``rows[r]`` and ``candidates[r, c]`` (float32)."""
        out = np.empty(candidates.shape, dtype=np.float32)
        found = np.zeros(candidates.shape, dtype=bool)
        where = np.searchsorted(self.rows, rows)
        known = np.zeros(len(rows), dtype=bool)
        if len(self.rows):
            known = self.rows[np.minimum(where, len(self.rows) - 1)] == rows
        if known.any():
            mine = candidates[known]
            theirs = self.candidates[where[known]]
            match = mine[:, :, None] == theirs[:, None, :]
            hit = match.any(axis=2)
            values = np.take_along_axis(self.scores[where[known]], match.argmax(axis=2), axis=1)
            out[known] = np.where(hit, values, 0)
            found[known] = hit
        missing_rows, missing_cols = np.nonzero(~found)
        out[missing_rows, missing_cols] = pair_dots(
            self.features, rows[missing_rows], candidates[missing_rows, missing_cols]
        )
        # A wider second look at some of the same rows keeps the first look (it covers every row).
        if remember and not known.all():
            self.rows, self.candidates, self.scores = rows.copy(), candidates.copy(), out.copy()
        return out


class _MirroredTiles:
    """The gallery x gallery part of symmetric approximate score rows, each off-diagonal tile once.

    Gallery block ``i`` computes its gallery columns from its own first row on, keeps copies of the
    tiles right of its diagonal tile for the later blocks, and takes its columns left of the diagonal
    from the tiles earlier blocks kept for it (transposed), which are then released. The kept tiles
    peak at a quarter of the gallery x gallery matrix, at the middle block.
    """

    def __init__(self, num_query: int, num_total: int, block: int) -> None:
        self.num_query = num_query
        self.bounds = [*range(num_query, num_total, block), num_total]
        self.kept: dict[tuple[int, int, int], object] = {}

    def fill(self, start: int, stop: int, rows: object, kind: int) -> list[slice]:
        """Copy the kept tiles into ``rows`` (block ``start:stop``); return the columns to compute."""
        i = self.bounds.index(start)
        for k in range(i):
            tile = self.kept.pop((kind, k, i))
            rows[:, self.bounds[k] : self.bounds[k + 1]] = tile.T
        return [slice(start, None)]

    def keep(self, start: int, stop: int, rows: object, kind: int) -> None:
        """Keep the tiles of ``rows`` right of the diagonal for the later blocks."""
        i = self.bounds.index(start)
        for k in range(i + 1, len(self.bounds) - 1):
            tile = rows[:, self.bounds[k] : self.bounds[k + 1]]
            self.kept[(kind, i, k)] = tile.clone() if hasattr(tile, "clone") else tile.copy()


def _joint_bounds(
    joint: JointScores, error_bound: np.ndarray
) -> tuple[Callable[[np.ndarray, np.ndarray], np.ndarray], ...]:
    """Bounds on exact joint scores from approximate ones (visual scores off by at most ``e``).

    The joint score is ``J = L(s) * m`` with ``L(s) = 1 / (1 + λ0 exp(-γ0 s))`` and a pair term
    ``0 < m <= M`` that does not depend on ``s``. With ``|s - s~| <= e``, ``J / J~`` lies within
    ``exp(+-|γ0| e)``. For ``γ0 > 0`` both sides are much tighter, as ``L(s~ +- e) / L(s~)`` moves
    towards 1 as ``s~`` rises, and ``L(s~) >= J~ / M`` bounds ``s~`` from below:

    * above: a sample outside the candidates has ``L(s~) m <= J~k``; if ``s~ < t`` (``t`` where
      ``L(t + e) M = J~k``) then ``J <= L(s~ + e) M <= J~k``, else ``J <= J~k L(t + e) / L(t)``;
    * below: a sample with ``J~ >= J~b`` has ``s~ >= t = L^-1(J~b / M)``, so
      ``J >= J~b L(t - e) / L(t)``.

    Both evaluations of ``J`` round in float32 (a relative slack covers it).
    """
    fusion = joint.fusion
    lambda0, gamma0 = float(fusion.lambda0), float(fusion.gamma0)
    pair_max = float(joint.pair_factor_max())
    slack = (1 + _JOINT_ROUNDING) ** 2

    def error(rows: np.ndarray) -> np.ndarray:
        return error_bound[rows] + BF16_ROUNDING

    def inverse(target: np.ndarray) -> np.ndarray:
        """``t`` with ``L(t) = target`` (a hair lower: the ratios below only grow with it)."""
        target = np.clip(target, 1e-300, 1 - 1e-16)
        return -np.log((1 / target - 1) / lambda0) / gamma0 - 1e-9

    def upper(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        e = error(rows)
        bound = values * np.exp(abs(gamma0) * e)
        if gamma0 > 0:
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                a = lambda0 * np.exp(-gamma0 * (inverse(values * slack / pair_max) - e))
                ratio = np.maximum((1 + a) / (1 + a * np.exp(-gamma0 * e)), 1.0)
            bound = np.minimum(bound, values * np.where(np.isfinite(ratio), ratio, np.inf))
        return np.where(values > 0, bound * slack, np.inf)

    def lower(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
        e = error(rows)
        bound = values * np.exp(-abs(gamma0) * e)
        if gamma0 > 0:
            with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
                a = lambda0 * np.exp(-gamma0 * inverse(values / slack / pair_max))
                ratio = np.minimum((1 + a) / (1 + a * np.exp(gamma0 * e)), 1.0)
            bound = np.maximum(bound, values * np.where(np.isfinite(ratio), ratio, 0.0))
        return bound / slack

    return upper, lower


def rerank_features(
    query_features: np.ndarray,
    gallery_features: np.ndarray,
    *,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
    chunk_size: int = 512,
    progress: bool = True,
    approximate_search: bool | None = None,
    tile_memory: int = MIRRORED_TILE_BYTES,
) -> np.ndarray:
    """k-reciprocal re-ranking of the cosine similarities of query and gallery features.

    Args:
        query_features: [Nq, D] query embeddings (L2-normalised here).
        gallery_features: [Ng, D] gallery embeddings.
        k1: size of the reciprocal neighbourhood.
        k2: number of neighbours averaged by query expansion (1 disables it).
        lambda_value: weight of the original distance in the final blend (0..1).
        chunk_size: rows of the similarity matrix computed at once.
        progress: show tqdm progress bars.
        approximate_search: see :func:`rerank`.
        tile_memory: see :func:`rerank`.

    Returns:
        The re-ranked distances [Nq, Ng] float32 (lower = better).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> q, g = rng.random((5, 16)), rng.random((40, 16))
        >>> rerank_features(q, g, k1=6, k2=3, progress=False).shape
        (5, 40)
    """
    from mtmct_reid.retrieval.protocol import normalise_rows

    features = _stacked(query_features, gallery_features)
    [result] = rerank(
        normalise_rows(features, in_place=True),
        len(query_features),
        k1=k1,
        k2=k2,
        lambda_value=lambda_value,
        chunk_size=chunk_size,
        progress=progress,
        approximate_search=approximate_search,
        tile_memory=tile_memory,
    )
    return result


def check_arguments(
    num_query: int,
    num_total: int,
    k1: int,
    k2: int,
    lambda_value: float,
    chunk_size: int,
) -> int:
    """Validate re-ranking's parameters; return how many nearest neighbours must be exactly ordered.

    Example:
        >>> check_arguments(10, 100, 20, 6, 0.3, 512)
        21
    """
    num_total = positive_int("re-ranking: num_total", num_total)
    chunk_size = positive_int("re-ranking: chunk_size", chunk_size)
    try:
        num_query = as_int("re-ranking: num_query", num_query, minimum=1, maximum=num_total - 1)
    except ReIDError as error:
        raise ReIDError(
            f"{error} (the samples are the queries followed by at least one gallery sample)"
        ) from None
    try:
        k1 = as_int("re-ranking: k1", k1, minimum=1, maximum=num_total - 1)
    except ReIDError as error:
        raise ReIDError(
            f"{error} (a sample's k1 nearest neighbours and itself are needed among {num_total} "
            "samples; lower k1)"
        ) from None
    k2 = as_int("re-ranking: k2", k2, minimum=1, maximum=num_total)
    as_float("re-ranking: lambda_value", lambda_value, minimum=0.0, maximum=1.0)
    return max(k1 + 1, k2)


def _checked_embeddings(embeddings: np.ndarray) -> np.ndarray:
    array = np.asarray(embeddings)
    if array.ndim != 2 or array.shape[1] == 0:
        raise ReIDError(f"re-ranking: embeddings have shape {array.shape}, expected [N, D], D > 0")
    if not np.issubdtype(array.dtype, np.floating):
        raise ReIDError(f"re-ranking: embeddings have dtype {array.dtype}, expected floats")
    return np.ascontiguousarray(array, dtype=np.float32)


def _stacked(query: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """Query and gallery features stacked (float32); zero or non-finite rows refused by name."""
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
    return features


__all__ = ["JointScores", "QueryRows", "check_arguments", "rerank", "rerank_features"]

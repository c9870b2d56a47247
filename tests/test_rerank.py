"""k-reciprocal re-ranking: equal to the classic dense algorithm, without its N x N matrices."""

from __future__ import annotations

import importlib.util
import logging
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval import rerank
from mtmct_reid.retrieval.rerank import k_reciprocal_rerank, rerank_features

_spec = importlib.util.spec_from_file_location(
    "benchmarks_reference", Path(__file__).resolve().parents[1] / "benchmarks" / "_reference.py"
)
reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(reference)


def clustered(num_query: int, num_gallery: int, dim: int, seed: int, relu: bool = False):
    data = reference.market_like_features(num_query, num_gallery, dim, relu=relu, seed=seed)
    return data["query_features"], data["gallery_features"]


def dense(query: np.ndarray, gallery: np.ndarray, **kw) -> np.ndarray:
    return reference.dense_rerank_features(query, gallery, **kw)


def rows_of(matrix: np.ndarray, calls: list | None = None):
    def similarity_rows(start: int, stop: int) -> np.ndarray:
        if calls is not None:
            calls.append((start, stop))
        return matrix[start:stop]

    return similarity_rows


CASES = [
    # (num_query, num_gallery, dim, k1, k2, chunk_size, seed)
    (8, 22, 16, 20, 6, 7, 0),  # N = 30: k1 + 1 = 21 of 30 samples
    (30, 170, 32, 20, 6, 37, 1),
    (60, 300, 32, 10, 1, 64, 2),  # no query expansion
    (50, 250, 24, 7, 3, 1000, 3),  # odd k1 (round(3.5) = 4), one chunk larger than N
    (40, 160, 32, 5, 9, 33, 4),  # k2 > k1 + 1
    (100, 500, 48, 20, 6, 128, 5),  # N = 600
]


@pytest.mark.parametrize(("nq", "ng", "dim", "k1", "k2", "chunk", "seed"), CASES)
def test_features_match_dense_reference(nq, ng, dim, k1, k2, chunk, seed):
    query, gallery = clustered(nq, ng, dim, seed)
    expected = dense(query, gallery, k1=k1, k2=k2, lambda_value=0.3)
    got = rerank_features(
        query, gallery, k1=k1, k2=k2, chunk_size=chunk, progress=False, approximate_search=False
    )
    assert got.shape == (nq, ng) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(("nq", "ng", "dim", "k1", "k2", "chunk", "seed"), CASES[1:4])
def test_score_rows_match_dense_reference(nq, ng, dim, k1, k2, chunk, seed):
    query, gallery = clustered(nq, ng, dim, seed)
    x = reference.l2_normalise(np.concatenate([query, gallery]))
    expected = dense(query, gallery, k1=k1, k2=k2, lambda_value=0.5)
    got = k_reciprocal_rerank(
        rows_of(x @ x.T),
        nq,
        nq + ng,
        k1=k1,
        k2=k2,
        lambda_value=0.5,
        chunk_size=chunk,
        progress=False,
    )
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_approximate_search_gives_the_exact_result(caplog):
    # Non-negative (ReLU) features like a CNN's, large enough for the bfloat16 candidate search.
    query, gallery = clustered(120, 900, 64, seed=6, relu=True)
    expected = dense(query, gallery)
    with caplog.at_level(logging.DEBUG, logger="mtmct_reid.retrieval.rerank"):
        got = rerank_features(
            query, gallery, chunk_size=200, progress=False, approximate_search=True
        )
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    fallbacks = [
        r.getMessage() for r in caplog.records if "needed an exact float32 row" in r.getMessage()
    ]
    assert fallbacks, "the approximate search did not run"
    exact_rows = int(fallbacks[0].split()[1])
    assert exact_rows < 900 // 2  # most gallery rows were proven from bfloat16 candidates


def test_bf16_error_bound_holds_for_every_pair():
    rng = np.random.default_rng(7)
    x = np.abs(rng.standard_normal((300, 96))).astype(np.float32) + rng.random((300, 1)).astype(
        np.float32
    ) * 3 * (rng.random((300, 96)) < 0.1)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    xt = torch.from_numpy(x)
    xb = xt.to(torch.bfloat16)
    bound = rerank._bf16_error_bounds(x, xb)
    approx = (xb @ xb.T).float().numpy()
    exact = x.astype(np.float64) @ x.T.astype(np.float64)
    slack = bound[:, None] + rerank._bf16_half_ulp(approx)
    assert (np.abs(approx - exact) <= slack).all()
    # ... and the bound is not uselessly loose: within two orders of magnitude of the real error.
    assert np.abs(approx - exact).max() > slack.max() / 100


def test_shared_minimum_sums_match_the_definition():
    rng = np.random.default_rng(14)
    dense_v = rng.random((70, 50)).astype(np.float32) * (rng.random((70, 50)) < 0.15)
    encoding = rerank.sparse.csr_matrix(dense_v)
    got = rerank._shared_minimum_sums(encoding[:20], encoding[20:].tocsc(), 50)
    expected = np.minimum(dense_v[:20, None, :], dense_v[None, 20:, :]).sum(axis=2)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    assert (got > 0).sum() > 100  # enough shared non-zeros to test something


def test_scores_above_one_match_dense_reference():
    # Raw dot products of unnormalised vectors: distances (2 - 2s)^2 are not monotone in s.
    rng = np.random.default_rng(8)
    x = rng.standard_normal((90, 6)).astype(np.float32)
    scores = x @ x.T
    expected = reference.re_ranking(
        scores[:20, 20:], scores[:20, :20], scores[20:, 20:], k1=8, k2=3
    )
    got = k_reciprocal_rerank(rows_of(scores), 20, 90, k1=8, k2=3, chunk_size=16, progress=False)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_tuple_rows_return_one_result_per_matrix():
    query, gallery = clustered(30, 200, 32, seed=9)
    x = reference.l2_normalise(np.concatenate([query, gallery]))
    visual = x @ x.T
    # A symmetric fused score (visual times a symmetric pair term), as st-ReID's joint score is.
    pair_term = 0.5 + 0.5 * np.cos(np.subtract.outer(np.arange(230), np.arange(230)) / 7.0)
    fused = (visual * pair_term.astype(np.float32)).astype(np.float32)

    def similarity_rows(start: int, stop: int):
        return visual[start:stop], fused[start:stop]

    got = k_reciprocal_rerank(similarity_rows, 30, 230, chunk_size=50, progress=False)
    assert isinstance(got, list) and len(got) == 2
    for matrix, result in zip((visual, fused), got, strict=True):
        expected = reference.re_ranking(matrix[:30, 30:], matrix[:30, :30], matrix[30:, 30:])
        np.testing.assert_allclose(result, expected, atol=1e-5, rtol=0)
    assert np.abs(got[0] - got[1]).max() > 1e-2  # two different matrices, two different answers


def test_pair_callback_replaces_second_pass_over_rows():
    query, gallery = clustered(40, 360, 32, seed=10)
    x = reference.l2_normalise(np.concatenate([query, gallery]))
    scores = x @ x.T
    expected = dense(query, gallery)

    calls: list[tuple[int, int]] = []
    pairs_seen: list[int] = []

    def similarity_pairs(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        pairs_seen.append(len(rows))
        return scores[rows, cols]

    got = k_reciprocal_rerank(
        rows_of(scores, calls),
        40,
        400,
        k1=20,
        k2=6,
        chunk_size=64,
        progress=False,
        similarity_pairs=similarity_pairs,
    )
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert calls == [(s, min(s + 64, 400)) for s in range(0, 400, 64)]  # one pass, no re-requests

    calls.clear()
    again = k_reciprocal_rerank(
        rows_of(scores, calls), 40, 400, k1=20, k2=6, chunk_size=64, progress=False
    )
    np.testing.assert_allclose(again, expected, atol=1e-5, rtol=0)
    # Some encoding pairs lie outside every neighbour list; without the pair callback the rows
    # holding them are requested again, with the same result.
    assert sum(pairs_seen) > 0
    assert len(calls) > 7


def _traced_peak(query: np.ndarray, gallery: np.ndarray) -> int:
    tracemalloc.start()
    try:
        dist = rerank_features(
            query, gallery, chunk_size=256, progress=False, approximate_search=False
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert dist.shape == (len(query), len(gallery))
    return peak


def test_memory_grows_linearly_not_quadratically():
    query, gallery = clustered(300, 5700, 16, seed=11)
    rerank_features(query[:5], gallery[:50], k1=5, progress=False)  # imports outside the trace
    half = _traced_peak(query, gallery[:2700])  # N = 3,000
    full = _traced_peak(query, gallery)  # N = 6,000
    # Doubling N quadruples any N x N matrix (144 MB in float32 at N = 6,000); here it about doubles.
    assert full < 2.6 * half
    assert full < 6000 * 6000 * 4 / 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k1": 0}, "k1 must be at least 1"),
        ({"num_query": 50, "num_total": 40}, "num_query (50) must be smaller than num_total (40)"),
        ({"k1": 40}, "k1 + 1 = 41 neighbours requested but there are only 40 samples"),
        ({"k2": 0}, "k2 must be between 1 and 40"),
        ({"lambda_value": 1.5}, "lambda_value must be a number in [0, 1]"),
        ({"chunk_size": 0}, "chunk_size must be a positive integer"),
        ({"num_query": 0}, "num_query must be at least 1"),
    ],
)
def test_bad_arguments_raise_reid_error(kwargs, message):
    scores = np.eye(40, dtype=np.float32)
    arguments = {"num_query": 10, "num_total": 40, "k1": 5, "k2": 3} | kwargs
    with pytest.raises(ReIDError) as info:
        k_reciprocal_rerank(rows_of(scores), progress=False, **arguments)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_bad_score_rows_are_named():
    rng = np.random.default_rng(12)
    scores = rng.random((40, 40)).astype(np.float32)
    with pytest.raises(ReIDError, match=r"similarity_rows\(0, 16\) has shape \(16, 39\)"):
        k_reciprocal_rerank(
            lambda a, b: scores[a:b, :39], 10, 40, k1=5, chunk_size=16, progress=False
        )
    broken = scores.copy()
    broken[20, 3] = np.nan
    with pytest.raises(ReIDError, match=r"similarity_rows\(16, 32\) contains NaN"):
        k_reciprocal_rerank(rows_of(broken), 10, 40, k1=5, chunk_size=16, progress=False)


def test_bad_features_are_named():
    query, gallery = clustered(5, 40, 8, seed=13)
    gallery = gallery.copy()
    gallery[3] = 0
    with pytest.raises(ReIDError, match="gallery_features row 3 is zero"):
        rerank_features(query, gallery, k1=5, progress=False)
    with pytest.raises(ReIDError, match="dimension 8 but gallery_features have 7"):
        rerank_features(query, gallery[:, :7], k1=5, progress=False)

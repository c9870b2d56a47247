"""k-reciprocal re-ranking: equal to the classic dense algorithm (d = 2 - 2S), without its N x N matrices.

Every comparison runs on both neighbour searches: float32 products throughout, and the bfloat16
candidate search with its error bound (forced by the ``approximate_search`` parameter, whatever the CPU).
"""

from __future__ import annotations

import logging
import tracemalloc

import numpy as np
import pytest
import torch
from scipy import sparse

from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval.fusion import FusionParams, fuse
from mtmct_reid.retrieval.rerank import rerank, rerank_features
from mtmct_reid.retrieval.rerank.bf16 import bf16_error_bounds, bf16_half_ulp, cpu_has_native_bf16
from mtmct_reid.retrieval.rerank.encoding import shared_minimum_sums
from tests.reference import dense_rerank_features, l2_normalise, market_like_features, re_ranking

PATHS = pytest.mark.parametrize("approximate", [False, True], ids=["float32", "bfloat16"])


def clustered(num_query: int, num_gallery: int, dim: int, seed: int, relu: bool = False):
    data = market_like_features(num_query, num_gallery, dim, relu=relu, seed=seed)
    return data["query_features"], data["gallery_features"]


def tied_features(num: int, dim: int, seed: int) -> np.ndarray:
    """Unit rows of four entries 0.5: every dot product is exact (k/4), so ties abound, and
    duplicated rows tie exactly with everything."""
    rng = np.random.default_rng(seed)
    x = np.zeros((num, dim), dtype=np.float32)
    for row in x:
        row[rng.choice(dim, 4, replace=False)] = 0.5
    x[num // 2 : num // 2 + 10] = x[:10]  # exact duplicates
    return x


CASES = [
    # (num_query, num_gallery, dim, k1, k2, chunk_size, seed)
    (8, 22, 16, 20, 6, 7, 0),  # N = 30: k1 + 1 = 21 of 30 samples
    (30, 170, 32, 20, 6, 37, 1),
    (60, 300, 32, 10, 1, 64, 2),  # no query expansion
    (50, 250, 24, 7, 3, 1000, 3),  # odd k1 (round(3.5) = 4), one chunk larger than N
    (40, 160, 32, 5, 9, 33, 4),  # k2 > k1 + 1
]


@PATHS
@pytest.mark.parametrize(("nq", "ng", "dim", "k1", "k2", "chunk", "seed"), CASES)
def test_features_match_dense_reference(nq, ng, dim, k1, k2, chunk, seed, approximate):
    query, gallery = clustered(nq, ng, dim, seed)
    expected = dense_rerank_features(query, gallery, k1=k1, k2=k2, lambda_value=0.3)
    got = rerank_features(
        query,
        gallery,
        k1=k1,
        k2=k2,
        chunk_size=chunk,
        progress=False,
        approximate_search=approximate,
    )
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


@PATHS
def test_exact_ties_match_dense_reference(approximate):
    x = tied_features(260, 24, seed=5)
    nq = 40
    scores = x @ x.T
    assert len(np.unique(scores)) <= 5  # only 0, 1/4, 1/2, 3/4, 1: the lists are decided by ties
    expected = re_ranking(scores[:nq, nq:], scores[:nq, :nq], scores[nq:, nq:], k1=10, k2=4)
    [got] = rerank(
        x, nq, k1=10, k2=4, chunk_size=50, progress=False, approximate_search=approximate
    )
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


class PairJoint:
    """A joint score as st-ReID's: logistic(visual) times the logistic of a symmetric pair term."""

    def __init__(self, probability: np.ndarray, fusion: FusionParams) -> None:
        self.probability = probability
        self.fusion = fusion

    def fuse_rows(self, rows, visual, out, cols=slice(None)) -> None:
        out[:] = fuse(visual, self.probability[rows][:, cols], self.fusion)

    def fuse_pairs(self, rows: np.ndarray, cols: np.ndarray, visual: np.ndarray) -> np.ndarray:
        return fuse(visual, self.probability[rows, cols], self.fusion)

    def pair_factor_max(self) -> float:
        f = self.fusion
        return float(1 / (1 + f.lambda1 * np.exp(-f.gamma1 * self.probability.max())))


@PATHS
@pytest.mark.parametrize("tied", [False, True], ids=["clustered", "ties"])
def test_joint_scores_match_dense_reference(approximate, tied):
    rng = np.random.default_rng(6)
    if tied:
        x = tied_features(300, 24, seed=6)
    else:
        query, gallery = clustered(50, 250, 32, seed=6)
        x = l2_normalise(np.concatenate([query, gallery]))
    n, nq = len(x), 50
    # Half the pairs have probability 0 (same camera, unseen pair), the rest a few shared values.
    probability = rng.choice([0.0, 0.0, 0.02, 0.1, 0.3], size=(n, n)).astype(np.float32)
    probability = np.triu(probability, 1) + np.triu(probability, 1).T
    joint = PairJoint(probability, FusionParams(lambda0=1.0, gamma0=5.0, lambda1=2.0, gamma1=5.0))
    seen = []

    def query_rows(start, stop, visual, joint_rows):
        seen.append((start, stop, visual.copy(), joint_rows.copy()))

    visual_got, joint_got = rerank(
        x,
        nq,
        joint=joint,
        chunk_size=64,
        progress=False,
        approximate_search=approximate,
        query_rows=query_rows,
    )
    visual = x @ x.T
    fused = fuse(visual, probability, joint.fusion)
    for matrix, got in ((visual, visual_got), (fused, joint_got)):
        expected = re_ranking(matrix[:nq, nq:], matrix[:nq, :nq], matrix[nq:, nq:])
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert np.abs(visual_got - joint_got).max() > 1e-2  # two matrices, two different answers
    # Every gallery row computed in full, instead of mirrored tiles: the same distances.
    full_rows = rerank(
        x,
        nq,
        joint=joint,
        chunk_size=64,
        progress=False,
        approximate_search=approximate,
        tile_memory=0,
    )
    for got, again in zip((visual_got, joint_got), full_rows, strict=True):
        np.testing.assert_allclose(again, got, atol=1e-6, rtol=0)
    # The query rows' exact scores were handed over once each, for the modes without re-ranking.
    assert [(a, b) for a, b, _, _ in seen] == [(0, 50)]
    np.testing.assert_allclose(seen[0][2], visual[:nq, nq:], atol=1e-6)
    np.testing.assert_allclose(seen[0][3], fused[:nq, nq:], atol=1e-6)


@pytest.mark.parametrize(
    ("with_joint", "joint_ties"),
    [(False, False), (True, True), (True, False)],
    ids=["visual", "joint", "joint-without-ties"],
)
def test_rows_the_bound_cannot_prove_among_proven_ones_match_dense_reference(
    with_joint, joint_ties, caplog
):
    # Tied samples (bounds cannot decide their exact ties) shuffled among clustered ones, in
    # orthogonal subspaces: each gallery block re-scores a scattered subset of its rows in float32
    # and proves the others. Continuous transit probabilities break the ties of the joint score, so
    # there the rows fall back for the visual table alone.
    query, gallery = clustered(40, 260, 24, seed=8)
    clustered_rows = np.pad(l2_normalise(np.concatenate([query, gallery])), ((0, 0), (0, 24)))
    tied_rows = np.pad(tied_features(140, 24, seed=8), ((0, 0), (24, 0)))
    rng = np.random.default_rng(8)
    gallery = np.concatenate([clustered_rows[40:], tied_rows])[rng.permutation(400)]
    x = np.concatenate([clustered_rows[:40], gallery])
    n, nq = len(x), 40
    if joint_ties:
        probability = rng.choice([0.0, 0.0, 0.02, 0.1, 0.3], size=(n, n)).astype(np.float32)
    else:
        probability = rng.uniform(0.0, 0.3, size=(n, n)).astype(np.float32)
    probability = np.triu(probability, 1) + np.triu(probability, 1).T
    joint = PairJoint(probability, FusionParams(lambda0=1.0, gamma0=5.0, lambda1=2.0, gamma1=5.0))
    with caplog.at_level(logging.DEBUG, logger="mtmct_reid.retrieval.rerank"):
        got = rerank(
            x,
            nq,
            joint=joint if with_joint else None,
            chunk_size=64,
            progress=False,
            approximate_search=True,
        )
    [message] = [r.getMessage() for r in caplog.records if "exact float32 row" in r.getMessage()]
    fallbacks = [int(word) for word in message.split()[1:4:2] if word.isdigit()]
    assert 0 < fallbacks[0] < 400, message
    if with_joint:
        assert (0 < fallbacks[1] < 400) if joint_ties else fallbacks[1] == 0, message
    visual = x @ x.T
    matrices = [visual, fuse(visual, probability, joint.fusion)] if with_joint else [visual]
    for matrix, distances in zip(matrices, got, strict=True):
        expected = re_ranking(matrix[:nq, nq:], matrix[:nq, :nq], matrix[nq:, nq:])
        np.testing.assert_allclose(distances, expected, atol=1e-5, rtol=0)


def test_approximate_search_proves_most_rows(caplog):
    # Non-negative (ReLU) features like a CNN's, large enough for the bfloat16 candidate search.
    query, gallery = clustered(120, 900, 64, seed=6, relu=True)
    x = l2_normalise(np.concatenate([query, gallery]))
    rng = np.random.default_rng(3)
    probability = rng.choice([0.0, 0.0, 0.001, 0.004, 0.01], size=(1020, 1020)).astype(np.float32)
    probability = np.triu(probability, 1) + np.triu(probability, 1).T
    joint = PairJoint(probability, FusionParams())
    with caplog.at_level(logging.DEBUG, logger="mtmct_reid.retrieval.rerank"):
        got = rerank(x, 120, joint=joint, chunk_size=200, progress=False, approximate_search=True)
    fused = fuse(x @ x.T, probability, joint.fusion)
    np.testing.assert_allclose(got[0], dense_rerank_features(query, gallery), atol=1e-5, rtol=0)
    expected = re_ranking(fused[:120, 120:], fused[:120, :120], fused[120:, 120:])
    np.testing.assert_allclose(got[1], expected, atol=1e-5, rtol=0)
    fallbacks = [
        r.getMessage() for r in caplog.records if "needed an exact float32 row" in r.getMessage()
    ]
    assert fallbacks, "the approximate search did not run"
    visual_rows, joint_rows = (int(word) for word in fallbacks[0].split()[1:4:2])
    # Most gallery rows were proven from bfloat16 candidates, for both scores.
    assert visual_rows < 900 // 4 and joint_rows < 900 // 4


def test_native_bf16_is_read_from_torch():
    flags = torch.cpu.get_capabilities()
    assert cpu_has_native_bf16() == bool(flags.get("avx512_bf16") or flags.get("amx_bf16"))


def test_reduced_precision_products_of_a_caller_do_not_leak_in():
    # Lightning may allow bfloat16 inside float32 products; the bounds assume true float32.
    query, gallery = clustered(30, 170, 32, seed=1)
    expected = dense_rerank_features(query, gallery)
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        got = rerank_features(query, gallery, progress=False, approximate_search=False)
        assert torch.get_float32_matmul_precision() == "medium"
    finally:
        torch.set_float32_matmul_precision(previous)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_bf16_error_bound_holds_for_every_pair():
    rng = np.random.default_rng(7)
    x = np.abs(rng.standard_normal((300, 96))).astype(np.float32) + rng.random((300, 1)).astype(
        np.float32
    ) * 3 * (rng.random((300, 96)) < 0.1)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    xb = torch.from_numpy(x).to(torch.bfloat16)
    bound = bf16_error_bounds(x, xb)
    approx = (xb @ xb.T).float().numpy()
    exact = x.astype(np.float64) @ x.T.astype(np.float64)
    slack = bound[:, None] + bf16_half_ulp(approx)
    assert (np.abs(approx - exact) <= slack).all()
    # ... and the bound is not uselessly loose: within two orders of magnitude of the real error.
    assert np.abs(approx - exact).max() > slack.max() / 100


def test_shared_minimum_sums_match_the_definition():
    rng = np.random.default_rng(14)
    dense_v = rng.random((70, 50)).astype(np.float32) * (rng.random((70, 50)) < 0.15)
    encoding = sparse.csr_matrix(dense_v)
    got = shared_minimum_sums(encoding[:20], encoding[20:].tocsc(), 50)
    expected = np.minimum(dense_v[:20, None, :], dense_v[None, 20:, :]).sum(axis=2)
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=0)
    assert (got > 0).sum() > 100  # enough shared non-zeros to test something


def _traced_peak(query: np.ndarray, gallery: np.ndarray) -> int:
    tracemalloc.start()
    try:
        # Without mirrored tiles (a quarter of the gallery x gallery matrix, bounded by
        # tile_memory): what remains must grow linearly.
        dist = rerank_features(
            query, gallery, chunk_size=256, progress=False, approximate_search=False, tile_memory=0
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
        ({"k1": 0}, "re-ranking: k1 must be a positive integer (at most 39), got 0"),
        (
            {"num_query": 50},
            "re-ranking: num_query must be a positive integer (at most 39), got 50 (the samples are "
            "the queries followed by at least one gallery sample)",
        ),
        (
            {"k1": 40},
            "re-ranking: k1 must be a positive integer (at most 39), got 40 (a sample's k1 nearest "
            "neighbours and itself are needed among 40 samples; lower k1)",
        ),
        ({"k1": True}, "re-ranking: k1 must be a positive integer (at most 39), got True"),
        ({"k2": 0}, "re-ranking: k2 must be a positive integer (at most 40), got 0"),
        ({"lambda_value": 1.5}, "re-ranking: lambda_value must be a finite number in [0.0, 1.0]"),
        ({"lambda_value": float("nan")}, "lambda_value must be a finite number in [0.0, 1.0]"),
        ({"chunk_size": 0}, "re-ranking: chunk_size must be a positive integer, got 0"),
        ({"num_query": 0}, "re-ranking: num_query must be a positive integer (at most 39), got 0"),
    ],
)
def test_bad_arguments_raise_reid_error(kwargs, message):
    x = np.eye(40, dtype=np.float32)
    arguments = {"num_query": 10, "k1": 5, "k2": 3} | kwargs
    with pytest.raises(ReIDError) as info:
        rerank(x, progress=False, **arguments)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_identical_samples_are_refused_by_name():
    x = np.ones((30, 4), dtype=np.float32) / 2  # every score is 1: no distance to normalise
    with pytest.raises(ReIDError, match="every score of sample 0 is at least 1"):
        rerank(x, 5, k1=5, progress=False)


def test_bad_features_are_named():
    query, gallery = clustered(5, 40, 8, seed=13)
    gallery = gallery.copy()
    gallery[3] = 0
    with pytest.raises(ReIDError, match="gallery_features row 3 is zero"):
        rerank_features(query, gallery, k1=5, progress=False)
    with pytest.raises(ReIDError, match="dimension 8 but gallery_features have 7"):
        rerank_features(query, gallery[:, :7], k1=5, progress=False)

"""CMC, mAP and mINP: the vectorised ranking against a per-query loop written from the definition."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval.metrics import (
    RankingResult,
    RetrievalEvaluator,
    evaluate_scores,
    good_ranks,
    valid_query_mask,
)


def reference_metrics(scores, q_pids, q_cams, g_pids, g_cams, protocol, max_rank=50):
    """One query at a time: stable descending sort, junk removed, precision at each good hit."""
    cmc = np.zeros(max_rank)
    aps, inps = [], []
    for i in range(len(q_pids)):
        order = np.argsort(-scores[i], kind="stable")
        kept = []
        for g in order:
            junk = g_pids[g] == -1 or (g_pids[g] == q_pids[i] and g_cams[g] == q_cams[i])
            if not junk:
                kept.append(q_pids[i] > 0 and g_pids[g] == q_pids[i])
        hits = [rank for rank, is_good in enumerate(kept, start=1) if is_good]
        if not hits:
            continue
        if hits[0] <= max_rank:
            cmc[hits[0] - 1 :] += 1
        ap = 0.0
        for number, rank in enumerate(hits, start=1):
            if protocol == "standard":
                ap += number / rank / len(hits)
            else:
                old = 1.0 if rank == 1 else (number - 1) / (rank - 1)
                ap += (old + number / rank) / 2 / len(hits)
        aps.append(ap)
        inps.append(len(hits) / hits[-1])
    denominator = len(aps) if protocol == "standard" else len(q_pids)
    return {
        "mAP": sum(aps) / denominator,
        "cmc": cmc / denominator,
        "mINP": sum(inps) / denominator,
        "num_valid": len(aps),
    }


def random_problem(rng, num_query, num_gallery, integer_scores):
    # Few ids and cameras: same-camera junk, distractors (0), junk (-1) and queries without a
    # valid match all occur; integer scores make ties frequent.
    g_pids = rng.integers(-1, 7, num_gallery)
    g_cams = rng.integers(1, 4, num_gallery)
    q_pids = rng.integers(0, 9, num_query)  # 0 and 7, 8: never a valid match
    q_cams = rng.integers(1, 4, num_query)
    if integer_scores:
        scores = rng.integers(-3, 4, (num_query, num_gallery)).astype(np.float32)
    else:
        scores = rng.standard_normal((num_query, num_gallery)).astype(np.float32)
    return scores, q_pids, q_cams, g_pids, g_cams


@pytest.mark.parametrize("protocol", ["standard", "streid"])
@pytest.mark.parametrize("integer_scores", [False, True])
def test_matches_the_per_query_definition_on_random_inputs(protocol, integer_scores):
    rng = np.random.default_rng(7 + integer_scores)
    for trial in range(25):
        num_query, num_gallery = int(rng.integers(1, 30)), int(rng.integers(1, 60))
        problem = random_problem(rng, num_query, num_gallery, integer_scores)
        expected = reference_metrics(*problem, protocol)
        if expected["num_valid"] == 0:
            with pytest.raises(ReIDError, match="no(ne of the)? .*valid match"):
                evaluate_scores(*problem, protocol=protocol)
            continue
        chunk = int(rng.integers(1, num_query + 2))  # often does not divide the query count
        result = evaluate_scores(*problem, protocol=protocol, chunk_size=chunk)
        assert result.num_queries == num_query, trial
        assert result.num_valid == expected["num_valid"], trial
        np.testing.assert_allclose(result.cmc, expected["cmc"], atol=1e-12, err_msg=str(trial))
        assert result.mAP == pytest.approx(expected["mAP"], abs=1e-12), trial
        assert result.mINP == pytest.approx(expected["mINP"], abs=1e-12), trial


def test_larger_gallery_with_ties_and_infinite_scores():
    rng = np.random.default_rng(3)
    scores, q_pids, q_cams, g_pids, g_cams = random_problem(rng, 40, 700, integer_scores=False)
    scores = np.round(scores, 1).astype(np.float64)  # ties of float64 scores
    scores[rng.random(scores.shape) < 0.05] = -np.inf  # ties with the junk set aside at -inf
    scores[rng.random(scores.shape) < 0.02] = np.inf
    for protocol in ("standard", "streid"):
        expected = reference_metrics(scores, q_pids, q_cams, g_pids, g_cams, protocol)
        result = evaluate_scores(
            scores, q_pids, q_cams, g_pids, g_cams, protocol=protocol, chunk_size=13
        )
        np.testing.assert_allclose(result.cmc, expected["cmc"], atol=1e-12)
        assert result.mAP == pytest.approx(expected["mAP"], abs=1e-12)
        assert result.mINP == pytest.approx(expected["mINP"], abs=1e-12)


def test_chunks_sorted_on_several_threads_match_the_definition():
    # Chunks above the threshold are sorted in row blocks on worker threads; force several.
    from mtmct_reid.retrieval import metrics

    rng = np.random.default_rng(11)
    problem = random_problem(rng, 130, 9000, integer_scores=False)
    assert problem[0].size >= metrics.PARALLEL_MIN_ELEMENTS
    for protocol in ("standard", "streid"):
        expected = reference_metrics(*problem, protocol)
        result = evaluate_scores(*problem, protocol=protocol, chunk_size=130, threads=3)
        np.testing.assert_allclose(result.cmc, expected["cmc"], atol=1e-12)
        assert result.mAP == pytest.approx(expected["mAP"], abs=1e-12)
        assert result.mINP == pytest.approx(expected["mINP"], abs=1e-12)


@pytest.mark.parametrize(
    ("rounding", "num_query", "chunk", "cores"),
    [(None, 60, 17, 1), (1, 60, 17, 1), (1, 450, 450, 3)],
)
def test_rankings_with_matches_near_the_top_match_the_definition(
    caplog, rounding, num_query, chunk, cores
):
    # Real rankings put most matches near the top: then only the entries above each row's lowest
    # match are sorted, never a whole row (the costly path, which says so in a debug record).
    from mtmct_reid.retrieval import metrics

    caplog.set_level(logging.DEBUG, logger=metrics.__name__)
    rng = np.random.default_rng(5)
    problem = random_problem(rng, num_query, 2500, integer_scores=False)
    scores, q_pids, q_cams, g_pids, g_cams = problem
    assert (chunk * 2500 >= metrics.PARALLEL_MIN_ELEMENTS) == (cores > 1)
    scores += 4.0 * (q_pids[:, None] == g_pids[None, :])
    if rounding is not None:  # many ties, between matches and with others
        scores = np.round(scores, rounding)
    same_id = q_pids[:, None] == g_pids[None, :]
    scores[(rng.random(scores.shape) < 0.01) & ~same_id] = -np.inf
    scores[rng.random(scores.shape) < 0.002] = np.inf
    scores = scores.astype(np.float32)
    for protocol in ("standard", "streid"):
        expected = reference_metrics(scores, q_pids, q_cams, g_pids, g_cams, protocol)
        result = evaluate_scores(
            scores,
            q_pids,
            q_cams,
            g_pids,
            g_cams,
            protocol=protocol,
            chunk_size=chunk,
            threads=cores,  # 3: row blocks on threads
        )
        np.testing.assert_allclose(result.cmc, expected["cmc"], atol=1e-12)
        assert result.mAP == pytest.approx(expected["mAP"], abs=1e-12)
        assert result.mINP == pytest.approx(expected["mINP"], abs=1e-12)
    assert not [r for r in caplog.records if "whole rows sorted" in r.getMessage()]


def test_random_rankings_sort_whole_rows_and_say_so(caplog):
    # Matches spread over the whole row leave no short list of candidates: rows are sorted.
    from mtmct_reid.retrieval import metrics

    caplog.set_level(logging.DEBUG, logger=metrics.__name__)
    rng = np.random.default_rng(6)
    problem = random_problem(rng, 40, 500, integer_scores=False)
    result = evaluate_scores(*problem, chunk_size=40, threads=1)
    expected = reference_metrics(*problem, "standard")
    assert result.mAP == pytest.approx(expected["mAP"], abs=1e-12)
    assert [r for r in caplog.records if "whole rows sorted" in r.getMessage()]


def test_hand_computed_query():
    # Query: id 5, camera 1. Gallery 0 (id 5, camera 1) and 3 (id -1) are junk; in score order the
    # rest is: 1 (id 3), 2 (good), 5 (distractor), 4 (good) -> good ranks 2 and 4.
    g_pids = np.array([5, 3, 5, -1, 5, 0])
    g_cams = np.array([1, 2, 2, 2, 3, 1])
    scores = np.array([[0.9, 0.8, 0.7, 0.95, 0.5, 0.6], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]])
    # The second query (id 3, camera 2) sees its only same-id image in its own camera: no match.
    q_pids, q_cams = np.array([5, 3]), np.array([1, 2])
    ranks, rows = good_ranks(scores, q_pids, q_cams, g_pids, g_cams)
    assert ranks.tolist() == [2, 4] and rows.tolist() == [0, 0]

    standard = evaluate_scores(scores, q_pids, q_cams, g_pids, g_cams, protocol="standard")
    assert standard.mAP == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert standard.cmc[:5].tolist() == [0, 1, 1, 1, 1]
    assert standard.mINP == pytest.approx(2 / 4)
    assert (standard.num_queries, standard.num_valid) == (2, 1)

    streid = evaluate_scores(scores, q_pids, q_cams, g_pids, g_cams, protocol="streid")
    # Trapezoid: hit 1 at rank 2: (0/1 + 1/2) / 2; hit 2 at rank 4: (1/3 + 2/4) / 2; over 2 goods,
    # then divided by both queries.
    ap = ((0 + 1 / 2) / 2 + (1 / 3 + 2 / 4) / 2) / 2
    assert streid.mAP == pytest.approx(ap / 2)
    assert streid.R1 == 0
    assert streid.R5 == 0.5
    assert streid.as_dict() == {
        "mAP": pytest.approx(ap / 2),
        "R1": 0.0,
        "R5": 0.5,
        "R10": 0.5,
        "mINP": pytest.approx(0.25),
        "queries": 2,
    }


def test_ties_are_broken_by_gallery_index():
    scores = np.ones((1, 4))
    g_pids, g_cams = np.array([2, 1, 0, 1]), np.array([2, 2, 2, 3])
    ranks, _ = good_ranks(scores, np.array([1]), np.array([1]), g_pids, g_cams)
    assert ranks.tolist() == [2, 4]
    result = evaluate_scores(scores, np.array([1]), np.array([1]), g_pids, g_cams)
    assert result.mAP == pytest.approx((1 / 2 + 2 / 4) / 2) and result.R1 == 0


def test_streid_first_hit_at_rank_one_counts_full_precision_before():
    result = evaluate_scores(
        np.array([[0.9, 0.1, 0.5]]), [1], [1], [1, 1, 0], [2, 3, 2], protocol="streid"
    )
    # hits at ranks 1 and 3: (1 + 1) / 2 and (1/2 + 2/3) / 2, averaged over 2 goods
    assert result.mAP == pytest.approx((1 + (1 / 2 + 2 / 3) / 2) / 2)


def test_chunks_accumulate_like_one_call():
    rng = np.random.default_rng(11)
    scores, q_pids, q_cams, g_pids, g_cams = random_problem(rng, 50, 90, integer_scores=False)
    whole = evaluate_scores(scores, q_pids, q_cams, g_pids, g_cams, chunk_size=1000)
    evaluator = RetrievalEvaluator(max_rank=20)
    for start, stop in ((0, 17), (17, 18), (18, 18), (18, 50)):
        evaluator.add(scores[start:stop], q_pids[start:stop], q_cams[start:stop], g_pids, g_cams)
    parts = evaluator.compute()
    assert parts.cmc.shape == (20,) and parts.num_queries == 50
    np.testing.assert_allclose(parts.cmc, whole.cmc[:20])
    assert parts.mAP == pytest.approx(whole.mAP) and parts.mINP == pytest.approx(whole.mINP)


def test_valid_query_mask_needs_another_camera_and_a_real_id():
    g_pids, g_cams = np.array([1, 1, 2, 0, -1]), np.array([1, 2, 1, 2, 2])
    mask = valid_query_mask(
        np.array([1, 1, 2, 0, -1, 9]), np.array([1, 3, 1, 1, 1, 1]), g_pids, g_cams
    )
    assert mask.tolist() == [True, True, False, False, False, False]


def test_no_valid_query_explains_the_same_camera_rule():
    # A dataset without camera ids: every image in camera 0.
    scores = np.random.default_rng(0).random((3, 5))
    with pytest.raises(ReIDError, match="ANOTHER camera"):
        evaluate_scores(scores, [1, 2, 3], [0, 0, 0], [1, 2, 3, 1, 2], [0, 0, 0, 0, 0])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"scores": np.zeros(4)}, "expected 2-D"),
        ({"query_pids": np.array([1, 2, 3])}, "query_pids has shape"),
        ({"gallery_cams": np.array([1])}, "gallery_cams has shape"),
        ({"gallery_pids": np.array([1.5, 2, 2])}, "expected integers"),
        ({"scores": np.array([[0.1, np.nan, 0.2], [0.3, 0.2, 0.1]])}, "NaN"),
        ({"protocol": "market"}, "protocol must be one of"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"max_rank": 5}, "max_rank"),
    ],
)
def test_bad_inputs_raise_one_line_errors(kwargs, message):
    arguments = {
        "scores": np.array([[0.1, 0.5, 0.2], [0.3, 0.2, 0.1]]),
        "query_pids": np.array([1, 2]),
        "query_cams": np.array([1, 1]),
        "gallery_pids": np.array([1, 2, 2]),
        "gallery_cams": np.array([2, 2, 3]),
    } | kwargs
    with pytest.raises(ReIDError, match=message) as info:
        evaluate_scores(**arguments)
    assert "\n" not in str(info.value)


def test_empty_gallery_and_no_queries_are_errors():
    with pytest.raises(ReIDError, match="gallery is empty"):
        evaluate_scores(np.zeros((2, 0)), [1, 2], [1, 1], [], [])
    with pytest.raises(ReIDError, match="no queries"):
        RetrievalEvaluator().compute()


def test_ranking_result_properties():
    result = RankingResult(
        mAP=0.5, cmc=np.arange(1, 51) / 50, mINP=0.25, num_queries=10, num_valid=9
    )
    assert (result.R1, result.R5, result.R10) == (0.02, 0.1, 0.2)

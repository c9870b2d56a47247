"""The evaluation protocol's one home: junk and cross-camera rules, against loops over the definition."""

from __future__ import annotations

import numpy as np
import pytest

from mtmct_reid.data.records import Records
from mtmct_reid.retrieval.protocol import (
    good_and_same_camera_pairs,
    ignored_for_query,
    normalise_rows,
    queries_without_cross_camera_match,
    valid_query_mask,
)


def _no_cross_match_by_definition(records: Records) -> list[int]:
    out = []
    for q in range(len(records)):
        if records.splits[q] != "query" or records.pids[q] <= 0:
            continue
        found = any(
            records.splits[g] == "gallery"
            and records.pids[g] == records.pids[q]
            and records.cams[g] != records.cams[q]
            for g in range(len(records))
        )
        if not found:
            out.append(q)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_queries_without_cross_camera_match_matches_the_definition(seed):
    rng = np.random.default_rng(seed)
    n = 300
    records = Records.from_columns(
        [f"{i}.jpg" for i in range(n)],
        rng.integers(-1, 60, size=n),
        rng.integers(1, 4 + seed, size=n),
        None,
        rng.choice(["train", "query", "gallery"], size=n, p=[0.2, 0.3, 0.5]),
    )
    got = queries_without_cross_camera_match(records)
    assert got.dtype == np.int64
    assert got.tolist() == _no_cross_match_by_definition(records)
    assert 0 < len(got) < np.sum(records.splits == "query")  # both kinds present in the sample


def test_queries_without_cross_camera_match_edge_cases():
    only_query = Records.from_columns(["q"], [3], [1], None, ["query"])
    assert queries_without_cross_camera_match(only_query).tolist() == [0]
    no_query = Records.from_columns(["g"], [3], [1], None, ["gallery"])
    assert queries_without_cross_camera_match(no_query).tolist() == []


@pytest.mark.parametrize("seed", range(3))
def test_good_and_ignored_entries_match_the_definition(seed):
    rng = np.random.default_rng(seed)
    q_pids, q_cams = rng.integers(-1, 8, 30), rng.integers(1, 4, 30)
    g_pids, g_cams = rng.integers(-1, 8, 200), rng.integers(1, 4, 200)
    (good_rows, good_cols), (same_rows, same_cols) = good_and_same_camera_pairs(
        q_pids, q_cams, g_pids, g_cams
    )
    good = np.zeros((30, 200), bool)
    good[good_rows, good_cols] = True
    same = np.zeros((30, 200), bool)
    same[same_rows, same_cols] = True
    for q in range(30):
        real = q_pids[q] > 0
        expected_good = real & (g_pids == q_pids[q]) & (g_cams != q_cams[q])
        expected_ignored = (g_pids == -1) | (real & (g_pids == q_pids[q]) & (g_cams == q_cams[q]))
        np.testing.assert_array_equal(good[q], expected_good)
        np.testing.assert_array_equal(same[q] | (g_pids == -1), expected_ignored)
        ignored = ignored_for_query(int(q_pids[q]), int(q_cams[q]), g_pids, g_cams)
        np.testing.assert_array_equal(ignored, expected_ignored)
    np.testing.assert_array_equal(
        valid_query_mask(q_pids, q_cams, g_pids, g_cams), good.any(axis=1)
    )


def test_normalise_rows_in_place_and_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1e-30, 0.0]], dtype=np.float32)
    out = normalise_rows(x, in_place=True)
    assert out is x
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [1.0, 0.0]], rtol=1e-6)
    copy = normalise_rows(np.array([[0, 2]], dtype=np.int64))
    assert copy.dtype == np.float32 and copy.tolist() == [[0.0, 1.0]]

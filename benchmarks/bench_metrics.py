"""Ranking metrics benchmark: ``evaluate_scores`` against a per-query argsort loop, same run.

Scores are the cosine similarities of Market-like synthetic features (3,368 queries x 15,913 gallery by
default; ids, cameras, distractors and junk as in Market-1501's test split). For each protocol it prints
the time of ours and of the loop, their ratio, the peak memory each allocated (tracemalloc), and checks
that CMC, mAP and mINP agree.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_metrics                  # Market size
    .venv/bin/python -m benchmarks.bench_metrics --queries 500 --gallery 3000
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from mtmct_reid.retrieval.metrics import evaluate_scores
from tests.reference import market_like_features, per_query_ranking


def measured(function: Callable[[], Any]) -> tuple[Any, float, float]:
    """(result, seconds, peak MiB allocated during the call)."""
    tracemalloc.start()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3368)
    parser.add_argument("--gallery", type=int, default=15913)
    parser.add_argument(
        "--dim", type=int, default=256, help="feature dimension of the synthetic data"
    )
    parser.add_argument("--chunk-size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3, help="runs of ours; the best is reported")
    args = parser.parse_args()

    data = market_like_features(args.queries, args.gallery, args.dim, seed=0)
    scores = data["query_features"] @ data["gallery_features"].T
    labels = (data["query_pids"], data["query_cams"], data["gallery_pids"], data["gallery_cams"])
    print(
        f"scores {scores.shape[0]:,} x {scores.shape[1]:,} float32 ({scores.nbytes / 2**20:.0f} MiB), "
        f"chunk {args.chunk_size} rows"
    )
    for protocol in ("standard", "streid"):
        runs = [
            measured(
                lambda protocol=protocol: evaluate_scores(
                    scores, *labels, protocol=protocol, chunk_size=args.chunk_size
                )
            )
            for _ in range(args.repeats)
        ]
        ours, ours_s, ours_peak = min(runs, key=lambda run: run[1])
        # The st-ReID protocol: trapezoid AP, and queries without a match count as misses.
        streid = protocol == "streid"
        ref, ref_s, ref_peak = measured(
            lambda streid=streid: per_query_ranking(
                scores, *labels, divide_by_all=streid, trapezoid_ap=streid
            )
        )
        print(f"\n[{protocol}]  valid queries {ours.num_valid:,} of {ours.num_queries:,}")
        print(f"  ours  {ours_s:7.3f} s   peak {ours_peak:7.1f} MiB   (best of {args.repeats})")
        print(f"  loop  {ref_s:7.3f} s   peak {ref_peak:7.1f} MiB")
        print(f"  speed-up x{ref_s / ours_s:.1f}")
        print(
            f"  mAP {ours.mAP:.6f}  R1 {ours.R1:.6f}  R5 {ours.R5:.6f}  R10 {ours.R10:.6f}  "
            f"mINP {ours.mINP:.6f}"
        )
        differences = {
            "mAP": abs(ours.mAP - ref["mAP"]),
            "cmc": float(np.abs(ours.cmc - ref["cmc"]).max()),
            "mINP": abs(ours.mINP - ref["mINP"]),
        }
        print("  max |ours - loop|: " + ", ".join(f"{k} {v:.1e}" for k, v in differences.items()))
        assert all(value < 1e-9 for value in differences.values()), differences
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nprocess peak resident memory {rss:.0f} MiB (includes the score matrix and data)")


if __name__ == "__main__":
    main()

"""Cross-camera association benchmark: time and peak memory of ``build_dendrogram`` + labels
(candidate pairs, fused scores with a transit-time model, constrained average linkage) on synthetic
tracklets of a 20-camera network, against SciPy's dense, unconstrained average linkage on the same
descriptors in the same run where its condensed distance matrix fits (it needs T² / 2 doubles).

Each size runs in a fresh process so that its peak resident memory (``ru_maxrss``) is its own.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_associate                       # 10,000 tracklets
    .venv/bin/python -m benchmarks.bench_associate --tracklets 10000 100000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.reference import mtmc_association as reference

ROOT = Path(__file__).resolve().parents[1]


def _data(tracklets: int, cameras: int, dim: int, seed: int) -> dict[str, np.ndarray]:
    # 3.5 visits per person on average; about 40 tracklets per camera and hour.
    people = max(1, round(tracklets / 3.5))
    duration = 3600.0 * tracklets / (40.0 * cameras)
    data = reference.synthetic_tracklets(
        people,
        cameras,
        dim=dim,
        noise=0.3,
        group_size=3,
        lookalike_fraction=0.5,
        group_window=duration,
        duration=duration,
        seed=seed,
    )
    return data


def run_one(tracklets: int, cameras: int, dim: int, neighbours: int, with_scipy: bool) -> dict:
    from mtmct_reid.mtmc.associate import Tracklets, build_dendrogram
    from mtmct_reid.mtmc.threshold import tracklet_idf1
    from mtmct_reid.mtmc.transit_fit import fit_transit_from_visits

    train = _data(tracklets, cameras, dim, seed=1)
    test = _data(tracklets, cameras, dim, seed=2)
    model = fit_transit_from_visits(train["ids"], train["cams"], train["starts"], train["ends"])
    items = Tracklets(test["cams"], test["starts"], test["ends"], test["descriptors"])
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start = time.perf_counter()
    labels = build_dendrogram(items, transit=model, threshold=0.4, neighbours=neighbours).labels(
        0.4
    )
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    result = {
        "tracklets": len(items),
        "cameras": cameras,
        "seconds": seconds,
        "peak_gib": peak,
        "peak_before_gib": before,
        "identities": int(labels.max()) + 1,
        "idf1": tracklet_idf1(labels, test["ids"], test["frames"]),
    }
    if with_scipy:
        from scipy.cluster.hierarchy import fcluster, linkage
        from scipy.spatial.distance import pdist

        start = time.perf_counter()
        tree = linkage(pdist(items.descriptors, "cosine"), method="average")
        fcluster(tree, 0.6, criterion="distance")
        result["scipy_seconds"] = time.perf_counter() - start
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracklets", type=int, nargs="+", default=[10_000])
    parser.add_argument("--cameras", type=int, default=20)
    parser.add_argument("--dim", type=int, default=128, help="descriptor dimension")
    parser.add_argument("--neighbours", type=int, default=30)
    parser.add_argument("--scipy-limit", type=int, default=20_000, help="largest T for SciPy")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        size = args.tracklets[0]
        print(
            json.dumps(
                run_one(size, args.cameras, args.dim, args.neighbours, size <= args.scipy_limit)
            )
        )
        return
    for size in args.tracklets:
        command = [sys.executable, "-m", "benchmarks.bench_associate", "--one"]
        command += ["--tracklets", str(size), "--cameras", str(args.cameras)]
        command += ["--dim", str(args.dim), "--neighbours", str(args.neighbours)]
        command += ["--scipy-limit", str(args.scipy_limit)]
        out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        line = (
            f"{r['tracklets']:>7,} tracklets, {r['cameras']} cameras: association "
            f"{r['seconds']:.1f} s, peak RSS {r['peak_gib']:.2f} GiB "
            f"(data alone {r['peak_before_gib']:.2f} GiB), {r['identities']:,} identities, "
            f"IDF1 {r['idf1']:.3f}"
        )
        if "scipy_seconds" in r:
            line += (
                f"; SciPy dense average linkage (no constraints, no transit) "
                f"{r['scipy_seconds']:.1f} s"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()

"""Retrieval benchmark: our re-ranking, metrics and spatial-temporal lookup against plain references.

Run from the repository root::

    .venv/bin/python -m benchmarks.bench_retrieval                  # Market size, every section
    .venv/bin/python -m benchmarks.bench_retrieval --only rerank    # re-ranking only
    .venv/bin/python -m benchmarks.bench_retrieval --size msmt --only rerank   # MSMT17 size, ours only

Sections (each compares ours with a reference in the same run and prints the ratio):

- ``rerank``: visual + k-reciprocal re-ranking of a features file: ``mtmct-reid evaluate FEATURES
  --rerank`` against the dense numpy reference (st-ReID's ``re_ranking`` on the full matrices, then the
  same metrics), each in a fresh process: ours is exactly the command a user types (``python -m
  mtmct_reid evaluate ...``, start-up, imports and loading included); wall time, CPU time and peak
  resident memory are the child process's own (``wait4``), their ratios and the largest difference of the
  figures. The dense reference is skipped at MSMT17 size, where its N x N matrices do not fit.
- ``metrics``: CMC / mAP / mINP of the visual scores, ours against a per-query Python loop.
- ``st``: transit-time probability of every query x gallery pair, ours (vectorised) against a
  pair-by-pair Python loop timed on a subsample and extrapolated (said so in the output).
- ``evaluate``: the four modes through ``mtmct-reid evaluate FEATURES --st-model ST --rerank`` (visual,
  +ST, +re-rank, +both) in a fresh process: wall time and peak memory.

Sections whose library module does not exist yet are reported as skipped.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.reference import (
    dense_rerank_features,
    l2_normalise,
    market_like_features,
    per_query_ranking,
)

SIZES = {
    "small": (400, 2000, 256),
    "market": (3368, 15913, 2048),
    "msmt": (11659, 82161, 2048),
}
SECTIONS = ("rerank", "metrics", "st", "evaluate")
REPO_ROOT = Path(__file__).resolve().parents[1]


def _have(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def _gb(num_bytes: float) -> str:
    return f"{num_bytes / 1e9:.2f} GB"


# --------------------------------------------------------------------------------------------------
# Workers: each runs in its own process so its peak memory is its own.


def _worker(kind: str, features_path: str, json_path: str) -> None:
    """The dense reference (st-ReID's ``re_ranking`` on the full matrices, then the same metrics)."""
    if kind != "dense":
        raise SystemExit(f"unknown worker {kind!r}")
    from mtmct_reid.retrieval.metrics import evaluate_scores

    with np.load(features_path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    dist = dense_rerank_features(arrays["query_features"], arrays["gallery_features"])
    labels = [arrays[f"{side}_{key}"] for side in ("query", "gallery") for key in ("pids", "cams")]
    result = evaluate_scores(-dist, *labels)
    Path(json_path).write_text(json.dumps({"modes": {"visual+rerank": result.as_dict()}}))


def _run_worker(kind: str, features_path: Path, workdir: Path) -> dict:
    """Run ``kind`` in a fresh process: ``command`` / ``command-st`` is exactly what a user types
    (``python -m mtmct_reid evaluate FEATURES --rerank [--st-model ST]``), ``dense`` the reference.
    Wall time, CPU time and peak resident memory are the child process's own (``wait4``)."""
    json_path = workdir / f"{kind}_figures.json"
    if kind in ("command", "command-st"):
        command = [sys.executable, "-m", "mtmct_reid", "evaluate", str(features_path), "--rerank"]
        command += ["--no-progress", "--json", str(json_path), "--force"]
        if kind == "command-st":
            command += ["--st-model", str(features_path.with_name("transit.npz"))]
    else:
        command = [sys.executable, "-m", "benchmarks.bench_retrieval", "--worker", kind]
        command += [str(features_path), str(json_path)]
    start = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode:
        raise SystemExit(f"{' '.join(command)} exited with {child.returncode}")
    # ru_maxrss is in KiB on Linux and bytes on macOS.
    peak = usage.ru_maxrss if sys.platform == "darwin" else usage.ru_maxrss * 1024
    return {
        "wall_s": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss": peak,
        "figures": json.loads(json_path.read_text())["modes"],
    }


def _load_note() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.1f} (1 min), {five:.1f} (5 min) on {os.cpu_count()} CPUs"


# --------------------------------------------------------------------------------------------------
# Sections


def bench_rerank(features_path: Path, workdir: Path, size: str) -> None:
    print("\n== visual + k-reciprocal re-ranking (k1=20, k2=6, lambda=0.3), fresh process each ==")
    ours = _run_worker("command", features_path, workdir)
    print(
        f"mtmct-reid evaluate --rerank: {ours['wall_s']:7.2f} s wall (start-up included), "
        f"{ours['cpu_s']:.1f} CPU s, peak RSS {_gb(ours['peak_rss'])}   [{_load_note()}]"
    )
    if size == "msmt":
        print("dense reference: skipped (its N x N float matrices need > 100 GB at MSMT17 size)")
        return
    dense = _run_worker("dense", features_path, workdir)
    print(
        f"dense numpy reference       : {dense['wall_s']:7.2f} s wall (start-up included), "
        f"{dense['cpu_s']:.1f} CPU s, peak RSS {_gb(dense['peak_rss'])}   [{_load_note()}]"
    )
    got, expected = ours["figures"]["visual+rerank"], dense["figures"]["visual+rerank"]
    difference = max(abs(got[key] - expected[key]) for key in ("mAP", "R1", "R5", "R10", "mINP"))
    print(
        f"TARGET visual+rerank: {dense['wall_s'] / ours['wall_s']:.2f}x faster (target >= 8x), "
        f"{ours['peak_rss'] / dense['peak_rss']:.3f} of the dense memory (target <= 0.15); "
        f"max |difference| of mAP/R1/R5/R10/mINP {difference:.1e}"
    )
    print(
        f"(CPU seconds, less sensitive to other processes' load: "
        f"{dense['cpu_s'] / ours['cpu_s']:.2f}x fewer)"
    )


def bench_metrics(data: dict[str, np.ndarray]) -> None:
    print("\n== CMC / mAP / mINP of the visual scores ==")
    if not _have("mtmct_reid.retrieval.metrics"):
        print("skipped: mtmct_reid.retrieval.metrics does not exist yet")
        return
    from mtmct_reid.retrieval.metrics import evaluate_scores

    scores = l2_normalise(data["query_features"]) @ l2_normalise(data["gallery_features"]).T
    labels = (data["query_pids"], data["query_cams"], data["gallery_pids"], data["gallery_cams"])
    start = time.perf_counter()
    result = evaluate_scores(scores, *labels, protocol="standard")
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    reference = per_query_ranking(scores, *labels)
    loop_s = time.perf_counter() - start
    print(
        f"ours {ours_s:.2f} s, per-query loop {loop_s:.2f} s, speed-up {loop_s / ours_s:.1f}x "
        f"({len(scores)} queries x {scores.shape[1]} gallery)"
    )
    cmc = np.asarray(result.cmc)
    print(
        f"ours : mAP {result.mAP:.4f} R1 {cmc[0]:.4f} R5 {cmc[4]:.4f} R10 {cmc[9]:.4f} "
        f"mINP {result.mINP:.4f}"
    )
    print(
        f"loop : mAP {reference['mAP']:.4f} R1 {reference['cmc'][0]:.4f} "
        f"R5 {reference['cmc'][4]:.4f} R10 {reference['cmc'][9]:.4f} mINP {reference['mINP']:.4f}"
    )
    print(
        f"max |difference|: mAP {abs(result.mAP - reference['mAP']):.2e}, CMC "
        f"{np.abs(cmc[:50] - reference['cmc'][: len(cmc)]).max():.2e}, mINP "
        f"{abs(result.mINP - reference['mINP']):.2e}"
    )


def _fit_transit(data: dict[str, np.ndarray]):  # noqa: ANN202 - returns TransitTimeModel
    from mtmct_reid.retrieval.transit import TransitTimeModel

    return TransitTimeModel.fit(data["train_pids"], data["train_cams"], data["train_times"])


def bench_st(data: dict[str, np.ndarray], subsample: int = 20_000) -> None:
    print("\n== spatial-temporal probability of every query x gallery pair ==")
    if not _have("mtmct_reid.retrieval.transit"):
        print("skipped: mtmct_reid.retrieval.transit does not exist yet")
        return
    model = _fit_transit(data)
    q_cams, q_times = data["query_cams"], data["query_times"]
    g_cams, g_times = data["gallery_cams"], data["gallery_times"]
    start = time.perf_counter()
    probability = model.probability(
        q_cams[:, None], q_times[:, None], g_cams[None, :], g_times[None, :]
    )
    ours_s = time.perf_counter() - start
    num_pairs = probability.size

    camera_index = {int(c): i for i, c in enumerate(np.asarray(model.camera_ids))}
    table = np.asarray(model.probabilities)
    num_bins = table.shape[2]
    rng = np.random.default_rng(0)
    picks = rng.integers(0, num_pairs, subsample)
    start = time.perf_counter()
    looped = []
    for flat in picks.tolist():
        qi, gi = divmod(flat, len(g_cams))
        cq, cg = int(q_cams[qi]), int(g_cams[gi])
        tq, tg = float(q_times[qi]), float(g_times[gi])
        if cq == cg:
            looped.append(0.0)
            continue
        later, earlier = (cq, cg) if tq >= tg else (cg, cq)
        bin_index = int(abs(tq - tg) // model.bin_width)
        if bin_index >= num_bins:
            looped.append(0.0)
            continue
        looped.append(float(table[camera_index[later], camera_index[earlier], bin_index]))
    loop_s = (time.perf_counter() - start) * num_pairs / subsample
    difference = np.abs(probability.ravel()[picks] - np.array(looped)).max()
    print(
        f"ours {ours_s:.3f} s for {num_pairs:,} pairs; pair-by-pair loop timed on {subsample:,} "
        f"random pairs and EXTRAPOLATED to {loop_s:.1f} s; speed-up {loop_s / ours_s:.0f}x; "
        f"max |difference| on the subsample {difference:.2e}"
    )


def bench_evaluate(
    data: dict[str, np.ndarray], features_path: Path, workdir: Path, size: str
) -> None:
    print("\n== four modes through `mtmct-reid evaluate --st-model ST --rerank`, fresh process ==")
    if not (_have("mtmct_reid.cli.evaluate") and _have("mtmct_reid.retrieval.transit")):
        print("skipped: the evaluate command or the transit-time model does not exist yet")
        return
    _fit_transit(data).save(features_path.with_name("transit.npz"))
    run = _run_worker("command-st", features_path, workdir)
    for mode, figures in run["figures"].items():
        print(
            f"{mode:<17} mAP {100 * figures['mAP']:6.2f}  R1 {100 * figures['R1']:6.2f}  "
            f"mINP {100 * figures['mINP']:6.2f}"
        )
    wall_target, memory_target = (150, 12) if size == "msmt" else (8, 2.5)
    print(
        f"TARGET four modes: {run['wall_s']:.2f} s wall (start-up included; target <= "
        f"{wall_target} s; {run['cpu_s']:.1f} CPU s), peak RSS {_gb(run['peak_rss'])} "
        f"(target <= {memory_target} GB)   "
        f"[{_load_note()}]"
    )


# --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="market")
    parser.add_argument(
        "--only", choices=SECTIONS, action="append", help="run only this section (repeatable)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep inputs and outputs here (default: temp)")
    parser.add_argument(
        "--worker", nargs=3, metavar=("KIND", "FEATURES", "OUT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    if args.worker:
        _worker(*args.worker)
        return 0

    sections = args.only or list(SECTIONS)
    num_query, num_gallery, dim = SIZES[args.size]
    with tempfile.TemporaryDirectory(prefix="bench_retrieval_") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        data = market_like_features(num_query, num_gallery, dim, num_train_ids=751, seed=args.seed)
        features_path = workdir / "features.npz"
        from mtmct_reid.featureset import FeatureSet, FeatureSide

        FeatureSet(
            query=FeatureSide(*(data[f"query_{k}"] for k in ("features", "pids", "cams", "times"))),
            gallery=FeatureSide(
                *(data[f"gallery_{k}"] for k in ("features", "pids", "cams", "times"))
            ),
            metadata={"model": "synthetic"},
        ).save(features_path)
        print(
            f"inputs: {num_query} query x {num_gallery} gallery, D={dim}, "
            f"{len(np.unique(data['query_pids']))} query ids, 6 cameras, "
            f"{os.cpu_count()} CPUs; built in {time.perf_counter() - start:.1f} s"
        )
        if "rerank" in sections:
            bench_rerank(features_path, workdir, args.size)
        if "metrics" in sections:
            bench_metrics(data)
        if "st" in sections:
            bench_st(data)
        if "evaluate" in sections:
            bench_evaluate(data, features_path, workdir, args.size)
    return 0


if __name__ == "__main__":
    sys.exit(main())

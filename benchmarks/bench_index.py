"""Gallery indexes at a million vectors: build time, memory, query latency and recall@10, same run.

A gallery of ``--count`` vectors (D = ``--dim``) in synthetic identity clusters (``--ids`` centres,
each image its identity's centre plus noise, so that an image's nearest neighbours are mostly its own
identity's images, as with re-id features) is written to a float32 ``.npy`` file and memory-mapped,
so the vectors are never all in memory beside an index. Both kinds are built with
:func:`mtmct_reid.index.build_index` (what ``mtmct-reid index build`` runs), saved and loaded back, and
queried one query at a time and all in one call (``--queries`` held-out images of the same
identities; ``mtmct-reid search --index`` searches its queries in one call). The reference is exact
brute force: numpy matrix products over the memory map in blocks.

Run:
    .venv/bin/python -m benchmarks.bench_index                         # 1,000,000 × 512
    .venv/bin/python -m benchmarks.bench_index --count 100000 --kinds ivf-pq

Prints per kind: build seconds, index file size and its ratio to the float32 vectors, peak memory
growth of the process, query latency p50 / p95 one query at a time, the time per query of a batch,
and recall@10 against brute force. Targets (2 cores):
IVF-PQ p50 <= 10 ms at recall@10 >= 0.9 and <= 0.1x the float32 memory; flat <= 0.3 s per query.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from mtmct_reid._runtime import usable_cores
from mtmct_reid.index import GalleryIndex, build_index

CHUNK = 65536


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--ids", type=int, default=50_000, help="identity clusters")
    parser.add_argument("--noise", type=float, default=0.6, help="per-image noise / centre norm")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--kinds", nargs="+", default=["ivf-pq", "flat"])
    parser.add_argument("--nlist", type=int, default=None, help="default: the library's (√N)")
    parser.add_argument("--m", type=int, default=None, help="default: the library's (D/4 bytes)")
    parser.add_argument("--nbits", type=int, default=4, choices=(4, 8))
    parser.add_argument(
        "--nprobe", type=int, nargs="+", default=None, help="default: nlist/64, /32, /16, /8"
    )
    parser.add_argument(
        "--rescore", type=int, nargs="+", default=[100, 200], help="IVF-PQ rows re-scored exactly"
    )
    parser.add_argument("--flat-queries", type=int, default=20, help="flat is slow: fewer")
    parser.add_argument("--threads", type=int, default=None, help="FAISS threads (all cores)")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    return parser.parse_args(argv)


def write_gallery(path: Path, args: argparse.Namespace) -> tuple[np.memmap, np.ndarray]:
    """The gallery as a float32 .npy memory map, and ``--queries`` held-out query vectors."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.ids, args.dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    sigma = args.noise / np.sqrt(args.dim)
    gallery = np.lib.format.open_memmap(
        path, mode="w+", dtype=np.float32, shape=(args.count, args.dim)
    )
    for start in range(0, args.count, CHUNK):
        stop = min(start + CHUNK, args.count)
        ids = rng.integers(0, args.ids, stop - start)
        gallery[start:stop] = centres[ids] + sigma * rng.normal(size=(stop - start, args.dim))
    gallery.flush()
    ids = rng.integers(0, args.ids, args.queries)
    queries = centres[ids] + sigma * rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    return np.load(path, mmap_mode="r"), queries.astype(np.float32)


def brute_force_top10(gallery: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Exact top 10 by cosine similarity: unit rows, a matrix product per block, each block's top 10
    (``argpartition``) merged into a running top 10."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    best_scores = np.full((len(q), 10), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(q), 10), dtype=np.int64)
    for start in range(0, len(gallery), CHUNK):
        block = np.asarray(gallery[start : start + CHUNK], dtype=np.float32)
        block = block / np.linalg.norm(block, axis=1, keepdims=True)
        sims = q @ block.T
        top = np.argpartition(-sims, min(10, sims.shape[1] - 1), axis=1)[:, :10]
        scores = np.concatenate([best_scores, np.take_along_axis(sims, top, axis=1)], axis=1)
        rows = np.concatenate([best_rows, top + start], axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :10]
        best_scores = np.take_along_axis(scores, order, axis=1)
        best_rows = np.take_along_axis(rows, order, axis=1)
    return best_rows


def rss_mib() -> float:
    """This process's own (anonymous) resident memory. Pages of the memory-mapped vectors file are
    page cache, shared and reclaimable; counting them would count the kernel's fault-around of a
    file it just wrote (16 pages mapped per row read), not what the search needs."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) / 1024
    return 0.0


def query_latency(index: GalleryIndex, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, times = [], []
    for query in queries:
        start = time.perf_counter()
        _, found = index.search(query[None], 10)
        times.append(time.perf_counter() - start)
        rows.append(found[0])
    return np.array(rows), np.array(times)


def batch_latency(index: GalleryIndex, queries: np.ndarray) -> tuple[np.ndarray, float, float]:
    """All queries in one call (what ``search --index`` does): rows, wall and CPU seconds per query."""
    start, cpu = time.perf_counter(), time.process_time()
    _, found = index.search(queries, 10)
    wall = (time.perf_counter() - start) / len(queries)
    return found, wall, (time.process_time() - cpu) / len(queries)


def recall_at_10(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)]))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        f"{args.count:,} × {args.dim} gallery, {args.ids:,} identities, {usable_cores()} cores, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        gallery, queries = write_gallery(work / "gallery.npy", args)
        print(f"gallery written in {time.perf_counter() - start:.1f}s")
        start = time.perf_counter()
        truth = brute_force_top10(gallery, queries)
        brute = (time.perf_counter() - start) / len(queries)
        print(f"brute force (numpy, blocks of {CHUNK}): {brute:.3f} s per query in a batch")
        vectors_mib = args.count * args.dim * 4 / 2**20
        labels = np.arange(args.count, dtype=np.int64)
        for kind in args.kinds:
            before = rss_mib()
            start = time.perf_counter()
            options = {"nlist": args.nlist, "m": args.m, "nbits": args.nbits, "keep_vectors": True}
            if kind == "flat":
                options = {}
            index = build_index(gallery, labels, labels, kind=kind, **options)
            build_s = time.perf_counter() - start
            index.save(work / f"{kind}.faiss")
            del index
            index = GalleryIndex.load(work / f"{kind}.faiss")
            index.threads = args.threads
            size_mib = (work / f"{kind}.faiss").stat().st_size / 2**20
            # the side file's labels count too (16 bytes per image here)
            size_mib += (work / f"{kind}.faiss.npz").stat().st_size / 2**20
            grown = rss_mib() - before
            print(
                f"{kind}: build {build_s:.1f}s, index + side file {size_mib:.0f} MiB = "
                f"{size_mib / vectors_mib:.3f}x the float32 vectors ({vectors_mib:.0f} MiB), "
                f"anonymous resident after load +{grown:.0f} MiB"
            )
            settings: list[int | None] = [None]
            if kind == "ivf-pq":
                nlist = index.metadata["nlist"]
                settings = args.nprobe or sorted({max(1, nlist // d) for d in (64, 32, 16, 8)})
                print(
                    f"  nlist {nlist}, m {index.metadata['m']} × {index.metadata['nbits']} bits "
                    f"({index.metadata['code_bytes']} bytes per image), default nprobe "
                    f"{index.nprobe}"
                )
            vectors = index.vectors
            for nprobe in settings:
                if nprobe is not None:
                    index.nprobe = nprobe
                subset = queries if kind == "ivf-pq" else queries[: args.flat_queries]
                # IVF-PQ twice: PQ scores alone, then the top RESCORE re-scored from the
                # memory-mapped vectors file (on disk; only the rows read come into memory).
                for rescored in [0, *args.rescore] if kind == "ivf-pq" else [0]:
                    index.vectors = vectors if rescored else None
                    index.rescore = rescored or index.rescore
                    found, times = query_latency(index, subset)
                    p50, p95 = np.percentile(times, [50, 95]) * 1000
                    batch_found, per_query, cpu = batch_latency(index, queries)
                    label = f"nprobe {nprobe}" if nprobe is not None else "exact"
                    if kind == "ivf-pq":
                        label += f", top {index.rescore} re-scored" if rescored else ", PQ scores"
                    print(
                        f"  {label}: one at a time p50 {p50:.2f} ms, p95 {p95:.2f} ms, recall@10 "
                        f"{recall_at_10(found, truth[: len(subset)]):.3f} ({len(subset)} queries); "
                        f"batch of {len(queries)}: {per_query * 1000:.2f} ms per query "
                        f"(CPU {cpu * 1000:.2f} ms), recall@10 {recall_at_10(batch_found, truth):.3f}; "
                        f"resident +{rss_mib() - before:.0f} MiB"
                    )
            if kind == "flat" and args.threads is None and usable_cores() > 1:
                # One thread against all: on a machine busier than its cores, FAISS's threads
                # wait for each other at every join.
                index.threads = 1
                _, times = query_latency(index, queries[: args.flat_queries])
                _, per_query, cpu = batch_latency(index, queries)
                p50, p95 = np.percentile(times, [50, 95]) * 1000
                print(
                    f"  exact, 1 thread: one at a time p50 {p50:.2f} ms, p95 {p95:.2f} ms; batch of "
                    f"{len(queries)}: {per_query * 1000:.2f} ms per query (CPU {cpu * 1000:.2f} ms)"
                )
            del index
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10
    print(f"peak resident {peak:.0f} MiB; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""Gallery indexes for galleries of millions: FAISS (``faiss-cpu``, the optional extra ``index``).

An index file (``gallery.faiss``) holds the gallery's L2-normalised features for inner-product search
(cosine similarity); a side file beside it (``gallery.faiss.npz``, no pickle) holds each row's person id,
camera, time and path, the kind of index, its dimension and row count, and a fingerprint of the index
file, so a side file that does not belong to its index is refused on load.

Two kinds:

* ``flat``: every vector, exact inner products (``IndexFlatIP``); 4·D bytes per image.
* ``ivf-pq``: an inverted file over ``nlist`` k-means cells, each vector product-quantised to
  ``m`` codes of ``nbits`` bits (4: FAISS's fast scan ``IndexIVFPQFastScan``, the default; 8: the
  classic ``IndexIVFPQ``); a query visits ``nprobe`` cells. Approximate: recall and scores depend on
  ``nprobe`` and ``m``; ``benchmarks/bench_index.py`` measures them.

Searches hand FAISS up to ``QUERY_BATCH`` queries at once, so that a batch takes FAISS's
matrix-product path (one pass over the gallery per batch) instead of one scan per query.

:func:`search_index` takes the top candidates by visual similarity from the index and ranks them with
:func:`mtmct_reid.retrieval.search.search_gallery` (transit-time fusion, the evaluation protocol's filters).
"""

from __future__ import annotations

import hashlib
import logging
import math
import mmap
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtmct_reid._io import atomic_path, npz_array, open_npz, save_npz
from mtmct_reid._runtime import usable_cores
from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import FeatureSide
from mtmct_reid.retrieval.search import RANKED_JOINT, SearchResult

if TYPE_CHECKING:
    from mtmct_reid.retrieval.fusion import FusionParams
    from mtmct_reid.retrieval.transit import TransitTimeModel

log = logging.getLogger(__name__)

KINDS = ("flat", "ivf-pq")
#: Rows an IVF-PQ search with exact vectors re-scores (at least k).
RESCORE = 100
#: Version of the side file's layout.
FORMAT = "mtmct-reid-index-1"
#: Rows normalised and added to the index at a time (bounds the memory of a build).
ADD_CHUNK = 65536
#: Allowance for float32 rounding between FAISS's cosine similarities and the search's own (two
#: 512-term float32 dot products of unit vectors differ by well under 1e-5).
VISUAL_MARGIN = 1e-4
#: Relative allowance for the float32 rounding of a joint score.
JOINT_MARGIN = 1e-5
#: Queries handed to FAISS at once: enough for its matrix-product path, and a bounded block of
#: scores (QUERY_BATCH × DATABASE_BLOCK float32, 16 MiB).
QUERY_BATCH = 256
#: Gallery rows per matrix product in FAISS's batched exact search (FAISS's default is 1024): a
#: million-row gallery is 62 products instead of 977, and as many fewer hand-offs between threads.
DATABASE_BLOCK = 16384
#: Bytes at each end of the index file that its fingerprint hashes.
_FINGERPRINT_BYTES = 1 << 20
_EXTRA = "pip install 'mtmct-reid[index]'"


def require_faiss() -> Any:
    """The ``faiss`` module, or a :class:`ReIDError` naming the extra that installs it."""
    try:
        import faiss
    except ImportError:
        raise ReIDError(f"gallery indexes need faiss: {_EXTRA}") from None
    return faiss


def faiss_threads(threads: int | None) -> int:
    """Threads for FAISS: ``threads``, or every core this process may use when None.

    Raises:
        ReIDError: ``threads`` below 1 or above the usable cores (more threads than cores only
            make them wait for each other).

    Example:
        >>> faiss_threads(None) == usable_cores() and faiss_threads(1)
        1
    """
    cores = usable_cores()
    if threads is None:
        return cores
    if isinstance(threads, bool) or not isinstance(threads, int | np.integer) or threads < 1:
        raise ReIDError(f"--threads must be a positive integer, got {threads!r}")
    if threads > cores:
        raise ReIDError(f"--threads {threads}: this process may use {cores} cores")
    return int(threads)


@contextmanager
def _search_settings(faiss: Any, threads: int, dim: int) -> Iterator[None]:
    """FAISS's process-wide search settings for one call, restored after it.

    A flat search of fewer than ``distance_compute_blas_threshold / D`` queries (250 at D = 512)
    scans the whole gallery once per query, in parallel over queries only: a batch of 200 reads a
    2 GB gallery 200 times. From two queries on, the matrix-product path reads it once per batch
    instead.
    """
    saved = (
        faiss.omp_get_max_threads(),
        faiss.cvar.distance_compute_blas_threshold,
        faiss.cvar.distance_compute_blas_database_bs,
    )
    faiss.omp_set_num_threads(threads)
    faiss.cvar.distance_compute_blas_threshold = 2 * dim
    faiss.cvar.distance_compute_blas_database_bs = DATABASE_BLOCK
    try:
        yield
    finally:
        faiss.omp_set_num_threads(saved[0])
        faiss.cvar.distance_compute_blas_threshold = saved[1]
        faiss.cvar.distance_compute_blas_database_bs = saved[2]


def side_file(index_path: str | os.PathLike) -> Path:
    """The side file of an index file: the same name with ``.npz`` added.

    Example:
        >>> side_file("out/gallery.faiss").as_posix()
        'out/gallery.faiss.npz'
    """
    path = Path(index_path)
    return path.with_name(path.name + ".npz")


def vectors_file(index_path: str | os.PathLike) -> Path:
    """Where an IVF-PQ index keeps its exact vectors for re-scoring: ``OUT.vectors.npy``.

    Example:
        >>> vectors_file("gallery.faiss").name
        'gallery.faiss.vectors.npy'
    """
    path = Path(index_path)
    return path.with_name(path.name + ".vectors.npy")


def _no_readahead(array: np.ndarray) -> None:
    # Re-scoring reads a few hundred scattered rows; the kernel's readahead would read far more
    # of the file from disk than those rows.
    raw = getattr(array, "_mmap", None)
    if raw is not None and hasattr(mmap, "MADV_RANDOM"):
        raw.madvise(mmap.MADV_RANDOM)


def _write_unit_vectors(path: Path, source: np.ndarray) -> None:
    # Chunk by chunk into a memory map, so a gallery of millions is never all in memory.
    with atomic_path(path, suffix=".npy") as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=source.shape)
        for start in range(0, len(source), ADD_CHUNK):
            out[start : start + ADD_CHUNK] = _unit_rows(source[start : start + ADD_CHUNK])
        out.flush()
        del out


def fingerprint(path: str | os.PathLike) -> str:
    """Size and SHA-256 of the first and last MiB of a file: cheap on a file of gigabytes, and
    different for any other index a side file could be paired with by mistake.

    Example:
        >>> fingerprint("gallery.faiss")  # doctest: +SKIP
        '2048000045:5e0c...'
    """
    path = Path(path)
    size = path.stat().st_size
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        digest.update(fh.read(_FINGERPRINT_BYTES))
        if size > _FINGERPRINT_BYTES:
            fh.seek(max(_FINGERPRINT_BYTES, size - _FINGERPRINT_BYTES))
            digest.update(fh.read())
    return f"{size}:{digest.hexdigest()}"


def default_nlist(count: int) -> int:
    """Cells of an IVF index: about √N (1,000 at a million), at least 1, and at most N / 39 (FAISS
    wants 39 training points per centroid). Fast-scan codes make visiting more cells cheap, while
    k-means over 4·√N cells (FAISS's usual advice) takes 16 times longer to train.

    Example:
        >>> default_nlist(1_000_000), default_nlist(100)
        (1000, 2)
    """
    return int(max(1, min(round(math.sqrt(count)), count // 39)))


def default_m(dim: int, nbits: int = 4) -> int:
    """Sub-quantisers of IVF-PQ: D/4 bytes of codes per vector (1/16 of float32) where a divisor
    of D allows it, at most 256 bytes.

    Args:
        dim: the feature dimension D.
        nbits: bits per sub-quantiser code (4: FAISS's fast scan; 8: classic PQ).

    Example:
        >>> default_m(512), default_m(512, nbits=8), default_m(3072), default_m(3072, nbits=8)
        (256, 128, 512, 256)
    """
    target = max(1, min(dim // 4, 256) * 8 // nbits)
    return max(m for m in range(1, target + 1) if dim % m == 0)


def default_nprobe(nlist: int) -> int:
    """Cells an IVF query visits by default: nlist / 16 (62 of 1,000), at least 1. At 1,000,000
    vectors of 512-d, benchmarks/bench_index.py measured recall@10 0.953 with the top 100 re-scored,
    1 ms per query (nlist / 32: 0.893, the recall target being 0.9).

    Example:
        >>> default_nprobe(1000), default_nprobe(10)
        (62, 1)
    """
    return max(1, nlist // 16)


def _unit_rows(block: np.ndarray) -> np.ndarray:
    block = np.ascontiguousarray(block, dtype=np.float32)
    norms = np.linalg.norm(block, axis=1, keepdims=True)
    return block / np.maximum(norms, 1e-12)


@dataclass
class GalleryIndex:
    """A FAISS index of gallery features with the labels of its rows.

    Attributes:
        index: the FAISS index (inner product over unit vectors).
        pids, cams, times: [N] labels of each row; ``paths`` [N] or None.
        kind: ``"flat"`` or ``"ivf-pq"``.
        metadata: what the side file records (model, features file, nlist, m, ...).
        path: the index file, when read from or written to one.
        vectors: [N, D] exact gallery vectors (a memory map of ``OUT.vectors.npy`` after loading),
            or None. With them an IVF-PQ search re-scores its top ``rescore`` rows exactly.
        rescore: rows an IVF-PQ search takes from the index before exact re-scoring.
        threads: FAISS threads of a search (None: every usable core).

    Example:
        >>> index = GalleryIndex.load("gallery.faiss")  # doctest: +SKIP
        >>> scores, rows = index.search(query_features, k=10)  # doctest: +SKIP
    """

    index: Any
    pids: np.ndarray
    cams: np.ndarray
    times: np.ndarray
    paths: np.ndarray | None
    kind: str
    metadata: dict[str, Any]
    path: Path | None = None
    vectors: np.ndarray | None = None
    rescore: int = RESCORE
    threads: int | None = None

    def __len__(self) -> int:
        return int(self.index.ntotal)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def nprobe(self) -> int | None:
        """Cells an IVF query visits (None for a flat index)."""
        ivf = self._ivf()
        return None if ivf is None else int(ivf.nprobe)

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        ivf = self._ivf()
        if ivf is None:
            return
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ReIDError(f"nprobe must be a positive integer, got {value!r}")
        ivf.nprobe = int(min(value, ivf.nlist))

    def _ivf(self) -> Any:
        faiss = require_faiss()
        try:
            return faiss.extract_index_ivf(self.index)
        except RuntimeError:
            return None

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` rows of highest cosine similarity to each query (normalised here).

        Returns:
            ``scores`` float32 [Q, k] (best first) and ``rows`` int64 [Q, k]; when the index has
            fewer than ``k`` rows (or an IVF query reaches fewer), missing entries have row −1.

        Raises:
            ReIDError: queries of another dimension, not finite, or a bad ``k``.
        """
        queries = np.asarray(queries)
        if queries.ndim != 2 or not np.issubdtype(queries.dtype, np.number):
            raise ReIDError(f"query features have shape {queries.shape}, expected numbers [n, D]")
        if queries.shape[1] != self.dim:
            raise ReIDError(
                f"query features are {queries.shape[1]}-d but the index{self._named()} holds "
                f"{self.dim}-d features; both must come from the same model"
            )
        if not np.isfinite(queries).all():
            raise ReIDError("query features contain NaN or inf")
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
            raise ReIDError(f"k must be a positive integer, got {k!r}")
        unit = _unit_rows(queries)
        faiss = require_faiss()
        wanted = int(k) if self.vectors is None or self.kind == "flat" else max(k, self.rescore)
        scores = np.empty((len(unit), int(wanted)), dtype=np.float32)
        found = np.empty((len(unit), int(wanted)), dtype=np.int64)
        # Process-wide FAISS settings: concurrent searches from several Python threads would
        # share them (same results, other speeds).
        threads = faiss_threads(self.threads)
        with _search_settings(faiss, threads, self.dim):
            for start in range(0, len(unit), QUERY_BATCH):
                stop = min(start + QUERY_BATCH, len(unit))
                if self.kind == "flat" and stop - start < threads:
                    # Fewer queries than threads: FAISS would split the gallery over its threads
                    # as matrix products one query wide, which pack every gallery block first;
                    # one thread's SIMD scan is faster (150 vs 652 ms at 1,000,000 × 512).
                    faiss.omp_set_num_threads(1)
                scores[start:stop], found[start:stop] = self.index.search(unit[start:stop], wanted)
                faiss.omp_set_num_threads(threads)
        if self.vectors is None or self.kind == "flat":
            return scores, found
        # Approximate candidates, exact scores: a few hundred rows read from the vectors file.
        scores = np.full((len(unit), int(k)), -np.inf, dtype=np.float32)
        rows = np.full((len(unit), int(k)), -1, dtype=np.int64)
        for q, candidates in enumerate(found):
            candidates = np.unique(candidates[candidates >= 0])
            exact = _unit_rows(self.vectors[candidates]) @ unit[q]
            order = np.argsort(-exact, kind="stable")[: int(k)]
            scores[q, : len(order)] = exact[order]
            rows[q, : len(order)] = candidates[order]
        return scores, rows

    def side(self, rows: np.ndarray) -> FeatureSide:
        """The gallery rows ``rows`` as a :class:`FeatureSide`: exact unit features (``flat``, or
        ``ivf-pq`` with its vectors file), else the quantised reconstruction; and their labels."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            features = np.zeros((0, self.dim), dtype=np.float32)
        elif self.vectors is not None:
            features = _unit_rows(self.vectors[rows])
        else:
            features = self.index.reconstruct_batch(rows)
        return FeatureSide(
            features=np.asarray(features, dtype=np.float32),
            pids=self.pids[rows],
            cams=self.cams[rows],
            times=self.times[rows],
            paths=None if self.paths is None else self.paths[rows],
        )

    def _named(self) -> str:
        return f" {self.path}" if self.path is not None else ""

    def save(self, path: str | os.PathLike) -> None:
        """Write the index and its side file, each atomically (temporary file, then rename)."""
        faiss = require_faiss()
        path = Path(path)
        if path.is_dir():
            raise ReIDError(f"--out {path}: is a folder, expected the path of an index file")
        with atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))
            meta = {
                **self.metadata,
                "format": FORMAT,
                "kind": self.kind,
                "dim": self.dim,
                "count": len(self),
                "index_fingerprint": fingerprint(tmp),
            }
            arrays: dict[str, np.ndarray] = {
                "pids": self.pids.astype(np.int64),
                "cams": self.cams.astype(np.int64),
                "times": self.times.astype(np.float64),
            }
            if self.paths is not None:
                arrays["paths"] = self.paths.astype(np.str_)
            if self.vectors is not None and self.kind != "flat":
                meta["vectors_file"] = vectors_file(path).name
                _write_unit_vectors(vectors_file(path), self.vectors)
            arrays.update({f"meta_{k}": np.asarray(v) for k, v in meta.items()})
            save_npz(side_file(path), **arrays)
        self.metadata = meta
        self.path = path
        if "vectors_file" in meta:
            self.vectors = np.load(vectors_file(path), mmap_mode="r")
            _no_readahead(self.vectors)

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, nprobe: int | None = None, mmap: bool = False
    ) -> GalleryIndex:
        """Read an index and its side file, checking that they belong together.

        Args:
            path: the index file (``mtmct-reid index build --out``).
            nprobe: cells an IVF query visits (default: what the build chose).
            mmap: memory-map the index file instead of reading it (flat and IVF indexes).

        Raises:
            ReIDError: a missing or unreadable file, or a side file whose rows, dimension, kind or
                fingerprint do not match the index.
        """
        faiss = require_faiss()
        path = Path(path)
        if not path.is_file():
            raise ReIDError(f"{path}: index file not found")
        side = side_file(path)
        with open_npz(side, "index side file") as npz:
            arrays = {k: npz_array(npz, k, side) for k in npz.files}
        meta = {k[5:]: v.item() for k, v in arrays.items() if k.startswith("meta_") and v.ndim == 0}
        if meta.get("format") != FORMAT:
            raise ReIDError(
                f"{side}: not an index side file of this version (format {meta.get('format')!r}, "
                f"expected {FORMAT!r})"
            )
        for key in ("pids", "cams", "times"):
            if key not in arrays:
                raise ReIDError(f"{side}: missing array '{key}'")
        if meta.get("index_fingerprint") != fingerprint(path):
            raise ReIDError(
                f"{side}: was written for another index file than {path} (fingerprints differ); "
                "build the index again"
            )
        try:
            flags = faiss.IO_FLAG_MMAP if mmap else 0
            index = faiss.read_index(str(path), flags)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise ReIDError(
                f"{path}: not a FAISS index ({first[-1] if first else 'unreadable'})"
            ) from None
        count = int(index.ntotal)
        for key in ("pids", "cams", "times", "paths"):
            if key in arrays and arrays[key].shape != (count,):
                raise ReIDError(
                    f"{side}: '{key}' has shape {arrays[key].shape}, the index holds {count} "
                    "vectors; build the index again"
                )
        if int(meta.get("count", -1)) != count or int(meta.get("dim", -1)) != int(index.d):
            raise ReIDError(
                f"{side}: describes {meta.get('count')} × {meta.get('dim')}-d vectors, the index "
                f"holds {count} × {index.d}-d; build the index again"
            )
        if meta.get("kind") not in KINDS:
            raise ReIDError(f"{side}: unknown index kind {meta.get('kind')!r}")
        result = cls(
            index=index,
            pids=arrays["pids"].astype(np.int64),
            cams=arrays["cams"].astype(np.int64),
            times=arrays["times"].astype(np.float64),
            paths=arrays["paths"].astype(np.str_) if "paths" in arrays else None,
            kind=str(meta["kind"]),
            metadata=meta,
            path=path,
        )
        if meta.get("vectors_file"):
            vectors = vectors_file(path)
            try:
                result.vectors = np.load(vectors, mmap_mode="r", allow_pickle=False)
            except (OSError, ValueError) as exc:
                raise ReIDError(f"{vectors}: unreadable vectors file ({exc})") from None
            _no_readahead(result.vectors)
            if result.vectors.shape != (count, int(index.d)):
                raise ReIDError(
                    f"{vectors}: holds {result.vectors.shape} vectors, the index "
                    f"[{count}, {index.d}]; build the index again"
                )
        if nprobe is not None:
            result.nprobe = nprobe
        return result


def build_index(
    features: np.ndarray,
    pids: np.ndarray,
    cams: np.ndarray,
    times: np.ndarray | None = None,
    paths: np.ndarray | None = None,
    *,
    kind: str = "flat",
    nlist: int | None = None,
    m: int | None = None,
    nbits: int = 4,
    nprobe: int | None = None,
    train_size: int | None = None,
    seed: int = 0,
    threads: int | None = None,
    keep_vectors: bool = False,
    metadata: Mapping[str, Any] | None = None,
) -> GalleryIndex:
    """Build a gallery index from features [N, D] (any array that slices: numpy or a memory map).

    Rows are L2-normalised and added ``ADD_CHUNK`` at a time, so a build from a memory-mapped file
    holds one chunk of float32 beyond the index itself.

    Args:
        features: [N, D] gallery features.
        pids, cams: [N] labels; ``times`` [N] (NaN when unknown) and ``paths`` [N] optional.
        kind: ``"flat"`` (exact) or ``"ivf-pq"`` (approximate, compressed).
        nlist: IVF cells (default :func:`default_nlist`).
        m: sub-quantisers of the product quantiser, a divisor of D (default :func:`default_m`);
            each vector's code is ``m · nbits / 8`` bytes.
        nbits: bits per sub-quantiser code: 4 (default) builds FAISS's fast-scan IVF-PQ
            (``IndexIVFPQFastScan``, codes compared 32 at a time in SIMD registers), 8 the
            classic ``IndexIVFPQ``.
        nprobe: cells a query visits (default :func:`default_nprobe`).
        train_size: rows sampled to train IVF-PQ (default: min(N, max(64·nlist, 65536))).
        seed: seed of the training sample and of k-means.
        threads: FAISS threads (default: every usable core).
        keep_vectors: ``ivf-pq`` only: keep the exact vectors (``save`` writes them to
            ``OUT.vectors.npy``, read back as a memory map), so that a search re-scores its top
            candidates exactly; 4·D bytes per image on disk, only the rows read in memory.
        metadata: extra entries for the side file.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> index = build_index(rng.normal(size=(50, 8)), np.arange(50), np.ones(50, np.int64))
        >>> len(index), index.dim, index.kind
        (50, 8, 'flat')
    """
    faiss = require_faiss()
    if kind not in KINDS:
        raise ReIDError(f"--kind {kind}: expected one of {', '.join(KINDS)}")
    shape = getattr(features, "shape", None)
    if shape is None or len(shape) != 2 or shape[0] < 1 or shape[1] < 1:
        raise ReIDError(f"gallery features have shape {shape}, expected [N, D] with N, D >= 1")
    count, dim = int(shape[0]), int(shape[1])
    pids = np.asarray(pids, dtype=np.int64)
    cams = np.asarray(cams, dtype=np.int64)
    times = np.full(count, np.nan) if times is None else np.asarray(times, dtype=np.float64)
    for name, column in (("pids", pids), ("cams", cams), ("times", times), ("paths", paths)):
        if column is not None and np.shape(column) != (count,):
            raise ReIDError(f"gallery {name} have shape {np.shape(column)}, expected [{count}]")
    faiss.omp_set_num_threads(faiss_threads(threads))
    meta: dict[str, Any] = dict(metadata or {})
    if kind == "flat":
        index = faiss.IndexFlatIP(dim)
    else:
        nlist = default_nlist(count) if nlist is None else int(nlist)
        if isinstance(nbits, bool) or nbits not in (4, 8):
            raise ReIDError(f"--nbits {nbits!r}: expected 4 (fast scan) or 8")
        m = default_m(dim, nbits) if m is None else int(m)
        if nlist < 1 or nlist > count:
            raise ReIDError(f"--nlist {nlist}: expected 1 to the number of vectors ({count})")
        if m < 1 or dim % m:
            raise ReIDError(f"--m {m}: must divide the feature dimension {dim}")
        quantizer = faiss.IndexFlatIP(dim)
        if nbits == 4:
            # 4-bit codes: a query's look-up tables fit SIMD registers and 32 codes are scored
            # per instruction; several times faster per code than 8-bit PQ at the same bytes,
            # which buys more cells per query (benchmarks/bench_index.py).
            index = faiss.IndexIVFPQFastScan(
                quantizer, dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT
            )
        else:
            index = faiss.IndexIVFPQ(quantizer, dim, nlist, m, nbits, faiss.METRIC_INNER_PRODUCT)
            # 64 points per code word (16,384 per sub-quantiser, FAISS's default is 65,536): a
            # quarter of the training time.
            index.pq.cp.max_points_per_centroid = 64
        index.cp.seed = int(seed)
        index.pq.cp.seed = int(seed)
        train_count = min(count, train_size or max(64 * nlist, 65536))
        if train_count < max(nlist, 2**nbits):
            raise ReIDError(
                f"{count} vectors cannot train {nlist} cells and {2**nbits} codes per "
                "sub-quantiser; use --kind flat or a smaller --nlist"
            )
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(count, size=train_count, replace=False))
        log.info("training ivf-pq (nlist %d, m %d) on %d vectors", nlist, m, train_count)
        index.train(_unit_rows(features[sample]))
        # Rows are reconstructed for ranking; the direct map makes that possible for IVF.
        index.set_direct_map_type(faiss.DirectMap.Array)
        index.nprobe = int(nprobe or default_nprobe(nlist))
        meta.update(
            {
                "nlist": nlist,
                "m": m,
                "nbits": nbits,
                "code_bytes": m * nbits // 8,
                "fast_scan": nbits == 4,
                "train_size": train_count,
            }
        )
    for start in range(0, count, ADD_CHUNK):
        index.add(_unit_rows(features[start : start + ADD_CHUNK]))
    return GalleryIndex(
        index=index,
        pids=pids,
        cams=cams,
        times=times,
        paths=None if paths is None else np.asarray(paths, dtype=np.str_),
        kind=kind,
        metadata=meta,
        vectors=features if keep_vectors and kind != "flat" else None,
    )


@dataclass(frozen=True)
class IndexedSearchResult(SearchResult):
    """A :class:`~mtmct_reid.retrieval.search.SearchResult` from an index, with whether it is
    provably the result of a search of the whole gallery.

    Args:
        exact: True when the ranking is provably the one a search of the whole gallery gives
            (same rows, same order): the candidates were every gallery row, or (flat index) no
            gallery image outside the candidates can score above the last entry, even with the
            highest transit-time probability the query's camera has.
        candidates: gallery rows the index returned for this query.
        outside_bound: the highest score (joint, or visual when ranked by appearance) that a gallery
            image outside the candidates could reach; ``-inf`` when there is none outside, NaN when
            it cannot be bounded (approximate candidates).
    """

    exact: bool = False
    candidates: int = 0
    outside_bound: float = math.nan

    @property
    def exactness(self) -> str:
        """One line for people: whether the result is exact, and why (or why not).

        Example:
            >>> result = search_index(index, q, [1], [41250.0], st_model=st)[0]  # doctest: +SKIP
            >>> result.exactness  # doctest: +SKIP
            'exact: no image outside the 1000 candidates can reach 0.3121 (rank 10: 0.4410)'
        """
        if self.exact and math.isinf(self.outside_bound):
            return f"exact: the {self.candidates} candidates are the whole gallery"
        if self.exact:
            return (
                f"exact: no image outside the {self.candidates} candidates can reach "
                f"{self.outside_bound:.4f} (rank {len(self)}: {float(self.scores[-1]):.4f})"
            )
        if math.isnan(self.outside_bound):
            return (
                f"approximate: the {self.candidates} candidates of an ivf-pq index are not "
                "provably the nearest"
            )
        last = f"{float(self.scores[-1]):.4f}" if len(self) else "none"
        return (
            f"not proven exact: an image outside the {self.candidates} candidates could reach "
            f"{self.outside_bound:.4f} (rank {len(self)}: {last}); raise --candidates"
        )


def _max_st_probability(st_model: TransitTimeModel, camera: int) -> float:
    """The highest transit-time probability between ``camera`` and any camera at any delay (the
    lookup is symmetric: the camera may be the earlier or the later one)."""
    (row,) = st_model.camera_index(np.array([camera]), "query camera")
    table = st_model.probabilities.astype(np.float32)
    return float(max(table[row].max(), table[:, row].max()))


def _outside_bound(
    last_visual: float,
    ranked_joint: bool,
    st_max: float,
    fusion: FusionParams,
) -> float:
    """The highest score a gallery image could reach whose cosine similarity is at most
    ``last_visual`` (the candidates' lowest) and whose transit probability is in [0, st_max].

    Both logistic cues are monotone (either way, by the sign of γ), so the maximum over an interval is
    at one of its ends.
    """
    visual = min(last_visual + VISUAL_MARGIN, 1.0 + VISUAL_MARGIN)
    if not ranked_joint:
        return visual

    def cue(x: float, lam: float, gamma: float) -> float:
        return 1.0 / (1.0 + lam * math.exp(min(-gamma * x, 700.0)))

    best_visual = max(cue(v, fusion.lambda0, fusion.gamma0) for v in (-1.0, visual))
    best_st = max(cue(p, fusion.lambda1, fusion.gamma1) for p in (0.0, st_max))
    return best_visual * best_st * (1.0 + JOINT_MARGIN)


def search_index(
    index: GalleryIndex,
    query_features: np.ndarray,
    query_cams: Sequence[int] | np.ndarray,
    query_times: Sequence[float] | np.ndarray,
    *,
    st_model: TransitTimeModel | None = None,
    fusion: FusionParams | None = None,
    top_k: int = 10,
    candidates: int = 1000,
    query_pids: Sequence[int] | np.ndarray | None = None,
    cross_camera: bool = False,
) -> list[SearchResult]:
    """Rank a large gallery: the ``candidates`` rows most similar in appearance come from the index,
    and :func:`~mtmct_reid.retrieval.search.search_gallery` ranks them (transit-time fusion, protocol filters).

    With a flat index the candidates and their visual scores are exact, so the result equals a
    search of the whole gallery whenever the fused top ``top_k`` lie among the ``candidates``
    visually closest rows (always when ``candidates`` ≥ the gallery size). With IVF-PQ the
    candidates are approximate nearest neighbours and their visual scores those of the quantised
    vectors.

    Args:
        index: the gallery index.
        query_features: [n, D] query features.
        query_cams, query_times: [n] the queries' cameras and times.
        st_model: transit-time model; None ranks by appearance only.
        fusion: logistic smoothing parameters (default: the st-ReID ones).
        top_k: entries kept per query.
        candidates: rows taken from the index per query before fusion.
        query_pids: [n] the queries' ids when known (protocol filters, match marks).
        cross_camera: leave out gallery images of the query's own camera.

    Example:
        >>> results = search_index(GalleryIndex.load("gallery.faiss"), q, [1], [41250.0],
        ...                        st_model=st, top_k=5)  # doctest: +SKIP
    """
    from mtmct_reid.retrieval.fusion import DEFAULT_FUSION
    from mtmct_reid.retrieval.search import search_gallery

    if isinstance(candidates, bool) or not isinstance(candidates, int | np.integer):
        raise ReIDError(f"candidates must be a positive integer, got {candidates!r}")
    if candidates < 1:
        raise ReIDError(f"candidates must be a positive integer, got {candidates!r}")
    queries = np.asarray(query_features)
    scores, rows = index.search(queries, int(min(candidates, len(index))))
    n = len(queries)
    cams = np.broadcast_to(np.asarray(query_cams), (n,))
    times = np.broadcast_to(np.asarray(query_times), (n,))
    pids = None if query_pids is None else np.broadcast_to(np.asarray(query_pids), (n,))
    options: dict[str, Any] = {"st_model": st_model, "top_k": top_k, "cross_camera": cross_camera}
    if fusion is not None:
        options["fusion"] = fusion
    params = fusion if fusion is not None else DEFAULT_FUSION
    # Exact visual scores of the right rows: a flat index, or ivf-pq re-scoring every row it found
    # from its vectors (only when it found the whole gallery).
    exact_scores = index.kind == "flat" or index.vectors is not None
    results = []
    st_max: dict[int, float] = {}  # per query camera
    for query in range(n):
        valid = rows[query] >= 0
        # Candidates in gallery order, so ties break as in a search of the whole gallery.
        found = np.sort(rows[query][valid])
        (result,) = search_gallery(
            queries[query : query + 1],
            cams[query : query + 1],
            times[query : query + 1],
            index.side(found),
            query_pids=None if pids is None else pids[query : query + 1],
            **options,
        )
        if len(found) == len(index):
            exact = exact_scores
            bound = -math.inf if exact else math.nan
        elif index.kind == "flat":
            joint = result.ranked_by == RANKED_JOINT
            camera = int(cams[query])
            if joint and camera not in st_max:
                st_max[camera] = _max_st_probability(st_model, camera)
            last_visual = float(scores[query][valid].min()) if valid.any() else 1.0
            bound = _outside_bound(last_visual, joint, st_max.get(camera, 0.0), params)
            # A full list whose last entry beats anything outside the candidates is the whole
            # gallery's: filters only remove rows, and ties break by gallery order.
            exact = len(result) == top_k and float(result.scores[-1]) > bound
        else:
            bound, exact = math.nan, False
        values = {f.name: getattr(result, f.name) for f in fields(result)}
        values.update(query_index=query, gallery_indices=found[result.gallery_indices])
        results.append(
            IndexedSearchResult(
                **values, exact=bool(exact), candidates=len(found), outside_bound=bound
            )
        )
    return results

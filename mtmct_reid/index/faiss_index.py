"""A FAISS index of a gallery with the labels of its rows: build, save, load (checked against its
side file), and search by cosine similarity with FAISS's process-wide settings chosen per call.
See :mod:`mtmct_reid.index` for the kinds and the files.
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtmct_reid._io import atomic_path, describe_file, npz_array, open_npz, save_npz
from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import FeatureSide
from mtmct_reid.index.settings import (
    QUERY_BATCH,
    default_m,
    default_nlist,
    default_nprobe,
    faiss_settings,
    faiss_threads,
    require_faiss,
)
from mtmct_reid.validation import positive_int

log = logging.getLogger(__name__)

KINDS = ("flat", "ivf-pq")
#: Rows an IVF-PQ search with exact vectors re-scores (at least k).
RESCORE = 100
#: Version of the side file's layout.
FORMAT = "mtmct-reid-index-1"
#: Rows normalised and added to the index at a time (bounds the memory of a build).
ADD_CHUNK = 65536
#: FAISS's default ``min_points_per_centroid``: the training points it advises per centroid.
FAISS_POINTS_PER_CENTROID = 39
#: Bytes at each end of the index file that its fingerprint hashes.
_FINGERPRINT_BYTES = 1 << 20


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
        ivf.nprobe = min(positive_int("nprobe", value), int(ivf.nlist))

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
        k = positive_int("k", k)
        unit = _unit_rows(queries)
        faiss = require_faiss()
        wanted = int(k) if self.vectors is None or self.kind == "flat" else max(k, self.rescore)
        scores = np.empty((len(unit), int(wanted)), dtype=np.float32)
        found = np.empty((len(unit), int(wanted)), dtype=np.int64)
        threads = faiss_threads(self.threads)
        with faiss_settings(faiss, threads, self.dim):
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
            features = _reconstruct(require_faiss(), self.index, rows)
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
        looks = describe_file(path)
        if looks not in ("a FAISS index", "binary data"):  # FAISS's own reader judges the rest
            raise ReIDError(f"{path}: is {looks}, not a FAISS index ('mtmct-reid index build')")
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
    count = int(shape[0])
    pids = np.asarray(pids, dtype=np.int64)
    cams = np.asarray(cams, dtype=np.int64)
    times = np.full(count, np.nan) if times is None else np.asarray(times, dtype=np.float64)
    for name, column in (("pids", pids), ("cams", cams), ("times", times), ("paths", paths)):
        if column is not None and np.shape(column) != (count,):
            raise ReIDError(f"gallery {name} have shape {np.shape(column)}, expected [{count}]")
    meta: dict[str, Any] = dict(metadata or {})
    with faiss_settings(faiss, faiss_threads(threads)):
        index = _build_faiss_index(
            faiss, features, kind, nlist, m, nbits, nprobe, train_size, seed, meta
        )
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


def _reconstruct(faiss: Any, index: Any, rows: np.ndarray) -> np.ndarray:
    """The stored (quantised) vectors of ``rows``.

    FAISS's own ``reconstruct`` of a 4-bit fast-scan IVF-PQ index read back from a file crashes the
    process (FAISS 1.15: a segmentation fault), so those codes are unpacked from their blocks and
    decoded here, exactly as FAISS decodes them (the same values as its reconstruction before the
    index was written).
    """
    if not isinstance(index, faiss.IndexIVFPQFastScan):
        return index.reconstruct_batch(rows)
    lists = faiss.downcast_InvertedLists(index.invlists)
    codes = np.empty((len(rows), index.code_size), dtype=np.uint8)
    list_of_row = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows.tolist()):
        # The direct map packs a row's list number and its offset in that list into one integer.
        where = index.direct_map.get(int(row))
        list_of_row[i], offset = where >> 32, where & 0xFFFFFFFF
        lists.packer.unpack_1_c(
            lists.get_codes(int(list_of_row[i])), int(offset), faiss.swig_ptr(codes[i])
        )
    decoded = index.pq.decode(codes)
    if index.by_residual:
        decoded += index.quantizer.reconstruct_batch(list_of_row)
    return decoded


def _build_faiss_index(
    faiss: Any,
    features: np.ndarray,
    kind: str,
    nlist: int | None,
    m: int | None,
    nbits: int,
    nprobe: int | None,
    train_size: int | None,
    seed: int,
    meta: dict[str, Any],
) -> Any:
    """The FAISS index of :func:`build_index`, trained and filled; IVF-PQ's settings go to ``meta``."""
    count, dim = int(features.shape[0]), int(features.shape[1])
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
        # FAISS prints its advice on scarce training points to stderr once per clustering (once
        # per sub-quantiser: hundreds of lines); it is said once here instead, and FAISS's own
        # threshold, which changes nothing else, is lowered to silence it.
        advised = FAISS_POINTS_PER_CENTROID * max(nlist, 2**nbits)
        if train_count < advised:
            log.warning(
                "ivf-pq: %d training vectors for %d cells and %d codes per sub-quantiser; FAISS "
                "advises at least %d (--kind flat is exact at this size)",
                train_count,
                nlist,
                2**nbits,
                advised,
            )
        index.cp.min_points_per_centroid = 1
        index.pq.cp.min_points_per_centroid = 1
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
    return index

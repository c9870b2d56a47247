"""Person search across cameras: rank a gallery for one or more query images, by appearance and, when a
transit-time model is given, by the st-ReID joint score of appearance and camera-to-camera timing.

Two pieces:

* :func:`search_gallery` ranks gallery features for query features (numpy only). A query whose camera
  the transit-time model never saw, or whose time is unknown, is ranked by visual similarity alone
  (with a warning) instead of failing the whole search.
* :func:`gallery_featureset_cached` extracts the features of a gallery folder with a checkpoint once
  and keeps them in a cache file keyed by the checkpoint's bytes and the image list, so the next
  search with the same model and images starts at once.

Example:
    >>> gallery = gallery_featureset_cached("last.ckpt", "Market-1501").side     # doctest: +SKIP
    >>> results = search_gallery(query_feats, [1], [41250.0], gallery,           # doctest: +SKIP
    ...                          st_model=TransitTimeModel.load("st.npz"), top_k=5)
    >>> results[0].paths[0], results[0].joint_scores[0]                         # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtmct_reid._io import open_npz, save_npz
from mtmct_reid.data.readers import list_images, read_dataset
from mtmct_reid.data.readers import parse_image_names as parse_image_names  # public here too
from mtmct_reid.data.records import DISTRACTOR_PID, Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.featureset import (
    FeatureSet,
    FeatureSide,
    metadata_arrays,
    read_metadata,
    read_side,
    side_arrays,
)
from mtmct_reid.retrieval.fusion import DEFAULT_FUSION, FusionParams, fuse
from mtmct_reid.retrieval.protocol import ignored_for_query, normalise_rows

if TYPE_CHECKING:
    from mtmct_reid.models.registry import ReIDModel
    from mtmct_reid.retrieval.transit import TransitTimeModel

log = logging.getLogger(__name__)

#: Query rows scored at once (a [chunk, gallery] float32 block).
SEARCH_CHUNK = 256
#: ``SearchResult.ranked_by`` when the joint (visual + spatial-temporal) score ranks the gallery.
RANKED_JOINT = "visual+st"
#: ``SearchResult.ranked_by`` when visual similarity alone ranks the gallery.
RANKED_VISUAL = "visual"
#: Version of the gallery cache's key; bump it when what goes into a cached file changes.
CACHE_FORMAT = "mtmct-reid-gallery-cache-1"


@dataclass(frozen=True)
class SearchResult:
    """The top-ranked gallery images of one query.

    Args:
        query_index: row of the query in the searched query features.
        query_camera: the query's camera id (``-1`` when unknown).
        query_time: the query's time (NaN when unknown).
        query_pid: the query's person id when known (``> 0``), else ``-1``.
        ranked_by: ``"visual+st"`` (joint score) or ``"visual"``.
        gallery_indices: int64 [k] rows of the gallery, best first.
        paths: [k] image paths of those rows, or None when the gallery has no paths.
        cameras: int64 [k] camera ids.
        times: float64 [k] times.
        pids: int64 [k] person ids (``0`` distractor / unlabelled, ``-1`` junk).
        visual_scores: float32 [k] cosine similarities.
        st_probabilities: float32 [k] transit-time probabilities (NaN without a usable model).
        joint_scores: float32 [k] joint st-ReID scores (NaN without a usable model).

    Example:
        >>> result = search_gallery(q, [1], [100.0], gallery)[0]  # doctest: +SKIP
        >>> result.scores[:3], result.matches[:3]                 # doctest: +SKIP
    """

    query_index: int
    query_camera: int
    query_time: float
    query_pid: int
    ranked_by: str
    gallery_indices: np.ndarray
    paths: np.ndarray | None
    cameras: np.ndarray
    times: np.ndarray
    pids: np.ndarray
    visual_scores: np.ndarray
    st_probabilities: np.ndarray
    joint_scores: np.ndarray

    def __len__(self) -> int:
        return len(self.gallery_indices)

    @property
    def scores(self) -> np.ndarray:
        """The scores the list is ranked by (joint or visual), best first."""
        return self.joint_scores if self.ranked_by == RANKED_JOINT else self.visual_scores

    @property
    def labelled(self) -> bool:
        """True when the query's identity is known, so each entry is a match or a mistake."""
        return self.query_pid > 0

    @property
    def matches(self) -> np.ndarray:
        """bool [k]: the entry shows the query's person (all False when the query id is unknown)."""
        return (self.pids == self.query_pid) & (self.query_pid > 0)


@dataclass(frozen=True)
class GalleryFeatures:
    """Features of a gallery folder, from the cache or freshly extracted.

    Args:
        side: the gallery's features, ids, cameras, times and paths.
        cache_path: the cache file holding them.
        from_cache: True when they were read from ``cache_path`` without extracting.
        metadata: model name, backbone, image size, checkpoint and cache key.
    """

    side: FeatureSide
    cache_path: Path
    from_cache: bool
    metadata: dict[str, Any]


def search_gallery(
    query_features: np.ndarray,
    query_cams: Sequence[int] | np.ndarray,
    query_times: Sequence[float] | np.ndarray,
    gallery: FeatureSide,
    *,
    st_model: TransitTimeModel | None = None,
    fusion: FusionParams = DEFAULT_FUSION,
    top_k: int = 10,
    query_pids: Sequence[int] | np.ndarray | None = None,
    cross_camera: bool = False,
    chunk_size: int = SEARCH_CHUNK,
) -> list[SearchResult]:
    """Rank the gallery for each query: by the joint st-ReID score when the transit-time model can
    score the query, else by visual (cosine) similarity. Ties keep gallery order.

    Args:
        query_features: [n, D] query embeddings (normalised here, any scale accepted).
        query_cams: [n] camera id of each query (``-1`` when unknown: visual only).
        query_times: [n] time of each query (NaN when unknown: visual only).
        gallery: the gallery's features and labels (:class:`~mtmct_reid.featureset.FeatureSide`).
        st_model: transit-time model; None ranks by appearance only.
        fusion: logistic smoothing parameters of the joint score.
        top_k: entries kept per query (fewer when the gallery is smaller).
        query_pids: [n] person ids of the queries when known; then, as in evaluation, gallery
            images of the same person from the query's own camera and junk images (id -1) are
            left out, and each entry is marked a match or a mistake.
        cross_camera: leave out every gallery image from the query's own camera.
        chunk_size: query rows scored at once.

    Returns:
        One :class:`SearchResult` per query, in query order.

    Raises:
        ReIDError: shapes that do not agree, a dimension other than the gallery's, or a bad top_k.

    Example:
        >>> side = FeatureSide(np.eye(3, dtype=np.float32), np.array([1, 2, 3]),
        ...                    np.array([2, 2, 3]), np.array([10.0, 20.0, 30.0]))
        >>> result = search_gallery(np.array([[0.1, 1.0, 0.0]]), [1], [0.0], side, top_k=2)[0]
        >>> result.gallery_indices.tolist(), result.ranked_by
        ([1, 0], 'visual')
    """
    queries = np.asarray(query_features)
    if queries.ndim != 2 or not np.issubdtype(queries.dtype, np.number):
        raise ReIDError(f"query features have shape {queries.shape}, expected numbers [n, D]")
    n = queries.shape[0]
    if queries.shape[1] != gallery.features.shape[1]:
        raise ReIDError(
            f"query features are {queries.shape[1]}-d but the gallery's are "
            f"{gallery.features.shape[1]}-d; both must come from the same model"
        )
    if not np.isfinite(queries).all():
        raise ReIDError("query features contain NaN or inf")
    cams = _query_column(query_cams, n, "query cameras", np.int64)
    times = _query_column(query_times, n, "query times", np.float64)
    pids = None if query_pids is None else _query_column(query_pids, n, "query ids", np.int64)
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ReIDError(f"top_k must be a positive integer, got {top_k!r}")
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, (int, np.integer))
        or chunk_size < 1
    ):
        raise ReIDError(f"chunk_size must be a positive integer, got {chunk_size!r}")

    gallery_unit = normalise_rows(gallery.features)
    query_unit = normalise_rows(queries)
    st_rows = _st_usable_rows(st_model, cams, times) if st_model is not None else np.zeros(n, bool)
    st_columns = _st_usable_columns(st_model, gallery) if st_rows.any() else None

    results: list[SearchResult] = []
    for start in range(0, n, chunk_size):
        stop = min(start + chunk_size, n)
        visual = query_unit[start:stop] @ gallery_unit.T
        probability = np.full(visual.shape, np.nan, dtype=np.float32)
        joint = np.full(visual.shape, np.nan, dtype=np.float32)
        rows = np.flatnonzero(st_rows[start:stop])
        if rows.size:
            assert st_model is not None and st_columns is not None
            block = np.zeros((rows.size, len(gallery)), dtype=np.float32)
            block[:, st_columns] = st_model.probability(
                cams[start + rows, None],
                times[start + rows, None],
                gallery.cams[None, st_columns],
                gallery.times[None, st_columns],
            )
            probability[rows] = block
            joint[rows] = fuse(visual[rows], block, fusion)
        for row in range(stop - start):
            query = start + row
            with_st = bool(st_rows[query])
            scores = joint[row] if with_st else visual[row]
            keep = _kept_columns(
                gallery, cams[query], None if pids is None else pids[query], cross_camera
            )
            candidates = np.flatnonzero(keep) if keep is not None else np.arange(len(gallery))
            # Descending score, ties by gallery index: a stable sort of the negated scores.
            order = candidates[np.argsort(-scores[candidates], kind="stable")[:top_k]]
            results.append(
                SearchResult(
                    query_index=query,
                    query_camera=int(cams[query]),
                    query_time=float(times[query]),
                    query_pid=int(pids[query]) if pids is not None and pids[query] > 0 else -1,
                    ranked_by=RANKED_JOINT if with_st else RANKED_VISUAL,
                    gallery_indices=order.astype(np.int64),
                    paths=None if gallery.paths is None else gallery.paths[order],
                    cameras=gallery.cams[order],
                    times=gallery.times[order],
                    pids=gallery.pids[order],
                    visual_scores=visual[row, order].astype(np.float32),
                    st_probabilities=probability[row, order],
                    joint_scores=joint[row, order],
                )
            )
    return results


def _query_column(values: Any, n: int, name: str, dtype: type) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 0:
        array = np.full(n, array)
    if array.shape != (n,):
        raise ReIDError(f"{name} have shape {array.shape}, expected [{n}] (one per query)")
    if array.size and not np.issubdtype(array.dtype, np.number):
        raise ReIDError(f"{name} have dtype {array.dtype}, expected numbers")
    return array.astype(dtype)


def _st_usable_rows(st_model: TransitTimeModel, cams: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Queries the transit-time model can score; each other one is warned about once."""
    known = np.isin(cams, st_model.camera_ids)
    timed = np.isfinite(times)
    for query in np.flatnonzero(~known | ~timed):
        if cams[query] < 0:
            reason = "its camera is unknown"
        elif not known[query]:
            reason = (
                f"camera {int(cams[query])} is not in the transit-time model (cameras "
                f"{st_model.camera_ids.tolist()})"
            )
        else:
            reason = "its time is unknown"
        log.warning("query %d: %s; ranked by visual similarity only", int(query), reason)
    return known & timed


def _st_usable_columns(st_model: TransitTimeModel, gallery: FeatureSide) -> np.ndarray:
    """Gallery rows with a known camera and time; the others get transit probability 0."""
    usable = np.isin(gallery.cams, st_model.camera_ids) & np.isfinite(gallery.times)
    if not usable.all():
        unknown = np.unique(gallery.cams[~np.isin(gallery.cams, st_model.camera_ids)])
        log.warning(
            "%d of %d gallery images have %s; their transit probability is taken as 0",
            int(np.count_nonzero(~usable)),
            len(gallery),
            f"cameras {unknown.tolist()} unknown to the transit-time model"
            if unknown.size
            else "no time",
        )
    return np.flatnonzero(usable)


def _kept_columns(
    gallery: FeatureSide, camera: int, pid: int | None, cross_camera: bool
) -> np.ndarray | None:
    keep = None
    if cross_camera:
        keep = gallery.cams != camera
    if pid is not None and pid > 0:
        # The evaluation protocol's junk: the same person seen by the same camera, and junk boxes.
        protocol = ~ignored_for_query(pid, camera, gallery.pids, gallery.cams)
        keep = protocol if keep is None else keep & protocol
    return keep


# ---------------------------------------------------------------------------------------------
# Gallery input: a dataset, a folder of images, or a features file


def read_gallery_records(
    gallery: str | os.PathLike, *, layout: str | None = None, pattern: str | None = None
) -> Records:
    """The gallery images of a dataset folder, or every image of a plain folder.

    A dataset (any layout :func:`~mtmct_reid.data.readers.read_dataset` reads) gives its gallery
    split with ids, cameras and times. A plain folder of images gives all of them (sorted by name):
    Market-1501 names (``0002_c1s1_000451_03.jpg``) or DukeMTMC-reID names (``0005_c2_f0046985.jpg``)
    give ids, cameras and times; other names leave the images unlabelled (id 0, camera -1, no time:
    visual search only).

    Args:
        gallery: dataset root, folder of images, or CSV manifest (its ``gallery`` rows).
        layout: dataset layout (see ``read_dataset``); None detects it.
        pattern: file-name regex for the ``regex`` layout.

    Example:
        >>> records = read_gallery_records("Market-1501")  # doctest: +SKIP
        >>> len(records)                                   # doctest: +SKIP
        19732
    """
    root = Path(gallery)
    if root.is_file() and (root.suffix.lower() == ".csv" or layout == "manifest"):
        records = read_dataset(root, layout=layout, pattern=pattern).split("gallery")
        if len(records) == 0:
            raise ReIDError(f"--gallery {root}: the manifest has no gallery rows")
        return records
    if not root.is_dir():
        raise ReIDError(
            f"--gallery {root}: not a folder (expected a dataset, images, a CSV manifest or a .npz)"
        )
    images = [root / name for name in list_images(root)]
    if images and layout is None and pattern is None:
        return _plain_folder_records(root, images)
    records = read_dataset(root, layout=layout, pattern=pattern).split("gallery")
    if len(records) == 0:
        raise ReIDError(f"--gallery {root}: the dataset has no gallery images")
    return records


def _plain_folder_records(root: Path, images: list[Path]) -> Records:
    n = len(images)
    try:
        parsed = parse_image_names([p.name for p in images])
    except ReIDError as exc:
        raise ReIDError(f"--gallery {root}: {exc}") from None
    if parsed is None:
        log.warning(
            "%s: image names follow neither Market-1501 nor DukeMTMC-reID naming; the gallery has "
            "no ids, cameras or times (visual search only)",
            root,
        )
        parsed = (
            np.full(n, DISTRACTOR_PID, dtype=np.int64),
            np.full(n, -1, dtype=np.int64),
            np.full(n, np.nan),
        )
    pids, cams, times = parsed
    return Records.from_columns(
        [str(p.resolve()) for p in images], pids, cams, times, ["gallery"] * n, root=root
    )


def load_gallery_features(path: str | os.PathLike) -> tuple[FeatureSide, dict[str, Any]]:
    """The gallery side of a features file, or of a gallery cache file (gallery arrays only).

    Args:
        path: a features ``.npz`` (``mtmct-reid extract``) or a cache written by
            :func:`gallery_featureset_cached`.

    Returns:
        ``(gallery, metadata)``.

    Example:
        >>> gallery, meta = load_gallery_features("features.npz")  # doctest: +SKIP
    """
    path = Path(path)
    with open_npz(path, "features file") as npz:
        if "query_features" not in npz.files:  # a gallery cache: gallery arrays only
            return read_side(npz, path, "gallery"), read_metadata(npz, path)
    features = FeatureSet.load(path)
    return features.gallery, dict(features.metadata)


def _save_gallery_only(path: Path, side: FeatureSide, metadata: dict[str, Any]) -> None:
    save_npz(path, **side_arrays("gallery", side), **metadata_arrays(metadata))


# ---------------------------------------------------------------------------------------------
# The gallery cache


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/mtmct-reid`` (``~/.cache/mtmct-reid``): where gallery features are cached.

    Example:
        >>> default_cache_dir().name
        'mtmct-reid'
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mtmct-reid"


def file_digest(path: str | os.PathLike, chunk_bytes: int = 1 << 22) -> str:
    """SHA-256 of a file's bytes, in hex.

    Example:
        >>> len(file_digest(__file__))
        64
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def gallery_cache_key(
    checkpoint: str | os.PathLike,
    records: Records,
    *,
    image_size: tuple[int, int],
    flip: bool = True,
    precision: str = "32",
) -> str:
    """The key a gallery's cached features are valid for: the checkpoint's bytes, every image's path,
    size and modification time, its id, camera and time, and the extraction options.

    Example:
        >>> key = gallery_cache_key("last.ckpt", records, image_size=(128, 64))  # doctest: +SKIP
    """
    digest = hashlib.sha256()
    digest.update(f"{CACHE_FORMAT}\n{file_digest(checkpoint)}\n".encode())
    digest.update(f"{image_size[0]}x{image_size[1]} flip={bool(flip)} {precision}\n".encode())
    for path, pid, cam, when in zip(
        records.paths, records.pids, records.cams, records.times, strict=True
    ):
        try:
            stat = os.stat(path)
        except OSError:
            raise ReIDError(f"{path}: gallery image not found") from None
        digest.update(
            f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0{pid}\0{cam}\0{when!r}\n".encode()
        )
    return digest.hexdigest()


def gallery_featureset_cached(
    checkpoint: str | os.PathLike,
    gallery_dir: str | os.PathLike,
    cache_path: str | os.PathLike | None = None,
    *,
    layout: str | None = None,
    pattern: str | None = None,
    image_size: tuple[int, int] | None = None,
    batch_size: int = 64,
    device: str = "cpu",
    precision: str = "32",
    flip: bool = True,
    num_workers: int = 0,
    progress: bool = True,
    model: ReIDModel | None = None,
) -> GalleryFeatures:
    """Gallery features of a folder with a checkpoint, extracted once and then read from a cache.

    The cache file is a gallery-only features ``.npz`` whose metadata holds the key of
    :func:`gallery_cache_key`; it is used only while the key matches (same checkpoint bytes, same
    images unchanged, same options), otherwise the gallery is extracted again and the file replaced.

    Args:
        checkpoint: checkpoint of ``mtmct-reid train``.
        gallery_dir: dataset root (its gallery split) or a folder of images
            (see :func:`read_gallery_records`).
        cache_path: the cache file; default ``default_cache_dir()/gallery-<key>.npz``.
        layout: dataset layout for ``read_dataset`` (None: detected).
        pattern: file-name regex for the ``regex`` layout.
        image_size: ``(height, width)``; default the checkpoint's training size.
        batch_size: images per forward pass.
        device: ``"cpu"``, ``"cuda"``, ``"auto"``...
        precision: ``"32"`` or ``"bf16"``.
        flip: add the mirrored image's features (the st-ReID test feature).
        num_workers: image decoding worker processes.
        progress: show a progress bar while extracting.
        model: the checkpoint's model if already loaded (avoids loading it twice).

    Returns:
        A :class:`GalleryFeatures` (``from_cache`` tells whether extraction was skipped).

    Example:
        >>> first = gallery_featureset_cached("last.ckpt", "Market-1501")   # doctest: +SKIP
        >>> again = gallery_featureset_cached("last.ckpt", "Market-1501")   # doctest: +SKIP
        >>> first.from_cache, again.from_cache                              # doctest: +SKIP
        (False, True)
    """
    from mtmct_reid.features import FeatureExtractor
    from mtmct_reid.models.checkpoint import checkpoint_image_size, load_model_from_checkpoint

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ReIDError(f"{checkpoint}: checkpoint not found")
    records = read_gallery_records(gallery_dir, layout=layout, pattern=pattern)
    if image_size is None:
        image_size = checkpoint_image_size(checkpoint)
    image_size = (int(image_size[0]), int(image_size[1]))
    key = gallery_cache_key(
        checkpoint, records, image_size=image_size, flip=flip, precision=precision
    )
    path = (
        Path(cache_path)
        if cache_path is not None
        else default_cache_dir() / f"gallery-{key[:20]}.npz"
    )
    if path.is_dir():
        raise ReIDError(f"--cache {path}: is a folder, expected the path of a .npz file")
    if path.is_file():
        try:
            side, metadata = load_gallery_features(path)
        except ReIDError as exc:
            log.warning("gallery cache %s is unreadable (%s); extracting again", path, exc)
        else:
            if metadata.get("cache_key") == key:
                log.info("gallery features of %s read from cache %s", gallery_dir, path)
                return GalleryFeatures(side, path, True, metadata)
            log.info(
                "gallery cache %s is for another checkpoint or image list; extracting again", path
            )

    if model is None:
        model, _ = load_model_from_checkpoint(checkpoint)
    extractor = FeatureExtractor(
        model,
        image_size,
        batch_size=batch_size,
        device=device,
        flip=flip,
        precision=precision,
        num_workers=num_workers,
    )
    features = extractor.extract_records(records, progress=progress)
    side = FeatureSide(
        features=features,
        pids=records.pids,
        cams=records.cams,
        times=records.times,
        paths=records.paths,
    )
    metadata = {
        **extractor.metadata(),
        "checkpoint": str(checkpoint.resolve()),
        "gallery": str(Path(gallery_dir).resolve()),
        "cache_key": key,
    }
    _save_gallery_only(path, side, metadata)
    log.info("gallery features of %s (%d images) cached in %s", gallery_dir, len(side), path)
    return GalleryFeatures(side, path, False, metadata)

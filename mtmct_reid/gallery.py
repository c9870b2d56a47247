"""Galleries for person search: a dataset's gallery split, a plain folder of images or a features file,
and their features extracted once with a checkpoint and kept in a cache file.

:func:`gallery_featureset_cached` keys the cache by the checkpoint's bytes and the image list, so the
next search with the same model and images starts at once. Ranking is
:func:`mtmct_reid.retrieval.search.search_gallery`'s job.
"""

from __future__ import annotations

import hashlib
import logging
import os
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

if TYPE_CHECKING:
    from mtmct_reid.models.registry import ReIDModel

log = logging.getLogger(__name__)

#: Version of the gallery cache's key; bump it when what goes into a cached file changes.
CACHE_FORMAT = "mtmct-reid-gallery-cache-1"


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

"""The features file: query and gallery embeddings with their labels, as one ``.npz``.

This is a contract other toolkits write to, so its reader checks every array and names the one that is
wrong. Arrays (``X`` is ``query`` or ``gallery``):

- ``X_features`` [N, D] float (stored float32)
- ``X_pids`` [N] int64 (``-1`` junk, ``0`` distractor)
- ``X_cams`` [N] int64
- ``X_times`` [N] float64 (optional; finite, NaN or absent when there is no clock; needed only for ST
  fusion)
- ``X_paths`` [N] unicode (optional)
- metadata as 0-d arrays named ``meta_<key>`` (model name, image size, ...)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtmct_reid._io import npz_array, npz_shape, open_npz, save_npz
from mtmct_reid.errors import ReIDError
from mtmct_reid.validation import finite_float_array, int64_array

SIDES = ("query", "gallery")


@dataclass(frozen=True)
class FeatureSide:
    """Features and labels of one side (query or gallery).

    Args:
        features: [N, D] float32 embeddings (not necessarily normalised).
        pids: [N] int64 person ids.
        cams: [N] int64 camera ids.
        times: [N] float64 times, NaN where unknown.
        paths: [N] unicode image paths, or None.
    """

    features: np.ndarray
    pids: np.ndarray
    cams: np.ndarray
    times: np.ndarray
    paths: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.pids)

    @property
    def has_times(self) -> bool:
        return len(self.times) > 0 and bool(np.isfinite(self.times).all())


@dataclass(frozen=True)
class FeatureSet:
    """Query and gallery features with ids, cameras, times and paths.

    Example:
        >>> fs = FeatureSet.load("features.npz")          # doctest: +SKIP
        >>> fs.query.features.shape, fs.gallery.pids[:3]  # doctest: +SKIP
        >>> fs.save("copy.npz")                           # doctest: +SKIP
    """

    query: FeatureSide
    gallery: FeatureSide
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.query.features.shape[1])

    def save(self, path: str | os.PathLike) -> None:
        """Write the ``.npz`` atomically (a temporary file renamed into place)."""
        arrays: dict[str, np.ndarray] = {}
        for name in SIDES:
            arrays.update(side_arrays(name, getattr(self, name)))
        arrays.update(metadata_arrays(self.metadata))
        save_npz(path, **arrays)

    @classmethod
    def load(cls, path: str | os.PathLike) -> FeatureSet:
        """Read and validate a features file; any problem raises :class:`ReIDError` naming it."""
        path = Path(path)
        with open_npz(path, "features file") as npz:
            sides = {name: read_side(npz, path, name) for name in SIDES}
            metadata = read_metadata(npz, path)
        q, g = sides["query"], sides["gallery"]
        if q.features.shape[1] != g.features.shape[1]:
            raise ReIDError(
                f"{path}: query_features has dimension {q.features.shape[1]} but gallery_features has "
                f"{g.features.shape[1]}; both sides must come from the same model"
            )
        return cls(query=q, gallery=g, metadata=metadata)


def side_arrays(name: str, side: FeatureSide) -> dict[str, np.ndarray]:
    """The arrays of one side as a features file stores them: ``<name>_features`` float32,
    ``_pids`` and ``_cams`` int64, ``_times`` float64 and, when the side has paths, ``_paths`` unicode.

    Args:
        name: the side's prefix (``"query"`` or ``"gallery"``).
        side: its features and labels.

    Example:
        >>> side = FeatureSide(np.ones((2, 4)), np.array([1, 2]), np.array([1, 1]), np.zeros(2))
        >>> sorted(side_arrays("gallery", side))
        ['gallery_cams', 'gallery_features', 'gallery_pids', 'gallery_times']
    """
    arrays = {
        f"{name}_features": np.asarray(side.features, dtype=np.float32),
        f"{name}_pids": np.asarray(side.pids, dtype=np.int64),
        f"{name}_cams": np.asarray(side.cams, dtype=np.int64),
        f"{name}_times": np.asarray(side.times, dtype=np.float64),
    }
    if side.paths is not None:
        arrays[f"{name}_paths"] = np.asarray(side.paths, dtype=np.str_)
    return arrays


def metadata_arrays(metadata: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Metadata as a features file stores it: one 0-d array ``meta_<key>`` per entry.

    Example:
        >>> metadata_arrays({"model": "pcb"})
        {'meta_model': array('pcb', dtype='<U3')}
    """
    return {f"meta_{key}": np.asarray(value) for key, value in metadata.items()}


def read_side(npz: np.lib.npyio.NpzFile, path: Path, name: str) -> FeatureSide:
    """Read and validate one side (``"query"`` or ``"gallery"``) of an open features archive.

    Args:
        npz: the archive (see :func:`mtmct_reid._io.open_npz`).
        path: its file, named in error messages.
        name: the side's prefix.

    Raises:
        ReIDError: a missing or malformed array, naming the file and the array.
    """
    keys = set(npz.files)
    for required in ("features", "pids", "cams"):
        if f"{name}_{required}" not in keys:
            raise ReIDError(
                f"{path}: missing array '{name}_{required}' (expected query_/gallery_ features "
                "[N, D], pids [N], cams [N], optional times [N], paths [N])"
            )

    # The headers first: a wrong shape (or a zip bomb's) is refused before any data is read.
    shape, _ = npz_shape(npz, f"{name}_features", path)
    if len(shape) != 2:
        raise ReIDError(f"{path}: '{name}_features' has shape {shape}, expected 2-D [N, D]")
    if shape[0] == 0:
        raise ReIDError(
            f"{path}: '{name}_features' is empty; the {name} side needs at least one row"
        )
    for col in ("pids", "cams", "times", "paths"):
        if f"{name}_{col}" in keys:
            col_shape, _ = npz_shape(npz, f"{name}_{col}", path)
            if col_shape != (shape[0],):
                raise ReIDError(
                    f"{path}: '{name}_{col}' has shape {col_shape}, expected [{shape[0]}] to match "
                    f"'{name}_features'"
                )

    def optional(key: str) -> np.ndarray | None:
        return npz_array(npz, key, path) if key in keys else None

    return validate_side(
        path,
        name,
        npz_array(npz, f"{name}_features", path),
        npz_array(npz, f"{name}_pids", path),
        npz_array(npz, f"{name}_cams", path),
        optional(f"{name}_times"),
        optional(f"{name}_paths"),
    )


def read_metadata(npz: np.lib.npyio.NpzFile, path: Path) -> dict[str, Any]:
    """The 0-d ``meta_*`` arrays of an open features archive, as plain values."""
    metadata = {}
    for key in npz.files:
        if key.startswith("meta_"):
            value = npz_array(npz, key, path)
            if value.ndim == 0:
                metadata[key[5:]] = value.item()
    return metadata


def check_times(times: np.ndarray, name: str) -> None:
    """Refuse an infinite time: a time is finite, or NaN for an image without a clock.

    Raises:
        ReIDError: ``name`` with the first infinite value and its element.

    Example:
        >>> check_times(np.array([5.0, np.nan, -np.inf]), "f.npz: 'query_times'")
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: f.npz: 'query_times' has -inf at element 2, expected a finite time (NaN for an unknown one)
    """
    infinite = np.flatnonzero(np.isinf(times))
    if infinite.size:
        raise ReIDError(
            f"{name} has {times[infinite[0]]:g} at element {infinite[0]}, "
            "expected a finite time (NaN for an unknown one)"
        )


def validate_side(
    path: Path,
    name: str,
    feats: np.ndarray,
    pids: np.ndarray,
    cams: np.ndarray,
    times: np.ndarray | None,
    paths: np.ndarray | None,
) -> FeatureSide:
    """Check one side's arrays as read from a features file and return them as a :class:`FeatureSide`.

    Args:
        path: the file, named in error messages.
        name: ``"query"`` or ``"gallery"`` (the arrays' prefix).
        feats: [N, D] numbers, finite.
        pids: [N] integers.
        cams: [N] integers.
        times: [N] numbers, or None (stored as NaN).
        paths: [N] strings, or None.

    Raises:
        ReIDError: one line naming the file, the array and what was expected.

    Example:
        >>> side = validate_side(Path("f.npz"), "gallery", np.ones((2, 4)), np.array([1, 2]),
        ...                      np.array([1, 1]), None, None)
        >>> side.features.dtype
        dtype('float32')
    """
    if feats.ndim != 2:
        raise ReIDError(f"{path}: '{name}_features' has shape {feats.shape}, expected 2-D [N, D]")
    if feats.dtype.kind not in "iuf":
        raise ReIDError(
            f"{path}: '{name}_features' has dtype {feats.dtype}, expected real numbers (float)"
        )
    n = feats.shape[0]
    if n == 0:
        raise ReIDError(
            f"{path}: '{name}_features' is empty; the {name} side needs at least one row"
        )
    if feats.shape[1] == 0:
        raise ReIDError(f"{path}: '{name}_features' has dimension 0")
    # Checked before the float32 cast, which would turn 1e300 into inf with only a warning.
    feats = np.ascontiguousarray(finite_float_array(f"{path}: '{name}_features'", feats))
    columns = {"pids": pids, "cams": cams}
    if times is not None:
        columns["times"] = times
    if paths is not None:
        columns["paths"] = paths
    for col, arr in columns.items():
        if arr.ndim != 1 or arr.shape[0] != n:
            raise ReIDError(
                f"{path}: '{name}_{col}' has shape {arr.shape}, expected [{n}] to match '{name}_features'"
            )
    pids, cams = (int64_array(f"{path}: '{name}_{col}'", columns[col]) for col in ("pids", "cams"))
    negative = np.flatnonzero(pids < -1)
    if negative.size:
        raise ReIDError(
            f"{path}: '{name}_pids' has {int(pids[negative[0]])} at element {negative[0]}, "
            "expected ids >= 0 (0 a distractor) or -1 (junk)"
        )
    if times is None:
        times_f = np.full(n, np.nan)
    else:
        if times.dtype.kind not in "iuf":
            raise ReIDError(
                f"{path}: '{name}_times' has dtype {times.dtype}, expected real numbers"
            )
        times_f = times.astype(np.float64)
        check_times(times_f, f"{path}: '{name}_times'")
    return FeatureSide(
        features=feats,
        pids=pids,
        cams=cams,
        times=times_f,
        paths=None if paths is None else paths.astype(np.str_),
    )

"""The transit-time model's file: an ``.npz`` of named arrays (no pickle), written atomically and
checked array by array when read."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from mtmct_reid._io import npz_array, open_npz, save_npz
from mtmct_reid.errors import ReIDError

#: Value of the ``format`` array of a saved model, checked on load.
FORMAT_NAME = "mtmct-reid-transit"
FORMAT_VERSION = 1

#: The units a model's times may be in; "" where the data did not say (a manifest, a pattern).
TIME_UNITS = ("", "frames", "seconds")

#: The arrays of a model file (``time_unit`` too, optional: files written before it read as "").
ARRAYS = (
    "format",
    "format_version",
    "camera_ids",
    "probabilities",
    "counts",
    "pair_ids",
    "bin_width",
    "sigma_bins",
    "truncate",
)


def write_transit_file(
    path: str | os.PathLike,
    *,
    camera_ids: np.ndarray,
    probabilities: np.ndarray,
    counts: np.ndarray,
    pair_ids: np.ndarray,
    bin_width: float,
    sigma_bins: float,
    truncate: float,
    time_unit: str = "",
) -> None:
    """Write a model's arrays (the :class:`~mtmct_reid.retrieval.transit.TransitTimeModel` fields)
    as an ``.npz``, atomically; the folder is created.

    Args:
        path: the ``.npz`` file to write.
        camera_ids: sorted distinct camera ids, int64 [C].
        probabilities: float64 [C, C, B] smoothed transit-time distributions.
        counts: [C, C, B] the transits counted before smoothing.
        pair_ids: int64 [C, C], identities that contributed to each pair.
        bin_width: width of a time bin.
        sigma_bins: standard deviation of the smoothing kernel, in bins.
        truncate: the kernel is cut at this many standard deviations.
        time_unit: the unit of the times, one of :data:`TIME_UNITS`.

    Example:
        >>> import tempfile
        >>> from mtmct_reid.retrieval.transit import TransitTimeModel
        >>> model = TransitTimeModel.fit([1, 1], [1, 2], [0.0, 250.0], bin_width=100.0)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     model.save(f"{folder}/st.npz")
        ...     fields = read_transit_file(f"{folder}/st.npz")
        >>> fields["camera_ids"].tolist(), fields["bin_width"]
        ([1, 2], 100.0)
    """
    save_npz(
        path,
        format=np.array(FORMAT_NAME),
        format_version=np.array(FORMAT_VERSION, dtype=np.int64),
        camera_ids=camera_ids,
        probabilities=probabilities,
        counts=counts,
        pair_ids=pair_ids,
        bin_width=np.array(bin_width),
        sigma_bins=np.array(sigma_bins),
        truncate=np.array(truncate),
        time_unit=np.array(time_unit),
    )


def read_transit_file(path: str | os.PathLike) -> dict[str, Any]:
    """The checked fields of a model file written by :func:`write_transit_file`, as keyword arguments
    of :class:`~mtmct_reid.retrieval.transit.TransitTimeModel`; problems raise :class:`ReIDError`
    naming the file and the array.

    Args:
        path: a file written by :func:`write_transit_file` (``TransitTimeModel.save``).

    Example:
        >>> read_transit_file("no/such/st.npz")
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: no/such/st.npz: transit-time model file not found
    """
    path = Path(path)
    with open_npz(path, "transit-time model file") as npz:
        missing = [name for name in ARRAYS if name not in npz.files]
        if missing:
            raise ReIDError(
                f"{path}: missing array '{missing[0]}' (not a model from 'mtmct-reid st fit')"
            )
        arrays = {name: npz_array(npz, name, path) for name in ARRAYS}
        if "time_unit" in npz.files:
            arrays["time_unit"] = npz_array(npz, "time_unit", path)
    return _checked(path, arrays)


def _checked(path: Path, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    if arrays["format"].shape != () or str(arrays["format"]) != FORMAT_NAME:
        raise ReIDError(f"{path}: array 'format' is not '{FORMAT_NAME}'")
    version = arrays["format_version"]
    if version.shape != () or not np.issubdtype(version.dtype, np.integer):
        raise ReIDError(f"{path}: array 'format_version' must be a 0-d integer")
    if int(version) != FORMAT_VERSION:
        raise ReIDError(
            f"{path}: array 'format_version' is {int(version)}, this version reads {FORMAT_VERSION}"
        )
    scalars = {}
    for name in ("bin_width", "sigma_bins", "truncate"):
        value = arrays[name]
        if value.shape != () or not np.issubdtype(value.dtype, np.number):
            raise ReIDError(f"{path}: array '{name}' must be a 0-d number")
        scalars[name] = float(value)
    camera_ids = arrays["camera_ids"]
    if camera_ids.ndim != 1 or not np.issubdtype(camera_ids.dtype, np.integer):
        raise ReIDError(f"{path}: array 'camera_ids' must be 1-D integers [C]")
    if camera_ids.size < 2 or np.any(np.diff(camera_ids) <= 0):
        raise ReIDError(f"{path}: array 'camera_ids' must hold >= 2 sorted distinct ids")
    c = camera_ids.size
    for name in ("probabilities", "counts"):
        value = arrays[name]
        if value.ndim != 3 or value.shape[:2] != (c, c) or value.shape[2] == 0:
            raise ReIDError(
                f"{path}: array '{name}' has shape {value.shape}, expected [{c}, {c}, B]"
            )
        if not np.issubdtype(value.dtype, np.floating):
            raise ReIDError(f"{path}: array '{name}' has dtype {value.dtype}, expected float")
        if not np.isfinite(value).all() or (value < 0).any():
            raise ReIDError(f"{path}: array '{name}' has negative, NaN or inf values")
    probabilities = arrays["probabilities"]
    if arrays["counts"].shape != probabilities.shape:
        raise ReIDError(
            f"{path}: array 'counts' has shape {arrays['counts'].shape}, expected "
            f"{probabilities.shape} like 'probabilities'"
        )
    pair_ids = arrays["pair_ids"]
    if pair_ids.shape != (c, c) or not np.issubdtype(pair_ids.dtype, np.integer):
        raise ReIDError(f"{path}: array 'pair_ids' must be integers of shape [{c}, {c}]")
    sums = probabilities.sum(axis=2)
    if np.any(np.diagonal(sums) != 0):
        raise ReIDError(f"{path}: array 'probabilities' is non-zero for a same-camera pair")
    if not np.all((np.abs(sums - 1) < 1e-6) | (sums == 0)):
        raise ReIDError(f"{path}: array 'probabilities' has a camera pair not summing to 1 or 0")
    time_unit = arrays.get("time_unit", np.array(""))
    if time_unit.shape != () or time_unit.dtype.kind != "U" or str(time_unit) not in TIME_UNITS:
        raise ReIDError(
            f"{path}: array 'time_unit' must be one of "
            f"{', '.join(repr(unit) for unit in TIME_UNITS)}"
        )
    return {
        "time_unit": str(time_unit),
        "camera_ids": camera_ids,
        "probabilities": probabilities,
        "counts": arrays["counts"],
        "pair_ids": pair_ids,
        **scalars,
    }

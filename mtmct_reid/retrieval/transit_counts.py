"""The transit-time histogram of training labels: each identity's visit per camera, the ordered camera
pairs of its visits, and their time differences binned (the counting half of
:meth:`~mtmct_reid.retrieval.transit.TransitTimeModel.fit`; the module documentation of
:mod:`mtmct_reid.retrieval.transit` states the rules). Also the smoothing kernel both fits share.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mtmct_reid.errors import ReIDError

#: Largest number of table entries (cameras² × bins) a fit may allocate: the model's two float64
#: tables then take 64 MiB (Market-1501 needs 0.2 M entries). Beyond it the bin width is wrong for the
#: clock's unit, or one time is an outlier.
MAX_TABLE_ENTRIES = 4 * 1024 * 1024


@dataclass(frozen=True)
class TransitCounts:
    """Raw transit histograms of labelled images.

    Args:
        camera_ids: the cameras, sorted [C].
        counts: float64 [C, C, B] counts indexed (later camera, earlier camera, bin); ties add halves.
        pair_ids: int64 [C, C] identities that contributed to each ordered pair.
        num_identities: labelled identities counted.
        visited: cameras with at least one labelled image.
    """

    camera_ids: np.ndarray
    counts: np.ndarray
    pair_ids: np.ndarray
    num_identities: int
    visited: np.ndarray

    @property
    def num_bins(self) -> int:
        """Bins B per camera pair."""
        return int(self.counts.shape[2])


def smoothing_radius(sigma_bins: float, truncate: float) -> int:
    """Half-width in bins of the truncated Gaussian kernel (150 for σ = 50, truncate = 3).

    Args:
        sigma_bins: standard deviation of the Gaussian, in bins.
        truncate: the kernel is cut at ``truncate · sigma_bins`` bins (rounded to the nearest bin).

    Example:
        >>> smoothing_radius(50.0, 3.0)
        150
    """
    return int(truncate * sigma_bins + 0.5)


def gaussian_kernel(sigma_bins: float, truncate: float) -> np.ndarray:
    """The smoothing kernel: a Gaussian of ``sigma_bins`` bins on offsets ``-radius..radius``,
    normalised to sum 1 (a delta when ``sigma_bins`` is 0).

    Args:
        sigma_bins: standard deviation of the Gaussian, in bins.
        truncate: the kernel is cut at ``truncate · sigma_bins`` bins.

    Example:
        >>> gaussian_kernel(50.0, 3.0).shape
        (301,)
    """
    radius = smoothing_radius(sigma_bins, truncate)
    if sigma_bins <= 0 or radius == 0:
        return np.ones(1)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 * (offsets / sigma_bins) ** 2)
    return kernel / kernel.sum()


def check_parameters(bin_width: float, sigma_bins: float, truncate: float, where: str) -> None:
    """Raise :class:`ReIDError` (``"<where>: <name> must be ..."``) unless the bin width is a finite
    number > 0 and the smoothing σ and cut-off finite numbers >= 0.

    Example:
        >>> check_parameters(100.0, 50.0, 3.0, "transit fit")
    """
    for name, value, low_ok in (
        ("bin_width", bin_width, False),
        ("sigma_bins", sigma_bins, True),
        ("truncate", truncate, True),
    ):
        if isinstance(value, bool) or not np.isscalar(value) or not np.isfinite(value):
            raise ReIDError(f"{where}: {name} must be a finite number, got {value!r}")
        if value < 0 or (value == 0 and not low_ok):
            expected = ">= 0" if low_ok else "> 0"
            raise ReIDError(f"{where}: {name} must be {expected}, got {value!r}")


def _column(values: object, name: str, dtype: type, size: int | None) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ReIDError(f"transit fit: '{name}' has shape {array.shape}, expected 1-D [N]")
    if size is not None and array.shape[0] != size:
        raise ReIDError(f"transit fit: '{name}' has {array.shape[0]} rows, expected {size}")
    if array.size and not np.issubdtype(array.dtype, np.number):
        raise ReIDError(f"transit fit: '{name}' has dtype {array.dtype}, expected numbers")
    return array.astype(dtype)


def count_transits(
    pids: np.ndarray,
    cams: np.ndarray,
    times: np.ndarray,
    *,
    bin_width: float = 100.0,
    sigma_bins: float = 50.0,
    truncate: float = 3.0,
    camera_ids: np.ndarray | None = None,
) -> TransitCounts:
    """The transit histograms of training labels (images with ``pid <= 0`` are ignored); the
    arguments and errors are those of :meth:`~mtmct_reid.retrieval.transit.TransitTimeModel.fit`.

    Example:
        >>> counted = count_transits([1, 1, 2, 2], [1, 2, 1, 2], [0.0, 250.0, 10.0, 60.0],
        ...                          bin_width=100.0, sigma_bins=0.0)
        >>> counted.counts[1, 0].tolist(), counted.pair_ids.tolist()
        ([1.0, 0.0, 1.0], [[0, 0], [2, 0]])
    """
    check_parameters(bin_width, sigma_bins, truncate, "transit fit")
    pids_a = _column(pids, "pids", np.int64, None)
    cams_a = _column(cams, "cams", np.int64, pids_a.size)
    times_a = _column(times, "times", np.float64, pids_a.size)

    if camera_ids is None:
        known = np.unique(cams_a)
    else:
        known = np.unique(_column(camera_ids, "camera_ids", np.int64, None))
        outside = np.setdiff1d(cams_a, known)
        if outside.size:
            raise ReIDError(
                f"transit fit: camera {int(outside[0])} of 'cams' is not in camera_ids "
                f"{known.tolist()}"
            )
    if known.size < 2:
        raise ReIDError(
            f"transit fit: only {known.size} camera(s) ({known.tolist()}); transit times "
            "need at least two cameras"
        )

    labelled = pids_a > 0
    pids_a, cams_a, times_a = pids_a[labelled], cams_a[labelled], times_a[labelled]
    missing = ~np.isfinite(times_a)
    if missing.any():
        raise ReIDError(
            f"transit fit: 'times' is missing (NaN/inf) for {int(missing.sum())} of "
            f"{times_a.size} labelled images; the transit-time model needs a time per image"
        )

    c = known.size
    visit_times = _visit_table(pids_a, np.searchsorted(known, cams_a), times_a, c)
    # Every ordered pair of cameras of every identity at once: [P, C, C] differences, NaN where
    # either visit is absent.
    diff = visit_times[:, :, None] - visit_times[:, None, :]
    later_first = diff > 0
    tie = diff == 0
    diagonal = np.eye(c, dtype=bool)[None]
    tie &= ~diagonal
    contributes = later_first | tie
    if not contributes.any():
        raise ReIDError(
            f"transit fit: no identity (of {visit_times.shape[0]}) appears in two different "
            "cameras; transit times cannot be learned"
        )
    person, later, earlier = np.nonzero(contributes)
    delta = diff[person, later, earlier]
    num_bins = _table_bins(
        delta,
        bin_width,
        sigma_bins,
        truncate,
        c,
        np.unique(pids_a)[person],
        known[later],
        known[earlier],
        visit_times[person, later],
        visit_times[person, earlier],
    )
    bins = np.floor(delta / bin_width)
    weights = np.where(tie[person, later, earlier], 0.5, 1.0)
    flat = (later * c + earlier) * num_bins + bins.astype(np.int64)
    counts = np.bincount(flat, weights=weights, minlength=c * c * num_bins).reshape(c, c, num_bins)
    pair_ids = np.bincount(later * c + earlier, minlength=c * c).reshape(c, c)

    return TransitCounts(
        camera_ids=known,
        counts=counts,
        pair_ids=pair_ids,
        num_identities=int(visit_times.shape[0]),
        visited=np.unique(cams_a),
    )


def _table_bins(
    delta: np.ndarray,
    bin_width: float,
    sigma_bins: float,
    truncate: float,
    num_cameras: int,
    pids: np.ndarray,
    later: np.ndarray,
    earlier: np.ndarray,
    later_times: np.ndarray,
    earlier_times: np.ndarray,
) -> int:
    """Bins per camera pair for time differences ``delta``, refusing a table larger than
    :data:`MAX_TABLE_ENTRIES` with one line that names the largest difference and who made it."""
    worst = int(np.argmax(delta))
    pairs = num_cameras * num_cameras
    # In floats: a tiny bin width or a huge smoothing radius must not build a 300-digit integer.
    with np.errstate(over="ignore", divide="ignore"):
        bins_needed = float(np.floor(delta[worst] / bin_width)) + truncate * sigma_bins + 1.5
    if math.isfinite(bins_needed) and pairs * bins_needed <= MAX_TABLE_ENTRIES:
        return (
            math.floor(float(delta[worst]) / bin_width) + smoothing_radius(sigma_bins, truncate) + 1
        )
    raise ReIDError(
        f"transit fit: the time difference {float(delta[worst]):.6g} (identity {int(pids[worst])}: "
        f"mean time {float(later_times[worst]):.6g} in camera {int(later[worst])}, "
        f"{float(earlier_times[worst]):.6g} in camera {int(earlier[worst])}) needs "
        f"{bins_needed:.3g} bins of width {bin_width:g} plus the smoothing for {num_cameras} cameras, "
        f"over the {MAX_TABLE_ENTRIES} table entries allowed; check that identity's times for an "
        "outlier, or use a larger bin width (or smaller sigma) for this clock"
    )


def _visit_table(
    pids: np.ndarray, cam_index: np.ndarray, times: np.ndarray, num_cameras: int
) -> np.ndarray:
    """Mean time of each identity in each camera, as a dense [P, C] table (NaN: no visit), one row
    per distinct id of ``pids`` in increasing order."""
    person_ids, person = np.unique(pids, return_inverse=True)
    key = person.reshape(-1) * num_cameras + cam_index
    size = person_ids.size * num_cameras
    total = np.bincount(key, weights=times, minlength=size)
    images = np.bincount(key, minlength=size)
    with np.errstate(invalid="ignore", divide="ignore"):
        visit_times = np.where(images > 0, total / images, np.nan)
    return visit_times.reshape(person_ids.size, num_cameras)

"""The spatial-temporal model of st-ReID: how long people take between two cameras.

Fitted on the training split's labels only (transit times are a property of the camera network, not of
the people, so the test identities never need to be seen). Spec §3:

* **Visits.** For each identity and camera, the mean time of its images in that camera. An identity that
  never appears in a camera has no visit there (the reference code counts such absences as a visit at
  time 0, which invents transits from the clock's origin; we do not).
* **Histogram.** For every identity and every two of its visits in cameras ``i != j``:
  ``Δ = |visit_i − visit_j|`` adds one count to bin ``⌊Δ / bin_width⌋`` of the ordered pair
  ``(later camera, earlier camera)``.
* **Ties.** When both visits have the same time there is no later camera: the count is split, half to
  ``(i, j)`` and half to ``(j, i)``, and a lookup of a pair with equal times returns the mean of the two
  directions' probabilities. Both halves of the rule keep :meth:`TransitTimeModel.probability`
  symmetric in its two samples.
* **Bins.** Sized from the data: the largest observed bin plus the smoothing radius plus one, so that the
  smoothing loses no mass at the far end (the reference hard-codes 5,000 bins and crashes beyond them).
* **Smoothing.** Each pair's histogram is convolved with a Gaussian of ``sigma_bins`` bins truncated at
  ``radius = int(truncate · sigma_bins + 0.5)`` bins (150 with the defaults, the convention of
  :func:`scipy.ndimage.gaussian_filter1d`); bins below 0 count as zero (no reflection), then each pair
  is normalised to sum 1. Same-camera pairs and pairs never observed stay all zero.
* **Lookup.** ``bin = ⌊|t_a − t_b| / bin_width⌋`` in the pair (camera of the later, camera of the
  earlier); bins past the table have probability 0.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mtmct_reid._io import npz_array, open_npz, save_npz
from mtmct_reid.errors import ReIDError

if TYPE_CHECKING:
    from mtmct_reid.data.records import Records

log = logging.getLogger(__name__)

#: Value of the ``format`` array of a saved model, checked on load.
FORMAT_NAME = "mtmct-reid-transit"
FORMAT_VERSION = 1
#: Name of the model file beside a training run's checkpoints (and in the demo's output).
TRANSIT_FILE = "transit_time.npz"

#: Largest number of table entries (cameras² × bins) a fit may allocate: the model's two float64
#: tables then take 64 MiB (Market-1501 needs 0.2 M entries). Beyond it the bin width is wrong for the
#: clock's unit, or one time is an outlier.
MAX_TABLE_ENTRIES = 4 * 1024 * 1024

_ARRAYS = (
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


def _check_parameters(bin_width: float, sigma_bins: float, truncate: float, where: str) -> None:
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


@dataclass(frozen=True, eq=False)
class TransitTimeModel:
    """Smoothed histograms of camera-to-camera transit times, and their vectorised lookup.

    Args:
        camera_ids: sorted distinct camera ids, int64 [C].
        probabilities: float64 [C, C, B], indexed (later camera index, earlier camera index, bin);
            each observed pair sums to 1, other pairs are zero.
        counts: float64 [C, C, B], the raw histogram before smoothing (halves come from ties).
        pair_ids: int64 [C, C], identities that contributed to each pair.
        bin_width: time units (frames) per bin.
        sigma_bins: standard deviation of the smoothing Gaussian, in bins.
        truncate: the Gaussian is cut at ``truncate · sigma_bins`` bins.
    """

    camera_ids: np.ndarray
    probabilities: np.ndarray
    counts: np.ndarray
    pair_ids: np.ndarray
    bin_width: float = 100.0
    sigma_bins: float = 50.0
    truncate: float = 3.0
    # Flat float32 copy of the probabilities with one zero bin appended per pair, so that a lookup is
    # a single gather and every out-of-range bin lands on that zero.
    _table: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        camera_ids = np.asarray(self.camera_ids, dtype=np.int64).reshape(-1)
        probabilities = np.asarray(self.probabilities, dtype=np.float64)
        counts = np.asarray(self.counts, dtype=np.float64)
        pair_ids = np.asarray(self.pair_ids, dtype=np.int64)
        c = camera_ids.size
        if c == 0:
            raise ReIDError("transit model: camera_ids is empty")
        if np.any(np.diff(camera_ids) <= 0):
            raise ReIDError("transit model: camera_ids must be sorted and distinct")
        if probabilities.ndim != 3 or probabilities.shape[:2] != (c, c):
            raise ReIDError(
                f"transit model: probabilities has shape {probabilities.shape}, expected [{c}, {c}, B]"
            )
        if counts.shape != probabilities.shape:
            raise ReIDError(
                f"transit model: counts has shape {counts.shape}, expected {probabilities.shape}"
            )
        if pair_ids.shape != (c, c):
            raise ReIDError(
                f"transit model: pair_ids has shape {pair_ids.shape}, expected [{c}, {c}]"
            )
        _check_parameters(self.bin_width, self.sigma_bins, self.truncate, "transit model")
        object.__setattr__(self, "camera_ids", camera_ids)
        object.__setattr__(self, "probabilities", probabilities)
        object.__setattr__(self, "counts", counts)
        object.__setattr__(self, "pair_ids", pair_ids)
        object.__setattr__(self, "bin_width", float(self.bin_width))
        object.__setattr__(self, "sigma_bins", float(self.sigma_bins))
        object.__setattr__(self, "truncate", float(self.truncate))
        table = np.zeros((c, c, probabilities.shape[2] + 1), dtype=np.float32)
        table[:, :, :-1] = probabilities
        object.__setattr__(self, "_table", table.reshape(-1))

    def __repr__(self) -> str:
        return (
            f"TransitTimeModel(cameras={self.camera_ids.tolist()}, bins={self.num_bins}, "
            f"bin_width={self.bin_width:g}, sigma_bins={self.sigma_bins:g}, "
            f"truncate={self.truncate:g}, observed_pairs={self.num_observed_pairs})"
        )

    # ------------------------------------------------------------------------------------------
    # Fitting

    @classmethod
    def from_counts(
        cls,
        camera_ids: np.ndarray,
        counts: np.ndarray,
        pair_ids: np.ndarray,
        *,
        bin_width: float,
        sigma_bins: float,
        truncate: float,
    ) -> TransitTimeModel:
        """The model of raw transit histograms: each observed camera pair's counts convolved with
        the Gaussian of ``sigma_bins`` (cut at ``truncate`` σ; bins outside the histogram count as
        zero, no reflection at bin 0), then normalised to sum 1. Every fit (image labels, tracks)
        ends here.

        Args:
            camera_ids: sorted camera ids [C].
            counts: transit counts [C, C, B] indexed (later camera, earlier camera, bin).
            pair_ids: identities seen per ordered pair [C, C]; pairs with 0 keep probability 0.
            bin_width: time units per bin.
            sigma_bins: smoothing σ in bins.
            truncate: the Gaussian is cut at ``truncate · sigma_bins`` bins.

        Example:
            >>> counts = np.zeros((2, 2, 5)); counts[1, 0, 2] = 3
            >>> pairs = np.array([[0, 0], [3, 0]])
            >>> m = TransitTimeModel.from_counts(np.array([1, 2]), counts, pairs, bin_width=10.0,
            ...                                  sigma_bins=0.0, truncate=3.0)
            >>> m.probabilities[1, 0].tolist()
            [0.0, 0.0, 1.0, 0.0, 0.0]
        """
        counts = np.asarray(counts, dtype=np.float64)
        c, _, num_bins = counts.shape
        probabilities = np.zeros_like(counts)
        observed = np.asarray(pair_ids).reshape(-1) > 0
        rows = counts.reshape(c * c, num_bins)[observed]
        from scipy.ndimage import convolve1d  # scipy only when fitting

        smoothed = convolve1d(
            rows, gaussian_kernel(sigma_bins, truncate), axis=1, mode="constant", cval=0.0
        )
        smoothed /= smoothed.sum(axis=1, keepdims=True)
        probabilities.reshape(c * c, num_bins)[observed] = smoothed
        return cls(
            camera_ids=np.asarray(camera_ids),
            probabilities=probabilities,
            counts=counts,
            pair_ids=np.asarray(pair_ids),
            bin_width=bin_width,
            sigma_bins=sigma_bins,
            truncate=truncate,
        )

    @classmethod
    def fit(
        cls,
        pids: np.ndarray,
        cams: np.ndarray,
        times: np.ndarray,
        *,
        bin_width: float = 100.0,
        sigma_bins: float = 50.0,
        truncate: float = 3.0,
        camera_ids: np.ndarray | None = None,
    ) -> TransitTimeModel:
        """Fit the model on training labels (images with ``pid <= 0`` are ignored).

        Args:
            pids: person id per image [N] (junk ``-1`` and distractors ``0`` are ignored).
            cams: camera id per image [N].
            times: time per image [N] in frames (or any unit shared by all cameras).
            bin_width: time units per histogram bin (100 frames in st-ReID).
            sigma_bins: standard deviation of the smoothing Gaussian, in bins (50).
            truncate: the Gaussian is cut at ``truncate · sigma_bins`` bins (3).
            camera_ids: every camera the model should know (default: those in ``cams``). Passing the
                dataset's cameras lets cameras without training visits get probability 0 instead of
                an unknown-camera error at lookup time.

        Returns:
            the fitted model.

        Raises:
            ReIDError: mismatched or non-numeric columns, a missing (NaN) time, fewer than two
                cameras, no identity seen in two cameras, or a table too large for the bin width.
        """
        _check_parameters(bin_width, sigma_bins, truncate, "transit fit")
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
        counts = np.bincount(flat, weights=weights, minlength=c * c * num_bins).reshape(
            c, c, num_bins
        )
        pair_ids = np.bincount(later * c + earlier, minlength=c * c).reshape(c, c)

        model = cls.from_counts(
            known, counts, pair_ids, bin_width=bin_width, sigma_bins=sigma_bins, truncate=truncate
        )
        unvisited = known[~np.isin(known, cams_a)]
        if unvisited.size:
            log.warning(
                "cameras %s have no labelled training image: their transit probabilities are 0",
                unvisited.tolist(),
            )
        log.info(
            "transit model: %d identities, %d cameras, %d of %d camera pairs observed, %d bins of %g",
            visit_times.shape[0],
            c,
            model.num_observed_pairs,
            c * (c - 1),
            num_bins,
            bin_width,
        )
        return model

    @classmethod
    def from_records(
        cls,
        records: Records,
        *,
        split: str = "train",
        source: str = "dataset",
        bin_width: float = 100.0,
        sigma_bins: float = 50.0,
        truncate: float = 3.0,
    ) -> TransitTimeModel:
        """Fit on one split of a dataset (the training split: test labels must never leak in).

        Every camera of the whole dataset is known to the model, so a camera that only the test
        split uses gets probability 0 rather than an unknown-camera error.

        Args:
            records: the dataset, as read by :func:`mtmct_reid.data.readers.read_dataset`.
            split: the split whose labels are used (``"train"``).
            source: how to name the dataset in error messages (e.g. its folder).
            bin_width: time units per bin.
            sigma_bins: smoothing σ in bins.
            truncate: smoothing cut-off in σ.

        Raises:
            ReIDError: the split is empty, has no times, or comes from a single camera.
        """
        part = records.split(split)
        if len(part) == 0:
            raise ReIDError(
                f"{source}: the '{split}' split is empty; the transit-time model is fitted on the "
                f"{split} split's labels only"
            )
        missing = int(np.count_nonzero(~np.isfinite(part.times)))
        if missing:
            raise ReIDError(
                f"{source}: {missing} of {len(part)} '{split}' images have no time; the transit-time "
                "model needs one per image (Market/Duke names carry it; otherwise use a --pattern "
                "with a (?P<time>...) group or a manifest 'time' column)"
            )
        cameras = np.unique(part.cams)
        if cameras.size < 2:
            raise ReIDError(
                f"{source}: the '{split}' images all come from camera {int(cameras[0])}; "
                "transit times need at least two cameras"
            )
        return cls.fit(
            part.pids,
            part.cams,
            part.times,
            bin_width=bin_width,
            sigma_bins=sigma_bins,
            truncate=truncate,
            camera_ids=np.unique(records.cams),
        )

    # ------------------------------------------------------------------------------------------
    # Lookup

    @property
    def num_cameras(self) -> int:
        """Number of cameras C."""
        return int(self.camera_ids.size)

    @property
    def num_bins(self) -> int:
        """Number of bins B per camera pair."""
        return int(self.probabilities.shape[2])

    @property
    def observed(self) -> np.ndarray:
        """bool [C, C]: pairs (later, earlier) with at least one identity."""
        return self.pair_ids > 0

    @property
    def num_observed_pairs(self) -> int:
        """Number of ordered camera pairs with at least one identity."""
        return int(np.count_nonzero(self.observed))

    def camera_index(self, cams: np.ndarray, where: str = "cameras") -> np.ndarray:
        """Indices 0..C-1 of camera ids (any shape); unknown cameras raise :class:`ReIDError`.

        Args:
            cams: camera ids, any shape.
            where: what the cameras are, for the error message (e.g. ``"features.npz query_cams"``).
        """
        cams = np.asarray(cams)
        if cams.size and not np.issubdtype(cams.dtype, np.integer):
            if not np.issubdtype(cams.dtype, np.number) or not np.all(np.mod(cams, 1) == 0):
                raise ReIDError(f"{where}: camera ids must be integers, got dtype {cams.dtype}")
            cams = cams.astype(np.int64)
        index = np.asarray(np.searchsorted(self.camera_ids, cams))
        np.minimum(index, self.num_cameras - 1, out=index)
        unknown = self.camera_ids[index] != cams
        if np.any(unknown):
            bad = np.unique(cams[unknown])
            raise ReIDError(
                f"{where}: camera {int(bad[0])} is not in the transit-time model "
                f"(cameras {self.camera_ids.tolist()}; {bad.size} unknown camera id(s))"
            )
        return index

    def check_cameras(self, cams: np.ndarray, where: str = "cameras") -> None:
        """Raise :class:`ReIDError` naming ``where`` unless every camera id is known to the model."""
        self.camera_index(cams, where)

    def probability(
        self,
        cams_a: np.ndarray,
        times_a: np.ndarray,
        cams_b: np.ndarray,
        times_b: np.ndarray,
    ) -> np.ndarray:
        """Transit probability of sample pairs, elementwise with numpy broadcasting.

        Symmetric in ``a`` and ``b``; 0 for the same camera, for unobserved pairs and past the last bin.

        Args:
            cams_a: camera ids of the first samples.
            times_a: their times.
            cams_b: camera ids of the second samples.
            times_b: their times.

        Returns:
            float32 probabilities of the broadcast shape.

        Raises:
            ReIDError: an unknown camera or a NaN time.
        """
        index_a = self.camera_index(cams_a, "cams_a")
        index_b = self.camera_index(cams_b, "cams_b")
        return self.probability_at(index_a, times_a, index_b, times_b)

    def probability_at(
        self,
        index_a: np.ndarray,
        times_a: np.ndarray,
        index_b: np.ndarray,
        times_b: np.ndarray,
    ) -> np.ndarray:
        """:meth:`probability` of camera *indices* (from :meth:`camera_index`, not re-checked), for
        callers that look up many blocks of the same cameras.

        Args:
            index_a: camera indices 0..C-1 of the first samples.
            times_a: their times.
            index_b: camera indices of the second samples.
            times_b: their times.

        Returns:
            float32 probabilities of the broadcast shape.
        """
        times_a = np.asarray(times_a, dtype=np.float64)
        times_b = np.asarray(times_b, dtype=np.float64)
        for name, values in (("times_a", times_a), ("times_b", times_b)):
            if not np.isfinite(values).all():
                raise ReIDError(
                    f"{name}: NaN/inf time; the transit-time model needs a time per image"
                )
        c, stride = self.num_cameras, self.num_bins + 1
        shape = np.broadcast_shapes(index_a.shape, index_b.shape, times_a.shape, times_b.shape)
        # Fresh full-size arrays cost more than the arithmetic (page faults at 19,281² pairs), so the
        # time difference is turned into bins in place and positions use int32 where they fit.
        index_dtype = np.int32 if self._table.size < 2**31 else np.int64
        scaled = np.empty(shape, dtype=np.float64)
        np.subtract(times_a, times_b, out=scaled)
        a_is_later = scaled > 0
        np.abs(scaled, out=scaled)
        scaled /= self.bin_width
        # Bin B is the zero bin appended to every pair: everything past the table lands there.
        np.minimum(scaled, self.num_bins, out=scaled)
        position = scaled.astype(index_dtype)
        a_later_pair = ((index_a * c + index_b) * stride).astype(index_dtype)
        b_later_pair = ((index_b * c + index_a) * stride).astype(index_dtype)
        position += b_later_pair
        np.add(position, a_later_pair - b_later_pair, out=position, where=a_is_later)
        result = self._table[position.reshape(-1)].reshape(shape)
        tie = scaled == 0
        if tie.any():
            # Equal times: no camera is later, so both directions count equally (see module doc).
            other = self._table[np.broadcast_to(a_later_pair, shape)[tie]]
            result[tie] = 0.5 * (result[tie] + other)
        return result

    def mean_transit(self) -> np.ndarray:
        """float64 [C, C]: mean time difference of each pair's smoothed distribution (bin centres),
        NaN for pairs without probability.
        """
        centres = (np.arange(self.num_bins) + 0.5) * self.bin_width
        mass = self.probabilities.sum(axis=2)
        with np.errstate(invalid="ignore", divide="ignore"):
            means = (self.probabilities * centres).sum(axis=2) / mass
        return np.where(mass > 0, means, np.nan)

    # ------------------------------------------------------------------------------------------
    # Files

    def save(self, path: str | os.PathLike) -> None:
        """Write the model as an ``.npz`` (no pickle), atomically.

        Args:
            path: destination file (its folder is created).
        """
        save_npz(
            path,
            format=np.array(FORMAT_NAME),
            format_version=np.array(FORMAT_VERSION, dtype=np.int64),
            camera_ids=self.camera_ids,
            probabilities=self.probabilities,
            counts=self.counts,
            pair_ids=self.pair_ids,
            bin_width=np.array(self.bin_width),
            sigma_bins=np.array(self.sigma_bins),
            truncate=np.array(self.truncate),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> TransitTimeModel:
        """Read and validate a model written by :meth:`save`; problems raise :class:`ReIDError`
        naming the file and the array.

        Args:
            path: a file written by :meth:`save` (or ``mtmct-reid st fit``).
        """
        path = Path(path)
        with open_npz(path, "transit-time model file") as npz:
            missing = [name for name in _ARRAYS if name not in npz.files]
            if missing:
                raise ReIDError(
                    f"{path}: missing array '{missing[0]}' (not a model from 'mtmct-reid st fit')"
                )
            arrays = {name: npz_array(npz, name, path) for name in _ARRAYS}
        return cls._from_arrays(path, arrays)

    @classmethod
    def _from_arrays(cls, path: Path, arrays: dict[str, np.ndarray]) -> TransitTimeModel:
        if arrays["format"].shape != () or str(arrays["format"]) != FORMAT_NAME:
            raise ReIDError(f"{path}: array 'format' is not '{FORMAT_NAME}'")
        version = arrays["format_version"]
        if version.shape != () or not np.issubdtype(version.dtype, np.integer):
            raise ReIDError(f"{path}: array 'format_version' must be a 0-d integer")
        if int(version) != FORMAT_VERSION:
            raise ReIDError(
                f"{path}: array 'format_version' is {int(version)}, this version reads "
                f"{FORMAT_VERSION}"
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
            raise ReIDError(
                f"{path}: array 'probabilities' has a camera pair not summing to 1 or 0"
            )
        try:
            return cls(
                camera_ids=camera_ids,
                probabilities=probabilities,
                counts=arrays["counts"],
                pair_ids=pair_ids,
                **scalars,
            )
        except ReIDError as exc:
            raise ReIDError(f"{path}: {exc}") from None


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

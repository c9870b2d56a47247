"""The spatial-temporal model of st-ReID: how long people take between two cameras.

Fitted on the training split's labels only (transit times are a property of the camera network, not of
the people, so the test identities never need to be seen). The method of st-ReID (Wang et al., AAAI
2019, in the README's references), with the differences said below:

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
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mtmct_reid.errors import ReIDError
from mtmct_reid.retrieval.transit_counts import (
    MAX_TABLE_ENTRIES,
    TransitCounts,
    check_parameters,
    count_transits,
    gaussian_kernel,
    smoothing_radius,
)
from mtmct_reid.retrieval.transit_file import (
    FORMAT_NAME,
    FORMAT_VERSION,
    TIME_UNITS,
    read_transit_file,
    write_transit_file,
)

if TYPE_CHECKING:
    from mtmct_reid.data.records import Records

log = logging.getLogger(__name__)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_TABLE_ENTRIES",
    "TRANSIT_FILE",
    "TransitCounts",
    "TransitTimeModel",
    "count_transits",
    "gaussian_kernel",
    "smoothing_radius",
]

#: Name of the model file beside a training run's checkpoints (and in the demo's output).
TRANSIT_FILE = "transit_time.npz"


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
        time_unit: the unit of the times it was fitted on, where known: ``"frames"`` (Market-1501,
            DukeMTMC-reID, MSMT17 names), ``"seconds"`` (a video network's common clock), or
            ``""`` (a manifest's or pattern's times, whose unit the files do not say).
    """

    camera_ids: np.ndarray
    probabilities: np.ndarray
    counts: np.ndarray
    pair_ids: np.ndarray
    bin_width: float = 100.0
    sigma_bins: float = 50.0
    truncate: float = 3.0
    time_unit: str = ""
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
        check_parameters(self.bin_width, self.sigma_bins, self.truncate, "transit model")
        if self.time_unit not in TIME_UNITS:
            raise ReIDError(
                f"transit model: time_unit {self.time_unit!r}, expected one of "
                f"{', '.join(repr(unit) for unit in TIME_UNITS)}"
            )
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
        time_unit: str = "",
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
            time_unit: the times' unit where known (see the class).

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
            time_unit=time_unit,
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
        time_unit: str = "",
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
            time_unit: the times' unit where known (see the class).

        Returns:
            the fitted model.

        Raises:
            ReIDError: mismatched or non-numeric columns, a missing (NaN) time, fewer than two
                cameras, no identity seen in two cameras, or a table too large for the bin width.
        """
        counted = count_transits(
            pids,
            cams,
            times,
            bin_width=bin_width,
            sigma_bins=sigma_bins,
            truncate=truncate,
            camera_ids=camera_ids,
        )
        known = counted.camera_ids
        model = cls.from_counts(
            known,
            counted.counts,
            counted.pair_ids,
            bin_width=bin_width,
            sigma_bins=sigma_bins,
            truncate=truncate,
            time_unit=time_unit,
        )
        unvisited = known[~np.isin(known, counted.visited)]
        if unvisited.size:
            log.warning(
                "cameras %s have no labelled training image: their transit probabilities are 0",
                unvisited.tolist(),
            )
        log.info(
            "transit model: %d identities, %d cameras, %d of %d camera pairs observed, %d bins of %g",
            counted.num_identities,
            known.size,
            model.num_observed_pairs,
            known.size * (known.size - 1),
            counted.num_bins,
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
            time_unit=records.time_unit,
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
        write_transit_file(
            path,
            camera_ids=self.camera_ids,
            probabilities=self.probabilities,
            counts=self.counts,
            pair_ids=self.pair_ids,
            bin_width=self.bin_width,
            sigma_bins=self.sigma_bins,
            truncate=self.truncate,
            time_unit=self.time_unit,
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> TransitTimeModel:
        """Read and validate a model written by :meth:`save`; problems raise :class:`ReIDError`
        naming the file and the array.

        Args:
            path: a file written by :meth:`save` (or ``mtmct-reid st fit``).
        """
        path = Path(path)
        fields = read_transit_file(path)
        try:
            return cls(**fields)
        except ReIDError as exc:
            raise ReIDError(f"{path}: {exc}") from None

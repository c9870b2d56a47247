"""Columnar records: one row per image, held as parallel numpy arrays.

Every later stage (transit-time fitting, sampling, evaluation) works on whole columns at once, so a
dataset is not a list of objects but a handful of aligned arrays.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mtmct_reid.errors import ReIDError

SPLITS = ("train", "query", "gallery")

#: Person id of junk boxes: kept in the gallery, never a true match.
JUNK_PID = -1
#: Person id of distractors (Market-1501 ``0000``): kept in the gallery, never a true match.
DISTRACTOR_PID = 0


@dataclass(frozen=True)
class Records:
    """Aligned arrays describing the images of a dataset.

    Args:
        paths: absolute image paths, unicode array [N].
        pids: person ids, int64 [N] (``-1`` junk, ``0`` distractor where the dataset uses them).
        cams: camera ids, int64 [N]. Readers keep the dataset's own numbering (Market: 1..6).
        times: time of each image in frames (or any unit shared by all cameras), float64 [N];
            NaN where the dataset has no clock.
        splits: ``"train"``, ``"query"`` or ``"gallery"`` per image, unicode array [N].
        camera_names: optional mapping from camera id to the user's label (CSV manifests with named
            cameras); empty when the ids are the labels.
        root: the folder the records were read from, if any.
        time_unit: the unit of ``times`` where the dataset's layout fixes it (``"frames"`` for
            Market-1501, DukeMTMC-reID and MSMT17 names), else ``""``.

    Example:
        >>> r = Records.from_columns(["a.jpg", "b.jpg"], [1, 1], [1, 2], [10.0, 250.0], ["train"] * 2)
        >>> len(r.split("train")), r.num_ids
        (2, 1)
    """

    paths: np.ndarray
    pids: np.ndarray
    cams: np.ndarray
    times: np.ndarray
    splits: np.ndarray
    camera_names: Mapping[int, str] = field(default_factory=dict)
    root: Path | None = None
    time_unit: str = ""

    def __post_init__(self) -> None:
        n = len(self.paths)
        for name in ("pids", "cams", "times", "splits"):
            if len(getattr(self, name)) != n:
                raise ReIDError(
                    f"records: column '{name}' has {len(getattr(self, name))} rows, expected {n}"
                )

    @classmethod
    def from_columns(
        cls,
        paths: Iterable[str],
        pids: Iterable[int],
        cams: Iterable[int],
        times: Iterable[float] | None,
        splits: Iterable[str],
        camera_names: Mapping[int, str] | None = None,
        root: Path | None = None,
    ) -> Records:
        """Build records from any iterables, converting each column to its canonical dtype."""
        paths_a = np.asarray([str(p) for p in paths], dtype=np.str_)
        n = len(paths_a)
        times_a = (
            np.full(n, np.nan, dtype=np.float64)
            if times is None
            else np.asarray(list(times), dtype=np.float64)
        )
        return cls(
            paths=paths_a,
            pids=np.asarray(list(pids), dtype=np.int64).reshape(-1),
            cams=np.asarray(list(cams), dtype=np.int64).reshape(-1),
            times=times_a.reshape(-1),
            splits=np.asarray(list(splits), dtype=np.str_).reshape(-1),
            camera_names=dict(camera_names or {}),
            root=root,
        )

    @classmethod
    def concat(cls, parts: Iterable[Records]) -> Records:
        """Stack several record sets (e.g. one per split) into one."""
        parts = list(parts)
        if not parts:
            return cls.from_columns([], [], [], [], [])
        names: dict[int, str] = {}
        for p in parts:
            names.update(p.camera_names)
        return cls(
            paths=np.concatenate([p.paths for p in parts]).astype(np.str_),
            pids=np.concatenate([p.pids for p in parts]).astype(np.int64),
            cams=np.concatenate([p.cams for p in parts]).astype(np.int64),
            times=np.concatenate([p.times for p in parts]).astype(np.float64),
            splits=np.concatenate([p.splits for p in parts]).astype(np.str_),
            camera_names=names,
            root=parts[0].root,
            # A unit only where every part agrees on it.
            time_unit=parts[0].time_unit if len({p.time_unit for p in parts}) == 1 else "",
        )

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, index: np.ndarray) -> Records:
        """Rows selected by a boolean mask or an integer index array."""
        return Records(
            paths=self.paths[index],
            pids=self.pids[index],
            cams=self.cams[index],
            times=self.times[index],
            splits=self.splits[index],
            camera_names=self.camera_names,
            root=self.root,
            time_unit=self.time_unit,
        )

    def split(self, name: str) -> Records:
        """The rows of one split (``train``, ``query`` or ``gallery``)."""
        if name not in SPLITS:
            raise ReIDError(f"split '{name}' is not one of {', '.join(SPLITS)}")
        return self.subset(self.splits == name)

    @property
    def num_ids(self) -> int:
        """Number of distinct person ids (junk and distractors included if present)."""
        return int(np.unique(self.pids).size)

    @property
    def camera_ids(self) -> np.ndarray:
        """Sorted distinct camera ids."""
        return np.unique(self.cams)

    @property
    def has_times(self) -> bool:
        """True when every row has a finite time."""
        return bool(len(self)) and bool(np.isfinite(self.times).all())

    def camera_label(self, cam: int) -> str:
        """The user's name for camera ``cam`` (its number when cameras are unnamed)."""
        return self.camera_names.get(int(cam), str(int(cam)))

"""The MTMC root's in-memory types: a camera and its clock, and boxes as aligned numpy columns.

Frames are 1-based. ``offset`` is the time, in seconds on the network's common clock, of a camera's
frame 1, so frame ``f`` of a camera is at ``offset + (f - 1) / fps``. Boxes travel as
:class:`Boxes`, aligned numpy columns, never as per-box objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from mtmct_reid.errors import ReIDError

#: The box sources every camera may have besides its trackers' ``tracks/NAME.txt``.
GT, DET = "gt", "det"
#: Identity of a box that has none (detections).
NO_ID = -1


@dataclass(frozen=True)
class Camera:
    """One camera of a network.

    Args:
        id: integer id used in every box array.
        name: the ``camera`` cell of ``cameras.csv``, which is also the camera's folder name.
        fps: frames per second (> 0).
        offset: seconds on the common clock at frame 1.
        width: frame width in pixels, when known.
        height: frame height in pixels, when known.

    Example:
        >>> cam = Camera(id=2, name="2", fps=10.0, offset=5.0)
        >>> cam.times(np.array([1, 11])).tolist()
        [5.0, 6.0]
    """

    id: int
    name: str
    fps: float
    offset: float
    width: int | None = None
    height: int | None = None

    def times(self, frames: np.ndarray) -> np.ndarray:
        """Common-clock seconds of 1-based ``frames`` (float64)."""
        return self.offset + (np.asarray(frames, dtype=np.float64) - 1.0) / self.fps

    def frames_at(self, times: np.ndarray) -> np.ndarray:
        """The 1-based frame nearest each common-clock time (int64; may be outside the video)."""
        return (
            np.rint((np.asarray(times, dtype=np.float64) - self.offset) * self.fps).astype(np.int64)
            + 1
        )


def camera_ids(labels: Sequence[str]) -> list[int]:
    """Integer labels are the ids; otherwise the sorted names become ids 1..C.

    Example:
        >>> camera_ids(["3", "1"]), camera_ids(["west", "east"])
        ([3, 1], [2, 1])
    """
    labels = [str(s).strip() for s in labels]
    try:
        return [int(s) for s in labels]
    except ValueError:
        order = {name: i + 1 for i, name in enumerate(sorted(set(labels)))}
        return [order[s] for s in labels]


@dataclass(frozen=True)
class Boxes:
    """Boxes of one or many cameras as aligned columns (one row per box).

    Args:
        cams: camera id, int64 [N].
        frames: 1-based frame, int64 [N].
        ids: identity (global in ground truth, local in a tracker's output, ``-1`` for detections).
        x, y, w, h: top-left corner and size in pixels, float64 [N].
        conf: confidence (1 in ground truth), float64 [N].
        cls: MOTChallenge class (1 pedestrian, ``-1`` unknown), int64 [N].
        visibility: visible fraction in [0, 1] (``-1`` unknown), float64 [N].
        xworld, yworld: AI City world coordinates (``-1`` unknown), float64 [N].

    Example:
        >>> b = Boxes.from_columns(cams=[1, 1], frames=[2, 1], ids=[7, 7], x=[0, 1], y=[0, 0],
        ...                        w=[10, 10], h=[20, 20])
        >>> b.sorted().frames.tolist(), len(b)
        ([1, 2], 2)
    """

    cams: np.ndarray
    frames: np.ndarray
    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    w: np.ndarray
    h: np.ndarray
    conf: np.ndarray
    cls: np.ndarray
    visibility: np.ndarray
    xworld: np.ndarray
    yworld: np.ndarray

    _INT = ("cams", "frames", "ids", "cls")
    _DEFAULTS = {"conf": 1.0, "cls": -1, "visibility": -1.0, "xworld": -1.0, "yworld": -1.0}

    def __post_init__(self) -> None:
        n = len(self.cams)
        for f in fields(self):
            if len(getattr(self, f.name)) != n:
                raise ReIDError(
                    f"boxes: column '{f.name}' has {len(getattr(self, f.name))} rows, expected {n}"
                )

    @classmethod
    def from_columns(boxes_type, **columns: Iterable[float] | np.ndarray | None) -> Boxes:
        """Boxes from any array-likes; ``conf``, ``cls``, ``visibility``, ``xworld``, ``yworld``
        default to 1, −1, −1, −1, −1."""
        n = len(np.asarray(columns["cams"]))
        out = {}
        for f in fields(boxes_type):
            value = columns.get(f.name)
            dtype = np.int64 if f.name in boxes_type._INT else np.float64
            if value is None:
                if f.name not in boxes_type._DEFAULTS:
                    raise TypeError(f"Boxes.from_columns: missing column '{f.name}'")
                out[f.name] = np.full(n, boxes_type._DEFAULTS[f.name], dtype=dtype)
            else:
                out[f.name] = np.asarray(value, dtype=dtype).reshape(-1)
        unknown = set(columns) - {f.name for f in fields(boxes_type)}
        if unknown:
            raise TypeError(f"Boxes.from_columns: unknown column(s) {sorted(unknown)}")
        return boxes_type(**out)

    @classmethod
    def empty(cls) -> Boxes:
        """No boxes."""
        return cls.from_columns(cams=[], frames=[], ids=[], x=[], y=[], w=[], h=[])

    @classmethod
    def concat(cls, parts: Sequence[Boxes]) -> Boxes:
        """Rows of every part, in order."""
        if not parts:
            return cls.empty()
        return cls(
            **{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)}
        )

    def __len__(self) -> int:
        return len(self.cams)

    def select(self, index: np.ndarray) -> Boxes:
        """The rows picked by a boolean mask or an integer index array."""
        return Boxes(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def replace(self, **columns: np.ndarray) -> Boxes:
        """A copy with some columns replaced (same length)."""
        current = {f.name: getattr(self, f.name) for f in fields(self)}
        current.update(columns)
        return Boxes.from_columns(**current)

    def sorted(self) -> Boxes:
        """Rows ordered by camera, frame, then id."""
        return self.select(np.lexsort((self.ids, self.frames, self.cams)))

    def camera(self, cam: int) -> Boxes:
        """The rows of one camera."""
        return self.select(self.cams == cam)

    @property
    def xywh(self) -> np.ndarray:
        """[N, 4] float64 ``x, y, w, h``."""
        return np.stack([self.x, self.y, self.w, self.h], axis=1)

    @property
    def xyxy(self) -> np.ndarray:
        """[N, 4] float64 ``x1, y1, x2, y2``."""
        return np.stack([self.x, self.y, self.x + self.w, self.y + self.h], axis=1)

    def equals(self, other: Boxes) -> bool:
        """Same rows in the same order, every column exactly equal."""
        return len(self) == len(other) and all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
        )

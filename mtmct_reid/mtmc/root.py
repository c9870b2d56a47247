"""The MTMC root: a camera network's frames (or videos), clocks and boxes on disk.

Layout (``ROOT`` is any folder)::

    ROOT/cameras.csv                 camera,fps,offset[,width,height]
    ROOT/<camera>/img1/000001.jpg …  frames (MOTChallenge), or
    ROOT/<camera>/video.mp4|avi|mkv  one video, decoded in order by PyAV
    ROOT/<camera>/gt/gt.txt          frame,id,x,y,w,h,conf,class,visibility (ids global across cameras)
    ROOT/<camera>/det/det.txt        frame,-1,x,y,w,h,conf,-1,-1,-1
    ROOT/<camera>/tracks/NAME.txt    frame,id,x,y,w,h,conf,-1,-1,-1 (one tracker's local ids)

Frames are 1-based. ``offset`` is the time, in seconds on the network's common clock, of a camera's
frame 1, so frame ``f`` of a camera is at ``offset + (f - 1) / fps``. The ``camera`` column holds
integer ids (the folder is the id as written) or names; names become ids 1..C in sorted order, as
the CSV manifest does. The AI City single-file format (``camera_id obj_id frame_id xmin ymin width
height xworld yworld``, space separated) is read and written too.

Boxes travel as :class:`Boxes`, aligned numpy columns, never as per-box objects.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mtmct_reid._io import atomic_path
from mtmct_reid.errors import ReIDError, first_line

log = logging.getLogger(__name__)

CAMERAS_NAME = "cameras.csv"
#: Video file names a camera folder may hold instead of ``img1/``, in the order they are looked for.
VIDEO_NAMES = ("video.mp4", "video.avi", "video.mkv")
FRAMES_DIR = "img1"
#: Digits of a frame file name (``000001.jpg``).
FRAME_DIGITS = 6
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")
#: The box sources every camera may have besides its trackers' ``tracks/NAME.txt``.
GT, DET = "gt", "det"
#: Identity of a box that has none (detections).
NO_ID = -1

_VIDEO_EXTRA = "PyAV is needed to read video: pip install 'mtmct-reid[video]'"


# --------------------------------------------------------------------------------------------------
# Cameras


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


def read_cameras(path: str | os.PathLike) -> list[Camera]:
    """Read ``cameras.csv`` (header ``camera,fps,offset`` and optionally ``width,height``).

    Raises:
        ReIDError: a missing file or column, a non-numeric or non-positive field, a repeated camera.
    """
    path = Path(path)
    if not path.is_file():
        raise ReIDError(f"{path}: {CAMERAS_NAME} not found (expected columns camera,fps,offset)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ReIDError(f"{path}: unreadable ({first_line(exc)})") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in ("camera", "fps", "offset") if c not in header]
    if missing:
        raise ReIDError(
            f"{path}: missing column(s) {', '.join(missing)} (header must start camera,fps,offset)"
        )
    if ("width" in header) != ("height" in header):
        raise ReIDError(f"{path}: give both width and height columns, or neither")
    rows: list[tuple[int, str, float, float, int | None, int | None]] = []
    for row_no, row in enumerate(reader, start=2):
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        name = (row.get("camera") or "").strip()
        if not name or "/" in name or name in (".", ".."):
            raise ReIDError(f"{path}: row {row_no}: camera '{name}' is not a folder name")
        fps = _csv_float(path, row_no, "fps", row.get("fps"))
        offset = _csv_float(path, row_no, "offset", row.get("offset"))
        if fps <= 0:
            raise ReIDError(f"{path}: row {row_no}: fps is {fps:g}, expected a positive number")
        width = height = None
        if "width" in header and ((row.get("width") or "").strip() or (row.get("height") or "")):
            width = _csv_size(path, row_no, "width", row.get("width"))
            height = _csv_size(path, row_no, "height", row.get("height"))
        rows.append((row_no, name, fps, offset, width, height))
    if not rows:
        raise ReIDError(f"{path}: no cameras listed")
    names = [r[1] for r in rows]
    ids = camera_ids(names)
    seen: dict[int, int] = {}
    for (row_no, name, *_), cam_id in zip(rows, ids, strict=True):
        if cam_id in seen:
            raise ReIDError(
                f"{path}: row {row_no}: camera '{name}' repeats the camera of row {seen[cam_id]}"
            )
        seen[cam_id] = row_no
    return [
        Camera(id=cam_id, name=name, fps=fps, offset=offset, width=w, height=h)
        for (_, name, fps, offset, w, h), cam_id in zip(rows, ids, strict=True)
    ]


def _csv_float(path: Path, row_no: int, field: str, value: str | None) -> float:
    try:
        out = float((value or "").strip())
    except ValueError:
        raise ReIDError(
            f"{path}: row {row_no}: field '{field}' is '{value or ''}', expected a number"
        ) from None
    if not math.isfinite(out):
        raise ReIDError(
            f"{path}: row {row_no}: field '{field}' is '{value}', expected a finite number"
        )
    return out


def _csv_size(path: Path, row_no: int, field: str, value: str | None) -> int:
    text = (value or "").strip()
    if not text.isdigit() or int(text) <= 0:
        raise ReIDError(f"{path}: row {row_no}: field '{field}' is '{text}', expected pixels > 0")
    return int(text)


def write_cameras(path: str | os.PathLike, cameras: Sequence[Camera]) -> Path:
    """Write ``cameras.csv`` atomically; ``width,height`` columns when every camera has them."""
    path = Path(path)
    sized = all(c.width is not None and c.height is not None for c in cameras)
    lines = ["camera,fps,offset" + (",width,height" if sized else "")]
    for c in cameras:
        line = f"{c.name},{_num(c.fps)},{_num(c.offset)}"
        lines.append(line + (f",{c.width},{c.height}" if sized else ""))
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path


def _num(value: float) -> str:
    """Shortest text that reads back as the same float (integers without a decimal point)."""
    value = float(value)
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


# --------------------------------------------------------------------------------------------------
# Boxes


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


# --------------------------------------------------------------------------------------------------
# Text tables: MOTChallenge rows and AI City files

MOT_FIELDS = ("frame", "id", "x", "y", "w", "h", "conf", "class", "visibility", "z")
AICITY_FIELDS = (
    "camera_id",
    "obj_id",
    "frame_id",
    "xmin",
    "ymin",
    "width",
    "height",
    "xworld",
    "yworld",
)


def _read_table(
    path: Path, sep: str | None, names: Sequence[str], min_fields: int
) -> tuple[np.ndarray, np.ndarray]:
    """Numeric rows of a text file as float64 [N, K] and each row's 1-based line number.

    Blank lines are skipped. Every row must have the same number of fields, between ``min_fields``
    and ``len(names)``, all finite numbers.
    """
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ReIDError(f"{path}: unreadable ({first_line(exc)})") from None
    lines = text.splitlines()
    keep = [i for i, line in enumerate(lines) if line.strip()]
    if not keep:
        return np.zeros((0, min_fields)), np.zeros(0, dtype=np.int64)
    rows = [lines[i] for i in keep]
    line_numbers = np.asarray(keep, dtype=np.int64) + 1
    expected = len(_split(rows[0], sep))
    if not min_fields <= expected <= len(names):
        raise ReIDError(
            f"{path}: row {line_numbers[0]} has {expected} fields, expected {min_fields} to "
            f"{len(names)} ({','.join(names[:expected] if expected <= len(names) else names)})"
        )
    try:
        table = np.loadtxt(rows, delimiter=sep, ndmin=2, dtype=np.float64)
        if table.shape[1] != expected:
            raise ValueError("ragged")
    except ValueError:
        for line_no, line in zip(line_numbers.tolist(), rows, strict=True):
            cells = _split(line, sep)
            if len(cells) != expected:
                raise ReIDError(
                    f"{path}: row {line_no} has {len(cells)} fields, expected {expected} like row "
                    f"{line_numbers[0]}"
                ) from None
            for name, cell in zip(names, cells, strict=False):
                try:
                    float(cell)
                except ValueError:
                    raise ReIDError(
                        f"{path}: row {line_no}: field '{name}' is '{cell.strip()}', expected a number"
                    ) from None
        raise ReIDError(f"{path}: not a table of numbers") from None
    bad = ~np.isfinite(table)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ReIDError(
            f"{path}: row {line_numbers[r]}: field '{names[c]}' is {table[r, c]}, expected a finite number"
        )
    return table, line_numbers


def _split(line: str, sep: str | None) -> list[str]:
    return line.split(sep) if sep else line.split()


def _integer_column(
    path: Path, table: np.ndarray, col: int, names: Sequence[str], lines: np.ndarray, low: int
) -> np.ndarray:
    values = table[:, col]
    bad = (values != np.round(values)) | (values < low) | (np.abs(values) > 2**53)
    if bad.any():
        r = int(np.argmax(bad))
        raise ReIDError(
            f"{path}: row {lines[r]}: field '{names[col]}' is {values[r]:g}, expected an integer >= {low}"
        )
    return values.astype(np.int64)


def _check_sizes(path: Path, boxes: Boxes, lines: np.ndarray) -> None:
    bad = (boxes.w <= 0) | (boxes.h <= 0)
    if bad.any():
        r = int(np.argmax(bad))
        raise ReIDError(
            f"{path}: row {lines[r]}: box size {boxes.w[r]:g}x{boxes.h[r]:g}, expected width and "
            "height > 0"
        )


def _check_duplicates(path: Path, boxes: Boxes, lines: np.ndarray) -> None:
    """One identity appears at most once per frame of a camera (detections, id −1, excepted)."""
    keyed = np.flatnonzero(boxes.ids != NO_ID)
    if len(keyed) < 2:
        return
    order = keyed[np.lexsort((boxes.ids[keyed], boxes.frames[keyed], boxes.cams[keyed]))]
    same = (
        (np.diff(boxes.cams[order]) == 0)
        & (np.diff(boxes.frames[order]) == 0)
        & (np.diff(boxes.ids[order]) == 0)
    )
    if same.any():
        k = int(np.argmax(same))
        a, b = sorted((int(order[k]), int(order[k + 1])))
        raise ReIDError(
            f"{path}: row {lines[b]}: frame {boxes.frames[b]} id {boxes.ids[b]} repeats row {lines[a]} "
            "(one box per identity and frame)"
        )


def read_mot(path: str | os.PathLike, camera: int, allow_no_id: bool = False) -> Boxes:
    """Read one camera's MOTChallenge file (gt, det or tracks) as :class:`Boxes`.

    Args:
        path: the text file (comma separated, 6 to 10 fields per row).
        camera: camera id given to every row.
        allow_no_id: accept id ``-1`` (detections); otherwise ids must be ``>= 0``.

    Raises:
        ReIDError: non-numeric fields, frames < 1, non-integer ids, non-positive sizes, or an id
            repeated in one frame, naming the file and row.
    """
    boxes, _ = _read_mot_rows(Path(path), camera, allow_no_id)
    return boxes


def _read_mot_rows(path: Path, camera: int, allow_no_id: bool) -> tuple[Boxes, np.ndarray]:
    if not path.is_file():
        raise ReIDError(f"{path}: file not found")
    table, lines = _read_table(path, ",", MOT_FIELDS, 6)
    frames = _integer_column(path, table, 0, MOT_FIELDS, lines, 1)
    ids = _integer_column(path, table, 1, MOT_FIELDS, lines, NO_ID if allow_no_id else 0)
    k = table.shape[1]
    # Columns 8-10 hold class and visibility in ground truth, world coordinates (-1) elsewhere;
    # reading them as class/visibility round-trips both, since writers put -1 there.
    cls = _integer_column(path, table, 7, MOT_FIELDS, lines, -(2**31)) if k > 7 else None
    boxes = Boxes.from_columns(
        cams=np.full(len(table), camera),
        frames=frames,
        ids=ids,
        x=table[:, 2],
        y=table[:, 3],
        w=table[:, 4],
        h=table[:, 5],
        conf=table[:, 6] if k > 6 else None,
        cls=cls,
        visibility=table[:, 8] if k > 8 else None,
    )
    _check_sizes(path, boxes, lines)
    _check_duplicates(path, boxes, lines)
    return boxes, lines


def write_mot(path: str | os.PathLike, boxes: Boxes, kind: str = GT) -> Path:
    """Write one camera's boxes as MOTChallenge rows, atomically, sorted by frame then id.

    Args:
        path: the text file.
        boxes: rows of a single camera.
        kind: ``"gt"`` writes ``frame,id,x,y,w,h,conf,class,visibility``; anything else writes
            ``frame,id,x,y,w,h,conf,-1,-1,-1`` (MOTChallenge detections and tracker results).
    """
    if len(np.unique(boxes.cams)) > 1:
        raise ValueError("write_mot: boxes of more than one camera")
    b = boxes.select(np.lexsort((boxes.ids, boxes.frames)))
    cols = [b.frames, b.ids, b.x, b.y, b.w, b.h, b.conf]
    if kind == GT:
        cols += [b.cls, b.visibility]
    else:
        cols += [np.full(len(b), -1)] * 3
    return _write_rows(Path(path), cols, ",")


def _write_rows(path: Path, cols: Sequence[np.ndarray], sep: str) -> Path:
    text_cols = [[_num(v) for v in np.asarray(c, dtype=np.float64).tolist()] for c in cols]
    body = "\n".join(sep.join(row) for row in zip(*text_cols, strict=True))
    with atomic_path(path) as tmp:
        tmp.write_text(body + ("\n" if body else ""))
    return path


def read_aicity(path: str | os.PathLike, cameras: Sequence[Camera] | None = None) -> Boxes:
    """Read an AI City MTMC file: ``camera_id obj_id frame_id xmin ymin width height xworld yworld``.

    Args:
        path: the text file (space separated; the world coordinates may be left out).
        cameras: when given, every ``camera_id`` must be one of these cameras' ids.

    Raises:
        ReIDError: as :func:`read_mot`, and a camera the network lacks.
    """
    path = Path(path)
    if not path.is_file():
        raise ReIDError(f"{path}: AI City file not found")
    table, lines = _read_table(path, None, AICITY_FIELDS, 7)
    cams = _integer_column(path, table, 0, AICITY_FIELDS, lines, -(2**31))
    if cameras is not None:
        known = np.array(sorted(c.id for c in cameras), dtype=np.int64)
        bad = ~np.isin(cams, known)
        if bad.any():
            r = int(np.argmax(bad))
            raise ReIDError(
                f"{path}: row {lines[r]}: camera_id {cams[r]} is not in {CAMERAS_NAME} "
                f"(cameras {', '.join(map(str, known.tolist()))})"
            )
    k = table.shape[1]
    boxes = Boxes.from_columns(
        cams=cams,
        ids=_integer_column(path, table, 1, AICITY_FIELDS, lines, 0),
        frames=_integer_column(path, table, 2, AICITY_FIELDS, lines, 1),
        x=table[:, 3],
        y=table[:, 4],
        w=table[:, 5],
        h=table[:, 6],
        xworld=table[:, 7] if k > 7 else None,
        yworld=table[:, 8] if k > 8 else None,
    )
    _check_sizes(path, boxes, lines)
    _check_duplicates(path, boxes, lines)
    return boxes


def write_aicity(path: str | os.PathLike, boxes: Boxes) -> Path:
    """Write boxes of any cameras as one AI City file, sorted by camera, frame, id (atomically)."""
    b = boxes.sorted()
    cols = [b.cams, b.ids, b.frames, b.x, b.y, b.w, b.h, b.xworld, b.yworld]
    return _write_rows(Path(path), cols, " ")


def is_aicity_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file (an AI City file) rather than an MTMC root folder."""
    return Path(path).is_file()


# --------------------------------------------------------------------------------------------------
# The root


@dataclass(frozen=True)
class CropBatch:
    """Crops of some boxes.

    Args:
        rows: index of each crop's box in the :class:`Boxes` that was cropped, int64 [B].
        images: uint8 RGB crops, [B, H, W, 3] when a size was asked for, else a list of [h, w, 3].
    """

    rows: np.ndarray
    images: np.ndarray | list[np.ndarray]


class MTMCRoot:
    """A camera network on disk (see the module documentation for the layout).

    Args:
        path: the root folder.
        cameras: its cameras, in ``cameras.csv`` order.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.mkdtemp()
        >>> root = create_root(tmp, [Camera(id=1, name="1", fps=10.0, offset=0.0)])
        >>> gt = Boxes.from_columns(cams=[1], frames=[3], ids=[5], x=[1], y=[2], w=[3], h=[4])
        >>> _ = root.write_boxes(gt, GT)
        >>> root.read_boxes(GT).equals(gt.replace(cls=[-1]))
        True
        >>> root.times(gt).tolist()
        [0.2]
    """

    def __init__(self, path: str | os.PathLike, cameras: Sequence[Camera]) -> None:
        self.path = Path(path)
        self.cameras = tuple(cameras)
        self._by_id = {c.id: c for c in self.cameras}
        self._num_frames: dict[int, int | None] = {}
        self._sizes: dict[int, tuple[int, int] | None] = {}

    def __repr__(self) -> str:
        return f"MTMCRoot({str(self.path)!r}, cameras={[c.name for c in self.cameras]})"

    @property
    def camera_ids(self) -> np.ndarray:
        """Camera ids, int64 [C], in ``cameras.csv`` order."""
        return np.array([c.id for c in self.cameras], dtype=np.int64)

    def camera(self, cam: int) -> Camera:
        """The camera with id ``cam``."""
        try:
            return self._by_id[int(cam)]
        except KeyError:
            raise ReIDError(
                f"{self.path / CAMERAS_NAME}: no camera {cam} (cameras "
                f"{', '.join(str(c.id) for c in self.cameras)})"
            ) from None

    def camera_dir(self, cam: int) -> Path:
        """The folder of camera ``cam``."""
        return self.path / self.camera(cam).name

    def times(self, boxes: Boxes) -> np.ndarray:
        """Common-clock seconds of every box (float64 [N])."""
        out = np.empty(len(boxes), dtype=np.float64)
        for c in self.cameras:
            sel = boxes.cams == c.id
            out[sel] = c.times(boxes.frames[sel])
        unknown = ~np.isin(boxes.cams, self.camera_ids)
        if unknown.any():
            self.camera(int(boxes.cams[np.argmax(unknown)]))  # raises, naming the camera
        return out

    # ---- files

    def source_path(self, cam: int, source: str) -> Path:
        """``gt/gt.txt``, ``det/det.txt`` or ``tracks/<source>.txt`` of camera ``cam``."""
        if source in (GT, DET):
            return self.camera_dir(cam) / source / f"{source}.txt"
        if not source or "/" in source or source.startswith("."):
            raise ReIDError(f"tracks name '{source}' is not a file name")
        return self.camera_dir(cam) / "tracks" / f"{source}.txt"

    def sources(self) -> list[str]:
        """Box sources present in at least one camera: ``gt``, ``det`` and tracker names."""
        found: list[str] = []
        for source in (GT, DET):
            if any(self.source_path(c.id, source).is_file() for c in self.cameras):
                found.append(source)
        names = set()
        for c in self.cameras:
            tracks = self.path / c.name / "tracks"
            if tracks.is_dir():
                names.update(p.stem for p in tracks.glob("*.txt") if not p.name.startswith("."))
        return found + sorted(names)

    def read_boxes(self, source: str = GT, check_frames: bool = True) -> Boxes:
        """Boxes of every camera from ``source`` (``"gt"``, ``"det"`` or a tracks name), sorted.

        Boxes partly outside a frame of known size are clipped to it and those entirely outside
        dropped, with one warning per file. A camera without the file has no boxes (one warning),
        unless no camera has it (ReIDError).

        Args:
            source: which file of each camera.
            check_frames: refuse rows past a camera's last frame (needs the frames or video).
        """
        parts = []
        missing = []
        for c in self.cameras:
            path = self.source_path(c.id, source)
            if not path.is_file():
                missing.append(path)
                continue
            boxes, lines = _read_mot_rows(path, c.id, allow_no_id=source == DET)
            if check_frames and len(boxes):
                last = self.num_frames(c.id)
                if last is not None and boxes.frames.max() > last:
                    r = int(np.argmax(boxes.frames > last))
                    raise ReIDError(
                        f"{path}: row {lines[r]}: frame {boxes.frames[r]} is past the camera's "
                        f"last frame {last}"
                    )
            parts.append(self._clip(path, boxes))
        if len(missing) == len(self.cameras):
            raise ReIDError(
                f"{self.path}: no camera has {source} boxes (looked for {missing[0].relative_to(self.path)})"
            )
        for path in missing:
            log.warning("%s: not found; camera has no %s boxes", path, source)
        return Boxes.concat(parts).sorted()

    def _clip(self, path: Path, boxes: Boxes) -> Boxes:
        if not len(boxes):
            return boxes
        size = self.frame_size(int(boxes.cams[0]))
        if size is None:
            return boxes
        width, height = size
        # A hair of tolerance: "x + w" of a box written to the frame's edge may round past it.
        tol = 1e-6
        outside = (
            (boxes.x < -tol)
            | (boxes.y < -tol)
            | (boxes.x + boxes.w > width + tol)
            | (boxes.y + boxes.h > height + tol)
        )
        if not outside.any():
            return boxes
        x1 = np.clip(boxes.x, 0, width)
        y1 = np.clip(boxes.y, 0, height)
        x2 = np.clip(boxes.x + boxes.w, 0, width)
        y2 = np.clip(boxes.y + boxes.h, 0, height)
        inside = (x2 > x1) & (y2 > y1)
        log.warning(
            "%s: %d box(es) partly outside the %dx%d frame clipped to it, %d entirely outside dropped",
            path,
            int((outside & inside).sum()),
            width,
            height,
            int((~inside).sum()),
        )
        clipped = boxes.replace(
            x=np.where(outside, x1, boxes.x),
            y=np.where(outside, y1, boxes.y),
            w=np.where(outside, x2 - x1, boxes.w),
            h=np.where(outside, y2 - y1, boxes.h),
        )
        return clipped.select(inside)

    def write_boxes(
        self, boxes: Boxes, source: str, cameras: Iterable[int] | None = None
    ) -> list[Path]:
        """Write ``source`` files for every camera (an empty file where it has no boxes).

        Args:
            boxes: rows of any of the root's cameras.
            source: ``"gt"``, ``"det"`` or a tracks name.
            cameras: cameras to write (default all).
        """
        unknown = ~np.isin(boxes.cams, self.camera_ids)
        if unknown.any():
            self.camera(int(boxes.cams[np.argmax(unknown)]))
        written = []
        for cam in self.camera_ids.tolist() if cameras is None else cameras:
            written.append(write_mot(self.source_path(cam, source), boxes.camera(cam), kind=source))
        return written

    # ---- frames

    def video_path(self, cam: int) -> Path | None:
        """The camera's video file, when it has no ``img1/`` folder."""
        folder = self.camera_dir(cam)
        if (folder / FRAMES_DIR).is_dir():
            return None
        for name in VIDEO_NAMES:
            if (folder / name).is_file():
                return folder / name
        return None

    def has_frames(self, cam: int) -> bool:
        """Whether the camera has ``img1/`` frames or a video."""
        return (self.camera_dir(cam) / FRAMES_DIR).is_dir() or self.video_path(cam) is not None

    def frame_paths(self, cam: int) -> list[Path]:
        """``img1/`` frame files in order; a gap in the numbering is a ReIDError."""
        folder = self.camera_dir(cam) / FRAMES_DIR
        names = sorted(
            p.name
            for p in folder.iterdir()
            if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")
        )
        numbers = []
        for name in names:
            stem = name.rsplit(".", 1)[0]
            if not stem.isdigit():
                raise ReIDError(
                    f"{folder / name}: frame file name is not a frame number (000001.jpg)"
                )
            numbers.append(int(stem))
        numbers_a = np.asarray(numbers, dtype=np.int64)
        order = np.argsort(numbers_a, kind="stable")
        numbers_a = numbers_a[order]
        expected = np.arange(1, len(numbers_a) + 1)
        if len(numbers_a) == 0:
            raise ReIDError(f"{folder}: no frames (expected 000001.jpg ...)")
        if not np.array_equal(numbers_a, expected):
            k = int(np.argmax(numbers_a != expected))
            if k > 0 and numbers_a[k] == numbers_a[k - 1]:
                raise ReIDError(f"{folder}: frame {numbers_a[k]} appears twice ({names[order[k]]})")
            raise ReIDError(
                f"{folder}: frame {expected[k]:0{FRAME_DIGITS}d} is missing (frames run to "
                f"{numbers_a[-1]})"
            )
        return [folder / names[i] for i in order]

    def num_frames(self, cam: int) -> int | None:
        """Frames of the camera (``img1/`` files or video frames); None without frames or PyAV."""
        if cam not in self._num_frames:
            n: int | None = None
            if (self.camera_dir(cam) / FRAMES_DIR).is_dir():
                n = len(self.frame_paths(cam))
            elif (video := self.video_path(cam)) is not None:
                n = _video_frame_count(video)
            self._num_frames[cam] = n
        return self._num_frames[cam]

    def frame_size(self, cam: int) -> tuple[int, int] | None:
        """``(width, height)`` from ``cameras.csv``, else the first frame or the video; None if unknown."""
        if cam not in self._sizes:
            c = self.camera(cam)
            size: tuple[int, int] | None = None
            if c.width is not None and c.height is not None:
                size = (c.width, c.height)
            elif (self.camera_dir(cam) / FRAMES_DIR).is_dir():
                from PIL import Image

                first = self.frame_paths(cam)[0]
                try:
                    with Image.open(first) as im:
                        size = im.size
                except OSError as exc:
                    raise ReIDError(f"{first}: unreadable image ({first_line(exc)})") from None
            elif (video := self.video_path(cam)) is not None:
                size = _video_size(video)
            self._sizes[cam] = size
        return self._sizes[cam]

    def duration(self, cam: int) -> float | None:
        """Seconds covered by the camera's frames, when their number is known."""
        n = self.num_frames(cam)
        return None if n is None else n / self.camera(cam).fps

    def iter_frames(
        self, cam: int, frames: Iterable[int] | None = None
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(frame, RGB uint8 [H, W, 3])`` in frame order, one frame in memory at a time.

        Args:
            cam: camera id.
            frames: 1-based frames wanted (default every frame); a video is still decoded in order
                up to the last one wanted.

        Raises:
            ReIDError: no frames, a missing or unreadable frame file, a video that cannot be decoded.
        """
        wanted = None if frames is None else np.unique(np.asarray(list(frames), dtype=np.int64))
        if (self.camera_dir(cam) / FRAMES_DIR).is_dir():
            yield from _iter_image_frames(self.frame_paths(cam), wanted)
            return
        video = self.video_path(cam)
        if video is None:
            raise ReIDError(
                f"{self.camera_dir(cam)}: no frames ({FRAMES_DIR}/000001.jpg ...) and no video "
                f"({', '.join(VIDEO_NAMES)})"
            )
        yield from _iter_video_frames(video, wanted)

    def iter_crops(
        self, boxes: Boxes, batch_size: int = 64, size: tuple[int, int] | None = None
    ) -> Iterator[CropBatch]:
        """Crop every box from its frame, in batches, reading each camera's frames once in order.

        Args:
            boxes: boxes of this root's cameras (any order; ``CropBatch.rows`` index into them).
            batch_size: crops per batch (> 0); memory holds one batch and one frame.
            size: ``(height, width)`` to resize every crop to (bilinear), giving a stacked array.

        Example:
            >>> # for batch in root.iter_crops(tracks, size=(128, 64)): model(batch.images)
        """
        if batch_size <= 0:
            raise ReIDError(f"batch size {batch_size}: expected a positive integer")
        order = np.lexsort((boxes.frames, boxes.cams))
        rows: list[int] = []
        images: list[np.ndarray] = []
        for cam in np.unique(boxes.cams).tolist():
            cam_rows = order[boxes.cams[order] == cam]
            frame_of = boxes.frames[cam_rows]
            pos = 0
            for frame, image in self.iter_frames(cam, frame_of):
                end = pos
                while end < len(cam_rows) and frame_of[end] == frame:
                    end += 1
                for r in cam_rows[pos:end].tolist():
                    rows.append(r)
                    images.append(
                        _crop(image, boxes.x[r], boxes.y[r], boxes.w[r], boxes.h[r], size)
                    )
                    if len(rows) == batch_size:
                        yield _batch(rows, images, size)
                        rows, images = [], []
                pos = end
            if pos != len(cam_rows):
                raise ReIDError(
                    f"{self.camera_dir(cam)}: frame {frame_of[pos]} is past the camera's last frame"
                )
        if rows:
            yield _batch(rows, images, size)


def _batch(rows: list[int], images: list[np.ndarray], size: tuple[int, int] | None) -> CropBatch:
    return CropBatch(
        rows=np.asarray(rows, dtype=np.int64), images=np.stack(images) if size else images
    )


def _crop(
    image: np.ndarray, x: float, y: float, w: float, h: float, size: tuple[int, int] | None
) -> np.ndarray:
    height, width = image.shape[:2]
    x1 = min(max(int(math.floor(x)), 0), width - 1)
    y1 = min(max(int(math.floor(y)), 0), height - 1)
    x2 = min(max(int(math.ceil(x + w)), x1 + 1), width)
    y2 = min(max(int(math.ceil(y + h)), y1 + 1), height)
    crop = image[y1:y2, x1:x2]
    if size is None:
        return crop.copy()
    from PIL import Image

    return np.asarray(Image.fromarray(crop).resize((size[1], size[0]), Image.BILINEAR))


def _iter_image_frames(
    paths: list[Path], wanted: np.ndarray | None
) -> Iterator[tuple[int, np.ndarray]]:
    from PIL import Image

    numbers = range(1, len(paths) + 1) if wanted is None else wanted.tolist()
    for frame in numbers:
        if frame < 1 or frame > len(paths):
            raise ReIDError(
                f"{paths[0].parent}: frame {frame} is past the camera's last frame {len(paths)}"
            )
        path = paths[frame - 1]
        try:
            with Image.open(path) as im:
                array = np.asarray(im.convert("RGB"))
        except OSError as exc:
            raise ReIDError(f"{path}: unreadable image ({first_line(exc)})") from None
        yield frame, array


def _import_av():
    try:
        import av
    except ImportError:
        raise ReIDError(_VIDEO_EXTRA) from None
    return av


def _open_video(path: Path):
    av = _import_av()
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise ReIDError(f"{path}: cannot be decoded ({first_line(exc)})") from None
    if not container.streams.video:
        container.close()
        raise ReIDError(f"{path}: has no video stream")
    return av, container


def _iter_video_frames(path: Path, wanted: np.ndarray | None) -> Iterator[tuple[int, np.ndarray]]:
    av, container = _open_video(path)
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        last = None if wanted is None else int(wanted[-1])
        k = 0
        frame_no = 0
        try:
            for frame in container.decode(stream):
                frame_no += 1
                if wanted is None:
                    yield frame_no, frame.to_ndarray(format="rgb24")
                else:
                    if frame_no == wanted[k]:
                        yield frame_no, frame.to_ndarray(format="rgb24")
                        k += 1
                        if k == len(wanted):
                            return
                if last is not None and frame_no >= last:
                    break
        except (av.error.FFmpegError, ValueError) as exc:
            raise ReIDError(
                f"{path}: cannot be decoded after frame {frame_no} ({first_line(exc)})"
            ) from None
        if wanted is not None and k < len(wanted):
            raise ReIDError(f"{path}: frame {wanted[k]} is past the video's last frame {frame_no}")
    finally:
        container.close()


def _video_frame_count(path: Path) -> int | None:
    try:
        av, container = _open_video(path)
    except ReIDError as exc:
        if str(exc) == _VIDEO_EXTRA:
            log.warning("%s: frames not counted (%s)", path, _VIDEO_EXTRA)
            return None
        raise
    try:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        # Containers without a frame count in their header (mkv): count packets, no decoding.
        try:
            return sum(1 for p in container.demux(stream) if p.size)
        except (av.error.FFmpegError, ValueError) as exc:
            raise ReIDError(f"{path}: cannot be decoded ({first_line(exc)})") from None
    finally:
        container.close()


def _video_size(path: Path) -> tuple[int, int] | None:
    try:
        _, container = _open_video(path)
    except ReIDError as exc:
        if str(exc) == _VIDEO_EXTRA:
            return None
        raise
    try:
        stream = container.streams.video[0]
        return int(stream.codec_context.width), int(stream.codec_context.height)
    finally:
        container.close()


def read_root(path: str | os.PathLike) -> MTMCRoot:
    """Open an MTMC root: read ``cameras.csv`` and check every camera has its folder.

    Raises:
        ReIDError: no folder, no or bad ``cameras.csv``, a camera folder missing.
    """
    path = Path(path)
    if not path.is_dir():
        raise ReIDError(f"{path}: MTMC root folder not found")
    cameras = read_cameras(path / CAMERAS_NAME)
    for c in cameras:
        if not (path / c.name).is_dir():
            raise ReIDError(
                f"{path / CAMERAS_NAME}: camera '{c.name}' has no folder {path / c.name}"
            )
    return MTMCRoot(path, cameras)


def is_root(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder with a ``cameras.csv``."""
    return (Path(path) / CAMERAS_NAME).is_file()


def create_root(path: str | os.PathLike, cameras: Sequence[Camera]) -> MTMCRoot:
    """Make an MTMC root's folders and write its ``cameras.csv``; returns it opened."""
    path = Path(path)
    for c in cameras:
        (path / c.name).mkdir(parents=True, exist_ok=True)
    write_cameras(path / CAMERAS_NAME, cameras)
    return MTMCRoot(path, cameras)


def write_video(
    path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float, codec: str = "mpeg4"
) -> Path:
    """Encode RGB uint8 frames as a video with PyAV (atomically), one frame in memory at a time.

    Args:
        path: ``.mp4``, ``.avi`` or ``.mkv`` file.
        frames: [H, W, 3] uint8 arrays, all the same size (even width and height).
        fps: frames per second.
        codec: an encoder FFmpeg has (``mpeg4`` is built into every FFmpeg).
    """
    av = _import_av()
    from fractions import Fraction

    path = Path(path)
    rate = Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp:
        container = av.open(str(tmp), mode="w")
        try:
            stream = None
            for image in frames:
                if stream is None:
                    stream = container.add_stream(codec, rate=rate)
                    stream.width, stream.height = image.shape[1], image.shape[0]
                    stream.pix_fmt = "yuv420p"
                    stream.options = {"qscale": "3"} if codec == "mpeg4" else {}
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
            if stream is not None:
                for packet in stream.encode():
                    container.mux(packet)
        finally:
            container.close()
    return path

"""The MTMC root's text files: ``cameras.csv``, MOTChallenge rows and the AI City single file.

``cameras.csv`` has the header ``camera,fps,offset[,width,height]``; the ``camera`` column holds
integer ids (the folder is the id as written) or names, which become ids 1..C in sorted order, as
the CSV manifest does. MOTChallenge files hold ``frame,id,x,y,w,h,conf[,class,visibility,z]``
rows, one camera each. The AI City single-file format (``camera_id obj_id frame_id xmin ymin width
height xworld yworld``, space separated) is read and written too. Every reader names the file, row
and field of what it refuses; every writer is atomic.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtmct_reid._io import atomic_path, utf8_text
from mtmct_reid.errors import ReIDError, first_line
from mtmct_reid.mtmc.boxes import GT, NO_ID, Boxes, Camera, camera_ids

CAMERAS_NAME = "cameras.csv"


# --------------------------------------------------------------------------------------------------
# cameras.csv


def read_cameras(path: str | os.PathLike) -> list[Camera]:
    """Read ``cameras.csv`` (header ``camera,fps,offset`` and optionally ``width,height``).

    Raises:
        ReIDError: a missing file or column, a non-numeric or non-positive field, a repeated camera.
    """
    path = Path(path)
    if not path.is_file():
        raise ReIDError(f"{path}: {CAMERAS_NAME} not found (expected columns camera,fps,offset)")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ReIDError(f"{path}: unreadable ({first_line(exc)})") from None
    reader = csv.DictReader(io.StringIO(utf8_text(data, str(path))))
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
        data = path.read_bytes()
    except OSError as exc:
        raise ReIDError(f"{path}: unreadable ({first_line(exc)})") from None
    text = utf8_text(data, str(path))
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
    boxes, _ = read_mot_rows(Path(path), camera, allow_no_id)
    return boxes


def read_mot_rows(path: Path, camera: int, allow_no_id: bool) -> tuple[Boxes, np.ndarray]:
    """:func:`read_mot`, with each box's 1-based line number in the file (int64 [N]), for messages
    that name the row."""
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

    Example:
        >>> import tempfile
        >>> folder = tempfile.TemporaryDirectory()
        >>> path = Path(folder.name) / "gt.txt"
        >>> gt = Boxes.from_columns(cams=[1, 1], frames=[2, 1], ids=[5, 5], x=[0, 1.5], y=[0, 0],
        ...                         w=[10, 10], h=[20, 20], visibility=[1, 0.5])
        >>> print(write_mot(path, gt).read_text(), end="")
        1,5,1.5,0,10,20,1,-1,0.5
        2,5,0,0,10,20,1,-1,1
        >>> read_mot(path, camera=1).equals(gt.sorted())
        True
        >>> folder.cleanup()
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

"""A CSV manifest ``path,pid,camera,time,split``: reading it (a layout like the others) and writing one
that reads back into the same records."""

from __future__ import annotations

import csv
import io
import math
import os
import re
from pathlib import Path

import numpy as np

from mtmct_reid._io import atomic_path, utf8_text
from mtmct_reid.data.layouts.base import (
    SHOWN,
    Layout,
    camera_ids,
    check_pids,
    float_column,
    int_column,
    log,
    raise_on_duplicates,
)
from mtmct_reid.data.layouts.registry import register_layout
from mtmct_reid.data.records import SPLITS, Records
from mtmct_reid.errors import ReIDError

#: Manifest columns: required, then optional.
MANIFEST_REQUIRED = ("path", "pid", "camera")
MANIFEST_COLUMNS = ("path", "pid", "camera", "time", "split")
#: Default manifest file name looked for inside a folder.
MANIFEST_NAME = "manifest.csv"


def find_manifest(root: Path) -> Path | None:
    """``root/manifest.csv``, else the folder's only ``.csv`` file, else None (several: one line)."""
    if (root / MANIFEST_NAME).is_file():
        return root / MANIFEST_NAME
    csvs = sorted(p for p in root.glob("*.csv") if p.is_file())
    if len(csvs) > 1:
        raise ReIDError(
            f"{root}: holds {len(csvs)} CSV files ({', '.join(p.name for p in csvs[:4])}); "
            f"pass the manifest file itself or name it {MANIFEST_NAME}"
        )
    return csvs[0] if csvs else None


def read_manifest(csv_path: str | os.PathLike) -> Records:
    """Read a CSV manifest with header ``path,pid,camera,time,split``.

    * ``path``: image path, relative to the manifest's folder (absolute paths are kept as they are).
    * ``pid``: integer person id (``-1`` junk, ``0`` distractor, ``> 0`` a person), within int64.
    * ``camera``: integer camera id, or a camera name; if every cell is a name, the sorted names
      become ids 1..C and ``Records.camera_names`` maps them back. Integers and names mixed in one
      manifest (``1`` and ``cam1``) are refused.
    * ``time`` (optional column; empty cells allowed): a number in any unit shared by all cameras;
      missing times are NaN (visual-only evaluation still works, spatial-temporal fusion does not).
    * ``split`` (optional column): ``train``, ``query`` or ``gallery``. A manifest without this column
      is a training set: every row is read as ``train`` (e.g. to fit transit times on your network).

    Columns may come in any order, each once; other columns are ignored. Every listed image must
    exist.

    Args:
        csv_path: the manifest file.

    Returns:
        Records in the manifest's row order, with absolute paths; ``root`` is the manifest's folder.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> _ = (Path(tmp.name) / "a.jpg").write_bytes(b"")
        >>> _ = (Path(tmp.name) / "m.csv").write_text("path,pid,camera\\na.jpg,5,lobby\\n")
        >>> records = read_manifest(Path(tmp.name) / "m.csv")
        >>> records.camera_label(1), records.splits.tolist()
        ('lobby', ['train'])
        >>> tmp.cleanup()
    """
    path = Path(csv_path).expanduser().resolve()
    if path.is_dir():
        raise ReIDError(f"{path}: is a folder, expected a CSV manifest file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ReIDError(f"{path}: no such file (expected a CSV manifest)") from None
    except OSError as exc:
        raise ReIDError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    text = utf8_text(data, str(path))
    if "\x00" in text:
        # numpy's text arrays drop NUL characters, which would change paths and labels silently.
        line = text[: text.index("\x00")].count("\n") + 1
        raise ReIDError(f"{path}, line {line}: holds a NUL character; not a text CSV file")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader, None)
        if header is None:
            raise ReIDError(f"{path}: empty file (expected header {','.join(MANIFEST_COLUMNS)})")
        header = [h.strip().lower() for h in header]
        rows = [r for r in reader if any(cell.strip() for cell in r)]
    except csv.Error as exc:
        raise ReIDError(f"{path}, line {reader.line_num}: not valid CSV ({exc})") from None
    missing = [c for c in MANIFEST_REQUIRED if c not in header]
    if missing:
        raise ReIDError(
            f"{path}: missing column(s) {', '.join(missing)} (header is {','.join(header)}; "
            f"expected {','.join(MANIFEST_COLUMNS)}, time and split optional)"
        )
    twice = [c for c in dict.fromkeys(header) if c and header.count(c) > 1]
    if twice:
        raise ReIDError(
            f"{path}: column '{twice[0]}' appears {header.count(twice[0])} times in the header "
            f"({','.join(header)}); keep one"
        )
    if not rows:
        raise ReIDError(f"{path}: no rows after the header")
    width = len(header)
    short = [i for i, r in enumerate(rows) if len(r) < width]
    if short:
        raise ReIDError(
            f"{path}: row {short[0] + 2} has {len(rows[short[0]])} cells, expected {width} "
            f"({','.join(header)})"
        )
    columns = {
        name: np.asarray([r[i] for r in rows], dtype=np.str_) for i, name in enumerate(header)
    }

    def line_of(i: int) -> int:
        return i + 2  # 1-based, after the header

    pid_column = np.char.strip(columns["pid"])
    try:
        pids = pid_column.astype(np.int64)
    except (ValueError, OverflowError):
        for i, cell in enumerate(pid_column.tolist()):
            if not re.fullmatch(r"[+-]?[0-9]+", cell):
                raise ReIDError(
                    f"{path}, line {line_of(i)}: pid {cell!r} is not an integer"
                ) from None
        pids = int_column(pid_column, lambda i: f"{path}, line {line_of(i)}: pid")
    check_pids(pids, lambda i: f"{path}, line {line_of(i)}")
    if "time" in columns:
        times = float_column(
            columns["time"],
            lambda i, v: f"{path}, line {line_of(i)}: time {v!r} is not a number",
        )
    else:
        times = np.full(len(rows), np.nan)
    if "split" in columns:
        splits = np.char.lower(np.char.strip(columns["split"]))
        bad = np.flatnonzero(~np.isin(splits, SPLITS))
        if bad.size:
            raise ReIDError(
                f"{path}, line {line_of(int(bad[0]))}: split {str(columns['split'][bad[0]])!r} is "
                f"not one of {', '.join(SPLITS)}"
            )
    else:
        log.info("%s: no 'split' column, all %d rows read as train", path, len(rows))
        splits = np.repeat(np.asarray(["train"]), len(rows))
    cam_column = np.char.strip(columns["camera"])
    empty_cam = np.flatnonzero(cam_column == "")
    if empty_cam.size:
        raise ReIDError(f"{path}, line {line_of(int(empty_cam[0]))}: empty camera cell")
    cams, camera_names = camera_ids(cam_column, lambda i: f"line {line_of(i)}", f"{path}: ")

    folder = path.parent
    rel = np.char.strip(columns["path"])
    empty_path = np.flatnonzero(rel == "")
    if empty_path.size:
        raise ReIDError(f"{path}, line {line_of(int(empty_path[0]))}: empty path cell")
    paths = np.asarray(
        [os.path.normpath(os.path.join(folder, p)) for p in rel.tolist()], dtype=np.str_
    )
    raise_on_duplicates(
        paths, np.char.add("line ", (np.arange(len(rows)) + 2).astype(np.str_)), path
    )
    missing_files = [i for i, p in enumerate(paths.tolist()) if not os.path.isfile(p)]
    if missing_files:
        raise ReIDError(
            f"{path}: {len(missing_files)} listed image(s) do not exist, e.g. "
            f"{', '.join(repr(str(rel[i])) for i in missing_files[:SHOWN])} (line "
            f"{line_of(missing_files[0])}; paths are relative to {folder})"
        )
    return Records(
        paths=paths,
        pids=pids,
        cams=cams,
        times=times,
        splits=splits.astype(np.str_),
        camera_names=camera_names,
        root=folder,
    )


def write_manifest(records: Records, csv_path: str | os.PathLike) -> Path:
    """Write records as a CSV manifest (``path,pid,camera,time,split``) that :func:`read_manifest`
    reads back into the same records.

    Paths inside the manifest's folder are written relative to it (move the folder, the manifest
    still works); others stay absolute. Named cameras are written by name (read back, names get ids
    1..C in sorted order, as every reader numbers them), times exactly (``repr``), missing times as
    empty cells. The file is UTF-8, written atomically; an image path that is not valid UTF-8 text
    (a file name in another encoding) is refused, naming it.

    Args:
        records: the records to write.
        csv_path: destination ``.csv`` file; its folder is created if needed.

    Returns:
        The path written.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> records = Records.from_columns([f"{tmp.name}/a.jpg"], [5], [2], [7.5], ["query"])
        >>> print(write_manifest(records, Path(tmp.name) / "m.csv").read_text(), end="")
        path,pid,camera,time,split
        a.jpg,5,2,7.5,query
        >>> tmp.cleanup()
    """
    out = Path(csv_path).expanduser()
    if out.is_dir():
        raise ReIDError(f"{out}: is a folder, expected the path of a .csv file")
    folder = out.resolve().parent
    folder_text = str(folder) + os.sep
    path_cells = [
        Path(p[len(folder_text) :]).as_posix() if p.startswith(folder_text) else p
        for p in (os.path.abspath(p) for p in records.paths.tolist())
    ]
    for image in records.paths.tolist():
        try:
            image.encode("utf-8")
        except UnicodeEncodeError:
            raise ReIDError(
                f"{os.fsencode(image)!r}: file name is not UTF-8 text, which a manifest is; "
                "rename the file (e.g. with convmv) and export again"
            ) from None
    camera_cells = [records.camera_names.get(c, str(c)) for c in records.cams.tolist()]
    time_cells = ["" if math.isnan(t) else repr(t) for t in records.times.tolist()]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    writer.writerows(
        zip(
            path_cells,
            records.pids.tolist(),
            camera_cells,
            time_cells,
            records.splits.tolist(),
            strict=True,
        )
    )
    with atomic_path(out) as tmp:
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
    log.info("wrote %s: %d rows", out, len(records))
    return out


@register_layout("manifest")
class Manifest(Layout):
    """A CSV manifest file, or a folder holding ``manifest.csv`` (or exactly one ``.csv`` file);
    see :func:`read_manifest`."""

    detect_order = 90

    looks_like = "manifest.csv"

    def detect(self, path: Path) -> bool:
        if path.is_file():
            return path.suffix.lower() == ".csv"
        return find_manifest(path) is not None

    def read(self, path: Path, **options) -> Records:
        if path.is_dir():
            manifest = find_manifest(path)
            if manifest is None:
                raise ReIDError(
                    f"{path}: no {MANIFEST_NAME} (or other single .csv) in this folder; "
                    "pass the manifest file"
                )
            path = manifest
        return read_manifest(path)

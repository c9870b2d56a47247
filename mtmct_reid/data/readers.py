"""Dataset readers: turn a dataset on disk into :class:`~mtmct_reid.data.records.Records`.

One entry point, :func:`read_dataset`, reads any supported layout (detected from the folder, or named):

* ``market1501``: ``bounding_box_train`` / ``query`` / ``bounding_box_test``, names
  ``0002_c1s1_000451_03.jpg`` (id, camera, session, frame in session, box). Times are global frames per
  camera (:func:`~mtmct_reid.data.market_time.market_global_time`).
* ``dukemtmc``: the same folders, names ``0005_c2_f0046985.jpg`` (id, camera, global frame).
* ``msmt17``: ``train/`` and ``test/`` with ``list_train.txt`` (+ optional ``list_val.txt``),
  ``list_query.txt``, ``list_gallery.txt``.
* ``regex``: any names, parsed by a user pattern with named groups ``pid``, ``cam`` and optional ``time``.
* ``manifest``: a CSV file ``path,pid,camera,time,split``.

Only file names are read, never pixels, and the name parsers work on whole columns: one compiled
regular expression over all the names of a folder, then numpy conversions, so reading the 20k names of
Market-1501's test set takes milliseconds.

Person ids follow the house convention: ``-1`` junk and ``0`` distractor (never a true match), real
people ``> 0``. A user's regex or manifest must follow it too.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from mtmct_reid._io import atomic_path
from mtmct_reid.data.market_time import MARKET_SESSION_FRAMES, market_global_time
from mtmct_reid.data.records import DISTRACTOR_PID, JUNK_PID, SPLITS, Records
from mtmct_reid.errors import ReIDError

log = logging.getLogger(__name__)

#: Layout names accepted by :func:`read_dataset`.
LAYOUTS = ("market1501", "dukemtmc", "msmt17", "regex", "manifest")

#: File extensions read as images (compared lower-case); anything else is skipped with a warning.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")

#: Split folders of the Market-1501 and DukeMTMC-reID layouts.
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}

#: Split folders a regex dataset may use (either spelling, not both).
REGEX_FOLDERS = {
    "train": ("train", "bounding_box_train"),
    "query": ("query",),
    "gallery": ("gallery", "bounding_box_test"),
}

#: MSMT17 list files per split, in reading order; ``list_val.txt`` is optional and part of train.
MSMT17_LISTS = (
    ("train", "list_train.txt", True),
    ("train", "list_val.txt", False),
    ("query", "list_query.txt", True),
    ("gallery", "list_gallery.txt", True),
)
#: MSMT17 image folders per split: V1 names them ``train``/``test``, V2 ``mask_train_v2``/``mask_test_v2``.
MSMT17_IMAGE_FOLDERS = {
    "train": ("train", "mask_train_v2"),
    "query": ("test", "mask_test_v2"),
    "gallery": ("test", "mask_test_v2"),
}
#: Order of MSMT17's three capture slots within a day.
MSMT17_SLOTS = ("morning", "noon", "afternoon")
#: Frames reserved per (day, slot) on MSMT17's coarse clock; a frame must be below it.
MSMT17_SLOT_FRAMES = 100_000

#: Manifest columns: required, then optional.
MANIFEST_REQUIRED = ("path", "pid", "camera")
MANIFEST_COLUMNS = ("path", "pid", "camera", "time", "split")
#: Default manifest file name looked for inside a folder.
MANIFEST_NAME = "manifest.csv"

_MARKET_EXAMPLE = "0002_c1s1_000451_03.jpg"
_DUKE_EXAMPLE = "0005_c2_f0046985.jpg"
_MSMT17_EXAMPLE = "0000_000_01_0303morning_0015_0.jpg"

# Multi-line patterns: run once with findall over all the names of a folder joined by newlines.
_MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)s(\d+)_(\d+)_\d+\.[^.\n]+$", re.MULTILINE | re.ASCII)
_DUKE_NAME = re.compile(r"^(-?\d+)_c(\d+)_f(\d+)\.[^.\n]+$", re.MULTILINE | re.ASCII)
_MSMT17_NAME = re.compile(
    r"^\d+_\d+_(\d{2})_(\d{4})(morning|noon|afternoon)_(\d+)_\d+\.[^.\n]+$",
    re.MULTILINE | re.ASCII,
)

_SHOWN = 3  # offending names quoted in an error message


# --------------------------------------------------------------------------------------------------
# Listing files


def _is_image_name(name: str) -> bool:
    # Dot files with an image extension are macOS resource forks (._0002_c1s1...jpg), not images.
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


class _Skipped:
    """Collects the non-image files met while listing, so one warning covers the whole dataset."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, names: Iterable[str]) -> None:
        self.names.extend(names)

    def warn(self, where: Path) -> None:
        if not self.names:
            return
        shown = ", ".join(sorted(set(self.names))[:5])
        more = ", ..." if len(set(self.names)) > 5 else ""
        log.warning(
            "%s: skipped %d file(s) that are not images (expected %s): %s%s",
            where,
            len(self.names),
            " ".join(IMAGE_EXTENSIONS),
            shown,
            more,
        )


def list_images(
    folder: str | os.PathLike, skipped: _Skipped | None = None, recursive: bool = False
) -> list[str]:
    """Sorted image file paths under ``folder``, relative to it (posix separators).

    Images are files with an extension of :data:`IMAGE_EXTENSIONS`, except dot files (macOS resource
    forks such as ``._0002_c1s1_000451_03.jpg``); hidden folders are not entered.

    Args:
        folder: the folder to list.
        skipped: collects the names of the other files (for one warning); None ignores them.
        recursive: list sub-folders too.

    Example:
        >>> list_images("Market-1501/query")[:1]  # doctest: +SKIP
        ['0001_c1s1_001051_00.jpg']
    """
    folder = Path(folder)
    found: list[str] = []
    others: list[str] = []
    if recursive:
        for dirpath, dirnames, filenames in os.walk(folder):
            # Hidden folders hold tool state (.ipynb_checkpoints, .thumbnails), not dataset images.
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = Path(dirpath).relative_to(folder).as_posix()
            prefix = "" if rel == "." else rel + "/"
            for name in filenames:
                (found if _is_image_name(name) else others).append(prefix + name)
    else:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_file():
                    (found if _is_image_name(entry.name) else others).append(entry.name)
    if skipped is not None:
        skipped.add(others)
    found.sort()
    return found


def _require_images(folder: Path, names: Sequence[str], expected: str) -> None:
    if not names:
        raise ReIDError(
            f"{folder}: no images in this split folder (expected names like {expected})"
        )


# --------------------------------------------------------------------------------------------------
# Vectorised name parsing


def _match_all(names: Sequence[str], pattern: re.Pattern[str]) -> np.ndarray | None:
    """[N, groups] array of strings when every name matches ``pattern`` (one ``findall`` over the
    joined names), else None."""
    if any("\n" in n for n in names):
        return None
    rows = pattern.findall("\n".join(names))
    if len(rows) != len(names):
        return None
    if not rows:
        return np.empty((0, pattern.groups), dtype=np.str_)
    return np.asarray(rows, dtype=np.str_).reshape(len(names), pattern.groups)


def _parse_names(
    names: Sequence[str], pattern: re.Pattern[str], folder: Path, expected: str, layout: str
) -> np.ndarray:
    """Parse every name with one ``findall`` over the joined names; [N, groups] array of strings."""
    names = list(names)
    table = _match_all(names, pattern)
    if table is None:
        single = re.compile(pattern.pattern, pattern.flags & ~re.MULTILINE)
        bad = [n for n in names if "\n" in n or not single.fullmatch(n)]
        raise ReIDError(
            f"{folder}: {len(bad)} of {len(names)} file names do not follow the {layout} naming "
            f"(expected names like {expected}), e.g. {', '.join(repr(b) for b in bad[:_SHOWN])}"
        )
    return table


def _absolute(folder: Path, names: Sequence[str]) -> np.ndarray:
    prefix = str(folder) + os.sep
    return np.char.add(prefix, np.asarray(names, dtype=np.str_)) if names else np.empty(0, np.str_)


def _check_root(root: str | os.PathLike) -> Path:
    path = Path(root).expanduser()
    if not path.exists():
        raise ReIDError(
            f"{path}: no such file or folder (expected a dataset folder or CSV manifest)"
        )
    return path.resolve()


def _require_folder(root: Path, name: str, layout: str, all_names: Iterable[str]) -> Path:
    folder = root / name
    if not folder.is_dir():
        raise ReIDError(
            f"{root}: missing folder '{name}' ({layout} layout needs {', '.join(all_names)})"
        )
    return folder


# --------------------------------------------------------------------------------------------------
# Market-1501 and DukeMTMC-reID


def _market_times(
    cams: np.ndarray,
    sessions: np.ndarray,
    frames: np.ndarray,
    names: Sequence[str],
    folder: Path | None = None,
) -> np.ndarray:
    unique_cams, inverse = np.unique(cams, return_inverse=True)
    last_session = np.array(
        [max(len(MARKET_SESSION_FRAMES.get(int(c), ())), 1) for c in unique_cams], dtype=np.int64
    )
    bad = np.flatnonzero((sessions < 1) | (sessions > last_session[inverse]))
    if bad.size:
        first = int(bad[0])
        cam = int(cams[first])
        where = "" if folder is None else f"{folder}: "
        raise ReIDError(
            f"{where}{bad.size} name(s) have a session outside the Market-1501 session table, "
            f"e.g. '{names[first]}' (camera {cam} has sessions 1..{int(last_session[inverse[first]])}"
            f"{'; cameras beyond c6 have session 1 only' if cam not in MARKET_SESSION_FRAMES else ''})"
        )
    return market_global_time(cams, sessions, frames)


def _read_market_like(root: str | os.PathLike, layout: str) -> Records:
    root_path = _check_root(root)
    skipped = _Skipped()
    parts = []
    for split, folder_name in MARKET_FOLDERS.items():
        folder = _require_folder(root_path, folder_name, layout, MARKET_FOLDERS.values())
        names = list_images(folder, skipped)
        if layout == "market1501":
            _require_images(folder, names, _MARKET_EXAMPLE)
            table = _parse_names(names, _MARKET_NAME, folder, _MARKET_EXAMPLE, "Market-1501")
            cams = table[:, 1].astype(np.int64)
            times = _market_times(
                cams, table[:, 2].astype(np.int64), table[:, 3].astype(np.int64), names, folder
            )
        else:
            _require_images(folder, names, _DUKE_EXAMPLE)
            table = _parse_names(names, _DUKE_NAME, folder, _DUKE_EXAMPLE, "DukeMTMC-reID")
            cams = table[:, 1].astype(np.int64)
            times = table[:, 2].astype(np.float64)
        parts.append(
            Records(
                paths=_absolute(folder, names),
                pids=table[:, 0].astype(np.int64),
                cams=cams,
                times=times,
                splits=np.repeat(np.asarray([split]), len(names)),
                root=root_path,
            )
        )
    skipped.warn(root_path)
    return Records.concat(parts)


def read_market1501(root: str | os.PathLike) -> Records:
    """Read a dataset in the Market-1501 layout.

    Folders ``bounding_box_train`` (train), ``query`` and ``bounding_box_test`` (gallery), all three
    required; names ``0002_c1s1_000451_03.jpg``: person id (``-1`` junk and ``0000`` distractor are
    kept), camera, session, frame within the session, box index. The time of an image is its global
    frame in its camera: the frame plus the lengths of that camera's earlier sessions. Cameras beyond
    the session table (a network of your own named the Market way, ``c7``, ``c12``) have one session,
    so their frame is their time.

    Args:
        root: the dataset folder (e.g. ``Market-1501-v15.09.15``).

    Returns:
        Records with absolute paths, in the order train, query, gallery (names sorted in each).

    Example:
        >>> records = read_market1501("Market-1501-v15.09.15")  # doctest: +SKIP
        >>> len(records.split("query"))  # doctest: +SKIP
        3368
    """
    return _read_market_like(root, "market1501")


def read_dukemtmc(root: str | os.PathLike) -> Records:
    """Read a dataset in the DukeMTMC-reID layout.

    Same folders as Market-1501; names ``0005_c2_f0046985.jpg``: person id, camera, frame. Duke's
    frames are already global per camera (60 fps in the source videos), so the frame is the time.

    Args:
        root: the dataset folder (e.g. ``DukeMTMC-reID``).

    Returns:
        Records with absolute paths, in the order train, query, gallery.

    Example:
        >>> records = read_dukemtmc("DukeMTMC-reID")  # doctest: +SKIP
        >>> records.camera_ids.tolist()  # doctest: +SKIP
        [1, 2, 3, 4, 5, 6, 7, 8]
    """
    return _read_market_like(root, "dukemtmc")


def parse_image_names(
    names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Person ids, cameras and times from Market-1501 or DukeMTMC-reID file names.

    The same naming rules and Market-1501 clock as :func:`read_market1501` and :func:`read_dukemtmc`.

    Args:
        names: file names (or paths; only the last component is read).

    Returns:
        ``(pids, cams, times)`` (int64, int64, float64) when every name follows one of the two
        namings, else None.

    Raises:
        ReIDError: Market-1501 names with a session outside the session table.

    Example:
        >>> pids, cams, times = parse_image_names(["0002_c2s3_000100_01.jpg"])
        >>> int(pids[0]), int(cams[0]), float(times[0])
        (2, 2, 328468.0)
    """
    names = [Path(str(name)).name for name in names]
    if not names:
        return None
    table = _match_all(names, _MARKET_NAME)
    if table is not None:
        cams = table[:, 1].astype(np.int64)
        times = _market_times(
            cams, table[:, 2].astype(np.int64), table[:, 3].astype(np.int64), names
        )
        return table[:, 0].astype(np.int64), cams, times
    table = _match_all(names, _DUKE_NAME)
    if table is not None:
        return (
            table[:, 0].astype(np.int64),
            table[:, 1].astype(np.int64),
            table[:, 2].astype(np.float64),
        )
    return None


# --------------------------------------------------------------------------------------------------
# MSMT17


def _read_list_file(path: Path) -> tuple[list[str], np.ndarray]:
    rel_paths: list[str] = []
    pids: list[int] = []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 2:
                raise ReIDError(
                    f"{path}, line {line_no}: expected 'relative/path.jpg pid', got {line.strip()!r}"
                )
            try:
                pids.append(int(fields[1]))
            except ValueError:
                raise ReIDError(
                    f"{path}, line {line_no}: person id {fields[1]!r} is not an integer"
                ) from None
            rel_paths.append(fields[0].replace("\\", "/"))
    if not rel_paths:
        raise ReIDError(f"{path}: empty list file (expected lines 'relative/path.jpg pid')")
    return rel_paths, np.asarray(pids, dtype=np.int64)


def _msmt17_image_folder(root: Path, split: str) -> Path:
    for name in MSMT17_IMAGE_FOLDERS[split]:
        if (root / name).is_dir():
            return root / name
    raise ReIDError(
        f"{root}: missing image folder '{MSMT17_IMAGE_FOLDERS[split][0]}' "
        f"(msmt17 layout needs train/ and test/ beside the list files)"
    )


def read_msmt17(root: str | os.PathLike) -> Records:
    """Read MSMT17 (V1 ``train``/``test`` or V2 ``mask_train_v2``/``mask_test_v2``) from its list files.

    ``list_train.txt`` (and ``list_val.txt`` when present, also training data) index ``train/``;
    ``list_query.txt`` and ``list_gallery.txt`` index ``test/``; each line is ``relative/path pid``.
    Names ``0000_000_01_0303morning_0015_0.jpg``: id, index, camera (always two digits), date
    (``MMDD``) and time of day (morning, noon, afternoon), frame.

    MSMT17 numbers people from 0, which this toolkit reserves for distractors, so the list file's id
    plus one is the person id here (train and test ids stay separate number ranges, as in the lists).

    MSMT17's clock is coarse: it only says which day and which third of the day a frame was taken in.
    The time here is ``(day index * 3 + slot) * MSMT17_SLOT_FRAMES + frame``, days numbered in date
    order over the whole dataset: monotone within one camera and slot, but frames of different cameras
    are not synchronised, so transit times learned from it are rough.

    Args:
        root: the dataset folder (e.g. ``MSMT17_V1``).

    Returns:
        Records with absolute paths, in the order train (+ val), query, gallery.

    Example:
        >>> records = read_msmt17("MSMT17_V1")  # doctest: +SKIP
        >>> int(records.cams.max())  # doctest: +SKIP
        15
    """
    root_path = _check_root(root)
    paths: list[np.ndarray] = []
    pids: list[np.ndarray] = []
    tables: list[np.ndarray] = []
    splits: list[np.ndarray] = []
    sources: list[str] = []
    listed: dict[Path, set[str]] = {}
    skipped = _Skipped()
    for split, list_name, required in MSMT17_LISTS:
        list_path = root_path / list_name
        if not list_path.is_file():
            if required:
                raise ReIDError(
                    f"{root_path}: missing list file '{list_name}' (msmt17 layout needs "
                    f"{', '.join(name for _, name, req in MSMT17_LISTS if req)})"
                )
            continue
        folder = _msmt17_image_folder(root_path, split)
        if folder not in listed:
            listed[folder] = set(list_images(folder, skipped, recursive=True))
        rel_paths, list_pids = _read_list_file(list_path)
        missing = [p for p in rel_paths if p not in listed[folder]]
        if missing:
            raise ReIDError(
                f"{list_path}: {len(missing)} listed image(s) not found under {folder}, "
                f"e.g. {', '.join(repr(m) for m in missing[:_SHOWN])}"
            )
        names = [p.rsplit("/", 1)[-1] for p in rel_paths]
        tables.append(_parse_names(names, _MSMT17_NAME, list_path, _MSMT17_EXAMPLE, "MSMT17"))
        paths.append(_absolute(folder, rel_paths))
        pids.append(list_pids + 1)
        splits.append(np.repeat(np.asarray([split]), len(rel_paths)))
        sources.extend([list_name] * len(rel_paths))
    skipped.warn(root_path)

    all_paths = np.concatenate(paths)
    _raise_on_duplicates(all_paths, np.asarray(sources), root_path)
    table = np.concatenate(tables)
    frames = table[:, 3].astype(np.int64)
    too_late = np.flatnonzero(frames >= MSMT17_SLOT_FRAMES)
    if too_late.size:
        raise ReIDError(
            f"{root_path}: frame {int(frames[too_late[0]])} of {all_paths[too_late[0]]} is beyond "
            f"the {MSMT17_SLOT_FRAMES} frames the coarse MSMT17 clock keeps per time slot"
        )
    _, day_index = np.unique(table[:, 1], return_inverse=True)
    slot_names = table[:, 2]
    slot = np.select(
        [slot_names == name for name in MSMT17_SLOTS], np.arange(len(MSMT17_SLOTS)), default=0
    )
    times = (day_index.reshape(-1) * len(MSMT17_SLOTS) + slot) * MSMT17_SLOT_FRAMES + frames
    return Records(
        paths=all_paths,
        pids=np.concatenate(pids),
        cams=table[:, 0].astype(np.int64),
        times=times.astype(np.float64),
        splits=np.concatenate(splits),
        root=root_path,
    )


# --------------------------------------------------------------------------------------------------
# Custom datasets: regex over names, CSV manifest


def _camera_ids(labels: np.ndarray) -> tuple[np.ndarray, dict[int, str]]:
    """Integer camera labels are ids; otherwise sorted names become ids 1..C and the map is kept."""
    labels = np.char.strip(labels.astype(np.str_))
    try:
        ids = labels.astype(np.int64)
    except ValueError:
        names, inverse = np.unique(labels, return_inverse=True)
        return inverse.reshape(-1).astype(np.int64) + 1, {
            i + 1: str(n) for i, n in enumerate(names)
        }
    return ids, {}


def _to_float(values: np.ndarray) -> np.ndarray:
    """Column of numeric strings to float64, empty cells to NaN; raises ValueError on the first bad."""
    values = np.char.strip(values.astype(np.str_))
    out = np.full(len(values), np.nan, dtype=np.float64)
    filled = values != ""
    out[filled] = values[filled].astype(np.float64)
    return out


def _first_bad(values: np.ndarray, parse) -> int:
    for i, value in enumerate(values):
        try:
            parse(value)
        except ValueError:
            return i
    return -1


def _raise_on_duplicates(paths: np.ndarray, where: np.ndarray, origin: Path) -> None:
    unique, counts = np.unique(paths, return_counts=True)
    if (counts > 1).any():
        dup = unique[counts > 1]
        again = np.flatnonzero(paths == dup[0])
        raise ReIDError(
            f"{origin}: {dup.size} image path(s) listed more than once, e.g. {dup[0]} "
            f"({', '.join(str(w) for w in where[again][:2])})"
        )


def _compile_pattern(pattern: str | None) -> re.Pattern[str]:
    if not pattern:
        raise ReIDError(
            "--pattern: the regex layout needs a pattern with named groups pid and cam "
            r"(and optionally time), e.g. '(?P<pid>-?\d+)_c(?P<cam>\d+)_(?P<time>\d+)'"
        )
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ReIDError(f"--pattern {pattern!r}: not a valid regular expression ({exc})") from None
    missing = [g for g in ("pid", "cam") if g not in compiled.groupindex]
    if missing:
        raise ReIDError(
            f"--pattern {pattern!r}: missing named group(s) {', '.join(missing)} "
            r"(write them as (?P<pid>...) and (?P<cam>...); (?P<time>...) is optional)"
        )
    return compiled


def read_regex(root: str | os.PathLike, pattern: str) -> Records:
    """Read a dataset of your own whose file names carry person id, camera and (optionally) time.

    Split folders under ``root``: ``train`` (or ``bounding_box_train``), ``query``, ``gallery`` (or
    ``bounding_box_test``); at least one must exist, each one that exists must hold images, searched
    recursively. ``pattern`` is searched in each file NAME (not its folder; anchor with ``^``/``$`` if
    needed) and must have named groups ``pid`` (an integer: ``-1`` junk, ``0`` distractor, ``> 0`` a
    person) and ``cam``; a ``time`` group (a number, any unit shared by all cameras) is optional:
    without it times are NaN and spatial-temporal fusion is unavailable. Integer cameras keep their
    numbers; if any camera label is not an integer, the sorted labels become ids 1..C and
    ``Records.camera_names`` maps them back.

    Args:
        root: the dataset folder.
        pattern: a Python regular expression with named groups.

    Returns:
        Records with absolute paths, in the order train, query, gallery.

    Example:
        >>> records = read_regex("mall", r"^(?P<pid>\\d+)_(?P<cam>[a-z]+)_(?P<time>\\d+)\\.jpg$")  # doctest: +SKIP
        >>> records.camera_names  # doctest: +SKIP
        {1: 'entrance', 2: 'lobby'}
    """
    compiled = _compile_pattern(pattern)
    root_path = _check_root(root)
    if not root_path.is_dir():
        raise ReIDError(f"{root_path}: the regex layout needs a folder with split folders")
    skipped = _Skipped()
    folders: list[tuple[str, Path]] = []
    for split, candidates in REGEX_FOLDERS.items():
        present = [root_path / c for c in candidates if (root_path / c).is_dir()]
        if len(present) > 1:
            raise ReIDError(
                f"{root_path}: both '{present[0].name}' and '{present[1].name}' exist for the "
                f"{split} split; keep one"
            )
        folders.extend((split, p) for p in present)
    if not folders:
        raise ReIDError(
            f"{root_path}: no split folder found (regex layout expects train or bounding_box_train, "
            "query, gallery or bounding_box_test)"
        )
    has_time = "time" in compiled.groupindex
    paths, splits, pid_text, cam_text, time_text = [], [], [], [], []
    bad: list[str] = []
    total = 0
    for split, folder in folders:
        rel_paths = list_images(folder, skipped, recursive=True)
        _require_images(folder, rel_paths, f"a match of --pattern {pattern!r}")
        total += len(rel_paths)
        for rel in rel_paths:
            match = compiled.search(rel.rsplit("/", 1)[-1])
            if match is None or match.group("pid") is None or match.group("cam") is None:
                bad.append(rel)
                continue
            paths.append(str(folder / rel))
            splits.append(split)
            pid_text.append(match.group("pid"))
            cam_text.append(match.group("cam"))
            time_text.append((match.group("time") or "") if has_time else "")
    skipped.warn(root_path)
    if bad:
        raise ReIDError(
            f"{root_path}: {len(bad)} of {total} file names do not match --pattern {pattern!r}, "
            f"e.g. {', '.join(repr(b) for b in bad[:_SHOWN])}"
        )
    pid_column = np.asarray(pid_text, dtype=np.str_)
    try:
        pids = pid_column.astype(np.int64)
    except ValueError:
        i = _first_bad(pid_column, int)
        raise ReIDError(
            f"{paths[i]}: the pid group matched {pid_text[i]!r}, expected an integer person id"
        ) from None
    time_column = np.asarray(time_text, dtype=np.str_)
    try:
        times = _to_float(time_column)
    except ValueError:
        i = _first_bad(time_column, lambda v: v.strip() == "" or float(v))
        raise ReIDError(
            f"{paths[i]}: the time group matched {time_text[i]!r}, expected a number"
        ) from None
    cams, camera_names = _camera_ids(np.asarray(cam_text, dtype=np.str_))
    return Records(
        paths=np.asarray(paths, dtype=np.str_),
        pids=pids,
        cams=cams,
        times=times,
        splits=np.asarray(splits, dtype=np.str_),
        camera_names=camera_names,
        root=root_path,
    )


def read_manifest(csv_path: str | os.PathLike) -> Records:
    """Read a CSV manifest with header ``path,pid,camera,time,split``.

    * ``path``: image path, relative to the manifest's folder (absolute paths are kept as they are).
    * ``pid``: integer person id (``-1`` junk, ``0`` distractor, ``> 0`` a person).
    * ``camera``: integer camera id, or a camera name; if any cell is not an integer, the sorted names
      become ids 1..C and ``Records.camera_names`` maps them back.
    * ``time`` (optional column; empty cells allowed): a number in any unit shared by all cameras;
      missing times are NaN (visual-only evaluation still works, spatial-temporal fusion does not).
    * ``split`` (optional column): ``train``, ``query`` or ``gallery``. A manifest without this column
      is a training set: every row is read as ``train`` (e.g. to fit transit times on your network).

    Columns may come in any order; other columns are ignored. Every listed image must exist.

    Args:
        csv_path: the manifest file.

    Returns:
        Records in the manifest's row order, with absolute paths; ``root`` is the manifest's folder.

    Example:
        >>> records = read_manifest("my_cameras/manifest.csv")  # doctest: +SKIP
        >>> records.camera_label(1)  # doctest: +SKIP
        'entrance'
    """
    path = _check_root(csv_path)
    if path.is_dir():
        raise ReIDError(f"{path}: is a folder, expected a CSV manifest file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ReIDError(f"{path}: not a UTF-8 text file ({exc.reason})") from None
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if header is None:
        raise ReIDError(f"{path}: empty file (expected header {','.join(MANIFEST_COLUMNS)})")
    header = [h.strip().lower() for h in header]
    missing = [c for c in MANIFEST_REQUIRED if c not in header]
    if missing:
        raise ReIDError(
            f"{path}: missing column(s) {', '.join(missing)} (header is {','.join(header)}; "
            f"expected {','.join(MANIFEST_COLUMNS)}, time and split optional)"
        )
    rows = [r for r in reader if any(cell.strip() for cell in r)]
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
    except ValueError:
        i = _first_bad(pid_column, int)
        raise ReIDError(
            f"{path}, line {line_of(i)}: pid {str(pid_column[i])!r} is not an integer"
        ) from None
    if "time" in columns:
        try:
            times = _to_float(columns["time"])
        except ValueError:
            i = _first_bad(columns["time"], lambda v: v.strip() == "" or float(v))
            raise ReIDError(
                f"{path}, line {line_of(i)}: time {str(columns['time'][i])!r} is not a number"
            ) from None
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
    cams, camera_names = _camera_ids(cam_column)

    folder = path.parent
    rel = np.char.strip(columns["path"])
    empty_path = np.flatnonzero(rel == "")
    if empty_path.size:
        raise ReIDError(f"{path}, line {line_of(int(empty_path[0]))}: empty path cell")
    paths = np.asarray(
        [os.path.normpath(os.path.join(folder, p)) for p in rel.tolist()], dtype=np.str_
    )
    _raise_on_duplicates(
        paths, np.char.add("line ", (np.arange(len(rows)) + 2).astype(np.str_)), path
    )
    missing_files = [i for i, p in enumerate(paths.tolist()) if not os.path.isfile(p)]
    if missing_files:
        raise ReIDError(
            f"{path}: {len(missing_files)} listed image(s) do not exist, e.g. "
            f"{', '.join(repr(str(rel[i])) for i in missing_files[:_SHOWN])} (line "
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

    Paths inside the manifest's folder are written relative to it (move the folder, the manifest still
    works); others stay absolute. Named cameras are written by name (read back, names get ids 1..C in
    sorted order, as every reader numbers them), times exactly (``repr``), missing times as empty
    cells. The file is written atomically.

    Args:
        records: the records to write.
        csv_path: destination ``.csv`` file; its folder is created if needed.

    Returns:
        The path written.

    Example:
        >>> write_manifest(read_dataset("Market-1501-v15.09.15"), "market.csv")  # doctest: +SKIP
        PosixPath('market.csv')
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


# --------------------------------------------------------------------------------------------------
# Detection and the entry point


def _sample_names(folder: Path, limit: int = 200) -> list[str]:
    names: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_file() and _is_image_name(entry.name):
                names.append(entry.name)
                if len(names) >= limit:
                    break
    return names


def _market_or_duke(root: Path) -> str | None:
    """``market1501`` / ``dukemtmc`` when the Market-style folders exist, judged by the file names."""
    folders = [root / f for f in MARKET_FOLDERS.values() if (root / f).is_dir()]
    if not any(f.name.startswith("bounding_box") for f in folders):
        return None
    names = [n for f in folders for n in _sample_names(f)]
    market = len(_MARKET_NAME.findall("\n".join(names)))
    duke = len(_DUKE_NAME.findall("\n".join(names)))
    if market == 0 and duke == 0:
        example = f" (e.g. {names[0]!r})" if names else ""
        raise ReIDError(
            f"{root}: has Market-style folders but its file names{example} follow neither "
            f"Market-1501 ({_MARKET_EXAMPLE}) nor DukeMTMC-reID ({_DUKE_EXAMPLE}) naming; "
            "read it with --layout regex --pattern '...' (named groups pid, cam, time)"
        )
    return "market1501" if market >= duke else "dukemtmc"


def _is_msmt17(root: Path) -> bool:
    has_lists = any((root / name).is_file() for _, name, _ in MSMT17_LISTS)
    has_folders = any((root / f).is_dir() for names in MSMT17_IMAGE_FOLDERS.values() for f in names)
    return has_lists and has_folders


def _find_manifest(root: Path) -> Path | None:
    if (root / MANIFEST_NAME).is_file():
        return root / MANIFEST_NAME
    csvs = sorted(p for p in root.glob("*.csv") if p.is_file())
    if len(csvs) > 1:
        raise ReIDError(
            f"{root}: holds {len(csvs)} CSV files ({', '.join(p.name for p in csvs[:4])}); "
            f"pass the manifest file itself or name it {MANIFEST_NAME}"
        )
    return csvs[0] if csvs else None


def _looks_like_dataset(folder: Path) -> bool:
    return any((folder / f).is_dir() for f in ("bounding_box_train", "bounding_box_test")) or (
        _is_msmt17(folder)
    )


def detect_layout(root: str | os.PathLike) -> str:
    """Name the layout of a dataset folder (or ``manifest`` for a ``.csv`` file).

    Checks in order: a ``.csv`` file; MSMT17 (list files beside ``train``/``test``); Market-1501 or
    DukeMTMC-reID (``bounding_box_*`` folders, told apart by the file names); a folder holding
    ``manifest.csv`` or exactly one ``.csv`` file.

    Args:
        root: the dataset folder or manifest file.

    Returns:
        One of :data:`LAYOUTS` except ``regex`` (a pattern is never guessed).

    Example:
        >>> detect_layout("DukeMTMC-reID")  # doctest: +SKIP
        'dukemtmc'
    """
    path = _check_root(root)
    if path.is_file():
        if path.suffix.lower() == ".csv":
            return "manifest"
        raise ReIDError(f"{path}: is a file but not a .csv manifest (expected a dataset folder)")
    if _is_msmt17(path):
        return "msmt17"
    market_like = _market_or_duke(path)
    if market_like is not None:
        return market_like
    if _find_manifest(path) is not None:
        return "manifest"
    hint = ""
    inside = sorted(p for p in path.iterdir() if p.is_dir() and _looks_like_dataset(p))
    if len(inside) == 1:
        hint = f"; did you mean {inside[0]}?"
    raise ReIDError(
        f"{path}: no known dataset layout (tried market1501/dukemtmc: bounding_box_train, query, "
        "bounding_box_test; msmt17: train/, test/ and list_*.txt; manifest: manifest.csv); "
        f"for other names pass --layout regex --pattern '...'{hint}"
    )


def read_dataset(
    root: str | os.PathLike, layout: str | None = None, pattern: str | None = None
) -> Records:
    """Read a dataset of any supported layout into :class:`~mtmct_reid.data.records.Records`.

    Args:
        root: the dataset folder, or a CSV manifest file.
        layout: one of :data:`LAYOUTS`; ``None`` detects it (:func:`detect_layout`), or means
            ``regex`` when a ``pattern`` is given.
        pattern: the regex over file names for the ``regex`` layout (named groups ``pid``, ``cam`` and
            optionally ``time``).

    Returns:
        Records with absolute paths and ``root`` set. Only names are read, never pixels.

    Example:
        >>> records = read_dataset("Market-1501-v15.09.15")  # doctest: +SKIP
        >>> [len(records.split(s)) for s in ("train", "query", "gallery")]  # doctest: +SKIP
        [12936, 3368, 19732]
    """
    if layout is not None and layout not in LAYOUTS:
        raise ReIDError(f"--layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if pattern is not None and layout not in (None, "regex"):
        raise ReIDError(f"--pattern is only used with --layout regex, not --layout {layout}")
    if layout is None:
        layout = "regex" if pattern is not None else detect_layout(root)
    if layout == "market1501":
        records = read_market1501(root)
    elif layout == "dukemtmc":
        records = read_dukemtmc(root)
    elif layout == "msmt17":
        records = read_msmt17(root)
    elif layout == "regex":
        records = read_regex(root, pattern)  # type: ignore[arg-type]
    else:
        path = _check_root(root)
        if path.is_dir():
            manifest = _find_manifest(path)
            if manifest is None:
                raise ReIDError(
                    f"{path}: no {MANIFEST_NAME} (or other single .csv) in this folder; "
                    "pass the manifest file"
                )
            path = manifest
        records = read_manifest(path)
    counts = ", ".join(f"{s} {int(np.sum(records.splits == s))}" for s in SPLITS)
    log.info("read %d images (%s) from %s as %s", len(records), counts, root, layout)
    return records


# --------------------------------------------------------------------------------------------------
# Summary and sanity checks


def queries_without_cross_camera_match(records: Records) -> np.ndarray:
    """Queries that evaluation will skip: a real person (id > 0) never seen by another gallery camera.

    Evaluation drops gallery images of the query's own camera, so such a query has nothing left to
    find; on a custom dataset this is the usual reason for "no valid query".

    Args:
        records: a dataset with ``query`` and ``gallery`` rows.

    Returns:
        Row indices into ``records`` (int64, ascending) of those queries.

    Example:
        >>> r = Records.from_columns(["q", "g"], [1, 1], [1, 1], None, ["query", "gallery"])
        >>> queries_without_cross_camera_match(r).tolist()
        [0]
    """
    query_rows = np.flatnonzero((records.splits == "query") & (records.pids > 0))
    gallery_rows = np.flatnonzero(records.splits == "gallery")
    if query_rows.size == 0:
        return query_rows.astype(np.int64)
    # A query has a cross-camera match iff its pid has more gallery images than its own (pid, cam)
    # pair has: count both keys over the gallery with codes shared by gallery and queries.
    rows = np.concatenate([gallery_rows, query_rows])
    pids, cams = records.pids[rows], records.cams[rows]
    _, pid_code = np.unique(pids, return_inverse=True)
    _, pair_code = np.unique(np.stack([pids, cams], axis=1), axis=0, return_inverse=True)
    pid_code, pair_code = pid_code.reshape(-1), pair_code.reshape(-1)
    num_gallery = gallery_rows.size
    per_pid = np.bincount(pid_code[:num_gallery], minlength=int(pid_code.max()) + 1)
    per_pair = np.bincount(pair_code[:num_gallery], minlength=int(pair_code.max()) + 1)
    cross_camera = per_pid[pid_code[num_gallery:]] - per_pair[pair_code[num_gallery:]]
    return query_rows[cross_camera == 0].astype(np.int64)


def _split_summary(part: Records) -> dict:
    finite = np.isfinite(part.times)
    people = part.pids > 0
    return {
        "images": len(part),
        "ids": int(np.unique(part.pids[people]).size),
        "junk": int(np.sum(part.pids == JUNK_PID)),
        "distractors": int(np.sum(part.pids == DISTRACTOR_PID)),
        "cameras": int(np.unique(part.cams).size),
        "time_range": (
            [float(part.times[finite].min()), float(part.times[finite].max())]
            if finite.any()
            else None
        ),
        "images_without_time": int(np.sum(~finite)),
    }


def dataset_summary(records: Records) -> dict:
    """Counts per split and the warnings a user should read before training or evaluating.

    Args:
        records: a dataset as read by :func:`read_dataset`.

    Returns:
        A JSON-serialisable dict: ``root``, ``images``, ``ids`` (people, id > 0), ``cameras`` (a list of
        ``{"id", "name", "images"}``), ``has_times``, ``splits`` (per split: ``images``, ``ids``,
        ``junk``, ``distractors``, ``cameras``, ``time_range`` ``[min, max]`` or ``None``,
        ``images_without_time``), ``queries_without_cross_camera_match`` and ``warnings`` (sentences).

    Example:
        >>> r = Records.from_columns(["a", "b"], [1, 1], [1, 1], None, ["query", "gallery"])
        >>> dataset_summary(r)["queries_without_cross_camera_match"]
        1
    """
    camera_ids, camera_counts = np.unique(records.cams, return_counts=True)
    splits = {s: _split_summary(records.split(s)) for s in SPLITS}
    lonely = queries_without_cross_camera_match(records)
    warnings: list[str] = []

    if len(camera_ids) == 1:
        warnings.append(
            f"only one camera ({records.camera_label(int(camera_ids[0]))}): evaluation skips gallery "
            "images of the query's own camera, so no query can be matched, and spatial-temporal "
            "fusion needs two cameras or more"
        )
    finite = np.isfinite(records.times)
    if len(records) and not finite.any():
        warnings.append(
            "no image has a time: spatial-temporal fusion is impossible (visual-only evaluation "
            "still works)"
        )
    elif not finite.all():
        warnings.append(
            f"{int(np.sum(~finite))} of {len(records)} images have no time: spatial-temporal "
            "fusion needs a time for every image"
        )
    train = records.split("train")
    if len(train) and len(camera_ids) > 1 and np.unique(train.cams).size < 2:
        warnings.append(
            "the train split has one camera only: transit times between cameras cannot be learned"
        )
    for split in SPLITS:
        if splits[split]["images"] == 0:
            needed = "training and transit-time fitting" if split == "train" else "evaluation"
            warnings.append(f"no {split} images: {needed} impossible")
    num_queries = int(np.sum((records.splits == "query") & (records.pids > 0)))
    if lonely.size:
        example = os.path.basename(str(records.paths[lonely[0]]))
        warnings.append(
            f"{lonely.size} of {num_queries} queries have no gallery image of the same person in "
            f"another camera and will be skipped by evaluation (e.g. {example})"
        )
    unlabelled = int(np.sum((records.splits == "query") & (records.pids <= 0)))
    if unlabelled:
        warnings.append(
            f"{unlabelled} queries have id -1 or 0 (junk/distractor) and are never evaluated"
        )
    return {
        "root": str(records.root) if records.root is not None else None,
        "images": len(records),
        "ids": int(np.unique(records.pids[records.pids > 0]).size),
        "cameras": [
            {"id": int(c), "name": records.camera_label(int(c)), "images": int(n)}
            for c, n in zip(camera_ids, camera_counts, strict=True)
        ],
        "has_times": records.has_times,
        "splits": splits,
        "queries_without_cross_camera_match": int(lonely.size),
        "warnings": warnings,
    }


def _format_time_range(time_range: list[float] | None) -> str:
    if time_range is None:
        return "-"
    return f"{time_range[0]:g} .. {time_range[1]:g}"


def format_summary(summary: Mapping) -> str:
    """The summary of :func:`dataset_summary` as a plain-text table followed by its warnings.

    Args:
        summary: the dict returned by :func:`dataset_summary`.

    Returns:
        Several lines of text (no trailing newline).

    Example:
        >>> print(format_summary(dataset_summary(read_dataset("Market-1501-v15.09.15"))))  # doctest: +SKIP
    """
    header = f"{'split':<8} {'images':>8} {'ids':>6} {'junk':>6} {'distr.':>6} {'cameras':>7}  time range"
    lines = [header, "-" * len(header)]
    for split in SPLITS:
        s = summary["splits"][split]
        lines.append(
            f"{split:<8} {s['images']:>8} {s['ids']:>6} {s['junk']:>6} {s['distractors']:>6} "
            f"{s['cameras']:>7}  {_format_time_range(s['time_range'])}"
        )
    lines.append(
        f"{'total':<8} {summary['images']:>8} {summary['ids']:>6} "
        f"{sum(summary['splits'][s]['junk'] for s in SPLITS):>6} "
        f"{sum(summary['splits'][s]['distractors'] for s in SPLITS):>6} "
        f"{len(summary['cameras']):>7}"
    )
    cams = ", ".join(
        f"{c['id']}" + (f" ({c['name']})" if c["name"] != str(c["id"]) else "") + f": {c['images']}"
        for c in summary["cameras"]
    )
    lines.append(f"cameras (images): {cams}")
    lines.extend(f"warning: {w}" for w in summary["warnings"])
    return "\n".join(lines)

"""What every layout shares: the :class:`Layout` interface, listing image files, parsing whole columns of
file names, and the checks each reader makes (folders present, integers within int64, person ids).

Only file names are read, never pixels, and the name parsers work on whole columns: one compiled regular
expression over all the names of a folder, then numpy conversions, so reading the 20k names of
Market-1501's test set takes milliseconds.
"""

from __future__ import annotations

import abc
import logging
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.validation import as_int

# Every layout logs under the readers' name, the one logging configurations already filter on.
log = logging.getLogger("mtmct_reid.data.readers")

#: File extensions read as images (compared lower-case); anything else is skipped with a warning.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp")

#: Offending names quoted in an error message.
SHOWN = 3


class Layout(abc.ABC):
    """A dataset layout: how to recognise it on disk and how to read it into records.

    Subclass it, set what the class attributes say, and register the class with
    :func:`~mtmct_reid.data.layouts.registry.register_layout`; :func:`read_dataset` then reads it by
    name (``--layout NAME``) and, if :meth:`detect` says so, without being told.

    Attributes:
        name: the name ``--layout`` takes (set by ``register_layout``).
        looks_like: what a folder of this layout holds, for the message listing what was tried.
        options: keyword options :meth:`read` accepts beyond the path (the regex layout: ``pattern``).
        detect_order: where detection asks this layout, lowest first (ties: registration order).
            The named layouts (Market-1501 10, DukeMTMC-reID 11, MSMT17 20) come before yours
            (50), and a folder's loose ``.csv`` (manifest, 90) after it.
        time_unit: the unit of the times it reads, where the layout fixes it (``"frames"``), or
            ``""``; a transit-time model fitted on it records the unit.
    """

    name: ClassVar[str] = ""
    looks_like: ClassVar[str] = ""
    options: ClassVar[tuple[str, ...]] = ()
    detect_order: ClassVar[int] = 50
    time_unit: ClassVar[str] = ""

    def detect(self, path: Path) -> bool:
        """Whether ``path`` (a resolved, existing file or folder) is in this layout.

        Return False when it is not; raise :class:`ReIDError` when it resembles this layout but
        cannot be read as it (the message is shown if no other layout claims the folder).
        """
        return False

    @abc.abstractmethod
    def read(self, path: Path, **options: Any) -> Records:
        """Read the dataset at ``path`` (resolved and existing) into records with absolute paths."""


# --------------------------------------------------------------------------------------------------
# Listing files


def is_image_name(name: str) -> bool:
    """Whether a file name is read as an image (dot files never: macOS resource forks).

    Example:
        >>> is_image_name("0002_c1s1_000451_03.JPG"), is_image_name("._0002_c1s1_000451_03.jpg")
        (True, False)
    """
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


class SkippedFiles:
    """Collects the non-image files met while listing, so one warning covers the whole dataset."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def add(self, names: Iterable[str]) -> None:
        """Remember these skipped names."""
        self.names.extend(names)

    def warn(self, where: Path) -> None:
        """Log one warning naming a few of the skipped files (nothing when none was skipped)."""
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
    folder: str | os.PathLike, skipped: SkippedFiles | None = None, recursive: bool = False
) -> list[str]:
    """Sorted image file paths under ``folder``, relative to it (posix separators).

    Images are files with an extension of :data:`IMAGE_EXTENSIONS`, except dot files (macOS resource
    forks such as ``._0002_c1s1_000451_03.jpg``); hidden folders are not entered, nor are links to
    folders (so a link loop cannot make listing endless). A link that cannot be followed (a loop) is
    refused, naming it.

    Args:
        folder: the folder to list.
        skipped: collects the names of the other files (for one warning); None ignores them.
        recursive: list sub-folders too.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for name in ("b.jpg", "a.png", "notes.txt", "._a.jpg"):
        ...     _ = (Path(tmp.name) / name).write_bytes(b"")
        >>> list_images(tmp.name)
        ['a.png', 'b.jpg']
        >>> tmp.cleanup()
    """
    folder = Path(folder)
    found: list[str] = []
    others: list[str] = []
    pending = [(folder, "")]
    while pending:
        current, prefix = pending.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    try:
                        is_file = entry.is_file()
                        is_dir = not is_file and entry.is_dir(follow_symlinks=False)
                    except OSError as exc:
                        raise ReIDError(
                            f"{entry.path}: cannot be read ({exc.strerror or exc}); a link loop?"
                        ) from None
                    if is_file:
                        (found if is_image_name(entry.name) else others).append(prefix + entry.name)
                    elif recursive and is_dir and not entry.name.startswith("."):
                        # Hidden folders hold tool state (.ipynb_checkpoints, .thumbnails).
                        pending.append((Path(entry.path), f"{prefix}{entry.name}/"))
        except OSError as exc:
            raise ReIDError(f"{current}: cannot list this folder ({exc.strerror or exc})") from None
    if skipped is not None:
        skipped.add(others)
    found.sort()
    return found


def require_images(folder: Path, names: Sequence[str], expected: str) -> None:
    """Refuse an empty split folder, saying what names were expected in it."""
    if not names:
        raise ReIDError(
            f"{folder}: no images in this split folder (expected names like {expected})"
        )


def check_root(root: str | os.PathLike) -> Path:
    """The dataset path resolved, or one line when it does not exist (or is a link loop)."""
    path = Path(root).expanduser()
    try:
        exists = path.exists()
        resolved = path.resolve(strict=exists)
    except (OSError, RuntimeError) as exc:
        raise ReIDError(f"{path}: cannot be resolved ({exc})") from None
    if not exists:
        raise ReIDError(
            f"{path}: no such file or folder (expected a dataset folder or CSV manifest)"
        )
    return resolved


def require_folder(root: Path, name: str, layout: str, all_names: Iterable[str]) -> Path:
    """``root / name`` when it is a folder, else one line naming the folders the layout needs."""
    folder = root / name
    if folder.is_symlink() and not folder.exists():
        raise ReIDError(f"{folder}: a link that cannot be followed (a loop, or a missing target)")
    if not folder.is_dir():
        raise ReIDError(
            f"{root}: missing folder '{name}' ({layout} layout needs {', '.join(all_names)})"
        )
    return folder


def absolute_paths(folder: Path, names: Sequence[str]) -> np.ndarray:
    """``folder/name`` for every name, as a unicode array."""
    prefix = str(folder) + os.sep
    return np.char.add(prefix, np.asarray(names, dtype=np.str_)) if names else np.empty(0, np.str_)


# --------------------------------------------------------------------------------------------------
# Vectorised name parsing


def match_all(names: Sequence[str], pattern: re.Pattern[str]) -> np.ndarray | None:
    """[N, groups] array of strings when every name matches ``pattern`` (one ``findall`` over the
    joined names; the pattern must be ``re.MULTILINE`` with ``^``/``$``), else None.

    Example:
        >>> pattern = re.compile(r"^(\\d+)_c(\\d+)\\.jpg$", re.MULTILINE)
        >>> match_all(["1_c2.jpg", "30_c4.jpg"], pattern).tolist()
        [['1', '2'], ['30', '4']]
    """
    if any("\n" in n for n in names):
        return None
    rows = pattern.findall("\n".join(names))
    if len(rows) != len(names):
        return None
    if not rows:
        return np.empty((0, pattern.groups), dtype=np.str_)
    return np.asarray(rows, dtype=np.str_).reshape(len(names), pattern.groups)


def parse_names(
    names: Sequence[str], pattern: re.Pattern[str], folder: Path, expected: str, layout: str
) -> np.ndarray:
    """Parse every name with :func:`match_all`; one line naming a few names that do not follow."""
    names = list(names)
    table = match_all(names, pattern)
    if table is None:
        single = re.compile(pattern.pattern, pattern.flags & ~re.MULTILINE)
        bad = [n for n in names if "\n" in n or not single.fullmatch(n)]
        raise ReIDError(
            f"{folder}: {len(bad)} of {len(names)} file names do not follow the {layout} naming "
            f"(expected names like {expected}), e.g. {', '.join(repr(b) for b in bad[:SHOWN])}"
        )
    return table


def int_column(values: np.ndarray, where: Callable[[int], str]) -> np.ndarray:
    """A column of integer text as int64; one line naming the first cell that is not an integer
    within int64 (``where(i)`` names row ``i``: a file, a line and field).

    Example:
        >>> int_column(np.array(["7", "-1"]), lambda i: f"row {i}").tolist()
        [7, -1]
        >>> int_column(np.array(["7", "99999999999999999999"]), lambda i: f"row {i}")
        Traceback (most recent call last):
        ...
        mtmct_reid.errors.ReIDError: row 1 must be an integer within int64, got '99999999999999999999'
    """
    try:
        return np.char.strip(values.astype(np.str_)).astype(np.int64)
    except (ValueError, OverflowError):
        for i, value in enumerate(values.tolist()):
            as_int(where(i), value)
        raise  # unreachable: as_int refuses the value astype could not convert


def float_column(values: np.ndarray, error: Callable[[int, str], str]) -> np.ndarray:
    """A column of numeric text as float64, empty cells as NaN (``inf`` and ``nan`` are refused).

    Args:
        values: the text cells.
        error: ``error(row, cell)`` is the message for the first cell that is not a number.

    Example:
        >>> float_column(np.array(["1.5", "", "7"]), lambda i, v: f"row {i}: {v!r}").tolist()
        [1.5, nan, 7.0]
    """
    values = np.char.strip(values.astype(np.str_))
    out = np.full(len(values), np.nan, dtype=np.float64)
    filled = values != ""
    try:
        out[filled] = values[filled].astype(np.float64)
    except ValueError:
        for i, value in enumerate(values.tolist()):
            try:
                float(value) if value else None
            except ValueError:
                raise ReIDError(error(i, value)) from None
        raise
    infinite = np.flatnonzero(filled & ~np.isfinite(out))
    if infinite.size:
        # "inf" and "nan" parse as floats but are no time; an empty cell is how a time is missing.
        i = int(infinite[0])
        raise ReIDError(error(i, str(values[i])))
    return out


def camera_ids(
    labels: np.ndarray, where: Callable[[int], str], origin: str = ""
) -> tuple[np.ndarray, dict[int, str]]:
    """Camera labels to ids: integer labels are the ids; names (all labels non-integer) become ids
    1..C in sorted order, with the map back to the names.

    Labels that mix both forms (``1`` and ``cam1``) are refused: they are almost always one camera
    spelt two ways, and counting them as two would split its images silently. ``where(i)`` names
    row ``i`` in messages, after ``origin`` (the file, say).

    Example:
        >>> camera_ids(np.array(["lobby", "door", "lobby"]), str)
        (array([2, 1, 2]), {1: 'door', 2: 'lobby'})
    """
    labels = np.char.strip(labels.astype(np.str_))
    numeric = np.char.isdigit(np.char.lstrip(labels, "+-"))
    if numeric.all():
        return int_column(labels, lambda i: f"{origin}{where(i)}"), {}
    if numeric.any():
        first_num = int(np.flatnonzero(numeric)[0])
        first_name = int(np.flatnonzero(~numeric)[0])
        raise ReIDError(
            f"{origin}{where(first_num)} is camera {str(labels[first_num])!r} but {where(first_name)} is "
            f"camera {str(labels[first_name])!r}: camera labels must be all integers or all "
            "names, not both (spell each camera one way)"
        )
    names, inverse = np.unique(labels, return_inverse=True)
    return inverse.reshape(-1).astype(np.int64) + 1, {i + 1: str(n) for i, n in enumerate(names)}


def check_pids(pids: np.ndarray, where: Callable[[int], str]) -> None:
    """Refuse person ids below -1: ``-1`` is junk, ``0`` a distractor, real people are ``> 0``."""
    bad = np.flatnonzero(pids < -1)
    if bad.size:
        i = int(bad[0])
        raise ReIDError(
            f"{where(i)} has person id {int(pids[i])} (expected -1 for junk, 0 for a distractor "
            "or a positive id)"
        )


def raise_on_duplicates(paths: np.ndarray, where: np.ndarray, origin: Path) -> None:
    """One line when an image path is listed twice, saying where both listings are."""
    unique, counts = np.unique(paths, return_counts=True)
    if (counts > 1).any():
        dup = unique[counts > 1]
        again = np.flatnonzero(paths == dup[0])
        raise ReIDError(
            f"{origin}: {dup.size} image path(s) listed more than once, e.g. {dup[0]} "
            f"({', '.join(str(w) for w in where[again][:2])})"
        )

"""Market-1501 and DukeMTMC-reID: ``bounding_box_train`` / ``query`` / ``bounding_box_test`` folders,
told apart by their file names.

* ``market1501``: names ``0002_c1s1_000451_03.jpg`` (id, camera, session, frame in session, box). Times
  are global frames per camera (:func:`~mtmct_reid.data.market_time.market_global_time`).
* ``dukemtmc``: names ``0005_c2_f0046985.jpg`` (id, camera, global frame).
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mtmct_reid.data.layouts.base import (
    Layout,
    SkippedFiles,
    absolute_paths,
    int_column,
    is_image_name,
    list_images,
    match_all,
    parse_names,
    require_folder,
    require_images,
)
from mtmct_reid.data.layouts.registry import register_layout
from mtmct_reid.data.market_time import MARKET_SESSION_FRAMES, market_global_time
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError

#: Split folders of the Market-1501 and DukeMTMC-reID layouts.
MARKET_FOLDERS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}

MARKET_EXAMPLE = "0002_c1s1_000451_03.jpg"
DUKE_EXAMPLE = "0005_c2_f0046985.jpg"

# Multi-line patterns: run once with findall over all the names of a folder joined by newlines.
MARKET_NAME = re.compile(r"^(-?\d+)_c(\d+)s(\d+)_(\d+)_\d+\.[^.\n]+$", re.MULTILINE | re.ASCII)
DUKE_NAME = re.compile(r"^(-?\d+)_c(\d+)_f(\d+)\.[^.\n]+$", re.MULTILINE | re.ASCII)


def _columns(
    table: np.ndarray, names: Sequence[str], fields: Sequence[str], where: str = ""
) -> list[np.ndarray]:
    """The parsed digit columns as int64, naming the file and field of a value beyond int64."""
    return [
        int_column(table[:, i], lambda row, f=field: f"{where}{names[row]}: {f}")
        for i, field in enumerate(fields)
    ]


def market_times(
    cams: np.ndarray,
    sessions: np.ndarray,
    frames: np.ndarray,
    names: Sequence[str],
    folder: Path | None = None,
) -> np.ndarray:
    """Global frames of Market-1501 names, refusing sessions outside the camera's session table."""
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


def _parse_market(names: Sequence[str], table: np.ndarray, folder: Path | None = None):
    where = "" if folder is None else f"{folder}/"
    pids, cams, sessions, frames = _columns(
        table, names, ("person id", "camera", "session", "frame"), where
    )
    return pids, cams, market_times(cams, sessions, frames, names, folder)


def _parse_duke(names: Sequence[str], table: np.ndarray, folder: Path | None = None):
    where = "" if folder is None else f"{folder}/"
    pids, cams, frames = _columns(table, names, ("person id", "camera", "frame"), where)
    return pids, cams, frames.astype(np.float64)


def parse_image_names(
    names: Sequence[str],
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Person ids, cameras and times from Market-1501 or DukeMTMC-reID file names.

    The same naming rules and Market-1501 clock as the ``market1501`` and ``dukemtmc`` layouts.

    Args:
        names: file names (or paths; only the last component is read).

    Returns:
        ``(pids, cams, times)`` (int64, int64, float64) when every name follows one of the two
        namings, else None.

    Raises:
        ReIDError: Market-1501 names with a session outside the session table, or numbers
            beyond int64.

    Example:
        >>> pids, cams, times = parse_image_names(["0002_c2s3_000100_01.jpg"])
        >>> int(pids[0]), int(cams[0]), float(times[0])
        (2, 2, 328468.0)
    """
    names = [Path(str(name)).name for name in names]
    if not names:
        return None
    table = match_all(names, MARKET_NAME)
    if table is not None:
        return _parse_market(names, table)
    table = match_all(names, DUKE_NAME)
    if table is not None:
        return _parse_duke(names, table)
    return None


def _sample_names(folder: Path, limit: int = 200) -> list[str]:
    names: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_image_name(entry.name):
                names.append(entry.name)
                if len(names) >= limit:
                    break
    return names


def _market_votes(root: Path) -> tuple[int, int, list[str]] | None:
    """How many sampled names follow Market and Duke naming, when the Market folders are there."""
    folders = [root / f for f in MARKET_FOLDERS.values() if (root / f).is_dir()]
    if not any(f.name.startswith("bounding_box") for f in folders):
        return None
    names = [n for f in folders for n in _sample_names(f)]
    joined = "\n".join(names)
    return len(MARKET_NAME.findall(joined)), len(DUKE_NAME.findall(joined)), names


class _MarketFolders(Layout):
    """The shared reader of the two layouts; subclasses set the naming."""

    time_unit = "frames"

    naming = ""
    example = ""
    pattern: re.Pattern[str]
    looks_like = "bounding_box_train, query, bounding_box_test"

    @abc.abstractmethod
    def _parse(self, names: Sequence[str], table: np.ndarray, folder: Path):
        """Person ids, cameras and times of ``names`` (the subclass's naming)."""

    def read(self, path: Path, **options) -> Records:
        skipped = SkippedFiles()
        parts = []
        for split, folder_name in MARKET_FOLDERS.items():
            folder = require_folder(path, folder_name, self.name, MARKET_FOLDERS.values())
            names = list_images(folder, skipped)
            require_images(folder, names, self.example)
            table = parse_names(names, self.pattern, folder, self.example, self.naming)
            pids, cams, times = self._parse(names, table, folder)
            parts.append(
                Records(
                    paths=absolute_paths(folder, names),
                    pids=pids,
                    cams=cams,
                    times=times,
                    splits=np.repeat(np.asarray([split]), len(names)),
                    root=path,
                )
            )
        skipped.warn(path)
        return Records.concat(parts)


@register_layout("market1501")
class Market1501(_MarketFolders):
    """Market-1501: folders ``bounding_box_train`` (train), ``query`` and ``bounding_box_test``
    (gallery), all three required; names ``0002_c1s1_000451_03.jpg``: person id (``-1`` junk and
    ``0000`` distractor are kept), camera, session, frame within the session, box index.

    The time of an image is its global frame in its camera: the frame plus the lengths of that
    camera's earlier sessions. Cameras beyond the session table (a network of your own named the
    Market way, ``c7``, ``c12``) have one session, so their frame is their time.
    """

    detect_order = 10

    naming = "Market-1501"
    example = MARKET_EXAMPLE
    pattern = MARKET_NAME

    def _parse(self, names, table, folder):
        return _parse_market(names, table, folder)

    def detect(self, path: Path) -> bool:
        votes = None if path.is_file() else _market_votes(path)
        if votes is None:
            return False
        market, duke, names = votes
        if market == 0 and duke == 0:
            example = f" (e.g. {names[0]!r})" if names else ""
            raise ReIDError(
                f"{path}: has Market-style folders but its file names{example} follow neither "
                f"Market-1501 ({MARKET_EXAMPLE}) nor DukeMTMC-reID ({DUKE_EXAMPLE}) naming; "
                "read it with --layout regex --pattern '...' (named groups pid, cam, time)"
            )
        return market >= duke


@register_layout("dukemtmc")
class DukeMTMC(_MarketFolders):
    """DukeMTMC-reID: the folders of Market-1501; names ``0005_c2_f0046985.jpg``: person id,
    camera, frame. Duke's frames are already global per camera (60 fps in the source videos), so
    the frame is the time."""

    detect_order = 11

    naming = "DukeMTMC-reID"
    example = DUKE_EXAMPLE
    pattern = DUKE_NAME

    def _parse(self, names, table, folder):
        return _parse_duke(names, table, folder)

    def detect(self, path: Path) -> bool:
        votes = None if path.is_file() else _market_votes(path)
        return votes is not None and votes[1] > votes[0]

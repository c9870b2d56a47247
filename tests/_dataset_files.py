"""Tiny fake datasets on disk for the reader tests: real (2×4 pixel) JPEG files whose names matter."""

from __future__ import annotations

import functools
import io
from collections.abc import Iterable, Mapping
from pathlib import Path

MARKET_SESSION_LENGTHS = {
    1: (72681, 74546, 74881, 74661, 74891, 54346),
    2: (163691, 164677, 98102),
    3: (161708, 161769, 104469),
    4: (72107, 72373, 74810, 74541, 74910, 50616),
    5: (161095, 161724, 103487),
    6: (87551, 131268, 95817, 30952),
}
"""Market-1501's session table (from the dataset's authors), copied here so tests do not trust the
code they check."""


@functools.lru_cache(maxsize=1)
def tiny_jpeg() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (2, 4), (120, 30, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def write_images(folder: Path, names: Iterable[str]) -> list[Path]:
    """Create ``folder/name`` (sub-folders allowed) as tiny JPEGs; returns the paths."""
    paths = []
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(tiny_jpeg())
        paths.append(path)
    folder.mkdir(parents=True, exist_ok=True)
    return paths


def make_split_folders(root: Path, names_by_folder: Mapping[str, Iterable[str]]) -> Path:
    """Write the given names into each named folder of ``root``."""
    for folder, names in names_by_folder.items():
        write_images(root / folder, names)
    return root


def market_time_by_definition(cam: int, session: int, frame: int) -> float:
    """Global frame: the frame plus the lengths of the camera's earlier sessions."""
    return float(sum(MARKET_SESSION_LENGTHS.get(cam, ())[: session - 1]) + frame)


def make_msmt17(root: Path, lists: Mapping[str, Iterable[tuple[str, int]]]) -> Path:
    """Write an MSMT17 folder: ``lists`` maps a list file name to (relative path, pid) lines; the
    images go under ``train/`` for train/val lists and ``test/`` otherwise."""
    for list_name, entries in lists.items():
        entries = list(entries)
        folder = root / ("train" if list_name in ("list_train.txt", "list_val.txt") else "test")
        write_images(folder, [rel for rel, _ in entries])
        (root / list_name).write_text("".join(f"{rel} {pid}\n" for rel, pid in entries))
    return root

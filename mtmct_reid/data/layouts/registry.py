"""The registry of dataset layouts: :func:`register_layout`, layout detection and :func:`read_dataset`.

Detection asks the layouts by their ``detect_order`` (Market-1501, DukeMTMC-reID, MSMT17, then
layouts registered from outside, then a folder's CSV manifest; regex is never guessed). A layout
registered from outside the package — a camera network of your own — is read by name
(``--layout NAME``) and, when its ``detect`` says so, found by itself.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mtmct_reid.data.layouts.base import Layout, check_pids, check_root, log
from mtmct_reid.data.records import SPLITS, Records
from mtmct_reid.errors import ReIDError

#: Registered layouts by name, in registration order (:func:`available_layouts` gives detection order).
LAYOUTS: dict[str, Layout] = {}

L = TypeVar("L", bound=type[Layout])


def register_layout(name: str) -> Callable[[L], L]:
    """Class decorator adding a :class:`~mtmct_reid.data.layouts.base.Layout` to :data:`LAYOUTS`.

    Example:
        >>> @register_layout("one_folder")
        ... class OneFolder(Layout):
        ...     looks_like = "images/ with names PID_CAM_TIME.jpg"
        ...
        ...     def read(self, path, **options):
        ...         from mtmct_reid.data.layouts import list_images
        ...         names = list_images(path / "images")
        ...         pid, cam, time = np.array([n[:-4].split("_") for n in names]).T
        ...         return Records.from_columns(
        ...             [str(path / "images" / n) for n in names], pid.astype(int),
        ...             cam.astype(int), time.astype(float), ["train"] * len(names))
        >>> "one_folder" in available_layouts()
        True
        >>> _ = LAYOUTS.pop("one_folder")
    """

    def decorate(cls: L) -> L:
        if name in LAYOUTS:
            raise ValueError(f"layout '{name}' is already registered")
        cls.name = name
        LAYOUTS[name] = cls()
        return cls

    return decorate


def available_layouts() -> list[str]:
    """Names accepted by ``--layout``, in the order detection asks them.

    Example:
        >>> available_layouts()
        ['market1501', 'dukemtmc', 'msmt17', 'manifest', 'regex']
    """
    order = {name: i for i, name in enumerate(LAYOUTS)}
    return sorted(LAYOUTS, key=lambda name: (LAYOUTS[name].detect_order, order[name]))


def get_layout(name: str) -> Layout:
    """The registered layout ``name``; one line listing the names otherwise."""
    if name not in LAYOUTS:
        raise ReIDError(f"--layout {name!r}: expected one of {', '.join(available_layouts())}")
    return LAYOUTS[name]


def _looks_like_dataset(folder: Path) -> bool:
    for name in available_layouts():
        try:
            if LAYOUTS[name].detect(folder):
                return True
        except ReIDError:
            return True
    return False


def detect_layout(root: str | os.PathLike) -> str:
    """Name the layout of a dataset folder or file: the first layout (in :func:`available_layouts`
    order) that claims it.

    A layout that recognises the folder but cannot read it as such (Market folders whose names
    follow no known naming) explains why, unless a layout asked later claims the folder.

    Args:
        root: the dataset folder or manifest file.

    Returns:
        A name of :data:`LAYOUTS` (never ``regex``: a pattern is never guessed).

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> for folder, name in [("bounding_box_train", "0005_c2_f0046985.jpg"),
        ...                      ("query", "0005_c1_f0000120.jpg"),
        ...                      ("bounding_box_test", "0005_c3_f0001200.jpg")]:
        ...     (Path(tmp.name) / folder).mkdir()
        ...     _ = (Path(tmp.name) / folder / name).write_bytes(b"")
        >>> detect_layout(tmp.name)
        'dukemtmc'
        >>> tmp.cleanup()
    """
    path = check_root(root)
    first_error: ReIDError | None = None
    for name in available_layouts():
        try:
            if LAYOUTS[name].detect(path):
                return name
        except ReIDError as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error
    if path.is_file():
        raise ReIDError(f"{path}: is a file but not a .csv manifest (expected a dataset folder)")
    hint = ""
    try:
        inside = sorted(p for p in path.iterdir() if p.is_dir() and _looks_like_dataset(p))
    except OSError:
        inside = []
    if len(inside) == 1:
        hint = f"; did you mean {inside[0]}?"
    tried = "; ".join(
        f"{name}: {LAYOUTS[name].looks_like}"
        for name in available_layouts()
        if LAYOUTS[name].looks_like
    )
    raise ReIDError(
        f"{path}: no known dataset layout (tried {tried}); "
        f"for other names pass --layout regex --pattern '...'{hint}"
    )


def read_dataset(
    root: str | os.PathLike, layout: str | None = None, pattern: str | None = None, **options: Any
) -> Records:
    """Read a dataset of any registered layout into :class:`~mtmct_reid.data.records.Records`.

    Args:
        root: the dataset folder, or a CSV manifest file.
        layout: a name of :data:`LAYOUTS`; ``None`` detects it (:func:`detect_layout`), or means
            ``regex`` when a ``pattern`` is given.
        pattern: the regex over file names for the ``regex`` layout (named groups ``pid``, ``cam`` and
            optionally ``time``).
        options: further keyword options of a layout that declares them.

    Returns:
        Records with absolute paths and ``root`` set. Only names are read, never pixels. Person
        ids below -1 are refused whatever the layout.

    Example:
        >>> import tempfile
        >>> tmp = tempfile.TemporaryDirectory()
        >>> _ = (Path(tmp.name) / "a.jpg").write_bytes(b"")
        >>> _ = (Path(tmp.name) / "m.csv").write_text("path,pid,camera,time,split\\na.jpg,3,1,10,train\\n")
        >>> records = read_dataset(Path(tmp.name) / "m.csv")
        >>> records.pids.tolist(), records.cams.tolist(), records.times.tolist()
        ([3], [1], [10.0])
        >>> tmp.cleanup()
    """
    if layout is not None:
        get_layout(layout)
    if pattern is not None:
        options = {**options, "pattern": pattern}
        if layout is None:
            layout = "regex"
    if layout is None:
        layout = detect_layout(root)
    chosen = LAYOUTS[layout]
    unknown = sorted(set(options) - set(chosen.options))
    if unknown:
        if unknown == ["pattern"]:
            raise ReIDError(f"--pattern is only used with --layout regex, not --layout {layout}")
        raise ReIDError(f"layout '{layout}' takes no option '{unknown[0]}'")
    records = chosen.read(check_root(root), **options)
    if chosen.time_unit:
        records = dataclasses.replace(records, time_unit=chosen.time_unit)
    check_pids(records.pids, lambda i: str(records.paths[i]))
    counts = ", ".join(f"{s} {int(np.sum(records.splits == s))}" for s in SPLITS)
    log.info("read %d images (%s) from %s as %s", len(records), counts, root, layout)
    return records

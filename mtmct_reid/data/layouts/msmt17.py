"""MSMT17: ``train/`` and ``test/`` (V2: ``mask_train_v2``/``mask_test_v2``) indexed by the list files
``list_train.txt`` (+ optional ``list_val.txt``), ``list_query.txt`` and ``list_gallery.txt``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mtmct_reid.data.layouts.base import (
    SHOWN,
    Layout,
    SkippedFiles,
    absolute_paths,
    int_column,
    list_images,
    parse_names,
    raise_on_duplicates,
)
from mtmct_reid.data.layouts.registry import register_layout
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError
from mtmct_reid.validation import as_int

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

MSMT17_EXAMPLE = "0000_000_01_0303morning_0015_0.jpg"
MSMT17_NAME = re.compile(
    r"^\d+_\d+_(\d{2})_(\d{4})(morning|noon|afternoon)_(\d+)_\d+\.[^.\n]+$",
    re.MULTILINE | re.ASCII,
)


def read_list_file(path: Path) -> tuple[list[str], np.ndarray]:
    """``(relative paths, list ids)`` of an MSMT17 list file; one line naming a bad line.

    The file must be UTF-8 text (ASCII, as MSMT17 ships it); ids are integers >= 0 within int64.
    """
    rel_paths: list[str] = []
    pids: list[int] = []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line_no = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ReIDError(
            f"{path}, line {line_no}: not UTF-8 text (byte {exc.object[exc.start]:#x}); MSMT17 "
            "list files are ASCII 'relative/path.jpg pid' lines"
        ) from None
    except OSError as exc:
        raise ReIDError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2:
            raise ReIDError(
                f"{path}, line {line_no}: expected 'relative/path.jpg pid', got {line.strip()!r}"
            )
        if not re.fullmatch(r"[+-]?\d+", fields[1]):
            raise ReIDError(f"{path}, line {line_no}: person id {fields[1]!r} is not an integer")
        # The id + 1 is stored, so the largest int64 is refused too.
        pids.append(as_int(f"{path}, line {line_no}: person id", fields[1], 0, 2**63 - 2))
        rel_paths.append(fields[0].replace("\\", "/"))
    if not rel_paths:
        raise ReIDError(f"{path}: empty list file (expected lines 'relative/path.jpg pid')")
    return rel_paths, np.asarray(pids, dtype=np.int64)


def _image_folder(root: Path, split: str) -> Path:
    for name in MSMT17_IMAGE_FOLDERS[split]:
        if (root / name).is_dir():
            return root / name
    raise ReIDError(
        f"{root}: missing image folder '{MSMT17_IMAGE_FOLDERS[split][0]}' "
        f"(msmt17 layout needs train/ and test/ beside the list files)"
    )


@register_layout("msmt17")
class MSMT17(Layout):
    """MSMT17 (V1 ``train``/``test`` or V2 ``mask_train_v2``/``mask_test_v2``) from its list files.

    ``list_train.txt`` (and ``list_val.txt`` when present, also training data) index ``train/``;
    ``list_query.txt`` and ``list_gallery.txt`` index ``test/``; each line is ``relative/path pid``.
    Names ``0000_000_01_0303morning_0015_0.jpg``: id, index, camera (always two digits), date
    (``MMDD``) and time of day (morning, noon, afternoon), frame.

    MSMT17 numbers people from 0, which this toolkit reserves for distractors, so the list file's id
    plus one is the person id here (train and test ids stay separate number ranges, as in the lists).

    MSMT17's clock is coarse: it only says which day and which third of the day a frame was taken in.
    The time here is ``(day index * 3 + slot) * MSMT17_SLOT_FRAMES + frame``, days numbered in date
    order over the whole dataset: monotone within one camera and slot, but frames of different
    cameras are not synchronised, so transit times learned from it are rough.
    """

    detect_order = 20
    time_unit = "frames"

    looks_like = "train/, test/ and list_*.txt"

    def detect(self, path: Path) -> bool:
        if not path.is_dir():
            return False
        has_lists = any((path / name).is_file() for _, name, _ in MSMT17_LISTS)
        has_folders = any(
            (path / f).is_dir() for names in MSMT17_IMAGE_FOLDERS.values() for f in names
        )
        return has_lists and has_folders

    def read(self, path: Path, **options) -> Records:
        paths: list[np.ndarray] = []
        pids: list[np.ndarray] = []
        tables: list[np.ndarray] = []
        splits: list[np.ndarray] = []
        sources: list[str] = []
        listed: dict[Path, set[str]] = {}
        skipped = SkippedFiles()
        for split, list_name, required in MSMT17_LISTS:
            list_path = path / list_name
            if not list_path.is_file():
                if required:
                    raise ReIDError(
                        f"{path}: missing list file '{list_name}' (msmt17 layout needs "
                        f"{', '.join(name for _, name, req in MSMT17_LISTS if req)})"
                    )
                continue
            folder = _image_folder(path, split)
            if folder not in listed:
                listed[folder] = set(list_images(folder, skipped, recursive=True))
            rel_paths, list_pids = read_list_file(list_path)
            missing = [p for p in rel_paths if p not in listed[folder]]
            if missing:
                raise ReIDError(
                    f"{list_path}: {len(missing)} listed image(s) not found under {folder}, "
                    f"e.g. {', '.join(repr(m) for m in missing[:SHOWN])}"
                )
            list_names = [p.rsplit("/", 1)[-1] for p in rel_paths]
            tables.append(parse_names(list_names, MSMT17_NAME, list_path, MSMT17_EXAMPLE, "MSMT17"))
            paths.append(absolute_paths(folder, rel_paths))
            pids.append(list_pids + 1)
            splits.append(np.repeat(np.asarray([split]), len(rel_paths)))
            sources.extend([list_name] * len(rel_paths))
        skipped.warn(path)

        all_paths = np.concatenate(paths)
        raise_on_duplicates(all_paths, np.asarray(sources), path)
        table = np.concatenate(tables)
        frames = int_column(table[:, 3], lambda i: f"{all_paths[i]}: frame")
        too_late = np.flatnonzero(frames >= MSMT17_SLOT_FRAMES)
        if too_late.size:
            raise ReIDError(
                f"{path}: frame {int(frames[too_late[0]])} of {all_paths[too_late[0]]} is beyond "
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
            root=path,
        )

"""Your own file names: a regular expression with named groups ``pid``, ``cam`` and optional ``time``,
over split folders ``train`` (or ``bounding_box_train``), ``query``, ``gallery`` (or
``bounding_box_test``)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mtmct_reid.data.layouts.base import (
    SHOWN,
    Layout,
    SkippedFiles,
    camera_ids,
    float_column,
    int_column,
    list_images,
    require_images,
)
from mtmct_reid.data.layouts.registry import register_layout
from mtmct_reid.data.records import Records
from mtmct_reid.errors import ReIDError

#: Split folders a regex dataset may use (either spelling, not both).
REGEX_FOLDERS = {
    "train": ("train", "bounding_box_train"),
    "query": ("query",),
    "gallery": ("gallery", "bounding_box_test"),
}


def compile_pattern(pattern: str | None) -> re.Pattern[str]:
    """The user's pattern compiled; one line when it is missing, invalid or lacks a group.

    Example:
        >>> compile_pattern(r"(?P<pid>\\d+)_(?P<cam>\\d+)").groupindex["cam"]
        2
    """
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


@register_layout("regex")
class Regex(Layout):
    """A dataset of your own whose file names carry person id, camera and (optionally) time.

    Split folders under the root: ``train`` (or ``bounding_box_train``), ``query``, ``gallery`` (or
    ``bounding_box_test``); at least one must exist, each one that exists must hold images,
    searched recursively. ``pattern`` is searched in each file NAME (not its folder; anchor with
    ``^``/``$`` if needed) and must have named groups ``pid`` (an integer: ``-1`` junk, ``0``
    distractor, ``> 0`` a person) and ``cam``; a ``time`` group (a number, any unit shared by all
    cameras) is optional: without it times are NaN and spatial-temporal fusion is unavailable.
    Integer cameras keep their numbers; if every camera label is a name, the sorted names become
    ids 1..C and ``Records.camera_names`` maps them back (integers and names mixed are refused).
    """

    detect_order = 100

    options = ("pattern",)

    def read(self, path: Path, **options) -> Records:
        pattern = options.get("pattern")
        compiled = compile_pattern(pattern)
        if not path.is_dir():
            raise ReIDError(f"{path}: the regex layout needs a folder with split folders")
        skipped = SkippedFiles()
        folders: list[tuple[str, Path]] = []
        for split, candidates in REGEX_FOLDERS.items():
            present = [path / c for c in candidates if (path / c).is_dir()]
            if len(present) > 1:
                raise ReIDError(
                    f"{path}: both '{present[0].name}' and '{present[1].name}' exist for the "
                    f"{split} split; keep one"
                )
            folders.extend((split, p) for p in present)
        if not folders:
            raise ReIDError(
                f"{path}: no split folder found (regex layout expects train or "
                "bounding_box_train, query, gallery or bounding_box_test)"
            )
        has_time = "time" in compiled.groupindex
        paths, splits, pid_text, cam_text, time_text = [], [], [], [], []
        bad: list[str] = []
        total = 0
        for split, folder in folders:
            rel_paths = list_images(folder, skipped, recursive=True)
            require_images(folder, rel_paths, f"a match of --pattern {pattern!r}")
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
        skipped.warn(path)
        if bad:
            raise ReIDError(
                f"{path}: {len(bad)} of {total} file names do not match --pattern {pattern!r}, "
                f"e.g. {', '.join(repr(b) for b in bad[:SHOWN])}"
            )
        pid_column = np.asarray(pid_text, dtype=np.str_)
        try:
            pids = np.char.strip(pid_column).astype(np.int64)
        except (ValueError, OverflowError):
            for i, text in enumerate(pid_text):
                if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
                    raise ReIDError(
                        f"{paths[i]}: the pid group matched {text!r}, expected an integer person id"
                    ) from None
            pids = int_column(pid_column, lambda i: f"{paths[i]}: the pid group")
        times = float_column(
            np.asarray(time_text, dtype=np.str_),
            lambda i, v: f"{paths[i]}: the time group matched {v!r}, expected a number",
        )
        cams, names = camera_ids(
            np.asarray(cam_text, dtype=np.str_), lambda i: f"{paths[i]} (the cam group)"
        )
        return Records(
            paths=np.asarray(paths, dtype=np.str_),
            pids=pids,
            cams=cams,
            times=times,
            splits=np.asarray(splits, dtype=np.str_),
            camera_names=names,
            root=path,
        )

"""What a dataset holds, per split, and the warnings a user should read before training or evaluating
(``mtmct-reid dataset info``)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from mtmct_reid.data.records import DISTRACTOR_PID, JUNK_PID, SPLITS, Records


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


def dataset_summary(records: Records, unmatchable_queries: np.ndarray | None = None) -> dict:
    """Counts per split and the warnings a user should read before training or evaluating.

    Args:
        records: a dataset as read by :func:`~mtmct_reid.data.layouts.read_dataset`.
        unmatchable_queries: row indices of the queries evaluation will skip (the evaluation
            protocol decides which: ``mtmct_reid.retrieval.protocol.queries_without_cross_camera_match``,
            as ``mtmct-reid dataset info`` passes); None leaves them out of the summary.

    Returns:
        A JSON-serialisable dict: ``root``, ``images``, ``ids`` (people, id > 0), ``cameras`` (a list of
        ``{"id", "name", "images"}``), ``has_times``, ``splits`` (per split: ``images``, ``ids``,
        ``junk``, ``distractors``, ``cameras``, ``time_range`` ``[min, max]`` or ``None``,
        ``images_without_time``), ``queries_without_cross_camera_match`` and ``warnings`` (sentences).

    Example:
        >>> r = Records.from_columns(["a", "b"], [1, 1], [1, 1], None, ["query", "gallery"])
        >>> dataset_summary(r, np.array([0]))["queries_without_cross_camera_match"]
        1
    """
    camera_ids, camera_counts = np.unique(records.cams, return_counts=True)
    splits = {s: _split_summary(records.split(s)) for s in SPLITS}
    lonely = (
        np.empty(0, np.int64) if unmatchable_queries is None else np.asarray(unmatchable_queries)
    )
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
        >>> r = Records.from_columns(["a", "b"], [1, 1], [1, 2], [5.0, 9.0], ["query", "gallery"])
        >>> print(format_summary(dataset_summary(r)))  # doctest: +NORMALIZE_WHITESPACE
        split      images    ids   junk distr. cameras  time range
        ----------------------------------------------------------
        train           0      0      0      0       0  -
        query           1      1      0      0       1  5 .. 5
        gallery         1      1      0      0       1  9 .. 9
        total           2      1      0      0       2
        cameras (images): 1: 1, 2: 1
        warning: no train images: training and transit-time fitting impossible
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

"""The demo's written report: ``report.json`` and ``report.md`` from what the pipeline produced.

The pipeline (:mod:`mtmct_reid.pipelines.demo`) runs the stages and draws the pictures; this module
only turns their results into the two report files' contents (the caller writes them). It imports
nothing of Lightning or training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mtmct_reid.retrieval.transit import TRANSIT_FILE

if TYPE_CHECKING:
    from mtmct_reid.data.records import Records
    from mtmct_reid.retrieval.evaluate import EvaluationReport
    from mtmct_reid.retrieval.search import SearchResult

#: ``format`` field of the demo's output marker and of ``report.json``.
DEMO_FORMAT = "mtmct-reid-demo"
#: Files of the demo's output folder that the report names.
FEATURES_NAME = "features.npz"
TRANSIT_NAME = TRANSIT_FILE
TRANSIT_PLOT_NAME = "transit_time.png"
#: Stages in order; ``report.json``'s ``seconds`` has one entry each, plus ``total``.
STAGES = (
    "network",
    "training",
    "transit-time model",
    "features",
    "evaluation",
    "tracking",
    "report",
)


def network_summary(records: Records, generated: bool) -> dict[str, Any]:
    """Cameras, identities and images of each split, as the reports give them.

    Args:
        records: the network's records.
        generated: whether this run generated the network (False: an earlier run's was reused).
    """
    train = records.split("train")
    query = records.split("query")
    gallery = records.split("gallery")
    return {
        "cameras": int(records.camera_ids.size),
        "train_ids": int(np.unique(train.pids[train.pids > 0]).size),
        "test_ids": int(np.unique(query.pids[query.pids > 0]).size),
        "train_images": len(train),
        "query_images": len(query),
        "gallery_images": len(gallery),
        "generated": generated,
    }


def choose_rank_list_queries(
    visual: list[SearchResult], fused: list[SearchResult], count: int
) -> list[int]:
    """Queries worth drawing: first those fusion corrects (visual rank 1 wrong, fused right), then
    one both get right, then those both get wrong; in query order within each group.

    Args:
        visual: visual-only results per query (labelled).
        fused: fused results per query, same order.
        count: how many to choose.

    Example:
        Only each result's length and ``matches`` are read, so lists stand in for them here:

        >>> class Ranked(list):  # whether each ranked gallery image is the query's person
        ...     matches = property(lambda self: np.array(self))
        >>> visual = [Ranked([False]), Ranked([True]), Ranked([False])]
        >>> fused = [Ranked([True]), Ranked([True]), Ranked([False])]
        >>> choose_rank_list_queries(visual, fused, 2)  # fusion's correction, then a shared hit
        [0, 1]
    """
    corrected, both, neither, other = [], [], [], []
    for index, (v, f) in enumerate(zip(visual, fused, strict=True)):
        v_right = len(v) > 0 and bool(v.matches[0])
        f_right = len(f) > 0 and bool(f.matches[0])
        if f_right and not v_right:
            corrected.append(index)
        elif f_right and v_right:
            both.append(index)
        elif not f_right and not v_right:
            neither.append(index)
        else:
            other.append(index)
    chosen = corrected[: max(count - 1, 1)] if count > 1 else corrected[:count]
    for group in (both[:1], neither, corrected, both, other):
        for index in group:
            if len(chosen) >= count:
                return chosen
            if index not in chosen:
                chosen.append(index)
    return chosen


def _rounded(seconds: Mapping[str, float]) -> dict[str, float]:
    return {name: round(float(value), 2) for name, value in seconds.items()}


def demo_json_report(
    settings: Mapping[str, Any],
    evaluation: EvaluationReport,
    seconds: Mapping[str, float],
    network: Mapping[str, Any],
    checkpoint: Path,
    out: Path,
    pictures: list[Path],
    tracking: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """``report.json``: the evaluation's ``protocol`` and ``modes``, ``seconds`` per stage (rounded
    to 10 ms), the settings, the network's summary, and the files relative to ``out``.

    Args:
        settings: the demo's settings as JSON values (``DemoConfig`` as a dict).
        evaluation: the four modes' metrics.
        seconds: wall seconds per stage and ``total``.
        network: :func:`network_summary` of the network.
        checkpoint: the trained model's checkpoint.
        out: the output folder (paths are written relative to it).
        pictures: every picture written.
        tracking: the tracking stage's result (``modes``, ``tracklets``, ``identities``), if it ran.
    """
    report = evaluation.as_json()
    return {
        "format": DEMO_FORMAT,
        "protocol": report["protocol"],
        "modes": report["modes"],
        "seconds": _rounded(seconds),
        "config": dict(settings),
        "network": dict(network),
        "checkpoint": os.path.relpath(checkpoint, out),
        "pictures": [os.path.relpath(p, out) for p in pictures],
        "tracking": None
        if tracking is None
        else {
            "modes": tracking["modes"],
            "tracklets": tracking["tracklets"],
            "identities": tracking["identities"],
        },
    }


def demo_markdown_report(
    settings: Mapping[str, Any],
    evaluation: EvaluationReport,
    seconds: Mapping[str, float],
    network: Mapping[str, Any],
    checkpoint: Path,
    log_dir: Path,
    out: Path,
    rank_lists: list[Path],
    tracking: Mapping[str, Any] | None = None,
) -> str:
    """``report.md``: the network, the model, the results table, stage times, the transit-time
    picture, the rank lists, the tracking section (if it ran) and the files, with the commands to
    look further.

    Args:
        settings: the demo's settings as JSON values (``model``, ``backbone``, ``image_size``,
            ``epochs``, ``seed`` are named).
        evaluation: the four modes' metrics.
        seconds: wall seconds per stage and ``total``.
        network: :func:`network_summary` of the network.
        checkpoint: the trained model's checkpoint.
        log_dir: this run's Lightning log folder.
        out: the output folder.
        rank_lists: the rank-list pictures, in ``out``.
        tracking: the tracking stage's result (``modes``, ``tracklets``, ``identities``,
            ``pictures``), if it ran.
    """
    modes = evaluation.modes
    lines = [
        "# st-ReID demo on a synthetic camera network",
        "",
        f"{network['cameras']} cameras; {network['train_ids']} training identities "
        f"({network['train_images']} images) and {network['test_ids']} test identities "
        f"({network['query_images']} queries, {network['gallery_images']} gallery images with "
        "distractors and junk). Groups of look-alikes share clothes and build but walk at very "
        "different times, so appearance alone confuses them and timing tells them apart.",
        "",
        f"Model: {settings['model']} on a {settings['backbone']} trunk (random initialisation), "
        f"{settings['image_size'][0]}×{settings['image_size'][1]} input, {settings['epochs']} "
        f"epochs, seed {settings['seed']}.",
        "",
        "## Results",
        "",
        evaluation.format_table("markdown", decimals=1, queries=False),
    ]
    queries = next(iter(modes.values())).num_queries if modes else 0
    lines += ["", f"Figures in %, {queries} queries, protocol `{evaluation.protocol}`."]
    if "visual" in modes and "visual+st" in modes:
        lift = 100 * (modes["visual+st"].R1 - modes["visual"].R1)
        lines.append(f"Spatial-temporal fusion changes R1 by {lift:+.1f} points.")
    lines += ["", "## Stage times", "", "| stage | seconds |", "|---|---:|"]
    lines += [f"| {name} | {seconds[name]:.1f} |" for name in STAGES if name in seconds]
    if "total" in seconds:
        lines.append(f"| **total** | **{seconds['total']:.1f}** |")
    lines += [
        "",
        "## Transit times",
        "",
        "Fitted on the training split's labels only: row = later camera, column = earlier camera; "
        "the smoothed model (line), its raw histogram (bars) and the generated ground truth "
        "(dashed).",
        "",
        f"![transit-time model]({TRANSIT_PLOT_NAME})",
        "",
        "## Rank lists",
        "",
        "Each picture: the query at the left, then the top gallery images by appearance only "
        "(top row) and fused with transit times (bottom row); green frames are the same person, "
        "red ones mistakes.",
        "",
    ]
    for picture in rank_lists:
        lines += [f"![{picture.stem}]({picture.name})", ""]
    if tracking is not None:
        lines += tracking_markdown(tracking, out)
    lines += [
        "## Files",
        "",
        f"- checkpoint: `{os.path.relpath(checkpoint, out)}`",
        f"- features: `{FEATURES_NAME}`, transit-time model: `{TRANSIT_NAME}`",
        f"- training curves: `tensorboard --logdir {log_dir.parent}` (this run: `{log_dir.name}`)",
        "",
        "Search the gallery for one query, visual and fused:",
        "",
        "```sh",
        f"mtmct-reid search --features {out / FEATURES_NAME} --query-index 0 "
        f"--st-model {out / TRANSIT_NAME}",
        "```",
        "",
    ]
    return "\n".join(lines)


def tracking_markdown(tracking: Mapping[str, Any], out: Path) -> list[str]:
    """The multi-camera tracking section of ``report.md``, as lines.

    Args:
        tracking: the tracking stage's result (``modes``, ``tracklets``, ``identities``,
            ``pictures``).
        out: the output folder (pictures are linked relative to it).
    """
    from mtmct_reid.mtmc.modes import format_modes

    lines = [
        "## Multi-camera tracking",
        "",
        f"A small synthetic video network, tracked per camera with ByteTrack: "
        f"{tracking['tracklets']} tracklets of the test period became {tracking['identities']} "
        "identities across cameras. Appearance alone, then fused with the transit-time model "
        "fitted on the labelled training period, then with one bootstrapped from confident "
        "visual matches (no labels); multi-camera figures in %:",
        "",
        format_modes(tracking["modes"], "markdown"),
        "",
    ]
    for picture in tracking["pictures"]:
        lines += [f"![{picture.stem}]({os.path.relpath(picture, out)})", ""]
    return lines

"""The modes table of multi-camera tracking, and the demo's multi-camera stage.

A root's tracklets are associated three ways: by appearance alone, fused with a transit-time model
fitted on the labelled training period, and fused with one bootstrapped from the tracklets
themselves without labels. Each mode's stop threshold is chosen on the labelled training period,
and each is scored with the network's IDF1/IDP/IDR/MCTA/HOTA (``mtmct-reid track --modes``, and
the demo's tracking stage, :func:`demo_tracking`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mtmct_reid.errors import ReIDError
from mtmct_reid.mtmc.associate import Tracklets
from mtmct_reid.mtmc.root import Boxes, MTMCRoot
from mtmct_reid.mtmc.tracking import (
    RootTracklets,
    cut_threshold,
    describe_tracklets,
    fit_transit_from_root,
    global_boxes,
    global_ids,
    group_tracklets,
    journey_ids,
    labelled_tracklets,
    plot_journey,
    plot_timeline,
)

log = logging.getLogger(__name__)


#: Modes of the comparison table, in table order.
MODES = ("appearance", "+transit (labelled)", "+transit (bootstrapped)")


def compare_modes(
    root: MTMCRoot,
    grouped: RootTracklets,
    tracklets: Tracklets,
    gt: Boxes,
    *,
    labelled: Any,
    train: tuple[Tracklets, np.ndarray, np.ndarray] | None,
    threshold: float | None = None,
    neighbours: int | None = None,
) -> dict[str, dict[str, float]]:
    """Network scores of the three modes: appearance only, + a labelled transit-time model, + one
    bootstrapped from these tracklets without labels (left out, with a warning, when no confident
    match exists). Each mode's threshold is chosen on ``train`` unless ``threshold`` is given.

    Args:
        root: the root the tracklets come from.
        grouped: its tracklets' boxes.
        tracklets: their descriptors and times.
        gt: ground-truth boxes of the root.
        labelled: the transit-time model fitted on labels.
        train: labelled training tracklets, their true ids and frames (:func:`cut_threshold`).
        threshold: a fixed stop threshold instead.
        neighbours: candidate neighbours per tracklet.

    Returns:
        mode -> IDF1, IDP, IDR, MCTA, HOTA (fractions), threshold, identities.
    """
    from mtmct_reid.mtmc.associate import DEFAULT_NEIGHBOURS, build_dendrogram
    from mtmct_reid.mtmc.metrics import evaluate_tracks
    from mtmct_reid.mtmc.transit_fit import bootstrap_transit

    neighbours = neighbours or DEFAULT_NEIGHBOURS
    try:
        bootstrapped = bootstrap_transit(tracklets, camera_ids=root.camera_ids)
    except ReIDError as exc:
        log.warning("no bootstrapped transit-time model, its mode is left out: %s", exc)
        bootstrapped = None
    rows = {}
    for name, model in zip(MODES, (None, labelled, bootstrapped), strict=True):
        if name == MODES[2] and model is None:
            continue
        chosen = threshold
        if chosen is None:
            if train is None:
                raise ReIDError("modes: no threshold and no labelled training tracklets")
            chosen, _ = cut_threshold(*train, transit=model, neighbours=neighbours)
        labels = build_dendrogram(
            tracklets, transit=model, threshold=chosen, neighbours=neighbours
        ).labels(chosen)
        gids = global_ids(labels, tracklets.starts)
        scores = evaluate_tracks(global_boxes(grouped, gids), gt, root.times(gt))
        rows[name] = {
            "IDF1": scores.network.IDF1,
            "IDP": scores.network.IDP,
            "IDR": scores.network.IDR,
            "MCTA": scores.mcta,
            "HOTA": scores.network.HOTA,
            "threshold": float(chosen),
            "identities": int(gids.max()) if gids.size else 0,
        }
    return rows


def demo_tracking(
    out: Path,
    checkpoint: Path,
    *,
    seed: int = 0,
    device: str = "cpu",
    per_tracklet: int = 4,
    progress: bool = False,
    config: Any = None,
) -> dict[str, Any]:
    """The demo's multi-camera part: a small synthetic video network, ByteTrack tracks per camera,
    the demo's model, a transit-time model fitted on the training period's labels; the modes table
    and, for the labelled mode, ``timeline.png`` and one ``journey_<id>.png`` in ``out``.

    Args:
        out: folder for the network (``video_network/``) and the pictures.
        checkpoint: the demo's trained checkpoint.
        seed: seed of the network.
        device: where the model runs.
        per_tracklet: crops embedded per tracklet.
        progress: progress bars.
        config: a :class:`~mtmct_reid.mtmc.synth_video.VideoSynthConfig` (default: its ``small()``).

    Returns:
        ``modes`` (the :func:`compare_modes` rows), ``pictures`` (paths), ``tracklets``,
        ``identities``, ``seconds``.
    """
    import time

    from mtmct_reid._io import write_json
    from mtmct_reid.features import FeatureExtractor
    from mtmct_reid.models.checkpoint import load_model_from_checkpoint
    from mtmct_reid.mtmc.associate import build_dendrogram
    from mtmct_reid.mtmc.root import GT, read_root
    from mtmct_reid.mtmc.sct import track_root
    from mtmct_reid.mtmc.synth_video import VideoSynthConfig, generate_video_network

    start = time.perf_counter()
    out = Path(out)
    network = out / "video_network"
    if config is None:
        config = VideoSynthConfig.small(seed=seed)
    generate_video_network(network, config, overwrite=True, progress=progress)
    test, train_root = read_root(network / "test"), read_root(network / "train")
    grouped = group_tracklets(test, track_root(test, name=None))
    model, hparams = load_model_from_checkpoint(checkpoint)
    extractor = FeatureExtractor(model, hparams["image_size"], device=device)
    tracklets = describe_tracklets(test, grouped, extractor, per_tracklet=per_tracklet)
    train_grouped, truth = labelled_tracklets(train_root)
    train_tracklets = describe_tracklets(
        train_root, train_grouped, extractor, per_tracklet=per_tracklet
    )
    train = (train_tracklets, truth, train_grouped.frames)
    labelled = fit_transit_from_root(train_root)
    gt = test.read_boxes(GT)
    rows = compare_modes(test, grouped, tracklets, gt, labelled=labelled, train=train)
    threshold, _ = cut_threshold(*train, transit=labelled)
    labels = build_dendrogram(tracklets, transit=labelled, threshold=threshold).labels(threshold)
    gids = global_ids(labels, tracklets.starts)
    pictures = [plot_timeline(grouped, gids, out)]
    pictures += [plot_journey(test, grouped, gids, g, out) for g in journey_ids(grouped, gids, 1)]
    result = {
        "modes": rows,
        "tracklets": len(grouped),
        "identities": int(gids.max()) if gids.size else 0,
        "seconds": round(time.perf_counter() - start, 2),
    }
    write_json(out / "tracking_modes.json", result)
    result["pictures"] = pictures
    return result


#: Columns of the modes table, in the order every table and JSON lists them.
MODE_COLUMNS = ("IDF1", "IDP", "IDR", "MCTA", "HOTA")


def format_modes(rows: Mapping[str, Mapping[str, float]], style: str = "text") -> str:
    """The modes table: a row per mode, IDF1/IDP/IDR/MCTA/HOTA in percent.

    Args:
        rows: mode -> figures as fractions (the :func:`compare_modes` rows).
        style: ``"text"`` (aligned columns) or ``"markdown"``.

    Example:
        >>> rows = {"appearance": dict(IDF1=0.5, IDP=0.5, IDR=0.5, MCTA=0.4, HOTA=0.3)}
        >>> print(format_modes(rows))
        mode        IDF1   IDP   IDR  MCTA  HOTA
        appearance  50.0  50.0  50.0  40.0  30.0
        >>> print(format_modes(rows, "markdown"))
        | mode | IDF1 | IDP | IDR | MCTA | HOTA |
        |---|---:|---:|---:|---:|---:|
        | appearance | 50.0 | 50.0 | 50.0 | 40.0 | 30.0 |
    """
    if style == "markdown":
        lines = ["| mode | " + " | ".join(MODE_COLUMNS) + " |"]
        lines.append("|---|" + "---:|" * len(MODE_COLUMNS))
        for name, row in rows.items():
            lines.append(
                f"| {name} | " + " | ".join(f"{100 * row[c]:.1f}" for c in MODE_COLUMNS) + " |"
            )
        return "\n".join(lines)
    if style != "text":
        raise ValueError(f"style={style!r} (expected 'text' or 'markdown')")
    width = max(len("mode"), *(len(name) for name in rows))
    lines = ["mode".ljust(width) + "".join(c.rjust(6) for c in MODE_COLUMNS)]
    for name, row in rows.items():
        lines.append(name.ljust(width) + "".join(f"{100 * row[c]:6.1f}" for c in MODE_COLUMNS))
    return "\n".join(lines)

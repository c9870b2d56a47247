"""Multi-camera tracking of an MTMC root: single-camera tracks → crops → features → tracklet
descriptors → cross-camera association → one global id per person, and the files that show it.

The tracklets of a root are its tracks grouped by (camera, local id); their times are the common
clock's. Only a few boxes per tracklet are cropped and embedded (the best visible ones, spread over
the track), so the cost of the model grows with the number of tracklets, not of boxes.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mtmct_reid._io import atomic_path, write_text
from mtmct_reid.errors import ReIDError
from mtmct_reid.mtmc.associate import Tracklets
from mtmct_reid.mtmc.descriptors import box_quality, tracklet_descriptors
from mtmct_reid.mtmc.root import Boxes, MTMCRoot, write_aicity, write_mot
from mtmct_reid.mtmc.sct import TRACKS_NAME

log = logging.getLogger(__name__)

#: Boxes cropped and embedded per tracklet.
DEFAULT_CROPS_PER_TRACKLET = 8

#: Header of ``identities.csv``.
IDENTITY_FIELDS = ("global_id", "camera", "local_id", "start", "end", "frames")


@dataclass(frozen=True)
class RootTracklets:
    """The tracklets of a root's tracks, and which box belongs to which.

    Args:
        boxes: the tracks' boxes (local ids), sorted by camera, frame, id.
        box_tracklet: tracklet index of each box [N].
        cams: camera per tracklet [T].
        local_ids: the tracker's id per tracklet [T].
        starts: common-clock time of the first box [T].
        ends: time of the last box [T].
        frames: boxes per tracklet [T].
        weights: :func:`~mtmct_reid.mtmc.descriptors.box_quality` of each box [N].
    """

    boxes: Boxes
    box_tracklet: np.ndarray
    cams: np.ndarray
    local_ids: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    frames: np.ndarray
    weights: np.ndarray

    def __len__(self) -> int:
        return int(self.cams.size)


def group_tracklets(
    root: MTMCRoot,
    boxes: Boxes,
    *,
    min_height: float | None = None,
    max_overlap: float | None = None,
    split_gap: float | None = None,
) -> RootTracklets:
    """Group a root's track boxes into tracklets (one per camera and local id).

    Args:
        root: the root (for the cameras' clocks).
        boxes: track boxes of the root's cameras.
        min_height: boxes lower than this get weight 0 (default of ``box_quality``).
        max_overlap: boxes more covered than this get weight 0.
        split_gap: seconds without a box after which the same id is a new visit (ground truth
            keeps one id per person across visits of a camera); None keeps one tracklet per id.

    Raises:
        ReIDError: a box of a camera the root lacks, or no box at all.
    """
    if len(boxes) == 0:
        raise ReIDError(f"{root.path}: the tracks have no box in any camera")
    boxes = boxes.sorted()
    times = root.times(boxes)  # raises naming a camera the root lacks
    # Tracklet = one (camera, id) run of boxes; a pause longer than split_gap starts a new visit.
    order = np.lexsort((times, boxes.ids, boxes.cams))
    cams_o, ids_o, times_o = boxes.cams[order], boxes.ids[order], times[order]
    new = np.ones(order.size, dtype=bool)
    new[1:] = (cams_o[1:] != cams_o[:-1]) | (ids_o[1:] != ids_o[:-1])
    if split_gap is not None:
        new[1:] |= np.diff(times_o) > split_gap
    box_tracklet = np.empty(order.size, dtype=np.int64)
    box_tracklet[order] = np.cumsum(new) - 1
    t = int(new.sum())
    pairs = np.stack([cams_o[new], ids_o[new]], axis=1)
    starts = times_o[new]
    ends = np.full(t, -np.inf)
    np.maximum.at(ends, box_tracklet, times)
    options = {}
    if min_height is not None:
        options["min_height"] = min_height
    if max_overlap is not None:
        options["max_overlap"] = max_overlap
    weights = np.zeros(len(boxes))
    for cam in np.unique(boxes.cams).tolist():
        sel = np.flatnonzero(boxes.cams == cam)
        weights[sel] = box_quality(boxes.frames[sel], boxes.xywh[sel], **options)
    empty = [c for c in root.camera_ids.tolist() if c not in set(pairs[:, 0].tolist())]
    if empty:
        log.warning("cameras without any track box: %s", ", ".join(map(str, empty)))
    return RootTracklets(
        boxes=boxes,
        box_tracklet=box_tracklet,
        cams=pairs[:, 0].astype(np.int64),
        local_ids=pairs[:, 1].astype(np.int64),
        starts=starts,
        ends=ends,
        frames=np.bincount(box_tracklet, minlength=t),
        weights=weights,
    )


def sample_boxes(box_tracklet: np.ndarray, weights: np.ndarray, per_tracklet: int) -> np.ndarray:
    """Indices of at most ``per_tracklet`` boxes per tracklet: the best-weighted box of each of
    ``per_tracklet`` equal stretches of the track (so the samples span it).

    Example:
        >>> sample_boxes(np.array([0, 0, 0, 0, 1]), np.array([0.1, 0.9, 0.5, 0.2, 0.0]), 2).tolist()
        [1, 2, 4]
    """
    if per_tracklet < 1:
        raise ReIDError(f"crops per tracklet must be >= 1, got {per_tracklet}")
    order = np.argsort(box_tracklet, kind="stable")
    tracklet = box_tracklet[order]
    first = np.searchsorted(tracklet, tracklet, side="left")
    count = np.bincount(tracklet)[tracklet]
    position = np.arange(order.size) - first
    stretch = (position * per_tracklet) // count
    key = tracklet * per_tracklet + stretch
    # Best weight within each (tracklet, stretch); ties to the earliest box.
    best = np.lexsort((position, -weights[order], key))
    keep = np.ones(best.size, dtype=bool)
    keep[1:] = key[best][1:] != key[best][:-1]
    return np.sort(order[best[keep]])


def box_features(
    root: MTMCRoot,
    boxes: Boxes,
    embed: Callable[[list[Any]], np.ndarray],
    *,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Features of every box's crop, read from the frames in batches (each camera's frames once).

    Args:
        root: the root with frames or videos.
        boxes: the boxes to crop.
        embed: PIL images -> features [B, D] (e.g. a :class:`~mtmct_reid.features.FeatureExtractor`).
        batch_size: crops per batch.
        progress: show a progress bar.
    """
    from PIL import Image
    from tqdm import tqdm

    out: np.ndarray | None = None
    with tqdm(total=len(boxes), desc="crops", unit="crop", disable=not progress) as bar:
        for batch in root.iter_crops(boxes, batch_size=batch_size):
            feats = np.asarray(embed([Image.fromarray(image) for image in batch.images]))
            if out is None:
                out = np.zeros((len(boxes), feats.shape[1]), dtype=np.float32)
            out[batch.rows] = feats
            bar.update(len(batch.rows))
    if out is None:
        raise ReIDError(f"{root.path}: no box to crop")
    return out


def describe_tracklets(
    root: MTMCRoot,
    grouped: RootTracklets,
    embed: Callable[[list[Any]], np.ndarray],
    *,
    per_tracklet: int = DEFAULT_CROPS_PER_TRACKLET,
    batch_size: int = 64,
    progress: bool = False,
) -> Tracklets:
    """The :class:`~mtmct_reid.mtmc.associate.Tracklets` of a root: sampled crops embedded, one
    quality-weighted descriptor per tracklet."""
    picked = sample_boxes(grouped.box_tracklet, grouped.weights, per_tracklet)
    feats = box_features(
        root, grouped.boxes.select(picked), embed, batch_size=batch_size, progress=progress
    )
    descriptors = tracklet_descriptors(
        feats, grouped.box_tracklet[picked], grouped.weights[picked], len(grouped)
    )
    return Tracklets(grouped.cams, grouped.starts, grouped.ends, descriptors)


def global_ids(labels: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Global ids 1..G for cluster labels, numbered by each identity's first entry time.

    Example:
        >>> global_ids(np.array([0, 1, 0]), np.array([9.0, 3.0, 1.0])).tolist()
        [1, 2, 1]
    """
    labels = np.asarray(labels)
    count = int(labels.max()) + 1 if labels.size else 0
    first = np.full(count, np.inf)
    np.minimum.at(first, labels, starts)
    rank = np.empty(count, dtype=np.int64)
    rank[np.lexsort((np.arange(count), first))] = np.arange(1, count + 1)
    return rank[labels]


# ----------------------------------------------------------------------------------------------
# Output files


def identities_table(grouped: RootTracklets, gids: np.ndarray) -> str:
    """``identities.csv``: one row per tracklet, ordered by global id then entry time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(IDENTITY_FIELDS)
    for t in np.lexsort((grouped.starts, gids)).tolist():
        writer.writerow(
            [
                int(gids[t]),
                int(grouped.cams[t]),
                int(grouped.local_ids[t]),
                f"{grouped.starts[t]:.3f}",
                f"{grouped.ends[t]:.3f}",
                int(grouped.frames[t]),
            ]
        )
    return buffer.getvalue()


def global_boxes(grouped: RootTracklets, gids: np.ndarray) -> Boxes:
    """The track boxes with their global ids."""
    return grouped.boxes.replace(ids=gids[grouped.box_tracklet])


def write_tracking_outputs(
    out: Path, root: MTMCRoot, grouped: RootTracklets, gids: np.ndarray, summary: dict[str, Any]
) -> list[Path]:
    """Write ``tracks/<camera>.txt``, ``mtmc.txt``, ``identities.csv`` and ``summary.json`` (each
    atomically)."""
    from mtmct_reid._io import write_json

    boxes = global_boxes(grouped, gids)
    written = []
    for camera in root.cameras:
        path = out / "tracks" / f"{camera.name}.txt"
        written.append(write_mot(path, boxes.camera(camera.id), kind="tracks"))
    written.append(write_aicity(out / "mtmc.txt", boxes))
    path = out / "identities.csv"
    write_text(path, identities_table(grouped, gids))
    written.append(path)
    path = out / "summary.json"
    write_json(path, summary)
    written.append(path)
    return written


def plot_timeline(
    grouped: RootTracklets, gids: np.ndarray, out: Path, *, max_rows: int = 80
) -> Path:
    """``timeline.png``: one row per identity (the ``max_rows`` seen in most cameras when there are
    more), one span per camera visit, coloured by camera."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cameras = np.unique(grouped.cams)
    colours = plt.get_cmap("tab10" if cameras.size <= 10 else "tab20")
    colour = {int(c): colours(i % colours.N) for i, c in enumerate(cameras.tolist())}
    ids = np.unique(gids)
    visited = np.array([np.unique(grouped.cams[gids == g]).size for g in ids])
    shown = ids[np.sort(np.argsort(-visited, kind="stable")[:max_rows])]
    row = {int(g): i for i, g in enumerate(shown.tolist())}
    height = 1.2 + 0.22 * len(shown)
    fig, ax = plt.subplots(figsize=(11, min(height, 40)))
    for t in range(len(grouped)):
        g = int(gids[t])
        if g not in row:
            continue
        ax.barh(
            row[g],
            max(grouped.ends[t] - grouped.starts[t], 0.5),
            left=grouped.starts[t],
            height=0.7,
            color=colour[int(grouped.cams[t])],
            edgecolor="black",
            linewidth=0.3,
        )
    ids_font = 8 if len(shown) <= 60 else 6  # legible at a glance; crowded timelines go smaller
    ax.set_yticks(range(len(shown)), [str(g) for g in shown.tolist()], fontsize=ids_font)
    ax.invert_yaxis()
    ax.set_xlabel("time on the common clock (s)")
    ax.set_ylabel("global id")
    title = f"{ids.size} identities over {cameras.size} cameras"
    if ids.size > len(shown):
        title += f" (the {len(shown)} seen in most cameras)"
    ax.set_title(title)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[c]) for c in colour]
    ax.legend(handles, [f"camera {c}" for c in colour], loc="upper right", fontsize=7, ncol=2)
    fig.tight_layout()
    path = out / "timeline.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def plot_journey(
    root: MTMCRoot, grouped: RootTracklets, gids: np.ndarray, gid: int, out: Path
) -> Path:
    """``journey_<gid>.png``: one identity's visits in time order, each as its best crop with the
    camera and the entry and exit times."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    visits = np.flatnonzero(gids == gid)
    visits = visits[np.argsort(grouped.starts[visits])]
    picks = []
    for t in visits.tolist():
        boxes = np.flatnonzero(grouped.box_tracklet == t)
        picks.append(int(boxes[np.argmax(grouped.weights[boxes] * grouped.boxes.h[boxes])]))
    crops: dict[int, np.ndarray] = {}
    chosen = grouped.boxes.select(np.asarray(picks, dtype=np.int64))
    for batch in root.iter_crops(chosen, batch_size=len(picks)):
        for row, image in zip(batch.rows.tolist(), batch.images, strict=True):
            crops[row] = image
    fig, axes = plt.subplots(1, len(picks), figsize=(1.6 * len(picks) + 0.4, 3.2), squeeze=False)
    for k, (ax, t) in enumerate(zip(axes[0], visits.tolist(), strict=True)):
        ax.imshow(crops[k])
        ax.set_title(
            f"camera {int(grouped.cams[t])}\n{grouped.starts[t]:.1f}–{grouped.ends[t]:.1f} s",
            fontsize=8,
        )
        ax.axis("off")
    fig.suptitle(f"global id {gid}: {len(picks)} visits", fontsize=9)
    fig.tight_layout()
    path = out / f"journey_{gid}.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def journey_ids(grouped: RootTracklets, gids: np.ndarray, count: int = 3) -> list[int]:
    """The ``count`` identities seen in most cameras (then most visits), for journey pictures."""
    ids = np.unique(gids)
    cameras = np.array([np.unique(grouped.cams[gids == g]).size for g in ids])
    visits = np.bincount(gids)[ids]
    order = np.lexsort((ids, -visits, -cameras))
    return [int(g) for g in ids[order[:count]]]


# ----------------------------------------------------------------------------------------------
# Putting it together

#: Seconds without a box after which a ground-truth id starts a new visit of the same camera.
VISIT_GAP = 2.0


def read_tracks(root: MTMCRoot, name: str | None) -> Boxes:
    """The single-camera tracks to associate: ``tracks/NAME.txt`` (or ``gt``) of every camera; by
    default the ByteTrack tracks ``track-sct`` wrote, or, when there are none, ByteTrack run here
    over the detections as ``track-sct`` does (nothing is written into the root).

    Raises:
        ReIDError: no camera has the tracks (or, by default, neither tracks nor detections).
    """
    if name is None:
        if TRACKS_NAME in root.sources():
            return root.read_boxes(TRACKS_NAME)
        from mtmct_reid.mtmc.root import DET
        from mtmct_reid.mtmc.sct import track_root

        if DET not in root.sources():
            raise ReIDError(
                f"{root.path}: no single-camera tracks and no detections to track; pass --tracks "
                "NAME (a tracks/NAME.txt of each camera, or gt)"
            )
        log.info("no %s tracks in %s: running ByteTrack over det/det.txt", TRACKS_NAME, root.path)
        return track_root(root, name=None)
    return root.read_boxes(name)


def labelled_tracklets(
    root: MTMCRoot, visit_gap: float = VISIT_GAP
) -> tuple[RootTracklets, np.ndarray]:
    """The ground truth's visits as tracklets, and the true identity of each."""
    from mtmct_reid.mtmc.root import GT

    grouped = group_tracklets(root, root.read_boxes(GT), split_gap=visit_gap)
    return grouped, grouped.local_ids


def fit_transit_from_root(
    root: MTMCRoot,
    *,
    visit_gap: float = VISIT_GAP,
    **options: float,
) -> Any:
    """A transit-time model (seconds) from the ground truth of a labelled root: the gaps between
    consecutive visits of each identity.

    Args:
        root: a root with ``gt/gt.txt`` (ids global across cameras).
        visit_gap: seconds without a box that split one id's stay in a camera into two visits.
        options: ``bin_width``, ``sigma_bins``, ``truncate`` of
            :func:`~mtmct_reid.mtmc.transit_fit.fit_transit_from_visits`.
    """
    from mtmct_reid.mtmc.transit_fit import fit_transit_from_visits

    grouped, truth = labelled_tracklets(root, visit_gap)
    return fit_transit_from_visits(
        truth,
        grouped.cams,
        grouped.starts,
        grouped.ends,
        camera_ids=root.camera_ids,
        **options,
    )


def cut_threshold(
    train: Tracklets,
    truth: np.ndarray,
    frames: np.ndarray,
    *,
    transit: Any = None,
    neighbours: int | None = None,
) -> tuple[float, float]:
    """The stop threshold with the best IDF1 on labelled tracklets (a training period), for the
    given transit-time model (None: appearance only). Returns (threshold, training IDF1)."""
    from mtmct_reid.mtmc.associate import DEFAULT_NEIGHBOURS, build_dendrogram
    from mtmct_reid.mtmc.threshold import choose_threshold

    dendrogram = build_dendrogram(
        train,
        transit=transit,
        threshold=0.05,
        neighbours=neighbours or DEFAULT_NEIGHBOURS,
    )
    return choose_threshold(dendrogram, truth, frames)

"""Single-camera tracking: ByteTrack (Roboflow's ``trackers``) over each camera's detections.

Each camera is tracked on its own with its own frame rate; the result keeps every detection a track
claimed, with the track's local id (1, 2, ... per camera), and drops the detections no track took.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import numpy as np

from mtmct_reid.errors import ReIDError
from mtmct_reid.mtmc.root import DET, Boxes, MTMCRoot
from mtmct_reid.validation import as_float, as_int

log = logging.getLogger(__name__)

#: Name of the tracks files :func:`track_root` writes (``<camera>/tracks/bytetrack.txt``).
TRACKS_NAME = "bytetrack"


@dataclass(frozen=True)
class ByteTrackParams:
    """ByteTrack's settings (the names of ``trackers.ByteTrackTracker``'s arguments).

    Args:
        lost_track_buffer: how long a lost track waits for its person, in frames at 30 fps.
        track_activation_threshold: confidence a detection needs to start a track.
        minimum_consecutive_frames: frames a track must be matched before it gets an id.
        minimum_iou_threshold: IoU between a track's predicted box and a detection to match.
        high_conf_det_threshold: detections at or above it are matched first; the rest only
            continue tracks.
    """

    lost_track_buffer: int = 30
    track_activation_threshold: float = 0.5
    minimum_consecutive_frames: int = 2
    minimum_iou_threshold: float = 0.1
    high_conf_det_threshold: float = 0.5

    def validate(self) -> None:
        """Raise :class:`ReIDError` on a setting ByteTrack cannot use; keep the checked numbers
        (``"30"`` from a config becomes 30), so ByteTrack gets plain ints and floats.

        Example:
            >>> params = ByteTrackParams(lost_track_buffer="45")
            >>> params.validate()
            >>> params.lost_track_buffer
            45
        """
        checked = {
            "lost_track_buffer": as_int("lost track buffer", self.lost_track_buffer, minimum=0),
            "minimum_consecutive_frames": as_int(
                "minimum consecutive frames", self.minimum_consecutive_frames, minimum=1
            ),
        }
        for name in (
            "track_activation_threshold",
            "minimum_iou_threshold",
            "high_conf_det_threshold",
        ):
            checked[name] = as_float(name.replace("_", " "), getattr(self, name), 0, 1)
        for name, value in checked.items():
            # Frozen: the checked value replaces the given one in place of a second object.
            object.__setattr__(self, name, value)


def _bytetrack(params: ByteTrackParams, fps: float):
    try:
        import supervision as sv
        from trackers import ByteTrackTracker
    except ImportError:
        raise ReIDError(
            "single-camera tracking needs Roboflow's trackers package: pip install 'mtmct-reid[video]'"
        ) from None
    return sv, ByteTrackTracker(frame_rate=fps, **asdict(params))


def track_camera(
    detections: Boxes,
    fps: float,
    params: ByteTrackParams | None = None,
    last_frame: int | None = None,
) -> Boxes:
    """Run ByteTrack over one camera's detections, frame by frame.

    Args:
        detections: boxes of one camera (ids ignored), with their confidences.
        fps: the camera's frame rate (ByteTrack scales how long it keeps a lost track).
        params: ByteTrack's settings (default :class:`ByteTrackParams`).
        last_frame: frames to step through (default the last frame with a detection); frames with
            no detection still age the tracks.

    Returns:
        The detections a track claimed, with the track's id (1, 2, ... in order of creation),
        sorted by frame then id.

    Example:
        >>> det = Boxes.from_columns(cams=[1] * 4, frames=[1, 2, 3, 4], ids=[-1] * 4,
        ...                          x=[10, 12, 14, 16], y=[5] * 4, w=[20] * 4, h=[40] * 4,
        ...                          conf=[0.9] * 4)
        >>> tracks = track_camera(det, fps=10.0)  # a track gets its id on its 2nd matched frame
        >>> tracks.frames.tolist(), tracks.ids.tolist()
        ([2, 3, 4], [1, 1, 1])
    """
    params = params or ByteTrackParams()
    params.validate()
    if len(np.unique(detections.cams)) > 1:
        raise ValueError("track_camera: detections of more than one camera")
    sv, tracker = _bytetrack(params, fps)
    order = np.argsort(detections.frames, kind="stable")
    frames = detections.frames[order]
    last = int(frames.max(initial=0)) if last_frame is None else int(last_frame)
    bounds = np.searchsorted(frames, np.arange(1, last + 2))
    xyxy = detections.xyxy
    kept_rows, kept_ids = [], []
    for t in range(last):
        rows = order[bounds[t] : bounds[t + 1]]
        dets = sv.Detections(
            xyxy=xyxy[rows].reshape(-1, 4),
            confidence=detections.conf[rows].astype(np.float32),
            data={"row": rows},
        )
        out = tracker.update(dets)
        if len(out) == 0:  # an empty result carries no data columns
            continue
        claimed = out.tracker_id >= 0
        kept_rows.append(np.asarray(out.data["row"], dtype=np.int64)[claimed])
        kept_ids.append(np.asarray(out.tracker_id, dtype=np.int64)[claimed])
    rows = np.concatenate(kept_rows) if kept_rows else np.zeros(0, dtype=np.int64)
    ids = np.concatenate(kept_ids) if kept_ids else np.zeros(0, dtype=np.int64)
    tracks = detections.select(rows).replace(ids=_renumber(ids))
    return tracks.select(np.lexsort((tracks.ids, tracks.frames)))


def _renumber(ids: np.ndarray) -> np.ndarray:
    """Ids 1, 2, ... in order of first appearance (ByteTrack's counter is shared by its instances)."""
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(1, len(first) + 1)
    return rank[inverse.reshape(-1)]


def track_root(
    root: MTMCRoot,
    detections: str = DET,
    params: ByteTrackParams | None = None,
    name: str | None = TRACKS_NAME,
) -> Boxes:
    """Track every camera of a root and (unless ``name`` is None) write ``<camera>/tracks/NAME.txt``.

    Args:
        root: the network.
        detections: the box source to track (``"det"``, or ``"gt"`` to track ground-truth boxes).
        params: ByteTrack's settings.
        name: tracks file name to write, or None to write nothing.

    Returns:
        The tracks of every camera (local ids per camera), sorted.
    """
    from tqdm.auto import tqdm

    det = root.read_boxes(detections)
    parts = []
    for cam in tqdm(root.camera_ids.tolist(), desc="track-sct", unit="camera", leave=False):
        camera = root.camera(cam)
        mine = det.camera(cam)
        tracks = track_camera(mine, camera.fps, params, last_frame=root.num_frames(cam))
        log.info(
            "camera %s: %d detections -> %d tracks over %d boxes",
            camera.name,
            len(mine),
            len(np.unique(tracks.ids)),
            len(tracks),
        )
        parts.append(tracks)
    all_tracks = Boxes.concat(parts).sorted()
    if name is not None:
        root.write_boxes(all_tracks, name)
    return all_tracks

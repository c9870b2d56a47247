"""``mtmct-reid track-sct``: single-camera tracks (ByteTrack) from each camera's detections."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtmct_reid.validation import arg_float, arg_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track-sct",
        help="ByteTrack per camera over det/det.txt, written to <camera>/tracks/bytetrack.txt",
        description=(
            "Run ByteTrack (Roboflow's trackers package) on each camera of an MTMC root, over its "
            "detections, and write <camera>/tracks/NAME.txt (MOTChallenge rows, ids local to the "
            "camera). With --evaluate, print IDF1/MOTA per camera against the root's gt."
        ),
    )
    parser.add_argument("root", type=Path, metavar="ROOT", help="MTMC root (cameras.csv, det/)")
    parser.add_argument(
        "--detections",
        default="det",
        metavar="NAME",
        help="box source to track: det (default), gt, or a tracks NAME",
    )
    parser.add_argument(
        "--name", default="bytetrack", metavar="NAME", help="tracks file to write (bytetrack)"
    )
    parser.add_argument(
        "--lost-track-buffer",
        type=arg_int(),
        default=30,
        metavar="N",
        help="frames (at 30 fps) a lost track waits for its person (30)",
    )
    parser.add_argument(
        "--activation",
        type=arg_float(),
        default=0.5,
        metavar="C",
        help="confidence a detection needs to start a track (0.5)",
    )
    parser.add_argument(
        "--high-conf",
        type=arg_float(),
        default=0.5,
        metavar="C",
        help="detections at or above it are matched first, the rest only extend tracks (0.5)",
    )
    parser.add_argument(
        "--min-iou", type=arg_float(), default=0.1, metavar="T", help="IoU to match a track (0.1)"
    )
    parser.add_argument(
        "--min-frames",
        type=arg_int(),
        default=2,
        metavar="N",
        help="matched frames before a track gets an id (2)",
    )
    parser.add_argument(
        "--evaluate", action="store_true", help="score the tracks against the root's gt"
    )
    parser.set_defaults(func=run_track_sct)


def run_track_sct(args: argparse.Namespace) -> int:
    import numpy as np

    from mtmct_reid.mtmc.root import GT, read_root
    from mtmct_reid.mtmc.sct import ByteTrackParams, track_root

    params = ByteTrackParams(
        lost_track_buffer=args.lost_track_buffer,
        track_activation_threshold=args.activation,
        minimum_consecutive_frames=args.min_frames,
        minimum_iou_threshold=args.min_iou,
        high_conf_det_threshold=args.high_conf,
    )
    params.validate()
    root = read_root(args.root)
    # Refuse a bad name before the work, not after.
    root.source_path(int(root.camera_ids[0]), args.name)
    tracks = track_root(root, detections=args.detections, params=params, name=args.name)
    for cam in root.camera_ids.tolist():
        mine = tracks.camera(cam)
        print(
            f"camera {root.camera(cam).name}: {len(np.unique(mine.ids))} tracks, {len(mine)} boxes "
            f"-> {root.source_path(cam, args.name)}"
        )
    if args.evaluate:
        from mtmct_reid.mtmc.metrics import evaluate_tracks

        gt = root.read_boxes(GT)
        # Local ids repeat across cameras; made distinct, the network row scores tracks that no
        # one has linked across cameras yet.
        distinct = tracks.replace(ids=tracks.cams * 10**9 + tracks.ids)
        scores = evaluate_tracks(distinct, gt, gt_times=root.times(gt))
        print(scores.format_table())
    return 0

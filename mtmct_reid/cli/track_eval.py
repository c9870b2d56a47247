"""``mtmct-reid track-eval``: score multi-camera tracks (per camera and for the network)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from mtmct_reid.validation import arg_float

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track-eval",
        help="IDF1/IDP/IDR/MOTA/HOTA per camera, multi-camera IDF1 and MCTA for the network",
        description=(
            "Compare predicted tracks with ground truth. PRED and GT are each an MTMC root (its "
            "gt/gt.txt or tracks/NAME.txt files) or an AI City file (camera_id obj_id frame_id xmin "
            "ymin width height xworld yworld). Per camera: IDF1, IDP, IDR, MOTA, HOTA; for the "
            "network the cameras are laid end to end by frame, as the AI City scorer does, for "
            "multi-camera IDF1/IDP/IDR, MOTA and HOTA, plus MCTA. Ground-truth rows with conf 0 "
            "(MOTChallenge's 'not scored') are left out."
        ),
    )
    parser.add_argument(
        "pred", type=Path, metavar="PRED", help="predicted tracks: root or AI City file"
    )
    parser.add_argument("gt", type=Path, metavar="GT", help="ground truth: root or AI City file")
    parser.add_argument(
        "--pred-tracks",
        default=None,
        metavar="NAME",
        help="which tracks/NAME.txt of a PRED root (default: its only tracks file, else gt)",
    )
    parser.add_argument(
        "--gt-source",
        default="gt",
        metavar="NAME",
        help="which files of a GT root: gt (default), or a tracks NAME",
    )
    parser.add_argument(
        "--iou",
        type=arg_float(0, 1, low_open=True),
        default=0.5,
        metavar="T",
        help="IoU of a match, in (0, 1] (0.5)",
    )
    parser.add_argument(
        "--local-ids",
        action="store_true",
        help=(
            "PRED's ids are per camera (a single-camera tracker's): the same number in two "
            "cameras is two identities"
        ),
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="OUT", help="write the scores as JSON"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing --json file of another kind"
    )
    parser.set_defaults(func=run_track_eval)


def run_track_eval(args: argparse.Namespace) -> int:
    from mtmct_reid._io import check_output, write_json
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.mtmc.metrics import evaluate_tracks
    from mtmct_reid.mtmc.root import DET, GT, is_root, read_aicity, read_root
    from mtmct_reid.mtmc.sct import TRACKS_NAME

    if args.json is not None:
        check_output(args.json, "--json", "json", inputs=(args.pred, args.gt), force=args.force)

    gt_root = None
    if is_root(args.gt):
        gt_root = read_root(args.gt)
        gt = gt_root.read_boxes(args.gt_source)
    elif args.gt.is_file():
        gt = read_aicity(args.gt)
    else:
        raise ReIDError(f"{args.gt}: neither an MTMC root (no cameras.csv) nor an AI City file")
    gt = gt.select(gt.conf != 0)
    cameras = gt_root.cameras if gt_root is not None else None

    if is_root(args.pred):
        pred_root = read_root(args.pred)
        source = args.pred_tracks
        if source is None:
            tracks = [s for s in pred_root.sources() if s not in (GT, DET)]
            if len(tracks) > 1:
                raise ReIDError(
                    f"{args.pred}: several tracks files ({', '.join(tracks)}); choose one with "
                    "--pred-tracks"
                )
            source = tracks[0] if tracks else GT
        pred = pred_root.read_boxes(source)
        if source == TRACKS_NAME and not args.local_ids:
            log.warning(
                "%s: tracks/%s.txt is track-sct's single-camera output, whose ids restart in each "
                "camera: the network scores count the same number in two cameras as one person; "
                "--local-ids scores them as different people",
                args.pred,
                source,
            )
    elif args.pred.is_file():
        pred = read_aicity(args.pred, cameras)
    else:
        raise ReIDError(f"{args.pred}: neither an MTMC root (no cameras.csv) nor an AI City file")
    if args.local_ids:
        if len(pred) and int(abs(pred.ids).max()) >= 10**9:
            raise ReIDError(f"{args.pred}: --local-ids needs ids below 10**9")
        pred = pred.replace(ids=pred.cams * 10**9 + pred.ids)
    if gt_root is not None:
        gt_root.times(pred)  # a predicted camera the ground truth's network lacks: one line, exit 2

    scores = evaluate_tracks(
        pred, gt, gt_times=None if gt_root is None else gt_root.times(gt), threshold=args.iou
    )
    print(scores.format_table())
    if args.json is not None:
        write_json(args.json, scores.to_json())
        print(f"wrote {args.json}")
    return 0

"""``mtmct-reid track``: one global identity per person across an MTMC root's cameras."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from mtmct_reid.validation import arg_float, arg_nonnegative_int, arg_positive_int

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="multi-camera tracking: associate single-camera tracks across cameras",
        description=(
            "Per camera, single-camera tracks (a tracks file, or the ByteTrack tracks of "
            "'track-sct') -> crops read from the frames in batches -> features with the trained "
            "model -> one quality-weighted descriptor per tracklet -> pair scores of tracklets of "
            "different cameras (cosine fused with the transit-time probability of the gap) -> "
            "average-linkage clustering with cannot-link constraints -> one global id per person. "
            "Writes tracks/<camera>.txt, mtmc.txt (AI City), identities.csv, timeline.png, "
            "journey_<id>.png and summary.json in OUT."
        ),
    )
    parser.add_argument("root", type=Path, metavar="ROOT", help="MTMC root (cameras.csv, frames)")
    parser.add_argument(
        "--checkpoint", type=Path, required=True, metavar="CKPT", help="from 'mtmct-reid train'"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="OUT", help="output folder")
    parser.add_argument(
        "--st-model",
        type=Path,
        default=None,
        metavar="ST.npz",
        help="transit-time model on the common clock (seconds), from 'mtmct-reid st fit ROOT'; "
        "without it, appearance only",
    )
    parser.add_argument(
        "--tracks",
        default=None,
        metavar="NAME",
        help="tracks/NAME.txt of each camera, or gt (default: bytetrack, from 'track-sct')",
    )
    parser.add_argument(
        "--threshold",
        type=arg_float(0.0, 1.0, low_open=True, high_open=True),
        default=None,
        metavar="T",
        help="stop linkage in (0, 1) (default: the best on the labelled training period)",
    )
    parser.add_argument(
        "--train",
        type=Path,
        default=None,
        metavar="TRAIN",
        help="labelled MTMC root of a training period, to choose the threshold (default: "
        "ROOT/../train when it exists, as 'synth --video' writes)",
    )
    parser.add_argument(
        "--eval",
        type=Path,
        default=None,
        metavar="GT",
        help="score the result against GT (an MTMC root with gt, or an AI City file)",
    )
    parser.add_argument(
        "--modes",
        action="store_true",
        help="with --eval: also compare appearance only, + labelled transit-time model and + "
        "bootstrapped transit-time model in one table (modes.json)",
    )
    parser.add_argument(
        "--crops-per-tracklet",
        type=arg_positive_int,
        default=8,
        metavar="K",
        help="boxes cropped and embedded per tracklet (8)",
    )
    parser.add_argument(
        "--neighbours", type=arg_positive_int, default=30, help="candidate pairs per tracklet (30)"
    )
    parser.add_argument(
        "--journeys", type=arg_nonnegative_int, default=3, help="journey pictures to draw (3)"
    )
    parser.add_argument("--batch-size", type=arg_positive_int, default=64, help="crops per batch")
    parser.add_argument(
        "--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N"
    )
    parser.set_defaults(func=run_track)


def _train_root(args: argparse.Namespace):
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.mtmc.root import GT, is_root, read_root

    path = args.train
    if path is None:
        sibling = args.root.resolve().parent / "train"
        if sibling != args.root.resolve() and is_root(sibling):
            path = sibling
            log.info("threshold chosen on the training period %s", path)
    if path is None:
        raise ReIDError(
            f"{args.root}: no --threshold and no labelled training period (--train TRAIN, or a "
            "'train' root beside ROOT) to choose it on"
        )
    train = read_root(path)
    if GT not in train.sources():
        raise ReIDError(f"--train {path}: no gt/gt.txt in any camera (a labelled root is needed)")
    return train


def _read_ground_truth(path: Path, root):
    from mtmct_reid.mtmc.root import GT, is_aicity_file, read_aicity, read_root

    if is_aicity_file(path):
        return read_aicity(path, root.cameras)
    gt_root = read_root(path)
    return gt_root.read_boxes(GT)


def run_track(args: argparse.Namespace) -> int:
    import numpy as np

    from mtmct_reid._io import check_output
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.mtmc.associate import build_dendrogram, check_threshold, check_transit_clock
    from mtmct_reid.mtmc.modes import format_modes
    from mtmct_reid.mtmc.root import read_root
    from mtmct_reid.mtmc.tracking import (
        describe_tracklets,
        fit_transit_from_root,
        global_boxes,
        global_ids,
        group_tracklets,
        journey_ids,
        labelled_tracklets,
        plot_journey,
        plot_timeline,
        read_tracks,
        write_tracking_outputs,
    )
    from mtmct_reid.retrieval.transit import TransitTimeModel

    check_output(args.out, "--out", "folder")
    start = time.perf_counter()
    threshold = None if args.threshold is None else check_threshold(args.threshold)
    if args.modes and args.eval is None:
        raise ReIDError("--modes needs --eval GT to score each mode")
    if args.out.exists() and not args.out.is_dir():
        raise ReIDError(f"--out {args.out}: exists and is not a folder")
    root = read_root(args.root)
    transit = TransitTimeModel.load(args.st_model) if args.st_model is not None else None
    if transit is not None:
        check_transit_clock(transit, str(args.st_model))
    gt = _read_ground_truth(args.eval, root) if args.eval is not None else None
    grouped = group_tracklets(root, read_tracks(root, args.tracks))
    train_root = _train_root(args) if threshold is None or args.modes else None

    extractor = _extractor(args)
    tracklets = describe_tracklets(
        root,
        grouped,
        extractor,
        per_tracklet=args.crops_per_tracklet,
        batch_size=args.batch_size,
        progress=True,
    )
    train = None
    if train_root is not None:
        train_grouped, truth = labelled_tracklets(train_root)
        train_tracklets = describe_tracklets(
            train_root,
            train_grouped,
            extractor,
            per_tracklet=args.crops_per_tracklet,
            batch_size=args.batch_size,
            progress=True,
        )
        train = (train_tracklets, truth, train_grouped.frames)

    def cluster(model, fixed):
        from mtmct_reid.mtmc.tracking import cut_threshold

        chosen, train_idf1 = fixed, None
        if chosen is None:
            chosen, train_idf1 = cut_threshold(*train, transit=model, neighbours=args.neighbours)
        labels = build_dendrogram(
            tracklets, transit=model, threshold=chosen, neighbours=args.neighbours, progress=True
        ).labels(chosen)
        return global_ids(labels, tracklets.starts), chosen, train_idf1

    gids, threshold_used, train_idf1 = cluster(transit, threshold)
    summary = {
        "root": str(args.root),
        "checkpoint": str(args.checkpoint),
        "tracks": args.tracks or "bytetrack",
        "st_model": None if args.st_model is None else str(args.st_model),
        "threshold": threshold_used,
        "threshold_from": "--threshold" if threshold is not None else "training period",
        "training_idf1": train_idf1,
        "cameras": int(root.camera_ids.size),
        "boxes": len(grouped.boxes),
        "tracklets": len(grouped),
        "identities": int(gids.max()) if gids.size else 0,
    }
    scores_text = None
    if gt is not None:
        from mtmct_reid.mtmc.metrics import evaluate_tracks

        scores = evaluate_tracks(global_boxes(grouped, gids), gt, root.times(gt))
        summary["eval"] = scores.to_json()
        scores_text = scores.format_table()
    modes_text = None
    if args.modes:
        from mtmct_reid.mtmc.modes import compare_modes

        rows = compare_modes(
            root,
            grouped,
            tracklets,
            gt,
            labelled=transit if transit is not None else fit_transit_from_root(train_root),
            train=train,
            threshold=threshold,
            neighbours=args.neighbours,
        )
        summary["modes"] = rows
        modes_text = format_modes(rows)
    summary["seconds"] = round(time.perf_counter() - start, 2)

    args.out.mkdir(parents=True, exist_ok=True)
    write_tracking_outputs(args.out, root, grouped, gids, summary)
    plot_timeline(grouped, gids, args.out)
    for stale in args.out.glob("journey_*.png"):  # of an earlier run into the same folder
        stale.unlink()
    pictures = [
        plot_journey(root, grouped, gids, gid, args.out)
        for gid in journey_ids(grouped, gids, max(0, args.journeys))
    ]
    if modes_text is not None:
        from mtmct_reid._io import write_json

        write_json(args.out / "modes.json", {"modes": summary["modes"]})
    else:  # an earlier run's table would sit beside this run's summary as if it were its own
        (args.out / "modes.json").unlink(missing_ok=True)
    print(
        f"{summary['tracklets']} tracklets of {summary['cameras']} cameras -> "
        f"{summary['identities']} identities (threshold {threshold_used:.3g}, "
        f"{summary['threshold_from']}), {np.round(summary['seconds'], 1)} s"
    )
    if scores_text is not None:
        print(scores_text)
    if modes_text is not None:
        print(modes_text)
    print(
        f"wrote {args.out} (tracks/, mtmc.txt, identities.csv, timeline.png, "
        f"{len(pictures)} journey picture(s), summary.json)"
    )
    return 0


def _extractor(args: argparse.Namespace):
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.features import FeatureExtractor
    from mtmct_reid.models.checkpoint import load_model_from_checkpoint

    model, hparams = load_model_from_checkpoint(args.checkpoint)
    if "image_size" not in hparams:
        raise ReIDError(f"{args.checkpoint}: checkpoint does not record its image size")
    return FeatureExtractor(
        model, hparams["image_size"], batch_size=args.batch_size, device=args.device
    )


# ----------------------------------------------------------------------------------------------
# `st fit ROOT`: the transit-time model of an MTMC root


def add_root_fit_arguments(fit: argparse.ArgumentParser) -> None:
    """Options of ``st fit`` for an MTMC root (``cameras.csv``)."""
    group = fit.add_argument_group(
        "MTMC root",
        "DATA may be an MTMC root: labelled, the gaps between consecutive visits of each gt id "
        "(exit -> entry on the common clock, seconds); with --from-matches, no labels: "
        "bootstrapped from confident cross-camera matches of the tracks' features.",
    )
    group.add_argument(
        "--from-matches",
        action="store_true",
        help="fit without labels from mutual nearest tracklets whose gaps form a peak "
        "(needs --checkpoint)",
    )
    group.add_argument("--checkpoint", type=Path, default=None, metavar="CKPT")
    group.add_argument(
        "--tracks", default=None, metavar="NAME", help="tracks to match (default: bytetrack)"
    )
    group.add_argument(
        "--min-similarity",
        type=arg_float(-1.0, 1.0),
        default=0.5,
        metavar="S",
        help="cosine a confident match needs (0.5)",
    )
    group.add_argument(
        "--rounds",
        type=arg_positive_int,
        default=5,
        help="most fits; stops earlier when the matches repeat (5)",
    )
    group.add_argument("--device", default="auto", help="for --from-matches")
    group.add_argument("--batch-size", type=arg_positive_int, default=64, help="crops per batch")


def run_root_fit(args: argparse.Namespace) -> int:
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.mtmc.root import read_root
    from mtmct_reid.mtmc.tracking import (
        describe_tracklets,
        fit_transit_from_root,
        group_tracklets,
        read_tracks,
    )
    from mtmct_reid.mtmc.transit_fit import (
        DEFAULT_BIN_WIDTH,
        DEFAULT_SIGMA_BINS,
        bootstrap_transit,
    )

    options = {
        "bin_width": DEFAULT_BIN_WIDTH if args.bin_width is None else args.bin_width,
        "sigma_bins": DEFAULT_SIGMA_BINS if args.sigma is None else args.sigma,
        "truncate": args.truncate,
    }
    root = read_root(args.data)
    if args.from_matches:
        if args.checkpoint is None:
            raise ReIDError("--from-matches needs --checkpoint CKPT to describe the tracks")
        grouped = group_tracklets(root, read_tracks(root, args.tracks))
        tracklets = describe_tracklets(
            root, grouped, _extractor(args), batch_size=args.batch_size, progress=True
        )
        model = bootstrap_transit(
            tracklets,
            min_similarity=args.min_similarity,
            rounds=args.rounds,
            camera_ids=root.camera_ids,
            **options,
        )
        how = (
            f"bootstrapped from {len(grouped)} unlabelled tracklets, at most {args.rounds} round(s)"
        )
    else:
        model = fit_transit_from_root(root, **options)
        how = "fitted on the gaps between consecutive gt visits"
    model.save(args.out)
    c = model.num_cameras
    print(f"{how}: {c} cameras, {model.num_observed_pairs} of {c * (c - 1)} camera pairs observed")
    print(f"{model.num_bins} bins of {model.bin_width:g} s, smoothing σ {model.sigma_bins:g} bins")
    print(f"wrote {args.out}")
    return 0

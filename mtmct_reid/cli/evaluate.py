"""``mtmct-reid evaluate``: mAP / CMC / mINP of a features file, visual and with ST and re-ranking."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from mtmct_reid.validation import arg_float, arg_positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    from mtmct_reid.retrieval.metrics import PROTOCOLS  # numpy only

    parser = subparsers.add_parser(
        "evaluate",
        help="rank the gallery for every query of a features file and report mAP, CMC, mINP",
        description=(
            "Evaluate query/gallery features (as written by 'mtmct-reid extract') in the st-ReID "
            "modes: visual (cosine), visual+st (with --st-model: logistic fusion with the transit-"
            "time probability), visual+rerank and visual+st+rerank (with --rerank: k-reciprocal "
            "re-ranking). Gallery images of the query's id from the query's own camera, and id -1, "
            "are ignored; queries without a match from another camera are skipped (standard) or "
            "counted as misses (streid). Prints one row per mode in percent."
        ),
    )
    parser.add_argument("features", type=Path, help="features file (.npz)")
    parser.add_argument(
        "--st-model",
        type=Path,
        default=None,
        metavar="ST.npz",
        help="transit-time model from 'mtmct-reid st fit'",
    )
    parser.add_argument("--rerank", action="store_true", help="add k-reciprocal re-ranked modes")
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        default="standard",
        help="standard: non-interpolated AP over queries with a match; streid: trapezoid AP "
        "over all queries, as the st-ReID code reports (standard)",
    )
    parser.add_argument(
        "--json", type=Path, default=None, metavar="OUT.json", help="also write the figures as JSON"
    )
    rerank = parser.add_argument_group("re-ranking")
    rerank.add_argument(
        "--k1", type=arg_positive_int, default=20, help="reciprocal neighbourhood size (20)"
    )
    rerank.add_argument("--k2", type=arg_positive_int, default=6, help="query expansion size (6)")
    rerank.add_argument(
        "--lambda-value",
        type=arg_float(0, 1),
        default=0.3,
        help="weight of the original distance (0.3)",
    )
    fusion = parser.add_argument_group("spatial-temporal fusion: 1/(1+λ·exp(−γ·x)) per cue")
    fusion.add_argument(
        "--lambda0", type=arg_float(0, low_open=True), default=1.0, help="λ of the visual cue (1)"
    )
    fusion.add_argument("--gamma0", type=arg_float(), default=5.0, help="γ of the visual cue (5)")
    fusion.add_argument(
        "--lambda1", type=arg_float(0, low_open=True), default=2.0, help="λ of the ST cue (2)"
    )
    fusion.add_argument("--gamma1", type=arg_float(), default=5.0, help="γ of the ST cue (5)")
    parser.add_argument(
        "--chunk-size", type=arg_positive_int, default=512, help="score rows computed at once (512)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--force", action="store_true", help="overwrite an existing output file of another kind"
    )
    parser.set_defaults(func=run_evaluate)


def run_evaluate(args: argparse.Namespace) -> int:
    # Before torch starts its OpenMP threads: idle ones sleep instead of spinning. The evaluation
    # alternates between numpy's BLAS and torch's kernels, and spinning threads of one pool take the
    # cores from the other (a quarter of the CPU time on 2 cores). Results do not depend on it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from mtmct_reid._io import check_output, require_file, write_json
    from mtmct_reid.featureset import FeatureSet
    from mtmct_reid.retrieval.evaluate import evaluate_featureset, stacked_featureset
    from mtmct_reid.retrieval.fusion import FusionParams

    if args.json is not None:
        check_output(
            args.json, "--json", "json", inputs=(args.features, args.st_model), force=args.force
        )
    fusion = FusionParams(
        lambda0=args.lambda0, gamma0=args.gamma0, lambda1=args.lambda1, gamma1=args.gamma1
    )
    if args.st_model is not None:
        require_file(args.st_model, "--st-model", "transit-time model file")
    # One array for the query and gallery rows: evaluation normalises it in place, no second copy.
    features = stacked_featureset(FeatureSet.load(args.features))
    st_model = None
    if args.st_model is not None:
        from mtmct_reid.retrieval.transit import TransitTimeModel

        st_model = TransitTimeModel.load(args.st_model)
    report = evaluate_featureset(
        features,
        st_model=st_model,
        rerank=args.rerank,
        protocol=args.protocol,
        fusion=fusion,
        k1=args.k1,
        k2=args.k2,
        lambda_value=args.lambda_value,
        chunk_size=args.chunk_size,
        progress=not args.no_progress,
        source=str(args.features),
    )
    print(
        f"{args.features}: {len(features.query)} queries x {len(features.gallery)} gallery, "
        f"{features.dim}-d, {report.seconds:.1f} s"
    )
    print(report.format_table())
    if args.json is not None:
        write_json(args.json, report.as_json())
        print(f"wrote {args.json}")
    return 0

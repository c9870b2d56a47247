"""``mtmct-reid synth``: generate a synthetic camera network in the Market-1501 layout."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtmct_reid.cli.mtmc_hooks import add_synth_video_arguments, run_synth_video
from mtmct_reid.validation import arg_float, arg_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="generate a synthetic multi-camera dataset with known transit times",
        description=(
            "Generate people walking a random camera network, drawn as Market-1501 images "
            "(bounding_box_train, bounding_box_test, query) with ground_truth.json beside them: "
            "the camera links, their transit-time distributions and every visit. Groups of "
            "look-alikes walk at well-separated times, so appearance alone confuses them and "
            "spatial-temporal fusion does not."
        ),
    )
    parser.add_argument(
        "out", type=Path, metavar="OUT", help="output folder (new, or empty; see --force)"
    )
    parser.add_argument(
        "--ids", type=arg_int(), default=None, metavar="N", help="identities, half train (200)"
    )
    parser.add_argument(
        "--cameras", type=arg_int(), default=None, metavar="C", help="cameras, 2..9 (6)"
    )
    parser.add_argument("--seed", type=arg_int(), default=0, metavar="S", help="random seed (0)")
    parser.add_argument(
        "--image-size", default="128x64", metavar="HxW", help="image height x width (128x64)"
    )
    parser.add_argument(
        "--lookalike-fraction",
        type=arg_float(),
        default=None,
        metavar="F",
        help="fraction of identities in look-alike groups (0.5)",
    )
    parser.add_argument(
        "--group-size",
        type=arg_int(),
        default=None,
        metavar="N",
        help="identities per look-alike group (3)",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace OUT if it holds an earlier synthetic network"
    )
    add_synth_video_arguments(parser)
    parser.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    import dataclasses

    from mtmct_reid._io import check_output

    check_output(args.out, "OUT", "folder")
    if args.video:
        return run_synth_video(args)

    from mtmct_reid.data.image_size import parse_image_size
    from mtmct_reid.data.synth import SynthConfig, generate_network

    config = SynthConfig(
        num_ids=200 if args.ids is None else args.ids,
        num_cameras=6 if args.cameras is None else args.cameras,
        seed=args.seed,
        image_size=parse_image_size(args.image_size, label="--image-size"),
    )
    if args.lookalike_fraction is not None:
        config = dataclasses.replace(config, lookalike_fraction=args.lookalike_fraction)
    if args.group_size is not None:
        config = dataclasses.replace(config, lookalike_group_size=args.group_size)
    summary = generate_network(args.out, config=config, overwrite=args.force)
    print(f"wrote {summary.describe()}")
    return 0

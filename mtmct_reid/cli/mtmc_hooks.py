"""The MTMC parts of verbs other modules own: ``synth --video``, ``dataset info ROOT [--preview]`` and
``dataset crops``. Each verb's module calls these few hooks; the work is in :mod:`mtmct_reid.mtmc`."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtmct_reid.validation import arg_float, arg_int, arg_positive_int

# ---- synth --video


def add_synth_video_arguments(parser: argparse.ArgumentParser) -> None:
    """``--video`` and the options only it reads."""
    group = parser.add_argument_group("video network (--video)")
    group.add_argument(
        "--video",
        action="store_true",
        help=(
            "render the network as video: OUT/train and OUT/test MTMC roots (frames, gt, noisy det, "
            "clock offsets) and OUT/ground_truth.json; --ids defaults to 60, --cameras to 4"
        ),
    )
    group.add_argument(
        "--duration",
        type=arg_float(5, 3600),
        default=None,
        metavar="S",
        help="seconds per period (120)",
    )
    group.add_argument(
        "--fps", type=arg_float(1, 60), default=None, metavar="F", help="frame rate (8)"
    )
    group.add_argument(
        "--frame-size", default=None, metavar="HxW", help="frame height x width (144x256)"
    )
    group.add_argument(
        "--small",
        action="store_true",
        help="a network that renders in seconds (16 ids, 3 cameras, 90 s, 96x160, 8 fps)",
    )
    group.add_argument(
        "--mp4",
        action="store_true",
        help="write each camera as video.mp4 (PyAV) instead of img1/*.jpg",
    )


def run_synth_video(args: argparse.Namespace) -> int:
    import dataclasses

    from mtmct_reid.data.image_size import parse_image_size
    from mtmct_reid.mtmc.synth_video import VideoSynthConfig, generate_video_network

    config = VideoSynthConfig.small() if args.small else VideoSynthConfig()
    changes: dict = {"seed": args.seed, "video_file": args.mp4}
    if args.ids is not None:
        changes["num_ids"] = args.ids
    if args.cameras is not None:
        changes["num_cameras"] = args.cameras
    if args.duration is not None:
        changes["duration"] = args.duration
    if args.fps is not None:
        changes["fps"] = args.fps
    if args.frame_size is not None:
        changes["frame_size"] = parse_image_size(args.frame_size, label="--frame-size")
    if args.lookalike_fraction is not None:
        changes["lookalike_fraction"] = args.lookalike_fraction
    if args.group_size is not None:
        changes["lookalike_group_size"] = args.group_size
    config = dataclasses.replace(config, **changes)
    network = generate_video_network(args.out, config=config, overwrite=args.force)
    print(f"wrote {network.describe()}")
    return 0


# ---- dataset info ROOT, dataset crops


def add_info_arguments(info: argparse.ArgumentParser) -> None:
    """``--preview DIR`` for ``dataset info`` on an MTMC root."""
    info.add_argument(
        "--preview",
        type=Path,
        default=None,
        metavar="DIR",
        help="MTMC root only: write one annotated frame per camera (boxes, ids) into DIR",
    )
    info.add_argument(
        "--source",
        default=None,
        metavar="NAME",
        help="MTMC root only: boxes to preview: gt (default), det, or a tracks NAME",
    )


def is_mtmc_root(args: argparse.Namespace) -> bool:
    """Whether a verb should read ``args.data`` as an MTMC root: one with a cameras.csv, or, unless
    ``--layout``/``--pattern`` say how to read it as images, one that looks meant to be a root."""
    from mtmct_reid.mtmc.root import is_root, looks_like_root

    if is_root(args.data):
        return True
    return args.layout is None and args.pattern is None and looks_like_root(args.data)


def run_info_root(args: argparse.Namespace) -> int:
    import json

    from mtmct_reid._io import check_output
    from mtmct_reid.mtmc.root import read_root
    from mtmct_reid.mtmc.summary import format_root_summary, root_summary, write_previews

    if args.preview is not None:
        check_output(args.preview, "--preview", "folder")
    root = read_root(args.data)
    summary = root_summary(root)
    if args.json:
        print(json.dumps({"layout": "mtmc-root", **summary}, indent=2))
    else:
        print(format_root_summary(summary))
    if getattr(args, "preview", None) is not None:
        for path in write_previews(root, args.preview, source=args.source):
            print(f"wrote {path}")
    return 0


def add_crops_action(actions: argparse._SubParsersAction) -> None:
    """``dataset crops ROOT --out DIR``."""
    crops = actions.add_parser(
        "crops",
        help="cut an MTMC root's labelled boxes into a Market-layout re-ID dataset",
        description=(
            "Crop every box of an MTMC root's gt into bounding_box_train (the lower half of the "
            "ids), query and bounding_box_test (the others; --queries per identity and camera go "
            "to query), named {pid}_c{camera}s1_{time}_{n}.jpg with the time on the network's "
            "common clock in hundredths of a second, plus manifest.csv. train, st fit and evaluate "
            "read the folder as Market-1501."
        ),
    )
    crops.add_argument("data", type=Path, metavar="ROOT", help="MTMC root with gt/gt.txt")
    crops.add_argument("--out", type=Path, required=True, metavar="DIR", help="dataset folder")
    crops.add_argument(
        "--source",
        default="gt",
        metavar="NAME",
        help="labelled boxes: gt (default) or a tracks NAME",
    )
    crops.add_argument(
        "--step",
        type=arg_positive_int,
        default=1,
        metavar="K",
        help="keep every K-th box of each identity in each camera (1)",
    )
    crops.add_argument(
        "--queries",
        type=arg_positive_int,
        default=1,
        metavar="N",
        help="query boxes per test identity and camera (1)",
    )
    crops.add_argument(
        "--min-visibility",
        type=arg_float(0, 1),
        default=0.0,
        metavar="V",
        help="leave out boxes less visible than V (0)",
    )
    crops.add_argument("--seed", type=arg_int(0), default=0, metavar="S", help="query choice (0)")
    crops.add_argument("--force", action="store_true", help="replace an earlier crop dataset")
    crops.set_defaults(func=run_crops)


def run_crops(args: argparse.Namespace) -> int:
    from mtmct_reid._io import check_output
    from mtmct_reid.mtmc.root import read_root
    from mtmct_reid.mtmc.summary import write_crop_dataset

    check_output(args.out, "--out", "folder")
    result = write_crop_dataset(
        read_root(args.data),
        args.out,
        source=args.source,
        query_per_camera=args.queries,
        step=args.step,
        min_visibility=args.min_visibility,
        seed=args.seed,
        overwrite=args.force,
    )
    counts = ", ".join(f"{k} {v}" for k, v in result["counts"].items())
    print(f"wrote {result['out']}: {counts} crops of {sum(result['ids'].values())} ids")
    return 0

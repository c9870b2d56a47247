"""``mtmct-reid dataset info|export``: look at a dataset as the toolkit reads it, or write its manifest."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtmct_reid.cli import add_layout_arguments
from mtmct_reid.cli.mtmc_hooks import (
    add_crops_action,
    add_info_arguments,
    is_mtmc_root,
    run_info_root,
)


def _add_source_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "data", type=Path, metavar="DIR", help="dataset folder (or CSV manifest file)"
    )
    add_layout_arguments(parser)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "dataset",
        help="inspect a dataset (images, ids, cameras, times per split) or export its manifest",
        description=(
            "Read a dataset the way every other verb reads it (Market-1501, DukeMTMC-reID, MSMT17, "
            "a regex over your file names, or a CSV manifest) and show what was found, or write it "
            "as a CSV manifest (path,pid,camera,time,split)."
        ),
    )
    actions = parser.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)

    info = actions.add_parser(
        "info",
        help="per-split table of images, ids, cameras and time range, with warnings",
        description=(
            "Print images, person ids, junk (-1) and distractor (0) counts, cameras and time range "
            "per split, then warnings: queries that no gallery camera other than their own has seen "
            "(evaluation skips them), a single camera, missing times (no spatial-temporal fusion)."
        ),
    )
    _add_source_arguments(info)
    info.add_argument("--json", action="store_true", help="print the summary as JSON instead")
    add_info_arguments(info)
    info.set_defaults(func=run_info)

    export = actions.add_parser(
        "export",
        help="write the dataset as a CSV manifest (path,pid,camera,time,split)",
        description=(
            "Write the dataset as a CSV manifest that 'mtmct-reid ... --layout manifest' reads back "
            "into the same records; paths under the manifest's folder are written relative to it."
        ),
    )
    _add_source_arguments(export)
    export.add_argument(
        "--out", type=Path, required=True, metavar="CSV", help="manifest file to write"
    )
    export.add_argument(
        "--force", action="store_true", help="overwrite an existing output file of another kind"
    )
    export.set_defaults(func=run_export)

    add_crops_action(actions)


def _read(args: argparse.Namespace):
    from mtmct_reid.data.layouts import detect_layout, read_dataset

    layout = args.layout
    if layout is None and args.pattern is None:
        layout = detect_layout(args.data)
    elif layout is None:
        layout = "regex"
    return layout, read_dataset(args.data, layout=layout, pattern=args.pattern)


def run_info(args: argparse.Namespace) -> int:
    import json

    if is_mtmc_root(args):
        return run_info_root(args)

    from mtmct_reid.data.summary import dataset_summary, format_summary
    from mtmct_reid.retrieval.protocol import queries_without_cross_camera_match

    layout, records = _read(args)
    summary = dataset_summary(records, queries_without_cross_camera_match(records))
    if args.json:
        print(json.dumps({"layout": layout, **summary}, indent=2))
    else:
        print(f"dataset: {summary['root']} ({layout})")
        print(format_summary(summary))
    return 0


def run_export(args: argparse.Namespace) -> int:
    import numpy as np

    from mtmct_reid._io import check_output
    from mtmct_reid.data.layouts.manifest import find_manifest, write_manifest
    from mtmct_reid.data.records import SPLITS

    check_output(args.out, "--out", "csv", inputs=(args.data,), force=args.force)
    layout, records = _read(args)
    if layout == "manifest" and args.data.is_dir():
        # The folder was read through its manifest, which is then an input as much as the folder.
        check_output(args.out, "--out", "csv", inputs=(find_manifest(args.data),), force=args.force)
    out = write_manifest(records, args.out)
    counts = ", ".join(f"{s} {int(np.sum(records.splits == s))}" for s in SPLITS)
    print(f"wrote {out}: {len(records)} images ({counts}) read as {layout}")
    return 0

"""``mtmct-reid st fit|plot``: learn the camera network's transit times and draw them."""

from __future__ import annotations

import argparse
from pathlib import Path

from mtmct_reid.cli import add_layout_arguments
from mtmct_reid.validation import arg_float


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "st",
        help="spatial-temporal model: fit transit times between cameras, plot them",
        description=(
            "The spatial-temporal half of st-ReID: how long people take between two cameras. "
            "'fit' learns it from the training split's labels of a dataset; 'plot' draws it."
        ),
    )
    actions = parser.add_subparsers(dest="st_command", metavar="ACTION", required=True)

    fit = actions.add_parser(
        "fit",
        help="fit the transit-time model on a dataset's training split",
        description=(
            "Fit the transit-time model on the TRAINING split's labels only (transit times belong "
            "to the camera network, so test identities are never needed): per identity and camera "
            "the mean time of its images; per two cameras of one identity, the time difference "
            "counted in the histogram of (later camera, earlier camera); each histogram smoothed "
            "with a Gaussian and normalised."
        ),
    )
    fit.add_argument("data", type=Path, metavar="DATA", help="dataset folder (or CSV manifest)")
    fit.add_argument(
        "--out", type=Path, required=True, metavar="ST.npz", help="where to write the model"
    )
    add_layout_arguments(fit)
    fit.add_argument(
        "--bin-width",
        type=arg_float(0, low_open=True),
        default=None,
        metavar="T",
        help="time units per bin (100 frames; 1 s for an MTMC root)",
    )
    fit.add_argument(
        "--sigma",
        type=arg_float(0),
        default=None,
        metavar="BINS",
        help="smoothing σ in bins (50; 3 for an MTMC root)",
    )
    fit.add_argument(
        "--truncate", type=arg_float(0), default=3.0, metavar="K", help="smoothing cut at K·σ (3)"
    )
    # An MTMC root (cameras.csv): gaps between consecutive visits of its gt ids, or bootstrapped.
    from mtmct_reid.cli.track import add_root_fit_arguments

    add_root_fit_arguments(fit)
    fit.add_argument(
        "--force", action="store_true", help="overwrite an existing output file of another kind"
    )
    fit.set_defaults(func=run_fit)

    plot = actions.add_parser(
        "plot",
        help="draw a transit-time model as a grid of camera pairs",
        description=(
            "Draw the model as a grid: row = later camera, column = earlier camera; each cell the "
            "smoothed probability per bin over the time difference, with the raw histogram behind "
            "it. With --ground-truth (a synthetic network's ground_truth.json) the true density is "
            "overlaid."
        ),
    )
    plot.add_argument("model", type=Path, metavar="ST.npz", help="model from 'mtmct-reid st fit'")
    plot.add_argument(
        "--out", type=Path, required=True, metavar="OUT.png", help="image to write (.png/.pdf/.svg)"
    )
    plot.add_argument(
        "--ground-truth",
        type=Path,
        default=None,
        metavar="JSON",
        help="ground_truth.json of 'mtmct-reid synth' (or its folder) to overlay",
    )
    plot.add_argument(
        "--max-time",
        type=arg_float(0, low_open=True),
        default=None,
        metavar="T",
        help="right end of the time axis (default: the last bin with probability)",
    )
    plot.add_argument(
        "--force", action="store_true", help="overwrite an existing output file of another kind"
    )
    plot.set_defaults(func=run_plot)


def _pair_table(model) -> str:
    labels = [f"c{int(c)}" for c in model.camera_ids]
    width = max(5, *(len(label) + 1 for label in labels))
    lines = [" " * width + "".join(label.rjust(width) for label in labels)]
    for row, label in enumerate(labels):
        cells = [
            "-".rjust(width) if row == col else str(int(model.pair_ids[row, col])).rjust(width)
            for col in range(len(labels))
        ]
        lines.append(label.rjust(width) + "".join(cells))
    return "\n".join(lines)


def run_fit(args: argparse.Namespace) -> int:
    import numpy as np

    from mtmct_reid._io import check_output
    from mtmct_reid.cli.mtmc_hooks import is_mtmc_root
    from mtmct_reid.cli.track import run_root_fit
    from mtmct_reid.data.readers import read_dataset
    from mtmct_reid.retrieval.transit import TransitTimeModel

    check_output(args.out, "--out", "transit", inputs=(args.data,), force=args.force)
    if args.from_matches or is_mtmc_root(args):
        return run_root_fit(args)
    args.bin_width = 100.0 if args.bin_width is None else args.bin_width
    args.sigma = 50.0 if args.sigma is None else args.sigma
    records = read_dataset(args.data, layout=args.layout, pattern=args.pattern)
    model = TransitTimeModel.from_records(
        records,
        split="train",
        source=str(args.data),
        bin_width=args.bin_width,
        sigma_bins=args.sigma,
        truncate=args.truncate,
    )
    model.save(args.out)
    train = records.split("train")
    labelled = train.pids > 0
    c = model.num_cameras
    print(
        f"fitted on the train split only: {np.unique(train.pids[labelled]).size} identities, "
        f"{int(labelled.sum())} images, {c} cameras"
    )
    print(
        f"camera pairs observed: {model.num_observed_pairs} of {c * (c - 1)} ordered pairs; "
        f"{model.num_bins} bins of {model.bin_width:g}, smoothing σ {model.sigma_bins:g} bins"
    )
    print("identities per pair (row: later camera, column: earlier camera):")
    print(_pair_table(model))
    print(f"wrote {args.out}")
    return 0


def _ground_truth_density(path: Path):
    """A ``(later, earlier, dt) -> density`` callable over a synthetic network's ground truth."""
    from mtmct_reid.data.synth import load_ground_truth, transit_ground_truth

    data = load_ground_truth(path)
    cache: dict[str, object] = {}

    def density(later: int, earlier: int, deltas):
        # The grid calls this once per pair with the same time axis: compute all pairs once.
        key = deltas.tobytes()
        if cache.get("key") != key:
            cache["key"] = key
            cache["table"] = transit_ground_truth(data, deltas)
        return cache["table"].get((int(later), int(earlier)))

    return density


def run_plot(args: argparse.Namespace) -> int:
    from mtmct_reid._io import check_output
    from mtmct_reid.errors import ReIDError
    from mtmct_reid.report.plots import plot_transit_grid
    from mtmct_reid.retrieval.transit import TransitTimeModel

    check_output(
        args.out, "--out", "image", inputs=(args.model, args.ground_truth), force=args.force
    )
    model = TransitTimeModel.load(args.model)
    ground_truth = None
    if args.ground_truth is not None:
        ground_truth = _ground_truth_density(args.ground_truth)
    if args.max_time is not None and not args.max_time > 0:
        raise ReIDError(f"--max-time {args.max_time:g}: expected a positive time difference")
    plot_transit_grid(model, ground_truth=ground_truth, max_time=args.max_time, out=args.out)
    print(f"wrote {args.out} ({model.num_cameras}×{model.num_cameras} camera pairs)")
    return 0
